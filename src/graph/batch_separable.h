// Whether a graph computes each item of its batch from that item alone.
//
// Running a batch in pieces (images_on_threads: one image per thread through
// a batch-1 plan) is only correct when no node mixes the items of the batch:
// the batch axis is never sliced, concatenated, split, reduced, transposed or
// reshaped, and no constant carries one value per item. A detector's graph
// (convolutions, pooling, resizes, concatenations over channels, the fused
// head) is; an arbitrary ONNX graph that happens to have one input need not
// be (tests/ops slices x[1:2] off the batch). The check is by op, on a short
// list of ops known to act per item (with their axis conditions); any other op
// makes the answer "no", so a new op is never split by mistake.
#pragma once

#include <string>

#include "graph/graph.h"

namespace damoyolo::graph {

// True when every node acts on each item of the leading (batch) axis alone
// and every graph input and output has that axis with the same size. `why`
// (optional) receives the first node or value that prevents it.
bool batch_separable(const Graph& g, std::string* why = nullptr);

}  // namespace damoyolo::graph
