// Small helpers shared by the reference kernel files (elementwise.cc,
// tensor_ops.cc, nn_ops.cc): dtype dispatch, 16-bit float conversion, strides.
// The checks the shape rules make too (errors naming the node, dtype classes,
// optional inputs) are graph/ops/op_util.h's, visible here through util.
// Internal to the reference kernels; nothing here is part of the registry
// interface.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "graph/ops/op_util.h"
#include "kernels/reference/registry.h"

namespace damoyolo::kernels::ref::util {

using namespace graph::ops;

// ---- 16-bit floats -------------------------------------------------------
// Stored as raw uint16 bits in tensors; converted through float so that every
// kernel can treat them as "a float type" without a half-precision ALU.

// The logistic function as the reference kernels compute it (Sigmoid, and
// the fused ops' logistic/swish): split by sign so exp never overflows into
// inf/inf.
template <class T>
inline T logistic(T v) {
  if (v >= T(0)) return T(1) / (T(1) + std::exp(-v));
  const T e = std::exp(v);
  return e / (T(1) + e);
}

inline float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal half: renormalise into a normal float
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / nan (payload kept)
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round-to-nearest-even, like numpy's astype(float16).
inline uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: overflow to inf
  if (absx < 0x38800000u) {  // result is subnormal (or zero) in half
    // Scale so that the half subnormal unit (2^-24) becomes 1, then round to even.
    float a;
    std::memcpy(&a, &absx, 4);
    float scaled = a * 16777216.0f;  // exact: multiply by 2^24
    float r = std::nearbyint(scaled);  // default rounding mode is to-nearest-even
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(r));
  }
  uint32_t mant = absx & 0x7fffffu;
  uint32_t exp = (absx >> 23) - 127 + 15;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // carries into the exponent correctly
  return static_cast<uint16_t>(sign | h);
}

inline float bf16_to_float(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round-to-nearest-even; NaN stays a (quiet) NaN.
inline uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  uint32_t lsb = (x >> 16) & 1u;
  x += 0x7fffu + lsb;
  return static_cast<uint16_t>(x >> 16);
}

// Distinct tag types so dispatch can hand a 16-bit float to a lambda without
// confusing it with uint16.
struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

// ---- dtype dispatch -------------------------------------------------------

template <class T> struct Tag { using type = T; };

// Calls f(Tag<T>{}) for the C++ type of `dt` among the plain numeric types
// (float, double and the eight integer widths). Returns false for anything
// else (bool, 16-bit floats, strings) so the caller can report it with context.
template <class F>
bool visit_numeric(DType dt, F&& f) {
  switch (dt) {
    case DType::kFloat32: f(Tag<float>{}); return true;
    case DType::kFloat64: f(Tag<double>{}); return true;
    case DType::kInt8: f(Tag<int8_t>{}); return true;
    case DType::kInt16: f(Tag<int16_t>{}); return true;
    case DType::kInt32: f(Tag<int32_t>{}); return true;
    case DType::kInt64: f(Tag<int64_t>{}); return true;
    case DType::kUInt8: f(Tag<uint8_t>{}); return true;
    case DType::kUInt16: f(Tag<uint16_t>{}); return true;
    case DType::kUInt32: f(Tag<uint32_t>{}); return true;
    case DType::kUInt64: f(Tag<uint64_t>{}); return true;
    default: return false;
  }
}

// Only float and double: for ops whose math is defined on reals (Exp, Conv...).
template <class F>
bool visit_float(DType dt, F&& f) {
  switch (dt) {
    case DType::kFloat32: f(Tag<float>{}); return true;
    case DType::kFloat64: f(Tag<double>{}); return true;
    default: return false;
  }
}

// ---- shapes ----------------------------------------------------------------

// Row-major element strides.
inline std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int64_t i = static_cast<int64_t>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

// Strides of `in` viewed as broadcast to `out` (0 on broadcast axes).
inline std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  std::vector<int64_t> own = strides_of(in);
  size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) st[off + i] = in[i] == 1 ? 0 : own[i];
  return st;
}

// Input i of a node, or nullptr when absent/omitted.
inline const Tensor* opt_tensor(const std::vector<Tensor>& in, size_t i) {
  return i < in.size() && in[i].defined() ? &in[i] : nullptr;
}

}  // namespace damoyolo::kernels::ref::util
