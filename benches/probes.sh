#!/usr/bin/env bash
# Builtin and exec probes against their floors, all measured in this one script on this
# machine with hyperfine (median of RUNS runs each; every reference in the same run):
#
#   Builtin: N_BUILTIN file-read probes, baseline + scenario (2 x N_BUILTIN children forked
#   by the fork servers), the oracle lane on, the bundle sealed — against the fork floor
#   (benches/fork_floor.c, built here: fork -> Landlock restrict -> open/read -> _exit, one
#   loop per core), plain and with the namespaces every probe child here also gets (its own
#   mount and PID namespace and a fresh /proc).
#   Exec: N_EXEC exec probes of /bin/true, both lanes (2 x N_EXEC children) — against
#   `xargs -P 2` over the same number of children and a bare spawn loop
#   (benches/spawn_loop.c, built here: posix_spawn with per-child stdout/stderr files,
#   one loop per core).
#
# Targets (issue 16): builtin >= 8,000 children/s and >= 0.45x the fork floor; exec
# <= 1.25x the bare spawn loop's time. Prints medians, children/s and ratios.
# Usage: benches/probes.sh [runs]   (N_BUILTIN, N_EXEC from the environment)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${1:-5}"
N_BUILTIN="${N_BUILTIN:-1000}"
N_EXEC="${N_EXEC:-5000}"
for tool in hyperfine python3 cc; do
  command -v "$tool" >/dev/null || { echo "benches/probes.sh needs $tool" >&2; exit 2; }
done

cargo build --release --quiet
BIN="$PWD/target/release/nexusmon"
WORK="$(mktemp -d /tmp/nexusmon-probes.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

cc -O2 -o "$WORK/fork_floor" benches/fork_floor.c
cc -O2 -o "$WORK/spawn_loop" benches/spawn_loop.c
python3 benches/run_gen.py "$WORK/builtin" builtin "$N_BUILTIN" on
python3 benches/run_gen.py "$WORK/exec" exec "$N_EXEC" on
seq "$((2 * N_EXEC))" >"$WORK/commands"
echo "== machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); runs=$RUNS" >&2

# Both lanes: 2 x N children; each floor runs N per core on 2 cores.
hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/builtin.json" \
  --prepare "rm -rf $WORK/out-bi" \
  -n builtin "$BIN run --plan $WORK/builtin/plans/builtin/plan.json --out $WORK/out-bi --jobs 2 -q" \
  -n fork-floor "sh -c '$WORK/fork_floor $N_BUILTIN & $WORK/fork_floor $N_BUILTIN; wait'" \
  -n fork-floor-isolated "sh -c '$WORK/fork_floor $N_BUILTIN i & $WORK/fork_floor $N_BUILTIN i; wait'"

hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/exec.json" \
  --prepare "rm -rf $WORK/out-ex $WORK/sp && mkdir -p $WORK/sp/a $WORK/sp/b" \
  -n exec "$BIN run --plan $WORK/exec/plans/exec/plan.json --out $WORK/out-ex --jobs 2 -q" \
  -n xargs "xargs -P 2 -n 1 /bin/true <$WORK/commands" \
  -n spawn-loop "sh -c '$WORK/spawn_loop $N_EXEC $WORK/sp/a /bin/true & $WORK/spawn_loop $N_EXEC $WORK/sp/b /bin/true; wait'"

# The bundles really are sealed (one more run each: hyperfine's --prepare removed them).
rm -rf "$WORK/out-bi" "$WORK/out-ex"
"$BIN" run --plan "$WORK/builtin/plans/builtin/plan.json" --out "$WORK/out-bi" --jobs 2 -q
"$BIN" run --plan "$WORK/exec/plans/exec/plan.json" --out "$WORK/out-ex" --jobs 2 -q
for out in "$WORK/out-bi" "$WORK/out-ex"; do
  b="$out/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$out/LATEST")"
  (cd "$b" && b3sum --check --quiet BLAKE3SUMS) || { echo "bundle check failed: $b" >&2; exit 1; }
done

python3 - "$WORK" "$N_BUILTIN" "$N_EXEC" <<'PY'
import json, sys
work, nb, ne = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
med, cpu = {}, {}
for f in ("builtin", "exec"):
    for r in json.load(open(f"{work}/{f}.json"))["results"]:
        med[r["command"]] = r["median"]
        cpu[r["command"]] = r["user"] + r["system"]
def row(name, children):
    print(f"{name:<20} {med[name]:>9.3f} {children / med[name]:>11.0f} {cpu[name]:>10.3f}")
print()
# CPU s: mean user + system of the command and everything it waited for (less sensitive
# than wall time to the other work on a shared machine).
print(f"{'command':<20} {'median s':>9} {'children/s':>11} {'CPU s':>10}")
for k in ("builtin", "fork-floor", "fork-floor-isolated"):
    row(k, 2 * nb)
for k in ("exec", "xargs", "spawn-loop"):
    row(k, 2 * ne)
print()
rate = 2 * nb / med["builtin"]
r_floor = med["fork-floor"] / med["builtin"]
r_iso = med["fork-floor-isolated"] / med["builtin"]
print(f"builtin: {rate:.0f} children/s (target >= 8000) {'OK' if rate >= 8000 else 'MISSED'}")
print(f"builtin vs fork floor:          {r_floor:.3f}x (target >= 0.45x) {'OK' if r_floor >= 0.45 else 'MISSED'}")
print(f"builtin vs isolated fork floor: {r_iso:.3f}x")
r_spawn = med["exec"] / med["spawn-loop"]
r_xargs = med["exec"] / med["xargs"]
print(f"exec time vs bare spawn loop:   {r_spawn:.2f}x (target <= 1.25x) {'OK' if r_spawn <= 1.25 else 'MISSED'}")
print(f"exec time vs xargs -P 2:        {r_xargs:.2f}x")
print(f"CPU time: builtin vs fork floor {cpu['builtin'] / cpu['fork-floor']:.2f}x, "
      f"exec vs bare spawn loop {cpu['exec'] / cpu['spawn-loop']:.2f}x")
print(f"(load average at the end: {open('/proc/loadavg').read().split()[0]}; other work on the machine slows every row)")
PY
