#include "kernels/dnnl/dnnl_common.h"

#include <oneapi/dnnl/dnnl_debug.h>

#include <algorithm>
#include <numeric>

namespace damoyolo::kernels::dnnl_ops {

const dnnl::engine& cpu_engine() {
  static const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::memory::desc plain_desc(const Shape& shape, dnnl::memory::data_type dt) {
  dnnl::memory::dims strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];
  return dnnl::memory::desc(to_dims(shape), dt, strides);
}

dnnl::memory::desc nhwc_desc(const Shape& shape, dnnl::memory::data_type dt) {
  if (shape.size() != 4) return plain_desc(shape, dt);
  return dnnl::memory::desc(to_dims(shape), dt, dnnl::memory::format_tag::nhwc);
}

bool is_plain_strided(const dnnl::memory::desc& md) {
  return md.data.format_kind == dnnl_blocked && md.data.format_desc.blocking.inner_nblks == 0;
}

bool is_row_major_dense(const dnnl::memory::desc& md) {
  if (!is_plain_strided(md) || md.data.offset0 != 0) return false;
  dnnl::memory::dims dims(md.data.dims, md.data.dims + md.data.ndims);
  for (int i = 0; i < md.data.ndims; ++i)
    if (md.data.padded_dims[i] != md.data.dims[i]) return false;
  dnnl_dim_t expect = 1;
  for (int i = md.data.ndims - 1; i >= 0; --i) {
    if (dims[i] != 1 && md.data.format_desc.blocking.strides[i] != expect) return false;
    expect *= dims[i];
  }
  return true;
}

std::string layout_name(const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  std::string out = dnnl_dt2str(d.data_type);
  out += ' ';
  if (d.format_kind != dnnl_blocked) {
    out += dnnl_fmt_kind2str(d.format_kind);
  } else {
    const auto& b = d.format_desc.blocking;
    bool blocked[DNNL_MAX_NDIMS] = {};
    for (int i = 0; i < b.inner_nblks; ++i) blocked[b.inner_idxs[i]] = true;
    // Outer dims from the largest stride to the smallest; ties (size-1 dims)
    // keep their logical order, as oneDNN's format tags do.
    std::vector<int> order(d.ndims);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return b.strides[x] > b.strides[y]; });
    for (int i : order) out += static_cast<char>((blocked[i] ? 'A' : 'a') + i);
    for (int i = 0; i < b.inner_nblks; ++i)
      out += std::to_string(b.inner_blks[i]) + static_cast<char>('a' + b.inner_idxs[i]);
  }
  out += ' ';
  for (int i = 0; i < d.ndims; ++i) out += (i ? "x" : "") + std::to_string(d.dims[i]);
  return out;
}

std::string impl_name(const dnnl::primitive_desc_base& pd) {
  const char* s = pd.impl_info_str();
  return s ? s : "";
}

}  // namespace damoyolo::kernels::dnnl_ops
