// Labels files from strangers: a labels file that is not a regular file or is
// far too large gives a clear Status quickly (no hang, no std::bad_alloc).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "damoyolo/detector.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
std::string ns_model() { return (testing::fixtures_dir() / "models" / "damoyolo_Ns_416.onnx").string(); }

class HostileLabels : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::make_temp_dir("hostile_labels"); }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

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

}  // namespace
}  // namespace damoyolo
