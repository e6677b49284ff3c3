//! Typed template parameters: checking a template's declarations and defaults, parsing
//! `--set key=value` by the declared type, and the identity of a parameter set (which
//! parameters differ from their defaults, and the short digest that names the plan).
//!
//! Values are JSON values in one canonical form, so equal parameter sets are equal values
//! whatever order or spelling they were given in: integers and ports are numbers, booleans
//! are booleans, lists are sorted arrays without duplicates, everything else is a string.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::model::id::is_valid_id;
use crate::model::template::{OutputFormat, ParamSpec, ParamType};
use crate::util::{digest, json, suggest};
use crate::{Error, Result};

/// The built-in parameter every template takes: the output format.
pub const FORMAT_PARAM: &str = "format";

/// Names the build defines for the body; parameters may not use them.
pub const RESERVED: [&str; 4] = [FORMAT_PARAM, "plan_id", "registry_id", "template_id"];

/// Variables a `path` parameter may start with (when its `beneath` does).
pub const PATH_VARIABLES: [&str; 2] = ["${SCRATCH}", "${HOME}"];

/// One declared parameter (the built-in `format` included), in declaration order.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The name.
    pub name: String,
    /// The declaration.
    pub spec: ParamSpec,
    /// The default in canonical form (`None`: required).
    pub default: Option<Value>,
    /// True for the built-in `format` (never part of the plan's identity: it changes how
    /// the files are written, not what they say).
    pub builtin: bool,
}

/// The spec of the built-in `format` parameter for a template whose `output_format` is
/// `default`.
pub fn format_param(default: OutputFormat) -> Param {
    Param {
        name: FORMAT_PARAM.into(),
        spec: ParamSpec {
            kind: ParamType::Enum,
            description: "Format of the generated plan and registry files (built-in; does not change the plan's id or digest).".into(),
            default: Some(Value::String(default.as_str().into())),
            minimum: None,
            maximum: None,
            min_items: None,
            max_items: None,
            min_length: None,
            max_length: None,
            values: Some(vec!["json".into(), "yaml".into()]),
            beneath: None,
            exclude: Vec::new(),
            disjoint_with: Vec::new(),
            example: Some("yaml".into()),
            why: None,
        },
        default: Some(Value::String(default.as_str().into())),
        builtin: true,
    }
}

// ---------------------------------------------------------------------------------------
// Checking declarations
// ---------------------------------------------------------------------------------------

/// Check one declaration (constraints fit the type, bounds are sane, the default satisfies
/// them) and return its canonical default. `all` is every declaration, for `disjoint_with`.
/// The error is one sentence about the parameter; callers add the file and place.
pub fn check_spec(
    name: &str,
    spec: &ParamSpec,
    all: &BTreeMap<String, ParamSpec>,
) -> std::result::Result<Option<Value>, String> {
    if RESERVED.contains(&name) {
        return Err(format!(
            "`{name}` is reserved (the build defines {}); choose another name",
            RESERVED
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let t = spec.kind;
    let not_for = |what: &str| {
        format!(
            "`{what}` does not apply to parameters of type `{}`",
            t.as_str()
        )
    };
    let numeric = matches!(
        t,
        ParamType::Integer | ParamType::Port | ParamType::PortList
    );
    if !numeric && (spec.minimum.is_some() || spec.maximum.is_some()) {
        return Err(not_for(if spec.minimum.is_some() {
            "minimum"
        } else {
            "maximum"
        }));
    }
    if !t.is_list() && (spec.min_items.is_some() || spec.max_items.is_some()) {
        return Err(not_for(if spec.min_items.is_some() {
            "min_items"
        } else {
            "max_items"
        }));
    }
    if t != ParamType::String && (spec.min_length.is_some() || spec.max_length.is_some()) {
        return Err(not_for(if spec.min_length.is_some() {
            "min_length"
        } else {
            "max_length"
        }));
    }
    if t != ParamType::Enum && spec.values.is_some() {
        return Err(not_for("values"));
    }
    let pathy = matches!(t, ParamType::Path | ParamType::PathList);
    if !pathy && spec.beneath.is_some() {
        return Err(not_for("beneath"));
    }
    if !pathy && !spec.exclude.is_empty() {
        return Err(not_for("exclude"));
    }
    if !t.is_list() && !spec.disjoint_with.is_empty() {
        return Err(not_for("disjoint_with"));
    }
    if let (Some(a), Some(b)) = (spec.minimum, spec.maximum)
        && a > b
    {
        return Err(format!("`minimum` {a} is greater than `maximum` {b}"));
    }
    if let (Some(a), Some(b)) = (spec.min_items, spec.max_items)
        && a > b
    {
        return Err(format!("`min_items` {a} is greater than `max_items` {b}"));
    }
    if let (Some(a), Some(b)) = (spec.min_length, spec.max_length)
        && a > b
    {
        return Err(format!("`min_length` {a} is greater than `max_length` {b}"));
    }
    if matches!(t, ParamType::Port | ParamType::PortList) {
        for (what, v) in [("minimum", spec.minimum), ("maximum", spec.maximum)] {
            if let Some(v) = v
                && !(1..=65535).contains(&v)
            {
                return Err(format!("`{what}` {v} is not a port (1-65535)"));
            }
        }
    }
    if t == ParamType::Enum {
        let values = spec.values.as_deref().unwrap_or_default();
        if values.is_empty() {
            return Err("an `enum` parameter needs a non-empty `values` list".into());
        }
        for (i, v) in values.iter().enumerate() {
            if v.is_empty() || v.contains(',') || v.chars().any(char::is_control) || v.trim() != v {
                return Err(format!(
                    "enum value `{v}` must be a non-empty word without commas, control characters or surrounding spaces"
                ));
            }
            if values[..i].contains(v) {
                return Err(format!("enum value `{v}` is listed twice"));
            }
        }
    }
    if let Some(b) = &spec.beneath {
        check_beneath(b)?;
    }
    for ex in &spec.exclude {
        check_path_shape(ex, true).map_err(|e| format!("`exclude` entry `{ex}`: {e}"))?;
    }
    for other in &spec.disjoint_with {
        let Some(o) = all.get(other.as_str()) else {
            let known: Vec<&str> = all.keys().map(String::as_str).collect();
            let hint = suggest::did_you_mean(other.as_str(), known.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "`disjoint_with` names `{other}`, which is not a parameter{hint}"
            ));
        };
        if o.kind != t {
            return Err(format!(
                "`disjoint_with` names `{other}`, a `{}` parameter; only lists of the same type (`{}`) can be disjoint",
                o.kind.as_str(),
                t.as_str()
            ));
        }
        if other.as_str() == name {
            return Err("`disjoint_with` names the parameter itself".into());
        }
    }
    match &spec.default {
        None => Ok(None),
        Some(d) => from_json(spec, d)
            .map(Some)
            .map_err(|e| format!("default: `{}` {}", e.value, e.rule)),
    }
}

fn check_beneath(b: &str) -> std::result::Result<(), String> {
    check_path_shape(b, true).map_err(|e| format!("`beneath` `{b}`: {e}"))
}

fn show_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

/// A value that fails its parameter's type or constraints: the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// The offending value as given (one element of a list, or the whole value).
    pub value: String,
    /// The rule, as a sentence fragment: "is not a port: ports are integers 1-65535".
    pub rule: String,
}

fn bad(value: impl Into<String>, rule: impl Into<String>) -> ValueError {
    ValueError {
        value: value.into(),
        rule: rule.into(),
    }
}

/// Parse a command-line value (`--set name=<raw>`) by the declared type into canonical form.
pub fn from_cli(spec: &ParamSpec, raw: &str) -> std::result::Result<Value, ValueError> {
    if spec.kind.is_list() {
        let items: Vec<&str> = if raw.trim().is_empty() {
            Vec::new()
        } else {
            raw.split(',').map(str::trim).collect()
        };
        if items.iter().any(|s| s.is_empty()) {
            return Err(bad(
                raw,
                "has an empty item: list items are separated by single commas",
            ));
        }
        let mut out = Vec::new();
        for item in items {
            out.push(element_from_str(spec, spec.kind.element(), item)?);
        }
        finish_list(spec, out)
    } else {
        element_from_str(spec, spec.kind, raw)
    }
}

/// Check a JSON value (a default in the template file) against the declaration and return
/// its canonical form.
pub fn from_json(spec: &ParamSpec, v: &Value) -> std::result::Result<Value, ValueError> {
    if spec.kind.is_list() {
        let Value::Array(items) = v else {
            return Err(bad(
                show_json(v),
                format!(
                    "is not a list: a `{}` default is a JSON array",
                    spec.kind.as_str()
                ),
            ));
        };
        let mut out = Vec::new();
        for item in items {
            out.push(element_from_json(spec, spec.kind.element(), item)?);
        }
        finish_list(spec, out)
    } else {
        element_from_json(spec, spec.kind, v)
    }
}

fn element_from_json(
    spec: &ParamSpec,
    t: ParamType,
    v: &Value,
) -> std::result::Result<Value, ValueError> {
    match (t, v) {
        (ParamType::Integer | ParamType::Port, Value::Number(n)) => match n.as_i64() {
            Some(i) => element_from_str(spec, t, &i.to_string()),
            None => Err(bad(n.to_string(), "is not a whole number")),
        },
        (ParamType::Boolean, Value::Bool(b)) => Ok(Value::Bool(*b)),
        (
            ParamType::String | ParamType::Path | ParamType::Enum | ParamType::Id,
            Value::String(s),
        ) => element_from_str(spec, t, s),
        _ => Err(bad(
            show_json(v),
            format!("is not a `{}` value", t.as_str()),
        )),
    }
}

fn element_from_str(
    spec: &ParamSpec,
    t: ParamType,
    s: &str,
) -> std::result::Result<Value, ValueError> {
    match t {
        ParamType::Integer | ParamType::Port => {
            let port = t == ParamType::Port;
            let n: i64 = parse_int(s).ok_or_else(|| {
                bad(
                    s,
                    if port {
                        "is not a port: ports are integers 1-65535".to_string()
                    } else {
                        "is not an integer".to_string()
                    },
                )
            })?;
            if port && !(1..=65535).contains(&n) {
                return Err(bad(s, "is not a port: ports are integers 1-65535"));
            }
            if let Some(min) = spec.minimum
                && n < min
            {
                return Err(bad(s, format!("is less than the minimum {min}")));
            }
            if let Some(max) = spec.maximum
                && n > max
            {
                return Err(bad(s, format!("is greater than the maximum {max}")));
            }
            Ok(Value::from(n))
        }
        ParamType::Boolean => match s {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad(s, "is not a boolean: write `true` or `false`")),
        },
        ParamType::String => {
            if s.chars().any(char::is_control) {
                return Err(bad(s, "contains a control character"));
            }
            let len = u32::try_from(s.chars().count()).unwrap_or(u32::MAX);
            if let Some(min) = spec.min_length
                && len < min
            {
                return Err(bad(
                    s,
                    format!("is shorter than {min} character{}", plural(min)),
                ));
            }
            if let Some(max) = spec.max_length
                && len > max
            {
                return Err(bad(
                    s,
                    format!("is longer than {max} character{}", plural(max)),
                ));
            }
            Ok(Value::String(s.into()))
        }
        ParamType::Enum => {
            let values = spec.values.as_deref().unwrap_or_default();
            if values.iter().any(|v| v == s) {
                Ok(Value::String(s.into()))
            } else {
                let list = values
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut rule = format!("is not one of {list}");
                if let Some(near) = suggest::did_you_mean(s, values.iter().map(String::as_str)) {
                    let _ = write!(rule, " (did you mean `{near}`?)");
                }
                Err(bad(s, rule))
            }
        }
        ParamType::Id => {
            if is_valid_id(s) {
                Ok(Value::String(s.into()))
            } else {
                Err(bad(
                    s,
                    "is not an id: 1-64 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit",
                ))
            }
        }
        ParamType::Path => check_path(spec, s).map(|()| Value::String(s.into())),
        ParamType::PortList | ParamType::PathList => {
            Err(bad(s, "is a list inside a list (internal)"))
        }
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Decimal integers only (no `+`, no leading zeros beyond `0`, no spaces, no `0x`).
fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

fn finish_list(spec: &ParamSpec, mut items: Vec<Value>) -> std::result::Result<Value, ValueError> {
    let shown = items.iter().map(scalar_text).collect::<Vec<_>>().join(",");
    for (i, v) in items.iter().enumerate() {
        if items[..i].contains(v) {
            return Err(bad(
                scalar_text(v),
                "is listed twice: a list parameter is a set",
            ));
        }
    }
    let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
    if let Some(min) = spec.min_items
        && n < min
    {
        return Err(bad(
            shown,
            format!(
                "has {n} item{}; at least {min} {} needed",
                plural(n),
                if min == 1 { "is" } else { "are" }
            ),
        ));
    }
    if let Some(max) = spec.max_items
        && n > max
    {
        return Err(bad(
            shown,
            format!("has {n} items; at most {max} are allowed"),
        ));
    }
    items.sort_by(compare_scalars);
    Ok(Value::Array(items))
}

fn compare_scalars(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => scalar_text(a).cmp(&scalar_text(b)),
    }
}

/// A scalar as it is written on the command line (and interpolated into strings).
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------

/// The components of a checked path (`${SCRATCH}` is one component).
pub fn path_components(s: &str) -> Vec<&str> {
    if let Some(var) = PATH_VARIABLES.iter().find(|v| s.starts_with(*v)) {
        let mut out = vec![&s[..var.len()]];
        out.extend(s[var.len()..].split('/').filter(|c| !c.is_empty()));
        out
    } else {
        s.split('/').filter(|c| !c.is_empty()).collect()
    }
}

/// The shape every path value has: absolute (or led by `${SCRATCH}`/`${HOME}` when
/// `allow_var`), no empty, `.` or `..` components, no trailing `/` (except `/` itself), no
/// other `${`, no commas, no control characters, no surrounding spaces.
fn check_path_shape(s: &str, allow_var: bool) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.trim() != s {
        return Err("has leading or trailing spaces".into());
    }
    if s.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    if s.contains(',') {
        return Err("contains a comma (commas separate list items)".into());
    }
    let var = PATH_VARIABLES.iter().find(|v| s.starts_with(*v));
    let rest = match var {
        Some(v) if allow_var => &s[v.len()..],
        Some(v) => {
            return Err(format!(
                "starts with `{v}`, which this parameter does not allow (it takes absolute paths)"
            ));
        }
        None if s.starts_with("${") => {
            return Err(format!(
                "starts with a variable other than {}",
                PATH_VARIABLES
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        None if !s.starts_with('/') => {
            return Err("is not an absolute path (start it with `/`)".into());
        }
        None => s,
    };
    if rest.contains("${") {
        return Err(
            "uses a variable after its start (only a leading `${SCRATCH}` or `${HOME}` is allowed)"
                .into(),
        );
    }
    if rest.is_empty() {
        return Ok(());
    }
    if rest == "/" && var.is_none() {
        return Ok(());
    }
    if rest.ends_with('/') {
        return Err("ends with `/`".into());
    }
    let comps: Vec<&str> = rest.split('/').skip(1).collect();
    if !rest.starts_with('/') {
        return Err(format!(
            "needs a `/` after `{}`",
            var.copied().unwrap_or_default()
        ));
    }
    for c in comps {
        match c {
            "" => return Err("has an empty component (`//`)".into()),
            "." | ".." => return Err(format!("has a `{c}` component; write the path without it")),
            _ => {}
        }
    }
    Ok(())
}

fn check_path(spec: &ParamSpec, s: &str) -> std::result::Result<(), ValueError> {
    check_path_shape(s, spec.beneath.is_some()).map_err(|e| bad(s, e))?;
    let comps = path_components(s);
    if let Some(b) = &spec.beneath {
        let base = path_components(b);
        if comps.len() <= base.len() || comps[..base.len()] != base[..] {
            return Err(bad(s, format!("is not beneath `{b}`")));
        }
    } else if PATH_VARIABLES.iter().any(|v| s.starts_with(v)) {
        return Err(bad(
            s,
            "uses a variable; this parameter takes absolute paths",
        ));
    }
    for ex in &spec.exclude {
        let e = path_components(ex);
        let n = comps.len().min(e.len());
        if comps[..n] == e[..n] {
            let how = match comps.len().cmp(&e.len()) {
                std::cmp::Ordering::Equal => "is",
                std::cmp::Ordering::Greater => "lies beneath",
                std::cmp::Ordering::Less => "contains",
            };
            return Err(bad(
                s,
                format!(
                    "{how} `{ex}`, which this parameter must not overlap ({})",
                    spec.exclude
                        .iter()
                        .map(|x| format!("`{x}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Resolving a parameter set
// ---------------------------------------------------------------------------------------

/// The parameters of one build.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Every parameter's value (set or default), canonical, by name (`format` included).
    pub values: BTreeMap<String, Value>,
    /// The parameters whose value differs from the default (`format` excluded): what names
    /// the plan.
    pub non_default: BTreeMap<String, Value>,
    /// The output format.
    pub format: OutputFormat,
}

/// How the user writes an example value of `p` on the command line.
pub fn example(p: &Param) -> String {
    if let Some(e) = &p.spec.example {
        return e.clone();
    }
    if let Some(d) = &p.default
        && !(d.as_array().is_some_and(Vec::is_empty))
    {
        return scalar_text(d);
    }
    match p.spec.kind {
        ParamType::String => "text".into(),
        ParamType::Integer => p.spec.minimum.or(p.spec.maximum).unwrap_or(1).to_string(),
        ParamType::Boolean => "true".into(),
        ParamType::Port => in_range(p, 443).to_string(),
        ParamType::PortList => {
            let a = in_range(p, 443);
            let b = if a < p.spec.maximum.unwrap_or(65535) {
                a + 1
            } else {
                a - 1
            };
            format!("{a},{b}")
        }
        ParamType::Path | ParamType::PathList => match &p.spec.beneath {
            Some(b) => format!("{b}/dir"),
            None => "/usr/bin/true".into(),
        },
        ParamType::Enum => p
            .spec
            .values
            .as_ref()
            .and_then(|v| v.first().cloned())
            .unwrap_or_default(),
        ParamType::Id => "my-id".into(),
    }
}

/// `want` if the parameter's bounds allow it, else the nearest bound.
fn in_range(p: &Param, want: i64) -> i64 {
    let lo = p.spec.minimum.unwrap_or(1);
    let hi = p.spec.maximum.unwrap_or(65535).max(lo);
    want.clamp(lo, hi)
}

/// The error for a value that fails its parameter.
pub fn value_error(template_id: &str, p: &Param, e: &ValueError) -> Error {
    let shown = if e.value.is_empty() {
        "the empty value".to_string()
    } else {
        format!("`{}`", e.value)
    };
    Error::usage(format!(
        "template `{template_id}`: parameter `{}` ({}): {shown} {}",
        p.name,
        p.spec.kind.as_str(),
        e.rule
    ))
    .with_hint(match &p.spec.why {
        Some(why) => format!("{why}; for example: --set {}={}", p.name, example(p)),
        None => format!("for example: --set {}={}", p.name, example(p)),
    })
}

/// Parse `--set` arguments against `params` and fill in defaults.
///
/// Errors (exit 2, nothing written): an argument without `=`, an unknown name (with "did you
/// mean"), a name set twice, a value failing its type or constraints (naming the parameter,
/// the value, the rule and an example), a required parameter left unset, and list
/// parameters declared disjoint that share an element.
pub fn resolve(template_id: &str, params: &[Param], sets: &[String]) -> Result<Resolved> {
    let mut given: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for arg in sets {
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(
                Error::usage(format!("`--set {arg}` is not of the form key=value")).with_hint(
                    match params.iter().find(|p| !p.builtin) {
                        Some(p) => format!("for example: --set {}={}", p.name, example(p)),
                        None => "for example: --set format=yaml".into(),
                    },
                ),
            );
        };
        let Some(p) = params.iter().find(|p| p.name == key) else {
            let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            let hint = match suggest::did_you_mean(key, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "`{template_id}` takes {}; `nexusmon list-templates` describes them",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(
                Error::usage(format!("template `{template_id}` has no parameter `{key}`"))
                    .with_hint(hint),
            );
        };
        if let Some((first, _)) = given.get(key) {
            return Err(Error::usage(format!(
                "parameter `{key}` is set twice (`--set {key}={first}` and `--set {key}={raw}`)"
            ))
            .with_hint("set each parameter once; lists take comma-separated items, e.g. --set ports=443,8443"));
        }
        let v = from_cli(&p.spec, raw).map_err(|e| value_error(template_id, p, &e))?;
        given.insert(key.to_string(), (raw.to_string(), v));
    }
    let missing: Vec<&Param> = params
        .iter()
        .filter(|p| p.default.is_none() && !given.contains_key(&p.name))
        .collect();
    if !missing.is_empty() {
        return Err(Error::usage(format!(
            "template `{template_id}` needs {}",
            missing
                .iter()
                .map(|p| format!("`{}` ({})", p.name, p.spec.kind.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint(format!(
            "set {}: {}",
            if missing.len() == 1 { "it" } else { "them" },
            missing
                .iter()
                .map(|p| format!("--set {}={}", p.name, example(p)))
                .collect::<Vec<_>>()
                .join(" ")
        )));
    }
    let mut values = BTreeMap::new();
    let mut non_default = BTreeMap::new();
    for p in params {
        let v = match (given.remove(&p.name), &p.default) {
            (Some((_, v)), _) => v,
            (None, Some(d)) => d.clone(),
            (None, None) => continue,
        };
        if !p.builtin && p.default.as_ref() != Some(&v) {
            non_default.insert(p.name.clone(), v.clone());
        }
        values.insert(p.name.clone(), v);
    }
    for p in params {
        for other in &p.spec.disjoint_with {
            let (Some(Value::Array(a)), Some(Value::Array(b))) =
                (values.get(&p.name), values.get(other.as_str()))
            else {
                continue;
            };
            let shared: Vec<String> = a
                .iter()
                .filter(|x| b.contains(x))
                .map(scalar_text)
                .collect();
            if shared.is_empty() && p.spec.kind == ParamType::PathList {
                // Paths overlap when one lies beneath the other: allowing `/usr/bin` while
                // denying `/usr/bin/id` is as contradictory as listing it twice.
                for x in a.iter().filter_map(Value::as_str) {
                    for y in b.iter().filter_map(Value::as_str) {
                        let (cx, cy) = (path_components(x), path_components(y));
                        let n = cx.len().min(cy.len());
                        if cx[..n] == cy[..n] {
                            let how = if cx.len() < cy.len() {
                                "contains"
                            } else {
                                "lies beneath"
                            };
                            return Err(Error::usage(format!(
                                "template `{template_id}`: parameters `{}` and `{other}` must not overlap, but `{x}` ({}) {how} `{y}` ({other})",
                                p.name, p.name
                            ))
                            .with_hint(format!(
                                "list disjoint paths in --set {}=… and --set {other}=…",
                                p.name
                            )));
                        }
                    }
                }
            }
            if !shared.is_empty() {
                return Err(Error::usage(format!(
                    "template `{template_id}`: parameters `{}` and `{other}` must not share items, but both have {}",
                    p.name,
                    shared
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .with_hint(format!(
                    "remove {} from one of them (set them with --set {}=… --set {other}=…)",
                    if shared.len() == 1 { "it" } else { "them" },
                    p.name
                )));
            }
        }
    }
    let format = match values.get(FORMAT_PARAM).and_then(Value::as_str) {
        Some("yaml") => OutputFormat::Yaml,
        _ => OutputFormat::Json,
    };
    Ok(Resolved {
        values,
        non_default,
        format,
    })
}

/// The id of the plan (and of its registry) built from `template_id` with `non_default`
/// parameters: the template id itself when every parameter has its default, otherwise the
/// template id, `-` and the first 8 hex digits of the blake3 of the canonical JSON (JCS) of
/// the non-default parameters. Equal parameter sets give equal ids, whatever order they were
/// set in.
pub fn identity(template_id: &str, non_default: &BTreeMap<String, Value>) -> Result<String> {
    if non_default.is_empty() {
        return Ok(template_id.to_string());
    }
    let bytes = json::canonical(non_default)?;
    let hex = digest::blake3_hex(&bytes);
    Ok(format!("{template_id}-{}", &hex[..8]))
}

#[cfg(test)]
mod tests;
