// A plan per batch size: a session compiled for batch N runs a shorter batch
// k as k (its own plan, compiled once, sharing the packed weights), with the
// same results as the items of a full batch; preallocated outputs of the
// wrong shape are refused instead of overrun.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "damoyolo/detector.h"
#include "damoyolo/image.h"
#include "graph/passes/passes.h"
#include "kernels/reference/registry.h"
#include "onnx/onnx_loader.h"
#include "runtime/executor.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

using testing::fixtures_dir;

std::string model_path(const std::string& m) { return (fixtures_dir() / "models" / (m + ".onnx")).string(); }

Tensor pattern_input(int64_t batch, int64_t s) {
  Tensor t(DType::kFloat32, {batch, 3, s, s});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>((i * 7 + i / 977) % 256);
  return t;
}

Session load4(SessionOptions o = {}) {
  o.engine = Engine::kOptimized;
  o.batch = 4;
  // These tests are about the plans per batch size; with images_on_threads a
  // batch of >= 2 images on 2 cores would run on the one-thread plan instead
  // (images_on_threads_test.cc tests that path).
  o.opt.images_on_threads = false;
  auto s = Session::load(model_path("damoyolo_Ns_416"), o);
  if (!s.ok()) throw std::runtime_error(s.status().to_string());
  return std::move(*s);
}

TEST(BatchPlans, AShortBatchRunsAsItselfWithTheFullBatchsResults) {
  Session s = load4();
  EXPECT_EQ(s.compiled_batches(), (std::vector<int64_t>{4}));
  const Tensor in4 = pattern_input(4, 416);
  auto full = s.run({in4});
  ASSERT_TRUE(full.ok()) << full.status().to_string();

  // The first three items alone.
  Tensor in3 = Tensor::wrap(DType::kFloat32, {3, 3, 416, 416}, const_cast<void*>(in4.raw()));
  auto three = s.run({in3});
  ASSERT_TRUE(three.ok()) << three.status().to_string();
  EXPECT_EQ(s.compiled_batches(), (std::vector<int64_t>{3, 4}));
  ASSERT_EQ(three->size(), full->size());
  for (size_t o = 0; o < full->size(); ++o) {
    EXPECT_EQ(three->at(o).dim(0), 3);
    // Same kernels on the same items; oneDNN may block a smaller batch
    // differently, so allow float rounding, nothing more.
    const float* a = three->at(o).data<float>();
    const float* b = full->at(o).data<float>();
    for (int64_t i = 0; i < three->at(o).numel(); ++i)
      ASSERT_LE(std::fabs(a[i] - b[i]), 1e-5f * std::max(1.f, std::fabs(b[i]))) << "output " << o << " at " << i;
  }
  // Again: the plan is reused, not recompiled.
  ASSERT_TRUE(s.run({in3}).ok());
  EXPECT_EQ(s.compiled_batches(), (std::vector<int64_t>{3, 4}));

  // More than the session's batch is an error that says so.
  auto five = s.run({pattern_input(5, 416)});
  ASSERT_FALSE(five.ok());
  EXPECT_EQ(five.status().code(), ErrorCode::kInvalidArgument);
}

TEST(BatchPlans, ShorterPlansReuseThePackedWeights) {
  auto g = onnx_io::load_onnx_file(model_path("damoyolo_T_640"));
  graph::PassOptions po;
  graph::run_standard_passes(g, po, kernels::ref::evaluator());
  auto cache = runtime::make_weight_cache();
  SessionOptions o;
  o.batch = 4;
  auto m4 = runtime::compile_optimized(g, o, cache.get());
  const auto after4 = runtime::weight_cache_stats(*cache);
  const int convs = m4->plan().count_op("Conv");
  EXPECT_EQ(after4.packed, convs);
  EXPECT_EQ(after4.reused, 0);
  o.batch = 1;
  auto m1 = runtime::compile_optimized(g, o, cache.get());
  const auto after1 = runtime::weight_cache_stats(*cache);
  std::printf("[batch-plans] T_640: %d convs; batch-1 plan reused %d packings, packed %d more\n", convs,
              after1.reused, after1.packed - after4.packed);
  // oneDNN picks the same weight layout for every batch here; if it ever
  // did not for some convolution, that one would be packed again (correct,
  // just not shared) — this says how many are shared.
  EXPECT_EQ(after1.reused + (after1.packed - after4.packed), convs);
  EXPECT_GE(after1.reused, convs * 9 / 10);
}

TEST(BatchPlans, WrongPreallocatedOutputsAreRefusedNotOverrun) {
  Session s = load4();
  std::vector<Tensor> out = s.make_outputs(2);  // for batch 2, run with batch 4
  Status st = s.run_into({pattern_input(4, 416)}, out);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("make_outputs"), std::string::npos) << st.message();
  std::vector<Tensor> too_few = s.make_outputs();
  too_few.pop_back();
  EXPECT_EQ(s.run_into({pattern_input(4, 416)}, too_few).code(), ErrorCode::kInvalidArgument);
  std::vector<Tensor> right = s.make_outputs(3);
  Tensor in4 = pattern_input(4, 416);
  EXPECT_TRUE(s.run_into({Tensor::wrap(DType::kFloat32, {3, 3, 416, 416}, in4.raw())}, right).ok());
}

TEST(BatchPlans, ADetectorsShortLastChunkRunsAsItself) {
  // Five images through a batch-4 detector: a chunk of 4, then one of 1,
  // which gets a batch-1 plan; every image's detections equal those of a
  // batch-1 detector.
  DetectorOptions o4;
  o4.session.engine = Engine::kOptimized;
  o4.session.batch = 4;
  auto d4 = Detector::create(model_path("damoyolo_Ns_416"), o4);
  ASSERT_TRUE(d4.ok()) << d4.status().to_string();
  DetectorOptions o1;
  o1.session.engine = Engine::kOptimized;
  auto d1 = Detector::create(model_path("damoyolo_Ns_416"), o1);
  ASSERT_TRUE(d1.ok());
  std::vector<std::string> files;
  for (const char* f : {"astronaut.png", "chelsea.png", "coffee.png", "astronaut.png", "chelsea.png"})
    files.push_back((fixtures_dir() / "images" / f).string());
  auto got = d4->detect_files(files);
  EXPECT_EQ(d4->session().compiled_batches(), (std::vector<int64_t>{1, 4}));
  ASSERT_EQ(got.size(), files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].status().to_string();
    auto want = d1->detect_file(files[i]);
    ASSERT_TRUE(want.ok());
    ASSERT_EQ(got[i]->detections.size(), want->detections.size()) << files[i];
    for (size_t k = 0; k < want->detections.size(); ++k) {
      EXPECT_NEAR(got[i]->detections[k].score, want->detections[k].score, 1e-5) << i << " " << k;
      EXPECT_EQ(got[i]->detections[k].class_id, want->detections[k].class_id) << i << " " << k;
      EXPECT_NEAR(got[i]->detections[k].x1, want->detections[k].x1, 1e-2) << i << " " << k;
    }
  }
}

}  // namespace
}  // namespace damoyolo
