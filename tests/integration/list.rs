//! `list-plans`, `list-registries`, `list-probes`, `list-profiles`, `describe-probe`,
//! `describe-profile` on the shipped data and on small projects.

use serde_json::Value;

use crate::util::{Project, Ran, Test};

/// Run the binary in a temp copy of the shipped examples (never the checkout itself, whose
/// `plans/` may hold a user's own plans).
fn in_repo<I, S>(args: I) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let p = Project::shipped();
    Test::new().cwd(p.root()).args(args).run()
}

fn json(r: &Ran) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{}", r.stdout))
}

#[test]
fn list_plans_shows_every_shipped_plan_sorted() {
    let r = in_repo(["list-plans"]);
    r.code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("PLAN"), "{}", r.stdout);
    for h in ["KIND", "REGISTRY", "PROFILES", "SCENARIOS", "PATH"] {
        assert!(lines[0].contains(h));
    }
    assert!(lines[1].starts_with("fs-confinement  experiment  linux-core"));
    assert!(lines[2].starts_with("mission-demo    mission     missions"));
    assert!(lines[3].starts_with("net-egress"));
    assert!(lines[4].starts_with("quickstart"));
    assert!(lines[4].ends_with("plans/quickstart/plan.json"));
    assert!(lines[5].starts_with("worker-demo     mission     workers"));
    // Columns are aligned: every PATH starts at the same column.
    let col = lines[0].find("PATH").unwrap();
    for l in &lines[1..] {
        assert_eq!(&l[col..col + 6], "plans/", "{l}");
    }
    let v = json(&in_repo(["--json", "list-plans"]));
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[3]["plan_id"], "quickstart");
    assert_eq!(rows[3]["profiles"], 2);
    assert_eq!(rows[3]["scenarios"], 10);
    assert_eq!(rows[3]["path"], "plans/quickstart/plan.json");
    assert_eq!(rows[3]["error"], Value::Null);
}

#[test]
fn list_plans_marks_a_broken_plan_instead_of_failing() {
    let t = Test::new()
        .write("plans/good/plan.json", "{\"schema_version\": 1, \"plan_id\": \"good\", \"kind\": \"experiment\", \"registry_id\": \"r\", \"profiles\": [\"p\"], \"scenarios\": {\"p\": {\"x\": \"deny\"}}}")
        .write("plans/bad/plan.json", "{\"schema_version\": 1, \"plan_id\": \"bad\",");
    let r = t.args(["list-plans"]).run();
    r.code(0);
    assert!(
        r.stdout
            .contains("-     invalid     -         -         -          plans/bad/plan.json"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("1 plan(s) do not load; `nexusmon plan-lint` lists every problem")
    );
}

#[test]
fn list_registries_counts_entries() {
    let r = in_repo(["list-registries"]);
    r.code(0);
    assert!(r.stdout.starts_with("REGISTRY"));
    assert!(
        r.stdout
            .contains("linux-core  40      10        registry/linux-core"),
        "{}",
        r.stdout
    );
    let v = json(&in_repo(["--json", "list-registries"]));
    assert_eq!(v[0]["registry_id"], "linux-core");
    assert_eq!(v[0]["probes"], 40);
    assert_eq!(v[0]["profiles"], 10);
}

#[test]
fn list_probes_and_profiles() {
    let r = in_repo(["list-probes"]);
    r.code(0);
    let ids: Vec<&str> = r
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
    assert_eq!(ids.len(), 40);
    assert!(r.stdout.contains("rename-across-ws"));
    assert!(
        r.stdout
            .contains("${SCRATCH}/ws/from/a.txt -> ${SCRATCH}/ws/to/a.txt")
    );
    let v = json(&in_repo([
        "--json",
        "list-probes",
        "--registry",
        "linux-core",
    ]));
    assert_eq!(v.as_array().unwrap().len(), 40);
    assert_eq!(v[0]["probe"]["operation"], "unix-abstract-connect");

    let r = in_repo(["list-profiles"]);
    r.code(0);
    assert!(r.stdout.starts_with("PROFILE"));
    assert!(
        r.stdout
            .contains("net-https-only      hard    4    -              connect[443] bind[]"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("cpu=2s as=512MiB nofile=64"));
    let v = json(&in_repo(["--json", "list-profiles"]));
    assert_eq!(v.as_array().unwrap().len(), 10);
}

#[test]
fn describe_shows_everything_and_who_uses_it() {
    let r = in_repo(["describe-probe", "read-etc-hostname"]);
    r.code(0);
    assert!(r.stdout.contains("operation  file-read"));
    assert!(r.stdout.contains("notes      Reads a host file"));
    assert!(r.stdout.contains("used by    fs-confinement (plans/fs-confinement/plan.json)\n           quickstart (plans/quickstart/plan.json)"), "{}", r.stdout);
    let v = json(&in_repo(["--json", "describe-probe", "exec-cat-hostname"]));
    assert_eq!(v["probe"]["argv"][0], "/usr/bin/cat");
    assert_eq!(v["used_by"][0]["plan_id"], "fs-confinement");

    let r = in_repo(["describe-profile", "workspace-confined"]);
    r.code(0);
    assert!(
        r.stdout
            .contains("${SCRATCH}/ws: read, write, create, remove, rename")
    );
    assert!(r.stdout.contains("missing paths  skip"));
    let v = json(&in_repo(["--json", "describe-profile", "system-ro"]));
    let users: Vec<&str> = v["used_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["plan_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["fs-confinement", "quickstart"]);
}

#[test]
fn describe_profile_shows_what_it_compiles_to_on_this_kernel() {
    let r = in_repo(["describe-profile", "system-ro"]);
    r.code(0);
    let compiled = r
        .stdout
        .split("compiled for this kernel and runner (clean channel):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", r.stdout));
    // The ruleset as the kernel gets it, every right with what enforces it, the child.
    assert!(compiled.contains("ruleset "), "{compiled}");
    assert!(
        compiled.contains("fs write-file: landlock (ABI 1)"),
        "{compiled}"
    );
    assert!(
        compiled.contains("rlimit RLIMIT_CORE: setrlimit"),
        "{compiled}"
    );
    assert!(
        compiled.contains("child capabilities: every capability dropped"),
        "{compiled}"
    );
    assert!(compiled.contains("this kernel drops"), "{compiled}");
    let v = json(&in_repo(["--json", "describe-profile", "system-ro"]));
    let c = &v["compiled"];
    assert!(c["rights"].as_array().unwrap().len() >= 17, "{c:#}");
    assert!(
        c["compiled"]["landlock"]["rules"].as_array().is_some(),
        "{c:#}"
    );

    // A best-effort profile asking for a right this kernel lacks: dropped, and said so.
    let kernel = nexusmon::sandbox::host::landlock_abi().unwrap_or(0);
    let t = Test::new()
        .write(
            "registry/r/probes.json",
            r#"{"schema_version": 1, "registry_id": "r", "probes": {}}"#,
        )
        .write(
            "registry/r/profiles.json",
            r#"{"schema_version": 1, "registry_id": "r", "profiles": {"future": {"landlock": {
                "compat": "best-effort", "abi": 10,
                "fs": {"handle": ["read", "unix-connect"], "allow": [{"path": "/usr", "access": ["read"]}]},
                "net": {"udp_connect": [53]}}}}}"#,
        )
        .args(["describe-profile", "future"]);
    let r = t.run();
    r.code(0);
    if kernel < 9 {
        assert!(
            r.stdout
                .contains("fs resolve-unix: dropped: needs Landlock ABI 9"),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("dropped "), "{}", r.stdout);
    }
    if kernel < 10 {
        assert!(
            r.stdout
                .contains("net connect-send-udp: dropped: needs Landlock ABI 10"),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn unknown_ids_are_usage_errors_with_suggestions() {
    let r = in_repo(["describe-probe", "read-etc-hostnam"]);
    r.code(2);
    assert!(
        r.stderr
            .contains("probe `read-etc-hostnam` is not defined in registry `linux-core`")
    );
    assert!(
        r.stderr.contains("did you mean `read-etc-hostname`?"),
        "{}",
        r.stderr
    );
    let r = in_repo(["describe-profile", "sytem-ro"]);
    r.code(2);
    assert!(
        r.stderr.contains("did you mean `system-ro`?"),
        "{}",
        r.stderr
    );
    let r = in_repo(["list-probes", "--registry", "linux-cor"]);
    r.code(2);
    assert!(
        r.stderr.contains("did you mean `linux-core`?"),
        "{}",
        r.stderr
    );
    // With --json the error is also an object on stdout.
    let r = in_repo(["--json", "describe-probe", "nope"]);
    r.code(2);
    assert_eq!(json(&r)["error"]["exit_code"], 2);
}

#[test]
fn several_registries_need_a_choice_unless_one_is_linux_core() {
    let reg = |id: &str| {
        (
            format!("{{\"schema_version\": 1, \"registry_id\": \"{id}\", \"probes\": {{}}}}"),
            format!("{{\"schema_version\": 1, \"registry_id\": \"{id}\", \"profiles\": {{}}}}"),
        )
    };
    let (a1, a2) = reg("alpha");
    let (b1, b2) = reg("beta");
    let t = Test::new()
        .write("registry/alpha/probes.json", &a1)
        .write("registry/alpha/profiles.json", &a2)
        .write("registry/beta/probes.json", &b1)
        .write("registry/beta/profiles.json", &b2);
    let r = t.args(["list-probes"]).run();
    r.code(2);
    assert!(
        r.stderr
            .contains("several registries; say which with --registry"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("registries: alpha, beta"));
}
