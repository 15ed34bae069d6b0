// A node no lowering takes: its reference kernel, on plain tensors, as a step
// for that node alone. Its runtime inputs are converted to plain dense f32 (or
// kept in their own type) at its edge; its outputs are plain and later
// consumers convert them back as they need. Allocates its outputs per call,
// as reference kernels do; the DAMO-YOLO fixtures need none (the plan test
// asserts zero fallbacks for them).
#include <algorithm>
#include <cstring>

#include "kernels/dnnl/lowering.h"
#include "kernels/reference/registry.h"

namespace damoyolo::kernels::dnnl_ops {

using dnnl::memory;
using dt = memory::data_type;

namespace {

class FallbackStep final : public Step {
 public:
  graph::Node node;
  int64_t opset = 0;
  const ref::OpKernel* kernel = nullptr;
  std::vector<Tensor> constant_inputs;  // defined where input i is a constant
  std::vector<Ref> inputs;              // plain dense refs where input i is a runtime value
  std::vector<Ref> outputs;

  std::unique_ptr<BoundStep> bind(Binder&) const override { return std::make_unique<Bound>(this); }

 private:
  struct Bound final : BoundStep {
    explicit Bound(const FallbackStep* s) : step(s), in(s->inputs.size()) {}
    const FallbackStep* step;
    std::vector<Tensor> in;
    void run(RunState& rs) override {
      for (size_t i = 0; i < in.size(); ++i) {
        if (step->constant_inputs[i].defined()) {
          in[i] = step->constant_inputs[i];
        } else if (step->inputs[i].slot >= 0) {
          const Ref& r = step->inputs[i];
          in[i] = Tensor::wrap(r.dtype, r.shape, rs.slot_ptr[r.slot] + r.offset);
        }
      }
      ref::OpContext ctx{step->node, step->opset};
      std::vector<Tensor> out = step->kernel->compute(ctx, in);
      for (size_t i = 0; i < step->outputs.size(); ++i) {
        const Ref& r = step->outputs[i];
        if (r.slot < 0) continue;
        if (out[i].nbytes() != shape_numel(r.shape) * dtype_size(r.dtype))
          throw Error(ErrorCode::kInternal, step->node.describe() + ": output size differs from the planned shape");
        if (out[i].nbytes()) std::memcpy(rs.slot_ptr[r.slot] + r.offset, out[i].raw(), out[i].nbytes());
      }
    }
  };
};

dt to_dnnl(DType t) {
  switch (t) {
    case DType::kFloat32: return dt::f32;
    case DType::kBFloat16: return dt::bf16;
    case DType::kUInt8: return dt::u8;
    case DType::kInt8: return dt::s8;
    case DType::kInt32: return dt::s32;
    default: return dt::undef;
  }
}

}  // namespace

bool is_raw_io_dtype(DType t) { return t == DType::kUInt8 || t == DType::kInt8 || t == DType::kInt32; }

void lower_fallback(LoweringContext& cx, size_t ni, const std::string& reason) {
  const graph::Node& n = cx.node(ni);
  const LoweringOptions& o = cx.options();
  if (o.batch != o.model_batch)
    throw Error(ErrorCode::kUnsupported, n.describe() + ": running batch " + std::to_string(o.batch) +
                                             " on a batch-" + std::to_string(o.model_batch) +
                                             " export needs every node on the optimised path (fused head)");
  auto step = std::make_unique<FallbackStep>();
  step->plan.kind = PlanStep::Kind::kFallback;
  step->plan.op = n.attr_s("onnx_op", n.op_type);
  step->plan.nodes = {n.name};
  if (auto it = n.attrs.find("fused_nodes"); it != n.attrs.end())
    step->plan.nodes.insert(step->plan.nodes.end(), it->second.strings.begin(), it->second.strings.end());
  step->plan.implementation = "reference";
  step->plan.reason = reason;
  step->node = n;
  step->opset = cx.graph().opset_for(n);
  step->kernel = &ref::kernel_for(n, step->opset);
  std::vector<Ref> touched;
  for (const auto& in : n.inputs) {
    Tensor c;
    Ref r;
    if (in.empty()) {
    } else if (const Tensor* t = cx.graph().constant(in)) {
      c = *t;
    } else {
      r = cx.ensure_plain(in);
      touched.push_back(r);
    }
    step->constant_inputs.push_back(c);
    step->inputs.push_back(r);
  }
  for (const auto& out : n.outputs) {
    Ref r;
    if (!out.empty() && cx.graph().info(out)) {
      const graph::ValueInfo& vi = cx.info(out);
      if (to_dnnl(vi.dtype) == dt::f32) {
        r = cx.new_ref(plain_desc(vi.shape, dt::f32), vi.shape);
      } else {
        r.shape = vi.shape;
        r.dtype = vi.dtype;
        // A non-float graph output (QuantizeLinear's, say) is written straight
        // into the caller's tensor: there is no oneDNN descriptor to copy it
        // with afterwards (Compiler::compile_outputs finds it in place).
        const auto& outs = cx.graph().outputs;
        const auto it = std::find(outs.begin(), outs.end(), out);
        if (it != outs.end() && is_raw_io_dtype(vi.dtype))
          r.slot = cx.new_slot(static_cast<size_t>(shape_numel(vi.shape)) * dtype_size(vi.dtype), Slot::Kind::kOutput,
                               static_cast<int>(it - outs.begin()));
        else
          r.slot = cx.new_slot(static_cast<size_t>(shape_numel(vi.shape)) * dtype_size(vi.dtype));
        // A quantised activation gets its descriptor (row-major), so that an
        // INT8 convolution or a DequantizeLinear after it can read it.
        if (vi.dtype == DType::kUInt8 || vi.dtype == DType::kInt8) r.md = plain_desc(vi.shape, to_dnnl(vi.dtype));
      }
      cx.define(out, r);
      touched.push_back(r);
    }
    step->outputs.push_back(r);
  }
  for (const Ref& r : step->inputs)
    if (r.slot >= 0) {
      step->plan.src = LoweringContext::describe(r);
      break;
    }
  for (const Ref& r : step->outputs)
    if (r.slot >= 0) {
      step->plan.dst = LoweringContext::describe(r);
      break;
    }
  cx.add_step(std::move(step), touched);
}

}  // namespace damoyolo::kernels::dnnl_ops
