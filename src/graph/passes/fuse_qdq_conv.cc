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
// and, first, a QuantizeLinear after a Concat is moved onto the Concat's
// inputs (exact: it is elementwise), so that the convolutions feeding a
// concatenation can absorb it and the concatenation moves uint8:
//
//   yq = QuantizeLinear(Concat(a, b, ...), ys, yz)
//        ─────────→
//   yq = Concat(QuantizeLinear(a, ys, yz), QuantizeLinear(b, ys, yz), ...)
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
#include <algorithm>
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

bool is_graph_output(const Graph& g, const std::string& v) {
  return std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
}

// Q(Concat(a, b, ...)) → Concat(Q(a), Q(b), ...): a per-tensor
// QuantizeLinear is elementwise, so quantising the parts is exactly
// quantising the whole. The concatenation then moves uint8 (a quarter of the
// bytes) and each part's QuantizeLinear can join the convolution that
// produces it (below). Returns the rewrites.
int quantize_concat_parts(Graph& g) {
  const auto consumers = g.consumers();
  std::vector<Node> nodes;
  nodes.reserve(g.nodes.size());
  std::vector<bool> drop(g.nodes.size(), false);
  std::unordered_map<size_t, std::vector<Node>> before;  // concat index → the new Q nodes
  std::unordered_map<size_t, Node> new_concat;
  int rewrites = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& c = g.nodes[i];
    if (c.op_type != "Concat" || !c.domain.empty() || c.outputs.size() != 1) continue;
    auto qi = fusion::sole_consumer(g, consumers, c.outputs[0]);
    if (!qi) continue;
    const Node& q = g.nodes[*qi];
    const ValueInfo* yi = q.outputs.empty() ? nullptr : g.info(q.outputs[0]);
    // (A quantised graph output stays the QuantizeLinear's: only a fallback
    // step writes the caller's integer tensor.)
    if (q.op_type != "QuantizeLinear" || !q.domain.empty() || q.outputs.size() != 1 || !yi ||
        !is_int8_type(yi->dtype) || !per_tensor(g, q, yi->dtype) || is_graph_output(g, q.outputs[0]))
      continue;
    bool ok = !c.inputs.empty();
    for (const auto& in : c.inputs) {
      const ValueInfo* vi = g.info(in);
      if (in.empty() || g.is_constant(in) || !vi || vi->dtype != DType::kFloat32) ok = false;
    }
    if (!ok) continue;
    Node cat = c;
    cat.outputs = {q.outputs[0]};
    for (size_t k = 0; k < c.inputs.size(); ++k) {
      Node part = q;
      part.name = q.name + "/part" + std::to_string(k);
      part.inputs[0] = c.inputs[k];
      part.outputs = {q.outputs[0] + "/part" + std::to_string(k)};
      ValueInfo pi = *g.info(c.inputs[k]);
      pi.dtype = yi->dtype;
      g.values[part.outputs[0]] = pi;
      cat.inputs[k] = part.outputs[0];
      before[i].push_back(std::move(part));
    }
    fusion::add_fused_names(cat, {q.name});
    new_concat[i] = std::move(cat);
    drop[*qi] = true;
    ++rewrites;
  }
  if (!rewrites) return 0;
  std::vector<std::string> gone;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (drop[i]) continue;
    if (auto it = before.find(i); it != before.end()) {
      for (auto& part : it->second) nodes.push_back(std::move(part));
      gone.push_back(g.nodes[i].outputs[0]);  // the float concatenation is never made
      nodes.push_back(std::move(new_concat.at(i)));
      continue;
    }
    nodes.push_back(std::move(g.nodes[i]));
  }
  g.nodes = std::move(nodes);
  for (const auto& v : gone) g.values.erase(v);
  return rewrites;
}

}  // namespace

using fusion::has_sum;

int fuse_qdq_conv(Graph& g) {
  const int concats = quantize_concat_parts(g);
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
    if (++dq_taken[p->second] == consumers.at(conv.input(0)).size() && !is_graph_output(g, conv.input(0))) {
      remove[p->second] = true;  // every reader is now INT8: the float tensor is never made
      names.push_back(dq.name);
    }

    // The QuantizeLinear after it, when the conv's output has no other use.
    if (!has_sum(conv)) {
      if (auto qi = fusion::sole_consumer(g, consumers, conv.outputs[0])) {
        const Node& q = g.nodes[*qi];
        const ValueInfo* yi = q.outputs.empty() ? nullptr : g.info(q.outputs[0]);
        if (q.op_type == "QuantizeLinear" && q.domain.empty() && q.outputs.size() == 1 && yi &&
            is_int8_type(yi->dtype) && !is_graph_output(g, q.outputs[0])) {
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
  return rewrites + concats;
}

}  // namespace damoyolo::graph
