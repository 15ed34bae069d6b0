// COCO files from strangers: annotation and results files that are not
// regular files, JSON that makes nlohmann throw (1e999), ids and sizes out of
// range, and image file names that escape the images folder. Every case is a
// Status (never an exception, a hang or a path outside the root).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "damoyolo/coco_eval.h"
#include "testutil/temp_dir_test.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

class HostileCoco : public damoyolo::testing::TempDirTest {};

TEST_F(HostileCoco, DevZeroAnnotationsAndResultsAreRefusedWithoutReading) {
  const auto t = Clock::now();
  auto ds = CocoDataset::load("/dev/zero");
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kIOError) << ds.status().to_string();
  EXPECT_NE(ds.status().message().find("not a regular file"), std::string::npos) << ds.status().message();
  auto res = load_coco_results("/dev/zero");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), ErrorCode::kIOError) << res.status().to_string();
  EXPECT_LT(seconds_since(t), 2.0);
}

TEST_F(HostileCoco, FifoAndDirectoryAreRefused) {
  const fs::path fifo = dir_ / "instances.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const fs::path& p : {fifo, dir_}) {
    auto ds = CocoDataset::load(p.string());
    ASSERT_FALSE(ds.ok()) << p;
    EXPECT_EQ(ds.status().code(), ErrorCode::kIOError) << ds.status().to_string();
    EXPECT_NE(ds.status().message().find("not a regular file"), std::string::npos) << ds.status().message();
    auto res = load_coco_results(p.string());
    ASSERT_FALSE(res.ok()) << p;
    EXPECT_EQ(res.status().code(), ErrorCode::kIOError) << res.status().to_string();
  }
}

std::string dataset_with(const std::string& image, const std::string& ann = R"({"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]})",
                         const std::string& cat = R"({"id": 1, "name": "a"})") {
  return R"({"images": [)" + image + R"(], "annotations": [)" + ann + R"(], "categories": [)" + cat + "]}";
}

// nlohmann throws out_of_range (not parse_error) for a number too large for a
// double; it used to escape CocoDataset::parse and parse_coco_results.
TEST_F(HostileCoco, NumberOverflowIsAParseErrorNotAnException) {
  const std::string ds_text =
      dataset_with(R"({"id": 1, "file_name": "a.jpg"})", R"({"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1e999, 1]})");
  auto ds = CocoDataset::parse(ds_text, "gt.json");
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kParseError) << ds.status().to_string();
  EXPECT_NE(ds.status().message().find("gt.json"), std::string::npos) << ds.status().message();
  EXPECT_NE(ds.status().message().find("1e999"), std::string::npos) << ds.status().message();

  auto res = parse_coco_results(R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": -1e999}])", "res.json");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), ErrorCode::kParseError) << res.status().to_string();
  EXPECT_NE(res.status().message().find("res.json"), std::string::npos) << res.status().message();

  const fs::path file = dir_ / "gt.json";
  std::ofstream(file) << ds_text;
  auto loaded = CocoDataset::load(file.string());
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), ErrorCode::kParseError) << loaded.status().to_string();
}

struct BadCase {
  const char* what;
  std::string text;
  const char* expect;  // in the message
};

// Ids are non-negative integers that fit int64; image sizes fit int. They
// used to wrap (2^64 - 1 became id -1), be accepted negative, or overflow the
// int conversion (undefined behaviour for 1e300).
TEST_F(HostileCoco, OutOfRangeIdsAndSizesAndWrongTypesAreParseErrors) {
  const std::string ann_ok = R"({"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]})";
  const BadCase cases[] = {
      {"negative image id", dataset_with(R"({"id": -1})"), "images[0].id"},
      {"negative annotation id", dataset_with(R"({"id": 1})", R"({"id": -5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]})"), "annotations[0].id"},
      {"negative image_id", dataset_with(R"({"id": 1})", R"({"id": 1, "image_id": -1, "category_id": 1, "bbox": [0, 0, 1, 1]})"), "annotations[0].image_id"},
      {"negative category id", dataset_with(R"({"id": 1})", ann_ok, R"({"id": -3})"), "categories[0].id"},
      {"negative float id", dataset_with(R"({"id": -2.0})"), "images[0].id"},
      {"id beyond int64", dataset_with(R"({"id": 18446744073709551615})"), "images[0].id"},
      {"width 1e300", dataset_with(R"({"id": 1, "width": 1e300})"), "images[0].width"},
      {"negative height", dataset_with(R"({"id": 1, "height": -480})"), "images[0].height"},
      {"fractional width", dataset_with(R"({"id": 1, "width": 640.5})"), "images[0].width"},
      {"string id", dataset_with(R"({"id": "1"})"), "images[0].id"},
      {"number file_name", dataset_with(R"({"id": 1, "file_name": 7})"), "images[0].file_name"},
      {"bbox of strings", dataset_with(R"({"id": 1})", R"({"id": 1, "image_id": 1, "category_id": 1, "bbox": ["0", 0, 1, 1]})"), "annotations[0].bbox"},
      {"images an object", R"({"images": {}, "annotations": [], "categories": []})", "images"},
      {"top level a number", "1e999", "1e999"},
  };
  for (const BadCase& c : cases) {
    auto ds = CocoDataset::parse(c.text, "gt.json");
    EXPECT_FALSE(ds.ok()) << c.what;
    if (ds.ok()) continue;
    EXPECT_EQ(ds.status().code(), ErrorCode::kParseError) << c.what << ": " << ds.status().to_string();
    EXPECT_NE(ds.status().message().find(c.expect), std::string::npos) << c.what << ": " << ds.status().message();
  }
  const BadCase results[] = {
      {"negative image_id", R"([{"image_id": -1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])", "entry 0.image_id"},
      {"category_id beyond int64", R"([{"image_id": 1, "category_id": 9223372036854775808, "bbox": [0, 0, 1, 1], "score": 0.5}])", "entry 0.category_id"},
      {"score a string", R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "high"}])", "entry 0.score"},
  };
  for (const BadCase& c : results) {
    auto r = parse_coco_results(c.text, "res.json");
    EXPECT_FALSE(r.ok()) << c.what;
    if (r.ok()) continue;
    EXPECT_EQ(r.status().code(), ErrorCode::kParseError) << c.what << ": " << r.status().to_string();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << c.what << ": " << r.status().message();
  }
}

// Deep nesting must neither overflow the stack nor take long.
TEST_F(HostileCoco, DeeplyNestedJsonIsAnError) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  const auto t = Clock::now();
  auto ds = CocoDataset::parse(deep, "deep.json");
  EXPECT_FALSE(ds.ok());
  auto res = parse_coco_results(deep, "deep.json");
  EXPECT_FALSE(res.ok());
  EXPECT_LT(seconds_since(t), 5.0);
}

TEST_F(HostileCoco, FileOverTheLimitIsRefusedBeforeReading) {
  const fs::path big = dir_ / "instances.json";
  { std::ofstream(big) << "{"; }
  fs::resize_file(big, 8ull << 30);  // sparse
  const auto t = Clock::now();
  auto ds = CocoDataset::load(big.string());
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kOutOfRange) << ds.status().to_string();
  EXPECT_NE(ds.status().message().find("CocoLoadOptions::max_file_bytes"), std::string::npos) << ds.status().message();
  CocoLoadOptions small;
  small.max_file_bytes = 100;
  const fs::path res = dir_ / "res.json";
  std::ofstream(res) << R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}, )"
                     << R"({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])";
  auto r = load_coco_results(res.string(), small);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kOutOfRange) << r.status().to_string();
  EXPECT_TRUE(load_coco_results(res.string()).ok());
  EXPECT_LT(seconds_since(t), 2.0);
}

// Fields evaluation does not read (segmentation, ...) are dropped while
// parsing; the ones it reads are still checked.
TEST_F(HostileCoco, UnusedFieldsAreSkippedUsedOnesChecked) {
  auto ds = CocoDataset::parse(dataset_with(R"({"id": 1, "file_name": "a.jpg", "flickr_url": 1e308, "x": [[[]]]})",
                                            R"({"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 3],
                                                "segmentation": [[1, 2, 3, 4]], "iscrowd": 0})") +
                                   "",
                               "gt.json");
  ASSERT_TRUE(ds.ok()) << ds.status().to_string();
  EXPECT_EQ(ds->images[0].file_name, "a.jpg");
  EXPECT_EQ(ds->annotations[0].area, 6);
}

// ---------------------------------------------------------------------------
// Image file names from an annotation file stay inside the images folder.
// ---------------------------------------------------------------------------

class CocoImagePath : public HostileCoco {
 protected:
  void SetUp() override {
    HostileCoco::SetUp();
    root_ = dir_ / "images";
    fs::create_directories(root_ / "sub");
    std::ofstream(root_ / "a.jpg") << "jpeg";
    std::ofstream(root_ / "sub" / "b.jpg") << "jpeg";
    std::ofstream(dir_ / "secret.jpg") << "not yours";
    fs::create_symlink(dir_ / "secret.jpg", root_ / "escape.jpg");
    fs::create_symlink("/dev/zero", root_ / "zero.jpg");
    fs::create_symlink(dir_, root_ / "up");
    fs::create_symlink("sub/b.jpg", root_ / "inside.jpg");
    ASSERT_EQ(::mkfifo((root_ / "fifo.jpg").c_str(), 0600), 0);
  }
  fs::path root_;
};

TEST_F(CocoImagePath, NamesInsideTheFolderResolve) {
  for (const char* name : {"a.jpg", "sub/b.jpg", "./sub/../a.jpg", "inside.jpg"}) {
    auto p = coco_image_path(root_.string(), name);
    ASSERT_TRUE(p.ok()) << name << ": " << p.status().to_string();
    EXPECT_TRUE(fs::equivalent(*p, root_ / (std::string(name) == "inside.jpg" ? "sub/b.jpg" : fs::path(name).lexically_normal()))) << name;
  }
}

TEST_F(CocoImagePath, NamesThatEscapeAreRefused) {
  struct Case {
    std::string name;
    ErrorCode code;
    const char* expect;
  };
  const Case cases[] = {
      {"../../../../dev/zero", ErrorCode::kInvalidArgument, "outside the images folder"},
      {"../secret.jpg", ErrorCode::kInvalidArgument, "outside the images folder"},
      {"sub/../../secret.jpg", ErrorCode::kInvalidArgument, "outside the images folder"},
      {"/dev/zero", ErrorCode::kInvalidArgument, "absolute"},
      {(dir_ / "secret.jpg").string(), ErrorCode::kInvalidArgument, "absolute"},
      {"escape.jpg", ErrorCode::kInvalidArgument, "outside the images folder"},  // symlink out
      {"zero.jpg", ErrorCode::kInvalidArgument, "outside the images folder"},    // symlink to /dev/zero
      {"up/secret.jpg", ErrorCode::kInvalidArgument, "outside the images folder"},  // via a linked folder
      {"", ErrorCode::kInvalidArgument, "empty"},
      {".", ErrorCode::kInvalidArgument, "folder itself"},
      {std::string("a.jpg\0../../x", 13), ErrorCode::kInvalidArgument, "NUL"},
      {"fifo.jpg", ErrorCode::kIOError, "not a regular file"},
      {"sub", ErrorCode::kIOError, "not a regular file"},
      {"missing.jpg", ErrorCode::kNotFound, "missing.jpg"},
  };
  for (const Case& c : cases) {
    auto p = coco_image_path(root_.string(), c.name);
    ASSERT_FALSE(p.ok()) << c.name << " -> " << *p;
    EXPECT_EQ(p.status().code(), c.code) << c.name << ": " << p.status().to_string();
    EXPECT_NE(p.status().message().find(c.expect), std::string::npos) << c.name << ": " << p.status().message();
  }
  auto no_root = coco_image_path((dir_ / "nope").string(), "a.jpg");
  EXPECT_EQ(no_root.status().code(), ErrorCode::kNotFound) << no_root.status().to_string();
}

}  // namespace
}  // namespace damoyolo
