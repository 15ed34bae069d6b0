// QuantizeLinear / DequantizeLinear (ai.onnx opsets 10 and 13): the rules
// their schemas (ops/quantize.cc) and their reference kernels
// (kernels/reference/quantize.cc) both check, so that a malformed node gives
// the same error at load time (constant scale and zero point) as at run time.
//
// What the ONNX spec leaves open and this project decides (docs/engine.md,
// "Quantised (QDQ) models: what runs today"):
//   * a scale of 0, ±inf or NaN in QuantizeLinear, and ±inf or NaN in
//     DequantizeLinear, is kInvalidArgument naming the node. The spec says
//     nothing; ONNX Runtime divides anyway (x/0 → ±inf saturates, 0/0 → NaN is
//     cast with undefined behaviour). A zero scale in DequantizeLinear is
//     accepted: y = 0 is defined, and a quantiser may write it for an
//     all-zero weight channel.
//   * a scale (and zero point) with one element, rank 0 or 1, is per-tensor,
//     whatever `axis` says (ONNX Runtime's IsScalarOr1ElementVector); a longer
//     1-D one is per-axis (opset 13 only) and must have x.shape[axis] entries.
//   * an int32 DequantizeLinear's zero point, when given, must be all zero
//     (the spec: "there's no zero point"; ONNX Runtime refuses others).
//   * a NaN input quantises to the zero point (as 0.0 would); ONNX Runtime's
//     result is undefined there.
#pragma once

#include <cstdint>
#include <vector>

#include "graph/ops/op_schema.h"

namespace damoyolo::graph::ops {

// How a node's scale applies to x, from the shapes alone.
struct QuantAxis {
  bool per_axis = false;
  int64_t axis = 0;      // normalised; meaningful when per_axis
  int64_t channels = 1;  // x.shape[axis] when per_axis, else 1
};

// Checks the scale's and zero point's dtypes and shapes against x (rank and
// dims of x may be partly unknown: -1 dims are not compared) and returns how
// the scale applies. `quantize` selects QuantizeLinear's rules. Throws
// kInvalidArgument naming the node.
QuantAxis check_quant_params(const OpContext& ctx, bool quantize, DType x_dtype, const Shape& x_shape,
                             bool x_shape_known, DType scale_dtype, const Shape& scale_shape,
                             const DType* zero_point_dtype, const Shape* zero_point_shape);

// Checks scale values (see above); throws kInvalidArgument naming the node
// and the first bad entry.
void check_scale_values(const OpContext& ctx, bool quantize, const std::vector<float>& scale);

// Checks an int32 zero point is all zero (DequantizeLinear).
void check_int32_zero_point(const OpContext& ctx, const Tensor& zero_point);

}  // namespace damoyolo::graph::ops
