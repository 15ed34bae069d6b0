#include "video_io.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

namespace damoyolo::cli {

struct VideoFileSource::Capture {
  cv::VideoCapture cap;
};

VideoFileSource::~VideoFileSource() = default;

Result<std::unique_ptr<VideoFileSource>> VideoFileSource::open(const std::string& path) {
  {
    // FFmpeg's own message for a missing file is vague; say it plainly.
    std::ifstream probe(path, std::ios::binary);
    if (!probe) return Status(ErrorCode::kNotFound, path + ": cannot open the file (missing or unreadable)");
  }
  std::unique_ptr<VideoFileSource> src(new VideoFileSource());
  src->cap_ = std::make_unique<Capture>();
  src->path_ = path;
  try {
    if (!src->cap_->cap.open(path, cv::CAP_FFMPEG))
      return Status(ErrorCode::kParseError, path + ": not a readable video (FFmpeg cannot open it; corrupt or not a video)");
  } catch (const cv::Exception& e) {
    return Status(ErrorCode::kParseError, path + ": cannot open the video: " + e.what());
  }
  src->fps_ = src->cap_->cap.get(cv::CAP_PROP_FPS);
  if (!std::isfinite(src->fps_) || src->fps_ < 0) src->fps_ = 0;
  const double n = src->cap_->cap.get(cv::CAP_PROP_FRAME_COUNT);
  src->frame_count_ = std::isfinite(n) && n > 0 ? static_cast<int64_t>(n) : -1;
  return src;
}

bool VideoFileSource::read(Frame& frame) {
  try {
    if (!cap_->cap.read(frame.image) || frame.image.empty()) return false;
  } catch (const cv::Exception&) {
    return false;  // a decoder failure mid-stream ends the stream
  }
  frame.index = next_index_++;
  // FFmpeg's timestamp of the frame just decoded: how far into the stream the
  // decoder got, which frame counts of variable-rate files cannot say. The
  // largest seen: frames flushed from the decoder at the end (H.264 with
  // B-frames) can report none.
  const double pos_ms = cap_->cap.get(cv::CAP_PROP_POS_MSEC);
  if (std::isfinite(pos_ms) && pos_ms > 0) last_pts_s_ = std::max(last_pts_s_, pos_ms / 1000.0);
  // From the index rather than CAP_PROP_POS_MSEC: deterministic, and what the
  // writer's constant frame rate will show.
  frame.time_s = fps_ > 0 ? static_cast<double>(frame.index) / fps_ : 0.0;
  return true;
}

struct VideoFileSink::Writer {
  cv::VideoWriter writer;
};

VideoFileSink::~VideoFileSink() { (void)close(); }

Result<std::unique_ptr<VideoFileSink>> VideoFileSink::open(const std::string& path, double fps, cv::Size size) {
  std::unique_ptr<VideoFileSink> sink(new VideoFileSink());
  sink->writer_ = std::make_unique<Writer>();
  sink->path_ = path;
  sink->size_ = size;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
    return Status(ErrorCode::kIOError, path + ": cannot write the output video: folder '" + parent.string() +
                                           "' does not exist");
  try {
    if (!sink->writer_->writer.open(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('m', 'p', '4', 'v'), fps, size,
                                    true))
      return Status(ErrorCode::kIOError, path + ": cannot write the output video (unwritable path or unsupported "
                                                "container for mp4v)");
  } catch (const cv::Exception& e) {
    return Status(ErrorCode::kIOError, path + ": cannot write the output video: " + e.what());
  }
  return sink;
}

Status VideoFileSink::write(const cv::Mat& bgr) {
  if (!writer_ || !writer_->writer.isOpened()) return Status(ErrorCode::kIOError, path_ + ": writer is closed");
  try {
    // A stream whose frame size changes mid-way (rare, but legal in some
    // containers) is scaled to the size the file was opened with.
    if (bgr.size() != size_) {
      cv::resize(bgr, resized_, size_);
      writer_->writer.write(resized_);
    } else {
      writer_->writer.write(bgr);
    }
  } catch (const cv::Exception& e) {
    return Status(ErrorCode::kIOError, path_ + ": writing a frame failed: " + e.what());
  }
  return Status::Ok();
}

Status VideoFileSink::close() {
  if (!writer_ || !writer_->writer.isOpened()) return Status::Ok();
  try {
    writer_->writer.release();
  } catch (const cv::Exception& e) {
    return Status(ErrorCode::kIOError, path_ + ": finishing the video failed: " + e.what());
  }
  return Status::Ok();
}

}  // namespace damoyolo::cli
