// images_on_threads (damoyolo/optimizations.h): a batch of at least as many
// images as threads runs one image per thread, each through a plan compiled
// for one thread, in place in the batch's tensors. These tests pin down that
// the path is taken when it should be (and not otherwise), that its results
// are those of the ordinary path, that the plan it uses really is a
// one-thread plan, and that SessionOptions::threads = 1 really runs on one
// thread (it did not: the primitives were created for all cores).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "damoyolo/session.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

using testing::fixtures_dir;

std::string ns_model() { return (fixtures_dir() / "models" / "damoyolo_Ns_416.onnx").string(); }

// Different pixels per image, so a mix-up of images shows.
Tensor images(int64_t batch) {
  Tensor t(DType::kFloat32, {batch, 3, 416, 416});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>((i * 7 + i / 977 + i / 519168 * 31) % 256);
  return t;
}

Session load(int batch, int threads, bool on) {
  SessionOptions o;
  o.engine = Engine::kOptimized;
  o.batch = batch;
  o.threads = threads;
  o.opt.images_on_threads = on;
  auto s = Session::load(ns_model(), o);
  if (!s.ok()) throw std::runtime_error(s.status().to_string());
  return std::move(*s);
}

void expect_close(const std::vector<Tensor>& got, const std::vector<Tensor>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t o = 0; o < want.size(); ++o) {
    ASSERT_EQ(got[o].shape(), want[o].shape());
    const float* a = got[o].data<float>();
    const float* b = want[o].data<float>();
    // One thread or two, oneDNN may order a sum differently: rounding only.
    for (int64_t i = 0; i < want[o].numel(); ++i)
      ASSERT_LE(std::fabs(a[i] - b[i]), 1e-5f * std::max(1.f, std::fabs(b[i]))) << "output " << o << " at " << i;
  }
}

bool two_cores() { return omp_get_num_procs() >= 2; }

TEST(ImagesOnThreads, AFullBatchRunsOneImagePerThreadWithTheOrdinaryResults) {
  if (!two_cores()) GTEST_SKIP() << "needs 2 cores";
  Session on = load(4, 2, true), off = load(4, 2, false);
  EXPECT_TRUE(on.images_on_threads().enabled);
  EXPECT_FALSE(off.images_on_threads().enabled);
  const Tensor in = images(4);
  std::vector<Tensor> got = on.make_outputs(4), want = off.make_outputs(4);
  ASSERT_TRUE(on.run_into({in}, got).ok());
  ASSERT_TRUE(off.run_into({in}, want).ok());
  expect_close(got, want);
  const auto info = on.images_on_threads();
  EXPECT_EQ(info.runs, 1);
  EXPECT_TRUE(info.error.ok()) << info.error.to_string();
  // The plan it used: one image, primitives made for one thread.
  EXPECT_EQ(info.plan.batch, 1);
  EXPECT_EQ(info.plan.threads, 1);
  EXPECT_EQ(info.plan.fallbacks(), on.plan().fallbacks());
  EXPECT_NE(info.plan.to_text().find("batch 1, 1 thread(s)"), std::string::npos);
  EXPECT_EQ(off.images_on_threads().runs, 0);

  // run() (outputs allocated for the caller) takes it too, and again gives
  // the same numbers.
  auto again = on.run({in});
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  expect_close(*again, want);
  EXPECT_EQ(on.images_on_threads().runs, 2);
}

TEST(ImagesOnThreads, AnOddBatchRunsTheRestOnAllThreads) {
  if (!two_cores()) GTEST_SKIP() << "needs 2 cores";
  Session on = load(4, 2, true), off = load(4, 2, false);
  Tensor in4 = images(4);
  const Tensor in3 = Tensor::wrap(DType::kFloat32, {3, 3, 416, 416}, in4.raw());
  std::vector<Tensor> got = on.make_outputs(3), want = off.make_outputs(3);
  ASSERT_TRUE(on.run_into({in3}, got).ok());
  ASSERT_TRUE(off.run_into({in3}, want).ok());
  expect_close(got, want);
  EXPECT_EQ(on.images_on_threads().runs, 1);
  // Two images on the threads, the third through the batch-1 plan on both.
  EXPECT_EQ(on.compiled_batches(), (std::vector<int64_t>{1, 4}));
}

TEST(ImagesOnThreads, NotTakenForFewerImagesThanThreadsOrOneThread) {
  if (!two_cores()) GTEST_SKIP() << "needs 2 cores";
  Session on = load(4, 2, true);
  Tensor in4 = images(4);
  auto one = on.run({Tensor::wrap(DType::kFloat32, {1, 3, 416, 416}, in4.raw())});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(on.images_on_threads().runs, 0);
  EXPECT_TRUE(on.images_on_threads().plan.steps.empty());  // not even compiled

  Session single = load(4, 1, true);
  ASSERT_TRUE(single.run({in4}).ok());
  EXPECT_EQ(single.images_on_threads().runs, 0);  // one thread: nothing to put images on

  // A batch-1 session does not keep its graph for a second plan: never.
  Session b1 = load(1, 2, true);
  EXPECT_FALSE(b1.images_on_threads().enabled);
}

// /proc/self/task: the threads of this process.
int thread_count() {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

TEST(ImagesOnThreads, OneThreadSessionsStartNoOpenMpWorkers) {
  if (!two_cores()) GTEST_SKIP() << "needs 2 cores";
  const int before = thread_count();
  if (before != 1 || omp_get_max_threads() < 2)
    GTEST_SKIP() << "needs a fresh process (ctest runs each test alone); " << before << " threads already";
  Session s = load(1, 1, true);
  ASSERT_TRUE(s.run({images(1)}).ok());
  EXPECT_EQ(s.plan().threads, 1);
  // Before the fix the primitives were created for both cores and forked a
  // second thread at every layer although threads = 1.
  EXPECT_EQ(thread_count(), before);
}

}  // namespace
}  // namespace damoyolo
