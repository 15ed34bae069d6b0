// Contiguous class index -> COCO category id. DAMO-YOLO's evaluation maps by
// class *name* against the annotation file (damo-yolo-facts.md §6); the
// built-in table is the standard COCO-80 order for models that carry no names.
#include <map>

#include "damoyolo/coco_eval.h"
#include "damoyolo/detector.h"

namespace damoyolo {

namespace {

constexpr std::array<int64_t, 80> kCoco80Ids = {
    1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
    67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90};

// The category names come from the one COCO-80 list the whole library uses
// (coco80_class_names(), src/api/class_names.cc): they are exactly the `name`
// fields of instances_val2017.json, in the contiguous order above.

Result<std::vector<int64_t>> map_by_name(const std::map<std::string, int64_t, std::less<>>& by_name,
                                         std::span<const std::string> class_names, const std::string& where) {
  std::vector<int64_t> ids;
  ids.reserve(class_names.size());
  std::string missing;
  for (size_t i = 0; i < class_names.size(); ++i) {
    auto it = by_name.find(class_names[i]);
    if (it == by_name.end()) {
      missing += std::string(missing.empty() ? "" : ", ") + "'" + class_names[i] + "' (class " + std::to_string(i) + ")";
      continue;
    }
    ids.push_back(it->second);
  }
  if (!missing.empty())
    return Status(ErrorCode::kNotFound, "no category named " + missing + " in " + where);
  return ids;
}

}  // namespace

std::span<const int64_t> coco80_category_ids() { return kCoco80Ids; }

Result<std::vector<int64_t>> category_ids_by_name(const CocoDataset& dataset,
                                                  std::span<const std::string> class_names) {
  std::map<std::string, int64_t, std::less<>> by_name;
  for (const CocoCategory& c : dataset.categories) {
    auto [it, fresh] = by_name.emplace(c.name, c.id);
    // Two categories with one name would make the mapping depend on file
    // order; refuse rather than guess.
    if (!fresh && it->second != c.id)
      return Status(ErrorCode::kInvalidArgument, "the annotation file names two categories '" + c.name + "' (ids " +
                                                     std::to_string(it->second) + " and " + std::to_string(c.id) + ")");
  }
  return map_by_name(by_name, class_names, "the annotation file");
}

Result<std::vector<int64_t>> resolve_category_ids(const CocoDataset* dataset,
                                                  std::span<const std::string> class_names, int num_classes) {
  if (!class_names.empty()) {
    if (num_classes > 0 && static_cast<size_t>(num_classes) != class_names.size())
      return Status(ErrorCode::kInvalidArgument, "the model has " + std::to_string(num_classes) + " classes but " +
                                                     std::to_string(class_names.size()) + " class names");
    if (dataset) return category_ids_by_name(*dataset, class_names);
    std::map<std::string, int64_t, std::less<>> coco80;
    for (size_t i = 0; i < kCoco80Ids.size(); ++i) coco80.emplace(coco80_class_names()[i], kCoco80Ids[i]);
    return map_by_name(coco80, class_names, "the COCO-80 category list");
  }
  if (num_classes != 80)
    return Status(ErrorCode::kInvalidArgument,
                  "the model has " + std::to_string(num_classes) +
                      " classes and no class names: only the standard COCO-80 order can be assumed");
  return std::vector<int64_t>(kCoco80Ids.begin(), kCoco80Ids.end());
}

}  // namespace damoyolo
