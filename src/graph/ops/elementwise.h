// Shape rules of the elementwise operators (the numpy-broadcasting binary
// ops, the pointwise activations, Clip and Cast): their schemas, and the
// checks their reference kernels (src/kernels/reference/elementwise.cc) repeat
// on concrete tensors.
#pragma once

#include <string>
#include <vector>

#include "graph/ops/op_util.h"

namespace damoyolo::graph::ops {

// The broadcast of two inputs, or an unknown shape while either is unknown.
ValueInfo broadcast_info(const OpContext& ctx, const InferInput& a, const InferInput& b, DType out_dtype);

enum class Arith { kAdd, kSub, kMul, kDiv };

const char* arith_name(Arith k);

// Both inputs of one numeric dtype (the binary arithmetic ops).
void check_same_numeric(const OpContext& ctx, DType a, DType b);

// The dtypes a unary op accepts.
enum class DTypeSet { kFloat, kSigned, kNumeric };

bool dtype_in(DTypeSet d, DType dt);

// What Cast converts between: bool, the two 16-bit floats and the numeric types.
bool castable(DType dt);

}  // namespace damoyolo::graph::ops
