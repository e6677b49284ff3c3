//! The executor seam: what one attempt of one lane is ([`ScenarioRun`] in, [`LaneAttempt`]
//! out), the trait that performs it ([`ProbeExecutor`]: [`super::lanes::LiveExecutor`]
//! spawns real processes, the unit tests use a fake), and the retry rule around it
//! ([`observe_lane`]: the scenario lane is retried while its outcome does not match the
//! expectation, [`matches_expectation`]).
//!
//! This file depends on no other file of `exec` (only on `model` and `load`), so every
//! stage above it, and every fake, can name the seam without pulling in the others.

use crate::load::ScenarioSpec;
use crate::load::mission::TaskMeta;
use crate::model::plan::Expectation;
use crate::model::registry::{Driver, Probe};
use crate::model::results::{
    Attempt, Lane, Observation, Outcome, Stage, TimeoutSetting, TimeoutSource,
};

/// True if a scenario-lane outcome satisfies the expectation.
pub fn matches_expectation(expected: Expectation, observed: Outcome) -> bool {
    matches!(
        (expected, observed),
        (Expectation::Allow, Outcome::Allow) | (Expectation::Deny, Outcome::Deny)
    )
}

/// A selected scenario with its probe and effective timeout.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    /// The scenario.
    pub spec: ScenarioSpec,
    /// The probe as written.
    pub probe: std::sync::Arc<Probe>,
    /// The effective timeout and its source.
    pub timeout: TimeoutSetting,
    /// The mission task this scenario is (missions only).
    pub task: Option<Box<TaskMeta>>,
    /// The worker a worker task runs, with the task's inputs (`probe` is then the exec
    /// probe that stands for it: `argv` the worker's command, operation `exec`).
    pub worker: Option<Box<WorkerRun>>,
}

/// The selected scenarios by index, in scenario order: a list of [`ScenarioRun`]s, or
/// [`SelectedScenarios`], which builds each one when it is asked for (a
/// policy matrix's runs are never all in memory).
pub trait ScenarioSource: Sync {
    /// How many scenarios.
    fn count(&self) -> usize;
    /// Scenario `i` (`i < count()`).
    fn run(&self, i: usize) -> std::borrow::Cow<'_, ScenarioRun>;
    /// Whether any scenario is a mission task.
    fn has_tasks(&self) -> bool;
}

impl ScenarioSource for [ScenarioRun] {
    fn count(&self) -> usize {
        self.len()
    }
    fn run(&self, i: usize) -> std::borrow::Cow<'_, ScenarioRun> {
        std::borrow::Cow::Borrowed(&self[i])
    }
    fn has_tasks(&self) -> bool {
        self.iter().any(|s| s.task.is_some())
    }
}

/// The selected scenarios, in scenario order. A plan without mission tasks keeps one
/// small row per scenario (its profile and probe as indexes into two short tables, its
/// expectation) and builds each [`ScenarioRun`] when it is asked for ([`Self::get`]): the
/// runs of a policy matrix (~150 bytes each with their ids) are never all in memory. A
/// mission's scenarios are kept as resolved runs. `select::resolve_selected` makes them.
#[derive(Debug)]
pub struct SelectedScenarios(Listed);

/// The ids of `table`'s entries that `picks` (indices into it) name at least once, sorted.
fn used_ids<T>(
    table: &[(crate::model::Id, T)],
    picks: impl Iterator<Item = u32>,
) -> std::collections::BTreeSet<&str> {
    let mut used = vec![false; table.len()];
    for i in picks {
        used[i as usize] = true;
    }
    table
        .iter()
        .zip(used)
        .filter_map(|((id, _), u)| u.then_some(id.as_str()))
        .collect()
}

#[derive(Debug)]
enum Listed {
    /// Resolved runs (a mission's).
    Runs(Vec<ScenarioRun>),
    /// Rows built into runs on demand.
    Rows {
        rows: Vec<ScenarioRow>,
        /// Profile id, and the timeout of its probes that have none of their own, by the
        /// rows' `profile`.
        profiles: Vec<(crate::model::Id, TimeoutSetting)>,
        /// Probe id and the one shared copy of the probe, by the rows' `probe`.
        probes: Vec<(crate::model::Id, std::sync::Arc<Probe>)>,
    },
}

/// One selected scenario of a plan without tasks.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioRow {
    /// Index of its profile.
    pub profile: u32,
    /// Index of its probe.
    pub probe: u32,
    /// The expected decision.
    pub expected: Expectation,
    /// True if it comes from the plan's `controls`.
    pub control: bool,
}

impl SelectedScenarios {
    /// Rows whose `profile` and `probe` index `profiles` (id, and the timeout of a probe
    /// without its own) and `probes` (id, probe).
    pub fn from_rows(
        rows: Vec<ScenarioRow>,
        profiles: Vec<(crate::model::Id, TimeoutSetting)>,
        probes: Vec<(crate::model::Id, std::sync::Arc<Probe>)>,
    ) -> Self {
        Self(Listed::Rows {
            rows,
            profiles,
            probes,
        })
    }

    /// How many scenarios are selected.
    pub fn len(&self) -> usize {
        match &self.0 {
            Listed::Runs(v) => v.len(),
            Listed::Rows { rows, .. } => rows.len(),
        }
    }

    /// True if none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Scenario `i` (`i < len()`): borrowed from a list, or built from its row.
    pub fn get(&self, i: usize) -> std::borrow::Cow<'_, ScenarioRun> {
        match &self.0 {
            Listed::Runs(v) => std::borrow::Cow::Borrowed(&v[i]),
            Listed::Rows {
                rows,
                profiles,
                probes,
            } => {
                let r = rows[i];
                let (profile_id, fallback) = &profiles[r.profile as usize];
                let (probe_id, probe) = &probes[r.probe as usize];
                std::borrow::Cow::Owned(ScenarioRun {
                    spec: ScenarioSpec {
                        scenario_id: format!("{profile_id}:{probe_id}"),
                        profile_id: profile_id.clone(),
                        probe_id: probe_id.clone(),
                        expected: r.expected,
                        control: r.control,
                    },
                    probe: std::sync::Arc::clone(probe),
                    // The probe's own timeout wins; the kill grace is the profile's.
                    timeout: match probe.timeout_ms {
                        Some(ms) => TimeoutSetting {
                            ms: ms.max(1),
                            source: TimeoutSource::Probe,
                            kill_grace_ms: fallback.kill_grace_ms,
                        },
                        None => *fallback,
                    },
                    task: None,
                    worker: None,
                })
            }
        }
    }

    /// The distinct probe ids of the selected scenarios, sorted, without building a run.
    pub fn probe_ids(&self) -> std::collections::BTreeSet<&str> {
        match &self.0 {
            Listed::Runs(v) => v.iter().map(|s| s.spec.probe_id.as_str()).collect(),
            Listed::Rows { rows, probes, .. } => used_ids(probes, rows.iter().map(|r| r.probe)),
        }
    }

    /// The distinct profile ids of the selected scenarios, sorted, without building a run
    /// (nor a string per scenario).
    pub fn profile_ids(&self) -> std::collections::BTreeSet<&str> {
        match &self.0 {
            Listed::Runs(v) => v.iter().map(|s| s.spec.profile_id.as_str()).collect(),
            Listed::Rows { rows, profiles, .. } => {
                used_ids(profiles, rows.iter().map(|r| r.profile))
            }
        }
    }

    /// True if any selected scenario's probe satisfies `f` (each distinct probe asked
    /// once; no run built).
    pub fn any_probe(&self, f: impl Fn(&Probe) -> bool) -> bool {
        match &self.0 {
            Listed::Runs(v) => v.iter().any(|s| f(&s.probe)),
            Listed::Rows { rows, probes, .. } => {
                let wanted: Vec<bool> = probes.iter().map(|(_, p)| f(p)).collect();
                rows.iter().any(|r| wanted[r.probe as usize])
            }
        }
    }

    /// Every scenario in order, one at a time.
    pub fn iter(&self) -> impl Iterator<Item = std::borrow::Cow<'_, ScenarioRun>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Every scenario, built (for the stages that need them all at once: `--dry`, a gate,
    /// the gathering write path).
    pub fn to_vec(&self) -> Vec<ScenarioRun> {
        match &self.0 {
            Listed::Runs(v) => v.clone(),
            Listed::Rows { .. } => self.iter().map(std::borrow::Cow::into_owned).collect(),
        }
    }

    /// The resolved runs if they are kept as a list (a mission's), without building any.
    pub fn as_runs(&self) -> Option<&[ScenarioRun]> {
        match &self.0 {
            Listed::Runs(v) => Some(v),
            Listed::Rows { .. } => None,
        }
    }
}

impl From<Vec<ScenarioRun>> for SelectedScenarios {
    fn from(runs: Vec<ScenarioRun>) -> Self {
        Self(Listed::Runs(runs))
    }
}

impl ScenarioSource for SelectedScenarios {
    fn count(&self) -> usize {
        self.len()
    }
    fn run(&self, i: usize) -> std::borrow::Cow<'_, ScenarioRun> {
        self.get(i)
    }
    fn has_tasks(&self) -> bool {
        self.as_runs()
            .is_some_and(|v| v.iter().any(|s| s.task.is_some()))
    }
}

/// A worker task's worker and inputs.
#[derive(Debug, Clone)]
pub struct WorkerRun {
    /// The worker, with its executable's digest at load time.
    pub worker: crate::load::worker::ResolvedWorker,
    /// The task's inputs as the plan writes them.
    pub inputs: std::collections::BTreeMap<crate::model::Id, serde_json::Value>,
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
/// ([`LiveExecutor`](super::lanes::LiveExecutor)); tests use a fake.
pub trait ProbeExecutor: Sync {
    /// Observe `scenario` in `lane` (attempt numbers start at 1).
    fn observe(&self, scenario: &ScenarioRun, lane: Lane, attempt: u32) -> LaneAttempt;

    /// Every lane job has ended: release what the executor kept for them (the live
    /// executor's fork servers), before the final leak sweep.
    fn finish(&self) {}

    /// The threads the lane jobs run on, when the executor started them itself (the live
    /// executor's, made ready for their first probe during the preflight); `None`: the
    /// scheduler starts its own.
    fn threads(&self) -> Option<&rayon::ThreadPool> {
        None
    }
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
            || matches_expectation(sc.spec.expected, o)
            || o == Outcome::ApplyFailed;
        attempts.push(la);
        if done {
            break;
        }
    }
    // The last attempt is the result; every attempt is listed only when there were
    // several (then the last is also cloned into the list, else it is moved).
    let several = attempts.len() > 1;
    let last = if several {
        attempts.last().cloned()
    } else {
        attempts.pop()
    }
    .unwrap_or_else(|| {
        LaneAttempt::without_child(Attempt::without_child(Outcome::Error, Stage::Resolve, ""))
    });
    let flaky = several && matches_expectation(sc.spec.expected, last.attempt.outcome);
    Observation {
        scenario_id: sc.spec.scenario_id.clone(),
        profile_id: sc.spec.profile_id.to_string(),
        probe_id: sc.spec.probe_id.to_string(),
        lane,
        operation: sc.probe.operation,
        driver: driver_of(sc).into(),
        target: last.target,
        argv: last.argv,
        timeout: sc.timeout,
        result: last.attempt,
        attempts: if several {
            attempts.into_iter().map(|a| a.attempt).collect()
        } else {
            Vec::new()
        },
        flaky,
        task_id: sc.task.as_ref().map(|t| t.task_id.clone()),
        skipped_because: None,
    }
}

/// `builtin`, `exec`, or `worker` for a worker task.
fn driver_of(sc: &ScenarioRun) -> &'static str {
    if sc.worker.is_some() {
        return "worker";
    }
    match sc.probe.driver {
        Driver::Builtin => "builtin",
        Driver::Exec => "exec",
    }
}

/// The observation of a lane that did not run (`because` says why; `skipped_because` names
/// the failed task that stopped a mission task).
pub fn skipped_observation(
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
        driver: driver_of(sc).into(),
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
