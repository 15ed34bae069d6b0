// damoyolo::quantize_model on the bundled trained model: a standard QDQ file
// comes out (opset 13, per-channel int8 weights, int32 biases, uint8
// activations), it loads and detects what the float model detects, partial
// quantisation keeps what it is asked to keep, and bad requests say what.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <fstream>
#include <map>

#include "damoyolo/detector.h"
#include "damoyolo/quantize.h"
#include "testutil/testutil.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;

std::string demo_model() { return (testing::source_dir() / "models" / "damoyolo_demo.onnx").string(); }
std::string demo_image() { return (testing::source_dir() / "models" / "demo.jpg").string(); }

std::vector<std::string> calibration_images() {
  std::vector<std::string> v{demo_image()};
  for (const char* f : {"chelsea.jpg", "astronaut.png", "coffee.png"}) {
    const fs::path p = testing::fixtures_dir() / "images" / f;
    if (fs::exists(p)) v.push_back(p.string());
  }
  return v;
}

onnx::ModelProto read(const std::string& path) {
  onnx::ModelProto m;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(m.ParseFromIstream(&f)) << path;
  return m;
}

std::map<std::string, int> op_counts(const onnx::ModelProto& m) {
  std::map<std::string, int> c;
  for (const auto& n : m.graph().node()) ++c[n.op_type()];
  return c;
}

float iou(const Detection& a, const Detection& b) {
  const float iw = std::max(0.f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  const float ih = std::max(0.f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  const float inter = iw * ih;
  return inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter);
}

// The calibration and sensitivity runs on one thread: ctest runs two tests
// at once on two cores, and an OpenMP team of two sharing its cores with
// another process spins at every barrier (the many small inferences here
// took 10x longer in the test command's parallel run than alone).
QuantizeOptions one_thread() {
  QuantizeOptions o;
  o.detector.session.threads = 1;
  return o;
}

class Quantize : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::make_temp_dir("quantize"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(Quantize, WritesAStandardQdqModelThatDetectsWhatTheFloatModelDoes) {
  const std::string out = (dir_ / "demo_int8.onnx").string();
  auto r = quantize_model(demo_model(), calibration_images(), out, one_thread());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->convolutions, 91);
  EXPECT_EQ(r->quantized, 91);
  EXPECT_EQ(r->opset_from, 11);
  EXPECT_EQ(r->opset_to, 13);
  EXPECT_EQ(r->images, static_cast<int>(calibration_images().size()));

  const onnx::ModelProto q = read(out), f = read(demo_model());
  auto qc = op_counts(q), fc = op_counts(f);
  EXPECT_EQ(qc["Conv"], fc["Conv"]);
  // One Q/DQ pair per distinct convolution input, a DQ per weight and bias.
  std::set<std::string> conv_inputs;
  int biases = 0;
  for (const auto& n : f.graph().node())
    if (n.op_type() == "Conv") {
      conv_inputs.insert(n.input(0));
      biases += n.input_size() > 2;
    }
  EXPECT_EQ(qc["QuantizeLinear"], static_cast<int>(conv_inputs.size()));
  EXPECT_EQ(qc["DequantizeLinear"], static_cast<int>(conv_inputs.size()) + 91 + biases);
  // Every conv reads dequantised int8 weights; no float weight is left.
  std::map<std::string, const onnx::TensorProto*> inits;
  for (const auto& t : q.graph().initializer()) inits[t.name()] = &t;
  std::map<std::string, const onnx::NodeProto*> producer;
  for (const auto& n : q.graph().node())
    for (const auto& o : n.output()) producer[o] = &n;
  for (const auto& n : q.graph().node()) {
    if (n.op_type() != "Conv") continue;
    const onnx::NodeProto* w = producer[n.input(1)];
    ASSERT_TRUE(w && w->op_type() == "DequantizeLinear") << n.name();
    EXPECT_EQ(inits.at(w->input(0))->data_type(), onnx::TensorProto::INT8);
    EXPECT_EQ(inits.at(w->input(1))->dims(0), inits.at(w->input(0))->dims(0));  // a scale per output channel
    const onnx::NodeProto* x = producer[n.input(0)];
    ASSERT_TRUE(x && x->op_type() == "DequantizeLinear") << n.name();
    EXPECT_EQ(inits.at(x->input(2))->data_type(), onnx::TensorProto::UINT8);
    if (n.input_size() > 2) {
      EXPECT_EQ(inits.at(producer[n.input(2)]->input(0))->data_type(), onnx::TensorProto::INT32);
    }
  }
  // The model's metadata (class names) survives, and says how it was made.
  std::map<std::string, std::string> meta;
  for (const auto& p : q.metadata_props()) meta[p.key()] = p.value();
  EXPECT_TRUE(meta.count("names"));
  EXPECT_NE(meta["damoyolo.quantization"].find("\"method\":\"minmax\""), std::string::npos);

  // It loads here and finds the same objects.
  auto fd = Detector::create(demo_model());
  auto qd = Detector::create(out);
  ASSERT_TRUE(fd.ok() && qd.ok()) << qd.status().message();
  EXPECT_EQ(qd->class_names(), fd->class_names());
  auto fr = fd->detect_file(demo_image());
  auto qr = qd->detect_file(demo_image());
  ASSERT_TRUE(fr.ok() && qr.ok());
  int confident = 0;
  for (const Detection& d : fr->detections) {
    if (d.score < 0.3f) continue;
    ++confident;
    bool found = false;
    for (const Detection& e : qr->detections)
      // 0.08: with four calibration images, the borderline objects (score
      // ~0.58) move most; the INT8 engine rounds at every layer (one output
      // step either way, tests/engine/int8_conv_test.cc), the fake-quantised
      // path less. The held-out AP is the accuracy measure (docs/quantization.md).
      if (e.class_id == d.class_id && iou(d, e) > 0.9f && std::fabs(e.score - d.score) < 0.08f) found = true;
    EXPECT_TRUE(found) << "class " << d.class_id << " score " << d.score;
  }
  EXPECT_GE(confident, 5);
}

// The quantise → run round trip on the INT8 engine: every convolution of
// the written file runs on oneDNN's INT8 kernels (the plan says so, nothing
// falls back), and the detections are the reference engine's (the file's
// QDQ nodes one by one) to the rounding of one step per layer.
TEST_F(Quantize, TheInt8EngineRunsTheQuantisedModelAsTheReferenceEngineDoes) {
  const std::string out = (dir_ / "demo_int8.onnx").string();
  auto r = quantize_model(demo_model(), calibration_images(), out, one_thread());
  ASSERT_TRUE(r.ok()) << r.status().message();

  DetectorOptions io, ro;
  io.session.engine = Engine::kOptimized;
  ro.session.engine = Engine::kReference;
  auto id = Detector::create(out, io);
  auto rd = Detector::create(out, ro);
  ASSERT_TRUE(id.ok() && rd.ok()) << id.status().message() << rd.status().message();
  const CompiledPlan& p = id->session().plan();
  EXPECT_EQ(p.fallbacks(), 0) << p.to_text();
  // The 91 convolutions, and the 11 concatenations a QuantizeLinear follows
  // (quantised part by part, so they move uint8).
  EXPECT_EQ(p.rewrites("fuse_qdq_conv"), 91 + 11) << p.to_text();
  EXPECT_EQ(p.count_op("Concat"), 11) << p.to_text();
  int int8_convs = 0, u8_out = 0;
  for (const PlanStep& st : p.steps) {
    if (st.op != "Conv") continue;
    EXPECT_EQ(st.src.rfind("u8 ", 0), 0u) << st.nodes[0] << ": " << st.src;
    // (the implementation's name says int8 or vnni; the plan's marker says
    // which arithmetic: lower_conv.cc puts it first)
    int8_convs += !st.post_ops.empty() && st.post_ops.front().rfind("int8", 0) == 0;
    u8_out += st.dst.rfind("u8 ", 0) == 0;
  }
  EXPECT_EQ(int8_convs, 91) << p.to_text();
  // Most convolutions hand the next one uint8 (requantisation fused); the
  // rest end in a float residual sum, a concatenation or the head.
  EXPECT_GE(u8_out, 45) << p.to_text();

  auto ir = id->detect_file(demo_image());
  auto rr = rd->detect_file(demo_image());
  ASSERT_TRUE(ir.ok() && rr.ok());
  int confident = 0;
  for (const Detection& d : rr->detections) {
    if (d.score < 0.3f) continue;
    ++confident;
    bool found = false;
    for (const Detection& e : ir->detections)
      if (e.class_id == d.class_id && iou(d, e) > 0.9f && std::fabs(e.score - d.score) < 0.04f) found = true;
    EXPECT_TRUE(found) << "class " << d.class_id << " score " << d.score;
  }
  EXPECT_GE(confident, 5);
}

// The accuracy budget (issue 16: INT8 AP within 0.005 of FP32) on a small
// held-out split of the bundled model's procedural data: 16 training images
// to calibrate, 60 validation images to score, the INT8 engine against the
// float model, both through `damoyolo eval` (the full 500-image figures are
// in docs/quantization.md). Measured: 0.780 FP32, 0.778 INT8.
double cli_ap(const std::string& args) {
  int status = 0;
  const std::string out =
      testing::run_capture(testing::quote(testing::cli_path().string()) + " eval -q --threads 1 " + args + " 2>&1",
                           &status);
  EXPECT_EQ(status, 0) << out;
  const std::string key = "IoU=0.50:0.95 | area=   all | maxDets=100 ] = ";
  const size_t at = out.find(key);
  if (at == std::string::npos) {
    ADD_FAILURE() << out;
    return -1;
  }
  return std::stod(out.substr(at + key.size()));
}

TEST_F(Quantize, Int8ApIsWithinTheBudgetOfFp32OnAHeldOutSplit) {
  if (!fs::exists(testing::cli_path())) GTEST_SKIP() << "damoyolo CLI not built";
  const fs::path py = testing::source_dir() / "python";
  int status = 0;
  for (const char* split : {"--out cal --split train --count 16 --seed 7", "--out val --split val --count 60 --seed 1"}) {
    const std::string out = testing::run_capture(
        "cd " + testing::quote(dir_.string()) + " && PYTHONPATH=" + testing::quote(py.string()) +
            " /usr/bin/python3 -m damoyolo_train.synth " + split + " 2>&1",
        &status);
    ASSERT_EQ(status, 0) << out;
  }
  const std::string q = (dir_ / "demo_int8.onnx").string();
  std::vector<std::string> calib;
  for (const auto& e : fs::directory_iterator(dir_ / "cal" / "images")) calib.push_back(e.path().string());
  std::sort(calib.begin(), calib.end());
  auto r = quantize_model(demo_model(), calib, q, one_thread());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const std::string data = " --images " + testing::quote((dir_ / "val" / "images").string()) + " --annotations " +
                           testing::quote((dir_ / "val" / "instances_val.json").string());
  const double fp32 = cli_ap("-m " + testing::quote(demo_model()) + data);
  const double int8 = cli_ap("-m " + testing::quote(q) + data);
  EXPECT_GT(fp32, 0.7);  // a trained model: the comparison means something
  EXPECT_GE(int8, fp32 - 0.005) << "FP32 AP " << fp32 << ", INT8 AP " << int8;
  std::printf("60 held-out images: FP32 AP %.3f, INT8 AP %.3f\n", fp32, int8);
}

TEST_F(Quantize, PartialQuantisationKeepsTheNamedAndTheMostSensitiveInFloat) {
  const std::string out = (dir_ / "partial.onnx").string();
  QuantizeOptions o = one_thread();
  o.keep_float = {"/gfl_cls.0/Conv"};
  o.keep_float_count = 2;
  o.method = CalibrationMethod::kPercentile;
  auto r = quantize_model(demo_model(), {demo_image()}, out, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->quantized, 91 - 3);
  ASSERT_EQ(r->kept_float.size(), 3u);
  EXPECT_EQ(r->kept_float[0], "/gfl_cls.0/Conv");
  // Every other convolution was measured, most sensitive first.
  ASSERT_EQ(r->sensitivity.size(), 90u);
  EXPECT_GE(r->sensitivity[0].second, r->sensitivity[1].second);
  EXPECT_GE(r->sensitivity[1].second, r->sensitivity.back().second);
  EXPECT_EQ(r->kept_float[1], r->sensitivity[0].first);
  const onnx::ModelProto q = read(out);
  std::map<std::string, const onnx::NodeProto*> producer;
  for (const auto& n : q.graph().node())
    for (const auto& x : n.output()) producer[x] = &n;
  for (const auto& n : q.graph().node()) {
    if (n.op_type() != "Conv") continue;
    const bool kept = std::find(r->kept_float.begin(), r->kept_float.end(), n.name()) != r->kept_float.end();
    const onnx::NodeProto* w = producer[n.input(1)];
    EXPECT_EQ(kept, w == nullptr) << n.name();  // kept: the float initializer, read directly
  }
  EXPECT_TRUE(Detector::create(out).ok());
}

// The activation scales a QDQ file gives each quantised tensor (its
// QuantizeLinear's scale initializer).
std::map<std::string, float> activation_scales(const onnx::ModelProto& m) {
  std::map<std::string, const onnx::TensorProto*> inits;
  for (const auto& t : m.graph().initializer()) inits[t.name()] = &t;
  std::map<std::string, float> s;
  for (const auto& n : m.graph().node())
    if (n.op_type() == "QuantizeLinear") {
      const onnx::TensorProto* t = inits.at(n.input(1));
      float v = 0;
      if (t->float_data_size() > 0) v = t->float_data(0);
      else std::memcpy(&v, t->raw_data().data(), sizeof v);
      s[n.input(0)] = v;
    }
  return s;
}

// Entropy calibration only clips (each range within the observed minimum and
// maximum): every scale at most minmax's, and some smaller. The model runs
// on the INT8 engine like any other.
TEST_F(Quantize, EntropyCalibrationClipsTheRangesAndRuns) {
  const std::string mm = (dir_ / "minmax.onnx").string(), en = (dir_ / "entropy.onnx").string();
  QuantizeOptions o = one_thread();
  ASSERT_TRUE(quantize_model(demo_model(), calibration_images(), mm, o).ok());
  o.method = CalibrationMethod::kEntropy;
  auto r = quantize_model(demo_model(), calibration_images(), en, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const onnx::ModelProto q = read(en);
  const auto a = activation_scales(read(mm)), b = activation_scales(q);
  ASSERT_EQ(a.size(), b.size());
  int narrower = 0;
  for (const auto& [name, scale] : b) {
    EXPECT_LE(scale, a.at(name) * 1.0001f) << name;
    narrower += scale < a.at(name) * 0.99f;
  }
  EXPECT_GT(narrower, 0);
  std::map<std::string, std::string> meta;
  for (const auto& p : q.metadata_props()) meta[p.key()] = p.value();
  EXPECT_NE(meta["damoyolo.quantization"].find("\"method\":\"entropy\""), std::string::npos);
  auto d = Detector::create(en);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->session().plan().fallbacks(), 0);
  EXPECT_TRUE(d->detect_file(demo_image()).ok());
}

// Partial quantisation by a budget: the fewest most-sensitive convolutions
// kept in float for the whole model's output change to be within it.
TEST_F(Quantize, ASensitivityBudgetKeepsTheFewestConvolutionsThatMeetIt) {
  const std::string out = (dir_ / "budget.onnx").string();
  const std::vector<std::string> one{demo_image()};  // one model run per candidate: keep it short
  QuantizeOptions o = one_thread();
  o.method = CalibrationMethod::kPercentile;
  o.sensitivity_budget = 1e9;  // anything passes: nothing kept
  auto r = quantize_model(demo_model(), one, out, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->kept_float.empty());
  EXPECT_EQ(r->quantized, 91);
  const double all = r->output_change_all_int8;
  ASSERT_GT(all, 0);
  // A budget below the all-INT8 change: some kept, the written model within it,
  // and one fewer would not have been (the count is the smallest).
  o.sensitivity_budget = all * 0.8;
  r = quantize_model(demo_model(), one, out, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_FALSE(r->kept_float.empty());
  EXPECT_LE(r->output_change, o.sensitivity_budget);
  EXPECT_EQ(r->quantized, 91 - static_cast<int>(r->kept_float.size()));
  for (size_t k = 0; k < r->kept_float.size(); ++k) EXPECT_EQ(r->kept_float[k], r->sensitivity[k].first);
  // Both a count and a budget: refused.
  o.keep_float_count = 2;
  r = quantize_model(demo_model(), one, out, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(Quantize, BadRequestsSayWhat) {
  const std::string out = (dir_ / "x.onnx").string();
  auto r = quantize_model(demo_model(), {}, out);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no calibration images"), std::string::npos);
  r = quantize_model(demo_model(), {demo_image()}, demo_model());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is the input model"), std::string::npos);
  const fs::path bad = dir_ / "bad.jpg";
  std::ofstream(bad) << "not a jpeg";
  r = quantize_model(demo_model(), {demo_image(), bad.string()}, out);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bad.jpg"), std::string::npos) << r.status().message();
  EXPECT_FALSE(fs::exists(out));  // nothing half-written
  QuantizeOptions o = one_thread();
  o.keep_float = {"/no/such/Conv"};
  r = quantize_model(demo_model(), {demo_image()}, out, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  r = quantize_model((dir_ / "missing.onnx").string(), {demo_image()}, out);
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace damoyolo
