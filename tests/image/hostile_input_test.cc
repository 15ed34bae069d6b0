// Image files from strangers: what is not a regular file and what is larger
// than the limit are refused before anything is read.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "damoyolo/image.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

class HostileImageFile : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::make_temp_dir("hostile_image"); }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

// /dev/zero never ends: reading it "to EOF" grew memory by ~1 GB per 30 s.
TEST_F(HostileImageFile, DevZeroIsRefusedWithoutReading) {
  const auto t = Clock::now();
  auto r = decode_image_file("/dev/zero");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIOError) << r.status().to_string();
  EXPECT_NE(r.status().message().find("/dev/zero"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos) << r.status().message();
  EXPECT_LT(seconds_since(t), 2.0);
}

// A FIFO with no writer: opening it for reading used to block forever.
TEST_F(HostileImageFile, FifoIsRefusedWithoutBlocking) {
  const fs::path fifo = dir_ / "image.jpg";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto t = Clock::now();
  auto r = decode_image_file(fifo.string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIOError) << r.status().to_string();
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos) << r.status().message();
  EXPECT_LT(seconds_since(t), 2.0);
}

TEST_F(HostileImageFile, DirectoryIsRefusedAsNotARegularFile) {
  auto r = decode_image_file(dir_.string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIOError) << r.status().to_string();
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos) << r.status().message();
}

TEST_F(HostileImageFile, MissingFileIsNotFound) {
  auto r = decode_image_file((dir_ / "nope.jpg").string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound) << r.status().to_string();
}

// 1 GiB of (sparse) file: refused from its size, never read.
TEST_F(HostileImageFile, FileOverMaxFileBytesIsRefusedBeforeReading) {
  const fs::path big = dir_ / "big.jpg";
  { std::ofstream(big) << "\xFF\xD8\xFF"; }
  fs::resize_file(big, 1ull << 30);
  const auto t = Clock::now();
  auto r = decode_image_file(big.string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kOutOfRange) << r.status().to_string();
  EXPECT_NE(r.status().message().find("DecodeOptions::max_file_bytes"), std::string::npos) << r.status().message();
  EXPECT_LT(seconds_since(t), 2.0);

  DecodeOptions small;
  small.max_file_bytes = 1000;
  const std::string chelsea = testing::fixture_image_path("chelsea_jpg").string();
  auto c = decode_image_file(chelsea, small);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), ErrorCode::kOutOfRange) << c.status().to_string();
  small.max_file_bytes = int64_t{1} << 20;
  EXPECT_TRUE(decode_image_file(chelsea, small).ok());
}

TEST(DecodeLimits, NonPositiveLimitsAreInvalid) {
  const std::string chelsea = testing::fixture_image_path("chelsea_jpg").string();
  DecodeOptions o;
  o.max_file_bytes = -1;
  EXPECT_EQ(decode_image_file(chelsea, o).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace damoyolo
