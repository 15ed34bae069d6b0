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

MatchReport match_detections(const std::vector<Detection>& golden, const std::vector<Detection>& ours,
                             double min_iou, double max_score_diff) {
  MatchReport r;
  r.golden = golden.size();
  r.ours = ours.size();
  std::vector<bool> used(ours.size(), false);
  for (const auto& g : golden) {
    bool found = false;
    for (size_t i = 0; i < ours.size() && !found; ++i) {
      if (used[i] || ours[i].class_id != g.class_id) continue;
      if (std::fabs(ours[i].score - g.score) > max_score_diff) continue;
      if (iou(ours[i], g) < min_iou) continue;
      used[i] = true;
      found = true;
    }
    if (found) {
      ++r.matched;
    } else if (r.first_unmatched.empty()) {
      std::ostringstream s;
      s << "class " << g.class_id << " score " << g.score << " box [" << g.x1 << "," << g.y1 << "," << g.x2 << ","
        << g.y2 << "]";
      r.first_unmatched = s.str();
    }
  }
  return r;
}

}  // namespace damoyolo::testing
