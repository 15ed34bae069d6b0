// Options shared by `detect` and `video`: thresholds, class filter, labels,
// resize mode and the drawing threshold, spelled the same in both commands,
// plus the JSON form of one image's (or frame's) detections.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "damoyolo/detector.h"
#include "options.h"

namespace damoyolo::cli {

struct DetectionArgs {
  std::string model;
  EngineArgs engine;
  // Unset (never given on the command line): the model family's thresholds.
  // Plain values plus the parsed option, because CLI11 2.1 has no std::optional.
  double conf = 0, iou = 0;
  CLI::Option* conf_opt = nullptr;
  CLI::Option* iou_opt = nullptr;
  int max_det = 500;
  std::string classes;          // "0,2,person": ids or names to keep
  std::string labels;
  std::string resize = "stretch";
  // Why 0.3 and not the demo's 0.6: the official demo (visualize.py) draws
  // score >= --conf with 0.6 as default, which hides most true positives of
  // the small models (nano scores rarely reach 0.6). 0.3 keeps the picture
  // readable while showing what the model finds; JSON always gets everything
  // post-processing keeps, so nothing is lost by the choice.
  float draw_conf = 0.3f;

  // --model, the thresholds, --classes, --labels, --resize, --draw-conf and
  // the engine options.
  void add_to(CLI::App* cmd, bool with_batch);
};

// Builds the detector the options describe. Class names in --classes are
// resolved against --labels (or the COCO names) first, then checked against
// the loaded model, so "person" on a model without that class is an error
// instead of a silently empty filter.
Result<Detector> make_detector(const DetectionArgs& args);

// [{box:[x1,y1,x2,y2], score, class_id, class_name}, ...] — every detection,
// boxes unclipped in original-image pixels, as the official output.
nlohmann::json detections_json(const Detector& detector, const std::vector<Detection>& dets);

// "12.3" with a fixed number of decimals, for tables and summaries.
std::string fmt(double v, int decimals = 2);

}  // namespace damoyolo::cli
