// The preprocessor's row kernels at every SIMD level against the scalar ones,
// on random inputs over the whole domain the kernels document (not only what
// a resize happens to produce): arbitrary tap positions and weights, every
// pixel format, rows that end exactly at the last pixel, saturation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/cpu_features.h"
#include "image/resize_kernels.h"

namespace damoyolo::image_internal {
namespace {

using cpu::IsaLevel;

class RowKernelsAt : public ::testing::TestWithParam<IsaLevel> {
 protected:
  void SetUp() override {
    if (!cpu::isa_level_supported(GetParam()))
      GTEST_SKIP() << "this CPU does not support " << cpu::isa_level_name(GetParam());
  }
  const RowKernels& k() const { return row_kernels(GetParam()); }
};
INSTANTIATE_TEST_SUITE_P(Levels, RowKernelsAt, ::testing::Values(IsaLevel::kAvx2, IsaLevel::kAvx512),
                         [](const auto& info) { return std::string(cpu::isa_level_name(info.param)); });

TEST_P(RowKernelsAt, AreThatLevelsKernels) {
  // A build without this level's kernels would hand out the scalar ones.
  EXPECT_EQ(k().level, GetParam());
  EXPECT_NE(k().hresize_row, nullptr);
}

// Tables as Preprocessor::Impl::prepare builds them, from random taps.
struct Tables {
  std::vector<int32_t> xofs0, xofs1, alpha, byte_ofs;
  std::vector<int64_t> byte_shift;
  ResizeTables t;
  Tables(int sw, int dw, PixelFormat format, bool area2, std::mt19937& rng) {
    const int stride = pad_row(dw);
    xofs0.resize(stride), xofs1.resize(stride), alpha.resize(stride), byte_ofs.resize(stride);
    byte_shift.resize(stride);
    std::uniform_int_distribution<int> x(0, sw - 1), w(0, 2048), edge(0, 9);
    for (int dx = 0; dx < stride; ++dx) {
      int s = x(rng);
      if (edge(rng) == 0) s = sw - 1;  // the clamped right edge, often
      xofs0[dx] = s;
      xofs1[dx] = std::min(s + 1, sw - 1);
      int a0 = w(rng), a1 = xofs1[dx] == s ? 0 : w(rng);
      if (edge(rng) == 1) a0 = 2048, a1 = xofs1[dx] == s ? 0 : 2048;  // largest sums
      if (area2) a0 = 1, a1 = xofs1[dx] == s ? 0 : 1;
      // (The tables' invariant, which the vector kernels rely on: a right tap
      // clamped onto the left pixel has weight 0.)
      alpha[dx] = static_cast<int32_t>((static_cast<uint32_t>(a1) << 16) | static_cast<uint16_t>(a0));
    }
    const int bpp = pixel_format_bytes(format);
    const int64_t row_bytes = int64_t{sw} * bpp;
    const bool tiny = row_bytes < 8;
    for (int dx = 0; dx < stride; ++dx) {
      const int64_t off = int64_t{xofs0[dx]} * bpp;
      const int64_t back = tiny ? 0 : std::max<int64_t>(0, off + 8 - row_bytes);
      byte_ofs[dx] = static_cast<int32_t>(off - back);
      byte_shift[dx] = 8 * back;
    }
    t.area2 = area2;
    t.hshift = area2 ? 0 : 4;
    t.format = format;
    t.xofs0 = xofs0.data(), t.xofs1 = xofs1.data(), t.alpha = alpha.data();
    t.byte_ofs = byte_ofs.data(), t.byte_shift = byte_shift.data();
  }
};

TEST_P(RowKernelsAt, HorizontalPassEqualsScalar) {
  std::mt19937 rng(17);
  std::uniform_int_distribution<int> side(1, 300), fmt(0, 4), byte(0, 255), coin(0, 3);
  for (int iter = 0; iter < 400; ++iter) {
    const int sw = side(rng), dw = side(rng);
    const auto f = static_cast<PixelFormat>(fmt(rng));
    const bool area2 = coin(rng) == 0;
    Tables tb(sw, dw, f, area2, rng);
    const int bpp = pixel_format_bytes(f);
    // The row ends exactly at its last pixel (heap-allocated on its own, so
    // ASan sees a read past it); rows under 8 bytes go through a zero-padded
    // 16-byte copy, as in the Preprocessor.
    const size_t row_bytes = static_cast<size_t>(sw) * bpp;
    std::vector<uint8_t> row(row_bytes < 8 ? 16 : row_bytes, 0);
    for (size_t i = 0; i < row_bytes; ++i) row[i] = static_cast<uint8_t>(byte(rng));
    if (iter % 5 == 0) std::memset(row.data(), 255, row_bytes);  // saturating sums
    std::vector<uint8_t> next(row);
    const int stride = pad_row(dw);
    std::vector<uint32_t> unpacked(static_cast<size_t>(pad_row(sw)) + 16);
    unpack_row_scalar(row.data(), f, sw, unpacked.data());
    std::vector<int16_t> want(3 * stride, -1), got(3 * stride, -1);
    hresize_row_scalar(unpacked.data(), tb.t, dw, stride, want.data());
    k().hresize_row(row.data(), coin(rng) ? next.data() : nullptr, tb.t, dw, stride, got.data());
    for (int c = 0; c < 3; ++c)
      for (int dx = 0; dx < dw; ++dx)
        ASSERT_EQ(got[c * stride + dx], want[c * stride + dx])
            << pixel_format_name(f) << " sw " << sw << " dw " << dw << " c " << c << " dx " << dx << " iter " << iter;
  }
}

TEST_P(RowKernelsAt, VerticalPassesEqualScalar) {
  std::mt19937 rng(29);
  std::uniform_int_distribution<int> n32(1, 40), h(0, 32767), h_small(0, 510), b(0, 2048), pick(0, 7);
  for (int iter = 0; iter < 300; ++iter) {
    const int n = 32 * n32(rng);
    std::vector<int16_t> h0(n), h1(n);
    for (int i = 0; i < n; ++i) {
      // Mostly what the horizontal pass makes (≤ 255·2049 >> 4), some extremes.
      const int p = pick(rng);
      h0[i] = static_cast<int16_t>(p == 0 ? 32767 : p == 1 ? 0 : h(rng) % 32656);
      h1[i] = static_cast<int16_t>(p == 2 ? 32767 : h(rng) % 32656);
    }
    int b0 = b(rng), b1 = b(rng);
    if (iter % 9 == 0) b0 = b1 = 2048;  // values far above 255: saturation
    std::vector<uint8_t> want(n), got(n);
    vresize_linear_scalar(h0.data(), h1.data(), b0, b1, n, want.data());
    k().vresize_linear(h0.data(), h1.data(), b0, b1, n, got.data());
    ASSERT_EQ(got, want) << "linear, iter " << iter << " b0 " << b0 << " b1 " << b1;

    for (int i = 0; i < n; ++i) h0[i] = static_cast<int16_t>(h_small(rng)), h1[i] = static_cast<int16_t>(h_small(rng));
    vresize_area2_scalar(h0.data(), h1.data(), n, want.data());
    k().vresize_area2(h0.data(), h1.data(), n, got.data());
    ASSERT_EQ(got, want) << "area2, iter " << iter;
  }
}

TEST_P(RowKernelsAt, U8ToF32EqualsScalarAndStopsAtN) {
  std::mt19937 rng(31);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int n = 0; n <= 70; ++n) {
    std::vector<uint8_t> in(n);
    for (auto& v : in) v = static_cast<uint8_t>(byte(rng));
    std::vector<float> want(n + 16, -3.f), got(n + 16, -3.f);
    u8_to_f32_scalar(in.data(), n, want.data());
    k().u8_to_f32(in.data(), n, got.data());
    ASSERT_EQ(got, want) << "n " << n;  // including the untouched -3s past n
  }
}

}  // namespace
}  // namespace damoyolo::image_internal
