# Shared by the link benches (sourced): the shop up twice, links on and
# `--links off`, both stopped and removed on exit.
#
#   source benches/links_lib.sh
#   → $STORMPROOF_BIN, $ON/$OFF (run dirs), $ON_GATEWAY/$OFF_GATEWAY,
#     $ORDER (a POST /orders body); `token GATEWAY` → user1's bearer token

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STORMPROOF_BIN=$(realpath "${STORMPROOF_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/stormproof}")

ON=$(mktemp -d)
OFF=$(mktemp -d)
cleanup() {
  for dir in "$ON" "$OFF"; do
    STORMPROOF_RUN_DIR="$dir" "$STORMPROOF_BIN" down >/dev/null 2>&1 || true
    rm -rf "$dir"
  done
}
trap cleanup EXIT INT TERM

# up DIR [flags…] → the gateway URL
up() {
  local dir=$1; shift
  STORMPROOF_RUN_DIR="$dir" "$STORMPROOF_BIN" up shop --detach --port 0 "$@" >/dev/null
  jq -r .gateway "$dir/state.json"
}
token() {
  curl -sf -X POST "$1/auth/token" -H 'content-type: application/json' -d '{"username":"user1","password":"stormproof"}' | jq -r .access_token
}
ORDER='{"productId": 1, "quantity": 1, "customerId": "user1", "customerName": "Kim", "customerAddr": "Seoul"}'

ON_GATEWAY=$(up "$ON")
OFF_GATEWAY=$(up "$OFF" --links off)
