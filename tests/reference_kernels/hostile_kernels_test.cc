// Reference kernels fed the extreme values a hostile model can carry (issue
// "Hostile input", item 8: found by UBSan): steps of INT64_MIN/INT64_MAX,
// shapes whose element count wraps around int64, outputs of 2^64 elements,
// empty integer tensors. Each gives a clear error or the correct result.
#include <gtest/gtest.h>

#include <chrono>
#include <limits>

#include "kernels/reference/registry.h"

namespace damoyolo::kernels::ref {
namespace {

using graph::Attribute;
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

Tensor i64(Shape shape, std::vector<int64_t> v) {
  Tensor t(DType::kInt64, std::move(shape));
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}
Tensor f32(Shape shape, std::vector<float> v) {
  Tensor t(DType::kFloat32, std::move(shape));
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}
Tensor iota_f32(Shape shape) {
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}

Node make_node(const std::string& op) {
  Node n;
  n.name = op + "_hostile";
  n.op_type = op;
  n.outputs.push_back("y0");
  return n;
}

std::vector<Tensor> run(Node node, const std::vector<Tensor>& inputs, int64_t opset = 13) {
  node.inputs.clear();
  for (size_t i = 0; i < inputs.size(); ++i) node.inputs.push_back(inputs[i].defined() ? "x" + std::to_string(i) : "");
  OpContext ctx{node, opset};
  return kernel_for(node, opset).compute(ctx, inputs);
}

// The error a call throws (kOk when it throws none).
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

// ---- Slice: extreme steps --------------------------------------------------

TEST(HostileSlice, StepInt64MinTakesTheStartElementOnly) {
  // From index 3 towards -inf with a step of INT64_MIN: exactly x[3].
  Tensor y = run(make_node("Slice"), {iota_f32({5}), i64({1}, {3}), i64({1}, {kMin}), i64({1}, {0}),
                                      i64({1}, {kMin})})[0];
  ASSERT_EQ(y.shape(), (Shape{1}));
  EXPECT_EQ(y.data<float>()[0], 3.f);
}

TEST(HostileSlice, StepInt64MaxTakesTheStartElementOnly) {
  Tensor y = run(make_node("Slice"), {iota_f32({5}), i64({1}, {1}), i64({1}, {kMax}), i64({1}, {0}),
                                      i64({1}, {kMax})})[0];
  ASSERT_EQ(y.shape(), (Shape{1}));
  EXPECT_EQ(y.data<float>()[0], 1.f);
}

TEST(HostileSlice, ExtremeStepsInferTheSameShape) {
  Node n = make_node("Slice");
  n.inputs = {"x", "s", "e", "a", "st"};
  Tensor s = i64({1}, {3}), e = i64({1}, {kMin}), a = i64({1}, {0}), st = i64({1}, {kMin});
  std::vector<InferInput> in(5);
  in[0].info = graph::ValueInfo{DType::kFloat32, {5}, true};
  in[0].present = true;
  const Tensor* vals[] = {&s, &e, &a, &st};
  for (int i = 0; i < 4; ++i) {
    in[i + 1].value = vals[i];
    in[i + 1].info = graph::ValueInfo{DType::kInt64, {1}, true};
    in[i + 1].present = true;
  }
  OpContext ctx{n, 13};
  auto out = kernel_for(n, 13).infer(ctx, in);
  EXPECT_EQ(out.at(0).shape, (Shape{1}));
}

TEST(HostileSlice, StepZeroIsAnError) {
  std::string msg;
  EXPECT_EQ(error_of([&] { run(make_node("Slice"), {iota_f32({5}), i64({1}, {0}), i64({1}, {5}), i64({1}, {0}),
                                                    i64({1}, {0})}); }, &msg),
            ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("Slice_hostile"), std::string::npos) << msg;
}

// ---- Reshape: element counts that wrap -------------------------------------

TEST(HostileReshape, ShapeWhoseElementCountWrapsToZeroIsAnError) {
  // An empty input "reshaped" to 2^62 x 4 (= 2^64, wraps to 0).
  std::string msg;
  ErrorCode c = error_of([&] { run(make_node("Reshape"), {Tensor(DType::kFloat32, {0}), i64({2}, {int64_t{1} << 62, 4})}); },
                         &msg);
  EXPECT_EQ(c, ErrorCode::kOutOfRange) << msg;
  EXPECT_NE(msg.find("Reshape_hostile"), std::string::npos) << msg;
}

TEST(HostileReshape, ShapeWhoseElementCountWrapsToTheInputsIsAnError) {
  // (2^62 + 1) x 4 = 2^64 + 4 wraps to 4, the input's element count.
  ErrorCode c = error_of([&] { run(make_node("Reshape"), {f32({1, 4}, {1, 2, 3, 4}), i64({2}, {(int64_t{1} << 62) + 1, 4})}); });
  EXPECT_EQ(c, ErrorCode::kOutOfRange);
}

TEST(HostileReshape, InferredDimensionWithWrappingRestIsAnError) {
  // The known dims' product 2^62 x 4 wraps to 0.
  ErrorCode c = error_of([&] { run(make_node("Reshape"), {f32({1, 4}, {1, 2, 3, 4}), i64({3}, {-1, int64_t{1} << 62, 4})}); });
  EXPECT_NE(c, ErrorCode::kOk);
}

TEST(HostileReshape, EmptyShapeTensorMakesAScalar) {
  // An empty int64 tensor (memcpy from/to nullptr under UBSan before the fix).
  Tensor y = run(make_node("Reshape"), {f32({1}, {7}), Tensor(DType::kInt64, {0})})[0];
  EXPECT_EQ(y.shape(), Shape{});
  EXPECT_EQ(y.data<float>()[0], 7.f);
}

// ---- Resize: outputs of 2^64 elements ---------------------------------------

Node resize_node() {
  Node n = make_node("Resize");
  Attribute mode;
  mode.kind = Attribute::Kind::kString;
  mode.s = "nearest";
  n.attrs["mode"] = mode;
  return n;
}

TEST(HostileResize, OutputOfTwoToThe64ElementsIsAnErrorNotAHang) {
  auto t0 = std::chrono::steady_clock::now();
  std::string msg;
  ErrorCode c = error_of([&] {
    run(resize_node(), {iota_f32({1, 1, 2, 2}), Tensor(DType::kFloat32, {0}),
                        f32({4}, {1.f, 1.f, 2147483648.f, 2147483648.f})}, 11);
  }, &msg);
  EXPECT_EQ(c, ErrorCode::kOutOfRange) << msg;
  EXPECT_NE(msg.find("Resize_hostile"), std::string::npos) << msg;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
}

TEST(HostileResize, ScaleBeyondInt64IsAnError) {
  ErrorCode c = error_of([&] {
    run(resize_node(), {iota_f32({1, 1, 2, 2}), Tensor(DType::kFloat32, {0}), f32({4}, {1.f, 1.f, 1e30f, 1.f})}, 11);
  });
  EXPECT_EQ(c, ErrorCode::kOutOfRange);
}

TEST(HostileResize, EmptyOutputWithHugeAxesIsEmptyAndFast) {
  // A zero batch makes the output empty however large the other axes are:
  // nothing may be built per output coordinate.
  auto t0 = std::chrono::steady_clock::now();
  Tensor y = run(resize_node(), {Tensor(DType::kFloat32, {0, 1, 2, 2}), Tensor(DType::kFloat32, {0}),
                                 f32({4}, {1.f, 1.f, 1073741824.f, 1073741824.f})}, 11)[0];
  EXPECT_EQ(y.numel(), 0);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
}

// Found by the onnx_session fuzzer (a 25-s timeout): every output element
// visited all 2^rank corners of its cell, even for nearest, so a rank-16
// Resize cost 65536 steps an element; and linear along many axes reads
// 2^axes inputs an element. Nearest is now O(rank) an element, and linear
// work beyond 2^34 reads is refused before anything is allocated.
Node resize_mode(const std::string& m) {
  Node n = resize_node();
  n.attrs["mode"].s = m;
  return n;
}

TEST(HostileResize, LinearAlongSixteenAxesIsRefusedBeforeAnyWork) {
  // [2]^16 scaled by 1.5 on every axis: 3^16 = 43 M outputs x 2^16 reads each.
  std::string msg;
  ErrorCode c = error_of([&] {
    run(resize_mode("linear"), {iota_f32(Shape(16, 2)), Tensor(DType::kFloat32, {0}),
                                f32({16}, std::vector<float>(16, 1.5f))}, 11);
  }, &msg);
  EXPECT_EQ(c, ErrorCode::kOutOfRange) << msg;
  EXPECT_NE(msg.find("2^34"), std::string::npos) << msg;
}

TEST(HostileResize, HighRankResizeEqualsTheSameResizeAtRankFour) {
  // Rank 16 with 14 unit axes gives the rank-4 result, for nearest and
  // linear: the corners come from the interpolated axes alone.
  for (const char* m : {"nearest", "linear"}) {
    Shape big(14, 1);
    big.push_back(3);
    big.push_back(5);
    std::vector<float> big_scales(14, 1.f);
    big_scales.push_back(2.f);
    big_scales.push_back(1.6f);
    Tensor y16 = run(resize_mode(m), {iota_f32(big), Tensor(DType::kFloat32, {0}), f32({16}, big_scales)}, 11)[0];
    Tensor y4 = run(resize_mode(m), {iota_f32({1, 1, 3, 5}), Tensor(DType::kFloat32, {0}),
                                     f32({4}, {1.f, 1.f, 2.f, 1.6f})}, 11)[0];
    ASSERT_EQ(y16.numel(), y4.numel()) << m;
    ASSERT_EQ(y4.numel(), 6 * 8) << m;
    for (int64_t i = 0; i < y4.numel(); ++i) EXPECT_EQ(y16.data<float>()[i], y4.data<float>()[i]) << m << " " << i;
  }
}

// ---- Conv: the bias is checked where shapes are inferred ------------------

TEST(HostileConv, InferRejectsABiasOfTheWrongSize) {
  Node n = make_node("Conv");
  n.inputs = {"x", "w", "b"};
  std::vector<InferInput> in(3);
  in[0].info = graph::ValueInfo{DType::kFloat32, {1, 3, 8, 8}, true};
  in[1].info = graph::ValueInfo{DType::kFloat32, {256, 3, 3, 3}, true};
  in[2].info = graph::ValueInfo{DType::kFloat32, {1}, true};
  for (auto& i : in) i.present = true;
  OpContext ctx{n, 11};
  std::string msg;
  EXPECT_EQ(error_of([&] { kernel_for(n, 11).infer(ctx, in); }, &msg), ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("bias"), std::string::npos) << msg;
}

// ---- Tensor: a shape whose byte count wraps is refused ----------------------

TEST(HostileTensor, ShapeWhoseByteCountOverflowsIsRefused) {
  EXPECT_EQ(error_of([] { Tensor t(DType::kFloat32, {int64_t{1} << 62, 4}); }), ErrorCode::kOutOfRange);
  EXPECT_EQ(error_of([] { Tensor t(DType::kFloat32, {int64_t{1} << 62}); }), ErrorCode::kOutOfRange);
}

}  // namespace
}  // namespace damoyolo::kernels::ref
