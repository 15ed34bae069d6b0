#include "runtime/arena.h"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

namespace damoyolo::runtime {

void Arena::AlignedFree::operator()(std::byte* p) const { std::free(p); }

Arena::Arena(size_t bytes, size_t alignment, bool hugepages) {
  const bool huge = hugepages && bytes >= kHugePage;
  if (huge) alignment = std::max(alignment, kHugePage);
  size_ = (bytes + alignment - 1) / alignment * alignment;
  if (size_ == 0) return;
  // aligned_alloc requires the size to be a multiple of the alignment (done above).
  void* p = std::aligned_alloc(alignment, size_);
  if (!p) throw std::bad_alloc();
  // The arena is walked end to end on every inference (tens of MB for 640x640
  // models): 2 MiB pages cut the TLB misses of those sweeps. The kernel here
  // runs transparent huge pages in "madvise" mode, so ask; failure is harmless.
  if (huge) (void)madvise(p, size_, MADV_HUGEPAGE);
  data_.reset(static_cast<std::byte*>(p));
}

}  // namespace damoyolo::runtime
