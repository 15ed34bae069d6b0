// Reference kernels: one plain implementation per operator.
//
// This is the oracle every optimised path is tested against, so each kernel is
// written for clarity: explicit loops, double-checked index arithmetic, fresh
// output tensors per call. A kernel only computes (ComputeFn: the outputs from
// concrete inputs); what an operator's outputs look like — its InferFn — is
// its schema's, in the graph layer (graph/ops/op_schema.h), which shape
// inference and constant folding read without depending on this folder.
// Errors are damoyolo::Error with a message naming the node.
//
// Adding a kernel: one register_kernel line in the family's
// register_*_kernels() (or a new family function called from registry.cc),
// keyed like the op's schema, e.g. for this project's custom domain
//   register_kernel({graph::kDamoYoloDomain, "Silu", 1, 1, silu_compute});
// tests/graph/op_schema_test.cc checks that every schema has a kernel with
// the same opsets and vice versa.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/evaluator.h"
#include "graph/graph.h"
#include "graph/ops/op_schema.h"
#include "graph/ops/op_util.h"

namespace damoyolo::kernels::ref {

using graph::Node;
using graph::ValueInfo;
// The context and input types are the schemas'; kernels and their tests name
// them here as before.
using graph::InferFn;
using graph::InferInput;
using graph::OpContext;

// inputs[i] is undefined (Tensor{}) for an omitted optional input.
using ComputeFn = std::function<std::vector<Tensor>(const OpContext&, const std::vector<Tensor>&)>;

struct OpKernel {
  std::string domain;    // "" for ai.onnx
  std::string op_type;
  int min_opset = 1;     // lowest opset of the domain whose semantics this kernel implements
  int max_opset = 17;    // highest
  ComputeFn compute;
  // The op's InferFn, copied from its graph::OpSchema when the table is built
  // (kernels define none): engines that check a kernel's outputs against the
  // inferred ones (the reference engine) find both here.
  InferFn infer;
};

// Registers a kernel (called from the register_*_kernels functions below).
void register_kernel(OpKernel kernel);
// nullptr when no kernel computes (domain, op_type).
const OpKernel* find_kernel(std::string_view domain, std::string_view op_type);
// A default-domain op's kernel.
const OpKernel* find_kernel(std::string_view op_type);
// Every registered default-domain op type, sorted.
std::vector<std::string> supported_ops();
// Every kernel, sorted by (domain, op type).
std::vector<const OpKernel*> all_kernels();

// Throws kUnsupported naming the node, op and opset when the op or opset is
// not supported (graph::schema_for's messages, so a model gets the same words
// from shape inference and from an engine).
const OpKernel& kernel_for(const Node& node, int64_t opset);

// The graph passes' evaluator (graph/evaluator.h) computing with these kernels:
// what the api layer hands to graph::run_standard_passes.
graph::Evaluator evaluator();

// Kernel groups, each defined in its own file and called once by the registry.
// (Explicit calls rather than static self-registration: static libraries drop
// object files nothing references, which would silently lose kernels.)
void register_elementwise_kernels();  // elementwise.cc: Add Sub Mul Div Relu Sigmoid Exp Floor LeakyRelu Identity Cast ...
void register_tensor_kernels();       // tensor_ops.cc: Shape Constant Reshape Transpose Concat Slice Gather Unsqueeze Squeeze Flatten Split Pad
void register_nn_kernels();           // nn_ops.cc: Conv BatchNormalization MaxPool Resize Softmax MatMul ReduceSum ReduceMax
void register_fused_kernels();        // fused_ops.cc: com.damoyolo FusedConv Silu DamoYoloHead
void register_quantize_kernels();     // quantize.cc: QuantizeLinear DequantizeLinear

// Helpers shared by kernels (graph/ops/op_util.h; named here as before).
using graph::ops::broadcast_shapes;
using graph::ops::fail;
using graph::ops::normalize_axis;
using graph::ops::to_float_vector;
using graph::ops::to_int64_vector;

}  // namespace damoyolo::kernels::ref
