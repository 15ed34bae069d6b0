#!/usr/bin/env bash
# Builds the Debian packages damoyolo_<version>_amd64.deb (the executables)
# and libdamoyolo-dev_<version>_amd64.deb (library, headers, CMake package)
# into build-package/ (see cmake/package.cmake and docs/install.md).
#
# Its own build directory, configured for a package rather than for this
# machine:
#   DAMOYOLO_NATIVE=OFF      no -march=native, so the package runs on any
#                            x86-64 CPU (oneDNN and damoyolo's own SIMD
#                            kernels still pick AVX2/AVX-512 at run time);
#   CMAKE_INSTALL_PREFIX=/usr  GNUInstallDirs then uses Debian's multiarch
#                            library directory, lib/x86_64-linux-gnu;
#   no tests, no benchmarks: they are not packaged.
# Extra arguments go to the cmake configure step, e.g.
#   scripts/package.sh -DDAMOYOLO_PACKAGE_MAINTAINER="Jane Doe <jane@example.org>"
# Environment: BUILD_DIR (default build-package), JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-package}
JOBS=${JOBS:-$(nproc)}

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX=/usr -DDAMOYOLO_NATIVE=OFF \
  -DDAMOYOLO_BUILD_TESTS=OFF -DDAMOYOLO_BUILD_BENCH=OFF "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
# dpkg-shlibdeps (from dpkg-dev, part of build-essential) computes the
# executables' Depends.
(cd "$BUILD_DIR" && cpack -G DEB)
ls -l "$BUILD_DIR"/*.deb
