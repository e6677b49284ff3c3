//! The run pipeline (`DESIGN.md` §5.1): resolve the plan → select scenarios → governance
//! gate → compile profiles → oracle → take the out-root lock and stage the bundle →
//! preflight every profile → run the baseline and scenario lanes in parallel → classify,
//! attribute, compare → write every result file → seal → audit notification.
//!
//! [`execute`] is the library entry point; `cli/run.rs` resolves command-line arguments
//! into [`RunSettings`] (no clap types here) and renders [`RunEvent`]s and the
//! [`RunOutcome`]. Governance slots in through [`Gate`] (consulted after resolve, before the
//! lock) and [`AuditHook`] (the audit head at seal time, a notification after).
//!
//! **Missions** (`DESIGN.md` §8) run through the same pipeline. Each task is one scenario
//! row `<profile>:<probe>` with its expectation (`expect`, default `allow`) and, in every
//! result file, its `task_id` (plus `depends_on`, and `skipped_because` for a task that did
//! not run); a mission's declared `scenarios`/`controls` run beside the tasks, outside the
//! graph. [`run_lanes`] schedules the tasks with the DAG scheduler: in dependency order,
//! independent tasks in parallel up to the job cap (the gate caps a mission at one task at
//! a time without the `parallel-missions` capability); a task that fails (its scenario-lane
//! outcome is not its expectation) skips every task that depends on it, directly or not.
//! The tasks share one workspace per lane as `${SCRATCH}` (`<scratch>/mission/<lane>`), so
//! a task hands its output to its dependents. Lanes: the scenario lane is required, the
//! oracle lane follows `lanes.oracle`, and the baseline lane, which would do a task's work a
//! second time without any policy, runs only when the plan sets `lanes.baseline: true`
//! explicitly. `summary.json` counts the tasks (`tasks`: succeeded, failed, skipped, the
//! layers); a failed task exits 1, skipped tasks are counted, not mismatches.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::child::{self, ChildSpec};
use super::fixtures::{self, Listeners, Scratch};
use super::helper;
use super::lanes::{BaselineRuntime, LiveExecutor, LogSink, ProfileRuntime};
use super::outcome::{self, errno_name};
use super::scheduler::{self, JobNode, JobState};
use crate::bundle::RESULT_FILES;
use crate::bundle::{BeginOptions, LockOptions, SealInfo, StagedBundle};
use crate::error::ErrorKind;
use crate::load::mission::{TaskMeta, all_specs, expected_entry, task_specs};
use crate::load::{LoadedPlan, ScenarioSpec, load_plan};
use crate::model::index::{AuditHead, BundleStatus};
use crate::model::plan::Expectation;
use crate::model::registry::{Driver, Fixture, Operation, Probe, TargetKind};
use crate::model::results::{
    ApplyPreflight, Attempt, ChannelKind, Enforcement, ExpectedMatrix, Lane, LaneCell, LanePolicy,
    LaneResults, MismatchKind, MismatchPacket, MismatchSummary, NormalizedRow, Observation,
    ObservationNote, OracleCell, OracleResults, OracleVerdict, Outcome, PathWitness, PathWitnesses,
    PreflightRecord, RESULTS_SCHEMA_VERSION, ResolvedProbe, RunEvent, RunManifest, RunStatus,
    Rusage, Stage, Summary, TimeoutSetting, TimeoutSource, ToolInfo,
};
use crate::sandbox::apply::Prepared;
use crate::sandbox::compile::{self, CompileContext, CompileHost, CompiledProfile};
use crate::sandbox::host::{HostFacts, host_facts};
use crate::sandbox::oracle::{self, OracleInput};
use crate::sandbox::vars::Vars;
use crate::util::digest::Digest;
use crate::util::json;
use crate::{Error, Result, exit_code};

/// The runner's default per-child wall timeout ("no hidden limits": it is recorded).
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Default grace between SIGTERM and SIGKILL.
pub const DEFAULT_KILL_GRACE_MS: u64 = 500;
/// Default bytes kept per output stream.
pub const DEFAULT_OUTPUT_CAP: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Settings, seams, outcome
// ---------------------------------------------------------------------------------------

/// What the governance gate sees.
#[derive(Debug)]
pub struct GateInput<'a> {
    /// The plan with everything it resolves (digest included).
    pub plan: &'a LoadedPlan,
    /// The selected scenarios.
    pub scenarios: &'a [ScenarioSpec],
    /// `--dry`.
    pub dry: bool,
}

/// The gate's answer.
#[derive(Debug, Clone, Default)]
pub struct GateDecision {
    /// May the run proceed?
    pub allowed: bool,
    /// Why not (or why flagged), one sentence each.
    pub reasons: Vec<String>,
    /// Notes recorded in the manifest (e.g. "rank C: flagged for review").
    pub notes: Vec<String>,
    /// Review flags carried into `summary.json` (e.g. `review-required`), sorted.
    pub flags: Vec<String>,
    /// A cap on parallel children (e.g. missions without the parallelism capability).
    pub max_jobs: Option<u32>,
    /// Files to copy into the bundle: (bundle-relative path, exact bytes), e.g. approval
    /// records, their signatures and `governance/gate.json`.
    pub files: Vec<(String, Vec<u8>)>,
    /// For a refusal: the error message and hint to report (else one is built from
    /// `reasons`).
    pub refusal: Option<GateRefusal>,
}

/// How a refusal is reported (exit 4).
#[derive(Debug, Clone, Default)]
pub struct GateRefusal {
    /// The error message: what blocks the run.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// The governance gate, consulted after lint and resolve and before the out-root lock.
pub trait Gate {
    /// Decide. A refusal of a real run is exit 4 with nothing written; `--dry` shows what
    /// would run either way.
    fn check(&self, input: &GateInput<'_>) -> Result<GateDecision>;
    /// The run passed the gate and has its id (real runs only, before any child starts).
    fn started(&self, _run_id: &str) -> Result<()> {
        Ok(())
    }
}

/// What a sealed run reports to the audit log.
#[derive(Debug, Clone, Copy)]
pub struct SealReport<'a> {
    /// The plan.
    pub plan_id: &'a str,
    /// `plan_digest`.
    pub plan_digest: &'a Digest,
    /// The run id.
    pub run_id: &'a str,
    /// The bundle's status (`complete` or `failed`).
    pub bundle_status: BundleStatus,
    /// The run's status.
    pub run_status: RunStatus,
    /// `out/<run_id>`.
    pub bundle_dir: &'a Path,
    /// blake3 of `artifact_index.json`.
    pub index_blake3: &'a str,
    /// The audit head the index anchored.
    pub anchored_head: Option<&'a AuditHead>,
    /// The run's mismatches (empty for a failed run).
    pub mismatches: &'a [MismatchPacket],
}

/// The audit log's seam.
pub trait AuditHook {
    /// The audit head to anchor in the seal.
    fn head(&self) -> Result<Option<AuditHead>>;
    /// Called after the bundle is sealed (a failed run included).
    fn sealed(&self, report: &SealReport<'_>) -> Result<()>;
}

/// Receives NDJSON events as they happen (on the calling thread).
pub trait EventSink {
    /// One event.
    fn event(&mut self, e: &RunEvent);
}

/// A sink that drops everything.
#[derive(Debug, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    fn event(&mut self, _: &RunEvent) {}
}

/// Resolved settings of one run.
pub struct RunSettings {
    /// The plan file.
    pub plan_path: PathBuf,
    /// The project root (for relative paths in the manifest).
    pub root: PathBuf,
    /// The out root.
    pub out_root: PathBuf,
    /// The channel.
    pub channel: ChannelKind,
    /// `--only-profile`.
    pub only_profiles: Vec<String>,
    /// `--only-scenario`.
    pub only_scenarios: Vec<String>,
    /// `--dry`.
    pub dry: bool,
    /// `--jobs` (else the plan's, else the number of cores).
    pub jobs: Option<u32>,
    /// Lock behaviour.
    pub lock: LockOptions,
    /// A run id to use (else `NEXUSMON_RUN_ID`, else a new one).
    pub run_id: Option<String>,
    /// Where the scratch root is created (default: the system temp dir).
    pub scratch_parent: Option<PathBuf>,
    /// Keep the scratch root after the run.
    pub keep_scratch: bool,
    /// The command line, recorded in the manifest.
    pub command_line: Vec<String>,
    /// The helper executable (default: this executable).
    pub helper_exe: Option<PathBuf>,
    /// The governance gate.
    pub gate: Option<Box<dyn Gate>>,
    /// The audit hook.
    pub audit: Option<Box<dyn AuditHook>>,
}

impl std::fmt::Debug for RunSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSettings")
            .field("plan_path", &self.plan_path)
            .field("out_root", &self.out_root)
            .field("channel", &self.channel)
            .field("dry", &self.dry)
            .finish_non_exhaustive()
    }
}

impl RunSettings {
    /// Settings with defaults for everything but the plan and the out root.
    pub fn new(plan_path: PathBuf, root: PathBuf, out_root: PathBuf) -> Self {
        Self {
            plan_path,
            root,
            out_root,
            channel: ChannelKind::Clean,
            only_profiles: Vec::new(),
            only_scenarios: Vec::new(),
            dry: false,
            jobs: None,
            lock: LockOptions::default(),
            run_id: None,
            scratch_parent: None,
            keep_scratch: false,
            command_line: Vec::new(),
            helper_exe: None,
            gate: None,
            audit: None,
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run id (`None` for `--dry`).
    pub run_id: Option<String>,
    /// The status.
    pub status: RunStatus,
    /// The documented exit code.
    pub exit_code: i32,
    /// Why, in one sentence.
    pub exit_reason: String,
    /// The sealed bundle.
    pub bundle: Option<PathBuf>,
    /// blake3 of its index.
    pub index_blake3: Option<String>,
    /// One row per scenario, sorted.
    pub rows: Vec<NormalizedRow>,
    /// Mismatch packets, sorted.
    pub mismatches: Vec<MismatchPacket>,
    /// The preflight.
    pub preflight: Vec<PreflightRecord>,
    /// The summary (absent for `--dry`).
    pub summary: Option<Summary>,
    /// Oracle verdicts (for `--dry`'s listing).
    pub verdicts: Vec<OracleVerdict>,
    /// Gate reasons, if the gate refused a `--dry` run.
    pub refused: Vec<String>,
    /// A mission's selected tasks in dependency order (empty for experiments).
    pub layers: Vec<Vec<String>>,
    /// Parallel children (for a mission: how many tasks may run at once).
    pub jobs: u32,
}

/// What the runner knows about a mission before anything runs.
#[derive(Debug, Clone)]
struct MissionShape {
    /// Selected tasks.
    tasks: usize,
    /// The selected tasks in dependency order.
    layers: Vec<Vec<String>>,
    /// Whether the baseline lane runs.
    baseline: bool,
}

impl MissionShape {
    /// The shape of a mission plan (`None` for experiments). A cycle or a dependency on a
    /// missing task is an input error (lint reports it first). A mission's tasks run in the
    /// scenario lane, so `lanes.scenario: false` is refused. The baseline lane runs a task's
    /// work a second time without any policy, so for a mission it runs only when the plan
    /// asks for it explicitly (`"lanes": {"baseline": true}`); the oracle lane follows
    /// `lanes.oracle` as for experiments.
    fn of(loaded: &LoadedPlan, scenarios: &[ScenarioRun]) -> Result<Option<Self>> {
        let plan = &loaded.plan;
        let Some(m) = plan
            .mission
            .as_ref()
            .filter(|_| plan.kind == crate::model::plan::PlanKind::Mission)
        else {
            return Ok(None);
        };
        let order = crate::load::mission::order(m).map_err(|e| e.with_path(&loaded.path))?;
        if !plan.lanes.scenario {
            return Err(Error::input(
                &loaded.path,
                "a mission's tasks run in the scenario lane, and `lanes.scenario` is false",
            )
            .with_hint("remove `\"scenario\": false` from `lanes`"));
        }
        let selected: BTreeSet<&str> = scenarios
            .iter()
            .filter_map(|s| s.task.as_ref().map(|t| t.task_id.as_str()))
            .collect();
        let layers: Vec<Vec<String>> = order
            .iter()
            .map(|l| {
                l.iter()
                    .filter(|t| selected.contains(t.as_str()))
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            .collect();
        let baseline =
            loaded.doc.value().pointer("/lanes/baseline") == Some(&serde_json::Value::Bool(true));
        Ok(Some(Self {
            tasks: selected.len(),
            layers,
            baseline,
        }))
    }

    /// The manifest note describing how the tasks run.
    fn note(&self, jobs: u32) -> String {
        format!(
            "mission: {} task(s) in {} layer(s) of dependencies, {}; the shared workspace ${{SCRATCH}} is one directory per lane; baseline lane {}",
            self.tasks,
            self.layers.len(),
            if jobs > 1 {
                format!("up to {jobs} at a time")
            } else {
                "one at a time".to_string()
            },
            if self.baseline {
                "on (lanes.baseline: true)"
            } else {
                "off (a mission runs it only when lanes.baseline is set to true)"
            }
        )
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios and the executor seam
// ---------------------------------------------------------------------------------------

/// A selected scenario with its probe and effective timeout.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    /// The scenario.
    pub spec: ScenarioSpec,
    /// The probe as written.
    pub probe: Probe,
    /// The effective timeout and its source.
    pub timeout: TimeoutSetting,
    /// The mission task this scenario is (missions only).
    pub task: Option<TaskMeta>,
}

/// One attempt of one lane, with what it ran.
#[derive(Debug, Clone)]
pub struct LaneAttempt {
    /// The attempt.
    pub attempt: Attempt,
    /// The target after expansion.
    pub target: Option<String>,
    /// The argv after expansion (exec probes).
    pub argv: Vec<String>,
}

impl LaneAttempt {
    /// An attempt that resolved nothing.
    pub fn without_child(attempt: Attempt) -> Self {
        Self {
            attempt,
            target: None,
            argv: Vec::new(),
        }
    }
}

/// Performs one attempt of one executing lane. The real implementation spawns processes
/// ([`LiveExecutor`]); tests use a fake.
pub trait ProbeExecutor: Sync {
    /// Observe `scenario` in `lane` (attempt numbers start at 1).
    fn observe(&self, scenario: &ScenarioRun, lane: Lane, attempt: u32) -> LaneAttempt;
}

/// Run one lane of one scenario, retrying the scenario lane up to `retries` extra times
/// while its outcome does not match the expectation (an apply failure is never retried).
/// Every attempt is kept; a pass that needed a retry is `flaky`.
pub fn observe_lane(
    exec: &dyn ProbeExecutor,
    sc: &ScenarioRun,
    lane: Lane,
    retries: u32,
) -> Observation {
    let max = if lane == Lane::Scenario {
        1 + retries
    } else {
        1
    };
    let mut attempts: Vec<LaneAttempt> = Vec::new();
    for n in 1..=max {
        let mut la = exec.observe(sc, lane, n);
        la.attempt.attempt = n;
        let o = la.attempt.outcome;
        let done = lane != Lane::Scenario
            || outcome::matches_expectation(sc.spec.expected, o)
            || o == Outcome::ApplyFailed;
        attempts.push(la);
        if done {
            break;
        }
    }
    let last = attempts.last().cloned().unwrap_or_else(|| {
        LaneAttempt::without_child(Attempt::without_child(Outcome::Error, Stage::Resolve, ""))
    });
    let flaky =
        attempts.len() > 1 && outcome::matches_expectation(sc.spec.expected, last.attempt.outcome);
    Observation {
        scenario_id: sc.spec.scenario_id.clone(),
        profile_id: sc.spec.profile_id.to_string(),
        probe_id: sc.spec.probe_id.to_string(),
        lane,
        operation: sc.probe.operation,
        driver: driver_word(sc.probe.driver).into(),
        target: last.target.clone(),
        argv: last.argv.clone(),
        timeout: sc.timeout,
        result: last.attempt.clone(),
        attempts: if attempts.len() > 1 {
            attempts.into_iter().map(|a| a.attempt).collect()
        } else {
            Vec::new()
        },
        flaky,
        task_id: sc.task.as_ref().map(|t| t.task_id.clone()),
        skipped_because: None,
    }
}

fn driver_word(d: Driver) -> &'static str {
    match d {
        Driver::Builtin => "builtin",
        Driver::Exec => "exec",
    }
}

fn skipped_observation(
    sc: &ScenarioRun,
    lane: Lane,
    because: &str,
    skipped_because: Option<String>,
) -> Observation {
    Observation {
        scenario_id: sc.spec.scenario_id.clone(),
        profile_id: sc.spec.profile_id.to_string(),
        probe_id: sc.spec.probe_id.to_string(),
        lane,
        operation: sc.probe.operation,
        driver: driver_word(sc.probe.driver).into(),
        target: None,
        argv: Vec::new(),
        timeout: sc.timeout,
        result: Attempt::without_child(Outcome::Skipped, Stage::Resolve, because),
        attempts: Vec::new(),
        flaky: false,
        task_id: sc.task.as_ref().map(|t| t.task_id.clone()),
        skipped_because,
    }
}

// ---------------------------------------------------------------------------------------
// Resolve
// ---------------------------------------------------------------------------------------

/// The scenarios the plan and the filters select, or exit 2 (unknown filter) / 6 (none).
pub fn select(
    loaded: &LoadedPlan,
    only_profiles: &[String],
    only_scenarios: &[String],
) -> Result<Vec<ScenarioSpec>> {
    let all = all_specs(loaded)?;
    let profiles: Vec<&str> = loaded
        .plan
        .profiles
        .iter()
        .map(crate::model::Id::as_str)
        .collect();
    for p in only_profiles {
        if !profiles.contains(&p.as_str()) {
            let mut e = Error::usage(format!(
                "--only-profile `{p}`: the plan `{}` does not run this profile",
                loaded.plan.plan_id
            ));
            e = match crate::util::suggest::did_you_mean(p, profiles.iter().copied()) {
                Some(s) => e.with_hint(format!("did you mean `{s}`?")),
                None => e.with_hint(format!("profiles of the plan: {}", profiles.join(", "))),
            };
            return Err(e);
        }
    }
    let ids: Vec<&str> = all.iter().map(|s| s.scenario_id.as_str()).collect();
    for s in only_scenarios {
        if !ids.contains(&s.as_str()) {
            let mut e = Error::usage(format!(
                "--only-scenario `{s}`: no such scenario in plan `{}`",
                loaded.plan.plan_id
            ));
            e = match crate::util::suggest::did_you_mean(s, ids.iter().copied()) {
                Some(x) => e.with_hint(format!("did you mean `{x}`?")),
                None => e.with_hint("scenario ids are `<profile>:<probe>`"),
            };
            return Err(e);
        }
    }
    let selected: Vec<ScenarioSpec> = all
        .into_iter()
        .filter(|s| {
            only_profiles.is_empty() || only_profiles.iter().any(|p| p == s.profile_id.as_str())
        })
        .filter(|s| only_scenarios.is_empty() || only_scenarios.contains(&s.scenario_id))
        .collect();
    check_task_closure(loaded, &selected)?;
    if selected.is_empty() {
        let why = if only_profiles.is_empty() && only_scenarios.is_empty() {
            format!("plan `{}` declares no scenario", loaded.plan.plan_id)
        } else {
            "the filters select no scenario".to_string()
        };
        return Err(Error::new(
            ErrorKind::NothingSelected,
            format!("nothing selected: {why}"),
        )
        .with_path(&loaded.path)
        .with_hint("\"nothing ran\" is never a pass; declare scenarios or widen the filters"));
    }
    Ok(selected)
}

/// A selected task whose dependency is not selected could never run in order: refuse the
/// filter (exit 2) rather than run it without what it depends on.
fn check_task_closure(loaded: &LoadedPlan, selected: &[ScenarioSpec]) -> Result<()> {
    let tasks = task_specs(loaded)?;
    let chosen: BTreeSet<&str> = selected.iter().map(|s| s.scenario_id.as_str()).collect();
    let by_task: BTreeMap<&str, &str> = tasks
        .iter()
        .map(|(s, m)| (m.task_id.as_str(), s.scenario_id.as_str()))
        .collect();
    for (spec, meta) in &tasks {
        if !chosen.contains(spec.scenario_id.as_str()) {
            continue;
        }
        let missing: Vec<String> = meta
            .depends_on
            .iter()
            .filter_map(|d| by_task.get(d.as_str()).map(|sid| (d, *sid)))
            .filter(|(_, sid)| !chosen.contains(sid))
            .map(|(d, sid)| format!("`{d}` ({sid})"))
            .collect();
        if !missing.is_empty() {
            return Err(Error::usage(format!(
                "the filters select task `{}` ({}) but not {}, which it depends on",
                meta.task_id,
                spec.scenario_id,
                missing.join(", ")
            ))
            .with_hint("select the tasks it depends on too (`--only-scenario <profile>:<probe>`), or run the whole mission"));
        }
    }
    Ok(())
}

/// Validate the selected scenarios' probes and compute effective timeouts. Input errors
/// (exit 2) name the registry file, the probe and the fix.
pub fn resolve_scenarios(
    loaded: &LoadedPlan,
    selected: &[ScenarioSpec],
    known_vars: &BTreeSet<String>,
) -> Result<Vec<ScenarioRun>> {
    let probes_file = &loaded.registry.probes_path;
    let tasks: BTreeMap<String, TaskMeta> = task_specs(loaded)?
        .into_iter()
        .map(|(s, m)| (s.scenario_id, m))
        .collect();
    let mut out = Vec::with_capacity(selected.len());
    for spec in selected {
        let Some(probe) = loaded.probes.get(&spec.probe_id) else {
            return Err(Error::input(
                probes_file,
                format!("probe `{}` is not defined", spec.probe_id),
            ));
        };
        check_probe(probes_file, spec.probe_id.as_str(), probe, known_vars)?;
        let profile = loaded.profiles.get(&spec.profile_id);
        let (ms, source) = if let Some(t) = probe.timeout_ms {
            (t, TimeoutSource::Probe)
        } else if let Some(t) = profile.and_then(|p| p.limits.wall_timeout_ms) {
            (t, TimeoutSource::Profile)
        } else if let Some(t) = loaded.plan.execution.timeout_ms {
            (t, TimeoutSource::Plan)
        } else {
            (DEFAULT_TIMEOUT_MS, TimeoutSource::Default)
        };
        let grace = profile
            .and_then(|p| p.limits.kill_grace_ms)
            .unwrap_or(DEFAULT_KILL_GRACE_MS);
        out.push(ScenarioRun {
            spec: spec.clone(),
            probe: probe.clone(),
            timeout: TimeoutSetting {
                ms: ms.max(1),
                source,
                kill_grace_ms: grace,
            },
            task: tasks.get(&spec.scenario_id).cloned(),
        });
    }
    Ok(out)
}

fn check_probe(file: &Path, id: &str, p: &Probe, known: &BTreeSet<String>) -> Result<()> {
    let err = |msg: String, hint: &str| {
        Err(Error::input(file, format!("probe `{id}`: {msg}")).with_hint(hint.to_string()))
    };
    match p.driver {
        Driver::Builtin => {
            if p.operation == Operation::Exec {
                return err(
                    "operation `exec` needs `driver: exec`".into(),
                    "set \"driver\": \"exec\" and an `argv`",
                );
            }
            if p.argv.is_some() {
                return err(
                    "`argv` is only for `driver: exec`".into(),
                    "remove `argv` or set \"driver\": \"exec\"",
                );
            }
            if p.target.is_none() {
                return err(
                    format!("`{}` needs a `target`", p.operation),
                    "add a `target`",
                );
            }
        }
        Driver::Exec => {
            if p.argv.as_ref().is_none_or(Vec::is_empty) {
                return err(
                    "`driver: exec` needs a non-empty `argv`".into(),
                    "add \"argv\": [\"/usr/bin/…\", …] (never run through a shell)",
                );
            }
            if p.operation != Operation::Exec && !p.operation.is_control() && p.target.is_none() {
                return err(
                    format!(
                        "an exec probe declaring `{}` needs a `target` the oracle can judge",
                        p.operation
                    ),
                    "add the `target` the program acts on, or set \"operation\": \"exec\"",
                );
            }
        }
    }
    if p.operation == Operation::FileRename && p.destination.is_none() {
        return err(
            "`file-rename` needs a `destination`".into(),
            "add \"destination\": \"${SCRATCH}/…\"",
        );
    }
    let mut strings: Vec<&str> = Vec::new();
    strings.extend(p.target.as_deref());
    strings.extend(p.destination.as_deref());
    strings.extend(p.argv.iter().flatten().map(String::as_str));
    for f in &p.fixtures {
        match f {
            Fixture::File { path, content, .. } => {
                strings.push(path);
                strings.extend(content.as_deref());
            }
            Fixture::Dir { path } => strings.push(path),
            Fixture::Symlink { path, to } => {
                strings.push(path);
                strings.push(to);
            }
            Fixture::UnixAbstractListener { name } => strings.push(name),
            Fixture::TcpListener { .. } => {}
        }
    }
    for s in strings {
        for name in Vars::references(s) {
            if !known.contains(&name) {
                let suggestion =
                    crate::util::suggest::did_you_mean(&name, known.iter().map(String::as_str));
                let hint = match suggestion {
                    Some(x) => format!("did you mean `${{{x}}}`?"),
                    None => "define it in the plan's `variables` (builtin: SCRATCH, HOME, RUNNER_PID; tcp-listener fixtures publish theirs)".to_string(),
                };
                return err(format!("undefined variable `${{{name}}}` in `{s}`"), &hint);
            }
        }
    }
    if let Some(t) = &p.target
        && !t.contains("${")
    {
        let ok = match p.operation.target_kind() {
            TargetKind::HostPort => oracle::parse_port(t).is_some(),
            TargetKind::Pid => t.trim().parse::<i32>().is_ok(),
            TargetKind::AbstractSocket => t.starts_with('@'),
            TargetKind::Path | TargetKind::Program => true,
        };
        if !ok {
            let want = match p.operation.target_kind() {
                TargetKind::HostPort => "`host:port` (an IP address or localhost)",
                TargetKind::Pid => "a pid (or ${RUNNER_PID})",
                _ => "`@name`",
            };
            return err(
                format!("target `{t}` of `{}` is not {want}", p.operation),
                "fix the target",
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The pipeline
// ---------------------------------------------------------------------------------------

struct ScratchGuard<'a> {
    scratch: &'a Scratch,
    keep: bool,
}

impl Drop for ScratchGuard<'_> {
    fn drop(&mut self) {
        if !self.keep {
            self.scratch.remove();
        }
    }
}

struct BundleLogs<'a>(&'a StagedBundle);

impl LogSink for BundleLogs<'_> {
    fn write_log(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.0.write_bytes(rel, bytes)
    }
}

/// Run a plan. Errors before the bundle is begun write nothing (exit 2, 4, 6, or 3 if the
/// out root is locked); an error after it seals the bundle as `failed` (exit 3).
#[allow(clippy::needless_pass_by_value)] // the settings belong to the run (API shape)
pub fn execute(settings: RunSettings, sink: &mut dyn EventSink) -> Result<RunOutcome> {
    let started = Instant::now();
    let loaded = load_plan(&settings.plan_path)?;
    // A plan that does not lint is refused (exit 2) before anything runs. A mission is
    // linted before its tasks are selected, so a broken task graph is reported with every
    // other finding; an experiment that selects nothing still exits 6.
    let lint = || {
        crate::lint::check_plan(&loaded.path, &settings.root)?
            .refuse_on_errors(&loaded.path, &settings.root)
    };
    let is_mission = loaded.plan.kind == crate::model::plan::PlanKind::Mission;
    if is_mission {
        lint()?;
    }
    let selected = select(&loaded, &settings.only_profiles, &settings.only_scenarios)?;
    if !is_mission {
        lint()?;
    }
    let plan = &loaded.plan;

    // Variables known before anything runs.
    let mut known: BTreeSet<String> = ["SCRATCH", "HOME", "RUNNER_PID"]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    known.extend(plan.variables.keys().map(ToString::to_string));
    for p in loaded.probes.values() {
        for f in &p.fixtures {
            if let Fixture::TcpListener { variable, .. } = f {
                known.insert(variable.to_string());
            }
        }
    }
    let scenarios = resolve_scenarios(&loaded, &selected, &known)?;
    let mission = MissionShape::of(&loaded, &scenarios)?;

    // Governance gate.
    let mut governance = Vec::new();
    let mut gate_files = Vec::new();
    let mut gate_flags = Vec::new();
    let mut max_jobs = None;
    let mut refused = Vec::new();
    if let Some(g) = &settings.gate {
        let d = g.check(&GateInput {
            plan: &loaded,
            scenarios: &selected,
            dry: settings.dry,
        })?;
        governance.extend(d.notes.iter().cloned());
        if !d.allowed {
            if !settings.dry {
                let (message, hint) = match &d.refusal {
                    Some(r) => (r.message.clone(), r.hint.clone()),
                    None => (
                        format!("refused by governance: {}", d.reasons.join("; ")),
                        "see `nexusmon approve` and `nexusmon missions`".to_string(),
                    ),
                };
                return Err(Error::new(ErrorKind::Refused, message)
                    .with_path(&settings.plan_path)
                    .with_hint(hint));
            }
            refused.clone_from(&d.reasons);
        }
        gate_files = d.files;
        gate_flags = d.flags;
        max_jobs = d.max_jobs;
    }

    let facts = host_facts();
    let run_id = match &settings.run_id {
        Some(id) => id.clone(),
        None => std::env::var("NEXUSMON_RUN_ID")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(crate::bundle::new_run_id),
    };
    crate::bundle::validate_run_id(&run_id)?;
    let jobs = settings
        .jobs
        .or(plan.execution.jobs)
        .unwrap_or(facts.cores)
        .min(max_jobs.unwrap_or(u32::MAX))
        .clamp(1, 1024);
    if let Some(m) = &mission {
        governance.push(m.note(jobs));
    }
    let clean = settings.channel == ChannelKind::Clean;
    let scratch_parent = settings
        .scratch_parent
        .clone()
        .unwrap_or_else(Scratch::default_parent);
    let mut housekeeping = Vec::new();
    let stale_runs = if settings.dry {
        Vec::new()
    } else {
        Scratch::sweep_stale(&scratch_parent, facts.pids_cgroup.as_deref().map(Path::new))
    };
    if !stale_runs.is_empty() {
        housekeeping.push(format!(
            "removed the scratch directories (and pids cgroups) of {} killed run(s): {}",
            stale_runs.len(),
            stale_runs.join(", ")
        ));
    }
    let scratch = Scratch::create(&scratch_parent, &run_id)?;
    let _guard = ScratchGuard {
        scratch: &scratch,
        keep: settings.keep_scratch,
    };
    let runner_env: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        v.sort();
        v
    };
    let runner_home = runner_env
        .iter()
        .find(|(k, _)| k == "HOME")
        .map(|(_, v)| v.clone());

    // Listeners publish their ports before any target is expanded.
    let selected_probes: Vec<&Probe> = {
        let ids: BTreeSet<&str> = scenarios.iter().map(|s| s.spec.probe_id.as_str()).collect();
        ids.iter().filter_map(|id| loaded.probes.get(*id)).collect()
    };
    let mut base_vars = Vars::new();
    for (k, v) in &plan.variables {
        base_vars.set(k.to_string(), v.clone());
    }
    base_vars.set("RUNNER_PID", std::process::id().to_string());
    let listeners = Listeners::start(selected_probes.iter().copied(), &base_vars)?;
    for (k, v) in &listeners.published {
        base_vars.set(k.clone(), v.clone());
    }

    // Compile every selected profile (and the required preflight profile) once, before
    // any child exists. Rules on a child's scratch directory are compiled again per child.
    let host = CompileHost::from_facts(&facts, clean);
    let mut profile_ids: BTreeSet<String> = scenarios
        .iter()
        .map(|s| s.spec.profile_id.to_string())
        .collect();
    if let Some(p) = &plan.apply_preflight_profile {
        profile_ids.insert(p.to_string());
    }
    let mut compiled: BTreeMap<String, CompiledProfile> = BTreeMap::new();
    for id in &profile_ids {
        let Some(profile) = loaded.profiles.get(id.as_str()) else {
            continue;
        };
        let dir = scratch.preflight_dir(id)?;
        let dir_s = dir.to_string_lossy().into_owned();
        let home = if clean {
            dir_s.clone()
        } else {
            runner_home.clone().unwrap_or_else(|| dir_s.clone())
        };
        let rule_vars = base_vars
            .with(&[("SCRATCH", dir_s.as_str()), ("HOME", home.as_str())])
            .nested();
        let ctx = CompileContext {
            host: &host,
            vars: &rule_vars,
            before_child: true,
        };
        compiled.insert(
            id.clone(),
            compile::compile(id, profile, &loaded.registry.profiles_path, &ctx)?,
        );
    }

    // The oracle lane: static, from the same compiled profiles.
    let oracle_on = plan.lanes.oracle;
    let oracle_out: Vec<Option<(OracleVerdict, Vec<PathWitness>)>> = if oracle_on {
        scenarios
            .par_iter()
            .map(|sc| {
                compiled.get(sc.spec.profile_id.as_str()).map(|c| {
                    oracle_for(
                        sc,
                        c,
                        &OracleEnv {
                            scratch: &scratch,
                            base_vars: &base_vars,
                            clean,
                            runner_home: runner_home.as_deref(),
                            runner_env: &runner_env,
                            host: &host,
                            profile: loaded.profiles.get(&sc.spec.profile_id),
                            profiles_file: &loaded.registry.profiles_path,
                        },
                    )
                })
            })
            .collect()
    } else {
        scenarios.iter().map(|_| None).collect()
    };
    let baseline_on = mission.as_ref().map_or(plan.lanes.baseline, |m| m.baseline);
    let lanes: Vec<Lane> = [
        (baseline_on, Lane::Baseline),
        (plan.lanes.scenario, Lane::Scenario),
        (plan.lanes.oracle, Lane::Oracle),
    ]
    .into_iter()
    .filter_map(|(on, l)| on.then_some(l))
    .collect();
    sink.event(&RunEvent::RunStart {
        v: crate::model::results::EVENTS_VERSION,
        run_id: (!settings.dry).then(|| run_id.clone()),
        plan_id: plan.plan_id.to_string(),
        plan_digest: loaded.digest.blake3.clone(),
        channel: settings.channel,
        scenarios: scenarios.len() as u64,
        lanes: lanes.clone(),
        jobs,
        dry: settings.dry,
    });
    if settings.dry {
        let verdicts: Vec<OracleVerdict> = oracle_out
            .iter()
            .flatten()
            .map(|(v, _)| v.clone())
            .collect();
        for (sc, o) in scenarios.iter().zip(&oracle_out) {
            if let Some((v, _)) = o {
                sink.event(&oracle_event(sc, v));
            }
        }
        let rows = scenarios
            .iter()
            .zip(&oracle_out)
            .map(|(sc, o)| NormalizedRow {
                scenario_id: sc.spec.scenario_id.clone(),
                profile_id: sc.spec.profile_id.to_string(),
                probe_id: sc.spec.probe_id.to_string(),
                operation: sc.probe.operation,
                target: sc.probe.target.clone(),
                expected: sc.spec.expected,
                control: sc.spec.control,
                baseline: None,
                scenario: None,
                oracle: o.as_ref().map(|(v, _)| OracleCell {
                    decision: v.decision,
                    reason: v.reason.clone(),
                }),
                attribution: None,
                mismatches: Vec::new(),
                flaky: false,
                task_id: sc.task.as_ref().map(|t| t.task_id.clone()),
                depends_on: sc
                    .task
                    .as_ref()
                    .map(|t| t.depends_on.clone())
                    .unwrap_or_default(),
                skipped_because: None,
            })
            .collect();
        let what = match &mission {
            Some(m) => format!("{} task(s) in {} layer(s)", m.tasks, m.layers.len()),
            None => format!("{} scenario(s)", scenarios.len()),
        };
        let (dry_exit, reason) = if refused.is_empty() {
            (
                exit_code::OK,
                format!("dry run: {what} would run; nothing executed"),
            )
        } else {
            (
                exit_code::REFUSED,
                format!(
                    "dry run: governance would refuse this run, so none of its {what} would run; nothing executed"
                ),
            )
        };
        sink.event(&RunEvent::RunEnd {
            v: crate::model::results::EVENTS_VERSION,
            run_id: None,
            status: RunStatus::Dry,
            exit_code: dry_exit,
            reason: reason.clone(),
            bundle: None,
            index_blake3: None,
            mismatches: 0,
            flaky: 0,
        });
        return Ok(RunOutcome {
            run_id: None,
            status: RunStatus::Dry,
            exit_code: dry_exit,
            exit_reason: reason,
            bundle: None,
            index_blake3: None,
            rows,
            mismatches: Vec::new(),
            preflight: Vec::new(),
            summary: None,
            verdicts,
            refused,
            layers: mission
                .as_ref()
                .map(|m| m.layers.clone())
                .unwrap_or_default(),
            jobs,
        });
    }

    // Stage the bundle: from here on, failures seal it as `failed`.
    let bundle = StagedBundle::begin_for_plan(
        &BeginOptions {
            out_root: settings.out_root.clone(),
            run_id: Some(run_id.clone()),
            lock: settings.lock,
        },
        Some(plan.plan_id.as_str()),
    )?;
    for f in RESULT_FILES {
        bundle.expect(f);
    }
    let ctx2 = Pipeline {
        settings: &settings,
        host,
        loaded: &loaded,
        facts: &facts,
        run_id: &run_id,
        jobs,
        clean,
        scratch: &scratch,
        scenarios: &scenarios,
        compiled,
        oracle_out,
        lanes,
        base_vars,
        runner_env,
        governance,
        housekeeping,
        gate_files,
        gate_flags,
        baseline_on,
        layers: mission
            .as_ref()
            .map(|m| m.layers.clone())
            .unwrap_or_default(),
        listeners: listeners.described.clone(),
        started,
        started_at: crate::util::time::now_rfc3339(),
    };
    let mut stage = "preflight";
    let result = ctx2.run(&bundle, sink, &mut stage);
    drop(listeners);
    let audit_head = match &settings.audit {
        Some(a) => a.head()?,
        None => None,
    };
    match result {
        Ok(mut out) => {
            let failed_preflight = out.status == RunStatus::Failed;
            let sealed = bundle.seal(SealInfo {
                status: if failed_preflight {
                    BundleStatus::Failed
                } else {
                    BundleStatus::Complete
                },
                failure_stage: failed_preflight.then(|| "preflight".to_string()),
                error: failed_preflight.then(|| out.exit_reason.clone()),
                plan_digest: Some(loaded.digest.clone()),
                audit_head,
            })?;
            if let Some(a) = &settings.audit {
                a.sealed(&SealReport {
                    plan_id: plan.plan_id.as_str(),
                    plan_digest: &loaded.digest,
                    run_id: &sealed.run_id,
                    bundle_status: sealed.index.status,
                    run_status: out.status,
                    bundle_dir: &sealed.dir,
                    index_blake3: &sealed.index_blake3,
                    anchored_head: sealed.index.audit_head.as_ref(),
                    mismatches: &out.mismatches,
                })?;
            }
            out.bundle = Some(sealed.dir.clone());
            out.index_blake3 = Some(sealed.index_blake3.clone());
            sink.event(&RunEvent::RunEnd {
                v: crate::model::results::EVENTS_VERSION,
                run_id: Some(run_id.clone()),
                status: out.status,
                exit_code: out.exit_code,
                reason: out.exit_reason.clone(),
                bundle: Some(sealed.dir.to_string_lossy().into_owned()),
                index_blake3: Some(sealed.index_blake3),
                mismatches: out.mismatches.len() as u64,
                flaky: out.summary.as_ref().map_or(0, |s| s.flaky.len() as u64),
            });
            Ok(out)
        }
        Err(e) => {
            let sealed = bundle.seal(SealInfo {
                status: BundleStatus::Failed,
                failure_stage: Some(stage.to_string()),
                error: Some(e.full_message()),
                plan_digest: Some(loaded.digest.clone()),
                audit_head,
            });
            if let (Some(a), Ok(s)) = (&settings.audit, &sealed) {
                // The run already failed; a failure to record it adds nothing to report.
                let _ = a.sealed(&SealReport {
                    plan_id: plan.plan_id.as_str(),
                    plan_digest: &loaded.digest,
                    run_id: &s.run_id,
                    bundle_status: s.index.status,
                    run_status: RunStatus::Failed,
                    bundle_dir: &s.dir,
                    index_blake3: &s.index_blake3,
                    anchored_head: s.index.audit_head.as_ref(),
                    mismatches: &[],
                });
            }
            let (dir, hint) = match &sealed {
                Ok(s) => (
                    Some(s.dir.clone()),
                    format!("the bundle {} is sealed as `failed`", s.dir.display()),
                ),
                Err(se) => (None, format!("the bundle could not be sealed either: {se}")),
            };
            sink.event(&RunEvent::RunEnd {
                v: crate::model::results::EVENTS_VERSION,
                run_id: Some(run_id.clone()),
                status: RunStatus::Failed,
                exit_code: exit_code::RUNNER_FAILED,
                reason: e.full_message(),
                bundle: dir.map(|d| d.to_string_lossy().into_owned()),
                index_blake3: sealed.as_ref().ok().map(|s| s.index_blake3.clone()),
                mismatches: 0,
                flaky: 0,
            });
            let hint = match e.hint() {
                Some(h) => format!("{h}; {hint}"),
                None => hint,
            };
            Err(e.with_kind(ErrorKind::Runner).with_hint(hint))
        }
    }
}

/// The oracle for one scenario, with its own scratch directory and fixtures.
/// What the oracle needs besides the scenario and the compiled profile.
struct OracleEnv<'a> {
    scratch: &'a Scratch,
    base_vars: &'a Vars,
    clean: bool,
    runner_home: Option<&'a str>,
    runner_env: &'a [(String, String)],
    host: &'a CompileHost,
    profile: Option<&'a crate::model::Profile>,
    profiles_file: &'a Path,
}

fn oracle_for(
    sc: &ScenarioRun,
    c: &CompiledProfile,
    env: &OracleEnv<'_>,
) -> (OracleVerdict, Vec<PathWitness>) {
    let OracleEnv {
        scratch,
        base_vars,
        clean,
        runner_home,
        runner_env,
        ..
    } = *env;
    let dir = if sc.task.is_some() {
        scratch.root().join("mission").join(Lane::Oracle.as_str())
    } else {
        scratch.oracle_dir(sc.spec.profile_id.as_str(), sc.spec.probe_id.as_str())
    };
    let dir_s = dir.to_string_lossy().into_owned();
    let home = if clean {
        dir_s.clone()
    } else {
        runner_home.map_or_else(|| dir_s.clone(), str::to_string)
    };
    let vars = base_vars
        .with(&[("SCRATCH", dir_s.as_str()), ("HOME", home.as_str())])
        .nested();
    let mut notes = Vec::new();
    if std::fs::create_dir_all(&dir).is_ok()
        && let Err(e) = fixtures::create_fixtures(&sc.probe, &vars, &dir)
    {
        notes.push(format!("fixtures could not be created for the oracle: {e}"));
    }
    // Rules on the child's scratch directory: compile again against the oracle's own
    // scratch directory, now that its fixtures exist (as the scenario lane does per child).
    let per_child;
    let c = match (c.per_child, env.profile) {
        (true, Some(profile)) => {
            let ctx = CompileContext {
                host: env.host,
                vars: &vars,
                before_child: false,
            };
            match compile::compile(&c.profile_id, profile, env.profiles_file, &ctx) {
                Ok(x) => {
                    per_child = x;
                    &per_child
                }
                Err(e) => {
                    notes.push(format!(
                        "the profile could not be compiled for the oracle: {e}"
                    ));
                    c
                }
            }
        }
        _ => c,
    };
    let target = sc.probe.target.as_ref().and_then(|t| vars.expand(t).ok());
    let destination = sc
        .probe
        .destination
        .as_ref()
        .and_then(|t| vars.expand(t).ok());
    let program = if sc.probe.driver == Driver::Exec {
        let argv0 = sc
            .probe
            .argv
            .as_ref()
            .and_then(|a| a.first())
            .and_then(|a| vars.expand(a).ok());
        let path_var = if clean {
            c.env.set.get("PATH").cloned().or_else(|| {
                c.env
                    .pass
                    .iter()
                    .any(|p| p == "PATH")
                    .then(|| {
                        runner_env
                            .iter()
                            .find(|(k, _)| k == "PATH")
                            .map(|(_, v)| v.clone())
                    })
                    .flatten()
            })
        } else {
            runner_env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone())
        };
        argv0.and_then(|a| child::which(&a, path_var.as_deref(), &dir))
    } else {
        None
    };
    let (mut v, w) = oracle::predict(
        c,
        &OracleInput {
            scenario_id: &sc.spec.scenario_id,
            probe_id: sc.spec.probe_id.as_str(),
            operation: sc.probe.operation,
            driver: sc.probe.driver,
            target: target.as_deref(),
            destination: destination.as_deref(),
            program: program.as_deref(),
            base: &dir,
        },
    );
    v.notes.extend(notes);
    (v, w)
}

fn oracle_event(sc: &ScenarioRun, v: &OracleVerdict) -> RunEvent {
    RunEvent::Observation {
        v: crate::model::results::EVENTS_VERSION,
        scenario_id: sc.spec.scenario_id.clone(),
        lane: Lane::Oracle,
        outcome: v.decision.as_str().to_string(),
        stage: None,
        errno_name: None,
        expected: sc.spec.expected,
        attempts: 1,
        flaky: false,
        detail: v.reason.clone(),
        wall_us: None,
        task_id: sc.task.as_ref().map(|t| t.task_id.clone()),
    }
}

fn observation_event(o: &Observation, expected: Expectation) -> RunEvent {
    RunEvent::Observation {
        v: crate::model::results::EVENTS_VERSION,
        scenario_id: o.scenario_id.clone(),
        lane: o.lane,
        outcome: o.result.outcome.as_str().to_string(),
        stage: Some(o.result.stage),
        errno_name: o.result.errno_name.clone(),
        expected,
        attempts: u32::try_from(o.attempts.len().max(1)).unwrap_or(u32::MAX),
        flaky: o.flaky,
        detail: o.result.detail.clone(),
        wall_us: Some(o.result.rusage.wall_us),
        task_id: o.task_id.clone(),
    }
}

struct Pipeline<'a> {
    settings: &'a RunSettings,
    host: CompileHost,
    loaded: &'a LoadedPlan,
    facts: &'a HostFacts,
    run_id: &'a str,
    jobs: u32,
    clean: bool,
    scratch: &'a Scratch,
    scenarios: &'a [ScenarioRun],
    compiled: BTreeMap<String, CompiledProfile>,
    oracle_out: Vec<Option<(OracleVerdict, Vec<PathWitness>)>>,
    lanes: Vec<Lane>,
    base_vars: Vars,
    runner_env: Vec<(String, String)>,
    governance: Vec<String>,
    housekeeping: Vec<String>,
    gate_files: Vec<(String, Vec<u8>)>,
    gate_flags: Vec<String>,
    baseline_on: bool,
    layers: Vec<Vec<String>>,
    listeners: Vec<String>,
    started: Instant,
    started_at: String,
}

impl Pipeline<'_> {
    fn run(
        self,
        bundle: &StagedBundle,
        sink: &mut dyn EventSink,
        stage: &mut &'static str,
    ) -> Result<RunOutcome> {
        let plan = &self.loaded.plan;
        *stage = "governance";
        if let Some(g) = &self.settings.gate {
            g.started(self.run_id)?;
        }
        *stage = "preflight";
        let helper_exe = match &self.settings.helper_exe {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| Error::io("locate the nexusmon executable", "/proc/self/exe", e))?,
        };
        for (rel, bytes) in &self.gate_files {
            bundle.write_bytes(rel, bytes)?;
        }

        // Per-child pids cgroups under the run's directory: exact leak tracking for every
        // child, and the process limit where a profile sets one.
        let cgroup_root: Option<String> = self.facts.pids_cgroup.clone();
        let cgroup_dir = cgroup_root
            .as_deref()
            .and_then(|r| crate::sandbox::cgroup::create_run_dir(Path::new(r), self.run_id).ok());
        let tracking = cgroup_dir.clone().map(|d| {
            (
                d,
                cgroup_root.as_deref().is_some_and(|r| r.ends_with("/pids")),
            )
        });

        // Preflight every profile, before any lane.
        let required = plan
            .apply_preflight_profile
            .as_ref()
            .map(ToString::to_string);
        let needs_exec: BTreeSet<&str> = self
            .scenarios
            .iter()
            .filter(|s| s.probe.driver == Driver::Exec)
            .map(|s| s.spec.profile_id.as_str())
            .collect();
        let mut runtimes: BTreeMap<String, ProfileRuntime> = BTreeMap::new();
        let mut preflight = Vec::new();
        for (id, c) in &self.compiled {
            let spec = c.apply_spec();
            let spec_json = serde_json::to_string(&spec)
                .map_err(|e| Error::runner("cannot serialize an apply spec").with_source(e))?;
            let mut rec = preflight_profile(
                &helper_exe,
                c,
                &spec_json,
                self.clean,
                self.scratch,
                cgroup_dir.as_deref(),
            )?;
            rec.required = required.as_deref() == Some(id.as_str());
            let prepared = if needs_exec.contains(id.as_str()) && c.apply_error.is_none() {
                let p = Prepared::new(&spec).map(Arc::new);
                if let Err(f) = &p
                    && rec.apply_ok
                {
                    rec.apply_ok = false;
                    rec.detail = format!("{} failed: {}", f.step.as_str(), f.detail);
                    rec.errno = f.errno;
                    rec.errno_name = f.errno.map(errno_name);
                }
                Some(p)
            } else {
                None
            };
            let enforcement = rec.ruleset_status.map(|r| Enforcement {
                ruleset: r,
                abi: self.facts.landlock_abi,
                no_new_privs: true,
                seccomp: !c.seccomp.is_empty(),
                reported_by: "preflight".into(),
            });
            sink.event(&RunEvent::Preflight {
                v: crate::model::results::EVENTS_VERSION,
                record: rec.clone(),
            });
            preflight.push(rec);
            runtimes.insert(
                id.clone(),
                ProfileRuntime {
                    profile: self
                        .loaded
                        .profiles
                        .get(id.as_str())
                        .cloned()
                        .unwrap_or_default(),
                    profiles_file: self.loaded.registry.profiles_path.clone(),
                    host: self.host.clone(),
                    compiled: c.clone(),
                    spec_json,
                    prepared,
                    enforcement,
                },
            );
        }
        bundle.write_json(
            "apply_preflight.json",
            &ApplyPreflight {
                schema_version: RESULTS_SCHEMA_VERSION,
                run_id: self.run_id.to_string(),
                abi_kernel: self.facts.landlock_abi,
                profiles: preflight.clone(),
            },
        )?;
        bundle.write_json("run_manifest.json", &self.manifest(&preflight))?;
        bundle.write_json("expected_matrix.json", &self.expected_matrix())?;

        let required_failed = preflight.iter().find(|r| r.required && !r.apply_ok);
        if let Some(r) = required_failed {
            let reason = format!(
                "the plan's apply_preflight_profile `{}` cannot be applied on this host ({}); no lane ran",
                r.profile,
                if r.detail.is_empty() {
                    "see apply_preflight.json".to_string()
                } else {
                    r.detail.clone()
                }
            );
            if let (Some(root), Some(_)) = (&cgroup_root, &cgroup_dir) {
                crate::sandbox::cgroup::remove_run_dir(Path::new(root), self.run_id);
            }
            return Ok(RunOutcome {
                run_id: Some(self.run_id.to_string()),
                status: RunStatus::Failed,
                exit_code: exit_code::NOT_ENFORCEABLE,
                exit_reason: reason,
                bundle: None,
                index_blake3: None,
                rows: Vec::new(),
                mismatches: Vec::new(),
                preflight,
                summary: None,
                verdicts: Vec::new(),
                refused: Vec::new(),
                layers: self.layers.clone(),
                jobs: self.jobs,
            });
        }

        // Oracle events first (nothing executes for them).
        for (sc, o) in self.scenarios.iter().zip(&self.oracle_out) {
            if let Some((v, _)) = o {
                sink.event(&oracle_event(sc, v));
            }
        }

        // The executing lanes.
        *stage = "execute";
        let baseline_spec = compile::baseline_spec();
        let baseline = BaselineRuntime {
            spec_json: serde_json::to_string(&baseline_spec)
                .map_err(|e| Error::runner("cannot serialize the baseline spec").with_source(e))?,
            prepared: Prepared::new(&baseline_spec).map(Arc::new),
        };
        let logs = BundleLogs(bundle);
        let output_cap = plan
            .execution
            .output_cap_bytes
            .unwrap_or(DEFAULT_OUTPUT_CAP);
        let executor = LiveExecutor::new(
            helper_exe,
            self.clean,
            self.scratch,
            self.base_vars.clone(),
            self.runner_env.clone(),
            runtimes,
            baseline,
            Some(&logs),
            tracking,
            output_cap,
        );
        let (baseline_obs, scenario_obs, unattributed) = run_lanes(
            &executor,
            self.scenarios,
            self.baseline_on,
            plan.lanes.scenario,
            plan.execution.retries,
            self.jobs as usize,
            sink,
        )?;
        if let Some(root) = &cgroup_root
            && cgroup_dir.is_some()
        {
            crate::sandbox::cgroup::remove_run_dir(Path::new(root), self.run_id);
        }
        if let Ok(mut slot) = executor.log_error.lock()
            && let Some(e) = slot.take()
        {
            return Err(e);
        }

        // Classify, attribute, compare, write.
        *stage = "write";
        let oracle: Vec<Option<OracleVerdict>> = self
            .oracle_out
            .iter()
            .map(|o| o.as_ref().map(|(v, _)| v.clone()))
            .collect();
        let mut witnesses: Vec<PathWitness> = self
            .oracle_out
            .iter()
            .flatten()
            .flat_map(|(_, w)| w.iter().cloned())
            .collect();
        witnesses.sort();
        witnesses.dedup();
        let ctx = AssembleCtx {
            run_id: self.run_id.to_string(),
            plan_id: plan.plan_id.to_string(),
            plan_digest: self.loaded.digest.clone(),
            channel: self.settings.channel,
            fail_on_flaky: plan.execution.fail_on_flaky.unwrap_or(true),
            wall_us: u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            runner_max_rss_kib: runner_max_rss_kib(),
            layers: self.layers.clone(),
            max_parallel: self.jobs,
        };
        let mut a = assemble(
            &ctx,
            self.scenarios,
            baseline_obs,
            scenario_obs,
            oracle,
            witnesses,
            &preflight,
        );
        a.summary.unattributed_leaks = unattributed;
        a.summary.governance_flags.clone_from(&self.gate_flags);
        write_results(bundle, &a)?;
        let report = crate::report::RunReport {
            summary: &a.summary,
            rows: &a.rows,
            mismatches: &a.packets,
            preflight: &preflight,
            oracle: &a.oracle.verdicts,
        };
        bundle.write_bytes(
            "summary.md",
            &crate::report::render(&crate::report::markdown::SummaryMarkdown, &report)?,
        )?;
        Ok(RunOutcome {
            run_id: Some(self.run_id.to_string()),
            status: a.summary.status,
            exit_code: a.summary.exit_code,
            exit_reason: a.summary.exit_reason.clone(),
            bundle: None,
            index_blake3: None,
            rows: a.rows,
            mismatches: a.packets,
            preflight,
            summary: Some(a.summary),
            verdicts: Vec::new(),
            refused: Vec::new(),
            layers: self.layers.clone(),
            jobs: self.jobs,
        })
    }

    fn expected_matrix(&self) -> ExpectedMatrix {
        ExpectedMatrix {
            schema_version: RESULTS_SCHEMA_VERSION,
            plan_id: self.loaded.plan.plan_id.to_string(),
            scenarios: self
                .scenarios
                .iter()
                .map(|s| {
                    (
                        s.spec.scenario_id.clone(),
                        expected_entry(&s.spec, s.task.as_ref()),
                    )
                })
                .collect(),
        }
    }

    fn manifest(&self, preflight: &[PreflightRecord]) -> RunManifest {
        let plan = &self.loaded.plan;
        let symbolic = self
            .base_vars
            .with(&[("SCRATCH", "${SCRATCH}"), ("HOME", "${HOME}")]);
        let mut probes = BTreeMap::new();
        for sc in self.scenarios {
            let p = &sc.probe;
            probes
                .entry(sc.spec.probe_id.to_string())
                .or_insert_with(|| ResolvedProbe {
                    probe: p.clone(),
                    target: p
                        .target
                        .as_ref()
                        .map(|t| symbolic.expand(t).unwrap_or_else(|_| t.clone())),
                    argv: p
                        .argv
                        .iter()
                        .flatten()
                        .map(|a| symbolic.expand(a).unwrap_or_else(|_| a.clone()))
                        .collect(),
                });
        }
        let key = blake3::hash(self.loaded.digest.blake3.as_bytes());
        let profiles = self
            .compiled
            .iter()
            .map(|(id, c)| {
                let mut v = compile::to_manifest_value(c);
                redact_env(&mut v, key.as_bytes());
                (id.clone(), v)
            })
            .collect();
        let mut variables: BTreeMap<String, String> = self
            .base_vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        variables.insert(
            "SCRATCH".into(),
            if self.loaded.plan.mission.is_some() {
                "(mission tasks: one workspace per lane, <scratch>/mission/<lane>, shared by every task; other scenarios: per child, <scratch>/<lane>/<profile>/<probe>.a<attempt>)".into()
            } else {
                "(per child: <scratch>/<lane>/<profile>/<probe>.a<attempt>)".into()
            },
        );
        variables.insert(
            "HOME".into(),
            if self.clean {
                "(per child: its ${SCRATCH})".into()
            } else {
                "(the runner's $HOME)".into()
            },
        );
        let governance = self.governance.clone();
        RunManifest {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: self.run_id.to_string(),
            tool: ToolInfo {
                name: "nexusmon".into(),
                version: crate::VERSION.into(),
            },
            plan_id: plan.plan_id.to_string(),
            plan_path: relative_to(&self.loaded.path, &self.settings.root),
            plan_digest: self.loaded.digest.clone(),
            channel: self.settings.channel,
            host: self.facts.clone(),
            landlock_abi: self.facts.landlock_abi,
            lanes: LanePolicy {
                lanes: self.lanes.clone(),
                baseline_no_new_privs: true,
                scenario_no_new_privs: true,
                scenario_adds: vec![
                    "landlock".into(),
                    "seccomp deny groups".into(),
                    "rlimits".into(),
                    "pids cgroup (limits.processes)".into(),
                ],
            },
            jobs: self.jobs,
            scratch: self.scratch.root().to_string_lossy().into_owned(),
            scratch_kept: self.settings.keep_scratch,
            only_profiles: self.settings.only_profiles.clone(),
            only_scenarios: self.settings.only_scenarios.clone(),
            selected: self
                .scenarios
                .iter()
                .map(|s| s.spec.scenario_id.clone())
                .collect(),
            command_line: self.settings.command_line.clone(),
            variables,
            plan: serde_json::to_value(plan).unwrap_or(serde_json::Value::Null),
            probes,
            profiles,
            preflight: preflight.to_vec(),
            governance,
            listeners: self.listeners.clone(),
            housekeeping: self.housekeeping.clone(),
            registry_digests: crate::model::results::RegistryDigests::of(
                &self.loaded.probes,
                &self.loaded.profiles,
            ),
            started_at: self.started_at.clone(),
        }
    }
}

/// Values of environment variables whose names look secret are replaced by a keyed digest.
fn redact_env(v: &mut serde_json::Value, key: &[u8; 32]) {
    let Some(set) = v.pointer_mut("/env/set").and_then(|s| s.as_object_mut()) else {
        return;
    };
    for (name, val) in set.iter_mut() {
        let upper = name.to_ascii_uppercase();
        let secret = [
            "TOKEN",
            "SECRET",
            "PASSWORD",
            "PASSWD",
            "KEY",
            "CREDENTIAL",
            "AUTH",
        ]
        .iter()
        .any(|w| upper.contains(w));
        if secret && let Some(s) = val.as_str() {
            let d = blake3::keyed_hash(key, s.as_bytes()).to_hex();
            *val = serde_json::Value::String(format!("<redacted blake3-keyed:{}>", &d[..16]));
        }
    }
}

fn relative_to(p: &Path, root: &Path) -> String {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    abs.strip_prefix(root).map_or_else(
        |_| abs.to_string_lossy().into_owned(),
        |r| r.to_string_lossy().into_owned(),
    )
}

/// The runner's own peak RSS: `VmHWM` from `/proc/self/status`, the high-water mark of this
/// process's memory since it started. (`getrusage(RUSAGE_SELF)` is not used: Linux seeds a
/// process's `ru_maxrss` with its spawner's resident set at `execve`.)
pub fn runner_max_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Apply a profile in a throw-away helper (`noop`) and record what the kernel said.
fn preflight_profile(
    helper_exe: &Path,
    c: &CompiledProfile,
    spec_json: &str,
    clean: bool,
    scratch: &Scratch,
    cgroup_dir: Option<&Path>,
) -> Result<PreflightRecord> {
    let dir = scratch.preflight_dir(&c.profile_id)?;
    let cg = match (c.needs_pids_cgroup(), cgroup_dir) {
        (Some((limit, root)), Some(d)) => crate::sandbox::cgroup::ChildCgroup::create(
            d,
            &format!("preflight-{}", c.profile_id),
            Some(limit),
            root.ends_with("/pids"),
        )
        .ok(),
        _ => None,
    };
    let request = super::lanes::helper_request(
        "noop",
        None,
        None,
        spec_json,
        clean,
        cg.as_ref()
            .map(|g| g.procs_path().to_string_lossy().into_owned())
            .as_deref(),
        1000,
    );
    let res = child::run_child(
        &ChildSpec {
            program: helper_exe.to_path_buf(),
            args: vec!["__probe".into(), request],
            arg0: Some("nexusmon-probe".into()),
            env: clean.then(|| {
                let d = dir.to_string_lossy().into_owned();
                vec![("HOME".to_string(), d.clone()), ("TMPDIR".to_string(), d)]
            }),
            cwd: clean.then(|| dir.clone()),
            clean,
            pre_exec: None,
            timeout: Duration::from_secs(10),
            grace: Duration::from_millis(DEFAULT_KILL_GRACE_MS),
            output_cap: 64 * 1024,
        },
        cg.as_ref()
            .map_or(child::Tracking::None, child::Tracking::Child),
    );
    if let Some(g) = cg {
        g.kill_all();
        g.remove();
    }
    let line = helper::parse_line(&res.stdout.kept);
    let ll = c.landlock.as_ref();
    let mut rec = PreflightRecord {
        profile: c.profile_id.clone(),
        compat: match c.compat {
            crate::model::registry::Compat::Hard => "hard".into(),
            crate::model::registry::Compat::BestEffort => "best-effort".into(),
        },
        abi_requested: ll.map(|l| l.abi),
        abi_kernel: c.kernel_abi,
        ruleset_status: None,
        apply_ok: false,
        errno: None,
        errno_name: None,
        detail: String::new(),
        dropped_rights: c.dropped.clone(),
        unenforceable: c.unenforceable.clone(),
        skipped_rules: c.skipped_rules.clone(),
        seccomp_groups: c
            .seccomp
            .iter()
            .map(|g| {
                serde_json::to_value(g)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect(),
        processes_enforced_by: c.processes.as_ref().map(|p| p.enforced_by.clone()),
        required: false,
    };
    match line {
        Some(l) => {
            rec.ruleset_status = l.enforcement.as_ref().map(|e| e.ruleset);
            rec.errno = l.errno;
            rec.errno_name = l.errno_name.clone();
            if l.outcome == Outcome::ApplyFailed {
                rec.detail = l.detail;
            } else {
                rec.apply_ok = true;
            }
        }
        None => {
            rec.detail = format!(
                "the preflight helper gave no result line (exit {:?}, stderr: {})",
                res.ended,
                String::from_utf8_lossy(&res.stderr.kept).trim()
            );
        }
    }
    if let Some(e) = &c.apply_error {
        rec.apply_ok = false;
        if rec.detail.is_empty() {
            rec.detail.clone_from(e);
        } else {
            rec.detail = format!("{e}; {}", rec.detail);
        }
    }
    Ok(rec)
}

type LaneObservations = (
    Vec<Option<Observation>>,
    Vec<Option<Observation>>,
    Vec<crate::model::results::Leaked>,
);

/// Run the baseline and scenario lanes of every scenario on `jobs` workers. Results are
/// indexed by scenario (completion order does not matter).
///
/// Mission tasks ([`ScenarioRun::task`]) run in dependency order: a task's scenario-lane
/// job starts once the scenario-lane jobs of every task it depends on **succeeded** (their
/// outcome matched their expectation); its baseline job, once those tasks' jobs in both
/// lanes finished (so a baseline task sees its dependencies' baseline work). A task that
/// failed skips every dependent, transitively and in both lanes: a skipped task never
/// runs, and its observations name the failed task (`skipped_because`). Scenarios outside
/// the task graph (experiments, a mission's declared scenarios) have no dependencies.
pub fn run_lanes(
    exec: &dyn ProbeExecutor,
    scenarios: &[ScenarioRun],
    baseline: bool,
    scenario: bool,
    retries: u32,
    jobs: usize,
    sink: &mut dyn EventSink,
) -> Result<LaneObservations> {
    // Node indexes first, then dependencies between them.
    let mut index: BTreeMap<(usize, Lane), usize> = BTreeMap::new();
    let mut order: Vec<(usize, Lane)> = Vec::new();
    for i in 0..scenarios.len() {
        for (on, lane) in [(baseline, Lane::Baseline), (scenario, Lane::Scenario)] {
            if on {
                index.insert((i, lane), order.len());
                order.push((i, lane));
            }
        }
    }
    let by_task: BTreeMap<&str, usize> = scenarios
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.task.as_ref().map(|t| (t.task_id.as_str(), i)))
        .collect();
    let nodes: Vec<JobNode<(usize, Lane)>> = order
        .iter()
        .map(|&(i, lane)| {
            let mut deps: Vec<usize> = Vec::new();
            for d in scenarios[i].task.iter().flat_map(|t| &t.depends_on) {
                let Some(&di) = by_task.get(d.as_str()) else {
                    continue;
                };
                deps.extend(index.get(&(di, Lane::Scenario)));
                if lane == Lane::Baseline {
                    deps.extend(index.get(&(di, Lane::Baseline)));
                }
            }
            deps.sort_unstable();
            deps.dedup();
            JobNode {
                job: (i, lane),
                deps,
            }
        })
        .collect();
    // A task's scenario-lane job succeeds when it matched its expectation; baseline jobs
    // and scenarios outside the task graph never hold anything back.
    let succeeded = |o: &Observation| {
        o.lane != Lane::Scenario
            || o.task_id.is_none()
            || scenarios
                .iter()
                .find(|s| s.spec.scenario_id == o.scenario_id)
                .is_none_or(|s| outcome::matches_expectation(s.spec.expected, o.result.outcome))
    };
    let reaper = child::become_subreaper().is_ok();
    let run = |job: &(usize, Lane)| observe_lane(exec, &scenarios[job.0], job.1, retries);
    // Per node: the failed task (and why) that stopped it, as completions arrive (a job's
    // cause has always finished before the job is skipped).
    let mut causes: Vec<Option<(String, String)>> = vec![None; nodes.len()];
    let skipped = |sc: &ScenarioRun, lane: Lane, cause: Option<&(String, String)>| match cause {
        Some((task, why)) => skipped_observation(
            sc,
            lane,
            &format!("not run: task `{task}`, which it depends on, failed ({why})"),
            Some(task.clone()),
        ),
        None => skipped_observation(sc, lane, "not run: a dependency failed", None),
    };
    let states = {
        let mut on_done = |i: usize, st: &JobState<Observation>| {
            let (si, lane) = nodes[i].job;
            let sc = &scenarios[si];
            match st {
                JobState::Done(o) => {
                    if !succeeded(o)
                        && let Some(t) = &sc.task
                    {
                        causes[i] = Some((t.task_id.clone(), failure_words(sc, o)));
                    }
                    sink.event(&observation_event(o, sc.spec.expected));
                }
                JobState::Skipped(j) => {
                    causes[i] = causes.get(*j).cloned().flatten();
                    let o = skipped(sc, lane, causes[i].as_ref());
                    sink.event(&observation_event(&o, sc.spec.expected));
                }
            }
        };
        scheduler::run_dag(&nodes, jobs, &run, &succeeded, &mut on_done)
    };
    let unattributed = if reaper {
        child::final_sweep()
    } else {
        Vec::new()
    };
    if reaper {
        child::stop_subreaper();
    }
    let states = states.map_err(Error::runner)?;
    let mut base: Vec<Option<Observation>> = scenarios.iter().map(|_| None).collect();
    let mut scen: Vec<Option<Observation>> = scenarios.iter().map(|_| None).collect();
    for (n, (node, st)) in nodes.iter().zip(states).enumerate() {
        let (si, lane) = node.job;
        let o = match st {
            JobState::Done(o) => o,
            JobState::Skipped(_) => skipped(&scenarios[si], lane, causes[n].as_ref()),
        };
        match lane {
            Lane::Baseline => base[si] = Some(o),
            _ => scen[si] = Some(o),
        }
    }
    Ok((base, scen, unattributed))
}

/// "expected allow, observed deny (EACCES)" for a failed task.
fn failure_words(sc: &ScenarioRun, o: &Observation) -> String {
    let mut s = format!(
        "expected {}, observed {}",
        sc.spec.expected.as_str(),
        o.result.outcome.as_str()
    );
    if let Some(e) = &o.result.errno_name {
        let _ = write!(s, " {e}");
    } else if let Some(c) = o.result.exit_code
        && o.result.outcome == Outcome::Error
    {
        let _ = write!(s, " (exit {c})");
    }
    s
}

// ---------------------------------------------------------------------------------------
// Assemble (pure: unit-tested without processes)
// ---------------------------------------------------------------------------------------

/// Run-level facts for assembling results.
#[derive(Debug, Clone)]
pub struct AssembleCtx {
    /// The run id.
    pub run_id: String,
    /// The plan id.
    pub plan_id: String,
    /// `plan_digest`.
    pub plan_digest: Digest,
    /// The channel.
    pub channel: ChannelKind,
    /// `execution.fail_on_flaky`.
    pub fail_on_flaky: bool,
    /// Wall time so far.
    pub wall_us: u64,
    /// The runner's peak RSS.
    pub runner_max_rss_kib: u64,
    /// A mission's task layers (empty for experiments).
    pub layers: Vec<Vec<String>>,
    /// How many tasks could run at once.
    pub max_parallel: u32,
}

/// Every result file's content.
#[derive(Debug, Clone)]
pub struct Assembled {
    /// `runtime_results.json`.
    pub runtime: LaneResults,
    /// `baseline_results.json`.
    pub baseline: LaneResults,
    /// `oracle_results.json`.
    pub oracle: OracleResults,
    /// `path_witnesses.json`.
    pub witnesses: PathWitnesses,
    /// `runtime_events.normalized.json` rows.
    pub rows: Vec<NormalizedRow>,
    /// `mismatch_packets.jsonl` lines.
    pub packets: Vec<MismatchPacket>,
    /// `mismatch_summary.json`.
    pub mismatch_summary: MismatchSummary,
    /// `summary.json`.
    pub summary: Summary,
}

fn cell(o: &Observation) -> LaneCell {
    LaneCell {
        outcome: o.result.outcome,
        stage: o.result.stage,
        errno_name: o.result.errno_name.clone(),
    }
}

/// Classify, attribute and compare; build every result file. Inputs are indexed like
/// `scenarios` (sorted by scenario id); outputs are sorted the same way.
pub fn assemble(
    ctx: &AssembleCtx,
    scenarios: &[ScenarioRun],
    baseline: Vec<Option<Observation>>,
    scenario: Vec<Option<Observation>>,
    oracle: Vec<Option<OracleVerdict>>,
    witnesses: Vec<PathWitness>,
    preflight: &[PreflightRecord],
) -> Assembled {
    let mut rows = Vec::with_capacity(scenarios.len());
    let mut packets = Vec::new();
    let mut flaky = Vec::new();
    let mut leaked = Vec::new();
    let mut truncated = Vec::new();
    let mut rusage: BTreeMap<String, Rusage> = BTreeMap::new();
    let mut children: BTreeMap<String, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut oracle_counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut attribution_counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut apply_failed: BTreeSet<String> = preflight
        .iter()
        .filter(|r| !r.apply_ok)
        .map(|r| r.profile.clone())
        .collect();
    let (mut tasks_total, mut tasks_ok) = (0u64, 0u64);
    let mut failed_tasks: Vec<String> = Vec::new();
    let mut skipped_tasks: Vec<String> = Vec::new();

    for (i, sc) in scenarios.iter().enumerate() {
        let b = baseline.get(i).and_then(Option::as_ref);
        let s = scenario.get(i).and_then(Option::as_ref);
        let o = oracle.get(i).and_then(Option::as_ref);
        for obs in [b, s].into_iter().flatten() {
            let lane = obs.lane.as_str().to_string();
            *outcomes
                .entry(lane.clone())
                .or_default()
                .entry(obs.result.outcome.as_str().to_string())
                .or_default() += 1;
            let all: Vec<&Attempt> = if obs.attempts.is_empty() {
                vec![&obs.result]
            } else {
                obs.attempts.iter().collect()
            };
            for a in all {
                if a.rusage.wall_us > 0 || a.exit_code.is_some() || a.signal.is_some() {
                    rusage.entry(lane.clone()).or_default().add(&a.rusage);
                    *children.entry(lane.clone()).or_default() += 1;
                }
                for l in &a.leaked {
                    leaked.push(ObservationNote {
                        scenario_id: sc.spec.scenario_id.clone(),
                        lane: obs.lane,
                        note: format!(
                            "attempt {}: pid {} ({}) found by {}, {}",
                            a.attempt, l.pid, l.comm, l.found_by, l.action
                        ),
                    });
                }
                for (name, c) in [("stdout", &a.stdout), ("stderr", &a.stderr)] {
                    if c.truncated {
                        truncated.push(ObservationNote {
                            scenario_id: sc.spec.scenario_id.clone(),
                            lane: obs.lane,
                            note: format!(
                                "attempt {}: {name} {} bytes, {} kept",
                                a.attempt, c.bytes, c.kept
                            ),
                        });
                    }
                }
            }
        }
        if let Some(v) = o {
            *oracle_counts
                .entry(v.decision.as_str().to_string())
                .or_default() += 1;
        }
        if s.is_some_and(|x| x.flaky) {
            flaky.push(sc.spec.scenario_id.clone());
        }
        if s.is_some_and(|x| x.result.outcome == Outcome::ApplyFailed) {
            apply_failed.insert(sc.spec.profile_id.to_string());
        }
        let attribution = match (b, s) {
            (Some(b), Some(s)) => Some(outcome::attribute(b.result.outcome, s.result.outcome)),
            _ => None,
        };
        if let Some(a) = attribution {
            *attribution_counts
                .entry(a.as_str().to_string())
                .or_default() += 1;
        }
        let kinds = outcome::mismatches(
            sc.spec.expected,
            s.map(|x| x.result.outcome),
            o.map(|v| v.decision),
        );
        for k in &kinds {
            packets.push(MismatchPacket {
                schema_version: RESULTS_SCHEMA_VERSION,
                scenario_id: sc.spec.scenario_id.clone(),
                kind: *k,
                profile_id: sc.spec.profile_id.to_string(),
                probe_id: sc.spec.probe_id.to_string(),
                operation: sc.probe.operation,
                target: s
                    .and_then(|x| x.target.clone())
                    .or_else(|| sc.probe.target.clone()),
                expected: sc.spec.expected,
                observed: s.map(|x| x.result.outcome),
                stage: s.map(|x| x.result.stage),
                errno_name: s.and_then(|x| x.result.errno_name.clone()),
                baseline: b.map(|x| x.result.outcome),
                oracle: o.map(|v| v.decision),
                oracle_reason: o.map(|v| v.reason.clone()),
                oracle_rule: o.map(|v| v.rule.clone()),
                attribution,
                message: mismatch_message(*k, sc, s, o),
                task_id: sc.task.as_ref().map(|t| t.task_id.clone()),
            });
        }
        rows.push(NormalizedRow {
            scenario_id: sc.spec.scenario_id.clone(),
            profile_id: sc.spec.profile_id.to_string(),
            probe_id: sc.spec.probe_id.to_string(),
            operation: sc.probe.operation,
            target: s
                .and_then(|x| x.target.clone())
                .or_else(|| sc.probe.target.clone()),
            expected: sc.spec.expected,
            control: sc.spec.control,
            baseline: b.map(cell),
            scenario: s.map(cell),
            oracle: o.map(|v| OracleCell {
                decision: v.decision,
                reason: v.reason.clone(),
            }),
            attribution,
            mismatches: kinds,
            flaky: s.is_some_and(|x| x.flaky),
            task_id: sc.task.as_ref().map(|t| t.task_id.clone()),
            depends_on: sc
                .task
                .as_ref()
                .map(|t| t.depends_on.clone())
                .unwrap_or_default(),
            skipped_because: s.and_then(|x| x.skipped_because.clone()),
        });
        if let Some(t) = &sc.task {
            tasks_total += 1;
            match s.map(|x| x.result.outcome) {
                Some(Outcome::Skipped) => skipped_tasks.push(t.task_id.clone()),
                Some(o) if outcome::matches_expectation(sc.spec.expected, o) => {
                    tasks_ok += 1;
                }
                _ => failed_tasks.push(t.task_id.clone()),
            }
        }
    }
    failed_tasks.sort();
    skipped_tasks.sort();
    let tasks = (tasks_total > 0).then(|| crate::model::results::TaskSummary {
        total: tasks_total,
        succeeded: tasks_ok,
        failed: failed_tasks.len() as u64,
        skipped: skipped_tasks.len() as u64,
        failed_tasks: failed_tasks.clone(),
        skipped_tasks: skipped_tasks.clone(),
        layers: ctx.layers.clone(),
        max_parallel: ctx.max_parallel,
    });
    let mut by_kind: BTreeMap<String, u64> = MismatchKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), 0))
        .collect();
    let mut by_profile: BTreeMap<String, u64> = BTreeMap::new();
    for p in &packets {
        *by_kind.entry(p.kind.as_str().to_string()).or_default() += 1;
        *by_profile.entry(p.profile_id.clone()).or_default() += 1;
    }
    let mismatch_scenarios: Vec<String> = {
        let s: BTreeSet<String> = packets.iter().map(|p| p.scenario_id.clone()).collect();
        s.into_iter().collect()
    };
    let mismatch_summary = MismatchSummary {
        schema_version: RESULTS_SCHEMA_VERSION,
        run_id: ctx.run_id.clone(),
        total: packets.len() as u64,
        by_kind: by_kind.clone(),
        by_profile,
        scenarios: mismatch_scenarios,
    };
    let flaky_fails = ctx.fail_on_flaky && !flaky.is_empty();
    let apply_failed: Vec<String> = apply_failed.into_iter().collect();
    let (exit, reason) = if !apply_failed.is_empty() {
        (
            exit_code::NOT_ENFORCEABLE,
            format!(
                "profile(s) {} could not be applied on this host (see apply_preflight.json); the other profiles' lanes ran",
                apply_failed
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else if !failed_tasks.is_empty() {
        let list = |v: &[String]| {
            v.iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut reason = format!(
            "{} of {tasks_total} task(s) failed ({})",
            failed_tasks.len(),
            list(&failed_tasks)
        );
        if !skipped_tasks.is_empty() {
            let _ = write!(
                reason,
                ", {} skipped because a task they depend on failed ({})",
                skipped_tasks.len(),
                list(&skipped_tasks)
            );
        }
        let _ = write!(reason, "; {} mismatch(es)", packets.len());
        (exit_code::FINDINGS, reason)
    } else if !packets.is_empty() {
        (
            exit_code::FINDINGS,
            format!(
                "{} mismatch(es) in {} scenario(s)",
                packets.len(),
                mismatch_summary.scenarios.len()
            ),
        )
    } else if flaky_fails {
        (
            exit_code::FINDINGS,
            format!(
                "{} flaky scenario(s) passed only on retry (execution.fail_on_flaky)",
                flaky.len()
            ),
        )
    } else if tasks_total > 0 {
        let others = scenarios.len() as u64 - tasks_total;
        let mut reason = format!("all {tasks_total} task(s) succeeded");
        if others > 0 {
            let _ = write!(
                reason,
                " and the {others} other scenario(s) matched their expectations"
            );
        }
        (exit_code::OK, reason)
    } else {
        (
            exit_code::OK,
            format!(
                "all {} scenario(s) matched their expectations",
                scenarios.len()
            ),
        )
    };
    let status = if exit == exit_code::OK {
        RunStatus::Ok
    } else {
        RunStatus::Partial
    };
    let partially: Vec<String> = preflight
        .iter()
        .filter(|r| {
            r.ruleset_status == Some(crate::model::results::RulesetStatus::PartiallyEnforced)
                || !r.dropped_rights.is_empty()
        })
        .map(|r| r.profile.clone())
        .collect();
    leaked.sort();
    truncated.sort();
    let summary = Summary {
        schema_version: RESULTS_SCHEMA_VERSION,
        run_id: ctx.run_id.clone(),
        plan_id: ctx.plan_id.clone(),
        plan_digest: ctx.plan_digest.clone(),
        status,
        exit_code: exit,
        exit_reason: reason,
        channel: ctx.channel,
        scenarios: scenarios.len() as u64,
        outcomes,
        oracle: oracle_counts,
        attribution: attribution_counts,
        mismatches: by_kind,
        flaky,
        fail_on_flaky: ctx.fail_on_flaky,
        apply_failed_profiles: apply_failed,
        partially_enforced_profiles: partially,
        leaked,
        truncated,
        rusage,
        children,
        runner_max_rss_kib: ctx.runner_max_rss_kib,
        wall_us: ctx.wall_us,
        unattributed_leaks: Vec::new(),
        governance_flags: Vec::new(),
        tasks,
    };
    let collect = |v: Vec<Option<Observation>>, lane: Lane| LaneResults {
        schema_version: RESULTS_SCHEMA_VERSION,
        run_id: ctx.run_id.clone(),
        lane,
        observations: v.into_iter().flatten().collect(),
    };
    Assembled {
        runtime: collect(scenario, Lane::Scenario),
        baseline: collect(baseline, Lane::Baseline),
        oracle: OracleResults {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: ctx.run_id.clone(),
            verdicts: oracle.into_iter().flatten().collect(),
        },
        witnesses: PathWitnesses {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: ctx.run_id.clone(),
            witnesses,
        },
        rows,
        packets,
        mismatch_summary,
        summary,
    }
}

fn mismatch_message(
    k: MismatchKind,
    sc: &ScenarioRun,
    s: Option<&Observation>,
    o: Option<&OracleVerdict>,
) -> String {
    let op = sc.probe.operation;
    let target = s
        .and_then(|x| x.target.clone())
        .or_else(|| sc.probe.target.clone())
        .unwrap_or_default();
    let errno = s
        .and_then(|x| x.result.errno_name.clone())
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    match k {
        MismatchKind::ExpectedDenyObservedAllow => {
            format!("expected deny, the kernel allowed {op} {target}: a policy hole")
        }
        MismatchKind::ExpectedAllowObservedDeny => {
            format!("expected allow, the kernel denied {op} {target}{errno}")
        }
        MismatchKind::OracleDivergence => format!(
            "the oracle predicted {} but the scenario lane saw {}: {}",
            o.map_or("nothing", |v| v.decision.as_str()),
            s.map_or("nothing", |x| x.result.outcome.as_str()),
            o.map_or(String::new(), |v| v.reason.clone())
        ),
        MismatchKind::ApplyFailed => format!(
            "the profile could not be applied: {}",
            s.map_or(String::new(), |x| x.result.detail.clone())
        ),
        MismatchKind::Inconclusive => format!(
            "the scenario lane ended in {}: {}",
            s.map_or("nothing", |x| x.result.outcome.as_str()),
            s.map_or(String::new(), |x| x.result.detail.clone())
        ),
    }
}

/// Key-sorted pretty JSON of an object whose field `key` is the list `items`, built one
/// item at a time: the same bytes as `util::json::to_sorted_pretty` of the whole object,
/// without holding a JSON tree of every item (result files of thousands of scenarios).
pub fn pretty_list_doc<T: serde::Serialize>(
    head: &serde_json::Value,
    key: &str,
    items: &[T],
) -> Result<Vec<u8>> {
    let ser = |e: serde_json::Error| Error::runner("cannot serialize JSON").with_source(e);
    let indent = |text: &str, by: &str| text.replace('\n', &format!("\n{by}"));
    let mut fields: BTreeMap<&str, Option<&serde_json::Value>> = head
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), Some(v))).collect())
        .unwrap_or_default();
    fields.insert(key, None);
    let mut out = String::from("{\n");
    let n = fields.len();
    for (i, (k, v)) in fields.into_iter().enumerate() {
        out.push_str("  ");
        out.push_str(&serde_json::to_string(k).map_err(ser)?);
        out.push_str(": ");
        match v {
            Some(v) => out.push_str(&indent(
                &serde_json::to_string_pretty(v).map_err(ser)?,
                "  ",
            )),
            None if items.is_empty() => out.push_str("[]"),
            None => {
                out.push_str("[\n");
                for (j, item) in items.iter().enumerate() {
                    let value = serde_json::to_value(item).map_err(ser)?;
                    out.push_str("    ");
                    out.push_str(&indent(
                        &serde_json::to_string_pretty(&value).map_err(ser)?,
                        "    ",
                    ));
                    out.push_str(if j + 1 == items.len() { "\n" } else { ",\n" });
                }
                out.push_str("  ]");
            }
        }
        out.push_str(if i + 1 == n { "\n" } else { ",\n" });
    }
    out.push_str("}\n");
    Ok(out.into_bytes())
}

fn lane_doc(r: &LaneResults) -> Result<Vec<u8>> {
    pretty_list_doc(
        &serde_json::json!({
            "schema_version": r.schema_version,
            "run_id": r.run_id,
            "lane": r.lane,
        }),
        "observations",
        &r.observations,
    )
}

fn write_results(bundle: &StagedBundle, a: &Assembled) -> Result<()> {
    bundle.write_bytes("runtime_results.json", &lane_doc(&a.runtime)?)?;
    bundle.write_bytes("baseline_results.json", &lane_doc(&a.baseline)?)?;
    let head = |run_id: &str| {
        serde_json::json!({
            "schema_version": RESULTS_SCHEMA_VERSION,
            "run_id": run_id,
        })
    };
    bundle.write_bytes(
        "oracle_results.json",
        &pretty_list_doc(&head(&a.oracle.run_id), "verdicts", &a.oracle.verdicts)?,
    )?;
    bundle.write_bytes(
        "path_witnesses.json",
        &pretty_list_doc(
            &head(&a.witnesses.run_id),
            "witnesses",
            &a.witnesses.witnesses,
        )?,
    )?;
    bundle.write_bytes(
        "runtime_events.normalized.json",
        &pretty_list_doc(&head(&a.summary.run_id), "rows", &a.rows)?,
    )?;
    bundle.write_json("mismatch_summary.json", &a.mismatch_summary)?;
    let mut jsonl = String::new();
    for p in &a.packets {
        jsonl.push_str(&json::to_sorted_line(p)?);
        jsonl.push('\n');
    }
    bundle.write_bytes("mismatch_packets.jsonl", jsonl.as_bytes())?;
    bundle.write_json("summary.json", &a.summary)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Id;
    use crate::model::results::OracleDecision;
    use std::sync::Mutex;

    /// A fake executor: outcomes scripted per (scenario, lane, attempt).
    struct Fake {
        script: BTreeMap<(String, Lane), Vec<Outcome>>,
        calls: Mutex<Vec<(String, Lane, u32)>>,
    }

    impl ProbeExecutor for Fake {
        fn observe(&self, sc: &ScenarioRun, lane: Lane, attempt: u32) -> LaneAttempt {
            self.calls
                .lock()
                .unwrap()
                .push((sc.spec.scenario_id.clone(), lane, attempt));
            let outs = &self.script[&(sc.spec.scenario_id.clone(), lane)];
            let o = outs[(attempt as usize - 1).min(outs.len() - 1)];
            let mut a = Attempt::without_child(o, Stage::Operation, format!("fake {}", o.as_str()));
            if o == Outcome::Deny {
                a.errno = Some(libc::EACCES);
                a.errno_name = Some("EACCES".into());
            }
            a.rusage.wall_us = 100;
            a.rusage.max_rss_kib = 10 * u64::from(attempt);
            LaneAttempt {
                attempt: a,
                target: sc.probe.target.clone(),
                argv: Vec::new(),
            }
        }
    }

    fn scenario(profile: &str, probe: &str, expected: Expectation) -> ScenarioRun {
        ScenarioRun {
            spec: ScenarioSpec {
                scenario_id: format!("{profile}:{probe}"),
                profile_id: Id::new(profile).unwrap(),
                probe_id: Id::new(probe).unwrap(),
                expected,
                control: false,
            },
            probe: Probe {
                operation: Operation::FileRead,
                target: Some("/etc/hostname".into()),
                destination: None,
                driver: Driver::Builtin,
                argv: None,
                allow_exit_codes: None,
                deny_exit_codes: None,
                timeout_ms: None,
                fixtures: Vec::new(),
                notes: None,
                tags: Vec::new(),
            },
            timeout: TimeoutSetting {
                ms: 1000,
                source: TimeoutSource::Default,
                kill_grace_ms: 500,
            },
            task: None,
        }
    }

    fn verdict(sc: &ScenarioRun, d: OracleDecision) -> OracleVerdict {
        OracleVerdict {
            scenario_id: sc.spec.scenario_id.clone(),
            profile_id: sc.spec.profile_id.to_string(),
            probe_id: sc.spec.probe_id.to_string(),
            operation: sc.probe.operation,
            decision: d,
            reason: format!("fake {}", d.as_str()),
            rule: crate::model::results::CitedRule {
                kind: "absent".into(),
                index: None,
                path: None,
                resolved_path: None,
                access: Vec::new(),
                port: None,
            },
            checks: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn ctx() -> AssembleCtx {
        AssembleCtx {
            run_id: "r1".into(),
            plan_id: "p".into(),
            plan_digest: Digest::blake3_of(b"x"),
            channel: ChannelKind::Clean,
            fail_on_flaky: true,
            wall_us: 1,
            runner_max_rss_kib: 1,
            layers: Vec::new(),
            max_parallel: 1,
        }
    }

    #[test]
    fn lanes_classify_attribute_and_compare_with_a_fake_executor() {
        struct Collect<'a>(&'a mut Vec<RunEvent>);
        impl EventSink for Collect<'_> {
            fn event(&mut self, e: &RunEvent) {
                self.0.push(e.clone());
            }
        }
        let scs = vec![
            scenario("a", "deny-me", Expectation::Deny),
            scenario("a", "expect-allow", Expectation::Allow),
            scenario("a", "flaky", Expectation::Allow),
            scenario("a", "hole", Expectation::Deny),
        ];
        let mut script = BTreeMap::new();
        let mut put = |id: &str, l: Lane, o: Vec<Outcome>| {
            script.insert((id.to_string(), l), o);
        };
        put("a:deny-me", Lane::Baseline, vec![Outcome::Allow]);
        put("a:deny-me", Lane::Scenario, vec![Outcome::Deny]);
        put("a:expect-allow", Lane::Baseline, vec![Outcome::Allow]);
        put("a:expect-allow", Lane::Scenario, vec![Outcome::Deny]);
        put("a:flaky", Lane::Baseline, vec![Outcome::Allow]);
        put(
            "a:flaky",
            Lane::Scenario,
            vec![Outcome::Timeout, Outcome::Allow],
        );
        put("a:hole", Lane::Baseline, vec![Outcome::Allow]);
        put("a:hole", Lane::Scenario, vec![Outcome::Allow]);
        let fake = Fake {
            script,
            calls: Mutex::new(Vec::new()),
        };
        let mut events = Vec::new();
        let (b, s, _) =
            run_lanes(&fake, &scs, true, true, 2, 3, &mut Collect(&mut events)).unwrap();
        assert_eq!(events.len(), 8);
        // Retries: expect-allow (deterministic deny) tried 3 times; flaky twice.
        let calls = fake.calls.lock().unwrap().clone();
        let count = |id: &str| {
            calls
                .iter()
                .filter(|(s, l, _)| s == id && *l == Lane::Scenario)
                .count()
        };
        assert_eq!(count("a:expect-allow"), 3);
        assert_eq!(count("a:flaky"), 2);
        assert_eq!(count("a:deny-me"), 1);
        let oracle = vec![
            Some(verdict(&scs[0], OracleDecision::Deny)),
            Some(verdict(&scs[1], OracleDecision::Deny)),
            Some(verdict(&scs[2], OracleDecision::Allow)),
            Some(verdict(&scs[3], OracleDecision::Deny)),
        ];
        let a = assemble(&ctx(), &scs, b, s, oracle, Vec::new(), &[]);
        let row = |id: &str| a.rows.iter().find(|r| r.scenario_id == id).unwrap().clone();
        assert_eq!(
            row("a:deny-me").attribution,
            Some(crate::model::results::Attribution::ProfileShaped)
        );
        assert!(row("a:deny-me").mismatches.is_empty());
        assert_eq!(
            row("a:expect-allow").mismatches,
            vec![MismatchKind::ExpectedAllowObservedDeny]
        );
        assert!(row("a:flaky").flaky);
        assert!(row("a:flaky").mismatches.is_empty());
        assert_eq!(
            row("a:hole").mismatches,
            vec![
                MismatchKind::ExpectedDenyObservedAllow,
                MismatchKind::OracleDivergence
            ]
        );
        let flaky_obs = a
            .runtime
            .observations
            .iter()
            .find(|o| o.scenario_id == "a:flaky")
            .unwrap();
        assert_eq!(flaky_obs.attempts.len(), 2);
        assert_eq!(flaky_obs.attempts[0].outcome, Outcome::Timeout);
        assert_eq!(a.summary.flaky, vec!["a:flaky".to_string()]);
        assert_eq!(a.summary.exit_code, exit_code::FINDINGS);
        assert_eq!(a.summary.status, RunStatus::Partial);
        assert_eq!(a.packets.len(), 3);
        assert_eq!(
            a.mismatch_summary.by_kind["expected-allow-observed-deny"],
            1
        );
        assert_eq!(a.mismatch_summary.by_kind["apply-failed"], 0);
        // Every attempt's rusage is summed: 4 baseline children; scenario 1 + 3 + 2 + 3
        // (the policy hole is retried too: it does not match its expectation).
        assert_eq!(a.summary.children["baseline"], 4);
        assert_eq!(a.summary.children["scenario"], 9);
        assert_eq!(a.summary.rusage["scenario"].wall_us, 900);
        let pkt = a
            .packets
            .iter()
            .find(|p| p.kind == MismatchKind::ExpectedAllowObservedDeny)
            .unwrap();
        assert!(pkt.message.contains("EACCES"), "{}", pkt.message);
        assert_eq!(pkt.oracle_reason.as_deref(), Some("fake deny"));
    }

    fn task(profile: &str, probe: &str, id: &str, deps: &[&str]) -> ScenarioRun {
        let mut sc = scenario(profile, probe, Expectation::Allow);
        sc.task = Some(TaskMeta {
            task_id: id.into(),
            depends_on: deps.iter().map(ToString::to_string).collect(),
        });
        sc
    }

    #[test]
    #[allow(clippy::many_single_char_names)] // b(aseline), s(cenario), c(tx), a(ssembled), t(asks)
    fn a_failed_task_skips_its_dependents_transitively_in_every_lane_and_they_never_run() {
        // fetch → build → ship; notes is independent; fetch fails (denied).
        let scs = vec![
            task("p", "build", "build", &["fetch"]),
            task("p", "fetch", "fetch", &[]),
            task("p", "notes", "notes", &[]),
            task("p", "ship", "ship", &["build"]),
        ];
        let mut script = BTreeMap::new();
        for id in ["p:build", "p:fetch", "p:notes", "p:ship"] {
            script.insert((id.to_string(), Lane::Baseline), vec![Outcome::Allow]);
            script.insert((id.to_string(), Lane::Scenario), vec![Outcome::Allow]);
        }
        script.insert(("p:fetch".into(), Lane::Scenario), vec![Outcome::Deny]);
        let fake = Fake {
            script,
            calls: Mutex::new(Vec::new()),
        };
        let (b, s, _) = run_lanes(&fake, &scs, true, true, 0, 4, &mut NullSink).unwrap();
        let calls: BTreeSet<(String, Lane)> = fake
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|(id, l, _)| (id.clone(), *l))
            .collect();
        for skipped in ["p:build", "p:ship"] {
            for lane in [Lane::Baseline, Lane::Scenario] {
                assert!(
                    !calls.contains(&(skipped.to_string(), lane)),
                    "{skipped} ran"
                );
            }
        }
        assert!(calls.contains(&("p:notes".to_string(), Lane::Scenario)));
        assert!(calls.contains(&("p:fetch".to_string(), Lane::Baseline)));
        for i in [0, 3] {
            let o = s[i].as_ref().unwrap();
            assert_eq!(o.result.outcome, Outcome::Skipped);
            assert_eq!(o.skipped_because.as_deref(), Some("fetch"));
            assert!(
                o.result.detail.contains("task `fetch`")
                    && o.result.detail.contains("observed deny"),
                "{}",
                o.result.detail
            );
            assert_eq!(b[i].as_ref().unwrap().result.outcome, Outcome::Skipped);
        }
        let mut c = ctx();
        c.layers = vec![
            vec!["fetch".into(), "notes".into()],
            vec!["build".into()],
            vec!["ship".into()],
        ];
        let oracle = scs.iter().map(|_| None).collect();
        let a = assemble(&c, &scs, b, s, oracle, Vec::new(), &[]);
        let t = a.summary.tasks.clone().unwrap();
        assert_eq!((t.total, t.succeeded, t.failed, t.skipped), (4, 1, 1, 2));
        assert_eq!(t.failed_tasks, vec!["fetch"]);
        assert_eq!(t.skipped_tasks, vec!["build", "ship"]);
        assert_eq!(a.summary.exit_code, exit_code::FINDINGS);
        assert!(
            a.summary
                .exit_reason
                .starts_with("1 of 4 task(s) failed (`fetch`)"),
            "{}",
            a.summary.exit_reason
        );
        // Skipped tasks are not mismatches: only the failed task is.
        assert_eq!(a.packets.len(), 1);
        assert_eq!(a.packets[0].task_id.as_deref(), Some("fetch"));
        let row = a.rows.iter().find(|r| r.scenario_id == "p:ship").unwrap();
        assert_eq!(row.skipped_because.as_deref(), Some("fetch"));
        assert_eq!(row.depends_on, vec!["build"]);
    }

    #[test]
    fn tasks_wait_for_their_dependencies_even_with_free_workers() {
        // Each observation records when it ran relative to the others.
        struct Ordered {
            seq: Mutex<Vec<String>>,
        }
        impl ProbeExecutor for Ordered {
            fn observe(&self, sc: &ScenarioRun, _lane: Lane, _attempt: u32) -> LaneAttempt {
                std::thread::sleep(std::time::Duration::from_millis(20));
                self.seq.lock().unwrap().push(sc.spec.probe_id.to_string());
                let mut a = Attempt::without_child(Outcome::Allow, Stage::Operation, "");
                a.rusage.wall_us = 1;
                LaneAttempt::without_child(a)
            }
        }
        let scs = vec![
            task("p", "a", "a", &[]),
            task("p", "b", "b", &["a"]),
            task("p", "c", "c", &["b"]),
        ];
        let ex = Ordered {
            seq: Mutex::new(Vec::new()),
        };
        let (_, s, _) = run_lanes(&ex, &scs, false, true, 0, 8, &mut NullSink).unwrap();
        assert_eq!(*ex.seq.lock().unwrap(), vec!["a", "b", "c"]);
        assert!(
            s.iter()
                .all(|o| o.as_ref().unwrap().result.outcome == Outcome::Allow)
        );
    }

    #[test]
    fn streamed_list_documents_are_byte_identical_to_sorted_pretty_json() {
        let scs = [
            scenario("a", "x", Expectation::Deny),
            scenario("a", "y", Expectation::Allow),
        ];
        for n in [0, 1, 2] {
            let r = LaneResults {
                schema_version: RESULTS_SCHEMA_VERSION,
                run_id: "r".into(),
                lane: Lane::Scenario,
                observations: scs[..n]
                    .iter()
                    .map(|s| skipped_observation(s, Lane::Scenario, "why\nnot", None))
                    .collect(),
            };
            assert_eq!(
                String::from_utf8(lane_doc(&r).unwrap()).unwrap(),
                String::from_utf8(json::to_sorted_pretty(&r).unwrap()).unwrap()
            );
        }
        let v = crate::model::results::NormalizedEvents {
            schema_version: 1,
            run_id: "r".into(),
            rows: Vec::new(),
        };
        assert_eq!(
            pretty_list_doc(
                &serde_json::json!({"schema_version": 1, "run_id": "r"}),
                "rows",
                &v.rows
            )
            .unwrap(),
            json::to_sorted_pretty(&v).unwrap()
        );
    }

    #[test]
    fn apply_failures_exit_5_and_flaky_alone_exits_1_unless_allowed() {
        let scs = vec![scenario("hard", "x", Expectation::Deny)];
        let mut obs = skipped_observation(&scs[0], Lane::Scenario, "", None);
        obs.result.outcome = Outcome::ApplyFailed;
        let a = assemble(
            &ctx(),
            &scs,
            vec![None],
            vec![Some(obs)],
            vec![None],
            Vec::new(),
            &[],
        );
        assert_eq!(a.summary.exit_code, exit_code::NOT_ENFORCEABLE);
        assert_eq!(a.summary.apply_failed_profiles, vec!["hard".to_string()]);
        assert_eq!(a.rows[0].mismatches, vec![MismatchKind::ApplyFailed]);

        let scs = vec![scenario("p", "f", Expectation::Allow)];
        let mut obs = skipped_observation(&scs[0], Lane::Scenario, "", None);
        obs.result.outcome = Outcome::Allow;
        obs.flaky = true;
        let mut c = ctx();
        let a = assemble(
            &c,
            &scs,
            vec![None],
            vec![Some(obs.clone())],
            vec![None],
            Vec::new(),
            &[],
        );
        assert_eq!(a.summary.exit_code, exit_code::FINDINGS);
        c.fail_on_flaky = false;
        let a = assemble(
            &c,
            &scs,
            vec![None],
            vec![Some(obs)],
            vec![None],
            Vec::new(),
            &[],
        );
        assert_eq!(a.summary.exit_code, exit_code::OK);
        assert_eq!(a.summary.status, RunStatus::Ok);
    }
}
