// What may run on several threads at once, run on several threads at once:
// Session::run from many threads on one Session (its documented contract),
// on both engines; sessions loaded in parallel (first use of the kernel
// registry and of oneDNN's caches); one Detector per thread, sharing nothing.
// Each result must equal the one computed alone. Small and quick, so that
// scripts/sanitize.sh also runs it under ThreadSanitizer (build-tsan,
// OMP_NUM_THREADS=1; docs/fuzzing.md). ctest label: concurrency.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "damoyolo/detector.h"
#include "damoyolo/session.h"
#include "testutil/model_builder.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

constexpr int kThreads = 4;

std::string demo_model() { return (testing::source_dir() / "models" / "damoyolo_demo.onnx").string(); }

// Conv -> Relu -> Add(residual) -> Sigmoid -> Reshape -> Softmax: a little of
// everything the reference engine runs, small enough for TSan.
std::string small_model() {
  testing::ModelBuilder b;
  std::vector<float> w(4 * 3 * 3 * 3), bias(4);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.37f * static_cast<float>(i));
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.1f * static_cast<float>(i);
  b.input("x", {1, 3, 16, 16})
      .output("y", {1, 4, 256})
      .init_f32("w", {4, 3, 3, 3}, w)
      .init_f32("b", {4}, bias)
      .init_f32("c", {4, 1, 1}, {0.5f, -0.5f, 1.f, 0.f})
      .init_i64("shape", {3}, {1, 4, 256});
  auto& conv = b.node("Conv", {"x", "w", "b"}, {"conv"});
  testing::ModelBuilder::attr_ints(conv, "kernel_shape", {3, 3});
  testing::ModelBuilder::attr_ints(conv, "pads", {1, 1, 1, 1});
  b.node("Relu", {"conv"}, {"relu"});
  b.node("Add", {"relu", "c"}, {"add"});
  b.node("Sigmoid", {"add"}, {"sig"});
  b.node("Reshape", {"sig", "shape"}, {"r"});
  auto& sm = b.node("Softmax", {"r"}, {"y"});
  testing::ModelBuilder::attr_int(sm, "axis", -1);
  return b.bytes();
}

Tensor random_input(const Shape& shape, unsigned seed) {
  Tensor t(DType::kFloat32, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 255.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

// Largest absolute difference over all outputs (infinity on a shape mismatch).
double max_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].numel() != b[i].numel()) return INFINITY;
    for (int64_t k = 0; k < a[i].numel(); ++k)
      d = std::max(d, std::fabs(double(a[i].data<float>()[k]) - b[i].data<float>()[k]));
  }
  return d;
}

// Runs `session` from kThreads threads, each `runs` times on input t % inputs.size(),
// and checks every result against the input's result computed alone.
void run_concurrently(const Session& session, const std::vector<Tensor>& inputs, int runs, double tolerance) {
  std::vector<std::vector<Tensor>> alone;
  for (const auto& in : inputs) {
    auto r = session.run({in});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    alone.push_back(std::move(*r));
  }
  std::vector<std::vector<std::vector<Tensor>>> got(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      const Tensor& in = inputs[t % inputs.size()];
      for (int r = 0; r < runs; ++r) {
        if (r % 2 == 0) {
          auto out = session.run({in});
          if (!out.ok()) {
            errors[t] = out.status().to_string();
            return;
          }
          got[t].push_back(std::move(*out));
        } else {  // the preallocated form, same pool of contexts
          std::vector<Tensor> out = session.make_outputs();
          Status s = session.run_into({in}, out);
          if (!s.ok()) {
            errors[t] = s.to_string();
            return;
          }
          got[t].push_back(std::move(out));
        }
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(errors[t], "") << "thread " << t;
    ASSERT_EQ(got[t].size(), static_cast<size_t>(runs)) << "thread " << t;
    for (int r = 0; r < runs; ++r)
      EXPECT_LE(max_diff(got[t][r], alone[t % inputs.size()]), tolerance) << "thread " << t << " run " << r;
  }
}

// First in the file: in a fresh process (ctest runs each test alone) this is
// the first load, so lazily built global state is built by several threads.
TEST(Concurrency, SessionsLoadInParallel) {
  const std::string bytes = small_model();
  std::vector<std::string> errors(kThreads);
  std::vector<std::vector<Tensor>> outs(kThreads);
  const Tensor in = random_input({1, 3, 16, 16}, 7);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      SessionOptions o;
      o.engine = t % 2 ? Engine::kReference : Engine::kOptimized;
      o.threads = 1;
      auto s = Session::load_from_memory(bytes.data(), bytes.size(), o);
      if (!s.ok()) {
        errors[t] = s.status().to_string();
        return;
      }
      auto r = s->run({in});
      if (!r.ok()) {
        errors[t] = r.status().to_string();
        return;
      }
      outs[t] = std::move(*r);
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) ASSERT_EQ(errors[t], "") << "thread " << t;
  for (int t = 1; t < kThreads; ++t) EXPECT_LE(max_diff(outs[t], outs[0]), 1e-5) << "thread " << t;
}

TEST(Concurrency, ReferenceEngineRunsFromSeveralThreads) {
  const std::string bytes = small_model();
  SessionOptions o;
  o.engine = Engine::kReference;
  o.threads = 1;
  auto s = Session::load_from_memory(bytes.data(), bytes.size(), o);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  run_concurrently(*s, {random_input({1, 3, 16, 16}, 1), random_input({1, 3, 16, 16}, 2)}, 4, 0.0);
}

TEST(Concurrency, OptimizedEngineRunsFromSeveralThreads) {
  SessionOptions o;
  o.engine = Engine::kOptimized;
  o.threads = 1;
  auto s = Session::load(demo_model(), o);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  const Shape shape = s->inputs()[0].dims;
  run_concurrently(*s, {random_input(shape, 1), random_input(shape, 2)}, 2, 1e-5);
}

TEST(Concurrency, DetectorsInSeveralThreadsShareNothing) {
  DetectorOptions o;
  o.session.threads = 1;
  auto file = testing::read_file(testing::source_dir() / "models" / "demo.jpg");
  auto img = decode_image(file.data(), file.size());
  ASSERT_TRUE(img.ok()) << img.status().to_string();
  std::vector<Detection> alone;
  {
    auto det = Detector::create(demo_model(), o);
    ASSERT_TRUE(det.ok()) << det.status().to_string();
    auto r = det->detect(img->view());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    alone = r->detections;
  }
  ASSERT_FALSE(alone.empty());
  std::vector<std::string> errors(kThreads);
  std::vector<std::vector<Detection>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      auto det = Detector::create(demo_model(), o);
      if (!det.ok()) {
        errors[t] = det.status().to_string();
        return;
      }
      auto r = det->detect(img->view());
      if (!r.ok()) {
        errors[t] = r.status().to_string();
        return;
      }
      got[t] = r->detections;
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(errors[t], "") << "thread " << t;
    ASSERT_EQ(got[t].size(), alone.size()) << "thread " << t;
    for (size_t i = 0; i < alone.size(); ++i) {
      EXPECT_EQ(got[t][i].class_id, alone[i].class_id) << "thread " << t << " detection " << i;
      EXPECT_NEAR(got[t][i].score, alone[i].score, 1e-5) << "thread " << t << " detection " << i;
      EXPECT_NEAR(got[t][i].x1, alone[i].x1, 1e-3) << "thread " << t << " detection " << i;
      EXPECT_NEAR(got[t][i].y2, alone[i].y2, 1e-3) << "thread " << t << " detection " << i;
    }
  }
}

}  // namespace
}  // namespace damoyolo
