#include "machine_peak.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "common/cpu_features.h"

#if DAMOYOLO_X86_SIMD
#include <immintrin.h>
#endif

namespace damoyolo::cli {

namespace {
// One FMA loop per SIMD level, picked at run time like the library's kernels
// (common/cpu_features.h), so a portable build measures the same peak as a
// native one. 12 independent accumulators hide the 4-cycle FMA latency on two
// FMA ports. Each returns a value to keep the loop alive; the flops per
// iteration and accumulator are 2 × lanes.
using FmaBlockFn = double (*)(long iters);

double fma_block_scalar(long iters) {
  float acc[12][8] = {};
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i)
      for (int l = 0; l < 8; ++l) acc[i][l] = acc[i][l] * 0.999999f + 1e-7f;
  double s = 0;
  for (auto& r : acc)
    for (float v : r) s += v;
  return s;
}

#if DAMOYOLO_X86_SIMD
DAMOYOLO_TARGET_AVX2 double fma_block_avx2(long iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  double r = 0;
  for (float v : out) r += v;
  return r;
}

DAMOYOLO_TARGET_AVX512 double fma_block_avx512(long iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  double r = 0;
  for (float v : out) r += v;
  return r;
}
#endif

#if DAMOYOLO_X86_SIMD
// The INT8 dot-product loops (u8 × s8 → s32, what oneDNN's INT8
// convolutions run on). AVX512-VNNI: vpdpbusd does 16 lanes × 4 MACs; 12
// independent accumulators as for the FMA loop. AMX: tdpbusd multiplies a
// 16×64 u8 tile by a 16×64 s8 tile (K = 64) into 16×16 s32, 16,384 MACs;
// four accumulator tiles from two A and two B tiles keep the unit busy.
// Ops are counted as 2 per MAC, as GFLOP/s count an FMA.
// One target attribute with every feature: clang keeps only one of several.
__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni"))) double vnni_block(long iters) {
  __m512i acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
  __m512i s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_epi32(s, acc[i]);
  alignas(64) int32_t out[16];
  _mm512_store_si512(out, s);
  double r = 0;
  for (int32_t v : out) r += v;
  return r;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

__attribute__((target("amx-tile,amx-int8"))) double amx_block(long iters) {
  TileConfig cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = 16;
  }
  alignas(64) uint8_t a[16 * 64];
  alignas(64) int8_t b[16 * 64];
  alignas(64) int32_t c[16 * 16];
  for (int i = 0; i < 16 * 64; ++i) {
    a[i] = static_cast<uint8_t>(i & 7);
    b[i] = static_cast<int8_t>((i & 3) - 1);
  }
  _tile_loadconfig(&cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, a, 64);
  _tile_loadd(5, a, 64);
  _tile_loadd(6, b, 64);
  _tile_loadd(7, b, 64);
  for (long it = 0; it < iters; ++it) {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  _tile_stored(0, c, 64);
  _tile_release();
  return static_cast<double>(c[0]);
}
#endif

struct FmaBlock {
  FmaBlockFn fn;
  int lanes;
};

FmaBlock fma_block_for(cpu::IsaLevel level) {
#if DAMOYOLO_X86_SIMD
  if (level == cpu::IsaLevel::kAvx512) return {fma_block_avx512, 16};
  if (level == cpu::IsaLevel::kAvx2) return {fma_block_avx2, 8};
#endif
  (void)level;
  return {fma_block_scalar, 8};
}
}  // namespace

SimdReport simd_report() {
  SimdReport r;
  r.level = cpu::isa_level_name(cpu::isa_level());
  r.cpu = cpu::isa_level_name(cpu::cpu_isa_level());
  if (const char* env = std::getenv("DAMOYOLO_ISA")) r.isa_env = env;
  r.note = cpu::isa_level_note();
  return r;
}

std::string simd_text(const SimdReport& r) {
  if (r.isa_env.empty() && r.level == r.cpu) return r.level;
  std::string s = r.level + " (";
  if (!r.isa_env.empty()) s += "DAMOYOLO_ISA=" + r.isa_env + "; ";
  return s + "this CPU: " + r.cpu + ")";
}

double measure_fma_peak_gflops(int threads, double seconds) {
  using clock = std::chrono::steady_clock;
  const long iters = 1'000'000;
  const FmaBlock block = fma_block_for(cpu::isa_level());
  double best = 0;
  auto until = clock::now() + std::chrono::duration<double>(seconds);
  volatile double sink = 0;  // keeps the loops' results alive
  while (clock::now() < until) {
    auto t0 = clock::now();
    double total = 0;
#pragma omp parallel num_threads(threads)
    {
      double r = block.fn(iters);
#pragma omp atomic
      total += r;
    }
    sink = sink + total;
    double dt = std::chrono::duration<double>(clock::now() - t0).count();
    double flops = 2.0 * block.lanes * 12.0 * iters * threads;
    best = std::max(best, flops / dt * 1e-9);
  }
  return best;
}

Int8Peak measure_int8_peak(int threads, double seconds) {
  Int8Peak peak;
#if DAMOYOLO_X86_SIMD
  using clock = std::chrono::steady_clock;
  const auto& f = cpu::cpu_features();
  double (*block)(long) = nullptr;
  double ops_per_iter = 0;
  long iters = 0;
  if (f.amx_int8 && cpu::request_amx()) {
    block = amx_block;
    ops_per_iter = 4.0 * 16 * 16 * 64 * 2;
    iters = 200'000;
    peak.unit = "amx";
  } else if (f.avx512vnni && cpu::isa_level_supported(cpu::IsaLevel::kAvx512)) {
    block = vnni_block;
    ops_per_iter = 12.0 * 16 * 4 * 2;
    iters = 1'000'000;
    peak.unit = "avx512_vnni";
  }
  if (!block) return peak;
  auto until = clock::now() + std::chrono::duration<double>(seconds);
  volatile double sink = 0;
  while (clock::now() < until) {
    auto t0 = clock::now();
    double total = 0;
#pragma omp parallel num_threads(threads)
    {
      // AMX state is per thread: each OpenMP thread configures its own tiles.
      double r = block(iters);
#pragma omp atomic
      total += r;
    }
    sink = sink + total;
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    peak.gops = std::max(peak.gops, ops_per_iter * iters * threads / dt * 1e-9);
  }
#else
  (void)threads;
  (void)seconds;
#endif
  return peak;
}

}  // namespace damoyolo::cli
