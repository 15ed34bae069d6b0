// damoyolo::Detector — image in, detections out, with the official pipeline.
//
//   decode → fused resize/convert straight into the network's input buffer
//   (bit-exact with the official cv2 recipe) → Session → head decode +
//   class-aware NMS → boxes in original-image pixels.
//
// Decoding follows DetectorOptions::decode. Its defaults apply the EXIF
// orientation and scale 16-bit samples; DecodeOptions::pil_compatible() is the
// official recipe's PIL decode exactly (the two agree on 8-bit images without
// an orientation tag).
//
// A Detector owns its input/output buffers, preprocessor and post-processor,
// so repeated calls on same-sized images allocate nothing on the hot path.
// It is not thread-safe: use one Detector per thread (they may share nothing;
// loading is cheap next to a video's length).
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "damoyolo/detection.h"
#include "damoyolo/image.h"
#include "damoyolo/session.h"

namespace damoyolo {

struct DetectorOptions {
  SessionOptions session;  // engine, precision, threads, batch, optimisation switches
  // Thresholds default to the model family's (T/S/M/L 0.05/0.7, nano 0.03/0.65).
  // The family is inferred from the graph (depthwise convolutions ⇒ nano)
  // unless given.
  std::optional<ModelFamily> family;
  std::optional<float> conf_threshold;
  std::optional<double> iou_threshold;
  int max_det = 500;
  std::vector<int> class_filter;  // empty: all classes
  // Class names: from labels_file (one per line) if set, else class_names, else
  // COCO's 80 when the model has 80 classes, else "class0", "class1", ...
  std::string labels_file;
  std::vector<std::string> class_names;
  ResizeMode resize = ResizeMode::kStretch;  // kLetterbox for legacy (pre-v0.3.0) models
  DecodeOptions decode;  // for detect_file(s); pil_compatible() for official parity
  bool fast_nms = true;         // off: reference O(n²) NMS (ablation)
  bool simd_preprocess = true;  // off: scalar preprocessing (ablation)
};

// Wall time of each stage for one image, in milliseconds. For a batch the
// inference time is the whole batch's, divided evenly.
struct StageTimings {
  double decode_ms = 0, preprocess_ms = 0, inference_ms = 0, postprocess_ms = 0;
  double total() const { return decode_ms + preprocess_ms + inference_ms + postprocess_ms; }
};

struct ImageDetections {
  std::string source;  // file path, or empty for in-memory images
  // Size of the image the detector saw: for files, after any EXIF rotation.
  int width = 0, height = 0;
  std::vector<Detection> detections;  // score descending, original-image pixels
  StageTimings timings;
  // What decoding found and did (format, bit depth, EXIF orientation and
  // whether it was applied, 16-bit scaling). Filled by detect_file(s); left at
  // its defaults (format kUnknown) for in-memory images.
  DecodeInfo decode;
};

class Detector {
 public:
  Detector();
  ~Detector();
  Detector(Detector&&) noexcept;
  Detector& operator=(Detector&&) noexcept;

  static Result<Detector> create(const std::string& model_path, const DetectorOptions& options = {});

  // One image from caller memory (any stride / pixel format), read in place.
  Result<ImageDetections> detect(const ImageView& image);
  // The allocation-free form for video loops: `out` is overwritten and its
  // detections vector reused, so once capacities have grown, a call on a
  // same-sized image allocates nothing anywhere in the pipeline.
  Status detect_into(const ImageView& image, ImageDetections& out);
  // Decodes and detects. Errors name the file.
  Result<ImageDetections> detect_file(const std::string& path);
  // Several images, batched through the network `session.batch` at a time.
  // One bad image fails alone; the others still get their results.
  std::vector<Result<ImageDetections>> detect(std::span<const ImageView> images);
  std::vector<Result<ImageDetections>> detect_files(const std::vector<std::string>& paths);

  int input_width() const;
  int input_height() const;
  int num_classes() const;
  ModelFamily family() const;
  const PostprocessOptions& postprocess_options() const;
  const std::vector<std::string>& class_names() const;
  // "person", or "class17" when out of range.
  std::string class_name(int class_id) const;
  const Session& session() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The 80 COCO class names in the contiguous order DAMO-YOLO is trained with.
const std::vector<std::string>& coco80_class_names();
// Reads a labels file: one name per line, blank lines and surrounding spaces ignored.
Result<std::vector<std::string>> read_labels_file(const std::string& path);

}  // namespace damoyolo
