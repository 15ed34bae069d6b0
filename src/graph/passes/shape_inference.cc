#include <unordered_map>
#include <unordered_set>

#include "common/checked_size.h"
#include "graph/passes/passes.h"
#include "graph/ops/op_schema.h"

namespace damoyolo::graph {


void set_input_batch(Graph& g, int64_t batch) {
  for (const auto& in : g.inputs) {
    auto& info = g.values[in];
    if (info.has_shape && !info.shape.empty()) info.shape[0] = batch;
  }
}

void infer_shapes_and_fold(Graph& g, bool fold, bool require_static_shapes, const ModelLimits& limits,
                           const Evaluator& evaluate) {
  if (!evaluate) throw Error(ErrorCode::kInternal, "infer_shapes_and_fold: no evaluator was given");
  for (const auto& in : g.inputs) {
    const ValueInfo* info = g.info(in);
    if (info && info->has_shape) checked::check_tensor(info->shape, info->dtype, limits, "graph input '" + in + "'");
    if (require_static_shapes && (!info || !info->fully_known()))
      throw Error(ErrorCode::kUnsupported,
                  "graph input '" + in + "' has a dynamic or unknown shape " +
                      (info && info->has_shape ? shape_to_string(info->shape) : std::string("(none)")) +
                      " that the runtime cannot resolve (damoyolo needs static input shapes)");
  }

  // Without folding, the nodes that folding would remove stay in the graph,
  // but their values are still computed here (into `known`, not the graph's
  // constants) so that shape inference sees them: a Reshape whose shape comes
  // from Shape -> Gather -> Concat still gets a static output shape.
  std::unordered_map<std::string, Tensor> known;
  auto value_of = [&](const std::string& name) -> const Tensor* {
    if (const Tensor* c = g.constant(name)) return c;
    auto it = known.find(name);
    return it == known.end() ? nullptr : &it->second;
  };

  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (auto& node : g.nodes) {
    const int64_t opset = g.opset_for(node);
    const OpSchema& schema = schema_for(node, opset);
    OpContext ctx{node, opset};

    std::vector<InferInput> ins(node.inputs.size());
    bool all_known = true;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const std::string& name = node.inputs[i];
      if (name.empty()) continue;
      ins[i].present = true;
      if (const Tensor* c = value_of(name)) {
        ins[i].value = c;
        ins[i].info = ValueInfo{c->dtype(), c->shape(), true};
      } else {
        all_known = false;
        if (const ValueInfo* vi = g.info(name)) ins[i].info = *vi;
      }
    }

    // Every output's shape is checked against the limits before the node is
    // folded (evaluated) or any engine sees it: a hostile shape fails here
    // with the node's name instead of allocating or reaching oneDNN.
    std::vector<ValueInfo> out_infos = schema.infer(ctx, ins);
    for (size_t i = 0; i < node.outputs.size() && i < out_infos.size(); ++i)
      if (!node.outputs[i].empty() && out_infos[i].has_shape)
        checked::check_tensor(out_infos[i].shape, out_infos[i].dtype, limits,
                              node.describe() + ": output '" + node.outputs[i] + "'");

    // Shape of a statically shaped value is a constant even though the value isn't.
    bool shape_of_known = node.op_type == "Shape" && ins.size() == 1 && ins[0].info.fully_known();
    if (all_known || shape_of_known) {
      std::vector<Tensor> args(node.inputs.size());
      for (size_t i = 0; i < node.inputs.size(); ++i) {
        if (!ins[i].present) continue;
        if (ins[i].value) args[i] = *ins[i].value;
        // Shape reads only the dims: no buffer (the value may be gigabytes).
        else args[i] = Tensor::wrap(ins[i].info.dtype, ins[i].info.shape, nullptr);
      }
      std::vector<Tensor> outs = evaluate(node, args, opset);
      if (outs.size() < node.outputs.size())
        throw Error(ErrorCode::kInternal, node.describe() + ": evaluator returned too few outputs");
      // A Constant node is a literal, not a computation: it becomes a constant
      // with folding off too (the optimised engine needs constant weights and
      // scalars wherever the file spells them as Constant nodes).
      const bool fold_node = fold || (node.op_type == "Constant" && node.domain.empty());
      // A dequantised constant (a QDQ model's weights and biases): remember
      // the integers and scales it came from for the INT8 convolution.
      if (fold_node && node.op_type == "DequantizeLinear" && node.domain.empty() && !node.outputs[0].empty() &&
          args.size() >= 2 && args[0].defined() && args[1].defined()) {
        QuantizedConstant q{args[0], args[1], args.size() > 2 ? args[2] : Tensor(), node.attr_i("axis", 1)};
        g.dequantized[node.outputs[0]] = std::move(q);
      }
      for (size_t i = 0; i < node.outputs.size(); ++i) {
        if (node.outputs[i].empty()) continue;
        g.values[node.outputs[i]] = ValueInfo{outs[i].dtype(), outs[i].shape(), true};
        if (fold_node) g.constants[node.outputs[i]] = std::move(outs[i]);
        else known[node.outputs[i]] = std::move(outs[i]);
      }
      if (fold_node) continue;  // the node is gone; its outputs are constants now
      kept.push_back(std::move(node));  // runs on every inference; its value only informed the shapes
      continue;
    }

    for (size_t i = 0; i < node.outputs.size() && i < out_infos.size(); ++i) {
      if (node.outputs[i].empty()) continue;
      if (require_static_shapes && !out_infos[i].fully_known())
        throw Error(ErrorCode::kUnsupported,
                    node.describe() + ": the shape of output '" + node.outputs[i] +
                        "' depends on data the runtime cannot resolve at load time (dynamic dimension)");
      g.values[node.outputs[i]] = out_infos[i];
    }
    kept.push_back(std::move(node));
  }
  g.nodes = std::move(kept);
}

void eliminate_identity(Graph& g) {
  std::unordered_set<std::string> graph_outputs(g.outputs.begin(), g.outputs.end());
  std::unordered_set<std::string> graph_inputs(g.inputs.begin(), g.inputs.end());
  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    Node& node = g.nodes[n];
    if (node.op_type != "Identity" || node.inputs.size() != 1 || node.outputs.size() != 1) {
      kept.push_back(std::move(node));
      continue;
    }
    const std::string src = node.inputs[0];
    const std::string dst = node.outputs[0];
    if (graph_outputs.count(dst)) {
      // y is a graph output: keep its name by renaming x to y instead, when x is
      // an internal value produced by exactly one node and not itself an output.
      if (graph_inputs.count(src) || g.is_constant(src) || graph_outputs.count(src)) {
        kept.push_back(std::move(node));
        continue;
      }
      auto rename = [&](std::string& v) { if (v == src) v = dst; };
      for (auto& other : kept) { for (auto& o : other.outputs) rename(o); for (auto& i : other.inputs) rename(i); }
      for (size_t m = n + 1; m < g.nodes.size(); ++m) for (auto& i : g.nodes[m].inputs) rename(i);
      continue;
    }
    for (size_t m = n + 1; m < g.nodes.size(); ++m)
      for (auto& i : g.nodes[m].inputs)
        if (i == dst) i = src;
  }
  g.nodes = std::move(kept);
}

void eliminate_dead_nodes(Graph& g) {
  std::unordered_set<std::string> live(g.outputs.begin(), g.outputs.end());
  std::vector<bool> keep(g.nodes.size(), false);
  for (size_t k = g.nodes.size(); k-- > 0;) {
    const Node& node = g.nodes[k];
    bool needed = false;
    for (const auto& o : node.outputs) needed |= (!o.empty() && live.count(o));
    if (!needed) continue;
    keep[k] = true;
    for (const auto& i : node.inputs)
      if (!i.empty()) live.insert(i);
  }
  std::vector<Node> kept;
  for (size_t k = 0; k < g.nodes.size(); ++k)
    if (keep[k]) kept.push_back(std::move(g.nodes[k]));
  g.nodes = std::move(kept);
  for (auto it = g.constants.begin(); it != g.constants.end();) {
    if (!live.count(it->first)) it = g.constants.erase(it);
    else ++it;
  }
  for (auto it = g.dequantized.begin(); it != g.dequantized.end();) {
    if (!g.constants.count(it->first)) it = g.dequantized.erase(it);
    else ++it;
  }
}

void mark_noop_casts_as_identity(Graph& g) {
  // Cast(x, to=T) where x is already T (torch's .float()/type_as on float data).
  for (auto& node : g.nodes) {
    if (node.op_type != "Cast" || node.inputs.size() != 1) continue;
    const ValueInfo* in = g.info(node.inputs[0]);
    if (in && in->dtype != DType::kUndefined && static_cast<int64_t>(in->dtype) == node.attr_i("to", -1)) {
      node.op_type = "Identity";
      node.attrs.clear();
    }
  }
}

void run_standard_passes(Graph& g, const PassOptions& options, const Evaluator& evaluate) {
  eliminate_identity(g);
  infer_shapes_and_fold(g, options.constant_folding, options.require_static_shapes, options.limits, evaluate);
  mark_noop_casts_as_identity(g);
  eliminate_identity(g);
  eliminate_dead_nodes(g);
}

}  // namespace damoyolo::graph
