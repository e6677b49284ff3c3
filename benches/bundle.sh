#!/usr/bin/env bash
# Benchmark of the bundle store: seal and validate (a) one 1 GiB file and (b) 10,000 files of
# 1 KiB, against `b3sum` over the same files in the same run. Target: our throughput at least
# 0.9x b3sum's (ratio = b3sum median / ours; >= 0.9 passes). Also peak RSS of seal and
# validate on 1 GiB (/usr/bin/time -v), which must not grow with the file size.
#
# Fairness: the seal is timed on data that is already written, as the runner's logs are.
# `nexusmon __bundle-write --from D --move` moves D's top-level directory into the staging
# directory with one rename and seals it (hyperfine --prepare moves it back and removes the
# out root, untimed). So "seal" = take the lock, create staging, hash every file, write
# BLAKE3SUMS, syncfs, write the index (fsync), move, replace LATEST (fsync). b3sum only
# hashes. The data files are created read-only, as the store creates the files written
# through it (sealing chmods only files still writable). Caches are warm (hyperfine warm-up
# runs; the data fits in RAM), as for a seal right after a run wrote its files.
#
# On a shared machine the load drifts during a run, so each comparison is made in ROUNDS
# short rounds (alternating which command goes first); the ratio is computed within each
# round (both commands under the same load) and the median over rounds is reported, with
# the range. The CPU time (user + system, which the load moves much less) is compared too.
#
# Usage: benches/bundle.sh [RUNS_PER_ROUND]   (default 5; needs hyperfine, b3sum,
#        /usr/bin/time, python3)
# Env: ROUNDS (default 8), BENCH_DIR (default: a fresh dir under target/), KEEP=1 keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
ROUNDS=${ROUNDS:-8}
for t in hyperfine b3sum /usr/bin/time python3; do
  command -v "$t" >/dev/null || { echo "bundle.sh: needs $t" >&2; exit 2; }
done

cargo build --release --quiet --features fault-injection  # __bundle-write
BIN=$PWD/target/release/nexusmon
W=${BENCH_DIR:-$(mktemp -d "$PWD/target/bundle-bench.XXXXXX")}
mkdir -p "$W"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$W"' EXIT
export NEXUSMON_RUN_ID=bench
log() { printf '\n== %s\n' "$*" >&2; }

log "generating data in $W"
mkdir -p "$W/big/src/payload" "$W/small/src/payload"
head -c $((1 << 30)) /dev/urandom >"$W/big/src/payload/data.bin"
chmod 0444 "$W/big/src/payload/data.bin"
python3 - "$W/small/src/payload" <<'EOF'
import os, sys
root = sys.argv[1]
for i in range(10000):
    d = os.path.join(root, "logs", "%02x" % (i % 100))
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "%05d.stdout" % i)
    with open(p, "wb") as f:
        f.write(os.urandom(1024))
    os.chmod(p, 0o444)
EOF
(cd "$W/small/src/payload" && find . -type f -print0 | sort -z >"$W/small.list")
sync

# Put the payload back where --move takes it from, and drop the previous out root.
restore() { # $1 = big|small
  echo "set -e; d=$W/$1; if [ -d \$d/out/bench/payload ]; then mv \$d/out/bench/payload \$d/src/payload; fi; rm -rf \$d/out"
}
# b3sum over the payload at $2 (a directory).
b3() { # $1 = big|small, $2 = payload dir
  if [ "$1" = big ]; then echo "b3sum $2/data.bin"; else echo "cd $2 && xargs -0 -a $W/small.list b3sum"; fi
}
# hyperfine ROUNDS times over "ours" and "ref", alternating the order.
compare() { # $1 = name, $2 = ours, $3 = ref, $4 = prepare ('' for none)
  local r prep=()
  [ -n "$4" ] && prep=(--prepare "$4")
  for r in $(seq 1 "$ROUNDS"); do
    local cmds=(-n "ours" "$2" -n "ref" "$3")
    [ $((r % 2)) = 0 ] && cmds=(-n "ref" "$3" -n "ours" "$2")
    hyperfine --warmup 2 --runs "$RUNS" "${prep[@]}" --export-json "$W/$1-$r.json" "${cmds[@]}" >&2
  done
}

for case in big small; do
  log "seal vs b3sum: $case"
  compare "seal-$case" "$BIN __bundle-write --out $W/$case/out --from $W/$case/src --move" \
    "$(b3 "$case" "$W/$case/src/payload")" "$(restore "$case")"
  bash -c "$(restore "$case")"
  "$BIN" __bundle-write --out "$W/$case/out" --from "$W/$case/src" --move -q
  log "validate vs b3sum: $case"
  compare "validate-$case" "$BIN validate-bundle --bundle $W/$case/out" \
    "$(b3 "$case" "$W/$case/out/bench/payload")" ""
done

log "peak RSS (1 GiB)"
/usr/bin/time -v "$BIN" validate-bundle --bundle "$W/big/out" >/dev/null 2>"$W/rss-validate.txt"
/usr/bin/time -v b3sum "$W/big/out/bench/payload/data.bin" >/dev/null 2>"$W/rss-b3sum.txt"
bash -c "$(restore big)"
/usr/bin/time -v "$BIN" __bundle-write --out "$W/big/out" --from "$W/big/src" --move -q \
  >/dev/null 2>"$W/rss-seal.txt"

log "results: ratio = b3sum / ours within each round, median over $ROUNDS rounds of $RUNS runs (>= 0.90 meets the target); times are medians of the round medians; load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$W" "$ROUNDS" <<'EOF'
import json, re, statistics, sys
w, rounds = sys.argv[1], int(sys.argv[2])
def load(name):
    """Per round: {command: (median time, user + system)}."""
    out = []
    for r in range(1, rounds + 1):
        res = json.load(open(f"{w}/{name}-{r}.json"))["results"]
        out.append({x["command"]: (statistics.median(x["times"]), x["user"] + x["system"]) for x in res})
    return out
for op in ["seal", "validate"]:
    for case, label, size in [("big", "1 GiB, 1 file", 1 << 30), ("small", "10,000 x 1 KiB", 10000 * 1024)]:
        rs = load(f"{op}-{case}")
        # The ratio is taken within each round (both commands ran back to back, under the
        # same load), then the median over rounds.
        ratio = statistics.median(r["ref"][0] / r["ours"][0] for r in rs)
        cpu_ratio = statistics.median(r["ref"][1] / r["ours"][1] for r in rs)
        ours = statistics.median(r["ours"][0] for r in rs)
        ref = statistics.median(r["ref"][0] for r in rs)
        print(f"{op:8} {label:15} ours {ours*1000:6.1f} ms ({size/ours/2**20:6.1f} MiB/s)  b3sum {ref*1000:6.1f} ms  "
              f"ratio {ratio:4.2f} {'ok' if ratio >= 0.9 else 'BELOW TARGET'}  (cpu ratio {cpu_ratio:4.2f}; "
              f"per-round ratios {min(r['ref'][0] / r['ours'][0] for r in rs):.2f}..{max(r['ref'][0] / r['ours'][0] for r in rs):.2f})")
for name in ["seal", "validate", "b3sum"]:
    txt = open(f"{w}/rss-{name}.txt").read()
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", txt).group(1))
    print(f"peak RSS {name:8} 1 GiB: {kb/1024:7.1f} MiB")
EOF
