// damoyolo optimizations [--names] [--session] [--json]: the optimisation
// switches --disable takes, from the library's table (damoyolo/optimizations.h):
// what each does and what runs instead when it is off. --names is for scripts
// (bench/accuracy_ablation.sh reads it).
#include <iostream>
#include <nlohmann/json.hpp>
#include <string_view>

#include "commands.h"
#include "damoyolo/optimizations.h"

namespace damoyolo::cli {

namespace {
struct OptimizationsArgs {
  bool names = false;
  bool session_only = false;
  bool json = false;
};

// `text` after `lead`, wrapped at spaces to `width` columns, continuation
// lines indented like the first.
void print_wrapped(std::string_view lead, std::string_view text, size_t width = 100) {
  const std::string indent(lead.size(), ' ');
  std::string line(lead);
  size_t used = lead.size();
  while (!text.empty()) {
    const size_t space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (used > indent.size() && used + 1 + word.size() > width) {
      std::cout << line << "\n";
      line = indent;
      used = indent.size();
    }
    if (used > indent.size()) line += ' ', ++used;
    line += word;
    used += word.size();
  }
  std::cout << line << "\n";
}

int run_optimizations(const OptimizationsArgs& a) {
  const auto switches = a.session_only ? optimization_switches(OptimizationScope::kSession) : optimization_switches();
  if (a.names) {
    for (const auto& s : switches) std::cout << s.name << "\n";
    return 0;
  }
  if (a.json) {
    auto arr = nlohmann::ordered_json::array();  // keys in the order above
    for (const auto& s : switches)
      arr.push_back({{"name", s.name},
                     {"scope", optimization_scope_name(s.scope)},
                     {"description", s.description},
                     {"when_off", s.when_off}});
    std::cout << arr.dump(2) << "\n";
    return 0;
  }
  std::cout << "Every optimisation is on by default; --disable NAME[,NAME...] turns them off.\n";
  for (OptimizationScope scope : {OptimizationScope::kSession, OptimizationScope::kDetector}) {
    if (a.session_only && scope != OptimizationScope::kSession) continue;
    std::cout << "\n"
              << (scope == OptimizationScope::kSession
                      ? "Session (every command that loads a model: run, bench, detect, video, eval):"
                      : "Detector (detect, video and eval, which pre- and post-process images):")
              << "\n";
    for (const auto& s : optimization_switches(scope)) {
      std::cout << "  " << s.name << "\n";
      print_wrapped("      on:  ", s.description);
      print_wrapped("      off: ", s.when_off);
    }
  }
  return 0;
}
}  // namespace

Runner add_optimizations_command(CLI::App& app) {
  auto args = std::make_shared<OptimizationsArgs>();
  auto* cmd = app.add_subcommand("optimizations",
                                 "List the optimisation switches --disable takes: what each does, what runs when off");
  cmd->add_flag("--names", args->names, "Only the names, one per line (for scripts)");
  cmd->add_flag("--session", args->session_only,
                "Only the session's switches (all that run and bench take; detect, video and eval take all)");
  cmd->add_flag("--json", args->json, "Print as JSON: [{name, scope, description, when_off}]");
  return [args] { return run_optimizations(*args); };
}

}  // namespace damoyolo::cli
