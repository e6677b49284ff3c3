//! Human explanations of gate decisions: what was decided, why, and what to do about a
//! refusal (which approvals are missing, the `approve` / `ssh-keygen -Y sign` commands, how
//! to clear a locked omen). Pure text from a [`GateReport`]; the command layer prints it.

use std::fmt::Write as _;

use super::GateReport;
use crate::model::approval::SIGNATURE_NAMESPACE;
use crate::model::plan::{PlanKind, Rank};

/// A refusal, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalText {
    /// One sentence: what blocks the run (also the error message).
    pub headline: String,
    /// The rules that applied, one sentence each.
    pub why: Vec<String>,
    /// Approval records that did not count: `<path>: <reason>: <detail>`.
    pub rejected: Vec<String>,
    /// What to do, as lines (commands indented by two spaces).
    pub next: Vec<String>,
}

/// "rank A, composite 75 SAFE" (missions) or "experiment".
pub fn describe_plan(report: &GateReport) -> String {
    let d = &report.decision;
    if d.kind == PlanKind::Experiment {
        return "experiment".to_string();
    }
    let mut s = format!("rank {}", rank_word(d.rank));
    if d.effective_rank.is_some() && d.effective_rank != d.rank {
        let _ = write!(s, " (gated as {})", rank_word(d.effective_rank));
    }
    if let Some(c) = d.composite {
        let _ = write!(s, ", composite {} {}", c.score, c.band.as_str());
    }
    s
}

/// `E` … `S`, or `-` without a rank.
pub fn rank_word(r: Option<Rank>) -> &'static str {
    match r {
        Some(Rank::E) => "E",
        Some(Rank::D) => "D",
        Some(Rank::C) => "C",
        Some(Rank::B) => "B",
        Some(Rank::A) => "A",
        Some(Rank::S) => "S",
        None => "-",
    }
}

/// The decision as lines: `gate: <outcome> (<plan facts>)`, then one indented sentence per
/// rule, the approvals counted and the review flags.
pub fn decision_lines(report: &GateReport) -> Vec<String> {
    let d = &report.decision;
    let mut out = vec![format!(
        "gate: {} ({})",
        d.outcome.as_str(),
        describe_plan(report)
    )];
    out.extend(d.explain().into_iter().map(|s| format!("  {s}")));
    if !d.approvers.is_empty() {
        out.push(format!("  approved by {}", d.approvers.join(", ")));
    }
    for r in &report.approvals.rejected {
        out.push(format!(
            "  approval {} does not count: {}: {}",
            r.path.display(),
            r.reason.as_str(),
            r.detail
        ));
    }
    if !d.flags.is_empty() {
        out.push(format!("  flags: {}", d.flags.join(", ")));
    }
    out
}

/// Explain a refusal. `plan_arg` is the plan path as the operator should type it;
/// `records_dir` the directory where records are found automatically (`approvals/` beside
/// the plan), as displayed.
pub fn refusal(report: &GateReport, plan_arg: &str, records_dir: &str) -> RefusalText {
    let d = &report.decision;
    let has = |r: &str| d.reasons.iter().any(|x| x == r);
    let mut blockers: Vec<String> = Vec::new();
    if has("composite-failing") {
        blockers.push(format!(
            "composite score {} is FAILING (below 30), which no approval overrides",
            d.composite.map_or(0, |c| c.score)
        ));
    }
    if has("omen-locked") {
        blockers.push(d.explain_reason("omen-locked"));
    }
    if has("worker-capability-locked") {
        blockers.push(d.explain_reason("worker-capability-locked"));
    }
    let requester = report.requested_by.clone();
    if has("trust-file-broken") {
        blockers.push(d.explain_reason("trust-file-broken"));
    }
    if has("approvals-insufficient") && !has("trust-file-broken") {
        let mut s = format!(
            "it needs {} valid approval(s) and has {}",
            d.required_approvals, d.valid_approvals
        );
        if d.required_approvals >= 2 {
            s.push_str(" (from distinct approvers");
            if let Some(r) = &requester {
                let _ = write!(s, ", not the requester `{r}`");
            }
            s.push(')');
        }
        blockers.push(s);
    }
    if blockers.is_empty() {
        blockers.push(format!("the gate decided `{}`", d.outcome.as_str()));
    }
    let what = if d.kind == PlanKind::Mission {
        format!("mission `{}` ({})", report.plan_id, describe_plan(report))
    } else {
        format!("plan `{}`", report.plan_id)
    };
    let headline = format!("refused by governance: {what}: {}", blockers.join("; "));
    let why: Vec<String> = d
        .reasons
        .iter()
        .filter(|r| !matches!(r.as_str(), "parallelism-limited" | "rank-review-waived"))
        .map(|r| d.explain_reason(r))
        .collect();
    let rejected: Vec<String> = report
        .approvals
        .rejected
        .iter()
        .map(|r| format!("{}: {}: {}", r.path.display(), r.reason.as_str(), r.detail))
        .collect();

    let mut next = Vec::new();
    if has("trust-file-broken") {
        next.push(
            "fix the trust file at the line named (`nexusmon audit verify` checks it), then run again: the approvals are checked against it"
                .to_string(),
        );
    }
    if has("approvals-insufficient")
        && !has("trust-file-broken")
        && !has("composite-failing")
        && !has("omen-locked")
    {
        if has("worker-requires-approval") {
            next.push(d.explain_reason("worker-requires-approval"));
        }
        let missing = d.required_approvals.saturating_sub(d.valid_approvals);
        if report
            .approvals
            .rejected
            .iter()
            .any(|r| r.reason == super::sign::RejectReason::PlanDigestMismatch)
        {
            next.push(
                "the plan, a probe or a profile changed since it was approved: the old approval is void; approve the plan as it is now".to_string(),
            );
        }
        next.push(format!(
            "{missing} more approval(s) needed; each approver writes a record and signs it with their SSH key (listed with roles=approver in the trust file):"
        ));
        let record = format!("{records_dir}/{}.<approver>.json", report.plan_id);
        next.push(format!(
            "  nexusmon approve --plan {plan_arg} --approver <approver>"
        ));
        next.push(format!(
            "  ssh-keygen -Y sign -f <key> -n {SIGNATURE_NAMESPACE} {record}"
        ));
        next.push(format!(
            "  (or in one step: nexusmon approve --plan {plan_arg} --approver <approver> --sign-with <key>)"
        ));
        if let Some(r) = requester.filter(|_| d.required_approvals >= 2) {
            next.push(format!(
                "rank S counts approvals from two different approvers, and not from `{r}`, who requested it"
            ));
        }
        next.push(format!(
            "records in {records_dir}/ are found automatically; pass others with `run --approval FILE`"
        ));
    }
    if has("composite-failing") {
        next.push(
            "raise the mission's scores (trust and prediction_confidence weigh most; compute_cost and attention count against it) or split it into smaller missions; `run --dry` shows what would run".to_string(),
        );
    }
    if has("worker-capability-locked") {
        next.push(
            "earn the level: run passing, promotable missions, emit their packets and consume them (`nexusmon evolution status` shows the XP):".to_string(),
        );
        next.push(
            "  nexusmon emit-promotion --bundle out --out promotion/<mission>.json".to_string(),
        );
        next.push("  nexusmon evolve --packets promotion/<mission>.json".to_string());
    }
    if has("omen-locked") {
        next.push("an approver clears the omen (see `nexusmon omens list`):".to_string());
        for o in d
            .omens
            .iter()
            .filter(|o| o.level == super::omens::OmenLevel::Locked)
        {
            next.push(format!(
                "  nexusmon omens clear {} --approver <approver> --sign-with <key>",
                super::short_hex(&o.fingerprint)
            ));
        }
    }
    RefusalText {
        headline,
        why,
        rejected,
        next,
    }
}
