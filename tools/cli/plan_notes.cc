#include "plan_notes.h"

#include <iostream>

namespace damoyolo::cli {

void report_plan(const Session& session, const std::string& who) {
  const CompiledPlan& p = session.plan();
  if (!p.engine_fallback_reason.empty()) {
    std::cerr << who << ": warning: the optimised engine cannot run this model (" << p.engine_fallback_reason
              << "); every node runs on the reference engine, which is many times slower "
                 "(--engine optimized makes this an error)\n";
    return;
  }
  const int n = p.fallbacks();
  if (n == 0) return;
  for (const auto& st : p.steps) {
    if (st.kind != PlanStep::Kind::kFallback) continue;
    std::cerr << who << ": note: " << n << (n == 1 ? " node runs" : " nodes run")
              << " on the reference kernels, not oneDNN (first: " << st.op << " '"
              << (st.nodes.empty() ? "?" : st.nodes[0]) << "': " << st.reason
              << "); `damoyolo info --plan` lists them\n";
    return;
  }
}

}  // namespace damoyolo::cli
