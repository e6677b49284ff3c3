//! `plan_digest` (DESIGN §3.3): canonical JSON of the plan with every registry entry it
//! resolves. The YAML twin of a plan has the same digest; editing a resolved probe or profile
//! changes it; editing an entry the plan does not use does not.

use std::path::{Path, PathBuf};

use nexusmon::load::load_plan;
use serde_json::Value;

use crate::util::{Project, Test, edit_json, repo_root};

fn digest(plan: &Path) -> String {
    load_plan(plan)
        .unwrap_or_else(|e| panic!("{}: {e}", plan.display()))
        .digest
        .blake3
}

/// A temp copy of the shipped examples; the path of its quickstart plan.
fn project() -> (Project, PathBuf) {
    let p = Project::shipped();
    let plan = p.path("plans/quickstart/plan.json");
    (p, plan)
}

#[test]
fn the_yaml_twin_has_the_same_value_and_digest() {
    let json_plan = repo_root().join("plans/quickstart/plan.json");
    let yaml_plan = repo_root().join("tests/fixtures/digest/quickstart/plan.yaml");
    let a = load_plan(&json_plan).unwrap();
    let b = load_plan(&yaml_plan).unwrap();
    let mut pa = a.plan.clone();
    let mut pb = b.plan.clone();
    pa.schema = None;
    pb.schema = None;
    assert_eq!(pa, pb, "the YAML twin must describe the same plan");
    assert_eq!(a.digest, b.digest);
    assert!(a.digest.sha256.is_some());
    // And it lints clean.
    Test::new()
        .cwd(repo_root())
        .args(["plan-lint", "tests/fixtures/digest"])
        .run()
        .code(0);
}

#[test]
fn formatting_key_order_and_schema_do_not_change_the_digest() {
    let (_t, plan) = project();
    let before = digest(&plan);
    // Re-serialize compactly with sorted keys and a different `$schema`.
    edit_json(&plan, |v| {
        v["$schema"] = Value::String("https://example.invalid/plan.json".into());
    });
    let text = serde_json::to_string(
        &serde_json::from_slice::<Value>(&std::fs::read(&plan).unwrap()).unwrap(),
    )
    .unwrap();
    std::fs::write(&plan, text).unwrap();
    assert_eq!(digest(&plan), before);
}

#[test]
fn editing_a_resolved_probe_changes_the_digest() {
    let (t, plan) = project();
    let before = digest(&plan);
    edit_json(&t.root().join("registry/linux-core/probes.json"), |v| {
        v["probes"]["read-etc-hostname"]["timeout_ms"] = Value::from(1234);
    });
    assert_ne!(digest(&plan), before);
}

#[test]
fn editing_a_resolved_profile_changes_the_digest() {
    let (t, plan) = project();
    let before = digest(&plan);
    edit_json(&t.root().join("registry/linux-core/profiles.json"), |v| {
        v["profiles"]["net-deny-all"]["landlock"]["net"]["tcp_connect"] = serde_json::json!([443]);
    });
    assert_ne!(digest(&plan), before);
}

#[test]
fn editing_an_unreferenced_entry_does_not_change_the_digest() {
    let (t, plan) = project();
    let before = digest(&plan);
    edit_json(&t.root().join("registry/linux-core/probes.json"), |v| {
        v["probes"]["udp-send-discard"]["notes"] = Value::String("edited".into());
        v["probes"]["brand-new"] = serde_json::json!({"operation": "file-stat", "target": "/etc/hostname", "notes": "new"});
    });
    edit_json(&t.root().join("registry/linux-core/profiles.json"), |v| {
        v["profiles"]["ipc-scoped"]["description"] = Value::String("edited".into());
    });
    assert_eq!(digest(&plan), before);
}

#[test]
fn editing_the_plan_changes_the_digest() {
    let (_t, plan) = project();
    let before = digest(&plan);
    edit_json(&plan, |v| {
        v["scenarios"]["system-ro"]["read-os-release"] = Value::String("deny".into());
    });
    assert_ne!(digest(&plan), before);
}
