// The detection kernels (the head decode's, kernels/head/head_simd.h, and
// NMS's, detection/nms_simd.h) at every SIMD level (common/cpu_features.h) against
// the scalar ones, bit for bit: directly on random and adversarial inputs
// (NaN, ±0, ±inf, inverted boxes, negative thresholds, garbage past n), and
// end to end on the golden fixture maps (decode, scan, NMS: identical
// detections). Levels the CPU lacks are skipped.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/cpu_features.h"
#include "detection/nms_simd.h"
#include "kernels/head/head_decode.h"
#include "kernels/head/head_simd.h"
#include "golden_util.h"

namespace damoyolo::detection {
namespace {

using cpu::IsaLevel;
// The decode kernels live in the kernels layer, NMS's here; the tests read as before.
using namespace kernels::head;

// Each SIMD level against the scalar kernels.
class AtLevel : public ::testing::TestWithParam<IsaLevel> {
 protected:
  void SetUp() override {
    if (!cpu::isa_level_supported(GetParam()))
      GTEST_SKIP() << "this CPU does not support " << cpu::isa_level_name(GetParam());
  }
};
INSTANTIATE_TEST_SUITE_P(Levels, AtLevel, ::testing::Values(IsaLevel::kAvx2, IsaLevel::kAvx512),
                         [](const auto& info) { return std::string(cpu::isa_level_name(info.param)); });

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

bool same_bits(const float* a, const float* b, size_t n) {
  return n == 0 || std::memcmp(a, b, n * sizeof(float)) == 0;  // memcmp must not see the null of an empty vector
}

TEST_P(AtLevel, TablesHoldThatLevelsKernels) {
  // A build without this level's kernels would hold the scalar ones here.
  EXPECT_NE(kDecodeBlock.at(GetParam()), kDecodeBlock.scalar);
  EXPECT_NE(kDecodeLevel.at(GetParam()), kDecodeLevel.scalar);
  EXPECT_NE(kGatherScores.at(GetParam()), kGatherScores.scalar);
  EXPECT_NE(kSigmoid.at(GetParam()), kSigmoid.scalar);
  EXPECT_NE(kAboveMask.at(GetParam()), kAboveMask.scalar);
  EXPECT_NE(kIouAbove.at(GetParam()), kIouAbove.scalar);
}

// A coordinate: mostly ordinary, often a value shared with other boxes (ties,
// touching edges), sometimes ±0, ±inf or NaN.
float coordinate(std::mt19937& rng) {
  static const float kSpecial[] = {0.f, -0.f, 1.f, 2.f, 0.5f, -1.f, 100.f, kInf, -kInf, kNaN};
  std::uniform_int_distribution<int> pick(0, 19);
  std::uniform_real_distribution<float> u(-10.f, 110.f);
  const int p = pick(rng);
  return p < 10 ? kSpecial[p] : u(rng);
}

TEST_P(AtLevel, IouKernelEqualsScalar) {
  const IouAboveFn k = kIouAbove.at(GetParam());
  std::mt19937 rng(101);
  std::uniform_int_distribution<int> count(1, 40), small(0, 3);
  const float thresholds[] = {0.7f, 0.65f, 0.3f, 0.5f, 0.f, -0.f, -0.25f, 1.f, kNaN};
  int trues = 0, total = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    const int n = count(rng);
    const int padded = (n + 15) / 16 * 16;
    // Past n: garbage (never read by the scalar kernel, so must be ignored).
    std::vector<float> soa[5];
    for (auto& v : soa) {
      v.resize(padded);
      for (float& x : v) x = coordinate(rng);
    }
    bool ordinary = small(rng) != 0;  // then: ordinary overlapping boxes, areas as FastNms makes them
    if (ordinary) {
      std::uniform_real_distribution<float> u(0.f, 50.f);
      for (int i = 0; i < n; ++i) {
        soa[0][i] = u(rng), soa[1][i] = u(rng);
        soa[2][i] = soa[0][i] + u(rng), soa[3][i] = soa[1][i] + u(rng);
        soa[4][i] = (soa[2][i] - soa[0][i]) * (soa[3][i] - soa[1][i]);
      }
    }
    float b[5];
    for (float& x : b) x = ordinary ? std::abs(coordinate(rng)) : coordinate(rng);
    if (ordinary) b[2] = b[0] + 20.f, b[3] = b[1] + 20.f, b[4] = 400.f;
    for (float thr : thresholds) {
      const bool want = kIouAbove.scalar(soa[0].data(), soa[1].data(), soa[2].data(), soa[3].data(),
                                         soa[4].data(), n, b[0], b[1], b[2], b[3], b[4], thr);
      const bool got = k(soa[0].data(), soa[1].data(), soa[2].data(), soa[3].data(), soa[4].data(), n, b[0],
                         b[1], b[2], b[3], b[4], thr);
      ASSERT_EQ(got, want) << "iter " << iter << " n " << n << " thr " << thr;
      trues += want;
      ++total;
    }
  }
  // Both answers were exercised plenty.
  EXPECT_GT(trues, total / 10);
  EXPECT_LT(trues, total - total / 10);
}

TEST_P(AtLevel, ScanKernelEqualsScalar) {
  const AboveMaskFn k = kAboveMask.at(GetParam());
  std::mt19937 rng(202);
  std::uniform_real_distribution<float> u(0.f, 0.1f);
  std::uniform_int_distribution<int> pick(0, 15);
  for (int n = 0; n <= 4096; n = n < 300 ? n + 1 : n * 2 + 1) {
    for (float thr : {0.05f, 0.f, -0.f, 0.03f}) {
      // Exactly n floats on the heap: a read past them is ASan's to see.
      std::vector<float> x(n);
      for (float& v : x) {
        const int p = pick(rng);
        v = p == 0 ? thr : p == 1 ? std::nextafter(thr, 1.f) : p == 2 ? kNaN : p == 3 ? -0.f
            : p == 4 ? kInf : u(rng);
      }
      const size_t words = (static_cast<size_t>(n) + 63) / 64;
      std::vector<uint64_t> want(words, 0xdeadbeefull), got(words, 0x12345678ull);
      kAboveMask.scalar(x.data(), n, thr, want.data());
      k(x.data(), n, thr, got.data());
      ASSERT_EQ(got, want) << "n " << n << " thr " << thr;
      if (n % 64) {
        ASSERT_EQ(want.back() >> (n % 64), 0u);  // nothing past n
      }
    }
  }
}

TEST_P(AtLevel, DecodeAndSigmoidKernelsEqualScalarBitForBit) {
  std::mt19937 rng(303);
  std::normal_distribution<float> logit(0.f, 6.f);
  std::uniform_int_distribution<int> bins_d(1, 64), pick(0, 30);
  const DecodeBlockFn k = kDecodeBlock.at(GetParam());
  for (int iter = 0; iter < 3000; ++iter) {
    const int bins = bins_d(rng);
    std::vector<float> logits(4 * bins * kDecodeLanes);
    for (float& v : logits) {
      const int p = pick(rng);
      v = p == 0 ? 1000.f : p == 1 ? -1000.f : p == 2 ? -0.f : logit(rng);  // softmax saturation too
    }
    float px[kDecodeLanes], py[kDecodeLanes], st[kDecodeLanes];
    for (int l = 0; l < kDecodeLanes; ++l) px[l] = 8.f * (rng() % 80), py[l] = 8.f * (rng() % 80), st[l] = 8 << (rng() % 3);
    float want[4 * kDecodeLanes], got[4 * kDecodeLanes];
    kDecodeBlock.scalar(logits.data(), bins, px, py, st, want);
    k(logits.data(), bins, px, py, st, got);
    ASSERT_TRUE(same_bits(got, want, 4 * kDecodeLanes)) << "iter " << iter << " bins " << bins;
  }
  const SigmoidFn sig = kSigmoid.at(GetParam());
  std::uniform_real_distribution<float> wide(-120.f, 120.f);
  for (int n = 0; n <= 100; ++n) {
    std::vector<float> x(n);
    for (float& v : x) {
      const int p = pick(rng);
      v = p == 0 ? kNaN : p == 1 ? kInf : p == 2 ? -kInf : p == 3 ? 87.5f : p == 4 ? -88.5f : p < 15 ? wide(rng) : logit(rng);
    }
    std::vector<float> want = x, got = x;
    kSigmoid.scalar(want.data(), n);
    sig(got.data(), n);
    ASSERT_TRUE(same_bits(got.data(), want.data(), n)) << "n " << n;
  }
}

// The dense decode (per-level kernel, score gather, sigmoid) on random maps in
// both layouts, odd level sizes (partial blocks) and several R.
TEST_P(AtLevel, DenseDecodeEqualsScalarInBothLayouts) {
  std::mt19937 rng(404);
  std::normal_distribution<float> n(0.f, 5.f);
  for (int R : {0, 7, 16, 63}) {
    const int C = 7, ch = 4 * (R + 1);
    const int sizes[3] = {13, 7, 3};
    std::vector<float> cls_nchw[3], reg_nchw[3], cls_nhwc[3], reg_nhwc[3];
    HeadLevelMaps nchw[3], nhwc[3];
    int A = 0;
    for (int l = 0; l < 3; ++l) {
      const int hw = sizes[l] * (sizes[l] + 2);
      A += hw;
      cls_nchw[l].resize(C * hw), reg_nchw[l].resize(ch * hw), cls_nhwc[l].resize(C * hw), reg_nhwc[l].resize(ch * hw);
      for (auto& v : cls_nchw[l]) v = n(rng);
      for (auto& v : reg_nchw[l]) v = n(rng);
      for (int a = 0; a < hw; ++a) {
        for (int c = 0; c < C; ++c) cls_nhwc[l][a * C + c] = cls_nchw[l][c * hw + a];
        for (int c = 0; c < ch; ++c) reg_nhwc[l][a * ch + c] = reg_nchw[l][c * hw + a];
      }
      nchw[l] = {8 << l, sizes[l], sizes[l] + 2, cls_nchw[l].data(), 1, hw, reg_nchw[l].data(), 1, hw};
      nhwc[l] = {8 << l, sizes[l], sizes[l] + 2, cls_nhwc[l].data(), C, 1, reg_nhwc[l].data(), ch, 1};
    }
    for (const HeadLevelMaps* maps : {nchw, nhwc}) {
      const HeadSpec spec{C, R, /*cls_is_logit=*/true};
      std::vector<float> s_want(A * C), b_want(A * 4), s_got(A * C), b_got(A * 4);
      {
        cpu::ScopedIsaLevel scalar(IsaLevel::kScalar);
        decode_head_dense(spec, maps, 3, s_want.data(), b_want.data());
      }
      {
        cpu::ScopedIsaLevel level(GetParam());
        decode_head_dense(spec, maps, 3, s_got.data(), b_got.data());
      }
      ASSERT_TRUE(same_bits(s_got.data(), s_want.data(), s_want.size())) << "R " << R;
      ASSERT_TRUE(same_bits(b_got.data(), b_want.data(), b_want.size())) << "R " << R;
    }
  }
}

// --- End to end on the golden fixtures -----------------------------------------

struct Maps {
  std::vector<float> cls[3], reg[3];
  std::vector<HeadLevelMaps> levels;
  std::vector<RawHeadLevel> raw;
  explicit Maps(const std::string& image) {
    static constexpr int kH[3] = {52, 26, 13};
    for (int l = 0; l < 3; ++l) {
      cls[l] = testing::load_output("damoyolo_Ns_416_benchmark", image, l);
      reg[l] = testing::load_output("damoyolo_Ns_416_benchmark", image, 3 + l);
      const int64_t hw = int64_t{kH[l]} * kH[l];
      levels.push_back({8 << l, kH[l], kH[l], cls[l].data(), 1, hw, reg[l].data(), 1, hw});
      raw.push_back({8 << l, kH[l], kH[l], cls[l].data(), reg[l].data()});
    }
  }
};

struct StageOutputs {
  std::vector<float> scores, boxes, selected;
  std::vector<Detection> dense, raw, fixture;
  int64_t dense_candidates = 0, raw_candidates = 0, fixture_candidates = 0;
};

void expect_same(const std::vector<Detection>& got, const std::vector<Detection>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const Detection &a = got[i], &b = want[i];
    ASSERT_TRUE(a.class_id == b.class_id && same_bits(&a.score, &b.score, 1) && same_bits(&a.x1, &b.x1, 1) &&
                same_bits(&a.y1, &b.y1, 1) && same_bits(&a.x2, &b.x2, 1) && same_bits(&a.y2, &b.y2, 1))
        << "detection " << i;
  }
}

// Everything the detection stage does to one image, at the level in force.
StageOutputs run_all(const std::string& image) {
  Maps m(image);
  const int64_t A = 3549;
  StageOutputs r;
  r.scores.resize(A * 80), r.boxes.resize(A * 4), r.selected.assign(A * 4, -1.f);
  const HeadSpec spec{80, 7, /*cls_is_logit=*/true};  // the sigmoid too (these maps are probabilities already)
  PriorCache cache;
  decode_head_dense(spec, m.levels.data(), 3, r.scores.data(), r.boxes.data(), cache);
  std::vector<int32_t> every_third;
  for (int32_t a = 0; a < A; a += 3) every_third.push_back(a);
  decode_boxes_selected(spec, m.levels.data(), 3, cache.get(m.levels.data(), 3), every_third.data(),
                        static_cast<int64_t>(every_third.size()), r.selected.data());

  Postprocessor pp(PostprocessOptions::for_family(ModelFamily::kNano));
  std::vector<float> probs(A * 80), boxes(A * 4);
  decode_head_dense({80, 7}, m.levels.data(), 3, probs.data(), boxes.data(), cache);
  EXPECT_TRUE(pp.process_dense(probs.data(), boxes.data(), A, 80, {1.5f, 0.75f}, &r.dense).ok());
  r.dense_candidates = pp.last_candidate_count();
  EXPECT_TRUE(pp.process_raw(m.raw, 80, 7, {1.5f, 0.75f}, &r.raw).ok());
  r.raw_candidates = pp.last_candidate_count();

  // The default export's own outputs (T_640: 8400 anchors), general thresholds.
  const auto s = testing::load_output("damoyolo_T_640", image, 0);
  const auto b = testing::load_output("damoyolo_T_640", image, 1);
  Postprocessor general(PostprocessOptions::for_family(ModelFamily::kGeneral));
  EXPECT_TRUE(general.process_dense(s.data(), b.data(), static_cast<int64_t>(b.size() / 4), 80, {}, &r.fixture).ok());
  r.fixture_candidates = general.last_candidate_count();
  return r;
}

TEST_P(AtLevel, GoldenImagesGiveIdenticalResults) {
  for (const char* image : testing::kFixtureImages) {
    SCOPED_TRACE(image);
    StageOutputs want, got;
    {
      cpu::ScopedIsaLevel scalar(IsaLevel::kScalar);
      want = run_all(image);
    }
    {
      cpu::ScopedIsaLevel level(GetParam());
      got = run_all(image);
    }
    EXPECT_TRUE(same_bits(got.scores.data(), want.scores.data(), want.scores.size()));
    EXPECT_TRUE(same_bits(got.boxes.data(), want.boxes.data(), want.boxes.size()));
    EXPECT_TRUE(same_bits(got.selected.data(), want.selected.data(), want.selected.size()));
    EXPECT_EQ(got.dense_candidates, want.dense_candidates);
    EXPECT_EQ(got.raw_candidates, want.raw_candidates);
    EXPECT_EQ(got.fixture_candidates, want.fixture_candidates);
    EXPECT_GT(want.dense.size(), 10u);
    expect_same(got.dense, want.dense);
    expect_same(got.raw, want.raw);
    expect_same(got.fixture, want.fixture);
  }
}

}  // namespace
}  // namespace damoyolo::detection
