#!/usr/bin/env bash
# Benchmark of `nexusmon run` (release build), all measured in this one script on this
# machine with hyperfine (median of >= 5 runs each):
#
#   A. nexusmon: a generated plan of 5,000 exec probes running /bin/true under one Landlock
#      profile, baseline + scenario lanes (10,000 children) and the oracle lane, outputs
#      captured, results written and the bundle sealed (BLAKE3SUMS, artifact_index.json).
#   B. GNU parallel --results DIR over the same 10,000 commands (/bin/true), same job count.
#   C. A bare spawn loop: `xargs -P <jobs> -n 1 /bin/true` over the same 10,000 commands.
#   D. Builtin probes: 2,000 file-read probes (baseline + scenario: 4,000 helper children).
#
# Targets: A at least 5x B's throughput, A no more than 1.5x C's time. Prints medians and
# ratios; peak RSS of A from /usr/bin/time. Usage: benches/run.sh [jobs] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS="${1:-2}"
RUNS="${2:-5}"
N_EXEC=5000
N_BUILTIN=2000
for tool in hyperfine parallel python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "benches/run.sh needs $tool" >&2; exit 2; }
done

cargo build --release --quiet
BIN="$PWD/target/release/nexusmon"
WORK="$(mktemp -d /tmp/nexusmon-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

python3 benches/run_gen.py "$WORK/exec" exec "$N_EXEC" on
python3 benches/run_gen.py "$WORK/builtin" builtin "$N_BUILTIN" on
seq "$((2 * N_EXEC))" >"$WORK/commands"

echo "== machine: $(nproc) cores, $(uname -r); jobs=$JOBS runs=$RUNS" >&2

# A/B/C in one hyperfine invocation, so they share the machine's state.
hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/exec.json" \
  --prepare "rm -rf $WORK/out-nx $WORK/par" \
  -n nexusmon "$BIN run --plan $WORK/exec/plans/exec/plan.json --out $WORK/out-nx --jobs $JOBS -q" \
  -n parallel "parallel -j $JOBS --results $WORK/par /bin/true <$WORK/commands" \
  -n xargs "xargs -P $JOBS -n 1 /bin/true <$WORK/commands"

hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/builtin.json" \
  --prepare "rm -rf $WORK/out-bi" \
  -n builtin "$BIN run --plan $WORK/builtin/plans/builtin/plan.json --out $WORK/out-bi --jobs $JOBS -q"

rm -rf "$WORK/out-nx"
/usr/bin/time -f '%M' -o "$WORK/rss" \
  "$BIN" run --plan "$WORK/exec/plans/exec/plan.json" --out "$WORK/out-nx" --jobs "$JOBS" -q
bundle="$(ls -d "$WORK"/out-nx/2*)"
(cd "$bundle" && b3sum --check --quiet BLAKE3SUMS) || { echo "bundle check failed" >&2; exit 1; }

python3 - "$WORK" "$N_EXEC" "$N_BUILTIN" <<'EOF'
import json, sys
work, n_exec, n_builtin = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
res = {r["command"]: r for r in json.load(open(f"{work}/exec.json"))["results"]}
res.update({r["command"]: r for r in json.load(open(f"{work}/builtin.json"))["results"]})
med = {k: v["median"] for k, v in res.items()}
children = 2 * n_exec
print()
print(f"{'command':<10} {'median s':>9} {'children/s':>11}")
for k in ("nexusmon", "parallel", "xargs"):
    print(f"{k:<10} {med[k]:>9.3f} {children / med[k]:>11.0f}")
print(f"{'builtin':<10} {med['builtin']:>9.3f} {2 * n_builtin / med['builtin']:>11.0f}  ({2 * n_builtin} helper probes)")
print()
tp = med["parallel"] / med["nexusmon"]
tx = med["nexusmon"] / med["xargs"]
print(f"throughput vs GNU parallel --results: {tp:.2f}x (target >= 5x) {'OK' if tp >= 5 else 'MISSED'}")
print(f"time vs bare xargs loop:              {tx:.2f}x (target <= 1.5x) {'OK' if tx <= 1.5 else 'MISSED'}")
rss = int(open(f"{work}/rss").read().split()[-1])
print(f"nexusmon peak RSS (5,000 exec probes): {rss / 1024:.1f} MiB")
EOF
