#!/usr/bin/env bash
# bench/peers/python_e2e.py in its own environment: build/python/peers, a venv
# over Debian's Python (numpy, cv2, PIL from Debian), with the peers from PyPI
# (pinned, --no-deps: their numpy/protobuf are Debian's) and the damoyolo wheel
# built from this checkout (through the persistent build/python folder, so
# only what changed is compiled). Benchmark references only, never product
# dependencies.
#
#   [IMAGES="a.jpg b.png"] bench/peers/python_e2e.sh MODEL [--threads N] [--seconds S] [--rounds R]
# (images: three of the fixtures' unless IMAGES names others)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
VENV=build/python/peers
if [[ ! -x $VENV/bin/python3 ]] || ! $VENV/bin/python3 -c "import onnxruntime, openvino" 2>/dev/null; then
  /usr/bin/python3 -m venv --clear --system-site-packages "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q --no-deps --only-binary=:all: \
    onnxruntime==1.30.0 flatbuffers==25.12.19 openvino==2026.4.1 openvino-telemetry==2025.2.0
fi
# The test environment builds the wheel (it has the build requirements).
[[ -x build/python/venv/bin/python3 ]] || { echo "run scripts/python-test.sh first (it makes build/python/venv)" >&2; exit 1; }
CCACHE_BASEDIR=$root build/python/venv/bin/pip wheel --disable-pip-version-check -q --no-build-isolation --no-deps \
  -w build/python/dist .
"$VENV/bin/pip" install --disable-pip-version-check -q --no-deps --force-reinstall build/python/dist/damoyolo-*.whl
model="$(realpath "$1")"; shift
fx="$root/../shared/fixtures/images"
images=()
for i in ${IMAGES:-$fx/chelsea.png $fx/coffee.png $fx/astronaut.png}; do images+=("$(realpath "$i")"); done
cd /tmp  # import the installed package, not python/damoyolo
exec "$root/$VENV/bin/python3" "$root/bench/peers/python_e2e.py" "$model" "${images[@]}" "$@"
