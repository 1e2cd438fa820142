#!/usr/bin/env bash
# Installs the official Pact verifier CLI (crates.io `pact_verifier_cli`) for
# the interoperability test (tests/contract_interop.rs), which skips with a
# message when the binary is absent. Builds from source: several minutes.
# Usage: ci/install-pact-verifier-cli.sh [ROOT]   (binary in ROOT/bin)
set -euo pipefail
root="${1:-$HOME/.cache/stormproof/pact-cli}"
cargo install pact_verifier_cli --locked --root "$root"
# Since 1.4 the binary is named pact-verifier; the test finds it in ROOT/bin
# for the default ROOT, or through PACT_VERIFIER_CLI.
echo "installed: $root/bin/pact-verifier"
echo "run the test with: PACT_VERIFIER_CLI=$root/bin/pact-verifier cargo test --test contract_interop"
