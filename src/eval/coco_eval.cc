// COCOeval(iouType='bbox') with default Params, reproduced step by step:
// evaluateImg per (category, area range, image), accumulate per
// (category, area range, maxDets), summarize over the accumulated arrays.
//
// Bit-level fidelity matters where pycocotools compares: IoU against the
// thresholds and recall against the recall thresholds. So the thresholds are
// built as numpy.linspace builds them, IoU is computed with the operation order
// of maskUtils' C code, and no product may be fused into an FMA (see strict_mul).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <unordered_map>

#include "damoyolo/coco_eval.h"

namespace damoyolo {

namespace {

constexpr int T = kCocoIouThresholds;
constexpr int R = kCocoRecallThresholds;
constexpr int A = kCocoAreaRanges;
constexpr int M = kCocoMaxDets;
constexpr int kMaxDets[M] = {1, 10, 100};
// Params.areaRng: [0², 1e5²], [0², 32²], [32², 96²], [96², 1e5²]; both ends
// inclusive (an object of area exactly 32² is small *and* medium).
constexpr double kAreaRange[A][2] = {{0, 1e10}, {0, 1024}, {1024, 9216}, {9216, 1e10}};

// The library is built with -march=native, and C++ lets GCC contract a*b+c
// into an FMA, which rounds once instead of twice. pycocotools' C code (built
// for baseline x86-64) rounds the product first; a volatile round trip forces
// the same here. Only used outside the hot paths that do not need it.
inline double strict_mul(double a, double b) {
  volatile double p = a * b;
  return p;
}

// numpy.linspace(start, stop, num): arange(num) * step + start, with the last
// element replaced by stop.
template <size_t N>
std::array<double, N> linspace(double start, double stop) {
  std::array<double, N> y{};
  const double step = (stop - start) / static_cast<double>(N - 1);
  for (size_t i = 0; i < N; ++i) y[i] = strict_mul(static_cast<double>(i), step) + start;
  y[N - 1] = stop;
  return y;
}

const std::array<double, T>& iou_thrs() {
  static const std::array<double, T> v = linspace<T>(0.5, 0.95);
  return v;
}
const std::array<double, R>& rec_thrs() {
  static const std::array<double, R> v = linspace<R>(0.0, 1.0);
  return v;
}

// numpy's ascending order for float64 (NaN last), used on negated scores so
// that a stable sort reproduces argsort(-scores, kind='mergesort').
inline bool numpy_less(double x, double y) { return x < y || (std::isnan(y) && !std::isnan(x)); }

// Stable descending-by-score order of `scores`.
std::vector<int> score_order(const std::vector<double>& scores) {
  std::vector<int> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return numpy_less(-scores[static_cast<size_t>(a)], -scores[static_cast<size_t>(b)]); });
  return order;
}

// maskUtils bbIou for one pair: boxes are [x, y, w, h]; a crowd ground truth
// divides by the detection's area instead of the union.
double box_iou(const std::array<double, 4>& d, const std::array<double, 4>& g, bool crowd) {
  const double ga = strict_mul(g[2], g[3]);
  const double da = strict_mul(d[2], d[3]);
  const double w = std::fmin(d[2] + d[0], g[2] + g[0]) - std::fmax(d[0], g[0]);
  if (w <= 0) return 0;
  const double h = std::fmin(d[3] + d[1], g[3] + g[1]) - std::fmax(d[1], g[1]);
  if (h <= 0) return 0;
  const double inter = strict_mul(w, h);
  const double uni = crowd ? da : da + ga - inter;
  return inter / uni;
}

// One evaluateImg() result, reduced to what accumulate() reads.
struct ImageEval {
  std::vector<double> scores;     // D, best first
  std::vector<uint8_t> matched;   // [T][D]: dtMatches != 0
  std::vector<uint8_t> ignored;   // [T][D]: dtIgnore
  int64_t num_gt_counted = 0;     // gtIgnore == 0
};

// Ground truth and detections of one (image, category), in input order.
struct Cell {
  std::vector<const CocoAnnotation*> gt;
  std::vector<const CocoDetection*> dt;
};

// evaluate() for one (image, category): the IoU matrix once (computeIoU), then
// evaluateImg for each area range.
void evaluate_cell(const Cell& cell, std::array<std::vector<ImageEval>, A>& out) {
  const size_t G = cell.gt.size();
  // Detections best first (stable), at most maxDets[-1].
  std::vector<double> all_scores(cell.dt.size());
  for (size_t j = 0; j < cell.dt.size(); ++j) all_scores[j] = cell.dt[j]->score;
  std::vector<int> order = score_order(all_scores);
  if (order.size() > static_cast<size_t>(kMaxDets[M - 1])) order.resize(static_cast<size_t>(kMaxDets[M - 1]));
  const size_t D = order.size();
  std::vector<const CocoDetection*> dt(D);
  for (size_t j = 0; j < D; ++j) dt[j] = cell.dt[static_cast<size_t>(order[j])];

  std::vector<double> ious(D * G);  // [d][g], g in input order
  for (size_t d = 0; d < D; ++d)
    for (size_t g = 0; g < G; ++g) ious[d * G + g] = box_iou(dt[d]->bbox, cell.gt[g]->bbox, cell.gt[g]->iscrowd);

  std::vector<double> dt_area(D);
  for (size_t d = 0; d < D; ++d) dt_area[d] = strict_mul(dt[d]->bbox[2], dt[d]->bbox[3]);  // loadRes: bb[2]*bb[3]

  const double* thr = iou_thrs().data();
  std::vector<uint8_t> gt_ignore(G);
  std::vector<size_t> gt_order(G);
  std::vector<uint8_t> gt_matched(G);
  for (int a = 0; a < A; ++a) {
    const double lo = kAreaRange[a][0], hi = kAreaRange[a][1];
    for (size_t g = 0; g < G; ++g) {
      const CocoAnnotation& ann = *cell.gt[g];
      gt_ignore[g] = ann.iscrowd || ann.area < lo || ann.area > hi;
    }
    // argsort(_ignore, mergesort): counted ground truth first, each group in input order.
    std::iota(gt_order.begin(), gt_order.end(), size_t{0});
    std::stable_partition(gt_order.begin(), gt_order.end(), [&](size_t g) { return !gt_ignore[g]; });

    ImageEval ev;
    ev.scores.resize(D);
    for (size_t d = 0; d < D; ++d) ev.scores[d] = dt[d]->score;
    ev.matched.assign(static_cast<size_t>(T) * D, 0);
    ev.ignored.assign(static_cast<size_t>(T) * D, 0);
    for (size_t g = 0; g < G; ++g) ev.num_gt_counted += gt_ignore[g] ? 0 : 1;

    if (D > 0 && G > 0) {
      for (int t = 0; t < T; ++t) {
        std::fill(gt_matched.begin(), gt_matched.end(), 0);
        for (size_t d = 0; d < D; ++d) {
          double best = std::min(thr[t], 1 - 1e-10);
          ptrdiff_t m = -1;  // position in gt_order
          for (size_t p = 0; p < G; ++p) {
            const size_t g = gt_order[p];
            // A matched regular box is taken; a crowd region can absorb any number of detections.
            if (gt_matched[p] && !cell.gt[g]->iscrowd) continue;
            // Already on a counted box and the rest are ignored ones: a counted match wins.
            if (m > -1 && !gt_ignore[gt_order[static_cast<size_t>(m)]] && gt_ignore[g]) break;
            const double iou = ious[d * G + g];
            if (iou < best) continue;
            best = iou;
            m = static_cast<ptrdiff_t>(p);
          }
          if (m == -1) continue;
          const CocoAnnotation& hit = *cell.gt[gt_order[static_cast<size_t>(m)]];
          ev.ignored[static_cast<size_t>(t) * D + d] = gt_ignore[gt_order[static_cast<size_t>(m)]];
          // pycocotools stores the ground truth's id and tests it against 0,
          // so a match with an annotation whose id is 0 reads as no match.
          // Reproduced on purpose; real COCO ids start at 1.
          ev.matched[static_cast<size_t>(t) * D + d] = hit.id != 0;
          gt_matched[static_cast<size_t>(m)] = 1;
        }
      }
    }
    // Unmatched detections outside the area range do not count.
    for (size_t d = 0; d < D; ++d) {
      const bool outside = dt_area[d] < lo || dt_area[d] > hi;
      if (!outside) continue;
      for (int t = 0; t < T; ++t) {
        const size_t i = static_cast<size_t>(t) * D + d;
        if (!ev.matched[i]) ev.ignored[i] = 1;
      }
    }
    out[static_cast<size_t>(a)].push_back(std::move(ev));
  }
}

// numpy's pairwise summation (add.reduce on a contiguous float64 array), so
// the means agree with np.mean to the last bit in the common cases.
double pairwise_sum(const double* a, size_t n) {
  if (n < 8) {
    double res = 0.;
    for (size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

double mean_defined(const std::vector<double>& values) {
  std::vector<double> kept;
  kept.reserve(values.size());
  for (double v : values)
    if (v > -1) kept.push_back(v);
  if (kept.empty()) return -1;
  return pairwise_sum(kept.data(), kept.size()) / static_cast<double>(kept.size());
}

size_t p_index(size_t K, int t, int r, size_t k, int a, int m) {
  return (((static_cast<size_t>(t) * R + static_cast<size_t>(r)) * K + k) * A + static_cast<size_t>(a)) * M +
         static_cast<size_t>(m);
}
size_t r_index(size_t K, int t, size_t k, int a, int m) {
  return ((static_cast<size_t>(t) * K + k) * A + static_cast<size_t>(a)) * M + static_cast<size_t>(m);
}

// accumulate() for one (category, area range, maxDets).
void accumulate_one(const std::vector<ImageEval>& evals, size_t K, size_t k, int a, int m, CocoEvaluation& out) {
  if (evals.empty()) return;
  const size_t max_det = static_cast<size_t>(kMaxDets[m]);
  int64_t npig = 0;
  std::vector<double> scores;
  std::vector<std::pair<const ImageEval*, size_t>> source;  // (image, detection) per concatenated entry
  for (const ImageEval& e : evals) {
    npig += e.num_gt_counted;
    const size_t n = std::min(max_det, e.scores.size());
    for (size_t d = 0; d < n; ++d) {
      scores.push_back(e.scores[d]);
      source.emplace_back(&e, d);
    }
  }
  if (npig == 0) return;
  const std::vector<int> order = score_order(scores);
  const size_t nd = order.size();
  const double eps = std::numeric_limits<double>::epsilon();  // np.spacing(1)
  std::vector<double> rc(nd), pr(nd);
  for (int t = 0; t < T; ++t) {
    int64_t tp = 0, fp = 0;
    for (size_t j = 0; j < nd; ++j) {
      const auto& [e, d] = source[static_cast<size_t>(order[j])];
      const size_t i = static_cast<size_t>(t) * e->scores.size() + d;
      if (!e->ignored[i]) (e->matched[i] ? tp : fp) += 1;
      const double tpf = static_cast<double>(tp), fpf = static_cast<double>(fp);
      rc[j] = tpf / static_cast<double>(npig);
      pr[j] = tpf / (fpf + tpf + eps);
    }
    out.recall[r_index(K, t, k, a, m)] = nd ? rc[nd - 1] : 0;
    for (size_t j = nd; j-- > 1;)
      if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
    const auto& rt = rec_thrs();
    for (int r = 0; r < R; ++r) {
      // searchsorted(rc, recThr, side='left'); past the end, pycocotools'
      // try/except leaves the rest of the row at 0.
      const size_t pos = static_cast<size_t>(std::lower_bound(rc.begin(), rc.end(), rt[static_cast<size_t>(r)]) - rc.begin());
      out.precision[p_index(K, t, r, k, a, m)] = pos < nd ? pr[pos] : 0.0;
    }
  }
}

CocoMetrics summarize(const CocoEvaluation& ev) {
  const size_t K = ev.category_ids.size();
  // Entries in numpy's C order of the sliced array (t, r, k), which is the
  // order np.mean sums them in.
  auto ap = [&](int t_only, int a) {
    std::vector<double> s;
    for (int t = 0; t < T; ++t) {
      if (t_only >= 0 && t != t_only) continue;
      for (int r = 0; r < R; ++r)
        for (size_t k = 0; k < K; ++k) s.push_back(ev.precision[p_index(K, t, r, k, a, M - 1)]);
    }
    return mean_defined(s);
  };
  auto ar = [&](int a, int m) {
    std::vector<double> s;
    for (int t = 0; t < T; ++t)
      for (size_t k = 0; k < K; ++k) s.push_back(ev.recall[r_index(K, t, k, a, m)]);
    return mean_defined(s);
  };
  CocoMetrics mt;
  // iouThr .5 and .75 are linspace entries 0 and 5 (np.where finds them exactly).
  mt.stats = {ap(-1, 0), ap(0, 0), ap(5, 0), ap(-1, 1), ap(-1, 2), ap(-1, 3),
              ar(0, 0),  ar(0, 1), ar(0, 2), ar(1, 2),  ar(2, 2),  ar(3, 2)};
  return mt;
}

CocoEvaluation evaluate(const CocoDataset& dataset, std::span<const CocoDetection> detections) {
  CocoEvaluation ev;
  // Params.imgIds / catIds: sorted unique ids of the ground-truth file.
  std::vector<int64_t> img_ids;
  img_ids.reserve(dataset.images.size());
  for (const CocoImage& im : dataset.images) img_ids.push_back(im.id);
  std::sort(img_ids.begin(), img_ids.end());
  img_ids.erase(std::unique(img_ids.begin(), img_ids.end()), img_ids.end());
  for (const CocoCategory& c : dataset.categories) ev.category_ids.push_back(c.id);
  std::sort(ev.category_ids.begin(), ev.category_ids.end());
  ev.category_ids.erase(std::unique(ev.category_ids.begin(), ev.category_ids.end()), ev.category_ids.end());
  const size_t I = img_ids.size(), K = ev.category_ids.size();

  std::unordered_map<int64_t, size_t> img_index, cat_index;
  for (size_t i = 0; i < I; ++i) img_index.emplace(img_ids[i], i);
  for (size_t k = 0; k < K; ++k) cat_index.emplace(ev.category_ids[k], k);

  // pycocotools asserts that every result's image is in the ground truth.
  for (const CocoDetection& d : detections)
    if (!img_index.count(d.image_id))
      throw Error(ErrorCode::kNotFound, "a detection refers to image id " + std::to_string(d.image_id) +
                                            ", which the annotation file does not have");

  // Cells keyed by (category, image), only those that hold something. Ground
  // truth of unknown images or categories is not evaluated (getAnnIds filters
  // it out); detections of unknown categories likewise, but they are counted.
  std::vector<std::unordered_map<size_t, Cell>> cells(K);
  for (const CocoAnnotation& g : dataset.annotations) {
    auto ii = img_index.find(g.image_id);
    auto kk = cat_index.find(g.category_id);
    if (ii == img_index.end() || kk == cat_index.end()) continue;
    cells[kk->second][ii->second].gt.push_back(&g);
  }
  for (const CocoDetection& d : detections) {
    auto kk = cat_index.find(d.category_id);
    if (kk == cat_index.end()) {
      ++ev.skipped_detections;
      continue;
    }
    cells[kk->second][img_index.at(d.image_id)].dt.push_back(&d);
  }

  ev.precision.assign(static_cast<size_t>(T) * R * K * A * M, -1.0);
  ev.recall.assign(static_cast<size_t>(T) * K * A * M, -1.0);
  for (size_t k = 0; k < K; ++k) {
    // Images in ascending id order: accumulate concatenates in that order,
    // and it decides the order of equal scores.
    std::vector<size_t> imgs;
    imgs.reserve(cells[k].size());
    for (const auto& [i, cell] : cells[k]) imgs.push_back(i);
    std::sort(imgs.begin(), imgs.end());
    std::array<std::vector<ImageEval>, A> per_area;
    for (size_t i : imgs) evaluate_cell(cells[k][i], per_area);
    cells[k].clear();
    for (int a = 0; a < A; ++a)
      for (int m = 0; m < M; ++m) accumulate_one(per_area[static_cast<size_t>(a)], K, k, a, m, ev);
  }
  ev.metrics = summarize(ev);
  return ev;
}

}  // namespace

std::span<const double> coco_iou_thresholds() { return iou_thrs(); }
std::span<const double> coco_recall_thresholds() { return rec_thrs(); }

std::span<const std::string_view> CocoMetrics::names() {
  static constexpr std::array<std::string_view, 12> kNames = {"AP",  "AP50", "AP75", "APs",   "APm", "APl",
                                                             "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
  return kNames;
}

double CocoEvaluation::precision_at(int t, int r, int k, int a, int m) const {
  return precision.at(p_index(category_ids.size(), t, r, static_cast<size_t>(k), a, m));
}
double CocoEvaluation::recall_at(int t, int k, int a, int m) const {
  return recall.at(r_index(category_ids.size(), t, static_cast<size_t>(k), a, m));
}

Result<CocoEvaluation> evaluate_coco_bbox(const CocoDataset& dataset, std::span<const CocoDetection> detections) {
  try {
    return evaluate(dataset, detections);
  } catch (const Error& e) {
    return e.status();
  }
}

std::string format_coco_summary(const CocoMetrics& metrics) {
  struct Line {
    bool ap;
    const char* iou;
    const char* area;
    int max_dets;
  };
  static constexpr Line kLines[12] = {
      {true, "0.50:0.95", "all", 100},   {true, "0.50", "all", 100},      {true, "0.75", "all", 100},
      {true, "0.50:0.95", "small", 100}, {true, "0.50:0.95", "medium", 100}, {true, "0.50:0.95", "large", 100},
      {false, "0.50:0.95", "all", 1},    {false, "0.50:0.95", "all", 10}, {false, "0.50:0.95", "all", 100},
      {false, "0.50:0.95", "small", 100}, {false, "0.50:0.95", "medium", 100}, {false, "0.50:0.95", "large", 100}};
  std::string out;
  char buf[160];
  for (int i = 0; i < 12; ++i) {
    const Line& l = kLines[i];
    // ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'
    std::snprintf(buf, sizeof buf, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
                  l.ap ? "Average Precision" : "Average Recall", l.ap ? "(AP)" : "(AR)", l.iou, l.area, l.max_dets,
                  metrics.stats[static_cast<size_t>(i)]);
    out += buf;
  }
  return out;
}

std::string coco_metrics_json(const CocoMetrics& metrics) {
  nlohmann::ordered_json j;
  for (size_t i = 0; i < 12; ++i) j[std::string(CocoMetrics::names()[i])] = metrics.stats[i];
  return j.dump(2) + "\n";
}

}  // namespace damoyolo
