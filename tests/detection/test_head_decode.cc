// Head decode kernel: known answers, layouts, softmax stability.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "damoyolo/status.h"
#include "kernels/head/head_decode.h"

namespace damoyolo::kernels::head {
namespace {

// Straightforward double-precision decode of one anchor, for comparison.
void decode_ref(const float* logits, int64_t ch_stride, int R, float px, float py, float s, double* out) {
  double d[4];
  for (int side = 0; side < 4; ++side) {
    double m = -1e300;
    for (int k = 0; k <= R; ++k) m = std::max<double>(m, logits[(side * (R + 1) + k) * ch_stride]);
    double sum = 0, w = 0;
    for (int k = 0; k <= R; ++k) {
      const double e = std::exp(logits[(side * (R + 1) + k) * ch_stride] - m);
      sum += e;
      w += k * e;
    }
    d[side] = w / sum;
  }
  out[0] = px - d[0] * s;
  out[1] = py - d[1] * s;
  out[2] = px + d[2] * s;
  out[3] = py + d[3] * s;
}

TEST(HeadDecode, KnownAnswersAndPriors) {
  // One level, stride 8, 2×3 map, 1 class, R = 3. Anchor (i=1, j=2) sits at (16, 8).
  const int h = 2, w = 3, R = 3, hw = h * w;
  std::vector<float> cls(hw, 0.25f), reg(4 * (R + 1) * hw, 0.f);
  // Anchor 5: left side all-equal logits → d = R/2 = 1.5; top one-hot at bin 2
  // with a huge logit (softmax must not overflow) → d = 2; right/bottom → 0.
  const int a = 5;
  reg[(1 * (R + 1) + 2) * hw + a] = 1000.f;
  reg[(2 * (R + 1) + 0) * hw + a] = 1000.f;
  reg[(3 * (R + 1) + 0) * hw + a] = -1000.f;  // bins 1..3 at 0 dominate: d = 2
  HeadLevelMaps lv{8, h, w, cls.data(), 1, hw, reg.data(), 1, hw};
  std::vector<float> scores(hw), boxes(hw * 4);
  decode_head_dense({1, R}, &lv, 1, scores.data(), boxes.data());
  EXPECT_FLOAT_EQ(scores[a], 0.25f);
  EXPECT_NEAR(boxes[a * 4 + 0], 16 - 1.5f * 8, 1e-4);
  EXPECT_NEAR(boxes[a * 4 + 1], 8 - 2.f * 8, 1e-4);
  EXPECT_NEAR(boxes[a * 4 + 2], 16 + 0.f, 1e-4);
  EXPECT_NEAR(boxes[a * 4 + 3], 8 + 2.f * 8, 1e-4);
  // Anchor 0 at (0,0), all-zero logits: d = 1.5 on every side.
  EXPECT_NEAR(boxes[0], -12.f, 1e-4);
  EXPECT_NEAR(boxes[3], 12.f, 1e-4);
  for (float v : boxes) EXPECT_TRUE(std::isfinite(v));
}

TEST(HeadDecode, RandomMatchesDoubleReferenceAndLayoutsAgree) {
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.f, 4.f);
  const int C = 5, R = 7, ch = 4 * (R + 1);
  const int sizes[3] = {12, 6, 3};  // 96×96 input
  std::vector<float> cls_nchw[3], reg_nchw[3], cls_nhwc[3], reg_nhwc[3];
  HeadLevelMaps nchw[3], nhwc[3];
  for (int l = 0; l < 3; ++l) {
    const int hw = sizes[l] * sizes[l];
    cls_nchw[l].resize(C * hw);
    reg_nchw[l].resize(ch * hw);
    for (auto& v : cls_nchw[l]) v = n(rng);
    for (auto& v : reg_nchw[l]) v = n(rng) * (l + 1);
    cls_nhwc[l].resize(C * hw);
    reg_nhwc[l].resize(ch * hw);
    for (int a = 0; a < hw; ++a) {
      for (int c = 0; c < C; ++c) cls_nhwc[l][a * C + c] = cls_nchw[l][c * hw + a];
      for (int c = 0; c < ch; ++c) reg_nhwc[l][a * ch + c] = reg_nchw[l][c * hw + a];
    }
    nchw[l] = {8 << l, sizes[l], sizes[l], cls_nchw[l].data(), 1, hw, reg_nchw[l].data(), 1, hw};
    nhwc[l] = {8 << l, sizes[l], sizes[l], cls_nhwc[l].data(), C, 1, reg_nhwc[l].data(), ch, 1};
  }
  const int A = 144 + 36 + 9;
  HeadSpec spec{C, R, /*cls_is_logit=*/true};
  std::vector<float> s1(A * C), b1(A * 4), s2(A * C), b2(A * 4);
  PriorCache cache;
  decode_head_dense(spec, nchw, 3, s1.data(), b1.data(), cache);
  decode_head_dense(spec, nhwc, 3, s2.data(), b2.data(), cache);
  EXPECT_EQ(s1, s2);
  EXPECT_EQ(b1, b2);

  int64_t g = 0;
  for (int l = 0; l < 3; ++l) {
    const int hw = sizes[l] * sizes[l];
    for (int a = 0; a < hw; ++a, ++g) {
      const int i = a / sizes[l], j = a % sizes[l];
      double want[4];
      decode_ref(reg_nchw[l].data() + a, hw, R, j * (8 << l), i * (8 << l), 8 << l, want);
      for (int k = 0; k < 4; ++k) ASSERT_NEAR(b1[g * 4 + k], want[k], 2e-4 * (8 << l)) << g;
      for (int c = 0; c < C; ++c) {
        const double sig = 1 / (1 + std::exp(-double(cls_nchw[l][c * hw + a])));
        ASSERT_NEAR(s1[g * C + c], sig, 1e-6);
      }
    }
  }

  // Decoding a scattered subset writes exactly the dense values, nothing else.
  std::vector<int32_t> pick = {188, 0, 17, 150, 144, 143, 5, 180, 181, 182, 183, 184, 185, 186, 187, 1, 2};
  std::vector<float> b3(A * 4, -7.f);
  decode_boxes_selected(spec, nchw, 3, cache.get(nchw, 3), pick.data(), pick.size(), b3.data());
  std::vector<char> picked(A, 0);
  for (int32_t p : pick) picked[p] = 1;
  for (int a = 0; a < A; ++a)
    for (int k = 0; k < 4; ++k) ASSERT_EQ(b3[a * 4 + k], picked[a] ? b1[a * 4 + k] : -7.f) << a;
}

TEST(HeadDecode, PriorCacheReusesGeometry) {
  std::vector<float> dummy(1);
  HeadLevelMaps a{8, 4, 4, dummy.data(), 1, 16, dummy.data(), 1, 16};
  HeadLevelMaps b{8, 5, 4, dummy.data(), 1, 20, dummy.data(), 1, 20};
  PriorCache cache;
  const Priors* p1 = &cache.get(&a, 1);
  EXPECT_EQ(&cache.get(&a, 1), p1);
  const Priors& p2 = cache.get(&b, 1);
  EXPECT_EQ(p2.num_anchors, 20);
  EXPECT_EQ(p2.px[19], 24.f);
  EXPECT_EQ(p2.py[19], 32.f);
  EXPECT_EQ(&cache.get(&a, 1), p1);
}

TEST(HeadDecode, RejectsBadSpecs) {
  std::vector<float> dummy(64);
  HeadLevelMaps lv{8, 2, 2, dummy.data(), 1, 4, dummy.data(), 1, 4};
  EXPECT_THROW(decode_head_dense({0, 7}, &lv, 1, dummy.data(), dummy.data()), Error);
  EXPECT_THROW(decode_head_dense({1, 64}, &lv, 1, dummy.data(), dummy.data()), Error);
  lv.h = 0;
  EXPECT_THROW(decode_head_dense({1, 1}, &lv, 1, dummy.data(), dummy.data()), Error);
}

}  // namespace
}  // namespace damoyolo::kernels::head
