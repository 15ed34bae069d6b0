// damoyolo._core: Session and Detector for Python (python/damoyolo wraps them).
//
// Every native call runs with the GIL released. Session::run is thread-safe
// in C++; a C++ Detector is not, so the Python Detector keeps a pool of them
// over one shared Session (one copy of the weights): a call leases an idle
// Detector, or creates one when every one is busy, and gives it back after.
// N Python threads calling one Detector therefore run on N C++ Detectors.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "convert.h"
#include "damoyolo/detector.h"
#include "damoyolo/image.h"
#include "damoyolo/session.h"

namespace damoyolo::python {
namespace {

using namespace nb::literals;

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

nb::list tensor_infos(const std::vector<TensorInfo>& infos) {
  nb::list out;
  for (const TensorInfo& i : infos) {
    nb::list dims;
    for (int64_t d : i.dims) dims.append(d);
    out.append(nb::make_tuple(i.name, dtype_name(i.dtype), nb::tuple(dims)));
  }
  return out;
}

class PySession {
 public:
  PySession(const std::string& path, int threads, const std::string& precision, const std::string& engine, int batch) {
    const SessionOptions o = make_session_options(threads, precision, engine, batch);
    Result<Session> r = Status(ErrorCode::kInternal, "not loaded");
    {
      nb::gil_scoped_release release;
      r = Session::load(path, o);
    }
    session_ = take(std::move(r));
  }

  nb::list inputs() const { return tensor_infos(session_.inputs()); }
  nb::list outputs() const { return tensor_infos(session_.outputs()); }
  nb::dict metadata() const {
    nb::dict d;
    for (const auto& [k, v] : session_.summary().metadata) d[nb::str(k.c_str())] = v;
    return d;
  }
  int threads() const { return session_.threads(); }
  std::string engine() const { return engine_name(session_.engine()); }

  // Inputs by name, C-contiguous arrays (the wrapper makes them so); they are
  // wrapped, not copied. Outputs are NumPy arrays over the result tensors.
  nb::dict run(nb::dict feeds) const {
    std::map<std::string, Tensor> in;
    std::vector<nb::ndarray<nb::c_contig, nb::device::cpu>> keep;  // the arrays stay referenced during the run
    for (auto [k, v] : feeds) {
      auto arr = nb::cast<nb::ndarray<nb::c_contig, nb::device::cpu>>(v);
      const DType dt = from_dlpack(arr.dtype());
      if (dt == DType::kUndefined)
        raise_status({ErrorCode::kInvalidArgument, "input '" + nb::cast<std::string>(k) + "': unsupported array dtype"});
      Shape shape(arr.ndim());
      for (size_t i = 0; i < arr.ndim(); ++i) shape[i] = static_cast<int64_t>(arr.shape(i));
      in.emplace(nb::cast<std::string>(k), Tensor::wrap(dt, std::move(shape), arr.data()));
      keep.push_back(std::move(arr));
    }
    Result<std::map<std::string, Tensor>> r = Status(ErrorCode::kInternal, "not run");
    {
      nb::gil_scoped_release release;
      r = session_.run_named(in);
    }
    auto outs = take(std::move(r));
    nb::dict d;
    for (auto& [name, t] : outs) d[nb::str(name.c_str())] = tensor_to_numpy(t);
    return d;
  }

  const Session& session() const { return session_; }

 private:
  Session session_;
};

// A Detector plus the scratch buffer for arrays ImageView cannot describe.
struct Slot {
  Detector detector;
  std::vector<uint8_t> scratch;
  uint64_t generation = 0;  // of the class filter it has applied
};

class PyDetector {
 public:
  PyDetector(const std::string& model, std::optional<float> conf, std::optional<double> iou, int max_det,
             std::vector<int> classes, int threads, const std::string& precision, const std::string& engine, int batch,
             const std::string& labels) {
    DetectorArgs a;
    a.conf = conf;
    a.iou = iou;
    a.max_det = max_det;
    a.classes = std::move(classes);
    a.threads = threads;
    a.precision = precision;
    a.engine = engine;
    a.batch = batch;
    a.labels = labels;
    options_ = make_detector_options(a);
    Status st;
    {
      nb::gil_scoped_release release;
      auto s = Session::load(model, options_.session);
      if (!s.ok()) {
        st = s.status();
      } else {
        session_ = std::move(*s);
        // The first Detector checks the options and names the classes; it
        // is the pool's first member.
        auto d = Detector::create(session_, options_);
        if (!d.ok()) {
          st = d.status();
        } else {
          names_ = d->class_names();
          input_w_ = d->input_width();
          input_h_ = d->input_height();
          conf_ = d->postprocess_options().conf_threshold;
          iou_ = d->postprocess_options().iou_threshold;
          idle_.push_back(std::make_unique<Slot>(Slot{std::move(*d), {}, 0}));
          created_ = 1;
        }
      }
    }
    check(st);
    // Detector::create keeps an out-of-range id silently (it never matches);
    // set_class_filter refuses it, and so does this constructor.
    for (int id : options_.class_filter)
      if (id < 0 || id >= static_cast<int>(names_.size()))
        raise_status({ErrorCode::kInvalidArgument, "class id " + std::to_string(id) +
                                                       " is out of range: the model has " +
                                                       std::to_string(names_.size()) + " classes"});
  }

  std::vector<std::string> names() const { return names_; }
  int input_width() const { return input_w_; }
  int input_height() const { return input_h_; }
  double conf() const { return conf_; }
  double iou() const { return iou_; }
  int threads() const { return session_.threads(); }
  int batch() const {
    int b = options_.session.batch;
    return b > 0 ? b : 1;
  }

  void set_classes(std::vector<int> ids) {
    for (int id : ids)
      if (id < 0 || id >= static_cast<int>(names_.size()))
        raise_status({ErrorCode::kInvalidArgument, "class id " + std::to_string(id) + " is out of range: the model has " +
                                                       std::to_string(names_.size()) + " classes"});
    std::lock_guard<std::mutex> lock(mu_);
    options_.class_filter = std::move(ids);
    ++generation_;  // leased detectors apply it when next leased
  }

  // Statistics the tests read: detectors created, copies of input arrays
  // made, and the data pointer the last in-memory image was read from.
  nb::dict stats() const {
    nb::dict d;
    std::lock_guard<std::mutex> lock(mu_);
    d["detectors"] = created_;
    d["idle"] = idle_.size();
    d["input_copies"] = input_copies_.load();
    d["last_view_data"] = last_view_data_.load();
    return d;
  }

  // One array, or a list of arrays batched through Detector::detect(span).
  nb::list detect_arrays(std::vector<ImageArray> arrays, const std::string& channels) {
    Lease lease(this);
    Slot& slot = lease.slot();
    // Copies for layouts ImageView cannot describe: one scratch buffer per
    // copied array (slot.scratch serves the single-image case).
    std::vector<std::vector<uint8_t>> extra(arrays.size() > 1 ? arrays.size() : 0);
    std::vector<ImageView> views;
    std::vector<bool> copied(arrays.size());
    views.reserve(arrays.size());
    for (size_t i = 0; i < arrays.size(); ++i) {
      bool c = false;
      views.push_back(view_of(arrays[i], channels, arrays.size() > 1 ? extra[i] : slot.scratch, c));
      copied[i] = c;
      if (c) ++input_copies_;
    }
    if (!views.empty()) last_view_data_ = reinterpret_cast<uintptr_t>(views.back().data);
    std::vector<Result<ImageDetections>> results;
    {
      nb::gil_scoped_release release;
      if (views.size() == 1) {
        results.push_back(slot.detector.detect(views[0]));
      } else {
        results = slot.detector.detect(std::span<const ImageView>(views));
      }
    }
    nb::list out;
    for (size_t i = 0; i < results.size(); ++i) out.append(result_to_python(take(std::move(results[i])), false, nb::none(), copied[i]));
    return out;
  }

  // Encoded images: paths (bytes_list empty) or in-memory files. Decoded here
  // (not through detect_file) so that the pixels come back for plot(); then
  // one batched detect.
  nb::list detect_encoded(std::vector<std::string> paths, std::vector<nb::bytes> blobs, bool keep_images) {
    Lease lease(this);
    Slot& slot = lease.slot();
    const bool from_files = blobs.empty();
    const size_t n = from_files ? paths.size() : blobs.size();
    std::vector<std::pair<const uint8_t*, size_t>> bytes;
    for (const nb::bytes& b : blobs) bytes.emplace_back(reinterpret_cast<const uint8_t*>(b.c_str()), b.size());
    std::vector<Image> images(n);
    std::vector<DecodeInfo> infos(n);
    std::vector<double> decode_ms(n);
    Status failed;
    std::vector<Result<ImageDetections>> results;
    {
      nb::gil_scoped_release release;
      const DecodeOptions& dopt = slot.detector.decode_options();
      for (size_t i = 0; i < n && failed.ok(); ++i) {
        const auto t = std::chrono::steady_clock::now();
        Result<Image> im = from_files ? decode_image_file(paths[i], dopt, &infos[i])
                                      : decode_image(bytes[i].first, bytes[i].second, dopt, "<bytes>", &infos[i]);
        decode_ms[i] = ms_since(t);
        if (!im.ok()) {
          failed = im.status();
        } else {
          images[i] = std::move(*im);
        }
      }
      if (failed.ok()) {
        std::vector<ImageView> views;
        for (const Image& im : images) views.push_back(im.view());
        if (views.size() == 1) {
          results.push_back(slot.detector.detect(views[0]));
        } else {
          results = slot.detector.detect(std::span<const ImageView>(views));
        }
      }
    }
    check(failed);
    nb::list out;
    for (size_t i = 0; i < n; ++i) {
      ImageDetections r = take(std::move(results[i]));
      r.timings.decode_ms = decode_ms[i];
      r.decode = infos[i];
      if (from_files) r.source = paths[i];
      out.append(result_to_python(r, true, keep_images ? image_to_numpy(std::move(images[i])) : nb::none(), false));
    }
    return out;
  }

 private:
  // Takes an idle detector (or makes one) for the duration of a call.
  class Lease {
   public:
    explicit Lease(PyDetector* owner) : owner_(owner) { slot_ = owner_->acquire(); }
    ~Lease() { owner_->release(std::move(slot_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Slot& slot() { return *slot_; }

   private:
    PyDetector* owner_;
    std::unique_ptr<Slot> slot_;
  };

  std::unique_ptr<Slot> acquire() {
    std::unique_ptr<Slot> slot;
    std::vector<int> filter;
    uint64_t gen = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      gen = generation_;
      if (!idle_.empty()) {
        slot = std::move(idle_.back());
        idle_.pop_back();
      }
      if (!slot || slot->generation != gen) filter = options_.class_filter;
    }
    if (!slot) {
      // Every detector is busy on another thread: one more over the same
      // session (shares its weights; owns only its buffers).
      DetectorOptions o;
      {
        std::lock_guard<std::mutex> lock(mu_);
        o = options_;
      }
      Result<Detector> d = Status(ErrorCode::kInternal, "not created");
      {
        nb::gil_scoped_release release;
        d = Detector::create(session_, o);
      }
      slot = std::make_unique<Slot>(Slot{take(std::move(d)), {}, gen});
      std::lock_guard<std::mutex> lock(mu_);
      ++created_;
    } else if (slot->generation != gen) {
      Status st = slot->detector.set_class_filter(filter);
      if (!st.ok()) {
        release(std::move(slot));
        raise_status(st);
      }
      slot->generation = gen;
    }
    return slot;
  }

  void release(std::unique_ptr<Slot> slot) {
    if (!slot) return;
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(std::move(slot));
  }

  Session session_;
  DetectorOptions options_;
  std::vector<std::string> names_;
  int input_w_ = 0, input_h_ = 0;
  double conf_ = 0, iou_ = 0;  // the thresholds in use (resolved from the model family when not given)
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Slot>> idle_;
  int created_ = 0;
  uint64_t generation_ = 0;
  std::atomic<int64_t> input_copies_{0};
  std::atomic<uintptr_t> last_view_data_{0};
};

// Decoding alone (for callers that want the pixels, e.g. to draw).
nb::object decode(const std::string& path, bool exif_rotate) {
  DecodeOptions o;
  o.exif_rotate = exif_rotate;
  Result<Image> r = Status(ErrorCode::kInternal, "not decoded");
  {
    nb::gil_scoped_release release;
    r = decode_image_file(path, o);
  }
  return image_to_numpy(take(std::move(r)));
}

nb::object decode_bytes(nb::bytes data, bool exif_rotate) {
  DecodeOptions o;
  o.exif_rotate = exif_rotate;
  const auto* p = reinterpret_cast<const uint8_t*>(data.c_str());
  const size_t n = data.size();
  Result<Image> r = Status(ErrorCode::kInternal, "not decoded");
  {
    nb::gil_scoped_release release;
    r = decode_image(p, n, o, "<bytes>");
  }
  return image_to_numpy(take(std::move(r)));
}

}  // namespace
}  // namespace damoyolo::python

NB_MODULE(_core, m) {
  using namespace damoyolo::python;
  using namespace nb::literals;
  m.doc() = "damoyolo's native core (use the damoyolo package, not this module)";

  nb::class_<PySession>(m, "Session")
      .def(nb::init<const std::string&, int, const std::string&, const std::string&, int>(), "model"_a, "threads"_a = 0,
           "precision"_a = "fp32", "engine"_a = "auto", "batch"_a = 0)
      .def_prop_ro("inputs", &PySession::inputs)
      .def_prop_ro("outputs", &PySession::outputs)
      .def_prop_ro("metadata", &PySession::metadata)
      .def_prop_ro("threads", &PySession::threads)
      .def_prop_ro("engine", &PySession::engine)
      .def("run", &PySession::run, "feeds"_a);

  nb::class_<PyDetector>(m, "Detector")
      .def(nb::init<const std::string&, std::optional<float>, std::optional<double>, int, std::vector<int>, int,
                    const std::string&, const std::string&, int, const std::string&>(),
           "model"_a, "conf"_a = nb::none(), "iou"_a = nb::none(), "max_det"_a = 500, "classes"_a = std::vector<int>{},
           "threads"_a = 0, "precision"_a = "fp32", "engine"_a = "auto", "batch"_a = 1, "labels"_a = "")
      .def_prop_ro("names", &PyDetector::names)
      .def_prop_ro("input_width", &PyDetector::input_width)
      .def_prop_ro("input_height", &PyDetector::input_height)
      .def_prop_ro("conf", &PyDetector::conf)
      .def_prop_ro("iou", &PyDetector::iou)
      .def_prop_ro("threads", &PyDetector::threads)
      .def_prop_ro("batch", &PyDetector::batch)
      .def("set_classes", &PyDetector::set_classes, "ids"_a)
      .def("stats", &PyDetector::stats)
      // noconvert: an array of another dtype or layout is an error, never a
      // silent copy (the wrapper checks the dtype first, with a clear message).
      .def("detect_arrays", &PyDetector::detect_arrays, "arrays"_a.noconvert(), "channels"_a)
      .def("detect_encoded", &PyDetector::detect_encoded, "paths"_a, "blobs"_a, "keep_images"_a = true);

  m.def("decode", &decode, "path"_a, "exif_rotate"_a = true);
  m.def("decode_bytes", &decode_bytes, "data"_a, "exif_rotate"_a = true);
}
