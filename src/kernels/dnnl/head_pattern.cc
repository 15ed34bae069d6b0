#include "kernels/dnnl/head_pattern.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "detection/head_decode.h"
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
  std::vector<detection::HeadLevelMaps> maps;
  for (const auto& l : p.levels) {
    const graph::ValueInfo* ci = g.info(l.cls);
    const graph::ValueInfo* ri = g.info(l.reg);
    Shape cs = ci->shape, rs = ri->shape;
    cs[0] = rs[0] = 1;  // one image is enough to confirm the maths
    Tensor ct(DType::kFloat32, cs), rt(DType::kFloat32, rs);
    for (int64_t i = 0; i < ct.numel(); ++i) ct.data<float>()[i] = p.cls_is_logit ? logit(rng) : prob(rng);
    for (int64_t i = 0; i < rt.numel(); ++i) rt.data<float>()[i] = logit(rng);
    const int64_t hw = int64_t{l.h} * l.w;
    maps.push_back({l.stride, l.h, l.w, ct.data<float>(), 1, hw, rt.data<float>(), 1, hw});
    vals[l.cls] = ct;
    vals[l.reg] = rt;
  }
  const int64_t batch = g.info(p.levels[0].cls)->shape[0];
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
  const Tensor& rs = vals[g.outputs[p.scores_output]];
  const Tensor& rb = vals[g.outputs[p.boxes_output]];
  // decode_head_dense writes one row per anchor of the levels: the reference
  // outputs must have exactly that many, or the comparison below over-reads.
  int64_t A = 0;
  for (const auto& l : p.levels) A += int64_t{l.h} * l.w;
  if (rs.dtype() != DType::kFloat32 || rb.dtype() != DType::kFloat32 || rs.numel() != A * p.num_classes ||
      rb.numel() != A * 4)
    return false;
  std::vector<float> scores(static_cast<size_t>(A * p.num_classes)), boxes(static_cast<size_t>(A * 4));
  detection::HeadSpec spec{p.num_classes, p.reg_max, p.cls_is_logit};
  detection::decode_head_dense(spec, maps.data(), static_cast<int>(maps.size()), scores.data(), boxes.data());
  for (int64_t i = 0; i < A * p.num_classes; ++i)
    if (std::fabs(scores[i] - rs.data<float>()[i]) > 1e-5f) return false;
  for (int64_t i = 0; i < A * 4; ++i)
    if (std::fabs(boxes[i] - rb.data<float>()[i]) > 1e-2f) return false;
  return true;
}

}  // namespace

std::optional<HeadPattern> match_damoyolo_head(const graph::Graph& g) {
  if (g.outputs.size() != 2 || g.inputs.size() != 1) return std::nullopt;
  const graph::ValueInfo* in = g.info(g.inputs[0]);
  const graph::ValueInfo* o0 = g.info(g.outputs[0]);
  const graph::ValueInfo* o1 = g.info(g.outputs[1]);
  if (!in || !o0 || !o1 || !in->fully_known() || !o0->fully_known() || !o1->fully_known()) return std::nullopt;
  if (in->shape.size() != 4 || o0->shape.size() != 3 || o1->shape.size() != 3) return std::nullopt;
  HeadPattern p;
  // Bind by position (the default export's order); boxes must have last dim 4.
  if (o1->shape[2] != 4 || o0->shape[1] != o1->shape[1]) return std::nullopt;
  // Sizes below become ints and divisors: keep them positive and in range.
  if (o0->shape[2] < 1 || o0->shape[2] > INT32_MAX || o0->shape[1] < 1) return std::nullopt;
  p.num_classes = static_cast<int>(o0->shape[2]);
  const int64_t A = o0->shape[1];

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
  std::map<std::pair<int64_t, int64_t>, HeadPattern::Level> by_size;
  int reg_ch = -1;
  for (const auto& v : frontier) {
    const graph::ValueInfo* vi = g.info(v);
    if (!vi || !vi->fully_known() || vi->shape.size() != 4) return std::nullopt;
    const int64_t ch = vi->shape[1], h = vi->shape[2], w = vi->shape[3];
    if (h < 1 || w < 1 || h > INT32_MAX || w > INT32_MAX || ch > INT32_MAX) return std::nullopt;
    auto& lv = by_size[{h, w}];
    lv.h = static_cast<int>(h);
    lv.w = static_cast<int>(w);
    if (ch == p.num_classes && lv.cls.empty()) {
      lv.cls = v;
      p.cls_is_logit = !produced_by(v, "Sigmoid");
    } else if (ch % 4 == 0 && ch != p.num_classes && lv.reg.empty() && (reg_ch < 0 || reg_ch == ch)) {
      lv.reg = v;
      reg_ch = static_cast<int>(ch);
    } else {
      return std::nullopt;
    }
  }
  if (by_size.empty() || reg_ch < 4) return std::nullopt;
  p.reg_max = reg_ch / 4 - 1;
  int64_t anchors = 0;
  for (auto& [hw, lv] : by_size) {
    if (lv.cls.empty() || lv.reg.empty()) return std::nullopt;
    if (in->shape[2] % lv.h || in->shape[3] % lv.w) return std::nullopt;
    lv.stride = static_cast<int>(in->shape[2] / lv.h);
    if (lv.stride != in->shape[3] / lv.w) return std::nullopt;
    anchors += int64_t{lv.h} * lv.w;
    p.levels.push_back(lv);
  }
  if (anchors != A) return std::nullopt;
  std::sort(p.levels.begin(), p.levels.end(), [](const auto& a, const auto& b) { return a.stride < b.stride; });
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
