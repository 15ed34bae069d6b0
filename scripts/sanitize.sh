#!/usr/bin/env bash
# The sanitizer stage of the test command (scripts/test.sh runs it last;
# docs/fuzzing.md). Three steps, each timed:
#   1. build-asan/ (clang, ASan + UBSan, -fsanitize=fuzzer-no-link, and the
#      portable configuration DAMOYOLO_NATIVE=OFF: no -march=native, SIMD
#      kernels picked at run time, as in a package): the library, the CLI, the
#      test binaries and the fuzz targets; ctest there, less the labels and
#      tests in ASAN_CTEST_EXCLUDE(_TESTS) (see below);
#   2. every fuzz target for FUZZ_SECONDS (default 30) from its seeds, with
#      -seed=1: the same inputs in the same order each time (scripts/fuzz.sh);
#   3. build-tsan/ (clang, TSan): the library, tests/concurrency, the HTTP
#      service's and the stream pipeline's concurrent tests, run with one
#      OpenMP thread.
# Fails when any step fails.
#
#   scripts/sanitize.sh          FUZZ_SECONDS=60 scripts/sanitize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
# Not run under ASan: the Python training tests (python_test_smoke trains
# with PyTorch for ~70 s and runs no damoyolo code; the other two drive the
# CLI, which the CLI tests cover here) and the install test (it links an
# example against the installed library without the sanitizer flags, which
# cannot work). Every GoogleTest binary runs, less the tests below.
ASAN_CTEST_EXCLUDE=${ASAN_CTEST_EXCLUDE-'^(python|install)$'}
# Nor the reference engine on the full fixture models (Reference/GoldenParity.*):
# our plain C++ convolution, serial in clang builds (cmake/sanitize.cmake) and
# slowed by ASan, takes 3 min (Ns) to well over 10 min (T) per test. The
# reference kernels stay under ASan through test_reference_kernels, the ONNX
# conformance tests, OptimizedEngine.MatchesReferenceEngine and the fuzzer.
# Nor DecompressionBomb.TheEstimateCoversWhatTheDecodeTakes: it compares the
# decoder's memory estimate with the process's peak RSS, which ASan's redzones
# and shadow memory make ~10-15% bigger.
# Nor Precisions/Ops.Conv/bf16 (tests/ops): about one run in three, oneDNN 2.6
# (libdnnl.so, not instrumented) faults with a READ of an unmapped address in
# ASan's heap region while *creating* one of its bf16 convolution primitives
# (dnnl_primitive_create, before any data is touched), always the same
# address: an over-read inside oneDNN that the normal allocator's neighbouring
# pages hide. Seen in the fresh-root check and reproduced here; it passes in
# the normal suite and the other BF16 tests run under ASan. Open: find the
# shape and report it upstream (docs/fuzzing.md).
ASAN_CTEST_EXCLUDE_TESTS=${ASAN_CTEST_EXCLUDE_TESTS-'^(Reference/GoldenParity[.]|DecompressionBomb[.]TheEstimateCoversWhatTheDecodeTakes$|Precisions/Ops[.]Conv/bf16( |$))'}

./scripts/install-deps.sh --sanitizers

# Wall time and CPU time (user + sys of everything the step ran) per step:
# on a shared machine the CPU time says what the step costs, the wall time
# what it took there.
timings=()
cpu_seconds() {  # CPU seconds of this shell's finished children so far (cutime + cstime)
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%d", ($14 + $15) / hz }' "/proc/$$/stat"
}
stage_start() { STAGE=$1; STAGE_T0=$(date +%s); STAGE_C0=$(cpu_seconds); echo "damoyolo: sanitize: $STAGE"; }
stage_end() {
  local s=$(($(date +%s) - STAGE_T0)) c=$(($(cpu_seconds) - STAGE_C0))
  timings+=("$(printf '%-36s %5d s wall %6d s CPU' "$STAGE" "$s" "$c")")
  echo "damoyolo: sanitize: $STAGE: ${s} s wall, ${c} s CPU"
}
report() {
  echo "damoyolo: sanitize: time per step (load average now: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs):"
  printf '  %s\n' "${timings[@]}"
}
trap report EXIT

# Reports abort the process (so ctest sees a failure) with symbolized stacks.
# LeakSanitizer runs at every exit (ASan's default) and needs no suppressions.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# --- 1. ASan + UBSan -------------------------------------------------------
stage_start "build-asan: configure + build"
# pycocotools for test_eval's Pycocotools.* tests: build/pyvenv, as in scripts/test.sh.
if ! ./scripts/python-env.sh >/dev/null; then
  echo "damoyolo: WARNING: no pycocotools; the Pycocotools.* tests will fail" >&2
fi
# DAMOYOLO_NATIVE=OFF: the normal build/ is native, so this one covers the
# portable configuration (what scripts/package.sh builds) at no extra build
# cost; the SIMD kernels still run at this CPU's best level (test_cpu checks).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
  -DDAMOYOLO_SANITIZE=address,undefined -DDAMOYOLO_FUZZ=ON -DDAMOYOLO_BUILD_BENCH=OFF -DDAMOYOLO_NATIVE=OFF \
  -DDAMOYOLO_PYCOCOTOOLS_PYTHON="$ROOT/build/pyvenv/bin/python3" >/dev/null
cmake --build build-asan -j "$JOBS"
stage_end

rc=0
stage_start "build-asan: ctest"
ctest_args=(--test-dir build-asan --output-on-failure -j "$JOBS" --timeout 900)
if [[ -n $ASAN_CTEST_EXCLUDE ]]; then ctest_args+=(-LE "$ASAN_CTEST_EXCLUDE"); fi
if [[ -n $ASAN_CTEST_EXCLUDE_TESTS ]]; then ctest_args+=(-E "$ASAN_CTEST_EXCLUDE_TESTS"); fi
ctest "${ctest_args[@]}" || rc=1
stage_end

# --- 2. Fuzzing --------------------------------------------------------------
stage_start "fuzz: every target ${FUZZ_SECONDS} s, -seed=1"
FUZZ_SEED=1 FUZZ_FRESH=1 BUILD_DIR=build-asan JOBS=$JOBS ./scripts/fuzz.sh "$FUZZ_SECONDS" || rc=1
stage_end

# --- 3. TSan -----------------------------------------------------------------
# tests/concurrency (test_concurrency): one Session run from 4 threads on
# each engine, sessions loaded in parallel, one Detector per thread.
# (test_engine's OptimizedEngine.ConcurrentRunsOnOneModel checks the same
# contract on a fixture model. The tests' allocation counter replaces
# operator new, which TSan's runtime defines too; under TSan it replaces
# nothing and the tests that count skip: tests/testutil/alloc_counter.h.)
# OpenMP: libgomp is not instrumented, so TSan cannot see its barriers and
# would report hand-offs between its worker threads as races. The tests give
# every Session threads = 1, and OMP_NUM_THREADS=1 keeps every other
# parallel region (oneDNN's) on the calling thread too: the races looked for
# are between the test's own threads. oneDNN's own lazily built globals are
# suppressed (tests/sanitizers/tsan.supp, oneDNN frames only).
stage_start "build-tsan: configure + build"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
  -DDAMOYOLO_SANITIZE=thread -DDAMOYOLO_BUILD_BENCH=OFF -DDAMOYOLO_NATIVE=OFF >/dev/null
cmake --build build-tsan -j "$JOBS" --target test_concurrency test_serving test_pipeline
stage_end

stage_start "build-tsan: concurrency tests"
OMP_NUM_THREADS=1 \
TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/sanitizers/tsan.supp} \
  build-tsan/bin/test_concurrency || rc=1
# The HTTP service's threads (I/O, workers, the batcher, post-processing):
# the tests where they hand requests to each other concurrently — batching
# across clients, overload, a client leaving mid-request, shutdown while
# busy. (Every Server.* test passed under TSan once, in 5 min 42 s: each
# server start costs ~10 s there, too much for each run.)
OMP_NUM_THREADS=1 \
TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/sanitizers/tsan.supp} \
  build-tsan/bin/test_serving --gtest_filter='Server.ConcurrentRequestsAreBatchedAndAnsweredCorrectly:Server.OverloadIsRefusedAtOnceWithRetryAfter:Server.ADisconnectedClientsWorkIsDropped:Server.ShutdownFinishesAcceptedRequestsThenStops' || rc=1
# The stream pipeline's threads (a source thread per stream, the batcher,
# inference, post-processing, the caller's wait/stop) handing frames, slots and
# buffers to each other: order across batched streams, backpressure, live drops,
# skips, a failing stream, stop while running, run() — each with the stages
# inline and on separate threads. (The loopback UDP/RTSP/HTTP tests are left
# out: they pace ffmpeg children in real time, which TSan's slowdown breaks.)
OMP_NUM_THREADS=1 \
TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/sanitizers/tsan.supp} \
  build-tsan/bin/test_pipeline --gtest_filter='Stages/PipelineStages.OrderAndDetections*:Stages/PipelineStages.SlowSink*:Stages/PipelineStages.LiveSourceDrops*:Stages/PipelineStages.InferEveryNth*:Stages/PipelineStages.FailingStream*:Stages/PipelineStages.StopDrains*:Stages/PipelineStages.RunInfers*:Pipeline.AutoStages*' || rc=1
stage_end

if ((rc != 0)); then
  echo "damoyolo: sanitize: FAILED (see above)" >&2
fi
exit "$rc"
