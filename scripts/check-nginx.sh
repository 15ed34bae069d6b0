#!/usr/bin/env bash
# Runs deploy/nginx/damoyolo.conf for real, on loopback only:
#   1. starts two `damoyolo serve --port 0` replicas of the bundled model;
#   2. renders the nginx template pointing at them (a free port, a temporary
#      prefix for pid file, logs and temp files), checks it with `nginx -t`
#      and runs nginx in the foreground as the current user — no root, and
#      nothing of the system's nginx service (its config, pid file, logs or
#      port 80) is used, so it works whether or not that service runs;
#   3. sends REQUESTS requests each to /v1/detect and /v2/models/{name}/infer
#      (JSON with base64), a few concurrently, plus one multipart request of
#      20 images (1.9 MB: nginx spools it to its temp directory) and one
#      binary-extension request, through nginx; each must be 200 with the
#      detections count a replica gives directly;
#   4. checks that BOTH replicas served requests, from each replica's own
#      /metrics (damoyolo_inference_request_success), that together they
#      counted exactly the requests sent, and that none failed;
#   5. checks nginx's own answers: 413 JSON for a body over --max-body-mb;
#   6. SIGTERMs the replicas (each must drain and exit 0), checks that nginx
#      then answers 503 with Retry-After, SIGTERMs nginx (exit 0).
# Everything it started is stopped and its temporary directory removed on
# every exit path (trap), failures included.
#
# Usage: scripts/check-nginx.sh [path/to/damoyolo]   (default build/bin/damoyolo)
# Environment: REQUESTS (per endpoint, default 8), NGINX (the binary),
#              KEEP_TMP=1 (keep the temporary directory, for its logs).
# Exit status: 0 passed; 1 a check failed; 77 nginx, curl or jq is missing
# (ctest reports that as skipped; scripts/install-deps.sh installs them).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DAMOYOLO=${1:-$ROOT/build/bin/damoyolo}
MODEL=$ROOT/models/damoyolo_demo.onnx
IMAGE=$ROOT/models/demo.jpg
NAME=damoyolo_demo  # the model file's stem: the name in /v2/models/{name}
TEMPLATE=$ROOT/deploy/nginx/damoyolo.conf
REQUESTS=${REQUESTS:-8}
MAX_BODY_MB=2  # replicas' --max-body-mb and nginx's client_max_body_size
HOST=127.0.0.1 # loopback only

say() { echo "check-nginx: $*"; }
fail() {
  echo "check-nginx: FAIL: $*" >&2
  exit 1
}
skip() {
  echo "check-nginx: SKIP: $*" >&2
  exit 77
}

# nginx lives in /usr/sbin, which an unprivileged user's PATH may lack.
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[[ -x $NGINX ]] || skip "nginx is not installed (scripts/install-deps.sh installs Debian's nginx package)"
command -v curl >/dev/null || skip "curl is not installed (scripts/install-deps.sh installs it)"
command -v jq >/dev/null || skip "jq is not installed (scripts/install-deps.sh installs it)"
command -v python3 >/dev/null || skip "python3 is not installed (it picks a free port)"
[[ -x $DAMOYOLO ]] || fail "no damoyolo executable at $DAMOYOLO (build it: ninja -C build damoyolo_cli)"
[[ -f $MODEL && -f $IMAGE ]] || fail "the bundled model or image is missing under $ROOT/models"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/damoyolo-nginx.XXXXXX")
# Started by root, nginx runs its workers as an unprivileged user (nobody),
# which must reach the prefix to spool large bodies to temp/ (nginx makes
# temp/'s subdirectories theirs); mktemp's directory is private (0700).
chmod 755 "$TMP"
PREFIX=$TMP/nginx
REPLICA_PIDS=()
NGINX_PID=""

# Stops whatever is still running (by the pids this script started, nothing
# else), shows the logs when something failed, removes the directory.
cleanup() {
  local rc=$?
  trap - EXIT
  local pid
  for pid in "${REPLICA_PIDS[@]}" $NGINX_PID; do
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${REPLICA_PIDS[@]}" $NGINX_PID; do
    [[ -n $pid ]] || continue
    # A replica drains its queue on SIGTERM; give it a moment, then insist.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if ((rc != 0)); then
    local f
    for f in "$TMP"/replica*.err "$PREFIX"/logs/error.log; do
      [[ -s $f ]] && { echo "--- ${f#"$TMP"/} (last lines)" >&2; tail -n 15 "$f" >&2; }
    done
  fi
  if [[ ${KEEP_TMP:-0} == 1 ]]; then
    say "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
# An interrupted check still runs cleanup (through the EXIT trap).
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. two replicas -----------------------------------------------------------
# One engine thread each: the two share this machine's cores.
start_replica() {
  local i=$1
  "$DAMOYOLO" serve -m "$MODEL" --host "$HOST" --port 0 --threads 1 --max-batch 4 \
    --max-body-mb "$MAX_BODY_MB" >"$TMP/replica$i.out" 2>"$TMP/replica$i.err" &
  REPLICA_PIDS[i]=$!
}
# `damoyolo serve --port 0` prints "listening HOST:PORT" once it accepts;
# wait for it (the model loads first) and put the port in PORTS[i]. Not in a
# $(...) subshell: fail() there would only leave the subshell.
PORTS=()
wait_listening() {
  local i=$1 pid=${REPLICA_PIDS[$1]} line rc
  for _ in $(seq 600); do
    line=$(grep -m1 '^listening ' "$TMP/replica$i.out" 2>/dev/null || true)
    if [[ $line =~ ^listening\ ${HOST//./\\.}:([0-9]+)$ ]]; then
      PORTS[i]=${BASH_REMATCH[1]}
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rc=0
      wait "$pid" || rc=$?
      REPLICA_PIDS[i]=""
      fail "replica $i exited (status $rc) before listening: $(tail -n 3 "$TMP/replica$i.err")"
    fi
    sleep 0.1
  done
  fail "replica $i did not print 'listening $HOST:PORT' within 60 s"
}
start_replica 0
start_replica 1
wait_listening 0
wait_listening 1
say "replicas listening on $HOST:${PORTS[0]} and $HOST:${PORTS[1]}"

# What a replica answers directly: the count every answer through nginx must
# match (the bundled model finds several objects in demo.jpg).
EXPECT=$(curl -sS --fail -H 'Content-Type: image/jpeg' --data-binary "@$IMAGE" \
  "http://$HOST:${PORTS[0]}/v1/detect" | jq '.images[0].detections | length')
[[ $EXPECT =~ ^[0-9]+$ && $EXPECT -gt 0 ]] || fail "a replica found no detections in $IMAGE directly (got '$EXPECT')"
SENT=1 # inference requests the replicas answered, this one included
say "a replica finds $EXPECT detections in $(basename "$IMAGE")"

# --- 2. nginx ------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
render() {
  local listen=$1
  awk -v listen="$listen" -v body="${MAX_BODY_MB}m" -v ports="${PORTS[*]}" -v host="$HOST" '
    /^[ \t]*#/ { print; next }  # comments (the header names the placeholders)
    /^[ \t]*@BACKENDS@[ \t]*$/ {
      indent = $0; sub(/[^ ].*/, "", indent)
      n = split(ports, p, " ")
      for (i = 1; i <= n; ++i) print indent "server " host ":" p[i] " max_fails=1 fail_timeout=10s;"
      next
    }
    { gsub(/@LISTEN@/, listen); gsub(/@MAX_BODY@/, body); print }
  ' "$TEMPLATE" >"$PREFIX/nginx.conf"
  if grep -v '^[[:space:]]*#' "$PREFIX/nginx.conf" | grep '@[A-Z_]*@' >&2; then fail "placeholders left in the rendered config"; fi
}
# The temp paths in the template are relative to the prefix; nginx creates
# their last component, not temp/ itself.
mkdir -p "$PREFIX/logs" "$PREFIX/temp"
NGINX_ARGS=(-p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log")
NPORT=""
# A free port can be taken between picking it and nginx binding it: retry.
for attempt in 1 2 3; do
  port=$(free_port)
  render "$HOST:$port"
  "$NGINX" "${NGINX_ARGS[@]}" -t -q 2>"$TMP/nginx-t.err" || fail "nginx -t rejects the rendered template: $(cat "$TMP/nginx-t.err")"
  "$NGINX" "${NGINX_ARGS[@]}" -g 'daemon off;' 2>>"$TMP/nginx.err" &
  NGINX_PID=$!
  for _ in $(seq 100); do
    if curl -s -o /dev/null "http://$HOST:$port/v2/health/live"; then NPORT=$port; break; fi
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $NPORT ]] && break
  kill -TERM "$NGINX_PID" 2>/dev/null || true
  wait "$NGINX_PID" 2>/dev/null || true
  NGINX_PID=""
  say "nginx did not start on port $port (attempt $attempt): $(tail -n 1 "$PREFIX/logs/error.log" 2>/dev/null)"
done
[[ -n $NPORT ]] || fail "nginx did not start; see the error log above"
NGINX_URL=http://$HOST:$NPORT
say "nginx ($("$NGINX" -v 2>&1 | sed 's/.*: //')) on $NGINX_URL, prefix $PREFIX"

# --- 3. requests through nginx ---------------------------------------------------
# POST FILE to PATH with CONTENT-TYPE (and extra curl arguments); the body
# goes to OUT, the status is printed.
post() {
  local path=$1 file=$2 type=$3 out=$4
  shift 4
  curl -sS -o "$out" -w '%{http_code}' -H "Content-Type: $type" "$@" --data-binary "@$file" "$NGINX_URL$path"
}
check_detect() {  # status body
  [[ $1 == 200 ]] || fail "/v1/detect through nginx: HTTP $1: $(head -c 300 "$2")"
  local n
  n=$(jq '.images[0].detections | length' "$2")
  [[ $n == "$EXPECT" ]] || fail "/v1/detect through nginx: $n detections, expected $EXPECT"
}
check_v2() {  # status body
  [[ $1 == 200 ]] || fail "/v2/models/$NAME/infer through nginx: HTTP $1: $(head -c 300 "$2")"
  local n shape
  n=$(jq '.outputs[] | select(.name == "counts") | .data[0]' "$2")
  shape=$(jq -c '.outputs[] | select(.name == "boxes") | .shape' "$2")
  [[ $n == "$EXPECT" && $shape == "[1,$EXPECT,4]" ]] ||
    fail "/v2 infer through nginx: counts $n, boxes shape $shape; expected $EXPECT and [1,$EXPECT,4]"
}

# The v2 JSON request: one IMAGE element, base64.
printf '{"id":"check-nginx","inputs":[{"name":"IMAGE","datatype":"BYTES","shape":[1],"data":["%s"]}]}' \
  "$(base64 -w0 "$IMAGE")" >"$TMP/v2.json"

for i in $(seq "$REQUESTS"); do
  code=$(post /v1/detect "$IMAGE" image/jpeg "$TMP/detect.json")
  check_detect "$code" "$TMP/detect.json"
  code=$(post "/v2/models/$NAME/infer" "$TMP/v2.json" application/json "$TMP/v2-out.json")
  check_v2 "$code" "$TMP/v2-out.json"
  SENT=$((SENT + 2))
done
say "$REQUESTS sequential requests each to /v1/detect and /v2/models/$NAME/infer: 200, $EXPECT detections"

# Concurrent requests: several in flight at once, as least_conn sees them.
pids=()
for i in $(seq "$REQUESTS"); do
  if ((i % 2)); then
    post /v1/detect "$IMAGE" image/jpeg "$TMP/c$i.json" >"$TMP/c$i.code" &
  else
    post "/v2/models/$NAME/infer" "$TMP/v2.json" application/json "$TMP/c$i.json" >"$TMP/c$i.code" &
  fi
  pids+=($!)
done
for i in $(seq "$REQUESTS"); do
  wait "${pids[i - 1]}" || fail "concurrent request $i: curl failed: $(cat "$TMP/c$i.code")"
  if ((i % 2)); then check_detect "$(cat "$TMP/c$i.code")" "$TMP/c$i.json"; else check_v2 "$(cat "$TMP/c$i.code")" "$TMP/c$i.json"; fi
  SENT=$((SENT + 1))
done
say "$REQUESTS concurrent requests: 200, $EXPECT detections"

# One multipart request with 20 images (one request, 20 answers): 1.9 MB,
# well over the template's 1 MiB client_body_buffer_size, so nginx spools it
# to its temp/ directory first — which must work as whatever user nginx's
# workers run as (under the --max-body-mb of 2 MiB).
MULTI=20
form=()
for i in $(seq "$MULTI"); do form+=(-F "image$i=@$IMAGE;type=image/jpeg"); done
code=$(curl -sS -o "$TMP/multi.json" -w '%{http_code}' "${form[@]}" "$NGINX_URL/v1/detect")
[[ $code == 200 ]] || fail "multipart /v1/detect through nginx: HTTP $code: $(head -c 300 "$TMP/multi.json")"
counts=$(jq -c '[.images[].detections | length] | unique' "$TMP/multi.json")
n=$(jq '.images | length' "$TMP/multi.json")
[[ $n == "$MULTI" && $counts == "[$EXPECT]" ]] ||
  fail "multipart /v1/detect: $n images with detections $counts, expected $MULTI images with $EXPECT each"
SENT=$((SENT + 1))

# One binary-extension request: the JSON header, then the BYTES element as a
# 4-byte little-endian length and the JPEG; Inference-Header-Content-Length
# must reach the replica through nginx. The counts output is asked for as
# JSON, so the answer is plain JSON.
size=$(stat -c %s "$IMAGE")
header=$(printf '{"inputs":[{"name":"IMAGE","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":%d}}],"outputs":[{"name":"counts","parameters":{"binary_data":false}}]}' $((size + 4)))
{
  printf '%s' "$header"
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((size & 255)) $((size >> 8 & 255)) $((size >> 16 & 255)) $((size >> 24 & 255)))"
  cat "$IMAGE"
} >"$TMP/v2.bin"
code=$(post "/v2/models/$NAME/infer" "$TMP/v2.bin" application/octet-stream "$TMP/bin-out.json" \
  -H "Inference-Header-Content-Length: ${#header}")
[[ $code == 200 ]] || fail "binary v2 infer through nginx: HTTP $code: $(head -c 300 "$TMP/bin-out.json")"
n=$(jq '.outputs[] | select(.name == "counts") | .data[0]' "$TMP/bin-out.json")
[[ $n == "$EXPECT" ]] || fail "binary v2 infer through nginx: counts $n, expected $EXPECT"
SENT=$((SENT + 1))
say "multipart ($MULTI images, spooled by nginx) and binary-extension requests: 200, $EXPECT detections each"

# --- 4. both replicas served, none failed ----------------------------------------
metric_sum() {  # port metric-name: the sum of its samples
  curl -sS --fail "http://$HOST:$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }'
}
total=0
for i in 0 1; do
  ok=$(metric_sum "${PORTS[i]}" damoyolo_inference_request_success)
  failed=$(metric_sum "${PORTS[i]}" damoyolo_inference_request_failure)
  say "replica $i: $ok requests succeeded, $failed failed"
  ((ok > 0)) || fail "replica $i served no request: nginx did not spread the load"
  [[ $failed == 0 ]] || fail "replica $i counted $failed failed requests"
  total=$((total + ok))
done
((total == SENT)) || fail "the replicas counted $total successful requests, $SENT were sent"

# --- 5. nginx's own refusals -----------------------------------------------------
# A body over client_max_body_size: 413 with a JSON body, before nginx reads
# it (curl sends "Expect: 100-continue" for a body this large and stops there).
head -c $(((MAX_BODY_MB + 1) * 1024 * 1024)) /dev/zero >"$TMP/big.bin"
code=$(post /v1/detect "$TMP/big.bin" image/jpeg "$TMP/big.json")
[[ $code == 413 ]] || fail "a body over ${MAX_BODY_MB} MiB: HTTP $code, expected 413"
jq -e '.error | type == "string"' "$TMP/big.json" >/dev/null || fail "nginx's 413 body is not {\"error\": ...}: $(head -c 200 "$TMP/big.json")"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$NGINX_URL/metrics")
[[ $code == 404 ]] || fail "/metrics through nginx: HTTP $code, expected 404 (scrape replicas directly)"
say "nginx refuses a too-large body (413, JSON) and /metrics (404)"

# --- 6. graceful shutdown ----------------------------------------------------------
# SIGTERM: each replica stops accepting, answers what it accepted and exits 0.
for i in 0 1; do kill -TERM "${REPLICA_PIDS[i]}"; done
for i in 0 1; do
  pid=${REPLICA_PIDS[i]}
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && fail "replica $i still runs 30 s after SIGTERM"
  rc=0
  wait "$pid" || rc=$?
  REPLICA_PIDS[i]=""
  ((rc == 0)) || fail "replica $i exited $rc after SIGTERM, expected 0"
  grep -q 'stopped;' "$TMP/replica$i.err" || fail "replica $i did not report a clean stop"
done
say "both replicas exited 0 after SIGTERM"

# No replica left: nginx's own 503, with Retry-After, in JSON.
curl -sS -D "$TMP/gone.headers" -o "$TMP/gone.json" -H 'Content-Type: image/jpeg' --data-binary "@$IMAGE" \
  "$NGINX_URL/v1/detect" >/dev/null
status=$(awk 'NR == 1 { print $2 }' "$TMP/gone.headers")
[[ $status == 503 ]] || fail "with the replicas gone nginx answered $status, expected 503"
grep -qi '^Retry-After: 1' "$TMP/gone.headers" || fail "nginx's 503 has no Retry-After header"
jq -e '.error | type == "string"' "$TMP/gone.json" >/dev/null || fail "nginx's 503 body is not {\"error\": ...}"
say "with no replica, nginx answers 503 with Retry-After"

kill -TERM "$NGINX_PID"
rc=0
wait "$NGINX_PID" || rc=$?
NGINX_PID=""
((rc == 0)) || fail "nginx exited $rc after SIGTERM, expected 0"
say "PASS"
