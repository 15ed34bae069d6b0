// What the CLI says about a loaded model's compiled plan before it runs it:
// the library never prints, so a model that runs slower than it could (the
// whole model on the reference engine under --engine auto, or some nodes on
// the reference kernels) is reported here, once, on stderr.
#pragma once

#include <string>

#include "damoyolo/session.h"

namespace damoyolo::cli {

// Prints a warning when `session` fell back to the reference engine and a
// note naming the first node that runs on the reference kernels. `who` is the
// message prefix ("damoyolo detect").
void report_plan(const Session& session, const std::string& who);

}  // namespace damoyolo::cli
