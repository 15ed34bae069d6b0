// Tensors: a dtype, a static shape and a 64-byte aligned buffer.
//
// Storage is shared (copying a Tensor aliases the same bytes) so that weights
// parsed from an ONNX file can be handed around without copies, and a Tensor
// can also wrap caller memory (zero-copy input/output binding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace damoyolo {

// Values match ONNX TensorProto.DataType so the loader maps them 1:1.
enum class DType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
};

// Bytes per element (0 for kUndefined and kString).
size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

using Shape = std::vector<int64_t>;
// Element count; saturates at INT64_MAX rather than wrapping around.
int64_t shape_numel(const Shape& shape);
std::string shape_to_string(const Shape& shape);  // "[1,3,640,640]"

// Alignment of every buffer the library allocates: one AVX-512 register / cache line.
inline constexpr size_t kTensorAlignment = 64;

class Tensor {
 public:
  Tensor() = default;
  // Allocates a zero-filled, 64-byte aligned buffer. Throws Error
  // (kInvalidArgument) for a negative dim, (kOutOfRange) when the byte count
  // does not fit int64.
  Tensor(DType dtype, Shape shape);

  // Wraps memory owned elsewhere. `owner` (may be null) keeps it alive; with a
  // null owner the caller guarantees the memory outlives every copy.
  static Tensor wrap(DType dtype, Shape shape, void* data, std::shared_ptr<void> owner = nullptr);

  bool defined() const { return dtype_ != DType::kUndefined; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_[i]; }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <class T> T* data() { return static_cast<T*>(data_); }
  template <class T> const T* data() const { return static_cast<const T*>(data_); }

  // Same bytes, new shape (element count must match). Throws on mismatch.
  Tensor reshaped(Shape shape) const;
  // A deep copy into a fresh aligned buffer.
  Tensor clone() const;

 private:
  DType dtype_ = DType::kUndefined;
  Shape shape_;
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
};

// Describes a model input or output.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kUndefined;
  Shape dims;
};

}  // namespace damoyolo
