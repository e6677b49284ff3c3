//! The test harness: a temp project directory, the real binary, and checks on status,
#![allow(dead_code)]
//! stdout, stderr and files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The built `nexusmon` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nexusmon"))
}

/// A test: a temp dir, a command line, and the result.
pub struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
}

/// The result of running the binary.
pub struct Ran {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn arg(mut self, a: impl AsRef<str>) -> Self {
        self.args.push(a.as_ref().to_string());
        self
    }

    pub fn args<I, S>(mut self, a: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(a.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    pub fn cwd(mut self, p: impl AsRef<Path>) -> Self {
        self.cwd = Some(p.as_ref().to_path_buf());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn write(self, rel: &str, content: &str) -> Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn run(&self) -> Ran {
        let mut cmd = Command::new(bin());
        cmd.args(&self.args);
        cmd.current_dir(
            self.cwd
                .clone()
                .unwrap_or_else(|| self.dir.path().to_path_buf()),
        );
        cmd.env_remove("NEXUSMON_ROOT")
            .env_remove("NEXUSMON_STATE_DIR")
            .env_remove("NEXUSMON_RUN_ID");
        cmd.env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let Output {
            status,
            stdout,
            stderr,
        } = cmd.output().unwrap();
        Ran {
            status: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Ran {
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.status, want,
            "exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Run the binary in `dir` with `args` (no `NEXUSMON_*` variables from the environment).
pub fn run_in(dir: &Path, args: &[&str]) -> Ran {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("NEXUSMON_ROOT")
        .env_remove("NEXUSMON_STATE_DIR")
        .env_remove("NEXUSMON_RUN_ID")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    Ran {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Copy the tree `from` into `to` (created).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The sealed bundle `<root>/out/LATEST` names.
pub fn latest_bundle(root: &Path) -> PathBuf {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("out/LATEST")).unwrap()).unwrap();
    root.join("out").join(v["run_id"].as_str().unwrap())
}

/// A real packet: run `plans/<plan>/plan.json` in project `root` (out root `out/`; the run
/// must exit `code`), then `emit-promotion --bundle <its bundle> --out <root>/<out>`.
/// Returns the packet's path.
pub fn run_and_emit(root: &Path, plan: &str, code: i32, out: &str) -> PathBuf {
    let plan_path = format!("plans/{plan}/plan.json");
    run_in(root, &["run", "--plan", &plan_path]).code(code);
    emit_packet(root, &latest_bundle(root), out)
}

/// `emit-promotion --bundle <bundle> --out <root>/<out>` (exit 0); returns the packet's path.
pub fn emit_packet(root: &Path, bundle: &Path, out: &str) -> PathBuf {
    let packet = root.join(out);
    run_in(
        root,
        &[
            "emit-promotion",
            "--bundle",
            bundle.to_str().unwrap(),
            "--out",
            packet.to_str().unwrap(),
        ],
    )
    .code(0);
    packet
}

/// Generate an unencrypted key `<dir>/keys/<name>` (`ed25519` or `rsa`) with ssh-keygen.
pub fn ssh_keygen(dir: &Path, name: &str, kind: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let key = dir.join("keys").join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&key);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    key
}

/// `keytype base64` of a key generated by [`ssh_keygen`].
pub fn ssh_pubkey(key: &Path) -> String {
    let text = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Append a line to the trust file `trust`.
pub fn trust_line(trust: &Path, line: &str) {
    let mut text = std::fs::read_to_string(trust).unwrap();
    text.push_str(line);
    text.push('\n');
    std::fs::write(trust, text).unwrap();
}

/// Generate a key for `name` under `dir` and trust it as an approver in `trust`.
pub fn ssh_approver(dir: &Path, trust: &Path, name: &str, kind: &str) -> PathBuf {
    let key = ssh_keygen(dir, name, kind);
    trust_line(
        trust,
        &format!(
            "{name} namespaces=\"nexusmon-approval-v1\" {} {name}@ops roles=approver",
            ssh_pubkey(&key)
        ),
    );
    key
}

/// Sign `file` with `ssh-keygen -Y sign` in `namespace` (writes `<file>.sig`).
pub fn ssh_sign(key: &Path, namespace: &str, file: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", namespace, "-f"])
        .arg(key)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
