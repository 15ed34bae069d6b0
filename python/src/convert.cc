#include "convert.h"

#include <cstring>
#include <memory>
#include <utility>

namespace damoyolo::python {

void raise_status(const Status& st) {
  // The classes live in Python (damoyolo/_errors.py) so that both extension
  // modules raise the very same ones.
  const char* cls = "Error";
  switch (st.code()) {
    case ErrorCode::kNotFound: cls = "NotFoundError"; break;
    case ErrorCode::kInvalidArgument: cls = "InvalidArgumentError"; break;
    case ErrorCode::kOutOfRange: cls = "OutOfRangeError"; break;
    case ErrorCode::kParseError: cls = "ParseError"; break;
    case ErrorCode::kUnsupported: cls = "UnsupportedError"; break;
    case ErrorCode::kIOError: cls = "FileError"; break;
    default: break;
  }
  nb::object type = nb::module_::import_("damoyolo._errors").attr(cls);
  nb::object exc = type(st.message());
  nb::setattr(exc, "code", nb::str(error_code_name(st.code())));
  PyErr_SetObject(type.ptr(), exc.ptr());
  throw nb::python_error();
}

SessionOptions make_session_options(int threads, const std::string& precision, const std::string& engine, int batch) {
  SessionOptions o;
  if (threads < 0) raise_status({ErrorCode::kInvalidArgument, "threads must be >= 0 (0: all cores), got " + std::to_string(threads)});
  o.threads = threads;
  if (precision == "fp32") {
    o.precision = Precision::kFP32;
  } else if (precision == "bf16") {
    o.precision = Precision::kBF16;
  } else {
    raise_status({ErrorCode::kInvalidArgument, "precision must be 'fp32' or 'bf16', got '" + precision + "'"});
  }
  if (engine == "auto") {
    o.engine = Engine::kAuto;
  } else if (engine == "optimized") {
    o.engine = Engine::kOptimized;
  } else if (engine == "reference") {
    o.engine = Engine::kReference;
  } else {
    raise_status({ErrorCode::kInvalidArgument, "engine must be 'auto', 'optimized' or 'reference', got '" + engine + "'"});
  }
  if (batch < 0) raise_status({ErrorCode::kInvalidArgument, "batch must be >= 0, got " + std::to_string(batch)});
  o.batch = batch;
  return o;
}

DetectorOptions make_detector_options(const DetectorArgs& a) {
  DetectorOptions o;
  o.session = make_session_options(a.threads, a.precision, a.engine, a.batch);
  o.conf_threshold = a.conf;
  o.iou_threshold = a.iou;
  o.max_det = a.max_det;
  o.class_filter = a.classes;
  o.labels_file = a.labels;
  return o;
}

ImageView view_of(const ImageArray& a, const std::string& channels, std::vector<uint8_t>& scratch, bool& copied) {
  copied = false;
  const size_t nd = a.ndim();
  if (nd != 2 && nd != 3)
    raise_status({ErrorCode::kInvalidArgument, "an image array must be (H, W) or (H, W, C), got " + std::to_string(nd) + " dimensions"});
  const int64_t h = static_cast<int64_t>(a.shape(0)), w = static_cast<int64_t>(a.shape(1));
  const int64_t c = nd == 3 ? static_cast<int64_t>(a.shape(2)) : 1;
  if (h <= 0 || w <= 0 || h > (1 << 20) || w > (1 << 20))
    raise_status({ErrorCode::kInvalidArgument, "an image must be 1..1048576 pixels each way, got " + std::to_string(h) + "x" + std::to_string(w)});
  PixelFormat fmt;
  if (c == 1) {
    fmt = PixelFormat::kGray8;
  } else if (c == 3 && (channels == "rgb" || channels == "bgr")) {
    fmt = channels == "rgb" ? PixelFormat::kRGB8 : PixelFormat::kBGR8;
  } else if (c == 4 && (channels == "rgba" || channels == "bgra")) {
    fmt = channels == "rgba" ? PixelFormat::kRGBA8 : PixelFormat::kBGRA8;
  } else {
    raise_status({ErrorCode::kInvalidArgument, "channels='" + channels + "' does not fit an image of " + std::to_string(c) +
                                                   " channel(s) (3: 'rgb' or 'bgr', 4: 'rgba' or 'bgra', 1 or (H, W): gray)"});
  }
  // nanobind's strides count elements, here bytes.
  const int64_t sy = a.stride(0);
  const int64_t sx = w == 1 ? c : a.stride(1);  // a 1-wide image's column stride means nothing
  const int64_t sc = nd == 3 && c > 1 ? a.stride(2) : 1;
  const uint8_t* base = a.data();
  if (sx == c && sc == 1) return {base, static_cast<int>(w), static_cast<int>(h), static_cast<ptrdiff_t>(sy), fmt};
  if (c == 3 && sx == 3 && sc == -1) {
    // Reversed channels at packed pixels: the bytes from base - 2 are the same
    // pixels in the other order.
    const PixelFormat other = fmt == PixelFormat::kRGB8 ? PixelFormat::kBGR8 : PixelFormat::kRGB8;
    return {base - 2, static_cast<int>(w), static_cast<int>(h), static_cast<ptrdiff_t>(sy), other};
  }
  // A layout ImageView cannot describe: one compact copy, in the array's
  // channel order, into the reusable scratch buffer.
  copied = true;
  const size_t row = static_cast<size_t>(w * c);
  scratch.resize(row * static_cast<size_t>(h));
  // The channel count as a compile-time constant: the inner loop unrolls
  // (a 1080p column-step copy took 20 ms with runtime counts, NumPy's own 8).
  auto copy = [&]<int C>() {
    for (int64_t y = 0; y < h; ++y) {
      const uint8_t* src = base + y * sy;
      uint8_t* dst = scratch.data() + static_cast<size_t>(y) * row;
      for (int64_t x = 0; x < w; ++x, src += sx, dst += C)
        for (int k = 0; k < C; ++k) dst[k] = src[k * sc];
    }
  };
  if (c == 1) {
    copy.operator()<1>();
  } else if (c == 3) {
    copy.operator()<3>();
  } else {
    copy.operator()<4>();
  }
  return {scratch.data(), static_cast<int>(w), static_cast<int>(h), static_cast<ptrdiff_t>(row), fmt};
}

nb::dlpack::dtype to_dlpack(DType d) {
  using nb::dlpack::dtype_code;
  auto mk = [](dtype_code code, int bits) {
    nb::dlpack::dtype t;
    t.code = static_cast<uint8_t>(code);
    t.bits = static_cast<uint8_t>(bits);
    t.lanes = 1;
    return t;
  };
  switch (d) {
    case DType::kFloat32: return mk(dtype_code::Float, 32);
    case DType::kFloat64: return mk(dtype_code::Float, 64);
    case DType::kFloat16: return mk(dtype_code::Float, 16);
    case DType::kBFloat16: return mk(dtype_code::Bfloat, 16);
    case DType::kUInt8: return mk(dtype_code::UInt, 8);
    case DType::kUInt16: return mk(dtype_code::UInt, 16);
    case DType::kUInt32: return mk(dtype_code::UInt, 32);
    case DType::kUInt64: return mk(dtype_code::UInt, 64);
    case DType::kInt8: return mk(dtype_code::Int, 8);
    case DType::kInt16: return mk(dtype_code::Int, 16);
    case DType::kInt32: return mk(dtype_code::Int, 32);
    case DType::kInt64: return mk(dtype_code::Int, 64);
    case DType::kBool: return mk(dtype_code::Bool, 8);
    default: return mk(dtype_code::Float, 0);
  }
}

DType from_dlpack(nb::dlpack::dtype t) {
  for (DType d : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16, DType::kUInt8, DType::kUInt16,
                  DType::kUInt32, DType::kUInt64, DType::kInt8, DType::kInt16, DType::kInt32, DType::kInt64, DType::kBool}) {
    const nb::dlpack::dtype m = to_dlpack(d);
    if (m.code == t.code && m.bits == t.bits && t.lanes == 1) return d;
  }
  return DType::kUndefined;
}

nb::object tensor_to_numpy(const Tensor& t) {
  if (to_dlpack(t.dtype()).bits == 0)
    raise_status({ErrorCode::kUnsupported, std::string("no NumPy dtype for tensor dtype ") + dtype_name(t.dtype())});
  // The capsule holds a handle to the tensor's shared storage: no copy.
  auto* held = new Tensor(t);
  nb::capsule owner(held, [](void* p) noexcept { delete static_cast<Tensor*>(p); });
  std::vector<size_t> shape(t.shape().begin(), t.shape().end());
  nb::ndarray<nb::numpy> arr(held->raw(), shape.size(), shape.data(), owner, nullptr, to_dlpack(t.dtype()));
  return nb::cast(std::move(arr));
}

namespace {

template <class T>
nb::object vector_to_numpy(std::vector<T>&& v, std::initializer_list<size_t> shape) {
  if (v.empty()) v.reserve(1);  // a valid data pointer even for 0 detections
  auto* held = new std::vector<T>(std::move(v));
  nb::capsule owner(held, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::cast(nb::ndarray<nb::numpy, T>(held->data(), shape, owner));
}

}  // namespace

nb::object image_to_numpy(Image&& image) {
  auto* held = new Image(std::move(image));
  nb::capsule owner(held, [](void* p) noexcept { delete static_cast<Image*>(p); });
  const size_t h = static_cast<size_t>(held->height()), w = static_cast<size_t>(held->width());
  return nb::cast(nb::ndarray<nb::numpy, uint8_t>(held->data(), {h, w, 3}, owner, {held->stride(), 3, 1}));
}

nb::dict result_to_python(const ImageDetections& r, bool decoded, nb::object image, bool input_copied) {
  const size_t n = r.detections.size();
  std::vector<float> xyxy(n * 4), conf(n);
  std::vector<int64_t> cls(n);
  for (size_t i = 0; i < n; ++i) {
    const Detection& d = r.detections[i];
    xyxy[i * 4 + 0] = d.x1;
    xyxy[i * 4 + 1] = d.y1;
    xyxy[i * 4 + 2] = d.x2;
    xyxy[i * 4 + 3] = d.y2;
    conf[i] = d.score;
    cls[i] = d.class_id;
  }
  nb::dict out;
  out["xyxy"] = vector_to_numpy(std::move(xyxy), {n, 4});
  out["confidence"] = vector_to_numpy(std::move(conf), {n});
  out["class_id"] = vector_to_numpy(std::move(cls), {n});
  out["width"] = r.width;
  out["height"] = r.height;
  out["source"] = r.source;
  nb::dict t;
  t["decode"] = r.timings.decode_ms;
  t["preprocess"] = r.timings.preprocess_ms;
  t["inference"] = r.timings.inference_ms;
  t["postprocess"] = r.timings.postprocess_ms;
  out["timings"] = t;
  if (decoded) {
    nb::dict d;
    d["format"] = image_format_name(r.decode.format);
    d["bit_depth"] = r.decode.bit_depth;
    d["exif_orientation"] = r.decode.exif_orientation;
    d["orientation_applied"] = r.decode.orientation_applied;
    d["scaled_from_16bit"] = r.decode.scaled_from_16bit;
    out["decode"] = d;
  } else {
    out["decode"] = nb::none();
  }
  out["image"] = image;
  out["input_copied"] = input_copied;
  return out;
}

}  // namespace damoyolo::python
