//! Governance: state directory, approvals signed with real `ssh-keygen` keys (both
//! directions), the trust file, the gate as seen through `missions` and the library.

use std::path::{Path, PathBuf};
use std::process::Command;

use nexusmon::govern::gate::Outcome;
use nexusmon::govern::sign::RejectReason;

use crate::util::{Project, snapshot_settings};

fn reasons(report: &nexusmon::govern::GateReport) -> Vec<RejectReason> {
    report.approvals.rejected.iter().map(|r| r.reason).collect()
}

// ---------------------------------------------------------------------------------------

#[test]
fn init_creates_the_state_directory_and_is_idempotent() {
    let p = Project::copy_of("govern/project");
    let r = p.nx(&["--json", "init"]);
    r.code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["created"],
        serde_json::json!([
            "audit.jsonl",
            "audit_head.json",
            "evolution.json",
            "omens.json",
            "trusted_signers"
        ])
    );
    for f in [
        "audit.jsonl",
        "trusted_signers",
        "omens.json",
        "evolution.json",
    ] {
        assert!(p.state().join(f).is_file(), "{f}");
    }
    let log = std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1);
    assert!(log.contains("\"kind\":\"genesis\""), "{log}");
    let r = p.nx(&["init"]);
    r.code(0);
    assert!(r.stderr.contains("already initialized"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap(),
        log
    );
}

#[test]
fn the_trust_file_template_is_accepted_by_ssh_keygen_and_by_us() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    // A line with every option we honour, plus roles in the comment.
    let carol = p.keygen("carol", "ed25519");
    p.trust(&format!(
        "carol,ops-* namespaces=\"nexusmon-approval-v1,git\",valid-after=\"20200101\",valid-before=\"20991231Z\" {} carol@laptop roles=approver,security",
        p.pubkey(&carol)
    ));
    let rec = p.approve_unsigned("deploy-a", "alice", &[]);
    p.ssh_sign(&alice, "nexusmon-approval-v1", &rec);
    let out = p.ssh_verify("alice", &rec);
    assert!(
        out.status.success(),
        "ssh-keygen rejected our trust file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trust = p.gov().trust().unwrap();
    assert_eq!(trust.entries.len(), 2);
    assert!(trust.entries[1].roles.contains("security"));
}

#[test]
fn commands_that_need_state_explain_how_to_create_it() {
    let p = Project::copy_of("govern/project");
    for args in [
        &["audit", "verify"][..],
        &["omens", "list"],
        &["evolution", "status"],
        &["missions"],
    ] {
        let r = p.nx(args);
        r.code(2);
        assert!(r.stderr.contains("nexusmon init"), "{args:?}: {}", r.stderr);
    }
    let r = p.nx(&["--state-dir", "nowhere", "omens", "list"]);
    r.code(2);
    assert!(r.stderr.contains("nowhere"), "{}", r.stderr);
}

#[test]
fn rank_a_needs_an_approval_signed_by_ssh_keygen_and_an_edited_probe_voids_it() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    // No approval: refused, awaiting approval.
    let g = p.gate("deploy-a", &[]);
    assert_eq!(g.decision.outcome, Outcome::Refuse);
    assert!(
        g.decision
            .reasons
            .contains(&"approvals-insufficient".into())
    );
    assert_eq!(p.missions()["deploy-a"]["state"], "awaiting-approval");

    // A record written by `approve`, signed by stock ssh-keygen: it runs.
    let rec = p.approve_unsigned("deploy-a", "alice", &[]);
    p.ssh_sign(&alice, "nexusmon-approval-v1", &rec);
    let g = p.gate("deploy-a", std::slice::from_ref(&rec));
    assert_eq!(g.decision.outcome, Outcome::Allow, "{:#?}", g.approvals);
    assert_eq!(g.decision.approvers, vec!["alice"]);
    assert_eq!(
        g.approvals.valid[0].key_fingerprint,
        p.gov().trust().unwrap().entries[0].fingerprint
    );
    // The record and signature go into the bundle, with the gate's record.
    let rels: Vec<&str> = g.files.iter().map(|f| f.rel.as_str()).collect();
    assert_eq!(
        rels,
        vec![
            "governance/approvals/deploy-a.alice.json",
            "governance/approvals/deploy-a.alice.json.sig",
            "governance/gate.json"
        ]
    );
    assert_eq!(g.files[0].bytes, std::fs::read(&rec).unwrap());
    let gate: serde_json::Value = serde_json::from_slice(&g.files[2].bytes).unwrap();
    let schema = serde_json::to_value(schemars::schema_for!(nexusmon::govern::GateRecord)).unwrap();
    assert!(
        jsonschema::validator_for(&schema).unwrap().is_valid(&gate),
        "{gate:#}"
    );
    assert_eq!(
        gate["approvals"]["valid"][0]["record_path"],
        "governance/approvals/deploy-a.alice.json"
    );
    assert_eq!(gate["decision"]["outcome"], "allow");

    // Edit one probe of the plan's registry: the digest changes, the approval is void.
    let probes = p.path("registry/core/probes.json");
    let text = std::fs::read_to_string(&probes).unwrap();
    std::fs::write(&probes, text.replace("/etc/hostname", "/etc/passwd")).unwrap();
    let g = p.gate("deploy-a", std::slice::from_ref(&rec));
    assert_eq!(g.decision.outcome, Outcome::Refuse);
    assert_eq!(reasons(&g), vec![RejectReason::PlanDigestMismatch]);
    assert!(
        g.approvals.rejected[0]
            .detail
            .contains("changed since it was approved")
    );
}

#[test]
fn editing_a_profile_or_the_plan_voids_the_approval_too() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
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
    assert_eq!(p.gate("deploy-a", &[]).decision.outcome, Outcome::Allow);
    let profiles = p.path("registry/core/profiles.json");
    let orig = std::fs::read_to_string(&profiles).unwrap();
    std::fs::write(&profiles, orig.replace("\"abi\": 4", "\"abi\": 5")).unwrap();
    assert_eq!(
        reasons(&p.gate("deploy-a", &[])),
        vec![RejectReason::PlanDigestMismatch]
    );
    std::fs::write(&profiles, &orig).unwrap();
    assert_eq!(p.gate("deploy-a", &[]).decision.outcome, Outcome::Allow);
    let plan = p.path("plans/deploy-a/plan.json");
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, text.replace("\"trust\": 80", "\"trust\": 81")).unwrap();
    assert_eq!(
        reasons(&p.gate("deploy-a", &[])),
        vec![RejectReason::PlanDigestMismatch]
    );
}

#[test]
fn our_signatures_verify_with_ssh_keygen_for_ed25519_and_rsa() {
    let p = Project::copy_of("govern/project").init();
    for (name, kind) in [("alice", "ed25519"), ("bob", "rsa")] {
        let key = p.approver(name, kind);
        let r = p.nx(&[
            "--json",
            "approve",
            "--plan",
            "plans/rotate-s/plan.json",
            "--approver",
            name,
            "--sign-with",
            key.to_str().unwrap(),
        ]);
        r.code(0);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let rec = PathBuf::from(v["record"].as_str().unwrap());
        let rec = if rec.is_absolute() {
            rec
        } else {
            p.root().join(rec)
        };
        let out = p.ssh_verify(name, &rec);
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!(
            "Good \"nexusmon-approval-v1\" signature for {name}"
        )));
        assert!(v["warnings"].as_array().unwrap().is_empty(), "{v}");
    }
    // Both count: rank S with two distinct approvers, neither the requester.
    let g = p.gate("rotate-s", &[]);
    assert_eq!(g.decision.outcome, Outcome::Allow, "{:#?}", g.approvals);
    assert_eq!(g.decision.approvers, vec!["alice", "bob"]);
    assert_eq!(p.missions()["rotate-s"]["state"], "ready");
}

#[test]
fn ssh_keygen_rsa_signatures_verify_with_us() {
    let p = Project::copy_of("govern/project").init();
    let bob = p.approver("bob", "rsa");
    let rec = p.approve_unsigned("deploy-a", "bob", &[]);
    p.ssh_sign(&bob, "nexusmon-approval-v1", &rec);
    let g = p.gate("deploy-a", &[rec]);
    assert_eq!(g.decision.outcome, Outcome::Allow, "{:#?}", g.approvals);
}

#[test]
fn rank_s_needs_two_distinct_approvers_neither_the_requester() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    let rita = p.approver("rita", "ed25519");
    let bob = p.approver("bob", "ed25519");
    let sign = |who: &str, key: &Path| {
        p.nx(&[
            "approve",
            "--plan",
            "plans/rotate-s/plan.json",
            "--approver",
            who,
            "--sign-with",
            key.to_str().unwrap(),
        ])
        .code(0);
    };
    sign("alice", &alice);
    let g = p.gate("rotate-s", &[]);
    assert_eq!(g.decision.outcome, Outcome::Refuse);
    assert_eq!(
        (g.decision.valid_approvals, g.decision.required_approvals),
        (1, 2)
    );
    assert_eq!(p.missions()["rotate-s"]["state"], "awaiting-approval");

    // The requester's own approval is valid but does not count.
    sign("rita", &rita);
    let g = p.gate("rotate-s", &[]);
    assert_eq!(g.approvals.valid.len(), 2);
    assert_eq!(g.decision.outcome, Outcome::Refuse);
    assert!(
        g.decision
            .reasons
            .contains(&"requester-approval-not-counted".into())
    );

    sign("bob", &bob);
    let g = p.gate("rotate-s", &[]);
    assert_eq!(g.decision.outcome, Outcome::Allow);
    assert_eq!(g.decision.approvers, vec!["alice", "bob"]);
}

#[test]
fn one_approver_counts_once_and_one_key_approves_once() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    // A second key for alice, trusted too.
    let alice2 = p.keygen("alice2", "ed25519");
    p.trust(&format!("alice {} roles=approver", p.pubkey(&alice2)));
    let r1 = p.approve_unsigned("rotate-s", "alice", &[]);
    p.ssh_sign(&alice, "nexusmon-approval-v1", &r1);
    let r2 = p.path("records/rotate-s.alice-second.json");
    p.nx(&[
        "approve",
        "--plan",
        "plans/rotate-s/plan.json",
        "--approver",
        "alice",
        "--out",
        r2.to_str().unwrap(),
        "--sign-with",
        alice2.to_str().unwrap(),
    ])
    .code(0);
    let g = p.gate("rotate-s", &[r1.clone(), r2]);
    assert_eq!(g.decision.valid_approvals, 1);
    assert_eq!(reasons(&g), vec![RejectReason::DuplicateApprover]);
    assert_eq!(g.decision.outcome, Outcome::Refuse);

    // One key listed for two principals signs as each: the second does not count.
    let shared = p.keygen("shared", "ed25519");
    p.trust(&format!("bob,carol {} roles=approver", p.pubkey(&shared)));
    let rb = p.approve_unsigned("rotate-s", "bob", &[]);
    let rc = p.approve_unsigned("rotate-s", "carol", &[]);
    p.ssh_sign(&shared, "nexusmon-approval-v1", &rb);
    p.ssh_sign(&shared, "nexusmon-approval-v1", &rc);
    let g = p.gate("rotate-s", &[rb, rc]);
    assert_eq!(g.decision.valid_approvals, 1);
    assert_eq!(reasons(&g), vec![RejectReason::DuplicateKey]);
}

#[test]
fn every_way_an_approval_fails_is_a_named_reason() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    let stranger = p.keygen("stranger", "ed25519");
    let noroles = p.keygen("nora", "ed25519");
    p.trust(&format!("nora {}", p.pubkey(&noroles)));
    let gitonly = p.keygen("gina", "ed25519");
    p.trust(&format!(
        "gina namespaces=\"git\" {} roles=approver",
        p.pubkey(&gitonly)
    ));
    let old = p.keygen("olga", "ed25519");
    p.trust(&format!(
        "olga valid-before=\"20200101Z\" {} roles=approver",
        p.pubkey(&old)
    ));

    let case = |name: &str, build: &dyn Fn(&Path)| -> RejectReason {
        let rec = p.approve_unsigned("deploy-a", name, &[]);
        build(&rec);
        let g = p.gate("deploy-a", std::slice::from_ref(&rec));
        assert_eq!(g.decision.outcome, Outcome::Refuse, "{name}");
        assert_eq!(g.approvals.rejected.len(), 1, "{name}: {:#?}", g.approvals);
        let r = &g.approvals.rejected[0];
        assert!(!r.detail.is_empty());
        std::fs::remove_file(&rec).unwrap();
        let _ = std::fs::remove_file(format!("{}.sig", rec.display()));
        r.reason
    };
    let ns = "nexusmon-approval-v1";
    assert_eq!(case("alice", &|_| {}), RejectReason::SignatureMissing);
    assert_eq!(
        case("alice", &|r| {
            p.ssh_sign(&alice, ns, r);
            // Flip one byte of the signed record.
            let mut b = std::fs::read(r).unwrap();
            let i = b.iter().position(|&c| c == b'r').unwrap();
            b[i] = b'R';
            std::fs::write(r, b).unwrap();
        }),
        RejectReason::SignatureInvalid
    );
    assert_eq!(
        case("alice", &|r| p.ssh_sign(&alice, "git", r)),
        RejectReason::WrongNamespace
    );
    assert_eq!(
        case("alice", &|r| p.ssh_sign(&stranger, ns, r)),
        RejectReason::UnknownKey
    );
    assert_eq!(
        case("mallory", &|r| p.ssh_sign(&alice, ns, r)),
        RejectReason::KeyNotTrustedForPrincipal
    );
    assert_eq!(
        case("nora", &|r| p.ssh_sign(&noroles, ns, r)),
        RejectReason::MissingRole
    );
    assert_eq!(
        case("gina", &|r| p.ssh_sign(&gitonly, ns, r)),
        RejectReason::NamespaceNotAllowed
    );
    assert_eq!(
        case("olga", &|r| p.ssh_sign(&old, ns, r)),
        RejectReason::KeyExpired
    );
    assert_eq!(
        case("alice", &|r| {
            std::fs::write(format!("{}.sig", r.display()), "not a signature").unwrap();
        }),
        RejectReason::SignatureMalformed
    );

    // Scope, roles claimed, plan id.
    // `approve --scope` only writes scopes the gate consults; a record for another scope
    // (written by other means, then signed) does not count.
    p.nx(&[
        "approve",
        "--plan",
        "plans/deploy-a/plan.json",
        "--approver",
        "alice",
        "--scope",
        "deploy",
    ])
    .code(2);
    let rec = p.approve_unsigned("deploy-a", "alice", &[]);
    let text = std::fs::read_to_string(&rec)
        .unwrap()
        .replace("\"scope\": \"run\"", "\"scope\": \"deploy\"");
    std::fs::write(&rec, text).unwrap();
    p.ssh_sign(&alice, ns, &rec);
    assert_eq!(
        reasons(&p.gate("deploy-a", std::slice::from_ref(&rec))),
        vec![RejectReason::ScopeMismatch]
    );
    std::fs::remove_file(&rec).unwrap();
    std::fs::remove_file(format!("{}.sig", rec.display())).unwrap();
    let rec = p.approve_unsigned("deploy-a", "alice", &["--role", "security"]);
    p.ssh_sign(&alice, ns, &rec);
    assert_eq!(
        reasons(&p.gate("deploy-a", std::slice::from_ref(&rec))),
        vec![RejectReason::RoleNotGranted]
    );
    std::fs::remove_file(&rec).unwrap();
    std::fs::remove_file(format!("{}.sig", rec.display())).unwrap();
    let rec = p.approve_unsigned("deploy-a", "alice", &[]);
    p.ssh_sign(&alice, ns, &rec);
    assert!(reasons(&p.gate("deploy-a", std::slice::from_ref(&rec))).is_empty());
    let g = p.gate("rotate-s", std::slice::from_ref(&rec));
    assert_eq!(reasons(&g), vec![RejectReason::PlanIdMismatch]);
}

#[test]
fn an_expired_approval_does_not_count() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    let rec = p.approve_unsigned("deploy-a", "alice", &["--expires-in", "1h"]);
    p.ssh_sign(&alice, "nexusmon-approval-v1", &rec);
    let gov = p.gov();
    let plan = p.plan("deploy-a");
    let now = jiff::Timestamp::now();
    let soon = gov
        .gate_at(&plan, std::slice::from_ref(&rec), false, now)
        .unwrap();
    assert_eq!(soon.decision.outcome, Outcome::Allow);
    let later = now
        .checked_add(jiff::SignedDuration::from_hours(2))
        .unwrap();
    let g = gov
        .gate_at(&plan, std::slice::from_ref(&rec), false, later)
        .unwrap();
    assert_eq!(reasons(&g), vec![RejectReason::Expired]);
    // A record dated in the future (beyond clock skew) is not valid yet.
    let earlier = now
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap();
    let g = gov
        .gate_at(&plan, std::slice::from_ref(&rec), false, earlier)
        .unwrap();
    assert_eq!(reasons(&g), vec![RejectReason::NotYetValid]);
}

#[test]
fn approve_refuses_to_overwrite_and_warns_about_untrusted_keys() {
    let p = Project::copy_of("govern/project").init();
    let stranger = p.keygen("stranger", "ed25519");
    let r = p.nx(&[
        "approve",
        "--plan",
        "plans/deploy-a/plan.json",
        "--approver",
        "alice",
        "--sign-with",
        stranger.to_str().unwrap(),
    ]);
    r.code(0);
    assert!(
        r.stderr.contains("warning: `alice` is not a principal"),
        "{}",
        r.stderr
    );
    let rec = p.path("plans/deploy-a/approvals/deploy-a.alice.json");
    let before = std::fs::read(&rec).unwrap();
    let r = p.nx(&[
        "approve",
        "--plan",
        "plans/deploy-a/plan.json",
        "--approver",
        "alice",
    ]);
    r.code(2);
    assert!(
        r.stderr.contains("already exists") && r.stderr.contains("--overwrite"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(&rec).unwrap(), before);
    // --overwrite without signing drops the stale signature.
    p.nx(&[
        "approve",
        "--plan",
        "plans/deploy-a/plan.json",
        "--approver",
        "alice",
        "--overwrite",
    ])
    .code(0);
    assert_ne!(std::fs::read(&rec).unwrap(), before);
    assert!(
        !p.path("plans/deploy-a/approvals/deploy-a.alice.json.sig")
            .exists()
    );
}

#[test]
fn an_encrypted_key_is_refused_with_the_ssh_keygen_command() {
    let p = Project::copy_of("govern/project").init();
    let key = p.path("keys/locked");
    std::fs::create_dir_all(p.path("keys")).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "correct horse", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let r = p.nx(&[
        "approve",
        "--plan",
        "plans/deploy-a/plan.json",
        "--approver",
        "alice",
        "--sign-with",
        key.to_str().unwrap(),
    ]);
    r.code(2);
    assert!(r.stderr.contains("encrypted"), "{}", r.stderr);
    assert!(r.stderr.contains("ssh-keygen -Y sign -f"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("-n nexusmon-approval-v1 plans/deploy-a/approvals/deploy-a.alice.json"),
        "{}",
        r.stderr
    );
    // The record is there to be signed that way; no signature was written.
    assert!(
        p.path("plans/deploy-a/approvals/deploy-a.alice.json")
            .is_file()
    );
    assert!(
        !p.path("plans/deploy-a/approvals/deploy-a.alice.json.sig")
            .exists()
    );
    // A key file that cannot be read stops before anything is written.
    let r = p.nx(&[
        "approve",
        "--plan",
        "plans/deploy-a/plan.json",
        "--approver",
        "bob",
        "--sign-with",
        "keys/nope",
    ]);
    r.code(2);
    assert!(r.stderr.contains("keys/nope"), "{}", r.stderr);
    assert!(
        !p.path("plans/deploy-a/approvals/deploy-a.bob.json")
            .exists()
    );
    let r = p.nx(&[
        "approve",
        "--plan",
        "plans/deploy-a/plan.json",
        "--approver",
        "bob",
        "--sign-with",
        "keys/locked.pub",
    ]);
    r.code(2);
    assert!(
        r.stderr.contains("not an OpenSSH private key"),
        "{}",
        r.stderr
    );
    assert!(
        !p.path("plans/deploy-a/approvals/deploy-a.bob.json")
            .exists()
    );
}

#[test]
fn approvals_are_recorded_in_the_audit_log() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
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
    let log = std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "approval-recorded");
    assert_eq!(last["data"]["approver"], "alice");
    assert_eq!(last["data"]["signed"], true);
    assert_eq!(
        last["data"]["plan_digest"]["blake3"],
        serde_json::json!(p.plan("deploy-a").digest.blake3)
    );
}

#[test]
fn refusals_and_runs_are_recorded_with_rejected_approvals() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    let rec = p.approve_unsigned("deploy-a", "alice", &[]);
    p.ssh_sign(&alice, "git", &rec);
    let gov = p.gov();
    let report = gov
        .gate_for(&p.plan("deploy-a"), std::slice::from_ref(&rec), false)
        .unwrap();
    assert!(!report.allows());
    let head = gov.record_refusal(&report).unwrap();
    let log = std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let n = lines.len();
    assert_eq!(lines[n - 2]["kind"], "approval-rejected");
    assert_eq!(lines[n - 2]["data"]["reason"], "wrong-namespace");
    assert_eq!(lines[n - 1]["kind"], "run-refused");
    assert_eq!(
        lines[n - 1]["data"]["reasons"],
        serde_json::json!([
            "rank-needs-approval",
            "parallelism-limited",
            "approvals-insufficient"
        ])
    );
    assert_eq!(usize::try_from(head.seq).unwrap(), n - 1);
    assert_eq!(gov.audit_head().unwrap(), head);
}

#[test]
fn missions_lists_states_bands_and_approvals() {
    let p = Project::copy_of("govern/project").init();
    let m = p.missions();
    assert_eq!(m["deploy-a"]["state"], "awaiting-approval");
    assert_eq!(m["deploy-a"]["approvals_required"], 1);
    assert_eq!(m["rotate-s"]["approvals_required"], 2);
    assert_eq!(m["reckless-e"]["state"], "refused");
    assert_eq!(m["reckless-e"]["band"], "FAILING");
    assert_eq!(m["tidy-c"]["state"], "ready");
    assert_eq!(m["tidy-c"]["flags"], serde_json::json!(["review-required"]));
    assert_eq!(m["deploy-a"]["composite"], 75);
    assert!(
        m.get("readonly-exp").is_none(),
        "experiments are not missions"
    );
    let r = p.nx(&["missions"]);
    r.code(0);
    let first = r.stdout.lines().next().unwrap();
    assert!(first.starts_with("STATE"), "{}", r.stdout);
    assert!(
        r.stdout.contains("awaiting-approval   A     75 SAFE"),
        "{}",
        r.stdout
    );

    // A mission plan that does not load is listed as invalid, not skipped.
    let bad = p.path("plans/broken/plan.json");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, r#"{"schema_version": 1, "plan_id": "broken", "kind": "mission", "registry_id": "nope", "profiles": []}"#).unwrap();
    let r = p.nx(&["missions"]);
    r.code(0);
    assert!(r.stdout.contains("invalid"), "{}", r.stdout);
}

#[test]
fn missions_table_reads_well() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
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
    let bad = p.approve_unsigned("rotate-s", "alice", &[]);
    p.ssh_sign(&alice, "git", &bad);
    std::fs::create_dir_all(p.path("plans/rotate-s/approvals")).unwrap();
    std::fs::rename(&bad, p.path("plans/rotate-s/approvals/rotate-s.alice.json")).unwrap();
    std::fs::rename(
        format!("{}.sig", bad.display()),
        p.path("plans/rotate-s/approvals/rotate-s.alice.json.sig"),
    )
    .unwrap();
    let r = p.nx(&["-v", "missions"]);
    r.code(0);
    snapshot_settings(&[(p.root(), "[ROOT]")]).bind(|| insta::assert_snapshot!(r.stdout));
}
