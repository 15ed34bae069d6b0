// Drawing detections on BGR images (annotated image files and video frames).
#pragma once

#include <opencv2/core.hpp>
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

// Draws every detection with score >= min_score onto `bgr` (CV_8UC3, drawn in
// place): a box in the class colour and "name 0.87" on a filled label above it
// (inside the box when there is no room above). Boxes are clipped to the image;
// ones wholly outside are skipped. Returns how many were drawn.
int draw_detections(cv::Mat& bgr, const std::vector<Detection>& dets, const Detector& detector, float min_score);

}  // namespace damoyolo::cli
