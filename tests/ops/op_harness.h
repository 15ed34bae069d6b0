// Differential testing of single operators (and fusable chains), in the
// style of ggml's test-backend-ops: one small ONNX graph per case, run on
// Engine::kOptimized and on Engine::kReference (the oracle) with the same
// random inputs, compared under a normalised error bound, and the compiled
// plan asserted (a case meant to be lowered to oneDNN must not fall back
// silently; a case meant to fall back must show exactly that fallback).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "damoyolo/session.h"
#include "testutil/model_builder.h"

namespace damoyolo::ops_test {

// ---------------------------------------------------------------------------
// Error bounds: err = max|opt - ref| / max(1, max|ref|), over every output.
//
// FP32 (1e-5): both engines compute in float32 but oneDNN sums a
// convolution's K = C/g·kh·kw products in another order (blocked over
// channels, FMA); each order is within ~K·eps·Σ|x·w| of the exact sum, and
// with this harness's data (inputs U(-1,1), weights scaled by 1/sqrt(K), so
// outputs are O(1)) the expected difference is ~sqrt(K)·eps ≈ 1.2e-6 for the
// largest K here (5·5·17 = 425); oneDNN's exp/logistic/swish are within a few
// ulp. The worst case measured is 6.6e-7. 1e-5 leaves >10x headroom and still
// fails any wrong index, tap, pad or post-op, which show up as O(0.1..1).
// FP32 data movement (MaxPool, nearest Resize, Concat, Slice views, Relu on
// the graph inputs) does no arithmetic at all: those cases must be exact (0).
//
// BF16 (2e-2): activations and weights are rounded to bfloat16 (8 significant
// bits: relative error up to 2^-8 = 3.9e-3 each), products accumulate in f32.
// A convolution output then carries ~2^-8·sqrt(2/3)·|y| rounding noise, and a
// bf16 intermediate (conv → op chains, bf16 activations between steps) adds
// another rounding of 2^-9 relative. Measured worst cases (printed per test):
// 3.4e-3 for a convolution, 4.9e-3 for a conv + residual chain, 9.4e-3 for
// Exp of a bf16 convolution's output (exp turns the conv's absolute error
// into a relative one at the largest outputs). 2e-2 is ~5 bf16 ulps of the
// largest output: 2x above the worst measured, well below the O(0.1..1) a
// real bug gives. A BF16 session whose plan
// computes nothing in bf16 (the op reads the float32 graph input, or is not
// one of the ops the engine keeps in bf16) is held to the FP32 bound instead.
inline constexpr double kFp32Bound = 1e-5;
inline constexpr double kBf16Bound = 2e-2;

// How a graph input is filled.
enum class Dist {
  kUniform,  // U(-1, 1)
  kNonZero,  // ±U(0.5, 1.5): divisors
  kWide,     // U(-4, 4): Exp / Sigmoid over their curved range
};

struct InputSpec {
  std::string name;
  Shape shape;
  Dist dist = Dist::kUniform;
};

// What the compiled plan of the optimised engine must show.
struct PlanExpect {
  // Empty: the whole case is lowered (no fallback step at all). Otherwise
  // exactly one fallback step: this node, of this op, whose reason contains
  // `reason`.
  std::string fallback_node, fallback_op, reason;
  // Steps per op type that the plan must have, e.g. {"Conv",1},{"Relu",0}.
  std::map<std::string, int> op_steps;
  // The post-ops of the one Conv step, exactly / as a prefix.
  std::optional<std::vector<std::string>> conv_post_ops;
  std::optional<std::vector<std::string>> conv_post_ops_prefix;
  int views = -1;  // kView steps, when >= 0
  // A node whose steps must read (primitives) or write (reorders into a
  // concatenation) this data type: "f32"/"bf16" per precision. Shows that a
  // BF16 case really runs that op in bf16 (or, where the engine keeps an op
  // in f32, that it does).
  std::string dtype_node;
  std::string fp32_dtype = "f32", bf16_dtype;
};

struct Case {
  std::string family;  // "Conv", "MaxPool", ...: the summary line it counts in
  std::string name;    // op + attributes + shape: names the case in every failure
  std::string model;   // serialized ONNX
  std::vector<InputSpec> inputs;
  PlanExpect plan;
  bool exact_fp32 = false;  // pure data movement: FP32 must be bit-exact
  OptimizationOptions opt;  // switches for the optimised session (all on by default)
};

// Worst error per family and precision, printed by each test.
struct Stats {
  int cases = 0, lowered = 0, fallbacks = 0, f32_only = 0, onednn_ref_impl = 0;
  std::string ref_impl_cases;  // which, for the summary
  double worst = 0;
  std::string worst_case;
};

// ---------------------------------------------------------------------------
// Building the graphs.

inline uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

inline std::string dims_str(const Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(s[i]);  // (not "x" + ...: GCC 12 warns -Wrestrict falsely there, PR105651)
  }
  return out.empty() ? "scalar" : out;
}

struct ConvSpec {
  int64_t o = 8, k = 3, stride = 1, dil = 1, group = 1;
  // Along W when it differs from H (0: the same as k / stride / dil).
  int64_t kw = 0, stride_w = 0, dil_w = 0;
  std::vector<int64_t> pads = {0, 0, 0, 0};  // ONNX order: top, left, bottom, right
  bool bias = true;
  int64_t kh() const { return k; }
  int64_t kw_() const { return kw ? kw : k; }
  int64_t sw() const { return stride_w ? stride_w : stride; }
  int64_t dw() const { return dil_w ? dil_w : dil; }
};

inline Shape conv_out_shape(const Shape& xs, const ConvSpec& c) {
  const int64_t eff_h = c.dil * (c.k - 1) + 1, eff_w = c.dw() * (c.kw_() - 1) + 1;
  return {xs[0], c.o, (xs[2] + c.pads[0] + c.pads[2] - eff_h) / c.stride + 1,
          (xs[3] + c.pads[1] + c.pads[3] - eff_w) / c.sw() + 1};
}

inline std::string conv_desc(const Shape& xs, const ConvSpec& c) {
  auto pair = [](int64_t h, int64_t w) { return h == w ? std::to_string(h) : std::to_string(h) + "x" + std::to_string(w); };
  std::string g = c.group == 1 ? "1" : c.group == xs[1] ? "dw" + std::to_string(c.group) : std::to_string(c.group);
  return "k" + pair(c.k, c.kw_()) + " s" + pair(c.stride, c.sw()) + " d" + pair(c.dil, c.dw()) + " g" + g +
         " pads[" + std::to_string(c.pads[0]) + "," + std::to_string(c.pads[1]) + "," + std::to_string(c.pads[2]) +
         "," + std::to_string(c.pads[3]) + "] " + (c.bias ? "bias" : "nobias") + " " + dims_str(xs) + "->" +
         dims_str(conv_out_shape(xs, c));
}

// A graph under construction: ModelBuilder plus random weights and the
// inputs' specs. Weights are U(-1,1)·sqrt(3/fan_in) (unit gain for U(-1,1)
// inputs), biases U(-0.5, 0.5), so every value stays O(1).
class Net {
 public:
  explicit Net(const std::string& seed, int64_t opset = 11) : mb_(opset), rng_(fnv1a(seed)) {}

  std::string input(const std::string& name, const Shape& s, Dist d = Dist::kUniform) {
    mb_.input(name, s);
    inputs_.push_back({name, s, d});
    return name;
  }
  // A graph output; its shape is left to shape inference.
  void output(const std::string& name) {
    auto* v = mb_.proto().mutable_graph()->add_output();
    v->set_name(name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  std::string f32(const std::string& name, const Shape& dims, const std::vector<float>& v) {
    mb_.init_f32(name, dims, v);
    return name;
  }
  std::string i64(const std::string& name, const std::vector<int64_t>& v) {
    mb_.init_i64(name, {static_cast<int64_t>(v.size())}, v);
    return name;
  }
  std::vector<float> uniform(size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = u(rng_);
    return v;
  }
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& in, const std::vector<std::string>& out,
                        const std::string& name) {
    return mb_.node(op, in, out, name);
  }
  // Conv node `name` on x (shape xs) writing `out`; returns the output shape.
  Shape conv(const std::string& name, const std::string& x, const Shape& xs, const ConvSpec& c,
             const std::string& out) {
    const int64_t ipg = xs[1] / c.group;
    const int64_t fan_in = ipg * c.k * c.kw_();
    const float scale = std::sqrt(3.f / static_cast<float>(fan_in));
    f32(name + "_w", {c.o, ipg, c.k, c.kw_()}, uniform(static_cast<size_t>(c.o * fan_in), -scale, scale));
    std::vector<std::string> in = {x, name + "_w"};
    if (c.bias) in.push_back(f32(name + "_b", {c.o}, uniform(static_cast<size_t>(c.o), -0.5f, 0.5f)));
    auto& n = node("Conv", in, {out}, name);
    testing::ModelBuilder::attr_ints(n, "kernel_shape", {c.k, c.kw_()});
    testing::ModelBuilder::attr_ints(n, "strides", {c.stride, c.sw()});
    testing::ModelBuilder::attr_ints(n, "dilations", {c.dil, c.dw()});
    testing::ModelBuilder::attr_ints(n, "pads", c.pads);
    if (c.group != 1) testing::ModelBuilder::attr_int(n, "group", c.group);
    return conv_out_shape(xs, c);
  }
  // An activation `name` of shape s: a graph input, or (via_conv) the output
  // of a 1x1 convolution of a 4-channel graph input, so that the op under
  // test reads what a convolution wrote (channels-last; bf16 under BF16 when
  // the op is one the engine keeps in bf16).
  std::string act(const std::string& name, const Shape& s, bool via_conv, Dist d = Dist::kUniform) {
    if (!via_conv) return input(name, s, d);
    const std::string in = input(name + "_in", {s[0], 4, s[2], s[3]}, d);
    ConvSpec c;
    c.o = s[1];
    c.k = 1;
    conv(name + "_conv", in, {s[0], 4, s[2], s[3]}, c, name);
    return name;
  }
  static void attr_s(onnx::NodeProto& n, const std::string& key, const std::string& v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }

  std::string bytes() const { return mb_.bytes(); }
  const std::vector<InputSpec>& inputs() const { return inputs_; }

 private:
  testing::ModelBuilder mb_;
  std::mt19937 rng_;
  std::vector<InputSpec> inputs_;
};

inline Case make_case(const std::string& family, const std::string& name, const Net& net, PlanExpect plan = {},
                      bool exact_fp32 = false) {
  Case c;
  c.family = family;
  c.name = name;
  c.model = net.bytes();
  c.inputs = net.inputs();
  c.plan = std::move(plan);
  c.exact_fp32 = exact_fp32;
  return c;
}

// ---------------------------------------------------------------------------
// Running and checking one case.

inline std::string first_word(const std::string& s) { return s.substr(0, s.find(' ')); }

// The data type a step works in: what a primitive reads, what a reorder writes.
inline std::string step_dtype(const PlanStep& st) {
  if (st.kind == PlanStep::Kind::kReorder) return first_word(st.dst);
  return first_word(st.src);
}

inline bool plan_uses_bf16(const CompiledPlan& p) {
  for (const auto& st : p.steps)
    if (st.src.find("bf16") != std::string::npos || st.dst.find("bf16") != std::string::npos) return true;
  return false;
}

inline void check_plan(const Case& c, const CompiledPlan& p, Precision prec, Stats& stats) {
  const std::string who = c.name + " [" + precision_name(prec) + "]";
  EXPECT_EQ(p.engine, Engine::kOptimized) << who;
  EXPECT_EQ(p.count(PlanStep::Kind::kReference), 0) << who;
  const PlanExpect& e = c.plan;
  if (e.fallback_node.empty()) {
    EXPECT_EQ(p.fallbacks(), 0) << who << ": expected to be lowered to oneDNN, but fell back";
    for (const auto& st : p.steps)
      if (st.kind == PlanStep::Kind::kFallback)
        ADD_FAILURE() << who << ": silent fallback of " << st.op << " '" << (st.nodes.empty() ? "" : st.nodes[0])
                      << "': " << st.reason;
    ++stats.lowered;
  } else {
    ++stats.fallbacks;
    EXPECT_EQ(p.fallbacks(), 1) << who << ": expected exactly one fallback, of " << e.fallback_op;
    for (const auto& st : p.steps) {
      if (st.kind != PlanStep::Kind::kFallback) continue;
      EXPECT_EQ(st.op, e.fallback_op) << who;
      EXPECT_EQ(st.nodes, std::vector<std::string>{e.fallback_node}) << who;
      EXPECT_NE(st.reason.find(e.reason), std::string::npos) << who << ": reason '" << st.reason << "' lacks '"
                                                             << e.reason << "'";
    }
  }
  for (const auto& [op, n] : e.op_steps) EXPECT_EQ(p.count_op(op), n) << who << ": steps of op " << op;
  if (e.views >= 0) {
    EXPECT_EQ(p.count(PlanStep::Kind::kView), e.views) << who << ": views";
  }
  const PlanStep* conv = nullptr;
  for (const auto& st : p.steps)
    if (st.op == "Conv" && st.kind == PlanStep::Kind::kPrimitive) {
      if (st.implementation.rfind("ref", 0) == 0) {
        ++stats.onednn_ref_impl;
        stats.ref_impl_cases += "\n      " + who + ": " + st.implementation;
      }
      if (!conv) conv = &st;
    }
  if (e.conv_post_ops || e.conv_post_ops_prefix) {
    ASSERT_NE(conv, nullptr) << who << ": no Conv step";
    if (e.conv_post_ops) {
      EXPECT_EQ(conv->post_ops, *e.conv_post_ops) << who << ": conv post-ops";
    }
    if (e.conv_post_ops_prefix) {
      const auto& want = *e.conv_post_ops_prefix;
      ASSERT_GE(conv->post_ops.size(), want.size()) << who << ": conv post-ops";
      EXPECT_EQ(std::vector<std::string>(conv->post_ops.begin(), conv->post_ops.begin() + want.size()), want)
          << who << ": conv post-ops prefix";
    }
  }
  if (!e.dtype_node.empty()) {
    const std::string want = prec == Precision::kBF16 && !e.bf16_dtype.empty() ? e.bf16_dtype : e.fp32_dtype;
    int seen = 0;
    for (const auto& st : p.steps) {
      if (st.nodes.empty() || st.nodes[0] != e.dtype_node) continue;
      if (st.kind != PlanStep::Kind::kPrimitive && st.kind != PlanStep::Kind::kReorder) continue;
      ++seen;
      EXPECT_EQ(step_dtype(st), want) << who << ": step of " << e.dtype_node << " reads " << st.src << ", writes "
                                      << st.dst;
    }
    EXPECT_GT(seen, 0) << who << ": no step computes " << e.dtype_node;
  }
}

inline Tensor random_input(const InputSpec& in, std::mt19937& rng) {
  Tensor t(DType::kFloat32, in.shape);
  float* p = t.data<float>();
  std::uniform_real_distribution<float> u(-1.f, 1.f), mag(0.5f, 1.5f), wide(-4.f, 4.f);
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (in.dist) {
      case Dist::kUniform: p[i] = u(rng); break;
      case Dist::kNonZero: p[i] = (u(rng) < 0 ? -1.f : 1.f) * mag(rng); break;
      case Dist::kWide: p[i] = wide(rng); break;
    }
  }
  return t;
}

// Loads the case on both engines, checks the plan, runs both on the same
// inputs and checks the error. Returns the normalised error (or -1).
inline double run_case(const Case& c, Precision prec, Stats& stats) {
  const std::string who = c.name + " [" + precision_name(prec) + "]";
  SCOPED_TRACE(who);
  ++stats.cases;
  SessionOptions oo;
  oo.engine = Engine::kOptimized;
  oo.precision = prec;
  oo.opt = c.opt;
  auto opt = Session::load_from_memory(c.model.data(), c.model.size(), oo);
  if (!opt.ok()) {
    ADD_FAILURE() << who << ": optimised engine refused the model: " << opt.status().to_string();
    return -1;
  }
  SessionOptions ro;
  ro.engine = Engine::kReference;
  auto ref = Session::load_from_memory(c.model.data(), c.model.size(), ro);
  if (!ref.ok()) {
    ADD_FAILURE() << who << ": reference engine refused the model: " << ref.status().to_string();
    return -1;
  }
  const CompiledPlan& plan = opt->plan();
  // Any failure of this case prints its plan (failures are the test's parts).
  const ::testing::TestResult* result = ::testing::UnitTest::GetInstance()->current_test_info()->result();
  const int parts_before = result->total_part_count();
  struct PrintPlanOnFailure {
    const ::testing::TestResult* result;
    int before;
    const std::string& who;
    const CompiledPlan& plan;
    ~PrintPlanOnFailure() {
      if (result->total_part_count() > before) std::printf("plan of %s:\n%s\n", who.c_str(), plan.to_text().c_str());
    }
  } print_plan{result, parts_before, who, plan};
  check_plan(c, plan, prec, stats);
  // DAMOYOLO_OPS_PLANS=1 prints every case's plan (to see what a case compiles to).
  if (const char* env = std::getenv("DAMOYOLO_OPS_PLANS"); env && *env == '1')
    std::printf("plan of %s:\n%s\n", who.c_str(), plan.to_text().c_str());

  std::mt19937 rng(fnv1a(c.name) ^ 0x9e3779b9u);
  std::vector<Tensor> inputs;
  for (const auto& in : c.inputs) inputs.push_back(random_input(in, rng));
  auto got = opt->run(inputs);
  auto want = ref->run(inputs);
  if (!got.ok() || !want.ok()) {
    ADD_FAILURE() << who << ": run failed: " << (got.ok() ? want.status() : got.status()).to_string();
    return -1;
  }
  if (got->size() != want->size()) {
    ADD_FAILURE() << who << ": " << got->size() << " outputs, reference has " << want->size();
    return -1;
  }
  double max_diff = 0, max_ref = 0;
  std::string where;
  for (size_t o = 0; o < want->size(); ++o) {
    const Tensor &a = (*got)[o], &b = (*want)[o];
    if (a.shape() != b.shape() || a.dtype() != DType::kFloat32 || b.dtype() != DType::kFloat32) {
      ADD_FAILURE() << who << ": output " << o << " is " << dtype_name(a.dtype()) << shape_to_string(a.shape())
                    << ", reference " << dtype_name(b.dtype()) << shape_to_string(b.shape());
      return -1;
    }
    for (int64_t i = 0; i < b.numel(); ++i) {
      const double x = a.data<float>()[i], y = b.data<float>()[i];
      const double d = std::isnan(x) != std::isnan(y) ? INFINITY : std::isnan(x) ? 0.0 : std::fabs(x - y);
      if (d > max_diff) {
        max_diff = d;
        where = "output " + std::to_string(o) + " element " + std::to_string(i) + ": got " + std::to_string(x) +
                ", reference " + std::to_string(y);
      }
      max_ref = std::max(max_ref, std::fabs(y));
    }
  }
  const double err = max_diff / std::max(1.0, max_ref);
  const bool bf16 = prec == Precision::kBF16 && plan_uses_bf16(plan);
  if (prec == Precision::kBF16 && !bf16) ++stats.f32_only;
  const double bound = bf16 ? kBf16Bound : c.exact_fp32 ? 0.0 : kFp32Bound;
  EXPECT_LE(err, bound) << who << ": max|opt-ref|/max(1,max|ref|) = " << err << " (bound " << bound
                        << "; worst at " << where << ")";
  if (err >= stats.worst) {
    stats.worst = err;
    stats.worst_case = who;
  }
  return err;
}

inline void print_stats(const std::string& family, Precision prec, const Stats& s) {
  std::printf("[ops] %-8s %-4s %3d cases (%d lowered, %d expected fallbacks%s), worst err %.3g in %s",
              family.c_str(), precision_name(prec), s.cases, s.lowered, s.fallbacks,
              prec == Precision::kBF16 ? (", " + std::to_string(s.f32_only) + " computed in f32 only").c_str() : "",
              s.worst, s.worst_case.c_str());
  if (s.onednn_ref_impl)
    std::printf("; %d conv steps on oneDNN's own reference kernel:%s", s.onednn_ref_impl, s.ref_impl_cases.c_str());
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace damoyolo::ops_test
