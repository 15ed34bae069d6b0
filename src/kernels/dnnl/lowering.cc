// The LoweringContext (lowering.h) and the bound form of a primitive step.
#include "kernels/dnnl/lowering.h"

#include <algorithm>

namespace damoyolo::kernels::dnnl_ops {

using dnnl::memory;
using dt = memory::data_type;

namespace {
Error unsupported(const std::string& what) { return Error(ErrorCode::kUnsupported, what); }
DType dtype_of(dt t) {
  switch (t) {
    case dt::bf16: return DType::kBFloat16;
    case dt::u8: return DType::kUInt8;
    case dt::s8: return DType::kInt8;
    default: return DType::kFloat32;
  }
}
}  // namespace

// ---------------------------------------------------------------------------
// Binding

dnnl::memory Binder::memory_for(const Ref& r) {
  const Slot& s = slots_[r.slot];
  if (s.kind == Slot::Kind::kArena) return dnnl::memory(r.md, cpu_engine(), rs_.slot_ptr[r.slot] + r.offset);
  dnnl::memory m(r.md, cpu_engine(), DNNL_MEMORY_NONE);
  external_.push_back({m, r.slot, r.offset});
  return m;
}

namespace {
struct BoundPrimitive final : BoundStep {
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
    dnnl_status_t st =
        dnnl_primitive_execute(prim.get(), rs.stream.get(), static_cast<int>(c_args.size()), c_args.data());
    if (st != dnnl_success) throw Error(ErrorCode::kInternal, "oneDNN primitive execution failed");
  }
};
}  // namespace

std::unique_ptr<BoundStep> PrimitiveStep::bind(Binder& b) const {
  auto bs = std::make_unique<BoundPrimitive>();
  bs->prim = prim;
  for (const auto& [arg, ref] : args) bs->add(arg, b.memory_for(ref));
  for (const auto& [arg, mem] : const_args) bs->add(arg, mem);
  if (scratchpad_md.get_size() > 0)
    bs->add(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratchpad_md, cpu_engine(), b.state().scratchpad));
  return bs;
}

// ---------------------------------------------------------------------------
// LoweringContext

LoweringContext::LoweringContext(const graph::Graph& g, const LoweringOptions& o, WeightCache* weights)
    : g_(g), o_(o), weights_(weights) {
  consumers_ = g_.consumers();
  outputs_.insert(g_.outputs.begin(), g_.outputs.end());
  done_.assign(g_.nodes.size(), false);
}

const graph::ValueInfo& LoweringContext::info(const std::string& v) const {
  const graph::ValueInfo* vi = g_.info(v);
  if (!vi || !vi->fully_known()) throw unsupported("value '" + v + "' has no static shape");
  return *vi;
}

Shape LoweringContext::shape_of(const std::string& v) const {
  if (auto it = shape_override_.find(v); it != shape_override_.end()) return it->second;
  Shape s = info(v).shape;
  // The conv body is batch-agnostic: every 4-D activation scales with the batch.
  if (o_.batch != o_.model_batch && s.size() == 4 && s[0] == o_.model_batch) s[0] = o_.batch;
  return s;
}

const std::vector<size_t>& LoweringContext::consumers(const std::string& v) const {
  static const std::vector<size_t> kNone;
  auto it = consumers_.find(v);
  return it == consumers_.end() ? kNone : it->second;
}

std::optional<float> LoweringContext::scalar_constant(const std::string& v) const {
  const Tensor* t = g_.constant(v);
  if (!t || t->numel() != 1 || t->dtype() != DType::kFloat32) return std::nullopt;
  return t->data<float>()[0];
}

dt LoweringContext::act_dtype(const std::string& v) const {
  if (!o_.bf16 || is_output(v)) return dt::f32;
  for (size_t c : consumers(v)) {
    const Lowering* l = find_lowering(g_.nodes[c]);
    if (!l || !l->reads_bf16) return dt::f32;
  }
  return dt::bf16;
}

memory::desc LoweringContext::act_desc(const Shape& s, dt t) const {
  return o_.blocked_layout ? nhwc_desc(s, t) : plain_desc(s, t);
}

memory::desc LoweringContext::any_desc(const Shape& s, dt t) const {
  return o_.blocked_layout ? memory::desc(to_dims(s), t, memory::format_tag::any) : plain_desc(s, t);
}

int LoweringContext::new_slot(size_t bytes, Slot::Kind kind, int external) {
  Slot s;
  s.kind = kind;
  s.external = external;
  s.bytes = bytes;
  slots_.push_back(s);
  return static_cast<int>(slots_.size()) - 1;
}

Ref LoweringContext::new_ref(const memory::desc& md, const Shape& shape, DType dtype) {
  Ref r;
  r.md = md;
  r.shape = shape;
  r.dtype = dtype;
  r.slot = new_slot(md.get_size());
  return r;
}

void LoweringContext::define(const std::string& v, const Ref& r) {
  loc_[v].push_back(r);
  journal_.push_back(v);
  slots_[r.slot].owners++;
}

const Ref& LoweringContext::current(const std::string& v) const {
  auto it = loc_.find(v);
  if (it == loc_.end() || it->second.empty()) throw Error(ErrorCode::kInternal, "value '" + v + "' not computed");
  return it->second.front();
}

bool LoweringContext::computed(const std::string& v) const {
  auto it = loc_.find(v);
  return it != loc_.end() && !it->second.empty();
}

void LoweringContext::add_step(std::unique_ptr<Step> step, const std::vector<Ref>& refs) {
  const int index = static_cast<int>(steps_.size());
  for (const Ref& r : refs) {
    Slot& s = slots_[r.slot];
    if (s.first_step < 0) s.first_step = index;
    s.last_step = index;
  }
  plan_.push_back(step->plan);
  steps_.push_back(std::move(step));
}

dnnl::primitive_attr LoweringContext::make_attr() const {
  dnnl::primitive_attr a;
  // Scratch comes from the context's arena: thread-safe across contexts and
  // no library-side allocation per execution.
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

void LoweringContext::note_scratchpad(const memory::desc& md) {
  scratch_bytes_ = std::max(scratch_bytes_, md.get_size());
}

void LoweringContext::add_primitive(const graph::Node& n, const dnnl::primitive_desc_base& pd,
                                    dnnl::primitive prim, std::vector<std::pair<int, Ref>> args, const Ref& src,
                                    const Ref& dst, std::vector<std::pair<int, dnnl::memory>> const_args,
                                    std::vector<std::string> post_ops) {
  auto step = std::make_unique<PrimitiveStep>();
  step->plan = primitive_plan(n, pd, src, dst);
  step->plan.post_ops = std::move(post_ops);
  step->prim = std::move(prim);
  std::vector<Ref> touched;
  for (const auto& [arg, r] : args) touched.push_back(r);
  step->args = std::move(args);
  step->const_args = std::move(const_args);
  step->scratchpad_md = pd.scratchpad_desc();
  note_scratchpad(step->scratchpad_md);
  add_step(std::move(step), touched);
}

PlanStep LoweringContext::primitive_plan(const graph::Node& n, const dnnl::primitive_desc_base& pd,
                                         const Ref& src, const Ref& dst) {
  PlanStep p;
  p.kind = PlanStep::Kind::kPrimitive;
  // A fused node (graph/passes/fusion.h) names the ONNX op and nodes it replaced.
  p.op = n.attr_s("onnx_op", n.op_type);
  p.nodes = {n.name};
  if (auto it = n.attrs.find("fused_nodes"); it != n.attrs.end())
    p.nodes.insert(p.nodes.end(), it->second.strings.begin(), it->second.strings.end());
  p.implementation = impl_name(pd);
  p.src = describe(src);
  p.dst = describe(dst);
  return p;
}

std::string LoweringContext::describe(const Ref& r) {
  // int64 and other types oneDNN has no descriptor for: dtype and shape.
  if (r.md.data.ndims == 0) return std::string(dtype_name(r.dtype)) + " " + shape_to_string(r.shape);
  return layout_name(r.md) + (r.view ? " (view)" : "");
}

LoweringContext::Checkpoint LoweringContext::checkpoint() const {
  return {steps_.size(), plan_.size(), journal_.size(), scratch_bytes_, slots_};
}

void LoweringContext::rollback(Checkpoint& c) {
  while (journal_.size() > c.journal) {
    loc_[journal_.back()].pop_back();
    journal_.pop_back();
  }
  steps_.resize(c.steps);
  plan_.resize(c.plan);
  scratch_bytes_ = c.scratch;
  slots_ = std::move(c.slots);
}

Ref LoweringContext::reorder_into(const Ref& src, const Ref& dst, const std::string& value,
                                  const std::string& purpose, const dnnl::primitive_attr* attr,
                                  const graph::Node* node) {
  dnnl::reorder::primitive_desc pd(cpu_engine(), src.md, cpu_engine(), dst.md, attr ? *attr : make_attr());
  auto step = std::make_unique<PrimitiveStep>();
  step->plan.kind = PlanStep::Kind::kReorder;
  step->plan.op = node ? node->op_type : "Reorder";
  if (node) step->plan.nodes = {node->name};
  step->plan.implementation = impl_name(pd);
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

Ref LoweringContext::ensure(const std::string& v, const memory::desc& md) {
  for (const Ref& r : loc_[v])
    if (r.md == md && r.offset == 0 && !r.view) return r;
  const Ref src = current(v);
  if (src.md.get_size() == 0) throw unsupported("value '" + v + "' has a type oneDNN cannot convert");
  // A layout change only: a quantised value stays in its integer type (a
  // reorder between integer and float types without scales would not be
  // the value's dequantisation).
  const bool src_int = src.md.data_type() == dt::u8 || src.md.data_type() == dt::s8;
  if (src_int != (md.data_type() == dt::u8 || md.data_type() == dt::s8) || (src_int && src.md.data_type() != md.data_type()))
    throw unsupported("value '" + v + "' is " + layout_name(src.md) + "; converting it to " + layout_name(md) +
                      " would change its quantised type");
  Ref dst = new_ref(md, src.shape, dtype_of(md.data_type()));
  reorder_into(src, dst, v, "convert");
  define(v, dst);
  return dst;
}

Ref LoweringContext::ensure_plain(const std::string& v) {
  const Ref& cur = current(v);
  if (cur.md.get_size() > 0 && (cur.dtype == DType::kUInt8 || cur.dtype == DType::kInt8)) {
    // A quantised activation (in channels-last): row-major, same type.
    for (const Ref& r : loc_[v])
      if (!r.view && r.md.get_size() > 0 && r.md.data_type() == cur.md.data_type() && is_row_major_dense(r.md))
        return r;
    return ensure(v, plain_desc(cur.shape, cur.md.data_type()));
  }
  if (cur.md.get_size() == 0 || (cur.dtype != DType::kFloat32 && cur.dtype != DType::kBFloat16)) {
    if (cur.view) throw unsupported("value '" + v + "' is a strided view of a non-float type");
    return cur;
  }
  for (const Ref& r : loc_[v])
    if (!r.view && r.dtype == DType::kFloat32 && is_row_major_dense(r.md)) return r;
  return ensure(v, plain_desc(cur.shape, dt::f32));
}

Ref LoweringContext::dense_ref(const std::string& v) {
  for (const Ref& r : loc_[v])
    if (!r.view && r.md.get_size() > 0) return r;
  const Ref& cur = current(v);
  return ensure(v, act_desc(cur.shape, cur.md.data_type()));
}

}  // namespace damoyolo::kernels::dnnl_ops
