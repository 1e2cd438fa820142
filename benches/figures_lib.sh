# Shared by the *_figures.sh benches (sourced): start SYSTEM detached in a
# temp run dir that is stopped and removed on exit, and read its figures.
#
#   source benches/figures_lib.sh; figures_up taxi --replicas calllist=0
#   → $bin, $gateway, $token set; `applied calllist` → events applied;
#   `catch_up taxi calllist N` → times the scale-up until N are applied

bin=${STORMPROOF_BIN:-${CARGO_TARGET_DIR:-target}/debug/stormproof}
bin=$(realpath "$bin")
STORMPROOF_RUN_DIR=$(mktemp -d)
export STORMPROOF_RUN_DIR
trap '"$bin" down >/dev/null 2>&1 || true; rm -rf "$STORMPROOF_RUN_DIR"' EXIT

# Starts SYSTEM (extra `up` flags after it) and gets a demo user's token.
figures_up() {
  "$bin" up "$@" --detach --port 0 >/dev/null
  gateway=$(jq -r .gateway "$STORMPROOF_RUN_DIR/state.json")
  token=$(curl -sf "$gateway/auth/token" -H 'content-type: application/json' -d '{"username":"user1","password":"stormproof"}' | jq -r .access_token)
}

# Events SERVICE has applied, summed over its replicas' /metrics.
applied() {
  local sum=0 address n
  for address in $("$bin" status --json | jq -r ".[] | select(.name == \"$1\") | .replicas[].address // empty"); do
    n=$(curl -sf "http://$address/metrics" | awk '/^stormproof_events_consumed_total/ { s += $NF } END { printf "%d", s }') || n=0
    sum=$((sum + n))
  done
  echo "$sum"
}

# Scales SYSTEM.SERVICE to 1 and waits until it has applied N events; sets
# $started (the scale command), $first (first event applied) and $ended.
catch_up() {
  started=$(date +%s.%N)
  "$bin" scale "$1.$2" 1 >/dev/null
  first=""
  local now
  while :; do
    now=$(applied "$2")
    if [ -z "$first" ] && [ "$now" -gt 0 ]; then first=$(date +%s.%N); fi
    [ "$now" -ge "$3" ] && break
    sleep 0.1
  done
  ended=$(date +%s.%N)
}
