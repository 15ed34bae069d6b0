// com.damoyolo DamoYoloHead (graph/passes/fuse_damoyolo_head.cc) → one step:
// the DAMO-YOLO decode (softmax over bins, integral, priors, sigmoid scores)
// as one call on the cls/reg conv outputs, read in whatever strides the convs
// wrote (channels-last: anchor stride C, channel stride 1), so no transposes.
// Priors are cached per execution context (built once per geometry).
#include "kernels/head/head_decode.h"
#include "kernels/dnnl/lowering.h"
#include "model/head_layout.h"

namespace damoyolo::kernels::dnnl_ops {

using dnnl::memory;
using dt = memory::data_type;

namespace {

class FusedHeadStep final : public Step {
 public:
  head::HeadSpec spec{};
  std::vector<model::HeadLevel> levels;
  struct LevelMaps {
    Ref cls, reg;
  };
  std::vector<LevelMaps> level_maps;  // per level
  Ref scores, boxes;                  // plain [N, A, C] and [N, A, 4]
  int64_t batch = 1;

  std::unique_ptr<BoundStep> bind(Binder&) const override { return std::make_unique<Bound>(this); }

  // Strides of a 4-D ref as (anchor, channel, image) element strides.
  static void strides_of(const Ref& r, int64_t& anchor, int64_t& channel, int64_t& image) {
    const auto& st = r.md.data.format_desc.blocking.strides;
    channel = st[1];
    anchor = st[3];  // w stride; rows are contiguous in w (checked when lowering)
    image = st[0];
  }

 private:
  struct Bound final : BoundStep {
    explicit Bound(const FusedHeadStep* s) : step(s), maps(s->levels.size()) {}
    const FusedHeadStep* step;
    std::vector<head::HeadLevelMaps> maps;  // sized once; filled per image
    head::PriorCache cache;                 // per context
    void run(RunState& rs) override {
      const int64_t A = step->scores.shape[1], C = step->scores.shape[2];
      for (int64_t n = 0; n < step->batch; ++n) {
        for (size_t l = 0; l < maps.size(); ++l) {
          const model::HeadLevel& lv = step->levels[l];
          const LevelMaps& m = step->level_maps[l];
          int64_t ca, cc, ci, ra, rc, ri;
          strides_of(m.cls, ca, cc, ci);
          strides_of(m.reg, ra, rc, ri);
          const float* cls = reinterpret_cast<const float*>(rs.slot_ptr[m.cls.slot] + m.cls.offset) + n * ci;
          const float* reg = reinterpret_cast<const float*>(rs.slot_ptr[m.reg.slot] + m.reg.offset) + n * ri;
          maps[l] = {lv.stride, lv.h, lv.w, cls, ca, cc, reg, ra, rc};
        }
        float* scores = reinterpret_cast<float*>(rs.slot_ptr[step->scores.slot] + step->scores.offset) + n * A * C;
        float* boxes = reinterpret_cast<float*>(rs.slot_ptr[step->boxes.slot] + step->boxes.offset) + n * A * 4;
        head::decode_head_dense(step->spec, maps.data(), static_cast<int>(maps.size()), scores, boxes, cache);
      }
    }
  };
};

}  // namespace

bool lower_head(LoweringContext& cx, size_t ni) {
  const graph::Node& n = cx.node(ni);
  const auto strides = n.attr_ints("strides");
  const int64_t num_classes = n.attr_i("num_classes", 0), reg_max = n.attr_i("reg_max", -1);
  if (strides.empty() || n.inputs.size() != 2 * strides.size() || n.outputs.size() != 2 || num_classes < 1 ||
      reg_max < 0)
    throw Error(ErrorCode::kInvalidArgument, n.describe() + ": malformed DamoYoloHead (inputs, strides, classes)");
  const int64_t batch = cx.options().batch;
  auto step = std::make_unique<FusedHeadStep>();
  step->spec.num_classes = static_cast<int>(num_classes);
  step->spec.reg_max = static_cast<int>(reg_max);
  step->spec.cls_is_logit = n.attr_i("cls_is_logit", 0) != 0;
  step->batch = batch;
  std::vector<Ref> touched;
  for (size_t l = 0; l < strides.size(); ++l) {
    const Shape cs = cx.shape_of(n.input(2 * l)), rs = cx.shape_of(n.input(2 * l + 1));
    if (cs.size() != 4 || rs.size() != 4 || cs[1] != num_classes || rs[1] != 4 * (reg_max + 1) || cs[2] != rs[2] ||
        cs[3] != rs[3] || cs[0] != batch || rs[0] != batch)
      throw Error(ErrorCode::kInvalidArgument, n.describe() + ": level " + std::to_string(l) + " maps " +
                                                   shape_to_string(cs) + ", " + shape_to_string(rs) +
                                                   " do not match the head");
    model::HeadLevel lv;
    lv.stride = static_cast<int>(strides[l]);
    lv.h = static_cast<int>(cs[2]);
    lv.w = static_cast<int>(cs[3]);
    step->levels.push_back(lv);
    FusedHeadStep::LevelMaps m;
    for (auto [name, ref] : {std::pair{&n.input(2 * l), &m.cls}, std::pair{&n.input(2 * l + 1), &m.reg}}) {
      Ref r = cx.dense_ref(*name);
      if (r.md.data_type() != dt::f32 || !is_plain_strided(r.md)) r = cx.ensure(*name, nhwc_desc(r.shape, dt::f32));
      // Anchor index i*w+j must map to a single stride: rows contiguous in w.
      const auto& st = r.md.data.format_desc.blocking.strides;
      if (st[2] != st[3] * lv.w) r = cx.ensure(*name, nhwc_desc(r.shape, dt::f32));
      *ref = r;
      touched.push_back(r);
    }
    step->level_maps.push_back(m);
  }
  const int64_t anchors = model::assign_anchor_offsets(step->levels);
  // The outputs go straight into the caller's tensors when they are graph
  // outputs (the usual case), else into the arena.
  auto out_ref = [&](const std::string& v, int64_t width) {
    const Shape s = {batch, anchors, width};
    cx.set_shape(v, s);
    Ref r;
    r.shape = s;
    r.md = plain_desc(s, dt::f32);
    int external = -1;
    const auto& outs = cx.graph().outputs;
    for (size_t i = 0; i < outs.size(); ++i)
      if (outs[i] == v) external = static_cast<int>(i);
    r.slot = external >= 0 ? cx.new_slot(r.md.get_size(), Slot::Kind::kOutput, external)
                           : cx.new_slot(r.md.get_size());
    cx.define(v, r);
    return r;
  };
  step->scores = out_ref(n.outputs[0], num_classes);
  step->boxes = out_ref(n.outputs[1], 4);
  touched.push_back(step->scores);
  touched.push_back(step->boxes);
  step->plan.kind = PlanStep::Kind::kFusedHead;
  step->plan.op = "DamoYoloHead";
  step->plan.implementation = "decode_head_dense";
  if (auto it = n.attrs.find("fused_nodes"); it != n.attrs.end()) step->plan.nodes = it->second.strings;
  else step->plan.nodes = {n.name};
  step->plan.src = std::to_string(step->levels.size()) + " levels: " +
                   LoweringContext::describe(step->level_maps[0].cls) + ", ...";
  step->plan.dst = LoweringContext::describe(step->scores) + ", " + LoweringContext::describe(step->boxes);
  cx.add_step(std::move(step), touched);
  return true;
}

}  // namespace damoyolo::kernels::dnnl_ops
