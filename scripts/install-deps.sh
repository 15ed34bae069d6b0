#!/usr/bin/env bash
# Installs the Debian packages damoyolo needs, only those that are missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache
  libonnx-dev libprotobuf-dev protobuf-compiler   # ONNX's protobuf schema
  libdnnl-dev ocl-icd-opencl-dev                  # oneDNN 2.6; its CMake config needs OpenCL (only "recommended")
  libjpeg62-turbo-dev libpng-dev                  # image decoding
  libopencv-dev                                   # video I/O; test reference for resize
  nlohmann-json3-dev libcli11-dev                 # JSON, command line
  libboost-dev                                    # Boost.Beast/Asio: the HTTP service (damoyolo serve)
  libgtest-dev libgmock-dev libbenchmark-dev      # tests and benchmarks
  libonnx-testdata                                # ONNX's per-operator conformance tests
  ffmpeg                                          # test videos
  jq bc                                           # bench/peers/run.sh; jq also scripts/check-nginx.sh
  curl                                            # scripts/check-nginx.sh (nginx itself: see below)
  python3-yaml                                    # tests/deploy: parses the manifests under deploy/
  python3-numpy                                   # tests/eval: independent COCOeval cross-check
  python3-venv ca-certificates                    # scripts/python-env.sh: pycocotools (PyPI, https) for tests/eval
  python3-dev                                     # scripts/python-test.sh: pip install . (Python.h for the extension)
  file                                            # scripts/package.sh: CPack's dpkg-shlibdeps step needs it
  python3-skimage                                 # its data/truncated.jpg: a real truncated JPEG for tests
  python3-torch python3-torchvision python3-onnx python3-pil python3-opencv  # python/: training code and its tests
)

# nginx is NOT installed here: Debian's package starts and enables a web
# server on port 80 as a service, too much of a side effect for "install what
# the build needs". scripts/check-nginx.sh (ctest serving_nginx_replicas)
# runs nginx from PATH as the current user with its own config, prefix and
# loopback port, and reports itself skipped where nginx is absent;
# `apt-get install nginx` (then `systemctl disable --now nginx` if the service
# is not wanted) makes it run.

# scripts/sanitize.sh (the last stage of scripts/test.sh) and scripts/fuzz.sh
# also need clang with its sanitizer/libFuzzer runtimes and llvm-symbolizer;
# they ask for them with --sanitizers, so build.sh and demo.sh do without.
if [[ "${1:-}" == "--sanitizers" ]]; then
  PACKAGES+=(clang libclang-rt-14-dev llvm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "damoyolo: installing missing packages: ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
