// Float vector maths for the head decode kernels (head_simd.cc only), on
// GCC/Clang vector extensions, for any vector width V (v4f, v8f, v16f).
// Everything here is always_inline: it becomes the code of the level it is
// inlined into, and each level uses the width it has registers for (16 at
// AVX-512, 8 at AVX2, 4 at the SSE2 baseline; a vector wider than the
// registers is lowered very badly, ~9x slower). Every lane goes through the
// same IEEE operations in the same order whatever V is, and FMA contraction
// is off in that file, so every level rounds identically.
#pragma once

#include <cstdint>
#include <cstring>

#define DAMOYOLO_VINLINE [[gnu::always_inline]] inline

// "AVX vector return without AVX-512 enabled changes the ABI": about passing
// vectors by value between functions, which never happens here (all
// always_inline, inside one level's kernel).
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace damoyolo::kernels::head {

typedef float v16f __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef int32_t v4i __attribute__((vector_size(16)));

template <class V> struct VecTraits;
template <> struct VecTraits<v16f> { using Int = v16i; };
template <> struct VecTraits<v8f> { using Int = v8i; };
template <> struct VecTraits<v4f> { using Int = v4i; };
template <class V> inline constexpr int kWidth = sizeof(V) / sizeof(float);

template <class V> DAMOYOLO_VINLINE V vsplat(float x) { return V{} + x; }
template <class V> DAMOYOLO_VINLINE V vload(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V> DAMOYOLO_VINLINE void vstore(float* p, V v) { std::memcpy(p, &v, sizeof v); }
template <class V> DAMOYOLO_VINLINE V vmax(V a, V b) { return a > b ? a : b; }
template <class V> DAMOYOLO_VINLINE V vmin(V a, V b) { return a < b ? a : b; }

// exp(x) to ~1 ulp (Cephes expf polynomial). Hand-written because std::exp
// does not vectorise without -ffast-math, and the head needs 32 exps per anchor.
// Inputs are clamped to the range where 2^n stays a normal float.
template <class V> DAMOYOLO_VINLINE V vexp(V x) {
  using I = typename VecTraits<V>::Int;
  x = vmin(vmax(x, vsplat<V>(-87.0f)), vsplat<V>(88.0f));
  // Adding 1.5·2^23 rounds x·log2(e) to the nearest integer n in the low
  // mantissa bits: no float→int rounding-mode dependence.
  const V magic = vsplat<V>(12582912.0f);
  const V t = x * 1.44269504088896341f + magic;
  const V n = t - magic;
  // Cody–Waite split of ln 2 keeps r = x − n·ln2 exact enough.
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = vsplat<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V y = p * (r * r) + r + 1.0f;
  // 2^n built directly in the exponent field (n ∈ [-126, 127] after the clamp).
  // (Casts between same-size vector types reinterpret the bits.)
  const I bits = (((I)t - 0x4B400000) + 127) << 23;
  return y * (V)bits;
}

}  // namespace damoyolo::kernels::head
