#!/usr/bin/env bash
# The main job: install what is missing, build, detect objects in an image with
# a DAMO-YOLO model, print the detections and write the annotated picture.
#
# It runs the project's own trained model (models/damoyolo_demo.onnx; its
# class names are in the file) on models/demo.jpg; MODEL=... IMAGE=... run
# others. out/ belongs to the demo, so its files are replaced (--overwrite).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null
model="${MODEL:-}"
extra=()
image="${IMAGE:-}"
if [[ -z "$model" ]]; then
  if [[ -f models/damoyolo_demo.onnx ]]; then
    model=models/damoyolo_demo.onnx
    image="${image:-models/demo.jpg}"
  else
    model=../shared/fixtures/models/damoyolo_Ns_416.onnx
    image="${image:-../shared/fixtures/images/chelsea.png}"
    # Synthetic weights score everything near 0.15: keep the strongest few.
    extra=(--conf 0.135)
  fi
fi
mkdir -p out
./build/bin/damoyolo detect --model "$model" --output-dir out --overwrite --json out/detections.json --top 10 \
  "${extra[@]}" "$image"
ext=jpg; [[ "${image,,}" == *.png ]] && ext=png  # detect keeps PNG as PNG, writes everything else as JPEG
echo "annotated image: out/$(basename "${image%.*}").$ext, all detections: out/detections.json"
