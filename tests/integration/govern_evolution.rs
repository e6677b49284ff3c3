//! Evolution: `evolve --packets …` and `evolution status`, fed only with REAL packets
//! (`nexusmon run` of a mission, then `emit-promotion`) in temp copies of
//! `tests/fixtures/evolution/project`. Every packet is checked against its bundle: a forged
//! or edited packet, or one whose bundle changed, is refused and nothing is written. Replay
//! is order-independent and idempotent; capabilities change what the gate allows and are
//! revoked with the XP.
//!
//! The fixture's missions (profile `usr-only`: /usr readable, nothing under /etc), none
//! needing an approval: `sweep-e` (E, 1 XP), `patch-d` (D, 2), `tidy-c` (C, 3), `audit-b`
//! (B, 5, with a negative task denied as expected), `hole-e` (E: its task expects deny on a
//! read the profile allows, a violation, −10 XP); `look-exp` is an experiment.

use std::path::{Path, PathBuf};

use nexusmon::govern::gate::Outcome;
use serde_json::{Value, json};

use crate::promote::make_writable;
use crate::util::{Project, Ran, emit_packet, latest_bundle, run_and_emit};

/// The evolution fixture project in a temp dir, `.nexusmon/` initialized.
fn project() -> Project {
    Project::copy_of("evolution/project").init()
}

/// Run `plan` (exit `code`) and emit its real packet to `packets/<name>.json`.
fn real_packet(p: &Project, plan: &str, code: i32, name: &str) -> String {
    run_and_emit(p.root(), plan, code, &format!("packets/{name}.json"))
        .to_string_lossy()
        .into_owned()
}

/// `[--state-dir S] evolve --packets …`.
fn evolve_with(p: &Project, state: Option<&Path>, packets: &[&str]) -> Ran {
    let mut args: Vec<&str> = Vec::new();
    if let Some(s) = state {
        args.extend(["--state-dir", s.to_str().unwrap()]);
    }
    args.extend(["evolve", "--packets"]);
    args.extend_from_slice(packets);
    p.nx(&args)
}

fn evolve(p: &Project, packets: &[&str]) -> Ran {
    evolve_with(p, None, packets)
}

fn state_bytes(state: &Path) -> Vec<u8> {
    std::fs::read(state.join("evolution.json")).unwrap()
}

/// The evolution file and the audit log, byte for byte.
fn snapshot(p: &Project) -> (Vec<u8>, Vec<u8>) {
    (
        state_bytes(&p.state()),
        std::fs::read(p.state().join("audit.jsonl")).unwrap(),
    )
}

fn status(p: &Project) -> Value {
    let r = p.nx(&["--json", "evolution", "status"]);
    r.code(0);
    serde_json::from_str(&r.stdout).unwrap()
}

/// Write `v` as a packet file `packets/<name>.json`.
fn write_packet(p: &Project, name: &str, v: &Value) -> String {
    let path = p.path(&format!("packets/{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

fn read_value(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn replaying_real_packets_in_another_order_gives_byte_identical_state() {
    let p = project();
    // Five real runs of five missions: ranks E, D, C, B, and a violation.
    let rank_e = real_packet(&p, "sweep-e", 0, "e");
    let rank_d = real_packet(&p, "patch-d", 0, "d");
    let rank_c = real_packet(&p, "tidy-c", 0, "c");
    let rank_b = real_packet(&p, "audit-b", 0, "b");
    let hole = real_packet(&p, "hole-e", 1, "hole");
    assert_eq!(read_value(&hole)["summary"]["status"], "partial");

    // Three fresh state directories, three orders and groupings.
    let fresh = |name: &str| -> PathBuf {
        let dir = p.path(name);
        p.nx(&["--state-dir", dir.to_str().unwrap(), "init"])
            .code(0);
        dir
    };
    let one = fresh("state-one");
    evolve_with(&p, Some(&one), &[&rank_e, &rank_d, &rank_c, &rank_b, &hole]).code(0);
    let two = fresh("state-two");
    for packet in [&hole, &rank_b, &rank_c, &rank_d, &rank_e] {
        evolve_with(&p, Some(&two), &[packet]).code(0);
    }
    let three = fresh("state-three");
    evolve_with(&p, Some(&three), &[&rank_c, &hole]).code(0);
    evolve_with(&p, Some(&three), &[&rank_b, &rank_e, &rank_c, &rank_d]).code(0);
    assert_eq!(state_bytes(&one), state_bytes(&two));
    assert_eq!(state_bytes(&one), state_bytes(&three));

    let s: Value = serde_json::from_slice(&state_bytes(&one)).unwrap();
    assert_eq!(s["earned_xp"], 1 + 2 + 3 + 5);
    assert_eq!(s["penalty_xp"], 10);
    assert_eq!(s["violations"], 1);
    assert_eq!(s["xp"], 1);
    assert_eq!(s["level"], "AWAKENING");
    assert_eq!(s["missions_passed"], 4);
    let consumed = s["consumed"].as_array().unwrap();
    assert_eq!(consumed.len(), 5);
    let ranks: std::collections::BTreeSet<&str> = consumed
        .iter()
        .map(|o| o["rank"].as_str().unwrap())
        .collect();
    assert_eq!(ranks, ["B", "C", "D", "E"].into_iter().collect());
    // Each outcome is the real run it came from.
    let run_of = |packet: &str| read_value(packet)["run_id"].clone();
    let hole_outcome = consumed
        .iter()
        .find(|o| o["run_id"] == run_of(&hole))
        .unwrap();
    assert_eq!(hole_outcome["violations"], 1);
    assert_eq!(hole_outcome["passed"], false);
    assert_eq!(
        hole_outcome["promotable"], true,
        "violations are not hidden"
    );
}

#[test]
fn consuming_a_real_packet_twice_changes_nothing() {
    let p = project();
    let c = real_packet(&p, "tidy-c", 0, "c");
    let exp = real_packet(&p, "look-exp", 0, "exp");
    let r = evolve(&p, &[&c, &exp]);
    r.code(0);
    assert!(
        r.stderr
            .contains("consumed 1 new outcome(s), 0 already consumed"),
        "{}",
        r.stderr
    );
    let before = snapshot(&p);
    let r = evolve(&p, &[&c]);
    r.code(0);
    assert!(
        r.stderr
            .contains("consumed 0 new outcome(s), 1 already consumed: XP 3 → 3"),
        "{}",
        r.stderr
    );
    let r = p.nx(&["--json", "evolve", "--packets", &c, &c]);
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["written"], false);
    assert_eq!(v["report"]["added"], json!([]));
    assert_eq!(v["state"]["xp"], 3);
    assert!(snapshot(&p) == before, "no change, no entry");
}

#[test]
fn forged_packets_are_refused_and_nothing_is_written() {
    let p = project();
    let genuine = real_packet(&p, "patch-d", 0, "d");
    let hole = real_packet(&p, "hole-e", 1, "hole");
    evolve(&p, &[&genuine]).code(0);
    assert_eq!(status(&p)["state"]["xp"], 2);

    // 1. The violation erased from a real packet: it would hide 10 XP of penalty.
    let mut v = read_value(&hole);
    v["summary"]["mismatch_counts"]["expected-deny-observed-allow"] = json!(0);
    v["summary"]["status"] = json!("ok");
    let erased = write_packet(&p, "erased", &v);
    // 2. A real packet's rank raised to S (13 XP instead of 2).
    let mut v = read_value(&genuine);
    v["plan"]["rank"] = json!("S");
    v["governance"]["rank"] = json!("S");
    let ranked = write_packet(&p, "ranked", &v);
    // 3. A real non-promotable packet (a `direct` run) flipped to promotable.
    p.nx(&[
        "run",
        "--plan",
        "plans/sweep-e/plan.json",
        "--channel",
        "direct",
    ])
    .code(0);
    let direct = emit_packet(p.root(), &latest_bundle(p.root()), "packets/direct.json")
        .to_string_lossy()
        .into_owned();
    let mut v = read_value(&direct);
    assert_eq!(v["promotability"]["reasons"], json!(["not-clean-channel"]));
    v["promotability"]["promotable"] = json!(true);
    v["promotability"]["reasons"] = json!([]);
    let flipped = write_packet(&p, "flipped", &v);
    // 4. An untouched real packet whose bundle changed after it was emitted.
    let changed = real_packet(&p, "sweep-e", 0, "changed");
    let summary = latest_bundle(p.root()).join("summary.json");
    make_writable(&summary);
    let text = std::fs::read_to_string(&summary).unwrap();
    std::fs::write(&summary, text.replacen("\"ok\"", "\"OK\"", 1)).unwrap();

    let before = snapshot(&p);
    for (forged, what) in [
        (&erased, "the packet does not match its bundle"),
        (&ranked, "the packet does not match its bundle"),
        (&flipped, "its bundle is no longer promotable"),
        (&changed, "the bundle changed since the packet was emitted"),
    ] {
        // A genuine packet alongside: all or nothing.
        let r = evolve(&p, &[&genuine, forged, &hole]);
        r.code(1);
        assert!(
            r.stderr.contains(
                "error: 1 of 3 packet(s) refused; nothing was written (the evolution state and the audit log are unchanged)"
            ),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains(&format!("{forged}: {what}")),
            "{forged}\n{}",
            r.stderr
        );
        assert!(snapshot(&p) == before, "{forged}: something was written");
    }
    // The details say what differs.
    let r = evolve(&p, &[&ranked]);
    assert!(r.stderr.contains("differs at /plan/rank"), "{}", r.stderr);
    let r = evolve(&p, &[&erased]);
    assert!(
        r.stderr
            .contains("differs at /summary/mismatch_counts/expected-deny-observed-allow"),
        "{}",
        r.stderr
    );
    let r = evolve(&p, &[&flipped]);
    assert!(
        r.stderr
            .contains("not-clean-channel: the run used the `direct` channel"),
        "{}",
        r.stderr
    );
    let r = evolve(&p, &[&changed]);
    assert!(
        r.stderr
            .contains("summary.json: its digest is not the one the packet records"),
        "{}",
        r.stderr
    );
    // --json: a structured refusal, like promote's.
    let r = p.nx(&["--json", "evolve", "--packets", &erased, &ranked, &genuine]);
    r.code(1);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["written"], false);
    let refused = v["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0]["packet"], erased.as_str());
    assert_eq!(refused[1]["packet"], ranked.as_str());
    assert!(
        refused[1]["details"]
            .as_array()
            .unwrap()
            .contains(&json!("differs at /governance/rank")),
        "{v:#}"
    );
    // A hand-written packet in the old minimal shape is not a packet at all: exit 2.
    let handmade = write_packet(
        &p,
        "handmade",
        &json!({
            "run_id": "run-x",
            "plan": {"plan_id": "sweep-e", "plan_digest": {"blake3": "00"}},
            "promotability": {"promotable": true, "reasons": []},
            "summary": {"status": "ok", "mismatch_counts": {}},
            "governance": {"kind": "mission", "rank": "S"}
        }),
    );
    let r = evolve(&p, &[&genuine, &handmade]);
    r.code(2);
    assert!(
        r.stderr.contains(&format!(
            "{handmade}: is not a promotion packet (no `packet_version`)"
        )),
        "{}",
        r.stderr
    );
    assert!(snapshot(&p) == before, "something was written");

    // The genuine packets are consumed as they are: the real violation costs 10 XP, and the
    // real non-promotable packet is accepted but earns nothing.
    let r = evolve(&p, &[&genuine, &hole, &direct]);
    r.code(0);
    assert!(
        r.stderr.contains(
            "consumed 2 new outcome(s), 1 already consumed: XP 2 → 0, level AWAKENING → DORMANT"
        ),
        "{}",
        r.stderr
    );
    let s = status(&p)["state"].clone();
    assert_eq!(
        (s["earned_xp"].clone(), s["penalty_xp"].clone()),
        (json!(2), json!(10))
    );
}

#[test]
fn experiments_are_skipped_and_unreadable_packets_change_nothing() {
    let p = project();
    let exp = real_packet(&p, "look-exp", 0, "exp");
    let r = evolve(&p, &[&exp]);
    r.code(0);
    assert!(
        r.stderr
            .contains("not a mission packet (the plan is an experiment"),
        "{}",
        r.stderr
    );
    // The in-toto Statement beside a packet is not a packet: skipped, and said so; alone,
    // it selects nothing (exit 6).
    let d = real_packet(&p, "patch-d", 0, "d");
    let before = snapshot(&p);
    let statement = p.path("packets/d.intoto.json");
    let r = evolve(&p, &[statement.to_str().unwrap()]);
    r.code(6);
    assert!(snapshot(&p) == before, "nothing selected, nothing written");
    let r = evolve(&p, &[&d, "packets/missing.json"]);
    r.code(2);
    assert!(r.stderr.contains("packets/missing.json"), "{}", r.stderr);
    assert!(snapshot(&p) == before, "all or nothing");
    // Relative packet paths resolve against the current directory.
    let r = crate::util::run_in(&p.path("packets"), &["evolve", "--packets", "d.json"]);
    r.code(0);
    assert_eq!(status(&p)["state"]["xp"], 2);
    let r = evolve(&p, &[&d, statement.to_str().unwrap()]);
    r.code(0);
    assert!(
        r.stderr.contains("d.intoto.json") && r.stderr.contains("in-toto Statement"),
        "{}",
        r.stderr
    );
    assert_eq!(status(&p)["state"]["xp"], 2, "already consumed");
}

#[test]
fn a_level_unlocks_a_capability_the_gate_checks_and_losing_xp_revokes_it() {
    let p = project();
    // DORMANT: a rank C mission runs flagged for review, one task at a time.
    let g = p.gate("tidy-c", &[]);
    assert_eq!(g.decision.outcome, Outcome::AllowFlagged);
    assert_eq!(g.decision.max_jobs, Some(1));
    let c1 = real_packet(&p, "tidy-c", 0, "c1");
    assert_eq!(
        read_value(&c1)["summary"]["governance_flags"],
        json!(["review-required"])
    );

    // That run's real packet: 3 XP, AWAKENING, parallel-missions.
    evolve(&p, &[&c1]).code(0);
    let g = p.gate("tidy-c", &[]);
    assert_eq!(g.decision.max_jobs, None);
    assert_eq!(g.decision.outcome, Outcome::AllowFlagged);

    // More real runs (B 5, D 2, E 1; a rerun of the C mission earns nothing: the same
    // outcome): 11 XP, FORGING unlocks auto-run-cb; the same plan now runs without the
    // review flag.
    let b1 = real_packet(&p, "audit-b", 0, "b1");
    let c2 = real_packet(&p, "tidy-c", 0, "c2");
    let d1 = real_packet(&p, "patch-d", 0, "d1");
    let e1 = real_packet(&p, "sweep-e", 0, "e1");
    let r = evolve(&p, &[&b1, &c2, &d1, &e1]);
    r.code(0);
    assert_eq!(status(&p)["state"]["repeats"].as_array().unwrap().len(), 1);
    assert!(
        r.stderr.contains("XP 3 → 11, level AWAKENING → FORGING"),
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
    assert_eq!(p.missions()["tidy-c"]["flags"], json!([]));
    let c3 = real_packet(&p, "tidy-c", 0, "c3");
    assert_eq!(read_value(&c3)["summary"]["governance_flags"], json!([]));

    // A real policy hole costs 10 XP: back to AWAKENING, auto-run-cb revoked, flagged again.
    let hole = real_packet(&p, "hole-e", 1, "hole");
    let r = evolve(&p, &[&hole]);
    r.code(0);
    assert!(
        r.stderr.contains("XP 11 → 1, level FORGING → AWAKENING"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("revoked capability auto-run-cb"),
        "{}",
        r.stderr
    );
    let g = p.gate("tidy-c", &[]);
    assert_eq!(g.decision.outcome, Outcome::AllowFlagged);
    assert_eq!(g.decision.flags, vec!["review-required"]);
    let c4 = real_packet(&p, "tidy-c", 0, "c4");
    assert_eq!(
        read_value(&c4)["summary"]["governance_flags"],
        json!(["review-required"])
    );
    let s = status(&p);
    assert_eq!(
        s["state"]["capabilities"],
        json!(["parallel-missions", "run-scripts"])
    );
    assert_eq!(s["next_level"]["level"], "FORGING");

    // The evolution changes are in the audit log, with what was consumed.
    let log = std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap();
    let evo: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "evolution")
        .collect();
    assert_eq!(evo.len(), 3);
    assert_eq!(evo[2]["data"]["revoked"], json!(["auto-run-cb"]));
    assert_eq!(evo[1]["data"]["added"].as_array().unwrap().len(), 4);
    let consumed = &s["state"]["consumed"];
    let hole_digest = consumed
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["run_id"] == read_value(&hole)["run_id"])
        .unwrap()["packet_digest"]
        .clone();
    assert_eq!(evo[2]["data"]["added"], json!([hole_digest]));
    p.nx(&["audit", "verify"]).code(0);
}

#[test]
fn an_edited_evolution_state_is_refused() {
    let p = project();
    let c = real_packet(&p, "tidy-c", 0, "c");
    evolve(&p, &[&c]).code(0);
    let path: PathBuf = p.state().join("evolution.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"xp\": 3", "\"xp\": 30")).unwrap();
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
    let p = project();
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
