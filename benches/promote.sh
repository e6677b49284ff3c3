#!/usr/bin/env bash
# Benchmark of the promotion commands (release build) on one large bundle, measured with
# hyperfine (median of >= 5 runs) and /usr/bin/time (peak RSS):
#
#   A. emit-promotion: strict check of the whole bundle, every decision artifact read,
#      verified again and parsed, packet and in-toto Statement written atomically.
#   B. summarize-ops --packet: pointers verified, normalized events counted per operation.
#   C. promote into an empty mappings directory: the packet verified (pointers checked and
#      the packet derived again from its bundle), mappings folded and written.
#   D. promote of the same packet again: verified, nothing written.
#   E. b3sum over the bundle's files, for scale (the floor of anything that reads them all).
#
# The bundle: a generated plan of N builtin file-read probes (default 2,000) under one
# Landlock profile, baseline + scenario + oracle lanes. Usage: benches/promote.sh [N] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-2000}"
RUNS="${2:-5}"
for tool in hyperfine python3 b3sum /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "benches/promote.sh needs $tool" >&2; exit 2; }
done

cargo build --release --quiet
BIN="$PWD/target/release/nexusmon"
WORK="$(mktemp -d /tmp/nexusmon-bench-promote.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

python3 benches/run_gen.py "$WORK/p" builtin "$N" on
cd "$WORK/p"
"$BIN" run --plan plans/builtin/plan.json --out out --jobs 2 -q || true
bundle="$(ls -d out/2*)"
files=$(find "$bundle" -type f | wc -l)
bytes=$(du -sb "$bundle" | cut -f1)
echo "== machine: $(nproc) cores, $(uname -r); bundle: $N scenarios, $files files, $bytes bytes" >&2

"$BIN" emit-promotion --bundle out --out pk.json -q
# One --prepare per command, in order (hyperfine pairs them).
hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/promote.json" \
  --prepare true \
  --prepare true \
  --prepare "rm -rf $WORK/p/maps" \
  --prepare "$BIN promote --packets pk.json --out maps -q" \
  --prepare true \
  -n emit "$BIN emit-promotion --bundle out --out emit.json --overwrite -q" \
  -n summarize "$BIN summarize-ops --packet pk.json --out ops.json -q" \
  -n promote-new "$BIN promote --packets pk.json --out maps -q" \
  -n promote-again "$BIN promote --packets pk.json --out maps -q" \
  -n b3sum "find $bundle -type f -exec b3sum {} +"

rss() { /usr/bin/time -f '%M' -o "$WORK/rss" "$@" >/dev/null 2>&1; cat "$WORK/rss"; }
rm -rf maps
emit_rss=$(rss "$BIN" emit-promotion --bundle out --out emit.json --overwrite -q)
promote_rss=$(rss "$BIN" promote --packets pk.json --out maps -q)

python3 - "$WORK/promote.json" "$emit_rss" "$promote_rss" <<'EOF'
import json, sys
res = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
print()
for k in ["emit", "summarize", "promote-new", "promote-again", "b3sum"]:
    print(f"{k:14s} {res[k] * 1000:8.1f} ms median")
print(f"emit / b3sum   {res['emit'] / res['b3sum']:8.2f}x")
print(f"peak RSS: emit {int(sys.argv[2]) / 1024:.1f} MiB, promote {int(sys.argv[3]) / 1024:.1f} MiB")
EOF
