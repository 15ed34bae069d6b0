// Preprocessor: exact equality with the golden network inputs and with
// OpenCV's cv::resize(INTER_LINEAR) over many sizes, formats and strides.
#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/cpu_features.h"
#include "damoyolo/image.h"
#include "testutil/alloc_counter.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

using testing::fixture_image_path;
using testing::fixtures_dir;

// Every SIMD level's kernels (common/cpu_features.h) must give the same bits:
// every exactness test runs at each level this CPU supports (the others are
// skipped), whatever DAMOYOLO_ISA says.
class EveryLevel : public ::testing::TestWithParam<cpu::IsaLevel> {
 protected:
  void SetUp() override {
    if (!cpu::isa_level_supported(GetParam()))
      GTEST_SKIP() << "this CPU does not support " << cpu::isa_level_name(GetParam());
    level_ = std::make_unique<cpu::ScopedIsaLevel>(GetParam());
  }
  // The Preprocessor picks its kernels at construction, at the level set above.
  PreprocessOptions options() const { return {true}; }

 private:
  std::unique_ptr<cpu::ScopedIsaLevel> level_;
};
INSTANTIATE_TEST_SUITE_P(Kernels, EveryLevel, ::testing::ValuesIn(cpu::kIsaLevels),
                         [](const auto& info) { return std::string(cpu::isa_level_name(info.param)); });

struct GoldenCase {
  const char* model;
  int size;
};
constexpr GoldenCase kGoldenModels[] = {{"damoyolo_T_640", 640}, {"damoyolo_Ns_416", 416}};

TEST_P(EveryLevel, MatchesGoldenNetworkInputs) {
  Preprocessor pre(options());
  for (const auto& m : kGoldenModels) {
    for (const char* name : testing::kFixtureImages) {
      SCOPED_TRACE(std::string(m.model) + "/" + name);
      // The goldens come from the official recipe: decode exactly like PIL.
      auto image = decode_image_file(fixture_image_path(name).string(), DecodeOptions::pil_compatible());
      ASSERT_TRUE(image.ok()) << image.status().to_string();
      const auto golden = testing::read_file(fixtures_dir() / "golden" / m.model / name / "input.u8");
      const size_t n = size_t{3} * m.size * m.size;
      ASSERT_EQ(golden.size(), n);

      std::vector<uint8_t> u8(n);
      PreprocessInfo info;
      ASSERT_TRUE(pre.run_u8(image->view(), m.size, m.size, ResizeMode::kStretch, u8.data(), &info).ok());
      size_t mismatches = 0;
      for (size_t i = 0; i < n; ++i) mismatches += u8[i] != golden[i];
      EXPECT_EQ(mismatches, 0u);
      EXPECT_EQ(info.resized_w, m.size);
      EXPECT_FLOAT_EQ(info.scale_x, static_cast<float>(image->width()) / m.size);
      EXPECT_FLOAT_EQ(info.scale_y, static_cast<float>(image->height()) / m.size);

      std::vector<float> f32(n, -1.f);
      ASSERT_TRUE(pre.run(image->view(), m.size, m.size, ResizeMode::kStretch, f32.data()).ok());
      mismatches = 0;
      for (size_t i = 0; i < n; ++i) mismatches += f32[i] != static_cast<float>(golden[i]);
      EXPECT_EQ(mismatches, 0u);
    }
  }
}

// --- OpenCV reference -------------------------------------------------------

struct Source {
  std::vector<uint8_t> bytes;
  ImageView view;
  cv::Mat rgb;  // what the preprocessor must treat it as
};

Source make_source(int w, int h, PixelFormat format, int extra_stride, std::mt19937& rng) {
  const int bpp = pixel_format_bytes(format);
  const ptrdiff_t stride = static_cast<ptrdiff_t>(w) * bpp + extra_stride;
  Source s;
  // Exactly stride * (h - 1) + w * bpp bytes: the last row ends at the buffer's
  // end, so an over-read past it would show under ASan/valgrind.
  s.bytes.resize(static_cast<size_t>(stride) * (h - 1) + static_cast<size_t>(w) * bpp);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : s.bytes) b = static_cast<uint8_t>(byte(rng));
  // Some smooth areas and saturated ones, where rounding paths differ most.
  for (int y = 0; y < h / 3; ++y)
    for (int x = 0; x < w * bpp; ++x) s.bytes[y * stride + x] = (y % 2) ? 255 : static_cast<uint8_t>(x);
  s.view = {s.bytes.data(), w, h, stride, format};

  static const int kTypes[] = {CV_8UC3, CV_8UC3, CV_8UC1, CV_8UC4, CV_8UC4};
  cv::Mat m(h, w, kTypes[static_cast<int>(format)], s.bytes.data(), static_cast<size_t>(stride));
  switch (format) {
    case PixelFormat::kRGB8: s.rgb = m.clone(); break;
    case PixelFormat::kBGR8: cv::cvtColor(m, s.rgb, cv::COLOR_BGR2RGB); break;
    case PixelFormat::kGray8: cv::cvtColor(m, s.rgb, cv::COLOR_GRAY2RGB); break;
    case PixelFormat::kRGBA8: cv::cvtColor(m, s.rgb, cv::COLOR_RGBA2RGB); break;
    case PixelFormat::kBGRA8: cv::cvtColor(m, s.rgb, cv::COLOR_BGRA2RGB); break;
  }
  return s;
}

// Compares planar u8 output (dst_w x dst_h canvas) against cv::resize of the
// RGB source to rw x rh placed at the top-left, zeros elsewhere.
::testing::AssertionResult matches_opencv(const cv::Mat& rgb, const std::vector<uint8_t>& out, int dst_w,
                                          int dst_h, int rw, int rh) {
  cv::Mat ref;
  cv::resize(rgb, ref, cv::Size(rw, rh), 0, 0, cv::INTER_LINEAR);
  const size_t plane = static_cast<size_t>(dst_w) * dst_h;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < dst_h; ++y)
      for (int x = 0; x < dst_w; ++x) {
        const int want = (x < rw && y < rh) ? ref.at<cv::Vec3b>(y, x)[c] : 0;
        const int got = out[c * plane + static_cast<size_t>(y) * dst_w + x];
        if (got != want)
          return ::testing::AssertionFailure()
                 << "src " << rgb.cols << "x" << rgb.rows << " -> " << rw << "x" << rh << " at (x=" << x
                 << ", y=" << y << ", c=" << c << "): got " << got << ", OpenCV " << want;
      }
  return ::testing::AssertionSuccess();
}

TEST_P(EveryLevel, MatchesOpenCvOnSpecialSizes) {
  struct Pair {
    int sw, sh, dw, dh;
  };
  const Pair pairs[] = {
      {1920, 1080, 640, 640},  // the benchmark case
      {1280, 1280, 640, 640},  // exact 2x: OpenCV switches to INTER_AREA
      {1920, 1920, 640, 640},  // exact 3x: stays linear
      {2560, 2560, 640, 640},  // exact 4x
      {640, 480, 320, 240},    // 2x both
      {640, 480, 320, 480},    // 2x on one axis only: linear
      {641, 480, 320, 240},    // almost 2x
      {2, 2, 1, 1},            // smallest 2x
      {320, 240, 640, 480},    // 2x up
      {100, 100, 100, 100},    // equal: OpenCV copies
      {100, 100, 100, 57},     // equal on one axis
      {451, 300, 640, 640},    // fixtures
      {512, 512, 416, 416},
      {1, 1, 5, 7},            // 1-pixel dims
      {7, 1, 3, 9},
      {1, 9, 4, 4},
      {5, 5, 1, 1},
      {33, 17, 1, 64},
      {3000, 17, 31, 5},  // strong downscale
  };
  std::mt19937 rng(1234);
  Preprocessor pre(options());
  for (const auto& p : pairs) {
    for (PixelFormat f : {PixelFormat::kRGB8, PixelFormat::kBGR8}) {
      Source s = make_source(p.sw, p.sh, f, 0, rng);
      std::vector<uint8_t> out(size_t{3} * p.dw * p.dh);
      ASSERT_TRUE(pre.run_u8(s.view, p.dw, p.dh, ResizeMode::kStretch, out.data()).ok());
      EXPECT_TRUE(matches_opencv(s.rgb, out, p.dw, p.dh, p.dw, p.dh)) << pixel_format_name(f);
    }
  }
}

TEST_P(EveryLevel, MatchesOpenCvOnRandomSizesFormatsAndStrides) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> side(1, 260), fmt(0, 4), pad(0, 1);
  Preprocessor pre(options());
  for (int iter = 0; iter < 300; ++iter) {
    const int sw = side(rng), sh = side(rng);
    int dw = side(rng), dh = side(rng);
    if (iter % 7 == 0) dw = std::max(1, sw / 2), dh = std::max(1, sh / 2);  // include 2x-ish
    const auto f = static_cast<PixelFormat>(fmt(rng));
    const int extra = pad(rng) ? 1 + iter % 61 : 0;  // odd strides too
    Source s = make_source(sw, sh, f, extra, rng);
    std::vector<uint8_t> out(size_t{3} * dw * dh);
    ASSERT_TRUE(pre.run_u8(s.view, dw, dh, ResizeMode::kStretch, out.data()).ok());
    ASSERT_TRUE(matches_opencv(s.rgb, out, dw, dh, dw, dh))
        << pixel_format_name(f) << " stride " << s.view.stride << " iter " << iter;
  }
}

TEST(Preprocess, NegativeStrideReadsBottomUp) {
  std::mt19937 rng(7);
  Source s = make_source(97, 61, PixelFormat::kBGR8, 5, rng);
  ImageView flipped = s.view;
  flipped.data = s.view.data + (s.view.height - 1) * s.view.stride;
  flipped.stride = -s.view.stride;
  cv::Mat rgb_flipped;
  cv::flip(s.rgb, rgb_flipped, 0);
  Preprocessor pre;
  std::vector<uint8_t> out(3 * 50 * 40);
  ASSERT_TRUE(pre.run_u8(flipped, 50, 40, ResizeMode::kStretch, out.data()).ok());
  EXPECT_TRUE(matches_opencv(rgb_flipped, out, 50, 40, 50, 40));
}

TEST_P(EveryLevel, LetterboxGeometryAndPadding) {
  struct Case {
    int sw, sh, s, rw, rh;
  };
  // r = min(S/w, S/h); (int(w*r), int(h*r)), as the legacy Python code computes.
  const Case cases[] = {
      {1920, 1080, 640, 640, 360}, {1080, 1920, 640, 360, 640}, {451, 300, 640, 640, 425},
      {300, 451, 416, 276, 416},   {1280, 1280, 640, 640, 640}, {1280, 640, 640, 640, 320},
      {10, 1000, 64, 1, 64},  // int() truncates 0.64 -> 0, clamped to 1
      {23, 10, 416, 415, 180},  // 23 * (416 / 23) = 415.99999999999994 in doubles
  };
  std::mt19937 rng(3);
  Preprocessor pre(options());
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.sw) + "x" + std::to_string(c.sh));
    auto g = Preprocessor::plan_geometry(c.sw, c.sh, c.s, c.s, ResizeMode::kLetterbox);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->resized_w, c.rw);
    EXPECT_EQ(g->resized_h, c.rh);
    EXPECT_FLOAT_EQ(g->scale_x, static_cast<float>(static_cast<double>(c.sw) / c.rw));
    EXPECT_FLOAT_EQ(g->scale_y, static_cast<float>(static_cast<double>(c.sh) / c.rh));

    Source s = make_source(c.sw, c.sh, PixelFormat::kRGB8, 0, rng);
    std::vector<uint8_t> out(size_t{3} * c.s * c.s, 77);  // garbage that padding must clear
    PreprocessInfo info;
    ASSERT_TRUE(pre.run_u8(s.view, c.s, c.s, ResizeMode::kLetterbox, out.data(), &info).ok());
    EXPECT_EQ(info.resized_w, c.rw);
    EXPECT_EQ(info.resized_h, c.rh);
    EXPECT_TRUE(matches_opencv(s.rgb, out, c.s, c.s, c.rw, c.rh));

    std::vector<float> f(out.size(), 77.f);
    ASSERT_TRUE(pre.run(s.view, c.s, c.s, ResizeMode::kLetterbox, f.data()).ok());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(f[i], static_cast<float>(out[i])) << i;
  }
}

TEST_P(EveryLevel, LayoutsAgree) {
  std::mt19937 rng(11);
  Source s = make_source(333, 222, PixelFormat::kBGRA8, 12, rng);
  Preprocessor pre(options());
  const int w = 97, h = 65;
  std::vector<uint8_t> u8(3 * w * h);
  std::vector<float> nchw(3 * w * h), nhwc(3 * w * h);
  for (ResizeMode mode : {ResizeMode::kStretch, ResizeMode::kLetterbox}) {
    ASSERT_TRUE(pre.run_u8(s.view, w, h, mode, u8.data()).ok());
    ASSERT_TRUE(pre.run(s.view, w, h, mode, nchw.data()).ok());
    ASSERT_TRUE(pre.run_nhwc(s.view, w, h, mode, nhwc.data()).ok());
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < w * h; ++i) {
        ASSERT_EQ(nchw[c * w * h + i], static_cast<float>(u8[c * w * h + i]));
        ASSERT_EQ(nhwc[3 * i + c], static_cast<float>(u8[c * w * h + i]));
      }
  }
}

TEST(Preprocess, WritesOnlyItsBatchSlice) {
  std::mt19937 rng(5);
  Source s = make_source(200, 100, PixelFormat::kRGB8, 0, rng);
  const int S = 64;
  const size_t item = size_t{3} * S * S;
  std::vector<float> batch(3 * item, -7.f);
  Preprocessor pre;
  ASSERT_TRUE(pre.run(s.view, S, S, ResizeMode::kLetterbox, batch.data() + item).ok());
  for (size_t i = 0; i < item; ++i) ASSERT_EQ(batch[i], -7.f);
  for (size_t i = 2 * item; i < 3 * item; ++i) ASSERT_EQ(batch[i], -7.f);
  std::vector<float> alone(item);
  ASSERT_TRUE(pre.run(s.view, S, S, ResizeMode::kLetterbox, alone.data()).ok());
  EXPECT_TRUE(std::equal(alone.begin(), alone.end(), batch.begin() + item));
}

TEST(Preprocess, RepeatedCallAllocatesNothing) {
  std::mt19937 rng(9);
  Source s = make_source(1920, 1080, PixelFormat::kBGR8, 0, rng);
  std::vector<float> out(3 * 640 * 640);
  Preprocessor pre;
  ASSERT_TRUE(pre.run(s.view, 640, 640, ResizeMode::kStretch, out.data()).ok());
  const size_t reserved = pre.reserved_bytes();
  const long before = testing::allocation_count();
  for (int i = 0; i < 3; ++i) {
    const Status st = pre.run(s.view, 640, 640, ResizeMode::kStretch, out.data());
    ASSERT_TRUE(st.ok());
  }
  EXPECT_EQ(testing::allocation_count() - before, 0);
  EXPECT_EQ(pre.reserved_bytes(), reserved);
  // Another source of the same size (a new frame) is also free.
  Source s2 = make_source(1920, 1080, PixelFormat::kBGR8, 0, rng);
  const long before2 = testing::allocation_count();
  ASSERT_TRUE(pre.run(s2.view, 640, 640, ResizeMode::kStretch, out.data()).ok());
  EXPECT_EQ(testing::allocation_count() - before2, 0);
}

TEST(Preprocess, RejectsBadArguments) {
  Preprocessor pre;
  uint8_t px[12] = {};
  std::vector<float> out(3 * 4 * 4);
  ImageView ok{px, 2, 2, 6, PixelFormat::kRGB8};
  EXPECT_EQ(pre.run(ok, 0, 4, ResizeMode::kStretch, out.data()).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pre.run(ok, 4, 4, ResizeMode::kStretch, nullptr).code(), ErrorCode::kInvalidArgument);
  ImageView null_data = ok;
  null_data.data = nullptr;
  EXPECT_EQ(pre.run(null_data, 4, 4, ResizeMode::kStretch, out.data()).code(), ErrorCode::kInvalidArgument);
  ImageView short_stride = ok;
  short_stride.stride = 5;
  EXPECT_EQ(pre.run(short_stride, 4, 4, ResizeMode::kStretch, out.data()).code(),
            ErrorCode::kInvalidArgument);
  ImageView empty = ok;
  empty.width = 0;
  EXPECT_EQ(pre.run(empty, 4, 4, ResizeMode::kStretch, out.data()).code(), ErrorCode::kInvalidArgument);
}

TEST(Preprocess, ReportsSimdAvailability) {
  Preprocessor off(PreprocessOptions{false});
  EXPECT_FALSE(off.simd_active());
  // Any build (native or portable) on a CPU with AVX2 or better must use SIMD
  // kernels, at the level in force (the CPU's best unless DAMOYOLO_ISA lowers it).
  Preprocessor on;
  EXPECT_EQ(on.simd_active(), cpu::isa_level() != cpu::IsaLevel::kScalar);
  for (cpu::IsaLevel level : cpu::kIsaLevels) {
    if (!cpu::isa_level_supported(level)) continue;
    cpu::ScopedIsaLevel scoped(level);
    EXPECT_EQ(Preprocessor().simd_active(), level != cpu::IsaLevel::kScalar) << cpu::isa_level_name(level);
    EXPECT_FALSE(Preprocessor(PreprocessOptions{false}).simd_active());
  }
}

}  // namespace
}  // namespace damoyolo
