// damoyolo::Pipeline — several video streams through one shared model.
//
//   source (one thread per stream: demux + decode into a pooled frame)
//     → bounded per-stream queue
//     → batcher (one thread: picks frames from every stream, preprocesses
//       each straight into a pooled batch input tensor)
//     → infer (one thread: Session::run_into on the batch, with the
//       session's oneDNN/OpenMP threads — the only stage that computes in
//       parallel, so nothing oversubscribes the cores)
//     → post (one thread: head decode + NMS per frame into a pooled
//       detection list, then the callback, in frame order per stream)
//
// When inference's OpenMP team has every core, batcher, infer and post run
// in turn on one thread instead (StageThreads::kInline), so that nothing but
// decoding competes with inference for the cores.
//
// Frames of different streams share one inference: a batch is pushed when it
// holds `max_batch` frames or when `batch_timeout_us` has passed since its
// first frame. Everything the stages hand each other — frame buffers, batch
// input and output tensors, detection lists — is allocated when the pipeline
// starts and reused, so the steady state allocates nothing in damoyolo's code
// (decoders behind a Source may allocate on their own; see video_source.h).
//
// Files block (nothing is lost when inference is slower than decoding); live
// sources drop their oldest queued frame instead, counted per stream. A stream
// that fails is reported on that stream alone; the others carry on.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "damoyolo/detector.h"
#include "damoyolo/image.h"
#include "damoyolo/session.h"
#include "damoyolo/status.h"

namespace damoyolo {

// A frame in a pool buffer: 64-byte aligned rows, reused from frame to frame.
class FrameBuffer {
 public:
  FrameBuffer() = default;
  FrameBuffer(const FrameBuffer&) = delete;
  FrameBuffer& operator=(const FrameBuffer&) = delete;

  // Makes the buffer hold width x height pixels of `format` (contents
  // undefined). Allocates only when it is larger than anything held before,
  // so a stream of one frame size allocates once. kOutOfRange past
  // limits::kMaxImagePixels-like sizes (width or height ≤ 0 or > 1<<15).
  Status reshape(int width, int height, PixelFormat format);
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  int width() const { return width_; }
  int height() const { return height_; }
  ptrdiff_t stride() const { return stride_; }
  PixelFormat format() const { return format_; }
  ImageView view() const { return {data_.get(), width_, height_, stride_, format_}; }
  size_t capacity() const { return capacity_; }
  // Frees the pixels (capacity 0; the next reshape allocates). What a
  // pipeline does with each frame when DetectorOptimizations::frame_pool is off.
  void release();

  int64_t index = 0;   // position in its stream, 0-based, counting dropped and skipped frames
  double time_s = 0;   // presentation time, seconds from the stream's start
  double decode_ms = 0;  // wall time of the source's read() that produced it (set by the pipeline)

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t capacity_ = 0;
  int width_ = 0, height_ = 0;
  ptrdiff_t stride_ = 0;
  PixelFormat format_ = PixelFormat::kBGR8;
};

// Where a stream's frames come from. read() runs on the stream's own thread.
class Source {
 public:
  virtual ~Source() = default;
  // Decodes the next frame into `frame` (reshape() it to the frame's size)
  // and sets frame.time_s; the pipeline sets frame.index. true: a frame;
  // false: the stream ended normally; an error Status: the stream failed
  // (reported on this stream only).
  virtual Result<bool> read(FrameBuffer& frame) = 0;
  // A live source (camera, network stream) produces frames whether or not
  // they are read: under StreamPolicy::kAuto it drops rather than blocks.
  virtual bool live() const = 0;
  virtual const std::string& name() const = 0;
  // As declared by the container; 0 when unknown.
  virtual double fps() const { return 0; }
  // Frame size known at open, for sizing the pool up front; 0 when unknown
  // (the buffers then grow on the first frames).
  virtual int width() const { return 0; }
  virtual int height() const { return 0; }
  // Frames the container declares; -1 when unknown.
  virtual int64_t frame_count() const { return -1; }
  // After the end: something worth telling that is not an error (e.g. a
  // video a frame or two shorter than its container declares). Empty if none.
  virtual std::string end_warning() const { return {}; }
  // Times the source reopened its stream after it broke off (network
  // sources; see VideoSourceOptions::reconnect_attempts). Read by the
  // pipeline on the stream's thread when the stream ends.
  virtual int64_t reconnects() const { return 0; }
};

// Every image (JPEG, PNG, BMP) in a folder, in name order, decoded with
// damoyolo's decoder. Not live. A file that fails to decode ends the stream
// with its error (kNotFound: no such folder; kInvalidArgument: no images).
// fps: the time_s the frames are stamped with (0: all 0).
Result<std::unique_ptr<Source>> open_image_directory(const std::string& folder, double fps = 0,
                                                     const DecodeOptions& decode = {});

// What a stream does when inference falls behind.
enum class StreamPolicy {
  kAuto,        // kDropOldest for live sources, kBlock otherwise
  kBlock,       // the source waits: every frame is inferred
  kDropOldest,  // the oldest frame still waiting is dropped (and counted)
};

struct StreamOptions {
  StreamPolicy policy = StreamPolicy::kAuto;
  // Infer frames 0, N, 2N, ...; the others are counted as skipped and not
  // delivered. 1: every frame.
  int infer_every = 1;
};

// Per-stream counters. decoded = inferred + dropped + skipped + failed
// (+ frames still in flight, or cancelled at stop()).
struct StreamStats {
  int64_t decoded = 0;    // frames the source produced
  int64_t inferred = 0;   // delivered with detections
  int64_t dropped = 0;    // live policy: dropped because inference was behind
  int64_t skipped = 0;    // infer_every
  int64_t failed = 0;     // delivered with an error (preprocessing or inference failed)
  int64_t cancelled = 0;  // queued when stop(kCancel) came
  int64_t reconnects = 0;  // Source::reconnects() (network sources reopened), set when the stream ends
  Status error;           // why the stream ended early (source error); OK otherwise
  std::string warning;    // Source::end_warning() at its end
  bool stopped = false;   // ended by stop() rather than by its end
  double seconds = 0;     // from start() to the stream's last delivery
};

// One frame's outcome, valid during the callback only. `frame` may be drawn
// on (its buffer goes back to the pool after the callback returns).
struct FrameResult {
  int stream = 0;
  FrameBuffer* frame = nullptr;
  const std::vector<Detection>* detections = nullptr;  // score descending, frame pixels
  Status status;                                       // not OK: this frame failed; detections empty
  // Wall time of this frame's stages: decode (the source's read), preprocess,
  // inference (its batch's run divided by the frames in it), postprocess
  // (head decode + NMS). With separate stage threads they overlap other
  // frames' stages, so they do not add up to the time between frames.
  StageTimings timings;
};

// Which threads the stages after the sources run on.
enum class StageThreads {
  // kInline when the session's OpenMP team already has every core this
  // process may run on (Session::threads() is 0 or >= the cores in its
  // affinity mask): any other busy thread would then take a core from
  // inference. kSeparate when cores are left over for the other stages.
  kAuto,
  // Batcher, inference and post-processing on three threads of their own:
  // preprocessing and NMS overlap inference, which pays when there are
  // cores to spare for them.
  kSeparate,
  // One thread preprocesses a batch, infers it, post-processes it and calls
  // back, in turn; only the sources (decoding) run beside it. On a machine
  // whose cores all belong to inference this is faster: measured on 2 cores
  // in docs/streams.md ("Thread budget").
  kInline,
};

struct PipelineOptions {
  // Model options: thresholds, class filter, resize mode, NMS/preprocess
  // switches; `detector.session` (engine, precision, threads) when the
  // pipeline loads the model itself. session.threads is the inference
  // stage's OpenMP team: give it the cores, the other stages mostly wait.
  DetectorOptions detector;
  // Frames per inference (across streams) and how long a partial batch waits
  // for more, from its first frame.
  int max_batch = 1;
  int64_t batch_timeout_us = 5000;
  // Frames waiting per stream between decoding and batching.
  int queue_depth = 2;
  StageThreads stages = StageThreads::kAuto;
};

struct PipelineStats {
  int64_t inferences = 0;       // Session runs
  int64_t inferred_frames = 0;  // frames in them
  int64_t timeout_batches = 0;  // partial batches pushed by the timeout
};

enum class StopMode {
  kDrain,   // sources stop reading; frames already decoded are still inferred and delivered
  kCancel,  // sources stop; queued frames are discarded (counted), in-flight batches finish
};

class Pipeline {
 public:
  using FrameCallback = std::function<void(FrameResult&)>;
  // Called once per stream, after its last frame, on the same thread as the
  // frame callback: the place to finalise that stream's outputs.
  using EndCallback = std::function<void(int stream, const StreamStats&)>;

  Pipeline();
  ~Pipeline();  // stop(kCancel) and wait(), if still running
  Pipeline(Pipeline&&) noexcept;
  Pipeline& operator=(Pipeline&&) noexcept;

  // On a loaded model (shared: the weights are not copied). The session's
  // batch bounds max_batch; shorter batches run with their own plans.
  static Result<Pipeline> create(const Session& session, const PipelineOptions& options = {});
  // Loads the model with options.detector.session and batch = max_batch.
  static Result<Pipeline> create(const std::string& model_path, const PipelineOptions& options = {});

  // Before start(). Returns the stream's number (0, 1, ... in order added).
  Result<int> add_stream(std::unique_ptr<Source> source, const StreamOptions& options = {});
  // Allocates every pool and starts the threads. Both callbacks run on the
  // post-processing thread, one call at a time.
  Status start(FrameCallback on_frame, EndCallback on_end = {});
  // start() + wait() with the inference stage on the calling thread: the
  // faster way when the calling thread is the one that loaded the model (or
  // ran any OpenMP work), since oneDNN then uses that thread's OpenMP team
  // instead of starting a second one that competes with the first's idle,
  // spinning workers. Call stop() from a callback or another thread.
  Status run(FrameCallback on_frame, EndCallback on_end = {});
  // Asks every stream to stop; returns at once (callable from any thread,
  // not from a signal handler: poll a flag there and call this).
  void stop(StopMode mode = StopMode::kDrain);
  // Blocks until every stream has ended and been delivered, then joins the
  // threads. OK unless the pipeline itself failed (stream errors are in
  // stats()).
  Status wait();
  // True once every stream has ended and been delivered.
  bool finished() const;

  int num_streams() const;
  StreamStats stream_stats(int stream) const;
  PipelineStats stats() const;
  const Detector& detector() const;  // class names, family, thresholds in use
  int max_batch() const;
  // PipelineOptions::stages resolved (kSeparate or kInline).
  StageThreads stage_threads() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace damoyolo
