#!/usr/bin/env bash
# Benchmark of `nexusmon report` (release build) on one large bundle, measured with
# hyperfine (median of >= 5 runs) and /usr/bin/time (peak RSS):
#
#   A. report --bundle: the bundle checked strictly, every result file read and parsed, the
#      packet derived again, the HTML page rendered and written.
#   B. report --format junit: the same reading, JUnit XML rendered.
#   C. emit-promotion of the same bundle, for scale: the same strict read and derivation,
#      without rendering (so A − C is what rendering costs).
#   D. headless Chromium loading the page to its DOM (`--dump-dom`), against the same
#      Chromium loading a one-line page: how long the page takes to open.
#
# The bundle: a generated plan of N builtin file-read probes (default 20,000) under one
# Landlock profile, baseline + scenario + oracle lanes, every 50th expecting a denial the
# kernel does not give (so the page has mismatches to show first).
# Usage: benches/report.sh [N] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-20000}"
RUNS="${2:-5}"
for tool in hyperfine python3 chromium /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "benches/report.sh needs $tool" >&2; exit 2; }
done

cargo build --release --quiet
BIN="$PWD/target/release/nexusmon"
WORK="$(mktemp -d /tmp/nexusmon-bench-report.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

python3 benches/run_gen.py "$WORK/p" builtin "$N" on
python3 - "$WORK/p/plans/builtin/plan.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
s = p["scenarios"]["usr-ro"]
for i, k in enumerate(sorted(s)):
    if i % 50 == 0:
        s[k] = "deny"
json.dump(p, open(sys.argv[1], "w"))
PY
cd "$WORK/p"
"$BIN" run --plan plans/builtin/plan.json --out out --jobs 2 -q || true
bundle="$(ls -d out/2*)"
echo "== machine: $(nproc) cores, $(uname -r); bundle: $N scenarios, $(find "$bundle" -type f | wc -l) files" >&2

"$BIN" report --bundle out --out page.html -q || true
echo '<!doctype html><title>x</title><p>x' > tiny.html
chrome="chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync --user-data-dir=$WORK/chrome"
hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/report.json" \
  -n report-html "$BIN report --bundle out --out page.html -q" \
  -n report-junit "$BIN report --bundle out --format junit --out junit.xml -q" \
  -n emit "$BIN emit-promotion --bundle out --out emit.json --overwrite -q" \
  -n chromium-page "$chrome --dump-dom file://$WORK/p/page.html > /dev/null 2>&1" \
  -n chromium-tiny "$chrome --dump-dom file://$WORK/p/tiny.html > /dev/null 2>&1"

/usr/bin/time -f '%M' -o "$WORK/rss" "$BIN" report --bundle out --out page.html -q >/dev/null 2>&1 || true
python3 - "$WORK/report.json" "$(cat "$WORK/rss")" page.html junit.xml <<'PY'
import json, os, sys
res = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
print()
for k in ["report-html", "report-junit", "emit", "chromium-page", "chromium-tiny"]:
    print(f"{k:14s} {res[k] * 1000:8.1f} ms median")
print(f"report-html / emit            {res['report-html'] / res['emit']:6.2f}x")
print(f"chromium page / tiny page     {res['chromium-page'] / res['chromium-tiny']:6.2f}x")
print(f"page size {os.path.getsize(sys.argv[3]) / 2**20:.2f} MiB, JUnit {os.path.getsize(sys.argv[4]) / 2**20:.2f} MiB")
print(f"peak RSS: report {int(sys.argv[2]) / 1024:.1f} MiB")
PY
