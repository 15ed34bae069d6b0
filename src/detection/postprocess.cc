#include <algorithm>
#include <cmath>
#include <string>

#include "damoyolo/detection.h"
#include "detection/nms.h"
#include "detection/nms_simd.h"
#include "kernels/head/head_decode.h"

namespace damoyolo {

namespace {

using detection::Candidate;

[[noreturn]] void invalid(const std::string& msg) {
  throw Error(ErrorCode::kInvalidArgument, "postprocess: " + msg);
}

// Calls fn(index, value) for every x[index] > thr, index in [0, n). Almost
// every score is below the threshold, so the scan is a SIMD compare into bit
// masks (kAboveMask, one chunk at a time) and only set bits cost anything.
template <class Fn>
inline void for_each_above(const float* x, int64_t n, float thr, Fn&& fn) {
  constexpr int64_t kChunk = 4096;
  uint64_t masks[kChunk / 64];
  const detection::AboveMaskFn scan = detection::kAboveMask.current();
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t len = std::min(kChunk, n - c0);
    scan(x + c0, len, thr, masks);
    for (int64_t w = 0; w * 64 < len; ++w) {
      for (uint64_t m = masks[w]; m; m &= m - 1) {
        const int64_t i = c0 + w * 64 + __builtin_ctzll(m);
        fn(i, x[i]);
      }
    }
  }
}

}  // namespace

PostprocessOptions PostprocessOptions::for_family(ModelFamily family) {
  PostprocessOptions o;
  if (family == ModelFamily::kNano) {
    o.conf_threshold = 0.03f;
    o.iou_threshold = 0.65;
  } else {
    o.conf_threshold = 0.05f;
    o.iou_threshold = 0.7;
  }
  return o;
}

BoxScale box_scale(int original_w, int original_h, int input_w, int input_h) {
  // Ratios in double like Python, applied as float32 like the torch tensor op.
  return {static_cast<float>(static_cast<double>(original_w) / input_w),
          static_cast<float>(static_cast<double>(original_h) / input_h)};
}

struct Postprocessor::Impl {
  PostprocessOptions opt;
  detection::FastNms nms;
  kernels::head::PriorCache priors;
  std::vector<char> allowed;          // per class: passes the class filter
  std::vector<Candidate> kept;
  std::vector<float> raw_boxes;       // form (b): [A,4], only candidate anchors written
  std::vector<uint8_t> anchor_needed; // form (b): anchor has ≥ 1 candidate
  std::vector<int32_t> anchor_list;   // form (b): those anchors, ascending
  int64_t last_candidates = 0;
  int64_t input_h = 0, input_w = 0;   // set_input_size; 0: unknown
  // process(): the outputs' layout, recognised again only when their shapes,
  // dtypes or the input size change (so a steady stream never allocates).
  model::HeadLayout layout;
  std::vector<TensorInfo> layout_infos;
  int64_t layout_input_h = 0, layout_input_w = 0;
  bool layout_ok = false;

  const model::HeadLayout& layout_for(const std::vector<Tensor>& outputs) {
    bool same = layout_ok && layout_infos.size() == outputs.size() && layout_input_h == input_h &&
                layout_input_w == input_w;
    for (size_t i = 0; same && i < outputs.size(); ++i)
      same = outputs[i].dtype() == layout_infos[i].dtype && outputs[i].shape() == layout_infos[i].dims;
    if (same) return layout;
    layout_ok = false;
    layout_infos.clear();
    for (const Tensor& t : outputs) layout_infos.push_back({"", t.dtype(), t.shape()});
    auto r = model::recognise_head(layout_infos, input_h, input_w);
    if (!r.ok()) invalid(r.status().message());
    layout = std::move(*r);
    layout_input_h = input_h;
    layout_input_w = input_w;
    layout_ok = true;
    return layout;
  }

  void build_allowed(int num_classes) {
    if (opt.class_filter.empty()) {
      allowed.assign(num_classes, 1);
      return;
    }
    allowed.assign(num_classes, 0);
    for (int c : opt.class_filter)
      if (c < num_classes) allowed[c] = 1;
  }

  void finish(const float* boxes, BoxScale scale, std::vector<Detection>* out) {
    last_candidates = nms.candidate_count();
    detection::NmsParams p;
    p.iou_threshold = opt.iou_threshold;
    p.max_det = opt.max_det;
    if (opt.fast_nms)
      nms.run(boxes, p, &kept);
    else if (opt.parallel_class_nms)
      nms.run_parallel_classes(boxes, p, &kept);
    else
      nms.run_reference(boxes, p, &kept);
    // NMS runs in network-input pixels like the official code; scaling is last.
    out->resize(kept.size());
    for (size_t i = 0; i < kept.size(); ++i) {
      const float* b = boxes + int64_t{kept[i].anchor} * 4;
      (*out)[i] = {b[0] * scale.x, b[1] * scale.y, b[2] * scale.x, b[3] * scale.y, kept[i].score,
                   kept[i].class_id};
    }
  }

  void dense(const float* scores, const float* boxes, int64_t A, int C, BoxScale scale,
             std::vector<Detection>* out) {
    if (!scores || !boxes) invalid("null scores or boxes");
    if (A <= 0 || C <= 0) invalid("need a positive anchor and class count");
    if (A > INT32_MAX) invalid("too many anchors");
    build_allowed(C);
    nms.begin(C);
    const bool all = opt.class_filter.empty();
    for_each_above(scores, A * C, opt.conf_threshold, [&](int64_t idx, float s) {
      const int64_t a = idx / C;
      const int c = static_cast<int>(idx - a * C);
      if (all || allowed[c]) nms.add(c, s, static_cast<int32_t>(a));
    });
    finish(boxes, scale, out);
  }

  void raw(std::span<const RawHeadLevel> levels, int cls_channels, int reg_max, BoxScale scale,
           std::vector<Detection>* out) {
    if (levels.empty() || levels.size() > model::kMaxLevels)
      invalid("expected 1.." + std::to_string(model::kMaxLevels) + " head levels");
    if (cls_channels <= 0) invalid("cls_channels must be positive");
    const int C = opt.num_classes > 0 ? std::min(opt.num_classes, cls_channels) : cls_channels;
    const int nl = static_cast<int>(levels.size());
    // The caller's strides must describe one head (model/head_layout.h).
    model::HeadLevel geometry[model::kMaxLevels];
    for (int l = 0; l < nl; ++l) geometry[l] = {levels[l].stride, levels[l].h, levels[l].w};
    model::check_levels(std::span<const model::HeadLevel>(geometry, nl), "postprocess");
    kernels::head::HeadLevelMaps maps[model::kMaxLevels];
    for (int l = 0; l < nl; ++l) {
      const RawHeadLevel& r = levels[l];
      const int64_t hw = int64_t{r.h} * r.w;
      maps[l] = {r.stride, r.h, r.w, r.cls, 1, hw, r.reg, 1, hw};
    }
    const kernels::head::HeadSpec spec{C, reg_max, false};
    kernels::head::check_head(spec, maps, nl);
    const kernels::head::Priors& pr = priors.get(maps, nl);
    const int64_t A = pr.num_anchors;
    if (A > INT32_MAX) invalid("too many anchors");

    // 1. Threshold first: class planes are contiguous per class in NCHW, so
    //    the scan streams each plane once and remembers which anchors matter.
    build_allowed(C);
    nms.begin(C);
    anchor_needed.assign(A, 0);
    for (int l = 0; l < nl; ++l) {
      const int64_t hw = int64_t{maps[l].h} * maps[l].w;
      const int64_t off = pr.level_offset[l];
      for (int c = 0; c < C; ++c) {
        if (!allowed[c]) continue;
        for_each_above(maps[l].cls + c * hw, hw, opt.conf_threshold, [&](int64_t j, float s) {
          nms.add(c, s, static_cast<int32_t>(off + j));
          anchor_needed[off + j] = 1;
        });
      }
    }
    // 2. Decode only those anchors (softmax/integral is the expensive part).
    anchor_list.clear();
    for (int64_t a = 0; a < A; ++a)
      if (anchor_needed[a]) anchor_list.push_back(static_cast<int32_t>(a));
    if (static_cast<int64_t>(raw_boxes.size()) < A * 4) raw_boxes.resize(A * 4);
    kernels::head::decode_boxes_selected(spec, maps, nl, pr, anchor_list.data(),
                                     static_cast<int64_t>(anchor_list.size()), raw_boxes.data());
    finish(raw_boxes.data(), scale, out);
  }
};

Postprocessor::Postprocessor(PostprocessOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
}
Postprocessor::~Postprocessor() = default;
Postprocessor::Postprocessor(Postprocessor&&) noexcept = default;
Postprocessor& Postprocessor::operator=(Postprocessor&&) noexcept = default;

const PostprocessOptions& Postprocessor::options() const { return impl_->opt; }

Status Postprocessor::set_options(PostprocessOptions options) {
  if (!std::isfinite(options.conf_threshold) || !std::isfinite(options.iou_threshold))
    return {ErrorCode::kInvalidArgument, "postprocess: thresholds must be finite"};
  for (int c : options.class_filter)
    if (c < 0) return {ErrorCode::kInvalidArgument, "postprocess: negative class id in class_filter"};
  if (options.num_classes < 0)
    return {ErrorCode::kInvalidArgument, "postprocess: num_classes must be ≥ 0"};
  impl_->opt = std::move(options);
  return Status::Ok();
}

int64_t Postprocessor::last_candidate_count() const { return impl_->last_candidates; }

Status Postprocessor::process_dense(const float* scores, const float* boxes, int64_t num_anchors,
                                    int num_classes, BoxScale scale, std::vector<Detection>* out) {
  try {
    if (!out) invalid("null output vector");
    impl_->dense(scores, boxes, num_anchors, num_classes, scale, out);
    return Status::Ok();
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return {ErrorCode::kOutOfRange, "postprocess: out of memory"};
  }
}

Status Postprocessor::process_raw(std::span<const RawHeadLevel> levels, int cls_channels,
                                  int reg_max, BoxScale scale, std::vector<Detection>* out) {
  try {
    if (!out) invalid("null output vector");
    impl_->raw(levels, cls_channels, reg_max, scale, out);
    return Status::Ok();
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return {ErrorCode::kOutOfRange, "postprocess: out of memory"};
  }
}

Status Postprocessor::set_input_size(int width, int height) {
  if (width < 0 || height < 0 || (width == 0) != (height == 0))
    return {ErrorCode::kInvalidArgument, "postprocess: input size " + std::to_string(width) + "x" +
                                             std::to_string(height) + " must be positive (or 0x0: unknown)"};
  impl_->input_w = width;
  impl_->input_h = height;
  return Status::Ok();
}

Status Postprocessor::process(const std::vector<Tensor>& outputs, BoxScale scale, int batch,
                              std::vector<Detection>* out) {
  try {
    if (batch < 0) invalid("negative batch index");
    // Which form, and where each tensor is: the one definition of both.
    const model::HeadLayout& lay = impl_->layout_for(outputs);
    if (batch >= lay.batch) invalid("batch index " + std::to_string(batch) + " out of range");
    if (lay.form == model::ExportForm::kDecoded) {
      const Tensor& s = outputs[lay.scores_output];
      const Tensor& b = outputs[lay.boxes_output];
      const int64_t A = lay.num_anchors;
      const int64_t C = lay.num_classes;
      return process_dense(s.data<float>() + batch * A * C, b.data<float>() + batch * A * 4, A,
                           static_cast<int>(C), scale, out);
    }
    RawHeadLevel levels[model::kMaxLevels];
    const int64_t C = lay.num_classes, reg_ch = 4 * int64_t{lay.reg_max + 1};
    for (size_t l = 0; l < lay.levels.size(); ++l) {
      const model::HeadLevel& lv = lay.levels[l];
      const int64_t hw = lv.anchors();
      levels[l] = {lv.stride, lv.h, lv.w, outputs[lay.cls_outputs[l]].data<float>() + batch * C * hw,
                   outputs[lay.reg_outputs[l]].data<float>() + batch * reg_ch * hw};
    }
    return process_raw(std::span<const RawHeadLevel>(levels, lay.levels.size()), lay.num_classes, lay.reg_max,
                       scale, out);
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return {ErrorCode::kOutOfRange, "postprocess: out of memory"};
  }
}

Result<std::vector<Detection>> Postprocessor::process(const std::vector<Tensor>& outputs,
                                                      BoxScale scale, int batch) {
  std::vector<Detection> dets;
  Status st = process(outputs, scale, batch, &dets);
  if (!st.ok()) return st;
  return dets;
}

}  // namespace damoyolo
