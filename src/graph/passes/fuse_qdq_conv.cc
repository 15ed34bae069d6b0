// fuse_qdq_conv: a quantised model's convolutions → INT8 convolutions.
//
//   xq = QuantizeLinear(x, xs, xz)           (or any producer of a uint8 value)
//   xd = DequantizeLinear(xq, xs, xz)
//   W  = <folded DequantizeLinear(Wq int8, ws[O], 0)>
//   y  = Conv|FusedConv(xd, W, B){...}
//   yq = QuantizeLinear(y, ys, yz)           (optional: y's only reader)
//        ─────────→
//   yq = com.damoyolo.FusedConv(xq, W, B){..., x_scale = xs, x_zero_point = xz,
//                                          y_scale = ys, y_zero_point = yz,
//                                          y_dtype = "uint8" | "int8"}
//
// The convolution then reads the uint8 tensor itself and, when the next
// QuantizeLinear was absorbed, writes uint8: int8 flows from conv to conv
// with no float tensor in between. The weights keep their folded float form
// in the graph (what the reference kernel computes with); the lowering
// (kernels/dnnl/lower_conv.cc) takes the file's int8 weights and per-channel
// scales from Graph::dequantized, so nothing is requantised.
//
// Taken only when the arithmetic is exactly oneDNN's INT8 convolution:
//   * the activation: per-tensor scale (a positive finite scalar) and zero
//     point (a scalar), uint8 or int8;
//   * the weights: int8, symmetric (zero points all 0), one scale per output
//     channel (axis 0) or one for all;
//   * the output's QuantizeLinear: per-tensor, uint8 or int8, and only when
//     the conv has no residual sum (the sum is added in float, after which
//     the QuantizeLinear runs as its own step).
// Anything else stays as it was (float convolution over the dequantised
// values, the QuantizeLinear/DequantizeLinear as their own steps).
//
// The reference kernel of such a FusedConv (kernels/reference/fused_ops.cc)
// dequantises its input and quantises its output exactly as the two nodes it
// absorbed would: the pass does not change what the graph computes.
#include <cmath>

#include "graph/passes/fusion.h"

namespace damoyolo::graph {

namespace {

bool is_int8_type(DType t) { return t == DType::kUInt8 || t == DType::kInt8; }

// A per-tensor (scale, zero point) of a Q/DQ node: inputs 1 and 2.
struct TensorQuant {
  float scale = 1.f;
  int64_t zero_point = 0;
};
std::optional<TensorQuant> per_tensor(const Graph& g, const Node& n, DType int_type) {
  if (n.inputs.size() < 2) return std::nullopt;
  const auto s = fusion::scalar_constant(g, n.input(1));
  if (!s || !(*s > 0.f) || !std::isfinite(*s)) return std::nullopt;
  TensorQuant q{*s, 0};
  if (!n.input(2).empty()) {
    const Tensor* z = g.constant(n.input(2));
    if (!z || z->numel() != 1 || z->dtype() != int_type) return std::nullopt;
    q.zero_point = int_type == DType::kUInt8 ? z->data<uint8_t>()[0] : z->data<int8_t>()[0];
  } else if (int_type != DType::kUInt8) {
    return std::nullopt;  // an absent zero point makes the output uint8
  }
  return q;
}

// The folded weights came from int8, symmetric, per output channel.
bool int8_weights(const Graph& g, const std::string& w) {
  auto it = g.dequantized.find(w);
  if (it == g.dequantized.end()) return false;
  const QuantizedConstant& q = it->second;
  if (q.data.dtype() != DType::kInt8 || q.data.rank() != 4 || q.scale.dtype() != DType::kFloat32) return false;
  const int64_t o = q.data.dim(0);
  if (q.scale.numel() != 1 && !(q.scale.numel() == o && q.axis == 0)) return false;
  for (int64_t i = 0; i < q.scale.numel(); ++i) {
    const float s = q.scale.data<float>()[i];
    if (!(s > 0.f) || !std::isfinite(s)) return false;
  }
  if (q.zero_point.defined()) {
    if (q.zero_point.dtype() != DType::kInt8) return false;
    for (int64_t i = 0; i < q.zero_point.numel(); ++i)
      if (q.zero_point.data<int8_t>()[i] != 0) return false;
  }
  return true;
}

bool has_sum(const Node& n) {
  auto it = n.attrs.find("post_ops");
  if (it == n.attrs.end()) return false;
  for (const auto& p : it->second.strings)
    if (p == "sum") return true;
  return false;
}

}  // namespace

int fuse_qdq_conv(Graph& g) {
  const auto consumers = g.consumers();
  const auto producers = g.producers();
  std::unordered_map<size_t, Node> replace;
  std::vector<bool> remove(g.nodes.size(), false);
  // How many readers of each DequantizeLinear output were rewritten: when
  // all were, the DequantizeLinear goes too.
  std::unordered_map<size_t, size_t> dq_taken;
  int rewrites = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& conv = g.nodes[i];
    const bool fused = conv.op_type == "FusedConv" && conv.domain == kDamoYoloDomain;
    if (!fused && !(conv.op_type == "Conv" && conv.domain.empty())) continue;
    if (conv.outputs.size() != 1 || conv.has_attr("x_scale")) continue;
    auto p = producers.find(conv.input(0));
    if (p == producers.end()) continue;
    const Node& dq = g.nodes[p->second];
    if (dq.op_type != "DequantizeLinear" || !dq.domain.empty()) continue;
    const ValueInfo* xi = g.info(dq.input(0));
    if (!xi || !is_int8_type(xi->dtype)) continue;
    const auto xq = per_tensor(g, dq, xi->dtype);
    if (!xq || !int8_weights(g, conv.input(1))) continue;
    if (!conv.input(2).empty()) {
      const Tensor* b = g.constant(conv.input(2));
      if (!b || b->dtype() != DType::kFloat32) continue;
    }

    Node f = conv;
    if (!fused) {
      f.op_type = "FusedConv";
      f.domain = kDamoYoloDomain;
      f.attrs["onnx_op"] = fusion::string_attr("Conv");
    }
    f.inputs[0] = dq.input(0);
    f.attrs["x_scale"] = fusion::float_attr(xq->scale);
    f.attrs["x_zero_point"] = fusion::int_attr(xq->zero_point);
    std::vector<std::string> names;
    if (++dq_taken[p->second] == consumers.at(conv.input(0)).size()) {
      remove[p->second] = true;  // every reader is now INT8: the float tensor is never made
      names.push_back(dq.name);
    }

    // The QuantizeLinear after it, when the conv's output has no other use.
    if (!has_sum(conv)) {
      if (auto qi = fusion::sole_consumer(g, consumers, conv.outputs[0])) {
        const Node& q = g.nodes[*qi];
        const ValueInfo* yi = q.outputs.empty() ? nullptr : g.info(q.outputs[0]);
        if (q.op_type == "QuantizeLinear" && q.domain.empty() && q.outputs.size() == 1 && yi &&
            is_int8_type(yi->dtype)) {
          if (const auto yq = per_tensor(g, q, yi->dtype)) {
            f.outputs[0] = q.outputs[0];
            f.attrs["y_scale"] = fusion::float_attr(yq->scale);
            f.attrs["y_zero_point"] = fusion::int_attr(yq->zero_point);
            f.attrs["y_dtype"] = fusion::string_attr(yi->dtype == DType::kInt8 ? "int8" : "uint8");
            remove[*qi] = true;
            names.push_back(q.name);
          }
        }
      }
    }
    if (!names.empty()) fusion::add_fused_names(f, names);
    replace[i] = std::move(f);
    ++rewrites;
  }
  if (rewrites) fusion::rewrite(g, replace, remove);
  return rewrites;
}

}  // namespace damoyolo::graph
