//! GitHub Actions workflow commands:
//! `::error file=…,line=…,endLine=…,col=…,endColumn=…,title=NX101 unknown-probe::message`
//! (`::warning`, `::notice` for the other severities), escaped as actions/toolkit does:
//! in the message `%` → `%25`, CR → `%0D`, LF → `%0A`; in properties also `:` → `%3A` and
//! `,` → `%2C`.

use std::fmt::Write as _;

use super::{Formatter, RenderOptions, relative};
use crate::Result;
use crate::lint::{Report, Severity};

pub(super) struct Github;

/// Escape a command's message.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a command property value.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

impl Formatter for Github {
    fn render(&self, report: &Report, opts: &RenderOptions) -> Result<Vec<u8>> {
        let mut out = String::new();
        for f in &report.findings {
            let command = match f.severity() {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Note => "notice",
            };
            let file =
                relative(&f.file, &opts.uri_base).unwrap_or_else(|| f.file.display().to_string());
            let title = format!("{} {}", f.code.id(), f.code.name());
            let message = match &f.hint {
                Some(h) => format!("{}\nhint: {h}", f.message),
                None => f.message.clone(),
            };
            let _ = writeln!(
                out,
                "::{command} file={},line={},endLine={},col={},endColumn={},title={}::{}",
                escape_property(&file),
                f.line,
                f.end_line,
                f.column,
                f.end_column,
                escape_property(&title),
                escape_data(&message)
            );
        }
        Ok(out.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_actions_toolkit() {
        let nasty = "100% a:b, c\r\nd";
        assert_eq!(escape_data(nasty), "100%25 a:b, c%0D%0Ad");
        assert_eq!(escape_property(nasty), "100%25 a%3Ab%2C c%0D%0Ad");
        // `%` is escaped first, so an already-escaped sequence is not mistaken for one.
        assert_eq!(escape_data("%0A"), "%250A");
    }
}
