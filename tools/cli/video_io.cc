#include "video_io.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

namespace damoyolo::cli {

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
