//! Lint that judges policies the way Landlock does, end to end: a narrower rule under a
//! broader one is a warning and the plan runs; input bombs are refused with a clear error
//! naming the place, before they cost anything.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{Project, Ran, nexusmon};

fn write(p: &Project, rel: &str, v: &Value) {
    let path = p.path(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// A project with one registry `r` and one plan `p` running `profile` over `probes`
/// (`id → (probe, expectation)`).
fn project(profile: &Value, probes: &[(&str, Value, &str)]) -> Project {
    let p = Project::empty();
    let probe_map: serde_json::Map<String, Value> = probes
        .iter()
        .map(|(id, v, _)| ((*id).to_string(), v.clone()))
        .collect();
    write(
        &p,
        "registry/r/probes.json",
        &json!({"schema_version": 1, "registry_id": "r", "probes": probe_map}),
    );
    write(
        &p,
        "registry/r/profiles.json",
        &json!({"schema_version": 1, "registry_id": "r", "profiles": {"usr": profile}}),
    );
    let expect: serde_json::Map<String, Value> = probes
        .iter()
        .map(|(id, _, e)| ((*id).to_string(), json!(e)))
        .collect();
    write(
        &p,
        "plans/p/plan.json",
        &json!({"schema_version": 1, "plan_id": "p", "kind": "experiment", "registry_id": "r",
                "profiles": ["usr"], "scenarios": {"usr": expect},
                "execution": {"timeout_ms": 5000}}),
    );
    p
}

#[test]
fn a_narrower_rule_under_a_broader_one_lints_with_a_warning_and_runs() {
    // `/usr` read+exec plus `/usr/bin` read, as real policies (landrun's) write it.
    let profile = json!({"landlock": {"abi": 3, "fs": {"handle": "all", "allow": [
        {"path": "/usr", "access": ["read", "exec"]},
        {"path": "/usr/bin", "access": ["read"]}
    ]}}});
    let probes = [
        (
            "read-os-release",
            json!({"operation": "file-read", "target": "/usr/lib/os-release"}),
            "allow",
        ),
        (
            "read-hostname",
            json!({"operation": "file-read", "target": "/etc/hostname"}),
            "deny",
        ),
    ];
    let p = project(&profile, &probes);
    let r = p.nx(&["plan-lint", "plans/p/plan.json"]);
    r.code(0);
    assert!(r.stdout.contains("warning[NX303]"), "{}", r.stdout);
    assert!(r.stdout.contains("0 errors, 1 warning"), "{}", r.stdout);
    let r = p.run("p", &[]);
    r.code(0);
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("all 2 scenario(s) matched"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    // Acknowledged on the rule, the warning is gone.
    let mut quiet = profile.clone();
    quiet["landlock"]["fs"]["allow"][1]["allow_lint"] = json!(["NX303"]);
    let p = project(&quiet, &probes);
    let r = p.nx(&["plan-lint", "plans/p/plan.json"]);
    r.code(0);
    assert!(r.stdout.contains("no problems found"), "{}", r.stdout);
}

/// Run the binary in `dir`, killing it if it has not finished after `guard` (a guard
/// against a runaway, not a measurement: the benchmark is `benches/input-bombs.sh`).
fn run_guarded(dir: &Path, args: &[&str], guard: Duration) -> Ran {
    let mut child = nexusmon(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > guard {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`nexusmon {}` ran for more than {guard:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap().into()
}

/// A YAML "billion laughs": `levels` levels of 10 aliases each (10^levels values if
/// expanded).
fn alias_bomb(levels: usize) -> String {
    let mut s = String::from(
        "schema_version: 1\nplan_id: p\nkind: experiment\nregistry_id: r\nprofiles: [usr]\n",
    );
    s.push_str("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..levels {
        let refs = vec![format!("*l{}", i - 1); 10].join(",");
        let _ = writeln!(s, "l{i}: &l{i} [{refs}]");
    }
    s
}

#[test]
fn input_bombs_are_refused_with_a_clear_error_naming_the_place() {
    let profile = json!({"landlock": {"abi": 3, "fs": {"handle": "all", "allow": [
        {"path": "/usr", "access": ["read"]}]}}});
    let probes = [(
        "read-os-release",
        json!({"operation": "file-read", "target": "/usr/lib/os-release"}),
        "allow",
    )];
    let p = project(&profile, &probes);
    let bomb = alias_bomb(10);
    assert!(bomb.len() < 700, "{} bytes", bomb.len());
    let cases = [
        ("plans/bomb/plan.yaml", bomb, "more than 50000 values"),
        (
            "plans/deep-yaml/plan.yaml",
            format!("a: {}\n", "[".repeat(100_000)),
            "nesting deeper than 128 levels",
        ),
        (
            "plans/deep-json/plan.json",
            format!(
                "{{\"a\": {}{}}}\n",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
            "nesting deeper than 128 levels",
        ),
    ];
    for (rel, text, what) in &cases {
        std::fs::create_dir_all(p.path(rel).parent().unwrap()).unwrap();
        std::fs::write(p.path(rel), text).unwrap();
        let guard = Duration::from_secs(20);
        let r = run_guarded(p.root(), &["plan-lint", "--format", "json", rel], guard);
        r.code(1);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        let f = &v["findings"][0];
        assert_eq!(f["code"], "NX014", "{rel}: {}", r.stdout);
        assert!(f["message"].as_str().unwrap().contains(what), "{rel}: {f}");
        assert!(f["line"].as_u64().unwrap() >= 1, "{f}");
        assert_eq!(v["findings"].as_array().unwrap().len(), 1, "{}", r.stdout);
        // `run` refuses it as an input error (exit 2) naming the file, line and column.
        let r = run_guarded(
            p.root(),
            &["run", "--plan", rel, "--out", "out", "--channel", "clean"],
            guard,
        );
        r.code(2);
        assert!(r.stderr.contains(rel), "{}", r.stderr);
        assert!(r.stderr.contains(what), "{}", r.stderr);
    }
    // The alias bomb is refused at the first alias over the budget, in `l4` (line 10).
    let r = run_guarded(
        p.root(),
        &["plan-lint", "--format", "json", cases[0].0],
        Duration::from_secs(20),
    );
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["findings"][0]["line"], 10, "{}", r.stdout);
    // A file larger than the plan file limit (64 MiB) is refused without being read
    // (sparse: only its length is stored).
    let big = p.path("plans/big/plan.json");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    std::fs::File::create(&big)
        .unwrap()
        .set_len((64 << 20) + 1)
        .unwrap();
    let r = run_guarded(
        p.root(),
        &["plan-lint", "--format", "json", "plans/big/plan.json"],
        Duration::from_secs(20),
    );
    r.code(1);
    assert!(r.stdout.contains("NX014"), "{}", r.stdout);
    assert!(r.stdout.contains("is larger than"), "{}", r.stdout);
}
