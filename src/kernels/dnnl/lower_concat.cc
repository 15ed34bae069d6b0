// Concat and Slice: data movement only.
//
// Slice of a plain-strided value with constant, positive steps is a view
// (same bytes, scaled strides, shifted start): no step at run time.
//
// Channel concat of 4-D activations (float, or uint8/int8 — a quantised
// model's, all parts of one type): dense inputs already in the output's
// layout go through oneDNN's concat (a memcpy per slice); otherwise each input
// is reordered straight into its channel slice of the output. A Concat the
// zero-copy pass marked (graph/passes/zero_copy_concat.cc: attribute
// zero_copy_inputs) reads views — the Focus slices — in place, with no copy
// of each slice first.
#include <algorithm>

#include "kernels/dnnl/lowering.h"
#include "kernels/reference/registry.h"

namespace damoyolo::kernels::dnnl_ops {

using dnnl::memory;
using dt = memory::data_type;

bool lower_concat(LoweringContext& cx, size_t ni) {
  const graph::Node& n = cx.node(ni);
  const Shape ys = cx.shape_of(n.outputs[0]);
  int64_t axis = n.attr_i("axis", 1);
  if (axis < 0) axis += static_cast<int64_t>(ys.size());
  if (ys.size() != 4 || axis != 1) return false;
  for (const auto& in : n.inputs)
    if (in.empty() || cx.graph().is_constant(in)) return false;
  // A quantised concatenation (graph/passes/fuse_qdq_conv.cc moves a
  // QuantizeLinear onto the parts): uint8/int8 in, the same type out, a copy.
  const DType qt = cx.info(n.outputs[0]).dtype;
  const bool quantised = qt == DType::kUInt8 || qt == DType::kInt8;
  if (quantised)
    for (const auto& in : n.inputs)
      if (cx.info(in).dtype != qt) return false;
  const dt ydt = quantised ? (qt == DType::kUInt8 ? dt::u8 : dt::s8) : cx.act_dtype(n.outputs[0]);
  const memory::desc dst_md = cx.act_desc(ys, ydt);
  Ref dst = cx.new_ref(dst_md, ys, quantised ? qt : ydt == dt::bf16 ? DType::kBFloat16 : DType::kFloat32);

  const bool zero_copy = n.attr_i("zero_copy_inputs", 0) != 0;
  bool all_match = true;
  std::vector<Ref> srcs;
  for (const auto& in : n.inputs) {
    // oneDNN 2.6's convolutions, pooling and resampling only have reference
    // kernels for a strided (sub-memory) destination, so producers that are
    // primitives still write densely and get copied into the slice.
    const Ref r = zero_copy ? cx.current(in) : cx.dense_ref(in);
    if (r.md.get_size() == 0) return false;
    srcs.push_back(r);
    if (r.view || r.md != cx.act_desc(r.shape, ydt)) all_match = false;
  }
  if (all_match) {
    std::vector<memory::desc> mds;
    for (const Ref& r : srcs) mds.push_back(r.md);
    dnnl::concat::primitive_desc pd(dst_md, 1, mds, cpu_engine(), cx.make_attr());
    std::vector<std::pair<int, Ref>> args;
    for (size_t i = 0; i < srcs.size(); ++i) args.push_back({DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), srcs[i]});
    args.push_back({DNNL_ARG_DST, dst});
    cx.add_primitive(n, pd, dnnl::concat(pd), std::move(args), srcs[0], dst);
  } else {
    int64_t off = 0;
    for (size_t i = 0; i < srcs.size(); ++i) {
      const Ref& r = srcs[i];
      Ref part = dst;
      part.md = dst_md.submemory_desc(to_dims(r.shape), {0, off, 0, 0});
      cx.reorder_into(r, part, n.inputs[i], "concat");
      cx.last_plan_entry().nodes = {n.name};  // these copies together compute the Concat node
      off += r.shape[1];
    }
  }
  cx.define(n.outputs[0], dst);
  return true;
}

bool lower_slice(LoweringContext& cx, size_t ni) {
  const graph::Node& n = cx.node(ni);
  const graph::Graph& g = cx.graph();
  const std::string& x = n.input(0);
  if (!cx.computed(x)) return false;
  const Ref src = cx.current(x);
  if (src.md.get_size() == 0 || !is_plain_strided(src.md) || src.md.data.offset0 != 0) return false;
  std::vector<int64_t> starts, ends, axes, steps;
  if (g.opset() < 10) {
    starts = n.attr_ints("starts");
    ends = n.attr_ints("ends");
    axes = n.attr_ints("axes");
  } else {
    auto cval = [&](size_t i) -> std::optional<std::vector<int64_t>> {
      if (n.input(i).empty()) return std::vector<int64_t>{};
      const Tensor* t = g.constant(n.input(i));
      if (!t) return std::nullopt;
      return ref::to_int64_vector(*t);
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
  const Shape ys = cx.shape_of(n.outputs[0]);
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
  view.md = memory::desc(to_dims(ys), src.md.data_type(), strides);
  view.offset = offset;
  view.shape = ys;
  view.view = true;
  cx.define(n.outputs[0], view);
  PlanStep p;
  p.kind = PlanStep::Kind::kView;
  p.op = n.op_type;
  p.nodes = {n.name};
  p.src = LoweringContext::describe(src);
  p.dst = LoweringContext::describe(view);
  cx.add_plan_entry(std::move(p));
  return true;
}

}  // namespace damoyolo::kernels::dnnl_ops
