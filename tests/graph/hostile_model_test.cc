// Model files are untrusted input (a file downloaded from a hub). Each test
// builds one hostile model found by fuzzing (issue "Hostile input") and checks
// that loading or running it gives a clear error fast: no file outside the
// model's folder is read, no heap byte leaks into an output, no signal kills
// the process, nothing is allocated for data the file does not contain.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <limits>

#include "damoyolo/session.h"
#include "graph/passes/passes.h"
#include "kernels/reference/registry.h"
#include "onnx/onnx_loader.h"
#include "runtime/executor.h"
#include "testutil/model_builder.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;
using testing::ModelBuilder;

SessionOptions with_engine(Engine e) {
  SessionOptions o;
  o.engine = e;
  return o;
}

// Peak resident set of this process, in MiB (never decreases).
double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// Loads `path` and returns the status, with how long it took.
struct Timed {
  Status status;
  double seconds;
  double rss_growth_mib;
};
template <class F>
Timed timed(F&& load) {
  const double rss0 = peak_rss_mib();
  auto t0 = std::chrono::steady_clock::now();
  Status st = load();
  auto t1 = std::chrono::steady_clock::now();
  return {st, std::chrono::duration<double>(t1 - t0).count(), peak_rss_mib() - rss0};
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class HostileModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir("hostile");
    models_ = dir_ / "models";
    fs::create_directories(models_);
    // A file outside the model's folder that a hostile model would like to read.
    std::vector<float> secret = {11, 22, 33, 44};
    std::ofstream(dir_ / "secret.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(secret.data()), static_cast<std::streamsize>(secret.size() * 4));
  }
  void TearDown() override { fs::remove_all(dir_); }

  // y = x + w with w [1,4] float32 stored as external data.
  static ModelBuilder external_model(const std::string& location, const std::string& offset = "",
                                     const std::string& length = "", const std::vector<int64_t>& dims = {1, 4}) {
    ModelBuilder b(11);
    b.input("x", {1, 4}).output("y");
    auto* t = b.proto().mutable_graph()->add_initializer();
    t->set_name("w");
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    auto kv = [&](const char* k, const std::string& v) {
      auto* e = t->add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    kv("location", location);
    if (!offset.empty()) kv("offset", offset);
    if (!length.empty()) kv("length", length);
    b.node("Add", {"x", "w"}, {"y"});
    return b;
  }
  Result<Session> load(const ModelBuilder& b, Engine e = Engine::kReference) {
    return Session::load(b.save(models_ / "m.onnx").string(), with_engine(e));
  }
  void write_weights(const fs::path& p, size_t floats) {
    std::vector<float> v(floats, 1.5f);
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(v.data()),
                                             static_cast<std::streamsize>(v.size() * 4));
  }

  fs::path dir_, models_;
};

// ---- 1. external data: only regular files inside the model's folder ----------

TEST_F(HostileModel, ExternalDataWithDotDotIsRejected) {
  auto s = load(external_model("../secret.bin"));
  ASSERT_FALSE(s.ok()) << "a model read a file outside its folder";
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument) << s.status().to_string();
  EXPECT_TRUE(contains(s.status().message(), "'w'")) << s.status().message();
  EXPECT_TRUE(contains(s.status().message(), "../secret.bin")) << s.status().message();
  // Deeper, as in the issue: never reaches /etc/passwd either.
  auto deep = load(external_model("a/../../../../../../../../etc/passwd"));
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().code(), ErrorCode::kInvalidArgument) << deep.status().to_string();
}

TEST_F(HostileModel, ExternalDataWithAbsolutePathIsRejected) {
  auto s = load(external_model((dir_ / "secret.bin").string()));
  ASSERT_FALSE(s.ok()) << "a model read a file by absolute path";
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument) << s.status().to_string();
  EXPECT_TRUE(contains(s.status().message(), "'w'")) << s.status().message();
  auto passwd = load(external_model("/etc/passwd"));
  ASSERT_FALSE(passwd.ok());
  EXPECT_EQ(passwd.status().code(), ErrorCode::kInvalidArgument) << passwd.status().to_string();
}

TEST_F(HostileModel, ExternalDataSymlinkOutOfTheFolderIsRejected) {
  fs::create_symlink(dir_ / "secret.bin", models_ / "link.bin");
  auto s = load(external_model("link.bin"));
  ASSERT_FALSE(s.ok()) << "a symlink inside the folder let the model read a file outside it";
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument) << s.status().to_string();
  EXPECT_TRUE(contains(s.status().message(), "outside")) << s.status().message();

  // A symlink that stays inside the folder is fine.
  write_weights(models_ / "real.bin", 4);
  fs::create_directories(models_ / "sub");
  fs::create_symlink("../real.bin", models_ / "sub" / "inside.bin");
  auto ok = load(external_model("sub/inside.bin"));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
}

TEST_F(HostileModel, ExternalDataThatIsNotARegularFileIsRejected) {
  // A directory inside the folder.
  fs::create_directories(models_ / "adir");
  auto d = load(external_model("adir"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), ErrorCode::kInvalidArgument) << d.status().to_string();
  EXPECT_TRUE(contains(d.status().message(), "regular file")) << d.status().message();

  // A FIFO inside the folder: must not block waiting for a writer.
  ASSERT_EQ(mkfifo((models_ / "fifo").c_str(), 0600), 0);
  auto f = timed([&] { return load(external_model("fifo")).status(); });
  ASSERT_FALSE(f.status.ok());
  EXPECT_EQ(f.status.code(), ErrorCode::kInvalidArgument) << f.status.to_string();
  EXPECT_LT(f.seconds, 1.0);

  // A model whose folder is /dev asks for "zero"; one in /proc/self for "cmdline".
  auto bytes = external_model("zero").bytes();
  auto z = Session::load_from_memory(bytes.data(), bytes.size(), with_engine(Engine::kReference), "/dev");
  ASSERT_FALSE(z.ok()) << "/dev/zero was served as tensor data";
  EXPECT_EQ(z.status().code(), ErrorCode::kInvalidArgument) << z.status().to_string();
  auto pbytes = external_model("cmdline").bytes();
  auto p = Session::load_from_memory(pbytes.data(), pbytes.size(), with_engine(Engine::kReference), "/proc/self");
  ASSERT_FALSE(p.ok()) << "/proc/self/cmdline was served as tensor data";
}

TEST_F(HostileModel, ExternalDataOffsetPastTheEndIsRejected) {
  write_weights(models_ / "w.bin", 6);  // 24 bytes
  auto s = load(external_model("w.bin", "1000"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kParseError) << s.status().to_string();
  EXPECT_TRUE(contains(s.status().message(), "24 bytes")) << s.status().message();
  // offset + length overflows int64.
  auto o = load(external_model("w.bin", "9223372036854775800"));
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), ErrorCode::kParseError) << o.status().to_string();
  // In range: still loads.
  auto ok = load(external_model("w.bin", "8"));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
}

TEST_F(HostileModel, ExternalDataOffsetAndLengthAreParsedStrictly) {
  write_weights(models_ / "w.bin", 6);
  for (const char* bad : {"-8", "abc", "8abc", " 8", "+8", "0x8", "99999999999999999999"}) {
    auto s = load(external_model("w.bin", bad));
    ASSERT_FALSE(s.ok()) << "offset '" << bad << "' was accepted";
    EXPECT_EQ(s.status().code(), ErrorCode::kParseError) << bad << ": " << s.status().to_string();
    EXPECT_TRUE(contains(s.status().message(), "offset")) << s.status().message();
  }
  for (const char* bad : {"-1", "16x", "abc", "99999999999999999999"}) {
    auto s = load(external_model("w.bin", "0", bad));
    ASSERT_FALSE(s.ok()) << "length '" << bad << "' was accepted";
    EXPECT_EQ(s.status().code(), ErrorCode::kParseError) << bad << ": " << s.status().to_string();
    EXPECT_TRUE(contains(s.status().message(), "length")) << s.status().message();
  }
}

TEST_F(HostileModel, ExternalDataLengthMustMatchTheShape) {
  write_weights(models_ / "w.bin", 6);
  auto s = load(external_model("w.bin", "0", "12"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kParseError) << s.status().to_string();
  EXPECT_TRUE(contains(s.status().message(), "'w'")) << s.status().message();
  auto ok = load(external_model("w.bin", "0", "16"));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
}

// ---- 4. memory amplification: nothing allocated for data the file lacks -----

TEST_F(HostileModel, HugeInitializerWithoutDataFailsFastWithoutAllocating) {
  ModelBuilder b(11);
  b.input("x", {1}).output("y");
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(2000000000);  // 8 GB of floats announced, none present
  b.node("Add", {"x", "w"}, {"y"});
  auto r = timed([&] { return load(b).status(); });
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), ErrorCode::kParseError) << r.status.to_string();
  EXPECT_TRUE(contains(r.status.message(), "'w'")) << r.status.message();
  EXPECT_LT(r.seconds, 1.0);
  EXPECT_LT(r.rss_growth_mib, 64.0);

  // The same with raw_data of a few bytes.
  t->set_raw_data(std::string(16, '\0'));
  auto raw = timed([&] { return load(b).status(); });
  ASSERT_FALSE(raw.status.ok());
  EXPECT_EQ(raw.status.code(), ErrorCode::kParseError) << raw.status.to_string();
  EXPECT_LT(raw.seconds, 1.0);
  EXPECT_LT(raw.rss_growth_mib, 64.0);
}

TEST_F(HostileModel, HugeExternalTensorBackedByASmallFileFailsFastWithoutAllocating) {
  write_weights(models_ / "w.bin", 4);
  auto r = timed([&] { return load(external_model("w.bin", "", "", {8000000000})).status(); });
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), ErrorCode::kParseError) << r.status.to_string();
  EXPECT_TRUE(contains(r.status.message(), "16 bytes")) << r.status.message();
  EXPECT_LT(r.seconds, 1.0);
  EXPECT_LT(r.rss_growth_mib, 64.0);
}

TEST_F(HostileModel, ElementCountOverflowIsAnError) {
  // 2^62 x 4 elements wrap to 0 in int64: an empty raw_data must not "match".
  ModelBuilder b(11);
  b.input("x", {1, 4}).output("y");
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(int64_t{1} << 62);
  t->add_dims(4);
  t->set_raw_data("");
  b.node("Add", {"x", "w"}, {"y"});
  auto s = load(b);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kOutOfRange) << s.status().to_string();
  EXPECT_TRUE(contains(s.status().message(), "'w'")) << s.status().message();

  // The same through the typed field (float_data empty).
  t->clear_raw_data();
  auto typed = load(b);
  ASSERT_FALSE(typed.ok());
  EXPECT_EQ(typed.status().code(), ErrorCode::kOutOfRange) << typed.status().to_string();
}

TEST_F(HostileModel, ReshapeWhoseElementCountWrapsIsRejected) {
  // (2^62 + 1) x 4 = 2^64 + 4 wraps to 4 = the input's element count.
  ModelBuilder b(11);
  b.input("x", {1, 4}).output("y");
  b.init_i64("shape", {2}, {(int64_t{1} << 62) + 1, 4});
  b.node("Reshape", {"x", "shape"}, {"y"}, "wrapping_reshape");
  for (Engine e : {Engine::kReference, Engine::kOptimized}) {
    auto s = load(b, e);
    ASSERT_FALSE(s.ok()) << engine_name(e) << ": a reshape to 2^64+4 elements was accepted";
    EXPECT_TRUE(contains(s.status().message(), "wrapping_reshape")) << s.status().message();
  }
}

// ---- 8. malformed numbers are errors, not "Internal: stoll" -----------------

TEST_F(HostileModel, NumericDimParamThatOverflowsIsAParseError) {
  ModelBuilder b(11);
  b.input("x", {1, 4}, 1, {"99999999999999999999", ""}).output("y");
  b.node("Relu", {"x"}, {"y"});
  auto s = load(b);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kParseError) << s.status().to_string();
  EXPECT_TRUE(contains(s.status().message(), "'x'")) << s.status().message();
}

// ---- 3. huge shapes: a clear error at load, never a signal or a hang --------

// The 583-byte model of the issue: a 1x3x65536x65536 input into a Conv.
ModelBuilder huge_input_conv() {
  ModelBuilder b(11);
  b.input("x", {1, 3, 65536, 65536}).output("y");
  b.init_f32("w", {4, 3, 3, 3}, std::vector<float>(4 * 3 * 3 * 3, 0.1f));
  b.node("Conv", {"x", "w"}, {"y"}, "conv_on_huge_input");
  return b;
}

TEST_F(HostileModel, HugeGraphInputIsAnErrorOnTheOptimizedEngine) {
  auto r = timed([&] { return load(huge_input_conv(), Engine::kOptimized).status(); });
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), ErrorCode::kOutOfRange) << r.status.to_string();
  EXPECT_TRUE(contains(r.status.message(), "'x'")) << r.status.message();
  EXPECT_LT(r.seconds, 1.0);
}

TEST_F(HostileModel, HugeGraphInputIsAnErrorOnTheReferenceEngine) {
  auto r = timed([&] { return load(huge_input_conv(), Engine::kReference).status(); });
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), ErrorCode::kOutOfRange) << r.status.to_string();
  EXPECT_TRUE(contains(r.status.message(), "'x'")) << r.status.message();
  EXPECT_LT(r.seconds, 1.0);
}

// Resize whose scales give a 2^32 x 2^32 output from a 2x2 input.
ModelBuilder huge_resize() {
  ModelBuilder b(11);
  b.input("x", {1, 1, 2, 2}).output("y");
  b.init_f32("roi", {0}, {});
  b.init_f32("scales", {4}, {1.f, 1.f, 2147483648.f, 2147483648.f});
  b.node("Resize", {"x", "roi", "scales"}, {"y"}, "huge_resize");
  return b;
}

TEST_F(HostileModel, ResizeToTwoToThe32SquaredIsAnErrorOnTheOptimizedEngine) {
  auto r = timed([&] { return load(huge_resize(), Engine::kOptimized).status(); });
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), ErrorCode::kOutOfRange) << r.status.to_string();
  EXPECT_TRUE(contains(r.status.message(), "huge_resize")) << r.status.message();
  EXPECT_LT(r.seconds, 1.0);
}

TEST_F(HostileModel, ResizeToTwoToThe32SquaredIsAnErrorOnTheReferenceEngine) {
  auto r = timed([&] { return load(huge_resize(), Engine::kReference).status(); });
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), ErrorCode::kOutOfRange) << r.status.to_string();
  EXPECT_TRUE(contains(r.status.message(), "huge_resize")) << r.status.message();
  EXPECT_LT(r.seconds, 1.0);
}

// ---- 2. a conv bias of the wrong size is rejected, not over-read ------------

ModelBuilder conv_with_bias(int64_t bias_elems) {
  ModelBuilder b(11);
  b.input("x", {1, 3, 8, 8}).output("y");
  b.init_f32("w", {256, 3, 3, 3}, std::vector<float>(256 * 27, 0.f));
  b.init_f32("b", {bias_elems}, std::vector<float>(static_cast<size_t>(bias_elems), 0.5f));
  b.node("Conv", {"x", "w", "b"}, {"y"}, "short_bias_conv");
  return b;
}

TEST_F(HostileModel, ConvBiasOfOneElementIsRejectedByTheOptimizedEngine) {
  auto s = load(conv_with_bias(1), Engine::kOptimized);
  ASSERT_FALSE(s.ok()) << "the optimised engine accepted a 1-element bias for 256 channels";
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument) << s.status().to_string();
  EXPECT_TRUE(contains(s.status().message(), "short_bias_conv")) << s.status().message();
  EXPECT_TRUE(contains(s.status().message(), "bias")) << s.status().message();
}

TEST_F(HostileModel, ConvBiasOfOneElementIsRejectedByTheReferenceEngineAtLoad) {
  auto s = load(conv_with_bias(1), Engine::kReference);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument) << s.status().to_string();
  EXPECT_TRUE(contains(s.status().message(), "bias")) << s.status().message();
}

TEST_F(HostileModel, ConvWithAFullBiasStillRunsOnBothEngines) {
  for (Engine e : {Engine::kReference, Engine::kOptimized}) {
    auto s = load(conv_with_bias(256), e);
    ASSERT_TRUE(s.ok()) << engine_name(e) << ": " << s.status().to_string();
    auto out = s->run({Tensor(DType::kFloat32, {1, 3, 8, 8})});
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    const Tensor& y = (*out)[0];
    ASSERT_EQ(y.shape(), (Shape{1, 256, 6, 6}));
    for (int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(y.data<float>()[i], 0.5f) << engine_name(e) << " at " << i;
  }
}

TEST_F(HostileModel, OptimizedConvChecksBiasAndWeightsItself) {
  // The engine's own check, below shape inference: a graph whose bias or
  // weight no longer matches (as if a pass had been bypassed) is refused
  // instead of being copied by the weight's channel count.
  auto bytes = conv_with_bias(256).bytes();
  graph::Graph g = onnx_io::load_onnx_memory(bytes.data(), bytes.size(), ".");
  graph::run_standard_passes(g, {}, kernels::ref::evaluator());
  SessionOptions opts = with_engine(Engine::kOptimized);
  ASSERT_NO_THROW(runtime::compile_optimized(g, opts));

  graph::Graph short_bias = g;
  short_bias.constants["b"] = Tensor(DType::kFloat32, {1});
  try {
    runtime::compile_optimized(short_bias, opts);
    ADD_FAILURE() << "a 1-element bias for 256 channels was compiled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(contains(e.what(), "short_bias_conv")) << e.what();
    EXPECT_TRUE(contains(e.what(), "bias")) << e.what();
  }

  graph::Graph wrong_weight = g;
  wrong_weight.constants["w"] = Tensor(DType::kFloat32, {256, 2, 3, 3});
  try {
    runtime::compile_optimized(wrong_weight, opts);
    ADD_FAILURE() << "a weight for 2 input channels was compiled for a 3-channel input";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(contains(e.what(), "weight")) << e.what();
  }
}

// ---- the limits are options --------------------------------------------------

TEST_F(HostileModel, TensorAndWeightLimitsAreConfigurable) {
  write_weights(models_ / "w.bin", 4);
  ModelBuilder b = external_model("w.bin");
  SessionOptions o = with_engine(Engine::kReference);
  o.limits.max_tensor_bytes = 8;  // w is 16 bytes
  auto s = Session::load(b.save(models_ / "m.onnx").string(), o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kOutOfRange) << s.status().to_string();
  EXPECT_TRUE(contains(s.status().message(), "'w'")) << s.status().message();
  EXPECT_TRUE(contains(s.status().message(), "max_tensor_bytes")) << s.status().message();

  ModelBuilder two(11);
  two.input("x", {1, 4}).output("y");
  two.init_f32("a", {1, 4}, {1, 2, 3, 4}).init_f32("c", {1, 4}, {1, 2, 3, 4});
  two.node("Add", {"x", "a"}, {"t"});
  two.node("Add", {"t", "c"}, {"y"});
  SessionOptions w = with_engine(Engine::kReference);
  w.limits.max_total_weight_bytes = 24;  // 2 x 16 bytes
  auto t = Session::load(two.save(models_ / "two.onnx").string(), w);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), ErrorCode::kOutOfRange) << t.status().to_string();
  EXPECT_TRUE(contains(t.status().message(), "max_total_weight_bytes")) << t.status().message();
  w.limits.max_total_weight_bytes = 32;
  EXPECT_TRUE(Session::load((models_ / "two.onnx").string(), w).ok());
}

TEST_F(HostileModel, DimensionLimitIsConfigurable) {
  ModelBuilder b(11);
  b.input("x", {1, 4}).output("y");
  b.node("Relu", {"x"}, {"y"});
  SessionOptions o = with_engine(Engine::kReference);
  o.limits.max_dim = 3;
  auto s = load(b);  // default limits: fine
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  auto small = Session::load((models_ / "m.onnx").string(), o);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.status().code(), ErrorCode::kOutOfRange) << small.status().to_string();
  EXPECT_TRUE(contains(small.status().message(), "graph input 'x'")) << small.status().message();
  EXPECT_TRUE(contains(small.status().message(), "max_dim")) << small.status().message();
}

TEST_F(HostileModel, OptimizedWorkspaceLimitIsConfigurable) {
  SessionOptions o = with_engine(Engine::kOptimized);
  ASSERT_TRUE(load(conv_with_bias(256), Engine::kOptimized).ok());
  o.limits.max_workspace_bytes = 1024;
  auto s = Session::load((models_ / "m.onnx").string(), o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kOutOfRange) << s.status().to_string();
  EXPECT_TRUE(contains(s.status().message(), "max_workspace_bytes")) << s.status().message();
}

TEST_F(HostileModel, BatchOptionIsCheckedAgainstTheLimits) {
  // The caller's batch scales every activation: a batch that pushes one past
  // max_tensor_bytes is refused at load, not allocated at the first run.
  SessionOptions o = with_engine(Engine::kOptimized);
  o.batch = 1 << 20;  // x: 1 MiB images of 768 bytes = 768 MiB; y: 9216 bytes each = 9 GiB
  auto s = Session::load(conv_with_bias(256).save(models_ / "m.onnx").string(), o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kOutOfRange) << s.status().to_string();
}

TEST_F(HostileModel, ShapesKnownOnlyAtRunTimeAreCheckedBeforeAllocating) {
  // Resize scales from a graph input: the reference engine sizes the output
  // at run time. Scales of 32768 ask for 2^32 floats (16 GiB).
  ModelBuilder b(11);
  b.input("x", {1, 1, 2, 2}).input("scales", {4}).output("y");
  b.init_f32("roi", {0}, {});
  b.node("Resize", {"x", "roi", "scales"}, {"y"}, "dynamic_resize");
  auto s = load(b, Engine::kAuto);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->engine(), Engine::kReference);
  Tensor scales(DType::kFloat32, {4});
  std::vector<float> sv = {1.f, 1.f, 32768.f, 32768.f};
  std::copy(sv.begin(), sv.end(), scales.data<float>());
  auto r = timed([&] { return s->run({Tensor(DType::kFloat32, {1, 1, 2, 2}), scales}).status(); });
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), ErrorCode::kOutOfRange) << r.status.to_string();
  EXPECT_TRUE(contains(r.status.message(), "dynamic_resize")) << r.status.message();
  EXPECT_LT(r.seconds, 1.0);
  EXPECT_LT(r.rss_growth_mib, 64.0);
  // Modest scales still run.
  sv = {1.f, 1.f, 2.f, 2.f};
  std::copy(sv.begin(), sv.end(), scales.data<float>());
  auto ok = s->run({Tensor(DType::kFloat32, {1, 1, 2, 2}), scales});
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ((*ok)[0].shape(), (Shape{1, 1, 4, 4}));
}

}  // namespace
}  // namespace damoyolo
