#!/usr/bin/env bash
# Where the link proxies' cost lands: the CPU each of the shop's processes
# spends per order, links on and `--links off`, in one run. Both shops are
# up at once; each gets a 3 s warm-up, then 10 s of `stormproof siege -b
# -c16` POST /orders through the gateway, and every process's utime+stime
# (/proc/PID/stat) is read before it and 6 s after it (the consumers'
# catch-up included). Prints µs of CPU per order for each process.
#
# Usage: STORMPROOF_BIN=target/release/stormproof benches/link_cpu.sh
# Loopback only; both shops are stopped on exit.
set -euo pipefail

source "$(dirname "$0")/links_lib.sh"

# NAME:PID of `up` and each process it started (the broker, the replicas).
processes() {
  local up
  up=$(jq -r .pid "$1/state.json")
  echo "up:$up"
  for pid in $(pgrep -P "$up"); do
    name=$(tr '\0' ' ' <"/proc/$pid/cmdline" | awk '{for (i = 1; i <= NF; i++) if ($i == "serve") { print $(i + 1); exit } else if ($i == "broker") { print "broker"; exit }}')
    echo "${name:-pid$pid}:$pid"
  done
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure DIR GATEWAY LABEL
measure() {
  local dir=$1 gateway=$2 token out orders total=0
  token=$(token "$gateway")
  "$STORMPROOF_BIN" siege -b -q -j -c16 -t3S -H "Authorization: Bearer $token" -T application/json "$gateway/orders" POST "$ORDER" >/dev/null
  sleep 8
  declare -A before
  for entry in $(processes "$dir"); do before[$entry]=$(ticks "${entry#*:}"); done
  out=$("$STORMPROOF_BIN" siege -b -q -j -c16 -t10S -H "Authorization: Bearer $token" -T application/json "$gateway/orders" POST "$ORDER")
  sleep 6
  orders=$(jq .transactions <<<"$out")
  echo "links $3: $orders orders, $(jq .request_rate <<<"$out") req/s; CPU per order:"
  for entry in $(processes "$dir"); do
    [ -n "${before[$entry]:-}" ] || continue
    spent=$(( $(ticks "${entry#*:}") - ${before[$entry]} ))
    total=$((total + spent))
    awk -v n="${entry%:*}" -v t="$spent" -v o="$orders" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "  %-18s %8.1f µs\n", n, t * 1e6 / hz / o }'
  done
  awk -v t="$total" -v o="$orders" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "  %-18s %8.1f µs\n", "all", t * 1e6 / hz / o }'
}

measure "$ON" "$ON_GATEWAY" on
measure "$OFF" "$OFF_GATEWAY" off
