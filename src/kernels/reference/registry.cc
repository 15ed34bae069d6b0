#include "kernels/reference/registry.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>

namespace damoyolo::kernels::ref {
namespace {

std::map<std::string, OpKernel, std::less<>>& table() {
  static std::map<std::string, OpKernel, std::less<>> t;
  return t;
}

void ensure_registered() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_elementwise_kernels();
    register_tensor_kernels();
    register_nn_kernels();
    register_fused_kernels();
  });
}

}  // namespace

void register_kernel(OpKernel kernel) {
  std::string name = kernel.op_type;
  table()[name] = std::move(kernel);
}

const OpKernel* find_kernel(std::string_view op_type) {
  ensure_registered();
  auto it = table().find(op_type);
  return it == table().end() ? nullptr : &it->second;
}

std::vector<std::string> supported_ops() {
  ensure_registered();
  std::vector<std::string> ops;
  for (const auto& [name, k] : table())
    if (k.domain.empty()) ops.push_back(name);  // the ONNX ops a model file may use
  return ops;
}

const OpKernel& kernel_for(const Node& node, int64_t opset) {
  const bool onnx_domain = node.domain.empty() || node.domain == "ai.onnx";
  const OpKernel* k = find_kernel(node.op_type);
  // This project's own ops (graph/passes/fusion.h) live in their domain.
  if (!onnx_domain && !(k && k->domain == node.domain))
    throw Error(ErrorCode::kUnsupported, node.describe() + ": operator domain '" + node.domain +
                                             "' is not supported (only the default ai.onnx domain)");
  if (onnx_domain && k && !k->domain.empty()) k = nullptr;
  if (!k)
    throw Error(ErrorCode::kUnsupported, node.describe() + ": operator '" + node.op_type +
                                             "' is not supported (opset " + std::to_string(opset) + ")");
  if (opset < k->min_opset || opset > k->max_opset)
    throw Error(ErrorCode::kUnsupported,
                node.describe() + ": opset " + std::to_string(opset) + " is not supported for " + node.op_type +
                    " (supported: " + std::to_string(k->min_opset) + ".." + std::to_string(k->max_opset) + ")");
  return *k;
}

void fail(const OpContext& ctx, ErrorCode code, const std::string& what) {
  throw Error(code, ctx.node.describe() + ": " + what);
}

Shape broadcast_shapes(const OpContext& ctx, const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da == db || db == 1) out[i] = da;
    else if (da == 1) out[i] = db;
    else if (da < 0 || db < 0) out[i] = -1;
    else fail(ctx, ErrorCode::kInvalidArgument,
              "shapes " + shape_to_string(a) + " and " + shape_to_string(b) + " cannot be broadcast");
  }
  return out;
}

std::vector<int64_t> to_int64_vector(const Tensor& t) {
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  switch (t.dtype()) {
    case DType::kInt64: if (!v.empty()) std::memcpy(v.data(), t.raw(), v.size() * 8); break;
    case DType::kInt32: for (size_t i = 0; i < v.size(); ++i) v[i] = t.data<int32_t>()[i]; break;
    case DType::kUInt8: for (size_t i = 0; i < v.size(); ++i) v[i] = t.data<uint8_t>()[i]; break;
    case DType::kInt8: for (size_t i = 0; i < v.size(); ++i) v[i] = t.data<int8_t>()[i]; break;
    case DType::kBool: for (size_t i = 0; i < v.size(); ++i) v[i] = t.data<uint8_t>()[i]; break;
    default:
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("expected an integer tensor, got ") + dtype_name(t.dtype()));
  }
  return v;
}

std::vector<float> to_float_vector(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  switch (t.dtype()) {
    case DType::kFloat32: if (!v.empty()) std::memcpy(v.data(), t.raw(), v.size() * 4); break;
    case DType::kFloat64: for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(t.data<double>()[i]); break;
    case DType::kInt64: for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(t.data<int64_t>()[i]); break;
    case DType::kInt32: for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(t.data<int32_t>()[i]); break;
    default:
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("expected a float tensor, got ") + dtype_name(t.dtype()));
  }
  return v;
}

int64_t normalize_axis(const OpContext& ctx, int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    fail(ctx, ErrorCode::kInvalidArgument,
         "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return a;
}

}  // namespace damoyolo::kernels::ref
