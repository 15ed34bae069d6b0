#include <algorithm>
#include <cmath>
#include <string>

#include "damoyolo/detection.h"
#include "detection/head_decode.h"
#include "detection/nms.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace damoyolo {

namespace {

using detection::Candidate;

[[noreturn]] void invalid(const std::string& msg) {
  throw Error(ErrorCode::kInvalidArgument, "postprocess: " + msg);
}

// Calls fn(index, value) for every x[index] > thr, index in [0, n). Almost
// every score is below the threshold, so the scan is a 16-wide compare and
// only set mask bits cost anything.
template <class Fn>
inline void for_each_above(const float* x, int64_t n, float thr, Fn&& fn) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 t = _mm512_set1_ps(thr);
  for (; i + 16 <= n; i += 16) {
    uint32_t m = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), t, _CMP_GT_OQ);
    while (m) {
      const int b = __builtin_ctz(m);
      fn(i + b, x[i + b]);
      m &= m - 1;
    }
  }
#endif
  for (; i < n; ++i)
    if (x[i] > thr) fn(i, x[i]);
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
  detection::PriorCache priors;
  std::vector<char> allowed;          // per class: passes the class filter
  std::vector<Candidate> kept;
  std::vector<float> raw_boxes;       // form (b): [A,4], only candidate anchors written
  std::vector<uint8_t> anchor_needed; // form (b): anchor has ≥ 1 candidate
  std::vector<int32_t> anchor_list;   // form (b): those anchors, ascending
  int64_t last_candidates = 0;

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
    if (levels.empty() || levels.size() > 8) invalid("expected 1..8 head levels");
    if (cls_channels <= 0) invalid("cls_channels must be positive");
    const int C = opt.num_classes > 0 ? std::min(opt.num_classes, cls_channels) : cls_channels;
    detection::HeadLevelMaps maps[8];
    for (size_t l = 0; l < levels.size(); ++l) {
      const RawHeadLevel& r = levels[l];
      const int64_t hw = int64_t{r.h} * r.w;
      maps[l] = {r.stride, r.h, r.w, r.cls, 1, hw, r.reg, 1, hw};
    }
    const int nl = static_cast<int>(levels.size());
    const detection::HeadSpec spec{C, reg_max, false};
    detection::check_head(spec, maps, nl);
    const detection::Priors& pr = priors.get(maps, nl);
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
    detection::decode_boxes_selected(spec, maps, nl, pr, anchor_list.data(),
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

Status Postprocessor::process(const std::vector<Tensor>& outputs, BoxScale scale, int batch,
                              std::vector<Detection>* out) {
  auto need_f32 = [](const Tensor& t, size_t rank, size_t i) {
    if (t.dtype() != DType::kFloat32 || t.rank() != rank)
      invalid("output " + std::to_string(i) + " must be float32 of rank " + std::to_string(rank) +
              ", got " + dtype_name(t.dtype()) + " " + shape_to_string(t.shape()));
  };
  try {
    if (batch < 0) invalid("negative batch index");
    if (outputs.size() == 2) {
      const Tensor& s = outputs[0];
      const Tensor& b = outputs[1];
      need_f32(s, 3, 0);
      need_f32(b, 3, 1);
      if (b.dim(2) != 4 || b.dim(0) != s.dim(0) || b.dim(1) != s.dim(1))
        invalid("expected scores [N,A,C] and boxes [N,A,4], got " + shape_to_string(s.shape()) +
                " and " + shape_to_string(b.shape()));
      if (batch >= s.dim(0)) invalid("batch index " + std::to_string(batch) + " out of range");
      const int64_t A = s.dim(1);
      const int64_t C = s.dim(2);
      if (C > INT32_MAX) invalid("too many classes");
      return process_dense(s.data<float>() + batch * A * C, b.data<float>() + batch * A * 4, A,
                           static_cast<int>(C), scale, out);
    }
    if (outputs.size() == 6) {
      RawHeadLevel levels[3];
      int64_t C = -1, reg_ch = -1, input_h = -1, input_w = -1;
      for (int l = 0; l < 3; ++l) {
        const Tensor& c = outputs[l];
        const Tensor& r = outputs[3 + l];
        need_f32(c, 4, l);
        need_f32(r, 4, 3 + l);
        const int stride = 8 << l;  // the export lists s8, s16, s32
        if (C < 0) C = c.dim(1), reg_ch = r.dim(1), input_h = c.dim(2) * stride,
                   input_w = c.dim(3) * stride;
        if (c.dim(1) != C || r.dim(1) != reg_ch || c.dim(2) != r.dim(2) || c.dim(3) != r.dim(3) ||
            c.dim(2) * stride != input_h || c.dim(3) * stride != input_w || c.dim(0) != r.dim(0))
          invalid("raw head maps are inconsistent at level " + std::to_string(l) + ": " +
                  shape_to_string(c.shape()) + " and " + shape_to_string(r.shape()));
        if (batch >= c.dim(0)) invalid("batch index " + std::to_string(batch) + " out of range");
        const int64_t hw = c.dim(2) * c.dim(3);
        levels[l] = {stride, static_cast<int>(c.dim(2)), static_cast<int>(c.dim(3)),
                     c.data<float>() + batch * C * hw, r.data<float>() + batch * reg_ch * hw};
      }
      if (reg_ch % 4 != 0 || reg_ch < 4) invalid("regression maps need 4·(R+1) channels");
      return process_raw(levels, static_cast<int>(C), static_cast<int>(reg_ch / 4 - 1), scale, out);
    }
    invalid("expected 2 outputs (default export) or 6 (--benchmark export), got " +
            std::to_string(outputs.size()));
  } catch (const Error& e) {
    return e.status();
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
