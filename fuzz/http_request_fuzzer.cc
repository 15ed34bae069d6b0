// Fuzz target: what the HTTP service does with a request's bytes before any
// image is decoded (src/serving/requests.h) — the HTTP/1.1 framing (the same
// Boost.Beast parser and limits the server uses), the target and its query,
// the media type, multipart/form-data, and the Open Inference Protocol's
// JSON + binary bodies — then the v2 response built from what parsed. The
// image decoders behind it have their own target (decode_image).
//
// Each input is also fed straight to the multipart and v2 parsers (with
// boundary "B", and with its first two bytes as the binary header length),
// so the fuzzer need not find a valid HTTP frame to reach them.
//
//   scripts/fuzz.sh 60 http_request
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "serving/requests.h"

namespace {

namespace http = boost::beast::http;
using namespace damoyolo;
using namespace damoyolo::serving;

void check_parts(std::string_view body, const std::vector<Part>& parts) {
  for (const Part& p : parts) {
    // Every part's data is a view into the body, never past it.
    if (p.data.data() < body.data() || p.data.data() + p.data.size() > body.data() + body.size()) std::abort();
  }
}

void v2(std::string_view body, std::optional<size_t> json_length) {
  auto r = parse_v2_request(body, json_length, /*max_elements=*/1 << 16);
  if (!r.ok()) return;
  (void)parse_v2_parameters(r->parameters);
  for (const V2Input& in : r->inputs) {
    if (in.tensor.defined() && in.tensor.numel() != shape_numel(in.shape)) std::abort();
    // Touch each element's last byte: ASan catches a view past its buffer.
    size_t sum = 0;
    for (std::string_view e : in.elements) sum += e.empty() ? 0 : static_cast<unsigned char>(e[e.size() - 1]);
    if (sum > in.elements.size() * 255) std::abort();
  }
  std::vector<std::vector<Detection>> dets(r->inputs.size() % 3 + 1);
  dets[0].push_back({1, 2, 3, 4, 0.5f, 1});
  auto resp = build_v2_response("m", r->id, dets, r->outputs, r->binary_output_default);
  if (resp.json_length && *resp.json_length > resp.body.size()) std::abort();
}

void request(std::string_view bytes) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  parser.header_limit(8 * 1024);
  boost::beast::error_code ec;
  boost::asio::const_buffer buf(bytes.data(), bytes.size());
  while (buf.size() > 0 && !parser.is_done()) {
    const size_t n = parser.put(buf, ec);
    if (ec == http::error::need_more) {
      ec = {};
      if (n == 0) break;
    } else if (ec) {
      return;
    }
    buf += n;
  }
  if (!parser.is_done()) {
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return;
  }
  const auto& req = parser.get();
  auto target = parse_target(std::string_view(req.target().data(), req.target().size()));
  if (target.ok()) {
    auto o = parse_query_options(target->query);
    if (o.ok()) (void)apply_options(*o, PostprocessOptions{}, 80);
  }
  const std::string ct(req[http::field::content_type]);
  const std::string_view body = req.body();
  if (media_type(ct) == "multipart/form-data") {
    auto parts = parse_multipart(body, media_parameter(ct, "boundary"));
    if (parts.ok()) check_parts(body, *parts);
  }
  std::optional<size_t> json_length;
  if (auto it = req.find("Inference-Header-Content-Length"); it != req.end()) {
    size_t v = 0;
    for (char c : it->value()) {
      if (c < '0' || c > '9' || v > (size_t{1} << 40)) return;
      v = v * 10 + static_cast<size_t>(c - '0');
    }
    json_length = v;
  }
  v2(body, json_length);
  (void)looks_like_image(body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  request(bytes);
  auto parts = parse_multipart(bytes, "B");
  if (parts.ok()) check_parts(bytes, *parts);
  if (size >= 2) v2(bytes.substr(2), static_cast<size_t>(data[0] | (data[1] << 8)) % (size - 1));
  v2(bytes, std::nullopt);
  return 0;
}
