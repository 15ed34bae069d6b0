#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
# pycocotools is no Debian package: build/pyvenv gets it from PyPI once. Without
# it the Pycocotools.* tests fail (they never skip); the rest still run.
if ! ./scripts/python-env.sh; then
  echo "damoyolo: WARNING: no pycocotools (see above); the Pycocotools.* tests will fail" >&2
fi
if [[ ! -d ../shared/fixtures ]]; then
  echo "damoyolo: ../shared/fixtures not found next to the repository; fixture tests will fail" >&2
fi
cd build
ctest --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 900 "$@"
