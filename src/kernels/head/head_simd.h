// The DAMO-YOLO head decode's SIMD kernels, one per level
// (common/cpu_features.h): the 16-anchor block, a whole level, the score
// gather and the sigmoid. Each table's entries compute identical results: the
// same IEEE operations in the same order, FMA contraction off (head_simd.cc),
// and compares and min/max written so NaNs and signed zeros go the scalar way.
// Callers take kernel.current() once per operation. (The NMS stage's kernels,
// the score scan and the IoU test, are detection/nms_simd.h.)
#pragma once

#include <cstdint>

#include "common/cpu_features.h"
#include "kernels/head/head_decode.h"

namespace damoyolo::kernels::head {

inline constexpr int kDecodeLanes = 16;

// softmax → integral → distance2bbox for kDecodeLanes anchors at once.
// logits: [4·bins][16] (channel-major; sides l,t,r,b, `bins` logits each),
// px, py, st: [16] anchor points and strides; out: [4][16] x1, y1, x2, y2.
// Every lane must hold finite inputs (callers pad unused lanes with zeros).
using DecodeBlockFn = void (*)(const float* logits, int bins, const float* px, const float* py,
                               const float* st, float* out);
extern const cpu::PerIsa<DecodeBlockFn> kDecodeBlock;

// The dense decode of one pyramid level: for every anchor a < h·w of `lv`,
// boxes[4a .. 4a+3] = x1, y1, x2, y2, through the block kernel above (so
// bit-identical to decoding the same anchors with kDecodeBlock). px, py, st:
// that level's priors [h·w]; bins = R + 1 ≤ 64.
using DecodeLevelFn = void (*)(const HeadLevelMaps& lv, int bins, const float* px, const float* py,
                               const float* st, float* boxes);
extern const cpu::PerIsa<DecodeLevelFn> kDecodeLevel;

// scores[a·C + c] = lv.cls[a·cls_anchor_stride + c·cls_channel_stride] for
// every anchor a < h·w of `lv` and class c < C (NCHW: a tiled transpose).
using GatherScoresFn = void (*)(const HeadLevelMaps& lv, int C, float* scores);
extern const cpu::PerIsa<GatherScoresFn> kGatherScores;

// x[i] = 1 / (1 + exp(-x[i])) with the decode's exp (≈1 ulp).
using SigmoidFn = void (*)(float* x, int64_t n);
extern const cpu::PerIsa<SigmoidFn> kSigmoid;

}  // namespace damoyolo::kernels::head
