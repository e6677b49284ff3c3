#!/usr/bin/env bash
# Builtin and exec probes against their floors, all measured in this one script on this
# machine, every reference in the same run:
#
#   Builtin: N_BUILTIN file-read probes, baseline + scenario (2 x N_BUILTIN children forked
#   by the fork servers), the oracle lane on, the bundle sealed — against the fork floor
#   (benches/fork_floor.c, built here: fork -> Landlock restrict -> open/read -> _exit, one
#   loop per core), plain and with the namespaces every probe child here also gets (its own
#   mount and PID namespace and a fresh /proc).
#   Exec: N_EXEC exec probes of /bin/true, both lanes (2 x N_EXEC children) — against
#   `xargs -P 2` over the same number of children and a bare spawn loop
#   (benches/spawn_loop.c, built here: posix_spawn of each child in a directory of its own
#   with its stdout/stderr in files there, one loop per core), and, not a target, the same
#   loop with each child in a session of its own (POSIX_SPAWN_SETSID), as nexusmon's are.
#
# Fairness of the exec comparison: nexusmon creates one scratch directory per child under
# /dev/shm (a tmpfs; `fixtures::Scratch::default_parent`), so the spawn loop's per-child
# directories and output files go there too (SPAWN_DIR_PARENT). On ext4 (/tmp here) the
# loop's 20,000 file creations and the deletion of the previous run's files (journal,
# writeback shared with every other process on the disk) made its time vary 3-8 s from run
# to run; on tmpfs it is stable. Commands are measured interleaved (round r runs every
# command once, in a fixed order), after a warm-up round, with `sync` between commands so
# one command's writeback does not land in the next one's time; each is measured with GNU
# time (wall, user, system, peak RSS). Ratios are of medians, and the exec/spawn-loop
# ratio also as the median of the per-round ratios (paired: the same machine state).
#
# Targets (issue 16): builtin >= 8,000 children/s and >= 0.45x the fork floor; exec
# <= 1.25x the bare spawn loop's time. Prints medians, children/s, CPU per child, ratios.
# Usage: benches/probes.sh [runs]
# Env: N_BUILTIN (1000), N_EXEC (5000), JOBS (2), NEXUSMON_BIN (a binary to measure instead
#      of building one), SPAWN_DIR_PARENT (/dev/shm), ONLY (builtin|exec: one half),
#      PROBES_OUT (also write every measurement there, one line each:
#      `NAME ROUND WALL_S USER_S SYS_S MAXRSS_KIB`; benches/table.sh reads it).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # EPOCHREALTIME and awk with a decimal point

RUNS="${1:-5}"
N_BUILTIN="${N_BUILTIN:-1000}"
N_EXEC="${N_EXEC:-5000}"
JOBS="${JOBS:-2}"
ONLY="${ONLY:-}"
for tool in python3 cc b3sum /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "benches/probes.sh needs $tool" >&2; exit 2; }
done

[ -n "${NEXUSMON_BIN:-}" ] || cargo build --release --quiet
BIN="$(realpath "${NEXUSMON_BIN:-$PWD/target/release/nexusmon}")"
WORK="$(mktemp -d /tmp/nexusmon-probes.XXXXXX)"
SP="$(mktemp -d "${SPAWN_DIR_PARENT:-/dev/shm}/nexusmon-spawn-loop.XXXXXX")"
trap 'rm -rf "$WORK" "$SP"' EXIT

cc -O2 -o "$WORK/fork_floor" benches/fork_floor.c
cc -O2 -o "$WORK/spawn_loop" benches/spawn_loop.c
python3 benches/run_gen.py "$WORK/builtin" builtin "$N_BUILTIN" on
python3 benches/run_gen.py "$WORK/exec" exec "$N_EXEC" on
seq "$((2 * N_EXEC))" >"$WORK/commands"
echo "== machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); runs=$RUNS" >&2
echo "== spawn loop files: $(df --output=fstype "$SP" | tail -1) ($SP); nexusmon scratch: /dev/shm" >&2

# Each row: NAME, a preparation (not timed), the command. Both lanes: 2 x N children; each
# floor runs N per core (two loops at once).
declare -a NAMES PREPS CMDS
row() { NAMES+=("$1"); PREPS+=("$2"); CMDS+=("$3"); }
if [ "$ONLY" != exec ]; then
  row builtin "rm -rf $WORK/out-bi" \
    "$BIN run --plan $WORK/builtin/plans/builtin/plan.json --out $WORK/out-bi --jobs $JOBS -q"
  row fork-floor : "$WORK/fork_floor $N_BUILTIN & $WORK/fork_floor $N_BUILTIN; wait"
  row fork-floor-isolated : "$WORK/fork_floor $N_BUILTIN i & $WORK/fork_floor $N_BUILTIN i; wait"
fi
if [ "$ONLY" != builtin ]; then
  row exec "rm -rf $WORK/out-ex" \
    "$BIN run --plan $WORK/exec/plans/exec/plan.json --out $WORK/out-ex --jobs $JOBS -q"
  row xargs : "xargs -P $JOBS -n 1 /bin/true <$WORK/commands"
  row spawn-loop "rm -rf $SP/a $SP/b && mkdir $SP/a $SP/b" \
    "$WORK/spawn_loop $N_EXEC $SP/a /bin/true & $WORK/spawn_loop $N_EXEC $SP/b /bin/true; wait"
  # Not the issue's reference: the same loop with each child in a session of its own, as
  # nexusmon's are (a documented guarantee), to show what that guarantee costs here.
  row spawn-loop-setsid "rm -rf $SP/a $SP/b && mkdir $SP/a $SP/b" \
    "$WORK/spawn_loop $N_EXEC $SP/a /bin/true s & $WORK/spawn_loop $N_EXEC $SP/b /bin/true s; wait"
fi

: >"$WORK/m.txt"
for round in $(seq 0 "$RUNS"); do
  for i in "${!NAMES[@]}"; do
    sh -c "${PREPS[$i]}"
    sync
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%U %S %M' -o "$WORK/t.txt" sh -c "${CMDS[$i]}" >/dev/null 2>"$WORK/err.txt" || {
      cat "$WORK/err.txt" >&2
      echo "benches/probes.sh: ${NAMES[$i]} failed" >&2
      exit 1
    }
    t1=$EPOCHREALTIME
    # Wall time from bash's microsecond clock around GNU time (whose %e has 10 ms steps:
    # 4 % of a 0.24 s builtin run); it includes starting `time` and `sh`, about 1-2 ms,
    # alike for every row.
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    # Round 0 is the warm-up (page cache, binaries, the scratch parent).
    [ "$round" = 0 ] || echo "${NAMES[$i]} $round $wall $(tail -1 "$WORK/t.txt")" >>"$WORK/m.txt"
  done
  [ "$round" = 0 ] || echo "== round $round/$RUNS done" >&2
done
[ -z "${PROBES_OUT:-}" ] || cp "$WORK/m.txt" "$PROBES_OUT"

# The bundles of the last round really are sealed.
for out in "$WORK/out-bi" "$WORK/out-ex"; do
  [ -d "$out" ] || continue
  b="$out/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$out/LATEST")"
  (cd "$b" && b3sum --check --quiet BLAKE3SUMS) || { echo "bundle check failed: $b" >&2; exit 1; }
done

python3 - "$WORK/m.txt" "$N_BUILTIN" "$N_EXEC" <<'PY'
import statistics as st, sys
path, nb, ne = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = {}
for line in open(path):
    name, rnd, wall, user, sys_, rss = line.split()
    runs.setdefault(name, {})[int(rnd)] = (float(wall), float(user) + float(sys_))
med = {k: st.median(w for w, _ in v.values()) for k, v in runs.items()}
cpu = {k: st.median(c for _, c in v.values()) for k, v in runs.items()}
children = {"builtin": 2 * nb, "fork-floor": 2 * nb, "fork-floor-isolated": 2 * nb,
            "exec": 2 * ne, "xargs": 2 * ne, "spawn-loop": 2 * ne, "spawn-loop-setsid": 2 * ne}
print()
# CPU: user + system of the command and every child it waited for (less sensitive than
# wall time to the other work on a shared machine).
print(f"{'command':<20} {'median s':>9} {'children/s':>11} {'CPU s':>8} {'CPU us/child':>13}  (medians of {len(next(iter(runs.values())))} interleaved rounds)")
for k in children:
    if k in med:
        print(f"{k:<20} {med[k]:>9.3f} {children[k] / med[k]:>11.0f} {cpu[k]:>8.3f} {1e6 * cpu[k] / children[k]:>13.0f}")
print()
if "builtin" in med:
    rate = 2 * nb / med["builtin"]
    r_floor = med["fork-floor"] / med["builtin"]
    print(f"builtin: {rate:.0f} children/s (target >= 8000) {'OK' if rate >= 8000 else 'MISSED'}")
    print(f"builtin vs fork floor:          {r_floor:.3f}x (target >= 0.45x) {'OK' if r_floor >= 0.45 else 'MISSED'}")
    print(f"builtin vs isolated fork floor: {med['fork-floor-isolated'] / med['builtin']:.3f}x")
    print(f"CPU time: builtin vs fork floor {cpu['builtin'] / cpu['fork-floor']:.2f}x")
if "exec" in med:
    r_spawn = med["exec"] / med["spawn-loop"]
    paired = st.median(runs["exec"][r][0] / runs["spawn-loop"][r][0] for r in runs["exec"])
    print(f"exec time vs bare spawn loop:   {r_spawn:.2f}x (per-round median {paired:.2f}x) (target <= 1.25x) {'OK' if r_spawn <= 1.25 else 'MISSED'}")
    print(f"exec time vs xargs -P 2:        {med['exec'] / med['xargs']:.2f}x")
    print(f"exec time vs spawn loop with setsid: {med['exec'] / med['spawn-loop-setsid']:.2f}x (not a target: the loop's floor for the children's own sessions; setsid loop vs bare loop {med['spawn-loop-setsid'] / med['spawn-loop']:.2f}x)")
    print(f"CPU time: exec vs bare spawn loop {cpu['exec'] / cpu['spawn-loop']:.2f}x")
print(f"(load average at the end: {open('/proc/loadavg').read().split()[0]}; other work on the machine slows every row)")
PY
