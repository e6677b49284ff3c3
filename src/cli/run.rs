//! `run`: resolve the command line into [`RunSettings`], stream NDJSON events on stdout with
//! `--json` (one per finished observation, plus start, preflight and end events), show a
//! progress bar when stderr is a terminal, and print the human summary on stderr: the
//! scenario × lane table, the mismatches with the oracle's reasons, the bundle and the exit
//! reason. For a mission: the tasks in dependency order with their results (or, with `--dry`,
//! the oracle's prediction and the gate's decision); a refusal prints the decision and what
//! to do (the `approve` and `ssh-keygen -Y sign` commands) before the error.

use std::fmt::Write as _;
use std::io::Write as _;

use super::args::{Channel, LockMode, RunArgs, RunFormat, Show};
use super::{Ctx, Io};
use crate::bundle::{LockMode as StoreLockMode, LockOptions};
use crate::exec::{EventSink, RunOutcome, RunSettings};
use crate::govern::runner::{self, RunGovernance, RunOutputs};
use crate::govern::{GateReport, explain};
use crate::model::results::{ChannelKind, RunEvent, RunStatus};
use crate::report::table::{self, Table};
use crate::util::{fsx, json};

use crate::{Error, Result};

fn abs(ctx: &Ctx, p: &std::path::Path) -> std::path::PathBuf {
    super::promote::abs(ctx, p)
}

struct CliSink<'a, 'b> {
    io: &'a mut Io<'b>,
    json: bool,
    verbose: bool,
    bar: Option<indicatif::ProgressBar>,
    error: Option<Error>,
}

impl EventSink for CliSink<'_, '_> {
    fn event(&mut self, e: &RunEvent) {
        if self.json && self.error.is_none() {
            match json::to_sorted_line(e) {
                Ok(line) => {
                    let out = self.io.out.raw();
                    if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                        self.error = Some(Error::io("write", "<stdout>", err));
                    }
                }
                Err(err) => self.error = Some(err),
            }
        }
        match e {
            RunEvent::RunStart {
                scenarios,
                lanes,
                dry,
                ..
            } if !*dry => {
                let executing = lanes
                    .iter()
                    .filter(|l| !matches!(l, crate::model::results::Lane::Oracle))
                    .count() as u64;
                if self.io.err_is_tty {
                    let bar = indicatif::ProgressBar::with_draw_target(
                        Some(scenarios * executing.max(1)),
                        indicatif::ProgressDrawTarget::stderr(),
                    );
                    if let Ok(style) = indicatif::ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} observations {msg}",
                    ) {
                        bar.set_style(style);
                    }
                    self.bar = Some(bar);
                }
            }
            RunEvent::Observation {
                lane,
                scenario_id,
                outcome,
                detail,
                ..
            } => {
                if !matches!(lane, crate::model::results::Lane::Oracle)
                    && let Some(b) = &self.bar
                {
                    b.inc(1);
                }
                if self.verbose && !self.json {
                    // Escaped here too: the progress bar writes to the terminal itself.
                    let line = crate::util::term::escape(&format!(
                        "{lane:<8} {scenario_id}: {outcome} {detail}"
                    ))
                    .into_owned();
                    match &self.bar {
                        Some(b) => b.println(line),
                        None => {
                            let _ = writeln!(self.io.err, "{line}");
                        }
                    }
                }
            }
            RunEvent::Preflight { record, .. } if self.verbose && !record.apply_ok => {
                let _ = writeln!(
                    self.io.err,
                    "preflight: profile `{}` cannot be applied: {}",
                    record.profile, record.detail
                );
            }
            RunEvent::RunEnd { .. } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
            }
            _ => {}
        }
    }

    fn warning(&mut self, text: &str) {
        let line = crate::util::term::escape(&format!("warning: {text}")).into_owned();
        match &self.bar {
            Some(b) => b.println(line),
            None => {
                let _ = writeln!(self.io.err, "{line}");
            }
        }
    }
}

/// `nexusmon run`.
pub fn run(ctx: &Ctx, io: &mut Io<'_>, a: &RunArgs) -> Result<i32> {
    let plan_path = if a.plan.is_absolute() {
        a.plan.clone()
    } else {
        ctx.cwd.join(&a.plan)
    };
    // The project is the one the plan belongs to when the current directory is in none
    // (`nexusmon run --plan ~/proj/plans/x/plan.json` from elsewhere writes ~/proj/out).
    let root = if ctx.root_given || crate::load::project_root_above(&ctx.cwd).is_some() {
        ctx.root.clone()
    } else {
        plan_path
            .parent()
            .and_then(crate::load::project_root_above)
            .unwrap_or_else(|| ctx.root.clone())
    };
    let out_root = match &a.out {
        Some(o) if o.is_absolute() => o.clone(),
        Some(o) => ctx.cwd.join(o),
        None => root.join("out"),
    };
    if let Some(j) = a.jobs
        && j == 0
    {
        return Err(Error::usage("--jobs must be at least 1"));
    }
    let format = match (a.format, ctx.json) {
        (Some(f), _) => f,
        (None, true) => RunFormat::Json,
        (None, false) if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") => {
            RunFormat::Github
        }
        (None, false) => RunFormat::Human,
    };
    let json = ctx.json || format == RunFormat::Json;
    let mut settings = RunSettings::new(plan_path, root.clone(), fsx::absolute(&out_root)?);
    settings.channel = match a.channel {
        Channel::Clean => ChannelKind::Clean,
        Channel::Direct => ChannelKind::Direct,
    };
    settings.only_profiles.clone_from(&a.only_profile);
    settings.only_scenarios.clone_from(&a.only_scenario);
    settings.rerun_failed = a.rerun_failed.as_ref().map(|b| abs(ctx, b));
    settings.dry = a.dry;
    settings.jobs = a.jobs;
    settings.lock = LockOptions {
        mode: match a.lock {
            LockMode::Fail => StoreLockMode::Fail,
            LockMode::Wait => StoreLockMode::Wait,
        },
        timeout: std::time::Duration::from_secs(a.lock_timeout),
    };
    settings.keep_scratch = a.keep_scratch;
    settings.scratch_parent = ctx.scratch_parent(&a.scratch)?;
    settings.shard = a
        .shard
        .as_deref()
        .map(crate::exec::shard::ShardSpec::parse)
        .transpose()?;
    settings.shard_strategy = match a.shard_strategy {
        crate::cli::args::ShardStrategyArg::Hash => crate::model::results::ShardStrategy::Hash,
        crate::cli::args::ShardStrategyArg::Duration => {
            crate::model::results::ShardStrategy::Duration
        }
    };
    if settings.shard.is_none()
        && (a.durations.is_some()
            || a.allow_empty_shard
            || settings.shard_strategy != crate::model::results::ShardStrategy::Hash)
    {
        return Err(Error::usage(
            "--shard-strategy, --durations and --allow-empty-shard apply to a --shard K/N run",
        ));
    }
    settings.durations = a.durations.as_ref().map(|b| abs(ctx, b));
    settings.allow_empty_shard = a.allow_empty_shard;
    settings
        .expect_plan_digest
        .clone_from(&a.expect_plan_digest);
    settings.command_line = std::env::args().collect();
    // A key that cannot be used is an input error before anything runs.
    settings.kernel_audit = a.kernel_audit.mode();
    #[cfg(feature = "fault-injection")]
    {
        settings.gather_results = a.gather_results;
    }
    settings.signer = a
        .sign_with
        .as_ref()
        .map(|k| crate::bundle::SealSigner::load(&ctx.cwd.join(k)))
        .transpose()?;
    let governance = RunGovernance {
        state_dir: ctx.state_dir.clone(),
        root,
        approvals: a
            .approval
            .iter()
            .map(|p| {
                if p.is_absolute() {
                    p.clone()
                } else {
                    ctx.cwd.join(p)
                }
            })
            .collect(),
        cwd: ctx.cwd.clone(),
        outputs: RunOutputs {
            junit: a.junit.as_ref().map(|j| abs(ctx, j)),
            step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from),
            annotations: format == RunFormat::Github,
            view: ctx.verbose > 0,
        },
    };
    let mut sink = CliSink {
        io,
        json,
        verbose: ctx.verbose > 0,
        bar: None,
        error: None,
    };
    let mut run = runner::run(settings, &governance, &mut sink)?;
    if let Some(b) = sink.bar.take() {
        b.finish_and_clear();
    }
    if let Some(e) = sink.error.take() {
        return Err(e);
    }
    let report = run.gate;
    let outcome = match run.result {
        Ok(o) => o,
        Err(e) => {
            if e.kind() == crate::error::ErrorKind::Refused
                && !ctx.quiet
                && let Some(r) = &report
            {
                let mut lines = explain::decision_lines(r);
                lines.push(
                    "nothing was executed and no bundle was written; the refusal is recorded in the audit log"
                        .to_string(),
                );
                io.errln(lines.join("\n"))?;
            }
            return Err(e);
        }
    };
    if !ctx.quiet {
        // A refused `--dry` says what to do, as a refused run would.
        let next = report
            .as_ref()
            .filter(|r| !r.allows())
            .map(|r| runner::next_steps(r, &ctx.cwd))
            .unwrap_or_default();
        let durations: Option<std::collections::BTreeMap<String, u64>> =
            run.view.as_ref().map(|v| {
                v.details
                    .iter()
                    .filter_map(|(id, d)| {
                        d.get(&crate::model::results::Lane::Scenario)
                            .map(|l| (id.clone(), l.wall_us))
                    })
                    .collect()
            });
        let view = TableView {
            show: a.show,
            durations: durations.as_ref(),
            color: ctx.color,
        };
        human_summary(io, &outcome, report.as_ref(), &next, &view)?;
    }
    if let Some(text) = run.annotations.take() {
        io.out_bytes(text.as_bytes())?;
    }
    Ok(outcome.exit_code)
}

/// A mission's tasks in dependency order, one line each.
fn task_lines(o: &RunOutcome, dry: bool) -> String {
    let mut s = String::new();
    let by_task: std::collections::BTreeMap<&str, &crate::model::results::NormalizedRow> = o
        .rows
        .iter()
        .filter_map(|r| r.task_id.as_deref().map(|t| (t, r)))
        .collect();
    let tasks: usize = o.layers.iter().map(Vec::len).sum();
    let _ = writeln!(
        s,
        "mission tasks: {tasks} in {} layer(s) of dependencies, {}",
        o.layers.len(),
        if o.jobs > 1 {
            format!("up to {} at a time", o.jobs)
        } else {
            "one at a time".to_string()
        }
    );
    let mut rows = vec![[
        "layer".to_string(),
        "task".into(),
        "scenario".into(),
        "after".into(),
        "expected".into(),
        if dry { "oracle" } else { "observed" }.into(),
        if dry { "" } else { "result" }.into(),
    ]];
    for (n, layer) in o.layers.iter().enumerate() {
        for t in layer {
            let Some(r) = by_task.get(t.as_str()) else {
                continue;
            };
            let observed = if dry {
                r.oracle
                    .as_ref()
                    .map_or("-".to_string(), |x| x.decision.as_str().to_string())
            } else {
                crate::report::table::cell_text(r.scenario.as_ref())
            };
            let result = if dry {
                String::new()
            } else {
                match r.scenario.as_ref().map(|c| c.outcome) {
                    Some(crate::model::results::Outcome::Skipped) => format!(
                        "skipped (task `{}` failed)",
                        r.skipped_because.as_deref().unwrap_or("?")
                    ),
                    Some(out) if crate::exec::matches_expectation(r.expected, out) => {
                        "succeeded".to_string()
                    }
                    _ => "FAILED".to_string(),
                }
            };
            rows.push([
                (n + 1).to_string(),
                t.clone(),
                r.scenario_id.clone(),
                if r.depends_on.is_empty() {
                    "-".to_string()
                } else {
                    r.depends_on.join(", ")
                },
                r.expected.as_str().to_string(),
                observed,
                result,
            ]);
        }
    }
    s.push_str(&Table::left(7).indent("  ").render(&rows));
    s
}

/// `--dry`: a mission's task layers with the oracle's prediction, or the scenarios with the
/// oracle's decision and reason; the gate's decision and what to do about a refusal.
fn dry_summary(o: &RunOutcome, gate: Option<&GateReport>, next: &[String]) -> String {
    let mut s = String::new();
    if !o.layers.is_empty() {
        s.push_str(&task_lines(o, true));
        let others: Vec<_> = o.rows.iter().filter(|r| r.task_id.is_none()).collect();
        if !others.is_empty() {
            let _ = writeln!(
                s,
                "other scenarios (outside the task graph): {}",
                others
                    .iter()
                    .map(|r| r.scenario_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(g) = gate {
            let _ = writeln!(s, "{}", explain::decision_lines(g).join("\n"));
        }
        for line in next {
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(s, "{} (exit {})", o.exit_reason, o.exit_code);
        return s;
    }
    let mut rows = vec![[
        "scenario".to_string(),
        "expected".into(),
        "oracle".into(),
        "reason".into(),
    ]];
    for r in &o.rows {
        rows.push([
            r.scenario_id.clone(),
            r.expected.as_str().into(),
            r.oracle
                .as_ref()
                .map_or("-".into(), |x| x.decision.as_str().to_string()),
            r.oracle
                .as_ref()
                .map_or(String::new(), |x| x.reason.clone()),
        ]);
    }
    s.push_str(&Table::left(4).keep_trailing().render(&rows));
    match gate {
        Some(g) => {
            let _ = writeln!(s, "{}", explain::decision_lines(g).join("\n"));
        }
        None => {
            for reason in &o.refused {
                let _ = writeln!(s, "governance: {reason}");
            }
        }
    }
    for line in next {
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s, "{} (exit {})", o.exit_reason, o.exit_code);
    s
}

/// Rows above this count show only failures unless `--show all`.
const LARGE_RUN: usize = 50;

/// How the scenario table is shown.
struct TableView<'a> {
    show: Option<Show>,
    durations: Option<&'a std::collections::BTreeMap<String, u64>>,
    color: bool,
}

impl TableView<'_> {
    /// The table of `rows` and, when rows are hidden, a line saying how many and how to
    /// see them.
    fn render(&self, rows: &[&crate::model::results::NormalizedRow], total: usize) -> String {
        let failures_only = match self.show {
            Some(Show::All) => false,
            Some(Show::Failures) => true,
            None => total > LARGE_RUN,
        };
        let shown: Vec<&crate::model::results::NormalizedRow> = if failures_only {
            rows.iter()
                .copied()
                .filter(|r| !r.mismatches.is_empty() || r.flaky)
                .collect()
        } else {
            rows.to_vec()
        };
        let mut s = String::new();
        if !shown.is_empty() {
            s.push_str(&table::run_table(&shown, self.durations, self.color));
        }
        let hidden = rows.len() - shown.len();
        let not_held = total.saturating_sub(rows.len());
        if hidden > 0 {
            let _ = writeln!(
                s,
                "({hidden} matching scenario(s) not shown; --show all lists every row)"
            );
        }
        if not_held > 0 {
            let _ = writeln!(
                s,
                "({not_held} matching scenario(s) of this large run are listed only in the bundle's runtime_events.normalized.jsonl; `nexusmon report` shows them)"
            );
        }
        s
    }
}

fn human_summary(
    io: &mut Io<'_>,
    o: &RunOutcome,
    gate: Option<&GateReport>,
    next: &[String],
    view: &TableView<'_>,
) -> Result<()> {
    if o.status == RunStatus::Dry {
        return io.errln(dry_summary(o, gate, next).trim_end());
    }
    let mut s = String::new();
    let mission = !o.layers.is_empty();
    if mission {
        s.push_str(&task_lines(o, false));
        let others: Vec<&crate::model::results::NormalizedRow> =
            o.rows.iter().filter(|r| r.task_id.is_none()).collect();
        if !others.is_empty() {
            s.push_str("\nother scenarios:\n");
            let n = others.len();
            s.push_str(&view.render(&others, n));
        }
    } else if !o.rows.is_empty() {
        let rows: Vec<&crate::model::results::NormalizedRow> = o.rows.iter().collect();
        let total = o.summary.as_ref().map_or(rows.len(), |x| {
            usize::try_from(x.scenarios).unwrap_or(usize::MAX)
        });
        s.push_str(&view.render(&rows, total));
    }
    let failed: Vec<_> = o.preflight.iter().filter(|p| !p.apply_ok).collect();
    if !failed.is_empty() {
        s.push_str("\nprofiles that could not be applied:\n");
        for p in failed {
            let _ = writeln!(s, "  {} ({}): {}", p.profile, p.compat, p.detail);
        }
    }
    if !o.mismatches.is_empty() {
        s.push_str("\nmismatches:\n");
        for m in &o.mismatches {
            let _ = writeln!(s, "  {} {}: {}", m.scenario_id, m.kind.as_str(), m.message);
            if let (Some(d), Some(r)) = (m.oracle, &m.oracle_reason)
                && m.kind != crate::model::results::MismatchKind::OracleDivergence
            {
                let _ = writeln!(s, "    oracle: {} ({r})", d.as_str());
            }
        }
    }
    if let Some(sum) = &o.summary {
        if !sum.flaky.is_empty() {
            let _ = writeln!(
                s,
                "\nflaky (passed only on retry): {}",
                sum.flaky.join(", ")
            );
        }
        for n in &sum.leaked {
            let _ = writeln!(s, "leaked: {} {}: {}", n.scenario_id, n.lane, n.note);
        }
        for n in &sum.truncated {
            let _ = writeln!(s, "truncated: {} {}: {}", n.scenario_id, n.lane, n.note);
        }
        if !sum.governance_flags.is_empty() {
            let _ = writeln!(
                s,
                "\ngovernance flags: {} (recorded in summary.json and governance/gate.json)",
                sum.governance_flags.join(", ")
            );
        }
        for l in &sum.unattributed_leaks {
            let _ = writeln!(
                s,
                "leaked (not attributable to one probe): pid {} ({}) found by {}, {}",
                l.pid, l.comm, l.found_by, l.action
            );
        }
    }
    if let Some(b) = &o.bundle {
        let _ = writeln!(
            s,
            "\nbundle: {}{}",
            b.display(),
            o.index_blake3.as_ref().map_or(String::new(), |d| format!(
                " (artifact_index.json blake3 {})",
                &d[..16.min(d.len())]
            ))
        );
    }
    let _ = writeln!(
        s,
        "result: {} — {} (exit {})",
        o.status.as_str(),
        o.exit_reason,
        o.exit_code
    );
    io.errln(s.trim_end())
}
