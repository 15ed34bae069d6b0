// The whole pipeline against the official one: image file → detections equal
// to ../shared/fixtures/golden/*/*/detections.json (≥ 99.5% matched by class,
// IoU ≥ 0.99, score within 1e-4), for every fixture model and image.
#include <gtest/gtest.h>

#include <fstream>

#include "damoyolo/detector.h"
#include "testutil/detection_match.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;
using testing::fixtures_dir;

fs::path model_path(const std::string& m) { return fixtures_dir() / "models" / (m + ".onnx"); }

// The benchmark export carries the Ns weights: its goldens are Ns's detections.
std::string golden_model(const std::string& m) {
  return m == "damoyolo_Ns_416_benchmark" ? "damoyolo_Ns_416" : m;
}

class DetectorGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(DetectorGolden, EveryImageMatchesOfficialDetections) {
  const std::string model = GetParam();
  DetectorOptions opts;
  opts.decode = DecodeOptions::pil_compatible();  // the goldens are the official (PIL) recipe's
  auto det = Detector::create(model_path(model).string(), opts);
  ASSERT_TRUE(det.ok()) << det.status().to_string();
  EXPECT_EQ(det->family(), model.find("Ns") != std::string::npos ? ModelFamily::kNano : ModelFamily::kGeneral);
  for (const char* image : testing::kFixtureImages) {
    auto golden = testing::read_golden_detections(fixtures_dir() / "golden" / golden_model(model) / image /
                                                  "detections.json");
    auto r = det->detect_file(testing::fixture_image_path(image).string());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->width, golden.width);
    EXPECT_EQ(r->height, golden.height);
    EXPECT_EQ(r->decode.bit_depth, 8);
    EXPECT_FALSE(r->decode.orientation_applied);
    // Two-sided: ≥ 99.5% of the official boxes found and ≥ 99.5% of ours official.
    auto m = testing::match_detections(golden.detections, r->detections);
    EXPECT_GE(m.fraction(), 0.995) << model << "/" << image << ": " << m.describe();
    EXPECT_EQ(r->detections.size(), golden.detections.size()) << model << "/" << image;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DetectorGolden,
                         ::testing::Values("damoyolo_T_640", "damoyolo_Ns_416", "damoyolo_Ns_416_benchmark"));

TEST(Detector, BatchedDetectionEqualsOneByOne) {
  DetectorOptions opts;
  opts.session.batch = 2;
  auto batched = Detector::create(model_path("damoyolo_Ns_416").string(), opts);
  ASSERT_TRUE(batched.ok()) << batched.status().to_string();
  auto single = Detector::create(model_path("damoyolo_Ns_416").string());
  ASSERT_TRUE(single.ok());
  std::vector<std::string> files;
  for (const char* image : testing::kFixtureImages) files.push_back(testing::fixture_image_path(image).string());
  auto results = batched->detect_files(files);  // 5 images: chunks of 2, 2, 1
  ASSERT_EQ(results.size(), files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status().to_string();
    auto one = single->detect_file(files[i]);
    ASSERT_TRUE(one.ok());
    auto m = testing::match_detections(one->detections, results[i]->detections, 0.999, 1e-5);
    EXPECT_EQ(m.missing(), 0u) << files[i] << ": " << m.describe();
    EXPECT_EQ(m.extra(), 0u) << files[i] << ": " << m.describe();
    EXPECT_EQ(results[i]->source, files[i]);
  }
}

TEST(Detector, BadImagesFailAloneAndNameTheFile) {
  auto dir = testing::make_temp_dir("detector_bad");
  std::ofstream(dir / "empty.jpg").close();
  {
    std::ofstream f(dir / "random.png", std::ios::binary);
    for (int i = 0; i < 4096; ++i) f.put(static_cast<char>((i * 7919) & 0xff));
  }
  std::vector<std::string> files = {
      (dir / "empty.jpg").string(),
      testing::fixture_image_path("chelsea_png").string(),
      (dir / "random.png").string(),
      (dir / "missing.jpg").string(),
      "/usr/lib/python3/dist-packages/skimage/data/truncated.jpg",
      testing::fixture_image_path("coffee_png").string(),
  };
  auto det = Detector::create(model_path("damoyolo_Ns_416").string());
  ASSERT_TRUE(det.ok());
  auto results = det->detect_files(files);
  ASSERT_EQ(results.size(), files.size());
  for (size_t i : {0u, 2u, 3u}) {
    ASSERT_FALSE(results[i].ok()) << files[i];
    EXPECT_NE(results[i].status().message().find(fs::path(files[i]).filename().string()), std::string::npos)
        << results[i].status().message();
  }
  ASSERT_TRUE(fs::exists(files[4])) << "python3-skimage (scripts/install-deps.sh) ships this truncated JPEG";
  ASSERT_FALSE(results[4].ok());
  EXPECT_NE(results[4].status().message().find("truncated"), std::string::npos) << results[4].status().message();
  EXPECT_TRUE(results[1].ok());
  EXPECT_TRUE(results[5].ok());
  EXPECT_FALSE(results[1]->detections.empty());
  fs::remove_all(dir);
}

TEST(Detector, LabelsMustMatchTheModelsClassCount) {
  auto dir = testing::make_temp_dir("labels");
  std::ofstream(dir / "labels.txt") << "cat\ndog\n";
  DetectorOptions opts;
  opts.labels_file = (dir / "labels.txt").string();
  auto det = Detector::create(model_path("damoyolo_Ns_416").string(), opts);
  ASSERT_FALSE(det.ok());
  EXPECT_EQ(det.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(det.status().message().find("80"), std::string::npos) << det.status().message();
  fs::remove_all(dir);
}

TEST(Detector, ThresholdsDefaultPerFamilyAndCanBeOverridden) {
  auto nano = Detector::create(model_path("damoyolo_Ns_416").string());
  ASSERT_TRUE(nano.ok());
  EXPECT_FLOAT_EQ(nano->postprocess_options().conf_threshold, 0.03f);
  EXPECT_DOUBLE_EQ(nano->postprocess_options().iou_threshold, 0.65);
  DetectorOptions opts;
  opts.conf_threshold = 0.5f;
  opts.class_filter = {28};  // camera.png's strongest fixture detections are class 28 at 0.62 and 0.51
  auto strict = Detector::create(model_path("damoyolo_Ns_416").string(), opts);
  ASSERT_TRUE(strict.ok());
  auto r = strict->detect_file(testing::fixture_image_path("camera_png").string());
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->detections.empty()) << "the overrides must leave something to check";
  for (const auto& d : r->detections) {
    EXPECT_GT(d.score, 0.5f);
    EXPECT_EQ(d.class_id, 28);
  }
  // The default thresholds keep far more on the same image.
  auto all = nano->detect_file(testing::fixture_image_path("camera_png").string());
  ASSERT_TRUE(all.ok());
  EXPECT_GT(all->detections.size(), r->detections.size());
  EXPECT_EQ(nano->class_name(0), "person");
}

// chelsea.jpg with an APP1 Exif segment (orientation 6) right after SOI.
std::vector<uint8_t> chelsea_with_orientation6() {
  const auto jpeg = testing::read_file(testing::fixture_image_path("chelsea_jpg"));
  std::vector<uint8_t> app1 = {0xFF, 0xE1, 0, 0, 'E', 'x', 'i', 'f', 0, 0,  // length patched below
                               'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0,            // TIFF, one IFD0 entry:
                               0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0,     // 0x0112 SHORT x1 = 6
                               0, 0, 0, 0};                                  // no next IFD
  app1[3] = static_cast<uint8_t>(app1.size() - 2);
  std::vector<uint8_t> out(jpeg.begin(), jpeg.begin() + 2);
  out.insert(out.end(), app1.begin(), app1.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

bool same_detections(const std::vector<Detection>& a, const std::vector<Detection>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].x1 != b[i].x1 || a[i].y1 != b[i].y1 || a[i].x2 != b[i].x2 || a[i].y2 != b[i].y2 ||
        a[i].score != b[i].score || a[i].class_id != b[i].class_id)
      return false;
  return true;
}

TEST(Detector, FilesAreDecodedUprightByDefaultAndReportHowTheyWereDecoded) {
  auto dir = testing::make_temp_dir("exifdet");
  const auto tagged = (dir / "phone.jpg").string();
  {
    const auto bytes = chelsea_with_orientation6();
    std::ofstream(tagged, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                   static_cast<std::streamsize>(bytes.size()));
  }
  auto det = Detector::create(model_path("damoyolo_Ns_416").string());
  DetectorOptions pil_opts;
  pil_opts.decode = DecodeOptions::pil_compatible();
  auto pil = Detector::create(model_path("damoyolo_Ns_416").string(), pil_opts);
  ASSERT_TRUE(det.ok() && pil.ok());

  auto r = det->detect_file(tagged);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->width, 300);  // chelsea is 451 x 300 as stored
  EXPECT_EQ(r->height, 451);
  EXPECT_EQ(r->decode.format, ImageFormat::kJpeg);
  EXPECT_EQ(r->decode.bit_depth, 8);
  EXPECT_EQ(r->decode.exif_orientation, 6);
  EXPECT_TRUE(r->decode.orientation_applied);
  EXPECT_FALSE(r->decode.scaled_from_16bit);
  // The same as detecting on the upright pixels.
  auto upright = decode_image_file(tagged);
  ASSERT_TRUE(upright.ok());
  auto from_view = det->detect(upright->view());
  ASSERT_TRUE(from_view.ok());
  EXPECT_TRUE(same_detections(r->detections, from_view->detections));
  EXPECT_EQ(from_view->decode.format, ImageFormat::kUnknown) << "in-memory images carry no decode info";

  // The PIL recipe ignores the tag: exactly the untagged file's detections.
  auto p = pil->detect_file(tagged);
  auto plain = pil->detect_file(testing::fixture_image_path("chelsea_jpg").string());
  ASSERT_TRUE(p.ok() && plain.ok());
  EXPECT_EQ(p->width, 451);
  EXPECT_EQ(p->height, 300);
  EXPECT_EQ(p->decode.exif_orientation, 6);
  EXPECT_FALSE(p->decode.orientation_applied);
  EXPECT_TRUE(same_detections(p->detections, plain->detections));

  // detect_into overwrites the record, decode info included.
  ImageDetections reused = *r;
  ASSERT_TRUE(det->detect_into(upright->view(), reused).ok());
  EXPECT_EQ(reused.decode.format, ImageFormat::kUnknown);
  EXPECT_FALSE(reused.decode.orientation_applied);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace damoyolo
