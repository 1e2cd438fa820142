#!/usr/bin/env bash
# Benchmark: stormproof siege vs wrk vs siege against one neutral target —
# nginx with 1 worker serving a 128-byte file on a free loopback port — at the
# same concurrency for the same duration, in one run. Prints req/s, p50 and
# p99 of each tool, how busy nginx's worker was (near 100 %: the target is the
# limit), and the ratios, then stormproof's peak RSS for a 10 s and a 60 s run
# (flat memory check).
#
# Usage: benches/siege_vs_wrk.sh            (DURATION=10 CONC=50 ROUNDS=3 by default)
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

to_ms() { python3 -c '
import sys, re
m = re.match(r"([0-9.]+)(us|ms|s|m)$", sys.argv[1])
n, u = float(m.group(1)), m.group(2)
print("%.3f" % (n / 1000 if u == "us" else n if u == "ms" else n * 1000 if u == "s" else n * 60000))' "$1"; }

# Each prints "req/s p50_ms p99_ms".
cpu_us_per_req() {  # $1: /usr/bin/time -f "%U %S" output, $2: requests
  python3 -c 'import sys; u, s = map(float, open(sys.argv[1]).read().split()[-2:]); n = float(sys.argv[2] or 0); print("%.2f" % ((u + s) * 1e6 / n) if n else "-")' "$1" "$2"
}

# Each prints "req/s p50_ms p99_ms cpu_us_per_request".
run_wrk() {
  local out; out=$(/usr/bin/time -f "%U %S" -o "$TMP/wrk.cpu" wrk -t"$(nproc)" -c"$CONC" -d"${DURATION}s" --latency "$URL")
  local n; n=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out") $(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")") $(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")") $(cpu_us_per_req "$TMP/wrk.cpu" "$n")"
}
run_siege() {   # Debian's siege with its default configuration, benchmark mode
  local out; out=$(HOME="$TMP/home" /usr/bin/time -f "%U %S" -o "$TMP/siege.cpu" siege -b -q -c"$CONC" -t"${DURATION}S" "$URL" 2>&1 || true)
  local rps; rps=$(awk -F: '/Transaction rate/ {gsub(/[^0-9.]/,"",$2); print $2} /"transaction_rate"/ {gsub(/[^0-9.]/,"",$2); print $2}' <<<"$out" | head -1)
  local n; n=$(awk -F: '/^Transactions/ {gsub(/[^0-9]/,"",$2); print $2} /"transactions"/ {gsub(/[^0-9]/,"",$2); print $2}' <<<"$out" | head -1)
  echo "${rps:-0} - - $(cpu_us_per_req "$TMP/siege.cpu" "${n:-0}")"
}
run_stormproof() {
  /usr/bin/time -v -o "$TMP/sp.time" "$STORMPROOF_BIN" siege -b -q -j -c"$CONC" -t"${DURATION}S" "$URL" > "$TMP/sp.json"
  python3 -c '
import json, re, sys
j = json.load(open(sys.argv[1]))
assert j["failed_transactions"] == 0, "stormproof saw failures: %r" % j["failures"]
t = open(sys.argv[2]).read()
cpu = sum(float(re.search(k + r": ([0-9.]+)", t).group(1)) for k in ("User time \\(seconds\\)", "System time \\(seconds\\)"))
print("%.2f %.3f %.3f %.2f" % (j["request_rate"], j["latency_us"]["p50_us"] / 1000, j["latency_us"]["p99_us"] / 1000, cpu * 1e6 / j["requests"]))' "$TMP/sp.json" "$TMP/sp.time"
}

# How busy the target was: nginx's one worker's CPU time (utime + stime
# from /proc) over the run's wall time. Near 100 % the target, not the
# client, limits req/s: any client that saturates it gets the same rate.
nginx_ticks() {
  local w; w=$(pgrep -P "$NGINX_PID" | head -1)
  awk '{print $14 + $15}' "/proc/$w/stat"
}
busy_run() {  # $1: tool; prints its figures plus nginx's busy %
  local t0 w0 figures
  t0=$(date +%s.%N); w0=$(nginx_ticks)
  figures=$(run_"$1")
  python3 -c 'import os, sys, time; t0, w0, w1 = map(float, sys.argv[1:4]); print("%s %.0f" % (sys.argv[4], 100 * (w1 - w0) / os.sysconf("SC_CLK_TCK") / (time.time() - t0)))' \
    "$t0" "$w0" "$(nginx_ticks)" "$figures"
}

# The tools take turns, ROUNDS times, so a busy machine hurts them alike;
# each figure below is the median over the rounds.
ROUNDS=${ROUNDS:-3}
: > "$TMP/results"
for round in $(seq "$ROUNDS"); do
  for tool in stormproof wrk siege; do
    echo "$tool $(busy_run $tool)" | tee -a "$TMP/results" | sed "s/^/round $round: /" >&2
  done
done
SP_RSS=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$TMP/sp.time")

python3 - "$TMP/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    tool, *vals = line.split()
    rows.setdefault(tool, []).append(vals)
def med(tool, i):
    xs = [float(v[i]) for v in rows.get(tool, []) if v[i] not in ("-", "")]
    return statistics.median(xs) if xs else None
fmt = lambda x: "-" if x is None else ("%.3f" % x if x < 1000 else "%.0f" % x)
print("\n%-12s %12s %10s %10s %16s %12s" % ("tool", "req/s", "p50 ms", "p99 ms", "CPU us/request", "nginx busy"))
for t in ("stormproof", "wrk", "siege"):
    print("%-12s %12s %10s %10s %16s %11s%%" % (t, fmt(med(t, 0)), fmt(med(t, 1)), fmt(med(t, 2)), fmt(med(t, 3)), "-" if med(t, 4) is None else "%.0f" % med(t, 4)))
sp, wrk, siege = med("stormproof", 0), med("wrk", 0), med("siege", 0)
print("\nstormproof / wrk   = %.2f  (goal >= 1.2)" % (sp / wrk))
print("stormproof / siege = %.2f  (goal >= 5)" % (sp / siege) if siege else "siege: no figure")
print("(siege prints no percentiles)")
PY
echo "stormproof peak RSS of its last ${DURATION} s run: ${SP_RSS} KiB"

if [ -z "${SKIP_RSS:-}" ]; then
  for secs in 10 60; do
    /usr/bin/time -v -o "$TMP/rss.$secs" "$STORMPROOF_BIN" siege -b -q -j -c"$CONC" -t"${secs}S" "$URL" > "$TMP/rss.$secs.json"
    RSS=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$TMP/rss.$secs")
    N=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$TMP/rss.$secs.json")
    echo "stormproof peak RSS, ${secs} s run: ${RSS} KiB (${N} requests)"
  done
fi

# DISTRIBUTED=1: the overhead of distribution — the same run in-process,
# as --distributed 1 (one worker process, the coordinator's HTTP endpoint,
# the report and the merge) and as --distributed 2, interleaved, medians.
if [ -n "${DISTRIBUTED:-}" ]; then
  : > "$TMP/dist"
  for round in $(seq "$ROUNDS"); do
    for mode in in-process 1 2; do
      args=()
      [ "$mode" != in-process ] && args=(--distributed "$mode")
      /usr/bin/time -f "%U %S" -o "$TMP/d.cpu" "$STORMPROOF_BIN" siege -b -q -j -c"$CONC" -t"${DURATION}S" "${args[@]}" "$URL" > "$TMP/d.json"
      python3 -c '
import json, sys
j = json.load(open(sys.argv[1])); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
print("%s %.2f %.3f %.3f %.2f" % (sys.argv[3], j["request_rate"], j["latency_us"]["p50_us"] / 1000, j["latency_us"]["p99_us"] / 1000, (u + s) * 1e6 / j["requests"]))' \
        "$TMP/d.json" "$TMP/d.cpu" "$mode" | tee -a "$TMP/dist" | sed "s/^/round $round: /" >&2
    done
  done
  python3 - "$TMP/dist" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    mode, *vals = line.split()
    rows.setdefault(mode, []).append([float(v) for v in vals])
med = lambda m, i: statistics.median(r[i] for r in rows[m])
print("\n%-16s %12s %10s %10s %16s" % ("stormproof", "req/s", "p50 ms", "p99 ms", "CPU us/request"))
for m in ("in-process", "1", "2"):
    print("%-16s %12.0f %10.3f %10.3f %16.2f" % (m if m == "in-process" else "--distributed " + m, med(m, 0), med(m, 1), med(m, 2), med(m, 3)))
print("\n--distributed 1 / in-process = %.3f" % (med("1", 0) / med("in-process", 0)))
PY
fi
