// Matching detection lists the way the fixtures README prescribes: same class,
// IoU ≥ 0.99 and score within 1e-4 — never by position, since near-equal
// scores may legitimately swap places.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "damoyolo/detection.h"

namespace damoyolo::testing {

struct GoldenDetections {
  int width = 0, height = 0;
  int64_t candidates = 0;
  std::vector<Detection> detections;
};
GoldenDetections read_golden_detections(const std::filesystem::path& json_path);

float iou(const Detection& a, const Detection& b);

struct MatchReport {
  size_t golden = 0, ours = 0, matched = 0;
  double fraction() const { return golden ? static_cast<double>(matched) / static_cast<double>(golden) : 1.0; }
  std::string first_unmatched;  // description of the first golden detection not found
};
MatchReport match_detections(const std::vector<Detection>& golden, const std::vector<Detection>& ours,
                             double min_iou = 0.99, double max_score_diff = 1e-4);

}  // namespace damoyolo::testing
