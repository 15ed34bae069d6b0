// Both NMS implementations must round every IoU identically, so FMA
// contraction (which GCC does even in ISO mode) is off for this file and for
// the IoU kernels (nms_simd.cc): union = a + b − w·h must not become
// fma(−w, h, a + b) in one path only.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "detection/nms.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "detection/nms_simd.h"

namespace damoyolo::detection {

namespace {

size_t cap_of(int max_det) {
  return max_det > 0 ? static_cast<size_t>(max_det) : std::numeric_limits<size_t>::max();
}

// torchvision's batched_nms: `boxes.numel() > 4000` on CPU takes the per-class
// loop; otherwise all classes go through one nms on boxes shifted by
// class·(max_coordinate + 1), computed in float32.
bool uses_coordinate_trick(const NmsParams& p, int64_t count) {
  return p.emulate_coordinate_trick && count * 4 <= 4000;
}

}  // namespace

float float_threshold_below(double thr) {
  float f = static_cast<float>(thr);
  if (static_cast<double>(f) > thr) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

uint64_t FastNms::make_key(float score, int32_t anchor) {
  if (score == 0.f) score = 0.f;  // one zero: ±0 compare equal in ranks_before
  uint32_t u = std::bit_cast<uint32_t>(score);
  // Monotone float → uint32 map, then inverted so ascending keys mean
  // descending scores; the anchor in the low half breaks ties ascending.
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (uint64_t{~u} << 32) | static_cast<uint32_t>(anchor);
}

float FastNms::key_score(uint64_t key) {
  uint32_t u = ~static_cast<uint32_t>(key >> 32);
  u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
  return std::bit_cast<float>(u);
}

namespace {

// The coordinate-trick shift (0 when it does not apply) and the candidates
// sorted by class, then rank: what both reference variants start from.
float prepare(const float* boxes, const std::vector<Candidate>& candidates, const NmsParams& params,
              std::vector<Candidate>* sorted) {
  float shift_unit = 0.f;
  if (uses_coordinate_trick(params, static_cast<int64_t>(candidates.size()))) {
    float m = -std::numeric_limits<float>::infinity();
    for (const Candidate& c : candidates)
      for (int k = 0; k < 4; ++k) m = std::max(m, boxes[int64_t{c.anchor} * 4 + k]);
    shift_unit = m + 1.0f;
  }
  *sorted = candidates;
  std::sort(sorted->begin(), sorted->end(), [](const Candidate& a, const Candidate& b) {
    if (a.class_id != b.class_id) return a.class_id < b.class_id;
    return ranks_before(a, b);
  });
  return shift_unit;
}

// torchvision's nms_kernel, loop for loop, over one class's candidates
// [first, last) of `sorted`; appends the kept ones to `kept`.
void greedy_one_class(const float* boxes, const Candidate* first, const Candidate* last, float shift_unit,
                      float thr, std::vector<Candidate>* kept) {
  const size_t n = static_cast<size_t>(last - first);
  const bool trick = shift_unit != 0.f;
  const float off = trick ? static_cast<float>(first->class_id) * shift_unit : 0.f;
  std::vector<float> x1(n), y1(n), x2(n), y2(n), area(n);
  for (size_t i = 0; i < n; ++i) {
    const float* bx = boxes + int64_t{first[i].anchor} * 4;
    x1[i] = trick ? bx[0] + off : bx[0];
    y1[i] = trick ? bx[1] + off : bx[1];
    x2[i] = trick ? bx[2] + off : bx[2];
    y2[i] = trick ? bx[3] + off : bx[3];
    area[i] = (x2[i] - x1[i]) * (y2[i] - y1[i]);
  }
  std::vector<char> suppressed(n, 0);
  for (size_t i = 0; i < n; ++i) {
    if (suppressed[i]) continue;
    kept->push_back(first[i]);
    for (size_t j = i + 1; j < n; ++j) {
      if (suppressed[j]) continue;
      const float xx1 = std::max(x1[i], x1[j]);
      const float yy1 = std::max(y1[i], y1[j]);
      const float xx2 = std::min(x2[i], x2[j]);
      const float yy2 = std::min(y2[i], y2[j]);
      const float w = std::max(0.f, xx2 - xx1);
      const float h = std::max(0.f, yy2 - yy1);
      const float inter = w * h;
      const float ovr = inter / (area[i] + area[j] - inter);
      if (ovr > thr) suppressed[j] = 1;
    }
  }
}

// Where each class's run of `sorted` starts (and, last, its end).
std::vector<size_t> class_runs(const std::vector<Candidate>& sorted) {
  std::vector<size_t> starts;
  for (size_t b = 0; b < sorted.size(); ++b)
    if (b == 0 || sorted[b].class_id != sorted[b - 1].class_id) starts.push_back(b);
  starts.push_back(sorted.size());
  return starts;
}

void merge_kept(std::vector<Candidate>& kept, const NmsParams& params, std::vector<Candidate>* out) {
  std::sort(kept.begin(), kept.end(), ranks_before);
  if (kept.size() > cap_of(params.max_det)) kept.resize(cap_of(params.max_det));
  *out = std::move(kept);
}

}  // namespace

namespace {

// nms_reference's body; `parallel` spreads the classes over the OpenMP team.
void nms_by_class(const float* boxes, const std::vector<Candidate>& candidates, const NmsParams& params,
                  bool parallel, std::vector<Candidate>* out) {
  out->clear();
  const float thr = float_threshold_below(params.iou_threshold);
  std::vector<Candidate> sorted;
  const float shift_unit = prepare(boxes, candidates, params, &sorted);
  const std::vector<size_t> runs = class_runs(sorted);
  const int classes = static_cast<int>(runs.size()) - 1;
  std::vector<std::vector<Candidate>> per_class(static_cast<size_t>(std::max(classes, 0)));
  // Classes differ a lot in size (a person class may hold most candidates):
  // dynamic scheduling, one class at a time.
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int r = 0; r < classes; ++r)
    greedy_one_class(boxes, sorted.data() + runs[r], sorted.data() + runs[r + 1], shift_unit, thr,
                     &per_class[static_cast<size_t>(r)]);
  std::vector<Candidate> kept;
  for (auto& k : per_class) kept.insert(kept.end(), k.begin(), k.end());
  merge_kept(kept, params, out);
}

}  // namespace

void nms_reference(const float* boxes, const std::vector<Candidate>& candidates,
                   const NmsParams& params, std::vector<Candidate>* out) {
  nms_by_class(boxes, candidates, params, /*parallel=*/false, out);
}

void nms_parallel_classes(const float* boxes, const std::vector<Candidate>& candidates,
                          const NmsParams& params, std::vector<Candidate>* out) {
  nms_by_class(boxes, candidates, params, /*parallel=*/true, out);
}

void FastNms::begin(int num_classes) {
  if (static_cast<int>(buckets_.size()) < num_classes) buckets_.resize(num_classes);
  for (auto& b : buckets_) b.clear();  // clear() keeps each bucket's capacity
  num_classes_ = num_classes;
  count_ = 0;
}

std::vector<Candidate> FastNms::candidates() const {
  std::vector<Candidate> all;
  all.reserve(static_cast<size_t>(count_));
  for (int c = 0; c < num_classes_; ++c)
    for (uint64_t k : buckets_[c]) all.push_back({key_score(k), c, key_anchor(k)});
  return all;
}

void FastNms::run_reference(const float* boxes, const NmsParams& params, std::vector<Candidate>* out) {
  nms_reference(boxes, candidates(), params, out);
}

void FastNms::run_parallel_classes(const float* boxes, const NmsParams& params, std::vector<Candidate>* out) {
  nms_parallel_classes(boxes, candidates(), params, out);
}

void FastNms::KeptBoxes::push(float bx1, float by1, float bx2, float by2, float barea) {
  if (n % 16 == 0) {
    const size_t need = static_cast<size_t>(n) + 16;
    for (auto* v : {&x1, &y1, &x2, &y2, &area}) {
      if (v->size() < need) v->resize(need);
      std::fill(v->begin() + n, v->begin() + need, 0.f);
    }
  }
  x1[n] = bx1;
  y1[n] = by1;
  x2[n] = bx2;
  y2[n] = by2;
  area[n] = barea;
  ++n;
}

bool FastNms::ensure_sorted(int c) {
  Stream& s = streams_[c];
  auto& keys = buckets_[c];
  if (s.pos < s.sorted_end) return true;
  if (s.pos >= keys.size()) return false;
  // Sort lazily in growing chunks: with a cap of 500 most of a large bucket
  // is never reached, so a full sort would be the dominant cost.
  // A partition only pays when it leaves most of the remainder unsorted.
  size_t end = s.pos + s.next_chunk;
  if (end + 2 * s.next_chunk >= keys.size()) end = keys.size();
  if (end < keys.size()) std::nth_element(keys.begin() + s.pos, keys.begin() + end, keys.end());
  std::sort(keys.begin() + s.pos, keys.begin() + end);
  s.sorted_end = end;
  s.next_chunk *= 4;
  return true;
}

void FastNms::run(const float* boxes, const NmsParams& params, std::vector<Candidate>* out) {
  out->clear();
  const size_t cap = cap_of(params.max_det);
  const float thr = float_threshold_below(params.iou_threshold);
  const IouAboveFn iou_above = kIouAbove.current();  // this CPU's (or DAMOYOLO_ISA's) level

  const bool trick = uses_coordinate_trick(params, count_);
  float shift_unit = 0.f;
  if (trick) {
    float m = -std::numeric_limits<float>::infinity();
    for (int c = 0; c < num_classes_; ++c)
      for (uint64_t k : buckets_[c])
        for (int j = 0; j < 4; ++j) m = std::max(m, boxes[int64_t{key_anchor(k)} * 4 + j]);
    shift_unit = m + 1.0f;
  }

  streams_.assign(num_classes_, Stream{0, 0, 64});
  if (static_cast<int>(kept_.size()) < num_classes_) kept_.resize(num_classes_);
  live_.clear();
  for (int c = 0; c < num_classes_; ++c) {
    kept_[c].n = 0;
    if (ensure_sorted(c)) live_.push_back(c);
  }
  // Heap of classes by their next candidate: the best-ranked head on top.
  auto ranks_after = [this](int a, int b) { return ranks_before(head(b), head(a)); };
  std::make_heap(live_.begin(), live_.end(), ranks_after);

  while (!live_.empty() && out->size() < cap) {
    std::pop_heap(live_.begin(), live_.end(), ranks_after);
    const int c = live_.back();
    live_.pop_back();
    const float off = trick ? static_cast<float>(c) * shift_unit : 0.f;
    KeptBoxes& kept = kept_[c];
    // Stay on this class while its head outranks every other class's head:
    // the global order is preserved without a heap operation per candidate.
    bool more;
    do {
      const Candidate cand = head(c);
      const float* b = boxes + int64_t{cand.anchor} * 4;
      const float x1 = trick ? b[0] + off : b[0];
      const float y1 = trick ? b[1] + off : b[1];
      const float x2 = trick ? b[2] + off : b[2];
      const float y2 = trick ? b[3] + off : b[3];
      const float area = (x2 - x1) * (y2 - y1);
      if (!iou_above(kept.x1.data(), kept.y1.data(), kept.x2.data(), kept.y2.data(), kept.area.data(),
                     kept.n, x1, y1, x2, y2, area, thr)) {
        kept.push(x1, y1, x2, y2, area);
        out->push_back(cand);
      }
      ++streams_[c].pos;
      more = ensure_sorted(c);
    } while (more && out->size() < cap && (live_.empty() || ranks_before(head(c), head(live_.front()))));
    if (more) {
      live_.push_back(c);
      std::push_heap(live_.begin(), live_.end(), ranks_after);
    }
  }
  // Candidates come out of the merge in global rank order, so `out` needs no sort.
}

}  // namespace damoyolo::detection
