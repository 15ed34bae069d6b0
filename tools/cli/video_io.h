// Frame sources and sinks for `damoyolo video`.
//
// The command loop only sees FrameSource::read and FrameSink::write, so a
// later pipelined or multi-stream runner (camera, RTSP, several files at once,
// decode/detect/encode on separate threads) can reuse the same pieces: each
// stream is one source, one detector, one sink, and frames carry their own
// index and timestamp.
#pragma once

#include <cstdint>
#include <memory>
#include <opencv2/core.hpp>
#include <string>

#include "damoyolo/status.h"

namespace damoyolo::cli {

struct Frame {
  cv::Mat image;       // BGR (CV_8UC3) as decoded; may be drawn on in place
  int64_t index = 0;   // 0-based position in the stream
  double time_s = 0;   // presentation time, seconds from the start
};

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // The next frame into `frame` (its buffer is reused when the size allows).
  // false at the end of the stream or when no further frame can be decoded.
  virtual bool read(Frame& frame) = 0;
  virtual double fps() const = 0;             // as the container declares; may be 0
  virtual int64_t frame_count() const = 0;    // an estimate from the container; -1 when unknown
  // Latest presentation time among the frames read, seconds; < 0 when unknown.
  virtual double last_pts_s() const = 0;
  virtual const std::string& name() const = 0;
};

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual Status write(const cv::Mat& bgr) = 0;
  // Finishes the file (trailer, index); errors that only show at the end.
  virtual Status close() = 0;
};

// A video file (or anything FFmpeg opens) read through cv::VideoCapture with
// the FFmpeg backend. Frames come as BGR, as OpenCV delivers them.
class VideoFileSource : public FrameSource {
 public:
  // kNotFound when the file is missing, kParseError when FFmpeg cannot open it.
  static Result<std::unique_ptr<VideoFileSource>> open(const std::string& path);
  ~VideoFileSource() override;
  bool read(Frame& frame) override;
  double fps() const override { return fps_; }
  int64_t frame_count() const override { return frame_count_; }
  double last_pts_s() const override { return last_pts_s_; }
  const std::string& name() const override { return path_; }

 private:
  VideoFileSource() = default;
  struct Capture;
  std::unique_ptr<Capture> cap_;
  std::string path_;
  double fps_ = 0;
  int64_t frame_count_ = -1;
  int64_t next_index_ = 0;
  double last_pts_s_ = -1;
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
