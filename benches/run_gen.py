#!/usr/bin/env python3
"""Generate the benchmark project for benches/run.sh: a registry with N exec probes running
/bin/true (or N builtin file-read probes; or, kind `audit`, N builtin file-reads of which every
other one is denied, for benches/kernel-audit.sh) and one Landlock profile, and a plan running
every probe under it (baseline + scenario lanes; the oracle lane as given).

Kind `matrix` (benches/scale.sh): N scenarios as a policy matrix, P profiles (5th argument,
default 50) x N/P builtin file-read probes, every probe under every profile. Kind
`audit-matrix` (benches/kernel-audit.sh's scale part): the same, every other probe denied."""
import json
import os
import sys

root, kind, n, oracle = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "on"
n_profiles = int(sys.argv[5]) if len(sys.argv) > 5 else 50
if kind in ("matrix", "audit-matrix"):
    n //= n_profiles
reg = os.path.join(root, "registry", "bench")
os.makedirs(reg, exist_ok=True)
os.makedirs(os.path.join(root, "plans", kind), exist_ok=True)
probes = {}
for i in range(n):
    pid = f"p{i:05d}"
    if kind == "exec":
        probes[pid] = {"operation": "exec", "driver": "exec", "argv": ["/bin/true"]}
    elif kind in ("audit", "audit-matrix") and i % 2 == 1:
        probes[pid] = {"operation": "file-read", "target": "/etc/hostname"}
    else:
        probes[pid] = {"operation": "file-read", "target": "/usr/lib/os-release"}
usr_ro = {
    "usr-ro": {
        "description": "Read and run /usr and the merged-/usr links; nothing else.",
        "landlock": {
            "abi": 7,
            "fs": {
                "handle": "all",
                "allow": [
                    {"path": "/usr", "access": ["read", "exec"]},
                    {"path": "/etc/ld.so.cache", "access": ["read"]},
                ],
            },
        },
    }
}
profiles = usr_ro
if kind in ("matrix", "audit-matrix"):
    profiles = {f"usr-ro-{k:03d}": usr_ro["usr-ro"] for k in range(n_profiles)}
for name, body in (("probes.json", {"probes": probes}), ("profiles.json", {"profiles": profiles})):
    doc = {"schema_version": 1, "registry_id": "bench", **body}
    with open(os.path.join(reg, name), "w") as f:
        json.dump(doc, f)
plan = {
    "schema_version": 1,
    "plan_id": f"bench-{kind}",
    "kind": "experiment",
    "registry_id": "bench",
    "profiles": sorted(profiles),
    "scenarios": {
        prof: {
            pid: ("deny" if p.get("target") == "/etc/hostname" else "allow")
            for pid, p in probes.items()
        }
        for prof in sorted(profiles)
    },
    "lanes": {"baseline": True, "scenario": True, "oracle": oracle},
}
with open(os.path.join(root, "plans", kind, "plan.json"), "w") as f:
    json.dump(plan, f)
