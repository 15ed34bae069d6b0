// The optimised engine: compiles the graph once into a flat list of steps
// over oneDNN primitives, then runs it with no per-inference allocation in
// damoyolo's own code.
//
// Compile (once per model):
//   * Conv + its chain of post-ops (scale fold, ReLU/SiLU/Sigmoid, residual
//     Add as sum or binary post-op) become one convolution primitive whose
//     weights are reordered once into the layout the primitive chose
//     (format_tag::any). Activations stay in that layout (channels-last for
//     brgconv on AVX-512) between steps; reorders appear only where a
//     consumer wants a different layout or data type (graph edges, fallback).
//   * MaxPool, nearest Resize, Concat, eltwise/binary ops map to primitives;
//     Slice on a plain tensor (Focus) is a strided view, so the Focus
//     Slice→Concat becomes strided reorders straight into the concat output.
//   * The DAMO-YOLO decode subgraph becomes one fused head step.
//   * Anything else runs through the reference kernel on plain tensors, as a
//     fallback step for that node alone. Lowering a node is transactional: a
//     failed attempt leaves no slot, step or value behind.
//   * Every intermediate buffer ("slot") gets an offset in one arena from the
//     lifetime-based memory plan.
//   * Every step also gets a PlanStep (damoyolo/plan.h): the compiled plan is
//     data that tests assert and `damoyolo info --plan` prints.
// Run (per ExecutionContext): the context owns the arena, a stream and one
// pre-bound argument list per step; run() only patches the caller's input and
// output pointers and executes.
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "common/checked_size.h"
#include "kernels/head/head_decode.h"
#include "kernels/dnnl/dnnl_common.h"
#include "kernels/dnnl/head_pattern.h"
#include "kernels/reference/registry.h"
#include "model/head_layout.h"
#include "runtime/arena.h"
#include "runtime/executor.h"
#include "runtime/memory_plan.h"

namespace damoyolo::runtime {

// Packed weights by convolution node: the node, the scale folded into them
// and the layout the primitive asked for identify a packing; plans of other
// batch sizes usually get the same layout and then share the bytes.
struct WeightCache {
  struct Entry {
    float scale;
    dnnl::memory::desc md;
    dnnl::memory weights, bias;
  };
  std::mutex mutex;
  std::unordered_multimap<std::string, Entry> entries;
  WeightCacheStats stats;

  bool find(const std::string& node, float scale, const dnnl::memory::desc& md, dnnl::memory& w, dnnl::memory& b) {
    std::lock_guard<std::mutex> lock(mutex);
    auto [lo, hi] = entries.equal_range(node);
    for (auto it = lo; it != hi; ++it)
      if (it->second.scale == scale && it->second.md == md) {
        w = it->second.weights;
        b = it->second.bias;
        ++stats.reused;
        return true;
      }
    return false;
  }
  void add(const std::string& node, float scale, const dnnl::memory::desc& md, const dnnl::memory& w,
           const dnnl::memory& b) {
    std::lock_guard<std::mutex> lock(mutex);
    entries.emplace(node, Entry{scale, md, w, b});
    ++stats.packed;
  }
};

std::shared_ptr<WeightCache> make_weight_cache() { return std::make_shared<WeightCache>(); }
WeightCacheStats weight_cache_stats(const WeightCache& cache) {
  std::lock_guard<std::mutex> lock(const_cast<WeightCache&>(cache).mutex);
  return cache.stats;
}

namespace {

using dnnl::memory;
using kernels::dnnl_ops::cpu_engine;
using kernels::dnnl_ops::is_plain_strided;
using kernels::dnnl_ops::is_row_major_dense;
using kernels::dnnl_ops::nhwc_desc;
using kernels::dnnl_ops::plain_desc;
using dt = memory::data_type;

Error unsupported(const std::string& what) { return Error(ErrorCode::kUnsupported, what); }

// ---------------------------------------------------------------------------
// Buffers and references into them

// A run-time buffer: a region of the arena, or a caller's input/output tensor.
struct Slot {
  enum class Kind { kArena, kInput, kOutput };
  Kind kind = Kind::kArena;
  int external = -1;  // input/output index for external slots
  size_t bytes = 0;
  int first_step = -1, last_step = -1;
  int owners = 0;  // graph values currently held in this slot (views included)
};

// Where one materialisation of a value lives: slot + byte offset + layout.
// A value can have several (e.g. channels-last f32 and a plain copy for a
// fallback consumer); each is created at most once.
struct Ref {
  int slot = -1;
  size_t offset = 0;
  memory::desc md;      // zero md for dtypes oneDNN cannot describe (int64 ...)
  DType dtype = DType::kFloat32;
  Shape shape;          // logical (batch-adjusted) shape
  bool view = false;    // shares bytes with another value's buffer
};

// Per-context state every bound step reads.
struct RunState {
  std::vector<std::byte*> slot_ptr;  // arena slots fixed; external ones patched per run
  std::byte* scratchpad = nullptr;
  dnnl::stream stream;
};

class BoundStep {
 public:
  virtual ~BoundStep() = default;
  virtual void run(RunState& rs) = 0;
};

// Creates per-context memory objects; remembers which ones point into
// caller-owned tensors so run() can patch their handles.
class Binder {
 public:
  Binder(RunState& rs, const std::vector<Slot>& slots) : rs_(rs), slots_(slots) {}
  dnnl::memory memory_for(const Ref& r) {
    const Slot& s = slots_[r.slot];
    if (s.kind == Slot::Kind::kArena) return dnnl::memory(r.md, cpu_engine(), rs_.slot_ptr[r.slot] + r.offset);
    dnnl::memory m(r.md, cpu_engine(), DNNL_MEMORY_NONE);
    external_.push_back({m, r.slot, r.offset});
    return m;
  }
  struct External {
    dnnl::memory mem;
    int slot;
    size_t offset;
  };
  std::vector<External>& externals() { return external_; }
  RunState& state() { return rs_; }

 private:
  RunState& rs_;
  const std::vector<Slot>& slots_;
  std::vector<External> external_;
};

class Step {
 public:
  virtual ~Step() = default;
  virtual std::unique_ptr<BoundStep> bind(Binder& b) const = 0;
  PlanStep plan;  // what this step is, for the compiled plan
};

// ---------------------------------------------------------------------------
// Steps

// Any oneDNN primitive: arguments are refs (bound per context) or constant
// memories (weights/bias, shared read-only by every context).
class PrimitiveStep final : public Step {
 public:
  dnnl::primitive prim;
  std::vector<std::pair<int, Ref>> args;
  std::vector<std::pair<int, dnnl::memory>> const_args;
  memory::desc scratchpad_md;

  std::unique_ptr<BoundStep> bind(Binder& b) const override {
    auto bs = std::make_unique<Bound>();
    bs->prim = prim;
    for (const auto& [arg, ref] : args) bs->add(arg, b.memory_for(ref));
    for (const auto& [arg, mem] : const_args) bs->add(arg, mem);
    if (scratchpad_md.get_size() > 0)
      bs->add(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratchpad_md, cpu_engine(), b.state().scratchpad));
    return bs;
  }

 private:
  struct Bound final : BoundStep {
    dnnl::primitive prim;
    std::vector<dnnl::memory> keep;  // owns the handles referenced by c_args
    std::vector<dnnl_exec_arg_t> c_args;
    void add(int arg, dnnl::memory m) {
      c_args.push_back({arg, m.get()});
      keep.push_back(std::move(m));
    }
    void run(RunState& rs) override {
      // The C entry point takes a prebuilt argument array; the C++ wrapper
      // would build a std::vector from a map on every call.
      dnnl_status_t st = dnnl_primitive_execute(prim.get(), rs.stream.get(), static_cast<int>(c_args.size()),
                                                c_args.data());
      if (st != dnnl_success) throw Error(ErrorCode::kInternal, "oneDNN primitive execution failed");
    }
  };
};

// A node oneDNN has no primitive for: the reference kernel on plain tensors.
// (Allocates its outputs per call, as reference kernels do; the DAMO-YOLO
// fixtures need none once the head is fused.)
class FallbackStep final : public Step {
 public:
  graph::Node node;
  int64_t opset = 0;
  const kernels::ref::OpKernel* kernel = nullptr;
  std::vector<Tensor> constant_inputs;  // defined where input i is a constant
  std::vector<Ref> inputs;              // plain dense refs where input i is a runtime value
  std::vector<Ref> outputs;

  std::unique_ptr<BoundStep> bind(Binder&) const override { return std::make_unique<Bound>(this); }

 private:
  struct Bound final : BoundStep {
    explicit Bound(const FallbackStep* s) : step(s), in(s->inputs.size()) {}
    const FallbackStep* step;
    std::vector<Tensor> in;
    void run(RunState& rs) override {
      for (size_t i = 0; i < in.size(); ++i) {
        if (step->constant_inputs[i].defined()) {
          in[i] = step->constant_inputs[i];
        } else if (step->inputs[i].slot >= 0) {
          const Ref& r = step->inputs[i];
          in[i] = Tensor::wrap(r.dtype, r.shape, rs.slot_ptr[r.slot] + r.offset);
        }
      }
      kernels::ref::OpContext ctx{step->node, step->opset};
      std::vector<Tensor> out = step->kernel->compute(ctx, in);
      for (size_t i = 0; i < step->outputs.size(); ++i) {
        const Ref& r = step->outputs[i];
        if (r.slot < 0) continue;
        if (out[i].nbytes() != shape_numel(r.shape) * dtype_size(r.dtype))
          throw Error(ErrorCode::kInternal, step->node.describe() + ": output size differs from the planned shape");
        if (out[i].nbytes()) std::memcpy(rs.slot_ptr[r.slot] + r.offset, out[i].raw(), out[i].nbytes());
      }
    }
  };
};

// The DAMO-YOLO decode (softmax over bins, integral, priors, sigmoid scores)
// as one call on the cls/reg conv outputs, read in whatever strides the convs
// wrote (channels-last: anchor stride C, channel stride 1), so no transposes.
class FusedHeadStep final : public Step {
 public:
  kernels::head::HeadSpec spec{};
  std::vector<model::HeadLevel> levels;  // the matched HeadLayout's levels (model/head_layout.h)
  struct LevelMaps {
    Ref cls, reg;
  };
  std::vector<LevelMaps> level_maps;  // per level
  Ref scores, boxes;  // plain [N, A, C] and [N, A, 4]
  int64_t batch = 1;

  std::unique_ptr<BoundStep> bind(Binder&) const override { return std::make_unique<Bound>(this); }

  // Strides of a 4-D ref as (anchor, channel, image) element strides.
  static void strides_of(const Ref& r, int64_t& anchor, int64_t& channel, int64_t& image) {
    const auto& st = r.md.data.format_desc.blocking.strides;
    channel = st[1];
    anchor = st[3];  // w stride; rows are contiguous in w when h stride == w*wstride (checked at compile)
    image = st[0];
  }

 private:
  struct Bound final : BoundStep {
    explicit Bound(const FusedHeadStep* s) : step(s), maps(s->levels.size()) {}
    const FusedHeadStep* step;
    std::vector<kernels::head::HeadLevelMaps> maps;  // sized once; filled per image
    kernels::head::PriorCache cache;                 // per context: priors built once per geometry
    void run(RunState& rs) override {
      const int64_t A = step->scores.shape[1], C = step->scores.shape[2];
      for (int64_t n = 0; n < step->batch; ++n) {
        for (size_t l = 0; l < maps.size(); ++l) {
          const model::HeadLevel& lv = step->levels[l];
          const LevelMaps& m = step->level_maps[l];
          int64_t ca, cc, ci, ra, rc, ri;
          strides_of(m.cls, ca, cc, ci);
          strides_of(m.reg, ra, rc, ri);
          const float* cls = reinterpret_cast<const float*>(rs.slot_ptr[m.cls.slot] + m.cls.offset) + n * ci;
          const float* reg = reinterpret_cast<const float*>(rs.slot_ptr[m.reg.slot] + m.reg.offset) + n * ri;
          maps[l] = {lv.stride, lv.h, lv.w, cls, ca, cc, reg, ra, rc};
        }
        float* scores = reinterpret_cast<float*>(rs.slot_ptr[step->scores.slot] + step->scores.offset) + n * A * C;
        float* boxes = reinterpret_cast<float*>(rs.slot_ptr[step->boxes.slot] + step->boxes.offset) + n * A * 4;
        kernels::head::decode_head_dense(step->spec, maps.data(), static_cast<int>(maps.size()), scores, boxes, cache);
      }
    }
  };
};

// ---------------------------------------------------------------------------
// The compiled model and its contexts

class OptimizedModel;

class OptimizedContext final : public ExecutionContext {
 public:
  explicit OptimizedContext(const OptimizedModel& m);
  void run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override;

 private:
  const OptimizedModel& model_;
  Arena arena_;
  RunState rs_;
  std::vector<std::unique_ptr<BoundStep>> steps_;
  std::vector<Binder::External> externals_;
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
}

void OptimizedContext::run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) {
  // OpenMP's thread count is per calling thread, so set it on every run (cheap).
  if (model_.threads > 0) omp_set_num_threads(model_.threads);
  // An empty output list asks the engine to allocate (Session::run); run_into
  // passes preallocated tensors and this allocates nothing.
  if (outputs.empty()) outputs.resize(model_.out_infos.size());
  if (inputs.size() != model_.in_infos.size() || outputs.size() != model_.out_infos.size())
    throw Error(ErrorCode::kInvalidArgument, "optimized engine: wrong number of inputs or outputs");
  for (size_t i = 0; i < outputs.size(); ++i)
    if (!outputs[i].defined()) outputs[i] = Tensor(model_.out_infos[i].dtype, model_.out_infos[i].dims);
  for (size_t i = 0; i < model_.slots.size(); ++i) {
    const Slot& s = model_.slots[i];
    if (s.kind == Slot::Kind::kInput) rs_.slot_ptr[i] = static_cast<std::byte*>(const_cast<void*>(inputs[s.external].raw()));
    if (s.kind == Slot::Kind::kOutput) rs_.slot_ptr[i] = static_cast<std::byte*>(outputs[s.external].raw());
  }
  for (auto& e : externals_) e.mem.set_data_handle(rs_.slot_ptr[e.slot] + e.offset);
  for (auto& s : steps_) s->run(rs_);
  rs_.stream.wait();
}

// ---------------------------------------------------------------------------
// The compiler

dt to_dnnl(DType t) {
  switch (t) {
    case DType::kFloat32: return dt::f32;
    case DType::kBFloat16: return dt::bf16;
    case DType::kUInt8: return dt::u8;
    case DType::kInt8: return dt::s8;
    case DType::kInt32: return dt::s32;
    default: return dt::undef;
  }
}

class Compiler {
 public:
  Compiler(const graph::Graph& g, const SessionOptions& o, WeightCache* weights)
      : g_(g), o_(o), weights_(weights) {}

  std::unique_ptr<OptimizedModel> compile();

 private:
  // --- analysis
  const graph::ValueInfo& info(const std::string& v) const {
    const graph::ValueInfo* vi = g_.info(v);
    if (!vi || !vi->fully_known()) throw unsupported("value '" + v + "' has no static shape");
    return *vi;
  }
  Shape shape_of(const std::string& v) const {
    Shape s = info(v).shape;
    // The conv body is batch-agnostic: every 4-D activation scales with the batch.
    if (batch_ != model_batch_ && s.size() == 4 && s[0] == model_batch_) s[0] = batch_;
    return s;
  }
  bool is_output(const std::string& v) const { return outputs_.count(v) != 0; }
  const std::vector<size_t>& consumers(const std::string& v) const {
    static const std::vector<size_t> kNone;
    auto it = consumers_.find(v);
    return it == consumers_.end() ? kNone : it->second;
  }
  // Only consumer of v (and v not a graph output), or nullptr.
  const graph::Node* sole_consumer(const std::string& v) const {
    const auto& c = consumers(v);
    if (c.size() != 1 || is_output(v) || done_[c[0]]) return nullptr;
    return &g_.nodes[c[0]];
  }
  // Rank-0 / one-element float constant, or nullopt.
  std::optional<float> scalar_constant(const std::string& v) const {
    const Tensor* t = g_.constant(v);
    if (!t || t->numel() != 1 || t->dtype() != DType::kFloat32) return std::nullopt;
    return t->data<float>()[0];
  }
  // Activation data type a producer should write for v: bf16 only when
  // every reader is a oneDNN step that takes bf16.
  dt act_dtype(const std::string& v) const {
    if (o_.precision != Precision::kBF16 || is_output(v) || head_inputs_.count(v)) return dt::f32;
    static const std::unordered_set<std::string> kNative = {"Conv", "MaxPool", "Resize", "Concat", "Relu", "Add"};
    for (size_t c : consumers(v))
      if (!kNative.count(g_.nodes[c].op_type)) return dt::f32;
    return dt::bf16;
  }
  memory::desc act_desc(const Shape& s, dt t) const {
    return o_.opt.blocked_layout ? nhwc_desc(s, t) : plain_desc(s, t);
  }

  // --- slots, refs, steps
  int new_slot(size_t bytes, Slot::Kind kind = Slot::Kind::kArena, int external = -1) {
    Slot s;
    s.kind = kind;
    s.external = external;
    s.bytes = bytes;
    slots_.push_back(s);
    return static_cast<int>(slots_.size()) - 1;
  }
  Ref new_ref(const memory::desc& md, const Shape& shape, DType dtype = DType::kFloat32) {
    Ref r;
    r.md = md;
    r.shape = shape;
    r.dtype = dtype;
    r.slot = new_slot(md.get_size());
    return r;
  }
  void define(const std::string& v, const Ref& r) {
    loc_[v].push_back(r);
    journal_.push_back(v);
    slots_[r.slot].owners++;
  }
  const Ref& current(const std::string& v) const {
    auto it = loc_.find(v);
    if (it == loc_.end() || it->second.empty()) throw Error(ErrorCode::kInternal, "value '" + v + "' not computed");
    return it->second.front();
  }
  bool computed(const std::string& v) const {
    auto it = loc_.find(v);
    return it != loc_.end() && !it->second.empty();
  }
  void touch(int slot) {
    Slot& s = slots_[slot];
    int step = static_cast<int>(steps_.size());
    if (s.first_step < 0) s.first_step = step;
    s.last_step = step;
  }
  void add_step(std::unique_ptr<Step> step, const std::vector<Ref>& refs) {
    for (const Ref& r : refs) touch(r.slot);
    plan_.push_back(step->plan);
    steps_.push_back(std::move(step));
  }
  // A primitive step's plan entry: op and nodes, oneDNN's implementation,
  // what it reads (the first source) and writes.
  static PlanStep primitive_plan(const graph::Node& n, const dnnl::primitive_desc_base& pd, const Ref& src,
                                 const Ref& dst) {
    PlanStep p;
    p.kind = PlanStep::Kind::kPrimitive;
    p.op = n.op_type;
    p.nodes = {n.name};
    p.implementation = kernels::dnnl_ops::impl_name(pd);
    p.src = describe(src);
    p.dst = describe(dst);
    return p;
  }
  static std::string describe(const Ref& r) {
    // int64 and other types oneDNN has no descriptor for: dtype and shape.
    if (r.md.data.ndims == 0) return std::string(dtype_name(r.dtype)) + " " + shape_to_string(r.shape);
    return kernels::dnnl_ops::layout_name(r.md) + (r.view ? " (view)" : "");
  }

  // Lowering a node is a transaction: everything it added (slots, steps,
  // value locations, slot lifetimes and owners) is undone when it fails, so a
  // node that falls back leaves nothing behind.
  struct Checkpoint {
    size_t steps, plan, journal, scratch;
    std::vector<Slot> slots;
  };
  Checkpoint checkpoint() const { return {steps_.size(), plan_.size(), journal_.size(), scratch_bytes_, slots_}; }
  void rollback(Checkpoint& c) {
    while (journal_.size() > c.journal) {
      loc_[journal_.back()].pop_back();
      journal_.pop_back();
    }
    steps_.resize(c.steps);
    plan_.resize(c.plan);
    scratch_bytes_ = c.scratch;
    slots_ = std::move(c.slots);
  }
  dnnl::primitive_attr make_attr() const {
    dnnl::primitive_attr a;
    // Scratch comes from the context's arena: thread-safe across contexts and
    // no library-side allocation per execution.
    a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return a;
  }
  void note_scratchpad(const memory::desc& md) { scratch_bytes_ = std::max(scratch_bytes_, md.get_size()); }

  Ref reorder_into(const Ref& src, const Ref& dst, const std::string& value, const std::string& purpose);
  Ref ensure(const std::string& v, const memory::desc& md);
  Ref ensure_plain(const std::string& v);
  Ref dense_ref(const std::string& v);

  void check_shapes() const;

  // --- per-op compilers (return false to fall back)
  void compile_conv(size_t ni);
  bool compile_maxpool(size_t ni);
  bool compile_resize(size_t ni);
  bool compile_concat(size_t ni);
  bool compile_slice(size_t ni);
  bool compile_eltwise(size_t ni);
  bool compile_binary(size_t ni);
  void compile_fallback(size_t ni, const std::string& reason);
  bool lower(size_t ni);
  void try_fuse_head();
  void compile_outputs();

  const graph::Graph& g_;
  const SessionOptions& o_;
  WeightCache* weights_ = nullptr;  // shared with the model's other plans, or none
  std::unordered_map<std::string, std::vector<size_t>> consumers_;
  std::unordered_set<std::string> outputs_;
  std::vector<bool> done_;
  std::unordered_map<std::string, std::vector<Ref>> loc_;
  std::vector<Slot> slots_;
  std::vector<std::unique_ptr<Step>> steps_;
  std::vector<PlanStep> plan_;        // steps_' plan entries, plus views (no step)
  std::vector<std::string> journal_;  // values in the order define() gave them a location
  size_t scratch_bytes_ = 0;
  int64_t batch_ = 1, model_batch_ = 1;
  bool fallback_used_ = false;
  // Fused head: the node indices it replaces and the conv outputs it reads.
  std::unordered_set<size_t> head_nodes_;
  std::unordered_set<std::string> head_inputs_;
  std::optional<kernels::dnnl_ops::HeadPattern> head_;
};

// Every shape this engine hands to oneDNN, at the session's batch: within the
// limits (kOutOfRange), and within what oneDNN indexes (kUnsupported, so that
// Engine::kAuto still runs such a graph on the reference engine).
void Compiler::check_shapes() const {
  auto check = [&](const std::string& v) {
    const graph::ValueInfo* vi = g_.info(v);
    if (!vi || !vi->fully_known()) return;  // info() reports it where it is needed
    const Shape s = shape_of(v);
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

Ref Compiler::reorder_into(const Ref& src, const Ref& dst, const std::string& value, const std::string& purpose) {
  dnnl::reorder::primitive_desc pd(cpu_engine(), src.md, cpu_engine(), dst.md, make_attr());
  auto step = std::make_unique<PrimitiveStep>();
  step->plan.kind = PlanStep::Kind::kReorder;
  step->plan.op = "Reorder";
  step->plan.implementation = kernels::dnnl_ops::impl_name(pd);
  step->plan.src = value + ": " + describe(src);
  step->plan.dst = describe(dst);
  step->plan.purpose = purpose;
  step->prim = dnnl::reorder(pd);
  step->args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  step->scratchpad_md = pd.scratchpad_desc();
  note_scratchpad(step->scratchpad_md);
  add_step(std::move(step), {src, dst});
  return dst;
}

// v in exactly the layout/type md (dense, in its own slot); converts once and
// remembers the copy for later consumers.
Ref Compiler::ensure(const std::string& v, const memory::desc& md) {
  auto& refs = loc_[v];
  for (const Ref& r : refs)
    if (r.md == md && r.offset == 0 && !r.view) return r;
  const Ref src = current(v);
  if (src.md.get_size() == 0) throw unsupported("value '" + v + "' has a type oneDNN cannot convert");
  Ref dst = new_ref(md, src.shape, md.data_type() == dt::bf16 ? DType::kBFloat16 : DType::kFloat32);
  reorder_into(src, dst, v, "convert");
  define(v, dst);
  return dst;
}

// Row-major dense f32 (or the value's own dtype when oneDNN can't describe it).
Ref Compiler::ensure_plain(const std::string& v) {
  const Ref& cur = current(v);
  if (cur.md.get_size() == 0 || (cur.dtype != DType::kFloat32 && cur.dtype != DType::kBFloat16)) {
    if (cur.view) throw unsupported("value '" + v + "' is a strided view of a non-float type");
    return cur;
  }
  for (const Ref& r : loc_[v])
    if (!r.view && r.dtype == DType::kFloat32 && is_row_major_dense(r.md)) return r;
  return ensure(v, plain_desc(cur.shape, dt::f32));
}

// Some dense (non-view) materialisation of v, preferring the current one.
Ref Compiler::dense_ref(const std::string& v) {
  for (const Ref& r : loc_[v])
    if (!r.view && r.md.get_size() > 0) return r;
  const Ref& cur = current(v);
  return ensure(v, act_desc(cur.shape, cur.md.data_type()));
}

// Conv with the chain of post-ops that follow it:
//   Conv → [Mul(scalar)] → [Relu | Sigmoid | x·Sigmoid(x)] → [Add(residual)] → [Relu | SiLU]
// The scalar multiply is folded into weights and bias; activations become
// eltwise post-ops; the residual becomes a sum post-op writing into the
// residual's own buffer when that buffer dies here, else a binary_add post-op.
void Compiler::compile_conv(size_t ni) {
  const graph::Node& n = g_.nodes[ni];
  const std::string& x = n.input(0);
  const Tensor* w = g_.constant(n.input(1));
  const Tensor* b = n.input(2).empty() ? nullptr : g_.constant(n.input(2));
  if (!w || w->dtype() != DType::kFloat32 || w->rank() != 4 || (!n.input(2).empty() && !b))
    throw unsupported(n.describe() + ": only constant float32 2-D convolution weights are supported");
  const std::string auto_pad = n.attr_s("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID") throw unsupported(n.describe() + ": auto_pad " + auto_pad);
  const int64_t group = n.attr_i("group", 1);
  auto strides = n.attr_ints("strides", {1, 1});
  auto pads = n.attr_ints("pads", {0, 0, 0, 0});
  auto dil = n.attr_ints("dilations", {1, 1});
  if (strides.size() != 2 || pads.size() != 4 || dil.size() != 2)
    throw unsupported(n.describe() + ": only 2-D convolutions are supported");
  // The weights and bias are copied below by the counts the weight's shape
  // gives, so they must agree with the input and each other (as the
  // reference kernel requires): never read past a short bias.
  {
    const Shape xs = shape_of(x);
    if (xs.size() != 4) throw unsupported(n.describe() + ": only 2-D convolutions are supported");
    const int64_t O = w->dim(0);
    auto cin = checked::mul(w->dim(1), group);
    if (group < 1 || O % group != 0 || !cin || *cin != xs[1])
      throw Error(ErrorCode::kInvalidArgument, n.describe() + ": weight " + shape_to_string(w->shape()) +
                                                   " does not match input " + shape_to_string(xs) + " with group " +
                                                   std::to_string(group));
    if (b && (b->dtype() != DType::kFloat32 || b->numel() != O))
      throw Error(ErrorCode::kInvalidArgument, n.describe() + ": bias must have " + std::to_string(O) +
                                                   " float32 elements (one per output channel), got " +
                                                   dtype_name(b->dtype()) + shape_to_string(b->shape()));
  }

  // --- walk the post-op chain
  std::string cur = n.outputs[0];
  float scale = 1.f;
  struct Post { enum Kind { kEltwise, kResidual } kind; dnnl::algorithm alg; std::string residual; };
  std::vector<Post> posts;
  std::vector<size_t> fused;
  bool have_residual = false;
  // Where the chain stood before the residual, to cut it there if needed.
  size_t posts_before_residual = 0, fused_before_residual = 0;
  std::string cur_before_residual;
  const bool fuse_act = o_.opt.fuse_conv_activation, fuse_res = o_.opt.fuse_conv_residual;
  while (true) {
    const auto& cons = consumers(cur);
    if (is_output(cur) || cons.empty()) break;
    const graph::Node* c = sole_consumer(cur);
    if (fuse_act && posts.empty() && c && c->op_type == "Mul" && c->inputs.size() == 2) {
      const std::string& other = c->input(0) == cur ? c->input(1) : c->input(0);
      if (auto s = scalar_constant(other)) {
        scale *= *s;
        fused.push_back(consumers(cur)[0]);
        cur = c->outputs[0];
        continue;
      }
    }
    if (fuse_act && c && c->op_type == "Relu") {
      posts.push_back({Post::kEltwise, dnnl::algorithm::eltwise_relu, {}});
      fused.push_back(cons[0]);
      cur = c->outputs[0];
      continue;
    }
    if (fuse_act && cons.size() == 2 && !done_[cons[0]] && !done_[cons[1]]) {
      // SiLU as exported: s = Sigmoid(y); out = Mul(y, s), y feeding only those two.
      const graph::Node* a = &g_.nodes[cons[0]];
      const graph::Node* m = &g_.nodes[cons[1]];
      size_t ai = cons[0], mi = cons[1];
      if (a->op_type != "Sigmoid") std::swap(a, m), std::swap(ai, mi);
      if (a->op_type == "Sigmoid" && m->op_type == "Mul" && m->inputs.size() == 2) {
        const std::string& s = a->outputs[0];
        bool pair = (m->input(0) == cur && m->input(1) == s) || (m->input(1) == cur && m->input(0) == s);
        if (pair && consumers(s).size() == 1 && !is_output(s)) {
          posts.push_back({Post::kEltwise, dnnl::algorithm::eltwise_swish, {}});
          fused.push_back(ai);
          fused.push_back(mi);
          cur = m->outputs[0];
          continue;
        }
      }
    }
    if (fuse_act && c && c->op_type == "Sigmoid") {
      posts.push_back({Post::kEltwise, dnnl::algorithm::eltwise_logistic, {}});
      fused.push_back(cons[0]);
      cur = c->outputs[0];
      continue;
    }
    if (fuse_res && !have_residual && c && c->op_type == "Add" && c->inputs.size() == 2) {
      const std::string& other = c->input(0) == cur ? c->input(1) : c->input(0);
      // The residual must already be computed (topological order can put its
      // producer after this conv) and have exactly our shape (no broadcast).
      if (other != cur && !g_.is_constant(other) && computed(other) && info(other).shape == info(cur).shape) {
        posts_before_residual = posts.size();
        fused_before_residual = fused.size();
        cur_before_residual = cur;
        posts.push_back({Post::kResidual, dnnl::algorithm::binary_add, other});
        have_residual = true;
        fused.push_back(cons[0]);
        cur = c->outputs[0];
        continue;
      }
    }
    break;
  }

  // --- descriptors
  const Shape xs = shape_of(x), ys = shape_of(cur);
  const dt cdt = o_.precision == Precision::kBF16 ? dt::bf16 : dt::f32;
  dt ydt = act_dtype(cur) == dt::bf16 && cdt == dt::bf16 ? dt::bf16 : dt::f32;
  const int64_t O = w->dim(0), IpG = w->dim(1), KH = w->dim(2), KW = w->dim(3);
  memory::dims wdims = group == 1 ? memory::dims{O, IpG, KH, KW} : memory::dims{group, O / group, IpG, KH, KW};
  const auto wtag = group == 1 ? memory::format_tag::oihw : memory::format_tag::goihw;
  memory::dims mstrides(strides.begin(), strides.end());
  memory::dims mdil = {dil[0] - 1, dil[1] - 1};
  memory::dims pl = {pads[0], pads[1]}, pr = {pads[2], pads[3]};
  if (auto_pad == "VALID") pl = pr = {0, 0};
  const memory::desc src_any = o_.opt.blocked_layout ? memory::desc(kernels::dnnl_ops::to_dims(xs), cdt, memory::format_tag::any)
                                                     : plain_desc(xs, cdt);
  auto dst_any = [&] {
    return o_.opt.blocked_layout ? memory::desc(kernels::dnnl_ops::to_dims(ys), ydt, memory::format_tag::any)
                                 : plain_desc(ys, ydt);
  };
  const memory::desc w_any(wdims, cdt, memory::format_tag::any);
  const memory::desc b_md({O}, dt::f32, memory::format_tag::x);

  // Residual handling: in place (sum) when the residual's buffer is ours to overwrite.
  std::optional<Ref> residual;
  bool residual_in_place = false;
  for (const Post& p : posts)
    if (p.kind == Post::kResidual) {
      residual = dense_ref(p.residual);
      const Slot& rs = slots_[residual->slot];
      // In place needs every other reader of the residual to have run already
      // (they precede this conv in the step list) and nobody to read it later.
      bool others_done = true;
      for (size_t c : consumers(p.residual))
        if (c != fused[fused_before_residual] && !done_[c]) others_done = false;
      residual_in_place = others_done && !is_output(p.residual) &&
                          rs.kind == Slot::Kind::kArena && rs.owners == 1 && !residual->view &&
                          residual->md.data_type() == ydt;
    }

  auto build = [&](bool sum_in_place, const memory::desc& dst_md) {
    dnnl::post_ops po;
    for (const Post& p : posts) {
      // alpha: swish's beta in x·sigmoid(alpha·x) must be 1; for relu it is the
      // negative slope and must be 0.
      if (p.kind == Post::kEltwise) po.append_eltwise(1.f, p.alg, p.alg == dnnl::algorithm::eltwise_swish ? 1.f : 0.f, 0.f);
      else if (sum_in_place) po.append_sum(1.f);
      else po.append_binary(dnnl::algorithm::binary_add, residual->md);
    }
    dnnl::primitive_attr attr = make_attr();
    attr.set_post_ops(po);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_any,
                                      w_any, b_md, dst_md, mstrides, mdil, pl, pr);
    return dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
  };
  dnnl::convolution_forward::primitive_desc pd;
  bool sum_mode = false;
  if (residual && residual_in_place) {
    try {
      pd = build(true, residual->md);
      sum_mode = !kernels::dnnl_ops::is_reference_impl(pd);
    } catch (const dnnl::error&) {
    }
  }
  if (!sum_mode) {
    try {
      pd = build(false, dst_any());
      // A full-tensor binary post-op drives oneDNN 2.6 off brgconv onto a
      // gemm convolution in plain layout (reorders around it, ~3x slower):
      // then the Add and what follows run as their own steps instead.
      if (residual && kernels::dnnl_ops::impl_name(pd).rfind("brg", 0) != 0) {
        posts.resize(posts_before_residual);
        fused.resize(fused_before_residual);
        cur = cur_before_residual;
        residual.reset();
        ydt = act_dtype(cur) == dt::bf16 && cdt == dt::bf16 ? dt::bf16 : dt::f32;
        pd = build(false, dst_any());
      }
    } catch (const dnnl::error& e) {
      throw unsupported(n.describe() + ": oneDNN has no convolution for it (" + e.what() + ")");
    }
  }

  // --- weights and bias, reordered (and scaled) once per model: another
  // plan of this model (another batch size) may have packed them already
  dnnl::memory wmem, bmem;
  if (!weights_ || !weights_->find(n.name, scale, pd.weights_desc(), wmem, bmem)) {
    std::vector<float> wv(w->data<float>(), w->data<float>() + w->numel());
    std::vector<float> bv(O, 0.f);
    if (b) std::copy(b->data<float>(), b->data<float>() + b->numel(), bv.begin());  // numel == O, checked above
    if (scale != 1.f) {
      for (float& v : wv) v *= scale;
      for (float& v : bv) v *= scale;
    }
    dnnl::stream s(cpu_engine());
    dnnl::memory wuser(memory::desc(wdims, dt::f32, wtag), cpu_engine(), wv.data());
    wmem = dnnl::memory(pd.weights_desc(), cpu_engine());
    dnnl::reorder(wuser, wmem).execute(s, wuser, wmem);
    bmem = dnnl::memory(b_md, cpu_engine());
    if (!bv.empty()) std::memcpy(bmem.get_data_handle(), bv.data(), bv.size() * sizeof(float));
    s.wait();
    if (weights_) weights_->add(n.name, scale, pd.weights_desc(), wmem, bmem);
  }

  // --- source in the chosen layout, destination buffer
  Ref src = ensure(x, pd.src_desc());
  Ref dst;
  if (sum_mode) {
    dst = *residual;  // the Add's output takes over the residual's (now dead) buffer
    dst.shape = ys;
    slots_[dst.slot].owners--;
  } else {
    dst = new_ref(pd.dst_desc(), ys, ydt == dt::bf16 ? DType::kBFloat16 : DType::kFloat32);
  }

  auto step = std::make_unique<PrimitiveStep>();
  step->plan = primitive_plan(n, pd, src, dst);
  for (size_t f : fused) step->plan.nodes.push_back(g_.nodes[f].name);
  if (scale != 1.f) step->plan.post_ops.push_back("scale");
  for (const Post& p : posts) {
    if (p.kind == Post::kResidual) step->plan.post_ops.push_back(sum_mode ? "sum" : "binary_add");
    else if (p.alg == dnnl::algorithm::eltwise_relu) step->plan.post_ops.push_back("relu");
    else if (p.alg == dnnl::algorithm::eltwise_swish) step->plan.post_ops.push_back("swish");
    else step->plan.post_ops.push_back("logistic");
  }
  step->prim = dnnl::convolution_forward(pd);
  step->args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  step->const_args = {{DNNL_ARG_WEIGHTS, wmem}, {DNNL_ARG_BIAS, bmem}};
  std::vector<Ref> touched = {src, dst};
  if (residual && !sum_mode) {
    int idx = 0;
    for (const Post& p : posts) {
      if (p.kind == Post::kResidual) break;
      ++idx;
    }
    step->args.push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP(idx) | DNNL_ARG_SRC_1, *residual});
    touched.push_back(*residual);
  }
  step->scratchpad_md = pd.scratchpad_desc();
  note_scratchpad(step->scratchpad_md);
  add_step(std::move(step), touched);
  define(cur, dst);
  for (size_t f : fused) done_[f] = true;
}

bool Compiler::compile_maxpool(size_t ni) {
  const graph::Node& n = g_.nodes[ni];
  if (n.outputs.size() != 1 || n.attr_i("ceil_mode", 0) != 0 || n.attr_s("auto_pad", "NOTSET") != "NOTSET" ||
      n.attr_i("storage_order", 0) != 0)
    return false;
  auto k = n.attr_ints("kernel_shape");
  auto st = n.attr_ints("strides", {1, 1});
  auto pads = n.attr_ints("pads", {0, 0, 0, 0});
  auto dil = n.attr_ints("dilations", {1, 1});
  if (k.size() != 2 || st.size() != 2 || pads.size() != 4 || dil != std::vector<int64_t>{1, 1}) return false;
  const Ref src = dense_ref(n.input(0));
  const Shape ys = shape_of(n.outputs[0]);
  memory::desc dst_md = o_.opt.blocked_layout ? memory::desc(kernels::dnnl_ops::to_dims(ys), src.md.data_type(), memory::format_tag::any)
                                              : plain_desc(ys, src.md.data_type());
  dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, src.md, dst_md,
                                {st[0], st[1]}, {k[0], k[1]}, {pads[0], pads[1]}, {pads[2], pads[3]});
  dnnl::pooling_forward::primitive_desc pd(d, make_attr(), cpu_engine());
  Ref dst = new_ref(pd.dst_desc(), ys, src.dtype);
  auto step = std::make_unique<PrimitiveStep>();
  step->plan = primitive_plan(n, pd, src, dst);
  step->prim = dnnl::pooling_forward(pd);
  step->args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  step->scratchpad_md = pd.scratchpad_desc();
  note_scratchpad(step->scratchpad_md);
  add_step(std::move(step), {src, dst});
  define(n.outputs[0], dst);
  return true;
}

// ONNX nearest/asymmetric/floor with an integer factor f: out[o] = in[floor(o/f)].
// oneDNN's nearest picks round((o + 0.5)/f − 0.5), which for integer f lies in
// (k − 0.5, k + 0.5) for o = k·f + r, i.e. the same k. Other modes fall back.
bool Compiler::compile_resize(size_t ni) {
  const graph::Node& n = g_.nodes[ni];
  if (n.attr_s("mode", "nearest") != "nearest") return false;
  const std::string ctm = n.attr_s("coordinate_transformation_mode", "half_pixel");
  const std::string nm = n.attr_s("nearest_mode", "round_prefer_floor");
  if (ctm != "asymmetric" || nm != "floor") return false;
  const Shape xs = info(n.input(0)).shape, ys = info(n.outputs[0]).shape;
  if (xs.size() != 4 || xs[0] != ys[0] || xs[1] != ys[1]) return false;
  if (xs[2] <= 0 || xs[3] <= 0 || ys[2] % xs[2] != 0 || ys[3] % xs[3] != 0) return false;
  // The factor must also be what the scales say (sizes would be exact already).
  if (const Tensor* sc = n.input(2).empty() ? nullptr : g_.constant(n.input(2)); sc && sc->numel() == 4) {
    auto f = kernels::ref::to_float_vector(*sc);
    if (f[2] != static_cast<float>(ys[2] / xs[2]) || f[3] != static_cast<float>(ys[3] / xs[3])) return false;
  }
  const Ref src = dense_ref(n.input(0));
  const Shape out = shape_of(n.outputs[0]);
  memory::desc dst_md = o_.opt.blocked_layout ? memory::desc(kernels::dnnl_ops::to_dims(out), src.md.data_type(), memory::format_tag::any)
                                              : plain_desc(out, src.md.data_type());
  dnnl::resampling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::resampling_nearest, src.md, dst_md);
  dnnl::resampling_forward::primitive_desc pd(d, make_attr(), cpu_engine());
  Ref dst = new_ref(pd.dst_desc(), out, src.dtype);
  auto step = std::make_unique<PrimitiveStep>();
  step->plan = primitive_plan(n, pd, src, dst);
  step->prim = dnnl::resampling_forward(pd);
  step->args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  step->scratchpad_md = pd.scratchpad_desc();
  note_scratchpad(step->scratchpad_md);
  add_step(std::move(step), {src, dst});
  define(n.outputs[0], dst);
  return true;
}

// Channel concat of 4-D activations. Dense inputs already in the output's
// layout go through oneDNN's concat (a memcpy per slice); otherwise (views
// such as the Focus slices, other layouts or dtypes) each input is reordered
// straight into its channel slice of the output.
bool Compiler::compile_concat(size_t ni) {
  const graph::Node& n = g_.nodes[ni];
  const Shape ys = shape_of(n.outputs[0]);
  int64_t axis = n.attr_i("axis", 1);
  if (axis < 0) axis += static_cast<int64_t>(ys.size());
  if (ys.size() != 4 || axis != 1) return false;
  for (const auto& in : n.inputs)
    if (in.empty() || g_.is_constant(in)) return false;
  const dt ydt = act_dtype(n.outputs[0]);
  const memory::desc dst_md = act_desc(ys, ydt);
  Ref dst = new_ref(dst_md, ys, ydt == dt::bf16 ? DType::kBFloat16 : DType::kFloat32);

  bool all_match = true;
  std::vector<Ref> srcs;
  for (const auto& in : n.inputs) {
    // Zero-copy: a strided view (Focus slice) is read straight into its slice
    // of the output. oneDNN 2.6's convolutions, pooling and resampling only
    // have reference kernels for a strided (sub-memory) destination, so
    // producers that are primitives still write densely and get copied.
    // With the switch off every view is first materialised on its own.
    const Ref r = o_.opt.zero_copy_concat ? current(in) : dense_ref(in);
    if (r.md.get_size() == 0) return false;
    srcs.push_back(r);
    if (r.view || r.md != act_desc(r.shape, ydt)) all_match = false;
  }
  if (all_match) {
    std::vector<memory::desc> mds;
    for (const Ref& r : srcs) mds.push_back(r.md);
    dnnl::concat::primitive_desc pd(dst_md, 1, mds, cpu_engine(), make_attr());
    auto step = std::make_unique<PrimitiveStep>();
    step->plan = primitive_plan(n, pd, srcs[0], dst);
    step->prim = dnnl::concat(pd);
    std::vector<Ref> touched = {dst};
    for (size_t i = 0; i < srcs.size(); ++i) {
      step->args.push_back({DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), srcs[i]});
      touched.push_back(srcs[i]);
    }
    step->args.push_back({DNNL_ARG_DST, dst});
    step->scratchpad_md = pd.scratchpad_desc();
    note_scratchpad(step->scratchpad_md);
    add_step(std::move(step), touched);
  } else {
    int64_t off = 0;
    for (const Ref& r : srcs) {
      Ref part = dst;
      part.md = dst_md.submemory_desc(kernels::dnnl_ops::to_dims(r.shape), {0, off, 0, 0});
      reorder_into(r, part, n.inputs[&r - srcs.data()], "concat");
      plan_.back().nodes = {n.name};  // these copies together compute the Concat node
      off += r.shape[1];
    }
  }
  define(n.outputs[0], dst);
  return true;
}

// Slice of a plain-strided value with constant, positive steps is a view:
// same bytes, scaled strides, shifted start. Costs nothing at run time.
bool Compiler::compile_slice(size_t ni) {
  const graph::Node& n = g_.nodes[ni];
  const std::string& x = n.input(0);
  if (!computed(x)) return false;
  const Ref src = current(x);
  if (src.md.get_size() == 0 || !is_plain_strided(src.md) || src.md.data.offset0 != 0) return false;
  std::vector<int64_t> starts, ends, axes, steps;
  if (g_.opset() < 10) {
    starts = n.attr_ints("starts");
    ends = n.attr_ints("ends");
    axes = n.attr_ints("axes");
  } else {
    auto cval = [&](size_t i) -> std::optional<std::vector<int64_t>> {
      if (n.input(i).empty()) return std::vector<int64_t>{};
      const Tensor* t = g_.constant(n.input(i));
      if (!t) return std::nullopt;
      return kernels::ref::to_int64_vector(*t);
    };
    auto s = cval(1), e = cval(2), a = cval(3), st = cval(4);
    if (!s || !e || !a || !st) return false;
    starts = *s, ends = *e, axes = *a, steps = *st;
  }
  const Shape in_shape = src.shape;
  const int64_t rank = static_cast<int64_t>(in_shape.size());
  if (axes.empty())
    for (int64_t i = 0; i < static_cast<int64_t>(starts.size()); ++i) axes.push_back(i);
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (starts.size() != axes.size() || ends.size() != axes.size() || steps.size() != axes.size()) return false;
  const auto& bst = src.md.data.format_desc.blocking.strides;
  memory::dims strides(bst, bst + rank);
  size_t offset = src.offset;
  const size_t esize = memory::data_type_size(src.md.data_type());
  const Shape ys = shape_of(n.outputs[0]);
  if (static_cast<int64_t>(ys.size()) != rank) return false;
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t ax = axes[i] < 0 ? axes[i] + rank : axes[i];
    if (ax < 0 || ax >= rank || steps[i] <= 0) return false;
    int64_t start = starts[i] < 0 ? starts[i] + in_shape[ax] : starts[i];
    start = std::clamp<int64_t>(start, 0, in_shape[ax]);
    offset += static_cast<size_t>(start * strides[ax]) * esize;
    // Two or more elements taken means step < dim: the product stays small.
    // One element never uses the stride (and a huge step would overflow it).
    if (ys[ax] > 1) strides[ax] *= steps[i];
  }
  Ref view = src;
  view.md = memory::desc(kernels::dnnl_ops::to_dims(ys), src.md.data_type(), strides);
  view.offset = offset;
  view.shape = ys;
  view.view = true;
  define(n.outputs[0], view);
  PlanStep p;
  p.kind = PlanStep::Kind::kView;
  p.op = n.op_type;
  p.nodes = {n.name};
  p.src = describe(src);
  p.dst = describe(view);
  plan_.push_back(std::move(p));
  return true;
}

bool Compiler::compile_eltwise(size_t ni) {
  const graph::Node& n = g_.nodes[ni];
  dnnl::algorithm alg;
  float alpha = 0.f, beta = 0.f;
  std::string x = n.input(0);
  std::string out = n.outputs[0];
  std::vector<size_t> fused;
  if (n.op_type == "Relu") {
    alg = dnnl::algorithm::eltwise_relu;
  } else if (n.op_type == "Sigmoid") {
    alg = dnnl::algorithm::eltwise_logistic;
    // Standalone SiLU: Mul(x, Sigmoid(x)) with the sigmoid used only there.
    if (const graph::Node* m = sole_consumer(out); o_.opt.fuse_conv_activation && m && m->op_type == "Mul" &&
                                                   m->inputs.size() == 2 &&
                                                   (m->input(0) == x || m->input(1) == x)) {
      alg = dnnl::algorithm::eltwise_swish;
      alpha = 1.f;
      fused.push_back(consumers(out)[0]);
      out = m->outputs[0];
    }
  } else if (n.op_type == "Exp") {
    alg = dnnl::algorithm::eltwise_exp;
  } else {
    return false;
  }
  if (!computed(x)) return false;
  const Ref src = dense_ref(x);
  Ref dst = new_ref(src.md, shape_of(out), src.dtype);
  dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, alg, src.md, alpha, beta);
  dnnl::eltwise_forward::primitive_desc pd(d, make_attr(), cpu_engine());
  auto step = std::make_unique<PrimitiveStep>();
  step->plan = primitive_plan(n, pd, src, dst);
  for (size_t f : fused) step->plan.nodes.push_back(g_.nodes[f].name);
  if (alg == dnnl::algorithm::eltwise_swish) step->plan.post_ops.push_back("swish (fused Mul)");
  step->prim = dnnl::eltwise_forward(pd);
  step->args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  step->scratchpad_md = pd.scratchpad_desc();
  note_scratchpad(step->scratchpad_md);
  add_step(std::move(step), {src, dst});
  define(out, dst);
  for (size_t f : fused) done_[f] = true;
  return true;
}

// Add/Sub/Mul/Div of two same-shape activations (binary primitive) or of an
// activation and a scalar constant (eltwise_linear).
bool Compiler::compile_binary(size_t ni) {
  const graph::Node& n = g_.nodes[ni];
  if (n.inputs.size() != 2) return false;
  const std::string &a = n.input(0), &b = n.input(1);
  const std::string& out = n.outputs[0];
  const Shape ys = shape_of(out);
  if (ys.size() != 4) return false;
  auto sa = scalar_constant(a), sb = scalar_constant(b);
  if (!sa && !sb && !g_.is_constant(a) && !g_.is_constant(b)) {
    if (info(a).shape != info(b).shape || !computed(a) || !computed(b)) return false;
    dnnl::algorithm alg;
    if (n.op_type == "Add") alg = dnnl::algorithm::binary_add;
    else if (n.op_type == "Sub") alg = dnnl::algorithm::binary_sub;
    else if (n.op_type == "Mul") alg = dnnl::algorithm::binary_mul;
    else if (n.op_type == "Div") alg = dnnl::algorithm::binary_div;
    else return false;
    const Ref ra = dense_ref(a);
    const Ref rb = ensure(b, ra.md);
    Ref dst = new_ref(ra.md, ys, ra.dtype);
    dnnl::binary::desc d(alg, ra.md, rb.md, dst.md);
    dnnl::binary::primitive_desc pd(d, make_attr(), cpu_engine());
    auto step = std::make_unique<PrimitiveStep>();
    step->plan = primitive_plan(n, pd, ra, dst);
    step->prim = dnnl::binary(pd);
    step->args = {{DNNL_ARG_SRC_0, ra}, {DNNL_ARG_SRC_1, rb}, {DNNL_ARG_DST, dst}};
    step->scratchpad_md = pd.scratchpad_desc();
    note_scratchpad(step->scratchpad_md);
    add_step(std::move(step), {ra, rb, dst});
    define(out, dst);
    return true;
  }
  // x op c  (or c op x for the commutative ops) as y = alpha·x + beta.
  const std::string* x = nullptr;
  float alpha = 1.f, beta = 0.f;
  if (sb && !g_.is_constant(a)) {
    x = &a;
    if (n.op_type == "Add") beta = *sb;
    else if (n.op_type == "Sub") beta = -*sb;
    else if (n.op_type == "Mul") alpha = *sb;
    else return false;  // Div by c would round differently from x·(1/c)
  } else if (sa && !g_.is_constant(b)) {
    x = &b;
    if (n.op_type == "Add") beta = *sa;
    else if (n.op_type == "Mul") alpha = *sa;
    else return false;
  } else {
    return false;
  }
  if (!computed(*x) || info(*x).shape != info(out).shape) return false;
  const Ref src = dense_ref(*x);
  Ref dst = new_ref(src.md, ys, src.dtype);
  dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_linear, src.md, alpha, beta);
  dnnl::eltwise_forward::primitive_desc pd(d, make_attr(), cpu_engine());
  auto step = std::make_unique<PrimitiveStep>();
  step->plan = primitive_plan(n, pd, src, dst);
  step->prim = dnnl::eltwise_forward(pd);
  step->args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  step->scratchpad_md = pd.scratchpad_desc();
  note_scratchpad(step->scratchpad_md);
  add_step(std::move(step), {src, dst});
  define(out, dst);
  return true;
}

// The lowering of one node, chosen by its op; false (or kUnsupported) when it
// has none for this node, which then falls back.
bool Compiler::lower(size_t ni) {
  const std::string& op = g_.nodes[ni].op_type;
  if (op == "Conv") {
    compile_conv(ni);
    return true;
  }
  if (op == "MaxPool") return compile_maxpool(ni);
  if (op == "Resize") return compile_resize(ni);
  if (op == "Concat") return compile_concat(ni);
  if (op == "Slice") return compile_slice(ni);
  if (op == "Relu" || op == "Sigmoid" || op == "Exp") return compile_eltwise(ni);
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") return compile_binary(ni);
  return false;
}

void Compiler::compile_fallback(size_t ni, const std::string& reason) {
  const graph::Node& n = g_.nodes[ni];
  if (batch_ != model_batch_)
    throw unsupported(n.describe() + ": running batch " + std::to_string(batch_) + " on a batch-" +
                      std::to_string(model_batch_) + " export needs every node on the optimised path (fused head)");
  auto step = std::make_unique<FallbackStep>();
  step->plan.kind = PlanStep::Kind::kFallback;
  step->plan.op = n.op_type;
  step->plan.nodes = {n.name};
  step->plan.implementation = "reference";
  step->plan.reason = reason;
  step->node = n;
  step->opset = g_.opset();
  step->kernel = &kernels::ref::kernel_for(n, g_.opset());
  std::vector<Ref> touched;
  for (const auto& in : n.inputs) {
    Tensor c;
    Ref r;
    if (in.empty()) {
    } else if (const Tensor* t = g_.constant(in)) {
      c = *t;
    } else {
      r = ensure_plain(in);
      touched.push_back(r);
    }
    step->constant_inputs.push_back(c);
    step->inputs.push_back(r);
  }
  for (const auto& out : n.outputs) {
    Ref r;
    if (!out.empty() && g_.info(out)) {
      const graph::ValueInfo& vi = info(out);
      const dt d = to_dnnl(vi.dtype);
      if (d == dt::f32) {
        r = new_ref(plain_desc(vi.shape, dt::f32), vi.shape);
      } else {
        r.shape = vi.shape;
        r.dtype = vi.dtype;
        r.slot = new_slot(static_cast<size_t>(shape_numel(vi.shape)) * dtype_size(vi.dtype));
      }
      define(out, r);
      touched.push_back(r);
    }
    step->outputs.push_back(r);
  }
  for (const Ref& r : step->inputs)
    if (r.slot >= 0) {
      step->plan.src = describe(r);
      break;
    }
  for (const Ref& r : step->outputs)
    if (r.slot >= 0) {
      step->plan.dst = describe(r);
      break;
    }
  fallback_used_ = true;
  add_step(std::move(step), touched);
}

void Compiler::try_fuse_head() {
  if (!o_.opt.fuse_head) return;
  head_ = kernels::dnnl_ops::match_damoyolo_head(g_);
  if (!head_) return;
  head_nodes_.insert(head_->nodes.begin(), head_->nodes.end());
  for (const auto& m : head_->maps) {
    head_inputs_.insert(m.cls);
    head_inputs_.insert(m.reg);
  }
}

void Compiler::compile_outputs() {
  for (size_t i = 0; i < g_.outputs.size(); ++i) {
    const std::string& v = g_.outputs[i];
    const graph::ValueInfo& vi = info(v);
    if (vi.dtype != DType::kFloat32) throw unsupported("graph output '" + v + "' is not float32");
    bool in_place = false;
    for (const Ref& r : loc_[v])
      if (slots_[r.slot].kind == Slot::Kind::kOutput && slots_[r.slot].external == static_cast<int>(i)) in_place = true;
    if (in_place) continue;
    const Shape s = shape_of(v);
    Ref dst;
    dst.md = plain_desc(s, dt::f32);
    dst.shape = s;
    dst.slot = new_slot(dst.md.get_size(), Slot::Kind::kOutput, static_cast<int>(i));
    const Ref src = current(v);
    if (src.md.get_size() == 0) throw unsupported("graph output '" + v + "' cannot be copied");
    reorder_into(src, dst, v, "output");
  }
}

std::unique_ptr<OptimizedModel> Compiler::compile() {
  if (g_.inputs.empty()) throw unsupported("graph has no inputs");
  consumers_ = g_.consumers();
  outputs_.insert(g_.outputs.begin(), g_.outputs.end());
  done_.assign(g_.nodes.size(), false);

  model_batch_ = info(g_.inputs[0]).shape.empty() ? 1 : info(g_.inputs[0]).shape[0];
  batch_ = o_.batch > 0 ? o_.batch : model_batch_;
  check_shapes();

  auto model = std::make_unique<OptimizedModel>();
  model->huge_pages = o_.opt.huge_pages;
  model->threads = o_.threads;
  for (size_t i = 0; i < g_.inputs.size(); ++i) {
    const std::string& v = g_.inputs[i];
    const graph::ValueInfo& vi = info(v);
    if (vi.dtype != DType::kFloat32) throw unsupported("graph input '" + v + "' is not float32");
    Ref r;
    r.shape = shape_of(v);
    r.md = plain_desc(r.shape, dt::f32);
    r.slot = new_slot(r.md.get_size(), Slot::Kind::kInput, static_cast<int>(i));
    define(v, r);
    model->in_infos.push_back({v, DType::kFloat32, r.shape});
  }

  try_fuse_head();
  if (batch_ != model_batch_ && !head_ && !g_.outputs.empty()) {
    // Without the fused head the decode's constants pin the export's batch;
    // compile_fallback reports the node that needs it.
  }

  for (size_t ni = 0; ni < g_.nodes.size(); ++ni) {
    if (done_[ni] || head_nodes_.count(ni)) continue;
    const graph::Node& n = g_.nodes[ni];
    Checkpoint cp = checkpoint();
    std::string reason;
    bool ok = false;
    try {
      ok = lower(ni);
      if (!ok) reason = "no oneDNN lowering for this " + n.op_type + " (its attributes, inputs or layout)";
    } catch (const dnnl::error& e) {
      // oneDNN refused this configuration; the reference kernel still can.
      reason = std::string("oneDNN refused it: ") + e.what();
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kUnsupported) throw;  // an invalid model stays an error
      reason = e.what();
    }
    if (!ok) {
      rollback(cp);
      compile_fallback(ni, reason);
    }
    done_[ni] = true;
  }

  if (head_) {
    auto step = std::make_unique<FusedHeadStep>();
    step->plan.kind = PlanStep::Kind::kFusedHead;
    step->plan.op = "DamoYoloHead";
    step->plan.implementation = "decode_head_dense";
    for (size_t hn : head_->nodes) step->plan.nodes.push_back(g_.nodes[hn].name);
    const model::HeadLayout& layout = head_->layout;
    step->spec.num_classes = layout.num_classes;
    step->spec.reg_max = layout.reg_max;
    step->spec.cls_is_logit = head_->cls_is_logit;
    step->batch = batch_;
    step->levels = layout.levels;
    std::vector<Ref> touched;
    for (size_t l = 0; l < layout.levels.size(); ++l) {
      const auto& names = head_->maps[l];
      FusedHeadStep::LevelMaps m;
      for (auto [name, ref] : {std::pair{&names.cls, &m.cls}, std::pair{&names.reg, &m.reg}}) {
        Ref r = dense_ref(*name);
        if (r.md.data_type() != dt::f32 || !is_plain_strided(r.md)) r = ensure(*name, nhwc_desc(r.shape, dt::f32));
        // Anchor index i*w+j must map to a single stride: rows contiguous in w.
        const auto& st = r.md.data.format_desc.blocking.strides;
        if (st[2] != st[3] * layout.levels[l].w) r = ensure(*name, nhwc_desc(r.shape, dt::f32));
        *ref = r;
        touched.push_back(r);
      }
      step->level_maps.push_back(m);
    }
    auto out_ref = [&](size_t idx) {
      Ref r;
      r.shape = shape_of(g_.outputs[idx]);
      r.shape[0] = batch_;
      r.md = plain_desc(r.shape, dt::f32);
      r.slot = new_slot(r.md.get_size(), Slot::Kind::kOutput, static_cast<int>(idx));
      define(g_.outputs[idx], r);
      return r;
    };
    step->scores = out_ref(layout.scores_output);
    step->boxes = out_ref(layout.boxes_output);
    touched.push_back(step->scores);
    touched.push_back(step->boxes);
    step->plan.src = std::to_string(step->levels.size()) + " levels: " + describe(step->level_maps[0].cls) + ", ...";
    step->plan.dst = describe(step->scores) + ", " + describe(step->boxes);
    add_step(std::move(step), touched);
  }
  compile_outputs();

  // --- memory plan over arena slots
  std::vector<BufferLifetime> lifetimes;
  std::vector<int> arena_slots;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (s.kind != Slot::Kind::kArena) continue;
    if (s.first_step < 0) s.first_step = s.last_step = 0;  // never touched; keep it valid
    lifetimes.push_back({s.bytes, s.first_step, s.last_step});
    arena_slots.push_back(static_cast<int>(i));
  }
  MemoryPlan plan = o_.opt.memory_planning ? plan_memory(lifetimes) : plan_memory_without_reuse(lifetimes);
  model->slot_offset.assign(slots_.size(), 0);
  for (size_t k = 0; k < arena_slots.size(); ++k) model->slot_offset[arena_slots[k]] = plan.offsets[k];
  model->planned_bytes = plan.total_bytes;
  model->scratchpad_bytes = (scratch_bytes_ + 63) / 64 * 64;
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
  cplan.batch = batch_;
  cplan.steps = std::move(plan_);
  cplan.arena_bytes = model->planned_bytes;
  cplan.scratchpad_bytes = model->scratchpad_bytes;
  for (const auto& st : steps_)
    if (const auto* ps = dynamic_cast<const PrimitiveStep*>(st.get()))
      for (const auto& [arg, mem] : ps->const_args) cplan.weight_bytes += mem.get_desc().get_size();
  model->slots = std::move(slots_);
  model->steps = std::move(steps_);
  for (const auto& v : g_.outputs) model->out_infos.push_back({v, DType::kFloat32, shape_of(v)});
  if (head_) {
    model->out_infos[head_->layout.scores_output].dims[0] = batch_;
    model->out_infos[head_->layout.boxes_output].dims[0] = batch_;
  }
  return model;
}

}  // namespace

std::unique_ptr<CompiledModel> compile_optimized(const graph::Graph& g, const SessionOptions& opts,
                                                 WeightCache* weights) {
  Compiler c(g, opts, weights);
  return c.compile();
}

}  // namespace damoyolo::runtime
