// How the graph layer computes a node when a pass needs values: constant
// folding (graph/passes/passes.h), and pattern checks that run a matched
// subgraph on synthetic data before rewriting it.
//
// The graph layer defines only this signature; it never includes a kernel.
// The caller injects the implementation — the api layer passes
// kernels::ref::evaluator() (the reference kernels) — so the graph sits below
// the kernels (docs/engine.md, "Layers") and a test can pass anything.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "graph/graph.h"

namespace damoyolo::graph {

// The outputs of `node` for concrete `inputs` (Tensor{} for an omitted
// optional input) at `opset`, the version of the node's domain. Throws
// damoyolo::Error naming the node, like the kernels.
using Evaluator = std::function<std::vector<Tensor>(const Node& node, const std::vector<Tensor>& inputs, int64_t opset)>;

}  // namespace damoyolo::graph
