#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, ASan + UBSan, clang) and fuzzes every
# one of them for SECONDS (default 60) at the same time, one process each.
# Fails when any target finds something: a crash, a sanitizer report, a leak,
# a timeout or running out of memory. docs/fuzzing.md has the details.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      e.g. scripts/fuzz.sh 3600 onnx_session
#
# Targets (default: all): one per fuzz/NAME_fuzzer.cc, today decode_image,
# onnx_session, coco_json; each with seeds fuzz/corpus/NAME/ and dictionary
# fuzz/dict/NAME.dict.
# Environment:
#   BUILD_DIR   build folder (default build-asan, shared with scripts/sanitize.sh;
#               configured here when it has no build.ninja yet)
#   FUZZ_SEED   libFuzzer -seed (default: random; scripts/sanitize.sh uses 1)
#   FUZZ_ARGS   more libFuzzer flags, e.g. "-max_len=100000 -only_ascii=1"
#   FUZZ_FRESH  1: start from the seeds alone, forgetting the corpus earlier
#               runs grew (scripts/sanitize.sh: with FUZZ_SEED=1, the same inputs each time)
#   JOBS        build parallelism (default nproc)
# What a run leaves (under $BUILD_DIR/fuzz/, never in the repository):
#   corpus/TARGET/    the corpus it grew (the seeds stay in fuzz/corpus/TARGET/)
#   crashes/TARGET/   crash-*, leak-*, timeout-*, oom-* inputs it found (kept
#                     across runs; a run fails only on what it found itself)
#   logs/TARGET.log   libFuzzer's output
# Reproduce a finding: $BUILD_DIR/bin/fuzz_TARGET $BUILD_DIR/fuzz/crashes/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECS=${1:-60}
shift || true
if ! [[ $SECS =~ ^[0-9]+$ ]] || ((SECS < 1)); then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then
  for f in fuzz/*_fuzzer.cc; do
    f=${f#fuzz/}
    TARGETS+=("${f%_fuzzer.cc}")
  done
fi
BUILD_DIR=${BUILD_DIR:-build-asan}
JOBS=${JOBS:-$(nproc)}

for t in "${TARGETS[@]}"; do
  if [[ ! -f fuzz/${t}_fuzzer.cc || ! -d fuzz/corpus/$t || ! -f fuzz/dict/$t.dict ]]; then
    echo "damoyolo: fuzz target '$t' needs fuzz/${t}_fuzzer.cc, fuzz/corpus/$t/ and fuzz/dict/$t.dict" >&2
    exit 2
  fi
done

if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  ./scripts/install-deps.sh --sanitizers
  # The same configuration as scripts/sanitize.sh's (portable: DAMOYOLO_NATIVE=OFF).
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
    -DDAMOYOLO_SANITIZE=address,undefined -DDAMOYOLO_FUZZ=ON -DDAMOYOLO_BUILD_BENCH=OFF -DDAMOYOLO_NATIVE=OFF >/dev/null
fi
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]/#/fuzz_}"

case $BUILD_DIR in /*) OUT=$BUILD_DIR/fuzz ;; *) OUT=$ROOT/$BUILD_DIR/fuzz ;; esac
mkdir -p "$OUT/logs"
# The sanitizers' options for every target: abort on the first report, with
# symbolized stacks. libFuzzer checks for leaks after each input that
# allocated more than it freed (-detect_leaks=1, its default under ASan).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# oneDNN/OpenMP threads buy nothing on these tiny inputs.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

echo "damoyolo: fuzzing ${TARGETS[*]} for ${SECS} s each (${BUILD_DIR}, seed ${FUZZ_SEED:-random})"
STAMP=$OUT/logs/.started
touch "$STAMP"
pids=()
for t in "${TARGETS[@]}"; do
  if [[ ${FUZZ_FRESH:-0} == 1 ]]; then rm -rf "${OUT:?}/corpus/$t"; fi
  mkdir -p "$OUT/corpus/$t" "$OUT/crashes/$t"
  args=(-max_total_time="$SECS" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$OUT/crashes/$t/" -dict="$ROOT/fuzz/dict/$t.dict")
  if [[ -n ${FUZZ_SEED:-} ]]; then args+=(-seed="$FUZZ_SEED"); fi
  # shellcheck disable=SC2206
  args+=(${FUZZ_ARGS:-})
  # The first folder receives what the run finds; the seeds are only read.
  "$BUILD_DIR/bin/fuzz_$t" "${args[@]}" "$OUT/corpus/$t" "$ROOT/fuzz/corpus/$t" >"$OUT/logs/$t.log" 2>&1 &
  pids+=($!)
done

failed=()
for i in "${!TARGETS[@]}"; do
  t=${TARGETS[$i]}
  rc=0
  wait "${pids[$i]}" || rc=$?
  stats=$(grep -E '^#[0-9]+\s+DONE' "$OUT/logs/$t.log" | tail -1 | sed -E 's/^#([0-9]+)\s+DONE\s+/\1 runs, /' || true)
  found=$(find "$OUT/crashes/$t" -type f -newer "$STAMP" | wc -l)
  if ((rc != 0 || found > 0)); then
    failed+=("$t")
    echo "damoyolo: fuzz_$t FAILED (exit $rc, $found finding(s) in $OUT/crashes/$t/); log $OUT/logs/$t.log:" >&2
    # What it was and where: the report lines and the first frames in damoyolo.
    grep -E 'ERROR:|SUMMARY:|runtime error:|what\(\):|Test unit written' "$OUT/logs/$t.log" | cut -c1-240 | head -8 >&2 || true
    grep -E '^ +#[0-9]+ 0x.* in .*damoyolo::' "$OUT/logs/$t.log" | sed -E 's/ 0x[0-9a-f]+ in / /' | cut -c1-240 |
      head -4 >&2 || true
  else
    echo "damoyolo: fuzz_$t ok: ${stats:-no stats} (corpus $(find "$OUT/corpus/$t" -type f | wc -l) files)"
  fi
done
if ((${#failed[@]} > 0)); then
  echo "damoyolo: fuzzing found problems in: ${failed[*]}" >&2
  echo "damoyolo: reproduce with $BUILD_DIR/bin/fuzz_TARGET FILE (docs/fuzzing.md)" >&2
  exit 1
fi
