// Video files, network streams, V4L2 devices and stdin through OpenCV's
// videoio. The one file of the library that needs OpenCV (see
// damoyolo/video_source.h for why it is kept apart).
#include "damoyolo/video_source.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

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
      if (!cap_.read(into) || into.empty()) return finish();
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

  bool live() const override { return live_; }
  const std::string& name() const override { return name_; }
  double fps() const override { return fps_; }
  int width() const override { return width_; }
  int height() const override { return height_; }
  int64_t frame_count() const override { return frame_count_; }
  std::string end_warning() const override { return warning_; }

  static Result<std::unique_ptr<Source>> open(const std::string& location, const VideoSourceOptions& options) {
    std::unique_ptr<VideoSource> src(new VideoSource());
    src->name_ = location;
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
          opened = src->cap_.open(location, cv::CAP_FFMPEG,
                                  {cv::CAP_PROP_OPEN_TIMEOUT_MSEC, options.open_timeout_ms,
                                   cv::CAP_PROP_READ_TIMEOUT_MSEC, options.read_timeout_ms});
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
  std::string name_, warning_;
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
