#!/usr/bin/env bash
# The fresh-machine check: do the README's two commands work for a new user?
#
# A machine we develop on has packages installed by hand, which hides a missing
# install step (CI runs there too). This script builds a clean Debian 12 root
# with debootstrap, copies in a clean clone of the committed HEAD and the
# ../shared folder beside the repository, and runs, inside it (chroot, as
# root, as a user on a new machine would):
#
#   ./scripts/demo.sh    (installs what is missing, builds, detects, shows the result)
#   ./scripts/test.sh    (installs what is missing, builds, runs the whole suite)
#
# and then the Debian package path: scripts/package.sh builds the .deb files,
# apt installs them, and the installed /usr/bin/damoyolo detects on the bundled
# image and runs `video`. It prints each command's exit status and time. Exit
# status 0 only if all pass.
#
#   sudo ./scripts/fresh-root-check.sh            # full check (~25 min on 2 cores)
#   KEEP=1 ./scripts/fresh-root-check.sh          # keep the root for inspection
#   PACKAGE=0 ./scripts/fresh-root-check.sh       # skip the package step (~5 min)
#   ROOT_DIR=/var/tmp/x ./scripts/fresh-root-check.sh
#
# Needs root (debootstrap, chroot, bind mounts) and the network to Debian's
# mirror (and PyPI, which the test command uses). Uncommitted changes are not
# checked: commit first.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$repo/.." && pwd)/shared
root=${ROOT_DIR:-/var/tmp/damoyolo-fresh-root}
logs=$root.logs  # each command's whole output, kept after the root is removed
keep=${KEEP:-0}
package=${PACKAGE:-1}

die() { echo "fresh-root-check: $*" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and chroot need it)"
[[ -d $shared ]] || die "no ../shared beside the repository ($shared)"
if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no) ]]; then
  echo "fresh-root-check: note: uncommitted changes are not part of the check (a clean clone of HEAD is)" >&2
fi

# The host's Debian mirror, so the root gets the same packages a new machine
# of this kind would.
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

if ! command -v debootstrap >/dev/null; then
  echo "fresh-root-check: installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
fi

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  if [[ $keep != 1 ]]; then rm -rf --one-file-system "$root"; else echo "fresh-root-check: root kept in $root"; fi
}
trap cleanup EXIT

rm -rf --one-file-system "$root" "$logs"
mkdir -p "$root" "$logs"
elapsed() { local s=$1; printf '%dm%02ds' $((s / 60)) $((s % 60)); }

t0=$SECONDS
echo "fresh-root-check: debootstrap bookworm (minbase) from $mirror into $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$logs/debootstrap.log" 2>&1 ||
  { tail -20 "$logs/debootstrap.log"; die "debootstrap failed (log: $logs/debootstrap.log)"; }
# The same sources as this machine's Debian 12 (updates and security too), as
# a new machine's image has them.
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
  cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
  rm -f "$root/etc/apt/sources.list"
fi
echo "fresh-root-check: root ready in $(elapsed $((SECONDS - t0)))"

mkdir -p "$root/work"
git clone -q --no-local "$repo" "$root/work/damoyolo"
cp -a "$shared" "$root/work/shared"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The network's own trust, as every machine of this workplace has it: its
# egress proxy signs TLS with a local CA (without it pip cannot reach PyPI),
# and pip's configuration points at that bundle. Part of the machine, not of
# what the project installs.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates" "$root/etc/ssl/certs"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi
[[ -f /etc/pip.conf ]] && cp /etc/pip.conf "$root/etc/pip.conf"
for m in proc sys dev dev/pts; do
  mount --bind "/$m" "$root/$m"
  mounted+=("$root/$m")
done

status=0
run_in_root() {
  local name=$1 cmd=$2 t rc
  echo
  echo "=== $cmd (in the fresh root)"
  t=$SECONDS
  set +e
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TERM=dumb /bin/bash -c "cd /work/damoyolo && $cmd" 2>&1 | tee "$logs/$name.log" | tail -n 40
  rc=${PIPESTATUS[0]}
  set -e
  echo "=== $cmd: exit $rc after $(elapsed $((SECONDS - t))) (whole output: $logs/$name.log)"
  results+=("$cmd: exit $rc, $(elapsed $((SECONDS - t)))")
  [[ $rc -eq 0 ]] || status=1
}
results=()
run_in_root demo "./scripts/demo.sh"
run_in_root test "./scripts/test.sh"
if [[ $package == 1 ]]; then
  # The package installs into the root's /usr; the checkout is not used by it.
  run_in_root package "./scripts/package.sh >/dev/null && apt-get install -y -q ./build-package/*.deb >/dev/null &&
    cd /tmp && ffmpeg -loglevel error -f lavfi -i testsrc=size=160x120:rate=5 -t 1 -y clip.mp4 &&
    /usr/bin/damoyolo detect -m /work/damoyolo/models/damoyolo_demo.onnx --no-draw /work/damoyolo/models/demo.jpg &&
    /usr/bin/damoyolo video -m /work/damoyolo/models/damoyolo_demo.onnx clip.mp4 -o clip_det.mp4"
fi

echo
echo "fresh-root-check: summary (Debian 12 minbase, $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1))"
for r in "${results[@]}"; do echo "  $r"; done
echo "  total $(elapsed $((SECONDS - t0)))"
exit $status
