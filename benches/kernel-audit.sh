#!/usr/bin/env bash
# Benchmark of collecting the kernel's Landlock audit records (`run --kernel-audit`),
# measured in this one script on this machine with hyperfine (median of >= 5 runs each):
#
#   A. `run --kernel-audit off`: a generated plan of 5,000 builtin file-read probes under
#      one Landlock profile, every other one denied (2,500 denials in the scenario lane),
#      baseline + scenario lanes and the oracle lane, the bundle sealed.
#   B. The same run with `--kernel-audit require`: kernel audit enabled for the run (and
#      restored after), every Landlock record read over NETLINK_AUDIT, attributed to its
#      child, `kernel_denials.jsonl` written.
#
# Prints both medians and the ratio B/A, and checks that B's bundle attributed every
# denial (2,500 records) with nothing lost. Then, memory at scale: peak RSS of
# `--kernel-audit require` runs of policy matrices (50 profiles, every other probe denied)
# of each size in SCALE (default "1000 10000"; e.g. SCALE="1000 10000 100000"), each
# checked to have attributed every denial, and the ratio of the largest to the smallest.
# Needs root (CAP_AUDIT_CONTROL, CAP_AUDIT_READ) and Linux 6.15+.
# Usage: [SCALE="1000 10000"] benches/kernel-audit.sh [jobs] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS="${1:-2}"
RUNS="${2:-5}"
N=5000
for tool in hyperfine python3; do
  command -v "$tool" >/dev/null || { echo "benches/kernel-audit.sh needs $tool" >&2; exit 2; }
done

cargo build --release --quiet
BIN="$PWD/target/release/nexusmon"
WORK="$(mktemp -d /tmp/nexusmon-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

python3 benches/run_gen.py "$WORK/audit" audit "$N" on
PLAN="$WORK/audit/plans/audit/plan.json"
echo "== machine: $(nproc) cores, $(uname -r); jobs=$JOBS runs=$RUNS scenarios=$N" >&2

hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/audit.json" \
  --prepare "rm -rf $WORK/out-off $WORK/out-on" \
  -n off "$BIN run --plan $PLAN --out $WORK/out-off --jobs $JOBS -q --kernel-audit off" \
  -n require "$BIN run --plan $PLAN --out $WORK/out-on --jobs $JOBS -q --kernel-audit require"

python3 - "$WORK" "$N" <<'PY'
import glob, json, sys
work, n = sys.argv[1], int(sys.argv[2])
res = {r["command"]: r["median"] for r in json.load(open(f"{work}/audit.json"))["results"]}
bundle = sorted(glob.glob(f"{work}/out-on/2*"))[-1]
k = json.load(open(f"{bundle}/summary.json"))["kernel_audit"]
lines = sum(1 for _ in open(f"{bundle}/kernel_denials.jsonl"))
print()
print(f"kernel audit off:     median {res['off']:.3f} s")
print(f"kernel audit require: median {res['require']:.3f} s")
print(f"ratio require/off:    {res['require'] / res['off']:.3f}")
print(f"records: state={k['state']} attributed={k['attributed']} unattributed={k['unattributed']} "
      f"kernel_lost={k['kernel_lost']} socket_overflows={k['socket_overflows']} (jsonl lines {lines})")
if k["state"] != "collected" or k["attributed"] != n // 2:
    sys.exit(f"expected {n // 2} attributed denials, collected: {k}")
PY

SCALE="${SCALE:-1000 10000}"
rss=()
for n in $SCALE; do
  python3 benches/run_gen.py "$WORK/m$n" audit-matrix "$n" on 50
  rm -rf "$WORK/out-m"
  /usr/bin/time -f %M -o "$WORK/m$n.rss" "$BIN" run --plan "$WORK/m$n/plans/audit-matrix/plan.json" \
    --out "$WORK/out-m" --jobs "$JOBS" -q --kernel-audit require
  python3 - "$WORK/out-m" "$n" <<'PY'
import glob, json, sys
bundle = sorted(glob.glob(f"{sys.argv[1]}/2*"))[-1]
k = json.load(open(f"{bundle}/summary.json"))["kernel_audit"]
if k["state"] != "collected" or k["attributed"] != int(sys.argv[2]) // 2:
    sys.exit(f"expected {int(sys.argv[2]) // 2} attributed denials, collected: {k}")
PY
  kib=$(tail -1 "$WORK/m$n.rss")
  rss+=("$kib")
  printf 'peak RSS, %7d scenarios, kernel audit require: %6.1f MiB\n' "$n" "$(echo "$kib / 1024" | bc -l)"
done
if [ "${#rss[@]}" -gt 1 ]; then
  printf 'ratio largest/smallest: %.2f\n' "$(echo "${rss[-1]} / ${rss[0]}" | bc -l)"
fi
