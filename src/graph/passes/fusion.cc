// The fusion pipeline and the helpers the fusion passes share.
#include <unordered_set>

#include "graph/passes/fusion.h"

namespace damoyolo::graph {

namespace fusion {

std::optional<size_t> sole_consumer(const Graph& g,
                                    const std::unordered_map<std::string, std::vector<size_t>>& consumers,
                                    const std::string& v) {
  auto it = consumers.find(v);
  if (it == consumers.end() || it->second.size() != 1) return std::nullopt;
  for (const auto& o : g.outputs)
    if (o == v) return std::nullopt;
  return it->second[0];
}

const char* activation_post_op(const Node& n) {
  if (n.op_type == "Relu" && n.domain.empty()) return "relu";
  if (n.op_type == "Sigmoid" && n.domain.empty()) return "logistic";
  if (n.op_type == "Silu" && n.domain == kDamoYoloDomain) return "swish";
  return "";
}

bool has_sum(const Node& n) {
  auto it = n.attrs.find("post_ops");
  if (it == n.attrs.end()) return false;
  for (const auto& p : it->second.strings)
    if (p == "sum") return true;
  return false;
}

std::optional<float> scalar_constant(const Graph& g, const std::string& v) {
  const Tensor* t = g.constant(v);
  if (!t || t->numel() != 1 || t->dtype() != DType::kFloat32) return std::nullopt;
  return t->data<float>()[0];
}

void rewrite(Graph& g, std::unordered_map<size_t, Node>& replace, const std::vector<bool>& remove) {
  std::vector<Node> nodes;
  std::vector<std::string> gone;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (auto it = replace.find(i); it != replace.end()) {
      for (const auto& o : g.nodes[i].outputs) gone.push_back(o);
      nodes.push_back(std::move(it->second));
    } else if (remove[i]) {
      for (const auto& o : g.nodes[i].outputs) gone.push_back(o);
    } else {
      nodes.push_back(std::move(g.nodes[i]));
    }
  }
  g.nodes = std::move(nodes);
  std::unordered_set<std::string> live(g.inputs.begin(), g.inputs.end());
  live.insert(g.outputs.begin(), g.outputs.end());
  for (const auto& n : g.nodes) live.insert(n.outputs.begin(), n.outputs.end());
  for (const auto& v : gone)
    if (!live.count(v)) g.values.erase(v);
}

Attribute int_attr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}
Attribute float_attr(float v) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = v;
  return a;
}
Attribute string_attr(std::string v) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = std::move(v);
  return a;
}

void add_fused_names(Node& fused, const std::vector<std::string>& names) {
  Attribute& a = fused.attrs["fused_nodes"];
  a.kind = Attribute::Kind::kStrings;
  a.strings.insert(a.strings.end(), names.begin(), names.end());
}

void append_names(std::vector<std::string>& names, const Node& n) {
  names.push_back(n.name);
  if (auto it = n.attrs.find("fused_nodes"); it != n.attrs.end())
    names.insert(names.end(), it->second.strings.begin(), it->second.strings.end());
}

}  // namespace fusion

std::vector<PassRecord> run_fusion_passes(Graph& g, const FusionOptions& o, const NodeEvaluator& eval) {
  std::vector<PassRecord> records;
  // The ops these passes create are version 1 of this project's domain.
  g.opsets.emplace(kDamoYoloDomain, 1);
  auto record = [&](const char* name, int rewrites) { records.push_back({name, rewrites, g.nodes.size()}); };
  if (o.fuse_head) record("fuse_damoyolo_head", fuse_damoyolo_head(g, eval));
  if (o.fuse_conv_activation) {
    record("fuse_silu", fuse_silu(g));
    record("fuse_conv_activation", fuse_conv_activation(g));
  }
  if (o.fuse_conv_residual) record("fuse_conv_residual", fuse_conv_residual(g, o.fuse_conv_activation));
  if (o.int8_convolution) record("fuse_qdq_conv", fuse_qdq_conv(g));
  if (o.zero_copy_concat) record("zero_copy_concat", mark_zero_copy_concat(g));
  return records;
}

}  // namespace damoyolo::graph
