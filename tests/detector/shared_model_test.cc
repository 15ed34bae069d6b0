// One compiled model shared by many users: copies of a Session and detectors
// made from one share its weights and its bounded pool of execution contexts,
// and give the same detections as a detector that loaded the model itself.
#include <gtest/gtest.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "damoyolo/detector.h"
#include "damoyolo/image.h"
#include "testutil/testutil.h"

// GCC says __SANITIZE_ADDRESS__, clang __has_feature(address_sanitizer).
#if defined(__SANITIZE_ADDRESS__)
#define DAMOYOLO_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DAMOYOLO_TEST_UNDER_ASAN 1
#endif
#endif
#ifndef DAMOYOLO_TEST_UNDER_ASAN
#define DAMOYOLO_TEST_UNDER_ASAN 0
#endif

namespace damoyolo {
namespace {

using testing::fixtures_dir;

std::string model_path(const std::string& m) { return (fixtures_dir() / "models" / (m + ".onnx")).string(); }
std::string image_path(const std::string& f) { return (fixtures_dir() / "images" / f).string(); }

DetectorOptions with_session(const SessionOptions& so) {
  DetectorOptions o;
  o.session = so;
  return o;
}

// Resident set size of this process, in bytes.
size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

void expect_same(const ImageDetections& a, const ImageDetections& b) {
  ASSERT_EQ(a.detections.size(), b.detections.size());
  for (size_t i = 0; i < a.detections.size(); ++i) {
    EXPECT_EQ(a.detections[i].class_id, b.detections[i].class_id) << i;
    EXPECT_EQ(a.detections[i].score, b.detections[i].score) << i;
    EXPECT_EQ(a.detections[i].x1, b.detections[i].x1) << i;
    EXPECT_EQ(a.detections[i].y2, b.detections[i].y2) << i;
  }
}

TEST(SharedModel, DetectorsFromOneSessionShareItAndDetectTheSame) {
  SessionOptions so;
  so.engine = Engine::kOptimized;
  auto s = Session::load(model_path("damoyolo_Ns_416"), so);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  auto own = Detector::create(model_path("damoyolo_Ns_416"), with_session(so));
  ASSERT_TRUE(own.ok());
  EXPECT_FALSE(own->session().shares_model_with(*s));

  auto img = decode_image_file(image_path("astronaut.png"));
  ASSERT_TRUE(img.ok());
  auto want = own->detect(img->view());
  ASSERT_TRUE(want.ok());
  ASSERT_FALSE(want->detections.empty());

  std::vector<Detector> shared;
  for (int i = 0; i < 4; ++i) {
    auto d = Detector::create(*s);
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    EXPECT_TRUE(d->session().shares_model_with(*s));
    shared.push_back(std::move(*d));
  }
  // Four streams at once on the shared model.
  std::vector<Result<ImageDetections>> got(4, Status(ErrorCode::kInternal, "not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { got[i] = shared[i].detect(img->view()); });
  for (auto& t : threads) t.join();
  for (auto& g : got) {
    ASSERT_TRUE(g.ok()) << g.status().to_string();
    expect_same(*g, *want);
  }
  EXPECT_LE(s->pool_stats().contexts, s->pool_stats().max_contexts);
}

TEST(SharedModel, FourDetectorsOnOneModelHoldOneCopyOfTheWeights) {
  // T-640: ~34 MB of packed weights. Four detectors that each load the file
  // hold four copies; four made from one Session hold one. Shared first, so
  // memory freed by the loads (returned to the OS: the big buffers are
  // mmap'ed) cannot hide the separate copies.
#if DAMOYOLO_TEST_UNDER_ASAN
  // ASan keeps freed memory in quarantine and adds redzones: RSS says little.
  GTEST_SKIP() << "RSS comparison is meaningless under AddressSanitizer";
#endif
  SessionOptions so;
  so.engine = Engine::kOptimized;
  malloc_trim(0);
  const size_t rss0 = rss_bytes();
  auto s = Session::load(model_path("damoyolo_T_640"), so);
  ASSERT_TRUE(s.ok());
  const double weights = static_cast<double>(s->plan().weight_bytes);
  ASSERT_GT(weights, 20e6);
  std::vector<Detector> shared;
  for (int i = 0; i < 4; ++i) {
    auto d = Detector::create(*s);
    ASSERT_TRUE(d.ok());
    shared.push_back(std::move(*d));
  }
  malloc_trim(0);
  const size_t rss1 = rss_bytes();

  std::vector<Detector> separate;
  for (int i = 0; i < 4; ++i) {
    auto d = Detector::create(model_path("damoyolo_T_640"), with_session(so));
    ASSERT_TRUE(d.ok());
    separate.push_back(std::move(*d));
  }
  malloc_trim(0);
  const size_t rss2 = rss_bytes();
  const double shared_growth = static_cast<double>(rss1) - static_cast<double>(rss0);
  const double separate_growth = static_cast<double>(rss2) - static_cast<double>(rss1);
  std::printf("[shared-model] T_640 packed weights %.1f MB; RSS growth: 1 session + 4 shared detectors %.1f MB, "
              "4 detectors loading the model %.1f MB\n",
              weights / 1e6, shared_growth / 1e6, separate_growth / 1e6);
  // Per detector, besides the weights: its input batch (4.9 MB) and outputs
  // (2.8 MB) for 640x640 and 8400x80 scores.
  EXPECT_LT(shared_growth, 1.5 * weights + 4 * 8e6);
  EXPECT_GT(separate_growth, 3.5 * weights);
}

TEST(SharedModel, SessionCopiesShareOneBoundedPool) {
  SessionOptions so;
  so.engine = Engine::kOptimized;
  so.max_contexts = 1;
  so.threads = 1;
  auto s = Session::load(model_path("damoyolo_Ns_416"), so);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->pool_stats().max_contexts, 1);
  EXPECT_EQ(s->pool_stats().contexts, 0);  // created on first use

  Tensor in(DType::kFloat32, s->inputs()[0].dims);
  for (int64_t i = 0; i < in.numel(); ++i) in.data<float>()[i] = static_cast<float>(i % 251);
  auto want = s->run({in});
  ASSERT_TRUE(want.ok());

  // Four copies of the handle run at once: one context serves them all,
  // each waiting its turn, and every result is the same.
  std::vector<Session> copies(4, *s);
  std::vector<Result<std::vector<Tensor>>> got(4, Status(ErrorCode::kInternal, "not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      for (int k = 0; k < 3; ++k) got[i] = copies[i].run({in});
    });
  for (auto& t : threads) t.join();
  for (auto& g : got) {
    ASSERT_TRUE(g.ok()) << g.status().to_string();
    for (size_t o = 0; o < want->size(); ++o)
      ASSERT_EQ(0, std::memcmp(g->at(o).raw(), want->at(o).raw(), want->at(o).nbytes()));
  }
  const auto st = s->pool_stats();
  EXPECT_EQ(st.contexts, 1);
  EXPECT_EQ(st.idle, 1);
  EXPECT_TRUE(copies[2].shares_model_with(*s));
  std::printf("[shared-model] 4 threads x 3 runs on one context: %lld waits\n", static_cast<long long>(st.waits));
}

TEST(SharedModel, PoolBoundDefaultsToTwiceTheCoresAndRejectsNegative) {
  auto s = Session::load(model_path("damoyolo_Ns_416"));
  ASSERT_TRUE(s.ok());
  EXPECT_GE(s->pool_stats().max_contexts, 2);
  SessionOptions bad;
  bad.max_contexts = -1;
  auto b = Session::load(model_path("damoyolo_Ns_416"), bad);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("max_contexts"), std::string::npos);
}

TEST(SharedModel, DetectorFromAnEmptySessionIsAnError) {
  Session empty;
  auto d = Detector::create(empty);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace damoyolo
