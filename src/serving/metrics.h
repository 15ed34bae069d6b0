// The service's counters, gauges and histograms, rendered as Prometheus text.
//
// Names follow Triton's (nv_inference_request_success, ..._exec_count,
// ..._queue_duration_us, ...) with this product's prefix, so that dashboards
// and autoscaling rules written for Triton need only the prefix changed:
// inference_count / exec_count is the average batch size, queue_duration_us
// per request is what a HorizontalPodAutoscaler scales on.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace damoyolo::serving {

// A Prometheus histogram with fixed upper bounds (cumulative on output).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends `name`_bucket{labels,le=...}, _sum and _count lines.
  void render(std::string& out, const std::string& name, const std::string& labels) const;
  uint64_t count() const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

struct Metrics {
  explicit Metrics(std::string model_name);

  // Why a request failed, the `reason` label of ..._request_failure.
  void failure(const std::string& reason);
  void http_response(int status);
  std::string render() const;
  int64_t failures() const;
  int64_t failures(const std::string& reason) const;

  const std::string model;
  std::atomic<int64_t> request_success{0};
  std::atomic<int64_t> inference_count{0};  // images run through the network
  std::atomic<int64_t> exec_count{0};       // network runs
  // Cumulative microseconds, as Triton's counters (rate() / rate(count) = mean).
  std::atomic<int64_t> request_duration_us{0};
  std::atomic<int64_t> queue_duration_us{0};
  std::atomic<int64_t> compute_input_duration_us{0};   // decode + preprocess
  std::atomic<int64_t> compute_infer_duration_us{0};   // the network, per image share
  std::atomic<int64_t> compute_output_duration_us{0};  // post-processing + response building
  std::atomic<int64_t> pending{0};      // images accepted, not answered
  std::atomic<int64_t> connections{0};  // open now
  std::atomic<int64_t> connections_total{0};
  Histogram request_latency_seconds;
  Histogram queue_seconds;
  Histogram batch_size;

 private:
  mutable std::mutex mu_;
  std::map<std::string, int64_t> failures_;
  std::map<int, int64_t> responses_;
};

}  // namespace damoyolo::serving
