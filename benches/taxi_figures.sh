#!/usr/bin/env bash
# Figures of the taxi on the local platform (issue 14's closing note):
# calls/s through the gateway at 32 concurrent users (POST /calls, each
# registering its fare with payment synchronously), and calllist's catch-up
# over a backlog of the CalledTaxi events of those calls (their
# RegisteredDestinationInfo, as many, are read and ignored). calllist is at
# 0 replicas while the calls are taken, then scaled to 1.
#
#   REPS=313 benches/taxi_figures.sh    # 32 × 313 = 10 016 calls
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STORMPROOF_BIN:-${CARGO_TARGET_DIR:-target}/debug/stormproof}
bin=$(realpath "$bin")
reps=${REPS:-313}
calls=$((32 * reps))
STORMPROOF_RUN_DIR=$(mktemp -d)
export STORMPROOF_RUN_DIR
trap '"$bin" down >/dev/null 2>&1 || true; rm -rf "$STORMPROOF_RUN_DIR"' EXIT
"$bin" up taxi --detach --port 0 --replicas calllist=0 >/dev/null
gateway=$(jq -r .gateway "$STORMPROOF_RUN_DIR/state.json")
token=$(curl -sf "$gateway/auth/token" -H 'content-type: application/json' -d '{"username":"user1","password":"stormproof"}' | jq -r .access_token)
"$bin" siege -c 32 -r "$reps" -b -H "Authorization: Bearer $token" \
  "$gateway/calls POST {\"customerId\": 1, \"destination\": \"junja\", \"cost\": 500}" \
  --threshold 'availability>=100%'

# Events calllist applied, summed over its replicas' /metrics.
applied() {
  local sum=0 address
  for address in $("$bin" status --json | jq -r '.[] | select(.name == "calllist") | .replicas[].address // empty'); do
    n=$(curl -sf "http://$address/metrics" | awk '/^stormproof_events_consumed_total/ { s += $NF } END { printf "%d", s }') || n=0
    sum=$((sum + n))
  done
  echo "$sum"
}
started=$(date +%s.%N)
"$bin" scale taxi.calllist 1 >/dev/null
first=""
while :; do
  now=$(applied)
  if [ -z "$first" ] && [ "$now" -gt 0 ]; then first=$(date +%s.%N); fi
  [ "$now" -ge "$calls" ] && break
  sleep 0.1
done
ended=$(date +%s.%N)
awk -v s="$started" -v f="$first" -v e="$ended" -v n="$calls" 'BEGIN {
  printf "calllist catch-up over %d CalledTaxi (and %d RegisteredDestinationInfo read): %.1f s from scale-up (%.1f s to the first applied), %.0f events/s applied after the first (%.0f records/s read)\n",
    n, n, e - s, f - s, n / (e - f), 2 * n / (e - f) }'
