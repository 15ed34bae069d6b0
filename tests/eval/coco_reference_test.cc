// Random datasets scored by damoyolo and by tests/eval/coco_reference.py, all
// 12 numbers compared to 1e-12, against two references:
//
// - CocoReference: the script's own numpy version of COCOeval (see its
//   docstring), with Debian's /usr/bin/python3; skipped when that or numpy
//   is missing.
// - Pycocotools: the real pycocotools COCOeval (PyPI), with the Python that
//   scripts/python-env.sh sets up (build/pyvenv, CMake's
//   DAMOYOLO_PYCOCOTOOLS_PYTHON; the environment variable of that name
//   overrides it). These fail, never skip, when pycocotools is missing. Besides
//   the random datasets they score the bundled model's detections on a
//   procedural split written by damoyolo_train.synth, through the CLI.
//
// Tolerance 1e-12, what the numpy comparison always used. A statistic is a
// mean of N <= 10·101·K precision values (K categories: 4040 for the random
// datasets, 10100 for the model run) or of recalls. Another summation order
// moves it by about log2(N)·2^-53 ~ 1e-15 (numpy sums pairwise; the C++
// reproduces numpy's order, so in practice by 0). A different rule anywhere
// (one match, one tie order, one recall-threshold sample) changes some
// precision tp/(tp+fp) of a category with n detections by at least 1/n², so
// the mean by at least 1/(n²·N): >= 2e-11 with n <= 2300 here, well above
// the tolerance.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "damoyolo/coco_eval.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

const char* kPython = "/usr/bin/python3";

// The Python with pycocotools: $DAMOYOLO_PYCOCOTOOLS_PYTHON, else CMake's.
std::string pycocotools_python() {
  const char* env = std::getenv("DAMOYOLO_PYCOCOTOOLS_PYTHON");
  return env && *env ? env : DAMOYOLO_PYCOCOTOOLS_PYTHON;
}

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
// without ground truth, images without ground truth, a category with ground
// truth but no detection, and integer jitter that lands IoU exactly on
// 0.5/0.75. Corners (below) counts them.
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
    const bool no_ground_truth = chance(0.15);  // an image without annotations (false positives only, or nothing)
    for (int64_t cat : {int64_t{1}, int64_t{3}, int64_t{7}}) {
      const int n_gt = no_ground_truth ? 0 : irand(0, 5);
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
  if (chance(0.25)) {  // a category with ground truth that no detection names
    std::erase_if(g.dets, [](const CocoDetection& d) { return d.category_id == 7; });
  }
  if (g.dets.empty()) g.dets.push_back({img_ids[0], 1, {0, 0, 10, 10}, 0.5});  // loadRes needs one
  // Interleave images and categories like a real results file would not.
  std::shuffle(g.dets.begin(), g.dets.end(), rng);
  return g;
}

using testing::quote;
using testing::run_capture;

std::string join(std::initializer_list<std::string> parts) {
  std::string out;
  for (const std::string& p : parts) out.append(p);
  return out;
}

struct Reference {
  std::string kind;  // "numpy-reference" or "pycocotools VERSION"
  std::array<double, 12> stats{};
};

// coco_reference.py with `python --reference which` on the two files; with
// `summary`, pycocotools' summarize() text is written there.
::testing::AssertionResult run_reference(const std::string& python, const std::string& which, const std::string& gt,
                                         const std::string& dt, Reference* ref, const std::string& summary = "") {
  const std::string script = (testing::source_dir() / "tests/eval/coco_reference.py").string();
  std::string cmd = join({quote(python), " ", quote(script), " --reference ", which});
  if (!summary.empty()) cmd.append(" --summary ").append(quote(summary));
  cmd.append(join({" ", quote(gt), " ", quote(dt), " 2>&1"}));
  int status = 0;
  const std::string out = run_capture(cmd, &status);
  if (status != 0) return ::testing::AssertionFailure() << cmd << " failed:\n" << out;
  std::istringstream lines(out);
  std::getline(lines, ref->kind);
  const std::string want_kind = which == "numpy" ? "numpy-reference" : which;
  if (ref->kind.rfind(want_kind, 0) != 0) return ::testing::AssertionFailure() << "not " << want_kind << ":\n" << out;
  for (double& v : ref->stats)
    if (!(lines >> v)) return ::testing::AssertionFailure() << "expected 12 numbers:\n" << out;
  return ::testing::AssertionSuccess();
}

// Counts, over the generated datasets, of the corners they are meant to reach,
// so that "covered" is checked rather than hoped for.
struct Corners {
  int images_without_gt = 0;          // an image with no annotation at all
  int gt_without_dets = 0;            // (image, category) with ground truth, no detection
  int categories_without_dets = 0;    // a category with ground truth, no detection in the whole dataset
  int categories_without_gt = 0;      // detections of a file category that has no ground truth (12)
  int unknown_categories = 0;         // detections of a category the file lacks (99)
  int crowd = 0;
  int area_on_range_end = 0;          // `area` exactly 32² or 96²
  int past_max_dets = 0;              // (image, category) with more than 100 detections
  int tied_scores = 0;                // a score shared by two detections of one category
  int zero_size = 0;                  // a detection with w or h 0

  void add(const Generated& g) {
    std::set<int64_t> with_gt;
    std::map<std::pair<int64_t, int64_t>, int> gt_count, det_count;
    std::map<int64_t, int> gt_per_cat, det_per_cat;
    for (const auto& a : g.gt["annotations"]) {
      const int64_t img = a["image_id"], cat = a["category_id"];
      with_gt.insert(img);
      ++gt_count[{img, cat}];
      ++gt_per_cat[cat];
      crowd += a["iscrowd"].get<int>();
      area_on_range_end += a["area"] == 1024.0 || a["area"] == 9216.0;
    }
    for (const auto& im : g.gt["images"]) images_without_gt += !with_gt.count(im["id"].get<int64_t>());
    std::set<std::pair<int64_t, double>> cat_scores;
    for (const CocoDetection& d : g.dets) {
      ++det_count[{d.image_id, d.category_id}];
      ++det_per_cat[d.category_id];
      tied_scores += !cat_scores.insert({d.category_id, d.score}).second;
      zero_size += d.bbox[2] == 0 || d.bbox[3] == 0;
    }
    for (const auto& [key, n] : gt_count) gt_without_dets += !det_count.count(key);
    for (const auto& [key, n] : det_count) past_max_dets += n > 100;
    for (const auto& [cat, n] : gt_per_cat) categories_without_dets += !det_per_cat.count(cat);
    categories_without_gt += det_per_cat.count(12) > 0;
    unknown_categories += det_per_cat.count(99) > 0;
  }
  std::string describe() const {
    const std::pair<const char*, int> counts[] = {
        {"images without ground truth", images_without_gt},
        {"(image, category) with ground truth but no detection", gt_without_dets},
        {"categories without detections", categories_without_dets},
        {"detected categories without ground truth", categories_without_gt},
        {"unknown categories", unknown_categories},
        {"crowd boxes", crowd},
        {"area on a range end", area_on_range_end},
        {"(image, category) past maxDets", past_max_dets},
        {"tied scores", tied_scores},
        {"zero-size boxes", zero_size}};
    std::string out;
    for (const auto& [name, n] : counts) {
      out.append(out.empty() ? "" : ", ").append(name).append(" ").append(std::to_string(n));
    }
    return out;
  }
  void expect_all_reached() const {
    EXPECT_GT(images_without_gt, 0);
    EXPECT_GT(gt_without_dets, 0);
    EXPECT_GT(categories_without_dets, 0);
    EXPECT_GT(categories_without_gt, 0);
    EXPECT_GT(unknown_categories, 0);
    EXPECT_GT(crowd, 0);
    EXPECT_GT(area_on_range_end, 0);
    EXPECT_GT(past_max_dets, 0);
    EXPECT_GT(tied_scores, 0);
    EXPECT_GT(zero_size, 0);
  }
};

// The 25 random datasets, scored by damoyolo (through the files, as the CLI
// does: this also checks that writing and reading the results loses nothing)
// and by the reference; prints the largest difference.
void compare_random_datasets(const std::string& python, const std::string& which) {
  const auto dir = testing::make_temp_dir("coco_reference");
  std::string reference_kind;
  double max_diff = 0;
  int identical = 0;
  Corners corners;
  for (uint64_t seed = 1; seed <= 25; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Generated g = generate(seed);
    corners.add(g);
    const std::string gt_path = (dir / ("gt_" + std::to_string(seed) + ".json")).string();
    const std::string dt_path = (dir / ("dt_" + std::to_string(seed) + ".json")).string();
    std::ofstream(gt_path) << g.gt.dump();
    ASSERT_TRUE(write_coco_results(dt_path, g.dets).ok());

    auto ds = CocoDataset::load(gt_path);
    ASSERT_TRUE(ds.ok()) << ds.status().to_string();
    auto dets = load_coco_results(dt_path);
    ASSERT_TRUE(dets.ok()) << dets.status().to_string();
    auto ev = evaluate_coco_bbox(*ds, *dets);
    ASSERT_TRUE(ev.ok()) << ev.status().to_string();

    Reference ref;
    ASSERT_TRUE(run_reference(python, which, gt_path, dt_path, &ref));
    reference_kind = ref.kind;
    for (size_t i = 0; i < 12; ++i) {
      EXPECT_NEAR(ev->metrics.stats[i], ref.stats[i], 1e-12) << CocoMetrics::names()[i];
      max_diff = std::max(max_diff, std::fabs(ev->metrics.stats[i] - ref.stats[i]));
      identical += ev->metrics.stats[i] == ref.stats[i];
    }
  }
  corners.expect_all_reached();
  std::printf("corners reached: %s\n", corners.describe().c_str());
  std::printf("compared against: %s; 25 datasets, %d of 300 numbers bit-identical, largest difference %.3g\n",
              reference_kind.c_str(), identical, max_diff);
  ::testing::Test::RecordProperty("reference", reference_kind);
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

TEST(CocoReference, RandomDatasetsMatchTheReferenceToOneE12) {
  if (!have_numpy()) GTEST_SKIP() << kPython << " with numpy is not available";
  compare_random_datasets(kPython, "numpy");
}

class Pycocotools : public ::testing::Test {
 protected:
  void SetUp() override {
    python_ = pycocotools_python();
    int status = 0;
    const std::string out = run_capture(join({quote(python_), " -c 'import pycocotools.cocoeval' 2>&1"}), &status);
    ASSERT_EQ(status, 0) << "pycocotools is not available from " << python_ << ":\n"
                         << out
                         << "scripts/python-env.sh installs it (pycocotools from PyPI into build/pyvenv; "
                            "scripts/test.sh runs it), or set DAMOYOLO_PYCOCOTOOLS_PYTHON to a Python that has it.";
  }
  std::string python_;
};

TEST_F(Pycocotools, RandomDatasetsMatchToOneE12) { compare_random_datasets(python_, "pycocotools"); }

// A real run: the bundled model over 40 images of the procedural validation
// split, through the CLI (--model, then --results on the written file), and
// pycocotools on the same annotation and results files. The 12 numbers agree
// to 1e-12 and the printed summary is pycocotools' summarize() text.
TEST_F(Pycocotools, BundledModelOnASyntheticSplitMatches) {
  if (!std::filesystem::exists(testing::cli_path())) GTEST_SKIP() << "damoyolo CLI not built";
  const auto dir = testing::make_temp_dir("pycocotools_synth");
  const auto src = testing::source_dir();
  int status = 0;
  std::string out = run_capture(join({"cd ", quote((src / "python").string()), " && ", kPython,
                                      " -m damoyolo_train.synth --out ", quote(dir.string()),
                                      " --split val --count 40 --seed 1 2>&1"}),
                                &status);
  ASSERT_EQ(status, 0) << out;
  const std::string gt = (dir / "instances_val.json").string(), res = (dir / "results.json").string(),
                    metrics = (dir / "metrics.json").string(), summary = (dir / "pycocotools.txt").string();
  const std::string cli = quote(testing::cli_path().string());
  const std::string by_model =
      run_capture(join({cli, " eval -q --threads 2 --annotations ", quote(gt), " --model ",
                        quote((src / "models/damoyolo_demo.onnx").string()), " --labels ",
                        quote((src / "models/damoyolo_demo.labels.txt").string()), " --images ",
                        quote((dir / "images").string()), " --json ", quote(res), " 2>&1"}),
                  &status);
  ASSERT_EQ(status, 0) << by_model;
  const std::string by_results = run_capture(
      join({cli, " eval --annotations ", quote(gt), " --results ", quote(res), " --json ", quote(metrics), " 2>&1"}),
      &status);
  ASSERT_EQ(status, 0) << by_results;

  Reference ref;
  ASSERT_TRUE(run_reference(python_, "pycocotools", gt, res, &ref, summary));
  std::ifstream summary_in(summary);
  const std::string want_summary{std::istreambuf_iterator<char>(summary_in), std::istreambuf_iterator<char>()};
  EXPECT_EQ(by_model, want_summary);
  EXPECT_EQ(by_results, want_summary);

  const auto m = nlohmann::json::parse(std::ifstream(metrics));
  double max_diff = 0;
  int identical = 0;
  for (size_t i = 0; i < 12; ++i) {
    const double got = m.at(std::string(CocoMetrics::names()[i])).get<double>();
    EXPECT_NEAR(got, ref.stats[i], 1e-12) << CocoMetrics::names()[i];
    max_diff = std::max(max_diff, std::fabs(got - ref.stats[i]));
    identical += got == ref.stats[i];
  }
  // Not a vacuous comparison: a trained model's scores, past maxDets=100 in places.
  const auto dets = nlohmann::json::parse(std::ifstream(res));
  EXPECT_GT(dets.size(), 4000u);
  EXPECT_GT(ref.stats[0], 0.5);
  std::printf("compared against: %s; %zu detections on 40 images, AP %.4f; %d of 12 numbers bit-identical, "
              "largest difference %.3g\n",
              ref.kind.c_str(), dets.size(), ref.stats[0], identical, max_diff);
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace damoyolo
