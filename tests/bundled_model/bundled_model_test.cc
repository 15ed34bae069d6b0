// The bundled trained model (models/) on the bundled demo scene: it must find
// every annotated object (same class, IoU ≥ 0.5, score ≥ 0.3) — an accuracy
// regression test in real detections rather than tensor differences — and
// give the same boxes on every engine, precision and optimisation switch.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "damoyolo/detector.h"
#include "damoyolo/optimizations.h"
#include "testutil/detection_match.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;

fs::path models_dir() { return testing::source_dir() / "models"; }

struct Truth {
  std::string name;
  Detection box;
};

std::vector<Truth> demo_truth() {
  std::ifstream f(models_dir() / "demo.json");
  auto j = nlohmann::json::parse(f);
  std::vector<Truth> t;
  for (const auto& o : j["objects"]) {
    auto b = o["bbox"].get<std::vector<float>>();  // COCO xywh
    t.push_back({o["class"].get<std::string>(), Detection{b[0], b[1], b[0] + b[2], b[1] + b[3], 1.f, -1}});
  }
  return t;
}

size_t found(const Detector& det, const std::vector<Detection>& dets, const std::vector<Truth>& truth) {
  size_t n = 0;
  for (const auto& t : truth) {
    for (const auto& d : dets) {
      if (d.score >= 0.3f && det.class_name(d.class_id) == t.name && testing::iou(d, t.box) >= 0.5f) {
        ++n;
        break;
      }
    }
  }
  return n;
}

DetectorOptions bundled_options() {
  DetectorOptions o;
  o.labels_file = (models_dir() / "damoyolo_demo.labels.txt").string();
  return o;
}

TEST(BundledModel, FindsEveryObjectInTheDemoScene) {
  auto det = Detector::create((models_dir() / "damoyolo_demo.onnx").string(), bundled_options());
  ASSERT_TRUE(det.ok()) << det.status().to_string();
  auto truth = demo_truth();
  ASSERT_FALSE(truth.empty());
  auto r = det->detect_file((models_dir() / "demo.jpg").string());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(found(*det, r->detections, truth), truth.size());
}

TEST(BundledModel, EveryConfigurationGivesTheSameDetections) {
  auto base = Detector::create((models_dir() / "damoyolo_demo.onnx").string(), bundled_options());
  ASSERT_TRUE(base.ok());
  auto ref = base->detect_file((models_dir() / "demo.jpg").string());
  ASSERT_TRUE(ref.ok());
  auto truth = demo_truth();
  std::vector<std::pair<std::string, DetectorOptions>> configs;
  auto add = [&](const std::string& name, auto change) {
    DetectorOptions o = bundled_options();
    change(o);
    configs.emplace_back(name, o);
  };
  add("reference engine", [](DetectorOptions& o) { o.session.engine = Engine::kReference; });
  // Each switch of the library's table off in turn, then all of them.
  for (const OptimizationSwitch& s : optimization_switches())
    add(std::string(s.name) + " off", [&s](DetectorOptions& o) { set_optimization(o, s, false); });
  add("every switch off", [](DetectorOptions& o) { set_all_optimizations(o, false); });
  for (const auto& [name, opts] : configs) {
    auto det = Detector::create((models_dir() / "damoyolo_demo.onnx").string(), opts);
    ASSERT_TRUE(det.ok()) << name;
    auto r = det->detect_file((models_dir() / "demo.jpg").string());
    ASSERT_TRUE(r.ok()) << name;
    auto m = testing::match_detections(ref->detections, r->detections, 0.99, 1e-4);
    EXPECT_GE(m.fraction(), 0.995) << name << ": " << m.matched << "/" << m.golden;
  }
  // BF16 changes the arithmetic, not the objects found.
  DetectorOptions bf16 = bundled_options();
  bf16.session.precision = Precision::kBF16;
  auto det = Detector::create((models_dir() / "damoyolo_demo.onnx").string(), bf16);
  ASSERT_TRUE(det.ok());
  auto r = det->detect_file((models_dir() / "demo.jpg").string());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(found(*det, r->detections, truth), truth.size());
}

}  // namespace
}  // namespace damoyolo
