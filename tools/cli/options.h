// Options shared by every subcommand that loads a model, so each spells them
// the same way: --threads, --precision, --engine, --batch.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <string>

#include "damoyolo/session.h"

namespace damoyolo::cli {

struct EngineArgs {
  int threads = 0;
  std::string precision = "fp32";
  std::string engine = "auto";
  int batch = 0;

  void add_to(CLI::App* cmd, bool with_batch = false) {
    cmd->add_option("--threads", threads, "Worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--precision", precision, "Arithmetic precision")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    cmd->add_option("--engine", engine, "Execution engine")->check(CLI::IsMember({"auto", "optimized", "reference"}));
    if (with_batch) cmd->add_option("--batch", batch, "Images per inference call")->check(CLI::PositiveNumber);
  }

  SessionOptions session_options() const {
    SessionOptions o;
    o.threads = threads;
    o.precision = precision == "bf16" ? Precision::kBF16 : Precision::kFP32;
    o.engine = engine == "reference" ? Engine::kReference : engine == "optimized" ? Engine::kOptimized : Engine::kAuto;
    o.batch = batch;
    return o;
  }
};

}  // namespace damoyolo::cli
