//! Stage 0, the run's inputs and its seams to governance: [`RunSettings`] (what
//! `cli/run.rs` resolves from the command line; no clap types here), the runner's defaults,
//! the hooks [`Gate`] (consulted after selection, before the out-root lock), [`AuditHook`]
//! (the audit head at seal time, a notification after) and [`EventSink`] (NDJSON events as
//! they happen), and what a run hands back ([`RunOutcome`]).
//!
//! This file owns no step of the run; the pipeline ([`super::pipeline`]) consults these
//! hooks at fixed points.

use std::path::{Path, PathBuf};

use crate::bundle::LockOptions;
use crate::error::ErrorKind;
use crate::load::LoadedPlan;
use crate::model::index::{AuditHead, BundleStatus};
use crate::model::results::{
    ChannelKind, MismatchPacket, NormalizedRow, OracleVerdict, PreflightRecord, RunEvent,
    RunStatus, Summary,
};
use crate::util::digest::Digest;
use crate::{Error, Result};

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
    /// The selected scenarios (each one's row is its `spec`), each run built when the
    /// gate asks for it ([`super::seam::SelectedScenarios::iter`]): a policy matrix's runs
    /// are never all in memory for the gate.
    pub scenarios: &'a super::seam::SelectedScenarios,
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
    /// A warning the user must see now (a stale lock taken over, leftovers of killed runs
    /// removed, processes killed); also recorded in the manifest's `housekeeping`.
    fn warning(&mut self, _text: &str) {}
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
    /// `--rerun-failed BUNDLE`: only the scenarios that mismatched or were flaky there.
    pub rerun_failed: Option<PathBuf>,
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
    /// Sign the sealed bundle with this key (`--sign-with`).
    pub signer: Option<crate::bundle::SealSigner>,
    /// `--kernel-audit`: read the kernel's Landlock audit records of the children.
    pub kernel_audit: crate::model::results::KernelAuditMode,
    /// Hold every observation until the lanes are over and write the results then (the
    /// path a mission's tasks or workers take) even when the run could stream them: for
    /// the tests that compare both paths (`run --gather-results`, built with
    /// `fault-injection`).
    pub gather_results: bool,
    /// Lint codes this run does not refuse the plan for, each with the reason (recorded in
    /// the manifest's `housekeeping`). Only `sandbox` sets one: NX221 (host paths in an exec
    /// probe's argv), whose reason is the baseline lane, which its one-command plan does
    /// not run.
    pub lint_waivers: Vec<(&'static str, String)>,
    /// `--shard K/N`: run only this part of the selection.
    pub shard: Option<super::shard::ShardSpec>,
    /// `--shard-strategy`.
    pub shard_strategy: crate::model::results::ShardStrategy,
    /// `--durations BUNDLE` (the `duration` strategy's prior bundle).
    pub durations: Option<PathBuf>,
    /// `--allow-empty-shard`: a shard that selects nothing exits 0 instead of 6.
    pub allow_empty_shard: bool,
    /// `--expect-plan-digest`: refuse (exit 2) unless the plan's blake3 digest is this one
    /// (an exported CI job made for another version of the plan).
    pub expect_plan_digest: Option<String>,
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
            rerun_failed: None,
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
            signer: None,
            kernel_audit: crate::model::results::KernelAuditMode::Auto,
            gather_results: false,
            lint_waivers: Vec::new(),
            shard: None,
            shard_strategy: crate::model::results::ShardStrategy::Hash,
            durations: None,
            allow_empty_shard: false,
            expect_plan_digest: None,
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

/// What the gate decided, as the rest of the run uses it.
#[derive(Debug, Default)]
pub struct Admission {
    /// Notes for the manifest's `governance`.
    pub notes: Vec<String>,
    /// Files to copy into the bundle.
    pub files: Vec<(String, Vec<u8>)>,
    /// Review flags for `summary.json`.
    pub flags: Vec<String>,
    /// A cap on parallel children.
    pub max_jobs: Option<u32>,
    /// Why the gate would refuse a `--dry` run (a real run is refused with an error).
    pub refused: Vec<String>,
}

impl Admission {
    /// Consult the settings' gate (if any) about the selected scenarios. A refused real
    /// run is an error (exit 4, nothing written); a refused `--dry` run carries the
    /// reasons.
    pub fn consult(
        settings: &RunSettings,
        loaded: &LoadedPlan,
        selected: &super::seam::SelectedScenarios,
    ) -> Result<Self> {
        let mut out = Self::default();
        let Some(g) = &settings.gate else {
            return Ok(out);
        };
        // The gate reads the selection as it is kept: no run is built unless it asks.
        let d = g.check(&GateInput {
            plan: loaded,
            scenarios: selected,
            dry: settings.dry,
        })?;
        out.notes.extend(d.notes.iter().cloned());
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
            out.refused.clone_from(&d.reasons);
        }
        out.files = d.files;
        out.flags = d.flags;
        out.max_jobs = d.max_jobs;
        Ok(out)
    }
}
