#include "pipeline/batch_buffers.h"

#include <algorithm>
#include <exception>

namespace damoyolo::pipeline {

void BatchBuffers::allocate(const Session& session, int max_batch, int h, int w) {
  input = Tensor(DType::kFloat32, {max_batch, 3, h, w});
  outputs = session.make_outputs(max_batch);
  bind_views(max_batch, h, w);
}

void BatchBuffers::bind_views(int max_batch, int h, int w) {
  inputs_k.clear();
  outputs_k.clear();
  for (int k = 1; k <= max_batch; ++k) {
    inputs_k.push_back({Tensor::wrap(DType::kFloat32, {k, 3, h, w}, input.raw())});
    std::vector<Tensor> outs;
    for (const Tensor& o : outputs) {
      Shape shape = o.shape();
      shape[0] = k;
      outs.push_back(Tensor::wrap(o.dtype(), shape, const_cast<void*>(o.raw())));
    }
    outputs_k.push_back(std::move(outs));
  }
}

Status BatchBuffers::run_first(const Session& session, int k, int max_batch, int h, int w) {
  used_outputs = nullptr;
  try {
    Status st = session.run_into(inputs_k[k - 1], outputs_k[k - 1]);
    if (st.ok()) {
      used_outputs = &outputs_k[k - 1];
      return st;
    }
    if (k == max_batch || (st.code() != ErrorCode::kUnsupported && st.code() != ErrorCode::kInvalidArgument))
      return st;
    const size_t plane = static_cast<size_t>(3) * h * w;
    std::fill(input.data<float>() + static_cast<size_t>(k) * plane,
              input.data<float>() + static_cast<size_t>(max_batch) * plane, 0.f);
    st = session.run_into(inputs_k[max_batch - 1], outputs);
    if (st.ok()) used_outputs = &outputs;
    return st;
  } catch (const Error& e) {
    return e.status();
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, e.what());
  }
}

}  // namespace damoyolo::pipeline
