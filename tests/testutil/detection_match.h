// Matching detection lists the way the fixtures README prescribes: same class,
// IoU ≥ 0.99 and score within 1e-4 — never by position, since near-equal
// scores may legitimately swap places.
//
// The comparison is two-sided: a box of `golden` that `ours` lacks (missing)
// and a box of `ours` that `golden` lacks (extra) both count against the
// match. fraction() is the smaller of the two matched fractions, so a
// threshold on it bounds both; an implementation that adds boxes fails as
// surely as one that loses them.
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
  size_t golden = 0, ours = 0, matched = 0;  // matched pairs, one-to-one
  size_t missing() const { return golden - matched; }  // golden boxes with no partner in ours
  size_t extra() const { return ours - matched; }      // our boxes with no partner in golden
  // matched / golden and matched / ours (1 for an empty list).
  double recall() const { return golden ? static_cast<double>(matched) / static_cast<double>(golden) : 1.0; }
  double precision() const { return ours ? static_cast<double>(matched) / static_cast<double>(ours) : 1.0; }
  // Both ways: the smaller of recall() and precision().
  double fraction() const { return recall() < precision() ? recall() : precision(); }
  std::string first_unmatched;  // the first golden detection not found in ours
  std::string first_extra;      // the first of ours not found in golden
  // "matched M of G golden / O ours; missing X (first: ...); extra Y (first: ...)"
  std::string describe() const;
};
// Pairs each golden detection with the unused detection of ours of the same
// class, score within max_score_diff and the highest IoU ≥ min_iou.
MatchReport match_detections(const std::vector<Detection>& golden, const std::vector<Detection>& ours,
                             double min_iou = 0.99, double max_score_diff = 1e-4);

}  // namespace damoyolo::testing
