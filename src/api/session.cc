#include "damoyolo/session.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <exception>
#include <cstring>
#include <condition_variable>
#include <mutex>

#include "common/checked_size.h"
#include "graph/passes/passes.h"
#include "kernels/reference/registry.h"  // evaluator(): constant folding computes with the reference kernels
#include "onnx/onnx_loader.h"
#include "runtime/executor.h"

namespace damoyolo {
namespace {

// Counts saturate at INT64_MAX: a hostile graph's shapes may multiply past it.
int64_t sat_mul(int64_t a, int64_t b) { return checked::mul(a, b).value_or(INT64_MAX); }
int64_t sat_add(int64_t a, int64_t b) { return checked::add(a, b).value_or(INT64_MAX); }

int64_t conv_macs(const graph::Graph& g, const graph::Node& n) {
  const auto* w = g.info(n.input(1));
  const auto* y = g.info(n.outputs[0]);
  if (!w || !y || !w->fully_known() || !y->fully_known() || y->shape.size() < 3 || w->shape.empty() ||
      w->shape[0] <= 0)
    return 0;
  // Each output element costs (Cin/group)·k_h·k_w MACs = the weight's per-filter size.
  int64_t per_output = shape_numel(w->shape) / w->shape[0];
  return sat_mul(shape_numel(y->shape), per_output);
}

int64_t matmul_macs(const graph::Graph& g, const graph::Node& n) {
  const auto* a = g.info(n.input(0));
  const auto* y = g.info(n.outputs[0]);
  if (!a || !y || !a->fully_known() || !y->fully_known() || a->shape.empty()) return 0;
  int64_t k = n.op_type == "Gemm" && n.attr_i("transA", 0) ? a->shape[0] : a->shape.back();
  return sat_mul(shape_numel(y->shape), k);
}

void summarize(const graph::Graph& g, ModelSummary& s) {
  s.op_histogram.clear();
  s.macs = 0;
  s.layer_weights = 0;
  s.depthwise_convs = 0;
  for (const auto& n : g.nodes) {
    s.op_histogram[n.op_type]++;
    if (n.op_type == "Conv" || n.op_type == "ConvTranspose") s.macs = sat_add(s.macs, conv_macs(g, n));
    if (n.op_type == "Conv" && n.attr_i("group", 1) > 1) {
      const auto* x = g.info(n.input(0));
      if (x && x->shape.size() > 1 && x->shape[1] == n.attr_i("group", 1)) s.depthwise_convs++;
    }
    if (n.op_type == "MatMul" || n.op_type == "Gemm") s.macs = sat_add(s.macs, matmul_macs(g, n));
    // Learned parameters: the weights and biases of the layers that carry them.
    if (n.op_type == "Conv" || n.op_type == "Gemm" || n.op_type == "ConvTranspose" ||
        n.op_type == "BatchNormalization" || n.op_type == "MatMul") {
      for (size_t i = 1; i < n.inputs.size(); ++i)
        if (const Tensor* c = g.constant(n.inputs[i]); c && c->dtype() == DType::kFloat32) s.layer_weights += c->numel();
    }
  }
}

// SessionOptions as given by a caller, checked before any work: absurd thread
// counts and batch sizes become a Status here instead of a crash in the
// OpenMP runtime or std::bad_alloc later. Threads beyond the cores available
// are clamped (see SessionOptions::threads).
SessionOptions checked_options(const SessionOptions& given) {
  SessionOptions o = given;
  if (o.threads < 0)
    throw Error(ErrorCode::kInvalidArgument, "SessionOptions::threads must be 0 (all cores) or positive, got " +
                                                 std::to_string(o.threads));
  const int cores = std::max(1, omp_get_num_procs());
  if (o.threads > cores) o.threads = cores;
  if (o.batch < 0)
    throw Error(ErrorCode::kInvalidArgument,
                "SessionOptions::batch must be 0 (the model's) or positive, got " + std::to_string(o.batch));
  if (o.batch > kMaxSessionBatch)
    throw Error(ErrorCode::kOutOfRange, "SessionOptions::batch " + std::to_string(o.batch) + " is more than the " +
                                            std::to_string(kMaxSessionBatch) + " images a batch may hold");
  if (o.max_contexts < 0)
    throw Error(ErrorCode::kInvalidArgument,
                "SessionOptions::max_contexts must be 0 (twice the cores) or positive, got " +
                    std::to_string(o.max_contexts));
  if (o.max_contexts == 0) o.max_contexts = std::max(2, 2 * cores);
  return o;
}

// Converts a uint8 input to the float32 the model wants (the pixel values 0-255
// are the model's native range, §4 of the family facts).
Tensor to_float(const Tensor& t) {
  Tensor f(DType::kFloat32, t.shape());
  const uint8_t* src = t.data<uint8_t>();
  float* dst = f.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) dst[i] = src[i];
  return f;
}

// One compiled plan (for one batch size) and its bounded pool of execution
// contexts: idle contexts, how many exist, and the bound. A caller takes an
// idle one, creates one while under the bound, or waits for one to be
// returned.
class ModelPool {
 public:
  ModelPool(std::unique_ptr<runtime::CompiledModel> model, int max_contexts)
      : model_(std::move(model)), max_contexts_(max_contexts) {}

  // RAII lease of an execution context: returned to the pool on scope exit,
  // and one waiting caller woken.
  class Lease {
   public:
    Lease(ModelPool* pool, std::unique_ptr<runtime::ExecutionContext> ctx) : pool_(pool), ctx_(std::move(ctx)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      {
        std::lock_guard<std::mutex> lock(pool_->mutex_);
        pool_->idle_.push_back(std::move(ctx_));
      }
      pool_->returned_.notify_one();
    }
    runtime::ExecutionContext& operator*() const { return *ctx_; }
    runtime::ExecutionContext* operator->() const { return ctx_.get(); }

   private:
    ModelPool* pool_;
    std::unique_ptr<runtime::ExecutionContext> ctx_;
  };

  Lease acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (idle_.empty() && contexts_ >= max_contexts_) {
      ++waits_;
      returned_.wait(lock, [&] { return !idle_.empty() || contexts_ < max_contexts_; });
    }
    if (!idle_.empty()) {
      auto ctx = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(ctx));
    }
    ++contexts_;  // reserved before creating it outside the lock
    lock.unlock();
    try {
      return Lease(this, model_->create_context());
    } catch (...) {
      lock.lock();
      --contexts_;
      lock.unlock();
      returned_.notify_one();  // a waiter may create it instead
      throw;
    }
  }

  Session::PoolStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return {contexts_, static_cast<int>(idle_.size()), max_contexts_, waits_};
  }
  const runtime::CompiledModel& model() const { return *model_; }

 private:
  std::unique_ptr<runtime::CompiledModel> model_;
  mutable std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<runtime::ExecutionContext>> idle_;
  int contexts_ = 0, max_contexts_ = 1;
  int64_t waits_ = 0;
};

}  // namespace

struct Session::Impl {
  SessionOptions options;
  ModelSummary summary;
  std::vector<TensorInfo> inputs, outputs;
  std::unique_ptr<ModelPool> main;  // the plan for engine_batch
  CompiledPlan plan;  // main's plan, plus why kAuto fell back to the reference engine
  int64_t engine_batch = 1;  // batch the compiled model runs natively

  // Plans for smaller batches than engine_batch (optimised engine, a model
  // compiled for batch > 1): compiled on first use from the kept graph,
  // sharing the packed weights, so a short batch runs as itself instead of
  // padded to the full batch. A batch that cannot be compiled is remembered
  // with its error.
  graph::Graph graph;  // kept only when such plans can be made
  std::shared_ptr<runtime::WeightCache> weights;
  std::mutex batches_mutex;
  std::map<int64_t, std::shared_ptr<ModelPool>> by_batch;
  std::map<int64_t, Status> batch_errors;
  bool batch_plans = false;

  // images_on_threads (damoyolo/optimizations.h). Measured on 2 cores (Intel
  // Xeon, docs/streams.md): two images at once, one per core, each through a
  // plan compiled for one thread, ran 1.12x (Ns 416) and 1.07x (T 640) the
  // images per second of the same images one after another on both cores —
  // inside a layer the two threads wait for each other at every barrier, and
  // small layers split badly in two. So a batch of at least `team` images runs
  // `team` at a time, one per thread of the caller's OpenMP team (the team
  // that loaded the model: no second team, see docs/streams.md), each with its
  // own context of `per_image` (batch 1, one thread), reading and writing its
  // slice of the batch's tensors in place. Sessions compiled for batch >= 2
  // only (they keep the graph anyway, batch_plans; a batch-1 session would
  // keep its weights twice for it), and graphs whose items do not mix
  // (CompiledPlan::batch_separable).
  bool images_on_threads = false;
  std::shared_ptr<ModelPool> per_image;  // compiled on first use (under batches_mutex)
  Status per_image_error;                // why it could not be compiled: the batch then runs as before
  std::vector<int64_t> per_image_out_numel;  // elements of each output per image
  std::atomic<int64_t> per_image_runs{0};

  ModelPool* per_image_pool();
  bool run_images_on_threads(const std::vector<Tensor>& in, std::vector<Tensor>& out, int64_t batch);
  ModelPool& pool_for_batch(int64_t batch);
  void validate_inputs(const std::vector<Tensor>& in, int64_t& batch) const;
  void validate_outputs(const std::vector<Tensor>& out, int64_t batch) const;
  void run_checked(const std::vector<Tensor>& in, std::vector<Tensor>& out);
};

ModelPool& Session::Impl::pool_for_batch(int64_t batch) {
  std::lock_guard<std::mutex> lock(batches_mutex);
  if (auto it = by_batch.find(batch); it != by_batch.end()) return *it->second;
  if (auto it = batch_errors.find(batch); it != batch_errors.end())
    throw Error(it->second.code(), it->second.message());
  SessionOptions o = options;
  o.batch = static_cast<int>(batch);
  try {
    auto pool = std::make_shared<ModelPool>(runtime::compile_optimized(graph, o, weights.get()), options.max_contexts);
    return *by_batch.emplace(batch, std::move(pool)).first->second;
  } catch (const Error& e) {
    const Status st(e.code(), "no plan for batch " + std::to_string(batch) + " (the session's is " +
                                  std::to_string(engine_batch) + "): " + e.what());
    batch_errors.emplace(batch, st);
    throw Error(st.code(), st.message());
  }
}

ModelPool* Session::Impl::per_image_pool() {
  std::lock_guard<std::mutex> lock(batches_mutex);
  if (per_image) return per_image.get();
  if (!per_image_error.ok()) return nullptr;
  SessionOptions o = options;
  o.batch = 1;
  o.threads = 1;  // the primitives split their work for one thread (compile_optimized)
  try {
    auto model = runtime::compile_optimized(graph, o, weights.get());
    std::vector<int64_t> numel;
    for (const TensorInfo& info : model->output_infos()) numel.push_back(shape_numel(info.dims));
    per_image_out_numel = std::move(numel);
    per_image = std::make_shared<ModelPool>(std::move(model), options.max_contexts);
    return per_image.get();
  } catch (const Error& e) {
    per_image_error = Status(e.code(), std::string("images_on_threads: no one-thread plan: ") + e.what());
    return nullptr;
  }
}

// The images_on_threads path (see Impl::images_on_threads); false when it
// does not apply and the caller runs the batch the ordinary way. Allocates
// nothing when the outputs are preallocated (run_into).
bool Session::Impl::run_images_on_threads(const std::vector<Tensor>& in, std::vector<Tensor>& out, int64_t batch) {
  if (!images_on_threads || in.size() != 1 || batch < 2 || omp_in_parallel()) return false;
  const int team = omp_get_max_threads();  // run_checked has set options.threads
  if (team < 2 || batch < team || in[0].dtype() != inputs[0].dtype) return false;
  constexpr size_t kMaxOutputs = 16;
  if (out.size() > kMaxOutputs || (!out.empty() && out.size() != outputs.size())) return false;
  ModelPool* pool = per_image_pool();
  if (!pool || per_image_out_numel.size() != outputs.size()) return false;
  if (out.empty()) out.resize(outputs.size());
  for (size_t o = 0; o < outputs.size(); ++o) {
    if (out[o].defined()) continue;
    Shape shape = outputs[o].dims;
    if (shape.empty()) return false;
    shape[0] = batch;
    out[o] = Tensor(outputs[o].dtype, shape);
  }
  // Each output must be batch-major with one image's worth per row.
  std::array<size_t, kMaxOutputs> out_bytes{};
  for (size_t o = 0; o < out.size(); ++o) {
    if (out[o].rank() == 0 || out[o].dim(0) != batch || out[o].numel() != per_image_out_numel[o] * batch) return false;
    out_bytes[o] = static_cast<size_t>(per_image_out_numel[o]) * dtype_size(out[o].dtype());
  }
  const size_t in_bytes = static_cast<size_t>(in[0].numel() / batch) * dtype_size(in[0].dtype());
  const auto* in_base = static_cast<const std::byte*>(in[0].raw());
  const int64_t full = batch / team * team;  // images that run one per thread
  std::exception_ptr error;
#pragma omp parallel num_threads(team)
  {
    try {
      ModelPool::Lease ctx = pool->acquire();
      std::array<void*, kMaxOutputs> item_out{};
      // The region may get fewer threads than asked (OMP_THREAD_LIMIT,
      // OMP_DYNAMIC, a runtime's own limits: clang's TSan build got one):
      // stride by the threads it has, so every image is still computed.
      const int have = omp_get_num_threads();
      for (int64_t b = omp_get_thread_num(); b < full; b += have) {
        const void* item_in = in_base + static_cast<size_t>(b) * in_bytes;
        for (size_t o = 0; o < out.size(); ++o)
          item_out[o] = static_cast<std::byte*>(out[o].raw()) + static_cast<size_t>(b) * out_bytes[o];
        ctx->run_raw(&item_in, item_out.data());
      }
    } catch (...) {
#pragma omp critical(damoyolo_images_on_threads)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  // The rest (fewer images than threads) on every thread: the plan of that
  // batch size, or the batch-1 plan image by image.
  if (full < batch) {
    const int64_t rest = batch - full;
    ModelPool& rest_pool = batch_plans && rest < engine_batch ? pool_for_batch(rest) : *main;
    const bool whole = &rest_pool != main.get() || engine_batch == rest;
    const int64_t per_call = whole ? rest : 1;
    ModelPool::Lease ctx = rest_pool.acquire();
    std::array<void*, kMaxOutputs> item_out{};
    for (int64_t b = full; b < batch; b += per_call) {
      const void* item_in = in_base + static_cast<size_t>(b) * in_bytes;
      for (size_t o = 0; o < out.size(); ++o)
        item_out[o] = static_cast<std::byte*>(out[o].raw()) + static_cast<size_t>(b) * out_bytes[o];
      ctx->run_raw(&item_in, item_out.data());
    }
  }
  per_image_runs.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Session::Impl::validate_inputs(const std::vector<Tensor>& in, int64_t& batch) const {
  if (in.size() != inputs.size())
    throw Error(ErrorCode::kInvalidArgument, "the model takes " + std::to_string(inputs.size()) + " input(s), got " +
                                                 std::to_string(in.size()));
  // Batching applies to single-input models (detectors): their leading
  // dimension may differ from the file's when the engine was compiled for that
  // batch, or when the model is batch-1 and the session runs items one by one.
  // Every other dimension, and every input of a multi-input graph, must match.
  const bool batchable = inputs.size() == 1 && inputs[0].dims.size() >= 1;
  batch = -1;
  for (size_t i = 0; i < in.size(); ++i) {
    const TensorInfo& want = inputs[i];
    const Tensor& t = in[i];
    if (!t.defined()) throw Error(ErrorCode::kInvalidArgument, "input '" + want.name + "' is empty");
    bool dtype_ok = t.dtype() == want.dtype || (want.dtype == DType::kFloat32 && t.dtype() == DType::kUInt8);
    if (!dtype_ok)
      throw Error(ErrorCode::kInvalidArgument, "input '" + want.name + "' must be " + dtype_name(want.dtype) +
                                                   ", got " + dtype_name(t.dtype()));
    bool shape_ok = t.rank() == want.dims.size();
    for (size_t d = 0; shape_ok && d < t.rank(); ++d) {
      if (want.dims[d] < 0 || t.dim(d) == want.dims[d]) continue;
      shape_ok = d == 0 && batchable && t.dim(0) >= 1 &&
                 (engine_batch == 1 || t.dim(0) == engine_batch || (batch_plans && t.dim(0) < engine_batch));
    }
    if (!shape_ok)
      throw Error(ErrorCode::kInvalidArgument, "input '" + want.name + "' must have shape " +
                                                   shape_to_string(want.dims) + ", got " + shape_to_string(t.shape()));
    if (batchable) batch = t.dim(0);
  }
}

// Preallocated outputs (run_into) must be exactly what this batch writes: the
// engines write through their raw pointers, so a short buffer would be
// overrun. Undefined entries are allocated by the engine; an empty list too.
void Session::Impl::validate_outputs(const std::vector<Tensor>& out, int64_t batch) const {
  if (out.empty()) return;
  if (out.size() != outputs.size())
    throw Error(ErrorCode::kInvalidArgument, "the model has " + std::to_string(outputs.size()) +
                                                 " output(s); run_into was given " + std::to_string(out.size()));
  for (size_t o = 0; o < out.size(); ++o) {
    if (!out[o].defined()) continue;
    // Compared in place: this runs every frame and must not allocate.
    const Shape& dims = outputs[o].dims;
    const bool rebatch = batch >= 1 && batch != engine_batch && !dims.empty() && dims[0] == engine_batch;
    bool ok = out[o].dtype() == outputs[o].dtype && out[o].rank() == dims.size();
    for (size_t d = 0; ok && d < dims.size(); ++d) {
      const int64_t want = d == 0 && rebatch ? batch : dims[d];
      ok = want < 0 || out[o].dim(static_cast<int>(d)) == want;  // unknown dims: the engine checks
    }
    if (ok) continue;
    Shape want = dims;
    if (rebatch) want[0] = batch;
    throw Error(ErrorCode::kInvalidArgument,
                "output '" + outputs[o].name + "' must be preallocated as " + dtype_name(outputs[o].dtype) +
                    shape_to_string(want) + " for this batch, got " + dtype_name(out[o].dtype()) +
                    shape_to_string(out[o].shape()) + " (Session::make_outputs(batch) makes them)");
  }
}

void Session::Impl::run_checked(const std::vector<Tensor>& in_raw, std::vector<Tensor>& out) {
  int64_t batch = 1;
  validate_inputs(in_raw, batch);
  validate_outputs(out, batch);
  if (options.threads > 0) omp_set_num_threads(options.threads);
  bool convert = false;
  for (size_t i = 0; i < in_raw.size(); ++i) convert |= in_raw[i].dtype() != inputs[i].dtype;
  // A short batch on a model compiled for more: its own plan (compiled on
  // first use), so it runs as itself, not padded.
  if (!convert && run_images_on_threads(in_raw, out, batch)) return;
  ModelPool& pool = batch >= 1 && batch < engine_batch ? pool_for_batch(batch) : *main;
  const bool native = batch < 0 || batch == engine_batch || &pool != main.get();
  ModelPool::Lease ctx = pool.acquire();
  if (!convert && native) {
    ctx->run(in_raw, out);  // the steady-state path: no allocation here
    return;
  }
  std::vector<Tensor> in;
  in.reserve(in_raw.size());
  for (size_t i = 0; i < in_raw.size(); ++i)
    in.push_back(in_raw[i].dtype() == inputs[i].dtype ? in_raw[i] : to_float(in_raw[i]));
  if (native) {
    ctx->run(in, out);
    return;
  }
  // Batch N on a model compiled for batch 1: run the items one after another
  // on the same context and write each into its slice of the outputs.
  if (out.empty()) {
    out.resize(outputs.size());
  }
  for (size_t o = 0; o < outputs.size(); ++o) {
    if (out[o].defined()) continue;
    Shape s = outputs[o].dims;
    if (s.empty() || s[0] != 1)
      throw Error(ErrorCode::kUnsupported, "output '" + outputs[o].name + "' has no batch dimension; cannot batch");
    s[0] = batch;
    out[o] = Tensor(outputs[o].dtype, s);
  }
  std::vector<Tensor> item_in(in.size()), item_out(out.size());
  for (int64_t b = 0; b < batch; ++b) {
    for (size_t i = 0; i < in.size(); ++i) {
      Shape s = in[i].shape();
      s[0] = 1;
      size_t bytes = static_cast<size_t>(shape_numel(s)) * dtype_size(in[i].dtype());
      item_in[i] = Tensor::wrap(in[i].dtype(), s, static_cast<char*>(const_cast<void*>(in[i].raw())) + b * bytes);
    }
    for (size_t o = 0; o < out.size(); ++o) {
      Shape s = out[o].shape();
      s[0] = 1;
      size_t bytes = static_cast<size_t>(shape_numel(s)) * dtype_size(out[o].dtype());
      item_out[o] = Tensor::wrap(out[o].dtype(), s, static_cast<char*>(out[o].raw()) + b * bytes);
    }
    ctx->run(item_in, item_out);
  }
}

Session::Session() = default;
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::Session(const Session&) = default;
Session& Session::operator=(const Session&) = default;
Session::Session(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

// Builds a Session from a loaded graph (a friend: the Impl constructor is private).
struct SessionFactory {
  static Result<Session> build(graph::Graph g, const SessionOptions& options, const std::string& path);
};

Result<Session> SessionFactory::build(graph::Graph g, const SessionOptions& options, const std::string& path) {
  try {
    auto impl = std::make_unique<Session::Impl>();
    impl->options = options;
    ModelSummary& s = impl->summary;
    s.path = path;
    s.producer = g.producer;
    s.ir_version = g.ir_version;
    s.opsets = g.opsets;
    s.metadata = g.metadata;
    for (const auto& n : g.nodes) s.op_histogram_original[n.op_type]++;
    for (const auto& [name, t] : g.constants) s.parameters += t.numel();

    for (const auto& in : g.inputs) {
      const graph::ValueInfo* vi = g.info(in);
      if (!vi || !vi->has_shape)
        throw Error(ErrorCode::kUnsupported, "graph input '" + in + "' has no declared shape");
      if (vi->dtype == DType::kUndefined)
        throw Error(ErrorCode::kUnsupported, "graph input '" + in + "' has an unsupported element type");
    }
    int64_t model_batch = 1;
    if (!g.inputs.empty()) {
      const auto* vi = g.info(g.inputs[0]);
      if (!vi->shape.empty()) model_batch = vi->shape[0];
    }
    // A symbolic batch dimension is resolved to the requested batch (default 1).
    if (model_batch < 0) graph::set_input_batch(g, options.batch > 0 ? options.batch : 1);

    // The optimised engine needs every shape static; the reference engine can
    // size values at run time. Shape inference evaluates what is known at load
    // time with or without folding, so folding off keeps shapes static (the
    // nodes then run at inference; constant_folding in damoyolo/optimizations.h).
    bool optimized_possible = options.engine != Engine::kReference;
    graph::PassOptions popts;
    popts.constant_folding = options.opt.constant_folding;
    popts.require_static_shapes = optimized_possible;
    popts.limits = options.limits;
    graph::Graph unprocessed;
    if (options.engine == Engine::kAuto) unprocessed = g;  // shares weight storage; cheap
    std::string engine_fallback;  // why kAuto runs the reference engine
    try {
      graph::run_standard_passes(g, popts, kernels::ref::evaluator());
    } catch (const Error& e) {
      if (options.engine != Engine::kAuto || e.code() != ErrorCode::kUnsupported) throw;
      engine_fallback = e.what();
      // Dynamic shapes the optimised engine can't plan: the reference engine still runs them.
      g = std::move(unprocessed);
      graph::PassOptions ref_opts;
      ref_opts.constant_folding = options.opt.constant_folding;
      ref_opts.require_static_shapes = false;
      ref_opts.limits = options.limits;
      graph::run_standard_passes(g, ref_opts, kernels::ref::evaluator());
      optimized_possible = false;
    }
    summarize(g, s);
    if (!g.inputs.empty()) {
      const auto* vi = g.info(g.inputs[0]);
      if (vi && !vi->shape.empty() && vi->shape[0] > 0) s.macs_batch = vi->shape[0];
    }

    std::unique_ptr<runtime::CompiledModel> model;
    if (!optimized_possible) {
      model = runtime::compile_reference(g, options);
    } else {
      impl->weights = runtime::make_weight_cache();
      try {
        model = runtime::compile_optimized(g, options, impl->weights.get());
      } catch (const Error& e) {
        if (options.engine != Engine::kAuto || e.code() != ErrorCode::kUnsupported) throw;
        engine_fallback = e.what();
        impl->weights.reset();
        model = runtime::compile_reference(g, options);
      }
    }
    impl->plan = model->plan();
    impl->plan.engine_fallback_reason = engine_fallback;
    impl->inputs = model->input_infos();
    impl->outputs = model->output_infos();
    const bool optimized = model->engine() == Engine::kOptimized;
    impl->main = std::make_unique<ModelPool>(std::move(model), options.max_contexts);
    impl->engine_batch = impl->inputs.empty() || impl->inputs[0].dims.empty() ? 1 : impl->inputs[0].dims[0];
    // Shorter batches get plans of their own later: keep the graph (its
    // weights as loaded; the packed ones are shared through impl->weights).
    impl->batch_plans = optimized && impl->engine_batch > 1 && impl->inputs.size() == 1;
    impl->images_on_threads = impl->batch_plans && options.opt.images_on_threads && impl->plan.batch_separable;
    if (impl->batch_plans) impl->graph = std::move(g);
    else impl->weights.reset();
    s.inputs = impl->inputs;
    s.outputs = impl->outputs;
    return Session(std::move(impl));
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kOutOfRange, path + ": out of memory while loading the model");
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, path + ": " + e.what());
  }
}

Result<Session> Session::load(const std::string& path, const SessionOptions& given) {
  try {
    const SessionOptions options = checked_options(given);
    return SessionFactory::build(onnx_io::load_onnx_file(path, options.limits), options, path);
  } catch (const Error& e) {
    return e.status();
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, path + ": " + e.what());
  }
}

Result<Session> Session::load_from_memory(const void* data, size_t size, const SessionOptions& given,
                                          const std::string& base_dir) {
  try {
    const SessionOptions options = checked_options(given);
    return SessionFactory::build(onnx_io::load_onnx_memory(data, size, base_dir, "<memory>", options.limits), options,
                                 "<memory>");
  } catch (const Error& e) {
    return e.status();
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, std::string("<memory>: ") + e.what());
  }
}

static const std::vector<TensorInfo> kNoInfos;
static const ModelSummary kNoSummary;

const std::vector<TensorInfo>& Session::inputs() const { return impl_ ? impl_->inputs : kNoInfos; }
const std::vector<TensorInfo>& Session::outputs() const { return impl_ ? impl_->outputs : kNoInfos; }
const ModelSummary& Session::summary() const { return impl_ ? impl_->summary : kNoSummary; }
Engine Session::engine() const { return impl_ ? impl_->main->model().engine() : Engine::kAuto; }
size_t Session::arena_bytes() const { return impl_ ? impl_->main->model().arena_bytes() : 0; }
const CompiledPlan& Session::plan() const {
  static const CompiledPlan kEmpty{};
  return impl_ ? impl_->plan : kEmpty;
}
int Session::threads() const { return impl_ ? impl_->options.threads : 0; }

Session::PoolStats Session::pool_stats() const {
  return impl_ ? impl_->main->stats() : PoolStats{};
}

std::vector<int64_t> Session::compiled_batches() const {
  std::vector<int64_t> b;
  if (!impl_) return b;
  b.push_back(impl_->engine_batch);
  std::lock_guard<std::mutex> lock(impl_->batches_mutex);
  for (const auto& [k, pool] : impl_->by_batch) b.push_back(k);
  std::sort(b.begin(), b.end());
  return b;
}

Session::ImagesOnThreads Session::images_on_threads() const {
  ImagesOnThreads r;
  if (!impl_) return r;
  r.enabled = impl_->images_on_threads;
  r.runs = impl_->per_image_runs.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(impl_->batches_mutex);
  if (impl_->per_image) r.plan = impl_->per_image->model().plan();
  r.error = impl_->per_image_error;
  return r;
}

bool Session::shares_model_with(const Session& other) const { return impl_ && impl_ == other.impl_; }

std::vector<Tensor> Session::make_outputs(int64_t batch) const {
  std::vector<Tensor> out;
  if (!impl_) return out;
  for (const auto& info : impl_->outputs) {
    Shape s = info.dims;
    if (batch > 0 && !s.empty()) s[0] = batch;
    bool known = true;
    for (int64_t d : s) known &= d >= 0;
    out.push_back(known && info.dtype != DType::kUndefined ? Tensor(info.dtype, s) : Tensor());
  }
  return out;
}

Status Session::run_into(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) const {
  if (!impl_) return Status(ErrorCode::kInvalidArgument, "the session has no model loaded");
  try {
    impl_->run_checked(inputs, outputs);
    return Status::Ok();
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kOutOfRange, "out of memory while running the model");
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, e.what());
  }
}

Result<std::vector<Tensor>> Session::run(const std::vector<Tensor>& inputs) const {
  std::vector<Tensor> outputs;
  Status st = run_into(inputs, outputs);
  if (!st.ok()) return st;
  return outputs;
}

Result<std::map<std::string, Tensor>> Session::run_named(const std::map<std::string, Tensor>& named) const {
  if (!impl_) return Status(ErrorCode::kInvalidArgument, "the session has no model loaded");
  std::vector<Tensor> in;
  for (const auto& info : impl_->inputs) {
    auto it = named.find(info.name);
    if (it == named.end()) return Status(ErrorCode::kInvalidArgument, "missing input '" + info.name + "'");
    in.push_back(it->second);
  }
  for (const auto& [name, t] : named) {
    bool known = false;
    for (const auto& info : impl_->inputs) known |= info.name == name;
    if (!known) return Status(ErrorCode::kInvalidArgument, "the model has no input named '" + name + "'");
  }
  auto out = run(in);
  if (!out.ok()) return out.status();
  std::map<std::string, Tensor> result;
  for (size_t i = 0; i < impl_->outputs.size(); ++i) result[impl_->outputs[i].name] = (*out)[i];
  return result;
}

}  // namespace damoyolo
