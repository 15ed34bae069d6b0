// fuse_silu: SiLU as exported (x · sigmoid(x)) → one op.
//
//   s = Sigmoid(x)                          y = com.damoyolo.Silu(x)
//   y = Mul(x, s)          ─────────→       (at the Sigmoid's place)
//
// when s feeds only that Mul and is not a graph output. x may have other
// consumers. The optimised engine runs Silu as oneDNN's eltwise_swish, and a
// conv chain can absorb it as a swish post-op (fuse_conv_activation.cc).
#include "graph/passes/fusion.h"

namespace damoyolo::graph {

int fuse_silu(Graph& g) {
  const auto consumers = g.consumers();
  std::unordered_map<size_t, Node> replace;
  std::vector<bool> remove(g.nodes.size(), false);
  int rewrites = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& s = g.nodes[i];
    if (s.op_type != "Sigmoid" || !s.domain.empty() || s.inputs.size() != 1 || s.outputs.size() != 1) continue;
    const std::string& x = s.input(0);
    auto mi = fusion::sole_consumer(g, consumers, s.outputs[0]);
    if (!mi || remove[*mi]) continue;
    const Node& m = g.nodes[*mi];
    if (m.op_type != "Mul" || !m.domain.empty() || m.inputs.size() != 2) continue;
    const bool pair = (m.input(0) == x && m.input(1) == s.outputs[0]) || (m.input(1) == x && m.input(0) == s.outputs[0]);
    if (!pair) continue;
    Node silu;
    silu.name = s.name;
    silu.op_type = "Silu";
    silu.domain = kDamoYoloDomain;
    silu.inputs = {x};
    silu.outputs = m.outputs;
    silu.attrs["onnx_op"] = fusion::string_attr("Sigmoid");
    fusion::add_fused_names(silu, {m.name});
    replace[i] = std::move(silu);
    remove[*mi] = true;
    ++rewrites;
  }
  if (rewrites) fusion::rewrite(g, replace, remove);
  return rewrites;
}

}  // namespace damoyolo::graph
