//! `run --kernel-audit`: the kernel's own Landlock denial records, read over NETLINK_AUDIT
//! and attributed to the runner's scenario-lane children only.
//!
//! These tests change machine-wide state (kernel audit) through the runs they start; they
//! hold one lock among themselves so that each sees the state it set up, and every other
//! test runs with `NEXUSMON_KERNEL_AUDIT=off` (the harness).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use serde_json::Value;

use crate::util::{Project, bin};

static AUDIT_TESTS: Mutex<()> = Mutex::new(());

pub(crate) fn audit_lock() -> std::sync::MutexGuard<'static, ()> {
    AUDIT_TESTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A Landlock-restricted process outside nexusmon: handles `read-file` with no rule and
/// tries to read `/etc/hostname` (the very file a quickstart probe is denied) and
/// `marker`, every 5 ms, until killed. Returns once it is restricted.
pub(crate) fn outsider(marker: &std::path::Path) -> Child {
    let script = r#"
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
attr = (ctypes.c_uint64 * 3)(1 << 2, 0, 0)
fd = libc.syscall(ctypes.c_long(444), ctypes.byref(attr), ctypes.c_long(24), ctypes.c_long(0))
if fd < 0: sys.exit(3)
if libc.prctl(38, 1, 0, 0, 0) != 0: sys.exit(4)
if libc.syscall(ctypes.c_long(446), ctypes.c_long(fd), ctypes.c_long(0)) != 0: sys.exit(5)
print("ready", flush=True)
while True:
    for p in ("/etc/hostname", sys.argv[1]):
        try:
            open(p).read()
        except OSError:
            pass
    time.sleep(0.005)
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(marker)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 for the outsider");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "the outsider could not restrict itself"
    );
    child
}

fn observation<'a>(results: &'a Value, id: &str) -> &'a Value {
    results
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["scenario_id"] == id)
        .unwrap_or_else(|| panic!("no observation {id}"))
}

/// Must show: with audit enabled (by the run, `require`) the quickstart's denials carry
/// the kernel's record — `fs.read_file` on `/etc/hostname`, `net.connect_tcp` with the
/// listener's port — while a restricted process outside nexusmon, denied the same file at
/// the same time, is never attributed; the kernel's audit state is back as it was after.
#[test]
fn kernel_records_name_the_quickstart_denials_and_never_a_strangers() {
    let _g = audit_lock();
    let before = nexusmon::sandbox::audit::status().expect("audit status");
    let p = Project::shipped();
    let marker = p.path("outsider-only-secret");
    std::fs::write(&marker, "x").unwrap();
    let mut stranger = outsider(&marker);
    let ran = p.run("quickstart", &["--kernel-audit", "require"]);
    let _ = stranger.kill();
    let _ = stranger.wait();
    let after = nexusmon::sandbox::audit::status().expect("audit status");
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert_eq!(
        (after.enabled, after.backlog_limit),
        (before.enabled, before.backlog_limit),
        "the run must put the kernel's audit state back"
    );

    let bundle = p.latest();
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(bundle.join(f)).unwrap()).unwrap()
    };
    let runtime = crate::util::results(&bundle, "runtime_results.jsonl");
    let hostname = observation(&runtime, "system-ro:read-etc-hostname");
    let denials = hostname["kernel_denials"].as_array().unwrap();
    assert!(
        denials
            .iter()
            .any(|x| x["blockers"] == serde_json::json!(["fs.read_file"])
                && x["object"]["path"] == "/etc/hostname"),
        "{hostname:#}"
    );
    // The outsider was denied the same file about a thousand times meanwhile: none of
    // its records is this child's.
    assert!(denials.len() <= 2, "{denials:#?}");
    let connect = observation(&runtime, "net-deny-all:connect-listener");
    let port = connect["target"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    assert!(
        connect["kernel_denials"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["blockers"] == serde_json::json!(["net.connect_tcp"])
                && x["object"]["dest"] == port.as_str()),
        "{connect:#}"
    );
    // An allowed probe's child: collected, nothing denied.
    assert_eq!(
        observation(&runtime, "system-ro:read-os-release")["kernel_denials"],
        serde_json::json!([])
    );

    let lines = std::fs::read_to_string(bundle.join("kernel_denials.jsonl")).unwrap();
    assert!(!lines.contains("outsider-only-secret"), "{lines}");
    let ids: Vec<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["scenario_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(ids.contains(&"system-ro:read-etc-hostname".to_string()));
    assert!(
        !ids.iter().any(|i| i.ends_with(":read-os-release")),
        "{lines}"
    );
    // Every line validates against the published schema.
    crate::govern_schemas::check(
        "kernel-denial.schema.json",
        &[bundle.join("kernel_denials.jsonl")],
        ids.len(),
    );

    let summary = read("summary.json");
    let ka = &summary["kernel_audit"];
    assert_eq!(ka["state"], "collected", "{ka:#}");
    assert_eq!(
        ka["attributed"].as_u64().unwrap(),
        lines.lines().count() as u64
    );
    assert!(ka["unattributed"].as_u64().unwrap() >= 10, "{ka:#}");
    assert_eq!(
        ka["restored"].as_bool().unwrap_or(false),
        before.enabled == 0
    );
    let manifest = read("run_manifest.json");
    assert_eq!(manifest["kernel_audit"]["collecting"], true);
    assert_eq!(
        manifest["kernel_audit"]["enabled_by_run"]
            .as_bool()
            .unwrap_or(false),
        before.enabled == 0
    );
    // The oracle predicted the same blockers: no blocker-divergence.
    let oracle = crate::util::results(&bundle, "oracle_results.jsonl");
    let verdict = oracle
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["scenario_id"] == "system-ro:read-etc-hostname")
        .unwrap();
    assert_eq!(verdict["blockers"], serde_json::json!(["fs.read_file"]));
    assert_eq!(
        read("mismatch_summary.json")["by_kind"]["blocker-divergence"],
        0
    );
    // The sealed bundle validates with the new file in its index.
    let check = p.nx(&["validate-bundle", "--bundle", bundle.to_str().unwrap()]);
    assert_eq!(check.status, 0, "{}{}", check.stdout, check.stderr);
    assert!(
        std::fs::read_to_string(bundle.join("summary.md"))
            .unwrap()
            .contains("| kernel audit | collected (require)")
    );
}

/// Must show: with kernel audit unavailable to the runner (no CAP_AUDIT_* capability),
/// `auto` runs green and the bundle says why nothing was collected; `require` refuses
/// before anything is written, naming what is missing.
#[test]
fn without_audit_capabilities_auto_says_so_and_require_refuses() {
    let _g = audit_lock();
    let p = Project::shipped();
    let without_audit = |mode: &str| {
        let out = Command::new("setpriv")
            .args([
                "--bounding-set",
                "-audit_read,-audit_control,-audit_write",
                "--",
            ])
            .arg(bin())
            .args([
                "run",
                "--plan",
                "plans/quickstart/plan.json",
                "--kernel-audit",
                mode,
            ])
            .current_dir(p.root())
            .env("NO_COLOR", "1")
            .output()
            .expect("setpriv (util-linux)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, stderr) = without_audit("auto");
    assert_eq!(status, 0, "{stderr}");
    let bundle = p.latest();
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("summary.json")).unwrap())
            .unwrap();
    let k = &summary["kernel_audit"];
    assert_eq!(k["state"], "unavailable", "{k:#}");
    assert!(k["reason"].as_str().unwrap().contains("AUDIT_GET"), "{k:#}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("run_manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["kernel_audit"]["collecting"], false);
    assert!(!bundle.join("kernel_denials.jsonl").exists());
    assert!(
        std::fs::read_to_string(bundle.join("summary.md"))
            .unwrap()
            .contains("| kernel audit | unavailable (auto): ")
    );
    let runtime = std::fs::read_to_string(bundle.join("runtime_results.jsonl")).unwrap();
    assert!(!runtime.contains("kernel_denials"));

    let bundles = std::fs::read_dir(p.path("out")).unwrap().count();
    let (status, stderr) = without_audit("require");
    assert_eq!(status, 3, "{stderr}");
    assert!(stderr.contains("--kernel-audit require"), "{stderr}");
    assert!(stderr.contains("CAP_AUDIT"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(p.path("out")).unwrap().count(),
        bundles,
        "nothing written"
    );
}

/// `require` puts the kernel's audit state back when the run is interrupted: after one
/// SIGINT (the run seals `interrupted`) and after two at once (the second aborts from the
/// signal handler, which restores it with one prepared `sendto`).
/// `run --kernel-audit require --json` of `fs-confinement` into out root `out`, started with
/// its output piped (the caller reads the events and signals it).
fn spawn_require_run(p: &Project, out: &str) -> Child {
    crate::util::nexusmon(p.root())
        .args([
            "run",
            "--plan",
            "plans/fs-confinement/plan.json",
            "--out",
            out,
            "--json",
            "--kernel-audit",
            "require",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn an_interrupted_require_run_restores_the_audit_state() {
    let _g = audit_lock();
    let p = Project::shipped();
    for twice in [false, true] {
        let before = nexusmon::sandbox::audit::status().expect("audit status");
        let mut child = spawn_require_run(&p, "out");
        let stdout = child.stdout.take().unwrap();
        let mut seen = 0;
        let mut during = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
            if v["type"] == "observation" && v["lane"] != "oracle" {
                seen += 1;
            }
            if seen == 10 && during.is_none() {
                during = Some(nexusmon::sandbox::audit::status().expect("audit status"));
                let pid = i32::try_from(child.id()).unwrap();
                // SAFETY: signalling our own child process.
                unsafe {
                    libc::kill(pid, libc::SIGINT);
                    if twice {
                        libc::kill(pid, libc::SIGINT);
                    }
                }
            }
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "twice={twice}");
        assert_ne!(
            during.expect("signal sent").enabled,
            0,
            "audit was on during the run"
        );
        let after = nexusmon::sandbox::audit::status().expect("audit status");
        if twice {
            // The aborted run's scratch and cgroups are machine-wide leftovers another
            // test's next run would report: clean them at once.
            p.nx(&["status", "--clean", "--out", "out"]);
        }
        assert_eq!(
            (after.enabled, after.backlog_limit),
            (before.enabled, before.backlog_limit),
            "twice={twice}"
        );
    }
}

#[test]
fn a_require_run_killed_with_sigkill_leaves_a_record_the_next_run_puts_back() {
    let _g = audit_lock();
    let p = Project::shipped();
    let before = nexusmon::sandbox::audit::status().expect("audit status");
    let mut child = spawn_require_run(&p, "killed");
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let mut during = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["type"] == "observation" && v["lane"] != "oracle" {
            during = Some(nexusmon::sandbox::audit::status().expect("audit status"));
            // SIGKILL cannot be handled: the runner gets no chance to restore anything.
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    let during = during.expect("the run started its lanes");
    assert_ne!(during.enabled, 0, "audit was on during the run");
    // Its children die with it (pdeathsig), which releases the lock; until the next
    // session, the state it set stays.
    let mut left = nexusmon::sandbox::audit::status().expect("audit status");
    for _ in 0..50 {
        if left.enabled != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        left = nexusmon::sandbox::audit::status().expect("audit status");
    }
    if before.enabled == 0 {
        assert_ne!(left.enabled, 0, "the killed run left audit enabled");
    }
    p.nx(&["status", "--clean", "--out", "killed"]);

    // The next session (here `auto`, which takes no lock of its own) finds the record
    // and puts the state back before it starts; the manifest says what happened.
    let r = p.nx(&[
        "run",
        "--plan",
        "plans/fs-confinement/plan.json",
        "--out",
        "next",
        "--kernel-audit",
        "auto",
    ]);
    assert!([0, 1].contains(&r.status), "{}", r.stderr);
    let after = nexusmon::sandbox::audit::status().expect("audit status");
    assert_eq!(
        (after.enabled, after.backlog_limit),
        (before.enabled, before.backlog_limit)
    );
    let m =
        crate::util::read_json(&crate::util::latest_in(&p.path("next")).join("run_manifest.json"));
    let text = format!(
        "{} {}",
        m["kernel_audit"]["recovered"].as_str().unwrap_or(""),
        m["kernel_audit"]["reason"].as_str().unwrap_or("")
    );
    if before.enabled == 0 {
        assert!(
            text.contains(&format!("a runner (pid {pid}) killed before restoring")),
            "{m:#}"
        );
    }
    // And a record is put back once: a further run finds none.
    let r = p.nx(&[
        "run",
        "--plan",
        "plans/fs-confinement/plan.json",
        "--out",
        "again",
        "--kernel-audit",
        "require",
    ]);
    assert!([0, 1].contains(&r.status), "{}", r.stderr);
    let m =
        crate::util::read_json(&crate::util::latest_in(&p.path("again")).join("run_manifest.json"));
    assert_eq!(m["kernel_audit"]["recovered"], Value::Null, "{m:#}");
    let end = nexusmon::sandbox::audit::status().expect("audit status");
    assert_eq!(
        (end.enabled, end.backlog_limit),
        (before.enabled, before.backlog_limit)
    );
}
