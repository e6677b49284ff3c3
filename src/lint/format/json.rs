//! The JSON format: one document, keys sorted, findings in report order.
//!
//! ```json
//! {"schema_version": 1, "files_checked": 4, "errors": 1, "warnings": 0, "notes": 0,
//!  "findings": [{"code": "NX101", "name": "unknown-probe", "severity": "error",
//!                "file": "plans/x/plan.json", "line": 12, "column": 9, "end_line": 12,
//!                "end_column": 20, "pointer": "/scenarios/a/file-raed",
//!                "message": "…", "hint": "did you mean `file-read`?"}]}
//! ```

use serde::Serialize;

use super::{Formatter, RenderOptions, shown};
use crate::Result;
use crate::lint::{Report, Severity};

/// Version of this output's layout.
pub const JSON_SCHEMA_VERSION: u32 = 1;

pub(super) struct Json;

#[derive(Serialize)]
struct Doc<'a> {
    schema_version: u32,
    files_checked: usize,
    errors: usize,
    warnings: usize,
    notes: usize,
    findings: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Item<'a> {
    code: &'static str,
    name: &'static str,
    severity: Severity,
    file: String,
    line: u32,
    column: u32,
    end_line: u32,
    end_column: u32,
    pointer: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
}

impl Formatter for Json {
    fn render(&self, report: &Report, opts: &RenderOptions) -> Result<Vec<u8>> {
        let doc = Doc {
            schema_version: JSON_SCHEMA_VERSION,
            files_checked: report.files_checked,
            errors: report.count(Severity::Error),
            warnings: report.count(Severity::Warning),
            notes: report.count(Severity::Note),
            findings: report
                .findings
                .iter()
                .map(|f| Item {
                    code: f.code.id(),
                    name: f.code.name(),
                    severity: f.severity(),
                    file: shown(&f.file, &opts.base),
                    line: f.line,
                    column: f.column,
                    end_line: f.end_line,
                    end_column: f.end_column,
                    pointer: &f.pointer,
                    message: &f.message,
                    hint: f.hint.as_deref(),
                })
                .collect(),
        };
        crate::util::json::to_sorted_pretty(&doc)
    }
}
