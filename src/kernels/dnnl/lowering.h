// Lowering: one graph node → oneDNN steps, one function per operator family,
// registered in one table (lowering_table.cc).
//
// How a model file becomes steps: the loader builds the graph IR, the graph
// passes rewrite it (graph/passes/: folding, then the fusions, which leave
// nodes such as com.damoyolo FusedConv / Silu / DamoYoloHead), and the
// runtime's compiler (runtime/optimized_engine.cc) walks the nodes in order
// and calls, for each, the lowering its op is registered with here. A lowering
//   * reads the node and the values it consumes through the LoweringContext
//     (their current materialisations: slot, layout, data type),
//   * asks the context for buffers (new_ref), conversions (ensure, dense_ref)
//     and adds Steps (add_step), then records where its outputs live (define);
//   * returns false — or throws Error(kUnsupported) / dnnl::error — when it
//     cannot take this node (an attribute, a layout, a type). The compiler then
//     rolls back everything the attempt added (the context's checkpoint) and
//     runs the node on its reference kernel instead (lower_fallback), with
//     conversions to plain tensors at its edges. Nothing is left behind.
//
// Adding an op: write `bool lower_<family>(LoweringContext&, size_t node)` in
// a lower_<family>.cc and add its row to kLowerings (with whether the op
// reads bf16 activations, which decides where bf16 stops).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "graph/graph.h"
#include "kernels/dnnl/steps.h"
#include "kernels/dnnl/weight_cache.h"

namespace damoyolo::kernels::dnnl_ops {

// What the lowerings need from the session's options (runtime fills it).
struct LoweringOptions {
  bool bf16 = false;            // Precision::kBF16: convolutions and the ops of
                                // kLowerings marked reads_bf16 compute in bf16
  bool blocked_layout = true;   // OptimizationOptions::blocked_layout
  int64_t batch = 1;            // the batch this plan is compiled for
  int64_t model_batch = 1;      // the export's batch (the graph's shapes)
};

class LoweringContext {
 public:
  LoweringContext(const graph::Graph& g, const LoweringOptions& o, WeightCache* weights);

  const graph::Graph& graph() const { return g_; }
  const graph::Node& node(size_t i) const { return g_.nodes[i]; }
  const LoweringOptions& options() const { return o_; }
  WeightCache* weights() const { return weights_; }

  // --- analysis
  // The value's info; throws kUnsupported when its shape is not static.
  const graph::ValueInfo& info(const std::string& v) const;
  // Its shape at this plan's batch (every 4-D activation scales with the
  // batch; set_shape overrides, e.g. the fused head's 3-D outputs).
  Shape shape_of(const std::string& v) const;
  void set_shape(const std::string& v, const Shape& s) { shape_override_[v] = s; }
  bool is_output(const std::string& v) const { return outputs_.count(v) != 0; }
  const std::vector<size_t>& consumers(const std::string& v) const;
  // Lowered (or fallen back) already: nodes before the current one.
  bool done(size_t node) const { return done_[node]; }
  void mark_done(size_t node) { done_[node] = true; }
  // Rank-0 / one-element float constant, or nullopt.
  std::optional<float> scalar_constant(const std::string& v) const;
  // Data type a producer should write for v: bf16 only when the plan is bf16
  // and every reader is a lowering that reads bf16 (kLowerings' reads_bf16).
  dnnl::memory::data_type act_dtype(const std::string& v) const;
  // The layout activations are written in: channels-last (oneDNN picks for
  // convolutions) or plain NCHW with blocked_layout off.
  dnnl::memory::desc act_desc(const Shape& s, dnnl::memory::data_type t) const;
  // format_tag::any (the primitive picks) or plain NCHW with blocked_layout off.
  dnnl::memory::desc any_desc(const Shape& s, dnnl::memory::data_type t) const;

  // --- slots, refs, steps
  int new_slot(size_t bytes, Slot::Kind kind = Slot::Kind::kArena, int external = -1);
  Ref new_ref(const dnnl::memory::desc& md, const Shape& shape, DType dtype = DType::kFloat32);
  Slot& slot(int i) { return slots_[i]; }
  // v now also lives at r (the first definition is the current one).
  void define(const std::string& v, const Ref& r);
  const Ref& current(const std::string& v) const;
  bool computed(const std::string& v) const;
  const std::vector<Ref>& locations(const std::string& v) { return loc_[v]; }
  // Appends a step; refs are the buffers it reads or writes (their lifetimes).
  void add_step(std::unique_ptr<Step> step, const std::vector<Ref>& refs);
  // A plan entry with no step (a view).
  void add_plan_entry(PlanStep p) { plan_.push_back(std::move(p)); }
  PlanStep& last_plan_entry() { return plan_.back(); }
  dnnl::primitive_attr make_attr() const;
  void note_scratchpad(const dnnl::memory::desc& md);
  // A primitive step: the primitive, its ref and constant arguments, scratchpad.
  void add_primitive(const graph::Node& n, const dnnl::primitive_desc_base& pd, dnnl::primitive prim,
                     std::vector<std::pair<int, Ref>> args, const Ref& src, const Ref& dst,
                     std::vector<std::pair<int, dnnl::memory>> const_args = {},
                     std::vector<std::string> post_ops = {});

  // src → dst by a reorder step (layout / type change); returns dst. With
  // attr: its scales and zero points (quantisation); with node: the step
  // computes that node (QuantizeLinear ...), and the plan says so.
  Ref reorder_into(const Ref& src, const Ref& dst, const std::string& value, const std::string& purpose,
                   const dnnl::primitive_attr* attr = nullptr, const graph::Node* node = nullptr);
  // v in exactly the layout/type md (dense, own slot); converts once and
  // remembers the copy for later consumers.
  Ref ensure(const std::string& v, const dnnl::memory::desc& md);
  // Row-major dense f32 (or the value's own dtype when oneDNN can't describe it).
  Ref ensure_plain(const std::string& v);
  // Some dense (non-view) materialisation of v, preferring the current one.
  Ref dense_ref(const std::string& v);

  // A plan entry for a primitive lowering of node n: op and nodes (a fused
  // node lists the ONNX nodes it replaced), implementation, src and dst.
  static PlanStep primitive_plan(const graph::Node& n, const dnnl::primitive_desc_base& pd, const Ref& src,
                                 const Ref& dst);
  static std::string describe(const Ref& r);

  // Lowering a node is a transaction: everything it added (slots, steps,
  // value locations, slot lifetimes and owners) is undone on rollback.
  struct Checkpoint {
    size_t steps, plan, journal, scratch;
    std::vector<Slot> slots;
  };
  Checkpoint checkpoint() const;
  void rollback(Checkpoint& c);

  // What the compiler takes over at the end.
  std::vector<Slot>& slots() { return slots_; }
  std::vector<std::unique_ptr<Step>>& steps() { return steps_; }
  std::vector<PlanStep>& plan() { return plan_; }
  size_t scratchpad_bytes() const { return scratch_bytes_; }

 private:
  const graph::Graph& g_;
  LoweringOptions o_;
  WeightCache* weights_ = nullptr;
  std::unordered_map<std::string, std::vector<size_t>> consumers_;
  std::unordered_set<std::string> outputs_;
  std::vector<bool> done_;
  std::unordered_map<std::string, Shape> shape_override_;
  std::unordered_map<std::string, std::vector<Ref>> loc_;
  std::vector<Slot> slots_;
  std::vector<std::unique_ptr<Step>> steps_;
  std::vector<PlanStep> plan_;        // steps_' plan entries, plus views (no step)
  std::vector<std::string> journal_;  // values in the order define() gave them a location
  size_t scratch_bytes_ = 0;
};

// One lowering: the op it takes (domain "" = ai.onnx), whether it reads bf16
// activations, whether it reads integer (quantised) activations, and the
// function. Returns false to fall back.
using LowerFn = bool (*)(LoweringContext&, size_t node);
struct Lowering {
  std::string_view domain;
  std::string_view op_type;
  bool reads_bf16;  // its oneDNN primitive takes bf16 sources in a bf16 plan
  // Its oneDNN primitive computes what ONNX does on uint8/int8 inputs. The
  // others never see one (the compiler falls them back): oneDNN saturates
  // where ONNX integer arithmetic wraps, and they build float buffers.
  bool reads_int8;
  LowerFn lower;
};
// Every lowering (lowering_table.cc).
std::span<const Lowering> lowerings();
// The lowering for a node's op, or nullptr (the node falls back).
const Lowering* find_lowering(const graph::Node& n);

// Lowering families (lower_<family>.cc).
bool lower_conv(LoweringContext&, size_t node);      // Conv, com.damoyolo FusedConv
bool lower_maxpool(LoweringContext&, size_t node);   // MaxPool
bool lower_resize(LoweringContext&, size_t node);    // Resize (nearest, integer factor)
bool lower_concat(LoweringContext&, size_t node);    // Concat (channels)
bool lower_slice(LoweringContext&, size_t node);     // Slice as a strided view
bool lower_eltwise(LoweringContext&, size_t node);   // Relu Sigmoid Exp, com.damoyolo Silu
bool lower_binary(LoweringContext&, size_t node);    // Add Sub Mul Div
bool lower_head(LoweringContext&, size_t node);      // com.damoyolo DamoYoloHead
bool lower_quantize(LoweringContext&, size_t node);  // QuantizeLinear (per tensor) as a reorder
bool lower_dequantize(LoweringContext&, size_t node);  // DequantizeLinear (per tensor) as a reorder
// The non-float types a graph input or output may have on the optimised
// engine (uint8, int8, int32: quantised models). Such a value has no oneDNN
// descriptor in the plan: only fallback steps read or write it, so no
// lowering can mistake it for an activation.
bool is_raw_io_dtype(DType t);
// Not in the table: the reference kernel for one node on plain tensors, used
// by the compiler when a node has no lowering or its lowering declined.
void lower_fallback(LoweringContext&, size_t node, const std::string& reason);

}  // namespace damoyolo::kernels::dnnl_ops
