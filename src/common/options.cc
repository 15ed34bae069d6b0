// The names of damoyolo/options.h's enums. Here, beside the other vocabulary
// (status, tensor, plan), not in the Session's file: the plan printer and the
// engines below the api layer name engines and precisions too.
#include "damoyolo/options.h"

namespace damoyolo {

const char* engine_name(Engine e) {
  switch (e) {
    case Engine::kAuto: return "auto";
    case Engine::kReference: return "reference";
    case Engine::kOptimized: return "optimized";
  }
  return "?";
}

const char* precision_name(Precision p) { return p == Precision::kBF16 ? "bf16" : "fp32"; }

}  // namespace damoyolo
