// The OpenMP runtime API for the clang sanitizer/fuzz builds (cmake/sanitize.cmake),
// which link GCC's libgomp (the runtime of Debian's oneDNN) without clang's
// -fopenmp. GCC's own omp.h uses GCC-only attributes clang rejects; these are
// the standard OpenMP 4.5 declarations of what damoyolo calls, with libgomp's
// C ABI. Add a declaration here when the code calls another omp_* function.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

void omp_set_num_threads(int num_threads);
int omp_get_num_threads(void);
int omp_get_max_threads(void);
int omp_get_thread_num(void);
int omp_get_num_procs(void);
int omp_in_parallel(void);
void omp_set_dynamic(int dynamic_threads);
int omp_get_dynamic(void);

#ifdef __cplusplus
}
#endif
