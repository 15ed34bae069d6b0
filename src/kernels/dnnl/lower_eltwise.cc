// Element-wise ops → oneDNN eltwise and binary primitives.
//   Relu, Sigmoid, Exp, com.damoyolo Silu (x·sigmoid(x), from
//   graph/passes/fuse_silu.cc) → eltwise_relu / logistic / exp / swish;
//   Add/Sub/Mul/Div of two same-shape activations → binary;
//   an activation and a scalar constant → eltwise_linear (y = alpha·x + beta).
#include "kernels/dnnl/lowering.h"

namespace damoyolo::kernels::dnnl_ops {

using dnnl::memory;

bool lower_eltwise(LoweringContext& cx, size_t ni) {
  const graph::Node& n = cx.node(ni);
  dnnl::algorithm alg;
  float alpha = 0.f, beta = 0.f;
  std::vector<std::string> post_ops;
  if (n.op_type == "Relu") {
    alg = dnnl::algorithm::eltwise_relu;
  } else if (n.op_type == "Sigmoid") {
    alg = dnnl::algorithm::eltwise_logistic;
  } else if (n.op_type == "Silu") {
    alg = dnnl::algorithm::eltwise_swish;
    alpha = 1.f;  // swish's beta in x·sigmoid(alpha·x)
    post_ops = {"swish (fused Mul)"};
  } else if (n.op_type == "Exp") {
    alg = dnnl::algorithm::eltwise_exp;
  } else {
    return false;
  }
  const std::string& x = n.input(0);
  const std::string& out = n.outputs[0];
  if (!cx.computed(x)) return false;
  const Ref src = cx.dense_ref(x);
  Ref dst = cx.new_ref(src.md, cx.shape_of(out), src.dtype);
  dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, alg, src.md, alpha, beta);
  dnnl::eltwise_forward::primitive_desc pd(d, cx.make_attr(), cpu_engine());
  cx.add_primitive(n, pd, dnnl::eltwise_forward(pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}, src, dst, {},
                   std::move(post_ops));
  cx.define(out, dst);
  return true;
}

bool lower_binary(LoweringContext& cx, size_t ni) {
  const graph::Node& n = cx.node(ni);
  const graph::Graph& g = cx.graph();
  if (n.inputs.size() != 2) return false;
  const std::string &a = n.input(0), &b = n.input(1);
  const std::string& out = n.outputs[0];
  const Shape ys = cx.shape_of(out);
  if (ys.size() != 4) return false;
  auto sa = cx.scalar_constant(a), sb = cx.scalar_constant(b);
  if (!sa && !sb && !g.is_constant(a) && !g.is_constant(b)) {
    if (cx.info(a).shape != cx.info(b).shape || !cx.computed(a) || !cx.computed(b)) return false;
    dnnl::algorithm alg;
    if (n.op_type == "Add") alg = dnnl::algorithm::binary_add;
    else if (n.op_type == "Sub") alg = dnnl::algorithm::binary_sub;
    else if (n.op_type == "Mul") alg = dnnl::algorithm::binary_mul;
    else if (n.op_type == "Div") alg = dnnl::algorithm::binary_div;
    else return false;
    const Ref ra = cx.dense_ref(a);
    const Ref rb = cx.ensure(b, ra.md);
    Ref dst = cx.new_ref(ra.md, ys, ra.dtype);
    dnnl::binary::desc d(alg, ra.md, rb.md, dst.md);
    dnnl::binary::primitive_desc pd(d, cx.make_attr(), cpu_engine());
    cx.add_primitive(n, pd, dnnl::binary(pd), {{DNNL_ARG_SRC_0, ra}, {DNNL_ARG_SRC_1, rb}, {DNNL_ARG_DST, dst}}, ra,
                     dst);
    cx.define(out, dst);
    return true;
  }
  // x op c  (or c op x for the commutative ops) as y = alpha·x + beta.
  const std::string* x = nullptr;
  float alpha = 1.f, beta = 0.f;
  if (sb && !g.is_constant(a)) {
    x = &a;
    if (n.op_type == "Add") beta = *sb;
    else if (n.op_type == "Sub") beta = -*sb;
    else if (n.op_type == "Mul") alpha = *sb;
    else return false;  // Div by c would round differently from x·(1/c)
  } else if (sa && !g.is_constant(b)) {
    x = &b;
    if (n.op_type == "Add") beta = *sa;
    else if (n.op_type == "Mul") alpha = *sa;
    else return false;
  } else {
    return false;
  }
  if (!cx.computed(*x) || cx.info(*x).shape != cx.info(out).shape) return false;
  const Ref src = cx.dense_ref(*x);
  Ref dst = cx.new_ref(src.md, ys, src.dtype);
  dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_linear, src.md, alpha,
                                beta);
  dnnl::eltwise_forward::primitive_desc pd(d, cx.make_attr(), cpu_engine());
  cx.add_primitive(n, pd, dnnl::eltwise_forward(pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}, src, dst);
  cx.define(out, dst);
  return true;
}

}  // namespace damoyolo::kernels::dnnl_ops
