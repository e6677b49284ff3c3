//! Missions run for real under governance, through the binary: the gate before anything
//! runs (ranks, composite bands, approvals signed with `ssh-keygen -Y sign`, the requester
//! rule), tasks in dependency order with real Landlock profiles, a failed task skipping its
//! dependents, parallelism only with the capability, the review flag and `auto-run-cb`
//! (earned by `evolve` from the missions' own real packets, lost to a real violation),
//! `missions` telling running from awaiting approval, `--dry`.
//!
//! Every task records its own execution in a marks directory (`${MARK}`, a temp dir):
//! "nothing ran" is proven by the absence of its file, order and overlap by the times the
//! tasks wrote themselves.

#![allow(clippy::many_single_char_names)] // p(roject), r(esult), b(undle), v(alue), n, w

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::results;
use crate::util::{Project, edit_json, emit_packet, nexusmon};

/// The mission fixture project in a temp dir, `${MARK}` pointing at `<tmp>/marks`,
/// `.nexusmon/` initialized.
fn project() -> Project {
    let p = Project::copy_of("mission/project");
    let marks = p.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    for e in std::fs::read_dir(p.path("plans")).unwrap() {
        let plan = e.unwrap().path().join("plan.json");
        let text = std::fs::read_to_string(&plan).unwrap();
        std::fs::write(&plan, text.replace("__MARK__", marks.to_str().unwrap())).unwrap();
    }
    p.init()
}

fn marks(p: &Project) -> PathBuf {
    p.path("marks")
}

/// The time (ns) a task wrote into `marks/<name>.ran`, if it ran.
fn ran(p: &Project, name: &str) -> Option<u128> {
    let text = std::fs::read_to_string(marks(p).join(format!("{name}.ran"))).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn ns(p: &Project, file: &str) -> u128 {
    std::fs::read_to_string(marks(p).join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

fn clear_marks(p: &Project) {
    std::fs::remove_dir_all(marks(p)).unwrap();
    std::fs::create_dir_all(marks(p)).unwrap();
}

fn run(p: &Project, plan: &str, extra: &[&str]) -> crate::util::Ran {
    let path = format!("plans/{plan}/plan.json");
    let mut args = vec!["run", "--plan", path.as_str()];
    args.extend(extra);
    p.nx(&args)
}

/// The sealed bundle `out/LATEST` points to.
fn latest(p: &Project) -> PathBuf {
    let v: Value = serde_json::from_slice(&std::fs::read(p.path("out/LATEST")).unwrap()).unwrap();
    p.path("out").join(v["run_id"].as_str().unwrap())
}

fn read(b: &Path, rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(b.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .unwrap()
}

fn audit(p: &Project) -> Vec<Value> {
    std::fs::read_to_string(p.state().join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn row<'a>(rows: &'a Value, task: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["task_id"] == task)
        .unwrap_or_else(|| panic!("no row for task {task}"))
}

/// The real promotion packet of the run `out/LATEST` names, written to `packets/<name>.json`.
fn packet_of_latest(p: &Project, name: &str) -> String {
    emit_packet(p.root(), &latest(p), &format!("packets/{name}.json"))
        .to_string_lossy()
        .into_owned()
}

/// `evolve --packets …` (exit 0); returns stderr.
fn evolve(p: &Project, packets: &[&str]) -> String {
    let mut args = vec!["evolve", "--packets"];
    args.extend_from_slice(packets);
    let r = p.nx(&args);
    r.code(0);
    r.stderr.clone()
}

// ---------------------------------------------------------------------------------------

#[test]
fn rank_a_is_refused_until_approved_with_ssh_keygen_and_an_edited_probe_voids_the_approval() {
    let p = project();
    let alice = p.approver("alice", "ed25519");

    // No approval: exit 4, nothing executed, no bundle, a run-refused audit entry.
    let before = audit(&p).len();
    let r = run(&p, "ranked-a", &[]);
    r.code(4);
    assert!(ran(&p, "first").is_none() && ran(&p, "second").is_none());
    assert!(!p.path("out").exists(), "a refused run writes no bundle");
    let log = audit(&p);
    assert_eq!(log.len(), before + 1);
    let last = log.last().unwrap();
    assert_eq!(last["kind"], "run-refused");
    assert_eq!(last["data"]["plan_id"], "ranked-a");
    assert_eq!(
        last["data"]["reasons"],
        json!([
            "rank-needs-approval",
            "parallelism-limited",
            "approvals-insufficient"
        ])
    );
    // The refusal says what was decided, why, and what to do.
    assert!(
        r.stderr
            .contains("gate: refuse (rank A, composite 75 SAFE)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("it needs 1 valid approval(s) and has 0"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("nexusmon approve --plan plans/ranked-a/plan.json --approver <approver>"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "ssh-keygen -Y sign -f <key> -n nexusmon-approval-v1 plans/ranked-a/approvals/ranked-a.<approver>.json"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was executed"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("experiment: an experiment"),
        "{}",
        r.stderr
    );

    // `approve` writes the record (not signed); stock ssh-keygen signs it: it runs.
    let w = p.nx(&[
        "approve",
        "--plan",
        "plans/ranked-a/plan.json",
        "--approver",
        "alice",
    ]);
    w.code(0);
    assert!(w.stderr.contains("not signed yet"), "{}", w.stderr);
    let record = p.path("plans/ranked-a/approvals/ranked-a.alice.json");
    p.ssh_sign(&alice, "nexusmon-approval-v1", &record);
    let r = run(&p, "ranked-a", &[]);
    r.code(0);
    let (first, second) = (ran(&p, "first").unwrap(), ran(&p, "second").unwrap());
    assert!(
        first <= second,
        "second ran before first: {first} > {second}"
    );

    let b = latest(&p);
    let summary = read(&b, "summary.json");
    assert_eq!(summary["tasks"]["total"], 2);
    assert_eq!(summary["tasks"]["succeeded"], 2);
    assert_eq!(summary["tasks"]["layers"], json!([["first"], ["second"]]));
    assert_eq!(summary["tasks"]["max_parallel"], 1);
    // Each task is a scenario row with its task id and dependencies, in every file.
    let rows = &results(&b, "runtime_events.normalized.jsonl");
    assert_eq!(row(rows, "second")["depends_on"], json!(["first"]));
    assert_eq!(row(rows, "second")["scenario_id"], "work:mark-second");
    let matrix = read(&b, "expected_matrix.json");
    assert_eq!(matrix["scenarios"]["work:mark-second"]["task_id"], "second");
    let obs = results(&b, "runtime_results.jsonl");
    assert!(
        obs.as_array()
            .unwrap()
            .iter()
            .all(|o| o["task_id"].is_string())
    );
    // The record, its signature and the gate's record are in the bundle and its index.
    let index = read(&b, "artifact_index.json");
    let paths: Vec<&str> = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for f in [
        "governance/approvals/ranked-a.alice.json",
        "governance/approvals/ranked-a.alice.json.sig",
        "governance/gate.json",
    ] {
        assert!(paths.contains(&f), "{f} not indexed: {paths:?}");
    }
    assert_eq!(
        std::fs::read(b.join("governance/approvals/ranked-a.alice.json")).unwrap(),
        std::fs::read(&record).unwrap()
    );
    let gate = read(&b, "governance/gate.json");
    assert_eq!(gate["decision"]["outcome"], "allow");
    assert_eq!(gate["decision"]["approvers"], json!(["alice"]));
    p.nx(&["validate-bundle", "--bundle", b.to_str().unwrap()])
        .code(0);
    let run_id = b.file_name().unwrap().to_str().unwrap();
    let log = audit(&p);
    let kinds: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e["data"]["run_id"] == run_id)
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["data"]["plan_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![("run-started", "ranked-a"), ("run-sealed", "ranked-a")]
    );
    assert_eq!(index["audit_head"]["seq"], log.len() - 2);
    p.nx(&["audit", "verify"]).code(0);
    // Editing the run-started line fails verification and names it; cutting the tail
    // fails through the anchor in this run's index.
    let path = p.state().join("audit.jsonl");
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let n = lines.len();
    let mut edited: Vec<String> = lines.iter().map(ToString::to_string).collect();
    edited[n - 2] = edited[n - 2].replace("\"ranked-a\"", "\"ranked-b\"");
    std::fs::write(&path, edited.join("\n") + "\n").unwrap();
    let v = p.nx(&["audit", "verify"]);
    v.code(1);
    assert!(
        v.stderr.contains(&format!("first bad line: {}", n - 1)),
        "{}",
        v.stderr
    );
    std::fs::write(&path, lines[..n - 2].join("\n") + "\n").unwrap();
    let v = p.nx(&["audit", "verify"]);
    v.code(1);
    assert!(
        v.stderr.contains(&format!(
            "{}/artifact_index.json anchors seq {}",
            b.display(),
            n - 2
        )),
        "{}",
        v.stderr
    );
    std::fs::write(&path, &original).unwrap();
    p.nx(&["audit", "verify"]).code(0);

    // Edit one probe the plan runs (its timeout): the approval is void, refused again.
    clear_marks(&p);
    let probes = p.path("registry/work/probes.json");
    let text = std::fs::read_to_string(&probes).unwrap();
    let edited = text.replacen("\"timeout_ms\": 10000", "\"timeout_ms\": 9000", 1);
    assert_ne!(edited, text);
    std::fs::write(&probes, edited).unwrap();
    let r = run(&p, "ranked-a", &[]);
    r.code(4);
    assert!(
        r.stderr
            .contains("ranked-a.alice.json (plan-digest-mismatch)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("changed since it was approved"),
        "{}",
        r.stderr
    );
    assert!(ran(&p, "first").is_none(), "a refused run executed a task");
    assert_eq!(audit(&p).last().unwrap()["kind"], "run-refused");
}

#[test]
fn rank_s_needs_two_approvals_from_distinct_approvers_neither_the_requester() {
    let p = project();
    let alice = p.approver("alice", "ed25519");
    let bob = p.approver("bob", "ed25519");
    let rita = p.approver("rita", "ed25519");
    // A second key of alice's, trusted too.
    let alice2 = p.keygen("alice2", "ed25519");
    p.trust(&format!("alice {} roles=approver", p.pubkey(&alice2)));
    let sign = |who: &str, key: &Path, out: &str| {
        p.nx(&[
            "approve",
            "--plan",
            "plans/ranked-s/plan.json",
            "--approver",
            who,
            "--out",
            out,
            "--sign-with",
            key.to_str().unwrap(),
        ])
        .code(0);
    };
    let dir = "plans/ranked-s/approvals";
    sign("alice", &alice, &format!("{dir}/ranked-s.alice.json"));
    let r = run(&p, "ranked-s", &[]);
    r.code(4);
    assert!(
        r.stderr.contains("it needs 2 valid approval(s) and has 1"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("not the requester `rita`"),
        "{}",
        r.stderr
    );
    assert!(ran(&p, "first").is_none());

    // Two records by the same principal (two keys) count once.
    sign("alice", &alice2, &format!("{dir}/ranked-s.alice-2.json"));
    let r = run(&p, "ranked-s", &[]);
    r.code(4);
    assert!(r.stderr.contains("duplicate-approver"), "{}", r.stderr);
    std::fs::remove_file(p.path(&format!("{dir}/ranked-s.alice-2.json"))).unwrap();
    std::fs::remove_file(p.path(&format!("{dir}/ranked-s.alice-2.json.sig"))).unwrap();

    // The requester's approval is valid but does not count at rank S.
    sign("rita", &rita, &format!("{dir}/ranked-s.rita.json"));
    let r = run(&p, "ranked-s", &[]);
    r.code(4);
    assert!(r.stderr.contains("has 1"), "{}", r.stderr);
    assert!(ran(&p, "first").is_none());
    let refused = audit(&p)
        .into_iter()
        .rev()
        .find(|e| e["kind"] == "run-refused")
        .unwrap();
    assert_eq!(refused["data"]["valid_approvals"], 1);
    assert!(
        refused["data"]["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("requester-approval-not-counted"))
    );

    // Two distinct approvers, neither the requester: it runs.
    sign("bob", &bob, &format!("{dir}/ranked-s.bob.json"));
    run(&p, "ranked-s", &[]).code(0);
    assert!(ran(&p, "first").is_some());
    let gate = read(&latest(&p), "governance/gate.json");
    assert_eq!(gate["decision"]["approvers"], json!(["alice", "bob"]));
    assert_eq!(gate["decision"]["valid_approvals"], 2);
}

#[test]
fn a_failing_composite_is_refused_whatever_the_approvals_and_borderline_needs_one() {
    let p = project();
    let alice = p.approver("alice", "ed25519");
    let bob = p.approver("bob", "ed25519");
    for who in [("alice", &alice), ("bob", &bob)] {
        p.nx(&[
            "approve",
            "--plan",
            "plans/failing/plan.json",
            "--approver",
            who.0,
            "--sign-with",
            who.1.to_str().unwrap(),
        ])
        .code(0);
    }
    let r = run(&p, "failing", &[]);
    r.code(4);
    assert!(
        r.stderr
            .contains("composite score 10 is FAILING (below 30), which no approval overrides"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("approved by alice, bob"), "{}", r.stderr);
    assert!(
        r.stderr.contains("raise the mission's scores"),
        "{}",
        r.stderr
    );
    assert!(ran(&p, "first").is_none());
    // --dry still shows what would run, and exits 4.
    let r = run(&p, "failing", &["--dry"]);
    r.code(4);
    assert!(r.stderr.contains("only  work:mark-first"), "{}", r.stderr);
    assert!(
        r.stderr.contains("governance would refuse this run"),
        "{}",
        r.stderr
    );

    // BORDERLINE: refused without an approval, runs with one.
    let r = run(&p, "borderline", &[]);
    r.code(4);
    assert!(r.stderr.contains("BORDERLINE"), "{}", r.stderr);
    assert!(ran(&p, "first").is_none());
    p.nx(&[
        "approve",
        "--plan",
        "plans/borderline/plan.json",
        "--approver",
        "alice",
        "--sign-with",
        alice.to_str().unwrap(),
    ])
    .code(0);
    run(&p, "borderline", &[]).code(0);
    assert!(ran(&p, "first").is_some());
}

#[test]
fn a_failed_task_skips_its_dependents_which_never_run() {
    let p = project();
    // fetch (denied by the profile: fails) → build → ship; notes and guard independent.
    let r = run(&p, "chain", &[]);
    r.code(1);
    assert!(
        ran(&p, "second").is_none(),
        "build ran after its dependency failed"
    );
    assert!(
        ran(&p, "third").is_none(),
        "ship ran after its dependency failed"
    );
    assert!(
        ran(&p, "fourth").is_some(),
        "an independent task was held back"
    );
    let b = latest(&p);
    let s = read(&b, "summary.json");
    assert_eq!(s["tasks"]["failed_tasks"], json!(["fetch"]));
    assert_eq!(s["tasks"]["skipped_tasks"], json!(["build", "ship"]));
    assert_eq!(
        (
            &s["tasks"]["succeeded"],
            &s["tasks"]["failed"],
            &s["tasks"]["skipped"]
        ),
        (&json!(2), &json!(1), &json!(2))
    );
    assert_eq!(s["status"], "partial");
    assert!(
        s["exit_reason"]
            .as_str()
            .unwrap()
            .starts_with("1 of 5 task(s) failed (`fetch`)"),
        "{s:#}"
    );
    let rows = &results(&b, "runtime_events.normalized.jsonl");
    for t in ["build", "ship"] {
        assert_eq!(row(rows, t)["scenario"]["outcome"], "skipped");
        assert_eq!(row(rows, t)["skipped_because"], "fetch");
    }
    assert_eq!(row(rows, "fetch")["scenario"]["errno_name"], "EACCES");
    // The negative task: denied as expected, a success.
    assert_eq!(row(rows, "guard")["scenario"]["outcome"], "deny");
    assert!(row(rows, "guard")["mismatches"].is_null());
    // Only the failed task is a mismatch; skipped tasks are counted, not mismatches.
    let packets = std::fs::read_to_string(b.join("mismatch_packets.jsonl")).unwrap();
    assert_eq!(packets.lines().count(), 1, "{packets}");
    assert!(packets.contains("\"task_id\":\"fetch\""), "{packets}");
    let obs = results(&b, "runtime_results.jsonl");
    let build = obs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["task_id"] == "build")
        .unwrap();
    assert_eq!(build["skipped_because"], "fetch");
    assert!(
        build["detail"]
            .as_str()
            .unwrap()
            .contains("expected allow, observed deny"),
        "{build:#}"
    );
    let md = std::fs::read_to_string(b.join("summary.md")).unwrap();
    assert!(md.contains("## Tasks"), "{md}");
    assert!(md.contains("skipped (task `fetch` failed)"), "{md}");
    assert!(
        r.stderr.contains("skipped (task `fetch` failed)"),
        "{}",
        r.stderr
    );
    p.nx(&["validate-bundle", "--bundle", b.to_str().unwrap()])
        .code(0);
}

#[test]
fn tasks_hand_work_to_their_dependents_in_a_shared_workspace() {
    let p = project();
    // write-report writes ${SCRATCH}/report.txt; read-report (after it) reads it back: it
    // is an error if the file is not there, so this passes only if both see one workspace.
    run(&p, "workspace", &[]).code(0);
    let rows = &results(&latest(&p), "runtime_events.normalized.jsonl");
    assert_eq!(row(rows, "read")["scenario"]["outcome"], "allow");
    let m = read(&latest(&p), "run_manifest.json");
    assert!(
        m["variables"]["SCRATCH"]
            .as_str()
            .unwrap()
            .contains("shared by every task"),
        "{m:#}"
    );
    // By default a mission does not run its work a second time without the policy.
    assert_eq!(m["lanes"]["lanes"], json!(["scenario", "oracle"]));
    let base = results(&latest(&p), "baseline_results.jsonl");
    assert_eq!(base, json!([]));

    // Asked for explicitly, the baseline lane runs the tasks in order in its own workspace.
    edit_json(&p.path("plans/workspace/plan.json"), |v| {
        v["lanes"] = json!({"baseline": true});
    });
    run(&p, "workspace", &[]).code(0);
    let b = latest(&p);
    assert_eq!(
        read(&b, "run_manifest.json")["lanes"]["lanes"],
        json!(["baseline", "scenario", "oracle"])
    );
    let base = results(&b, "baseline_results.jsonl");
    let outcomes: Vec<(&str, &str)> = base
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["task_id"].as_str().unwrap(),
                o["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes, vec![("read", "allow"), ("write", "allow")]);
    let rows = &results(&b, "runtime_events.normalized.jsonl");
    assert_eq!(row(rows, "read")["attribution"], "unaffected");
}

/// The intervals two tasks recorded around a one-second sleep.
fn spans(p: &Project) -> ((u128, u128), (u128, u128)) {
    (
        (ns(p, "a.start"), ns(p, "a.end")),
        (ns(p, "b.start"), ns(p, "b.end")),
    )
}

#[test]
fn independent_tasks_overlap_only_with_the_parallel_missions_capability() {
    let p = project();
    // DORMANT: one task at a time, whatever --jobs says.
    run(&p, "parallel", &["--jobs", "2"]).code(0);
    let ((a0, a1), (b0, b1)) = spans(&p);
    assert!(
        a1 <= b0 || b1 <= a0,
        "tasks overlapped without the capability: a {a0}..{a1}, b {b0}..{b1}"
    );
    let m = read(&latest(&p), "run_manifest.json");
    assert_eq!(m["jobs"], 1);
    let gate = read(&latest(&p), "governance/gate.json");
    assert!(
        gate["decision"]["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("parallelism-limited"))
    );

    // That run passed: its real packet (checked against its bundle) is one passing mission,
    // AWAKENING, which unlocks parallel-missions.
    let seed = packet_of_latest(&p, "seed");
    let e = evolve(&p, &[&seed]);
    assert!(e.contains("gained capability parallel-missions"), "{e}");
    clear_marks(&p);
    run(&p, "parallel", &["--jobs", "2"]).code(0);
    let ((a0, a1), (b0, b1)) = spans(&p);
    assert!(
        a0 < b1 && b0 < a1,
        "independent tasks did not overlap with the capability: a {a0}..{a1}, b {b0}..{b1}"
    );
    let gate = read(&latest(&p), "governance/gate.json");
    assert_eq!(
        gate["decision"]["capabilities_used"],
        json!(["parallel-missions"])
    );
    assert_eq!(
        read(&latest(&p), "summary.json")["tasks"]["max_parallel"],
        2
    );
}

#[test]
fn auto_run_cb_drops_the_review_flag_and_losing_the_xp_brings_it_back() {
    let p = project();
    let flags = |p: &Project| {
        let b = latest(p);
        (
            read(&b, "summary.json")["governance_flags"].clone(),
            read(&b, "governance/gate.json")["decision"]["flags"].clone(),
        )
    };
    // DORMANT: rank C runs, flagged for review.
    let r = run(&p, "review-c", &[]);
    r.code(0);
    assert_eq!(
        flags(&p),
        (json!(["review-required"]), json!(["review-required"]))
    );
    assert!(
        r.stderr.contains("governance flags: review-required"),
        "{}",
        r.stderr
    );
    let md = std::fs::read_to_string(latest(&p).join("summary.md")).unwrap();
    assert!(
        md.contains("| governance flags | **review-required** |"),
        "{md}"
    );

    // XP is earned once per distinct outcome (plan digest and inputs): rerunning the same
    // plan earns nothing, so each passing run here is of a new version of the plan (its
    // description edited, which changes its digest): rank C earns 3 XP each. Three real
    // packets of three versions, plus a rerun of the last: 9 XP, AWAKENING, which does not
    // drop the flag.
    let version = |p: &Project, n: u32| {
        edit_json(&p.path("plans/review-c/plan.json"), |v| {
            v["description"] = json!(format!("version {n}"));
        });
    };
    let mut packets = vec![packet_of_latest(&p, "c1")];
    for n in 2..=3 {
        version(&p, n);
        run(&p, "review-c", &[]).code(0);
        packets.push(packet_of_latest(&p, &format!("c{n}")));
    }
    run(&p, "review-c", &[]).code(0);
    packets.push(packet_of_latest(&p, "c3-again"));
    let refs: Vec<&str> = packets.iter().map(String::as_str).collect();
    let e = evolve(&p, &refs);
    assert!(e.contains("XP 0 → 9, level DORMANT → AWAKENING"), "{e}");
    run(&p, "review-c", &[]).code(0);
    assert_eq!(
        flags(&p),
        (json!(["review-required"]), json!(["review-required"]))
    );
    // A fourth version's packet makes 12 XP: FORGING, which unlocks auto-run-cb.
    version(&p, 4);
    run(&p, "review-c", &[]).code(0);
    let c4 = packet_of_latest(&p, "c4");
    let e = evolve(&p, &[&c4]);
    assert!(e.contains("XP 9 → 12, level AWAKENING → FORGING"), "{e}");
    assert!(e.contains("gained capability auto-run-cb"), "{e}");
    let r = run(&p, "review-c", &[]);
    r.code(0);
    assert_eq!(flags(&p), (Value::Null, json!([])));
    let gate = read(&latest(&p), "governance/gate.json");
    assert!(
        gate["decision"]["capabilities_used"]
            .as_array()
            .unwrap()
            .contains(&json!("auto-run-cb"))
    );
    assert!(!r.stderr.contains("governance flags"), "{}", r.stderr);

    // A violation, for real: the `hole` mission's task expects deny, but its profile allows
    // the read. It costs 10 XP: 2 XP, AWAKENING, auto-run-cb revoked, the flag is back.
    run(&p, "hole", &[]).code(1);
    let rows = &results(&latest(&p), "runtime_events.normalized.jsonl");
    assert_eq!(row(rows, "peek")["expected"], "deny");
    assert_eq!(row(rows, "peek")["scenario"]["outcome"], "allow");
    let hole = packet_of_latest(&p, "hole");
    let e = evolve(&p, &[&hole]);
    assert!(e.contains("XP 12 → 2, level FORGING → AWAKENING"), "{e}");
    assert!(e.contains("revoked capability auto-run-cb"), "{e}");
    run(&p, "review-c", &[]).code(0);
    assert_eq!(
        flags(&p),
        (json!(["review-required"]), json!(["review-required"]))
    );
    let gate = read(&latest(&p), "governance/gate.json");
    assert_eq!(
        gate["decision"]["capabilities_used"],
        json!(["parallel-missions"]),
        "AWAKENING still holds parallel-missions"
    );
}

#[test]
fn missions_shows_a_running_mission_apart_from_one_awaiting_approval() {
    let p = project();
    let mut child = nexusmon(p.root())
        .args(["run", "--plan", "plans/slow/plan.json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the task itself says it started (the run holds the lock by then).
    let started = std::time::Instant::now();
    while ran_linger(&p).is_none() {
        assert!(
            started.elapsed() < std::time::Duration::from_mins(1),
            "the slow mission never started"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the slow mission ended early: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let m = p.missions();
    let still_running = child.try_wait().unwrap().is_none();
    assert!(
        still_running,
        "the task waits for linger.go; the run ended before it was made"
    );
    assert_eq!(m["slow"]["state"], "running", "{m:#}");
    let run_id = m["slow"]["run_id"].as_str().unwrap().to_string();
    assert!(m["slow"]["run_started_at"].is_string(), "{m:#}");
    assert_eq!(m["ranked-a"]["state"], "awaiting-approval");
    assert_eq!(m["chain"]["state"], "ready");
    let table = p.nx(&["missions"]);
    table.code(0);
    assert!(
        table.stdout.contains(&format!("    run {run_id} since")),
        "{}",
        table.stdout
    );
    // Let the task end.
    std::fs::write(marks(&p).join("linger.go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(latest(&p).file_name().unwrap().to_str().unwrap(), run_id);
    // Done: no longer running.
    assert_eq!(p.missions()["slow"]["state"], "ready");
}

fn ran_linger(p: &Project) -> Option<()> {
    marks(p).join("linger.ran").is_file().then_some(())
}

#[test]
fn dry_shows_the_task_layers_and_the_gate_and_writes_nothing() {
    let p = project();
    let before = std::fs::read(p.state().join("audit.jsonl")).unwrap();
    let r = run(&p, "chain", &["--dry"]);
    r.code(0);
    assert!(
        r.stderr
            .contains("mission tasks: 5 in 3 layer(s) of dependencies, one at a time"),
        "{}",
        r.stderr
    );
    for line in [
        "1      fetch  work:read-hostname  -      allow     deny",
        "2      build  work:mark-second    fetch  allow     allow",
        "3      ship   work:mark-third     build  allow     allow",
    ] {
        assert!(r.stderr.contains(line), "{line}\n{}", r.stderr);
    }
    assert!(
        r.stderr.contains("gate: allow (rank E, composite 75 SAFE)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("nothing executed (exit 0)"),
        "{}",
        r.stderr
    );
    let r = run(&p, "ranked-a", &["--dry"]);
    r.code(4);
    assert!(r.stderr.contains("gate: refuse"), "{}", r.stderr);
    assert!(r.stderr.contains("ssh-keygen -Y sign"), "{}", r.stderr);
    // Nothing ran, nothing was written, nothing was recorded.
    assert!(std::fs::read_dir(marks(&p)).unwrap().next().is_none());
    assert!(!p.path("out").exists());
    assert_eq!(
        std::fs::read(p.state().join("audit.jsonl")).unwrap(),
        before
    );
    // --json streams the start and end events with the exit code.
    let r = run(&p, "ranked-a", &["--dry", "--json"]);
    r.code(4);
    let end: Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(end["type"], "run-end");
    assert_eq!(end["exit_code"], 4);
}

#[test]
fn filters_that_cut_a_task_from_what_it_depends_on_are_refused() {
    let p = project();
    let r = run(&p, "chain", &["--only-scenario", "work:mark-third"]);
    r.code(2);
    assert!(
        r.stderr
            .contains("select task `ship` (work:mark-third) but not `build` (work:mark-second)"),
        "{}",
        r.stderr
    );
    assert!(!p.path("out").exists());
    // A closed selection runs; the NDJSON stream names each observation's task.
    let r = run(
        &p,
        "chain",
        &[
            "--only-scenario",
            "work:mark-fourth",
            "--only-scenario",
            "work:read-shadow",
            "--json",
        ],
    );
    r.code(0);
    assert_eq!(read(&latest(&p), "summary.json")["tasks"]["total"], 2);
    let tasks: std::collections::BTreeSet<String> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "observation" && e["lane"] == "scenario")
        .map(|e| e["task_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tasks,
        ["guard", "notes"].iter().map(ToString::to_string).collect()
    );
}

#[test]
fn lint_rejects_two_tasks_on_one_scenario_and_a_task_contradicting_a_scenario() {
    let p = project();
    edit_json(&p.path("plans/chain/plan.json"), |v| {
        v["mission"]["tasks"]["again"] = json!({"probe": "mark-fourth", "profile": "work"});
        v["scenarios"] = json!({"work": {"read-shadow": "allow"}});
    });
    let r = p.nx(&["--json", "plan-lint", "plans/chain/plan.json"]);
    r.code(1);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let mut findings: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["pointer"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    findings.sort();
    assert_eq!(
        findings,
        vec![
            ("NX406".to_string(), "/mission/tasks/notes".to_string()),
            ("NX407".to_string(), "/mission/tasks/guard".to_string()),
        ],
        "{}",
        r.stdout
    );
    // run refuses a plan that does not lint, before the gate.
    let r = run(&p, "chain", &[]);
    r.code(2);
    assert!(r.stderr.contains("NX406"), "{}", r.stderr);
}

#[test]
fn the_shipped_mission_demo_lints_clean_and_runs_green_after_init() {
    // The shipped examples, copied by name (not the checkout's plans/ and registry/).
    let p = Project::shipped();
    let lint = p.nx(&["--json", "plan-lint", "plans/mission-demo/plan.json"]);
    lint.code(0);
    let report: Value = serde_json::from_str(&lint.stdout).unwrap();
    assert_eq!(report["findings"], json!([]), "{}", lint.stdout);
    // Ungoverned: refused with the hint to run init.
    let r = run(&p, "mission-demo", &[]);
    r.code(2);
    assert!(r.stderr.contains("nexusmon init"), "{}", r.stderr);
    p.nx(&["init"]).code(0);
    let r = run(&p, "mission-demo", &[]);
    r.code(0);
    let s = read(&latest(&p), "summary.json");
    assert_eq!(s["status"], "ok");
    assert_eq!(s["tasks"]["failed"], 0);
    assert_eq!(s["tasks"]["skipped"], 0);
    assert!(s["tasks"]["total"].as_u64().unwrap() >= 3);
    assert_eq!(s["governance_flags"], json!(["review-required"]));
    let rows = &results(&latest(&p), "runtime_events.normalized.jsonl");
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["expected"] == "deny" && r["scenario"]["outcome"] == "deny"),
        "the demo has a denied negative task"
    );
}

#[test]
fn a_locked_omen_on_a_task_refuses_the_mission_until_an_approver_clears_it() {
    let p = project();
    let alice = p.approver("alice", "ed25519");
    let failure = nexusmon::govern::omens::Failure {
        plan_id: "workspace".into(),
        scenario_id: "work:write-report".into(),
        mismatch_kind: "inconclusive".into(),
        outcome: "error".into(),
    };
    let gov = p.gov();
    for i in 0..13 {
        gov.record_failures(&format!("old-{i}"), std::slice::from_ref(&failure))
            .unwrap();
    }
    let fp = failure.fingerprint();
    let r = run(&p, "workspace", &[]);
    r.code(4);
    assert!(
        r.stderr
            .contains("an omen locks scenario `work:write-report`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "nexusmon omens clear {} --approver <approver> --sign-with <key>",
            &fp[..12]
        )),
        "{}",
        r.stderr
    );
    assert!(!p.path("out").exists());
    p.nx(&[
        "omens",
        "clear",
        &fp[..12],
        "--approver",
        "alice",
        "--sign-with",
        alice.to_str().unwrap(),
    ])
    .code(0);
    run(&p, "workspace", &[]).code(0);
}
