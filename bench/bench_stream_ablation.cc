// The technique table of docs/streams.md: one video stream through
// damoyolo::Pipeline with every optimisation on, then with each one off in
// turn (the rows of damoyolo/optimizations.h, and the pipeline's stage
// threading), then with all of them off. For each row:
//   FPS          median and best over the rounds (frames / wall time, decode
//                to callback)
//   speed-up     what the technique gives: median time off / median time on - 1
//   (peak RSS is not a column: in one process, memory a row frees stays
//   with the allocator and the next row reuses it, so per-row peaks measured
//   here say little; docs/streams.md measures it with one process per row.)
//   allocs/frame operator new calls (every thread) per frame, after the
//                row's first 16 frames; FFmpeg's malloc is not counted
//   detections   "identical": every frame's detections equal, bit for bit, to
//                the all-on row's; "equal within tolerance": same classes, IoU
//                >= 0.99, scores within 1e-4 (engine switches reorder float math)
//
// usage: bench_stream_ablation MODEL CLIP [--rounds R] [--threads N] [--frames F]
//        bench_stream_ablation --soak MODEL CLIP FRAMES [--threads N]
//        bench_stream_ablation --live MODEL CLIP FPS SECONDS [--threads N]
// Rows run round-robin, R passes over all of them, so a drift in machine load
// hits every row alike. --soak loops the clip for FRAMES frames through one
// pipeline with everything on and prints resident memory every 1000 frames:
// the "flat over 10,000 frames" figure. --live plays the clip's frames (decoded
// once, up front) as a camera would, at FPS for SECONDS, whether or not they
// are read, and prints what the live policy did: frames inferred and
// dropped, and the latency from a frame's capture time to its callback.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "damoyolo/optimizations.h"
#include "damoyolo/pipeline.h"
#include "damoyolo/video_source.h"

// Every operator new in the process, counted while `g_counting` is set.
namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocs{0};
}  // namespace

// GCC cannot see that these deletes pair with the mallocs above.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, std::align_val_t a) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  const size_t al = static_cast<size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace damoyolo;
using Clock = std::chrono::steady_clock;

namespace {

// kB from /proc/self/status ("VmHWM:" peak, "VmRSS:" current).
long status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0) return std::atol(line.c_str() + n);
  return -1;
}

struct Config {
  std::string name;
  DetectorOptions options;
  StageThreads stages = StageThreads::kAuto;
};

struct Row {
  std::vector<double> seconds;
  double allocs_per_frame = 0;
  int64_t frames = 0;
  int64_t differing = 0;  // frames whose detections are not bit-identical to the all-on row's
  int64_t not_equivalent = 0;  // ... nor within the tolerance of equivalent()
  bool failed = false;
};

// One frame's detections, stored without allocating during the run: each
// list is reserved up front for max_det.
using Frames = std::vector<std::vector<Detection>>;

bool same(const std::vector<Detection>& a, const std::vector<Detection>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(Detection)) != 0) return false;
  return true;
}

float iou(const Detection& a, const Detection& b) {
  const float w = std::max(0.f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  const float h = std::max(0.f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  const float inter = w * h;
  const float u = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return u > 0 ? inter / u : 1.f;
}

// The engine's switches change the order of float arithmetic (reference
// kernels, plain layouts), so their rows are compared as bench_ablation
// does: every detection matched to one of the same class with IoU >= 0.99
// and score within 1e-4 (an order swap of near-equal scores is allowed).
bool equivalent(const std::vector<Detection>& a, const std::vector<Detection>& b) {
  if (a.size() != b.size()) return false;
  std::vector<char> used(b.size(), 0);
  for (const Detection& d : a) {
    bool found = false;
    for (size_t j = 0; j < b.size() && !found; ++j) {
      if (used[j] || b[j].class_id != d.class_id || std::fabs(b[j].score - d.score) > 1e-4f || iou(d, b[j]) < 0.99f)
        continue;
      used[j] = 1;
      found = true;
    }
    if (!found) return false;
  }
  return true;
}

// Runs the clip once with `c`; fills `out` (per frame index) and returns
// seconds, or a negative value on failure.
double run_once(const Session& session, const std::string& clip, const Config& c, int64_t max_frames, Frames& out,
                int64_t* frames, double* allocs_per_frame) {
  PipelineOptions po;
  po.detector = c.options;
  po.stages = c.stages;
  auto pipe = Pipeline::create(session, po);
  if (!pipe.ok()) {
    std::fprintf(stderr, "%s: %s\n", c.name.c_str(), pipe.status().to_string().c_str());
    return -1;
  }
  auto src = open_video_source(clip);
  if (!src.ok() || !pipe->add_stream(std::move(*src)).ok()) return -1;
  constexpr int64_t kWarm = 16;
  int64_t delivered = 0, counted_from = 0;
  bool bad = false;
  const auto t = Clock::now();
  Status st = pipe->run([&](FrameResult& r) {
    if (!r.status.ok()) bad = true;
    const auto i = static_cast<size_t>(r.frame->index);
    if (i < out.size()) out[i].assign(r.detections->begin(), r.detections->end());
    if (++delivered == kWarm) {
      g_allocs = 0;
      counted_from = delivered;
      g_counting = true;
    }
    if (max_frames > 0 && delivered == max_frames) pipe->stop(StopMode::kCancel);
  });
  if (!st.ok() || bad) return -1;
  const double s = std::chrono::duration<double>(Clock::now() - t).count();
  g_counting = false;
  *frames = delivered;
  *allocs_per_frame =
      delivered > counted_from ? static_cast<double>(g_allocs) / static_cast<double>(delivered - counted_from) : 0;
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Loops a clip: reopens it at its end, for `frames` frames in all.
class LoopedClip : public Source {
 public:
  LoopedClip(std::string path, int64_t frames) : path_(std::move(path)), left_(frames) {}
  Result<bool> read(FrameBuffer& fb) override {
    if (left_ <= 0) return false;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!src_) {
        auto s = open_video_source(path_);
        if (!s.ok()) return s.status();
        src_ = std::move(*s);
      }
      auto more = src_->read(fb);
      if (!more.ok()) return more;
      if (*more) {
        --left_;
        return true;
      }
      src_.reset();  // the end: reopen
    }
    return Status(ErrorCode::kIOError, path_ + ": no frames");
  }
  bool live() const override { return false; }
  const std::string& name() const override { return path_; }

 private:
  std::string path_;
  int64_t left_;
  std::unique_ptr<Source> src_;
};

// A camera: the clip's frames (decoded up front), each released at its
// capture time on the source's own thread; the pipeline's live policy
// (drop the oldest queued frame) decides what gets inferred.
class PacedCamera : public Source {
 public:
  PacedCamera(std::vector<FrameBuffer>& frames, double fps, double seconds)
      : frames_(frames), period_(1.0 / fps), total_(static_cast<int64_t>(fps * seconds)) {}
  Result<bool> read(FrameBuffer& fb) override {
    if (next_ == 0) start_ = Clock::now();
    if (next_ >= total_) return false;
    // The source's own thread waits for the next frame's capture time, as a
    // blocking camera read does.
    std::this_thread::sleep_until(start_ + std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(period_ * static_cast<double>(next_))));
    const FrameBuffer& f = frames_[static_cast<size_t>(next_) % frames_.size()];
    Status st = fb.reshape(f.width(), f.height(), f.format());
    if (!st.ok()) return st;
    for (int y = 0; y < f.height(); ++y)
      std::memcpy(fb.data() + y * fb.stride(), f.data() + y * f.stride(), static_cast<size_t>(f.width()) * 3);
    fb.time_s = period_ * static_cast<double>(next_);
    ++next_;
    return true;
  }
  bool live() const override { return true; }
  const std::string& name() const override { return name_; }
  int width() const override { return frames_[0].width(); }
  int height() const override { return frames_[0].height(); }
  Clock::time_point start() const { return start_; }

 private:
  std::vector<FrameBuffer>& frames_;
  double period_;
  int64_t total_;
  int64_t next_ = 0;
  Clock::time_point start_;
  std::string name_ = "paced camera";
};

int live(const std::string& model, const std::string& clip, double fps, double seconds, int threads) {
  std::vector<FrameBuffer> frames(64);
  {
    auto src = open_video_source(clip);
    if (!src.ok()) return 1;
    for (auto& f : frames) {
      auto more = (*src)->read(f);
      if (!more.ok() || !*more) return 1;
    }
  }
  PipelineOptions po;
  po.detector.session.threads = threads;
  auto pipe = Pipeline::create(model, po);
  if (!pipe.ok()) return 1;
  auto cam = std::make_unique<PacedCamera>(frames, fps, seconds);
  PacedCamera* camera = cam.get();
  if (!pipe->add_stream(std::move(cam)).ok()) return 1;
  std::vector<double> latency_ms;
  latency_ms.reserve(static_cast<size_t>(fps * seconds) + 1);
  Status st = pipe->run([&](FrameResult& r) {
    const double captured = r.frame->time_s;
    const double now = std::chrono::duration<double>(Clock::now() - camera->start()).count();
    latency_ms.push_back(1000.0 * (now - captured));
  });
  if (!st.ok()) return 1;
  const StreamStats s = pipe->stream_stats(0);
  std::sort(latency_ms.begin(), latency_ms.end());
  auto pct = [&](double p) {
    return latency_ms.empty() ? 0.0 : latency_ms[std::min(latency_ms.size() - 1, static_cast<size_t>(p * latency_ms.size()))];
  };
  std::printf("camera %.1f FPS for %.1f s: produced %lld, inferred %lld (%.2f FPS), dropped %lld, skipped %lld\n", fps,
              seconds, static_cast<long long>(s.decoded), static_cast<long long>(s.inferred), s.inferred / s.seconds,
              static_cast<long long>(s.dropped), static_cast<long long>(s.skipped));
  std::printf("latency capture -> callback, ms: median %.1f, p90 %.1f, p99 %.1f, max %.1f\n", pct(0.5), pct(0.9),
              pct(0.99), latency_ms.empty() ? 0.0 : latency_ms.back());
  return s.decoded == s.inferred + s.dropped + s.skipped + s.failed ? 0 : 1;
}

int soak(const std::string& model, const std::string& clip, int64_t frames, int threads) {
  PipelineOptions po;
  po.detector.session.threads = threads;
  auto pipe = Pipeline::create(model, po);
  if (!pipe.ok()) {
    std::fprintf(stderr, "%s\n", pipe.status().to_string().c_str());
    return 1;
  }
  if (!pipe->add_stream(std::make_unique<LoopedClip>(clip, frames)).ok()) return 1;
  int64_t delivered = 0, allocs_at = 0;
  const auto t = Clock::now();
  std::printf("%8s %10s %10s %12s %14s\n", "frames", "seconds", "RSS MiB", "peak MiB", "allocs/frame");
  Status st = pipe->run([&](FrameResult& r) {
    if (!r.status.ok()) std::fprintf(stderr, "frame %lld: %s\n", static_cast<long long>(r.frame->index),
                                     r.status.to_string().c_str());
    ++delivered;
    if (delivered == 100) {
      g_allocs = 0;
      allocs_at = delivered;
      g_counting = true;
    }
    if (delivered % 1000 == 0 || delivered == 100) {
      const double per = delivered > allocs_at ? static_cast<double>(g_allocs) / (delivered - allocs_at) : 0;
      std::printf("%8lld %10.1f %10.1f %12.1f %14.1f\n", static_cast<long long>(delivered),
                  std::chrono::duration<double>(Clock::now() - t).count(), status_kb("VmRSS:") / 1024.0,
                  status_kb("VmHWM:") / 1024.0, per);
      std::fflush(stdout);
    }
  });
  return st.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  int rounds = 3, threads = 2;
  int64_t max_frames = 0;
  bool soak_mode = false, live_mode = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--frames" && i + 1 < argc) max_frames = std::atoll(argv[++i]);
    else if (a == "--soak") soak_mode = true;
    else if (a == "--live") live_mode = true;
    else pos.push_back(a);
  }
  if (live_mode) {
    if (pos.size() != 4) {
      std::fprintf(stderr, "usage: %s --live MODEL CLIP FPS SECONDS [--threads N]\n", argv[0]);
      return 2;
    }
    return live(pos[0], pos[1], std::atof(pos[2].c_str()), std::atof(pos[3].c_str()), threads);
  }
  if (soak_mode) {
    if (pos.size() != 3) {
      std::fprintf(stderr, "usage: %s --soak MODEL CLIP FRAMES [--threads N]\n", argv[0]);
      return 2;
    }
    return soak(pos[0], pos[1], std::atoll(pos[2].c_str()), threads);
  }
  if (pos.size() != 2 || rounds < 1) {
    std::fprintf(stderr, "usage: %s MODEL CLIP [--rounds R] [--threads N] [--frames F]\n", argv[0]);
    return 2;
  }
  const std::string model = pos[0], clip = pos[1];

  // The rows: all on; each switch off alone (session switches need a session
  // of their own: each config loads the model with its options); the stage
  // threads flipped; all off.
  std::vector<Config> configs;
  DetectorOptions on;
  on.session.threads = threads;
  configs.push_back({"all on", on, StageThreads::kAuto});
  for (const OptimizationSwitch& s : optimization_switches()) {
    Config c{std::string(s.name) + " off", on, StageThreads::kAuto};
    set_optimization(c.options, s, false);
    configs.push_back(c);
  }
  {
    // The write-up's parallel NMS (per class, on the OpenMP team) in place
    // of the fast NMS; the "fast_nms off" row is the plain one.
    Config c{"fast_nms off, per-class parallel NMS", on, StageThreads::kAuto};
    c.options.fast_nms = false;
    c.options.parallel_class_nms = true;
    configs.push_back(c);
  }
  {
    // The default resolves to one of the two; the row is the other.
    auto probe = Pipeline::create(model, PipelineOptions{on});
    if (!probe.ok()) {
      std::fprintf(stderr, "%s\n", probe.status().to_string().c_str());
      return 1;
    }
    const bool inl = probe->stage_threads() == StageThreads::kInline;
    configs.push_back({inl ? "stages on separate threads" : "stages inline", on,
                       inl ? StageThreads::kSeparate : StageThreads::kInline});
    std::printf("default stages: %s (threads %d)\n", inl ? "inline" : "separate", threads);
  }
  DetectorOptions off = on;
  set_all_optimizations(off, false);
  configs.push_back({"all off", off, StageThreads::kAuto});

  std::vector<Session> sessions;
  for (const Config& c : configs) {
    auto s = Session::load(model, c.options.session);
    if (!s.ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name.c_str(), s.status().to_string().c_str());
      return 1;
    }
    sessions.push_back(std::move(*s));
  }

  Frames reference, current;
  auto reserve = [&](Frames& f) {
    f.assign(max_frames > 0 ? static_cast<size_t>(max_frames) : 1024, {});
    for (auto& d : f) d.reserve(300);  // max_det is 100 by default
  };
  reserve(reference);
  reserve(current);
  std::vector<Row> rows(configs.size());
  for (int r = 0; r < rounds; ++r) {
    for (size_t i = 0; i < configs.size(); ++i) {
      Frames& out = i == 0 && r == 0 ? reference : current;
      for (auto& d : out) d.clear();
      int64_t frames = 0;
      double apf = 0;
      const double s = run_once(sessions[i], clip, configs[i], max_frames, out, &frames, &apf);
      Row& row = rows[i];
      if (s < 0) {
        row.failed = true;
        continue;
      }
      row.seconds.push_back(s);
      row.allocs_per_frame = apf;
      row.frames = frames;
      if (!(i == 0 && r == 0)) {
        int64_t differing = 0, not_equivalent = 0;
        for (size_t f = 0; f < std::min<size_t>(out.size(), static_cast<size_t>(frames)); ++f) {
          differing += !same(out[f], reference[f]);
          not_equivalent += !equivalent(out[f], reference[f]);
        }
        row.differing = std::max(row.differing, differing);
        row.not_equivalent = std::max(row.not_equivalent, not_equivalent);
      }
      std::fprintf(stderr, "round %d %-32s %.3f s\n", r + 1, configs[i].name.c_str(), s);
    }
  }

  // Speed-ups from frame rates: with --frames, rows may deliver a frame or
  // two more than asked (those in flight when stop() comes).
  const double on_fps = rows[0].seconds.empty() ? 0 : rows[0].frames / median(rows[0].seconds);
  std::printf("\n| row | FPS median | FPS best | speed-up from the technique | allocs/frame | detections |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < configs.size(); ++i) {
    const Row& row = rows[i];
    if (row.failed || row.seconds.empty()) {
      std::printf("| %s | failed | | | | |\n", configs[i].name.c_str());
      continue;
    }
    const double med = median(row.seconds), best = *std::min_element(row.seconds.begin(), row.seconds.end());
    char gain[32] = "—";
    if (i > 0) std::snprintf(gain, sizeof gain, "%+.1f %%", 100.0 * (on_fps / (row.frames / med) - 1.0));
    char same_text[48];
    if (i == 0) std::snprintf(same_text, sizeof same_text, "reference");
    else if (row.differing == 0) std::snprintf(same_text, sizeof same_text, "identical");
    else if (row.not_equivalent == 0) std::snprintf(same_text, sizeof same_text, "equal within tolerance");
    else std::snprintf(same_text, sizeof same_text, "%lld frames differ", static_cast<long long>(row.not_equivalent));
    std::printf("| %s | %.2f | %.2f | %s | %.1f | %s |\n", configs[i].name.c_str(), row.frames / med,
                row.frames / best, gain, row.allocs_per_frame, same_text);
  }
  return 0;
}
