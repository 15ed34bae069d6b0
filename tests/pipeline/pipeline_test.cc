// damoyolo::Pipeline: ordering, identity with Detector::detect, batching
// across streams, backpressure, live drops, per-stream errors, shutdown,
// a loopback HTTP stream, and zero steady-state allocation.
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

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <thread>

#include "damoyolo/pipeline.h"
#include "damoyolo/video_source.h"
#include "testutil/alloc_counter.h"
#include "testutil/testutil.h"

namespace damoyolo {
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
                        if (want->detections.size() != r.detections->size()) {
                          ++seen.mismatches;
                          return;
                        }
                        for (size_t i = 0; i < r.detections->size(); ++i) {
                          const Detection &a = (*r.detections)[i], &b = want->detections[i];
                          if (a.x1 != b.x1 || a.y1 != b.y1 || a.x2 != b.x2 || a.y2 != b.y2 || a.score != b.score ||
                              a.class_id != b.class_id)
                            ++seen.mismatches;
                        }
                      },
                      [&](int s, const StreamStats& st) { seen.ended[s] = st; })
                  .ok());
  ASSERT_TRUE(pipe->wait().ok());
  EXPECT_EQ(seen.mismatches, 0) << "pipeline detections differ from Detector::detect";
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
