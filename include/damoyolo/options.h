// damoyolo::SessionOptions and the enums it names (Engine, Precision): how a
// model is to be compiled and run.
//
// A header of its own, apart from session.h, because these are vocabulary:
// the engines (src/runtime) are compiled from them but sit below the
// Session, so they must not see the Session class (docs/engine.md, Layers).
// session.h includes this file, so users who include session.h get all of it
// exactly as before.
#pragma once

#include "damoyolo/limits.h"
#include "damoyolo/optimizations.h"  // OptimizationOptions: the switches, listed once

namespace damoyolo {

enum class Engine {
  kAuto,       // the optimised engine when it supports the graph, else reference
  kReference,  // plain C++ oracle: obviously correct, slow
  kOptimized,  // oneDNN engine (blocked layouts, fused post-ops, planned arena)
};

enum class Precision { kFP32, kBF16 };

const char* engine_name(Engine e);
const char* precision_name(Precision p);

// The largest SessionOptions::batch accepted. Throughput stops improving long
// before (each image costs the same compute), while memory grows with it: a
// batch of 1024 640x640 images is a 5 GB input tensor alone.
inline constexpr int kMaxSessionBatch = 1024;

struct SessionOptions {
  Engine engine = Engine::kAuto;
  Precision precision = Precision::kFP32;
  // Worker threads: 0 for all the cores this process may use. More than that
  // is clamped to it (Session::threads() says what is used): extra threads
  // only contend — oneDNN's OpenMP threads spin-wait for each other (1000
  // threads on 2 cores ran 270x slower, 5000 never finished, 100000 crashed
  // in the OpenMP runtime). Negative is kInvalidArgument.
  int threads = 0;
  // Batch to run; 0 keeps the model's. A batch-1 export can be run at batch N
  // by the optimised engine when the head is fused (the conv body is batch-agnostic).
  // Negative is kInvalidArgument, more than kMaxSessionBatch kOutOfRange.
  int batch = 0;
  // Execution contexts (one planned arena each, e.g. 19 MB for Ns-416, 100 MB
  // for T-640) that may exist at once, shared by every copy of the session.
  // A run() that finds all of them busy waits for one to be returned, so
  // memory stays bounded however many threads call. 0: twice the cores this
  // process may use (at least 2); negative is kInvalidArgument.
  int max_contexts = 0;
  // Optimisation switches, all on by default (damoyolo/optimizations.h lists them).
  OptimizationOptions opt;
  // What the model file may ask for (sizes of tensors, weights, workspace):
  // models are untrusted input, see damoyolo/limits.h and docs/security.md.
  ModelLimits limits;
};

}  // namespace damoyolo
