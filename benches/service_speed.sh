#!/usr/bin/env bash
# Benchmark: how fast the shop's services answer, in one run with wrk:
#   1. GET /products/1 straight at the product replica      (direct)
#   2. GET /products/1 through the gateway (JWT checked)    (gateway)
#   3. POST /orders through the gateway (order → product    (orders)
#      over the stable address, then the outbox)
# Prints req/s, p50 and p99 of each and the ratios against the goals of
# issue 11 item 7: direct ≥ 20 000 req/s, gateway ≥ 0.8 × direct,
# orders ≥ 2 000/s, all at CONC=32. Exits 1 when a goal is missed.
#
# Usage: benches/service_speed.sh           (DURATION=10 CONC=32 by default)
#        STORMPROOF_BIN=target/release/stormproof DURATION=5 benches/service_speed.sh
# Builds stormproof in release mode unless STORMPROOF_BIN is set. Installs
# wrk with apt-get when missing (needs root). Loopback only; the shop it
# starts is stopped with `stormproof down`.
set -euo pipefail

DURATION=${DURATION:-10}
CONC=${CONC:-32}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v wrk >/dev/null; then
  echo "installing: wrk" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ -z "${STORMPROOF_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  STORMPROOF_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/stormproof"
fi

RUN=$(mktemp -d)
cleanup() {
  STORMPROOF_RUN_DIR="$RUN" "$STORMPROOF_BIN" down >/dev/null 2>&1 || true
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM
export STORMPROOF_RUN_DIR="$RUN"

"$STORMPROOF_BIN" up shop --detach --port 0 >/dev/null
GATEWAY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gateway"])' "$RUN/state.json")
PRODUCT=$("$STORMPROOF_BIN" status --json | python3 -c 'import json,sys; s=[x for x in json.load(sys.stdin) if x["name"]=="product"][0]; print(s["replicas"][0]["address"])')
TOKEN=$(curl -sf -X POST "$GATEWAY/auth/token" -H 'content-type: application/json' \
  -d '{"username":"user1","password":"stormproof"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

cat > "$RUN/order.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"productId": 1, "quantity": 1, "customerId": "bench", "customerName": "Kim", "customerAddr": "Seoul"}'
LUA

# run NAME URL [wrk args…] → "req/s p50_ms p99_ms non2xx"
run() {
  local name=$1 url=$2; shift 2
  local out="$RUN/$name.txt"
  wrk -t1 -c"$CONC" -d"${DURATION}s" --latency "$@" "$url" > "$out"
  python3 - "$out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\b" % label, text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
errors = re.search(r"Socket errors:.*", text)
print(f"{rps:.0f} {ms('50'):.2f} {ms('99'):.2f} {bad.group(1) if bad else 0} {'errors' if errors else 'ok'}")
PY
}

# Warm every path (connections, prepared statements, the breaker closed).
wrk -t1 -c"$CONC" -d2s "http://$PRODUCT/products/1" >/dev/null
wrk -t1 -c"$CONC" -d2s -H "Authorization: Bearer $TOKEN" "$GATEWAY/products/1" >/dev/null
wrk -t1 -c"$CONC" -d2s -H "Authorization: Bearer $TOKEN" -s "$RUN/order.lua" "$GATEWAY/orders" >/dev/null

read -r D_RPS D_P50 D_P99 D_BAD D_ERR <<<"$(run direct "http://$PRODUCT/products/1")"
read -r G_RPS G_P50 G_P99 G_BAD G_ERR <<<"$(run gateway "$GATEWAY/products/1" -H "Authorization: Bearer $TOKEN")"
read -r O_RPS O_P50 O_P99 O_BAD O_ERR <<<"$(run orders "$GATEWAY/orders" -H "Authorization: Bearer $TOKEN" -s "$RUN/order.lua")"
RATIO=$(python3 -c "print(f'{$G_RPS / $D_RPS:.2f}')")

echo "service speed — release build, wrk -t1 -c$CONC -d${DURATION}s, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
printf '  %-38s %9s %9s %9s %8s\n' "path" "req/s" "p50 ms" "p99 ms" "non-2xx"
printf '  %-38s %9s %9s %9s %8s\n' "GET /products/1 direct at product" "$D_RPS" "$D_P50" "$D_P99" "$D_BAD"
printf '  %-38s %9s %9s %9s %8s\n' "GET /products/1 through the gateway" "$G_RPS" "$G_P50" "$G_P99" "$G_BAD"
printf '  %-38s %9s %9s %9s %8s\n' "POST /orders through the gateway" "$O_RPS" "$O_P50" "$O_P99" "$O_BAD"
echo "  gateway / direct = $RATIO"

failed=0
goal() { if python3 -c "import sys; sys.exit(0 if $2 else 1)"; then echo "  goal met:    $1"; else echo "  goal MISSED: $1"; failed=1; fi; }
goal "direct ≥ 20000 req/s ($D_RPS)" "$D_RPS >= 20000"
goal "gateway ≥ 0.8 × direct ($RATIO)" "$G_RPS >= 0.8 * $D_RPS"
goal "orders ≥ 2000/s ($O_RPS)" "$O_RPS >= 2000"
goal "every answer 2xx" "$D_BAD + $G_BAD + $O_BAD == 0 and '$D_ERR$G_ERR$O_ERR' == 'okokok'"
exit $failed
