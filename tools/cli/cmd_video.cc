// damoyolo video --model M INPUT -o OUT.mp4 [--jsonl FILE]
//
// Reads frames with FFmpeg (BGR, as OpenCV delivers them), detects on each
// frame in place — the frame is wrapped as a kBGR8 ImageView, no copy; the
// fused preprocessor converts BGR→RGB itself, so frames get the official
// *image* pipeline rather than the official video demo's BGR-fed network
// (damo-yolo-facts §4.4) — draws, and writes an mp4v video with the source's
// frame rate and size. Per-frame results can be streamed as JSON lines.
//
// Outputs are checked before any work (never the input, never an existing
// file unless --overwrite), written under temporary names and renamed when
// finished; Ctrl-C stops after the current frame and finalises both, so the
// video plays with the frames done. A stream that ends before the frames its
// container declares is an error that says how much was read.
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgproc.hpp>

#include "commands.h"
#include "damoyolo/detector.h"
#include "detect_options.h"
#include "draw.h"
#include "outputs.h"
#include "progress.h"
#include "video_io.h"

namespace damoyolo::cli {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

struct VideoArgs {
  DetectionArgs det;
  std::string input;
  std::string output;
  std::string jsonl;
  int64_t max_frames = 0;
  bool quiet = false;
  bool overwrite = false;
};

int fail(const std::string& message) {
  std::cerr << "damoyolo video: " << message << "\n";
  return 1;
}

// A zero-copy view of an OpenCV frame. FFmpeg gives 8-bit BGR; gray and BGRA
// are accepted too in case a future source delivers them.
Result<ImageView> view_of(const cv::Mat& m) {
  PixelFormat f;
  switch (m.type()) {
    case CV_8UC3: f = PixelFormat::kBGR8; break;
    case CV_8UC1: f = PixelFormat::kGray8; break;
    case CV_8UC4: f = PixelFormat::kBGRA8; break;
    default: return Status(ErrorCode::kUnsupported, "frame type " + std::to_string(m.type()) + " is not 8-bit");
  }
  return ImageView{m.data, m.cols, m.rows, static_cast<ptrdiff_t>(m.step[0]), f};
}

struct StageSums {
  double read = 0, preprocess = 0, inference = 0, postprocess = 0, draw = 0, write = 0;
};

int run_video(const VideoArgs& a) {
  if (a.output.empty() && a.jsonl.empty()) return fail("nothing to write: give -o OUT.mp4 and/or --jsonl FILE");
  // Errors are reported here in one line each; OpenCV's own warnings about the
  // same failure would only repeat them less clearly.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
  // FFmpeg's av_log goes straight to stderr ("moov atom not found"); quiet it
  // unless the user asked for a level (overwrite = 0 keeps theirs).
  ::setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", 0);

  install_interrupt_handlers();
  OutputPolicy policy(a.overwrite);
  policy.add_input(a.input);
  add_model_inputs(policy, a.det);
  for (auto [path, what, kind] : {std::tuple{&a.output, "-o", OutputPolicy::Kind::kMedia},
                                  std::tuple{&a.jsonl, "--jsonl", OutputPolicy::Kind::kResults}}) {
    if (path->empty()) continue;
    Status st = policy.claim(*path, what, kind);
    if (!st.ok()) return fail(st.message());
  }

  auto source = VideoFileSource::open(a.input);
  if (!source.ok()) return fail(source.status().message());
  FrameSource& src = **source;

  // The first frame is read before anything is created: a file FFmpeg opens
  // but cannot decode fails here, without leaving an empty output behind.
  Frame frame;
  auto t_read = Clock::now();
  if (!src.read(frame)) return fail(a.input + ": no decodable video frames (corrupt or empty video)");
  double read_ms = ms_since(t_read);

  const cv::Size frame_size = frame.image.size();
  // FFmpeg has decoded the frame already; the bound still keeps a service
  // from running the pipeline on frames larger than it accepts.
  if (static_cast<int64_t>(frame_size.width) * frame_size.height > a.det.max_pixels)
    return fail(a.input + ": frames of " + std::to_string(frame_size.width) + "x" + std::to_string(frame_size.height) +
                " are more than --max-pixels " + std::to_string(a.det.max_pixels));
  double fps = src.fps();
  if (fps <= 0 || fps > 1000) {
    std::cerr << "damoyolo video: warning: " << a.input << " declares no usable frame rate; writing 25 fps\n";
    fps = 25;
  }

  // Both written under temporary names in their folders, renamed when done.
  AtomicOutput video_out, jsonl_out;
  std::unique_ptr<FrameSink> sink;
  if (!a.output.empty()) {
    video_out = AtomicOutput(a.output, a.overwrite);
    auto opened = VideoFileSink::open(video_out.temp_path().string(), fps, frame_size);
    if (!opened.ok()) return fail(a.output + ": " + opened.status().message());
    sink = std::move(*opened);
  }
  if (!a.jsonl.empty()) {
    jsonl_out = AtomicOutput(a.jsonl, a.overwrite);
    Status st = jsonl_out.open_stream();
    if (!st.ok()) return fail(st.message());
  }
  std::ofstream& jsonl = jsonl_out.stream();

  auto detector = make_detector(a.det);
  if (!detector.ok()) return fail(detector.status().to_string());

  int64_t total = src.frame_count();
  if (a.max_frames > 0) total = total > 0 ? std::min(total, a.max_frames) : a.max_frames;
  Progress progress(total, "frames", !a.quiet && stderr_is_terminal());

  ImageDetections result;  // reused: detect_into allocates nothing in steady state
  StageSums sums;
  int64_t frames = 0;
  int64_t detections = 0;
  const auto t_start = Clock::now();
  // `frame` already holds frame 0; each pass handles one frame, then reads the next.
  const float draw_threshold = a.det.draw_threshold();
  bool stopped = false;
  for (;;) {
    auto view = view_of(frame.image);
    if (!view.ok()) return fail("frame " + std::to_string(frame.index) + ": " + view.status().message());
    Status st = detector->detect_into(*view, result);
    if (!st.ok()) return fail("frame " + std::to_string(frame.index) + ": " + st.to_string());

    double draw_ms = 0, write_ms = 0;
    if (sink) {
      auto t = Clock::now();
      draw_detections(frame.image, result.detections, *detector, draw_threshold);
      draw_ms = ms_since(t);
      t = Clock::now();
      st = sink->write(frame.image);
      write_ms = ms_since(t);
      if (!st.ok()) return fail(st.message());
    }
    if (jsonl.is_open()) {
      nlohmann::json rec = {{"frame", frame.index},
                            {"time_s", std::round(frame.time_s * 1e4) / 1e4},
                            {"width", result.width},
                            {"height", result.height},
                            {"detections", detections_json(*detector, result.detections, a.det.full_precision)},
                            {"timings_ms",
                             {{"read", round2(read_ms)},
                              {"preprocess", round2(result.timings.preprocess_ms)},
                              {"inference", round2(result.timings.inference_ms)},
                              {"postprocess", round2(result.timings.postprocess_ms)},
                              {"draw", round2(draw_ms)},
                              {"write", round2(write_ms)}}}};
      // Flushed per line, so a consumer can follow the (temporary) file.
      jsonl << dump_json(rec) << "\n";
      jsonl.flush();
      if (!jsonl) return fail("cannot write '" + a.jsonl + "'");
    }
    sums.read += read_ms;
    sums.preprocess += result.timings.preprocess_ms;
    sums.inference += result.timings.inference_ms;
    sums.postprocess += result.timings.postprocess_ms;
    sums.draw += draw_ms;
    sums.write += write_ms;
    detections += static_cast<int64_t>(result.detections.size());
    ++frames;
    progress.update(frames);
    if (a.max_frames > 0 && frames >= a.max_frames) break;
    if (interrupted()) {
      stopped = true;
      break;
    }
    t_read = Clock::now();
    const bool more = src.read(frame);
    read_ms = ms_since(t_read);
    if (!more) break;
  }
  progress.finish();
  const double wall_s = ms_since(t_start) / 1000.0;

  // Finalise what was written, also when interrupted or truncated: the
  // frames done are a playable video.
  if (sink) {
    Status st = sink->close();
    if (st.ok()) st = video_out.commit();
    if (!st.ok()) return fail(st.message());
  }
  if (jsonl_out.active()) {
    Status st = jsonl_out.commit();
    if (!st.ok()) return fail(st.message());
  }

  // A stream that ends before the frames and the duration its container
  // declares was cut short (a partial download or copy). Both must fall
  // short: variable-frame-rate files (WebM/MKV screen recordings) declare only
  // an estimate of the count (duration x nominal fps), and the last frames
  // flushed from an H.264 decoder carry no timestamp. Without timestamps the
  // count alone decides. Within two frames is only a warning.
  const int64_t declared = src.frame_count();
  const bool reached_end = !stopped && !(a.max_frames > 0 && frames >= a.max_frames);
  const double declared_s = declared > 0 ? static_cast<double>(declared) / fps : 0;
  const bool by_time = src.last_pts_s() >= 0;
  const double read_s = by_time ? src.last_pts_s() + 1.0 / fps : static_cast<double>(frames) / fps;
  const bool cut_short = reached_end && declared > 0 && frames < declared &&
                         (!by_time || read_s < declared_s - 0.5 / fps);
  std::string truncation;
  if (cut_short) {
    truncation = a.input + ": the video ends early: decoded " + std::to_string(frames) + " frame(s), " +
                 fmt(read_s, 2) + " s of the " + fmt(declared_s, 2) + " s (" + std::to_string(declared) +
                 " frames) its container declares (" + fmt(100.0 * read_s / declared_s, 1) +
                 " %); truncated or corrupt";
  }
  const bool truncated = cut_short && declared - frames > 2 && (!by_time || read_s < declared_s - 2.0 / fps);

  if (!a.quiet) {
    const double n = static_cast<double>(frames);
    std::cout << a.input << ": " << frames << " frame(s) " << frame_size.width << "x" << frame_size.height << " at "
              << fmt(fps, 2) << " fps, " << detections << " detections";
    if (sink) std::cout << " -> " << a.output;
    std::cout << "\n"
              << "avg ms per frame: read " << fmt(sums.read / n) << "  preprocess " << fmt(sums.preprocess / n)
              << "  inference " << fmt(sums.inference / n) << "  postprocess " << fmt(sums.postprocess / n)
              << "  draw " << fmt(sums.draw / n) << "  write " << fmt(sums.write / n) << "\n"
              << "throughput: " << frames << " frame(s) in " << fmt(wall_s, 3) << " s = "
              << fmt(wall_s > 0 ? n / wall_s : 0, 1) << " FPS\n";
  }
  if (stopped) {
    std::cerr << "damoyolo video: interrupted after " << frames << " frame(s); the outputs hold them\n";
    return interrupted_exit_code();
  }
  if (truncated) {
    std::cerr << "damoyolo video: error: " << truncation << (sink || jsonl_out.active() ? "; the outputs hold the frames read" : "")
              << "\n";
    return 1;
  }
  if (cut_short) std::cerr << "damoyolo video: warning: " << truncation << "\n";
  return 0;
}

}  // namespace

Runner add_video_command(CLI::App& app) {
  auto args = std::make_shared<VideoArgs>();
  auto* cmd = app.add_subcommand("video", "Detect objects in a video: annotated mp4 and per-frame JSON lines");
  cmd->add_option("input", args->input, "Video file (anything FFmpeg reads)")->required();
  args->det.add_to(cmd, /*with_batch=*/false);
  cmd->add_option("-o,--output", args->output, "Annotated video to write (mp4v, source fps and size)");
  cmd->add_option("--jsonl", args->jsonl, "Stream per-frame results to FILE: {frame, time_s, detections, ...}");
  cmd->add_option("--max-frames", args->max_frames, "Stop after this many frames (0 = all)")
      ->check(whole_number(0));
  cmd->add_flag("-q,--quiet", args->quiet, "No progress or summary");
  cmd->add_flag("--overwrite", args->overwrite, "Replace output files that exist already (never the input)");
  return [args] { return run_video(*args); };
}

}  // namespace damoyolo::cli
