// damoyolo eval: COCO bbox metrics, computed as pycocotools' COCOeval does.
//
//   damoyolo eval --annotations instances_val2017.json --results results.json [--json metrics.json]
//       scores an existing COCO results file;
//   damoyolo eval --annotations instances_val2017.json --model M.onnx --images DIR [--json results.json]
//       runs the detector over every image of the annotation file first
//       (DIR/file_name), maps classes to categories by name, then scores.
// Both print pycocotools' 12 summarize() lines.
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "plan_notes.h"
#include "damoyolo/coco_eval.h"
#include "damoyolo/detector.h"
#include "options.h"
#include "outputs.h"
#include "progress.h"

namespace damoyolo::cli {

namespace {

struct EvalArgs {
  std::string annotations;
  std::string results;  // results mode
  std::string model;    // detector mode
  std::string images;
  std::string json;
  std::string labels;
  bool coco80_ids = false;
  bool quiet = false;
  bool overwrite = false;
  EngineArgs engine;
};

int fail(const std::string& message) {
  std::cerr << "damoyolo eval: " << message << "\n";
  return 1;
}

int fail(const Status& status) { return fail(status.to_string()); }

// Written whole under a temporary name, then renamed (see outputs.h).
Status write_text(const std::string& path, const std::string& text, bool overwrite) {
  AtomicOutput out(path, overwrite);
  Status st = out.open_stream();
  if (!st.ok()) return st;
  out.stream() << text;
  return out.commit();
}

// Runs the detector over the dataset's images and returns COCO results.
Result<std::vector<CocoDetection>> detect_dataset(const EvalArgs& a, const CocoDataset& ds) {
  // The library's defaults are the official pipeline's (thresholds, 500
  // boxes); decoding is made PIL-exact too, since the official evaluation
  // reads images with PIL and ignores EXIF orientation, as COCO's boxes do.
  DetectorOptions opts = a.engine.detector_options();
  opts.decode = DecodeOptions::pil_compatible();
  opts.labels_file = a.labels;
  auto detector = Detector::create(a.model, opts);
  if (!detector.ok()) return detector.status();
  report_plan(detector->session(), "damoyolo eval");

  // By name against the annotation file, as the official evaluation does;
  // --coco80-ids for a model whose names do not match the file's.
  Result<std::vector<int64_t>> mapping =
      a.coco80_ids ? resolve_category_ids(nullptr, {}, detector->num_classes())
                   : resolve_category_ids(&ds, detector->class_names(), detector->num_classes());
  if (!mapping.ok()) return mapping.status();

  std::vector<CocoDetection> out;
  // Chunks through detect_files so --batch can batch the network, while
  // progress stays visible on a 5000-image run.
  constexpr size_t kChunk = 32;
  const bool show_progress = !a.quiet && stderr_is_terminal();
  for (size_t begin = 0; begin < ds.images.size(); begin += kChunk) {
    const size_t end = std::min(ds.images.size(), begin + kChunk);
    std::vector<std::string> paths;
    for (size_t i = begin; i < end; ++i) {
      // The annotation file says where each image is: never outside --images.
      auto path = coco_image_path(a.images, ds.images[i].file_name);
      if (!path.ok())
        return Status(path.status().code(), a.annotations + ": image id " + std::to_string(ds.images[i].id) + ": " +
                                                path.status().message());
      paths.push_back(*path);
    }
    auto results = detector->detect_files(paths);
    for (size_t j = 0; j < results.size(); ++j) {
      // A missing image would silently lower every number: stop instead.
      if (!results[j].ok()) return results[j].status();
      for (const Detection& d : results[j]->detections) {
        auto c = to_coco_detection(d, ds.images[begin + j].id, *mapping);
        if (!c.ok()) return c.status();
        out.push_back(*c);
      }
    }
    // A live counter only on a terminal: in logs and pipes it would be noise.
    if (show_progress) std::cerr << "\rdamoyolo eval: " << end << "/" << ds.images.size() << " images" << std::flush;
  }
  if (show_progress && !ds.images.empty()) std::cerr << "\n";
  return out;
}

int run_eval(const EvalArgs& a) {
  const bool results_mode = !a.results.empty();
  if (results_mode == !a.model.empty())
    return fail("give either --results FILE (score a results file) or --model M --images DIR (run the detector)");
  if (!results_mode && a.images.empty()) return fail("--model needs --images DIR");
  if (!a.json.empty()) {
    OutputPolicy policy(a.overwrite);
    for (const std::string* in : {&a.annotations, &a.results, &a.model, &a.labels})
      if (!in->empty()) policy.add_input(*in);
    Status st = policy.claim(a.json, "--json");
    if (!st.ok()) return fail(st.message());
  }

  auto ds = CocoDataset::load(a.annotations);
  if (!ds.ok()) return fail(ds.status());

  std::vector<CocoDetection> dets;
  if (results_mode) {
    auto loaded = load_coco_results(a.results);
    if (!loaded.ok()) return fail(loaded.status());
    dets = std::move(*loaded);
  } else {
    auto detected = detect_dataset(a, *ds);
    if (!detected.ok()) return fail(detected.status());
    dets = std::move(*detected);
    if (!a.json.empty()) {
      Status st = write_text(a.json, coco_results_json(dets), a.overwrite);
      if (!st.ok()) return fail(st);
    }
  }

  auto ev = evaluate_coco_bbox(*ds, dets);
  if (!ev.ok()) return fail(ev.status());
  if (ev->skipped_detections > 0)
    std::cerr << "damoyolo eval: warning: " << ev->skipped_detections
              << " detections have a category_id the annotation file does not list; skipped, as pycocotools does\n";
  std::cout << format_coco_summary(ev->metrics);
  if (results_mode && !a.json.empty()) {
    Status st = write_text(a.json, coco_metrics_json(ev->metrics), a.overwrite);
    if (!st.ok()) return fail(st);
  }
  return 0;
}

}  // namespace

Runner add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "COCO bbox metrics (AP, AR) exactly as pycocotools' COCOeval computes them");
  cmd->add_option("--annotations", args->annotations, "COCO annotation file (e.g. instances_val2017.json)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--results", args->results, "Score this COCO results file: [{image_id, category_id, bbox, score}]")
      ->check(CLI::ExistingFile);
  cmd->add_option("-m,--model", args->model, "Run this ONNX model over the annotation file's images first")
      ->check(CLI::ExistingFile);
  cmd->add_option("--images", args->images, "Image folder (with --model): DIR/file_name for each image")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--json", args->json,
                  "With --results: write the 12 metrics as JSON. With --model: write the detections as a COCO "
                  "results file");
  cmd->add_option("--labels", args->labels, "Class names, one per line (with --model; default: the model's)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--coco80-ids", args->coco80_ids,
                "Map class i to the i-th standard COCO-80 category id instead of matching names (with --model)");
  cmd->add_flag("-q,--quiet", args->quiet, "No progress output");
  cmd->add_flag("--overwrite", args->overwrite, "Replace the --json file if it exists already");
  args->engine.add_to(cmd, /*with_batch=*/true, /*with_detector=*/true);
  cmd->get_option("--results")->excludes(cmd->get_option("--model"));
  return [args] { return run_eval(*args); };
}

}  // namespace damoyolo::cli
