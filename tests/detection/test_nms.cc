// Fast NMS against the reference, and hand-built cases with known answers.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <random>

#include "common/cpu_features.h"
#include "damoyolo/detection.h"
#include "detection/nms.h"
#include "testutil/alloc_counter.h"

namespace damoyolo::detection {
namespace {

struct RandomSet {
  std::vector<float> boxes;  // [A,4]
  std::vector<Candidate> cands;
};

// Boxes jittered around cluster centres (so NMS has real work: heavy overlap
// inside a cluster, little across), scores quantised to force ties, and a
// share of degenerate zero-width/zero-height boxes.
RandomSet make_set(uint32_t seed, int num_cands, int num_classes, int clusters, int score_levels,
                   double degenerate_share) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> cx(clusters), cy(clusters), cw(clusters), ch(clusters);
  for (int k = 0; k < clusters; ++k) {
    cx[k] = u(rng) * 640 - 20;
    cy[k] = u(rng) * 640 - 20;
    cw[k] = 4 + u(rng) * 200;
    ch[k] = 4 + u(rng) * 200;
  }
  RandomSet s;
  // About one anchor per two candidates: anchors are shared across classes
  // as in the real multi-label case.
  const int A = std::max(1, num_cands / 2);
  s.boxes.resize(size_t(A) * 4);
  for (int a = 0; a < A; ++a) {
    const int k = static_cast<int>(rng() % clusters);
    const float j = 0.15f;
    float x1 = cx[k] + (u(rng) - 0.5f) * j * cw[k];
    float y1 = cy[k] + (u(rng) - 0.5f) * j * ch[k];
    float x2 = x1 + cw[k] * (1 + (u(rng) - 0.5f) * j);
    float y2 = y1 + ch[k] * (1 + (u(rng) - 0.5f) * j);
    if (u(rng) < degenerate_share) (rng() & 1) ? x2 = x1 : y2 = y1;
    s.boxes[a * 4 + 0] = x1;
    s.boxes[a * 4 + 1] = y1;
    s.boxes[a * 4 + 2] = x2;
    s.boxes[a * 4 + 3] = y2;
  }
  std::vector<std::vector<char>> used(A, std::vector<char>(num_classes, 0));
  while (static_cast<int>(s.cands.size()) < num_cands) {
    const int a = static_cast<int>(rng() % A);
    const int c = static_cast<int>(rng() % num_classes);
    if (used[a][c] && num_cands < A * num_classes) continue;
    used[a][c] = 1;
    float score = 0.05f + u(rng) * 0.9f;
    if (score_levels > 0) score = 0.05f + float(1 + rng() % score_levels) / score_levels * 0.9f;
    s.cands.push_back({score, c, a});
  }
  return s;
}

void expect_same(const std::vector<Candidate>& a, const std::vector<Candidate>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].score, b[i].score) << i;
    ASSERT_EQ(a[i].class_id, b[i].class_id) << i;
    ASSERT_EQ(a[i].anchor, b[i].anchor) << i;
  }
}

// FastNms at every SIMD level this CPU supports (its IoU kernel is picked per
// run) against the one reference.
void compare_fast_reference(const RandomSet& s, int num_classes, const NmsParams& p) {
  FastNms fast;
  fast.begin(num_classes);
  for (const Candidate& c : s.cands) fast.add(c.class_id, c.score, c.anchor);
  std::vector<Candidate> got, want;
  nms_reference(s.boxes.data(), s.cands, p, &want);
  for (cpu::IsaLevel level : cpu::kIsaLevels) {
    if (!cpu::isa_level_supported(level)) continue;
    SCOPED_TRACE(cpu::isa_level_name(level));
    cpu::ScopedIsaLevel scoped(level);
    fast.run(s.boxes.data(), p, &got);
    expect_same(got, want);
  }
  // The FastNms "off switch" goes through the same reference.
  std::vector<Candidate> via_switch;
  fast.run_reference(s.boxes.data(), p, &via_switch);
  expect_same(via_switch, want);
  // The write-up's per-class parallel NMS: the same output, with 1 and with
  // several threads (classes in any order across threads).
  for (int threads : {1, 3}) {
    SCOPED_TRACE("parallel classes, threads " + std::to_string(threads));
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<Candidate> parallel;
    fast.run_parallel_classes(s.boxes.data(), p, &parallel);
    omp_set_num_threads(saved);
    expect_same(parallel, want);
  }
}

TEST(FastNms, MatchesReferenceOnRandomSets) {
  int run = 0;
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    for (int n : {1, 7, 300, 999, 1000, 1001, 4000}) {
      for (int classes : {1, 3, 80}) {
        for (int max_det : {500, 1, 17, 0}) {
          for (double iou : {0.7, 0.65, 0.3}) {
            const auto s = make_set(seed * 7919 + n, n, classes, std::max(1, n / 40), seed % 2 ? 16 : 0,
                                    seed % 3 == 0 ? 0.1 : 0.0);
            NmsParams p;
            p.iou_threshold = iou;
            p.max_det = max_det;
            SCOPED_TRACE(::testing::Message() << "seed " << seed << " n " << n << " classes " << classes
                                              << " max_det " << max_det << " iou " << iou);
            compare_fast_reference(s, classes, p);
            ++run;
          }
        }
      }
    }
  }
  EXPECT_GT(run, 1000);
}

TEST(FastNms, MatchesReferenceWith100kCandidatesOneClass) {
  const auto s = make_set(42, 100000, 1, 800, 0, 0.01);
  for (int max_det : {500, 0}) {
    NmsParams p;
    p.max_det = max_det;
    compare_fast_reference(s, 1, p);
  }
}

TEST(FastNms, MatchesReferenceWith100kCandidatesManyClassesAndTies) {
  const auto s = make_set(43, 100000, 80, 3000, 64, 0.02);
  NmsParams p;
  p.iou_threshold = 0.65;
  compare_fast_reference(s, 80, p);
}

TEST(FastNms, CoordinateTrickEmulationCanBeSwitchedOff) {
  const auto s = make_set(5, 900, 80, 30, 0, 0.0);
  NmsParams p;
  p.emulate_coordinate_trick = false;
  compare_fast_reference(s, 80, p);
}

// --- Hand-built cases with known answers -----------------------------------

std::vector<Candidate> run_fast(const std::vector<float>& boxes, const std::vector<Candidate>& cands,
                                NmsParams p, int classes = 4) {
  FastNms f;
  f.begin(classes);
  for (const Candidate& c : cands) f.add(c.class_id, c.score, c.anchor);
  std::vector<Candidate> out, ref;
  f.run(boxes.data(), p, &out);
  nms_reference(boxes.data(), cands, p, &ref);
  expect_same(out, ref);
  return out;
}

TEST(NmsKnownAnswers, StrictGreaterThanThreshold) {
  // IoU of these two boxes is exactly 0.5 (inter 50, union 100).
  const std::vector<float> boxes = {0, 0, 10, 10, 0, 0, 10, 5};
  const std::vector<Candidate> c = {{0.9f, 0, 0}, {0.8f, 0, 1}};
  NmsParams p;
  p.iou_threshold = 0.5;
  EXPECT_EQ(run_fast(boxes, c, p).size(), 2u);  // 0.5 > 0.5 is false: kept
  p.iou_threshold = 0.49;
  auto out = run_fast(boxes, c, p);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].anchor, 0);
}

TEST(NmsKnownAnswers, FloatIouAgainstDoubleThreshold) {
  // float IoU = 30/100 = 0.300000012; double 0.3 is smaller, so torchvision
  // suppresses although a float-vs-float test (0.3f > 0.3f) would not.
  const std::vector<float> boxes = {0, 0, 10, 10, 0, 0, 10, 3};
  const std::vector<Candidate> c = {{0.9f, 0, 0}, {0.8f, 0, 1}};
  NmsParams p;
  p.iou_threshold = 0.3;
  EXPECT_EQ(run_fast(boxes, c, p).size(), 1u);
  EXPECT_EQ(float_threshold_below(0.3), std::nextafter(0.3f, 0.f));
  EXPECT_EQ(float_threshold_below(0.5), 0.5f);
  EXPECT_EQ(float_threshold_below(0.7), 0.7f);  // 0.7f < 0.7 already
}

TEST(NmsKnownAnswers, ClassAwareAndSorted) {
  const std::vector<float> boxes = {0, 0, 10, 10, 0, 0, 10, 10, 1, 1, 10, 10, 100, 100, 110, 120};
  const std::vector<Candidate> c = {
      {0.5f, 0, 0}, {0.9f, 1, 1}, {0.7f, 0, 2}, {0.6f, 0, 3}, {0.95f, 0, 1}};
  NmsParams p;
  auto out = run_fast(boxes, c, p);
  // class 0: anchors 1 (0.95), 2 (0.7, IoU 0.81 with 1 → suppressed), 3 (0.6, far), 0 (0.5, IoU 1 → suppressed)
  // class 1: anchor 1 (0.9)
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].anchor, 1);
  EXPECT_EQ(out[0].class_id, 0);
  EXPECT_EQ(out[1].class_id, 1);
  EXPECT_EQ(out[2].anchor, 3);
}

TEST(NmsKnownAnswers, ZeroAreaBoxesNeverSuppress) {
  // Identical degenerate boxes: IoU is 0/0 = NaN, and NaN > thr is false.
  const std::vector<float> boxes = {5, 5, 5, 9, 5, 5, 5, 9, 0, 0, 10, 10};
  const std::vector<Candidate> c = {{0.9f, 0, 0}, {0.8f, 0, 1}, {0.7f, 0, 2}};
  EXPECT_EQ(run_fast(boxes, c, NmsParams{}).size(), 3u);
}

TEST(NmsKnownAnswers, TiesResolveByClassThenAnchor) {
  std::vector<float> boxes;
  std::vector<Candidate> c;
  for (int a = 0; a < 6; ++a) {
    boxes.insert(boxes.end(), {a * 100.f, 0, a * 100.f + 50, 50});
    c.push_back({0.5f, (5 - a) % 3, 5 - a});
  }
  auto out = run_fast(boxes, c, NmsParams{});
  ASSERT_EQ(out.size(), 6u);
  for (size_t i = 1; i < out.size(); ++i) {
    EXPECT_TRUE(out[i - 1].class_id < out[i].class_id ||
                (out[i - 1].class_id == out[i].class_id && out[i - 1].anchor < out[i].anchor));
  }
}

TEST(NmsKnownAnswers, MaxDetCapKeepsTheBest) {
  std::vector<float> boxes;
  std::vector<Candidate> c;
  for (int a = 0; a < 50; ++a) {
    boxes.insert(boxes.end(), {a * 20.f, 0, a * 20.f + 10, 10});  // disjoint
    c.push_back({0.01f * a + 0.1f, a % 4, a});
  }
  NmsParams p;
  p.max_det = 5;
  auto out = run_fast(boxes, c, p);
  ASSERT_EQ(out.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(out[i].anchor, 49 - i);
}

// --- Through the public Postprocessor ----------------------------------------

TEST(Postprocessor, ThresholdIsStrictAndBoxesScalePerAxis) {
  // 3 anchors × 2 classes.
  const std::vector<float> scores = {0.05f, 0.9f, 0.06f, 0.04f, 0.5f, 0.05f};
  const std::vector<float> boxes = {0, 0, 10, 10, 100, 100, 110, 110, 0, 0, 10, 10};
  Postprocessor pp;  // 0.05 / 0.7
  std::vector<Detection> d;
  ASSERT_TRUE(pp.process_dense(scores.data(), boxes.data(), 3, 2, {2.f, 0.5f}, &d).ok());
  EXPECT_EQ(pp.last_candidate_count(), 3);  // 0.05 itself is not a candidate
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].class_id, 1);
  EXPECT_FLOAT_EQ(d[0].score, 0.9f);
  EXPECT_FLOAT_EQ(d[0].x2, 20.f);
  EXPECT_FLOAT_EQ(d[0].y2, 5.f);
  EXPECT_FLOAT_EQ(d[1].score, 0.5f);  // class 0 at anchor 2: same box, other class → kept
  EXPECT_EQ(d[1].class_id, 0);
  EXPECT_FLOAT_EQ(d[2].score, 0.06f);  // class 0 at anchor 1: far away
  EXPECT_FLOAT_EQ(d[2].x1, 200.f);

  PostprocessOptions o;
  o.class_filter = {1};
  ASSERT_TRUE(pp.set_options(o).ok());
  ASSERT_TRUE(pp.process_dense(scores.data(), boxes.data(), 3, 2, {}, &d).ok());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].class_id, 1);
  EXPECT_EQ(pp.last_candidate_count(), 1);

  o.class_filter = {-1};
  EXPECT_EQ(pp.set_options(o).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pp.process_dense(nullptr, boxes.data(), 3, 2, {}, &d).code(), ErrorCode::kInvalidArgument);
}

TEST(Postprocessor, FamilyDefaults) {
  auto g = PostprocessOptions::for_family(ModelFamily::kGeneral);
  auto n = PostprocessOptions::for_family(ModelFamily::kNano);
  EXPECT_FLOAT_EQ(g.conf_threshold, 0.05f);
  EXPECT_DOUBLE_EQ(g.iou_threshold, 0.7);
  EXPECT_FLOAT_EQ(n.conf_threshold, 0.03f);
  EXPECT_DOUBLE_EQ(n.iou_threshold, 0.65);
  EXPECT_EQ(g.max_det, 500);
  auto s = box_scale(451, 300, 416, 416);
  EXPECT_FLOAT_EQ(s.x, 451.f / 416.f);
  EXPECT_FLOAT_EQ(s.y, 300.f / 416.f);
}

TEST(Postprocessor, SteadyStateDoesNotAllocate) {
  // A dense [A,C] problem with ~20k candidates over 80 classes.
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  const int A = 8400, C = 80;
  std::vector<float> scores(size_t(A) * C), boxes(size_t(A) * 4);
  for (auto& s : scores) s = u(rng) < 0.03f ? 0.05f + u(rng) * 0.9f : u(rng) * 0.05f;
  for (int a = 0; a < A; ++a) {
    const float x = u(rng) * 600, y = u(rng) * 600;
    boxes[a * 4 + 0] = x;
    boxes[a * 4 + 1] = y;
    boxes[a * 4 + 2] = x + 5 + u(rng) * 100;
    boxes[a * 4 + 3] = y + 5 + u(rng) * 100;
  }
  Postprocessor pp;
  std::vector<Detection> d;
  for (int warm = 0; warm < 2; ++warm)
    ASSERT_TRUE(pp.process_dense(scores.data(), boxes.data(), A, C, {}, &d).ok());
  const int64_t before = testing::allocation_count();
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(pp.process_dense(scores.data(), boxes.data(), A, C, {}, &d).ok());
  EXPECT_EQ(testing::allocation_count() - before, 0);
  EXPECT_GT(pp.last_candidate_count(), 10000);
  EXPECT_EQ(d.size(), 500u);
}

}  // namespace
}  // namespace damoyolo::detection
