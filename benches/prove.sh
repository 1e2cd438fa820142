#!/usr/bin/env bash
# The scorecard's full mutation matrix of a local system (SYSTEM, default
# shop): the real system's scorecard, then every checkpoint's broken system
# (`broken:` in scenarios/SYSTEM/checkpoints.yaml), JOBS at a time, each on
# its own ports and in its own folder. Prints the matrix and the wall time;
# keeps the reports (prove.md, prove.json, every scorecard) in REPORTS.
#
#   JOBS=2 REPORTS=/tmp/prove benches/prove.sh [--prove=1,5]
#   SYSTEM=taxi JOBS=2 benches/prove.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STORMPROOF_BIN:-${CARGO_TARGET_DIR:-target}/debug/stormproof}
jobs=${JOBS:-2}
system=${SYSTEM:-shop}
reports=${REPORTS:-$(mktemp -d)/reports}
prove=${1:---prove}
started=$(date +%s)
status=0
"$bin" check "$system" "$prove" --jobs "$jobs" --reports "$reports" || status=$?
echo "wall time: $(( $(date +%s) - started )) s with --jobs $jobs on $(nproc) cores; exit $status; reports in $reports"
exit "$status"
