// COCO annotation and results files: reading, validation, writing.
//
// Parsing throws damoyolo::Error with a message naming the file and the exact
// entry at fault ("annotations[12].bbox: expected 4 numbers"); the public
// functions convert that to a Status.
#include <cmath>
#include <fstream>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>

#include "damoyolo/coco_eval.h"
#include "damoyolo/detection.h"
#include "io/read_file.h"

namespace damoyolo {

namespace {

using nlohmann::json;

std::vector<uint8_t> read_json_file(const std::string& path, const char* what, const CocoLoadOptions& options) {
  auto bytes = io::read_file_bounded(path, options.max_file_bytes, what, "CocoLoadOptions::max_file_bytes");
  if (!bytes.ok()) {
    // Missing is an I/O error here, as this API has always said.
    const ErrorCode code = bytes.status().code() == ErrorCode::kNotFound ? ErrorCode::kIOError : bytes.status().code();
    throw Error(code, bytes.status().message());
  }
  return std::move(*bytes);
}

// What nlohmann throws besides parse_error: out_of_range for a number no
// double holds (1e999) or an excessive size, type_error for a string that
// is not UTF-8. All of them mean the text is not what we can read.
[[noreturn]] void throw_json_error(const json::exception& e, const std::string& source, const char* what) {
  if (dynamic_cast<const json::parse_error*>(&e))
    throw Error(ErrorCode::kParseError, std::string(what) + " '" + source + "' is not JSON: " + e.what());
  throw Error(ErrorCode::kParseError, std::string(what) + " '" + source + "' cannot be read as JSON: " + e.what());
}

// Reads one field of an object; `where` is "annotations[3]" for messages.
class Fields {
 public:
  Fields(const json& obj, std::string where, const std::string& source)
      : obj_(obj), where_(std::move(where)), source_(source) {
    if (!obj_.is_object()) fail("is not an object");
  }

  bool has(const char* key) const { return obj_.contains(key) && !obj_.at(key).is_null(); }

  double number(const char* key) const {
    const json& v = get(key);
    if (!v.is_number()) fail(std::string(".") + key + " is not a number");
    return v.get<double>();
  }

  // Ids are non-negative integers; files written by float-happy tools may say
  // 42.0, which is accepted, but 42.5, -1 and 2^64 - 1 are not ids.
  int64_t id(const char* key) const {
    const json& v = get(key);
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return static_cast<int64_t>(v.get<uint64_t>());
    } else if (v.is_number_integer()) {
      if (v.get<int64_t>() >= 0) return v.get<int64_t>();
    } else if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::floor(d) == d && d >= 0 && d < 9e15) return static_cast<int64_t>(d);
    }
    fail(std::string(".") + key + " is not an id (a whole number from 0 to 2^63 - 1): " + v.dump());
  }

  // An image width or height: a whole number from 0 to INT_MAX (640.0 too).
  int size(const char* key) const {
    const json& v = get(key);
    if (v.is_number()) {
      const double d = v.get<double>();
      if (std::floor(d) == d && d >= 0 && d <= std::numeric_limits<int>::max()) return static_cast<int>(d);
    }
    fail(std::string(".") + key + " is not a size in pixels (a whole number from 0 to 2^31 - 1): " + v.dump());
  }

  std::string string(const char* key) const {
    const json& v = get(key);
    if (!v.is_string()) fail(std::string(".") + key + " is not a string");
    return v.get<std::string>();
  }

  bool flag(const char* key) const {
    const json& v = get(key);
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_number()) return v.get<double>() != 0;
    fail(std::string(".") + key + " is not 0/1");
  }

  std::array<double, 4> bbox(const char* key) const {
    const json& v = get(key);
    if (!v.is_array() || v.size() != 4) fail(std::string(".") + key + ": expected 4 numbers [x, y, w, h]");
    std::array<double, 4> b{};
    for (size_t i = 0; i < 4; ++i) {
      if (!v[i].is_number()) fail(std::string(".") + key + ": expected 4 numbers [x, y, w, h]");
      b[i] = v[i].get<double>();
    }
    return b;
  }

 private:
  const json& get(const char* key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) fail(std::string(" has no '") + key + "'");
    return *it;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kParseError, "'" + source_ + "': " + where_ + what);
  }

  const json& obj_;
  std::string where_;
  const std::string& source_;
};

const json& require_list(const json& root, const char* key, const std::string& source) {
  auto it = root.find(key);
  if (it == root.end())
    throw Error(ErrorCode::kParseError,
                "'" + source + "' is not a COCO annotation file: it has no '" + key +
                    "' list (COCO needs 'images', 'annotations' and 'categories')");
  if (!it->is_array())
    throw Error(ErrorCode::kParseError, "'" + source + "': '" + key + "' is not a list");
  return *it;
}

// The fields bbox evaluation reads; everything else (segmentation polygons,
// licenses, captions: most of an instances file) is dropped while parsing,
// so memory follows what is used rather than the file.
bool is_used_field(const std::string& key) {
  static const char* const kUsed[] = {"id", "file_name", "width", "height", "name",
                                      "image_id", "category_id", "bbox", "area", "iscrowd"};
  for (const char* k : kUsed)
    if (key == k) return true;
  return false;
}

template <class Text>
json parse_dataset_json(const Text& text, const std::string& source) {
  bool root_is_object = false;
  json::parser_callback_t keep = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 0) {
      if (event == json::parse_event_t::object_start) root_is_object = true;
      return true;
    }
    // A list at the top (a results file?): its items are not needed to say so.
    if (!root_is_object) return false;
    if (event != json::parse_event_t::key) return true;
    const std::string& key = parsed.get_ref<const std::string&>();
    if (depth == 1) return key == "images" || key == "annotations" || key == "categories";
    if (depth == 3) return is_used_field(key);
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), keep);
  } catch (const json::exception& e) {
    throw_json_error(e, source, "annotation file");
  }
}

CocoDataset parse_dataset(const json& root, const std::string& source) {
  if (!root.is_object())
    throw Error(ErrorCode::kParseError,
                "'" + source + "' is not a COCO annotation file: the top level is not an object" +
                    (root.is_array() ? " (a list: is this a results file?)" : ""));
  // Check all three first so the message lists what is missing in one go.
  std::string missing;
  for (const char* key : {"images", "annotations", "categories"})
    if (!root.contains(key)) missing += std::string(missing.empty() ? "" : ", ") + "'" + key + "'";
  if (!missing.empty())
    throw Error(ErrorCode::kParseError,
                "'" + source + "' is not a COCO annotation file: missing " + missing);

  CocoDataset ds;
  const json& images = require_list(root, "images", source);
  ds.images.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    Fields f(images[i], "images[" + std::to_string(i) + "]", source);
    CocoImage img;
    img.id = f.id("id");
    if (f.has("file_name")) img.file_name = f.string("file_name");
    if (f.has("width")) img.width = f.size("width");
    if (f.has("height")) img.height = f.size("height");
    ds.images.push_back(std::move(img));
  }

  const json& cats = require_list(root, "categories", source);
  ds.categories.reserve(cats.size());
  for (size_t i = 0; i < cats.size(); ++i) {
    Fields f(cats[i], "categories[" + std::to_string(i) + "]", source);
    CocoCategory c;
    c.id = f.id("id");
    if (f.has("name")) c.name = f.string("name");
    ds.categories.push_back(std::move(c));
  }

  const json& anns = require_list(root, "annotations", source);
  ds.annotations.reserve(anns.size());
  for (size_t i = 0; i < anns.size(); ++i) {
    Fields f(anns[i], "annotations[" + std::to_string(i) + "]", source);
    CocoAnnotation a;
    a.id = f.id("id");
    a.image_id = f.id("image_id");
    a.category_id = f.id("category_id");
    a.bbox = f.bbox("bbox");
    a.area = f.has("area") ? f.number("area") : a.bbox[2] * a.bbox[3];
    a.iscrowd = f.has("iscrowd") ? f.flag("iscrowd") : false;
    ds.annotations.push_back(a);
  }
  return ds;
}

template <class Text>
std::vector<CocoDetection> parse_results(const Text& text, const std::string& source) {
  // A full val2017 run holds ~2.5 M entries; as a json tree that is gigabytes.
  // The parser callback converts each entry as soon as it is complete and
  // drops it from the tree, so memory follows the detections, not the text.
  std::vector<CocoDetection> out;
  bool root_is_list = false;
  size_t index = 0;
  json::parser_callback_t keep = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 0 && event == json::parse_event_t::array_start) root_is_list = true;
    if (!root_is_list || depth != 1 || event != json::parse_event_t::object_end) return true;
    // (Appending rather than "[" + ... sidesteps a GCC 12 -Wrestrict false positive.)
    std::string where = "entry ";
    where += std::to_string(index++);
    Fields f(parsed, where, source);
    CocoDetection d;
    d.image_id = f.id("image_id");
    d.category_id = f.id("category_id");
    d.bbox = f.bbox("bbox");
    d.score = f.number("score");
    out.push_back(d);
    return false;
  };
  json root;
  try {
    root = json::parse(text.begin(), text.end(), keep);
  } catch (const json::exception& e) {
    throw_json_error(e, source, "results file");
  }
  if (!root.is_array())
    throw Error(ErrorCode::kParseError,
                "'" + source + "' is not a COCO results file: expected a list of "
                "{image_id, category_id, bbox, score}" +
                    (root.is_object() && root.contains("annotations") ? " (this looks like an annotation file)" : ""));
  // Whatever the callback did not consume is not an object.
  if (!root.empty())
    throw Error(ErrorCode::kParseError, "'" + source + "': the list holds " + std::to_string(root.size()) +
                                            " entries that are not {image_id, category_id, bbox, score} objects");
  return out;
}

// The public boundary: damoyolo::Error as its Status, and whatever else a
// hostile file could make the parser throw as an error naming the file.
template <class F>
auto errors_as_values(const std::string& source, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    return e.status();
  } catch (const json::exception& e) {
    return Status(ErrorCode::kParseError, "'" + source + "': " + e.what());
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kOutOfRange, "'" + source + "': out of memory while reading it");
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, "'" + source + "': " + e.what());
  }
}

}  // namespace

Result<CocoDataset> CocoDataset::load(const std::string& path, const CocoLoadOptions& options) {
  return errors_as_values(path, [&]() -> Result<CocoDataset> {
    return parse_dataset(parse_dataset_json(read_json_file(path, "annotation file", options), path), path);
  });
}

Result<CocoDataset> CocoDataset::parse(std::string_view json_text, const std::string& source) {
  return errors_as_values(source, [&]() -> Result<CocoDataset> {
    return parse_dataset(parse_dataset_json(json_text, source), source);
  });
}

Result<std::vector<CocoDetection>> load_coco_results(const std::string& path, const CocoLoadOptions& options) {
  return errors_as_values(path, [&]() -> Result<std::vector<CocoDetection>> {
    return parse_results(read_json_file(path, "results file", options), path);
  });
}

Result<std::vector<CocoDetection>> parse_coco_results(std::string_view json_text, const std::string& source) {
  return errors_as_values(source,
                          [&]() -> Result<std::vector<CocoDetection>> { return parse_results(json_text, source); });
}

std::string coco_results_json(std::span<const CocoDetection> detections) {
  // Built by hand rather than as a json tree: a full val2017 run has ~500
  // entries per image × 5000 images, and the tree would cost far more memory
  // than the text. Numbers go through nlohmann's serializer, which prints the
  // shortest round-trip form of a double.
  std::string out = "[";
  auto num = [](double v) { return json(v).dump(); };
  for (size_t i = 0; i < detections.size(); ++i) {
    const CocoDetection& d = detections[i];
    out += i ? ",\n" : "\n";
    out += "{\"image_id\": " + std::to_string(d.image_id) + ", \"category_id\": " + std::to_string(d.category_id) +
           ", \"bbox\": [" + num(d.bbox[0]) + ", " + num(d.bbox[1]) + ", " + num(d.bbox[2]) + ", " +
           num(d.bbox[3]) + "], \"score\": " + num(d.score) + "}";
  }
  out += detections.empty() ? "]\n" : "\n]\n";
  return out;
}

Status write_coco_results(const std::string& path, std::span<const CocoDetection> detections) {
  for (const CocoDetection& d : detections) {
    // JSON has no NaN/Inf; writing "null" would make a file pycocotools rejects.
    bool finite = std::isfinite(d.score);
    for (double v : d.bbox) finite = finite && std::isfinite(v);
    if (!finite)
      return {ErrorCode::kInvalidArgument,
              "detection on image " + std::to_string(d.image_id) + " has a non-finite box or score"};
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return {ErrorCode::kIOError, "cannot create results file '" + path + "'"};
  out << coco_results_json(detections);
  out.close();
  if (!out) return {ErrorCode::kIOError, "cannot write results file '" + path + "'"};
  return Status::Ok();
}

Result<CocoDetection> to_coco_detection(const Detection& detection, int64_t image_id,
                                        std::span<const int64_t> category_ids) {
  if (detection.class_id < 0 || static_cast<size_t>(detection.class_id) >= category_ids.size())
    return Status(ErrorCode::kInvalidArgument, "class id " + std::to_string(detection.class_id) +
                                                   " has no category (the mapping has " +
                                                   std::to_string(category_ids.size()) + " classes)");
  CocoDetection d;
  d.image_id = image_id;
  d.category_id = category_ids[static_cast<size_t>(detection.class_id)];
  // The official code converts xyxy -> xywh on float32 tensors, then .tolist()
  // widens to double: subtract in float, then widen, to produce the same numbers.
  const float w = detection.x2 - detection.x1;
  const float h = detection.y2 - detection.y1;
  d.bbox = {static_cast<double>(detection.x1), static_cast<double>(detection.y1), static_cast<double>(w),
            static_cast<double>(h)};
  d.score = static_cast<double>(detection.score);
  return d;
}

}  // namespace damoyolo
