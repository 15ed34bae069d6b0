// Packed convolution weights shared by the optimised plans of one model.
//
// A model gets one plan per batch size (Session: compiled_batches()); oneDNN
// usually picks the same weight layout for each, so a convolution packed by
// one plan is reused by the next instead of packing a second copy. The node,
// the scale folded into the weights and the packed layout identify a packing.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace damoyolo::kernels::dnnl_ops {

// Convolutions packed so far / found already packed (for tests).
struct WeightCacheStats {
  int packed = 0, reused = 0;
};

// Thread-safe: plans of several batch sizes may compile concurrently.
class WeightCache {
 public:
  bool find(const std::string& node, float scale, const dnnl::memory::desc& md, dnnl::memory& w, dnnl::memory& b);
  void add(const std::string& node, float scale, const dnnl::memory::desc& md, const dnnl::memory& w,
           const dnnl::memory& b);
  WeightCacheStats stats() const;

 private:
  struct Entry {
    float scale;
    dnnl::memory::desc md;
    dnnl::memory weights, bias;
  };
  mutable std::mutex mutex_;
  std::unordered_multimap<std::string, Entry> entries_;
  WeightCacheStats stats_;
};

}  // namespace damoyolo::kernels::dnnl_ops
