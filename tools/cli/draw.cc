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
  // Hershey simplex at scale 1 is ~22 px tall: ~3 % of the shorter side, at
  // least ~7 px so a 110-pixel thumbnail keeps most of its picture visible.
  s.font_scale = std::clamp(side / 1000.0, 0.3, 2.5);
  s.text_thickness = std::max(1, s.line - 1);
  return s;
}

std::vector<std::optional<cv::Rect>> layout_labels(const std::vector<cv::Rect>& boxes,
                                                   const std::vector<cv::Size>& sizes, cv::Size frame) {
  const cv::Rect bounds(0, 0, frame.width, frame.height);
  std::vector<std::optional<cv::Rect>> placed(boxes.size());
  std::vector<cv::Rect> taken;
  auto free_at = [&](const cv::Rect& r) {
    if ((r & bounds) != r) return false;  // wholly inside the image
    for (const cv::Rect& t : taken)
      if ((r & t).area() > 0) return false;
    return true;
  };
  for (size_t i = 0; i < boxes.size(); ++i) {
    const cv::Rect& b = boxes[i];
    const int w = sizes[i].width, h = sizes[i].height;
    if (w > frame.width || h > frame.height) continue;
    // Keep the label's left edge inside the image.
    const int x = std::clamp(b.x, 0, std::max(0, frame.width - w));
    const cv::Rect candidates[] = {
        {x, b.y - h, w, h},               // above the top-left corner
        {x, b.y, w, h},                   // inside, at the top
        {x, b.y + b.height, w, h},        // below the bottom edge
        {x, b.y + b.height - h, w, h},    // inside, at the bottom
    };
    for (const cv::Rect& c : candidates)
      if (free_at(c)) {
        placed[i] = c;
        break;
      }
    // Slide down from the top, jumping past the labels in the way (each jump
    // clears at least one label, so this ends after at most |taken| steps),
    // but not beyond the box's bottom edge: a label far from its box would
    // name the wrong one.
    const int lowest = std::min(frame.height - h, b.y + b.height);
    for (int y = std::max(0, b.y - h); !placed[i] && y <= lowest;) {
      const cv::Rect c(x, y, w, h);
      int next = y;
      for (const cv::Rect& t : taken)
        if ((c & t).area() > 0) next = std::max(next, t.y + t.height);
      if (next == y) placed[i] = c;
      y = next;
    }
    if (placed[i]) taken.push_back(*placed[i]);
  }
  return placed;
}

int draw_detections(cv::Mat& bgr, const std::vector<Detection>& dets, const Detector& detector, float min_score) {
  if (bgr.empty()) return 0;
  const DrawStyle st = DrawStyle::for_size(bgr.cols, bgr.rows);
  const cv::Rect frame(0, 0, bgr.cols, bgr.rows);
  // Detections arrive score-descending; the kept ones, in that order.
  std::vector<const Detection*> shown;
  std::vector<cv::Rect> boxes;
  for (const Detection& d : dets) {
    if (!(d.score >= min_score)) continue;
    // Official boxes are unclipped floats; clamp before int conversion so a
    // wild coordinate cannot overflow.
    auto clampf = [](float v, int hi) { return static_cast<int>(std::lround(std::clamp(v, -1.f, hi + 1.f))); };
    const cv::Rect box = cv::Rect(cv::Point(clampf(d.x1, bgr.cols), clampf(d.y1, bgr.rows)),
                                  cv::Point(clampf(d.x2, bgr.cols), clampf(d.y2, bgr.rows))) &
                         frame;
    if (box.width <= 0 || box.height <= 0) continue;
    shown.push_back(&d);
    boxes.push_back(box);
  }
  // Boxes lowest score first, so the most confident lines end on top.
  for (size_t i = shown.size(); i-- > 0;)
    cv::rectangle(bgr, boxes[i], class_color(shown[i]->class_id), st.line, cv::LINE_AA);

  const int pad = std::max(1, st.line);
  std::vector<std::string> texts;
  std::vector<cv::Size> sizes;
  std::vector<int> ascent;
  for (const Detection* d : shown) {
    char score[16];
    std::snprintf(score, sizeof score, " %.2f", d->score);
    texts.push_back(detector.class_name(d->class_id) + score);
    int baseline = 0;
    const cv::Size ts = cv::getTextSize(texts.back(), cv::FONT_HERSHEY_SIMPLEX, st.font_scale, st.text_thickness, &baseline);
    ascent.push_back(ts.height);
    sizes.emplace_back(ts.width + 2 * pad, ts.height + baseline + 2 * pad);
  }
  // Labels after every box, so no box line crosses a label either.
  const auto spots = layout_labels(boxes, sizes, bgr.size());
  for (size_t i = 0; i < shown.size(); ++i) {
    if (!spots[i]) continue;
    const cv::Rect& bg = *spots[i];
    const cv::Scalar color = class_color(shown[i]->class_id);
    cv::rectangle(bgr, bg, color, cv::FILLED);
    // Dark text on light colours, white on dark ones (Rec. 601 luma).
    const double luma = 0.299 * color[2] + 0.587 * color[1] + 0.114 * color[0];
    const cv::Scalar text = luma > 150 ? cv::Scalar(0, 0, 0) : cv::Scalar(255, 255, 255);
    cv::putText(bgr, texts[i], cv::Point(bg.x + pad, bg.y + pad + ascent[i]), cv::FONT_HERSHEY_SIMPLEX, st.font_scale,
                text, st.text_thickness, cv::LINE_AA);
  }
  return static_cast<int>(shown.size());
}

}  // namespace damoyolo::cli
