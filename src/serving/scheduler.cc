#include "serving/scheduler.h"

#include "pipeline/batch_buffers.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

namespace damoyolo::serving {
namespace {

double ms_since(Clock::time_point t0, Clock::time_point t1 = Clock::now()) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

// One batch in flight: its buffers (pipeline/batch_buffers.h) and the jobs in it.
struct Slot : pipeline::BatchBuffers {
  std::vector<Job> jobs;
  std::vector<PreprocessInfo> info;
  std::vector<Status> pre_status;
  std::vector<double> pre_ms, queue_ms;
  int k = 0;  // images in the network run
  Status infer_status;
  double infer_ms = 0;
};

}  // namespace

struct Scheduler::Impl {
  SchedulerOptions options;
  Metrics* metrics;
  Session session;
  Detector detector;
  int in_w = 0, in_h = 0;

  std::thread infer_thread;
  std::vector<std::thread> post_threads;

  std::mutex mu;
  std::condition_variable queue_cv, free_cv, post_cv;
  std::deque<Job> queue;
  int64_t outstanding = 0;  // accepted, not completed
  bool stopping = false;
  bool infer_done = false;
  std::vector<std::unique_ptr<Slot>> slots;
  std::deque<Slot*> free_slots, post_queue;
  std::atomic<bool> ready{false};

  void complete(Job& job, JobResult&& r) {
    if (job.done) {
      try {
        job.done(std::move(r));
      } catch (...) {
        // A callback that throws must not take the batcher down with it.
      }
    }
    std::lock_guard lock(mu);
    --outstanding;
  }

  void drop(Job& job, JobOutcome outcome, const char* why) {
    JobResult r;
    r.outcome = outcome;
    r.status = Status(ErrorCode::kInternal, why);
    r.timings.decode_ms = job.decode_ms;
    r.queue_ms = ms_since(job.enqueued);
    complete(job, std::move(r));
  }

  void run_inference(std::promise<Status>* loaded);
  void preprocess(Slot* slot, Preprocessor& pre);
  void infer(Slot* slot);
  void run_post();
};

Scheduler::Scheduler(SchedulerOptions options, Metrics* metrics) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->metrics = metrics;
}

Scheduler::~Scheduler() {
  stop();
  join();
}

Status Scheduler::start() {
  if (impl_->options.max_batch < 1) return Status(ErrorCode::kInvalidArgument, "max batch must be at least 1");
  if (impl_->options.max_queue < 1) return Status(ErrorCode::kInvalidArgument, "max queue must be at least 1");
  if (impl_->options.max_queue_delay_us < 0)
    return Status(ErrorCode::kInvalidArgument, "max queue delay must not be negative");
  std::promise<Status> loaded;
  auto result = loaded.get_future();
  Impl* impl = impl_.get();
  impl->infer_thread = std::thread([impl, &loaded] { impl->run_inference(&loaded); });
  Status st = result.get();
  if (!st.ok()) join();
  return st;
}

void Scheduler::Impl::run_inference(std::promise<Status>* loaded) {
  {
    SessionOptions so = options.detector.session;
    so.batch = options.max_batch;
    auto s = Session::load(options.model_path, so);
    if (!s.ok()) {
      std::lock_guard lock(mu);
      infer_done = true;
      loaded->set_value(s.status());
      return;
    }
    session = std::move(s).value();
    auto d = Detector::create(session, options.detector);
    if (!d.ok()) {
      std::lock_guard lock(mu);
      infer_done = true;
      loaded->set_value(d.status());
      return;
    }
    detector = std::move(d).value();
    in_w = detector.input_width();
    in_h = detector.input_height();
    const int max_batch = options.max_batch;
    // Two slots: one in the network while the other is post-processed.
    for (int i = 0; i < 2; ++i) {
      auto slot = std::make_unique<Slot>();
      slot->allocate(session, max_batch, in_h, in_w);
      slot->jobs.reserve(max_batch);
      free_slots.push_back(slot.get());
      slots.push_back(std::move(slot));
    }
    // Warm-up: every batch size once, so that the plans of the short batches
    // are compiled and the arenas allocated before the first client waits
    // for them (a first k=1 run compiles its plan: 87 ms instead of 2 ms on
    // the demo model). Readiness comes after.
    Slot* warm = slots.front().get();
    for (int k = max_batch; k >= 1; --k) {
      Status st;
      try {
        st = session.run_into(warm->inputs_k[k - 1], warm->outputs_k[k - 1]);
      } catch (const Error& e) {
        st = e.status();
      }
      if (!st.ok()) break;  // an engine without short batches: infer() falls back to the full one
    }
    for (int i = 0; i < std::max(1, options.post_threads); ++i) post_threads.emplace_back([this] { run_post(); });
    ready = true;
    loaded->set_value(Status::Ok());
  }

  Preprocessor pre(PreprocessOptions{options.detector.simd_preprocess, options.detector.fused_preprocess});
  const auto delay = std::chrono::microseconds(options.max_queue_delay_us);
  const size_t max_batch = static_cast<size_t>(options.max_batch);
  std::vector<std::pair<Job, JobOutcome>> dropped;
  dropped.reserve(max_batch * 4);
  for (;;) {
    std::unique_lock lock(mu);
    free_cv.wait(lock, [&] { return !free_slots.empty(); });
    Slot* slot = free_slots.front();
    free_slots.pop_front();
    queue_cv.wait(lock, [&] { return !queue.empty() || stopping; });
    if (queue.empty()) {  // stopping, and everything accepted has been taken
      free_slots.push_back(slot);
      break;
    }
    // A full batch, or the oldest image's delay, whichever comes first. When
    // stopping, what is queued runs at once.
    // A queued request's deadline also ends the wait: it is answered (504)
    // when its deadline passes, not when the batch would have started.
    auto until = queue.front().enqueued + delay;
    for (const Job& job : queue) until = std::min(until, job.deadline);
    queue_cv.wait_until(lock, until, [&] { return queue.size() >= max_batch || stopping; });
    const auto now = Clock::now();
    while (!queue.empty() && slot->jobs.size() < max_batch) {
      Job job = std::move(queue.front());
      queue.pop_front();
      if (job.cancelled && job.cancelled->load()) {
        dropped.emplace_back(std::move(job), JobOutcome::kCancelled);
      } else if (now >= job.deadline) {
        dropped.emplace_back(std::move(job), JobOutcome::kDeadline);
      } else {
        slot->jobs.push_back(std::move(job));
      }
    }
    lock.unlock();
    for (auto& [job, outcome] : dropped)
      drop(job, outcome,
           outcome == JobOutcome::kCancelled ? "the client went away" : "deadline exceeded while queued");
    dropped.clear();
    if (slot->jobs.empty()) {
      std::lock_guard relock(mu);
      free_slots.push_back(slot);
      free_cv.notify_one();
      continue;
    }
    preprocess(slot, pre);
    infer(slot);
    {
      std::lock_guard relock(mu);
      post_queue.push_back(slot);
    }
    post_cv.notify_one();
  }
  {
    std::lock_guard lock(mu);
    infer_done = true;
  }
  post_cv.notify_all();
}

void Scheduler::Impl::preprocess(Slot* slot, Preprocessor& pre) {
  const size_t n = slot->jobs.size();
  const size_t plane = static_cast<size_t>(3) * in_h * in_w;
  slot->info.assign(n, PreprocessInfo{});
  slot->pre_status.assign(n, Status::Ok());
  slot->pre_ms.assign(n, 0.0);
  slot->queue_ms.assign(n, 0.0);
  float* base = slot->input.data<float>();
  const auto now = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    Job& job = slot->jobs[i];
    slot->queue_ms[i] = ms_since(job.enqueued, now);
    const auto t0 = Clock::now();
    float* dst = base + i * plane;
    if (!job.image.empty()) {
      slot->pre_status[i] = pre.run(job.image.view(), in_w, in_h, options.detector.resize, dst, &slot->info[i]);
    } else if (job.tensor.dtype() == DType::kFloat32 && job.tensor.numel() == static_cast<int64_t>(plane)) {
      std::memcpy(dst, job.tensor.data<float>(), plane * sizeof(float));
    } else if (job.tensor.dtype() == DType::kUInt8 && job.tensor.numel() == static_cast<int64_t>(plane)) {
      const uint8_t* src = job.tensor.data<uint8_t>();
      for (size_t j = 0; j < plane; ++j) dst[j] = static_cast<float>(src[j]);
    } else {
      slot->pre_status[i] = Status(ErrorCode::kInvalidArgument, "input tensor is not [3, " + std::to_string(in_h) +
                                                                    ", " + std::to_string(in_w) + "]");
    }
    if (!slot->pre_status[i].ok()) std::memset(dst, 0, plane * sizeof(float));
    slot->pre_ms[i] = ms_since(t0);
  }
  slot->k = static_cast<int>(n);
}

void Scheduler::Impl::infer(Slot* slot) {
  const int k = slot->k;
  const int max_batch = options.max_batch;
  const auto t0 = Clock::now();
  slot->infer_status = slot->run_first(session, k, max_batch, in_h, in_w);
  slot->infer_ms = ms_since(t0);
  metrics->exec_count.fetch_add(1);
  metrics->inference_count.fetch_add(k);
  metrics->batch_size.observe(k);
  metrics->compute_infer_duration_us.fetch_add(static_cast<int64_t>(slot->infer_ms * 1000.0));
}

void Scheduler::Impl::run_post() {
  Postprocessor post(detector.postprocess_options());
  (void)post.set_input_size(in_w, in_h);
  for (;;) {
    Slot* slot = nullptr;
    {
      std::unique_lock lock(mu);
      post_cv.wait(lock, [&] { return !post_queue.empty() || infer_done; });
      if (post_queue.empty()) return;
      slot = post_queue.front();
      post_queue.pop_front();
    }
    const int k = slot->k;
    for (int i = 0; i < k; ++i) {
      Job& job = slot->jobs[static_cast<size_t>(i)];
      JobResult r;
      r.batch = k;
      r.queue_ms = slot->queue_ms[i];
      r.timings.decode_ms = job.decode_ms;
      r.timings.preprocess_ms = slot->pre_ms[i];
      r.timings.inference_ms = slot->infer_ms / k;
      if (!job.image.empty()) {
        r.width = job.image.width();
        r.height = job.image.height();
      } else {
        r.width = in_w;
        r.height = in_h;
      }
      const auto t0 = Clock::now();
      if (!slot->pre_status[i].ok()) {
        r.outcome = JobOutcome::kFailed;
        r.status = slot->pre_status[i];
      } else if (!slot->infer_status.ok()) {
        r.outcome = JobOutcome::kFailed;
        r.status = slot->infer_status;
      } else {
        Status st = post.set_options(job.post);
        if (st.ok()) {
          const BoxScale scale = job.image.empty() ? BoxScale{} : BoxScale{slot->info[i].scale_x, slot->info[i].scale_y};
          st = post.process(*slot->used_outputs, scale, i, &r.detections);
        }
        if (!st.ok()) {
          r.outcome = JobOutcome::kFailed;
          r.status = st;
        }
      }
      r.timings.postprocess_ms = ms_since(t0);
      metrics->queue_duration_us.fetch_add(static_cast<int64_t>(r.queue_ms * 1000.0));
      metrics->queue_seconds.observe(r.queue_ms / 1000.0);
      metrics->compute_input_duration_us.fetch_add(
          static_cast<int64_t>((r.timings.decode_ms + r.timings.preprocess_ms) * 1000.0));
      metrics->compute_output_duration_us.fetch_add(static_cast<int64_t>(r.timings.postprocess_ms * 1000.0));
      complete(job, std::move(r));
    }
    // The decoded images are freed here, on a worker, not on the network's thread.
    slot->jobs.clear();
    {
      std::lock_guard lock(mu);
      free_slots.push_back(slot);
    }
    free_cv.notify_one();
  }
}

Admission Scheduler::submit(std::vector<Job>& jobs) {
  Impl& s = *impl_;
  const auto now = Clock::now();
  {
    std::lock_guard lock(s.mu);
    if (s.stopping || !s.ready) return Admission::kShuttingDown;
    if (s.outstanding + static_cast<int64_t>(jobs.size()) > s.options.max_queue) return Admission::kQueueFull;
    s.outstanding += static_cast<int64_t>(jobs.size());
    for (Job& job : jobs) {
      job.enqueued = now;
      s.queue.push_back(std::move(job));
    }
  }
  jobs.clear();
  s.queue_cv.notify_one();
  return Admission::kAccepted;
}

void Scheduler::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->queue_cv.notify_all();
}

void Scheduler::join() {
  if (impl_->infer_thread.joinable()) impl_->infer_thread.join();
  for (auto& t : impl_->post_threads)
    if (t.joinable()) t.join();
  impl_->post_threads.clear();
}

bool Scheduler::ready() const {
  std::lock_guard lock(impl_->mu);
  return impl_->ready && !impl_->stopping;
}
const Detector& Scheduler::detector() const { return impl_->detector; }
const Session& Scheduler::session() const { return impl_->session; }
int Scheduler::max_batch() const { return impl_->options.max_batch; }

}  // namespace damoyolo::serving
