//! Which mount namespace a child runs in (issue 16): a child that mounts nothing of its own
//! and can never change a mount (no `CAP_SYS_ADMIN` kept) stays in its worker's prepared
//! namespace (`Isolation::stays_in_prepared_mounts`) instead of a private copy, whose
//! teardown costs every child a grace period; every other child keeps a copy of its own.
//! Generated profiles (kept capabilities with and without `sys-admin`, identities) and
//! probes (with and without read-only inputs) on one worker: every child mounts a tmpfs if
//! it can, and no child ever sees another child's mount.

use serde_json::{Value, json};

use crate::run::bundle;
use crate::util::{Test, results};

/// What one child printed: its mount namespace's inode, how many of the probes' mounts it
/// saw, whether its own mount succeeded.
fn parse(out: &str) -> (u64, u32, bool) {
    let mut lines = out.lines();
    let ns = lines.next().and_then(|l| l.trim().parse().ok());
    let seen = lines.next().and_then(|l| l.trim().parse().ok());
    let (Some(ns), Some(seen)) = (ns, seen) else {
        panic!("unexpected child output: {out:?}");
    };
    (ns, seen, lines.any(|l| l == "mounted"))
}

#[test]
fn a_child_that_cannot_mount_shares_its_workers_mount_namespace_and_no_child_sees_another_childs_mount()
 {
    // The probe: its namespace, the probes' mounts it sees, then a mount of its own.
    let script = "stat -L -c %i /proc/self/ns/mnt; grep -c nx-mark /proc/self/mountinfo; \
                  mount -t tmpfs nx-mark ${SCRATCH} 2>/dev/null && echo mounted; exit 0";
    let probe = |reads: bool| {
        let mut p = json!({"operation": "exec", "driver": "exec", "timeout_ms": 10000,
                           "argv": ["/bin/sh", "-c", script]});
        if reads {
            p["reads"] = json!(["/etc/hostname"]);
        }
        p
    };
    let mut state = 0x6d6f_756e_745f_6e73_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let caps = ["sys-admin", "net-bind-service", "chown", "dac-override"];
    let mut profiles = serde_json::Map::new();
    let mut sys_admin = std::collections::BTreeMap::new();
    for i in 0..10 {
        let mut kept: Vec<&str> = caps.iter().copied().filter(|_| next() % 3 == 0).collect();
        // At least one profile of each kind.
        match i {
            0 if !kept.contains(&"sys-admin") => kept.push("sys-admin"),
            1 => kept.retain(|c| *c != "sys-admin"),
            _ => {}
        }
        let mut p = json!({"description": "generated", "capabilities": kept});
        if next() % 3 == 0 {
            p["identity"] = json!({"uid": 65534, "gid": 65534});
        }
        sys_admin.insert(format!("g{i}"), kept.contains(&"sys-admin"));
        profiles.insert(format!("g{i}"), p);
    }
    let scenarios: serde_json::Map<String, Value> = profiles
        .keys()
        .map(|p| (p.clone(), json!({"look": "allow", "look-reads": "allow"})))
        .collect();
    let doc = |kind: &str, body: Value| {
        let mut d = json!({"schema_version": 1, "registry_id": "mt"});
        d[kind] = body;
        d.to_string()
    };
    let t = Test::new()
        .write(
            "registry/mt/probes.json",
            &doc(
                "probes",
                json!({"look": probe(false), "look-reads": probe(true)}),
            ),
        )
        .write(
            "registry/mt/profiles.json",
            &doc("profiles", Value::Object(profiles)),
        )
        .write(
            "plans/mt/plan.json",
            &json!({"schema_version": 1, "plan_id": "mt", "kind": "experiment",
                    "registry_id": "mt", "profiles": sys_admin.keys().collect::<Vec<_>>(),
                    "scenarios": scenarios})
            .to_string(),
        );
    let out = t.path().join("out").to_string_lossy().into_owned();
    // One worker: every child of the run in one shared PID namespace, one after the other.
    let t = t.args([
        "run",
        "--plan",
        "plans/mt/plan.json",
        "--out",
        &out,
        "--channel",
        "clean",
        "--jobs",
        "1",
    ]);
    let r = t.run();
    r.code(0);
    let b = bundle(&t);
    let runner_ns = std::fs::metadata("/proc/self/ns/mnt")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    let mut shared = std::collections::BTreeSet::new();
    let mut own = Vec::new();
    for (file, lane) in [
        ("runtime_results.jsonl", "scenario"),
        ("baseline_results.jsonl", "baseline"),
    ] {
        for o in results(&b, file).as_array().unwrap() {
            let sid = o["scenario_id"].as_str().unwrap();
            let (profile, probe) = sid.split_once(':').unwrap();
            assert_eq!(o["isolation"]["pid_namespace"], true, "{o:#}");
            let log = o["stdout"]["log"]
                .as_str()
                .unwrap_or_else(|| panic!("{o:#}"));
            let (ns, seen, mounted) = parse(&std::fs::read_to_string(b.join(log)).unwrap());
            // No child ever sees a mount another child made.
            assert_eq!(seen, 0, "{lane} {sid} saw another child's mount");
            // Only a child that keeps CAP_SYS_ADMIN can mount at all.
            assert_eq!(mounted, sys_admin[profile], "{lane} {sid}");
            assert_ne!(
                ns, runner_ns,
                "{lane} {sid} runs in the runner's mount namespace"
            );
            // The baseline keeps the host read-only and `reads` are bound read-only: both
            // are mounts of the child's own; and a child that can mount gets its own copy.
            let stays = lane == "scenario" && probe == "look" && !sys_admin[profile];
            if stays {
                shared.insert(ns);
            } else {
                own.push((format!("{lane} {sid}"), ns));
            }
        }
    }
    assert_eq!(
        shared.len(),
        1,
        "children that cannot mount share one namespace: {shared:?}"
    );
    for (who, ns) in own {
        assert!(!shared.contains(&ns), "{who} is in the shared namespace");
    }
}
