#!/usr/bin/env bash
# Layer test: the include roots src/CMakeLists.txt gives each layer let it see
# its own and the lower layers' headers, and nothing above.
#
# For every layer L (compiled with L's own include roots and definitions, as
# CMake wrote them to layers.txt) and every layer M, a one-line file
# `#include "<probe>"` is preprocessed, for one private header of M (the first
# under M's folders) and for each public header M owns. It must succeed when M
# is L or below, and fail with "no such file" when M is above — a failure for
# any other reason is a failure of this test too. Also: no source includes
# with "../", which would step around the include roots.
#
# usage: layers_test.sh SOURCE_DIR LAYERS_TXT CXX_COMPILER
set -uo pipefail

src=$1 manifest=$2 cxx=$3
[[ -f $manifest ]] || { echo "FAIL: $manifest is missing (configure the build first)"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/damoyolo-layers-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1   # quote includes from stdin resolve against here: an empty folder

declare -a layers=()
declare -A folders=() includes=() defines=() probes=()
while read -r kind a b; do
  case $kind in
    layer) layers+=("$a"); folders[$a]=$b ;;
    includes) includes[$a]=$b ;;
    defines) defines[$a]=${b:-} ;;
    public) owner=${a%%:*}; probes[$owner]+=" damoyolo/${a#*:}" ;;
  esac
done <"$manifest"
((${#layers[@]} > 1)) || { echo "FAIL: no layers in $manifest"; exit 1; }

for m in "${layers[@]}"; do
  IFS=, read -ra fs <<<"${folders[$m]}"
  first=$(cd "$src/src" && find "${fs[@]}" -name '*.h' | LC_ALL=C sort | head -n 1)
  [[ -n $first ]] && probes[$m]="$first${probes[$m]:-}"
  [[ -n ${probes[$m]:-} ]] || { echo "FAIL: layer $m has no header to probe"; exit 1; }
done

failures=0 checked=0 refused=0
for ((i = 0; i < ${#layers[@]}; ++i)); do
  l=${layers[i]}
  flags=(-std=c++20 -x c++ -E -o /dev/null)
  IFS='|' read -ra dirs <<<"${includes[$l]}"
  for d in "${dirs[@]}"; do [[ -n $d ]] && flags+=("-I$d"); done
  IFS='|' read -ra defs <<<"${defines[$l]:-}"
  for d in "${defs[@]}"; do [[ -n $d ]] && flags+=("-D$d"); done
  for ((j = 0; j < ${#layers[@]}; ++j)); do
    m=${layers[j]}
    for probe in ${probes[$m]}; do
      out=$(echo "#include \"$probe\"" | "$cxx" "${flags[@]}" - 2>&1)
      rc=$?
      checked=$((checked + 1))
      if ((j <= i)); then
        if ((rc != 0)); then
          echo "FAIL: $l cannot include $probe (layer $m, below or equal):"; echo "$out" | head -n 5
          failures=$((failures + 1))
        fi
      elif ((rc == 0)); then
        echo "FAIL: $l can include $probe (layer $m is above it)"
        failures=$((failures + 1))
      elif ! grep -qiE "no such file|file not found" <<<"$out"; then
        echo "FAIL: including $probe from $l failed, but not for want of the file:"; echo "$out" | head -n 5
        failures=$((failures + 1))
      else
        refused=$((refused + 1))
      fi
    done
  done
done

parent=$(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"\.\./' "$src/src" || true)
if [[ -n $parent ]]; then
  echo "FAIL: includes through \"../\" step around the layer include roots:"; echo "$parent"
  failures=$((failures + 1))
fi

echo "${#layers[@]} layers, $checked includes checked, $refused upward ones refused, $failures failures"
((refused > 0)) || { echo "FAIL: no upward include was tried"; exit 1; }
((failures == 0))
