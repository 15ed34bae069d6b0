// A bounded FIFO between two pipeline threads, with its storage allocated
// once at construction: push and pop move values through a fixed ring, so a
// stage handing work on never allocates. close() wakes the consumer, which
// then drains what is left and gets false.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

namespace damoyolo::pipeline {

// The ring alone, for callers that hold their own lock (the per-stream
// queues share the pipeline's mutex so that the live policy can look at the
// queue and the free list together).
template <class T>
class Ring {
 public:
  explicit Ring(size_t capacity = 0) : items_(capacity) {}
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ == items_.size(); }
  size_t size() const { return size_; }
  size_t capacity() const { return items_.size(); }
  // Callers check full() first; a push onto a full ring is a bug, refused.
  bool push(T value) {
    if (full()) return false;
    items_[(head_ + size_) % items_.size()] = std::move(value);
    ++size_;
    return true;
  }
  T pop() {
    T value = std::move(items_[head_]);
    head_ = (head_ + 1) % items_.size();
    --size_;
    return value;
  }

 private:
  std::vector<T> items_;
  size_t head_ = 0, size_ = 0;
};

template <class T>
class Channel {
 public:
  explicit Channel(size_t capacity) : ring_(capacity) {}

  // Blocks while full. The pipeline sizes each channel for every item that
  // can exist, so in practice it never waits.
  void push(T value) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return !ring_.full(); });
    ring_.push(std::move(value));
    not_empty_.notify_one();
  }
  // false once closed and empty.
  bool pop(T& out) {
    std::unique_lock lock(mu_);
    not_empty_.wait(lock, [&] { return !ring_.empty() || closed_; });
    if (ring_.empty()) return false;
    out = ring_.pop();
    not_full_.notify_one();
    return true;
  }
  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  Ring<T> ring_;
  bool closed_ = false;
};

}  // namespace damoyolo::pipeline
