#include "progress.h"

#include <unistd.h>

#include <cstdio>

namespace damoyolo::cli {

bool stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

Progress::Progress(int64_t total, std::string unit, bool enabled)
    : total_(total), unit_(std::move(unit)), enabled_(enabled) {}

Progress::~Progress() { finish(); }

void Progress::update(int64_t done) {
  if (!enabled_) return;
  const auto now = Clock::now();
  const bool last = total_ > 0 && done >= total_;
  if (!last && shown_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double rate = secs > 0 ? done / secs : 0;
  char line[256];
  if (total_ > 0) {
    constexpr int kWidth = 28;
    const int filled = static_cast<int>(kWidth * static_cast<double>(done) / static_cast<double>(total_));
    char bar[kWidth + 1];
    for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
    bar[kWidth] = '\0';
    const double eta = rate > 0 ? (total_ - done) / rate : 0;
    std::snprintf(line, sizeof line, "[%s] %lld/%lld  %.1f %s/s  ETA %.0fs", bar, static_cast<long long>(done),
                  static_cast<long long>(total_), rate, unit_.c_str(), eta);
  } else {
    std::snprintf(line, sizeof line, "%lld %s  %.1f %s/s", static_cast<long long>(done), unit_.c_str(), rate,
                  unit_.c_str());
  }
  // \r + erase-to-end-of-line, so a shorter line leaves no stale characters.
  std::fprintf(stderr, "\r\033[K%s", line);
  std::fflush(stderr);
  shown_ = true;
}

void Progress::clear() {
  if (!enabled_ || !shown_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  shown_ = false;
}

void Progress::finish() {
  if (!enabled_ || !shown_) return;
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  shown_ = false;
}

}  // namespace damoyolo::cli
