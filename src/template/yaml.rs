//! A small deterministic YAML emitter for JSON values (generated plans and registries).
//!
//! Block style with two-space indentation, keys sorted (the order of a `serde_json::Map`),
//! short lists of scalars in flow style (`[read, exec]`), empty collections as `{}` / `[]`.
//! A string is written plain only when it cannot be read back as anything else: it has only
//! "safe" characters, does not start like an indicator, and is not a word YAML 1.1 or 1.2
//! resolves to another type (`yes`, `no`, `on`, `null`, `~`, `true`, numbers, `.inf`, …).
//! Everything else is double-quoted with JSON-style escapes, which YAML reads identically.
//! The build parses the emitted text back and compares it with the JSON value before
//! writing, so a YAML file that would load differently is never written.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Longest flow-style list line before block style is used.
const FLOW_MAX: usize = 72;

/// The YAML text of `v` (a trailing newline included).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => block_map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => block_seq(a, 0, &mut out),
        other => {
            out.push_str(&scalar_or_empty(other));
            out.push('\n');
        }
    }
    out
}

fn indent(n: usize, out: &mut String) {
    for _ in 0..n {
        out.push_str("  ");
    }
}

fn block_map(m: &Map<String, Value>, level: usize, out: &mut String) {
    for (k, v) in m {
        indent(level, out);
        out.push_str(&string(k));
        out.push(':');
        value_after_key(v, level, out);
    }
}

fn value_after_key(v: &Value, level: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            block_map(m, level + 1, out);
        }
        Value::Array(a) if !a.is_empty() => {
            if let Some(flow) = flow_seq(a) {
                out.push(' ');
                out.push_str(&flow);
                out.push('\n');
            } else {
                out.push('\n');
                block_seq(a, level + 1, out);
            }
        }
        other => {
            out.push(' ');
            out.push_str(&scalar_or_empty(other));
            out.push('\n');
        }
    }
}

fn block_seq(a: &[Value], level: usize, out: &mut String) {
    for item in a {
        indent(level, out);
        out.push('-');
        match item {
            Value::Object(m) if !m.is_empty() => {
                // The first key on the dash line, the rest aligned under it.
                let mut first = true;
                for (k, v) in m {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        indent(level + 1, out);
                    }
                    out.push_str(&string(k));
                    out.push(':');
                    value_after_key(v, level + 1, out);
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                if let Some(flow) = flow_seq(inner) {
                    out.push(' ');
                    out.push_str(&flow);
                    out.push('\n');
                } else {
                    out.push('\n');
                    block_seq(inner, level + 1, out);
                }
            }
            other => {
                out.push(' ');
                out.push_str(&scalar_or_empty(other));
                out.push('\n');
            }
        }
    }
}

/// `[a, b]` for a short list of scalars.
fn flow_seq(a: &[Value]) -> Option<String> {
    if a.iter().any(|v| v.is_object() || v.is_array()) {
        return None;
    }
    let s = format!(
        "[{}]",
        a.iter().map(scalar_or_empty).collect::<Vec<_>>().join(", ")
    );
    (s.len() <= FLOW_MAX).then_some(s)
}

fn scalar_or_empty(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string as a plain scalar when that is unambiguous, else double-quoted.
pub fn string(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else {
        quoted(s)
    }
}

/// Words YAML 1.1 or 1.2 resolves to null or booleans (case variants included).
const RESERVED_WORDS: [&str; 14] = [
    "null", "~", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", ".nan", "-.inf",
    "+.inf",
];

fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    // Only letters, digits and a few punctuation marks that never start or end anything.
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' ');
    if !s.chars().all(safe) {
        return false;
    }
    if !(first.is_ascii_alphabetic() || first == '/' || first == '_') {
        return false;
    }
    if s.ends_with(' ') || s.contains("  ") {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if RESERVED_WORDS.contains(&lower.as_str()) {
        return false;
    }
    !looks_numeric(s)
}

/// Anything a YAML 1.1 or 1.2 reader might take for a number (sexagesimal, `0x`, `1_000`,
/// exponents): a string starting with a letter can only be `.inf`/`.nan`-like or a base
/// prefix, which the first-character rule already excludes except `e`-less words; be
/// conservative and quote anything whose first character is a digit, sign or dot.
fn looks_numeric(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '.')
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20
                || c == '\u{7f}'
                || c == '\u{85}'
                || c == '\u{2028}'
                || c == '\u{2029}'
                || c == '\u{feff}' =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Document, Format};
    use serde_json::json;

    fn round_trip(v: &Value) -> Value {
        let text = to_yaml(v);
        Document::parse_as("t.yaml", text.clone(), Format::Yaml)
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"))
            .value()
    }

    #[test]
    fn awkward_strings_round_trip() {
        let awkward = [
            "yes",
            "no",
            "Yes",
            "NO",
            "on",
            "Off",
            "y",
            "n",
            "true",
            "False",
            "null",
            "Null",
            "~",
            "",
            " ",
            " lead",
            "trail ",
            "1",
            "0",
            "-1",
            "1.0",
            "1e3",
            ".5",
            ".inf",
            "-.inf",
            ".nan",
            "0x1F",
            "0o17",
            "1_000",
            "12:30",
            "@x",
            "`x`",
            ":",
            "a: b",
            "a:b",
            "- x",
            "-",
            "?",
            "? x",
            "#c",
            "a #c",
            "a#c",
            "{a}",
            "[x]",
            "*ref",
            "&anc",
            "!tag",
            "%dir",
            "|",
            ">",
            "'",
            "\"",
            "'quoted'",
            "back\\slash",
            "multi\nline",
            "tab\there",
            "cr\r",
            "bell\u{7}",
            "nel\u{85}",
            "bom\u{feff}",
            "unicode é ü 日本",
            "${SCRATCH}/ws",
            "127.0.0.1:443",
            "/usr/bin/true",
            "a  b",
            "---",
            "...",
            "=",
            "<<",
        ];
        for s in awkward {
            let v = json!({ s: s, "list": [s, s], "nested": {"k": [{"x": s}]} });
            assert_eq!(round_trip(&v), v, "{s:?}:\n{}", to_yaml(&v));
        }
    }

    #[test]
    fn numbers_booleans_nulls_and_empties() {
        let v = json!({
            "int": 443, "neg": -3, "big": 18_446_744_073_709_551_615u64, "float": 1.5,
            "t": true, "f": false, "null": null, "empty_map": {}, "empty_list": [],
            "list_of_lists": [[1, 2], [], [[3]]], "objs": [{"a": 1, "b": {"c": [1]}}, {}],
            "long": (0..40).map(|i| format!("item-{i}")).collect::<Vec<_>>()
        });
        assert_eq!(round_trip(&v), v, "{}", to_yaml(&v));
    }

    #[test]
    fn output_is_readable() {
        let v = json!({"access": ["read", "exec"], "path": "/usr", "port": 443, "$schema": "../x.json"});
        assert_eq!(
            to_yaml(&v),
            "\"$schema\": \"../x.json\"\naccess: [read, exec]\npath: /usr\nport: 443\n"
        );
    }
}
