// End-to-end tests of `damoyolo detect` and `damoyolo video`: the real binary
// on the fixture models and images, checked against the Detector API.
//
// The binary is the default build target's bin/damoyolo; run ctest after a
// full `ninja` (building only test_cli does not rebuild the CLI). A missing
// binary fails the tests rather than skipping them, so it cannot go unnoticed.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <sstream>

#include "cli_util.h"
#include "damoyolo/detector.h"

namespace {

using namespace cli_test;

// ---------------------------------------------------------------------------
// detect
// ---------------------------------------------------------------------------

TEST_F(CliTest, DetectJsonMatchesDetectorApi) {
  const std::vector<std::string> files = {image("chelsea.png"), image("chelsea.jpg"), image("camera.png")};
  std::vector<std::string> args = {"detect", "-m", model(), "--official", "--full-precision", "--json", (dir_ / "r.json").string(), "--output-dir",
                                   (dir_ / "out").string(), "-q"};
  args.insert(args.end(), files.begin(), files.end());
  RunResult r = run_cli(args, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;

  json j = json::parse(slurp(dir_ / "r.json"));
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), files.size());
  auto det = damoyolo::Detector::create(model());
  ASSERT_TRUE(det.ok()) << det.status().to_string();
  for (size_t i = 0; i < files.size(); ++i) {
    auto want = det->detect_file(files[i]);
    ASSERT_TRUE(want.ok()) << want.status().to_string();
    EXPECT_EQ(j[i]["file"], files[i]);
    EXPECT_EQ(j[i]["width"].get<int>(), want->width);
    EXPECT_EQ(j[i]["height"].get<int>(), want->height);
    EXPECT_FALSE(want->detections.empty());  // the comparison must compare something
    expect_same_detections(j[i]["detections"], *want, *det, files[i]);
    for (const char* stage : {"decode", "preprocess", "inference", "postprocess", "draw"})
      EXPECT_TRUE(j[i]["timings_ms"].contains(stage)) << stage;
  }
}

TEST_F(CliTest, DetectBatchAndBenchmarkExportGiveTheSameResults) {
  // --batch 2 over three images (a full and a partial chunk), and the raw-head
  // --benchmark export of the same weights: both must equal the plain run.
  const std::vector<std::string> files = {image("chelsea.png"), image("coffee.png"), image("astronaut.png")};
  auto run = [&](const std::string& m, std::vector<std::string> extra, const std::string& name) {
    std::vector<std::string> args = {"detect", "-m", m, "--official", "--full-precision", "--no-draw", "-q", "--jsonl", (dir_ / name).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), files.begin(), files.end());
    RunResult r = run_cli(args, dir_);
    EXPECT_EQ(r.rc, 0) << r.err;
    return read_jsonl(dir_ / name);
  };
  auto plain = run(model(), {}, "a.jsonl");
  auto batched = run(model(), {"--batch", "2"}, "b.jsonl");
  auto raw = run(model("damoyolo_Ns_416_benchmark"), {}, "c.jsonl");
  ASSERT_EQ(plain.size(), 3u);
  ASSERT_EQ(batched.size(), 3u);
  ASSERT_EQ(raw.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(plain[i]["detections"], batched[i]["detections"]) << files[i];
    ASSERT_EQ(plain[i]["detections"].size(), raw[i]["detections"].size()) << files[i];
    for (size_t k = 0; k < plain[i]["detections"].size(); ++k) {
      EXPECT_EQ(plain[i]["detections"][k]["class_id"], raw[i]["detections"][k]["class_id"]);
      EXPECT_NEAR(plain[i]["detections"][k]["score"].get<double>(), raw[i]["detections"][k]["score"].get<double>(),
                  1e-4);
    }
  }
}

TEST_F(CliTest, DrawnImagesKeepSizeAndShowBoxes) {
  const fs::path out = dir_ / "out";
  // The fixtures' synthetic weights score below 0.3, so draw from 0.1.
  RunResult r = run_cli({"detect", "-m", model(), "--official", "--output-dir", out.string(), "--draw-conf", "0.1", "--json",
                         (dir_ / "r.json").string(), image("chelsea.png"), image("chelsea.jpg")},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  ASSERT_TRUE(fs::exists(out / "chelsea.png"));
  ASSERT_TRUE(fs::exists(out / "chelsea.jpg"));
  cv::Mat src = cv::imread(image("chelsea.png"), cv::IMREAD_COLOR);
  cv::Mat drawn = cv::imread((out / "chelsea.png").string(), cv::IMREAD_COLOR);
  cv::Mat drawn_jpg = cv::imread((out / "chelsea.jpg").string(), cv::IMREAD_COLOR);
  ASSERT_EQ(drawn.size(), src.size());
  ASSERT_EQ(drawn_jpg.size(), src.size());

  // Every box with score >= 0.1 changed the pixels on its outline.
  json j = json::parse(slurp(dir_ / "r.json"));
  int checked = 0;
  for (const json& d : j[0]["detections"]) {
    if (d["score"].get<double>() < 0.1) continue;
    cv::Rect box(cv::Point(static_cast<int>(std::lround(d["box"][0].get<double>())),
                           static_cast<int>(std::lround(d["box"][1].get<double>()))),
                 cv::Point(static_cast<int>(std::lround(d["box"][2].get<double>())),
                           static_cast<int>(std::lround(d["box"][3].get<double>()))));
    box &= cv::Rect(0, 0, src.cols, src.rows);
    if (box.area() == 0) continue;
    // The bottom edge: labels sit at the top, so this row is the box line itself.
    const int y = std::min(box.y + box.height, src.rows - 1);
    int changed = 0;
    for (int x = box.x; x < box.x + box.width; ++x) changed += drawn.at<cv::Vec3b>(y, x) != src.at<cv::Vec3b>(y, x);
    EXPECT_GT(changed, box.width / 2) << "box " << d.dump();
    ++checked;
  }
  EXPECT_GT(checked, 0);
  // Pixels far from every drawn box are untouched: the PNG round trip is lossless.
  EXPECT_EQ(drawn.at<cv::Vec3b>(src.rows - 2, src.cols / 2), src.at<cv::Vec3b>(src.rows - 2, src.cols / 2));

  // Nothing above the drawing threshold: the output is the input, bit for bit.
  RunResult r2 = run_cli({"detect", "-m", model(), "--output-dir", (dir_ / "none").string(), "--draw-conf", "1", "-q",
                          image("chelsea.png")},
                         dir_);
  ASSERT_EQ(r2.rc, 0) << r2.err;
  cv::Mat same = cv::imread((dir_ / "none" / "chelsea.png").string(), cv::IMREAD_COLOR);
  ASSERT_EQ(same.size(), src.size());
  EXPECT_EQ(cv::norm(same, src, cv::NORM_INF), 0.0);
}

TEST_F(CliTest, TimingsAndTopTable) {
  RunResult r = run_cli({"detect", "-m", model(), "--official", "--no-draw", "--timings", "--top", "3", image("chelsea.png"),
                         image("coffee.png")},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* stage : {"decode", "preprocess", "inference", "postprocess", "draw", "images/s"})
    EXPECT_NE(r.out.find(stage), std::string::npos) << stage << " missing in:\n" << r.out;
  // Per image and a total block.
  EXPECT_EQ(count_lines(r.out, "timings ms:"), 2) << r.out;
  EXPECT_NE(r.out.find("timings over 2 image(s)"), std::string::npos) << r.out;
  // --top 3: a header and rows 1..3 for each image.
  EXPECT_EQ(count_lines(r.out, "class            score"), 2) << r.out;
  EXPECT_EQ(count_lines(r.out, "\n     3  "), 2) << r.out;
  EXPECT_EQ(count_lines(r.out, "\n     4  "), 0) << r.out;
}

TEST_F(CliTest, JsonlHasOneLinePerImage) {
  const fs::path jl = dir_ / "r.jsonl";
  RunResult r = run_cli({"detect", "-m", model(), "--no-draw", "-q", "--jsonl", jl.string(), image("chelsea.png"),
                         image("coffee.png"), image("camera.png")},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto lines = read_jsonl(jl);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["file"], image("chelsea.png"));
  EXPECT_EQ(lines[1]["file"], image("coffee.png"));
  EXPECT_EQ(lines[2]["file"], image("camera.png"));
  EXPECT_EQ(lines[1]["width"], 600);
  EXPECT_EQ(lines[1]["height"], 400);
  EXPECT_TRUE(r.out.empty()) << "--quiet printed: " << r.out;
}

TEST_F(CliTest, DirectoryAndGlobInputs) {
  const fs::path in = dir_ / "in";
  fs::create_directories(in / "a" / "deep");
  fs::create_directories(in / "b");
  fs::copy_file(image("chelsea.png"), in / "a" / "chelsea.png");
  fs::copy_file(image("coffee.png"), in / "a" / "deep" / "coffee.PNG");  // extension case ignored
  fs::copy_file(image("chelsea.jpg"), in / "b" / "chelsea.jpg");
  std::ofstream(in / "b" / "notes.txt") << "not an image";  // skipped: not an image extension

  const fs::path jl = dir_ / "dir.jsonl";
  RunResult r = run_cli({"detect", "-m", model(), "-q", "--output-dir", (dir_ / "out").string(), "--jsonl", jl.string(),
                         in.string()},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto lines = read_jsonl(jl);
  ASSERT_EQ(lines.size(), 3u);
  // Sorted traversal: a/chelsea.png, a/deep/coffee.PNG, b/chelsea.jpg.
  EXPECT_EQ(lines[0]["file"], (in / "a" / "chelsea.png").string());
  EXPECT_EQ(lines[1]["file"], (in / "a" / "deep" / "coffee.PNG").string());
  EXPECT_EQ(lines[2]["file"], (in / "b" / "chelsea.jpg").string());
  EXPECT_TRUE(fs::exists(dir_ / "out" / "chelsea.png"));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "coffee.png"));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "chelsea.jpg"));

  // A pattern the shell did not expand (run_cli quotes it); the directory and
  // the pattern overlap, and the image is still detected once.
  const fs::path jg = dir_ / "glob.jsonl";
  RunResult g = run_cli({"detect", "-m", model(), "-q", "--no-draw", "--jsonl", jg.string(),
                         (in / "a" / "*.png").string(), (in / "*" / "*.jpg").string(), (in / "b").string()},
                        dir_);
  ASSERT_EQ(g.rc, 0) << g.err;
  auto globbed = read_jsonl(jg);
  ASSERT_EQ(globbed.size(), 2u);
  EXPECT_EQ(globbed[0]["file"], (in / "a" / "chelsea.png").string());
  EXPECT_EQ(globbed[1]["file"], (in / "b" / "chelsea.jpg").string());

  // A pattern matching nothing is a listed failure.
  RunResult none = run_cli({"detect", "-m", model(), "-q", "--no-draw", (in / "*.gif").string(),
                            image("chelsea.png")},
                           dir_);
  EXPECT_NE(none.rc, 0);
  EXPECT_NE(none.err.find("failed: " + (in / "*.gif").string() + ": no file matches"), std::string::npos)
      << none.err;
}

TEST_F(CliTest, SameNameFromTwoFoldersDoesNotOverwrite) {
  fs::create_directories(dir_ / "x");
  fs::create_directories(dir_ / "y");
  fs::copy_file(image("chelsea.png"), dir_ / "x" / "img.png");
  fs::copy_file(image("coffee.png"), dir_ / "y" / "img.png");
  RunResult r = run_cli({"detect", "-m", model(), "-q", "--output-dir", (dir_ / "out").string(), (dir_ / "x" / "img.png").string(),
                         (dir_ / "y" / "img.png").string()},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(cv::imread((dir_ / "out" / "img.png").string()).cols, 451);
  EXPECT_EQ(cv::imread((dir_ / "out" / "img_2.png").string()).cols, 600);
}

TEST_F(CliTest, BadInputsAmongGoodOnesFailAtTheEnd) {
  const fs::path bad = dir_ / "broken.jpg";
  std::ofstream(bad, std::ios::binary) << "this is not a JPEG";
  const std::string missing = (dir_ / "missing.png").string();
  const fs::path out = dir_ / "out";
  const fs::path js = dir_ / "r.json";
  RunResult r = run_cli({"detect", "-m", model(), "--output-dir", out.string(), "--json", js.string(), image("chelsea.png"),
                         missing, bad.string(), image("coffee.png")},
                        dir_);
  EXPECT_NE(r.rc, 0);
  // The good images were still processed and written.
  EXPECT_TRUE(fs::exists(out / "chelsea.png"));
  EXPECT_TRUE(fs::exists(out / "coffee.png"));
  EXPECT_FALSE(fs::exists(out / "broken.jpg"));
  EXPECT_NE(r.err.find("failed: " + missing + ": "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("failed: " + bad.string() + ": "), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("2 image(s) processed"), std::string::npos) << r.out;
  // The JSON lists the good results and the failures with their reason.
  json j = json::parse(slurp(js));
  int ok = 0, errors = 0;
  for (const json& e : j) (e.contains("error") ? errors : ok) += 1;
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(errors, 2);
}

TEST_F(CliTest, UnwritableOutputDirIsOneLineError) {
  const fs::path file = dir_ / "a_file";
  std::ofstream(file) << "x";
  // A directory below a regular file can never be created (even as root).
  RunResult r = run_cli({"detect", "-m", model(), "--output-dir", (file / "out").string(), image("chelsea.png")}, dir_);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("cannot create output directory"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err, "\n"), 1) << r.err;
  // Same for --json into a missing folder.
  RunResult j = run_cli({"detect", "-m", model(), "--no-draw", "--json", (file / "r.json").string(),
                         image("chelsea.png")},
                        dir_);
  EXPECT_NE(j.rc, 0);
  EXPECT_NE(j.err.find("cannot write"), std::string::npos) << j.err;
}

TEST_F(CliTest, DisableSwitchesChangeNothingInDetectionsAndAreCheckedPerCommand) {
  // detect builds a Detector: its pre/post-processing switches are accepted
  // and, like the session's, leave the detections as they are.
  const fs::path on = dir_ / "on.json", off = dir_ / "off.json";
  RunResult a = run_cli({"detect", "-m", model(), "--official", "--no-draw", "-q", "--json", on.string(), image("chelsea.png")}, dir_);
  ASSERT_EQ(a.rc, 0) << a.err;
  RunResult b = run_cli({"detect", "-m", model(), "--official", "--no-draw", "-q", "--json", off.string(), "--disable",
                         "fast_nms,simd_preprocess,fuse_head", image("chelsea.png")},
                        dir_);
  ASSERT_EQ(b.rc, 0) << b.err;
  json ja = json::parse(slurp(on)), jb = json::parse(slurp(off));
  ASSERT_FALSE(ja[0]["detections"].empty());
  ASSERT_EQ(ja[0]["detections"].size(), jb[0]["detections"].size());
  for (size_t i = 0; i < ja[0]["detections"].size(); ++i)
    EXPECT_EQ(ja[0]["detections"][i]["class_id"], jb[0]["detections"][i]["class_id"]) << i;
  // bench runs only the network: a Detector switch there is an error, not a no-op.
  RunResult c = run_cli({"bench", "-m", model(), "--iters", "1", "--warmup", "0", "--no-peak", "--disable", "fast_nms"},
                        dir_);
  EXPECT_NE(c.rc, 0);
  EXPECT_NE(c.err.find("fast_nms"), std::string::npos) << c.err;
  RunResult d = run_cli({"detect", "-m", model(), "--no-draw", "--disable", "warp_drive", image("chelsea.png")}, dir_);
  EXPECT_NE(d.rc, 0);
  EXPECT_NE(d.err.find("warp_drive"), std::string::npos) << d.err;
}

TEST_F(CliTest, OptimizationsListsTheLibrarysSwitches) {
  // `damoyolo optimizations` prints the library's table, which scripts read
  // (bench/accuracy_ablation.sh): --names all, --session the session's.
  std::string all, session;
  for (const auto& s : damoyolo::optimization_switches()) {
    all += std::string(s.name) + "\n";
    if (s.scope == damoyolo::OptimizationScope::kSession) session += std::string(s.name) + "\n";
  }
  RunResult names = run_cli({"optimizations", "--names"}, dir_);
  ASSERT_EQ(names.rc, 0) << names.err;
  EXPECT_EQ(names.out, all);
  RunResult sess = run_cli({"optimizations", "--names", "--session"}, dir_);
  ASSERT_EQ(sess.rc, 0) << sess.err;
  EXPECT_EQ(sess.out, session);
  RunResult js = run_cli({"optimizations", "--json"}, dir_);
  ASSERT_EQ(js.rc, 0) << js.err;
  const json j = json::parse(js.out);
  ASSERT_EQ(j.size(), damoyolo::optimization_switches().size());
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& s = damoyolo::optimization_switches()[i];
    EXPECT_EQ(j[i]["name"], std::string(s.name));
    EXPECT_EQ(j[i]["scope"], std::string(damoyolo::optimization_scope_name(s.scope)));
    EXPECT_EQ(j[i]["when_off"], std::string(s.when_off));
  }
  RunResult text = run_cli({"optimizations"}, dir_);
  ASSERT_EQ(text.rc, 0) << text.err;
  for (const auto& s : damoyolo::optimization_switches())
    EXPECT_NE(text.out.find("  " + std::string(s.name) + "\n"), std::string::npos) << s.name;
  EXPECT_EQ(count_lines(text.out, "      off: "), static_cast<int>(damoyolo::optimization_switches().size()));
  // --disable's help names the same switches: the session's for run, all for detect.
  RunResult run_help = run_cli({"run", "--help"}, dir_);
  RunResult detect_help = run_cli({"detect", "--help"}, dir_);
  for (const auto& s : damoyolo::optimization_switches()) {
    EXPECT_NE(detect_help.out.find(std::string(s.name)), std::string::npos) << s.name;
    EXPECT_EQ(run_help.out.find(std::string(s.name)) != std::string::npos,
              s.scope == damoyolo::OptimizationScope::kSession)
        << s.name;
  }
}

TEST_F(CliTest, DisableTakesEveryListedSwitchAtOnce) {
  // Every name `optimizations` lists is accepted, all at once: bench (a
  // Session) takes the session's, detect (a Detector) all of them, and the
  // detections stay those of the default configuration.
  std::string session, all;
  for (const auto& s : damoyolo::optimization_switches()) {
    all += (all.empty() ? "" : ",") + std::string(s.name);
    if (s.scope == damoyolo::OptimizationScope::kSession) session += (session.empty() ? "" : ",") + std::string(s.name);
  }
  RunResult b = run_cli({"bench", "-m", model(), "--iters", "1", "--warmup", "0", "--no-peak", "--disable", session},
                        dir_);
  EXPECT_EQ(b.rc, 0) << b.err;
  const fs::path on = dir_ / "on.json", off = dir_ / "off.json";
  RunResult a = run_cli({"detect", "-m", model(), "--official", "--no-draw", "-q", "--json", on.string(), image("chelsea.png")}, dir_);
  ASSERT_EQ(a.rc, 0) << a.err;
  RunResult d = run_cli({"detect", "-m", model(), "--official", "--no-draw", "-q", "--json", off.string(), "--disable",
                         all, image("chelsea.png")},
                        dir_);
  ASSERT_EQ(d.rc, 0) << d.err;
  json ja = json::parse(slurp(on)), jd = json::parse(slurp(off));
  ASSERT_FALSE(ja[0]["detections"].empty());
  ASSERT_EQ(ja[0]["detections"].size(), jd[0]["detections"].size());
  for (size_t i = 0; i < ja[0]["detections"].size(); ++i)
    EXPECT_EQ(ja[0]["detections"][i]["class_id"], jd[0]["detections"][i]["class_id"]) << i;
}

TEST_F(CliTest, LabelsCountMismatchIsAnError) {
  const fs::path labels = dir_ / "labels.txt";
  std::ofstream(labels) << "cat\ndog\nbird\n";
  RunResult r = run_cli({"detect", "-m", model(), "--no-draw", "--labels", labels.string(), image("chelsea.png")},
                        dir_);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("80 classes"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 names"), std::string::npos) << r.err;
}

TEST_F(CliTest, ClassesFilterByIdAndName) {
  const fs::path jl = dir_ / "r.jsonl";
  RunResult r = run_cli({"detect", "-m", model(), "--official", "--no-draw", "-q", "--jsonl", jl.string(), "--classes",
                         "sheep, 28", image("coffee.png"), image("chelsea.png")},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  int n = 0;
  for (const json& line : read_jsonl(jl))
    for (const json& d : line["detections"]) {
      const int c = d["class_id"].get<int>();
      EXPECT_TRUE(c == 18 || c == 28) << c;
      ++n;
    }
  EXPECT_GT(n, 0);
  RunResult bad = run_cli({"detect", "-m", model(), "--no-draw", "--classes", "unicorn", image("chelsea.png")}, dir_);
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find("no class named 'unicorn'"), std::string::npos) << bad.err;
  RunResult range = run_cli({"detect", "-m", model(), "--no-draw", "--classes", "80", image("chelsea.png")}, dir_);
  EXPECT_NE(range.rc, 0);
  EXPECT_NE(range.err.find("out of range"), std::string::npos) << range.err;
}

// ---------------------------------------------------------------------------
// video
// ---------------------------------------------------------------------------

TEST_F(CliTest, VideoKeepsFramesAndSizeAndMatchesTheDetector) {
  const fs::path in = dir_ / "in.mp4", out = dir_ / "out.mp4", jl = dir_ / "frames.jsonl";
  ASSERT_TRUE(write_test_video(in, 10));
  RunResult r = run_cli({"video", "-m", model(), in.string(), "-o", out.string(), "--jsonl", jl.string(),
                         "--official", "--full-precision", "--draw-conf", "0.1"},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("10 frame(s) 320x240"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FPS"), std::string::npos) << r.out;

  cv::VideoCapture cap(out.string(), cv::CAP_FFMPEG);
  ASSERT_TRUE(cap.isOpened());
  EXPECT_NEAR(cap.get(cv::CAP_PROP_FPS), 10.0, 1e-6);
  int n = 0;
  cv::Mat f;
  while (cap.read(f)) {
    EXPECT_EQ(f.cols, 320);
    EXPECT_EQ(f.rows, 240);
    ++n;
  }
  EXPECT_EQ(n, 10);

  auto lines = read_jsonl(jl);
  ASSERT_EQ(lines.size(), 10u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["frame"].get<int>(), static_cast<int>(i));
    EXPECT_NEAR(lines[i]["time_s"].get<double>(), i / 10.0, 1e-9);
  }

  // Frame 0, decoded here and given to the Detector as BGR, must give the
  // same detections as the command reported.
  cv::VideoCapture src(in.string(), cv::CAP_FFMPEG);
  cv::Mat first;
  ASSERT_TRUE(src.read(first));
  auto det = damoyolo::Detector::create(model());
  ASSERT_TRUE(det.ok());
  damoyolo::ImageView view{first.data, first.cols, first.rows, static_cast<ptrdiff_t>(first.step[0]),
                           damoyolo::PixelFormat::kBGR8};
  auto want = det->detect(view);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  expect_same_detections(lines[0]["detections"], *want, *det, "frame 0");
}

TEST_F(CliTest, VideoMaxFramesAndJsonlOnly) {
  const fs::path in = dir_ / "in.mp4", jl = dir_ / "frames.jsonl";
  ASSERT_TRUE(write_test_video(in, 10));
  RunResult r = run_cli({"video", "-m", model(), in.string(), "--jsonl", jl.string(), "--max-frames", "3", "-q"},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(read_jsonl(jl).size(), 3u);
  EXPECT_TRUE(r.out.empty());
}

TEST_F(CliTest, VideoBadInputsAreClearErrors) {
  const fs::path out = dir_ / "out.mp4";
  // Random bytes with a video name.
  const fs::path junk = dir_ / "junk.mp4";
  {
    std::ofstream f(junk, std::ios::binary);
    for (int i = 0; i < 4096; ++i) f.put(static_cast<char>((i * 2654435761u) >> 13));
  }
  RunResult r = run_cli({"video", "-m", model(), junk.string(), "-o", out.string()}, dir_);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("damoyolo video: " + junk.string()), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out)) << "no output may be left behind for an unreadable input";

  // A real video cut in half: the mp4 index (written last) is gone.
  const fs::path good = dir_ / "good.mp4", cut = dir_ / "cut.mp4";
  ASSERT_TRUE(write_test_video(good, 10));
  {
    std::string bytes = slurp(good);
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  RunResult c = run_cli({"video", "-m", model(), cut.string(), "-o", out.string()}, dir_);
  EXPECT_NE(c.rc, 0);
  EXPECT_NE(c.err.find(cut.string()), std::string::npos) << c.err;

  RunResult missing = run_cli({"video", "-m", model(), (dir_ / "nope.mp4").string(), "-o", out.string()}, dir_);
  EXPECT_NE(missing.rc, 0);
  EXPECT_NE(missing.err.find("missing or unreadable"), std::string::npos) << missing.err;

  // An unwritable output path fails before any frame is processed.
  RunResult w = run_cli({"video", "-m", model(), good.string(), "-o", (dir_ / "no_dir" / "o.mp4").string(),
                         "--jsonl", (dir_ / "f.jsonl").string()},
                        dir_);
  EXPECT_NE(w.rc, 0);
  EXPECT_NE(w.err.find("cannot write the output video"), std::string::npos) << w.err;
  EXPECT_FALSE(fs::exists(dir_ / "f.jsonl")) << "the JSONL must not be started before the output is known good";
}

}  // namespace
