//! Findings: one problem at one place in one file, and the helpers checks use to place them.

use std::path::{Path, PathBuf};

use super::codes::{Code, Severity};
use crate::source::{Document, Pos, Span};
use crate::util::limits;

/// One problem: a stable code, the file and the place (1-based line and column, in
/// characters), the JSON pointer of the value, a message and optionally a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The code (its severity is [`Finding::severity`]).
    pub code: Code,
    /// The file, as an absolute path (formats print it relative to a base).
    pub file: PathBuf,
    /// First line (1-based).
    pub line: u32,
    /// First column (1-based, characters).
    pub column: u32,
    /// Last line.
    pub end_line: u32,
    /// Column just after the last character.
    pub end_column: u32,
    /// JSON pointer of the value (`""` for the whole file).
    pub pointer: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Finding {
    /// A finding at a span.
    pub fn new(
        code: Code,
        file: &Path,
        span: Span,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let start = clamp(span.start);
        let mut end = span.end;
        if end <= start {
            end = Pos {
                line: start.line,
                col: start.col + 1,
            };
        }
        Self {
            code,
            file: file.to_path_buf(),
            line: start.line,
            column: start.col,
            end_line: end.line,
            end_column: end.col,
            pointer: pointer.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// A finding about a whole file (line 1, column 1).
    pub fn file_level(code: Code, file: &Path, message: impl Into<String>) -> Self {
        Self::new(code, file, Span::default(), "", message)
    }

    /// The finding's severity (fixed per code).
    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    /// Attach a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The sort key: file, line, column, code, then pointer and message for total order.
    pub fn sort_key(&self) -> (&Path, u32, u32, Code, &str, &str) {
        (
            &self.file,
            self.line,
            self.column,
            self.code,
            &self.pointer,
            &self.message,
        )
    }
}

fn clamp(p: Pos) -> Pos {
    Pos {
        line: p.line.max(1),
        col: p.col.max(1),
    }
}

/// Which part of a pointed-at member a finding marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The value.
    Value,
    /// The key (falls back to the value for array items and the root).
    Key,
}

/// Collects findings about one document, placing them by JSON pointer.
#[derive(Debug)]
pub struct Sink<'a> {
    /// The document.
    pub doc: &'a Document,
    /// Absolute path used in findings.
    pub file: PathBuf,
    /// The findings so far.
    pub findings: Vec<Finding>,
}

impl<'a> Sink<'a> {
    /// A sink for `doc`; `file` is the absolute path findings name.
    pub fn new(doc: &'a Document, file: &Path) -> Self {
        Self {
            doc,
            file: file.to_path_buf(),
            findings: Vec::new(),
        }
    }

    /// The span of `pointer`'s key or value. A pointer that does not resolve fully (a
    /// missing key) marks the key of the deepest member it reached.
    pub fn span(&self, pointer: &str, at: At) -> Span {
        let loc = self.doc.locate(pointer);
        if !loc.exact {
            return loc.key_span.unwrap_or(Span {
                start: loc.value_span.start,
                end: loc.value_span.start,
            });
        }
        match at {
            At::Key => loc.key_span.unwrap_or(loc.value_span),
            At::Value => loc.value_span,
        }
    }

    /// Report a finding at `pointer`; returns it so the caller can add a hint.
    pub fn push(
        &mut self,
        code: Code,
        pointer: &str,
        at: At,
        message: impl Into<String>,
    ) -> &mut Finding {
        let span = self.span(pointer, at);
        self.findings
            .push(Finding::new(code, &self.file, span, pointer, message));
        let last = self.findings.len() - 1;
        &mut self.findings[last]
    }

    /// True once this sink holds [`limits::MAX_FINDINGS_PER_FILE`] findings: more are only
    /// counted, so callers skip work that only improves a finding (a "did you mean").
    pub fn full(&self) -> bool {
        self.findings.len() >= limits::MAX_FINDINGS_PER_FILE
    }

    /// Report a finding with a hint.
    pub fn push_hint(
        &mut self,
        code: Code,
        pointer: &str,
        at: At,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let f = self.push(code, pointer, at, message);
        f.hint = hint;
    }
}

/// Build a JSON pointer from tokens, escaping each (RFC 6901).
pub fn pointer<I, S>(tokens: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    for t in tokens {
        out.push('/');
        out.push_str(&crate::source::escape_pointer_token(t.as_ref()));
    }
    out
}

/// "did you mean `x`?" if a candidate is close to `input`.
pub fn did_you_mean<'c>(
    input: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    crate::util::suggest::did_you_mean(input, candidates).map(|s| format!("did you mean `{s}`?"))
}
