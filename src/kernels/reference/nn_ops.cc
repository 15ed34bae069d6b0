// Reference neural-network kernels: Conv, BatchNormalization, MaxPool, Resize,
// Softmax, MatMul and the reductions ReduceSum / ReduceMax / ReduceMean.
//
// Plain loops throughout. The one concession to speed is Conv's loop order
// (output channel → output row → input channel → kernel tap → contiguous run
// of output pixels), which keeps the output row in L1 and lets the compiler
// vectorise the innermost loop, so a whole DAMO-YOLO-T (18 GFLOP) runs in
// seconds rather than minutes when this engine is used as the oracle.
//
// The geometry (window sizes and padding, Resize's scales, reduction axes) is
// the ops' schemas' (graph/ops/nn_ops.h), shared with shape inference.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>

#include "common/checked_size.h"
#include "graph/ops/nn_ops.h"
#include "kernels/reference/kernel_util.h"
#include "kernels/reference/registry.h"

namespace damoyolo::kernels::ref {
namespace {

using namespace util;

// The [first, last) output positions whose input coordinate o*s + off stays in [0, in).
std::pair<int64_t, int64_t> valid_range(int64_t off, int64_t s, int64_t in, int64_t out) {
  int64_t first = std::max<int64_t>(0, ceil_div(-off, s));
  int64_t last = std::min<int64_t>(out, floor_div(in - 1 - off, s) + 1);
  return {first, std::max(first, last)};
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
  [[maybe_unused]] const int64_t macs = total * c.OH * c.OW * Cg * c.KH * c.KW;  // read by the pragma only
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

OpKernel batchnorm_kernel() {
  OpKernel k;
  k.op_type = "BatchNormalization";
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

std::vector<int64_t> reduce_axes(const OpContext& ctx, Reduce kind, const std::vector<Tensor>& in) {
  if (kind == Reduce::kSum && ctx.opset >= 13) {
    const Tensor* a = opt_tensor(in, 1);
    return a ? to_int64_vector(*a) : std::vector<int64_t>{};
  }
  return ctx.node.attr_ints("axes");
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
