// fuse_conv_residual: a residual Add after a convolution → the conv's sum.
//
//   y = Conv|FusedConv(x, W, B){post_ops = P}
//   z = Add(y, r)                 (r: same shape, computed before the conv)
//   u = Relu|Sigmoid|Silu(z)      (any number; only with absorb_activations)
//        ─────────→
//   u = com.damoyolo.FusedConv(x, W, B, r){post_ops = P + [sum] + [relu|logistic|swish ...]}
//
// y must feed only the Add and not be a graph output; r must not be a
// constant and must exist at the conv's place in the node order (a graph
// input or produced by an earlier node), which keeps the order topological.
// The optimised engine adds r as a oneDNN sum post-op into r's own buffer when
// r dies there, else as a binary post-op, or — where that would push oneDNN
// off its fast convolution — as a separate binary step (lower_conv.cc).
// `residual_node` records where in `fused_nodes` the Add is, so the plan can
// attribute the nodes to the steps when the sum is split off.
#include <unordered_map>

#include "graph/passes/fusion.h"

namespace damoyolo::graph {

using fusion::has_sum;

int fuse_conv_residual(Graph& g, bool absorb_activations) {
  const auto consumers = g.consumers();
  const auto producers = g.producers();
  std::unordered_map<size_t, Node> replace;
  std::vector<bool> remove(g.nodes.size(), false);
  int rewrites = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& conv = g.nodes[i];
    const bool plain = conv.op_type == "Conv" && conv.domain.empty();
    const bool fused = conv.op_type == "FusedConv" && conv.domain == kDamoYoloDomain;
    if ((!plain && !fused) || conv.outputs.size() != 1 || (fused && has_sum(conv))) continue;
    const Tensor* w = g.constant(conv.input(1));
    if (!w || w->rank() != 4 || w->dtype() != DType::kFloat32) continue;
    const std::string& y = conv.outputs[0];
    auto ai = fusion::sole_consumer(g, consumers, y);
    if (!ai || remove[*ai]) continue;
    const Node& add = g.nodes[*ai];
    if (add.op_type != "Add" || !add.domain.empty() || add.inputs.size() != 2) continue;
    const std::string& r = add.input(0) == y ? add.input(1) : add.input(0);
    if (r == y || r.empty() || g.is_constant(r)) continue;
    const ValueInfo *ry = g.info(y), *rr = g.info(r);
    if (!ry || !rr || !ry->fully_known() || !rr->fully_known() || ry->shape != rr->shape) continue;
    if (auto p = producers.find(r); p != producers.end() && p->second >= i) continue;
    std::vector<std::string> posts, names = {add.name};
    std::vector<size_t> absorbed = {*ai};
    std::string cur = add.outputs[0];
    while (absorb_activations) {
      auto ci = fusion::sole_consumer(g, consumers, cur);
      if (!ci || remove[*ci]) break;
      const Node& c = g.nodes[*ci];
      const char* act = fusion::activation_post_op(c);
      if (!*act || c.inputs.size() != 1) break;
      posts.push_back(act);
      absorbed.push_back(*ci);
      fusion::append_names(names, c);
      cur = c.outputs[0];
    }
    Node f = conv;
    if (plain) {
      f.op_type = "FusedConv";
      f.domain = kDamoYoloDomain;
      f.attrs["onnx_op"] = fusion::string_attr("Conv");
    }
    f.inputs.resize(3);  // X, W, B ("" when absent)
    f.inputs.push_back(r);
    f.outputs = {cur};
    Attribute& p = f.attrs["post_ops"];
    p.kind = Attribute::Kind::kStrings;
    p.strings.push_back("sum");
    p.strings.insert(p.strings.end(), posts.begin(), posts.end());
    const auto before = f.attrs.count("fused_nodes") ? f.attrs["fused_nodes"].strings.size() : 0;
    f.attrs["residual_node"] = fusion::int_attr(static_cast<int64_t>(before));
    fusion::add_fused_names(f, names);
    replace[i] = std::move(f);
    for (size_t a : absorbed) remove[a] = true;
    ++rewrites;
  }
  if (rewrites) fusion::rewrite(g, replace, remove);
  return rewrites;
}

}  // namespace damoyolo::graph
