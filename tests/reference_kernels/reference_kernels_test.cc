// Hand-checked cases for the reference kernels, called directly through the
// registry (no loader, no passes): every expected value here was worked out by
// hand, so a failure points at the kernel and not at the stack around it.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "kernels/reference/registry.h"

namespace damoyolo::kernels::ref {
namespace {

using graph::Attribute;

Tensor f32(Shape shape, std::vector<float> v) {
  Tensor t(DType::kFloat32, std::move(shape));
  EXPECT_EQ(static_cast<size_t>(t.numel()), v.size());
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

Tensor i64(Shape shape, std::vector<int64_t> v) {
  Tensor t(DType::kInt64, std::move(shape));
  EXPECT_EQ(static_cast<size_t>(t.numel()), v.size());
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

Tensor iota_f32(Shape shape) {
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

Attribute ints_attr(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}
Attribute int_attr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}
Attribute str_attr(std::string s) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = std::move(s);
  return a;
}

Node make_node(const std::string& op, std::map<std::string, Attribute> attrs = {}, size_t n_outputs = 1) {
  Node n;
  n.name = op + "_test";
  n.op_type = op;
  n.attrs = std::move(attrs);
  for (size_t i = 0; i < n_outputs; ++i) n.outputs.push_back("y" + std::to_string(i));
  return n;
}

// Runs one node; inputs named x0, x1, ... (an undefined tensor marks an omitted input).
std::vector<Tensor> run(Node node, const std::vector<Tensor>& inputs, int64_t opset = 13) {
  node.inputs.clear();
  for (size_t i = 0; i < inputs.size(); ++i) node.inputs.push_back(inputs[i].defined() ? "x" + std::to_string(i) : "");
  OpContext ctx{node, opset};
  return kernel_for(node, opset).compute(ctx, inputs);
}
Tensor run1(Node node, const std::vector<Tensor>& inputs, int64_t opset = 13) { return run(std::move(node), inputs, opset)[0]; }

// ---- Conv -------------------------------------------------------------------

TEST(ReferenceConv, ThreeByThreePaddedWithBias) {
  // x = 0..8 as a 3x3 image, w = all ones, bias 1, pad 1: each output is
  // 1 + the sum of the 3x3 neighbourhood.
  Tensor x = iota_f32({1, 1, 3, 3});
  Tensor w = f32({1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  Tensor b = f32({1}, {1.0f});
  Tensor y = run1(make_node("Conv", {{"pads", ints_attr({1, 1, 1, 1})}}), {x, w, b});
  ASSERT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  // neighbourhood sums: corners 0+1+3+4=8, 1+2+4+5=12, 3+4+6+7=20, 4+5+7+8=24;
  // edges 0+1+2+3+4+5=15, 0+1+3+4+6+7=21, 1+2+4+5+7+8=27, 3+4+5+6+7+8=33; centre 36.
  EXPECT_EQ(values(y), (std::vector<float>{9, 16, 13, 22, 37, 28, 21, 34, 25}));
}

TEST(ReferenceConv, StrideDilationGroupAndSameUpper) {
  // Two groups, each a 1x1 scale: channel 0 doubled, channel 1 tripled, stride 2.
  Tensor x = iota_f32({1, 2, 4, 4});
  Tensor w = f32({2, 1, 1, 1}, {2, 3});
  Tensor y = run1(make_node("Conv", {{"group", int_attr(2)}, {"strides", ints_attr({2, 2})}}), {x, w});
  ASSERT_EQ(y.shape(), (Shape{1, 2, 2, 2}));
  EXPECT_EQ(values(y), (std::vector<float>{0, 4, 16, 20, 48, 54, 72, 78}));

  // Dilation 2 with a 2x2 kernel of ones on a 3x3 image: only the four corners.
  Tensor x3 = iota_f32({1, 1, 3, 3});
  Tensor w2 = f32({1, 1, 2, 2}, {1, 1, 1, 1});
  Tensor yd = run1(make_node("Conv", {{"dilations", ints_attr({2, 2})}}), {x3, w2});
  ASSERT_EQ(yd.shape(), (Shape{1, 1, 1, 1}));
  EXPECT_EQ(values(yd)[0], 0 + 2 + 6 + 8);

  // SAME_UPPER, stride 2 on 4 wide: out 2, total pad 1 at the end.
  Tensor x4 = iota_f32({1, 1, 1, 4});
  Tensor w3 = f32({1, 1, 1, 3}, {1, 1, 1});
  Tensor ys = run1(make_node("Conv", {{"auto_pad", str_attr("SAME_UPPER")}, {"strides", ints_attr({1, 2})}}), {x4, w3});
  ASSERT_EQ(ys.shape(), (Shape{1, 1, 1, 2}));
  EXPECT_EQ(values(ys), (std::vector<float>{0 + 1 + 2, 2 + 3 + 0}));
  Tensor yl = run1(make_node("Conv", {{"auto_pad", str_attr("SAME_LOWER")}, {"strides", ints_attr({1, 2})}}), {x4, w3});
  EXPECT_EQ(values(yl), (std::vector<float>{0 + 0 + 1, 1 + 2 + 3}));
}

TEST(ReferenceConv, MatchesNaiveLoopOnRandomData) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> d(-1, 1);
  const int64_t N = 2, C = 4, H = 7, W = 9, M = 6, K = 3, G = 2;
  Tensor x(DType::kFloat32, {N, C, H, W}), w(DType::kFloat32, {M, C / G, K, K}), b(DType::kFloat32, {M});
  for (auto* t : {&x, &w, &b})
    for (int64_t i = 0; i < t->numel(); ++i) t->data<float>()[i] = d(rng);
  Tensor y = run1(make_node("Conv", {{"group", int_attr(G)}, {"strides", ints_attr({2, 1})},
                                     {"pads", ints_attr({1, 2, 0, 1})}, {"dilations", ints_attr({1, 2})}}),
                  {x, w, b});
  const int64_t OH = (H + 1 - 3) / 2 + 1, OW = (W + 3 - 5) / 1 + 1;
  ASSERT_EQ(y.shape(), (Shape{N, M, OH, OW}));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          double acc = b.data<float>()[m];
          int64_t g = m / (M / G);
          for (int64_t ic = 0; ic < C / G; ++ic)
            for (int64_t ky = 0; ky < K; ++ky)
              for (int64_t kx = 0; kx < K; ++kx) {
                int64_t iy = oy * 2 - 1 + ky, ix = ox - 2 + kx * 2;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += static_cast<double>(x.data<float>()[((n * C + g * (C / G) + ic) * H + iy) * W + ix]) *
                       w.data<float>()[((m * (C / G) + ic) * K + ky) * K + kx];
              }
          EXPECT_NEAR(y.data<float>()[((n * M + m) * OH + oy) * OW + ox], acc, 1e-5);
        }
}

// ---- Slice / Gather ---------------------------------------------------------

TEST(ReferenceSlice, Int64MaxEndsAndStepTwo) {
  // Focus-style slicing: x[..., ::2] with ends = INT64_MAX, and [1::2].
  Tensor x = iota_f32({1, 1, 2, 5});
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  Tensor y = run1(make_node("Slice"), {x, i64({1}, {0}), i64({1}, {kMax}), i64({1}, {3}), i64({1}, {2})});
  ASSERT_EQ(y.shape(), (Shape{1, 1, 2, 3}));
  EXPECT_EQ(values(y), (std::vector<float>{0, 2, 4, 5, 7, 9}));
  Tensor y1 = run1(make_node("Slice"), {x, i64({1}, {1}), i64({1}, {kMax}), i64({1}, {-1}), i64({1}, {2})});
  EXPECT_EQ(values(y1), (std::vector<float>{1, 3, 6, 8}));
}

TEST(ReferenceSlice, NegativeStepToInt64Min) {
  Tensor x = iota_f32({5});
  const int64_t kMin = std::numeric_limits<int64_t>::min();
  Tensor y = run1(make_node("Slice"), {x, i64({1}, {-1}), i64({1}, {kMin}), Tensor(), i64({1}, {-2})});
  EXPECT_EQ(values(y), (std::vector<float>{4, 2, 0}));
  // Opset 1 attributes, with ends past the end clamped.
  Tensor y9 = run1(make_node("Slice", {{"starts", ints_attr({1})}, {"ends", ints_attr({1000})}}), {x}, 9);
  EXPECT_EQ(values(y9), (std::vector<float>{1, 2, 3, 4}));
}

TEST(ReferenceGather, ScalarAndNegativeIndices) {
  Tensor x = iota_f32({2, 3, 4});
  Tensor y = run1(make_node("Gather", {{"axis", int_attr(2)}}), {x, i64({}, {1})});
  ASSERT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(values(y), (std::vector<float>{1, 5, 9, 13, 17, 21}));
  Tensor y2 = run1(make_node("Gather", {{"axis", int_attr(1)}}), {x, i64({2}, {-1, 0})});
  ASSERT_EQ(y2.shape(), (Shape{2, 2, 4}));
  EXPECT_EQ(values(y2), (std::vector<float>{8, 9, 10, 11, 0, 1, 2, 3, 20, 21, 22, 23, 12, 13, 14, 15}));
  EXPECT_THROW(run1(make_node("Gather"), {x, i64({1}, {2})}), Error);
}

// ---- Resize -----------------------------------------------------------------

TEST(ReferenceResize, NearestAsymmetricFloorTimesTwo) {
  Tensor x = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  Node n = make_node("Resize", {{"mode", str_attr("nearest")},
                                {"coordinate_transformation_mode", str_attr("asymmetric")},
                                {"nearest_mode", str_attr("floor")}});
  Tensor y = run1(n, {x, f32({0}, {}), f32({4}, {1, 1, 2, 2})}, 11);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 4, 4}));
  EXPECT_EQ(values(y), (std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
  // Same through a sizes input (the other form torch exports).
  Tensor ys = run1(n, {x, f32({0}, {}), f32({0}, {}), i64({4}, {1, 1, 4, 4})}, 11);
  EXPECT_EQ(values(ys), values(y));
}

TEST(ReferenceResize, LinearHalfPixel) {
  Tensor x = f32({1, 1, 1, 2}, {0, 4});
  Node n = make_node("Resize", {{"mode", str_attr("linear")}});
  Tensor y = run1(n, {x, Tensor(), f32({4}, {1, 1, 1, 2})}, 13);
  // Output x=0..3 maps to -0.25, 0.25, 0.75, 1.25 → clamped, lerp: 0, 1, 3, 4.
  EXPECT_EQ(values(y), (std::vector<float>{0, 1, 3, 4}));
}

// ---- Softmax ------------------------------------------------------------------

TEST(ReferenceSoftmax, OpsetSemanticsDiffer) {
  Tensor x = f32({2, 2}, {0, 0, 0, std::log(3.0f)});
  // Opset 13 default axis -1: per row.
  Tensor y13 = run1(make_node("Softmax"), {x}, 13);
  EXPECT_NEAR(y13.data<float>()[0], 0.5f, 1e-6);
  EXPECT_NEAR(y13.data<float>()[2], 0.25f, 1e-6);
  EXPECT_NEAR(y13.data<float>()[3], 0.75f, 1e-6);
  // Opset 11, axis 0: the whole tensor flattened into one row of 4.
  Tensor y11 = run1(make_node("Softmax", {{"axis", int_attr(0)}}), {x}, 11);
  EXPECT_NEAR(y11.data<float>()[0], 1.0f / 6, 1e-6);
  EXPECT_NEAR(y11.data<float>()[3], 3.0f / 6, 1e-6);
  // Opset 13, axis 0: per column.
  Tensor y13a = run1(make_node("Softmax", {{"axis", int_attr(0)}}), {x}, 13);
  EXPECT_NEAR(y13a.data<float>()[1], 0.25f, 1e-6);
  EXPECT_NEAR(y13a.data<float>()[3], 0.75f, 1e-6);
}

TEST(ReferenceSoftmax, TransposeSoftmaxTransposeEqualsExpReduceSumDiv) {
  // The two forms torch emits for DAMO-YOLO's softmax over the bins (axis 2 of
  // [N,4,R+1,H,W]) must agree.
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-4, 4);
  Tensor x(DType::kFloat32, {1, 4, 5, 2, 3});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = d(rng);

  Tensor t1 = run1(make_node("Transpose", {{"perm", ints_attr({0, 1, 4, 3, 2})}}), {x});
  Tensor s = run1(make_node("Softmax", {{"axis", int_attr(4)}}), {t1}, 13);
  Tensor a = run1(make_node("Transpose", {{"perm", ints_attr({0, 1, 4, 3, 2})}}), {s});

  Tensor e = run1(make_node("Exp"), {x});
  Tensor sum = run1(make_node("ReduceSum", {{"axes", ints_attr({2})}, {"keepdims", int_attr(1)}}), {e}, 11);
  ASSERT_EQ(sum.shape(), (Shape{1, 4, 1, 2, 3}));
  Tensor b = run1(make_node("Div"), {e, sum});

  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-6);
}

// ---- the rest, briefly ------------------------------------------------------

TEST(ReferenceTensorOps, ReshapeUnsqueezeConcatSplit) {
  Tensor x = iota_f32({2, 3, 4});
  Tensor r = run1(make_node("Reshape"), {x, i64({3}, {0, -1, 2})});
  EXPECT_EQ(r.shape(), (Shape{2, 6, 2}));
  Tensor u = run1(make_node("Unsqueeze", {{"axes", ints_attr({0, -1})}}), {x}, 11);
  EXPECT_EQ(u.shape(), (Shape{1, 2, 3, 4, 1}));
  Tensor u13 = run1(make_node("Unsqueeze"), {x, i64({1}, {1})}, 13);
  EXPECT_EQ(u13.shape(), (Shape{2, 1, 3, 4}));
  Tensor c = run1(make_node("Concat", {{"axis", int_attr(-1)}}), {x, x});
  ASSERT_EQ(c.shape(), (Shape{2, 3, 8}));
  EXPECT_EQ(c.data<float>()[4], 0.0f);
  EXPECT_EQ(c.data<float>()[9], 5.0f);
  auto parts = run(make_node("Split", {{"axis", int_attr(2)}}, 2), {x}, 13);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[1].shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(parts[1].data<float>()[0], 2.0f);
}

TEST(ReferenceElementwise, BroadcastAndIntegerDivision) {
  Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = f32({3}, {10, 20, 30});
  EXPECT_EQ(values(run1(make_node("Add"), {a, b})), (std::vector<float>{11, 22, 33, 14, 25, 36}));
  Tensor ia = i64({3}, {7, -7, 9});
  Tensor ib = i64({3}, {2, 2, -4});
  Tensor q = run1(make_node("Div"), {ia, ib});
  EXPECT_EQ(q.data<int64_t>()[0], 3);
  EXPECT_EQ(q.data<int64_t>()[1], -3);  // truncation, like C
  EXPECT_EQ(q.data<int64_t>()[2], -2);
  EXPECT_THROW(run1(make_node("Div"), {ia, i64({1}, {0})}), Error);
}

TEST(ReferenceOldOpsets, AttributeFormsBeforeOpset13) {
  Tensor x = iota_f32({1, 4});
  // Split-11: sizes from the attribute.
  auto parts = run(make_node("Split", {{"axis", int_attr(1)}, {"split", ints_attr({1, 3})}}, 2), {x}, 11);
  EXPECT_EQ(values(parts[1]), (std::vector<float>{1, 2, 3}));
  // Squeeze-11 without axes drops every unit dim.
  EXPECT_EQ(run1(make_node("Squeeze"), {x}, 11).shape(), (Shape{4}));
  // Clip-6: bounds are attributes.
  Attribute lo, hi;
  lo.kind = hi.kind = Attribute::Kind::kFloat;
  lo.f = 1;
  hi.f = 2;
  EXPECT_EQ(values(run1(make_node("Clip", {{"min", lo}, {"max", hi}}), {x}, 6)), (std::vector<float>{1, 1, 2, 2}));
  // Pad-2: pads attribute, reflect mode.
  Tensor p = run1(make_node("Pad", {{"pads", ints_attr({0, 2, 0, 1})}, {"mode", str_attr("reflect")}}), {x}, 2);
  EXPECT_EQ(values(p), (std::vector<float>{2, 1, 0, 1, 2, 3, 2}));
  // Resize-10: scales is input 1, nearest upsampling is floor on asymmetric coordinates.
  Tensor r = run1(make_node("Resize"), {f32({1, 1, 1, 2}, {5, 7}), f32({4}, {1, 1, 1, 3})}, 10);
  EXPECT_EQ(values(r), (std::vector<float>{5, 5, 5, 7, 7, 7}));
  // MaxPool ceil_mode: 5 wide, k2 s2 → 3 outputs, the last window half outside.
  Tensor m = run1(make_node("MaxPool", {{"kernel_shape", ints_attr({1, 2})}, {"strides", ints_attr({1, 2})},
                                        {"ceil_mode", int_attr(1)}}),
                  {f32({1, 1, 1, 5}, {1, 9, 3, 4, 8})}, 11);
  EXPECT_EQ(values(m), (std::vector<float>{9, 4, 8}));
}

TEST(ReferenceInfer, UsesConstantsAndReportsDynamicShapes) {
  Node n = make_node("Reshape");
  n.inputs = {"x", "shape"};
  OpContext ctx{n, 13};
  Tensor shape = i64({2}, {-1, 6});
  std::vector<InferInput> in(2);
  in[0].info = ValueInfo{DType::kFloat32, {2, 3, 4}, true};
  in[0].present = true;
  in[1].info = ValueInfo{DType::kInt64, {2}, true};
  in[1].present = true;
  in[1].value = &shape;
  auto out = kernel_for(n, 13).infer(ctx, in);
  ASSERT_TRUE(out[0].has_shape);
  EXPECT_EQ(out[0].shape, (Shape{4, 6}));
  in[1].value = nullptr;  // the shape is computed at run time: shape unknown, no error
  out = kernel_for(n, 13).infer(ctx, in);
  EXPECT_FALSE(out[0].has_shape);
  EXPECT_EQ(out[0].dtype, DType::kFloat32);
}

TEST(ReferenceErrors, UnsupportedValuesNameTheNode) {
  try {
    run1(make_node("Resize", {{"mode", str_attr("cubic")}}), {iota_f32({1, 1, 2, 2}), Tensor(), f32({4}, {1, 1, 2, 2})});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("Resize_test"), std::string::npos);
  }
  try {
    run1(make_node("Add"), {iota_f32({2, 3}), iota_f32({4})});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace damoyolo::kernels::ref
