//! Two writers on one out root: `--lock fail` names the holder; `--lock wait` proceeds once
//! the holder is done (or gives up at its timeout); a stale lock is taken over and reported.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nexusmon::bundle::lock::hostname;
use nexusmon::model::index::{Latest, RunStatusFile};

use crate::bundle::{nx, read_json, validate, write_bundle};
use crate::util::nexusmon;

fn spawn_writer(out: &Path, run_id: &str, extra: &[&str]) -> Child {
    nexusmon(out.parent().unwrap())
        .args([
            "__bundle-write",
            "--out",
            out.to_str().unwrap(),
            "--run-id",
            run_id,
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn finish(child: Child) -> String {
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    stderr
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn lock_fail_names_the_holder_and_lock_wait_runs_after_it() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let holder = spawn_writer(&out, "holder", &["--hold-ms", "5000", "--files", "5"]);
    wait_for(&out.join(".staging/holder"));

    // --lock fail: exit 3, naming pid, host, start time and run.
    let r = write_bundle(&out, &["--run-id", "second", "--lock", "fail"]);
    r.code(3);
    assert!(
        r.stderr
            .contains(&format!("locked by pid {} on {}", holder.id(), hostname())),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("since 20"), "{}", r.stderr);
    assert!(r.stderr.contains("(run holder)"), "{}", r.stderr);
    assert!(r.stderr.contains("--lock wait"), "{}", r.stderr);
    assert!(!out.join("second").exists() && !out.join(".staging/second").exists());

    // --lock wait with a timeout shorter than the hold gives up, naming the holder.
    let r = write_bundle(
        &out,
        &[
            "--run-id",
            "impatient",
            "--lock",
            "wait",
            "--lock-timeout",
            "1",
        ],
    );
    r.code(3);
    assert!(
        r.stderr.contains("gave up after waiting 1s"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("pid {}", holder.id())),
        "{}",
        r.stderr
    );

    // --lock wait: queues behind the holder and seals after it.
    let waiter = spawn_writer(
        &out,
        "waiter",
        &["--lock", "wait", "--lock-timeout", "60", "--files", "2"],
    );
    let holder_err = finish(holder);
    let waiter_err = finish(waiter);
    assert!(!holder_err.contains("warning"), "{holder_err}");
    assert!(!waiter_err.contains("warning"), "{waiter_err}");
    let latest: Latest = read_json(&out.join("LATEST"));
    assert_eq!(latest.run_id, "waiter");
    let h: RunStatusFile = read_json(&out.join("holder/run_status.json"));
    let w: RunStatusFile = read_json(&out.join("waiter/run_status.json"));
    assert!(
        w.started_at >= h.finished_at.clone().unwrap(),
        "the waiter started ({}) before the holder finished ({:?})",
        w.started_at,
        h.finished_at
    );
    validate(&out.join("holder")).code(0);
    validate(&out).code(0);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn a_lock_held_by_another_tool_is_respected() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join(".lock"), "").unwrap();
    let mut flock = Command::new("flock")
        .arg(out.join(".lock"))
        .args(["sleep", "30"])
        .spawn()
        .expect("flock(1) from util-linux");
    // Wait until flock(1) holds it (then ours is refused).
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = write_bundle(&out, &[]);
        if r.status != 0 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = flock.kill();
    let _ = flock.wait();
    r.code(3);
    assert!(r.stderr.contains("another process"), "{}", r.stderr);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn a_stale_lock_is_reported_and_taken_over() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(
        out.join(".lock"),
        format!(
            "{{\"host\":\"{}\",\"pid\":999999999,\"run_id\":\"dead-run\",\"started_at\":\"2026-01-01T00:00:00Z\"}}",
            hostname()
        ),
    )
    .unwrap();
    let r = nx(["--json", "status", "--out", out.to_str().unwrap()]);
    r.code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["out_root"]["lock"]["stale"], true);
    assert_eq!(v["out_root"]["lock"]["holder"]["pid"], 999_999_999);

    let r = write_bundle(&out, &["--files", "1"]);
    r.code(0);
    assert!(
        r.stderr
            .contains("warning: took over a stale out-root lock: its holder, pid 999999999"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("(run dead-run), is gone"), "{}", r.stderr);
    // Released cleanly: the record is cleared and the next writer warns about nothing.
    assert_eq!(std::fs::read_to_string(out.join(".lock")).unwrap(), "");
    let r = write_bundle(&out, &["--files", "1"]);
    r.code(0);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}
