// `damoyolo info --plan`: the compiled plan on the command line, as text and
// JSON, for the engine options given; and the CLI's word when a model does
// not run fully on the optimised engine.
#include "cli_util.h"
#include "testutil/model_builder.h"

namespace {

using namespace cli_test;

TEST_F(CliTest, InfoPlanShowsTheStepsAndNoFallback) {
  auto r = run_cli({"info", model(), "--plan"}, dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("engine optimized, fp32, batch 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0 fallbacks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fused_head"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("brg"), std::string::npos) << r.out;  // oneDNN's kernel names are shown

  auto j = run_cli({"info", model("damoyolo_T_640"), "--plan", "--json", "--precision", "bf16", "--batch", "2"}, dir_);
  ASSERT_EQ(j.rc, 0) << j.err;
  json plan = json::parse(j.out);
  EXPECT_EQ(plan["engine"], "optimized");
  EXPECT_EQ(plan["precision"], "bf16");
  EXPECT_EQ(plan["batch"], 2);
  EXPECT_EQ(plan["counts"]["fallback"], 0);
  EXPECT_EQ(plan["counts"]["fused_head"], 1);
  EXPECT_GT(plan["steps"].size(), 100u);

  auto ref = run_cli({"info", model(), "--plan", "--engine", "reference", "--json"}, dir_);
  ASSERT_EQ(ref.rc, 0) << ref.err;
  EXPECT_EQ(json::parse(ref.out)["engine"], "reference");

  // Switches change the plan: without the head fusion the decode falls back.
  auto off = run_cli({"info", model(), "--plan", "--disable", "fuse_head", "--json"}, dir_);
  ASSERT_EQ(off.rc, 0) << off.err;
  EXPECT_EQ(json::parse(off.out)["counts"]["fused_head"], 0);
  EXPECT_GT(json::parse(off.out)["counts"]["fallback"], 0);
}

TEST_F(CliTest, AutoFallbackToTheReferenceEngineIsNotSilent) {
  // An int64 output: the optimised engine cannot run the graph, so under
  // --engine auto the CLI runs it on the reference engine and says so.
  damoyolo::testing::ModelBuilder mb(11);
  mb.input("x", {1, 3, 4, 4});
  auto& cast = mb.node("Cast", {"x"}, {"y"});
  damoyolo::testing::ModelBuilder::attr_int(cast, "to", onnx::TensorProto::INT64);
  mb.output("y", {1, 3, 4, 4}, onnx::TensorProto::INT64);
  const fs::path m = mb.save(dir_ / "cast.onnx");
  {
    std::ofstream in(dir_ / "x.f32", std::ios::binary);
    std::vector<float> v(48, 1.5f);
    in.write(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  }
  auto r = run_cli({"run", m.string(), "--input", (dir_ / "x.f32").string(), "--output-dir", (dir_ / "out").string()},
                   dir_);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("warning: the optimised engine cannot run this model"), std::string::npos) << r.err;

  auto p = run_cli({"info", m.string(), "--plan"}, dir_);
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_NE(p.out.find("optimised engine not used"), std::string::npos) << p.out;
}

}  // namespace
