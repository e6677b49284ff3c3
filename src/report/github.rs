//! GitHub Actions annotations for a run (`run --format github`, automatic when
//! `GITHUB_ACTIONS=true`): one `::error` workflow command per mismatched scenario, pointing
//! at the line of the plan that states the scenario's expectation, and one `::warning` per
//! flaky scenario. Escaped as the lint's GitHub format is (actions/toolkit's rules).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::lint::format::github::{escape_data, escape_property};
use crate::model::results::{MismatchPacket, NormalizedRow};

/// Where a scenario's expectation is written: the plan file (as the annotation names it)
/// and the 1-based line and column of each scenario's key.
#[derive(Debug, Clone, Default)]
pub struct PlanLines {
    /// The plan file, relative to the repository (the workflow's working directory).
    pub file: String,
    /// Scenario id → (line, column).
    pub at: BTreeMap<String, (usize, usize)>,
}

/// The annotations of a run.
pub fn annotations(
    rows: &[NormalizedRow],
    mismatches: &[MismatchPacket],
    plan: &PlanLines,
) -> String {
    let mut out = String::new();
    let mut by: BTreeMap<&str, Vec<&MismatchPacket>> = BTreeMap::new();
    for m in mismatches {
        by.entry(m.scenario_id.as_str()).or_default().push(m);
    }
    let place = |id: &str| match plan.at.get(id) {
        Some((l, c)) => format!("file={},line={l},col={c}", escape_property(&plan.file)),
        None => format!("file={}", escape_property(&plan.file)),
    };
    for (id, ms) in &by {
        let kinds: Vec<&str> = ms.iter().map(|m| m.kind.as_str()).collect();
        let mut message: Vec<String> = ms.iter().map(|m| m.message.clone()).collect();
        if let Some(r) = ms.iter().find_map(|m| m.oracle_reason.as_ref()) {
            message.push(format!("oracle: {r}"));
        }
        let _ = writeln!(
            out,
            "::error {},title={}::{}",
            place(id),
            escape_property(&format!("{id} {}", kinds.join(", "))),
            escape_data(&message.join("\n"))
        );
    }
    for r in rows.iter().filter(|r| r.flaky && r.mismatches.is_empty()) {
        let _ = writeln!(
            out,
            "::warning {},title={}::{}",
            place(&r.scenario_id),
            escape_property(&format!("{} flaky", r.scenario_id)),
            escape_data("passed only on retry")
        );
    }
    out
}
