//! Mission workers end to end: the shipped workers in one mission (refused until the
//! evolution state unlocks `run-scripts`, then green, with artifacts, digests and lineage
//! in `artifacts.json`); a worker added in a temp registry with no change to `src/`; every
//! worker fault its own reason; the kernel keeping a confined worker in its output
//! directory; governance from the worker's declaration (risk level, `requires_approval`);
//! single-use approvals; reruns of one mission earning the XP of one.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nexusmon::util::digest::blake3_hex;

use crate::util::{Project, read_json};

/// A registry `reg` with the profiles workers in these tests run under: `confined` (read
/// the system and the workspace, execute `${WORKER_BIN}`, write only `${OUTPUT}`) and `loose`
/// (the same, plus writes anywhere in the mission workspace `${SCRATCH}`).
fn registry(p: &Project, workers: &serde_json::Value) {
    let system = serde_json::json!([
        {"path": "/usr", "access": ["read", "exec"]},
        {"path": "/lib", "access": ["read", "exec"]},
        {"path": "/lib64", "access": ["read", "exec"]},
        {"path": "/bin", "access": ["read", "exec"]},
        {"path": "/etc/ld.so.cache", "access": ["read"]},
        {"path": "${WORKER_BIN}", "access": ["read", "exec"]},
        {"path": "${OUTPUT}", "access": ["read", "write", "create", "remove"]}
    ]);
    let mut confined = system.as_array().unwrap().clone();
    confined.push(serde_json::json!({"path": "${SCRATCH}", "access": ["read"]}));
    let mut loose = system.as_array().unwrap().clone();
    loose.push(
        serde_json::json!({"path": "${SCRATCH}", "access": ["read", "write", "create", "remove"]}),
    );
    let profile = |allow: Vec<serde_json::Value>| {
        serde_json::json!({
            "landlock": {"compat": "hard", "abi": 3,
                         "fs": {"handle": "all", "allow": allow, "missing_paths": "skip"}}
        })
    };
    write(
        p,
        "registry/reg/profiles.json",
        &serde_json::json!({"schema_version": 1, "registry_id": "reg", "profiles": {
            "confined": profile(confined), "loose": profile(loose)}}),
    );
    write(
        p,
        "registry/reg/probes.json",
        &serde_json::json!({"schema_version": 1, "registry_id": "reg", "probes": {
            "read-shadow": {"operation": "file-read", "target": "/etc/shadow", "timeout_ms": 5000}
        }}),
    );
    write(
        p,
        "registry/reg/workers.json",
        &serde_json::json!({"schema_version": 1, "registry_id": "reg", "workers": workers}),
    );
}

fn write(p: &Project, rel: &str, v: &serde_json::Value) {
    let path = p.path(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// A `/bin/sh` worker script at `tools/<name>.sh` (executable).
fn script(p: &Project, name: &str, body: &str) -> String {
    let rel = format!("tools/{name}.sh");
    let path = p.path(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    rel
}

/// A worker declaration running `command` under `profile`.
fn worker(command: &str, profile: &str, timeout_ms: u64) -> serde_json::Value {
    serde_json::json!({"command": [command], "capabilities": ["write-artifacts"],
        "risk_level": "E", "profile": profile, "timeout_ms": timeout_ms})
}

/// A mission plan `plans/<id>/plan.json` of rank `rank` with `tasks`.
fn mission(p: &Project, id: &str, rank: &str, profiles: &[&str], tasks: &serde_json::Value) {
    write(
        p,
        &format!("plans/{id}/plan.json"),
        &serde_json::json!({
            "schema_version": 1, "plan_id": id, "kind": "mission", "registry_id": "reg",
            "profiles": profiles,
            "mission": {
                "objective": "test", "category": "forge", "rank": rank,
                "scores": {"compute_cost": 10, "maintainability": 80, "attention": 10,
                           "economic_value": 50, "trust": 80, "prediction_confidence": 80},
                "requested_by": "rita", "tasks": tasks
            }
        }),
    );
}

/// A worker that writes `name` with `content` and lists it correctly.
const GOOD: &str = r#"printf 'counted\n' > count.txt
sum=$(sha256sum count.txt | cut -d' ' -f1)
printf '{"protocol": 1, "status": "ok", "message": "counted", "files": [{"path": "count.txt", "sha256": "%s"}]}\n' "$sum""#;

/// The scenario-lane observation of every task of the latest bundle, by task id.
fn observations(bundle: &Path) -> serde_json::Map<String, serde_json::Value> {
    let r = crate::util::results(bundle, "runtime_results.jsonl");
    r.as_array()
        .unwrap()
        .iter()
        .map(|o| (o["task_id"].as_str().unwrap().to_string(), o.clone()))
        .collect()
}

#[test]
fn the_shipped_workers_run_green_once_run_scripts_is_earned_with_artifacts_and_lineage() {
    let p = Project::shipped().init();
    // The script executor needs `run-scripts` (AWAKENING): refused on a fresh state, exit 4,
    // naming the level that unlocks it, nothing written.
    let r = p.run("worker-demo", &[]);
    r.code(4);
    assert!(
        r.stderr.contains(
            "worker `script-exec` needs capability `run-scripts`, unlocked at level AWAKENING (1 XP)"
        ),
        "{}",
        r.stderr
    );
    assert!(!p.path("out").join("LATEST").exists());
    // Earn it: a passing mission, its packet, evolve.
    p.run("mission-demo", &[]).code(0);
    p.emit(&p.latest(), "promotion/demo.json", &[]).code(0);
    p.nx(&["evolve", "--packets", "promotion/demo.json"])
        .code(0);
    let log = std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap();
    assert!(
        log.contains(r#""kind":"capability-unlocked""#)
            && log.contains(r#""capability":"run-scripts""#),
        "{log}"
    );
    let status = p.nx(&["evolution", "status"]);
    status.code(0);
    assert!(
        status
            .stdout
            .contains("run-scripts: unlocked at AWAKENING (1 XP)"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("plan mission-demo): +3 XP"),
        "{}",
        status.stdout
    );

    let r = p.run("worker-demo", &[]);
    r.code(0);
    let bundle = p.latest();
    p.nx(&["validate-bundle", "--bundle", bundle.to_str().unwrap()])
        .code(0);
    let a = read_json(&bundle.join("artifacts.json"));
    assert_eq!(a["schema"], "nexusmon/artifacts/v1");
    let tasks: Vec<&serde_json::Value> = a["tasks"].as_array().unwrap().iter().collect();
    let ids: Vec<&str> = tasks
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["generate", "health", "shout"]);
    // Every artifact is a bundle member with the digests listed.
    for t in &tasks {
        assert!(t.get("fault").is_none(), "{t}");
        assert!(!t["artifacts"].as_array().unwrap().is_empty(), "{t}");
        for art in t["artifacts"].as_array().unwrap() {
            let bytes = std::fs::read(bundle.join(art["member"].as_str().unwrap())).unwrap();
            assert_eq!(art["digest"]["blake3"], blake3_hex(&bytes), "{art}");
            assert_eq!(art["size"], bytes.len());
        }
        // Lineage: the worker's version is its executable's digest.
        let exe = t["worker"]["executable_path"].as_str().unwrap();
        assert_eq!(
            t["worker"]["executable"]["blake3"],
            blake3_hex(&std::fs::read(p.path(exe)).unwrap())
        );
    }
    let generate = tasks[0];
    let shout = tasks[2];
    let words = generate["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "words.txt")
        .unwrap();
    // The transformer consumed exactly the file the script produced.
    assert_eq!(shout["consumed"]["generate/words.txt"], words["digest"]);
    assert_eq!(
        shout["inputs"]["source"]["path"],
        "${SCRATCH}/artifacts/generate/words.txt"
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("artifacts/shout/WORDS.txt")).unwrap(),
        "GAMMA\nALPHA\nBETA\n"
    );
    let response = read_json(&bundle.join("artifacts/health/response.json"));
    assert_eq!(response["status"], 200);
    // The manifest records the workers and the inputs digest the packet carries.
    let manifest = read_json(&bundle.join("run_manifest.json"));
    assert_eq!(
        manifest["workers"]["transform"]["executable"],
        tasks[2]["worker"]["executable"]
    );
    p.emit(&bundle, "promotion/workers.json", &["--require-promotable"])
        .code(0);
    let packet = p.json("promotion/workers.json");
    assert_eq!(packet["plan"]["inputs_digest"], manifest["inputs_digest"]);
    // Editing a worker's executable changes the plan digest (so it voids approvals).
    let before = p.plan("worker-demo").digest;
    let exe = p.path("workers/transform.py");
    let mut text = std::fs::read_to_string(&exe).unwrap();
    text.push_str("\n# edited\n");
    std::fs::write(&exe, text).unwrap();
    assert_ne!(p.plan("worker-demo").digest, before);
}

#[test]
fn a_worker_added_in_a_temp_registry_runs_without_any_change_to_src() {
    let p = Project::empty().init();
    let cmd = script(&p, "count", GOOD);
    registry(
        &p,
        &serde_json::json!({"count": worker(&cmd, "confined", 5000)}),
    );
    mission(
        &p,
        "counting",
        "E",
        &["confined"],
        &serde_json::json!({"count": {"worker": "count", "profile": "confined"}}),
    );
    p.nx(&["plan-lint", "plans/counting/plan.json"]).code(0);
    p.run("counting", &[]).code(0);
    let bundle = p.latest();
    assert_eq!(
        std::fs::read_to_string(bundle.join("artifacts/count/count.txt")).unwrap(),
        "counted\n"
    );
    let o = &observations(&bundle)["count"];
    assert_eq!(o["driver"], "worker");
    assert_eq!(o["worker"]["result"]["message"], "counted");
    // The scaffold writes a worker that runs too.
    p.nx(&["worker-new", "greeter"]).code(0);
    p.run("greeter", &[]).code(0);
    assert_eq!(
        std::fs::read_to_string(p.latest().join("artifacts/greet/greeting.txt")).unwrap(),
        "hello from task greet\n"
    );
}

#[test]
fn every_worker_fault_fails_its_task_with_its_own_reason_and_skips_its_dependents() {
    let p = Project::empty().init();
    let ok_result = r#"printf '{"protocol": 1, "status": "ok"}\n'"#;
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("crash", "kill -SEGV $$", "confined", Some("crashed")),
        ("hang", "sleep 30", "confined", Some("timed-out")),
        ("silent", "exit 0", "confined", Some("no-result")),
        ("nonzero", "exit 3", "confined", Some("exited-nonzero")),
        (
            "garbage",
            "echo 'this is not json'",
            "confined",
            Some("malformed-result"),
        ),
        (
            "unknown-key",
            r#"printf '{"protocol": 1, "status": "ok", "surprise": true}\n'"#,
            "confined",
            Some("malformed-result"),
        ),
        (
            "ghost",
            r#"printf '{"protocol": 1, "status": "ok", "files": [{"path": "ghost.txt", "sha256": "00"}]}\n'"#,
            "confined",
            Some("missing-output"),
        ),
        (
            "symlink",
            r#"ln -s /etc/passwd leak.txt
sum=$(sha256sum /etc/passwd | cut -d' ' -f1)
printf '{"protocol": 1, "status": "ok", "files": [{"path": "leak.txt", "sha256": "%s"}]}\n' "$sum""#,
            "confined",
            Some("output-outside-dir"),
        ),
        (
            "dotdot",
            r#"printf '{"protocol": 1, "status": "ok", "files": [{"path": "../count/count.txt", "sha256": "00"}]}\n'"#,
            "confined",
            Some("output-outside-dir"),
        ),
        (
            "unlisted",
            &format!("printf x > extra.txt\n{ok_result}"),
            "confined",
            Some("unlisted-output"),
        ),
        (
            "liar",
            r#"printf 'x' > a.txt
printf '{"protocol": 1, "status": "ok", "files": [{"path": "a.txt", "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}]}\n'"#,
            "confined",
            Some("output-digest-mismatch"),
        ),
        (
            "refuses",
            r#"printf '{"protocol": 1, "status": "failed", "message": "cannot"}\n'"#,
            "confined",
            Some("reported-failure"),
        ),
        // A profile that lets it write in the workspace: the runner sees the change.
        (
            "stray",
            &format!("printf x > ../../stray.txt\n{ok_result}"),
            "loose",
            Some("wrote-outside-output-dir"),
        ),
        // Confined by the kernel: the write outside fails, so the worker reports success
        // only if it was really denied.
        (
            "confined",
            &format!(
                "if (printf x > ../../escape.txt); then printf '{{\"protocol\": 1, \"status\": \"failed\", \"message\": \"escaped\"}}\\n'; exit 0; fi\n{ok_result}"
            ),
            "confined",
            None,
        ),
        ("count", GOOD, "confined", None),
    ];
    let mut workers = serde_json::Map::new();
    let mut tasks = serde_json::Map::new();
    for (name, body, profile, _) in cases {
        let cmd = script(&p, name, body);
        let timeout = if *name == "hang" { 400 } else { 5000 };
        workers.insert((*name).into(), worker(&cmd, profile, timeout));
        tasks.insert(
            (*name).into(),
            serde_json::json!({"worker": name, "profile": profile}),
        );
    }
    tasks.insert(
        "after-crash".into(),
        serde_json::json!({"worker": "count", "profile": "confined", "depends_on": ["crash"]}),
    );
    registry(&p, &serde_json::Value::Object(workers));
    mission(
        &p,
        "faults",
        "E",
        &["confined", "loose"],
        &serde_json::Value::Object(tasks),
    );
    let r = p.run("faults", &["--keep-scratch"]);
    r.code(1);
    let bundle = p.latest();
    let obs = observations(&bundle);
    for (name, _, _, want) in cases {
        let o = &obs[*name];
        let fault = o["worker"]["fault"].as_str();
        assert_eq!(fault, *want, "task {name}: {o:#}");
        match want {
            Some(f) => {
                assert_ne!(o["outcome"], "allow", "{name}");
                assert!(
                    o["detail"].as_str().unwrap().contains(f),
                    "{name}: {}",
                    o["detail"]
                );
            }
            None => assert_eq!(o["outcome"], "allow", "{name}: {o:#}"),
        }
    }
    assert_eq!(obs["hang"]["outcome"], "timeout");
    assert_eq!(obs["after-crash"]["outcome"], "skipped");
    assert_eq!(obs["after-crash"]["skipped_because"], "crash");
    // The kernel kept the confined worker in its output directory; the loose one's write
    // landed (and failed its task).
    let manifest = read_json(&bundle.join("run_manifest.json"));
    let ws = Path::new(manifest["scratch"].as_str().unwrap()).join("mission/scenario");
    assert!(!ws.join("escape.txt").exists());
    assert!(ws.join("stray.txt").exists());
    let log = obs["confined"]["stderr"]["log"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(bundle.join(log))
            .unwrap()
            .contains("Permission denied")
    );
    // artifacts.json lists every worker task that ran, faults included, and only the
    // files of the tasks that did their work.
    let a = read_json(&bundle.join("artifacts.json"));
    for t in a["tasks"].as_array().unwrap() {
        let arts = t["artifacts"].as_array().unwrap();
        assert_eq!(
            t.get("fault").is_none(),
            t["task_id"] == "count" || t["task_id"] == "confined",
            "{t}"
        );
        if t.get("fault").is_some() {
            assert!(arts.is_empty(), "{t}");
        }
    }
    std::fs::remove_dir_all(Path::new(manifest["scratch"].as_str().unwrap())).unwrap();
}

/// A rank-D mission with a worker of risk level A.
fn risky(p: &Project, requires_approval: bool, rank: &str) {
    let cmd = script(p, "count", GOOD);
    let mut w = worker(&cmd, "confined", 5000);
    w["risk_level"] = serde_json::json!(if requires_approval { "E" } else { "A" });
    w["requires_approval"] = serde_json::json!(requires_approval);
    registry(p, &serde_json::json!({"count": w}));
    mission(
        p,
        "risky",
        rank,
        &["confined"],
        &serde_json::json!({"count": {"worker": "count", "profile": "confined"}}),
    );
}

#[test]
fn a_risk_a_worker_in_a_rank_d_mission_is_refused_without_an_approval() {
    let p = Project::empty().init();
    risky(&p, false, "D");
    let r = p.run("risky", &[]);
    r.code(4);
    assert!(
        r.stderr
            .contains("worker `count` (risk A) raises the mission from rank D to rank A"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("needs 1 valid approval(s) and has 0"),
        "{}",
        r.stderr
    );
    assert!(!p.path("out/LATEST").exists());
    let key = p.approver("alice", "ed25519");
    p.nx(&[
        "approve",
        "--plan",
        "plans/risky/plan.json",
        "--approver",
        "alice",
        "--sign-with",
        key.to_str().unwrap(),
    ])
    .code(0);
    p.run("risky", &[]).code(0);
    let gate = read_json(&p.latest().join("governance/gate.json"));
    assert_eq!(gate["decision"]["effective_rank"], "A");
    assert_eq!(gate["decision"]["rank"], "D");

    // `requires_approval` forces one whatever the rank.
    let q = Project::empty().init();
    risky(&q, true, "E");
    let r = q.run("risky", &[]);
    r.code(4);
    assert!(
        r.stderr
            .contains("requires an approval of every mission that uses it"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_single_use_approval_is_refused_the_second_time() {
    let p = Project::empty().init();
    risky(&p, false, "A");
    let key = p.approver("alice", "ed25519");
    p.nx(&[
        "approve",
        "--plan",
        "plans/risky/plan.json",
        "--approver",
        "alice",
        "--uses",
        "1",
        "--sign-with",
        key.to_str().unwrap(),
    ])
    .code(0);
    let record = read_json(&p.path("plans/risky/approvals/risky.alice.json"));
    assert_eq!(record["uses"], 1);
    let nonce = record["nonce"].as_str().unwrap().to_string();
    p.run("risky", &[]).code(0);
    let r = p.run("risky", &[]);
    r.code(4);
    assert!(r.stderr.contains("uses-exhausted"), "{}", r.stderr);
    let log = std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap();
    let used: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(r#""kind":"approval-used""#))
        .collect();
    assert_eq!(used.len(), 1, "{log}");
    assert!(used[0].contains(&nonce), "{}", used[0]);
    assert!(
        log.lines()
            .any(|l| l.contains(r#""kind":"run-refused""#) && l.contains("uses-exhausted")),
        "{log}"
    );
    p.nx(&["audit", "verify"]).code(0);
}

#[test]
fn rerunning_the_same_approved_mission_20_times_earns_the_xp_of_one() {
    let p = Project::empty().init();
    registry(&p, &serde_json::json!({}));
    mission(
        &p,
        "approved",
        "A",
        &["confined"],
        &serde_json::json!({"no-secrets": {"probe": "read-shadow", "profile": "confined", "expect": "deny"}}),
    );
    let key = p.approver("alice", "ed25519");
    p.nx(&[
        "approve",
        "--plan",
        "plans/approved/plan.json",
        "--approver",
        "alice",
        "--sign-with",
        key.to_str().unwrap(),
    ])
    .code(0);
    let mut packets = Vec::new();
    for i in 0..20 {
        p.run("approved", &[]).code(0);
        let out = format!("promotion/run-{i:02}.json");
        p.emit(&p.latest(), &out, &["--require-promotable"]).code(0);
        packets.push(out);
    }
    // Consumed in two batches, in any order: the XP of one rank-A mission.
    let mut args = vec!["evolve", "--packets"];
    args.extend(packets[10..].iter().rev().map(String::as_str));
    p.nx(&args).code(0);
    let mut args = vec!["evolve", "--packets"];
    args.extend(packets[..10].iter().map(String::as_str));
    p.nx(&args).code(0);
    let state = p.json(".nexusmon/evolution.json");
    assert_eq!(state["consumed"].as_array().unwrap().len(), 20);
    assert_eq!(state["earned_xp"], 8);
    assert_eq!(state["xp"], 8);
    assert_eq!(state["missions_passed"], 1);
    assert_eq!(state["repeats"].as_array().unwrap().len(), 19);
    assert_eq!(state["level"], "AWAKENING");
}
