// Every fixture model × every fixture image: our outputs against the golden
// ONNX Runtime outputs, within the tolerances of ../shared/fixtures/README.md:
// scores (sigmoid outputs) 1e-5 absolute, boxes 0.05 px absolute, raw logits
// 1e-4 relative to max(1, |v|).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "damoyolo/session.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;
using testing::fixtures_dir;

struct Tolerance {
  double abs = 0;
  double rel = 0;  // relative to max(1, |golden|)
};

// Which tolerance an output gets: boxes (last dim 4 in the default export) are
// in pixels; scores and the sigmoid class maps are probabilities; the
// benchmark export's bin-logit maps are raw logits.
Tolerance tolerance_for(const std::string& model, size_t index, const Shape& dims) {
  if (model.find("benchmark") != std::string::npos) {
    return index < 3 ? Tolerance{1e-5, 0} : Tolerance{0, 1e-4};
  }
  return index == 0 ? Tolerance{1e-5, 0} : Tolerance{0.05, 0};
}

struct Diff {
  double worst = 0;  // worst |ours-golden| / allowed
  int64_t at = -1;
  double ours = 0, golden = 0;
};

Diff compare(const float* ours, const std::vector<float>& golden, Tolerance tol) {
  Diff d;
  for (size_t i = 0; i < golden.size(); ++i) {
    double allowed = tol.rel > 0 ? tol.rel * std::max(1.0, static_cast<double>(std::fabs(golden[i]))) : tol.abs;
    double err = std::fabs(static_cast<double>(ours[i]) - golden[i]) / allowed;
    if (!(err <= d.worst)) {  // also catches NaN
      d.worst = std::isnan(err) ? 1e30 : err;
      d.at = static_cast<int64_t>(i);
      d.ours = ours[i];
      d.golden = golden[i];
    }
  }
  return d;
}

class GoldenParity : public ::testing::TestWithParam<std::tuple<std::string, Engine>> {};

TEST_P(GoldenParity, AllImagesMatchOnnxRuntime) {
  const auto& [model, engine] = GetParam();
  fs::path model_path = fixtures_dir() / "models" / (model + ".onnx");
  ASSERT_TRUE(fs::exists(model_path)) << "fixtures missing: " << model_path;
  SessionOptions opts;
  opts.engine = engine;
  auto session = Session::load(model_path.string(), opts);
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  if (engine == Engine::kOptimized) {
    ASSERT_EQ(session->engine(), Engine::kOptimized);
  }

  int images = 0;
  for (const char* image : testing::kFixtureImages) {
    fs::path dir = fixtures_dir() / "golden" / model / image;
    if (!fs::exists(dir)) continue;
    ++images;
    auto bytes = testing::read_file(dir / "input.u8");
    const TensorInfo& in = session->inputs().at(0);
    ASSERT_EQ(static_cast<int64_t>(bytes.size()), shape_numel(in.dims));
    Tensor input(DType::kFloat32, in.dims);
    for (size_t i = 0; i < bytes.size(); ++i) input.data<float>()[i] = bytes[i];

    auto outputs = session->run({input});
    ASSERT_TRUE(outputs.ok()) << outputs.status().to_string();

    std::ifstream jf(dir / "outputs.json");
    auto desc = nlohmann::json::parse(jf);
    ASSERT_EQ(outputs->size(), desc.size());
    for (const auto& o : desc) {
      size_t idx = o["index"].get<size_t>();
      Shape dims = o["dims"].get<Shape>();
      const Tensor& t = (*outputs)[idx];
      EXPECT_EQ(t.shape(), dims) << model << "/" << image << " output " << idx;
      EXPECT_EQ(session->outputs()[idx].name, o["name"].get<std::string>());
      auto golden = testing::read_f32(dir / ("out" + std::to_string(idx) + ".f32"));
      ASSERT_EQ(static_cast<size_t>(t.numel()), golden.size());
      Diff d = compare(t.data<float>(), golden, tolerance_for(model, idx, dims));
      EXPECT_LE(d.worst, 1.0) << model << "/" << image << " output " << idx << ": worst element " << d.at
                              << " ours " << d.ours << " golden " << d.golden << " (" << d.worst
                              << "x the tolerance)";
    }
  }
  EXPECT_EQ(images, 5);
}

std::string param_name(const ::testing::TestParamInfo<GoldenParity::ParamType>& info) {
  return std::get<0>(info.param) + "_" + engine_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Reference, GoldenParity,
                         ::testing::Combine(::testing::Values("damoyolo_T_640", "damoyolo_Ns_416",
                                                              "damoyolo_Ns_416_benchmark"),
                                            ::testing::Values(Engine::kReference)),
                         param_name);

}  // namespace
}  // namespace damoyolo

namespace damoyolo {
namespace {

INSTANTIATE_TEST_SUITE_P(Optimized, GoldenParity,
                         ::testing::Combine(::testing::Values("damoyolo_T_640", "damoyolo_Ns_416",
                                                              "damoyolo_Ns_416_benchmark"),
                                            ::testing::Values(Engine::kOptimized)),
                         param_name);

}  // namespace
}  // namespace damoyolo
