// The reference engine: evaluates nodes in order with the reference kernels,
// keeping every value in a name → Tensor map. Deliberately simple — it is the
// oracle for the optimised engine and for the ONNX conformance suite.
#include <cstring>
#include <unordered_map>

#include "common/checked_size.h"
#include "kernels/reference/registry.h"
#include "runtime/executor.h"

namespace damoyolo::runtime {
namespace {

class ReferenceModel;

class ReferenceContext final : public ExecutionContext {
 public:
  explicit ReferenceContext(const ReferenceModel& model) : model_(model) {}
  void run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override;

 private:
  const ReferenceModel& model_;
};

class ReferenceModel final : public CompiledModel {
 public:
  ReferenceModel(graph::Graph g, const SessionOptions& opts) : graph_(std::move(g)), limits_(opts.limits) {
    plan_.engine = Engine::kReference;
    plan_.precision = Precision::kFP32;  // the reference kernels compute in float32 whatever was asked
    plan_.batch = graph_.inputs.empty() || !graph_.info(graph_.inputs[0]) || graph_.info(graph_.inputs[0])->shape.empty()
                      ? 1
                      : graph_.info(graph_.inputs[0])->shape[0];
    for (const auto& [name, t] : graph_.constants) plan_.weight_bytes += t.nbytes();
    for (const auto& n : graph_.nodes) {
      PlanStep st;
      st.kind = PlanStep::Kind::kReference;
      st.op = n.op_type;
      st.nodes = {n.name};
      st.implementation = "reference";
      plan_.steps.push_back(std::move(st));
      kernels_.push_back(&kernels::ref::kernel_for(n, graph_.opset_for(n)));
      // Outputs whose shape was not known at load time (it depends on data)
      // are sized and checked against the limits at run time, before the
      // kernel allocates them.
      bool dynamic = false;
      for (const auto& o : n.outputs) {
        const graph::ValueInfo* vi = o.empty() ? nullptr : graph_.info(o);
        if (!o.empty() && (!vi || !vi->fully_known())) dynamic = true;
      }
      check_at_run_.push_back(dynamic);
    }
  }
  std::unique_ptr<ExecutionContext> create_context() const override {
    return std::make_unique<ReferenceContext>(*this);
  }
  std::vector<TensorInfo> input_infos() const override { return infos(graph_.inputs); }
  std::vector<TensorInfo> output_infos() const override { return infos(graph_.outputs); }
  Engine engine() const override { return Engine::kReference; }
  const CompiledPlan& plan() const override { return plan_; }

  const graph::Graph& graph() const { return graph_; }
  const kernels::ref::OpKernel& kernel(size_t i) const { return *kernels_[i]; }
  bool check_at_run(size_t i) const { return check_at_run_[i]; }
  const ModelLimits& limits() const { return limits_; }

 private:
  std::vector<TensorInfo> infos(const std::vector<std::string>& names) const {
    std::vector<TensorInfo> out;
    for (const auto& n : names) {
      const auto* vi = graph_.info(n);
      out.push_back(TensorInfo{n, vi ? vi->dtype : DType::kUndefined, vi ? vi->shape : Shape{}});
    }
    return out;
  }
  graph::Graph graph_;
  ModelLimits limits_;
  std::vector<const kernels::ref::OpKernel*> kernels_;
  std::vector<bool> check_at_run_;
  CompiledPlan plan_;
};

// Infers a node's output shapes from its concrete inputs and checks them
// against the limits (the kernel would allocate them next).
void check_outputs(const kernels::ref::OpKernel& kernel, const kernels::ref::OpContext& ctx,
                   const std::vector<Tensor>& args, const ModelLimits& limits) {
  std::vector<kernels::ref::InferInput> ins(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    if (!args[i].defined()) continue;
    ins[i].present = true;
    ins[i].value = &args[i];
    ins[i].info = graph::ValueInfo{args[i].dtype(), args[i].shape(), true};
  }
  std::vector<graph::ValueInfo> out = kernel.infer(ctx, ins);
  for (size_t i = 0; i < ctx.node.outputs.size() && i < out.size(); ++i)
    if (!ctx.node.outputs[i].empty() && out[i].has_shape)
      checked::check_tensor(out[i].shape, out[i].dtype, limits,
                            ctx.node.describe() + ": output '" + ctx.node.outputs[i] + "'");
}

void ReferenceContext::run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) {
  const graph::Graph& g = model_.graph();
  std::unordered_map<std::string, Tensor> env(g.constants.begin(), g.constants.end());
  for (size_t i = 0; i < g.inputs.size(); ++i) env[g.inputs[i]] = inputs[i];

  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const graph::Node& node = g.nodes[k];
    std::vector<Tensor> args(node.inputs.size());
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (node.inputs[i].empty()) continue;
      auto it = env.find(node.inputs[i]);
      if (it == env.end())
        throw Error(ErrorCode::kInternal, node.describe() + ": input '" + node.inputs[i] + "' was never computed");
      args[i] = it->second;
    }
    kernels::ref::OpContext ctx{node, g.opset_for(node)};
    if (model_.check_at_run(k)) check_outputs(model_.kernel(k), ctx, args, model_.limits());
    std::vector<Tensor> outs = model_.kernel(k).compute(ctx, args);
    for (size_t i = 0; i < node.outputs.size() && i < outs.size(); ++i)
      if (!node.outputs[i].empty()) env[node.outputs[i]] = std::move(outs[i]);
  }

  outputs.resize(g.outputs.size());
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    auto it = env.find(g.outputs[i]);
    if (it == env.end()) throw Error(ErrorCode::kInternal, "graph output '" + g.outputs[i] + "' was never computed");
    const Tensor& v = it->second;
    if (!outputs[i].defined()) {
      outputs[i] = v;
      continue;
    }
    if (outputs[i].shape() != v.shape() || outputs[i].dtype() != v.dtype())
      throw Error(ErrorCode::kInternal, "graph output '" + g.outputs[i] + "' came out as " + dtype_name(v.dtype()) +
                                            shape_to_string(v.shape()) + ", expected " +
                                            dtype_name(outputs[i].dtype()) + shape_to_string(outputs[i].shape()));
    if (v.nbytes()) std::memcpy(outputs[i].raw(), v.raw(), v.nbytes());
  }
}

}  // namespace

std::unique_ptr<CompiledModel> compile_reference(const graph::Graph& g, const SessionOptions& opts) {
  return std::make_unique<ReferenceModel>(g, opts);
}

}  // namespace damoyolo::runtime
