//! Lint output formats behind one small trait, one file per format: human (source excerpt
//! with a caret), JSON, SARIF 2.1.0 (GitHub code scanning), GitHub workflow annotations.

pub mod github;
mod human;
mod json;
mod sarif;

use std::path::{Path, PathBuf};

use super::Report;
use crate::Result;

pub use github::{escape_data, escape_property};
pub use sarif::SARIF_SCHEMA_URI;

/// What every format needs besides the report.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Paths are shown relative to this directory (the cwd) when beneath it.
    pub base: PathBuf,
    /// SARIF and GitHub paths are relative to this directory (the repository root).
    pub uri_base: PathBuf,
    /// ANSI colours in the human format.
    pub color: bool,
    /// The command that ran (`plan-lint`, `registry-lint`), for summaries.
    pub command: &'static str,
}

/// A lint output format.
pub trait Formatter {
    /// The bytes to write on stdout.
    fn render(&self, report: &Report, opts: &RenderOptions) -> Result<Vec<u8>>;
}

/// The formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Source excerpts with a caret under the value, and a summary line.
    Human,
    /// One JSON document.
    Json,
    /// SARIF 2.1.0.
    Sarif,
    /// GitHub Actions workflow commands.
    Github,
}

impl Format {
    /// The formatter for this format.
    pub fn formatter(self) -> &'static dyn Formatter {
        match self {
            Format::Human => &human::Human,
            Format::Json => &json::Json,
            Format::Sarif => &sarif::Sarif,
            Format::Github => &github::Github,
        }
    }
}

/// Render `report` in `format`.
pub fn render(format: Format, report: &Report, opts: &RenderOptions) -> Result<Vec<u8>> {
    format.formatter().render(report, opts)
}

/// One line summing the report up: `checked 3 files: 2 errors, 1 warning, 0 notes`.
pub fn summary(report: &Report) -> String {
    use super::Severity;
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    let (e, w, n) = (
        report.count(Severity::Error),
        report.count(Severity::Warning),
        report.count(Severity::Note),
    );
    let files = plural(report.files_checked, "file");
    if e + w + n == 0 {
        format!("checked {files}: no problems found")
    } else {
        format!(
            "checked {files}: {}, {}, {}",
            plural(e, "error"),
            plural(w, "warning"),
            plural(n, "note")
        )
    }
}

/// `path` relative to `base` with `/` separators, or `None` if it is not beneath `base`.
fn relative(path: &Path, base: &Path) -> Option<String> {
    let rel = path.strip_prefix(base).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(parts.join("/"))
}

/// How a path is shown to people: relative to `base` when beneath it.
pub fn shown(path: &Path, base: &Path) -> String {
    relative(path, base).unwrap_or_else(|| path.display().to_string())
}
