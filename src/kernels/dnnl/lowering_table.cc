// Every lowering, in one table: (domain, op) → function, whether the op reads
// integer activations (only the INT8 convolution, Concat and DequantizeLinear: see
// Lowering::reads_int8), and whether it reads bf16 activations in a bf16 plan (LoweringContext::act_dtype: a value
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
    {kOnnx, "Conv", true, false, lower_conv},
    {kDamoyolo, "FusedConv", true, true, lower_conv},
    {kOnnx, "MaxPool", true, false, lower_maxpool},
    {kOnnx, "Resize", true, false, lower_resize},
    {kOnnx, "Concat", true, true, lower_concat},
    {kOnnx, "Slice", false, false, lower_slice},
    {kOnnx, "Relu", true, false, lower_eltwise},
    {kOnnx, "Sigmoid", false, false, lower_eltwise},
    {kOnnx, "Exp", false, false, lower_eltwise},
    {kDamoyolo, "Silu", false, false, lower_eltwise},
    {kOnnx, "Add", true, false, lower_binary},
    {kOnnx, "Sub", false, false, lower_binary},
    {kOnnx, "Mul", false, false, lower_binary},
    {kOnnx, "Div", false, false, lower_binary},
    {kDamoyolo, "DamoYoloHead", false, false, lower_head},
    {kOnnx, "QuantizeLinear", false, false, lower_quantize},
    {kOnnx, "DequantizeLinear", false, true, lower_dequantize},
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
