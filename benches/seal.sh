#!/usr/bin/env bash
# The builtin bench run (N_BUILTIN file-read probes, both lanes, the oracle on, the bundle
# sealed) under three disk conditions, for one binary or two side by side (interleaved:
# round r runs A then B in each condition), to see what the seal's rounds of fsyncs cost
# when the disk is not idle:
#   idle   `sync` before each run (as benches/probes.sh);
#   dirty  1 GiB written and deleted without sync just before each run (the page cache's
#          writeback of it overlaps the run's start);
#   busy   a direct-I/O writer (`dd oflag=direct`, 4 MiB blocks) running through the whole
#          run, so every fsync's disk cache flush waits behind other writes.
# Each run is measured with GNU time; prints per condition and binary the median wall time,
# children/s and CPU (user + system), and the ratio of medians B/A.
# Usage: benches/seal.sh [runs]
# Env: NEXUSMON_BIN (binary A; default: build this tree), BASE_BIN (binary B, optional),
#      N_BUILTIN (1000), MODES ("idle dirty busy"), SEAL_DIR (where the out root and the
#      writer's file go: a directory on the disk under test; default a temp dir in /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # EPOCHREALTIME and awk with a decimal point
RUNS="${1:-5}"
N_BUILTIN="${N_BUILTIN:-1000}"
MODES="${MODES:-idle dirty busy}"
for tool in python3 dd /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "benches/seal.sh needs $tool" >&2; exit 2; }
done
[ -n "${NEXUSMON_BIN:-}" ] || cargo build --release --quiet
A="$(realpath "${NEXUSMON_BIN:-$PWD/target/release/nexusmon}")"
B="${BASE_BIN:+$(realpath "$BASE_BIN")}"
WORK="$(mktemp -d "${SEAL_DIR:-/tmp}/nexusmon-seal.XXXXXX")"
DD=
cleanup() { [ -z "$DD" ] || kill "$DD" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
python3 benches/run_gen.py "$WORK/proj" builtin "$N_BUILTIN" on
echo "== machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); runs=$RUNS; $(df --output=fstype "$WORK" | tail -1) ($WORK)" >&2
: >"$WORK/m.txt"
for round in $(seq 0 "$RUNS"); do
  for mode in $MODES; do
    for name in A ${B:+B}; do
      bin="$A"; [ "$name" = A ] || bin="$B"
      rm -rf "$WORK/out"
      sync
      DD=
      case "$mode" in
        idle) ;;
        dirty) dd if=/dev/zero of="$WORK/big" bs=1M count=1024 status=none; rm -f "$WORK/big" ;;
        busy) dd if=/dev/zero of="$WORK/big" bs=4M count=100000 oflag=direct status=none & DD=$!; sleep 0.1 ;;
        *) echo "unknown mode $mode" >&2; exit 2 ;;
      esac
      # Wall time from bash's microsecond clock (GNU time's %e has 10 ms steps).
      t0=$EPOCHREALTIME
      /usr/bin/time -f '%U %S' -o "$WORK/t.txt" "$bin" run \
        --plan "$WORK/proj/plans/builtin/plan.json" --out "$WORK/out" --jobs 2 -q >/dev/null
      t1=$EPOCHREALTIME
      if [ -n "$DD" ]; then kill "$DD"; wait "$DD" 2>/dev/null || true; DD=; rm -f "$WORK/big"; fi
      wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
      [ "$round" = 0 ] || echo "$mode $name $round $wall $(tail -1 "$WORK/t.txt")" >>"$WORK/m.txt"
    done
  done
  [ "$round" = 0 ] || echo "== round $round/$RUNS done" >&2
done
python3 - "$WORK/m.txt" "$N_BUILTIN" <<'PY'
import statistics as st, sys
path, n = sys.argv[1], int(sys.argv[2])
runs = {}
for line in open(path):
    mode, name, rnd, wall, user, sys_ = line.split()
    runs.setdefault((mode, name), []).append((float(wall), float(user) + float(sys_)))
print(f"{'condition':<8} {'bin':<4} {'median s':>9} {'children/s':>11} {'CPU s':>7}  walls")
med = {}
for (mode, name), v in runs.items():
    w = st.median(x for x, _ in v)
    med[(mode, name)] = w
    print(f"{mode:<8} {name:<4} {w:>9.3f} {2 * n / w:>11.0f} {st.median(c for _, c in v):>7.3f}  "
          + " ".join(f"{x:.3f}" for x, _ in v))
for (mode, name), w in med.items():
    if name == "B":
        print(f"{mode}: B/A wall {w / med[(mode, 'A')]:.3f}")
PY
