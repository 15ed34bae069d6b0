#include "detect_options.h"

#include <charconv>
#include <cstdio>
#include <sstream>

namespace damoyolo::cli {

void DetectionArgs::add_to(CLI::App* cmd, bool with_batch) {
  cmd->add_option("-m,--model", model, "ONNX model file")->required();
  conf_opt = cmd->add_option("--conf", conf, "Score threshold for candidates (default: the model family's, 0.05 or 0.03 for nano)")
                 ->check(CLI::Range(0.0, 1.0));
  iou_opt = cmd->add_option("--iou", iou, "NMS IoU threshold (default: the model family's, 0.7 or 0.65 for nano)")
                ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--max-det", max_det, "Keep at most this many detections per image (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--classes", classes, "Keep only these classes: comma list of ids or names, e.g. 0,car,dog");
  cmd->add_option("--labels", labels, "Class names file, one per line (default: COCO's 80 for 80-class models)");
  cmd->add_option("--resize", resize, "stretch (current models) or letterbox (legacy pre-v0.3.0 models)")
      ->check(CLI::IsMember({"stretch", "letterbox"}));
  cmd->add_option("--draw-conf", draw_conf, "Draw only detections scoring at least this (JSON gets all)")
      ->check(CLI::Range(0.0, 1.0));
  engine.add_to(cmd, with_batch, /*with_detector=*/true);
}

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

struct ClassSpec {
  std::string token;  // as the user wrote it
  int id = -1;
  bool by_name = false;
};

// Resolves --classes against the names the detector will use. The names are
// known before loading only when they come from --labels or are COCO's; the
// result is re-checked against the loaded model in make_detector.
Result<std::vector<ClassSpec>> parse_classes(const std::string& list, const std::vector<std::string>& names) {
  std::vector<ClassSpec> out;
  std::stringstream ss(list);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    tok = trim(tok);
    if (tok.empty()) continue;
    ClassSpec spec{tok};
    int id = 0;
    auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), id);
    if (ec == std::errc() && p == tok.data() + tok.size()) {
      if (id < 0) return Status(ErrorCode::kInvalidArgument, "--classes: negative class id " + tok);
      spec.id = id;
    } else {
      spec.by_name = true;
      for (size_t i = 0; i < names.size(); ++i)
        if (names[i] == tok) spec.id = static_cast<int>(i);
      // "class17" is what an unlabelled non-COCO model calls its classes.
      if (spec.id < 0 && tok.rfind("class", 0) == 0) {
        auto [q, ec2] = std::from_chars(tok.data() + 5, tok.data() + tok.size(), id);
        if (ec2 == std::errc() && q == tok.data() + tok.size() && id >= 0) spec.id = id;
      }
      if (spec.id < 0) return Status(ErrorCode::kInvalidArgument, "--classes: unknown class name '" + tok + "'");
    }
    out.push_back(spec);
  }
  if (out.empty()) return Status(ErrorCode::kInvalidArgument, "--classes: no class ids or names given");
  return out;
}

}  // namespace

Result<Detector> make_detector(const DetectionArgs& a) {
  DetectorOptions opts = a.engine.detector_options();
  if (a.conf_opt && a.conf_opt->count() > 0) opts.conf_threshold = static_cast<float>(a.conf);
  if (a.iou_opt && a.iou_opt->count() > 0) opts.iou_threshold = a.iou;
  opts.max_det = a.max_det;
  opts.labels_file = a.labels;
  opts.resize = a.resize == "letterbox" ? ResizeMode::kLetterbox : ResizeMode::kStretch;

  std::vector<ClassSpec> specs;
  if (!a.classes.empty()) {
    std::vector<std::string> names;
    if (!a.labels.empty()) {
      auto read = read_labels_file(a.labels);
      if (!read.ok()) return read.status();
      names = std::move(*read);
    } else {
      names = coco80_class_names();
    }
    auto parsed = parse_classes(a.classes, names);
    if (!parsed.ok()) return parsed.status();
    specs = std::move(*parsed);
    for (const auto& s : specs) opts.class_filter.push_back(s.id);
  }

  auto detector = Detector::create(a.model, opts);
  if (!detector.ok()) return detector.status();
  for (const auto& s : specs) {
    if (s.id >= detector->num_classes())
      return Status(ErrorCode::kInvalidArgument, "--classes: class " + s.token + " is out of range: the model has " +
                                                     std::to_string(detector->num_classes()) + " classes");
    // A COCO name looked up for a model that is not COCO-labelled.
    if (s.by_name && detector->class_name(s.id) != s.token && s.token != "class" + std::to_string(s.id))
      return Status(ErrorCode::kInvalidArgument,
                    "--classes: the model has no class named '" + s.token + "' (give --labels or class ids)");
  }
  return detector;
}

nlohmann::json detections_json(const Detector& detector, const std::vector<Detection>& dets) {
  auto arr = nlohmann::json::array();
  for (const Detection& d : dets)
    arr.push_back({{"box", {d.x1, d.y1, d.x2, d.y2}},
                   {"score", d.score},
                   {"class_id", d.class_id},
                   {"class_name", detector.class_name(d.class_id)}});
  return arr;
}

std::string fmt(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace damoyolo::cli
