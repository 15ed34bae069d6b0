// The command line as a new user meets it: each test reproduces one defect
// reported from a first contact (outputs replacing inputs, truncated media
// taken for success, output re-read as input, lost work on Ctrl-C, labels not
// found, noisy defaults, hidden labels, rough edges) against the real binary.
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <thread>

#include "cli_util.h"
#include "draw.h"

extern char** environ;

namespace {

using namespace cli_test;

fs::path bundled_model() { return damoyolo::testing::source_dir() / "models" / "damoyolo_demo.onnx"; }
fs::path bundled_image() { return damoyolo::testing::source_dir() / "models" / "demo.jpg"; }

// Starts the CLI without a shell (so a signal reaches it, not a shell),
// stdout/stderr to files in `work`. Returns the pid.
pid_t spawn_cli(const std::vector<std::string>& args, const fs::path& work) {
  std::vector<std::string> all = {cli_path().string()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, (work / "stdout.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, (work / "stderr.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

int wait_exit_code(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Polls `ready` every 5 ms for up to `seconds`.
template <typename F>
bool wait_until(F ready, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ready();
}

std::vector<fs::path> hidden_temp_files(const fs::path& dir) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".damoyolo-") != std::string::npos) v.push_back(e.path());
  return v;
}

// A JPEG with an EXIF APP1 segment holding Orientation = `orientation`,
// inserted right after SOI (what cameras write).
std::string jpeg_with_orientation(const cv::Mat& bgr, int orientation) {
  std::vector<uchar> jpg;
  cv::imencode(".jpg", bgr, jpg, {cv::IMWRITE_JPEG_QUALITY, 95});
  // TIFF, little endian: header, one IFD with one SHORT entry, no next IFD.
  const unsigned char tiff[] = {'I', 'I', 42, 0, 8, 0, 0, 0,                  // header, IFD at 8
                                1, 0,                                         // one entry
                                0x12, 0x01, 3, 0, 1, 0, 0, 0,                 // tag 0x0112, SHORT, count 1
                                static_cast<unsigned char>(orientation), 0, 0, 0,  // value
                                0, 0, 0, 0};                                  // no next IFD
  const size_t len = 2 + 6 + sizeof tiff;
  std::string app1 = {'\xFF', '\xE1', static_cast<char>(len >> 8), static_cast<char>(len & 0xFF), 'E', 'x', 'i', 'f', 0, 0};
  app1.append(reinterpret_cast<const char*>(tiff), sizeof tiff);
  std::string out(reinterpret_cast<const char*>(jpg.data()), 2);  // SOI
  out += app1;
  out.append(reinterpret_cast<const char*>(jpg.data()) + 2, jpg.size() - 2);
  return out;
}

// ---------------------------------------------------------------------------
// 1. Outputs never replace inputs or existing files
// ---------------------------------------------------------------------------

TEST_F(CliTest, JsonNeverReplacesAnInputOrAnExistingFile) {
  // `detect --json *.jpg` in a folder of a.jpg b.jpg c.jpg: the shell makes
  // a.jpg the --json file.
  for (const char* n : {"a.jpg", "b.jpg", "c.jpg"}) fs::copy_file(bundled_image(), dir_ / n);
  const std::string before = slurp(dir_ / "a.jpg");
  RunResult r = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "--json", (dir_ / "a.jpg").string(),
                         (dir_ / "b.jpg").string(), (dir_ / "c.jpg").string()},
                        dir_);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("is an image"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(dir_ / "a.jpg"), before) << "a.jpg was modified";
  EXPECT_TRUE(r.out.empty()) << "refused before any work: " << r.out;

  // An output that is an input is refused even with --overwrite.
  RunResult o = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "--overwrite", "--jsonl",
                         (dir_ / "b.jpg").string(), (dir_ / "b.jpg").string(), (dir_ / "c.jpg").string()},
                        dir_);
  EXPECT_NE(o.rc, 0);
  EXPECT_NE(o.err.find("is an input"), std::string::npos) << o.err;
  EXPECT_EQ(slurp(dir_ / "b.jpg"), before);

  // --overwrite replaces a file that is no input.
  std::ofstream(dir_ / "old.json") << "old";
  RunResult w = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "--overwrite", "-q", "--json",
                         (dir_ / "old.json").string(), (dir_ / "b.jpg").string()},
                        dir_);
  ASSERT_EQ(w.rc, 0) << w.err;
  EXPECT_TRUE(json::parse(slurp(dir_ / "old.json")).is_array());
  EXPECT_TRUE(hidden_temp_files(dir_).empty());
}

TEST_F(CliTest, AnnotatedImagesNeverReplaceExistingFiles) {
  fs::create_directories(dir_ / "out");
  std::ofstream(dir_ / "out" / "demo.jpg") << "a file of the user's";
  RunResult r = run_cli({"detect", "-m", bundled_model().string(), "--output-dir", (dir_ / "out").string(),
                         bundled_image().string()},
                        dir_);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("exists already"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(dir_ / "out" / "demo.jpg"), "a file of the user's");
  RunResult w = run_cli({"detect", "-m", bundled_model().string(), "--output-dir", (dir_ / "out").string(),
                         "--overwrite", bundled_image().string()},
                        dir_);
  ASSERT_EQ(w.rc, 0) << w.err;
  EXPECT_EQ(cv::imread((dir_ / "out" / "demo.jpg").string()).cols, 440);
}

TEST_F(CliTest, VideoOutputsNeverReplaceTheInput) {
  const fs::path v = dir_ / "v.mp4";
  ASSERT_TRUE(write_test_video(v, 4));
  const std::string before = slurp(v);
  RunResult r = run_cli({"video", "-m", model(), v.string(), "--jsonl", v.string()}, dir_);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("is an input"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(v), before);
  RunResult o = run_cli({"video", "-m", model(), v.string(), "-o", v.string(), "--overwrite"}, dir_);
  EXPECT_NE(o.rc, 0);
  EXPECT_EQ(slurp(v), before);
  // -o and --jsonl the same new file: refused, nothing written.
  const fs::path same = dir_ / "same.mp4";
  RunResult s = run_cli({"video", "-m", model(), v.string(), "-o", same.string(), "--jsonl", same.string()}, dir_);
  EXPECT_NE(s.rc, 0);
  EXPECT_NE(s.err.find("another output"), std::string::npos) << s.err;
  EXPECT_FALSE(fs::exists(same));
}

TEST_F(CliTest, ModelAndLabelsAreInputsEvenWithOverwrite) {
  fs::copy_file(bundled_model(), dir_ / "m.onnx");
  std::ofstream(dir_ / "l.txt") << "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
  const std::string model_before = slurp(dir_ / "m.onnx"), labels_before = slurp(dir_ / "l.txt");
  RunResult m = run_cli({"detect", "-m", (dir_ / "m.onnx").string(), "--no-draw", "--overwrite", "--json",
                         (dir_ / "m.onnx").string(), bundled_image().string()},
                        dir_);
  EXPECT_NE(m.rc, 0);
  EXPECT_NE(m.err.find("is an input"), std::string::npos) << m.err;
  RunResult l = run_cli({"detect", "-m", (dir_ / "m.onnx").string(), "--labels", (dir_ / "l.txt").string(), "--no-draw",
                         "--overwrite", "--jsonl", (dir_ / "l.txt").string(), bundled_image().string()},
                        dir_);
  EXPECT_NE(l.rc, 0);
  RunResult v = run_cli({"video", "-m", (dir_ / "m.onnx").string(), "x.mp4", "--overwrite", "--jsonl",
                         (dir_ / "m.onnx").string()},
                        dir_);
  EXPECT_NE(v.rc, 0);
  EXPECT_EQ(slurp(dir_ / "m.onnx"), model_before);
  EXPECT_EQ(slurp(dir_ / "l.txt"), labels_before);
}

TEST_F(CliTest, InputsAreRecognisedUnderAnyNameOrLink) {
  fs::copy_file(bundled_image(), dir_ / "a.jpg");
  fs::create_symlink(dir_ / "a.jpg", dir_ / "link.json");
  fs::create_hard_link(dir_ / "a.jpg", dir_ / "hard.json");
  const std::string before = slurp(dir_ / "a.jpg");
  for (const std::string& target : {(dir_ / "link.json").string(), (dir_ / "hard.json").string(),
                                    (dir_ / "." / "a.jpg").string()}) {
    RunResult r = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "--overwrite", "--json", target,
                           (dir_ / "a.jpg").string()},
                          dir_);
    EXPECT_NE(r.rc, 0) << target;
    EXPECT_NE(r.err.find("is an input"), std::string::npos) << target << ": " << r.err;
  }
  EXPECT_EQ(slurp(dir_ / "a.jpg"), before);
}

TEST_F(CliTest, ResultsNeverReplaceMediaOrSpecialFiles) {
  // `--json *.jpg` with --overwrite: a.jpg is not an input of that run, but it
  // is a picture, and results never replace one.
  for (const char* n : {"a.jpg", "b.jpg"}) fs::copy_file(bundled_image(), dir_ / n);
  const std::string before = slurp(dir_ / "a.jpg");
  RunResult r = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "--overwrite", "--json",
                         (dir_ / "a.jpg").string(), (dir_ / "b.jpg").string()},
                        dir_);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("is an image"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(dir_ / "a.jpg"), before);
  // A FIFO (or a device) is not replaced by a regular file.
  ASSERT_EQ(::mkfifo((dir_ / "pipe").c_str(), 0644), 0);
  RunResult f = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "--overwrite", "--jsonl",
                         (dir_ / "pipe").string(), (dir_ / "b.jpg").string()},
                        dir_);
  EXPECT_NE(f.rc, 0);
  EXPECT_NE(f.err.find("not a regular file"), std::string::npos) << f.err;
  EXPECT_TRUE(fs::is_fifo(dir_ / "pipe"));
  // Two outputs of one run under two spellings of one name.
  RunResult d = run_cli({"detect", "-m", bundled_model().string(), "--output-dir", (dir_ / "out").string(), "--json",
                         (dir_ / "." / "out" / "b.jpg").string(), (dir_ / "b.jpg").string()},
                        dir_);
  EXPECT_NE(d.rc, 0);
  EXPECT_NE(d.err.find("another output"), std::string::npos) << d.err;
  EXPECT_FALSE(fs::exists(dir_ / "out")) << "refused before anything was created";
}

// ---------------------------------------------------------------------------
// 2. A truncated video is an error that says how much was read
// ---------------------------------------------------------------------------

TEST_F(CliTest, TruncatedVideoIsAnErrorWithTheFramesRead) {
  // 3 s of H.264 at 10 fps with the index first (faststart), cut in half: the
  // container still declares 30 frames.
  const fs::path full = dir_ / "full.mp4", half = dir_ / "half.mp4", out = dir_ / "out.mp4";
  const std::string cmd = "ffmpeg -loglevel error -f lavfi -i testsrc=size=320x240:rate=10 -t 3 -c:v libx264 "
                          "-pix_fmt yuv420p -movflags +faststart -y " + quote(full.string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "ffmpeg could not make the test clip";
  const std::string bytes = slurp(full);
  std::ofstream(half, std::ios::binary) << bytes.substr(0, bytes.size() / 2);

  RunResult ok = run_cli({"video", "-m", model(), full.string(), "--jsonl", (dir_ / "full.jsonl").string(), "-q"}, dir_);
  ASSERT_EQ(ok.rc, 0) << ok.err;
  EXPECT_EQ(read_jsonl(dir_ / "full.jsonl").size(), 30u);

  RunResult r = run_cli({"video", "-m", model(), half.string(), "-o", out.string()}, dir_);
  EXPECT_EQ(r.rc, 1) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m, std::regex("decoded (\\d+) frame\\(s\\), [0-9.]+ s of the 3.00 s \\(30 frames\\)")))
      << r.err;
  const int read = std::stoi(m[1]);
  EXPECT_GT(read, 0);
  EXPECT_LT(read, 30);
  // What was read is kept, playable.
  cv::VideoCapture cap(out.string(), cv::CAP_FFMPEG);
  ASSERT_TRUE(cap.isOpened());
  int n = 0;
  for (cv::Mat f; cap.read(f);) ++n;
  EXPECT_EQ(n, read);
}

TEST_F(CliTest, CompleteVariableFrameRateVideoIsNotTruncated) {
  // WebM stores no frame count: the container's "count" is duration x nominal
  // fps (199 here), while this variable-rate stream has 125 frames, all there.
  const fs::path vfr = dir_ / "vfr.webm";
  const std::string cmd = "ffmpeg -loglevel error -f lavfi -i testsrc=size=160x120:rate=25 -t 8 "
                          "-vf \"select='lt(n\\,50)+not(mod(n\\,2))'\" -vsync vfr -c:v libvpx -y " + quote(vfr.string());
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  RunResult r = run_cli({"video", "-m", model(), vfr.string(), "--jsonl", (dir_ / "v.jsonl").string(), "-q"}, dir_);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.err.find("ends early"), std::string::npos) << r.err;
  EXPECT_EQ(read_jsonl(dir_ / "v.jsonl").size(), 125u);
}

// ---------------------------------------------------------------------------
// 3. The output folder is never read as input
// ---------------------------------------------------------------------------

TEST_F(CliTest, DetectTwiceInAFolderDoesNotReadItsOwnOutput) {
  const fs::path work = dir_ / "photos";
  fs::create_directories(work);
  fs::copy_file(bundled_image(), work / "demo.jpg");
  const fs::path out = work / "out";
  for (int run = 0; run < 2; ++run) {
    const fs::path jl = dir_ / ("run" + std::to_string(run) + ".jsonl");
    RunResult r = run_cli({"detect", "-m", bundled_model().string(), "-q", "--overwrite", "--output-dir", out.string(),
                           "--jsonl", jl.string(), work.string()},
                          dir_);
    ASSERT_EQ(r.rc, 0) << "run " << run << ": " << r.err;
    auto lines = read_jsonl(jl);
    ASSERT_EQ(lines.size(), 1u) << "run " << run;
    EXPECT_EQ(lines[0]["file"], (work / "demo.jpg").string());
  }
  EXPECT_FALSE(fs::exists(out / "demo_2.jpg"));
  // The output folder named as the input: refused, not detected.
  RunResult same = run_cli({"detect", "-m", bundled_model().string(), "--output-dir", out.string(), out.string()}, dir_);
  EXPECT_NE(same.rc, 0);
  EXPECT_NE(same.err.find("output directory"), std::string::npos) << same.err;
}

// ---------------------------------------------------------------------------
// 4. EXIF orientation applied by default, PIL's behaviour on request
// ---------------------------------------------------------------------------

TEST_F(CliTest, ExifOrientationIsAppliedAndReported) {
  cv::Mat img = cv::imread(bundled_image().string(), cv::IMREAD_COLOR);  // 440x420
  ASSERT_FALSE(img.empty());
  cv::Mat sideways;
  cv::rotate(img, sideways, cv::ROTATE_90_COUNTERCLOCKWISE);  // stored 420x440, shown upright with tag 6
  const fs::path phone = dir_ / "phone.jpg";
  std::ofstream(phone, std::ios::binary) << jpeg_with_orientation(sideways, 6);

  const fs::path a = dir_ / "a.json", b = dir_ / "b.json";
  RunResult r = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "-q", "--json", a.string(), phone.string()}, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  json ja = json::parse(slurp(a))[0];
  EXPECT_EQ(ja["width"], 440);
  EXPECT_EQ(ja["height"], 420);
  EXPECT_EQ(ja["decode"]["exif_orientation"], 6);
  EXPECT_EQ(ja["decode"]["orientation_applied"], true);

  RunResult p = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "-q", "--pil-decode", "--json", b.string(),
                         phone.string()},
                        dir_);
  ASSERT_EQ(p.rc, 0) << p.err;
  json jb = json::parse(slurp(b))[0];
  EXPECT_EQ(jb["width"], 420);
  EXPECT_EQ(jb["height"], 440);
  EXPECT_EQ(jb["decode"]["orientation_applied"], false);
}

TEST_F(CliTest, SixteenBitGrayIsScaledNotWhite) {
  cv::Mat gray16(64, 80, CV_16UC1);
  for (int y = 0; y < gray16.rows; ++y)
    for (int x = 0; x < gray16.cols; ++x) gray16.at<uint16_t>(y, x) = static_cast<uint16_t>(x * 800);
  const fs::path png = dir_ / "depth.png";
  ASSERT_TRUE(cv::imwrite(png.string(), gray16));
  const fs::path out = dir_ / "out";
  RunResult r = run_cli({"detect", "-m", bundled_model().string(), "--output-dir", out.string(), "--json",
                         (dir_ / "r.json").string(), "-q", png.string()},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  json j = json::parse(slurp(dir_ / "r.json"))[0];
  EXPECT_EQ(j["decode"]["bit_depth"], 16);
  EXPECT_EQ(j["decode"]["scaled_from_16bit"], true);
  // The drawn copy shows the ramp (no detections are expected on a ramp).
  cv::Mat drawn = cv::imread((out / "depth.png").string(), cv::IMREAD_GRAYSCALE);
  ASSERT_FALSE(drawn.empty());
  EXPECT_LT(drawn.at<uint8_t>(60, 1), 10);     // 800 / 65535 * 255 ~ 3
  EXPECT_GT(drawn.at<uint8_t>(60, 78), 200);   // 62400 -> ~243
}

// ---------------------------------------------------------------------------
// 5. Ctrl-C keeps the work done
// ---------------------------------------------------------------------------

TEST_F(CliTest, InterruptedDetectWritesValidJson) {
  const fs::path in = dir_ / "in";
  fs::create_directories(in);
  for (int i = 0; i < 400; ++i) fs::create_hard_link(bundled_image(), in / ("img" + std::to_string(1000 + i) + ".jpg"));
  const fs::path js = dir_ / "r.json";
  pid_t pid = spawn_cli({"detect", "-m", bundled_model().string(), "--no-draw", "--json", js.string(), in.string()}, dir_);
  ASSERT_GT(pid, 0);
  // Interrupt once a few images are done (each prints a line).
  ASSERT_TRUE(wait_until([&] { return count_lines(slurp(dir_ / "stdout.txt"), "\n") >= 3; }, 60));
  ::kill(pid, SIGINT);
  EXPECT_EQ(wait_exit_code(pid), 130) << slurp(dir_ / "stderr.txt");
  json j = json::parse(slurp(js));  // whole, valid JSON
  ASSERT_EQ(j.size(), 400u) << "every input accounted for";
  int done = 0, not_done = 0;
  for (const json& e : j) (e.contains("detections") ? done : not_done) += 1;
  EXPECT_GE(done, 3);
  EXPECT_GT(not_done, 0);
  EXPECT_NE(slurp(dir_ / "stderr.txt").find("interrupted"), std::string::npos);
  EXPECT_TRUE(hidden_temp_files(dir_).empty());
}

TEST_F(CliTest, InterruptedVideoIsPlayable) {
  const fs::path in = dir_ / "long.mp4", out = dir_ / "out.mp4", jl = dir_ / "f.jsonl";
  const std::string cmd = "ffmpeg -loglevel error -f lavfi -i testsrc=size=160x120:rate=25 -t 40 -c:v mpeg4 -y " +
                          quote(in.string());
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  pid_t pid = spawn_cli({"video", "-m", model(), in.string(), "-o", out.string(), "--jsonl", jl.string()}, dir_);
  ASSERT_GT(pid, 0);
  // The JSONL grows under its temporary name; interrupt after a few frames.
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& t : hidden_temp_files(dir_))
          if (t.extension() == ".jsonl" && count_lines(slurp(t), "\n") >= 5) return true;
        return false;
      },
      60));
  ::kill(pid, SIGINT);
  EXPECT_EQ(wait_exit_code(pid), 130) << slurp(dir_ / "stderr.txt");
  const size_t lines = read_jsonl(jl).size();
  EXPECT_GE(lines, 5u);
  EXPECT_LT(lines, 1000u);
  cv::VideoCapture cap(out.string(), cv::CAP_FFMPEG);
  ASSERT_TRUE(cap.isOpened()) << "the interrupted video must be playable";
  size_t n = 0;
  for (cv::Mat f; cap.read(f);) ++n;
  EXPECT_EQ(n, lines);
  EXPECT_TRUE(hidden_temp_files(dir_).empty());
}

// ---------------------------------------------------------------------------
// 6. Labels travel with the model
// ---------------------------------------------------------------------------

TEST_F(CliTest, BundledModelNamesItsClassesItself) {
  RunResult r = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "--top", "3", bundled_image().string()}, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.find("class5"), std::string::npos) << r.out;
  EXPECT_TRUE(r.out.find("ring") != std::string::npos || r.out.find("glyph_Z") != std::string::npos) << r.out;
  // The names are in the model file itself: a copy alone still has them.
  fs::copy_file(bundled_model(), dir_ / "alone.onnx");
  RunResult info = run_cli({"info", "-m", (dir_ / "alone.onnx").string()}, dir_);
  ASSERT_EQ(info.rc, 0) << info.err;
  EXPECT_NE(info.out.find("classes:    10, names from model metadata"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("9:glyph_Z"), std::string::npos) << info.out;
}

TEST_F(CliTest, LabelsFileBesideTheModelIsFound) {
  // A fixture model (80 classes, no metadata) with a .names file beside it.
  fs::copy_file(model(), dir_ / "m.onnx");
  {
    std::ofstream f(dir_ / "m.names");
    for (int i = 0; i < 80; ++i) f << "thing" << i << "\n";
  }
  RunResult info = run_cli({"info", "-m", (dir_ / "m.onnx").string(), "--json"}, dir_);
  ASSERT_EQ(info.rc, 0) << info.err;
  json j = json::parse(info.out);
  EXPECT_EQ(j["classes"][79], "thing79");
  EXPECT_EQ(j["class_names_source"], "file beside the model");
  // Without it: COCO's names for 80 classes.
  RunResult coco = run_cli({"info", "-m", model(), "--json"}, dir_);
  EXPECT_EQ(json::parse(coco.out)["classes"][0], "person");
}

// ---------------------------------------------------------------------------
// 7. Defaults for people, exact values on request
// ---------------------------------------------------------------------------

TEST_F(CliTest, DefaultsArePeoplesAndOfficialIsExact) {
  const fs::path a = dir_ / "a.json", b = dir_ / "b.json", c = dir_ / "c.json";
  ASSERT_EQ(run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "-q", "--json", a.string(), bundled_image().string()}, dir_).rc, 0);
  ASSERT_EQ(run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "-q", "--official", "--json", b.string(),
                     bundled_image().string()}, dir_).rc, 0);
  ASSERT_EQ(run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "-q", "--official", "--full-precision",
                     "--json", c.string(), bundled_image().string()}, dir_).rc, 0);
  const json people = json::parse(slurp(a))[0]["detections"];
  const json official = json::parse(slurp(b))[0]["detections"];
  const json exact = json::parse(slurp(c))[0]["detections"];
  EXPECT_GE(people.size(), 4u);
  EXPECT_LE(people.size(), 12u) << "the demo scene has 6 objects";
  for (const json& d : people) EXPECT_GE(d["score"].get<double>(), 0.25);
  EXPECT_GT(official.size(), 100u) << "the official pipeline keeps down to 0.03 (nano)";
  ASSERT_EQ(official.size(), exact.size());
  // Rounded: boxes to 0.01 px, scores to 1e-4; no 17-digit floats.
  const std::string text = official.dump() + json::parse(slurp(b))[0]["timings_ms"].dump();
  EXPECT_FALSE(std::regex_search(text, std::regex("\\.\\d{5,}"))) << text.substr(0, 400);
  for (size_t i = 0; i < official.size(); ++i) {
    EXPECT_NEAR(official[i]["score"].get<double>(), exact[i]["score"].get<double>(), 5e-5 + 1e-12);
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(official[i]["box"][k].get<double>(), exact[i]["box"][k].get<double>(), 0.005 + 1e-9);
  }
  EXPECT_TRUE(std::regex_search(exact.dump(), std::regex("\\.\\d{6,}")));
}

// ---------------------------------------------------------------------------
// 8. Labels never hide each other
// ---------------------------------------------------------------------------

TEST(LabelLayout, NoLabelCoversAnotherAndAllStayInTheImage) {
  // Twelve nearly identical boxes (the "circle" / "hexagon" case, many times
  // over) and a few scattered ones.
  std::vector<cv::Rect> boxes;
  std::vector<cv::Size> sizes;
  for (int i = 0; i < 12; ++i) boxes.emplace_back(80 + i % 2, 40 + i % 3, 20, 22), sizes.emplace_back(70, 12);
  boxes.emplace_back(0, 0, 50, 50), sizes.emplace_back(60, 12);
  boxes.emplace_back(300, 200, 40, 40), sizes.emplace_back(70, 12);
  const cv::Size frame(320, 240);
  const auto spots = damoyolo::cli::layout_labels(boxes, sizes, frame);
  ASSERT_EQ(spots.size(), boxes.size());
  std::vector<cv::Rect> placed;
  for (size_t i = 0; i < spots.size(); ++i) {
    if (!spots[i]) continue;
    EXPECT_EQ((*spots[i] & cv::Rect(0, 0, frame.width, frame.height)), *spots[i]) << i;
    EXPECT_EQ(spots[i]->size(), sizes[i]);
    for (const cv::Rect& q : placed) EXPECT_EQ((*spots[i] & q).area(), 0) << "label " << i << " covers another";
    placed.push_back(*spots[i]);
  }
  // The most confident label sits right above its box; the scattered boxes
  // keep theirs; the crowd keeps as many as fit beside its boxes.
  EXPECT_EQ(*spots[0], cv::Rect(80, 28, 70, 12));
  EXPECT_TRUE(spots[12].has_value());
  EXPECT_TRUE(spots[13].has_value());
  EXPECT_GE(placed.size(), 5u);  // 3 of the crowd: the rows from above its boxes to their bottom
  // Every label stays by its own box (never slid away to name another).
  for (size_t i = 0; i < spots.size(); ++i)
    if (spots[i]) {
      EXPECT_GE(spots[i]->y, boxes[i].y - sizes[i].height) << i;
      EXPECT_LE(spots[i]->y, boxes[i].y + boxes[i].height) << i;
    }
}

TEST(LabelLayout, ACrowdedThumbnailDropsLabelsRatherThanStackingThem) {
  std::vector<cv::Rect> boxes(50, cv::Rect(10, 10, 30, 30));
  std::vector<cv::Size> sizes(50, cv::Size(60, 14));
  const auto spots = damoyolo::cli::layout_labels(boxes, sizes, cv::Size(110, 105));
  int n = 0;
  for (const auto& s : spots) n += s.has_value();
  EXPECT_GT(n, 0);
  EXPECT_LE(n, 105 / 14) << "no more labels than fit the height";
}

// ---------------------------------------------------------------------------
// 9. A command line that helps
// ---------------------------------------------------------------------------

TEST_F(CliTest, MistypedCommandGetsASuggestion) {
  RunResult r = run_cli({"detct", "-m", "x.onnx"}, dir_);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("did you mean 'detect'?"), std::string::npos) << r.err;
}

TEST_F(CliTest, BadNumbersAreExplainedAndUsageErrorsExit2) {
  RunResult top = run_cli({"detect", "-m", model(), "--top", "-3", image("chelsea.png")}, dir_);
  EXPECT_EQ(top.rc, 2);
  EXPECT_NE(top.err.find("whole number"), std::string::npos) << top.err;
  EXPECT_FALSE(std::regex_search(top.err, std::regex("\\d{20,}"))) << top.err;
  RunResult conf = run_cli({"detect", "-m", model(), "--conf", "abc", image("chelsea.png")}, dir_);
  EXPECT_EQ(conf.rc, 2);
  EXPECT_NE(conf.err.find("'abc' is not a number"), std::string::npos) << conf.err;
  RunResult unknown = run_cli({"detect", "--frobnicate"}, dir_);
  EXPECT_EQ(unknown.rc, 2);
}

TEST_F(CliTest, HelpShowsDefaultsAndExitCodes) {
  RunResult r = run_cli({"detect", "--help"}, dir_);
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("0.25"), std::string::npos) << r.out;      // --conf
  EXPECT_NE(r.out.find("=out"), std::string::npos) << r.out;      // --output-dir
  RunResult top = run_cli({"--help"}, dir_);
  EXPECT_NE(top.out.find("Exit status"), std::string::npos) << top.out;
}

TEST_F(CliTest, TooManyThreadsAreCappedWithAWarning) {
  RunResult r = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "-q", "--threads", "1000",
                         bundled_image().string()},
                        dir_);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("--threads 1000 is more than the"), std::string::npos) << r.err;
}

TEST_F(CliTest, QuietMeansQuietAndSkippedFilesAreNamed) {
  const fs::path in = dir_ / "in";
  fs::create_directories(in);
  fs::copy_file(bundled_image(), in / "demo.jpg");
  std::ofstream(in / "notes.txt") << "not an image";
  fs::copy_file(bundled_image(), in / "photo.webp");  // an extension detect does not read from folders
  RunResult r = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "-q", "--timings", in.string()}, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(r.out.empty()) << "-q printed: " << r.out;
  EXPECT_NE(r.err.find("skipped 2 file(s)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("notes.txt"), std::string::npos) << r.err;
}

TEST_F(CliTest, ClassNamesMatchIgnoringCase) {
  const fs::path js = dir_ / "r.json";
  RunResult r = run_cli({"detect", "-m", bundled_model().string(), "--no-draw", "-q", "--classes", "Ring,GLYPH_z",
                         "--json", js.string(), bundled_image().string()},
                        dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json dets = json::parse(slurp(js))[0]["detections"];
  ASSERT_FALSE(dets.empty());
  for (const json& d : dets) EXPECT_TRUE(d["class_name"] == "ring" || d["class_name"] == "glyph_Z") << d.dump();
}

TEST_F(CliTest, OneMeaningPerOptionName) {
  // -o is an output file (video); detect's folder is --output-dir only.
  RunResult r = run_cli({"detect", "-m", bundled_model().string(), "-o", (dir_ / "x").string(), bundled_image().string()}, dir_);
  EXPECT_EQ(r.rc, 2);
  RunResult run = run_cli({"run", "--help"}, dir_);
  EXPECT_NE(run.out.find("--output-dir"), std::string::npos) << run.out;
}

}  // namespace
