#!/usr/bin/env bash
# Side-by-side benchmark: damoyolo vs ONNX Runtime 1.30 (onnxruntime-node) on the
# same model, input and thread count, alternating ROUNDS times in one run so
# both see the same machine conditions. Prints each round and the medians' ratio.
#
# usage: bench/peers/run.sh MODEL [--threads N] [--precision fp32|bf16] [--rounds R] [--iters K]
#                            [--before BIN]
# --before BIN: also run another damoyolo binary (e.g. main's, before a change)
# in each round, and print its median and the after/before ratio: a
# before/after comparison measured in the same run as the peer.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
model="$1"; shift
threads=2; precision=fp32; rounds=3; iters=30; before=""
while (($#)); do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --precision) precision="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --before) before="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ ! -d "$here/node_modules/onnxruntime-node" ]]; then
  # --ignore-scripts: the package's install script downloads extra binaries and
  # fails offline; the CPU library ships inside the package.
  (cd "$here" && npm install --ignore-scripts --no-audit --no-fund --silent onnxruntime-node@1.30.0)
fi
bin="${DAMOYOLO_BIN:-$root/build/bin/damoyolo}"
[[ -x "$bin" ]] || { echo "build damoyolo first (scripts/build.sh)" >&2; exit 1; }

ours=(); peer=(); ours_rss=(); peer_rss=(); prev=()
for ((r = 1; r <= rounds; r++)); do
  if [[ -n "$before" ]]; then
    b=$("$before" bench --model "$model" --threads "$threads" --precision "$precision" --iters "$iters" --json --no-peak)
    prev+=("$(jq -r '.latency_ms.median' <<<"$b")")
    printf 'round %d: before  %s median %.2f ms (min %.2f)\n' "$r" "$precision" "${prev[-1]}" "$(jq -r '.latency_ms.min' <<<"$b")"
  fi
  o=$("$bin" bench --model "$model" --threads "$threads" --precision "$precision" --iters "$iters" --json --no-peak)
  p=$(node "$here/ort_bench.mjs" "$model" "$threads" "$iters" 5)
  om=$(jq -r '.latency_ms.median' <<<"$o"); pm=$(jq -r '.latency_ms.median' <<<"$p")
  ours+=("$om"); peer+=("$pm")
  ours_rss+=("$(jq -r '.peak_rss_mib' <<<"$o")"); peer_rss+=("$(jq -r '.peak_rss_mib' <<<"$p")")
  printf 'round %d: damoyolo %s median %.2f ms (min %.2f) | onnxruntime %.2f ms (min %.2f)\n' "$r" "$precision" \
    "$om" "$(jq -r '.latency_ms.min' <<<"$o")" "$pm" "$(jq -r '.latency_ms.min' <<<"$p")"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mo=$(median "${ours[@]}"); mp=$(median "${peer[@]}")
ro=$(median "${ours_rss[@]}"); rp=$(median "${peer_rss[@]}")
echo "model $(basename "$model"), $threads threads, batch 1, $precision vs onnxruntime fp32"
printf 'median of round medians: damoyolo %.2f ms, onnxruntime %.2f ms, ratio %.3f\n' "$mo" "$mp" "$(echo "$mo / $mp" | bc -l)"
printf 'peak RSS: damoyolo %.1f MiB, onnxruntime (node process) %.1f MiB, ratio %.3f\n' "$ro" "$rp" "$(echo "$ro / $rp" | bc -l)"
if [[ -n "$before" ]]; then
  mb=$(median "${prev[@]}")
  printf 'before: %.2f ms (ratio to onnxruntime %.3f); after/before %.3f\n' "$mb" "$(echo "$mb / $mp" | bc -l)" \
    "$(echo "$mo / $mb" | bc -l)"
fi
