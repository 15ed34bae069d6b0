// Reference data-movement kernels: Shape, Constant, Reshape, Transpose,
// Concat, Slice, Gather, Unsqueeze, Squeeze, Flatten, Split, Pad.
//
// None of these do arithmetic on elements, so they copy whole elements by
// their byte size and work for every fixed-size dtype (bool, float16 and the
// integers included). Their shape arithmetic (Reshape's -1, Slice's clamping,
// Split's sizes...) is the ops' schemas' (graph/ops/tensor_ops.h): the kernels
// call the same functions, so a computed shape is always the inferred one.
#include <algorithm>
#include <limits>
#include <optional>
#include <set>

#include "common/checked_size.h"
#include "graph/ops/tensor_ops.h"
#include "kernels/reference/kernel_util.h"
#include "kernels/reference/registry.h"

namespace damoyolo::kernels::ref {
namespace {

using namespace util;

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

OpKernel shape_kernel() {
  OpKernel k;
  k.op_type = "Shape";
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    auto [s, e] = shape_range(ctx.node, static_cast<int64_t>(in[0].rank()));
    Tensor out(DType::kInt64, {e - s});
    for (int64_t i = s; i < e; ++i) out.data<int64_t>()[i - s] = in[0].dim(static_cast<size_t>(i));
    return std::vector<Tensor>{out};
  };
  return k;
}

OpKernel constant_kernel() {
  OpKernel k;
  k.op_type = "Constant";
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>&) {
    return std::vector<Tensor>{constant_value(ctx)};
  };
  return k;
}

OpKernel reshape_kernel() {
  OpKernel k;
  k.op_type = "Reshape";
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), ctx.opset < 5 ? 1 : 2);
    std::vector<int64_t> spec = ctx.opset < 5 ? ctx.node.attr_ints("shape") : tensor_ints(ctx, in[1], "shape");
    bool allowzero = ctx.node.attr_i("allowzero", 0) != 0;
    return std::vector<Tensor>{copy_with_shape(in[0], resolve_reshape(ctx, in[0].shape(), spec, allowzero))};
  };
  return k;
}

OpKernel transpose_kernel() {
  OpKernel k;
  k.op_type = "Transpose";
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

OpKernel slice_kernel() {
  OpKernel k;
  k.op_type = "Slice";
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
std::vector<int64_t> axes_of(const OpContext& ctx, const std::vector<Tensor>& in) {
  if (ctx.opset < 13) return ctx.node.attr_ints("axes");
  const Tensor* t = opt_tensor(in, 1);
  return t ? tensor_ints(ctx, *t, "axes") : std::vector<int64_t>{};
}

OpKernel unsqueeze_kernel() {
  OpKernel k;
  k.op_type = "Unsqueeze";
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    auto axes = axes_of(ctx, in);
    if (axes.empty()) fail(ctx, ErrorCode::kInvalidArgument, "axes are required");
    return std::vector<Tensor>{copy_with_shape(in[0], unsqueeze_shape(ctx, in[0].shape(), axes))};
  };
  return k;
}

OpKernel squeeze_kernel() {
  OpKernel k;
  k.op_type = "Squeeze";
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    return std::vector<Tensor>{copy_with_shape(in[0], *squeeze_shape(ctx, in[0].shape(), axes_of(ctx, in)))};
  };
  return k;
}

OpKernel flatten_kernel() {
  OpKernel k;
  k.op_type = "Flatten";
  k.compute = [](const OpContext& ctx, const std::vector<Tensor>& in) {
    require_inputs(ctx, in.size(), 1);
    return std::vector<Tensor>{copy_with_shape(in[0], flatten_shape(ctx, in[0].shape()))};
  };
  return k;
}

OpKernel split_kernel() {
  OpKernel k;
  k.op_type = "Split";
  k.min_opset = 2;  // opset 1 took the split as an optional second input with different rules
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
