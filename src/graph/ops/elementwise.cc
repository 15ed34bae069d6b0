#include "graph/ops/elementwise.h"

#include <algorithm>
#include <limits>

namespace damoyolo::graph::ops {

ValueInfo broadcast_info(const OpContext& ctx, const InferInput& a, const InferInput& b, DType out_dtype) {
  if (known(a) && known(b)) return info_of(out_dtype, broadcast_shapes(ctx, a.info.shape, b.info.shape));
  return info_unknown_shape(out_dtype);
}

const char* arith_name(Arith k) {
  switch (k) {
    case Arith::kAdd: return "Add";
    case Arith::kSub: return "Sub";
    case Arith::kMul: return "Mul";
    case Arith::kDiv: return "Div";
  }
  return "?";
}

void check_same_numeric(const OpContext& ctx, DType a, DType b) {
  if (a != b)
    fail(ctx, ErrorCode::kInvalidArgument,
         std::string("input dtypes differ: ") + dtype_name(a) + " and " + dtype_name(b));
  if (!is_numeric(a)) fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(a) + " is not supported");
}

bool castable(DType dt) {
  return dt == DType::kBool || dt == DType::kFloat16 || dt == DType::kBFloat16 || is_numeric(dt);
}

bool dtype_in(DTypeSet d, DType dt) {
  switch (d) {
    case DTypeSet::kFloat: return is_float(dt);
    case DTypeSet::kSigned:
      return is_float(dt) || dt == DType::kInt8 || dt == DType::kInt16 || dt == DType::kInt32 || dt == DType::kInt64;
    case DTypeSet::kNumeric: return is_numeric(dt);
  }
  return false;
}

namespace {

OpSchema arith_schema(Arith kind) {
  OpSchema k;
  k.op_type = arith_name(kind);
  k.min_opset = 7;  // opsets 1-6 used the legacy broadcast/axis attributes
  k.max_opset = 17;
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 2);
    check_same_numeric(ctx, in[0].info.dtype, in[1].info.dtype);
    return std::vector<ValueInfo>{broadcast_info(ctx, in[0], in[1], in[0].info.dtype)};
  };
  return k;
}

OpSchema pow_schema() {
  OpSchema k;
  k.op_type = "Pow";
  k.min_opset = 7;
  k.max_opset = 17;
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 2);
    for (const auto& i : in)
      if (!is_numeric(i.info.dtype))
        fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(i.info.dtype) + " is not supported");
    return std::vector<ValueInfo>{broadcast_info(ctx, in[0], in[1], in[0].info.dtype)};
  };
  return k;
}

OpSchema unary_schema(const char* name, int min_opset, DTypeSet domain) {
  OpSchema k;
  k.op_type = name;
  k.min_opset = min_opset;
  k.max_opset = 17;
  k.infer = [domain](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    if (!dtype_in(domain, in[0].info.dtype))
      fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(in[0].info.dtype) + " is not supported");
    return std::vector<ValueInfo>{in[0].info};
  };
  return k;
}

OpSchema identity_schema() {
  OpSchema k;
  k.op_type = "Identity";
  k.min_opset = 1;
  k.max_opset = 17;
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    if (in[0].info.dtype == DType::kString || in[0].info.dtype == DType::kUndefined)
      fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(in[0].info.dtype) + " is not supported");
    return std::vector<ValueInfo>{in[0].info};
  };
  return k;
}

OpSchema clip_schema() {
  OpSchema k;
  k.op_type = "Clip";
  k.min_opset = 6;
  k.max_opset = 17;
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    DType dt = in[0].info.dtype;
    bool ok = ctx.opset < 12 ? is_float(dt) : is_numeric(dt);
    if (!ok) fail(ctx, ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dt) + " is not supported");
    for (size_t i = 1; i < in.size() && i < 3; ++i)
      if (in[i].present && in[i].info.dtype != dt)
        fail(ctx, ErrorCode::kInvalidArgument, "min/max dtype differs from the input's");
    return std::vector<ValueInfo>{in[0].info};
  };
  return k;
}

OpSchema cast_schema() {
  OpSchema k;
  k.op_type = "Cast";
  k.min_opset = 6;  // opset 1-5 named the target type with a string
  k.max_opset = 17;
  k.infer = [](const OpContext& ctx, const std::vector<InferInput>& in) {
    require_inputs(ctx, in.size(), 1);
    auto to = static_cast<DType>(ctx.node.attr_i("to", 0));
    if (!castable(in[0].info.dtype) || !castable(to))
      fail(ctx, ErrorCode::kUnsupported,
           std::string("cast from ") + dtype_name(in[0].info.dtype) + " to " + dtype_name(to) + " is not supported");
    ValueInfo v = in[0].info;
    v.dtype = to;
    return std::vector<ValueInfo>{v};
  };
  return k;
}

}  // namespace
}  // namespace damoyolo::graph::ops

namespace damoyolo::graph {

void register_elementwise_schemas() {
  using namespace ops;
  register_schema(arith_schema(Arith::kAdd));
  register_schema(arith_schema(Arith::kSub));
  register_schema(arith_schema(Arith::kMul));
  register_schema(arith_schema(Arith::kDiv));
  register_schema(pow_schema());
  register_schema(unary_schema("Relu", 1, DTypeSet::kSigned));
  register_schema(unary_schema("LeakyRelu", 1, DTypeSet::kFloat));
  register_schema(unary_schema("Sigmoid", 1, DTypeSet::kFloat));
  register_schema(unary_schema("Exp", 1, DTypeSet::kFloat));
  register_schema(unary_schema("Floor", 1, DTypeSet::kFloat));
  register_schema(unary_schema("Sqrt", 1, DTypeSet::kFloat));
  register_schema(unary_schema("Neg", 1, DTypeSet::kSigned));
  register_schema(identity_schema());
  register_schema(clip_schema());
  register_schema(cast_schema());
}

}  // namespace damoyolo::graph
