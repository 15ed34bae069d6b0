// The op schemas (graph layer) against the reference kernels (kernels layer):
// the two tables must describe the same operators, or shape inference would
// accept a node no engine can run (or the reverse). Also: an unsupported node
// is still reported with its name, op and opset, from shape inference and
// from the kernel lookup alike; constant folding computes only through the
// evaluator it is given; and an op of this project's own domain needs one
// schema line and one kernel line to be folded.
#include <gtest/gtest.h>

#include <string>

#include "graph/ops/op_schema.h"
#include "graph/passes/passes.h"
#include "kernels/reference/registry.h"

namespace damoyolo {
namespace {

std::string error_message(const std::function<void()>& f, ErrorCode* code = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (code) *code = e.code();
    return e.what();
  }
  return "(no error)";
}

std::string key(const std::string& domain, const std::string& op) { return (domain.empty() ? "ai.onnx" : domain) + "." + op; }

TEST(OpSchemas, EverySchemaHasAReferenceKernelWithTheSameOpsets) {
  const auto schemas = graph::all_schemas();
  ASSERT_GT(schemas.size(), 30u);  // every family registered
  for (const graph::OpSchema* s : schemas) {
    const kernels::ref::OpKernel* k = kernels::ref::find_kernel(s->domain, s->op_type);
    ASSERT_NE(k, nullptr) << key(s->domain, s->op_type) << " has a schema but no reference kernel";
    EXPECT_EQ(k->min_opset, s->min_opset) << key(s->domain, s->op_type);
    EXPECT_EQ(k->max_opset, s->max_opset) << key(s->domain, s->op_type);
    EXPECT_TRUE(s->infer) << key(s->domain, s->op_type) << " has no InferFn";
  }
}

TEST(OpSchemas, EveryReferenceKernelHasASchemaAndCarriesItsInferFn) {
  const auto kernels = kernels::ref::all_kernels();
  EXPECT_EQ(kernels.size(), graph::all_schemas().size());
  for (const kernels::ref::OpKernel* k : kernels) {
    EXPECT_NE(graph::find_schema(k->domain, k->op_type), nullptr)
        << key(k->domain, k->op_type) << " has a reference kernel but no schema";
    EXPECT_TRUE(k->compute) << key(k->domain, k->op_type);
    EXPECT_TRUE(k->infer) << key(k->domain, k->op_type) << ": the schema's InferFn was not attached";
  }
}

TEST(OpSchemas, UnknownOpNamesNodeOpAndOpsetFromBothLayers) {
  graph::Node n;
  n.name = "mystery_node";
  n.op_type = "FrobnicateV2";
  const std::string want = "node 'mystery_node' (op FrobnicateV2): operator 'FrobnicateV2' is not supported (opset 13)";
  ErrorCode code{};
  EXPECT_EQ(error_message([&] { graph::schema_for(n, 13); }, &code), want);
  EXPECT_EQ(code, ErrorCode::kUnsupported);
  code = {};
  EXPECT_EQ(error_message([&] { kernels::ref::kernel_for(n, 13); }, &code), want);
  EXPECT_EQ(code, ErrorCode::kUnsupported);

  // Through shape inference, as a model meets it.
  graph::Graph g;
  g.opsets[""] = 13;
  g.inputs = {"x"};
  g.outputs = {"y"};
  g.values["x"] = graph::ValueInfo{DType::kFloat32, {1, 4}, true};
  n.inputs = {"x"};
  n.outputs = {"y"};
  g.nodes.push_back(n);
  code = {};
  EXPECT_EQ(error_message([&] { graph::run_standard_passes(g, {}, kernels::ref::evaluator()); }, &code), want);
  EXPECT_EQ(code, ErrorCode::kUnsupported);
}

TEST(OpSchemas, OpsetOutOfRangeAndUnknownDomainAreNamed) {
  graph::Node n;
  n.name = "up";
  n.op_type = "Resize";
  EXPECT_EQ(error_message([&] { graph::schema_for(n, 9); }),
            "node 'up' (op Resize): opset 9 is not supported for Resize (supported: 10..17)");
  n.domain = "TRT";
  const std::string msg = error_message([&] { kernels::ref::kernel_for(n, 1); });
  EXPECT_NE(msg.find("node 'up' (op Resize): operator domain 'TRT' is not supported"), std::string::npos) << msg;
  // "ai.onnx" spelled out is the default domain.
  n.domain = "ai.onnx";
  EXPECT_EQ(&graph::schema_for(n, 13), graph::find_schema("", "Resize"));
}

// Two nodes whose inputs are all constants: folding evaluates both, and only
// through the evaluator passed in (the graph layer has no kernels of its own).
TEST(OpSchemas, FoldingComputesOnlyThroughTheInjectedEvaluator) {
  auto make = [] {
    graph::Graph g;
    g.opsets[""] = 13;
    Tensor a(DType::kFloat32, {2});
    a.data<float>()[0] = 1.f;
    a.data<float>()[1] = -2.f;
    g.constants["a"] = a;
    g.values["a"] = graph::ValueInfo{DType::kFloat32, {2}, true};
    graph::Node neg;
    neg.name = "neg";
    neg.op_type = "Neg";
    neg.inputs = {"a"};
    neg.outputs = {"b"};
    graph::Node relu;
    relu.name = "relu";
    relu.op_type = "Relu";
    relu.inputs = {"b"};
    relu.outputs = {"y"};
    g.nodes = {neg, relu};
    g.outputs = {"y"};
    return g;
  };
  graph::Graph g = make();
  int calls = 0;
  const graph::Evaluator ref = kernels::ref::evaluator();
  graph::Evaluator counting = [&](const graph::Node& n, const std::vector<Tensor>& in, int64_t opset) {
    ++calls;
    return ref(n, in, opset);
  };
  graph::run_standard_passes(g, {}, counting);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(g.nodes.empty());
  ASSERT_TRUE(g.is_constant("y"));
  EXPECT_EQ(g.constant("y")->data<float>()[0], 0.f);
  EXPECT_EQ(g.constant("y")->data<float>()[1], 2.f);

  graph::Graph h = make();
  ErrorCode code{};
  error_message([&] { graph::run_standard_passes(h, {}, graph::Evaluator{}); }, &code);
  EXPECT_EQ(code, ErrorCode::kInternal);
}

// What the header comments promise: a custom-domain op is one register_schema
// line and one register_kernel line, and then it infers and folds like any other.
TEST(OpSchemas, CustomDomainOpIsOneSchemaLineAndOneKernelLine) {
  auto twice_infer = [](const graph::OpContext&, const std::vector<graph::InferInput>& in) {
    return std::vector<graph::ValueInfo>{in[0].info};
  };
  auto twice_compute = [](const graph::OpContext&, const std::vector<Tensor>& in) {
    Tensor out = in[0].clone();
    for (int64_t i = 0; i < out.numel(); ++i) out.data<float>()[i] *= 2.f;
    return std::vector<Tensor>{out};
  };
  graph::register_schema({graph::kDamoYoloDomain, "TestOnlyTwice", 1, 1, twice_infer});
  kernels::ref::register_kernel({graph::kDamoYoloDomain, "TestOnlyTwice", 1, 1, twice_compute, {}});

  graph::Graph g;
  g.opsets[""] = 13;
  g.opsets[graph::kDamoYoloDomain] = 1;
  Tensor a(DType::kFloat32, {1});
  a.data<float>()[0] = 3.f;
  g.constants["a"] = a;
  g.values["a"] = graph::ValueInfo{DType::kFloat32, {1}, true};
  graph::Node n;
  n.name = "twice";
  n.op_type = "TestOnlyTwice";
  n.domain = graph::kDamoYoloDomain;
  n.inputs = {"a"};
  n.outputs = {"y"};
  g.nodes = {n};
  g.outputs = {"y"};
  graph::run_standard_passes(g, {}, kernels::ref::evaluator());
  ASSERT_TRUE(g.is_constant("y"));
  EXPECT_EQ(g.constant("y")->data<float>()[0], 6.f);

  // The same name in the default domain is still unknown.
  n.domain = "";
  EXPECT_NE(error_message([&] { graph::schema_for(n, 13); }).find("operator 'TestOnlyTwice' is not supported"),
            std::string::npos);
  // And at an opset the custom schema does not cover, the message names the domain.
  n.domain = graph::kDamoYoloDomain;
  EXPECT_EQ(error_message([&] { graph::schema_for(n, 2); }),
            "node 'twice' (op TestOnlyTwice): opset 2 is not supported for com.damoyolo.TestOnlyTwice (supported: 1..1)");
}

}  // namespace
}  // namespace damoyolo
