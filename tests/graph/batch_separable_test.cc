// CompiledPlan::batch_separable (graph/batch_separable.h): the detectors'
// graphs compute each image alone, so images_on_threads may split their
// batches; graphs that slice, concatenate or reshape across the batch axis
// are not split (tests/ops' Concat cases slice x[1:2] off a batch of 2 and
// got a wrong-shaped output when they were).
#include <gtest/gtest.h>

#include "damoyolo/session.h"
#include "testutil/model_builder.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

using testing::ModelBuilder;

Session load_bytes(const std::string& bytes) {
  SessionOptions o;
  o.engine = Engine::kOptimized;
  auto s = Session::load_from_memory(bytes.data(), bytes.size(), o);
  if (!s.ok()) throw std::runtime_error(s.status().to_string());
  return std::move(*s);
}

TEST(BatchSeparable, TheDetectorsAre) {
  for (const char* m : {"damoyolo_T_640", "damoyolo_Ns_416"}) {
    SessionOptions o;
    o.engine = Engine::kOptimized;
    o.batch = 2;
    auto s = Session::load((testing::fixtures_dir() / "models" / (std::string(m) + ".onnx")).string(), o);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    EXPECT_TRUE(s->plan().batch_separable) << m << ": " << s->plan().batch_separable_why;
    EXPECT_NE(s->plan().to_text().find("batch separable: yes"), std::string::npos);
    EXPECT_TRUE(s->images_on_threads().enabled) << m;
  }
}

// x[2,3,4,4] -> op -> y; `op` adds its nodes.
template <class F>
std::string model(const std::vector<int64_t>& out_dims, F&& op) {
  ModelBuilder b;
  b.input("x", {2, 3, 4, 4});
  op(b);
  b.output("y", out_dims);
  return b.bytes();
}

TEST(BatchSeparable, PerImageOpsAndAxesOtherThanTheBatchAre) {
  Session s = load_bytes(model({2, 6, 2, 4}, [](ModelBuilder& b) {
    b.node("Relu", {"x"}, {"r"});
    b.init_i64("st", {1}, {0}).init_i64("en", {1}, {2}).init_i64("ax", {1}, {2});
    b.node("Slice", {"r", "st", "en", "ax"}, {"s"});
    ModelBuilder::attr_int(b.node("Concat", {"s", "s"}, {"y"}), "axis", 1);
  }));
  EXPECT_TRUE(s.plan().batch_separable) << s.plan().batch_separable_why;
}

TEST(BatchSeparable, SlicingTheBatchAxisIsNot) {
  Session s = load_bytes(model({1, 3, 4, 4}, [](ModelBuilder& b) {
    b.init_i64("st", {1}, {1}).init_i64("en", {1}, {2}).init_i64("ax", {1}, {0});
    b.node("Slice", {"x", "st", "en", "ax"}, {"y"});
  }));
  EXPECT_FALSE(s.plan().batch_separable);
  EXPECT_NE(s.plan().batch_separable_why.find("batch"), std::string::npos) << s.plan().batch_separable_why;
  EXPECT_FALSE(s.images_on_threads().enabled);
}

TEST(BatchSeparable, ConcatenatingAlongTheBatchAxisIsNot) {
  Session s = load_bytes(model({4, 3, 4, 4}, [](ModelBuilder& b) {
    ModelBuilder::attr_int(b.node("Concat", {"x", "x"}, {"y"}), "axis", 0);
  }));
  EXPECT_FALSE(s.plan().batch_separable);
  EXPECT_NE(s.plan().batch_separable_why.find("batch axis"), std::string::npos) << s.plan().batch_separable_why;
}

TEST(BatchSeparable, AnOpNotKnownToActPerItemIsNot) {
  Session s = load_bytes(model({2, 48}, [](ModelBuilder& b) {
    b.init_i64("shape", {2}, {2, 48});
    b.node("Reshape", {"x", "shape"}, {"y"});
  }));
  EXPECT_FALSE(s.plan().batch_separable);
  EXPECT_NE(s.plan().batch_separable_why.find("Reshape"), std::string::npos) << s.plan().batch_separable_why;
}

TEST(BatchSeparable, AConstantWithARowPerItemIsNot) {
  Session s = load_bytes(model({2, 3, 4, 4}, [](ModelBuilder& b) {
    std::vector<float> rows(2 * 3 * 4 * 4, 1.f);
    b.init_f32("c", {2, 3, 4, 4}, rows);
    b.node("Add", {"x", "c"}, {"y"});
  }));
  EXPECT_FALSE(s.plan().batch_separable);
  EXPECT_NE(s.plan().batch_separable_why.find("row per item"), std::string::npos) << s.plan().batch_separable_why;
}

}  // namespace
}  // namespace damoyolo
