// The optimised engine against the golden ONNX Runtime outputs and against the
// reference engine: all fixture models, every optimisation switch off vs on,
// batch, bf16, threads, and the no-allocation steady state.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <random>
#include <thread>

#include "damoyolo/session.h"
#include "graph/passes/passes.h"
#include "kernels/reference/registry.h"
#include "onnx/onnx_loader.h"
#include "runtime/executor.h"
#include "testutil/model_builder.h"
#include "testutil/alloc_counter.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

using testing::fixtures_dir;

std::string model_path(const std::string& m) { return (fixtures_dir() / "models" / (m + ".onnx")).string(); }

Tensor golden_input(const std::string& model, const std::string& image = "chelsea_png", int64_t batch = 1) {
  auto u8 = testing::read_file(fixtures_dir() / "golden" / model / image / "input.u8");
  const int64_t s = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(u8.size() / 3))));
  Tensor t(DType::kFloat32, {batch, 3, s, s});
  for (int64_t b = 0; b < batch; ++b)
    for (size_t i = 0; i < u8.size(); ++i) t.data<float>()[b * u8.size() + i] = u8[i];
  return t;
}

std::vector<float> golden_output(const std::string& model, int idx, const std::string& image = "chelsea_png") {
  return testing::read_f32(fixtures_dir() / "golden" / model / image / ("out" + std::to_string(idx) + ".f32"));
}

Session load(const std::string& model, SessionOptions o) {
  auto s = Session::load(model_path(model), o);
  if (!s.ok()) throw std::runtime_error(s.status().to_string());
  return std::move(*s);
}

std::vector<Tensor> run(const Session& s, const Tensor& in) {
  auto r = s.run({in});
  if (!r.ok()) throw std::runtime_error(r.status().to_string());
  return std::move(*r);
}

// Error of `got` against `want` for output `idx` of `model`, under the
// fixture README's rules: scores (sigmoid maps) absolute, boxes absolute px,
// raw regression logits relative to max(1,|v|). Returns (error, bound).
std::pair<double, double> output_error(const std::string& model, int idx, const float* got, const float* want,
                                       size_t n) {
  const bool benchmark = model.find("benchmark") != std::string::npos;
  const bool logits = benchmark && idx >= 3;
  const bool boxes = !benchmark && idx == 1;
  double err = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = std::fabs(double(got[i]) - want[i]);
    if (logits) d /= std::max(1.0, std::fabs(double(want[i])));
    if (std::isnan(got[i])) d = INFINITY;
    err = std::max(err, d);
  }
  return {err, boxes ? 0.05 : logits ? 1e-4 : 1e-5};
}

void expect_matches_golden(const std::string& model, const std::vector<Tensor>& out, const std::string& what,
                           const std::string& image = "chelsea_png", double scale = 1.0) {
  for (size_t i = 0; i < out.size(); ++i) {
    auto want = golden_output(model, static_cast<int>(i), image);
    ASSERT_EQ(static_cast<size_t>(out[i].numel()), want.size()) << model << " output " << i;
    auto [err, bound] = output_error(model, static_cast<int>(i), out[i].data<float>(), want.data(), want.size());
    EXPECT_LE(err, bound * scale) << model << " output " << i << " (" << what << ")";
  }
}

class FixtureModels : public ::testing::TestWithParam<const char*> {};

TEST_P(FixtureModels, OptimizedMatchesGolden) {
  const std::string m = GetParam();
  SessionOptions o;
  o.engine = Engine::kOptimized;
  Session s = load(m, o);
  ASSERT_EQ(s.engine(), Engine::kOptimized);
  for (const char* image : {"chelsea_png", "astronaut_png"}) {
    auto out = run(s, golden_input(m, image));
    expect_matches_golden(m, out, "default switches", image);
    for (size_t i = 0; i < out.size(); ++i) {
      auto want = golden_output(m, static_cast<int>(i), image);
      auto [err, bound] = output_error(m, static_cast<int>(i), out[i].data<float>(), want.data(), want.size());
      std::printf("[parity] %s %s out%zu max err %.3g (bound %.3g)\n", m.c_str(), image, i, err, bound);
    }
  }
  std::printf("[arena] %s %zu bytes\n", m.c_str(), s.arena_bytes());
}

// Every session switch off, one at a time (the table's rows, so a new switch
// is covered without touching this test), and all of them at once, must give
// the same outputs.
TEST_P(FixtureModels, EverySwitchOffMatchesGolden) {
  const std::string m = GetParam();
  const Tensor in = golden_input(m);
  for (const OptimizationSwitch& sw : optimization_switches(OptimizationScope::kSession)) {
    SessionOptions o;
    o.engine = Engine::kOptimized;
    ASSERT_TRUE(set_optimization(o, sw, false)) << sw.name;
    Session s = load(m, o);
    ASSERT_EQ(s.engine(), Engine::kOptimized) << sw.name << " off";
    expect_matches_golden(m, run(s, in), std::string(sw.name) + " off");
  }
  SessionOptions all_off;
  all_off.engine = Engine::kOptimized;
  all_off.opt = OptimizationOptions::all_off();
  for (const OptimizationSwitch& sw : optimization_switches(OptimizationScope::kSession))
    ASSERT_FALSE(all_off.opt.*(sw.session_flag)) << sw.name;
  Session s = load(m, all_off);
  ASSERT_EQ(s.engine(), Engine::kOptimized);
  expect_matches_golden(m, run(s, in), "all off");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureModels,
                         ::testing::Values("damoyolo_T_640", "damoyolo_Ns_416", "damoyolo_Ns_416_benchmark"),
                         [](const auto& info) { return std::string(info.param); });

TEST(OptimizedEngine, ConstantFoldingOffRunsTheShapeArithmeticAndMatchesGolden) {
  // Ns_416 is an unsimplified export: with folding off its Shape -> Slice ->
  // Concat -> Reshape arithmetic stays in the graph and runs at inference, yet
  // the optimised engine still compiles it (shapes stay static) and the
  // outputs are the golden ones.
  const std::string m = "damoyolo_Ns_416";
  SessionOptions on;
  on.engine = Engine::kOptimized;
  SessionOptions off = on;
  ASSERT_TRUE(set_optimization(off, "constant_folding", false));
  Session folded = load(m, on), unfolded = load(m, off);
  ASSERT_EQ(unfolded.engine(), Engine::kOptimized);
  const auto& h_on = folded.summary().op_histogram;
  const auto& h_off = unfolded.summary().op_histogram;
  EXPECT_EQ(h_on.count("Shape"), 0u);
  ASSERT_EQ(h_off.count("Shape"), 1u);
  EXPECT_EQ(h_off.at("Shape"), unfolded.summary().op_histogram_original.at("Shape"));
  EXPECT_GT(h_off.at("Slice"), h_on.at("Slice"));
  EXPECT_GT(h_off.at("Concat"), h_on.at("Concat"));
  EXPECT_EQ(h_off.count("Constant"), 0u);  // literals become constants either way
  EXPECT_EQ(unfolded.outputs()[0].dims, folded.outputs()[0].dims);
  EXPECT_EQ(unfolded.outputs()[1].dims, folded.outputs()[1].dims);
  for (const char* image : {"chelsea_png", "astronaut_png"})
    expect_matches_golden(m, run(unfolded, golden_input(m, image)), "constant_folding off", image);
  // The reference engine keeps the same nodes and gives the same outputs.
  off.engine = Engine::kReference;
  Session reference = load(m, off);
  EXPECT_EQ(reference.summary().op_histogram, h_off);
  expect_matches_golden(m, run(reference, golden_input(m)), "constant_folding off, reference engine");
}

TEST(OptimizedEngine, MatchesReferenceEngine) {
  // The reference engine is slow on T_640; the Ns graph covers the same ops
  // (plus the unsimplified shape arithmetic) and runs once.
  const std::string m = "damoyolo_Ns_416";
  SessionOptions ro;
  ro.engine = Engine::kReference;
  SessionOptions oo;
  oo.engine = Engine::kOptimized;
  const Tensor in = golden_input(m);
  auto ref = run(load(m, ro), in);
  auto opt = run(load(m, oo), in);
  ASSERT_EQ(ref.size(), opt.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    auto [err, bound] = output_error(m, static_cast<int>(i), opt[i].data<float>(), ref[i].data<float>(),
                                     static_cast<size_t>(ref[i].numel()));
    std::printf("[reference] %s out%zu max err %.3g\n", m.c_str(), i, err);
    EXPECT_LE(err, bound);
  }
}

TEST(OptimizedEngine, HeadIsFusedAndRunsWithoutFallback) {
  // Batch 2 on a batch-1 export only compiles when nothing needs the export's
  // batch-1 constants, i.e. the head is fused and no fallback remains.
  for (const char* m : {"damoyolo_T_640", "damoyolo_Ns_416"}) {
    SessionOptions o;
    o.engine = Engine::kOptimized;
    o.batch = 2;
    auto s = Session::load(model_path(m), o);
    ASSERT_TRUE(s.ok()) << m << ": " << s.status().to_string();
    EXPECT_EQ(s->inputs()[0].dims[0], 2);
  }
}

TEST(OptimizedEngine, Batch2EqualsTwoBatch1Runs) {
  const std::string m = "damoyolo_Ns_416";
  SessionOptions o;
  o.engine = Engine::kOptimized;
  Session one = load(m, o);
  o.batch = 2;
  Session two = load(m, o);
  Tensor a = golden_input(m, "chelsea_png"), b = golden_input(m, "astronaut_png");
  Tensor ab(DType::kFloat32, {2, a.dim(1), a.dim(2), a.dim(3)});
  std::memcpy(ab.data<float>(), a.data<float>(), a.nbytes());
  std::memcpy(ab.data<float>() + a.numel(), b.data<float>(), b.nbytes());
  auto ra = run(one, a), rb = run(one, b), rab = run(two, ab);
  for (size_t i = 0; i < ra.size(); ++i) {
    ASSERT_EQ(rab[i].numel(), 2 * ra[i].numel());
    for (int64_t k = 0; k < ra[i].numel(); ++k) {
      ASSERT_NEAR(rab[i].data<float>()[k], ra[i].data<float>()[k], 1e-5) << "output " << i << " item 0";
      ASSERT_NEAR(rab[i].data<float>()[ra[i].numel() + k], rb[i].data<float>()[k], 1e-5) << "output " << i << " item 1";
    }
  }
}

TEST(OptimizedEngine, NoHeapAllocationAfterWarmUp) {
  for (const char* m : {"damoyolo_Ns_416", "damoyolo_Ns_416_benchmark", "damoyolo_T_640"}) {
    graph::Graph g = onnx_io::load_onnx_file(model_path(m));
    graph::run_standard_passes(g, {}, kernels::ref::evaluator());
    SessionOptions o;
    o.engine = Engine::kOptimized;
    auto model = runtime::compile_optimized(g, o);
    auto ctx = model->create_context();
    std::vector<Tensor> in = {golden_input(m)};
    std::vector<Tensor> out;
    for (const auto& info : model->output_infos()) out.emplace_back(info.dtype, info.dims);
    ctx->run(in, out);  // warm-up: oneDNN JIT caches, OpenMP pool, prior cache
    ctx->run(in, out);
    const auto t0 = testing::allocation_totals();
    constexpr int kRuns = 3;
    for (int r = 0; r < kRuns; ++r) ctx->run(in, out);
    const auto t1 = testing::allocation_totals();
    const int64_t calls = t1.count - t0.count, bytes = t1.bytes - t0.bytes;
    std::printf("[alloc] %s: %lld allocations, %lld bytes per run (oneDNN's per-execute argument maps)\n", m,
                static_cast<long long>(calls / kRuns), static_cast<long long>(bytes / kRuns));
    // damoyolo allocates nothing per run; oneDNN 2.6 itself builds a small
    // std::unordered_map of arguments inside every primitive execution. No
    // tensor-sized buffer may appear: bound the bytes well below one activation.
    EXPECT_LT(bytes / kRuns, 256 * 1024) << m;
    expect_matches_golden(m, out, "context run");
  }
}

TEST(OptimizedEngine, ConcurrentRunsOnOneModel) {
  const std::string m = "damoyolo_Ns_416";
  SessionOptions o;
  o.engine = Engine::kOptimized;
  o.threads = 1;
  Session s = load(m, o);
  const Tensor a = golden_input(m, "chelsea_png"), b = golden_input(m, "coffee_png");
  std::vector<std::vector<Tensor>> results(4);
  std::vector<std::thread> th;
  for (int t = 0; t < 4; ++t)
    th.emplace_back([&, t] {
      for (int r = 0; r < 2; ++r) results[t] = run(s, t % 2 ? b : a);
    });
  for (auto& t : th) t.join();
  for (int t = 0; t < 4; ++t) expect_matches_golden(m, results[t], "concurrent", t % 2 ? "coffee_png" : "chelsea_png");
}

TEST(OptimizedEngine, Bf16ErrorIsBounded) {
  for (const char* m : {"damoyolo_Ns_416", "damoyolo_T_640"}) {
    SessionOptions o;
    o.engine = Engine::kOptimized;
    o.precision = Precision::kBF16;
    Session s = load(m, o);
    auto out = run(s, golden_input(m));
    double max_err[2] = {0, 0}, mean_err[2] = {0, 0};
    for (int i = 0; i < 2; ++i) {
      auto want = golden_output(m, i);
      for (size_t k = 0; k < want.size(); ++k) {
        double d = std::fabs(double(out[i].data<float>()[k]) - want[k]);
        max_err[i] = std::max(max_err[i], d);
        mean_err[i] += d;
      }
      mean_err[i] /= want.size();
    }
    std::printf("[bf16] %s scores max %.4f mean %.2e | boxes max %.3f px mean %.4f px\n", m, max_err[0], mean_err[0],
                max_err[1], mean_err[1]);
    // bf16 keeps 8 mantissa bits; through ~80 layers scores move by a few 1e-2
    // at worst and boxes by a few px. Loose bounds that still catch a broken path.
    EXPECT_LT(max_err[0], 0.15) << m;
    EXPECT_LT(mean_err[0], 5e-3) << m;
    EXPECT_LT(mean_err[1], 1.0) << m;
  }
}

// A small hand-built graph exercising each native step and fusion against
// the reference engine: Focus slices → concat → conv+SiLU → conv+residual+ReLU,
// maxpool, resize, concat, standalone sigmoid and scalar Mul.
TEST(OptimizedEngine, HandBuiltGraphMatchesReference) {
  testing::ModelBuilder mb(11);
  const int64_t C = 12;
  mb.input("x", {1, 3, 16, 16});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  auto rnd = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = u(rng);
    return v;
  };
  mb.init_f32("w1", {16, C, 3, 3}, rnd(16 * C * 9)).init_f32("b1", {16}, rnd(16));
  mb.init_f32("w2", {16, 16, 3, 3}, rnd(16 * 16 * 9)).init_f32("b2", {16}, rnd(16));
  mb.init_f32("w3", {16, 32, 1, 1}, rnd(16 * 32)).init_f32("b3", {16}, rnd(16));
  mb.init_f32("scale", {}, {0.75f});
  // Focus: x[..., ::2, ::2] etc., as torch exports it (two Slices per phase).
  mb.init_i64("s0", {1}, {0}).init_i64("s1", {1}, {1}).init_i64("big", {1}, {INT64_MAX});
  mb.init_i64("ax2", {1}, {2}).init_i64("ax3", {1}, {3}).init_i64("st2", {1}, {2});
  std::vector<std::string> phases;
  int k = 0;
  for (auto [r, c] : {std::pair{"s0", "s0"}, std::pair{"s1", "s0"}, std::pair{"s0", "s1"}, std::pair{"s1", "s1"}}) {
    std::string a = "fa" + std::to_string(k), b = "fb" + std::to_string(k);
    mb.node("Slice", {"x", r, "big", "ax2", "st2"}, {a});
    mb.node("Slice", {a, c, "big", "ax3", "st2"}, {b});
    phases.push_back(b);
    ++k;
  }
  auto& cat = mb.node("Concat", phases, {"focus"});
  testing::ModelBuilder::attr_int(cat, "axis", 1);
  auto conv = [&](const std::string& in, const std::string& w, const std::string& b, const std::string& out, int k) {
    auto& n = mb.node("Conv", {in, w, b}, {out});
    testing::ModelBuilder::attr_ints(n, "kernel_shape", {k, k});
    testing::ModelBuilder::attr_ints(n, "pads", {k / 2, k / 2, k / 2, k / 2});
  };
  conv("focus", "w1", "b1", "c1", 3);
  mb.node("Sigmoid", {"c1"}, {"c1s"});
  mb.node("Mul", {"c1", "c1s"}, {"y1"});  // SiLU
  conv("y1", "w2", "b2", "c2", 3);
  mb.node("Add", {"c2", "y1"}, {"r2"});
  mb.node("Relu", {"r2"}, {"y2"});
  auto& mp = mb.node("MaxPool", {"y2"}, {"p2"});
  testing::ModelBuilder::attr_ints(mp, "kernel_shape", {5, 5});
  testing::ModelBuilder::attr_ints(mp, "pads", {2, 2, 2, 2});
  testing::ModelBuilder::attr_ints(mp, "strides", {2, 2});
  mb.init_f32("roi", {0}, {}).init_f32("scales", {4}, {1, 1, 2, 2});
  auto& rs = mb.node("Resize", {"p2", "roi", "scales"}, {"u2"});
  auto sattr = [&](const char* key, const char* v) {
    auto* a = rs.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  };
  sattr("mode", "nearest");
  sattr("coordinate_transformation_mode", "asymmetric");
  sattr("nearest_mode", "floor");
  auto& cat2 = mb.node("Concat", {"u2", "y1"}, {"cat2"});
  testing::ModelBuilder::attr_int(cat2, "axis", 1);
  conv("cat2", "w3", "b3", "c3", 1);
  mb.node("Mul", {"c3", "scale"}, {"out"});
  mb.node("Sigmoid", {"y2"}, {"out2"});
  mb.output("out", {1, 16, 8, 8}).output("out2", {1, 16, 8, 8});
  const std::string bytes = mb.bytes();

  Tensor x(DType::kFloat32, {1, 3, 16, 16});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = u(rng) * 4;
  SessionOptions ro;
  ro.engine = Engine::kReference;
  auto ref_s = Session::load_from_memory(bytes.data(), bytes.size(), ro);
  ASSERT_TRUE(ref_s.ok()) << ref_s.status().to_string();
  auto ref = run(*ref_s, x);
  for (int variant = 0; variant < 3; ++variant) {
    SessionOptions oo;
    oo.engine = Engine::kOptimized;
    if (variant == 1) oo.opt = OptimizationOptions::all_off();
    if (variant == 2) oo.precision = Precision::kBF16;
    auto opt_s = Session::load_from_memory(bytes.data(), bytes.size(), oo);
    ASSERT_TRUE(opt_s.ok()) << opt_s.status().to_string();
    ASSERT_EQ(opt_s->engine(), Engine::kOptimized);
    auto opt = run(*opt_s, x);
    for (size_t i = 0; i < ref.size(); ++i) {
      double range = 0;
      for (int64_t e = 0; e < ref[i].numel(); ++e) range = std::max(range, std::fabs(double(ref[i].data<float>()[e])));
      // bf16 rounds every conv input to 8 mantissa bits: judge it relative to
      // the output's range; fp32 must agree to float rounding.
      const double tol = variant == 2 ? 0.03 * range : 1e-4;
      for (int64_t e = 0; e < ref[i].numel(); ++e)
        ASSERT_NEAR(opt[i].data<float>()[e], ref[i].data<float>()[e], tol)
            << "variant " << variant << " output " << i << " element " << e;
    }
  }
}

}  // namespace
}  // namespace damoyolo

namespace damoyolo {
namespace {

// Latency report for docs/engine.md (not a pass/fail test; timings are noisy
// on a shared machine). Run with:
//   build-dnnl/bin/test_engine --gtest_also_run_disabled_tests --gtest_filter='*Latency*'
TEST(OptimizedEngine, DISABLED_LatencyReport) {
  const int runs = std::getenv("DAMOYOLO_BENCH_RUNS") ? std::atoi(std::getenv("DAMOYOLO_BENCH_RUNS")) : 20;
  std::printf("| model | precision | engine | median ms | min ms | GFLOP/s (median) | arena MiB |\n|---|---|---|---|---|---|---|\n");
  for (const char* m : {"damoyolo_Ns_416", "damoyolo_Ns_416_benchmark", "damoyolo_T_640"}) {
    for (Precision p : {Precision::kFP32, Precision::kBF16}) {
      SessionOptions o;
      o.engine = Engine::kOptimized;
      o.precision = p;
      o.threads = 2;
      Session s = load(m, o);
      std::vector<Tensor> in = {golden_input(m)};
      std::vector<Tensor> out = s.make_outputs();
      for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.run_into(in, out).ok());
      std::vector<double> ms;
      for (int i = 0; i < runs; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        ASSERT_TRUE(s.run_into(in, out).ok());
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(ms.begin(), ms.end());
      const double med = ms[ms.size() / 2];
      std::printf("| %s | %s | optimized | %.2f | %.2f | %.1f | %.1f |\n", m, precision_name(p), med, ms[0],
                  s.summary().gflops() / (med * 1e-3), s.arena_bytes() / 1048576.0);
      o.opt.memory_planning = false;
      std::printf("|   (arena without reuse: %.1f MiB) |\n", load(m, o).arena_bytes() / 1048576.0);
    }
  }
}

}  // namespace
}  // namespace damoyolo
