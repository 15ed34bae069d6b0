// fuse_conv_activation: a convolution and the chain after it → one node.
//
//   y0 = Conv(x, W, B)
//   y1 = Mul(y0, c)          (c a scalar constant; optional, first only)
//   y2 = Relu|Sigmoid|Silu(y1)   (any number)
//        ─────────→
//   y2 = com.damoyolo.FusedConv(x, W, B){scale = c, post_ops = [relu|logistic|swish ...]}
//
// Each link's value must have that one consumer and not be a graph output.
// The optimised engine folds `scale` into the packed weights and bias and
// runs the activations as oneDNN eltwise post-ops of the convolution
// (kernels/dnnl/lower_conv.cc). Only 2-D convolutions with constant float32
// weights are taken (what oneDNN runs); others stay as they are.
#include "graph/passes/fusion.h"

namespace damoyolo::graph {


int fuse_conv_activation(Graph& g) {
  const auto consumers = g.consumers();
  std::unordered_map<size_t, Node> replace;
  std::vector<bool> remove(g.nodes.size(), false);
  int rewrites = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& conv = g.nodes[i];
    if (conv.op_type != "Conv" || !conv.domain.empty() || conv.outputs.size() != 1) continue;
    const Tensor* w = g.constant(conv.input(1));
    if (!w || w->rank() != 4 || w->dtype() != DType::kFloat32) continue;
    std::string cur = conv.outputs[0];
    float scale = 1.f;
    std::vector<std::string> posts, names;
    std::vector<size_t> absorbed;
    while (true) {
      auto ci = fusion::sole_consumer(g, consumers, cur);
      if (!ci || remove[*ci]) break;
      const Node& c = g.nodes[*ci];
      if (posts.empty() && absorbed.empty() && c.op_type == "Mul" && c.domain.empty() && c.inputs.size() == 2) {
        const std::string& other = c.input(0) == cur ? c.input(1) : c.input(0);
        if (auto s = fusion::scalar_constant(g, other)) {
          scale *= *s;
        } else {
          break;
        }
      } else if (const char* act = fusion::activation_post_op(c); *act && c.inputs.size() == 1) {
        posts.push_back(act);
      } else {
        break;
      }
      absorbed.push_back(*ci);
      fusion::append_names(names, c);
      cur = c.outputs[0];
    }
    if (absorbed.empty()) continue;
    Node f = conv;
    f.op_type = "FusedConv";
    f.domain = kDamoYoloDomain;
    f.outputs = {cur};
    f.attrs["onnx_op"] = fusion::string_attr("Conv");
    if (scale != 1.f) f.attrs["scale"] = fusion::float_attr(scale);
    Attribute p;
    p.kind = Attribute::Kind::kStrings;
    p.strings = posts;
    f.attrs["post_ops"] = p;
    fusion::add_fused_names(f, names);
    replace[i] = std::move(f);
    for (size_t a : absorbed) remove[a] = true;
    ++rewrites;
  }
  if (rewrites) fusion::rewrite(g, replace, remove);
  return rewrites;
}

}  // namespace damoyolo::graph
