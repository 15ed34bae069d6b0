// Exact offsets of the lifetime-based memory planner.
#include <gtest/gtest.h>

#include "runtime/memory_plan.h"

namespace damoyolo::runtime {
namespace {

TEST(MemoryPlan, DisjointLifetimesShareBytes) {
  // a: steps 0-1, b: 2-3 → b reuses a's bytes.
  auto plan = plan_memory({{1000, 0, 1}, {1000, 2, 3}});
  EXPECT_EQ(plan.offsets[0], 0u);
  EXPECT_EQ(plan.offsets[1], 0u);
  EXPECT_EQ(plan.total_bytes, 1024u);
}

TEST(MemoryPlan, OverlappingLifetimesStackLargestFirst) {
  // All alive at step 1; the largest goes first at 0, then by size.
  auto plan = plan_memory({{64, 0, 1}, {256, 1, 2}, {128, 1, 3}});
  EXPECT_EQ(plan.offsets[1], 0u);
  EXPECT_EQ(plan.offsets[2], 256u);
  EXPECT_EQ(plan.offsets[0], 384u);
  EXPECT_EQ(plan.total_bytes, 448u);
}

TEST(MemoryPlan, BestFitPicksTheTightestGap) {
  // Big buffers 0 (0..1023) and 1 (placed above) live at steps 0-9; two
  // short-lived buffers at step 5 leave gaps; a later small buffer goes into
  // the smallest gap that fits.
  std::vector<BufferLifetime> b = {
      {1024, 0, 9},  // 0 → offset 0
      {512, 0, 9},   // 1 → 1024
      {256, 0, 2},   // 2 → 1536 (dies at 2)
      {128, 0, 2},   // 3 → 1792 (dies at 2)
      {192, 3, 4},   // 4: gap [1536,1920) free at step 3 → 1536
      {64, 3, 4},    // 5: remaining gap [1728,1920) → 1728
  };
  auto plan = plan_memory(b);
  EXPECT_EQ(plan.offsets[0], 0u);
  EXPECT_EQ(plan.offsets[1], 1024u);
  EXPECT_EQ(plan.offsets[2], 1536u);
  EXPECT_EQ(plan.offsets[3], 1792u);
  EXPECT_EQ(plan.offsets[4], 1536u);
  EXPECT_EQ(plan.offsets[5], 1728u);
  EXPECT_EQ(plan.total_bytes, 1920u);
}

TEST(MemoryPlan, OffsetsAreAlignedAndSizesRoundedUp) {
  auto plan = plan_memory({{1, 0, 0}, {65, 0, 0}, {3, 0, 0}});
  for (size_t o : plan.offsets) EXPECT_EQ(o % 64, 0u);
  EXPECT_EQ(plan.offsets[1], 0u);    // 65 → 128 bytes
  EXPECT_EQ(plan.offsets[2], 128u);  // ordered by requested bytes, not rounded ones
  EXPECT_EQ(plan.offsets[0], 192u);
  EXPECT_EQ(plan.total_bytes, 256u);
}

TEST(MemoryPlan, NoTwoLiveBuffersOverlap) {
  std::vector<BufferLifetime> b;
  for (int i = 0; i < 200; ++i) b.push_back({static_cast<size_t>((i * 7919) % 5000 + 1), i % 37, i % 37 + (i % 11)});
  auto plan = plan_memory(b);
  for (size_t i = 0; i < b.size(); ++i)
    for (size_t j = i + 1; j < b.size(); ++j) {
      bool time = b[i].first_step <= b[j].last_step && b[j].first_step <= b[i].last_step;
      bool space = plan.offsets[i] < plan.offsets[j] + b[j].bytes && plan.offsets[j] < plan.offsets[i] + b[i].bytes;
      ASSERT_FALSE(time && space) << i << " vs " << j;
    }
  auto flat = plan_memory_without_reuse(b);
  EXPECT_LT(plan.total_bytes, flat.total_bytes);
}

TEST(MemoryPlan, WithoutReuseGivesEachBufferItsOwnBytes) {
  auto plan = plan_memory_without_reuse({{10, 0, 0}, {100, 1, 1}, {64, 2, 2}});
  EXPECT_EQ(plan.offsets, (std::vector<size_t>{0, 64, 192}));
  EXPECT_EQ(plan.total_bytes, 256u);
}

}  // namespace
}  // namespace damoyolo::runtime
