// The detection kernels at every SIMD level (see simd_kernels.h). Levels must
// round identically, so FMA contraction is off for the whole file: with it,
// the AVX2/AVX-512 versions would fuse p·r + c in the exp polynomial (and GCC
// fuses intrinsics too) while the scalar one cannot.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "detection/simd_kernels.h"

#include <algorithm>
#include <cstring>

#include "detection/simd_math.h"

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
// Bodies shared by every level (vector extensions: each level's function
// below inlines them at its own width, v4f for the SSE2 baseline, v8f at
// AVX2, v16f at AVX-512, and the compiler emits that level's instructions).
// ---------------------------------------------------------------------------

constexpr int kLanes = kDecodeLanes;

// kLanes anchors as kLanes / kWidth<V> vectors of V, one after the other:
// each lane sees the same operations whatever the width.
template <class V>
DAMOYOLO_VINLINE void decode_block_body(const float* logits, int bins, const float* px, const float* py,
                                        const float* st, float* out) {
  for (int part = 0; part < kLanes; part += kWidth<V>) {
    V d[4];
    for (int side = 0; side < 4; ++side) {
      const float* L = logits + side * bins * kLanes + part;
      // Subtracting the max keeps exp's argument ≤ 0: no overflow for any logit.
      V m = vload<V>(L);
      for (int k = 1; k < bins; ++k) m = vmax(m, vload<V>(L + k * kLanes));
      V sum = vsplat<V>(0.f), wsum = vsplat<V>(0.f);
      for (int k = 0; k < bins; ++k) {
        V e = vexp(vload<V>(L + k * kLanes) - m);
        sum += e;
        wsum += e * static_cast<float>(k);
      }
      d[side] = wsum / sum;
    }
    const V vpx = vload<V>(px + part), vpy = vload<V>(py + part), vst = vload<V>(st + part);
    vstore(out + 0 * kLanes + part, vpx - d[0] * vst);
    vstore(out + 1 * kLanes + part, vpy - d[1] * vst);
    vstore(out + 2 * kLanes + part, vpx + d[2] * vst);
    vstore(out + 3 * kLanes + part, vpy + d[3] * vst);
  }
}

// Block buffers for up to kLanes anchors: logits transposed to [channel][lane]
// so the block maths works on whole vectors, never on one anchor at a time.
struct Block {
  alignas(64) float logits[4 * 64 * kLanes];  // 4·(R+1) channels, R ≤ 63
  alignas(64) float px[kLanes], py[kLanes], st[kLanes];
  alignas(64) float out[4][kLanes];
};

template <class V>
DAMOYOLO_VINLINE void decode_level_body(const HeadLevelMaps& lv, int bins, const float* px,
                                        const float* py, const float* st, float* boxes) {
  const int channels = 4 * bins;
  const int64_t hw = int64_t{lv.h} * lv.w;
  Block b;
  for (int64_t a0 = 0; a0 < hw; a0 += kLanes) {
    const int n = static_cast<int>(std::min<int64_t>(kLanes, hw - a0));
    for (int ch = 0; ch < channels; ++ch) {
      const float* src = lv.reg + ch * lv.reg_channel_stride + a0 * lv.reg_anchor_stride;
      float* dst = b.logits + ch * kLanes;
      if (lv.reg_anchor_stride == 1 && n == kLanes) {
        std::memcpy(dst, src, sizeof(float) * kLanes);  // a constant size: a few vector moves, no call
      } else if (lv.reg_anchor_stride == 1) {
        std::memcpy(dst, src, sizeof(float) * n);
      } else {
        for (int lane = 0; lane < n; ++lane) dst[lane] = src[lane * lv.reg_anchor_stride];
      }
      // Padding lanes get a valid finite input so the unused results stay finite.
      for (int lane = n; lane < kLanes; ++lane) dst[lane] = 0.f;
    }
    for (int lane = 0; lane < kLanes; ++lane) {
      const bool live = lane < n;
      b.px[lane] = live ? px[a0 + lane] : 0.f;
      b.py[lane] = live ? py[a0 + lane] : 0.f;
      b.st[lane] = live ? st[a0 + lane] : 0.f;
    }
    decode_block_body<V>(b.logits, bins, b.px, b.py, b.st, &b.out[0][0]);
    float* dst = boxes + a0 * 4;
    for (int lane = 0; lane < n; ++lane) {
      dst[lane * 4 + 0] = b.out[0][lane];
      dst[lane * 4 + 1] = b.out[1][lane];
      dst[lane * 4 + 2] = b.out[2][lane];
      dst[lane * 4 + 3] = b.out[3][lane];
    }
  }
}

DAMOYOLO_VINLINE void gather_scores_body(const HeadLevelMaps& lv, int C, float* scores) {
  const int64_t hw = int64_t{lv.h} * lv.w;
  if (lv.cls_channel_stride == 1) {  // NHWC-like: rows are already [C]
    for (int64_t a = 0; a < hw; ++a)
      std::memcpy(scores + a * C, lv.cls + a * lv.cls_anchor_stride, sizeof(float) * C);
    return;
  }
  // NCHW → [A,C] is a transpose; 16×16 tiles keep both sides in cache lines.
  constexpr int64_t T = 16;
  for (int64_t a0 = 0; a0 < hw; a0 += T) {
    const int64_t a1 = std::min(hw, a0 + T);
    for (int64_t c0 = 0; c0 < C; c0 += T) {
      const int64_t c1 = std::min<int64_t>(C, c0 + T);
      for (int64_t a = a0; a < a1; ++a)
        for (int64_t c = c0; c < c1; ++c)
          scores[a * C + c] = lv.cls[a * lv.cls_anchor_stride + c * lv.cls_channel_stride];
    }
  }
}

template <class V>
DAMOYOLO_VINLINE void sigmoid_body(float* x, int64_t n) {
  constexpr int W = kWidth<V>;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const V v = vload<V>(x + i);
    vstore(x + i, 1.0f / (1.0f + vexp(-v)));
  }
  if (i < n) {
    alignas(64) float tail[W] = {};
    std::memcpy(tail, x + i, sizeof(float) * (n - i));
    const V v = vload<V>(tail);
    vstore(tail, 1.0f / (1.0f + vexp(-v)));
    std::memcpy(x + i, tail, sizeof(float) * (n - i));
  }
}

// ---------------------------------------------------------------------------
// Scalar
// ---------------------------------------------------------------------------

void decode_block_scalar(const float* logits, int bins, const float* px, const float* py,
                         const float* st, float* out) {
  decode_block_body<v4f>(logits, bins, px, py, st, out);
}

void decode_level_scalar(const HeadLevelMaps& lv, int bins, const float* px, const float* py, const float* st,
                         float* boxes) {
  decode_level_body<v4f>(lv, bins, px, py, st, boxes);
}

void gather_scores_scalar(const HeadLevelMaps& lv, int C, float* scores) { gather_scores_body(lv, C, scores); }

void sigmoid_scalar(float* x, int64_t n) { sigmoid_body<v4f>(x, n); }

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

DAMOYOLO_TARGET_AVX2 void decode_block_avx2(const float* logits, int bins, const float* px,
                                            const float* py, const float* st, float* out) {
  decode_block_body<v8f>(logits, bins, px, py, st, out);
}

DAMOYOLO_TARGET_AVX2 void decode_level_avx2(const HeadLevelMaps& lv, int bins, const float* px, const float* py,
                                         const float* st, float* boxes) {
  decode_level_body<v8f>(lv, bins, px, py, st, boxes);
}

DAMOYOLO_TARGET_AVX2 void gather_scores_avx2(const HeadLevelMaps& lv, int C, float* scores) {
  gather_scores_body(lv, C, scores);
}

DAMOYOLO_TARGET_AVX2 void sigmoid_avx2(float* x, int64_t n) { sigmoid_body<v8f>(x, n); }

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

DAMOYOLO_TARGET_AVX512 void decode_block_avx512(const float* logits, int bins, const float* px,
                                                const float* py, const float* st, float* out) {
  decode_block_body<v16f>(logits, bins, px, py, st, out);
}

DAMOYOLO_TARGET_AVX512 void decode_level_avx512(const HeadLevelMaps& lv, int bins, const float* px, const float* py,
                                         const float* st, float* boxes) {
  decode_level_body<v16f>(lv, bins, px, py, st, boxes);
}

DAMOYOLO_TARGET_AVX512 void gather_scores_avx512(const HeadLevelMaps& lv, int C, float* scores) {
  gather_scores_body(lv, C, scores);
}

DAMOYOLO_TARGET_AVX512 void sigmoid_avx512(float* x, int64_t n) { sigmoid_body<v16f>(x, n); }

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
const cpu::PerIsa<DecodeBlockFn> kDecodeBlock = {decode_block_scalar, decode_block_avx2, decode_block_avx512};
const cpu::PerIsa<DecodeLevelFn> kDecodeLevel = {decode_level_scalar, decode_level_avx2, decode_level_avx512};
const cpu::PerIsa<GatherScoresFn> kGatherScores = {gather_scores_scalar, gather_scores_avx2, gather_scores_avx512};
const cpu::PerIsa<SigmoidFn> kSigmoid = {sigmoid_scalar, sigmoid_avx2, sigmoid_avx512};
const cpu::PerIsa<AboveMaskFn> kAboveMask = {above_mask_scalar, above_mask_avx2, above_mask_avx512};
const cpu::PerIsa<IouAboveFn> kIouAbove = {iou_above_scalar, iou_above_avx2, iou_above_avx512};
#else
const cpu::PerIsa<DecodeBlockFn> kDecodeBlock = {decode_block_scalar, decode_block_scalar, decode_block_scalar};
const cpu::PerIsa<DecodeLevelFn> kDecodeLevel = {decode_level_scalar, decode_level_scalar, decode_level_scalar};
const cpu::PerIsa<GatherScoresFn> kGatherScores = {gather_scores_scalar, gather_scores_scalar, gather_scores_scalar};
const cpu::PerIsa<SigmoidFn> kSigmoid = {sigmoid_scalar, sigmoid_scalar, sigmoid_scalar};
const cpu::PerIsa<AboveMaskFn> kAboveMask = {above_mask_scalar, above_mask_scalar, above_mask_scalar};
const cpu::PerIsa<IouAboveFn> kIouAbove = {iou_above_scalar, iou_above_scalar, iou_above_scalar};
#endif

}  // namespace damoyolo::detection
