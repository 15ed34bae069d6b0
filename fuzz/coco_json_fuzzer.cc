// Fuzz target: the COCO JSON parsers (CocoDataset::parse for annotation
// files, parse_coco_results for results files), both on every input, and
// what parses: evaluation of the dataset against detections made from its
// own annotations, and the results' write -> parse round trip, which must
// give back the same numbers (coco_eval.h promises no rounding).
//
//   scripts/fuzz.sh 60 coco_json
//   by hand: build-asan/bin/fuzz_coco_json -dict=fuzz/dict/coco_json.dict NEW_CORPUS_DIR fuzz/corpus/coco_json
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "damoyolo/coco_eval.h"

namespace {

// DAMOYOLO_FUZZ_VERBOSE=1: say what happened to each input.
const bool kVerbose = std::getenv("DAMOYOLO_FUZZ_VERBOSE") != nullptr;

bool finite(const damoyolo::CocoDetection& d) {
  for (double v : d.bbox)
    if (!std::isfinite(v)) return false;
  return std::isfinite(d.score);
}

void evaluate(const damoyolo::CocoDataset& ds) {
  // At most a few hundred detections: evaluation is quadratic per
  // (image, category), and the fuzzer's time is better spent parsing.
  std::vector<damoyolo::CocoDetection> dets;
  for (size_t i = 0; i < ds.annotations.size() && i < 256; ++i) {
    const auto& a = ds.annotations[i];
    damoyolo::CocoDetection d;
    d.image_id = a.image_id;
    d.category_id = a.category_id;
    d.bbox = a.bbox;
    d.bbox[0] += static_cast<double>(i % 3);  // not all perfect matches
    d.score = 1.0 / static_cast<double>(1 + i % 7);
    dets.push_back(d);
  }
  auto e = damoyolo::evaluate_coco_bbox(ds, dets);
  if (e.ok()) (void)damoyolo::format_coco_summary(e->metrics);
  (void)damoyolo::evaluate_coco_bbox(ds, {});
}

void round_trip(const std::vector<damoyolo::CocoDetection>& dets) {
  const std::string text = damoyolo::coco_results_json(dets);
  auto again = damoyolo::parse_coco_results(text, "round trip");
  if (!again.ok()) {
    // Non-finite numbers are written as null: no JSON for them.
    for (const auto& d : dets)
      if (!finite(d)) return;
    std::abort();
  }
  if (again->size() != dets.size()) std::abort();
  for (size_t i = 0; i < dets.size(); ++i) {
    const auto& a = dets[i];
    const auto& b = (*again)[i];
    if (!finite(a)) continue;
    if (a.image_id != b.image_id || a.category_id != b.category_id || a.bbox != b.bbox || a.score != b.score)
      std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto ds = damoyolo::CocoDataset::parse(text, "fuzz");
  if (ds.ok()) evaluate(*ds);
  auto results = damoyolo::parse_coco_results(text, "fuzz");
  if (kVerbose)
    std::fprintf(stderr, "dataset: %s; results: %s\n", ds.ok() ? "ok" : ds.status().to_string().c_str(),
                 results.ok() ? "ok" : results.status().to_string().c_str());
  if (results.ok()) round_trip(*results);
  return 0;
}
