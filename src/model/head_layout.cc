#include "model/head_layout.h"

#include <algorithm>
#include <climits>

#include "common/checked_size.h"

namespace damoyolo::model {

namespace {

[[noreturn]] void invalid(const std::string& msg) { throw Error(ErrorCode::kInvalidArgument, msg); }

std::string hxw(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

std::string output_name(std::span<const TensorInfo> outputs, size_t i) {
  std::string s = "output " + std::to_string(i);
  if (!outputs[i].name.empty()) s += " ('" + outputs[i].name + "')";
  return s;
}

// " [1,80,52,52], [1,80,26,26], ..." (empty for none).
std::string shape_list(std::span<const TensorInfo> infos) {
  std::string s;
  for (size_t i = 0; i < infos.size(); ++i) {
    s += i ? ", " : " ";
    s += shape_to_string(infos[i].dims);
  }
  return s;
}

// Float32 and every dim known and positive: the shapes below become sizes and divisors.
void check_output(std::span<const TensorInfo> outputs, size_t i) {
  const TensorInfo& t = outputs[i];
  if (t.dtype != DType::kFloat32)
    invalid(output_name(outputs, i) + " must be float32, got " + dtype_name(t.dtype) + " " + shape_to_string(t.dims));
  for (int64_t d : t.dims)
    if (d <= 0)
      invalid(output_name(outputs, i) + " has shape " + shape_to_string(t.dims) +
              ": every dimension must be known and positive");
}

HeadLayout decoded_layout(std::span<const TensorInfo> outputs) {
  check_output(outputs, 0);
  check_output(outputs, 1);
  const Shape& s = outputs[0].dims;
  const Shape& b = outputs[1].dims;
  if (b[2] != 4)
    invalid(output_name(outputs, 1) + " must be the boxes [N,A,4] of the default export, got " + shape_to_string(b));
  if (b[0] != s[0] || b[1] != s[1])
    invalid(output_name(outputs, 0) + " " + shape_to_string(s) + " (scores [N,A,C]) and " + output_name(outputs, 1) +
            " " + shape_to_string(b) + " (boxes [N,A,4]) disagree on N or A");
  if (s[2] > INT32_MAX) invalid(output_name(outputs, 0) + ": too many classes (" + std::to_string(s[2]) + ")");
  HeadLayout l;
  l.form = ExportForm::kDecoded;
  l.batch = s[0];
  l.num_classes = static_cast<int>(s[2]);
  l.num_anchors = s[1];
  l.scores_output = 0;
  l.boxes_output = 1;
  return l;
}

HeadLayout raw_layout(std::span<const TensorInfo> outputs, int64_t input_h, int64_t input_w) {
  const size_t L = outputs.size() / 2;
  if (L > static_cast<size_t>(kMaxLevels))
    invalid(std::to_string(outputs.size()) + " raw head maps: more than " + std::to_string(kMaxLevels) + " levels");
  for (size_t i = 0; i < outputs.size(); ++i) check_output(outputs, i);
  const Shape& c0 = outputs[0].dims;
  const Shape& r0 = outputs[L].dims;
  std::vector<MapSize> maps(L);
  for (size_t l = 0; l < L; ++l) {
    const Shape& c = outputs[l].dims;
    const Shape& r = outputs[L + l].dims;
    for (size_t i : {l, L + l})
      if (outputs[i].dims[0] != c0[0])
        invalid(output_name(outputs, i) + " " + shape_to_string(outputs[i].dims) + " has batch " +
                std::to_string(outputs[i].dims[0]) + " but " + output_name(outputs, 0) + " has batch " +
                std::to_string(c0[0]));
    if (c[1] != c0[1])
      invalid(output_name(outputs, l) + " " + shape_to_string(c) + " has " + std::to_string(c[1]) + " class channels but " +
              output_name(outputs, 0) + " has " + std::to_string(c0[1]) + ": every level needs the same classes");
    if (r[1] != r0[1])
      invalid(output_name(outputs, L + l) + " " + shape_to_string(r) + " has " + std::to_string(r[1]) +
              " regression channels but " + output_name(outputs, L) + " has " + std::to_string(r0[1]) +
              ": every level needs the same reg_max");
    if (c[2] != r[2] || c[3] != r[3])
      invalid(output_name(outputs, l) + " " + shape_to_string(c) + " and " + output_name(outputs, L + l) + " " +
              shape_to_string(r) + " are one level's class and regression maps: they need the same h x w");
    maps[l] = {c[2], c[3], output_name(outputs, l)};
  }
  if (r0[1] % 4 != 0 || r0[1] < 4)
    invalid(output_name(outputs, L) + " " + shape_to_string(r0) + ": a regression map needs 4·(R+1) channels, got " +
            std::to_string(r0[1]));
  if (c0[1] > INT32_MAX || r0[1] > INT32_MAX)
    invalid(output_name(outputs, 0) + ": too many channels");

  HeadLayout l;
  l.form = ExportForm::kRawMaps;
  l.batch = c0[0];
  l.num_classes = static_cast<int>(c0[1]);
  l.reg_max = static_cast<int>(r0[1] / 4 - 1);
  l.input_known = input_h > 0 && input_w > 0;
  if (!l.input_known) {
    int64_t mh = 0, mw = 0;
    for (const MapSize& m : maps) mh = std::max(mh, m.h), mw = std::max(mw, m.w);
    auto h = checked::mul(mh, kFinestStrideWhenInputUnknown), w = checked::mul(mw, kFinestStrideWhenInputUnknown);
    if (!h || !w) invalid(output_name(outputs, 0) + ": maps too large");
    input_h = *h;
    input_w = *w;
  }
  l.input_h = input_h;
  l.input_w = input_w;
  std::vector<size_t> order;
  l.levels = derive_levels(input_h, input_w, maps, &order);
  for (size_t i = 0; i < L; ++i) {
    l.cls_outputs.push_back(order[i]);
    l.reg_outputs.push_back(L + order[i]);
  }
  l.num_anchors = l.levels.back().anchor_offset + l.levels.back().anchors();
  return l;
}

}  // namespace

const char* export_form_name(ExportForm form) {
  return form == ExportForm::kDecoded ? "decoded (scores, boxes)" : "raw head maps (--benchmark)";
}

int64_t assign_anchor_offsets(std::span<HeadLevel> levels) {
  int64_t a = 0;
  for (HeadLevel& l : levels) {
    l.anchor_offset = a;
    a += l.anchors();
  }
  return a;
}

std::vector<HeadLevel> derive_levels(int64_t input_h, int64_t input_w, std::span<const MapSize> maps,
                                     std::vector<size_t>* order) {
  if (input_h <= 0 || input_w <= 0 || input_h > INT32_MAX || input_w > INT32_MAX)
    invalid("the network input size " + hxw(input_h, input_w) + " must be positive and below 2^31");
  if (maps.empty()) invalid("no head levels");
  if (maps.size() > static_cast<size_t>(kMaxLevels))
    invalid(std::to_string(maps.size()) + " head levels: at most " + std::to_string(kMaxLevels));
  std::vector<std::pair<HeadLevel, size_t>> lv;
  for (size_t i = 0; i < maps.size(); ++i) {
    const MapSize& m = maps[i];
    if (m.h <= 0 || m.w <= 0) invalid(m.name + ": the map size " + hxw(m.h, m.w) + " must be positive");
    if (input_h % m.h != 0 || input_w % m.w != 0)
      invalid(m.name + ": its " + hxw(m.h, m.w) + " map does not divide the " + hxw(input_h, input_w) +
              " input (HxW): a level's stride, input / map size, must be an integer");
    const int64_t sh = input_h / m.h, sw = input_w / m.w;
    if (sh != sw)
      invalid(m.name + ": its " + hxw(m.h, m.w) + " map on the " + hxw(input_h, input_w) + " input (HxW) gives stride " +
              std::to_string(sh) + " in H but " + std::to_string(sw) + " in W: a level's stride must be the same in both");
    lv.push_back({HeadLevel{static_cast<int>(sh), static_cast<int>(m.h), static_cast<int>(m.w), 0}, i});
  }
  std::stable_sort(lv.begin(), lv.end(), [](const auto& a, const auto& b) { return a.first.stride < b.first.stride; });
  for (size_t l = 1; l < lv.size(); ++l)
    if (lv[l].first.stride == lv[l - 1].first.stride)
      invalid(maps[lv[l - 1].second].name + " and " + maps[lv[l].second].name + " both have stride " +
              std::to_string(lv[l].first.stride) + " (" + hxw(lv[l].first.h, lv[l].first.w) + " maps on the " +
              hxw(input_h, input_w) + " input): two levels cannot share a stride");
  std::vector<HeadLevel> levels;
  if (order) order->clear();
  for (const auto& [level, index] : lv) {
    levels.push_back(level);
    if (order) order->push_back(index);
  }
  assign_anchor_offsets(levels);  // Σ h·w < 2·H·W: no overflow for H, W < 2^31
  return levels;
}

void check_levels(std::span<const HeadLevel> levels, std::string_view what) {
  if (levels.empty() || levels.size() > static_cast<size_t>(kMaxLevels))
    invalid(std::string(what) + ": expected 1.." + std::to_string(kMaxLevels) + " head levels, got " +
            std::to_string(levels.size()));
  const int64_t in_h = int64_t{levels[0].stride} * levels[0].h, in_w = int64_t{levels[0].stride} * levels[0].w;
  int64_t total = 0;
  for (size_t l = 0; l < levels.size(); ++l) {
    const HeadLevel& lv = levels[l];
    // Built only on failure: the check runs per image and must not allocate.
    auto at = [&] {
      return std::string(what) + ": level " + std::to_string(l) + " (stride " + std::to_string(lv.stride) + ", " +
             hxw(lv.h, lv.w) + ")";
    };
    if (lv.stride <= 0 || lv.h <= 0 || lv.w <= 0) invalid(at() + " has a non-positive stride or size");
    if (l > 0 && lv.stride <= levels[l - 1].stride)
      invalid(at() + ": strides must be strictly ascending, the previous level has " +
              std::to_string(levels[l - 1].stride));
    if (int64_t{lv.stride} * lv.h != in_h || int64_t{lv.stride} * lv.w != in_w)
      invalid(at() + " covers " + hxw(int64_t{lv.stride} * lv.h, int64_t{lv.stride} * lv.w) +
              " input pixels but level 0 covers " + hxw(in_h, in_w) +
              ": stride x map size must be the input size at every level");
    auto t = checked::add(total, lv.anchors());
    if (!t) invalid(at() + ": too many anchors");
    total = *t;
  }
}

Result<HeadLayout> recognise_head(std::span<const TensorInfo> outputs, int64_t input_h, int64_t input_w) {
  try {
    auto rank_is = [&](size_t r) {
      return std::all_of(outputs.begin(), outputs.end(), [&](const TensorInfo& t) { return t.dims.size() == r; });
    };
    HeadLayout l;
    if (outputs.size() == 2 && rank_is(3)) {
      l = decoded_layout(outputs);
      l.input_known = input_h > 0 && input_w > 0;
      if (l.input_known) l.input_h = input_h, l.input_w = input_w;
    } else if (!outputs.empty() && outputs.size() % 2 == 0 && rank_is(4)) {
      l = raw_layout(outputs, input_h, input_w);
    } else {
      invalid("outputs are neither the default export (scores [N,A,C], boxes [N,A,4]) nor the --benchmark export "
              "(class maps [N,C,h,w] per level, then regression maps [N,4(R+1),h,w] per level); got " +
              std::to_string(outputs.size()) + " output(s)" + shape_list(outputs));
    }
    return l;
  } catch (const Error& e) {
    return e.status();
  }
}

Result<HeadLayout> recognise_head(std::span<const TensorInfo> inputs, std::span<const TensorInfo> outputs) {
  const bool image_input = inputs.size() == 1 && inputs[0].dims.size() == 4 && inputs[0].dims[1] == 3 &&
                           inputs[0].dims[2] > 0 && inputs[0].dims[3] > 0;
  if (!image_input)
    return Status(ErrorCode::kInvalidArgument, "not a DAMO-YOLO detector (expected one input [N,3,H,W], got " +
                                                   std::to_string(inputs.size()) + " input(s)" +
                                                   shape_list(inputs) + ")");
  return recognise_head(outputs, inputs[0].dims[2], inputs[0].dims[3]);
}

}  // namespace damoyolo::model
