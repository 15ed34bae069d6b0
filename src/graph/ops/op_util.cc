#include "graph/ops/op_util.h"

#include <algorithm>
#include <cstring>

namespace damoyolo::graph::ops {

void fail(const OpContext& ctx, ErrorCode code, const std::string& what) {
  throw Error(code, ctx.node.describe() + ": " + what);
}

Shape broadcast_shapes(const OpContext& ctx, const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da == db || db == 1) out[i] = da;
    else if (da == 1) out[i] = db;
    else if (da < 0 || db < 0) out[i] = -1;
    else fail(ctx, ErrorCode::kInvalidArgument,
              "shapes " + shape_to_string(a) + " and " + shape_to_string(b) + " cannot be broadcast");
  }
  return out;
}

std::vector<int64_t> to_int64_vector(const Tensor& t) {
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  switch (t.dtype()) {
    case DType::kInt64: if (!v.empty()) std::memcpy(v.data(), t.raw(), v.size() * 8); break;
    case DType::kInt32: for (size_t i = 0; i < v.size(); ++i) v[i] = t.data<int32_t>()[i]; break;
    case DType::kUInt8: for (size_t i = 0; i < v.size(); ++i) v[i] = t.data<uint8_t>()[i]; break;
    case DType::kInt8: for (size_t i = 0; i < v.size(); ++i) v[i] = t.data<int8_t>()[i]; break;
    case DType::kBool: for (size_t i = 0; i < v.size(); ++i) v[i] = t.data<uint8_t>()[i]; break;
    default:
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("expected an integer tensor, got ") + dtype_name(t.dtype()));
  }
  return v;
}

std::vector<float> to_float_vector(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  switch (t.dtype()) {
    case DType::kFloat32: if (!v.empty()) std::memcpy(v.data(), t.raw(), v.size() * 4); break;
    case DType::kFloat64: for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(t.data<double>()[i]); break;
    case DType::kInt64: for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(t.data<int64_t>()[i]); break;
    case DType::kInt32: for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(t.data<int32_t>()[i]); break;
    default:
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("expected a float tensor, got ") + dtype_name(t.dtype()));
  }
  return v;
}

int64_t normalize_axis(const OpContext& ctx, int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    fail(ctx, ErrorCode::kInvalidArgument,
         "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return a;
}

bool is_numeric(DType dt) {
  switch (dt) {
    case DType::kFloat32: case DType::kFloat64:
    case DType::kInt8: case DType::kInt16: case DType::kInt32: case DType::kInt64:
    case DType::kUInt8: case DType::kUInt16: case DType::kUInt32: case DType::kUInt64:
      return true;
    default:
      return false;
  }
}

}  // namespace damoyolo::graph::ops
