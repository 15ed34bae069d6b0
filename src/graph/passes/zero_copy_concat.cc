// zero_copy_concat: a channel Concat whose inputs include Slice outputs (the
// Focus stem: four strided slices of the image, concatenated) reads those
// slices in place.
//
//   v_i = Slice(x, ...)                   v_i = Slice(x, ...)            (a strided view: no step)
//   y = Concat(v_0, ..., v_3){axis=1}  →  y = Concat{zero_copy_inputs=1}(v_0, ..., v_3)
//
// The node count does not change: the rewrite is the attribute, which tells
// the lowering (kernels/dnnl/lower_concat.cc) to reorder each view straight
// into its channel slice of the output instead of first copying it out dense.
#include "graph/passes/fusion.h"

namespace damoyolo::graph {

int mark_zero_copy_concat(Graph& g) {
  const auto producers = g.producers();
  int rewrites = 0;
  for (Node& n : g.nodes) {
    if (n.op_type != "Concat" || !n.domain.empty() || n.attr_i("axis", 0) != 1) continue;
    bool reads_slice = false;
    for (const auto& in : n.inputs)
      if (auto p = producers.find(in); p != producers.end()) {
        const Node& src = g.nodes[p->second];
        reads_slice |= src.op_type == "Slice" && src.domain.empty();
      }
    if (!reads_slice || n.attr_i("zero_copy_inputs", 0) != 0) continue;
    n.attrs["zero_copy_inputs"] = fusion::int_attr(1);
    ++rewrites;
  }
  return rewrites;
}

}  // namespace damoyolo::graph
