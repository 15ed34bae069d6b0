#include "graph/ops/nn_ops.h"

#include <algorithm>
#include <limits>

namespace damoyolo::graph::ops {

void require_float(const OpContext& ctx, DType dt) {
  if (!is_float(dt))
    fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dt) + " is not supported");
}

std::string ints_to_string(const std::vector<int64_t>& v) { return shape_to_string(v); }

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

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

void check_bias(const OpContext& ctx, const ConvShape& c, DType dtype, const Shape* shape, DType want) {
  const bool known_bad = shape && all_dims_known(*shape) && shape_numel(*shape) != c.M;
  if ((dtype != want && dtype != DType::kUndefined) || known_bad)
    fail(ctx, ErrorCode::kInvalidArgument, "bias must have " + std::to_string(c.M) + " elements of the input's dtype, got " +
                                               dtype_name(dtype) + (shape ? shape_to_string(*shape) : std::string("[?]")));
}

Shape conv_out_shape(const ConvShape& c, size_t rank) {
  return rank == 3 ? Shape{c.N, c.M, c.OW} : Shape{c.N, c.M, c.OH, c.OW};
}

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

bool matmul_dtype_ok(DType dt) {
  return is_float(dt) || dt == DType::kInt32 || dt == DType::kInt64 || dt == DType::kUInt32 || dt == DType::kUInt64;
}

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

namespace {

OpSchema conv_schema() {
  OpSchema k;
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
  return k;
}

OpSchema batchnorm_schema() {
  OpSchema k;
  k.op_type = "BatchNormalization";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    check_batchnorm(ctx, in.size());
    require_float(ctx, in[0].info.dtype);
    for (size_t i = 1; i < 5; ++i) require_float(ctx, in[i].info.dtype);
    return std::vector<ValueInfo>{in[0].info};
  };
  return k;
}

OpSchema maxpool_schema() {
  OpSchema k;
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
  return k;
}

OpSchema resize_schema() {
  OpSchema k;
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
  return k;
}

OpSchema softmax_schema() {
  OpSchema k;
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
  return k;
}

OpSchema matmul_schema() {
  OpSchema k;
  k.op_type = "MatMul";
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 2);
    DType dt = in[0].info.dtype;
    if (!matmul_dtype_ok(dt)) fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dt) + " is not supported");
    if (in[1].info.dtype != dt) fail(ctx, ErrorCode::kInvalidArgument, "operand dtypes differ");
    if (!known(in[0]) || !known(in[1])) return std::vector<ValueInfo>{info_unknown_shape(dt)};
    return std::vector<ValueInfo>{info_of(dt, matmul_shape(ctx, in[0].info.shape, in[1].info.shape))};
  };
  return k;
}

OpSchema reduce_schema(const char* name, Reduce kind) {
  OpSchema k;
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
  return k;
}

}  // namespace
}  // namespace damoyolo::graph::ops

namespace damoyolo::graph {

void register_nn_schemas() {
  using namespace ops;
  register_schema(conv_schema());
  register_schema(batchnorm_schema());
  register_schema(maxpool_schema());
  register_schema(resize_schema());
  register_schema(softmax_schema());
  register_schema(matmul_schema());
  register_schema(reduce_schema("ReduceSum", Reduce::kSum));
  register_schema(reduce_schema("ReduceMax", Reduce::kMax));
  register_schema(reduce_schema("ReduceMean", Reduce::kMean));
}

}  // namespace damoyolo::graph
