// Drawing detections on BGR images (annotated image files and video frames).
#pragma once

#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <vector>

#include "damoyolo/detection.h"

namespace damoyolo {
class Detector;
}

namespace damoyolo::cli {

// The colour (BGR) of a class: a fixed 20-colour palette indexed by class id,
// so a class looks the same in every image and every run.
cv::Scalar class_color(int class_id);

// Line thickness and font scale follow the image's size so labels stay legible
// on a 4K frame and do not swallow a 300-pixel thumbnail.
struct DrawStyle {
  int line = 1;
  double font_scale = 0.4;
  int text_thickness = 1;
  static DrawStyle for_size(int width, int height);
};

// Where each label goes so that no label covers another (overlapping boxes
// otherwise hide each other's scores: "circle 0.58" over "hexagon 0.49").
// `boxes` and `sizes` are in priority order (highest score first); each label
// takes the first free spot of: above the box's top-left corner, inside it,
// below the box, inside its bottom edge, then slides down the box's left
// edge, no further than the box's bottom. A label with no free spot inside `frame` gets none (its box is still
// drawn): a crowded picture loses its least confident labels, never a score
// under another label.
std::vector<std::optional<cv::Rect>> layout_labels(const std::vector<cv::Rect>& boxes,
                                                   const std::vector<cv::Size>& sizes, cv::Size frame);

// Draws every detection with score >= min_score onto `bgr` (CV_8UC3, drawn in
// place): boxes in the class colour, then "name 0.87" on filled labels laid
// out by layout_labels, on top of every box line. Boxes are clipped to the
// image; ones wholly outside are skipped. Returns how many boxes were drawn.
int draw_detections(cv::Mat& bgr, const std::vector<Detection>& dets, const Detector& detector, float min_score);

}  // namespace damoyolo::cli
