// The damoyolo command line: one file per subcommand, each adding itself to
// the CLI11 app. main.cc lists them; shared option handling lives in options.h.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace damoyolo::cli {

// Each returns the callback to run when its subcommand is chosen; the callback
// returns the process exit status.
using Runner = std::function<int()>;

Runner add_info_command(CLI::App& app);    // cmd_info.cc
Runner add_run_command(CLI::App& app);     // cmd_run.cc
Runner add_detect_command(CLI::App& app);  // cmd_detect.cc
Runner add_bench_command(CLI::App& app);   // cmd_bench.cc
Runner add_eval_command(CLI::App& app);    // cmd_eval.cc
Runner add_video_command(CLI::App& app);   // cmd_video.cc
Runner add_serve_command(CLI::App& app);   // cmd_serve.cc
Runner add_quantize_command(CLI::App& app);  // cmd_quantize.cc
Runner add_optimizations_command(CLI::App& app);  // cmd_optimizations.cc

}  // namespace damoyolo::cli
