// damoyolo's optimisation switches, listed once.
//
// Every optimisation can be switched off, so that tests can compare off with
// on and benchmarks can measure each one. The switches are bool fields, all on
// by default, in two structs:
//   OptimizationOptions    the Session's (graph passes and the oneDNN engine),
//                          SessionOptions::opt;
//   DetectorOptimizations  what a Detector and a Pipeline do around the
//                          session (preprocessing, NMS, their buffers);
//                          DetectorOptions derives from it, so `o.fast_nms`
//                          reads as a DetectorOptions field, and
//                          PipelineOptions::detector carries them.
// kOptimizationSwitches describes every field: its name (the field's name, and
// the word `damoyolo ... --disable` takes), what it does, what runs instead
// when it is off, and a member pointer to the flag. Everything that lists the
// switches goes through the table: --disable's names and help,
// `damoyolo optimizations`, the tests that turn each one off, bench_ablation
// and bench/accuracy_ablation.sh.
//
// Adding a switch: add the field (default true) and its row. A field without a
// row does not compile: the static_asserts below require the structs to hold
// exactly one bool per row, and all_off() (built from the rows) to clear them all.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <span>
#include <string_view>

namespace damoyolo {

struct SessionOptions;   // session.h
struct DetectorOptions;  // detector.h

// The Session's switches. Each field is described by its row in
// kOptimizationSwitches; this struct holds nothing else.
struct OptimizationOptions {
  bool constant_folding = true;
  bool fuse_conv_activation = true;
  bool fuse_conv_residual = true;
  bool int8_convolution = true;
  bool blocked_layout = true;
  bool zero_copy_concat = true;
  bool fuse_head = true;
  bool memory_planning = true;
  bool huge_pages = true;
  bool images_on_threads = true;

  // Every switch off: the plainest configuration of the engine.
  static constexpr OptimizationOptions all_off();
  bool operator==(const OptimizationOptions&) const = default;
};

// A Detector's and a Pipeline's own switches (pre- and post-processing and
// their buffers). Each field is described by its row in
// kOptimizationSwitches; this struct holds nothing else.
struct DetectorOptimizations {
  bool fast_nms = true;
  bool simd_preprocess = true;
  bool fused_preprocess = true;
  bool preallocated_buffers = true;
  bool zero_copy_input = true;
  bool frame_pool = true;

  static constexpr DetectorOptimizations all_off();
  bool operator==(const DetectorOptimizations&) const = default;
};

enum class OptimizationScope {
  kSession,   // a field of OptimizationOptions: every command and API that loads a model has it
  kDetector,  // a field of DetectorOptimizations: a Detector or Pipeline (detect, video, eval) has it
};

// "session" or "detector".
constexpr std::string_view optimization_scope_name(OptimizationScope s) {
  return s == OptimizationScope::kSession ? "session" : "detector";
}

struct OptimizationSwitch {
  std::string_view name;         // the field's name; what --disable takes
  OptimizationScope scope;
  std::string_view description;  // what it does when on (one line)
  std::string_view when_off;     // what runs instead when it is off (one line)
  // Where the flag is: session_flag for kSession rows, detector_flag for kDetector rows.
  bool OptimizationOptions::*session_flag = nullptr;
  bool DetectorOptimizations::*detector_flag = nullptr;
};

// Session switches first, then the Detector's; the order --disable's help,
// `damoyolo optimizations` and the ablation tables use.
inline constexpr OptimizationSwitch kOptimizationSwitches[] = {
    {"constant_folding", OptimizationScope::kSession,
     "graph pass: nodes computable at load time (constant subgraphs, Shape of a static value and the arithmetic "
     "on it) are evaluated once and replaced by constants",
     "those nodes stay in the graph and run on every inference (reference kernels); shapes are still inferred "
     "from their values, so the optimised engine keeps static shapes. A head that reshapes by computed shapes "
     "is then not fused either. ONNX Constant nodes are literals and always become constants",
     &OptimizationOptions::constant_folding},
    {"fuse_conv_activation", OptimizationScope::kSession,
     "graph passes fuse_silu + fuse_conv_activation: x*Sigmoid(x) becomes one SiLU, and a scalar Mul and "
     "Relu/Sigmoid/SiLU after a conv run inside the conv (weights scaled, oneDNN eltwise post-ops)",
     "each runs as its own oneDNN eltwise/binary step", &OptimizationOptions::fuse_conv_activation},
    {"fuse_conv_residual", OptimizationScope::kSession,
     "graph pass fuse_conv_residual: a residual Add after a conv runs inside the conv (sum post-op into the "
     "residual's buffer, or binary post-op)",
     "residual Adds run as their own oneDNN binary steps", &OptimizationOptions::fuse_conv_residual},
    {"int8_convolution", OptimizationScope::kSession,
     "graph pass fuse_qdq_conv: in a quantised (QDQ) model, DequantizeLinear -> Conv chain -> QuantizeLinear runs "
     "as one oneDNN INT8 convolution (uint8 activations, the file's int8 per-channel weights, requantisation "
     "fused), so int8 flows from conv to conv",
     "the model runs in float: weights dequantised at load, activations quantised and dequantised by reorders "
     "around float convolutions (the same rounding points)",
     &OptimizationOptions::int8_convolution},
    {"blocked_layout", OptimizationScope::kSession,
     "activations stay in the layouts oneDNN picks (channels-last, blocked) from op to op",
     "every activation is plain NCHW (weights still in oneDNN's layout)", &OptimizationOptions::blocked_layout},
    {"zero_copy_concat", OptimizationScope::kSession,
     "graph pass zero_copy_concat: strided views (slices) are read straight into their slice of a Concat's output",
     "each view is first copied out on its own, then concatenated", &OptimizationOptions::zero_copy_concat},
    {"fuse_head", OptimizationScope::kSession,
     "graph pass fuse_damoyolo_head: the DAMO-YOLO decode (softmax over bins, integral, priors, sigmoid) as one "
     "kernel with cached priors",
     "the decode runs node by node through reference kernels, and SessionOptions::batch overrides are refused",
     &OptimizationOptions::fuse_head},
    {"memory_planning", OptimizationScope::kSession,
     "intermediates share one arena, placed by lifetime so values that are dead share bytes",
     "one buffer per value, no reuse", &OptimizationOptions::memory_planning},
    {"huge_pages", OptimizationScope::kSession,
     "the arena is 2 MiB-aligned and asks for transparent huge pages (MADV_HUGEPAGE): fewer TLB misses",
     "the arena uses ordinary 4 KiB pages", &OptimizationOptions::huge_pages},
    {"images_on_threads", OptimizationScope::kSession,
     "a batch of at least as many images as threads runs that many images at once, each on one thread with a plan "
     "compiled for one thread (throughput: no thread waits for another inside a layer); what is left over runs "
     "on all threads",
     "each image of a batch runs on all the threads in turn", &OptimizationOptions::images_on_threads},
    {"fast_nms", OptimizationScope::kDetector,
     "class-aware NMS by rank-ordered class streams with AVX-512 IoU, stopping at max_det (identical output)",
     "the reference O(n^2) NMS (torchvision's loop)", nullptr, &DetectorOptimizations::fast_nms},
    {"simd_preprocess", OptimizationScope::kDetector,
     "the fused resize/convert runs its AVX-512 kernels (bit-exact with OpenCV)",
     "the scalar kernels (the same bytes)", nullptr, &DetectorOptimizations::simd_preprocess},
    {"fused_preprocess", OptimizationScope::kDetector,
     "preprocessing in one pass: colour conversion, resize, layout change and cast per output row, in cache",
     "three passes over whole images: to RGB, resize into planar uint8, cast to float (the same bytes)", nullptr,
     &DetectorOptimizations::fused_preprocess},
    {"preallocated_buffers", OptimizationScope::kDetector,
     "the network's input (one contiguous, 64-byte aligned batch tensor), its outputs and the detection lists are "
     "allocated once and reused (pipeline, and Detector::detect_into; detect() always reuses them)",
     "each inference allocates its input and output tensors (and, in a pipeline, its detection lists) and frees "
     "them after", nullptr, &DetectorOptimizations::preallocated_buffers},
    {"zero_copy_input", OptimizationScope::kDetector,
     "the frame is read where it lies: a video frame is decoded straight into the buffer preprocessing reads, a "
     "caller's image is preprocessed from the caller's memory (pipeline, and Detector::detect_into; detect() "
     "always reads in place)",
     "the frame is copied first (decoded into the decoder's own image, or the caller's image copied), then "
     "preprocessed from the copy", nullptr, &DetectorOptimizations::zero_copy_input},
    {"frame_pool", OptimizationScope::kDetector,
     "pipeline: frames are decoded into buffers from a per-stream pool allocated at start, each back in the pool "
     "after its callback (a Detector is handed its frames: no effect there)",
     "every frame is decoded into a buffer allocated for it and freed after its callback", nullptr,
     &DetectorOptimizations::frame_pool},
};

namespace detail {
constexpr size_t count_switches(OptimizationScope scope) {
  size_t n = 0;
  for (const auto& s : kOptimizationSwitches) n += s.scope == scope;
  return n;
}
// Each row names its flag in the struct of its scope, names are unique, and
// the session's rows come first (optimization_switches(scope) is a subspan).
constexpr bool switch_table_is_well_formed() {
  const size_t n = std::size(kOptimizationSwitches);
  for (size_t i = 0; i < n; ++i) {
    const auto& s = kOptimizationSwitches[i];
    const bool session = s.scope == OptimizationScope::kSession;
    if (s.name.empty() || session != (s.session_flag != nullptr) || session == (s.detector_flag != nullptr))
      return false;
    if (i > 0 && session && kOptimizationSwitches[i - 1].scope != OptimizationScope::kSession) return false;
    for (size_t j = 0; j < i; ++j) {
      const auto& t = kOptimizationSwitches[j];
      if (t.name == s.name) return false;
      if (session && t.session_flag == s.session_flag) return false;
      if (!session && t.detector_flag == s.detector_flag) return false;
    }
  }
  return true;
}
}  // namespace detail

inline constexpr size_t kSessionSwitchCount = detail::count_switches(OptimizationScope::kSession);
inline constexpr size_t kDetectorSwitchCount = detail::count_switches(OptimizationScope::kDetector);

constexpr OptimizationOptions OptimizationOptions::all_off() {
  OptimizationOptions o;
  for (const auto& s : kOptimizationSwitches)
    if (s.session_flag) o.*(s.session_flag) = false;
  return o;
}

constexpr DetectorOptimizations DetectorOptimizations::all_off() {
  DetectorOptimizations o;
  for (const auto& s : kOptimizationSwitches)
    if (s.detector_flag) o.*(s.detector_flag) = false;
  return o;
}

static_assert(detail::switch_table_is_well_formed(),
              "kOptimizationSwitches: every row needs a unique name and its own flag in the struct of its scope, "
              "session rows first");
// A field added to a struct without a row in the table fails here.
static_assert(sizeof(OptimizationOptions) == kSessionSwitchCount * sizeof(bool),
              "OptimizationOptions holds only switches, one per kSession row of kOptimizationSwitches");
static_assert(sizeof(DetectorOptimizations) == kDetectorSwitchCount * sizeof(bool),
              "DetectorOptimizations holds only switches, one per kDetector row of kOptimizationSwitches");
static_assert(std::ranges::all_of(std::bit_cast<std::array<bool, kSessionSwitchCount>>(OptimizationOptions{}),
                                  [](bool b) { return b; }) &&
                  std::ranges::none_of(
                      std::bit_cast<std::array<bool, kSessionSwitchCount>>(OptimizationOptions::all_off()),
                      [](bool b) { return b; }),
              "every OptimizationOptions field defaults to on and has a row that all_off() clears");
static_assert(std::ranges::all_of(std::bit_cast<std::array<bool, kDetectorSwitchCount>>(DetectorOptimizations{}),
                                  [](bool b) { return b; }) &&
                  std::ranges::none_of(
                      std::bit_cast<std::array<bool, kDetectorSwitchCount>>(DetectorOptimizations::all_off()),
                      [](bool b) { return b; }),
              "every DetectorOptimizations field defaults to on and has a row that all_off() clears");

// Every switch (session's first), or those of one scope.
constexpr std::span<const OptimizationSwitch> optimization_switches() { return kOptimizationSwitches; }
constexpr std::span<const OptimizationSwitch> optimization_switches(OptimizationScope scope) {
  return scope == OptimizationScope::kSession ? optimization_switches().first(kSessionSwitchCount)
                                              : optimization_switches().subspan(kSessionSwitchCount);
}
// The switch called `name`, or nullptr.
constexpr const OptimizationSwitch* find_optimization(std::string_view name) {
  for (const auto& s : kOptimizationSwitches)
    if (s.name == name) return &s;
  return nullptr;
}

// Reading and setting switches on the options the API takes. A Detector has
// every switch. A SessionOptions has only the session's: a Detector switch (or
// an unknown name) is refused, returning false with nothing changed, never
// silently ignored.
bool optimization_enabled(const DetectorOptions& o, const OptimizationSwitch& s);
void set_optimization(DetectorOptions& o, const OptimizationSwitch& s, bool on);
[[nodiscard]] bool set_optimization(DetectorOptions& o, std::string_view name, bool on);
[[nodiscard]] bool set_optimization(SessionOptions& o, const OptimizationSwitch& s, bool on);
[[nodiscard]] bool set_optimization(SessionOptions& o, std::string_view name, bool on);
// Every switch the options have, on or off (all off: OptimizationOptions::all_off()
// and DetectorOptimizations::all_off()).
void set_all_optimizations(DetectorOptions& o, bool on);
void set_all_optimizations(SessionOptions& o, bool on);

}  // namespace damoyolo
