// The one definition of the DAMO-YOLO head (src/model/head_layout.h): strides
// derived from the input size, both export forms recognised, inconsistent
// shapes refused with the output named; and the post-processor decoding a
// raw export whose strides are not 8/16/32 exactly as facts §2.6 says.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "damoyolo/detection.h"
#include "model/head_layout.h"

namespace damoyolo {
namespace {

using model::ExportForm;
using model::HeadLayout;
using model::HeadLevel;

struct Map {
  int64_t h, w;
};

// The --benchmark form: L class maps [N,C,h,w], then L regression maps [N,4(R+1),h,w].
std::vector<TensorInfo> raw_infos(const std::vector<Map>& maps, int64_t C = 80, int64_t R = 7, int64_t N = 1) {
  std::vector<TensorInfo> v;
  for (size_t l = 0; l < maps.size(); ++l)
    v.push_back({"cls" + std::to_string(l), DType::kFloat32, {N, C, maps[l].h, maps[l].w}});
  for (size_t l = 0; l < maps.size(); ++l)
    v.push_back({"reg" + std::to_string(l), DType::kFloat32, {N, 4 * (R + 1), maps[l].h, maps[l].w}});
  return v;
}

std::vector<TensorInfo> image_input(int64_t h, int64_t w) { return {{"images", DType::kFloat32, {1, 3, h, w}}}; }

HeadLayout recognise(int64_t in_h, int64_t in_w, const std::vector<TensorInfo>& outs) {
  auto r = model::recognise_head(image_input(in_h, in_w), outs);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : HeadLayout{};
}

// The status of recognising `outs` on an in_h x in_w input: kInvalidArgument
// whose message contains every one of `words`.
void expect_refused(int64_t in_h, int64_t in_w, const std::vector<TensorInfo>& outs,
                    const std::vector<std::string>& words) {
  auto r = model::recognise_head(image_input(in_h, in_w), outs);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << r.status().to_string();
  for (const auto& w : words) EXPECT_NE(r.status().message().find(w), std::string::npos) << r.status().message();
}

std::vector<int> strides_of(const HeadLayout& l) {
  std::vector<int> s;
  for (const HeadLevel& lv : l.levels) s.push_back(lv.stride);
  return s;
}

// ---------------------------------------------------------------------------
// Strides from the input size

struct GeometryCase {
  int64_t in_h, in_w;
  std::vector<Map> maps;
  std::vector<int> strides;
  int64_t anchors;
};

TEST(HeadLayout, StridesAreInputOverMapSize) {
  const GeometryCase cases[] = {
      {416, 416, {{52, 52}, {26, 26}, {13, 13}}, {8, 16, 32}, 3549},  // facts §2.6: 3549 for 416
      {640, 640, {{80, 80}, {40, 40}, {20, 20}}, {8, 16, 32}, 8400},  // 8400 for 640
      {320, 320, {{40, 40}, {20, 20}, {10, 10}}, {8, 16, 32}, 2100},  // 2100 for 320
      {384, 640, {{48, 80}, {24, 40}, {12, 20}}, {8, 16, 32}, 3840 + 960 + 240},  // non-square, H 384 W 640
      {640, 384, {{80, 48}, {40, 24}, {20, 12}}, {8, 16, 32}, 3840 + 960 + 240},  // and transposed
      {64, 64, {{16, 16}, {8, 8}, {4, 4}}, {4, 8, 16}, 256 + 64 + 16},           // not 8/16/32
      {48, 80, {{12, 20}, {6, 10}, {3, 5}}, {4, 8, 16}, 240 + 60 + 15},
      {512, 512, {{64, 64}, {32, 32}, {16, 16}, {8, 8}}, {8, 16, 32, 64}, 4096 + 1024 + 256 + 64},  // 4 levels
      {96, 96, {{12, 12}}, {8}, 144},                                                             // 1 level
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.in_h) + "x" + std::to_string(c.in_w));
    const HeadLayout l = recognise(c.in_h, c.in_w, raw_infos(c.maps, 80, 7));
    EXPECT_EQ(l.form, ExportForm::kRawMaps);
    EXPECT_TRUE(l.input_known);
    EXPECT_EQ(l.input_h, c.in_h);
    EXPECT_EQ(l.input_w, c.in_w);
    EXPECT_EQ(l.num_classes, 80);
    EXPECT_EQ(l.reg_max, 7);
    EXPECT_EQ(l.batch, 1);
    EXPECT_EQ(strides_of(l), c.strides);
    EXPECT_EQ(l.num_anchors, c.anchors);
    int64_t offset = 0;
    for (size_t i = 0; i < l.levels.size(); ++i) {
      EXPECT_EQ(l.levels[i].h, c.maps[i].h);
      EXPECT_EQ(l.levels[i].w, c.maps[i].w);
      EXPECT_EQ(l.levels[i].anchor_offset, offset);
      offset += c.maps[i].h * c.maps[i].w;
      EXPECT_EQ(l.cls_outputs[i], i);
      EXPECT_EQ(l.reg_outputs[i], c.maps.size() + i);
    }
  }
}

TEST(HeadLayout, LevelsComeInAscendingStrideWhateverTheOutputOrder) {
  // Class maps listed s32, s8, s16 (and their regression maps likewise).
  const HeadLayout l = recognise(416, 416, raw_infos({{13, 13}, {52, 52}, {26, 26}}));
  EXPECT_EQ(strides_of(l), (std::vector<int>{8, 16, 32}));
  EXPECT_EQ(l.cls_outputs, (std::vector<size_t>{1, 2, 0}));
  EXPECT_EQ(l.reg_outputs, (std::vector<size_t>{4, 5, 3}));
  EXPECT_EQ(l.levels[1].anchor_offset, 2704);
  EXPECT_EQ(l.levels[2].anchor_offset, 2704 + 676);
}

TEST(HeadLayout, DecodedFormBindsScoresAndBoxesByPosition) {
  std::vector<TensorInfo> outs = {{"output", DType::kFloat32, {2, 8400, 80}}, {"789", DType::kFloat32, {2, 8400, 4}}};
  const HeadLayout l = recognise(640, 640, outs);
  EXPECT_EQ(l.form, ExportForm::kDecoded);
  EXPECT_EQ(l.num_classes, 80);
  EXPECT_EQ(l.num_anchors, 8400);
  EXPECT_EQ(l.batch, 2);
  EXPECT_EQ(l.scores_output, 0u);
  EXPECT_EQ(l.boxes_output, 1u);
  EXPECT_EQ(l.reg_max, -1);       // not visible in the decoded outputs
  EXPECT_TRUE(l.levels.empty());  // nor are the levels
  EXPECT_EQ(l.input_h, 640);
  // C == 4 is still bound by position: output 0 is the scores.
  outs[0].dims = {1, 100, 4};
  outs[1].dims = {1, 100, 4};
  EXPECT_EQ(recognise(640, 640, outs).num_classes, 4);
}

TEST(HeadLayout, UnknownInputTakesTheLargestMapAsStrideEight) {
  auto r = model::recognise_head(raw_infos({{52, 52}, {26, 26}, {13, 13}}), 0, 0);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_FALSE(r->input_known);
  EXPECT_EQ(r->input_h, 416);
  EXPECT_EQ(r->input_w, 416);
  EXPECT_EQ(strides_of(*r), (std::vector<int>{8, 16, 32}));
}

// ---------------------------------------------------------------------------
// Inconsistent shapes

TEST(HeadLayout, MapThatDoesNotDivideTheInputIsRefused) {
  // 400 / 52 is not an integer.
  expect_refused(416, 400, raw_infos({{52, 52}, {26, 26}, {13, 13}}),
                 {"output 0 ('cls0')", "52x52", "416x400", "integer"});
  // A 7x7 map on a 60x60 input (an export whose size is not a multiple of 32).
  expect_refused(60, 60, raw_infos({{7, 7}, {3, 3}, {1, 1}}), {"output 0 ('cls0')", "7x7", "60x60"});
}

TEST(HeadLayout, StrideMustBeTheSameInHAndW) {
  expect_refused(416, 832, raw_infos({{52, 52}, {26, 26}, {13, 13}}),
                 {"output 0 ('cls0')", "stride 8 in H but 16 in W"});
}

TEST(HeadLayout, TwoLevelsCannotShareAStride) {
  expect_refused(416, 416, raw_infos({{52, 52}, {52, 52}, {13, 13}}),
                 {"output 0 ('cls0')", "output 1 ('cls1')", "both have stride 8"});
}

TEST(HeadLayout, ClassAndRegressionMapsOfALevelMustAgree) {
  auto outs = raw_infos({{52, 52}, {26, 26}, {13, 13}});
  outs[4].dims = {1, 32, 26, 25};
  expect_refused(416, 416, outs, {"output 1 ('cls1')", "output 4 ('reg1')", "same h x w"});

  outs = raw_infos({{52, 52}, {26, 26}, {13, 13}});
  outs[2].dims[1] = 81;
  expect_refused(416, 416, outs, {"output 2 ('cls2')", "81 class channels", "80"});

  outs = raw_infos({{52, 52}, {26, 26}, {13, 13}});
  for (int l = 3; l < 6; ++l) outs[l].dims[1] = 30;
  expect_refused(416, 416, outs, {"output 3 ('reg0')", "4·(R+1)", "30"});

  outs = raw_infos({{52, 52}, {26, 26}, {13, 13}});
  outs[5].dims[1] = 64;
  expect_refused(416, 416, outs, {"output 5 ('reg2')", "64 regression channels"});

  outs = raw_infos({{52, 52}, {26, 26}, {13, 13}});
  outs[4].dims[0] = 2;
  expect_refused(416, 416, outs, {"output 4 ('reg1')", "batch 2"});
}

TEST(HeadLayout, DtypesUnknownDimsAndArityAreChecked) {
  auto outs = raw_infos({{52, 52}, {26, 26}, {13, 13}});
  outs[1].dtype = DType::kInt64;
  expect_refused(416, 416, outs, {"output 1 ('cls1')", "float32"});

  outs = raw_infos({{52, 52}, {26, 26}, {13, 13}});
  outs[3].dims[2] = -1;
  expect_refused(416, 416, outs, {"output 3 ('reg0')", "known and positive"});

  outs = raw_infos({{52, 52}, {26, 26}, {13, 13}});
  outs.pop_back();
  expect_refused(416, 416, outs, {"neither", "5 output(s)"});

  expect_refused(416, 416, {}, {"neither", "0 output(s)"});

  auto r = model::recognise_head(std::vector<TensorInfo>{{"x", DType::kFloat32, {1, 1, 416, 416}}},
                                 raw_infos({{52, 52}}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a DAMO-YOLO detector"), std::string::npos) << r.status().message();
}

TEST(HeadLayout, DecodedFormInconsistenciesAreRefused) {
  std::vector<TensorInfo> outs = {{"output", DType::kFloat32, {1, 8400, 80}}, {"789", DType::kFloat32, {1, 8400, 5}}};
  expect_refused(640, 640, outs, {"output 1 ('789')", "[N,A,4]", "[1,8400,5]"});
  outs[1].dims = {1, 8000, 4};
  expect_refused(640, 640, outs, {"output 0 ('output')", "output 1 ('789')", "disagree"});
  outs[1].dims = {1, 8400, 4, 1};
  expect_refused(640, 640, outs, {"neither"});
}

TEST(HeadLayout, CallerGivenLevelsMustDescribeOneHead) {
  const HeadLevel good[] = {{8, 52, 52}, {16, 26, 26}, {32, 13, 13}};
  EXPECT_NO_THROW(model::check_levels(good, "t"));
  auto refused = [](std::vector<HeadLevel> lv, const std::string& word) {
    try {
      model::check_levels(lv, "t");
      ADD_FAILURE() << "accepted; expected " << word;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
    }
  };
  // Explicit strides can only be checked against each other (8/16/32 on the
  // maps of a 4/8/16 head is self-consistent; only the input size tells):
  refused({{8, 52, 52}, {16, 26, 26}, {32, 12, 13}}, "level 2");                 // 384x416 vs 416x416
  refused({{16, 26, 26}, {8, 52, 52}, {32, 13, 13}}, "strictly ascending");      // order
  refused({{8, 52, 52}, {0, 26, 26}}, "non-positive");
  refused({}, "expected 1..8");
}

// ---------------------------------------------------------------------------
// The post-processor on a raw export whose strides are not 8/16/32

// A random --benchmark export of an in_h x in_w input with the given maps:
// sigmoid class maps (distinct scores) and bin logits.
struct RawExport {
  int C = 3, R = 7;
  int64_t in_h, in_w;
  std::vector<Map> maps;
  std::vector<std::vector<float>> cls, reg;
  std::vector<Tensor> outputs;

  RawExport(int64_t h, int64_t w, std::vector<Map> m, uint32_t seed) : in_h(h), in_w(w), maps(std::move(m)) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> prob(0.f, 1.f);
    std::normal_distribution<float> logit(0.f, 2.f);
    for (const Map& mp : maps) {
      cls.emplace_back(static_cast<size_t>(C * mp.h * mp.w));
      reg.emplace_back(static_cast<size_t>(4 * (R + 1) * mp.h * mp.w));
      for (auto& v : cls.back()) v = prob(rng);
      for (auto& v : reg.back()) v = logit(rng);
    }
    for (size_t l = 0; l < maps.size(); ++l)
      outputs.push_back(Tensor::wrap(DType::kFloat32, {1, C, maps[l].h, maps[l].w}, cls[l].data()));
    for (size_t l = 0; l < maps.size(); ++l)
      outputs.push_back(Tensor::wrap(DType::kFloat32, {1, 4 * (R + 1), maps[l].h, maps[l].w}, reg[l].data()));
  }

  // Facts §2.6 in double: anchor (j·s, i·s), no +0.5; d = Σ k·softmax(bins);
  // x1 = px − d_l·s, y1 = py − d_t·s, x2 = px + d_r·s, y2 = py + d_b·s.
  std::array<double, 4> facts_box(size_t l, int64_t i, int64_t j) const {
    const int64_t hw = maps[l].h * maps[l].w, a = i * maps[l].w + j;
    const double s = static_cast<double>(in_h / maps[l].h);
    double d[4];
    for (int side = 0; side < 4; ++side) {
      double m = -1e300, sum = 0, wsum = 0;
      for (int k = 0; k <= R; ++k) m = std::max<double>(m, reg[l][(side * (R + 1) + k) * hw + a]);
      for (int k = 0; k <= R; ++k) {
        const double e = std::exp(reg[l][(side * (R + 1) + k) * hw + a] - m);
        sum += e;
        wsum += k * e;
      }
      d[side] = wsum / sum;
    }
    const double px = j * s, py = i * s;
    return {px - d[0] * s, py - d[1] * s, px + d[2] * s, py + d[3] * s};
  }
};

// Every candidate kept (IoU threshold 1: nothing is suppressed), no cap.
PostprocessOptions keep_all(float conf) {
  PostprocessOptions o;
  o.conf_threshold = conf;
  o.iou_threshold = 1.0;
  o.max_det = 0;
  return o;
}

// Checks `dets` against every (level, anchor, class) with score > conf,
// boxes computed by the facts formula and scaled by `scale`.
void expect_facts_boxes(const RawExport& x, float conf, BoxScale scale, const std::vector<Detection>& dets) {
  std::map<std::pair<int, float>, std::tuple<size_t, int64_t, int64_t>> where;  // (class, score) → anchor
  for (size_t l = 0; l < x.maps.size(); ++l)
    for (int64_t i = 0; i < x.maps[l].h; ++i)
      for (int64_t j = 0; j < x.maps[l].w; ++j)
        for (int c = 0; c < x.C; ++c) {
          const float s = x.cls[l][(c * x.maps[l].h + i) * x.maps[l].w + j];
          if (s > conf) where[{c, s}] = {l, i, j};
        }
  ASSERT_EQ(dets.size(), where.size());
  for (const Detection& d : dets) {
    auto it = where.find({d.class_id, d.score});
    ASSERT_NE(it, where.end()) << "class " << d.class_id << " score " << d.score;
    const auto [l, i, j] = it->second;
    const auto b = x.facts_box(l, i, j);
    const double tol = 2e-4 * static_cast<double>(x.in_h / x.maps[l].h) + 1e-4;
    SCOPED_TRACE("level " + std::to_string(l) + " anchor (" + std::to_string(i) + "," + std::to_string(j) + ")");
    EXPECT_NEAR(d.x1, b[0] * scale.x, tol * scale.x);
    EXPECT_NEAR(d.y1, b[1] * scale.y, tol * scale.y);
    EXPECT_NEAR(d.x2, b[2] * scale.x, tol * scale.x);
    EXPECT_NEAR(d.y2, b[3] * scale.y, tol * scale.y);
  }
}

struct StrideCase {
  int64_t in_h, in_w;
  std::vector<Map> maps;
};

TEST(RawHeadStrides, PostprocessorDecodesStridesFromTheInputSize) {
  const StrideCase cases[] = {
      {64, 64, {{16, 16}, {8, 8}, {4, 4}}},    // strides 4, 8, 16
      {48, 80, {{12, 20}, {6, 10}, {3, 5}}},   // 4, 8, 16, non-square
      {96, 64, {{12, 8}, {6, 4}, {3, 2}}},     // 8, 16, 32, non-square
      {128, 128, {{8, 8}, {4, 4}, {2, 2}}},    // 16, 32, 64
  };
  const float conf = 0.7f;
  const BoxScale scale{1.5f, 0.75f};
  uint32_t seed = 1;
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.in_h) + "x" + std::to_string(c.in_w));
    RawExport x(c.in_h, c.in_w, c.maps, seed++);
    Postprocessor pp(keep_all(conf));
    ASSERT_TRUE(pp.set_input_size(static_cast<int>(c.in_w), static_cast<int>(c.in_h)).ok());
    auto dets = pp.process(x.outputs, scale);
    ASSERT_TRUE(dets.ok()) << dets.status().to_string();
    ASSERT_FALSE(dets->empty());
    expect_facts_boxes(x, conf, scale, *dets);

    // process_raw given the same strides explicitly: the same detections.
    std::vector<RawHeadLevel> levels;
    for (size_t l = 0; l < c.maps.size(); ++l)
      levels.push_back({static_cast<int>(c.in_h / c.maps[l].h), static_cast<int>(c.maps[l].h),
                        static_cast<int>(c.maps[l].w), x.cls[l].data(), x.reg[l].data()});
    std::vector<Detection> raw;
    ASSERT_TRUE(pp.process_raw(levels, x.C, x.R, scale, &raw).ok());
    ASSERT_EQ(raw.size(), dets->size());
    EXPECT_EQ(std::memcmp(raw.data(), dets->data(), raw.size() * sizeof(Detection)), 0);
  }
}

TEST(RawHeadStrides, OldEightSixteenThirtyTwoAssumptionGivesOtherBoxes) {
  // The same 4/8/16 maps read with strides 8/16/32 (what the post-processor
  // assumed before the layout: stride = 8 << level) put every anchor and
  // distance at twice the scale: the facts boxes are not reproduced.
  RawExport x(64, 64, {{16, 16}, {8, 8}, {4, 4}}, 7);
  Postprocessor pp(keep_all(0.7f));
  std::vector<RawHeadLevel> old_levels;
  for (size_t l = 0; l < 3; ++l)
    old_levels.push_back({8 << l, static_cast<int>(x.maps[l].h), static_cast<int>(x.maps[l].w), x.cls[l].data(),
                          x.reg[l].data()});
  std::vector<Detection> old;
  ASSERT_TRUE(pp.process_raw(old_levels, x.C, x.R, {}, &old).ok());
  ASSERT_TRUE(pp.set_input_size(64, 64).ok());
  auto now = pp.process(x.outputs, {});
  ASSERT_TRUE(now.ok());
  ASSERT_EQ(old.size(), now->size());
  size_t differ = 0;
  for (size_t i = 0; i < old.size(); ++i) differ += old[i].x2 != (*now)[i].x2;
  EXPECT_GT(differ, old.size() / 2);
}

TEST(RawHeadStrides, PostprocessorRefusesInconsistentMapsNamingTheOutput) {
  RawExport x(64, 64, {{16, 16}, {8, 8}, {4, 4}}, 3);
  Postprocessor pp;
  ASSERT_TRUE(pp.set_input_size(64, 48).ok());  // 48 / 16 = 3 but 64 / 16 = 4: strides differ in H and W
  auto r = pp.process(x.outputs, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("postprocess: output 0"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("in H but"), std::string::npos) << r.status().message();
  // Back to the right size, the same Postprocessor recognises the layout again.
  ASSERT_TRUE(pp.set_input_size(64, 64).ok());
  EXPECT_TRUE(pp.process(x.outputs, {}).ok());

  EXPECT_EQ(pp.set_input_size(-1, 64).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pp.set_input_size(0, 64).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(pp.set_input_size(0, 0).ok());

  // process_raw: levels that do not describe one input size.
  std::vector<RawHeadLevel> bad = {{4, 16, 16, x.cls[0].data(), x.reg[0].data()},
                                   {16, 8, 8, x.cls[1].data(), x.reg[1].data()}};
  std::vector<Detection> out;
  Status st = pp.process_raw(bad, x.C, x.R, {}, &out);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("level 1"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace damoyolo
