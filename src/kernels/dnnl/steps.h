// The optimised engine's run-time structures: buffers (slots), references
// into them, and the steps a compiled plan executes.
//
// A lowering (lowering.h) turns one graph node into Steps; the runtime
// (runtime/optimized_engine.cc) places the slots in an arena and, per
// execution context, binds every Step to that context's memory once
// (BoundStep), so that a run only patches the caller's tensors in and executes.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "damoyolo/plan.h"
#include "damoyolo/tensor.h"
#include "kernels/dnnl/dnnl_common.h"

namespace damoyolo::kernels::dnnl_ops {

// A run-time buffer: a region of the arena, or a caller's input/output tensor.
struct Slot {
  enum class Kind { kArena, kInput, kOutput };
  Kind kind = Kind::kArena;
  int external = -1;  // input/output index for external slots
  size_t bytes = 0;
  int first_step = -1, last_step = -1;
  int owners = 0;  // graph values currently held in this slot (views included)
};

// Where one materialisation of a value lives: slot + byte offset + layout.
// A value can have several (e.g. channels-last f32 and a plain copy for a
// fallback consumer); each is created at most once.
struct Ref {
  int slot = -1;
  size_t offset = 0;
  dnnl::memory::desc md;  // zero md for dtypes oneDNN cannot describe (int64 ...)
  DType dtype = DType::kFloat32;
  Shape shape;            // logical (batch-adjusted) shape
  bool view = false;      // shares bytes with another value's buffer
};

// Per-context state every bound step reads.
struct RunState {
  std::vector<std::byte*> slot_ptr;  // arena slots fixed; external ones patched per run
  std::byte* scratchpad = nullptr;
  dnnl::stream stream;
};

class BoundStep {
 public:
  virtual ~BoundStep() = default;
  virtual void run(RunState& rs) = 0;
};

// Creates per-context memory objects; remembers which ones point into
// caller-owned tensors so run() can patch their handles.
class Binder {
 public:
  Binder(RunState& rs, const std::vector<Slot>& slots) : rs_(rs), slots_(slots) {}
  dnnl::memory memory_for(const Ref& r);
  struct External {
    dnnl::memory mem;
    int slot;
    size_t offset;
  };
  std::vector<External>& externals() { return external_; }
  RunState& state() { return rs_; }

 private:
  RunState& rs_;
  const std::vector<Slot>& slots_;
  std::vector<External> external_;
};

class Step {
 public:
  virtual ~Step() = default;
  virtual std::unique_ptr<BoundStep> bind(Binder& b) const = 0;
  PlanStep plan;  // what this step is, for the compiled plan
};

// Any oneDNN primitive: arguments are refs (bound per context) or constant
// memories (weights/bias, shared read-only by every context).
class PrimitiveStep final : public Step {
 public:
  dnnl::primitive prim;
  std::vector<std::pair<int, Ref>> args;
  std::vector<std::pair<int, dnnl::memory>> const_args;
  dnnl::memory::desc scratchpad_md;

  std::unique_ptr<BoundStep> bind(Binder& b) const override;
};

}  // namespace damoyolo::kernels::dnnl_ops
