#!/usr/bin/env bash
# Accuracy of every configuration in COCO AP, through `damoyolo eval` on one
# dataset: the FP32 reference engine (the oracle), the default optimised FP32
# engine, BF16, and each optimisation switched off in turn (the names
# `damoyolo optimizations --names` lists). Prints a markdown
# table with AP, AP50 and the difference to the reference path.
#
# usage: bench/accuracy_ablation.sh MODEL LABELS IMAGES_DIR ANNOTATIONS.json
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/bin/damoyolo"
model="$1"; labels="$2"; images="$3"; ann="$4"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

run() {  # name, extra args...
  local name="$1"; shift
  "$bin" eval -m "$model" --labels "$labels" --images "$images" --annotations "$ann" --threads 2 \
    --overwrite --json "$tmp/results.json" "$@" > "$tmp/out.txt" 2>&1 || { cat "$tmp/out.txt" >&2; exit 1; }
  # Re-score the written results file to get the metrics at full precision.
  "$bin" eval --annotations "$ann" --results "$tmp/results.json" --overwrite --json "$tmp/metrics.json" > /dev/null
  echo "$name|$(jq -r .AP "$tmp/metrics.json")|$(jq -r .AP50 "$tmp/metrics.json")"
}

rows=()
rows+=("$(run "reference engine, FP32 (oracle)" --engine reference)")
rows+=("$(run "optimised engine, FP32 (default)")")
rows+=("$(run "optimised engine, BF16" --precision bf16)")
# Every switch `eval` takes (a Detector: the session's and the Detector's), from
# the library's table rather than a list here.
mapfile -t switches < <("$bin" optimizations --names)
[ "${#switches[@]}" -gt 0 ] || { echo "damoyolo optimizations --names listed nothing" >&2; exit 1; }
for s in "${switches[@]}"; do
  rows+=("$(run "$s off" --disable "$s")")
done
ref_ap=$(cut -d'|' -f2 <<<"${rows[0]}")
echo "| configuration | AP | AP50 | AP − reference AP |"
echo "|---|---|---|---|"
for r in "${rows[@]}"; do
  IFS='|' read -r name ap ap50 <<<"$r"
  printf '| %s | %.4f | %.4f | %+.4f |\n' "$name" "$ap" "$ap50" "$(echo "$ap - $ref_ap" | bc -l)"
done
