#!/usr/bin/env bash
# Benchmark of the input budget (src/util/limits.rs): `plan-lint` on hostile and worst-case
# inputs must finish within 1 s and 64 MiB peak RSS each (the target of the budget), against
# `plan-lint` of the shipped quickstart plan (a small valid input) measured in the same run.
#
# Cases (generated in a temp project next to a copy of the shipped examples):
#   alias-bomb       a ~600-byte YAML "billion laughs" (10 levels of 10 aliases: 10^10 values
#                    if expanded): refused with NX014 at the first alias over the budget
#   deep-yaml        100,000 nested flow sequences: refused with NX014 (depth)
#   deep-json        100,000 nested arrays: refused with NX014 (depth)
#   too-large        a plan one byte over the plan file limit (64 MiB, sparse): refused with
#                    NX014 without being read
#   matrix-over      a plan of 1,000,001 scenario expectations (18 MB): refused with NX014
#                    at the entry over the plan's matrix budget; memory is linear in the file
#                    (the spanned tree of every entry read), so its verdict is 1 s and 512 MiB
#   wide-aliases     a 64 KiB string copied by aliases up to the 8 MiB expanded-bytes budget
#                    (accepted by the parser; the plan has other errors)
#   many-findings    a plan at the value budget naming 24,000 unknown probes (capped to
#                    1,000 listed findings)
#   many-probes      a registry of 3,400 probes (~48,000 values), all valid
#   many-rules       a profile of 8,000 allow rules (host paths resolved, scratch paths
#                    normalized, each compared with the rules above it: NX303 on half)
#   extends-chain    8,000 profiles, each extending the next: every chain deeper than 16 is
#                    refused with NX014 (no recursion 8,000 deep)
#   extends-fanin    a base of 4,000 allow rules extended by 3,500 profiles (14 million
#                    rules if every copy were made): refused with NX014 once the inherited
#                    rules pass the 50,000 budget
#   loop-bomb-list   `list-templates` with a project template whose probe tags nest four
#                    `$for` over a 64-port list (64^4 tags if expanded): refused at the first
#                    value over the budget
#   loop-bomb-build  `plan-build` of that template
#   loop-bomb-7      `plan-build` of the same with seven nested loops
#   tmpl-alias-bomb  `list-templates` with a YAML alias bomb in templates/*/template.yaml
#   list-plans-bombs `list-plans` of the project holding every plan above (each bomb listed as
#                    a plan that does not load; the listing goes on)
#   packet-100mb     `promote` of a 100 MB "packet": refused from its size before it is read
#
# Each case: the median wall time over RUNS runs (default 10) with hyperfine (1 warm-up run;
# the commands exit 1 on purpose, so failures are ignored), its ratio to the reference's
# median, and the largest peak RSS over 3 runs under /usr/bin/time.
#
# Usage: benches/input-bombs.sh [RUNS]   (needs hyperfine, /usr/bin/time, python3, bc)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
for t in hyperfine /usr/bin/time python3 bc; do
  command -v "$t" >/dev/null || { echo "input-bombs.sh: needs $t" >&2; exit 2; }
done
cargo build --release --quiet
BIN=$PWD/target/release/nexusmon
W=$(mktemp -d "$PWD/target/input-bombs.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/plans" "$W/registry"
cp -r plans/quickstart "$W/plans/"
cp -r registry/linux-core "$W/registry/"

python3 - "$W" <<'EOF'
import json, os, sys
w = sys.argv[1]
def put(rel, text):
    p = os.path.join(w, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)
head = "schema_version: 1\nplan_id: p\nkind: experiment\nregistry_id: linux-core\nprofiles: [system-ro]\n"
bomb = head + "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
for i in range(1, 10):
    bomb += "l%d: &l%d [%s]\n" % (i, i, ",".join(["*l%d" % (i - 1)] * 10))
put("plans/alias-bomb/plan.yaml", bomb)
put("plans/deep-yaml/plan.yaml", "a: " + "[" * 100000 + "\n")
put("plans/deep-json/plan.json", '{"a": ' + "[" * 100000 + "]" * 100000 + "}\n")
os.makedirs(os.path.join(w, "plans/too-large"), exist_ok=True)
with open(os.path.join(w, "plans/too-large/plan.json"), "w") as f:
    f.truncate((64 << 20) + 1)  # sparse: one byte over the plan file limit
# One expectation over the plan's matrix budget (MAX_PLAN_ENTRIES, 1,000,000).
os.makedirs(os.path.join(w, "plans/matrix-over"), exist_ok=True)
with open(os.path.join(w, "plans/matrix-over/plan.json"), "w") as f:
    f.write('{"schema_version": 1, "plan_id": "matrix-over", "kind": "experiment", "registry_id": "linux-core", "profiles": ["system-ro"], "scenarios": {\n')
    for pr in range(500):
        f.write(("" if pr == 0 else ",\n") + '"pr%03d": {' % pr)
        n = 2000 if pr < 499 else 2001
        f.write(", ".join('"p%04d": "allow"' % pb for pb in range(n)) + "}")
    f.write("\n}}\n")
s = "x" * 65536
put("plans/wide-aliases/plan.yaml", head + "s: &s " + s + "\nt: [" + ", ".join(["*s"] * 120) + "]\n")
sc = {"p%05d-read-etc-hostnam" % i: "deny" for i in range(24000)}
put("plans/many-findings/plan.json", json.dumps({"schema_version": 1, "plan_id": "many-findings",
    "kind": "experiment", "registry_id": "linux-core", "profiles": ["system-ro"],
    "scenarios": {"system-ro": sc}}))
probes = {"p%05d" % i: {"operation": "file-read", "target": "/etc/hostname",
    "notes": "n", "tags": ["a", "b"], "timeout_ms": 1000} for i in range(3400)}
put("registry/big/probes.json", json.dumps({"schema_version": 1, "registry_id": "big", "probes": probes}))
put("registry/big/profiles.json", json.dumps({"schema_version": 1, "registry_id": "big",
    "profiles": {"ro": {"landlock": {"abi": 3, "fs": {"handle": "all", "allow": [{"path": "/usr", "access": ["read"]}]}}}}}))
put("plans/many-probes/plan.json", json.dumps({"schema_version": 1, "plan_id": "many-probes",
    "kind": "experiment", "registry_id": "big", "profiles": ["ro"],
    "scenarios": {"ro": {"p00000": "deny"}}}))
rules = [{"path": "/usr/share", "access": ["read"]}, {"path": "${SCRATCH}", "access": ["read"]}]
for i in range(4000):
    rules.append({"path": "/usr/share/doc/p%d" % i, "access": ["read"] if i % 2 else ["write"]})
    rules.append({"path": "${SCRATCH}/d%d/../e%d/x" % (i, i), "access": ["read"] if i % 2 else ["exec"]})
put("registry/rules/probes.json", json.dumps({"schema_version": 1, "registry_id": "rules",
    "probes": {"read": {"operation": "file-read", "target": "/etc/hostname"}}}))
put("registry/rules/profiles.json", json.dumps({"schema_version": 1, "registry_id": "rules",
    "profiles": {"many": {"landlock": {"abi": 3, "fs": {"handle": "all", "allow": rules}}}}}))
put("plans/many-rules/plan.json", json.dumps({"schema_version": 1, "plan_id": "many-rules",
    "kind": "experiment", "registry_id": "rules", "profiles": ["many"],
    "scenarios": {"many": {"read": "deny"}}}))
def extends_case(name, profiles, first):
    put("registry/%s/probes.json" % name, json.dumps({"schema_version": 1, "registry_id": name,
        "probes": {"read": {"operation": "file-read", "target": "/etc/hostname"}}}))
    put("registry/%s/profiles.json" % name, json.dumps({"schema_version": 1, "registry_id": name,
        "profiles": profiles}))
    put("plans/%s/plan.json" % name, json.dumps({"schema_version": 1, "plan_id": name,
        "kind": "experiment", "registry_id": name, "profiles": [first],
        "scenarios": {first: {"read": "deny"}}}))
chain = {"c%04d" % i: {"extends": ["c%04d" % (i + 1)]} for i in range(7999)}
chain["c7999"] = {"landlock": {"abi": 3, "fs": {"handle": "all", "allow": [{"path": "/usr", "access": ["read"]}]}}}
extends_case("extends-chain", chain, "c0000")
fan = {"base": {"landlock": {"abi": 3, "fs": {"handle": "all", "allow": [
    {"path": "/usr/share/doc/p%d" % i, "access": ["read"]} for i in range(4000)]}}}}
fan.update({"f%04d" % i: {"extends": ["base"]} for i in range(3500)})
extends_case("extends-fanin", fan, "f0000")
EOF
printf 'bytes: alias-bomb %s, wide-aliases %s, many-findings %s, many-probes registry %s\n' \
  "$(stat -c %s "$W/plans/alias-bomb/plan.yaml")" "$(stat -c %s "$W/plans/wide-aliases/plan.yaml")" \
  "$(stat -c %s "$W/plans/many-findings/plan.json")" "$(stat -c %s "$W/registry/big/probes.json")"

python3 - "$W" <<'EOF'
import json, os, sys
w = sys.argv[1]
def put(rel, text):
    p = os.path.join(w, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)
def loops(n):
    item = "t" + "".join("-${v%d}" % i for i in range(n))
    for i in reversed(range(n)):
        item = {"$for": "v%d in ports" % i, "$item": item}
    return {"schema_version": 1, "template_id": "bomb", "description": "loops",
        "parameters": {"ports": {"type": "port-list", "description": "p",
            "default": list(range(1000, 1064)), "max_items": 64}},
        "plan": {"kind": "experiment", "profiles": ["p"], "scenarios": {"p": {"x": "allow"}}},
        "probes": {"x": {"operation": "file-read", "target": "/etc/hostname", "tags": [item]}},
        "profiles": {"p": {"landlock": {"abi": 3, "fs": {"handle": "all",
            "allow": [{"path": "/etc", "access": ["read"]}]}}}}}
put("t4/templates/bomb/template.json", json.dumps(loops(4), indent=2))
put("t7/templates/bomb/template.json", json.dumps(loops(7), indent=2))
y = "schema_version: 1\ntemplate_id: yb\ndescription: x\nparameters: {}\nplan: {kind: experiment}\nprobes: {}\nprofiles: {}\n"
y += "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
for i in range(1, 10):
    y += "l%d: &l%d [%s]\n" % (i, i, ",".join(["*l%d" % (i - 1)] * 10))
put("ty/templates/yb/template.yaml", y)
with open(os.path.join(w, "packet-100mb.json"), "w") as f:
    f.write('{"packet_version": 1, "pad": "')
    f.truncate(100_000_000)
EOF

# measure "ARGS…" [DIR] → "median_seconds max_kib exit" (the binary run in DIR, default $W)
measure() {
  local args=$1 dir=${2:-$W} rss=0 x=0
  hyperfine --style none --warmup 1 --runs "$RUNS" -i --export-json "$W/h.json" \
    "cd $dir && $BIN $args" >/dev/null 2>&1
  local med
  med=$(python3 -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["results"][0]["median"])' "$W/h.json")
  for _ in 1 2 3; do
    # shellcheck disable=SC2086
    (cd "$dir" && /usr/bin/time -f '%M %x' -o "$W/t" "$BIN" $args >/dev/null 2>&1) || true
    read -r m x < <(tail -n 1 "$W/t") || true
    (( m > rss )) && rss=$m
  done
  echo "$med $rss ${x:-0}"
}

cd "$W"
read -r ref_t ref_m ref_x <<<"$(measure "plan-lint plans/quickstart/plan.json")"
printf '%-15s %10s %10s %6s %8s %s\n' case median_s peak_MiB exit ratio verdict
printf '%-15s %10s %10.1f %6s %8s\n' reference "$ref_t" "$(echo "$ref_m/1024" | bc -l)" "$ref_x" 1.0
fail=0
case_cmd() {
  case $1 in
    loop-bomb-list) echo "list-templates|$W/t4" ;;
    loop-bomb-build) echo "plan-build --template bomb --out gen|$W/t4" ;;
    loop-bomb-7) echo "plan-build --template bomb --out gen|$W/t7" ;;
    tmpl-alias-bomb) echo "list-templates|$W/ty" ;;
    list-plans-bombs) echo "list-plans|$W" ;;
    packet-100mb) echo "promote --packets $W/packet-100mb.json --out $W/mappings|$W" ;;
    *) echo "plan-lint $(ls plans/$1/plan.* | head -1)|$W" ;;
  esac
}
for c in alias-bomb deep-yaml deep-json too-large matrix-over wide-aliases many-findings many-probes many-rules \
    loop-bomb-list loop-bomb-build loop-bomb-7 tmpl-alias-bomb list-plans-bombs packet-100mb \
    extends-chain extends-fanin; do
  IFS='|' read -r args dir <<<"$(case_cmd "$c")"
  read -r t m x <<<"$(measure "$args" "$dir")"
  mib=$(echo "$m/1024" | bc -l)
  ratio=$(echo "$t/$ref_t" | bc -l)
  limit=64; [ "$c" = matrix-over ] && limit=512
  ok=$(echo "$t < 1.0 && $mib < $limit" | bc -l)
  verdict=$([ "$ok" = 1 ] && echo pass || echo FAIL)
  [ "$ok" = 1 ] || fail=1
  printf '%-15s %10s %10.1f %6s %8.1f %s\n' "$c" "$t" "$mib" "$x" "$ratio" "$verdict"
done
exit $fail
