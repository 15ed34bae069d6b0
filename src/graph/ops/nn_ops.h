// Shape rules of the neural-network operators (Conv, BatchNormalization,
// MaxPool, Resize, Softmax, MatMul, ReduceSum / ReduceMax / ReduceMean):
// their schemas, and the geometry their reference kernels
// (src/kernels/reference/nn_ops.cc) reuse on concrete tensors (window
// geometry, Resize's scales and sizes, reduction axes), so the inferred shape
// and the computed one come from the same code.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/checked_size.h"
#include "graph/ops/op_util.h"

namespace damoyolo::graph::ops {

void require_float(const OpContext& ctx, DType dt);

std::string ints_to_string(const std::vector<int64_t>& v);

int64_t floor_div(int64_t a, int64_t b);

int64_t ceil_div(int64_t a, int64_t b);

// ---- window geometry shared by Conv and MaxPool ---------------------------

struct Window {
  std::vector<int64_t> kernel, strides, dilations, pad_begin, pad_end, out;
};

// Output size and padding per spatial axis from the ONNX attributes. `kernel`
// is the kernel shape (Conv: from the weight unless the attribute is given).
Window window_geometry(const OpContext& ctx, const Shape& in_spatial, std::vector<int64_t> kernel, bool allow_ceil);

// ---- Conv -------------------------------------------------------------------

struct ConvShape {
  int64_t N, C, H, W, M, KH, KW, OH, OW, group;
  int64_t sh, sw, dh, dw, ph, pw;
};

// Views 1-D convolution as 2-D with a unit height so one loop nest serves both.
ConvShape conv_shape(const OpContext& ctx, const Shape& x, const Shape& w);

// Bias: M elements (1-D in the spec) of the input's dtype. `shape` null: not known yet.
void check_bias(const OpContext& ctx, const ConvShape& c, DType dtype, const Shape* shape, DType want);

Shape conv_out_shape(const ConvShape& c, size_t rank);

// ---- BatchNormalization -----------------------------------------------------

void check_batchnorm(const OpContext& ctx, size_t n_inputs);

// ---- MaxPool ----------------------------------------------------------------

bool pool_dtype_ok(DType dt);

void check_maxpool(const OpContext& ctx, const Shape& x);

Shape maxpool_out_shape(const OpContext& ctx, const Shape& x, Window* geometry);

// ---- Resize -----------------------------------------------------------------

struct ResizeParams {
  std::string mode, coord, nearest_mode;
  float extrapolation = 0;
  std::vector<double> scales;  // per axis, as used by the coordinate transform
  std::vector<double> roi;     // 2*rank, only for tf_crop_and_resize
  Shape out;
};

void check_resize_attrs(const OpContext& ctx, const ResizeParams& p);

ResizeParams resize_attrs(const OpContext& ctx);

// Output dims at or past this (2^63, as a double) cannot be represented.
inline constexpr double kMaxResizeDim = 9223372036854775808.0;

// Fills scales/out/roi from the scales or sizes values. `get(i)` returns the
// float values of input i as doubles (nullopt: not known; empty: absent).
template <class GetFloats>
bool resize_sizes(const OpContext& ctx, const Shape& in, ResizeParams& p, GetFloats get) {
  const size_t r = in.size();
  std::optional<std::vector<double>> scales, sizes, roi;
  if (ctx.opset < 11) {
    scales = get(1);
  } else {
    roi = get(1);
    scales = get(2);
    sizes = get(3);
    if (!roi) return false;
  }
  if (!scales) return false;
  p.scales.assign(r, 1.0);
  p.out.assign(r, -1);
  if (!scales->empty()) {
    if (scales->size() != r)
      fail(ctx, ErrorCode::kInvalidArgument, "scales has " + std::to_string(scales->size()) + " entries for rank " +
                                                 std::to_string(r));
    if (sizes && !sizes->empty()) fail(ctx, ErrorCode::kInvalidArgument, "both scales and sizes are given");
    for (size_t i = 0; i < r; ++i) {
      if (!((*scales)[i] > 0)) fail(ctx, ErrorCode::kInvalidArgument, "scales must be positive");
      p.scales[i] = (*scales)[i];
      if (in[i] < 0) continue;
      // floor(in * scale), computed in float like the reference (scales are float32).
      const double o = std::floor(static_cast<double>(in[i]) * (*scales)[i]);
      if (!(o < kMaxResizeDim))
        fail(ctx, ErrorCode::kOutOfRange, "scale " + std::to_string((*scales)[i]) + " makes axis " + std::to_string(i) +
                                              " of size " + std::to_string(in[i]) + " too long");
      p.out[i] = static_cast<int64_t>(o);
    }
  } else {
    if (!sizes) return false;
    if (sizes->size() != r)
      fail(ctx, ErrorCode::kInvalidArgument, "neither scales nor sizes of rank " + std::to_string(r) + " are given");
    for (size_t i = 0; i < r; ++i) {
      if ((*sizes)[i] < 0) fail(ctx, ErrorCode::kInvalidArgument, "negative output size");
      if (!((*sizes)[i] < kMaxResizeDim)) fail(ctx, ErrorCode::kOutOfRange, "output size is too large");
      p.out[i] = static_cast<int64_t>((*sizes)[i]);
      p.scales[i] = in[i] > 0 ? static_cast<double>(p.out[i]) / static_cast<double>(in[i]) : 1.0;
    }
  }
  // 2^32 x 2^32 outputs must fail here, not wrap to a small element count.
  if (all_dims_known(p.out) && !checked::numel(p.out))
    fail(ctx, ErrorCode::kOutOfRange, "output shape " + shape_to_string(p.out) + " has more than 2^63 - 1 elements");
  if (p.coord == "tf_crop_and_resize") {
    if (!roi || roi->size() != 2 * r)
      fail(ctx, ErrorCode::kInvalidArgument, "tf_crop_and_resize needs an roi of " + std::to_string(2 * r) + " values");
    p.roi = *roi;
  }
  return true;
}

std::vector<double> floats_of(const Tensor& t);

// ---- MatMul -----------------------------------------------------------------

bool matmul_dtype_ok(DType dt);

// numpy.matmul shapes: 1-D operands gain a unit axis that is removed again.
Shape matmul_shape(const OpContext& ctx, Shape a, Shape b);

// ---- reductions -------------------------------------------------------------

enum class Reduce { kSum, kMax, kMean };

// Axes from the attribute, or (ReduceSum opset 13+) from input 1.
// nullopt when the axes input is not a load-time constant.
std::optional<std::vector<int64_t>> reduce_axes_infer(const OpContext& ctx, Reduce kind, const std::vector<InferInput>& in);

// Which axes are reduced; all of them for empty axes unless noop_with_empty_axes.
std::vector<bool> reduced_mask(const OpContext& ctx, Reduce kind, const std::vector<int64_t>& axes, int64_t rank);

Shape reduced_shape(const Shape& s, const std::vector<bool>& mask, bool keepdims);

}  // namespace damoyolo::graph::ops
