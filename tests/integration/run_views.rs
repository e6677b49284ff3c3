//! How `run` shows itself: scenario selection by glob and tag, `--rerun-failed`, GitHub
//! annotations and the step summary, `--show`, colour and `-v` durations, out roots that
//! cannot be created, the default out root, and no Rust debug value in any output
//! (generated profiles the kernel cannot enforce).

use crate::util::{Project, latest_bundle, read_json, run_in};

/// The scenarios a `--dry --json` run selects.
fn selected(p: &Project, extra: &[&str]) -> u64 {
    let mut args = vec![
        "--json",
        "run",
        "--plan",
        "plans/quickstart/plan.json",
        "--dry",
    ];
    args.extend_from_slice(extra);
    let r = p.nx(&args);
    r.code(0);
    let start: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    start["scenarios"].as_u64().unwrap()
}

#[test]
fn only_scenario_and_only_profile_take_globs_and_tags() {
    let p = Project::shipped();
    assert_eq!(selected(&p, &[]), 10);
    assert_eq!(selected(&p, &["--only-scenario", "system-ro:*"]), 5);
    assert_eq!(selected(&p, &["--only-scenario", "*:read-*"]), 3);
    assert_eq!(selected(&p, &["--only-scenario", "@net"]), 2);
    assert_eq!(selected(&p, &["--only-profile", "@fs"]), 5);
    assert_eq!(
        selected(&p, &["--only-profile", "net-*", "--only-scenario", "@fs"]),
        2
    );
    for bad in [
        vec!["--only-scenario", "nope:*"],
        vec!["--only-scenario", "@nosuchtag"],
        vec!["--only-profile", "x?"],
    ] {
        let mut args = vec!["run", "--plan", "plans/quickstart/plan.json", "--dry"];
        args.extend(bad.iter().copied());
        let r = p.nx(&args);
        r.code(2);
        assert!(r.stderr.contains(bad[1]), "{}", r.stderr);
    }
}

fn grant_etc(p: &Project) {
    let path = p.path("registry/linux-core/profiles.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"/etc/ld.so.cache\"", "\"/etc\"");
    std::fs::write(path, text).unwrap();
}

#[test]
fn rerun_failed_annotations_and_the_step_summary() {
    let p = Project::shipped();
    grant_etc(&p);
    let summary = p.path("step-summary.md");
    let r = crate::util::Test::new()
        .cwd(p.root())
        .args([
            "run",
            "--plan",
            "plans/quickstart/plan.json",
            "--junit",
            "junit.xml",
        ])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())
        .run();
    r.code(1);
    // The annotation points at the line of the plan that expects the denial.
    let plan = std::fs::read_to_string(p.path("plans/quickstart/plan.json")).unwrap();
    let line = plan
        .lines()
        .position(|l| l.contains("\"read-etc-hostname\": \"deny\""))
        .unwrap()
        + 1;
    let ann = r
        .stdout
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        ann.starts_with(&format!(
            "::error file=plans/quickstart/plan.json,line={line},col="
        )) && ann.contains("title=system-ro%3Aread-etc-hostname expected-deny-observed-allow::"),
        "{ann}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("# nexusmon run") && md.contains("## Governance"),
        "{md}"
    );
    assert!(md.contains("system-ro:read-etc-hostname"));
    assert!(p.path("junit.xml").is_file());
    let first = latest_bundle(p.root());

    // Only the failed scenario runs again.
    let r = p.nx(&[
        "run",
        "--plan",
        "plans/quickstart/plan.json",
        "--rerun-failed",
        "out",
    ]);
    r.code(1);
    let m = read_json(&latest_bundle(p.root()).join("run_manifest.json"));
    assert_eq!(
        m["selected"],
        serde_json::json!(["system-ro:read-etc-hostname"])
    );
    // A clean run has nothing to rerun (exit 6); a bundle of another plan is refused.
    let clean = Project::shipped();
    clean.run("quickstart", &[]).code(0);
    clean
        .nx(&[
            "run",
            "--plan",
            "plans/quickstart/plan.json",
            "--rerun-failed",
            "out",
        ])
        .code(6);
    let other = p.nx(&[
        "run",
        "--plan",
        "plans/net-egress/plan.json",
        "--rerun-failed",
        first.to_str().unwrap(),
    ]);
    other.code(2);
    assert!(
        other.stderr.contains("not of `net-egress`"),
        "{}",
        other.stderr
    );
}

#[test]
fn large_runs_show_failures_only_unless_show_all_with_colour_and_durations() {
    let p = Project::shipped();
    let r = p.run("fs-confinement", &[]);
    r.code(0);
    assert!(
        r.stderr
            .contains("(66 matching scenario(s) not shown; --show all lists every row)"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("scenario  "), "{}", r.stderr);
    let r = p.run("quickstart", &["--show", "all", "-v", "--color", "always"]);
    r.code(0);
    let header = r
        .stderr
        .lines()
        .find(|l| l.contains("scenario") && l.contains("expected"))
        .unwrap();
    assert!(
        header.starts_with("\x1b[1m") && header.contains("time"),
        "{header:?}"
    );
    assert!(
        r.stderr.contains(" ms") || r.stderr.contains(" µs"),
        "{}",
        r.stderr
    );
    let r = p.run("quickstart", &["--show", "failures"]);
    assert!(
        r.stderr.contains("(10 matching scenario(s) not shown"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_out_root_that_cannot_be_created_is_exit_2_naming_it_and_the_default_is_the_projects() {
    let p = Project::shipped();
    std::fs::write(p.path("afile"), "x").unwrap();
    let r = p.nx(&[
        "run",
        "--plan",
        "plans/quickstart/plan.json",
        "--out",
        "afile/out",
    ]);
    r.code(2);
    assert!(
        r.stderr.contains("afile/out: cannot create the out root")
            && r.stderr.contains("Not a directory"),
        "{}",
        r.stderr
    );
    // From a directory outside any project, the plan's project gets the bundle.
    let elsewhere = tempfile::tempdir().unwrap();
    let plan = p.path("plans/quickstart/plan.json");
    run_in(elsewhere.path(), &["run", "--plan", plan.to_str().unwrap()]).code(0);
    assert!(p.path("out/LATEST").is_file());
    assert!(!elsewhere.path().join("out").exists());
}

/// Debug-looking text: what `{:?}` of a Rust value prints.
const DEBUG_MARKS: [&str; 6] = ["BitFlags", "Some(", "Ok(", "Err(", "0b1", "0b0"];

#[test]
fn generated_profiles_the_kernel_cannot_enforce_never_print_a_rust_debug_value() {
    let p = Project::shipped();
    let mut seed: u64 = 0x5eed_1234_abcd_0042;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let words = [
        "read",
        "exec",
        "write",
        "create",
        "remove",
        "rename",
        "ioctl-dev",
    ];
    let mut profiles = serde_json::Map::new();
    let mut scenarios = serde_json::Map::new();
    for i in 0..8 {
        let abi = 7 + next(4);
        let mut access: Vec<&str> = words.iter().copied().filter(|_| next(2) == 0).collect();
        if access.is_empty() {
            access.push("read");
        }
        if abi >= 9 && next(2) == 0 {
            access.push("unix-connect");
        }
        let mut landlock = serde_json::json!({
            "compat": if next(3) == 0 { "best-effort" } else { "hard" },
            "abi": abi,
            "fs": {"handle": "all", "allow": [{"path": "/usr", "access": access}]},
        });
        if abi >= 10 && next(2) == 0 {
            landlock["net"] = serde_json::json!({"udp_connect": [53]});
        } else if next(2) == 0 {
            landlock["net"] = serde_json::json!({"tcp_connect": [443]});
        }
        let id = format!("gen-{i}");
        profiles.insert(id.clone(), serde_json::json!({"landlock": landlock}));
        scenarios.insert(id, serde_json::json!({"read-etc-hostname": "deny"}));
    }
    let reg = p.path("registry/linux-core/profiles.json");
    let mut v = read_json(&reg);
    for (k, x) in &profiles {
        v["profiles"][k] = x.clone();
    }
    std::fs::write(&reg, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let plan = serde_json::json!({
        "schema_version": 1,
        "plan_id": "gen",
        "kind": "experiment",
        "registry_id": "linux-core",
        "profiles": profiles.keys().collect::<Vec<_>>(),
        "scenarios": scenarios,
    });
    std::fs::create_dir_all(p.path("plans/gen")).unwrap();
    std::fs::write(p.path("plans/gen/plan.json"), plan.to_string()).unwrap();
    let r = p.nx(&[
        "run",
        "--plan",
        "plans/gen/plan.json",
        "--show",
        "all",
        "-v",
    ]);
    assert!(r.status != 2 && r.status != 3, "{}", r.stderr);
    let mut texts = vec![r.stdout, r.stderr];
    let b = latest_bundle(p.root());
    for f in [
        "apply_preflight.json",
        "summary.md",
        "runtime_results.jsonl",
    ] {
        texts.push(std::fs::read_to_string(b.join(f)).unwrap());
    }
    p.nx(&["report", "--bundle", "out", "--out", "r.html"]);
    texts.push(std::fs::read_to_string(p.path("r.html")).unwrap());
    for id in profiles.keys() {
        texts.push(p.nx(&["describe-profile", id]).stdout);
    }
    for t in &texts {
        for m in DEBUG_MARKS {
            assert!(!t.contains(m), "`{m}` in output:\n{t}");
        }
    }
    // The case the issue names: an ABI-9 profile's unknown right is named in words.
    assert!(
        texts
            .iter()
            .any(|t| t.contains("resolve-unix") || t.contains("connect-send-udp")),
        "no generated profile reached the kernel's refusal"
    );
}
