//! `nexusmon learn -- CMD ARGS…` (and `learn --probe ID`): a policy learned from what the
//! kernel denied a real command, then proven by a sealed run.
//!
//! The command becomes an exec probe of a one-profile plan run in a private project (the
//! same path as `run` and `sandbox`: compiled profile, preflight, the scenario lane's child
//! setup), with `--kernel-audit require` so the kernel's Landlock records of the command's
//! own domain come back attributed to it (`sandbox::audit`: by the domain's creating pid,
//! never another process's; audit is enabled for each round and put back after, also on
//! an error or an interrupt).
//!
//! 1. Round 1 runs the command in the baseline lane (no policy: the exit status to reach)
//!    and under a deny-all profile: every filesystem right of the host's ABI handled, TCP
//!    connect and bind handled with no port, both scopes; only the program (`read`, `exec`),
//!    its `#!`/ELF interpreters (`exec`) and its shared libraries (`read`) granted, each by
//!    its resolved path.
//! 2. Each denial of a round that did not end as the baseline did gets the narrowest rule
//!    that covers it ([`synth`]'s table); the next round runs with it. A round that ends as
//!    the baseline did ends learning: the denials it still shows are tolerated by the
//!    command and recorded, not granted. A round that adds no rule stops with an error
//!    naming every denial and why it was not granted; so does `--max-rounds`.
//!    Every grantable denial of a failing round is granted (the kernel does not say which
//!    one made it fail); `--minimize` then runs the command once without each rule the
//!    rounds added and drops those it still ends as in the baseline without.
//! 3. The learned profile, the command's exec probe, negative controls (a read of an
//!    existing, readable sibling of every rule's path; a file created outside the
//!    workspace; a connect to a loopback listener on a port not granted) and a plan are
//!    written into `--out DIR` as a project (`registry/<R>/`, `plans/<plan>/`), with
//!    `learn_log.json` (every round: what was denied, what rule was added, why). That plan
//!    is then run like any plan into `DIR/out/`: its sealed bundle is the proof.
//!
//! The workspace. The baseline lane keeps the host read-only outside the child's scratch
//! directory, so a command that writes runs with its workspace at `${SCRATCH}/ws` (a `dir`
//! fixture): `--workspace DIR` names the directory as the command line has it, and every
//! occurrence of `DIR` in the arguments is rewritten to `${SCRATCH}/ws` — the rounds and
//! the proof write only into run scratch, a fresh empty workspace each time, and the host
//! paths the arguments still name are declared in the probe's `reads` (lint NX221). The
//! learned profile's workspace rule is on `${SCRATCH}/ws`.
//!
//! Symlinks and odd paths. The kernel names the object it denied by its resolved path
//! (`d_path`, hex-encoded in the record when it holds odd bytes; `sandbox::audit` decodes
//! it) and its inode. Landlock ties a rule to an inode, so learn grants exactly that object:
//! the path must resolve to itself (no symlink or `..` on the way), still be the inode the
//! kernel named, and be valid UTF-8 (a profile is JSON); otherwise the denial is refused
//! with the reason. A path with a newline or a space is fine — it is written as a JSON
//! string.

mod project;
pub mod synth;

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::command::PrivateDir;
use super::settings::{NullSink, RunSettings};
use crate::error::ErrorKind;
use crate::model::learn::{
    LearnDecision, LearnDenial, LearnEnding, LearnLog, LearnProof, LearnResult, LearnRound,
    LearnRule, LearnTrial,
};
use crate::model::registry::{Access, Fixture, Probe};
use crate::model::results::{KernelAuditMode, KernelAuditState, Lane, Outcome};
use crate::util::fsx;
use crate::{Error, Result};
use project::{probe_json, profile_json, rules_in_words, write_project};
use synth::{Bounds, Decision, Denied, Grant, Policy, WORKSPACE, beneath};

/// The default `--max-rounds`.
pub const DEFAULT_MAX_ROUNDS: u32 = 12;
/// The registry id of the learned files (default).
pub const DEFAULT_REGISTRY: &str = "learned";

/// What `learn` is asked.
#[derive(Debug, Clone)]
pub struct LearnRequest {
    /// The project root (for `--probe`).
    pub root: PathBuf,
    /// The command (empty with `--probe`).
    pub argv: Vec<String>,
    /// `--probe ID`: an exec probe of a registry instead of a command.
    pub probe: Option<String>,
    /// `--registry R` (with `--probe`).
    pub registry: Option<String>,
    /// `--workspace DIR`.
    pub workspace: Option<String>,
    /// `--widen-to DIR`.
    pub widen: Vec<PathBuf>,
    /// `--never PATH`.
    pub never: Vec<PathBuf>,
    /// `--max-rounds`.
    pub max_rounds: u32,
    /// `--out DIR`: the project the learned files and the proof go into.
    pub out: PathBuf,
    /// `--name`: the profile is `learned-<name>` (default: the program's file name).
    pub name: Option<String>,
    /// Wall timeout per run of the command.
    pub timeout_ms: u64,
    /// `--minimize`: after learning, try each added rule away once and drop those the
    /// command does without.
    pub minimize: bool,
    /// `--scratch-parent` (checked; `None`: the default).
    pub scratch_parent: Option<PathBuf>,
}

/// What `learn` did.
#[derive(Debug, Clone)]
pub struct LearnOutcome {
    /// The rounds run (the last one ended as the baseline did).
    pub rounds: u32,
    /// The learned rules, in words, sorted.
    pub rules: Vec<String>,
    /// The registry id, profile id, probe id and plan id written.
    pub ids: LearnedIds,
    /// The files written, sorted.
    pub files: Vec<PathBuf>,
    /// The proof run's exit code (0: green), reason and bundle.
    pub proof_exit: i32,
    /// Why.
    pub proof_reason: String,
    /// The sealed proof bundle.
    pub proof_bundle: Option<PathBuf>,
}

/// The ids of what was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedIds {
    /// Registry.
    pub registry: String,
    /// Profile.
    pub profile: String,
    /// The command's probe.
    pub probe: String,
    /// Plan.
    pub plan: String,
}

/// The command as a probe: argv (variable form), fixtures and `reads`.
#[derive(Debug, Clone)]
struct Spec {
    argv: Vec<String>,
    fixtures: Vec<Fixture>,
    reads: Vec<String>,
    timeout_ms: u64,
    /// The program's resolved path.
    program: PathBuf,
    /// Where each run's scratch root is created (`None`: the default parent).
    scratch_parent: Option<PathBuf>,
}

/// How one run of the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ending {
    exit_code: Option<i32>,
    signal: Option<String>,
    /// Why there is no exit status (a spawn failure, a timeout), for the log.
    detail: Option<String>,
}

impl Ending {
    fn to_model(&self) -> LearnEnding {
        LearnEnding {
            exit_code: self.exit_code,
            signal: self.signal.clone(),
            detail: self.detail.clone(),
        }
    }

    fn describe(&self) -> String {
        match (&self.exit_code, &self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("killed by {s}"),
            (None, None) => format!(
                "no exit status ({})",
                self.detail.as_deref().unwrap_or("no detail")
            ),
        }
    }
}

/// Learn a profile for the request's command, write it with its probe, controls and plan,
/// and run the plan (see the module doc). A command the rounds cannot make end as its
/// baseline is an error (`Findings`) naming each denial and why it was not granted;
/// `learn_log.json` is written in `--out` either way.
pub fn learn(req: &LearnRequest) -> Result<LearnOutcome> {
    let abi = crate::sandbox::host::landlock_abi().map_err(|e| {
        Error::runner(format!(
            "learn needs Landlock, which this kernel does not offer: {e}"
        ))
    })?;
    if abi < 7 {
        return Err(Error::runner(format!(
            "learn needs the kernel's Landlock audit records (ABI 7, Linux 6.15); this kernel has ABI {abi}"
        )));
    }
    // The model's ABIs stop at 10 (its schema's range).
    let abi = abi.min(10);
    let (spec, bounds) = prepare(req)?;
    let ids = ids_for(req, &spec)?;
    check_out(&req.out, &ids)?;

    let mut policy = Policy::default();
    let mut initial_rules = Vec::new();
    let mut initial = BTreeSet::new();
    for (g, why) in initial_grants(&spec.program) {
        initial.insert(g.clone());
        if policy.add(&g) {
            initial_rules.push(LearnRule {
                rule: g.describe(),
                why,
            });
        }
    }
    let mut log = LearnLog {
        schema_version: 1,
        command: spec.argv.clone(),
        workspace: bounds.workspace.clone(),
        widen_to: bounds.widen.clone(),
        never: bounds.never.clone(),
        abi,
        max_rounds: req.max_rounds,
        baseline: None,
        initial_rules,
        rounds: Vec::new(),
        minimized: Vec::new(),
        result: LearnResult {
            converged: false,
            rounds: 0,
            rules: Vec::new(),
            failure: None,
        },
        proof: None,
    };

    let mut baseline: Option<Ending> = None;
    let mut failure: Option<String> = None;
    let mut converged = 0u32;
    let mut interrupted: Option<i32> = None;
    for round in 1..=req.max_rounds.max(1) {
        let profile = profile_json(&policy, abi, bounds.workspace.is_some(), &spec);
        let run = run_round(&spec, &ids, &profile, round == 1)?;
        if let Some(code) = run.interrupted {
            interrupted = Some(code);
            failure = Some(format!("round {round} was interrupted by a signal"));
            break;
        }
        if let Some(b) = run.baseline {
            baseline = Some(b);
        }
        let Some(base) = baseline.clone() else {
            return Err(Error::runner("the first round ran no baseline lane"));
        };
        log.baseline = Some(base.to_model());
        if round == 1 && base.exit_code.is_none() {
            failure = Some(format!(
                "the command does not exit by itself without a policy ({}): there is no baseline to learn towards",
                base.describe()
            ));
            break;
        }
        let matches = run.ending.exit_code == base.exit_code && run.ending.signal == base.signal;
        let mut denials = Vec::new();
        let mut added: Vec<String> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        let at_start = policy.clone();
        for d in &run.denials {
            let object = d
                .path
                .clone()
                .or_else(|| d.port.map(|p| format!("port {p}")))
                .unwrap_or_default();
            let (decision, rule, why) = if matches {
                (
                    LearnDecision::Tolerated,
                    None,
                    "the command ended as in the baseline with this denied: not granted"
                        .to_string(),
                )
            } else {
                match synth::decide(d, &bounds) {
                    Decision::Grant(g, _) if at_start.has(&g) => {
                        refused.push(format!(
                            "`{}` on {object}: already granted as `{}`, and still denied",
                            d.blocker,
                            g.describe()
                        ));
                        (
                            LearnDecision::AlreadyGranted,
                            Some(g.describe()),
                            "the rule was granted in an earlier round and the kernel still denied this (the rule does not reach the object)".to_string(),
                        )
                    }
                    Decision::Grant(g, why) => {
                        policy.add(&g);
                        added.push(g.describe());
                        (LearnDecision::Granted, Some(g.describe()), why)
                    }
                    Decision::Refuse(why) => {
                        refused.push(why.clone());
                        (LearnDecision::Refused, None, why)
                    }
                }
            };
            denials.push(LearnDenial {
                blocker: d.blocker.clone(),
                object,
                decision,
                rule,
                why,
            });
        }
        added.sort();
        added.dedup();
        let nothing_added = added.is_empty();
        log.rounds.push(LearnRound {
            round,
            ended: run.ending.to_model(),
            matches_baseline: matches,
            denials,
            rules_added: added,
            kernel_audit: run.audit_note,
        });
        if matches {
            converged = round;
            break;
        }
        if nothing_added {
            refused.sort();
            refused.dedup();
            failure = Some(if refused.is_empty() {
                format!(
                    "round {round}: the command ended with {} (baseline: {}) and the kernel denied nothing — what differs is not a Landlock denial (its clean environment, limits or namespaces)",
                    run.ending.describe(),
                    base.describe()
                )
            } else {
                format!(
                    "round {round}: the command ended with {} (baseline: {}) and no denial can be granted: {}",
                    run.ending.describe(),
                    base.describe(),
                    refused.join("; ")
                )
            });
            break;
        }
    }
    if converged == 0 && failure.is_none() {
        failure = Some(format!(
            "the command did not end as in the baseline within {} round(s) (--max-rounds)",
            req.max_rounds
        ));
    }
    if converged > 0 && interrupted.is_none() && req.minimize {
        // Each rule the rounds added, tried away once: a rule the command does without
        // (a denial it tolerates, granted in a round that failed for another) is dropped.
        let base = baseline.clone().unwrap_or(Ending {
            exit_code: None,
            signal: None,
            detail: None,
        });
        for g in policy.grants() {
            if initial.contains(&g) {
                continue;
            }
            let mut trial = policy.clone();
            trial.remove(&g);
            let profile = profile_json(&trial, abi, bounds.workspace.is_some(), &spec);
            let run = run_round(&spec, &ids, &profile, false)?;
            if let Some(code) = run.interrupted {
                interrupted = Some(code);
                failure = Some("minimizing was interrupted by a signal".into());
                break;
            }
            let still = run.ending.exit_code == base.exit_code && run.ending.signal == base.signal;
            if still {
                policy = trial;
            }
            log.minimized.push(LearnTrial {
                rule: g.describe(),
                ended: run.ending.to_model(),
                outcome: if still { "dropped" } else { "kept" }.into(),
            });
        }
        if interrupted.is_some() {
            converged = 0;
        }
    }
    let rules = rules_in_words(&policy);
    log.result = LearnResult {
        converged: converged > 0,
        rounds: converged,
        rules: rules.clone(),
        failure: failure.clone(),
    };
    crate::util::nofollow::check_dir_path(&req.out)?;
    fsx::create_dir_all(&req.out)?;
    let log_path = req.out.join("learn_log.json");
    if let Some(code) = interrupted {
        fsx::write_atomic(&log_path, &crate::util::json::to_sorted_pretty(&log)?)?;
        return Ok(LearnOutcome {
            rounds: 0,
            rules,
            ids,
            files: vec![log_path],
            proof_exit: code,
            proof_reason: "interrupted by a signal: nothing learned, no proof run".into(),
            proof_bundle: None,
        });
    }
    if let Some(why) = failure {
        fsx::write_atomic(&log_path, &crate::util::json::to_sorted_pretty(&log)?)?;
        return Err(Error::new(ErrorKind::Findings, format!("learn: {why}"))
            .with_path(&log_path)
            .with_hint(
                "learn_log.json records every round; allow more with --widen-to DIR or --workspace DIR, or raise --max-rounds",
            ));
    }
    let Some(base) = baseline else {
        return Err(Error::runner("no baseline was recorded"));
    };
    let files = write_project(req, &spec, &ids, &policy, abi, &bounds, &base)?;
    // The proof: the written plan, run like any plan.
    let plan_path = req.out.join("plans").join(&ids.plan).join("plan.json");
    let mut settings = RunSettings::new(plan_path, fsx::absolute(&req.out)?, req.out.join("out"));
    settings.kernel_audit = KernelAuditMode::Require;
    settings.scratch_parent.clone_from(&spec.scratch_parent);
    settings.command_line = std::iter::once("nexusmon learn".to_string())
        .chain(spec.argv.iter().cloned())
        .collect();
    let proof = super::execute(settings, &mut NullSink)?;
    log.proof = Some(LearnProof {
        exit_code: proof.exit_code,
        reason: proof.exit_reason.clone(),
        plan: format!("plans/{}/plan.json", ids.plan),
    });
    fsx::write_atomic(&log_path, &crate::util::json::to_sorted_pretty(&log)?)?;
    let mut files = files;
    files.push(log_path);
    files.sort();
    Ok(LearnOutcome {
        rounds: converged,
        rules,
        ids,
        files,
        proof_exit: proof.exit_code,
        proof_reason: proof.exit_reason,
        proof_bundle: proof.bundle,
    })
}

/// The command (or the registry probe) as a [`Spec`], and the user's bounds.
fn prepare(req: &LearnRequest) -> Result<(Spec, Bounds)> {
    let mut bounds = Bounds::default();
    for (flag, list, out) in [
        ("--widen-to", &req.widen, &mut bounds.widen),
        ("--never", &req.never, &mut bounds.never),
    ] {
        for p in list {
            // Compared as the kernel names paths: resolved (for a path that does not exist
            // yet, its deepest existing ancestor resolved).
            let resolved = resolve_lenient(&fsx::absolute(p)?);
            let s = resolved
                .to_str()
                .ok_or_else(|| Error::usage(format!("{flag} {}: not valid UTF-8", p.display())))?;
            if flag == "--widen-to" && s == "/" {
                return Err(
                    Error::usage("--widen-to /: learn never widens a rule to `/`").with_hint(
                        "name the directory the command reads, e.g. --widen-to /usr/lib/python3",
                    ),
                );
            }
            out.push(s.to_string());
        }
        out.sort();
        out.dedup();
    }
    for w in &bounds.widen {
        if let Some(n) = bounds.never.iter().find(|n| beneath(n, w)) {
            return Err(Error::usage(format!(
                "--widen-to {w} contains the --never path {n}: a rule on {w} would cover it"
            ))
            .with_hint("widen to a directory that does not contain it"));
        }
    }
    if let Some(id) = &req.probe {
        if !req.argv.is_empty() {
            return Err(Error::usage(
                "give either --probe ID or `-- CMD ARGS…`, not both",
            ));
        }
        let probe = find_probe(&req.root, id, req.registry.as_deref())?;
        let Some(argv) = probe.argv.clone().filter(|a| !a.is_empty()) else {
            return Err(
                Error::usage(format!("probe `{id}` is not an exec probe with an argv")).with_hint(
                    "learn runs a program: give an exec probe, or the command after `--`",
                ),
            );
        };
        let program = std::fs::canonicalize(&argv[0])
            .map_err(|e| Error::io("resolve the probe's program", &argv[0], e))?;
        if let Some(ws) = &req.workspace {
            if !ws.starts_with("${SCRATCH}/") {
                return Err(Error::usage(format!(
                    "--workspace {ws}: with --probe the workspace is a path under ${{SCRATCH}} the probe's fixtures create"
                )));
            }
            bounds.workspace = Some(ws.clone());
        }
        return Ok((
            Spec {
                argv,
                fixtures: probe.fixtures.clone(),
                reads: probe.reads.clone(),
                timeout_ms: probe.timeout_ms.unwrap_or(req.timeout_ms),
                program,
                scratch_parent: req.scratch_parent.clone(),
            },
            bounds,
        ));
    }
    if req.argv.is_empty() {
        return Err(Error::usage(
            "no command given: `nexusmon learn [--workspace DIR] -- CMD ARGS…` or `learn --probe ID`",
        ));
    }
    let mut argv = req.argv.clone();
    if argv.iter().any(|a| a.contains("${")) {
        return Err(Error::usage(
            "the command's arguments contain `${`, which the probe would expand as a variable",
        )
        .with_hint("learn a registry probe with --probe ID instead"));
    }
    let found = super::child::which(&argv[0], std::env::var("PATH").ok().as_deref(), &req.root)
        .ok_or_else(|| {
            Error::usage(format!("`{}`: no such program on PATH", argv[0]))
                .with_hint("give the program's absolute path")
        })?;
    let found = fsx::absolute(&found)?;
    let program =
        std::fs::canonicalize(&found).map_err(|e| Error::io("resolve the program", &found, e))?;
    argv[0] = found.to_string_lossy().into_owned();
    let mut fixtures = Vec::new();
    if let Some(ws) = &req.workspace {
        let abs = fsx::absolute(Path::new(ws))?;
        let ws_s = abs
            .to_str()
            .ok_or_else(|| Error::usage(format!("--workspace {ws}: not valid UTF-8")))?
            .trim_end_matches('/')
            .to_string();
        if ws_s.is_empty() {
            return Err(Error::usage("--workspace /: the workspace cannot be `/`"));
        }
        let mut named = false;
        for a in argv.iter_mut().skip(1) {
            let (b, n) = rewrite_workspace(a, &ws_s);
            named |= n;
            *a = b;
        }
        if !named {
            return Err(Error::usage(format!(
                "--workspace {ws}: the command's arguments never name it"
            ))
            .with_hint(format!(
                "learn runs the command with its workspace at {WORKSPACE} (a fresh directory in run scratch), so the arguments must name it, e.g. `git init {ws}`"
            )));
        }
        fixtures.push(Fixture::Dir {
            path: WORKSPACE.into(),
        });
        bounds.workspace = Some(WORKSPACE.into());
    }
    let reads = crate::lint::registry::argv_host_paths(&argv);
    Ok((
        Spec {
            argv,
            fixtures,
            reads,
            timeout_ms: req.timeout_ms,
            program,
            scratch_parent: req.scratch_parent.clone(),
        },
        bounds,
    ))
}

/// `p` resolved as far as it exists: its deepest existing ancestor canonicalized, the rest
/// appended (lexically, `.` and `..` applied).
fn resolve_lenient(p: &Path) -> PathBuf {
    let mut tail: Vec<std::ffi::OsString> = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(mut c) = std::fs::canonicalize(&cur) {
            for n in tail.iter().rev() {
                if n == ".." {
                    c.pop();
                } else if n != "." {
                    c.push(n);
                }
            }
            return c;
        }
        let Some(last) = cur.components().next_back() else {
            return p.to_path_buf();
        };
        tail.push(last.as_os_str().to_os_string());
        if !cur.pop() {
            return p.to_path_buf();
        }
    }
}

/// `arg` with every occurrence of the directory `ws` (as a whole path: followed by the
/// end, `/` or a character no path name continues with) replaced by [`WORKSPACE`]; and
/// whether there was one.
pub fn rewrite_workspace(arg: &str, ws: &str) -> (String, bool) {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    let mut named = false;
    while let Some(i) = rest.find(ws) {
        let before = &rest[..i];
        let after = &rest[i + ws.len()..];
        let starts = out.is_empty() && before.is_empty()
            || before
                .chars()
                .last()
                .or_else(|| out.chars().last())
                .is_some_and(|c| !c.is_alphanumeric() && !matches!(c, '/' | '.' | '_' | '-'));
        let ends = after
            .chars()
            .next()
            .is_none_or(|c| c == '/' || (!c.is_alphanumeric() && !matches!(c, '.' | '_' | '-')));
        out.push_str(before);
        if starts && ends {
            out.push_str(WORKSPACE);
            named = true;
        } else {
            out.push_str(ws);
        }
        rest = after;
    }
    out.push_str(rest);
    (out, named)
}

/// The exec probe `id` of the project's registries.
fn find_probe(root: &Path, id: &str, registry: Option<&str>) -> Result<Probe> {
    let reg_root = root.join("registry");
    let candidates: Vec<String> = match registry {
        Some(r) => vec![r.to_string()],
        None => fsx::read_dir_sorted(&reg_root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
    };
    let mut found = Vec::new();
    for r in &candidates {
        let reg = crate::load::Registry::load(&reg_root.join(r))?;
        if let Some((_, p)) = reg.probes.probes.iter().find(|(k, _)| k.as_str() == id) {
            found.push(p.clone());
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::usage(format!(
            "no probe `{id}` in {}",
            registry.map_or_else(
                || reg_root.display().to_string(),
                |r| format!("registry `{r}`")
            )
        ))
        .with_hint("`nexusmon list-probes` lists them")),
        _ => Err(Error::usage(format!(
            "probe `{id}` is in several registries: say which with --registry"
        ))),
    }
}

fn ids_for(req: &LearnRequest, spec: &Spec) -> Result<LearnedIds> {
    let base = req.name.clone().unwrap_or_else(|| {
        req.probe.clone().unwrap_or_else(|| {
            Path::new(&spec.argv[0])
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    });
    let slug: String = crate::util::lowercase_dashed(&base)
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if slug.is_empty() {
        return Err(Error::usage(format!(
            "cannot make an id from `{base}`: give --name NAME (letters, digits, `-`)"
        )));
    }
    Ok(LearnedIds {
        registry: DEFAULT_REGISTRY.into(),
        profile: format!("learned-{slug}"),
        probe: format!("run-{slug}"),
        plan: format!("learn-{slug}"),
    })
}

/// Refuse to overwrite a learned project: the files must not exist yet.
fn check_out(out: &Path, ids: &LearnedIds) -> Result<()> {
    for p in [
        out.join("registry").join(&ids.registry),
        out.join("plans").join(&ids.plan),
        out.join("learn_log.json"),
    ] {
        if std::fs::symlink_metadata(&p).is_ok() {
            return Err(Error::usage(format!("{} exists already", p.display()))
                .with_path(&p)
                .with_hint("learn writes a new project: give another --out DIR, or remove it"));
        }
    }
    Ok(())
}

/// The program, its interpreters and its libraries, by resolved path.
fn initial_grants(program: &Path) -> Vec<(Grant, String)> {
    let mut out = Vec::new();
    let s = |p: &Path| {
        std::fs::canonicalize(p)
            .ok()
            .and_then(|c| c.to_str().map(str::to_string))
    };
    if let Some(p) = s(program) {
        for access in [Access::Read, Access::Exec] {
            out.push((
                Grant::Fs {
                    path: p.clone(),
                    access,
                },
                "the command's program".to_string(),
            ));
        }
    }
    let needs = crate::sandbox::elf::program_needs(program);
    // An interpreter needs `read` too: execve reads it (measured here: without `read` the
    // execve fails with EACCES, and the kernel writes no audit record for it).
    for e in &needs.execute {
        if let Some(p) = s(e) {
            for access in [Access::Read, Access::Exec] {
                out.push((
                    Grant::Fs {
                        path: p.clone(),
                        access,
                    },
                    format!("an interpreter execve opens for {}", program.display()),
                ));
            }
        }
    }
    for r in &needs.read {
        if let Some(p) = s(r) {
            out.push((
                Grant::Fs {
                    path: p,
                    access: Access::Read,
                },
                format!(
                    "a shared library the loader opens for {}",
                    program.display()
                ),
            ));
        }
    }
    out
}

/// One round's result.
struct RoundRun {
    baseline: Option<Ending>,
    ending: Ending,
    denials: Vec<Denied>,
    audit_note: String,
    /// A signal interrupted the round's run: the exit code to end with (128 + signal).
    interrupted: Option<i32>,
}

/// Run the command once under `profile` (and without a policy when `with_baseline`).
fn run_round(
    spec: &Spec,
    ids: &LearnedIds,
    profile: &Value,
    with_baseline: bool,
) -> Result<RoundRun> {
    let work = PrivateDir::create()?;
    let project = work.0.clone();
    let reg_dir = project.join("registry").join(&ids.registry);
    fsx::create_dir_all(&reg_dir)?;
    let profiles = json!({
        "schema_version": 1,
        "registry_id": ids.registry,
        "profiles": {ids.profile.clone(): profile},
    });
    fsx::write_new(
        &reg_dir.join("profiles.json"),
        &crate::util::json::to_sorted_pretty(&profiles)?,
    )?;
    let probes = json!({
        "schema_version": 1,
        "registry_id": ids.registry,
        "probes": {ids.probe.clone(): probe_json(spec, None)},
    });
    fsx::write_new(
        &reg_dir.join("probes.json"),
        &crate::util::json::to_sorted_pretty(&probes)?,
    )?;
    let plan_dir = project.join("plans").join("learn-round");
    fsx::create_dir_all(&plan_dir)?;
    let plan = json!({
        "schema_version": 1,
        "plan_id": "learn-round",
        "kind": "experiment",
        "description": "One round of `nexusmon learn`.",
        "registry_id": ids.registry,
        "profiles": [ids.profile],
        "scenarios": {ids.profile.clone(): {ids.probe.clone(): "allow"}},
        "lanes": {"baseline": with_baseline, "scenario": true, "oracle": false},
        "execution": {"retries": 0},
    });
    let plan_path = plan_dir.join("plan.json");
    fsx::write_new(&plan_path, &crate::util::json::to_sorted_pretty(&plan)?)?;
    let mut settings = RunSettings::new(plan_path, project.clone(), project.join("out"));
    settings.kernel_audit = KernelAuditMode::Require;
    settings.scratch_parent.clone_from(&spec.scratch_parent);
    settings.command_line = vec!["nexusmon learn (a round)".into()];
    let outcome = super::execute(settings, &mut NullSink)?;
    if outcome.status == crate::model::results::RunStatus::Interrupted {
        return Ok(RoundRun {
            baseline: None,
            ending: Ending {
                exit_code: None,
                signal: None,
                detail: Some(outcome.exit_reason.clone()),
            },
            denials: Vec::new(),
            audit_note: String::new(),
            interrupted: Some(outcome.exit_code),
        });
    }
    let Some(bundle) = outcome.bundle.clone() else {
        return Err(Error::runner(format!(
            "a learn round sealed no bundle: {}",
            outcome.exit_reason
        )));
    };
    let audit = outcome.summary.and_then(|s| s.kernel_audit);
    let audit_note = match &audit {
        Some(k) if k.state == KernelAuditState::Collected => "collected".to_string(),
        Some(k) if k.state == KernelAuditState::Lost => format!("lost: {}", k.reason),
        Some(k) => {
            return Err(Error::runner(format!(
                "learn needs the kernel's Landlock records, and they were {}: {}",
                k.state.as_str(),
                k.reason
            )));
        }
        None => {
            return Err(Error::runner(
                "learn needs the kernel's Landlock records, and the round reported none",
            ));
        }
    };
    let b = crate::bundle::load_bundle(&bundle)?;
    let shared = b.shared_values()?;
    let mut baseline = None;
    let mut scenario = None;
    let mut files = vec![crate::bundle::RUNTIME_RESULTS];
    if with_baseline {
        files.push(crate::bundle::BASELINE_RESULTS);
    }
    for rel in files {
        b.for_each_line(
            rel,
            &shared,
            &mut |o: crate::model::results::Observation| {
                if o.probe_id == ids.probe {
                    match o.lane {
                        Lane::Baseline => baseline = Some(o),
                        Lane::Scenario => scenario = Some(o),
                        Lane::Oracle => {}
                    }
                }
                Ok(())
            },
        )?;
    }
    let manifest: crate::model::results::RunManifest = b.read_json("run_manifest.json")?;
    let Some(scn) = scenario else {
        return Err(Error::runner(format!(
            "a learn round has no scenario-lane observation: {}",
            outcome.exit_reason
        )));
    };
    if with_baseline && baseline.is_none() {
        return Err(Error::runner(format!(
            "the first learn round has no baseline-lane observation: {}",
            outcome.exit_reason
        )));
    }
    if scn.result.outcome == Outcome::ApplyFailed {
        return Err(Error::new(
            ErrorKind::NotEnforceable,
            format!(
                "the learned profile could not be applied: {}",
                scn.result.detail
            ),
        ));
    }
    let ending = |a: &crate::model::results::Attempt| Ending {
        exit_code: a.exit_code,
        signal: a.signal.clone(),
        detail: (a.exit_code.is_none() && a.signal.is_none())
            .then(|| format!("{}: {}", a.outcome.as_str(), a.detail)),
    };
    let child_prefix = format!("scenario/{}/{}.a", ids.profile, ids.probe);
    let mut denials = BTreeSet::new();
    for k in scn.result.kernel_denials.iter().flatten() {
        for blocker in &k.blockers {
            denials.insert(map_denial(
                blocker,
                &k.object,
                &manifest.scratch,
                &child_prefix,
            ));
        }
    }
    Ok(RoundRun {
        baseline: baseline.map(|o| ending(&o.result)),
        ending: ending(&scn.result),
        denials: denials.into_iter().map(|(d, _)| d).collect(),
        audit_note,
        interrupted: None,
    })
}

/// A kernel denial as synthesis sees it: the object's path in variable form when it is in
/// the child's scratch directory, checked on the host otherwise. (The sort key first.)
fn map_denial(
    blocker: &str,
    object: &std::collections::BTreeMap<String, String>,
    scratch_root: &str,
    child_prefix: &str,
) -> (Denied, (String, String)) {
    let port = object
        .get("dest")
        .or_else(|| object.get("src"))
        .or_else(|| object.get("sport"))
        .and_then(|p| p.parse::<u16>().ok());
    let mut d = Denied {
        blocker: blocker.to_string(),
        path: None,
        port,
        char_device: false,
        problem: None,
    };
    if let Some(path) = object.get("path") {
        let root = scratch_root.trim_end_matches('/');
        if !root.is_empty() && beneath(path, root) {
            let rel = path[root.len()..].trim_start_matches('/');
            let mut parts = rel.splitn(4, '/');
            let (lane, prof, job) = (parts.next(), parts.next(), parts.next());
            let rest = parts.next();
            let job_ok = match (lane, prof, job) {
                (Some(l), Some(p), Some(j)) => {
                    let head = format!("{l}/{p}/{j}");
                    head.strip_prefix(child_prefix)
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                }
                _ => false,
            };
            if job_ok {
                d.path = Some(match rest {
                    Some(r) if !r.is_empty() => format!("${{SCRATCH}}/{r}"),
                    _ => "${SCRATCH}".to_string(),
                });
            } else {
                d.path = Some(path.clone());
                d.problem = Some(
                    "it is in the run's scratch root but not the command's own scratch directory"
                        .into(),
                );
            }
        } else {
            d.path = Some(path.clone());
            match check_host_object(path, object.get("ino").map(String::as_str)) {
                Ok(chr) => d.char_device = chr,
                Err(why) => d.problem = Some(why),
            }
        }
    }
    let key = (d.blocker.clone(), d.path.clone().unwrap_or_default());
    (d, key)
}

/// Check that the host path the kernel named is the object it denied: absolute, valid
/// UTF-8 (the audit module decodes hex-encoded paths lossily: a replacement character
/// means bytes a profile cannot name), resolving to itself (no symlink or `..`), and still
/// the inode the record names. `Ok(true)` for a character device.
pub fn check_host_object(path: &str, ino: Option<&str>) -> std::result::Result<bool, String> {
    if !path.starts_with('/') {
        return Err("the kernel named no absolute path for it".into());
    }
    if path.contains('\u{FFFD}') {
        return Err("its path is not valid UTF-8, and a profile (JSON) cannot name it".into());
    }
    if let Some(rest) = path.strip_prefix("/proc/")
        && rest
            .split('/')
            .next()
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            "it is a process's own /proc entry, another path in every run: only a rule on /proc (--widen-to /proc) could cover it"
                .into(),
        );
    }
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| format!("it cannot be found now: {e}"))?;
    match std::fs::canonicalize(path) {
        Ok(c) if c.as_os_str() == path => {}
        Ok(c) => {
            return Err(format!(
                "the path reaches {} (through a symlink or `..`); learn grants only the object the kernel named, by its own path",
                c.display()
            ));
        }
        Err(e) => return Err(format!("it cannot be resolved now: {e}")),
    }
    if let Some(ino) = ino
        && ino.parse::<u64>().ok() != Some(meta.ino())
    {
        return Err(format!(
            "it is inode {} now, not the inode {ino} the kernel denied (replaced since)",
            meta.ino()
        ));
    }
    Ok(meta.file_type().is_char_device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_rewritten_only_as_a_whole_path() {
        let ws = "/tmp/ws";
        assert_eq!(
            rewrite_workspace("/tmp/ws", ws),
            ("${SCRATCH}/ws".into(), true)
        );
        assert_eq!(
            rewrite_workspace("open('/tmp/ws/x','w')", ws),
            ("open('${SCRATCH}/ws/x','w')".into(), true)
        );
        assert_eq!(
            rewrite_workspace("/tmp/wsx", ws),
            ("/tmp/wsx".into(), false)
        );
        assert_eq!(
            rewrite_workspace("/a/tmp/ws", ws),
            ("/a/tmp/ws".into(), false)
        );
        assert_eq!(
            rewrite_workspace("--dir=/tmp/ws", ws),
            ("--dir=${SCRATCH}/ws".into(), true)
        );
    }

    #[test]
    fn a_host_object_must_be_the_inode_the_kernel_named_through_no_symlink() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        let f = root.join("f");
        std::fs::write(&f, "x").unwrap();
        let ino = std::fs::metadata(&f).unwrap().ino().to_string();
        let fs = f.to_str().unwrap();
        assert_eq!(check_host_object(fs, Some(&ino)), Ok(false));
        assert!(
            check_host_object(fs, Some("1"))
                .unwrap_err()
                .contains("not the inode")
        );
        let l = root.join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert!(
            check_host_object(l.to_str().unwrap(), Some(&ino))
                .unwrap_err()
                .contains("symlink")
        );
        assert!(
            check_host_object("/x\u{FFFD}y", None)
                .unwrap_err()
                .contains("UTF-8")
        );
        assert_eq!(check_host_object("/dev/null", None), Ok(true));
        assert!(
            check_host_object("/proc/1/status", None)
                .unwrap_err()
                .contains("/proc")
        );
        let gone = root.join("gone/../x/y");
        assert_eq!(resolve_lenient(&gone), root.join("x/y"));
        assert_eq!(resolve_lenient(&l), f);
    }

    #[test]
    fn scratch_paths_map_to_the_variable_only_for_the_commands_own_directory() {
        let o = |p: &str| std::collections::BTreeMap::from([("path".to_string(), p.to_string())]);
        let root = "/dev/shm/nexusmon-r1";
        let pre = "scenario/learned-x/run-x.a";
        let (d, _) = map_denial(
            "fs.make_reg",
            &o("/dev/shm/nexusmon-r1/scenario/learned-x/run-x.a1/ws"),
            root,
            pre,
        );
        assert_eq!(d.path.as_deref(), Some("${SCRATCH}/ws"));
        assert!(d.problem.is_none());
        let (d, _) = map_denial(
            "fs.read_dir",
            &o("/dev/shm/nexusmon-r1/scenario/learned-x/run-x.a1"),
            root,
            pre,
        );
        assert_eq!(d.path.as_deref(), Some("${SCRATCH}"));
        let (d, _) = map_denial(
            "fs.read_file",
            &o("/dev/shm/nexusmon-r1/baseline/learned-x/run-x.a1/f"),
            root,
            pre,
        );
        assert!(d.problem.is_some());
        let (d, _) = map_denial(
            "fs.read_file",
            &o("/dev/shm/nexusmon-r1/scenario/learned-x/run-x.a1x/f"),
            root,
            pre,
        );
        assert!(d.problem.is_some());
    }
}
