//! A run under governance: the gate and audit hooks the runner calls
//! ([`crate::exec::Gate`], [`crate::exec::AuditHook`]), wired to the project's `.nexusmon/`
//! state directory as the module docs of [`crate::govern`] describe, and [`run`], the one
//! call `nexusmon run` makes.
//!
//! After the seal, the reports the command line asked for ([`RunOutputs`]: JUnit, the
//! GitHub step summary and annotations, the view `-v` shows durations from) are made from
//! the sealed bundle, read back through `promote::view`.
//!
//! Governed when a state directory is named or found (the way git finds `.git`); otherwise
//! an ungoverned run, said so in the manifest, and a mission is refused.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::omens::Failure;
use super::{GateReport, Governance, SealedRun, explain};
use crate::exec::{
    AuditHook, EventSink, Gate, GateDecision, GateInput, GateRefusal, RunOutcome, RunSettings,
    SealReport, execute,
};
use crate::model::index::AuditHead;
use crate::model::plan::PlanKind;
use crate::report::{Report, RunReport};
use crate::{Error, Result};

/// How a run is governed.
#[derive(Debug, Clone)]
pub struct RunGovernance {
    /// `--state-dir`, if given (else `.nexusmon/` is looked for at and above `root`).
    pub state_dir: Option<PathBuf>,
    /// The project root.
    pub root: PathBuf,
    /// `--approval` records (absolute).
    pub approvals: Vec<PathBuf>,
    /// The current directory, for paths in messages (as the operator would type them).
    pub cwd: PathBuf,
    /// Reports to make from the sealed bundle.
    pub outputs: RunOutputs,
}

/// Reports made from the sealed bundle once the run is over (each read back through
/// `promote::view`, so they show what the bundle holds).
#[derive(Debug, Clone, Default)]
pub struct RunOutputs {
    /// `--junit FILE`: JUnit XML.
    pub junit: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`: the Markdown summary is appended to this file.
    pub step_summary: Option<PathBuf>,
    /// `--format github`: workflow-command annotations pointing at the plan's lines.
    pub annotations: bool,
    /// Keep the run's view (per-scenario durations for `-v`).
    pub view: bool,
}

/// What [`run`] gives back.
#[derive(Debug)]
pub struct GovernedRun {
    /// The runner's result (a refusal is an error of kind `Refused`).
    pub result: Result<RunOutcome>,
    /// The gate's report, when the run was governed and the gate was consulted.
    pub gate: Option<GateReport>,
    /// The sealed run as read back, when an output asked for it.
    pub view: Option<crate::model::view::RunView>,
    /// The annotations (`outputs.annotations`).
    pub annotations: Option<String>,
}

/// Run `settings` under the governance `g` describes: open the state directory (or refuse
/// `--approval` without one), install the gate and audit hooks, and execute.
pub fn run(
    mut settings: RunSettings,
    g: &RunGovernance,
    sink: &mut dyn EventSink,
) -> Result<GovernedRun> {
    let state_dir = match &g.state_dir {
        Some(d) => Some(d.clone()),
        None => super::state::find(&g.root),
    };
    let mut governed = None;
    match state_dir {
        Some(dir) => {
            let shared = Rc::new(Governed {
                gov: Governance::open(&dir)?,
                approvals: g.approvals.clone(),
                report: RefCell::new(None),
                cwd: g.cwd.clone(),
            });
            settings.gate = Some(Box::new(GovGate(Rc::clone(&shared))));
            settings.audit = Some(Box::new(GovAudit(Rc::clone(&shared))));
            governed = Some(shared);
        }
        None if !g.approvals.is_empty() => {
            return Err(Error::usage(
                "--approval needs the governance state (the trust file) and there is no .nexusmon/ state directory",
            )
            .with_hint("run `nexusmon init` at the project root (or pass --state-dir DIR)"));
        }
        None => settings.gate = Some(Box::new(Ungoverned)),
    }
    let plan_path = settings.plan_path.clone();
    let result = execute(settings, sink);
    let gate = governed.as_ref().and_then(|g| g.report.borrow().clone());
    let mut done = GovernedRun {
        result,
        gate,
        view: None,
        annotations: None,
    };
    let bundle = done.result.as_ref().ok().and_then(|o| o.bundle.clone());
    if let Some(bundle) = bundle {
        outputs(&mut done, g, &bundle, &plan_path)?;
    }
    Ok(done)
}

/// Make the reports `out` asks for from the sealed `bundle`.
fn outputs(done: &mut GovernedRun, g: &RunGovernance, bundle: &Path, plan: &Path) -> Result<()> {
    let (out, root) = (&g.outputs, &g.root);
    let any = out.junit.is_some() || out.step_summary.is_some() || out.annotations || out.view;
    if !any {
        return Ok(());
    }
    let view = super::review::run_view(bundle, root, g.state_dir.as_deref())?;
    if let Some(summary) = &view.summary {
        let governance = view.governance();
        if let Some(j) = &out.junit {
            let links = crate::util::fsx::relative_path(crate::util::fsx::parent_of(j), bundle)?;
            let links = if links.is_empty() {
                links
            } else {
                format!("{links}/")
            };
            let r = RunReport::of_view(&view, summary, governance.as_ref(), &links);
            let xml = crate::report::junit::Junit.render(&r)?;
            if let Some(parent) = j.parent().filter(|p| !p.as_os_str().is_empty()) {
                crate::util::fsx::create_dir_all(parent)?;
            }
            crate::util::fsx::write_atomic(j, xml.as_bytes())?;
        }
        if let Some(f) = &out.step_summary {
            let links = format!("{}/", bundle.display());
            let r = RunReport::of_view(&view, summary, governance.as_ref(), &links);
            let md = crate::report::markdown::SummaryMarkdown.render(&r)?;
            append(f, md.as_bytes())?;
        }
        if out.annotations {
            let loaded = crate::load::load_plan(plan)?;
            let lines = crate::report::github::PlanLines {
                file: shown(plan, &g.cwd),
                at: crate::load::expectation_lines(&loaded),
            };
            done.annotations = Some(crate::report::github::annotations(
                &view.rows,
                &view.mismatches,
                &lines,
            ));
        }
    }
    done.view = Some(view);
    Ok(())
}

/// Append `bytes` to `path` (created if missing), as GitHub expects of
/// `$GITHUB_STEP_SUMMARY`.
fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut f = crate::util::fsx::open_append(path, 0o644)?;
    f.write_all(bytes)
        .map_err(|e| Error::io("append to", path, e))
}

/// What to do about a refusal: the `approve` and `ssh-keygen -Y sign` commands, with paths
/// relative to `cwd` when beneath it.
pub fn next_steps(report: &GateReport, cwd: &Path) -> Vec<String> {
    refusal_text(report, cwd).next
}

fn refusal_text(report: &GateReport, cwd: &Path) -> explain::RefusalText {
    let records_dir = report.plan_path.parent().map_or_else(
        || "approvals".to_string(),
        |dir| shown(&dir.join("approvals"), cwd),
    );
    explain::refusal(report, &shown(&report.plan_path, cwd), &records_dir)
}

/// `p` relative to `cwd` when beneath it (how the operator would type it).
fn shown(p: &Path, cwd: &Path) -> String {
    p.strip_prefix(cwd).unwrap_or(p).display().to_string()
}

/// The state a governed run's hooks share: the gate, approvals and audit log of the
/// project's `.nexusmon/` state directory.
struct Governed {
    gov: Governance,
    approvals: Vec<PathBuf>,
    report: RefCell<Option<GateReport>>,
    /// For paths in messages.
    cwd: PathBuf,
}

struct GovGate(Rc<Governed>);
struct GovAudit(Rc<Governed>);

/// The refusal message and hint of a report that does not allow the run.
fn refusal(report: &GateReport, cwd: &Path) -> GateRefusal {
    let text = refusal_text(report, cwd);
    let mut message = text.headline;
    if !report.approvals.rejected.is_empty() {
        let list: Vec<String> = report
            .approvals
            .rejected
            .iter()
            .map(|r| {
                format!(
                    "{} ({})",
                    r.path
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                    r.reason.as_str()
                )
            })
            .collect();
        let _ = write!(message, "; not counted: {}", list.join(", "));
    }
    GateRefusal {
        message,
        hint: text.next.join("\n    "),
    }
}

/// The runner-facing decision of a gate report.
fn decision(report: &GateReport, cwd: &Path) -> GateDecision {
    let d = &report.decision;
    GateDecision {
        allowed: report.allows(),
        reasons: d.explain(),
        notes: std::iter::once(format!(
            "gate: {} ({}; rules: {})",
            d.outcome.as_str(),
            explain::describe_plan(report),
            d.reasons.join(", ")
        ))
        .chain(d.explain())
        .collect(),
        refusal: (!report.allows()).then(|| refusal(report, cwd)),
        flags: d.flags.clone(),
        max_jobs: d.max_jobs,
        files: report
            .files
            .iter()
            .map(|f| (f.rel.clone(), f.bytes.clone()))
            .collect(),
    }
}

impl Gate for GovGate {
    fn check(&self, input: &GateInput<'_>) -> Result<GateDecision> {
        let g = &self.0;
        let report = g.gov.gate_for(input.plan, &g.approvals, input.dry)?;
        if !report.allows() && !input.dry {
            g.gov.record_refusal(&report)?;
        }
        let decision = decision(&report, &g.cwd);
        *g.report.borrow_mut() = Some(report);
        Ok(decision)
    }

    fn started(&self, run_id: &str) -> Result<()> {
        if let Some(r) = self.0.report.borrow().as_ref() {
            self.0.gov.record_run_started(r, run_id)?;
        }
        Ok(())
    }
}

impl AuditHook for GovAudit {
    fn head(&self) -> Result<Option<AuditHead>> {
        Ok(Some(self.0.gov.audit_head()?))
    }

    fn sealed(&self, s: &SealReport<'_>) -> Result<()> {
        let status = crate::bundle::check::status_word(s.bundle_status);
        self.0.gov.record_run_sealed(&SealedRun {
            plan_id: s.plan_id,
            run_id: s.run_id,
            status,
            bundle_dir: s.bundle_dir,
            index_blake3: s.index_blake3,
            anchored_head: s.anchored_head,
        })?;
        let failures: Vec<Failure> = s
            .mismatches
            .iter()
            .map(|m| Failure {
                plan_id: s.plan_id.to_string(),
                scenario_id: m.scenario_id.clone(),
                mismatch_kind: m.kind.as_str().to_string(),
                outcome: m.observed.map_or("none", |o| o.as_str()).to_string(),
            })
            .collect();
        self.0.gov.record_failures(s.run_id, &failures)?;
        Ok(())
    }
}

/// No `.nexusmon/` state directory: experiments run and say so; missions are refused.
struct Ungoverned;

impl Gate for Ungoverned {
    fn check(&self, input: &GateInput<'_>) -> Result<GateDecision> {
        if input.plan.plan.kind == PlanKind::Mission {
            return Err(Error::input(
                &input.plan.path,
                "a mission runs only under governance, and there is no .nexusmon/ state directory",
            )
            .with_hint("run `nexusmon init` at the project root (or pass --state-dir DIR)"));
        }
        Ok(GateDecision {
            allowed: true,
            notes: vec![
                "ungoverned: no .nexusmon/ state directory, so no gate record and no audit entry (`nexusmon init` enables both)".into(),
            ],
            ..GateDecision::default()
        })
    }
}
