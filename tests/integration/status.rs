//! `status`: the host's sandbox support, the runner's own confinement, and the out root's
//! state (LATEST and whether it validates, bundles, leftovers of crashed runs, the lock).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::bundle::{nx, realistic, seal_from, write_bundle};
use crate::util::nexusmon;

fn status_json(out: &Path) -> serde_json::Value {
    let r = nx(["--json", "status", "--out", out.to_str().unwrap()]);
    r.code(0);
    serde_json::from_str(&r.stdout).unwrap()
}

fn status_human(out: &Path) -> String {
    let r = nx(["status", "--out", out.to_str().unwrap()]);
    r.code(0);
    r.stdout
}

/// A field of `/proc/self/status` (the test process; the binary inherits it).
fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap()
}

#[test]
fn host_facts_match_the_kernel() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("nothing-here");
    let v = status_json(&out);
    let h = &v["host"];
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(h["kernel_release"], release.trim());
    // Landlock: an ABI, or the reason there is none.
    assert!(
        h["landlock_abi"].as_u64().is_some_and(|a| a >= 1) || h["landlock_unavailable"].is_string(),
        "{h}"
    );
    assert_eq!(
        h["seccomp_filter_available"],
        Path::new("/proc/sys/kernel/seccomp/actions_avail").exists()
    );
    assert_eq!(h["runner_no_new_privs"], proc_status("NoNewPrivs") == "1");
    assert_eq!(
        h["runner_seccomp_mode"].as_u64().unwrap().to_string(),
        proc_status("Seccomp")
    );
    let max_userns: u64 = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map_or(0, |s| s.trim().parse().unwrap_or(0));
    assert_eq!(h["user_namespaces"], max_userns > 0);
    assert_eq!(v["out_root"]["exists"], false);

    let text = status_human(&out);
    assert!(text.contains(release.trim()), "{text}");
    assert!(text.contains("landlock"), "{text}");
    assert!(text.contains("runner confined"), "{text}");
    assert!(text.contains("pids cgroup"), "{text}");
    assert!(text.contains("does not exist yet"), "{text}");
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn a_healthy_out_root() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    seal_from(&out, &realistic(), "r-1");
    seal_from(&out, &realistic(), "r-2");
    let v = status_json(&out);
    let o = &v["out_root"];
    assert_eq!(o["exists"], true);
    assert_eq!(o["sealed_bundles"], 2);
    assert_eq!(o["latest"]["run_id"], "r-2");
    assert_eq!(o["latest"]["valid"], true);
    assert_eq!(o["staging"].as_array().unwrap().len(), 0);
    assert_eq!(o["lock"]["held"], false);
    assert_eq!(o["lock"]["stale"], false);
    let text = status_human(&out);
    assert!(
        text.contains("LATEST              r-2 complete, validates"),
        "{text}"
    );
    assert!(text.contains("sealed bundles      2"), "{text}");
    assert!(text.contains("crashed leftovers   none"), "{text}");
    assert!(text.contains("lock                free"), "{text}");
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn a_latest_that_does_not_validate_is_shown() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let dir = seal_from(&out, &realistic(), "r-bad");
    std::fs::remove_file(dir.join("summary.md")).unwrap();
    let v = status_json(&out);
    assert_eq!(v["out_root"]["latest"]["valid"], false);
    assert_eq!(
        v["out_root"]["latest"]["problems"][0]["kind"],
        "missing-file"
    );
    let text = status_human(&out);
    assert!(
        text.contains("DOES NOT VALIDATE: 1 problem(s): missing-file"),
        "{text}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn leftovers_and_a_stale_lock_after_a_crash() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let r = write_bundle(
        &out,
        &[
            "--run-id",
            "r-crashed",
            "--files",
            "4",
            "--crash-at",
            "after-files",
        ],
    );
    assert_eq!(r.status, -1, "killed");
    let v = status_json(&out);
    let o = &v["out_root"];
    assert_eq!(o["staging"][0]["run_id"], "r-crashed");
    assert_eq!(o["staging"][0]["active"], false);
    assert_eq!(o["staging"][0]["status"], "in_progress");
    assert_eq!(o["staging"][0]["files"], 5);
    assert_eq!(o["lock"]["stale"], true);
    assert_eq!(o["lock"]["holder"]["run_id"], "r-crashed");
    let text = status_human(&out);
    assert!(
        text.contains("crashed leftovers   1 in .staging/"),
        "{text}"
    );
    assert!(text.contains("r-crashed  started"), "{text}");
    assert!(
        text.contains("lock                STALE: left by pid"),
        "{text}"
    );
    assert!(
        text.contains("(gone); the next run takes it over"),
        "{text}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn a_run_in_progress_holds_the_lock() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let child = nexusmon(t.path())
        .args(["__bundle-write", "--out", out.to_str().unwrap()])
        .args(["--run-id", "r-live", "--hold-ms", "5000", "--files", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !out.join(".staging/r-live").exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let v = status_json(&out);
    let o = &v["out_root"];
    assert_eq!(o["lock"]["held"], true, "{o}");
    assert_eq!(o["lock"]["stale"], false);
    assert_eq!(o["lock"]["holder"]["pid"], child.id());
    assert_eq!(o["staging"][0]["active"], true);
    let text = status_human(&out);
    assert!(text.contains("writing now         r-live"), "{text}");
    assert!(
        text.contains(&format!("held by pid {}", child.id())),
        "{text}"
    );
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
}
