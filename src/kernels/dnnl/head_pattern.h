// Recognises the DAMO-YOLO ZeroHead decode subgraph so the optimised engine
// can replace it with one kernels::head::decode_head_dense call.
//
//   cls conv → Sigmoid ─┐                                  ┌→ scores [N,A,C]
//   reg conv → Mul(scale)→ Reshape/Transpose/Softmax(or Exp/ReduceSum/Div)
//                          /MatMul/Gather/Sub/Add/Concat ─┴→ boxes  [N,A,4]
//
// The match is structural (every node between the per-level conv outputs and
// the two graph outputs, nothing escaping) and then confirmed numerically:
// the matched subgraph is run once with the reference kernels on synthetic
// maps and must agree with decode_head_dense, so an export whose decode
// differs in any detail (offsets, side order, prior layout) is never fused.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "model/head_layout.h"

namespace damoyolo::kernels::dnnl_ops {

struct HeadPattern {
  // The decoded form's layout (model/head_layout.h), its levels derived from
  // the conv maps below: ascending stride, the export's anchor order.
  // num_classes, reg_max, scores_output and boxes_output (indices into
  // Graph::outputs) come from it too.
  model::HeadLayout layout;
  struct LevelMaps {
    std::string cls, reg;  // 4-D values [N,C,h,w] and [N,4(R+1),h,w] the head reads
  };
  std::vector<LevelMaps> maps;  // per layout.levels[l]
  bool cls_is_logit = false;
  std::vector<size_t> nodes;  // node indices the fused step replaces
};

std::optional<HeadPattern> match_damoyolo_head(const graph::Graph& g);

}  // namespace damoyolo::kernels::dnnl_ops
