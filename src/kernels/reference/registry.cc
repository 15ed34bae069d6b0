#include "kernels/reference/registry.h"

#include <map>
#include <mutex>
#include <utility>

namespace damoyolo::kernels::ref {
namespace {

using Key = std::pair<std::string, std::string>;  // (canonical domain, op type)

std::map<Key, OpKernel, std::less<>>& table() {
  static std::map<Key, OpKernel, std::less<>> t;
  return t;
}

void ensure_registered() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_elementwise_kernels();
    register_tensor_kernels();
    register_nn_kernels();
    register_fused_kernels();
    register_quantize_kernels();
  });
}

}  // namespace

void register_kernel(OpKernel kernel) {
  kernel.domain = std::string(graph::canonical_domain(kernel.domain));
  // Each kernel carries its op's shape function (see OpKernel::infer).
  if (const graph::OpSchema* s = graph::find_schema(kernel.domain, kernel.op_type)) kernel.infer = s->infer;
  Key key{kernel.domain, kernel.op_type};
  table()[std::move(key)] = std::move(kernel);
}

const OpKernel* find_kernel(std::string_view domain, std::string_view op_type) {
  ensure_registered();
  auto it = table().find(Key{std::string(graph::canonical_domain(domain)), std::string(op_type)});
  return it == table().end() ? nullptr : &it->second;
}

const OpKernel* find_kernel(std::string_view op_type) { return find_kernel(graph::kDefaultDomain, op_type); }

std::vector<std::string> supported_ops() {
  ensure_registered();
  std::vector<std::string> ops;
  for (const auto& [key, k] : table())
    if (key.first.empty()) ops.push_back(key.second);
  return ops;
}

std::vector<const OpKernel*> all_kernels() {
  ensure_registered();
  std::vector<const OpKernel*> out;
  for (const auto& [key, k] : table()) out.push_back(&k);
  return out;
}

const OpKernel& kernel_for(const Node& node, int64_t opset) {
  // The schema decides what is supported, with the messages shape inference
  // gives; a schema without a kernel is a bug that op_schema_test catches.
  const graph::OpSchema& schema = graph::schema_for(node, opset);
  const OpKernel* k = find_kernel(node.domain, node.op_type);
  if (!k || opset < k->min_opset || opset > k->max_opset)
    throw Error(ErrorCode::kUnsupported, node.describe() + ": no reference kernel for " + schema.op_type +
                                             " at opset " + std::to_string(opset));
  return *k;
}

graph::Evaluator evaluator() {
  return [](const Node& node, const std::vector<Tensor>& inputs, int64_t opset) {
    const OpContext ctx{node, opset};
    return kernel_for(node, opset).compute(ctx, inputs);
  };
}

}  // namespace damoyolo::kernels::ref
