// damoyolo bench: network latency (input tensor → outputs) after warm-up,
// with min/median/max, throughput, peak RSS, arena bytes, load time, GFLOP/s
// and the fraction of the FMA peak measured in the same run.
#include <sys/resource.h>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "plan_notes.h"
#include "damoyolo/session.h"
#include "machine_peak.h"
#include "options.h"

namespace damoyolo::cli {

namespace {
struct BenchArgs {
  std::string model;
  EngineArgs engine;
  int iters = 50;
  int warmup = 5;
  bool json = false;
  bool no_peak = false;
};

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

int run_bench(BenchArgs a) {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  SessionOptions so = a.engine.session_options();
  auto session = Session::load(a.model, so);
  double load_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  if (!session.ok()) {
    std::cerr << "damoyolo bench: " << session.status().to_string() << "\n";
    return 1;
  }
  report_plan(*session, "damoyolo bench");
  int64_t batch = a.engine.batch > 0 ? a.engine.batch : std::max<int64_t>(1, session->inputs()[0].dims[0]);
  std::vector<Tensor> inputs;
  for (const auto& info : session->inputs()) {
    Shape s = info.dims;
    if (!s.empty()) s[0] = batch;
    Tensor t(info.dtype, s);
    if (info.dtype == DType::kFloat32)  // a deterministic image-like pattern in 0..255
      for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>((i * 2654435761u) % 256);
    inputs.push_back(t);
  }
  std::vector<Tensor> outputs = session->make_outputs(batch);
  for (int i = 0; i < a.warmup; ++i) {
    Status st = session->run_into(inputs, outputs);
    if (!st.ok()) {
      std::cerr << "damoyolo bench: " << st.to_string() << "\n";
      return 1;
    }
  }
  std::vector<double> ms;
  for (int i = 0; i < a.iters; ++i) {
    auto s = clock::now();
    Status st = session->run_into(inputs, outputs);
    ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - s).count());
    if (!st.ok()) {
      std::cerr << "damoyolo bench: " << st.to_string() << "\n";
      return 1;
    }
  }
  std::sort(ms.begin(), ms.end());
  double median = ms[ms.size() / 2];
  double gflop = session->summary().gflops_per_image() * static_cast<double>(batch);
  int threads = a.engine.threads > 0 ? a.engine.threads : omp_get_max_threads();
  double peak = a.no_peak ? 0 : measure_fma_peak_gflops(threads);
  double achieved = gflop / (median * 1e-3);
  // The INT8 peak beside the FMA one: INT8 models are measured against it
  // (docs/performance.md), FP32/BF16 against the FMA peak.
  const Int8Peak int8 = a.no_peak ? Int8Peak{} : measure_int8_peak(threads);
  const SimdReport simd = simd_report();
  // A quantised model's convolutions on the INT8 kernels (the plan marks each
  // with "int8" first): its operations are then measured against the INT8
  // peak, not the FMA one.
  int int8_convs = 0;
  for (const PlanStep& st : session->plan().steps)
    int8_convs += !st.post_ops.empty() && st.post_ops.front().rfind("int8", 0) == 0;
  const double int8_fraction = int8_convs > 0 && int8.gops > 0 ? achieved / int8.gops : 0.0;

  // images_on_threads (damoyolo/optimizations.h): whether the timed runs put
  // one image on each thread instead of every image on all threads.
  const bool on_threads = session->images_on_threads().runs > 0;

  nlohmann::json j = {
      {"model", a.model},
      {"engine", engine_name(session->engine())},
      {"precision", a.engine.precision},
      {"threads", threads},
      {"batch", batch},
      {"images_on_threads", on_threads},
      {"iters", a.iters},
      {"latency_ms", {{"min", ms.front()}, {"median", median}, {"max", ms.back()}}},
      {"throughput_ips", batch * 1000.0 / median},
      {"peak_rss_mib", peak_rss_mib()},
      {"arena_bytes", session->arena_bytes()},
      {"load_ms", load_ms},
      {"gflop_per_inference", gflop},
      {"achieved_gflops", achieved},
      {"fma_peak_gflops", peak},
      {"fraction_of_peak", peak > 0 ? achieved / peak : 0.0},
      {"int8_peak_gops", int8.gops},
      {"int8_unit", int8.unit},
      {"int8_convolutions", int8_convs},
      {"fraction_of_int8_peak", int8_fraction},
      {"simd", simd.level},
  };
  if (a.json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << std::fixed << std::setprecision(2);
  std::cout << "model        " << a.model << "\n"
            << "engine       " << engine_name(session->engine()) << ", " << a.engine.precision << ", " << threads
            << " thread(s), batch " << batch << "\n"
            << "parallel     "
            << (on_threads ? "images on threads (" + std::to_string(threads) + " images at once, one thread each)"
                           : std::string("each image on every thread"))
            << "\n"
            << "latency ms   min " << ms.front() << "  median " << median << "  max " << ms.back() << "  ("
            << a.iters << " iters after " << a.warmup << " warm-up)\n"
            << "throughput   " << batch * 1000.0 / median << " images/s\n"
            << "compute      " << gflop << " GFLOP -> " << achieved << " GFLOP/s";
  if (int8_fraction > 0)
    std::cout << " (" << 100.0 * int8_fraction << "% of the " << int8.gops << " GOP/s INT8 peak: " << int8_convs
              << " INT8 convolutions)";
  else if (peak > 0)
    std::cout << " (" << 100.0 * achieved / peak << "% of the " << peak << " GFLOP/s FMA peak)";
  std::cout << "\n"
            << "memory       peak RSS " << peak_rss_mib() << " MiB, arena " << session->arena_bytes() / 1048576.0
            << " MiB\n"
            << "load         " << load_ms << " ms\n";
  if (int8.gops > 0) std::cout << "int8 peak    " << int8.gops << " GOP/s (" << int8.unit << ", u8 x s8 dot products)\n";
  std::cout
            << "simd         " << simd_text(simd) << "\n";
  return 0;
}
}  // namespace

Runner add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Benchmark the network (input tensor -> outputs)");
  cmd->add_option("-m,--model,model", args->model, "ONNX model file")->required();
  args->engine.add_to(cmd, /*with_batch=*/true, /*with_detector=*/false);
  cmd->add_option("--iters", args->iters, "Timed iterations")->check(whole_number(1));
  cmd->add_option("--warmup", args->warmup, "Untimed warm-up iterations")->check(whole_number(0));
  cmd->add_flag("--json", args->json, "Print as JSON");
  cmd->add_flag("--no-peak", args->no_peak,
                "Skip measuring the FMA and INT8 peaks (fraction of peak is then not reported)");
  return [args] { return run_bench(*args); };
}

}  // namespace damoyolo::cli
