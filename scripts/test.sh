#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
if [[ ! -d ../shared/fixtures ]]; then
  echo "damoyolo: ../shared/fixtures not found next to the repository; fixture tests will fail" >&2
fi
cd build
ctest --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 900 "$@"
