#include "testutil/detection_match.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace damoyolo::testing {

GoldenDetections read_golden_detections(const std::filesystem::path& json_path) {
  std::ifstream f(json_path);
  auto j = nlohmann::json::parse(f);
  GoldenDetections g;
  g.width = j["width"].get<int>();
  g.height = j["height"].get<int>();
  g.candidates = j["candidates"].get<int64_t>();
  for (const auto& d : j["detections"]) {
    auto b = d["box"].get<std::vector<float>>();
    g.detections.push_back(Detection{b[0], b[1], b[2], b[3], d["score"].get<float>(), d["class_id"].get<int>()});
  }
  return g;
}

float iou(const Detection& a, const Detection& b) {
  float iw = std::max(0.f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  float ih = std::max(0.f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  float inter = iw * ih;
  float u = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return u > 0 ? inter / u : (inter == 0 && a.x1 == b.x1 && a.y1 == b.y1 && a.x2 == b.x2 && a.y2 == b.y2 ? 1.f : 0.f);
}

namespace {
std::string describe_detection(const Detection& d) {
  std::ostringstream s;
  s << "class " << d.class_id << " score " << d.score << " box [" << d.x1 << "," << d.y1 << "," << d.x2 << "," << d.y2
    << "]";
  return s.str();
}
}  // namespace

std::string MatchReport::describe() const {
  std::ostringstream s;
  s << "matched " << matched << " of " << golden << " golden / " << ours << " ours; missing " << missing();
  if (!first_unmatched.empty()) s << " (first: " << first_unmatched << ")";
  s << "; extra " << extra();
  if (!first_extra.empty()) s << " (first: " << first_extra << ")";
  return s.str();
}

MatchReport match_detections(const std::vector<Detection>& golden, const std::vector<Detection>& ours,
                             double min_iou, double max_score_diff) {
  MatchReport r;
  r.golden = golden.size();
  r.ours = ours.size();
  std::vector<bool> used(ours.size(), false);
  for (const auto& g : golden) {
    int best = -1;
    float best_iou = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      if (used[i] || ours[i].class_id != g.class_id) continue;
      if (std::fabs(ours[i].score - g.score) > max_score_diff) continue;
      const float v = iou(ours[i], g);
      if (v < min_iou || (best >= 0 && v <= best_iou)) continue;
      best = static_cast<int>(i);
      best_iou = v;
    }
    if (best >= 0) {
      used[best] = true;
      ++r.matched;
    } else if (r.first_unmatched.empty()) {
      r.first_unmatched = describe_detection(g);
    }
  }
  for (size_t i = 0; i < ours.size() && r.first_extra.empty(); ++i)
    if (!used[i]) r.first_extra = describe_detection(ours[i]);
  return r;
}

}  // namespace damoyolo::testing
