#include "testutil/alloc_counter.h"

#include <dlfcn.h>
#include <execinfo.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

// TSan's runtime defines operator new/delete itself (a second definition does
// not link), so under TSan nothing is replaced and nothing counted:
// allocation_counting() says so and the tests that count skip.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DAMOYOLO_TSAN_BUILD 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define DAMOYOLO_TSAN_BUILD 1
#endif

// GCC cannot see that the replaced new/delete pair up.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {

std::atomic<int64_t> g_count{0};
std::atomic<int64_t> g_bytes{0};
std::atomic<bool> g_attributing{false};
std::atomic<int64_t> g_outside{0};
std::atomic<int64_t> g_inside{0};
std::atomic<size_t> g_inside_largest{0};
thread_local bool t_in_hook = false;  // backtrace()/dladdr() may allocate themselves

bool called_from_dnnl() {
  void* frames[48];
  int n = backtrace(frames, 48);
  for (int i = 2; i < n; ++i) {
    Dl_info info;
    if (dladdr(frames[i], &info) && info.dli_fname && std::strstr(info.dli_fname, "libdnnl")) return true;
  }
  return false;
}

void record(std::size_t n) {
  g_count.fetch_add(1, std::memory_order_relaxed);
  g_bytes.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed);
  if (!g_attributing.load(std::memory_order_relaxed) || t_in_hook) return;
  t_in_hook = true;
  if (called_from_dnnl()) {
    g_inside.fetch_add(1, std::memory_order_relaxed);
    size_t prev = g_inside_largest.load();
    while (n > prev && !g_inside_largest.compare_exchange_weak(prev, n)) {
    }
  } else {
    g_outside.fetch_add(1, std::memory_order_relaxed);
  }
  t_in_hook = false;
}

[[maybe_unused]] void* counted_alloc(std::size_t n, std::size_t align) {
  record(n);
  if (n == 0) n = 1;
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

#ifndef DAMOYOLO_TSAN_BUILD
void* operator new(std::size_t n) { return counted_alloc(n, 0); }
void* operator new[](std::size_t n) { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
// The nothrow forms too: by default they call the forms above, but a
// sanitizer runtime (ASan) brings its own, which would then be freed by the
// std::free below (an alloc-dealloc mismatch) and not be counted.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted_alloc(n, 0); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted_alloc(n, 0); } catch (...) { return nullptr; }
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return counted_alloc(n, static_cast<std::size_t>(a)); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return counted_alloc(n, static_cast<std::size_t>(a)); } catch (...) { return nullptr; }
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

#endif  // DAMOYOLO_TSAN_BUILD

namespace damoyolo::testing {

bool allocation_counting() {
#ifdef DAMOYOLO_TSAN_BUILD
  return false;
#else
  return true;
#endif
}

AllocationTotals allocation_totals() { return {g_count.load(), g_bytes.load()}; }

AttributeAllocations::AttributeAllocations() {
  g_outside = 0;
  g_inside = 0;
  g_inside_largest = 0;
  g_attributing = true;
}
AttributeAllocations::~AttributeAllocations() { g_attributing = false; }
int64_t AttributeAllocations::outside_dnnl() const { return g_outside.load(); }
int64_t AttributeAllocations::inside_dnnl() const { return g_inside.load(); }
size_t AttributeAllocations::largest_inside_dnnl() const { return g_inside_largest.load(); }

}  // namespace damoyolo::testing
