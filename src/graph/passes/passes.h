// Graph passes every export needs before execution.
//
//   infer_shapes_and_fold   dtype/shape for every value; nodes whose inputs are
//                           all known at load time (constants, or Shape of a
//                           statically shaped value, and what is computed from
//                           those) are evaluated once by the caller's Evaluator
//                           (graph/evaluator.h; the api layer passes the
//                           reference kernels'). Shapes come from the op
//                           schemas (graph/ops/op_schema.h).
//                           Folding replaces them by constants: this turns the
//                           Shape → Gather → Unsqueeze → Concat → Reshape
//                           arithmetic of unsimplified exports into plain
//                           constant shapes. Without folding they stay as nodes
//                           (and run at inference), but their values still feed
//                           shape inference, so shapes are as static as with it.
//                           ONNX Constant nodes become constants either way.
//                           This is also the QDQ weight fold (there is no
//                           separate fold_qdq_weights pass: it would repeat
//                           this one):
//                             DequantizeLinear(int8 W, scale, zp) → W' (float)
//                             DequantizeLinear(int32 B, scale)    → B' (float)
//                           so a Conv of a quantised model gets float constant
//                           weights and lowers to oneDNN; the int8 constants
//                           are dropped as dead (tests/engine/qdq_test.cc).
//   eliminate_identity      x → Identity → y  ⇒  consumers of y read x.
//   eliminate_dead_nodes    drops nodes (and constants) no graph output needs.
#pragma once

#include "damoyolo/limits.h"
#include "graph/evaluator.h"
#include "graph/graph.h"

namespace damoyolo::graph {

struct PassOptions {
  bool constant_folding = true;  // OptimizationOptions::constant_folding
  // Require every value to have a fully known static shape afterwards (the
  // optimised engine needs this; the reference engine can size at run time).
  bool require_static_shapes = true;
  // Every graph input and every value shape inference sizes is checked
  // against these before a kernel runs on it (folding) or an engine sees it.
  ModelLimits limits;
};

// Fails with kUnsupported naming the node/op/opset when any node cannot be run,
// and with kOutOfRange naming the input or node when a shape is over `limits`
// (checked before a node is folded, so nothing over the limits is allocated).
// `evaluate` computes the nodes whose inputs are all known (it must be set).
void infer_shapes_and_fold(Graph& g, bool fold, bool require_static_shapes, const ModelLimits& limits,
                           const Evaluator& evaluate);
void eliminate_identity(Graph& g);
void eliminate_dead_nodes(Graph& g);
// Cast to the dtype the value already has becomes Identity (needs inferred dtypes).
void mark_noop_casts_as_identity(Graph& g);

// The standard pipeline, in order: identity, infer+fold, no-op casts, identity, dead nodes.
void run_standard_passes(Graph& g, const PassOptions& options, const Evaluator& evaluate);

// Sets the leading (batch) dimension of every graph input; used before shape
// inference when a model with a symbolic batch is run at a concrete batch.
void set_input_batch(Graph& g, int64_t batch);

}  // namespace damoyolo::graph
