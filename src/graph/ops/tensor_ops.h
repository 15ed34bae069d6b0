// Shape rules of the data-movement operators (Shape, Constant, Reshape,
// Transpose, Concat, Slice, Gather, Unsqueeze, Squeeze, Flatten, Split, Pad):
// their schemas, and the shape arithmetic their reference kernels
// (src/kernels/reference/tensor_ops.cc) reuse on concrete tensors, so the
// inferred shape and the computed one come from the same code.
//
// The output shape of most of them depends on the values of small integer
// inputs (Reshape's shape, Slice's starts...); infer uses those values when
// they are load-time constants and otherwise reports the shape as unknown
// (has_shape = false), leaving it to the caller to decide whether a dynamic
// shape is acceptable.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "graph/ops/op_util.h"

namespace damoyolo::graph::ops {

// ---- helpers ----------------------------------------------------------------

void require_fixed_size(const OpContext& ctx, DType dt);

// The integer values of constant input i, or nullopt when absent or not constant.
std::optional<std::vector<int64_t>> const_ints(const std::vector<InferInput>& in, size_t i);

// Product of dims [from, to); -1 when one is unknown. Saturates at INT64_MAX
// (real tensors never get there: their constructor counts exactly).
int64_t product(const Shape& s, size_t from, size_t to);

// ---- Shape ------------------------------------------------------------------

std::pair<int64_t, int64_t> shape_range(const Node& node, int64_t rank);

// ---- Constant ---------------------------------------------------------------

Tensor constant_value(const OpContext& ctx);

// ---- Reshape ----------------------------------------------------------------

// Resolves 0 (copy the input dim unless allowzero) and -1 (inferred). Input
// dims may be unknown (< 0) during inference; the result then has unknown dims.
Shape resolve_reshape(const OpContext& ctx, const Shape& in, const std::vector<int64_t>& spec, bool allowzero);

std::optional<std::vector<int64_t>> reshape_spec(const OpContext& ctx, const std::vector<InferInput>& in);

// ---- Transpose --------------------------------------------------------------

std::vector<int64_t> transpose_perm(const OpContext& ctx, size_t rank);

// ---- Slice ------------------------------------------------------------------

struct SliceParams {
  std::vector<int64_t> starts, ends, axes, steps;
};

// Gathers the parameters from attributes (opset < 10) or inputs; nullopt when
// an input is not a constant (infer only).
template <class GetInts>
std::optional<SliceParams> slice_params(const OpContext& ctx, size_t rank, GetInts get) {
  SliceParams p;
  if (ctx.opset < 10) {
    p.starts = ctx.node.attr_ints("starts");
    p.ends = ctx.node.attr_ints("ends");
    p.axes = ctx.node.attr_ints("axes");
  } else {
    auto s = get(1), e = get(2);
    if (!s || !e) return std::nullopt;
    p.starts = *s;
    p.ends = *e;
    if (!ctx.node.input(3).empty()) {
      auto a = get(3);
      if (!a) return std::nullopt;
      p.axes = *a;
    }
    if (!ctx.node.input(4).empty()) {
      auto st = get(4);
      if (!st) return std::nullopt;
      p.steps = *st;
    }
  }
  if (p.starts.size() != p.ends.size())
    fail(ctx, ErrorCode::kInvalidArgument, "starts and ends have different lengths");
  if (p.axes.empty())
    for (size_t i = 0; i < p.starts.size(); ++i) p.axes.push_back(static_cast<int64_t>(i));
  if (p.steps.empty()) p.steps.assign(p.starts.size(), 1);
  if (p.axes.size() != p.starts.size() || p.steps.size() != p.starts.size())
    fail(ctx, ErrorCode::kInvalidArgument, "starts/ends/axes/steps have different lengths");
  std::set<int64_t> seen;
  for (int64_t& a : p.axes) {
    a = normalize_axis(ctx, a, static_cast<int64_t>(rank));
    if (!seen.insert(a).second) fail(ctx, ErrorCode::kInvalidArgument, "axes repeat an axis");
  }
  for (int64_t s : p.steps)
    if (s == 0) fail(ctx, ErrorCode::kInvalidArgument, "a step is 0");
  return p;
}

// Clamps start/end of one axis of length dim as the ONNX spec says, and returns
// {start, count}. Works for INT64_MAX / INT64_MIN sentinels and for any step,
// INT64_MIN included: after clamping |start - end| <= dim + 1, and the step's
// magnitude is taken as unsigned, so nothing below can overflow.
std::pair<int64_t, int64_t> slice_axis(int64_t start, int64_t end, int64_t step, int64_t dim);

// ---- Unsqueeze / Squeeze ----------------------------------------------------

// Axes from the attribute (opset <= 12) or input 1 (13+); nullopt when the
// input exists but is not known; an empty vector when there are none.
std::optional<std::vector<int64_t>> axes_of(const OpContext& ctx, const std::vector<InferInput>& in);

Shape unsqueeze_shape(const OpContext& ctx, const Shape& in, std::vector<int64_t> axes);

// nullopt when the axes are implicit ("all size-1 dims") and some dim is unknown.
std::optional<Shape> squeeze_shape(const OpContext& ctx, const Shape& in, std::vector<int64_t> axes);

// ---- Flatten ----------------------------------------------------------------

Shape flatten_shape(const OpContext& ctx, const Shape& s);

// ---- Split ------------------------------------------------------------------

// Sizes of the parts along `axis` (dim may be unknown: then only explicit splits resolve).
std::optional<std::vector<int64_t>> split_sizes(const OpContext& ctx, int64_t dim, std::optional<std::vector<int64_t>> split);

// ---- Pad --------------------------------------------------------------------

std::optional<std::vector<int64_t>> pads_of(const OpContext& ctx, const std::vector<InferInput>& in);

void check_pad_mode(const OpContext& ctx);

Shape padded_shape(const OpContext& ctx, const Shape& s, const std::vector<int64_t>& pads);

}  // namespace damoyolo::graph::ops
