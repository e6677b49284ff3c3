//! YAML (1.2, core schema) into the spanned tree, on top of `saphyr-parser`'s event stream.
//!
//! Supported: block and flow collections, all scalar styles, anchors and aliases (an alias is
//! a copy of its anchor's value), the core tags `!!str !!int !!float !!bool !!null`. Refused
//! with a clear error: several documents in one file, non-scalar keys, other tags, and
//! non-finite floats (JSON cannot hold them).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YSpan};

use super::{Member, Node, NodeKind, Pos, Span, SyntaxError};

pub(super) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        depth: 0,
    };
    b.document()
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    depth: usize,
}

fn pos(m: saphyr_parser::Marker) -> Pos {
    Pos {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
        col: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
    }
}

fn span(s: YSpan) -> Span {
    Span {
        start: pos(s.start),
        end: pos(s.end),
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, YSpan), SyntaxError> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(SyntaxError {
                message: e.info().to_string(),
                pos: pos(*e.marker()),
            }),
            None => Err(SyntaxError {
                message: "unexpected end of the YAML stream".into(),
                pos: Pos::default(),
            }),
        }
    }

    fn document(&mut self) -> Result<Node, SyntaxError> {
        let (ev, _) = self.next()?;
        if !matches!(ev, Event::StreamStart) {
            return Err(SyntaxError {
                message: "expected the start of the YAML stream".into(),
                pos: Pos { line: 1, col: 1 },
            });
        }
        let (ev, sp) = self.next()?;
        let root = match ev {
            Event::StreamEnd => {
                return Err(SyntaxError {
                    message: "the file is empty; expected a YAML mapping".into(),
                    pos: pos(sp.start),
                });
            }
            Event::DocumentStart(_) => {
                let (ev, sp) = self.next()?;
                self.node(ev, sp)?
            }
            _ => {
                return Err(SyntaxError {
                    message: "expected a YAML document".into(),
                    pos: pos(sp.start),
                });
            }
        };
        let (ev, _) = self.next()?;
        if !matches!(ev, Event::DocumentEnd) {
            return Err(SyntaxError {
                message: "expected the end of the document".into(),
                pos: root.span.end,
            });
        }
        let (ev, sp) = self.next()?;
        match ev {
            Event::StreamEnd => Ok(root),
            _ => Err(SyntaxError {
                message:
                    "a second YAML document (`---`) in one file; one plan or registry per file"
                        .into(),
                pos: pos(sp.start),
            }),
        }
    }

    fn node(&mut self, ev: Event<'a>, sp: YSpan) -> Result<Node, SyntaxError> {
        self.depth += 1;
        if self.depth > 128 {
            return Err(SyntaxError {
                message: "nesting deeper than 128 levels".into(),
                pos: pos(sp.start),
            });
        }
        let start = pos(sp.start);
        let node = match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let kind = resolve_scalar(&value, style, tag.as_deref(), start)?;
                let node = Node {
                    span: span(sp),
                    kind,
                };
                self.remember(anchor, &node);
                node
            }
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq", start)?;
                let mut items = Vec::new();
                let end;
                loop {
                    let (ev, sp2) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        end = pos(sp2.end);
                        break;
                    }
                    items.push(self.node(ev, sp2)?);
                }
                let node = Node {
                    span: Span { start, end },
                    kind: NodeKind::Array(items),
                };
                self.remember(anchor, &node);
                node
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map", start)?;
                let mut members = Vec::new();
                let end;
                loop {
                    let (ev, ksp) = self.next()?;
                    let key = match ev {
                        Event::MappingEnd => {
                            end = pos(ksp.end);
                            break;
                        }
                        Event::Scalar(k, _, _, _) => k.into_owned(),
                        Event::Alias(id) => match self.anchors.get(&id).map(|n| n.kind.clone()) {
                            Some(NodeKind::String(s)) => s,
                            _ => {
                                return Err(SyntaxError {
                                    message: "mapping keys must be plain strings".into(),
                                    pos: pos(ksp.start),
                                });
                            }
                        },
                        _ => {
                            return Err(SyntaxError {
                                message:
                                    "mapping keys must be plain strings, not lists or mappings"
                                        .into(),
                                pos: pos(ksp.start),
                            });
                        }
                    };
                    let (ev, vsp) = self.next()?;
                    let value = self.node(ev, vsp)?;
                    members.push(Member {
                        key,
                        key_span: span(ksp),
                        value,
                    });
                }
                let node = Node {
                    span: Span { start, end },
                    kind: NodeKind::Object(members),
                };
                self.remember(anchor, &node);
                node
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(n) => Node {
                    span: span(sp),
                    kind: n.kind.clone(),
                },
                None => {
                    return Err(SyntaxError {
                        message: "alias to an unknown anchor".into(),
                        pos: start,
                    });
                }
            },
            _ => {
                return Err(SyntaxError {
                    message: "expected a value".into(),
                    pos: start,
                });
            }
        };
        self.depth -= 1;
        Ok(node)
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }
}

fn check_collection_tag(
    tag: Option<&saphyr_parser::Tag>,
    want: &str,
    at: Pos,
) -> Result<(), SyntaxError> {
    match tag {
        None => Ok(()),
        Some(t) if t.handle == "tag:yaml.org,2002:" && t.suffix == want => Ok(()),
        Some(t) => Err(SyntaxError {
            message: format!("YAML tag `{}{}` is not supported", t.handle, t.suffix),
            pos: at,
        }),
    }
}

fn resolve_scalar(
    value: &str,
    style: ScalarStyle,
    tag: Option<&saphyr_parser::Tag>,
    at: Pos,
) -> Result<NodeKind, SyntaxError> {
    let bad = |what: &str| SyntaxError {
        message: format!("`{value}` is not a valid {what}"),
        pos: at,
    };
    if let Some(t) = tag {
        if t.handle != "tag:yaml.org,2002:" {
            return Err(SyntaxError {
                message: format!("YAML tag `{}{}` is not supported", t.handle, t.suffix),
                pos: at,
            });
        }
        return match t.suffix.as_str() {
            "str" => Ok(NodeKind::String(value.to_string())),
            "null" => Ok(NodeKind::Null),
            "bool" => parse_bool(value)
                .map(NodeKind::Bool)
                .ok_or_else(|| bad("boolean")),
            "int" => parse_int(value).ok_or_else(|| bad("integer")),
            "float" => parse_float(value, at)?.ok_or_else(|| bad("float")),
            other => Err(SyntaxError {
                message: format!("YAML tag `!!{other}` is not supported"),
                pos: at,
            }),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(NodeKind::String(value.to_string()));
    }
    if matches!(value, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(NodeKind::Null);
    }
    if let Some(b) = parse_bool(value) {
        return Ok(NodeKind::Bool(b));
    }
    if let Some(n) = parse_int(value) {
        return Ok(n);
    }
    if let Some(f) = parse_float(value, at)? {
        return Ok(f);
    }
    Ok(NodeKind::String(value.to_string()))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_int(v: &str) -> Option<NodeKind> {
    let (neg, digits) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let parsed = if let Some(h) = v.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = v.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if neg {
            v.parse::<i64>().ok()
        } else {
            return digits
                .parse::<u64>()
                .ok()
                .map(|u| NodeKind::Number(u.into()));
        }
    } else {
        None
    };
    parsed.map(|i| NodeKind::Number(i.into()))
}

fn parse_float(v: &str, at: Pos) -> Result<Option<NodeKind>, SyntaxError> {
    let lower = v.to_ascii_lowercase();
    if matches!(lower.trim_start_matches(['+', '-']), ".inf" | ".nan") {
        return Err(SyntaxError {
            message: format!("`{v}` cannot be represented in JSON"),
            pos: at,
        });
    }
    let b = v.as_bytes();
    let looks_numeric = !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        && b.iter().any(u8::is_ascii_digit);
    if !looks_numeric {
        return Ok(None);
    }
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(serde_json::Number::from_f64(f).map(NodeKind::Number)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema_scalars() {
        let v = parse("a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\nf: '1'\ng: hello\nh: 0x10\n")
            .unwrap()
            .to_value();
        assert_eq!(
            v,
            serde_json::json!({"a":1,"b":-2,"c":1.5,"d":true,"e":null,"f":"1","g":"hello","h":16})
        );
    }

    #[test]
    fn anchors_are_copied() {
        let v = parse("x: &a [1, 2]\ny: *a\n").unwrap().to_value();
        assert_eq!(v["y"], serde_json::json!([1, 2]));
    }

    #[test]
    fn refusals_have_positions() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.message.contains("second YAML document"), "{}", e.message);
        assert_eq!(e.pos.line, 2);
        let e = parse("a: [1, 2\n").unwrap_err();
        assert!(e.pos.line >= 1);
        let e = parse("a: !custom x\n").unwrap_err();
        assert!(e.message.contains("not supported"));
        let e = parse("? [1]\n: x\n").unwrap_err();
        assert!(e.message.contains("keys"));
    }
}
