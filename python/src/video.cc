// damoyolo._video: video files, URLs and devices through damoyolo::Pipeline,
// as a Python iterator of per-frame results.
//
// The pipeline's threads decode, batch, infer and post-process; its frame
// callback (on the pipeline's post-processing thread) copies each frame's
// detections (and pixels, for plot()) into a small bounded queue that
// __next__ pops with the GIL released. The bound is the back-pressure: a
// consumer slower than inference blocks the callback, which blocks the
// pipeline (files never drop frames; live sources drop their oldest, as in
// the C++ pipeline). Closing (break out of the loop, del, close()) stops the
// pipeline with StopMode::kCancel and joins it.
#include <nanobind/stl/string.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "convert.h"
#include "damoyolo/pipeline.h"
#include "damoyolo/video_source.h"

namespace damoyolo::python {
namespace {

using namespace nb::literals;

struct Item {
  bool end = false;  // a stream's end marker (status: why it ended early, if it did)
  int stream = 0;
  std::string source;
  int64_t index = 0;
  double time_s = 0;
  ImageDetections result;
  Status status;
  std::vector<uint8_t> pixels;  // compact BGR/RGB rows when frames are kept
  PixelFormat format = PixelFormat::kBGR8;
};

class VideoStream {
 public:
  VideoStream(const std::vector<std::string>& sources, const std::string& model, std::optional<float> conf,
              std::optional<double> iou, int max_det, std::vector<int> classes, int threads, const std::string& precision,
              int batch, bool keep_frames, int queue)
      : keep_frames_(keep_frames), capacity_(queue > 0 ? static_cast<size_t>(queue) : 1) {
    DetectorArgs a;
    a.conf = conf;
    a.iou = iou;
    a.max_det = max_det;
    a.classes = std::move(classes);
    a.threads = threads;
    a.precision = precision;
    a.batch = batch;
    PipelineOptions po;
    po.detector = make_detector_options(a);
    po.max_batch = batch > 0 ? batch : 1;
    Status st;
    {
      nb::gil_scoped_release release;
      st = open(sources, model, po);
    }
    check(st);
  }

  ~VideoStream() {
    // Never leave the pipeline's threads running into freed members.
    nb::gil_scoped_release release;
    shutdown();
  }

  std::vector<std::string> names() const { return pipeline_.detector().class_names(); }

  // The next frame's result, or StopIteration after the last; a stream that
  // failed raises its error when its end is reached.
  nb::object next() {
    Item item;
    for (;;) {
      bool have = false;
      {
        nb::gil_scoped_release release;
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty() || ended_ == streams_ || closed_; });
        if (!queue_.empty()) {
          item = std::move(queue_.front());
          queue_.pop_front();
          have = true;
        }
        cv_.notify_all();  // room for the callback
      }
      if (!have) {
        {
          nb::gil_scoped_release release;
          shutdown();
        }
        throw nb::stop_iteration();
      }
      if (!item.end) break;
      if (!item.status.ok()) raise_status(item.status);
    }
    if (!item.status.ok()) raise_status(item.status);
    nb::object image = nb::none();
    if (keep_frames_) {
      const size_t h = static_cast<size_t>(item.result.height), w = static_cast<size_t>(item.result.width);
      auto* held = new std::vector<uint8_t>(std::move(item.pixels));
      nb::capsule owner(held, [](void* p) noexcept { delete static_cast<std::vector<uint8_t>*>(p); });
      image = nb::cast(nb::ndarray<nb::numpy, uint8_t>(held->data(), {h, w, 3}, owner));
    }
    nb::dict d = result_to_python(item.result, false, image, false);
    d["channels"] = item.format == PixelFormat::kRGB8 ? "rgb" : "bgr";
    d["stream"] = item.stream;
    d["frame_index"] = item.index;
    d["time_s"] = item.time_s;
    return d;
  }

  void close() {
    nb::gil_scoped_release release;
    shutdown();
  }

 private:
  Status open(const std::vector<std::string>& sources, const std::string& model, const PipelineOptions& po) {
    auto p = Pipeline::create(model, po);
    if (!p.ok()) return p.status();
    pipeline_ = std::move(*p);
    for (const std::string& s : sources) {
      auto src = open_video_source(s);
      if (!src.ok()) return src.status();
      names_.push_back((*src)->name());
      auto id = pipeline_.add_stream(std::move(*src));
      if (!id.ok()) return id.status();
    }
    streams_ = static_cast<int>(sources.size());
    Status st = pipeline_.start([this](FrameResult& f) { on_frame(f); },
                                [this](int stream, const StreamStats& s) { on_end(stream, s); });
    if (st.ok()) started_ = true;
    return st;
  }

  void on_frame(FrameResult& f) {
    Item item;
    item.stream = f.stream;
    item.source = names_[static_cast<size_t>(f.stream)];
    item.index = f.frame->index;
    item.time_s = f.frame->time_s;
    item.status = f.status;
    item.result.source = item.source;
    item.result.width = f.frame->width();
    item.result.height = f.frame->height();
    item.result.timings = f.timings;
    if (f.detections) item.result.detections = *f.detections;
    if (keep_frames_) {
      // The frame buffer goes back to the pool after this callback: copy it.
      const FrameBuffer& fb = *f.frame;
      const int bpp = pixel_format_bytes(fb.format());
      item.format = fb.format() == PixelFormat::kRGB8 ? PixelFormat::kRGB8 : PixelFormat::kBGR8;
      const size_t row = static_cast<size_t>(fb.width()) * 3;
      item.pixels.resize(row * static_cast<size_t>(fb.height()));
      for (int y = 0; y < fb.height(); ++y) {
        const uint8_t* src = fb.data() + y * fb.stride();
        uint8_t* dst = item.pixels.data() + static_cast<size_t>(y) * row;
        if (bpp == 3) {
          std::memcpy(dst, src, row);
        } else {
          for (int x = 0; x < fb.width(); ++x)
            for (int c = 0; c < 3; ++c) dst[x * 3 + c] = bpp == 1 ? src[x] : src[x * bpp + c];
        }
      }
    }
    push(std::move(item));
  }

  void on_end(int stream, const StreamStats& s) {
    Item item;
    item.end = true;
    item.stream = stream;
    item.status = s.error;
    push(std::move(item));
    std::lock_guard<std::mutex> lock(mu_);
    ++ended_;
    cv_.notify_all();
  }

  void push(Item&& item) {
    std::unique_lock<std::mutex> lock(mu_);
    // End markers never wait: they must not be lost behind a full queue.
    if (!item.end) cv_.wait(lock, [&] { return queue_.size() < capacity_ || closed_; });
    if (closed_) return;
    queue_.push_back(std::move(item));
    cv_.notify_all();
  }

  void shutdown() {
    // Serialised: close() on one thread may meet the end of iteration (or
    // the destructor) on another; the pipeline is stopped and joined once.
    std::lock_guard<std::mutex> once(stop_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_ && !started_) return;
      closed_ = true;
      queue_.clear();
      cv_.notify_all();
    }
    if (started_) {
      started_ = false;
      pipeline_.stop(StopMode::kCancel);
      (void)pipeline_.wait();
    }
  }

  Pipeline pipeline_;
  std::vector<std::string> names_;
  const bool keep_frames_;
  const size_t capacity_;
  std::mutex stop_mu_;  // held by shutdown() only, never by the pipeline's threads
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  int streams_ = 0;
  int ended_ = 0;
  bool closed_ = false;
  bool started_ = false;
};

}  // namespace
}  // namespace damoyolo::python

NB_MODULE(_video, m) {
  using namespace damoyolo::python;
  using namespace nb::literals;
  m.doc() = "damoyolo's video pipeline (imported by damoyolo only when a video is predicted)";
  nb::class_<VideoStream>(m, "VideoStream")
      .def(nb::init<const std::vector<std::string>&, const std::string&, std::optional<float>, std::optional<double>, int,
                    std::vector<int>, int, const std::string&, int, bool, int>(),
           "sources"_a, "model"_a, "conf"_a = nb::none(), "iou"_a = nb::none(), "max_det"_a = 500,
           "classes"_a = std::vector<int>{}, "threads"_a = 0, "precision"_a = "fp32", "batch"_a = 1,
           "keep_frames"_a = true, "queue"_a = 4)
      .def_prop_ro("names", &VideoStream::names)
      .def("__iter__", [](nb::handle self) { return self; })
      .def("__next__", &VideoStream::next)
      .def("close", &VideoStream::close);
}
