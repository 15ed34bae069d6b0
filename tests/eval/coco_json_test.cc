// COCO files in and out, bad input, and the class -> category mapping.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "damoyolo/coco_eval.h"
#include "damoyolo/detection.h"
#include "damoyolo/detector.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

const char* kTinyCoco = R"({
  "info": {"description": "tiny"},
  "images": [{"id": 7, "file_name": "a.jpg", "width": 640, "height": 480}, {"id": 3, "file_name": "b.jpg"}],
  "annotations": [
    {"id": 1, "image_id": 7, "category_id": 18, "bbox": [1.5, 2, 30, 40.25], "area": 1000.5, "iscrowd": 0},
    {"id": 2, "image_id": 3, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 1, "segmentation": {"counts": "x"}},
    {"id": 3, "image_id": 3, "category_id": 1, "bbox": [5, 5, 4, 4]}
  ],
  "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
})";

std::string write_temp(const std::string& name, const std::string& text) {
  auto dir = testing::make_temp_dir("coco_json");
  auto p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

TEST(CocoDatasetLoad, ReadsImagesAnnotationsCategories) {
  auto ds = CocoDataset::load(write_temp("tiny.json", kTinyCoco));
  ASSERT_TRUE(ds.ok()) << ds.status().to_string();
  ASSERT_EQ(ds->images.size(), 2u);
  EXPECT_EQ(ds->images[0].id, 7);
  EXPECT_EQ(ds->images[0].file_name, "a.jpg");
  EXPECT_EQ(ds->images[0].width, 640);
  EXPECT_EQ(ds->images[1].width, 0);
  ASSERT_EQ(ds->annotations.size(), 3u);
  const CocoAnnotation& a = ds->annotations[0];
  EXPECT_EQ(a.category_id, 18);
  EXPECT_EQ(a.bbox[0], 1.5);
  EXPECT_EQ(a.bbox[3], 40.25);
  EXPECT_EQ(a.area, 1000.5);  // the file's area, not w·h
  EXPECT_FALSE(a.iscrowd);
  EXPECT_TRUE(ds->annotations[1].iscrowd);
  EXPECT_EQ(ds->annotations[1].area, 100.0);  // no area: w·h
  EXPECT_FALSE(ds->annotations[2].iscrowd);   // no iscrowd: not crowd
  ASSERT_EQ(ds->categories.size(), 2u);
  EXPECT_EQ(ds->categories[1].name, "dog");
}

TEST(CocoDatasetLoad, MissingFileIsAnIOError) {
  auto ds = CocoDataset::load("/nonexistent/instances.json");
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kIOError);
  EXPECT_NE(ds.status().message().find("/nonexistent/instances.json"), std::string::npos);
}

TEST(CocoDatasetLoad, NotJsonNamesTheFile) {
  std::string path = write_temp("broken.json", "{\"images\": [");
  auto ds = CocoDataset::load(path);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kParseError);
  EXPECT_NE(ds.status().message().find(path), std::string::npos);
  EXPECT_NE(ds.status().message().find("not JSON"), std::string::npos);
}

TEST(CocoDatasetLoad, NotCocoListsWhatIsMissing) {
  std::string path = write_temp("other.json", R"({"images": [], "licenses": []})");
  auto ds = CocoDataset::load(path);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kParseError);
  const std::string& m = ds.status().message();
  EXPECT_NE(m.find(path), std::string::npos) << m;
  EXPECT_NE(m.find("'annotations'"), std::string::npos) << m;
  EXPECT_NE(m.find("'categories'"), std::string::npos) << m;
  EXPECT_EQ(m.find("'images'"), std::string::npos) << m;

  auto list = CocoDataset::parse("[]", "results.json");
  ASSERT_FALSE(list.ok());
  EXPECT_NE(list.status().message().find("results file"), std::string::npos) << list.status().message();
}

TEST(CocoDatasetLoad, MalformedEntryIsNamed) {
  auto ds = CocoDataset::parse(
      R"({"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
                          {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1]}]})",
      "gt.json");
  ASSERT_FALSE(ds.ok());
  EXPECT_NE(ds.status().message().find("annotations[1].bbox"), std::string::npos) << ds.status().message();
  auto noid = CocoDataset::parse(R"({"images": [{"file_name": "x"}], "categories": [], "annotations": []})", "gt.json");
  ASSERT_FALSE(noid.ok());
  EXPECT_NE(noid.status().message().find("images[0] has no 'id'"), std::string::npos) << noid.status().message();
}

TEST(CocoResults, WriteThenReadIsExact) {
  std::vector<CocoDetection> dets = {
      {7, 18, {0.1, 1.0 / 3.0, 123.456789012345, 1e-7}, 0.987654321},
      {3, 1, {-2.5, 0, 640, 480}, 0.05000000074505806},  // a float score widened
  };
  std::string path = write_temp("results.json", "");
  ASSERT_TRUE(write_coco_results(path, dets).ok());
  auto back = load_coco_results(path);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_EQ(back->size(), dets.size());
  for (size_t i = 0; i < dets.size(); ++i) {
    EXPECT_EQ((*back)[i].image_id, dets[i].image_id);
    EXPECT_EQ((*back)[i].category_id, dets[i].category_id);
    EXPECT_EQ((*back)[i].bbox, dets[i].bbox);  // bit-exact: no rounding on the way
    EXPECT_EQ((*back)[i].score, dets[i].score);
  }
  auto empty = parse_coco_results(coco_results_json({}));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(CocoResults, BadResultsAreRejected) {
  auto obj = parse_coco_results(kTinyCoco, "gt-as-results.json");
  ASSERT_FALSE(obj.ok());
  EXPECT_NE(obj.status().message().find("annotation file"), std::string::npos) << obj.status().message();
  auto noscore = parse_coco_results(R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])", "r.json");
  ASSERT_FALSE(noscore.ok());
  EXPECT_NE(noscore.status().message().find("'score'"), std::string::npos) << noscore.status().message();
  std::vector<CocoDetection> nan = {{1, 1, {0, 0, 1, 1}, std::nan("")}};
  EXPECT_EQ(write_coco_results(write_temp("nan.json", ""), nan).code(), ErrorCode::kInvalidArgument);
}

TEST(CocoResults, FromRuntimeDetectionSubtractsInFloat) {
  Detection d{100.3f, 50.7f, 300.9f, 80.1f, 0.8f, 2};
  const std::vector<int64_t> ids = {1, 2, 3};
  auto c = to_coco_detection(d, 42, ids);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->image_id, 42);
  EXPECT_EQ(c->category_id, 3);
  EXPECT_EQ(c->bbox[0], static_cast<double>(100.3f));
  EXPECT_EQ(c->bbox[2], static_cast<double>(300.9f - 100.3f));  // float32 difference, as torch computes it
  EXPECT_EQ(c->bbox[3], static_cast<double>(80.1f - 50.7f));
  EXPECT_EQ(c->score, static_cast<double>(0.8f));
  d.class_id = 3;
  EXPECT_EQ(to_coco_detection(d, 42, ids).status().code(), ErrorCode::kInvalidArgument);
}

TEST(CategoryMap, Coco80Table) {
  auto ids = coco80_category_ids();
  ASSERT_EQ(ids.size(), 80u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[10], 11);
  EXPECT_EQ(ids[11], 13);
  EXPECT_EQ(ids[24], 27);
  EXPECT_EQ(ids[26], 31);
  EXPECT_EQ(ids[40], 46);
  EXPECT_EQ(ids[60], 67);
  EXPECT_EQ(ids[61], 70);
  EXPECT_EQ(ids[62], 72);
  EXPECT_EQ(ids[73], 84);
  EXPECT_EQ(ids[79], 90);
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_LT(ids[i - 1], ids[i]);
  std::vector<std::string> names = {"person", "toothbrush", "hair drier", "tv"};
  auto by_name = resolve_category_ids(nullptr, names, 4);
  ASSERT_TRUE(by_name.ok()) << by_name.status().to_string();
  EXPECT_EQ(*by_name, (std::vector<int64_t>{1, 90, 89, 72}));
}

TEST(CategoryMap, DetectorNamesMapToTheCoco80Ids) {
  // The detector's default class names (detector.h) and evaluation's built-in
  // table must agree, or a model without a labels file would map wrongly.
  auto ids = resolve_category_ids(nullptr, coco80_class_names(), 80);
  ASSERT_TRUE(ids.ok()) << ids.status().to_string();
  auto want = coco80_category_ids();
  EXPECT_EQ(*ids, std::vector<int64_t>(want.begin(), want.end()));
}

TEST(CategoryMap, ByNameAgainstTheAnnotationFile) {
  auto ds = CocoDataset::parse(kTinyCoco);
  ASSERT_TRUE(ds.ok());
  std::vector<std::string> names = {"dog", "person"};
  auto ids = category_ids_by_name(*ds, names);
  ASSERT_TRUE(ids.ok()) << ids.status().to_string();
  EXPECT_EQ(*ids, (std::vector<int64_t>{18, 1}));

  std::vector<std::string> bad = {"dog", "unicorn", "cat"};
  auto missing = category_ids_by_name(*ds, bad);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.status().message().find("'unicorn' (class 1)"), std::string::npos) << missing.status().message();
  EXPECT_NE(missing.status().message().find("'cat' (class 2)"), std::string::npos);

  CocoDataset dup = *ds;
  dup.categories.push_back({99, "dog"});
  EXPECT_EQ(category_ids_by_name(dup, names).status().code(), ErrorCode::kInvalidArgument);
}

TEST(CategoryMap, ResolveFallsBackToCoco80) {
  auto plain = resolve_category_ids(nullptr, {}, 80);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->size(), 80u);
  EXPECT_EQ((*plain)[79], 90);
  EXPECT_EQ(resolve_category_ids(nullptr, {}, 20).status().code(), ErrorCode::kInvalidArgument);

  std::vector<std::string> names = {"toothbrush", "person"};
  auto builtin = resolve_category_ids(nullptr, names, 2);
  ASSERT_TRUE(builtin.ok());
  EXPECT_EQ(*builtin, (std::vector<int64_t>{90, 1}));
  EXPECT_EQ(resolve_category_ids(nullptr, names, 3).status().code(), ErrorCode::kInvalidArgument);

  auto ds = CocoDataset::parse(kTinyCoco);
  std::vector<std::string> ds_names = {"person", "dog"};
  auto by_file = resolve_category_ids(&*ds, ds_names, 2);
  ASSERT_TRUE(by_file.ok());
  EXPECT_EQ(*by_file, (std::vector<int64_t>{1, 18}));
}

}  // namespace
}  // namespace damoyolo
