// Options shared by every subcommand that loads a model, so each spells them
// the same way: --threads, --precision, --engine, --batch.
#pragma once

#include <sched.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "damoyolo/detector.h"
#include "damoyolo/optimizations.h"
#include "damoyolo/session.h"

namespace damoyolo::cli {

// Validators with messages a person can read. CLI11's own say "not in range"
// for a word and print the bound of a double (309 digits) for a negative count.
inline CLI::Validator whole_number(long long lo, long long hi = std::numeric_limits<int>::max()) {
  const std::string range = hi == std::numeric_limits<int>::max() ? ">= " + std::to_string(lo)
                                                                   : "from " + std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& s) -> std::string {
        long long v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size()) return "'" + s + "' is not a whole number";
        if (v < lo || v > hi) return s + " is out of range: give a whole number " + range;
        return {};
      },
      "INT " + range);
}

inline CLI::Validator real_number(double lo, double hi) {
  auto num = [](double v) {
    std::ostringstream o;
    o << v;
    return o.str();
  };
  const std::string range = "from " + num(lo) + " to " + num(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) return "'" + s + "' is not a number";
        if (v < lo || v > hi) return s + " is out of range: give a number " + range;
        return {};
      },
      "NUMBER " + range);
}

// The cores this process may run on: its CPU affinity (taskset, cgroup
// cpusets), not the machine's count.
inline int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

struct EngineArgs {
  int threads = 0;
  std::string precision = "fp32";
  std::string engine = "auto";
  int batch = 0;
  std::vector<std::string> disable;  // optimisation switches turned off (ablation / debugging)

  // The switches --disable takes (damoyolo/optimizations.h): the session's,
  // plus the Detector's (pre/post-processing) for commands that build one.
  static std::span<const OptimizationSwitch> switches(bool with_detector) {
    return with_detector ? optimization_switches() : optimization_switches(OptimizationScope::kSession);
  }
  static std::vector<std::string> switch_names(bool with_detector) {
    std::vector<std::string> names;
    for (const auto& s : switches(with_detector)) names.emplace_back(s.name);
    return names;
  }

  // with_detector: the command runs a Detector, so fast_nms / simd_preprocess
  // can be switched off too; elsewhere they are rejected, not silently ignored.
  void add_to(CLI::App* cmd, bool with_batch, bool with_detector) {
    cmd->add_option("--threads", threads, "Worker threads (0 = all cores; more than the cores is capped)")
        ->check(whole_number(0));
    cmd->add_option("--precision", precision, "Arithmetic precision")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    cmd->add_option("--engine", engine, "Execution engine")->check(CLI::IsMember({"auto", "optimized", "reference"}));
    if (with_batch) cmd->add_option("--batch", batch, "Images per inference call (0 = the model's)")->check(whole_number(0, 1024));
    cmd->add_option("--disable", disable,
                    "Turn optimisations off (comma list) to measure them: " + join_names(with_detector) +
                        " ('damoyolo optimizations' says what each does)")
        ->delimiter(',')
        ->check(CLI::IsMember(switch_names(with_detector)));
  }

  static std::string join_names(bool with_detector) {
    std::string s;
    for (const auto& n : switch_names(with_detector)) s += (s.empty() ? "" : ", ") + n;
    return s;
  }

  SessionOptions session_options() const {
    SessionOptions o;
    o.threads = threads;
    // More threads than cores only adds contention: oneDNN's OpenMP threads
    // spin-wait for each other, 270x slower with 1000 threads on 2 cores.
    if (threads > available_cores()) {
      static bool warned = false;
      if (!warned)
        std::cerr << "damoyolo: warning: --threads " << threads << " is more than the " << available_cores()
                  << " cores available; using " << available_cores() << "\n";
      warned = true;
      o.threads = available_cores();
    }
    o.precision = precision == "bf16" ? Precision::kBF16 : Precision::kFP32;
    o.engine = engine == "reference" ? Engine::kReference : engine == "optimized" ? Engine::kOptimized : Engine::kAuto;
    o.batch = batch;
    // Only the session's names: add_to() accepted the Detector's only where
    // detector_options() is what the command uses.
    for (const auto& name : disable) (void)set_optimization(o, name, false);
    return o;
  }

  // session_options() plus the Detector's own switches.
  DetectorOptions detector_options() const {
    DetectorOptions o;
    o.session = session_options();
    for (const auto& name : disable) (void)set_optimization(o, name, false);
    return o;
  }
};

}  // namespace damoyolo::cli
