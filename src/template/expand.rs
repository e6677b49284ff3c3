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

mod check;
mod eval;
mod slug;

pub use check::*;
pub use eval::*;
pub use slug::*;

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
