//! Crash safety: a writer killed with SIGKILL at every step of the commit protocol, and at
//! random times during a larger write, never leaves anything outside `.staging` that reads
//! as committed unless it fully validates; `LATEST` always names a bundle that validates;
//! the next writer reports the stale lock and the leftovers, removes them, and succeeds.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nexusmon::model::index::Latest;

use crate::bundle::{nx, read_json, realistic, seal_from};
use crate::util::{Test, bin};

fn writer(out: &Path, run_id: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args([
        "__bundle-write",
        "--out",
        out.to_str().unwrap(),
        "--run-id",
        run_id,
    ])
    .args(extra)
    .env_remove("NEXUSMON_RUN_ID")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

fn killed_by_sigkill(st: ExitStatus) -> bool {
    st.signal() == Some(libc::SIGKILL)
}

/// Everything outside `.staging` either is part of the out root's own layout (`LATEST`,
/// `.lock`, a temp file that no reader takes for anything) or a bundle that fully
/// validates; `LATEST` names a bundle that validates. Returns the run `LATEST` names.
fn assert_nothing_half_committed(out: &Path) -> String {
    for e in std::fs::read_dir(out).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if [".staging", ".lock", "LATEST"].contains(&name.as_str()) {
            continue;
        }
        if name.starts_with(".tmp.") && e.file_type().unwrap().is_file() {
            continue;
        }
        assert!(e.file_type().unwrap().is_dir(), "unexpected {name}");
        let report = nexusmon::bundle::check_bundle(&e.path()).unwrap();
        assert!(
            report.is_valid(),
            "{name} is outside .staging but does not validate: {:?}",
            report.problems
        );
    }
    let latest: Latest = read_json(&out.join("LATEST"));
    let report = nexusmon::bundle::check_bundle(out).unwrap();
    assert!(
        report.is_valid(),
        "LATEST does not validate: {:?}",
        report.problems
    );
    assert_eq!(report.run_id.as_deref(), Some(latest.run_id.as_str()));
    latest.run_id
}

/// The next writer takes over the stale lock (if `stale`), removes the leftovers, and
/// succeeds.
fn next_writer_recovers(out: &Path, run_id: &str, stale: bool, leftover: Option<&str>) {
    let o = writer(out, run_id, &["--files", "3"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    if stale {
        assert!(
            stderr.contains("took over a stale out-root lock"),
            "{stderr}"
        );
    }
    if let Some(id) = leftover {
        assert!(
            stderr.contains(&format!(".staging/{id}")),
            "the leftover is not reported: {stderr}"
        );
    }
    let staging: Vec<_> = std::fs::read_dir(out.join(".staging")).unwrap().collect();
    assert!(staging.is_empty(), "{staging:?}");
    let temps: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp."))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
    assert_eq!(assert_nothing_half_committed(out), run_id);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn a_kill_at_every_step_of_the_protocol_never_leaves_a_half_committed_bundle() {
    use nexusmon::bundle::writer::CrashPoint;
    let t = Test::new();
    let out = t.path().join("out");
    seal_from(&out, &realistic(), "r-0");
    for (i, point) in CrashPoint::ALL.into_iter().enumerate() {
        let id = format!("crash-{}", point.as_str());
        let st = writer(&out, &id, &["--files", "40", "--size", "3000"])
            .args(["--crash-at", point.as_str()])
            .status()
            .unwrap();
        assert!(killed_by_sigkill(st), "{point:?}: {st:?}");
        let before_latest = if i == 0 {
            "r-0".to_string()
        } else {
            format!("next-{}", CrashPoint::ALL[i - 1].as_str())
        };
        let published = matches!(
            point,
            CrashPoint::AfterMove | CrashPoint::MidLatest | CrashPoint::AfterLatest
        );
        assert_eq!(out.join(&id).exists(), published, "{point:?}");
        assert_eq!(
            out.join(".staging").join(&id).exists(),
            !published,
            "{point:?}"
        );
        let latest = assert_nothing_half_committed(&out);
        let want = if point == CrashPoint::AfterLatest {
            id.clone()
        } else {
            before_latest
        };
        assert_eq!(latest, want, "{point:?}");

        // `status` sees the stale lock and the leftover.
        let r = nx(["--json", "status", "--out", out.to_str().unwrap()]);
        r.code(0);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let lock = &v["out_root"]["lock"];
        assert_eq!(lock["stale"], true, "{point:?}: {lock}");
        assert_eq!(lock["held"], false);
        assert_eq!(lock["holder"]["run_id"], id.as_str());
        assert_eq!(lock["holder_alive"], false);
        let staging = v["out_root"]["staging"].as_array().unwrap();
        if published {
            assert!(staging.is_empty(), "{point:?}: {staging:?}");
        } else {
            assert_eq!(staging.len(), 1, "{point:?}");
            assert_eq!(staging[0]["run_id"], id.as_str());
            assert_eq!(staging[0]["active"], false);
        }
        assert_eq!(v["out_root"]["latest"]["valid"], true);

        next_writer_recovers(
            &out,
            &format!("next-{}", point.as_str()),
            true,
            (!published).then_some(id.as_str()),
        );
    }
}

/// A tiny deterministic generator for the kill times (no test randomness that cannot be
/// replayed).
struct Lcg(u64);

impl Lcg {
    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn kill(child: &mut Child) -> ExitStatus {
    // SAFETY: signalling our own child by pid.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGKILL);
    }
    child.wait().unwrap()
}

/// Regular files under `dir` (0 if it is gone).
fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn kills_at_random_points_of_a_larger_write_never_leave_a_half_committed_bundle() {
    // Kill points are chosen by progress, not by wall time (which varies too much on a
    // shared machine): even rounds once a random number of the files are in staging, odd
    // rounds once the seal has begun (BLAKE3SUMS written) plus a random few milliseconds,
    // which lands in the durability barrier, the index, the move or LATEST.
    let t = Test::new();
    let out = t.path().join("out");
    let files: u64 = 2000;
    let files_arg = files.to_string();
    let args = ["--files", files_arg.as_str(), "--size", "8192"];
    seal_from(&out, &realistic(), "r-0");
    let mut rng = Lcg(0x5eed);
    let (mut killed, mut while_writing, mut while_sealing) = (0, 0, 0);
    let rounds = 20;
    for k in 0..rounds {
        let id = format!("rand-{k:02}");
        let staged = out.join(".staging").join(&id);
        let target_files = usize::try_from(rng.below(files + 1)).unwrap();
        let extra_delay = Duration::from_micros(rng.below(20_000));
        let mut child = writer(&out, &id, &args).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let reached = if k % 2 == 0 {
                count_files(&staged.join("data")) >= target_files
            } else {
                staged.join("BLAKE3SUMS").exists()
            };
            if reached || child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if k % 2 == 1 {
            std::thread::sleep(extra_delay);
        }
        let st = kill(&mut child);
        if killed_by_sigkill(st) {
            killed += 1;
            match std::fs::read_to_string(staged.join("run_status.json")) {
                Ok(s) if s.contains("in_progress") => while_writing += 1,
                Ok(_) => while_sealing += 1,
                Err(_) => {}
            }
        } else {
            assert!(st.success(), "round {k}: {st:?}");
        }
        let latest = assert_nothing_half_committed(&out);
        if !killed_by_sigkill(st) {
            assert_eq!(latest, id);
        }
    }
    assert!(
        killed >= rounds / 2,
        "only {killed} of {rounds} kills landed during a write"
    );
    assert!(
        while_writing >= 1,
        "no kill landed while files were written"
    );
    assert!(while_sealing >= 1, "no kill landed during the seal");
    next_writer_recovers(&out, "final", false, None);
    // Every bundle that made it out of staging validates.
    for e in std::fs::read_dir(&out).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() && !e.file_name().to_string_lossy().starts_with('.') {
            assert!(
                nexusmon::bundle::check_bundle(&e.path())
                    .unwrap()
                    .is_valid()
            );
        }
    }
}
