// What a model file may ask of the runtime.
//
// A model is untrusted input: a file downloaded from a hub. Every size a file
// states or implies (initializer dims, declared input shapes, the shapes shape
// inference computes, the optimised engine's workspace) is computed with
// overflow-safe arithmetic and checked against these limits *before* anything
// of that size is allocated or handed to a kernel or to oneDNN. Exceeding one
// is a Status with ErrorCode::kOutOfRange naming the tensor or node and the
// limit. docs/security.md describes the whole trust boundary.
#pragma once

#include <cstdint>

namespace damoyolo {

struct ModelLimits {
  // Bytes of any one tensor: an initializer, a constant, a graph input, or any
  // value shape inference sizes (at the session's batch). 4 GiB: the largest
  // activation of DAMO-YOLO-T at 640x640 is 9.8 MB per image, so a model a
  // few times wider (L) still runs batches in the hundreds.
  int64_t max_tensor_bytes = int64_t{4} << 30;
  // All initializers and constant-tensor attributes of the file together
  // (raw_data, typed fields and external data). 8 GiB; DAMO-YOLO-L is 168 MB.
  int64_t max_total_weight_bytes = int64_t{8} << 30;
  // Any one dimension. 2^31 - 1: oneDNN and parts of the kernels index
  // dimensions with 32-bit integers.
  int64_t max_dim = 2147483647;
  // The optimised engine's workspace per execution context (planned
  // intermediates + oneDNN scratchpad), allocated when a context is created.
  // 16 GiB (DAMO-YOLO-T at 640x640 needs 19.7 MB per image).
  int64_t max_workspace_bytes = int64_t{16} << 30;
};

}  // namespace damoyolo
