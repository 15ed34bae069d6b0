// Reference data-movement kernels: Shape, Constant, Reshape, Transpose,
// Concat, Slice, Gather, Unsqueeze, Squeeze, Flatten, Split, Pad.
//
// None of these do arithmetic on elements, so they copy whole elements by
// their byte size and work for every fixed-size dtype (bool, float16 and the
// integers included). The output shape of most of them depends on the values
// of small integer inputs (Reshape's shape, Slice's starts...); infer uses those
// values when they are load-time constants and otherwise reports the shape as
// unknown (has_shape = false), leaving it to the caller to decide whether a
// dynamic shape is acceptable.
#include <algorithm>
#include <limits>
#include <optional>
#include <set>

#include "common/checked_size.h"
#include "kernels/reference/kernel_util.h"
#include "kernels/reference/registry.h"

namespace damoyolo::kernels::ref {
namespace {

using namespace util;

// ---- helpers ----------------------------------------------------------------

void require_fixed_size(const OpContext& ctx, DType dt) {
  if (dtype_size(dt) == 0)
    fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dt) + " is not supported");
}

// The integer values of constant input i, or nullopt when absent or not constant.
std::optional<std::vector<int64_t>> const_ints(const std::vector<InferInput>& in, size_t i) {
  const InferInput* p = opt_input(in, i);
  if (!p || !p->value) return std::nullopt;
  return to_int64_vector(*p->value);
}

std::vector<int64_t> tensor_ints(const OpContext& ctx, const Tensor& t, const char* what) {
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32)
    fail(ctx, ErrorCode::kInvalidArgument, std::string(what) + " must be int32/int64, got " + dtype_name(t.dtype()));
  return to_int64_vector(t);
}

// Copies out.numel() elements: out[idx] = src[base + sum(idx[d] * in_strides[d])].
// Strides may be negative (Slice with negative steps) or permuted (Transpose).
template <class T>
void strided_copy_typed(const T* src, T* dst, const Shape& out_shape, const std::vector<int64_t>& in_strides,
                        int64_t base) {
  const int64_t n = shape_numel(out_shape);
  if (n == 0) return;
  const size_t rank = out_shape.size();
  if (rank == 0) {
    dst[0] = src[base];
    return;
  }
  const int64_t inner = out_shape.back();
  const int64_t s_in = in_strides.back();
  const int64_t outer = n / inner;
  std::vector<int64_t> idx(rank, 0);
  int64_t off = base;
  for (int64_t o = 0; o < outer; ++o) {
    T* row = dst + o * inner;
    for (int64_t i = 0; i < inner; ++i) row[i] = src[off + i * s_in];
    for (int64_t d = static_cast<int64_t>(rank) - 2; d >= 0; --d) {
      ++idx[d];
      off += in_strides[d];
      if (idx[d] < out_shape[d]) break;
      off -= in_strides[d] * out_shape[d];
      idx[d] = 0;
    }
  }
}

// Elements are copied as same-sized unsigned integers: a byte-exact copy for any dtype.
void strided_copy(const Tensor& src, Tensor& dst, const std::vector<int64_t>& in_strides, int64_t base) {
  switch (dtype_size(src.dtype())) {
    case 1: strided_copy_typed(src.data<uint8_t>(), dst.data<uint8_t>(), dst.shape(), in_strides, base); break;
    case 2: strided_copy_typed(src.data<uint16_t>(), dst.data<uint16_t>(), dst.shape(), in_strides, base); break;
    case 4: strided_copy_typed(src.data<uint32_t>(), dst.data<uint32_t>(), dst.shape(), in_strides, base); break;
    case 8: strided_copy_typed(src.data<uint64_t>(), dst.data<uint64_t>(), dst.shape(), in_strides, base); break;
    default: throw Error(ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(src.dtype()) + " cannot be copied");
  }
}

// A fresh tensor with x's bytes and a new shape (same element count).
Tensor copy_with_shape(const Tensor& x, Shape shape) { return x.clone().reshaped(std::move(shape)); }

// Product of dims [from, to); -1 when one is unknown. Saturates at INT64_MAX
// (real tensors never get there: their constructor counts exactly).
int64_t product(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i)
    if (s[i] < 0) return -1;
  for (size_t i = from; i < to; ++i)
    if (s[i] == 0) return 0;
  for (size_t i = from; i < to; ++i)
    if (__builtin_mul_overflow(p, s[i], &p)) return INT64_MAX;
  return p;
}

// ---- Shape ------------------------------------------------------------------

std::pair<int64_t, int64_t> shape_range(const Node& node, int64_t rank) {
  // Opset 15 start/end: negative counts from the back, both clamped into [0, rank].
  int64_t start = node.attr_i("start", 0);
  int64_t end = node.attr_i("end", rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  return {start, std::max(start, end)};
}

OpKernel shape_kernel() {
  OpKernel k;
  k.op_type = "Shape";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    if (!known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(DType::kInt64)};
    auto [s, e] = shape_range(ctx.node, static_cast<int64_t>(in[0].info.shape.size()));
    return std::vector<ValueInfo>{info_of(DType::kInt64, {e - s})};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    auto [s, e] = shape_range(ctx.node, static_cast<int64_t>(in[0].rank()));
    Tensor out(DType::kInt64, {e - s});
    for (int64_t i = s; i < e; ++i) out.data<int64_t>()[i - s] = in[0].dim(static_cast<size_t>(i));
    return std::vector<Tensor>{out};
  };
  return k;
}

// ---- Constant ---------------------------------------------------------------

Tensor constant_value(const OpContext& ctx) {
  const Node& n = ctx.node;
  if (n.has_attr("value")) return n.attrs.at("value").t.clone();
  if (n.has_attr("value_float")) {
    Tensor t(DType::kFloat32, {});
    t.data<float>()[0] = n.attr_f("value_float", 0);
    return t;
  }
  if (n.has_attr("value_floats")) {
    auto v = n.attr_floats("value_floats");
    Tensor t(DType::kFloat32, {static_cast<int64_t>(v.size())});
    std::copy(v.begin(), v.end(), t.data<float>());
    return t;
  }
  if (n.has_attr("value_int")) {
    Tensor t(DType::kInt64, {});
    t.data<int64_t>()[0] = n.attr_i("value_int", 0);
    return t;
  }
  if (n.has_attr("value_ints")) {
    auto v = n.attr_ints("value_ints");
    Tensor t(DType::kInt64, {static_cast<int64_t>(v.size())});
    std::copy(v.begin(), v.end(), t.data<int64_t>());
    return t;
  }
  fail(ctx, ErrorCode::kUnsupported,
       "only the value/value_float(s)/value_int(s) attributes are supported (no strings or sparse tensors)");
}

OpKernel constant_kernel() {
  OpKernel k;
  k.op_type = "Constant";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>&) {
    Tensor t = constant_value(ctx);
    if (!t.defined() || dtype_size(t.dtype()) == 0)
      fail(ctx, ErrorCode::kUnsupported, std::string("constant of dtype ") + dtype_name(t.dtype()) + " is not supported");
    return std::vector<ValueInfo>{info_of(t.dtype(), t.shape())};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>&) {
    return std::vector<Tensor>{constant_value(ctx)};
  };
  return k;
}

// ---- Reshape ----------------------------------------------------------------

// Resolves 0 (copy the input dim unless allowzero) and -1 (inferred). Input
// dims may be unknown (< 0) during inference; the result then has unknown dims.
Shape resolve_reshape(const OpContext& ctx, const Shape& in, const std::vector<int64_t>& spec, bool allowzero) {
  Shape out(spec.size());
  int64_t infer_at = -1;
  for (size_t i = 0; i < spec.size(); ++i) {
    int64_t d = spec[i];
    if (d == -1) {
      if (infer_at >= 0) fail(ctx, ErrorCode::kInvalidArgument, "shape has more than one -1");
      infer_at = static_cast<int64_t>(i);
      out[i] = -1;
    } else if (d == 0 && !allowzero) {
      if (i >= in.size())
        fail(ctx, ErrorCode::kInvalidArgument, "shape copies dim " + std::to_string(i) + " of a rank-" +
                                                   std::to_string(in.size()) + " input");
      out[i] = in[i];
    } else if (d < 0) {
      fail(ctx, ErrorCode::kInvalidArgument, "invalid dimension " + std::to_string(d) + " in shape");
    } else {
      out[i] = d;
    }
  }
  int64_t total = product(in, 0, in.size());
  if (infer_at >= 0) {
    int64_t rest = 1;
    bool rest_known = true;
    for (size_t i = 0; i < out.size(); ++i) {
      if (static_cast<int64_t>(i) == infer_at) continue;
      if (out[i] < 0) {
        rest_known = false;
      } else if (__builtin_mul_overflow(rest, out[i], &rest)) {
        fail(ctx, ErrorCode::kOutOfRange, "shape " + shape_to_string(out) + " has more than 2^63 - 1 elements");
      }
    }
    if (total >= 0 && rest_known) {
      if (rest == 0 || total % rest != 0)
        fail(ctx, ErrorCode::kInvalidArgument,
             "cannot reshape " + shape_to_string(in) + " with shape spec containing -1 (" +
                 std::to_string(total) + " elements)");
      out[infer_at] = total / rest;
    }
  }
  if (all_dims_known(out)) {
    // Counted exactly: (2^62 + 1) x 4 must not wrap around to a 4-element input.
    auto n = checked::numel(out);
    if (!n) fail(ctx, ErrorCode::kOutOfRange, "shape " + shape_to_string(out) + " has more than 2^63 - 1 elements");
    if (total >= 0 && *n != total)
      fail(ctx, ErrorCode::kInvalidArgument, "cannot reshape " + shape_to_string(in) + " to " + shape_to_string(out));
  }
  return out;
}

std::optional<std::vector<int64_t>> reshape_spec(const OpContext& ctx, const std::vector<InferInput>& in) {
  if (ctx.opset < 5) return ctx.node.attr_ints("shape");
  return const_ints(in, 1);
}

OpKernel reshape_kernel() {
  OpKernel k;
  k.op_type = "Reshape";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), ctx.opset < 5 ? 1 : 2);
    require_fixed_size(ctx, in[0].info.dtype);
    auto spec = reshape_spec(ctx, in);
    if (!spec || !known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(in[0].info.dtype)};
    bool allowzero = ctx.node.attr_i("allowzero", 0) != 0;
    return std::vector<ValueInfo>{info_of(in[0].info.dtype, resolve_reshape(ctx, in[0].info.shape, *spec, allowzero))};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), ctx.opset < 5 ? 1 : 2);
    std::vector<int64_t> spec = ctx.opset < 5 ? ctx.node.attr_ints("shape") : tensor_ints(ctx, in[1], "shape");
    bool allowzero = ctx.node.attr_i("allowzero", 0) != 0;
    return std::vector<Tensor>{copy_with_shape(in[0], resolve_reshape(ctx, in[0].shape(), spec, allowzero))};
  };
  return k;
}

// ---- Transpose --------------------------------------------------------------

std::vector<int64_t> transpose_perm(const OpContext& ctx, size_t rank) {
  std::vector<int64_t> perm = ctx.node.attr_ints("perm");
  if (perm.empty()) {  // default: reverse the axes
    for (size_t i = 0; i < rank; ++i) perm.push_back(static_cast<int64_t>(rank - 1 - i));
  }
  if (perm.size() != rank) fail(ctx, ErrorCode::kInvalidArgument, "perm has the wrong length for rank " + std::to_string(rank));
  std::vector<bool> seen(rank, false);
  for (int64_t& p : perm) {
    p = normalize_axis(ctx, p, static_cast<int64_t>(rank));
    if (seen[p]) fail(ctx, ErrorCode::kInvalidArgument, "perm repeats an axis");
    seen[p] = true;
  }
  return perm;
}

OpKernel transpose_kernel() {
  OpKernel k;
  k.op_type = "Transpose";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    require_fixed_size(ctx, in[0].info.dtype);
    if (!known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(in[0].info.dtype)};
    const Shape& s = in[0].info.shape;
    auto perm = transpose_perm(ctx, s.size());
    Shape out;
    for (int64_t p : perm) out.push_back(s[p]);
    return std::vector<ValueInfo>{info_of(in[0].info.dtype, out)};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    const Tensor& x = in[0];
    auto perm = transpose_perm(ctx, x.rank());
    auto st = strides_of(x.shape());
    Shape out_shape;
    std::vector<int64_t> in_strides;
    for (int64_t p : perm) {
      out_shape.push_back(x.dim(p));
      in_strides.push_back(st[p]);
    }
    Tensor out(x.dtype(), out_shape);
    strided_copy(x, out, in_strides, 0);
    return std::vector<Tensor>{out};
  };
  return k;
}

// ---- Concat -----------------------------------------------------------------

OpKernel concat_kernel() {
  OpKernel k;
  k.op_type = "Concat";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    DType dt = in[0].info.dtype;
    require_fixed_size(ctx, dt);
    for (const auto& i : in)
      if (i.info.dtype != dt) fail(ctx, ErrorCode::kInvalidArgument, "inputs have different dtypes");
    for (const auto& i : in)
      if (!known(i)) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    const int64_t rank = static_cast<int64_t>(in[0].info.shape.size());
    if (!ctx.node.has_attr("axis")) fail(ctx, ErrorCode::kInvalidArgument, "missing the 'axis' attribute");
    const int64_t axis = normalize_axis(ctx, ctx.node.attr_i("axis", 0), rank);
    Shape out = in[0].info.shape;
    out[axis] = 0;
    for (const auto& i : in) {
      const Shape& s = i.info.shape;
      if (static_cast<int64_t>(s.size()) != rank) fail(ctx, ErrorCode::kInvalidArgument, "inputs have different ranks");
      for (int64_t d = 0; d < rank; ++d) {
        if (d == axis) {
          out[d] = (out[d] < 0 || s[d] < 0) ? -1 : out[d] + s[d];
        } else if (out[d] < 0) {
          out[d] = s[d];
        } else if (s[d] >= 0 && s[d] != out[d]) {
          fail(ctx, ErrorCode::kInvalidArgument, "input shapes " + shape_to_string(in[0].info.shape) + " and " +
                                                     shape_to_string(s) + " differ off the concat axis");
        }
      }
    }
    return std::vector<ValueInfo>{info_of(dt, out)};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    const Tensor& first = in[0];
    const int64_t rank = static_cast<int64_t>(first.rank());
    if (!ctx.node.has_attr("axis")) fail(ctx, ErrorCode::kInvalidArgument, "missing the 'axis' attribute");
    const int64_t axis = normalize_axis(ctx, ctx.node.attr_i("axis", 0), rank);
    Shape out_shape = first.shape();
    out_shape[axis] = 0;
    for (const Tensor& t : in) {
      if (t.dtype() != first.dtype()) fail(ctx, ErrorCode::kInvalidArgument, "inputs have different dtypes");
      if (static_cast<int64_t>(t.rank()) != rank) fail(ctx, ErrorCode::kInvalidArgument, "inputs have different ranks");
      for (int64_t d = 0; d < rank; ++d)
        if (d != axis && t.dim(d) != first.dim(d))
          fail(ctx, ErrorCode::kInvalidArgument, "input shapes " + shape_to_string(first.shape()) + " and " +
                                                     shape_to_string(t.shape()) + " differ off the concat axis");
      out_shape[axis] += t.dim(axis);
    }
    Tensor out(first.dtype(), out_shape);
    const size_t esize = dtype_size(first.dtype());
    const int64_t outer = product(out_shape, 0, axis);
    const int64_t inner = product(out_shape, axis + 1, out_shape.size());
    const size_t out_row = static_cast<size_t>(out_shape[axis] * inner) * esize;
    auto* dst = static_cast<uint8_t*>(out.raw());
    size_t col = 0;  // byte offset of the current input's slab inside each output row
    for (const Tensor& t : in) {
      const size_t row = static_cast<size_t>(t.dim(axis) * inner) * esize;
      const auto* src = static_cast<const uint8_t*>(t.raw());
      for (int64_t o = 0; o < outer; ++o) std::memcpy(dst + o * out_row + col, src + o * row, row);
      col += row;
    }
    return std::vector<Tensor>{out};
  };
  return k;
}

// ---- Slice ------------------------------------------------------------------

struct SliceParams {
  std::vector<int64_t> starts, ends, axes, steps;
};

// Gathers the parameters from attributes (opset < 10) or inputs; nullopt when
// an input is not a constant (infer only).
template <class GetInts>
std::optional<SliceParams> slice_params(const OpContext& ctx, size_t rank, GetInts get) {
  SliceParams p;
  if (ctx.opset < 10) {
    p.starts = ctx.node.attr_ints("starts");
    p.ends = ctx.node.attr_ints("ends");
    p.axes = ctx.node.attr_ints("axes");
  } else {
    auto s = get(1), e = get(2);
    if (!s || !e) return std::nullopt;
    p.starts = *s;
    p.ends = *e;
    if (!ctx.node.input(3).empty()) {
      auto a = get(3);
      if (!a) return std::nullopt;
      p.axes = *a;
    }
    if (!ctx.node.input(4).empty()) {
      auto st = get(4);
      if (!st) return std::nullopt;
      p.steps = *st;
    }
  }
  if (p.starts.size() != p.ends.size())
    fail(ctx, ErrorCode::kInvalidArgument, "starts and ends have different lengths");
  if (p.axes.empty())
    for (size_t i = 0; i < p.starts.size(); ++i) p.axes.push_back(static_cast<int64_t>(i));
  if (p.steps.empty()) p.steps.assign(p.starts.size(), 1);
  if (p.axes.size() != p.starts.size() || p.steps.size() != p.starts.size())
    fail(ctx, ErrorCode::kInvalidArgument, "starts/ends/axes/steps have different lengths");
  std::set<int64_t> seen;
  for (int64_t& a : p.axes) {
    a = normalize_axis(ctx, a, static_cast<int64_t>(rank));
    if (!seen.insert(a).second) fail(ctx, ErrorCode::kInvalidArgument, "axes repeat an axis");
  }
  for (int64_t s : p.steps)
    if (s == 0) fail(ctx, ErrorCode::kInvalidArgument, "a step is 0");
  return p;
}

// Clamps start/end of one axis of length dim as the ONNX spec says, and returns
// {start, count}. Works for INT64_MAX / INT64_MIN sentinels and for any step,
// INT64_MIN included: after clamping |start - end| <= dim + 1, and the step's
// magnitude is taken as unsigned, so nothing below can overflow.
std::pair<int64_t, int64_t> slice_axis(int64_t start, int64_t end, int64_t step, int64_t dim) {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    int64_t count = end > start ? (end - start - 1) / step + 1 : 0;
    return {start, count};
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  const uint64_t magnitude = uint64_t{0} - static_cast<uint64_t>(step);  // |step|, exact for INT64_MIN
  int64_t count = start > end ? static_cast<int64_t>(static_cast<uint64_t>(start - end - 1) / magnitude) + 1 : 0;
  return {start, count};
}

OpKernel slice_kernel() {
  OpKernel k;
  k.op_type = "Slice";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), ctx.opset < 10 ? 1 : 3);
    DType dt = in[0].info.dtype;
    require_fixed_size(ctx, dt);
    if (!known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    const Shape& s = in[0].info.shape;
    auto p = slice_params(ctx, s.size(), [&](size_t i) { return const_ints(in, i); });
    if (!p) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    Shape out = s;
    for (size_t i = 0; i < p->axes.size(); ++i) {
      int64_t a = p->axes[i];
      out[a] = s[a] < 0 ? -1 : slice_axis(p->starts[i], p->ends[i], p->steps[i], s[a]).second;
    }
    return std::vector<ValueInfo>{info_of(dt, out)};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), ctx.opset < 10 ? 1 : 3);
    const Tensor& x = in[0];
    auto p = slice_params(ctx, x.rank(), [&](size_t i) -> std::optional<std::vector<int64_t>> {
      const Tensor* t = opt_tensor(in, i);
      if (!t) return std::vector<int64_t>{};
      return tensor_ints(ctx, *t, "slice parameter");
    });
    auto st = strides_of(x.shape());
    Shape out_shape = x.shape();
    std::vector<int64_t> in_strides = st;
    int64_t base = 0;
    for (size_t i = 0; i < p->axes.size(); ++i) {
      int64_t a = p->axes[i];
      auto [start, count] = slice_axis(p->starts[i], p->ends[i], p->steps[i], x.dim(a));
      out_shape[a] = count;
      if (count > 0) base += start * st[a];
      // With two or more elements |step| < dim, so the product stays in range;
      // with one the stride is never applied (a step of INT64_MIN would overflow it).
      in_strides[a] = count > 1 ? st[a] * p->steps[i] : st[a];
    }
    Tensor out(x.dtype(), out_shape);
    strided_copy(x, out, in_strides, base);
    return std::vector<Tensor>{out};
  };
  return k;
}

// ---- Gather -----------------------------------------------------------------

OpKernel gather_kernel() {
  OpKernel k;
  k.op_type = "Gather";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 2);
    DType dt = in[0].info.dtype;
    require_fixed_size(ctx, dt);
    if (in[1].info.dtype != DType::kInt64 && in[1].info.dtype != DType::kInt32)
      fail(ctx, ErrorCode::kInvalidArgument, std::string("indices must be int32/int64, got ") + dtype_name(in[1].info.dtype));
    if (!known(in[0]) || !known(in[1])) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    const Shape& s = in[0].info.shape;
    int64_t axis = normalize_axis(ctx, ctx.node.attr_i("axis", 0), static_cast<int64_t>(s.size()));
    Shape out(s.begin(), s.begin() + axis);
    out.insert(out.end(), in[1].info.shape.begin(), in[1].info.shape.end());
    out.insert(out.end(), s.begin() + axis + 1, s.end());
    return std::vector<ValueInfo>{info_of(dt, out)};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 2);
    const Tensor& x = in[0];
    const Shape& s = x.shape();
    int64_t axis = normalize_axis(ctx, ctx.node.attr_i("axis", 0), static_cast<int64_t>(s.size()));
    std::vector<int64_t> idx = tensor_ints(ctx, in[1], "indices");
    const int64_t dim = s[axis];
    for (int64_t& i : idx) {
      if (i < -dim || i >= dim)
        fail(ctx, ErrorCode::kInvalidArgument,
             "index " + std::to_string(i) + " is out of range for axis of size " + std::to_string(dim));
      if (i < 0) i += dim;
    }
    Shape out_shape(s.begin(), s.begin() + axis);
    out_shape.insert(out_shape.end(), in[1].shape().begin(), in[1].shape().end());
    out_shape.insert(out_shape.end(), s.begin() + axis + 1, s.end());
    Tensor out(x.dtype(), out_shape);
    const size_t esize = dtype_size(x.dtype());
    const int64_t outer = product(s, 0, axis);
    const size_t block = static_cast<size_t>(product(s, axis + 1, s.size())) * esize;
    const auto* src = static_cast<const uint8_t*>(x.raw());
    auto* dst = static_cast<uint8_t*>(out.raw());
    for (int64_t o = 0; o < outer; ++o)
      for (size_t j = 0; j < idx.size(); ++j)
        std::memcpy(dst + (o * static_cast<int64_t>(idx.size()) + static_cast<int64_t>(j)) * block,
                    src + (o * dim + idx[j]) * block, block);
    return std::vector<Tensor>{out};
  };
  return k;
}

// ---- Unsqueeze / Squeeze ----------------------------------------------------

// Axes from the attribute (opset <= 12) or input 1 (13+); nullopt when the
// input exists but is not known; an empty vector when there are none.
std::optional<std::vector<int64_t>> axes_of(const OpContext& ctx, const std::vector<InferInput>& in) {
  if (ctx.opset < 13) return ctx.node.attr_ints("axes");
  if (ctx.node.input(1).empty()) return std::vector<int64_t>{};
  return const_ints(in, 1);
}
std::vector<int64_t> axes_of(const OpContext& ctx, const std::vector<Tensor>& in) {
  if (ctx.opset < 13) return ctx.node.attr_ints("axes");
  const Tensor* t = opt_tensor(in, 1);
  return t ? tensor_ints(ctx, *t, "axes") : std::vector<int64_t>{};
}

Shape unsqueeze_shape(const OpContext& ctx, const Shape& in, std::vector<int64_t> axes) {
  const int64_t out_rank = static_cast<int64_t>(in.size() + axes.size());
  std::vector<bool> is_new(out_rank, false);
  for (int64_t& a : axes) {
    a = normalize_axis(ctx, a, out_rank);
    if (is_new[a]) fail(ctx, ErrorCode::kInvalidArgument, "axes repeat an axis");
    is_new[a] = true;
  }
  Shape out;
  size_t j = 0;
  for (int64_t i = 0; i < out_rank; ++i) out.push_back(is_new[i] ? 1 : in[j++]);
  return out;
}

OpKernel unsqueeze_kernel() {
  OpKernel k;
  k.op_type = "Unsqueeze";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    DType dt = in[0].info.dtype;
    require_fixed_size(ctx, dt);
    auto axes = axes_of(ctx, in);
    if (!axes || !known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    if (axes->empty()) fail(ctx, ErrorCode::kInvalidArgument, "axes are required");
    return std::vector<ValueInfo>{info_of(dt, unsqueeze_shape(ctx, in[0].info.shape, *axes))};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    auto axes = axes_of(ctx, in);
    if (axes.empty()) fail(ctx, ErrorCode::kInvalidArgument, "axes are required");
    return std::vector<Tensor>{copy_with_shape(in[0], unsqueeze_shape(ctx, in[0].shape(), axes))};
  };
  return k;
}

// nullopt when the axes are implicit ("all size-1 dims") and some dim is unknown.
std::optional<Shape> squeeze_shape(const OpContext& ctx, const Shape& in, std::vector<int64_t> axes) {
  const int64_t rank = static_cast<int64_t>(in.size());
  std::vector<bool> drop(rank, false);
  if (axes.empty()) {
    for (int64_t i = 0; i < rank; ++i) {
      if (in[i] < 0) return std::nullopt;
      drop[i] = in[i] == 1;
    }
  } else {
    for (int64_t a : axes) {
      a = normalize_axis(ctx, a, rank);
      if (in[a] >= 0 && in[a] != 1)
        fail(ctx, ErrorCode::kInvalidArgument,
             "cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(in[a]));
      drop[a] = true;
    }
  }
  Shape out;
  for (int64_t i = 0; i < rank; ++i)
    if (!drop[i]) out.push_back(in[i]);
  return out;
}

OpKernel squeeze_kernel() {
  OpKernel k;
  k.op_type = "Squeeze";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    DType dt = in[0].info.dtype;
    require_fixed_size(ctx, dt);
    auto axes = axes_of(ctx, in);
    if (!axes || !known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    auto s = squeeze_shape(ctx, in[0].info.shape, *axes);
    return std::vector<ValueInfo>{s ? info_of(dt, *s) : info_unknown_shape(dt)};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    return std::vector<Tensor>{copy_with_shape(in[0], *squeeze_shape(ctx, in[0].shape(), axes_of(ctx, in)))};
  };
  return k;
}

// ---- Flatten ----------------------------------------------------------------

Shape flatten_shape(const OpContext& ctx, const Shape& s) {
  const int64_t rank = static_cast<int64_t>(s.size());
  int64_t axis = ctx.node.attr_i("axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank)  // axis == rank is valid: [numel, 1]
    fail(ctx, ErrorCode::kInvalidArgument, "axis " + std::to_string(ctx.node.attr_i("axis", 1)) +
                                               " is out of range for rank " + std::to_string(rank));
  return {product(s, 0, axis), product(s, axis, s.size())};
}

OpKernel flatten_kernel() {
  OpKernel k;
  k.op_type = "Flatten";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    require_fixed_size(ctx, in[0].info.dtype);
    if (!known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(in[0].info.dtype)};
    return std::vector<ValueInfo>{info_of(in[0].info.dtype, flatten_shape(ctx, in[0].info.shape))};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    return std::vector<Tensor>{copy_with_shape(in[0], flatten_shape(ctx, in[0].shape()))};
  };
  return k;
}

// ---- Split ------------------------------------------------------------------

// Sizes of the parts along `axis` (dim may be unknown: then only explicit splits resolve).
std::optional<std::vector<int64_t>> split_sizes(const OpContext& ctx, int64_t dim, std::optional<std::vector<int64_t>> split) {
  const size_t parts = ctx.node.outputs.size();
  if (parts == 0) fail(ctx, ErrorCode::kInvalidArgument, "has no outputs");
  if (split && !split->empty()) {
    if (split->size() != parts)
      fail(ctx, ErrorCode::kInvalidArgument, "split has " + std::to_string(split->size()) + " entries for " +
                                                 std::to_string(parts) + " outputs");
    int64_t sum = 0;
    for (int64_t v : *split) {
      if (v < 0) fail(ctx, ErrorCode::kInvalidArgument, "negative split size");
      sum += v;
    }
    if (dim >= 0 && sum != dim)
      fail(ctx, ErrorCode::kInvalidArgument, "split sizes sum to " + std::to_string(sum) + ", axis has " + std::to_string(dim));
    return split;
  }
  if (dim < 0) return std::nullopt;
  if (dim % static_cast<int64_t>(parts) != 0)
    fail(ctx, ErrorCode::kInvalidArgument,
         "axis of size " + std::to_string(dim) + " does not split evenly into " + std::to_string(parts) + " parts");
  return std::vector<int64_t>(parts, dim / static_cast<int64_t>(parts));
}

OpKernel split_kernel() {
  OpKernel k;
  k.op_type = "Split";
  k.min_opset = 2;  // opset 1 took the split as an optional second input with different rules
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    DType dt = in[0].info.dtype;
    require_fixed_size(ctx, dt);
    const size_t parts = ctx.node.outputs.size();
    std::vector<ValueInfo> unknown(parts, info_unknown_shape(dt));
    if (!known(in[0])) return unknown;
    std::optional<std::vector<int64_t>> split;
    if (ctx.opset < 13) split = ctx.node.attr_ints("split");
    else if (!ctx.node.input(1).empty()) split = const_ints(in, 1);
    else split = std::vector<int64_t>{};
    if (!split) return unknown;
    const Shape& s = in[0].info.shape;
    int64_t axis = normalize_axis(ctx, ctx.node.attr_i("axis", 0), static_cast<int64_t>(s.size()));
    auto sizes = split_sizes(ctx, s[axis], split);
    if (!sizes) return unknown;
    std::vector<ValueInfo> out;
    for (int64_t v : *sizes) {
      Shape o = s;
      o[axis] = v;
      out.push_back(info_of(dt, o));
    }
    return out;
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    const Tensor& x = in[0];
    std::vector<int64_t> split;
    if (ctx.opset < 13) split = ctx.node.attr_ints("split");
    else if (const Tensor* t = opt_tensor(in, 1)) split = tensor_ints(ctx, *t, "split");
    const Shape& s = x.shape();
    int64_t axis = normalize_axis(ctx, ctx.node.attr_i("axis", 0), static_cast<int64_t>(s.size()));
    std::vector<int64_t> sizes = *split_sizes(ctx, s[axis], split);
    const size_t esize = dtype_size(x.dtype());
    const int64_t outer = product(s, 0, axis);
    const size_t inner = static_cast<size_t>(product(s, axis + 1, s.size())) * esize;
    const auto* src = static_cast<const uint8_t*>(x.raw());
    std::vector<Tensor> outs;
    int64_t offset = 0;  // along the axis
    for (int64_t v : sizes) {
      Shape o = s;
      o[axis] = v;
      Tensor t(x.dtype(), o);
      auto* dst = static_cast<uint8_t*>(t.raw());
      for (int64_t r = 0; r < outer; ++r)
        std::memcpy(dst + r * v * inner, src + (r * s[axis] + offset) * inner, static_cast<size_t>(v) * inner);
      offset += v;
      outs.push_back(t);
    }
    return outs;
  };
  return k;
}

// ---- Pad --------------------------------------------------------------------

std::optional<std::vector<int64_t>> pads_of(const OpContext& ctx, const std::vector<InferInput>& in) {
  if (ctx.opset < 11) return ctx.node.attr_ints("pads");
  return const_ints(in, 1);
}

void check_pad_mode(const OpContext& ctx) {
  std::string mode = ctx.node.attr_s("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge")
    fail(ctx, ErrorCode::kUnsupported, "pad mode '" + mode + "' is not supported");
}

Shape padded_shape(const OpContext& ctx, const Shape& s, const std::vector<int64_t>& pads) {
  const size_t rank = s.size();
  if (pads.size() != 2 * rank)
    fail(ctx, ErrorCode::kInvalidArgument, "pads has " + std::to_string(pads.size()) + " entries for rank " + std::to_string(rank));
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    out[i] = s[i] < 0 ? -1 : s[i] + pads[i] + pads[i + rank];
    if (s[i] >= 0 && out[i] < 0) fail(ctx, ErrorCode::kInvalidArgument, "pads remove more than the whole axis");
  }
  return out;
}

// Source coordinate of output coordinate o along one axis, or -1 for "fill".
int64_t pad_source(int64_t o, int64_t before, int64_t dim, const std::string& mode) {
  int64_t i = o - before;
  if (i >= 0 && i < dim) return i;
  if (mode == "constant") return -1;
  if (mode == "edge") return std::clamp<int64_t>(i, 0, dim - 1);
  // reflect (mirror without repeating the edge); period 2*(dim-1)
  if (dim == 1) return 0;
  const int64_t period = 2 * (dim - 1);
  i %= period;
  if (i < 0) i += period;
  return i < dim ? i : period - i;
}

OpKernel pad_kernel() {
  OpKernel k;
  k.op_type = "Pad";
  k.min_opset = 2;  // opset 1 named the attribute 'paddings'
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), ctx.opset < 11 ? 1 : 2);
    DType dt = in[0].info.dtype;
    // The opset < 11 fill value is a float attribute: only numeric dtypes can hold it.
    // From opset 11 the fill is an input of x's dtype and is copied bytewise.
    bool ok = is_numeric(dt) || (ctx.opset >= 11 && (dt == DType::kBool || dt == DType::kFloat16));
    if (!ok)
      fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dt) + " is not supported");
    check_pad_mode(ctx);
    if (ctx.opset >= 11 && !ctx.node.input(3).empty())
      fail(ctx, ErrorCode::kUnsupported, "the 'axes' input (opset 18) is not supported");
    auto pads = pads_of(ctx, in);
    if (!pads || !known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    return std::vector<ValueInfo>{info_of(dt, padded_shape(ctx, in[0].info.shape, *pads))};
  };
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), ctx.opset < 11 ? 1 : 2);
    check_pad_mode(ctx);
    const Tensor& x = in[0];
    const std::string mode = ctx.node.attr_s("mode", "constant");
    std::vector<int64_t> pads = ctx.opset < 11 ? ctx.node.attr_ints("pads") : tensor_ints(ctx, in[1], "pads");
    Shape out_shape = padded_shape(ctx, x.shape(), pads);
    const size_t rank = x.rank();
    const size_t esize = dtype_size(x.dtype());
    if (mode != "constant")
      for (size_t d = 0; d < rank; ++d)
        if (x.dim(d) == 0 && out_shape[d] > 0)
          fail(ctx, ErrorCode::kInvalidArgument, mode + " padding of an empty axis");
    // The fill value as the bytes of one element of x's dtype.
    std::vector<uint8_t> fill(esize, 0);
    if (ctx.opset < 11) {
      double v = ctx.node.attr_f("value", 0.0f);
      visit_numeric(x.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        T tv = static_cast<T>(v);
        std::memcpy(fill.data(), &tv, esize);
      });
    } else if (const Tensor* c = opt_tensor(in, 2)) {
      if (c->dtype() != x.dtype() || c->numel() != 1)
        fail(ctx, ErrorCode::kInvalidArgument, "constant_value must be a scalar of the input's dtype");
      std::memcpy(fill.data(), c->raw(), esize);
    }
    // Per-axis source coordinate of every output coordinate.
    std::vector<std::vector<int64_t>> src_of(rank);
    for (size_t d = 0; d < rank; ++d)
      for (int64_t o = 0; o < out_shape[d]; ++o) src_of[d].push_back(pad_source(o, pads[d], x.dim(d), mode));
    Tensor out(x.dtype(), out_shape);
    auto st = strides_of(x.shape());
    const auto* src = static_cast<const uint8_t*>(x.raw());
    auto* dst = static_cast<uint8_t*>(out.raw());
    const int64_t n = out.numel();
    std::vector<int64_t> idx(rank, 0);
    for (int64_t e = 0; e < n; ++e) {
      int64_t off = 0;
      bool is_fill = false;
      for (size_t d = 0; d < rank; ++d) {
        int64_t s = src_of[d][idx[d]];
        if (s < 0) { is_fill = true; break; }
        off += s * st[d];
      }
      std::memcpy(dst + e * esize, is_fill ? fill.data() : src + off * esize, esize);
      for (int64_t d = static_cast<int64_t>(rank) - 1; d >= 0; --d) {
        if (++idx[d] < out_shape[d]) break;
        idx[d] = 0;
      }
    }
    return std::vector<Tensor>{out};
  };
  return k;
}

}  // namespace

void register_tensor_kernels() {
  register_kernel(shape_kernel());
  register_kernel(constant_kernel());
  register_kernel(reshape_kernel());
  register_kernel(transpose_kernel());
  register_kernel(concat_kernel());
  register_kernel(slice_kernel());
  register_kernel(gather_kernel());
  register_kernel(unsqueeze_kernel());
  register_kernel(squeeze_kernel());
  register_kernel(flatten_kernel());
  register_kernel(split_kernel());
  register_kernel(pad_kernel());
}

}  // namespace damoyolo::kernels::ref
