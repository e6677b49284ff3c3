//! The test harness, one for every integration test: a temp project directory
//! ([`Project`]: empty, a copy of a fixture project, or of the shipped examples), the real
//! binary run in it ([`nexusmon`], [`Test`], [`run_in`]), checks on status, stdout, stderr
//! and files, the one list of snapshot filters ([`snapshot_settings`]), the Python that runs
//! the independent validators ([`python`]) and the ssh-keygen helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// The seeded generator of the generated tests: the unit tests' own file, included by path.
#[path = "../../src/util/testrng.rs"]
mod testrng;
pub use testrng::Rng;

/// The repository root (where Cargo.toml is). Tests read `tests/fixtures/` and `schemas/`
/// from it, and the shipped examples only through [`SHIPPED`] / [`Project::shipped`]; never
/// the working tree's `plans/`, `registry/` or `templates/` as a whole.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The built `nexusmon` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nexusmon"))
}

/// The shipped example files, by name: what `Project::shipped` copies and what the tests
/// of the shipped data check. A file a user adds to their checkout is not one of them.
pub const SHIPPED: &[&str] = &[
    "plans/fs-confinement/plan.json",
    "plans/mission-demo/plan.json",
    "plans/net-egress/plan.json",
    "plans/quickstart/plan.json",
    "plans/worker-demo/plan.json",
    "registry/linux-core/probes.json",
    "registry/linux-core/profiles.json",
    "registry/missions/probes.json",
    "registry/missions/profiles.json",
    "registry/workers/probes.json",
    "registry/workers/profiles.json",
    "registry/workers/workers.json",
    "templates/build-tool/template.json",
    "templates/exec-allowlist/template.json",
    "templates/readonly-system/template.json",
    "templates/tcp-egress-allowlist/template.json",
    "templates/workspace-confinement/template.json",
    "workers/http-check.py",
    "workers/script-exec.py",
    "workers/template/worker.py",
    "workers/transform.py",
];

/// The shipped files under `dir` (`plans`, `registry`, `templates`) named one of `names`,
/// as paths in the repository, sorted.
pub fn shipped_files(dir: &str, names: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = SHIPPED
        .iter()
        .filter(|f| f.starts_with(&format!("{dir}/")))
        .filter(|f| names.iter().any(|n| f.ends_with(&format!("/{n}"))))
        .map(|f| repo_root().join(f))
        .collect();
    out.sort();
    out
}

thread_local! {
    /// This test's scratch parent ([`scratch_parent`]), swept and removed when its thread
    /// ends.
    static SCRATCH_PARENT: (SweepOnDrop, tempfile::TempDir) = {
        let t = tempfile::Builder::new()
            .prefix("nx-test-scratch-")
            .tempdir_in(nexusmon::exec::fixtures::Scratch::default_parent())
            .expect("create the test's scratch parent");
        (SweepOnDrop(t.path().to_path_buf()), t)
    };
}

/// The scratch parent of this test's runs: a private directory (where the runner's default
/// is: /dev/shm when writable) made on first use by the test's thread, swept and removed
/// when the test ends. [`nexusmon`] passes it to every command (`NEXUSMON_SCRATCH_PARENT`),
/// so a run sweeps only the killed runs of its own test: the runs of tests running alongside
/// (some kill runners on purpose) are never swept, warned about, or cleaned up before their
/// test looks. A test of the sweep across parents passes `--scratch-parent` itself.
pub fn scratch_parent() -> PathBuf {
    SCRATCH_PARENT.with(|(_, t)| t.path().to_path_buf())
}

/// On drop, `status --clean --scratch-parent` of the directory, if a scratch root is left
/// in it: what the test's killed runs left (processes in their cgroups included) goes with
/// the test, pass or fail, instead of waiting for a run of a directory that no longer
/// exists. Never panics (it may run while a thread ends).
pub struct SweepOnDrop(pub PathBuf);

impl Drop for SweepOnDrop {
    fn drop(&mut self) {
        let left = std::fs::read_dir(&self.0).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("nexusmon-")))
        });
        if left {
            let _ = Command::new(bin())
                .args(["status", "--clean", "--scratch-parent"])
                .arg(&self.0)
                .arg("--out")
                .arg(self.0.join("no-out-root"))
                .env_remove("NEXUSMON_ROOT")
                .env_remove("NEXUSMON_STATE_DIR")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// The command that runs the binary in `dir`: no `NEXUSMON_*` or GitHub Actions variables
/// from the environment, no colour, this test's own scratch parent ([`scratch_parent`]).
/// Every test runs the binary through this (directly, or through [`Test`], [`run_in`] and
/// [`Project::nx`]).
pub fn nexusmon(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    test_env(cmd.current_dir(dir));
    cmd
}

/// The environment every test's nexusmon runs with ([`nexusmon`], [`measure`]): none of the
/// caller's nexusmon or CI variables, this test thread's private scratch parent, no colour.
fn test_env(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("NEXUSMON_ROOT")
        .env_remove("NEXUSMON_STATE_DIR")
        .env_remove("NEXUSMON_RUN_ID")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("NEXUSMON_SCRATCH_PARENT", scratch_parent())
        // Kernel audit is machine-wide state that the kernel-audit tests switch on for
        // their runs; no other test's bundle may depend on whether one of them is running
        // (those tests pass `--kernel-audit` explicitly, which wins over this).
        .env("NEXUSMON_KERNEL_AUDIT", "off")
        .env("NO_COLOR", "1")
}

/// The result of running the binary.
pub struct Ran {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `sandbox -- cat /etc/hostname` under a profile without it, with kernel audit on: `cat`'s
/// own exit status and error, and the kernel's record of the denial printed.
#[track_caller]
pub fn assert_sandbox_refused_hostname_read(r: &Ran) {
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("sandbox: the kernel denied fs.read_file (")
            && r.stderr.contains("path=/etc/hostname"),
        "{}",
        r.stderr
    );
}

impl From<Output> for Ran {
    fn from(out: Output) -> Self {
        Ran {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
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

/// Run the binary in `dir` with `args`.
pub fn run_in(dir: &Path, args: &[&str]) -> Ran {
    nexusmon(dir).args(args).output().unwrap().into()
}

/// A temp project directory: empty, a copy of a fixture project under `tests/fixtures/`,
/// or a copy of the shipped examples. Removed when dropped.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// An empty temp directory.
    pub fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A copy of the fixture project `tests/fixtures/<fixture>` (no state directory).
    pub fn copy_of(fixture: &str) -> Self {
        let p = Self::empty();
        copy_dir(&repo_root().join("tests/fixtures").join(fixture), p.root());
        p
    }

    /// A copy of the shipped examples ([`SHIPPED`]) and `schemas/` (their `$schema`).
    pub fn shipped() -> Self {
        let p = Self::empty();
        for f in SHIPPED {
            let dest = p.path(f);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(repo_root().join(f), dest).unwrap();
        }
        copy_dir(&repo_root().join("schemas"), &p.path("schemas"));
        p
    }

    /// `nexusmon init` run in the project (exit 0).
    pub fn init(self) -> Self {
        self.nx(&["init"]).code(0);
        self
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The state directory `.nexusmon/`.
    pub fn state(&self) -> PathBuf {
        self.path(".nexusmon")
    }

    /// Run the binary in the project root.
    pub fn nx(&self, args: &[&str]) -> Ran {
        run_in(self.root(), args)
    }

    /// `run --plan plans/<plan>/plan.json --out out --channel clean <extra>`.
    pub fn run(&self, plan: &str, extra: &[&str]) -> Ran {
        let plan = format!("plans/{plan}/plan.json");
        let mut args = vec!["run", "--plan", &plan, "--out", "out", "--channel", "clean"];
        args.extend_from_slice(extra);
        self.nx(&args)
    }

    /// The bundle `out/LATEST` names.
    pub fn latest(&self) -> PathBuf {
        latest_bundle(self.root())
    }

    /// `emit-promotion --bundle <bundle> --out <out> <extra>`.
    pub fn emit(&self, bundle: &Path, out: &str, extra: &[&str]) -> Ran {
        let b = bundle.to_str().unwrap();
        let mut args = vec!["emit-promotion", "--bundle", b, "--out", out];
        args.extend_from_slice(extra);
        self.nx(&args)
    }

    /// A JSON file of the project.
    pub fn json(&self, rel: &str) -> serde_json::Value {
        read_json(&self.path(rel))
    }

    /// Run `plan` (exit 0) and emit its packet to `out`; returns the packet.
    pub fn run_and_emit(&self, plan: &str, out: &str) -> serde_json::Value {
        self.run(plan, &[]).code(0);
        self.emit(&self.latest(), out, &[]).code(0);
        self.json(out)
    }

    // --- governance -------------------------------------------------------------------

    /// Generate a key `keys/<name>` (`ed25519` or `rsa`) with ssh-keygen.
    pub fn keygen(&self, name: &str, kind: &str) -> PathBuf {
        ssh_keygen(self.root(), name, kind)
    }

    /// `keytype base64` of a generated key.
    #[allow(clippy::unused_self)]
    pub fn pubkey(&self, key: &Path) -> String {
        ssh_pubkey(key)
    }

    /// Append a trust-file line.
    pub fn trust(&self, line: &str) {
        trust_line(&self.state().join("trusted_signers"), line);
    }

    /// Generate a key for `name` and trust it as an approver.
    pub fn approver(&self, name: &str, kind: &str) -> PathBuf {
        ssh_approver(
            self.root(),
            &self.state().join("trusted_signers"),
            name,
            kind,
        )
    }

    /// Write an unsigned approval record with `approve`; returns its path.
    pub fn approve_unsigned(&self, plan: &str, approver: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(&format!("records/{plan}.{approver}.json"));
        let plan_path = format!("plans/{plan}/plan.json");
        let mut args = vec![
            "approve",
            "--plan",
            &plan_path,
            "--approver",
            approver,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.nx(&args).code(0);
        out
    }

    /// Sign `file` with `ssh-keygen -Y sign` in `namespace`.
    #[allow(clippy::unused_self)]
    pub fn ssh_sign(&self, key: &Path, namespace: &str, file: &Path) {
        ssh_sign(key, namespace, file);
    }

    /// `ssh-keygen -Y verify` of `file` by `principal` against the trust file.
    pub fn ssh_verify(&self, principal: &str, file: &Path) -> std::process::Output {
        Command::new("ssh-keygen")
            .args([
                "-Y",
                "verify",
                "-n",
                "nexusmon-approval-v1",
                "-I",
                principal,
                "-f",
            ])
            .arg(self.state().join("trusted_signers"))
            .arg("-s")
            .arg(format!("{}.sig", file.display()))
            .stdin(std::fs::File::open(file).unwrap())
            .output()
            .unwrap()
    }

    pub fn gov(&self) -> nexusmon::govern::Governance {
        nexusmon::govern::Governance::open(&self.state()).unwrap()
    }

    pub fn plan(&self, plan: &str) -> nexusmon::load::LoadedPlan {
        nexusmon::load::load_plan(&self.path(&format!("plans/{plan}/plan.json"))).unwrap()
    }

    /// The gate for `plan` with `records` (and those found beside the plan).
    pub fn gate(&self, plan: &str, records: &[PathBuf]) -> nexusmon::govern::GateReport {
        self.gov()
            .gate_for(&self.plan(plan), records, false)
            .unwrap()
    }

    /// `missions --json` as a value, keyed by plan id.
    pub fn missions(&self) -> serde_json::Value {
        let r = self.nx(&["--json", "missions"]);
        r.code(0);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let mut by_id = serde_json::Map::new();
        for m in v["missions"].as_array().unwrap() {
            by_id.insert(m["plan_id"].as_str().unwrap_or("?").to_string(), m.clone());
        }
        serde_json::Value::Object(by_id)
    }
}

/// One command line run in a temp directory: `Test::new().args([...]).run()`. The directory
/// is an empty [`Project`]'s; `cwd` runs elsewhere, `write` adds files first.
pub struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Test {
    pub fn new() -> Self {
        Self {
            dir: Project::empty().dir,
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

    /// Registry `id`'s two documents, `registry/<id>/probes.json` and `profiles.json`, with
    /// `probes` and `profiles` as their bodies.
    pub fn registry(
        self,
        id: &str,
        probes: serde_json::Value,
        profiles: serde_json::Value,
    ) -> Self {
        let doc = |kind: &str, body: serde_json::Value| {
            let mut d = serde_json::json!({"schema_version": 1, "registry_id": id});
            d[kind] = body;
            d.to_string()
        };
        self.write(
            &format!("registry/{id}/probes.json"),
            &doc("probes", probes),
        )
        .write(
            &format!("registry/{id}/profiles.json"),
            &doc("profiles", profiles),
        )
    }

    pub fn run(&self) -> Ran {
        let dir = self.cwd.as_deref().unwrap_or(self.dir.path());
        let mut cmd = nexusmon(dir);
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().unwrap().into()
    }
}

// --- snapshots ----------------------------------------------------------------------------

/// `s` with every regex metacharacter escaped.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The one list of snapshot filters: first each of `paths` (a temp directory, the
/// repository) becomes its placeholder, then what varies from run to run: blake3 digests
/// (`[B3]`, and `blake3 [DIGEST]` for the 16-hex short form), 12-hex digest prefixes
/// (`[HEX]`), run ids (`[RUN_ID]`), sizes in KiB (`[SIZE]`) and any other temp directory
/// (`[TMP]`).
pub fn snapshot_filters(paths: &[(&Path, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = paths
        .iter()
        .map(|(p, name)| (regex_escape(&p.to_string_lossy()), (*name).to_string()))
        .collect();
    for (re, to) in [
        (r"[0-9a-f]{64}", "[B3]"),
        (r"blake3 [0-9a-f]{16}", "blake3 [DIGEST]"),
        (r"\b[0-9a-f]{12}\b", "[HEX]"),
        (r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}", "[RUN_ID]"),
        (r"\d+\.\d KiB", "[SIZE]"),
        (r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]"),
    ] {
        out.push((re.to_string(), to.to_string()));
    }
    out
}

/// insta settings with [`snapshot_filters`]: `snapshot_settings(&[(t.path(), "[TMP]")])
/// .bind(|| insta::assert_snapshot!(text))`.
pub fn snapshot_settings(paths: &[(&Path, &str)]) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    for (re, to) in snapshot_filters(paths) {
        s.add_filter(&re, to);
    }
    s
}

// --- Python validators ----------------------------------------------------------------------

/// The command that fixes the test venv.
const PROVISION: &str = "run scripts/test, which creates .venv from tests/requirements.txt";

/// The Python the tests run the independent validators with: `NEXUSMON_TEST_PYTHON` (set
/// by scripts/test to its venv), else `<repo>/.venv/bin/python` when present, else `python3`.
pub fn python_path() -> PathBuf {
    if let Some(p) = std::env::var_os("NEXUSMON_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("python3")
}

/// `<python> -c <script>`, after checking that `modules` (import names: `jsonschema`,
/// `yaml`, `in_toto_attestation`, `google.protobuf`) import; a missing interpreter or module
/// fails the test with the command to run, never with a Python traceback.
#[track_caller]
pub fn python(modules: &[&str], script: &str) -> Command {
    let py = python_path();
    let check = "import importlib, sys\nmissing = []\nfor m in sys.argv[1:]:\n    try:\n        importlib.import_module(m)\n    except Exception:\n        missing.append(m)\nprint(' '.join(missing))";
    let out = Command::new(&py)
        .args(["-c", check])
        .args(modules)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "python `{}` cannot be run ({e}): {PROVISION} (or set NEXUSMON_TEST_PYTHON)",
                py.display()
            )
        });
    let missing = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "python `{}` failed to start: {PROVISION}",
        py.display()
    );
    if !missing.is_empty() {
        let names: Vec<String> = missing.split(' ').map(pip_name).collect();
        panic!(
            "python module {} missing: {PROVISION} (python: {})",
            names.join(", "),
            py.display()
        );
    }
    let mut cmd = Command::new(py);
    cmd.arg("-c").arg(script);
    cmd
}

/// The module `m` as named in tests/requirements.txt, when that differs.
fn pip_name(m: &str) -> String {
    match m {
        "yaml" => "yaml (PyYAML)".to_string(),
        "google.protobuf" => "google.protobuf (protobuf)".to_string(),
        m if m.starts_with("in_toto_attestation") => format!("{m} (in-toto-attestation)"),
        m => m.to_string(),
    }
}

/// A JSON file, parsed (the path in the panic message).
pub fn read_json(p: &Path) -> serde_json::Value {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Rewrite the JSON file `p` (pretty) after `f` changed its value.
pub fn edit_json(p: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v = read_json(p);
    f(&mut v);
    std::fs::write(p, serde_json::to_vec_pretty(&v).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

/// The items of the JSON Lines result file `file` of `bundle` (result schema version 2), each
/// with the shared values its `$shared` names merged back, as one JSON array. Written here
/// without nexusmon's reader: the format is meant to be read by anyone.
pub fn results(bundle: &Path, file: &str) -> serde_json::Value {
    let shared = read_json(&bundle.join("shared_values.json"));
    let text = std::fs::read_to_string(bundle.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", bundle.join(file).display()));
    let mut out = Vec::new();
    for line in text.lines() {
        let mut v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{file}: {e}: {line}"));
        let obj = v.as_object_mut().unwrap();
        if let Some(ids) = obj.remove("$shared") {
            for id in ids.as_array().unwrap() {
                let group = shared["values"][id.as_str().unwrap()].as_object().unwrap();
                for (k, val) in group {
                    assert!(obj.insert(k.clone(), val.clone()).is_none(), "{k} twice");
                }
            }
        }
        out.push(v);
    }
    serde_json::Value::Array(out)
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
    latest_in(&root.join("out"))
}

/// The sealed bundle the `LATEST` of out root `out` names.
pub fn latest_in(out: &Path) -> PathBuf {
    let v = read_json(&out.join("LATEST"));
    out.join(v["run_id"].as_str().unwrap())
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

/// An allowed-signers line for `key` as principal `who` with role `runner` (`extra`: options
/// before the key, each ending in a space).
pub fn runner_signer_line(who: &str, key: &Path, extra: &str) -> String {
    format!("{who} {extra}{} {who}@host roles=runner\n", ssh_pubkey(key))
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

// --- headless Chromium --------------------------------------------------------------------

/// Load `page` (a local file) in headless Chromium, with no network, no sync, no first-run
/// work and a fresh profile directory. With `screenshot`, write a PNG of the page there;
/// otherwise return the DOM after scripts ran (`--dump-dom`). A missing `chromium` fails
/// the test with the command that installs it.
pub fn chromium(page: &Path, screenshot: Option<&Path>) -> String {
    chromium_url(&format!("file://{}", page.display()), screenshot)
}

/// [`chromium`] for a URL (`http://127.0.0.1:PORT/…` of a server the test started).
pub fn chromium_url(url: &str, screenshot: Option<&Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,1000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(png) => cmd.arg(format!("--screenshot={}", png.display())),
        None => cmd.arg("--dump-dom"),
    };
    cmd.arg(url);
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("chromium cannot be run ({e}): run scripts/test, which installs the Debian package `chromium`")
    });
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A run of the binary with what it cost: wall time and the peak resident set size of the
/// binary itself (KiB).
pub struct Measured {
    pub status: i32,
    /// Killed by this signal (a crash), if it was.
    pub signal: Option<i32>,
    pub wall: std::time::Duration,
    pub max_rss_kib: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Measured {
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Run the binary in `dir` with `args` (as [`nexusmon`] does: clean environment, stdin
/// closed, outputs captured) and measure it. The peak RSS is GNU time's (`%M`, from the
/// `wait4` of a child it forked itself): a child spawned straight from this test process
/// would report this process's own RSS, since Linux keeps the pre-exec high-water mark
/// across `execve`; wall time depends on the machine's load, so compare it with generous
/// bounds only. A run longer than a minute is killed (the test then fails on the signal).
pub fn measure(dir: &Path, args: &[&str]) -> Measured {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let rss_file = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(rss_file.path())
        .arg("--")
        .arg(bin())
        .args(args)
        .current_dir(dir);
    test_env(&mut cmd)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = std::time::Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("/usr/bin/time cannot run ({e}): {PROVISION}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let pgid = i32::try_from(child.id()).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let watchdog = std::thread::spawn(move || {
        let until = std::time::Instant::now() + std::time::Duration::from_mins(1);
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            if std::time::Instant::now() > until {
                // SAFETY: kill(2) of our own child's process group, not yet reaped.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    let status = child.wait().unwrap();
    let wall = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watchdog.join();
    let stderr = t_err.join().unwrap();
    let text = std::fs::read_to_string(rss_file.path()).unwrap_or_default();
    // GNU time writes "Command terminated by signal N" before the figure when it was.
    let signal = text
        .lines()
        .find_map(|l| l.strip_prefix("Command terminated by signal "))
        .and_then(|n| n.trim().parse().ok());
    let max_rss_kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(i64::MAX);
    Measured {
        status: status.code().unwrap_or(-1),
        signal,
        wall,
        max_rss_kib,
        stdout: t_out.join().unwrap(),
        stderr,
    }
}

/// The isolation of a child switched (`identity`) to uid and gid `uid`, keeping the
/// capabilities of mask `kept`, in a PID namespace or not, in scratch `d`.
pub fn isolation(
    runner: &nexusmon::sandbox::privilege::RunnerPrivileges,
    d: &Path,
    uid: u32,
    identity: bool,
    kept: u64,
    pid_namespace: bool,
) -> nexusmon::sandbox::privilege::Isolation {
    use nexusmon::model::results::ChildPrivileges;
    use nexusmon::sandbox::privilege::{self, ChildRequest, Isolation};
    let privileges = ChildPrivileges {
        applied: true,
        uid,
        gid: uid,
        identity,
        capabilities: privilege::caps_names(kept),
        cap_last: runner.cap_last,
        bounding_cleared: true,
        pid_namespace,
        namespace_init: None,
        pid_namespace_reason: None,
        baseline_host_read_only: privilege::RO_MOUNT_NAMESPACE.into(),
        baseline_host_reason: None,
        runner_environ: String::new(),
    };
    Isolation::new(&ChildRequest {
        privileges: &privileges,
        pid_namespace: Ok(()),
        scratch: d,
        host_read_only: false,
        read_only_inputs: &[],
    })
    .0
}

/// One generated case of [`LeftoverCases`].
pub struct LeftoverCase {
    /// The shell script the child runs.
    pub script: String,
    /// Whether it leaves something behind in its PID namespace.
    pub left: bool,
}

/// How many kinds of leftover [`leftover_script`] draws from.
const LEFTOVER_KINDS: usize = 7;

/// The generated cases of a test of the PID namespace's leftover check (`run_spawn_ns`,
/// `run_forkserver`): the scripts ([`LeftoverCases::next`]), the verdicts of the two
/// `children` files and of the listing on each ([`LeftoverCases::judge`]), and what the
/// cases covered ([`LeftoverCases::assert_covered`]).
#[derive(Default)]
pub struct LeftoverCases {
    /// The leftovers drawn, by kind.
    kinds: [usize; LEFTOVER_KINDS],
    /// Cases that left nothing, and cases that left something.
    clean: usize,
    left: usize,
}

impl LeftoverCases {
    /// The next case ([`leftover_script`]).
    pub fn next(&mut self, rng: &mut Rng) -> LeftoverCase {
        let (script, left) = leftover_script(rng, &mut self.kinds);
        LeftoverCase { script, left }
    }

    /// After a generated pause (none, or up to 20 ms), the check of `init`'s namespace once
    /// `child` (a zombie of the process or thread whose `children` file is
    /// `parent_children`) exited: the two files (`NsInit::holds_nothing_but`) and the
    /// listing (`NsInit::holds_only_the_child`) must both say "left" exactly when `this`
    /// leaves something; a namespace with leftovers is then killed. Returns the case's
    /// description (`case` its number), for the caller's later assertions.
    pub fn judge(
        &mut self,
        rng: &mut Rng,
        case: usize,
        this: &LeftoverCase,
        init: &nexusmon::exec::zygote::NsInit,
        parent_children: std::os::fd::RawFd,
        child: u32,
    ) -> String {
        if rng.chance(50) {
            std::thread::sleep(std::time::Duration::from_millis(rng.below(20u64)));
        }
        let fast = init.holds_nothing_but(parent_children, child);
        let listed = init.holds_only_the_child();
        let what = format!(
            "case {case}: `{}`: fast {fast}, listed {listed:?}",
            this.script
        );
        if this.left {
            self.left += 1;
            assert!(!fast, "{what}");
            assert_eq!(listed, Some(false), "{what}");
            init.kill();
        } else {
            self.clean += 1;
            assert!(fast, "{what}");
            assert_eq!(listed, Some(true), "{what}");
        }
        what
    }

    /// More than five cases of each verdict, and every kind of leftover drawn.
    pub fn assert_covered(&self) {
        let (clean, left, kinds) = (self.clean, self.left, self.kinds);
        assert!(clean > 5 && left > 5, "{clean} {left}");
        assert!(kinds.iter().all(|k| *k > 0), "{kinds:?}");
    }
}

/// A shell script for the tests of the PID namespace's leftover check
/// (`run_spawn_ns`, `run_forkserver`), and whether it leaves something behind in the
/// namespace it runs in (two cases in three): a background process, a `setsid` one, a
/// double fork, a `CLONE_PARENT` sibling that lives on or starts a process and exits, a
/// nested PID namespace, a process that moves to the root cgroup, one or more of them; else
/// a script that leaves nothing. `kinds` counts the leftovers drawn, by kind.
fn leftover_script(rng: &mut Rng, kinds: &mut [usize; LEFTOVER_KINDS]) -> (String, bool) {
    let mut parts: Vec<String> = Vec::new();
    let left = rng.below(3u8) != 0;
    // The script's process itself (perl, exec'd last) clones a sibling with `CLONE_PARENT
    // | SIGCHLD`: a child of its own parent (the cloning thread, the server), which lives
    // on, or starts a process and exits.
    let mut sibling = None;
    if left {
        loop {
            let k = rng.below(LEFTOVER_KINDS);
            kinds[k] += 1;
            match k {
                0 => parts.push("(exec >/dev/null 2>&1; sleep 1000) &".into()),
                1 => parts.push("setsid sleep 1000 >/dev/null 2>&1 &".into()),
                2 => parts.push("( (sleep 1000 >/dev/null 2>&1 &) & )".into()),
                3 => sibling = Some("exec \"sleep\", \"1000\";"),
                4 => sibling = Some("if (fork() == 0) { exec \"sleep\", \"1000\"; } exit 0;"),
                5 => parts.push("unshare --pid --fork sleep 1000 >/dev/null 2>&1 &".into()),
                _ => parts.push(
                    "(exec >/dev/null 2>&1; sh -c 'echo $$ > /sys/fs/cgroup/cgroup.procs \
                     || echo $$ > /sys/fs/cgroup/pids/cgroup.procs; exec sleep 1000') &"
                        .into(),
                ),
            }
            if !rng.chance(35) {
                break;
            }
        }
        // Give a background process time to start before the script's process exits.
        parts.push("sleep 0.02".into());
        if let Some(body) = sibling {
            parts.push(format!(
                "exec perl -e 'if (syscall(56, 0x8000 | 17, 0, 0, 0, 0) == 0) {{ \
                 open STDOUT, \">/dev/null\"; open STDERR, \">/dev/null\"; {body} }} exit 0'"
            ));
        }
    } else {
        parts.push(["true", "echo hi >/dev/null", "sleep 0.01"][rng.below(3u8) as usize].into());
    }
    (parts.join("\n"), left)
}
