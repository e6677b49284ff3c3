#!/usr/bin/env bash
# Issue 16's whole table in one run (release build), every figure beside its reference
# measured in this same run, as medians and ratios:
#
#   - builtin probes: children/s against the fork floor (benches/fork_floor.c, built here)
#   - exec probes: time against `xargs -P 2` and the bare spawn loop (benches/spawn_loop.c)
#   - peak RSS of `run` at SMALL and at BIG builtin scenarios (ratio, MiB)
#   - bundle bytes per scenario at BIG (total and per file)
#   - validate-bundle and emit-promotion on the BIG bundle: time and peak RSS against b3sum
#     over the same files; plan-lint of the BIG plan against python's json.load of it
#
# It runs benches/probes.sh (PROBES_OUT: one line per measurement) and benches/scale.sh
# (KEEP=1 BENCH_DIR: its measurements in BENCH_DIR/m.txt, `NAME WALL_S MAXRSS_KIB`, and its
# bundles under BENCH_DIR/p<N>/out/) with one binary, then prints one table from both. Each
# script's own summary goes to stderr with its progress.
#
# Time: about RUNS x (1,000 builtin + 5,000 exec probe runs and their references, ~1 min
# on an idle 2-core machine) plus the BIG run once (minutes at 100,000) and RUNS x the
# bundle commands. Shrink with the knobs below.
# Usage: benches/table.sh
# Env: RUNS (5), N_BUILTIN (1000), N_EXEC (5000), SCALE_BIG (100000), SCALE_SMALL (1000),
#      JOBS (2), NEXUSMON_BIN (measure that binary instead of building one).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
BIG=${SCALE_BIG:-100000}
SMALL=${SCALE_SMALL:-1000}
for t in python3 cc b3sum /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "benches/table.sh needs $t" >&2; exit 2; }
done
[ -n "${NEXUSMON_BIN:-}" ] || cargo build --release --quiet
export NEXUSMON_BIN="$(realpath "${NEXUSMON_BIN:-$PWD/target/release/nexusmon}")"
T="$(mktemp -d "$PWD/target/table-bench.XXXXXX")"
trap 'rm -rf "$T"' EXIT

echo "== benches/probes.sh $RUNS" >&2
PROBES_OUT="$T/probes.txt" benches/probes.sh "$RUNS" >&2
echo "== benches/scale.sh $BIG $SMALL" >&2
scale_rc=0
RUNS=$RUNS KEEP=1 BENCH_DIR="$T/scale" benches/scale.sh "$BIG" "$SMALL" >&2 2>"$T/scale.err" || scale_rc=$?
tail -n 20 "$T/scale.err" >&2

python3 - "$T" "$BIG" "$SMALL" "$scale_rc" "${N_BUILTIN:-1000}" "${N_EXEC:-5000}" <<'PY'
import glob, os, statistics as st, sys
t, big, small, scale_rc, nb, ne = sys.argv[1], *map(int, sys.argv[2:])
probes = {}
for line in open(f"{t}/probes.txt"):
    name, rnd, wall, user, sys_, rss = line.split()
    probes.setdefault(name, []).append((float(wall), float(user) + float(sys_), int(rnd)))
scale = {}
if os.path.exists(f"{t}/scale/m.txt"):
    for line in open(f"{t}/scale/m.txt"):
        name, wall, rss = line.split()
        scale.setdefault(name, []).append((float(wall), int(rss)))
pm = lambda k, i=0: st.median(x[i] for x in probes[k])
sm = lambda k, i: st.median(x[i] for x in scale[k])
mib = lambda kib: kib / 1024
ok = lambda c: "OK" if c else "MISSED"
# Wall times have microsecond steps (bash's EPOCHREALTIME); a reference under 1 ms is
# shown as a ratio against 1 ms.
div = lambda a, b: a / max(b, 0.001)
rows = []  # (workload, nexusmon, reference, ratio, target)
c_b, c_e = 2 * nb, 2 * ne
rate = c_b / pm("builtin")
floor = c_b / pm("fork-floor")
iso = c_b / pm("fork-floor-isolated")
rows.append((f"{nb:,} builtin file-read probes, both lanes ({c_b:,} children), oracle on, sealed",
             f"{pm('builtin'):.3f} s = {rate:,.0f} children/s; CPU {1e6 * pm('builtin', 1) / c_b:.0f} us/child",
             f"fork floor {floor:,.0f}/s (CPU {1e6 * pm('fork-floor', 1) / c_b:.0f} us/child); with namespaces {iso:,.0f}/s",
             f"{rate / floor:.3f}x floor; {rate / iso:.3f}x isolated",
             f">= 8,000/s {ok(rate >= 8000)}; >= 0.45x {ok(rate / floor >= 0.45)}"))
paired = st.median(e[0] / s[0] for e in probes["exec"] for s in probes["spawn-loop"] if e[2] == s[2])
rows.append((f"{ne:,} exec probes /bin/true, both lanes ({c_e:,} children)",
             f"{pm('exec'):.2f} s = {c_e / pm('exec'):,.0f} children/s; CPU {1e6 * pm('exec', 1) / c_e:.0f} us/child",
             f"spawn loop {pm('spawn-loop'):.2f} s (CPU {1e6 * pm('spawn-loop', 1) / c_e:.0f} us/child); with setsid {pm('spawn-loop-setsid'):.2f} s; xargs -P 2 {pm('xargs'):.2f} s",
             f"{pm('exec') / pm('spawn-loop'):.2f}x loop (per round {paired:.2f}x); {pm('exec') / pm('spawn-loop-setsid'):.2f}x setsid loop; {pm('exec') / pm('xargs'):.2f}x xargs; CPU {pm('exec', 1) / pm('spawn-loop', 1):.2f}x loop",
             f"<= 1.25x {ok(pm('exec') / pm('spawn-loop') <= 1.25)}"))
if "run-small" in scale:
    rows.append((f"peak RSS, {small:,} builtin scenarios (50 profiles)", f"{mib(sm('run-small', 1)):.1f} MiB", "-", "-", "-"))
if "run-big" in scale:
    rb, rs = sm("run-big", 1), sm("run-small", 1)
    rows.append((f"peak RSS, {big:,} builtin scenarios",
                 f"{mib(rb):.1f} MiB; run {sm('run-big', 0):.1f} s ({2 * big / sm('run-big', 0):,.0f} children/s)",
                 f"{small:,} scenarios {mib(rs):.1f} MiB", f"{rb / rs:.2f}x",
                 f"<= 1.5x {ok(rb / rs <= 1.5)}; < 64 MiB {ok(mib(rb) < 64)}"))
    bundles = glob.glob(f"{t}/scale/p{big}/out/2*")
    if bundles:
        b = bundles[0]
        files = sorted((os.path.relpath(os.path.join(r, f), b), os.path.getsize(os.path.join(r, f)))
                       for r, _, fs in os.walk(b) for f in fs)
        total = sum(s for _, s in files)
        rows.append((f"bundle size, {big:,} scenarios", f"{total / 1e6:.1f} MB = {total / big:,.0f} B/scenario",
                     "-", "-", f"<= 1,200 B/scenario {ok(total / big <= 1200)}"))
        for name, s in files:
            rows.append((f"  {name}", f"{s:,} B = {s / big:,.1f} B/scenario", "", "", ""))
    if "b3sum" in scale:
        bw, br = sm("b3sum", 0), sm("b3sum", 1)
        for k, what in (("validate", "validate-bundle"), ("emit", "emit-promotion")):
            if k in scale:
                w, r = sm(k, 0), sm(k, 1)
                rows.append((f"{what}, {big:,}-scenario bundle", f"{w:.3f} s, {mib(r):.1f} MiB",
                             f"b3sum --check {bw:.3f} s, {mib(br):.1f} MiB",
                             f"{div(w, bw):.1f}x time, {r / br:.1f}x RSS", "(in the note)"))
    if "lint-big" in scale and "json-load" in scale:
        lb = sm("lint-big", 0)
        rows.append((f"plan-lint, {big:,}-scenario plan", f"{lb:.3f} s = {lb / (big / 10000):.4f} s per 10k; {mib(sm('lint-big', 1)):.1f} MiB",
                     f"python json.load {sm('json-load', 0):.3f} s, {mib(sm('json-load', 1)):.1f} MiB",
                     f"{div(lb, sm('json-load', 0)):.1f}x", f"well under 1 s per 10k {ok(lb / (big / 10000) < 1)}"))
if scale_rc:
    err = open(f"{t}/scale.err").read().strip().splitlines()
    rows.append((f"benches/scale.sh {big} {small}", f"FAILED (exit {scale_rc})", err[-1] if err else "", "", "rows missing"))
heads = ("workload", "nexusmon", "reference (same run)", "ratio", "target")
w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
print(f"\nissue 16, medians of {len(probes['exec'])} interleaved rounds (probes) / {len(scale.get('validate', []))} runs (bundle commands)")
print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(heads)) + " |")
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |")
print(f"(load average at the end: {open('/proc/loadavg').read().split()[0]}; machine: {os.cpu_count()} cores)")
PY
