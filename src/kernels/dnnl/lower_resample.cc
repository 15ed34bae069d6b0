// Resize → oneDNN resampling, for the one form DAMO-YOLO's necks export:
// nearest, asymmetric, floor, integer factor: out[o] = in[floor(o/f)].
// oneDNN's nearest picks round((o + 0.5)/f − 0.5), which for integer f lies in
// (k − 0.5, k + 0.5) for o = k·f + r, i.e. the same k. Other modes fall back.
#include "kernels/dnnl/lowering.h"
#include "kernels/reference/registry.h"

namespace damoyolo::kernels::dnnl_ops {

bool lower_resize(LoweringContext& cx, size_t ni) {
  const graph::Node& n = cx.node(ni);
  if (n.attr_s("mode", "nearest") != "nearest") return false;
  const std::string ctm = n.attr_s("coordinate_transformation_mode", "half_pixel");
  const std::string nm = n.attr_s("nearest_mode", "round_prefer_floor");
  if (ctm != "asymmetric" || nm != "floor") return false;
  const Shape xs = cx.info(n.input(0)).shape, ys = cx.info(n.outputs[0]).shape;
  if (xs.size() != 4 || xs[0] != ys[0] || xs[1] != ys[1]) return false;
  if (xs[2] <= 0 || xs[3] <= 0 || ys[2] % xs[2] != 0 || ys[3] % xs[3] != 0) return false;
  // The factor must also be what the scales say (sizes would be exact already).
  if (const Tensor* sc = n.input(2).empty() ? nullptr : cx.graph().constant(n.input(2)); sc && sc->numel() == 4) {
    auto f = ref::to_float_vector(*sc);
    if (f[2] != static_cast<float>(ys[2] / xs[2]) || f[3] != static_cast<float>(ys[3] / xs[3])) return false;
  }
  const Ref src = cx.dense_ref(n.input(0));
  const Shape out = cx.shape_of(n.outputs[0]);
  dnnl::resampling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::resampling_nearest, src.md,
                                   cx.any_desc(out, src.md.data_type()));
  dnnl::resampling_forward::primitive_desc pd(d, cx.make_attr(), cpu_engine());
  Ref dst = cx.new_ref(pd.dst_desc(), out, src.dtype);
  cx.add_primitive(n, pd, dnnl::resampling_forward(pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}, src, dst);
  cx.define(n.outputs[0], dst);
  return true;
}

}  // namespace damoyolo::kernels::dnnl_ops
