#include "damoyolo/plan.h"

#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "damoyolo/options.h"  // engine_name, precision_name

namespace damoyolo {

const char* plan_step_kind_name(PlanStep::Kind k) {
  switch (k) {
    case PlanStep::Kind::kPrimitive: return "primitive";
    case PlanStep::Kind::kReorder: return "reorder";
    case PlanStep::Kind::kFusedHead: return "fused_head";
    case PlanStep::Kind::kFallback: return "fallback";
    case PlanStep::Kind::kView: return "view";
    case PlanStep::Kind::kReference: return "reference";
  }
  return "?";
}

namespace {

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// Node lists of fused steps can be long (the head replaces ~100 nodes): the
// text form names the first and says how many more (--json lists them all).
std::string short_nodes(const std::vector<std::string>& nodes) {
  if (nodes.empty()) return "";
  return nodes[0] + (nodes.size() > 1 ? " (+" + std::to_string(nodes.size() - 1) + " fused)" : "");
}

}  // namespace

std::string CompiledPlan::to_text() const {
  std::ostringstream o;
  o << "engine " << engine_name(engine) << ", " << precision_name(precision) << ", batch " << batch;
  if (threads > 0) o << ", " << threads << " thread(s)";
  o << ": " << steps.size() << " steps (" << count(PlanStep::Kind::kPrimitive) << " primitives, " << reorders()
    << " reorders, " << count(PlanStep::Kind::kFusedHead) << " fused head, " << count(PlanStep::Kind::kView)
    << " views, " << fallbacks() << " fallbacks";
  if (count(PlanStep::Kind::kReference)) o << ", " << count(PlanStep::Kind::kReference) << " reference";
  o << ")\n";
  if (!engine_fallback_reason.empty()) o << "optimised engine not used: " << engine_fallback_reason << "\n";
  if (engine == Engine::kOptimized)
    o << "batch separable: " << (batch_separable ? "yes" : "no, " + batch_separable_why) << "\n";
  o << "arena " << arena_bytes << " B + scratchpad " << scratchpad_bytes << " B per context; weights "
    << weight_bytes << " B shared\n";
  if (!passes.empty()) {
    o << "passes:";
    for (const PlanPass& p : passes) o << " " << p.name << " " << p.rewrites;
    o << " (rewrites; " << passes.back().nodes_after << " nodes after)\n";
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    const PlanStep& s = steps[i];
    o << std::setw(4) << i << "  " << std::left << std::setw(11) << plan_step_kind_name(s.kind) << std::setw(13) << s.op
      << std::right;
    if (s.kind == PlanStep::Kind::kReorder) o << " (" << s.purpose << ")";
    else o << " " << short_nodes(s.nodes);
    if (!s.implementation.empty()) o << "  [" << s.implementation << "]";
    if (!s.post_ops.empty()) o << " +" << join(s.post_ops, "+");
    if (!s.src.empty() || !s.dst.empty()) o << "  " << s.src << " -> " << s.dst;
    if (!s.reason.empty()) o << "\n        why: " << s.reason;
    o << "\n";
  }
  return o.str();
}

std::string CompiledPlan::to_json(int indent) const {
  nlohmann::ordered_json j;
  j["engine"] = engine_name(engine);
  j["precision"] = precision_name(precision);
  j["batch"] = batch;
  j["threads"] = threads;
  j["batch_separable"] = batch_separable;
  if (!batch_separable) j["batch_separable_why"] = batch_separable_why;
  j["engine_fallback_reason"] = engine_fallback_reason;
  j["arena_bytes"] = arena_bytes;
  j["scratchpad_bytes"] = scratchpad_bytes;
  j["weight_bytes"] = weight_bytes;
  j["counts"] = {{"steps", steps.size()},
                 {"primitive", count(PlanStep::Kind::kPrimitive)},
                 {"reorder", reorders()},
                 {"fused_head", count(PlanStep::Kind::kFusedHead)},
                 {"view", count(PlanStep::Kind::kView)},
                 {"fallback", fallbacks()},
                 {"reference", count(PlanStep::Kind::kReference)}};
  auto passes_json = nlohmann::ordered_json::array();
  for (const PlanPass& p : passes)
    passes_json.push_back({{"name", p.name}, {"rewrites", p.rewrites}, {"nodes_after", p.nodes_after}});
  j["passes"] = std::move(passes_json);
  auto arr = nlohmann::ordered_json::array();
  for (const PlanStep& s : steps) {
    nlohmann::ordered_json e;
    e["kind"] = plan_step_kind_name(s.kind);
    e["op"] = s.op;
    e["nodes"] = s.nodes;
    e["implementation"] = s.implementation;
    if (!s.post_ops.empty()) e["post_ops"] = s.post_ops;
    e["src"] = s.src;
    e["dst"] = s.dst;
    if (!s.purpose.empty()) e["purpose"] = s.purpose;
    if (!s.reason.empty()) e["reason"] = s.reason;
    arr.push_back(std::move(e));
  }
  j["steps"] = std::move(arr);
  // Node names come from the model file: never let a bad byte throw here.
  return j.dump(indent, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace damoyolo
