// Options shared by `detect` and `video`: thresholds, class filter, labels,
// resize mode and the drawing threshold, spelled the same in both commands,
// plus the JSON form of one image's (or frame's) detections.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "damoyolo/detector.h"
#include "options.h"
#include "outputs.h"

namespace damoyolo::cli {

struct DetectionArgs {
  std::string model;
  EngineArgs engine;
  // Defaults for people, exact values for evaluation: detect and video keep
  // what scores >= 0.25 (the threshold the detection tools people know
  // default to), at most 300 per image; --official switches to the official
  // pipeline (the model family's 0.05 / 0.03 and 0.7 / 0.65, 500 boxes, PIL
  // decoding), which is what evaluation and parity checks need. An explicit
  // --conf / --iou / --max-det wins over both. Plain values plus the parsed
  // option, because CLI11 2.1 has no std::optional.
  double conf = 0.25, iou = 0;
  int max_det = 300;
  CLI::Option* conf_opt = nullptr;
  CLI::Option* iou_opt = nullptr;
  CLI::Option* max_det_opt = nullptr;
  bool official = false;
  bool pil_decode = false;  // decode exactly as PIL's convert('RGB') (implied by --official)
  std::string classes;      // "0,2,person": ids or names to keep
  std::string labels;
  std::string resize = "stretch";
  // Draw only detections at least this confident; unset: everything kept.
  double draw_conf = 0;
  CLI::Option* draw_conf_opt = nullptr;
  bool full_precision = false;  // JSON floats unrounded
  // Image files with more pixels are refused from their header, before decoding.
  int64_t max_pixels = DecodeOptions{}.max_pixels;

  // --model, the thresholds, --official, --classes, --labels, --resize,
  // --draw-conf, --full-precision, --max-pixels and the engine options.
  void add_to(CLI::App* cmd, bool with_batch);
  // The threshold below which nothing is drawn.
  float draw_threshold() const { return draw_conf_opt && draw_conf_opt->count() > 0 ? static_cast<float>(draw_conf) : 0.f; }
};

// Builds the detector the options describe. Class names in --classes are
// resolved against --labels (or the COCO names) first, then checked against
// the loaded model, so "person" on a model without that class is an error
// instead of a silently empty filter.
Result<Detector> make_detector(const DetectionArgs& args);

// [{box:[x1,y1,x2,y2], score, class_id, class_name}, ...] — every detection,
// boxes unclipped in original-image pixels, as the official output. Unless
// full_precision, boxes are rounded to 0.01 px and scores to 1e-4: what the
// numbers mean, without float noise in 17 digits.
nlohmann::json detections_json(const Detector& detector, const std::vector<Detection>& dets,
                               bool full_precision = false);

// The model, --labels and the labels files looked for beside the model are
// inputs of the run: no output may replace them, even with --overwrite.
void add_model_inputs(OutputPolicy& policy, const DetectionArgs& args);

// JSON text that never throws: bytes that are not UTF-8 (a Latin-1 file
// name) become U+FFFD instead of aborting a run after its work is done.
std::string dump_json(const nlohmann::json& j, int indent = -1);

// What decoding did to one image: format, bit depth, EXIF orientation and
// whether it was applied, 16-bit scaling.
nlohmann::json decode_info_json(const DecodeInfo& info);

// Milliseconds for JSON: 0.01 ms is finer than any timing here means.
double round2(double ms);
// {decode, preprocess, inference, postprocess, draw, write} in ms, 2 decimals:
// the timings_ms of detect's and video's JSON records.
nlohmann::json timings_json(const StageTimings& t, double draw_ms, double write_ms);

// "12.3" with a fixed number of decimals, for tables and summaries.
std::string fmt(double v, int decimals = 2);

}  // namespace damoyolo::cli
