//! Evolution: `evolve --packets …` and `evolution status`; replay is order-independent and
//! idempotent; capabilities change what the gate allows and are revoked with the XP.

use std::path::PathBuf;

use nexusmon::govern::gate::Outcome;

use crate::govern::Project;
use crate::util::repo_root;

fn packet(name: &str) -> String {
    repo_root()
        .join("tests/fixtures/govern/packets")
        .join(format!("{name}.json"))
        .display()
        .to_string()
}

const MISSION_PACKETS: [&str; 5] = [
    "deploy-a-1",
    "deploy-a-2",
    "tidy-c-1",
    "tidy-c-unclean",
    "rotate-s-hole",
];

fn evolve(p: &Project, names: &[&str]) -> crate::util::Ran {
    let mut args = vec!["evolve".to_string(), "--packets".to_string()];
    args.extend(names.iter().map(|n| packet(n)));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    p.nx(&a)
}

fn state_bytes(p: &Project) -> Vec<u8> {
    std::fs::read(p.state().join("evolution.json")).unwrap()
}

fn status(p: &Project) -> serde_json::Value {
    let r = p.nx(&["--json", "evolution", "status"]);
    r.code(0);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn replaying_the_same_packets_in_another_order_gives_the_same_state() {
    let one = Project::new();
    evolve(&one, &MISSION_PACKETS).code(0);
    let two = Project::new();
    for name in MISSION_PACKETS.iter().rev() {
        evolve(&two, &[name]).code(0);
    }
    let three = Project::new();
    evolve(&three, &["rotate-s-hole", "tidy-c-1"]).code(0);
    evolve(
        &three,
        &["deploy-a-2", "tidy-c-unclean", "deploy-a-1", "tidy-c-1"],
    )
    .code(0);
    assert_eq!(state_bytes(&one), state_bytes(&two));
    assert_eq!(state_bytes(&one), state_bytes(&three));
    let s = status(&one)["state"].clone();
    assert_eq!(s["earned_xp"], 8 + 8 + 3);
    assert_eq!(s["penalty_xp"], 10);
    assert_eq!(s["xp"], 9);
    assert_eq!(s["level"], "AWAKENING");
    assert_eq!(s["missions_passed"], 3);
    assert_eq!(s["consumed"].as_array().unwrap().len(), 5);
}

#[test]
fn consuming_a_packet_twice_changes_nothing() {
    let p = Project::new();
    evolve(&p, &["deploy-a-1", "readonly-exp"]).code(0);
    let state = state_bytes(&p);
    let log = std::fs::read(p.state().join("audit.jsonl")).unwrap();
    let r = evolve(&p, &["deploy-a-1"]);
    r.code(0);
    assert!(
        r.stderr
            .contains("consumed 0 new outcome(s), 1 already consumed"),
        "{}",
        r.stderr
    );
    assert_eq!(state_bytes(&p), state);
    assert_eq!(
        std::fs::read(p.state().join("audit.jsonl")).unwrap(),
        log,
        "no change, no entry"
    );
}

#[test]
fn experiments_are_skipped_and_malformed_packets_change_nothing() {
    let p = Project::new();
    let r = evolve(&p, &["readonly-exp"]);
    r.code(0);
    assert!(r.stderr.contains("not a mission packet"), "{}", r.stderr);
    let before = state_bytes(&p);
    let r = evolve(&p, &["deploy-a-1", "no-promotability"]);
    r.code(2);
    assert!(r.stderr.contains("no-promotability.json"), "{}", r.stderr);
    assert!(
        r.stderr.contains("promotability.promotable"),
        "{}",
        r.stderr
    );
    assert_eq!(state_bytes(&p), before, "all or nothing");
}

#[test]
fn a_level_unlocks_a_capability_the_gate_checks_and_losing_xp_revokes_it() {
    let p = Project::new();
    // DORMANT: a rank C mission runs flagged for review, one task at a time.
    let g = p.gate("tidy-c", &[]);
    assert_eq!(g.decision.outcome, Outcome::AllowFlagged);
    assert_eq!(g.decision.max_jobs, Some(1));

    // One passing mission: AWAKENING, parallel-missions.
    evolve(&p, &["deploy-a-1"]).code(0);
    let g = p.gate("tidy-c", &[]);
    assert_eq!(g.decision.max_jobs, None);
    assert_eq!(g.decision.outcome, Outcome::AllowFlagged);

    // 16 XP: FORGING unlocks auto-run-cb; the same plan now runs without the review flag.
    let r = evolve(&p, &["deploy-a-2"]);
    r.code(0);
    assert!(
        r.stderr.contains("level AWAKENING → FORGING"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("gained capability auto-run-cb"),
        "{}",
        r.stderr
    );
    let g = p.gate("tidy-c", &[]);
    assert_eq!(g.decision.outcome, Outcome::Allow);
    assert!(g.decision.flags.is_empty());
    assert_eq!(p.missions()["tidy-c"]["flags"], serde_json::json!([]));

    // A policy hole costs 10 XP: back to AWAKENING, auto-run-cb revoked, flagged again.
    let r = evolve(&p, &["rotate-s-hole"]);
    r.code(0);
    assert!(
        r.stderr.contains("revoked capability auto-run-cb"),
        "{}",
        r.stderr
    );
    let g = p.gate("tidy-c", &[]);
    assert_eq!(g.decision.outcome, Outcome::AllowFlagged);
    assert_eq!(g.decision.flags, vec!["review-required"]);
    let s = status(&p);
    assert_eq!(
        s["state"]["capabilities"],
        serde_json::json!(["parallel-missions"])
    );
    assert_eq!(s["next_level"]["level"], "FORGING");

    // The evolution changes are in the audit log.
    let log = std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap();
    let evo: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "evolution")
        .collect();
    assert_eq!(evo.len(), 3);
    assert_eq!(
        evo[2]["data"]["revoked"],
        serde_json::json!(["auto-run-cb"])
    );
}

#[test]
fn an_edited_evolution_state_is_refused() {
    let p = Project::new();
    evolve(&p, &["deploy-a-1"]).code(0);
    let path: PathBuf = p.state().join("evolution.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"xp\": 8", "\"xp\": 80")).unwrap();
    let r = p.nx(&["evolution", "status"]);
    r.code(2);
    assert!(
        r.stderr.contains("does not match its consumed outcomes"),
        "{}",
        r.stderr
    );
    let r = p.nx(&["missions"]);
    r.code(2);
}

#[test]
fn status_reads_well() {
    let p = Project::new();
    let r = p.nx(&["evolution", "status"]);
    r.code(0);
    assert!(r.stdout.contains("level         DORMANT"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("next          AWAKENING at 1 XP (1 to go)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("capabilities  (none)"), "{}", r.stdout);
}
