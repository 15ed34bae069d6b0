// The fusion passes (graph/passes/fusion.h), each switched off and on: the
// node counts after it, and equal outputs — the graph before and after the
// pass run on the reference engine (the fused ops' reference kernels compute
// what the nodes they replace computed) with the same input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "damoyolo/session.h"
#include "graph/passes/fusion.h"
#include "graph/passes/passes.h"
#include "kernels/reference/registry.h"
#include "onnx/onnx_loader.h"
#include "runtime/executor.h"
#include "testutil/model_builder.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

using graph::Graph;

const graph::Evaluator kEval = kernels::ref::evaluator();

Graph standard(Graph g) {
  graph::run_standard_passes(g, graph::PassOptions{}, kernels::ref::evaluator());
  return g;
}
Graph load_fixture(const std::string& name) {
  return standard(onnx_io::load_onnx_file((testing::fixtures_dir() / "models" / (name + ".onnx")).string()));
}
Graph load_bytes(const std::string& bytes) {
  return standard(onnx_io::load_onnx_memory(bytes.data(), bytes.size(), "."));
}

int count(const Graph& g, const std::string& op) {
  return static_cast<int>(std::count_if(g.nodes.begin(), g.nodes.end(), [&](const auto& n) { return n.op_type == op; }));
}
int count_post_op(const Graph& g, const std::string& post) {
  int c = 0;
  for (const auto& n : g.nodes)
    if (auto it = n.attrs.find("post_ops"); it != n.attrs.end())
      c += static_cast<int>(std::count(it->second.strings.begin(), it->second.strings.end(), post));
  return c;
}

std::vector<Tensor> random_inputs(const Graph& g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<Tensor> in;
  for (const auto& name : g.inputs) {
    Tensor t(DType::kFloat32, g.info(name)->shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
    in.push_back(t);
  }
  return in;
}

std::vector<Tensor> run_reference(const Graph& g, const std::vector<Tensor>& in) {
  auto model = runtime::compile_reference(g, SessionOptions{});
  auto ctx = model->create_context();
  std::vector<Tensor> out;
  ctx->run(in, out);
  return out;
}

// max |a - b| / max(1, max |a|) over every output.
double max_rel_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t k = 0; k < a.size() && k < b.size(); ++k) {
    EXPECT_EQ(a[k].shape(), b[k].shape()) << "output " << k;
    if (a[k].shape() != b[k].shape()) return INFINITY;
    double scale = 1;
    for (int64_t i = 0; i < a[k].numel(); ++i) scale = std::max(scale, std::fabs(double(a[k].data<float>()[i])));
    for (int64_t i = 0; i < a[k].numel(); ++i)
      worst = std::max(worst, std::fabs(double(a[k].data<float>()[i]) - b[k].data<float>()[i]) / scale);
  }
  return worst;
}

// The whole pipeline on a fixture, one pass at a time: each pass on (after)
// against it off (before).
TEST(FusionPasses, EachPassOnTheNanoFixtureKeepsTheOutputs) {
  Graph g = load_fixture("damoyolo_Ns_416");
  const auto in = random_inputs(g, 7);
  std::vector<Tensor> expected = run_reference(g, in);
  auto step = [&](const char* what, auto&& pass, auto&& check, bool finds_some = true) {
    SCOPED_TRACE(what);
    Graph before = g;
    const int rewrites = pass(g);
    if (finds_some) {
      EXPECT_GT(rewrites, 0) << what << " found nothing to rewrite on the fixture";
    }
    check(before, g, rewrites);
    const std::vector<Tensor> got = run_reference(g, in);
    // The fused head's boxes are the same sums in another order (1e-5 of
    // the largest box coordinate); everything else is exact float32 maths
    // in the same order.
    EXPECT_LE(max_rel_diff(expected, got), 1e-5) << what;
    expected = got;
  };
  step("fuse_damoyolo_head", [](Graph& x) { return graph::fuse_damoyolo_head(x, kEval); },
       [](const Graph& before, const Graph& after, int r) {
         EXPECT_EQ(r, 1);
         EXPECT_EQ(count(after, "DamoYoloHead"), 1);
         // The decode's nodes are gone: no Softmax/MatMul/Reshape remains.
         EXPECT_GT(count(before, "Softmax") + count(before, "MatMul"), 0);
         EXPECT_EQ(count(after, "Softmax") + count(after, "MatMul") + count(after, "Reshape"), 0);
         EXPECT_EQ(count(after, "Conv"), count(before, "Conv"));
       });
  step("fuse_silu", [](Graph& x) { return graph::fuse_silu(x); },
       [](const Graph& before, const Graph& after, int r) {
         EXPECT_EQ(count(after, "Silu"), r);
         EXPECT_EQ(count(after, "Sigmoid"), count(before, "Sigmoid") - r);
         EXPECT_EQ(count(after, "Mul"), count(before, "Mul") - r);
         EXPECT_EQ(after.nodes.size(), before.nodes.size() - r);
       });
  step("fuse_conv_activation", [](Graph& x) { return graph::fuse_conv_activation(x); },
       [](const Graph& before, const Graph& after, int r) {
         EXPECT_EQ(count(after, "FusedConv"), r);
         EXPECT_EQ(count(after, "Conv"), count(before, "Conv") - r);
         // Every activation of the nano model follows a conv.
         EXPECT_EQ(count(after, "Relu") + count(after, "Silu") + count(after, "Sigmoid"), 0);
       });
  step("fuse_conv_residual", [](Graph& x) { return graph::fuse_conv_residual(x, true); },
       [](const Graph& before, const Graph& after, int r) {
         EXPECT_EQ(count_post_op(after, "sum"), r);
         EXPECT_EQ(count(after, "Add"), count(before, "Add") - r);
         EXPECT_LT(after.nodes.size(), before.nodes.size());
       });
  step("zero_copy_concat", [](Graph& x) { return graph::mark_zero_copy_concat(x); },
       [](const Graph& before, const Graph& after, int r) {
         EXPECT_EQ(after.nodes.size(), before.nodes.size());  // an attribute, no node change
         int marked = 0;
         for (const auto& n : after.nodes) marked += n.attr_i("zero_copy_inputs", 0) != 0;
         EXPECT_EQ(marked, r);
       },
       false);  // the nano models have no Focus stem (T_640 below)
  // Every ONNX node is still accounted for: kept, or listed by a fused node.
  Graph original = load_fixture("damoyolo_Ns_416");
  size_t represented = 0;
  for (const auto& n : g.nodes) {
    represented += n.op_type == "DamoYoloHead" ? 0 : 1;
    if (auto it = n.attrs.find("fused_nodes"); it != n.attrs.end()) represented += it->second.strings.size();
  }
  EXPECT_EQ(represented, original.nodes.size());
}

TEST(FusionPasses, ZeroCopyConcatMarksTheFocusConcat) {
  Graph g = load_fixture("damoyolo_T_640");
  const size_t nodes = g.nodes.size();
  EXPECT_EQ(graph::mark_zero_copy_concat(g), 1);  // the Focus stem's one Concat of four Slices
  EXPECT_EQ(g.nodes.size(), nodes);
  for (const auto& n : g.nodes)
    if (n.attr_i("zero_copy_inputs", 0)) {
      EXPECT_EQ(n.op_type, "Concat");
    }
  EXPECT_EQ(graph::mark_zero_copy_concat(g), 0);  // already marked
}

TEST(FusionPasses, PipelineRecordsEachPassAndHonoursItsSwitch) {
  const Graph base = load_fixture("damoyolo_Ns_416");
  Graph all = base;
  const auto on = graph::run_fusion_passes(all, graph::FusionOptions{}, kEval);
  ASSERT_EQ(on.size(), 6u);
  EXPECT_EQ(on[0].name, "fuse_damoyolo_head");
  EXPECT_EQ(on.back().nodes_after, all.nodes.size());
  Graph none = base;
  const auto off = graph::run_fusion_passes(none, graph::FusionOptions{false, false, false, false, false}, kEval);
  EXPECT_TRUE(off.empty());
  EXPECT_EQ(none.nodes.size(), base.nodes.size());
  EXPECT_EQ(count(none, "FusedConv") + count(none, "Silu") + count(none, "DamoYoloHead"), 0);
}

// The conditions under which a chain must not be fused.
TEST(FusionPasses, ChainsStopWhereAValueEscapes) {
  testing::ModelBuilder b;
  const std::vector<float> w(4 * 4, 0.25f);
  b.input("x", {1, 4, 5, 5}).init_f32("w", {4, 4, 1, 1}, w).init_f32("w2", {4, 4, 1, 1}, w);
  b.node("Conv", {"x", "w"}, {"y"}, "c0");
  b.node("Relu", {"y"}, {"a"}, "r0");          // y is also a graph output: no fusion
  b.node("Conv", {"a", "w2"}, {"y2"}, "c1");
  b.node("Sigmoid", {"y2"}, {"s"}, "s1");
  b.node("Mul", {"y2", "s"}, {"m"}, "m1");      // SiLU on c1 ...
  b.node("Add", {"m", "s"}, {"z"}, "add");      // ... but s is read again: no Silu
  b.output("y").output("z");
  Graph g = load_bytes(b.bytes());
  const auto in = random_inputs(g, 3);
  const auto expected = run_reference(g, in);
  EXPECT_EQ(graph::fuse_silu(g), 0);
  // c0's output is a graph output; c1's feeds two nodes: neither chain fuses.
  EXPECT_EQ(graph::fuse_conv_activation(g), 0);
  EXPECT_EQ(count(g, "Conv"), 2);
  EXPECT_LE(max_rel_diff(expected, run_reference(g, in)), 1e-6);
}

TEST(FusionPasses, ResidualMustExistAtTheConvsPlace) {
  testing::ModelBuilder b;
  const std::vector<float> w(4 * 4, 0.5f);
  b.input("x", {1, 4, 3, 3}).init_f32("w", {4, 4, 1, 1}, w).init_f32("w2", {4, 4, 1, 1}, w);
  b.node("Conv", {"x", "w"}, {"y"}, "c0");
  b.node("Relu", {"x"}, {"later"}, "r_after");  // produced after c0 in the node order
  b.node("Add", {"y", "later"}, {"z"}, "add0");
  b.node("Conv", {"z", "w2"}, {"y1"}, "c1");
  b.node("Add", {"y1", "z"}, {"out"}, "add1");  // residual z exists before c1: fused
  b.output("out");
  Graph g = load_bytes(b.bytes());
  const auto in = random_inputs(g, 5);
  const auto expected = run_reference(g, in);
  EXPECT_EQ(graph::fuse_conv_residual(g, true), 1);
  EXPECT_EQ(count(g, "Add"), 1);  // add0 stays
  EXPECT_EQ(count_post_op(g, "sum"), 1);
  EXPECT_LE(max_rel_diff(expected, run_reference(g, in)), 1e-6);
}

}  // namespace
}  // namespace damoyolo
