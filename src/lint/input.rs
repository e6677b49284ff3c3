//! Reading one user file for lint: read, parse, duplicate keys, schema. Every problem becomes
//! a finding; what survives is handed to the semantic checks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::codes::Code;
use super::finding::{At, Finding, Sink};
use super::schema;
use crate::source::{Document, NodeKind, Span};
use crate::util::{fsx, limits};

/// One file after the syntax and schema stages.
#[derive(Debug)]
pub struct Input {
    /// Absolute path.
    pub path: PathBuf,
    /// The source text, if the file could be read.
    pub text: Option<String>,
    /// The parsed document, if the syntax is valid (shared with the loaded plan when lint
    /// checks a plan a command has loaded, [`of_document`]).
    pub doc: Option<Arc<Document>>,
    /// The document's value with unknown keys removed (they mean nothing), so the typed
    /// checks can read the rest (taken by the reader of the file's typed content: a plan's
    /// by `plan::read`, a registry file's by its lint).
    pub value: Option<Value>,
    /// True if the schema stage reported anything.
    pub schema_errors: bool,
    /// Where the schema found problems other than unknown keys.
    pub validated: schema::Validated,
    /// Findings so far.
    pub findings: Vec<Finding>,
}

/// Read, parse and schema-check `path` against the schema `schema_name`.
pub fn read(path: &Path, schema_name: &'static str) -> crate::Result<Input> {
    let mut input = Input::empty(path, None);
    let plan = schema_name == "plan";
    let text = match read_text(path, plan) {
        Ok(t) => t,
        Err((code, e)) => {
            let mut msg = e.message().to_string();
            for c in e.causes() {
                msg.push_str(": ");
                msg.push_str(&c);
            }
            let mut f = Finding::file_level(code, path, msg);
            f.hint = e.hint().map(str::to_string);
            input.findings.push(f);
            return Ok(input);
        }
    };
    let parsed = if plan {
        Document::parse_plan(path, text.clone())
    } else {
        Document::parse(path, text.clone())
    };
    let doc = match parsed {
        Ok(d) => d,
        Err(e) => {
            let span = Span {
                start: e.pos,
                end: e.pos,
            };
            let kind = match crate::source::Format::from_path(path) {
                crate::source::Format::Json => "JSON",
                crate::source::Format::Yaml => "YAML",
            };
            let mut f = if let Some(limit) = e.limit {
                Finding::new(
                    Code::InputLimit,
                    path,
                    span,
                    "",
                    format!("{kind} file refused: {}", e.message),
                )
                .with_hint(crate::source::limit_hint(limit))
            } else {
                Finding::new(
                    Code::Syntax,
                    path,
                    span,
                    "",
                    format!("{kind} syntax error: {}", e.message),
                )
            };
            if e.message.starts_with("expected `,` or") {
                f.hint = Some("is a `,` missing before this?".into());
            }
            input.findings.push(f);
            input.text = Some(text);
            return Ok(input);
        }
    };
    input.text = Some(text);
    finish(input, Arc::new(doc), schema_name, &Document::value)
}

/// [`read`], or, when `loaded` is the document of the file `path` (a registry file
/// `load` parsed: [`crate::load::Registry::documents`]), [`of_loaded`].
pub fn read_or_reuse(
    path: &Path,
    schema_name: &'static str,
    loaded: Option<&Arc<Document>>,
) -> crate::Result<Input> {
    match loaded {
        Some(doc) if doc.path == path => of_loaded(path, Arc::clone(doc), schema_name),
        _ => read(path, schema_name),
    }
}

/// The [`Input`] [`read`] gives for `path`, from the document a successful
/// [`Document::load`] of it made: the text read within the same limit and parsed by the
/// same parser within the same budget as [`read`] does, so the same tree, duplicates,
/// value and findings, without reading or parsing the file again.
pub fn of_loaded(
    path: &Path,
    doc: Arc<Document>,
    schema_name: &'static str,
) -> crate::Result<Input> {
    let input = Input::empty(path, Some(doc.text.clone()));
    finish(input, doc, schema_name, &Document::value)
}

/// The syntax and schema stages of a plan document already parsed (by `load`): the same
/// [`Input`] [`read`] gives for its file (but for [`Input::text`], left to the caller, which
/// has it in `doc`), except that the value checked against the schema
/// leaves out the matrix entries the schema cannot fault ([`plan_value_for_schema`]),
/// and [`Input::value`] is that value. Only for a document whose typed plan is known (it
/// loaded): if the schema reports anything, lint the file through [`read`] instead.
pub fn of_document(
    path: &Path,
    doc: Arc<Document>,
    schema_name: &'static str,
) -> crate::Result<Input> {
    // The caller has the text in `doc`: copied only for a report that shows it.
    let input = Input::empty(path, None);
    finish(input, doc, schema_name, &plan_value_for_schema)
}

/// A plan document's value (as [`Document::value`]: a key written twice, the later one
/// wins) without the entries of its `scenarios` matrix that the plan schema cannot fault:
/// an id key with the string `allow` or `deny`. The schema checks nothing across a row's
/// entries (`propertyNames` and `additionalProperties` only), so it finds exactly what it
/// finds in the whole value, at the same places, without a JSON tree of every scenario.
pub fn plan_value_for_schema(doc: &Document) -> Value {
    let NodeKind::Object(members) = &doc.root.kind else {
        return doc.value();
    };
    let mut root = serde_json::Map::new();
    for m in members {
        let v = match (&m.value.kind, m.key.as_str()) {
            (NodeKind::Object(rows), "scenarios") => {
                let mut matrix = serde_json::Map::new();
                for r in rows {
                    let NodeKind::Object(entries) = &r.value.kind else {
                        matrix.insert(r.key.to_string(), r.value.to_value());
                        continue;
                    };
                    let mut row = serde_json::Map::new();
                    for e in entries {
                        if crate::source::plain_matrix_entry(&e.key, &e.value) {
                            row.remove(e.key.as_str());
                        } else {
                            row.insert(e.key.to_string(), e.value.to_value());
                        }
                    }
                    matrix.insert(r.key.to_string(), Value::Object(row));
                }
                Value::Object(matrix)
            }
            _ => m.value.to_value(),
        };
        root.insert(m.key.to_string(), v);
    }
    Value::Object(root)
}

/// Duplicate keys and the schema, on `value` of `doc`.
fn finish(
    mut input: Input,
    doc: Arc<Document>,
    schema_name: &'static str,
    value: &dyn Fn(&Document) -> Value,
) -> crate::Result<Input> {
    let path = input.path.clone();
    let mut sink = Sink::new(&doc, &path);
    for d in &doc.duplicates {
        let key = d.pointer.rsplit('/').next().unwrap_or_default();
        let key = crate::source::unescape_pointer_token(key);
        sink.findings.push(
            Finding::new(
                Code::DuplicateKey,
                &path,
                d.span,
                d.pointer.clone(),
                format!(
                    "key `{key}` is written twice in the same object (first at line {})",
                    d.first.start.line
                ),
            )
            .with_hint("remove one; parsers silently keep only one of the values"),
        );
    }
    let mut value = value(&doc);
    let before = sink.findings.len();
    let validated = schema::validate(schema_name, &value, &mut sink)?;
    input.schema_errors = sink.findings.len() > before;
    schema::strip(&mut value, &validated.unknown_keys);
    input.validated = validated;
    input.findings = sink.findings;
    input.value = Some(value);
    input.doc = Some(doc);
    Ok(input)
}

/// The text of a user file, or the finding code and the error that say why it is not read.
fn read_text(path: &Path, plan: bool) -> Result<String, (Code, crate::Error)> {
    let max = if plan {
        limits::MAX_PLAN_BYTES
    } else {
        limits::MAX_DOCUMENT_BYTES
    };
    match fsx::read_bounded(path, max) {
        Err(e) => Err((Code::UnreadableFile, e)),
        Ok(None) => Err((Code::InputLimit, fsx::document_over(path, max))),
        Ok(Some(bytes)) => fsx::utf8_input(path, bytes).map_err(|e| (Code::UnreadableFile, e)),
    }
}

impl Input {
    /// The input of `path` before its stages ran: its `text` (if read), nothing parsed,
    /// checked or found yet.
    fn empty(path: &Path, text: Option<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            text,
            doc: None,
            value: None,
            schema_errors: false,
            validated: schema::Validated::default(),
            findings: Vec::new(),
        }
    }

    /// A sink over this input's document (which must exist).
    pub fn sink(&self) -> Option<Sink<'_>> {
        self.doc.as_ref().map(|d| Sink::new(d, &self.path))
    }

    /// Report a typed-deserialization failure the schema did not catch (so nothing is
    /// silently lost); if the schema already reported problems, they explain it.
    pub fn typed_failure(&mut self, pointer: &str, message: &str) {
        if self.schema_errors {
            return;
        }
        if let Some(doc) = &self.doc {
            let mut sink = Sink::new(doc, &self.path);
            sink.push(
                Code::SchemaViolation,
                pointer,
                At::Value,
                message.to_string(),
            );
            self.findings.append(&mut sink.findings);
        }
    }
}
