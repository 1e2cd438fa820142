#!/usr/bin/env bash
# The scorecard's full mutation matrix on the local shop: the real shop's
# scorecard, then every checkpoint's broken shop (`broken:` in
# scenarios/shop/checkpoints.yaml), JOBS at a time, each on its own ports
# and in its own folder. Prints the matrix and the wall time; keeps the
# reports (prove.md, prove.json, every scorecard) in REPORTS.
#
#   JOBS=2 REPORTS=/tmp/prove benches/prove.sh [--prove=1,5]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STORMPROOF_BIN:-${CARGO_TARGET_DIR:-target}/debug/stormproof}
jobs=${JOBS:-2}
reports=${REPORTS:-$(mktemp -d)/reports}
prove=${1:---prove}
started=$(date +%s)
status=0
"$bin" check shop "$prove" --jobs "$jobs" --reports "$reports" || status=$?
echo "wall time: $(( $(date +%s) - started )) s with --jobs $jobs on $(nproc) cores; exit $status; reports in $reports"
exit "$status"
