#include "common/checked_size.h"

#include "damoyolo/status.h"

namespace damoyolo::checked {

std::optional<int64_t> mul(int64_t a, int64_t b) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

std::optional<int64_t> add(int64_t a, int64_t b) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

std::optional<int64_t> numel(const Shape& shape) {
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d == 0) return 0;
  }
  int64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return std::nullopt;
  return n;
}

std::optional<int64_t> nbytes(const Shape& shape, DType dtype) {
  auto n = numel(shape);
  if (!n) return std::nullopt;
  return mul(*n, static_cast<int64_t>(dtype_size(dtype)));
}

namespace {
void check_dims_known(const Shape& shape, const std::string& what) {
  for (int64_t d : shape)
    if (d < 0) throw Error(ErrorCode::kInvalidArgument, what + ": negative dimension in " + shape_to_string(shape));
}
}  // namespace

int64_t numel_or_throw(const Shape& shape, const std::string& what) {
  check_dims_known(shape, what);
  auto n = numel(shape);
  if (!n)
    throw Error(ErrorCode::kOutOfRange, what + ": shape " + shape_to_string(shape) + " has more than 2^63 - 1 elements");
  return *n;
}

int64_t nbytes_or_throw(const Shape& shape, DType dtype, const std::string& what) {
  numel_or_throw(shape, what);
  auto b = nbytes(shape, dtype);
  if (!b)
    throw Error(ErrorCode::kOutOfRange, what + ": shape " + shape_to_string(shape) + " of " + dtype_name(dtype) +
                                            " has more than 2^63 - 1 bytes");
  return *b;
}

std::optional<int64_t> parse_size(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;  // INT64_MAX has 19 digits
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, c - '0', &v)) return std::nullopt;
  }
  return v;
}

void check_tensor(const Shape& shape, DType dtype, const ModelLimits& limits, const std::string& what) {
  // Bytes of the known dims (unknown ones count as 1): a lower bound.
  const int64_t esize = dtype_size(dtype) > 0 ? static_cast<int64_t>(dtype_size(dtype)) : 1;
  int64_t bytes = esize;
  bool overflow = false, empty = false;
  for (int64_t d : shape) {
    if (d < 0) continue;
    if (d > limits.max_dim)
      throw Error(ErrorCode::kOutOfRange, what + ": shape " + shape_to_string(shape) + " has a dimension of " +
                                              std::to_string(d) + ", over the limit of " +
                                              std::to_string(limits.max_dim) + " (ModelLimits::max_dim)");
    if (d == 0) empty = true;
    if (!overflow && __builtin_mul_overflow(bytes, d, &bytes)) overflow = true;
  }
  if (empty) return;
  if (overflow || bytes > limits.max_tensor_bytes)
    throw Error(ErrorCode::kOutOfRange,
                what + ": shape " + shape_to_string(shape) + " of " + dtype_name(dtype) + " is " +
                    (overflow ? std::string("more than 2^63 - 1") : std::to_string(bytes)) + " bytes, over the limit of " +
                    std::to_string(limits.max_tensor_bytes) + " (ModelLimits::max_tensor_bytes)");
}

}  // namespace damoyolo::checked
