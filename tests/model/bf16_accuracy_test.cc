// BF16 accuracy is measured, not assumed: on every fixture model and image,
// the score and box error of the BF16 engine against FP32, and, both ways,
// the share of the golden top-100 detections the BF16 pipeline still finds
// and the share of its own top 100 that the golden list has (same class,
// IoU ≥ 0.9). Prints a table (copied into docs/accuracy.md) and asserts
// loose bounds that a broken BF16 path would fail.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "damoyolo/detector.h"
#include "testutil/detection_match.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

using testing::fixtures_dir;

TEST(Bf16Accuracy, ScoresBoxesAndTop100Recall) {
  std::printf("| model | image | max score err | mean score err | max box err px | mean box err px | golden top-100 found "
              "| our top-100 in golden |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (std::string model : {"damoyolo_T_640", "damoyolo_Ns_416"}) {
    auto path = (fixtures_dir() / "models" / (model + ".onnx")).string();
    SessionOptions fp32, bf16;
    fp32.engine = bf16.engine = Engine::kOptimized;
    bf16.precision = Precision::kBF16;
    auto s32 = Session::load(path, fp32);
    auto s16 = Session::load(path, bf16);
    ASSERT_TRUE(s32.ok() && s16.ok());
    DetectorOptions dopts;
    dopts.session = bf16;
    auto det16 = Detector::create(path, dopts);
    ASSERT_TRUE(det16.ok());
    for (const char* image : testing::kFixtureImages) {
      auto dir = fixtures_dir() / "golden" / model / image;
      auto bytes = testing::read_file(dir / "input.u8");
      Tensor input(DType::kFloat32, s32->inputs()[0].dims);
      for (size_t i = 0; i < bytes.size(); ++i) input.data<float>()[i] = bytes[i];
      auto o32 = s32->run({input});
      auto o16 = s16->run({input});
      ASSERT_TRUE(o32.ok() && o16.ok());
      double max_s = 0, sum_s = 0, max_b = 0, sum_b = 0;
      const Tensor &a0 = (*o32)[0], &b0 = (*o16)[0], &a1 = (*o32)[1], &b1 = (*o16)[1];
      for (int64_t i = 0; i < a0.numel(); ++i) {
        double e = std::fabs(a0.data<float>()[i] - b0.data<float>()[i]);
        max_s = std::max(max_s, e);
        sum_s += e;
      }
      for (int64_t i = 0; i < a1.numel(); ++i) {
        double e = std::fabs(a1.data<float>()[i] - b1.data<float>()[i]);
        max_b = std::max(max_b, e);
        sum_b += e;
      }
      auto golden = testing::read_golden_detections(dir / "detections.json");
      auto r = det16->detect_file(testing::fixture_image_path(image).string());
      ASSERT_TRUE(r.ok());
      // Both lists are sorted by score. Each side's top 100 is looked up in
      // the whole of the other (near the 100th, BF16 reorders near-tied
      // scores, so top-100 against top-100 would count reorderings as losses).
      auto top100 = [](std::vector<Detection> v) {
        v.resize(std::min<size_t>(100, v.size()));
        return v;
      };
      // Scores may shift by BF16 rounding, so only class and IoU are required.
      auto found = testing::match_detections(top100(golden.detections), r->detections, 0.9, 1.0);
      auto kept = testing::match_detections(golden.detections, top100(r->detections), 0.9, 1.0);
      std::printf("| %s | %s | %.2e | %.2e | %.3f | %.4f | %zu/%zu | %zu/%zu |\n", model.c_str(), image, max_s,
                  sum_s / a0.numel(), max_b, sum_b / a1.numel(), found.matched, found.golden, kept.matched,
                  kept.ours);
      EXPECT_LT(sum_s / a0.numel(), 1e-3) << model << "/" << image;
      EXPECT_LT(sum_b / a1.numel(), 1.0) << model << "/" << image;
      // The fixtures' synthetic weights give near-tied scores (~0.15 everywhere) and
      // near-tied bins, so BF16 rounding reorders many of them; a broken BF16
      // path finds almost none. Trained weights are held to mAP instead.
      EXPECT_GE(found.recall(), 0.5) << model << "/" << image << ": golden top 100 in ours: " << found.describe();
      EXPECT_GE(kept.precision(), 0.5) << model << "/" << image << ": our top 100 in golden: " << kept.describe();
    }
  }
}

}  // namespace
}  // namespace damoyolo
