//! The kernel as witness (stage): start collecting the kernel's Landlock audit records
//! before the lanes (`run --kernel-audit`), and after them give each scenario-lane attempt
//! the denials the kernel recorded for its child, write `kernel_denials.jsonl`, and say in
//! the summary whether the records were collected, lost or unavailable, and why. The
//! netlink reader and the matching of records to children are `sandbox::audit`.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use super::seam::{LaneAttempt, ProbeExecutor, ScenarioRun};
use crate::bundle::{StagedBundle, StagedFile};
use crate::model::results::{
    ChildTrace, KERNEL_DENIALS_FILE, KernelAuditMode, KernelAuditReport, KernelAuditStart,
    KernelAuditState, KernelDenial, KernelDenialLine, Lane, Observation,
};
use crate::sandbox::audit::{self, AuditSession, AuditStart};
use crate::util::json;
use crate::{Error, Result};

/// An `auto` start's first steps, taken on a thread of their own from the run's beginning
/// (`sandbox::audit::AutoProbe`: waits, not work, overlapped with loading and linting the
/// plan) and handed to [`start`] at its own point. Never for `off` or `require` (which
/// takes its lock and may enable audit: nothing of it moves earlier) nor a dry run.
/// Dropped unused (an earlier error ends the run), it waits for the thread.
#[derive(Debug)]
pub struct EarlyProbe(Option<std::thread::JoinHandle<Option<audit::AutoProbe>>>);

impl EarlyProbe {
    /// Start the probe for a run under `mode` (nothing for a dry run or another mode).
    pub fn begin(mode: KernelAuditMode, dry: bool) -> Self {
        Self(
            (!dry && mode == KernelAuditMode::Auto)
                .then(|| {
                    std::thread::Builder::new()
                        .name("audit-probe".into())
                        .spawn(audit::probe_auto)
                        .ok()
                })
                .flatten(),
        )
    }

    /// The probe's result (`None`: none was taken; [`start`] takes the steps itself).
    pub fn take(mut self) -> Option<audit::AutoProbe> {
        self.0.take().and_then(|h| h.join().ok()).flatten()
    }
}

impl Drop for EarlyProbe {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// Start collecting under `mode`. `require` fails (exit 3, nothing written) when the
/// kernel cannot give this runner its records. `probed`: an `auto` start's first steps
/// taken ahead ([`EarlyProbe`]).
pub fn start(
    mode: KernelAuditMode,
    abi: Option<u8>,
    probed: Option<audit::AutoProbe>,
) -> Result<(KernelAuditStart, Option<AuditSession>)> {
    match audit::start_probed(mode, abi, probed) {
        Err(why) => Err(Error::runner(format!(
            "`--kernel-audit require`: cannot collect the kernel's Landlock audit records: {why}"
        ))
        .with_hint(
            "run as root (CAP_AUDIT_CONTROL to enable audit, CAP_AUDIT_READ to read it) on Linux 6.15+ (Landlock ABI 7), or use `--kernel-audit auto`",
        )),
        Ok(AuditStart::Off) => Ok((
            KernelAuditStart {
                mode,
                collecting: false,
                enabled_by_run: false,
                reason: String::new(),
                recovered: String::new(),
            },
            None,
        )),
        Ok(AuditStart::Unavailable(why)) => Ok((
            KernelAuditStart {
                mode,
                collecting: false,
                enabled_by_run: false,
                reason: why,
                recovered: String::new(),
            },
            None,
        )),
        Ok(AuditStart::Active(s)) => Ok((
            KernelAuditStart {
                mode,
                collecting: true,
                enabled_by_run: s.enabled_by_run(),
                reason: String::new(),
                recovered: s.recovered.clone().unwrap_or_default(),
            },
            Some(s),
        )),
    }
}

/// The report before anything is known: `off`, or unavailable for the start's reason.
fn empty_report(mode: KernelAuditMode, start: &KernelAuditStart) -> KernelAuditReport {
    KernelAuditReport {
        mode,
        state: if mode == KernelAuditMode::Off {
            KernelAuditState::Off
        } else {
            KernelAuditState::Unavailable
        },
        reason: start.reason.clone(),
        records: 0,
        attributed: 0,
        unattributed: 0,
        kernel_lost: 0,
        socket_overflows: 0,
        restored: false,
    }
}

/// Every scenario-lane attempt of `obs` that had a child, once per attempt number.
fn children_of(obs: &Observation) -> Vec<(u32, ChildTrace)> {
    let mut out: Vec<(u32, ChildTrace)> = Vec::new();
    for a in std::iter::once(&obs.result).chain(&obs.attempts) {
        if let Some(t) = a.trace
            && !out.iter().any(|(n, _)| *n == a.attempt)
        {
            out.push((a.attempt, t));
        }
    }
    out
}

/// Every attempt of `obs` that had a child was watched: its denials start empty.
fn mark_watched(obs: &mut Observation) {
    for a in std::iter::once(&mut obs.result).chain(obs.attempts.iter_mut()) {
        if a.trace.is_some() {
            a.kernel_denials = Some(Vec::new());
        }
    }
}

/// Give attempt `attempt` of `obs` (the result and the attempt of that number) `denial`.
fn give(obs: &mut Observation, attempt: u32, denial: &KernelDenial) {
    let push = |list: &mut Option<Vec<KernelDenial>>| {
        list.get_or_insert_with(Vec::new).push(denial.clone());
    };
    if obs.result.attempt == attempt {
        push(&mut obs.result.kernel_denials);
    }
    for a in obs.attempts.iter_mut().filter(|a| a.attempt == attempt) {
        push(&mut a.kernel_denials);
    }
}

/// The order of `kernel_denials.jsonl`: scenario, attempt, serial, denial.
fn sort_lines(lines: &mut [KernelDenialLine]) {
    lines.sort_by(|a, b| {
        (&a.scenario_id, a.attempt, a.serial, &a.denial).cmp(&(
            &b.scenario_id,
            b.attempt,
            b.serial,
            &b.denial,
        ))
    });
}

/// What a session's end says, whichever way its records were matched.
struct Ending {
    harvest: audit::Harvest,
    records: u64,
    attributed: u64,
    unattributed: u64,
    /// Records beyond what may be held, on top of the harvest's overflows.
    dropped: u64,
    /// Checkpoints before the end whose marker did not come back in time, and how many
    /// there were.
    missed: (u64, u64),
    /// Why a checkpoint's marker could not be written.
    marker_error: Option<String>,
}

/// The summary's report from a session's end.
fn conclude(mode: KernelAuditMode, start: &KernelAuditStart, end: Ending) -> KernelAuditReport {
    let Ending {
        harvest,
        records,
        attributed,
        unattributed,
        dropped,
        missed,
        marker_error,
    } = end;
    let mut report = empty_report(mode, start);
    report.records = records;
    report.attributed = attributed;
    report.unattributed = unattributed;
    report.kernel_lost = harvest.kernel_lost;
    report.socket_overflows = harvest.socket_overflows + dropped;
    report.restored = harvest.restored;
    let mut why = Vec::new();
    if !harvest.still_enabled {
        why.push("kernel audit was disabled during the run".to_string());
    }
    if harvest.kernel_lost > 0 {
        why.push(format!(
            "the kernel's lost counter rose by {} during the run (backlog or rate limit; system-wide)",
            harvest.kernel_lost
        ));
    }
    if report.socket_overflows > 0 {
        why.push(format!(
            "the runner's audit socket overflowed {} time(s)",
            report.socket_overflows
        ));
    }
    if let Some(e) = &harvest.marker_error {
        why.push(format!(
            "the runner could not write its end-of-run marker into the audit stream ({e}), so the last records may be missing"
        ));
    } else if !harvest.synced {
        why.push(
            "the runner's end-of-run marker did not come back through the audit stream within 3 s, so the last records may be missing"
                .into(),
        );
    }
    if missed.0 > 0 {
        let how = marker_error.map_or_else(
            || "did not come back through the audit stream within 3 s".to_string(),
            |e| format!("could not be written into the audit stream ({e}) or did not come back within 3 s"),
        );
        why.push(format!(
            "the runner's checkpoint marker {how} at {} of {} checkpoint(s), so records of the scenarios written then may be missing (a record that came later is counted as unattributed)",
            missed.0, missed.1
        ));
    }
    if why.is_empty() {
        report.state = KernelAuditState::Collected;
        report.reason = String::new();
    } else {
        report.state = KernelAuditState::Lost;
        report.reason = why.join("; ");
    }
    if let Some(e) = harvest.restore_error {
        let sep = if report.reason.is_empty() { "" } else { "; " };
        report.reason = format!(
            "{}{sep}the previous kernel audit state could not be put back: {e}",
            report.reason
        );
    }
    report
}

/// Finish the session (if any), give each scenario-lane attempt its kernel denials and
/// build the summary's report and the lines of `kernel_denials.jsonl` (`None` when nothing
/// was collected). `scenario` is indexed like `scenarios`. The path of a run that holds
/// every observation to the end; a run that streams its results uses [`AuditStream`].
pub fn finish(
    mode: KernelAuditMode,
    start: &KernelAuditStart,
    session: Option<AuditSession>,
    scenarios: &[ScenarioRun],
    scenario: &mut [Option<Observation>],
) -> (KernelAuditReport, Option<Vec<KernelDenialLine>>) {
    let Some(session) = session else {
        return (empty_report(mode, start), None);
    };
    let harvest = session.finish();
    // Every attempt of a child, keyed by (scenario index, attempt number).
    let mut children: Vec<((usize, u32), ChildTrace)> = Vec::new();
    for (i, obs) in scenario.iter().enumerate() {
        let Some(o) = obs else { continue };
        children.extend(children_of(o).into_iter().map(|(n, t)| ((i, n), t)));
    }
    let (attributed, unattributed) = audit::attribute(&harvest.records, &children);
    let mut lines = Vec::with_capacity(attributed.len());
    for obs in scenario.iter_mut().flatten() {
        mark_watched(obs);
    }
    for at in attributed {
        let (i, attempt) = at.key;
        let Some(obs) = scenario.get_mut(i).and_then(Option::as_mut) else {
            continue;
        };
        give(obs, attempt, &at.denial);
        lines.push(KernelDenialLine {
            scenario_id: scenarios
                .get(i)
                .map_or_else(String::new, |s| s.spec.scenario_id.clone()),
            attempt,
            serial: at.serial,
            time_ms: at.time_ms,
            pid: at.pid,
            denial: at.denial,
        });
    }
    sort_lines(&mut lines);
    let records = harvest
        .records
        .iter()
        .filter(|r| r.kind == audit::AUDIT_LANDLOCK_ACCESS)
        .count() as u64;
    let attributed = lines.len() as u64;
    let report = conclude(
        mode,
        start,
        Ending {
            harvest,
            records,
            attributed,
            unattributed,
            dropped: 0,
            missed: (0, 0),
            marker_error: None,
        },
    );
    (report, Some(lines))
}

/// A scenario whose lanes finished: its index, its baseline and scenario-lane observations.
pub type Finished = (usize, Option<Observation>, Option<Observation>);

/// Whether `session`'s checkpoints work: a marker can be written into the audit stream and
/// comes back (else the run holds every observation and matches at the end, [`finish`]).
pub fn can_checkpoint(session: &mut AuditSession) -> bool {
    session.mark() == Ok(true)
}

/// When each scenario still to be written began its scenario lane (the earliest attempt's
/// start, wall clock): no child of it started earlier, so a record more than the kernel
/// clock's slack older than the earliest of them (or than now) is no such child's.
#[derive(Debug, Default)]
pub struct LaneStarts {
    started: Mutex<BTreeMap<String, u64>>,
}

impl LaneStarts {
    fn begin(&self, scenario_id: &str) {
        if let Ok(mut m) = self.started.lock()
            && !m.contains_key(scenario_id)
        {
            // Read under the lock: a frontier taken before this insert is no later.
            m.insert(scenario_id.to_string(), audit::now_ms());
        }
    }

    fn end(&self, scenario_id: &str) {
        if let Ok(mut m) = self.started.lock() {
            m.remove(scenario_id);
        }
    }

    /// No child of a scenario not yet written started before this (milliseconds since
    /// the epoch). 0 if the lock is poisoned (nothing expires then).
    fn frontier(&self) -> u64 {
        self.started
            .lock()
            .map_or(0, |m| m.values().copied().fold(audit::now_ms(), u64::min))
    }
}

/// An executor that notes in [`LaneStarts`] when each scenario's lane began.
pub struct Tracked<'e> {
    /// The executor that runs the children.
    pub inner: &'e dyn ProbeExecutor,
    /// Where the starts go.
    pub starts: &'e LaneStarts,
}

impl ProbeExecutor for Tracked<'_> {
    fn observe(&self, sc: &ScenarioRun, lane: Lane, attempt: u32) -> LaneAttempt {
        if lane == Lane::Scenario {
            self.starts.begin(&sc.spec.scenario_id);
        }
        self.inner.observe(sc, lane, attempt)
    }

    fn finish(&self) {
        self.inner.finish();
    }

    fn threads(&self) -> Option<&rayon::ThreadPool> {
        self.inner.threads()
    }
}

/// The kernel's records matched to scenarios as they are written, for a run that streams
/// its results: before each batch of scenarios (in scenario order) is written, a
/// checkpoint ([`AuditSession::sync`]) makes sure every record of their children has
/// arrived, the batch's children are given their denials ([`audit::Matcher`]), their
/// lines of `kernel_denials.jsonl` are appended, and records no later child can own are
/// counted as unattributed. Held: the records of children not yet written, and records
/// younger than the oldest unwritten scenario's start.
pub struct AuditStream<'b> {
    session: AuditSession,
    matcher: audit::Matcher,
    out: BufWriter<StagedFile<'b>>,
    attributed: u64,
    checkpoints: u64,
    missed: u64,
    marker_error: Option<String>,
}

impl<'b> AuditStream<'b> {
    /// Stream with `session` (which [`can_checkpoint`]).
    pub fn begin(bundle: &'b StagedBundle, session: AuditSession) -> Result<Self> {
        bundle.create_file(KERNEL_DENIALS_FILE).map(|f| Self {
            session,
            matcher: audit::Matcher::default(),
            out: BufWriter::new(f),
            attributed: 0,
            checkpoints: 0,
            missed: 0,
            marker_error: None,
        })
    }

    /// Give the scenario-lane observations of `batch` (scenario indexes into
    /// `scenarios`, ascending, with their baseline and scenario-lane observations) the
    /// kernel's denials of their
    /// children, and append their lines of `kernel_denials.jsonl`. `starts` holds when
    /// the lanes of every scenario not yet written began (those of `batch` are removed).
    pub fn checkpoint(
        &mut self,
        scenarios: &dyn super::seam::ScenarioSource,
        batch: &mut [Finished],
        starts: &LaneStarts,
    ) -> Result<()> {
        let (records, came_back) = self.session.sync();
        self.checkpoints += 1;
        match came_back {
            Ok(true) => {}
            Ok(false) => self.missed += 1,
            Err(e) => {
                self.missed += 1;
                self.marker_error.get_or_insert(e);
            }
        }
        self.matcher.absorb(records);
        // Each scenario's id, looked up once (a row-backed source builds the whole run).
        let ids: Vec<Option<String>> = batch
            .iter()
            .map(|(si, _, _)| {
                (*si < scenarios.count()).then(|| scenarios.run(*si).spec.scenario_id.clone())
            })
            .collect();
        let mut children: Vec<((usize, u32), ChildTrace)> = Vec::new();
        for (at, (_, _, obs)) in batch.iter_mut().enumerate() {
            if let Some(o) = obs {
                mark_watched(o);
                children.extend(children_of(o).into_iter().map(|(n, t)| ((at, n), t)));
            }
        }
        let mut lines = Vec::new();
        for a in self.matcher.claim(&children) {
            let (at, attempt) = a.key;
            let Some((_, _, Some(obs))) = batch.get_mut(at) else {
                continue;
            };
            give(obs, attempt, &a.denial);
            lines.push(KernelDenialLine {
                scenario_id: ids.get(at).cloned().flatten().unwrap_or_default(),
                attempt,
                serial: a.serial,
                time_ms: a.time_ms,
                pid: a.pid,
                denial: a.denial,
            });
        }
        sort_lines(&mut lines);
        self.attributed += lines.len() as u64;
        for l in &lines {
            let mut text = json::to_sorted_line(l)?;
            text.push('\n');
            self.out
                .write_all(text.as_bytes())
                .map_err(|e| Error::io("write", Path::new(KERNEL_DENIALS_FILE), e))?;
        }
        for id in ids.iter().flatten() {
            starts.end(id);
        }
        self.matcher.expire(starts.frontier());
        Ok(())
    }

    /// Records held now, waiting for their child's scenario or for the frontier.
    pub fn held(&self) -> usize {
        self.matcher.held()
    }

    /// Every scenario was written: end the session (its records after the last
    /// checkpoint belong to no child written), commit `kernel_denials.jsonl` and build
    /// the summary's report.
    pub fn finish(
        self,
        mode: KernelAuditMode,
        start: &KernelAuditStart,
    ) -> Result<KernelAuditReport> {
        let Self {
            session,
            mut matcher,
            out,
            attributed,
            checkpoints,
            missed,
            marker_error,
            ..
        } = self;
        let mut harvest = session.finish();
        matcher.absorb(std::mem::take(&mut harvest.records));
        matcher.expire(u64::MAX);
        out.into_inner()
            .map_err(|e| Error::io("write", Path::new(KERNEL_DENIALS_FILE), e.into_error()))?
            .commit()?;
        Ok(conclude(
            mode,
            start,
            Ending {
                harvest,
                records: matcher.records,
                attributed,
                unattributed: matcher.unattributed,
                dropped: matcher.dropped,
                missed: (missed, checkpoints),
                marker_error,
            },
        ))
    }
}

/// Write `kernel_denials.jsonl`.
pub fn write_lines(bundle: &StagedBundle, lines: &[KernelDenialLine]) -> Result<()> {
    let mut out = String::new();
    for l in lines {
        out.push_str(&json::to_sorted_line(l)?);
        out.push('\n');
    }
    bundle.write_bytes(KERNEL_DENIALS_FILE, out.as_bytes())
}
