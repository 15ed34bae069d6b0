// Random datasets scored by damoyolo and by tests/eval/coco_reference.py, all
// 12 numbers compared to 1e-12. The script runs pycocotools' COCOeval when it
// is importable and otherwise its own numpy version of COCOeval (see the
// script's docstring); the test reports which one it compared against.
// Skipped when /usr/bin/python3 with numpy is not there.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "damoyolo/coco_eval.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

const char* kPython = "/usr/bin/python3";

bool have_numpy() {
  std::string cmd = std::string(kPython) + " -c 'import numpy' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

struct Generated {
  nlohmann::json gt;
  std::vector<CocoDetection> dets;
};

// Designed to reach the corners of COCOeval: tied scores, crowd regions,
// `area` values that differ from w·h and sit on the range ends, more than 100
// detections in one (image, category), duplicates, zero-size boxes,
// detections of categories the file lacks, unsorted image ids, categories
// without ground truth, and integer jitter that lands IoU exactly on 0.5/0.75.
Generated generate(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uni = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
  auto irand = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto chance = [&](double p) { return uni(0, 1) < p; };

  Generated g;
  g.gt["info"] = {{"seed", seed}};
  std::vector<int64_t> img_ids;
  const int n_images = irand(1, 7);
  while (static_cast<int>(img_ids.size()) < n_images) {
    int64_t id = irand(1, 60);
    if (std::find(img_ids.begin(), img_ids.end(), id) == img_ids.end()) img_ids.push_back(id);
  }
  g.gt["images"] = nlohmann::json::array();
  for (int64_t id : img_ids) {
    std::string file = std::to_string(id);
    file += ".jpg";  // appended: `to_string() + ".jpg"` trips a GCC 12 -Wrestrict false positive
    g.gt["images"].push_back({{"id", id}, {"file_name", file}});
  }
  const std::vector<int64_t> cats = {1, 3, 7, 12};  // 12 never gets ground truth
  g.gt["categories"] = nlohmann::json::array();
  for (int64_t c : cats) g.gt["categories"].push_back({{"id", c}, {"name", std::string("c").append(std::to_string(c))}});

  const bool coarse_scores = chance(0.6);
  auto score = [&] { return coarse_scores ? irand(1, 9) / 10.0 : uni(0.01, 1.0); };
  auto box = [&](double max_side) {
    double w = irand(1, static_cast<int>(max_side)), h = irand(1, static_cast<int>(max_side));
    if (chance(0.2)) w += 0.5;
    return std::array<double, 4>{static_cast<double>(irand(0, 400)), static_cast<double>(irand(0, 400)), w, h};
  };

  int64_t ann_id = 1;
  g.gt["annotations"] = nlohmann::json::array();
  for (int64_t img : img_ids) {
    for (int64_t cat : {int64_t{1}, int64_t{3}, int64_t{7}}) {
      const int n_gt = irand(0, 5);
      for (int j = 0; j < n_gt; ++j) {
        std::array<double, 4> b = box(chance(0.3) ? 30 : 160);
        const bool crowd = chance(0.12);
        double area = b[2] * b[3];
        const int area_kind = irand(0, 9);
        if (area_kind == 0) area = 1024;
        else if (area_kind == 1) area = 9216;
        else if (area_kind <= 3) area *= uni(0.4, 1.0);  // segment area below the box area
        g.gt["annotations"].push_back({{"id", ann_id++}, {"image_id", img}, {"category_id", cat},
                                       {"bbox", b}, {"area", area}, {"iscrowd", crowd ? 1 : 0}});
        // Detections near this object: jittered by whole pixels, sometimes twice.
        const int n_hits = chance(0.75) ? (chance(0.2) ? 2 : 1) : 0;
        for (int h = 0; h < n_hits; ++h) {
          std::array<double, 4> d = b;
          if (!chance(0.3)) {
            d[0] += irand(-6, 6);
            d[1] += irand(-6, 6);
            d[2] = std::max(0.0, d[2] + irand(-8, 8));
            d[3] = std::max(0.0, d[3] + irand(-8, 8));
          }
          int64_t dcat = chance(0.1) ? cats[static_cast<size_t>(irand(0, 3))] : cat;
          g.dets.push_back({img, dcat, d, score()});
        }
      }
      // Random false positives; sometimes a flood past maxDets.
      const int n_fp = chance(0.1) ? irand(95, 130) : irand(0, 4);
      for (int j = 0; j < n_fp; ++j) g.dets.push_back({img, cat, box(160), score()});
    }
    if (chance(0.3)) g.dets.push_back({img, 12, box(100), score()});
    if (chance(0.2)) g.dets.push_back({img, 99, box(100), score()});  // not a category of the file
  }
  if (g.dets.empty()) g.dets.push_back({img_ids[0], 1, {0, 0, 10, 10}, 0.5});  // loadRes needs one
  // Interleave images and categories like a real results file would not.
  std::shuffle(g.dets.begin(), g.dets.end(), rng);
  return g;
}

std::string run_capture(const std::string& cmd, int* status) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe.get())) > 0) out.append(buf, n);
  *status = pclose(pipe.release());
  return out;
}

TEST(CocoReference, RandomDatasetsMatchTheReferenceToOneE12) {
  if (!have_numpy()) GTEST_SKIP() << kPython << " with numpy is not available";
  const auto dir = testing::make_temp_dir("coco_reference");
  const std::string script = (testing::source_dir() / "tests/eval/coco_reference.py").string();
  std::string reference_kind;
  double max_diff = 0;
  for (uint64_t seed = 1; seed <= 25; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Generated g = generate(seed);
    const std::string gt_path = (dir / ("gt_" + std::to_string(seed) + ".json")).string();
    const std::string dt_path = (dir / ("dt_" + std::to_string(seed) + ".json")).string();
    std::ofstream(gt_path) << g.gt.dump();
    ASSERT_TRUE(write_coco_results(dt_path, g.dets).ok());

    // Through the files, as the CLI does: this also checks that writing and
    // reading the results loses nothing.
    auto ds = CocoDataset::load(gt_path);
    ASSERT_TRUE(ds.ok()) << ds.status().to_string();
    auto dets = load_coco_results(dt_path);
    ASSERT_TRUE(dets.ok()) << dets.status().to_string();
    auto ev = evaluate_coco_bbox(*ds, *dets);
    ASSERT_TRUE(ev.ok()) << ev.status().to_string();

    int status = 0;
    std::string out = run_capture(std::string(kPython) + " '" + script + "' '" + gt_path + "' '" + dt_path + "' 2>&1",
                                  &status);
    ASSERT_EQ(status, 0) << out;
    std::istringstream lines(out);
    std::string kind;
    std::getline(lines, kind);
    ASSERT_TRUE(kind == "pycocotools" || kind == "numpy-reference") << out;
    reference_kind = kind;
    for (size_t i = 0; i < 12; ++i) {
      double want = 0;
      ASSERT_TRUE(lines >> want) << out;
      EXPECT_NEAR(ev->metrics.stats[i], want, 1e-12) << CocoMetrics::names()[i];
      max_diff = std::max(max_diff, std::fabs(ev->metrics.stats[i] - want));
    }
  }
  std::printf("compared against: %s; largest difference %.3g\n", reference_kind.c_str(), max_diff);
  RecordProperty("reference", reference_kind);
}

}  // namespace
}  // namespace damoyolo
