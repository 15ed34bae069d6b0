// The dynamic batcher: images from concurrent requests, grouped into one
// network run on the shared model, results routed back.
//
// One inference thread owns the model: it loads it (so the OpenMP team every
// run uses is its own; a second thread running oneDNN would start a second
// team competing for the same cores, docs/streams.md), waits for queued
// images, takes up to max_batch of them — or fewer once the oldest has waited
// max_queue_delay_us — preprocesses each straight into the batch input
// tensor and runs the session once. Post-processing runs on worker threads
// with a Postprocessor each, so the network starts the next batch meanwhile;
// two batch slots (input + outputs) alternate between the two.
//
// Admission is bounded: submit() refuses, all or none, images beyond
// max_queue accepted and unanswered. An image whose deadline passed or whose
// client went away while queued completes without running.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "damoyolo/detector.h"
#include "damoyolo/image.h"
#include "serving/metrics.h"

namespace damoyolo::serving {

using Clock = std::chrono::steady_clock;

// Why a job did not produce detections (also the metrics' reason label).
enum class JobOutcome { kOk, kDeadline, kCancelled, kFailed, kShuttingDown };

struct JobResult {
  JobOutcome outcome = JobOutcome::kOk;
  Status status;  // kOk, or what failed
  std::vector<Detection> detections;
  int width = 0, height = 0;  // the image the boxes refer to
  StageTimings timings;       // decode_ms as given in the job
  double queue_ms = 0;
  int batch = 0;  // images in the network run that carried this one
};

struct Job {
  // A decoded image, or (when empty) `tensor`: a network input already
  // preprocessed, [3, H, W] at the model's input size, float32 or uint8;
  // its boxes are then in input pixels.
  Image image;
  Tensor tensor;
  PostprocessOptions post;
  Clock::time_point deadline = Clock::time_point::max();
  // Set by the connection when its client goes away.
  std::shared_ptr<std::atomic<bool>> cancelled;
  double decode_ms = 0;
  // Called exactly once, on a worker or the inference thread; must not block.
  std::function<void(JobResult&&)> done;

  Clock::time_point enqueued;  // set by submit()
};

struct SchedulerOptions {
  std::string model_path;
  DetectorOptions detector;
  int max_batch = 4;
  int64_t max_queue_delay_us = 2000;
  int max_queue = 64;
  int post_threads = 1;
};

enum class Admission { kAccepted, kQueueFull, kShuttingDown };

class Scheduler {
 public:
  Scheduler(SchedulerOptions options, Metrics* metrics);
  ~Scheduler();  // stop() and join
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts the inference thread, which loads the model; returns its load status.
  Status start();
  // All of `jobs` or none; on kAccepted the vector is moved from.
  Admission submit(std::vector<Job>& jobs);
  // Stops admitting; what was accepted runs to completion; then the threads end.
  void stop();
  void join();

  bool ready() const;
  // Valid after start() succeeded.
  const Detector& detector() const;
  const Session& session() const;
  int max_batch() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace damoyolo::serving
