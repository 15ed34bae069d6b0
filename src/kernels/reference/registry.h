// Reference kernels: one plain implementation per ONNX operator.
//
// This is the oracle every optimised path is tested against, so each kernel is
// written for clarity: explicit loops, double-checked index arithmetic, fresh
// output tensors per call. Each operator provides two functions:
//   infer   — output dtypes and shapes from input infos (and the values of
//             constant inputs, for ops like Reshape whose output shape depends
//             on data). Used by shape inference and constant folding.
//   compute — the outputs from concrete inputs.
// Both throw damoyolo::Error with a message naming the node.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.h"

namespace damoyolo::kernels::ref {

using graph::Node;
using graph::ValueInfo;

// Input i of a node as seen by infer: its info and, when it is a constant, its value.
struct InferInput {
  ValueInfo info;
  const Tensor* value = nullptr;  // non-null when the input is known at load time
  bool present = false;           // false for an omitted optional input
};

struct OpContext {
  const Node& node;
  int64_t opset;  // the model's ai.onnx opset
};

using InferFn = std::function<std::vector<ValueInfo>(const OpContext&, const std::vector<InferInput>&)>;
// inputs[i] is undefined (Tensor{}) for an omitted optional input.
using ComputeFn = std::function<std::vector<Tensor>(const OpContext&, const std::vector<Tensor>&)>;

struct OpKernel {
  std::string op_type;
  std::string domain;    // "" (ai.onnx) or "com.damoyolo" for the fusion passes' ops
  int min_opset = 1;     // lowest ai.onnx opset whose semantics this kernel implements
  int max_opset = 17;    // highest
  InferFn infer;
  ComputeFn compute;
};

// Registers a kernel (called from static registrars in each kernel file).
void register_kernel(OpKernel kernel);
// nullptr when the op is not supported at all.
const OpKernel* find_kernel(std::string_view op_type);
// Every registered op type, sorted.
std::vector<std::string> supported_ops();

// Throws kUnsupported naming the node, op and opset when the op or opset is not supported.
const OpKernel& kernel_for(const Node& node, int64_t opset);

// Kernel groups, each defined in its own file and called once by the registry.
// (Explicit calls rather than static self-registration: static libraries drop
// object files nothing references, which would silently lose kernels.)
void register_elementwise_kernels();  // elementwise.cc: Add Sub Mul Div Relu Sigmoid Exp Floor LeakyRelu Identity Cast ...
void register_tensor_kernels();       // tensor_ops.cc: Shape Constant Reshape Transpose Concat Slice Gather Unsqueeze Squeeze Flatten Split Pad
void register_nn_kernels();           // nn_ops.cc: Conv BatchNormalization MaxPool Resize Softmax MatMul ReduceSum ReduceMax
void register_fused_kernels();        // fused_ops.cc: com.damoyolo FusedConv Silu DamoYoloHead

// Helpers shared by kernels.
[[noreturn]] void fail(const OpContext& ctx, ErrorCode code, const std::string& what);
// Numpy-style broadcast of two shapes; throws naming the node on mismatch.
Shape broadcast_shapes(const OpContext& ctx, const Shape& a, const Shape& b);
// Reads an integer tensor (int32/int64) as int64 values.
std::vector<int64_t> to_int64_vector(const Tensor& t);
// Reads a float-ish tensor (f32/f64/f16) as floats.
std::vector<float> to_float_vector(const Tensor& t);
// Normalises a possibly negative axis into [0, rank); throws when out of range.
int64_t normalize_axis(const OpContext& ctx, int64_t axis, int64_t rank);

}  // namespace damoyolo::kernels::ref
