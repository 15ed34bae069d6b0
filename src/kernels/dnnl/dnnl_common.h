// Small oneDNN (v2.6 API) helpers shared by the optimised engine's steps.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <string>

#include "damoyolo/tensor.h"

namespace damoyolo::kernels::dnnl_ops {

// One CPU engine for the process: oneDNN engines are thread-safe and cheap to
// share, and primitives created on it may run from any thread.
const dnnl::engine& cpu_engine();

inline dnnl::memory::dims to_dims(const Shape& s) { return dnnl::memory::dims(s.begin(), s.end()); }

// Row-major (NCHW for 4-D) dense descriptor.
dnnl::memory::desc plain_desc(const Shape& shape, dnnl::memory::data_type dt);
// Channels-last dense descriptor for 4-D shapes (plain for other ranks).
dnnl::memory::desc nhwc_desc(const Shape& shape, dnnl::memory::data_type dt);

// True when the descriptor has no inner blocks (plain strides), so element
// (i0,i1,..) lives at sum(i_k * stride_k).
bool is_plain_strided(const dnnl::memory::desc& md);
// True when md is the row-major dense layout of its dims.
bool is_row_major_dense(const dnnl::memory::desc& md);

// "f32 acdb 1x32x160x160": data type, oneDNN-style layout (dims lettered
// a, b, c, ... from the outermost stride in; a blocked dim in capitals with
// its inner block after, e.g. "aBcd16b"), dims. For the compiled plan.
std::string layout_name(const dnnl::memory::desc& md);

// "brgconv:avx512_core" etc.; used to reject reference fallbacks inside oneDNN.
std::string impl_name(const dnnl::primitive_desc_base& pd);
inline bool is_reference_impl(const dnnl::primitive_desc_base& pd) {
  return impl_name(pd).rfind("ref", 0) == 0;
}

}  // namespace damoyolo::kernels::dnnl_ops
