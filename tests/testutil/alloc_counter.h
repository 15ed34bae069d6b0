// A counting global operator new for the test binaries, so tests can prove
// that a steady-state call allocates nothing.
//
// Linking this object (any test that calls a function below pulls it in)
// replaces the global operator new/delete for the whole binary, library under
// test included. Counting is always on and costs two relaxed atomic adds.
#pragma once

#include <cstddef>
#include <cstdint>

namespace damoyolo::testing {

struct AllocationTotals {
  int64_t count = 0;  // operator new calls since the binary started (all threads)
  int64_t bytes = 0;
};
AllocationTotals allocation_totals();
// False in a TSan build, where operator new is TSan's and nothing is counted
// (the counts then stay 0): tests that count skip.
bool allocation_counting();
inline int64_t allocation_count() { return allocation_totals().count; }

// While one of these is alive, every allocation is also attributed by its
// call stack: made inside libdnnl (oneDNN's own bookkeeping in
// primitive::execute, which its API offers no way to avoid) or elsewhere
// (damoyolo and everything else). Slow (a backtrace per allocation): use it
// around a handful of inferences only.
class AttributeAllocations {
 public:
  AttributeAllocations();
  ~AttributeAllocations();
  AttributeAllocations(const AttributeAllocations&) = delete;
  AttributeAllocations& operator=(const AttributeAllocations&) = delete;

  int64_t outside_dnnl() const;
  int64_t inside_dnnl() const;
  size_t largest_inside_dnnl() const;  // bytes
};

}  // namespace damoyolo::testing
