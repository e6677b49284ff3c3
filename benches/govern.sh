#!/usr/bin/env bash
# Governance benchmarks (hyperfine, /usr/bin/time -v):
#   1. `audit verify` on logs of 10k and 100k lines, against `b3sum` of the same file as the
#      reference (the floor: hashing the bytes once, no parsing);
#   2. peak memory of `audit verify` at 10k vs 100k lines (verification streams: it should
#      not grow with the log);
#   3. an append (`approve`, which records one audit entry) on a 1-line log vs a 100k-line
#      log (appends read only the log's tail: the ratio should be ~1).
# The logs are written by an independent Python implementation of the chain format (with the
# `blake3` module), so the run also checks that the documented format is enough to produce a
# log nexusmon accepts.
#
# Usage: benches/govern.sh [RUNS]   (default 10 runs per command)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
command -v hyperfine >/dev/null || { echo "hyperfine is required" >&2; exit 1; }
command -v b3sum >/dev/null || { echo "b3sum is required" >&2; exit 1; }
python3 -c 'import blake3' 2>/dev/null || python3 -m pip install --quiet blake3

cargo build --release --quiet
bin=$PWD/target/release/nexusmon
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

make_project() { # dir lines
  local dir=$1 lines=$2
  mkdir -p "$dir"
  cp -r tests/fixtures/govern/project/. "$dir/"
  (cd "$dir" && "$bin" -q init)
  python3 - "$dir/.nexusmon" "$lines" <<'PY'
import json, sys, blake3
state, n = sys.argv[1], int(sys.argv[2])
path = f"{state}/audit.jsonl"
with open(path, "rb") as f:
    last = f.read().rstrip(b"\n").split(b"\n")[-1]
seq = json.loads(last)["seq"]
with open(path, "ab") as f:
    for i in range(n - 1):
        seq += 1
        entry = {"seq": seq, "ts": "2026-11-24T00:00:00Z", "prev": blake3.blake3(last).hexdigest(),
                 "kind": "run-started",
                 "data": {"run_id": f"20261124T000000.000Z-{seq:08x}", "plan_id": "deploy-a",
                          "outcome": "allow", "reasons": ["rank-runs"]}}
        last = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        f.write(last + b"\n")
with open(f"{state}/audit_head.json", "w") as f:
    json.dump({"seq": seq, "blake3": blake3.blake3(last).hexdigest()}, f)
PY
  (cd "$dir" && "$bin" -q audit verify) || { echo "generated log did not verify" >&2; exit 1; }
}

# Median of each command and its ratio to a reference command of the same run.
medians() { # hyperfine-json reference-name
  python3 - "$1" "$2" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
ref = next(r["median"] for r in res if r["command"] == sys.argv[2])
print(f"| command | median [ms] | ratio to {sys.argv[2]} |")
print("|---|---:|---:|")
for r in res:
    print(f"| {r['command']} | {r['median'] * 1000:.1f} | {r['median'] / ref:.2f} |")
PY
}

make_project "$work/p1" 1
make_project "$work/p10k" 10000
make_project "$work/p100k" 100000
ls -l "$work"/p10k/.nexusmon/audit.jsonl "$work"/p100k/.nexusmon/audit.jsonl | awk '{print $5, $9}'

echo "== audit verify vs b3sum (reference)"
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/verify.json" \
  -n "b3sum 10k" "b3sum $work/p10k/.nexusmon/audit.jsonl" \
  -n "verify 10k" "$bin --state-dir $work/p10k/.nexusmon audit verify --anchors $work/p10k/plans" \
  -n "b3sum 100k" "b3sum $work/p100k/.nexusmon/audit.jsonl" \
  -n "verify 100k" "$bin --state-dir $work/p100k/.nexusmon audit verify --anchors $work/p100k/plans"
medians "$work/verify.json" "b3sum 10k"

echo "== peak memory of audit verify (max RSS, KiB)"
for n in 10k 100k; do
  /usr/bin/time -v "$bin" --state-dir "$work/p$n/.nexusmon" audit verify --anchors "$work/p$n/plans" 2>&1 >/dev/null \
    | awk -v n="$n" '/Maximum resident set size/ {print n": "$6" KiB"}'
done

echo "== one append (approve records an audit entry) on a 1-line vs a 100k-line log"
key=$work/key
ssh-keygen -q -t ed25519 -N '' -f "$key"
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/append.json" \
  -n "approve, 1-line log" "$bin --root $work/p1 --state-dir $work/p1/.nexusmon approve --plan $work/p1/plans/deploy-a/plan.json --approver alice --sign-with $key --overwrite" \
  -n "approve, 100k-line log" "$bin --root $work/p100k --state-dir $work/p100k/.nexusmon approve --plan $work/p100k/plans/deploy-a/plan.json --approver alice --sign-with $key --overwrite"
medians "$work/append.json" "approve, 1-line log"
