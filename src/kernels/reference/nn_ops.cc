// Reference neural-network kernels: Conv, BatchNormalization, MaxPool, Resize,
// Softmax, MatMul and the reductions ReduceSum / ReduceMax / ReduceMean.
//
// Plain loops throughout. The one concession to speed is Conv's loop order
// (output channel → output row → input channel → kernel tap → contiguous run
// of output pixels), which keeps the output row in L1 and lets the compiler
// vectorise the innermost loop, so a whole DAMO-YOLO-T (18 GFLOP) runs in
// seconds rather than minutes when this engine is used as the oracle.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>

#include "common/checked_size.h"
#include "kernels/reference/kernel_util.h"
#include "kernels/reference/registry.h"

namespace damoyolo::kernels::ref {
namespace {

using namespace util;

void require_float(const OpContext& ctx, DType dt) {
  if (!is_float(dt))
    fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dt) + " is not supported");
}

std::string ints_to_string(const std::vector<int64_t>& v) { return shape_to_string(v); }

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// ---- window geometry shared by Conv and MaxPool ---------------------------

struct Window {
  std::vector<int64_t> kernel, strides, dilations, pad_begin, pad_end, out;
};

// Output size and padding per spatial axis from the ONNX attributes. `kernel`
// is the kernel shape (Conv: from the weight unless the attribute is given).
Window window_geometry(const OpContext& ctx, const Shape& in_spatial, std::vector<int64_t> kernel, bool allow_ceil) {
  const size_t r = in_spatial.size();
  const Node& n = ctx.node;
  Window w;
  w.kernel = std::move(kernel);
  w.strides = n.attr_ints("strides", std::vector<int64_t>(r, 1));
  w.dilations = n.attr_ints("dilations", std::vector<int64_t>(r, 1));
  std::vector<int64_t> pads = n.attr_ints("pads", std::vector<int64_t>(2 * r, 0));
  if (w.kernel.size() != r || w.strides.size() != r || w.dilations.size() != r || pads.size() != 2 * r)
    fail(ctx, ErrorCode::kInvalidArgument,
         "kernel_shape/strides/dilations/pads do not match " + std::to_string(r) + " spatial axes");
  const std::string auto_pad = n.attr_s("auto_pad", "NOTSET");
  const bool ceil_mode = allow_ceil && n.attr_i("ceil_mode", 0) != 0;
  for (size_t i = 0; i < r; ++i) {
    if (w.kernel[i] <= 0 || w.strides[i] <= 0 || w.dilations[i] <= 0)
      fail(ctx, ErrorCode::kInvalidArgument, "kernel, strides and dilations must be positive");
    if (pads[i] < 0 || pads[i + r] < 0) fail(ctx, ErrorCode::kInvalidArgument, "negative pads are not allowed");
  }
  w.pad_begin.assign(r, 0);
  w.pad_end.assign(r, 0);
  w.out.assign(r, -1);
  for (size_t i = 0; i < r; ++i) {
    const int64_t in = in_spatial[i];
    const int64_t ext = (w.kernel[i] - 1) * w.dilations[i] + 1;  // the dilated kernel's extent
    const int64_t s = w.strides[i];
    if (auto_pad == "NOTSET") {
      w.pad_begin[i] = pads[i];
      w.pad_end[i] = pads[i + r];
      if (in < 0) continue;
      const int64_t span = in + pads[i] + pads[i + r] - ext;
      if (span < 0) fail(ctx, ErrorCode::kInvalidArgument, "the kernel is larger than the padded input");
      int64_t o = (ceil_mode ? ceil_div(span, s) : span / s) + 1;
      // A window may not start in the end padding (PyTorch's rule for ceil_mode).
      if (ceil_mode && (o - 1) * s >= in + pads[i]) --o;
      w.out[i] = o;
    } else if (auto_pad == "VALID") {
      if (in < 0) continue;
      if (in < ext) fail(ctx, ErrorCode::kInvalidArgument, "the kernel is larger than the input");
      w.out[i] = (in - ext) / s + 1;
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      if (in < 0) continue;
      const int64_t o = ceil_div(in, s);
      const int64_t total = std::max<int64_t>(0, (o - 1) * s + ext - in);
      // SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the beginning.
      w.pad_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w.pad_end[i] = total - w.pad_begin[i];
      w.out[i] = o;
    } else {
      fail(ctx, ErrorCode::kUnsupported, "auto_pad '" + auto_pad + "' is not supported");
    }
  }
  return w;
}

// The [first, last) output positions whose input coordinate o*s + off stays in [0, in).
std::pair<int64_t, int64_t> valid_range(int64_t off, int64_t s, int64_t in, int64_t out) {
  int64_t first = std::max<int64_t>(0, ceil_div(-off, s));
  int64_t last = std::min<int64_t>(out, floor_div(in - 1 - off, s) + 1);
  return {first, std::max(first, last)};
}

// ---- Conv -------------------------------------------------------------------

struct ConvShape {
  int64_t N, C, H, W, M, KH, KW, OH, OW, group;
  int64_t sh, sw, dh, dw, ph, pw;
};

// Views 1-D convolution as 2-D with a unit height so one loop nest serves both.
ConvShape conv_shape(const OpContext& ctx, const Shape& x, const Shape& w) {
  if (x.size() != w.size()) fail(ctx, ErrorCode::kInvalidArgument, "input and weight ranks differ");
  if (x.size() != 3 && x.size() != 4)
    fail(ctx, ErrorCode::kUnsupported, "only 1-D and 2-D convolution are supported (input rank " +
                                           std::to_string(x.size()) + ")");
  const size_t r = x.size() - 2;
  std::vector<int64_t> kernel(w.begin() + 2, w.end());
  if (ctx.node.has_attr("kernel_shape") && ctx.node.attr_ints("kernel_shape") != kernel)
    fail(ctx, ErrorCode::kInvalidArgument, "kernel_shape " + ints_to_string(ctx.node.attr_ints("kernel_shape")) +
                                               " disagrees with the weight shape " + shape_to_string(w));
  Window win = window_geometry(ctx, Shape(x.begin() + 2, x.end()), kernel, false);
  ConvShape c{};
  c.group = ctx.node.attr_i("group", 1);
  c.N = x[0];
  c.C = x[1];
  c.M = w[0];
  if (c.group <= 0 || (c.C >= 0 && c.C % c.group != 0) || c.M % c.group != 0)
    fail(ctx, ErrorCode::kInvalidArgument, "group " + std::to_string(c.group) + " does not divide the channels");
  if (c.C >= 0 && w[1] * c.group != c.C)
    fail(ctx, ErrorCode::kInvalidArgument, "weight " + shape_to_string(w) + " does not match input " +
                                               shape_to_string(x) + " with group " + std::to_string(c.group));
  if (r == 1) {
    c.H = 1; c.KH = 1; c.OH = 1; c.sh = 1; c.dh = 1; c.ph = 0;
    c.W = x[2]; c.KW = w[2]; c.OW = win.out[0]; c.sw = win.strides[0]; c.dw = win.dilations[0]; c.pw = win.pad_begin[0];
  } else {
    c.H = x[2]; c.KH = w[2]; c.OH = win.out[0]; c.sh = win.strides[0]; c.dh = win.dilations[0]; c.ph = win.pad_begin[0];
    c.W = x[3]; c.KW = w[3]; c.OW = win.out[1]; c.sw = win.strides[1]; c.dw = win.dilations[1]; c.pw = win.pad_begin[1];
  }
  return c;
}

// Bias: M elements (1-D in the spec) of the input's dtype. `shape` null: not known yet.
void check_bias(const OpContext& ctx, const ConvShape& c, DType dtype, const Shape* shape, DType want) {
  const bool known_bad = shape && all_dims_known(*shape) && shape_numel(*shape) != c.M;
  if ((dtype != want && dtype != DType::kUndefined) || known_bad)
    fail(ctx, ErrorCode::kInvalidArgument, "bias must have " + std::to_string(c.M) + " elements of the input's dtype, got " +
                                               dtype_name(dtype) + (shape ? shape_to_string(*shape) : std::string("[?]")));
}

Shape conv_out_shape(const ConvShape& c, size_t rank) {
  return rank == 3 ? Shape{c.N, c.M, c.OW} : Shape{c.N, c.M, c.OH, c.OW};
}

template <class T>
void conv_compute(const ConvShape& c, const T* x, const T* w, const T* bias, T* y) {
  const int64_t Cg = c.C / c.group, Mg = c.M / c.group;
  // Valid output-x range per kernel column, so the inner loop has no bounds test.
  std::vector<std::pair<int64_t, int64_t>> xr(c.KW);
  for (int64_t kx = 0; kx < c.KW; ++kx) xr[kx] = valid_range(kx * c.dw - c.pw, c.sw, c.W, c.OW);
  const int64_t total = c.N * c.M;
  // Threads only pay off for real work: a depthwise conv on a small map costs
  // less than waking the team, and the spinning workers would steal the core.
  const int64_t macs = total * c.OH * c.OW * Cg * c.KH * c.KW;
#pragma omp parallel for schedule(static) if (macs > (int64_t{1} << 22))
  for (int64_t nm = 0; nm < total; ++nm) {
    const int64_t n = nm / c.M, m = nm % c.M, g = m / Mg;
    T* yp = y + nm * c.OH * c.OW;
    const T b = bias ? bias[m] : T(0);
    const T* wm = w + m * Cg * c.KH * c.KW;
    for (int64_t oy = 0; oy < c.OH; ++oy) {
      T* yrow = yp + oy * c.OW;
      for (int64_t ox = 0; ox < c.OW; ++ox) yrow[ox] = b;
      for (int64_t ic = 0; ic < Cg; ++ic) {
        const T* xc = x + ((n * c.C) + g * Cg + ic) * c.H * c.W;
        const T* wc = wm + ic * c.KH * c.KW;
        for (int64_t ky = 0; ky < c.KH; ++ky) {
          const int64_t iy = oy * c.sh - c.ph + ky * c.dh;
          if (iy < 0 || iy >= c.H) continue;
          const T* xrow = xc + iy * c.W;
          for (int64_t kx = 0; kx < c.KW; ++kx) {
            const T wv = wc[ky * c.KW + kx];
            const T* xs = xrow + kx * c.dw - c.pw;  // xs[ox * sw] is the tap for output ox
            const auto [x0, x1] = xr[kx];
            if (c.sw == 1) {
              for (int64_t ox = x0; ox < x1; ++ox) yrow[ox] += wv * xs[ox];
            } else {
              for (int64_t ox = x0; ox < x1; ++ox) yrow[ox] += wv * xs[ox * c.sw];
            }
          }
        }
      }
    }
  }
}

OpKernel conv_kernel() {
  OpKernel k;
  k.op_type = "Conv";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 2);
    DType dt = in[0].info.dtype;
    require_float(ctx, dt);
    if (in[1].info.dtype != dt) fail(ctx, ErrorCode::kInvalidArgument, "weight dtype differs from the input's");
    if (!known(in[0]) || !known(in[1])) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    if (!all_dims_known(in[1].info.shape)) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    ConvShape c = conv_shape(ctx, in[0].info.shape, in[1].info.shape);
    // Checked here too, not only in compute: engines other than this one
    // (oneDNN) copy the bias by the weight's channel count.
    if (const InferInput* b = opt_input(in, 2)) check_bias(ctx, c, b->info.dtype, b->info.has_shape ? &b->info.shape : nullptr, dt);
    return std::vector<ValueInfo>{info_of(dt, conv_out_shape(c, in[0].info.shape.size()))};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 2);
    const Tensor& x = in[0];
    const Tensor& w = in[1];
    require_float(ctx, x.dtype());
    if (w.dtype() != x.dtype()) fail(ctx, ErrorCode::kInvalidArgument, "weight dtype differs from the input's");
    ConvShape c = conv_shape(ctx, x.shape(), w.shape());
    const Tensor* b = opt_tensor(in, 2);
    if (b) check_bias(ctx, c, b->dtype(), &b->shape(), x.dtype());
    Tensor y(x.dtype(), conv_out_shape(c, x.rank()));
    visit_float(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      conv_compute<T>(c, x.data<T>(), w.data<T>(), b ? b->data<T>() : nullptr, y.data<T>());
    });
    return std::vector<Tensor>{y};
  };
  return k;
}

// ---- BatchNormalization -----------------------------------------------------

void check_batchnorm(const OpContext& ctx, size_t n_inputs) {
  require_inputs(ctx, n_inputs, 5);
  const Node& n = ctx.node;
  if (n.attr_i("training_mode", 0) != 0)
    fail(ctx, ErrorCode::kUnsupported, "training_mode=1 is not supported (inference only)");
  if (ctx.opset < 9 && n.attr_i("spatial", 1) == 0)
    fail(ctx, ErrorCode::kUnsupported, "spatial=0 is not supported");
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty())
      fail(ctx, ErrorCode::kUnsupported, "the running mean/var outputs (training) are not supported");
}

OpKernel batchnorm_kernel() {
  OpKernel k;
  k.op_type = "BatchNormalization";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    check_batchnorm(ctx, in.size());
    require_float(ctx, in[0].info.dtype);
    for (size_t i = 1; i < 5; ++i) require_float(ctx, in[i].info.dtype);
    return std::vector<ValueInfo>{in[0].info};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    check_batchnorm(ctx, in.size());
    const Tensor& x = in[0];
    require_float(ctx, x.dtype());
    if (x.rank() < 2) fail(ctx, ErrorCode::kInvalidArgument, "input must have rank >= 2");
    const int64_t N = x.dim(0), C = x.dim(1), inner = shape_numel(Shape(x.shape().begin() + 2, x.shape().end()));
    for (size_t i = 1; i < 5; ++i)
      if (in[i].numel() != C)
        fail(ctx, ErrorCode::kInvalidArgument, "scale/bias/mean/var must have " + std::to_string(C) + " elements");
    const double eps = ctx.node.attr_f("epsilon", 1e-5f);
    // Parameters may be float or double independently of x (opset 15 allows it).
    std::vector<double> scale(C), shift(C);
    auto as_double = [&](const Tensor& t, int64_t i) {
      return t.dtype() == DType::kFloat64 ? t.data<double>()[i] : static_cast<double>(t.data<float>()[i]);
    };
    for (int64_t c = 0; c < C; ++c) {
      for (size_t i = 1; i < 5; ++i) require_float(ctx, in[i].dtype());
      double s = as_double(in[1], c) / std::sqrt(as_double(in[4], c) + eps);
      scale[c] = s;
      shift[c] = as_double(in[2], c) - as_double(in[3], c) * s;
    }
    Tensor y(x.dtype(), x.shape());
    visit_float(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* px = x.data<T>();
      T* py = y.data<T>();
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t base = (n * C + c) * inner;
          for (int64_t i = 0; i < inner; ++i)
            py[base + i] = static_cast<T>(static_cast<double>(px[base + i]) * scale[c] + shift[c]);
        }
    });
    return std::vector<Tensor>{y};
  };
  return k;
}

// ---- MaxPool ----------------------------------------------------------------

bool pool_dtype_ok(DType dt) {
  return is_float(dt) || dt == DType::kInt8 || dt == DType::kUInt8;
}

void check_maxpool(const OpContext& ctx, const Shape& x) {
  const Node& n = ctx.node;
  if (n.outputs.size() > 1 && !n.outputs[1].empty())
    fail(ctx, ErrorCode::kUnsupported, "the Indices output is not supported");
  if (x.size() != 3 && x.size() != 4)
    fail(ctx, ErrorCode::kUnsupported, "only 1-D and 2-D pooling are supported (input rank " +
                                           std::to_string(x.size()) + ")");
  if (!n.has_attr("kernel_shape")) fail(ctx, ErrorCode::kInvalidArgument, "missing kernel_shape");
}

Shape maxpool_out_shape(const OpContext& ctx, const Shape& x, Window* geometry) {
  check_maxpool(ctx, x);
  Window w = window_geometry(ctx, Shape(x.begin() + 2, x.end()), ctx.node.attr_ints("kernel_shape"), true);
  Shape out{x[0], x[1]};
  out.insert(out.end(), w.out.begin(), w.out.end());
  if (geometry) *geometry = w;
  return out;
}

template <class T>
void maxpool_compute(const Tensor& x, Tensor& y, const Window& w) {
  // 1-D is 2-D with a unit-height window over a unit-height image.
  const bool one_d = x.rank() == 3;
  const int64_t NC = x.dim(0) * x.dim(1);
  const int64_t H = one_d ? 1 : x.dim(2), W = x.dim(x.rank() - 1);
  const int64_t OH = one_d ? 1 : w.out[0], OW = w.out.back();
  const int64_t KH = one_d ? 1 : w.kernel[0], KW = w.kernel.back();
  const int64_t sh = one_d ? 1 : w.strides[0], sw = w.strides.back();
  const int64_t dh = one_d ? 1 : w.dilations[0], dw = w.dilations.back();
  const int64_t ph = one_d ? 0 : w.pad_begin[0], pw = w.pad_begin.back();
  const T* px = x.data<T>();
  T* py = y.data<T>();
  for (int64_t p = 0; p < NC; ++p) {
    const T* xc = px + p * H * W;
    T* yc = py + p * OH * OW;
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        // Padding never wins a max: only in-bounds taps are considered.
        T best = std::numeric_limits<T>::lowest();
        if constexpr (std::is_floating_point_v<T>) best = -std::numeric_limits<T>::infinity();
        for (int64_t ky = 0; ky < KH; ++ky) {
          const int64_t iy = oy * sh - ph + ky * dh;
          if (iy < 0 || iy >= H) continue;
          for (int64_t kx = 0; kx < KW; ++kx) {
            const int64_t ix = ox * sw - pw + kx * dw;
            if (ix < 0 || ix >= W) continue;
            best = std::max(best, xc[iy * W + ix]);
          }
        }
        yc[oy * OW + ox] = best;
      }
  }
}

OpKernel maxpool_kernel() {
  OpKernel k;
  k.op_type = "MaxPool";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    DType dt = in[0].info.dtype;
    if (!pool_dtype_ok(dt))
      fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dt) + " is not supported");
    if (!known(in[0])) {
      check_maxpool(ctx, Shape(4));
      return std::vector<ValueInfo>{info_unknown_shape(dt)};
    }
    return std::vector<ValueInfo>{info_of(dt, maxpool_out_shape(ctx, in[0].info.shape, nullptr))};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    const Tensor& x = in[0];
    if (!pool_dtype_ok(x.dtype()))
      fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(x.dtype()) + " is not supported");
    Window w;
    Tensor y(x.dtype(), maxpool_out_shape(ctx, x.shape(), &w));
    switch (x.dtype()) {
      case DType::kFloat32: maxpool_compute<float>(x, y, w); break;
      case DType::kFloat64: maxpool_compute<double>(x, y, w); break;
      case DType::kInt8: maxpool_compute<int8_t>(x, y, w); break;
      default: maxpool_compute<uint8_t>(x, y, w); break;
    }
    return std::vector<Tensor>{y};
  };
  return k;
}

// ---- Resize -----------------------------------------------------------------

struct ResizeParams {
  std::string mode, coord, nearest_mode;
  float extrapolation = 0;
  std::vector<double> scales;  // per axis, as used by the coordinate transform
  std::vector<double> roi;     // 2*rank, only for tf_crop_and_resize
  Shape out;
};

void check_resize_attrs(const OpContext& ctx, const ResizeParams& p) {
  if (p.mode != "nearest" && p.mode != "linear")
    fail(ctx, ErrorCode::kUnsupported, "mode '" + p.mode + "' is not supported (nearest and linear are)");
  static const char* kCoords[] = {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
                                  "tf_half_pixel_for_nearest", "tf_crop_and_resize"};
  if (std::find(std::begin(kCoords), std::end(kCoords), p.coord) == std::end(kCoords))
    fail(ctx, ErrorCode::kUnsupported, "coordinate_transformation_mode '" + p.coord + "' is not supported");
  static const char* kNearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple"};
  if (std::find(std::begin(kNearest), std::end(kNearest), p.nearest_mode) == std::end(kNearest))
    fail(ctx, ErrorCode::kUnsupported, "nearest_mode '" + p.nearest_mode + "' is not supported");
}

ResizeParams resize_attrs(const OpContext& ctx) {
  ResizeParams p;
  const Node& n = ctx.node;
  p.mode = n.attr_s("mode", "nearest");
  if (ctx.opset < 11) {
    // Resize-10 had no transformation attributes: it behaves like Upsample,
    // i.e. asymmetric coordinates, and nearest picks floor when enlarging.
    p.coord = "asymmetric";
    p.nearest_mode = "simple";
  } else {
    p.coord = n.attr_s("coordinate_transformation_mode", "half_pixel");
    // ONNX's own 1.12 test data (and ONNX Runtime) spell it this way too.
    if (p.coord == "tf_half_pixel_for_nn") p.coord = "tf_half_pixel_for_nearest";
    p.nearest_mode = n.attr_s("nearest_mode", "round_prefer_floor");
    p.extrapolation = n.attr_f("extrapolation_value", 0.0f);
  }
  check_resize_attrs(ctx, p);
  return p;
}

// Output dims at or past this (2^63, as a double) cannot be represented.
constexpr double kMaxResizeDim = 9223372036854775808.0;

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

std::vector<double> floats_of(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) {
    switch (t.dtype()) {
      case DType::kFloat32: v[i] = t.data<float>()[i]; break;
      case DType::kFloat64: v[i] = t.data<double>()[i]; break;
      case DType::kInt64: v[i] = static_cast<double>(t.data<int64_t>()[i]); break;
      case DType::kInt32: v[i] = t.data<int32_t>()[i]; break;
      default: throw Error(ErrorCode::kInvalidArgument, std::string("expected numbers, got ") + dtype_name(t.dtype()));
    }
  }
  return v;
}

// Input coordinate of output coordinate x along one axis.
double resize_coord(const ResizeParams& p, size_t axis, int64_t x, int64_t in, int64_t out) {
  const double scale = p.scales[axis];
  const double xd = static_cast<double>(x);
  if (p.coord == "asymmetric") return xd / scale;
  if (p.coord == "half_pixel") return (xd + 0.5) / scale - 0.5;
  if (p.coord == "pytorch_half_pixel") return out > 1 ? (xd + 0.5) / scale - 0.5 : 0.0;
  if (p.coord == "tf_half_pixel_for_nearest") return (xd + 0.5) / scale;
  if (p.coord == "align_corners") {
    // ONNX's reference uses the unrounded output length in_len * scale here.
    const double out_len = static_cast<double>(in) * scale;
    return out_len == 1 ? 0.0 : xd * static_cast<double>(in - 1) / (out_len - 1);
  }
  // tf_crop_and_resize
  const size_t r = p.roi.size() / 2;
  const double start = p.roi[axis], end = p.roi[axis + r];
  const double len = static_cast<double>(in - 1);
  if (out == 1) return (end - start) * len / 2 + start * len;
  return xd * (end - start) * len / static_cast<double>(out - 1) + start * len;
}

int64_t nearest_index(const ResizeParams& p, double c, double scale, int64_t in) {
  int64_t i;
  const double f = std::floor(c);
  if (p.nearest_mode == "floor") i = static_cast<int64_t>(f);
  else if (p.nearest_mode == "ceil") i = static_cast<int64_t>(std::ceil(c));
  else if (p.nearest_mode == "round_prefer_ceil") i = static_cast<int64_t>(c - f == 0.5 ? f + 1 : std::round(c));
  else if (p.nearest_mode == "round_prefer_floor") i = static_cast<int64_t>(c - f == 0.5 ? f : std::round(c));
  else i = static_cast<int64_t>(scale < 1 ? std::ceil(c) : f);  // "simple" (Resize-10 / Upsample)
  return std::clamp<int64_t>(i, 0, in - 1);
}

// Per axis and output coordinate: up to two source indices and weights, with
// index -1 meaning "outside the crop": use the extrapolation value.
struct AxisTaps {
  std::vector<int64_t> i0, i1;
  std::vector<double> w1;  // weight of i1; i0 gets 1 - w1
};

AxisTaps axis_taps(const ResizeParams& p, size_t axis, int64_t in, int64_t out) {
  AxisTaps t;
  for (int64_t x = 0; x < out; ++x) {
    double c = resize_coord(p, axis, x, in, out);
    if (p.coord == "tf_crop_and_resize" && (c < 0 || c > static_cast<double>(in - 1))) {
      t.i0.push_back(-1);
      t.i1.push_back(-1);
      t.w1.push_back(0);
      continue;
    }
    if (p.mode == "nearest") {
      int64_t i = nearest_index(p, c, p.scales[axis], in);
      t.i0.push_back(i);
      t.i1.push_back(i);
      t.w1.push_back(0);
    } else {
      // Linear: edge-clamped neighbours, as the ONNX reference's edge padding does.
      c = std::clamp(c, 0.0, static_cast<double>(in - 1));
      int64_t i0 = static_cast<int64_t>(std::floor(c));
      int64_t i1 = std::min<int64_t>(i0 + 1, in - 1);
      t.i0.push_back(i0);
      t.i1.push_back(i1);
      t.w1.push_back(c - static_cast<double>(i0));
    }
  }
  return t;
}

template <class T>
void resize_compute(const Tensor& x, Tensor& y, const ResizeParams& p) {
  const Shape& is = x.shape();
  const Shape& os = y.shape();
  const size_t r = is.size();
  std::vector<AxisTaps> taps;
  for (size_t a = 0; a < r; ++a) taps.push_back(axis_taps(p, a, is[a], os[a]));
  auto st = strides_of(is);
  const T* px = x.data<T>();
  T* py = y.data<T>();
  const int64_t n = y.numel();
  std::vector<int64_t> idx(r, 0);
  size_t active[16];  // axes whose tap has a fractional weight at this element
  for (int64_t e = 0; e < n; ++e) {
    // Sum over the corners of the interpolation cell, spanned only by the
    // axes with a fractional weight here: nearest and unscaled axes add no
    // corner, so nearest costs O(rank) per element, not O(2^rank) (a rank-16
    // nearest Resize of a hostile model would otherwise take 65536 steps an
    // element; resize_taps_or_throw bounds the linear case).
    bool outside = false;
    int64_t base = 0;
    size_t k = 0;
    for (size_t a = 0; a < r; ++a) {
      const int64_t i0 = taps[a].i0[idx[a]];
      if (i0 < 0) outside = true;
      base += i0 * st[a];
      if (taps[a].w1[idx[a]] != 0) active[k++] = a;
    }
    if (outside) {
      py[e] = static_cast<T>(p.extrapolation);
    } else {
      double acc = 0;
      const uint64_t corners = uint64_t{1} << k;
      for (uint64_t cmask = 0; cmask < corners; ++cmask) {
        double wgt = 1;
        int64_t off = base;
        for (size_t j = 0; j < k; ++j) {
          const size_t a = active[j];
          const double w1 = taps[a].w1[idx[a]];
          if ((cmask >> j) & 1u) {
            wgt *= w1;
            off += (taps[a].i1[idx[a]] - taps[a].i0[idx[a]]) * st[a];
          } else {
            wgt *= 1 - w1;
          }
        }
        if (wgt != 0) acc += wgt * static_cast<double>(px[off]);
      }
      py[e] = static_cast<T>(acc);
    }
    for (int64_t a = static_cast<int64_t>(r) - 1; a >= 0; --a) {
      if (++idx[a] < os[a]) break;
      idx[a] = 0;
    }
  }
}

OpKernel resize_kernel() {
  OpKernel k;
  k.op_type = "Resize";
  k.min_opset = 10;
  k.max_opset = 17;  // opset 18 adds antialias / axes / keep_aspect_ratio_policy
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 2);
    DType dt = in[0].info.dtype;
    if (!is_numeric(dt)) fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dt) + " is not supported");
    ResizeParams p = resize_attrs(ctx);
    if (!known(in[0]) || !all_dims_known(in[0].info.shape)) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    if (in[0].info.shape.size() > 16) fail(ctx, ErrorCode::kUnsupported, "rank above 16 is not supported");
    bool ok = resize_sizes(ctx, in[0].info.shape, p, [&](size_t i) -> std::optional<std::vector<double>> {
      const InferInput* ii = opt_input(in, i);
      if (!ii) return std::vector<double>{};
      if (!ii->value) {
        // A non-constant input known to be empty is as good as absent.
        if (ii->info.has_shape && all_dims_known(ii->info.shape) && shape_numel(ii->info.shape) == 0)
          return std::vector<double>{};
        return std::nullopt;
      }
      return floats_of(*ii->value);
    });
    if (!ok) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    return std::vector<ValueInfo>{info_of(dt, p.out)};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 2);
    const Tensor& x = in[0];
    ResizeParams p = resize_attrs(ctx);
    if (x.rank() > 16) fail(ctx, ErrorCode::kUnsupported, "rank above 16 is not supported");
    resize_sizes(ctx, x.shape(), p, [&](size_t i) -> std::optional<std::vector<double>> {
      const Tensor* t = opt_tensor(in, i);
      return t ? floats_of(*t) : std::vector<double>{};
    });
    if (!is_numeric(x.dtype()))
      fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(x.dtype()) + " is not supported");
    if (!checked::nbytes(p.out, x.dtype()))
      fail(ctx, ErrorCode::kOutOfRange, "output shape " + shape_to_string(p.out) + " has more than 2^63 - 1 bytes");
    // Linear interpolation reads 2^(axes interpolated) inputs per output
    // element: a model resizing many axes at once is a CPU-time bomb (rank
    // 16, 3^16 outputs: ~3e12 reads). Refused before any work.
    if (p.mode != "nearest") {
      int interpolated = 0;
      for (size_t a = 0; a < p.out.size(); ++a)
        if (p.out[a] != x.dim(static_cast<int>(a)) || p.scales[a] != 1.0) ++interpolated;
      const auto elems = checked::numel(p.out);
      constexpr double kMaxReads = 1ull << 34;  // ~10-60 s of this scalar kernel
      if (elems && static_cast<double>(*elems) * std::ldexp(1.0, interpolated) > kMaxReads)
        fail(ctx, ErrorCode::kOutOfRange,
             "output " + shape_to_string(p.out) + " interpolated along " + std::to_string(interpolated) +
                 " axes needs more than 2^34 input reads; refused");
    }
    Tensor y(x.dtype(), p.out);
    // An empty output needs no taps, however long its other axes are.
    if (y.numel() == 0) return std::vector<Tensor>{y};
    bool ok = visit_numeric(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      resize_compute<T>(x, y, p);
    });
    if (!ok) fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(x.dtype()) + " is not supported");
    return std::vector<Tensor>{y};
  };
  return k;
}

// ---- Softmax ----------------------------------------------------------------

OpKernel softmax_kernel() {
  OpKernel k;
  k.op_type = "Softmax";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    require_float(ctx, in[0].info.dtype);
    if (known(in[0])) {
      int64_t rank = static_cast<int64_t>(in[0].info.shape.size());
      normalize_axis(ctx, ctx.node.attr_i("axis", ctx.opset < 13 ? 1 : -1), std::max<int64_t>(rank, 1));
    }
    return std::vector<ValueInfo>{in[0].info};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    const Tensor& x = in[0];
    require_float(ctx, x.dtype());
    const Shape& s = x.shape();
    const int64_t rank = static_cast<int64_t>(s.size());
    // Opset < 13 flattens to 2-D at `axis` (default 1) and normalises each row;
    // opset 13+ normalises along the single axis (default -1).
    const int64_t axis = normalize_axis(ctx, ctx.node.attr_i("axis", ctx.opset < 13 ? 1 : -1), std::max<int64_t>(rank, 1));
    int64_t outer = 1, len = 1, inner = 1;
    for (int64_t i = 0; i < rank; ++i) {
      if (i < axis) outer *= s[i];
      else if (ctx.opset < 13 || i == axis) len *= s[i];
      else inner *= s[i];
    }
    Tensor y(x.dtype(), s);
    visit_float(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* px = x.data<T>();
      T* py = y.data<T>();
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          const T* xs = px + o * len * inner + i;
          T* ys = py + o * len * inner + i;
          T mx = -std::numeric_limits<T>::infinity();
          for (int64_t j = 0; j < len; ++j) mx = std::max(mx, xs[j * inner]);
          double sum = 0;
          for (int64_t j = 0; j < len; ++j) {
            T e = std::exp(xs[j * inner] - mx);  // max subtracted: no overflow
            ys[j * inner] = e;
            sum += e;
          }
          for (int64_t j = 0; j < len; ++j) ys[j * inner] = static_cast<T>(ys[j * inner] / sum);
        }
    });
    return std::vector<Tensor>{y};
  };
  return k;
}

// ---- MatMul -----------------------------------------------------------------

bool matmul_dtype_ok(DType dt) {
  return is_float(dt) || dt == DType::kInt32 || dt == DType::kInt64 || dt == DType::kUInt32 || dt == DType::kUInt64;
}

// numpy.matmul shapes: 1-D operands gain a unit axis that is removed again.
Shape matmul_shape(const OpContext& ctx, Shape a, Shape b) {
  if (a.empty() || b.empty()) fail(ctx, ErrorCode::kInvalidArgument, "operands must have rank >= 1");
  const bool a1 = a.size() == 1, b1 = b.size() == 1;
  if (a1) a.insert(a.begin(), 1);
  if (b1) b.push_back(1);
  const int64_t K = a.back();
  if (K >= 0 && b[b.size() - 2] >= 0 && K != b[b.size() - 2])
    fail(ctx, ErrorCode::kInvalidArgument, "inner dimensions differ: " + shape_to_string(a) + " x " + shape_to_string(b));
  Shape batch = broadcast_shapes(ctx, Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2));
  Shape out = batch;
  if (!a1) out.push_back(a[a.size() - 2]);
  if (!b1) out.push_back(b.back());
  return out;
}

template <class T>
void matmul_compute(const Tensor& ta, const Tensor& tb, Tensor& y) {
  Shape a = ta.shape(), b = tb.shape();
  if (a.size() == 1) a.insert(a.begin(), 1);
  if (b.size() == 1) b.push_back(1);
  const int64_t M = a[a.size() - 2], K = a.back(), N = b.back();
  Shape as(a.begin(), a.end() - 2), bs(b.begin(), b.end() - 2);
  // Broadcast batch index -> per-operand batch offsets via broadcast strides.
  size_t brank = std::max(as.size(), bs.size());
  Shape bshape(brank);
  for (size_t i = 0; i < brank; ++i) {
    int64_t da = i < brank - as.size() ? 1 : as[i - (brank - as.size())];
    int64_t db = i < brank - bs.size() ? 1 : bs[i - (brank - bs.size())];
    bshape[i] = std::max(da, db);
  }
  auto sa = broadcast_strides(as, bshape);
  auto sb = broadcast_strides(bs, bshape);
  const int64_t nbatch = shape_numel(bshape);
  const T* pa = ta.data<T>();
  const T* pb = tb.data<T>();
  T* py = y.data<T>();
  std::vector<int64_t> idx(brank, 0);
  for (int64_t bi = 0; bi < nbatch; ++bi) {
    int64_t oa = 0, ob = 0;
    for (size_t d = 0; d < brank; ++d) {
      oa += idx[d] * sa[d];
      ob += idx[d] * sb[d];
    }
    const T* A = pa + oa * M * K;
    const T* B = pb + ob * K * N;
    T* C = py + bi * M * N;
    for (int64_t i = 0; i < M; ++i) {
      T* crow = C + i * N;
      for (int64_t j = 0; j < N; ++j) crow[j] = T(0);
      for (int64_t kk = 0; kk < K; ++kk) {
        const T av = A[i * K + kk];
        const T* brow = B + kk * N;
        for (int64_t j = 0; j < N; ++j) crow[j] += av * brow[j];
      }
    }
    for (int64_t d = static_cast<int64_t>(brank) - 1; d >= 0; --d) {
      if (++idx[d] < bshape[d]) break;
      idx[d] = 0;
    }
  }
}

OpKernel matmul_kernel() {
  OpKernel k;
  k.op_type = "MatMul";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 2);
    DType dt = in[0].info.dtype;
    if (!matmul_dtype_ok(dt)) fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dt) + " is not supported");
    if (in[1].info.dtype != dt) fail(ctx, ErrorCode::kInvalidArgument, "operand dtypes differ");
    if (!known(in[0]) || !known(in[1])) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    return std::vector<ValueInfo>{info_of(dt, matmul_shape(ctx, in[0].info.shape, in[1].info.shape))};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 2);
    const Tensor& a = in[0];
    const Tensor& b = in[1];
    if (!matmul_dtype_ok(a.dtype()))
      fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(a.dtype()) + " is not supported");
    if (b.dtype() != a.dtype()) fail(ctx, ErrorCode::kInvalidArgument, "operand dtypes differ");
    Tensor y(a.dtype(), matmul_shape(ctx, a.shape(), b.shape()));
    visit_numeric(a.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      matmul_compute<T>(a, b, y);
    });
    return std::vector<Tensor>{y};
  };
  return k;
}

// ---- reductions -------------------------------------------------------------

enum class Reduce { kSum, kMax, kMean };

// Axes from the attribute, or (ReduceSum opset 13+) from input 1.
// nullopt when the axes input is not a load-time constant.
std::optional<std::vector<int64_t>> reduce_axes_infer(const OpContext& ctx, Reduce kind, const std::vector<InferInput>& in) {
  if (kind == Reduce::kSum && ctx.opset >= 13) {
    const InferInput* a = opt_input(in, 1);
    if (!a) return std::vector<int64_t>{};
    if (!a->value) {
      if (a->info.has_shape && all_dims_known(a->info.shape) && shape_numel(a->info.shape) == 0)
        return std::vector<int64_t>{};
      return std::nullopt;
    }
    return to_int64_vector(*a->value);
  }
  return ctx.node.attr_ints("axes");
}

std::vector<int64_t> reduce_axes(const OpContext& ctx, Reduce kind, const std::vector<Tensor>& in) {
  if (kind == Reduce::kSum && ctx.opset >= 13) {
    const Tensor* a = opt_tensor(in, 1);
    return a ? to_int64_vector(*a) : std::vector<int64_t>{};
  }
  return ctx.node.attr_ints("axes");
}

// Which axes are reduced; all of them for empty axes unless noop_with_empty_axes.
std::vector<bool> reduced_mask(const OpContext& ctx, Reduce kind, const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<bool> mask(rank, false);
  if (axes.empty()) {
    const bool noop = kind == Reduce::kSum && ctx.opset >= 13 && ctx.node.attr_i("noop_with_empty_axes", 0) != 0;
    if (!noop) mask.assign(rank, true);
    return mask;
  }
  for (int64_t a : axes) mask[normalize_axis(ctx, a, rank)] = true;
  return mask;
}

Shape reduced_shape(const Shape& s, const std::vector<bool>& mask, bool keepdims) {
  Shape out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!mask[i]) out.push_back(s[i]);
    else if (keepdims) out.push_back(1);
  }
  return out;
}

template <class T>
void reduce_compute(Reduce kind, const Tensor& x, const std::vector<bool>& mask, Tensor& y) {
  const Shape& s = x.shape();
  const size_t r = s.size();
  // Accumulate in double for floats (ints in int64/uint64) so the oracle is
  // at least as accurate as the kernels it checks.
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double,
                                 std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;
  const int64_t on = y.numel();
  std::vector<Acc> acc(static_cast<size_t>(on), kind == Reduce::kMax ? static_cast<Acc>(std::numeric_limits<T>::lowest()) : Acc(0));
  if constexpr (std::is_floating_point_v<T>)
    if (kind == Reduce::kMax) std::fill(acc.begin(), acc.end(), -std::numeric_limits<double>::infinity());
  // Output strides over the input's axes (0 on reduced axes).
  Shape kept = reduced_shape(s, mask, true);
  auto ost = strides_of(kept);
  for (size_t i = 0; i < r; ++i)
    if (mask[i]) ost[i] = 0;
  const T* px = x.data<T>();
  const int64_t n = x.numel();
  std::vector<int64_t> idx(r, 0);
  int64_t off = 0;
  for (int64_t e = 0; e < n; ++e) {
    const Acc v = static_cast<Acc>(px[e]);
    if (kind == Reduce::kMax) {
      // NaN propagates, as numpy's max does.
      if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(v) || v > acc[off]) acc[off] = v;
      } else {
        acc[off] = std::max(acc[off], v);
      }
    } else {
      acc[off] += v;
    }
    for (int64_t d = static_cast<int64_t>(r) - 1; d >= 0; --d) {
      off += ost[d];
      if (++idx[d] < s[d]) break;
      off -= ost[d] * s[d];
      idx[d] = 0;
    }
  }
  int64_t count = 1;
  for (size_t i = 0; i < r; ++i)
    if (mask[i]) count *= s[i];
  T* py = y.data<T>();
  for (int64_t i = 0; i < on; ++i)
    py[i] = static_cast<T>(kind == Reduce::kMean ? acc[i] / static_cast<Acc>(count) : acc[i]);
}

OpKernel reduce_kernel(const char* name, Reduce kind) {
  OpKernel k;
  k.op_type = name;
  k.max_opset = 17;  // opset 18 moves every reduction's axes to an input
  k.infer = [kind](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    DType dt = in[0].info.dtype;
    bool ok = kind == Reduce::kMax ? (is_numeric(dt)) : (is_float(dt) || dt == DType::kInt32 || dt == DType::kInt64 ||
                                                          dt == DType::kUInt32 || dt == DType::kUInt64);
    if (!ok) fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dt) + " is not supported");
    auto axes = reduce_axes_infer(ctx, kind, in);
    if (!axes || !known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    const Shape& s = in[0].info.shape;
    auto mask = reduced_mask(ctx, kind, *axes, static_cast<int64_t>(s.size()));
    return std::vector<ValueInfo>{info_of(dt, reduced_shape(s, mask, ctx.node.attr_i("keepdims", 1) != 0))};
  };
  k.compute = [kind](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    const Tensor& x = in[0];
    auto mask = reduced_mask(ctx, kind, reduce_axes(ctx, kind, in), static_cast<int64_t>(x.rank()));
    if (kind != Reduce::kSum)
      for (size_t i = 0; i < x.rank(); ++i)
        if (mask[i] && x.dim(i) == 0)
          fail(ctx, ErrorCode::kInvalidArgument, "cannot take the max/mean over an empty axis");
    Tensor y(x.dtype(), reduced_shape(x.shape(), mask, ctx.node.attr_i("keepdims", 1) != 0));
    bool ok = visit_numeric(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      reduce_compute<T>(kind, x, mask, y);
    });
    if (!ok) fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(x.dtype()) + " is not supported");
    return std::vector<Tensor>{y};
  };
  return k;
}

}  // namespace

void register_nn_kernels() {
  register_kernel(conv_kernel());
  register_kernel(batchnorm_kernel());
  register_kernel(maxpool_kernel());
  register_kernel(resize_kernel());
  register_kernel(softmax_kernel());
  register_kernel(matmul_kernel());
  register_kernel(reduce_kernel("ReduceSum", Reduce::kSum));
  register_kernel(reduce_kernel("ReduceMax", Reduce::kMax));
  register_kernel(reduce_kernel("ReduceMean", Reduce::kMean));
}

}  // namespace damoyolo::kernels::ref
