#!/usr/bin/env bash
# Benchmark: how fast the shop's services answer, in one run with wrk:
#   1. GET /products/1 straight at the product replica      (direct)
#   2. GET /products/1 through the gateway (JWT checked)    (gateway)
#   3. GET /products/1 through nginx as a reverse proxy     (nginx)
#      (keep-alive upstream, no auth): what the hop costs any
#      proxy on this machine, the reference the gateway is held to
#   4. POST /orders through the gateway (order → product    (orders)
#      over the stable address, then the outbox)
# Prints req/s, p50 and p99 of each and the ratios against the goals of
# issue 11 item 7: direct ≥ 20 000 req/s, gateway ≥ 0.8 × direct,
# orders ≥ 2 000/s, all at CONC=32. Exits 1 when a goal is missed.
# wrk, the proxy and product share the machine's cores, so the hop's CPU
# comes out of the same budget; nginx / direct says how much of the
# gateway's ratio is the hop itself.
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

for tool in wrk nginx; do
  if ! command -v $tool >/dev/null; then
    echo "installing: $tool" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $tool >/dev/null
  fi
done
if [ -z "${STORMPROOF_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  STORMPROOF_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/stormproof"
fi

RUN=$(mktemp -d)
cleanup() {
  if [ -f "$RUN/nginx.pid" ]; then kill "$(cat "$RUN/nginx.pid")" 2>/dev/null || true; fi
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
wrk.body = '{"productId": 1, "quantity": 1, "customerId": "user1", "customerName": "Kim", "customerAddr": "Seoul"}'
LUA

# nginx in front of the same product replica, on a free loopback port.
NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$RUN/nginx"
cat > "$RUN/nginx.conf" <<CONF
worker_processes auto;
daemon on;
pid $RUN/nginx.pid;
error_log $RUN/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $RUN/nginx/body;
  proxy_temp_path $RUN/nginx/proxy;
  fastcgi_temp_path $RUN/nginx/fastcgi;
  uwsgi_temp_path $RUN/nginx/uwsgi;
  scgi_temp_path $RUN/nginx/scgi;
  upstream product { server $PRODUCT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { proxy_pass http://product; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -p "$RUN/nginx" -e "$RUN/nginx/error.log" -c "$RUN/nginx.conf"

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
wrk -t1 -c"$CONC" -d2s "http://127.0.0.1:$NGINX_PORT/products/1" >/dev/null
wrk -t1 -c"$CONC" -d2s -H "Authorization: Bearer $TOKEN" -s "$RUN/order.lua" "$GATEWAY/orders" >/dev/null

read -r D_RPS D_P50 D_P99 D_BAD D_ERR <<<"$(run direct "http://$PRODUCT/products/1")"
read -r G_RPS G_P50 G_P99 G_BAD G_ERR <<<"$(run gateway "$GATEWAY/products/1" -H "Authorization: Bearer $TOKEN")"
read -r N_RPS N_P50 N_P99 N_BAD N_ERR <<<"$(run nginx "http://127.0.0.1:$NGINX_PORT/products/1")"
read -r O_RPS O_P50 O_P99 O_BAD O_ERR <<<"$(run orders "$GATEWAY/orders" -H "Authorization: Bearer $TOKEN" -s "$RUN/order.lua")"
RATIO=$(python3 -c "print(f'{$G_RPS / $D_RPS:.2f}')")
N_RATIO=$(python3 -c "print(f'{$N_RPS / $D_RPS:.2f}')")
G_N_RATIO=$(python3 -c "print(f'{$G_RPS / $N_RPS:.2f}')")

echo "service speed — release build, wrk -t1 -c$CONC -d${DURATION}s, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
printf '  %-38s %9s %9s %9s %8s\n' "path" "req/s" "p50 ms" "p99 ms" "non-2xx"
printf '  %-38s %9s %9s %9s %8s\n' "GET /products/1 direct at product" "$D_RPS" "$D_P50" "$D_P99" "$D_BAD"
printf '  %-38s %9s %9s %9s %8s\n' "GET /products/1 through the gateway" "$G_RPS" "$G_P50" "$G_P99" "$G_BAD"
printf '  %-38s %9s %9s %9s %8s\n' "GET /products/1 through nginx" "$N_RPS" "$N_P50" "$N_P99" "$N_BAD"
printf '  %-38s %9s %9s %9s %8s\n' "POST /orders through the gateway" "$O_RPS" "$O_P50" "$O_P99" "$O_BAD"
echo "  gateway / direct = $RATIO    nginx / direct = $N_RATIO    gateway / nginx = $G_N_RATIO"

failed=0
goal() { if python3 -c "import sys; sys.exit(0 if $2 else 1)"; then echo "  goal met:    $1"; else echo "  goal MISSED: $1"; failed=1; fi; }
goal "direct ≥ 20000 req/s ($D_RPS)" "$D_RPS >= 20000"
goal "gateway ≥ 0.8 × direct ($RATIO)" "$G_RPS >= 0.8 * $D_RPS"
goal "orders ≥ 2000/s ($O_RPS)" "$O_RPS >= 2000"
goal "every answer 2xx" "$D_BAD + $G_BAD + $N_BAD + $O_BAD == 0 and '$D_ERR$G_ERR$N_ERR$O_ERR' == 'okokokok'"
exit $failed
