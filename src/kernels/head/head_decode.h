// DAMO-YOLO ZeroHead decode: class scores + distribution-regression boxes.
//
// Shared by the post-processor (raw `--benchmark` maps) and the optimised
// engine's fused head, so the interface below is a contract: keep it stable.
//
// Maths (damo-yolo-facts.md §2.6): per level of stride s the anchor at row i,
// column j sits at (j·s, i·s) — no +0.5. Each side (l,t,r,b) has R+1 bin
// logits; d = Σ k·softmax(logits)_k, and x1 = px − d_l·s, y1 = py − d_t·s,
// x2 = px + d_r·s, y2 = py + d_b·s. No clipping.
//
// Every decode path (dense, selected anchors) goes through one 16-lane block
// kernel, so a box decoded densely and the same box decoded on demand are
// bit-identical: the thresholded raw path must give exactly the dense result.
// That kernel (kDecodeBlock, head_simd.h) exists per SIMD level, every
// level computing the same bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/head_layout.h"

namespace damoyolo::kernels::head {

// One level's maps as the kernels read them. stride, h, w are the level's
// model::HeadLevel geometry (model/head_layout.h: stride = input / map size),
// filled from a HeadLayout by the post-processor and the fused head step.
struct HeadLevelMaps {
  int stride, h, w;
  // element (anchor a=i*w+j, class c) at cls[a*cls_anchor_stride + c*cls_channel_stride]
  const float* cls;
  int64_t cls_anchor_stride, cls_channel_stride;
  // bin logits, channel = side*(R+1)+bin, side order l,t,r,b
  const float* reg;
  int64_t reg_anchor_stride, reg_channel_stride;
};
// NCHW maps: anchor_stride=1, channel_stride=h*w. NHWC: anchor_stride=C, channel_stride=1.

struct HeadSpec {
  int num_classes;
  int reg_max;
  bool cls_is_logit = false;  // true: apply sigmoid
};

// Anchor points of every level concatenated in the levels' order (ascending
// stride), as SoA arrays so the block kernel loads 16 priors at once. Built
// once per level geometry.
struct Priors {
  std::vector<model::HeadLevel> levels;  // geometry and anchor offsets (model::assign_anchor_offsets)
  std::vector<int64_t> level_offset;     // levels[l].anchor_offset, flat for the kernels' lookups
  std::vector<float> px, py, stride;  // per global anchor
  int64_t num_anchors = 0;
};

// A handful of recently used geometries (input H×W). Not thread-safe: one per
// thread or per Postprocessor.
class PriorCache {
 public:
  // Capacity reserved up front: adding an entry never moves the others, so a
  // returned reference stays valid until its own slot is recycled.
  PriorCache() { entries_.reserve(kCapacity); }
  const Priors& get(const HeadLevelMaps* levels, int num_levels);

 private:
  static constexpr size_t kCapacity = 4;
  std::vector<Priors> entries_;
  size_t next_victim_ = 0;
};

// Dense: scores [A,C] (sigmoid probabilities) and boxes [A,4] x1y1x2y2 in
// network-input pixels — exactly the default export's two outputs.
// Uses a thread_local PriorCache.
void decode_head_dense(const HeadSpec&, const HeadLevelMaps* levels, int num_levels, float* scores,
                       float* boxes);
// Same, with an explicit cache.
void decode_head_dense(const HeadSpec&, const HeadLevelMaps* levels, int num_levels, float* scores,
                       float* boxes, PriorCache& cache);

// Boxes only, for the listed global anchor indices (any order, any level):
// boxes[anchor*4 + 0..3] is written for each listed anchor, nothing else.
// Bit-identical to what decode_head_dense writes for those anchors.
void decode_boxes_selected(const HeadSpec&, const HeadLevelMaps* levels, int num_levels,
                           const Priors& priors, const int32_t* anchors, int64_t count,
                           float* boxes);

// Validates what the kernels assume (positive sizes, R in [0,63], level sizes
// consistent); throws damoyolo::Error(kInvalidArgument) otherwise.
void check_head(const HeadSpec&, const HeadLevelMaps* levels, int num_levels);

}  // namespace damoyolo::kernels::head
