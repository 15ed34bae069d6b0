// The video writer of `damoyolo video`. Frames come from the library's
// sources (damoyolo/video_source.h) through damoyolo::Pipeline.
#pragma once

#include <cstdint>
#include <memory>
#include <opencv2/core.hpp>
#include <string>

#include "damoyolo/status.h"

namespace damoyolo::cli {

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual Status write(const cv::Mat& bgr) = 0;
  // Finishes the file (trailer, index); errors that only show at the end.
  virtual Status close() = 0;
};

// An MPEG-4 Part 2 ("mp4v") file written through cv::VideoWriter, the
// official demo's codec: plays everywhere and needs no extra encoder.
class VideoFileSink : public FrameSink {
 public:
  // Opens (creates) the file now, so an unwritable path fails before any
  // frame is processed.
  static Result<std::unique_ptr<VideoFileSink>> open(const std::string& path, double fps, cv::Size size);
  ~VideoFileSink() override;
  Status write(const cv::Mat& bgr) override;
  Status close() override;

 private:
  VideoFileSink() = default;
  struct Writer;
  std::unique_ptr<Writer> writer_;
  std::string path_;
  cv::Size size_;
  cv::Mat resized_;
};

}  // namespace damoyolo::cli
