#include "graph/ops/op_schema.h"

#include <map>
#include <mutex>
#include <utility>

namespace damoyolo::graph {
namespace {

using Key = std::pair<std::string, std::string>;  // (canonical domain, op type)

std::map<Key, OpSchema, std::less<>>& table() {
  static std::map<Key, OpSchema, std::less<>> t;
  return t;
}

void ensure_registered() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_elementwise_schemas();
    register_tensor_schemas();
    register_nn_schemas();
    register_fused_schemas();
    register_quantize_schemas();
  });
}

bool domain_known(std::string_view domain) {
  for (const auto& [key, schema] : table())
    if (key.first == domain) return true;
  return false;
}

// "(only the default ai.onnx domain)" while no other has a schema, the word
// models have always got; otherwise the list.
std::string supported_domains() {
  std::vector<std::string> custom;
  for (const auto& [key, schema] : table())
    if (!key.first.empty() && (custom.empty() || custom.back() != key.first)) custom.push_back(key.first);
  if (custom.empty()) return "only the default ai.onnx domain";
  std::string s = "supported domains: ai.onnx";
  for (const auto& d : custom) s += ", " + d;
  return s;
}

}  // namespace

std::string_view canonical_domain(std::string_view domain) { return domain == "ai.onnx" ? "" : domain; }

void register_schema(OpSchema schema) {
  schema.domain = std::string(canonical_domain(schema.domain));
  Key key{schema.domain, schema.op_type};
  table()[std::move(key)] = std::move(schema);
}

const OpSchema* find_schema(std::string_view domain, std::string_view op_type) {
  ensure_registered();
  auto it = table().find(Key{std::string(canonical_domain(domain)), std::string(op_type)});
  return it == table().end() ? nullptr : &it->second;
}

std::vector<const OpSchema*> all_schemas() {
  ensure_registered();
  std::vector<const OpSchema*> out;
  for (const auto& [key, schema] : table()) out.push_back(&schema);
  return out;
}

const OpSchema& schema_for(const Node& node, int64_t opset) {
  ensure_registered();
  const std::string_view domain = canonical_domain(node.domain);
  // The default domain's messages are the ones models have always got; a
  // custom domain is named in them so "Silu" cannot be mistaken for an ONNX op.
  if (!domain.empty() && !domain_known(domain))
    throw Error(ErrorCode::kUnsupported, node.describe() + ": operator domain '" + node.domain +
                                             "' is not supported (" + supported_domains() + ")");
  const std::string op = domain.empty() ? node.op_type : std::string(domain) + "." + node.op_type;
  const OpSchema* s = find_schema(domain, node.op_type);
  if (!s)
    throw Error(ErrorCode::kUnsupported, node.describe() + ": operator '" + op + "' is not supported (opset " +
                                             std::to_string(opset) + ")");
  if (opset < s->min_opset || opset > s->max_opset)
    throw Error(ErrorCode::kUnsupported,
                node.describe() + ": opset " + std::to_string(opset) + " is not supported for " + op +
                    " (supported: " + std::to_string(s->min_opset) + ".." + std::to_string(s->max_opset) + ")");
  return *s;
}

}  // namespace damoyolo::graph
