// Reference QuantizeLinear and DequantizeLinear (ai.onnx 10 and 13): the
// oracle the INT8 oneDNN path will be tested against, so written for exact
// agreement with the spec rather than speed.
//
//   QuantizeLinear    y = saturate(round_half_even(x / y_scale) + y_zero_point)
//   DequantizeLinear  y = (x - x_zero_point) * x_scale
//
// per tensor (a one-element scale) or per axis (a 1-D scale along `axis`,
// opset 13). The dtype/shape rules and the scale checks are the schema's
// (graph/ops/quantize.h), called again here on the concrete tensors because a
// scale or zero point that is a runtime input is only seen now.
#include <cmath>
#include <limits>
#include <type_traits>

#include "graph/ops/quantize.h"
#include "kernels/reference/kernel_util.h"
#include "kernels/reference/registry.h"

namespace damoyolo::kernels::ref {
namespace {

using namespace util;

// Elements of x per step along the quantisation axis (product of the dims
// after it): channel of flat index i is (i / inner) % channels.
int64_t inner_size(const Shape& s, const graph::ops::QuantAxis& qa) {
  int64_t inner = 1;
  if (qa.per_axis)
    for (size_t d = static_cast<size_t>(qa.axis) + 1; d < s.size(); ++d) inner *= s[d];
  return inner;
}

struct Params {
  graph::ops::QuantAxis qa;
  std::vector<float> scale;
  std::vector<int64_t> zero_point;  // one per scale entry; zeros when omitted
};

Params read_params(const OpContext& ctx, const std::vector<Tensor>& in, bool quantize) {
  require_inputs(ctx, in.size(), 2);
  if (!in[0].defined() || !in[1].defined())
    fail(ctx, ErrorCode::kInvalidArgument, "x and its scale are required inputs");
  const Tensor* zp = opt_tensor(in, 2);
  const DType zp_dtype = zp ? zp->dtype() : DType::kUndefined;
  Params p;
  p.qa = graph::ops::check_quant_params(ctx, quantize, in[0].dtype(), in[0].shape(), true, in[1].dtype(),
                                        in[1].shape(), zp ? &zp_dtype : nullptr, zp ? &zp->shape() : nullptr);
  p.scale = to_float_vector(in[1]);
  graph::ops::check_scale_values(ctx, quantize, p.scale);
  if (zp) {
    if (zp->dtype() == DType::kInt32) graph::ops::check_int32_zero_point(ctx, *zp);
    p.zero_point = to_int64_vector(*zp);
  } else {
    p.zero_point.assign(p.scale.size(), 0);
  }
  return p;
}

template <class Q, class X>
void quantize_loop(const Tensor& x, const Params& p, Tensor& y) {
  const X* px = x.data<X>();
  Q* py = y.data<Q>();
  const int64_t n = x.numel();
  const int64_t inner = inner_size(x.shape(), p.qa);
  const double lo = std::numeric_limits<Q>::lowest(), hi = std::numeric_limits<Q>::max();
  for (int64_t i = 0; i < n; ++i) {
    const size_t c = p.qa.per_axis ? static_cast<size_t>((i / inner) % p.qa.channels) : 0;
    // float / float, as ONNX Runtime and the spec's numpy reference divide a
    // float32 x; an int32 x is divided in double so that no digit above 2^24
    // is lost before the division.
    double q;
    if constexpr (std::is_same_v<X, float>) q = static_cast<double>(px[i] / p.scale[c]);
    else q = static_cast<double>(px[i]) / static_cast<double>(p.scale[c]);
    // A NaN quantises as 0.0 would (the zero point): a defined answer where
    // the spec gives none.
    double r = std::isnan(q) ? 0.0 : std::nearbyint(q);  // the default mode rounds half to even
    r += static_cast<double>(p.zero_point[c]);
    py[i] = static_cast<Q>(r < lo ? lo : (r > hi ? hi : r));
  }
}

template <class X>
void dequantize_loop(const Tensor& x, const Params& p, Tensor& y) {
  const X* px = x.data<X>();
  float* py = y.data<float>();
  const int64_t n = x.numel();
  const int64_t inner = inner_size(x.shape(), p.qa);
  for (int64_t i = 0; i < n; ++i) {
    const size_t c = p.qa.per_axis ? static_cast<size_t>((i / inner) % p.qa.channels) : 0;
    // The difference in int64 (exact for every type), then one float
    // multiply, as ONNX Runtime computes it.
    const int64_t d = static_cast<int64_t>(px[i]) - p.zero_point[c];
    py[i] = static_cast<float>(d) * p.scale[c];
  }
}

OpKernel quantize_kernel() {
  OpKernel k;
  k.op_type = "QuantizeLinear";
  k.min_opset = 10;
  k.max_opset = 17;
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    const Params p = read_params(ctx, in, true);
    const Tensor& x = in[0];
    const Tensor* zp = opt_tensor(in, 2);
    // No zero point: uint8 output with zero point 0 (the spec's default).
    const DType out = zp ? zp->dtype() : DType::kUInt8;
    Tensor y(out, x.shape());
    auto with_x = [&](auto q_tag) {
      using Q = typename decltype(q_tag)::type;
      if (x.dtype() == DType::kFloat32) quantize_loop<Q, float>(x, p, y);
      else quantize_loop<Q, int32_t>(x, p, y);
    };
    if (out == DType::kUInt8) with_x(Tag<uint8_t>{});
    else with_x(Tag<int8_t>{});
    return std::vector<Tensor>{y};
  };
  return k;
}

OpKernel dequantize_kernel() {
  OpKernel k;
  k.op_type = "DequantizeLinear";
  k.min_opset = 10;
  k.max_opset = 17;
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    const Params p = read_params(ctx, in, false);
    const Tensor& x = in[0];
    Tensor y(DType::kFloat32, x.shape());
    switch (x.dtype()) {
      case DType::kUInt8: dequantize_loop<uint8_t>(x, p, y); break;
      case DType::kInt8: dequantize_loop<int8_t>(x, p, y); break;
      default: dequantize_loop<int32_t>(x, p, y); break;  // check_quant_params allowed only these three
    }
    return std::vector<Tensor>{y};
  };
  return k;
}

}  // namespace

void register_quantize_kernels() {
  register_kernel(quantize_kernel());
  register_kernel(dequantize_kernel());
}

}  // namespace damoyolo::kernels::ref
