//! The template file (`templates/<template_id>/template.json` or `.yaml`).
//!
//! A template declares typed parameters and a body (`plan`, `probes`, `profiles`) written in
//! a small expansion language (see [`crate::template::expand`]): `${param}` interpolation and
//! the directives `$for`, `$if` and `$merge`. `plan-build` expands the body with the
//! parameter values and writes a plan, its own registry and the expected matrix.
//!
//! The file is strict like every user file: unknown keys are errors, parameter names and
//! types are checked, and the constraints a type does not take are refused (a `values` list
//! on an `integer` parameter is a mistake, not a no-op).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::id::Id;

/// The pattern of a parameter name: lowercase, so `${name}` never collides with a runtime
/// variable (`${SCRATCH}`, `${LISTEN_PORT}`), which are uppercase and left for the runner.
pub const PARAM_PATTERN: &str = "^[a-z][a-z0-9_]{0,63}$";

/// A template (`templates/<template_id>/template.json` or `.yaml`): typed parameters and a
/// body that `plan-build` expands into a plan, its own registry and its expected matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon template")]
pub struct TemplateFile {
    /// The JSON Schema this file follows, for editors.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Format version; this build reads `1`.
    pub schema_version: u32,
    /// The template's id (matches its directory name; at most 55 characters, so the id of a
    /// plan built with non-default parameters, `<template_id>-<8 hex>`, is still an id).
    pub template_id: Id,
    /// What the generated plan checks, in a sentence or two.
    pub description: String,
    /// The format of the generated plan and registry files: `json` (default) or `yaml`.
    /// Every template also takes the built-in parameter `format`, which overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
    /// Parameters by name, in the order they are listed (the order `list-templates` shows).
    #[serde(default)]
    pub parameters: BTreeMap<ParamName, ParamSpec>,
    /// The plan body: a plan without `$schema`, `schema_version`, `plan_id` and
    /// `registry_id` (the build sets them), written in the expansion language.
    pub plan: Map<String, Value>,
    /// The probes of the generated registry, keyed by id (expansion language).
    pub probes: Map<String, Value>,
    /// The profiles of the generated registry, keyed by id (expansion language).
    pub profiles: Map<String, Value>,
}

/// Output format of generated plan and registry files.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// `plan.json`, `probes.json`, `profiles.json`.
    #[default]
    Json,
    /// `plan.yaml`, `probes.yaml`, `profiles.yaml`.
    Yaml,
}

impl OutputFormat {
    /// `json` / `yaml` (also the file extension).
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Json => "json",
            OutputFormat::Yaml => "yaml",
        }
    }
}

/// One parameter: its type, default, description and constraints.
///
/// Constraints apply to the types that take them: `minimum`/`maximum` to `integer` and
/// `port` (and to the elements of `port-list`), `min_items`/`max_items` to lists,
/// `min_length`/`max_length` to `string`, `values` to `enum` (required there), `beneath` and
/// `exclude` to `path` and `path-list`, `disjoint_with` to lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// The parameter's type.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// What it means, in a sentence.
    pub description: String,
    /// The value used when the parameter is not set (absent: the parameter is required).
    /// Lists are written as JSON arrays here and comma-separated on the command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Smallest allowed value (`integer`, `port`, `port-list` elements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<i64>,
    /// Largest allowed value (`integer`, `port`, `port-list` elements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<i64>,
    /// Fewest items (`port-list`, `path-list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<u32>,
    /// Most items (`port-list`, `path-list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
    /// Shortest value in characters (`string`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    /// Longest value in characters (`string`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// The allowed words (`enum`, required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// A path the value must lie strictly beneath, e.g. `${SCRATCH}` (`path`, `path-list`).
    /// Without it a path must be absolute and may not use variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beneath: Option<String>,
    /// Paths the value must not overlap: it may not be one of them, lie beneath one, or
    /// contain one (`path`, `path-list`). Keeps a parameter from undoing what the template's
    /// fixed probes rely on (a system dir of `/` would make `/etc` readable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// List parameters that may not share an element with this one (a port both allowed
    /// and denied is a contradiction, not a plan).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disjoint_with: Vec<ParamName>,
    /// An example value as written on the command line (shown in errors; default: derived
    /// from the type and the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    /// Why values are constrained (`beneath`, `exclude`, `disjoint_with`) and what to do
    /// instead: shown with every refusal of a value, so the author learns the reason, not
    /// only the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// Parameter types.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ParamType {
    /// Free text (no control characters).
    String,
    /// A whole number (`minimum`, `maximum`).
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A TCP/UDP port, 1-65535.
    Port,
    /// A set of ports, comma-separated on the command line; duplicates are an error and the
    /// order does not matter (they are sorted).
    PortList,
    /// An absolute path without `.`/`..` components, or one beneath `beneath` (which may
    /// start with `${SCRATCH}` or `${HOME}`).
    Path,
    /// A set of paths, comma-separated on the command line; sorted, no duplicates.
    PathList,
    /// One of `values`.
    Enum,
    /// An id (`^[a-z0-9][a-z0-9._-]{0,63}$`).
    Id,
}

impl ParamType {
    /// Every type, in declaration order.
    pub const ALL: [ParamType; 9] = [
        ParamType::String,
        ParamType::Integer,
        ParamType::Boolean,
        ParamType::Port,
        ParamType::PortList,
        ParamType::Path,
        ParamType::PathList,
        ParamType::Enum,
        ParamType::Id,
    ];

    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Port => "port",
            ParamType::PortList => "port-list",
            ParamType::Path => "path",
            ParamType::PathList => "path-list",
            ParamType::Enum => "enum",
            ParamType::Id => "id",
        }
    }

    /// True for the list types.
    pub fn is_list(self) -> bool {
        matches!(self, ParamType::PortList | ParamType::PathList)
    }

    /// The type of one element of a list type (itself for scalars).
    #[must_use]
    pub fn element(self) -> ParamType {
        match self {
            ParamType::PortList => ParamType::Port,
            ParamType::PathList => ParamType::Path,
            other => other,
        }
    }
}

/// A parameter name (`^[a-z][a-z0-9_]{0,63}$`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ParamName(String);

impl ParamName {
    /// Validate and wrap.
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if is_param_name(&s) {
            Ok(Self(s))
        } else {
            Err(format!(
                "invalid parameter name `{s}`: use lowercase letters, digits and `_`, starting with a letter (uppercase `${{NAME}}`s are runtime variables)"
            ))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True if `s` matches [`PARAM_PATTERN`].
pub fn is_param_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

impl fmt::Display for ParamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for ParamName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ParamName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ParamName::new(s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for ParamName {
    fn schema_name() -> Cow<'static, str> {
        "ParamName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": PARAM_PATTERN,
            "description": "A parameter name: lowercase letters, digits and `_`, starting with a letter."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_names_are_lowercase_identifiers() {
        assert!(is_param_name("allowed_ports"));
        assert!(is_param_name("a1"));
        assert!(!is_param_name("Allowed"));
        assert!(!is_param_name("1a"));
        assert!(!is_param_name("a-b"));
        assert!(!is_param_name(""));
        assert!(ParamName::new("SCRATCH").unwrap_err().contains("runtime"));
    }

    #[test]
    fn types_round_trip() {
        for t in ParamType::ALL {
            let s = serde_json::to_string(&t).unwrap();
            assert_eq!(s, format!("\"{}\"", t.as_str()));
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = serde_json::from_str::<ParamSpec>(
            r#"{"type": "port", "description": "x", "maximun": 3}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `maximun`"), "{e}");
    }
}
