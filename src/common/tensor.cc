#include "damoyolo/tensor.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "common/checked_size.h"
#include "damoyolo/status.h"

namespace damoyolo {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: case DType::kInt32: case DType::kUInt32: return 4;
    case DType::kUInt8: case DType::kInt8: case DType::kBool: return 1;
    case DType::kUInt16: case DType::kInt16: case DType::kFloat16: case DType::kBFloat16: return 2;
    case DType::kInt64: case DType::kFloat64: case DType::kUInt64: return 8;
    case DType::kUndefined: case DType::kString: return 0;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kUndefined: return "undefined";
    case DType::kFloat32: return "float32";
    case DType::kUInt8: return "uint8";
    case DType::kInt8: return "int8";
    case DType::kUInt16: return "uint16";
    case DType::kInt16: return "int16";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kString: return "string";
    case DType::kBool: return "bool";
    case DType::kFloat16: return "float16";
    case DType::kFloat64: return "float64";
    case DType::kUInt32: return "uint32";
    case DType::kUInt64: return "uint64";
    case DType::kBFloat16: return "bfloat16";
  }
  return "unknown";
}

int64_t shape_numel(const Shape& shape) {
  // Saturates instead of wrapping (a Tensor that large cannot exist: the
  // constructor refuses it), so a count can never overflow into a small number.
  int64_t n = 1;
  for (int64_t d : shape)
    if (d == 0) return 0;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return INT64_MAX;
  return n;
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += shape[i] < 0 ? std::string("?") : std::to_string(shape[i]);
  }
  return s + "]";
}

namespace {
struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
}  // namespace

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  for (int64_t d : shape_)
    if (d < 0) throw Error(ErrorCode::kInvalidArgument, "tensor with negative dimension " + shape_to_string(shape_));
  const size_t bytes = static_cast<size_t>(checked::nbytes_or_throw(shape_, dtype_, "tensor"));
  // Round up so the size is a multiple of the alignment (aligned_alloc's rule)
  // and kernels may over-read up to one cache line at the end.
  size_t alloc = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment + kTensorAlignment;
  void* p = std::aligned_alloc(kTensorAlignment, alloc);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, alloc);
  storage_ = std::shared_ptr<void>(p, AlignedFree{});
  data_ = p;
}

Tensor Tensor::wrap(DType dtype, Shape shape, void* data, std::shared_ptr<void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.storage_ = std::move(owner);
  t.data_ = data;
  return t;
}

Tensor Tensor::reshaped(Shape shape) const {
  auto n = checked::numel(shape);
  if (!n || *n != numel())
    throw Error(ErrorCode::kInvalidArgument,
                "cannot reshape " + shape_to_string(shape_) + " to " + shape_to_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, shape_);
  if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  return t;
}

}  // namespace damoyolo
