// Shared by the command-line tests: run the real binary, read its outputs.
#pragma once

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
#include <string>
#include <vector>

#include "damoyolo/detector.h"
#include "testutil/temp_dir_test.h"
#include "testutil/testutil.h"

namespace cli_test {

namespace fs = std::filesystem;
using damoyolo::testing::cli_path;
using damoyolo::testing::fixtures_dir;
using damoyolo::testing::make_temp_dir;
using nlohmann::json;

struct RunResult {
  int rc = -1;
  std::string out, err;
};

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs the CLI with `args` (no shell expansion: every argument is quoted, so
// glob patterns reach the program as written). stdout/stderr go through files
// so nothing can block on a full pipe. timeout_s > 0: killed after that long
// (coreutils' timeout; rc 137 then means the command hung).
inline RunResult run_cli(const std::vector<std::string>& args, const fs::path& work, int timeout_s = 0) {
  std::string cmd = (timeout_s > 0 ? "timeout -s KILL " + std::to_string(timeout_s) + " " : std::string()) +
                    quote(cli_path().string());
  for (const auto& a : args) cmd += " " + quote(a);
  const fs::path out = work / "stdout.txt", err = work / "stderr.txt";
  cmd += " >" + quote(out.string()) + " 2>" + quote(err.string());
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

inline std::string model(const std::string& name = "damoyolo_Ns_416") {
  return (fixtures_dir() / "models" / (name + ".onnx")).string();
}
inline std::string image(const std::string& file) { return (fixtures_dir() / "images" / file).string(); }

inline std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> v;
  std::ifstream f(p);
  std::string line;
  while (std::getline(f, line)) v.push_back(json::parse(line));
  return v;
}

inline int count_lines(const std::string& s, const std::string& needle) {
  int n = 0;
  for (size_t pos = s.find(needle); pos != std::string::npos; pos = s.find(needle, pos + 1)) ++n;
  return n;
}

// Same boxes, scores and classes, in the same order (both sides run the same
// deterministic code on the same machine, so ties break identically).
inline void expect_same_detections(const json& got, const damoyolo::ImageDetections& want,
                            const damoyolo::Detector& det, const std::string& what) {
  ASSERT_EQ(got.size(), want.detections.size()) << what;
  for (size_t i = 0; i < want.detections.size(); ++i) {
    const auto& d = want.detections[i];
    const json& g = got[i];
    ASSERT_EQ(g["class_id"].get<int>(), d.class_id) << what << " #" << i;
    EXPECT_EQ(g["class_name"].get<std::string>(), det.class_name(d.class_id)) << what << " #" << i;
    EXPECT_NEAR(g["score"].get<double>(), d.score, 1e-6) << what << " #" << i;
    const float box[4] = {d.x1, d.y1, d.x2, d.y2};
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(g["box"][k].get<double>(), box[k], 1e-3) << what << " #" << i;
  }
}

class CliTest : public damoyolo::testing::TempDirTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(cli_path())) << cli_path() << " is missing: build the default target (ninja) first";
    TempDirTest::SetUp();
  }
};

// A 1 s, 10 fps, 320x240 clip written with OpenCV (no dependency on the
// ffmpeg program). Returns false when this OpenCV cannot encode mp4v.
inline bool write_test_video(const fs::path& path, int frames) {
  cv::VideoWriter w(path.string(), cv::CAP_FFMPEG, cv::VideoWriter::fourcc('m', 'p', '4', 'v'), 10.0,
                    cv::Size(320, 240));
  if (!w.isOpened()) return false;
  cv::Mat chelsea = cv::imread(image("chelsea.png"), cv::IMREAD_COLOR);
  cv::Mat frame;
  for (int i = 0; i < frames; ++i) {
    // The cat, sliding a few pixels per frame, so frames differ.
    cv::resize(chelsea, frame, cv::Size(320, 240));
    cv::Mat shifted = cv::Mat::zeros(frame.size(), frame.type());
    frame(cv::Rect(0, 0, 320 - 4 * i, 240)).copyTo(shifted(cv::Rect(4 * i, 0, 320 - 4 * i, 240)));
    w.write(shifted);
  }
  return true;
}

}  // namespace cli_test
