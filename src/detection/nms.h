// Class-aware NMS with the official DAMO-YOLO semantics (torchvision
// batched_nms + top-max_det), in two implementations that must agree exactly:
//
//  * nms_reference — the algorithm as torchvision writes it: per class, sort by
//    score, O(n²) greedy suppression loop, merge, sort, truncate. Slow, obvious.
//  * FastNms — candidates bucketed per class as packed 64-bit sort keys. Each
//    class is a stream sorted lazily in growing chunks; the streams are merged
//    in global rank order and each candidate is tested against a SoA list of
//    its class's kept boxes with a SIMD IoU test (kIouAbove in nms_simd.h,
//    at the level common/cpu_features.h picks). Greedy NMS per class only
//    needs each class in rank order, so merging classes changes nothing — and
//    it lets the run stop as soon as max_det boxes are kept: every remaining
//    candidate ranks below all of them. Only the candidates ranked above the
//    last output detection are ever sorted or tested.
//
// Both use one total order — score descending, then class ascending, then
// anchor ascending — so ties resolve identically (torchvision's own tie order is
// unspecified; compare against it by matching, not by position).
//
// IoU = inter / (area_a + area_b − inter), area = (x2−x1)(y2−y1), no +1;
// suppress when IoU > thr where torchvision compares the float IoU against a
// double threshold. Below 1000 candidates torchvision's batched_nms switches to
// its "coordinate trick" (boxes shifted by class·(max+1) in float32, which
// rounds them); both implementations reproduce that rounding. Not reproduced:
// in that regime, boxes reaching below −1 can in principle overlap a shifted box
// of the neighbouring class across the gap — torchvision would then suppress
// across classes. That needs IoU > thr inside a gap of a few pixels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace damoyolo::detection {

struct Candidate {
  float score;
  int32_t class_id;
  int32_t anchor;  // row of the boxes array [*,4]
};

// The total order of detections (see above): true when a outranks b.
inline bool ranks_before(const Candidate& a, const Candidate& b) {
  if (a.score != b.score) return a.score > b.score;
  if (a.class_id != b.class_id) return a.class_id < b.class_id;
  return a.anchor < b.anchor;
}

struct NmsParams {
  double iou_threshold = 0.7;
  int max_det = 500;  // ≤ 0: no cap (the official code skips truncation then)
  // torchvision's batched_nms picks its coordinate-trick path at ≤ 4000 box
  // elements on CPU; false turns that emulation off (plain per-class NMS).
  bool emulate_coordinate_trick = true;
};

// The largest float ≤ thr: for any float x, (x > result) == (double(x) > thr),
// so float comparisons reproduce torchvision's float-vs-double test exactly.
float float_threshold_below(double thr);

// Reference implementation. `boxes` is [*,4] x1y1x2y2 indexed by anchor.
// Output sorted by ranks_before, at most max_det entries.
void nms_reference(const float* boxes, const std::vector<Candidate>& candidates,
                   const NmsParams& params, std::vector<Candidate>* out);

// The write-up's "parallel NMS": nms_reference with its classes spread over
// the calling thread's OpenMP team (greedy NMS of one class never looks at
// another), merged and truncated after. The same output as nms_reference.
// Called from the inference thread it reuses the idle oneDNN team; from any
// other thread it starts a team of its own, which competes with inference.
void nms_parallel_classes(const float* boxes, const std::vector<Candidate>& candidates,
                          const NmsParams& params, std::vector<Candidate>* out);

class FastNms {
 public:
  // Starts a new image: empties the buckets, keeping their capacity.
  void begin(int num_classes);
  // Hot path of the candidate scan.
  void add(int class_id, float score, int32_t anchor) {
    buckets_[class_id].push_back(make_key(score, anchor));
    ++count_;
  }
  int64_t candidate_count() const { return count_; }
  int num_classes() const { return num_classes_; }

  // Fast path. Allocation-free once the workspace has grown to the image's needs.
  void run(const float* boxes, const NmsParams& params, std::vector<Candidate>* out);
  // The same candidates through nms_reference (the ablation's "off" switch).
  void run_reference(const float* boxes, const NmsParams& params, std::vector<Candidate>* out);
  // The same candidates through nms_parallel_classes.
  void run_parallel_classes(const float* boxes, const NmsParams& params, std::vector<Candidate>* out);
  // The candidates added since begin(), as (score, class, anchor).
  std::vector<Candidate> candidates() const;

  // In-class sort key: ascending key = score descending, then anchor ascending.
  static uint64_t make_key(float score, int32_t anchor);
  static float key_score(uint64_t key);
  static int32_t key_anchor(uint64_t key) { return static_cast<int32_t>(key & 0xffffffffu); }

 private:
  // A class's candidates: keys[0, sorted_end) are in final order, the rest
  // are all ranked below them (nth_element) but unsorted.
  struct Stream {
    size_t pos = 0, sorted_end = 0, next_chunk = 0;
  };
  // Kept boxes of one class, SoA, zero-padded to 16 lanes so the IoU kernels
  // load whole vectors (they ignore the lanes past n).
  struct KeptBoxes {
    std::vector<float> x1, y1, x2, y2, area;
    int n = 0;
    void push(float bx1, float by1, float bx2, float by2, float barea);
  };
  // Makes keys[pos] of class c available in sorted order; false at the end.
  bool ensure_sorted(int c);
  Candidate head(int c) const {
    const uint64_t k = buckets_[c][streams_[c].pos];
    return {key_score(k), c, key_anchor(k)};
  }

  int num_classes_ = 0;
  int64_t count_ = 0;
  std::vector<std::vector<uint64_t>> buckets_;
  std::vector<Stream> streams_;
  std::vector<KeptBoxes> kept_;
  std::vector<int> live_;  // heap of classes with candidates left, best head on top
};

}  // namespace damoyolo::detection
