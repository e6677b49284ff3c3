//! Profiles that extend others, end to end: the kernel enforces the union of the layers,
//! `plan_digest` is the digest of the resolved profile (so widening a base changes the
//! digest of every plan whose profile extends it, and voids approvals of it), and
//! `describe-profile` shows the layers, the resolved profile and where each rule comes from.

use serde_json::{Value, json};

use crate::util::Project;

/// A project whose plan runs `child` (extends `fs-base` and `net-base`) over three probes.
fn project(profiles: &Value) -> Project {
    let p = Project::empty();
    let write = |rel: &str, v: &Value| {
        let f = p.path(rel);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    };
    write(
        "registry/layers/probes.json",
        &json!({
            "schema_version": 1,
            "registry_id": "layers",
            "probes": {
                "read-a": {
                    "operation": "file-read", "target": "${SCRATCH}/a/f",
                    "fixtures": [{"kind": "file", "path": "${SCRATCH}/a/f", "content": "a\n"}]
                },
                "read-b": {
                    "operation": "file-read", "target": "${SCRATCH}/b/f",
                    "fixtures": [{"kind": "file", "path": "${SCRATCH}/b/f", "content": "b\n"}]
                },
                "bind": {"operation": "tcp-bind", "target": "127.0.0.1:0"}
            }
        }),
    );
    write(
        "registry/layers/profiles.json",
        &json!({"schema_version": 1, "registry_id": "layers", "profiles": profiles}),
    );
    write(
        "plans/layers/plan.json",
        &json!({
            "schema_version": 1,
            "plan_id": "layers",
            "kind": "experiment",
            "registry_id": "layers",
            "profiles": ["child"],
            "scenarios": {"child": {"read-a": "allow", "read-b": "deny", "bind": "deny"}},
            "lanes": {"baseline": true, "scenario": true, "oracle": true},
            "execution": {"timeout_ms": 5000}
        }),
    );
    p
}

fn layered() -> Value {
    json!({
        "fs-base": {
            "description": "Read beneath ${SCRATCH}/a.",
            "landlock": {"abi": 4, "fs": {"handle": "all", "allow": [
                {"path": "${SCRATCH}/a", "access": ["read"]}
            ], "missing_paths": "skip"}}
        },
        "net-base": {"landlock": {"abi": 4, "net": {"tcp_bind": []}}},
        "child": {"extends": ["fs-base", "net-base"], "limits": {"open_files": 64}}
    })
}

fn digest(p: &Project) -> String {
    p.plan("layers").digest.blake3.clone()
}

#[test]
fn the_kernel_enforces_the_union_of_the_layers() {
    let p = project(&layered());
    p.nx(&["plan-lint", "plans/layers/plan.json"]).code(0);
    let r = p.run("layers", &[]);
    r.code(0);
    let bundle = p.latest();
    let results: Value = crate::util::results(&bundle, "runtime_results.jsonl");
    let outcome = |id: &str| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["scenario_id"] == id)
            .unwrap()["outcome"]
            .clone()
    };
    // fs-base's rule, net-base's handled bind: both enforced for `child`.
    assert_eq!(outcome("child:read-a"), "allow");
    assert_eq!(outcome("child:read-b"), "deny");
    assert_eq!(outcome("child:bind"), "deny");
}

#[test]
fn plan_digest_is_the_digest_of_the_resolved_profile() {
    let p = project(&layered());
    let layered_digest = digest(&p);
    // The same profile written out flat has the same digest: the digest covers what runs.
    let flat = project(&json!({
        "child": {
            "landlock": {"abi": 4, "fs": {"handle": "all", "allow": [
                {"path": "${SCRATCH}/a", "access": ["read"]}
            ], "missing_paths": "skip"}, "net": {"tcp_bind": []}},
            "limits": {"open_files": 64}
        }
    }));
    assert_eq!(digest(&flat), layered_digest);
    // Widening a base (a rule the child's own text never mentions) changes the child's
    // plan digest, so an approval of the plan no longer matches.
    let mut wider = layered();
    wider["fs-base"]["landlock"]["fs"]["allow"]
        .as_array_mut()
        .unwrap()
        .push(json!({"path": "${SCRATCH}/b", "access": ["read"]}));
    let wide = project(&wider);
    assert_ne!(digest(&wide), layered_digest);
    // And the run sees it: read-b is now allowed, a mismatch against the plan.
    wide.run("layers", &[]).code(1);
    // A base's description is not part of what runs: same digest.
    let mut reworded = layered();
    reworded["fs-base"]["description"] = json!("Another text.");
    assert_eq!(digest(&project(&reworded)), layered_digest);
}

#[test]
fn describe_profile_shows_layers_origins_and_the_resolved_profile() {
    let p = project(&layered());
    let r = p.nx(&[
        "--json",
        "describe-profile",
        "child",
        "--registry",
        "layers",
    ]);
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["layers"], json!(["fs-base", "net-base", "child"]));
    assert_eq!(v["profile"]["extends"], json!(["fs-base", "net-base"]));
    assert_eq!(
        v["resolved"]["landlock"]["fs"]["allow"][0]["path"],
        "${SCRATCH}/a"
    );
    assert_eq!(v["resolved"]["landlock"]["net"]["tcp_bind"], json!([]));
    assert!(v["resolved"].get("extends").is_none());
    let r = p.nx(&["describe-profile", "child", "--registry", "layers"]);
    r.code(0);
    assert!(
        r.stdout.contains("extends        fs-base, net-base"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("${SCRATCH}/a: read (from fs-base)"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_cycle_or_an_unknown_base_stops_run_and_describe_with_the_profiles_file_named() {
    let mut cyclic = layered();
    cyclic["fs-base"]["extends"] = json!(["child"]);
    let mut unknown = layered();
    unknown["child"]["extends"] = json!(["fs-base", "net-bas"]);
    for (profiles, says) in [
        (cyclic, "cycle: `child` → `fs-base` → `child`"),
        (
            unknown,
            "extends `net-bas`, which the registry does not define",
        ),
    ] {
        let p = project(&profiles);
        let r = p.run("layers", &[]);
        r.code(2);
        assert!(r.stderr.contains(says), "{}", r.stderr);
        assert!(
            r.stderr.contains("registry/layers/profiles.json"),
            "{}",
            r.stderr
        );
        assert!(!p.path("out").join("LATEST").exists());
        let r = p.nx(&["describe-profile", "child", "--registry", "layers"]);
        r.code(2);
        assert!(r.stderr.contains(says), "{}", r.stderr);
        let r = p.nx(&["plan-lint", "plans/layers/plan.json"]);
        r.code(1);
    }
}
