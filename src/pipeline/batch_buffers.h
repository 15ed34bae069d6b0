// A batch in flight between preprocessing and post-processing: the network
// input for max_batch images, the session's outputs, and views of the first
// k items of both, built once so that a short batch wraps nothing per run.
// Shared by the stream pipeline's slots and the HTTP service's batcher.
#pragma once

#include <vector>

#include "damoyolo/session.h"

namespace damoyolo::pipeline {

struct BatchBuffers {
  Tensor input;                 // [max_batch, 3, h, w]
  std::vector<Tensor> outputs;  // the session's outputs for max_batch
  // inputs_k[k-1] / outputs_k[k-1]: the first k items of input / outputs.
  std::vector<std::vector<Tensor>> inputs_k, outputs_k;
  // What the last run_first() wrote: outputs_k[k-1], or outputs when the
  // engine ran the full batch; null before a run or after a failed one.
  const std::vector<Tensor>* used_outputs = nullptr;

  // Input and outputs for max_batch images of h × w, and their views.
  void allocate(const Session& session, int max_batch, int h, int w);
  // (Re)builds inputs_k / outputs_k over input / outputs.
  void bind_views(int max_batch, int h, int w);
  // Runs the first k items of the input. An engine that cannot run a short
  // batch (the reference engine on a batch-N export) runs the full one, the
  // unused positions zeroed. Exceptions become the Status.
  Status run_first(const Session& session, int k, int max_batch, int h, int w);
};

}  // namespace damoyolo::pipeline
