// Convolution: ONNX Conv, and com.damoyolo FusedConv — a Conv with the chain
// the fusion passes folded into it (graph/passes/fuse_conv_activation.cc,
// fuse_conv_residual.cc):
//   attr scale      a scalar Mul after the conv, folded into weights and bias
//   attr post_ops   in order: "relu" | "logistic" | "swish" (eltwise post-ops)
//                   and at most one "sum": the residual input(3) added there
// One oneDNN convolution primitive whose weights are reordered once into the
// layout it chose (format_tag::any), shared across plans by the WeightCache.
// The residual becomes a sum post-op writing into the residual's own buffer
// when that buffer dies here, else a binary_add post-op reading it.
#include <algorithm>
#include <cstring>
#include <optional>

#include "common/checked_size.h"
#include "kernels/dnnl/lowering.h"

namespace damoyolo::kernels::dnnl_ops {

using dnnl::memory;
using dt = memory::data_type;

namespace {

Error unsupported(const std::string& what) { return Error(ErrorCode::kUnsupported, what); }

struct Post {
  enum Kind { kEltwise, kResidual } kind;
  dnnl::algorithm alg;
};

dnnl::algorithm eltwise_alg(const graph::Node& n, const std::string& name) {
  if (name == "relu") return dnnl::algorithm::eltwise_relu;
  if (name == "logistic") return dnnl::algorithm::eltwise_logistic;
  if (name == "swish") return dnnl::algorithm::eltwise_swish;
  throw unsupported(n.describe() + ": unknown post-op '" + name + "'");
}

void append_eltwise(dnnl::post_ops& po, dnnl::algorithm alg, float scale = 1.f) {
  // alpha: swish's beta in x·sigmoid(alpha·x) must be 1; for relu it is the
  // negative slope and must be 0. scale multiplies the result (INT8
  // requantisation).
  po.append_eltwise(scale, alg, alg == dnnl::algorithm::eltwise_swish ? 1.f : 0.f, 0.f);
}

// An INT8 convolution (graph/passes/fuse_qdq_conv.cc): the quantised input's
// and output's parameters, the file's int8 weights and their scales.
struct Int8Conv {
  dt x_type = dt::u8;
  float x_scale = 1.f;
  int32_t x_zero_point = 0;
  dt y_type = dt::undef;  // undef: float output
  float y_scale = 1.f;
  int32_t y_zero_point = 0;
  Tensor weights;              // int8 [O, I/group, kh, kw]
  std::vector<float> w_scale;  // one per output channel, or one
};

std::optional<Int8Conv> int8_conv(const LoweringContext& cx, const graph::Node& n, const Tensor& w) {
  if (!n.has_attr("x_scale")) return std::nullopt;
  const graph::Graph& g = cx.graph();
  auto it = g.dequantized.find(n.input(1));
  if (it == g.dequantized.end() || it->second.data.dtype() != DType::kInt8 || it->second.data.shape() != w.shape())
    throw unsupported(n.describe() + ": INT8 convolution without its int8 weights");
  Int8Conv q;
  const graph::ValueInfo* xi = g.info(n.input(0));
  q.x_type = xi && xi->dtype == DType::kInt8 ? dt::s8 : dt::u8;
  q.x_scale = n.attr_f("x_scale", 1.f);
  q.x_zero_point = static_cast<int32_t>(n.attr_i("x_zero_point", 0));
  if (n.has_attr("y_scale")) {
    q.y_type = n.attr_s("y_dtype", "uint8") == "int8" ? dt::s8 : dt::u8;
    q.y_scale = n.attr_f("y_scale", 1.f);
    q.y_zero_point = static_cast<int32_t>(n.attr_i("y_zero_point", 0));
  }
  q.weights = it->second.data;
  const Tensor& s = it->second.scale;
  q.w_scale.assign(s.data<float>(), s.data<float>() + s.numel());
  return q;
}

const char* post_name(dnnl::algorithm alg) {
  if (alg == dnnl::algorithm::eltwise_relu) return "relu";
  if (alg == dnnl::algorithm::eltwise_swish) return "swish";
  return "logistic";
}

// oneDNN 2.6 offers an INT8 convolution's implementations best first by its
// own ranking, which puts its AMX kernels (jit:avx512_core_amx_int8) first
// where the CPU has AMX. For DAMO-YOLO's layers — few channels, 1x1 and
// depthwise convs with a SiLU after them — those are 2-5x slower than the
// VNNI brgemm kernels on the same CPU (Intel Xeon with AMX, 2 threads; e.g.
// 16→88 1x1 at 160x160 with SiLU, u8 out: amx 1.69 ms, brgconv_1x1 vnni
// 0.74 ms; 240→80 at 10x10: 0.044 vs 0.008 ms; docs/quantization.md). So:
// the first brgemm implementation, else the first that is neither AMX nor
// oneDNN's reference, else oneDNN's first choice.
dnnl::convolution_forward::primitive_desc int8_implementation(const dnnl::convolution_forward::desc& d,
                                                              const dnnl::primitive_attr& attr) {
  dnnl::convolution_forward::primitive_desc pd(d, attr, cpu_engine());
  int index = 0, brg = -1, plain = -1;
  do {
    const std::string impl = impl_name(pd);
    if (impl.rfind("brg", 0) == 0) {
      brg = index;
      break;
    }
    if (plain < 0 && impl.find("amx") == std::string::npos && !is_reference_impl(pd)) plain = index;
    ++index;
  } while (pd.next_impl());
  const int pick = brg >= 0 ? brg : plain >= 0 ? plain : 0;
  if (pick == index && brg >= 0) return pd;
  dnnl::convolution_forward::primitive_desc chosen(d, attr, cpu_engine());
  for (int i = 0; i < pick; ++i) chosen.next_impl();
  return chosen;
}

}  // namespace

bool lower_conv(LoweringContext& cx, size_t ni) {
  const graph::Node& n = cx.node(ni);
  const graph::Graph& g = cx.graph();
  const bool fused = n.op_type == "FusedConv";
  const std::string& x = n.input(0);
  const Tensor* w = g.constant(n.input(1));
  const Tensor* b = n.input(2).empty() ? nullptr : g.constant(n.input(2));
  if (!w || w->dtype() != DType::kFloat32 || w->rank() != 4 || (!n.input(2).empty() && !b))
    throw unsupported(n.describe() + ": only constant float32 2-D convolution weights are supported");
  const std::string auto_pad = n.attr_s("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID") throw unsupported(n.describe() + ": auto_pad " + auto_pad);
  const int64_t group = n.attr_i("group", 1);
  auto strides = n.attr_ints("strides", {1, 1});
  auto pads = n.attr_ints("pads", {0, 0, 0, 0});
  auto dil = n.attr_ints("dilations", {1, 1});
  if (strides.size() != 2 || pads.size() != 4 || dil.size() != 2)
    throw unsupported(n.describe() + ": only 2-D convolutions are supported");
  // The weights and bias are copied below by the counts the weight's shape
  // gives, so they must agree with the input and each other (as the
  // reference kernel requires): never read past a short bias.
  const Shape xs = cx.shape_of(x);
  {
    if (xs.size() != 4) throw unsupported(n.describe() + ": only 2-D convolutions are supported");
    const int64_t O = w->dim(0);
    auto cin = checked::mul(w->dim(1), group);
    if (group < 1 || O % group != 0 || !cin || *cin != xs[1])
      throw Error(ErrorCode::kInvalidArgument, n.describe() + ": weight " + shape_to_string(w->shape()) +
                                                   " does not match input " + shape_to_string(xs) + " with group " +
                                                   std::to_string(group));
    if (b && (b->dtype() != DType::kFloat32 || b->numel() != O))
      throw Error(ErrorCode::kInvalidArgument, n.describe() + ": bias must have " + std::to_string(O) +
                                                   " float32 elements (one per output channel), got " +
                                                   dtype_name(b->dtype()) + shape_to_string(b->shape()));
  }

  // --- the fused chain
  const float scale = fused ? n.attr_f("scale", 1.f) : 1.f;
  std::vector<Post> posts;
  std::string residual_name;
  size_t posts_before_residual = 0;
  if (fused) {
    auto it = n.attrs.find("post_ops");
    if (it != n.attrs.end())
      for (const auto& p : it->second.strings) {
        if (p == "sum") {
          if (!residual_name.empty() || n.input(3).empty())
            throw unsupported(n.describe() + ": 'sum' post-op needs exactly one residual input");
          residual_name = n.input(3);
          posts_before_residual = posts.size();
          posts.push_back({Post::kResidual, dnnl::algorithm::binary_add});
        } else {
          posts.push_back({Post::kEltwise, eltwise_alg(n, p)});
        }
      }
    if (residual_name.empty() && !n.input(3).empty())
      throw unsupported(n.describe() + ": residual input without a 'sum' post-op");
  }
  const std::string& out = n.outputs[0];
  const std::optional<Int8Conv> q8 = int8_conv(cx, n, *w);

  // --- descriptors
  const Shape ys = cx.shape_of(out);
  // INT8: u8/s8 source, s8 weights, f32 (or the quantised output's type)
  // destination; bf16 plays no part.
  const dt cdt = q8 ? dt::f32 : cx.options().bf16 ? dt::bf16 : dt::f32;
  const dt ydt = q8 ? (q8->y_type != dt::undef ? q8->y_type : dt::f32)
                    : cx.act_dtype(out) == dt::bf16 && cdt == dt::bf16 ? dt::bf16 : dt::f32;
  const int64_t O = w->dim(0), IpG = w->dim(1), KH = w->dim(2), KW = w->dim(3);
  memory::dims wdims = group == 1 ? memory::dims{O, IpG, KH, KW} : memory::dims{group, O / group, IpG, KH, KW};
  const auto wtag = group == 1 ? memory::format_tag::oihw : memory::format_tag::goihw;
  memory::dims mstrides(strides.begin(), strides.end());
  memory::dims mdil = {dil[0] - 1, dil[1] - 1};
  memory::dims pl = {pads[0], pads[1]}, pr = {pads[2], pads[3]};
  if (auto_pad == "VALID") pl = pr = {0, 0};
  const memory::desc src_any = cx.any_desc(xs, q8 ? q8->x_type : cdt);
  const memory::desc w_any(wdims, q8 ? dt::s8 : cdt, memory::format_tag::any);
  const memory::desc b_md({O}, dt::f32, memory::format_tag::x);

  // Residual: in place (sum) when the residual's buffer is ours to overwrite.
  std::optional<Ref> residual;
  bool residual_in_place = false;
  if (!residual_name.empty()) {
    if (!cx.computed(residual_name)) throw unsupported(n.describe() + ": residual not computed before the conv");
    residual = cx.dense_ref(residual_name);
    const Slot& rs = cx.slot(residual->slot);
    // In place needs every other reader of the residual to have run already
    // (they precede this conv in the step list) and nobody to read it later —
    // this conv included: when the residual is also its source, writing the
    // sum into it would overwrite what the convolution is still reading.
    bool others_done = x != residual_name;
    for (size_t c : cx.consumers(residual_name))
      if (c != ni && !cx.done(c)) others_done = false;
    residual_in_place = others_done && !cx.is_output(residual_name) && rs.kind == Slot::Kind::kArena &&
                        rs.owners == 1 && !residual->view && residual->md.data_type() == ydt;
  }

  // INT8 requantisation (a quantised output): after the last activation (its
  // eltwise scale), or folded into the output scales when there is none.
  size_t last_eltwise = posts.size();
  for (size_t i = 0; i < posts.size(); ++i)
    if (posts[i].kind == Post::kEltwise) last_eltwise = i;
  const bool requant_in_eltwise = q8 && q8->y_type != dt::undef && last_eltwise < posts.size();

  // posts[0, count) as post-ops; the residual as sum or binary_add.
  auto build = [&](size_t count, bool sum_in_place, const memory::desc& dst_md) {
    dnnl::post_ops po;
    for (size_t i = 0; i < count; ++i) {
      const Post& p = posts[i];
      if (p.kind == Post::kEltwise)
        append_eltwise(po, p.alg, requant_in_eltwise && i == last_eltwise ? 1.f / q8->y_scale : 1.f);
      else if (sum_in_place) po.append_sum(1.f);
      else po.append_binary(dnnl::algorithm::binary_add, residual->md);
    }
    dnnl::primitive_attr attr = cx.make_attr();
    attr.set_post_ops(po);
    if (q8) {
      // oneDNN 2.6: dst = post_ops(output_scale[o] · (Σ (x - x_zp)·w + bias)),
      // then + dst_zp, rounded and saturated to the destination type.
      std::vector<float> oscale(q8->w_scale.size());
      for (size_t o = 0; o < oscale.size(); ++o) {
        oscale[o] = q8->x_scale * q8->w_scale[o] * scale;
        if (q8->y_type != dt::undef && !requant_in_eltwise) oscale[o] /= q8->y_scale;
      }
      attr.set_output_scales(oscale.size() > 1 ? 1 << 1 : 0, oscale);
      if (q8->x_zero_point != 0) attr.set_zero_points(DNNL_ARG_SRC, 0, {q8->x_zero_point});
      if (q8->y_zero_point != 0) attr.set_zero_points(DNNL_ARG_DST, 0, {q8->y_zero_point});
    }
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_any,
                                      w_any, b_md, dst_md, mstrides, mdil, pl, pr);
    if (!q8) return dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
    return int8_implementation(d, attr);
  };
  dnnl::convolution_forward::primitive_desc pd;
  bool sum_mode = false;
  // split: the residual and what follows it run as a separate binary step
  // after the conv (see below).
  bool split = false;
  if (residual && residual_in_place) {
    try {
      pd = build(posts.size(), true, residual->md);
      sum_mode = !is_reference_impl(pd);
    } catch (const dnnl::error&) {
    }
  }
  dt conv_dt = ydt;
  if (!sum_mode) {
    try {
      pd = build(posts.size(), false, cx.any_desc(ys, ydt));
      // A full-tensor binary post-op drives oneDNN 2.6 off brgconv onto a
      // gemm convolution in plain layout (reorders around it, ~3x slower):
      // then the conv stops before the residual, and the Add (with the
      // activations after it) runs as its own binary step. (INT8 convs are
      // jit:*_int8 or brg; only a gemm or reference one is split.)
      const std::string impl = impl_name(pd);
      const bool slow = q8 ? impl.rfind("gemm", 0) == 0 || is_reference_impl(pd) : impl.rfind("brg", 0) != 0;
      if (residual && slow) {
        split = true;
        conv_dt = cdt;  // the intermediate is read only by the binary step, which takes bf16
        pd = build(posts_before_residual, false, cx.any_desc(ys, conv_dt));
      }
    } catch (const dnnl::error& e) {
      throw unsupported(n.describe() + ": oneDNN has no convolution for it (" + e.what() + ")");
    }
  }
  // oneDNN's reference INT8 convolution is far slower than the float path;
  // the reference kernel (dequantise, float conv, quantise) is the honest
  // fallback and the plan names it.
  if (q8 && is_reference_impl(pd))
    throw unsupported(n.describe() + ": oneDNN has only its reference INT8 convolution for it");

  // --- weights and bias, reordered (and scaled) once per model: another
  // plan of this model (another batch size) may have packed them already
  dnnl::memory wmem, bmem;
  WeightCache* cache = cx.weights();
  if (q8 && (!cache || !cache->find(n.name, scale, pd.weights_desc(), wmem, bmem))) {
    // The file's int8 weights as they are; the bias in the accumulator's
    // units (oneDNN adds it before the output scale): B / (x_scale·w_scale[o]),
    // which for a QDQ model's int32 bias is that integer again.
    dnnl::stream s(cpu_engine());
    const Tensor& wq = q8->weights;
    dnnl::memory wuser(memory::desc(wdims, dt::s8, wtag), cpu_engine(), const_cast<void*>(wq.raw()));
    wmem = dnnl::memory(pd.weights_desc(), cpu_engine());
    dnnl::reorder(wuser, wmem).execute(s, wuser, wmem);
    bmem = dnnl::memory(b_md, cpu_engine());
    float* bp = static_cast<float*>(bmem.get_data_handle());
    for (int64_t o = 0; o < O; ++o)
      bp[o] = b ? b->data<float>()[o] / (q8->x_scale * q8->w_scale[q8->w_scale.size() > 1 ? o : 0]) : 0.f;
    s.wait();
    if (cache) cache->add(n.name, scale, pd.weights_desc(), wmem, bmem);
  } else if (!q8 && (!cache || !cache->find(n.name, scale, pd.weights_desc(), wmem, bmem))) {
    std::vector<float> wv(w->data<float>(), w->data<float>() + w->numel());
    std::vector<float> bv(O, 0.f);
    if (b) std::copy(b->data<float>(), b->data<float>() + b->numel(), bv.begin());  // numel == O, checked above
    if (scale != 1.f) {
      for (float& v : wv) v *= scale;
      for (float& v : bv) v *= scale;
    }
    dnnl::stream s(cpu_engine());
    dnnl::memory wuser(memory::desc(wdims, dt::f32, wtag), cpu_engine(), wv.data());
    wmem = dnnl::memory(pd.weights_desc(), cpu_engine());
    dnnl::reorder(wuser, wmem).execute(s, wuser, wmem);
    bmem = dnnl::memory(b_md, cpu_engine());
    if (!bv.empty()) std::memcpy(bmem.get_data_handle(), bv.data(), bv.size() * sizeof(float));
    s.wait();
    if (cache) cache->add(n.name, scale, pd.weights_desc(), wmem, bmem);
  }

  // --- source in the chosen layout, destination buffer
  Ref src = cx.ensure(x, pd.src_desc());
  Ref dst;
  if (sum_mode) {
    dst = *residual;  // the output takes over the residual's (now dead) buffer
    dst.shape = ys;
    cx.slot(dst.slot).owners--;
  } else {
    dst = cx.new_ref(pd.dst_desc(), ys,
                     conv_dt == dt::bf16 ? DType::kBFloat16
                     : conv_dt == dt::u8 ? DType::kUInt8
                     : conv_dt == dt::s8 ? DType::kInt8
                                         : DType::kFloat32);
  }

  std::vector<std::string> post_names;
  if (q8) post_names.push_back(q8->x_zero_point != 0 ? "int8 (u8 source, zero point)" : "int8");
  if (scale != 1.f) post_names.push_back("scale");
  const size_t conv_posts = split ? posts_before_residual : posts.size();
  for (size_t i = 0; i < conv_posts; ++i)
    post_names.push_back(posts[i].kind == Post::kResidual ? (sum_mode ? "sum" : "binary_add")
                                                          : post_name(posts[i].alg));
  std::vector<std::pair<int, Ref>> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  if (residual && !sum_mode && !split)
    args.push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP(static_cast<int>(posts_before_residual)) | DNNL_ARG_SRC_1,
                    *residual});
  if (q8 && q8->y_type != dt::undef) post_names.push_back("requantize");
  cx.add_primitive(n, pd, dnnl::convolution_forward(pd), std::move(args), src, dst,
                   {{DNNL_ARG_WEIGHTS, wmem}, {DNNL_ARG_BIAS, bmem}}, std::move(post_names));

  if (split) {
    // conv → (+ residual, then the remaining activations as post-ops of the
    // binary primitive), in the conv's layout.
    const Ref rb = cx.ensure(residual_name, dst.md);
    dnnl::post_ops po;
    std::vector<std::string> names;
    for (size_t i = posts_before_residual + 1; i < posts.size(); ++i) {
      append_eltwise(po, posts[i].alg);
      names.push_back(post_name(posts[i].alg));
    }
    dnnl::primitive_attr attr = cx.make_attr();
    attr.set_post_ops(po);
    // format_tag::any: the binary primitive writes in its source's layout.
    dnnl::binary::desc d(dnnl::algorithm::binary_add, dst.md, rb.md,
                         memory::desc(to_dims(ys), ydt, memory::format_tag::any));
    dnnl::binary::primitive_desc bpd(d, attr, cpu_engine());
    Ref y = cx.new_ref(bpd.dst_desc(), ys, ydt == dt::bf16 ? DType::kBFloat16 : DType::kFloat32);
    cx.add_primitive(n, bpd, dnnl::binary(bpd), {{DNNL_ARG_SRC_0, dst}, {DNNL_ARG_SRC_1, rb}, {DNNL_ARG_DST, y}},
                     dst, y, {}, std::move(names));
    // The nodes are divided between the two steps: the conv's chain up to
    // the residual Add, then the Add and the activations after it.
    std::vector<std::string> fused_nodes;
    if (auto it = n.attrs.find("fused_nodes"); it != n.attrs.end()) fused_nodes = it->second.strings;
    const size_t add_at = std::min(fused_nodes.size(), static_cast<size_t>(std::max<int64_t>(0, n.attr_i("residual_node", 0))));
    std::vector<PlanStep>& plan = cx.plan();
    PlanStep& conv_entry = plan[plan.size() - 2];
    conv_entry.nodes.assign(1, n.name);
    conv_entry.nodes.insert(conv_entry.nodes.end(), fused_nodes.begin(), fused_nodes.begin() + add_at);
    PlanStep& add_entry = plan.back();
    add_entry.op = "Add";
    add_entry.nodes.assign(fused_nodes.begin() + add_at, fused_nodes.end());
    cx.define(out, y);
    return true;
  }
  cx.define(out, dst);
  return true;
}

}  // namespace damoyolo::kernels::dnnl_ops
