#include "detect_options.h"
#include "plan_notes.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace damoyolo::cli {

void DetectionArgs::add_to(CLI::App* cmd, bool with_batch) {
  cmd->add_option("-m,--model", model, "ONNX model file")->required();
  conf_opt = cmd->add_option("--conf", conf,
                             "Keep detections scoring at least this (--official: the model family's, 0.05 or 0.03 "
                             "for nano)")
                 ->check(real_number(0.0, 1.0));
  // No captured default shown: "0" is not the default, the family's is.
  iou_opt = cmd->add_option("--iou", iou, "NMS IoU threshold (default: the model family's, 0.7 or 0.65 for nano)")
                ->check(real_number(0.0, 1.0))
                ->default_str("");
  max_det_opt = cmd->add_option("--max-det", max_det,
                                "Keep at most this many detections per image (0 = no limit; --official: 500)")
                    ->check(whole_number(0));
  cmd->add_flag("--official", official,
                "The official pipeline's values: the model family's thresholds, 500 boxes, PIL decoding "
                "(for evaluation and parity checks)");
  cmd->add_flag("--pil-decode", pil_decode,
                "Decode exactly as PIL's convert('RGB'): ignore EXIF orientation, clip 16-bit gray at 255");
  cmd->add_option("--classes", classes, "Keep only these classes: comma list of ids or names, e.g. 0,car,dog");
  cmd->add_option("--labels", labels,
                  "Class names file, one per line (default: the model's metadata, <model>.labels.txt or "
                  "<model>.names beside it, COCO's for 80 classes)");
  cmd->add_option("--resize", resize, "stretch (current models) or letterbox (legacy pre-v0.3.0 models)")
      ->check(CLI::IsMember({"stretch", "letterbox"}));
  draw_conf_opt = cmd->add_option("--draw-conf", draw_conf, "Draw only detections scoring at least this (default: all kept)")
                      ->check(real_number(0.0, 1.0))
                      ->default_str("");
  cmd->add_flag("--full-precision", full_precision, "Write JSON floats unrounded (default: boxes 0.01 px, scores 1e-4)");
  cmd->add_option("--max-pixels", max_pixels,
                  "Refuse images with more pixels than this, checked from the header before decoding (video: "
                  "checked on the first decoded frame)")
      ->check(whole_number(1, int64_t{1} << 40));
  engine.add_to(cmd, with_batch, /*with_detector=*/true);
}

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool iequals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

struct ClassSpec {
  std::string token;  // as the user wrote it
  int id = -1;
};

// Resolves --classes (ids, names in any case, or "classN") against the names
// the loaded detector uses.
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
      // Exact first; else the one name equal ignoring case ("Ring" for
      // "ring"). Two names that differ only in case need the exact spelling.
      for (size_t i = 0; i < names.size() && spec.id < 0; ++i)
        if (names[i] == tok) spec.id = static_cast<int>(i);
      if (spec.id < 0) {
        std::vector<size_t> matches;
        for (size_t i = 0; i < names.size(); ++i)
          if (iequals(names[i], tok)) matches.push_back(i);
        if (matches.size() > 1)
          return Status(ErrorCode::kInvalidArgument, "--classes: '" + tok + "' matches several class names ('" +
                                                         names[matches[0]] + "', '" + names[matches[1]] +
                                                         "'); write it exactly");
        if (matches.size() == 1) spec.id = static_cast<int>(matches[0]);
      }
      // "class17" is what an unlabelled non-COCO model calls its classes.
      if (spec.id < 0 && tok.rfind("class", 0) == 0) {
        auto [q, ec2] = std::from_chars(tok.data() + 5, tok.data() + tok.size(), id);
        if (ec2 == std::errc() && q == tok.data() + tok.size() && id >= 0) spec.id = id;
      }
      if (spec.id < 0) {
        std::string known;
        for (size_t i = 0; i < names.size() && i < 12; ++i) known += (i ? ", " : "") + names[i];
        if (names.size() > 12) known += ", ...";
        return Status(ErrorCode::kInvalidArgument,
                      "--classes: the model has no class named '" + tok + "' (its classes: " + known + ")");
      }
    }
    out.push_back(spec);
  }
  if (out.empty()) return Status(ErrorCode::kInvalidArgument, "--classes: no class ids or names given");
  return out;
}

}  // namespace

Result<Detector> make_detector(const DetectionArgs& a) {
  DetectorOptions opts = a.engine.detector_options();
  // Library defaults are the official pipeline's; the command line's are for people.
  if (!a.official || (a.conf_opt && a.conf_opt->count() > 0)) opts.conf_threshold = static_cast<float>(a.conf);
  if (a.iou_opt && a.iou_opt->count() > 0) opts.iou_threshold = a.iou;
  opts.max_det = a.official && !(a.max_det_opt && a.max_det_opt->count() > 0) ? 500 : a.max_det;
  if (a.official || a.pil_decode) opts.decode = DecodeOptions::pil_compatible();
  opts.decode.max_pixels = a.max_pixels;
  opts.labels_file = a.labels;
  opts.resize = a.resize == "letterbox" ? ResizeMode::kLetterbox : ResizeMode::kStretch;

  auto detector = Detector::create(a.model, opts);
  if (detector.ok()) report_plan(detector->session(), "damoyolo");
  if (!detector.ok() || a.classes.empty()) return detector;
  // Names are resolved against the names the loaded model uses (its metadata,
  // a labels file, COCO's), so the filter is set after loading.
  auto parsed = parse_classes(a.classes, detector->class_names());
  if (!parsed.ok()) return parsed.status();
  std::vector<int> ids;
  for (const auto& spec : *parsed) {
    if (spec.id >= detector->num_classes())
      return Status(ErrorCode::kInvalidArgument, "--classes: class " + spec.token + " is out of range: the model has " +
                                                     std::to_string(detector->num_classes()) + " classes");
    ids.push_back(spec.id);
  }
  Status st = detector->set_class_filter(std::move(ids));
  if (!st.ok()) return st;
  return detector;
}

namespace {
// round(v * 100) / 100, not round(v / 0.01) * 0.01: dividing by the exact
// power of ten gives the double nearest 217.7, which prints as "217.7"; the
// product gives 217.70000000000002.
double round_to(double v, double per_unit) { return std::round(v * per_unit) / per_unit; }
}  // namespace

nlohmann::json detections_json(const Detector& detector, const std::vector<Detection>& dets, bool full_precision) {
  auto arr = nlohmann::json::array();
  // Rounded in double: a float rounded to 0.01 still prints as 123.44999694824219.
  auto box = [&](float v) { return full_precision ? static_cast<double>(v) : round_to(v, 100); };
  auto score = [&](float v) { return full_precision ? static_cast<double>(v) : round_to(v, 1e4); };
  for (const Detection& d : dets)
    arr.push_back({{"box", {box(d.x1), box(d.y1), box(d.x2), box(d.y2)}},
                   {"score", score(d.score)},
                   {"class_id", d.class_id},
                   {"class_name", detector.class_name(d.class_id)}});
  return arr;
}

void add_model_inputs(OutputPolicy& policy, const DetectionArgs& args) {
  policy.add_input(args.model);
  if (!args.labels.empty()) policy.add_input(args.labels);
  const fs::path m(args.model);
  for (const char* ext : {".labels.txt", ".names"}) policy.add_input(m.parent_path() / (m.stem().string() + ext));
}

std::string dump_json(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json decode_info_json(const DecodeInfo& info) {
  return {{"format", image_format_name(info.format)},
          {"bit_depth", info.bit_depth},
          {"exif_orientation", info.exif_orientation},
          {"orientation_applied", info.orientation_applied},
          {"scaled_from_16bit", info.scaled_from_16bit}};
}

double round2(double ms) { return round_to(ms, 100); }

nlohmann::json timings_json(const StageTimings& t, double draw_ms, double write_ms) {
  return {{"decode", round2(t.decode_ms)},         {"preprocess", round2(t.preprocess_ms)},
          {"inference", round2(t.inference_ms)},   {"postprocess", round2(t.postprocess_ms)},
          {"draw", round2(draw_ms)},               {"write", round2(write_ms)}};
}

std::string fmt(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace damoyolo::cli
