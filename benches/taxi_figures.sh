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
reps=${REPS:-313}
calls=$((32 * reps))
source benches/figures_lib.sh
figures_up taxi --replicas calllist=0
"$bin" siege -c 32 -r "$reps" -b -H "Authorization: Bearer $token" \
  "$gateway/calls POST {\"customerId\": 1, \"destination\": \"junja\", \"cost\": 500}" \
  --threshold 'availability>=100%'

catch_up taxi calllist "$calls"
awk -v s="$started" -v f="$first" -v e="$ended" -v n="$calls" 'BEGIN {
  printf "calllist catch-up over %d CalledTaxi (and %d RegisteredDestinationInfo read): %.1f s from scale-up (%.1f s to the first applied), %.0f events/s applied after the first (%.0f records/s read)\n",
    n, n, e - s, f - s, n / (e - f), 2 * n / (e - f) }'
