#include "runtime/memory_plan.h"

#include <algorithm>
#include <cstdint>
#include <numeric>

namespace damoyolo::runtime {
namespace {

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

bool overlap_in_time(const BufferLifetime& a, const BufferLifetime& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}

}  // namespace

MemoryPlan plan_memory(const std::vector<BufferLifetime>& buffers, size_t alignment) {
  MemoryPlan plan;
  plan.offsets.assign(buffers.size(), 0);
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (buffers[a].bytes != buffers[b].bytes) return buffers[a].bytes > buffers[b].bytes;
    return buffers[a].first_step < buffers[b].first_step;
  });

  struct Placed { size_t begin, end; };
  std::vector<size_t> placed;  // indices already assigned, in placement order
  std::vector<Placed> live;    // scratch, reused per buffer
  for (size_t idx : order) {
    const BufferLifetime& buf = buffers[idx];
    const size_t size = round_up(std::max<size_t>(buf.bytes, 1), alignment);
    // Only buffers alive at the same time constrain this one.
    live.clear();
    for (size_t p : placed)
      if (overlap_in_time(buffers[p], buf))
        live.push_back({plan.offsets[p], plan.offsets[p] + round_up(std::max<size_t>(buffers[p].bytes, 1), alignment)});
    std::sort(live.begin(), live.end(), [](const Placed& a, const Placed& b) { return a.begin < b.begin; });

    // Best fit: the smallest gap between live buffers that holds `size`;
    // otherwise just above the highest live buffer.
    size_t best_offset = 0, best_waste = SIZE_MAX, cursor = 0;
    bool found = false;
    for (const Placed& p : live) {
      if (p.begin > cursor && p.begin - cursor >= size && p.begin - cursor - size < best_waste) {
        best_waste = p.begin - cursor - size;
        best_offset = cursor;
        found = true;
      }
      cursor = std::max(cursor, p.end);
    }
    plan.offsets[idx] = found ? best_offset : cursor;
    plan.total_bytes = std::max(plan.total_bytes, plan.offsets[idx] + size);
    placed.push_back(idx);
  }
  return plan;
}

MemoryPlan plan_memory_without_reuse(const std::vector<BufferLifetime>& buffers, size_t alignment) {
  MemoryPlan plan;
  plan.offsets.reserve(buffers.size());
  for (const BufferLifetime& b : buffers) {
    plan.offsets.push_back(plan.total_bytes);
    plan.total_bytes += round_up(std::max<size_t>(b.bytes, 1), alignment);
  }
  return plan;
}

}  // namespace damoyolo::runtime
