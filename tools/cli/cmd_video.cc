// damoyolo video --model M IN1 [IN2 ...] -o OUT.mp4 [--jsonl FILE]
//
// Every input is one stream of a damoyolo::Pipeline (include/damoyolo/
// pipeline.h): decoding, preprocessing, batched inference across streams and
// post-processing run on their own threads, and frames come back in order
// per stream. Inputs: files, URLs (rtsp://, http://, udp://, ... through
// FFmpeg), /dev/videoN (V4L2) and "-" (a container on stdin). Frames are
// BGR, wrapped without a copy; the fused preprocessor converts BGR→RGB, so
// frames get the official *image* pipeline (damo-yolo-facts §4.4).
//
// Outputs are checked before any work (never an input, never an existing
// file unless --overwrite), created at a stream's first frame under
// temporary names and renamed when the stream ends; Ctrl-C drains what is
// decoded and finalises every output, so the videos play with the frames
// done. With several inputs, -o and --jsonl must contain "{n}" (the input's
// position, from 0). A stream that fails is reported alone; the others go on.
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <mutex>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>

#include "commands.h"
#include "damoyolo/detector.h"
#include "damoyolo/pipeline.h"
#include "damoyolo/video_source.h"
#include "detect_options.h"
#include "draw.h"
#include "outputs.h"
#include "progress.h"
#include "video_io.h"

namespace damoyolo::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct VideoArgs {
  DetectionArgs det;
  std::vector<std::string> inputs;
  std::string output;
  std::string jsonl;
  // Network inputs: open/read timeout and reconnecting (VideoSourceOptions).
  int timeout_ms = 10000;
  int reconnect_attempts = 3;
  int reconnect_delay_ms = 500;
  int64_t max_frames = 0;
  bool quiet = false;
  bool overwrite = false;
  int batch = 1;
  int64_t batch_timeout_us = 5000;
  std::string stages = "auto";
  int every = 1;
  std::string live = "auto";
};

int fail(const std::string& message) {
  std::cerr << "damoyolo video: " << message << "\n";
  return 1;
}

std::string for_stream(const std::string& pattern, size_t n) {
  std::string out = pattern;
  const size_t at = out.find("{n}");
  if (at != std::string::npos) out.replace(at, 3, std::to_string(n));
  return out;
}

// What one stream writes, opened at its first frame (so an input that
// yields no frame leaves nothing behind) and finalised at its end.
struct StreamOutputs {
  std::string input, video_path, jsonl_path;
  double fps = 25;
  AtomicOutput video_out, jsonl_out;
  std::unique_ptr<FrameSink> sink;
  int64_t frames = 0, detections = 0;
  int width = 0, height = 0;
  Status error;  // writing failed: the stream's outputs are abandoned
  bool finished = false;
  StreamStats stats;
};

int run_video(VideoArgs& a) {
  if (a.output.empty() && a.jsonl.empty()) return fail("nothing to write: give -o OUT.mp4 and/or --jsonl FILE");
  const size_t n = a.inputs.size();
  if (n > 1) {
    for (auto [path, what] : {std::pair{&a.output, "-o"}, std::pair{&a.jsonl, "--jsonl"}})
      if (!path->empty() && path->find("{n}") == std::string::npos)
        return fail(std::string(what) + " must contain {n} (the input's number) when there are several inputs");
  }
  // Errors are reported here in one line each; OpenCV's own warnings about the
  // same failure would only repeat them less clearly.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
  // FFmpeg's av_log goes straight to stderr ("moov atom not found"); quiet it
  // unless the user asked for a level (overwrite = 0 keeps theirs).
  ::setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", 0);

  install_interrupt_handlers();
  OutputPolicy policy(a.overwrite);
  for (const auto& in : a.inputs)
    if (classify_video_location(in) == VideoLocationKind::kFile) policy.add_input(in);
  add_model_inputs(policy, a.det);
  std::vector<StreamOutputs> outs(n);
  for (size_t i = 0; i < n; ++i) {
    outs[i].input = a.inputs[i];
    if (!a.output.empty()) outs[i].video_path = for_stream(a.output, i);
    if (!a.jsonl.empty()) outs[i].jsonl_path = for_stream(a.jsonl, i);
    for (auto [path, what, kind] : {std::tuple{&outs[i].video_path, "-o", OutputPolicy::Kind::kMedia},
                                    std::tuple{&outs[i].jsonl_path, "--jsonl", OutputPolicy::Kind::kResults}}) {
      if (path->empty()) continue;
      Status st = policy.claim(*path, what, kind);
      if (!st.ok()) return fail(st.message());
    }
  }

  // Every source is opened before the model is loaded: a missing file or an
  // unreachable URL fails at once.
  VideoSourceOptions vo;
  vo.open_timeout_ms = a.timeout_ms;
  vo.read_timeout_ms = a.timeout_ms;
  vo.reconnect_attempts = a.reconnect_attempts;
  vo.reconnect_delay_ms = a.reconnect_delay_ms;
  int64_t total = 0;  // frames the containers declare, for the progress bar
  // With several inputs one that cannot be opened is reported and left out,
  // like a bad image among good ones in `detect`; the run still fails at the end.
  std::vector<std::unique_ptr<Source>> sources;
  std::vector<size_t> stream_input;  // pipeline stream -> index into outs
  int open_errors = 0;
  for (size_t i = 0; i < n; ++i) {
    auto src = open_video_source(a.inputs[i], vo);
    Status refused = src.ok() ? Status::Ok() : src.status();
    if (src.ok() && static_cast<int64_t>((*src)->width()) * (*src)->height() > a.det.max_pixels)
      refused = Status(ErrorCode::kOutOfRange, a.inputs[i] + ": frames of " + std::to_string((*src)->width()) + "x" +
                                                   std::to_string((*src)->height()) + " are more than --max-pixels " +
                                                   std::to_string(a.det.max_pixels));
    if (!refused.ok()) {
      if (n == 1) return fail(refused.message());
      std::cerr << "damoyolo video: " << refused.message() << "\n";
      ++open_errors;
      continue;
    }
    const Source& s = **src;
    double fps = s.fps();
    if (fps <= 0 || fps > 1000) {
      if (classify_video_location(a.inputs[i]) == VideoLocationKind::kFile)
        std::cerr << "damoyolo video: warning: " << a.inputs[i] << " declares no usable frame rate; writing 25 fps\n";
      fps = 25;
    }
    // Only every Nth frame is written, so the output keeps real time.
    outs[i].fps = fps / a.every;
    const int64_t declared = s.frame_count() > 0 ? (s.frame_count() + a.every - 1) / a.every : -1;
    total = total < 0 || declared < 0 ? -1 : total + (a.max_frames > 0 ? std::min(declared, a.max_frames) : declared);
    sources.push_back(std::move(*src));
    stream_input.push_back(i);
  }
  if (sources.empty()) return 1;

  // The detector resolves thresholds, class names and the class filter; its
  // session (compiled for --batch) is the one the pipeline shares.
  a.det.engine.batch = a.batch;
  auto detector = make_detector(a.det);
  if (!detector.ok()) return fail(detector.status().to_string());
  PipelineOptions po;
  po.detector = a.det.engine.detector_options();
  const PostprocessOptions& post = detector->postprocess_options();
  po.detector.conf_threshold = post.conf_threshold;
  po.detector.iou_threshold = post.iou_threshold;
  po.detector.max_det = post.max_det;
  po.detector.class_filter = post.class_filter;
  po.detector.family = detector->family();
  po.detector.labels_file = a.det.labels;
  po.detector.resize = a.det.resize == "letterbox" ? ResizeMode::kLetterbox : ResizeMode::kStretch;
  po.max_batch = a.batch;
  po.batch_timeout_us = a.batch_timeout_us;
  po.stages = a.stages == "inline" ? StageThreads::kInline
              : a.stages == "separate" ? StageThreads::kSeparate
                                       : StageThreads::kAuto;
  auto pipeline = Pipeline::create(detector->session(), po);
  if (!pipeline.ok()) return fail(pipeline.status().to_string());
  StreamOptions so;
  so.infer_every = a.every;
  so.policy = a.live == "block" ? StreamPolicy::kBlock : a.live == "drop" ? StreamPolicy::kDropOldest : StreamPolicy::kAuto;
  for (auto& src : sources) {
    auto added = pipeline->add_stream(std::move(src), so);
    if (!added.ok()) return fail(added.status().message());
  }

  Progress progress(total, "frames", !a.quiet && stderr_is_terminal());
  std::atomic<int64_t> delivered{0};
  std::atomic<size_t> at_limit{0};
  const size_t sources_count = stream_input.size();
  const float draw_threshold = a.det.draw_threshold();
  const Detector& names = pipeline->detector();
  Pipeline& pipe = *pipeline;

  auto on_frame = [&](FrameResult& r) {
    StreamOutputs& o = outs[stream_input[static_cast<size_t>(r.stream)]];
    if (!o.error.ok() || (a.max_frames > 0 && o.frames >= a.max_frames)) return;
    if (!r.status.ok()) {
      o.error = Status(r.status.code(), "frame " + std::to_string(r.frame->index) + ": " + r.status.message());
      return;
    }
    FrameBuffer& f = *r.frame;
    cv::Mat image(f.height(), f.width(), CV_8UC3, f.data(), static_cast<size_t>(f.stride()));
    if (o.frames == 0) {
      o.width = f.width();
      o.height = f.height();
      if (!o.video_path.empty()) {
        o.video_out = AtomicOutput(o.video_path, a.overwrite);
        auto opened = VideoFileSink::open(o.video_out.temp_path().string(), o.fps, image.size());
        if (!opened.ok()) {
          o.error = Status(opened.status().code(), o.video_path + ": " + opened.status().message());
          return;
        }
        o.sink = std::move(*opened);
      }
      if (!o.jsonl_path.empty()) {
        o.jsonl_out = AtomicOutput(o.jsonl_path, a.overwrite);
        Status st = o.jsonl_out.open_stream();
        if (!st.ok()) {
          o.error = st;
          return;
        }
      }
    }
    double draw_ms = 0, write_ms = 0;
    if (o.sink) {
      auto t0 = Clock::now();
      draw_detections(image, *r.detections, names, draw_threshold);
      auto t1 = Clock::now();
      Status st = o.sink->write(image);
      draw_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
      write_ms = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
      if (!st.ok()) {
        o.error = st;
        return;
      }
    }
    if (o.jsonl_out.active()) {
      nlohmann::json rec = {{"frame", f.index},
                            {"time_s", std::round(f.time_s * 1e4) / 1e4},
                            {"width", f.width()},
                            {"height", f.height()},
                            {"detections", detections_json(names, *r.detections, a.det.full_precision)},
                            {"timings_ms", timings_json(r.timings, draw_ms, write_ms)}};
      if (n > 1) rec["stream"] = r.stream;
      // Flushed per line, so a consumer can follow the (temporary) file.
      std::ofstream& out = o.jsonl_out.stream();
      out << dump_json(rec) << "\n";
      out.flush();
      if (!out) {
        o.error = Status(ErrorCode::kIOError, "cannot write '" + o.jsonl_path + "'");
        return;
      }
    }
    o.detections += static_cast<int64_t>(r.detections->size());
    ++o.frames;
    ++delivered;
    // --max-frames: once every stream has its frames, the rest is not needed.
    if (a.max_frames > 0 && o.frames == a.max_frames && ++at_limit == sources_count) pipe.stop(StopMode::kCancel);
  };
  // A stream's end: finalise what it wrote, also when it failed or was
  // interrupted — the frames done are a playable video.
  auto on_end = [&](int s, const StreamStats& st) {
    StreamOutputs& o = outs[stream_input[static_cast<size_t>(s)]];
    o.stats = st;
    o.finished = true;
    if (o.sink) {
      Status cs = o.sink->close();
      if (cs.ok()) cs = o.video_out.commit();
      if (!cs.ok() && o.error.ok()) o.error = cs;
    }
    if (o.jsonl_out.active()) {
      Status cs = o.jsonl_out.commit();
      if (!cs.ok() && o.error.ok()) o.error = cs;
    }
  };

  const auto t_start = Clock::now();
  // The pipeline runs its inference stage here, on the thread that loaded
  // the model (Pipeline::run: one OpenMP team, not two); a watcher thread
  // shows progress and turns Ctrl-C into a drain.
  std::atomic<bool> finished{false}, stopped{false};
  std::mutex watch_mu;
  std::condition_variable watch_cv;
  std::thread watcher([&] {
    std::unique_lock lock(watch_mu);
    while (!finished) {
      watch_cv.wait_for(lock, std::chrono::milliseconds(20));
      progress.update(delivered);
      if (interrupted() && !stopped) {
        stopped = true;
        pipe.stop(StopMode::kDrain);
      }
    }
  });
  Status st = pipe.run(on_frame, on_end);
  {
    std::lock_guard lock(watch_mu);
    finished = true;
  }
  watch_cv.notify_all();
  watcher.join();
  progress.finish();
  const double wall_s = std::chrono::duration<double>(Clock::now() - t_start).count();
  if (!st.ok()) return fail(st.to_string());

  const PipelineStats ps = pipe.stats();
  int errors = open_errors;
  for (size_t i : stream_input) {
    const StreamOutputs& o = outs[i];
    const StreamStats& s = o.stats;
    const double secs = s.seconds > 0 ? s.seconds : wall_s;
    if (!a.quiet) {
      std::cout << o.input << ": " << o.frames << " frame(s) " << o.width << "x" << o.height << " at "
                << fmt(o.fps * a.every, 2) << " fps, " << o.detections << " detections";
      if (o.sink) std::cout << " -> " << o.video_path;
      std::cout << "\n"
                << "  decoded " << s.decoded << ", inferred " << s.inferred << ", dropped " << s.dropped
                << ", skipped " << s.skipped << ", errors " << (s.failed + (s.error.ok() ? 0 : 1));
      // Only network inputs reconnect (files, stdin and devices never do).
      if (classify_video_location(o.input) == VideoLocationKind::kUrl) std::cout << ", reconnects " << s.reconnects;
      std::cout << "\n"
                << "throughput: " << o.frames << " frame(s) in " << fmt(secs, 3) << " s = "
                << fmt(secs > 0 ? static_cast<double>(o.frames) / secs : 0, 1) << " FPS\n";
    }
    if (!s.warning.empty()) std::cerr << "damoyolo video: warning: " << s.warning << "\n";
    if (!s.error.ok()) {
      ++errors;
      std::cerr << "damoyolo video: error: " << s.error.message()
                << (o.sink || o.jsonl_out.active() ? "; the outputs hold the frames read" : "") << "\n";
    } else if (!o.error.ok()) {
      ++errors;
      std::cerr << "damoyolo video: " << o.input << ": " << o.error.message() << "\n";
    }
  }
  if (!a.quiet && n > 1)
    std::cout << "all streams: " << ps.inferred_frames << " frame(s) in " << ps.inferences << " inference(s) in "
              << fmt(wall_s, 3) << " s = " << fmt(wall_s > 0 ? static_cast<double>(ps.inferred_frames) / wall_s : 0, 1)
              << " FPS\n";
  if (stopped) {
    std::cerr << "damoyolo video: interrupted; the outputs hold the frames done\n";
    return interrupted_exit_code();
  }
  return errors > 0 ? 1 : 0;
}

}  // namespace

Runner add_video_command(CLI::App& app) {
  auto args = std::make_shared<VideoArgs>();
  auto* cmd = app.add_subcommand("video", "Detect objects in a video: annotated mp4 and per-frame JSON lines");
  cmd->add_option("inputs", args->inputs,
                  "Video files, URLs (rtsp://, http://, udp://, ...), /dev/videoN or - (stdin); each is one stream")
      ->required();
  args->det.add_to(cmd, /*with_batch=*/false);
  cmd->add_option("-o,--output", args->output, "Annotated video to write (mp4v, source fps and size)");
  cmd->add_option("--jsonl", args->jsonl, "Stream per-frame results to FILE: {frame, time_s, detections, ...}");
  cmd->add_option("--max-frames", args->max_frames, "Stop after this many frames (0 = all)")
      ->check(whole_number(0));
  cmd->add_flag("-q,--quiet", args->quiet, "No progress or summary");
  cmd->add_flag("--overwrite", args->overwrite, "Replace output files that exist already (never the input)");
  cmd->add_option("--batch", args->batch, "Frames per inference, taken across streams (default 1)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--batch-timeout-us", args->batch_timeout_us,
                  "How long a partial batch waits for more frames, from its first (default 5000)")
      ->check(CLI::Range(int64_t{0}, int64_t{10000000}));
  cmd->add_option("--every", args->every, "Infer (and write) every Nth frame; the others are counted as skipped")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--reconnect-attempts", args->reconnect_attempts,
                  "Network inputs (URLs): reopen a stream that breaks off up to N times in a row before it fails "
                  "(default 3; 0 = never)")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--reconnect-delay-ms", args->reconnect_delay_ms,
                  "Wait before the first reconnect attempt, doubled for each next one up to 8x (default 500)")
      ->check(CLI::Range(0, 3600000));
  cmd->add_option("--timeout-ms", args->timeout_ms,
                  "Network inputs: how long opening and each read may take before the stream is failed or "
                  "reconnected (default 10000)")
      ->check(CLI::Range(1, 3600000));
  cmd->add_option("--live", args->live,
                  "When inference falls behind: auto (drop the oldest frame for URLs and devices, block for files), "
                  "drop, block")
      ->check(CLI::IsMember({"auto", "drop", "block"}));
  cmd->add_option("--stages", args->stages,
                  "Threads of the stages after decoding: auto (inline when inference has every core, else "
                  "separate), separate (preprocess, infer, post on a thread each), inline (one thread, in turn)")
      ->check(CLI::IsMember({"auto", "separate", "inline"}));
  return [args] { return run_video(*args); };
}

}  // namespace damoyolo::cli
