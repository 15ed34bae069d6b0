// damoyolo — DAMO-YOLO on the CPU. Thin main: subcommands live in cmd_*.cc.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <vector>

#include "commands.h"

#ifndef DAMOYOLO_CLI_WITH_VIDEO
#include <cstdlib>  // std::getenv, for forward_to_video_binary's message

namespace {
// `damoyolo video ...` runs damoyolo-video with the same arguments: video
// I/O lives in its own executable (see tools/cli/CMakeLists.txt for why).
// It is looked for
//   1. beside the real executable (/proc/self/exe, symlinks resolved): where
//      the build, `cmake --install` and the .deb put it, so normally the one
//      from the same build; a symlink to an installed damoyolo finds it too;
//   2. then in PATH: a damoyolo copied somewhere on its own still works while
//      an installed pair is in PATH.
// Failing both, the message says where it looked and what to install: the
// bare "cannot run <dir>/damoyolo-video" it used to print left a user with a
// copied binary guessing.
int forward_to_video_binary(int argc, char** argv) {
  const char* kVideo = "damoyolo-video";
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  // args[0] stays as the user typed it, so usage lines read "damoyolo video".

  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) self = argv[0];  // no /proc: the path the user typed, if it has a directory
  std::string beside;
  if (self.has_parent_path()) {
    beside = (self.parent_path() / kVideo).string();
    execv(beside.c_str(), args.data());
    if (errno != ENOENT) {  // there, but not runnable: say so rather than search on
      std::cerr << "damoyolo video: cannot run " << beside << ": " << std::strerror(errno) << "\n";
      return 1;
    }
  }
  execvp(kVideo, args.data());  // searches PATH
  if (errno != ENOENT && errno != ENOTDIR) {  // found in PATH, but not runnable (e.g. EACCES)
    std::cerr << "damoyolo video: cannot run " << kVideo << " found in PATH: " << std::strerror(errno) << "\n";
    return 1;
  }
  const char* path = std::getenv("PATH");
  std::cerr << "damoyolo video: cannot find " << kVideo << ", the executable that runs the video command.\n"
            << "  looked beside this executable: "
            << (beside.empty() ? "(its location is unknown)" : beside + " (no such file)") << "\n"
            << "  looked in PATH: " << (path ? path : "(unset; the system default)") << "\n"
            << kVideo << " must be installed beside damoyolo, as `cmake --install` and the damoyolo "
            << "Debian package do (see docs/install.md).\n";
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
