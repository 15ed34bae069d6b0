// Fixture access and detection matching shared by the detection tests.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "damoyolo/detection.h"
#include "testutil/testutil.h"

namespace damoyolo::testing {

struct GoldenDetections {
  int width = 0, height = 0, input_size = 0;
  float conf = 0;
  double iou = 0;
  int64_t candidates = 0;
  std::vector<Detection> dets;
};

inline GoldenDetections load_golden_detections(const std::string& model, const std::string& image) {
  auto bytes = read_file(fixtures_dir() / "golden" / model / image / "detections.json");
  auto j = nlohmann::json::parse(bytes.begin(), bytes.end());
  GoldenDetections g;
  g.width = j.at("width");
  g.height = j.at("height");
  g.input_size = j.at("input_size");
  g.conf = j.at("conf").get<float>();
  g.iou = j.at("iou").get<double>();
  g.candidates = j.at("candidates");
  for (const auto& d : j.at("detections")) {
    const auto& b = d.at("box");
    g.dets.push_back({b[0].get<float>(), b[1].get<float>(), b[2].get<float>(), b[3].get<float>(),
                      d.at("score").get<float>(), d.at("class_id").get<int>()});
  }
  return g;
}

inline std::vector<float> load_output(const std::string& model, const std::string& image, int idx) {
  return read_f32(fixtures_dir() / "golden" / model / image / ("out" + std::to_string(idx) + ".f32"));
}

inline double box_iou(const Detection& a, const Detection& b) {
  const double iw = std::max(0.0, std::min<double>(a.x2, b.x2) - std::max<double>(a.x1, b.x1));
  const double ih = std::max(0.0, std::min<double>(a.y2, b.y2) - std::max<double>(a.y1, b.y1));
  const double inter = iw * ih;
  const double ua = double(a.x2 - a.x1) * (a.y2 - a.y1) + double(b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return ua > 0 ? inter / ua : (a.x1 == b.x1 && a.y1 == b.y1 && a.x2 == b.x2 && a.y2 == b.y2);
}

// How many `golden` detections find a distinct partner in `ours` with the same
// class, IoU ≥ min_iou and |Δscore| ≤ score_tol (greedy, best IoU first).
// The pairs are one-to-one, so golden.size() − matched are missing and
// ours.size() − matched are extra: callers bound both.
inline size_t count_matched(const std::vector<Detection>& golden, const std::vector<Detection>& ours,
                            double min_iou = 0.99, double score_tol = 1e-4) {
  std::vector<char> used(ours.size(), 0);
  size_t matched = 0;
  for (const Detection& g : golden) {
    int best = -1;
    double best_iou = min_iou;
    for (size_t i = 0; i < ours.size(); ++i) {
      if (used[i] || ours[i].class_id != g.class_id) continue;
      if (std::abs(double(ours[i].score) - g.score) > score_tol) continue;
      const double iou = box_iou(g, ours[i]);
      if (iou >= best_iou) best_iou = iou, best = static_cast<int>(i);
    }
    if (best >= 0) used[best] = 1, ++matched;
  }
  return matched;
}

}  // namespace damoyolo::testing
