// 16-lane float maths for the detection kernels (simd_kernels.cc only), on
// GCC/Clang vector extensions. Everything here is always_inline: it becomes
// the code of the level it is inlined into (one zmm per vector in an
// AVX-512 kernel, two ymm in an AVX2 one, four xmm in the scalar one), and
// with FMA contraction off in that file every level rounds identically.
#pragma once

#include <cstdint>
#include <cstring>

#define DAMOYOLO_VINLINE [[gnu::always_inline]] inline

// "AVX vector return without AVX-512 enabled changes the ABI": about passing
// v16f by value between functions, which never happens here (all
// always_inline, inside one level's kernel).
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace damoyolo::detection {

inline constexpr int kLanes = 16;
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

DAMOYOLO_VINLINE v16f vsplat(float x) { return v16f{} + x; }
DAMOYOLO_VINLINE v16f vload(const float* p) {
  v16f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
DAMOYOLO_VINLINE void vstore(float* p, v16f v) { std::memcpy(p, &v, sizeof v); }
DAMOYOLO_VINLINE v16f vmax(v16f a, v16f b) { return a > b ? a : b; }
DAMOYOLO_VINLINE v16f vmin(v16f a, v16f b) { return a < b ? a : b; }

// exp(x) to ~1 ulp (Cephes expf polynomial). Hand-written because std::exp
// does not vectorise without -ffast-math, and the head needs 32 exps per anchor.
// Inputs are clamped to the range where 2^n stays a normal float.
DAMOYOLO_VINLINE v16f vexp(v16f x) {
  x = vmin(vmax(x, vsplat(-87.0f)), vsplat(88.0f));
  // Adding 1.5·2^23 rounds x·log2(e) to the nearest integer n in the low
  // mantissa bits: no float→int rounding-mode dependence.
  const v16f magic = vsplat(12582912.0f);
  const v16f t = x * 1.44269504088896341f + magic;
  const v16f n = t - magic;
  // Cody–Waite split of ln 2 keeps r = x − n·ln2 exact enough.
  v16f r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  v16f p = vsplat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const v16f y = p * (r * r) + r + 1.0f;
  // 2^n built directly in the exponent field (n ∈ [-126, 127] after the clamp).
  // (Casts between same-size vector types reinterpret the bits.)
  const v16i bits = (((v16i)t - 0x4B400000) + 127) << 23;
  return y * (v16f)bits;
}

}  // namespace damoyolo::detection
