//! `nexusmon sandbox --profile ID -- CMD ARGS…`: a real command run under a registry profile
//! through the very path a plan's scenario lane takes.
//!
//! The command becomes one exec probe of a one-scenario plan (scenario and oracle lanes, no
//! baseline: the command runs once) in a private project: the registry's profiles file is
//! copied byte for byte beside the generated probe, so the profile is loaded, compiled,
//! preflighted and applied by the same code as in `run`, with the same child setup (clean
//! environment, rlimits, capability drop, namespaces, Landlock, seccomp). The run is sealed
//! like any other — into `--record OUT`, or into the private project, which is removed
//! afterwards — and the command's exit status, output and kernel denials are read back
//! from that bundle. What the user gets is what the bundle proves.

use std::path::{Path, PathBuf};

use super::settings::{NullSink, RunSettings};
use crate::model::results::{KernelAuditMode, KernelAuditReport, KernelDenial, Outcome};
use crate::util::fsx;
use crate::{Error, Result};

/// The probe id the command gets.
pub const COMMAND_PROBE: &str = "command";
/// The output kept per stream (the rest is counted, and said).
pub const COMMAND_OUTPUT_CAP: u64 = 16 << 20;

/// What `sandbox` is asked.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    /// The project root (where `registry/` is searched).
    pub root: PathBuf,
    /// The profile.
    pub profile: String,
    /// The registry holding it (`None`: the one registry of the project that has it).
    pub registry: Option<String>,
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Wall timeout.
    pub timeout_ms: u64,
    /// `--record OUT`: keep the sealed bundle in this out root.
    pub record: Option<PathBuf>,
    /// `--kernel-audit`.
    pub kernel_audit: KernelAuditMode,
    /// `--scratch-parent` (checked; `None`: the default).
    pub scratch_parent: Option<PathBuf>,
}

/// What the command did.
#[derive(Debug, Clone)]
pub struct CommandOutcome {
    /// The exit status to pass through: the command's exit code, 128 + the signal that
    /// killed it, 5 if the profile could not be applied, 3 if it could not be started.
    pub exit_code: i32,
    /// Why, when the command did not end by itself (timeout, apply failure, spawn error).
    pub problem: Option<String>,
    /// Its stdout and stderr, as kept.
    pub stdout: Vec<u8>,
    /// stderr.
    pub stderr: Vec<u8>,
    /// True if output beyond [`COMMAND_OUTPUT_CAP`] was discarded.
    pub truncated: bool,
    /// The kernel's records of what was denied (`None`: not collected).
    pub kernel_denials: Option<Vec<KernelDenial>>,
    /// Whether they were collected, and why not.
    pub kernel_audit: Option<KernelAuditReport>,
    /// The sealed bundle, with `--record`.
    pub bundle: Option<PathBuf>,
    /// The registry used.
    pub registry: String,
}

/// Run the command under the profile (see the module doc).
pub fn sandbox_command(req: &CommandRequest) -> Result<CommandOutcome> {
    if req.argv.is_empty() {
        return Err(Error::usage(
            "no command given: `nexusmon sandbox --profile ID -- CMD ARGS…`",
        ));
    }
    let (registry, profiles_file) = find_profile(&req.root, &req.profile, req.registry.as_deref())?;
    // The program as an absolute path (exec probes name one), found on the caller's PATH.
    let mut argv = req.argv.clone();
    let program = super::child::which(&argv[0], std::env::var("PATH").ok().as_deref(), &req.root)
        .ok_or_else(|| {
        Error::usage(format!("`{}`: no such program on PATH", argv[0]))
            .with_hint("give the program's absolute path")
    })?;
    argv[0] = fsx::absolute(&program)?.to_string_lossy().into_owned();
    let ext = profiles_file
        .extension()
        .map_or_else(|| "json".to_string(), |e| e.to_string_lossy().into_owned());
    let mut out = run_one(&OneCommand {
        registry: &registry,
        profiles: (&fsx::read(&profiles_file)?, &ext),
        profile: &req.profile,
        argv: &argv,
        timeout_ms: req.timeout_ms,
        record: req.record.as_deref(),
        kernel_audit: req.kernel_audit,
        scratch_parent: req.scratch_parent.as_deref(),
    })?;
    out.registry = registry;
    Ok(out)
}

/// One command under one profile of a registry given as its profiles file's bytes.
#[derive(Debug, Clone, Copy)]
pub struct OneCommand<'a> {
    /// The registry id.
    pub registry: &'a str,
    /// The profiles file's bytes and extension (`json`, `yaml`).
    pub profiles: (&'a [u8], &'a str),
    /// The profile.
    pub profile: &'a str,
    /// The command.
    pub argv: &'a [String],
    /// Wall timeout.
    pub timeout_ms: u64,
    /// Keep the bundle in this out root.
    pub record: Option<&'a Path>,
    /// `--kernel-audit`.
    pub kernel_audit: KernelAuditMode,
    /// Where the run's scratch root is created (`None`: the default parent).
    pub scratch_parent: Option<&'a Path>,
}

/// Run `c` as a one-scenario plan in a private project (removed after) and read the
/// command's observation back from the sealed bundle.
pub fn run_one(c: &OneCommand<'_>) -> Result<CommandOutcome> {
    let work = PrivateDir::create()?;
    let project = work.0.clone();
    let reg_dir = project.join("registry").join(c.registry);
    fsx::create_dir_all(&reg_dir)?;
    fsx::write_new(
        &reg_dir.join(format!("profiles.{}", c.profiles.1)),
        c.profiles.0,
    )?;
    let probes = serde_json::json!({
        "schema_version": 1,
        "registry_id": c.registry,
        "probes": {
            COMMAND_PROBE: {
                "operation": "exec",
                "driver": "exec",
                "argv": c.argv,
                "timeout_ms": c.timeout_ms,
                "notes": "the command given to `nexusmon sandbox`",
            }
        }
    });
    fsx::write_new(
        &reg_dir.join("probes.json"),
        &crate::util::json::to_sorted_pretty(&probes)?,
    )?;
    let plan_dir = project.join("plans").join("sandbox");
    fsx::create_dir_all(&plan_dir)?;
    let plan = serde_json::json!({
        "schema_version": 1,
        "plan_id": "sandbox",
        "kind": "experiment",
        "description": "One command run by `nexusmon sandbox` under a registry profile.",
        "registry_id": c.registry,
        "profiles": [c.profile],
        "scenarios": {c.profile: {COMMAND_PROBE: "allow"}},
        "lanes": {"baseline": false, "scenario": true, "oracle": true},
        "execution": {"retries": 0, "output_cap_bytes": COMMAND_OUTPUT_CAP},
    });
    let plan_path = plan_dir.join("plan.json");
    fsx::write_new(&plan_path, &crate::util::json::to_sorted_pretty(&plan)?)?;
    let out_root = match c.record {
        Some(o) => fsx::absolute(o)?,
        None => project.join("out"),
    };
    let mut settings = RunSettings::new(plan_path, project.clone(), out_root);
    settings.kernel_audit = c.kernel_audit;
    settings.scratch_parent = c.scratch_parent.map(Path::to_path_buf);
    settings.lint_waivers = vec![(
        "NX221",
        "`sandbox` runs the command once, in the scenario lane: there is no baseline lane whose unconfined run the argv lint protects the host from".into(),
    )];
    settings.command_line = std::iter::once("nexusmon sandbox".to_string())
        .chain(c.argv.iter().cloned())
        .collect();
    let outcome = super::execute(settings, &mut NullSink)?;
    let Some(bundle) = outcome.bundle.clone() else {
        return Err(Error::runner("the sandbox run sealed no bundle"));
    };
    let mut read = read_back(&bundle, &format!("{}:{COMMAND_PROBE}", c.profile))?;
    read.kernel_audit = outcome.summary.and_then(|s| s.kernel_audit);
    read.bundle = c.record.is_some().then_some(bundle);
    read.registry = c.registry.to_string();
    Ok(read)
}

/// The registry holding `profile` and its profiles file.
fn find_profile(root: &Path, profile: &str, registry: Option<&str>) -> Result<(String, PathBuf)> {
    let reg_root = root.join("registry");
    let candidates: Vec<String> = match registry {
        Some(r) => vec![r.to_string()],
        None => fsx::read_dir_sorted(&reg_root)
            .map_err(|e| {
                e.with_hint("run in a project (a directory with `registry/`) or pass --root")
            })?
            .into_iter()
            .filter(|p| p.is_dir())
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
    };
    let mut found = Vec::new();
    let mut known = Vec::new();
    for r in &candidates {
        let dir = reg_root.join(r);
        let reg = crate::load::Registry::load(&dir)?;
        if reg.profiles.profiles.keys().any(|k| k.as_str() == profile) {
            found.push((r.clone(), crate::load::find_data_file(&dir, "profiles")?));
        }
        known.extend(
            reg.profiles
                .profiles
                .keys()
                .map(std::string::ToString::to_string),
        );
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => {
            let hint =
                crate::util::suggest::did_you_mean(profile, known.iter().map(String::as_str))
                    .map_or_else(
                        || "`nexusmon list-profiles` lists them".to_string(),
                        |s| format!("did you mean `{s}`?"),
                    );
            Err(Error::usage(format!(
                "no profile `{profile}` in {}",
                match registry {
                    Some(r) => format!("registry `{r}` ({})", reg_root.join(r).display()),
                    None => format!("any registry under {}", reg_root.display()),
                }
            ))
            .with_hint(hint))
        }
        _ => Err(Error::usage(format!(
            "profile `{profile}` is in several registries ({}): say which with --registry",
            found
                .iter()
                .map(|(r, _)| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The command's observation, read from the sealed bundle.
fn read_back(bundle: &Path, scenario_id: &str) -> Result<CommandOutcome> {
    let b = crate::bundle::load_bundle(bundle)?;
    let shared = b.shared_values()?;
    let mut found = None;
    b.for_each_line(
        crate::bundle::RUNTIME_RESULTS,
        &shared,
        &mut |o: crate::model::results::Observation| {
            if found.is_none() && o.scenario_id == scenario_id {
                found = Some(o);
            }
            Ok(())
        },
    )?;
    let Some(obs) = found else {
        return Err(Error::runner(format!(
            "the sandbox bundle {} has no observation of `{scenario_id}`",
            bundle.display()
        )));
    };
    let a = &obs.result;
    let log = |s: &crate::model::results::StreamCapture| -> Result<Vec<u8>> {
        match &s.log {
            Some(rel) => b.read_verified(rel),
            None => Ok(Vec::new()),
        }
    };
    let (exit_code, problem) = match (a.outcome, a.exit_code, &a.signal) {
        (Outcome::ApplyFailed, _, _) => (
            crate::exit_code::NOT_ENFORCEABLE,
            Some(format!("the profile could not be applied: {}", a.detail)),
        ),
        (Outcome::Timeout, _, _) => (124, Some(a.detail.clone())),
        (_, Some(c), _) => (c, None),
        (_, None, Some(sig)) => (128 + signal_number(sig), Some(format!("killed by {sig}"))),
        _ => (
            crate::exit_code::RUNNER_FAILED,
            Some(format!("the command did not run: {}", a.detail)),
        ),
    };
    Ok(CommandOutcome {
        exit_code,
        problem,
        stdout: log(&a.stdout)?,
        stderr: log(&a.stderr)?,
        truncated: a.stdout.truncated || a.stderr.truncated,
        kernel_denials: a.kernel_denials.clone(),
        kernel_audit: None,
        bundle: None,
        registry: String::new(),
    })
}

/// `SIGKILL` → 9 (the names `exec::child` writes).
fn signal_number(name: &str) -> i32 {
    const NAMES: [(&str, i32); 12] = [
        ("SIGHUP", libc::SIGHUP),
        ("SIGINT", libc::SIGINT),
        ("SIGQUIT", libc::SIGQUIT),
        ("SIGILL", libc::SIGILL),
        ("SIGABRT", libc::SIGABRT),
        ("SIGBUS", libc::SIGBUS),
        ("SIGFPE", libc::SIGFPE),
        ("SIGKILL", libc::SIGKILL),
        ("SIGSEGV", libc::SIGSEGV),
        ("SIGPIPE", libc::SIGPIPE),
        ("SIGTERM", libc::SIGTERM),
        ("SIGSYS", libc::SIGSYS),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, v)| *v)
}

/// A private directory (0700) removed on drop.
pub(super) struct PrivateDir(pub(super) PathBuf);

impl PrivateDir {
    pub(super) fn create() -> Result<Self> {
        let base = std::env::temp_dir();
        for n in 0..100u32 {
            let p = base.join(format!(
                "nexusmon-sandbox-{}-{}-{n}",
                std::process::id(),
                crate::sandbox::audit::now_ms()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(Self(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create a private directory", &p, e)),
            }
        }
        Err(Error::runner(format!(
            "cannot create a private directory in {}",
            base.display()
        )))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

use std::os::unix::fs::DirBuilderExt as _;
