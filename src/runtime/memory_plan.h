// Static memory planning for the optimised engine.
//
// Every intermediate buffer is known at compile time with its size and the
// range of steps that touch it. Buffers whose step ranges do not overlap can
// share bytes, so the whole model's scratch becomes one arena whose size is
// far below the sum of its tensors (XNNPACK's memory-planner idea: place the
// largest buffers first, each at the lowest-waste gap among the buffers it
// overlaps in time).
#pragma once

#include <cstddef>
#include <vector>

namespace damoyolo::runtime {

struct BufferLifetime {
  size_t bytes = 0;
  int first_step = 0;  // first step that writes or reads the buffer
  int last_step = 0;   // last step that reads or writes it (inclusive)
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // one per BufferLifetime, each a multiple of the alignment
  size_t total_bytes = 0;       // arena size needed (a multiple of the alignment)
};

// Places buffers by lifetime: two buffers share bytes only when their step
// ranges are disjoint. Greedy, largest first (ties: earlier first_step, then
// lower index), each at the best-fitting gap. Deterministic.
MemoryPlan plan_memory(const std::vector<BufferLifetime>& buffers, size_t alignment = 64);

// The ablation baseline (memory_planning off): every buffer gets its own bytes.
MemoryPlan plan_memory_without_reuse(const std::vector<BufferLifetime>& buffers, size_t alignment = 64);

}  // namespace damoyolo::runtime
