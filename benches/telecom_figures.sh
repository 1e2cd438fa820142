#!/usr/bin/env bash
# Figures of the telecom on the local platform (issue 16's closing note):
# subscriptions/s through the gateway at 32 concurrent users (POST
# /orders), and mypage's catch-up over a backlog of those subscriptions'
# OrderPlaced events (each an ORDER row; the BillCreated bill answers each
# with, as many, are read and ignored). mypage is at 0 replicas while they
# are taken and bill has billed them all, then scaled to 1; timed until it
# has applied every OrderPlaced and shows one ORDER row per subscription.
# First, on the fresh system, the seed's own zero-downtime line, unchanged
# but for the gateway's address and token — `siege -c1 -t60S -v URL/orders
# --delay=1S` — through a rolling update of order to v2 started 5 s in.
#
#   REPS=313 benches/telecom_figures.sh    # 32 × 313 = 10 016 subscriptions
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-313}
orders=$((32 * reps))
source benches/figures_lib.sh
figures_up telecom --replicas mypage=0
auth="Authorization: Bearer $token"
siege_out="$STORMPROOF_RUN_DIR/seed-siege.txt"
"$bin" siege -c1 -t60S -v "$gateway/orders" --delay=1S -H "$auth" > "$siege_out" &
siege_pid=$!
sleep 5
"$bin" rollout telecom.order --to v2 >/dev/null
echo "order rolled to v2 (5 s into the seed's siege line)"
wait "$siege_pid" || true
grep -E "^(Transactions|Availability|Failed transactions)" "$siege_out"
echo "non-2xx lines: $(grep -c -v '^HTTP/1.1 2' <(grep -E '^(HTTP|\[error\])' "$siege_out") || true)"
grep -qE "^Availability:[[:space:]]+100.00 %" "$siege_out"

"$bin" siege -c 32 -r "$reps" -b -H "$auth" \
  "$gateway/orders POST {\"userName\": \"backlog\", \"phoneNumber\": \"010-0000-0099\", \"monthlyFee\": 50000}" \
  --threshold 'availability>=100%'

# Rows of a list endpoint (0 while it cannot answer).
rows() { curl -sf -H "$auth" "$gateway$1" | jq length 2>/dev/null || echo 0; }
until [ "$(rows '/bills?userName=backlog')" -ge "$orders" ]; do sleep 0.5; done
echo "bill has billed all $orders subscriptions: $((2 * orders)) records wait for mypage"
catch_up telecom mypage "$orders"
shown=$(rows '/myPages?userName=backlog&workType=ORDER')
awk -v s="$started" -v f="$first" -v e="$ended" -v o="$orders" -v r="$shown" 'BEGIN {
  printf "mypage catch-up over %d OrderPlaced (and %d BillCreated read): %.1f s from scale-up (%.1f s to the first applied), %.0f events/s applied after the first (%.0f records/s read); ORDER rows %d of %d\n",
    o, o, e - s, f - s, o / (e - f), 2 * o / (e - f), r, o }'
[ "$shown" -eq "$orders" ]

