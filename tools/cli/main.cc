// damoyolo — DAMO-YOLO on the CPU. Thin main: subcommands live in cmd_*.cc.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <vector>

#include "commands.h"

#ifndef DAMOYOLO_CLI_WITH_VIDEO
namespace {
// `damoyolo video ...` runs bin/damoyolo-video with the same arguments: video
// I/O lives in its own executable (see tools/cli/CMakeLists.txt for why).
int forward_to_video_binary(int argc, char** argv) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  auto target = (ec ? std::filesystem::path(argv[0]) : self).parent_path() / "damoyolo-video";
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  std::string path = target.string();
  // args[0] stays as the user typed it, so usage lines read "damoyolo video".
  execv(path.c_str(), args.data());
  std::cerr << "damoyolo video: cannot run " << path << ": " << std::strerror(errno) << "\n";
  return 1;
}
}  // namespace
#endif

int main(int argc, char** argv) {
#ifndef DAMOYOLO_CLI_WITH_VIDEO
  if (argc > 1 && std::string(argv[1]) == "video") return forward_to_video_binary(argc, argv);
#endif
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
#ifdef DAMOYOLO_CLI_WITH_VIDEO
  add(damoyolo::cli::add_video_command);
#else
  // Listed for --help; running it is forwarded above before parsing.
  app.add_subcommand("video", "Detect objects in a video: annotated mp4 and per-frame JSON lines")
      ->allow_extras()
      ->prefix_command();
#endif

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
