// Helpers every operator's shape rules use (ops/*.cc), and the reference
// kernels too (they check the same things on concrete tensors): errors that
// name the node, broadcasting, axes, the ValueInfo shortcuts, dtype classes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/ops/op_schema.h"

namespace damoyolo::graph::ops {

[[noreturn]] void fail(const OpContext& ctx, ErrorCode code, const std::string& what);
// Numpy-style broadcast of two shapes; throws naming the node on mismatch.
Shape broadcast_shapes(const OpContext& ctx, const Shape& a, const Shape& b);
// Reads an integer tensor (int32/int64) as int64 values.
std::vector<int64_t> to_int64_vector(const Tensor& t);
// Reads a float-ish tensor (f32/f64/f16) as floats.
std::vector<float> to_float_vector(const Tensor& t);
// Normalises a possibly negative axis into [0, rank); throws when out of range.
int64_t normalize_axis(const OpContext& ctx, int64_t axis, int64_t rank);

// float, double and the eight integer widths (not bool, 16-bit floats, strings).
bool is_numeric(DType dt);
inline bool is_float(DType dt) { return dt == DType::kFloat32 || dt == DType::kFloat64; }

inline ValueInfo info_of(DType dt, Shape shape) {
  ValueInfo v;
  v.dtype = dt;
  v.shape = std::move(shape);
  v.has_shape = true;
  return v;
}

inline ValueInfo info_unknown_shape(DType dt) {
  ValueInfo v;
  v.dtype = dt;
  v.has_shape = false;
  return v;
}

inline bool known(const InferInput& in) { return in.present && in.info.has_shape; }

inline bool all_dims_known(const Shape& s) {
  for (int64_t d : s)
    if (d < 0) return false;
  return true;
}

// Input i of a node, or nullptr when absent/omitted.
inline const InferInput* opt_input(const std::vector<InferInput>& in, size_t i) {
  return i < in.size() && in[i].present ? &in[i] : nullptr;
}

inline void require_inputs(const OpContext& ctx, size_t got, size_t min_count) {
  if (got < min_count)
    fail(ctx, ErrorCode::kInvalidArgument,
         "expects at least " + std::to_string(min_count) + " inputs, got " + std::to_string(got));
}

}  // namespace damoyolo::graph::ops
