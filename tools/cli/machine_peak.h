// Measures the machine's FP32 FMA peak in the same process as a benchmark, so
// "fraction of peak" compares numbers taken under the same conditions.
#pragma once

namespace damoyolo::cli {

// GFLOP/s of an AVX-512 (or widest available) FMA loop on `threads` threads,
// each running independent accumulator chains for ~`seconds`.
double measure_fma_peak_gflops(int threads, double seconds = 0.5);

}  // namespace damoyolo::cli
