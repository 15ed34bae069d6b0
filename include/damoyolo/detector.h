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

// Where a detector's class names came from, in the order they are looked for.
enum class LabelSource {
  kLabelsFile,     // DetectorOptions::labels_file
  kOptions,        // DetectorOptions::class_names
  kModelMetadata,  // the model file's metadata_props "names" (written by the training export)
  kSidecarFile,    // <model>.labels.txt or <model>.names next to the model file
  kCoco80,         // an 80-class model that names nothing itself: COCO's names
  kGeneric,        // "class0", "class1", ...
};
// "labels file", "options", "model metadata", "file beside the model", "COCO-80", "generic".
const char* label_source_name(LabelSource source);

struct ClassNames {
  std::vector<std::string> names;
  LabelSource source = LabelSource::kGeneric;
  std::string origin;  // the file read, or "metadata 'names'"; empty otherwise
};

// The Detector's own optimisation switches (fast_nms, simd_preprocess) are
// inherited from DetectorOptimizations, so they read as fields of the options
// (`o.fast_nms = false`); damoyolo/optimizations.h lists and describes them.
struct DetectorOptions : DetectorOptimizations {
  SessionOptions session;  // engine, precision, threads, batch, optimisation switches
  // Thresholds default to the model family's (T/S/M/L 0.05/0.7, nano 0.03/0.65).
  // The family is inferred from the graph (depthwise convolutions ⇒ nano)
  // unless given.
  std::optional<ModelFamily> family;
  std::optional<float> conf_threshold;
  std::optional<double> iou_threshold;
  int max_det = 500;
  std::vector<int> class_filter;  // empty: all classes
  // Class names, the first of: labels_file (one per line); class_names; the
  // model's own metadata ("names"); <model>.labels.txt or <model>.names beside
  // the model file; COCO's 80 when the model has 80 classes; "class0", ...
  // (see resolve_class_names below).
  std::string labels_file;
  std::vector<std::string> class_names;
  ResizeMode resize = ResizeMode::kStretch;  // kLetterbox for legacy (pre-v0.3.0) models
  // PostprocessOptions::parallel_class_nms (used when fast_nms is off).
  bool parallel_class_nms = false;
  DecodeOptions decode;  // for detect_file(s); pil_compatible() for official parity
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
  // A detector on an already loaded model: it shares `session`'s compiled
  // model, weights and context pool with every other user of it (one copy of
  // the weights for any number of streams); what it owns is per stream: its
  // preallocated input batch, outputs and post-processing state. The network
  // runs at the session's batch; options.session is not used (it was applied
  // when the session was loaded). Class names come from the model's metadata
  // (or the options), a labels file is looked for beside summary().path.
  static Result<Detector> create(const Session& session, const DetectorOptions& options = {});

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

  // Keeps only these class ids from now on (empty: all). kInvalidArgument for
  // an id outside [0, num_classes()).
  Status set_class_filter(std::vector<int> class_ids);

  int input_width() const;
  int input_height() const;
  int num_classes() const;
  ModelFamily family() const;
  const PostprocessOptions& postprocess_options() const;
  // How detect_file decodes (DetectorOptions::decode), for callers that decode themselves.
  const DecodeOptions& decode_options() const;
  const std::vector<std::string>& class_names() const;
  // "person", or "class17" when out of range.
  std::string class_name(int class_id) const;
  // Where class_names() came from, and the file or metadata key it was read from.
  LabelSource label_source() const;
  const std::string& label_origin() const;
  const Session& session() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The class count of a loaded DAMO-YOLO export (default or --benchmark form);
// kInvalidArgument, naming model_path, for a graph that is not one.
Result<int> detector_class_count(const Session& session, const std::string& model_path);

// The 80 COCO class names in the contiguous order DAMO-YOLO is trained with.
const std::vector<std::string>& coco80_class_names();
// The largest labels file read_labels_file accepts by default: 1 MiB holds
// some 50,000 class names; anything larger is not a labels file.
inline constexpr uint64_t kMaxLabelsFileBytes = uint64_t{1} << 20;
// Reads a labels file: one name per line, blank lines and surrounding spaces
// ignored. Only a regular file (or a symbolic link to one) of at most
// max_bytes is read. kNotFound: missing; kIOError: not a regular file (a
// device, FIFO, directory) or unreadable; kOutOfRange: larger than max_bytes
// (checked before reading); kParseError: no names.
Result<std::vector<std::string>> read_labels_file(const std::string& path,
                                                  uint64_t max_bytes = kMaxLabelsFileBytes);

// Parses a model's "names" metadata value. Accepted, as detector exports write
// it: a JSON array (["cat", "dog"]), a JSON object keyed by class index
// ({"0": "cat", "1": "dog"}), or the Python literals of those
// ({0: 'cat', 1: 'dog'}, as Ultralytics exports write). Object keys must be
// exactly 0..n-1. kParseError says what is wrong and where.
Result<std::vector<std::string>> parse_class_names_metadata(const std::string& value);

// The class names a Detector uses for a model of `num_classes` classes,
// looked for in the order of LabelSource (labels_file and class_names from
// the options). A list whose length is not num_classes is an error
// (kInvalidArgument naming its origin), never silently padded or cut.
Result<ClassNames> resolve_class_names(const std::string& model_path,
                                       const std::map<std::string, std::string>& metadata, int num_classes,
                                       const std::string& labels_file = {},
                                       const std::vector<std::string>& class_names = {});

}  // namespace damoyolo
