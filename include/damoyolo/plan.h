// damoyolo::CompiledPlan — what a Session will execute, as data.
//
// A Session compiles its model once into a flat list of steps. The plan
// describes that list: which ONNX nodes each step computes, the oneDNN
// implementation it got, the layouts it reads and writes, the post-ops fused
// into it, every layout conversion (reorder), and every node that could not be
// lowered and runs on the reference kernels instead (a fallback). Tests assert
// it (no fallback, a known number of reorders) so an optimisation cannot stop
// applying silently; `damoyolo info --plan` prints it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace damoyolo {

enum class Engine;
enum class Precision;

struct PlanStep {
  enum class Kind {
    kPrimitive,  // one oneDNN primitive (conv with its post-ops, pool, resample, eltwise, binary, concat)
    kReorder,    // a layout or data-type conversion oneDNN performs (see `purpose`)
    kFusedHead,  // the DAMO-YOLO decode subgraph as one kernel
    kFallback,   // one node on the reference kernels, on plain tensors
    kView,       // no work at run time: a strided view of another value (e.g. a Slice)
    kReference,  // one node of the reference engine (the whole model runs there)
  };
  Kind kind = Kind::kPrimitive;
  std::string op;                  // the ONNX op type of the step's first node ("Conv", "Slice", ...); "Reorder"
  std::vector<std::string> nodes;  // the ONNX nodes it computes, fused ones included (empty for a reorder)
  std::string implementation;      // oneDNN's implementation name ("brg:avx512_core", "jit:uni", ...)
  std::vector<std::string> post_ops;  // fused into a convolution, in order: "scale", "relu", "swish", "logistic",
                                      // "sum" (residual added in place), "binary_add" (residual read separately)
  std::string src;                 // what it reads, e.g. "f32 acdb 1x3x640x640" (value name first for reorders)
  std::string dst;                 // what it writes, same form
  // kReorder: why it exists: "convert" (a consumer wants another layout or
  // type), "concat" (a source copied into its slice of a concatenation),
  // "output" (into the caller's output tensor).
  std::string purpose;
  // kFallback: why the node was not lowered to oneDNN (the lowering's error,
  // or "no lowering for <op>").
  std::string reason;
};

// One graph pass the optimised engine ran before lowering (the fusion
// passes, graph/passes/fusion.h): how many rewrites it made and how many
// nodes the graph had after it.
struct PlanPass {
  std::string name;  // "fuse_damoyolo_head", "fuse_silu", "fuse_conv_activation", ...
  int rewrites = 0;
  size_t nodes_after = 0;
};

struct CompiledPlan {
  Engine engine{};        // the engine in use (kAuto resolved)
  Precision precision{};
  int64_t batch = 1;      // the batch the steps were compiled for
  // The OpenMP threads its primitives were created for (oneDNN splits each
  // layer's work for them at creation); 0: OpenMP's default at the time.
  int threads = 0;
  // Every step computes each image of the batch from that image alone
  // (graph/batch_separable.h: checked op by op), so a batch may run in pieces
  // (images_on_threads); when not, the first node that prevents it.
  bool batch_separable = false;
  std::string batch_separable_why;
  // Under Engine::kAuto, why the optimised engine was not used ("" when it is):
  // the whole model then runs on the reference engine.
  std::string engine_fallback_reason;
  std::vector<PlanPass> passes;  // in the order they ran; switched-off passes are absent
  std::vector<PlanStep> steps;
  size_t arena_bytes = 0;       // planned intermediates, per execution context
  size_t scratchpad_bytes = 0;  // oneDNN scratch shared by the steps, per context
  size_t weight_bytes = 0;      // packed weights and biases, shared by every context

  int count(PlanStep::Kind k) const {
    int n = 0;
    for (const auto& s : steps) n += s.kind == k;
    return n;
  }
  // Rewrites made by the pass `name` (0 when it did not run).
  int rewrites(const std::string& name) const {
    for (const auto& p : passes)
      if (p.name == name) return p.rewrites;
    return 0;
  }
  int fallbacks() const { return count(PlanStep::Kind::kFallback); }
  int reorders() const { return count(PlanStep::Kind::kReorder); }
  // Steps whose op is `op` (e.g. "Conv").
  int count_op(const std::string& op) const {
    int n = 0;
    for (const auto& s : steps) n += s.op == op;
    return n;
  }
  // A human-readable table, one step a line, then the totals.
  std::string to_text() const;
  // The same as JSON (an object with the fields above; keys as named here).
  std::string to_json(int indent = 2) const;
};

const char* plan_step_kind_name(PlanStep::Kind k);

}  // namespace damoyolo
