// Quantised ONNX models in the QDQ form ONNX Runtime's quantiser writes
// (docs/engine.md, "Quantised (QDQ) models: what runs today"):
//   * DequantizeLinear of constant int8 weights / int32 biases is folded into
//     float constants at load (the standard constant folding; there is no
//     separate pass), so the Conv lowers to oneDNN with no fallback;
//   * QuantizeLinear / DequantizeLinear on activations (per tensor) are
//     oneDNN reorders, and a DequantizeLinear → Conv → QuantizeLinear chain is
//     one INT8 convolution (tests/engine/int8_conv_test.cc has every kind);
//     Q/DQ the engine cannot take (a quantised graph input or output) are
//     per-node fallback steps on the reference kernels, listed in the plan,
//     while the rest of the model stays on the optimised engine;
//   * both engines agree with the fake-quantised float maths computed here.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "damoyolo/session.h"
#include "testutil/model_builder.h"

namespace damoyolo {
namespace {

using testing::ModelBuilder;

using testing::init_raw;

// The model: x [1,C,H,W] → Conv(pads 1, 3×3) with per-output-channel int8
// weights and an int32 bias, each behind a DequantizeLinear (axis 0), as
// ONNX Runtime's QDQ quantiser writes them. With `qdq_activations` the conv's
// input and output also pass through QuantizeLinear → DequantizeLinear
// (uint8, per tensor), the activation form of the same quantiser.
struct QdqModel {
  static constexpr int64_t C = 2, O = 3, H = 5, W = 5, K = 3;
  float x_scale = 0.05f, y_scale = 0.1f;
  uint8_t x_zp = 128, y_zp = 120;
  std::vector<int8_t> wq;
  std::vector<float> w_scale{0.02f, 0.01f, 0.03f};
  std::vector<int32_t> bq{50, -300, 7};
  std::vector<float> b_scale;  // x_scale × w_scale, as the quantiser sets it

  QdqModel() {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> d(-127, 127);
    for (int64_t i = 0; i < O * C * K * K; ++i) wq.push_back(static_cast<int8_t>(d(rng)));
    for (float s : w_scale) b_scale.push_back(x_scale * s);
  }

  std::string bytes(bool qdq_activations) const {
    ModelBuilder mb(13);
    mb.input("x", {1, C, H, W});
    mb.output("y", {1, O, H, W});
    init_raw<int8_t>(mb, "w_q", onnx::TensorProto::INT8, {O, C, K, K}, wq);
    mb.init_f32("w_scale", {O}, w_scale);
    init_raw<int8_t>(mb, "w_zp", onnx::TensorProto::INT8, {O}, std::vector<int8_t>(O, 0));
    init_raw<int32_t>(mb, "b_q", onnx::TensorProto::INT32, {O}, bq);
    mb.init_f32("b_scale", {O}, b_scale);
    init_raw<int32_t>(mb, "b_zp", onnx::TensorProto::INT32, {O}, std::vector<int32_t>(O, 0));
    ModelBuilder::attr_int(mb.node("DequantizeLinear", {"w_q", "w_scale", "w_zp"}, {"w"}, "w_DequantizeLinear"), "axis",
                           0);
    ModelBuilder::attr_int(mb.node("DequantizeLinear", {"b_q", "b_scale", "b_zp"}, {"b"}, "b_DequantizeLinear"), "axis",
                           0);
    std::string conv_in = "x", conv_out = "y";
    if (qdq_activations) {
      mb.init_f32("x_scale", {}, {x_scale});
      init_raw<uint8_t>(mb, "x_zp", onnx::TensorProto::UINT8, {}, {x_zp});
      mb.init_f32("y_scale", {}, {y_scale});
      init_raw<uint8_t>(mb, "y_zp", onnx::TensorProto::UINT8, {}, {y_zp});
      mb.node("QuantizeLinear", {"x", "x_scale", "x_zp"}, {"x_q"}, "x_QuantizeLinear");
      mb.node("DequantizeLinear", {"x_q", "x_scale", "x_zp"}, {"x_dq"}, "x_DequantizeLinear");
      conv_in = "x_dq";
      conv_out = "conv_out";
    }
    auto& conv = mb.node("Conv", {conv_in, "w", "b"}, {conv_out}, "Conv_0");
    ModelBuilder::attr_ints(conv, "pads", {1, 1, 1, 1});
    ModelBuilder::attr_ints(conv, "kernel_shape", {K, K});
    if (qdq_activations) {
      mb.node("QuantizeLinear", {"conv_out", "y_scale", "y_zp"}, {"y_q"}, "y_QuantizeLinear");
      mb.node("DequantizeLinear", {"y_q", "y_scale", "y_zp"}, {"y"}, "y_DequantizeLinear");
    }
    return mb.bytes();
  }

  // The same maths in plain float: fake-quantise (round half to even,
  // saturate to uint8), dequantise, convolve.
  static float fake_quant(float v, float scale, uint8_t zp) {
    double q = std::nearbyint(static_cast<double>(v / scale)) + zp;
    q = std::min(255.0, std::max(0.0, q));
    return static_cast<float>(q - zp) * scale;
  }
  std::vector<float> expected(const std::vector<float>& x, bool qdq_activations) const {
    std::vector<float> xin = x;
    if (qdq_activations)
      for (float& v : xin) v = fake_quant(v, x_scale, x_zp);
    std::vector<float> y(O * H * W);
    for (int64_t o = 0; o < O; ++o)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          double acc = static_cast<float>(bq[o]) * b_scale[o];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t kh = 0; kh < K; ++kh)
              for (int64_t kw = 0; kw < K; ++kw) {
                const int64_t ih = h + kh - 1, iw = w + kw - 1;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const float wv = static_cast<float>(wq[((o * C + c) * K + kh) * K + kw]) * w_scale[o];
                acc += static_cast<double>(wv) * xin[(c * H + ih) * W + iw];
              }
          y[(o * H + h) * W + w] = static_cast<float>(acc);
        }
    if (qdq_activations)
      for (float& v : y) v = fake_quant(v, y_scale, y_zp);
    return y;
  }
};

std::vector<float> input_values() {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> d(-3.f, 3.f);
  std::vector<float> v(QdqModel::C * QdqModel::H * QdqModel::W);
  for (float& x : v) x = d(rng);
  return v;
}

Session load(const std::string& bytes, Engine engine, bool constant_folding = true) {
  SessionOptions o;
  o.engine = engine;
  o.opt.constant_folding = constant_folding;
  auto s = Session::load_from_memory(bytes.data(), bytes.size(), o);
  if (!s.ok()) throw std::runtime_error(s.status().to_string());
  return std::move(*s);
}

std::vector<float> run(const Session& s, const std::vector<float>& x) {
  Tensor in(DType::kFloat32, {1, QdqModel::C, QdqModel::H, QdqModel::W});
  std::copy(x.begin(), x.end(), in.data<float>());
  auto out = s.run({in});
  if (!out.ok()) throw std::runtime_error(out.status().to_string());
  const Tensor& y = out->at(0);
  return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

bool names(const PlanStep& st, const std::string& node) {
  return std::find(st.nodes.begin(), st.nodes.end(), node) != st.nodes.end();
}

TEST(Qdq, ConstantWeightDequantizeIsFoldedAndTheConvLowersWithoutFallback) {
  const QdqModel m;
  const std::string bytes = m.bytes(false);
  const Session s = load(bytes, Engine::kOptimized);
  const CompiledPlan& p = s.plan();
  EXPECT_EQ(p.engine, Engine::kOptimized);
  EXPECT_EQ(p.fallbacks(), 0) << p.to_text();
  bool conv_on_onednn = false;
  for (const PlanStep& st : p.steps) {
    // The weight and bias DequantizeLinear nodes were folded at load: no step.
    EXPECT_FALSE(names(st, "w_DequantizeLinear") || names(st, "b_DequantizeLinear")) << p.to_text();
    if (st.kind == PlanStep::Kind::kPrimitive && names(st, "Conv_0"))
      conv_on_onednn = st.implementation.rfind("ref", 0) != 0;
  }
  EXPECT_TRUE(conv_on_onednn) << p.to_text();

  const std::vector<float> x = input_values();
  const std::vector<float> want = m.expected(x, false);
  for (Engine e : {Engine::kOptimized, Engine::kReference}) {
    const std::vector<float> got = e == Engine::kOptimized ? run(s, x) : run(load(bytes, e), x);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f) << engine_name(e) << " " << i;
  }
}

TEST(Qdq, WithConstantFoldingOffTheWeightDequantizeRunsAndTheConvFallsBack) {
  // Folding off keeps every computable node (docs/engine.md, "Switches"): the
  // weight DequantizeLinear runs per inference, the Conv's weights are then no
  // constant and the Conv runs on the reference kernel. Same result.
  const QdqModel m;
  const Session s = load(m.bytes(false), Engine::kOptimized, /*constant_folding=*/false);
  const CompiledPlan& p = s.plan();
  EXPECT_TRUE(p.engine_fallback_reason.empty());
  EXPECT_EQ(p.count_op("DequantizeLinear"), 2) << p.to_text();
  const std::vector<float> x = input_values();
  const std::vector<float> want = m.expected(x, false);
  const std::vector<float> got = run(s, x);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f) << i;
}

TEST(Qdq, ActivationQdqBecomesOneInt8ConvAndBothEnginesMatchTheFakeQuantisedMaths) {
  const QdqModel m;
  const std::string bytes = m.bytes(true);
  const Session opt = load(bytes, Engine::kOptimized);
  const Session aut = load(bytes, Engine::kAuto);
  const Session ref = load(bytes, Engine::kReference);

  // The plan: the input's QuantizeLinear and the output's DequantizeLinear
  // are oneDNN reorders (the precision boundaries); the DequantizeLinear →
  // Conv → QuantizeLinear between them is one INT8 convolution
  // (graph/passes/fuse_qdq_conv.cc), uint8 in and out; nothing falls back,
  // and the model stays on the optimised engine (kAuto too).
  for (const Session* s : {&opt, &aut}) {
    const CompiledPlan& p = s->plan();
    EXPECT_EQ(p.engine, Engine::kOptimized) << p.engine_fallback_reason;
    EXPECT_TRUE(p.engine_fallback_reason.empty()) << p.engine_fallback_reason;
    EXPECT_EQ(p.fallbacks(), 0) << p.to_text();
    int convs = 0;
    for (const PlanStep& st : p.steps) {
      if (st.op == "QuantizeLinear" || st.op == "DequantizeLinear") {
        EXPECT_EQ(st.kind, PlanStep::Kind::kReorder) << st.op;
      }
      if (st.kind == PlanStep::Kind::kPrimitive && names(st, "Conv_0")) {
        ++convs;
        EXPECT_NE(st.implementation.rfind("ref", 0), 0u) << st.implementation;
        EXPECT_TRUE(names(st, "x_DequantizeLinear") && names(st, "y_QuantizeLinear")) << p.to_text();
        EXPECT_EQ(st.src.rfind("u8 ", 0), 0u) << st.src;
        EXPECT_EQ(st.dst.rfind("u8 ", 0), 0u) << st.dst;
      }
    }
    EXPECT_EQ(convs, 1) << p.to_text();
    EXPECT_EQ(p.count_op("QuantizeLinear"), 1) << p.to_text();
    EXPECT_EQ(p.count_op("DequantizeLinear"), 1) << p.to_text();
  }

  // Both engines: the fake-quantised maths, to one output quantisation step
  // (a conv sum summed in another order may land on the other side of a
  // rounding boundary); the optimised and reference engines likewise.
  const std::vector<float> x = input_values();
  const std::vector<float> want = m.expected(x, true);
  const std::vector<float> got_opt = run(opt, x), got_ref = run(ref, x);
  int off_by_a_step = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got_ref[i], want[i], m.y_scale * 1.001f) << "reference " << i;
    ASSERT_NEAR(got_opt[i], want[i], m.y_scale * 1.001f) << "optimised " << i;
    ASSERT_NEAR(got_opt[i], got_ref[i], m.y_scale * 1.001f) << i;
    off_by_a_step += got_opt[i] != want[i];
  }
  // Almost every value is exact: the outputs are on the quantisation grid.
  EXPECT_LE(off_by_a_step, 2) << "of " << want.size();
  for (float v : got_opt) {
    const float steps = v / m.y_scale;
    EXPECT_NEAR(steps, std::nearbyint(steps), 1e-3f) << v;
  }
}

TEST(Qdq, QuantisedGraphInputsAndOutputsRunOnTheOptimisedEngine) {
  // A uint8 input dequantised, and a float quantised to a uint8 output: the
  // optimised engine hands the caller the quantised type (the ONNX node
  // tests for Q/DQ run this way too).
  ModelBuilder mb(13);
  mb.input("q", {1, 4}, onnx::TensorProto::UINT8);
  mb.output("y", {1, 4}, onnx::TensorProto::INT8);
  mb.init_f32("s", {}, {0.5f});
  init_raw<uint8_t>(mb, "zp", onnx::TensorProto::UINT8, {}, {10});
  init_raw<int8_t>(mb, "zp8", onnx::TensorProto::INT8, {}, {-3});
  mb.node("DequantizeLinear", {"q", "s", "zp"}, {"f"});
  mb.node("Relu", {"f"}, {"r"});
  mb.node("QuantizeLinear", {"r", "s", "zp8"}, {"y"});
  const std::string bytes = mb.bytes();
  const Session s = load(bytes, Engine::kOptimized);
  ASSERT_EQ(s.inputs().at(0).dtype, DType::kUInt8);
  ASSERT_EQ(s.outputs().at(0).dtype, DType::kInt8);
  EXPECT_EQ(s.plan().fallbacks(), 2) << s.plan().to_text();
  Tensor in(DType::kUInt8, {1, 4});
  const uint8_t q[4] = {0, 10, 11, 255};
  std::copy(q, q + 4, in.data<uint8_t>());
  auto out = s.run({in});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  // (q − 10)·0.5 → relu → /0.5 → −3: 0 → −3; 0 → −3; 0.5 → 1 → −2; 122.5 → 245 − 3 → 127 (saturated).
  const Tensor& y = out->at(0);
  ASSERT_EQ(y.dtype(), DType::kInt8);
  EXPECT_EQ(std::vector<int8_t>(y.data<int8_t>(), y.data<int8_t>() + 4), (std::vector<int8_t>{-3, -3, -2, 127}));
}

}  // namespace
}  // namespace damoyolo
