// The fusion passes: graph rewrites that leave this project's own ops (domain
// com.damoyolo) in the graph for the optimised engine's lowerings
// (kernels/dnnl/lowering.h) and the reference kernels (kernels/reference/
// fused_ops.cc) to run. Each pass is one file whose opening comment shows its
// rewrite; each returns how many rewrites it made.
//
// A fused node keeps the name of the first ONNX node it replaces and lists
// the others in the attribute `fused_nodes` (strings), and `onnx_op` names the
// ONNX op it started from, so the compiled plan still speaks in the model
// file's nodes. Rewrites keep the graph topologically ordered and keep the
// ValueInfo of every value that survives; values that disappear lose theirs.
//
// Order (run_fusion_passes): the head first (it matches the exported decode
// as ONNX wrote it, stopping at the per-level conv outputs), then SiLU, then
// the conv chains (which may absorb a SiLU), then the residual sums, then the
// quantised convolutions (a whole chain becomes one INT8 convolution, so it
// runs after the chains are fused), then the zero-copy concat marks.
#pragma once

#include <functional>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

#include "graph/evaluator.h"
#include "graph/graph.h"
#include "graph/ops/op_schema.h"

namespace damoyolo::graph {

// Runs one node on given inputs (graph/evaluator.h: the reference kernels,
// supplied by the caller, so the head's numerical confirmation does not make
// the graph layer depend on the kernels).
using NodeEvaluator = Evaluator;

// fuse_damoyolo_head.cc: the decode subgraph → one DamoYoloHead node.
int fuse_damoyolo_head(Graph& g, const NodeEvaluator& eval);
// fuse_silu.cc: Mul(x, Sigmoid(x)) → Silu(x).
int fuse_silu(Graph& g);
// fuse_conv_activation.cc: Conv → [Mul(scalar)] → [Relu|Sigmoid|Silu]* → FusedConv.
int fuse_conv_activation(Graph& g);
// fuse_conv_residual.cc: (Fused)Conv → Add(residual) → [Relu|Sigmoid|Silu]* → FusedConv with a sum.
// absorb_activations: also take the activations after the Add.
int fuse_conv_residual(Graph& g, bool absorb_activations);
// fuse_qdq_conv.cc: DequantizeLinear → (Fused)Conv → [QuantizeLinear] → INT8 FusedConv.
int fuse_qdq_conv(Graph& g);
// zero_copy_concat.cc: marks Concats that read Slice views in place.
int mark_zero_copy_concat(Graph& g);

// Which passes run (OptimizationOptions' switches of the same names).
struct FusionOptions {
  bool fuse_head = true;
  bool fuse_conv_activation = true;  // also fuse_silu
  bool fuse_conv_residual = true;
  bool int8_convolution = true;
  bool zero_copy_concat = true;
};
struct PassRecord {
  std::string name;
  int rewrites = 0;
  size_t nodes_after = 0;
};
// Runs the enabled passes in order; returns what each did.
std::vector<PassRecord> run_fusion_passes(Graph& g, const FusionOptions& o, const NodeEvaluator& eval);

// Helpers the passes share (fusion.cc).
namespace fusion {
// A value with exactly one consumer that is not a graph output: that consumer's index.
std::optional<size_t> sole_consumer(const Graph& g, const std::unordered_map<std::string, std::vector<size_t>>& consumers,
                                    const std::string& v);
// The post-op a fusable activation node becomes: "relu" (Relu), "logistic"
// (Sigmoid), "swish" (com.damoyolo Silu); "" for any other node.
const char* activation_post_op(const Node& n);
// A FusedConv whose post-ops include the residual "sum".
bool has_sum(const Node& n);
// A one-element float32 constant.
std::optional<float> scalar_constant(const Graph& g, const std::string& v);
// Replaces nodes: `replace[i]` (if set) takes node i's place; `remove` nodes
// go; values produced only by removed nodes lose their ValueInfo.
void rewrite(Graph& g, std::unordered_map<size_t, Node>& replace, const std::vector<bool>& remove);
void add_fused_names(Node& fused, const std::vector<std::string>& names);
// Attribute values of one kind.
Attribute int_attr(int64_t v);
Attribute float_attr(float v);
Attribute string_attr(std::string v);
// n's name and the names it already stands for (a fused node absorbed again).
void append_names(std::vector<std::string>& names, const Node& n);
}  // namespace fusion

}  // namespace damoyolo::graph
