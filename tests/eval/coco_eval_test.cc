// Hand-built COCO bbox cases. Every expected number is derived in the comment
// above it from COCOeval's definition (docs/evaluation.md): per IoU threshold
// the detections are walked best first, precision p_j = tp_j / (tp_j + fp_j)
// is made monotone from the right, and AP is the mean of p at the first
// position whose recall reaches r/100, r = 0..100 (0 past the last recall).
#include <gtest/gtest.h>

#include "damoyolo/coco_eval.h"

namespace damoyolo {
namespace {

constexpr double kTol = 1e-12;

enum Stat { AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl };

class Builder {
 public:
  explicit Builder(std::vector<int64_t> image_ids = {1}, std::vector<int64_t> cat_ids = {1}) {
    for (int64_t id : image_ids) ds.images.push_back({id, "img" + std::to_string(id) + ".jpg", 640, 480});
    for (int64_t id : cat_ids) ds.categories.push_back({id, "class" + std::to_string(id)});
  }
  // area < 0: w·h.
  Builder& gt(int64_t image, int64_t cat, std::array<double, 4> box, bool crowd = false, double area = -1) {
    CocoAnnotation a;
    a.id = static_cast<int64_t>(ds.annotations.size()) + 1;
    a.image_id = image;
    a.category_id = cat;
    a.bbox = box;
    a.area = area < 0 ? box[2] * box[3] : area;
    a.iscrowd = crowd;
    ds.annotations.push_back(a);
    return *this;
  }
  Builder& dt(int64_t image, int64_t cat, std::array<double, 4> box, double score) {
    dets.push_back({image, cat, box, score});
    return *this;
  }
  CocoEvaluation run() const {
    auto r = evaluate_coco_bbox(ds, dets);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : CocoEvaluation{};
  }
  std::array<double, 12> stats() const { return run().metrics.stats; }

  CocoDataset ds;
  std::vector<CocoDetection> dets;
};

void expect_stats(const std::array<double, 12>& got, const std::array<double, 12>& want) {
  for (size_t i = 0; i < 12; ++i)
    EXPECT_NEAR(got[i], want[i], kTol) << CocoMetrics::names()[i] << " (stats[" << i << "])";
}

TEST(CocoParams, ThresholdsAreNumpyLinspaceValues) {
  // Printed by numpy 1.24: np.linspace(.5, .95, 10) in hex.
  const double iou[10] = {0x1.0000000000000p-1, 0x1.199999999999ap-1, 0x1.3333333333333p-1, 0x1.4cccccccccccdp-1,
                          0x1.6666666666666p-1, 0x1.8000000000000p-1, 0x1.999999999999ap-1, 0x1.b333333333333p-1,
                          0x1.cccccccccccccp-1, 0x1.e666666666666p-1};
  auto t = coco_iou_thresholds();
  ASSERT_EQ(t.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(t[i], iou[i]) << i;
  EXPECT_EQ(t[5], 0.75);  // summarize() finds .75 by equality
  // np.linspace(0, 1, 101)[i] differs from the literal i/100 exactly here.
  auto r = coco_recall_thresholds();
  ASSERT_EQ(r.size(), 101u);
  const std::vector<int> differ = {35, 41, 47, 57, 69, 70, 82, 83, 94, 95};
  for (int i = 0; i <= 100; ++i) {
    bool expect_differ = std::find(differ.begin(), differ.end(), i) != differ.end();
    EXPECT_EQ(r[i] != i / 100.0, expect_differ) << i;
  }
  EXPECT_EQ(r[35], 0x1.6666666666667p-2);
  EXPECT_EQ(r[41], 0x1.a3d70a3d70a3ep-2);
}

TEST(CocoEval, PerfectDetectionsScoreOneAndMinusOneWithoutGroundTruth) {
  Builder b({1, 2}, {1, 2});
  b.gt(1, 1, {10, 10, 50, 50})      // 2500: medium
      .gt(2, 1, {0, 0, 200, 100})   // 20000: large
      .gt(2, 2, {5, 5, 100, 100});  // 10000: large
  for (const auto& a : b.ds.annotations) b.dt(a.image_id, a.category_id, a.bbox, 0.9);
  // No small ground truth at all -> APs = ARs = -1; category 2 has no medium
  // ground truth (-1, left out of the mean) so APm is category 1's 1.0.
  expect_stats(b.stats(), {1, 1, 1, -1, 1, 1, 1, 1, 1, -1, 1, 1});
}

TEST(CocoEval, HalfFoundFollowsTheHandComputedCurve) {
  // 4 ground-truth boxes, 2 found. Best first: TP, FP, TP, FP.
  //   tp 1 1 2 2, fp 0 1 1 2, recall .25 .25 .5 .5, precision 1 .5 2/3 .5
  //   monotone from the right: 1 2/3 2/3 .5
  //   r = 0..25 -> 1 (26 points), r = 26..50 -> 2/3 (25), r = 51..100 -> 0
  //   AP = (26 + 25·2/3) / 101 = 128/303 at every IoU threshold (exact boxes).
  Builder b;
  b.gt(1, 1, {0, 0, 100, 100}).gt(1, 1, {200, 0, 100, 100}).gt(1, 1, {400, 0, 100, 100}).gt(1, 1, {600, 0, 100, 100});
  b.dt(1, 1, {0, 0, 100, 100}, 0.9)
      .dt(1, 1, {0, 300, 100, 100}, 0.8)  // FP, large like everything here
      .dt(1, 1, {200, 0, 100, 100}, 0.7)
      .dt(1, 1, {200, 300, 100, 100}, 0.6);
  const double ap = 128.0 / 303.0;
  // AR1 sees only the best detection: 1 of 4.
  expect_stats(b.stats(), {ap, ap, ap, -1, -1, ap, 0.25, 0.5, 0.5, -1, -1, 0.5});

  CocoEvaluation ev = b.run();
  EXPECT_NEAR(ev.precision_at(0, 25, 0, 0, 2), 1.0, kTol);
  EXPECT_NEAR(ev.precision_at(0, 26, 0, 0, 2), 2.0 / 3.0, kTol);
  EXPECT_NEAR(ev.precision_at(0, 50, 0, 0, 2), 2.0 / 3.0, kTol);
  EXPECT_EQ(ev.precision_at(0, 51, 0, 0, 2), 0.0);
  EXPECT_EQ(ev.recall_at(9, 0, 0, 2), 0.5);
}

TEST(CocoEval, DetectionsOnCrowdRegionsAreIgnoredNotFalsePositives) {
  // A regular box and a crowd region; the two best detections lie inside the
  // crowd region. Crowd IoU = intersection / detection area = 1, so both match
  // it (a crowd region takes any number) and are ignored. The crowd box itself
  // is never counted: 1 object, found -> everything 1, except AR1: with one
  // detection per image only the best (ignored, on the crowd) is seen -> 0.
  auto make = [](bool crowd) {
    Builder b;
    b.gt(1, 1, {0, 0, 100, 100}).gt(1, 1, {200, 0, 300, 300}, crowd);
    b.dt(1, 1, {250, 50, 50, 50}, 0.95).dt(1, 1, {300, 100, 60, 60}, 0.92).dt(1, 1, {0, 0, 100, 100}, 0.9);
    return b;
  };
  expect_stats(make(true).stats(), {1, 1, 1, -1, -1, 1, 0, 1, 1, -1, -1, 1});
  // The same region as a regular box: IoU 2500/90000, so both are FPs ahead of
  // the TP, and the region is a missed object.
  //   tp 0 0 1, fp 1 2 2, recall 0 0 .5, precision 0 0 1/3 -> monotone 1/3 1/3 1/3
  //   r = 0..50 -> 1/3, r > 50 -> 0: AP = 51/101 · 1/3 = 17/101.
  // AR1: the best detection is an FP -> 0; AR10 = .5.
  // large: the two FPs (areas 2500, 3600) are unmatched and outside the range
  //   -> ignored, so the TP leads: precision 1 up to recall .5, APl = 51/101.
  const double ap = 17.0 / 101.0;
  expect_stats(make(false).stats(), {ap, ap, ap, -1, -1, 51.0 / 101.0, 0, 0.5, 0.5, -1, -1, 0.5});
}

TEST(CocoEval, AreaRangesUseTheAnnotationAreaAndIgnoreOutsiders) {
  // small S (400), medium Mg (2500, missed), large L (14400); a small FP scores best.
  Builder b;
  b.gt(1, 1, {0, 0, 20, 20}).gt(1, 1, {100, 0, 50, 50}).gt(1, 1, {300, 0, 120, 120});
  b.dt(1, 1, {0, 500, 10, 10}, 0.95).dt(1, 1, {0, 0, 20, 20}, 0.9).dt(1, 1, {300, 0, 120, 120}, 0.8);
  // all: FP, TP, TP; tp 0 1 2, fp 1 1 1, recall 0 1/3 2/3, precision 0 .5 2/3
  //   -> monotone 2/3 everywhere; r = 0..66 reach it (0.66 <= 2/3 < 0.67):
  //   AP = 67/101 · 2/3 = 134/303. AR1: the FP alone -> 0.
  // small: S counted; the large TP matches an ignored box -> ignored.
  //   FP, TP: precision 0 .5 -> .5 .5, recall reaches 1: APs = .5, ARs = 1.
  // medium: Mg counted, missed; the small FP is outside the range and
  //   unmatched -> ignored; both TPs sit on ignored boxes -> ignored.
  //   Nothing counts: precision 0 at r = 0, APm = 0, ARm = 0.
  // large: L found; the rest ignored -> APl = ARl = 1.
  const double ap = 134.0 / 303.0;
  expect_stats(b.stats(), {ap, ap, ap, 0.5, 0, 1, 0, 2.0 / 3.0, 2.0 / 3.0, 1, 0, 1});
}

TEST(CocoEval, AreaRangeEndsAreInclusive) {
  // area exactly 32² is small and medium; the `area` field rules, not w·h.
  Builder b;
  b.gt(1, 1, {0, 0, 32, 32}).gt(1, 1, {100, 100, 10, 10}, false, 96.0 * 96.0);
  b.dt(1, 1, {0, 0, 32, 32}, 0.9).dt(1, 1, {100, 100, 10, 10}, 0.8);
  // small: box 1 counted; box 2 (area 9216) ignored, its detection matches it
  // -> ignored. medium: both counted (1024 and 9216 are inside). large: box 2
  // counted, box 1 ignored with its detection.
  expect_stats(b.stats(), {1, 1, 1, 1, 1, 1, 0.5, 1, 1, 1, 1, 1});
}

TEST(CocoEval, IouThresholdsAreInclusive) {
  // IoU exactly .5 (5000/10000) matches at t = .50 only (a large object): AP50 = 1, other
  // thresholds have a lone FP (precision 0). AP = 1/10, AR = 1/10.
  Builder half;
  half.gt(1, 1, {0, 0, 100, 100}).dt(1, 1, {0, 0, 100, 50}, 0.9);
  expect_stats(half.stats(), {0.1, 1, 0, -1, -1, 0.1, 0.1, 0.1, 0.1, -1, -1, 0.1});
  // IoU exactly .75 matches for the 6 thresholds .50 ... .75 (the linspace
  // value at index 5 is exactly 0.75).
  Builder three_q;
  three_q.gt(1, 1, {0, 0, 100, 100}).dt(1, 1, {0, 0, 100, 75}, 0.9);
  expect_stats(three_q.stats(), {0.6, 1, 1, -1, -1, 0.6, 0.6, 0.6, 0.6, -1, -1, 0.6});
}

TEST(CocoEval, OnlyTheBest100DetectionsPerImageAndCategoryCount) {
  // One object; 100 better-scored FPs push its TP to rank 101, past maxDets.
  auto make = [](int fps, int64_t fp_cat) {
    Builder b({1}, {1, 2});
    b.gt(1, 1, {0, 0, 100, 100}).gt(1, 2, {1000, 1000, 10, 10});
    for (int i = 0; i < fps; ++i) b.dt(1, fp_cat, {500, 0, 100, 100}, 0.99 - 0.001 * i);
    b.dt(1, 1, {0, 0, 100, 100}, 0.01);
    return b.run();
  };
  // 100 FPs of the same category: the TP is cut -> category 1 AP 0, AR 0.
  CocoEvaluation cut = make(100, 1);
  EXPECT_EQ(cut.recall_at(0, 0, 0, 2), 0.0);
  EXPECT_EQ(cut.precision_at(0, 0, 0, 0, 2), 0.0);
  // 99 FPs: the TP is 100th. recall 0 ... 0 1, precision ... 1/100 -> monotone
  // 1/100 throughout: AP = 0.01, AR100 = 1, AR10 = AR1 = 0.
  CocoEvaluation kept = make(99, 1);
  EXPECT_NEAR(kept.precision_at(0, 0, 0, 0, 2), 0.01, kTol);
  EXPECT_NEAR(kept.precision_at(0, 100, 0, 0, 2), 0.01, kTol);
  EXPECT_EQ(kept.recall_at(0, 0, 0, 2), 1.0);
  EXPECT_EQ(kept.recall_at(0, 0, 0, 1), 0.0);
  // The cut is per (image, category): 100 FPs of category 2 leave category
  // 1's TP alone. Category 1: AP 1; category 2: nothing found, AP 0 -> mean .5.
  CocoEvaluation per_cat = make(100, 2);
  EXPECT_NEAR(per_cat.metrics.stats[AP], 0.5, kTol);
  EXPECT_EQ(per_cat.recall_at(0, 0, 0, 2), 1.0);
}

TEST(CocoEval, DuplicateDetectionIsAFalsePositive) {
  // Two objects; the first is detected twice. Best first: TP, duplicate, TP.
  //   tp 1 1 2, fp 0 1 1, recall .5 .5 1, precision 1 .5 2/3 -> 1 2/3 2/3
  //   r = 0..50 -> 1 (51), r = 51..100 -> 2/3 (50): AP = (51 + 100/3)/101 = 253/303.
  Builder b;
  b.gt(1, 1, {0, 0, 100, 100}).gt(1, 1, {300, 0, 100, 100});
  b.dt(1, 1, {0, 0, 100, 100}, 0.9).dt(1, 1, {0, 0, 100, 100}, 0.8).dt(1, 1, {300, 0, 100, 100}, 0.7);
  const double ap = 253.0 / 303.0;
  expect_stats(b.stats(), {ap, ap, ap, -1, -1, ap, 0.5, 1, 1, -1, -1, 1});
}

TEST(CocoEval, WrongCategoryFindsNothing) {
  // The box is right, the category wrong. Category 1: one object, no
  // detection -> precision 0, recall 0. Category 2: detections but no ground
  // truth -> -1, left out of every mean.
  Builder b({1}, {1, 2});
  b.gt(1, 1, {0, 0, 100, 100}).dt(1, 2, {0, 0, 100, 100}, 0.9);
  expect_stats(b.stats(), {0, 0, 0, -1, -1, 0, 0, 0, 0, -1, -1, 0});
  // A category the file does not have is skipped (pycocotools never looks at
  // it) and counted.
  Builder unknown;
  unknown.gt(1, 1, {0, 0, 100, 100}).dt(1, 7, {0, 0, 100, 100}, 0.9).dt(1, 1, {0, 0, 100, 100}, 0.5);
  CocoEvaluation ev = unknown.run();
  EXPECT_EQ(ev.skipped_detections, 1);
  EXPECT_NEAR(ev.metrics.stats[AP], 1.0, kTol);
}

TEST(CocoEval, TiedScoresKeepImageIdThenInputOrder) {
  // Two images, one object each, both detections score .5: image 1's is an
  // FP, image 2's a TP. Ties go by ascending image id (not file order):
  //   FP first: tp 0 1, fp 1 1, recall 0 .5, precision 0 .5 -> .5 .5
  //   r = 0..50 -> .5: AP = 51/101 · .5 = 25.5/101.
  //   TP first: precision 1 .5 -> r = 0..50 -> 1: AP = 51/101.
  auto across = [](bool fp_on_first) {
    Builder b({2, 1});  // file order 2, 1: evaluation order must still be 1, 2
    b.gt(1, 1, {0, 0, 100, 100}).gt(2, 1, {0, 0, 100, 100});
    b.dt(2, 1, fp_on_first ? std::array<double, 4>{0, 0, 100, 100} : std::array<double, 4>{300, 300, 100, 100}, 0.5);
    b.dt(1, 1, fp_on_first ? std::array<double, 4>{300, 300, 100, 100} : std::array<double, 4>{0, 0, 100, 100}, 0.5);
    return b.stats()[AP];
  };
  EXPECT_NEAR(across(true), 25.5 / 101, kTol);
  EXPECT_NEAR(across(false), 51.0 / 101, kTol);

  // Within one image, equal scores keep input order.
  auto within = [](bool fp_listed_first) {
    Builder b;
    b.gt(1, 1, {0, 0, 100, 100}).gt(1, 1, {200, 0, 100, 100});
    CocoDetection fp{1, 1, {500, 500, 100, 100}, 0.5}, tp{1, 1, {0, 0, 100, 100}, 0.5};
    b.dets = fp_listed_first ? std::vector<CocoDetection>{fp, tp} : std::vector<CocoDetection>{tp, fp};
    return b.stats()[AP];
  };
  EXPECT_NEAR(within(true), 25.5 / 101, kTol);
  EXPECT_NEAR(within(false), 51.0 / 101, kTol);
}

TEST(CocoEval, CountedGroundTruthWinsOverIgnoredOne) {
  // A detection overlapping a counted box (IoU 0.8) and, better, a crowd
  // region (crowd IoU 1). Ground truth is scanned counted-first and the scan
  // stops at the first ignored box once a counted one matched, so it is a TP.
  Builder b;
  b.gt(1, 1, {0, 0, 100, 100}).gt(1, 1, {0, 0, 300, 300}, true);
  b.dt(1, 1, {0, 0, 100, 80}, 0.9);
  // IoU .8 matches for t = .50 ... .80 (7 thresholds): AP = AR = 0.7.
  expect_stats(b.stats(), {0.7, 1, 1, -1, -1, 0.7, 0.7, 0.7, 0.7, -1, -1, 0.7});
}

TEST(CocoEval, UnknownImageIsAnError) {
  Builder b;
  b.gt(1, 1, {0, 0, 10, 10}).dt(42, 1, {0, 0, 10, 10}, 0.9);
  auto r = evaluate_coco_bbox(b.ds, b.dets);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.status().message().find("42"), std::string::npos);
}

TEST(CocoEval, NoDetectionsAtAll) {
  Builder b;
  b.gt(1, 1, {0, 0, 100, 100});
  expect_stats(b.stats(), {0, 0, 0, -1, -1, 0, 0, 0, 0, -1, -1, 0});
}

TEST(CocoSummary, MatchesPycocotoolsLayout) {
  CocoMetrics m;
  m.stats = {0.5, 0.75, 0.4, -1, 0.12345, 0.9996, 0.1, 0.2, 0.3, -1, 0.0005, 1};
  const std::string s = format_coco_summary(m);
  const char* want =
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500\n"
      " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.750\n"
      " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.400\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.123\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 1.000\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.100\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.200\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.300\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.001\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 1.000\n";
  EXPECT_EQ(s, want);
}

}  // namespace
}  // namespace damoyolo
