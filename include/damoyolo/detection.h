// Detection output: DAMO-YOLO head decode and the official post-processing.
//
// What "official" means here (damo-yolo-facts.md §5, damo/utils/boxes.py):
//   1. every (anchor, class) pair with score > conf_threshold (strictly) is a
//      candidate carrying that anchor's box — one box may yield several classes;
//   2. class-aware NMS as torchvision's batched_nms: IoU = inter/(a1+a2−inter),
//      areas without +1, a box is suppressed when IoU > iou_threshold;
//   3. the kept boxes sorted by score descending, at most max_det (500);
//   4. boxes mapped to the original image per axis, x·sx and y·sy, no clipping.
//
// Two input forms are accepted:
//   (a) the default export: scores [A,C] (sigmoid) and boxes [A,4] x1y1x2y2 in
//       network-input pixels;
//   (b) the `--benchmark` export: per level (ascending stride: s8, s16, s32
//       for the released models) a sigmoid class map [C,h,w] and a bin-logit
//       map [4(R+1),h,w]; a level's stride is the network input size / its
//       map size (src/model/head_layout.h). Candidates are found on the
//       class maps first and only anchors holding at least one candidate are
//       decoded (softmax → integral → prior offset), so the work follows the
//       candidate count rather than anchors × classes. Results equal those of
//       decoding densely and running form (a).
//
// Ties: detections with equal scores are ordered by class, then anchor index.
// torchvision leaves that order unspecified, so compare with its output by
// matching boxes, not by position.
//
// A Postprocessor is not thread-safe; use one per thread. Once its workspace
// has grown to an image's needs, processing another image of the same model
// does not allocate (pass the same output vector back in).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "damoyolo/status.h"
#include "damoyolo/tensor.h"

namespace damoyolo {

struct Detection {
  float x1, y1, x2, y2;  // original-image pixels (after BoxScale)
  float score;           // class probability
  int class_id;          // 0-based contiguous class index
};

enum class ModelFamily {
  kGeneral,  // T/S/M/L configs: conf 0.05, IoU 0.7
  kNano,     // Ns/Nm/Nl configs: conf 0.03, IoU 0.65
};

struct PostprocessOptions {
  float conf_threshold = 0.05f;  // candidates need score > conf_threshold
  // Compared as torchvision does: float IoU against this double.
  double iou_threshold = 0.7;
  int max_det = 500;  // ≤ 0: keep everything NMS keeps (the official code then skips truncation)
  // Empty: every class. Otherwise only these class ids become candidates.
  std::vector<int> class_filter;
  // Form (b) only: classes to use from the class maps; 0 = all channels. Legacy
  // models' raw maps carry C+1 channels; set C to drop the last, as the
  // official default export's slice does.
  int num_classes = 0;
  // false: the plain O(n²) reference NMS (for tests and the ablation benchmark).
  bool fast_nms = true;
  // With fast_nms off: the reference NMS with its classes run in parallel on
  // the caller's OpenMP team (the write-up's "parallel NMS"; same output).
  // Kept for the ablation's comparison, not a default: see docs/streams.md.
  bool parallel_class_nms = false;

  static PostprocessOptions for_family(ModelFamily family);
};

// Per-axis factors from network-input pixels to original-image pixels.
struct BoxScale {
  float x = 1.f, y = 1.f;
};
// {original_w / input_w, original_h / input_h}, the official BoxList.resize ratios.
BoxScale box_scale(int original_w, int original_h, int input_w, int input_h);

// One level of the `--benchmark` export for one batch element, NCHW planes.
struct RawHeadLevel {
  int stride;          // input size / map size (8, 16, 32 in the released models)
  int h, w;            // feature map size
  const float* cls;    // [C_maps, h, w], sigmoid probabilities
  const float* reg;    // [4·(reg_max+1), h, w], raw bin logits, channel = side·(R+1)+bin
};

class Postprocessor {
 public:
  explicit Postprocessor(PostprocessOptions options = {});
  ~Postprocessor();
  Postprocessor(Postprocessor&&) noexcept;
  Postprocessor& operator=(Postprocessor&&) noexcept;
  Postprocessor(const Postprocessor&) = delete;
  Postprocessor& operator=(const Postprocessor&) = delete;

  const PostprocessOptions& options() const;
  // Rejects a non-finite threshold or a negative class id.
  Status set_options(PostprocessOptions options);

  // Form (a). scores [num_anchors, num_classes], boxes [num_anchors, 4].
  // `out` is overwritten, sorted by score descending.
  Status process_dense(const float* scores, const float* boxes, int64_t num_anchors, int num_classes,
                       BoxScale scale, std::vector<Detection>* out);

  // Form (b). `levels` in the export's order, strictly ascending stride, all
  // describing one input size (stride·h and stride·w the same at every
  // level), else kInvalidArgument; `cls_channels` is C_maps, the class maps'
  // channel count.
  Status process_raw(std::span<const RawHeadLevel> levels, int cls_channels, int reg_max,
                     BoxScale scale, std::vector<Detection>* out);

  // The network input size (width, height) the raw maps' strides are derived
  // from in process(): stride = input size / map size, an integer, the same in
  // H and W. 0x0 (the default): unknown; the largest map is then taken to
  // have DAMO-YOLO's finest stride, 8. Detector sets it from its model; set it
  // when calling process() on the raw maps of a model whose finest stride is
  // not 8. Negative or half-zero sizes are kInvalidArgument.
  Status set_input_size(int width, int height);

  // Either form straight from a session's outputs, bound by index: 2 tensors
  // (scores [N,A,C], boxes [N,A,4]) or 2L (cls [N,C,h,w] ×L, then reg
  // [N,4(R+1),h,w] ×L; the --benchmark export has L = 3), recognised and
  // checked by model::recognise_head. Uses batch element `batch`.
  Status process(const std::vector<Tensor>& outputs, BoxScale scale, int batch,
                 std::vector<Detection>* out);
  Result<std::vector<Detection>> process(const std::vector<Tensor>& outputs, BoxScale scale,
                                         int batch = 0);

  // Candidates (score > conf, after the class filter) in the last processed image.
  int64_t last_candidate_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace damoyolo
