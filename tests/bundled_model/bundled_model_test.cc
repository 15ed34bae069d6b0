// The bundled trained model (models/) on the bundled demo scene: it must find
// every annotated object (same class, IoU ≥ 0.5, score ≥ 0.3) and nothing
// else at that confidence but its one known confusion (kKnownConfusions) —
// an accuracy regression test in real detections rather than tensor
// differences — and give the same boxes on every engine, precision and
// optimisation switch.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/cpu_features.h"
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

// The demo scene's objects against the detections, both ways: every
// annotated object needs a confident detection (score ≥ 0.3, same class,
// IoU ≥ 0.5), and every confident detection must be one of those objects —
// a box on nothing, of the wrong class, or a second box on an object already
// found is an extra — or one of the model's known confusions below.
struct TruthMatch {
  size_t found = 0;
  std::vector<std::string> missing, extra, known_not_seen;
  std::string describe() const {
    std::string s = std::to_string(found) + " objects found";
    for (const auto& m : missing) s += "; missing " + m;
    for (const auto& e : extra) s += "; extra " + e;
    for (const auto& k : known_not_seen) s += "; known confusion no longer seen (update kKnownConfusions): " + k;
    return s;
  }
};

// Confident wrong-class boxes the bundled model is known to give on the demo
// scene, on every engine, precision and switch alike (a property of the
// trained weights, not of the runtime). Each must still appear, once: if a
// retrained model stops making it, the list is out of date.
//   The 20x22 px hexagon at (81,40): the model scores it "circle" 0.584 above
//   "hexagon" 0.494; class-aware NMS keeps both boxes.
struct KnownConfusion {
  const char* detected_as;
  Detection where;  // the annotated object it sits on
};
const KnownConfusion kKnownConfusions[] = {
    {"circle", Detection{81.09f, 39.58f, 81.09f + 20.14f, 39.58f + 22.03f, 1.f, -1}},
};

TruthMatch match_truth(const Detector& det, const std::vector<Detection>& dets, const std::vector<Truth>& truth) {
  constexpr float kMinScore = 0.3f, kMinIou = 0.5f;
  TruthMatch m;
  std::vector<bool> used(dets.size(), false);
  auto box = [](const Detection& d) {
    char b[96];
    std::snprintf(b, sizeof b, "[%.1f,%.1f,%.1f,%.1f]", d.x1, d.y1, d.x2, d.y2);
    return std::string(b);
  };
  for (const auto& t : truth) {
    int best = -1;
    float best_iou = kMinIou;
    for (size_t i = 0; i < dets.size(); ++i) {
      const Detection& d = dets[i];
      if (used[i] || d.score < kMinScore || det.class_name(d.class_id) != t.name) continue;
      const float v = testing::iou(d, t.box);
      if (v >= best_iou) best = static_cast<int>(i), best_iou = v;
    }
    if (best >= 0) {
      used[best] = true;
      ++m.found;
    } else {
      m.missing.push_back(t.name + " " + box(t.box));
    }
  }
  for (const KnownConfusion& k : kKnownConfusions) {
    bool seen = false;
    for (size_t i = 0; i < dets.size() && !seen; ++i)
      if (!used[i] && dets[i].score >= kMinScore && det.class_name(dets[i].class_id) == k.detected_as &&
          testing::iou(dets[i], k.where) >= kMinIou)
        used[i] = seen = true;
    if (!seen) m.known_not_seen.push_back(std::string(k.detected_as) + " " + box(k.where));
  }
  for (size_t i = 0; i < dets.size(); ++i)
    if (!used[i] && dets[i].score >= kMinScore)
      m.extra.push_back(det.class_name(dets[i].class_id) + " " + box(dets[i]) + " score " +
                        std::to_string(dets[i].score));
  return m;
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
  const TruthMatch m = match_truth(*det, r->detections, truth);
  EXPECT_EQ(m.found, truth.size()) << m.describe();
  EXPECT_TRUE(m.extra.empty()) << m.describe();
  EXPECT_TRUE(m.known_not_seen.empty()) << m.describe();
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
    // Two-sided: no box lost and none added (fraction() is the smaller of both ways).
    auto m = testing::match_detections(ref->detections, r->detections, 0.99, 1e-4);
    EXPECT_GE(m.fraction(), 0.995) << name << ": " << m.describe();
  }
  // BF16 changes the arithmetic, not the objects found.
  DetectorOptions bf16 = bundled_options();
  bf16.session.precision = Precision::kBF16;
  auto det = Detector::create((models_dir() / "damoyolo_demo.onnx").string(), bf16);
  ASSERT_TRUE(det.ok());
  auto r = det->detect_file((models_dir() / "demo.jpg").string());
  ASSERT_TRUE(r.ok());
  const TruthMatch m = match_truth(*det, r->detections, truth);
  EXPECT_EQ(m.found, truth.size()) << "bf16: " << m.describe();
  EXPECT_TRUE(m.extra.empty()) << "bf16: " << m.describe();
  EXPECT_TRUE(m.known_not_seen.empty()) << "bf16: " << m.describe();
}

// The SIMD level (common/cpu_features.h) changes the pre- and post-processing
// kernels (resize rows, fused head decode, score scan, NMS) but never a bit of
// the result: every level this CPU supports gives exactly the scalar
// detections. A Detector picks its kernels when created.
TEST(BundledModel, EverySimdLevelGivesIdenticalDetections) {
  auto detect_at = [](cpu::IsaLevel level) {
    cpu::ScopedIsaLevel scoped(level);
    auto det = Detector::create((models_dir() / "damoyolo_demo.onnx").string(), bundled_options());
    EXPECT_TRUE(det.ok()) << det.status().to_string();
    auto r = det->detect_file((models_dir() / "demo.jpg").string());
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r->detections;
  };
  const std::vector<Detection> want = detect_at(cpu::IsaLevel::kScalar);
  ASSERT_FALSE(want.empty());
  for (cpu::IsaLevel level : cpu::kIsaLevels) {
    if (level == cpu::IsaLevel::kScalar || !cpu::isa_level_supported(level)) continue;
    const std::vector<Detection> got = detect_at(level);
    ASSERT_EQ(got.size(), want.size()) << cpu::isa_level_name(level);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(Detection)), 0)
        << cpu::isa_level_name(level) << ": detections differ from the scalar level's";
  }
}

}  // namespace
}  // namespace damoyolo
