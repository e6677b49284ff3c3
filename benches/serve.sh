#!/usr/bin/env bash
# Load test of the cockpit (`nexusmon serve`, release build) on loopback, with wrk (Debian
# package `wrk`): C concurrent connections (default 50) for D seconds (default 20) each
# against
#
#   A. the runs list (`/`): 6 bundles, one of them of N scenarios (default 20,000: 10
#      profiles × N/10 probes);
#   B. the run page of the N-scenario run (`/runs/<id>`, the report page, ~10 MB);
#   C. the JSON of that run (`/v1/runs/<id>`, first page of 100 scenarios);
#   D. the runs list as JSON (`/v1/runs`).
#
# Reported per target: requests/s, p50 and p99 latency, non-2xx responses and socket errors
# (both must be 0), and the server's peak RSS (VmHWM) at the end. The server is stopped with
# SIGTERM and must exit 0. Every request goes to 127.0.0.1 only.
# Usage: benches/serve.sh [N] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-20000}"
DUR="${2:-20}"
CONN="${3:-50}"
for tool in wrk python3 curl; do
  command -v "$tool" >/dev/null || { echo "benches/serve.sh needs $tool (apt-get install wrk curl)" >&2; exit 2; }
done

cargo build --release --quiet
BIN="$PWD/target/release/nexusmon"
WORK="$(mktemp -d /tmp/nexusmon-bench-serve.XXXXXX)"
SERVER=""
cleanup() {
  if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then kill -TERM "$SERVER"; wait "$SERVER" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# The large run: N scenarios as 10 profiles × N/10 builtin file-read probes (one file of
# the registry or plan may hold at most 50,000 values), every 50th expecting a denial the
# kernel does not give (so its page has mismatches to show first).
mkdir -p "$WORK/p"
cp -r plans registry "$WORK/p/"
python3 - "$WORK/p" "$N" <<'PY'
import json, os, sys
root, n = sys.argv[1], int(sys.argv[2])
per = max(1, n // 10)
reg = os.path.join(root, "registry", "bench")
os.makedirs(reg, exist_ok=True)
probes = {f"p{i:05d}": {"operation": "file-read", "target": "/usr/lib/os-release"} for i in range(per)}
rule = {"abi": 7, "fs": {"handle": "all", "allow": [{"path": "/usr", "access": ["read", "exec"]}]}}
profiles = {f"usr-ro-{k}": {"description": "read /usr", "landlock": rule} for k in range(10)}
for name, body in (("probes.json", {"probes": probes}), ("profiles.json", {"profiles": profiles})):
    json.dump({"schema_version": 1, "registry_id": "bench", **body}, open(os.path.join(reg, name), "w"))
scen = {p: {q: ("deny" if i % 50 == 0 else "allow") for i, q in enumerate(sorted(probes))} for p in profiles}
os.makedirs(os.path.join(root, "plans", "large"), exist_ok=True)
json.dump({"schema_version": 1, "plan_id": "large", "kind": "experiment", "registry_id": "bench",
           "profiles": sorted(profiles), "scenarios": scen,
           "lanes": {"baseline": True, "scenario": True, "oracle": True}},
          open(os.path.join(root, "plans", "large", "plan.json"), "w"))
PY
cd "$WORK/p"
"$BIN" init -q
for _ in 1 2 3 4 5; do "$BIN" run --plan plans/quickstart/plan.json --out out -q >/dev/null 2>&1 || true; done
"$BIN" run --plan plans/large/plan.json --out out --jobs 2 -q >/dev/null 2>large.err || true
big="$(python3 -c 'import json;print(json.load(open("out/LATEST"))["run_id"])')"
scen="$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["scenarios"])' "out/$big/summary.json")"
if [ "$scen" != "$((N / 10 * 10))" ]; then
  echo "the large run did not happen ($scen scenarios in $big):" >&2; cat large.err >&2; exit 1
fi
echo "== machine: $(nproc) cores, $(uname -r); $(ls -d out/2* | wc -l) bundles, the large one $big ($N scenarios, $(find "out/$big" -type f | wc -l) files)" >&2

"$BIN" serve --bind 127.0.0.1:0 --out out 2> serve.log &
SERVER=$!
for _ in $(seq 1 600); do grep -q '^serving http' serve.log && break; sleep 0.2; done
grep -q '^serving http' serve.log || { cat serve.log >&2; exit 1; }
base="$(sed -n 's/^serving \(http:\/\/[^ ]*\)\/ .*/\1/p' serve.log)"
echo "== $(head -1 serve.log)" >&2
# Warm the page caches once (the first request of a run page renders it).
for u in / "/runs/$big" "/v1/runs/$big" /v1/runs; do
  curl -sf -o "page.$(echo "$u" | tr '/' '_')" "$base$u"
done
printf '%-22s %10s %10s %10s %10s %8s %8s\n' target req/s p50 p99 bytes non2xx sockerr
for u in / "/runs/$big" "/v1/runs/$big" /v1/runs; do
  out="$(wrk -t 2 -c "$CONN" -d "${DUR}s" --latency --timeout 10s "$base$u")"
  rps="$(echo "$out" | awk '/^Requests\/sec/ {print $2}')"
  p50="$(echo "$out" | awk '$1=="50%" {print $2}')"
  p99="$(echo "$out" | awk '$1=="99%" {print $2}')"
  non2xx="$(echo "$out" | awk '/Non-2xx/ {print $NF}')"
  sock="$(echo "$out" | awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}')"
  size="$(stat -c %s "page.$(echo "$u" | tr '/' '_')")"
  name="$u"; [ "$u" = "/runs/$big" ] && name="/runs/<N-scenario run>"; [ "$u" = "/v1/runs/$big" ] && name="/v1/runs/<N-scenario>"
  printf '%-22s %10s %10s %10s %10s %8s %8s\n' "$name" "$rps" "$p50" "$p99" "$size" "${non2xx:-0}" "${sock:-0}"
done
rss="$(awk '/VmHWM/ {print $2, $3}' "/proc/$SERVER/status")"
kill -TERM "$SERVER"
code=0; wait "$SERVER" || code=$?
SERVER=""
echo "server peak RSS (VmHWM): $rss; exit after SIGTERM: $code; $(tail -1 serve.log)"
[ "$code" -eq 0 ]
