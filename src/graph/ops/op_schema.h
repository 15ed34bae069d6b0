// Operator schemas: what the graph layer knows about each operator without
// computing it — which (domain, op type, opset range) exist and how to infer
// their output dtypes and shapes (InferFn). Shape inference and every graph
// pass read these; the kernels (src/kernels/reference, dnnl) only compute.
// Keeping the shape rules here, beside the IR, is what lets the graph layer
// sit below the kernels (docs/engine.md, "Layers").
//
// An InferFn throws damoyolo::Error naming the node (fail() below) when the
// node is invalid or unsupported; it reports an output whose shape depends on
// data it cannot see as has_shape = false and leaves the decision to the
// caller.
//
// Adding an operator (either domain):
//   schema  one line in the family's register_*_schemas() (ops/*.cc), e.g.
//             register_schema({kDamoYoloDomain, "Silu", 1, 1, silu_infer});
//           a new family file adds its register function to the list in
//           op_schema.cc (explicit calls, not static registrars: a static
//           library drops object files nothing references);
//   kernel  one line in the reference kernels' register_*_kernels()
//           (src/kernels/reference/registry.h), e.g.
//             register_kernel({kDamoYoloDomain, "Silu", 1, 1, silu_compute});
// tests/graph/op_schema_test.cc fails until both exist with the same opsets.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.h"

namespace damoyolo::graph {

// The ONNX default domain is spelled "" (or "ai.onnx") in files; schemas use "".
// (char arrays, not string_views, so that they initialise a std::string field.)
inline constexpr char kDefaultDomain[] = "";
// This project's own operators (fused forms the graph passes create).
inline constexpr char kDamoYoloDomain[] = "com.damoyolo";
// "" and "ai.onnx" are the same domain.
std::string_view canonical_domain(std::string_view domain);

// Input i of a node as seen by infer: its info and, when it is a constant, its value.
struct InferInput {
  ValueInfo info;
  const Tensor* value = nullptr;  // non-null when the input is known at load time
  bool present = false;           // false for an omitted optional input
};

struct OpContext {
  const Node& node;
  int64_t opset;  // the model's opset of the node's domain (Graph::opset_for)
};

using InferFn = std::function<std::vector<ValueInfo>(const OpContext&, const std::vector<InferInput>&)>;

struct OpSchema {
  std::string domain;    // "" for ai.onnx
  std::string op_type;
  int min_opset = 1;     // lowest opset of the domain whose semantics are supported
  int max_opset = 17;    // highest
  InferFn infer;
};

// Adds or replaces the schema of (domain, op_type).
void register_schema(OpSchema schema);
// nullptr when the op is not known in that domain.
const OpSchema* find_schema(std::string_view domain, std::string_view op_type);
// Every schema, sorted by (domain, op type).
std::vector<const OpSchema*> all_schemas();
// Throws kUnsupported naming the node, op and opset when the domain, op or
// opset is not supported.
const OpSchema& schema_for(const Node& node, int64_t opset);

// The families, each defined in its own file and called once by op_schema.cc.
void register_elementwise_schemas();  // ops/elementwise.cc
void register_tensor_schemas();       // ops/tensor_ops.cc
void register_nn_schemas();           // ops/nn_ops.cc
void register_fused_schemas();        // ops/fused_ops.cc: com.damoyolo FusedConv Silu DamoYoloHead
void register_quantize_schemas();     // ops/quantize.cc: QuantizeLinear DequantizeLinear

// A com.damoyolo FusedConv as the plain ONNX Conv it started from (its conv
// attributes and X, W, B), and the ai.onnx opset to evaluate that Conv at
// (Conv's semantics have not changed since opset 1): the FusedConv schema and
// reference kernel are that Conv followed by the post-ops.
Node fused_conv_as_conv(const Node& fused);
inline constexpr int64_t kFusedConvOnnxOpset = 11;

}  // namespace damoyolo::graph
