#!/usr/bin/env bash
# Pre+post-processing of damoyolo vs the official Python recipe (PIL + cv2 +
# torchvision from Debian), same images, same golden network outputs, single
# thread, in one run. Prints a markdown table of medians and the ratio.
#
# usage: bench/peers/prepost_vs_official.sh [REPEATS]   (needs python3-torch, -torchvision, -opencv, -pil)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
fixtures="$root/../shared/fixtures"
repeats="${1:-30}"
ours=$("$root/build/bin/bench_prepost" "$fixtures" "$repeats")
theirs=$(/usr/bin/python3 "$here/official_prepost.py" "$fixtures" "$repeats")
echo "| model | image | stage | official (PIL+cv2+torchvision) ms | damoyolo ms | speed-up |"
echo "|---|---|---|---|---|---|"
paste <(echo "$ours") <(echo "$theirs") | while IFS=$'\t' read -r o t; do
  for stage in decode preprocess postprocess; do
    om=$(jq -r ".${stage}_ms" <<<"$o"); tm=$(jq -r ".${stage}_ms" <<<"$t")
    printf '| %s | %s | %s | %.3f | %.3f | %.1fx |\n' "$(jq -r .model <<<"$o")" "$(jq -r .image <<<"$o")" "$stage" \
      "$tm" "$om" "$(echo "$tm / $om" | bc -l)"
  done
done
tot() { jq -s "map(.decode_ms + .preprocess_ms + .postprocess_ms) | add" <<<"$1"; }
printf '\ntotal over all cases: official %.1f ms, damoyolo %.1f ms, speed-up %.1fx\n' "$(tot "$theirs")" "$(tot "$ours")" \
  "$(echo "$(tot "$theirs") / $(tot "$ours")" | bc -l)"
