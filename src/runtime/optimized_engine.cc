// The optimised engine: compiles the graph once into a flat list of steps
// over oneDNN primitives, then runs it with no per-inference allocation in
// damoyolo's own code.
//
// Compile (once per model and batch size):
//   1. The fusion passes (graph/passes/fusion.h) rewrite a copy of the graph:
//      the DAMO-YOLO decode → DamoYoloHead, x·sigmoid(x) → Silu, conv chains
//      (scale, activations, residual sum) → FusedConv, Focus concats marked
//      zero-copy. Each pass follows its OptimizationOptions switch; the plan
//      records what each did.
//   2. Every node, in order, is lowered by the lowering registered for its op
//      (kernels/dnnl/lowering.h): oneDNN primitives whose weights are packed
//      once, activations kept in the layout the primitives chose, reorders
//      only where a consumer wants another layout or type. Lowering a node is
//      a transaction: when it declines (or oneDNN refuses), everything it
//      added is rolled back and the node alone runs on its reference kernel
//      (a fallback step, listed in the plan with the reason).
//   3. Every intermediate buffer ("slot") gets an offset in one arena from the
//      lifetime-based memory plan (runtime/memory_plan.h).
// Run (per ExecutionContext): the context owns the arena, a stream and one
// pre-bound argument list per step; run() only patches the caller's input and
// output pointers and executes.
#include <omp.h>

#include <climits>
#include <cstring>

#include "common/checked_size.h"
#include "graph/batch_separable.h"
#include "graph/passes/fusion.h"
#include "kernels/dnnl/lowering.h"
#include "kernels/reference/registry.h"
#include "runtime/arena.h"
#include "runtime/executor.h"
#include "runtime/memory_plan.h"

namespace damoyolo::runtime {

std::shared_ptr<WeightCache> make_weight_cache() { return std::make_shared<WeightCache>(); }
WeightCacheStats weight_cache_stats(const WeightCache& cache) { return cache.stats(); }

namespace {

using dnnl::memory;
using kernels::dnnl_ops::Binder;
using kernels::dnnl_ops::BoundStep;
using kernels::dnnl_ops::cpu_engine;
using kernels::dnnl_ops::LoweringContext;
using kernels::dnnl_ops::LoweringOptions;
using kernels::dnnl_ops::plain_desc;
using kernels::dnnl_ops::PrimitiveStep;
using kernels::dnnl_ops::Ref;
using kernels::dnnl_ops::RunState;
using kernels::dnnl_ops::Slot;
using kernels::dnnl_ops::Step;
using dt = memory::data_type;

Error unsupported(const std::string& what) { return Error(ErrorCode::kUnsupported, what); }

// ---------------------------------------------------------------------------
// The compiled model and its contexts

class OptimizedModel;

class OptimizedContext final : public ExecutionContext {
 public:
  explicit OptimizedContext(const OptimizedModel& m);
  void run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override;
  void run_raw(const void* const* inputs, void* const* outputs) override;

 private:
  const OptimizedModel& model_;
  Arena arena_;
  RunState rs_;
  std::vector<std::unique_ptr<BoundStep>> steps_;
  std::vector<Binder::External> externals_;
  std::vector<const void*> in_ptrs_;  // run()'s tensors as run_raw() takes them
  std::vector<void*> out_ptrs_;
};

class OptimizedModel final : public CompiledModel {
 public:
  std::vector<Slot> slots;
  std::vector<size_t> slot_offset;  // arena offset per arena slot
  size_t planned_bytes = 0;         // intermediates
  size_t scratchpad_bytes = 0;      // shared by all primitives (they run one at a time)
  std::vector<std::unique_ptr<Step>> steps;
  std::vector<TensorInfo> in_infos, out_infos;
  int threads = 0;
  bool huge_pages = true;  // OptimizationOptions::huge_pages
  CompiledPlan plan_;

  std::unique_ptr<ExecutionContext> create_context() const override {
    return std::make_unique<OptimizedContext>(*this);
  }
  std::vector<TensorInfo> output_infos() const override { return out_infos; }
  std::vector<TensorInfo> input_infos() const override { return in_infos; }
  size_t arena_bytes() const override { return planned_bytes + scratchpad_bytes; }
  Engine engine() const override { return Engine::kOptimized; }
  const CompiledPlan& plan() const override { return plan_; }
};

OptimizedContext::OptimizedContext(const OptimizedModel& m)
    : model_(m), arena_(m.arena_bytes(), 64, m.huge_pages), rs_{{}, nullptr, dnnl::stream(cpu_engine())} {
  rs_.slot_ptr.assign(m.slots.size(), nullptr);
  for (size_t i = 0; i < m.slots.size(); ++i)
    if (m.slots[i].kind == Slot::Kind::kArena) rs_.slot_ptr[i] = arena_.data() + m.slot_offset[i];
  rs_.scratchpad = arena_.data() + m.planned_bytes;
  Binder binder(rs_, m.slots);
  steps_.reserve(m.steps.size());
  for (const auto& s : m.steps) steps_.push_back(s->bind(binder));
  externals_ = std::move(binder.externals());
  in_ptrs_.resize(m.in_infos.size());
  out_ptrs_.resize(m.out_infos.size());
}

void OptimizedContext::run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) {
  // An empty output list asks the engine to allocate (Session::run); run_into
  // passes preallocated tensors and this allocates nothing.
  if (outputs.empty()) outputs.resize(model_.out_infos.size());
  if (inputs.size() != model_.in_infos.size() || outputs.size() != model_.out_infos.size())
    throw Error(ErrorCode::kInvalidArgument, "optimized engine: wrong number of inputs or outputs");
  for (size_t i = 0; i < outputs.size(); ++i)
    if (!outputs[i].defined()) outputs[i] = Tensor(model_.out_infos[i].dtype, model_.out_infos[i].dims);
  // Pointer lists sized at construction: no allocation per run.
  for (size_t i = 0; i < inputs.size(); ++i) in_ptrs_[i] = inputs[i].raw();
  for (size_t i = 0; i < outputs.size(); ++i) out_ptrs_[i] = outputs[i].raw();
  run_raw(in_ptrs_.data(), out_ptrs_.data());
}

void OptimizedContext::run_raw(const void* const* inputs, void* const* outputs) {
  // OpenMP's thread count is per calling thread, so set it on every run (cheap).
  if (model_.threads > 0) omp_set_num_threads(model_.threads);
  for (size_t i = 0; i < model_.slots.size(); ++i) {
    const Slot& s = model_.slots[i];
    if (s.kind == Slot::Kind::kInput) rs_.slot_ptr[i] = static_cast<std::byte*>(const_cast<void*>(inputs[s.external]));
    if (s.kind == Slot::Kind::kOutput) rs_.slot_ptr[i] = static_cast<std::byte*>(outputs[s.external]);
  }
  for (auto& e : externals_) e.mem.set_data_handle(rs_.slot_ptr[e.slot] + e.offset);
  for (auto& s : steps_) s->run(rs_);
  rs_.stream.wait();
}

// ---------------------------------------------------------------------------
// The compiler: drives the lowerings node by node, then plans memory.

class Compiler {
 public:
  Compiler(const graph::Graph& g, const SessionOptions& o, const LoweringOptions& lo, WeightCache* weights)
      : g_(g), o_(o), lo_(lo), cx_(g, lo, weights) {}
  std::unique_ptr<OptimizedModel> compile(std::vector<PlanPass> passes);

 private:
  void check_shapes() const;
  std::string quantized_input(const graph::Node& n) const;
  void compile_outputs();

  const graph::Graph& g_;
  const SessionOptions& o_;
  LoweringOptions lo_;
  LoweringContext cx_;
};

// Every shape this engine hands to oneDNN, at the session's batch: within the
// limits (kOutOfRange), and within what oneDNN indexes (kUnsupported, so that
// Engine::kAuto still runs such a graph on the reference engine).
void Compiler::check_shapes() const {
  auto check = [&](const std::string& v) {
    const graph::ValueInfo* vi = g_.info(v);
    if (!vi || !vi->fully_known()) return;  // info() reports it where it is needed
    const Shape s = cx_.shape_of(v);
    checked::check_tensor(s, vi->dtype, o_.limits, "value '" + v + "'");
    if (s.size() > DNNL_MAX_NDIMS)
      throw unsupported("value '" + v + "' has rank " + std::to_string(s.size()) + "; oneDNN takes at most " +
                        std::to_string(DNNL_MAX_NDIMS));
    const int64_t elems = checked::numel_or_throw(s, "value '" + v + "'");
    if (elems > INT32_MAX)
      throw unsupported("value '" + v + "' " + shape_to_string(s) + " has " + std::to_string(elems) +
                        " elements; the optimised engine (oneDNN) takes at most 2^31 - 1 per tensor");
  };
  for (const auto& in : g_.inputs) check(in);
  for (const auto& n : g_.nodes)
    for (const auto& o : n.outputs)
      if (!o.empty()) check(o);
}

// The first runtime input of n that is uint8/int8 (a quantised activation),
// or "".
std::string Compiler::quantized_input(const graph::Node& n) const {
  for (const auto& in : n.inputs) {
    if (in.empty() || g_.is_constant(in)) continue;
    const graph::ValueInfo* vi = g_.info(in);
    if (vi && (vi->dtype == DType::kUInt8 || vi->dtype == DType::kInt8)) return in;
  }
  return {};
}

void Compiler::compile_outputs() {
  for (size_t i = 0; i < g_.outputs.size(); ++i) {
    const std::string& v = g_.outputs[i];
    const graph::ValueInfo& vi = cx_.info(v);
    if (vi.dtype != DType::kFloat32 && !kernels::dnnl_ops::is_raw_io_dtype(vi.dtype))
      throw unsupported("graph output '" + v + "' is not float32 (nor uint8, int8 or int32)");
    bool in_place = false;
    for (const Ref& r : cx_.locations(v))
      if (cx_.slot(r.slot).kind == Slot::Kind::kOutput && cx_.slot(r.slot).external == static_cast<int>(i)) in_place = true;
    if (in_place) continue;
    // A quantised output is written in place by the fallback that computes it
    // (lower_fallback); anywhere else (an input passed straight through) it
    // has no oneDNN descriptor to copy with.
    if (vi.dtype != DType::kFloat32)
      throw unsupported("graph output '" + v + "' (" + dtype_name(vi.dtype) +
                        ") is not computed by a node of the graph");
    const Shape s = cx_.shape_of(v);
    Ref dst;
    dst.md = plain_desc(s, dt::f32);
    dst.shape = s;
    dst.slot = cx_.new_slot(dst.md.get_size(), Slot::Kind::kOutput, static_cast<int>(i));
    const Ref src = cx_.current(v);
    if (src.md.get_size() == 0) throw unsupported("graph output '" + v + "' cannot be copied");
    cx_.reorder_into(src, dst, v, "output");
  }
}

std::unique_ptr<OptimizedModel> Compiler::compile(std::vector<PlanPass> passes) {
  if (g_.inputs.empty()) throw unsupported("graph has no inputs");
  check_shapes();

  auto model = std::make_unique<OptimizedModel>();
  model->huge_pages = o_.opt.huge_pages;
  model->threads = o_.threads;
  model->plan_.threads = o_.threads;
  for (size_t i = 0; i < g_.inputs.size(); ++i) {
    const std::string& v = g_.inputs[i];
    const graph::ValueInfo& vi = cx_.info(v);
    Ref r;
    r.shape = cx_.shape_of(v);
    if (vi.dtype == DType::kFloat32) {
      r.md = plain_desc(r.shape, dt::f32);
      r.slot = cx_.new_slot(r.md.get_size(), Slot::Kind::kInput, static_cast<int>(i));
    } else if (kernels::dnnl_ops::is_raw_io_dtype(vi.dtype)) {
      // A quantised input (a QDQ model's, or an ONNX node test's): no oneDNN
      // descriptor, so only fallback steps read it, in its own type.
      r.dtype = vi.dtype;
      r.slot = cx_.new_slot(static_cast<size_t>(shape_numel(r.shape)) * dtype_size(vi.dtype), Slot::Kind::kInput,
                            static_cast<int>(i));
    } else {
      throw unsupported("graph input '" + v + "' is not float32 (nor uint8, int8 or int32)");
    }
    cx_.define(v, r);
    model->in_infos.push_back({v, vi.dtype, r.shape});
  }

  for (size_t ni = 0; ni < g_.nodes.size(); ++ni) {
    const graph::Node& n = g_.nodes[ni];
    auto cp = cx_.checkpoint();
    std::string reason;
    bool ok = false;
    try {
      const kernels::dnnl_ops::Lowering* l = kernels::dnnl_ops::find_lowering(n);
      const std::string int8_input = l && !l->reads_int8 ? quantized_input(n) : std::string();
      ok = l && int8_input.empty() && l->lower(cx_, ni);
      if (!ok)
        reason = !l ? "no lowering for " + n.op_type
                    : !int8_input.empty()
                        ? "its input '" + int8_input + "' is quantised (" + n.op_type + " has no INT8 lowering)"
                        : "no oneDNN lowering for this " + n.op_type + " (its attributes, inputs or layout)";
    } catch (const dnnl::error& e) {
      // oneDNN refused this configuration; the reference kernel still can.
      reason = std::string("oneDNN refused it: ") + e.what();
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kUnsupported) throw;  // an invalid model stays an error
      reason = e.what();
    }
    if (!ok) {
      cx_.rollback(cp);
      kernels::dnnl_ops::lower_fallback(cx_, ni, reason);
    }
    cx_.mark_done(ni);
  }
  compile_outputs();

  std::vector<Slot>& slots = cx_.slots();
  // --- memory plan over arena slots
  std::vector<BufferLifetime> lifetimes;
  std::vector<int> arena_slots;
  for (size_t i = 0; i < slots.size(); ++i) {
    Slot& s = slots[i];
    if (s.kind != Slot::Kind::kArena) continue;
    if (s.first_step < 0) s.first_step = s.last_step = 0;  // never touched; keep it valid
    lifetimes.push_back({s.bytes, s.first_step, s.last_step});
    arena_slots.push_back(static_cast<int>(i));
  }
  MemoryPlan plan = o_.opt.memory_planning ? plan_memory(lifetimes) : plan_memory_without_reuse(lifetimes);
  model->slot_offset.assign(slots.size(), 0);
  for (size_t k = 0; k < arena_slots.size(); ++k) model->slot_offset[arena_slots[k]] = plan.offsets[k];
  model->planned_bytes = plan.total_bytes;
  model->scratchpad_bytes = (cx_.scratchpad_bytes() + 63) / 64 * 64;
  // Each execution context allocates this much: refuse it before one does.
  const uint64_t workspace = static_cast<uint64_t>(model->planned_bytes) + model->scratchpad_bytes;
  if (workspace > static_cast<uint64_t>(o_.limits.max_workspace_bytes))
    throw Error(ErrorCode::kOutOfRange,
                "the optimised engine's workspace (" + std::to_string(model->planned_bytes) +
                    " bytes of intermediates + " + std::to_string(model->scratchpad_bytes) +
                    " bytes of oneDNN scratchpad) is over the limit of " +
                    std::to_string(o_.limits.max_workspace_bytes) + " bytes (ModelLimits::max_workspace_bytes)");
  CompiledPlan& cplan = model->plan_;
  cplan.engine = Engine::kOptimized;
  cplan.precision = o_.precision;
  cplan.batch = lo_.batch;
  cplan.steps = std::move(cx_.plan());
  cplan.arena_bytes = model->planned_bytes;
  cplan.scratchpad_bytes = model->scratchpad_bytes;
  for (const auto& st : cx_.steps())
    if (const auto* ps = dynamic_cast<const PrimitiveStep*>(st.get()))
      for (const auto& [arg, mem] : ps->const_args) cplan.weight_bytes += mem.get_desc().get_size();
  model->slots = std::move(slots);
  model->steps = std::move(cx_.steps());
  for (const auto& v : g_.outputs) model->out_infos.push_back({v, cx_.info(v).dtype, cx_.shape_of(v)});
  model->plan_.passes = std::move(passes);
  return model;
}

}  // namespace

std::unique_ptr<CompiledModel> compile_optimized(const graph::Graph& g_in, const SessionOptions& opts,
                                                 WeightCache* weights) {
  // The fusion passes rewrite a copy (constants share their storage): the
  // session keeps the ONNX-level graph for other batch sizes and summaries.
  graph::Graph g = g_in;
  graph::FusionOptions fo;
  fo.fuse_head = opts.opt.fuse_head;
  fo.fuse_conv_activation = opts.opt.fuse_conv_activation;
  fo.fuse_conv_residual = opts.opt.fuse_conv_residual;
  fo.int8_convolution = opts.opt.int8_convolution;
  fo.zero_copy_concat = opts.opt.zero_copy_concat;
  const graph::Evaluator eval = kernels::ref::evaluator();
  std::vector<PlanPass> passes;
  for (const auto& r : graph::run_fusion_passes(g, fo, eval)) passes.push_back({r.name, r.rewrites, r.nodes_after});

  LoweringOptions lo;
  lo.bf16 = opts.precision == Precision::kBF16;
  lo.blocked_layout = opts.opt.blocked_layout;
  const graph::ValueInfo* in0 = g.inputs.empty() ? nullptr : g.info(g.inputs[0]);
  lo.model_batch = in0 && !in0->shape.empty() ? in0->shape[0] : 1;
  lo.batch = opts.batch > 0 ? opts.batch : lo.model_batch;
  // oneDNN sizes each primitive's work split for the OpenMP thread count of
  // the thread that creates it, and runs it on that many threads whatever the
  // count at run time: a plan compiled under the default and run with
  // threads = 1 still forked a second thread at every layer (`bench --threads
  // 1` ran on both cores). So the primitives are created under opts.threads.
  struct ScopedThreads {
    int before = omp_get_max_threads();
    explicit ScopedThreads(int n) {
      if (n > 0) omp_set_num_threads(n);
    }
    ~ScopedThreads() { omp_set_num_threads(before); }
  } scoped(opts.threads);
  Compiler c(g, opts, lo, weights);
  auto model = c.compile(std::move(passes));
  model->plan_.batch_separable = graph::batch_separable(g, &model->plan_.batch_separable_why);
  return model;
}

}  // namespace damoyolo::runtime
