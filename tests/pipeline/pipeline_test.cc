// damoyolo::Pipeline: ordering, identity with Detector::detect, batching
// across streams, backpressure, live drops, per-stream errors, shutdown,
// loopback HTTP, UDP and RTSP streams, reconnecting after a stream drops, and zero
// steady-state allocation.
//
// Kept fast (the folder runs under ASan too): small frames, the Ns 416
// model, a few dozen frames per test. Frames come from an in-memory source
// (exact pixels, an optional frame period to act live, an optional failure)
// or from short clips written here with OpenCV's VideoWriter.
#include <arpa/inet.h>
#include <sched.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <thread>

#include "damoyolo/optimizations.h"
#include "damoyolo/pipeline.h"
#include "damoyolo/video_source.h"
#include "testutil/alloc_counter.h"
#include "testutil/detection_match.h"
#include "testutil/ffmpeg_child.h"
#include "testutil/testutil.h"

namespace damoyolo {

// Readable test names in ctest ("... GetParam() = inline"); found by ADL, so
// in StageThreads' own namespace.
void PrintTo(StageThreads s, std::ostream* os) {
  *os << (s == StageThreads::kInline ? "inline" : s == StageThreads::kSeparate ? "separate" : "auto");
}

namespace {

using namespace std::chrono_literals;
constexpr int kW = 192, kH = 144;

std::string model_path() { return (testing::fixtures_dir() / "models" / "damoyolo_Ns_416.onnx").string(); }

// The astronaut fixture, BGR at kW x kH, shifted a little per frame so that
// consecutive frames differ (and still hold detections).
std::vector<cv::Mat> make_frames(int count) {
  auto img = decode_image_file(testing::fixture_image_path("astronaut_png").string());
  EXPECT_TRUE(img.ok());
  cv::Mat rgb(img->height(), img->width(), CV_8UC3, const_cast<uint8_t*>(img->view().data),
              static_cast<size_t>(img->view().stride));
  cv::Mat bgr, small;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  cv::resize(bgr, small, {kW + 32, kH});
  std::vector<cv::Mat> frames;
  for (int i = 0; i < count; ++i) frames.push_back(small(cv::Rect(i % 32, 0, kW, kH)).clone());
  return frames;
}

// Frames from memory. live: paced at `period` like a camera; fail_at:
// the read of that frame returns an error.
class MemorySource : public Source {
 public:
  MemorySource(std::string name, std::vector<cv::Mat> frames, bool live = false,
               std::chrono::microseconds period = 0us, int64_t fail_at = -1, bool endless = false)
      : name_(std::move(name)), frames_(std::move(frames)), live_(live), period_(period), fail_at_(fail_at),
        endless_(endless) {}
  Result<bool> read(FrameBuffer& fb) override {
    if (next_ == fail_at_) return Status(ErrorCode::kParseError, name_ + ": corrupt frame " + std::to_string(next_));
    if (!endless_ && next_ >= static_cast<int64_t>(frames_.size())) return false;
    if (period_.count() > 0) {
      if (next_ == 0) start_ = std::chrono::steady_clock::now();
      std::this_thread::sleep_until(start_ + period_ * next_);
    }
    const cv::Mat& f = frames_[static_cast<size_t>(next_) % frames_.size()];
    Status st = fb.reshape(f.cols, f.rows, PixelFormat::kBGR8);
    if (!st.ok()) return st;
    for (int y = 0; y < f.rows; ++y) std::memcpy(fb.data() + y * fb.stride(), f.ptr(y), static_cast<size_t>(f.cols) * 3);
    fb.time_s = static_cast<double>(next_) / 25.0;
    ++next_;
    return true;
  }
  bool live() const override { return live_; }
  const std::string& name() const override { return name_; }
  int width() const override { return frames_[0].cols; }
  int height() const override { return frames_[0].rows; }

 private:
  std::string name_;
  std::vector<cv::Mat> frames_;
  bool live_;
  std::chrono::microseconds period_;
  int64_t fail_at_;
  bool endless_;
  int64_t next_ = 0;
  std::chrono::steady_clock::time_point start_;
};

std::string write_clip(const std::filesystem::path& dir, const std::string& name, int count) {
  const std::string path = (dir / name).string();
  cv::VideoWriter w(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 25, {kW, kH});
  EXPECT_TRUE(w.isOpened());
  for (const cv::Mat& f : make_frames(count)) w.write(f);
  w.release();
  return path;
}

// The stage threading the running test uses: every pipeline test runs with
// the stages inline and on separate threads (PipelineStages below).
StageThreads g_stages = StageThreads::kAuto;

PipelineOptions options(int max_batch, int64_t timeout_us = 20000) {
  PipelineOptions o;
  o.detector.session.threads = 2;
  o.stages = g_stages;
  o.max_batch = max_batch;
  o.batch_timeout_us = timeout_us;
  return o;
}

class PipelineStages : public ::testing::TestWithParam<StageThreads> {
 protected:
  void SetUp() override { g_stages = GetParam(); }
  void TearDown() override { g_stages = StageThreads::kAuto; }
};

// What the callbacks saw, per stream.
struct Seen {
  std::mutex mu;
  std::map<int, std::vector<int64_t>> indices;
  std::map<int, StreamStats> ended;
  int64_t mismatches = 0;
  std::string first_mismatch;
};

TEST_P(PipelineStages, OrderAndDetectionsMatchDetectorAcrossBatchedStreams) {
  auto session = Session::load(model_path(), [] {
    SessionOptions so;
    so.threads = 2;
    so.batch = 3;
    return so;
  }());
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  auto pipe = Pipeline::create(*session, options(3));
  ASSERT_TRUE(pipe.ok()) << pipe.status().to_string();
  EXPECT_EQ(pipe->max_batch(), 3);
  // The oracle: a plain Detector on the same model, frame by frame.
  DetectorOptions dopts;
  auto oracle = Detector::create(*session, dopts);
  ASSERT_TRUE(oracle.ok());

  const auto dir = testing::make_temp_dir("pipeline_order");
  const int n = 12;
  ASSERT_TRUE(pipe->add_stream(std::make_unique<MemorySource>("a", make_frames(n))).ok());
  ASSERT_TRUE(pipe->add_stream(std::make_unique<MemorySource>("b", make_frames(n + 3))).ok());
  auto clip = open_video_source(write_clip(dir, "c.avi", n));
  ASSERT_TRUE(clip.ok()) << clip.status().to_string();
  ASSERT_TRUE(pipe->add_stream(std::move(*clip)).ok());

  Seen seen;
  int64_t detections = 0;
  ASSERT_TRUE(pipe->start(
                      [&](FrameResult& r) {
                        ASSERT_TRUE(r.status.ok()) << r.status.to_string();
                        seen.indices[r.stream].push_back(r.frame->index);
                        auto want = oracle->detect(r.frame->view());
                        ASSERT_TRUE(want.ok());
                        detections += static_cast<int64_t>(r.detections->size());
                        // The pipeline runs batches of 3 (two images on the
                        // threads' one-thread plan and one on the batch-1
                        // plan: images_on_threads), the oracle one image on the
                        // batch-1 plan: different oneDNN kernels, so the
                        // fixtures' tolerance (same class, IoU >= 0.99, score
                        // +-1e-4), one-to-one. The native build matched bit
                        // for bit; clang's TSan build does not.
                        const auto m = testing::match_detections(want->detections, *r.detections);
                        if (m.fraction() < 1.0) {
                          ++seen.mismatches;
                          if (seen.first_mismatch.empty()) seen.first_mismatch = m.describe();
                        }
                      },
                      [&](int s, const StreamStats& st) { seen.ended[s] = st; })
                  .ok());
  ASSERT_TRUE(pipe->wait().ok());
  EXPECT_EQ(seen.mismatches, 0) << "pipeline detections differ from Detector::detect: " << seen.first_mismatch;
  EXPECT_GT(detections, 0);
  const int expected[] = {n, n + 3, n};
  for (int s = 0; s < 3; ++s) {
    ASSERT_EQ(seen.indices[s].size(), static_cast<size_t>(expected[s])) << "stream " << s;
    for (int i = 0; i < expected[s]; ++i) EXPECT_EQ(seen.indices[s][static_cast<size_t>(i)], i) << "stream " << s;
    ASSERT_TRUE(seen.ended.count(s));
    EXPECT_TRUE(seen.ended[s].error.ok()) << seen.ended[s].error.to_string();
    EXPECT_EQ(seen.ended[s].inferred, expected[s]);
    EXPECT_EQ(seen.ended[s].dropped, 0);
  }
  // Frames of different streams shared inferences.
  const PipelineStats ps = pipe->stats();
  EXPECT_EQ(ps.inferred_frames, 3 * n + 3);
  EXPECT_LT(ps.inferences, ps.inferred_frames * 2 / 3) << "batching across streams did not happen";
  EXPECT_TRUE(pipe->detector().session().shares_model_with(*session));
}

TEST_P(PipelineStages, SlowSinkBlocksFileSourcesAndLosesNothing) {
  auto pipe = Pipeline::create(model_path(), options(2));
  ASSERT_TRUE(pipe.ok()) << pipe.status().to_string();
  const int n = 16;
  ASSERT_TRUE(pipe->add_stream(std::make_unique<MemorySource>("file", make_frames(n))).ok());
  int64_t delivered = 0, max_decoded_ahead = 0;
  ASSERT_TRUE(pipe->start([&](FrameResult& r) {
                    ++delivered;
                    // The source can run ahead only by the pool: queue + batches in flight.
                    max_decoded_ahead = std::max(max_decoded_ahead, pipe->stream_stats(0).decoded - r.frame->index);
                    std::this_thread::sleep_for(15ms);
                  })
                  .ok());
  ASSERT_TRUE(pipe->wait().ok());
  const StreamStats st = pipe->stream_stats(0);
  EXPECT_EQ(delivered, n);
  EXPECT_EQ(st.decoded, n);
  EXPECT_EQ(st.inferred, n);
  EXPECT_EQ(st.dropped, 0);
  EXPECT_LE(max_decoded_ahead, 2 + 3 * 2 + 1) << "the source was not held back";
  if (GetParam() == StageThreads::kInline) {
    // Read by the inference thread itself: never more than the batch ahead.
    EXPECT_LE(max_decoded_ahead, 2);
    EXPECT_EQ(pipe->stage_threads(), StageThreads::kInline);
  }
}

TEST_P(PipelineStages, LiveSourceDropsOldestAndCountsEveryFrame) {
  auto pipe = Pipeline::create(model_path(), options(1));
  ASSERT_TRUE(pipe.ok());
  // 400 fps: far faster than a slow sink of 20 ms per frame.
  const int n = 60;
  ASSERT_TRUE(pipe->add_stream(std::make_unique<MemorySource>("cam", make_frames(n), true, 2500us)).ok());
  std::vector<int64_t> indices;
  ASSERT_TRUE(pipe->start([&](FrameResult& r) {
                    indices.push_back(r.frame->index);
                    std::this_thread::sleep_for(20ms);
                  })
                  .ok());
  ASSERT_TRUE(pipe->wait().ok());
  const StreamStats st = pipe->stream_stats(0);
  EXPECT_EQ(st.decoded, n);
  EXPECT_GT(st.dropped, 0);
  EXPECT_EQ(st.inferred + st.dropped, n) << "every frame is either inferred or counted as dropped";
  EXPECT_EQ(static_cast<int64_t>(indices.size()), st.inferred);
  for (size_t i = 1; i < indices.size(); ++i) EXPECT_LT(indices[i - 1], indices[i]);
  EXPECT_EQ(indices.back(), n - 1) << "the newest frame must survive drop-oldest";
}

TEST_P(PipelineStages, InferEveryNthCountsSkips) {
  auto pipe = Pipeline::create(model_path(), options(2));
  ASSERT_TRUE(pipe.ok());
  StreamOptions so;
  so.infer_every = 3;
  ASSERT_TRUE(pipe->add_stream(std::make_unique<MemorySource>("x", make_frames(10)), so).ok());
  std::vector<int64_t> indices;
  ASSERT_TRUE(pipe->start([&](FrameResult& r) { indices.push_back(r.frame->index); }).ok());
  ASSERT_TRUE(pipe->wait().ok());
  EXPECT_EQ(indices, (std::vector<int64_t>{0, 3, 6, 9}));
  const StreamStats st = pipe->stream_stats(0);
  EXPECT_EQ(st.skipped, 6);
  EXPECT_EQ(st.inferred, 4);
}

TEST_P(PipelineStages, FailingStreamIsReportedAloneOthersFinish) {
  auto pipe = Pipeline::create(model_path(), options(2, 2000));
  ASSERT_TRUE(pipe.ok());
  const auto dir = testing::make_temp_dir("pipeline_errors");
  ASSERT_TRUE(pipe->add_stream(std::make_unique<MemorySource>("good", make_frames(10))).ok());
  ASSERT_TRUE(pipe->add_stream(std::make_unique<MemorySource>("bad", make_frames(10), false, 0us, 4)).ok());
  // A clip cut to half its bytes: FFmpeg opens it, then runs out of frames.
  const std::string clip = write_clip(dir, "cut.avi", 10);
  std::filesystem::resize_file(clip, std::filesystem::file_size(clip) / 2);
  auto cut = open_video_source(clip);
  ASSERT_TRUE(cut.ok()) << cut.status().to_string();
  ASSERT_TRUE(pipe->add_stream(std::move(*cut)).ok());
  // A missing file fails at open, before it is a stream.
  auto missing = open_video_source((dir / "missing.mp4").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);

  std::map<int, StreamStats> ended;
  ASSERT_TRUE(pipe->start([](FrameResult&) {}, [&](int s, const StreamStats& st) { ended[s] = st; }).ok());
  ASSERT_TRUE(pipe->wait().ok());
  ASSERT_EQ(ended.size(), 3u);
  EXPECT_TRUE(ended[0].error.ok());
  EXPECT_EQ(ended[0].inferred, 10);
  EXPECT_EQ(ended[1].error.code(), ErrorCode::kParseError);
  EXPECT_NE(ended[1].error.message().find("corrupt frame 4"), std::string::npos);
  EXPECT_EQ(ended[1].inferred, 4);
  EXPECT_FALSE(ended[2].error.ok()) << "a clip cut in half must be reported";
  EXPECT_LT(ended[2].inferred, 10);
}

TEST_P(PipelineStages, StopDrainsAndEndsEveryStream) {
  auto pipe = Pipeline::create(model_path(), options(2, 2000));
  ASSERT_TRUE(pipe.ok());
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(pipe->add_stream(std::make_unique<MemorySource>("endless" + std::to_string(i), make_frames(4), false,
                                                                0us, -1, true))
                    .ok());
  std::atomic<int64_t> delivered{0};
  std::map<int, StreamStats> ended;
  ASSERT_TRUE(pipe->start([&](FrameResult&) { ++delivered; },
                          [&](int s, const StreamStats& st) { ended[s] = st; })
                  .ok());
  while (delivered < 6) std::this_thread::sleep_for(5ms);
  pipe->stop(StopMode::kDrain);
  ASSERT_TRUE(pipe->wait().ok());
  EXPECT_TRUE(pipe->finished());
  ASSERT_EQ(ended.size(), 2u);
  for (auto& [s, st] : ended) {
    EXPECT_TRUE(st.stopped) << s;
    EXPECT_TRUE(st.error.ok()) << st.error.to_string();
    EXPECT_EQ(st.decoded, st.inferred + st.cancelled) << "drained: every decoded frame delivered or counted";
  }
}

// A one-file HTTP/1.0 server on 127.0.0.1 (no Range support: FFmpeg reads
// the clip as a non-seekable stream, as from a network camera).
class LoopbackHttp {
 public:
  explicit LoopbackHttp(std::vector<uint8_t> body) : body_(std::move(body)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoopbackHttp() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string url(const std::string& name) const { return "http://127.0.0.1:" + std::to_string(port_) + "/" + name; }

 private:
  void serve() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      (void)::recv(c, buf, sizeof buf, 0);  // the request line and headers; any path gets the clip
      const std::string head = "HTTP/1.0 200 OK\r\nContent-Type: video/x-msvideo\r\nContent-Length: " +
                               std::to_string(body_.size()) + "\r\nConnection: close\r\n\r\n";
      (void)::send(c, head.data(), head.size(), MSG_NOSIGNAL);
      size_t off = 0;
      while (off < body_.size()) {
        const ssize_t k = ::send(c, body_.data() + off, body_.size() - off, MSG_NOSIGNAL);
        if (k <= 0) break;
        off += static_cast<size_t>(k);
      }
      ::close(c);
    }
  }
  std::vector<uint8_t> body_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_P(PipelineStages, ReadsAStreamServedOverLoopbackHttp) {
  const auto dir = testing::make_temp_dir("pipeline_http");
  const int n = 8;
  LoopbackHttp server(testing::read_file(write_clip(dir, "clip.avi", n)));
  EXPECT_EQ(classify_video_location(server.url("clip.avi")), VideoLocationKind::kUrl);
  EXPECT_TRUE(video_location_is_live(server.url("clip.avi")));
  VideoSourceOptions vo;
  vo.open_timeout_ms = 5000;
  vo.read_timeout_ms = 5000;
  auto src = open_video_source(server.url("clip.avi"), vo);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_TRUE((*src)->live());
  auto pipe = Pipeline::create(model_path(), options(2));
  ASSERT_TRUE(pipe.ok());
  StreamOptions so;
  so.policy = StreamPolicy::kBlock;  // count every frame: nothing is dropped in this test
  ASSERT_TRUE(pipe->add_stream(std::move(*src), so).ok());
  std::vector<int64_t> indices;
  ASSERT_TRUE(pipe->start([&](FrameResult& r) { indices.push_back(r.frame->index); }).ok());
  ASSERT_TRUE(pipe->wait().ok());
  const StreamStats st = pipe->stream_stats(0);
  EXPECT_TRUE(st.error.ok()) << st.error.to_string();
  EXPECT_EQ(st.inferred, n);
  EXPECT_EQ(indices.size(), static_cast<size_t>(n));
}

// --- UDP streams from an ffmpeg child on 127.0.0.1 (skipped without ffmpeg).
//
// Bounded everywhere for a loaded 2-core machine: every wait has a deadline,
// the children are killed when the test ends (FfmpegChild's destructor), and
// a watchdog stops the pipeline if a test runs far past its expected time.

struct Delivered {
  std::mutex mu;
  std::map<int, std::vector<int64_t>> indices;
  std::map<int, std::vector<int>> widths;
  std::map<int, StreamStats> ended;
  std::atomic<int64_t> count0{0};
  void on_frame(const FrameResult& r) {
    std::lock_guard lock(mu);
    indices[r.stream].push_back(r.frame->index);
    widths[r.stream].push_back(r.frame->width());
    if (r.stream == 0) ++count0;
  }
  void on_end(int s, const StreamStats& st) {
    std::lock_guard lock(mu);
    ended[s] = st;
  }
};

// Polls `done` every 20 ms for up to `limit`; true once it holds.
template <class F>
bool wait_for(F done, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// Stops the pipeline (kCancel) if wait() has not returned within `limit`.
class Watchdog {
 public:
  Watchdog(Pipeline& p, std::chrono::seconds limit)
      : thread_([this, &p, limit] {
          std::unique_lock lock(mu_);
          if (!cv_.wait_for(lock, limit, [&] { return done_; })) {
            fired_ = true;
            p.stop(StopMode::kCancel);
          }
        }) {}
  ~Watchdog() { finish(); }
  bool finish() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;
};

std::string udp_url(int port) { return "udp://127.0.0.1:" + std::to_string(port); }

// Opens the stream ffmpeg is sending to `port`, retrying while it starts (it
// can take seconds on a loaded machine); `vo.open_timeout_ms` is per try.
Result<std::unique_ptr<Source>> open_udp(int port, const VideoSourceOptions& vo, int tries = 5) {
  Result<std::unique_ptr<Source>> src = open_video_source(udp_url(port), vo);
  for (int i = 1; i < tries && !src.ok(); ++i) src = open_video_source(udp_url(port), vo);
  return src;
}

#define SKIP_WITHOUT_FFMPEG() \
  if (!testing::have_ffmpeg()) GTEST_SKIP() << "ffmpeg is not on PATH: the loopback stream tests need it to serve"

void expect_counts_consistent(const StreamStats& st, const std::vector<int64_t>& indices) {
  EXPECT_EQ(st.decoded, st.inferred + st.dropped + st.skipped + st.failed + st.cancelled);
  EXPECT_EQ(st.inferred, static_cast<int64_t>(indices.size()));
  for (size_t i = 1; i < indices.size(); ++i) ASSERT_LT(indices[i - 1], indices[i]) << "at " << i;
  if (!indices.empty()) {
    EXPECT_LT(indices.back(), st.decoded);
  }
}

TEST(Pipeline, ReadsAUdpMpegTsStreamOverLoopback) {
  SKIP_WITHOUT_FFMPEG();
  const auto dir = testing::make_temp_dir("pipeline_udp");
  const int port = testing::free_loopback_port();
  ASSERT_GT(port, 0);
  testing::FfmpegChild server(testing::udp_test_stream_args(port, 3), (dir / "ffmpeg.log").string());
  ASSERT_TRUE(server.started());
  VideoSourceOptions vo;
  vo.open_timeout_ms = 5000;
  vo.read_timeout_ms = 2000;  // the end: no packet for 2 s
  vo.reconnect_attempts = 0;
  auto src = open_udp(port, vo);
  ASSERT_TRUE(src.ok()) << src.status().to_string() << "\n" << testing::read_file_string((dir / "ffmpeg.log").string());
  EXPECT_TRUE((*src)->live());
  EXPECT_EQ((*src)->frame_count(), -1);
  auto pipe = Pipeline::create(model_path(), options(1));
  ASSERT_TRUE(pipe.ok());
  ASSERT_TRUE(pipe->add_stream(std::move(*src)).ok());  // kAuto: live, drops when behind
  Delivered d;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(pipe->start([&](FrameResult& r) { d.on_frame(r); }, [&](int s, const StreamStats& st) { d.on_end(s, st); })
                  .ok());
  Watchdog dog(*pipe, 60s);
  ASSERT_TRUE(pipe->wait().ok());
  EXPECT_FALSE(dog.finish()) << "the stream did not end within 60 s";
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const StreamStats st = pipe->stream_stats(0);
  EXPECT_TRUE(st.error.ok()) << st.error.to_string();
  EXPECT_EQ(st.reconnects, 0);
  // 75 frames sent; the first GOP(s) may be lost before the reader bound the
  // port, and a slow machine may drop (live policy) but decodes them all.
  EXPECT_GE(st.decoded, 40) << secs << " s";
  EXPECT_LE(st.decoded, 75);
  EXPECT_GE(st.inferred, 5);
  expect_counts_consistent(st, d.indices[0]);
  for (int w : d.widths[0]) ASSERT_EQ(w, 160);
}

// The server dies mid-stream and comes back (a new ffmpeg, on the same port,
// with a different frame size so its frames are recognisable): the stream
// resumes, its indices keep increasing, and the reconnect is counted.
TEST(Pipeline, UdpStreamReconnectsAfterTheServerRestarts) {
  SKIP_WITHOUT_FFMPEG();
  const auto dir = testing::make_temp_dir("pipeline_udp_reconnect");
  const std::string log = (dir / "ffmpeg.log").string();
  const int port = testing::free_loopback_port();
  ASSERT_GT(port, 0);
  auto first = std::make_unique<testing::FfmpegChild>(testing::udp_test_stream_args(port, 60), log);
  VideoSourceOptions vo;
  vo.open_timeout_ms = 5000;
  vo.read_timeout_ms = 1000;
  vo.reconnect_attempts = 5;
  vo.reconnect_delay_ms = 200;
  auto src = open_udp(port, vo);
  ASSERT_TRUE(src.ok()) << src.status().to_string() << "\n" << testing::read_file_string(log);
  auto pipe = Pipeline::create(model_path(), options(1));
  ASSERT_TRUE(pipe.ok());
  ASSERT_TRUE(pipe->add_stream(std::move(*src)).ok());
  Delivered d;
  ASSERT_TRUE(pipe->start([&](FrameResult& r) { d.on_frame(r); }, [&](int s, const StreamStats& st) { d.on_end(s, st); })
                  .ok());
  Watchdog dog(*pipe, 120s);
  ASSERT_TRUE(wait_for([&] { return d.count0 >= 8; }, 60s)) << "no frames from the first server";
  first->kill();
  // The gap: nothing is sent for longer than the read timeout, so the reader
  // notices and reopens. (A sender back within the read timeout is not a
  // reconnect: its packets reach the same socket. OpenCV's scaler then fails
  // on a new frame size, hence the margin.)
  std::this_thread::sleep_for(3s);
  testing::FfmpegChild second(testing::udp_test_stream_args(port, 60, 176, 144), log);
  auto new_frames = [&] {
    std::lock_guard lock(d.mu);
    return std::count(d.widths[0].begin(), d.widths[0].end(), 176);
  };
  const bool resumed = wait_for([&] { return new_frames() >= 8; }, 60s);
  pipe->stop(StopMode::kDrain);
  ASSERT_TRUE(pipe->wait().ok());
  EXPECT_FALSE(dog.finish());
  ASSERT_TRUE(resumed) << "no frames from the restarted server\n" << testing::read_file_string(log);
  const StreamStats st = pipe->stream_stats(0);
  EXPECT_TRUE(st.error.ok()) << st.error.to_string();
  EXPECT_GE(st.reconnects, 1);
  EXPECT_TRUE(st.stopped);
  expect_counts_consistent(st, d.indices[0]);
  // The old server's frames, then the new one's: one change of size.
  const auto& w = d.widths[0];
  const auto switch_at = std::find(w.begin(), w.end(), 176);
  EXPECT_GE(switch_at - w.begin(), 8);
  EXPECT_TRUE(std::all_of(w.begin(), switch_at, [](int x) { return x == 160; }));
  EXPECT_TRUE(std::all_of(switch_at, w.end(), [](int x) { return x == 176; }));
}

// The server dies and never comes back: after its attempts the stream ends
// with an error naming the location and the attempts; another stream in the
// same pipeline (live, paced, running meanwhile) completes normally.
TEST(Pipeline, UdpStreamGivesUpWhenTheServerStaysDownOthersFinish) {
  SKIP_WITHOUT_FFMPEG();
  const auto dir = testing::make_temp_dir("pipeline_udp_gone");
  const std::string log = (dir / "ffmpeg.log").string();
  const int port = testing::free_loopback_port();
  ASSERT_GT(port, 0);
  testing::FfmpegChild server(testing::udp_test_stream_args(port, 60), log);
  VideoSourceOptions vo;
  vo.open_timeout_ms = 3000;  // per try, at the start and for each reconnect attempt
  vo.read_timeout_ms = 1000;
  vo.reconnect_attempts = 2;
  vo.reconnect_delay_ms = 100;
  auto src = open_udp(port, vo, 8);
  ASSERT_TRUE(src.ok()) << src.status().to_string() << "\n" << testing::read_file_string(log);
  auto pipe = Pipeline::create(model_path(), options(2));
  ASSERT_TRUE(pipe.ok());
  ASSERT_TRUE(pipe->add_stream(std::move(*src)).ok());
  const int other_frames = 100;  // 4 s at 25 fps
  ASSERT_TRUE(
      pipe->add_stream(std::make_unique<MemorySource>("paced", make_frames(other_frames), true, 40000us)).ok());
  Delivered d;
  ASSERT_TRUE(pipe->start([&](FrameResult& r) { d.on_frame(r); }, [&](int s, const StreamStats& st) { d.on_end(s, st); })
                  .ok());
  Watchdog dog(*pipe, 150s);
  ASSERT_TRUE(wait_for([&] { return d.count0 >= 5; }, 60s)) << "no frames from the server";
  server.kill();
  ASSERT_TRUE(pipe->wait().ok());
  EXPECT_FALSE(dog.finish()) << "the pipeline did not end by itself";
  ASSERT_EQ(d.ended.size(), 2u);
  const StreamStats& gone = d.ended[0];
  EXPECT_EQ(gone.error.code(), ErrorCode::kIOError) << gone.error.to_string();
  EXPECT_NE(gone.error.message().find(udp_url(port)), std::string::npos) << gone.error.message();
  EXPECT_NE(gone.error.message().find("2 reconnect attempt(s)"), std::string::npos) << gone.error.message();
  EXPECT_EQ(gone.reconnects, 0);
  std::cout << "the error: " << gone.error.message() << "\n";
  EXPECT_FALSE(gone.stopped);
  expect_counts_consistent(gone, d.indices[0]);
  const StreamStats& other = d.ended[1];
  EXPECT_TRUE(other.error.ok()) << other.error.to_string();
  EXPECT_EQ(other.decoded, other_frames);
  EXPECT_EQ(other.reconnects, 0);
  expect_counts_consistent(other, d.indices[1]);
  EXPECT_GE(other.inferred, 10);
}

// --- RTSP on loopback: a minimal server in the test (there is no RTSP server
// here, and ffmpeg only pushes to one). It answers one client at a time:
// OPTIONS, DESCRIBE (a fixed SDP: MPEG-TS over RTP, payload 33), SETUP (TCP
// interleaved only: UDP gets 461 and FFmpeg falls back to TCP), PLAY,
// GET_PARAMETER and TEARDOWN. The RTP packets come from an ffmpeg child
// (`-f rtp_mpegts`) to the server's UDP port, relayed to the playing client
// on interleaved channel 0. Enough for FFmpeg's RTSP client, not a server.
class LoopbackRtsp {
 public:
  LoopbackRtsp() {
    tcp_ = bound_socket(SOCK_STREAM, &port_);
    udp_ = bound_socket(SOCK_DGRAM, &rtp_port_);
    EXPECT_EQ(::listen(tcp_, 4), 0);
    timeval tv{0, 100000};
    ::setsockopt(udp_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    accept_thread_ = std::thread([this] { accept_loop(); });
    relay_thread_ = std::thread([this] { relay_loop(); });
  }
  ~LoopbackRtsp() {
    stop_ = true;
    ::shutdown(tcp_, SHUT_RDWR);
    ::close(tcp_);
    accept_thread_.join();
    relay_thread_.join();
    ::close(udp_);
  }
  std::string url() const { return "rtsp://127.0.0.1:" + std::to_string(port_) + "/live"; }
  int rtp_port() const { return rtp_port_; }
  int sessions() const { return sessions_; }

 private:
  static int bound_socket(int type, int* port) {
    const int fd = ::socket(AF_INET, type, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    *port = ntohs(addr.sin_port);
    return fd;
  }
  bool send_all(int fd, const char* p, size_t n) {
    while (n > 0) {
      const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
      if (k <= 0) return false;
      p += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  }
  static std::string header(const std::string& req, const std::string& name) {
    const size_t at = req.find("\r\n" + name + ":");
    if (at == std::string::npos) return {};
    size_t b = at + 3 + name.size();
    while (b < req.size() && req[b] == ' ') ++b;
    return req.substr(b, req.find("\r\n", b) - b);
  }
  void accept_loop() {
    while (!stop_) {
      const int c = ::accept(tcp_, nullptr, nullptr);
      if (c < 0) return;
      timeval tv{0, 100000};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ++sessions_;
      serve(c);
      {
        std::lock_guard lock(send_mu_);
        playing_ = -1;
      }
      ::close(c);
    }
  }
  void serve(int c) {
    std::string in;
    char buf[4096];
    while (!stop_) {
      const ssize_t k = ::recv(c, buf, sizeof buf, 0);
      if (k == 0) return;
      if (k < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return;
      }
      in.append(buf, static_cast<size_t>(k));
      for (;;) {
        if (!in.empty() && in[0] == '$') {  // the client's interleaved RTCP: skipped
          if (in.size() < 4) break;
          const size_t len = 4 + (static_cast<size_t>(static_cast<uint8_t>(in[2])) << 8) + static_cast<uint8_t>(in[3]);
          if (in.size() < len) break;
          in.erase(0, len);
          continue;
        }
        const size_t end = in.find("\r\n\r\n");
        if (end == std::string::npos) break;
        const std::string req = in.substr(0, end + 2);
        in.erase(0, end + 4);
        const size_t body = static_cast<size_t>(std::atoi(header(req, "Content-Length").c_str()));
        in.erase(0, std::min(body, in.size()));
        const std::string method = req.substr(0, req.find(' '));
        std::string status = "200 OK", extra, content;
        if (method == "OPTIONS") {
          extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n";
        } else if (method == "DESCRIBE") {
          content =
              "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=damoyolo test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
              "m=video 0 RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\na=control:track0\r\n";
          extra = "Content-Base: " + url() + "/\r\nContent-Type: application/sdp\r\nContent-Length: " +
                  std::to_string(content.size()) + "\r\n";
        } else if (method == "SETUP") {
          if (header(req, "Transport").find("TCP") == std::string::npos)
            status = "461 Unsupported Transport";
          else
            extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 5EC0DE;timeout=60\r\n";
        } else {
          extra = "Session: 5EC0DE\r\n";
          if (method == "PLAY") extra += "Range: npt=0.000-\r\n";
        }
        const std::string reply =
            "RTSP/1.0 " + status + "\r\nCSeq: " + header(req, "CSeq") + "\r\n" + extra + "\r\n" + content;
        std::lock_guard lock(send_mu_);
        if (!send_all(c, reply.data(), reply.size())) return;
        if (method == "PLAY") playing_ = c;
        if (method == "TEARDOWN") return;
      }
    }
  }
  void relay_loop() {
    std::vector<char> buf(4 + 65536);
    while (!stop_) {
      const ssize_t k = ::recv(udp_, buf.data() + 4, 65536, 0);
      if (k <= 0) continue;
      buf[0] = '$';
      buf[1] = 0;
      buf[2] = static_cast<char>(k >> 8);
      buf[3] = static_cast<char>(k & 0xff);
      std::lock_guard lock(send_mu_);
      if (playing_ >= 0 && !send_all(playing_, buf.data(), static_cast<size_t>(k) + 4)) playing_ = -1;
    }
  }

  int tcp_ = -1, udp_ = -1, port_ = 0, rtp_port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> sessions_{0};
  std::mutex send_mu_;
  int playing_ = -1;  // guarded by send_mu_
  std::thread accept_thread_, relay_thread_;
};

std::vector<std::string> rtp_test_stream_args(int port, double seconds) {
  return {"-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", std::to_string(seconds), "-c:v",
          "mpeg2video", "-g", "5", "-f", "rtp_mpegts", "rtp://127.0.0.1:" + std::to_string(port) + "?pkt_size=1316"};
}

TEST(Pipeline, ReadsAnRtspStreamOverLoopback) {
  SKIP_WITHOUT_FFMPEG();
  const auto dir = testing::make_temp_dir("pipeline_rtsp");
  const std::string log = (dir / "ffmpeg.log").string();
  LoopbackRtsp server;
  testing::FfmpegChild sender(rtp_test_stream_args(server.rtp_port(), 4), log);
  ASSERT_TRUE(sender.started());
  EXPECT_EQ(classify_video_location(server.url()), VideoLocationKind::kUrl);
  VideoSourceOptions vo;
  vo.open_timeout_ms = 10000;
  vo.read_timeout_ms = 2000;
  vo.reconnect_attempts = 0;
  auto src = open_video_source(server.url(), vo);
  ASSERT_TRUE(src.ok()) << src.status().to_string() << "\n" << testing::read_file_string(log);
  EXPECT_TRUE((*src)->live());
  auto pipe = Pipeline::create(model_path(), options(1));
  ASSERT_TRUE(pipe.ok());
  ASSERT_TRUE(pipe->add_stream(std::move(*src)).ok());
  Delivered d;
  ASSERT_TRUE(pipe->start([&](FrameResult& r) { d.on_frame(r); }, [&](int s, const StreamStats& st) { d.on_end(s, st); })
                  .ok());
  Watchdog dog(*pipe, 60s);
  ASSERT_TRUE(pipe->wait().ok());
  EXPECT_FALSE(dog.finish()) << "the stream did not end within 60 s";
  const StreamStats st = pipe->stream_stats(0);
  EXPECT_TRUE(st.error.ok()) << st.error.to_string();
  EXPECT_GE(st.decoded, 25) << "100 frames were sent";
  EXPECT_LE(st.decoded, 100);
  EXPECT_EQ(st.reconnects, 0);
  EXPECT_EQ(server.sessions(), 1);
  expect_counts_consistent(st, d.indices[0]);
  for (int w : d.widths[0]) ASSERT_EQ(w, 160);
}

// The RTSP server stays up but its stream stops (the sender is killed), then
// a new sender starts: the reader times out, reconnects (a second RTSP
// session: DESCRIBE, SETUP, PLAY again) and the frames resume.
TEST(Pipeline, RtspStreamReconnectsWhenItsSenderRestarts) {
  SKIP_WITHOUT_FFMPEG();
  const auto dir = testing::make_temp_dir("pipeline_rtsp_reconnect");
  const std::string log = (dir / "ffmpeg.log").string();
  LoopbackRtsp server;
  auto first = std::make_unique<testing::FfmpegChild>(rtp_test_stream_args(server.rtp_port(), 60), log);
  VideoSourceOptions vo;
  vo.open_timeout_ms = 10000;
  vo.read_timeout_ms = 1000;
  vo.reconnect_attempts = 5;
  vo.reconnect_delay_ms = 200;
  auto src = open_video_source(server.url(), vo);
  ASSERT_TRUE(src.ok()) << src.status().to_string() << "\n" << testing::read_file_string(log);
  auto pipe = Pipeline::create(model_path(), options(1));
  ASSERT_TRUE(pipe.ok());
  ASSERT_TRUE(pipe->add_stream(std::move(*src)).ok());
  Delivered d;
  ASSERT_TRUE(pipe->start([&](FrameResult& r) { d.on_frame(r); }, [&](int s, const StreamStats& st) { d.on_end(s, st); })
                  .ok());
  Watchdog dog(*pipe, 120s);
  ASSERT_TRUE(wait_for([&] { return d.count0 >= 8; }, 60s)) << "no frames from the first sender";
  first->kill();
  const int64_t before = d.count0;
  std::this_thread::sleep_for(2500ms);  // longer than the read timeout: the reader reconnects
  testing::FfmpegChild second(rtp_test_stream_args(server.rtp_port(), 60), log);
  const bool resumed = wait_for([&] { return server.sessions() >= 2 && d.count0 >= before + 8 + 5; }, 60s);
  pipe->stop(StopMode::kDrain);
  ASSERT_TRUE(pipe->wait().ok());
  EXPECT_FALSE(dog.finish());
  ASSERT_TRUE(resumed) << "no frames after the restart (" << server.sessions() << " RTSP sessions)\n"
                       << testing::read_file_string(log);
  const StreamStats st = pipe->stream_stats(0);
  EXPECT_TRUE(st.error.ok()) << st.error.to_string();
  EXPECT_GE(st.reconnects, 1);
  EXPECT_GE(server.sessions(), 2);
  expect_counts_consistent(st, d.indices[0]);
}

TEST(Pipeline, LocationsAreClassified) {
  EXPECT_EQ(classify_video_location("rtsp://10.0.0.1/cam"), VideoLocationKind::kUrl);
  EXPECT_EQ(classify_video_location("udp://@:1234"), VideoLocationKind::kUrl);
  EXPECT_EQ(classify_video_location("/dev/video0"), VideoLocationKind::kDevice);
  EXPECT_EQ(classify_video_location("-"), VideoLocationKind::kStdin);
  EXPECT_EQ(classify_video_location("clip.mp4"), VideoLocationKind::kFile);
  EXPECT_EQ(classify_video_location("file:///tmp/clip.mp4"), VideoLocationKind::kFile);
  EXPECT_FALSE(video_location_is_live("clip.mp4"));
  EXPECT_TRUE(video_location_is_live("/dev/video2"));
}

// Steady state: after warm-up, frames pass through every stage with no
// allocation by damoyolo (or the test's source and callback). oneDNN's
// primitive::execute bookkeeping is attributed and bounded, as in tests/alloc.
//
// Warm-up is one pass over the 32 distinct frames each stream cycles through:
// NMS's per-class candidate lists grow (vector doubling) whenever a frame has
// more candidates of a class than any frame before, which a new video can
// still do, at most log2(anchors) times per class; the window is the second
// pass, where no frame can be a new maximum.
TEST_P(PipelineStages, SteadyStateAllocatesNothingPerFrame) {
  if (!testing::allocation_counting()) GTEST_SKIP() << "TSan build: operator new is TSan's, nothing is counted";
  auto pipe = Pipeline::create(model_path(), options(2, 1000000));
  ASSERT_TRUE(pipe.ok());
  std::vector<cv::Mat> frames = make_frames(32), twice = frames;
  twice.insert(twice.end(), frames.begin(), frames.end());
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(pipe->add_stream(std::make_unique<MemorySource>("m" + std::to_string(i), twice)).ok());
  std::unique_ptr<testing::AttributeAllocations> counter;
  int64_t delivered = 0, counted = 0, outside = -1, inside = 0;
  size_t largest = 0;
  int64_t lowest_index = 0;
  constexpr int64_t kOpen = 72, kClose = 120;
  ASSERT_TRUE(pipe->start([&](FrameResult& r) {
                    ++delivered;
                    // make_unique's own allocation comes before the counter's
                    // constructor opens the window.
                    if (delivered == kOpen) {
                      counter = std::make_unique<testing::AttributeAllocations>();
                      lowest_index = r.frame->index;
                    }
                    if (delivered > kOpen && delivered <= kClose) lowest_index = std::min(lowest_index, r.frame->index);
                    if (delivered == kClose) {
                      outside = counter->outside_dnnl();
                      inside = counter->inside_dnnl();
                      largest = counter->largest_inside_dnnl();
                      counted = kClose - kOpen;
                      counter.reset();
                    }
                  })
                  .ok());
  ASSERT_TRUE(pipe->wait().ok());
  ASSERT_EQ(delivered, 128);
  ASSERT_EQ(counted, kClose - kOpen);
  ASSERT_GE(lowest_index, 32) << "the window must lie in the second pass of both streams";
  std::printf("pipeline: %lld frames: %lld allocations outside oneDNN, %lld inside (largest %zu B)\n",
              static_cast<long long>(counted), static_cast<long long>(outside), static_cast<long long>(inside),
              largest);
  EXPECT_EQ(outside, 0) << "heap allocations by damoyolo in the pipeline's steady state";
  EXPECT_LE(largest, 4096u);
}

// Every switch of a Detector/Pipeline off in turn (and the write-up's
// per-class parallel NMS): the same detections, bit for bit, as all on. The
// buffer switches must really change what is allocated per frame, so that
// an optimisation cannot silently stop applying.
TEST_P(PipelineStages, EverySwitchOffGivesTheSameDetectionsAndTheBufferSwitchesAllocate) {
  if (!testing::allocation_counting()) GTEST_SKIP() << "TSan build: operator new is TSan's, nothing is counted";
  // 24 frames, allocations counted from the 6th delivery to the last: with
  // separate stage threads the source decodes up to 6 frames ahead, so at
  // least 12 decodes fall in the window either way.
  const std::vector<cv::Mat> frames = make_frames(24);
  struct Run {
    std::vector<std::vector<Detection>> dets;
    int64_t allocations = -1;  // outside oneDNN, deliveries 7..24
  };
  auto run = [&](const DetectorOptions& d) {
    PipelineOptions o = options(1);
    o.detector = d;
    o.detector.session.threads = 2;
    auto pipe = Pipeline::create(model_path(), o);
    EXPECT_TRUE(pipe.ok()) << pipe.status().to_string();
    Run r;
    if (!pipe.ok()) return r;
    EXPECT_TRUE(pipe->add_stream(std::make_unique<MemorySource>("m", frames)).ok());
    r.dets.resize(frames.size());
    for (auto& v : r.dets) v.reserve(600);
    std::unique_ptr<testing::AttributeAllocations> counter;
    int64_t delivered = 0;
    EXPECT_TRUE(pipe->start([&](FrameResult& f) {
                      EXPECT_TRUE(f.status.ok()) << f.status.to_string();
                      r.dets[static_cast<size_t>(f.frame->index)].assign(f.detections->begin(), f.detections->end());
                      if (++delivered == 6) counter = std::make_unique<testing::AttributeAllocations>();
                      if (delivered == 24) {
                        r.allocations = counter->outside_dnnl();
                        counter.reset();
                      }
                    })
                    .ok());
    EXPECT_TRUE(pipe->wait().ok());
    return r;
  };
  DetectorOptions on;
  const Run all_on = run(on);
  // Not necessarily 0 here: NMS candidate lists may still grow on these
  // first frames (SteadyStateAllocatesNothingPerFrame warms up first).
  ASSERT_GE(all_on.allocations, 0);
  size_t with_boxes = 0;
  for (const auto& d : all_on.dets) with_boxes += !d.empty();
  ASSERT_GT(with_boxes, 12u) << "the frames must hold detections for the comparison to mean anything";
  auto same = [](const std::vector<Detection>& a, const std::vector<Detection>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (std::memcmp(&a[i], &b[i], sizeof(Detection)) != 0) return false;
    return true;
  };
  std::vector<std::pair<std::string, DetectorOptions>> rows;
  for (const OptimizationSwitch& sw : optimization_switches(OptimizationScope::kDetector)) {
    DetectorOptions d;
    set_optimization(d, sw, false);
    rows.emplace_back(std::string(sw.name), d);
  }
  DetectorOptions parallel;
  parallel.fast_nms = false;
  parallel.parallel_class_nms = true;
  rows.emplace_back("parallel_class_nms", parallel);
  for (const auto& [name, d] : rows) {
    SCOPED_TRACE(name);
    const Run r = run(d);
    for (size_t i = 0; i < frames.size(); ++i) EXPECT_TRUE(same(r.dets[i], all_on.dets[i])) << "frame " << i;
    if (name == "frame_pool" || name == "preallocated_buffers") {
      EXPECT_GE(r.allocations, all_on.allocations + 12) << "off, every frame must allocate";
    }
  }
}

// run(): start() + wait() with the inference stage on the calling thread —
// inline, the callbacks come on the caller too; separate, on the post thread.
TEST_P(PipelineStages, RunInfersOnTheCallingThreadAndDeliversEverything) {
  auto pipe = Pipeline::create(model_path(), options(2));
  ASSERT_TRUE(pipe.ok()) << pipe.status().to_string();
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(pipe->add_stream(std::make_unique<MemorySource>("s" + std::to_string(i), make_frames(7))).ok());
  const std::thread::id caller = std::this_thread::get_id();
  std::map<int, std::vector<int64_t>> indices;
  int64_t on_caller = 0, ends = 0;
  ASSERT_TRUE(pipe->run(
                      [&](FrameResult& r) {
                        EXPECT_TRUE(r.status.ok());
                        indices[r.stream].push_back(r.frame->index);
                        on_caller += std::this_thread::get_id() == caller;
                      },
                      [&](int, const StreamStats& st) {
                        ++ends;
                        EXPECT_EQ(st.inferred, 7);
                      })
                  .ok());
  EXPECT_TRUE(pipe->finished());
  EXPECT_EQ(ends, 2);
  for (int s = 0; s < 2; ++s) EXPECT_EQ(indices[s], (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6})) << s;
  EXPECT_EQ(on_caller, GetParam() == StageThreads::kInline ? 14 : 0);
  EXPECT_FALSE(pipe->run([](FrameResult&) {}).ok()) << "a pipeline runs once";
}

INSTANTIATE_TEST_SUITE_P(Stages, PipelineStages,
                         ::testing::Values(StageThreads::kInline, StageThreads::kSeparate),
                         [](const ::testing::TestParamInfo<StageThreads>& p) {
                           return p.param == StageThreads::kInline ? std::string("inline") : std::string("separate");
                         });

// kAuto puts the stages inline exactly when inference's team has every core
// the process may use.
TEST(Pipeline, AutoStagesInlineWhenInferenceHasEveryCore) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  const int cores = CPU_COUNT(&set);
  for (int threads : {0, 1, cores}) {
    PipelineOptions o;
    o.detector.session.threads = threads;
    auto pipe = Pipeline::create(model_path(), o);
    ASSERT_TRUE(pipe.ok()) << pipe.status().to_string();
    const bool all = threads == 0 || threads >= cores;
    EXPECT_EQ(pipe->stage_threads(), all ? StageThreads::kInline : StageThreads::kSeparate) << threads;
  }
  PipelineOptions o;
  o.detector.session.threads = 0;
  o.stages = StageThreads::kSeparate;
  auto pipe = Pipeline::create(model_path(), o);
  ASSERT_TRUE(pipe.ok());
  EXPECT_EQ(pipe->stage_threads(), StageThreads::kSeparate) << "an explicit choice is kept";
}

}  // namespace
}  // namespace damoyolo
