#!/usr/bin/env bash
# What each of the exec children's guarantees costs on this machine, one step at a time:
# the bare spawn loop of benches/probes.sh (2 x N_EXEC children of /bin/true, one loop per
# core, each child in a directory of its own with its output in files there) with one
# per-child step of nexusmon's added (benches/spawn_ladder.c, built here: `s` a session of
# its own, `p` one shared PID namespace, `n` a private read-only copy of the mount
# namespace with its directory writable, `h` that copy for every other child as in a
# both-lanes run, `l` Landlock (with `h`: only for the children that do not copy, the
# scenario lane), `r` with `n`/`h`: the copy's teardown handed to a releaser thread as
# nexusmon's is), all of them (with and without `r`: the floor of a both-lanes run's own
# children), and nexusmon's exec bench itself
# (benches/run_gen.py exec, both lanes, the oracle on) — interleaved rounds after a
# warm-up, `sync` between commands, GNU time for each. Prints medians of wall and CPU
# (user + system of the command and its children: not the kernel threads' work a step
# causes, such as RCU callbacks and expedited grace periods) and each row's extra CPU per
# child over the bare loop.
# Needs root (namespaces). Usage: benches/ladder.sh [runs]
# Env: LADDER_STEPS (the rows, `-` the bare loop, which every run needs: default
#      "- s p n nr h hr l sphl sphlr"), N_EXEC (5000), NEXUSMON_BIN (a binary to measure instead of building one; `none`:
#      the ladder only), SPAWN_DIR_PARENT (/dev/shm, as probes.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${1:-3}"
N_EXEC="${N_EXEC:-5000}"
for tool in python3 cc /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "benches/ladder.sh needs $tool" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "benches/ladder.sh needs root (PID and mount namespaces)" >&2; exit 2; }
BIN="${NEXUSMON_BIN:-}"
if [ -z "$BIN" ]; then
  cargo build --release --quiet
  BIN="$PWD/target/release/nexusmon"
fi
[ "$BIN" = none ] || BIN="$(realpath "$BIN")"
WORK="$(mktemp -d /tmp/nexusmon-ladder.XXXXXX)"
SP="$(mktemp -d "${SPAWN_DIR_PARENT:-/dev/shm}/nexusmon-ladder.XXXXXX")"
trap 'rm -rf "$WORK" "$SP"' EXIT

cc -O2 -pthread -o "$WORK/spawn_ladder" benches/spawn_ladder.c
python3 benches/run_gen.py "$WORK/exec" exec "$N_EXEC" on
echo "== machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); runs=$RUNS" >&2

declare -a NAMES CMDS
row() { NAMES+=("$1"); CMDS+=("$2"); }
for steps in ${LADDER_STEPS:-- s p n nr h hr l sphl sphlr}; do
  s="$steps"
  [ "$s" = - ] && s=""
  row "loop${s:+ +$s}" \
    "rm -rf $SP/a $SP/b && mkdir $SP/a $SP/b && { $WORK/spawn_ladder $N_EXEC $SP/a '$s' & $WORK/spawn_ladder $N_EXEC $SP/b '$s'; wait; }"
done
[ "$BIN" = none ] ||
  row nexusmon "rm -rf $WORK/out && $BIN run --plan $WORK/exec/plans/exec/plan.json --out $WORK/out --jobs 2 -q"

: >"$WORK/m.txt"
for round in $(seq 0 "$RUNS"); do
  for i in "${!NAMES[@]}"; do
    sync
    # The preparation (removing the last round's files) is timed too: small beside a run
    # on tmpfs, and the same for every loop row.
    /usr/bin/time -f '%e %U %S' -o "$WORK/t.txt" bash -c "${CMDS[$i]}" >/dev/null 2>"$WORK/err.txt" || {
      cat "$WORK/err.txt" >&2
      echo "benches/ladder.sh: ${NAMES[$i]} failed" >&2
      exit 1
    }
    [ "$round" = 0 ] || echo "${NAMES[$i]// /_} $round $(tail -1 "$WORK/t.txt")" >>"$WORK/m.txt"
  done
  [ "$round" = 0 ] || echo "== round $round/$RUNS done" >&2
done

python3 - "$WORK/m.txt" "$N_EXEC" <<'PY'
import statistics as st, sys
path, ne = sys.argv[1], int(sys.argv[2])
runs = {}
for line in open(path):
    name, rnd, wall, user, sys_ = line.split()
    runs.setdefault(name.replace("_", " "), []).append((float(wall), float(user) + float(sys_)))
children = 2 * ne
base = st.median(c for _, c in runs["loop"])
base_wall = st.median(w for w, _ in runs["loop"])
print()
print(f"{'command':<12} {'wall s':>8} {'x loop':>7} {'CPU s':>8} {'x loop':>7} {'CPU us/child':>13} {'extra us/child':>15}  (medians of {len(runs['loop'])} interleaved rounds, {children} children each)")
for k, v in runs.items():
    w, c = st.median(x for x, _ in v), st.median(y for _, y in v)
    print(f"{k:<12} {w:>8.2f} {w / base_wall:>7.2f} {c:>8.2f} {c / base:>7.2f} {1e6 * c / children:>13.0f} {1e6 * (c - base) / children:>15.0f}")
print(f"(load average at the end: {open('/proc/loadavg').read().split()[0]}; other work on the machine slows every row)")
PY
