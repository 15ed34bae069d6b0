#include "runtime/arena.h"

#include <cstdlib>
#include <new>

namespace damoyolo::runtime {

void Arena::AlignedFree::operator()(std::byte* p) const { std::free(p); }

Arena::Arena(size_t bytes, size_t alignment) {
  size_ = (bytes + alignment - 1) / alignment * alignment;
  if (size_ == 0) return;
  // aligned_alloc requires the size to be a multiple of the alignment (done above).
  void* p = std::aligned_alloc(alignment, size_);
  if (!p) throw std::bad_alloc();
  data_.reset(static_cast<std::byte*>(p));
}

}  // namespace damoyolo::runtime
