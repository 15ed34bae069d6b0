// Measures the machine's FP32 FMA peak in the same process as a benchmark, so
// "fraction of peak" compares numbers taken under the same conditions.
#pragma once

#include <string>

namespace damoyolo::cli {

// The SIMD level damoyolo's kernels run at (common/cpu_features.h), for
// `damoyolo info` and `damoyolo bench`.
struct SimdReport {
  std::string level;     // in use: "scalar", "avx2", "avx512"
  std::string cpu;       // the best this CPU supports
  std::string isa_env;   // DAMOYOLO_ISA's value, "" when unset
  std::string note;      // why DAMOYOLO_ISA was not used as given, "" normally
};
SimdReport simd_report();
// "avx512", or e.g. "avx2 (DAMOYOLO_ISA=avx2; this CPU: avx512)".
std::string simd_text(const SimdReport& r);

// GFLOP/s of an FMA loop at the SIMD level the library's kernels use
// (cpu::isa_level(): AVX-512, AVX2, or a plain float loop) on `threads`
// threads, each running independent accumulator chains for ~`seconds`.
double measure_fma_peak_gflops(int threads, double seconds = 0.5);
// The INT8 dot-product peak (u8 × s8 → s32, 2 ops per multiply-add) on the
// best unit this CPU has and the OS allows: "amx" (AMX-INT8 tiles),
// "avx512_vnni", or "" with 0 GOP/s when neither.
struct Int8Peak {
  std::string unit;
  double gops = 0;
};
Int8Peak measure_int8_peak(int threads, double seconds = 0.5);

}  // namespace damoyolo::cli
