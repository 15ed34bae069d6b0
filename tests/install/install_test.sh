#!/usr/bin/env bash
# Install test: what a user gets from `cmake --install` must work away from
# the build tree.
#   1. the build tree installs into a fresh prefix (binaries, libdamoyolo.a,
#      headers, CMake package);
#   2. examples/find_package configures and builds against that prefix with
#      find_package(damoyolo) alone, and detects objects on the demo image;
#   3. the installed `damoyolo video` reaches the installed damoyolo-video;
#   4. a copy of damoyolo on its own finds damoyolo-video through PATH, and
#      without it fails with a message naming damoyolo-video and where it
#      looked (it used to say only "cannot run .../damoyolo-video").
#
# usage: install_test.sh SOURCE_DIR BINARY_DIR CMAKE_COMMAND GENERATOR CXX_COMPILER
# (tests/CMakeLists.txt passes the build's own values).
set -euo pipefail

src=$1 build=$2 cmake=$3 generator=$4 cxx=$5

tmp=$(mktemp -d "${TMPDIR:-/tmp}/damoyolo-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

step "cmake --install into $tmp/prefix"
"$cmake" --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install failed"; }
prefix=$tmp/prefix
mkdir "$tmp/alone" "$tmp/empty"   # a directory for a lone copy; an empty PATH
for f in bin/damoyolo bin/damoyolo-video include/damoyolo/detector.h; do
  [[ -e $prefix/$f ]] || fail "$f was not installed"
done
# GNUInstallDirs may pick lib/ or lib/<multiarch>/; accept either.
lib=$(find "$prefix" -name libdamoyolo.a -print -quit)
[[ -n $lib ]] || fail "libdamoyolo.a was not installed"
config=$(find "$prefix" -name damoyoloConfig.cmake -print -quit)
[[ -n $config ]] || fail "damoyoloConfig.cmake was not installed"

step "examples/find_package against the prefix"
# System paths are still searched, but CMAKE_PREFIX_PATH comes first, so a
# damoyolo installed system-wide (the .deb) does not shadow the test prefix;
# the check below makes sure.
CXX=$cxx "$cmake" -S "$src/examples/find_package" -B "$tmp/example" -G "$generator" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log"; fail "configuring examples/find_package failed"; }
found=$(sed -n 's/^damoyolo_DIR:PATH=//p' "$tmp/example/CMakeCache.txt")
[[ $found == "$prefix"/* ]] || fail "find_package found damoyolo in '$found', not in the test prefix"
"$cmake" --build "$tmp/example" >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log"; fail "building examples/find_package failed"; }

out=$("$tmp/example/find_package_example" "$src/models/damoyolo_demo.onnx" "$src/models/demo.jpg" \
  "$src/models/damoyolo_demo.labels.txt") || fail "find_package_example failed: $out"
echo "$out"
count=$(grep -c '^  [a-z_A-Z]' <<<"$out" || true)
((count > 0)) || fail "find_package_example printed no detections"
# models/demo.json: the demo image holds glyph_Z and square objects, among others.
grep -q '^  glyph_Z ' <<<"$out" || fail "no glyph_Z among the detections"
grep -q '^  square ' <<<"$out" || fail "no square among the detections"

step "installed damoyolo video --help reaches the installed damoyolo-video"
# An empty PATH: the sibling must be found beside the executable, not by search.
out=$(PATH=$tmp/empty "$prefix/bin/damoyolo" video --help 2>&1) || fail "damoyolo video --help failed: $out"
# This line is damoyolo-video's own (main's help only lists the command).
grep -q 'or - (stdin); each is one stream' <<<"$out" || fail "unexpected video help: $out"

step "a copied damoyolo finds damoyolo-video in PATH"
cp "$build/bin/damoyolo" "$tmp/alone/damoyolo"
out=$(PATH=$prefix/bin "$tmp/alone/damoyolo" video --help 2>&1) || fail "copied damoyolo, PATH: $out"
grep -q 'or - (stdin); each is one stream' <<<"$out" || fail "unexpected video help: $out"

step "a copied damoyolo without damoyolo-video anywhere says so"
set +e
out=$(PATH=$tmp/empty "$tmp/alone/damoyolo" video --help 2>&1)
rc=$?
set -e
echo "$out"
((rc != 0)) || fail "copied damoyolo video succeeded without damoyolo-video"
grep -q 'damoyolo-video' <<<"$out" || fail "the message does not name damoyolo-video"
grep -q "$tmp/alone" <<<"$out" || fail "the message does not say where it looked"
grep -q 'PATH' <<<"$out" || fail "the message does not mention PATH"
grep -qi 'install' <<<"$out" || fail "the message does not say how to install damoyolo-video"

echo "install test passed"
