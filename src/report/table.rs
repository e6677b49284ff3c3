//! Human tables: [`Table`], the one renderer every aligned table on the terminal goes
//! through (run summaries, listings, status, omens, missions, promotion outputs), and the
//! scenario × lane table shown at the end of a run ([`TerminalTable`]).

use std::fmt::Write as _;

use super::{Report, RunReport};
use crate::model::results::{LaneCell, NormalizedRow};

/// How a column's cells are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Padded on the right.
    Left,
    /// Padded on the left.
    Right,
}

/// One column: its alignment and width (fitted to the widest cell unless fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    align: Align,
    width: Option<usize>,
}

impl Column {
    /// Left-aligned, as wide as its widest cell.
    pub const fn left() -> Self {
        Self {
            align: Align::Left,
            width: None,
        }
    }

    /// Right-aligned, as wide as its widest cell.
    pub const fn right() -> Self {
        Self {
            align: Align::Right,
            width: None,
        }
    }

    /// Padded to `width` characters in every row (a longer cell overflows), whatever the
    /// other rows hold: for tables printed one row at a time ([`Table::line`]).
    #[must_use]
    pub const fn fixed(self, width: usize) -> Self {
        Self {
            width: Some(width),
            ..self
        }
    }
}

/// An aligned plain-text table: cells separated by a gap (two spaces unless set), each line
/// prefixed by an indent. Widths count characters. A left-aligned last column is never
/// padded; lines lose trailing whitespace unless [`Table::keep_trailing`] is set.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<Column>,
    indent: String,
    gap: String,
    trim: bool,
}

impl Table {
    /// A table of these columns.
    pub fn new(columns: &[Column]) -> Self {
        Self {
            columns: columns.to_vec(),
            indent: String::new(),
            gap: "  ".into(),
            trim: true,
        }
    }

    /// `n` left-aligned, fitted columns.
    pub fn left(n: usize) -> Self {
        Self::new(&vec![Column::left(); n])
    }

    /// Prefix every line with `indent`.
    #[must_use]
    pub fn indent(mut self, indent: &str) -> Self {
        self.indent = indent.to_string();
        self
    }

    /// Separate cells with `gap` (default two spaces).
    #[must_use]
    pub fn gap(mut self, gap: &str) -> Self {
        self.gap = gap.to_string();
        self
    }

    /// Keep trailing whitespace (an empty last cell leaves the gap before it).
    #[must_use]
    pub fn keep_trailing(mut self) -> Self {
        self.trim = false;
        self
    }

    /// Every row as a line ending in `\n`, fitted columns as wide as their widest cell.
    pub fn render<R: AsRef<[S]>, S: AsRef<str>>(&self, rows: &[R]) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.width.unwrap_or(0)).collect();
        for r in rows {
            for (i, c) in r.as_ref().iter().enumerate() {
                if self.columns.get(i).is_some_and(|c| c.width.is_none()) {
                    widths[i] = widths[i].max(c.as_ref().chars().count());
                }
            }
        }
        let mut out = String::new();
        for r in rows {
            out.push_str(&self.format(r.as_ref(), &widths));
            out.push('\n');
        }
        out
    }

    /// One row as a line (no newline), with fixed widths (fitted columns unpadded).
    pub fn line<S: AsRef<str>>(&self, cells: &[S]) -> String {
        let widths: Vec<usize> = self.columns.iter().map(|c| c.width.unwrap_or(0)).collect();
        self.format(cells, &widths)
    }

    fn format<S: AsRef<str>>(&self, cells: &[S], widths: &[usize]) -> String {
        let mut line = self.indent.clone();
        for (i, cell) in cells.iter().enumerate() {
            let cell = cell.as_ref();
            let last = i + 1 == cells.len();
            let w = widths.get(i).copied().unwrap_or(0);
            match self.columns.get(i).map_or(Align::Left, |c| c.align) {
                Align::Left if last => line.push_str(cell),
                Align::Left => {
                    let _ = write!(line, "{cell:<w$}");
                }
                Align::Right => {
                    let _ = write!(line, "{cell:>w$}");
                }
            }
            if !last {
                line.push_str(&self.gap);
            }
        }
        if self.trim {
            line.truncate(line.trim_end().len());
        }
        line
    }
}

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
    Table::left(7).render(rows)
}

/// The scenario × lane table of a run as the terminal shows it: `rows` (already chosen),
/// with a `time` column (the scenario lane's wall time) when `durations` is given, and, when
/// `color` is on, the header bold, mismatched rows red and flaky rows yellow (ANSI codes
/// around whole aligned lines, so alignment never depends on them).
pub fn run_table(
    rows: &[&NormalizedRow],
    durations: Option<&std::collections::BTreeMap<String, u64>>,
    color: bool,
) -> String {
    let owned: Vec<NormalizedRow> = rows.iter().map(|r| (*r).clone()).collect();
    let base = table_rows(&owned);
    let mut cells: Vec<Vec<String>> = base.into_iter().map(|r| r.to_vec()).collect();
    if let Some(d) = durations {
        for (i, row) in cells.iter_mut().enumerate() {
            let t = if i == 0 {
                "time".to_string()
            } else {
                d.get(&owned[i - 1].scenario_id)
                    .map_or("-".to_string(), |us| super::human_us(*us))
            };
            row.insert(6, t);
        }
    }
    let n = cells.first().map_or(0, Vec::len);
    let text = Table::left(n).render(&cells);
    if !color {
        return text;
    }
    let mut out = String::with_capacity(text.len() + rows.len() * 10);
    for (i, line) in text.lines().enumerate() {
        let code = if i == 0 {
            Some("1")
        } else {
            let r = &owned[i - 1];
            if !r.mismatches.is_empty() {
                Some("31")
            } else if r.flaky {
                Some("33")
            } else {
                None
            }
        };
        match code {
            Some(c) => {
                let _ = writeln!(out, "\x1b[{c}m{line}\x1b[0m");
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

impl Report for TerminalTable {
    fn name(&self) -> &'static str {
        "table"
    }

    fn write(&self, r: &RunReport<'_>, out: &mut dyn super::Sink) -> crate::Result<()> {
        // Aligned columns need every row's width first: the terminal table holds its rows.
        let mut rows = Vec::new();
        r.rows.rows(&mut |x| {
            rows.push(x.row.clone());
            Ok(())
        })?;
        out.put(&align(&table_rows(&rows)))
    }
}
