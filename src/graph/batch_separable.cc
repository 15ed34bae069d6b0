#include "graph/batch_separable.h"

#include <set>

namespace damoyolo::graph {
namespace {

// Ops that compute each output element from the same item of their
// activation inputs (weights, biases, scales are constants).
const std::set<std::string>& per_item_ops() {
  static const std::set<std::string> ops = {
      // element-wise
      "Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "HardSigmoid", "HardSwish", "Silu", "Elu", "Exp", "Neg", "Abs",
      "Sqrt", "Erf", "Softplus", "Identity", "Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "QuantizeLinear",
      "DequantizeLinear",
      // per-image windows and channel mixing
      "Conv", "FusedConv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
      "BatchNormalization", "InstanceNormalization", "LRN", "Resize", "Upsample",
      // the fused DAMO-YOLO decode (graph/passes/fuse_damoyolo_head.cc): per image
      "DamoYoloHead",
      // axis ops, checked below
      "Concat", "Split", "Softmax", "LogSoftmax", "Slice", "Transpose"};
  return ops;
}

int64_t normalized_axis(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

}  // namespace

bool batch_separable(const Graph& g, std::string* why) {
  auto no = [&](const std::string& reason) {
    if (why) *why = reason;
    return false;
  };
  if (g.inputs.empty()) return no("the graph has no input");
  int64_t batch = -1;
  for (const auto& v : g.inputs) {
    const ValueInfo* vi = g.info(v);
    if (!vi || vi->shape.empty() || vi->shape[0] < 1) return no("input '" + v + "' has no known batch axis");
    if (batch >= 0 && vi->shape[0] != batch) return no("the inputs' batch sizes differ");
    batch = vi->shape[0];
  }
  for (const auto& v : g.outputs) {
    const ValueInfo* vi = g.info(v);
    if (!vi || vi->shape.empty() || vi->shape[0] != batch) return no("output '" + v + "' has no batch axis");
  }
  for (const Node& n : g.nodes) {
    if (!per_item_ops().count(n.op_type)) return no(n.describe() + " is not known to act per item");
    const ValueInfo* x = g.info(n.input(0));
    const size_t rank = x ? x->shape.size() : 0;
    // Every activation (non-constant) input and every output keeps the batch axis.
    for (const auto& in : n.inputs) {
      if (in.empty()) continue;
      if (const Tensor* c = g.constant(in)) {
        // A constant of full rank with one row per item would tie items to rows.
        const ValueInfo* y = g.info(n.outputs[0]);
        if (y && c->rank() == y->shape.size() && c->rank() > 0 && c->dim(0) != 1 && batch != 1 &&
            n.op_type != "Conv" && n.op_type != "FusedConv" && n.op_type != "ConvTranspose")
          return no(n.describe() + " reads a constant with a row per item");
        continue;
      }
      const ValueInfo* vi = g.info(in);
      if (!vi || vi->shape.empty() || vi->shape[0] != batch) return no(n.describe() + " reads a value without the batch axis");
    }
    for (const auto& out : n.outputs) {
      const ValueInfo* vi = g.info(out);
      if (out.empty()) continue;
      if (!vi || vi->shape.empty() || vi->shape[0] != batch) return no(n.describe() + " writes a value without the batch axis");
    }
    if (n.op_type == "Concat" || n.op_type == "Split" || n.op_type == "Softmax" || n.op_type == "LogSoftmax") {
      const int64_t def = n.op_type == "Concat" || n.op_type == "Split" ? 0 : 1;
      if (!n.has_attr("axis") && n.op_type == "Concat") return no(n.describe() + " has no axis");
      if (normalized_axis(n.attr_i("axis", def), rank) == 0) return no(n.describe() + " works along the batch axis");
    } else if (n.op_type == "Transpose") {
      const auto perm = n.attr_ints("perm");
      if (perm.empty() || perm[0] != 0) return no(n.describe() + " moves the batch axis");
    } else if (n.op_type == "Slice") {
      // Axes: an attribute before opset 10, the 4th input after; absent means
      // every axis from the first, the batch axis included.
      std::vector<int64_t> axes = n.attr_ints("axes");
      if (!n.input(3).empty()) {
        const Tensor* a = g.constant(n.input(3));
        if (!a) return no(n.describe() + " has axes computed at run time");
        axes.clear();
        for (int64_t i = 0; i < a->numel(); ++i)
          axes.push_back(a->dtype() == DType::kInt32 ? a->data<int32_t>()[i] : a->data<int64_t>()[i]);
      }
      if (axes.empty()) return no(n.describe() + " slices every axis from the batch axis on");
      for (int64_t a : axes)
        if (normalized_axis(a, rank) == 0) return no(n.describe() + " slices the batch axis");
    } else if (n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear") {
      const Tensor* scale = g.constant(n.input(1));
      if (scale && scale->numel() > 1 && normalized_axis(n.attr_i("axis", 1), rank) == 0)
        return no(n.describe() + " has a scale per item");
    }
  }
  return true;
}

}  // namespace damoyolo::graph
