// Parsing what clients send and building what the service answers: query
// strings, media types, multipart/form-data bodies, and the Open Inference
// Protocol's (KServe v2) infer requests and responses, JSON and binary.
//
// Everything here is a pure function of bytes, with no I/O, so that the fuzz
// targets (fuzz/serving_*_fuzzer.cc) drive exactly the code the server runs.
// Hostile input gets a Status naming what is wrong and where (byte offset,
// part number, JSON path), never an exception or an out-of-bounds read.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "damoyolo/detection.h"
#include "damoyolo/status.h"
#include "damoyolo/tensor.h"

namespace damoyolo::serving {

// "/v1/detect?conf=0.3&classes=0,2" → path "/v1/detect", {"conf": "0.3", ...}.
// Percent-escapes and '+' are decoded; a malformed escape is kParseError.
struct Target {
  std::string path;
  std::map<std::string, std::string> query;
};
Result<Target> parse_target(std::string_view target);

// The per-request options of /v1/detect (query) and v2 (parameters).
struct RequestOptions {
  std::optional<float> conf;
  std::optional<double> iou;
  std::optional<int> max_det;
  std::optional<std::vector<int>> classes;
  std::optional<int64_t> timeout_ms;
};
// From query parameters; unknown names are kInvalidArgument (a typo such as
// "confidence=0.9" must not silently run with the default).
Result<RequestOptions> parse_query_options(const std::map<std::string, std::string>& query);
// From a v2 "parameters" object: conf, iou, max_det, classes (array or
// "0,2"), timeout_ms, or Triton's "timeout" in microseconds. Other
// parameters (binary_data_output, ...) are left to the caller.
Result<RequestOptions> parse_v2_parameters(const nlohmann::json& parameters);
// The detector's defaults with the request's overrides; ranges checked
// (conf and iou in [0, 1], classes within num_classes).
Result<PostprocessOptions> apply_options(const RequestOptions& o, PostprocessOptions base, int num_classes);

// "Image/JPEG; charset=x" → "image/jpeg".
std::string media_type(std::string_view content_type);
// A parameter of a Content-Type header (boundary=...), unquoted; empty if absent.
std::string media_parameter(std::string_view content_type, std::string_view name);

struct Part {
  std::string name, filename, content_type;
  std::string_view data;  // into the body
};
// RFC 7578 multipart/form-data. The body must hold at least one part and end
// with the closing delimiter; a missing boundary, header block or delimiter is
// kParseError saying which part and at what byte.
Result<std::vector<Part>> parse_multipart(std::string_view body, std::string_view boundary,
                                          size_t max_parts = 256);

// The start of a known image format (JPEG, PNG), for bodies sent as
// application/octet-stream.
bool looks_like_image(std::string_view bytes);

std::string base64_decode_or_empty(std::string_view s, bool* ok);

// --- Open Inference Protocol (KServe v2) ------------------------------------

struct V2Input {
  std::string name;
  std::string datatype;  // "BYTES", "UINT8", "FP32", ...
  Shape shape;
  // BYTES: one element per encoded image (views into the body or `storage`).
  std::vector<std::string_view> elements;
  // UINT8 / FP32: the values (binary data are copied out aligned).
  Tensor tensor;
};
struct V2Output {
  std::string name;
  bool binary = false;
};
struct V2Request {
  std::string id;
  nlohmann::json parameters = nlohmann::json::object();
  std::vector<V2Input> inputs;
  std::vector<V2Output> outputs;  // empty: every output
  bool binary_output_default = false;
  std::vector<std::string> storage;  // decoded base64 elements the views point into
};
// `body` is the whole request body; `json_length` the value of the
// Inference-Header-Content-Length header when present (the JSON header's
// length; the binary data of the inputs follow it, in input order).
Result<V2Request> parse_v2_request(std::string_view body, std::optional<size_t> json_length,
                                   int64_t max_elements = int64_t{1} << 28);

// Detections of a batch as the v2 response's tensors: boxes FP32 [N, D, 4],
// scores FP32 [N, D], classes INT32 [N, D], counts INT32 [N], D the most
// detections of any image (rows past an image's count are zero).
struct V2Response {
  std::string body;
  std::optional<size_t> json_length;  // set when binary data follow the JSON
};
V2Response build_v2_response(const std::string& model_name, const std::string& id,
                             const std::vector<std::vector<Detection>>& detections,
                             const std::vector<V2Output>& requested, bool binary_default);

// The output names build_v2_response knows.
const std::vector<std::string>& v2_output_names();

}  // namespace damoyolo::serving
