#!/usr/bin/env bash
# ctest serving_triton_client: Triton's own HTTP client (tritonclient, PyPI,
# in build/pyvenv: scripts/python-env.sh) against a real `damoyolo serve` on
# loopback; then SIGTERM, and the server must exit 0.
#
#   triton_client_test.sh DAMOYOLO_CLI PYTHON
set -euo pipefail
CLI=$1
PY=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=$ROOT/models/damoyolo_demo.onnx
IMAGE=$ROOT/models/demo.jpg
TMP=$(mktemp -d)
PID=
cleanup() {
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

if ! "$PY" -c "import tritonclient.http" 2>/dev/null; then
  echo "triton_client_test: $PY cannot import tritonclient.http (scripts/python-env.sh installs it)" >&2
  exit 1
fi
# What the library finds with the command line's defaults, which serve shares.
"$CLI" detect -m "$MODEL" "$IMAGE" --json "$TMP/expected.json" -q --no-draw >/dev/null
EXPECTED=$("$PY" -c "import json,sys; print(len(json.load(open(sys.argv[1]))[0]['detections']))" "$TMP/expected.json")

"$CLI" serve -m "$MODEL" --name demo --port 0 --threads 2 >"$TMP/out" 2>"$TMP/err" &
PID=$!
for _ in $(seq 300); do
  grep -q '^listening ' "$TMP/out" && break
  kill -0 "$PID" 2>/dev/null || { echo "triton_client_test: the server exited:" >&2; cat "$TMP/err" >&2; exit 1; }
  sleep 0.1
done
ADDR=$(sed -n 's/^listening //p' "$TMP/out")
[[ -n $ADDR ]] || { echo "triton_client_test: the server printed no address" >&2; cat "$TMP/err" >&2; exit 1; }

"$PY" "$ROOT/tests/serving/triton_client_check.py" "$ADDR" demo "$IMAGE" "$EXPECTED"

kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=
if ((rc != 0)); then
  echo "triton_client_test: the server exited $rc after SIGTERM:" >&2
  cat "$TMP/err" >&2
  exit 1
fi
echo "triton_client_test: ok"
