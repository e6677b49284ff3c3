#!/usr/bin/env bash
# Benchmark: `nexusmon plan-lint` over 1,000 generated plans (plus the shipped registry they
# use), measured with hyperfine against two references measured in the same run:
#   - `cat` of every plan file (the cost of reading the bytes),
#   - Python loading every plan with `json.load` (a parse-only baseline, no checks).
# Target: under 0.5 s wall for the 1,000 plans.
#
# Usage: benches/lint.sh [N_PLANS] [RUNS]      (defaults: 1000 plans, 20 runs)
# Needs: hyperfine, python3, a release build (built here if missing).
# Writes the raw hyperfine results to $OUT (default: target/bench/lint.json) and prints the
# medians, the per-plan cost and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

n_plans=${1:-1000}
runs=${2:-20}
out=${OUT:-target/bench/lint.json}
command -v hyperfine >/dev/null || { echo "hyperfine is required" >&2; exit 2; }

cargo build --release --quiet
bin=$PWD/target/release/nexusmon

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/registry"
cp -r registry/linux-core "$work/registry/"

# Varied plans: 1-5 profiles, 1-8 probes per profile, controls, variables, one YAML in ten,
# about one in twenty missions; all valid, so every check runs to the end.
python3 - "$work" "$n_plans" <<'PY'
import json, os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261124)
reg = json.load(open(os.path.join(root, "registry/linux-core/probes.json")))["probes"]
profiles = sorted(json.load(open(os.path.join(root, "registry/linux-core/profiles.json")))["profiles"])
probes = sorted(reg)
controls = sorted(p for p, v in reg.items() if "control" in v.get("tags", []))
def yaml(v, ind=0):
    sp = "  " * ind
    if isinstance(v, dict):
        return "".join(f"{sp}{k}:" + ("\n" + yaml(x, ind + 1) if isinstance(x, (dict, list)) and x else f" {json.dumps(x)}\n") for k, x in v.items())
    return "".join(f"{sp}- {json.dumps(x)}\n" for x in v)
for i in range(n):
    pid = f"bench-{i:04d}"
    profs = rng.sample(profiles, rng.randint(1, 5))
    plan = {
        "$schema": "../../schemas/plan.schema.json",
        "schema_version": 1,
        "plan_id": pid,
        "kind": "experiment",
        "description": f"generated plan {i}",
        "registry_id": "linux-core",
        "profiles": profs,
        "scenarios": {p: {q: rng.choice(["allow", "deny"]) for q in rng.sample(probes, rng.randint(1, 8))} for p in profs},
        "controls": rng.sample(controls, rng.randint(0, 3)),
        "execution": {"timeout_ms": rng.choice([2000, 5000, 10000]), "retries": rng.randint(0, 2)},
    }
    if rng.random() < 0.3:
        plan["variables"] = {"WORKDIR": "${SCRATCH}/work"}
        plan["profiles"] = profs
    if rng.random() < 0.05:
        plan["kind"] = "mission"
        tasks = {}
        names = [f"t{k}" for k in range(rng.randint(2, 6))]
        # Distinct probes (one task per scenario), expectations agreeing with `scenarios`.
        for k, (t, probe) in enumerate(zip(names, rng.sample(probes, len(names)))):
            tasks[t] = {"probe": probe, "profile": profs[0], "depends_on": names[:k][-1:]}
            declared = plan["scenarios"][profs[0]].get(probe)
            if declared:
                tasks[t]["expect"] = declared
        plan["mission"] = {"objective": "bench", "category": "forge", "rank": "D",
                           "scores": {"compute_cost": 10, "maintainability": 80, "attention": 20,
                                      "economic_value": 50, "trust": 90, "prediction_confidence": 70},
                           "requested_by": "bench", "tasks": tasks}
    d = os.path.join(root, "plans", pid)
    os.makedirs(d)
    if i % 10 == 0:
        open(os.path.join(d, "plan.yaml"), "w").write(yaml(plan))
    else:
        open(os.path.join(d, "plan.json"), "w").write(json.dumps(plan, indent=2) + "\n")
PY

# The generated plans must lint clean (and use the unused WORKDIR variable only as a
# warning): fail loudly if the benchmark measures an error path.
"$bin" plan-lint "$work/plans" --format json > "$work/report.json" || true
python3 - "$work/report.json" "$n_plans" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["errors"] == 0, f"generated plans have {r['errors']} errors"
print(f"sanity: {r['files_checked']} files checked, {r['errors']} errors, {r['warnings']} warnings, {r['notes']} notes")
PY

mkdir -p "$(dirname "$out")"
find "$work/plans" -type f | sort > "$work/files.txt"
hyperfine --warmup 3 --runs "$runs" --export-json "$out" \
  --command-name "nexusmon plan-lint ($n_plans plans)" "$bin plan-lint $work/plans --format json" \
  --command-name "cat (read every plan)" "xargs -a $work/files.txt -d '\n' cat -- " \
  --command-name "python3 json.load (parse only)" \
    "python3 -c \"import json,sys;[json.load(open(p)) if p.endswith('.json') else open(p).read() for p in open('$work/files.txt').read().split()]\"" \
  2>&1 | sed 's/^/  /' >&2 || true

python3 - "$out" "$n_plans" <<'PY'
import json, statistics, sys
res = json.load(open(sys.argv[1]))["results"]
n = int(sys.argv[2])
med = {r["command"]: statistics.median(r["times"]) for r in res}
lint, cat, py = (med[r["command"]] for r in res)
print(f"median wall: plan-lint {lint*1000:.1f} ms ({lint/n*1e6:.0f} us per plan), "
      f"cat {cat*1000:.1f} ms, python json.load {py*1000:.1f} ms")
print(f"ratios: plan-lint / cat = {lint/cat:.1f}x, plan-lint / python parse-only = {lint/py:.2f}x")
print(f"target < 500 ms for {n} plans: {'met' if lint < 0.5 else 'MISSED'}")
PY
