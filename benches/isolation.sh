#!/usr/bin/env bash
# What the children's isolation costs: this build against a reference build (by default the
# commit before the clean channel's least privilege), both release, on the same generated
# plans, measured in one hyperfine invocation each so both share the machine's state
# (median of >= RUNS runs):
#
#   exec:    N_EXEC exec probes running /bin/true, baseline + scenario (2 x N_EXEC children;
#            this build: a PID and mount namespace each, capabilities dropped, the exit
#            watch, the baseline's read-only host)
#   builtin: N_BUILTIN builtin file-read probes, baseline + scenario (helper children, now
#            started through the same isolating spawn)
#
# Prints the medians, the per-child difference and the ratio this/reference. Usage:
#   benches/isolation.sh [reference-rev] [runs]
# The reference is exported with `git archive` and built once into target/bench-ref.
set -euo pipefail
cd "$(dirname "$0")/.."

REF="${1:-f7aebc9c1e4cb716a47f5c7efbdf4736ada40c1e}"
RUNS="${2:-5}"
N_EXEC=2000
N_BUILTIN=1000
JOBS=2
for tool in hyperfine python3 git; do
  command -v "$tool" >/dev/null || { echo "benches/isolation.sh needs $tool" >&2; exit 2; }
done

cargo build --release --quiet
BIN="$PWD/target/release/nexusmon"
REF_SRC="$PWD/target/bench-ref/src-$(git rev-parse --short "$REF")"
if [ ! -x "$REF_SRC/target/release/nexusmon" ]; then
  rm -rf "$REF_SRC" && mkdir -p "$REF_SRC"
  git archive "$REF" | tar -x -C "$REF_SRC"
  (cd "$REF_SRC" && cargo build --release --quiet)
fi
REF_BIN="$REF_SRC/target/release/nexusmon"
WORK="$(mktemp -d /tmp/nexusmon-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

python3 benches/run_gen.py "$WORK/exec" exec "$N_EXEC" off
python3 benches/run_gen.py "$WORK/builtin" builtin "$N_BUILTIN" off
echo "== machine: $(nproc) cores, $(uname -r); jobs=$JOBS runs=$RUNS; reference $REF" >&2

for kind in exec builtin; do
  hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/$kind.json" \
    --prepare "rm -rf $WORK/out-this $WORK/out-ref" \
    -n this "$BIN run --plan $WORK/$kind/plans/$kind/plan.json --out $WORK/out-this --jobs $JOBS -q" \
    -n reference "$REF_BIN run --plan $WORK/$kind/plans/$kind/plan.json --out $WORK/out-ref --jobs $JOBS -q"
done

python3 - "$WORK" "$N_EXEC" "$N_BUILTIN" "$JOBS" <<'EOF'
import json, sys
work, n_exec, n_builtin, jobs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print()
print(f"{'plan':<8} {'this s':>8} {'ref s':>8} {'ratio':>6} {'extra us/child':>15}")
for kind, n in (("exec", n_exec), ("builtin", n_builtin)):
    res = {r["command"]: r["median"] for r in json.load(open(f"{work}/{kind}.json"))["results"]}
    children = 2 * n
    extra = (res["this"] - res["reference"]) / children * 1e6 * jobs
    print(f"{kind:<8} {res['this']:>8.3f} {res['reference']:>8.3f} {res['this'] / res['reference']:>6.2f} {extra:>15.0f}")
print("(extra us/child: the wall-time difference per child, times the job count: the cost each")
print(" child adds on its worker)")
EOF
