#include "machine_peak.h"

#include <immintrin.h>
#include <omp.h>

#include <chrono>

namespace damoyolo::cli {

namespace {
// 12 independent accumulators hide the 4-cycle FMA latency on two FMA ports.
double fma_block(long iters) {
#if defined(__AVX512F__)
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
#else
  float acc[12][8] = {};
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i)
      for (int l = 0; l < 8; ++l) acc[i][l] = acc[i][l] * 0.999999f + 1e-7f;
  double s = 0;
  for (auto& r : acc) for (float v : r) s += v;
  return s;
#endif
}
constexpr int kLanes =
#if defined(__AVX512F__)
    16;
#else
    8;
#endif
}  // namespace

double measure_fma_peak_gflops(int threads, double seconds) {
  using clock = std::chrono::steady_clock;
  const long iters = 1'000'000;
  double best = 0;
  auto until = clock::now() + std::chrono::duration<double>(seconds);
  volatile double sink = 0;
  while (clock::now() < until) {
    auto t0 = clock::now();
#pragma omp parallel num_threads(threads)
    {
      double r = fma_block(iters);
#pragma omp atomic
      sink = sink + r;
    }
    double dt = std::chrono::duration<double>(clock::now() - t0).count();
    double flops = 2.0 * kLanes * 12.0 * iters * threads;
    best = std::max(best, flops / dt * 1e-9);
  }
  return best;
}

}  // namespace damoyolo::cli
