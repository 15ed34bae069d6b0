// damoyolo::Session — load an ONNX model once, run it many times.
//
// A Session holds the optimised graph and the compiled engine (weights packed
// once). run() may be called concurrently from several threads: each call
// borrows an execution context (its own memory arena) from a bounded pool, so
// threads never share scratch memory and, after the first runs, no call
// allocates. Copies of a Session are cheap handles to the same compiled model
// and pool: N streams, detectors or request handlers of one model hold one
// copy of its weights.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "damoyolo/options.h"  // Engine, Precision, SessionOptions (vocabulary shared with the engines)
#include "damoyolo/plan.h"
#include "damoyolo/status.h"
#include "damoyolo/tensor.h"

namespace damoyolo {

// What `damoyolo info` prints.
struct ModelSummary {
  std::string path;
  std::string producer;          // e.g. "pytorch 1.13.1"
  int64_t ir_version = 0;
  std::map<std::string, int64_t> opsets;  // domain ("" = ai.onnx) -> version
  // The file's metadata_props, e.g. "names" (class names, see detector.h).
  std::map<std::string, std::string> metadata;
  std::vector<TensorInfo> inputs, outputs;
  std::map<std::string, int> op_histogram;  // after graph passes
  std::map<std::string, int> op_histogram_original;  // as stored in the file
  // Elements in the file's initializers, as ONNX tools count parameters
  // (includes the head's prior constants: 8.52 M for DAMO-YOLO-T).
  int64_t parameters = 0;
  // Elements of the weights and biases of Conv/Gemm/MatMul/BatchNormalization
  // after graph passes: the learned parameters alone (8.47 M for DAMO-YOLO-T).
  int64_t layer_weights = 0;
  int64_t macs = 0;        // multiply-accumulates of Conv/MatMul/Gemm
  int depthwise_convs = 0; // Conv nodes with group == input channels > 1 (nano models have them)
  int64_t macs_batch = 1;   // the batch `macs` was counted for (the graph's own)
  double gflops() const { return 2.0 * static_cast<double>(macs) * 1e-9; }
  // FLOPs of one image.
  double gflops_per_image() const { return gflops() / static_cast<double>(macs_batch > 0 ? macs_batch : 1); }
};

class Session {
 public:
  Session();  // an empty session; run() fails until load() assigns one
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  // Another handle to the same compiled model, weights and context pool (no
  // copy of either); safe to use from another thread.
  Session(const Session&);
  Session& operator=(const Session&);

  static Result<Session> load(const std::string& path, const SessionOptions& options = {});
  static Result<Session> load_from_memory(const void* data, size_t size,
                                          const SessionOptions& options = {},
                                          const std::string& base_dir = ".");

  const std::vector<TensorInfo>& inputs() const;
  const std::vector<TensorInfo>& outputs() const;
  const ModelSummary& summary() const;
  // The engine actually in use (kAuto resolved).
  Engine engine() const;
  // Bytes of the planned intermediate arena per execution context (0 for reference).
  size_t arena_bytes() const;
  // The compiled plan: every step the engine runs, the oneDNN implementation
  // and layouts of each, reorders, fallbacks to the reference kernels, and,
  // under Engine::kAuto, why the optimised engine was not used if it was not.
  const CompiledPlan& plan() const;
  // Worker threads runs use: SessionOptions::threads clamped to the cores
  // available, or 0 when left to the OpenMP default (all cores).
  int threads() const;
  // The context pool of the session's batch: contexts created so far (each
  // holds an arena of arena_bytes()), the bound SessionOptions::max_contexts
  // resolved to, and how many run() calls had to wait for a free one.
  struct PoolStats {
    int contexts = 0, idle = 0, max_contexts = 0;
    int64_t waits = 0;
  };
  PoolStats pool_stats() const;
  // Batch sizes with a compiled plan: the session's, and every shorter batch
  // run so far. On the optimised engine a session compiled for batch N runs a
  // batch k < N with a plan of its own (compiled on its first run, sharing the
  // packed weights, with its own context pool), so a short batch costs k
  // images, not N.
  std::vector<int64_t> compiled_batches() const;
  // The images_on_threads switch (damoyolo/optimizations.h) at work: whether
  // it applies to this session (on, optimised engine, compiled for batch >= 2),
  // how many runs took it (a batch of at least as many images as threads),
  // the one-thread, batch-1 plan those runs use (compiled on the first; empty
  // before), and why it could not be compiled if it could not (such batches
  // then run the ordinary way).
  struct ImagesOnThreads {
    bool enabled = false;
    int64_t runs = 0;
    CompiledPlan plan;
    Status error;
  };
  ImagesOnThreads images_on_threads() const;
  // True when both handles share one compiled model (copies of one Session).
  bool shares_model_with(const Session& other) const;

  // Runs the model. Inputs are matched by position; a uint8 tensor is accepted
  // for a float32 input and converted. Shapes must match inputs() (the batch
  // dimension may differ when the session was built for that batch).
  Result<std::vector<Tensor>> run(const std::vector<Tensor>& inputs) const;
  // Zero-allocation form for hot loops: `outputs` holds one tensor per output,
  // preallocated with the output shapes (e.g. by make_outputs()) and reused
  // across calls; the engine writes into them.
  Status run_into(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) const;
  // Fresh output tensors for `batch` items (0 = the session's batch).
  std::vector<Tensor> make_outputs(int64_t batch = 0) const;
  // Runs by input name; returns outputs by name.
  Result<std::map<std::string, Tensor>> run_named(const std::map<std::string, Tensor>& inputs) const;

  struct Impl;

 private:
  friend struct SessionFactory;
  explicit Session(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace damoyolo
