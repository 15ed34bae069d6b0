// The smallest useful damoyolo program: load a model, detect objects in one
// image, print them. Built against an installed damoyolo by this folder's
// CMakeLists.txt.
//
//   usage: find_package_example MODEL.onnx IMAGE [LABELS.txt]
//
// Output: one summary line, then one line per detection:
//   "  <class> <score> [x1, y1, x2, y2]" in the image's pixels.
#include <cstdio>

#include <damoyolo/detector.h>

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: %s MODEL.onnx IMAGE [LABELS.txt]\n", argv[0]);
    return 2;
  }
  damoyolo::DetectorOptions options;
  // Class names: from the labels file if given, else COCO's for 80-class
  // models, else "class0", "class1", ...
  if (argc == 4) options.labels_file = argv[3];
  // The model family's default (0.05) suits mAP evaluation, which wants the
  // low-scoring boxes too; for showing results keep the confident ones.
  options.conf_threshold = 0.3f;

  // Errors come back as values (damoyolo::Result / Status), never as exceptions.
  auto detector = damoyolo::Detector::create(argv[1], options);
  if (!detector.ok()) {
    std::fprintf(stderr, "%s\n", detector.status().to_string().c_str());
    return 1;
  }
  auto result = detector->detect_file(argv[2]);
  if (!result.ok()) {
    std::fprintf(stderr, "%s\n", result.status().to_string().c_str());
    return 1;
  }

  std::printf("%s: %dx%d, %zu detections\n", argv[2], result->width, result->height,
              result->detections.size());
  for (const damoyolo::Detection& d : result->detections)  // best score first
    std::printf("  %s %.3f [%.1f, %.1f, %.1f, %.1f]\n", detector->class_name(d.class_id).c_str(), d.score,
                d.x1, d.y1, d.x2, d.y2);
  return 0;
}
