#!/usr/bin/env bash
# Figures of rolling updates, the autoscaler and self-healing on the local
# platform, read from the journals of the shipped experiments, ROUNDS times
# against one shop (autoscaler: 2 s sync period, 15 s scale-down window, as
# `stormproof check` uses). Prints one line per run and a summary.
#
#   STORMPROOF_BIN=target/release/stormproof ROUNDS=3 benches/deploy_figures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STORMPROOF_BIN:-${CARGO_TARGET_DIR:-target}/debug/stormproof}
rounds=${ROUNDS:-3}
work=$(mktemp -d)
export STORMPROOF_RUN_DIR=$work/run
trap '"$bin" down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

"$bin" up shop --detach --port 0 --hpa-sync-period 2s --hpa-downscale-stabilization 15s >/dev/null
for round in $(seq "$rounds"); do
    for experiment in rolling-update rolling-update-without-readiness autoscale-out self-healing; do
        "$bin" chaos run "chaos/shop/$experiment.yaml" --reports "$work/reports/$round" >/dev/null 2>&1 || true
    done
done

python3 - "$work/reports" <<'PY'
import json, pathlib, statistics, sys

def journal(run, name):
    return json.loads(next(pathlib.Path(run).glob(f"*-{name}/journal.json")).read_text())

def took(j, name):
    return next(r["took_ms"] for phase in j["steady_states"].values() for r in phase if r["name"] == name) / 1000

def during(j, route):
    r = next(r for r in j["load"]["routes"] if r["route"] == route)["during"]
    return r["availability"], r["requests"], r["failed"]

def first_ready(j, service, at_least, after):
    return next((s["t"] - after for s in j["replicas_over_time"] if s["t"] >= after and s["ready"].get(service, 0) >= at_least), None)

rows = {k: [] for k in ["rollout_s", "with_pct", "without_pct", "hpa_decide_s", "hpa_ready_s", "hpa_in_s", "heal_s"]}
for run in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    with_r, without = journal(run, "rolling-update"), journal(run, "rolling-update-without-readiness")
    hpa, heal = journal(run, "autoscale-out"), journal(run, "self-healing")
    rows["rollout_s"].append(took(with_r, "the rollout to v2 completes"))
    rows["with_pct"].append(during(with_r, "POST /orders")[0])
    rows["without_pct"].append(during(without, "POST /orders")[0])
    rows["hpa_decide_s"].append(took(hpa, "the autoscaler scales order out under the surge"))
    ready = first_ready(hpa, "order", 2, hpa["marks"]["fault_start"])
    rows["hpa_ready_s"].append(ready if ready is not None else float("nan"))
    # After the surge: the hypothesis (at its minimum) is checked first, then the scale-in claim.
    rows["hpa_in_s"].append(sum(r["took_ms"] for r in hpa["steady_states"]["after"] if "autoscaler" in r["name"] or "scales back" in r["name"]) / 1000)
    rows["heal_s"].append(took(heal, "delivery restarted and ready again within 12 s"))
    print(f"{run.name}: rollout {rows['rollout_s'][-1]:.1f} s, POST /orders with readiness {rows['with_pct'][-1]:.2f} %, "
          f"without {rows['without_pct'][-1]:.2f} %; HPA wants ≥2 after {rows['hpa_decide_s'][-1]:.1f} s, 2 ready after "
          f"{rows['hpa_ready_s'][-1]:.1f} s, back to 1 {rows['hpa_in_s'][-1]:.1f} s after the surge; "
          f"unhealthy → restarted and ready {rows['heal_s'][-1]:.1f} s (bound 12 s); "
          f"verdicts {with_r['status']}/{without['status']}/{hpa['status']}/{heal['status']}")
print("median: " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in rows.items()))
PY
