//! `nexusmon learn`: a profile learned from the kernel's denials of four real programs
//! (a file reader, a Python script writing its workspace, `git init`, a loopback client),
//! each proven by its sealed run (the command allowed, every control denied), with rules
//! no wider than needed; `--never` and an ungrantable denial stop it with the reason; the
//! learned profile enforced by `sandbox`.

use std::os::linux::net::SocketAddrExt as _;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::{Project, read_json};

/// The learned project's files and the proof bundle's observations.
struct Learned {
    log: Value,
    profile: Value,
    probes: Value,
    /// Scenario-lane and baseline-lane observations of the proof, by probe id.
    scenario: Vec<(String, String)>,
    baseline: Vec<(String, String)>,
}

fn learned(out: &Path, profile: &str) -> Learned {
    let log = read_json(&out.join("learn_log.json"));
    let profiles = read_json(&out.join("registry/learned/profiles.json"));
    let probes = read_json(&out.join("registry/learned/probes.json"));
    let latest = read_json(&out.join("out/LATEST"));
    let bundle = out.join("out").join(latest["run_id"].as_str().unwrap());
    let outcomes = |file: &str| -> Vec<(String, String)> {
        let v = crate::util::results(&bundle, file);
        let mut o: Vec<(String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["probe_id"].as_str().unwrap().to_string(),
                    o["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        o.sort();
        o
    };
    Learned {
        log,
        profile: profiles["profiles"][profile].clone(),
        probes: probes["probes"].clone(),
        scenario: outcomes("runtime_results.jsonl"),
        baseline: outcomes("baseline_results.jsonl"),
    }
}

impl Learned {
    /// The proof is green: the command allowed, every control denied under the profile
    /// and allowed without it (so the denial is the profile's doing).
    fn assert_proven(&self, command_probe: &str) {
        let controls: Vec<&(String, String)> = self
            .scenario
            .iter()
            .filter(|(p, _)| p.starts_with("control-"))
            .collect();
        assert!(controls.len() >= 2, "{:?}", self.scenario);
        for (p, o) in &self.scenario {
            let want = if p == command_probe { "allow" } else { "deny" };
            assert_eq!(o, want, "scenario lane of {p}: {:?}", self.scenario);
        }
        for (p, o) in &self.baseline {
            assert_eq!(o, "allow", "baseline lane of {p}: {:?}", self.baseline);
        }
        assert!(
            self.scenario
                .iter()
                .any(|(p, _)| p == "control-write-outside-workspace")
        );
        assert!(
            self.scenario
                .iter()
                .any(|(p, _)| p == "control-connect-ungranted-port")
        );
    }

    fn rounds(&self) -> u64 {
        assert_eq!(self.log["result"]["converged"], true, "{:#}", self.log);
        self.log["result"]["rounds"].as_u64().unwrap()
    }

    /// Every filesystem rule: (path, access words).
    fn rules(&self) -> Vec<(String, Vec<String>)> {
        self.profile["landlock"]["fs"]["allow"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["path"].as_str().unwrap().to_string(),
                    r["access"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    }

    /// No rule wider than needed: never `/`; a directory only when it is the workspace or
    /// one of `dirs` (the `--widen-to` directories); writing, creating or removing only in
    /// the workspace or on a character device; every host path resolved (no symlink).
    fn assert_narrow(&self, dirs: &[&str]) {
        assert_eq!(self.profile["landlock"]["fs"]["handle"], "all");
        for (path, access) in self.rules() {
            assert_ne!(path, "/", "a rule on /");
            if path == "${SCRATCH}/ws" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(!meta.file_type().is_symlink(), "{path} is a symlink");
            assert_eq!(
                std::fs::canonicalize(&path).unwrap(),
                Path::new(&path),
                "{path} is not resolved"
            );
            if meta.is_dir() {
                assert!(dirs.contains(&path.as_str()), "a directory rule on {path}");
            }
            for a in &access {
                if !matches!(a.as_str(), "read" | "exec") {
                    use std::os::unix::fs::FileTypeExt as _;
                    assert!(
                        meta.file_type().is_char_device() && a == "write",
                        "`{a}` on {path} outside the workspace"
                    );
                }
            }
        }
    }

    fn connect_ports(&self) -> Vec<u64> {
        self.profile["landlock"]["net"]["tcp_connect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap())
            .collect()
    }

    /// The rules learned, in words (what the report quotes).
    fn words(&self) -> Vec<String> {
        self.log["result"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    }
}

/// `learn_log.json` matches the published schema (`schemas/learn-log.schema.json`).
fn assert_log_schema(log: &Value) {
    let schema = read_json(&crate::util::repo_root().join("schemas/learn-log.schema.json"));
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(log).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{log:#}");
}

/// `/usr/bin/python3`'s standard library directory (the one `--widen-to` the Python cases
/// allow: it lists its own directories at start-up).
fn python_stdlib() -> String {
    let o = Command::new("/usr/bin/python3")
        .args(["-c", "import os; print(os.path.dirname(os.__file__))"])
        .output()
        .unwrap();
    let s = String::from_utf8(o.stdout).unwrap().trim().to_string();
    std::fs::canonicalize(s)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Run the binary in the project; its exit code must be `code`.
fn nx_code(p: &Project, args: &[&str], code: i32) -> crate::util::Ran {
    let r = p.nx(args);
    assert_eq!(r.status, code, "{args:?}: {}{}", r.stdout, r.stderr);
    r
}

/// The learned files lint clean: no error, no warning, no note.
fn assert_lints_clean(p: &Project, plan: &str) {
    let r = nx_code(
        p,
        &["plan-lint", &format!("learned/plans/{plan}/plan.json")],
        0,
    );
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("no problems found"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

/// Must show: `cat /etc/os-release` learned (file rules only, the object the kernel named:
/// `/etc/os-release` is a symlink, the rule is on what it resolves to), proven; `sandbox`
/// then runs `cat` under the learned profile with the same exit code and output as
/// without it, and refuses a read outside it (status passed through, the kernel's
/// record printed). The same command learned from a registry probe (`--probe`) gives
/// the same rules.
#[test]
fn cat_is_learned_proven_and_enforced_by_sandbox() {
    let _g = crate::kernel_audit::audit_lock();
    let p = Project::empty();
    nx_code(
        &p,
        &["learn", "--out", "learned", "--", "cat", "/etc/os-release"],
        0,
    );
    let l = learned(&p.path("learned"), "learned-cat");
    l.assert_proven("run-cat");
    l.assert_narrow(&[]);
    assert!(l.rounds() <= 3, "{}", l.rounds());
    assert_log_schema(&l.log);
    assert_eq!(l.log["proof"]["exit_code"], 0);
    let target = std::fs::canonicalize("/etc/os-release").unwrap();
    let words = l.words();
    assert!(
        words.contains(&format!("read on {}", target.display())),
        "{words:?}"
    );
    assert_eq!(l.connect_ports(), Vec::<u64>::new());
    assert_eq!(
        l.probes["run-cat"]["reads"],
        serde_json::json!(["/etc/os-release"])
    );
    assert_lints_clean(&p, "learn-cat");
    // Deterministic: learned again, the same bytes (the proof bundle aside).
    nx_code(
        &p,
        &["learn", "--out", "again", "--", "cat", "/etc/os-release"],
        0,
    );
    for f in [
        "learn_log.json",
        "registry/learned/profiles.json",
        "registry/learned/probes.json",
        "plans/learn-cat/plan.json",
    ] {
        assert_eq!(
            std::fs::read(p.path("learned").join(f)).unwrap(),
            std::fs::read(p.path("again").join(f)).unwrap(),
            "{f} differs"
        );
    }

    // `sandbox` under the learned profile.
    let root = p.path("learned");
    let sandbox = |args: &[&str]| crate::util::run_in(&root, args);
    let plain = Command::new("cat").arg("/etc/os-release").output().unwrap();
    let r = sandbox(&[
        "sandbox",
        "--profile",
        "learned-cat",
        "--registry",
        "learned",
        "--",
        "cat",
        "/etc/os-release",
    ]);
    assert_eq!(Some(r.status), plain.status.code(), "{}", r.stderr);
    assert_eq!(r.stdout.as_bytes(), plain.stdout.as_slice());
    let plain = Command::new("cat").arg("/etc/hostname").output().unwrap();
    assert_eq!(plain.status.code(), Some(0));
    let r = sandbox(&[
        "sandbox",
        "--profile",
        "learned-cat",
        "--registry",
        "learned",
        "--kernel-audit",
        "require",
        "--",
        "cat",
        "/etc/hostname",
    ]);
    crate::util::assert_sandbox_refused_hostname_read(&r);

    // `--probe`: the same command as a registry's exec probe.
    std::fs::create_dir_all(p.path("registry/mine")).unwrap();
    std::fs::write(
        p.path("registry/mine/probes.json"),
        r#"{"schema_version": 1, "registry_id": "mine", "probes": {"cat-os-release": {
            "operation": "exec", "driver": "exec", "argv": ["/usr/bin/cat", "/etc/os-release"],
            "reads": ["/etc/os-release"], "timeout_ms": 30000}}}"#,
    )
    .unwrap();
    std::fs::write(
        p.path("registry/mine/profiles.json"),
        r#"{"schema_version": 1, "registry_id": "mine", "profiles": {}}"#,
    )
    .unwrap();
    nx_code(
        &p,
        &[
            "learn",
            "--out",
            "from-probe",
            "--probe",
            "cat-os-release",
            "--registry",
            "mine",
        ],
        0,
    );
    let lp = learned(&p.path("from-probe"), "learned-cat-os-release");
    lp.assert_proven("run-cat-os-release");
    assert_eq!(lp.words(), words);
}

/// Must show: a Python script writing a file in its workspace and reading `/etc/passwd`.
/// The workspace is the run's scratch (`${SCRATCH}/ws`): the host directory the command
/// names is never written. Directory rules only on the workspace and the `--widen-to`
/// standard library; `--never /etc/passwd` is honoured with an error naming it; without
/// `--widen-to` the directory listing it needs is refused with the reason.
#[test]
fn python_writing_its_workspace_and_reading_passwd() {
    let _g = crate::kernel_audit::audit_lock();
    let p = Project::empty();
    let ws = p.path("host-ws");
    let ws_s = ws.to_str().unwrap();
    let script = format!("open('{ws_s}/out.txt', 'w').write(open('/etc/passwd').read())");
    let stdlib = python_stdlib();
    nx_code(
        &p,
        &[
            "learn",
            "--out",
            "learned",
            "--workspace",
            ws_s,
            "--widen-to",
            &stdlib,
            "--",
            "/usr/bin/python3",
            "-c",
            &script,
        ],
        0,
    );
    assert!(!ws.exists(), "the host workspace was written");
    let l = learned(&p.path("learned"), "learned-python3");
    l.assert_proven("run-python3");
    l.assert_narrow(&[stdlib.as_str()]);
    assert!(l.rounds() <= 8, "{}", l.rounds());
    let words = l.words();
    assert!(
        words.contains(&"read on /etc/passwd".to_string()),
        "{words:?}"
    );
    assert!(
        words.contains(&"write,create on ${SCRATCH}/ws".to_string()),
        "{words:?}"
    );
    assert!(words.contains(&format!("read on {stdlib}")), "{words:?}");
    assert_eq!(
        l.probes["run-python3"]["argv"][2],
        "open('${SCRATCH}/ws/out.txt', 'w').write(open('/etc/passwd').read())"
    );
    assert_eq!(
        l.probes["run-python3"]["reads"],
        serde_json::json!(["/etc/passwd"])
    );
    assert!(
        l.scenario
            .iter()
            .any(|(p, _)| p == "control-read-beside-workspace")
    );
    assert_lints_clean(&p, "learn-python3");

    // `--never /etc/passwd`: refused, named, nothing but the log written.
    let r = nx_code(
        &p,
        &[
            "learn",
            "--out",
            "never",
            "--workspace",
            ws_s,
            "--widen-to",
            &stdlib,
            "--never",
            "/etc/passwd",
            "--",
            "/usr/bin/python3",
            "-c",
            &script,
        ],
        1,
    );
    assert!(
        r.stderr.contains("--never path /etc/passwd"),
        "{}",
        r.stderr
    );
    assert!(p.path("never/learn_log.json").exists());
    assert!(!p.path("never/registry").exists());
    let log = read_json(&p.path("never/learn_log.json"));
    assert_eq!(log["result"]["converged"], false);
    assert_log_schema(&log);
    assert!(log["rounds"].as_array().unwrap().iter().any(|r| {
        r["denials"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["decision"] == "refused" && d["object"] == "/etc/passwd")
    }));

    // Without `--widen-to`: the standard library's listing is refused, with the flag that
    // would allow it.
    let r = nx_code(
        &p,
        &[
            "learn",
            "--out",
            "narrow",
            "--workspace",
            ws_s,
            "--",
            "/usr/bin/python3",
            "-c",
            &script,
        ],
        1,
    );
    assert!(
        r.stderr.contains(&format!("`fs.read_dir` on {stdlib}")) && r.stderr.contains("--widen-to"),
        "{}",
        r.stderr
    );
}

/// Must show: `git init` in a workspace.
#[test]
fn git_init_in_a_workspace() {
    let _g = crate::kernel_audit::audit_lock();
    let p = Project::empty();
    let ws = p.path("repo");
    nx_code(
        &p,
        &[
            "learn",
            "--out",
            "learned",
            "--workspace",
            ws.to_str().unwrap(),
            "--",
            "git",
            "init",
            ws.to_str().unwrap(),
        ],
        0,
    );
    assert!(!ws.exists(), "the host workspace was written");
    let l = learned(&p.path("learned"), "learned-git");
    l.assert_proven("run-git");
    l.assert_narrow(&[]);
    assert!(l.rounds() <= 8, "{}", l.rounds());
    let words = l.words();
    assert!(
        words
            .iter()
            .any(|w| w.ends_with(" on ${SCRATCH}/ws") && w.contains("create")),
        "{words:?}"
    );
    assert_lints_clean(&p, "learn-git");
}

/// Must show: a loopback client, its ports granted one by one (one new port per round,
/// nothing else on the network side), while a Landlock-restricted process outside
/// nexusmon is denied reads the whole time: none of its records is attributed to the
/// command. A scope denial (a signal to a process outside the sandbox) cannot be
/// granted, and says so.
#[test]
fn a_loopback_client_gets_its_ports_one_by_one_and_a_scope_is_refused() {
    let _g = crate::kernel_audit::audit_lock();
    let p = Project::empty();
    let listeners: Vec<std::net::TcpListener> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    for l in listeners {
        std::thread::spawn(move || {
            for c in l.incoming() {
                drop(c);
            }
        });
    }
    let marker = p.path("outsider-marker");
    std::fs::write(&marker, "x").unwrap();
    let mut outsider = crate::kernel_audit::outsider(&marker);
    let script = format!(
        "import socket\nfor p in ({}, {}):\n    socket.create_connection(('127.0.0.1', p)).close()\n",
        ports[0], ports[1]
    );
    let stdlib = python_stdlib();
    let r = p.nx(&[
        "learn",
        "--out",
        "learned",
        "--minimize",
        "--widen-to",
        &stdlib,
        "--",
        "/usr/bin/python3",
        "-c",
        &script,
    ]);
    let _ = outsider.kill();
    let _ = outsider.wait();
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let l = learned(&p.path("learned"), "learned-python3");
    l.assert_proven("run-python3");
    l.assert_narrow(&[stdlib.as_str()]);
    assert!(l.rounds() <= 8, "{}", l.rounds());
    let words = l.words();
    let mut want: Vec<u64> = ports.iter().map(|p| u64::from(*p)).collect();
    want.sort_unstable();
    assert_eq!(l.connect_ports(), want);
    assert_eq!(
        l.profile["landlock"]["net"]["tcp_bind"],
        serde_json::json!([])
    );
    // One port per round, in the order the command needs them.
    let per_round: Vec<Vec<String>> = l.log["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["rules_added"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|x| {
                    x.as_str()
                        .filter(|s| s.starts_with("tcp_"))
                        .map(str::to_string)
                })
                .collect()
        })
        .filter(|v: &Vec<String>| !v.is_empty())
        .collect();
    assert_eq!(
        per_round,
        vec![
            vec![format!("tcp_connect {}", ports[0])],
            vec![format!("tcp_connect {}", ports[1])]
        ]
    );
    // `--minimize`: every rule the rounds added was tried away once; the ones kept are the
    // ones the command fails without (both ports among them), and none of those dropped is
    // left in the profile.
    let trials = l.log["minimized"].as_array().unwrap();
    assert!(!trials.is_empty());
    for t in trials {
        let rule = t["rule"].as_str().unwrap().to_string();
        let kept = t["outcome"] == "kept";
        assert_eq!(kept, t["ended"]["exit_code"] != 0, "{t}");
        let in_profile = words.iter().any(|w| {
            let (acc, path) = w.split_once(" on ").unwrap_or((w.as_str(), ""));
            w == &rule || acc.split(',').any(|a| format!("{a} on {path}") == rule)
        });
        assert_eq!(kept, in_profile, "{rule}: {words:?}");
    }
    for p in &ports {
        assert!(
            trials
                .iter()
                .any(|t| t["rule"] == format!("tcp_connect {p}") && t["outcome"] == "kept")
        );
    }
    assert_log_schema(&l.log);
    let text = std::fs::read_to_string(p.path("learned/learn_log.json")).unwrap();
    assert!(
        !text.contains("/etc/hostname") && !text.contains("outsider-marker"),
        "{text}"
    );
    assert_lints_clean(&p, "learn-python3");

    // A connect to an abstract UNIX socket made outside the sandbox: Landlock's scope has
    // no rule that could grant it.
    let name = format!("nexusmon-learn-scope-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let ul = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    std::thread::spawn(move || {
        for c in ul.incoming() {
            drop(c);
        }
    });
    let script = format!("import socket\nsocket.socket(socket.AF_UNIX).connect('\\0{name}')\n");
    let r = nx_code(
        &p,
        &[
            "learn",
            "--out",
            "scoped",
            "--widen-to",
            &stdlib,
            "--",
            "/usr/bin/python3",
            "-c",
            &script,
        ],
        1,
    );
    assert!(
        r.stderr.contains("`scope.abstract_unix_socket`") && r.stderr.contains("cannot be learned"),
        "{}",
        r.stderr
    );
}

/// Paths the kernel hex-encodes in its records: a name with a space and a newline, reached
/// through a symlink, is decoded and granted by the object's own (resolved) path, and the
/// proof is green; a name that is not UTF-8 cannot be written in a profile and is refused
/// with that reason.
#[test]
fn odd_paths_are_decoded_and_granted_by_the_object_or_refused_by_name() {
    use std::os::unix::ffi::OsStrExt as _;
    let _g = crate::kernel_audit::audit_lock();
    let p = Project::empty();
    let dir = std::fs::canonicalize(p.root()).unwrap().join("odd");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("a b\nc");
    std::fs::write(&file, "x\n").unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    nx_code(
        &p,
        &[
            "learn",
            "--out",
            "learned",
            "--",
            "cat",
            link.to_str().unwrap(),
        ],
        0,
    );
    let l = learned(&p.path("learned"), "learned-cat");
    l.assert_proven("run-cat");
    l.assert_narrow(&[]);
    let words = l.words();
    assert!(
        words.contains(&format!("read on {}", file.display())),
        "{words:?}"
    );
    assert!(!words.iter().any(|w| w.contains("/link")), "{words:?}");

    let bad = dir.join(std::ffi::OsStr::from_bytes(b"\xffn"));
    std::fs::write(&bad, "x\n").unwrap();
    let script = format!("open(b'{}/\\xffn').read()", dir.display());
    let r = nx_code(
        &p,
        &[
            "learn",
            "--out",
            "bad",
            "--widen-to",
            &python_stdlib(),
            "--",
            "/usr/bin/python3",
            "-c",
            &script,
        ],
        1,
    );
    assert!(r.stderr.contains("is not valid UTF-8"), "{}", r.stderr);
    assert!(!p.path("bad/registry").exists());
}

/// Bad arguments are refused before anything runs or is written (exit 2), each naming the
/// fix: a widening to `/`, a `--widen-to` containing a `--never` path, a workspace the
/// command never names, no command, and an `--out` that already holds a learned project.
#[test]
fn bad_arguments_are_refused_before_anything_runs() {
    let p = Project::empty();
    let refused = |args: &[&str], says: &str| {
        let r = p.nx(args);
        assert_eq!(r.status, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(!p.path("out1").exists(), "{args:?} wrote something");
    };
    refused(
        &[
            "learn",
            "--out",
            "out1",
            "--widen-to",
            "/",
            "--",
            "cat",
            "/etc/os-release",
        ],
        "never widens a rule to `/`",
    );
    refused(
        &[
            "learn",
            "--out",
            "out1",
            "--widen-to",
            "/etc",
            "--never",
            "/etc/shadow",
            "--",
            "cat",
            "/etc/os-release",
        ],
        "contains the --never path /etc/shadow",
    );
    refused(
        &[
            "learn",
            "--out",
            "out1",
            "--workspace",
            "/tmp/nowhere-ws",
            "--",
            "cat",
            "/etc/os-release",
        ],
        "never name it",
    );
    refused(&["learn", "--out", "out1"], "no command given");
    refused(
        &["learn", "--out", "out1", "--", "no-such-program-xyz"],
        "no such program",
    );
    std::fs::create_dir_all(p.path("taken/registry/learned")).unwrap();
    let r = p.nx(&["learn", "--out", "taken", "--", "cat", "/etc/os-release"]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("exists already"), "{}", r.stderr);
}
