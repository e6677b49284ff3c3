//! Every governance file the tool writes validates against its committed schema in
//! `schemas/`, checked by an independent validator (Python's `jsonschema`): approval and
//! clearance records, audit log lines, the audit head, omens, evolution, and the gate
//! record in a bundle. The files come from real commands, not hand-written samples.

use std::path::PathBuf;

use nexusmon::govern::omens::Failure;
use serde_json::json;

use crate::util::Project;
use crate::util::{emit_packet, latest_bundle, python, repo_root};

/// Validate `files` against `schemas/<schema>`; a `.jsonl` file is one instance per line.
fn validate(schema: &str, files: &[PathBuf]) -> (i32, String) {
    const PY: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema)
bad = 0
n = 0
for path in sys.argv[2:]:
    if path.endswith(".jsonl"):
        docs = [json.loads(l) for l in open(path) if l.strip()]
    else:
        docs = [json.load(open(path))]
    for i, d in enumerate(docs):
        n += 1
        for e in v.iter_errors(d):
            bad += 1
            print(f"{path}[{i}]: {'/'.join(map(str, e.absolute_path))}: {e.message}")
print(f"checked {n} documents, {bad} errors")
sys.exit(1 if bad else 0)
"#;
    let out = python(&["jsonschema"], PY)
        .arg(repo_root().join("schemas").join(schema))
        .args(files)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub(crate) fn check(schema: &str, files: &[PathBuf], documents: usize) {
    for f in files {
        assert!(f.is_file(), "{} was not written", f.display());
    }
    let (code, text) = validate(schema, files);
    assert_eq!(code, 0, "{schema}:\n{text}");
    assert!(
        text.contains(&format!("checked {documents} documents, 0 errors")),
        "{schema}: {text}"
    );
}

#[test]
fn every_governance_file_the_tool_writes_validates_against_its_schema() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    // An approval record (written by `approve`, signed), a governed run that copies it and
    // writes the gate record, an omen, a clearance record, an evolution state.
    p.nx(&[
        "approve",
        "--plan",
        "plans/deploy-a/plan.json",
        "--approver",
        "alice",
        "--sign-with",
        alice.to_str().unwrap(),
    ])
    .code(0);
    p.nx(&["run", "--plan", "plans/deploy-a/plan.json"]).code(0);
    let bundle = latest_bundle(p.root());
    p.gov()
        .record_failures(
            "run-x",
            &[Failure {
                plan_id: "deploy-a".into(),
                scenario_id: "etc-readonly:read-hostname".into(),
                mismatch_kind: "expected-allow-observed-deny".into(),
                outcome: "deny".into(),
            }],
        )
        .unwrap();
    let omens: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.state().join("omens.json")).unwrap()).unwrap();
    let fp = omens["omens"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    p.nx(&[
        "omens",
        "clear",
        &fp[..12],
        "--approver",
        "alice",
        "--prepare",
    ])
    .code(0);
    let clearances: Vec<PathBuf> = std::fs::read_dir(p.state().join("clearances"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(clearances.len(), 1, "{clearances:?}");
    // The evolution state from the governed run's real packet (rank A, approved: 8 XP).
    let packet = emit_packet(p.root(), &bundle, "packet.json");
    p.nx(&["evolve", "--packets", packet.to_str().unwrap()])
        .code(0);

    check(
        "approval-record.schema.json",
        &[
            p.path("plans/deploy-a/approvals/deploy-a.alice.json"),
            bundle.join("governance/approvals/deploy-a.alice.json"),
        ],
        2,
    );
    check("omen-clearance.schema.json", &clearances, 1);
    check(
        "gate-record.schema.json",
        &[bundle.join("governance/gate.json")],
        1,
    );
    let log = p.state().join("audit.jsonl");
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(
        lines >= 5,
        "genesis, approval, run start and seal, evolution"
    );
    check("audit-entry.schema.json", &[log], lines);
    check(
        "audit-head.schema.json",
        &[p.state().join("audit_head.json")],
        1,
    );
    check("omens.schema.json", &[p.state().join("omens.json")], 1);
    let evo = p.state().join("evolution.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&evo).unwrap()).unwrap();
    assert_eq!(v["level"], "AWAKENING", "a real state, not the empty one");
    check("evolution.schema.json", &[evo], 1);

    // The validator really runs: a record with an unknown key fails it.
    let bad = p.path("bad-record.json");
    let mut record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.path("plans/deploy-a/approvals/deploy-a.alice.json")).unwrap(),
    )
    .unwrap();
    record["surprise"] = json!(true);
    std::fs::write(&bad, serde_json::to_vec(&record).unwrap()).unwrap();
    let (code, text) = validate("approval-record.schema.json", &[bad]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("surprise"), "{text}");
}
