// INT8 convolutions (graph/passes/fuse_qdq_conv.cc, kernels/dnnl/lower_conv.cc,
// lower_quant.cc): a QDQ model's Q → DQ → Conv chain → Q runs as one oneDNN
// INT8 convolution, checked against the reference engine (which runs the
// file's nodes one by one: the QDQ semantics) on single convolutions of every
// kind DAMO-YOLO has, and the plan checked to show it happened.
//
// Tolerance: one quantisation step of the output. oneDNN multiplies where
// ONNX divides and sums in another order, so a value within an ulp of a
// rounding boundary may round the other way; nearly all values are exact
// (counted below).
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

// One quantised convolution as ONNX Runtime's and damoyolo's quantisers
// write it:
//   x → Q → DQ → Conv(DQ(int8 W, per channel), DQ(int32 B)) [→ SiLU] [→ + r] → Q → DQ → y
// where r (residual) is x itself (same shape: only with C == O, stride 1).
struct Case {
  std::string name;
  int64_t C = 8, O = 16, H = 12, W = 12, K = 3, stride = 1, group = 1;
  bool silu = true;
  bool residual = false;
  uint8_t x_zp = 120, y_zp = 30;  // 0: symmetric uint8 (no zero point passed to oneDNN)
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

struct Built {
  std::string bytes;
  float y_scale = 0;
  int64_t OH = 0, OW = 0;
};

Built build(const Case& c) {
  std::mt19937 rng(3);
  const int64_t ipg = c.C / c.group;
  const int64_t pad = c.K / 2;
  Built b;
  b.OH = (c.H + 2 * pad - c.K) / c.stride + 1;
  b.OW = (c.W + 2 * pad - c.K) / c.stride + 1;
  const float x_scale = 6.f / 255.f;
  b.y_scale = c.silu ? 0.05f : 0.08f;
  std::uniform_int_distribution<int> wd(-127, 127), bd(-2000, 2000);
  std::uniform_real_distribution<float> sd(0.002f, 0.01f);
  std::vector<int8_t> wq(static_cast<size_t>(c.O * ipg * c.K * c.K));
  for (auto& v : wq) v = static_cast<int8_t>(wd(rng));
  std::vector<float> ws(static_cast<size_t>(c.O)), bs(static_cast<size_t>(c.O));
  std::vector<int32_t> bq(static_cast<size_t>(c.O));
  for (int64_t o = 0; o < c.O; ++o) {
    ws[o] = sd(rng);
    bs[o] = x_scale * ws[o];
    bq[o] = bd(rng);
  }
  ModelBuilder mb(13);
  mb.input("x", {1, c.C, c.H, c.W});
  mb.output("y", {1, c.O, b.OH, b.OW});
  init_raw<int8_t>(mb, "w_q", onnx::TensorProto::INT8, {c.O, ipg, c.K, c.K}, wq);
  mb.init_f32("w_scale", {c.O}, ws);
  init_raw<int8_t>(mb, "w_zp", onnx::TensorProto::INT8, {c.O}, std::vector<int8_t>(c.O, 0));
  init_raw<int32_t>(mb, "b_q", onnx::TensorProto::INT32, {c.O}, bq);
  mb.init_f32("b_scale", {c.O}, bs);
  init_raw<int32_t>(mb, "b_zp", onnx::TensorProto::INT32, {c.O}, std::vector<int32_t>(c.O, 0));
  ModelBuilder::attr_int(mb.node("DequantizeLinear", {"w_q", "w_scale", "w_zp"}, {"w"}, "w_DQ"), "axis", 0);
  ModelBuilder::attr_int(mb.node("DequantizeLinear", {"b_q", "b_scale", "b_zp"}, {"b"}, "b_DQ"), "axis", 0);
  mb.init_f32("x_scale", {}, {x_scale});
  init_raw<uint8_t>(mb, "x_zp", onnx::TensorProto::UINT8, {}, {c.x_zp});
  mb.init_f32("y_scale", {}, {b.y_scale});
  init_raw<uint8_t>(mb, "y_zp", onnx::TensorProto::UINT8, {}, {c.y_zp});
  mb.node("QuantizeLinear", {"x", "x_scale", "x_zp"}, {"x_q"}, "x_Q");
  mb.node("DequantizeLinear", {"x_q", "x_scale", "x_zp"}, {"x_dq"}, "x_DQ");
  auto& conv = mb.node("Conv", {"x_dq", "w", "b"}, {"conv"}, "Conv_0");
  ModelBuilder::attr_ints(conv, "pads", {pad, pad, pad, pad});
  ModelBuilder::attr_ints(conv, "kernel_shape", {c.K, c.K});
  ModelBuilder::attr_ints(conv, "strides", {c.stride, c.stride});
  if (c.group != 1) ModelBuilder::attr_int(conv, "group", c.group);
  std::string cur = "conv";
  if (c.silu) {
    mb.node("Sigmoid", {cur}, {"sig"}, "Sigmoid_0");
    mb.node("Mul", {cur, "sig"}, {"silu"}, "Mul_0");
    cur = "silu";
  }
  if (c.residual) {
    mb.node("Add", {cur, "x"}, {"sum"}, "Add_0");
    cur = "sum";
  }
  mb.node("QuantizeLinear", {cur, "y_scale", "y_zp"}, {"y_q"}, "y_Q");
  mb.node("DequantizeLinear", {"y_q", "y_scale", "y_zp"}, {"y"}, "y_DQ");
  b.bytes = mb.bytes();
  return b;
}

Session load(const std::string& bytes, Engine engine, bool int8 = true) {
  SessionOptions o;
  o.engine = engine;
  o.threads = 2;
  o.opt.int8_convolution = int8;
  auto s = Session::load_from_memory(bytes.data(), bytes.size(), o);
  if (!s.ok()) throw std::runtime_error(s.status().to_string());
  return std::move(*s);
}

std::vector<float> run(const Session& s, const Case& c, const Built& b) {
  std::mt19937 rng(11);
  // Inside and beyond the input's quantisation range (saturation included).
  std::uniform_real_distribution<float> d(-1.f, 6.5f);
  Tensor in(DType::kFloat32, {1, c.C, c.H, c.W});
  for (int64_t i = 0; i < in.numel(); ++i) in.data<float>()[i] = d(rng);
  auto out = s.run({in});
  if (!out.ok()) throw std::runtime_error(out.status().to_string());
  const Tensor& y = out->at(0);
  EXPECT_EQ(y.numel(), c.O * b.OH * b.OW);
  return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

class Int8Conv : public ::testing::TestWithParam<Case> {};

TEST_P(Int8Conv, OneOneDnnInt8ConvolutionMatchesTheQdqReference) {
  const Case c = GetParam();
  const Built b = build(c);
  const Session opt = load(b.bytes, Engine::kOptimized);
  const Session ref = load(b.bytes, Engine::kReference);

  // The plan: no fallback; exactly one convolution, on oneDNN's INT8 kernels,
  // reading uint8; its output uint8 unless a residual sum is in float.
  const CompiledPlan& p = opt.plan();
  EXPECT_EQ(p.fallbacks(), 0) << p.to_text();
  EXPECT_EQ(p.rewrites("fuse_qdq_conv"), 1) << p.to_text();
  int convs = 0;
  for (const PlanStep& st : p.steps) {
    if (st.op != "Conv") continue;
    ++convs;
    EXPECT_EQ(st.kind, PlanStep::Kind::kPrimitive);
    EXPECT_NE(st.implementation.rfind("ref", 0), 0u) << st.implementation;
    EXPECT_EQ(st.src.rfind("u8 ", 0), 0u) << st.src;
    EXPECT_EQ(st.dst.rfind(c.residual ? "f32 " : "u8 ", 0), 0u) << st.dst;
    EXPECT_EQ(st.post_ops.front(), c.x_zp ? "int8 (u8 source, zero point)" : "int8");
    const bool requant = std::find(st.post_ops.begin(), st.post_ops.end(), "requantize") != st.post_ops.end();
    EXPECT_EQ(requant, !c.residual) << p.to_text();
  }
  EXPECT_EQ(convs, 1) << p.to_text();
  // The precision boundaries are the model's edges: its input quantised,
  // its output dequantised (and, with a residual, the float sum quantised).
  EXPECT_EQ(p.count_op("QuantizeLinear"), c.residual ? 2 : 1) << p.to_text();
  EXPECT_EQ(p.count_op("DequantizeLinear"), 1) << p.to_text();

  const std::vector<float> got = run(opt, c, b), want = run(ref, c, b);
  int off = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], b.y_scale * 1.001f) << i;
    off += got[i] != want[i];
  }
  EXPECT_LE(off, static_cast<int>(want.size() / 50)) << "of " << want.size();

  // With the switch off, the same model runs in float between the same
  // rounding points (Q/DQ as reorders), and agrees as closely.
  const Session flt = load(b.bytes, Engine::kOptimized, /*int8=*/false);
  EXPECT_EQ(flt.plan().rewrites("fuse_qdq_conv"), 0);
  EXPECT_EQ(flt.plan().fallbacks(), 0) << flt.plan().to_text();
  const std::vector<float> fgot = run(flt, c, b);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(fgot[i], want[i], b.y_scale * 1.001f) << i;
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, Int8Conv,
    ::testing::Values(Case{"conv3x3_silu"}, Case{"conv3x3_plain", 8, 16, 12, 12, 3, 1, 1, false},
                      Case{"conv1x1_silu", 16, 32, 10, 10, 1},
                      Case{"conv3x3_stride2_silu", 8, 16, 13, 13, 3, 2},
                      Case{"depthwise5x5_silu", 16, 16, 12, 12, 5, 1, 16},
                      Case{"depthwise3x3_stride2", 16, 16, 12, 12, 3, 2, 16, false},
                      Case{"residual_1x1", 16, 16, 8, 8, 1, 1, 1, false, true},
                      Case{"residual_silu", 16, 16, 8, 8, 3, 1, 1, true, true},
                      Case{"symmetric_uint8", 8, 16, 12, 12, 3, 1, 1, true, false, 0, 0}),
    [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// Values the caller sees are never swallowed: a DequantizeLinear output that
// is also a graph output keeps its node, and a QuantizeLinear whose uint8
// output is a graph output stays (only a fallback step writes the caller's
// integer tensor), while the conv still runs INT8 between them.
TEST(Int8Conv, GraphOutputsAroundTheConvAreKept) {
  const Case c{"outputs", 8, 16, 6, 6, 3, 1, 1, false};
  Built b = build(c);
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(b.bytes));
  auto* g = m.mutable_graph();
  auto add_output = [&](const std::string& name, int elem, std::vector<int64_t> dims) {
    auto* o = g->add_output();
    o->set_name(name);
    auto* t = o->mutable_type()->mutable_tensor_type();
    t->set_elem_type(elem);
    for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  };
  add_output("x_dq", onnx::TensorProto::FLOAT, {1, c.C, c.H, c.W});
  add_output("y_q", onnx::TensorProto::UINT8, {1, c.O, b.OH, b.OW});
  std::string bytes;
  m.SerializeToString(&bytes);
  const Session opt = load(bytes, Engine::kOptimized);
  const Session ref = load(bytes, Engine::kReference);
  ASSERT_EQ(opt.outputs().size(), 3u);
  EXPECT_EQ(opt.plan().rewrites("fuse_qdq_conv"), 1) << opt.plan().to_text();
  Tensor in(DType::kFloat32, {1, c.C, c.H, c.W});
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> d(-1.f, 6.f);
  for (int64_t i = 0; i < in.numel(); ++i) in.data<float>()[i] = d(rng);
  auto go = opt.run({in});
  auto gr = ref.run({in});
  ASSERT_TRUE(go.ok()) << go.status().to_string();
  ASSERT_TRUE(gr.ok());
  // The dequantised input, exactly; the quantised output within one step.
  const Tensor &ax = go->at(1), &bx = gr->at(1);
  ASSERT_EQ(ax.numel(), bx.numel());
  for (int64_t i = 0; i < ax.numel(); ++i) ASSERT_EQ(ax.data<float>()[i], bx.data<float>()[i]) << i;
  const Tensor &aq = go->at(2), &bq = gr->at(2);
  ASSERT_EQ(aq.dtype(), DType::kUInt8);
  for (int64_t i = 0; i < aq.numel(); ++i) ASSERT_LE(std::abs(aq.data<uint8_t>()[i] - bq.data<uint8_t>()[i]), 1) << i;
}

// Q(Concat(conv_a, conv_b)) → Concat(Q(conv_a), Q(conv_b)): exact (per-tensor
// quantisation is elementwise); then each conv absorbs its part's Q, and the
// concatenation copies uint8. A part that is also read in float (here x, the
// graph input, which the second conv's branch also reads) keeps its own Q.
TEST(Int8Concat, AQuantisedConcatOfInt8ConvsMovesUint8AndMatchesTheReference) {
  const int64_t C = 8, O = 8, H = 10, W = 10;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> wd(-127, 127);
  const float xs = 6.f / 255.f, cs = 0.05f;
  ModelBuilder mb(13);
  mb.input("x", {1, C, H, W});
  mb.output("y", {1, 2 * O + C, H, W});
  mb.init_f32("xs", {}, {xs});
  init_raw<uint8_t>(mb, "xz", onnx::TensorProto::UINT8, {}, {100});
  mb.init_f32("cs", {}, {cs});
  init_raw<uint8_t>(mb, "cz", onnx::TensorProto::UINT8, {}, {20});
  mb.node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"}, "x_Q");
  mb.node("DequantizeLinear", {"xq", "xs", "xz"}, {"xd"}, "x_DQ");
  for (const char* branch : {"a", "b"}) {
    const std::string b = branch;
    std::vector<int8_t> wq(static_cast<size_t>(O * C));
    for (auto& v : wq) v = static_cast<int8_t>(wd(rng));
    init_raw<int8_t>(mb, b + "_wq", onnx::TensorProto::INT8, {O, C, 1, 1}, wq);
    mb.init_f32(b + "_ws", {O}, std::vector<float>(O, 0.004f));
    init_raw<int8_t>(mb, b + "_wz", onnx::TensorProto::INT8, {O}, std::vector<int8_t>(O, 0));
    ModelBuilder::attr_int(mb.node("DequantizeLinear", {b + "_wq", b + "_ws", b + "_wz"}, {b + "_w"}, b + "_wDQ"),
                           "axis", 0);
    mb.node("Conv", {"xd", b + "_w"}, {b + "_c"}, b + "_Conv");
    mb.node("Sigmoid", {b + "_c"}, {b + "_s"}, b + "_Sigmoid");
    mb.node("Mul", {b + "_c", b + "_s"}, {b + "_y"}, b + "_Mul");
  }
  ModelBuilder::attr_int(mb.node("Concat", {"a_y", "b_y", "x"}, {"cat"}, "Concat_0"), "axis", 1);
  mb.node("QuantizeLinear", {"cat", "cs", "cz"}, {"catq"}, "cat_Q");
  mb.node("DequantizeLinear", {"catq", "cs", "cz"}, {"y"}, "cat_DQ");
  const std::string bytes = mb.bytes();

  const Session opt = load(bytes, Engine::kOptimized);
  const Session ref = load(bytes, Engine::kReference);
  const CompiledPlan& p = opt.plan();
  EXPECT_EQ(p.fallbacks(), 0) << p.to_text();
  int u8_convs = 0;
  for (const PlanStep& st : p.steps) {
    if (st.op == "Conv") u8_convs += st.dst.rfind("u8 ", 0) == 0;
    if (st.op == "Concat") {
      EXPECT_EQ(st.src.rfind("u8 ", 0), 0u) << p.to_text();
      EXPECT_EQ(st.dst.rfind("u8 ", 0), 0u) << p.to_text();
    }
  }
  EXPECT_EQ(u8_convs, 2) << p.to_text();  // both absorbed their part's QuantizeLinear
  // x's part (a graph input) is quantised by a reorder, as is x for the convs.
  EXPECT_EQ(p.count_op("QuantizeLinear"), 2) << p.to_text();

  std::uniform_real_distribution<float> d(-1.f, 6.5f);
  Tensor in(DType::kFloat32, {1, C, H, W});
  for (int64_t i = 0; i < in.numel(); ++i) in.data<float>()[i] = d(rng);
  auto go = opt.run({in});
  auto gr = ref.run({in});
  ASSERT_TRUE(go.ok() && gr.ok());
  const Tensor &a = go->at(0), &b = gr->at(0);
  ASSERT_EQ(a.numel(), b.numel());
  int off = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    ASSERT_NEAR(a.data<float>()[i], b.data<float>()[i], cs * 1.001f) << i;
    off += a.data<float>()[i] != b.data<float>()[i];
  }
  EXPECT_LE(off, static_cast<int>(a.numel() / 50));
}

}  // namespace
}  // namespace damoyolo
