// QuantizeLinear / DequantizeLinear reference kernels (ai.onnx 10 and 13):
// the spec's rounding (half to even) and saturation, per-axis scales
// (negative axis too), uint8/int8/int32, and the malformed nodes a hostile
// model can carry — each a kInvalidArgument naming the node, from the kernel
// at run time and from the schema at load time when the scale is a constant.
// The ONNX node tests (tests/conformance) cover the spec's own examples.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>

#include "kernels/reference/registry.h"

namespace damoyolo::kernels::ref {
namespace {

template <class T>
Tensor make(DType dt, Shape shape, std::vector<T> v) {
  Tensor t(dt, std::move(shape));
  EXPECT_EQ(static_cast<size_t>(t.numel()), v.size());
  std::copy(v.begin(), v.end(), t.data<T>());
  return t;
}
Tensor f32(Shape s, std::vector<float> v) { return make<float>(DType::kFloat32, std::move(s), std::move(v)); }
Tensor u8(Shape s, std::vector<uint8_t> v) { return make<uint8_t>(DType::kUInt8, std::move(s), std::move(v)); }
Tensor s8(Shape s, std::vector<int8_t> v) { return make<int8_t>(DType::kInt8, std::move(s), std::move(v)); }
Tensor s32(Shape s, std::vector<int32_t> v) { return make<int32_t>(DType::kInt32, std::move(s), std::move(v)); }

Node qdq_node(const std::string& op, std::optional<int64_t> axis = std::nullopt) {
  Node n;
  n.name = op + "_under_test";
  n.op_type = op;
  n.outputs = {"y"};
  if (axis) {
    graph::Attribute a;
    a.kind = graph::Attribute::Kind::kInt;
    a.i = *axis;
    n.attrs["axis"] = a;
  }
  return n;
}

std::vector<Tensor> run(Node node, const std::vector<Tensor>& inputs, int64_t opset = 13) {
  node.inputs.clear();
  // Input names x0, x1, ... ("" for an omitted one); appended rather than
  // `"x" + to_string(i)`, which trips GCC 12's false -Wrestrict.
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::string name;
    if (inputs[i].defined()) name.append("x").append(std::to_string(i));
    node.inputs.push_back(name);
  }
  OpContext ctx{node, opset};
  return kernel_for(node, opset).compute(ctx, inputs);
}

template <class T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

// The error and message a call throws (kOk when none).
template <class F>
ErrorCode error_of(F&& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return ErrorCode::kOk;
}

// ---- QuantizeLinear ----------------------------------------------------------

TEST(QuantizeLinear, RoundsHalfToEven) {
  // x / 1: ties go to the even integer, both signs (not away from zero).
  Tensor y = run(qdq_node("QuantizeLinear"),
                 {f32({8}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4999f, 2.5001f}), f32({}, {1.f}), s8({}, {0})})[0];
  EXPECT_EQ(y.dtype(), DType::kInt8);
  EXPECT_EQ(values<int8_t>(y), (std::vector<int8_t>{0, 2, 2, 0, -2, -2, 2, 3}));
  // The tie is decided before the zero point is added: 2.5 → 2, then + 1.
  Tensor z = run(qdq_node("QuantizeLinear"), {f32({2}, {5.f, 7.f}), f32({}, {2.f}), u8({}, {1})})[0];
  EXPECT_EQ(values<uint8_t>(z), (std::vector<uint8_t>{3, 5}));
}

TEST(QuantizeLinear, SaturatesToTheOutputType) {
  Tensor x = f32({5}, {1000.f, -1000.f, 127.6f, -128.6f, std::numeric_limits<float>::infinity()});
  EXPECT_EQ(values<int8_t>(run(qdq_node("QuantizeLinear"), {x, f32({}, {1.f}), s8({}, {0})})[0]),
            (std::vector<int8_t>{127, -128, 127, -128, 127}));
  EXPECT_EQ(values<uint8_t>(run(qdq_node("QuantizeLinear"), {x, f32({}, {1.f}), u8({}, {10})})[0]),
            (std::vector<uint8_t>{255, 0, 138, 0, 255}));
}

TEST(QuantizeLinear, NoZeroPointMeansUint8WithZero) {
  Tensor y = run(qdq_node("QuantizeLinear"), {f32({3}, {-3.f, 3.f, 600.f}), f32({}, {2.f})})[0];
  EXPECT_EQ(y.dtype(), DType::kUInt8);
  EXPECT_EQ(values<uint8_t>(y), (std::vector<uint8_t>{0, 2, 255}));  // -1.5 → -2 → 0; 1.5 → 2
}

TEST(QuantizeLinear, NanQuantisesToTheZeroPoint) {
  Tensor y = run(qdq_node("QuantizeLinear"),
                 {f32({1}, {std::numeric_limits<float>::quiet_NaN()}), f32({}, {1.f}), u8({}, {77})})[0];
  EXPECT_EQ(values<uint8_t>(y), (std::vector<uint8_t>{77}));
}

TEST(QuantizeLinear, Int32InputQuantisesLikeAFloat) {
  // The spec allows an int32 x; 5 / 2 is a tie (→ 2), the rest saturates.
  Tensor y = run(qdq_node("QuantizeLinear"), {s32({3}, {5, 16777217, -254}), f32({}, {2.f}), s8({}, {0})})[0];
  EXPECT_EQ(values<int8_t>(y), (std::vector<int8_t>{2, 127, -127}));
}

TEST(QuantizeLinear, PerAxisWithNegativeAxis) {
  // x [2,3]: axis -1 is axis 1, so column c uses scale[c] and zero_point[c].
  Tensor x = f32({2, 3}, {1.f, 2.f, 3.f, -1.f, -2.f, -3.f});
  Tensor scale = f32({3}, {1.f, 2.f, 0.5f});
  Tensor zp = s8({3}, {0, 10, -10});
  Tensor y = run(qdq_node("QuantizeLinear", -1), {x, scale, zp})[0];
  EXPECT_EQ(values<int8_t>(y), (std::vector<int8_t>{1, 11, -4, -1, 9, -16}));
  // The same along axis 0 of the transpose: row r uses scale[r].
  Tensor xt = f32({3, 2}, {1.f, -1.f, 2.f, -2.f, 3.f, -3.f});
  Tensor yt = run(qdq_node("QuantizeLinear", 0), {xt, scale, zp})[0];
  EXPECT_EQ(values<int8_t>(yt), (std::vector<int8_t>{1, -1, 11, 9, -4, -16}));
}

TEST(QuantizeLinear, DefaultAxisIsOneForNchw) {
  // The usual per-channel activation form: x [1,2,1,2], scale per channel.
  Tensor x = f32({1, 2, 1, 2}, {4.f, 8.f, 4.f, 8.f});
  Tensor y = run(qdq_node("QuantizeLinear"), {x, f32({2}, {4.f, 2.f}), u8({2}, {0, 100})})[0];
  EXPECT_EQ(values<uint8_t>(y), (std::vector<uint8_t>{1, 2, 102, 104}));
}

TEST(QuantizeLinear, OneElementScaleIsPerTensorWhateverTheAxis) {
  // A 1-D scale of one entry on a tensor whose axis 1 has 3: per-tensor,
  // as ONNX Runtime reads it.
  Tensor y = run(qdq_node("QuantizeLinear"), {f32({1, 3}, {2.f, 4.f, 6.f}), f32({1}, {2.f}), u8({1}, {1})})[0];
  EXPECT_EQ(values<uint8_t>(y), (std::vector<uint8_t>{2, 3, 4}));
}

// ---- DequantizeLinear --------------------------------------------------------

TEST(DequantizeLinear, Uint8AndInt8) {
  Tensor yu = run(qdq_node("DequantizeLinear"), {u8({3}, {0, 128, 255}), f32({}, {0.5f}), u8({}, {128})})[0];
  EXPECT_EQ(yu.dtype(), DType::kFloat32);
  EXPECT_EQ(values<float>(yu), (std::vector<float>{-64.f, 0.f, 63.5f}));
  Tensor ys = run(qdq_node("DequantizeLinear"), {s8({3}, {-128, 0, 127}), f32({}, {0.5f}), s8({}, {-1})})[0];
  EXPECT_EQ(values<float>(ys), (std::vector<float>{-63.5f, 0.5f, 64.f}));
  // No zero point: 0.
  Tensor yn = run(qdq_node("DequantizeLinear"), {s8({2}, {-128, 127}), f32({}, {2.f})})[0];
  EXPECT_EQ(values<float>(yn), (std::vector<float>{-256.f, 254.f}));
}

TEST(DequantizeLinear, Int32BiasForm) {
  // A QDQ bias: int32 with scale = input scale × weight scale, no zero point.
  Tensor y = run(qdq_node("DequantizeLinear"), {s32({3}, {-1000000, 0, 2147483647}), f32({}, {0.25f})})[0];
  EXPECT_EQ(values<float>(y), (std::vector<float>{-250000.f, 0.f, 2147483647.f * 0.25f}));
  // An all-zero int32 zero point is allowed; any other is not.
  EXPECT_EQ(values<float>(run(qdq_node("DequantizeLinear"), {s32({1}, {8}), f32({}, {0.5f}), s32({}, {0})})[0]),
            (std::vector<float>{4.f}));
  std::string msg;
  EXPECT_EQ(error_of([&] { run(qdq_node("DequantizeLinear"), {s32({1}, {8}), f32({}, {0.5f}), s32({}, {3})}); }, &msg),
            ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("DequantizeLinear_under_test"), std::string::npos) << msg;
}

TEST(DequantizeLinear, PerAxisWithNegativeAxis) {
  // Per-output-channel weights [O=2, I=1, 1, 2]: axis -4 is axis 0.
  Tensor w = s8({2, 1, 1, 2}, {-2, 4, -2, 4});
  Tensor y = run(qdq_node("DequantizeLinear", -4), {w, f32({2}, {0.5f, 0.25f}), s8({2}, {0, 0})})[0];
  EXPECT_EQ(values<float>(y), (std::vector<float>{-1.f, 2.f, -0.5f, 1.f}));
}

TEST(DequantizeLinear, ZeroScaleIsAllowedAndGivesZero) {
  Tensor y = run(qdq_node("DequantizeLinear"), {s8({2}, {-5, 5}), f32({}, {0.f})})[0];
  EXPECT_EQ(values<float>(y), (std::vector<float>{-0.f, 0.f}));
}

TEST(QuantizeDequantize, RoundTripIsWithinHalfAStep) {
  Tensor x = f32({6}, {-1.f, -0.33f, 0.f, 0.1f, 0.77f, 1.f});
  Tensor scale = f32({}, {2.f / 255.f});
  Tensor q = run(qdq_node("QuantizeLinear"), {x, scale, u8({}, {128})})[0];
  Tensor back = run(qdq_node("DequantizeLinear"), {q, scale, u8({}, {128})})[0];
  for (int i = 0; i < 6; ++i) EXPECT_LE(std::fabs(back.data<float>()[i] - x.data<float>()[i]), 1.f / 255.f + 1e-6f);
}

// ---- malformed nodes ----------------------------------------------------------

struct Bad {
  Bad(const char* w, std::string o, std::vector<Tensor> in, std::optional<int64_t> a = std::nullopt, int64_t os = 13)
      : what(w), op(std::move(o)), inputs(std::move(in)), axis(a), opset(os) {}
  const char* what;
  std::string op;
  std::vector<Tensor> inputs;
  std::optional<int64_t> axis;
  int64_t opset;
};

TEST(QdqHostile, MalformedNodesAreInvalidArgumentsNamingTheNode) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor x = f32({1, 3}, {1.f, 2.f, 3.f});
  const Tensor q = u8({1, 3}, {1, 2, 3});
  const std::vector<Bad> cases = {
      {"zero scale", "QuantizeLinear", {x, f32({}, {0.f}), u8({}, {0})}},
      {"inf scale", "QuantizeLinear", {x, f32({}, {inf}), u8({}, {0})}},
      {"nan scale", "QuantizeLinear", {x, f32({}, {nan}), u8({}, {0})}},
      {"one zero entry in a per-axis scale", "QuantizeLinear", {x, f32({3}, {1.f, 0.f, 1.f}), u8({3}, {0, 0, 0})}},
      {"dequantize inf scale", "DequantizeLinear", {q, f32({}, {inf}), u8({}, {0})}},
      {"dequantize nan scale", "DequantizeLinear", {q, f32({}, {nan})}},
      {"scale length differs from x along axis", "QuantizeLinear", {x, f32({2}, {1.f, 1.f}), u8({2}, {0, 0})}},
      {"zero point shape differs from scale", "QuantizeLinear", {x, f32({3}, {1.f, 1.f, 1.f}), u8({}, {0})}},
      {"zero point shape differs from scale (dq)", "DequantizeLinear", {q, f32({}, {1.f}), u8({3}, {0, 0, 0})}},
      {"2-D scale", "QuantizeLinear", {x, f32({1, 3}, {1.f, 1.f, 1.f}), u8({1, 3}, {0, 0, 0})}},
      {"empty scale", "QuantizeLinear", {x, f32({0}, {}), u8({0}, {})}},
      {"axis out of range", "QuantizeLinear", {x, f32({3}, {1.f, 1.f, 1.f}), u8({3}, {0, 0, 0})}, 2},
      {"dequantize zero point of another type", "DequantizeLinear", {q, f32({}, {1.f}), s8({}, {0})}},
      {"quantize zero point of int32", "QuantizeLinear", {x, f32({}, {1.f}), s32({}, {0})}},
      {"dequantize a float", "DequantizeLinear", {x, f32({}, {1.f})}},
      {"quantize a uint8", "QuantizeLinear", {q, f32({}, {1.f})}},
      {"int32 scale", "DequantizeLinear", {q, s32({}, {1})}},
      {"missing scale", "DequantizeLinear", {q, Tensor{}}},
  };
  for (const Bad& c : cases) {
    std::string msg;
    ErrorCode code = error_of([&] { run(qdq_node(c.op, c.axis), c.inputs, c.opset); }, &msg);
    EXPECT_EQ(code, ErrorCode::kInvalidArgument) << c.what << ": " << msg;
    EXPECT_NE(msg.find(qdq_node(c.op).name), std::string::npos) << c.what << ": " << msg;
  }
}

// ONNX Runtime's quantiser writes per-channel DequantizeLinear into opset-11
// models (quantize_static, per_channel=True, the model's opset unchanged) and
// ONNX Runtime runs them; read with opset 13's meaning.
TEST(Qdq, PerAxisScalesBeforeOpset13AreReadAsOpset13Does) {
  const std::vector<Tensor> y =
      run(qdq_node("DequantizeLinear", 1), {u8({1, 3}, {10, 20, 30}), f32({3}, {1.f, 0.5f, 2.f}), u8({3}, {0, 10, 40})}, 11);
  ASSERT_EQ(y.size(), 1u);
  EXPECT_EQ(std::vector<float>(y[0].data<float>(), y[0].data<float>() + 3), (std::vector<float>{10.f, 5.f, -20.f}));
}

TEST(QdqHostile, ConstantBadScaleIsRefusedByTheSchemaAtLoadTime) {
  // Shape inference sees a constant scale: the same error before any run.
  Node n = qdq_node("QuantizeLinear");
  n.inputs = {"x", "s"};
  Tensor s = f32({}, {0.f});
  std::vector<InferInput> in(2);
  in[0].info = graph::ValueInfo{DType::kFloat32, {1, 3}, true};
  in[0].present = true;
  in[1].info = graph::ValueInfo{DType::kFloat32, {}, true};
  in[1].present = true;
  in[1].value = &s;
  OpContext ctx{n, 13};
  std::string msg;
  EXPECT_EQ(error_of([&] { graph::schema_for(n, 13).infer(ctx, in); }, &msg), ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("QuantizeLinear_under_test"), std::string::npos) << msg;
  EXPECT_NE(msg.find("y_scale"), std::string::npos) << msg;
  // A valid one infers uint8 of x's shape.
  s.data<float>()[0] = 0.5f;
  auto out = graph::schema_for(n, 13).infer(ctx, in);
  EXPECT_EQ(out.at(0).dtype, DType::kUInt8);
  EXPECT_EQ(out.at(0).shape, (Shape{1, 3}));
}

}  // namespace
}  // namespace damoyolo::kernels::ref
