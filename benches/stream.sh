#!/usr/bin/env bash
# Benchmark of the commands that read a sealed bundle, on bundles of several sizes (release
# build): wall time, CPU time (user + system) and peak RSS of each, against `b3sum --check
# BLAKE3SUMS` over the same bundle measured in this same run. Memory flat in the number of
# scenarios means the peak RSS of a command is about the same at every size.
#
# Commands: validate-bundle, emit-promotion, summarize-ops (--bundle and --packet), promote
# (one packet into an empty mappings directory), report (--format html, markdown, junit),
# diff (the bundle against itself), review show (the packet of the bundle, not promotable
# under a trust file that requires signed bundles, so it is in the review queue).
#
# Output: one figure per line, easy to parse:
#   stream <command> <scenarios> wall_s=<median> cpu_s=<median> rss_kib=<median> b3sum_wall_s=<median> ratio=<wall/b3sum>
#
# Usage: benches/stream.sh BUNDLE...   (sealed bundles, e.g. of `benches/run_gen.py DIR
#        matrix N on 50` run with `nexusmon run`; their scenario count is read from
#        summary.json). With no BUNDLE, makes 1,000 and 20,000-scenario bundles first
#        (SIZES="1000 20000" to choose; 100,000 needs the input budget of a plan that size).
# Env: RUNS (default 3), COMMANDS (names of the commands to measure, e.g. "promote diff";
#      default all; b3sum is always measured as the reference), NEXUSMON_BIN (a binary to measure instead of building one),
#      BENCH_DIR (default: a fresh dir under target/), KEEP=1 keeps it. scale.sh calls
#      `stream_bench BUNDLE...` after sourcing this file with STREAM_LIB=1.
set -euo pipefail
cd "$(dirname "$0")/.."

stream_bench() {
  local runs=${RUNS:-3} bin=${NEXUSMON_BIN:-$PWD/target/release/nexusmon}
  bin=$(realpath "$bin") # the commands below run from other directories
  local w
  w=$(mktemp -d "${TMPDIR:-/tmp}/stream-bench.XXXXXX")
  for b in "$@"; do
    b=$(cd "$b" && pwd)
    local n
    n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["scenarios"])' "$b/summary.json")
    : >"$w/m.txt"
    # one NAME CMD...: a run under GNU time, "NAME wall cpu rss" appended; it must exit 0.
    one() {
      local name=$1; shift
      if [ -n "${COMMANDS:-}" ] && [ "$name" != b3sum ] && [[ " $COMMANDS " != *" $name "* ]]; then return 0; fi
      local rc=0
      /usr/bin/time -f '%e %U %S %M' -o "$w/t.txt" "$@" >/dev/null 2>"$w/err.txt" || rc=$?
      if [ "$rc" -ne 0 ]; then cat "$w/err.txt" >&2; echo "stream.sh: $name failed ($rc)" >&2; exit 1; fi
      read -r wall u s rss < <(tail -1 "$w/t.txt")
      echo "$name $wall $(python3 -c "print($u + $s)") $rss" >>"$w/m.txt"
    }
    rm -rf "$w/rv" && mkdir -p "$w/rv/pk"
    (cd "$w/rv" && "$bin" init -q >/dev/null && echo '# nexusmon: require-signed-bundles' >>.nexusmon/trusted_signers)
    (cd "$w/rv" && "$bin" emit-promotion --bundle "$b" --out pk/packet.json -q 2>/dev/null) || [ -f "$w/rv/pk/packet.json" ]
    # The packet the packet readers use, also when COMMANDS leaves emit-promotion out.
    "$bin" emit-promotion --bundle "$b" --out "$w/packet.json" --overwrite -q
    for _ in $(seq "$runs"); do
      (cd "$b" && one b3sum b3sum --check BLAKE3SUMS)
      one validate-bundle "$bin" validate-bundle --bundle "$b"
      one emit-promotion "$bin" emit-promotion --bundle "$b" --out "$w/packet.json" --overwrite -q
      one summarize-ops-bundle "$bin" summarize-ops --bundle "$b" --out "$w/ops.json"
      one summarize-ops-packet "$bin" summarize-ops --packet "$w/packet.json" --out "$w/ops2.json"
      rm -rf "$w/mappings"
      one promote "$bin" promote --packets "$w/packet.json" --out "$w/mappings" -q
      one report-html "$bin" report --bundle "$b" --format html --out "$w/r.html"
      one report-markdown "$bin" report --bundle "$b" --format markdown --out "$w/r.md"
      one report-junit "$bin" report --bundle "$b" --format junit --out "$w/r.xml"
      one diff "$bin" diff "$b" "$b"
      (cd "$w/rv" && one review-show "$bin" review show "packet:$(basename "$b")" --packets pk --plans none)
    done
    python3 - "$w/m.txt" "$n" <<'PY'
import statistics, sys
m = {}
for line in open(sys.argv[1]):
    name, wall, cpu, rss = line.split()
    m.setdefault(name, []).append((float(wall), float(cpu), int(rss)))
med = lambda name, i: statistics.median(x[i] for x in m[name])
b3 = med("b3sum", 0)
for name in m:
    if name == "b3sum":
        continue
    w = med(name, 0)
    print(f"stream {name} {sys.argv[2]} wall_s={w:.3f} cpu_s={med(name, 1):.3f} rss_kib={med(name, 2):.0f} "
          f"b3sum_wall_s={b3:.3f} ratio={w / max(b3, 0.005):.1f}")
print(f"stream b3sum {sys.argv[2]} wall_s={b3:.3f} cpu_s={med('b3sum', 1):.3f} rss_kib={med('b3sum', 2):.0f}")
PY
  done
  rm -rf "$w"
}

if [ "${STREAM_LIB:-0}" != 1 ]; then
  for t in b3sum /usr/bin/time python3; do
    command -v "$t" >/dev/null || { echo "stream.sh: needs $t" >&2; exit 2; }
  done
  [ -n "${NEXUSMON_BIN:-}" ] || cargo build --release --quiet
  bin=$(realpath "${NEXUSMON_BIN:-$PWD/target/release/nexusmon}")
  if [ "$#" -eq 0 ]; then
    W=${BENCH_DIR:-$(mktemp -d "$PWD/target/stream-bench.XXXXXX")}
    [ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$W"' EXIT
    set --
    for n in ${SIZES:-1000 20000}; do
      if [ ! -d "$W/p$n/out" ]; then
        python3 benches/run_gen.py "$W/p$n" matrix "$n" on 50
        "$bin" run --plan "$W/p$n/plans/matrix/plan.json" --out "$W/p$n/out" -q --jobs "${JOBS:-2}" || [ $? -eq 1 ]
      fi
      set -- "$@" "$(ls -d "$W/p$n"/out/2*)"
    done
  fi
  stream_bench "$@"
fi
