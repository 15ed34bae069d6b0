#include "kernels/head/head_decode.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "damoyolo/status.h"
#include "kernels/head/head_simd.h"

namespace damoyolo::kernels::head {

namespace {

[[noreturn]] void invalid(const std::string& msg) {
  throw Error(ErrorCode::kInvalidArgument, "head decode: " + msg);
}

model::HeadLevel geometry(const HeadLevelMaps& lv) { return {lv.stride, lv.h, lv.w}; }

bool same_geometry(const Priors& p, const HeadLevelMaps* levels, int num_levels) {
  if (static_cast<int>(p.levels.size()) != num_levels) return false;
  for (int l = 0; l < num_levels; ++l)
    if (!p.levels[l].same_geometry(geometry(levels[l]))) return false;
  return true;
}

Priors build_priors(const HeadLevelMaps* levels, int num_levels) {
  Priors p;
  for (int l = 0; l < num_levels; ++l) p.levels.push_back(geometry(levels[l]));
  const int64_t total = model::assign_anchor_offsets(p.levels);
  for (const model::HeadLevel& lv : p.levels) p.level_offset.push_back(lv.anchor_offset);
  p.num_anchors = total;
  p.px.resize(total);
  p.py.resize(total);
  p.stride.resize(total);
  int64_t a = 0;
  for (const model::HeadLevel& lv : p.levels) {
    const float s = static_cast<float>(lv.stride);
    for (int i = 0; i < lv.h; ++i) {
      for (int j = 0; j < lv.w; ++j, ++a) {
        // Cell top-left corner, as the official prior generator (no +0.5).
        p.px[a] = static_cast<float>(j) * s;
        p.py[a] = static_cast<float>(i) * s;
        p.stride[a] = s;
      }
    }
  }
  return p;
}

constexpr int kLanes = kDecodeLanes;

// decode_boxes_selected's block buffers (the dense decode has its own, inside
// kDecodeLevel): logits transposed to [channel][lane] so the kernel works on
// whole vectors, never on one anchor at a time.
struct Block {
  alignas(64) float logits[4 * 64 * kLanes];  // 4·(R+1) channels, R ≤ 63
  alignas(64) float px[kLanes], py[kLanes], st[kLanes];
  alignas(64) float out[4][kLanes];
};

// softmax → integral → distance2bbox for kLanes anchors, at the caller's level.
inline void decode_block(DecodeBlockFn kernel, Block& b, int bins) {
  kernel(b.logits, bins, b.px, b.py, b.st, &b.out[0][0]);
}

}  // namespace

void check_head(const HeadSpec& spec, const HeadLevelMaps* levels, int num_levels) {
  if (spec.num_classes <= 0) invalid("num_classes must be positive");
  if (spec.reg_max < 0 || spec.reg_max > 63) invalid("reg_max must be in [0, 63]");
  if (num_levels <= 0 || !levels) invalid("no levels");
  for (int l = 0; l < num_levels; ++l) {
    const HeadLevelMaps& lv = levels[l];
    if (lv.stride <= 0 || lv.h <= 0 || lv.w <= 0)
      invalid("level " + std::to_string(l) + " has a non-positive stride or size");
    if (!lv.cls || !lv.reg) invalid("level " + std::to_string(l) + " has a null map");
  }
}

const Priors& PriorCache::get(const HeadLevelMaps* levels, int num_levels) {
  for (const Priors& p : entries_)
    if (same_geometry(p, levels, num_levels)) return p;
  // Round-robin replacement rather than LRU reordering: a hit never moves an
  // entry, so references handed out stay valid until their slot is recycled
  // (kCapacity misses later at the earliest).
  if (entries_.size() < kCapacity) {
    entries_.push_back(build_priors(levels, num_levels));
    return entries_.back();
  }
  Priors& slot = entries_[next_victim_];
  next_victim_ = (next_victim_ + 1) % kCapacity;
  slot = build_priors(levels, num_levels);
  return slot;
}

void decode_head_dense(const HeadSpec& spec, const HeadLevelMaps* levels, int num_levels,
                       float* scores, float* boxes, PriorCache& cache) {
  check_head(spec, levels, num_levels);
  const Priors& pr = cache.get(levels, num_levels);
  // The level's kernels whole (not only the block maths): the gathers around
  // the block kernel cost as much, and they vectorise per level too.
  const cpu::IsaLevel isa = cpu::isa_level();
  const GatherScoresFn gather_scores = kGatherScores.at(isa);
  const DecodeLevelFn decode_level = kDecodeLevel.at(isa);
  for (int l = 0; l < num_levels; ++l) {
    const int64_t off = pr.level_offset[l];
    if (scores) gather_scores(levels[l], spec.num_classes, scores + off * spec.num_classes);
    if (boxes)
      decode_level(levels[l], spec.reg_max + 1, pr.px.data() + off, pr.py.data() + off, pr.stride.data() + off,
                   boxes + off * 4);
  }
  if (scores && spec.cls_is_logit) kSigmoid.at(isa)(scores, pr.num_anchors * spec.num_classes);
}

void decode_head_dense(const HeadSpec& spec, const HeadLevelMaps* levels, int num_levels,
                       float* scores, float* boxes) {
  thread_local PriorCache cache;
  decode_head_dense(spec, levels, num_levels, scores, boxes, cache);
}

void decode_boxes_selected(const HeadSpec& spec, const HeadLevelMaps* levels, int num_levels,
                           const Priors& pr, const int32_t* anchors, int64_t count,
                           float* boxes) {
  const int bins = spec.reg_max + 1;
  const int channels = 4 * bins;
  const DecodeBlockFn kernel = kDecodeBlock.current();
  Block b;
  int32_t lane_anchor[kLanes];
  for (int64_t i0 = 0; i0 < count; i0 += kLanes) {
    const int n = static_cast<int>(std::min<int64_t>(kLanes, count - i0));
    for (int lane = 0; lane < kLanes; ++lane) {
      if (lane >= n) {
        for (int ch = 0; ch < channels; ++ch) b.logits[ch * kLanes + lane] = 0.f;
        b.px[lane] = b.py[lane] = b.st[lane] = 0.f;
        continue;
      }
      const int32_t g = anchors[i0 + lane];
      lane_anchor[lane] = g;
      int l = num_levels - 1;
      while (l > 0 && g < pr.level_offset[l]) --l;
      const HeadLevelMaps& lv = levels[l];
      const float* src = lv.reg + (g - pr.level_offset[l]) * lv.reg_anchor_stride;
      for (int ch = 0; ch < channels; ++ch)
        b.logits[ch * kLanes + lane] = src[ch * lv.reg_channel_stride];
      b.px[lane] = pr.px[g];
      b.py[lane] = pr.py[g];
      b.st[lane] = pr.stride[g];
    }
    decode_block(kernel, b, bins);
    for (int lane = 0; lane < n; ++lane) {
      float* dst = boxes + int64_t{lane_anchor[lane]} * 4;
      dst[0] = b.out[0][lane];
      dst[1] = b.out[1][lane];
      dst[2] = b.out[2][lane];
      dst[3] = b.out[3][lane];
    }
  }
}

}  // namespace damoyolo::kernels::head
