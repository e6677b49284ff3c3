//! The template expansion language: a small, strict, deterministic language over JSON
//! values. No arbitrary code: strings are interpolated, three directives generate structure,
//! and everything a template refers to is checked before any value is used.
//!
//! **Interpolation.** In every string (and object key), `${name}` is replaced by the value of
//! the parameter, loop variable or build value `name` (`plan_id`, `registry_id`,
//! `template_id`). Names are lowercase; an uppercase `${NAME}` (`${SCRATCH}`,
//! `${LISTEN_PORT}`) is a runtime variable and is left as written for the runner. A string
//! that is exactly one reference keeps the value's type: `"${port}"` is the number `443`,
//! `"${ports}"` the array `[443, 8443]`, `"${flag}"` a boolean. Inside longer strings values
//! are written as text (lists need `|join`). Filters follow a `|`:
//! - `slug`: an id fragment of the value (`/usr/bin/true` → `usr-bin-true`); values whose
//!   fragments would collide with another parameter value's, or that are empty or longer
//!   than 40 characters, get a `-` and 8 hex digits of the blake3 of the value, so different
//!   values always give different ids and the same value always the same id;
//! - `join`: a list as `a, b, c`;
//! - `basename`: the last component of a path.
//!
//! **Directives** are objects whose keys start with `$`:
//! - `{"$for": "x in list", "$item": V}`: one `V` per element (in a list, the items are
//!   spliced in); `{"$for": "x in list", "$key": "id-${x|slug}", "$value": V}`: an object
//!   with one member per element. Lists iterate in their canonical (sorted) order.
//! - `{"$if": "cond", "$then": V, "$else": W}`: `V` or `W`; without `$else` and a false
//!   condition the value is absent (an object member is left out, a list item dropped).
//!   Conditions: `flag`, `not flag` (a boolean, or a list: true when non-empty),
//!   `name == word`, `name != word`.
//! - `"$merge": [O, …]` in an ordinary object: the objects `O` (often `$for`/`$if`
//!   directives) are merged into it. A key produced twice is an error, never an overwrite.
//!
//! An unknown `$` key, an undefined name, a filter that does not fit the value's type, a
//! condition on a non-boolean or an enum word the parameter cannot take are errors when the
//! template is loaded ([`check`]), before any parameter is read.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::params::{Param, scalar_text};
use crate::model::template::ParamType;
use crate::util::{digest, suggest};

/// The directive keys.
pub const DIRECTIVES: [&str; 8] = [
    "$else", "$for", "$if", "$item", "$key", "$merge", "$then", "$value",
];

/// The filters.
pub const FILTERS: [&str; 3] = ["basename", "join", "slug"];

/// Build values every body can use, besides the parameters.
pub const BUILD_VALUES: [&str; 3] = ["plan_id", "registry_id", "template_id"];

/// Longest `slug` output.
const SLUG_MAX: usize = 40;

/// A problem in a template body: where (JSON pointer into the template file) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// JSON pointer into the template document.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

fn err(pointer: &str, message: impl Into<String>) -> ExpandError {
    ExpandError {
        pointer: pointer.to_string(),
        message: message.into(),
        hint: None,
    }
}

fn err_hint(pointer: &str, message: impl Into<String>, hint: impl Into<String>) -> ExpandError {
    ExpandError {
        pointer: pointer.to_string(),
        message: message.into(),
        hint: Some(hint.into()),
    }
}

fn child(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", crate::source::escape_pointer_token(token))
}

// ---------------------------------------------------------------------------------------
// Syntax shared by the check and the evaluation
// ---------------------------------------------------------------------------------------

/// One piece of an interpolated string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text, written as is (runtime `${VARS}` included).
    Text(String),
    /// `${name|filter…}`.
    Ref { name: String, filters: Vec<String> },
}

fn parse_string(s: &str, ptr: &str) -> Result<Vec<Piece>, ExpandError> {
    let mut out: Vec<Piece> = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        text.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let lower = after.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
        let Some(close) = after.find('}') else {
            if lower {
                return Err(err_hint(
                    ptr,
                    format!("`${{` without a closing `}}` in `{s}`"),
                    "write template references as `${name}`",
                ));
            }
            text.push_str(&rest[at..]);
            rest = "";
            break;
        };
        let inner = &after[..close];
        if inner.starts_with(|c: char| c.is_ascii_uppercase()) {
            // A runtime variable: the runner expands it; lint checks it.
            text.push_str("${");
            text.push_str(inner);
            text.push('}');
        } else {
            let mut parts = inner.split('|').map(str::trim);
            let name = parts.next().unwrap_or_default().to_string();
            if !crate::model::template::is_param_name(&name) {
                return Err(err_hint(
                    ptr,
                    format!("`${{{inner}}}` in `{s}` is not a valid reference"),
                    "template references are `${name}` or `${name|filter}` with a lowercase name; runtime variables such as `${SCRATCH}` are uppercase",
                ));
            }
            let filters: Vec<String> = parts.map(str::to_string).collect();
            for f in &filters {
                if !FILTERS.contains(&f.as_str()) {
                    let hint = suggest::did_you_mean(f, FILTERS).map_or_else(
                        || format!("filters are {}", list_words(&FILTERS)),
                        |s| format!("did you mean `{s}`?"),
                    );
                    return Err(err_hint(
                        ptr,
                        format!("unknown filter `{f}` in `${{{inner}}}`"),
                        hint,
                    ));
                }
            }
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            out.push(Piece::Ref { name, filters });
        }
        rest = &after[close + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

fn list_words(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `$if` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cond {
    /// `flag` / `not flag`.
    Truthy { name: String, negate: bool },
    /// `name == word` / `name != word`.
    Compare {
        name: String,
        word: String,
        equal: bool,
    },
}

fn parse_cond(v: &Value, ptr: &str) -> Result<Cond, ExpandError> {
    let hint = "conditions are `flag`, `not flag`, `name == word` or `name != word`, with bare parameter names";
    let Some(s) = v.as_str() else {
        return Err(err_hint(ptr, "a `$if` condition must be a string", hint));
    };
    let s = s.trim();
    if s.contains("${") {
        return Err(err_hint(
            ptr,
            format!("`{s}`: write the parameter name without `${{}}` in a condition"),
            hint,
        ));
    }
    let name_ok = |n: &str| crate::model::template::is_param_name(n);
    for (op, equal) in [("==", true), ("!=", false)] {
        if let Some((l, r)) = s.split_once(op) {
            let (l, r) = (l.trim(), r.trim());
            if !name_ok(l) || r.is_empty() {
                return Err(err_hint(
                    ptr,
                    format!("`{s}` is not a valid condition"),
                    hint,
                ));
            }
            return Ok(Cond::Compare {
                name: l.to_string(),
                word: r.to_string(),
                equal,
            });
        }
    }
    let (negate, name) = match s.strip_prefix("not ") {
        Some(n) => (true, n.trim()),
        None => (false, s),
    };
    if !name_ok(name) {
        return Err(err_hint(
            ptr,
            format!("`{s}` is not a valid condition"),
            hint,
        ));
    }
    Ok(Cond::Truthy {
        name: name.to_string(),
        negate,
    })
}

fn parse_for(v: &Value, ptr: &str) -> Result<(String, String), ExpandError> {
    let hint = "write `\"$for\": \"item in list_parameter\"`";
    let Some(s) = v.as_str() else {
        return Err(err_hint(ptr, "`$for` must be a string", hint));
    };
    let words: Vec<&str> = s.split_whitespace().collect();
    match words.as_slice() {
        [var, "in", list]
            if crate::model::template::is_param_name(var)
                && crate::model::template::is_param_name(list) =>
        {
            Ok(((*var).to_string(), (*list).to_string()))
        }
        _ => Err(err_hint(
            ptr,
            format!("`{s}` is not a loop: expected `<name> in <list parameter>`"),
            hint,
        )),
    }
}

/// What an object is.
enum Form<'a> {
    /// `$for` + `$item`.
    ForItems { spec: &'a Value, item: &'a Value },
    /// `$for` + `$key` + `$value`.
    ForMap {
        spec: &'a Value,
        key: &'a Value,
        value: &'a Value,
    },
    /// `$if` + `$then` (+ `$else`).
    If {
        cond: &'a Value,
        then: &'a Value,
        otherwise: Option<&'a Value>,
    },
    /// An ordinary object, maybe with `$merge`.
    Plain { merge: Option<&'a Value> },
}

fn form<'a>(m: &'a Map<String, Value>, ptr: &str) -> Result<Form<'a>, ExpandError> {
    for k in m.keys() {
        if k.starts_with('$') && !DIRECTIVES.contains(&k.as_str()) {
            let hint = suggest::did_you_mean(k, DIRECTIVES).map_or_else(
                || {
                    format!(
                        "directives are {}; other keys may not start with `$`",
                        list_words(&DIRECTIVES)
                    )
                },
                |s| format!("did you mean `{s}`?"),
            );
            return Err(err_hint(
                &child(ptr, k),
                format!("unknown directive `{k}`"),
                hint,
            ));
        }
    }
    let has = |k: &str| m.contains_key(k);
    let only = |allowed: &[&str], what: &str| -> Result<(), ExpandError> {
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(err_hint(
                    &child(ptr, k),
                    format!("`{k}` does not belong in a {what}"),
                    format!("a {what} has only {}", list_words(allowed)),
                ));
            }
        }
        Ok(())
    };
    if let Some(spec) = m.get("$for") {
        if has("$item") {
            only(&["$for", "$item"], "`$for`/`$item` list")?;
            return Ok(Form::ForItems {
                spec,
                item: &m["$item"],
            });
        }
        only(&["$for", "$key", "$value"], "`$for`/`$key`/`$value` map")?;
        let (Some(key), Some(value)) = (m.get("$key"), m.get("$value")) else {
            return Err(err_hint(
                ptr,
                "a `$for` needs `$item` (a list) or `$key` and `$value` (an object)",
                "e.g. {\"$for\": \"port in ports\", \"$key\": \"connect-${port}\", \"$value\": {…}}",
            ));
        };
        return Ok(Form::ForMap { spec, key, value });
    }
    if let Some(cond) = m.get("$if") {
        only(&["$if", "$then", "$else"], "`$if`")?;
        let Some(then) = m.get("$then") else {
            return Err(err_hint(
                ptr,
                "an `$if` needs `$then`",
                "e.g. {\"$if\": \"flag\", \"$then\": …, \"$else\": …}",
            ));
        };
        return Ok(Form::If {
            cond,
            then,
            otherwise: m.get("$else"),
        });
    }
    for k in ["$item", "$key", "$value", "$then", "$else"] {
        if has(k) {
            return Err(err_hint(
                &child(ptr, k),
                format!("`{k}` outside a `$for` or `$if`"),
                "`$item`, `$key` and `$value` belong to `$for`; `$then` and `$else` to `$if`",
            ));
        }
    }
    Ok(Form::Plain {
        merge: m.get("$merge"),
    })
}

// ---------------------------------------------------------------------------------------
// The static check
// ---------------------------------------------------------------------------------------

/// The type of a name in scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ty {
    kind: ParamType,
}

/// What the static check knows about names.
#[derive(Debug, Clone)]
pub struct Types {
    names: BTreeMap<String, Ty>,
    enums: BTreeMap<String, Vec<String>>,
}

impl Types {
    /// The names a body may use: the parameters (with `format`) and the build values.
    pub fn new(params: &[Param]) -> Self {
        let mut names = BTreeMap::new();
        let mut enums = BTreeMap::new();
        for p in params {
            names.insert(p.name.clone(), Ty { kind: p.spec.kind });
            if let Some(v) = &p.spec.values {
                enums.insert(p.name.clone(), v.clone());
            }
        }
        for b in BUILD_VALUES {
            names.insert(
                b.to_string(),
                Ty {
                    kind: ParamType::Id,
                },
            );
        }
        Self { names, enums }
    }

    fn known(&self) -> Vec<&str> {
        self.names.keys().map(String::as_str).collect()
    }

    fn lookup(&self, name: &str, ptr: &str) -> Result<Ty, ExpandError> {
        self.names.get(name).copied().ok_or_else(|| {
            let known = self.known();
            let hint = suggest::did_you_mean(name, known.iter().copied()).map_or_else(
                || format!("names in scope here: {}", list_words(&known)),
                |s| format!("did you mean `{s}`?"),
            );
            err_hint(ptr, format!("`{name}` is not defined"), hint)
        })
    }
}

/// Check a body (`plan`, `probes` or `profiles`) without values: every directive, name,
/// filter and condition. Returns every problem found.
pub fn check(body: &Map<String, Value>, ptr: &str, types: &Types) -> Vec<ExpandError> {
    let mut errors = Vec::new();
    check_object(body, ptr, types, &mut errors);
    errors
}

fn check_value(v: &Value, ptr: &str, types: &Types, errors: &mut Vec<ExpandError>) {
    match v {
        Value::String(s) => {
            if let Err(e) = check_string(s, ptr, types) {
                errors.push(e);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_value(item, &child(ptr, &i.to_string()), types, errors);
            }
        }
        Value::Object(m) => check_object(m, ptr, types, errors),
        _ => {}
    }
}

/// The type a string evaluates to, if it is exactly one reference.
fn check_string(s: &str, ptr: &str, types: &Types) -> Result<Option<Ty>, ExpandError> {
    let pieces = parse_string(s, ptr)?;
    let whole = pieces.len() == 1;
    let mut ty_out = None;
    for p in &pieces {
        if let Piece::Ref { name, filters } = p {
            let mut ty = types.lookup(name, ptr)?;
            for f in filters {
                ty = filter_type(f, ty, name, ptr)?;
            }
            if !whole && ty.kind.is_list() {
                return Err(err_hint(
                    ptr,
                    format!("`${{{name}}}` is a list inside the text `{s}`"),
                    format!(
                        "write `${{{name}|join}}` to list it as text, or use the list on its own as `\"${{{name}}}\"`"
                    ),
                ));
            }
            if whole {
                ty_out = Some(ty);
            }
        }
    }
    Ok(ty_out)
}

fn filter_type(f: &str, ty: Ty, name: &str, ptr: &str) -> Result<Ty, ExpandError> {
    match f {
        "slug" if !ty.kind.is_list() => Ok(Ty {
            kind: ParamType::Id,
        }),
        "join" if ty.kind.is_list() => Ok(Ty {
            kind: ParamType::String,
        }),
        "basename" if matches!(ty.kind, ParamType::Path | ParamType::String) => Ok(Ty {
            kind: ParamType::String,
        }),
        _ => Err(err(
            ptr,
            format!(
                "the filter `{f}` does not apply to `{name}` (a `{}` value): `slug` takes a single value, `join` a list, `basename` a path",
                ty.kind.as_str()
            ),
        )),
    }
}

fn check_object(m: &Map<String, Value>, ptr: &str, types: &Types, errors: &mut Vec<ExpandError>) {
    let shape = match form(m, ptr) {
        Ok(f) => f,
        Err(e) => {
            errors.push(e);
            return;
        }
    };
    match shape {
        Form::ForItems { spec, item } => {
            let fp = child(ptr, "$for");
            match for_scope(spec, &fp, types) {
                Ok(inner) => check_value(item, &child(ptr, "$item"), &inner, errors),
                Err(e) => errors.push(e),
            }
        }
        Form::ForMap { spec, key, value } => {
            let fp = child(ptr, "$for");
            match for_scope(spec, &fp, types) {
                Ok(inner) => {
                    let kp = child(ptr, "$key");
                    match key.as_str() {
                        None => errors.push(err(&kp, "`$key` must be a string")),
                        Some(text) => match check_string(text, &kp, &inner) {
                            Ok(Some(t)) if t.kind.is_list() => {
                                errors.push(err(&kp, "`$key` must not be a list"));
                            }
                            Ok(_) => {}
                            Err(e) => errors.push(e),
                        },
                    }
                    check_value(value, &child(ptr, "$value"), &inner, errors);
                }
                Err(e) => errors.push(e),
            }
        }
        Form::If {
            cond,
            then,
            otherwise,
        } => {
            let cp = child(ptr, "$if");
            if let Err(e) = parse_cond(cond, &cp).and_then(|c| check_cond(&c, &cp, types)) {
                errors.push(e);
            }
            check_value(then, &child(ptr, "$then"), types, errors);
            if let Some(o) = otherwise {
                check_value(o, &child(ptr, "$else"), types, errors);
            }
        }
        Form::Plain { merge } => {
            for (k, v) in m {
                if k == "$merge" {
                    continue;
                }
                let kp = child(ptr, k);
                match check_string(k, &kp, types) {
                    Ok(Some(t)) if t.kind.is_list() => {
                        errors.push(err(&kp, format!("the key `{k}` would be a list")));
                    }
                    Ok(_) => {}
                    Err(e) => errors.push(e),
                }
                check_value(v, &kp, types, errors);
            }
            if let Some(mv) = merge {
                let mp = child(ptr, "$merge");
                match mv {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            let ip = child(&mp, &i.to_string());
                            if item.is_object() {
                                check_value(item, &ip, types, errors);
                            } else {
                                errors.push(err(
                                    &ip,
                                    "a `$merge` item must be an object (often a `$for`/`$key` or `$if` directive)",
                                ));
                            }
                        }
                    }
                    _ => errors.push(err(&mp, "`$merge` must be a list of objects")),
                }
            }
        }
    }
}

fn for_scope(spec: &Value, ptr: &str, types: &Types) -> Result<Types, ExpandError> {
    let (var, list) = parse_for(spec, ptr)?;
    let ty = types.lookup(&list, ptr)?;
    if !ty.kind.is_list() {
        return Err(err(
            ptr,
            format!(
                "`{list}` is a `{}` parameter; `$for` loops over lists (`port-list`, `path-list`)",
                ty.kind.as_str()
            ),
        ));
    }
    if types.names.contains_key(&var) {
        return Err(err_hint(
            ptr,
            format!("the loop variable `{var}` hides a name already in scope"),
            "choose another loop variable name",
        ));
    }
    let mut inner = types.clone();
    inner.names.insert(
        var,
        Ty {
            kind: ty.kind.element(),
        },
    );
    Ok(inner)
}

fn check_cond(c: &Cond, ptr: &str, types: &Types) -> Result<(), ExpandError> {
    match c {
        Cond::Truthy { name, .. } => {
            let ty = types.lookup(name, ptr)?;
            if ty.kind == ParamType::Boolean || ty.kind.is_list() {
                Ok(())
            } else {
                Err(err_hint(
                    ptr,
                    format!(
                        "`{name}` is a `{}` value, not a boolean or a list",
                        ty.kind.as_str()
                    ),
                    format!("compare it instead: `{name} == <word>`"),
                ))
            }
        }
        Cond::Compare { name, word, .. } => {
            let ty = types.lookup(name, ptr)?;
            if ty.kind.is_list() {
                return Err(err(
                    ptr,
                    format!("`{name}` is a list; compare single values only"),
                ));
            }
            if let Some(values) = types.enums.get(name)
                && !values.contains(word)
            {
                let hint = suggest::did_you_mean(word, values.iter().map(String::as_str))
                    .map_or_else(
                        || format!("`{name}` takes {}", values.join(", ")),
                        |s| format!("did you mean `{s}`?"),
                    );
                return Err(err_hint(
                    ptr,
                    format!("`{name}` can never be `{word}`"),
                    hint,
                ));
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------

/// Values in scope, and the slug table of the build.
#[derive(Debug, Clone)]
pub struct Env {
    values: BTreeMap<String, Value>,
    /// Loop variables, innermost last (for messages).
    loops: Vec<(String, Value)>,
    slugs: SlugTable,
}

impl Env {
    /// The parameter values and build values of one build.
    pub fn new(values: &BTreeMap<String, Value>, build: &[(&str, &str)]) -> Self {
        let mut all = values.clone();
        for (k, v) in build {
            all.insert((*k).to_string(), Value::String((*v).to_string()));
        }
        Self {
            slugs: SlugTable::new(values),
            values: all,
            loops: Vec::new(),
        }
    }

    fn with(&self, var: &str, v: Value) -> Self {
        let mut e = self.clone();
        e.values.insert(var.to_string(), v.clone());
        e.loops.push((var.to_string(), v));
        e
    }

    fn context(&self) -> String {
        if self.loops.is_empty() {
            String::new()
        } else {
            format!(
                " (with {})",
                self.loops
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", scalar_text(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// Evaluate a body to a JSON object.
pub fn eval_body(
    body: &Map<String, Value>,
    ptr: &str,
    env: &Env,
) -> Result<Map<String, Value>, ExpandError> {
    match eval_object(body, ptr, env)? {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(err(ptr, "the body must evaluate to an object")),
        None => Err(err(ptr, "the body evaluates to nothing")),
    }
}

fn eval(v: &Value, ptr: &str, env: &Env) -> Result<Option<Value>, ExpandError> {
    match v {
        Value::String(s) => eval_string(s, ptr, env).map(Some),
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                out.extend(eval_item(item, &child(ptr, &i.to_string()), env)?);
            }
            Ok(Some(Value::Array(out)))
        }
        Value::Object(m) => eval_object(m, ptr, env),
        other => Ok(Some(other.clone())),
    }
}

/// A list item: directives contribute zero or more items (`$for` its items, `$if` its
/// branch's contribution), anything else one.
fn eval_item(v: &Value, ptr: &str, env: &Env) -> Result<Vec<Value>, ExpandError> {
    let Value::Object(m) = v else {
        return Ok(eval(v, ptr, env)?.into_iter().collect());
    };
    match form(m, ptr)? {
        Form::ForItems { spec, item } => {
            let mut out = Vec::new();
            for (var, elem) in loop_elements(spec, &child(ptr, "$for"), env)? {
                out.extend(eval_item(
                    item,
                    &child(ptr, "$item"),
                    &env.with(&var, elem),
                )?);
            }
            Ok(out)
        }
        Form::If {
            cond,
            then,
            otherwise,
        } => {
            let cp = child(ptr, "$if");
            if truth(&parse_cond(cond, &cp)?, &cp, env)? {
                eval_item(then, &child(ptr, "$then"), env)
            } else if let Some(o) = otherwise {
                eval_item(o, &child(ptr, "$else"), env)
            } else {
                Ok(Vec::new())
            }
        }
        Form::ForMap { .. } => Err(err_hint(
            ptr,
            "a `$for` with `$key`/`$value` makes an object, not list items",
            "in a list, use `$item`",
        )),
        Form::Plain { .. } => Ok(eval_object(m, ptr, env)?.into_iter().collect()),
    }
}

fn loop_elements(spec: &Value, ptr: &str, env: &Env) -> Result<Vec<(String, Value)>, ExpandError> {
    let (var, list) = parse_for(spec, ptr)?;
    match env.values.get(&list) {
        Some(Value::Array(items)) => Ok(items.iter().map(|i| (var.clone(), i.clone())).collect()),
        Some(_) => Err(err(ptr, format!("`{list}` is not a list"))),
        None => Err(err(ptr, format!("`{list}` is not defined"))),
    }
}

fn eval_object(m: &Map<String, Value>, ptr: &str, env: &Env) -> Result<Option<Value>, ExpandError> {
    match form(m, ptr)? {
        Form::ForItems { .. } => Ok(Some(Value::Array(eval_item(
            &Value::Object(m.clone()),
            ptr,
            env,
        )?))),
        Form::ForMap { spec, key, value } => {
            let mut out = Map::new();
            let mut origin: BTreeMap<String, String> = BTreeMap::new();
            for (var, elem) in loop_elements(spec, &child(ptr, "$for"), env)? {
                let inner = env.with(&var, elem);
                let kp = child(ptr, "$key");
                let k = key_text(key, &kp, &inner)?;
                if let Some(v) = eval(value, &child(ptr, "$value"), &inner)? {
                    let here = format!("{kp}{}", inner.context());
                    insert_unique(&mut out, &mut origin, k, v, &here)?;
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Form::If {
            cond,
            then,
            otherwise,
        } => {
            let cp = child(ptr, "$if");
            if truth(&parse_cond(cond, &cp)?, &cp, env)? {
                eval(then, &child(ptr, "$then"), env)
            } else if let Some(o) = otherwise {
                eval(o, &child(ptr, "$else"), env)
            } else {
                Ok(None)
            }
        }
        Form::Plain { merge } => {
            let mut out = Map::new();
            let mut origin: BTreeMap<String, String> = BTreeMap::new();
            for (k, v) in m {
                if k == "$merge" {
                    continue;
                }
                let kp = child(ptr, k);
                let key = key_text(&Value::String(k.clone()), &kp, env)?;
                if let Some(v) = eval(v, &kp, env)? {
                    let here = format!("{kp}{}", env.context());
                    insert_unique(&mut out, &mut origin, key, v, &here)?;
                }
            }
            if let Some(mv) = merge {
                let mp = child(ptr, "$merge");
                let Value::Array(items) = mv else {
                    return Err(err(&mp, "`$merge` must be a list of objects"));
                };
                for (i, item) in items.iter().enumerate() {
                    let ip = child(&mp, &i.to_string());
                    match eval(item, &ip, env)? {
                        None => {}
                        Some(Value::Object(add)) => {
                            for (k, v) in add {
                                let here = format!("{ip}{}", env.context());
                                insert_unique(&mut out, &mut origin, k, v, &here)?;
                            }
                        }
                        Some(_) => {
                            return Err(err(&ip, "a `$merge` item must evaluate to an object"));
                        }
                    }
                }
            }
            Ok(Some(Value::Object(out)))
        }
    }
}

fn insert_unique(
    out: &mut Map<String, Value>,
    origin: &mut BTreeMap<String, String>,
    k: String,
    v: Value,
    here: &str,
) -> Result<(), ExpandError> {
    if let Some(first) = origin.get(&k) {
        return Err(err_hint(
            here,
            format!("the key `{k}` is produced twice (first by {first})"),
            "keys must be unique: derive generated keys from the loop value, e.g. `exec-${path|slug}`",
        ));
    }
    origin.insert(k.clone(), here.to_string());
    out.insert(k, v);
    Ok(())
}

fn key_text(key: &Value, ptr: &str, env: &Env) -> Result<String, ExpandError> {
    let Some(s) = key.as_str() else {
        return Err(err(ptr, "`$key` must be a string"));
    };
    match eval_string(s, ptr, env)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(err(
            ptr,
            format!(
                "the key `{s}` does not evaluate to a string{}",
                env.context()
            ),
        )),
    }
}

fn eval_string(s: &str, ptr: &str, env: &Env) -> Result<Value, ExpandError> {
    let pieces = parse_string(s, ptr)?;
    if let [Piece::Ref { name, filters }] = pieces.as_slice() {
        return resolve_ref(name, filters, ptr, env);
    }
    let mut out = String::new();
    for p in &pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Ref { name, filters } => match resolve_ref(name, filters, ptr, env)? {
                Value::String(s) => out.push_str(&s),
                Value::Number(n) => out.push_str(&n.to_string()),
                Value::Bool(b) => out.push_str(&b.to_string()),
                _ => {
                    return Err(err_hint(
                        ptr,
                        format!("`${{{name}}}` is a list inside the text `{s}`"),
                        format!("write `${{{name}|join}}`"),
                    ));
                }
            },
        }
    }
    Ok(Value::String(out))
}

fn resolve_ref(name: &str, filters: &[String], ptr: &str, env: &Env) -> Result<Value, ExpandError> {
    let mut v = env
        .values
        .get(name)
        .cloned()
        .ok_or_else(|| err(ptr, format!("`{name}` is not defined")))?;
    for f in filters {
        v = match (f.as_str(), &v) {
            ("slug", Value::Array(_))
            | ("join" | "basename", Value::Bool(_) | Value::Number(_)) => {
                return Err(err(
                    ptr,
                    format!("the filter `{f}` does not apply to `{name}`"),
                ));
            }
            ("slug", other) => Value::String(env.slugs.slug(&scalar_text(other))),
            ("join", Value::Array(items)) => {
                Value::String(items.iter().map(scalar_text).collect::<Vec<_>>().join(", "))
            }
            ("basename", Value::String(s)) => {
                Value::String(s.rsplit('/').next().unwrap_or_default().to_string())
            }
            _ => {
                return Err(err(
                    ptr,
                    format!("the filter `{f}` does not apply to `{name}`"),
                ));
            }
        };
    }
    Ok(v)
}

fn truth(c: &Cond, ptr: &str, env: &Env) -> Result<bool, ExpandError> {
    let get = |name: &str| {
        env.values
            .get(name)
            .ok_or_else(|| err(ptr, format!("`{name}` is not defined")))
    };
    match c {
        Cond::Truthy { name, negate } => {
            let b = match get(name)? {
                Value::Bool(b) => *b,
                Value::Array(a) => !a.is_empty(),
                _ => return Err(err(ptr, format!("`{name}` is not a boolean or a list"))),
            };
            Ok(b != *negate)
        }
        Cond::Compare { name, word, equal } => {
            let v = get(name)?;
            Ok((scalar_text(v) == *word) == *equal)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Slugs
// ---------------------------------------------------------------------------------------

/// The `slug` of every value of one build. Each value's readable fragment is used unless
/// another value of the same build has the same fragment (or the fragment is empty or too
/// long); then the fragment gets 8 hex digits of the blake3 of the value. A pure function of
/// the parameter set, so every use of a value in a template gives the same id.
#[derive(Debug, Clone, Default)]
pub struct SlugTable {
    ambiguous: BTreeSet<String>,
}

impl SlugTable {
    /// The table of the values in `values` (list elements included).
    pub fn new(values: &BTreeMap<String, Value>) -> Self {
        let mut texts: BTreeSet<String> = BTreeSet::new();
        for v in values.values() {
            match v {
                Value::Array(items) => texts.extend(items.iter().map(scalar_text)),
                other => {
                    texts.insert(scalar_text(other));
                }
            }
        }
        let mut by_base: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in texts {
            by_base.entry(slug_base(&t)).or_default().push(t);
        }
        let ambiguous = by_base
            .into_iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(b, _)| b)
            .collect();
        Self { ambiguous }
    }

    /// The id fragment of `text`.
    pub fn slug(&self, text: &str) -> String {
        let base = slug_base(text);
        if base.is_empty() || base.len() > SLUG_MAX || self.ambiguous.contains(&base) {
            let hash = &digest::blake3_hex(text.as_bytes())[..8];
            let keep: String = base.chars().take(SLUG_MAX - 9).collect();
            let keep = keep.trim_end_matches(['-', '.', '_']);
            if keep.is_empty() {
                hash.to_string()
            } else {
                format!("{keep}-{hash}")
            }
        } else {
            base
        }
    }
}

/// The readable fragment: `${SCRATCH}` → `scratch`, `${HOME}` → `home`, lowercase, runs of
/// anything but `[a-z0-9._]` → `-`, no leading or trailing `-`, `.`, `_`.
fn slug_base(text: &str) -> String {
    let t = text
        .replacen("${SCRATCH}", "scratch", 1)
        .replacen("${HOME}", "home", 1)
        .to_lowercase();
    let mut out = String::new();
    for c in t.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(['-', '.', '_']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::params::format_param;
    use serde_json::json;

    fn types() -> Types {
        let mut ports = format_param(crate::model::template::OutputFormat::Json);
        ports.name = "ports".into();
        ports.spec.kind = ParamType::PortList;
        ports.spec.values = None;
        let mut flag = ports.clone();
        flag.name = "flag".into();
        flag.spec.kind = ParamType::Boolean;
        let mut progs = ports.clone();
        progs.name = "progs".into();
        progs.spec.kind = ParamType::PathList;
        Types::new(&[
            format_param(crate::model::template::OutputFormat::Json),
            ports,
            flag,
            progs,
        ])
    }

    fn env() -> Env {
        let mut v = BTreeMap::new();
        v.insert("ports".to_string(), json!([443, 8443]));
        v.insert("flag".to_string(), json!(false));
        v.insert("format".to_string(), json!("json"));
        v.insert(
            "progs".to_string(),
            json!(["/usr/bin/a-b", "/usr/bin-a/b", "/usr/bin/true"]),
        );
        Env::new(
            &v,
            &[("plan_id", "p"), ("registry_id", "p"), ("template_id", "t")],
        )
    }

    #[allow(clippy::needless_pass_by_value)]
    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn whole_references_keep_their_type() {
        let body = obj(
            json!({"a": "${ports}", "b": "connect-${ports|join}", "c": "${flag}", "d": "${SCRATCH}/x-${plan_id}"}),
        );
        assert!(check(&body, "", &types()).is_empty());
        let out = eval_body(&body, "", &env()).unwrap();
        assert_eq!(out["a"], json!([443, 8443]));
        assert_eq!(out["b"], json!("connect-443, 8443"));
        assert_eq!(out["c"], json!(false));
        assert_eq!(out["d"], json!("${SCRATCH}/x-p"));
    }

    #[test]
    fn for_if_and_merge() {
        let body = obj(json!({
            "static": 1,
            "$merge": [
                {"$for": "port in ports", "$key": "connect-${port}", "$value": {"port": "${port}"}},
                {"$if": "flag", "$then": {"udp": 1}},
                {"$if": "not flag", "$then": {"noudp": 1}}
            ],
            "list": [0, {"$for": "p in ports", "$item": "${p}"}, {"$if": "flag", "$then": 9}, {"$if": "format == yaml", "$then": 8, "$else": 7}]
        }));
        assert_eq!(check(&body, "", &types()), vec![]);
        let out = eval_body(&body, "", &env()).unwrap();
        assert_eq!(out["connect-443"], json!({"port": 443}));
        assert_eq!(out["connect-8443"], json!({"port": 8443}));
        assert_eq!(out["noudp"], json!(1));
        assert!(out.get("udp").is_none());
        assert_eq!(out["list"], json!([0, 443, 8443, 7]));
    }

    #[test]
    fn static_errors_name_the_place() {
        let t = types();
        let e = check(&obj(json!({"a": "${prots}"})), "/plan", &t);
        assert_eq!(e[0].pointer, "/plan/a");
        assert_eq!(e[0].hint.as_deref(), Some("did you mean `ports`?"));
        let e = check(&obj(json!({"a": {"$fro": "x in ports"}})), "", &t);
        assert!(e[0].message.contains("unknown directive `$fro`"), "{e:?}");
        assert_eq!(e[0].hint.as_deref(), Some("did you mean `$for`?"));
        let e = check(
            &obj(json!({"a": {"$if": "format == yml", "$then": 1}})),
            "",
            &t,
        );
        assert!(e[0].message.contains("can never be `yml`"), "{e:?}");
        let e = check(&obj(json!({"a": "x${ports}"})), "", &t);
        assert!(e[0].message.contains("list inside the text"), "{e:?}");
        let e = check(
            &obj(json!({"a": {"$for": "x in flag", "$item": 1}})),
            "",
            &t,
        );
        assert!(e[0].message.contains("loops over lists"), "{e:?}");
        let e = check(&obj(json!({"a": "${ports|slgu}"})), "", &t);
        assert!(
            e[0].hint.as_deref() == Some("did you mean `slug`?"),
            "{e:?}"
        );
        let e = check(
            &obj(json!({"a": {"$if": "ports == 3", "$then": 1}})),
            "",
            &t,
        );
        assert!(e[0].message.contains("list"), "{e:?}");
        let e = check(&obj(json!({"a": "${unclosed"})), "", &t);
        assert!(e[0].message.contains("without a closing"), "{e:?}");
        // Runtime variables pass through untouched.
        assert!(check(&obj(json!({"a": "${SCRATCH}/${LISTEN_PORT}"})), "", &t).is_empty());
    }

    #[test]
    fn duplicate_generated_keys_are_errors() {
        let body = obj(
            json!({"connect-443": 1, "$merge": [{"$for": "p in ports", "$key": "connect-${p}", "$value": 2}]}),
        );
        let e = eval_body(&body, "", &env()).unwrap_err();
        assert!(e.message.contains("produced twice"), "{e:?}");
    }

    #[test]
    fn slugs_are_readable_unique_and_bounded() {
        let e = env();
        let s = |t: &str| e.slugs.slug(t);
        assert_eq!(s("/usr/bin/true"), "usr-bin-true");
        assert_eq!(s("443"), "443");
        assert_eq!(s("${SCRATCH}/ws"), "scratch-ws");
        // `/usr/bin/a-b` and `/usr/bin-a/b` would both be `usr-bin-a-b`.
        let (a, b) = (s("/usr/bin/a-b"), s("/usr/bin-a/b"));
        assert_ne!(a, b);
        assert!(
            a.starts_with("usr-bin-a-b-") && a.len() == "usr-bin-a-b-".len() + 8,
            "{a}"
        );
        let long = format!("/{}", "x".repeat(100));
        assert!(s(&long).len() <= SLUG_MAX);
        assert!(crate::model::id::is_valid_id(&s(&long)));
        assert!(crate::model::id::is_valid_id(&s("/")));
        assert_eq!(s("/"), s("/"));
    }
}
