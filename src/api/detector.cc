#include "damoyolo/detector.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>

#include "model/head_layout.h"

namespace damoyolo {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
}  // namespace

struct Detector::Impl {
  DetectorOptions options;
  Session session;
  ModelFamily family = ModelFamily::kGeneral;
  PostprocessOptions post_options;
  ClassNames labels;  // the class names, and where they came from
  int in_w = 0, in_h = 0, classes = 0;
  int64_t batch = 1;  // images per network call

  // Preallocated once: the network input for `batch` images (64-byte aligned,
  // the preprocessor writes straight into it) and the outputs it fills.
  Tensor input;
  std::vector<Tensor> single_input;  // {input}, kept so run_into needs no temporary vector
  std::vector<Tensor> outputs;
  // A short last chunk: views of the first items of `input` and `outputs`.
  std::vector<Tensor> short_input, short_outputs;
  Preprocessor preprocessor;
  Postprocessor postprocessor;
  std::vector<PreprocessInfo> infos;

  // Preprocesses images[first..first+count) into the input batch, runs the
  // network once and post-processes each item.
  void run_chunk(std::span<const ImageView> images, size_t first, size_t count,
                 std::vector<Result<ImageDetections>>& results);

  // Detector::create without the exception boundary.
  static Result<Detector> create_checked(Session session, const std::string& model_path,
                                         const DetectorOptions& options);
};

// The session's head layout (export form, input size, classes, levels), with
// model_path in front of any error.
Result<model::HeadLayout> detector_layout(const Session& s, const std::string& model_path) {
  auto layout = model::recognise_head(s.inputs(), s.outputs());
  if (!layout.ok()) return Status(layout.status().code(), model_path + ": " + layout.status().message());
  return layout;
}

Result<int> detector_class_count(const Session& s, const std::string& model_path) {
  auto layout = detector_layout(s, model_path);
  if (!layout.ok()) return layout.status();
  return layout->num_classes;
}

Detector::Detector() = default;
Detector::~Detector() = default;
Detector::Detector(Detector&&) noexcept = default;
Detector& Detector::operator=(Detector&&) noexcept = default;

Result<Detector> Detector::create(const std::string& model_path, const DetectorOptions& options) {
  try {
    auto session = Session::load(model_path, options.session);
    if (!session.ok()) return session.status();
    return Impl::create_checked(std::move(*session), model_path, options);
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    // The batch's input and output buffers are allocated here.
    return Status(ErrorCode::kOutOfRange, model_path + ": out of memory creating the detector (batch " +
                                              std::to_string(options.session.batch) + ")");
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, model_path + ": " + e.what());
  }
}

Result<Detector> Detector::create(const Session& session, const DetectorOptions& options) {
  const std::string& path = session.summary().path;
  if (session.inputs().empty()) return Status(ErrorCode::kInvalidArgument, "the session has no model loaded");
  try {
    return Impl::create_checked(session, path, options);
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kOutOfRange, path + ": out of memory creating the detector");
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, path + ": " + e.what());
  }
}

Result<Detector> Detector::Impl::create_checked(Session session, const std::string& model_path,
                                                const DetectorOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->session = std::move(session);
  const Session& s = impl->session;

  auto layout = detector_layout(s, model_path);
  if (!layout.ok()) return layout.status();
  impl->classes = layout->num_classes;
  impl->in_h = static_cast<int>(layout->input_h);
  impl->in_w = static_cast<int>(layout->input_w);

  impl->family = options.family ? *options.family
                                : (s.summary().depthwise_convs > 0 ? ModelFamily::kNano : ModelFamily::kGeneral);
  PostprocessOptions po = PostprocessOptions::for_family(impl->family);
  if (options.conf_threshold) po.conf_threshold = *options.conf_threshold;
  if (options.iou_threshold) po.iou_threshold = *options.iou_threshold;
  po.max_det = options.max_det;
  po.class_filter = options.class_filter;
  po.fast_nms = options.fast_nms;
  po.parallel_class_nms = options.parallel_class_nms;
  Status st = impl->postprocessor.set_options(po);
  if (!st.ok()) return st;
  // The raw form's strides are input size / map size.
  st = impl->postprocessor.set_input_size(impl->in_w, impl->in_h);
  if (!st.ok()) return st;
  impl->post_options = po;

  auto names = resolve_class_names(model_path, s.summary().metadata, impl->classes, options.labels_file,
                                   options.class_names);
  if (!names.ok()) return names.status();
  impl->labels = std::move(*names);

  // Images per network call: the batch the session was compiled for.
  impl->batch = std::max<int64_t>(1, s.inputs()[0].dims[0]);
  impl->input = Tensor(DType::kFloat32, {impl->batch, 3, impl->in_h, impl->in_w});
  impl->outputs = impl->session.make_outputs(impl->batch);
  impl->single_input = {impl->input};
  impl->preprocessor = Preprocessor(PreprocessOptions{options.simd_preprocess, options.fused_preprocess});
  impl->infos.resize(static_cast<size_t>(impl->batch));
  Detector d;
  d.impl_ = std::move(impl);
  return d;
}

void Detector::Impl::run_chunk(std::span<const ImageView> images, size_t first, size_t count,
                               std::vector<Result<ImageDetections>>& results) {
  const size_t plane = static_cast<size_t>(3) * in_h * in_w;
  std::vector<bool> ok(count, false);
  std::vector<double> pre_ms(count, 0);
  for (size_t k = 0; k < count; ++k) {
    auto t = Clock::now();
    Status st = preprocessor.run(images[first + k], in_w, in_h, options.resize, input.data<float>() + k * plane,
                                 &infos[k]);
    pre_ms[k] = ms_since(t);
    if (!st.ok()) {
      results[first + k] = st;
      continue;
    }
    ok[k] = true;
  }
  if (std::none_of(ok.begin(), ok.end(), [](bool b) { return b; })) return;
  // Slots of failed images keep stale pixels; their outputs are ignored
  // (items of a batch never mix). A short chunk runs as a batch of `count`:
  // the session has (or compiles once) a plan for it, so it costs `count`
  // images, not `batch`. Only where that is impossible (the reference engine
  // on a batch-N export) does it run padded, the unused slots zeroed.
  auto t = Clock::now();
  Status st;
  const std::vector<Tensor>* outs = &outputs;
  if (static_cast<int64_t>(count) < batch) {
    const int64_t n = static_cast<int64_t>(count);
    short_input.assign(1, Tensor::wrap(DType::kFloat32, {n, 3, in_h, in_w}, input.raw()));
    short_outputs.resize(outputs.size());
    for (size_t o = 0; o < outputs.size(); ++o) {
      Shape s = outputs[o].shape();
      s[0] = n;
      short_outputs[o] = Tensor::wrap(outputs[o].dtype(), s, outputs[o].raw());
    }
    st = session.run_into(short_input, short_outputs);
    if (st.ok()) {
      outs = &short_outputs;
    } else if (st.code() == ErrorCode::kUnsupported || st.code() == ErrorCode::kInvalidArgument) {
      std::fill(input.data<float>() + count * plane, input.data<float>() + batch * plane, 0.f);
      st = session.run_into(single_input, outputs);
    }
  } else {
    st = session.run_into(single_input, outputs);
  }
  double infer_ms = ms_since(t) / static_cast<double>(count);
  for (size_t k = 0; k < count; ++k) {
    if (!ok[k]) continue;
    if (!st.ok()) {
      results[first + k] = st;
      continue;
    }
    ImageDetections r;
    r.width = images[first + k].width;
    r.height = images[first + k].height;
    r.timings.preprocess_ms = pre_ms[k];
    r.timings.inference_ms = infer_ms;
    auto tp = Clock::now();
    BoxScale scale{infos[k].scale_x, infos[k].scale_y};
    Status ps = postprocessor.process(*outs, scale, static_cast<int>(k), &r.detections);
    r.timings.postprocess_ms = ms_since(tp);
    if (!ps.ok()) results[first + k] = ps;
    else results[first + k] = std::move(r);
  }
}

std::vector<Result<ImageDetections>> Detector::detect(std::span<const ImageView> images) {
  std::vector<Result<ImageDetections>> results(images.size(), Status(ErrorCode::kInternal, "not processed"));
  if (!impl_) {
    for (auto& r : results) r = Status(ErrorCode::kInvalidArgument, "the detector has no model loaded");
    return results;
  }
  for (size_t first = 0; first < images.size(); first += static_cast<size_t>(impl_->batch)) {
    size_t count = std::min(images.size() - first, static_cast<size_t>(impl_->batch));
    try {
      impl_->run_chunk(images, first, count, results);
    } catch (const Error& e) {
      for (size_t k = 0; k < count; ++k) results[first + k] = e.status();
    } catch (const std::exception& e) {
      for (size_t k = 0; k < count; ++k) results[first + k] = Status(ErrorCode::kInternal, e.what());
    }
  }
  return results;
}

namespace {
// A tightly packed copy of `v` in `bytes` (zero_copy_input off).
ImageView copy_image(const ImageView& v, std::vector<uint8_t>& bytes) {
  if (!v.data || v.width <= 0 || v.height <= 0) return v;  // invalid: the preprocessor says why
  const size_t row = static_cast<size_t>(v.width) * static_cast<size_t>(pixel_format_bytes(v.format));
  bytes.resize(row * static_cast<size_t>(v.height));
  for (int y = 0; y < v.height; ++y) std::memcpy(bytes.data() + y * row, v.data + y * v.stride, row);
  return {bytes.data(), v.width, v.height, static_cast<ptrdiff_t>(row), v.format};
}
}  // namespace

Status Detector::detect_into(const ImageView& image, ImageDetections& out) {
  if (!impl_) return Status(ErrorCode::kInvalidArgument, "the detector has no model loaded");
  try {
    Impl& m = *impl_;
    auto t = Clock::now();
    // The ablation's off switches (damoyolo/optimizations.h): a copy of the
    // caller's image, and tensors allocated for this call alone.
    std::vector<uint8_t> copy;
    const ImageView src = m.options.zero_copy_input ? image : copy_image(image, copy);
    std::vector<Tensor> own_input, own_outputs;
    if (!m.options.preallocated_buffers) {
      own_input.emplace_back(DType::kFloat32, m.input.shape());
      own_outputs = m.session.make_outputs(m.batch);
    }
    const std::vector<Tensor>& input = m.options.preallocated_buffers ? m.single_input : own_input;
    std::vector<Tensor>& outputs = m.options.preallocated_buffers ? m.outputs : own_outputs;
    Status st = m.preprocessor.run(src, m.in_w, m.in_h, m.options.resize,
                                   const_cast<Tensor&>(input[0]).data<float>(), &m.infos[0]);
    if (!st.ok()) return st;
    out.timings = StageTimings{};
    out.timings.preprocess_ms = ms_since(t);
    t = Clock::now();
    st = m.session.run_into(input, outputs);
    if (!st.ok()) return st;
    out.timings.inference_ms = ms_since(t);
    t = Clock::now();
    st = m.postprocessor.process(outputs, BoxScale{m.infos[0].scale_x, m.infos[0].scale_y}, 0, &out.detections);
    out.timings.postprocess_ms = ms_since(t);
    out.width = image.width;
    out.height = image.height;
    out.source.clear();
    out.decode = DecodeInfo{};
    return st;
  } catch (const Error& e) {
    return e.status();
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, e.what());
  }
}

Result<ImageDetections> Detector::detect(const ImageView& image) {
  auto r = detect(std::span<const ImageView>(&image, 1));
  return std::move(r[0]);
}

std::vector<Result<ImageDetections>> Detector::detect_files(const std::vector<std::string>& paths) {
  std::vector<Result<ImageDetections>> results(paths.size(), Status(ErrorCode::kInternal, "not processed"));
  if (!impl_) {
    for (auto& r : results) r = Status(ErrorCode::kInvalidArgument, "the detector has no model loaded");
    return results;
  }
  // Decode a batch worth of files, then run them together.
  const size_t b = static_cast<size_t>(impl_->batch);
  for (size_t first = 0; first < paths.size(); first += b) {
    size_t count = std::min(paths.size() - first, b);
    std::vector<Image> decoded;
    std::vector<ImageView> views;
    std::vector<size_t> index;
    std::vector<double> decode_ms;
    std::vector<DecodeInfo> decode_info;
    for (size_t k = 0; k < count; ++k) {
      auto t = Clock::now();
      DecodeInfo info;
      auto img = decode_image_file(paths[first + k], impl_->options.decode, &info);
      if (!img.ok()) {
        results[first + k] = img.status();
        continue;
      }
      decode_ms.push_back(ms_since(t));
      decode_info.push_back(info);
      decoded.push_back(std::move(*img));
      index.push_back(first + k);
    }
    for (const auto& im : decoded) views.push_back(im.view());
    auto part = detect(std::span<const ImageView>(views));
    for (size_t k = 0; k < index.size(); ++k) {
      if (part[k].ok()) {
        part[k]->source = paths[index[k]];
        part[k]->timings.decode_ms = decode_ms[k];
        part[k]->decode = decode_info[k];
        results[index[k]] = std::move(part[k]);
      } else {
        results[index[k]] = Status(part[k].status().code(), paths[index[k]] + ": " + part[k].status().message());
      }
    }
  }
  return results;
}

Result<ImageDetections> Detector::detect_file(const std::string& path) {
  auto r = detect_files({path});
  return std::move(r[0]);
}

int Detector::input_width() const { return impl_ ? impl_->in_w : 0; }
int Detector::input_height() const { return impl_ ? impl_->in_h : 0; }
int Detector::num_classes() const { return impl_ ? impl_->classes : 0; }
ModelFamily Detector::family() const { return impl_ ? impl_->family : ModelFamily::kGeneral; }
const PostprocessOptions& Detector::postprocess_options() const { return impl_->post_options; }
const std::vector<std::string>& Detector::class_names() const { return impl_->labels.names; }
Status Detector::set_class_filter(std::vector<int> class_ids) {
  for (int id : class_ids)
    if (id < 0 || id >= impl_->classes)
      return Status(ErrorCode::kInvalidArgument, "class filter: class id " + std::to_string(id) +
                                                     " is out of range: the model has " +
                                                     std::to_string(impl_->classes) + " classes");
  PostprocessOptions po = impl_->post_options;
  po.class_filter = std::move(class_ids);
  Status st = impl_->postprocessor.set_options(po);
  if (st.ok()) impl_->post_options = std::move(po);
  return st;
}

const DecodeOptions& Detector::decode_options() const { return impl_->options.decode; }

LabelSource Detector::label_source() const { return impl_->labels.source; }
const std::string& Detector::label_origin() const { return impl_->labels.origin; }
std::string Detector::class_name(int id) const {
  if (impl_ && id >= 0 && id < static_cast<int>(impl_->labels.names.size())) return impl_->labels.names[static_cast<size_t>(id)];
  return "class" + std::to_string(id);
}
const Session& Detector::session() const { return impl_->session; }

}  // namespace damoyolo
