// `damoyolo eval` end to end: results mode output and --json, detector mode
// over the fixture images, and the error paths. Skipped when the CLI has not
// been built (test_eval does not depend on it).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "damoyolo/coco_eval.h"
#include "damoyolo/detector.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

struct CliRun {
  int status;
  std::string out;
};

CliRun run_cli(const std::string& args) {
  std::string cmd = testing::cli_path().string() + " " + args + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  CliRun r{-1, ""};
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe.get())) > 0) r.out.append(buf, n);
  r.status = pclose(pipe.release());
  return r;
}

class CliEval : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(testing::cli_path())) GTEST_SKIP() << "damoyolo CLI not built";
    dir_ = testing::make_temp_dir("cli_eval");
    gt_ = (dir_ / "gt.json").string();
    std::ofstream(gt_) << R"({"images": [{"id": 1, "file_name": "chelsea.jpg"}, {"id": 2, "file_name": "coffee.png"}],
      "categories": [{"id": 1, "name": "person"}, {"id": 17, "name": "cat"}],
      "annotations": [
        {"id": 1, "image_id": 1, "category_id": 17, "bbox": [0, 0, 100, 100], "area": 10000, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 17, "bbox": [200, 0, 100, 100], "area": 10000, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0}]})";
  }
  std::filesystem::path dir_;
  std::string gt_;
};

TEST_F(CliEval, ScoresAResultsFileAndWritesMetrics) {
  std::vector<CocoDetection> dets = {{1, 17, {0, 0, 100, 100}, 0.9}, {2, 1, {10, 10, 20, 20}, 0.8}};
  const std::string res = (dir_ / "res.json").string(), metrics = (dir_ / "metrics.json").string();
  ASSERT_TRUE(write_coco_results(res, dets).ok());
  CliRun r = run_cli("eval --annotations " + gt_ + " --results " + res + " --json " + metrics);
  ASSERT_EQ(r.status, 0) << r.out;
  auto ds = CocoDataset::load(gt_);
  auto ev = evaluate_coco_bbox(*ds, dets);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(r.out, format_coco_summary(ev->metrics));
  std::ifstream in(metrics);
  auto j = nlohmann::json::parse(in);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(j.at(std::string(CocoMetrics::names()[i])).get<double>(), ev->metrics.stats[i]);
}

TEST_F(CliEval, ErrorsAreOneLineAndNonZero) {
  const std::string res = (dir_ / "res.json").string();
  std::vector<CocoDetection> unknown_image = {{5, 1, {0, 0, 1, 1}, 0.5}};
  ASSERT_TRUE(write_coco_results(res, unknown_image).ok());
  CliRun r = run_cli("eval --annotations " + gt_ + " --results " + res);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("image id 5"), std::string::npos) << r.out;

  CliRun swapped = run_cli("eval --annotations " + res + " --results " + gt_);
  EXPECT_NE(swapped.status, 0);
  EXPECT_NE(swapped.out.find("not a COCO annotation file"), std::string::npos) << swapped.out;

  CliRun neither = run_cli("eval --annotations " + gt_);
  EXPECT_NE(neither.status, 0);
  EXPECT_NE(neither.out.find("--results"), std::string::npos) << neither.out;
}

TEST_F(CliEval, RunsTheDetectorOverTheDatasetImages) {
  const auto model = testing::fixtures_dir() / "models" / "damoyolo_T_640.onnx";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "fixture model missing";
  // All 80 categories, named as the model's classes, ids in reverse so that
  // only a by-name mapping gets them right.
  nlohmann::json gt = nlohmann::json::parse(std::ifstream(gt_));
  gt["categories"] = nlohmann::json::array();
  const auto& names = coco80_class_names();
  for (size_t i = 0; i < names.size(); ++i) gt["categories"].push_back({{"id", 1000 - i}, {"name", names[i]}});
  for (auto& a : gt["annotations"]) a["category_id"] = a["category_id"] == 1 ? 1000 : 1000 - 15;  // person, cat
  std::ofstream(gt_) << gt.dump();

  const std::string res = (dir_ / "detections.json").string();
  CliRun r = run_cli("eval -q --threads 2 --annotations " + gt_ + " --model " + model.string() + " --images " +
                  (testing::fixtures_dir() / "images").string() + " --json " + res);
  ASSERT_EQ(r.status, 0) << r.out;
  // The written results, scored again, print the same summary.
  auto dets = load_coco_results(res);
  ASSERT_TRUE(dets.ok()) << dets.status().to_string();
  for (const CocoDetection& d : *dets) {
    EXPECT_TRUE(d.image_id == 1 || d.image_id == 2);
    EXPECT_GT(d.category_id, 1000 - 80);
    EXPECT_LE(d.category_id, 1000);
    EXPECT_GE(d.bbox[2], 0);
  }
  CliRun again = run_cli("eval --annotations " + gt_ + " --results " + res);
  ASSERT_EQ(again.status, 0) << again.out;
  auto strip_warnings = [](const std::string& s) {
    std::string out;
    size_t pos = 0;
    while (pos < s.size()) {
      size_t nl = s.find('\n', pos);
      std::string line = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos + 1);
      if (line.rfind("damoyolo eval:", 0) != 0) out += line;
      pos = nl == std::string::npos ? s.size() : nl + 1;
    }
    return out;
  };
  EXPECT_EQ(strip_warnings(r.out), strip_warnings(again.out));
}

}  // namespace
}  // namespace damoyolo
