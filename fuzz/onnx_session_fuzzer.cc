// Fuzz target: ONNX model loading (protobuf parse, graph building, the graph
// passes, engine compilation) with the reference engine (DAMOYOLO_FUZZ_ENGINE
// below picks another), and one run of what
// loads when its inputs are small, with zero-filled inputs. Errors are
// correct answers; only crashes, sanitizer reports, timeouts and running out
// of memory are findings.
//
//   scripts/fuzz.sh 60 onnx_session
//   by hand: build-asan/bin/fuzz_onnx_session -dict=fuzz/dict/onnx_session.dict NEW_CORPUS_DIR fuzz/corpus/onnx_session
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "damoyolo/session.h"
#include "damoyolo/tensor.h"

namespace {

// Total input elements of a model that is run (all inputs together).
constexpr int64_t kMaxInputElements = int64_t{1} << 20;

// DAMOYOLO_FUZZ_VERBOSE=1: say what happened to each input (is a seed
// loaded and run, or refused, and why).
const bool kVerbose = std::getenv("DAMOYOLO_FUZZ_VERBOSE") != nullptr;

// DAMOYOLO_FUZZ_ENGINE=optimized (or auto) fuzzes the oneDNN engine instead
// of the reference one, for long runs; the test command fuzzes the reference.
damoyolo::Engine engine_from_env() {
  const char* e = std::getenv("DAMOYOLO_FUZZ_ENGINE");
  const std::string name = e ? e : "reference";
  if (name == "optimized") return damoyolo::Engine::kOptimized;
  if (name == "auto") return damoyolo::Engine::kAuto;
  if (name != "reference") {
    std::fprintf(stderr, "DAMOYOLO_FUZZ_ENGINE: '%s' is not reference, optimized or auto\n", name.c_str());
    std::abort();
  }
  return damoyolo::Engine::kReference;
}
const damoyolo::Engine kEngine = engine_from_env();

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  damoyolo::SessionOptions o;
  o.engine = kEngine;
  o.threads = 1;
  // Small limits (damoyolo/limits.h): the fuzzer should spend its time in
  // the loader and the kernels, not in legitimately huge tensors, and stay
  // under libFuzzer's 2 GB memory limit. Every size is checked against them
  // before it is allocated, so a file asking for more is refused early.
  o.limits.max_tensor_bytes = int64_t{16} << 20;
  o.limits.max_total_weight_bytes = int64_t{64} << 20;
  o.limits.max_workspace_bytes = int64_t{256} << 20;
  // A folder that does not exist: external-data references resolve to
  // nothing (the fuzzer must never read files it was not given).
  auto session = damoyolo::Session::load_from_memory(data, size, o, "/nonexistent/damoyolo-fuzz");
  if (!session.ok()) {
    if (kVerbose) std::fprintf(stderr, "load: %s\n", session.status().to_string().c_str());
    return 0;
  }
  (void)session->summary();
  (void)session->outputs();

  std::vector<damoyolo::Tensor> inputs;
  int64_t total = 0;
  for (const auto& info : session->inputs()) {
    bool small = damoyolo::dtype_size(info.dtype) != 0;
    int64_t n = 1;
    for (int64_t d : info.dims) {
      small = small && d >= 0 && d <= kMaxInputElements;  // unknown or huge: not run
      if (small) n *= d;
      small = small && n <= kMaxInputElements;
    }
    total += small ? n : 0;
    if (!small || total > kMaxInputElements) {
      if (kVerbose) std::fprintf(stderr, "loaded; not run (inputs too big or unknown)\n");
      return 0;
    }
    inputs.emplace_back(info.dtype, info.dims);  // zero-filled
  }
  auto out = session->run(inputs);
  if (kVerbose) std::fprintf(stderr, "loaded; run: %s\n", out.ok() ? "ok" : out.status().to_string().c_str());
  return 0;
}
