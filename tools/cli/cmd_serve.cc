// damoyolo serve: the HTTP detection service (damoyolo/server.h,
// docs/serving.md). Runs until SIGINT or SIGTERM, then stops accepting,
// answers every request it accepted and exits 0.
#include <csignal>
#include <iostream>

#include <pthread.h>

#include "commands.h"
#include "damoyolo/server.h"
#include "options.h"

namespace damoyolo::cli {

namespace {

struct ServeArgs {
  ServerOptions server;
  EngineArgs engine;
  double conf = 0.25, iou = 0;
  int max_det = 300;
  CLI::Option* conf_opt = nullptr;
  CLI::Option* iou_opt = nullptr;
  CLI::Option* max_det_opt = nullptr;
  bool official = false;
  std::string labels;
  std::string resize = "stretch";
  double max_body_mb = 32;
  double max_inflight_mb = 512;
};

int run_serve(ServeArgs& a) {
  ServerOptions o = a.server;
  o.detector = a.engine.detector_options();
  // The command line's defaults are for people (conf 0.25, 300 boxes), as in
  // detect; --official gives the official pipeline's. A request may override
  // each (query conf, iou, max_det, classes).
  if (!a.official || (a.conf_opt && a.conf_opt->count() > 0)) o.detector.conf_threshold = static_cast<float>(a.conf);
  if (a.iou_opt && a.iou_opt->count() > 0) o.detector.iou_threshold = a.iou;
  o.detector.max_det = a.official && !(a.max_det_opt && a.max_det_opt->count() > 0) ? 500 : a.max_det;
  if (a.official) o.detector.decode = DecodeOptions::pil_compatible();
  o.detector.labels_file = a.labels;
  o.detector.resize = a.resize == "letterbox" ? ResizeMode::kLetterbox : ResizeMode::kStretch;
  o.max_body_bytes = static_cast<int64_t>(a.max_body_mb * 1024 * 1024);
  o.max_inflight_body_bytes = static_cast<int64_t>(a.max_inflight_mb * 1024 * 1024);
  if (o.max_inflight_body_bytes < o.max_body_bytes) {
    std::cerr << "damoyolo serve: --max-inflight-mb must be at least --max-body-mb\n";
    return 2;
  }

  // SIGINT and SIGTERM are taken by this thread with sigwait: blocked here,
  // before any server thread exists, so that every thread inherits the mask
  // and none is interrupted by them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::cerr << "damoyolo serve: loading " << o.model_path << "\n";
  auto server = Server::start(o);
  if (!server.ok()) {
    std::cerr << "damoyolo serve: " << server.status().message() << "\n";
    return server.status().code() == ErrorCode::kIOError ? 1 : 2;
  }
  std::cerr << "damoyolo serve: model \"" << server->model_name() << "\" on http://" << o.host << ":" << server->port()
            << " (max batch " << o.max_batch << ", max queue delay " << o.max_queue_delay_us << " us, max queue "
            << o.max_queue << ")" << std::endl;
  // A line for scripts that start the server on port 0.
  std::cout << "listening " << o.host << ":" << server->port() << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "damoyolo serve: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
            << ": no new requests; finishing the accepted ones" << std::endl;
  server->stop();
  server->wait();
  const ServerStats st = server->stats();
  std::cerr << "damoyolo serve: stopped; " << st.requests_ok << " requests answered, " << st.requests_failed
            << " failed, " << st.inferences << " images in " << st.executions << " network runs" << std::endl;
  return 0;
}

}  // namespace

Runner add_serve_command(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  ServeArgs& a = *args;
  CLI::App* cmd = app.add_subcommand("serve", "HTTP detection service: /v1/detect, the KServe v2 protocol, /metrics");
  cmd->add_option("-m,--model", a.server.model_path, "ONNX model file")->required();
  cmd->add_option("--name", a.server.model_name, "Model name in /v2/models/{name} (default: the file's stem)");
  cmd->add_option("--host", a.server.host, "Address to listen on (an IP address; 0.0.0.0 for every interface)");
  cmd->add_option("--port", a.server.port, "TCP port (0: any free port, printed on stdout)")->check(whole_number(0, 65535));
  cmd->add_option("--max-batch", a.server.max_batch, "Images per network run, gathered across concurrent requests")
      ->check(whole_number(1, 256));
  cmd->add_option("--max-queue-delay-us", a.server.max_queue_delay_us,
                  "How long the oldest queued image waits for a fuller batch, microseconds")
      ->check(whole_number(0, 10'000'000));
  cmd->add_option("--max-queue", a.server.max_queue,
                  "Images accepted and unanswered at most; beyond it requests get 503 at once")
      ->check(whole_number(1, 1'000'000));
  cmd->add_option("--timeout-ms", a.server.timeout_ms,
                  "Default request deadline (0: none); a request still queued after it gets 504")
      ->check(whole_number(0));
  cmd->add_option("--io-threads", a.server.io_threads, "Threads serving connections (each handles thousands)")
      ->check(whole_number(1, 64));
  cmd->add_option("--workers", a.server.worker_threads, "Threads decoding images and post-processing")
      ->check(whole_number(1, 64));
  cmd->add_option("--max-body-mb", a.max_body_mb, "Largest request body, MiB (larger: 413)")
      ->check(real_number(0.001, 4096));
  cmd->add_option("--max-inflight-mb", a.max_inflight_mb,
                  "Request bodies being received or held, all connections together, MiB (beyond: 503)")
      ->check(real_number(0.001, 1 << 20));
  cmd->add_option("--max-pixels", a.server.max_pixels, "Largest image, pixels, checked from its header (larger: 413)")
      ->check(whole_number(1, int64_t{1} << 40));
  cmd->add_option("--max-connections", a.server.max_connections, "Open connections at most")
      ->check(whole_number(1, 1'000'000));
  cmd->add_option("--idle-timeout-ms", a.server.idle_timeout_ms, "Close keep-alive connections idle this long")
      ->check(whole_number(1));
  a.conf_opt = cmd->add_option("--conf", a.conf, "Default score threshold (--official: the model family's)")
                   ->check(real_number(0.0, 1.0));
  a.iou_opt = cmd->add_option("--iou", a.iou, "Default NMS IoU threshold (default: the model family's)")
                  ->check(real_number(0.0, 1.0))
                  ->default_str("");
  a.max_det_opt = cmd->add_option("--max-det", a.max_det, "Default most detections per image (--official: 500)")
                      ->check(whole_number(0));
  cmd->add_flag("--official", a.official, "The official pipeline's thresholds, 500 boxes and PIL decoding");
  cmd->add_option("--labels", a.labels, "Class names file, one per line (default: the model's own)");
  cmd->add_option("--resize", a.resize, "stretch (current models) or letterbox (legacy pre-v0.3.0 models)")
      ->check(CLI::IsMember({"stretch", "letterbox"}));
  a.engine.add_to(cmd, /*with_batch=*/false, /*with_detector=*/true);
  return [args] { return run_serve(*args); };
}

}  // namespace damoyolo::cli
