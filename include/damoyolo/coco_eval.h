// COCO bbox evaluation, reproducing pycocotools' COCOeval(iouType='bbox').
//
// What is reproduced (docs/evaluation.md has the full account):
//   * default Params: IoU thresholds 0.50:0.05:0.95 and recall thresholds
//     0:0.01:1, both computed the way numpy.linspace computes them; maxDets
//     [1, 10, 100]; area ranges all [0, 1e10], small [0, 32²], medium
//     [32², 96²], large [96², 1e10], both ends inclusive; useCats = 1;
//   * IoU as maskUtils.iou on [x, y, w, h] boxes (no +1), where a crowd ground
//     truth uses the detection's area as the union;
//   * per (image, category): detections ordered by score with a stable sort
//     (numpy mergesort), cut to 100; ground truth with ignored boxes last;
//     greedy matching per IoU threshold; crowd ground truth matches any number
//     of detections; detections matched to ignored ground truth, and unmatched
//     detections outside the area range, are ignored;
//   * accumulation over all images (stable sort of the concatenated scores),
//     precision made monotone from the right, sampled at the recall thresholds
//     like numpy.searchsorted(side='left'), -1 where a category has no
//     ground truth; the 12 summary numbers as means over entries > -1.
// Ground-truth area ranges use the annotation's `area`; detections use w·h.
//
// Everything here returns Status / Result; nothing throws.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "damoyolo/status.h"

namespace damoyolo {

struct Detection;  // damoyolo/detection.h

// ---------------------------------------------------------------------------
// Ground truth
// ---------------------------------------------------------------------------

struct CocoImage {
  int64_t id = 0;
  std::string file_name;
  int width = 0, height = 0;  // 0 when the file does not say
};

struct CocoCategory {
  int64_t id = 0;
  std::string name;
};

struct CocoAnnotation {
  int64_t id = 0;
  int64_t image_id = 0;
  int64_t category_id = 0;
  std::array<double, 4> bbox{};  // x, y, w, h in pixels
  double area = 0;               // the file's `area` (segment area in COCO, not w·h)
  bool iscrowd = false;
};

// Limits for reading COCO files, which may come from anyone.
struct CocoLoadOptions {
  // Files larger than this are refused before reading (kOutOfRange). COCO
  // train2017's instances file is 448 MB and a results file of a full
  // val2017 run (500 boxes per image) about 250 MB.
  uint64_t max_file_bytes = uint64_t{2} << 30;
};

// The parts of a COCO instances file that bbox evaluation uses. Entries keep
// the file's order (it decides tie order, as in pycocotools).
struct CocoDataset {
  std::vector<CocoImage> images;
  std::vector<CocoCategory> categories;
  std::vector<CocoAnnotation> annotations;

  // Reads a COCO annotation file. Errors name the file and what is wrong:
  // kIOError (missing, unreadable, or not a regular file: /dev/zero, a FIFO,
  // a directory are refused without reading), kOutOfRange (larger than
  // options.max_file_bytes, checked before reading), kParseError (not JSON, a
  // number no double holds such as 1e999, or not COCO: a missing
  // `images`/`annotations`/`categories` list or a malformed entry — ids must
  // be whole numbers from 0 to 2^63 - 1, width/height from 0 to 2^31 - 1).
  // An annotation without `area` gets w·h (pycocotools would fail on it);
  // without `iscrowd` it counts as not crowd. Fields bbox evaluation does not
  // use (segmentation, ...) are skipped while parsing.
  static Result<CocoDataset> load(const std::string& path, const CocoLoadOptions& options = {});
  // The same from JSON text; `source` names it in error messages.
  static Result<CocoDataset> parse(std::string_view json_text, const std::string& source = "<memory>");
};

// The file of a dataset image, `file_name` (CocoImage::file_name, as written
// in an annotation file that may come from anyone) under `images_dir`, kept
// inside that folder. Refused:
//  kInvalidArgument an empty name, one with a NUL byte, an absolute path, or
//                   one that leads outside images_dir ("../../etc/passwd",
//                   or a symbolic link whose target is outside it);
//  kNotFound        images_dir or the file does not exist;
//  kIOError         the file is not a regular file (a device, FIFO, folder).
// Returns the resolved path (symbolic links followed), inside the resolved
// images_dir. Symbolic links that stay inside the folder are allowed.
Result<std::string> coco_image_path(const std::string& images_dir, const std::string& file_name);

// ---------------------------------------------------------------------------
// Detections (the COCO results format)
// ---------------------------------------------------------------------------

struct CocoDetection {
  int64_t image_id = 0;
  int64_t category_id = 0;
  std::array<double, 4> bbox{};  // x, y, w, h in original-image pixels
  double score = 0;
};

// A COCO results file: a JSON list of {image_id, category_id, bbox, score}.
// Order is kept (it decides tie order). kIOError / kOutOfRange / kParseError
// as for CocoDataset::load.
Result<std::vector<CocoDetection>> load_coco_results(const std::string& path, const CocoLoadOptions& options = {});
Result<std::vector<CocoDetection>> parse_coco_results(std::string_view json_text,
                                                      const std::string& source = "<memory>");

// Writes the same format. Numbers are printed with the shortest text that
// reads back to the same double: no rounding.
Status write_coco_results(const std::string& path, std::span<const CocoDetection> detections);
std::string coco_results_json(std::span<const CocoDetection> detections);

// A runtime detection (x1, y1, x2, y2, contiguous class id) as a COCO result:
// bbox = [x1, y1, x2 − x1, y2 − y1] with the differences taken in float32 like
// the official torch code, category = category_ids[class_id]. kInvalidArgument
// when class_id is outside category_ids.
Result<CocoDetection> to_coco_detection(const Detection& detection, int64_t image_id,
                                        std::span<const int64_t> category_ids);

// ---------------------------------------------------------------------------
// Class mapping: contiguous class index -> dataset category id
// ---------------------------------------------------------------------------

// The 80 COCO category ids in the standard contiguous order:
// 1–11, 13–25, 27, 28, 31–44, 46–65, 67, 70, 72–82, 84–90. (The matching
// names are coco80_class_names() in damoyolo/detector.h.)
std::span<const int64_t> coco80_category_ids();

// categories[i] = the id of the dataset category named class_names[i] (the
// official DAMO-YOLO mapping is by name). kNotFound lists every name the
// dataset lacks; kInvalidArgument when the dataset names two categories alike.
Result<std::vector<int64_t>> category_ids_by_name(const CocoDataset& dataset,
                                                  std::span<const std::string> class_names);

// The mapping a tool should use: by name when class names are known (against
// `dataset`, or against the built-in COCO-80 table when dataset is null);
// with no names, the standard COCO-80 order, which needs num_classes == 80
// (kInvalidArgument otherwise).
Result<std::vector<int64_t>> resolve_category_ids(const CocoDataset* dataset,
                                                  std::span<const std::string> class_names, int num_classes);

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

struct CocoMetrics {
  // pycocotools' stats[0..11]: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100,
  // ARs, ARm, ARl. -1 where no entry exists (e.g. no small ground truth).
  std::array<double, 12> stats{};

  double ap() const { return stats[0]; }
  double ap50() const { return stats[1]; }
  double ap75() const { return stats[2]; }

  // "AP", "AP50", ... in stats order (the keys of to_json()).
  static std::span<const std::string_view> names();
};

// The accumulated arrays, as COCOeval.eval holds them, for callers that want
// per-class or per-threshold numbers. Dimensions: T = 10 IoU thresholds,
// R = 101 recall thresholds, K = categories (sorted by id), A = 4 area ranges
// (all, small, medium, large), M = 3 maxDets (1, 10, 100).
struct CocoEvaluation {
  CocoMetrics metrics;
  std::vector<int64_t> category_ids;  // K, ascending
  std::vector<double> precision;      // [T][R][K][A][M], -1 where undefined
  std::vector<double> recall;         // [T][K][A][M], -1 where undefined
  // Detections whose category_id is not a dataset category: pycocotools skips
  // them silently; the count is kept so tools can warn.
  int64_t skipped_detections = 0;

  double precision_at(int t, int r, int k, int a, int m) const;
  double recall_at(int t, int k, int a, int m) const;
};

inline constexpr int kCocoIouThresholds = 10;
inline constexpr int kCocoRecallThresholds = 101;
inline constexpr int kCocoAreaRanges = 4;
inline constexpr int kCocoMaxDets = 3;

// The threshold values exactly as numpy.linspace produces them in
// pycocotools' Params (so 0.55 here is the double numpy computes, not the
// literal 0.55).
std::span<const double> coco_iou_thresholds();
std::span<const double> coco_recall_thresholds();

// Scores `detections` against `dataset`. kNotFound when a detection names an
// image the dataset does not have (pycocotools asserts the same).
Result<CocoEvaluation> evaluate_coco_bbox(const CocoDataset& dataset, std::span<const CocoDetection> detections);

// The 12 lines pycocotools' summarize() prints, each ending in '\n':
// " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.xxx".
std::string format_coco_summary(const CocoMetrics& metrics);

// {"AP": ..., "AP50": ..., ...}, full precision.
std::string coco_metrics_json(const CocoMetrics& metrics);

}  // namespace damoyolo
