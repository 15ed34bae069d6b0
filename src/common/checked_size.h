// Overflow-safe size arithmetic for shapes that come from untrusted places (a
// model file, a kernel's computed output shape). Every element or byte count
// derived from what a model says goes through here rather than a bare `*`, so
// a dim list like [2^62, 4] can never wrap to a small number and pass a check.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "damoyolo/limits.h"
#include "damoyolo/tensor.h"

namespace damoyolo::checked {

// a * b and a + b for a, b >= 0; nullopt when the exact result exceeds int64.
std::optional<int64_t> mul(int64_t a, int64_t b);
std::optional<int64_t> add(int64_t a, int64_t b);
// Elements of a shape; nullopt when a dim is negative (unknown) or the count
// exceeds int64. A zero dim makes 0 whatever the other dims are.
std::optional<int64_t> numel(const Shape& shape);
// numel * dtype_size(dtype); nullopt as numel, or when the bytes exceed int64.
std::optional<int64_t> nbytes(const Shape& shape, DType dtype);

// The same, throwing Error(kOutOfRange, "<what>: shape [...] has more than
// 2^63 - 1 elements|bytes") on overflow (and kInvalidArgument on a negative dim).
int64_t numel_or_throw(const Shape& shape, const std::string& what);
int64_t nbytes_or_throw(const Shape& shape, DType dtype, const std::string& what);

// A strict non-negative decimal integer: digits only (no sign, space, prefix
// or suffix) and at most INT64_MAX; nullopt otherwise.
std::optional<int64_t> parse_size(std::string_view text);

// Checks a shape (unknown dims, < 0, allowed) against the limits: every known
// dim <= max_dim, and the known dims' bytes <= max_tensor_bytes (a lower bound
// when some dims are unknown). Throws Error(kOutOfRange) naming `what`.
void check_tensor(const Shape& shape, DType dtype, const ModelLimits& limits, const std::string& what);

}  // namespace damoyolo::checked
