//! `audit verify`: the hash chain, torn-line recovery, and anchors in sealed bundles and
//! `LATEST`.

use std::io::Write;

use nexusmon::bundle::{BeginOptions, LockOptions, SealInfo, StagedBundle};
use nexusmon::govern::audit::AuditKind;
use serde_json::json;

use crate::util::{Project, snapshot_settings};

/// A project whose audit log has exactly 20 lines (genesis + 19 entries).
fn twenty_lines() -> Project {
    let p = Project::copy_of("govern/project").init();
    let gov = p.gov();
    for i in 1..20 {
        gov.audit()
            .append(
                AuditKind::RunStarted,
                json!({"run_id": format!("run-{i:02}"), "plan_id": "deploy-a"}),
            )
            .unwrap();
    }
    p
}

fn log_lines(p: &Project) -> Vec<String> {
    std::fs::read_to_string(p.state().join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(p: &Project, lines: &[String]) {
    std::fs::write(p.state().join("audit.jsonl"), lines.join("\n") + "\n").unwrap();
}

/// Seal a bundle into `<root>/out` anchoring the current head.
fn seal_bundle(p: &Project, run_id: &str) {
    let gov = p.gov();
    let staged = StagedBundle::begin(&BeginOptions {
        out_root: p.path("out"),
        run_id: Some(run_id.to_string()),
        lock: LockOptions::default(),
    })
    .unwrap();
    staged
        .write_json("summary.json", &json!({"ok": true}))
        .unwrap();
    staged
        .seal(SealInfo {
            audit_head: Some(gov.audit_head().unwrap()),
            ..SealInfo::complete()
        })
        .unwrap();
}

#[test]
fn a_fresh_log_verifies() {
    let p = twenty_lines();
    let r = p.nx(&["audit", "verify"]);
    r.code(0);
    assert!(
        r.stderr.contains("ok: 20 lines, head seq 19"),
        "{}",
        r.stderr
    );
    let r = p.nx(&["--json", "audit", "verify"]);
    r.code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["report"]["ok"], true);
    assert_eq!(v["report"]["lines"], 20);
}

#[test]
fn editing_any_of_twenty_lines_fails_and_names_that_line() {
    let p = twenty_lines();
    let original = log_lines(&p);
    for target in 0..20 {
        let mut lines = original.clone();
        let edited = if target == 0 {
            lines[0].replacen("\"ts\":\"", "\"ts\":\"9", 1)
        } else {
            lines[target].replacen("run-", "RUN-", 1)
        };
        assert_ne!(edited, lines[target]);
        lines[target] = edited;
        write_lines(&p, &lines);
        let r = p.nx(&["--json", "audit", "verify"]);
        r.code(1);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(
            v["report"]["first_bad_line"],
            target + 1,
            "edit of line {}: {}",
            target + 1,
            r.stdout
        );
        let human = p.nx(&["audit", "verify"]);
        human.code(1);
        assert!(
            human
                .stderr
                .contains(&format!("line {} (seq {target}) was changed", target + 1)),
            "{}",
            human.stderr
        );
    }
    write_lines(&p, &original);
    p.nx(&["audit", "verify"]).code(0);
}

#[test]
fn removing_a_line_is_reported_as_a_gap() {
    let p = twenty_lines();
    let mut lines = log_lines(&p);
    lines.remove(7);
    write_lines(&p, &lines);
    let r = p.nx(&["audit", "verify"]);
    r.code(1);
    assert!(
        r.stderr
            .contains("line 8: seq jumps from 6 to 8: 1 line(s) (seq 7..=7) were removed"),
        "{}",
        r.stderr
    );
}

#[test]
fn cutting_the_tail_fails_through_an_anchor_in_a_sealed_bundle() {
    let p = twenty_lines();
    seal_bundle(&p, "20261124T000000.000Z-00000001");
    let gov = p.gov();
    gov.audit()
        .append(AuditKind::RunSealed, json!({"run_id": "x"}))
        .unwrap();
    p.nx(&["audit", "verify"]).code(0);

    // Cut the last three lines and make the state-dir anchor agree, as someone hiding
    // history would: the chain alone is intact...
    let mut lines = log_lines(&p);
    lines.truncate(18);
    write_lines(&p, &lines);
    let head = nexusmon::govern::Governance::open(&p.state())
        .unwrap()
        .audit_head()
        .unwrap();
    std::fs::write(
        p.state().join("audit_head.json"),
        serde_json::to_vec(&head).unwrap(),
    )
    .unwrap();
    p.nx(&[
        "audit",
        "verify",
        "--anchors",
        p.path("nothing-here").to_str().unwrap(),
    ])
    .code(2);
    // ...but the bundle's index and LATEST still anchor seq 19.
    let r = p.nx(&["audit", "verify"]);
    r.code(1);
    assert!(
        r.stderr
            .contains("anchors seq 19 but the log ends at seq 17: the tail was cut"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("artifact_index.json"), "{}", r.stderr);
    assert!(r.stderr.contains("LATEST"), "{}", r.stderr);
    let r = p.nx(&["--json", "audit", "verify", "--anchors", "out"]);
    r.code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["report"]["anchors_checked"], 3);
}

#[test]
fn a_rewritten_history_fails_through_the_anchor_and_names_the_line() {
    let p = twenty_lines();
    seal_bundle(&p, "20261124T000000.000Z-00000002");
    // Replace history from line 16 on with a freshly chained forgery.
    let mut lines = log_lines(&p);
    lines.truncate(15);
    write_lines(&p, &lines);
    let gov = p.gov();
    for i in 0..5 {
        gov.audit()
            .append(
                AuditKind::RunStarted,
                json!({"run_id": format!("forged-{i}")}),
            )
            .unwrap();
    }
    let r = p.nx(&["audit", "verify", "--anchors", "out"]);
    r.code(1);
    assert!(
        r.stderr
            .contains("line 20 (seq 19) was changed: its digest differs from the head anchored in"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_torn_last_line_is_recovered_on_the_next_append_and_recorded() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    let log = p.state().join("audit.jsonl");
    let torn = b"{\"data\":{\"run_id\":\"half";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(torn)
        .unwrap();
    let r = p.nx(&["audit", "verify"]);
    r.code(0);
    assert!(r.stderr.contains("no trailing newline"), "{}", r.stderr);
    // Any append recovers it.
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
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["kind"], "recovered");
    assert_eq!(lines[1]["data"]["dropped_bytes"], torn.len());
    assert_eq!(
        lines[1]["data"]["dropped_blake3"],
        blake3::hash(torn).to_hex().to_string()
    );
    assert_eq!(lines[2]["kind"], "approval-recorded");
    let saved = p
        .state()
        .join(lines[1]["data"]["saved_as"].as_str().unwrap());
    assert_eq!(std::fs::read(saved).unwrap(), torn);
    let r = p.nx(&["--json", "audit", "verify"]);
    r.code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["report"]["recovered_entries"], 1);
}

#[test]
fn a_failed_verification_reads_well() {
    let p = twenty_lines();
    let mut lines = log_lines(&p);
    lines[4] = lines[4].replacen("run-", "RUN-", 1);
    lines.remove(11);
    lines.truncate(17);
    write_lines(&p, &lines);
    let r = p.nx(&["audit", "verify"]);
    r.code(1);
    snapshot_settings(&[(p.root(), "[ROOT]")]).bind(|| insta::assert_snapshot!(r.stderr));
}

#[test]
fn a_promotion_packet_is_an_anchor_too() {
    let p = twenty_lines();
    let head = p.gov().audit_head().unwrap();
    let packet = p.path("promotion_packet.json");
    std::fs::write(
        &packet,
        serde_json::to_vec_pretty(
            &json!({"schema_version": 1, "governance": {"audit_head": head}}),
        )
        .unwrap(),
    )
    .unwrap();
    p.nx(&["audit", "verify", "--anchors", "promotion_packet.json"])
        .code(0);
    let mut lines = log_lines(&p);
    lines.truncate(19);
    write_lines(&p, &lines);
    std::fs::remove_file(p.state().join("audit_head.json")).unwrap();
    let r = p.nx(&["audit", "verify", "--anchors", "promotion_packet.json"]);
    r.code(1);
    assert!(
        r.stderr
            .contains("promotion_packet.json anchors seq 19 but the log ends at seq 18"),
        "{}",
        r.stderr
    );
}

#[test]
fn anchors_take_several_paths_after_one_flag_or_the_flag_repeated() {
    let p = twenty_lines();
    seal_bundle(&p, "20261124T000000.000Z-00000001");
    let head = p.gov().audit_head().unwrap();
    std::fs::write(
        p.path("promotion_packet.json"),
        serde_json::to_vec_pretty(
            &json!({"schema_version": 1, "governance": {"audit_head": head}}),
        )
        .unwrap(),
    )
    .unwrap();
    let verify = |anchors: &[&str]| -> serde_json::Value {
        let mut args = vec!["--json", "audit", "verify"];
        args.extend_from_slice(anchors);
        let r = p.nx(&args);
        r.code(0);
        serde_json::from_str(&r.stdout).unwrap()
    };
    let out_only = verify(&["--anchors", "out"]);
    let one_flag = verify(&["--anchors", "out", "promotion_packet.json"]);
    let repeated = verify(&["--anchors", "out", "--anchors", "promotion_packet.json"]);
    assert_eq!(one_flag["anchor_sources"], repeated["anchor_sources"]);
    assert_eq!(
        one_flag["report"]["anchors_checked"],
        repeated["report"]["anchors_checked"]
    );
    assert!(
        one_flag["report"]["anchors_checked"].as_u64().unwrap()
            > out_only["report"]["anchors_checked"].as_u64().unwrap(),
        "{one_flag:#}"
    );
    let sources = one_flag["anchor_sources"].to_string();
    assert!(sources.contains("promotion_packet.json"), "{sources}");
    assert!(sources.contains("artifact_index.json"), "{sources}");
}

/// The kinds of the problems `audit verify --anchors out` reports.
fn verify_kinds(p: &Project) -> Vec<String> {
    let r = p.nx(&["--json", "audit", "verify", "--anchors", "out"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(r.status == 0, v["report"]["ok"] == true, "{}", r.stdout);
    v["report"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_forged_index_is_the_bundles_problem_not_a_changed_log_line() {
    let p = Project::shipped().init();
    for _ in 0..2 {
        p.run("quickstart", &[]).code(0);
    }
    assert!(verify_kinds(&p).is_empty());
    // The newest bundle's index re-written with another audit_head (and LATEST with it):
    // before, `audit verify` blamed the log line that anchor named.
    let b = p.latest();
    let idx = b.join("artifact_index.json");
    let mut ix: serde_json::Value = serde_json::from_slice(&std::fs::read(&idx).unwrap()).unwrap();
    ix["audit_head"]["blake3"] = json!("c".repeat(64));
    let bytes = serde_json::to_vec_pretty(&ix).unwrap();
    std::fs::write(&idx, &bytes).unwrap();
    let latest = p.path("out/LATEST");
    let mut l: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&latest).unwrap()).unwrap();
    l["artifact_index_blake3"] = json!(nexusmon::util::digest::blake3_hex(&bytes));
    std::fs::write(&latest, serde_json::to_vec_pretty(&l).unwrap()).unwrap();
    let kinds = verify_kinds(&p);
    assert!(
        kinds.contains(&"index-not-anchored".to_string()),
        "{kinds:?}"
    );
    assert!(
        !kinds.contains(&"changed".to_string()),
        "the log was blamed: {kinds:?}"
    );
    let r = p.nx(&["audit", "verify", "--anchors", "out"]);
    assert!(
        r.stderr
            .contains("the bundle was forged or swapped after the seal"),
        "{}",
        r.stderr
    );
    // validate-bundle says the same about the bundle.
    let r = p.nx(&["validate-bundle", "--bundle", "out"]);
    r.code(1);
    assert!(r.stdout.contains("index-not-anchored"), "{}", r.stdout);
}

#[test]
fn the_head_file_and_latest_are_checked_against_the_log() {
    let p = Project::shipped().init();
    p.run("quickstart", &[]).code(0);
    let older = std::fs::read(p.path("out/LATEST")).unwrap();
    p.run("quickstart", &[]).code(0);
    assert!(verify_kinds(&p).is_empty());
    // LATEST set back to the older run (both bundles intact): a silent rollback.
    std::fs::write(p.path("out/LATEST"), &older).unwrap();
    assert_eq!(verify_kinds(&p), ["latest-rollback"]);
    p.nx(&["validate-bundle", "--bundle", "out"]).code(1);
    p.run("quickstart", &[]).code(0);
    assert!(verify_kinds(&p).is_empty());
    // The head beside the log: deleted, then behind the log.
    let head_file = p.state().join("audit_head.json");
    let head = std::fs::read(&head_file).unwrap();
    std::fs::remove_file(&head_file).unwrap();
    assert_eq!(verify_kinds(&p), ["head-missing"]);
    std::fs::write(&head_file, &head).unwrap();
    p.gov()
        .audit()
        .append(AuditKind::Evolution, json!({}))
        .unwrap();
    std::fs::write(&head_file, &head).unwrap();
    assert_eq!(verify_kinds(&p), ["head-behind-log"]);
}
