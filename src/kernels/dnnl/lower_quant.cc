// QuantizeLinear and DequantizeLinear with a per-tensor scale and zero point
// (what a QDQ model has on its activations) as oneDNN reorders:
//   QuantizeLinear    f32 → u8/s8   output scale 1/scale, destination zero point
//   DequantizeLinear  u8/s8 → f32   source zero point, output scale scale
// in the activations' own layout (channels-last), so the quantised tensor is
// what an INT8 convolution reads with no further conversion. These are the
// precision boundaries of a quantised model: where the INT8 pass
// (graph/passes/fuse_qdq_conv.cc) absorbed the pairs between convolutions,
// only the edges (the network's input, concatenations, the head) are left.
//
// Rounding: oneDNN multiplies by 1/scale where ONNX divides by scale; the two
// can differ in the last bit of the product, so a value within an ulp of a
// rounding boundary may land one step apart (the tests allow one step).
// Per-axis parameters, runtime scales and graph outputs fall back to the
// reference kernels.
#include <cmath>

#include "kernels/dnnl/lowering.h"

namespace damoyolo::kernels::dnnl_ops {

using dnnl::memory;
using dt = memory::data_type;

namespace {

struct Params {
  float scale = 1.f;
  int32_t zero_point = 0;
  dt int_type = dt::u8;
};

// Scalar constant scale and zero point, or nullopt.
std::optional<Params> tensor_params(const LoweringContext& cx, const graph::Node& n) {
  const auto s = cx.scalar_constant(n.input(1));
  if (!s || !(*s > 0.f) || !std::isfinite(*s)) return std::nullopt;
  Params p;
  p.scale = *s;
  if (!n.input(2).empty()) {
    const Tensor* z = cx.graph().constant(n.input(2));
    if (!z || z->numel() != 1) return std::nullopt;
    if (z->dtype() == DType::kUInt8) {
      p.zero_point = z->data<uint8_t>()[0];
    } else if (z->dtype() == DType::kInt8) {
      p.zero_point = z->data<int8_t>()[0];
      p.int_type = dt::s8;
    } else {
      return std::nullopt;
    }
  }
  return p;
}

DType to_dtype(dt t) { return t == dt::u8 ? DType::kUInt8 : t == dt::s8 ? DType::kInt8 : DType::kFloat32; }

// A dense materialisation of v (a strided view is reordered from as well,
// but its bytes belong to another value's buffer: take a dense one).
Ref source(LoweringContext& cx, const std::string& v) {
  const Ref& cur = cx.current(v);
  if (cur.md.get_size() == 0) throw Error(ErrorCode::kUnsupported, "value '" + v + "' has no oneDNN descriptor");
  return cur.view ? cx.dense_ref(v) : cur;
}

}  // namespace

bool lower_quantize(LoweringContext& cx, size_t ni) {
  const graph::Node& n = cx.node(ni);
  const auto p = tensor_params(cx, n);
  const std::string& out = n.outputs.empty() ? std::string() : n.outputs[0];
  if (!p || out.empty() || cx.is_output(out)) return false;
  const Ref src = source(cx, n.input(0));
  if (src.md.data_type() != dt::f32 && src.md.data_type() != dt::bf16) return false;
  const Shape& s = src.shape;
  const Ref dst = cx.new_ref(cx.act_desc(s, p->int_type), s, to_dtype(p->int_type));
  dnnl::primitive_attr attr = cx.make_attr();
  attr.set_output_scales(0, {1.f / p->scale});
  if (p->zero_point != 0) attr.set_zero_points(DNNL_ARG_DST, 0, {p->zero_point});
  cx.reorder_into(src, dst, n.input(0), "quantize", &attr, &n);
  cx.define(out, dst);
  return true;
}

bool lower_dequantize(LoweringContext& cx, size_t ni) {
  const graph::Node& n = cx.node(ni);
  const auto p = tensor_params(cx, n);
  const std::string& out = n.outputs.empty() ? std::string() : n.outputs[0];
  if (!p || out.empty()) return false;
  const Ref src = source(cx, n.input(0));
  if (src.md.data_type() != p->int_type) return false;
  const Shape& s = src.shape;
  const dt ydt = cx.act_dtype(out);
  const Ref dst = cx.new_ref(cx.act_desc(s, ydt), s, ydt == dt::bf16 ? DType::kBFloat16 : DType::kFloat32);
  dnnl::primitive_attr attr = cx.make_attr();
  attr.set_output_scales(0, {p->scale});
  if (p->zero_point != 0) attr.set_zero_points(DNNL_ARG_SRC, 0, {p->zero_point});
  cx.reorder_into(src, dst, n.input(0), "dequantize", &attr, &n);
  cx.define(out, dst);
  return true;
}

}  // namespace damoyolo::kernels::dnnl_ops
