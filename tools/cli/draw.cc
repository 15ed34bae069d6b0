#include "draw.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/imgproc.hpp>

#include "damoyolo/detector.h"

namespace damoyolo::cli {

cv::Scalar class_color(int class_id) {
  // Saturated, mutually distinct colours (RGB, written as the eye reads them);
  // ordered so neighbouring ids, often related classes, differ strongly.
  static const unsigned char kPalette[][3] = {
      {230, 25, 75},   {60, 180, 75},   {255, 225, 25},  {0, 130, 200},   {245, 130, 48},
      {145, 30, 180},  {70, 240, 240},  {240, 50, 230},  {210, 245, 60},  {250, 190, 212},
      {0, 128, 128},   {220, 190, 255}, {170, 110, 40},  {255, 250, 200}, {128, 0, 0},
      {170, 255, 195}, {128, 128, 0},   {255, 215, 180}, {0, 0, 128},     {128, 128, 128},
  };
  constexpr int n = sizeof(kPalette) / sizeof(kPalette[0]);
  const auto& c = kPalette[((class_id % n) + n) % n];
  return cv::Scalar(c[2], c[1], c[0]);
}

DrawStyle DrawStyle::for_size(int width, int height) {
  const double side = std::max(1, std::min(width, height));
  DrawStyle s;
  s.line = std::max(1, static_cast<int>(std::lround(side / 400.0)));
  s.font_scale = std::max(0.35, side / 1200.0);
  s.text_thickness = std::max(1, s.line - 1);
  return s;
}

int draw_detections(cv::Mat& bgr, const std::vector<Detection>& dets, const Detector& detector, float min_score) {
  if (bgr.empty()) return 0;
  const DrawStyle st = DrawStyle::for_size(bgr.cols, bgr.rows);
  const cv::Rect frame(0, 0, bgr.cols, bgr.rows);
  int drawn = 0;
  // Lowest score first, so the most confident boxes and labels end on top.
  for (auto it = dets.rbegin(); it != dets.rend(); ++it) {
    const Detection& d = *it;
    if (!(d.score >= min_score)) continue;
    // Official boxes are unclipped floats; clamp before int conversion so a
    // wild coordinate cannot overflow.
    auto clampf = [](float v, int hi) { return static_cast<int>(std::lround(std::clamp(v, -1.f, hi + 1.f))); };
    cv::Point p1(clampf(d.x1, bgr.cols), clampf(d.y1, bgr.rows));
    cv::Point p2(clampf(d.x2, bgr.cols), clampf(d.y2, bgr.rows));
    cv::Rect box = cv::Rect(p1, p2) & frame;
    if (box.width <= 0 || box.height <= 0) continue;
    const cv::Scalar color = class_color(d.class_id);
    cv::rectangle(bgr, box, color, st.line, cv::LINE_AA);

    char score[16];
    std::snprintf(score, sizeof score, " %.2f", d.score);
    const std::string label = detector.class_name(d.class_id) + score;
    int baseline = 0;
    cv::Size ts = cv::getTextSize(label, cv::FONT_HERSHEY_SIMPLEX, st.font_scale, st.text_thickness, &baseline);
    const int pad = std::max(1, st.line);
    const int lh = ts.height + baseline + 2 * pad;
    // Above the box when it fits, else just inside its top edge.
    int top = box.y - lh >= 0 ? box.y - lh : box.y;
    int left = std::min(box.x, std::max(0, bgr.cols - ts.width - 2 * pad));
    cv::Rect bg = cv::Rect(left, top, ts.width + 2 * pad, lh) & frame;
    cv::rectangle(bgr, bg, color, cv::FILLED);
    // Dark text on light colours, white on dark ones (Rec. 601 luma).
    const double luma = 0.299 * color[2] + 0.587 * color[1] + 0.114 * color[0];
    const cv::Scalar text = luma > 150 ? cv::Scalar(0, 0, 0) : cv::Scalar(255, 255, 255);
    cv::putText(bgr, label, cv::Point(left + pad, top + pad + ts.height), cv::FONT_HERSHEY_SIMPLEX, st.font_scale,
                text, st.text_thickness, cv::LINE_AA);
    ++drawn;
  }
  return drawn;
}

}  // namespace damoyolo::cli
