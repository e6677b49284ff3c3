//! Stage 1, selection: which scenarios run. Lint the plan (a mission before its tasks are
//! selected, so a broken task graph is reported with every other finding; an experiment
//! after, so one that selects nothing still exits 6), apply `--only-profile` /
//! `--only-scenario` ([`select`]; a filter that leaves a task without a task it depends on
//! is refused), validate each selected probe and compute its effective timeout
//! ([`resolve_scenarios`]), and, for a mission, its shape ([`MissionShape`]: the task
//! layers and whether the baseline lane runs).
//!
//! Input errors are exit 2 (naming the file, the probe and the fix), nothing selected exit
//! 6; nothing is written and no child exists yet.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use super::seam::SelectedScenarios;
use super::seam::{ScenarioRow, ScenarioRun, WorkerRun};
use super::settings::{DEFAULT_KILL_GRACE_MS, DEFAULT_TIMEOUT_MS, RunSettings};
use crate::error::ErrorKind;
use crate::load::mission::{TaskMeta, all_specs, task_specs};
use crate::load::{LoadedPlan, ScenarioSpec};
use crate::model::plan::PlanKind;
use crate::model::registry::{Driver, Fixture, Operation, Probe, TargetKind};
use crate::model::results::{TimeoutSetting, TimeoutSource};
use crate::sandbox::oracle;
use crate::sandbox::vars::Vars;
use crate::{Error, Result};

/// What selection hands to the later stages.
#[derive(Debug)]
pub struct Selection {
    /// The selected scenarios (their rows, as the gate sees them, are `spec`) with their
    /// probes and effective timeouts.
    pub scenarios: SelectedScenarios,
    /// A mission's shape (`None` for experiments).
    pub mission: Option<MissionShape>,
    /// `--shard`: the part of the selection this run is (its `selected` and `scenarios`
    /// are that part only).
    pub shard: Option<crate::model::results::ShardRecord>,
}

/// Lint the plan, select its scenarios under the settings' filters and resolve them.
pub fn selection(loaded: &LoadedPlan, settings: &RunSettings) -> Result<Selection> {
    let lint = lint_report(loaded, settings);
    selection_linted(loaded, settings, lint)
}

/// The plan's lint report as `run` judges it (the settings' waivers applied): the one use
/// of the plan's document (its spans) in a run, so a caller may lint first, release the
/// document ([`LoadedPlan::release_document`]) and then select
/// ([`selection_linted`]).
pub fn lint_report(loaded: &LoadedPlan, settings: &RunSettings) -> Result<crate::lint::Report> {
    let report = crate::lint::check_loaded(loaded, &settings.root)?;
    Ok(waived(report, settings))
}

/// [`lint_report`] as `run` makes it, which judges the report by its findings' positions
/// only: the plan's text is not quoted, and a plan loaded by
/// [`crate::load::load_plan_for_run`] gets its tree back here, after its registry is
/// linted and `between` is called ([`crate::lint::check_loaded_reparsing`]).
pub fn lint_report_for_run(
    loaded: &mut LoadedPlan,
    settings: &RunSettings,
    between: &mut dyn FnMut(),
) -> Result<crate::lint::Report> {
    let report = crate::lint::check_loaded_reparsing(loaded, &settings.root, false, between)?;
    Ok(waived(report, settings))
}

/// The report without the findings the settings waive.
fn waived(mut report: crate::lint::Report, settings: &RunSettings) -> crate::lint::Report {
    report
        .findings
        .retain(|f| !settings.lint_waivers.iter().any(|(c, _)| f.code.id() == *c));
    report
}

/// [`selection`] with the plan's lint report made beforehand ([`lint_report`]); it is
/// judged where [`selection`] lints (a mission before its tasks are selected, an
/// experiment after).
pub fn selection_linted(
    loaded: &LoadedPlan,
    settings: &RunSettings,
    report: Result<crate::lint::Report>,
) -> Result<Selection> {
    let mut report = Some(report);
    let mut lint = || match report.take() {
        Some(r) => r?.refuse_on_errors(&loaded.path, &settings.root),
        None => Ok(()),
    };
    let is_mission = loaded.plan.kind == PlanKind::Mission;
    if is_mission {
        lint()?;
    }
    let unfiltered = settings.rerun_failed.is_none()
        && settings.shard.is_none()
        && settings.only_profiles.is_empty()
        && settings.only_scenarios.is_empty();
    if unfiltered && !is_mission && loaded.plan.mission.is_none() {
        // The whole matrix, straight into rows: no list of every scenario is made (a plan
        // that declares none is told so by `select` below, as before).
        let order = MatrixOrder::of(&loaded.plan);
        let count = order.count();
        if count > 0 {
            lint()?;
            let scenarios = order.resolve(loaded, &known_variables(loaded), count)?;
            return Ok(Selection {
                mission: MissionShape::of(loaded, &scenarios)?,
                scenarios,
                shard: None,
            });
        }
    }
    let rerun = match &settings.rerun_failed {
        Some(b) => Some(failed_in(b, loaded.plan.plan_id.as_str())?),
        None => None,
    };
    let mut selected = select(loaded, &settings.only_profiles, &settings.only_scenarios)?;
    if let Some(failed) = rerun {
        selected.retain(|s| failed.contains(&s.scenario_id));
        if selected.is_empty() {
            return Err(Error::new(
                ErrorKind::NothingSelected,
                "nothing selected: the filters leave none of the failed scenarios",
            )
            .with_path(&loaded.path)
            .with_hint("widen the filters, or drop them to rerun every failed scenario"));
        }
        check_task_closure(loaded, &selected)?;
    }
    if !is_mission {
        lint()?;
    }
    let shard = match settings.shard {
        Some(spec) => Some(cut_shard(loaded, settings, spec, &mut selected)?),
        None => None,
    };
    let scenarios = resolve_selected(loaded, selected, &known_variables(loaded))?;
    let mission = MissionShape::of(loaded, &scenarios)?;
    Ok(Selection {
        scenarios,
        mission,
        shard,
    })
}

/// Each scenario's recorded wall time in the sealed bundle at `path` (scenario and
/// baseline lane, every attempt), with the bundle's run id and index digest.
fn durations_of(path: &Path) -> Result<(BTreeMap<String, u64>, String, String)> {
    let b = crate::bundle::load_bundle(path).map_err(|e| {
        let hint = format!(
            "--durations names a sealed bundle (or out root) of a prior run; {}",
            e.hint()
                .unwrap_or("check it with `nexusmon validate-bundle`")
        );
        e.with_hint(hint)
    })?;
    let r = super::write::read_results(&b)?;
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for obs in r
        .runtime
        .observations
        .iter()
        .chain(&r.baseline.observations)
    {
        if obs.skipped_because.is_some() {
            continue;
        }
        let wall: u64 = obs
            .attempts
            .iter()
            .map(|a| a.rusage.wall_us)
            .sum::<u64>()
            .max(obs.result.rusage.wall_us);
        *out.entry(obs.scenario_id.clone()).or_default() += wall;
    }
    Ok((out, b.run_id.clone(), b.index_blake3.clone()))
}

/// `--shard`: keep this shard's part of `selected` (possibly nothing) and say which.
fn cut_shard(
    loaded: &LoadedPlan,
    settings: &RunSettings,
    spec: super::shard::ShardSpec,
    selected: &mut Vec<ScenarioSpec>,
) -> Result<crate::model::results::ShardRecord> {
    use crate::model::results::ShardStrategy;
    if loaded.plan.kind == PlanKind::Mission {
        return Err(Error::usage(format!(
            "--shard: `{}` is a mission, whose tasks depend on each other and run as one graph",
            loaded.plan.plan_id
        ))
        .with_hint("shard experiments; run a mission whole"));
    }
    let durations = match (settings.shard_strategy, &settings.durations) {
        (ShardStrategy::Duration, Some(b)) => Some(durations_of(b)?),
        (ShardStrategy::Duration, None) => {
            return Err(Error::usage(
                "--shard-strategy duration needs --durations BUNDLE (a prior run's bundle)",
            )
            .with_hint("or use the default `--shard-strategy hash`"));
        }
        (ShardStrategy::Hash, Some(_)) => {
            return Err(Error::usage(
                "--durations is only read with --shard-strategy duration",
            ));
        }
        (ShardStrategy::Hash, None) => None,
    };
    let ids: Vec<&str> = selected.iter().map(|s| s.scenario_id.as_str()).collect();
    let (part, record) = super::shard::cut(
        &ids,
        spec,
        settings.shard_strategy,
        &loaded.digest.blake3,
        durations
            .as_ref()
            .map(|(d, r, i)| (d, r.as_str(), i.as_str())),
    );
    let keep: BTreeSet<String> = part.into_iter().collect();
    selected.retain(|s| keep.contains(&s.scenario_id));
    Ok(record)
}

/// Variables known before anything runs: the builtins, the plan's, and those the
/// tcp-listener fixtures publish.
fn known_variables(loaded: &LoadedPlan) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = ["SCRATCH", "HOME", "RUNNER_PID", "OUTPUT", "WORKER_BIN"]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    known.extend(loaded.plan.variables.keys().map(ToString::to_string));
    for p in loaded.probes.values() {
        for f in &p.fixtures {
            if let Fixture::TcpListener { variable, .. } = f {
                known.insert(variable.to_string());
            }
        }
    }
    known
}

/// What the runner knows about a mission before anything runs.
#[derive(Debug, Clone)]
pub struct MissionShape {
    /// Selected tasks.
    pub tasks: usize,
    /// The selected tasks in dependency order.
    pub layers: Vec<Vec<String>>,
    /// Whether the baseline lane runs.
    pub baseline: bool,
}

impl MissionShape {
    /// The shape of a mission plan (`None` for experiments). A cycle or a dependency on a
    /// missing task is an input error (lint reports it first). A mission's tasks run in the
    /// scenario lane, so `lanes.scenario: false` is refused. The baseline lane runs a task's
    /// work a second time without any policy, so for a mission it runs only when the plan
    /// asks for it explicitly (`"lanes": {"baseline": true}`); the oracle lane follows
    /// `lanes.oracle` as for experiments.
    pub fn of(loaded: &LoadedPlan, scenarios: &SelectedScenarios) -> Result<Option<Self>> {
        let plan = &loaded.plan;
        let Some(m) = plan
            .mission
            .as_ref()
            .filter(|_| plan.kind == PlanKind::Mission)
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
        let selected: BTreeSet<String> = scenarios
            .iter()
            .filter_map(|s| s.task.as_ref().map(|t| t.task_id.clone()))
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
        if baseline && !loaded.workers.is_empty() {
            return Err(Error::input(
                &loaded.path,
                "the mission has worker tasks and `lanes.baseline` is true: the baseline lane would run every worker again without its profile",
            )
            .with_hint("remove `\"baseline\": true` from `lanes`"));
        }
        Ok(Some(Self {
            tasks: selected.len(),
            layers,
            baseline,
        }))
    }

    /// The manifest note describing how the tasks run.
    pub fn note(&self, jobs: u32) -> String {
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
    let mut chosen_profiles: BTreeSet<&str> = BTreeSet::new();
    for p in only_profiles {
        let hits: Vec<&str> = profiles
            .iter()
            .copied()
            .filter(|id| selector_matches(p, id, || profile_tags(loaded, id)))
            .collect();
        if hits.is_empty() {
            let mut e = Error::usage(format!(
                "--only-profile `{p}`: the plan `{}` runs no such profile",
                loaded.plan.plan_id
            ));
            e = match crate::util::suggest::did_you_mean(p, profiles.iter().copied()) {
                Some(s) if !p.starts_with('@') => e.with_hint(format!("did you mean `{s}`?")),
                _ => e.with_hint(format!(
                    "profiles of the plan: {} (an id, a glob such as `net-*`, or `@TAG`)",
                    profiles.join(", ")
                )),
            };
            return Err(e);
        }
        chosen_profiles.extend(hits);
    }
    let mut chosen_scenarios: BTreeSet<String> = BTreeSet::new();
    for sel in only_scenarios {
        let hits: Vec<&ScenarioSpec> = all
            .iter()
            .filter(|s| {
                selector_matches(sel, &s.scenario_id, || {
                    probe_tags(loaded, s.probe_id.as_str())
                })
            })
            .collect();
        if hits.is_empty() {
            let mut e = Error::usage(format!(
                "--only-scenario `{sel}`: no such scenario in plan `{}`",
                loaded.plan.plan_id
            ));
            let ids = all.iter().map(|s| s.scenario_id.as_str());
            e = match crate::util::suggest::did_you_mean(sel, ids) {
                Some(x) if !sel.starts_with('@') => e.with_hint(format!("did you mean `{x}`?")),
                _ => e.with_hint(
                    "scenario ids are `<profile>:<probe>`; globs (`'system-ro:*'`) and `@TAG` (a probe tag) select several",
                ),
            };
            return Err(e);
        }
        chosen_scenarios.extend(hits.iter().map(|s| s.scenario_id.clone()));
    }
    let selected: Vec<ScenarioSpec> = all
        .into_iter()
        .filter(|s| only_profiles.is_empty() || chosen_profiles.contains(s.profile_id.as_str()))
        .filter(|s| only_scenarios.is_empty() || chosen_scenarios.contains(&s.scenario_id))
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

/// Whether the selector `sel` (an id, a glob, or `@TAG`) selects `id`, whose tags
/// `tags` gives.
fn selector_matches(sel: &str, id: &str, tags: impl FnOnce() -> Vec<String>) -> bool {
    if let Some(tag) = sel.strip_prefix('@') {
        tags().iter().any(|t| t == tag)
    } else if crate::util::glob::is_glob(sel) {
        crate::util::glob::matches(sel, id)
    } else {
        sel == id
    }
}

fn profile_tags(loaded: &LoadedPlan, id: &str) -> Vec<String> {
    loaded
        .profiles
        .iter()
        .find(|(k, _)| k.as_str() == id)
        .map(|(_, p)| p.tags.clone())
        .unwrap_or_default()
}

fn probe_tags(loaded: &LoadedPlan, id: &str) -> Vec<String> {
    loaded
        .probes
        .iter()
        .find(|(k, _)| k.as_str() == id)
        .map(|(_, p)| p.tags.clone())
        .unwrap_or_default()
}

/// `--rerun-failed B`: the scenarios that mismatched or were flaky in the sealed bundle
/// `b` (a bundle or an out root), which must be a run of the same plan and verify.
pub fn failed_in(b: &Path, plan_id: &str) -> Result<Vec<String>> {
    let bundle = crate::bundle::load_bundle(b).map_err(|e| {
        e.with_hint(
            "--rerun-failed reads a sealed bundle that verifies (`nexusmon validate-bundle`)",
        )
    })?;
    let summary: crate::model::results::Summary = bundle.read_json("summary.json")?;
    if summary.plan_id != plan_id {
        return Err(Error::input(
            &bundle.dir,
            format!("is a run of plan `{}`, not of `{plan_id}`", summary.plan_id),
        )
        .with_hint("--rerun-failed takes a bundle of the plan being run"));
    }
    let mm: crate::model::results::MismatchSummary = bundle.read_json("mismatch_summary.json")?;
    let mut out: BTreeSet<String> = mm.scenarios.into_iter().collect();
    out.extend(summary.flaky);
    if out.is_empty() {
        return Err(Error::new(
            ErrorKind::NothingSelected,
            format!(
                "nothing selected: run {} has no failed scenario",
                summary.run_id
            ),
        )
        .with_path(&bundle.dir)
        .with_hint("every scenario of that run matched; there is nothing to run again"));
    }
    Ok(out.into_iter().collect())
}

/// A selected task whose dependency is not selected could never run in order: refuse the
/// filter (exit 2) rather than run it without what it depends on.
fn check_task_closure(loaded: &LoadedPlan, selected: &[ScenarioSpec]) -> Result<()> {
    let tasks = task_specs(loaded)?;
    if tasks.is_empty() {
        // Nothing to check (an experiment): no set of every selected id is built.
        return Ok(());
    }
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

/// Capacity (rows) above which [`in_order_shrinking`] gives back the spent part of its list
/// as it goes.
const SHRINK_ROWS_ABOVE: usize = 4096;

/// `rows` in order, by value, the list giving back its memory as it is spent: reversed in
/// place, taken from the end, and cut to its length whenever an eighth of its capacity is
/// spent (for a list of more than [`SHRINK_ROWS_ABOVE`] rows).
fn in_order_shrinking<T>(mut rows: Vec<T>) -> impl Iterator<Item = T> {
    rows.reverse();
    std::iter::from_fn(move || {
        let row = rows.pop()?;
        if rows.capacity() > SHRINK_ROWS_ABOVE && rows.len() < rows.capacity() / 8 * 7 {
            rows.shrink_to_fit();
        }
        Some(row)
    })
}

/// Validate the selected scenarios' probes and compute effective timeouts. Input errors
/// (exit 2) name the registry file, the probe and the fix.
pub fn resolve_scenarios(
    loaded: &LoadedPlan,
    selected: Vec<ScenarioSpec>,
    known_vars: &BTreeSet<String>,
) -> Result<Vec<ScenarioRun>> {
    let probes_file = &loaded.registry.probes_path;
    let tasks: BTreeMap<String, TaskMeta> = task_specs(loaded)?
        .into_iter()
        .map(|(s, m)| (s.scenario_id, m))
        .collect();
    let mut out = Vec::with_capacity(selected.len());
    let mut shared_probes: BTreeMap<crate::model::Id, std::sync::Arc<crate::model::Probe>> =
        BTreeMap::new();
    // Each row moves into its run, and the list of rows left shrinks as the runs are
    // written, so a policy matrix's rows and runs are never both whole in memory: the rows
    // are reversed in place and taken from the end (in their order), and the list is cut
    // to its length each time an eighth of its capacity is spent (the runs' list is
    // allocated whole, but its pages are touched only as runs are written).
    for spec in in_order_shrinking(selected) {
        let task = tasks.get(&spec.scenario_id).cloned();
        if let Some(run) = worker_run(loaded, task.as_ref()) {
            let grace = loaded
                .profiles
                .get(&spec.profile_id)
                .and_then(|p| p.limits.kill_grace_ms)
                .unwrap_or(DEFAULT_KILL_GRACE_MS);
            out.push(ScenarioRun {
                spec,
                probe: std::sync::Arc::new(worker_probe(&run)),
                timeout: TimeoutSetting {
                    ms: run.worker.decl.timeout_ms.max(1),
                    source: TimeoutSource::Worker,
                    kill_grace_ms: grace,
                },
                task: task.map(Box::new),
                worker: Some(Box::new(run)),
            });
            continue;
        }
        let Some(probe) = loaded.probes.get(&spec.probe_id) else {
            return Err(Error::input(
                probes_file,
                format!("probe `{}` is not defined", spec.probe_id),
            ));
        };
        // One copy of a probe for all its scenarios (a policy matrix runs each probe under
        // every profile).
        let probe = if let Some(p) = shared_probes.get(&spec.probe_id) {
            std::sync::Arc::clone(p)
        } else {
            check_probe(probes_file, spec.probe_id.as_str(), probe, known_vars)?;
            let p = std::sync::Arc::new(probe.clone());
            shared_probes.insert(spec.probe_id.clone(), std::sync::Arc::clone(&p));
            p
        };
        let timeout = effective_timeout(
            probe.timeout_ms,
            ProfileLimits::of(loaded, &spec.profile_id),
            loaded.plan.execution.timeout_ms,
        );
        out.push(ScenarioRun {
            spec,
            probe,
            timeout,
            task: task.map(Box::new),
            worker: None,
        });
    }
    Ok(out)
}

/// What a profile's limits give a scenario's timeout: its wall timeout and kill grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProfileLimits {
    wall_timeout_ms: Option<u64>,
    kill_grace_ms: Option<u64>,
}

impl ProfileLimits {
    /// The limits of the plan's profile `id` (none if it is not resolved).
    fn of(loaded: &LoadedPlan, id: &crate::model::Id) -> Self {
        let profile = loaded.profiles.get(id);
        Self {
            wall_timeout_ms: profile.and_then(|p| p.limits.wall_timeout_ms),
            kill_grace_ms: profile.and_then(|p| p.limits.kill_grace_ms),
        }
    }
}

/// A probe's effective timeout: the probe's, else its profile's, else the plan's, else the
/// default; the kill grace is the profile's or the default.
fn effective_timeout(
    probe_ms: Option<u64>,
    profile: ProfileLimits,
    plan_ms: Option<u64>,
) -> TimeoutSetting {
    let (ms, source) = if let Some(t) = probe_ms {
        (t, TimeoutSource::Probe)
    } else if let Some(t) = profile.wall_timeout_ms {
        (t, TimeoutSource::Profile)
    } else if let Some(t) = plan_ms {
        (t, TimeoutSource::Plan)
    } else {
        (DEFAULT_TIMEOUT_MS, TimeoutSource::Default)
    };
    TimeoutSetting {
        ms: ms.max(1),
        source,
        kill_grace_ms: profile.kill_grace_ms.unwrap_or(DEFAULT_KILL_GRACE_MS),
    }
}

/// [`resolve_scenarios`], keeping a plan without mission tasks as rows
/// ([`SelectedScenarios`]): the same runs, in the same order, with the same errors.
pub fn resolve_selected(
    loaded: &LoadedPlan,
    selected: Vec<ScenarioSpec>,
    known_vars: &BTreeSet<String>,
) -> Result<SelectedScenarios> {
    if !task_specs(loaded)?.is_empty() {
        return resolve_scenarios(loaded, selected, known_vars).map(SelectedScenarios::from);
    }
    let mut rows = RowBuilder::new(loaded, known_vars, selected.len());
    // The rows are given back as they are read (see `resolve_scenarios`).
    for spec in in_order_shrinking(selected) {
        rows.push(
            &spec.profile_id,
            &spec.probe_id,
            spec.expected,
            spec.control,
        )?;
    }
    Ok(rows.finish())
}

/// The whole matrix of a plan without mission tasks, resolved straight into rows: what
/// [`resolve_selected`] gives for every scenario the plan declares ([`all_specs`], which
/// `select` lists when no filter applies), without listing them (a policy matrix's list of
/// [`ScenarioSpec`]s is ~130 bytes per scenario, its rows 12): the same rows in the same
/// order (sorted by scenario id `<profile>:<probe>`, each once), with the same errors.
/// `None` if the plan has mission tasks or declares no scenario (`select` then says why).
pub fn resolve_matrix(
    loaded: &LoadedPlan,
    known_vars: &BTreeSet<String>,
) -> Result<Option<SelectedScenarios>> {
    if loaded.plan.mission.is_some() {
        return Ok(None);
    }
    let order = MatrixOrder::of(&loaded.plan);
    match order.count() {
        0 => Ok(None),
        count => order.resolve(loaded, known_vars, count).map(Some),
    }
}

/// A plan's matrix in scenario-id order: its profiles (each once) sorted by `<profile>:`,
/// and the controls (each once) sorted. Ids never contain `:`, so sorting the ids
/// `<profile>:<probe>` sorts by `<profile>:` first and then by probe id.
struct MatrixOrder<'a> {
    plan: &'a crate::model::plan::Plan,
    profiles: Vec<&'a crate::model::Id>,
    controls: Vec<&'a crate::model::Id>,
}

impl<'a> MatrixOrder<'a> {
    fn of(plan: &'a crate::model::plan::Plan) -> Self {
        let joined = |id: &crate::model::Id| {
            let tail: &[u8] = b":";
            id.as_str()
                .as_bytes()
                .iter()
                .chain(tail)
                .copied()
                .collect::<Vec<u8>>()
        };
        let mut profiles: Vec<&crate::model::Id> = plan.profiles.iter().collect();
        profiles.sort_by_cached_key(|p| joined(p));
        profiles.dedup();
        let mut controls: Vec<&crate::model::Id> = plan.controls.iter().collect();
        controls.sort();
        controls.dedup();
        Self {
            plan,
            profiles,
            controls,
        }
    }

    /// How many scenarios.
    fn count(&self) -> usize {
        self.profiles
            .iter()
            .map(|p| match self.plan.scenarios.get(*p) {
                Some(row) => {
                    row.len()
                        + self
                            .controls
                            .iter()
                            .filter(|c| !row.contains_key(**c))
                            .count()
                }
                None => self.controls.len(),
            })
            .sum()
    }

    /// The `count` scenarios resolved into rows, in order.
    fn resolve(
        &self,
        loaded: &LoadedPlan,
        known_vars: &BTreeSet<String>,
        count: usize,
    ) -> Result<SelectedScenarios> {
        let mut rows = RowBuilder::new(loaded, known_vars, count);
        self.each(|profile, probe, expected, control| {
            rows.push(profile, probe, expected, control)
        })?;
        Ok(rows.finish())
    }

    /// Call `f` with each scenario in order (profile, probe, expectation, control), as
    /// [`crate::model::plan::Plan::scenario_specs`] lists them.
    fn each(
        &self,
        mut f: impl FnMut(
            &crate::model::Id,
            &crate::model::Id,
            crate::model::plan::Expectation,
            bool,
        ) -> Result<()>,
    ) -> Result<()> {
        use crate::model::plan::Expectation;
        let empty = BTreeMap::new();
        for &profile in &self.profiles {
            let row = self.plan.scenarios.get(profile).unwrap_or(&empty);
            let mut declared = row.iter().peekable();
            let mut controls = self
                .controls
                .iter()
                .copied()
                .filter(|c| !row.contains_key(*c))
                .peekable();
            loop {
                // Both are sorted and disjoint: take the smaller.
                let take_declared = match (declared.peek(), controls.peek()) {
                    (Some((d, _)), Some(c)) => *d < *c,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                if take_declared {
                    if let Some((probe, expected)) = declared.next() {
                        let control = self.controls.binary_search(&probe).is_ok();
                        f(profile, probe, *expected, control)?;
                    }
                } else if let Some(probe) = controls.next() {
                    f(profile, probe, Expectation::Allow, true)?;
                }
            }
        }
        Ok(())
    }
}

/// Builds [`SelectedScenarios`] rows, checking each probe when it first appears and
/// computing each profile's fallback timeout once.
struct RowBuilder<'a> {
    loaded: &'a LoadedPlan,
    known_vars: &'a BTreeSet<String>,
    rows: Vec<ScenarioRow>,
    profiles: Vec<(crate::model::Id, TimeoutSetting)>,
    probes: Vec<(crate::model::Id, std::sync::Arc<Probe>)>,
    profile_at: BTreeMap<crate::model::Id, u32>,
    probe_at: BTreeMap<crate::model::Id, u32>,
}

impl<'a> RowBuilder<'a> {
    fn new(loaded: &'a LoadedPlan, known_vars: &'a BTreeSet<String>, capacity: usize) -> Self {
        Self {
            loaded,
            known_vars,
            rows: Vec::with_capacity(capacity),
            profiles: Vec::new(),
            probes: Vec::new(),
            profile_at: BTreeMap::new(),
            probe_at: BTreeMap::new(),
        }
    }

    fn index(&self, n: usize) -> Result<u32> {
        u32::try_from(n)
            .map_err(|_| Error::input(&self.loaded.path, "more than 2^32 profiles or probes"))
    }

    /// Add the scenario `profile_id:probe_id`; an undefined or invalid probe is an input
    /// error naming the registry file.
    fn push(
        &mut self,
        profile_id: &crate::model::Id,
        probe_id: &crate::model::Id,
        expected: crate::model::plan::Expectation,
        control: bool,
    ) -> Result<()> {
        let loaded = self.loaded;
        let probes_file = &loaded.registry.probes_path;
        let probe = if let Some(&i) = self.probe_at.get(probe_id) {
            i
        } else {
            let Some(p) = loaded.probes.get(probe_id) else {
                return Err(Error::input(
                    probes_file,
                    format!("probe `{probe_id}` is not defined"),
                ));
            };
            check_probe(probes_file, probe_id.as_str(), p, self.known_vars)?;
            let i = self.index(self.probes.len())?;
            self.probes
                .push((probe_id.clone(), std::sync::Arc::new(p.clone())));
            self.probe_at.insert(probe_id.clone(), i);
            i
        };
        let profile = if let Some(&i) = self.profile_at.get(profile_id) {
            i
        } else {
            let i = self.index(self.profiles.len())?;
            // The timeout of the profile's probes that have none of their own.
            let fallback = effective_timeout(
                None,
                ProfileLimits::of(loaded, profile_id),
                loaded.plan.execution.timeout_ms,
            );
            self.profiles.push((profile_id.clone(), fallback));
            self.profile_at.insert(profile_id.clone(), i);
            i
        };
        self.rows.push(ScenarioRow {
            profile,
            probe,
            expected,
            control,
        });
        Ok(())
    }

    fn finish(self) -> SelectedScenarios {
        SelectedScenarios::from_rows(self.rows, self.profiles, self.probes)
    }
}

/// The worker and inputs of a worker task (`None` for anything else).
fn worker_run(loaded: &LoadedPlan, task: Option<&TaskMeta>) -> Option<WorkerRun> {
    let task = task?;
    let name = task.worker.as_deref()?;
    let t = loaded
        .plan
        .mission
        .as_ref()?
        .tasks
        .iter()
        .find(|(id, _)| id.as_str() == task.task_id)?
        .1;
    let worker = loaded.workers.iter().find(|(k, _)| k.as_str() == name)?.1;
    Some(WorkerRun {
        worker: worker.clone(),
        inputs: t.inputs.clone(),
    })
}

/// The exec probe that stands for a worker in the lanes and the oracle: operation `exec`
/// of the checked copy of its executable (`${WORKER_BIN}/<file>`), with the rest of its command.
pub fn worker_probe(run: &WorkerRun) -> Probe {
    let decl = &run.worker.decl;
    let file = std::path::Path::new(&run.worker.executable_rel)
        .file_name()
        .map_or_else(
            || "worker".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
    let mut argv = vec![format!("${{WORKER_BIN}}/{file}")];
    argv.extend(decl.command.iter().skip(1).cloned());
    Probe {
        operation: Operation::Exec,
        target: None,
        destination: None,
        driver: Driver::Exec,
        argv: Some(argv),
        allow_exit_codes: Some(vec![0]),
        deny_exit_codes: None,
        timeout_ms: Some(decl.timeout_ms),
        fixtures: Vec::new(),
        reads: Vec::new(),
        notes: decl.description.clone(),
        tags: vec!["worker".into()],
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_taken_while_the_list_shrinks_are_the_rows_in_order() {
        // Sizes around the shrinking bound and seeded ones; each row distinct.
        use crate::util::testrng::Rng;
        let mut r = Rng(16);
        let mut sizes = vec![0, 1, 2, 4095, 4096, 4097, 4600, 9000, 70_001];
        sizes.extend((0..6).map(|_| r.below(30_000usize)));
        for n in sizes {
            let rows: Vec<String> = (0..n)
                .map(|i| format!("r{i}-{}", r.below(1000u32)))
                .collect();
            let got: Vec<String> = in_order_shrinking(rows.clone()).collect();
            assert_eq!(got, rows, "{n} rows");
        }
    }

    /// A project in `dir` with a seeded plan: profiles with and without limits, probes
    /// with and without their own timeout (one, sometimes, with no target: an input error
    /// at resolution), a matrix over some of each, controls, and a plan timeout or none.
    fn seeded_project(dir: &Path, r: &mut crate::util::testrng::Rng) -> std::path::PathBuf {
        use serde_json::json;
        // Ids one of which is a prefix of another (`p` and `p1`, `p1` and `p1-a`): sorted
        // by scenario id `<profile>:<probe>`, `p1-a:…` comes before `p1:…`, and `p1:…`
        // before `p:…`, unlike the ids themselves.
        const PROFILE_IDS: [&str; 8] = ["p1", "p", "p1-a", "p10", "p1.b", "p1_c", "q", "p2"];
        let n_profiles = 1 + r.below(PROFILE_IDS.len());
        let n_probes = 1 + r.below(12usize);
        let broken = r.chance(15).then(|| r.below(n_probes));
        let mut probes = serde_json::Map::new();
        for i in 0..n_probes {
            let mut p = json!({"operation": "file-read", "target": format!("/usr/lib/f{i}")});
            if r.chance(40) {
                p["timeout_ms"] = json!(r.below(5000u64));
            }
            if broken == Some(i) {
                p.as_object_mut().unwrap().remove("target");
            }
            probes.insert(format!("q{i:02}"), p);
        }
        let mut profiles = serde_json::Map::new();
        for id in PROFILE_IDS.iter().take(n_profiles) {
            let mut p = json!({"landlock": {"abi": 7, "fs": {"handle": "all", "allow": [
                {"path": "/usr", "access": ["read", "exec"]}]}}});
            let mut limits = serde_json::Map::new();
            if r.chance(50) {
                limits.insert("wall_timeout_ms".into(), json!(1 + r.below(9000u64)));
            }
            if r.chance(50) {
                limits.insert("kill_grace_ms".into(), json!(r.below(900u64)));
            }
            if !limits.is_empty() {
                p["limits"] = serde_json::Value::Object(limits);
            }
            profiles.insert((*id).to_string(), p);
        }
        let profile_ids: Vec<String> = profiles.keys().cloned().collect();
        let probe_ids: Vec<String> = probes.keys().cloned().collect();
        let mut matrix = serde_json::Map::new();
        for prof in r.subset(&profile_ids, 80) {
            let row: serde_json::Map<String, serde_json::Value> = r
                .subset(&probe_ids, 60)
                .into_iter()
                .map(|q| (q, json!(if r.chance(50) { "allow" } else { "deny" })))
                .collect();
            matrix.insert(prof, serde_json::Value::Object(row));
        }
        let mut controls = r.subset(&probe_ids, 15);
        // A control listed twice, a profile listed twice, a profile with a matrix row left
        // out of `profiles` (its row is not run).
        if r.chance(25) && !controls.is_empty() {
            controls.push(r.pick(&controls).clone());
        }
        let mut listed = profile_ids.clone();
        if r.chance(25) {
            listed.push(r.pick(&profile_ids).clone());
        }
        if r.chance(20) && listed.len() > 1 {
            listed.remove(r.below(listed.len()));
        }
        let mut plan = json!({
            "schema_version": 1, "plan_id": "gen", "kind": "experiment",
            "registry_id": "t", "profiles": listed, "scenarios": matrix,
            "controls": controls,
        });
        if r.chance(50) {
            plan["execution"] = json!({"timeout_ms": 1 + r.below(7000u64)});
        }
        let reg = dir.join("registry/t");
        std::fs::create_dir_all(&reg).unwrap();
        std::fs::create_dir_all(dir.join("plans/gen")).unwrap();
        let write = |path: std::path::PathBuf, v: serde_json::Value| {
            std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
        };
        write(
            reg.join("probes.json"),
            json!({"schema_version": 1, "registry_id": "t", "probes": probes}),
        );
        write(
            reg.join("profiles.json"),
            json!({"schema_version": 1, "registry_id": "t", "profiles": profiles}),
        );
        let plan_path = dir.join("plans/gen/plan.json");
        write(plan_path.clone(), plan);
        plan_path
    }

    #[test]
    fn runs_built_from_rows_are_the_runs_resolved_whole() {
        // Seeded plans, each with seeded selections (any subset of the plan's scenarios in
        // order, as the filters, a shard or --rerun-failed leave them): the rows give the
        // same runs (every field), in the same order, or the same error.
        use crate::exec::seam::ScenarioSource;
        use crate::util::testrng::Rng;
        let mut r = Rng(1616);
        let (mut compared, mut errors, mut whole) = (0usize, 0usize, 0usize);
        for _ in 0..60 {
            let dir = tempfile::tempdir().unwrap();
            let path = seeded_project(dir.path(), &mut r);
            let loaded = match crate::load::load_plan(&path) {
                Ok(l) => l,
                Err(e) => panic!("{}", e.full_message()),
            };
            let known = known_variables(&loaded);
            let all = all_specs(&loaded).unwrap();
            // The whole matrix resolved straight into rows (a run without filters): the
            // runs `select` lists and `resolve_scenarios` resolves, or the same error.
            match (
                resolve_scenarios(&loaded, all.clone(), &known),
                resolve_matrix(&loaded, &known),
            ) {
                (Ok(eager), Ok(Some(direct))) => {
                    let want: Vec<String> = eager.iter().map(|s| format!("{s:?}")).collect();
                    let got: Vec<String> = direct.iter().map(|s| format!("{s:?}")).collect();
                    assert_eq!(got, want);
                    let ids: std::collections::BTreeSet<&str> =
                        eager.iter().map(|s| s.spec.probe_id.as_str()).collect();
                    assert_eq!(direct.probe_ids(), ids);
                    let ids: std::collections::BTreeSet<&str> =
                        eager.iter().map(|s| s.spec.profile_id.as_str()).collect();
                    assert_eq!(direct.profile_ids(), ids);
                    whole += 1;
                }
                (Ok(eager), Ok(None)) => assert!(eager.is_empty(), "rows of a matrix missing"),
                (Err(a), Err(b)) => {
                    assert_eq!(a.full_message(), b.full_message());
                    assert_eq!(a.hint(), b.hint());
                }
                (a, b) => panic!(
                    "eager {:?} but matrix rows {:?}",
                    a.map(|v| v.len()),
                    b.map(|v| v.map(|s| s.len()))
                ),
            }
            for _ in 0..4 {
                let percent = 1 + r.below(100u64);
                let selected = r.subset(&all, percent);
                let eager = resolve_scenarios(&loaded, selected.clone(), &known);
                let lazy = resolve_selected(&loaded, selected.clone(), &known);
                match (eager, lazy) {
                    (Ok(eager), Ok(lazy)) => {
                        assert_eq!(lazy.len(), selected.len());
                        assert_eq!(lazy.is_empty(), selected.is_empty());
                        assert!(lazy.as_runs().is_none(), "an experiment is kept as rows");
                        assert!(!ScenarioSource::has_tasks(&lazy));
                        let want: Vec<String> = eager.iter().map(|s| format!("{s:?}")).collect();
                        let got: Vec<String> = lazy.iter().map(|s| format!("{s:?}")).collect();
                        assert_eq!(got, want);
                        let whole: Vec<String> =
                            lazy.to_vec().iter().map(|s| format!("{s:?}")).collect();
                        assert_eq!(whole, want);
                        for (i, w) in want.iter().enumerate() {
                            assert_eq!(&format!("{:?}", ScenarioSource::run(&lazy, i)), w);
                        }
                        // The probe ids without building a run, as the runs name them.
                        let ids: std::collections::BTreeSet<&str> =
                            eager.iter().map(|s| s.spec.probe_id.as_str()).collect();
                        assert_eq!(lazy.probe_ids(), ids);
                        // And the profile ids (a selection may leave a profile unused).
                        let ids: std::collections::BTreeSet<&str> =
                            eager.iter().map(|s| s.spec.profile_id.as_str()).collect();
                        assert_eq!(lazy.profile_ids(), ids);
                        compared += want.len();
                    }
                    (Err(a), Err(b)) => {
                        assert_eq!(a.full_message(), b.full_message());
                        assert_eq!(a.hint(), b.hint());
                        errors += 1;
                    }
                    (a, b) => panic!(
                        "eager {:?} but rows {:?}",
                        a.map(|v| v.len()),
                        b.map(|v| v.len())
                    ),
                }
            }
        }
        // The seeds reach both outcomes, with many runs compared.
        assert!(
            compared > 500 && errors > 3 && whole > 20,
            "{compared} runs, {errors} errors, {whole} whole matrices"
        );
    }
}
