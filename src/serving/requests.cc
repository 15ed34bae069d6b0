#include "serving/requests.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>

namespace damoyolo::serving {
namespace {

Status parse_error(std::string message) { return Status(ErrorCode::kParseError, std::move(message)); }
Status invalid(std::string message) { return Status(ErrorCode::kInvalidArgument, std::move(message)); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return parse_error("truncated percent-escape in the URL at byte " + std::to_string(i));
      const int hi = hex_value(s[i + 1]);
      const int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return parse_error("bad percent-escape in the URL at byte " + std::to_string(i));
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

template <class T>
bool parse_number(std::string_view s, T* out) {
  s = trim(s);
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && p == end;
}

Result<std::vector<int>> parse_class_list(std::string_view s) {
  std::vector<int> ids;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string_view::npos) comma = s.size();
    int id = 0;
    if (!parse_number(s.substr(start, comma - start), &id))
      return invalid("classes: \"" + std::string(s) + "\" is not a comma-separated list of class ids");
    ids.push_back(id);
    start = comma + 1;
  }
  return ids;
}

}  // namespace

Result<Target> parse_target(std::string_view target) {
  Target t;
  const size_t q = target.find('?');
  auto path = percent_decode(target.substr(0, q));
  if (!path.ok()) return path.status();
  t.path = std::move(path).value();
  if (q == std::string_view::npos) return t;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq));
    if (!key.ok()) return key.status();
    auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    if (!value.ok()) return value.status();
    t.query[std::move(key).value()] = std::move(value).value();
  }
  return t;
}

Result<RequestOptions> parse_query_options(const std::map<std::string, std::string>& query) {
  RequestOptions o;
  for (const auto& [key, value] : query) {
    if (key == "conf") {
      float v = 0;
      if (!parse_number(value, &v)) return invalid("conf: \"" + value + "\" is not a number");
      o.conf = v;
    } else if (key == "iou") {
      double v = 0;
      if (!parse_number(value, &v)) return invalid("iou: \"" + value + "\" is not a number");
      o.iou = v;
    } else if (key == "max_det") {
      int v = 0;
      if (!parse_number(value, &v)) return invalid("max_det: \"" + value + "\" is not an integer");
      o.max_det = v;
    } else if (key == "classes") {
      auto ids = parse_class_list(value);
      if (!ids.ok()) return ids.status();
      o.classes = std::move(ids).value();
    } else if (key == "timeout_ms") {
      int64_t v = 0;
      if (!parse_number(value, &v) || v < 0) return invalid("timeout_ms: \"" + value + "\" is not a count of ms");
      o.timeout_ms = v;
    } else {
      return invalid("unknown query parameter \"" + key + "\" (known: conf, iou, max_det, classes, timeout_ms)");
    }
  }
  return o;
}

Result<RequestOptions> parse_v2_parameters(const nlohmann::json& p) {
  RequestOptions o;
  if (p.is_null()) return o;
  if (!p.is_object()) return invalid("\"parameters\" must be an object");
  auto number = [&](const char* key, double* out) -> Status {
    auto it = p.find(key);
    if (it == p.end()) return Status(ErrorCode::kNotFound, "");
    if (it->is_number()) {
      *out = it->get<double>();
      return Status::Ok();
    }
    if (it->is_string() && parse_number(it->get_ref<const std::string&>(), out)) return Status::Ok();
    return invalid(std::string("parameters.") + key + " must be a number");
  };
  double v = 0;
  Status st;
  if ((st = number("conf", &v)).ok()) o.conf = static_cast<float>(v);
  else if (st.code() != ErrorCode::kNotFound) return st;
  if ((st = number("iou", &v)).ok()) o.iou = v;
  else if (st.code() != ErrorCode::kNotFound) return st;
  if ((st = number("max_det", &v)).ok()) {
    if (v != std::floor(v) || std::fabs(v) > 1e9) return invalid("parameters.max_det must be an integer");
    o.max_det = static_cast<int>(v);
  } else if (st.code() != ErrorCode::kNotFound) {
    return st;
  }
  if ((st = number("timeout_ms", &v)).ok()) {
    if (!(v >= 0) || v > 1e12) return invalid("parameters.timeout_ms must be a count of ms");
    o.timeout_ms = static_cast<int64_t>(v);
  } else if (st.code() != ErrorCode::kNotFound) {
    return st;
  }
  // Triton's request timeout, in microseconds.
  if ((st = number("timeout", &v)).ok()) {
    if (!(v >= 0) || v > 1e15) return invalid("parameters.timeout must be a count of µs");
    if (!o.timeout_ms) o.timeout_ms = static_cast<int64_t>(std::ceil(v / 1000.0));
  } else if (st.code() != ErrorCode::kNotFound) {
    return st;
  }
  if (auto it = p.find("classes"); it != p.end()) {
    if (it->is_string()) {
      auto ids = parse_class_list(it->get_ref<const std::string&>());
      if (!ids.ok()) return ids.status();
      o.classes = std::move(ids).value();
    } else if (it->is_array()) {
      std::vector<int> ids;
      for (const auto& e : *it) {
        if (!e.is_number_integer()) return invalid("parameters.classes must hold integers");
        const auto id = e.get<int64_t>();
        if (id < INT32_MIN || id > INT32_MAX) return invalid("parameters.classes: id out of range");
        ids.push_back(static_cast<int>(id));
      }
      o.classes = std::move(ids);
    } else {
      return invalid("parameters.classes must be an array of ids or a string \"0,2\"");
    }
  }
  return o;
}

Result<PostprocessOptions> apply_options(const RequestOptions& o, PostprocessOptions base, int num_classes) {
  if (o.conf) {
    if (!(*o.conf >= 0.f && *o.conf <= 1.f)) return invalid("conf must be within [0, 1]");
    base.conf_threshold = *o.conf;
  }
  if (o.iou) {
    if (!(*o.iou >= 0.0 && *o.iou <= 1.0)) return invalid("iou must be within [0, 1]");
    base.iou_threshold = *o.iou;
  }
  if (o.max_det) {
    if (*o.max_det < 1 || *o.max_det > 100000) return invalid("max_det must be within [1, 100000]");
    base.max_det = *o.max_det;
  }
  if (o.classes) {
    for (int id : *o.classes)
      if (id < 0 || id >= num_classes)
        return invalid("class id " + std::to_string(id) + " is outside the model's " + std::to_string(num_classes) +
                       " classes");
    base.class_filter = *o.classes;
  }
  return base;
}

std::string media_type(std::string_view content_type) {
  const size_t semi = content_type.find(';');
  return lower(trim(content_type.substr(0, semi)));
}

std::string media_parameter(std::string_view content_type, std::string_view name) {
  size_t pos = content_type.find(';');
  while (pos != std::string_view::npos) {
    const size_t next = content_type.find(';', pos + 1);
    std::string_view item = trim(content_type.substr(pos + 1, next == std::string_view::npos ? std::string_view::npos
                                                                                          : next - pos - 1));
    const size_t eq = item.find('=');
    if (eq != std::string_view::npos && lower(trim(item.substr(0, eq))) == lower(name)) {
      std::string_view v = trim(item.substr(eq + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return std::string(v);
    }
    pos = next;
  }
  return {};
}

Result<std::vector<Part>> parse_multipart(std::string_view body, std::string_view boundary, size_t max_parts) {
  if (boundary.empty() || boundary.size() > 70)
    return parse_error("multipart body without a valid boundary parameter (1 to 70 characters)");
  const std::string delim = "--" + std::string(boundary);
  // The first delimiter may be preceded by a preamble, ignored.
  size_t pos = body.find(delim);
  if (pos == std::string_view::npos) return parse_error("multipart body: no \"" + delim + "\" delimiter");
  std::vector<Part> parts;
  const std::string next_delim = "\r\n" + delim;
  for (;;) {
    pos += delim.size();
    if (body.substr(pos, 2) == "--") break;  // the closing delimiter
    // Transport padding after the delimiter, then CRLF.
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.substr(pos, 2) != "\r\n")
      return parse_error("multipart part " + std::to_string(parts.size() + 1) + ": no CRLF after the delimiter at byte " +
                         std::to_string(pos));
    pos += 2;
    const size_t headers_end = body.find("\r\n\r\n", pos);
    // A part may have no headers at all: then the blank line comes at once.
    size_t data_start;
    std::string_view headers;
    if (body.substr(pos, 2) == "\r\n") {
      data_start = pos + 2;
    } else {
      if (headers_end == std::string_view::npos)
        return parse_error("multipart part " + std::to_string(parts.size() + 1) + ": headers not terminated");
      headers = body.substr(pos, headers_end - pos);
      data_start = headers_end + 4;
    }
    // A delimiter is the boundary line: "--boundary" followed by "--", white
    // space or CRLF; the same text followed by anything else is data.
    size_t data_end = body.find(next_delim, data_start);
    while (data_end != std::string_view::npos) {
      const size_t after = data_end + next_delim.size();
      if (after >= body.size() || body[after] == '-' || body[after] == '\r' || body[after] == ' ' ||
          body[after] == '\t')
        break;
      data_end = body.find(next_delim, data_end + 1);
    }
    if (data_end == std::string_view::npos)
      return parse_error("multipart part " + std::to_string(parts.size() + 1) +
                         ": no closing delimiter (body truncated?)");
    Part part;
    part.data = body.substr(data_start, data_end - data_start);
    while (!headers.empty()) {
      const size_t eol = headers.find("\r\n");
      std::string_view line = headers.substr(0, eol);
      headers = eol == std::string_view::npos ? std::string_view{} : headers.substr(eol + 2);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string key = lower(trim(line.substr(0, colon)));
      const std::string_view value = trim(line.substr(colon + 1));
      if (key == "content-type") {
        part.content_type = std::string(value);
      } else if (key == "content-disposition") {
        part.name = media_parameter(value, "name");
        part.filename = media_parameter(value, "filename");
      }
    }
    parts.push_back(std::move(part));
    if (parts.size() > max_parts) return invalid("multipart body with more than " + std::to_string(max_parts) + " parts");
    pos = data_end + 2;  // at the delimiter
  }
  if (parts.empty()) return parse_error("multipart body with no parts");
  return parts;
}

bool looks_like_image(std::string_view b) {
  if (b.size() >= 3 && static_cast<unsigned char>(b[0]) == 0xFF && static_cast<unsigned char>(b[1]) == 0xD8 &&
      static_cast<unsigned char>(b[2]) == 0xFF)
    return true;
  return b.size() >= 8 && std::memcmp(b.data(), "\x89PNG\r\n\x1a\n", 8) == 0;
}

std::string base64_decode_or_empty(std::string_view s, bool* ok) {
  static const auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(a[i])] = static_cast<int8_t>(i);
    t['-'] = 62;  // the URL-safe alphabet too
    t['_'] = 63;
    return t;
  }();
  std::string out;
  out.reserve(s.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0;
  *ok = true;
  for (char c : s) {
    if (c == '=') {
      ++padding;
      continue;
    }
    if (c == '\n' || c == '\r') continue;
    const int v = table[static_cast<unsigned char>(c)];
    if (v < 0 || padding > 0) {
      *ok = false;
      return {};
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  if (padding > 2 || bits >= 6) *ok = false;
  return out;
}

namespace {

size_t datatype_size(const std::string& dt) {
  if (dt == "UINT8" || dt == "INT8" || dt == "BOOL") return 1;
  if (dt == "FP16" || dt == "INT16" || dt == "UINT16" || dt == "BF16") return 2;
  if (dt == "FP32" || dt == "INT32" || dt == "UINT32") return 4;
  if (dt == "FP64" || dt == "INT64" || dt == "UINT64") return 8;
  return 0;
}

// Flattens nested JSON arrays of numbers (the v2 JSON "data" may be nested
// or flat) into `out`, converted to T with a range check.
template <class T>
Status flatten_numbers(const nlohmann::json& j, std::vector<T>& out, int64_t limit, const std::string& where) {
  if (j.is_array()) {
    for (const auto& e : j) {
      Status st = flatten_numbers(e, out, limit, where);
      if (!st.ok()) return st;
    }
    return Status::Ok();
  }
  if (!j.is_number()) return invalid(where + ": data must hold numbers");
  if (static_cast<int64_t>(out.size()) >= limit) return invalid(where + ": more data than the shape holds");
  const double v = j.get<double>();
  if constexpr (std::is_same_v<T, uint8_t>) {
    if (!(v >= 0 && v <= 255) || v != std::floor(v)) return invalid(where + ": UINT8 data must be integers 0..255");
  }
  out.push_back(static_cast<T>(v));
  return Status::Ok();
}

}  // namespace

Result<V2Request> parse_v2_request(std::string_view body, std::optional<size_t> json_length, int64_t max_elements) {
  std::string_view json_text = body;
  std::string_view binary;
  if (json_length) {
    if (*json_length > body.size())
      return parse_error("Inference-Header-Content-Length " + std::to_string(*json_length) +
                         " is larger than the body (" + std::to_string(body.size()) + " bytes)");
    json_text = body.substr(0, *json_length);
    binary = body.substr(*json_length);
  }
  nlohmann::json j = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (j.is_discarded()) return parse_error("the request is not valid JSON");
  if (!j.is_object()) return parse_error("the request must be a JSON object");
  V2Request r;
  if (auto it = j.find("id"); it != j.end()) {
    if (!it->is_string()) return invalid("\"id\" must be a string");
    r.id = it->get<std::string>();
  }
  if (auto it = j.find("parameters"); it != j.end()) {
    if (!it->is_object()) return invalid("\"parameters\" must be an object");
    r.parameters = *it;
    if (auto b = it->find("binary_data_output"); b != it->end()) {
      if (!b->is_boolean()) return invalid("parameters.binary_data_output must be a boolean");
      r.binary_output_default = b->get<bool>();
    }
  }
  auto inputs = j.find("inputs");
  if (inputs == j.end() || !inputs->is_array() || inputs->empty())
    return invalid("\"inputs\" must be a non-empty array");
  size_t binary_offset = 0;
  // Elements decoded from base64 are kept in r.storage; reserve so that the
  // views into it stay valid as it grows.
  size_t string_elements = 0;
  for (const auto& in : *inputs)
    if (in.is_object())
      if (auto d = in.find("data"); d != in.end() && d->is_array()) string_elements += d->size();
  r.storage.reserve(string_elements);
  for (size_t idx = 0; idx < inputs->size(); ++idx) {
    const auto& in = (*inputs)[idx];
    const std::string where = "inputs[" + std::to_string(idx) + "]";
    if (!in.is_object()) return invalid(where + " must be an object");
    V2Input v;
    auto name = in.find("name");
    auto datatype = in.find("datatype");
    auto shape = in.find("shape");
    if (name == in.end() || !name->is_string()) return invalid(where + ".name must be a string");
    if (datatype == in.end() || !datatype->is_string()) return invalid(where + ".datatype must be a string");
    if (shape == in.end() || !shape->is_array()) return invalid(where + ".shape must be an array");
    v.name = name->get<std::string>();
    v.datatype = datatype->get<std::string>();
    int64_t numel = 1;
    for (const auto& d : *shape) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > max_elements)
        return invalid(where + ".shape must hold non-negative integers");
      v.shape.push_back(d.get<int64_t>());
      numel *= v.shape.back();
      if (numel > max_elements) return Status(ErrorCode::kOutOfRange, where + ": too many elements");
    }
    std::optional<size_t> binary_size;
    if (auto p = in.find("parameters"); p != in.end()) {
      if (!p->is_object()) return invalid(where + ".parameters must be an object");
      if (auto b = p->find("binary_data_size"); b != p->end()) {
        if (!b->is_number_unsigned()) return invalid(where + ".parameters.binary_data_size must be a count of bytes");
        binary_size = b->get<uint64_t>();
      }
    }
    auto data = in.find("data");
    if (binary_size) {
      if (!json_length) return invalid(where + " has binary_data_size but the request has no Inference-Header-Content-Length");
      if (*binary_size > binary.size() - binary_offset)
        return parse_error(where + ": binary_data_size " + std::to_string(*binary_size) + " runs past the body's end");
      std::string_view bytes = binary.substr(binary_offset, *binary_size);
      binary_offset += *binary_size;
      if (v.datatype == "BYTES") {
        // Each element: a 4-byte little-endian length, then its bytes.
        size_t p = 0;
        while (p < bytes.size()) {
          if (bytes.size() - p < 4) return parse_error(where + ": BYTES element length truncated at byte " + std::to_string(p));
          const auto* u = reinterpret_cast<const unsigned char*>(bytes.data() + p);
          const uint32_t len = u[0] | (u[1] << 8) | (u[2] << 16) | (static_cast<uint32_t>(u[3]) << 24);
          p += 4;
          if (len > bytes.size() - p)
            return parse_error(where + ": BYTES element " + std::to_string(v.elements.size()) + " runs past its data");
          v.elements.push_back(bytes.substr(p, len));
          p += len;
        }
        if (static_cast<int64_t>(v.elements.size()) != numel)
          return invalid(where + ": " + std::to_string(v.elements.size()) + " BYTES elements for shape with " +
                         std::to_string(numel));
      } else {
        const size_t es = datatype_size(v.datatype);
        if (es == 0) return Status(ErrorCode::kUnsupported, where + ": datatype " + v.datatype + " is not supported");
        if (bytes.size() != static_cast<size_t>(numel) * es)
          return invalid(where + ": binary_data_size " + std::to_string(bytes.size()) + " is not " +
                         std::to_string(numel) + " elements of " + v.datatype);
        if (v.datatype != "FP32" && v.datatype != "UINT8")
          return Status(ErrorCode::kUnsupported, where + ": datatype " + v.datatype + " (FP32, UINT8 or BYTES)");
        v.tensor = Tensor(v.datatype == "FP32" ? DType::kFloat32 : DType::kUInt8, v.shape);
        if (!bytes.empty()) std::memcpy(v.tensor.raw(), bytes.data(), bytes.size());
      }
    } else {
      if (data == in.end()) return invalid(where + " has neither data nor parameters.binary_data_size");
      if (v.datatype == "BYTES") {
        // In JSON, BYTES elements that carry images are base64 strings.
        std::vector<const nlohmann::json*> flat;
        std::vector<const nlohmann::json*> stack{&*data};
        while (!stack.empty()) {
          const nlohmann::json* e = stack.back();
          stack.pop_back();
          if (e->is_array()) {
            for (auto it = e->rbegin(); it != e->rend(); ++it) stack.push_back(&*it);
          } else {
            flat.push_back(e);
          }
        }
        for (size_t k = 0; k < flat.size(); ++k) {
          if (!flat[k]->is_string()) return invalid(where + ".data[" + std::to_string(k) + "] must be a base64 string");
          bool ok = false;
          std::string decoded = base64_decode_or_empty(flat[k]->get_ref<const std::string&>(), &ok);
          if (!ok) return parse_error(where + ".data[" + std::to_string(k) + "] is not valid base64");
          if (r.storage.size() == r.storage.capacity()) return Status(ErrorCode::kInternal, "base64 storage");
          r.storage.push_back(std::move(decoded));
          v.elements.push_back(r.storage.back());
        }
        if (static_cast<int64_t>(v.elements.size()) != numel)
          return invalid(where + ": " + std::to_string(v.elements.size()) + " BYTES elements for shape with " +
                         std::to_string(numel));
      } else if (v.datatype == "FP32") {
        std::vector<float> values;
        Status st = flatten_numbers(*data, values, numel, where);
        if (!st.ok()) return st;
        if (static_cast<int64_t>(values.size()) != numel) return invalid(where + ": data does not fill the shape");
        v.tensor = Tensor(DType::kFloat32, v.shape);
        if (!values.empty()) std::memcpy(v.tensor.raw(), values.data(), values.size() * sizeof(float));
      } else if (v.datatype == "UINT8") {
        std::vector<uint8_t> values;
        Status st = flatten_numbers(*data, values, numel, where);
        if (!st.ok()) return st;
        if (static_cast<int64_t>(values.size()) != numel) return invalid(where + ": data does not fill the shape");
        v.tensor = Tensor(DType::kUInt8, v.shape);
        if (!values.empty()) std::memcpy(v.tensor.raw(), values.data(), values.size());
      } else {
        return Status(ErrorCode::kUnsupported, where + ": datatype " + v.datatype + " (FP32, UINT8 or BYTES)");
      }
    }
    r.inputs.push_back(std::move(v));
  }
  if (json_length && binary_offset != binary.size())
    return parse_error(std::to_string(binary.size() - binary_offset) + " bytes of binary data that no input claims");
  if (auto outputs = j.find("outputs"); outputs != j.end()) {
    if (!outputs->is_array()) return invalid("\"outputs\" must be an array");
    for (size_t idx = 0; idx < outputs->size(); ++idx) {
      const auto& o = (*outputs)[idx];
      const std::string where = "outputs[" + std::to_string(idx) + "]";
      if (!o.is_object()) return invalid(where + " must be an object");
      auto name = o.find("name");
      if (name == o.end() || !name->is_string()) return invalid(where + ".name must be a string");
      V2Output out{name->get<std::string>(), r.binary_output_default};
      const auto& known = v2_output_names();
      if (std::find(known.begin(), known.end(), out.name) == known.end())
        return Status(ErrorCode::kNotFound, where + ": no output \"" + out.name + "\" (boxes, scores, classes, counts)");
      if (auto p = o.find("parameters"); p != o.end() && p->is_object())
        if (auto b = p->find("binary_data"); b != p->end()) {
          if (!b->is_boolean()) return invalid(where + ".parameters.binary_data must be a boolean");
          out.binary = b->get<bool>();
        }
      r.outputs.push_back(std::move(out));
    }
  }
  return r;
}

const std::vector<std::string>& v2_output_names() {
  static const std::vector<std::string> names{"boxes", "scores", "classes", "counts"};
  return names;
}

V2Response build_v2_response(const std::string& model_name, const std::string& id,
                             const std::vector<std::vector<Detection>>& detections,
                             const std::vector<V2Output>& requested, bool binary_default) {
  std::vector<V2Output> outputs = requested;
  if (outputs.empty())
    for (const auto& n : v2_output_names()) outputs.push_back({n, binary_default});
  const int64_t n = static_cast<int64_t>(detections.size());
  int64_t d = 0;
  for (const auto& v : detections) d = std::max<int64_t>(d, static_cast<int64_t>(v.size()));
  nlohmann::json j;
  j["model_name"] = model_name;
  j["model_version"] = "1";
  if (!id.empty()) j["id"] = id;
  j["outputs"] = nlohmann::json::array();
  std::string binary;
  for (const V2Output& o : outputs) {
    std::vector<float> f;
    std::vector<int32_t> i;
    nlohmann::json t;
    t["name"] = o.name;
    if (o.name == "boxes") {
      t["datatype"] = "FP32";
      t["shape"] = {n, d, 4};
      f.assign(static_cast<size_t>(n * d * 4), 0.f);
      for (int64_t b = 0; b < n; ++b)
        for (size_t k = 0; k < detections[b].size(); ++k) {
          const Detection& det = detections[b][k];
          float* p = &f[static_cast<size_t>((b * d + static_cast<int64_t>(k)) * 4)];
          p[0] = det.x1, p[1] = det.y1, p[2] = det.x2, p[3] = det.y2;
        }
    } else if (o.name == "scores") {
      t["datatype"] = "FP32";
      t["shape"] = {n, d};
      f.assign(static_cast<size_t>(n * d), 0.f);
      for (int64_t b = 0; b < n; ++b)
        for (size_t k = 0; k < detections[b].size(); ++k) f[static_cast<size_t>(b * d) + k] = detections[b][k].score;
    } else if (o.name == "classes") {
      t["datatype"] = "INT32";
      t["shape"] = {n, d};
      i.assign(static_cast<size_t>(n * d), 0);
      for (int64_t b = 0; b < n; ++b)
        for (size_t k = 0; k < detections[b].size(); ++k) i[static_cast<size_t>(b * d) + k] = detections[b][k].class_id;
    } else {  // counts
      t["datatype"] = "INT32";
      t["shape"] = {n};
      for (const auto& v : detections) i.push_back(static_cast<int32_t>(v.size()));
    }
    const bool is_float = !f.empty() || t["datatype"] == "FP32";
    if (o.binary) {
      const char* bytes = is_float ? reinterpret_cast<const char*>(f.data()) : reinterpret_cast<const char*>(i.data());
      const size_t size = is_float ? f.size() * sizeof(float) : i.size() * sizeof(int32_t);
      t["parameters"] = {{"binary_data_size", size}};
      binary.append(bytes, size);
    } else if (is_float) {
      t["data"] = f;
    } else {
      t["data"] = i;
    }
    j["outputs"].push_back(std::move(t));
  }
  V2Response r;
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (!binary.empty() || std::any_of(outputs.begin(), outputs.end(), [](const V2Output& o) { return o.binary; })) {
    r.json_length = r.body.size();
    r.body += binary;
  }
  return r;
}

}  // namespace damoyolo::serving
