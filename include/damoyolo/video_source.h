// Video sources for damoyolo::Pipeline through OpenCV's videoio (FFmpeg and
// V4L2 backends).
//
// A program that calls these links opencv_videoio (and opencv_core,
// opencv_imgproc) itself; the rest of the library does not need them. That
// is on purpose: FFmpeg's dependency chain slowed oneDNN's 1x1 convolutions
// by ~40 % when loaded into the process (docs/performance.md), so only
// programs that read video pay for it (the CLI's damoyolo-video).
//
// Decoding allocates inside FFmpeg and OpenCV (av_frame buffers, swscale
// state, malloc-based cv::Mat temporaries); the decoded BGR pixels are
// written straight into the pipeline's pooled FrameBuffer, so damoyolo's
// side of a frame allocates nothing.
#pragma once

#include <memory>
#include <string>

#include "damoyolo/pipeline.h"

namespace damoyolo {

enum class VideoLocationKind {
  kFile,    // a path to an existing file
  kUrl,     // scheme://... (rtsp, rtmp, http(s), udp, rtp, tcp, srt, ...)
  kDevice,  // /dev/videoN (V4L2)
  kStdin,   // "-": the container read from standard input
};
// How open_video_source will treat `location`.
VideoLocationKind classify_video_location(const std::string& location);
// Live by default: devices, and URLs other than file://; files and stdin block.
bool video_location_is_live(const std::string& location);

struct VideoSourceOptions {
  // Network sources: how long opening and each read may take before the
  // stream is reported failed (FFmpeg's own defaults wait forever).
  int open_timeout_ms = 10000;
  int read_timeout_ms = 10000;
  // Override the live/blocking character classify_video_location implies.
  enum class Live { kAuto, kYes, kNo } live = Live::kAuto;
  // Network sources (kUrl) only: when the stream fails or ends after its
  // first frame, it is reopened up to `reconnect_attempts` times in a row
  // (0: never), waiting `reconnect_delay_ms` before the first attempt and
  // twice as long before each next one (at most 8x). A reopened stream that
  // delivers a frame counts one reconnect (Source::reconnects()) and gets
  // its attempts back. Not an end: a stream whose container declares its
  // frame count (a clip served over HTTP) and that delivered them. Files,
  // stdin and devices never reconnect. Giving up ends the stream with
  // kIOError naming the location and the attempts. The waits and the
  // attempts' open timeouts run on the stream's thread: Pipeline::stop()
  // takes effect after them.
  int reconnect_attempts = 3;
  int reconnect_delay_ms = 500;
};

// A file, URL, device or "-" (stdin). Errors: kNotFound (a file path that does
// not exist), kParseError (FFmpeg cannot open or read it), kIOError (a
// device that cannot be opened). A stream whose decoder fails mid-way ends
// with kParseError naming the frame; a network stream that broke off and
// could not be reopened (see reconnect_attempts) ends with kIOError.
Result<std::unique_ptr<Source>> open_video_source(const std::string& location,
                                                  const VideoSourceOptions& options = {});

}  // namespace damoyolo
