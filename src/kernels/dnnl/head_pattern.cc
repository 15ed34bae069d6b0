#include "kernels/dnnl/head_pattern.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "kernels/head/head_decode.h"
#include "kernels/reference/registry.h"

namespace damoyolo::kernels::dnnl_ops {
namespace {

// Ops the decode is built from (both softmax forms, opset-11 stack/flatten).
const std::unordered_set<std::string> kHeadOps = {
    "Reshape", "Transpose", "Softmax", "Exp",  "ReduceSum", "ReduceMax", "Sub",     "Div",   "MatMul",
    "Gather",  "Unsqueeze", "Squeeze", "Add",  "Mul",       "Concat",    "Slice",   "Flatten", "Sigmoid",
    "Identity", "Cast"};

// Runs the matched nodes with the reference kernels on synthetic maps and
// compares with decode_head_dense. Any disagreement means "don't fuse".
bool confirm_numerically(const graph::Graph& g, const HeadPattern& p) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> prob(0.01f, 0.99f), logit(-4.f, 4.f);
  std::unordered_map<std::string, Tensor> vals;
  std::vector<head::HeadLevelMaps> maps;
  const model::HeadLayout& layout = p.layout;
  for (size_t l = 0; l < layout.levels.size(); ++l) {
    const model::HeadLevel& lv = layout.levels[l];
    const HeadPattern::LevelMaps& m = p.maps[l];
    const graph::ValueInfo* ci = g.info(m.cls);
    const graph::ValueInfo* ri = g.info(m.reg);
    Shape cs = ci->shape, rs = ri->shape;
    cs[0] = rs[0] = 1;  // one image is enough to confirm the maths
    Tensor ct(DType::kFloat32, cs), rt(DType::kFloat32, rs);
    for (int64_t i = 0; i < ct.numel(); ++i) ct.data<float>()[i] = p.cls_is_logit ? logit(rng) : prob(rng);
    for (int64_t i = 0; i < rt.numel(); ++i) rt.data<float>()[i] = logit(rng);
    const int64_t hw = lv.anchors();
    maps.push_back({lv.stride, lv.h, lv.w, ct.data<float>(), 1, hw, rt.data<float>(), 1, hw});
    vals[m.cls] = ct;
    vals[m.reg] = rt;
  }
  const int64_t batch = g.info(p.maps[0].cls)->shape[0];
  if (batch != 1) return false;  // the export's constants are per batch; fixtures and releases are batch 1
  for (size_t ni : p.nodes) {
    const graph::Node& n = g.nodes[ni];
    std::vector<Tensor> in;
    for (const auto& v : n.inputs) {
      if (v.empty()) in.emplace_back();
      else if (const Tensor* c = g.constant(v)) in.push_back(*c);
      else if (auto it = vals.find(v); it != vals.end()) in.push_back(it->second);
      else return false;
    }
    ref::OpContext ctx{n, g.opset()};
    std::vector<Tensor> out = ref::kernel_for(n, g.opset()).compute(ctx, in);
    for (size_t i = 0; i < n.outputs.size() && i < out.size(); ++i) vals[n.outputs[i]] = out[i];
  }
  const Tensor& rs = vals[g.outputs[layout.scores_output]];
  const Tensor& rb = vals[g.outputs[layout.boxes_output]];
  // decode_head_dense writes one row per anchor of the levels: the reference
  // outputs must have exactly that many, or the comparison below over-reads.
  const int64_t A = layout.num_anchors;
  const int C = layout.num_classes;
  if (rs.dtype() != DType::kFloat32 || rb.dtype() != DType::kFloat32 || rs.numel() != A * C || rb.numel() != A * 4)
    return false;
  std::vector<float> scores(static_cast<size_t>(A * C)), boxes(static_cast<size_t>(A * 4));
  head::HeadSpec spec{C, layout.reg_max, p.cls_is_logit};
  head::decode_head_dense(spec, maps.data(), static_cast<int>(maps.size()), scores.data(), boxes.data());
  for (int64_t i = 0; i < A * C; ++i)
    if (std::fabs(scores[i] - rs.data<float>()[i]) > 1e-5f) return false;
  for (int64_t i = 0; i < A * 4; ++i)
    if (std::fabs(boxes[i] - rb.data<float>()[i]) > 1e-2f) return false;
  return true;
}

}  // namespace

std::optional<HeadPattern> match_damoyolo_head(const graph::Graph& g) {
  // Only the decoded export (scores, boxes) has a decode subgraph to fuse;
  // model::recognise_head decides that, and binds the outputs by position.
  auto infos = [&](const std::vector<std::string>& names) -> std::optional<std::vector<TensorInfo>> {
    std::vector<TensorInfo> v;
    for (const auto& n : names) {
      const graph::ValueInfo* vi = g.info(n);
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
    const graph::Node& n = g.nodes[it->second];
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
    const graph::ValueInfo* vi = g.info(v);
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
    if (!confirm_numerically(g, p)) return std::nullopt;
  } catch (const Error&) {
    return std::nullopt;
  }
  return p;
}

}  // namespace damoyolo::kernels::dnnl_ops
