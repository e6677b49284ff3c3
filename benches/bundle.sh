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
# runs; the data fits in RAM), as for a seal right after a run wrote its files. The machine's
# load average is printed: on a shared machine, medians move with it.
#
# Usage: benches/bundle.sh [RUNS]   (default 10; needs hyperfine, b3sum, /usr/bin/time)
# Env: BENCH_DIR (default: a fresh dir under target/), KEEP=1 keeps the data.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
for t in hyperfine b3sum /usr/bin/time python3; do
  command -v "$t" >/dev/null || { echo "bundle.sh: needs $t" >&2; exit 2; }
done

cargo build --release --quiet
BIN=$PWD/target/release/nexusmon
W=${BENCH_DIR:-$(mktemp -d "$PWD/target/bundle-bench.XXXXXX")}
mkdir -p "$W"
[ "${KEEP:-0}" = 1 ] || trap 'chmod -R u+w "$W" 2>/dev/null; rm -rf "$W"' EXIT
export NEXUSMON_RUN_ID=bench
log() { printf '\n== %s\n' "$*" >&2; }

log "generating data in $W"
mkdir -p "$W/big/src/payload" "$W/small/src/payload"
head -c $((1 << 30)) /dev/urandom >"$W/big/src/payload/data.bin"
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
chmod 0444 "$W/big/src/payload/data.bin"
(cd "$W/small/src/payload" && find . -type f -print0 | sort -z >"$W/small.list")
sync

# prepare: put the payload back where --move takes it from, drop the previous out root.
restore() { # $1 = big|small
  echo "set -e; d=$W/$1; if [ -d \$d/out/bench/payload ]; then mv \$d/out/bench/payload \$d/src/payload; fi; rm -rf \$d/out"
}

for case in big small; do
  if [ "$case" = big ]; then
    b3="b3sum $W/big/src/payload/data.bin"
  else
    b3="cd $W/small/src/payload && xargs -0 -a $W/small.list b3sum"
  fi
  log "seal vs b3sum: $case"
  hyperfine --warmup 2 --runs "$RUNS" --export-json "$W/seal-$case.json" \
    --prepare "$(restore "$case")" \
    -n "b3sum-$case" "$b3" \
    -n "seal-$case" "$BIN __bundle-write --out $W/$case/out --from $W/$case/src --move" >&2
  # The last timed run (a seal: hyperfine runs the commands in order) left a sealed bundle at $W/$case/out/bench: validate it.
  if [ "$case" = big ]; then
    b3="b3sum $W/big/out/bench/payload/data.bin"
  else
    b3="cd $W/small/out/bench/payload && xargs -0 -a $W/small.list b3sum"
  fi
  log "validate vs b3sum: $case"
  hyperfine --warmup 2 --runs "$RUNS" --export-json "$W/validate-$case.json" \
    -n "validate-$case" "$BIN validate-bundle --bundle $W/$case/out" \
    -n "b3sum-$case" "$b3" >&2
  if [ "$case" = big ]; then
    log "peak RSS (1 GiB)"
    /usr/bin/time -v "$BIN" validate-bundle --bundle "$W/big/out" >/dev/null 2>"$W/rss-validate.txt"
    /usr/bin/time -v b3sum "$W/big/out/bench/payload/data.bin" >/dev/null 2>"$W/rss-b3sum.txt"
    bash -c "$(restore big)"
    /usr/bin/time -v "$BIN" __bundle-write --out "$W/big/out" --from "$W/big/src" --move -q \
      >/dev/null 2>"$W/rss-seal.txt"
  fi
done

log "results (medians; ratio = b3sum / ours, >= 0.90 meets the target); load: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$W" <<'EOF'
import json, sys, re
w = sys.argv[1]
def med(path, name):
    for r in json.load(open(path))["results"]:
        if r["command"] == name:
            return r["median"]
for op in ["seal", "validate"]:
    for case, label, size in [("big", "1 GiB, 1 file", 1 << 30), ("small", "10,000 x 1 KiB", 10000 * 1024)]:
        ours = med(f"{w}/{op}-{case}.json", f"{op}-{case}")
        ref = med(f"{w}/{op}-{case}.json", f"b3sum-{case}")
        ratio = ref / ours
        print(f"{op:8} {label:15} ours {ours*1000:8.1f} ms ({size/ours/2**20:8.1f} MiB/s)  "
              f"b3sum {ref*1000:8.1f} ms  ratio {ratio:4.2f} {'ok' if ratio >= 0.9 else 'BELOW TARGET'}")
for name in ["seal", "validate", "b3sum"]:
    txt = open(f"{w}/rss-{name}.txt").read()
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", txt).group(1))
    print(f"peak RSS {name:8} 1 GiB: {kb/1024:7.1f} MiB")
EOF
