//! Stage 7, assembly (pure: no I/O, no processes; unit-tested with the fake executor):
//! classify each scenario's lanes, attribute (baseline vs scenario), compare (expectation,
//! oracle) into mismatch packets, count the mission's tasks, summarise the run (its
//! status, exit code and reason), and build every result file's content ([`Assembled`]).
//! Writing them is [`super::write`]'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::oracle::OracleOutput;
use super::outcome;
use super::seam::{ScenarioRun, matches_expectation};
use crate::exit_code;
use crate::model::results::{
    Attempt, Attribution, ChannelKind, Lane, LaneCell, LaneResults, MismatchKind, MismatchPacket,
    MismatchSummary, NormalizedRow, Observation, ObservationNote, OracleCell, OracleResults,
    OracleVerdict, Outcome, PathWitness, PathWitnesses, PreflightRecord, RESULTS_SCHEMA_VERSION,
    RunStatus, Rusage, Summary,
};
use crate::util::digest::Digest;

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
    /// The signal that interrupted the run, if one did: the status is `interrupted` and
    /// the exit code 128 + its number, whatever was observed.
    pub interrupted: Option<i32>,
}

/// Every result file's content.
#[derive(Debug, Clone)]
pub struct Assembled {
    /// `runtime_results.jsonl`.
    pub runtime: LaneResults,
    /// `baseline_results.jsonl`.
    pub baseline: LaneResults,
    /// `oracle_results.jsonl`.
    pub oracle: OracleResults,
    /// `path_witnesses.jsonl`.
    pub witnesses: PathWitnesses,
    /// `runtime_events.normalized.jsonl` rows.
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
    let mut asm = Assembler::new(preflight, usize::MAX);
    for (i, sc) in scenarios.iter().enumerate() {
        let b = baseline.get(i).and_then(Option::as_ref);
        let s = scenario.get(i).and_then(Option::as_ref);
        let o = oracle.get(i).and_then(Option::as_ref);
        asm.scenario(sc, b, s, o);
    }
    let done = asm.finish(ctx, preflight);
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
        rows: done.rows,
        packets: done.packets,
        mismatch_summary: done.mismatch_summary,
        summary: done.summary,
    }
}

/// Scenarios assembled one at a time, in scenario order, with running counts: what
/// [`assemble`] does for a whole run, for a run whose results stream to disk. It keeps the
/// mismatch packets (one per mismatch) and the rows a report lists: every row while the
/// run has at most `keep_rows` scenarios, beyond that only rows with a mismatch, a flaky
/// scenario or a mission task (the summary's `scenarios` says how many there were).
#[derive(Debug)]
pub struct Assembler {
    tally: Tally,
    packets: Vec<MismatchPacket>,
    rows: Vec<NormalizedRow>,
    keep_rows: usize,
    scenarios: u64,
    seen: usize,
}

/// What an [`Assembler`] made of the run.
#[derive(Debug)]
pub struct AssembledRun {
    /// The rows kept (see [`Assembler`]).
    pub rows: Vec<NormalizedRow>,
    /// Every mismatch packet, in scenario order.
    pub packets: Vec<MismatchPacket>,
    /// `mismatch_summary.json`.
    pub mismatch_summary: MismatchSummary,
    /// `summary.json`.
    pub summary: Summary,
}

impl Assembler {
    /// An assembler for a run whose preflight is `preflight`.
    pub fn new(preflight: &[PreflightRecord], keep_rows: usize) -> Self {
        Self {
            tally: Tally::new(preflight),
            packets: Vec::new(),
            rows: Vec::new(),
            keep_rows,
            scenarios: 0,
            seen: 0,
        }
    }

    /// Classify, attribute and compare one scenario (the next in scenario order); its row.
    pub fn scenario(
        &mut self,
        sc: &ScenarioRun,
        b: Option<&Observation>,
        s: Option<&Observation>,
        o: Option<&OracleVerdict>,
    ) -> NormalizedRow {
        let tally = &mut self.tally;
        for obs in [b, s].into_iter().flatten() {
            tally.lane(sc, obs);
        }
        tally.scenario(sc, s, o);
        let attribution = match (b, s) {
            (Some(b), Some(s)) => Some(outcome::attribute(b.result.outcome, s.result.outcome)),
            _ => None,
        };
        if let Some(a) = attribution {
            *tally.attribution.entry(a.as_str().to_string()).or_default() += 1;
        }
        let mut kinds = outcome::mismatches(
            sc.spec.expected,
            s.map(|x| x.result.outcome),
            o.map(|v| v.decision),
        );
        if let (Some(s), Some(o)) = (s, o)
            && outcome::blocker_diverges(
                s.result.outcome,
                o.decision,
                &o.blockers,
                s.result.kernel_denials.as_deref(),
            )
        {
            kinds.push(MismatchKind::BlockerDivergence);
            kinds.sort();
        }
        for k in &kinds {
            self.packets.push(packet(*k, sc, b, s, o, attribution));
        }
        let r = row(sc, b, s, o, attribution, kinds);
        tally.task(sc, s);
        self.scenarios += 1;
        self.seen += 1;
        let notable =
            |r: &NormalizedRow| !r.mismatches.is_empty() || r.flaky || r.task_id.is_some();
        if self.seen <= self.keep_rows {
            self.rows.push(r.clone());
        } else {
            if self.seen == self.keep_rows + 1 {
                self.rows.retain(notable);
            }
            if notable(&r) {
                self.rows.push(r.clone());
            }
        }
        r
    }

    /// The summaries of every scenario given.
    pub fn finish(self, ctx: &AssembleCtx, preflight: &[PreflightRecord]) -> AssembledRun {
        let mismatch_summary = mismatch_summary(ctx, &self.packets);
        let summary = self.tally.summary(
            ctx,
            self.scenarios,
            &self.packets,
            &mismatch_summary,
            preflight,
        );
        AssembledRun {
            rows: self.rows,
            packets: self.packets,
            mismatch_summary,
            summary,
        }
    }
}

/// The mismatch packet of kind `k` for one scenario.
fn packet(
    k: MismatchKind,
    sc: &ScenarioRun,
    b: Option<&Observation>,
    s: Option<&Observation>,
    o: Option<&OracleVerdict>,
    attribution: Option<Attribution>,
) -> MismatchPacket {
    MismatchPacket {
        schema_version: RESULTS_SCHEMA_VERSION,
        scenario_id: sc.spec.scenario_id.clone(),
        kind: k,
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
        message: mismatch_message(k, sc, s, o),
        task_id: sc.task.as_ref().map(|t| t.task_id.clone()),
    }
}

/// One scenario's row of `runtime_events.normalized.jsonl`.
fn row(
    sc: &ScenarioRun,
    b: Option<&Observation>,
    s: Option<&Observation>,
    o: Option<&OracleVerdict>,
    attribution: Option<Attribution>,
    mismatches: Vec<MismatchKind>,
) -> NormalizedRow {
    NormalizedRow {
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
        mismatches,
        flaky: s.is_some_and(|x| x.flaky),
        task_id: sc.task.as_ref().map(|t| t.task_id.clone()),
        depends_on: sc
            .task
            .as_ref()
            .map(|t| t.depends_on.clone())
            .unwrap_or_default(),
        skipped_because: s.and_then(|x| x.skipped_because.clone()),
    }
}

/// `mismatch_summary.json`: the packets counted by kind (every kind, zeros included) and
/// by profile, and the scenarios they concern.
fn mismatch_summary(ctx: &AssembleCtx, packets: &[MismatchPacket]) -> MismatchSummary {
    let mut by_kind: BTreeMap<String, u64> = MismatchKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), 0))
        .collect();
    let mut by_profile: BTreeMap<String, u64> = BTreeMap::new();
    for p in packets {
        *by_kind.entry(p.kind.as_str().to_string()).or_default() += 1;
        *by_profile.entry(p.profile_id.clone()).or_default() += 1;
    }
    let scenarios: BTreeSet<String> = packets.iter().map(|p| p.scenario_id.clone()).collect();
    MismatchSummary {
        schema_version: RESULTS_SCHEMA_VERSION,
        run_id: ctx.run_id.clone(),
        total: packets.len() as u64,
        by_kind,
        by_profile,
        scenarios: scenarios.into_iter().collect(),
    }
}

/// What the scenarios add up to, gathered one scenario at a time.
#[derive(Debug, Default)]
struct Tally {
    /// Outcomes per lane.
    outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Summed rusage of every attempt that ran a child, per lane.
    rusage: BTreeMap<String, Rusage>,
    /// Children per lane.
    children: BTreeMap<String, u64>,
    leaked: Vec<ObservationNote>,
    truncated: Vec<ObservationNote>,
    /// Oracle decisions.
    oracle: BTreeMap<String, u64>,
    attribution: BTreeMap<String, u64>,
    flaky: Vec<String>,
    /// Profiles that could not be applied (preflight or scenario lane).
    apply_failed: BTreeSet<String>,
    tasks_total: u64,
    tasks_ok: u64,
    failed_tasks: Vec<String>,
    skipped_tasks: Vec<String>,
}

impl Tally {
    fn new(preflight: &[PreflightRecord]) -> Self {
        Self {
            apply_failed: preflight
                .iter()
                .filter(|r| !r.apply_ok)
                .map(|r| r.profile.clone())
                .collect(),
            ..Self::default()
        }
    }

    /// One executing lane's observation: its outcome, and per attempt its rusage, leaks
    /// and truncated output.
    fn lane(&mut self, sc: &ScenarioRun, obs: &Observation) {
        let lane = obs.lane.as_str().to_string();
        *self
            .outcomes
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
                self.rusage.entry(lane.clone()).or_default().add(&a.rusage);
                *self.children.entry(lane.clone()).or_default() += 1;
            }
            for l in &a.leaked {
                self.leaked.push(ObservationNote {
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
                    self.truncated.push(ObservationNote {
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

    /// The oracle's decision, and whether the scenario lane was flaky or not applied.
    fn scenario(&mut self, sc: &ScenarioRun, s: Option<&Observation>, o: Option<&OracleVerdict>) {
        if let Some(v) = o {
            *self
                .oracle
                .entry(v.decision.as_str().to_string())
                .or_default() += 1;
        }
        if s.is_some_and(|x| x.flaky) {
            self.flaky.push(sc.spec.scenario_id.clone());
        }
        if s.is_some_and(|x| x.result.outcome == Outcome::ApplyFailed) {
            self.apply_failed.insert(sc.spec.profile_id.to_string());
        }
    }

    /// A mission task: succeeded, failed or skipped.
    fn task(&mut self, sc: &ScenarioRun, s: Option<&Observation>) {
        let Some(t) = &sc.task else {
            return;
        };
        self.tasks_total += 1;
        match s.map(|x| x.result.outcome) {
            Some(Outcome::Skipped) => self.skipped_tasks.push(t.task_id.clone()),
            Some(o) if matches_expectation(sc.spec.expected, o) => {
                self.tasks_ok += 1;
            }
            _ => self.failed_tasks.push(t.task_id.clone()),
        }
    }

    /// `summary.json` (without the unattributed leaks and governance flags, which the
    /// pipeline adds).
    fn summary(
        mut self,
        ctx: &AssembleCtx,
        scenarios: u64,
        packets: &[MismatchPacket],
        mismatches: &MismatchSummary,
        preflight: &[PreflightRecord],
    ) -> Summary {
        self.failed_tasks.sort();
        self.skipped_tasks.sort();
        let tasks = (self.tasks_total > 0).then(|| crate::model::results::TaskSummary {
            total: self.tasks_total,
            succeeded: self.tasks_ok,
            failed: self.failed_tasks.len() as u64,
            skipped: self.skipped_tasks.len() as u64,
            failed_tasks: self.failed_tasks.clone(),
            skipped_tasks: self.skipped_tasks.clone(),
            layers: ctx.layers.clone(),
            max_parallel: ctx.max_parallel,
        });
        let apply_failed: Vec<String> =
            std::mem::take(&mut self.apply_failed).into_iter().collect();
        let (mut exit, mut reason) =
            self.verdict(ctx, scenarios, packets, mismatches, &apply_failed);
        let mut status = if exit == exit_code::OK {
            RunStatus::Ok
        } else {
            RunStatus::Partial
        };
        if let Some(sig) = ctx.interrupted {
            let all = || self.outcomes.values().flat_map(|m| m.iter());
            let total: u64 = all().map(|(_, n)| n).sum();
            let observed: u64 = all()
                .filter(|(o, _)| o.as_str() != Outcome::Skipped.as_str())
                .map(|(_, n)| n)
                .sum();
            status = RunStatus::Interrupted;
            exit = exit_code::interrupted(sig);
            reason = format!(
                "interrupted by {}: {observed} of {total} lane observation(s) were made before it, the rest were not run or were killed; {} mismatch(es) among them",
                super::interrupt::signal_name(sig),
                packets.len()
            );
        }
        let partially: Vec<String> = preflight
            .iter()
            .filter(|r| {
                r.ruleset_status == Some(crate::model::results::RulesetStatus::PartiallyEnforced)
                    || !r.dropped_rights.is_empty()
            })
            .map(|r| r.profile.clone())
            .collect();
        self.leaked.sort();
        self.truncated.sort();
        Summary {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: ctx.run_id.clone(),
            plan_id: ctx.plan_id.clone(),
            plan_digest: ctx.plan_digest.clone(),
            status,
            exit_code: exit,
            exit_reason: reason,
            channel: ctx.channel,
            scenarios,
            outcomes: self.outcomes,
            oracle: self.oracle,
            attribution: self.attribution,
            mismatches: mismatches.by_kind.clone(),
            flaky: self.flaky,
            fail_on_flaky: ctx.fail_on_flaky,
            apply_failed_profiles: apply_failed,
            partially_enforced_profiles: partially,
            leaked: self.leaked,
            truncated: self.truncated,
            rusage: self.rusage,
            children: self.children,
            runner_max_rss_kib: ctx.runner_max_rss_kib,
            wall_us: ctx.wall_us,
            unattributed_leaks: Vec::new(),
            governance_flags: Vec::new(),
            kernel_audit: None,
            tasks,
        }
    }

    /// The run's exit code and its reason, first match wins: a profile not applied (5),
    /// failed tasks (1), mismatches (1), flaky scenarios under `fail_on_flaky` (1), else 0.
    fn verdict(
        &self,
        ctx: &AssembleCtx,
        scenarios: u64,
        packets: &[MismatchPacket],
        mismatches: &MismatchSummary,
        apply_failed: &[String],
    ) -> (i32, String) {
        let list = |v: &[String]| {
            v.iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let tasks_total = self.tasks_total;
        if !apply_failed.is_empty() {
            (
                exit_code::NOT_ENFORCEABLE,
                format!(
                    "profile(s) {} could not be applied on this host (see apply_preflight.json); the other profiles' lanes ran",
                    list(apply_failed)
                ),
            )
        } else if !self.failed_tasks.is_empty() {
            let mut reason = format!(
                "{} of {tasks_total} task(s) failed ({})",
                self.failed_tasks.len(),
                list(&self.failed_tasks)
            );
            if !self.skipped_tasks.is_empty() {
                let _ = write!(
                    reason,
                    ", {} skipped because a task they depend on failed ({})",
                    self.skipped_tasks.len(),
                    list(&self.skipped_tasks)
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
                    mismatches.scenarios.len()
                ),
            )
        } else if ctx.fail_on_flaky && !self.flaky.is_empty() {
            (
                exit_code::FINDINGS,
                format!(
                    "{} flaky scenario(s) passed only on retry (execution.fail_on_flaky)",
                    self.flaky.len()
                ),
            )
        } else if tasks_total > 0 {
            let others = scenarios - tasks_total;
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
                format!("all {scenarios} scenario(s) matched their expectations"),
            )
        }
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
        MismatchKind::BlockerDivergence => {
            let mut kernel: Vec<String> = s
                .and_then(|x| x.result.kernel_denials.as_ref())
                .into_iter()
                .flatten()
                .flat_map(|d| d.blockers.iter().cloned())
                .collect();
            kernel.sort();
            kernel.dedup();
            format!(
                "the oracle predicted the blocker {} but the kernel's audit records name {} for {op} {target}",
                o.map_or(String::new(), |v| v.blockers.join(", ")),
                kernel.join(", ")
            )
        }
    }
}

/// The oracle lane's output split for [`assemble`]: the verdicts (indexed like the
/// scenarios) and every path witness, sorted and deduplicated.
pub fn split_oracle(oracle_out: &[OracleOutput]) -> (Vec<Option<OracleVerdict>>, Vec<PathWitness>) {
    let oracle = oracle_out
        .iter()
        .map(|o| o.as_ref().map(|(v, _)| v.clone()))
        .collect();
    let mut witnesses: Vec<PathWitness> = oracle_out
        .iter()
        .flatten()
        .flat_map(|(_, w)| w.iter().cloned())
        .collect();
    witnesses.sort();
    witnesses.dedup();
    (oracle, witnesses)
}

/// `--dry`'s rows: what each scenario is and what the oracle predicts (nothing ran).
pub fn dry_rows(scenarios: &[ScenarioRun], oracle_out: &[OracleOutput]) -> Vec<NormalizedRow> {
    scenarios
        .iter()
        .zip(oracle_out)
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
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;

    use super::*;
    use crate::exec::scheduler::run_lanes;
    use crate::exec::seam::skipped_observation;
    use crate::exec::settings::{EventSink, NullSink};
    use crate::exec::testkit::{Fake, ctx, scenario, task, verdict};
    use crate::model::plan::Expectation;
    use crate::model::results::{OracleDecision, RunEvent};

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
