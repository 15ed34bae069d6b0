#include "graph/ops/tensor_ops.h"

#include <algorithm>
#include <limits>

#include "common/checked_size.h"

namespace damoyolo::graph::ops {

void require_fixed_size(const OpContext& ctx, DType dt) {
  if (dtype_size(dt) == 0)
    fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dt) + " is not supported");
}

std::optional<std::vector<int64_t>> const_ints(const std::vector<InferInput>& in, size_t i) {
  const InferInput* p = opt_input(in, i);
  if (!p || !p->value) return std::nullopt;
  return to_int64_vector(*p->value);
}

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

std::optional<std::vector<int64_t>> axes_of(const OpContext& ctx, const std::vector<InferInput>& in) {
  if (ctx.opset < 13) return ctx.node.attr_ints("axes");
  if (ctx.node.input(1).empty()) return std::vector<int64_t>{};
  return const_ints(in, 1);
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

Shape flatten_shape(const OpContext& ctx, const Shape& s) {
  const int64_t rank = static_cast<int64_t>(s.size());
  int64_t axis = ctx.node.attr_i("axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank)  // axis == rank is valid: [numel, 1]
    fail(ctx, ErrorCode::kInvalidArgument, "axis " + std::to_string(ctx.node.attr_i("axis", 1)) +
                                               " is out of range for rank " + std::to_string(rank));
  return {product(s, 0, axis), product(s, axis, s.size())};
}

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

namespace {

OpSchema shape_schema() {
  OpSchema k;
  k.op_type = "Shape";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    if (!known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(DType::kInt64)};
    auto [s, e] = shape_range(ctx.node, static_cast<int64_t>(in[0].info.shape.size()));
    return std::vector<ValueInfo>{info_of(DType::kInt64, {e - s})};
  };
  return k;
}

OpSchema constant_schema() {
  OpSchema k;
  k.op_type = "Constant";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>&) {
    Tensor t = constant_value(ctx);
    if (!t.defined() || dtype_size(t.dtype()) == 0)
      fail(ctx, ErrorCode::kUnsupported, std::string("constant of dtype ") + dtype_name(t.dtype()) + " is not supported");
    return std::vector<ValueInfo>{info_of(t.dtype(), t.shape())};
  };
  return k;
}

OpSchema reshape_schema() {
  OpSchema k;
  k.op_type = "Reshape";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), ctx.opset < 5 ? 1 : 2);
    require_fixed_size(ctx, in[0].info.dtype);
    auto spec = reshape_spec(ctx, in);
    if (!spec || !known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(in[0].info.dtype)};
    bool allowzero = ctx.node.attr_i("allowzero", 0) != 0;
    return std::vector<ValueInfo>{info_of(in[0].info.dtype, resolve_reshape(ctx, in[0].info.shape, *spec, allowzero))};
  };
  return k;
}

OpSchema transpose_schema() {
  OpSchema k;
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
  return k;
}

OpSchema concat_schema() {
  OpSchema k;
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
  return k;
}

OpSchema slice_schema() {
  OpSchema k;
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
  return k;
}

OpSchema gather_schema() {
  OpSchema k;
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
  return k;
}

OpSchema unsqueeze_schema() {
  OpSchema k;
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
  return k;
}

OpSchema squeeze_schema() {
  OpSchema k;
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
  return k;
}

OpSchema flatten_schema() {
  OpSchema k;
  k.op_type = "Flatten";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    require_fixed_size(ctx, in[0].info.dtype);
    if (!known(in[0])) return std::vector<ValueInfo>{info_unknown_shape(in[0].info.dtype)};
    return std::vector<ValueInfo>{info_of(in[0].info.dtype, flatten_shape(ctx, in[0].info.shape))};
  };
  return k;
}

OpSchema split_schema() {
  OpSchema k;
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
  return k;
}

OpSchema pad_schema() {
  OpSchema k;
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
  return k;
}

}  // namespace
}  // namespace damoyolo::graph::ops

namespace damoyolo::graph {

void register_tensor_schemas() {
  using namespace ops;
  register_schema(shape_schema());
  register_schema(constant_schema());
  register_schema(reshape_schema());
  register_schema(transpose_schema());
  register_schema(concat_schema());
  register_schema(slice_schema());
  register_schema(gather_schema());
  register_schema(unsqueeze_schema());
  register_schema(squeeze_schema());
  register_schema(flatten_schema());
  register_schema(split_schema());
  register_schema(pad_schema());
}

}  // namespace damoyolo::graph
