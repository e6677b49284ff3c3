//! JSON Schemas (draft 2020-12) generated from the model types, the one table of them
//! ([`SCHEMAS`]), and schema validation of user files with findings that read like a
//! person wrote them ("unknown key `profils`" + "did you mean `profiles`?").
//!
//! The files in `schemas/` are these schemas, written by [`render`]; an ordinary test fails
//! when they drift (regenerate with `UPDATE_SCHEMAS=1 cargo test --test integration
//! schemas`). Lint validates with the same generated schemas, compiled once per process.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use schemars::JsonSchema;
use serde_json::{Map, Value};

use super::codes::Code;
use super::finding::{At, Sink, did_you_mean};
use crate::model::id::{ID_PATTERN, VAR_PATTERN};
use crate::{Error, Result};

/// One generated schema: its short name, its file in `schemas/`, its `$id` and how to
/// generate it. Add a row to [`SCHEMAS`] to publish a new one (templates, promotion
/// packets, mappings, approval records): the drift test and `UPDATE_SCHEMAS=1` pick it up.
#[derive(Debug, Clone, Copy)]
pub struct SchemaSpec {
    /// Short name, e.g. `plan`.
    pub name: &'static str,
    /// File name under `schemas/`, e.g. `plan.schema.json`.
    pub file_name: &'static str,
    /// What the schema describes (used when the type has no title).
    pub title: &'static str,
    /// Generate the raw schema (before [`finish`]).
    pub generate: fn() -> Value,
}

fn raw<T: JsonSchema>() -> Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// Every schema nexusmon publishes, in `schemas/`.
pub const SCHEMAS: &[SchemaSpec] = &[
    SchemaSpec {
        name: "plan",
        file_name: "plan.schema.json",
        title: "nexusmon plan",
        generate: raw::<crate::model::Plan>,
    },
    SchemaSpec {
        name: "probes",
        file_name: "probes.schema.json",
        title: "nexusmon registry probes",
        generate: raw::<crate::model::ProbesFile>,
    },
    SchemaSpec {
        name: "profiles",
        file_name: "profiles.schema.json",
        title: "nexusmon registry profiles",
        generate: raw::<crate::model::ProfilesFile>,
    },
    SchemaSpec {
        name: "workers",
        file_name: "workers.schema.json",
        title: "nexusmon registry workers",
        generate: raw::<crate::model::worker::WorkersFile>,
    },
    SchemaSpec {
        name: "worker-request",
        file_name: "worker-request.schema.json",
        title: "nexusmon worker request",
        generate: raw::<crate::model::worker::WorkerRequest>,
    },
    SchemaSpec {
        name: "worker-result",
        file_name: "worker-result.schema.json",
        title: "nexusmon worker result",
        generate: raw::<crate::model::worker::WorkerResult>,
    },
    SchemaSpec {
        name: "artifacts",
        file_name: "artifacts.schema.json",
        title: "nexusmon artifacts",
        generate: raw::<crate::model::worker::ArtifactsFile>,
    },
    SchemaSpec {
        name: "learn-log",
        file_name: "learn-log.schema.json",
        title: "nexusmon learn log",
        generate: raw::<crate::model::learn::LearnLog>,
    },
    SchemaSpec {
        name: "template",
        file_name: "template.schema.json",
        title: "nexusmon template",
        generate: raw::<crate::model::template::TemplateFile>,
    },
    SchemaSpec {
        name: "artifact-index",
        file_name: "artifact-index.schema.json",
        title: "nexusmon artifact index",
        generate: raw::<crate::model::index::ArtifactIndex>,
    },
    SchemaSpec {
        name: "bundle-envelope",
        file_name: "bundle-envelope.schema.json",
        title: "nexusmon DSSE envelope",
        generate: raw::<crate::model::attest::Envelope>,
    },
    SchemaSpec {
        name: "bundle-statement",
        file_name: "bundle-statement.schema.json",
        title: "nexusmon bundle statement",
        generate: raw::<crate::model::attest::BundleStatement>,
    },
    SchemaSpec {
        name: "approval-record",
        file_name: "approval-record.schema.json",
        title: "nexusmon approval record",
        generate: raw::<crate::model::approval::ApprovalRecord>,
    },
    SchemaSpec {
        name: "omen-clearance",
        file_name: "omen-clearance.schema.json",
        title: "nexusmon omen clearance record",
        generate: raw::<crate::model::approval::ClearanceRecord>,
    },
    SchemaSpec {
        name: "audit-entry",
        file_name: "audit-entry.schema.json",
        title: "nexusmon audit log line",
        generate: raw::<crate::model::audit::AuditEntry>,
    },
    SchemaSpec {
        name: "audit-head",
        file_name: "audit-head.schema.json",
        title: "nexusmon audit log head",
        generate: raw::<crate::model::index::AuditHead>,
    },
    SchemaSpec {
        name: "omens",
        file_name: "omens.schema.json",
        title: "nexusmon omens",
        generate: raw::<crate::model::omens::OmensFile>,
    },
    SchemaSpec {
        name: "evolution",
        file_name: "evolution.schema.json",
        title: "nexusmon evolution state",
        generate: raw::<crate::model::evolution::EvolutionFile>,
    },
    SchemaSpec {
        name: "gate-record",
        file_name: "gate-record.schema.json",
        title: "nexusmon gate record",
        generate: raw::<crate::model::gate::GateRecord>,
    },
    SchemaSpec {
        name: "promotion-packet",
        file_name: "promotion-packet.schema.json",
        title: "nexusmon promotion packet",
        generate: raw::<crate::model::packet::PromotionPacket>,
    },
    SchemaSpec {
        name: "runtime-signatures",
        file_name: "runtime-signatures.schema.json",
        title: "nexusmon runtime signatures",
        generate: raw::<crate::model::mapping::RuntimeSignatures>,
    },
    SchemaSpec {
        name: "op-runtime-summary",
        file_name: "op-runtime-summary.schema.json",
        title: "nexusmon op runtime summary",
        generate: raw::<crate::model::mapping::OpRuntimeSummary>,
    },
    SchemaSpec {
        name: "runtime-links",
        file_name: "runtime-links.schema.json",
        title: "nexusmon runtime links",
        generate: raw::<crate::model::mapping::RuntimeLinks>,
    },
    SchemaSpec {
        name: "op-summary",
        file_name: "op-summary.schema.json",
        title: "nexusmon op summary",
        generate: raw::<crate::model::mapping::OpSummary>,
    },
    SchemaSpec {
        name: "kernel-denial",
        file_name: "kernel-denial.schema.json",
        title: "nexusmon kernel denial record (one line of kernel_denials.jsonl)",
        generate: raw::<crate::model::results::KernelDenialLine>,
    },
    SchemaSpec {
        name: "observation",
        file_name: "observation.schema.json",
        title: "nexusmon lane observation (one line of runtime_results.jsonl / baseline_results.jsonl, its `$shared` values merged in)",
        generate: raw::<crate::model::results::Observation>,
    },
    SchemaSpec {
        name: "oracle-verdict",
        file_name: "oracle-verdict.schema.json",
        title: "nexusmon oracle verdict (one line of oracle_results.jsonl, its `$shared` values merged in)",
        generate: raw::<crate::model::results::OracleVerdict>,
    },
    SchemaSpec {
        name: "path-witness",
        file_name: "path-witness.schema.json",
        title: "nexusmon path witness (one line of path_witnesses.jsonl, its `$shared` values merged in)",
        generate: raw::<crate::model::results::PathWitness>,
    },
    SchemaSpec {
        name: "normalized-row",
        file_name: "normalized-row.schema.json",
        title: "nexusmon normalized row (one line of runtime_events.normalized.jsonl, its `$shared` values merged in)",
        generate: raw::<crate::model::results::NormalizedRow>,
    },
    SchemaSpec {
        name: "shared-values",
        file_name: "shared-values.schema.json",
        title: "nexusmon shared values of a bundle's result lines (shared_values.json)",
        generate: raw::<crate::model::results::SharedValuesFile>,
    },
    SchemaSpec {
        name: "diff",
        file_name: "diff.schema.json",
        title: "nexusmon run diff",
        generate: raw::<crate::model::diff::RunDiff>,
    },
];

/// The `$id` of a schema: a URN, because it identifies the format rather than a place to
/// download it from (editors use the relative `$schema` path in each file).
pub fn schema_id(spec: &SchemaSpec) -> String {
    format!("urn:nexusmon:schema:{}:v1", spec.name)
}

/// The finished schema: generated, `$id` and title set, optional keys not nullable, id-keyed
/// maps checked with `propertyNames`.
pub fn generate(spec: &SchemaSpec) -> Value {
    let mut v = (spec.generate)();
    finish(&mut v);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("$id".into(), Value::String(schema_id(spec)));
        obj.entry("title")
            .or_insert_with(|| Value::String(spec.title.into()));
    }
    v
}

/// The bytes of `schemas/<file_name>`: sorted keys, two-space indent, trailing newline.
pub fn render(spec: &SchemaSpec) -> Result<Vec<u8>> {
    crate::util::json::to_sorted_pretty(&generate(spec))
}

/// The spec named `name`.
pub fn spec(name: &str) -> Option<&'static SchemaSpec> {
    SCHEMAS.iter().find(|s| s.name == name)
}

/// Post-process a generated schema, recursively:
/// - `Option<T>` fields are optional keys, not nullable values: `"type": ["x", "null"]`
///   becomes `"type": "x"` and `anyOf: [T, {"type": "null"}]` becomes `T` (a `null` in a
///   user file is reported, never silently read as "absent");
/// - maps keyed by ids or variable names get `propertyNames` with the pattern and their value
///   schema as `additionalProperties`, so a bad key is reported as a bad id, not as an
///   unknown key.
fn finish(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            strip_null(obj);
            keyed_map(obj);
            if let Some(Value::String(d)) = obj.get_mut("description") {
                *d = unwrap_lines(d);
            }
            for (_, child) in obj.iter_mut() {
                finish(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(finish),
        _ => {}
    }
}

/// Doc comments are wrapped at 100 columns; descriptions read better as one line per
/// paragraph.
fn unwrap_lines(s: &str) -> String {
    s.split("\n\n")
        .map(|para| {
            para.split('\n')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn strip_null(obj: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        let had_null = types.iter().any(|t| t == "null");
        if had_null && types.len() == 2 {
            types.retain(|t| t != "null");
            let only = types.pop().unwrap_or(Value::Null);
            obj.insert("type".into(), only);
        }
    }
    let null_branch = |b: &Value| {
        b.get("type").is_some_and(|t| t == "null") && b.as_object().is_some_and(|o| o.len() == 1)
    };
    if let Some(Value::Array(branches)) = obj.get("anyOf")
        && branches.len() == 2
        && branches.iter().any(null_branch)
        && let Some(Value::Object(keep)) = branches.iter().find(|b| !null_branch(b)).cloned()
    {
        obj.remove("anyOf");
        for (k, v) in keep {
            obj.entry(k).or_insert(v);
        }
    }
}

fn keyed_map(obj: &mut Map<String, Value>) {
    let Some(Value::Object(pp)) = obj.get("patternProperties") else {
        return;
    };
    if pp.len() != 1 {
        return;
    }
    let Some((pattern, value_schema)) = pp.iter().next() else {
        return;
    };
    let (pattern, value_schema) = (pattern.clone(), value_schema.clone());
    let what = if pattern == ID_PATTERN {
        "Keys are ids."
    } else if pattern == VAR_PATTERN {
        "Keys are variable names."
    } else {
        return;
    };
    obj.remove("patternProperties");
    obj.insert(
        "propertyNames".into(),
        serde_json::json!({ "pattern": pattern, "description": what }),
    );
    obj.insert("additionalProperties".into(), value_schema);
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

/// A compiled schema with the JSON it was compiled from (used to find the known keys of an
/// object for suggestions).
struct Compiled {
    schema: Value,
    validator: Validator,
}

fn compile(name: &str) -> Result<Compiled> {
    let spec = spec(name).ok_or_else(|| Error::runner(format!("no schema named `{name}`")))?;
    let schema = generate(spec);
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .map_err(|e| {
            Error::runner(format!(
                "the generated `{name}` schema does not compile: {e}"
            ))
        })?;
    Ok(Compiled { schema, validator })
}

fn compiled(name: &'static str) -> Result<&'static Compiled> {
    static PLAN: OnceLock<std::result::Result<Compiled, String>> = OnceLock::new();
    static PROBES: OnceLock<std::result::Result<Compiled, String>> = OnceLock::new();
    static PROFILES: OnceLock<std::result::Result<Compiled, String>> = OnceLock::new();
    static WORKERS: OnceLock<std::result::Result<Compiled, String>> = OnceLock::new();
    let cell = match name {
        "plan" => &PLAN,
        "probes" => &PROBES,
        "profiles" => &PROFILES,
        "workers" => &WORKERS,
        other => return Err(Error::runner(format!("lint has no schema `{other}`"))),
    };
    cell.get_or_init(|| compile(name).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::runner(e.clone()))
}

/// Compile the schemas of a plan and its registry (`plan`, `probes`, `profiles`) on a
/// thread of their own, for a command that lints a plan after loading it (`run`): the
/// compilation (~14 M instructions, a third of it jsonschema checking each schema against
/// its meta-schema) then happens beside the plan's load instead of on the command's
/// thread; the first [`validate`] of a schema waits for it if it is not done (one
/// compilation either way: the cells are `OnceLock`s). Best effort: no thread, no harm.
pub fn compile_in_background() {
    let _ = std::thread::Builder::new()
        .name("lint-schemas".into())
        .spawn(|| {
            for name in ["probes", "profiles", "plan"] {
                let _ = compiled(name);
            }
        });
}

/// What schema validation leaves for the typed checks.
#[derive(Debug, Default)]
pub struct Validated {
    /// Unknown keys: removing them loses nothing, so the rest can still be checked.
    pub unknown_keys: Vec<String>,
    /// Where every other violation is: an entity containing one of these is not checked
    /// further (its values would be misread).
    pub invalid: Vec<String>,
}

impl Validated {
    /// True if a violation other than an unknown key lies at or beneath `pointer`.
    pub fn invalid_under(&self, pointer: &str) -> bool {
        self.invalid.iter().any(|p| {
            p == pointer
                || p.strip_prefix(pointer)
                    .is_some_and(|rest| rest.starts_with('/'))
                || pointer.is_empty()
        })
    }
}

/// Validate `value` (the document of `sink`) against the schema `name` (`plan`, `probes`,
/// `profiles`), reporting every violation as a finding.
pub fn validate(name: &'static str, value: &Value, sink: &mut Sink<'_>) -> Result<Validated> {
    let c = compiled(name)?;
    let mut out = Validated::default();
    for err in c.validator.iter_errors(value) {
        if !matches!(err.kind(), ValidationErrorKind::AdditionalProperties { .. }) {
            out.invalid.push(err.instance_path().as_str().to_string());
        }
        translate(&err, &c.schema, sink, &mut out.unknown_keys);
    }
    Ok(out)
}

fn esc(token: &str) -> String {
    crate::source::escape_pointer_token(token)
}

fn translate(
    err: &ValidationError<'_>,
    schema: &Value,
    sink: &mut Sink<'_>,
    strip: &mut Vec<String>,
) {
    let inst = err.instance_path().as_str().to_string();
    let instance: &Value = err.instance();
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            unknown_keys(err, schema, &inst, unexpected, sink, strip);
        }
        ValidationErrorKind::PropertyNames { error } => {
            let key = error.instance().as_str().unwrap_or_default().to_string();
            let ptr = format!("{inst}/{}", esc(&key));
            let (code, msg) = bad_name_message(&key, pattern_of(error));
            sink.push(code, &ptr, At::Key, msg);
        }
        ValidationErrorKind::Pattern { pattern } => {
            let s = instance.as_str().unwrap_or_default();
            let (code, msg) = bad_name_message(s, Some(pattern.as_str()));
            sink.push(code, &inst, At::Value, msg);
        }
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(show).collect())
                .unwrap_or_default();
            bad_word(sink, &inst, instance, &allowed);
        }
        ValidationErrorKind::Constant { expected_value } => {
            bad_word(sink, &inst, instance, &[show(expected_value)]);
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            let described = schema_description(schema, err.schema_path().as_str());
            one_of(&inst, instance, context, schema, described, sink, strip);
        }
        ValidationErrorKind::Type { kind } => {
            let want = match kind {
                TypeKind::Single(t) => type_name(&t.to_string()),
                TypeKind::Multiple(ts) => ts
                    .into_iter()
                    .map(|t| type_name(&t.to_string()))
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            sink.push(
                Code::WrongType,
                &inst,
                At::Value,
                format!("expected {want}, found {}", describe(instance)),
            );
        }
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            let whose = if inst.is_empty() {
                "the file".to_string()
            } else {
                format!("`{}`", last_token(&inst))
            };
            sink.push(
                Code::MissingKey,
                &inst,
                At::Key,
                format!("missing required key `{key}` in {whose}"),
            );
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            sink.push(
                Code::OutOfRange,
                &inst,
                At::Value,
                format!("{} is below the minimum of {limit}", show(instance)),
            );
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            sink.push(
                Code::OutOfRange,
                &inst,
                At::Value,
                format!("{} is above the maximum of {limit}", show(instance)),
            );
        }
        ValidationErrorKind::MinItems { limit } => {
            sink.push(
                Code::OutOfRange,
                &inst,
                At::Value,
                format!("expected at least {limit} item(s)"),
            );
        }
        ValidationErrorKind::MaxItems { limit } => {
            sink.push(
                Code::OutOfRange,
                &inst,
                At::Value,
                format!("expected at most {limit} item(s)"),
            );
        }
        ValidationErrorKind::MinLength { limit } => {
            sink.push(
                Code::OutOfRange,
                &inst,
                At::Value,
                format!("expected at least {limit} character(s)"),
            );
        }
        ValidationErrorKind::MaxLength { limit } => {
            sink.push(
                Code::OutOfRange,
                &inst,
                At::Value,
                format!("expected at most {limit} character(s)"),
            );
        }
        ValidationErrorKind::UniqueItems => listed_twice(&inst, instance, sink),
        _ => {
            sink.push(Code::SchemaViolation, &inst, At::Value, err.to_string());
        }
    }
}

/// `additionalProperties`: each unexpected key, with the nearest known key or the list of
/// allowed ones; the keys are stripped before the typed parse.
fn unknown_keys(
    err: &ValidationError<'_>,
    schema: &Value,
    inst: &str,
    unexpected: &[String],
    sink: &mut Sink<'_>,
    strip: &mut Vec<String>,
) {
    let known = known_properties(schema, err.schema_path().as_str());
    for key in unexpected {
        let ptr = format!("{inst}/{}", esc(key));
        let hint = did_you_mean(key, known.iter().map(String::as_str)).or_else(|| {
            (!known.is_empty()).then(|| {
                format!(
                    "allowed keys here: {}",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        });
        sink.push_hint(
            Code::UnknownKey,
            &ptr,
            At::Key,
            format!("unknown key `{key}`"),
            hint,
        );
        strip.push(ptr);
    }
}

/// `uniqueItems`: name the first repeated item.
fn listed_twice(inst: &str, instance: &Value, sink: &mut Sink<'_>) {
    let dup = instance
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .enumerate()
                .find(|(i, x)| items[..*i].contains(x))
                .map(|(_, x)| show(x))
        })
        .unwrap_or_default();
    sink.push(
        Code::SchemaViolation,
        inst,
        At::Value,
        format!("{dup} is listed twice"),
    );
}

/// `oneOf`/`anyOf`: find the branch the author meant and report its errors; if no branch
/// fits at all, say what was expected.
fn one_of(
    inst: &str,
    instance: &Value,
    context: &[Vec<ValidationError<'static>>],
    schema: &Value,
    described: Option<String>,
    sink: &mut Sink<'_>,
    strip: &mut Vec<String>,
) {
    // A branch "does not match the shape" when it fails on a constant (a discriminator such
    // as `kind`, or the word `all`) or on the type of the value itself.
    let mismatched = |errs: &Vec<ValidationError<'static>>| {
        errs.iter().any(|e| {
            matches!(e.kind(), ValidationErrorKind::Constant { .. })
                || (e.instance_path().as_str() == inst
                    && matches!(e.kind(), ValidationErrorKind::Type { .. }))
        })
    };
    if let Some(best) = context
        .iter()
        .filter(|errs| !errs.is_empty() && !mismatched(errs))
        .min_by_key(|errs| errs.len())
    {
        for e in best {
            translate(e, schema, sink, strip);
        }
        return;
    }
    // Every branch failed on a constant at the same deeper place (a discriminator): report
    // the discriminator.
    let consts: Vec<(&str, String)> = context
        .iter()
        .filter_map(|errs| {
            errs.iter().find_map(|e| match e.kind() {
                ValidationErrorKind::Constant { expected_value } => {
                    Some((e.instance_path().as_str(), show(expected_value)))
                }
                _ => None,
            })
        })
        .collect();
    if consts.len() == context.len()
        && let Some((first, _)) = consts.first()
        && consts.iter().all(|(p, _)| p == first)
        && *first != inst
    {
        let at = (*first).to_string();
        let allowed: Vec<String> = consts.iter().map(|(_, v)| v.clone()).collect();
        let found = value_at(instance, &at[inst.len()..]).unwrap_or(&Value::Null);
        bad_word(sink, &at, found, &allowed);
        return;
    }
    // Otherwise list what each branch expects.
    let mut expected: Vec<String> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    for errs in context {
        for e in errs.iter().filter(|e| e.instance_path().as_str() == inst) {
            match e.kind() {
                ValidationErrorKind::Constant { expected_value } => {
                    words.push(show(expected_value));
                    expected.push(format!("`{}`", show(expected_value)));
                }
                ValidationErrorKind::Type { kind } => expected.push(match kind {
                    TypeKind::Single(t) => type_name(&t.to_string()),
                    TypeKind::Multiple(ts) => ts
                        .into_iter()
                        .map(|t| type_name(&t.to_string()))
                        .collect::<Vec<_>>()
                        .join(" or "),
                }),
                _ => {}
            }
        }
    }
    if words.len() == context.len() {
        bad_word(sink, inst, instance, &words);
    } else if expected.is_empty() {
        sink.push(
            Code::SchemaViolation,
            inst,
            At::Value,
            format!("{} does not match any allowed form", describe(instance)),
        );
    } else {
        expected.dedup();
        let hint = instance
            .as_str()
            .and_then(|s| did_you_mean(s, words.iter().map(String::as_str)))
            .or(described.map(|d| format!("expected: {d}")));
        sink.push_hint(
            Code::WrongType,
            inst,
            At::Value,
            format!(
                "expected {}, found {}",
                expected.join(" or "),
                describe(instance)
            ),
            hint,
        );
    }
}

fn bad_word(sink: &mut Sink<'_>, ptr: &str, found: &Value, allowed: &[String]) {
    let label = label_for(ptr);
    let list = allowed
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let (msg, hint) = match found.as_str() {
        Some(s) => (
            format!("`{s}` is not a valid {label}; expected one of {list}"),
            did_you_mean(s, allowed.iter().map(String::as_str)),
        ),
        None => (
            format!("expected one of {list}, found {}", describe(found)),
            None,
        ),
    };
    sink.push_hint(Code::InvalidValue, ptr, At::Value, msg, hint);
}

fn bad_name_message(s: &str, pattern: Option<&str>) -> (Code, String) {
    if pattern == Some(VAR_PATTERN) {
        (
            Code::InvalidId,
            format!(
                "invalid variable name `{s}`: use uppercase letters, digits and `_`, starting with a letter"
            ),
        )
    } else if pattern == Some(ID_PATTERN) || pattern.is_none() {
        (
            Code::InvalidId,
            format!(
                "invalid id `{s}`: ids are 1-64 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit"
            ),
        )
    } else {
        (
            Code::SchemaViolation,
            format!(
                "`{s}` does not match the pattern `{}`",
                pattern.unwrap_or_default()
            ),
        )
    }
}

fn pattern_of<'e>(err: &'e ValidationError<'_>) -> Option<&'e str> {
    match err.kind() {
        ValidationErrorKind::Pattern { pattern } => Some(pattern.as_str()),
        _ => None,
    }
}

/// The keys an object schema at `schema_path` (ending in `/additionalProperties`) defines.
fn known_properties(schema: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path.rsplit_once('/').map_or("", |(p, _)| p);
    let mut keys: Vec<String> = schema
        .pointer(parent)
        .and_then(|o| o.get("properties"))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// The `description` of the schema whose keyword failed (`schema_path` ends in the keyword).
fn schema_description(schema: &Value, schema_path: &str) -> Option<String> {
    let parent = schema_path.rsplit_once('/').map_or("", |(p, _)| p);
    schema
        .pointer(parent)
        .and_then(|o| o.get("description"))
        .and_then(Value::as_str)
        .map(|d| d.replace('\n', " "))
}

fn value_at<'v>(v: &'v Value, rel_pointer: &str) -> Option<&'v Value> {
    if rel_pointer.is_empty() {
        Some(v)
    } else {
        v.pointer(rel_pointer)
    }
}

fn last_token(ptr: &str) -> String {
    crate::source::unescape_pointer_token(ptr.rsplit('/').next().unwrap_or_default())
}

/// A noun for the value at `ptr`, for messages ("not a valid operation").
fn label_for(ptr: &str) -> &'static str {
    let tokens: Vec<&str> = ptr.split('/').skip(1).collect();
    if tokens.len() == 3 && tokens[0] == "scenarios" {
        return "expectation";
    }
    let named = tokens
        .iter()
        .rev()
        .find(|t| t.parse::<usize>().is_err())
        .copied()
        .unwrap_or_default();
    match named {
        "operation" => "operation",
        "driver" => "driver",
        "access" | "handle" => "access word",
        "kind" => "kind",
        "compat" => "compat level",
        "missing_paths" => "missing_paths policy",
        "udp" => "UDP policy",
        "scope" => "scope",
        "deny_groups" => "seccomp group",
        "isolation" => "isolation",
        "category" => "category",
        "rank" => "rank",
        "expect" => "expectation",
        _ => "value",
    }
}

fn type_name(t: &str) -> String {
    match t {
        "object" => "an object".into(),
        "array" => "a list".into(),
        "string" => "a string".into(),
        "integer" => "an integer".into(),
        "number" => "a number".into(),
        "boolean" => "`true` or `false`".into(),
        "null" => "`null`".into(),
        other => other.to_string(),
    }
}

/// How a value reads in a message: strings as-is, others as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// "the string `x`", "the number 3", "a list", …
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "`null`".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string `{s}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Remove the object members at `pointers` from `value` (array items are left alone, so no
/// other pointer shifts).
pub fn strip(value: &mut Value, pointers: &[String]) {
    for p in pointers {
        let Some((parent, last)) = p.rsplit_once('/') else {
            continue;
        };
        let key = crate::source::unescape_pointer_token(last);
        let target = if parent.is_empty() {
            Some(&mut *value)
        } else {
            value.pointer_mut(parent)
        };
        if let Some(Value::Object(map)) = target {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_has_an_id() {
        for spec in SCHEMAS {
            let v = generate(spec);
            assert_eq!(v["$id"], schema_id(spec));
            assert!(v["title"].is_string());
            assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&v)
                .unwrap();
        }
    }

    #[test]
    fn optional_keys_are_not_nullable_and_id_maps_use_property_names() {
        let v = generate(spec("plan").unwrap());
        assert_eq!(v["properties"]["description"]["type"], "string");
        assert_eq!(
            v["properties"]["scenarios"]["propertyNames"]["pattern"],
            ID_PATTERN
        );
        assert_eq!(
            v["properties"]["variables"]["propertyNames"]["pattern"],
            VAR_PATTERN
        );
        assert!(v["properties"]["mission"].get("anyOf").is_none());
        assert!(v["properties"]["mission"]["$ref"].is_string());
    }

    #[test]
    fn strip_removes_members_only() {
        let mut v = serde_json::json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        strip(&mut v, &["/a/b".into(), "/l/0".into(), "/zz".into()]);
        assert_eq!(v, serde_json::json!({"a": {"c": 2}, "l": [1, 2]}));
    }
}
