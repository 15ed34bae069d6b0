// The NMS stage's SIMD kernels, one per level (common/cpu_features.h): the
// score scan and the IoU test. Each table's entries compute identical results:
// the same IEEE operations in the same order, FMA contraction off
// (nms_simd.cc), and compares and min/max written so NaNs and signed zeros go
// the scalar way. Callers take kernel.current() once per operation.
// (The head decode's kernels are kernels/head/head_simd.h.)
#pragma once

#include <cstdint>

#include "common/cpu_features.h"

namespace damoyolo::detection {

// masks[w] bit b = (x[64w + b] > thr) for 64w + b < n, 0 beyond; n ≥ 0.
// Ordered compare: a NaN score is never above.
using AboveMaskFn = void (*)(const float* x, int64_t n, float thr, uint64_t* masks);
extern const cpu::PerIsa<AboveMaskFn> kAboveMask;

// True when some i < n has IoU(kept box i, box) > thr, computed exactly as
// nms_reference does: xx1 = max(kept, box) (std::max, kept first), ...,
// inter / (kept_area + box_area − inter), for any thr and any boxes (NaN,
// inverted). The five SoA arrays must be readable up to n rounded up to 16;
// what lies past n is ignored.
using IouAboveFn = bool (*)(const float* x1, const float* y1, const float* x2, const float* y2,
                            const float* area, int n, float bx1, float by1, float bx2, float by2,
                            float barea, float thr);
extern const cpu::PerIsa<IouAboveFn> kIouAbove;

}  // namespace damoyolo::detection
