// The lowering table (kernels/dnnl/lowering_table.cc) against the op schemas:
// every lowering is for an op the graph layer knows, each (domain, op) once,
// and the ops the engine keeps in bf16 are the ones it was measured with.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "graph/ops/op_schema.h"
#include "kernels/dnnl/lowering.h"

namespace damoyolo {
namespace {

TEST(LoweringTable, EveryRowIsAKnownOpOnce) {
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& l : kernels::dnnl_ops::lowerings()) {
    EXPECT_NE(graph::find_schema(l.domain, l.op_type), nullptr) << l.domain << " " << l.op_type;
    EXPECT_TRUE(seen.insert({std::string(l.domain), std::string(l.op_type)}).second) << l.op_type << " twice";
    graph::Node n;
    n.op_type = std::string(l.op_type);
    n.domain = std::string(l.domain);
    EXPECT_EQ(kernels::dnnl_ops::find_lowering(n), &l);
  }
  // The fusion passes' ops all have a lowering (else a fused graph would fall back).
  for (const char* op : {"FusedConv", "Silu", "DamoYoloHead"}) {
    graph::Node n;
    n.op_type = op;
    n.domain = graph::kDamoYoloDomain;
    EXPECT_NE(kernels::dnnl_ops::find_lowering(n), nullptr) << op;
  }
  graph::Node other;
  other.op_type = "Conv";
  other.domain = "com.example";  // same op name, another domain: not ours
  EXPECT_EQ(kernels::dnnl_ops::find_lowering(other), nullptr);
}

TEST(LoweringTable, Bf16StopsWhereItWasMeasuredToStop) {
  std::set<std::string> bf16;
  for (const auto& l : kernels::dnnl_ops::lowerings())
    if (l.reads_bf16) bf16.insert(std::string(l.op_type));
  // Changing this set changes BF16 accuracy (tests/ops bounds, docs/engine.md).
  EXPECT_EQ(bf16, (std::set<std::string>{"Conv", "FusedConv", "MaxPool", "Resize", "Concat", "Relu", "Add"}));
}

}  // namespace
}  // namespace damoyolo
