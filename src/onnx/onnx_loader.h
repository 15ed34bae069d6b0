// ONNX → graph::Graph.
//
// Uses ONNX's own protobuf schema (Debian's libonnx-dev). Weights are moved out
// of the parsed protobuf (release_raw_data) instead of copied, so a large model
// is copied exactly once: from the file into the parsed message.
#pragma once

#include <string>

#include "damoyolo/limits.h"
#include "graph/graph.h"

namespace onnx {
class TensorProto;
}

namespace damoyolo::onnx_io {

// The file is untrusted (docs/security.md): external data is read only from
// regular files inside the model's folder (base_dir), every tensor's size is
// computed without overflow and checked against the data actually present
// before anything is allocated, then against `limits`.
//
// Throws damoyolo::Error (kNotFound, kIOError, kParseError, kUnsupported,
// kInvalidArgument for external data outside the folder or not a regular
// file, kOutOfRange past a limit).
graph::Graph load_onnx_file(const std::string& path, const ModelLimits& limits = {});
// base_dir resolves external-data locations (and is the folder they must stay in).
graph::Graph load_onnx_memory(const void* data, size_t size, const std::string& base_dir,
                              const std::string& name_for_errors = "<memory>", const ModelLimits& limits = {});

// A TensorProto as a Tensor (raw_data, typed fields, or external data under base_dir).
// Takes ownership of raw_data when `proto` is mutable and `steal` is true.
Tensor tensor_from_proto(onnx::TensorProto& proto, const std::string& base_dir, bool steal = false,
                         const ModelLimits& limits = {});
Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir, const ModelLimits& limits = {});

}  // namespace damoyolo::onnx_io
