// A one-line progress display on stderr: "[=====>    ] 12/40  8.3 img/s  ETA 3s".
// It draws only when enabled (the caller decides: stderr is a terminal, more
// than one item, not --quiet), so piped or logged output never fills with
// carriage returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace damoyolo::cli {

// True when stderr is an interactive terminal.
bool stderr_is_terminal();

class Progress {
 public:
  // total <= 0: unknown (a video without a frame count): no bar, no ETA.
  Progress(int64_t total, std::string unit, bool enabled);
  ~Progress();  // leaves the terminal on a fresh line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Redraws at most ~10 times a second (and always for the last item).
  void update(int64_t done);
  // Erases the line, so the caller can print a line of its own; the next
  // update() draws the bar again below it.
  void clear();
  void finish();
  bool enabled() const { return enabled_; }

 private:
  using Clock = std::chrono::steady_clock;
  int64_t total_;
  std::string unit_;
  bool enabled_;
  bool shown_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_{};
};

}  // namespace damoyolo::cli
