// Schemas of QuantizeLinear and DequantizeLinear (ai.onnx 10 and 13; the
// next change, opset 19, adds float8 types and `saturate`, beyond the
// opsets this project declares). Rules shared with the kernels: quantize.h.
#include "graph/ops/quantize.h"

#include <cmath>
#include <string>

#include "graph/ops/op_util.h"

namespace damoyolo::graph::ops {
namespace {

std::string dt(DType d) { return dtype_name(d); }

bool one_element(const Shape& s) { return s.size() <= 1 && shape_numel(s) == 1; }

}  // namespace

QuantAxis check_quant_params(const OpContext& ctx, bool quantize, DType x_dtype, const Shape& x_shape,
                             bool x_shape_known, DType scale_dtype, const Shape& scale_shape,
                             const DType* zero_point_dtype, const Shape* zero_point_shape) {
  // The types opsets 10 and 13 allow; anything else is a malformed node, not
  // an unsupported feature (the spec of these opsets has no other).
  if (quantize) {
    if (x_dtype != DType::kFloat32 && x_dtype != DType::kInt32)
      fail(ctx, ErrorCode::kInvalidArgument, "x must be float32 or int32, got " + dt(x_dtype));
    if (zero_point_dtype && *zero_point_dtype != DType::kUInt8 && *zero_point_dtype != DType::kInt8)
      fail(ctx, ErrorCode::kInvalidArgument, "y_zero_point must be uint8 or int8, got " + dt(*zero_point_dtype));
  } else {
    if (x_dtype != DType::kUInt8 && x_dtype != DType::kInt8 && x_dtype != DType::kInt32)
      fail(ctx, ErrorCode::kInvalidArgument, "x must be uint8, int8 or int32, got " + dt(x_dtype));
    if (zero_point_dtype && *zero_point_dtype != x_dtype)
      fail(ctx, ErrorCode::kInvalidArgument,
           "x_zero_point (" + dt(*zero_point_dtype) + ") must have x's type (" + dt(x_dtype) + ")");
  }
  const char* scale_name = quantize ? "y_scale" : "x_scale";
  const char* zp_name = quantize ? "y_zero_point" : "x_zero_point";
  if (scale_dtype != DType::kFloat32)
    fail(ctx, ErrorCode::kInvalidArgument, std::string(scale_name) + " must be float32, got " + dt(scale_dtype));
  if (scale_shape.size() > 1)
    fail(ctx, ErrorCode::kInvalidArgument,
         std::string(scale_name) + " must be a scalar or 1-D, got shape " + shape_to_string(scale_shape));
  if (zero_point_shape) {
    // Same shape, or both a single element ([] and [1] alike: both per-tensor).
    const bool same = *zero_point_shape == scale_shape || (one_element(*zero_point_shape) && one_element(scale_shape));
    if (!same)
      fail(ctx, ErrorCode::kInvalidArgument,
           std::string(zp_name) + " shape " + shape_to_string(*zero_point_shape) + " differs from " + scale_name +
               " shape " + shape_to_string(scale_shape));
  }
  QuantAxis qa;
  if (one_element(scale_shape)) return qa;  // per-tensor; `axis` is ignored
  if (shape_numel(scale_shape) == 0)
    fail(ctx, ErrorCode::kInvalidArgument, std::string(scale_name) + " is empty");
  // Per-axis scales came with opset 13, but ONNX Runtime's own quantiser
  // (quantize_static, per_channel=True) writes them into opset 10-12 models
  // unchanged and ONNX Runtime runs them: such files are what people have,
  // so they are read with opset 13's meaning (`axis`, default 1).
  qa.per_axis = true;
  qa.channels = scale_shape[0];
  if (!x_shape_known) return qa;
  const int64_t rank = static_cast<int64_t>(x_shape.size());
  qa.axis = normalize_axis(ctx, ctx.node.attr_i("axis", 1), rank);
  const int64_t d = x_shape[static_cast<size_t>(qa.axis)];
  if (d >= 0 && d != qa.channels)
    fail(ctx, ErrorCode::kInvalidArgument,
         std::string(scale_name) + " has " + std::to_string(qa.channels) + " entries but x has " +
             std::to_string(d) + " along axis " + std::to_string(qa.axis));
  return qa;
}

void check_scale_values(const OpContext& ctx, bool quantize, const std::vector<float>& scale) {
  for (size_t i = 0; i < scale.size(); ++i) {
    const float s = scale[i];
    // Quantize divides by the scale: 0 would give ±inf or NaN for every x.
    // Dequantize multiplies: only a non-finite scale poisons the output.
    if (!std::isfinite(s) || (quantize && s == 0.0f))
      fail(ctx, ErrorCode::kInvalidArgument,
           std::string(quantize ? "y_scale" : "x_scale") + "[" + std::to_string(i) + "] is " + std::to_string(s) +
               (quantize ? "; the scale must be finite and non-zero" : "; the scale must be finite"));
  }
}

void check_int32_zero_point(const OpContext& ctx, const Tensor& zero_point) {
  const int32_t* p = zero_point.data<int32_t>();
  for (int64_t i = 0; i < zero_point.numel(); ++i)
    if (p[i] != 0)
      fail(ctx, ErrorCode::kInvalidArgument,
           "x_zero_point[" + std::to_string(i) + "] is " + std::to_string(p[i]) +
               "; an int32 DequantizeLinear has no zero point (it must be 0)");
}

namespace {

// Shape rules and the load-time value checks (constant scale/zero point).
std::vector<ValueInfo> infer_qdq(const OpContext& ctx, const std::vector<InferInput>& in, bool quantize) {
  require_inputs(ctx, in.size(), 2);
  if (!in[0].present || !in[1].present)
    fail(ctx, ErrorCode::kInvalidArgument, "x and its scale are required inputs");
  const InferInput* zp = opt_input(in, 2);
  // Without known shapes of scale (and zero point) nothing can be checked yet;
  // the kernel checks at run time.
  if (known(in[1]) && (!zp || known(*zp))) {
    check_quant_params(ctx, quantize, in[0].info.dtype, in[0].info.shape, known(in[0]), in[1].info.dtype,
                       in[1].info.shape, zp ? &zp->info.dtype : nullptr, zp ? &zp->info.shape : nullptr);
    if (in[1].value) check_scale_values(ctx, quantize, to_float_vector(*in[1].value));
    if (!quantize && zp && zp->value && zp->info.dtype == DType::kInt32) check_int32_zero_point(ctx, *zp->value);
  }
  const DType out = quantize ? (zp ? zp->info.dtype : DType::kUInt8) : DType::kFloat32;
  ValueInfo v = in[0].info;
  v.dtype = out;
  return {v};
}

OpSchema qdq_schema(const char* name, bool quantize) {
  OpSchema s;
  s.op_type = name;
  s.min_opset = 10;
  s.max_opset = 17;
  s.infer = [quantize](const OpContext& ctx, const std::vector<InferInput>& in) {
    return infer_qdq(ctx, in, quantize);
  };
  return s;
}

}  // namespace
}  // namespace damoyolo::graph::ops

namespace damoyolo::graph {

void register_quantize_schemas() {
  register_schema(ops::qdq_schema("QuantizeLinear", true));
  register_schema(ops::qdq_schema("DequantizeLinear", false));
}

}  // namespace damoyolo::graph
