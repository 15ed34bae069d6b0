// Input files from strangers through the command line: `run --input`,
// `eval --annotations`, dataset file names, labels and image files that are
// not regular files, too large, or outside their folder. Each command runs
// under `timeout`, so a regression shows as a failure, not a hung test.
#include <sys/stat.h>

#include <chrono>

#include "cli_util.h"

namespace {

using namespace cli_test;
using Clock = std::chrono::steady_clock;

// Every command here once read forever or hung: each run is bounded.
constexpr int kHangSeconds = 60;

class CliHostileInput : public CliTest {
 protected:
  fs::path fifo(const std::string& name) {
    const fs::path p = dir_ / name;
    EXPECT_EQ(::mkfifo(p.c_str(), 0600), 0);
    return p;
  }
};

// `run --input /dev/zero` read the device "to EOF" (memory grew without end);
// a FIFO blocked forever. (/dev/zero itself is now refused for its missing
// .u8/.f32 extension, before reading; a .f32 link to it for what it is.)
TEST_F(CliHostileInput, RunInputDevZeroAndFifoAreRefused) {
  fs::create_symlink("/dev/zero", dir_ / "zero.f32");
  struct Case {
    std::string input, expect;
  };
  for (const Case& c : {Case{"/dev/zero", "must end in .u8 or .f32"},
                        Case{(dir_ / "zero.f32").string(), "not a regular file"},
                        Case{fifo("in.f32").string(), "not a regular file"}}) {
    const auto t = Clock::now();
    RunResult r = run_cli({"run", model(), "--input", c.input, "--output-dir", (dir_ / "out").string()}, dir_, kHangSeconds);
    EXPECT_EQ(r.rc, 1) << c.input << "\n" << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.input << "\n" << r.err;
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t).count(), 30.0) << c.input;
  }
}

// An 8 GiB (sparse) file was read whole before its size was compared: ~1 min
// and 8 GB of memory here. Now the size is compared first (the 15 s limit is
// the model load, ~1 s, with a wide margin).
TEST_F(CliHostileInput, RunInputOfTheWrongSizeIsRefusedBeforeReading) {
  const fs::path big = dir_ / "big.f32";
  { std::ofstream(big) << "x"; }
  fs::resize_file(big, 8ull << 30);
  RunResult r = run_cli({"run", model(), "--input", big.string(), "--output-dir", (dir_ / "out").string()},
                                dir_, 15);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("has 8589934592 bytes"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out" / "out0.f32"));
}

TEST_F(CliHostileInput, EvalAnnotationsDevZeroIsRefused) {
  const fs::path res = dir_ / "res.json";
  std::ofstream(res) << "[]";
  RunResult r = run_cli({"eval", "--annotations", "/dev/zero", "--results", res.string()}, dir_, kHangSeconds);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

// A file_name of ../../../../dev/zero made the detector read /dev/zero.
TEST_F(CliHostileInput, EvalFileNamesMustStayInsideTheImagesFolder) {
  const fs::path images = dir_ / "images";
  fs::create_directories(images);
  fs::copy_file(image("chelsea.jpg"), images / "chelsea.jpg");
  fs::create_symlink("/dev/zero", images / "zero.jpg");
  fs::create_symlink(image("coffee.png"), images / "outside.png");
  struct Case {
    std::string file_name, expect;
  };
  const Case cases[] = {
      {"../../../../../../../../dev/zero", "outside the images folder"},
      {"/dev/zero", "absolute"},
      {"outside.png", "outside the images folder"},
      {"zero.jpg", "outside the images folder"},
  };
  for (const Case& c : cases) {
    const fs::path gt = dir_ / "gt.json";
    std::ofstream(gt) << R"({"images": [{"id": 1, "file_name": "chelsea.jpg"}, {"id": 2, "file_name": ")" + c.file_name +
                             R"("}], "categories": [{"id": 17, "name": "cat"}], "annotations": []})";
    RunResult r = run_cli(
        {"eval", "--annotations", gt.string(), "--model", model(), "--images", images.string(), "--coco80-ids", "-q"}, dir_, kHangSeconds);
    EXPECT_EQ(r.rc, 1) << c.file_name << "\n" << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.file_name << "\n" << r.err;
  }
}

// --max-pixels lowers the decode bound from the command line.
TEST_F(CliHostileInput, DetectMaxPixelsRefusesLargerImages) {
  RunResult r = run_cli(
      {"detect", "-m", model(), image("chelsea.jpg"), "--max-pixels", "1000", "--output-dir", (dir_ / "o").string()},
      dir_, kHangSeconds);
  EXPECT_NE(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("exceeds the limit of 1000 pixels"), std::string::npos) << r.err;
  RunResult ok = run_cli({"detect", "-m", model(), image("chelsea.jpg"), "--max-pixels", "135300",
                                  "--output-dir", (dir_ / "o2").string()},
                                 dir_, kHangSeconds);  // 451 x 300 exactly
  EXPECT_EQ(ok.rc, 0) << ok.err;
  RunResult bad = run_cli({"detect", "-m", model(), image("chelsea.jpg"), "--max-pixels", "0"}, dir_, kHangSeconds);
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find("--max-pixels"), std::string::npos) << bad.err;
}

TEST_F(CliHostileInput, DetectRefusesDevZeroImagesAndLabels) {
  RunResult img = run_cli({"detect", "-m", model(), "/dev/zero", "--output-dir", (dir_ / "o1").string()}, dir_, kHangSeconds);
  EXPECT_NE(img.rc, 0) << img.err;
  EXPECT_NE(img.err.find("not a regular file"), std::string::npos) << img.err;
  RunResult lab = run_cli(
      {"detect", "-m", model(), image("chelsea.jpg"), "--labels", "/dev/zero", "--output-dir", (dir_ / "o2").string()}, dir_, kHangSeconds);
  EXPECT_NE(lab.rc, 0) << lab.err;
  EXPECT_NE(lab.err.find("not a regular file"), std::string::npos) << lab.err;
}

}  // namespace
