// One 64-byte aligned block holding every intermediate tensor of an execution
// context (offsets come from the memory plan). Owned by the context, so
// concurrent contexts never share scratch bytes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>

namespace damoyolo::runtime {

class Arena {
 public:
  Arena() = default;
  // Allocates `bytes` (rounded up to the alignment); not zero-filled: every
  // byte is written by a step before it is read.
  // `hugepages`: for arenas of 2 MiB or more, align to 2 MiB and ask the
  // kernel for transparent huge pages (madvise).
  explicit Arena(size_t bytes, size_t alignment = 64, bool hugepages = true);
  static constexpr size_t kHugePage = size_t{2} << 20;

  std::byte* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct AlignedFree {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte, AlignedFree> data_;
  size_t size_ = 0;
};

}  // namespace damoyolo::runtime
