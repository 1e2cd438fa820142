#!/usr/bin/env bash
# The shop's order latency through the gateway and mypage's catch-up, with
# the services' data in SQLite and in PostgreSQL (a private cluster `up`
# starts), one after the other in the same run: POST /orders at 16
# concurrent users (`stormproof siege`, p50/p99 from its JSON), mypage at 0
# replicas meanwhile, then scaled to 1 and timed until it has applied every
# OrderPlaced and DeliveryStarted.
#
#   REPS=100 benches/store_figures.sh     # 16 × 100 = 1 600 orders per store
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-100}
orders=$((16 * reps))
source benches/figures_lib.sh
for store in sqlite postgres; do
  figures_up shop --store "$store" --replicas mypage=0
  admin=$(curl -sf "$gateway/auth/token" -H 'content-type: application/json' -d '{"username":"admin","password":"stormproof"}' | jq -r .access_token)
  "$bin" siege -c 16 -r "$reps" -b -q -j -H "Authorization: Bearer $admin" \
    "$gateway/orders POST {\"productId\": 1, \"quantity\": 1, \"customerId\": \"bench\", \"customerName\": \"Kim\", \"customerAddr\": \"Seoul\"}" \
    --threshold 'availability>=100%' >"$STORMPROOF_RUN_DIR/siege-$store.json"
  jq -r --arg store "$store" '"\($store): \(.responses) orders, p50 \(.latency_us.p50_us / 1000) ms, p99 \(.latency_us.p99_us / 1000) ms, \(.request_rate) orders/s"' \
    "$STORMPROOF_RUN_DIR/siege-$store.json"
  # Every DeliveryStarted is in the topic before mypage starts reading.
  until [ "$(applied delivery)" -ge "$orders" ]; do sleep 0.2; done
  catch_up shop mypage "$((2 * orders))"
  awk -v st="$store" -v s="$started" -v f="$first" -v e="$ended" -v n="$((2 * orders))" 'BEGIN {
    printf "%s: mypage catch-up over %d events: %.1f s from scale-up (%.1f s to the first), %.0f events/s after the first\n", st, n, e - s, f - s, n / (e - f) }'
  "$bin" down >/dev/null
done
