// damoyolo — DAMO-YOLO on the CPU. Thin main: subcommands live in cmd_*.cc.
#include <unistd.h>

#include <algorithm>
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

namespace {

const char* const kExitCodes =
    "Exit status: 0 success; 1 a failure (an input that could not be processed, an error while running); "
    "2 a usage error (unknown command or option, bad value); 128 + the signal when interrupted by SIGINT "
    "(Ctrl-C: 130), SIGTERM (143), SIGHUP or SIGPIPE, with the outputs finalised.";

// Levenshtein distance, for "did you mean" on a mistyped command.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

int main(int argc, char** argv) {
#ifndef DAMOYOLO_CLI_WITH_VIDEO
  if (argc > 1 && std::string(argv[1]) == "video") return forward_to_video_binary(argc, argv);
#endif
  CLI::App app{"damoyolo — fast DAMO-YOLO inference on the CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "damoyolo 0.1.0");
  app.footer(kExitCodes);
  // Every option's default shows in --help; subcommands inherit this.
  app.option_defaults()->always_capture_default();

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
  add(damoyolo::cli::add_serve_command);
  add(damoyolo::cli::add_quantize_command);
  add(damoyolo::cli::add_optimizations_command);

  // A word where the command goes that is no command: say which one was
  // probably meant, rather than CLI11's "A subcommand is required".
  if (argc > 1 && argv[1][0] != '-') {
    const std::string word = argv[1];
    if (word == "help") {
      std::cerr << "damoyolo: for help, run 'damoyolo --help' or 'damoyolo COMMAND --help'\n";
      return 2;
    }
    std::string best, all;
    size_t best_d = 3;  // suggest only close matches (two edits at most)
    for (CLI::App* sub : app.get_subcommands({})) {
      const std::string& name = sub->get_name();
      all += (all.empty() ? "" : ", ") + name;
      if (name == word) best_d = 0;
      const size_t d = name.rfind(word, 0) == 0 ? 1 : edit_distance(word, name);
      if (best_d > 0 && d < best_d) best_d = d, best = name;
    }
    if (best_d > 0) {
      std::cerr << "damoyolo: unknown command '" << word << "'"
                << (best.empty() ? std::string() : "; did you mean '" + best + "'?") << "\n"
                << "commands: " << all << " (damoyolo --help)\n";
      return 2;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2, as documented
    // (CLI11's own codes, 105-114, mean nothing to a script).
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
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
