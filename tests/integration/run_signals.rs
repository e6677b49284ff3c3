//! Probe children start with every signal at its default disposition and none blocked,
//! whatever the runner inherited: a runner started under `nohup` ignores SIGHUP, one
//! started as a non-interactive shell's background job ignores SIGINT and SIGQUIT, and an
//! ignored disposition or a blocked signal survives `clone` and `execve`. A child that
//! inherited them could not be ended by those signals (found when `run_forkserver`'s crash
//! step, a SIGQUIT, failed in a suite started in the background).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::{Rng, Test, latest_in, nexusmon};

/// Signals a parent may leave ignored or blocked for the runner. Not SIGCHLD (the runner
/// waits for its children), SIGKILL/SIGSTOP (cannot be changed), the faults a process
/// raises itself, or 32/33 (the C library's).
fn candidates() -> Vec<i32> {
    let mut v = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGCONT,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGURG,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGWINCH,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSYS,
    ];
    v.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    v
}

/// The bit of `sig` in a `/proc/<pid>/status` signal mask.
fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// `SigIgn` and `SigBlk` (hex masks) of a `/proc/<pid>/status` text.
fn masks(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    Some((field("SigIgn:")?, field("SigBlk:")?))
}

/// Every descendant of `root` (by `/proc/<pid>/stat`'s parent field) with its command line.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(up) = stat
            .rsplit_once(") ")
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        parent.insert(pid, up);
    }
    let mut out = Vec::new();
    for &pid in parent.keys() {
        let mut p = pid;
        // Bounded: a pid's ancestry is at most the number of processes.
        for _ in 0..parent.len() {
            match parent.get(&p) {
                Some(&pp) if pp == root => {
                    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    out.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
                    break;
                }
                Some(&pp) if pp > 1 => p = pp,
                _ => break,
            }
        }
    }
    out
}

/// A runner started with random signals ignored and blocked (seeded): its exec children
/// report, from their own `/proc/self/status`, no signal ignored or blocked, in both
/// lanes; its fork servers (whose clones are the builtin children, with no `execve` in
/// between) are sampled while the run lasts and have none of those signals ignored or
/// blocked either. Fails with the reset removed from the fork server or the exec child.
#[test]
fn children_never_inherit_the_runners_ignored_or_blocked_signals() {
    for seed in [0x5161_0001_u64, 0x5161_0002, 0x5161_0003] {
        let mut rng = Rng(seed);
        let all = candidates();
        // What a shell gives a background job under nohup, plus a random choice.
        let mut ignored = vec![libc::SIGHUP, libc::SIGINT, libc::SIGQUIT];
        let mut blocked = Vec::new();
        for &s in &all {
            if rng.chance(30) && !ignored.contains(&s) {
                ignored.push(s);
            }
            if rng.chance(20) {
                blocked.push(s);
            }
        }
        let inherited = ignored.iter().chain(&blocked).fold(0, |m, &s| m | bit(s));

        let probes = json!({
            "a-read": {"operation": "file-read", "target": "/usr/lib/os-release"},
            // grep itself reads its status (not a shell: a shell sets its own mask).
            "m-status": {"operation": "exec", "driver": "exec",
                "argv": ["/bin/grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"],
                "timeout_ms": 20000},
            // Keeps the run (and the one worker's fork server) alive while it is sampled.
            "n-sleep": {"operation": "exec", "driver": "exec", "argv": ["/bin/sleep", "1"],
                "timeout_ms": 20000},
            "z-read": {"operation": "file-read", "target": "/usr/lib/os-release"},
        });
        let profiles = json!({"pids": {"limits": {"processes": 16}}});
        let plan = json!({"schema_version": 1, "plan_id": "sig", "kind": "experiment",
            "registry_id": "sig", "profiles": ["pids"],
            "scenarios": {"pids": {"a-read": "allow", "m-status": "allow", "n-sleep": "allow",
                "z-read": "allow"}},
            "lanes": {"baseline": true, "scenario": true, "oracle": true}});
        let t = Test::new()
            .registry("sig", probes, profiles)
            .write("plans/sig/plan.json", &plan.to_string());
        let out = t.path().join("out");
        let log = t.path().join("runner.log");
        let mut cmd = nexusmon(t.path());
        cmd.args([
            "run",
            "--plan",
            "plans/sig/plan.json",
            "--jobs",
            "1",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::create(t.path().join("runner.err")).unwrap(),
        ));
        let (ign, blk) = (ignored.clone(), blocked.clone());
        // SAFETY: async-signal-safe calls only, in the child between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&raw mut set);
                for &s in &ign {
                    libc::signal(s, libc::SIG_IGN);
                }
                for &s in &blk {
                    libc::sigaddset(&raw mut set, s);
                }
                libc::sigprocmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut());
                Ok(())
            });
        }
        let mut runner = cmd.spawn().unwrap();
        let runner_pid = runner.id();
        // The runner itself really started with them (the premise of the test).
        let own = std::fs::read_to_string(format!("/proc/{runner_pid}/status")).unwrap();
        let (own_ign, _) = masks(&own).unwrap();
        assert_ne!(own_ign & bit(libc::SIGQUIT), 0, "seed {seed:#x}: {own}");

        let mut servers = 0;
        let deadline = Instant::now() + Duration::from_mins(2);
        let status = loop {
            if let Some(s) = runner.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "seed {seed:#x}: the run did not end"
            );
            let family = descendants(runner_pid);
            // Sampled while `n-sleep` runs: on the one worker, after `a-read`'s children
            // were forked, so the server is past its start (where it resets).
            if !family.iter().any(|(_, c)| c.starts_with("/bin/sleep 1")) {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            for (pid, cmdline) in family {
                if !cmdline.starts_with("nexusmon-forkserver") {
                    continue;
                }
                let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                    continue; // ended meanwhile
                };
                let (i, b) = masks(&st).unwrap();
                assert_eq!(
                    (i | b) & inherited,
                    0,
                    "seed {seed:#x}: fork server {pid} ignores {i:#x} / blocks {b:#x} \
                     of the runner's {inherited:#x}"
                );
                servers += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        assert_eq!(
            status.code(),
            Some(0),
            "seed {seed:#x}: {}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(t.path().join("runner.err")).unwrap_or_default()
        );
        assert!(servers > 0, "seed {seed:#x}: no fork server was seen");
        let b = latest_in(&out);
        for lane in ["baseline", "scenario"] {
            let text = read_log(&b, lane);
            let (i, blk) = masks(&text).unwrap_or_else(|| panic!("{lane}: {text}"));
            assert_eq!(
                (i, blk),
                (0, 0),
                "seed {seed:#x}, {lane}: an exec child started with signals ignored or \
                 blocked (the runner's: ignored {:#x}, blocked {:#x})",
                ignored.iter().fold(0, |m, &s| m | bit(s)),
                blocked.iter().fold(0, |m, &s| m | bit(s)),
            );
        }
    }
}

fn read_log(bundle: &Path, lane: &str) -> String {
    let p = bundle.join(format!("logs/{lane}/pids:m-status.stdout"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
