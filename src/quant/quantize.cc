// Post-training quantisation into the QDQ form (damoyolo/quantize.h).
//
// The model is edited as ONNX protobuf, not through the runtime's graph: the
// output must be the input file with Q/DQ nodes added and nothing else
// changed (other runtimes load it, and the float graph's own structure —
// what the optimiser would fuse — must stay as exported). The runtime is
// used to run it: the float model with the convolutions' inputs added as
// graph outputs (calibration), and variants with one convolution quantised
// (sensitivity).
#include "damoyolo/quantize.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include "damoyolo/image.h"
#include "damoyolo/session.h"
#include "onnx/onnx_loader.h"

namespace damoyolo {
namespace {

namespace fs = std::filesystem;

struct Conv {
  int node = 0;  // index in graph.node
  std::string name;
  std::string x, w, b;  // b empty when absent
};

// What calibration saw of one tensor.
struct Range {
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  std::vector<uint64_t> hist;  // kPercentile, kEntropy: over [lo, hi]
  int rank = 0;
};

struct QParams {
  float scale = 1.f;
  uint8_t zero_point = 0;
};

constexpr int kHistBins = 4096;

int ai_onnx_opset(const onnx::ModelProto& m) {
  for (const auto& o : m.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") return static_cast<int>(o.version());
  return 0;
}

void set_ai_onnx_opset(onnx::ModelProto& m, int version) {
  for (auto& o : *m.mutable_opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") o.set_version(version);
}

const onnx::TensorProto* find_initializer(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& t : g.initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

onnx::TensorProto make_tensor(const std::string& name, int type, const std::vector<int64_t>& dims, const void* data,
                              size_t bytes) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(type);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(std::string(static_cast<const char*>(data), bytes));
  return t;
}

// A name no tensor, node or initializer of the graph has yet.
class Names {
 public:
  explicit Names(const onnx::GraphProto& g) {
    for (const auto& n : g.node()) {
      for (const auto& s : n.input()) used_.insert(s);
      for (const auto& s : n.output()) used_.insert(s);
      used_.insert(n.name());
    }
    for (const auto& t : g.initializer()) used_.insert(t.name());
    for (const auto& v : g.input()) used_.insert(v.name());
    for (const auto& v : g.output()) used_.insert(v.name());
  }
  std::string fresh(const std::string& base) {
    std::string n = base;
    for (int i = 1; used_.count(n); ++i) n = base + "_" + std::to_string(i);
    used_.insert(n);
    return n;
  }

 private:
  std::set<std::string> used_;
};

Result<onnx::ModelProto> read_model(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status(ErrorCode::kNotFound, path + ": cannot open");
  onnx::ModelProto m;
  if (!m.ParseFromIstream(&f)) return Status(ErrorCode::kParseError, path + ": not an ONNX model");
  return m;
}

std::vector<Conv> find_convs(const onnx::GraphProto& g) {
  std::vector<Conv> convs;
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& n = g.node(i);
    if (n.op_type() != "Conv" || !(n.domain().empty() || n.domain() == "ai.onnx") || n.input_size() < 2) continue;
    Conv c{i, n.name().empty() ? "Conv#" + std::to_string(i) : n.name(), n.input(0), n.input(1),
           n.input_size() > 2 ? n.input(2) : ""};
    convs.push_back(c);
  }
  return convs;
}

// The model with `probes` added as graph outputs (float, shape left to the runtime).
std::string with_outputs(const onnx::ModelProto& m, const std::vector<std::string>& probes) {
  onnx::ModelProto copy = m;
  std::set<std::string> outputs;
  for (const auto& o : copy.graph().output()) outputs.insert(o.name());
  for (const auto& i : copy.graph().input()) outputs.insert(i.name());  // observed as given
  for (const auto& p : probes) {
    if (outputs.count(p)) continue;
    auto* v = copy.mutable_graph()->add_output();
    v->set_name(p);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    outputs.insert(p);
  }
  std::string bytes;
  copy.SerializeToString(&bytes);
  return bytes;
}

// Runs `bytes` on every calibration image; `fn(outputs by name)` after each.
template <class Fn>
Result<int> run_images(const std::string& bytes, const std::string& base_dir, const std::vector<std::string>& images,
                       const QuantizeOptions& o, Fn&& fn) {
  SessionOptions so = o.detector.session;
  so.batch = 1;
  auto s = Session::load_from_memory(bytes.data(), bytes.size(), so, base_dir);
  if (!s.ok()) return s.status();
  const auto& in = s->inputs();
  if (in.size() != 1 || in[0].dims.size() != 4 || in[0].dims[1] != 3)
    return Status(ErrorCode::kUnsupported, "quantize: the model must have one image input [N,3,H,W]");
  const int h = static_cast<int>(in[0].dims[2]), w = static_cast<int>(in[0].dims[3]);
  Preprocessor pre(PreprocessOptions{o.detector.simd_preprocess, o.detector.fused_preprocess});
  Tensor input(DType::kFloat32, {1, 3, h, w});
  int used = 0;
  for (const auto& path : images) {
    auto img = decode_image_file(path, o.detector.decode);
    if (!img.ok()) return Status(img.status().code(), "calibration image " + img.status().message());
    Status st = pre.run(img->view(), w, h, o.detector.resize, input.data<float>());
    if (!st.ok()) return Status(st.code(), "calibration image " + path + ": " + st.message());
    auto out = s->run_named({{in[0].name, input}});
    if (!out.ok()) return Status(out.status().code(), "calibration run on " + path + ": " + out.status().message());
    // The graph input is observed as it went in (it cannot be an output).
    out->emplace(in[0].name, input);
    st = fn(*out);
    if (!st.ok()) return st;
    ++used;
  }
  return used;
}

QParams qparams(float lo, float hi) {
  // The range must hold 0 exactly (zero padding, ReLU zeros): uint8 with a
  // zero point, as ONNX Runtime's and NNCF's activations.
  lo = std::min(lo, 0.f);
  hi = std::max(hi, 0.f);
  QParams q;
  q.scale = (hi - lo) / 255.f;
  if (!(q.scale > 0.f) || !std::isfinite(q.scale)) q.scale = 1.f;
  q.zero_point = static_cast<uint8_t>(std::clamp<long>(std::lround(-lo / q.scale), 0, 255));
  return q;
}

// The range keeping `percentile` % of the histogram's values.
std::pair<float, float> percentile_range(const Range& r, double percentile) {
  uint64_t total = 0;
  for (uint64_t c : r.hist) total += c;
  if (total == 0 || !(r.hi > r.lo)) return {r.lo, r.hi};
  const double tail = (100.0 - percentile) / 200.0 * static_cast<double>(total);
  const double width = (static_cast<double>(r.hi) - r.lo) / kHistBins;
  double acc = 0;
  int lo_bin = 0;
  for (; lo_bin < kHistBins; ++lo_bin) {
    if (acc + r.hist[lo_bin] > tail) break;
    acc += r.hist[lo_bin];
  }
  acc = 0;
  int hi_bin = kHistBins - 1;
  for (; hi_bin > 0; --hi_bin) {
    if (acc + r.hist[hi_bin] > tail) break;
    acc += r.hist[hi_bin];
  }
  return {static_cast<float>(r.lo + lo_bin * width), static_cast<float>(r.lo + (hi_bin + 1) * width)};
}

// KL(P || Q) of a window of the histogram, bins [a, b), as TensorRT's
// entropy calibration measures it: P is the window with the clipped tails
// folded into its edge bins (what quantising to this range does to them);
// Q is the window *without* the tails quantised to 255 levels, each level's
// mass spread over its non-empty bins. Clipping much piles mass onto P's
// edges that Q does not have (a large divergence); a wide window merges many
// bins into each level (a large divergence too). Both normalised; a bin
// where only P has mass gets a tiny Q (smoothing), not an infinite term.
double window_kl(const std::vector<uint64_t>& h, int a, int b) {
  const int n = b - a;
  std::vector<double> p(static_cast<size_t>(n)), q(static_cast<size_t>(n), 0.0);
  double ptotal = 0, qtotal = 0;
  for (int i = 0; i < n; ++i) p[i] = static_cast<double>(h[a + i]);
  constexpr int kLevels = 255;
  for (int l = 0; l < kLevels; ++l) {
    const int lo = static_cast<int>(static_cast<int64_t>(l) * n / kLevels);
    const int hi = static_cast<int>(static_cast<int64_t>(l + 1) * n / kLevels);
    double mass = 0;
    int nonzero = 0;
    for (int i = lo; i < hi; ++i) {
      mass += p[i];
      nonzero += p[i] > 0;
    }
    for (int i = lo; i < hi; ++i)
      if (p[i] > 0) q[i] = mass / nonzero;
  }
  for (int i = 0; i < a; ++i) p[0] += static_cast<double>(h[i]);
  for (int i = b; i < static_cast<int>(h.size()); ++i) p[n - 1] += static_cast<double>(h[i]);
  for (int i = 0; i < n; ++i) ptotal += p[i], qtotal += q[i];
  if (ptotal <= 0 || qtotal <= 0) return std::numeric_limits<double>::infinity();
  constexpr double kEps = 1e-12;
  double kl = 0;
  for (int i = 0; i < n; ++i) {
    if (p[i] <= 0) continue;
    const double pi = p[i] / ptotal, qi = std::max(q[i] / qtotal, kEps);
    kl += pi * std::log(pi / qi);
  }
  return kl;
}

// The range of least information loss: the upper end swept with the lower
// at the minimum, then the lower end with that upper end (activations here
// have one long tail — SiLU and ReLU outputs upwards; a joint search would
// cost the square). Windows narrower than 255 bins are not considered (they
// would quantise below the histogram's resolution).
std::pair<float, float> entropy_range(const Range& r) {
  if (r.hist.empty() || !(r.hi > r.lo)) return {r.lo, r.hi};
  // 2048 bins (pairs merged), as TensorRT: fine enough, half the work.
  std::vector<uint64_t> h(r.hist.size() / 2);
  for (size_t i = 0; i < h.size(); ++i) h[i] = r.hist[2 * i] + r.hist[2 * i + 1];
  const int bins = static_cast<int>(h.size());
  constexpr int kMinWindow = 256, kStep = 8;
  int best_b = bins;
  double best = std::numeric_limits<double>::infinity();
  for (int b = kMinWindow; b <= bins; b += kStep) {
    const double kl = window_kl(h, 0, b);
    if (kl < best) best = kl, best_b = b;
  }
  int best_a = 0;
  best = std::numeric_limits<double>::infinity();
  for (int a = 0; a + kMinWindow <= best_b; a += kStep) {
    const double kl = window_kl(h, a, best_b);
    if (kl < best) best = kl, best_a = a;
  }
  const double width = (static_cast<double>(r.hi) - r.lo) / bins;
  return {static_cast<float>(r.lo + best_a * width), static_cast<float>(r.lo + best_b * width)};
}

// Opset 11/12 → 13 for what this product's models and the common detector
// exports use: the ops whose attributes became inputs get them as
// initializers; Softmax-like ops must work over the last axis (11 coerces to
// 2-D around `axis`, 13 works along it: the same only there); every other op
// must be one whose definition did not change between 11 and 13.
Status upgrade_to_13(onnx::ModelProto& m, const std::map<std::string, Range>& ranges, int from) {
  static const std::set<std::string> unchanged = {
      "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Abs", "Floor", "Ceil", "Erf", "Conv",
      "ConvTranspose", "Concat", "Gather", "GatherElements", "MatMul", "Gemm", "MaxPool", "AveragePool",
      "GlobalAveragePool", "GlobalMaxPool", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid",
      "Softplus", "Elu", "Selu", "Reshape", "Resize", "Slice", "Transpose", "Identity", "Constant", "Shape", "Cast",
      "Flatten", "Clip", "Pad", "BatchNormalization", "Equal", "Less", "Greater", "Where", "Expand",
      "ConstantOfShape", "Range", "Min", "Max", "ReduceMean", "ReduceMax", "ReduceMin", "ArgMax", "ArgMin", "TopK",
      "Tile", "Not", "And", "Or", "Dropout", "InstanceNormalization", "DepthToSpace", "SpaceToDepth", "Upsample"};
  auto* g = m.mutable_graph();
  Names names(*g);
  for (auto& n : *g->mutable_node()) {
    if (!(n.domain().empty() || n.domain() == "ai.onnx")) continue;
    const std::string& op = n.op_type();
    auto take_ints_attr = [&](const char* attr, int position) {
      for (int i = 0; i < n.attribute_size(); ++i) {
        if (n.attribute(i).name() != attr) continue;
        std::vector<int64_t> v(n.attribute(i).ints().begin(), n.attribute(i).ints().end());
        const std::string name = names.fresh((n.name().empty() ? op : n.name()) + "_" + attr);
        *g->add_initializer() =
            make_tensor(name, onnx::TensorProto::INT64, {static_cast<int64_t>(v.size())}, v.data(), v.size() * 8);
        while (n.input_size() < position) n.add_input("");
        if (n.input_size() == position) n.add_input(name);
        else n.set_input(position, name);
        n.mutable_attribute()->DeleteSubrange(i, 1);
        return;
      }
    };
    if (op == "Unsqueeze" || op == "Squeeze") {
      take_ints_attr("axes", 1);
    } else if (op == "Split") {
      take_ints_attr("split", 1);
    } else if (op == "ReduceSum") {
      take_ints_attr("axes", 1);
    } else if (op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") {
      int64_t axis = 1;  // opset 11's default
      onnx::AttributeProto* a = nullptr;
      for (auto& at : *n.mutable_attribute())
        if (at.name() == "axis") a = &at, axis = at.i();
      auto it = ranges.find(n.input(0));
      const int rank = it == ranges.end() ? 0 : it->second.rank;
      if (rank == 0 || !(axis == -1 || axis == rank - 1))
        return Status(ErrorCode::kUnsupported,
                      "quantize: " + op + " node '" + n.name() + "' works over axis " + std::to_string(axis) +
                          " of a rank-" + std::to_string(rank) + " tensor; opset 13 (needed for per-channel weights) "
                          "changes its meaning there");
      if (!a) {
        a = n.add_attribute();
        a->set_name("axis");
        a->set_type(onnx::AttributeProto::INT);
      }
      a->set_i(-1);
    } else if (!unchanged.count(op)) {
      return Status(ErrorCode::kUnsupported, "quantize: cannot move the model from opset " + std::to_string(from) +
                                                 " to 13: op " + op + " (node '" + n.name() +
                                                 "') is not one this converter knows to be unchanged");
    }
  }
  set_ai_onnx_opset(m, 13);
  if (m.ir_version() < 7) m.set_ir_version(7);
  return Status::Ok();
}

// Replaces the float model's convolutions in `quantize` by their QDQ form.
Status apply_qdq(onnx::ModelProto& m, const std::vector<Conv>& convs, const std::set<size_t>& quantize,
                 const std::map<std::string, QParams>& act, const std::string& base_dir) {
  auto* g = m.mutable_graph();
  Names names(*g);
  // How many nodes use each initializer: a float weight goes only when no
  // other node still reads it.
  std::map<std::string, int> uses;
  for (const auto& n : g->node())
    for (const auto& s : n.input()) ++uses[s];
  std::vector<onnx::NodeProto> nodes;
  std::map<std::string, std::string> dq_of;  // activation -> its dequantised name
  std::map<int, size_t> conv_at;
  for (size_t i = 0; i < convs.size(); ++i) conv_at[convs[i].node] = i;
  std::vector<onnx::TensorProto> new_inits;
  std::set<std::string> drop_inits;
  auto add_node = [&](const std::string& op, const std::string& name, std::vector<std::string> in,
                      const std::string& out, int axis) {
    onnx::NodeProto n;
    n.set_op_type(op);
    n.set_name(names.fresh(name));
    for (auto& s : in) n.add_input(s);
    n.add_output(out);
    if (axis >= 0) {
      auto* a = n.add_attribute();
      a->set_name("axis");
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(axis);
    }
    nodes.push_back(std::move(n));
  };
  for (int i = 0; i < g->node_size(); ++i) {
    auto it = conv_at.find(i);
    if (it == conv_at.end() || !quantize.count(it->second)) {
      nodes.push_back(g->node(i));
      continue;
    }
    const Conv& c = convs[it->second];
    onnx::NodeProto conv = g->node(i);
    // The activation: Q → DQ once per tensor, shared by the convs reading it.
    if (!dq_of.count(c.x)) {
      auto q = act.find(c.x);
      if (q == act.end()) return Status(ErrorCode::kInternal, "quantize: no range for " + c.x);
      const std::string s = names.fresh(c.x + "_scale"), zp = names.fresh(c.x + "_zero_point");
      new_inits.push_back(make_tensor(s, onnx::TensorProto::FLOAT, {}, &q->second.scale, 4));
      new_inits.push_back(make_tensor(zp, onnx::TensorProto::UINT8, {}, &q->second.zero_point, 1));
      const std::string xq = names.fresh(c.x + "_quantized"), xdq = names.fresh(c.x + "_dequantized");
      add_node("QuantizeLinear", c.x + "_QuantizeLinear", {c.x, s, zp}, xq, -1);
      add_node("DequantizeLinear", c.x + "_DequantizeLinear", {xq, s, zp}, xdq, -1);
      dq_of[c.x] = xdq;
    }
    const QParams& xq = act.at(c.x);
    // The weights: int8 per output channel, symmetric.
    const onnx::TensorProto* wp = find_initializer(*g, c.w);
    if (!wp) return Status(ErrorCode::kUnsupported, "quantize: Conv '" + c.name + "' has weights that are not an initializer");
    Tensor w = onnx_io::tensor_from_proto(*wp, base_dir);
    if (w.dtype() != DType::kFloat32 || w.rank() != 4)
      return Status(ErrorCode::kUnsupported, "quantize: Conv '" + c.name + "' weights are not float [O,I,kh,kw]");
    const int64_t oc = w.dim(0), per = w.numel() / std::max<int64_t>(oc, 1);
    std::vector<float> ws(static_cast<size_t>(oc));
    std::vector<int8_t> wq(static_cast<size_t>(w.numel()));
    std::vector<int8_t> wzp(static_cast<size_t>(oc), 0);
    for (int64_t o = 0; o < oc; ++o) {
      const float* src = w.data<float>() + o * per;
      float m = 0;
      for (int64_t k = 0; k < per; ++k) m = std::max(m, std::fabs(src[k]));
      ws[o] = m > 0 ? m / 127.f : 1.f;
      for (int64_t k = 0; k < per; ++k)
        wq[o * per + k] = static_cast<int8_t>(std::clamp<long>(std::lrint(src[k] / ws[o]), -127, 127));
    }
    const std::string wq_name = names.fresh(c.w + "_quantized"), ws_name = names.fresh(c.w + "_scale"),
                      wzp_name = names.fresh(c.w + "_zero_point"), wdq = names.fresh(c.w + "_dequantized");
    new_inits.push_back(make_tensor(wq_name, onnx::TensorProto::INT8, w.shape(), wq.data(), wq.size()));
    new_inits.push_back(make_tensor(ws_name, onnx::TensorProto::FLOAT, {oc}, ws.data(), ws.size() * 4));
    new_inits.push_back(make_tensor(wzp_name, onnx::TensorProto::INT8, {oc}, wzp.data(), wzp.size()));
    add_node("DequantizeLinear", c.w + "_DequantizeLinear", {wq_name, ws_name, wzp_name}, wdq, 0);
    if (--uses[c.w] == 0) drop_inits.insert(c.w);
    conv.set_input(0, dq_of[c.x]);
    conv.set_input(1, wdq);
    // The bias: int32, scale x_scale · w_scale[o].
    if (!c.b.empty()) {
      const onnx::TensorProto* bp = find_initializer(*g, c.b);
      if (!bp) return Status(ErrorCode::kUnsupported, "quantize: Conv '" + c.name + "' has a bias that is not an initializer");
      Tensor b = onnx_io::tensor_from_proto(*bp, base_dir);
      if (b.dtype() != DType::kFloat32 || b.numel() != oc)
        return Status(ErrorCode::kUnsupported, "quantize: Conv '" + c.name + "' bias is not float [O]");
      std::vector<float> bs(static_cast<size_t>(oc));
      std::vector<int32_t> bq(static_cast<size_t>(oc)), bzp(static_cast<size_t>(oc), 0);
      for (int64_t o = 0; o < oc; ++o) {
        bs[o] = xq.scale * ws[o];
        const double v = std::nearbyint(static_cast<double>(b.data<float>()[o]) / bs[o]);
        bq[o] = static_cast<int32_t>(std::clamp(v, -2147483647.0, 2147483647.0));
      }
      const std::string bq_name = names.fresh(c.b + "_quantized"), bs_name = names.fresh(c.b + "_scale"),
                        bzp_name = names.fresh(c.b + "_zero_point"), bdq = names.fresh(c.b + "_dequantized");
      new_inits.push_back(make_tensor(bq_name, onnx::TensorProto::INT32, {oc}, bq.data(), bq.size() * 4));
      new_inits.push_back(make_tensor(bs_name, onnx::TensorProto::FLOAT, {oc}, bs.data(), bs.size() * 4));
      new_inits.push_back(make_tensor(bzp_name, onnx::TensorProto::INT32, {oc}, bzp.data(), bzp.size() * 4));
      add_node("DequantizeLinear", c.b + "_DequantizeLinear", {bq_name, bs_name, bzp_name}, bdq, 0);
      if (--uses[c.b] == 0) drop_inits.insert(c.b);
      conv.set_input(2, bdq);
    }
    nodes.push_back(std::move(conv));
  }
  g->clear_node();
  for (auto& n : nodes) *g->add_node() = std::move(n);
  // Initializers: the float weights no node reads any more go (and their
  // entries in graph.input, which IR < 4 files list).
  auto* inits = g->mutable_initializer();
  for (int i = inits->size() - 1; i >= 0; --i)
    if (drop_inits.count(inits->Get(i).name())) inits->DeleteSubrange(i, 1);
  auto* inputs = g->mutable_input();
  for (int i = inputs->size() - 1; i >= 0; --i)
    if (drop_inits.count(inputs->Get(i).name())) inputs->DeleteSubrange(i, 1);
  for (auto& t : new_inits) *g->add_initializer() = std::move(t);
  return Status::Ok();
}

Status write_model(const onnx::ModelProto& m, const std::string& out_path) {
  const std::string tmp = out_path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f || !m.SerializeToOstream(&f)) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return Status(ErrorCode::kIOError, out_path + ": cannot write");
    }
  }
  std::error_code ec;
  fs::rename(tmp, out_path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return Status(ErrorCode::kIOError, out_path + ": cannot write: " + ec.message());
  }
  return Status::Ok();
}

// Mean absolute difference of every float output, over all outputs.
double output_change(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  double sum = 0;
  int64_t n = 0;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || t.dtype() != DType::kFloat32 || it->second.numel() != t.numel()) continue;
    for (int64_t i = 0; i < t.numel(); ++i) sum += std::fabs(t.data<float>()[i] - it->second.data<float>()[i]);
    n += t.numel();
  }
  return n ? sum / static_cast<double>(n) : 0;
}

}  // namespace

Result<QuantizeReport> quantize_model(const std::string& model_path, const std::vector<std::string>& images,
                                      const std::string& out_path, const QuantizeOptions& o) {
  std::error_code ec;
  if (images.empty()) return Status(ErrorCode::kInvalidArgument, "quantize: no calibration images");
  if (fs::exists(out_path, ec) && fs::equivalent(model_path, out_path, ec))
    return Status(ErrorCode::kInvalidArgument, "quantize: the output " + out_path + " is the input model");
  if (o.method == CalibrationMethod::kPercentile && !(o.percentile > 50.0 && o.percentile <= 100.0))
    return Status(ErrorCode::kInvalidArgument, "quantize: percentile must be within (50, 100]");
  auto parsed = read_model(model_path);
  if (!parsed.ok()) return parsed.status();
  onnx::ModelProto model = std::move(parsed).value();
  const std::string base_dir = fs::path(model_path).parent_path().string().empty()
                                   ? "."
                                   : fs::path(model_path).parent_path().string();
  QuantizeReport report;
  report.opset_from = ai_onnx_opset(model);
  if (report.opset_from < 10 || report.opset_from > 21)
    return Status(ErrorCode::kUnsupported, "quantize: ai.onnx opset " + std::to_string(report.opset_from) +
                                               " (10 to 21 are handled)");
  const std::vector<Conv> convs = find_convs(model.graph());
  report.convolutions = static_cast<int>(convs.size());
  if (convs.empty()) return Status(ErrorCode::kUnsupported, "quantize: the model has no Conv node");
  for (const auto& k : o.keep_float)
    if (std::none_of(convs.begin(), convs.end(), [&](const Conv& c) { return c.name == k; }))
      return Status(ErrorCode::kNotFound, "quantize: no Conv node named '" + k + "' to keep in float");

  // 1. Calibration: ranges of every conv input (and the rank of what the
  // opset upgrade must check).
  std::vector<std::string> probes;
  for (const auto& c : convs) probes.push_back(c.x);
  if (report.opset_from < 13)
    for (const auto& n : model.graph().node())
      if (n.op_type() == "Softmax" || n.op_type() == "LogSoftmax" || n.op_type() == "Hardmax")
        probes.push_back(n.input(0));
  std::sort(probes.begin(), probes.end());
  probes.erase(std::unique(probes.begin(), probes.end()), probes.end());
  const std::string probe_bytes = with_outputs(model, probes);
  std::map<std::string, Range> ranges;
  auto pass1 = run_images(probe_bytes, base_dir, images, o, [&](const std::map<std::string, Tensor>& out) {
    for (const auto& p : probes) {
      auto it = out.find(p);
      if (it == out.end() || it->second.dtype() != DType::kFloat32)
        return Status(ErrorCode::kUnsupported, "quantize: tensor " + p + " could not be observed as float");
      Range& r = ranges[p];
      r.rank = static_cast<int>(it->second.rank());
      const float* d = it->second.data<float>();
      for (int64_t i = 0; i < it->second.numel(); ++i) {
        if (!std::isfinite(d[i])) return Status(ErrorCode::kInvalidArgument, "quantize: " + p + " holds a non-finite value");
        r.lo = std::min(r.lo, d[i]);
        r.hi = std::max(r.hi, d[i]);
      }
    }
    return Status::Ok();
  });
  if (!pass1.ok()) return pass1.status();
  report.images = *pass1;
  if (o.method == CalibrationMethod::kPercentile || o.method == CalibrationMethod::kEntropy) {
    for (auto& [name, r] : ranges) r.hist.assign(kHistBins, 0);
    auto pass2 = run_images(probe_bytes, base_dir, images, o, [&](const std::map<std::string, Tensor>& out) {
      for (auto& [name, r] : ranges) {
        const Tensor& t = out.at(name);
        const double width = (static_cast<double>(r.hi) - r.lo) / kHistBins;
        if (!(width > 0)) continue;
        for (int64_t i = 0; i < t.numel(); ++i) {
          const int bin = std::clamp(static_cast<int>((t.data<float>()[i] - r.lo) / width), 0, kHistBins - 1);
          ++r.hist[bin];
        }
      }
      return Status::Ok();
    });
    if (!pass2.ok()) return pass2.status();
  }
  std::map<std::string, QParams> act;
  for (const auto& c : convs) {
    const Range& r = ranges.at(c.x);
    auto [lo, hi] = o.method == CalibrationMethod::kPercentile ? percentile_range(r, o.percentile)
                    : o.method == CalibrationMethod::kEntropy  ? entropy_range(r)
                                                               : std::pair<float, float>{r.lo, r.hi};
    act[c.x] = qparams(lo, hi);
  }

  // 2. The opset per-channel DequantizeLinear needs.
  onnx::ModelProto base = model;
  if (report.opset_from < 13) {
    Status st = upgrade_to_13(base, ranges, report.opset_from);
    if (!st.ok()) return st;
  }
  report.opset_to = ai_onnx_opset(base);

  // 3. Which convolutions stay in float.
  std::set<size_t> keep;
  for (size_t i = 0; i < convs.size(); ++i)
    if (std::find(o.keep_float.begin(), o.keep_float.end(), convs[i].name) != o.keep_float.end()) keep.insert(i);
  for (size_t i : keep) report.kept_float.push_back(convs[i].name);
  if (o.sensitivity_budget < 0 || !std::isfinite(o.sensitivity_budget))
    return Status(ErrorCode::kInvalidArgument, "quantize: the sensitivity budget must be a finite number >= 0");
  if (o.sensitivity_budget > 0 && o.keep_float_count > 0)
    return Status(ErrorCode::kInvalidArgument,
                  "quantize: give a count of convolutions to keep in float or a sensitivity budget, not both");
  if (o.keep_float_count > 0 || o.sensitivity_budget > 0) {
    // Sensitivity: each convolution quantised alone, the change of the
    // outputs against the float model's on the same images (at most 8 of
    // them: the ranking, not the figure, is what is used).
    std::vector<std::string> few(images.begin(), images.begin() + std::min<size_t>(images.size(), 8));
    std::string float_bytes;
    base.SerializeToString(&float_bytes);
    std::vector<std::map<std::string, Tensor>> reference;
    auto ref = run_images(float_bytes, base_dir, few, o, [&](const std::map<std::string, Tensor>& out) {
      std::map<std::string, Tensor> copy;
      for (const auto& [k, v] : out) copy[k] = v.clone();
      reference.push_back(std::move(copy));
      return Status::Ok();
    });
    if (!ref.ok()) return ref.status();
    // The mean output change, against the float model, of the model with
    // the convolutions `q` quantised.
    auto change_with = [&](const std::set<size_t>& q) -> Result<double> {
      onnx::ModelProto m = base;
      Status st = apply_qdq(m, convs, q, act, base_dir);
      if (!st.ok()) return st;
      std::string bytes;
      m.SerializeToString(&bytes);
      double change = 0;
      size_t k = 0;
      auto run = run_images(bytes, base_dir, few, o, [&](const std::map<std::string, Tensor>& out) {
        change += output_change(reference[k++], out);
        return Status::Ok();
      });
      if (!run.ok()) return run.status();
      return change / static_cast<double>(few.size());
    };
    for (size_t i = 0; i < convs.size(); ++i) {
      if (keep.count(i)) continue;
      auto change = change_with({i});
      if (!change.ok()) return change.status();
      report.sensitivity.emplace_back(convs[i].name, *change);
    }
    std::stable_sort(report.sensitivity.begin(), report.sensitivity.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    int count = o.keep_float_count;
    if (o.sensitivity_budget > 0) {
      // The fewest of the most sensitive to keep for the whole model's
      // change to be within the budget: k = 0, 1, 2, ... in rank order.
      auto whole_change = [&](int k) -> Result<double> {
        std::set<size_t> q;
        for (size_t i = 0; i < convs.size(); ++i) q.insert(i);
        for (size_t i : keep) q.erase(i);
        for (int j = 0; j < k; ++j)
          for (size_t i = 0; i < convs.size(); ++i)
            if (convs[i].name == report.sensitivity[static_cast<size_t>(j)].first) q.erase(i);
        return change_with(q);
      };
      const int most = static_cast<int>(report.sensitivity.size());
      for (count = 0; count <= most; ++count) {
        auto c = whole_change(count);
        if (!c.ok()) return c.status();
        if (count == 0) report.output_change_all_int8 = *c;
        report.output_change = *c;
        if (*c <= o.sensitivity_budget) break;
      }
      count = std::min(count, most);  // every convolution in float: the budget is met (change 0)
    }
    for (int k = 0; k < count && k < static_cast<int>(report.sensitivity.size()); ++k) {
      const std::string& name = report.sensitivity[static_cast<size_t>(k)].first;
      for (size_t i = 0; i < convs.size(); ++i)
        if (convs[i].name == name) keep.insert(i);
      report.kept_float.push_back(name);
    }
  }

  // 4. The QDQ model.
  std::set<size_t> quantize;
  for (size_t i = 0; i < convs.size(); ++i)
    if (!keep.count(i)) quantize.insert(i);
  report.quantized = static_cast<int>(quantize.size());
  Status st = apply_qdq(base, convs, quantize, act, base_dir);
  if (!st.ok()) return st;
  auto* meta = base.add_metadata_props();
  meta->set_key("damoyolo.quantization");
  meta->set_value(std::string("{\"method\":\"") +
                  (o.method == CalibrationMethod::kMinMax       ? "minmax"
                   : o.method == CalibrationMethod::kPercentile ? "percentile"
                                                                : "entropy") +
                  "\",\"images\":" + std::to_string(report.images) + ",\"quantized\":" +
                  std::to_string(report.quantized) + ",\"kept_float\":" + std::to_string(report.kept_float.size()) +
                  "}");
  st = write_model(base, out_path);
  if (!st.ok()) return st;
  return report;
}

}  // namespace damoyolo
