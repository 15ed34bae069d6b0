// Ablation of every switchable technique, measured in one run on the same
// machine state: each row turns ONE optimisation off (everything else on; the
// rows are the switches of damoyolo/optimizations.h, `damoyolo optimizations`
// says what each does), then all of them at once, then bf16 for scale, and
// reports end-to-end detection latency (decode excluded: images are decoded
// once up front), network latency, the arena size, and whether the detections
// are unchanged against the all-on row (same class, IoU ≥ 0.99, score ± 1e-4).
//
// usage: bench_ablation [--model M] [--image I] [--iters K] [--threads N] [--markdown]
// Rows are measured round-robin (ROUNDS passes over all configurations, K
// iterations each) so slow drifts in machine load hit every row alike; the
// table reports the median of all iterations and the minimum.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "damoyolo/detector.h"
#include "damoyolo/optimizations.h"

using namespace damoyolo;

namespace {

struct Row {
  std::string name;
  std::function<void(DetectorOptions&)> apply;
  Detector detector;
  std::vector<double> e2e_ms, net_ms;
  ImageDetections last;
};

float iou(const Detection& a, const Detection& b) {
  float iw = std::max(0.f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  float ih = std::max(0.f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  float inter = iw * ih;
  float u = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return u > 0 ? inter / u : 1.f;
}

// Fraction of `ref` detections found in `got` (class, IoU ≥ 0.99, score ± 1e-4).
double agreement(const std::vector<Detection>& ref, const std::vector<Detection>& got) {
  if (ref.empty()) return got.empty() ? 1.0 : 0.0;
  std::vector<bool> used(got.size(), false);
  size_t matched = 0;
  for (const auto& r : ref) {
    for (size_t i = 0; i < got.size(); ++i) {
      if (used[i] || got[i].class_id != r.class_id || std::fabs(got[i].score - r.score) > 1e-4f || iou(r, got[i]) < 0.99f)
        continue;
      used[i] = true;
      ++matched;
      break;
    }
  }
  return static_cast<double>(matched) / static_cast<double>(ref.size());
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = std::string(DAMOYOLO_SOURCE_DIR) + "/../shared/fixtures/models/damoyolo_Ns_416.onnx";
  std::string image = std::string(DAMOYOLO_SOURCE_DIR) + "/../shared/fixtures/images/astronaut.png";
  int iters = 10, rounds = 3, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--model") model = argv[i + 1];
    else if (k == "--image") image = argv[i + 1];
    else if (k == "--iters") iters = std::stoi(argv[i + 1]);
    else if (k == "--rounds") rounds = std::stoi(argv[i + 1]);
    else if (k == "--threads") threads = std::stoi(argv[i + 1]);
  }
  auto img = decode_image_file(image);
  if (!img.ok()) {
    std::fprintf(stderr, "%s\n", img.status().to_string().c_str());
    return 1;
  }

  std::vector<Row> rows;
  auto add = [&](std::string name, std::function<void(DetectorOptions&)> f) { rows.push_back({name, f, {}, {}, {}, {}}); };
  add("all on (default)", [](DetectorOptions&) {});
  // One row per switch in the library's table (damoyolo/optimizations.h).
  for (const OptimizationSwitch& s : optimization_switches())
    add(std::string(s.name) + " off", [&s](DetectorOptions& o) { set_optimization(o, s, false); });
  add("all switches off", [](DetectorOptions& o) { set_all_optimizations(o, false); });
  add("bf16 precision (for scale, not an ablation)", [](DetectorOptions& o) { o.session.precision = Precision::kBF16; });

  for (auto& r : rows) {
    DetectorOptions o;
    o.session.engine = Engine::kOptimized;
    o.session.threads = threads;
    r.apply(o);
    auto d = Detector::create(model, o);
    if (!d.ok()) {
      std::fprintf(stderr, "%s: %s\n", r.name.c_str(), d.status().to_string().c_str());
      return 1;
    }
    r.detector = std::move(*d);
    for (int w = 0; w < 3; ++w) (void)r.detector.detect_into(img->view(), r.last);  // warm-up
  }
  for (int round = 0; round < rounds; ++round) {
    for (auto& r : rows) {
      for (int i = 0; i < iters; ++i) {
        auto t = std::chrono::steady_clock::now();
        Status st = r.detector.detect_into(img->view(), r.last);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
        if (!st.ok()) {
          std::fprintf(stderr, "%s: %s\n", r.name.c_str(), st.to_string().c_str());
          return 1;
        }
        r.e2e_ms.push_back(ms);
        r.net_ms.push_back(r.last.timings.inference_ms);
      }
    }
  }

  const double base = median(rows[0].e2e_ms);
  std::printf("model %s, image %s (%dx%d), %d threads, %d rounds x %d iters per row\n\n", model.c_str(), image.c_str(),
              img->width(), img->height(), threads, rounds, iters);
  std::printf("| configuration | pre+net+post median ms | min ms | vs default | network median ms | preprocess ms | "
              "postprocess ms | arena MiB | detections equal to default |\n|---|---|---|---|---|---|---|---|---|\n");
  for (auto& r : rows) {
    double med = median(r.e2e_ms);
    std::printf("| %s | %.2f | %.2f | %.2fx | %.2f | %.3f | %.3f | %.1f | %.1f%% |\n", r.name.c_str(), med,
                *std::min_element(r.e2e_ms.begin(), r.e2e_ms.end()), med / base, median(r.net_ms),
                r.last.timings.preprocess_ms, r.last.timings.postprocess_ms,
                r.detector.session().arena_bytes() / 1048576.0,
                100.0 * agreement(rows[0].last.detections, r.last.detections));
  }
  return 0;
}
