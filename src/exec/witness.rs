//! The kernel as witness (stage): start collecting the kernel's Landlock audit records
//! before the lanes (`run --kernel-audit`), and after them give each scenario-lane attempt
//! the denials the kernel recorded for its child, write `kernel_denials.jsonl`, and say in
//! the summary whether the records were collected, lost or unavailable, and why. The
//! netlink reader and the matching of records to children are `sandbox::audit`.

use super::seam::ScenarioRun;
use crate::bundle::StagedBundle;
use crate::model::results::{
    ChildTrace, KERNEL_DENIALS_FILE, KernelAuditMode, KernelAuditReport, KernelAuditStart,
    KernelAuditState, KernelDenial, KernelDenialLine, Observation,
};
use crate::sandbox::audit::{self, AuditSession, AuditStart};
use crate::util::json;
use crate::{Error, Result};

/// Start collecting under `mode`. `require` fails (exit 3, nothing written) when the
/// kernel cannot give this runner its records.
pub fn start(
    mode: KernelAuditMode,
    abi: Option<u8>,
) -> Result<(KernelAuditStart, Option<AuditSession>)> {
    match audit::start(mode, abi) {
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

/// Finish the session (if any), give each scenario-lane attempt its kernel denials and
/// build the summary's report and the lines of `kernel_denials.jsonl` (`None` when nothing
/// was collected). `scenario` is indexed like `scenarios`.
pub fn finish(
    mode: KernelAuditMode,
    start: &KernelAuditStart,
    session: Option<AuditSession>,
    scenarios: &[ScenarioRun],
    scenario: &mut [Option<Observation>],
) -> (KernelAuditReport, Option<Vec<KernelDenialLine>>) {
    let mut report = KernelAuditReport {
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
    };
    let Some(session) = session else {
        return (report, None);
    };
    let harvest = session.finish();
    // Every attempt of a child, keyed by (scenario index, attempt number).
    let mut children: Vec<((usize, u32), ChildTrace)> = Vec::new();
    for (i, obs) in scenario.iter().enumerate() {
        let Some(o) = obs else { continue };
        for a in std::iter::once(&o.result).chain(&o.attempts) {
            if let Some(t) = a.trace
                && !children.iter().any(|(k, _)| *k == (i, a.attempt))
            {
                children.push(((i, a.attempt), t));
            }
        }
    }
    let (attributed, unattributed) = audit::attribute(&harvest.records, &children);
    let mut lines = Vec::with_capacity(attributed.len());
    for obs in scenario.iter_mut().flatten() {
        for a in std::iter::once(&mut obs.result).chain(obs.attempts.iter_mut()) {
            if a.trace.is_some() {
                a.kernel_denials = Some(Vec::new());
            }
        }
    }
    for at in attributed {
        let (i, attempt) = at.key;
        let Some(obs) = scenario.get_mut(i).and_then(Option::as_mut) else {
            continue;
        };
        let push = |list: &mut Option<Vec<KernelDenial>>| {
            list.get_or_insert_with(Vec::new).push(at.denial.clone());
        };
        if obs.result.attempt == attempt {
            push(&mut obs.result.kernel_denials);
        }
        for a in obs.attempts.iter_mut().filter(|a| a.attempt == attempt) {
            push(&mut a.kernel_denials);
        }
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
    lines.sort_by(|a, b| {
        (&a.scenario_id, a.attempt, a.serial, &a.denial).cmp(&(
            &b.scenario_id,
            b.attempt,
            b.serial,
            &b.denial,
        ))
    });
    report.records = harvest
        .records
        .iter()
        .filter(|r| r.kind == audit::AUDIT_LANDLOCK_ACCESS)
        .count() as u64;
    report.attributed = lines.len() as u64;
    report.unattributed = unattributed;
    report.kernel_lost = harvest.kernel_lost;
    report.socket_overflows = harvest.socket_overflows;
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
    if harvest.socket_overflows > 0 {
        why.push(format!(
            "the runner's audit socket overflowed {} time(s)",
            harvest.socket_overflows
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
    (report, Some(lines))
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
