// Reference elementwise kernels: the numpy-broadcasting binary ops, the
// pointwise activations, Clip and Cast.
//
// Every kernel reads its inputs through explicit strides (0 on a broadcast
// axis), so one loop covers every broadcasting case; the only fast path is the
// equal-shape case, because SiLU's Mul and the residual Adds of a full model
// run through here when the reference engine executes it.
//
// Their shape and dtype rules are the ops' schemas' (graph/ops/elementwise.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "graph/ops/elementwise.h"
#include "kernels/reference/kernel_util.h"
#include "kernels/reference/registry.h"

namespace damoyolo::kernels::ref {
namespace {

using namespace util;

// ---- broadcasting binary loop ---------------------------------------------

// out[i] = op(a[ia], b[ib]) over the broadcast of a and b into out.shape().
template <class TA, class TB, class TO, class Op>
void broadcast_binary(const Tensor& a, const Tensor& b, Tensor& out, Op op) {
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  TO* po = out.data<TO>();
  const int64_t n = out.numel();
  if (n == 0) return;
  if (a.shape() == b.shape()) {
    for (int64_t i = 0; i < n; ++i) po[i] = op(pa[i], pb[i]);
    return;
  }
  const Shape& os = out.shape();
  const size_t rank = os.size();
  if (rank == 0) {
    po[0] = op(pa[0], pb[0]);
    return;
  }
  std::vector<int64_t> sa = broadcast_strides(a.shape(), os);
  std::vector<int64_t> sb = broadcast_strides(b.shape(), os);
  // Walk rows of the last axis; the counter over the outer axes carries the
  // input offsets along so no index is recomputed from scratch.
  const int64_t inner = os.back();
  const int64_t sa_in = sa.back(), sb_in = sb.back();
  const int64_t outer = n / inner;
  std::vector<int64_t> idx(rank, 0);
  int64_t oa = 0, ob = 0;
  for (int64_t o = 0; o < outer; ++o) {
    TO* row = po + o * inner;
    for (int64_t i = 0; i < inner; ++i) row[i] = op(pa[oa + i * sa_in], pb[ob + i * sb_in]);
    for (int64_t d = static_cast<int64_t>(rank) - 2; d >= 0; --d) {
      ++idx[d];
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < os[d]) break;
      oa -= sa[d] * os[d];
      ob -= sb[d] * os[d];
      idx[d] = 0;
    }
  }
}

template <class T>
void integer_div(const OpContext& ctx, const Tensor& a, const Tensor& b, Tensor& out) {
  // C++ integer division traps (SIGFPE) on x/0 and INT_MIN/-1; input must never
  // crash the process, so those are reported as errors instead.
  const T* pb = b.data<T>();
  for (int64_t i = 0; i < b.numel(); ++i) {
    if (pb[i] == 0) fail(ctx, ErrorCode::kInvalidArgument, "integer division by zero");
    if constexpr (std::is_signed_v<T>) {
      if (pb[i] == T(-1)) {
        const T* pa = a.data<T>();
        for (int64_t j = 0; j < a.numel(); ++j)
          if (pa[j] == std::numeric_limits<T>::min())
            fail(ctx, ErrorCode::kInvalidArgument, "integer division overflow (minimum value / -1)");
      }
    }
  }
  broadcast_binary<T, T, T>(a, b, out, [](T x, T y) { return static_cast<T>(x / y); });  // truncates toward zero, like C
}

OpKernel arith_kernel(Arith kind) {
  OpKernel k;
  k.op_type = arith_name(kind);
  k.min_opset = 7;  // opsets 1-6 used the legacy broadcast/axis attributes
  k.max_opset = 17;
  k.compute = [kind](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 2);
    check_same_numeric(ctx, in[0].dtype(), in[1].dtype());
    Tensor out(in[0].dtype(), broadcast_shapes(ctx, in[0].shape(), in[1].shape()));
    visit_numeric(in[0].dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      switch (kind) {
        case Arith::kAdd: broadcast_binary<T, T, T>(in[0], in[1], out, [](T x, T y) { return static_cast<T>(x + y); }); break;
        case Arith::kSub: broadcast_binary<T, T, T>(in[0], in[1], out, [](T x, T y) { return static_cast<T>(x - y); }); break;
        case Arith::kMul: broadcast_binary<T, T, T>(in[0], in[1], out, [](T x, T y) { return static_cast<T>(x * y); }); break;
        case Arith::kDiv:
          if constexpr (std::is_floating_point_v<T>)
            broadcast_binary<T, T, T>(in[0], in[1], out, [](T x, T y) { return x / y; });
          else
            integer_div<T>(ctx, in[0], in[1], out);
          break;
      }
    });
    return std::vector<Tensor>{out};
  };
  return k;
}

// Pow's exponent may have a different dtype than its base (opset 12+); the
// result has the base's dtype. Computed in double, which is exact for every
// integer case small enough not to overflow.
OpKernel pow_kernel() {
  OpKernel k;
  k.op_type = "Pow";
  k.min_opset = 7;
  k.max_opset = 17;
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 2);
    Tensor out(in[0].dtype(), broadcast_shapes(ctx, in[0].shape(), in[1].shape()));
    bool ok = visit_numeric(in[0].dtype(), [&](auto ta) {
      using TA = typename decltype(ta)::type;
      bool ok2 = visit_numeric(in[1].dtype(), [&](auto tb) {
        using TB = typename decltype(tb)::type;
        broadcast_binary<TA, TB, TA>(in[0], in[1], out, [](TA x, TB y) {
          return static_cast<TA>(std::pow(static_cast<double>(x), static_cast<double>(y)));
        });
      });
      if (!ok2) fail(ctx, ErrorCode::kUnsupported, std::string("exponent dtype ") + dtype_name(in[1].dtype()));
    });
    if (!ok) fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(in[0].dtype()) + " is not supported");
    return std::vector<Tensor>{out};
  };
  return k;
}

// `make_fn(node)` returns a generic lambda applied per element; it is built
// once per call so attribute reads (LeakyRelu's alpha) stay out of the loop.
template <class MakeFn>
OpKernel unary_kernel(const char* name, int min_opset, DTypeSet domain, MakeFn make_fn) {
  OpKernel k;
  k.op_type = name;
  k.min_opset = min_opset;
  k.max_opset = 17;
  k.compute = [domain, make_fn](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    const Tensor& x = in[0];
    if (!dtype_in(domain, x.dtype()))
      fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(x.dtype()) + " is not supported");
    Tensor out(x.dtype(), x.shape());
    auto fn = make_fn(ctx.node);
    visit_numeric(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* px = x.data<T>();
      T* po = out.data<T>();
      const int64_t n = x.numel();
      for (int64_t i = 0; i < n; ++i) po[i] = fn(px[i]);
    });
    return std::vector<Tensor>{out};
  };
  return k;
}

// The per-element functions are templates over T because dispatch instantiates
// them for every numeric dtype; the float-only ones are identities for integers,
// a branch that the dtype check before dispatch makes unreachable.
struct ReluFn {
  template <class T> T operator()(T v) const { return v > T(0) ? v : T(0); }
};
struct LeakyReluFn {
  double alpha;
  template <class T> T operator()(T v) const { return v >= T(0) ? v : static_cast<T>(alpha * static_cast<double>(v)); }
};
struct SigmoidFn {
  template <class T> T operator()(T v) const {
    if constexpr (std::is_floating_point_v<T>) {
      return util::logistic(v);
    } else {
      return v;
    }
  }
};
struct ExpFn {
  template <class T> T operator()(T v) const {
    if constexpr (std::is_floating_point_v<T>) return std::exp(v); else return v;
  }
};
struct FloorFn {
  template <class T> T operator()(T v) const {
    if constexpr (std::is_floating_point_v<T>) return std::floor(v); else return v;
  }
};
struct SqrtFn {
  template <class T> T operator()(T v) const {
    if constexpr (std::is_floating_point_v<T>) return std::sqrt(v); else return v;
  }
};
struct NegFn {
  template <class T> T operator()(T v) const { return static_cast<T>(-v); }
};

// ---- Identity ---------------------------------------------------------------

OpKernel identity_kernel() {
  OpKernel k;
  k.op_type = "Identity";
  k.min_opset = 1;
  k.max_opset = 17;
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    return std::vector<Tensor>{in[0].clone()};  // fresh buffer: callers may write outputs in place
  };
  return k;
}

// ---- Clip -------------------------------------------------------------------

OpKernel clip_kernel() {
  OpKernel k;
  k.op_type = "Clip";
  k.min_opset = 6;
  k.max_opset = 17;
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    const Tensor& x = in[0];
    Tensor out(x.dtype(), x.shape());
    bool ok = visit_numeric(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      T lo = std::numeric_limits<T>::lowest();
      T hi = std::numeric_limits<T>::max();
      if (ctx.opset < 11) {
        // Opset 6: bounds are float attributes.
        if (ctx.node.has_attr("min")) lo = static_cast<T>(ctx.node.attr_f("min", 0));
        if (ctx.node.has_attr("max")) hi = static_cast<T>(ctx.node.attr_f("max", 0));
      } else {
        // Opset 11+: optional scalar inputs of the input's dtype.
        for (size_t i = 1; i < 3; ++i) {
          const Tensor* b = opt_tensor(in, i);
          if (!b) continue;
          if (b->dtype() != x.dtype() || b->numel() != 1)
            fail(ctx, ErrorCode::kInvalidArgument, "min/max must be scalars of the input's dtype");
          (i == 1 ? lo : hi) = b->data<T>()[0];
        }
      }
      const T* px = x.data<T>();
      T* po = out.data<T>();
      // min(max(x, lo), hi): when lo > hi every element becomes hi, as numpy.clip does.
      for (int64_t i = 0; i < x.numel(); ++i) po[i] = std::min(std::max(px[i], lo), hi);
    });
    if (!ok) fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(x.dtype()) + " is not supported");
    return std::vector<Tensor>{out};
  };
  return k;
}

// ---- Cast -------------------------------------------------------------------

// Like visit_numeric plus bool and the two 16-bit float formats.
template <class F>
bool visit_castable(DType dt, F&& f) {
  switch (dt) {
    case DType::kBool: f(Tag<bool>{}); return true;
    case DType::kFloat16: f(Tag<Half>{}); return true;
    case DType::kBFloat16: f(Tag<BFloat16>{}); return true;
    default: return visit_numeric(dt, f);
  }
}

// Loads an element as a value of a "wide" type: 16-bit floats become float.
template <class S> auto load_value(S s) {
  if constexpr (std::is_same_v<S, Half>) return half_to_float(s.bits);
  else if constexpr (std::is_same_v<S, BFloat16>) return bf16_to_float(s.bits);
  else return s;
}

template <class D, class V> D store_value(V v) {
  if constexpr (std::is_same_v<D, Half>) {
    return Half{float_to_half(static_cast<float>(v))};
  } else if constexpr (std::is_same_v<D, BFloat16>) {
    return BFloat16{float_to_bf16(static_cast<float>(v))};
  } else if constexpr (std::is_same_v<D, bool>) {
    return v != V(0);
  } else if constexpr (std::is_integral_v<D> && std::is_floating_point_v<V>) {
    // Float -> int out of range is undefined behaviour in C++; saturate (NaN -> 0)
    // so that hostile input gives a defined, if arbitrary, answer.
    if (std::isnan(v)) return D(0);
    if (v <= static_cast<V>(std::numeric_limits<D>::lowest())) return std::numeric_limits<D>::lowest();
    if (v >= static_cast<V>(std::numeric_limits<D>::max())) return std::numeric_limits<D>::max();
    return static_cast<D>(v);
  } else {
    return static_cast<D>(v);
  }
}

OpKernel cast_kernel() {
  OpKernel k;
  k.op_type = "Cast";
  k.min_opset = 6;  // opset 1-5 named the target type with a string
  k.max_opset = 17;
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    const Tensor& x = in[0];
    auto to = static_cast<DType>(ctx.node.attr_i("to", 0));
    if (!castable(x.dtype()) || !castable(to))
      fail(ctx, ErrorCode::kUnsupported,
           std::string("cast from ") + dtype_name(x.dtype()) + " to " + dtype_name(to) + " is not supported");
    Tensor out(to, x.shape());
    visit_castable(x.dtype(), [&](auto ts) {
      using S = typename decltype(ts)::type;
      visit_castable(to, [&](auto td) {
        using D = typename decltype(td)::type;
        const S* ps = x.data<S>();
        D* pd = out.data<D>();
        for (int64_t i = 0; i < x.numel(); ++i) pd[i] = store_value<D>(load_value(ps[i]));
      });
    });
    return std::vector<Tensor>{out};
  };
  return k;
}

}  // namespace

void register_elementwise_kernels() {
  register_kernel(arith_kernel(Arith::kAdd));
  register_kernel(arith_kernel(Arith::kSub));
  register_kernel(arith_kernel(Arith::kMul));
  register_kernel(arith_kernel(Arith::kDiv));
  register_kernel(pow_kernel());
  register_kernel(unary_kernel("Relu", 1, DTypeSet::kSigned, [](const Node&) { return ReluFn{}; }));
  register_kernel(unary_kernel("LeakyRelu", 1, DTypeSet::kFloat,
                               [](const Node& n) { return LeakyReluFn{n.attr_f("alpha", 0.01f)}; }));
  register_kernel(unary_kernel("Sigmoid", 1, DTypeSet::kFloat, [](const Node&) { return SigmoidFn{}; }));
  register_kernel(unary_kernel("Exp", 1, DTypeSet::kFloat, [](const Node&) { return ExpFn{}; }));
  register_kernel(unary_kernel("Floor", 1, DTypeSet::kFloat, [](const Node&) { return FloorFn{}; }));
  register_kernel(unary_kernel("Sqrt", 1, DTypeSet::kFloat, [](const Node&) { return SqrtFn{}; }));
  register_kernel(unary_kernel("Neg", 1, DTypeSet::kSigned, [](const Node&) { return NegFn{}; }));
  register_kernel(identity_kernel());
  register_kernel(clip_kernel());
  register_kernel(cast_kernel());
}

}  // namespace damoyolo::kernels::ref
