//! Runs that do not end on their own: SIGINT at random moments of a 66-scenario run seals
//! an `interrupted` bundle that validates, ends the `--json` stream with `run-end` and exits
//! 130; a second signal aborts at once and the next run says what it cleaned; a runner
//! killed with SIGKILL leaves nothing running once the next run has started.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Project, nexusmon, read_json};

/// `run --json` of `plan` in `p`, started (stdout piped).
fn start(p: &Project, plan: &str, extra: &[&str]) -> Child {
    nexusmon(p.root())
        .args(["run", "--plan", plan, "--out", "out", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), sig);
    }
}

/// Read events until `after` observation events were seen (the first event is run-start),
/// then send `sig` (`twice`: two at once); return every event and the exit code.
fn interrupt_after(
    mut child: Child,
    after: usize,
    sig: i32,
    twice: bool,
) -> (Vec<Value>, i32, String) {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut events = Vec::new();
    let mut seen = 0;
    let mut sent = false;
    for line in lines.by_ref() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["type"] == "observation" && v["lane"] != "oracle" {
            seen += 1;
        }
        let start = v["type"] == "run-start";
        events.push(v);
        if !sent && (seen >= after && (after > 0 || start)) {
            signal(&child, sig);
            if twice {
                signal(&child, sig);
            }
            sent = true;
        }
    }
    assert!(sent, "the run ended before the signal was sent");
    let out = child.wait_with_output().unwrap();
    (
        events,
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A small seeded generator (xorshift), so the random moments are reproducible.
fn moments(seed: u64, n: usize, max: usize) -> Vec<usize> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            usize::try_from(x % max as u64).unwrap()
        })
        .collect()
}

#[test]
fn sigint_at_ten_random_moments_seals_an_interrupted_bundle_that_validates() {
    let p = Project::shipped();
    let plan = "plans/fs-confinement/plan.json";
    // 66 scenarios × 2 executing lanes = 132 observations; stop in the first half so the
    // signal always lands while children are still to run (with the last quarter left,
    // children now fast enough all ended before the signal arrived, under load).
    let mut own_runs = Vec::new();
    for (i, after) in moments(0x5eed_1e55, 10, 66).into_iter().enumerate() {
        let (events, code, stderr) =
            interrupt_after(start(&p, plan, &[]), after, libc::SIGINT, false);
        assert_eq!(code, 130, "moment {i} (after {after}): {stderr}");
        let end = events.last().unwrap();
        assert_eq!(end["type"], "run-end", "moment {i}: {end}");
        assert_eq!(end["status"], "interrupted", "{end}");
        assert_eq!(end["exit_code"], 130, "{end}");
        assert!(
            end["reason"]
                .as_str()
                .unwrap()
                .starts_with("interrupted by SIGINT"),
            "{end}"
        );
        assert!(
            stderr.contains("result: interrupted — interrupted by SIGINT"),
            "{stderr}"
        );
        let bundle = Path::new(end["bundle"].as_str().unwrap()).to_path_buf();
        own_runs.push(bundle.file_name().unwrap().to_string_lossy().into_owned());
        p.nx(&["validate-bundle", "--bundle", bundle.to_str().unwrap()])
            .code(0);
        let status = read_json(&bundle.join("run_status.json"));
        assert_eq!(status["status"], "interrupted");
        let index = read_json(&bundle.join("artifact_index.json"));
        assert_eq!(index["status"], "interrupted");
        let summary = read_json(&bundle.join("summary.json"));
        assert_eq!(summary["status"], "interrupted");
        assert_eq!(summary["exit_code"], 130);
        // Every scenario has a row; those not observed are skipped, never mismatches.
        let runtime = crate::util::results(&bundle, "runtime_results.jsonl");
        let obs = runtime.as_array().unwrap();
        assert_eq!(obs.len(), 66);
        let skipped = obs.iter().filter(|o| o["outcome"] == "skipped").count();
        assert!(skipped > 0, "moment {i}: nothing was interrupted");
        for o in obs.iter().filter(|o| o["outcome"] == "skipped") {
            assert!(
                o["detail"]
                    .as_str()
                    .unwrap()
                    .contains("interrupted (SIGINT)"),
                "{o}"
            );
        }
        // Never promotable.
        let pk = format!("pk{i}.json");
        p.emit(&bundle, &pk, &[]).code(0);
        let reasons = p.json(&pk)["promotability"]["reasons"].clone();
        assert!(
            reasons
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "bundle-interrupted"),
            "{reasons}"
        );
    }
    // Nothing was left behind: the next run warns about nothing.
    let r = p.nx(&[
        "run",
        "--plan",
        "plans/quickstart/plan.json",
        "--out",
        "out",
    ]);
    r.code(0);
    // Runs on one host share the scratch parent and sweep each other's killed runs: a run
    // another test killed meanwhile (`a_runner_killed_with_sigkill_…` here) may be swept by
    // this one. None of this test's own runs may be, and nothing else may be warned about.
    for line in r.stderr.lines().filter(|l| l.contains("warning:")) {
        assert!(
            line.contains("left by killed run") || line.contains("of killed run"),
            "{}",
            r.stderr
        );
        assert!(
            !own_runs.iter().any(|id| line.contains(id.as_str())),
            "an interrupted run of this test left something: {}",
            r.stderr
        );
    }
    assert_eq!(own_runs.len(), 10);
}

#[test]
fn sigterm_exits_143_and_a_second_signal_aborts_leaving_staging_the_next_run_reports() {
    let p = Project::shipped();
    let plan = "plans/fs-confinement/plan.json";
    let (events, code, _) = interrupt_after(start(&p, plan, &[]), 20, libc::SIGTERM, false);
    assert_eq!(code, 143);
    assert_eq!(events.last().unwrap()["status"], "interrupted");

    // `status --clean` removes what an aborted run left, and says so.
    let left = abort_twice(&p, plan);
    let r = p.nx(&["status", "--clean", "--out", "out"]);
    r.code(0);
    assert!(
        r.stderr.contains(&format!(
            "clean: removed what crashed or aborted runs left behind: .staging/{left}"
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("clean: released a stale out-root lock"),
        "{}",
        r.stderr
    );
    assert!(!p.path("out/.staging").join(&left).exists());

    // Aborted again: the next run prints what it found and cleaned.
    let left = abort_twice(&p, plan);
    let left = p.path("out/.staging").join(left);
    p.nx(&["validate-bundle", "--bundle", left.to_str().unwrap()])
        .code(1);
    let r = p.nx(&[
        "run",
        "--plan",
        "plans/quickstart/plan.json",
        "--out",
        "out",
    ]);
    r.code(0);
    assert!(
        r.stderr
            .contains("warning: took over a stale out-root lock"),
        "{}",
        r.stderr
    );
    let name = left.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        r.stderr.contains(&format!(
            "warning: removed what crashed or aborted runs left behind: .staging/{name}"
        )),
        "{}",
        r.stderr
    );
    assert!(!left.exists());
    let manifest = read_json(&crate::util::latest_bundle(p.root()).join("run_manifest.json"));
    let notes = manifest["housekeeping"].to_string();
    assert!(notes.contains("stale out-root lock"), "{notes}");
    assert!(notes.contains(&name), "{notes}");
}

/// Run `plan` and send it two SIGINTs: it aborts at once, with no run-end, leaving its
/// bundle unsealed in staging. Returns the staging directory's name.
fn abort_twice(p: &Project, plan: &str) -> String {
    // Standard signals sent back to back merge into one, so the second must come after
    // the first was handled, while the run is still busy: its stdout pipe is made one
    // page small and not read, so the run blocks writing events once the bundle is staged.
    let mut child = start(p, plan, &[]);
    let stdout = child.stdout.take().unwrap();
    // SAFETY: fcntl on our end of the pipe.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 4096);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(p.path("out/.staging")).map_or(0, |d| d.flatten().count()) == 0 {
        assert!(Instant::now() < deadline, "the run never staged its bundle");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, libc::SIGINT);
    let events: Vec<Value> = BufReader::new(stdout)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    assert_eq!(code, 130);
    assert!(events.iter().all(|e| e["type"] != "run-end"), "{events:?}");
    let staging: Vec<_> = std::fs::read_dir(p.path("out/.staging"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(staging.len(), 1, "{staging:?}");
    let left = p.path("out/.staging").join(&staging[0]);
    assert!(!left.join("artifact_index.json").exists());
    assert_eq!(
        read_json(&left.join("run_status.json"))["status"],
        "in_progress"
    );
    staging[0].clone()
}

/// Live processes whose command line contains `needle`.
fn alive(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')));
        if cmd.contains(needle) && !zombie {
            out.push(format!("{name}: {cmd}"));
        }
    }
    out
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

#[test]
fn a_runner_killed_with_sigkill_leaves_nothing_running_once_the_next_run_starts() {
    let p = Project::empty();
    let mark = p.path("grandchild.log");
    // A unique word in every command line of the killed run's processes.
    let tag = format!("kr{}", std::process::id());
    let plan = serde_json::json!({
        "schema_version": 1,
        "plan_id": "killed-runner",
        "kind": "experiment",
        "registry_id": "kr",
        "profiles": ["plain"],
        "variables": {"MARK": mark.to_str().unwrap(), "TAG": tag},
        "scenarios": {"plain": {"sleeper": "allow", "setsid-writer": "allow", "fast": "allow"}}
    });
    let probes = serde_json::json!({
        "schema_version": 1,
        "registry_id": "kr",
        "probes": {
            "sleeper": {
                "operation": "exec", "driver": "exec",
                "argv": ["/bin/sh", "-c", "sleep 60 # ${TAG}"], "timeout_ms": 60000
            },
            "setsid-writer": {
                "operation": "exec", "driver": "exec",
                "argv": ["/bin/sh", "-c",
                    "setsid sh -c 'while :; do echo x >> \"$0\"; sleep 0.5; done # ${TAG}' ${MARK} </dev/null >/dev/null 2>&1 & exec sleep 60 # ${TAG}"],
                "timeout_ms": 60000
            },
            "fast": {"operation": "exec", "driver": "exec", "argv": ["/bin/true"]}
        }
    });
    let profiles = serde_json::json!({
        "schema_version": 1,
        "registry_id": "kr",
        "profiles": {"plain": {"description": "no Landlock"}}
    });
    for (rel, v) in [
        ("plans/killed-runner/plan.json", plan),
        ("registry/kr/probes.json", probes),
        ("registry/kr/profiles.json", profiles),
    ] {
        let f = p.path(rel);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
    let mut runner = nexusmon(p.root())
        .args([
            "run",
            "--plan",
            "plans/killed-runner/plan.json",
            "--out",
            "out",
            "--jobs",
            "4",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the setsid grandchild writes, in both lanes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while size(&mark) < 8 {
        assert!(Instant::now() < deadline, "the grandchild never wrote");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(&tag).is_empty());
    signal(&runner, libc::SIGKILL);
    runner.wait().unwrap();
    // The probes die with the runner (parent-death signal); the setsid grandchildren do
    // not: the kernel does not tell them.
    std::thread::sleep(Duration::from_millis(300));
    let survivors = alive(&tag);
    assert!(
        survivors.iter().all(|s| !s.contains("sleep 60")),
        "a probe outlived its runner: {survivors:?}"
    );

    let killed_run = std::fs::read_dir(p.path("out/.staging"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .unwrap();

    // The next run (any plan, same host) kills what is left and says so.
    let r = p.nx(&[
        "run",
        "--plan",
        "plans/killed-runner/plan.json",
        "--out",
        "out",
        "--only-scenario",
        "plain:fast",
    ]);
    r.code(0);
    assert!(alive(&tag).is_empty(), "{:?}", alive(&tag));
    let before = size(&mark);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(size(&mark), before, "the file still grows");
    // Any run on this host sweeps the stale cgroups of killed runs: another test's run may
    // have been first. Whichever run it was said so; if it was this one, it is here.
    let said = format!("left by killed run {killed_run}");
    if r.stderr.contains(&said) {
        assert!(r.stderr.contains("warning: killed"), "{}", r.stderr);
        let manifest = read_json(&crate::util::latest_bundle(p.root()).join("run_manifest.json"));
        assert!(
            manifest["housekeeping"].to_string().contains(&said),
            "{manifest}"
        );
    } else {
        let pids = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        assert!(
            !pids.contains("pids") || !cgroup_exists(&killed_run),
            "the killed run's cgroups are still there and this run did not say it swept them: {}",
            r.stderr
        );
    }
}

/// Whether the pids cgroup directory of run `run_id` still exists.
fn cgroup_exists(run_id: &str) -> bool {
    ["/sys/fs/cgroup/pids/nexusmon", "/sys/fs/cgroup/nexusmon"]
        .iter()
        .any(|r| Path::new(r).join(run_id).exists())
}
