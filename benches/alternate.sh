#!/usr/bin/env bash
# Two nexusmon binaries measured alternating (A, B, A, B, …) on the exec and builtin bench
# plans (benches/run_gen.py: 5,000 exec probes of /bin/true or 1,000 builtin file-reads, both
# lanes, oracle on), RUNS pairs each: wall, user and sys CPU (/usr/bin/time) and, when perf is
# there, instructions of the whole process tree (perf stat, children included). Prints one
# line per run and the medians of each binary with the ratio B/A, and the CPU per child.
#
# usage: benches/alternate.sh BIN_A BIN_B [RUNS=5]   (KINDS="exec builtin" to choose)
set -euo pipefail
A=$1; B=$2; RUNS=${3:-5}; KINDS=${KINDS:-exec builtin}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/nexusmon-alternate.XXXXXX)
trap 'rm -rf "$work"' EXIT
have_perf=0
# Hardware counters (absent in most VMs: "<not supported>").
perf stat -x, -e instructions true 2>&1 | grep -q '^[0-9]' && have_perf=1
for kind in $KINDS; do
  case $kind in exec) n=5000; children=10000 ;; builtin) n=1000; children=2000 ;; esac
  python3 "$here/run_gen.py" "$work/$kind" "$kind" "$n" on
  : > "$work/$kind.tsv"
  for i in $(seq 1 "$RUNS"); do
    for side in A B; do
      bin=$A; [ "$side" = B ] && bin=$B
      out="$work/out-$kind-$side-$i"
      ins=0
      if [ $have_perf = 1 ]; then
        ( cd "$work/$kind" && perf stat -x, -e instructions -o "$work/perf.txt" \
            /usr/bin/time -f '%e %U %S' -o "$work/time.txt" \
            "$bin" run --plan "plans/$kind/plan.json" --out "$out" --jobs 2 -q ) >/dev/null 2>&1 || true
        ins=$(awk -F, '/instructions/ {print $1}' "$work/perf.txt")
        ins=${ins:-0}
      else
        ( cd "$work/$kind" && /usr/bin/time -f '%e %U %S' -o "$work/time.txt" \
            "$bin" run --plan "plans/$kind/plan.json" --out "$out" --jobs 2 -q ) >/dev/null 2>&1 || true
      fi
      read -r wall user sys < <(tail -1 "$work/time.txt")
      echo "$side $wall $user $sys $ins" >> "$work/$kind.tsv"
      echo "$kind $side run $i: wall $wall s, user $user s, sys $sys s, instructions $ins"
      rm -rf "$out"
    done
  done
  python3 - "$work/$kind.tsv" "$kind" "$children" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
kind, children = sys.argv[2], int(sys.argv[3])
med = {}
for side in "AB":
    r = [x for x in rows if x[0] == side]
    wall = statistics.median(float(x[1]) for x in r)
    cpu = statistics.median(float(x[2]) + float(x[3]) for x in r)
    ins = statistics.median(float(x[4]) for x in r)
    med[side] = (wall, cpu, ins)
    print(f"{kind} {side}: median wall {wall:.2f} s, user+sys {cpu:.2f} s "
          f"({cpu / children * 1e6:.0f} us CPU per child), instructions {ins / 1e9:.3f} G "
          f"({ins / children / 1e3:.0f} k per child)")
a, b = med["A"], med["B"]
print(f"{kind} B/A: wall {b[0] / a[0]:.3f}, CPU {b[1] / a[1]:.3f}, instructions "
      f"{(b[2] / a[2]) if a[2] else 0:.3f}; CPU per child {(b[1] - a[1]) / children * 1e6:+.1f} us, "
      f"instructions per child {(b[2] - a[2]) / children / 1e3:+.1f} k")
PY
done
