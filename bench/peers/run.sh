#!/usr/bin/env bash
# Side-by-side benchmark: damoyolo against both CPU peers — ONNX Runtime 1.30
# (onnxruntime-node) and OpenVINO 2026.4 (PyPI openvino) — on the same model,
# input and thread count, alternating ROUNDS times in one run so all see the
# same machine conditions. Prints each round and the medians' ratios.
# The peers are benchmark and correctness references only, never product
# dependencies: they live in bench/peers/node_modules and bench/peers/.venv.
#
# usage: bench/peers/run.sh MODEL [--threads N] [--precision fp32|bf16|int8] [--rounds R] [--iters K]
#                            [--before BIN] [--peers ort,ov] [--int8-model QDQ.onnx] [--ov-int8 IR.xml]
# --precision bf16: damoyolo and OpenVINO in bf16; ONNX Runtime has no bf16
#   CPU path and stays fp32 (the line says so).
# --precision int8: each engine runs its own INT8 form of MODEL (the float
#   export): damoyolo and ONNX Runtime the QDQ ONNX file of --int8-model
#   (`damoyolo quantize`; damoyolo's float remainder in fp32), OpenVINO the IR
#   of --ov-int8, quantised by OpenVINO's own NNCF (ov_nncf.py MODEL CALIB_DIR
#   IR.xml) — each at its best, same input and threads. MODEL itself is not run.
# --before BIN: also run another damoyolo binary (e.g. main's, before a change)
#   in each round, and print its median and the after/before ratio: a
#   before/after comparison measured in the same run as the peers.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
model="$1"; shift
threads=2; precision=fp32; rounds=3; iters=30; before=""; peers="ort,ov"; int8_model=""; ov_int8=""
while (($#)); do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --precision) precision="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --before) before="$2"; shift 2 ;;
    --peers) peers="$2"; shift 2 ;;
    --int8-model) int8_model="$2"; shift 2 ;;
    --ov-int8) ov_int8="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
use_ort=0; use_ov=0
[[ ",$peers," == *,ort,* ]] && use_ort=1
[[ ",$peers," == *,ov,* ]] && use_ov=1
# What each engine runs, and the precision each reports.
ours_model="$model"; ours_prec="$precision"; ort_model="$model"; ort_prec=fp32; ov_model="$model"
case "$precision" in
  fp32|bf16) ;;
  int8)
    [[ -n "$int8_model" ]] || { echo "--precision int8 needs --int8-model QDQ.onnx" >&2; exit 2; }
    ((use_ov)) && [[ -z "$ov_int8" ]] && { echo "--precision int8 needs --ov-int8 IR.xml (ov_nncf.py), or --peers ort" >&2; exit 2; }
    # The QDQ graph is what makes damoyolo's run INT8; its float remainder runs in fp32.
    ours_model="$int8_model"; ours_prec=fp32; ort_model="$int8_model"; ort_prec=int8; ov_model="$ov_int8" ;;
  *) echo "--precision: fp32, bf16 or int8" >&2; exit 2 ;;
esac
if ((use_ort)) && [[ ! -d "$here/node_modules/onnxruntime-node" ]]; then
  # --ignore-scripts: the package's install script downloads extra binaries and
  # fails offline; the CPU library ships inside the package.
  (cd "$here" && npm install --ignore-scripts --no-audit --no-fund --silent --no-save onnxruntime-node@1.30.0)
fi
if ((use_ov)) && [[ ! -x "$here/.venv/bin/python" ]]; then
  python3 -m venv "$here/.venv"
  # nncf 3.4 is the release paired with OpenVINO 2026.4; it and the image readers serve
  # ov_nncf.py (OpenVINO's own INT8 of a model), not the benchmark itself.
  "$here/.venv/bin/pip" install -q openvino==2026.4.1 nncf==3.4.0 opencv-python-headless==4.14.0.94 pillow==13.0.0
fi
bin="${DAMOYOLO_BIN:-$root/build/bin/damoyolo}"
[[ -x "$bin" ]] || { echo "build damoyolo first (scripts/build.sh)" >&2; exit 1; }

ours=(); ort=(); ov=(); prev=(); ours_rss=(); ort_rss=(); ov_rss=()
line() { printf 'round %d: %-11s %s median %8.2f ms (min %.2f)\n' "$1" "$2" "$3" "$(jq -r '.latency_ms.median' <<<"$4")" \
  "$(jq -r '.latency_ms.min' <<<"$4")"; }
for ((r = 1; r <= rounds; r++)); do
  if [[ -n "$before" ]]; then
    b=$("$before" bench --model "$ours_model" --threads "$threads" --precision "$ours_prec" --iters "$iters" --json --no-peak)
    prev+=("$(jq -r '.latency_ms.median' <<<"$b")"); line "$r" before "$precision" "$b"
  fi
  o=$("$bin" bench --model "$ours_model" --threads "$threads" --precision "$ours_prec" --iters "$iters" --json --no-peak)
  ours+=("$(jq -r '.latency_ms.median' <<<"$o")"); ours_rss+=("$(jq -r '.peak_rss_mib' <<<"$o")")
  line "$r" damoyolo "$precision" "$o"
  if ((use_ort)); then
    p=$(node "$here/ort_bench.mjs" "$ort_model" "$threads" "$iters" 5)
    ort+=("$(jq -r '.latency_ms.median' <<<"$p")"); ort_rss+=("$(jq -r '.peak_rss_mib' <<<"$p")")
    line "$r" onnxruntime "$ort_prec" "$p"
  fi
  if ((use_ov)); then
    v=$("$here/.venv/bin/python" "$here/ov_bench.py" "$ov_model" "$threads" "$iters" 5 "$precision")
    ov+=("$(jq -r '.latency_ms.median' <<<"$v")"); ov_rss+=("$(jq -r '.peak_rss_mib' <<<"$v")")
    line "$r" openvino "$precision" "$v"
  fi
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { echo "$1 / $2" | bc -l; }
mo=$(median "${ours[@]}"); ro=$(median "${ours_rss[@]}")
if [[ "$precision" == int8 ]]; then
  ovq=""; ((use_ov)) && ovq=", openvino $(basename "$ov_int8") ($(jq -r '"\(.int8_convs) of \(.convs)"' <<<"$v") convolutions in int8)"
  echo "int8: damoyolo and onnxruntime run $(basename "$int8_model")$ovq"
fi
echo "model $(basename "$model"), $threads threads, batch 1, damoyolo $precision; CPU: $(lscpu | sed -n 's/^Model name: *//p')"
printf 'damoyolo: median of round medians %.2f ms, peak RSS %.1f MiB\n' "$mo" "$ro"
if ((use_ort)); then
  mp=$(median "${ort[@]}"); rp=$(median "${ort_rss[@]}")
  printf 'onnxruntime %s: %.2f ms (damoyolo/onnxruntime %.3f), peak RSS %.1f MiB (node process; ratio %.3f)\n' \
    "$ort_prec" "$mp" "$(ratio "$mo" "$mp")" "$rp" "$(ratio "$ro" "$rp")"
fi
if ((use_ov)); then
  mv=$(median "${ov[@]}"); rv=$(median "${ov_rss[@]}")
  printf 'openvino %s: %.2f ms (damoyolo/openvino %.3f), peak RSS %.1f MiB (python process; ratio %.3f)\n' \
    "$precision" "$mv" "$(ratio "$mo" "$mv")" "$rv" "$(ratio "$ro" "$rv")"
fi
if [[ -n "$before" ]]; then
  mb=$(median "${prev[@]}")
  printf 'before: %.2f ms; after/before %.3f\n' "$mb" "$(ratio "$mo" "$mb")"
fi
