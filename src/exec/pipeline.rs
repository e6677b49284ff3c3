//! The run pipeline, which only orchestrates the stages: load the plan
//! → select scenarios ([`super::select`]) → governance gate ([`Admission`]) → the run's
//! environment and compiled profiles ([`super::setup`]) → oracle lane ([`super::oracle`])
//! → take the out-root lock and stage the bundle → preflight every profile
//! ([`super::preflight`]) → run the baseline and scenario lanes ([`super::scheduler`] on
//! the [`super::lanes::LiveExecutor`]) → classify, attribute, compare
//! ([`super::assemble`]) → write every result file ([`super::write`]) → seal → audit
//! notification.
//!
//! [`execute`] is the library entry point; `cli/run.rs` resolves command-line arguments
//! into [`RunSettings`] and renders [`RunEvent`]s and the [`RunOutcome`]. Errors before the
//! bundle is begun write nothing; an error after it seals the bundle as `failed`, naming
//! the [`FailureStage`] the run was in. A real run catches SIGINT, SIGTERM and SIGHUP
//! ([`super::interrupt`]) from its start: the first stops it (no further child, running
//! children killed), and whatever was observed is assembled, written and sealed as
//! `interrupted` (exit 128 + the signal); a signal that arrives once every result is
//! written does not undo a completed run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::assemble::{self, AssembleCtx};
use super::lanes::{BaselineRuntime, LiveExecutor, ProfileRuntime, RunCgroups, WorkerReady};
use super::oracle::{self, OracleOutput};
use super::preflight;
use super::scheduler::{LaneObservations, LaneSet, run_lanes, run_lanes_stream};
use super::seam::{ScenarioRun, ScenarioSource};
use super::select::{self, SelectedScenarios, Selection};
use super::settings::{
    Admission, DEFAULT_OUTPUT_CAP, EventSink, RunOutcome, RunSettings, SealReport,
};
use super::setup::{RunSetup, runner_max_rss_kib};
use super::witness;
use super::write::{self, BundleLogs, RunDescription};
use super::zygote::Zygote;
use crate::bundle::lines::ReorderWindow;
use crate::bundle::{BeginOptions, RESULT_FILES, SealInfo, Sealed, StagedBundle};
use crate::error::ErrorKind;
use crate::load::{LoadedPlan, load_plan_for_run};
use crate::model::index::{AuditHead, BundleStatus};
use crate::model::plan::Lanes;
use crate::model::results::{
    KERNEL_DENIALS_FILE, KernelAuditStart, Lane, PreflightRecord, RunEvent, RunStatus,
};
use crate::sandbox::audit::AuditSession;
use crate::{Error, Result, exit_code};

/// Scenarios started beyond the lowest unfinished one when results stream to disk: the
/// reorder window's bound (its buffer holds at most one more).
const REORDER_WINDOW: usize = 256;
/// Scenarios written per kernel-audit checkpoint when results stream (one marker's
/// round trip through the audit stream per batch; the batch is held until then).
const AUDIT_BATCH: usize = 256;
/// Rows of a streamed run kept for the reports made while writing it (`summary.md`, the
/// terminal table): every row up to this many scenarios, beyond it only notable rows.
const KEEP_ROWS: usize = 1000;

/// The lanes' live executor (its workers started, its profiles' runtimes set) and the
/// run's cgroups.
type LiveParts<'e, 'c> = (LiveExecutor<'e>, &'c RunCgroups);

/// The stage a run was in when it failed: `failure_stage` in the sealed bundle's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureStage {
    /// Telling the gate the run started.
    Governance,
    /// Preflight, and the documents written before any lane.
    Preflight,
    /// The executing lanes.
    Execute,
    /// Assembling and writing the results.
    Write,
}

impl FailureStage {
    /// The word recorded in the bundle (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Governance => "governance",
            Self::Preflight => "preflight",
            Self::Execute => "execute",
            Self::Write => "write",
        }
    }
}

/// Run a plan. Errors before the bundle is begun write nothing (exit 2, 4, 6, or 3 if the
/// out root is locked); an error after it seals the bundle as `failed` (exit 3).
#[allow(clippy::needless_pass_by_value)] // the settings belong to the run (API shape)
pub fn execute(settings: RunSettings, sink: &mut dyn EventSink) -> Result<RunOutcome> {
    let started = Instant::now();
    let _signals = (!settings.dry).then(super::interrupt::Guard::install);
    // The kernel-audit start's first steps (`auto`) wait on the kernel while the plan loads.
    let audit_probe = witness::EarlyProbe::begin(settings.kernel_audit, settings.dry);
    // The lint schemas compile while the plan loads.
    crate::lint::schema::compile_in_background();
    // An experiment's tree is dropped once its typed plan is read (the registry's load, the
    // digest and the registry's lint are done without it); lint parses the text again.
    let loaded = load_plan_for_run(&settings.plan_path)?;
    if let Some(want) = &settings.expect_plan_digest
        && *want != loaded.digest.blake3
    {
        return Err(Error::input(
            &loaded.path,
            format!(
                "the plan's digest is {}, not the {want} this command line expects (--expect-plan-digest): the plan or a registry entry it resolves changed since the command line was exported",
                loaded.digest.blake3
            ),
        )
        .with_hint("export the CI job again (`nexusmon export …`), or drop --expect-plan-digest"));
    }
    // Lint first: an experiment's document (its spans, a tree of every matrix entry) is
    // needed for nothing after it, so it is released before the scenarios are listed.
    let mut loaded = loaded;
    // Nothing after load reads the registry's own entries (the plan's resolved copies are
    // what runs; lint reads the registry's files again).
    loaded.release_registry_entries();
    // `run` reads the lint report's positions only (`refuse_on_errors`), never its
    // excerpts: the plan's text (a policy matrix's whole file) goes before the plan's
    // lint runs (once its tree is parsed again from it).
    // Before the plan's tree is parsed again, the pages freed since load (the digest's
    // canonical text, the registry lint's documents) go back to the kernel: what the tree
    // cannot reuse no longer counts in the peak.
    let lint = select::lint_report_for_run(&mut loaded, &settings, &mut return_free_memory);
    if loaded.plan.kind == crate::model::plan::PlanKind::Experiment {
        loaded.release_document();
        return_free_memory();
    }
    let sel = select::selection_linted(&loaded, &settings, lint)?;
    // Listing the scenarios sorts and moves every row once (scratch space freed since).
    return_free_memory();
    let admission = Admission::consult(&settings, &loaded, &sel.scenarios)?;
    let mut setup = RunSetup::prepare(&settings, &loaded, &sel.scenarios, admission.max_jobs)?;
    let mut governance = admission.notes.clone();
    if let Some(m) = &sel.mission {
        governance.push(m.note(setup.jobs));
    }
    let baseline_on = sel
        .mission
        .as_ref()
        .map_or(loaded.plan.lanes.baseline, |m| m.baseline);
    let lanes = lanes_that_run(loaded.plan.lanes, baseline_on);
    sink.event(&RunEvent::RunStart {
        v: crate::model::results::EVENTS_VERSION,
        run_id: (!settings.dry).then(|| setup.run_id.clone()),
        plan_id: loaded.plan.plan_id.to_string(),
        plan_digest: loaded.digest.blake3.clone(),
        channel: settings.channel,
        scenarios: sel.scenarios.len() as u64,
        lanes: lanes.clone(),
        jobs: setup.jobs,
        dry: settings.dry,
    });
    if settings.dry {
        let runs = sel.scenarios.to_vec();
        let oracle_out = oracle::oracle_lane(&setup, &loaded, &runs);
        return Ok(dry_run(
            &sel,
            &runs,
            &oracle_out,
            admission.refused,
            setup.jobs,
            sink,
        ));
    }

    // The kernel's audit records: `require` fails here, before anything is written.
    let (audit_start, mut audit) = witness::start(
        settings.kernel_audit,
        setup.facts.landlock_abi,
        audit_probe.take(),
    )?;
    // Results stream to disk as scenarios finish (the oracle lane then runs per scenario
    // as it is written) unless something needs every observation at the end: a mission's
    // tasks or workers (artifacts.json), or kernel audit records that cannot be matched
    // as scenarios are written (the session's checkpoint marker cannot be written or
    // does not come back).
    let streams = !settings.gather_results
        && loaded.workers.is_empty()
        && !sel.scenarios.has_tasks()
        && audit.as_mut().is_none_or(witness::can_checkpoint);
    // The gathering path needs every run at once (built here unless they are a list
    // already); the streaming path builds each one when it is reached.
    let built: Vec<ScenarioRun> = match (streams, sel.scenarios.as_runs()) {
        (false, None) => sel.scenarios.to_vec(),
        _ => Vec::new(),
    };
    let runs: &[ScenarioRun] = if streams {
        &[]
    } else {
        sel.scenarios.as_runs().unwrap_or(&built)
    };
    let oracle_out = if streams {
        Vec::new()
    } else {
        oracle::oracle_lane(&setup, &loaded, runs)
    };

    // Stage the bundle: from here on, failures seal it as `failed`.
    let bundle = begin_bundle(&settings, &loaded, &setup.run_id)?;
    if audit.is_some() {
        bundle.expect(KERNEL_DENIALS_FILE);
    }
    let notes = bundle.begin_notes();
    setup.housekeeping.extend(notes);
    for (code, why) in &settings.lint_waivers {
        setup
            .housekeeping
            .push(format!("lint {code} was not enforced for this run: {why}"));
    }
    for w in &setup.housekeeping {
        sink.warning(w);
    }
    // The zygote outlives the lanes' executor: retired when the lanes are over, it is
    // waited for here, once the bundle is sealed (see `LiveExecutor::retire_namespaces`).
    let zygote_kept: std::sync::Mutex<Option<Arc<Zygote>>> = std::sync::Mutex::new(None);
    // The matrix is needed again only for the manifest: the pipeline owns it and drops it
    // once that is written (nothing after it reads the plan's `scenarios`).
    let matrix = std::mem::take(&mut loaded.plan.scenarios);
    let pipeline = Pipeline {
        matrix,
        settings: &settings,
        loaded: &loaded,
        setup: &setup,
        scenarios: &sel.scenarios,
        runs,
        oracle_out: &oracle_out,
        lanes: &lanes,
        governance: &governance,
        gate_files: &admission.files,
        gate_flags: &admission.flags,
        baseline_on,
        layers: layers(&sel),
        started,
        started_at: crate::util::time::now_rfc3339(),
        audit_start,
        audit,
        streams,
        shard: sel.shard.as_ref(),
        zygote_kept: &zygote_kept,
    };
    let mut stage = FailureStage::Preflight;
    let result = pipeline.run(&bundle, sink, &mut stage);
    setup.stop_listeners();
    // The lanes' worker threads are gone and their arenas hold what they freed: returned
    // to the kernel before the seal hashes and writes the bundle's index.
    return_free_memory();
    let sealer = Seal {
        settings: &settings,
        loaded: &loaded,
        run_id: &setup.run_id,
        audit_head: match &settings.audit {
            Some(a) => a.head()?,
            None => None,
        },
        host: setup.facts.clone(),
    };
    let outcome = match result {
        Ok(out) => sealer.completed(bundle, out, sink),
        Err(e) => Err(sealer.failed(bundle, e, stage, sink)),
    };
    drop(zygote_kept);
    outcome
}

/// No lane runs (the preflight stopped the run, or failed): the workers started for the
/// lanes end with their fork servers and shared namespaces, none of which started a
/// probe's child, and the run's cgroups go.
fn stand_down(executor: &mut LiveExecutor<'_>, cgroups: &RunCgroups, run_id: &str) {
    executor.finish_servers();
    executor.retire_namespaces();
    executor.end_workers();
    cgroups.remove(run_id);
}

/// Give the pages the allocator holds free back to the kernel (glibc's `malloc_trim`; a
/// no-op elsewhere). Called once the plan's document is released: its tree (a policy
/// matrix's every entry, in small allocations) is free then, and the scenario list built
/// next is one large allocation that could not reuse those pages, so without this both
/// would count in the run's peak resident set.
fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's arenas to the
    // kernel; no live allocation is moved or touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The lanes the plan runs, in order (the baseline as the mission shape decides).
fn lanes_that_run(plan_lanes: Lanes, baseline_on: bool) -> Vec<Lane> {
    [
        (baseline_on, Lane::Baseline),
        (plan_lanes.scenario, Lane::Scenario),
        (plan_lanes.oracle, Lane::Oracle),
    ]
    .into_iter()
    .filter_map(|(on, l)| on.then_some(l))
    .collect()
}

/// A mission's selected tasks in dependency order (empty for experiments).
fn layers(sel: &Selection) -> Vec<Vec<String>> {
    sel.mission
        .as_ref()
        .map(|m| m.layers.clone())
        .unwrap_or_default()
}

/// `--dry`: the oracle's verdicts, what would run, and nothing executed.
fn dry_run(
    sel: &Selection,
    scenarios: &[ScenarioRun],
    oracle_out: &[OracleOutput],
    refused: Vec<String>,
    jobs: u32,
    sink: &mut dyn EventSink,
) -> RunOutcome {
    let verdicts = oracle_out
        .iter()
        .flatten()
        .map(|(v, _)| v.clone())
        .collect();
    for (sc, o) in scenarios.iter().zip(oracle_out) {
        if let Some((v, _)) = o {
            sink.event(&oracle::oracle_event(sc, v));
        }
    }
    let what = match &sel.mission {
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
    RunOutcome {
        run_id: None,
        status: RunStatus::Dry,
        exit_code: dry_exit,
        exit_reason: reason,
        bundle: None,
        index_blake3: None,
        rows: assemble::dry_rows(scenarios, oracle_out),
        mismatches: Vec::new(),
        preflight: Vec::new(),
        summary: None,
        verdicts,
        refused,
        layers: layers(sel),
        jobs,
    }
}

/// Take the out-root lock and stage the bundle, expecting every result file.
fn begin_bundle(settings: &RunSettings, loaded: &LoadedPlan, run_id: &str) -> Result<StagedBundle> {
    let bundle = StagedBundle::begin_for_plan(
        &BeginOptions {
            out_root: settings.out_root.clone(),
            run_id: Some(run_id.to_string()),
            lock: settings.lock,
        },
        Some(loaded.plan.plan_id.as_str()),
    )?;
    for f in RESULT_FILES {
        bundle.expect(f);
    }
    if !loaded.workers.is_empty() {
        bundle.expect(crate::model::worker::ARTIFACTS_FILE);
    }
    Ok(bundle)
}

/// The stages that run inside a staged bundle.
struct Pipeline<'a> {
    /// The plan's scenario matrix, until the manifest is written (then empty).
    matrix: crate::model::plan::Matrix,
    settings: &'a RunSettings,
    loaded: &'a LoadedPlan,
    setup: &'a RunSetup,
    /// The selected scenarios (the streaming path builds each run as it is reached).
    scenarios: &'a SelectedScenarios,
    /// Every run, for the gathering path (empty when results stream).
    runs: &'a [ScenarioRun],
    oracle_out: &'a [OracleOutput],
    lanes: &'a [Lane],
    governance: &'a [String],
    gate_files: &'a [(String, Vec<u8>)],
    gate_flags: &'a [String],
    baseline_on: bool,
    layers: Vec<Vec<String>>,
    started: Instant,
    started_at: String,
    /// The kernel audit state when the run began (the manifest's `kernel_audit`).
    audit_start: KernelAuditStart,
    /// The subscription to the kernel's Landlock records, if any.
    audit: Option<AuditSession>,
    /// Results stream to disk ([`Pipeline::run_streaming`]; `oracle_out` is then empty
    /// and the oracle runs per scenario as it is written).
    streams: bool,
    /// `--shard`: the part of the selection this run is.
    shard: Option<&'a crate::model::results::ShardRecord>,
    /// A handle of the zygote kept beyond the executor (dropped, so waited for, after the
    /// seal).
    zygote_kept: &'a std::sync::Mutex<Option<Arc<Zygote>>>,
}

impl<'a> Pipeline<'a> {
    /// Governance start → preflight → lanes → assemble and write. `stage` follows along,
    /// for the seal of a failed run.
    fn run(
        mut self,
        bundle: &StagedBundle,
        sink: &mut dyn EventSink,
        stage: &mut FailureStage,
    ) -> Result<RunOutcome> {
        let run_id = self.setup.run_id.as_str();
        *stage = FailureStage::Governance;
        if let Some(g) = &self.settings.gate {
            g.started(run_id)?;
        }
        *stage = FailureStage::Preflight;
        let helper_exe = self.helper_exe()?;
        for (rel, bytes) in self.gate_files {
            bundle.write_bytes(rel, bytes)?;
        }
        let cgroups = RunCgroups::create(
            self.setup.facts.pids_cgroup.as_deref(),
            run_id,
            self.setup.scratch.parent(),
        );
        // No child may read the runner's memory or environment through /proc while they
        // run (restored when the run is over).
        let _non_dumpable = crate::sandbox::privilege::NonDumpable::new();
        // Children get PID namespaces from one zygote, started before any worker thread
        // joins a cgroup and stopped when the run is over.
        let zygote: std::result::Result<Arc<Zygote>, String> =
            if self.setup.compiled.values().any(|c| c.child.pid_namespace) {
                Zygote::start(&helper_exe).map(Arc::new)
            } else {
                Err("no profile gives its children PID namespaces here".into())
            };
        if let (Ok(z), Ok(mut kept)) = (&zygote, self.zygote_kept.lock()) {
            *kept = Some(Arc::clone(z));
        }
        let logs = BundleLogs(bundle);
        let mut executor = self.executor(
            helper_exe.clone(),
            std::collections::BTreeMap::new(),
            &cgroups,
            zygote,
            &logs,
        );
        // The lanes' worker threads start now and get ready for their first probe (cgroup,
        // fork server, shared PID namespace) while this thread runs the preflight; no
        // probe's child starts before the preflight is over and allows the lanes.
        executor.start_workers(self.worker_ready());
        let pre = executor.while_workers_get_ready(|| {
            preflight::preflight_all(
                self.setup,
                self.loaded,
                self.scenarios,
                &helper_exe,
                cgroups.dir(),
                executor.zygote.as_ref(),
                sink,
            )
        });
        let (preflight, runtimes) = match pre {
            Ok(p) => p,
            Err(e) => {
                stand_down(&mut executor, &cgroups, run_id);
                return Err(e);
            }
        };
        executor.profiles = runtimes;
        if let Err(e) = write::write_run_docs(bundle, &self.description(), &preflight) {
            stand_down(&mut executor, &cgroups, run_id);
            return Err(e);
        }
        drop(std::mem::take(&mut self.matrix));
        // The manifest's JSON tree (every resolved probe and profile) and the matrix are
        // free again.
        return_free_memory();
        if super::interrupt::pending().is_none()
            && let Some(reason) = preflight::required_failure(&preflight)
        {
            // No lane runs: the ready workers' servers and namespaces end unused.
            stand_down(&mut executor, &cgroups, run_id);
            return Ok(self.no_lane_ran(reason, preflight));
        }

        // Oracle events first (nothing executes for them).
        for (sc, o) in self.runs.iter().zip(self.oracle_out) {
            if let Some((v, _)) = o {
                sink.event(&oracle::oracle_event(sc, v));
            }
        }

        *stage = FailureStage::Execute;
        if self.streams {
            let audit = self.audit.take();
            return self.run_streaming(
                bundle,
                (executor, &cgroups),
                audit,
                &preflight,
                sink,
                stage,
            );
        }
        let mut observed = self.execute_lanes(executor, &cgroups, sink)?;
        let audit_report = witness::finish(
            self.settings.kernel_audit,
            &self.audit_start,
            self.audit.take(),
            self.runs,
            &mut observed.1,
        );
        if let Some(lines) = &audit_report.1 {
            witness::write_lines(bundle, lines)?;
        }

        *stage = FailureStage::Write;
        if !self.loaded.workers.is_empty() {
            let artifacts = super::worker::artifacts_file(
                run_id,
                self.loaded.plan.plan_id.as_str(),
                &self.loaded.digest,
                &self
                    .loaded
                    .inputs_digest
                    .clone()
                    .unwrap_or_else(|| crate::util::digest::Digest::both_of(b"{}")),
                &observed.1,
            );
            bundle.write_json(crate::model::worker::ARTIFACTS_FILE, &artifacts)?;
        }
        let mut a = self.assemble(observed, &preflight);
        a.summary.kernel_audit = Some(audit_report.0);
        self.mark_empty_shard(&mut a.summary);
        let governance = self
            .gate_files
            .iter()
            .find(|(rel, _)| rel == "governance/gate.json")
            .and_then(|(_, b)| serde_json::from_slice::<serde_json::Value>(b).ok())
            .map(|v| crate::model::view::GovernanceView::from_gate_json(&v));
        write::write_results(bundle, &a, &preflight, governance.as_ref())?;
        Ok(RunOutcome {
            run_id: Some(run_id.to_string()),
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
            layers: self.layers,
            jobs: self.setup.jobs,
        })
    }

    /// A `--shard` run whose part is empty says so in its summary, and exits 6 unless
    /// `--allow-empty-shard` (both write paths).
    fn mark_empty_shard(&self, summary: &mut crate::model::results::Summary) {
        if let Some(sh) = self.shard.filter(|s| s.part_count == 0) {
            let what = format!(
                "shard {}/{} ({}) selects none of the {} selected scenario(s)",
                sh.k,
                sh.n,
                sh.strategy.as_str(),
                sh.selected_count
            );
            if self.settings.allow_empty_shard {
                summary.exit_reason = format!("{what}; allowed by --allow-empty-shard");
            } else {
                summary.exit_code = exit_code::NOTHING_SELECTED;
                summary.exit_reason =
                    format!("{what} (exit 6; --allow-empty-shard makes it exit 0)");
            }
        }
    }

    /// The lanes with their results streamed: each scenario, once its lanes finished, is
    /// put in scenario order through a bounded [`ReorderWindow`], assembled with running
    /// counts and written as its lines of every result file; nothing holds every
    /// observation. The bytes are those [`write::write_results`] writes for the same
    /// observations. With kernel audit, scenarios leave the window in batches of
    /// [`AUDIT_BATCH`]: one checkpoint per batch ([`witness::AuditStream`]) gives their
    /// children the kernel's denials before they are written.
    fn run_streaming(
        &self,
        bundle: &StagedBundle,
        live: LiveParts<'_, '_>,
        audit: Option<AuditSession>,
        preflight: &[PreflightRecord],
        sink: &mut dyn EventSink,
        stage: &mut FailureStage,
    ) -> Result<RunOutcome> {
        let (mut live_executor, cgroups) = live;
        let run_id = self.setup.run_id.as_str();
        let plan = &self.loaded.plan;
        let mut witness_stream = match audit {
            Some(s) => Some(witness::AuditStream::begin(bundle, s)?),
            None => None,
        };
        let starts = witness::LaneStarts::default();
        let tracked = witness_stream.as_ref().map(|_| witness::Tracked {
            inner: &live_executor,
            starts: &starts,
        });
        let executor: &dyn super::seam::ProbeExecutor = match &tracked {
            Some(t) => t,
            None => &live_executor,
        };
        let mut stream = write::ResultStream::begin(bundle)?;
        let mut asm = assemble::Assembler::new(preflight, KEEP_ROWS);
        let mut window = ReorderWindow::new(REORDER_WINDOW + 1);
        let lanes = LaneSet {
            baseline: self.baseline_on,
            scenario: plan.lanes.scenario,
            retries: plan.execution.retries,
            jobs: self.setup.jobs as usize,
            window: Some(REORDER_WINDOW),
        };
        let scenarios = self.scenarios;
        let mut last = oracle::LastPrediction::default();
        let mut release = |si: usize,
                           b: Option<crate::model::results::Observation>,
                           s: Option<crate::model::results::Observation>,
                           sink: &mut dyn EventSink| {
            let sc = scenarios.get(si);
            // The last prediction, reused when the next one predicts the same (a plan's
            // exec probes of one program under one profile).
            let computed = if oracle::oracle_one_into(self.setup, self.loaded, &sc, &mut last) {
                last.get_mut()
            } else {
                None
            };
            let (o, w) = match computed {
                Some((v, w)) => {
                    // The order `path_witnesses.jsonl` promises (and the gathering path's
                    // `assemble::split_oracle` gives): role, then requested path.
                    w.sort();
                    w.dedup();
                    sink.event(&oracle::oracle_event(&sc, v));
                    (Some(&*v), w.as_slice())
                }
                None => (None, &[][..]),
            };
            let row = asm.scenario(&sc, b.as_ref(), s.as_ref(), o);
            stream.scenario(&write::ScenarioLines {
                baseline: b.as_ref(),
                scenario: s.as_ref(),
                oracle: o,
                witnesses: w,
                row: &row,
            })
        };
        // With kernel audit: scenarios out of the window, in order, waiting for the
        // checkpoint that gives them their denials (at most AUDIT_BATCH).
        let mut batch: Vec<witness::Finished> = Vec::new();
        let unattributed =
            run_lanes_stream(executor, scenarios, &lanes, sink, &mut |si, b, s, sink| {
                window.push(si, (b, s), &mut |i, (b, s)| match witness_stream.as_mut() {
                    None => release(i, b, s, &mut *sink),
                    Some(w) => {
                        batch.push((i, b, s));
                        if batch.len() < AUDIT_BATCH {
                            return Ok(());
                        }
                        w.checkpoint(scenarios, &mut batch, &starts)?;
                        batch
                            .drain(..)
                            .try_for_each(|(i, b, s)| release(i, b, s, &mut *sink))
                    }
                })
            })?;
        let audit = match witness_stream {
            None => {
                witness::finish(
                    self.settings.kernel_audit,
                    &self.audit_start,
                    None,
                    &[],
                    &mut [],
                )
                .0
            }
            Some(mut w) => {
                if !batch.is_empty() {
                    w.checkpoint(scenarios, &mut batch, &starts)?;
                    batch
                        .drain(..)
                        .try_for_each(|(i, b, s)| release(i, b, s, &mut *sink))?;
                }
                w.finish(self.settings.kernel_audit, &self.audit_start)?
            }
        };
        // Every child ended and every scenario was predicted and written. The end of the
        // results (the files flushed, `shared_values.json` written: the largest file of a
        // builtin run) is made on a thread of its own while the lanes' machinery ends and
        // the summary is made here; nothing of it is committed before the log check below
        // allows the run to write (dropped uncommitted, it leaves nothing in the bundle).
        let stream = std::sync::Mutex::new(Some(stream));
        let take = || {
            stream
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
        };
        std::thread::scope(|s| {
            let finishing = std::thread::Builder::new()
                .name("results-end".into())
                .spawn_scoped(s, || take().map(write::ResultStream::prepare_finish));
            // Their directories go, and the PID namespaces end, while the rest is written
            // and sealed.
            live_executor.retire_namespaces();
            self.setup.scratch.lanes_over();
            live_executor.end_workers();
            cgroups.remove(run_id);
            // The lanes' threads freed what they held (in their own arenas): returned to the
            // kernel before the results are finished and the summary written.
            return_free_memory();
            if let Ok(mut slot) = live_executor.log_error.lock()
                && let Some(e) = slot.take()
            {
                return Err(e);
            }
            *stage = FailureStage::Write;
            let mut done = asm.finish(&self.assemble_ctx(), preflight);
            done.summary.unattributed_leaks = unattributed;
            done.summary.governance_flags = self.gate_flags.to_vec();
            done.summary.kernel_audit = Some(audit);
            self.mark_empty_shard(&mut done.summary);
            let governance = self.governance_view();
            let end = write::render_run_end(
                &write::RunEnd {
                    rows: &done.rows,
                    packets: &done.packets,
                    mismatch_summary: &done.mismatch_summary,
                    summary: &done.summary,
                },
                preflight,
                governance.as_ref(),
            );
            let finished = match finishing.ok().map(std::thread::ScopedJoinHandle::join) {
                Some(Ok(Some(f))) => f,
                Some(Err(_)) => return Err(Error::runner("finishing the result files panicked")),
                // No thread (resources): the same work, here.
                Some(Ok(None)) | None => take()
                    .map(write::ResultStream::prepare_finish)
                    .ok_or_else(|| Error::runner("the result files were finished twice"))?,
            };
            // The result files first, then the run's end: the order (and the first error)
            // of `ResultStream::finish` then `write_run_end`.
            finished.commit()?;
            end?.write(bundle)?;
            Ok(done)
        })
        .map(|done| RunOutcome {
            run_id: Some(run_id.to_string()),
            status: done.summary.status,
            exit_code: done.summary.exit_code,
            exit_reason: done.summary.exit_reason.clone(),
            bundle: None,
            index_blake3: None,
            rows: done.rows,
            mismatches: done.packets,
            preflight: preflight.to_vec(),
            summary: Some(done.summary),
            verdicts: Vec::new(),
            refused: Vec::new(),
            layers: self.layers.clone(),
            jobs: self.setup.jobs,
        })
    }

    /// The governance record of the bundle, for `summary.md`.
    fn governance_view(&self) -> Option<crate::model::view::GovernanceView> {
        self.gate_files
            .iter()
            .find(|(rel, _)| rel == "governance/gate.json")
            .and_then(|(_, b)| serde_json::from_slice::<serde_json::Value>(b).ok())
            .map(|v| crate::model::view::GovernanceView::from_gate_json(&v))
    }

    /// The helper executable: the settings', else this executable.
    fn helper_exe(&self) -> Result<PathBuf> {
        match &self.settings.helper_exe {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe()
                .map_err(|e| Error::io("locate the nexusmon executable", "/proc/self/exe", e)),
        }
    }

    fn description(&self) -> RunDescription<'_> {
        RunDescription {
            settings: self.settings,
            loaded: self.loaded,
            setup: self.setup,
            scenarios: self.scenarios,
            matrix: &self.matrix,
            lanes: self.lanes,
            governance: self.governance,
            started_at: &self.started_at,
            kernel_audit: &self.audit_start,
            shard: self.shard,
        }
    }

    /// The plan's required preflight profile failed: the run is `failed` (exit 5).
    fn no_lane_ran(&self, reason: String, preflight: Vec<PreflightRecord>) -> RunOutcome {
        RunOutcome {
            run_id: Some(self.setup.run_id.clone()),
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
            jobs: self.setup.jobs,
        }
    }

    /// The baseline and scenario lanes on the live executor; a failure to write a log
    /// fails the run.
    fn execute_lanes(
        &self,
        mut executor: LiveExecutor<'_>,
        cgroups: &RunCgroups,
        sink: &mut dyn EventSink,
    ) -> Result<LaneObservations> {
        let plan = &self.loaded.plan;
        let observed = run_lanes(
            &executor,
            self.runs,
            self.baseline_on,
            plan.lanes.scenario,
            plan.execution.retries,
            self.setup.jobs as usize,
            sink,
        )?;
        executor.retire_namespaces();
        executor.end_workers();
        cgroups.remove(&self.setup.run_id);
        if let Ok(mut slot) = executor.log_error.lock()
            && let Some(e) = slot.take()
        {
            return Err(e);
        }
        Ok(observed)
    }

    /// The lanes' worker threads to start before the preflight, and what each gets ready:
    /// as many as the scheduler would start (the jobs, at most one per lane job), a fork
    /// server each when a builtin probe is selected, keeping the bounding set every
    /// compiled profile's children allow (what the servers keep when started on a first
    /// probe: the runtimes are these profiles).
    fn worker_ready(&self) -> WorkerReady {
        let lanes = usize::from(self.baseline_on) + usize::from(self.loaded.plan.lanes.scenario);
        let lane_jobs = self.scenarios.len().saturating_mul(lanes);
        WorkerReady {
            threads: (self.setup.jobs as usize).max(1).min(lane_jobs),
            fork_server: self
                .scenarios
                .any_probe(|p| p.driver == crate::model::registry::Driver::Builtin),
            server_keep: crate::sandbox::privilege::bounding_kept_by(
                self.setup.compiled.values().map(|c| &c.child),
            ),
        }
    }

    /// The live executor of the baseline and scenario lanes, logging into `logs`.
    fn executor<'e>(
        &self,
        helper_exe: PathBuf,
        runtimes: std::collections::BTreeMap<String, ProfileRuntime>,
        cgroups: &RunCgroups,
        zygote: std::result::Result<Arc<Zygote>, String>,
        logs: &'e BundleLogs<'e>,
    ) -> LiveExecutor<'e>
    where
        'a: 'e,
    {
        let setup: &'a RunSetup = self.setup;
        let plan = &self.loaded.plan;
        let output_cap = plan
            .execution
            .output_cap_bytes
            .unwrap_or(DEFAULT_OUTPUT_CAP);
        let mut executor = LiveExecutor::new(
            helper_exe,
            self.setup.clean,
            &setup.scratch,
            self.setup.base_vars.clone(),
            self.setup.runner_env.clone(),
            runtimes,
            BaselineRuntime::new(),
            Some(logs),
            cgroups.tracking(),
            output_cap,
        );
        executor.run_id.clone_from(&self.setup.run_id);
        executor.plan_id = plan.plan_id.to_string();
        executor.zygote = zygote;
        executor
    }

    /// The run-level facts assembly needs, as of now.
    fn assemble_ctx(&self) -> AssembleCtx {
        let plan = &self.loaded.plan;
        AssembleCtx {
            run_id: self.setup.run_id.clone(),
            plan_id: plan.plan_id.to_string(),
            plan_digest: self.loaded.digest.clone(),
            channel: self.settings.channel,
            fail_on_flaky: plan.execution.fail_on_flaky.unwrap_or(true),
            wall_us: u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            runner_max_rss_kib: runner_max_rss_kib(),
            layers: self.layers.clone(),
            max_parallel: self.setup.jobs,
            interrupted: super::interrupt::pending(),
        }
    }

    /// Classify, attribute, compare (pure), with the run's gate flags and leaks.
    fn assemble(
        &self,
        (baseline_obs, scenario_obs, unattributed): LaneObservations,
        preflight: &[PreflightRecord],
    ) -> assemble::Assembled {
        let (oracle, witnesses) = assemble::split_oracle(self.oracle_out);
        let ctx = self.assemble_ctx();
        let mut a = assemble::assemble(
            &ctx,
            self.runs,
            baseline_obs,
            scenario_obs,
            oracle,
            witnesses,
            preflight,
        );
        a.summary.unattributed_leaks = unattributed;
        a.summary.governance_flags = self.gate_flags.to_vec();
        a
    }
}

/// Sealing the bundle and telling the audit log.
struct Seal<'a> {
    settings: &'a RunSettings,
    loaded: &'a LoadedPlan,
    run_id: &'a str,
    audit_head: Option<AuditHead>,
    host: crate::model::host::HostFacts,
}

impl Seal<'_> {
    /// The pipeline finished: seal `complete` (or `failed` at preflight, exit 5), notify
    /// the audit hook, send `run-end`.
    fn completed(
        self,
        bundle: StagedBundle,
        mut out: RunOutcome,
        sink: &mut dyn EventSink,
    ) -> Result<RunOutcome> {
        let failed_preflight = out.status == RunStatus::Failed;
        let interrupted = out.status == RunStatus::Interrupted;
        let sealed = bundle.seal(SealInfo {
            status: if failed_preflight {
                BundleStatus::Failed
            } else if interrupted {
                BundleStatus::Interrupted
            } else {
                BundleStatus::Complete
            },
            failure_stage: failed_preflight.then(|| FailureStage::Preflight.as_str().to_string()),
            error: (failed_preflight || interrupted).then(|| out.exit_reason.clone()),
            plan_digest: Some(self.loaded.digest.clone()),
            audit_head: self.audit_head.clone(),
            signer: self.signer(),
        })?;
        if let Some(a) = &self.settings.audit {
            a.sealed(&self.report(&sealed, out.status, &out.mismatches))?;
        }
        out.bundle = Some(sealed.dir.clone());
        out.index_blake3 = Some(sealed.index_blake3.clone());
        sink.event(&RunEvent::RunEnd {
            v: crate::model::results::EVENTS_VERSION,
            run_id: Some(self.run_id.to_string()),
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

    /// The pipeline failed in `stage`: seal `failed`, notify the audit hook (best effort),
    /// send `run-end`; the error becomes a runner error (exit 3) naming the bundle.
    fn failed(
        self,
        bundle: StagedBundle,
        e: Error,
        stage: FailureStage,
        sink: &mut dyn EventSink,
    ) -> Error {
        let sealed = bundle.seal(SealInfo {
            status: BundleStatus::Failed,
            failure_stage: Some(stage.as_str().to_string()),
            error: Some(e.full_message()),
            plan_digest: Some(self.loaded.digest.clone()),
            audit_head: self.audit_head.clone(),
            signer: self.signer(),
        });
        if let (Some(a), Ok(s)) = (&self.settings.audit, &sealed) {
            // The run already failed; a failure to record it adds nothing to report.
            let _ = a.sealed(&self.report(s, RunStatus::Failed, &[]));
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
            run_id: Some(self.run_id.to_string()),
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
        // A refusal at the start (a limited-use approval another run used up since the
        // gate checked it) stays a refusal (exit 4); everything else is a runner failure.
        let kind = if stage == FailureStage::Governance && e.kind() == ErrorKind::Refused {
            ErrorKind::Refused
        } else {
            ErrorKind::Runner
        };
        e.with_kind(kind).with_hint(hint)
    }

    /// The settings' signer, recording this host's facts in the Statement.
    fn signer(&self) -> Option<crate::bundle::SealSigner> {
        self.settings
            .signer
            .clone()
            .map(|s| s.with_host(self.host.clone()))
    }

    fn report<'s>(
        &'s self,
        sealed: &'s Sealed,
        run_status: RunStatus,
        mismatches: &'s [crate::model::results::MismatchPacket],
    ) -> SealReport<'s> {
        SealReport {
            plan_id: self.loaded.plan.plan_id.as_str(),
            plan_digest: &self.loaded.digest,
            run_id: &sealed.run_id,
            bundle_status: sealed.index.status,
            run_status,
            bundle_dir: &sealed.dir,
            index_blake3: &sealed.index_blake3,
            anchored_head: sealed.index.audit_head.as_ref(),
            mismatches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_stages_are_recorded_as_the_words_bundles_always_had() {
        for (s, word) in [
            (FailureStage::Governance, "governance"),
            (FailureStage::Preflight, "preflight"),
            (FailureStage::Execute, "execute"),
            (FailureStage::Write, "write"),
        ] {
            assert_eq!(s.as_str(), word);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(word.into())
            );
        }
    }
}
