#!/usr/bin/env bash
# The Python environment of the tests that need what Debian does not package:
# pycocotools, the real COCOeval that tests/eval scores damoyolo's evaluation
# against (ctest -R Pycocotools), and tritonclient[http], Triton's own HTTP
# client, that tests/serving drives `damoyolo serve` with (ctest -R
# serving_triton_client). A virtual environment over Debian's
# /usr/bin/python3 (--system-site-packages: Debian's numpy), by default in
# build/pyvenv, where the tests look for it (CMake's
# DAMOYOLO_PYCOCOTOOLS_PYTHON). The first run installs the pinned wheel from
# PyPI; later runs only check it and use no network. Fails loudly when the
# install does not work.
#
#   scripts/python-env.sh [VENV_DIR]     (relative to the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-build/pyvenv}
# 2.0.10 has a cp311 manylinux wheel (no compiler needed) and, unlike 2.0.8,
# no matplotlib dependency; it runs on Debian 12's numpy 1.24.
PYCOCOTOOLS=2.0.10
# Pure Python; its dependencies (gevent, geventhttpclient, python-rapidjson,
# ml_dtypes, urllib3) come as cp311 manylinux wheels and run on Debian 12's
# numpy 1.24.
TRITONCLIENT=2.73.0

ready() {
  "$VENV/bin/python3" - "$PYCOCOTOOLS" "$TRITONCLIENT" 2>/dev/null <<'PY'
import importlib.metadata, sys
import pycocotools._mask, pycocotools.cocoeval  # the compiled part loads against this numpy
import tritonclient.http
sys.exit(importlib.metadata.version("pycocotools") != sys.argv[1] or
         importlib.metadata.version("tritonclient") != sys.argv[2])
PY
}

if ready; then
  exit 0
fi
fail() {
  echo "damoyolo: $*" >&2
  echo "damoyolo: ctest's Pycocotools.* and serving_triton_client tests fail until $VENV/bin/python3 imports" \
    "pycocotools==$PYCOCOTOOLS and tritonclient==$TRITONCLIENT" >&2
  exit 1
}
echo "damoyolo: installing pycocotools==$PYCOCOTOOLS and tritonclient[http]==$TRITONCLIENT from PyPI into $VENV"
/usr/bin/python3 -m venv --clear --system-site-packages "$VENV" ||
  fail "could not create a virtual environment with /usr/bin/python3 (needs python3-venv: scripts/install-deps.sh)"
# --no-deps: its only dependency, numpy, is Debian's (python3-numpy).
"$VENV/bin/python3" -m pip install --disable-pip-version-check --no-input --quiet --timeout 30 --retries 2 \
  --no-deps --only-binary=:all: "pycocotools==$PYCOCOTOOLS" ||
  fail "pip could not install pycocotools==$PYCOCOTOOLS from PyPI (is PyPI reachable?)"
"$VENV/bin/python3" -m pip install --disable-pip-version-check --no-input --quiet --timeout 30 --retries 2 \
  --only-binary=:all: "tritonclient[http]==$TRITONCLIENT" gevent==26.9.0 geventhttpclient==2.6.1 \
  python-rapidjson==1.25 ml_dtypes==0.5.4 urllib3==2.8.0 ||
  fail "pip could not install tritonclient[http]==$TRITONCLIENT from PyPI (is PyPI reachable?)"
ready || fail "pycocotools==$PYCOCOTOOLS or tritonclient==$TRITONCLIENT installed into $VENV but does not import"
