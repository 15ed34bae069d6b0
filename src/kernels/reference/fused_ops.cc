// Reference kernels for the ops the fusion passes create (domain
// com.damoyolo, graph/passes/fusion.h; their schemas: graph/ops/fused_ops.cc). Each is defined by the ONNX nodes it
// replaces and computes exactly what they compute, in the same order, with the
// same reference kernels — so a fused graph runs on the reference engine (the
// passes' off/on tests) and a fused node that oneDNN cannot take falls back to
// its reference kernel alone.
//   FusedConv(X, W, [B], [R]){scale, post_ops}  Conv, ·scale, then post_ops in
//                                               order: relu | logistic | swish | sum (+R);
//                                               with x_scale/x_zero_point X is dequantised
//                                               first, with y_scale/y_zero_point the result
//                                               is quantised last (INT8)
//   Silu(X)                                     X · Sigmoid(X)
//   DamoYoloHead(cls0, reg0, cls1, reg1, ...){num_classes, reg_max, strides, cls_is_logit}
//                                               → scores [N,A,C], boxes [N,A,4]
#include <cmath>

#include "kernels/head/head_decode.h"
#include "kernels/reference/kernel_util.h"
#include "kernels/reference/registry.h"
#include "model/head_layout.h"

namespace damoyolo::kernels::ref {
namespace {

using graph::kDamoYoloDomain;

// What DequantizeLinear computes (kernels/reference/quantize.cc), per tensor:
// float(x - zero_point) * scale.
Tensor dequantize_input(const OpContext& ctx, const Tensor& x) {
  if (x.dtype() != DType::kUInt8 && x.dtype() != DType::kInt8)
    fail(ctx, ErrorCode::kInvalidArgument, "x_scale needs a uint8 or int8 input");
  const float s = ctx.node.attr_f("x_scale", 1.f);
  const int64_t zp = ctx.node.attr_i("x_zero_point", 0);
  Tensor y(DType::kFloat32, x.shape());
  float* p = y.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t v = x.dtype() == DType::kUInt8 ? x.data<uint8_t>()[i] : x.data<int8_t>()[i];
    p[i] = static_cast<float>(v - zp) * s;
  }
  return y;
}

// What QuantizeLinear computes, per tensor: saturate(round_half_even(y /
// scale) + zero_point).
Tensor quantize_output(const OpContext& ctx, const Tensor& y) {
  const float s = ctx.node.attr_f("y_scale", 1.f);
  const double zp = static_cast<double>(ctx.node.attr_i("y_zero_point", 0));
  const bool s8 = ctx.node.attr_s("y_dtype", "uint8") == "int8";
  const double lo = s8 ? -128 : 0, hi = s8 ? 127 : 255;
  Tensor q(s8 ? DType::kInt8 : DType::kUInt8, y.shape());
  const float* p = y.data<float>();
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double d = static_cast<double>(p[i] / s);
    double r = (std::isnan(d) ? 0.0 : std::nearbyint(d)) + zp;
    r = r < lo ? lo : (r > hi ? hi : r);
    if (s8) q.data<int8_t>()[i] = static_cast<int8_t>(r);
    else q.data<uint8_t>()[i] = static_cast<uint8_t>(r);
  }
  return q;
}

OpKernel fused_conv_kernel() {
  OpKernel k;
  k.op_type = "FusedConv";
  k.domain = kDamoYoloDomain;
  k.max_opset = 1;  // version 1 of the domain, as its schema
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    const Node c = graph::fused_conv_as_conv(ctx.node);
    std::vector<Tensor> conv_in(in.begin(), in.begin() + std::min<size_t>(3, in.size()));
    // INT8 (graph/passes/fuse_qdq_conv.cc): the DequantizeLinear it absorbed.
    if (ctx.node.has_attr("x_scale") && !conv_in.empty()) conv_in[0] = dequantize_input(ctx, conv_in[0]);
    std::vector<Tensor> out = kernel_for(c, graph::kFusedConvOnnxOpset).compute(OpContext{c, graph::kFusedConvOnnxOpset}, conv_in);
    Tensor& y = out[0];
    if (y.dtype() != DType::kFloat32) fail(ctx, ErrorCode::kUnsupported, "FusedConv computes float32 only");
    float* p = y.data<float>();
    const int64_t count = y.numel();
    const float scale = ctx.node.attr_f("scale", 1.f);
    if (scale != 1.f)
      for (int64_t i = 0; i < count; ++i) p[i] *= scale;
    std::vector<std::string> posts;
    if (auto it = ctx.node.attrs.find("post_ops"); it != ctx.node.attrs.end()) posts = it->second.strings;
    for (const auto& op : posts) {
      if (op == "relu") {
        for (int64_t i = 0; i < count; ++i) p[i] = p[i] > 0.f ? p[i] : 0.f;
      } else if (op == "logistic") {
        for (int64_t i = 0; i < count; ++i) p[i] = util::logistic(p[i]);
      } else if (op == "swish") {
        for (int64_t i = 0; i < count; ++i) p[i] = p[i] * util::logistic(p[i]);
      } else if (op == "sum") {
        if (in.size() < 4 || !in[3].defined() || in[3].shape() != y.shape() || in[3].dtype() != DType::kFloat32)
          fail(ctx, ErrorCode::kInvalidArgument, "the residual input must be float32 of the output's shape");
        const float* r = in[3].data<float>();
        for (int64_t i = 0; i < count; ++i) p[i] += r[i];
      } else {
        fail(ctx, ErrorCode::kUnsupported, "unknown post-op '" + op + "'");
      }
    }
    // INT8: the QuantizeLinear it absorbed.
    if (ctx.node.has_attr("y_scale")) out[0] = quantize_output(ctx, y);
    return out;
  };
  return k;
}

OpKernel silu_kernel() {
  OpKernel k;
  k.op_type = "Silu";
  k.domain = kDamoYoloDomain;
  k.max_opset = 1;  // version 1 of the domain, as its schema
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    if (in.size() != 1 || in[0].dtype() != DType::kFloat32)
      fail(ctx, ErrorCode::kUnsupported, "Silu computes float32 only");
    Tensor y(DType::kFloat32, in[0].shape());
    const float* x = in[0].data<float>();
    float* p = y.data<float>();
    for (int64_t i = 0; i < y.numel(); ++i) p[i] = x[i] * util::logistic(x[i]);
    return std::vector<Tensor>{y};
  };
  return k;
}

struct HeadAttrs {
  int64_t num_classes, reg_max;
  std::vector<int64_t> strides;
};

HeadAttrs head_attrs(const OpContext& ctx, size_t inputs) {
  HeadAttrs h{ctx.node.attr_i("num_classes", 0), ctx.node.attr_i("reg_max", -1), ctx.node.attr_ints("strides")};
  if (h.num_classes < 1 || h.reg_max < 0 || h.strides.empty() || inputs != 2 * h.strides.size())
    fail(ctx, ErrorCode::kInvalidArgument, "malformed DamoYoloHead (classes, reg_max, strides, inputs)");
  return h;
}

OpKernel head_kernel() {
  OpKernel k;
  k.op_type = "DamoYoloHead";
  k.domain = kDamoYoloDomain;
  k.max_opset = 1;  // version 1 of the domain, as its schema
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    const HeadAttrs h = head_attrs(ctx, in.size());
    const size_t L = h.strides.size();
    std::vector<model::HeadLevel> levels(L);
    int64_t batch = -1;
    for (size_t l = 0; l < L; ++l) {
      const Tensor &c = in[2 * l], &r = in[2 * l + 1];
      if (c.dtype() != DType::kFloat32 || r.dtype() != DType::kFloat32 || c.rank() != 4 || r.rank() != 4 ||
          c.dim(1) != h.num_classes || r.dim(1) != 4 * (h.reg_max + 1) || c.dim(2) != r.dim(2) ||
          c.dim(3) != r.dim(3) || c.dim(0) != r.dim(0) || (batch >= 0 && c.dim(0) != batch))
        fail(ctx, ErrorCode::kInvalidArgument, "level " + std::to_string(l) + " maps " +
                                                   shape_to_string(c.shape()) + ", " + shape_to_string(r.shape()) +
                                                   " do not match the head");
      batch = c.dim(0);
      levels[l].stride = static_cast<int>(h.strides[l]);
      levels[l].h = static_cast<int>(c.dim(2));
      levels[l].w = static_cast<int>(c.dim(3));
    }
    const int64_t A = model::assign_anchor_offsets(levels);
    const int64_t C = h.num_classes;
    Tensor scores(DType::kFloat32, {batch, A, C}), boxes(DType::kFloat32, {batch, A, 4});
    const head::HeadSpec spec{static_cast<int>(C), static_cast<int>(h.reg_max),
                                   ctx.node.attr_i("cls_is_logit", 0) != 0};
    std::vector<head::HeadLevelMaps> maps(L);
    for (int64_t n = 0; n < batch; ++n) {
      for (size_t l = 0; l < L; ++l) {
        const int64_t hw = levels[l].anchors();
        // NCHW: anchor stride 1, channel stride h·w.
        maps[l] = {levels[l].stride, levels[l].h, levels[l].w,
                   in[2 * l].data<float>() + n * C * hw, 1, hw,
                   in[2 * l + 1].data<float>() + n * 4 * (h.reg_max + 1) * hw, 1, hw};
      }
      head::decode_head_dense(spec, maps.data(), static_cast<int>(L), scores.data<float>() + n * A * C,
                                   boxes.data<float>() + n * A * 4);
    }
    return std::vector<Tensor>{scores, boxes};
  };
  return k;
}

}  // namespace

void register_fused_kernels() {
  register_kernel(fused_conv_kernel());
  register_kernel(silu_kernel());
  register_kernel(head_kernel());
}

}  // namespace damoyolo::kernels::ref
