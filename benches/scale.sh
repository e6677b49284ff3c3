#!/usr/bin/env bash
# Benchmark of nexusmon at scale (release build), every figure with its reference measured in
# this same run:
#
#   1. Peak RSS of `nexusmon run` at 100,000 builtin file-read scenarios (a policy matrix:
#      50 profiles x 2,000 probes; baseline + scenario + oracle lanes, sealed) against the
#      peak at 1,000 scenarios (50 x 20). Targets: ratio <= 1.5, and < 64 MiB.
#   2. Bundle bytes per scenario at 100,000 (no probe writes output beyond the helper's
#      result line, so there are no logs). Target: <= 1,200.
#   3. `validate-bundle` and `emit-promotion` on the 100,000-scenario bundle: median wall
#      time and peak RSS against `b3sum` over the same files (b3sum --check BLAKE3SUMS).
#   4. `plan-lint` (load + every check) of the 100,000-scenario plan: median wall time
#      (target: well under 1 s per 10,000 scenarios) and peak RSS, against `python3 -c
#      json.load` of the same plan (parse only) and against plan-lint of the 1,000 plan.
#
# Peak RSS is GNU time's "Maximum resident set size" (/usr/bin/time -v); before every
# measured command of nexusmon the binary's pages are dropped from the page cache
# (posix_fadvise DONTNEED after an fsync), so every peak starts from the same state: a
# freshly copied or freshly built binary otherwise measured 1.3-3.5 MiB more than the same
# bytes read back from disk, which moved the 100,000/1,000 ratio by up to 0.1. Times are medians
# of RUNS runs (default 5); the 100k run itself is made once (a few minutes at the
# machine's rate of children) and its bundle reused, the 1k run RUNS times.
#
# Output: one figure per line, `name: value unit` (names below), after a header line; the
# per-file breakdown of the big bundle follows as `bundle_file <name>: <bytes> B/scenario`.
#
# Machine-readable: with KEEP=1, BENCH_DIR/m.txt keeps every measurement, one line each
# (`NAME WALL_S MAXRSS_KIB`), and BENCH_DIR/p<N>/out/ the bundles (benches/table.sh reads them).
# Usage: benches/scale.sh [N_BIG] [N_SMALL]   (defaults 100000 1000)
# Env: RUNS (default 5), JOBS (default 2), BENCH_DIR (default: a fresh dir under target/),
#      KEEP=1 keeps it, NEXUSMON_BIN (a binary to measure instead of building one). Needs python3, b3sum, /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # EPOCHREALTIME and awk with a decimal point
BIG=${1:-100000}
SMALL=${2:-1000}
RUNS=${RUNS:-5}
JOBS=${JOBS:-2}
for t in b3sum /usr/bin/time python3; do
  command -v "$t" >/dev/null || { echo "scale.sh: needs $t" >&2; exit 2; }
done

# NEXUSMON_BIN: measure that binary instead of building target/release/nexusmon.
[ -n "${NEXUSMON_BIN:-}" ] || cargo build --release --quiet
BIN=$(realpath "${NEXUSMON_BIN:-$PWD/target/release/nexusmon}")
W=${BENCH_DIR:-$(mktemp -d "$PWD/target/scale-bench.XXXXXX")}
mkdir -p "$W"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$W"' EXIT
log() { printf '== %s\n' "$*" >&2; }

for n in "$SMALL" "$BIG"; do
  [ -d "$W/p$n" ] || python3 benches/run_gen.py "$W/p$n" matrix "$n" on 50
done

# evict FILE: drop FILE's pages from the page cache (written back first; pages a running
# process maps stay).
evict() {
  python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)' "$1"
}

# measure NAME CMD...: one run under GNU time; appends "NAME wall_s rss_kib" to $W/m.txt.
# A run of the nexusmon binary starts with its pages evicted (see the header).
measure() {
  local name=$1; shift
  [ "$1" != "$BIN" ] || evict "$BIN"
  local t0=$EPOCHREALTIME
  /usr/bin/time -f '%M' -o "$W/t.txt" "$@" >/dev/null 2>"$W/err.txt" || {
    local rc=$?
    # `run` exits 1 on mismatches; anything else is a failure of the benchmark.
    if [ "$rc" -ne 1 ]; then cat "$W/err.txt" >&2; echo "scale.sh: $name failed ($rc)" >&2; exit 1; fi
  }
  local t1=$EPOCHREALTIME
  # Wall time from bash's microsecond clock around GNU time (whose %e has 10 ms steps, as
  # long as validate-bundle takes); it includes starting `time`, about 1 ms.
  echo "$name $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }') $(tail -1 "$W/t.txt")" >>"$W/m.txt"
}
: >"$W/m.txt"

log "run, $SMALL scenarios, $RUNS times"
for _ in $(seq "$RUNS"); do
  rm -rf "$W/p$SMALL/out"
  measure run-small "$BIN" run --plan "$W/p$SMALL/plans/matrix/plan.json" --out "$W/p$SMALL/out" -q --jobs "$JOBS"
done
small_bundle=$(ls -d "$W/p$SMALL"/out/2*)
log "run, $BIG scenarios, once"
if [ ! -d "$W/p$BIG/out" ]; then
  measure run-big "$BIN" run --plan "$W/p$BIG/plans/matrix/plan.json" --out "$W/p$BIG/out" -q --jobs "$JOBS"
  grep '^run-big ' "$W/m.txt" >"$W/run-big.txt"
else
  cat "$W/run-big.txt" >>"$W/m.txt"
fi
big_bundle=$(ls -d "$W/p$BIG"/out/2*)

log "validate-bundle / emit-promotion / b3sum on the $BIG bundle, lint of both plans, $RUNS times each"
for _ in $(seq "$RUNS"); do
  measure validate "$BIN" validate-bundle --bundle "$big_bundle"
  rm -f "$W/packet.json" "$W/packet.intoto.json"
  measure emit "$BIN" emit-promotion --bundle "$big_bundle" --out "$W/packet.json"
  (cd "$big_bundle" && measure b3sum b3sum --check BLAKE3SUMS)
  measure lint-big "$BIN" plan-lint "$W/p$BIG/plans/matrix/plan.json"
  measure lint-small "$BIN" plan-lint "$W/p$SMALL/plans/matrix/plan.json"
  measure json-load python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$W/p$BIG/plans/matrix/plan.json"
done

python3 - "$W/m.txt" "$big_bundle" "$small_bundle" "$BIG" "$SMALL" <<'PY'
import os, statistics, sys
path, big_b, small_b, big, small = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
m = {}
for line in open(path):
    name, wall, rss = line.split()
    m.setdefault(name, []).append((float(wall), int(rss)))
med = lambda name, i: statistics.median(x[i] for x in m[name])
mib = lambda kib: kib / 1024
def size(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
print(f"# scenarios {big} (50 profiles x {big // 50} builtin probes) vs {small}; medians of {len(m['validate'])} runs")
def fig(name, value, unit=""):
    print(f"{name}: {value}{(' ' + unit) if unit else ''}")
rb, rs = med("run-big", 1), med("run-small", 1)
fig("run_peak_rss_big", f"{mib(rb):.1f}", "MiB")
fig("run_peak_rss_small", f"{mib(rs):.1f}", "MiB")
fig("run_peak_rss_ratio", f"{rb / rs:.2f}", "(target <= 1.5, and big < 64 MiB)")
fig("run_wall_big", f"{med('run-big', 0):.1f}", "s")
fig("run_children_per_s_big", f"{2 * big / med('run-big', 0):.0f}")
fig("run_wall_small", f"{med('run-small', 0):.3f}", "s")
bb, bs = size(big_b), size(small_b)
fig("bundle_bytes_per_scenario_big", f"{bb / big:.0f}", "B (target <= 1200)")
fig("bundle_bytes_big", bb, "B")
fig("bundle_bytes_per_scenario_small", f"{bs / small:.0f}", "B")
for f in sorted(os.listdir(big_b)):
    p = os.path.join(big_b, f)
    if os.path.isfile(p):
        fig(f"bundle_file {f}", f"{os.path.getsize(p) / big:.1f}", "B/scenario")
# Wall times have microsecond steps (bash's EPOCHREALTIME around GNU time); a reference
# under 1 ms is taken as 1 ms (a ratio against it is then a lower bound).
def ratio(a, b):
    return a / max(b, 0.001)
b3w, b3r = med("b3sum", 0), med("b3sum", 1)
fig("b3sum_wall", f"{b3w:.3f}", "s")
fig("b3sum_peak_rss", f"{mib(b3r):.1f}", "MiB")
for name, what in (("validate", "validate_bundle"), ("emit", "emit_promotion")):
    w, r = med(name, 0), med(name, 1)
    fig(f"{what}_wall", f"{w:.3f}", "s")
    fig(f"{what}_peak_rss", f"{mib(r):.1f}", "MiB")
    fig(f"{what}_wall_vs_b3sum", f"{ratio(w, b3w):.2f}", "x")
    fig(f"{what}_rss_vs_b3sum", f"{r / b3r:.2f}", "x")
lb, ls, jl = med("lint-big", 0), med("lint-small", 0), med("json-load", 0)
fig("plan_lint_wall_big", f"{lb:.3f}", "s")
fig("plan_lint_wall_per_10k_big", f"{lb / (big / 10000):.3f}", "s (target well under 1)")
fig("plan_lint_peak_rss_big", f"{mib(med('lint-big', 1)):.1f}", "MiB")
fig("plan_lint_wall_small", f"{ls:.3f}", "s")
fig("plan_lint_peak_rss_small", f"{mib(med('lint-small', 1)):.1f}", "MiB")
fig("json_load_wall_big", f"{jl:.3f}", "s")
fig("json_load_peak_rss_big", f"{mib(med('json-load', 1)):.1f}", "MiB")
fig("plan_lint_vs_json_load_wall", f"{ratio(lb, jl):.1f}", "x")
fig("plan_lint_big_vs_small_wall", f"{ratio(lb, ls):.1f}", "x")
PY

# 5. The other readers of a bundle (benches/stream.sh: validate-bundle, emit-promotion,
#    summarize-ops, promote, report, diff; wall, CPU, peak RSS against b3sum), on both
#    bundles, one figure per line.
STREAM_LIB=1 . benches/stream.sh
NEXUSMON_BIN=$BIN stream_bench "$small_bundle" "$big_bundle"
