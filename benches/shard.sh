#!/usr/bin/env bash
# Benchmark of `run --shard K/N`'s two strategies (release build), measured in this one
# script on this machine: a plan of 30 exec probes each sleeping 10–500 ms (seeded), under
# one Landlock profile, baseline + scenario lanes, `--jobs 1` so a shard's wall time is
# the sum of its scenarios. First one whole run (the durations bundle), then the 3 shards
# of `--shard-strategy duration --durations <that run>` and the 3 of `hash`, each run
# and timed on its own. Prints each shard's wall time, and for each strategy the slowest
# shard against the mean (target for duration: within 15 %), plus the planned balance
# computed from the recorded durations. Usage: benches/shard.sh [seed]
# (NEXUSMON_BIN=path: use that binary instead of building the release one)
set -euo pipefail
cd "$(dirname "$0")/.."

SEED="${1:-17}"
command -v python3 >/dev/null || { echo "benches/shard.sh needs python3" >&2; exit 2; }
# NEXUSMON_BIN: an already built binary (default: build the release one).
if [ -n "${NEXUSMON_BIN:-}" ]; then
  BIN="$(realpath "$NEXUSMON_BIN")"
else
  cargo build --release --quiet
  BIN="$PWD/target/release/nexusmon"
fi
WORK="$(mktemp -d /tmp/nexusmon-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

python3 - "$WORK" "$SEED" <<'PY'
import json, os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
reg = os.path.join(root, "registry", "bench"); os.makedirs(reg)
os.makedirs(os.path.join(root, "plans", "sleepy"))
probes = {f"sleep-{i:02d}": {"operation": "exec", "driver": "exec",
          "argv": ["/usr/bin/sleep", f"{rng.randint(10, 500) / 1000:.3f}"], "timeout_ms": 5000}
          for i in range(30)}
profiles = {"usr-ro": {"description": "Read and run /usr.", "landlock": {"abi": 7, "fs": {
    "handle": "all", "allow": [{"path": "/usr", "access": ["read", "exec"]},
                                {"path": "/etc/ld.so.cache", "access": ["read"]}]}}}}
for name, body in (("probes.json", {"probes": probes}), ("profiles.json", {"profiles": profiles})):
    json.dump({"schema_version": 1, "registry_id": "bench", **body}, open(os.path.join(reg, name), "w"))
json.dump({"schema_version": 1, "plan_id": "sleepy", "kind": "experiment", "registry_id": "bench",
           "profiles": ["usr-ro"], "scenarios": {"usr-ro": {p: "allow" for p in probes}},
           "lanes": {"baseline": True, "scenario": True, "oracle": True}},
          open(os.path.join(root, "plans", "sleepy", "plan.json"), "w"))
PY

cd "$WORK"
ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms); "$BIN" run --plan plans/sleepy/plan.json --out whole --jobs 1 -q || true; t1=$(ms)
echo "whole run: $((t1 - t0)) ms"
for strat in duration hash; do
  for k in 1 2 3; do
    extra=()
    [ "$strat" = duration ] && extra=(--shard-strategy duration --durations whole)
    t0=$(ms)
    "$BIN" run --plan plans/sleepy/plan.json --out "$strat-$k" --jobs 1 -q --shard "$k/3" "${extra[@]}" || true
    t1=$(ms)
    echo "$strat $k $((t1 - t0))" >> walls.txt
  done
done
python3 - <<'PY'
import json, os
walls = {}
for line in open("walls.txt"):
    s, k, w = line.split(); walls.setdefault(s, []).append(int(w))
def bundle(root):
    return os.path.join(root, json.load(open(os.path.join(root, "LATEST")))["run_id"])
rec = {}
for f in ("runtime_results.json", "baseline_results.json"):
    for o in json.load(open(os.path.join(bundle("whole"), f)))["observations"]:
        rec[o["scenario_id"]] = rec.get(o["scenario_id"], 0) + sum(a["rusage"]["wall_us"] for a in o.get("attempts") or [o])
for s in ("duration", "hash"):
    w = walls[s]; mean = sum(w) / 3
    planned = []
    for k in (1, 2, 3):
        m = json.load(open(os.path.join(bundle(f"{s}-{k}"), "run_manifest.json")))
        planned.append(sum(rec.get(i, 0) for i in m["selected"]) / 1000)
    pm = sum(planned) / 3
    print(f"{s:8} measured shard walls {w} ms: slowest {max(w) / mean * 100 - 100:+.1f} % over the mean"
          f"; planned from the recorded durations {[round(p) for p in planned]} ms: slowest {max(planned) / pm * 100 - 100:+.1f} %")
PY
