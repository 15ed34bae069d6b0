// The Detector on `--benchmark`-form models whose strides are not 8/16/32,
// built here (one strided convolution per map, so a map of h×w on an H×W
// input has stride H/h). Its detections must be the facts §2.6 decode of the
// session's own raw maps, with the strides the input size implies; a model
// whose maps do not divide its input is refused when the Detector is created.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <map>
#include <random>
#include <tuple>

#include "damoyolo/detector.h"
#include "testutil/model_builder.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;

constexpr int kClasses = 3, kRegMax = 7;

// images [1,3,in,in] → per stride s: cls_l = Sigmoid(Conv_{s×s, stride s}),
// reg_l = Conv_{s×s, stride s}; outputs cls_0..cls_{L-1}, reg_0..reg_{L-1}.
// Weights are random with logits of a few units on 0–255 pixels.
fs::path build_raw_model(const fs::path& dir, int64_t in, const std::vector<int64_t>& strides, uint32_t seed) {
  testing::ModelBuilder b;
  b.input("images", {1, 3, in, in});
  std::mt19937 rng(seed);
  std::vector<std::string> cls, reg;
  std::vector<int64_t> map;
  for (size_t l = 0; l < strides.size(); ++l) {
    const int64_t s = strides[l], m = (in - s) / s + 1, fan_in = 3 * s * s;
    std::normal_distribution<float> w(0.f, 2.f / (147.f * std::sqrt(static_cast<float>(fan_in))));
    std::normal_distribution<float> bias(0.f, 1.f);
    auto conv = [&](const std::string& name, int64_t out_ch) {
      std::vector<float> wv(static_cast<size_t>(out_ch * fan_in)), bv(static_cast<size_t>(out_ch));
      for (auto& v : wv) v = w(rng);
      for (auto& v : bv) v = bias(rng);
      b.init_f32(name + "_w", {out_ch, 3, s, s}, wv).init_f32(name + "_b", {out_ch}, bv);
      auto& n = b.node("Conv", {"images", name + "_w", name + "_b"}, {name + "_conv"});
      testing::ModelBuilder::attr_ints(n, "kernel_shape", {s, s});
      testing::ModelBuilder::attr_ints(n, "strides", {s, s});
      testing::ModelBuilder::attr_ints(n, "pads", {0, 0, 0, 0});
      return name + "_conv";
    };
    const std::string c = "cls_" + std::to_string(l), r = "reg_" + std::to_string(l);
    b.node("Sigmoid", {conv(c, kClasses)}, {c});
    b.node("Identity", {conv(r, 4 * (kRegMax + 1))}, {r});
    cls.push_back(c);
    reg.push_back(r);
    map.push_back(m);
  }
  for (size_t l = 0; l < strides.size(); ++l) b.output(cls[l], {1, kClasses, map[l], map[l]});
  for (size_t l = 0; l < strides.size(); ++l) b.output(reg[l], {1, 4 * (kRegMax + 1), map[l], map[l]});
  return b.save(dir / ("raw_" + std::to_string(in) + ".onnx"));
}

Image random_image(int size, uint32_t seed) {
  Image img(size, size);
  std::mt19937 rng(seed);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size * 3; ++x) img.row(y)[x] = static_cast<uint8_t>(rng() & 0xff);
  return img;
}

// Facts §2.6 on map level l (h×w) of a raw output pair: anchor (j·s, i·s),
// d = Σ k·softmax(bins) per side (l, t, r, b), box px − d_l·s, … in double.
std::array<double, 4> facts_box(const Tensor& reg, int64_t i, int64_t j, double s) {
  const int64_t h = reg.dim(2), w = reg.dim(3), a = i * w + j;
  const float* r = reg.data<float>();
  double d[4];
  for (int side = 0; side < 4; ++side) {
    double m = -1e300, sum = 0, wsum = 0;
    for (int k = 0; k <= kRegMax; ++k) m = std::max<double>(m, r[(side * (kRegMax + 1) + k) * h * w + a]);
    for (int k = 0; k <= kRegMax; ++k) {
      const double e = std::exp(r[(side * (kRegMax + 1) + k) * h * w + a] - m);
      sum += e;
      wsum += k * e;
    }
    d[side] = wsum / sum;
  }
  return {j * s - d[0] * s, i * s - d[1] * s, j * s + d[2] * s, i * s + d[3] * s};
}

class RawStrides : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override { dir_ = testing::make_temp_dir("head_layout"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_P(RawStrides, DetectorDecodesStridesFourEightSixteenFromTheInputSize) {
  const int64_t in = 64;
  const std::vector<int64_t> strides = {4, 8, 16};  // maps 16x16, 8x8, 4x4
  const fs::path model = build_raw_model(dir_, in, strides, 11);
  DetectorOptions o;
  o.session.engine = GetParam();
  o.family = ModelFamily::kGeneral;
  o.conf_threshold = 0.6f;
  o.iou_threshold = 1.0;  // nothing suppressed: every candidate is a detection
  o.max_det = 0;
  auto det = Detector::create(model.string(), o);
  ASSERT_TRUE(det.ok()) << det.status().to_string();
  EXPECT_EQ(det->num_classes(), kClasses);
  EXPECT_EQ(det->input_width(), in);

  // Same size as the input: the stretch resize is the identity, scale 1.
  const Image img = random_image(static_cast<int>(in), 5);
  auto r = det->detect(img.view());
  ASSERT_TRUE(r.ok()) << r.status().to_string();

  // The session's raw maps for the same pixels.
  Tensor x(DType::kFloat32, {1, 3, in, in});
  for (int c = 0; c < 3; ++c)
    for (int64_t y = 0; y < in; ++y)
      for (int64_t xx = 0; xx < in; ++xx)
        x.data<float>()[(c * in + y) * in + xx] = img.at(static_cast<int>(xx), static_cast<int>(y), c);
  auto outs = det->session().run({x});
  ASSERT_TRUE(outs.ok()) << outs.status().to_string();
  ASSERT_EQ(outs->size(), 6u);

  std::map<std::pair<int, float>, std::tuple<size_t, int64_t, int64_t>> candidates;  // (class, score) → anchor
  for (size_t l = 0; l < 3; ++l) {
    const Tensor& cls = (*outs)[l];
    ASSERT_EQ(cls.dim(2), in / strides[l]);
    for (int c = 0; c < kClasses; ++c)
      for (int64_t i = 0; i < cls.dim(2); ++i)
        for (int64_t j = 0; j < cls.dim(3); ++j) {
          const float s = cls.data<float>()[(c * cls.dim(2) + i) * cls.dim(3) + j];
          if (s > 0.6f) candidates[{c, s}] = {l, i, j};
        }
  }
  ASSERT_GT(candidates.size(), 20u);
  ASSERT_EQ(r->detections.size(), candidates.size());
  size_t per_level[3] = {0, 0, 0};
  for (const Detection& d : r->detections) {
    auto it = candidates.find({d.class_id, d.score});
    ASSERT_NE(it, candidates.end()) << "class " << d.class_id << " score " << d.score;
    const auto [l, i, j] = it->second;
    ++per_level[l];
    const double s = static_cast<double>(strides[l]);
    const auto want = facts_box((*outs)[3 + l], i, j, s);
    const double tol = 2e-4 * s + 1e-4;
    SCOPED_TRACE("stride " + std::to_string(strides[l]) + " anchor (" + std::to_string(i) + "," + std::to_string(j) + ")");
    EXPECT_NEAR(d.x1, want[0], tol);
    EXPECT_NEAR(d.y1, want[1], tol);
    EXPECT_NEAR(d.x2, want[2], tol);
    EXPECT_NEAR(d.y2, want[3], tol);
  }
  for (size_t l = 0; l < 3; ++l) EXPECT_GT(per_level[l], 0u) << "no detection on level " << l;
}

TEST_P(RawStrides, MapsThatDoNotDivideTheInputAreRefusedAtCreation) {
  // 60x60 through stride-8/16/32 convs: maps 7x7, 3x3, 1x1; 60 / 7 is no stride.
  const fs::path model = build_raw_model(dir_, 60, {8, 16, 32}, 12);
  DetectorOptions o;
  o.session.engine = GetParam();
  auto det = Detector::create(model.string(), o);
  ASSERT_FALSE(det.ok());
  EXPECT_EQ(det.status().code(), ErrorCode::kInvalidArgument);
  const std::string& msg = det.status().message();
  EXPECT_NE(msg.find(model.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("output 0 ('cls_0')"), std::string::npos) << msg;
  EXPECT_NE(msg.find("7x7"), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(Engines, RawStrides, ::testing::Values(Engine::kReference, Engine::kOptimized),
                         [](const auto& info) { return info.param == Engine::kReference ? "Reference" : "Optimized"; });

}  // namespace
}  // namespace damoyolo
