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
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "damoyolo/detector.h"
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

  // Every switchable optimisation, by the name --disable takes: the
  // session's, then the Detector's (pre/post-processing), which only commands
  // that build a Detector offer.
  static const std::vector<std::string>& switch_names(bool with_detector) {
    static const std::vector<std::string> session = {
        "constant_folding", "fuse_conv_activation", "fuse_conv_residual", "blocked_layout",
        "zero_copy_concat", "fuse_head",            "memory_planning",    "huge_pages"};
    static const std::vector<std::string> all = [] {
      auto v = session;
      v.insert(v.end(), {"fast_nms", "simd_preprocess"});
      return v;
    }();
    return with_detector ? all : session;
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
                    "Turn optimisations off (comma list) to measure them: " + join_names(with_detector))
        ->delimiter(',')
        ->check(CLI::IsMember(switch_names(with_detector)));
  }

  bool disabled(const std::string& name) const {
    for (const auto& d : disable)
      if (d == name) return true;
    return false;
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
    OptimizationOptions& x = o.opt;
    x.constant_folding = !disabled("constant_folding");
    x.fuse_conv_activation = !disabled("fuse_conv_activation");
    x.fuse_conv_residual = !disabled("fuse_conv_residual");
    x.blocked_layout = !disabled("blocked_layout");
    x.zero_copy_concat = !disabled("zero_copy_concat");
    x.fuse_head = !disabled("fuse_head");
    x.memory_planning = !disabled("memory_planning");
    x.huge_pages = !disabled("huge_pages");
    return o;
  }

  // session_options() plus the Detector's own switches.
  DetectorOptions detector_options() const {
    DetectorOptions o;
    o.session = session_options();
    o.fast_nms = !disabled("fast_nms");
    o.simd_preprocess = !disabled("simd_preprocess");
    return o;
  }
};

}  // namespace damoyolo::cli
