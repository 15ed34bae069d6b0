// Engines compile a Graph into a CompiledModel; each thread that runs it uses
// its own ExecutionContext (the arena and per-run scratch live there), so one
// loaded model serves concurrent callers without locks on the hot path.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "damoyolo/plan.h"
#include "damoyolo/status.h"
#include "damoyolo/options.h"  // Engine, Precision, SessionOptions
#include "graph/graph.h"
#include "kernels/dnnl/weight_cache.h"

namespace damoyolo::runtime {

class ExecutionContext {
 public:
  virtual ~ExecutionContext() = default;
  // inputs: one per graph input, already validated (dtype/shape) by the caller.
  // outputs: one per graph output. A defined tensor is preallocated by the
  // caller with the output's shape and the engine writes into it (no
  // allocation in the steady state); an undefined one is allocated by the engine.
  virtual void run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) = 0;
  // The same with the buffers as bare pointers (one per input, one per
  // output), each holding exactly input_infos()/output_infos() of the model:
  // Session's images_on_threads path runs one image of a batch tensor per
  // call with it, pointing into the batch's own buffers, without building
  // Tensor views (which allocate). Engines without it throw kUnsupported.
  virtual void run_raw(const void* const*, void* const*) {
    throw Error(ErrorCode::kUnsupported, "this engine runs tensors only (no run_raw)");
  }
};

class CompiledModel {
 public:
  virtual ~CompiledModel() = default;
  virtual std::unique_ptr<ExecutionContext> create_context() const = 0;
  // Shapes of the outputs for the batch this model was compiled for.
  virtual std::vector<TensorInfo> output_infos() const = 0;
  virtual std::vector<TensorInfo> input_infos() const = 0;
  virtual size_t arena_bytes() const { return 0; }
  virtual Engine engine() const = 0;
  // What run() executes, step by step (damoyolo/plan.h).
  virtual const CompiledPlan& plan() const = 0;
};

// Packed weights shared by the optimised plans of one model (one plan per
// batch size): a convolution whose packed layout another plan already made
// reuses those bytes instead of packing a second copy. Thread-safe.
using WeightCache = kernels::dnnl_ops::WeightCache;
using WeightCacheStats = kernels::dnnl_ops::WeightCacheStats;
std::shared_ptr<WeightCache> make_weight_cache();
// Convolutions packed so far / found already packed (for tests).
WeightCacheStats weight_cache_stats(const WeightCache& cache);

// The oracle: walks the graph node by node with the reference kernels.
std::unique_ptr<CompiledModel> compile_reference(const graph::Graph& g, const SessionOptions& opts);
// oneDNN engine. A node it cannot lower runs on the reference kernels as a
// fallback step for that node alone (the plan lists it). Throws
// Error(kUnsupported) only when the graph as a whole cannot be compiled
// (no static shapes, non-float inputs/outputs, a fallback at a batch the
// export's constants do not allow).
// `weights` (optional) shares packed weights with other plans of the same graph.
std::unique_ptr<CompiledModel> compile_optimized(const graph::Graph& g, const SessionOptions& opts,
                                                 WeightCache* weights = nullptr);

}  // namespace damoyolo::runtime
