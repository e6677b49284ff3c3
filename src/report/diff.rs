//! `diff A B` rendered for people: the human text (default) and Markdown
//! (`--format markdown`). `--json` is the [`RunDiff`] itself.

use std::fmt::Write as _;

use crate::model::diff::{Change, RunDiff, Severity};

fn side_line(label: &str, s: &crate::model::diff::DiffSide) -> String {
    format!(
        "{label}: {} (run {}, plan {} blake3 {}, kernel {}, Landlock ABI {}{})",
        s.source,
        s.run_id,
        s.plan_id.as_deref().unwrap_or("?"),
        s.plan_digest
            .as_deref()
            .map_or("?", |d| &d[..12.min(d.len())]),
        s.kernel.as_deref().unwrap_or("?"),
        s.landlock_abi.map_or("none".to_string(), |a| a.to_string()),
        if s.verified { "" } else { "; NOT VERIFIED" }
    )
}

fn counts(d: &RunDiff) -> String {
    Severity::ALL
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                d.counts.get(s.as_str()).copied().unwrap_or(0),
                s.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn values(c: &Change) -> String {
    match (&c.before, &c.after) {
        (Some(b), Some(a)) => format!(" [{b} → {a}]"),
        (None, Some(a)) => format!(" [→ {a}]"),
        (Some(b), None) => format!(" [{b} →]"),
        (None, None) => String::new(),
    }
}

/// The human text.
pub fn human(d: &RunDiff) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", side_line("a", &d.a));
    let _ = writeln!(s, "{}", side_line("b", &d.b));
    if d.changes.is_empty() {
        let _ = writeln!(s, "no changes");
        return s;
    }
    let _ = writeln!(s, "{} change(s): {}", d.changes.len(), counts(d));
    for c in &d.changes {
        let lane = c
            .lane
            .as_deref()
            .map_or(String::new(), |l| format!(" ({l})"));
        let _ = writeln!(
            s,
            "{:<8}  {}  {}{lane}: {}{}",
            c.severity.as_str(),
            c.kind,
            c.subject,
            c.message,
            values(c)
        );
        for f in &c.fields {
            let _ = writeln!(s, "          {}", f.describe());
        }
    }
    s
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Markdown (for a CI step summary or a pull request comment).
pub fn markdown(d: &RunDiff) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# nexusmon diff\n");
    let _ = writeln!(s, "- {}", md(&side_line("a", &d.a)));
    let _ = writeln!(s, "- {}\n", md(&side_line("b", &d.b)));
    if d.changes.is_empty() {
        let _ = writeln!(s, "No changes.");
        return s;
    }
    let _ = writeln!(s, "{} change(s): {}\n", d.changes.len(), counts(d));
    let _ = writeln!(
        s,
        "| severity | change | subject | lane | before | after | what |\n|---|---|---|---|---|---|---|"
    );
    for c in &d.changes {
        let mut what = md(&c.message);
        for f in &c.fields {
            let _ = write!(what, "<br>`{}`", md(&f.describe()).replace('`', "'"));
        }
        let _ = writeln!(
            s,
            "| **{}** | {} | `{}` | {} | {} | {} | {what} |",
            c.severity.as_str(),
            c.kind,
            md(&c.subject),
            c.lane.as_deref().unwrap_or(""),
            md(c.before.as_deref().unwrap_or("")),
            md(c.after.as_deref().unwrap_or("")),
        );
    }
    s
}
