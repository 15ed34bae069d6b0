// damoyolo::Server — an HTTP detection service with dynamic batching.
//
//   clients ──HTTP/1.1 keep-alive──► I/O threads (Boost.Beast, asynchronous:
//   no thread per connection) ──► decode (worker threads) ──► bounded queue
//   ──► the inference thread (groups queued images into one batch of up to
//   max_batch, or fewer once max_queue_delay_us has passed since the oldest
//   arrived; preprocesses each straight into the batch input; one Session run)
//   ──► post-processing (worker threads) ──► the response, written by the
//   connection's I/O thread.
//
// Endpoints (docs/serving.md has the request and response formats):
//   POST /v1/detect                     image bytes or multipart/form-data; the CLI's JSON
//   GET  /v2, /v2/health/live|ready     the Open Inference Protocol (KServe v2)
//   GET  /v2/models/{name}[/ready]      model metadata / readiness
//   POST /v2/models/{name}/infer        JSON tensors and the binary tensor extension
//   GET  /metrics                       Prometheus text (damoyolo_* names after Triton's nv_*)
//
// Overload is refused, never queued without bound: when max_queue images are
// already accepted and unfinished, a request gets 503 with Retry-After at
// once. Every request has a deadline (timeout_ms, or its own `timeout_ms`);
// one still queued when it passes gets 504 without being run. The work of a
// client that disconnects is dropped before it reaches the network.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "damoyolo/detector.h"
#include "damoyolo/status.h"

namespace damoyolo {

struct ServerOptions {
  std::string model_path;
  // The name clients use in /v2/models/{name}; empty: the model file's stem.
  std::string model_name;
  // Thresholds, class names, precision and engine threads of the detector
  // (detector.session.threads: 0 = every core for the network). The batch is
  // max_batch, whatever detector.session.batch says.
  DetectorOptions detector;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (Server::port() says which)
  // Dynamic batching: images per inference, and how long the oldest queued
  // image may wait for others before a partial batch runs.
  int max_batch = 4;
  int64_t max_queue_delay_us = 2000;
  // Images accepted and not yet answered, at most; beyond it: 503.
  int max_queue = 64;
  // Default per-request deadline (0: none). A request may set its own
  // (query `timeout_ms`, or the v2 parameters `timeout_ms` / `timeout` in µs).
  int64_t timeout_ms = 0;
  int io_threads = 1;      // connections are asynchronous: one thread serves thousands
  int worker_threads = 1;  // decoding and post-processing
  int64_t max_body_bytes = int64_t{32} << 20;  // larger bodies: 413
  // Bytes of request bodies being received or held by unanswered requests,
  // all connections together (a body counts from its Content-Length before
  // it is read; a chunked one at max_body_bytes). Over it: 503 at once. With
  // max_connections it bounds what clients can make the server hold.
  int64_t max_inflight_body_bytes = int64_t{512} << 20;
  int64_t max_pixels = 40'000'000;             // larger images: 413
  int max_connections = 4096;                  // beyond it new connections are closed at once
  // Idle keep-alive connections are closed after this long.
  int64_t idle_timeout_ms = 60'000;
};

// What GET /metrics reports, also readable in-process.
struct ServerStats {
  int64_t requests_ok = 0, requests_failed = 0;
  int64_t inferences = 0;  // images run through the network
  int64_t executions = 0;  // network runs (batches): inferences / executions = average batch
  int64_t rejected_overload = 0, deadline_exceeded = 0, cancelled = 0;
  int64_t pending = 0;      // images accepted and not answered
  int64_t connections = 0;  // open now
};

class Server {
 public:
  Server();
  ~Server();  // stops (as stop()) and joins every thread
  Server(Server&&) noexcept;
  Server& operator=(Server&&) noexcept;

  // Loads the model (on the inference thread, so that its OpenMP team is the
  // one every run uses), binds host:port and starts serving. Errors: the
  // model's load error, kIOError when the address cannot be bound,
  // kInvalidArgument for an option out of range.
  static Result<Server> start(const ServerOptions& options);

  int port() const;  // the bound port
  const std::string& model_name() const;
  ServerStats stats() const;

  // Graceful shutdown: stop accepting connections and requests, finish every
  // request already accepted, write its response, close. Returns at once;
  // wait() blocks until done. Safe from any thread and from a signal-waiting
  // thread (not from a signal handler itself).
  void stop();
  void wait();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace damoyolo
