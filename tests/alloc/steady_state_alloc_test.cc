// "No allocation per frame in the steady state", checked by counting: the
// test binary's global operator new counts (testutil/alloc_counter), the
// pipeline is warmed up, then the allocations of further frames through
// Detector::detect_into are counted and attributed by call stack.
//
// damoyolo's own code (preprocessing, engine, head decode, NMS) must allocate
// nothing. oneDNN 2.6's primitive::execute itself builds a small argument map
// and a threading closure on every call (~9 small blocks per primitive); the
// library offers no way around that, so those are reported and bounded in
// size (bookkeeping only: no tensor buffers, no scratchpads).
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "damoyolo/detector.h"
#include "testutil/alloc_counter.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

void expect_no_steady_state_allocation(const std::string& model, Engine engine) {
  DetectorOptions opts;
  opts.session.engine = engine;
  opts.session.threads = 2;
  auto det = Detector::create((testing::fixtures_dir() / "models" / (model + ".onnx")).string(), opts);
  ASSERT_TRUE(det.ok()) << det.status().to_string();
  auto img = decode_image_file(testing::fixture_image_path("astronaut_png").string());
  ASSERT_TRUE(img.ok());
  ImageDetections out;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(det->detect_into(img->view(), out).ok());
  const size_t found = out.detections.size();
  int64_t outside = 0, inside = 0;
  size_t largest = 0;
  {
    testing::AttributeAllocations counter;
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(det->detect_into(img->view(), out).ok());
    outside = counter.outside_dnnl();
    inside = counter.inside_dnnl();
    largest = counter.largest_inside_dnnl();
  }
  std::printf("%s: 5 frames: %lld allocations by damoyolo, %lld inside oneDNN's primitive::execute (largest %zu B)\n",
              model.c_str(), static_cast<long long>(outside), static_cast<long long>(inside), largest);
  EXPECT_EQ(outside, 0) << model << ": heap allocations by damoyolo in 5 steady-state frames";
  EXPECT_LE(largest, 4096u) << "oneDNN allocated a buffer, not just bookkeeping";
  EXPECT_EQ(out.detections.size(), found);
  EXPECT_GT(found, 0u);
}

TEST(SteadyState, DefaultExportAllocatesNothingPerFrame) {
  expect_no_steady_state_allocation("damoyolo_Ns_416", Engine::kOptimized);
}

TEST(SteadyState, BenchmarkExportAllocatesNothingPerFrame) {
  expect_no_steady_state_allocation("damoyolo_Ns_416_benchmark", Engine::kOptimized);
}

TEST(SteadyState, CounterSeesAndAttributesAllocations) {
  // The counter itself must work, or the tests above prove nothing.
  const int64_t before = testing::allocation_count();
  testing::AttributeAllocations counter;
  auto* v = new std::vector<int>(1000);
  delete v;
  EXPECT_GE(testing::allocation_count() - before, 2);
  EXPECT_GE(counter.outside_dnnl(), 2);  // made here, not inside oneDNN
  EXPECT_EQ(counter.inside_dnnl(), 0);
}

}  // namespace
}  // namespace damoyolo
