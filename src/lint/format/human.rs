//! The human format, like rustc and miette:
//!
//! ```text
//! error[NX101]: probe `file-raed` is not defined in registry/linux-core/probes.json
//!   --> plans/x/plan.json:12:9
//!    |
//! 12 |         "file-raed": "deny"
//!    |         ^^^^^^^^^^^
//!    = hint: did you mean `file-read`?
//! ```

use std::fmt::Write as _;

use super::{Formatter, RenderOptions, shown, summary};
use crate::Result;
use crate::lint::{Finding, Report, Severity};

pub(super) struct Human;

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn severity(&self, sev: Severity, s: &str) -> String {
        let code = match sev {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Note => "1;36",
        };
        self.wrap(code, s)
    }
    fn gutter(&self, s: &str) -> String {
        self.wrap("1;34", s)
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
}

impl Formatter for Human {
    fn render(&self, report: &Report, opts: &RenderOptions) -> Result<Vec<u8>> {
        let paint = Paint { on: opts.color };
        let mut out = String::new();
        for f in &report.findings {
            finding(&mut out, f, report, opts, &paint);
            out.push('\n');
        }
        let line = summary(report);
        let line = if report.has_errors() {
            paint.severity(Severity::Error, &line)
        } else {
            paint.bold(&line)
        };
        let _ = writeln!(out, "{line}");
        Ok(out.into_bytes())
    }
}

fn finding(out: &mut String, f: &Finding, report: &Report, opts: &RenderOptions, paint: &Paint) {
    let sev = f.severity();
    let head = format!("{}[{}]", sev.as_str(), f.code.id());
    let _ = writeln!(
        out,
        "{}: {}",
        paint.severity(sev, &head),
        paint.bold(&f.message)
    );
    let line_text = report
        .sources
        .get(&f.file)
        .and_then(|t| t.lines().nth((f.line as usize).saturating_sub(1)))
        .map(|l| l.replace('\t', " "));
    let num = f.line.to_string();
    let pad = " ".repeat(num.len());
    let _ = writeln!(
        out,
        "{pad}{} {}:{}:{}",
        paint.gutter("-->"),
        shown(&f.file, &opts.base),
        f.line,
        f.column
    );
    if let Some(text) = line_text {
        let chars = text.chars().count();
        let start = (f.column as usize).saturating_sub(1).min(chars);
        let len = if f.end_line == f.line {
            (f.end_column as usize).saturating_sub(f.column as usize)
        } else {
            chars.saturating_sub(start)
        }
        .max(1);
        let bar = paint.gutter("|");
        let _ = writeln!(out, "{pad} {bar}");
        let _ = writeln!(out, "{} {bar} {}", paint.gutter(&num), text.trim_end());
        let _ = writeln!(
            out,
            "{pad} {bar} {}{}",
            " ".repeat(start),
            paint.severity(sev, &"^".repeat(len))
        );
    }
    if let Some(h) = &f.hint {
        let _ = writeln!(out, "{pad} {} hint: {h}", paint.gutter("="));
    }
}
