// Placeholder until the oneDNN engine lands: reports itself unsupported so
// Engine::kAuto falls back to the reference engine.
#include "runtime/executor.h"

namespace damoyolo::runtime {
std::unique_ptr<CompiledModel> compile_optimized(const graph::Graph&, const SessionOptions&) {
  throw Error(ErrorCode::kUnsupported, "the optimized engine is not built yet");
}
}  // namespace damoyolo::runtime
