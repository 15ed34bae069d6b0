// The DAMO-YOLO head's decode kernels at every SIMD level (see head_simd.h).
// Levels must round identically, so FMA contraction is off for the whole
// file: with it, the AVX2/AVX-512 versions would fuse p·r + c in the exp
// polynomial while the scalar one cannot.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "kernels/head/head_simd.h"

#include <algorithm>
#include <cstring>

#include "kernels/head/simd_math.h"

namespace damoyolo::kernels::head {

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

#if DAMOYOLO_X86_SIMD

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

#endif  // DAMOYOLO_X86_SIMD

}  // namespace

#if DAMOYOLO_X86_SIMD
const cpu::PerIsa<DecodeBlockFn> kDecodeBlock = {decode_block_scalar, decode_block_avx2, decode_block_avx512};
const cpu::PerIsa<DecodeLevelFn> kDecodeLevel = {decode_level_scalar, decode_level_avx2, decode_level_avx512};
const cpu::PerIsa<GatherScoresFn> kGatherScores = {gather_scores_scalar, gather_scores_avx2, gather_scores_avx512};
const cpu::PerIsa<SigmoidFn> kSigmoid = {sigmoid_scalar, sigmoid_avx2, sigmoid_avx512};
#else
const cpu::PerIsa<DecodeBlockFn> kDecodeBlock = {decode_block_scalar, decode_block_scalar, decode_block_scalar};
const cpu::PerIsa<DecodeLevelFn> kDecodeLevel = {decode_level_scalar, decode_level_scalar, decode_level_scalar};
const cpu::PerIsa<GatherScoresFn> kGatherScores = {gather_scores_scalar, gather_scores_scalar, gather_scores_scalar};
const cpu::PerIsa<SigmoidFn> kSigmoid = {sigmoid_scalar, sigmoid_scalar, sigmoid_scalar};
#endif

}  // namespace damoyolo::kernels::head
