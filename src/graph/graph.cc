#include "graph/graph.h"

#include <algorithm>
#include <unordered_set>

namespace damoyolo::graph {

int64_t Node::attr_i(const std::string& key, int64_t def) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? def : it->second.i;
}
float Node::attr_f(const std::string& key, float def) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? def : it->second.f;
}
std::string Node::attr_s(const std::string& key, const std::string& def) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? def : it->second.s;
}
std::vector<int64_t> Node::attr_ints(const std::string& key, const std::vector<int64_t>& def) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? def : it->second.ints;
}
std::vector<float> Node::attr_floats(const std::string& key, const std::vector<float>& def) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? def : it->second.floats;
}
const std::string& Node::input(size_t i) const {
  static const std::string kEmpty;
  return i < inputs.size() ? inputs[i] : kEmpty;
}
std::string Node::describe() const { return "node '" + name + "' (op " + op_type + ")"; }

bool ValueInfo::fully_known() const {
  if (!has_shape || dtype == DType::kUndefined) return false;
  return std::all_of(shape.begin(), shape.end(), [](int64_t d) { return d >= 0; });
}

int64_t Graph::opset() const {
  auto it = opsets.find("");
  if (it != opsets.end()) return it->second;
  it = opsets.find("ai.onnx");
  return it != opsets.end() ? it->second : 1;
}

int64_t Graph::opset_for(const Node& node) const {
  if (node.domain.empty() || node.domain == "ai.onnx") return opset();
  auto it = opsets.find(node.domain);
  return it != opsets.end() ? it->second : 1;
}

const Tensor* Graph::constant(const std::string& v) const {
  auto it = constants.find(v);
  return it == constants.end() ? nullptr : &it->second;
}

const ValueInfo* Graph::info(const std::string& v) const {
  auto it = values.find(v);
  return it == values.end() ? nullptr : &it->second;
}

std::unordered_map<std::string, size_t> Graph::producers() const {
  std::unordered_map<std::string, size_t> m;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& o : nodes[i].outputs)
      if (!o.empty()) m[o] = i;
  return m;
}

std::unordered_map<std::string, std::vector<size_t>> Graph::consumers() const {
  std::unordered_map<std::string, std::vector<size_t>> m;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& in : nodes[i].inputs)
      if (!in.empty()) m[in].push_back(i);
  return m;
}

void Graph::topological_sort() {
  // Kahn's algorithm, stable: among ready nodes the original order wins, so an
  // already-sorted graph is left exactly as it was.
  std::unordered_set<std::string> available(inputs.begin(), inputs.end());
  for (const auto& [name, t] : constants) available.insert(name);
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  std::vector<bool> done(nodes.size(), false);
  size_t remaining = nodes.size();
  while (remaining) {
    bool progress = false;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (done[i]) continue;
      bool ready = std::all_of(nodes[i].inputs.begin(), nodes[i].inputs.end(),
                               [&](const std::string& in) { return in.empty() || available.count(in); });
      if (!ready) continue;
      for (const auto& o : nodes[i].outputs)
        if (!o.empty()) available.insert(o);
      sorted.push_back(std::move(nodes[i]));
      done[i] = true;
      --remaining;
      progress = true;
    }
    if (!progress) {
      for (size_t i = 0; i < nodes.size(); ++i) {
        if (done[i]) continue;
        for (const auto& in : nodes[i].inputs)
          if (!in.empty() && !available.count(in))
            throw Error(ErrorCode::kParseError, nodes[i].describe() + " reads value '" + in +
                                                    "' that no node, input or initializer provides (or the graph has a cycle)");
      }
      throw Error(ErrorCode::kInternal, "topological sort made no progress");
    }
  }
  nodes = std::move(sorted);
}

}  // namespace damoyolo::graph
