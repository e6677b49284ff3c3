//! The scenario × lane table shown on the terminal at the end of a run (and, with
//! `--dry`, the plan's scenarios with the oracle's prediction).

use std::fmt::Write as _;

use super::{Report, RunReport};
use crate::model::results::{LaneCell, NormalizedRow};

/// Plain text, aligned columns, no colour.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalTable;

/// A lane cell as text: `deny (EACCES)`.
pub fn cell_text(c: Option<&LaneCell>) -> String {
    match c {
        None => "-".into(),
        Some(c) => match &c.errno_name {
            Some(e) if c.outcome.as_str() != "allow" => format!("{} ({e})", c.outcome.as_str()),
            _ => c.outcome.as_str().to_string(),
        },
    }
}

/// The rows of the table: header first.
pub fn table_rows(rows: &[NormalizedRow]) -> Vec<[String; 7]> {
    let mut out = vec![[
        "scenario".to_string(),
        "expected".into(),
        "baseline".into(),
        "scenario".into(),
        "oracle".into(),
        "attribution".into(),
        "mismatch".into(),
    ]];
    for r in rows {
        let mut mm: Vec<&str> = r.mismatches.iter().map(|m| m.as_str()).collect();
        if r.flaky {
            mm.push("flaky");
        }
        out.push([
            r.scenario_id.clone(),
            r.expected.as_str().into(),
            cell_text(r.baseline.as_ref()),
            cell_text(r.scenario.as_ref()),
            r.oracle
                .as_ref()
                .map_or("-".into(), |o| o.decision.as_str().to_string()),
            r.attribution.map_or("-".into(), |a| a.as_str().to_string()),
            if mm.is_empty() {
                String::new()
            } else {
                mm.join(", ")
            },
        ]);
    }
    out
}

/// Align rows into text lines.
pub fn align(rows: &[[String; 7]]) -> String {
    let mut widths = [0usize; 7];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ", w = widths[i]);
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

impl Report for TerminalTable {
    fn name(&self) -> &'static str {
        "table"
    }

    fn render(&self, r: &RunReport<'_>) -> crate::Result<String> {
        Ok(align(&table_rows(r.rows)))
    }
}
