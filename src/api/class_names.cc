#include <cctype>
#include <cstdint>
#include <filesystem>
#include <map>

#include "damoyolo/detector.h"
#include "io/read_file.h"

namespace damoyolo {

const std::vector<std::string>& coco80_class_names() {
  static const std::vector<std::string> kNames = {
      "person",        "bicycle",      "car",           "motorcycle",    "airplane",     "bus",
      "train",         "truck",        "boat",          "traffic light", "fire hydrant", "stop sign",
      "parking meter", "bench",        "bird",          "cat",           "dog",          "horse",
      "sheep",         "cow",          "elephant",      "bear",          "zebra",        "giraffe",
      "backpack",      "umbrella",     "handbag",       "tie",           "suitcase",     "frisbee",
      "skis",          "snowboard",    "sports ball",   "kite",          "baseball bat", "baseball glove",
      "skateboard",    "surfboard",    "tennis racket", "bottle",        "wine glass",   "cup",
      "fork",          "knife",        "spoon",         "bowl",          "banana",       "apple",
      "sandwich",      "orange",       "broccoli",      "carrot",        "hot dog",      "pizza",
      "donut",         "cake",         "chair",         "couch",         "potted plant", "bed",
      "dining table",  "toilet",       "tv",            "laptop",        "mouse",        "remote",
      "keyboard",      "cell phone",   "microwave",     "oven",          "toaster",      "sink",
      "refrigerator",  "book",         "clock",         "vase",          "scissors",     "teddy bear",
      "hair drier",    "toothbrush"};
  return kNames;
}

Result<std::vector<std::string>> read_labels_file(const std::string& path, uint64_t max_bytes) {
  auto bytes = io::read_file_bounded(path, max_bytes, "labels file");
  if (!bytes.ok()) return bytes.status();
  std::vector<std::string> names;
  const std::string text(bytes->begin(), bytes->end());
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    size_t b = line.find_first_not_of(" \t\r");
    size_t e = line.find_last_not_of(" \t\r");
    if (b == std::string::npos) continue;
    names.push_back(line.substr(b, e - b + 1));
  }
  if (names.empty()) return Status(ErrorCode::kParseError, "labels file '" + path + "' has no class names");
  return names;
}

const char* label_source_name(LabelSource source) {
  switch (source) {
    case LabelSource::kLabelsFile: return "labels file";
    case LabelSource::kOptions: return "options";
    case LabelSource::kModelMetadata: return "model metadata";
    case LabelSource::kSidecarFile: return "file beside the model";
    case LabelSource::kCoco80: return "COCO-80";
    case LabelSource::kGeneric: return "generic";
  }
  return "?";
}

namespace {

// A small reader for the two literal syntaxes exporters write into "names":
// JSON and Python's repr of a list or dict of str. Only what those produce is
// accepted (strings, non-negative integer keys, commas, brackets, white space).
class NamesLiteral {
 public:
  explicit NamesLiteral(const std::string& s) : s_(s) {}

  Result<std::vector<std::string>> parse() {
    skip_ws();
    std::vector<std::string> names;
    if (peek() == '[') {
      ++i_;
      if (!list_items(']', [&](int64_t, std::string v) { names.push_back(std::move(v)); return true; }, false))
        return error();
    } else if (peek() == '{') {
      ++i_;
      std::map<int64_t, std::string> by_id;
      if (!list_items('}', [&](int64_t k, std::string v) { return by_id.emplace(k, std::move(v)).second || fail("class " + std::to_string(k) + " is named twice"); }, true))
        return error();
      int64_t expect = 0;
      for (auto& [k, v] : by_id) {
        if (k != expect) {
          why_ = "class " + std::to_string(expect) + " has no name";
          return error();
        }
        names.push_back(std::move(v));
        ++expect;
      }
    } else {
      why_ = "expected a list [...] or a mapping {...}";
      return error();
    }
    skip_ws();
    if (i_ != s_.size()) {
      why_ = "unexpected text after the closing bracket";
      return error();
    }
    if (names.empty()) {
      why_ = "no class names";
      return error();
    }
    for (size_t k = 0; k < names.size(); ++k)
      if (names[k].empty()) {
        why_ = "class " + std::to_string(k) + " has an empty name";
        return error();
      }
    return names;
  }

 private:
  const std::string& s_;
  size_t i_ = 0;
  std::string why_;

  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool fail(const std::string& why) {
    if (why_.empty()) why_ = why;
    return false;
  }
  Status error() const {
    return Status(ErrorCode::kParseError,
                  "model metadata 'names' (at character " + std::to_string(i_) + "): " + why_);
  }

  // `n` hex digits after the escape letter at i_ (consumed); false if bad.
  bool hex(int n, uint32_t& cp) {
    if (i_ + static_cast<size_t>(n) >= s_.size()) return fail("short escape");
    cp = 0;
    for (int k = 1; k <= n; ++k) {
      const unsigned char h = static_cast<unsigned char>(s_[i_ + static_cast<size_t>(k)]);
      if (!std::isxdigit(h)) return fail("bad hex digit in an escape");
      cp = cp * 16 + static_cast<uint32_t>(std::isdigit(h) ? h - '0' : std::tolower(h) - 'a' + 10);
    }
    i_ += static_cast<size_t>(n);
    return true;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // 'text' or "text", with the escapes JSON and Python's repr write (JSON's
  // \uXXXX with surrogate pairs for names beyond the basic plane, as Python's
  // json.dumps writes them; Python's \xHH, \uXXXX, \UXXXXXXXX). Any other
  // escape is an error rather than a guess.
  bool string(std::string& out) {
    const char q = peek();
    if (q != '\'' && q != '"') return fail("expected a quoted class name");
    for (++i_; i_ < s_.size(); ++i_) {
      char c = s_[i_];
      if (c == q) {
        ++i_;
        return true;
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (++i_ >= s_.size()) break;
      uint32_t cp = 0;
      switch (c = s_[i_]) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case '\\': case '\'': case '"': case '/': out += c; break;
        case 'x':
          if (!hex(2, cp)) return false;
          append_utf8(out, cp);
          break;
        case 'U':
          if (!hex(8, cp)) return false;
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return fail("escape outside Unicode");
          append_utf8(out, cp);
          break;
        case 'u': {
          if (!hex(4, cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate: its low half must follow
            uint32_t lo = 0;
            if (i_ + 2 >= s_.size() || s_[i_ + 1] != '\\' || s_[i_ + 2] != 'u') return fail("lone surrogate");
            i_ += 2;
            if (!hex(4, lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("lone surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail("lone surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default: return fail(std::string("unknown escape \\") + c);
      }
    }
    return fail("unterminated string");
  }

  // A class index: 3, or "3" / '3' (JSON object keys are strings).
  bool key(int64_t& k) {
    std::string digits;
    if (peek() == '\'' || peek() == '"') {
      if (!string(digits)) return false;
    } else {
      while (std::isdigit(static_cast<unsigned char>(peek()))) digits += s_[i_++];
    }
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos)
      return fail("expected a class index as key");
    k = std::stoll(digits);
    return true;
  }

  template <typename Add>
  bool list_items(char close, Add add, bool keyed) {
    int64_t index = 0;
    skip_ws();
    if (peek() == close) {
      ++i_;
      return true;
    }
    for (;;) {
      skip_ws();
      int64_t k = index++;
      if (keyed) {
        if (!key(k)) return false;
        skip_ws();
        if (peek() != ':') return fail("expected ':' after a key");
        ++i_;
        skip_ws();
      }
      std::string v;
      if (!string(v) || !add(k, std::move(v))) return false;
      skip_ws();
      if (peek() == ',') {
        ++i_;
        skip_ws();
        if (peek() == close) {  // Python allows a trailing comma
          ++i_;
          return true;
        }
        continue;
      }
      if (peek() == close) {
        ++i_;
        return true;
      }
      return fail(std::string("expected ',' or '") + close + "'");
    }
  }
};

// <dir>/<stem>.labels.txt, then <dir>/<stem>.names.
std::string find_sidecar_labels(const std::string& model_path) {
  namespace fs = std::filesystem;
  const fs::path p(model_path);
  for (const char* ext : {".labels.txt", ".names"}) {
    const fs::path cand = p.parent_path() / (p.stem().string() + ext);
    std::error_code ec;
    if (fs::is_regular_file(cand, ec)) return cand.string();
  }
  return {};
}

}  // namespace

Result<std::vector<std::string>> parse_class_names_metadata(const std::string& value) {
  return NamesLiteral(value).parse();
}

namespace {

// Well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF):
// names end up in JSON, which must be UTF-8.
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (b < 0x80) { ++i; continue; }
    if ((b & 0xE0) == 0xC0) n = 1, cp = b & 0x1F;
    else if ((b & 0xF0) == 0xE0) n = 2, cp = b & 0x0F;
    else if ((b & 0xF8) == 0xF0) n = 3, cp = b & 0x07;
    else return false;
    if (i + n >= s.size()) return false;  // the sequence runs past the end
    for (size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

Result<ClassNames> resolve_class_names(const std::string& model_path,
                                       const std::map<std::string, std::string>& metadata, int num_classes,
                                       const std::string& labels_file, const std::vector<std::string>& class_names) {
  ClassNames out;
  if (!labels_file.empty()) {
    auto names = read_labels_file(labels_file);
    if (!names.ok()) return names.status();
    out = {std::move(*names), LabelSource::kLabelsFile, labels_file};
  } else if (!class_names.empty()) {
    out = {class_names, LabelSource::kOptions, ""};
  } else if (auto it = metadata.find("names"); it != metadata.end()) {
    auto names = parse_class_names_metadata(it->second);
    if (!names.ok())
      return Status(ErrorCode::kParseError,
                    model_path + ": " + names.status().message() + " (give a labels file to override)");
    out = {std::move(*names), LabelSource::kModelMetadata, "metadata 'names'"};
  } else if (std::string side = find_sidecar_labels(model_path); !side.empty()) {
    auto names = read_labels_file(side);
    if (!names.ok()) return names.status();
    out = {std::move(*names), LabelSource::kSidecarFile, side};
  } else if (num_classes == 80) {
    out = {coco80_class_names(), LabelSource::kCoco80, ""};
  } else {
    for (int i = 0; i < num_classes; ++i) out.names.push_back("class" + std::to_string(i));
    out.source = LabelSource::kGeneric;
  }
  for (size_t k = 0; k < out.names.size(); ++k)
    if (!valid_utf8(out.names[k]))
      return Status(ErrorCode::kParseError, model_path + ": class " + std::to_string(k) + "'s name (" +
                                                label_source_name(out.source) +
                                                (out.origin.empty() ? "" : " " + out.origin) +
                                                ") is not valid UTF-8; save the names as UTF-8");
  if (static_cast<int>(out.names.size()) != num_classes) {
    std::string what;
    switch (out.source) {
      case LabelSource::kLabelsFile: what = "the labels file '" + out.origin + "'"; break;
      case LabelSource::kSidecarFile: what = "the labels file beside the model '" + out.origin + "'"; break;
      case LabelSource::kModelMetadata: what = "the model's metadata 'names'"; break;
      default: what = "the class name list"; break;
    }
    return Status(ErrorCode::kInvalidArgument, model_path + ": the model predicts " + std::to_string(num_classes) +
                                                   " classes but " + what + " has " +
                                                   std::to_string(out.names.size()) + " names");
  }
  return out;
}

}  // namespace damoyolo
