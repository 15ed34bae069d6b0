#!/usr/bin/env bash
# The Python package's tests (docs/python.md): `pip install .` into a virtual
# environment, then pytest tests/python against it. scripts/test.sh runs it
# after ctest; it needs the main build's CLI (build/bin/damoyolo, the
# reference the bindings are compared with) and ../shared/fixtures.
#
# The environment is build/python/venv, over Debian's /usr/bin/python3 with
# --system-site-packages (Debian's numpy), as scripts/python-env.sh makes
# build/pyvenv. The first run installs python/requirements-test.txt from PyPI;
# later runs only check it and use no network.
#
# What keeps it short: the package is built without build isolation (no fresh
# environment and no download per install) into scikit-build-core's persistent
# build folder build/python/<wheel tag> (pyproject.toml), so a second run
# recompiles only what changed; ccache (CMake picks it up) serves a wiped
# folder. A clean folder compiles the library once more, portable (no
# -march=native) and position-independent: docs/python.md has the times.
#
#   scripts/python-test.sh [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=build/python/venv
REQS=python/requirements-test.txt

ready() {
  "$VENV/bin/python3" - "$REQS" 2>/dev/null <<'PY'
import importlib.metadata, sys
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, version = line.split("==")
        if importlib.metadata.version(name) != version:
            sys.exit(1)
PY
}

if ! ready; then
  echo "damoyolo: installing the Python build and test requirements ($REQS) from PyPI into $VENV"
  /usr/bin/python3 -m venv --clear --system-site-packages "$VENV" ||
    { echo "damoyolo: cannot create $VENV (needs python3-venv: scripts/install-deps.sh)" >&2; exit 1; }
  "$VENV/bin/python3" -m pip install --disable-pip-version-check --no-input --quiet --timeout 30 --retries 2 \
    --no-deps --only-binary=:all: -r "$REQS" ||
    { echo "damoyolo: pip could not install $REQS from PyPI (is PyPI reachable?)" >&2; exit 1; }
  ready || { echo "damoyolo: $REQS installed into $VENV but not at the pinned versions" >&2; exit 1; }
fi

# Paths under the repository hash the same in every checkout for ccache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
echo "damoyolo: pip install . into $VENV"
start=$SECONDS
"$VENV/bin/python3" -m pip install --disable-pip-version-check --no-input --quiet \
  --no-build-isolation --no-deps .
echo "damoyolo: package built and installed in $((SECONDS - start)) s"
# From outside the source tree, so `import damoyolo` is the installed package
# (python/damoyolo has no extension modules of its own).
cd tests/python
exec "../../$VENV/bin/python3" -m pytest -p no:cacheprovider -q "$@" .
