#!/usr/bin/env bash
# Benchmark of signing the seal (`run --sign-with KEY`), release build, measured in this one
# script on this machine with hyperfine (median of >= 5 runs each, one warmup):
#
#   A. unsigned: a generated plan of 5,000 exec probes running /bin/true under one Landlock
#      profile, baseline + scenario lanes (10,000 children) and the oracle lane, sealed;
#   B. signed: the same run with `--sign-with` an Ed25519 key (artifact_index.sig and the
#      DSSE-signed bundle.intoto.json written at seal time).
#
# Target: B adds under 5 % to A (median). The two commands alternate run by run (hyperfine
# runs each command's runs together, so it is called once per pair) to spread the load of a
# shared machine over both. Usage: benches/sign.sh [jobs] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS="${1:-2}"
RUNS="${2:-5}"
N_EXEC=5000
for tool in hyperfine python3 ssh-keygen; do
  command -v "$tool" >/dev/null || { echo "benches/sign.sh needs $tool" >&2; exit 2; }
done

cargo build --release --quiet
BIN="$PWD/target/release/nexusmon"
WORK="$(mktemp -d /tmp/nexusmon-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

python3 benches/run_gen.py "$WORK/exec" exec "$N_EXEC" on
ssh-keygen -q -t ed25519 -N '' -C runner -f "$WORK/key"
PLAN="$WORK/exec/plans/exec/plan.json"

echo "== machine: $(nproc) cores, $(uname -r); jobs=$JOBS runs=$RUNS" >&2

"$BIN" run --plan "$PLAN" --out "$WORK/warm" --jobs "$JOBS" -q  # warm caches once
for i in $(seq "$RUNS"); do
  hyperfine --runs 1 --export-json "$WORK/pair-$i.json" \
    --prepare "rm -rf $WORK/out-u $WORK/out-s" \
    -n unsigned "$BIN run --plan $PLAN --out $WORK/out-u --jobs $JOBS -q" \
    -n signed "$BIN run --plan $PLAN --out $WORK/out-s --jobs $JOBS -q --sign-with $WORK/key" \
    >/dev/null
done

# The signed bundle verifies with stock OpenSSH.
bundle="$(ls -d "$WORK"/out-s/2*)"
echo "runner $(cut -d' ' -f1,2 "$WORK/key.pub")" >"$WORK/allowed"
ssh-keygen -Y verify -f "$WORK/allowed" -I runner -n nexusmon-bundle-v1 \
  -s "$bundle/artifact_index.sig" <"$bundle/artifact_index.json" >/dev/null

python3 - "$WORK" "$RUNS" <<'PY'
import json, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
times = {"unsigned": [], "signed": []}
for i in range(1, runs + 1):
    for r in json.load(open(f"{work}/pair-{i}.json"))["results"]:
        times[r["command"]].append(r["times"][0])
med = {k: statistics.median(v) for k, v in times.items()}
for k in ("unsigned", "signed"):
    print(f"{k:<9} median {med[k]:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times[k])})")
ratio = med["signed"] / med["unsigned"]
print(f"signing adds {100 * (ratio - 1):+.1f} % (target < 5 %) {'OK' if ratio < 1.05 else 'MISSED'}")
PY
