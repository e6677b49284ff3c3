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
            .env("NEXUSMON_SCRATCH_PARENT", crate::util::scratch_parent())
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

/// A seeded generator (xorshift) for the generated plans below.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A generated experiment in `p` as `plans/gen/plan.json`: 2-3 profiles (read and run
/// `/usr`; some but the first also read `/etc`), 150-300 builtin probes (reads and listings of `/etc`
/// files, `/usr` files and directories), every probe under every profile, the expectation
/// the truth except about one in six (those mismatch on every attempt), 0-2 retries.
/// Returns the number of scenarios.
fn generated_plan(p: &Project, g: &mut Gen) -> usize {
    let targets = [
        ("file-read", "/etc/hostname", true),
        ("file-read", "/etc/passwd", true),
        ("file-read", "/etc/os-release", true),
        ("dir-list", "/etc", true),
        ("file-read", "/usr/lib/os-release", false),
        ("dir-list", "/usr/lib", false),
    ];
    let n_profiles = 2 + g.below(2);
    let mut profiles = serde_json::Map::new();
    let mut etc_ok = Vec::new();
    for k in 0..n_profiles {
        let etc = k > 0 && g.below(2) == 0;
        let mut allow = vec![
            serde_json::json!({"path": "/usr", "access": ["read", "exec"]}),
            serde_json::json!({"path": "/etc/ld.so.cache", "access": ["read"]}),
        ];
        if etc {
            allow.push(serde_json::json!({"path": "/etc", "access": ["read"]}));
        }
        profiles.insert(
            format!("gen-{k}"),
            serde_json::json!({"landlock": {"abi": 7, "fs": {"handle": "all", "allow": allow}}}),
        );
        etc_ok.push(etc);
    }
    let n_probes = 150 + g.below(151);
    let mut probes = serde_json::Map::new();
    let mut kinds = Vec::new();
    for i in 0..n_probes {
        let t = usize::try_from(g.below(targets.len() as u64)).unwrap();
        let (op, target, _) = targets[t];
        probes.insert(
            format!("q{i:04}"),
            serde_json::json!({"operation": op, "target": target}),
        );
        kinds.push(t);
    }
    let mut scenarios = serde_json::Map::new();
    for (k, etc) in etc_ok.iter().enumerate() {
        let mut row = serde_json::Map::new();
        for (i, t) in kinds.iter().enumerate() {
            let denied = targets[*t].2 && !etc;
            let wrong = g.below(6) == 0;
            let say = if denied == wrong { "allow" } else { "deny" };
            row.insert(format!("q{i:04}"), Value::from(say));
        }
        scenarios.insert(format!("gen-{k}"), Value::Object(row));
    }
    let reg = p.path("registry/gen");
    std::fs::create_dir_all(&reg).unwrap();
    std::fs::create_dir_all(p.path("plans/gen")).unwrap();
    let doc = |key: &str, body: serde_json::Map<String, Value>| {
        serde_json::json!({"schema_version": 1, "registry_id": "gen", key: body}).to_string()
    };
    std::fs::write(reg.join("probes.json"), doc("probes", probes)).unwrap();
    std::fs::write(reg.join("profiles.json"), doc("profiles", profiles.clone())).unwrap();
    let plan = serde_json::json!({
        "schema_version": 1,
        "plan_id": "gen",
        "kind": "experiment",
        "registry_id": "gen",
        "profiles": profiles.keys().collect::<Vec<_>>(),
        "scenarios": scenarios,
        "lanes": {"baseline": true, "scenario": true, "oracle": true},
        "execution": {"retries": g.below(3), "timeout_ms": 20000},
    });
    std::fs::write(p.path("plans/gen/plan.json"), plan.to_string()).unwrap();
    usize::try_from(n_profiles * n_probes).unwrap()
}

/// A value with what differs between two runs of one plan taken out: the run's id, the
/// kernel's domain ids, serials, times and pids, resource usage and wall times.
fn steady(v: &Value, run_id: &str) -> Value {
    const VARY: [&str; 10] = [
        "domain",
        "serial",
        "time_ms",
        "pid",
        "rusage",
        "wall_us",
        "run_id",
        "runner_max_rss_kib",
        "started_at",
        "finished_at",
    ];
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !VARY.contains(&k.as_str()))
                .map(|(k, x)| (k.clone(), steady(x, run_id)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| steady(x, run_id)).collect()),
        Value::String(s) if !run_id.is_empty() => Value::from(s.replace(run_id, "RUN")),
        x => x.clone(),
    }
}

/// Must show: a kernel-audit run that streams its results (one checkpoint per batch of
/// scenarios) writes the bundle the run that holds every observation to the end writes.
/// Generated plans (seeded: profiles that deny or allow `/etc`, reads and listings,
/// wrong expectations retried), each run both ways with a restricted process outside
/// nexusmon denied all the while: the same result lines of every lane, the same
/// `kernel_denials.jsonl` (sorted, one line per denial of a scenario-lane child, each in
/// the scenario whose child made it: a denied attempt names its target, an allowed one
/// has none), the same summary counts but for the outsider's records (unattributed in
/// both, never in a line), records = attributed + unattributed, nothing lost, and the
/// kernel's audit state put back after each run.
#[test]
fn a_streamed_kernel_audit_run_writes_the_bundle_of_a_gathered_one() {
    let _g = audit_lock();
    for seed in [0x5eed_0001_u64, 0x5eed_0002] {
        let mut g = Gen(seed);
        let p = Project::empty();
        let n = generated_plan(&p, &mut g);
        // Several batches of scenarios, so several checkpoints.
        assert!(n > 256, "{n}");
        let marker = p.path("outsider-only-secret");
        std::fs::write(&marker, "x").unwrap();
        let mut stranger = outsider(&marker);
        let mut bundles = Vec::new();
        for (out, extra) in [("out-s", None), ("out-g", Some("--gather-results"))] {
            let before = nexusmon::sandbox::audit::status().expect("audit status");
            let mut args = vec!["--kernel-audit", "require", "--out", out, "-q"];
            args.extend(extra);
            let plan = "plans/gen/plan.json";
            let mut full = vec!["run", "--plan", plan, "--channel", "clean"];
            full.extend(args);
            let ran = p.nx(&full);
            let after = nexusmon::sandbox::audit::status().expect("audit status");
            assert!(
                ran.status == 0 || ran.status == 1,
                "seed {seed:x} {out}: {}",
                ran.stderr
            );
            assert_eq!(
                (after.enabled, after.backlog_limit),
                (before.enabled, before.backlog_limit),
                "the run must put the kernel's audit state back"
            );
            bundles.push((ran.status, crate::util::latest_in(&p.path(out))));
        }
        let _ = stranger.kill();
        let _ = stranger.wait();
        assert_eq!(bundles[0].0, bundles[1].0, "seed {seed:x}: exit codes");
        let view = |bundle: &std::path::Path| {
            let summary = crate::util::read_json(&bundle.join("summary.json"));
            let run_id = summary["run_id"].as_str().unwrap().to_string();
            let mut files = Vec::new();
            for f in [
                "runtime_results.jsonl",
                "baseline_results.jsonl",
                "oracle_results.jsonl",
                "path_witnesses.jsonl",
                "mismatch_packets.jsonl",
            ] {
                files.push((f, steady(&crate::util::results(bundle, f), &run_id)));
            }
            let lines_text = std::fs::read_to_string(bundle.join("kernel_denials.jsonl")).unwrap();
            let lines: Vec<Value> = lines_text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            // Sorted as written: scenario, attempt, serial.
            let keys: Vec<(String, u64, u64)> = lines
                .iter()
                .map(|l| {
                    (
                        l["scenario_id"].as_str().unwrap().to_string(),
                        l["attempt"].as_u64().unwrap(),
                        l["serial"].as_u64().unwrap(),
                    )
                })
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted, "{}", bundle.display());
            assert!(!lines_text.contains("outsider-only-secret"));
            files.push((
                "kernel_denials.jsonl",
                steady(&Value::Array(lines), &run_id),
            ));
            let mut ka = summary["kernel_audit"].clone();
            assert_eq!(ka["state"], "collected", "{ka:#}");
            assert_eq!(ka["kernel_lost"], 0, "{ka:#}");
            assert_eq!(ka["socket_overflows"], 0, "{ka:#}");
            assert_eq!(
                ka["records"].as_u64().unwrap(),
                ka["attributed"].as_u64().unwrap() + ka["unattributed"].as_u64().unwrap(),
                "{ka:#}"
            );
            assert_eq!(
                ka["attributed"].as_u64().unwrap(),
                keys.len() as u64,
                "{ka:#}"
            );
            assert!(ka["unattributed"].as_u64().unwrap() >= 1, "{ka:#}");
            // The outsider's records vary with the run's length.
            let obj = ka.as_object_mut().unwrap();
            obj.remove("records");
            obj.remove("unattributed");
            let mut rest = summary.clone();
            rest["kernel_audit"] = ka;
            files.push(("summary.json", steady(&rest, &run_id)));
            files.push((
                "mismatch_summary.json",
                steady(
                    &crate::util::read_json(&bundle.join("mismatch_summary.json")),
                    &run_id,
                ),
            ));
            files
        };
        let (streamed, gathered) = (view(&bundles[0].1), view(&bundles[1].1));
        for ((f, s), (_, g)) in streamed.iter().zip(&gathered) {
            assert!(
                s == g,
                "seed {seed:x}: {f} differs between the streamed and the gathered run\n--- streamed\n{s:#}\n--- gathered\n{g:#}"
            );
        }
        // Every denial is the scenario's own: a denied attempt carries exactly its target's
        // denial, an allowed one none; every scenario-lane line and only those.
        let runtime = crate::util::results(&bundles[0].1, "runtime_results.jsonl");
        let runtime = runtime.as_array().unwrap();
        assert_eq!(runtime.len(), n);
        let mut denied_attempts = 0;
        for o in runtime {
            for a in std::iter::once(o).chain(o["attempts"].as_array().into_iter().flatten()) {
                let kd = a["kernel_denials"].as_array().unwrap();
                if a["outcome"] == "deny" {
                    denied_attempts += 1;
                    assert!(!kd.is_empty(), "{o:#}");
                    for d in kd {
                        assert_eq!(d["object"]["path"], o["target"], "{o:#}");
                    }
                } else {
                    assert!(kd.is_empty(), "{o:#}");
                }
            }
        }
        assert!(denied_attempts > 0, "seed {seed:x}: nothing denied");
    }
}
