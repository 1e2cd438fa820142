#!/usr/bin/env bash
# Benchmark: stormproof siege vs wrk vs siege against one neutral target —
# nginx with 1 worker serving a 128-byte file on a free loopback port — at the
# same concurrency for the same duration, in one run. Prints req/s, p50 and
# p99 of each tool and the ratios, then stormproof's peak RSS for a 10 s and a
# 60 s run (flat memory check).
#
# Usage: benches/siege_vs_wrk.sh            (DURATION=10 CONC=50 by default)
#        DURATION=30 CONC=50 SKIP_RSS=1 benches/siege_vs_wrk.sh
# Installs nginx, wrk, siege (and time, python3) with apt-get when missing
# (needs root). Builds stormproof in release mode unless STORMPROOF_BIN is set.
set -euo pipefail

DURATION=${DURATION:-10}
CONC=${CONC:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v siege >/dev/null || missing+=(siege)
[ -x /usr/bin/time ] || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -z "${STORMPROOF_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  STORMPROOF_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/stormproof"
fi

TMP=$(mktemp -d)
NGINX_PID=""
cleanup() {
  if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
mkdir -p "$TMP/www" "$TMP/home"
chmod 755 "$TMP" "$TMP/www"   # nginx workers run unprivileged
head -c 127 /dev/zero | tr '\0' 'x' > "$TMP/www/index.html"; echo >> "$TMP/www/index.html"   # 128 bytes
cat > "$TMP/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path $TMP/body;
  proxy_temp_path $TMP/proxy;
  fastcgi_temp_path $TMP/fastcgi;
  uwsgi_temp_path $TMP/uwsgi;
  scgi_temp_path $TMP/scgi;
  server {
    listen 127.0.0.1:$PORT;
    root $TMP/www;
    location / { }
  }
}
CONF
"$NGINX" -c "$TMP/nginx.conf" -p "$TMP" &
NGINX_PID=$!
URL="http://127.0.0.1:$PORT/index.html"
for _ in $(seq 50); do
  if curl -fs "$URL" >/dev/null 2>&1 || python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1])" "$URL" 2>/dev/null; then break; fi
  sleep 0.1
done

STATUS=$(python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).status)" "$URL" 2>&1 || true)
echo "target: nginx 1 worker, 128-byte file, $URL (GET -> $STATUS); ${CONC} connections, ${DURATION} s each; $(nproc) cores"

# --- wrk ----------------------------------------------------------------
WRK_OUT=$(wrk -t"$(nproc)" -c"$CONC" -d"${DURATION}s" --latency "$URL")
WRK_RPS=$(awk '/^Requests\/sec:/ {print $2}' <<<"$WRK_OUT")
to_ms() { python3 -c '
import sys, re
v = sys.argv[1]
m = re.match(r"([0-9.]+)(us|ms|s|m)$", v)
n, u = float(m.group(1)), m.group(2)
print("%.3f" % (n / 1000 if u == "us" else n if u == "ms" else n * 1000 if u == "s" else n * 60000))' "$1"; }
WRK_P50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$WRK_OUT")")
WRK_P99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$WRK_OUT")")

# --- siege (defaults of Debian's siege, benchmark mode) -------------------
SIEGE_OUT=$(HOME="$TMP/home" siege -b -q -c"$CONC" -t"${DURATION}S" "$URL" 2>&1 || true)
SIEGE_RPS=$(awk -F: '/Transaction rate/ {gsub(/[^0-9.]/,"",$2); print $2} /"transaction_rate"/ {gsub(/[^0-9.]/,"",$2); print $2}' <<<"$SIEGE_OUT" | head -1)
SIEGE_RT=$(awk -F: '/Response time/ {gsub(/[^0-9.]/,"",$2); print $2} /"response_time"/ {gsub(/[^0-9.]/,"",$2); print $2}' <<<"$SIEGE_OUT" | head -1)

# --- stormproof ---------------------------------------------------------
SP_JSON="$TMP/sp.json"
/usr/bin/time -v -o "$TMP/sp.time" "$STORMPROOF_BIN" siege -b -q -j -c"$CONC" -t"${DURATION}S" "$URL" > "$SP_JSON"
read -r SP_RPS SP_P50 SP_P99 SP_FAILED < <(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
print("%.2f %.3f %.3f %d" % (j["request_rate"], j["latency_us"]["p50_us"] / 1000, j["latency_us"]["p99_us"] / 1000, j["failed_transactions"]))' "$SP_JSON")
SP_RSS=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$TMP/sp.time")

ratio() { python3 -c 'import sys; a,b=float(sys.argv[1] or 0),float(sys.argv[2] or 0); print("%.2f" % (a/b) if b else "n/a")' "$1" "$2"; }

printf '\n%-12s %14s %10s %10s\n' tool "req/s" "p50 ms" "p99 ms"
printf '%-12s %14s %10s %10s\n' stormproof "$SP_RPS" "$SP_P50" "$SP_P99"
printf '%-12s %14s %10s %10s\n' wrk "$WRK_RPS" "$WRK_P50" "$WRK_P99"
printf '%-12s %14s %10s %10s   (siege reports no percentiles; mean response time %s s)\n' siege "${SIEGE_RPS:-?}" "-" "-" "${SIEGE_RT:-?}"
echo
echo "stormproof / wrk   = $(ratio "$SP_RPS" "$WRK_RPS")  (goal >= 1.0)"
echo "stormproof / siege = $(ratio "$SP_RPS" "${SIEGE_RPS:-0}")  (goal >= 5)"
echo "stormproof failed transactions: $SP_FAILED; peak RSS of the ${DURATION} s run: ${SP_RSS} KiB"

if [ -z "${SKIP_RSS:-}" ]; then
  for secs in 10 60; do
    /usr/bin/time -v -o "$TMP/rss.$secs" "$STORMPROOF_BIN" siege -b -q -j -c"$CONC" -t"${secs}S" "$URL" > "$TMP/rss.$secs.json"
    RSS=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$TMP/rss.$secs")
    N=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$TMP/rss.$secs.json")
    echo "stormproof peak RSS, ${secs} s run: ${RSS} KiB (${N} requests)"
  done
fi
