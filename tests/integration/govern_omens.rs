//! Omens: counting failures across runs, the thresholds the gate applies, `omens list`,
//! and clearing a locked omen with a signed clearance.

use nexusmon::govern::gate::Outcome;
use nexusmon::govern::omens::{Failure, OmenLevel};

use crate::util::Project;

fn failure() -> Failure {
    Failure {
        plan_id: "readonly-exp".into(),
        scenario_id: "etc-readonly:read-shadow".into(),
        mismatch_kind: "expected-deny-observed-allow".into(),
        outcome: "allow".into(),
    }
}

/// Record `n` runs that each failed the same way.
fn fail_runs(p: &Project, from: u32, n: u32) {
    let gov = p.gov();
    for i in from..from + n {
        gov.record_failures(&format!("run-{i}"), &[failure(), failure()])
            .unwrap();
    }
}

#[test]
fn thresholds_warn_then_need_approval_then_lock() {
    let p = Project::copy_of("govern/project").init();
    fail_runs(&p, 0, 2);
    assert_eq!(p.gate("readonly-exp", &[]).decision.outcome, Outcome::Allow);
    fail_runs(&p, 2, 1);
    let g = p.gate("readonly-exp", &[]);
    assert_eq!(g.decision.outcome, Outcome::AllowFlagged);
    assert_eq!(g.decision.omens[0].level, OmenLevel::Warn);
    assert_eq!(g.decision.omens[0].count, 3, "counted once per run");
    fail_runs(&p, 3, 4);
    let g = p.gate("readonly-exp", &[]);
    assert_eq!(g.decision.flags, vec!["omen-needs-approval"]);
    fail_runs(&p, 7, 6);
    let g = p.gate("readonly-exp", &[]);
    assert_eq!(g.decision.outcome, Outcome::Refuse);
    assert!(g.decision.reasons.contains(&"omen-locked".into()));
    // Each crossing is in the audit log.
    let log = std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap();
    let to: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "omen-recorded")
        .map(|v| v["data"]["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(to, vec!["warn", "needs-approval", "locked"]);

    let r = p.nx(&["omens", "list"]);
    r.code(0);
    let fp = failure().fingerprint();
    assert!(r.stdout.contains(&fp[..16]), "{}", r.stdout);
    assert!(r.stdout.contains("locked"), "{}", r.stdout);
    assert!(
        r.stdout.contains("etc-readonly:read-shadow"),
        "{}",
        r.stdout
    );
    let r = p.nx(&["--json", "omens", "list"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["omens"][0]["count"], 13);
    assert_eq!(v["omens"][0]["level"], "locked");
}

#[test]
fn an_approver_clears_a_locked_omen_with_our_signature() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    fail_runs(&p, 0, 13);
    let fp = failure().fingerprint();
    let r = p.nx(&[
        "omens",
        "clear",
        &fp[..10],
        "--approver",
        "alice",
        "--sign-with",
        alice.to_str().unwrap(),
    ]);
    r.code(0);
    assert!(r.stderr.contains("cleared omen"), "{}", r.stderr);
    assert_eq!(p.gate("readonly-exp", &[]).decision.outcome, Outcome::Allow);
    let log = std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "omen-cleared");
    assert_eq!(last["data"]["approver"], "alice");
    assert_eq!(last["data"]["count"], 13);
    // Thresholds restart from the cleared count.
    fail_runs(&p, 13, 3);
    let g = p.gate("readonly-exp", &[]);
    assert_eq!(g.decision.omens[0].level, OmenLevel::Warn);
    let r = p.nx(&["omens", "list"]);
    assert!(r.stdout.contains("3/16"), "{}", r.stdout);
}

#[test]
fn a_clearance_signed_by_ssh_keygen_counts_once_and_not_after_new_failures() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    fail_runs(&p, 0, 13);
    let fp = failure().fingerprint();
    let r = p.nx(&[
        "--json",
        "omens",
        "clear",
        &fp,
        "--approver",
        "alice",
        "--prepare",
    ]);
    r.code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["cleared"], false);
    let rec = std::path::PathBuf::from(v["prepared"].as_str().unwrap());
    assert!(r.stderr.contains("ssh-keygen -Y sign"), "{}", r.stderr);
    p.ssh_sign(&alice, "nexusmon-approval-v1", &rec);
    // The omen fires again before the clearance is used: the clearance is stale.
    fail_runs(&p, 13, 1);
    let r = p.nx(&[
        "omens",
        "clear",
        &fp,
        "--approver",
        "alice",
        "--record",
        rec.to_str().unwrap(),
    ]);
    r.code(4);
    assert!(r.stderr.contains("stale-clearance"), "{}", r.stderr);
    assert_eq!(
        p.gate("readonly-exp", &[]).decision.outcome,
        Outcome::Refuse
    );
    // A fresh one works.
    let r = p.nx(&[
        "--json",
        "omens",
        "clear",
        &fp,
        "--approver",
        "alice",
        "--prepare",
    ]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let rec = std::path::PathBuf::from(v["prepared"].as_str().unwrap());
    p.ssh_sign(&alice, "nexusmon-approval-v1", &rec);
    p.nx(&[
        "omens",
        "clear",
        &fp,
        "--approver",
        "alice",
        "--record",
        rec.to_str().unwrap(),
    ])
    .code(0);
    assert_eq!(p.gate("readonly-exp", &[]).decision.outcome, Outcome::Allow);
}

#[test]
fn an_untrusted_or_unprivileged_signer_cannot_clear() {
    let p = Project::copy_of("govern/project").init();
    let stranger = p.keygen("stranger", "ed25519");
    let nora = p.keygen("nora", "ed25519");
    p.trust(&format!("nora {}", p.pubkey(&nora)));
    fail_runs(&p, 0, 13);
    let fp = failure().fingerprint();
    let r = p.nx(&[
        "omens",
        "clear",
        &fp,
        "--approver",
        "alice",
        "--sign-with",
        stranger.to_str().unwrap(),
    ]);
    r.code(4);
    assert!(r.stderr.contains("unknown-key"), "{}", r.stderr);
    let r = p.nx(&[
        "omens",
        "clear",
        &fp,
        "--approver",
        "nora",
        "--sign-with",
        nora.to_str().unwrap(),
    ]);
    r.code(4);
    assert!(r.stderr.contains("missing-role"), "{}", r.stderr);
    assert_eq!(
        p.gate("readonly-exp", &[]).decision.outcome,
        Outcome::Refuse
    );
    let r = p.nx(&["omens", "clear", &fp, "--approver", "alice"]);
    r.code(2);
    assert!(r.stderr.contains("--prepare"), "{}", r.stderr);
    let r = p.nx(&["omens", "clear", "abc", "--approver", "alice", "--prepare"]);
    r.code(2);
    assert!(r.stderr.contains("at least 8 hex"), "{}", r.stderr);
}

#[test]
fn a_needs_approval_omen_makes_a_mission_need_an_approval() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    let gov = p.gov();
    for i in 0..7 {
        gov.record_failures(
            &format!("run-{i}"),
            &[Failure {
                plan_id: "tidy-c".into(),
                scenario_id: "etc-readonly:read-hostname".into(),
                mismatch_kind: "expected-allow-observed-deny".into(),
                outcome: "deny".into(),
            }],
        )
        .unwrap();
    }
    let g = p.gate("tidy-c", &[]);
    assert_eq!(g.decision.outcome, Outcome::Refuse);
    assert_eq!(g.decision.required_approvals, 1);
    assert_eq!(p.missions()["tidy-c"]["state"], "awaiting-approval");
    p.nx(&[
        "approve",
        "--plan",
        "plans/tidy-c/plan.json",
        "--approver",
        "alice",
        "--sign-with",
        alice.to_str().unwrap(),
    ])
    .code(0);
    assert_eq!(
        p.gate("tidy-c", &[]).decision.outcome,
        Outcome::AllowFlagged
    );
}
