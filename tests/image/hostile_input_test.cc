// Image files from strangers: what is not a regular file, what is larger than
// the limits, and decompression bombs (small files whose header asks for
// gigabytes) are refused before anything large is read or allocated.
#include <gtest/gtest.h>
#include <malloc.h>
#include <png.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <regex>
#include <string>
#include <vector>

#include "damoyolo/image.h"
#include "testutil/temp_dir_test.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

class HostileImageFile : public damoyolo::testing::TempDirTest {};

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
  o.max_decode_bytes = 0;
  EXPECT_EQ(decode_image_file(chelsea, o).status().code(), ErrorCode::kInvalidArgument);
  o = {};
  o.max_file_bytes = -1;
  EXPECT_EQ(decode_image_file(chelsea, o).status().code(), ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Decompression bombs
// ---------------------------------------------------------------------------

// A PNG of zeros written with libpng: width x height, the given colour type
// and depth, interlaced or not. Zeros compress ~1000:1.
std::vector<uint8_t> make_png(int width, int height, int color_type, int depth, bool interlaced) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep d, png_size_t n) {
        auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
        v->insert(v->end(), d, d + n);
      },
      nullptr);
  png_set_compression_level(png, 9);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), depth, color_type,
               interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const int passes = png_set_interlace_handling(png);
  std::vector<uint8_t> row(png_get_rowbytes(png, info), 0);
  for (int pass = 0; pass < passes; ++pass)
    for (int y = 0; y < height; ++y) png_write_row(png, row.data());
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::vector<uint8_t> read_bytes(const fs::path& p) { return testing::read_file(p); }

// Rewrites the frame size in a JPEG's SOF marker: the file then claims to be
// width x height while its scan data stays small.
void set_jpeg_size(std::vector<uint8_t>& jpeg, int width, int height) {
  size_t at = 2;
  while (at + 9 < jpeg.size()) {
    ASSERT_EQ(jpeg[at], 0xFF);
    const uint8_t marker = jpeg[at + 1];
    const size_t len = (size_t{jpeg[at + 2]} << 8) | jpeg[at + 3];
    if (marker >= 0xC0 && marker <= 0xC2) {
      jpeg[at + 5] = static_cast<uint8_t>(height >> 8);
      jpeg[at + 6] = static_cast<uint8_t>(height);
      jpeg[at + 7] = static_cast<uint8_t>(width >> 8);
      jpeg[at + 8] = static_cast<uint8_t>(width);
      return;
    }
    at += 2 + len;
  }
  FAIL() << "no SOF0/1/2 marker";
}

fs::path data_dir() { return testing::source_dir() / "tests" / "image" / "data"; }

// 60 MP of zeros, interlaced: a 60 KB file that asked for ~250 MB.
TEST(DecompressionBomb, InterlacedPngIsRefusedFromItsHeaderUnderALowerLimit) {
  const std::vector<uint8_t> png = make_png(7800, 7800, PNG_COLOR_TYPE_GRAY, 8, /*interlaced=*/true);
  ASSERT_LT(png.size(), 200u << 10);
  DecodeOptions o;
  o.max_decode_bytes = int64_t{64} << 20;
  const auto t = Clock::now();
  auto r = decode_image(png.data(), png.size(), o, "bomb.png");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kOutOfRange) << r.status().to_string();
  EXPECT_NE(r.status().message().find("7800x7800 interlaced 8-bit PNG"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("DecodeOptions::max_decode_bytes"), std::string::npos) << r.status().message();
  EXPECT_LT(seconds_since(t), 0.5);
}

// The fixture progressive JPEG, its header rewritten to 8000x8000: libjpeg
// would allocate the whole image's coefficients (~6 bytes a pixel here)
// before noticing the scan data is far too short.
TEST(DecompressionBomb, ProgressiveJpegIsRefusedFromItsHeaderUnderALowerLimit) {
  std::vector<uint8_t> jpeg = read_bytes(data_dir() / "jpeg_progressive.jpg");
  set_jpeg_size(jpeg, 8000, 8000);
  DecodeOptions o;
  o.max_decode_bytes = int64_t{64} << 20;
  const auto t = Clock::now();
  auto r = decode_image(jpeg.data(), jpeg.size(), o, "bomb.jpg");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kOutOfRange) << r.status().to_string();
  EXPECT_NE(r.status().message().find("8000x8000 progressive JPEG"), std::string::npos) << r.status().message();
  EXPECT_LT(seconds_since(t), 0.5);

  // A baseline file claiming the same size costs its output image: refused too.
  std::vector<uint8_t> baseline = read_bytes(data_dir() / "jpeg_444.jpg");
  set_jpeg_size(baseline, 8000, 8000);
  auto b = decode_image(baseline.data(), baseline.size(), o, "big.jpg");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), ErrorCode::kOutOfRange) << b.status().to_string();
  EXPECT_NE(b.status().message().find("8000x8000 JPEG"), std::string::npos) << b.status().message();
}

// The process's peak resident memory so far (VmHWM), in KiB; -1 if unknown.
long peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// Runs `decode` in a child process; returns how much its peak resident memory
// grew, in MiB: -1 when decode returned false, -2 when it cannot be measured.
// In the child, freed heap memory inherited from the tests before is given
// back and large blocks come from fresh pages (so reused memory cannot hide
// an allocation), then the peak is reset to the current size (clear_refs 5).
double peak_growth_mib(const std::function<bool()>& decode) {
  int fds[2];
  if (::pipe(fds) != 0) return -2;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    ::mallopt(M_MMAP_THRESHOLD, 64 << 10);
    ::malloc_trim(0);
    double mib = -2;
    if (std::ofstream("/proc/self/clear_refs") << "5" << std::flush) {
      const long before = peak_rss_kib();
      const bool ok = decode();
      const long after = peak_rss_kib();
      if (before >= 0 && after >= 0) mib = ok ? static_cast<double>(after - before) / 1024.0 : -1.0;
    }
    if (::write(fds[1], &mib, sizeof mib) != sizeof mib) ::_exit(1);
    ::_exit(0);
  }
  ::close(fds[1]);
  double mib = -2;
  if (::read(fds[0], &mib, sizeof mib) != sizeof mib) mib = -2;
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return mib;
}

// What a decode says it needs (the estimate in its kOutOfRange message, MiB).
double estimate_mib(const std::vector<uint8_t>& bytes) {
  DecodeOptions o;
  o.max_decode_bytes = 1;
  auto r = decode_image(bytes.data(), bytes.size(), o);
  std::smatch m;
  const std::string msg = r.status().message();
  if (!std::regex_search(msg, m, std::regex("needs about ([0-9]+) MiB"))) return -1;
  return std::stod(m[1]);
}

// The estimate is an upper bound of what the decode really takes (its peak
// resident memory, measured in a child process), within 1 MiB of rounding.
TEST(DecompressionBomb, TheEstimateCoversWhatTheDecodeTakes) {
  cv::Mat noise(1536, 2048, CV_8UC3);
  cv::randu(noise, 0, 255);
  std::vector<uint8_t> progressive, baseline;
  cv::imencode(".jpg", noise, progressive, {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
  cv::imencode(".jpg", noise, baseline);
  const struct {
    const char* what;
    std::vector<uint8_t> bytes;
  } cases[] = {
      {"progressive 4:2:0 JPEG", progressive},
      {"baseline 4:2:0 JPEG", baseline},
      {"interlaced 16-bit RGBA PNG", make_png(2048, 1536, PNG_COLOR_TYPE_RGB_ALPHA, 16, true)},
      {"interlaced 8-bit gray PNG", make_png(2048, 1536, PNG_COLOR_TYPE_GRAY, 8, true)},
  };
  for (const auto& c : cases) {
    const double estimate = estimate_mib(c.bytes);
    ASSERT_GT(estimate, 0) << c.what;
    const double used = peak_growth_mib([&] { return decode_image(c.bytes.data(), c.bytes.size()).ok(); });
    if (used == -2) GTEST_SKIP() << "peak memory cannot be measured here (/proc/self/clear_refs)";
    ASSERT_GE(used, 0) << c.what;
    std::cout << c.what << ": estimated " << estimate << " MiB, peak growth " << used << " MiB\n";
    EXPECT_LE(used, estimate + 1) << c.what;
    EXPECT_GE(used, estimate * 0.5) << c.what << ": the estimate is far too high";
    // And the estimate as the limit is enough.
    DecodeOptions o;
    o.max_decode_bytes = static_cast<int64_t>(estimate + 1) << 20;
    EXPECT_TRUE(decode_image(c.bytes.data(), c.bytes.size(), o).ok()) << c.what;
  }
}

// PNG text chunks are compressed too: 100 zTXt chunks of ~8 MB each (a
// 1 MB file) made libpng keep ~790 MB of text. They cannot change pixels and
// are now skipped unread.
TEST(DecompressionBomb, PngTextChunksAreNotInflated) {
  std::vector<uint8_t> png = make_png(64, 64, PNG_COLOR_TYPE_GRAY, 8, false);
  const std::string text(7'900'000, 'a');
  std::vector<uint8_t> z(compressBound(text.size()));
  uLongf zlen = z.size();
  ASSERT_EQ(compress2(z.data(), &zlen, reinterpret_cast<const Bytef*>(text.data()), text.size(), 9), Z_OK);
  std::vector<uint8_t> chunk = {0, 0, 0, 0, 'z', 'T', 'X', 't', 'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 0};
  chunk.insert(chunk.end(), z.begin(), z.begin() + static_cast<ptrdiff_t>(zlen));
  const uint32_t len = static_cast<uint32_t>(chunk.size() - 8);
  for (int i = 0; i < 4; ++i) chunk[static_cast<size_t>(i)] = static_cast<uint8_t>(len >> (24 - 8 * i));
  const uint32_t crc = static_cast<uint32_t>(crc32(0, chunk.data() + 4, static_cast<uInt>(chunk.size() - 4)));
  for (int i = 0; i < 4; ++i) chunk.push_back(static_cast<uint8_t>(crc >> (24 - 8 * i)));
  std::vector<uint8_t> bomb(png.begin(), png.begin() + 33);  // signature + IHDR
  for (int i = 0; i < 100; ++i) bomb.insert(bomb.end(), chunk.begin(), chunk.end());
  bomb.insert(bomb.end(), png.begin() + 33, png.end());
  ASSERT_LT(bomb.size(), 2u << 20);
  const double used = peak_growth_mib([&] { return decode_image(bomb.data(), bomb.size()).ok(); });
  if (used == -2) GTEST_SKIP() << "peak memory cannot be measured here (/proc/self/clear_refs)";
  ASSERT_GE(used, 0) << "the PNG did not decode";
  std::cout << "64x64 PNG with 100 zTXt chunks: peak growth " << used << " MiB\n";
  EXPECT_LT(used, 32) << "MiB of peak memory for a 64x64 PNG";
}

}  // namespace
}  // namespace damoyolo
