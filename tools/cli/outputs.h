// What the command line writes, and how, so that no run destroys a user's
// data or leaves a half-written file behind:
//
//  - OutputPolicy checks every output path before any work is done: an output
//    never names an input (the same file under any path, link or spelling),
//    never names another output of the run, never replaces a special file
//    (device, FIFO) and never replaces an image, a video or a model with
//    results; an output that exists already is replaced only with --overwrite.
//  - AtomicOutput writes under a hidden temporary name in the destination's
//    folder and renames it over the final name only when complete (rename is
//    atomic within a file system), so a reader sees the old file or the whole
//    new one, never a part. Without --overwrite the rename refuses to replace
//    a file that appeared meanwhile. An output never committed is removed.
//  - Interruption: SIGINT, SIGTERM, SIGHUP and SIGPIPE set a flag that the
//    command loops poll, so they stop between items and finalise what they
//    have (a playable video with the frames done, valid JSON). A second signal
//    removes the temporary files and ends the process at once.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "damoyolo/status.h"

namespace damoyolo::cli {

namespace fs = std::filesystem;

class OutputPolicy {
 public:
  // What an output holds: results (JSON, raw tensors) must never replace a
  // picture, a video or a model, even with --overwrite (`--json *.jpg` makes
  // the shell pass the first image as the JSON file); a drawn image may
  // replace an earlier drawn image.
  enum class Kind { kResults, kMedia };

  explicit OutputPolicy(bool overwrite) : overwrite_(overwrite) {}

  // A file the run reads; no output may be it.
  void add_input(const fs::path& path);
  // Checks `out` and claims it for this run. kInvalidArgument when it is an
  // input, an output already claimed, a directory or a special file, media
  // or a model for a results output, or, without overwrite, a file that
  // exists already. `what` names the option in the message ("--json").
  Status claim(const fs::path& out, const std::string& what, Kind kind = Kind::kResults);
  bool overwrite() const { return overwrite_; }

 private:
  bool overwrite_;
  std::vector<fs::path> inputs_;
  std::vector<fs::path> claimed_;  // canonical
};

// `path` resolved as far as it exists (weakly_canonical), for comparisons.
fs::path canonical_or_self(const fs::path& path);
// True when `path` is `dir` or lies below it (both compared canonically).
bool is_within(const fs::path& path, const fs::path& dir);

class AtomicOutput {
 public:
  AtomicOutput() = default;
  // Picks the temporary name: ".<stem>.damoyolo-<pid>-<n><ext>" beside
  // `final_path`, keeping the extension so encoders that choose the format by
  // name (OpenCV's imwrite, VideoWriter) still do. Nothing is created yet.
  // replace: whether commit() may replace a file that exists by then.
  AtomicOutput(fs::path final_path, bool replace);
  ~AtomicOutput();  // removes the temporary file unless committed
  AtomicOutput(AtomicOutput&& other) noexcept;
  AtomicOutput& operator=(AtomicOutput&& other) noexcept;
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  bool active() const { return !final_.empty(); }
  const fs::path& final_path() const { return final_; }
  const fs::path& temp_path() const { return temp_; }

  // For text outputs: opens the temporary file for writing.
  Status open_stream();
  std::ofstream& stream() { return stream_; }

  // Closes the stream if open, checks it, and renames the temporary file over
  // the final name. kIOError says which file could not be finished.
  Status commit();
  // Removes the temporary file (an output abandoned on error).
  void discard();

 private:
  fs::path final_, temp_;
  bool replace_ = false;
  int slot_ = -1;  // in the registry the second-signal handler cleans up
  std::ofstream stream_;
  bool committed_ = false;
};

// Installs the signal handlers (idempotent).
void install_interrupt_handlers();
// True once SIGINT, SIGTERM, SIGHUP or SIGPIPE arrived.
bool interrupted();
// 128 + the signal number, the shell's convention (130 for Ctrl-C).
int interrupted_exit_code();

}  // namespace damoyolo::cli
