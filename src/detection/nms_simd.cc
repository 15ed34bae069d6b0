// The NMS stage's kernels at every SIMD level (see nms_simd.h): the score scan
// and the IoU test. Levels must give the scalar result bit for bit, so FMA
// contraction is off for the whole file: union = a + b − w·h must not become
// a fused multiply-add in one level and not in another.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "detection/nms_simd.h"

#include <algorithm>

#if DAMOYOLO_X86_SIMD
#include <immintrin.h>
// GCC 12 false positive: the max/min intrinsics start from _mm512_undefined_ps(),
// which it reports as possibly uninitialised once inlined.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace damoyolo::detection {

namespace {

// ---------------------------------------------------------------------------
// Scalar
// ---------------------------------------------------------------------------

void above_mask_scalar(const float* x, int64_t n, float thr, uint64_t* masks) {
  for (int64_t w = 0; w * 64 < n; ++w) {
    const int64_t end = std::min<int64_t>(64, n - w * 64);
    uint64_t m = 0;
    for (int64_t b = 0; b < end; ++b) m |= static_cast<uint64_t>(x[w * 64 + b] > thr) << b;
    masks[w] = m;
  }
}

bool iou_above_scalar(const float* x1, const float* y1, const float* x2, const float* y2,
                      const float* area, int n, float bx1, float by1, float bx2, float by2,
                      float barea, float thr) {
  for (int i = 0; i < n; ++i) {
    const float xx1 = std::max(x1[i], bx1);
    const float yy1 = std::max(y1[i], by1);
    const float xx2 = std::min(x2[i], bx2);
    const float yy2 = std::min(y2[i], by2);
    const float w = std::max(0.f, xx2 - xx1);
    const float h = std::max(0.f, yy2 - yy1);
    const float inter = w * h;
    const float ovr = inter / (area[i] + barea - inter);
    if (ovr > thr) return true;
  }
  return false;
}

#if DAMOYOLO_X86_SIMD

// The x86 max/min instructions return their SECOND operand when the compare
// fails (unordered or equal): max_ps(a, b) = a > b ? a : b. std::max(k, b) is
// k < b ? b : k = max_ps(b, k), so the candidate box goes first to get the
// scalar result for NaNs and ±0 too. Likewise std::min(k, b) = min_ps(b, k),
// and std::max(0, d) = max_ps(d, 0).

// ---------------------------------------------------------------------------
// AVX2
// ---------------------------------------------------------------------------

DAMOYOLO_TARGET_AVX2 void above_mask_avx2(const float* x, int64_t n, float thr, uint64_t* masks) {
  const __m256 t = _mm256_set1_ps(thr);
  for (int64_t w = 0; w * 64 < n; ++w) {
    const float* p = x + w * 64;
    const int64_t end = std::min<int64_t>(64, n - w * 64);
    uint64_t m = 0;
    int64_t b = 0;
    for (; b + 8 <= end; b += 8) {
      const int bits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + b), t, _CMP_GT_OQ));
      m |= static_cast<uint64_t>(static_cast<unsigned>(bits)) << b;
    }
    for (; b < end; ++b) m |= static_cast<uint64_t>(p[b] > thr) << b;
    masks[w] = m;
  }
}

DAMOYOLO_TARGET_AVX2 bool iou_above_avx2(const float* x1, const float* y1, const float* x2,
                                         const float* y2, const float* area, int n, float bx1,
                                         float by1, float bx2, float by2, float barea, float thr) {
  const __m256 vx1 = _mm256_set1_ps(bx1), vy1 = _mm256_set1_ps(by1);
  const __m256 vx2 = _mm256_set1_ps(bx2), vy2 = _mm256_set1_ps(by2);
  const __m256 varea = _mm256_set1_ps(barea), vthr = _mm256_set1_ps(thr);
  const __m256 zero = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) {  // the arrays are zero-padded to 16: whole loads
    const __m256 xx1 = _mm256_max_ps(vx1, _mm256_loadu_ps(x1 + i));
    const __m256 yy1 = _mm256_max_ps(vy1, _mm256_loadu_ps(y1 + i));
    const __m256 xx2 = _mm256_min_ps(vx2, _mm256_loadu_ps(x2 + i));
    const __m256 yy2 = _mm256_min_ps(vy2, _mm256_loadu_ps(y2 + i));
    const __m256 w = _mm256_max_ps(_mm256_sub_ps(xx2, xx1), zero);
    const __m256 h = _mm256_max_ps(_mm256_sub_ps(yy2, yy1), zero);
    const __m256 inter = _mm256_mul_ps(w, h);
    const __m256 uni = _mm256_sub_ps(_mm256_add_ps(_mm256_loadu_ps(area + i), varea), inter);
    const __m256 ovr = _mm256_div_ps(inter, uni);
    // Lanes past n are padding: their 0/barea could pass a negative thr.
    const int live = n - i >= 8 ? 0xff : (1 << (n - i)) - 1;
    if (_mm256_movemask_ps(_mm256_cmp_ps(ovr, vthr, _CMP_GT_OQ)) & live) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// AVX-512
// ---------------------------------------------------------------------------

DAMOYOLO_TARGET_AVX512 void above_mask_avx512(const float* x, int64_t n, float thr, uint64_t* masks) {
  const __m512 t = _mm512_set1_ps(thr);
  for (int64_t w = 0; w * 64 < n; ++w) {
    const float* p = x + w * 64;
    const int64_t end = std::min<int64_t>(64, n - w * 64);
    uint64_t m = 0;
    for (int64_t b = 0; b < end; b += 16) {
      // The last block of a row may be partial: masked load, no over-read.
      const __mmask16 live = end - b >= 16 ? 0xffff : static_cast<__mmask16>((1u << (end - b)) - 1);
      const __mmask16 bits = _mm512_mask_cmp_ps_mask(live, _mm512_maskz_loadu_ps(live, p + b), t, _CMP_GT_OQ);
      m |= static_cast<uint64_t>(bits) << b;
    }
    masks[w] = m;
  }
}

DAMOYOLO_TARGET_AVX512 bool iou_above_avx512(const float* x1, const float* y1, const float* x2,
                                             const float* y2, const float* area, int n, float bx1,
                                             float by1, float bx2, float by2, float barea, float thr) {
  const __m512 vx1 = _mm512_set1_ps(bx1), vy1 = _mm512_set1_ps(by1);
  const __m512 vx2 = _mm512_set1_ps(bx2), vy2 = _mm512_set1_ps(by2);
  const __m512 varea = _mm512_set1_ps(barea), vthr = _mm512_set1_ps(thr);
  const __m512 zero = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __m512 xx1 = _mm512_max_ps(vx1, _mm512_loadu_ps(x1 + i));
    const __m512 yy1 = _mm512_max_ps(vy1, _mm512_loadu_ps(y1 + i));
    const __m512 xx2 = _mm512_min_ps(vx2, _mm512_loadu_ps(x2 + i));
    const __m512 yy2 = _mm512_min_ps(vy2, _mm512_loadu_ps(y2 + i));
    const __m512 w = _mm512_max_ps(_mm512_sub_ps(xx2, xx1), zero);
    const __m512 h = _mm512_max_ps(_mm512_sub_ps(yy2, yy1), zero);
    const __m512 inter = _mm512_mul_ps(w, h);
    const __m512 uni = _mm512_sub_ps(_mm512_add_ps(_mm512_loadu_ps(area + i), varea), inter);
    const __m512 ovr = _mm512_div_ps(inter, uni);
    const __mmask16 live = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
    if (_mm512_mask_cmp_ps_mask(live, ovr, vthr, _CMP_GT_OQ)) return true;
  }
  return false;
}

#endif  // DAMOYOLO_X86_SIMD

}  // namespace

#if DAMOYOLO_X86_SIMD
const cpu::PerIsa<AboveMaskFn> kAboveMask = {above_mask_scalar, above_mask_avx2, above_mask_avx512};
const cpu::PerIsa<IouAboveFn> kIouAbove = {iou_above_scalar, iou_above_avx2, iou_above_avx512};
#else
const cpu::PerIsa<AboveMaskFn> kAboveMask = {above_mask_scalar, above_mask_scalar, above_mask_scalar};
const cpu::PerIsa<IouAboveFn> kIouAbove = {iou_above_scalar, iou_above_scalar, iou_above_scalar};
#endif

}  // namespace damoyolo::detection
