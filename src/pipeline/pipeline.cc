// The stages of damoyolo::Pipeline (damoyolo/pipeline.h has the picture).
//
// Who owns what, and when it moves:
//  - each stream has a pool of FrameBuffers; a buffer is on its free list,
//    in the source's hands, in its queue, or in a batch slot, and goes back
//    to the free list after the callback has seen it;
//  - batch slots (input tensor, output tensors, per-item detection lists)
//    circulate free → batcher → infer → post → free: with separate stage
//    threads there are kSlots, one filled while one is inferred and one is
//    post-processed; inline, one slot does all three in turn on one thread;
//  - per-stream queues and free lists share one mutex (mu_) so the live
//    policy can look at both at once; the slot channels have their own.
// Per-stream order holds because every hand-off is FIFO and the batcher
// takes a stream's frames in queue order.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <sched.h>

#include "damoyolo/pipeline.h"
#include "pipeline/batch_buffers.h"
#include "pipeline/channel.h"

namespace damoyolo {

namespace {

using Clock = std::chrono::steady_clock;
// Filling, inferring, post-processing: enough for each stage to have one.
constexpr int kSlots = 3;

// The cores this process may run on (its affinity mask, as OpenMP counts them).
int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

struct Stream {
  std::unique_ptr<Source> source;
  StreamOptions options;
  bool drop = false;  // resolved policy: drop the oldest rather than block
  std::vector<std::unique_ptr<FrameBuffer>> buffers;
  pipeline::Ring<FrameBuffer*> free, queue;  // guarded by Impl::mu
  std::condition_variable space;             // a buffer or a queue place came free, or stop
  bool source_done = false;                  // guarded by mu
  bool end_queued = false;                   // batcher thread only
  // Read by the batcher itself, in turn with inference (StageThreads::kInline,
  // not live): no thread of its own, so decoding never runs beside inference.
  bool inline_read = false;
  int64_t next_index = 0;  // inline_read: the next frame's index
  // zero_copy_input off: what the source decodes into before the copy.
  FrameBuffer decoded_copy;
  std::thread thread;
  // Counters, written by one thread each, read by stream_stats at any time.
  std::atomic<int64_t> decoded{0}, inferred{0}, dropped{0}, skipped{0}, failed{0}, cancelled{0};
  Status error;  // guarded by mu
  std::string warning;
  int64_t reconnects = 0;  // guarded by mu
  bool stopped = false;
  double seconds = 0;
};

struct Item {
  int stream = 0;
  FrameBuffer* frame = nullptr;  // null: the stream's end marker
  int position = -1;             // index in the batch input; -1: not inferred
  PreprocessInfo info;
  Status status;
  double preprocess_ms = 0;
};

// The batch buffers (pipeline/batch_buffers.h) and the frames in them.
struct Slot : pipeline::BatchBuffers {
  std::vector<Item> items;  // capacity reserved at start
  std::vector<std::vector<Detection>> detections;  // one list per batch position
  int positions = 0;
  Status infer_status;
  double infer_ms = 0;  // the batch's Session run
  Clock::time_point first_at;
};

}  // namespace

struct Pipeline::Impl {
  Session session;
  Detector detector;  // class names, family and the thresholds they resolve to
  PipelineOptions options;
  int max_batch = 1, in_w = 0, in_h = 0;
  StageThreads stages = StageThreads::kSeparate;  // resolved at create()
  int slot_count = kSlots;
  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<std::unique_ptr<Slot>> slots;
  std::unique_ptr<pipeline::Channel<Slot*>> free_slots, to_infer, to_post;
  size_t item_capacity = 0;
  Preprocessor preprocessor;    // batcher thread only
  Postprocessor postprocessor;  // post thread only
  const std::vector<Detection> no_detections{};  // what a failed frame points at
  FrameCallback on_frame;
  EndCallback on_end;

  std::mutex mu;
  std::condition_variable batcher_wake;
  std::atomic<bool> stop_requested{false}, cancel{false};
  std::thread batcher, inferrer, poster;
  bool started = false, joined = false;
  Clock::time_point start_time;
  std::atomic<bool> done{false};
  Status failure;  // the pipeline's own failure (a callback threw); guarded by mu

  std::atomic<int64_t> inferences{0}, inferred_frames{0}, timeout_batches{0};

  Status allocate();
  Status begin(FrameCallback frame_cb, EndCallback end_cb, bool caller_infers);
  void source_loop(int s);
  Result<bool> read_frame(Stream& st, FrameBuffer& fb);
  Result<bool> read_frame_untimed(Stream& st, FrameBuffer& fb);
  FrameBuffer* read_inline(Stream& st);
  void end_source(Stream& st, const Status& error, bool stopped);
  void batcher_loop();
  void infer_loop();
  void post_loop();
  void infer(Slot* slot);
  void post(Slot* slot);
  void give_back(Stream& st, FrameBuffer* fb);
  void fail(const Status& st);
  StreamStats snapshot(int stream);
};

Pipeline::Pipeline() = default;
Pipeline::~Pipeline() {
  if (impl_ && impl_->started && !impl_->joined) {
    stop(StopMode::kCancel);
    (void)wait();
  }
}
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;

Result<Pipeline> Pipeline::create(const Session& session, const PipelineOptions& options) {
  if (session.inputs().empty()) return Status(ErrorCode::kInvalidArgument, "the session has no model loaded");
  if (options.max_batch < 1) return Status(ErrorCode::kInvalidArgument, "max_batch must be at least 1");
  if (options.batch_timeout_us < 0) return Status(ErrorCode::kInvalidArgument, "batch_timeout_us must not be negative");
  if (options.queue_depth < 1) return Status(ErrorCode::kInvalidArgument, "queue_depth must be at least 1");
  auto detector = Detector::create(session, options.detector);
  if (!detector.ok()) return detector.status();
  auto impl = std::make_unique<Impl>();
  impl->session = session;
  impl->detector = std::move(*detector);
  impl->options = options;
  // A session compiled for batch N runs any k <= N (its own plan per k);
  // more than N it cannot.
  const int64_t compiled = std::max<int64_t>(1, session.inputs()[0].dims[0]);
  impl->max_batch = static_cast<int>(std::min<int64_t>(options.max_batch, compiled));
  impl->in_w = impl->detector.input_width();
  impl->in_h = impl->detector.input_height();
  impl->stages = options.stages;
  if (impl->stages == StageThreads::kAuto) {
    const int team = session.threads();  // 0: OpenMP's default, every core
    impl->stages = team == 0 || team >= usable_cores() ? StageThreads::kInline : StageThreads::kSeparate;
  }
  impl->slot_count = impl->stages == StageThreads::kInline ? 1 : kSlots;
  impl->preprocessor =
      Preprocessor(PreprocessOptions{options.detector.simd_preprocess, options.detector.fused_preprocess});
  impl->postprocessor = Postprocessor(impl->detector.postprocess_options());
  Status st = impl->postprocessor.set_input_size(impl->in_w, impl->in_h);
  if (!st.ok()) return st;
  Pipeline p;
  p.impl_ = std::move(impl);
  return p;
}

Result<Pipeline> Pipeline::create(const std::string& model_path, const PipelineOptions& options) {
  SessionOptions so = options.detector.session;
  so.batch = std::max(1, options.max_batch);
  auto session = Session::load(model_path, so);
  if (!session.ok()) return session.status();
  return create(*session, options);
}

Result<int> Pipeline::add_stream(std::unique_ptr<Source> source, const StreamOptions& options) {
  if (!impl_) return Status(ErrorCode::kInvalidArgument, "the pipeline was not created");
  if (impl_->started) return Status(ErrorCode::kInvalidArgument, "add_stream after start()");
  if (!source) return Status(ErrorCode::kInvalidArgument, "no source");
  if (options.infer_every < 1) return Status(ErrorCode::kInvalidArgument, "infer_every must be at least 1");
  auto s = std::make_unique<Stream>();
  s->drop = options.policy == StreamPolicy::kDropOldest || (options.policy == StreamPolicy::kAuto && source->live());
  s->source = std::move(source);
  s->options = options;
  impl_->streams.push_back(std::move(s));
  return static_cast<int>(impl_->streams.size() - 1);
}

// Every pool, sized here once. Frames per stream: its queue, plus as many
// as all batch slots can hold from it, plus the one being decoded — so a
// source only ever waits for a buffer when the batches downstream are full.
Status Pipeline::Impl::allocate() {
  const int n = static_cast<int>(streams.size());
  item_capacity = static_cast<size_t>(max_batch + n);
  for (auto& s : streams) {
    const int count = options.queue_depth + slot_count * max_batch + 1;
    s->free = pipeline::Ring<FrameBuffer*>(static_cast<size_t>(count));
    s->queue = pipeline::Ring<FrameBuffer*>(static_cast<size_t>(options.queue_depth));
    for (int i = 0; i < count; ++i) {
      auto fb = std::make_unique<FrameBuffer>();
      if (options.detector.frame_pool && s->source->width() > 0 && s->source->height() > 0) {
        Status st = fb->reshape(s->source->width(), s->source->height(), PixelFormat::kBGR8);
        if (!st.ok()) return Status(st.code(), s->source->name() + ": " + st.message());
      }
      s->free.push(fb.get());
      s->buffers.push_back(std::move(fb));
    }
  }
  const int max_det = detector.postprocess_options().max_det;
  for (int i = 0; i < slot_count; ++i) {
    auto slot = std::make_unique<Slot>();
    if (options.detector.preallocated_buffers) slot->allocate(session, max_batch, in_h, in_w);
    slot->items.reserve(item_capacity);
    slot->detections.resize(static_cast<size_t>(max_batch));
    if (options.detector.preallocated_buffers)
      for (auto& d : slot->detections) d.reserve(static_cast<size_t>(max_det > 0 ? max_det : 1000));
    slots.push_back(std::move(slot));
  }
  free_slots = std::make_unique<pipeline::Channel<Slot*>>(static_cast<size_t>(slot_count));
  to_infer = std::make_unique<pipeline::Channel<Slot*>>(static_cast<size_t>(slot_count));
  to_post = std::make_unique<pipeline::Channel<Slot*>>(static_cast<size_t>(slot_count));
  for (auto& slot : slots) free_slots->push(slot.get());
  return Status::Ok();
}

Status Pipeline::start(FrameCallback on_frame, EndCallback on_end) {
  return impl_ ? impl_->begin(std::move(on_frame), std::move(on_end), /*caller_infers=*/false)
               : Status(ErrorCode::kInvalidArgument, "the pipeline was not created");
}

// The inference stage on the calling thread (the batcher's loop inline, the
// infer loop with separate stages), so oneDNN runs on the OpenMP team of the
// thread that loaded the model. libgomp keeps one team per thread that ever
// started a parallel region, and an idle team's workers keep spinning: a
// second team on another thread lost 35 % of the frame rate on 2 cores
// (docs/streams.md, "Thread budget").
Status Pipeline::run(FrameCallback on_frame, EndCallback on_end) {
  if (!impl_) return Status(ErrorCode::kInvalidArgument, "the pipeline was not created");
  Impl& m = *impl_;
  Status st = m.begin(std::move(on_frame), std::move(on_end), /*caller_infers=*/true);
  if (!st.ok()) return st;
  if (m.stages == StageThreads::kInline) m.batcher_loop();
  else m.infer_loop();
  return wait();
}

Status Pipeline::Impl::begin(FrameCallback frame_cb, EndCallback end_cb, bool caller_infers) {
  Impl& m = *this;
  if (m.started) return Status(ErrorCode::kInvalidArgument, "start() called twice");
  if (m.streams.empty()) return Status(ErrorCode::kInvalidArgument, "no streams");
  if (!frame_cb) return Status(ErrorCode::kInvalidArgument, "no frame callback");
  try {
    Status st = m.allocate();
    if (!st.ok()) return st;
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kOutOfRange, "out of memory allocating the pipeline's pools");
  }
  m.on_frame = std::move(frame_cb);
  m.on_end = std::move(end_cb);
  m.started = true;
  m.start_time = Clock::now();
  // Inline, a file is read by the batcher when it wants the next frame; a
  // live source keeps its thread, as it must be read at its own pace. Set
  // before any thread starts: the batcher reads it from its first pass.
  for (auto& st : m.streams) st->inline_read = m.stages == StageThreads::kInline && !st->drop;
  if (m.stages == StageThreads::kSeparate) {
    m.poster = std::thread([&m] { m.post_loop(); });
    if (!caller_infers) m.inferrer = std::thread([&m] { m.infer_loop(); });
  }
  if (m.stages == StageThreads::kSeparate || !caller_infers) m.batcher = std::thread([&m] { m.batcher_loop(); });
  for (int s = 0; s < static_cast<int>(m.streams.size()); ++s)
    if (!m.streams[s]->inline_read) m.streams[s]->thread = std::thread([&m, s] { m.source_loop(s); });
  return Status::Ok();
}

void Pipeline::stop(StopMode mode) {
  if (!impl_) return;
  Impl& m = *impl_;
  if (mode == StopMode::kCancel) m.cancel = true;
  m.stop_requested = true;
  std::lock_guard lock(m.mu);
  for (auto& s : m.streams) s->space.notify_all();
  m.batcher_wake.notify_all();
}

Status Pipeline::wait() {
  if (!impl_ || !impl_->started) return Status(ErrorCode::kInvalidArgument, "the pipeline was not started");
  Impl& m = *impl_;
  if (!m.joined) {
    for (auto& s : m.streams)
      if (s->thread.joinable()) s->thread.join();
    if (m.batcher.joinable()) m.batcher.join();
    if (m.inferrer.joinable()) m.inferrer.join();
    if (m.poster.joinable()) m.poster.join();
    m.joined = true;
  }
  std::lock_guard lock(m.mu);
  return m.failure;
}

bool Pipeline::finished() const { return impl_ && impl_->done; }
int Pipeline::num_streams() const { return impl_ ? static_cast<int>(impl_->streams.size()) : 0; }
int Pipeline::max_batch() const { return impl_ ? impl_->max_batch : 0; }
StageThreads Pipeline::stage_threads() const { return impl_ ? impl_->stages : StageThreads::kAuto; }
const Detector& Pipeline::detector() const { return impl_->detector; }

StreamStats Pipeline::stream_stats(int stream) const {
  if (!impl_ || stream < 0 || stream >= static_cast<int>(impl_->streams.size())) return {};
  return impl_->snapshot(stream);
}

StreamStats Pipeline::Impl::snapshot(int stream) {
  StreamStats out;
  const Stream& s = *streams[stream];
  out.decoded = s.decoded;
  out.inferred = s.inferred;
  out.dropped = s.dropped;
  out.skipped = s.skipped;
  out.failed = s.failed;
  out.cancelled = s.cancelled;
  std::lock_guard lock(mu);
  out.error = s.error;
  out.warning = s.warning;
  out.reconnects = s.reconnects;
  out.stopped = s.stopped;
  out.seconds = s.seconds;
  return out;
}

PipelineStats Pipeline::stats() const {
  PipelineStats out;
  if (!impl_) return out;
  out.inferences = impl_->inferences;
  out.inferred_frames = impl_->inferred_frames;
  out.timeout_batches = impl_->timeout_batches;
  return out;
}

void Pipeline::Impl::give_back(Stream& st, FrameBuffer* fb) {
  // No pool (frame_pool off): the frame's memory goes back to the heap and
  // the next frame allocates its own; the buffer object only counts the
  // frames in flight, so backpressure is the same.
  if (!options.detector.frame_pool) fb->release();
  std::lock_guard lock(mu);
  st.free.push(fb);
  st.space.notify_all();
}

void Pipeline::Impl::fail(const Status& st) {
  {
    std::lock_guard lock(mu);
    if (failure.ok()) failure = st;
  }
  cancel = true;
  stop_requested = true;
  std::lock_guard lock(mu);
  for (auto& s : streams) s->space.notify_all();
  batcher_wake.notify_all();
}

// One per stream: decode into a free buffer and queue it. Under the drop
// policy a full queue loses its oldest frame instead of making the source
// wait, so a live source keeps reading at its own pace.
void Pipeline::Impl::source_loop(int s) {
  Stream& st = *streams[s];
  Status error;
  bool stopped = false;
  for (int64_t index = 0;; ++index) {
    FrameBuffer* fb = nullptr;
    {
      std::unique_lock lock(mu);
      for (;;) {
        if (stop_requested) break;
        if (!st.free.empty()) {
          fb = st.free.pop();
          break;
        }
        if (st.drop && !st.queue.empty()) {
          fb = st.queue.pop();
          ++st.dropped;
          break;
        }
        st.space.wait(lock);
      }
    }
    if (!fb) {
      stopped = true;
      break;
    }
    Result<bool> more = read_frame(st, *fb);
    if (!more.ok() || !*more) {
      if (!more.ok()) error = more.status();
      give_back(st, fb);
      break;
    }
    fb->index = index;
    ++st.decoded;
    if (index % st.options.infer_every != 0) {
      ++st.skipped;
      give_back(st, fb);
      continue;
    }
    std::unique_lock lock(mu);
    if (st.queue.full()) {
      if (st.drop) {
        st.free.push(st.queue.pop());
        ++st.dropped;
      } else {
        st.space.wait(lock, [&] { return !st.queue.full() || stop_requested; });
        if (st.queue.full()) {  // stopped while waiting: this frame is cancelled
          st.free.push(fb);
          ++st.cancelled;
          stopped = true;
          break;
        }
      }
    }
    st.queue.push(fb);
    batcher_wake.notify_one();
  }
  end_source(st, error, stopped);
}

// The source's read, timed (FrameBuffer::decode_ms), an exception turned
// into the stream's error.
Result<bool> Pipeline::Impl::read_frame(Stream& st, FrameBuffer& fb) {
  const auto t0 = Clock::now();
  Result<bool> more = false;
  try {
    more = read_frame_untimed(st, fb);
  } catch (const std::exception& e) {
    more = Status(ErrorCode::kInternal, st.source->name() + ": " + e.what());
  }
  fb.decode_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return more;
}

// With zero_copy_input off, into the stream's own frame first and then
// copied into the pool's buffer (as a decoder that returns its own image
// would make the caller do).
Result<bool> Pipeline::Impl::read_frame_untimed(Stream& st, FrameBuffer& fb) {
  if (options.detector.zero_copy_input) return st.source->read(fb);
  FrameBuffer& own = st.decoded_copy;
  Result<bool> more = st.source->read(own);
  if (!more.ok() || !*more) return more;
  Status shaped = fb.reshape(own.width(), own.height(), own.format());
  if (!shaped.ok()) return shaped;
  const size_t row = static_cast<size_t>(own.width()) * static_cast<size_t>(pixel_format_bytes(own.format()));
  for (int y = 0; y < own.height(); ++y) std::memcpy(fb.data() + y * fb.stride(), own.data() + y * own.stride(), row);
  fb.time_s = own.time_s;
  return true;
}

void Pipeline::Impl::end_source(Stream& st, const Status& error, bool stopped) {
  std::string warning;
  if (error.ok() && !stopped) warning = st.source->end_warning();
  const int64_t reconnects = st.source->reconnects();
  std::lock_guard lock(mu);
  st.reconnects = reconnects;
  st.error = error;
  st.warning = warning;
  st.stopped = stopped;
  st.source_done = true;
  batcher_wake.notify_one();
}

// The batcher's read of an inline stream: the next frame to infer (skipping
// as infer_every says), or null once the stream has ended (source_done set).
// A buffer is always free here: the one slot holds at most max_batch of the
// stream's queue_depth + max_batch + 1 buffers, and none are queued.
FrameBuffer* Pipeline::Impl::read_inline(Stream& st) {
  for (;;) {
    if (stop_requested) {
      end_source(st, Status::Ok(), true);
      return nullptr;
    }
    FrameBuffer* fb = nullptr;
    {
      std::lock_guard lock(mu);
      if (!st.free.empty()) fb = st.free.pop();
    }
    if (!fb) {
      end_source(st, Status(ErrorCode::kInternal, st.source->name() + ": no free frame buffer"), false);
      return nullptr;
    }
    Result<bool> more = read_frame(st, *fb);
    if (!more.ok() || !*more) {
      give_back(st, fb);
      end_source(st, more.ok() ? Status::Ok() : more.status(), false);
      return nullptr;
    }
    fb->index = st.next_index++;
    ++st.decoded;
    if (fb->index % st.options.infer_every == 0) return fb;
    ++st.skipped;
    give_back(st, fb);
  }
}

// Takes frames round-robin across streams, preprocesses each into the next
// position of the current slot, and pushes the slot when it holds max_batch
// frames, when batch_timeout_us has passed since its first frame, or when
// no stream can give more. A stream that has ended gets an end marker in
// line after its last frame, so its end reaches the callback in order.
// Inline (StageThreads::kInline) a pushed slot is inferred and
// post-processed right here, and comes straight back.
void Pipeline::Impl::batcher_loop() {
  const int n = static_cast<int>(streams.size());
  const auto timeout = std::chrono::microseconds(options.batch_timeout_us);
  const size_t plane = static_cast<size_t>(3) * in_h * in_w;
  Slot* slot = nullptr;
  int next = 0;  // round-robin start
  int ended = 0;
  auto push = [&](bool by_timeout) {
    if (by_timeout && slot->positions < max_batch && slot->positions > 0) ++timeout_batches;
    if (stages == StageThreads::kInline) {
      infer(slot);
      post(slot);
      free_slots->push(slot);
    } else {
      to_infer->push(slot);
    }
    slot = nullptr;
  };
  for (;;) {
    if (!slot) {
      if (!free_slots->pop(slot)) break;
      slot->items.clear();
      slot->positions = 0;
      slot->infer_status = Status::Ok();
      if (!options.detector.preallocated_buffers) {
        // No preallocated batch (the ablation's off switch): this batch's
        // input is allocated now, its outputs at inference, and both freed
        // when the next batch replaces them.
        slot->input = Tensor(DType::kFloat32, {max_batch, 3, in_h, in_w});
        slot->outputs.clear();
        slot->bind_views(max_batch, in_h, in_w);
      }
    }
    int picked = -1;
    FrameBuffer* fb = nullptr;
    bool end_marker = false;
    {
      std::unique_lock lock(mu);
      for (int i = 0; i < n && picked < 0; ++i) {
        const int s = (next + i) % n;
        Stream& st = *streams[s];
        if (st.inline_read && !st.source_done) {
          lock.unlock();
          fb = read_inline(st);
          lock.lock();
          if (fb) {
            picked = s;
            continue;
          }
        }
        if (!st.queue.empty()) {
          fb = st.queue.pop();
          st.space.notify_all();
          picked = s;
        } else if (st.source_done && !st.end_queued) {
          st.end_queued = true;
          end_marker = true;
          picked = s;
        }
      }
      if (picked < 0) {
        if (ended == n) {
          lock.unlock();
          if (!slot->items.empty()) push(false);
          break;
        }
        if (slot->items.empty()) {
          batcher_wake.wait(lock);
        } else if (Clock::now() >= slot->first_at + timeout || slot->positions == 0) {
          // A slot of end markers or failed frames only has nothing to wait for.
          lock.unlock();
          push(true);
        } else {
          batcher_wake.wait_until(lock, slot->first_at + timeout);
        }
        continue;
      }
    }
    next = (picked + 1) % n;
    Stream& st = *streams[picked];
    if (end_marker) {
      ++ended;
      slot->items.push_back(Item{picked, nullptr, -1, {}, Status::Ok(), 0});
    } else if (cancel) {
      ++st.cancelled;
      give_back(st, fb);
      continue;
    } else {
      Item item{picked, fb, -1, {}, Status::Ok(), 0};
      const auto t0 = Clock::now();
      item.status = preprocessor.run(fb->view(), in_w, in_h, options.detector.resize,
                                     slot->input.data<float>() + static_cast<size_t>(slot->positions) * plane,
                                     &item.info);
      item.preprocess_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (item.status.ok()) item.position = slot->positions++;
      if (slot->items.empty()) slot->first_at = Clock::now();
      slot->items.push_back(item);
    }
    if (slot->items.size() == 1 && end_marker) slot->first_at = Clock::now();
    if (slot->positions == max_batch || slot->items.size() == item_capacity) push(false);
  }
  if (stages == StageThreads::kInline) {
    free_slots->close();
    done = true;
  } else {
    to_infer->close();
  }
}

// The only stage that computes in parallel: Session::run_into uses the
// session's OpenMP team; everything else runs on one thread each.
void Pipeline::Impl::infer_loop() {
  Slot* slot = nullptr;
  while (to_infer->pop(slot)) {
    infer(slot);
    to_post->push(slot);
  }
  to_post->close();
}

void Pipeline::Impl::infer(Slot* slot) {
  const int k = slot->positions;
  slot->used_outputs = nullptr;
  if (!options.detector.preallocated_buffers && k > 0) {
    slot->outputs = session.make_outputs(max_batch);
    slot->bind_views(max_batch, in_h, in_w);
  }
  if (k > 0) {
    const auto t0 = Clock::now();
    slot->infer_status = slot->run_first(session, k, max_batch, in_h, in_w);
    slot->infer_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    ++inferences;
    inferred_frames += k;
  }
}

// Decodes the head and runs NMS per frame into the slot's detection lists,
// then hands each frame to the callback in order and its buffer back.
void Pipeline::Impl::post_loop() {
  Slot* slot = nullptr;
  while (to_post->pop(slot)) {
    post(slot);
    free_slots->push(slot);
  }
  free_slots->close();
  done = true;
}

void Pipeline::Impl::post(Slot* slot) {
  for (Item& item : slot->items) {
    Stream& st = *streams[item.stream];
    if (!item.frame) {
      {
        std::lock_guard lock(mu);
        st.seconds = std::chrono::duration<double>(Clock::now() - start_time).count();
      }
      if (on_end) {
        try {
          on_end(item.stream, snapshot(item.stream));
        } catch (const std::exception& e) {
          fail(Status(ErrorCode::kInternal, std::string("end callback threw: ") + e.what()));
        }
      }
      continue;
    }
    FrameResult result;
    result.stream = item.stream;
    result.frame = item.frame;
    result.detections = &no_detections;
    result.status = item.status;
    result.timings.decode_ms = item.frame->decode_ms;
    result.timings.preprocess_ms = item.preprocess_ms;
    if (slot->positions > 0) result.timings.inference_ms = slot->infer_ms / slot->positions;
    if (item.status.ok()) {
      if (!slot->infer_status.ok()) {
        result.status = slot->infer_status;
      } else {
        const auto t0 = Clock::now();
        std::vector<Detection>& dets = slot->detections[static_cast<size_t>(item.position)];
        if (!options.detector.preallocated_buffers) std::vector<Detection>().swap(dets);  // a list of its own
        try {
          result.status = postprocessor.process(*slot->used_outputs, BoxScale{item.info.scale_x, item.info.scale_y},
                                                item.position, &dets);
        } catch (const std::exception& e) {
          result.status = Status(ErrorCode::kInternal, e.what());
        }
        if (result.status.ok()) result.detections = &dets;
        result.timings.postprocess_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      }
    }
    if (result.status.ok()) ++st.inferred;
    else ++st.failed;
    try {
      on_frame(result);
    } catch (const std::exception& e) {
      fail(Status(ErrorCode::kInternal, std::string("frame callback threw: ") + e.what()));
    }
    give_back(st, item.frame);
  }
}

}  // namespace damoyolo
