// Golden fixtures: official post-processing of ONNX Runtime outputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kernels/head/head_decode.h"
#include "golden_util.h"

namespace damoyolo {
namespace {

using testing::kFixtureImages;
using testing::load_golden_detections;
using testing::load_output;

struct DenseCase {
  const char* model;
  ModelFamily family;
  int classes;
};

class GoldenDense : public ::testing::TestWithParam<std::tuple<DenseCase, const char*>> {};

TEST_P(GoldenDense, MatchesOfficialDetections) {
  const auto [mc, image] = GetParam();
  const auto g = load_golden_detections(mc.model, image);
  const auto scores = load_output(mc.model, image, 0);
  const auto boxes = load_output(mc.model, image, 1);
  const int64_t A = static_cast<int64_t>(boxes.size() / 4);
  ASSERT_EQ(scores.size(), static_cast<size_t>(A * mc.classes));

  // The fixture README's thresholds are the family defaults; the JSON agrees.
  PostprocessOptions opt = PostprocessOptions::for_family(mc.family);
  EXPECT_FLOAT_EQ(opt.conf_threshold, g.conf);
  EXPECT_DOUBLE_EQ(opt.iou_threshold, g.iou);

  const BoxScale scale = box_scale(g.width, g.height, g.input_size, g.input_size);
  for (bool fast : {true, false}) {
    opt.fast_nms = fast;
    Postprocessor pp(opt);
    std::vector<Detection> dets;
    ASSERT_TRUE(pp.process_dense(scores.data(), boxes.data(), A, mc.classes, scale, &dets).ok());
    EXPECT_EQ(pp.last_candidate_count(), g.candidates);
    ASSERT_EQ(dets.size(), g.dets.size());
    for (size_t i = 1; i < dets.size(); ++i) ASSERT_GE(dets[i - 1].score, dets[i].score);
    const size_t matched = testing::count_matched(g.dets, dets);
    RecordProperty(std::string("matched_") + (fast ? "fast" : "reference"), std::to_string(matched));
    if (fast) std::printf("%s/%s: %zu/%zu matched, %lld candidates\n", mc.model, image, matched,
                          g.dets.size(), static_cast<long long>(pp.last_candidate_count()));
    // Two-sided: with the counts equal (asserted above), the unmatched of
    // ours are as few as the unmatched official ones.
    EXPECT_GE(matched, static_cast<size_t>(std::ceil(0.995 * g.dets.size())))
        << mc.model << "/" << image << " fast=" << fast;
    // Unmatched entries may only differ at the 500 cap, among near-equal scores.
    if (matched < g.dets.size()) {
      EXPECT_NEAR(dets.back().score, g.dets.back().score, 1e-4);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, GoldenDense,
    ::testing::Combine(::testing::Values(DenseCase{"damoyolo_T_640", ModelFamily::kGeneral, 80},
                                         DenseCase{"damoyolo_Ns_416", ModelFamily::kNano, 80}),
                       ::testing::ValuesIn(kFixtureImages)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param).model) + "_" + std::get<1>(info.param);
    });

// --benchmark export: six raw maps of the same weights as damoyolo_Ns_416.
struct RawMaps {
  std::vector<float> cls[3], reg[3];
  static constexpr int kH[3] = {52, 26, 13};
  explicit RawMaps(const std::string& image) {
    for (int l = 0; l < 3; ++l) {
      cls[l] = load_output("damoyolo_Ns_416_benchmark", image, l);
      reg[l] = load_output("damoyolo_Ns_416_benchmark", image, 3 + l);
      EXPECT_EQ(cls[l].size(), size_t(80) * kH[l] * kH[l]);
      EXPECT_EQ(reg[l].size(), size_t(32) * kH[l] * kH[l]);
    }
  }
  std::vector<kernels::head::HeadLevelMaps> maps() const {
    std::vector<kernels::head::HeadLevelMaps> m;
    for (int l = 0; l < 3; ++l) {
      const int64_t hw = int64_t{kH[l]} * kH[l];
      m.push_back({8 << l, kH[l], kH[l], cls[l].data(), 1, hw, reg[l].data(), 1, hw});
    }
    return m;
  }
  std::vector<RawHeadLevel> levels() const {
    std::vector<RawHeadLevel> v;
    for (int l = 0; l < 3; ++l) v.push_back({8 << l, kH[l], kH[l], cls[l].data(), reg[l].data()});
    return v;
  }
};

class GoldenRaw : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenRaw, DenseDecodeReproducesDefaultExport) {
  const std::string image = GetParam();
  RawMaps raw(image);
  const auto maps = raw.maps();
  const auto want_scores = load_output("damoyolo_Ns_416", image, 0);
  const auto want_boxes = load_output("damoyolo_Ns_416", image, 1);
  const int64_t A = 3549;
  std::vector<float> scores(A * 80), boxes(A * 4);
  kernels::head::decode_head_dense({80, 7}, maps.data(), 3, scores.data(), boxes.data());
  ASSERT_EQ(want_scores.size(), scores.size());
  float max_ds = 0, max_db = 0;
  for (size_t i = 0; i < scores.size(); ++i) max_ds = std::max(max_ds, std::abs(scores[i] - want_scores[i]));
  for (size_t i = 0; i < boxes.size(); ++i) max_db = std::max(max_db, std::abs(boxes[i] - want_boxes[i]));
  EXPECT_LE(max_ds, 1e-5f);
  EXPECT_LE(max_db, 0.05f);
  RecordProperty("max_score_diff", ::testing::PrintToString(max_ds));
  RecordProperty("max_box_diff_px", ::testing::PrintToString(max_db));
}

TEST_P(GoldenRaw, ThresholdedRawPathEqualsDensePath) {
  const std::string image = GetParam();
  RawMaps raw(image);
  const auto maps = raw.maps();
  const auto levels = raw.levels();
  const auto g = load_golden_detections("damoyolo_Ns_416", image);
  const BoxScale scale = box_scale(g.width, g.height, 416, 416);

  std::vector<float> scores(3549 * 80), boxes(3549 * 4);
  kernels::head::decode_head_dense({80, 7}, maps.data(), 3, scores.data(), boxes.data());
  Postprocessor pp(PostprocessOptions::for_family(ModelFamily::kNano));
  std::vector<Detection> dense, thresholded;
  ASSERT_TRUE(pp.process_dense(scores.data(), boxes.data(), 3549, 80, scale, &dense).ok());
  const int64_t dense_candidates = pp.last_candidate_count();
  ASSERT_TRUE(pp.process_raw(levels, 80, 7, scale, &thresholded).ok());
  EXPECT_EQ(pp.last_candidate_count(), dense_candidates);
  // Same block kernel, same scores: bit-identical, in the same order.
  ASSERT_EQ(dense.size(), thresholded.size());
  for (size_t i = 0; i < dense.size(); ++i) {
    EXPECT_EQ(dense[i].class_id, thresholded[i].class_id) << i;
    EXPECT_EQ(dense[i].score, thresholded[i].score) << i;
    EXPECT_EQ(dense[i].x1, thresholded[i].x1) << i;
    EXPECT_EQ(dense[i].y1, thresholded[i].y1) << i;
    EXPECT_EQ(dense[i].x2, thresholded[i].x2) << i;
    EXPECT_EQ(dense[i].y2, thresholded[i].y2) << i;
  }
  // And against the official detections of the default export (same weights,
  // a different graph, so within the runtime tolerance rather than exact),
  // both ways: ≥ 99.5% of the official boxes found, ≥ 99.5% of ours official.
  const size_t matched = testing::count_matched(g.dets, thresholded);
  EXPECT_GE(matched, static_cast<size_t>(std::ceil(0.995 * g.dets.size())))
      << image << ": " << matched << " of " << g.dets.size() << " official found";
  EXPECT_GE(matched, static_cast<size_t>(std::ceil(0.995 * thresholded.size())))
      << image << ": " << matched << " of our " << thresholded.size() << " are official (extra boxes)";
}

TEST_P(GoldenRaw, TensorEntryPointMatchesPointerEntryPoint) {
  const std::string image = GetParam();
  RawMaps raw(image);
  std::vector<Tensor> outs;
  for (int l = 0; l < 3; ++l)
    outs.push_back(Tensor::wrap(DType::kFloat32, {1, 80, RawMaps::kH[l], RawMaps::kH[l]}, raw.cls[l].data()));
  for (int l = 0; l < 3; ++l)
    outs.push_back(Tensor::wrap(DType::kFloat32, {1, 32, RawMaps::kH[l], RawMaps::kH[l]}, raw.reg[l].data()));
  Postprocessor pp(PostprocessOptions::for_family(ModelFamily::kNano));
  auto a = pp.process(outs, {});
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  std::vector<Detection> b;
  ASSERT_TRUE(pp.process_raw(raw.levels(), 80, 7, {}, &b).ok());
  ASSERT_EQ(a->size(), b.size());
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ((*a)[i].x1, b[i].x1);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenRaw, ::testing::ValuesIn(kFixtureImages));

TEST(GoldenDenseTensor, DefaultExportTensorsMatchPointerEntryPoint) {
  auto scores = load_output("damoyolo_T_640", "coffee_png", 0);
  auto boxes = load_output("damoyolo_T_640", "coffee_png", 1);
  std::vector<Tensor> outs{Tensor::wrap(DType::kFloat32, {1, 8400, 80}, scores.data()),
                           Tensor::wrap(DType::kFloat32, {1, 8400, 4}, boxes.data())};
  Postprocessor pp;
  auto a = pp.process(outs, {2.f, 0.5f});
  ASSERT_TRUE(a.ok());
  std::vector<Detection> b;
  ASSERT_TRUE(pp.process_dense(scores.data(), boxes.data(), 8400, 80, {2.f, 0.5f}, &b).ok());
  ASSERT_EQ(a->size(), b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ((*a)[i].y2, b[i].y2);
    EXPECT_EQ((*a)[i].class_id, b[i].class_id);
  }
  // Wrong arity or shapes are errors, not crashes.
  outs.pop_back();
  EXPECT_EQ(pp.process(outs, {}).status().code(), ErrorCode::kInvalidArgument);
  outs.push_back(Tensor::wrap(DType::kFloat32, {1, 8400, 5}, scores.data()));
  EXPECT_EQ(pp.process(outs, {}).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace damoyolo
