// `damoyolo info` and `bench` report the SIMD level the kernels run at, and
// DAMOYOLO_ISA in the environment lowers it (common/cpu_features.h).
#include <cstdlib>
#include <thread>

#include "cli_util.h"
#include "common/cpu_features.h"

namespace {

using namespace cli_test;

fs::path bundled() { return damoyolo::testing::source_dir() / "models" / "damoyolo_demo.onnx"; }

// Runs the CLI with DAMOYOLO_ISA set (or unset: nullptr) for that one child.
// This process has fixed its own level already (the first isa_level() reads
// the variable once), so setting it here changes nothing in it.
RunResult run_with_isa(const char* value, const std::vector<std::string>& args, const fs::path& dir) {
  (void)damoyolo::cpu::isa_level();
  const char* old = std::getenv("DAMOYOLO_ISA");
  const std::string saved = old ? old : "";
  if (value) setenv("DAMOYOLO_ISA", value, 1);
  else unsetenv("DAMOYOLO_ISA");
  RunResult r = run_cli(args, dir);
  if (old) setenv("DAMOYOLO_ISA", saved.c_str(), 1);
  else unsetenv("DAMOYOLO_ISA");
  return r;
}

TEST_F(CliTest, InfoReportsTheSimdLevelAndDamoyoloIsaLowersIt) {
  const std::string best = damoyolo::cpu::isa_level_name(damoyolo::cpu::cpu_isa_level());
  RunResult r = run_with_isa(nullptr, {"info", "-m", bundled().string(), "--json"}, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["simd"]["level"], best);
  EXPECT_EQ(j["simd"]["cpu"], best);
  EXPECT_EQ(j["simd"]["DAMOYOLO_ISA"], "");

  r = run_with_isa("scalar", {"info", "-m", bundled().string(), "--json"}, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["simd"]["level"], "scalar");
  EXPECT_EQ(j["simd"]["cpu"], best);
  EXPECT_EQ(j["simd"]["DAMOYOLO_ISA"], "scalar");
  EXPECT_EQ(r.err, "");

  r = run_with_isa("scalar", {"info", "-m", bundled().string()}, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("simd:       scalar (DAMOYOLO_ISA=scalar; this CPU: " + best + ")\n"), std::string::npos)
      << r.out;

  // An unknown value: the CPU's best, and one warning line that says so.
  r = run_with_isa("sse9", {"info", "-m", bundled().string(), "--json"}, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["simd"]["level"], best);
  EXPECT_NE(r.err.find("damoyolo: DAMOYOLO_ISA=sse9 is not one of scalar, avx2, avx512, auto"), std::string::npos)
      << r.err;
}

TEST_F(CliTest, BenchReportsTheSimdLevel) {
  RunResult r = run_with_isa("scalar", {"bench", "-m", bundled().string(), "--iters", "1", "--warmup", "0",
                                        "--no-peak", "--json"}, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["simd"], "scalar");
}

}  // namespace

namespace {
// The INT8 dot-product peak beside the FMA one: on a CPU with AMX-INT8 (and
// the OS's permission) or AVX512-VNNI it is measured, and it is far above the
// FP32 FMA peak (AMX: about 29x on the Xeon here, 12.56 TOP/s against 434 GFLOP/s; VNNI: 4x by the lanes).
TEST_F(CliTest, BenchMeasuresTheInt8PeakOnTheDotProductUnits) {
  RunResult r = run_cli({"bench", "-m", bundled().string(), "--iters", "1", "--warmup", "0", "--json"}, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  const auto& f = damoyolo::cpu::cpu_features();
  if (f.amx_int8 && damoyolo::cpu::request_amx()) {
    EXPECT_EQ(j["int8_unit"], "amx");
  } else if (f.avx512vnni) {
    EXPECT_EQ(j["int8_unit"], "avx512_vnni");
  } else {
    EXPECT_EQ(j["int8_unit"], "");
    EXPECT_EQ(j["int8_peak_gops"], 0);
    return;
  }
  EXPECT_GT(j["int8_peak_gops"].get<double>(), 2.0 * j["fma_peak_gflops"].get<double>());
  // A float model: no INT8 convolution, measured against the FMA peak only.
  EXPECT_EQ(j["int8_convolutions"], 0);
  EXPECT_EQ(j["fraction_of_int8_peak"], 0.0);
}

// A quantised model is measured against the INT8 peak: `bench` counts the
// plan's INT8 convolutions and reports the fraction of that peak.
TEST_F(CliTest, BenchMeasuresAQuantisedModelAgainstTheInt8Peak) {
  const auto& f = damoyolo::cpu::cpu_features();
  if (!f.avx512vnni && !f.amx_int8) GTEST_SKIP() << "no INT8 dot-product unit on this CPU";
  const std::string q = (dir_ / "q.onnx").string();
  RunResult qr = run_cli({"quantize", "-m", bundled().string(), "--calib", (damoyolo::testing::source_dir() / "models").string(),
                          "-o", q}, dir_);
  ASSERT_EQ(qr.rc, 0) << qr.err;
  RunResult r = run_cli({"bench", "-m", q, "--iters", "2", "--warmup", "1", "--json"}, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["int8_convolutions"], 91);
  EXPECT_GT(j["fraction_of_int8_peak"].get<double>(), 0.0);
  EXPECT_LT(j["fraction_of_int8_peak"].get<double>(), 1.0);
  EXPECT_NEAR(j["fraction_of_int8_peak"].get<double>(),
              j["achieved_gflops"].get<double>() / j["int8_peak_gops"].get<double>(), 1e-9);
}
}  // namespace

namespace {
// `bench --batch 2` on 2 threads puts one image on each thread
// (images_on_threads) and says so; --disable images_on_threads does not.
TEST_F(CliTest, BenchSaysWhenImagesRunOnThreads) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs 2 cores";
  const std::vector<std::string> base = {"bench", "-m", bundled().string(), "--batch", "2", "--threads", "2",
                                         "--iters", "1", "--warmup", "0", "--no-peak"};
  std::vector<std::string> args = base;
  args.push_back("--json");
  RunResult r = run_cli(args, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["images_on_threads"], true) << r.out;
  args.insert(args.end(), {"--disable", "images_on_threads"});
  r = run_cli(args, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["images_on_threads"], false) << r.out;
  r = run_cli(base, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("parallel     images on threads (2 images at once, one thread each)"), std::string::npos)
      << r.out;
}
}  // namespace
