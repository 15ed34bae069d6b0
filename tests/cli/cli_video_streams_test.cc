// `damoyolo video` with several inputs: one output per stream ({n} in the
// names), batching across streams, --every, a failing stream reported alone.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/videoio.hpp>

#include "cli_util.h"

namespace {

using namespace cli_test;

std::vector<fs::path> hidden_temp_files(const fs::path& dir) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".damoyolo-") != std::string::npos) v.push_back(e.path());
  return v;
}

TEST_F(CliTest, VideoSeveralInputsOneOutputEach) {
  const fs::path a = dir_ / "a.mp4", b = dir_ / "b.mp4";
  ASSERT_TRUE(write_test_video(a, 6));
  ASSERT_TRUE(write_test_video(b, 9));
  RunResult r = run_cli({"video", "-m", model(), a.string(), b.string(), "--batch", "2", "-o",
                         (dir_ / "out_{n}.mp4").string(), "--jsonl", (dir_ / "out_{n}.jsonl").string()},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  const int frames[] = {6, 9};
  for (int n = 0; n < 2; ++n) {
    auto lines = read_jsonl(dir_ / ("out_" + std::to_string(n) + ".jsonl"));
    ASSERT_EQ(lines.size(), static_cast<size_t>(frames[n]));
    for (size_t i = 0; i < lines.size(); ++i) {
      EXPECT_EQ(lines[i]["frame"].get<int>(), static_cast<int>(i));
      EXPECT_EQ(lines[i]["stream"].get<int>(), n);
    }
    cv::VideoCapture cap((dir_ / ("out_" + std::to_string(n) + ".mp4")).string(), cv::CAP_FFMPEG);
    ASSERT_TRUE(cap.isOpened());
    int count = 0;
    for (cv::Mat f; cap.read(f);) ++count;
    EXPECT_EQ(count, frames[n]);
  }
  EXPECT_NE(r.out.find("decoded 6, inferred 6, dropped 0, skipped 0, errors 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("all streams: 15 frame(s) in"), std::string::npos) << r.out;
  EXPECT_TRUE(hidden_temp_files(dir_).empty());
}

TEST_F(CliTest, VideoSeveralInputsNeedNumberedOutputs) {
  const fs::path a = dir_ / "a.mp4";
  ASSERT_TRUE(write_test_video(a, 2));
  RunResult r = run_cli({"video", "-m", model(), a.string(), a.string(), "-o", (dir_ / "o.mp4").string()}, dir_);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("{n}"), std::string::npos) << r.err;
}

TEST_F(CliTest, VideoEveryNthAndAFailingStreamAmongGoodOnes) {
  const fs::path good = dir_ / "good.mp4", bad = dir_ / "bad.mp4";
  ASSERT_TRUE(write_test_video(good, 9));
  {
    // Random bytes FFmpeg may open as something but cannot decode, or
    // refuses at once: either way one stream's error, not the run's end.
    std::ofstream f(bad, std::ios::binary);
    for (int i = 0; i < 4096; ++i) f.put(static_cast<char>((i * 2654435761u) >> 13));
  }
  RunResult r = run_cli({"video", "-m", model(), good.string(), "--every", "3", "--jsonl",
                         (dir_ / "g.jsonl").string()},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto lines = read_jsonl(dir_ / "g.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1]["frame"].get<int>(), 3);
  EXPECT_NE(r.out.find("skipped 6"), std::string::npos) << r.out;

  RunResult two = run_cli({"video", "-m", model(), good.string(), bad.string(), "--jsonl",
                           (dir_ / "t_{n}.jsonl").string(), "--overwrite"},
                          dir_);
  EXPECT_EQ(two.rc, 1);
  EXPECT_NE(two.err.find(bad.string()), std::string::npos) << two.err;
  EXPECT_EQ(read_jsonl(dir_ / "t_0.jsonl").size(), 9u) << "the good stream goes on";
  EXPECT_FALSE(fs::exists(dir_ / "t_1.jsonl"));
}

}  // namespace

namespace {

using namespace cli_test;

// "-" reads the container from standard input (FFmpeg's pipe: protocol); an
// AVI streams without seeking, as from `cat` or another program's pipe.
TEST_F(CliTest, VideoFromStdin) {
  const fs::path in = dir_ / "in.avi", jl = dir_ / "stdin.jsonl";
  ASSERT_TRUE(write_test_video(in, 5));
  const std::string cmd = "'" + cli_path().string() + "' video -m '" + model() + "' - -q --jsonl '" + jl.string() +
                          "' < '" + in.string() + "' 2> '" + (dir_ / "err.txt").string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(read_jsonl(jl).size(), 5u);
}

}  // namespace
