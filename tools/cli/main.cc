// damoyolo — DAMO-YOLO on the CPU. Thin main: subcommands live in cmd_*.cc.
#include <iostream>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"damoyolo — fast DAMO-YOLO inference on the CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "damoyolo 0.1.0");

  std::vector<std::pair<CLI::App*, damoyolo::cli::Runner>> commands;
  auto add = [&](damoyolo::cli::Runner (*adder)(CLI::App&)) {
    size_t before = app.get_subcommands({}).size();
    auto runner = adder(app);
    commands.emplace_back(app.get_subcommands({})[before], std::move(runner));
  };
  add(damoyolo::cli::add_info_command);
  add(damoyolo::cli::add_run_command);
  add(damoyolo::cli::add_bench_command);
  add(damoyolo::cli::add_eval_command);
  add(damoyolo::cli::add_detect_command);
  add(damoyolo::cli::add_video_command);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [sub, runner] : commands) {
    if (sub->parsed()) {
      try {
        return runner();
      } catch (const std::exception& e) {
        // Library calls return Status; this catches only tool-side surprises
        // (e.g. a filesystem error) so the user still gets a one-line message.
        std::cerr << "damoyolo: error: " << e.what() << "\n";
        return 1;
      }
    }
  }
  return 2;
}
