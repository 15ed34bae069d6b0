// The compiled plan (damoyolo/plan.h) of the fixture models, asserted, so an
// optimisation that stops applying (a fusion, the head, a layout) fails here
// even when the outputs stay right; and per-node fallback: a node the
// optimised engine cannot lower runs on the reference kernels alone, is
// listed with its reason, and nothing else changes.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "damoyolo/session.h"
#include "testutil/model_builder.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

using testing::fixtures_dir;

std::string model_path(const std::string& m) { return (fixtures_dir() / "models" / (m + ".onnx")).string(); }

Session load_or_throw(const std::string& path, const SessionOptions& o) {
  auto s = Session::load(path, o);
  if (!s.ok()) throw std::runtime_error(s.status().to_string());
  return std::move(*s);
}

struct Expected {
  const char* model;
  int reorders;   // layout conversions the model needs (input, Focus slices, outputs)
  int heads;      // fused DAMO-YOLO head steps
  int views;      // Slices compiled as strided views
};
// Measured on the fixture exports; a change here is a change in what the
// engine does and must be explained (docs/engine.md).
//   T_640: the input into channels-last, the four Focus slices straight into
//          the concat's channel slices (views, no copies of their own).
//   Ns_416: the input only.
//   Ns_416_benchmark (six raw outputs, no decode): the input and six outputs
//          from channels-last to the plain NCHW the caller gets.
const Expected kExpected[] = {
    {"damoyolo_T_640", 4, 1, 6},
    {"damoyolo_Ns_416", 1, 1, 0},
    {"damoyolo_Ns_416_benchmark", 7, 0, 0},
};

void PrintTo(const Expected& e, std::ostream* os) { *os << e.model; }

class FixturePlan : public ::testing::TestWithParam<std::tuple<Expected, Precision>> {};

TEST_P(FixturePlan, NoFallbackAndTheKnownSteps) {
  const auto [want, precision] = GetParam();
  for (Engine engine : {Engine::kOptimized, Engine::kAuto}) {
    SessionOptions o;
    o.engine = engine;
    o.precision = precision;
    Session s = load_or_throw(model_path(want.model), o);
    const CompiledPlan& p = s.plan();
    SCOPED_TRACE(std::string(want.model) + " " + precision_name(precision) + " " + engine_name(engine) + "\n" +
                 p.to_text());
    EXPECT_EQ(p.engine, Engine::kOptimized);
    EXPECT_EQ(p.engine_fallback_reason, "");
    EXPECT_EQ(p.precision, precision);
    EXPECT_EQ(p.fallbacks(), 0);
    EXPECT_EQ(p.reorders(), want.reorders);
    EXPECT_EQ(p.count(PlanStep::Kind::kFusedHead), want.heads);
    EXPECT_EQ(p.count(PlanStep::Kind::kView), want.views);
    EXPECT_EQ(p.count(PlanStep::Kind::kReference), 0);
    EXPECT_GT(p.arena_bytes, 0u);
    EXPECT_GT(p.weight_bytes, 0u);

    // Every node left after the graph passes is computed by exactly one step
    // (a Concat done as copies into its slices by each of those copies).
    int graph_nodes = 0;
    for (const auto& [op, n] : s.summary().op_histogram) graph_nodes += n;
    std::map<std::string, std::vector<const PlanStep*>> covered;
    for (const auto& st : p.steps)
      for (const auto& node : st.nodes) covered[node].push_back(&st);
    EXPECT_EQ(static_cast<int>(covered.size()), graph_nodes);
    for (const auto& [name, steps] : covered)
      if (steps.size() > 1) {
        for (const PlanStep* st : steps) EXPECT_EQ(st->purpose, "concat") << name << " is in several steps";
      }

    // Every convolution has a real oneDNN kernel (not oneDNN's own reference
    // one), in the requested precision, with its activation fused.
    const int convs = s.summary().op_histogram.at("Conv");
    EXPECT_EQ(p.count_op("Conv"), convs);
    for (const auto& st : p.steps) {
      if (st.op != "Conv") continue;
      EXPECT_EQ(st.kind, PlanStep::Kind::kPrimitive);
      EXPECT_NE(st.implementation.rfind("ref", 0), 0u) << st.nodes[0] << ": " << st.implementation;
      if (precision == Precision::kBF16) {
        EXPECT_EQ(st.src.rfind("bf16", 0), 0u) << st.nodes[0] << ": " << st.src;
      }
    }
    // DAMO-YOLO's convolutions are followed by SiLU (or ReLU): each is a
    // post-op, so no standalone Sigmoid/Mul step remains.
    EXPECT_EQ(p.count_op("Sigmoid"), 0);
    EXPECT_EQ(p.count_op("Mul"), 0);

    // The fusion passes ran, in order, and each rewrote what the model has:
    // the head (decoded exports), a FusedConv per conv with a chain, residual sums (every fixture has them).
    ASSERT_EQ(p.passes.size(), 6u);
    const char* order[] = {"fuse_damoyolo_head", "fuse_silu",     "fuse_conv_activation",
                           "fuse_conv_residual", "fuse_qdq_conv", "zero_copy_concat"};
    for (size_t i = 0; i < 6; ++i) EXPECT_EQ(p.passes[i].name, order[i]);
    EXPECT_EQ(p.rewrites("fuse_qdq_conv"), 0);  // a float model has nothing to quantise
    EXPECT_EQ(p.rewrites("fuse_damoyolo_head"), want.heads);
    // (Convs with nothing after them but a residual Add, or nothing at all,
    // such as the regression convs, stay Conv until the residual pass.)
    EXPECT_GT(p.rewrites("fuse_conv_activation"), convs / 2);
    EXPECT_LE(p.rewrites("fuse_conv_activation"), convs);
    EXPECT_EQ(p.count_op("Relu"), 0);
    EXPECT_GT(p.rewrites("fuse_conv_residual"), 0);
    EXPECT_EQ(p.rewrites("zero_copy_concat"), want.views > 0 ? 1 : 0);
    int sums = 0;
    for (const auto& st : p.steps)
      for (const auto& po : st.post_ops) sums += po == "sum" || po == "binary_add";
    // A residual runs as the conv's post-op, or — where that would push
    // oneDNN off its fast convolution on this CPU — as an Add step after it.
    EXPECT_EQ(sums + p.count_op("Add"), p.rewrites("fuse_conv_residual"));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixturePlan,
                         ::testing::Combine(::testing::ValuesIn(kExpected),
                                            ::testing::Values(Precision::kFP32, Precision::kBF16)),
                         [](const auto& info) {
                           std::string m = std::get<0>(info.param).model;
                           return m.substr(std::string("damoyolo_").size()) + "_" +
                                  precision_name(std::get<1>(info.param));
                         });

TEST(Plan, SwitchesShowInThePlan) {
  // The plan reflects the switches: with the head fusion off the decode runs
  // as primitives and fallbacks; with conv+activation off the SiLU is its own step.
  SessionOptions o;
  o.engine = Engine::kOptimized;
  o.opt.fuse_head = false;
  Session no_head = load_or_throw(model_path("damoyolo_Ns_416"), o);
  EXPECT_EQ(no_head.plan().count(PlanStep::Kind::kFusedHead), 0);
  EXPECT_GT(no_head.plan().fallbacks(), 0);  // Reshape/Transpose/Softmax/... have no oneDNN lowering
  for (const auto& st : no_head.plan().steps)
    if (st.kind == PlanStep::Kind::kFallback) {
      EXPECT_FALSE(st.reason.empty()) << st.nodes[0];
    }

  SessionOptions a;
  a.engine = Engine::kOptimized;
  a.opt.fuse_conv_activation = false;
  Session unfused = load_or_throw(model_path("damoyolo_Ns_416"), a);
  EXPECT_GT(unfused.plan().count_op("Sigmoid"), 0);
  for (const auto& st : unfused.plan().steps)
    if (st.op == "Conv") {
      for (const auto& po : st.post_ops) EXPECT_TRUE(po == "sum" || po == "binary_add") << po;
    }
}

// Conv → LeakyRelu → Conv: oneDNN lowering exists for the convolutions, not
// for LeakyRelu. Only that node falls back; the result equals the reference
// engine's.
std::string leaky_model() {
  testing::ModelBuilder mb(11);
  mb.input("x", {1, 8, 12, 12});
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  auto rnd = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = u(rng);
    return v;
  };
  mb.init_f32("w1", {16, 8, 3, 3}, rnd(16 * 8 * 9)).init_f32("b1", {16}, rnd(16));
  mb.init_f32("w2", {8, 16, 1, 1}, rnd(8 * 16)).init_f32("b2", {8}, rnd(8));
  auto& c1 = mb.node("Conv", {"x", "w1", "b1"}, {"c1"}, "conv1");
  testing::ModelBuilder::attr_ints(c1, "kernel_shape", {3, 3});
  testing::ModelBuilder::attr_ints(c1, "pads", {1, 1, 1, 1});
  auto& lr = mb.node("LeakyRelu", {"c1"}, {"l1"}, "leaky");
  auto* alpha = lr.add_attribute();
  alpha->set_name("alpha");
  alpha->set_type(onnx::AttributeProto::FLOAT);
  alpha->set_f(0.1f);
  auto& c2 = mb.node("Conv", {"l1", "w2", "b2"}, {"y"}, "conv2");
  testing::ModelBuilder::attr_ints(c2, "kernel_shape", {1, 1});
  mb.output("y", {1, 8, 12, 12});
  return mb.bytes();
}

TEST(Plan, AnUnloweredNodeFallsBackAloneWithItsReason) {
  const std::string bytes = leaky_model();
  SessionOptions o;
  o.engine = Engine::kOptimized;
  auto s = Session::load_from_memory(bytes.data(), bytes.size(), o);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  const CompiledPlan& p = s->plan();
  SCOPED_TRACE(p.to_text());
  EXPECT_EQ(p.engine, Engine::kOptimized);
  ASSERT_EQ(p.fallbacks(), 1);
  EXPECT_EQ(p.count_op("Conv"), 2);
  for (const auto& st : p.steps) {
    if (st.kind == PlanStep::Kind::kFallback) {
      EXPECT_EQ(st.op, "LeakyRelu");
      EXPECT_EQ(st.nodes, std::vector<std::string>{"leaky"});
      EXPECT_NE(st.reason.find("LeakyRelu"), std::string::npos) << st.reason;
    }
    if (st.op == "Conv") {
      EXPECT_EQ(st.kind, PlanStep::Kind::kPrimitive);
    }
  }

  SessionOptions r;
  r.engine = Engine::kReference;
  auto ref = Session::load_from_memory(bytes.data(), bytes.size(), r);
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->plan().engine, Engine::kReference);
  EXPECT_EQ(ref->plan().count(PlanStep::Kind::kReference), 3);
  Tensor x(DType::kFloat32, {1, 8, 12, 12});
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = nd(rng);
  auto got = s->run({x});
  auto want = ref->run({x});
  ASSERT_TRUE(got.ok() && want.ok());
  for (int64_t i = 0; i < want->at(0).numel(); ++i)
    ASSERT_NEAR(got->at(0).data<float>()[i], want->at(0).data<float>()[i], 1e-4) << i;
}

TEST(Plan, AutoSaysWhyItRunsTheReferenceEngine) {
  // An int64 graph output: the optimised engine hands the caller float32
  // only, so under kAuto the whole model runs on the reference engine — and
  // the plan says so instead of falling back silently.
  testing::ModelBuilder mb(11);
  mb.input("x", {1, 3, 4, 4});
  auto& cast = mb.node("Cast", {"x"}, {"y"});
  testing::ModelBuilder::attr_int(cast, "to", onnx::TensorProto::INT64);
  mb.output("y", {1, 3, 4, 4}, onnx::TensorProto::INT64);
  const std::string bytes = mb.bytes();

  SessionOptions o;  // kAuto
  auto s = Session::load_from_memory(bytes.data(), bytes.size(), o);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->engine(), Engine::kReference);
  EXPECT_EQ(s->plan().engine, Engine::kReference);
  EXPECT_NE(s->plan().engine_fallback_reason.find("not float32"), std::string::npos)
      << s->plan().engine_fallback_reason;
  EXPECT_NE(s->plan().to_text().find("optimised engine not used"), std::string::npos);

  o.engine = Engine::kOptimized;  // asked for explicitly: an error, not a silent switch
  auto strict = Session::load_from_memory(bytes.data(), bytes.size(), o);
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().code(), ErrorCode::kUnsupported);
}

TEST(Plan, JsonCarriesTheSameCounts) {
  SessionOptions o;
  o.engine = Engine::kOptimized;
  Session s = load_or_throw(model_path("damoyolo_Ns_416"), o);
  auto j = nlohmann::json::parse(s.plan().to_json());
  EXPECT_EQ(j["engine"], "optimized");
  EXPECT_EQ(j["counts"]["fallback"], 0);
  EXPECT_EQ(j["counts"]["reorder"], s.plan().reorders());
  EXPECT_EQ(j["steps"].size(), s.plan().steps.size());
  EXPECT_EQ(j["steps"].back()["kind"], "fused_head");
}

}  // namespace
}  // namespace damoyolo
