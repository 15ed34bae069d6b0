// Labels files and session options from strangers: a labels file that is not
// a regular file or is far too large, and absurd thread counts and batch
// sizes, give a clear Status quickly (no hang, crash or std::bad_alloc).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "damoyolo/detector.h"
#include "damoyolo/session.h"
#include "testutil/temp_dir_test.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
std::string ns_model() { return (testing::fixtures_dir() / "models" / "damoyolo_Ns_416.onnx").string(); }

class HostileLabels : public damoyolo::testing::TempDirTest {};

// /dev/zero is one endless line: std::getline grew it until std::bad_alloc.
TEST_F(HostileLabels, DevZeroIsRefusedWithoutReading) {
  const auto t = Clock::now();
  auto r = read_labels_file("/dev/zero");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIOError) << r.status().to_string();
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos) << r.status().message();
  EXPECT_LT(seconds_since(t), 2.0);
}

TEST_F(HostileLabels, FifoIsRefusedWithoutBlocking) {
  const fs::path fifo = dir_ / "labels.txt";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto r = read_labels_file(fifo.string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIOError) << r.status().to_string();
}

TEST_F(HostileLabels, DirectoryIsRefusedAsNotARegularFile) {
  auto r = read_labels_file(dir_.string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIOError) << r.status().to_string();
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos) << r.status().message();
}

// 1 MiB holds ~50,000 class names; a larger "labels file" is something else.
TEST_F(HostileLabels, FileOverTheLimitIsRefusedBeforeReading) {
  const fs::path big = dir_ / "big.txt";
  { std::ofstream(big) << "x\n"; }
  fs::resize_file(big, 64ull << 20);  // sparse: costs no disk
  auto r = read_labels_file(big.string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kOutOfRange) << r.status().to_string();
  EXPECT_NE(r.status().message().find("1048576"), std::string::npos) << r.status().message();
}

TEST_F(HostileLabels, DetectorWithDevZeroLabelsFails) {
  DetectorOptions o;
  o.labels_file = "/dev/zero";
  const auto t = Clock::now();
  auto det = Detector::create(ns_model(), o);
  ASSERT_FALSE(det.ok());
  EXPECT_NE(det.status().message().find("not a regular file"), std::string::npos) << det.status().message();
  EXPECT_LT(seconds_since(t), 30.0);
}

// omp_set_num_threads(100000) crashed inside GOMP_parallel; 5000 hung. The
// library clamps to the cores available (more only adds contention).
TEST(HostileSessionOptions, HugeThreadCountsAreClampedAndRunQuickly) {
  for (int threads : {100000, 5000}) {
    SessionOptions o;
    o.threads = threads;
    auto s = Session::load(ns_model(), o);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    EXPECT_GE(s->threads(), 1);
    EXPECT_LE(s->threads(), static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    Tensor in(DType::kFloat32, s->inputs()[0].dims);
    std::fill(in.data<float>(), in.data<float>() + in.numel(), 114.f);
    const auto t = Clock::now();
    auto out = s->run({in});
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    EXPECT_LT(seconds_since(t), 20.0) << threads << " threads";
  }
}

TEST(HostileSessionOptions, NegativeThreadsAreRejected) {
  SessionOptions o;
  o.threads = -4;
  auto s = Session::load(ns_model(), o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument) << s.status().to_string();
  EXPECT_NE(s.status().message().find("threads"), std::string::npos) << s.status().message();
}

// --batch 100000 on one image ended in "std::bad_alloc" (a 207 GB input tensor).
TEST(HostileSessionOptions, HugeBatchIsRefusedQuicklyWithAStatus) {
  DetectorOptions o;
  o.session.batch = 100000;
  const auto t = Clock::now();
  auto det = Detector::create(ns_model(), o);
  ASSERT_FALSE(det.ok());
  EXPECT_EQ(det.status().code(), ErrorCode::kOutOfRange) << det.status().to_string();
  EXPECT_NE(det.status().message().find("batch"), std::string::npos) << det.status().message();
  EXPECT_LT(seconds_since(t), 5.0);

  SessionOptions so;
  so.batch = 100000;
  auto s = Session::load(ns_model(), so);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kOutOfRange) << s.status().to_string();
}

TEST(HostileSessionOptions, NegativeBatchIsRejected) {
  DetectorOptions o;
  o.session.batch = -1;
  auto det = Detector::create(ns_model(), o);
  ASSERT_FALSE(det.ok());
  EXPECT_EQ(det.status().code(), ErrorCode::kInvalidArgument) << det.status().to_string();
}

}  // namespace
}  // namespace damoyolo
