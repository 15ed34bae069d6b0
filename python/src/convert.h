// What both extension modules share: Status -> Python exception, options from
// keyword arguments, NumPy arrays <-> ImageView / Tensor, results -> dicts.
// Everything here runs with the GIL held unless it says otherwise.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "damoyolo/detector.h"
#include "damoyolo/image.h"
#include "damoyolo/status.h"
#include "damoyolo/tensor.h"

namespace damoyolo::python {

namespace nb = nanobind;

// Raises the damoyolo._errors class of st.code() (NotFoundError is a
// FileNotFoundError, InvalidArgumentError a ValueError, ...) carrying the
// library's message. Needs the GIL.
[[noreturn]] void raise_status(const Status& st);
inline void check(const Status& st) {
  if (!st.ok()) raise_status(st);
}
template <class T>
T take(Result<T>&& r) {
  if (!r.ok()) raise_status(r.status());
  return std::move(*r);
}

// The keyword arguments the Python Detector and the video stream share.
struct DetectorArgs {
  std::optional<float> conf;
  std::optional<double> iou;
  int max_det = 500;
  std::vector<int> classes;
  int threads = 0;
  std::string precision = "fp32";
  std::string engine = "auto";
  int batch = 1;
  std::string labels;
};
DetectorOptions make_detector_options(const DetectorArgs& args);
SessionOptions make_session_options(int threads, const std::string& precision, const std::string& engine, int batch);

// Any uint8 array a NumPy user hands in: (H, W), (H, W, 1|3|4), any strides.
using ImageArray = nb::ndarray<const uint8_t, nb::device::cpu>;

// A view of `a` read in place whenever ImageView can express its layout: any
// row stride (crops, bottom-up [::-1]), pixels packed (column stride = the
// channel count) and channels either in order or reversed (a[..., ::-1] on 3
// channels is the other of RGB/BGR at the same bytes). Other layouts (a column
// step, as in a[::2, ::2]) are copied once into `scratch`, reused from call to
// call, and `copied` says so. `channels` names the array's channel order:
// "rgb" or "bgr" for 3 channels, "rgba" or "bgra" for 4; 1 channel is gray.
ImageView view_of(const ImageArray& a, const std::string& channels, std::vector<uint8_t>& scratch, bool& copied);

// The dlpack dtype of a Tensor dtype and back (kUndefined when unmapped).
nb::dlpack::dtype to_dlpack(DType d);
DType from_dlpack(nb::dlpack::dtype d);

// A NumPy array sharing the tensor's storage (kept alive by the array).
nb::object tensor_to_numpy(const Tensor& t);

// One image's result as the dict damoyolo.Results is built from: xyxy
// (n, 4) float32, confidence (n,) float32, class_id (n,) int64, width,
// height, source, timings (ms), decode (dict or None), image (the pixels, or
// None), input_copied.
nb::dict result_to_python(const ImageDetections& r, bool decoded, nb::object image, bool input_copied);

// An owning Image as a (H, W, 3) RGB uint8 NumPy array without copying the
// pixels (the array owns the Image; its rows keep their 64-byte stride).
nb::object image_to_numpy(Image&& image);

}  // namespace damoyolo::python
