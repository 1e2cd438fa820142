#!/usr/bin/env bash
# Runs every parser fuzz target (tests/fuzz.rs) for SECONDS each (default 60)
# and prints its executions and findings. A finding fails the run with the
# input and arbtest's seed; reproduce with ARBTEST_SEED=0x… and the same
# test name, then add the input to `regressions_stay_fixed`.
set -euo pipefail
cd "$(dirname "$0")/.."
export STORMPROOF_FUZZ_SECONDS="${SECONDS_PER_TARGET:-60}"
cargo test --test fuzz -- --test-threads 1 --nocapture 2>&1 | grep -aE 'executions|panicked|seed|FAILED|test result'
