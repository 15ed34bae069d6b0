// Video files, network streams, V4L2 devices and stdin through OpenCV's
// videoio. The one file of the library that needs OpenCV (see
// damoyolo/video_source.h for why it is kept apart).
#include "damoyolo/video_source.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>
#include <thread>

namespace damoyolo {

VideoLocationKind classify_video_location(const std::string& location) {
  if (location == "-") return VideoLocationKind::kStdin;
  if (location.rfind("/dev/video", 0) == 0) return VideoLocationKind::kDevice;
  // scheme://... with a scheme of letters, digits, '+', '-', '.' (RFC 3986).
  const size_t colon = location.find("://");
  if (colon != std::string::npos && colon > 0 &&
      std::all_of(location.begin(), location.begin() + static_cast<ptrdiff_t>(colon), [](unsigned char c) {
        return std::isalnum(c) || c == '+' || c == '-' || c == '.';
      }) && location.rfind("file://", 0) != 0)
    return VideoLocationKind::kUrl;
  return VideoLocationKind::kFile;
}

bool video_location_is_live(const std::string& location) {
  const VideoLocationKind k = classify_video_location(location);
  return k == VideoLocationKind::kUrl || k == VideoLocationKind::kDevice;
}

namespace {

class VideoSource : public Source {
 public:
  Result<bool> read(FrameBuffer& frame) override {
    if (ended_) return false;
    Result<bool> got = decode(frame);
    // A network stream that broke off is reopened (bounded attempts, with
    // backoff); the pipeline keeps counting frame indices across the gap.
    while (should_reconnect(got)) {
      Status st = reconnect(got.ok() ? "no frame within the read timeout of " +
                                           std::to_string(options_.read_timeout_ms) + " ms, or the stream ended"
                                     : got.status().message());
      if (!st.ok()) {
        ended_ = true;
        return st;
      }
      got = decode(frame);
    }
    if (!got.ok()) {
      ended_ = true;
      return got.status();
    }
    if (!*got) return finish();
    if (reopened_) {
      reopened_ = false;
      reconnects_.fetch_add(1, std::memory_order_relaxed);
    }
    attempts_in_row_ = 0;
    ++frames_since_open_;
    return true;
  }

  bool live() const override { return live_; }
  const std::string& name() const override { return name_; }
  double fps() const override { return fps_; }
  int width() const override { return width_; }
  int height() const override { return height_; }
  int64_t frame_count() const override { return frame_count_; }
  std::string end_warning() const override { return warning_; }
  int64_t reconnects() const override { return reconnects_.load(std::memory_order_relaxed); }

  static Result<std::unique_ptr<Source>> open(const std::string& location, const VideoSourceOptions& options) {
    std::unique_ptr<VideoSource> src(new VideoSource());
    src->name_ = location;
    src->options_ = options;
    const VideoLocationKind kind = classify_video_location(location);
    src->kind_ = kind;
    src->live_ = options.live == VideoSourceOptions::Live::kAuto ? video_location_is_live(location)
                                                                  : options.live == VideoSourceOptions::Live::kYes;
    try {
      bool opened = false;
      switch (kind) {
        case VideoLocationKind::kFile: {
          // FFmpeg's own message for a missing file is vague; say it plainly.
          std::ifstream probe(location, std::ios::binary);
          if (!probe) return Status(ErrorCode::kNotFound, location + ": cannot open the file (missing or unreadable)");
          opened = src->cap_.open(location, cv::CAP_FFMPEG);
          break;
        }
        case VideoLocationKind::kUrl:
          opened = src->open_url();
          break;
        case VideoLocationKind::kStdin:
          // FFmpeg's pipe protocol: the container is demuxed as it streams in.
          opened = src->cap_.open("pipe:0", cv::CAP_FFMPEG);
          break;
        case VideoLocationKind::kDevice:
          opened = src->cap_.open(location, cv::CAP_V4L2);
          if (!opened) return Status(ErrorCode::kIOError, location + ": cannot open the video device");
          break;
      }
      if (!opened)
        return Status(ErrorCode::kParseError,
                      location + (kind == VideoLocationKind::kFile
                                      ? ": not a readable video (FFmpeg cannot open it; corrupt or not a video)"
                                      : ": FFmpeg cannot open the stream (unreachable, refused or not a video)"));
    } catch (const cv::Exception& e) {
      return Status(ErrorCode::kParseError, location + ": cannot open the video: " + e.what());
    }
    src->fps_ = src->cap_.get(cv::CAP_PROP_FPS);
    if (!std::isfinite(src->fps_) || src->fps_ < 0 || src->fps_ > 1000) src->fps_ = 0;
    const double n = src->cap_.get(cv::CAP_PROP_FRAME_COUNT);
    src->frame_count_ = kind == VideoLocationKind::kFile && std::isfinite(n) && n > 0 ? static_cast<int64_t>(n) : -1;
    const double w = src->cap_.get(cv::CAP_PROP_FRAME_WIDTH), h = src->cap_.get(cv::CAP_PROP_FRAME_HEIGHT);
    if (std::isfinite(w) && std::isfinite(h) && w >= 1 && h >= 1 && w < 65536 && h < 65536) {
      src->width_ = static_cast<int>(w);
      src->height_ = static_cast<int>(h);
    }
    return std::unique_ptr<Source>(std::move(src));
  }

 private:
  // Opens (or reopens) a URL with the timeouts, and notes the frame count
  // its container declares, if any (a clip served over HTTP).
  bool open_url() {
    const bool opened = cap_.open(name_, cv::CAP_FFMPEG,
                                  {cv::CAP_PROP_OPEN_TIMEOUT_MSEC, options_.open_timeout_ms,
                                   cv::CAP_PROP_READ_TIMEOUT_MSEC, options_.read_timeout_ms});
    url_declared_frames_ = -1;
    frames_since_open_ = 0;
    if (opened) {
      const double n = cap_.get(cv::CAP_PROP_FRAME_COUNT);
      if (std::isfinite(n) && n > 0 && n < 1e12) url_declared_frames_ = static_cast<int64_t>(n);
    }
    return opened;
  }

  // Reconnect after a read that failed (a decoding error or an error from
  // FFmpeg's I/O: `got` not OK) or found no frame (end of stream, or the read
  // timeout). Only network streams that delivered a frame, and not the
  // declared end of a finite clip (within two frames).
  bool should_reconnect(const Result<bool>& got) const {
    if (kind_ != VideoLocationKind::kUrl || options_.reconnect_attempts <= 0 || frames_ == 0) return false;
    if (!got.ok()) return got.status().code() == ErrorCode::kParseError;
    if (*got) return false;
    return !(url_declared_frames_ > 0 && frames_since_open_ >= url_declared_frames_ - 2);
  }

  // Reopens the stream: up to reconnect_attempts attempts in a row, counted
  // across calls until a frame arrives, each after a wait that doubles.
  Status reconnect(const std::string& why) {
    if (attempts_in_row_ == 0) {
      outage_start_ = std::chrono::steady_clock::now();
      outage_why_ = why;
      outage_after_frame_ = frames_ - 1;
    }
    std::string last = why;
    while (attempts_in_row_ < options_.reconnect_attempts) {
      ++attempts_in_row_;
      const int64_t factor = int64_t{1} << std::min(attempts_in_row_ - 1, 3);
      std::this_thread::sleep_for(std::chrono::milliseconds(std::max(0, options_.reconnect_delay_ms) * factor));
      try {
        cap_.release();
        if (open_url()) {
          reopened_ = true;
          return Status::Ok();
        }
        last = "FFmpeg cannot open the stream (unreachable, refused or not a video)";
      } catch (const cv::Exception& e) {
        last = std::string("cannot open the stream: ") + e.what();
      }
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - outage_start_).count();
    char took[32];
    std::snprintf(took, sizeof took, "%.1f", secs);
    return Status(ErrorCode::kIOError,
                  name_ + ": the stream broke off after frame " + std::to_string(outage_after_frame_) + " (" +
                      outage_why_ + ") and " + std::to_string(attempts_in_row_) + " reconnect attempt(s) over " +
                      took + " s failed; last: " + last +
                      (reconnects() > 0 ? " (it had reconnected " + std::to_string(reconnects()) + " time(s) before)"
                                        : std::string()));
  }

  // One frame into `frame`: true, false (no frame: end, or the read timed
  // out), or an error (kParseError: decoding failed).
  Result<bool> decode(FrameBuffer& frame) {
    try {
      // Decode straight into the pool buffer: a cv::Mat header over it makes
      // OpenCV's final copy (out of FFmpeg's swscale frame) land there. If
      // the size differs (first frame of unknown size, or a size change)
      // OpenCV allocates its own Mat, copied over once the buffer is reshaped.
      if (frame.width() != width_ || frame.height() != height_ || frame.format() != PixelFormat::kBGR8) {
        if (width_ > 0 && height_ > 0) {
          Status st = frame.reshape(width_, height_, PixelFormat::kBGR8);
          if (!st.ok()) return Status(st.code(), name_ + ": " + st.message());
        }
      }
      cv::Mat into;
      if (frame.width() > 0 && frame.format() == PixelFormat::kBGR8)
        into = cv::Mat(frame.height(), frame.width(), CV_8UC3, frame.data(), static_cast<size_t>(frame.stride()));
      if (!cap_.read(into) || into.empty()) return false;
      if (into.type() != CV_8UC3)
        return Status(ErrorCode::kUnsupported, name_ + ": frame " + std::to_string(frames_) + " is not 8-bit BGR");
      if (into.data != frame.data()) {
        width_ = into.cols;
        height_ = into.rows;
        Status st = frame.reshape(into.cols, into.rows, PixelFormat::kBGR8);
        if (!st.ok()) return Status(st.code(), name_ + ": " + st.message());
        for (int y = 0; y < into.rows; ++y)
          std::memcpy(frame.data() + y * frame.stride(), into.ptr(y), static_cast<size_t>(into.cols) * 3);
      }
    } catch (const cv::Exception& e) {
      return Status(ErrorCode::kParseError, name_ + ": decoding frame " + std::to_string(frames_) + " failed: " + e.what());
    }
    // The largest timestamp seen says how far the decoder got (frames flushed
    // at the end of an H.264 stream carry none); frame.time_s comes from the
    // index instead: deterministic, and what a constant-rate writer shows.
    const double pos_ms = cap_.get(cv::CAP_PROP_POS_MSEC);
    if (std::isfinite(pos_ms) && pos_ms > 0) last_pts_s_ = std::max(last_pts_s_, pos_ms / 1000.0);
    frame.time_s = fps_ > 0 ? static_cast<double>(frames_) / fps_ : 0.0;
    ++frames_;
    return true;
  }

  // The end of the stream. A file that ends before the frames and the
  // duration its container declares was cut short (a partial copy): both
  // must fall short, since variable-rate files declare only an estimate and
  // the last frames flushed from an H.264 decoder carry no timestamp.
  // Within two frames is a warning only.
  Result<bool> finish() {
    ended_ = true;
    if (frames_ == 0)
      return Status(ErrorCode::kParseError, name_ + ": no decodable video frames (corrupt or empty video)");
    const int64_t declared = frame_count_;
    if (kind_ != VideoLocationKind::kFile || declared <= 0 || frames_ >= declared) return false;
    const double fps = fps_ > 0 ? fps_ : 25;
    const double declared_s = static_cast<double>(declared) / fps;
    const bool by_time = last_pts_s_ >= 0;
    const double read_s = by_time ? last_pts_s_ + 1.0 / fps : static_cast<double>(frames_) / fps;
    if (by_time && read_s >= declared_s - 0.5 / fps) return false;
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f", 100.0 * read_s / declared_s);
    char secs[64];
    std::snprintf(secs, sizeof secs, "%.2f s of the %.2f s", read_s, declared_s);
    const std::string what = name_ + ": the video ends early: decoded " + std::to_string(frames_) + " frame(s), " +
                             secs + " (" + std::to_string(declared) + " frames) its container declares (" + pct +
                             " %); truncated or corrupt";
    const bool truncated = declared - frames_ > 2 && (!by_time || read_s < declared_s - 2.0 / fps);
    if (truncated) return Status(ErrorCode::kParseError, what);
    warning_ = what;
    return false;
  }

  cv::VideoCapture cap_;
  VideoSourceOptions options_;
  std::string name_, warning_;
  // Reconnecting (URLs): frames read since the last open and the count the
  // container declared then (-1: none); attempts since the last frame; a
  // reopen not yet confirmed by a frame; the current outage.
  int64_t url_declared_frames_ = -1, frames_since_open_ = 0;
  int attempts_in_row_ = 0;
  bool reopened_ = false;
  std::atomic<int64_t> reconnects_{0};
  std::chrono::steady_clock::time_point outage_start_;
  std::string outage_why_;
  int64_t outage_after_frame_ = 0;
  VideoLocationKind kind_ = VideoLocationKind::kFile;
  bool live_ = false, ended_ = false;
  double fps_ = 0, last_pts_s_ = -1;
  int64_t frame_count_ = -1, frames_ = 0;
  int width_ = 0, height_ = 0;
};

}  // namespace

Result<std::unique_ptr<Source>> open_video_source(const std::string& location, const VideoSourceOptions& options) {
  return VideoSource::open(location, options);
}

}  // namespace damoyolo
