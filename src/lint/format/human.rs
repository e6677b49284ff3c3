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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

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
        // Line starts per file and whether the current line is ASCII, computed once: a
        // file (even a minified one-line file) may have many findings, and rendering
        // stays linear in the input.
        let mut lines: BTreeMap<&Path, Vec<usize>> = BTreeMap::new();
        let mut ascii: Option<((&Path, u32), bool)> = None;
        for f in &report.findings {
            let shown = report.sources.get(&f.file).and_then(|t| {
                let starts = lines
                    .entry(f.file.as_path())
                    .or_insert_with(|| line_starts(t));
                let line = line_of(t, starts, f.line)?;
                let key = (f.file.as_path(), f.line);
                let is_ascii = match ascii {
                    Some((k, a)) if k == key => a,
                    _ => {
                        let a = line.is_ascii();
                        ascii = Some((key, a));
                        a
                    }
                };
                excerpt(line, is_ascii, f)
            });
            finding(&mut out, f, shown, opts, &paint);
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

/// The byte offset where each line of `text` starts.
fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// Line `line` (1-based) of `text`, without its line break.
fn line_of<'t>(text: &'t str, starts: &[usize], line: u32) -> Option<&'t str> {
    let i = (line as usize).checked_sub(1)?;
    let start = *starts.get(i)?;
    let end = starts.get(i + 1).map_or(text.len(), |e| e - 1);
    text.get(start..end).map(|l| l.trim_end_matches('\r'))
}

/// Characters of a source line shown around the column (a minified file is one long line).
const EXCERPT_CHARS: usize = 200;

/// The source line of `f` as shown (tabs as spaces), the caret's start and width: the whole
/// line when it is short, else at most [`EXCERPT_CHARS`] characters around the column with
/// the elided ends marked `…` (an ASCII line is cut by bytes in constant time; a long
/// non-ASCII line is not shown).
fn excerpt(line: &str, is_ascii: bool, f: &Finding) -> Option<(String, usize, usize)> {
    let col = (f.column as usize).saturating_sub(1);
    let want = if f.end_line == f.line {
        (f.end_column as usize).saturating_sub(f.column as usize)
    } else {
        usize::MAX
    };
    if line.len() <= EXCERPT_CHARS {
        let chars = line.chars().count();
        let start = col.min(chars);
        let len = want.min(chars - start).max(1);
        return Some((line.replace('\t', " "), start, len));
    }
    if !is_ascii {
        return None;
    }
    let start = col.min(line.len());
    let from = start.saturating_sub(EXCERPT_CHARS / 3);
    let to = (from + EXCERPT_CHARS).min(line.len());
    let mut shown = String::new();
    let mut caret = start - from;
    if from > 0 {
        shown.push('…');
        caret += 1;
    }
    shown.push_str(&line[from..to].replace('\t', " "));
    if to < line.len() {
        shown.push('…');
    }
    let len = want.min(to.saturating_sub(start)).max(1);
    Some((shown, caret, len))
}

fn finding(
    out: &mut String,
    f: &Finding,
    excerpt: Option<(String, usize, usize)>,
    opts: &RenderOptions,
    paint: &Paint,
) {
    let sev = f.severity();
    let head = format!("{}[{}]", sev.as_str(), f.code.id());
    let _ = writeln!(
        out,
        "{}: {}",
        paint.severity(sev, &head),
        paint.bold(&f.message)
    );
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
    if let Some((text, start, len)) = excerpt {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_around_the_column() {
        let mut f = Finding::file_level(
            crate::lint::Code::Syntax,
            std::path::Path::new("x.json"),
            "m",
        );
        f.line = 1;
        f.column = 501;
        f.end_line = 1;
        f.end_column = 503;
        let line = "x".repeat(1000);
        let (shown, caret, len) = excerpt(&line, true, &f).unwrap();
        assert_eq!(shown.chars().count(), EXCERPT_CHARS + 2);
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        assert_eq!((caret, len), (EXCERPT_CHARS / 3 + 1, 2));
        assert_eq!(excerpt(&"é".repeat(1000), false, &f), None);
        f.column = 3;
        f.end_column = 4;
        assert_eq!(excerpt("a\tbcd", true, &f), Some(("a bcd".into(), 2, 1)));
        let t = "a\r\nbb\nccc";
        let starts = line_starts(t);
        assert_eq!(line_of(t, &starts, 1), Some("a"));
        assert_eq!(line_of(t, &starts, 3), Some("ccc"));
        assert_eq!(line_of(t, &starts, 4), None);
    }
}
