// MaxPool → oneDNN pooling_max, reading its source in whatever layout the
// producer wrote and letting the primitive pick its destination's.
#include "kernels/dnnl/lowering.h"

namespace damoyolo::kernels::dnnl_ops {

bool lower_maxpool(LoweringContext& cx, size_t ni) {
  const graph::Node& n = cx.node(ni);
  // ceil_mode, auto_pad, storage_order (and dilation) have no oneDNN
  // equivalent here: the reference kernel takes those.
  if (n.outputs.size() != 1 || n.attr_i("ceil_mode", 0) != 0 || n.attr_s("auto_pad", "NOTSET") != "NOTSET" ||
      n.attr_i("storage_order", 0) != 0)
    return false;
  auto k = n.attr_ints("kernel_shape");
  auto st = n.attr_ints("strides", {1, 1});
  auto pads = n.attr_ints("pads", {0, 0, 0, 0});
  auto dil = n.attr_ints("dilations", {1, 1});
  if (k.size() != 2 || st.size() != 2 || pads.size() != 4 || dil != std::vector<int64_t>{1, 1}) return false;
  const Ref src = cx.dense_ref(n.input(0));
  const Shape ys = cx.shape_of(n.outputs[0]);
  dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, src.md,
                                cx.any_desc(ys, src.md.data_type()), {st[0], st[1]}, {k[0], k[1]},
                                {pads[0], pads[1]}, {pads[2], pads[3]});
  dnnl::pooling_forward::primitive_desc pd(d, cx.make_attr(), cpu_engine());
  Ref dst = cx.new_ref(pd.dst_desc(), ys, src.dtype);
  cx.add_primitive(n, pd, dnnl::pooling_forward(pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}, src, dst);
  cx.define(n.outputs[0], dst);
  return true;
}

}  // namespace damoyolo::kernels::dnnl_ops
