// The DAMO-YOLO head's geometry and export forms: the one definition
// (damo-yolo-facts.md §2.6, §3.1, §3.2).
//
// A ZeroHead has one level per feature map. A level of stride s reads an
// h×w map with s = input / map size, the same integer in H and W. Its anchor
// (i, j) sits at (j·s, i·s), with index i·w + j inside the level. The levels
// are concatenated in ascending stride order (s8, s16, s32 for the released
// models), so a level's first global anchor index is the sum of h·w over
// the levels before it.
//
// An export has one of two output forms:
//   decoded  2 outputs: scores [N,A,C] (sigmoid), boxes [N,A,4] (x1y1x2y2,
//            input pixels), bound by position (the boxes' name differs per
//            model, §3.1);
//   raw      the `--benchmark` export, 2L outputs: the L class maps
//            [N,C',h,w] (sigmoid), then the L regression maps [N,4(R+1),h,w]
//            (bin logits), level l's two maps the same h×w.
//
// Users, all below or beside this folder (model/ depends only on the public
// value types of include/damoyolo and on common/, so every layer may use it):
//   * api/detector.cc: detector_class_count and Detector::create recognise
//     the form from the Session's infos and give the post-processor the input
//     size;
//   * detection/postprocess.cc: Postprocessor::process binds the outputs of
//     either form through recognise_head, and process_raw checks its levels
//     with check_levels;
//   * kernels/head/head_decode.cc: Priors keep their levels as HeadLevel
//     (offsets from assign_anchor_offsets);
//   * kernels/dnnl/head_pattern.cc: the matcher recognises the decoded form
//     and derives the levels from the conv maps it stops at (derive_levels);
//   * runtime/optimized_engine.cc: the fused head step runs on those levels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "damoyolo/status.h"
#include "damoyolo/tensor.h"

namespace damoyolo::model {

// The most levels a head may have (the released models have 3).
inline constexpr int kMaxLevels = 8;

// Only when the network input size is not known (a bare Postprocessor given
// raw maps, no set_input_size): the largest map is then taken to have
// DAMO-YOLO's finest stride, 8 (P3, facts §2.6), and the input to be 8× it.
inline constexpr int kFinestStrideWhenInputUnknown = 8;

enum class ExportForm {
  kDecoded,  // default export: scores [N,A,C], boxes [N,A,4]
  kRawMaps,  // `--benchmark` export: L class maps, then L regression maps
};
// "decoded (scores, boxes)" or "raw head maps (--benchmark)".
const char* export_form_name(ExportForm form);

struct HeadLevel {
  int stride = 0;             // input / map size, the same in H and W
  int h = 0, w = 0;           // feature map size
  int64_t anchor_offset = 0;  // global index of the level's anchor (0, 0)

  int64_t anchors() const { return int64_t{h} * w; }
  bool same_geometry(const HeadLevel& o) const { return stride == o.stride && h == o.h && w == o.w; }
};

struct HeadLayout {
  ExportForm form = ExportForm::kDecoded;
  int64_t batch = 0;                 // N of the outputs
  int64_t input_h = 0, input_w = 0;  // network input size
  // False: the caller did not know the input size. For the raw form it is
  // then the largest map × kFinestStrideWhenInputUnknown; for the decoded
  // form it stays 0.
  bool input_known = false;
  int num_classes = 0;  // class channels in the outputs (C; C+1 for a legacy raw export)
  int reg_max = -1;     // R; -1 where the outputs do not show it (decoded form)
  // Ascending stride, the export's anchor order. The raw form's outputs give
  // them; the decoded form's do not (empty here; the head matcher derives
  // them from the graph's conv maps).
  std::vector<HeadLevel> levels;
  int64_t num_anchors = 0;  // A = Σ h·w
  // Where each tensor is among the outputs.
  size_t scores_output = 0, boxes_output = 1;    // decoded form
  std::vector<size_t> cls_outputs, reg_outputs;  // raw form, per level (levels' order)
};

// One feature map given to derive_levels, and its name for messages
// ("output 2 ('878')", "value 'x'").
struct MapSize {
  int64_t h = 0, w = 0;
  std::string name;
};

// Levels from the network input size and the maps' sizes, in any order:
// stride = input / map, which must be an integer and the same in H and W;
// two maps may not share a stride. Returns the levels in ascending stride
// order with their anchor offsets; order (when given) receives, per level,
// the index of its map in `maps`. Throws Error(kInvalidArgument) naming the
// offending map.
std::vector<HeadLevel> derive_levels(int64_t input_h, int64_t input_w, std::span<const MapSize> maps,
                                     std::vector<size_t>* order = nullptr);

// Writes each level's anchor_offset (levels in anchor order); returns Σ h·w.
// No validation: check_levels does that.
int64_t assign_anchor_offsets(std::span<HeadLevel> levels);

// Levels given with their strides (Postprocessor::process_raw, the decode
// kernels' HeadLevelMaps): 1..kMaxLevels levels, positive sizes, strictly
// ascending strides, and one input size (stride·h and stride·w the same at
// every level). Throws Error(kInvalidArgument) starting with `what`.
void check_levels(std::span<const HeadLevel> levels, std::string_view what);

// The export form and its layout from the output infos: shapes (all dims
// known and positive) and dtypes (float32); names only for messages.
// input_h/input_w: the network input size, or 0 when unknown (see
// HeadLayout::input_known). kInvalidArgument, naming the output, for anything
// inconsistent.
Result<HeadLayout> recognise_head(std::span<const TensorInfo> outputs, int64_t input_h, int64_t input_w);

// The same from a Session's or a graph's infos, which must have one input
// [N,3,H,W]: a DAMO-YOLO detector.
Result<HeadLayout> recognise_head(std::span<const TensorInfo> inputs, std::span<const TensorInfo> outputs);

}  // namespace damoyolo::model
