#include "kernels/dnnl/weight_cache.h"

namespace damoyolo::kernels::dnnl_ops {

bool WeightCache::find(const std::string& node, float scale, const dnnl::memory::desc& md, dnnl::memory& w,
                       dnnl::memory& b) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto [lo, hi] = entries_.equal_range(node);
  for (auto it = lo; it != hi; ++it)
    if (it->second.scale == scale && it->second.md == md) {
      w = it->second.weights;
      b = it->second.bias;
      ++stats_.reused;
      return true;
    }
  return false;
}

void WeightCache::add(const std::string& node, float scale, const dnnl::memory::desc& md, const dnnl::memory& w,
                      const dnnl::memory& b) {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.emplace(node, Entry{scale, md, w, b});
  ++stats_.packed;
}

WeightCacheStats WeightCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace damoyolo::kernels::dnnl_ops
