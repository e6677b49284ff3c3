//! Who a clean-channel child is and what it can see, on this kernel: every capability
//! dropped unless the profile keeps it, the profile's identity, its own PID namespace (pid
//! 2 under a placeholder init, the reason recorded) with its own `/proc`, ordinary signal
//! semantics, the runner's environment out of reach, declared
//! read-only inputs kept read-only and the baseline's host read-only, and leaks found
//! without the child's cooperation, run after run. Fixtures: `tests/fixtures/run/plans/
//! isolation` and `leaks`.

#![allow(clippy::many_single_char_names)] // t(est), r(esult), b(undle), o(bservation)

use serde_json::Value;

use crate::run::{bundle, obs, read, run_plan};
use crate::run_children::survivors;
use crate::util::Test;

/// The value of `key:` in a `/proc/<pid>/status` dump.
fn status_field<'a>(dump: &'a str, key: &str) -> &'a str {
    dump.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {dump}"))
        .trim()
}

fn log(b: &std::path::Path, o: &Value, stream: &str) -> String {
    let rel = o[stream]["log"]
        .as_str()
        .unwrap_or_else(|| panic!("no {stream} log: {o:#}"));
    std::fs::read_to_string(b.join(rel)).unwrap()
}

fn runner_pid(b: &std::path::Path) -> String {
    read(b, "run_manifest.json")["variables"]["RUNNER_PID"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_exec_probe_has_cap_eff_0_and_its_own_pid_namespace_with_the_reason_it_is_pid_2() {
    let (t, r) = run_plan(
        Test::new(),
        "isolation",
        &[
            "--only-scenario",
            "proc-read:self-status",
            "--only-scenario",
            "as-nobody:self-status",
        ],
    );
    r.code(0);
    let b = bundle(&t);
    for file in ["runtime_results.jsonl", "baseline_results.jsonl"] {
        // Root, every capability dropped from all five sets, pid 1 of its namespace.
        let o = obs(&b, file, "proc-read:self-status");
        assert_eq!(o["outcome"], "allow", "{o:#}");
        let out = log(&b, &o, "stdout");
        for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(status_field(&out, set), "0000000000000000", "{set}\n{out}");
        }
        assert_eq!(status_field(&out, "Uid:"), "0\t0\t0\t0");
        // Pid 2 or above under the placeholder init (its worker's children share the
        // namespace, one at a time); its /proc shows the two of them and nothing of the
        // host or of another child (`grep`, the shell's child, was the next pid and has
        // exited).
        let me: u32 = out
            .lines()
            .find_map(|l| l.strip_prefix("pid "))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{out}"));
        assert!(me >= 2, "{out}");
        assert!(
            out.contains(&format!("procs /proc/1 /proc/{me}\n")),
            "{out}"
        );
        assert!(out.contains("init nexusmon-init\n"), "{out}");
        assert_eq!(status_field(&out, "NSpid:"), (me + 1).to_string(), "{out}");
        assert_eq!(o["isolation"]["pid_namespace"], true, "{o:#}");
        // The profile's identity, keeping the one capability it names, and its scratch
        // directory given to it (the probe wrote there).
        let o = obs(&b, file, "as-nobody:self-status");
        assert_eq!(o["outcome"], "allow", "{o:#}");
        let out = log(&b, &o, "stdout");
        assert_eq!(status_field(&out, "Uid:"), "65534\t65534\t65534\t65534");
        assert_eq!(status_field(&out, "Gid:"), "65534\t65534\t65534\t65534");
        for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(status_field(&out, set), "0000000000000400", "{set}\n{out}");
        }
        assert_eq!(o["isolation"]["capabilities"][0], "CAP_NET_BIND_SERVICE");
    }
    let lane = |file: &str| obs(&b, file, "proc-read:self-status")["isolation"].clone();
    assert_eq!(
        lane("baseline_results.jsonl")["host_read_only"],
        "mount-namespace"
    );
    assert_eq!(lane("runtime_results.jsonl")["host_read_only"], "none");
    // The preflight helper saw the same about itself, and no runner.
    let pre = read(&b, "apply_preflight.json");
    for p in pre["profiles"].as_array().unwrap() {
        let c = &p["child"];
        assert_eq!(c["applied"], true, "{p:#}");
        assert_eq!(c["pid_namespace"], true, "{p:#}");
        // Why it is not pid 1 is recorded.
        assert!(
            c["namespace_init"]
                .as_str()
                .unwrap()
                .contains("an init ignores every signal"),
            "{p:#}"
        );
        let seen = &p["child_observed"];
        assert_eq!(seen["pid"], 2, "{p:#}");
        assert_eq!(seen["ns_pids"], serde_json::json!([2]), "{p:#}");
        assert_eq!(seen["sees_runner"], false, "{p:#}");
        assert_eq!(seen["runner_environ"], "ENOENT", "{p:#}");
        let want = if p["profile"] == "as-nobody" {
            "0000000000000400"
        } else {
            "0000000000000000"
        };
        for set in ["cap_eff", "cap_prm", "cap_inh", "cap_bnd", "cap_amb"] {
            assert_eq!(seen[set], want, "{set}: {p:#}");
        }
    }
}

#[test]
fn a_child_in_its_pid_namespace_dies_of_the_signal_it_sends_itself() {
    // As pid 1 it would survive `kill -SEGV $$` (an init ignores signals it has no handler
    // for); as pid 2 it dies of it, in both lanes, as it would anywhere. Dying of a signal
    // is an `error` outcome, against the expectation `allow`: exit 1.
    let (t, r) = run_plan(
        Test::new(),
        "isolation",
        &["--only-scenario", "plain:kill-self"],
    );
    r.code(1);
    let b = bundle(&t);
    for file in ["runtime_results.jsonl", "baseline_results.jsonl"] {
        let o = obs(&b, file, "plain:kill-self");
        assert_eq!(o["signal"], "SIGSEGV", "{o:#}");
        assert_eq!(o["isolation"]["pid_namespace"], true, "{o:#}");
    }
}

#[test]
fn the_runners_environment_is_unreadable_from_any_child() {
    let secret = format!("i13a-secret-{}", std::process::id());
    let (t, r) = run_plan(
        Test::new().env("NEXUSMON_TEST_SECRET", &secret),
        "isolation",
        &[
            "--only-scenario",
            "proc-read:runner-environ",
            "--only-scenario",
            "proc-read:runner-environ-outside",
        ],
    );
    // The oracle does not know the child's view of /proc (a mismatch, exit 1); the lanes
    // are what this test is about.
    assert!(r.status == 0 || r.status == 1, "{}", r.stderr);
    let b = bundle(&t);
    let pid = runner_pid(&b);
    for file in ["runtime_results.jsonl", "baseline_results.jsonl"] {
        // In its own PID namespace the runner is not there at all…
        let o = obs(&b, file, "proc-read:runner-environ");
        assert_eq!(o["outcome"], "deny", "{o:#}");
        assert_eq!(o["exit_code"], 1);
        assert_eq!(
            log(&b, &o, "stderr"),
            format!("/bin/cat: /proc/{pid}/environ: No such file or directory\n")
        );
        // …and in the runner's (a signal-send probe), it is non-dumpable: the child has no
        // CAP_SYS_PTRACE.
        let o = obs(&b, file, "proc-read:runner-environ-outside");
        assert_eq!(o["outcome"], "deny", "{o:#}");
        assert_eq!(o["isolation"]["pid_namespace"], false, "{o:#}");
        assert!(
            o["isolation"]["pid_namespace_reason"]
                .as_str()
                .unwrap()
                .contains("signal-send")
        );
        assert_eq!(
            log(&b, &o, "stderr"),
            format!("/bin/cat: /proc/{pid}/environ: Permission denied\n")
        );
    }
    // Nothing of the runner's environment reached the bundle.
    let mut stack = vec![b.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(&secret),
                    "{} holds the runner's secret",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn a_host_path_in_argv_is_refused_by_lint_and_declared_read_only_it_runs_leaving_the_host_unchanged()
 {
    // Undeclared: `run` refuses the plan (NX221) and nothing runs.
    let marker = std::env::temp_dir().join(format!("nexusmon-i13a-touch-{}", std::process::id()));
    let probes = format!(
        r#"{{"schema_version": 1, "registry_id": "r", "probes": {{
            "touch": {{"operation": "exec", "driver": "exec", "argv": ["/usr/bin/touch", "{}"]}}}}}}"#,
        marker.display()
    );
    let t = Test::new()
        .write("registry/r/probes.json", &probes)
        .write(
            "registry/r/profiles.json",
            r#"{"schema_version": 1, "registry_id": "r", "profiles": {"p": {"description": "nothing"}}}"#,
        )
        .write(
            "plans/touch/plan.json",
            r#"{"schema_version": 1, "plan_id": "touch", "kind": "experiment", "registry_id": "r",
                "profiles": ["p"], "scenarios": {"p": {"touch": "allow"}}}"#,
        )
        .args(["run", "--plan", "plans/touch/plan.json"]);
    let r = t.run();
    r.code(2);
    assert!(r.stderr.contains("NX221"), "{}", r.stderr);
    assert!(
        !marker.exists(),
        "the refused plan created {}",
        marker.display()
    );

    // Declared in `reads`: it runs, in both lanes, under a profile that restricts nothing
    // (`plain`) as under one that grants no writes — and the host is unchanged.
    let (t, r) = run_plan(
        Test::new(),
        "isolation",
        &[
            "--only-scenario",
            "plain:touch-tmp",
            "--only-scenario",
            "proc-read:touch-tmp",
        ],
    );
    assert!(r.status == 0 || r.status == 1, "{}", r.stderr);
    let b = bundle(&t);
    let pid = runner_pid(&b);
    let target = std::path::PathBuf::from(format!("/tmp/nexusmon-touch-{pid}"));
    assert!(!target.exists(), "{} was created", target.display());
    for scenario in ["plain:touch-tmp", "proc-read:touch-tmp"] {
        for file in ["runtime_results.jsonl", "baseline_results.jsonl"] {
            let o = obs(&b, file, scenario);
            assert_eq!(o["outcome"], "deny", "{o:#}");
            assert!(
                log(&b, &o, "stderr").contains("Read-only file system"),
                "{o:#}"
            );
        }
        // The baseline keeps the whole host read-only; the scenario lane binds the declared
        // input (here its nearest existing directory: it does not exist) read-only.
        let base = obs(&b, "baseline_results.jsonl", scenario);
        assert_eq!(base["isolation"]["host_read_only"], "mount-namespace");
        let scen = obs(&b, "runtime_results.jsonl", scenario);
        assert_eq!(
            scen["isolation"]["read_only_inputs"][0],
            format!("/tmp (for `/tmp/nexusmon-touch-{pid}`, which does not exist)")
        );
    }
}

/// The leaks of one observation as `(found_by, action)`.
fn leaks(o: &Value) -> Vec<(String, String)> {
    o.get("leaked")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .map(|l| {
                    (
                        l["found_by"].as_str().unwrap().to_string(),
                        l["action"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn leaks_are_found_without_the_childs_cooperation_run_after_run() {
    // Five runs, both lanes: the same record every time (it was one run in two before).
    for round in 0..5 {
        let jobs = if round % 2 == 0 { "1" } else { "2" };
        let (t, r) = run_plan(Test::new(), "leaks", &["--jobs", jobs]);
        assert!(r.status == 0 || r.status == 1, "{}", r.stderr);
        let b = bundle(&t);
        let pid = runner_pid(&b);
        for file in ["runtime_results.jsonl", "baseline_results.jsonl"] {
            // Out of its pids cgroup (the scenario lane) or not (the baseline's host is
            // read-only), its grandchild is found in its PID namespace.
            for scenario in ["sixteen-processes:escape-cgroup", "plain:escape-cgroup"] {
                let o = obs(&b, file, scenario);
                assert_eq!(
                    leaks(&o),
                    vec![(
                        "pid-namespace".to_string(),
                        "killed-with-namespace".to_string()
                    )],
                    "round {round} {file}: {o:#}"
                );
            }
            // A timeout: the group the runner killed is not a leak; the grandchild that
            // left the group with setsid is.
            let o = obs(&b, file, "plain:timeout-escapee");
            assert_eq!(o["outcome"], "timeout", "{o:#}");
            assert_eq!(
                leaks(&o),
                vec![(
                    "pid-namespace".to_string(),
                    "killed-with-namespace".to_string()
                )],
                "round {round} {file}: {o:#}"
            );
            // Without a PID namespace (a signal-send probe): the worker's cgroup finds it
            // where the host is read-only (the baseline); where the probe could leave that
            // cgroup (the scenario lane, no policy), the subreaper does — attributed to the
            // probe while it is the only child running.
            if jobs == "1" {
                let o = obs(&b, file, "plain:escape-outside");
                let by = if file == "baseline_results.jsonl" {
                    "cgroup"
                } else {
                    "subreaper"
                };
                assert_eq!(
                    leaks(&o),
                    vec![(by.to_string(), "sigkill".to_string())],
                    "round {round} {file}: {o:#}"
                );
            }
        }
        for n in 978..=981 {
            let needle = format!("{n}.{pid}");
            assert!(survivors(&needle).is_empty(), "{:?}", survivors(&needle));
        }
        if jobs == "2" {
            let needle = format!("980.{pid}");
            assert!(survivors(&needle).is_empty(), "{:?}", survivors(&needle));
        }
    }
}

/// Copy a fixture tree (files and directories only).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Give `p` and everything beneath it to `uid`.
fn give(p: &std::path::Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            give(&e.path(), uid);
        }
    }
}

#[test]
fn an_unprivileged_runner_records_why_there_is_no_namespace_and_still_protects_the_host() {
    // The runner as nobody, with no capability (the way a CI job without root runs it).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    for sub in ["plans", "registry"] {
        copy_tree(
            &crate::util::repo_root()
                .join("tests/fixtures/run")
                .join(sub),
            &root.join(sub),
        );
    }
    // SAFETY: geteuid cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if as_root {
        give(&root, 65534);
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(crate::util::bin());
        c
    } else {
        std::process::Command::new(crate::util::bin())
    };
    let out = cmd
        .args([
            "run",
            "--plan",
            "plans/isolation/plan.json",
            "--out",
            "out",
            "--only-scenario",
            "proc-read:self-status",
            "--only-scenario",
            "proc-read:runner-environ-outside",
            "--only-scenario",
            "proc-read:touch-tmp",
            "--only-scenario",
            "plain:touch-tmp",
        ])
        .current_dir(&root)
        .env("HOME", &root)
        .env_remove("NEXUSMON_ROOT")
        .env_remove("NEXUSMON_STATE_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `plain` would let the declared input be written and no mount namespace can keep it
    // read-only here: that scenario is refused (exit 5), the rest runs.
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    let latest: Value =
        serde_json::from_slice(&std::fs::read(root.join("out/LATEST")).unwrap()).unwrap();
    let b = root.join("out").join(latest["run_id"].as_str().unwrap());
    let pid = runner_pid(&b);
    let pre = read(&b, "apply_preflight.json");
    let p = pre["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == "proc-read")
        .unwrap()
        .clone();
    assert_eq!(p["child"]["pid_namespace"], false, "{p:#}");
    assert!(
        p["child"]["pid_namespace_reason"]
            .as_str()
            .unwrap()
            .contains("CAP_SYS_ADMIN"),
        "{p:#}"
    );
    assert_eq!(p["child"]["baseline_host_read_only"], "landlock", "{p:#}");
    assert_eq!(p["child_observed"]["sees_runner"], true, "{p:#}");
    assert_eq!(p["child_observed"]["runner_environ"], "EACCES", "{p:#}");
    assert_eq!(p["child_observed"]["cap_eff"], "0000000000000000", "{p:#}");
    for file in ["runtime_results.jsonl", "baseline_results.jsonl"] {
        let o = obs(&b, file, "proc-read:self-status");
        let out = log(&b, &o, "stdout");
        assert_eq!(status_field(&out, "CapEff:"), "0000000000000000", "{out}");
        let o = obs(&b, file, "proc-read:runner-environ-outside");
        assert_eq!(
            log(&b, &o, "stderr"),
            format!("/bin/cat: /proc/{pid}/environ: Permission denied\n")
        );
        let o = obs(&b, file, "proc-read:touch-tmp");
        assert_eq!(o["outcome"], "deny", "{o:#}");
    }
    let o = obs(&b, "baseline_results.jsonl", "proc-read:touch-tmp");
    assert_eq!(o["isolation"]["host_read_only"], "landlock", "{o:#}");
    let o = obs(&b, "runtime_results.jsonl", "plain:touch-tmp");
    assert_eq!(o["outcome"], "apply-failed", "{o:#}");
    assert!(
        o["detail"].as_str().unwrap().contains("read-only input"),
        "{o:#}"
    );
    let target = std::path::PathBuf::from(format!("/tmp/nexusmon-touch-{pid}"));
    assert!(!target.exists(), "{} was created", target.display());
}

/// Generated profiles (seeded sets of kept capabilities, some with an identity, several
/// sharing a set), each running an exec probe that prints its `/proc/self/status`, on two
/// workers, both lanes: every child holds exactly its profile's capabilities in its
/// bounding, effective, permitted and inheritable sets (and ambient, when it is not root),
/// and has its identity. Exec children are cloned by a spawner thread per bounding set
/// (`exec::spawn::with_bounding`), which dropped the others from its own set once; a
/// child given a spawner of another set, or the worker's full set, fails here.
#[test]
fn generated_profiles_give_each_exec_child_exactly_its_capabilities() {
    use serde_json::json;
    let seed = std::env::var("NEXUSMON_CAPS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xb0_0dd1_u64);
    let mut rng = crate::util::Rng(seed);
    // (registry word, capability number)
    let pool = [
        ("chown", 0),
        ("dac-override", 1),
        ("kill", 5),
        ("net-bind-service", 10),
        ("net-raw", 13),
        ("sys-ptrace", 19),
        ("sys-nice", 23),
        ("audit-write", 29),
        ("checkpoint-restore", 40),
    ];
    let mut sets: Vec<Vec<(&str, u32)>> = (0..4).map(|_| rng.subset(&pool, 30)).collect();
    sets.push(Vec::new());
    let mut profiles = serde_json::Map::new();
    let mut want = std::collections::BTreeMap::new();
    for i in 0..9 {
        let kept = rng.pick(&sets).clone();
        let mut p = json!({"description": "generated",
                           "capabilities": kept.iter().map(|(w, _)| *w).collect::<Vec<_>>()});
        let nobody = rng.chance(40);
        if nobody {
            p["identity"] = json!({"uid": 65534, "gid": 65534});
        }
        let mask = kept.iter().fold(0u64, |m, (_, n)| m | (1u64 << n));
        want.insert(format!("g{i}"), (mask, nobody));
        profiles.insert(format!("g{i}"), p);
    }
    let probes = json!({
        "status": {"operation": "exec", "driver": "exec", "timeout_ms": 10000,
                   "argv": ["/bin/cat", "/proc/self/status"]},
        "status-2": {"operation": "exec", "driver": "exec", "timeout_ms": 10000,
                     "argv": ["/bin/cat", "/proc/self/status"]}
    });
    let scenarios: serde_json::Map<String, Value> = want
        .keys()
        .map(|p| (p.clone(), json!({"status": "allow", "status-2": "allow"})))
        .collect();
    let t = Test::new()
        .registry("caps", probes, Value::Object(profiles))
        .write(
            "plans/caps/plan.json",
            &json!({"schema_version": 1, "plan_id": "caps", "kind": "experiment",
                    "registry_id": "caps", "profiles": want.keys().collect::<Vec<_>>(),
                    "scenarios": scenarios})
            .to_string(),
        );
    let out = t.path().join("out").to_string_lossy().into_owned();
    let t = t.args([
        "run",
        "--plan",
        "plans/caps/plan.json",
        "--out",
        &out,
        "--channel",
        "clean",
        "--jobs",
        "2",
    ]);
    t.run().code(0);
    let b = bundle(&t);
    let mut checked = 0;
    for file in ["runtime_results.jsonl", "baseline_results.jsonl"] {
        for o in crate::util::results(&b, file).as_array().unwrap() {
            let sid = o["scenario_id"].as_str().unwrap();
            let (profile, _) = sid.split_once(':').unwrap();
            let (mask, nobody) = want[profile];
            assert_eq!(o["outcome"], "allow", "{file} {sid}: {o:#}");
            let out = log(&b, o, "stdout");
            let hex = format!("{mask:016x}");
            for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
                // Root keeps no ambient set (execve gives it its permitted set anyway).
                let want = if set == "CapAmb:" && !nobody {
                    "0000000000000000"
                } else {
                    &hex
                };
                assert_eq!(status_field(&out, set), want, "{file} {sid} {set}\n{out}");
            }
            let uid = if nobody { "65534" } else { "0" };
            assert_eq!(
                status_field(&out, "Uid:"),
                [uid; 4].join("\t"),
                "{file} {sid}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * 2 * want.len());
}
