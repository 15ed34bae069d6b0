// Every lowering, in one table: (domain, op) → function, and whether the op
// reads bf16 activations in a bf16 plan (LoweringContext::act_dtype: a value
// is written in bf16 only when every reader takes bf16, so bf16 stops before
// ops whose oneDNN kernels would lose accuracy or that have none — Exp,
// Sigmoid and the head want f32 inputs).
#include <algorithm>

#include "kernels/dnnl/lowering.h"

namespace damoyolo::kernels::dnnl_ops {

namespace {
constexpr std::string_view kOnnx = "";
constexpr std::string_view kDamoyolo = "com.damoyolo";

constexpr Lowering kLowerings[] = {
    {kOnnx, "Conv", true, lower_conv},
    {kDamoyolo, "FusedConv", true, lower_conv},
    {kOnnx, "MaxPool", true, lower_maxpool},
    {kOnnx, "Resize", true, lower_resize},
    {kOnnx, "Concat", true, lower_concat},
    {kOnnx, "Slice", false, lower_slice},
    {kOnnx, "Relu", true, lower_eltwise},
    {kOnnx, "Sigmoid", false, lower_eltwise},
    {kOnnx, "Exp", false, lower_eltwise},
    {kDamoyolo, "Silu", false, lower_eltwise},
    {kOnnx, "Add", true, lower_binary},
    {kOnnx, "Sub", false, lower_binary},
    {kOnnx, "Mul", false, lower_binary},
    {kOnnx, "Div", false, lower_binary},
    {kDamoyolo, "DamoYoloHead", false, lower_head},
};
}  // namespace

std::span<const Lowering> lowerings() { return kLowerings; }

const Lowering* find_lowering(const graph::Node& n) {
  // "ai.onnx" is the default domain's other spelling.
  const std::string_view domain = n.domain == "ai.onnx" ? kOnnx : std::string_view(n.domain);
  for (const Lowering& l : kLowerings)
    if (l.op_type == n.op_type && l.domain == domain) return &l;
  return nullptr;
}

}  // namespace damoyolo::kernels::dnnl_ops
