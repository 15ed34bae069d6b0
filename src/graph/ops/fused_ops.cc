// Schemas of the ops the fusion passes create (domain com.damoyolo,
// graph/passes/fusion.h); their reference kernels are in
// kernels/reference/fused_ops.cc.
//   FusedConv(X, W, [B], [R])   the shape of the Conv it started from; uint8
//                               (int8) with y_scale
//   Silu(X)                     X's
//   DamoYoloHead(cls_l, reg_l ...) → scores [N, A, C], boxes [N, A, 4], A = Σ h·w
#include <algorithm>

#include "graph/ops/op_schema.h"
#include "graph/ops/op_util.h"

namespace damoyolo::graph {
namespace {

using ops::fail;

}  // namespace

Node fused_conv_as_conv(const Node& n) {
  Node c;
  c.name = n.name;
  c.op_type = "Conv";
  for (const char* a : {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})
    if (auto it = n.attrs.find(a); it != n.attrs.end()) c.attrs[a] = it->second;
  c.inputs.assign(n.inputs.begin(), n.inputs.begin() + std::min<size_t>(3, n.inputs.size()));
  c.outputs = n.outputs;
  return c;
}

void register_fused_schemas() {
  register_schema({kDamoYoloDomain, "FusedConv", 1, 1,
                   [](const OpContext& ctx, const std::vector<InferInput>& in) {
                     const Node c = fused_conv_as_conv(ctx.node);
                     std::vector<InferInput> conv_in(in.begin(), in.begin() + std::min<size_t>(3, in.size()));
                     // INT8 (graph/passes/fuse_qdq_conv.cc): a quantised input
                     // is dequantised first, the output quantised last.
                     const bool qx = ctx.node.has_attr("x_scale"), qy = ctx.node.has_attr("y_scale");
                     if (qx && !conv_in.empty()) {
                       if (conv_in[0].info.dtype != DType::kUInt8 && conv_in[0].info.dtype != DType::kInt8)
                         fail(ctx, ErrorCode::kInvalidArgument, "x_scale needs a uint8 or int8 input");
                       conv_in[0].info.dtype = DType::kFloat32;
                       conv_in[0].value = nullptr;
                     }
                     auto out = schema_for(c, kFusedConvOnnxOpset).infer(OpContext{c, kFusedConvOnnxOpset}, conv_in);
                     if (qy && !out.empty())
                       out[0].dtype = ctx.node.attr_s("y_dtype", "uint8") == "int8" ? DType::kInt8 : DType::kUInt8;
                     return out;
                   }});
  register_schema({kDamoYoloDomain, "Silu", 1, 1, [](const OpContext& ctx, const std::vector<InferInput>& in) {
                     if (in.size() != 1) fail(ctx, ErrorCode::kInvalidArgument, "Silu takes one input");
                     return std::vector<ValueInfo>{in[0].info};
                   }});
  register_schema({kDamoYoloDomain, "DamoYoloHead", 1, 1,
                   [](const OpContext& ctx, const std::vector<InferInput>& in) {
                     const int64_t classes = ctx.node.attr_i("num_classes", 0);
                     const auto strides = ctx.node.attr_ints("strides");
                     if (classes < 1 || strides.empty() || in.size() != 2 * strides.size())
                       fail(ctx, ErrorCode::kInvalidArgument, "malformed DamoYoloHead (classes, strides, inputs)");
                     int64_t anchors = 0, batch = -1;
                     for (size_t l = 0; l < strides.size(); ++l) {
                       const Shape& s = in[2 * l].info.shape;
                       if (s.size() != 4) fail(ctx, ErrorCode::kInvalidArgument, "level maps must be 4-D");
                       anchors += s[2] * s[3];
                       batch = s[0];
                     }
                     return std::vector<ValueInfo>{{DType::kFloat32, {batch, anchors, classes}, true},
                                                   {DType::kFloat32, {batch, anchors, 4}, true}};
                   }});
}

}  // namespace damoyolo::graph
