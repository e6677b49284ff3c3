//! Child control with real processes: timeouts kill the whole process group, descendants
//! that escape with `setsid` are found, killed and reported as leaked, a 1 GiB writer is
//! capped with the runner's memory bounded, and a real fork bomb is contained by a per-child
//! pids cgroup (root ignores RLIMIT_NPROC).

#![allow(clippy::many_single_char_names)] // t(est), r(esult), b(undle), s(cenario), v(erdict)

use serde_json::Value;

use crate::run::{bundle, obs, read, run_plan};
use crate::util::Test;

/// Live processes whose command line contains `needle` (our own test processes only).
pub fn survivors(needle: &str) -> Vec<String> {
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

fn runner_pid(b: &std::path::Path) -> String {
    read(b, "run_manifest.json")["variables"]["RUNNER_PID"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_probe_that_never_ends_is_killed_at_its_timeout_with_its_whole_group() {
    let (t, r) = run_plan(
        Test::new(),
        "child-control",
        &["--only-scenario", "plain:sleep-forever"],
    );
    // A timeout is inconclusive: a mismatch, exit 1.
    r.code(1);
    let b = bundle(&t);
    for file in ["runtime_results.jsonl", "baseline_results.jsonl"] {
        let o = obs(&b, file, "plain:sleep-forever");
        assert_eq!(o["outcome"], "timeout", "{o:#}");
        // Both sleeps are in the probe's group: the runner's group kill is not a leak.
        assert!(o.get("leaked").is_none(), "{o:#}");
        assert_eq!(o["stage"], "timeout");
        assert_eq!(o["timeout"]["ms"], 400);
        assert_eq!(o["timeout"]["source"], "probe");
        assert!(
            o["detail"].as_str().unwrap().contains("400 ms timeout"),
            "{o:#}"
        );
        assert!(o["rusage"]["wall_us"].as_u64().unwrap() < 5_000_000);
    }
    let pid = runner_pid(&b);
    for needle in [format!("987.{pid}"), format!("986.{pid}")] {
        assert!(
            survivors(&needle).is_empty(),
            "survivors: {:?}",
            survivors(&needle)
        );
    }
    let packet = std::fs::read_to_string(b.join("mismatch_packets.jsonl")).unwrap();
    assert!(packet.contains("\"kind\":\"inconclusive\""), "{packet}");
}

#[test]
fn a_setsid_grandchild_is_reported_leaked_and_killed_without_losing_the_probe_output() {
    let (t, r) = run_plan(
        Test::new(),
        "child-control",
        &["--only-scenario", "plain:setsid-grandchild"],
    );
    r.code(0);
    let b = bundle(&t);
    for (file, lane) in [
        ("runtime_results.jsonl", "scenario"),
        ("baseline_results.jsonl", "baseline"),
    ] {
        let o = obs(&b, file, "plain:setsid-grandchild");
        assert_eq!(o["outcome"], "allow", "{o:#}");
        // The probe runs in its own PID namespace: what it leaves behind stays with the
        // namespace's init until the runner has listed it, then ends with the namespace.
        let leaked = o["leaked"].as_array().expect("leaked descendants recorded");
        assert_eq!(leaked.len(), 1, "{o:#}");
        assert_eq!(leaked[0]["found_by"], "pid-namespace");
        assert_eq!(leaked[0]["action"], "killed-with-namespace");
        // The probe's own output is kept.
        let log = b.join(format!("logs/{lane}/plain:setsid-grandchild.stdout"));
        assert_eq!(std::fs::read_to_string(log).unwrap(), "started\n");
    }
    let pid = runner_pid(&b);
    let needle = format!("985.{pid}");
    assert!(
        survivors(&needle).is_empty(),
        "survivors: {:?}",
        survivors(&needle)
    );
    let s = read(&b, "summary.json");
    assert_eq!(s["leaked"].as_array().unwrap().len(), 2, "{s:#}");
    assert!(
        r.stderr.contains("leaked: plain:setsid-grandchild"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_probe_writing_one_gib_is_capped_and_the_truncation_recorded() {
    let (t, r) = run_plan(Test::new(), "gib", &[]);
    r.code(0);
    let b = bundle(&t);
    let o = obs(&b, "runtime_results.jsonl", "plain:gib-writer");
    assert_eq!(o["outcome"], "allow", "{o:#}");
    assert_eq!(o["stdout"]["bytes"], 1u64 << 30);
    assert_eq!(o["stdout"]["kept"], 1u64 << 20);
    assert_eq!(o["stdout"]["truncated"], true);
    let log = b.join(o["stdout"]["log"].as_str().unwrap());
    assert_eq!(std::fs::metadata(log).unwrap().len(), 1 << 20);
    let s = read(&b, "summary.json");
    assert_eq!(s["truncated"].as_array().unwrap().len(), 1);
    // The runner read 1 GiB through a pipe and kept 1 MiB: its own memory stays small.
    let rss = s["runner_max_rss_kib"].as_u64().unwrap();
    assert!(rss < 100 * 1024, "runner peak RSS {rss} KiB");
}

#[test]
fn a_fork_bomb_is_contained_by_the_probes_pids_cgroup() {
    let (t, r) = run_plan(Test::new(), "fork-bomb", &[]);
    let facts_root =
        unsafe_euid_is_root() && std::path::Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists();
    if !facts_root {
        // Without a pids cgroup, root cannot limit processes: a `hard` apply failure.
        r.code(5);
        return;
    }
    r.code(0);
    let b = bundle(&t);
    let o = obs(&b, "runtime_results.jsonl", "sixteen-processes:fork-bomb");
    let p = &o["processes"];
    assert_eq!(p["enforced_by"], "pids-cgroup-v1", "{o:#}");
    assert_eq!(p["limit"], 16);
    let peak = p["peak"].as_u64().unwrap();
    assert!(peak <= 16, "peak {peak}");
    assert!(peak >= 8, "the bomb did run: peak {peak}");
    assert!(p["refused_forks"].as_u64().unwrap() > 0, "{o:#}");
    // What the bomb left behind when the probe exited is listed (if anything was still
    // alive) and ends with the probe's PID namespace: nothing is left in the cgroup.
    let run_id = b.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/pids/nexusmon")
            .join(&run_id)
            .exists(),
        "the run's cgroups are removed"
    );
    let pre = read(&b, "apply_preflight.json");
    assert_eq!(pre["profiles"][0]["apply_ok"], true);
    let manifest: Value = read(&b, "run_manifest.json");
    assert_eq!(
        manifest["profiles"]["sixteen-processes"]["processes"]["enforced_by"],
        "pids-cgroup-v1"
    );
}

fn unsafe_euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

#[test]
fn the_scratch_directory_of_a_killed_run_is_removed_by_the_next_run_of_its_parent() {
    // A runner that no longer exists: a child that has exited and been reaped.
    let dead = std::process::Command::new("/bin/true")
        .spawn()
        .and_then(|mut c| {
            let id = c.id();
            c.wait().map(|_| id)
        })
        .unwrap();
    // The scratch parent this test's runs share (and no other test's).
    let parent = tempfile::tempdir().unwrap();
    let parent_s = parent.path().to_str().unwrap();
    let stale = parent.path().join(format!("nexusmon-stale-{dead}"));
    std::fs::create_dir_all(stale.join("scenario/p/x.a1")).unwrap();
    std::fs::write(stale.join("owner.pid"), dead.to_string()).unwrap();
    // A live owner is never touched.
    let live = parent
        .path()
        .join(format!("nexusmon-live-{}", std::process::id()));
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("owner.pid"), std::process::id().to_string()).unwrap();
    // A run with another scratch parent (the harness's own for this test) leaves it alone.
    let (_t, r) = run_plan(
        Test::new(),
        "enforce",
        &["--only-scenario", "no-etc:read-os-release"],
    );
    r.code(0);
    assert!(stale.exists(), "a run of another scratch parent swept it");
    assert!(!r.stderr.contains("warning:"), "{}", r.stderr);
    let (_t, r) = run_plan(
        Test::new(),
        "enforce",
        &[
            "--only-scenario",
            "no-etc:read-os-release",
            "--scratch-parent",
            parent_s,
        ],
    );
    r.code(0);
    assert!(!stale.exists(), "the stale scratch root was removed");
    assert!(
        r.stderr.contains(&format!(
            "warning: removed the scratch directory and pids cgroups of killed run stale-{dead}"
        )),
        "{}",
        r.stderr
    );
    assert!(live.exists(), "a live owner's scratch root is kept");
}

/// `--scratch-parent` (or `NEXUSMON_SCRATCH_PARENT`) is where the run's scratch root goes
/// (the manifest names it; it is gone after the run). A directory that is missing, not a
/// directory, writable by others without the sticky bit, another user's, or reached through
/// a symlink to one of those is refused by `run` and by `status --clean`, given by flag or
/// by environment: exit 2 before anything is written, naming the path and the fix.
#[test]
fn the_scratch_parent_is_used_as_given_and_an_unsafe_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let dir = |name: &str, mode: u32| {
        let d = t.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        d
    };
    let good = dir("good", 0o700);
    let sticky = dir("sticky", 0o1777);
    let open = dir("open", 0o777);
    let foreign = dir("foreign", 0o700);
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let file = t.path().join("file");
    std::fs::write(&file, "").unwrap();
    let link = t.path().join("link");
    std::os::unix::fs::symlink(&open, &link).unwrap();
    let select = ["--only-scenario", "no-etc:read-os-release"];
    for ok in [&good, &sticky] {
        let (run, r) = run_plan(
            Test::new(),
            "enforce",
            &[&select[..], &["--scratch-parent", ok.to_str().unwrap()]].concat(),
        );
        r.code(0);
        let scratch = read(&bundle(&run), "run_manifest.json")["scratch"]
            .as_str()
            .unwrap()
            .to_string();
        let want = std::fs::canonicalize(ok).unwrap().join("nexusmon-");
        assert!(
            scratch.starts_with(want.to_str().unwrap()),
            "{scratch} is not in {ok:?}"
        );
        assert!(!std::path::Path::new(&scratch).exists(), "{scratch}");
    }
    let missing = t.path().join("missing");
    for (bad, says) in [
        (&missing, "cannot be resolved"),
        (&file, "is not a directory"),
        (&open, "writable by other users (mode 0777) and not sticky"),
        (&foreign, "owned by uid 65534"),
        (&link, "its target"),
    ] {
        let bad_s = bad.to_str().unwrap();
        for by_env in [false, true] {
            let test = if by_env {
                Test::new().env("NEXUSMON_SCRATCH_PARENT", bad_s)
            } else {
                Test::new()
            };
            let extra: Vec<&str> = if by_env {
                select.to_vec()
            } else {
                [&select[..], &["--scratch-parent", bad_s]].concat()
            };
            let (run, r) = run_plan(test, "enforce", &extra);
            r.code(2);
            for want in [
                format!("error: {bad_s}: --scratch-parent: "),
                says.to_string(),
                "hint: pass an existing directory you own".to_string(),
            ] {
                assert!(r.stderr.contains(&want), "{bad_s} ({by_env}): {}", r.stderr);
            }
            assert!(
                !run.path().join("out").exists(),
                "{bad_s}: something was written"
            );
            let status = if by_env {
                Test::new()
                    .env("NEXUSMON_SCRATCH_PARENT", bad_s)
                    .args(["status", "--clean"])
            } else {
                Test::new().args(["status", "--clean", "--scratch-parent", bad_s])
            };
            let r = status.run();
            r.code(2);
            assert!(r.stderr.contains(says), "{bad_s} ({by_env}): {}", r.stderr);
        }
    }
}
