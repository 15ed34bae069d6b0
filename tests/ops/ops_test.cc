// Per-operator differential tests: every op the optimised engine lowers to
// oneDNN, over grids of shapes and attributes, against the reference engine
// (op_harness.h says how cases are run, compared and bounded). Each family is
// one test per precision; a failure names the case (op, attributes, shape)
// and prints its compiled plan; each test prints its case counts and the
// worst error it saw.
#include <climits>

#include "op_harness.h"

namespace damoyolo::ops_test {
namespace {

using MB = testing::ModelBuilder;

std::vector<int64_t> sym_pads(int64_t p) { return {p, p, p, p}; }

// base + j (appending, not operator+ on a literal: GCC 12 warns -Wrestrict
// falsely on "x" + std::to_string(j) when inlined, PR105651).
std::string nth(std::string base, int j) {
  base += std::to_string(j);
  return base;
}

// ---------------------------------------------------------------------------
// Conv: kernel 1/3/5 × stride 1/2 × dilation 1/2 × dense/depthwise/grouped
// (36 combinations); pads (none, symmetric, asymmetric), bias and input
// shapes (odd sizes, channel counts not multiples of 16, batch 2) cycle
// through them so each value meets every kernel/stride/dilation/group kind.

enum class GroupKind { kDense, kDepthwise, kGrouped };

std::vector<Case> conv_cases() {
  std::vector<Case> v;
  // Dense and depthwise shapes, and (C, group, O) for the grouped ones.
  const Shape shapes[] = {{1, 5, 7, 9}, {1, 17, 8, 8}, {1, 12, 11, 13}, {2, 6, 9, 7}};
  const int64_t dense_out[] = {7, 20, 12, 33};
  struct Grouped {
    int64_t c, g, o;
  };
  const Grouped grouped[] = {{6, 2, 10}, {9, 3, 15}, {12, 4, 20}, {10, 2, 14}};
  int i = 0;
  for (int64_t k : {1, 3, 5})
    for (int64_t stride : {1, 2})
      for (int64_t dil : {1, 2})
        for (GroupKind gk : {GroupKind::kDense, GroupKind::kDepthwise, GroupKind::kGrouped}) {
          Shape xs = shapes[i % 4];
          ConvSpec c;
          c.k = k;
          c.stride = stride;
          c.dil = dil;
          if (gk == GroupKind::kDense) {
            c.o = dense_out[i % 4];
          } else if (gk == GroupKind::kDepthwise) {
            c.group = xs[1];
            c.o = xs[1] * (i % 2 ? 2 : 1);  // depth multiplier 1 or 2
          } else {
            const Grouped& g = grouped[i % 4];
            xs[1] = g.c;
            c.group = g.g;
            c.o = g.o;
          }
          const int64_t eff = dil * (k - 1) + 1, p = (eff - 1) / 2;
          int pad_mode = i % 3;
          if (pad_mode == 0 && (xs[2] < eff || xs[3] < eff)) pad_mode = 1;  // no pads would leave no output
          if (pad_mode == 0) c.pads = {0, 0, 0, 0};
          else if (pad_mode == 1) c.pads = sym_pads(p);
          else c.pads = {p + 1, std::max<int64_t>(p - 1, 0), p, p + 1};  // top, left, bottom, right all differ
          c.bias = (i / 4) % 2 == 0;
          ++i;
          Net n("conv" + std::to_string(i));
          n.input("x", xs);
          n.conv("conv", "x", xs, c, "y");
          n.output("y");
          PlanExpect e;
          e.op_steps = {{"Conv", 1}};
          e.conv_post_ops = std::vector<std::string>{};
          e.dtype_node = "conv";
          e.bf16_dtype = "bf16";
          v.push_back(make_case("Conv", "Conv " + conv_desc(xs, c), n, e));
        }

  // A few shapes the grid does not reach.
  struct Extra {
    Shape xs;
    ConvSpec c;
  };
  auto spec = [](int64_t o, int64_t k, int64_t s, std::vector<int64_t> pads, bool bias = true, int64_t g = 1) {
    ConvSpec c;
    c.o = o, c.k = k, c.stride = s, c.pads = std::move(pads), c.bias = bias, c.group = g;
    return c;
  };
  const Extra extras[] = {
      {{1, 33, 6, 6}, spec(48, 3, 1, sym_pads(1))},         // wider channels, still not multiples of 16
      {{1, 3, 15, 17}, spec(16, 3, 2, {0, 0, 1, 1})},       // TF-style "same" for stride 2 (pad after only)
      {{1, 24, 1, 1}, spec(10, 1, 1, {0, 0, 0, 0}, false)}, // 1x1 spatial
      {{1, 7, 5, 3}, spec(7, 3, 1, sym_pads(1), true, 7)},  // depthwise on a tiny odd map
      {{1, 16, 9, 9}, spec(32, 3, 2, sym_pads(1))},         // channel counts that are multiples of 16
      {{1, 5, 4, 4}, spec(6, 3, 1, {2, 2, 2, 2})},          // pads wider than the kernel's half
      {{1, 1, 9, 8}, spec(5, 3, 1, sym_pads(1))},           // one input channel
      {{1, 6, 7, 9}, spec(4, 7, 1, {0, 0, 0, 0})},          // kernel as tall as the map: one output row
      {{1, 6, 11, 13}, spec(9, 3, 3, {1, 0, 1, 2})},        // stride 3
  };
  for (const Extra& x : extras) {
    Net n("conv extra " + conv_desc(x.xs, x.c));
    n.input("x", x.xs);
    n.conv("conv", "x", x.xs, x.c, "y");
    n.output("y");
    PlanExpect e;
    e.op_steps = {{"Conv", 1}};
    e.conv_post_ops = std::vector<std::string>{};
    e.dtype_node = "conv";
    e.bf16_dtype = "bf16";
    v.push_back(make_case("Conv", "Conv " + conv_desc(x.xs, x.c), n, e));
  }
  {
    // Non-square kernels, strides and dilations (1x3 / 3x1 factorised convs, strided along one axis).
    struct NonSquare {
      Shape xs;
      int64_t o, kh, kw, sh, sw, dh, dw, group;
      std::vector<int64_t> pads;
    };
    const NonSquare ns[] = {
        {{1, 8, 7, 9}, 8, 1, 3, 1, 1, 1, 1, 1, {0, 1, 0, 1}},
        {{1, 8, 7, 9}, 12, 3, 1, 1, 1, 1, 1, 1, {1, 0, 1, 0}},
        {{1, 6, 10, 9}, 6, 3, 3, 2, 1, 1, 1, 6, sym_pads(1)},
        {{1, 5, 9, 11}, 7, 3, 5, 1, 2, 2, 1, 1, {2, 2, 1, 1}},
        {{2, 4, 8, 6}, 10, 5, 3, 2, 2, 1, 2, 2, {2, 1, 2, 2}},
    };
    for (const NonSquare& x : ns) {
      ConvSpec c;
      c.o = x.o, c.k = x.kh, c.kw = x.kw, c.stride = x.sh, c.stride_w = x.sw, c.dil = x.dh, c.dil_w = x.dw;
      c.group = x.group, c.pads = x.pads;
      const std::string name = "Conv " + conv_desc(x.xs, c);
      Net n(name);
      n.input("x", x.xs);
      n.conv("conv", "x", x.xs, c, "y");
      n.output("y");
      PlanExpect e;
      e.op_steps = {{"Conv", 1}};
      e.conv_post_ops = std::vector<std::string>{};
      e.dtype_node = "conv";
      e.bf16_dtype = "bf16";
      v.push_back(make_case("Conv", name, n, e));
    }
  }
  {
    // auto_pad VALID is lowered (pads ignored) ...
    Net n("conv valid");
    n.input("x", {1, 5, 7, 9});
    n.f32("w", {6, 5, 3, 3}, n.uniform(6 * 5 * 9, -0.25f, 0.25f));
    n.f32("b", {6}, n.uniform(6, -0.5f, 0.5f));
    auto& c = n.node("Conv", {"x", "w", "b"}, {"y"}, "conv");
    MB::attr_ints(c, "kernel_shape", {3, 3});
    Net::attr_s(c, "auto_pad", "VALID");
    n.output("y");
    PlanExpect e;
    e.op_steps = {{"Conv", 1}};
    v.push_back(make_case("Conv", "Conv k3 auto_pad VALID 1x5x7x9->1x6x5x7", n, e));
  }
  {
    // ... SAME_UPPER is not: it falls back, alone, with the reason.
    Net n("conv same_upper");
    n.input("x", {1, 5, 7, 9});
    n.f32("w", {6, 5, 3, 3}, n.uniform(6 * 5 * 9, -0.25f, 0.25f));
    auto& c = n.node("Conv", {"x", "w"}, {"y"}, "conv");
    MB::attr_ints(c, "kernel_shape", {3, 3});
    MB::attr_ints(c, "strides", {2, 2});
    Net::attr_s(c, "auto_pad", "SAME_UPPER");
    n.output("y");
    PlanExpect e;
    e.fallback_node = "conv", e.fallback_op = "Conv", e.reason = "auto_pad SAME_UPPER";
    v.push_back(make_case("Conv", "Conv k3 s2 auto_pad SAME_UPPER 1x5x7x9 (falls back)", n, e));
  }
  {
    // A 1-D convolution: the engine lowers 2-D ones only.
    Net n("conv 1d");
    n.input("x", {1, 4, 11});
    n.f32("w", {6, 4, 3}, n.uniform(6 * 4 * 3, -0.3f, 0.3f));
    auto& c = n.node("Conv", {"x", "w"}, {"y"}, "conv");
    MB::attr_ints(c, "kernel_shape", {3});
    n.output("y");
    PlanExpect e;
    e.fallback_node = "conv", e.fallback_op = "Conv", e.reason = "2-D";
    v.push_back(make_case("Conv", "Conv 1-D k3 1x4x11 (falls back)", n, e));
  }
  return v;
}

// ---------------------------------------------------------------------------
// Conv + the chain of post-ops the engine fuses: Relu / Sigmoid / SiLU
// (Sigmoid + Mul) / scalar Mul / residual Add, and chains that must not (or
// only partly) fuse.

enum class Chain {
  kRelu, kSigmoid, kSiluYS, kSiluSY, kScale, kScaleRelu, kReluScale, kReluSigmoid, kScale1111,
  kAddInput, kAddInputReversed, kAddConv, kAddRelu, kSiluAdd, kAddSilu, kReluAddRelu,
  kConvAlsoOutput, kSigmoidAlsoOutput,
};

struct ChainInfo {
  Chain chain;
  const char* name;
};
const ChainInfo kChains[] = {
    {Chain::kRelu, "Relu"},
    {Chain::kSigmoid, "Sigmoid"},
    {Chain::kSiluYS, "SiLU Mul(y,Sigmoid(y))"},
    {Chain::kSiluSY, "SiLU Mul(Sigmoid(y),y)"},
    {Chain::kScale, "Mul(2.5)"},
    {Chain::kScaleRelu, "Mul(-0.5) Relu"},
    {Chain::kReluScale, "Relu Mul(1.5)"},
    {Chain::kReluSigmoid, "Relu Sigmoid"},
    {Chain::kScale1111, "Mul(const [1,1,1,1] 0.75)"},
    {Chain::kAddInput, "Add(y, input r)"},
    {Chain::kAddInputReversed, "Add(input r, y)"},
    {Chain::kAddConv, "Add(y, other conv)"},
    {Chain::kAddRelu, "Add(y, r) Relu"},
    {Chain::kSiluAdd, "SiLU Add(r)"},
    {Chain::kAddSilu, "Add(r) SiLU"},
    {Chain::kReluAddRelu, "Relu Add(other conv) Relu"},
    {Chain::kConvAlsoOutput, "Relu, conv output also a graph output"},
    {Chain::kSigmoidAlsoOutput, "Sigmoid Mul, sigmoid also a graph output"},
};

// Appends SiLU of `in` as Sigmoid + Mul; returns the output name.
std::string silu(Net& n, const std::string& in, const std::string& tag, bool y_first = true) {
  n.node("Sigmoid", {in}, {tag + "_s"}, tag + "_sigmoid");
  n.node("Mul", y_first ? std::vector<std::string>{in, tag + "_s"} : std::vector<std::string>{tag + "_s", in},
         {tag + "_m"}, tag + "_mul");
  return tag + "_m";
}

std::vector<Case> conv_chain_cases() {
  std::vector<Case> v;
  struct Base {
    Shape xs;
    ConvSpec c;
  };
  ConvSpec a;
  a.o = 12, a.k = 3, a.pads = sym_pads(1);
  ConvSpec b;
  b.o = 16, b.k = 1, b.stride = 2;
  ConvSpec d;
  d.o = 9, d.k = 3, d.group = 9, d.pads = sym_pads(1);  // depthwise, as in the nano models
  const Base bases[] = {{{1, 8, 7, 9}, a}, {{1, 5, 8, 8}, b}, {{1, 9, 6, 5}, d}};
  for (const Base& base : bases)
    for (const ChainInfo& ci : kChains) {
      const std::string name = "Conv " + conv_desc(base.xs, base.c) + " + " + ci.name;
      Net n(name);
      n.input("x", base.xs);
      const Shape ys = conv_out_shape(base.xs, base.c);
      if (ci.chain == Chain::kAddConv || ci.chain == Chain::kReluAddRelu)
        n.conv("res_conv", "x", base.xs, base.c, "r");  // computed before the conv it is added to
      n.conv("conv", "x", base.xs, base.c, "y");
      PlanExpect e;
      e.op_steps["Conv"] = ci.chain == Chain::kAddConv || ci.chain == Chain::kReluAddRelu ? 2 : 1;
      auto add_input_r = [&] { n.input("r", ys); };
      std::string out;
      switch (ci.chain) {
        case Chain::kRelu:
          n.node("Relu", {"y"}, {"z"}, "relu");
          out = "z";
          e.conv_post_ops = std::vector<std::string>{"relu"};
          e.op_steps["Relu"] = 0;
          break;
        case Chain::kSigmoid:
          n.node("Sigmoid", {"y"}, {"z"}, "sigmoid");
          out = "z";
          e.conv_post_ops = std::vector<std::string>{"logistic"};
          e.op_steps["Sigmoid"] = 0;
          break;
        case Chain::kSiluYS:
        case Chain::kSiluSY:
          out = silu(n, "y", "act", ci.chain == Chain::kSiluYS);
          e.conv_post_ops = std::vector<std::string>{"swish"};
          e.op_steps["Sigmoid"] = 0;
          e.op_steps["Mul"] = 0;
          break;
        case Chain::kScale:
          n.f32("c", {}, {2.5f});
          n.node("Mul", {"y", "c"}, {"z"}, "mul");
          out = "z";
          e.conv_post_ops = std::vector<std::string>{"scale"};
          e.op_steps["Mul"] = 0;
          break;
        case Chain::kScaleRelu:
          n.f32("c", {}, {-0.5f});
          n.node("Mul", {"c", "y"}, {"m"}, "mul");
          n.node("Relu", {"m"}, {"z"}, "relu");
          out = "z";
          e.conv_post_ops = std::vector<std::string>{"scale", "relu"};
          e.op_steps["Mul"] = 0;
          e.op_steps["Relu"] = 0;
          break;
        case Chain::kReluScale:
          // A scale after the activation is not folded into the weights: its own step.
          n.f32("c", {}, {1.5f});
          n.node("Relu", {"y"}, {"m"}, "relu");
          n.node("Mul", {"m", "c"}, {"z"}, "mul");
          out = "z";
          e.conv_post_ops = std::vector<std::string>{"relu"};
          e.op_steps["Mul"] = 1;
          break;
        case Chain::kReluSigmoid:
          n.node("Relu", {"y"}, {"m"}, "relu");
          n.node("Sigmoid", {"m"}, {"z"}, "sigmoid");
          out = "z";
          e.conv_post_ops = std::vector<std::string>{"relu", "logistic"};
          break;
        case Chain::kScale1111:
          n.f32("c", {1, 1, 1, 1}, {0.75f});
          n.node("Mul", {"y", "c"}, {"z"}, "mul");
          out = "z";
          e.conv_post_ops = std::vector<std::string>{"scale"};
          break;
        case Chain::kAddInput:
          add_input_r();
          n.node("Add", {"y", "r"}, {"z"}, "add");
          out = "z";
          e.conv_post_ops_prefix = std::vector<std::string>{};
          break;
        case Chain::kAddInputReversed:
          add_input_r();
          n.node("Add", {"r", "y"}, {"z"}, "add");
          out = "z";
          e.conv_post_ops_prefix = std::vector<std::string>{};
          break;
        case Chain::kAddConv:
          n.node("Add", {"y", "r"}, {"z"}, "add");
          out = "z";
          break;
        case Chain::kAddRelu:
          add_input_r();
          n.node("Add", {"y", "r"}, {"a"}, "add");
          n.node("Relu", {"a"}, {"z"}, "relu");
          out = "z";
          break;
        case Chain::kSiluAdd: {
          add_input_r();
          const std::string s = silu(n, "y", "act");
          n.node("Add", {s, "r"}, {"z"}, "add");
          out = "z";
          e.conv_post_ops_prefix = std::vector<std::string>{"swish"};
          break;
        }
        case Chain::kAddSilu:
          add_input_r();
          n.node("Add", {"r", "y"}, {"a"}, "add");
          out = silu(n, "a", "act");
          break;
        case Chain::kReluAddRelu:
          n.node("Relu", {"y"}, {"m"}, "relu");
          n.node("Add", {"m", "r"}, {"a"}, "add");
          n.node("Relu", {"a"}, {"z"}, "relu2");
          out = "z";
          break;
        case Chain::kConvAlsoOutput:
          // y is read by the caller: the Relu must not be fused into the conv writing it.
          n.node("Relu", {"y"}, {"z"}, "relu");
          n.output("y");
          out = "z";
          e.conv_post_ops = std::vector<std::string>{};
          e.op_steps["Relu"] = 1;
          break;
        case Chain::kSigmoidAlsoOutput:
          // The sigmoid is read by the caller: no SiLU fusion anywhere.
          n.node("Sigmoid", {"y"}, {"s"}, "sigmoid");
          n.node("Mul", {"y", "s"}, {"z"}, "mul");
          n.output("s");
          out = "z";
          e.conv_post_ops = std::vector<std::string>{};
          e.op_steps["Sigmoid"] = 1;
          e.op_steps["Mul"] = 1;
          break;
      }
      n.output(out);
      e.dtype_node = "conv";
      e.bf16_dtype = "bf16";
      v.push_back(make_case("ConvChain", name, n, e));
    }
  return v;
}

// Slice node `out` of x (opset 10+ form: starts, ends, axes, steps as constants).
std::string slice(Net& n, const std::string& x, const std::string& out, const std::vector<int64_t>& starts,
                  const std::vector<int64_t>& ends, const std::vector<int64_t>& axes,
                  const std::vector<int64_t>& steps) {
  n.i64(out + "_starts", starts);
  n.i64(out + "_ends", ends);
  n.i64(out + "_axes", axes);
  n.i64(out + "_steps", steps);
  n.node("Slice", {x, out + "_starts", out + "_ends", out + "_axes", out + "_steps"}, {out}, out);
  return out;
}

// Small blocks of several fused convs, where the residual's buffer may be
// reused in place (a sum post-op) or must not be (the conv reads it, or a
// later node does), and the memory plan reuses buffers between steps.
std::vector<Case> block_cases() {
  std::vector<Case> v;
  ConvSpec k3;
  k3.o = 12, k3.pads = sym_pads(1);
  ConvSpec k1;
  k1.o = 12, k1.k = 1;
  const Shape xs = {1, 12, 7, 9};
  auto conv_silu = [](Net& n, const std::string& name, const std::string& x, const Shape& s, const ConvSpec& c) {
    n.conv(name, x, s, c, name + "_y");
    return silu(n, name + "_y", name);
  };
  {
    // ResNet basic block: the residual is the conv's own input, so the conv
    // must not write its result into the residual's buffer.
    const std::string name = "Block r=Conv(x); z=Relu(Conv(r)+r); Conv k1 1x12x7x9";
    Net n(name);
    n.input("x", xs);
    n.conv("c0", "x", xs, k3, "r");
    n.conv("c1", "r", xs, k3, "y");
    n.node("Add", {"y", "r"}, {"a"}, "add");
    n.node("Relu", {"a"}, {"z"}, "relu");
    n.conv("c2", "z", xs, k1, "out");
    n.output("out");
    PlanExpect e;
    e.op_steps = {{"Conv", 3}};
    e.dtype_node = "c1";
    e.bf16_dtype = "bf16";
    v.push_back(make_case("Block", name, n, e));
  }
  {
    // RepGFPN-like: r feeds a two-conv branch whose end adds r back; r's
    // other reader has run by then, so the sum may go into r's buffer.
    const std::string name = "Block r=SiLU(Conv(x)); z=SiLU(Conv(SiLU(Conv(r))))+r; Conv k1 1x12x7x9";
    Net n(name);
    n.input("x", xs);
    const std::string r = conv_silu(n, "c0", "x", xs, k3);
    const std::string y = conv_silu(n, "c1", r, xs, k3);
    const std::string y2 = conv_silu(n, "c2", y, xs, k3);
    n.node("Add", {y2, r}, {"z"}, "add");
    n.conv("c3", "z", xs, k1, "out");
    n.output("out");
    PlanExpect e;
    e.op_steps = {{"Conv", 4}, {"Sigmoid", 0}, {"Mul", 0}};
    e.dtype_node = "c2";
    e.bf16_dtype = "bf16";
    v.push_back(make_case("Block", name, n, e));
  }
  {
    // The residual is read again after the Add: no in-place sum.
    const std::string name = "Block r=Conv(x); z=Conv(x)+r; out=[Conv(z), Relu(r)] 1x12x7x9";
    Net n(name);
    n.input("x", xs);
    n.conv("c0", "x", xs, k3, "r");
    n.conv("c1", "x", xs, k3, "y");
    n.node("Add", {"y", "r"}, {"z"}, "add");
    n.conv("c2", "z", xs, k1, "out");
    n.node("Relu", {"r"}, {"out2"}, "relu");
    n.output("out");
    n.output("out2");
    PlanExpect e;
    e.op_steps = {{"Conv", 3}};
    v.push_back(make_case("Block", name, n, e));
  }
  {
    // The residual is also a graph output: never overwritten.
    const std::string name = "Block r=Conv(x) (also an output); z=Conv(x)+r; Conv k1 1x12x7x9";
    Net n(name);
    n.input("x", xs);
    n.conv("c0", "x", xs, k3, "r");
    n.conv("c1", "x", xs, k3, "y");
    n.node("Add", {"y", "r"}, {"z"}, "add");
    n.conv("c2", "z", xs, k1, "out");
    n.output("out");
    n.output("r");
    PlanExpect e;
    e.op_steps = {{"Conv", 3}};
    v.push_back(make_case("Block", name, n, e));
  }
  {
    // A miniature DAMO-YOLO: Focus, strided convs, SPP, upsample, concat,
    // a residual, two heads as outputs (no fused head: plain outputs).
    const std::string name = "Block mini-detector: Focus, Conv s2, SPP, Resize x2, Concat, residual 1x3x16x16";
    Net n(name);
    n.input("x", {1, 3, 16, 16});
    const int64_t offs[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
    std::vector<std::string> parts;
    for (int j = 0; j < 4; ++j)
      parts.push_back(slice(n, "x", "f" + std::to_string(j), {offs[j][0], offs[j][1]}, {INT64_MAX, INT64_MAX},
                            {2, 3}, {2, 2}));
    MB::attr_int(n.node("Concat", parts, {"focus"}, "focus_cat"), "axis", 1);
    ConvSpec stem;
    stem.o = 8, stem.pads = sym_pads(1);
    const std::string s0 = conv_silu(n, "stem", "focus", {1, 12, 8, 8}, stem);
    ConvSpec down;
    down.o = 16, down.stride = 2, down.pads = sym_pads(1);
    const std::string s1 = conv_silu(n, "down", s0, {1, 8, 8, 8}, down);  // 1x16x4x4
    std::string prev = s1;
    for (int j = 0; j < 2; ++j) {
      auto& mp = n.node("MaxPool", {prev}, {"spp" + std::to_string(j)}, "spp" + std::to_string(j));
      MB::attr_ints(mp, "kernel_shape", {5, 5});
      MB::attr_ints(mp, "pads", sym_pads(2));
      prev = "spp" + std::to_string(j);
    }
    MB::attr_int(n.node("Concat", {s1, "spp0", "spp1"}, {"spp"}, "spp_cat"), "axis", 1);  // 48 ch
    ConvSpec red;
    red.o = 8, red.k = 1;
    const std::string p5 = conv_silu(n, "reduce", "spp", {1, 48, 4, 4}, red);
    n.f32("up_roi", {0}, {});
    n.f32("up_scales", {4}, {1, 1, 2, 2});
    auto& up = n.node("Resize", {p5, "up_roi", "up_scales"}, {"up"}, "up");
    Net::attr_s(up, "mode", "nearest");
    Net::attr_s(up, "coordinate_transformation_mode", "asymmetric");
    Net::attr_s(up, "nearest_mode", "floor");
    MB::attr_int(n.node("Concat", {"up", s0}, {"p4"}, "p4_cat"), "axis", 1);  // 16 ch, 8x8
    ConvSpec fuse;
    fuse.o = 16, fuse.pads = sym_pads(1);
    const std::string f = conv_silu(n, "fuse", "p4", {1, 16, 8, 8}, fuse);
    n.node("Add", {f, "p4"}, {"p4r"}, "p4_add");
    ConvSpec head;
    head.o = 7, head.k = 1;
    n.conv("head_a", "p4r", {1, 16, 8, 8}, head, "out_a");
    n.node("Sigmoid", {"out_a"}, {"score"}, "score");
    n.conv("head_b", p5, {1, 8, 4, 4}, head, "out_b");
    n.output("score");
    n.output("out_b");
    PlanExpect e;
    e.views = 4;
    e.op_steps = {{"Conv", 6}, {"MaxPool", 2}, {"Resize", 1}};
    e.dtype_node = "fuse";
    e.bf16_dtype = "bf16";
    v.push_back(make_case("Block", name, n, e));
  }
  return v;
}

// ---------------------------------------------------------------------------
// MaxPool: kernel 2/3/5 × stride 1/2 × pads none/symmetric/asymmetric over
// odd and even maps; a few read a convolution's output (bf16 under BF16);
// ceil_mode, dilations and auto_pad fall back.

std::vector<Case> maxpool_cases() {
  std::vector<Case> v;
  const Shape shapes[] = {{1, 5, 7, 9}, {1, 16, 8, 8}, {1, 17, 13, 11}, {2, 3, 6, 10}};
  int i = 0;
  for (int64_t k : {2, 3, 5})
    for (int64_t s : {1, 2})
      for (int pad_mode : {0, 1, 2}) {
        const Shape xs = shapes[i % 4];
        const bool via_conv = i % 3 == 1;
        ++i;
        const int64_t p = std::min<int64_t>(k / 2, k - 1);
        std::vector<int64_t> pads = pad_mode == 0 ? std::vector<int64_t>{0, 0, 0, 0}
                                    : pad_mode == 1 ? sym_pads(p)
                                                    : std::vector<int64_t>{p, 0, std::max<int64_t>(p - 1, 0), p};
        const std::string name = "MaxPool k" + std::to_string(k) + " s" + std::to_string(s) + " pads[" +
                                 std::to_string(pads[0]) + "," + std::to_string(pads[1]) + "," +
                                 std::to_string(pads[2]) + "," + std::to_string(pads[3]) + "] " + dims_str(xs) +
                                 (via_conv ? " (after conv)" : "");
        Net n(name);
        const std::string x = n.act("x", xs, via_conv);
        auto& mp = n.node("MaxPool", {x}, {"y"}, "pool");
        MB::attr_ints(mp, "kernel_shape", {k, k});
        MB::attr_ints(mp, "strides", {s, s});
        MB::attr_ints(mp, "pads", pads);
        n.output("y");
        PlanExpect e;
        e.op_steps = {{"MaxPool", 1}};
        e.dtype_node = "pool";
        if (via_conv) e.bf16_dtype = "bf16";
        v.push_back(make_case("MaxPool", name, n, e, /*exact_fp32=*/!via_conv));
      }
  {
    // SPPF as in DAMO-YOLO's neck: three k5 s1 p2 pools in a row, concatenated.
    const std::string name = "MaxPool k5 s1 p2 x3 SPPF + Concat 1x8x9x9 (after conv)";
    Net n(name);
    const std::string x = n.act("x", {1, 8, 9, 9}, true);
    std::string prev = x;
    for (int j = 0; j < 3; ++j) {
      auto& mp = n.node("MaxPool", {prev}, {"p" + std::to_string(j)}, "pool" + std::to_string(j));
      MB::attr_ints(mp, "kernel_shape", {5, 5});
      MB::attr_ints(mp, "pads", sym_pads(2));
      prev = "p" + std::to_string(j);
    }
    MB::attr_int(n.node("Concat", {x, "p0", "p1", "p2"}, {"y"}, "cat"), "axis", 1);
    n.output("y");
    PlanExpect e;
    e.op_steps = {{"MaxPool", 3}};
    e.dtype_node = "pool0";
    e.bf16_dtype = "bf16";
    v.push_back(make_case("MaxPool", name, n, e));
  }
  for (bool via_conv : {false, true}) {
    // Non-square window and strides.
    const std::string name = std::string("MaxPool k3x2 s1x2 pads[1,0,1,0] 1x6x7x9") + (via_conv ? " (after conv)" : "");
    Net n(name);
    const std::string x = n.act("x", {1, 6, 7, 9}, via_conv);
    auto& mp = n.node("MaxPool", {x}, {"y"}, "pool");
    MB::attr_ints(mp, "kernel_shape", {3, 2});
    MB::attr_ints(mp, "strides", {1, 2});
    MB::attr_ints(mp, "pads", {1, 0, 1, 0});
    n.output("y");
    PlanExpect e;
    e.op_steps = {{"MaxPool", 1}};
    e.dtype_node = "pool";
    if (via_conv) e.bf16_dtype = "bf16";
    v.push_back(make_case("MaxPool", name, n, e, !via_conv));
  }
  struct Fallback {
    const char* what;
    const char* attr;
    std::vector<int64_t> value;
  };
  for (const Fallback& f : {Fallback{"ceil_mode 1", "ceil_mode", {1}}, Fallback{"dilations [2,2]", "dilations", {2, 2}}}) {
    const std::string name = std::string("MaxPool k3 s2 ") + f.what + " 1x5x8x9 (falls back)";
    Net n(name);
    n.input("x", {1, 5, 8, 9});
    auto& mp = n.node("MaxPool", {"x"}, {"y"}, "pool");
    MB::attr_ints(mp, "kernel_shape", {3, 3});
    MB::attr_ints(mp, "strides", {2, 2});
    if (f.value.size() == 1) MB::attr_int(mp, f.attr, f.value[0]);
    else MB::attr_ints(mp, f.attr, f.value);
    n.output("y");
    PlanExpect e;
    e.fallback_node = "pool", e.fallback_op = "MaxPool", e.reason = "no oneDNN lowering for this MaxPool";
    v.push_back(make_case("MaxPool", name, n, e, true));
  }
  {
    const std::string name = "MaxPool k3 s2 auto_pad SAME_UPPER 1x5x8x9 (falls back)";
    Net n(name);
    n.input("x", {1, 5, 8, 9});
    auto& mp = n.node("MaxPool", {"x"}, {"y"}, "pool");
    MB::attr_ints(mp, "kernel_shape", {3, 3});
    MB::attr_ints(mp, "strides", {2, 2});
    Net::attr_s(mp, "auto_pad", "SAME_UPPER");
    n.output("y");
    PlanExpect e;
    e.fallback_node = "pool", e.fallback_op = "MaxPool", e.reason = "no oneDNN lowering for this MaxPool";
    v.push_back(make_case("MaxPool", name, n, e, true));
  }
  return v;
}

// ---------------------------------------------------------------------------
// Resize: nearest / asymmetric / floor with integer factors is lowered (by
// scales or by sizes, opset 11 and 13); other modes and non-integer factors
// fall back.

struct ResizeSpec {
  Shape xs;
  float fh, fw;           // scales on H and W
  bool by_sizes = false;  // give sizes instead of scales
  std::string mode = "nearest", ctm = "asymmetric", nearest = "floor";
  int64_t opset = 11;
};

Case resize_case(const ResizeSpec& r, bool via_conv, bool lowered, const std::string& note = "") {
  const Shape ys = {r.xs[0], r.xs[1], static_cast<int64_t>(std::floor(r.xs[2] * r.fh)),
                    static_cast<int64_t>(std::floor(r.xs[3] * r.fw))};
  char f[64];
  std::snprintf(f, sizeof f, "%gx%g", r.fh, r.fw);
  const std::string name = "Resize " + r.mode + " " + r.ctm + (r.mode == "nearest" ? " " + r.nearest : "") + " " +
                           (r.by_sizes ? "sizes " : "scales ") + f + " opset" + std::to_string(r.opset) + " " +
                           dims_str(r.xs) + "->" + dims_str(ys) + (via_conv ? " (after conv)" : "") + note;
  Net n(name, r.opset);
  const std::string x = n.act("x", r.xs, via_conv);
  std::vector<std::string> in = {x};
  if (r.opset < 13) in.push_back(n.f32("roi", {0}, {}));  // required (empty) before opset 13
  else in.push_back("");
  if (r.by_sizes) {
    in.push_back(r.opset < 13 ? n.f32("scales", {0}, {}) : "");
    in.push_back(n.i64("sizes", ys));
  } else {
    in.push_back(n.f32("scales", {4}, {1.f, 1.f, r.fh, r.fw}));
  }
  auto& node = n.node("Resize", in, {"y"}, "resize");
  Net::attr_s(node, "mode", r.mode);
  Net::attr_s(node, "coordinate_transformation_mode", r.ctm);
  Net::attr_s(node, "nearest_mode", r.nearest);
  n.output("y");
  PlanExpect e;
  if (lowered) {
    e.op_steps = {{"Resize", 1}};
    e.dtype_node = "resize";
    if (via_conv) e.bf16_dtype = "bf16";
  } else {
    e.fallback_node = "resize", e.fallback_op = "Resize", e.reason = "no oneDNN lowering for this Resize";
  }
  // Nearest picks an input element: exact. Linear interpolates.
  return make_case("Resize", name, n, e, /*exact_fp32=*/!via_conv && r.mode == "nearest");
}

std::vector<Case> resize_cases() {
  std::vector<Case> v;
  const Shape shapes[] = {{1, 3, 7, 9}, {1, 16, 5, 5}, {1, 17, 4, 6}, {2, 5, 3, 3}};
  const std::pair<float, float> factors[] = {{2, 2}, {3, 3}, {2, 3}, {1, 2}, {4, 1}, {1, 1}};
  int i = 0;
  for (auto [fh, fw] : factors)
    for (bool by_sizes : {false, true}) {
      ResizeSpec r;
      r.xs = shapes[i % 4];
      r.fh = fh, r.fw = fw;
      r.by_sizes = by_sizes;
      r.opset = i % 3 == 2 ? 13 : 11;
      const bool via_conv = i % 2 == 1;
      ++i;
      v.push_back(resize_case(r, via_conv, true));
    }
  // Must fall back: other modes, or factors the oneDNN nearest rule does not reproduce.
  auto fb = [&](ResizeSpec r, const std::string& note) { v.push_back(resize_case(r, false, false, note)); };
  ResizeSpec r;
  r.xs = {1, 3, 7, 9};
  r.fh = r.fw = 2;
  {
    ResizeSpec x = r;
    x.mode = "linear";
    fb(x, " (falls back)");
  }
  {
    ResizeSpec x = r;
    x.ctm = "half_pixel", x.nearest = "round_prefer_floor";  // ONNX's defaults
    fb(x, " (falls back)");
  }
  {
    ResizeSpec x = r;
    x.nearest = "round_prefer_floor";
    fb(x, " (falls back)");
  }
  {
    ResizeSpec x = r;
    x.fh = x.fw = 1.5f;
    fb(x, " (non-integer factor, falls back)");
  }
  {
    ResizeSpec x = r;
    x.xs = {1, 3, 4, 4};
    x.fh = x.fw = 2.5f;  // 4·2.5 = 10 is not a multiple of 4
    fb(x, " (non-integer factor, falls back)");
  }
  {
    ResizeSpec x = r;
    x.xs = {1, 3, 1, 1};
    x.fh = x.fw = 2.5f;  // 1 → 2: an integer ratio of sizes, but ONNX maps by the 2.5 scale
    fb(x, " (scale differs from the size ratio, falls back)");
  }
  {
    ResizeSpec x = r;
    x.xs = {1, 3, 8, 8};
    x.fh = x.fw = 0.5f;
    fb(x, " (downsampling, falls back)");
  }
  return v;
}

// ---------------------------------------------------------------------------
// Concat of 2-4 inputs along channels: graph inputs (plain), conv outputs
// (channels-last: one concat primitive when they match), mixes, and Slice
// views (the Focus pattern: strided views copied straight into the output's
// channel slices; channel slices; slices of a conv's output).


std::vector<Case> concat_cases() {
  std::vector<Case> v;
  const int64_t channels[] = {3, 5, 16, 7};
  // Graph inputs; conv outputs; a mix. 2, 3 and 4 inputs, on two map sizes.
  for (int kind = 0; kind < 3; ++kind)
    for (int count : {2, 3, 4})
      for (Shape hw : {Shape{7, 9}, Shape{8, 8}}) {
        std::string name = std::string("Concat ") + std::to_string(count) + " x " +
                           (kind == 0 ? "graph input" : kind == 1 ? "conv output" : "mixed") + " [";
        Net n("concat " + std::to_string(kind) + std::to_string(count) + dims_str(hw));
        std::vector<std::string> in;
        for (int j = 0; j < count; ++j) {
          const Shape s = {1, channels[j], hw[0], hw[1]};
          const bool conv = kind == 1 || (kind == 2 && j % 2 == 1);
          in.push_back(n.act(nth("x", j), s, conv));
          if (j) name += ",";
          name += dims_str(s);
          if (conv) name += "(conv)";
        }
        name += "]";
        auto& cat = n.node("Concat", in, {"y"}, "cat");
        MB::attr_int(cat, "axis", count == 3 ? -3 : 1);
        if (count == 3) name += " axis -3";
        n.output("y");
        PlanExpect e;
        e.dtype_node = "cat";  // copies into the (f32) graph output
        v.push_back(make_case("Concat", name, n, e, /*exact_fp32=*/kind == 0));
      }
  // Conv outputs concatenated and read by another conv: all in the same
  // layout (bf16 under BF16), one concat primitive.
  for (int count : {2, 4}) {
    const std::string name = "Concat " + std::to_string(count) + " conv outputs 1x?x7x9 -> Conv k1";
    Net n(name);
    std::vector<std::string> in;
    int64_t c = 0;
    for (int j = 0; j < count; ++j) {
      in.push_back(n.act("x" + std::to_string(j), {1, channels[j], 7, 9}, true));
      c += channels[j];
    }
    MB::attr_int(n.node("Concat", in, {"cat_out"}, "cat"), "axis", 1);
    ConvSpec k1;
    k1.o = 6, k1.k = 1;
    n.conv("conv", "cat_out", {1, c, 7, 9}, k1, "y");
    n.output("y");
    PlanExpect e;
    e.op_steps = {{"Concat", 1}};
    e.dtype_node = "cat";
    e.bf16_dtype = "bf16";
    v.push_back(make_case("Concat", name, n, e));
  }
  // Focus: x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]
  // as one Slice over (H, W) each, or as PyTorch exports it (H then W).
  for (bool chained : {false, true})
    for (bool then_conv : {false, true})
      for (Shape xs : {Shape{1, 3, 8, 10}, Shape{1, 5, 6, 14}}) {
        const std::string name = std::string("Concat of 4 Focus slices (") + (chained ? "Slice H then W" : "one Slice") +
                                 ") " + dims_str(xs) + (then_conv ? " -> Conv k3" : "");
        Net n(name);
        n.input("x", xs);
        const int64_t offs[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
        std::vector<std::string> parts;
        for (int j = 0; j < 4; ++j) {
          const std::string p = nth("s", j);
          if (chained) {
            slice(n, "x", p + "h", {offs[j][0]}, {INT64_MAX}, {2}, {2});
            parts.push_back(slice(n, p + "h", p, {offs[j][1]}, {INT64_MAX}, {3}, {2}));
          } else {
            parts.push_back(slice(n, "x", p, {offs[j][0], offs[j][1]}, {INT64_MAX, INT64_MAX}, {2, 3}, {2, 2}));
          }
        }
        MB::attr_int(n.node("Concat", parts, {then_conv ? "cat_out" : "y"}, "cat"), "axis", 1);
        if (then_conv) {
          ConvSpec c;
          c.o = 8, c.pads = sym_pads(1);
          n.conv("conv", "cat_out", {1, 4 * xs[1], xs[2] / 2, xs[3] / 2}, c, "y");
        }
        n.output("y");
        PlanExpect e;
        e.views = chained ? 8 : 4;
        e.op_steps = {{"Slice", chained ? 8 : 4}};
        e.dtype_node = "cat";
        if (then_conv) e.bf16_dtype = "bf16";
        v.push_back(make_case("Concat", name, n, e, /*exact_fp32=*/!then_conv));
      }
  {
    // Channel slices of a graph input (a negative start, an end past the
    // end, a step of 2) with the input itself: a channel shuffle.
    const std::string name = "Concat [x[:,-2:], x, x[:,0:5:2], x[:,1:3]] of 1x7x5x6 (Slice views)";
    Net n(name);
    n.input("x", {1, 7, 5, 6});
    std::vector<std::string> parts = {slice(n, "x", "a", {-2}, {INT64_MAX}, {1}, {1}), "x",
                                      slice(n, "x", "b", {0}, {5}, {1}, {2}), slice(n, "x", "c", {1}, {3}, {-3}, {1})};
    MB::attr_int(n.node("Concat", parts, {"y"}, "cat"), "axis", 1);
    n.output("y");
    PlanExpect e;
    e.views = 3;
    v.push_back(make_case("Concat", name, n, e, true));
  }
  {
    // Slices of a convolution's (channels-last) output, around another input.
    const std::string name = "Concat [y[:,8:12], x2, y[:,0:5]] with y = Conv of 1x6x7x9 (views of a conv output)";
    Net n(name);
    n.input("x", {1, 6, 7, 9});
    n.input("x2", {1, 3, 7, 9});
    ConvSpec c;
    c.o = 12, c.pads = sym_pads(1);
    n.conv("conv", "x", {1, 6, 7, 9}, c, "cy");
    std::vector<std::string> parts = {slice(n, "cy", "a", {8}, {12}, {1}, {1}), "x2",
                                      slice(n, "cy", "b", {0}, {5}, {1}, {1})};
    MB::attr_int(n.node("Concat", parts, {"y"}, "cat"), "axis", 1);
    n.output("y");
    PlanExpect e;
    e.views = 2;
    v.push_back(make_case("Concat", name, n, e));
  }
  {
    // A view read by a convolution rather than a concat.
    const std::string name = "Slice x[:, :, 1::2, ::2] of 1x4x9x8 -> Conv k3";
    Net n(name);
    n.input("x", {1, 4, 9, 8});
    slice(n, "x", "s", {1, 0}, {INT64_MAX, INT64_MAX}, {2, 3}, {2, 2});
    ConvSpec c;
    c.o = 6, c.pads = sym_pads(1);
    n.conv("conv", "s", {1, 4, 4, 4}, c, "y");
    n.output("y");
    PlanExpect e;
    e.views = 1;
    e.op_steps = {{"Conv", 1}};
    v.push_back(make_case("Concat", name, n, e));
  }
  {
    // A strided window of a conv's channels-last output (H and W, step 2, odd ends), read by a conv.
    const std::string name = "Slice y[:, :, 1:6:2, 0:7:3] of y = Conv of 1x5x7x9 -> Conv k3";
    Net n(name);
    n.input("x", {1, 5, 7, 9});
    ConvSpec c;
    c.o = 10, c.pads = sym_pads(1);
    n.conv("conv0", "x", {1, 5, 7, 9}, c, "cy");
    slice(n, "cy", "s", {1, 0}, {6, 7}, {2, 3}, {2, 3});  // 1x10x3x3
    ConvSpec c2;
    c2.o = 4, c2.pads = sym_pads(1);
    n.conv("conv", "s", {1, 10, 3, 3}, c2, "y");
    n.output("y");
    PlanExpect e;
    e.views = 1;
    e.op_steps = {{"Conv", 2}};
    v.push_back(make_case("Concat", name, n, e));
  }
  {
    // A slice of a slice of a slice (views of views), and the batch axis.
    const std::string name = "Slice x[1:2] then [:, 1:] then [:, :, ::2] of 2x4x6x5, Concat with itself";
    Net n(name);
    n.input("x", {2, 4, 6, 5});
    slice(n, "x", "a", {1}, {2}, {0}, {1});
    slice(n, "a", "b", {1}, {INT64_MAX}, {1}, {1});
    slice(n, "b", "c", {0}, {INT64_MAX}, {2}, {2});  // 1x3x3x5
    MB::attr_int(n.node("Concat", {"c", "c"}, {"y"}, "cat"), "axis", 1);
    n.output("y");
    PlanExpect e;
    e.views = 3;
    v.push_back(make_case("Concat", name, n, e, true));
  }
  {
    // Views as graph outputs: copied out of the input they view.
    const std::string name = "Slice x[:, 1:3] and x[:, :, ::2, 1::3] of 1x4x6x7 as graph outputs";
    Net n(name);
    n.input("x", {1, 4, 6, 7});
    slice(n, "x", "a", {1}, {3}, {1}, {1});
    slice(n, "x", "b", {0, 1}, {INT64_MAX, INT64_MAX}, {2, 3}, {2, 3});
    n.output("a");
    n.output("b");
    PlanExpect e;
    e.views = 2;
    v.push_back(make_case("Concat", name, n, e, true));
  }
  {
    const std::string name = "Concat [conv y, conv y, x] 1x6x5x7 (one input twice)";
    Net n(name);
    n.input("x", {1, 6, 5, 7});
    ConvSpec c;
    c.o = 6, c.k = 1;
    n.conv("conv", "x", {1, 6, 5, 7}, c, "cy");
    MB::attr_int(n.node("Concat", {"cy", "cy", "x"}, {"y"}, "cat"), "axis", 1);
    n.output("y");
    v.push_back(make_case("Concat", name, n, {}));
  }
  {
    // A negative step is not a view the engine makes: that Slice falls back alone.
    const std::string name = "Slice x[:, ::-1] of 1x4x3x5 -> Concat (negative step falls back)";
    Net n(name);
    n.input("x", {1, 4, 3, 5});
    slice(n, "x", "r", {-1}, {INT64_MIN}, {1}, {-1});
    MB::attr_int(n.node("Concat", {"r", "x"}, {"y"}, "cat"), "axis", 1);
    n.output("y");
    PlanExpect e;
    e.fallback_node = "r", e.fallback_op = "Slice", e.reason = "no oneDNN lowering for this Slice";
    v.push_back(make_case("Concat", name, n, e, true));
  }
  for (int64_t axis : {2, 3}) {
    const std::string name = "Concat axis " + std::to_string(axis) + " of 1x3x4x5, 1x3x4x5 (falls back)";
    Net n(name);
    n.input("a", {1, 3, 4, 5});
    n.input("b", {1, 3, 4, 5});
    MB::attr_int(n.node("Concat", {"a", "b"}, {"y"}, "cat"), "axis", axis);
    n.output("y");
    PlanExpect e;
    e.fallback_node = "cat", e.fallback_op = "Concat", e.reason = "no oneDNN lowering for this Concat";
    v.push_back(make_case("Concat", name, n, e, true));
  }
  return v;
}

// ---------------------------------------------------------------------------
// Unary eltwise: Relu / Sigmoid / Exp on graph inputs of several ranks and
// shapes, on conv outputs with the conv fusion off (so the op is its own
// step, reading bf16 under BF16 where the engine keeps it in bf16), on a
// Slice view; standalone SiLU (Sigmoid + Mul fused into one swish step).

std::vector<Case> eltwise_cases() {
  std::vector<Case> v;
  const Shape shapes[] = {{1, 3, 7, 9}, {1, 16, 8, 8}, {1, 17, 5, 3}, {2, 5, 4, 4}, {6, 10}, {2, 7, 9}};
  for (const char* op : {"Relu", "Sigmoid", "Exp"}) {
    for (const Shape& s : shapes) {
      const std::string name = std::string(op) + " " + dims_str(s);
      Net n(name);
      n.input("x", s, std::string(op) == "Relu" ? Dist::kUniform : Dist::kWide);
      n.node(op, {"x"}, {"y"}, "op");
      n.output("y");
      PlanExpect e;
      e.op_steps = {{op, 1}};
      e.dtype_node = "op";
      v.push_back(make_case("Eltwise", name, n, e, /*exact_fp32=*/std::string(op) == "Relu"));
    }
    for (const Shape& s : {Shape{1, 12, 7, 9}, Shape{1, 20, 4, 6}}) {
      const std::string name = std::string(op) + " " + dims_str(s) + " (after conv, conv fusion off)";
      Net n(name);
      const std::string x = n.act("x", s, true, Dist::kWide);
      n.node(op, {x}, {"y"}, "op");
      n.output("y");
      PlanExpect e;
      e.op_steps = {{op, 1}, {"Conv", 1}};
      e.conv_post_ops = std::vector<std::string>{};
      e.dtype_node = "op";
      // Relu is kept in bf16 between steps; Sigmoid and Exp read f32.
      e.bf16_dtype = std::string(op) == "Relu" ? "bf16" : "f32";
      Case c = make_case("Eltwise", name, n, e);
      c.opt.fuse_conv_activation = false;
      v.push_back(c);
    }
    {
      const std::string name = std::string(op) + " of a Slice view x[:, 2:6] of 1x8x5x7";
      Net n(name);
      n.input("x", {1, 8, 5, 7}, Dist::kWide);
      slice(n, "x", "s", {2}, {6}, {1}, {1});
      n.node(op, {"s"}, {"y"}, "op");
      n.output("y");
      PlanExpect e;
      e.op_steps = {{op, 1}};
      e.views = 1;
      v.push_back(make_case("Eltwise", name, n, e, std::string(op) == "Relu"));
    }
  }
  for (bool x_first : {true, false})
    for (const Shape& s : {Shape{1, 3, 7, 9}, Shape{2, 17, 5, 3}}) {
      const std::string name = std::string("SiLU ") + (x_first ? "Mul(x,Sigmoid(x)) " : "Mul(Sigmoid(x),x) ") +
                               dims_str(s);
      Net n(name);
      n.input("x", s, Dist::kWide);
      n.node("Sigmoid", {"x"}, {"sg"}, "op");
      n.node("Mul", x_first ? std::vector<std::string>{"x", "sg"} : std::vector<std::string>{"sg", "x"}, {"y"}, "mul");
      n.output("y");
      PlanExpect e;
      e.op_steps = {{"Sigmoid", 1}, {"Mul", 0}};  // one swish step (its first node is the Sigmoid)
      e.dtype_node = "op";
      v.push_back(make_case("Eltwise", name, n, e));
    }
  {
    // With the activation fusion off the SiLU is two steps: logistic, then a binary Mul.
    const std::string name = "SiLU Mul(x,Sigmoid(x)) 1x6x5x5, fusion off";
    Net n(name);
    n.input("x", {1, 6, 5, 5}, Dist::kWide);
    n.node("Sigmoid", {"x"}, {"sg"}, "op");
    n.node("Mul", {"x", "sg"}, {"y"}, "mul");
    n.output("y");
    PlanExpect e;
    e.op_steps = {{"Sigmoid", 1}, {"Mul", 1}};
    Case c = make_case("Eltwise", name, n, e);
    c.opt.fuse_conv_activation = false;
    v.push_back(c);
  }
  return v;
}

// ---------------------------------------------------------------------------
// Binary Add / Sub / Mul / Div: two same-shape activations (binary
// primitive), an activation and a scalar constant (eltwise linear where
// exact: x+c, x-c, x·c, c+x, c·x), and what falls back (x/c, c-x, c/x,
// broadcasting, rank other than 4).

std::vector<Case> binary_cases() {
  std::vector<Case> v;
  const char* ops[] = {"Add", "Sub", "Mul", "Div"};
  const Shape shapes[] = {{1, 3, 7, 9}, {1, 16, 8, 8}, {2, 5, 4, 4}, {1, 17, 5, 3}};
  for (const char* op : ops) {
    const bool div = std::string(op) == "Div";
    for (const Shape& s : shapes) {
      const std::string name = std::string(op) + "(a, b) " + dims_str(s);
      Net n(name);
      n.input("a", s);
      n.input("b", s, div ? Dist::kNonZero : Dist::kUniform);
      n.node(op, {"a", "b"}, {"y"}, "op");
      n.output("y");
      PlanExpect e;
      e.op_steps = {{op, 1}};
      e.dtype_node = "op";
      v.push_back(make_case("Binary", name, n, e));
    }
    {
      // Both operands written by convolutions (channels-last); the residual
      // fusion off so that an Add stays its own step (bf16 under BF16).
      // (A conv output can come near 0, so Div divides by a graph input kept away from it.)
      const std::string name = std::string(op) + (div ? "(conv a, input b)" : "(conv a, conv b)") +
                               " 1x12x7x9 (residual fusion off)";
      Net n(name);
      const std::string a = n.act("a", {1, 12, 7, 9}, true);
      const std::string b = div ? n.input("b", {1, 12, 7, 9}, Dist::kNonZero) : n.act("b", {1, 12, 7, 9}, true);
      n.node(op, {a, b}, {"y"}, "op");
      n.output("y");
      PlanExpect e;
      e.op_steps = {{op, 1}, {"Conv", div ? 1 : 2}};
      e.dtype_node = "op";
      e.bf16_dtype = std::string(op) == "Add" ? "bf16" : "f32";  // the engine keeps Add in bf16 only
      Case c = make_case("Binary", name, n, e);
      c.opt.fuse_conv_residual = false;
      v.push_back(c);
    }
    {
      // One plain input and one channels-last conv output: a layout conversion in between.
      const std::string name = std::string(op) + "(input a, conv b) 1x6x5x7";
      Net n(name);
      n.input("a", {1, 6, 5, 7});
      const std::string b = n.act("b", {1, 6, 5, 7}, true);
      n.node(op, {"a", b}, {"y"}, "op");
      n.output("y");
      PlanExpect e;
      e.op_steps = {{op, 1}};
      Case c = make_case("Binary", name, n, e);
      c.opt.fuse_conv_residual = false;
      // A conv output can come near 0: Div only divides by graph inputs kept away from it.
      if (!div) v.push_back(c);
    }
    // With a scalar constant, on either side, as rank-0, [1] or [1,1,1,1].
    struct Scalar {
      bool x_first;
      Shape dims;
      float value;
    };
    for (const Scalar& sc : {Scalar{true, {}, 0.75f}, Scalar{false, {1}, -1.25f}, Scalar{true, {1, 1, 1, 1}, -0.5f},
                             Scalar{false, {}, 2.0f}}) {
      const std::string opn(op);
      const bool lowered = sc.x_first ? opn != "Div" : (opn == "Add" || opn == "Mul");
      char val[32];
      std::snprintf(val, sizeof val, "%g", sc.value);
      const std::string c_name = std::string("c[") + (sc.dims.empty() ? "rank0" : dims_str(sc.dims)) + "]=" + val;
      const Shape s = {1, 5, 6, 7};
      const std::string name = opn + (sc.x_first ? "(x, " + c_name + ")" : "(" + c_name + ", x)") + " " +
                               dims_str(s) + (lowered ? "" : " (falls back)");
      Net n(name);
      n.input("x", s, div && !sc.x_first ? Dist::kNonZero : Dist::kUniform);
      n.f32("c", sc.dims, {sc.value});
      n.node(op, sc.x_first ? std::vector<std::string>{"x", "c"} : std::vector<std::string>{"c", "x"}, {"y"}, "op");
      n.output("y");
      PlanExpect e;
      if (lowered) {
        e.op_steps = {{op, 1}};
        e.dtype_node = "op";
      } else {
        e.fallback_node = "op", e.fallback_op = op, e.reason = "no oneDNN lowering for this " + opn;
      }
      v.push_back(make_case("Binary", name, n, e));
    }
  }
  {
    const std::string name = "Add(x, x) 1x4x5x5 (one operand twice)";
    Net n(name);
    n.input("x", {1, 4, 5, 5});
    n.node("Add", {"x", "x"}, {"y"}, "op");
    n.output("y");
    PlanExpect e;
    e.op_steps = {{"Add", 1}};
    v.push_back(make_case("Binary", name, n, e));
  }
  {
    const std::string name = "Mul(x, const [1,5,1,1]) 1x5x4x6 (broadcast constant, falls back)";
    Net n(name);
    n.input("x", {1, 5, 4, 6});
    n.f32("c", {1, 5, 1, 1}, n.uniform(5, -1, 1));
    n.node("Mul", {"x", "c"}, {"y"}, "op");
    n.output("y");
    PlanExpect e;
    e.fallback_node = "op", e.fallback_op = "Mul", e.reason = "no oneDNN lowering for this Mul";
    v.push_back(make_case("Binary", name, n, e));
  }
  {
    const std::string name = "Add(a 1x5x4x6, b 1x5x1x1) (broadcast input, falls back)";
    Net n(name);
    n.input("a", {1, 5, 4, 6});
    n.input("b", {1, 5, 1, 1});
    n.node("Add", {"a", "b"}, {"y"}, "op");
    n.output("y");
    PlanExpect e;
    e.fallback_node = "op", e.fallback_op = "Add", e.reason = "no oneDNN lowering for this Add";
    v.push_back(make_case("Binary", name, n, e));
  }
  {
    const std::string name = "Sub(a, b) 3x5x7 (rank 3, falls back)";
    Net n(name);
    n.input("a", {3, 5, 7});
    n.input("b", {3, 5, 7});
    n.node("Sub", {"a", "b"}, {"y"}, "op");
    n.output("y");
    PlanExpect e;
    e.fallback_node = "op", e.fallback_op = "Sub", e.reason = "no oneDNN lowering for this Sub";
    v.push_back(make_case("Binary", name, n, e));
  }
  return v;
}

// ---------------------------------------------------------------------------

class Ops : public ::testing::TestWithParam<Precision> {
 protected:
  void run_all(const std::string& family, const std::vector<Case>& cases) {
    Stats st;
    for (const Case& c : cases) run_case(c, GetParam(), st);
    print_stats(family, GetParam(), st);
    EXPECT_GT(st.cases, 0);
  }
};

TEST_P(Ops, Conv) { run_all("Conv", conv_cases()); }
TEST_P(Ops, ConvChain) { run_all("ConvChain", conv_chain_cases()); }
TEST_P(Ops, Block) { run_all("Block", block_cases()); }
TEST_P(Ops, MaxPool) { run_all("MaxPool", maxpool_cases()); }
TEST_P(Ops, Resize) { run_all("Resize", resize_cases()); }
TEST_P(Ops, Concat) { run_all("Concat", concat_cases()); }
TEST_P(Ops, Eltwise) { run_all("Eltwise", eltwise_cases()); }
TEST_P(Ops, Binary) { run_all("Binary", binary_cases()); }

INSTANTIATE_TEST_SUITE_P(Precisions, Ops, ::testing::Values(Precision::kFP32, Precision::kBF16),
                         [](const auto& info) { return std::string(precision_name(info.param)); });

// Case names are unique: a failure names exactly one case.
TEST(OpsGrid, CaseNamesAreUnique) {
  std::map<std::string, int> seen;
  for (const auto& cases : {conv_cases(), conv_chain_cases(), block_cases(), maxpool_cases(), resize_cases(), concat_cases(),
                            eltwise_cases(), binary_cases()})
    for (const Case& c : cases) EXPECT_EQ(++seen[c.name], 1) << "duplicate case name: " << c.name;
}

}  // namespace
}  // namespace damoyolo::ops_test
