// The graph IR: ONNX's model reduced to what inference needs.
//
// Edges are value names, exactly as in ONNX, so a node prints and debugs the
// same way as in Netron. Constants (initializers and folded values) live in
// Graph::constants; every value with a known dtype/shape has a ValueInfo.
// Nodes are kept in topological order by every pass.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "damoyolo/status.h"
#include "damoyolo/tensor.h"

namespace damoyolo::graph {

struct Attribute {
  enum class Kind { kFloat, kInt, kString, kTensor, kFloats, kInts, kStrings, kGraph };
  Kind kind = Kind::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
};

struct Node {
  std::string name;     // may be empty in the file; the loader fills "<op>_<index>"
  std::string op_type;
  std::string domain;   // "" for ai.onnx
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::map<std::string, Attribute> attrs;

  bool has_attr(const std::string& key) const { return attrs.count(key) != 0; }
  int64_t attr_i(const std::string& key, int64_t def) const;
  float attr_f(const std::string& key, float def) const;
  std::string attr_s(const std::string& key, const std::string& def) const;
  std::vector<int64_t> attr_ints(const std::string& key, const std::vector<int64_t>& def = {}) const;
  std::vector<float> attr_floats(const std::string& key, const std::vector<float>& def = {}) const;
  // Input i's name, or "" when absent/omitted.
  const std::string& input(size_t i) const;
  // "node 'Conv_12' (op Conv)" — used in every error message about a node.
  std::string describe() const;
};

struct ValueInfo {
  DType dtype = DType::kUndefined;
  Shape shape;          // entries < 0 are unknown dimensions
  bool has_shape = false;
  bool fully_known() const;
};

// An integer constant a DequantizeLinear turned into the float constant the
// graph now reads (constant folding, graph/passes/passes.h). Kept so that
// the INT8 pass (graph/passes/fuse_qdq_conv.cc) and the INT8 convolution can
// use the file's integers and scales instead of the dequantised floats.
struct QuantizedConstant {
  Tensor data;        // int8 / uint8 / int32, as the file has it
  Tensor scale;       // float32: one element, or one per slice along axis
  Tensor zero_point;  // data's type, the scale's shape; undefined = 0
  int64_t axis = 1;   // DequantizeLinear's axis (per-axis scales)
};

struct Graph {
  std::string name;
  std::string producer;
  int64_t ir_version = 0;
  // The file's metadata_props (key -> value), e.g. "names" with class names.
  std::map<std::string, std::string> metadata;
  std::map<std::string, int64_t> opsets;  // domain -> version ("" = ai.onnx)
  int64_t opset() const;                  // ai.onnx version
  // The version of the node's domain ("" and "ai.onnx" alike); 1 for a
  // domain the model does not import (passes that insert this project's own
  // ops need not declare it).
  int64_t opset_for(const Node& node) const;

  std::vector<Node> nodes;                 // topological order
  std::vector<std::string> inputs;         // runtime inputs (initializers excluded)
  std::vector<std::string> outputs;
  std::unordered_map<std::string, Tensor> constants;
  std::unordered_map<std::string, ValueInfo> values;
  // Folded DequantizeLinear outputs (constant name -> the integers behind it).
  std::unordered_map<std::string, QuantizedConstant> dequantized;

  bool is_constant(const std::string& v) const { return !v.empty() && constants.count(v) != 0; }
  const Tensor* constant(const std::string& v) const;
  const ValueInfo* info(const std::string& v) const;
  // Map value name -> index of producing node (absent for inputs/constants).
  std::unordered_map<std::string, size_t> producers() const;
  // Map value name -> indices of consuming nodes (graph outputs not included).
  std::unordered_map<std::string, std::vector<size_t>> consumers() const;
  // Re-sorts nodes topologically; throws Error on a cycle or a dangling input.
  void topological_sort();
};

}  // namespace damoyolo::graph
