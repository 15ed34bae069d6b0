// fuse_damoyolo_head: the DAMO-YOLO ZeroHead decode subgraph → one node.
//
//   cls_l = Sigmoid(Conv(...))  (or the conv's logits)       per level l
//   reg_l = Mul(Conv(...), c)   (or the conv itself)
//   ... Reshape/Transpose/Softmax (or Exp/ReduceSum/Div)/MatMul/Gather/
//       Sub/Add/Concat ...  → scores [N,A,C], boxes [N,A,4]
//        ─────────→
//   scores, boxes = com.damoyolo.DamoYoloHead(cls_0, reg_0, cls_1, reg_1, ...)
//                     {num_classes, reg_max, strides, cls_is_logit}
//
// The match is structural — every node between the per-level conv outputs
// and the two graph outputs, nothing computed inside escaping — with the
// levels' strides derived from the input size (model/head_layout.h, the one
// definition of the head), and is then confirmed numerically: the matched
// subgraph and the DamoYoloHead node are both run (by the caller's
// evaluator: the reference kernels) on synthetic maps and must agree, so an
// export whose decode differs in any detail (offsets, side order, prior
// layout) is never fused. The optimised engine runs the node as one kernel
// reading the conv outputs in their own layout (kernels/dnnl/lower_head.cc).
#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "graph/passes/fusion.h"
#include "model/head_layout.h"

namespace damoyolo::graph {
namespace {

struct HeadPattern {
  model::HeadLayout layout;  // the decoded form's layout, levels derived from the maps below
  struct LevelMaps {
    std::string cls, reg;  // 4-D values [N,C,h,w] and [N,4(R+1),h,w] the head reads
  };
  std::vector<LevelMaps> maps;  // per layout.levels[l]
  bool cls_is_logit = false;
  std::vector<size_t> nodes;  // node indices the fused node replaces
};

// Ops the decode is built from (both softmax forms, opset-11 stack/flatten).
const std::unordered_set<std::string> kHeadOps = {
    "Reshape", "Transpose", "Softmax", "Exp",  "ReduceSum", "ReduceMax", "Sub",     "Div",   "MatMul",
    "Gather",  "Unsqueeze", "Squeeze", "Add",  "Mul",       "Concat",    "Slice",   "Flatten", "Sigmoid",
    "Identity", "Cast"};

Node head_node(const Graph& g, const HeadPattern& p) {
  Node n;
  n.name = "DamoYoloHead";
  n.op_type = "DamoYoloHead";
  n.domain = kDamoYoloDomain;
  Attribute strides;
  strides.kind = Attribute::Kind::kInts;
  for (size_t l = 0; l < p.maps.size(); ++l) {
    n.inputs.push_back(p.maps[l].cls);
    n.inputs.push_back(p.maps[l].reg);
    strides.ints.push_back(p.layout.levels[l].stride);
  }
  n.outputs = {g.outputs[p.layout.scores_output], g.outputs[p.layout.boxes_output]};
  n.attrs["strides"] = strides;
  n.attrs["num_classes"] = fusion::int_attr(p.layout.num_classes);
  n.attrs["reg_max"] = fusion::int_attr(p.layout.reg_max);
  n.attrs["cls_is_logit"] = fusion::int_attr(p.cls_is_logit ? 1 : 0);
  std::vector<std::string> names;
  for (size_t ni : p.nodes) names.push_back(g.nodes[ni].name);
  fusion::add_fused_names(n, names);
  return n;
}

// Runs the matched nodes and the DamoYoloHead node on the same synthetic
// maps. Any disagreement means "don't fuse".
bool confirm_numerically(const Graph& g, const HeadPattern& p, const NodeEvaluator& eval) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> prob(0.01f, 0.99f), logit(-4.f, 4.f);
  std::unordered_map<std::string, Tensor> vals;
  const int64_t batch = g.info(p.maps[0].cls)->shape[0];
  if (batch != 1) return false;  // the export's constants are per batch; fixtures and releases are batch 1
  for (const auto& m : p.maps) {
    Tensor ct(DType::kFloat32, g.info(m.cls)->shape), rt(DType::kFloat32, g.info(m.reg)->shape);
    for (int64_t i = 0; i < ct.numel(); ++i) ct.data<float>()[i] = p.cls_is_logit ? logit(rng) : prob(rng);
    for (int64_t i = 0; i < rt.numel(); ++i) rt.data<float>()[i] = logit(rng);
    vals[m.cls] = ct;
    vals[m.reg] = rt;
  }
  const Node head = head_node(g, p);
  std::vector<Tensor> head_in;
  for (const auto& v : head.inputs) head_in.push_back(vals[v]);
  const std::vector<Tensor> fused = eval(head, head_in, g.opset_for(head));
  for (size_t ni : p.nodes) {
    const Node& n = g.nodes[ni];
    std::vector<Tensor> in;
    for (const auto& v : n.inputs) {
      if (v.empty()) in.emplace_back();
      else if (const Tensor* c = g.constant(v)) in.push_back(*c);
      else if (auto it = vals.find(v); it != vals.end()) in.push_back(it->second);
      else return false;
    }
    std::vector<Tensor> out = eval(n, in, g.opset_for(n));
    for (size_t i = 0; i < n.outputs.size() && i < out.size(); ++i) vals[n.outputs[i]] = out[i];
  }
  for (int k = 0; k < 2; ++k) {
    const Tensor& ref = vals[head.outputs[k]];
    const Tensor& got = fused[k];
    // Exactly as many rows as the levels' anchors, or the comparison is void.
    if (ref.dtype() != DType::kFloat32 || ref.numel() != got.numel()) return false;
    const float tol = k == 0 ? 1e-5f : 1e-2f;  // boxes are in pixels
    for (int64_t i = 0; i < ref.numel(); ++i)
      if (!(std::fabs(ref.data<float>()[i] - got.data<float>()[i]) <= tol)) return false;
  }
  return true;
}

std::optional<HeadPattern> match(const Graph& g, const NodeEvaluator& eval) {
  // Only the decoded export (scores, boxes) has a decode subgraph to fuse;
  // model::recognise_head decides that, and binds the outputs by position.
  auto infos = [&](const std::vector<std::string>& names) -> std::optional<std::vector<TensorInfo>> {
    std::vector<TensorInfo> v;
    for (const auto& n : names) {
      const ValueInfo* vi = g.info(n);
      if (!vi || !vi->fully_known()) return std::nullopt;
      v.push_back({n, vi->dtype, vi->shape});
    }
    return v;
  };
  const auto in_infos = infos(g.inputs), out_infos = infos(g.outputs);
  if (!in_infos || !out_infos) return std::nullopt;
  auto layout = model::recognise_head(*in_infos, *out_infos);
  if (!layout.ok() || layout->form != model::ExportForm::kDecoded) return std::nullopt;
  HeadPattern p;
  p.layout = std::move(*layout);
  const int num_classes = p.layout.num_classes;

  const auto producers = g.producers();
  const auto consumers = g.consumers();
  auto produced_by = [&](const std::string& v, const char* op) {
    auto it = producers.find(v);
    return it != producers.end() && g.nodes[it->second].op_type == op;
  };
  auto is_scalar_const = [&](const std::string& v) {
    const Tensor* t = g.constant(v);
    return t && t->numel() == 1;
  };

  // Walk back from the outputs; stop at per-level conv outputs (optionally
  // through the Sigmoid / scalar Mul that sit directly on the conv).
  std::unordered_set<size_t> region;
  std::vector<std::string> frontier, stack(g.outputs.begin(), g.outputs.end());
  std::unordered_set<std::string> seen;
  while (!stack.empty()) {
    std::string v = stack.back();
    stack.pop_back();
    if (!seen.insert(v).second || g.is_constant(v)) continue;
    auto it = producers.find(v);
    if (it == producers.end()) return std::nullopt;  // reached the graph input: not a conv head
    const Node& n = g.nodes[it->second];
    bool stop = n.op_type == "Conv";
    if (n.op_type == "Sigmoid" && produced_by(n.input(0), "Conv")) stop = true;
    if (n.op_type == "Mul" && n.inputs.size() == 2 &&
        ((produced_by(n.input(0), "Conv") && is_scalar_const(n.input(1))) ||
         (produced_by(n.input(1), "Conv") && is_scalar_const(n.input(0)))))
      stop = true;
    if (stop) {
      frontier.push_back(v);
      continue;
    }
    if (!kHeadOps.count(n.op_type) || !n.domain.empty()) return std::nullopt;
    region.insert(it->second);
    for (const auto& x : n.inputs)
      if (!x.empty()) stack.push_back(x);
  }
  // Nothing computed inside the head may be needed elsewhere.
  const std::unordered_set<std::string> outs(g.outputs.begin(), g.outputs.end());
  for (size_t ni : region)
    for (const auto& v : g.nodes[ni].outputs) {
      if (auto it = consumers.find(v); it != consumers.end())
        for (size_t c : it->second)
          if (!region.count(c)) return std::nullopt;
    }

  // Levels: one class map and one regression map per feature size.
  std::map<std::pair<int64_t, int64_t>, HeadPattern::LevelMaps> by_size;
  int reg_ch = -1;
  for (const auto& v : frontier) {
    const ValueInfo* vi = g.info(v);
    if (!vi || !vi->fully_known() || vi->shape.size() != 4) return std::nullopt;
    const int64_t ch = vi->shape[1], h = vi->shape[2], w = vi->shape[3];
    if (h < 1 || w < 1 || h > INT32_MAX || w > INT32_MAX || ch > INT32_MAX) return std::nullopt;
    auto& lv = by_size[{h, w}];
    if (ch == num_classes && lv.cls.empty()) {
      lv.cls = v;
      p.cls_is_logit = !produced_by(v, "Sigmoid");
    } else if (ch % 4 == 0 && ch != num_classes && lv.reg.empty() && (reg_ch < 0 || reg_ch == ch)) {
      lv.reg = v;
      reg_ch = static_cast<int>(ch);
    } else {
      return std::nullopt;
    }
  }
  if (by_size.empty() || reg_ch < 4) return std::nullopt;
  p.layout.reg_max = reg_ch / 4 - 1;
  // Strides from the input size (model::derive_levels), ascending; the
  // levels' anchors must be exactly the outputs' A.
  std::vector<model::MapSize> sizes;
  std::vector<HeadPattern::LevelMaps> found;
  for (const auto& [hw, lv] : by_size) {
    if (lv.cls.empty() || lv.reg.empty()) return std::nullopt;
    sizes.push_back({hw.first, hw.second, "value '" + lv.cls + "'"});
    found.push_back(lv);
  }
  std::vector<size_t> order;
  try {
    p.layout.levels = model::derive_levels(p.layout.input_h, p.layout.input_w, sizes, &order);
  } catch (const Error&) {
    return std::nullopt;
  }
  const model::HeadLevel& last = p.layout.levels.back();
  if (last.anchor_offset + last.anchors() != p.layout.num_anchors) return std::nullopt;
  for (size_t i : order) p.maps.push_back(found[i]);
  p.nodes.assign(region.begin(), region.end());
  std::sort(p.nodes.begin(), p.nodes.end());  // graph order is topological
  try {
    if (!confirm_numerically(g, p, eval)) return std::nullopt;
  } catch (const Error&) {
    return std::nullopt;
  }
  return p;
}

}  // namespace

int fuse_damoyolo_head(Graph& g, const NodeEvaluator& eval) {
  if (g.nodes.empty() || g.outputs.size() < 2) return 0;
  const std::optional<HeadPattern> p = match(g, eval);
  if (!p) return 0;
  std::unordered_map<size_t, Node> replace;
  std::vector<bool> remove(g.nodes.size(), false);
  for (size_t ni : p->nodes) remove[ni] = true;
  // At the last replaced node's place: every map it reads is computed by then.
  replace[p->nodes.back()] = head_node(g, *p);
  fusion::rewrite(g, replace, remove);
  return 1;
}

}  // namespace damoyolo::graph
