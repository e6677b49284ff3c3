#!/usr/bin/env bash
# Load test of the cockpit (`nexusmon serve`, release build) on loopback, with wrk (Debian
# package `wrk`): C concurrent connections (default 50) for D seconds (default 20) each
# against
#
#   A. the runs list (`/`): 6 bundles, one of them of N scenarios (default 20,000: 10
#      profiles × N/10 probes);
#   B. the run page of the N-scenario run (`/runs/<id>`, the report page, ~6 MB);
#   C. the JSON of that run (`/v1/runs/<id>`, first page of 100 scenarios);
#   D. the runs list as JSON (`/v1/runs`).
#
# The reference, measured in the same run with the same wrk settings: nginx (Debian package
# `nginx-light`, 2 worker processes, sendfile) serving the very bytes the cockpit answered
# (saved once per target) as static files. The ratio is cockpit req/s over nginx req/s.
#
# Reported per target: requests/s, p50 and p99 latency, non-2xx responses and socket errors
# (both must be 0 for the cockpit), the server's peak RSS (VmHWM) at the end, and, after the
# load, a path-traversal attempt, an oversized body and an oversized request head, each of
# which must be refused (4xx) with the server still answering. The server is stopped with
# SIGTERM and must exit 0. Every request goes to 127.0.0.1 only.
# Usage: benches/serve.sh [N] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-20000}"
DUR="${2:-20}"
CONN="${3:-50}"
for tool in wrk python3 curl nginx; do
  command -v "$tool" >/dev/null || { echo "benches/serve.sh needs $tool (apt-get install wrk curl nginx-light)" >&2; exit 2; }
done

cargo build --release --quiet
BIN="$PWD/target/release/nexusmon"
WORK="$(mktemp -d /tmp/nexusmon-bench-serve.XXXXXX)"
SERVER=""
NGINX=""
cleanup() {
  if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then kill -TERM "$SERVER"; wait "$SERVER" || true; fi
  if [ -n "$NGINX" ] && kill -0 "$NGINX" 2>/dev/null; then kill -QUIT "$NGINX"; wait "$NGINX" || true; fi
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

head -c 48 /dev/urandom | base64 -w0 > token; chmod 600 token
"$BIN" serve --bind 127.0.0.1:0 --out out --token-file token 2> serve.log &
SERVER=$!
for _ in $(seq 1 600); do grep -q '^serving http' serve.log && break; sleep 0.2; done
grep -q '^serving http' serve.log || { cat serve.log >&2; exit 1; }
base="$(sed -n 's/^serving \(http:\/\/[^ ]*\)\/ .*/\1/p' serve.log)"
echo "== $(grep "^serving" serve.log)" >&2
# Warm the page caches once (the first request of a run page renders it) and keep each
# answer as the reference's static file.
mkdir -p static ng/logs
targets=(/ "/runs/$big" "/v1/runs/$big" /v1/runs)
names=(runs-page run-page run-json runs-json)
for i in 0 1 2 3; do
  curl -sf -o "static/${names[$i]}" "$base${targets[$i]}"
done
# nginx's workers run as an unprivileged user: let them read the static files.
chmod 755 "$WORK" "$WORK/p" static; chmod 644 static/*
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > ng/nginx.conf <<CONF
daemon off;
master_process on;
worker_processes 2;
pid $PWD/ng/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path $PWD/ng/body;
  proxy_temp_path $PWD/ng/proxy;
  fastcgi_temp_path $PWD/ng/fastcgi;
  uwsgi_temp_path $PWD/ng/uwsgi;
  scgi_temp_path $PWD/ng/scgi;
  server { listen 127.0.0.1:$port; root $PWD/static; }
}
CONF
nginx -p "$PWD/ng" -c "$PWD/ng/nginx.conf" 2> ng/err.log &
NGINX=$!
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/runs-page" && break; sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$port/runs-page" || { cat ng/err.log >&2; exit 1; }

load() { # url -> "rps p50 p99 non2xx sockerr"
  local out rps p50 p99 non2xx sock
  out="$(wrk -t 2 -c "$CONN" -d "${DUR}s" --latency --timeout 10s "$1")"
  rps="$(echo "$out" | awk '/^Requests\/sec/ {print $2}')"
  p50="$(echo "$out" | awk '$1=="50%" {print $2}')"
  p99="$(echo "$out" | awk '$1=="99%" {print $2}')"
  non2xx="$(echo "$out" | awk '/Non-2xx/ {print $NF}')"
  sock="$(echo "$out" | awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}')"
  echo "$rps $p50 $p99 ${non2xx:-0} ${sock:-0}"
}
errors=0
printf '%-22s %9s %9s %9s %9s %7s %7s | %9s %9s %9s %6s\n' target bytes req/s p50 p99 non2xx sockerr nginx-rps nginx-p50 nginx-p99 ratio
for i in 0 1 2 3; do
  read -r rps p50 p99 non2xx sock < <(load "$base${targets[$i]}")
  read -r nrps np50 np99 _ _ < <(load "http://127.0.0.1:$port/${names[$i]}")
  errors=$((errors + non2xx + sock))
  ratio="$(python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$rps" "$nrps")"
  size="$(stat -c %s "static/${names[$i]}")"
  name="${targets[$i]}"; [ "$i" = 1 ] && name="/runs/<N-scenario run>"; [ "$i" = 2 ] && name="/v1/runs/<N-scenario>"
  printf '%-22s %9s %9s %9s %9s %7s %7s | %9s %9s %9s %6s\n' "$name" "$size" "$rps" "$p50" "$p99" "$non2xx" "$sock" "$nrps" "$np50" "$np99" "$ratio"
done
rss="$(awk '/VmHWM/ {print $2, $3}' "/proc/$SERVER/status")"
nrss=0
for w in $(pgrep -P "$NGINX") "$NGINX"; do nrss=$((nrss + $(awk '/VmHWM/ {print $2}' "/proc/$w/status"))); done
kill -QUIT "$NGINX"; wait "$NGINX" || true; NGINX=""

# Hostile requests after the load: each refused with a 4xx, the server still up.
status() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }
t1="$(status --path-as-is "$base/runs/$big/files/../../../../etc/passwd")"
t2="$(status --path-as-is "$base/runs/..%2f..%2f..%2fetc/files/passwd")"
t3="$(status --path-as-is "$base/runs/$big/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd")"
python3 -c 'print("{\"record\": \"" + "x" * (1 << 20) + "\", \"signature\": \"\"}")' > big.json
t4="$(status -H "Authorization: Bearer $(cat token)" -H 'Content-Type: application/json' --data-binary @big.json "$base/v1/missions/mission-demo/approvals")"
t5="$(status -H "X-Pad: $(head -c 40000 /dev/zero | tr '\0' a)" "$base/v1/runs")"
up="$(status "$base/v1/system/health")"
echo "hostile: traversal $t1 / $t2 / $t3; 1 MiB body $t4; 40 KB request head $t5; health afterwards $up"
for t in "$t1" "$t2" "$t3" "$t4" "$t5"; do
  case "$t" in 4??) ;; *) echo "a hostile request was not refused with a 4xx ($t)" >&2; errors=$((errors + 1)) ;; esac
done
[ "$up" = 200 ] || { echo "the server stopped answering" >&2; errors=$((errors + 1)); }

kill -TERM "$SERVER"
code=0; wait "$SERVER" || code=$?
SERVER=""
echo "server peak RSS (VmHWM): $rss (nginx, master and workers: $nrss kB); exit after SIGTERM: $code; $(tail -1 serve.log)"
[ "$code" -eq 0 ] && [ "$errors" -eq 0 ]
