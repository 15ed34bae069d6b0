// ONNX → graph::Graph.
//
// Uses ONNX's own protobuf schema (Debian's libonnx-dev). Weights are moved out
// of the parsed protobuf (release_raw_data) instead of copied, so a large model
// is copied exactly once: from the file into the parsed message.
#pragma once

#include <string>

#include "graph/graph.h"

namespace onnx {
class TensorProto;
}

namespace damoyolo::onnx_io {

// Throws damoyolo::Error (kNotFound, kIOError, kParseError, kUnsupported).
graph::Graph load_onnx_file(const std::string& path);
// base_dir resolves external-data locations.
graph::Graph load_onnx_memory(const void* data, size_t size, const std::string& base_dir,
                              const std::string& name_for_errors = "<memory>");

// A TensorProto as a Tensor (raw_data, typed fields, or external data under base_dir).
// Takes ownership of raw_data when `proto` is mutable and `steal` is true.
Tensor tensor_from_proto(onnx::TensorProto& proto, const std::string& base_dir, bool steal = false);
Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir);

}  // namespace damoyolo::onnx_io
