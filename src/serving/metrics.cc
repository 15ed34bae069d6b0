#include "serving/metrics.h"

#include <cmath>
#include <cstdio>

namespace damoyolo::serving {
namespace {

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const std::string& name, const std::string& labels, double value) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += ' ';
  out += number(value);
  out += '\n';
}

// Label values are the model name and fixed reason words; the model name
// comes from the command line, so escape it as the exposition format asks.
std::string escape_label(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '\\' || c == '"') r += '\\';
    if (c == '\n') {
      r += "\\n";
      continue;
    }
    r += c;
  }
  return r;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  std::lock_guard lock(mu_);
  ++counts_[i];
  sum_ += value;
  ++count_;
}

uint64_t Histogram::count() const {
  std::lock_guard lock(mu_);
  return count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  std::lock_guard lock(mu_);
  const std::string sep = labels.empty() ? "" : labels + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const double le = i < bounds_.size() ? bounds_[i] : INFINITY;
    sample(out, name + "_bucket", sep + "le=\"" + number(le) + "\"", static_cast<double>(cumulative));
  }
  sample(out, name + "_sum", labels, sum_);
  sample(out, name + "_count", labels, static_cast<double>(count_));
}

Metrics::Metrics(std::string model_name)
    : model(std::move(model_name)),
      request_latency_seconds({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      queue_seconds({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      batch_size({1, 2, 4, 8, 16, 32, 64}) {}

void Metrics::failure(const std::string& reason) {
  std::lock_guard lock(mu_);
  ++failures_[reason];
}

void Metrics::http_response(int status) {
  std::lock_guard lock(mu_);
  ++responses_[status];
}

int64_t Metrics::failures() const {
  std::lock_guard lock(mu_);
  int64_t n = 0;
  for (const auto& [reason, count] : failures_) n += count;
  return n;
}

int64_t Metrics::failures(const std::string& reason) const {
  std::lock_guard lock(mu_);
  auto it = failures_.find(reason);
  return it == failures_.end() ? 0 : it->second;
}

std::string Metrics::render() const {
  std::string out;
  const std::string m = "model=\"" + escape_label(model) + "\",version=\"1\"";
  auto counter = [&](const char* name, const char* help, const std::atomic<int64_t>& v) {
    header(out, name, "counter", help);
    sample(out, name, m, static_cast<double>(v.load()));
  };
  auto gauge = [&](const char* name, const char* help, double v, const std::string& labels) {
    header(out, name, "gauge", help);
    sample(out, name, labels, v);
  };
  counter("damoyolo_inference_request_success", "Inference requests answered successfully", request_success);
  header(out, "damoyolo_inference_request_failure", "counter", "Inference requests that failed, by reason");
  {
    std::lock_guard lock(mu_);
    // Every reason is always present (0 until it happens), so a rate() over
    // it never starts from a missing series.
    for (const char* reason : {"overload", "deadline", "cancelled", "bad_request", "too_large",
                               "unsupported_media_type", "unprocessable", "not_found", "internal",
                               "shutting_down"}) {
      auto it = failures_.find(reason);
      sample(out, "damoyolo_inference_request_failure", m + ",reason=\"" + reason + "\"",
             static_cast<double>(it == failures_.end() ? 0 : it->second));
    }
  }
  counter("damoyolo_inference_count", "Images run through the network", inference_count);
  counter("damoyolo_inference_exec_count",
          "Network executions (batches); inference_count / exec_count is the mean batch size", exec_count);
  counter("damoyolo_inference_request_duration_us", "Cumulative end-to-end request time, microseconds",
          request_duration_us);
  counter("damoyolo_inference_queue_duration_us", "Cumulative time images waited for a batch, microseconds",
          queue_duration_us);
  counter("damoyolo_inference_compute_input_duration_us",
          "Cumulative decode and preprocessing time, microseconds", compute_input_duration_us);
  counter("damoyolo_inference_compute_infer_duration_us",
          "Cumulative network time (each image's share of its batch), microseconds", compute_infer_duration_us);
  counter("damoyolo_inference_compute_output_duration_us",
          "Cumulative post-processing and response time, microseconds", compute_output_duration_us);
  gauge("damoyolo_inference_pending_request_count", "Images accepted and not yet answered",
        static_cast<double>(pending.load()), m);
  gauge("damoyolo_http_connections", "Open HTTP connections", static_cast<double>(connections.load()), "");
  header(out, "damoyolo_http_connections_total", "counter", "HTTP connections accepted");
  sample(out, "damoyolo_http_connections_total", "", static_cast<double>(connections_total.load()));
  header(out, "damoyolo_http_responses_total", "counter", "HTTP responses by status code");
  {
    std::lock_guard lock(mu_);
    for (const auto& [code, count] : responses_)
      sample(out, "damoyolo_http_responses_total", "code=\"" + std::to_string(code) + "\"",
             static_cast<double>(count));
  }
  header(out, "damoyolo_inference_request_latency_seconds", "histogram", "End-to-end latency of inference requests");
  request_latency_seconds.render(out, "damoyolo_inference_request_latency_seconds", m);
  header(out, "damoyolo_inference_queue_seconds", "histogram", "Time an image waited in the batching queue");
  queue_seconds.render(out, "damoyolo_inference_queue_seconds", m);
  header(out, "damoyolo_inference_batch_size", "histogram", "Images per network execution");
  batch_size.render(out, "damoyolo_inference_batch_size", m);
  return out;
}

}  // namespace damoyolo::serving
