//! Runs that do not end on their own: SIGINT at random moments of a 67-scenario run seals
//! an `interrupted` bundle that validates, ends the `--json` stream with `run-end` and exits
//! 130; a second signal aborts at once and the next run says what it cleaned; a runner
//! killed with SIGKILL leaves nothing running once the next run has started.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Project, edit_json, nexusmon, read_json};

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

/// The shipped project with a gate in `fs-confinement`: the `system-ro` scenario
/// `hold-until-interrupted` runs `sleep 600` (in both executing lanes), so the run cannot
/// end before a signal however fast its other children are. The plan then has 67
/// scenarios (66 shipped).
fn gated_fs_confinement() -> Project {
    let p = Project::shipped();
    edit_json(&p.path("registry/linux-core/probes.json"), |v| {
        v["probes"]["hold-until-interrupted"] = serde_json::json!({
            "operation": "exec", "driver": "exec",
            "argv": ["/usr/bin/sleep", "600"], "timeout_ms": 700_000
        });
    });
    edit_json(&p.path("plans/fs-confinement/plan.json"), |v| {
        v["scenarios"]["system-ro"]["hold-until-interrupted"] = "allow".into();
    });
    p
}

#[test]
fn sigint_at_ten_random_moments_seals_an_interrupted_bundle_that_validates() {
    let (p, scenarios) = (gated_fs_confinement(), 67);
    let plan = "plans/fs-confinement/plan.json";
    // Every scenario but the gate runs in two executing lanes: the signal goes after any
    // number of their observations, from none to all, while the gate (its two lanes hold
    // two of the four workers at most) still holds the run open: it is always interrupted.
    let others = 2 * (scenarios - 1);
    for (i, after) in moments(0x5eed_1e55, 10, others + 1).into_iter().enumerate() {
        let (events, code, stderr) = interrupt_after(
            start(&p, plan, &["--jobs", "4"]),
            after,
            libc::SIGINT,
            false,
        );
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
        assert_eq!(obs.len(), scenarios);
        let gate = obs
            .iter()
            .find(|o| {
                o["scenario_id"]
                    .as_str()
                    .unwrap()
                    .ends_with("hold-until-interrupted")
            })
            .unwrap();
        assert_eq!(gate["outcome"], "skipped", "moment {i}: {gate}");
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
    // (This test's runs have a scratch parent of their own: no other test's killed run
    // can be swept, and warned about, here.)
    assert!(!r.stderr.contains("warning:"), "{}", r.stderr);
}

#[test]
fn sigterm_exits_143_and_a_second_signal_aborts_leaving_staging_the_next_run_reports() {
    // (Gated: the run cannot end before the signal, [`gated_fs_confinement`].)
    let p = gated_fs_confinement();
    let plan = "plans/fs-confinement/plan.json";
    let (events, code, _) =
        interrupt_after(start(&p, plan, &["--jobs", "4"]), 20, libc::SIGTERM, false);
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

/// A project with the `killed-runner` plan: a sleeper, a probe that leaves a `setsid`
/// grandchild appending to `mark` (returned) every half second, and a fast one; `tag` is in
/// every command line of their processes.
fn killed_runner_project(tag: &str) -> (Project, PathBuf) {
    let p = Project::empty();
    let mark = p.path("grandchild.log");
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
    (p, mark)
}

/// Run the killed-runner plan (with `extra`), wait until its `setsid` grandchildren write to
/// `mark`, SIGKILL the runner, and check that its probes died with it (the grandchildren
/// do too where they were in a PID namespace of their own). Returns the killed run's id.
fn run_and_kill(p: &Project, mark: &Path, tag: &str, extra: &[&str]) -> String {
    let before = std::fs::read_dir(p.path("out/.staging")).map_or(0, Iterator::count);
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
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the setsid grandchild writes, in both lanes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while size(mark) < 8 {
        assert!(Instant::now() < deadline, "the grandchild never wrote");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(tag).is_empty());
    signal(&runner, libc::SIGKILL);
    runner.wait().unwrap();
    // The probes die with the runner (parent-death signal); the setsid grandchildren do
    // not: the kernel does not tell them.
    std::thread::sleep(Duration::from_millis(300));
    let survivors = alive(tag);
    assert!(
        survivors.iter().all(|s| !s.contains("sleep 60")),
        "a probe outlived its runner: {survivors:?}"
    );
    let staged: Vec<String> = std::fs::read_dir(p.path("out/.staging"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(staged.len(), before + 1, "{staged:?}");
    staged.into_iter().max().unwrap()
}

/// Whether `mark` still grows (over two of the grandchild's writes).
fn still_growing(mark: &Path) -> bool {
    let before = size(mark);
    std::thread::sleep(Duration::from_millis(1500));
    size(mark) != before
}

#[test]
fn a_runner_killed_with_sigkill_leaves_nothing_running_once_the_next_run_starts() {
    // A unique word in every command line of the killed run's processes.
    let tag = format!("kr{}", std::process::id());
    let (p, mark) = killed_runner_project(&tag);
    let killed_run = run_and_kill(&p, &mark, &tag, &[]);

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
    assert!(!still_growing(&mark), "the file still grows");
    // The runs of this test share a scratch parent no other test uses: this run is the one
    // that swept the killed run, and it says so (with the processes it killed, if the
    // grandchildren outlived the runner: not where they had a PID namespace of their own),
    // on stderr and in its manifest; every warning is about the killed run (its scratch
    // and cgroups, its stale lock and staging directory in the out root they share).
    let said = format!(" killed run {killed_run}");
    let warned: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warned.iter().filter(|l| l.contains(&said)).count(),
        1,
        "{}",
        r.stderr
    );
    assert!(
        warned.iter().all(|l| l.contains(&killed_run)),
        "{}",
        r.stderr
    );
    let manifest = read_json(&crate::util::latest_bundle(p.root()).join("run_manifest.json"));
    assert!(
        manifest["housekeeping"].to_string().contains(&said),
        "{manifest}"
    );
    assert!(
        !cgroup_exists(&killed_run),
        "the killed run's cgroups are still there"
    );
}

/// Junk planted in a scratch parent (seeded): entries named like a scratch root that none
/// is (names no run id has, files, a symlink to a directory with a dead owner, a directory
/// another user owns), none of which a sweep may touch, and directories that are
/// indistinguishable from a killed run's scratch root (ours, a valid run id, a dead owner
/// pid), which a sweep must remove. Returns (untouchable paths, run ids to be swept).
fn plant_junk(parent: &Path, outside: &Path, seed: u64) -> (Vec<PathBuf>, Vec<String>) {
    let dead = std::process::Command::new("/bin/true")
        .spawn()
        .and_then(|mut c| {
            let id = c.id();
            c.wait().map(|_| id)
        })
        .unwrap()
        .to_string();
    let mut rng = crate::util::Rng(seed);
    let (mut keep, mut swept) = (Vec::new(), Vec::new());
    let word = |rng: &mut crate::util::Rng| -> String {
        (0..=rng.below(8usize))
            .map(|_| *rng.pick(&['a', 'z', '0', '9', '_', '.', '-', 'Q']))
            .collect()
    };
    for i in 0..(4 + rng.below(8usize)) {
        let kind = rng.below(6u32);
        let bad = *rng.pick(&[" ", "$", "*", ":", "'", "~", "\\"]);
        let id = format!("j{i}{}", word(&mut rng));
        let at = |name: &str| parent.join(format!("nexusmon-{name}"));
        match kind {
            // Not a run id.
            0 => {
                let d = at(&format!("{id}{bad}x"));
                std::fs::create_dir(&d).unwrap();
                std::fs::write(d.join("owner.pid"), &dead).unwrap();
                keep.push(d.join("owner.pid"));
            }
            // A file, not a directory.
            1 => {
                std::fs::write(at(&id), &dead).unwrap();
                keep.push(at(&id));
            }
            // A symlink to a directory with a dead owner.
            2 => {
                let target = outside.join(&id);
                std::fs::create_dir(&target).unwrap();
                std::fs::write(target.join("owner.pid"), &dead).unwrap();
                std::os::unix::fs::symlink(&target, at(&id)).unwrap();
                keep.push(target.join("owner.pid"));
                keep.push(at(&id));
            }
            // Another user's.
            3 => {
                let d = at(&id);
                std::fs::create_dir(&d).unwrap();
                std::fs::write(d.join("owner.pid"), &dead).unwrap();
                std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
                keep.push(d.join("owner.pid"));
            }
            // A live owner (this test).
            4 => {
                let d = at(&id);
                std::fs::create_dir(&d).unwrap();
                std::fs::write(d.join("owner.pid"), std::process::id().to_string()).unwrap();
                keep.push(d.join("owner.pid"));
            }
            // What a killed run leaves: swept.
            _ => {
                let d = at(&id);
                std::fs::create_dir_all(d.join("scenario/p/x.a1")).unwrap();
                std::fs::write(d.join("owner.pid"), &dead).unwrap();
                swept.push(id);
            }
        }
    }
    swept.sort();
    (keep, swept)
}

/// A run killed with SIGKILL is cleaned up by the next run of its own scratch parent, and by
/// no run, nor `status --clean`, of another: its `setsid` leftover goes on running, its
/// scratch root and cgroups stay, until a run with the same `--scratch-parent` kills it and
/// says so. Junk planted in the killed run's parent (generated, [`plant_junk`]) is left
/// alone by that sweep except what is indistinguishable from a killed run's scratch root.
#[test]
fn a_killed_run_is_swept_only_by_the_runs_of_its_own_scratch_parent() {
    // Another nexusmon build on this host (an older one sweeps the cgroups of every killed
    // run it finds) can kill the leftover while this test looks: that shows as a leftover
    // gone that no run of this test said it killed (every run says what it kills), and the
    // scenario is tried again; anything a run of this test did is asserted at once.
    let mut interfered = Vec::new();
    for attempt in 0..3 {
        match killed_run_isolation(attempt) {
            Ok(()) => return,
            Err(why) => interfered.push(why),
        }
    }
    panic!("the leftover was killed by no run of this test, every time: {interfered:?}");
}

/// One try of [`a_killed_run_is_swept_only_by_the_runs_of_its_own_scratch_parent`]; `Err`:
/// the leftover went away and no run of this test did it.
fn killed_run_isolation(attempt: u32) -> Result<(), String> {
    let tag = format!("ks{}a{attempt}", std::process::id());
    let (p, mark) = killed_runner_project(&tag);
    let (mine, other, outside) = (p.path("scratch-a"), p.path("scratch-b"), p.path("outside"));
    for d in [&mine, &other, &outside] {
        std::fs::create_dir(d).unwrap();
    }
    let (mine_s, other_s) = (mine.to_str().unwrap(), other.to_str().unwrap());
    // Whatever happens below, nothing of this test's is left running after it.
    let _sweep = crate::util::SweepOnDrop(mine.clone());
    // The direct channel: no PID namespace ends the setsid grandchildren with the runner,
    // only its cgroups know them.
    let killed = run_and_kill(
        &p,
        &mark,
        &tag,
        &["--scratch-parent", mine_s, "--channel", "direct"],
    );
    let root = mine.join(format!("nexusmon-{killed}"));
    assert!(root.join("owner.pid").is_file(), "{}", root.display());
    if !cgroup_exists(&killed) {
        return Err(format!(
            "{killed}: its cgroups went before any run of this test"
        ));
    }
    assert!(
        !alive(&tag).is_empty(),
        "the setsid grandchildren died with the runner"
    );
    // (Out roots of their own: the killed run's holds its stale lock, which a run would
    // take over with a warning of its own.)
    let fast = |parent: &str, out: &str| {
        p.nx(&[
            "run",
            "--plan",
            "plans/killed-runner/plan.json",
            "--out",
            out,
            "--only-scenario",
            "plain:fast",
            "--scratch-parent",
            parent,
        ])
    };
    // Another parent: an explicit one, then the harness's own (through the environment).
    let r = fast(other_s, "out-b");
    r.code(0);
    assert!(!r.stderr.contains("warning:"), "{}", r.stderr);
    let r = p.nx(&[
        "run",
        "--plan",
        "plans/killed-runner/plan.json",
        "--out",
        "out-h",
        "--only-scenario",
        "plain:fast",
    ]);
    r.code(0);
    assert!(!r.stderr.contains("warning:"), "{}", r.stderr);
    let r = p.nx(&[
        "status",
        "--clean",
        "--out",
        "elsewhere",
        "--scratch-parent",
        other_s,
    ]);
    r.code(0);
    assert!(
        r.stderr.contains("clean: nothing left by killed runs"),
        "{}",
        r.stderr
    );
    assert!(
        root.join("owner.pid").is_file(),
        "another parent's run removed {}",
        root.display()
    );
    // None of those runs said it killed anything (asserted above): the leftover is alive
    // unless something else killed it.
    if alive(&tag).is_empty() || !cgroup_exists(&killed) {
        return Err(format!(
            "{killed}: leftover gone after the other parent's runs"
        ));
    }
    assert!(still_growing(&mark), "the leftover stopped writing");

    // The same parent, with junk planted beside the killed run's scratch root.
    let (keep, mut want) = plant_junk(&mine, &outside, 0x5c4a_7c11 ^ u64::from(std::process::id()));
    want.push(killed.clone());
    want.sort();
    let r = fast(mine_s, "out-a");
    r.code(0);
    if !r.stderr.contains(&format!("left by killed run {killed} "))
        && r.stderr.contains(&format!("of killed run {killed}\n"))
    {
        return Err(format!(
            "{killed}: nothing left to kill by its parent's run: {}",
            r.stderr
        ));
    }
    assert!(alive(&tag).is_empty(), "{:?}", alive(&tag));
    assert!(!still_growing(&mark), "the file still grows");
    assert!(!root.exists());
    assert!(
        !cgroup_exists(&killed),
        "the killed run's cgroups are still there"
    );
    let warned: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warned.len(), want.len(), "{}", r.stderr);
    for id in &want {
        assert!(
            warned
                .iter()
                .any(|l| l.ends_with(&format!("killed run {id}"))
                    || l.contains(&format!("left by killed run {id} "))),
            "{id}: {}",
            r.stderr
        );
        assert!(!mine.join(format!("nexusmon-{id}")).exists(), "{id}");
    }
    assert!(
        warned
            .iter()
            .any(|l| l.starts_with("warning: killed") && l.contains(&killed)),
        "{}",
        r.stderr
    );
    for k in &keep {
        assert!(
            std::fs::symlink_metadata(k).is_ok(),
            "the sweep removed {}: {}",
            k.display(),
            r.stderr
        );
    }
    Ok(())
}

/// Whether the pids cgroup directory of run `run_id` still exists.
fn cgroup_exists(run_id: &str) -> bool {
    ["/sys/fs/cgroup/pids/nexusmon", "/sys/fs/cgroup/nexusmon"]
        .iter()
        .any(|r| Path::new(r).join(run_id).exists())
}
