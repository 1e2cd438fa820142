#!/usr/bin/env bash
# Benchmark: what the link proxies cost with no fault set (issue 18, "at
# most 5 % of order throughput through the gateway"). In one run it starts
# the shop twice — `up shop` (every link through its proxy: gateway →
# order, order → product, each service → the broker) and `up shop --links
# off` (direct) — and alternates the same load on each, ROUNDS times:
# `stormproof siege -b` POST /orders through the gateway at CONC clients
# for DURATION seconds. Prints req/s and p99 of every run, the medians,
# and on / off. Exits 1 when the proxies cost more than 5 %.
#
# One round of each is not enough here: run to run, either side moves by
# more than 5 %, so the medians of many short alternated rounds are what
# to compare (the spread is printed with them).
#
# Usage: benches/link_overhead.sh            (DURATION=20 CONC=16 ROUNDS=2)
#        STORMPROOF_BIN=target/release/stormproof DURATION=30 benches/link_overhead.sh
# Uses the debug build in $CARGO_TARGET_DIR (or target/) unless
# STORMPROOF_BIN is set. Loopback only; both shops are stopped on exit.
set -euo pipefail

DURATION=${DURATION:-20}
CONC=${CONC:-16}
ROUNDS=${ROUNDS:-2}
source "$(dirname "$0")/links_lib.sh"
ON_TOKEN=$(token "$ON_GATEWAY")
OFF_TOKEN=$(token "$OFF_GATEWAY")

# load GATEWAY TOKEN SECONDS → "req/s p99_ms failed"
load() {
  "$STORMPROOF_BIN" siege -b -q -j -c"$CONC" -t"$3S" -H "Authorization: Bearer $2" -T application/json "$1/orders" POST "$ORDER" |
    jq -r '"\(.request_rate) \(.latency_us.p99_us / 1000) \(.failed_transactions)"'
}

# Waits (at most 90 s) until the machine is back to idle: a run's orders
# leave delivery and mypage consuming behind it, and that catch-up must not
# land on the next run (of either shop). Idle is the two shops at rest
# (about 18 % of 2 cores measured: consumers' polls, probes), so it is under
# 30 % busy.
settle() {
  for _ in $(seq 1 90); do
    read -r _ u1 n1 s1 i1 w1 _ < /proc/stat
    sleep 1
    read -r _ u2 n2 s2 i2 w2 _ < /proc/stat
    busy=$(( (u2 + n2 + s2) - (u1 + n1 + s1) ))
    idle=$(( (i2 + w2) - (i1 + w1) ))
    [ $((busy * 100)) -lt $(( (busy + idle) * 30 )) ] && return 0
  done
  echo "  (the machine stayed over 30 % busy for 90 s; running anyway)" >&2
}

# Warm both (connections, prepared statements, the breaker closed).
load "$ON_GATEWAY" "$ON_TOKEN" 3 >/dev/null
load "$OFF_GATEWAY" "$OFF_TOKEN" 3 >/dev/null

echo "link overhead — $(basename "$(dirname "$(dirname "$STORMPROOF_BIN")")")/$(basename "$(dirname "$STORMPROOF_BIN")") build, stormproof siege -b -c$CONC -t${DURATION}S POST /orders through the gateway, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
printf '  %-6s %-6s %10s %9s %7s\n' round links "req/s" "p99 ms" failed
results=()
for round in $(seq 1 "$ROUNDS"); do
  # Alternate which goes first, so a drift of the machine hits both alike.
  if [ $((round % 2)) -eq 1 ]; then order="on off"; else order="off on"; fi
  for which in $order; do
    settle
    if [ "$which" = on ]; then figures=$(load "$ON_GATEWAY" "$ON_TOKEN" "$DURATION"); else figures=$(load "$OFF_GATEWAY" "$OFF_TOKEN" "$DURATION"); fi
    read -r rps p99 failed <<<"$figures"
    printf '  %-6s %-6s %10.1f %9.2f %7s\n' "$round" "$which" "$rps" "$p99" "$failed"
    results+=("$which $rps $p99 $failed")
  done
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
runs = [line.split() for line in sys.stdin if line.strip()]
def med(which, i):
    return statistics.median(float(r[i]) for r in runs if r[0] == which)
on, off = med("on", 1), med("off", 1)
p99_on, p99_off = med("on", 2), med("off", 2)
failed = sum(int(float(r[3])) for r in runs)
print("  median: links on %.1f req/s (p99 %.2f ms), links off %.1f req/s (p99 %.2f ms)" % (on, p99_on, off, p99_off))
# The spread says how far one run can be trusted: on a busy 2-core machine
# `off` alone moves by more than the 5 % the goal allows.
for which in ("on", "off"):
    rates = [float(r[1]) for r in runs if r[0] == which]
    print("  spread: links %-3s %.1f to %.1f req/s over %d runs (%.0f %% of the median)" % (which, min(rates), max(rates), len(rates), 100 * (max(rates) - min(rates)) / med(which, 1)))
print("  on / off = %.3f throughput, %.2f p99; failed transactions: %d" % (on / off, p99_on / p99_off, failed))
ok = on >= 0.95 * off and failed == 0
print("  goal %s: links cost at most 5 %% of order throughput (%.1f %%)" % ("met" if ok else "MISSED", 100 * (1 - on / off)))
sys.exit(0 if ok else 1)'
