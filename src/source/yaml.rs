//! YAML (1.2, core schema) into the spanned tree, on top of `saphyr-parser`'s event stream.
//!
//! Supported: block and flow collections, all scalar styles, anchors and aliases (an alias is
//! a copy of its anchor's value), the core tags `!!str !!int !!float !!bool !!null`. Refused
//! with a clear error: several documents in one file, non-scalar keys, other tags, and
//! non-finite floats (JSON cannot hold them).
//!
//! Input cost is bounded ([`crate::util::limits`]): every value is charged to a budget as it
//! is built, an anchor is charged again for the copy kept for its aliases, and an alias is
//! charged the full size (values, string bytes, height) of the copy it expands to *before*
//! the copy is made, so a "billion laughs" alias bomb stops at the first alias over the
//! budget, with its line and column.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YSpan};

use super::{Member, Node, NodeKind, Pos, Span, SyntaxError};
use crate::util::limits::{self, Budget, Cost, Exceeded};

pub(super) fn parse(text: &str, budget: Budget, elide: bool) -> Result<Node, SyntaxError> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        depth: 0,
        deepest: 0,
        budget,
        in_scenarios: false,
        elide,
        row_next: false,
    };
    b.document()
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// Anchored values and what a copy of each costs.
    anchors: HashMap<usize, (Node, Cost)>,
    /// Nesting of the collection being built (0 at the top).
    depth: usize,
    /// The deepest nesting reached inside the value being built (for anchor heights).
    deepest: usize,
    budget: Budget,
    /// True while the value of the root's `scenarios` member is built (with a budget that
    /// admits matrix entries: a plan's).
    in_scenarios: bool,
    /// Leave the plain entries out of the matrix's rows ([`super::elide_plain_entries`]).
    elide: bool,
    /// The next node built is a row of the matrix (`/scenarios/<profile>`); taken by it.
    row_next: bool,
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
            // saphyr-parser's own guard against deep flow nesting is our depth limit too.
            Some(Err(e)) if e.info().contains("recursion limit") => {
                Err(SyntaxError::over_limit(Exceeded::Depth, pos(*e.marker())))
            }
            Some(Err(e)) => Err(SyntaxError {
                message: e.info().to_string(),
                pos: pos(*e.marker()),
                limit: None,
            }),
            None => Err(SyntaxError {
                message: "unexpected end of the YAML stream".into(),
                pos: Pos::default(),
                limit: None,
            }),
        }
    }

    fn document(&mut self) -> Result<Node, SyntaxError> {
        let (ev, _) = self.next()?;
        if !matches!(ev, Event::StreamStart) {
            return Err(SyntaxError {
                message: "expected the start of the YAML stream".into(),
                pos: Pos { line: 1, col: 1 },
                limit: None,
            });
        }
        let (ev, sp) = self.next()?;
        let root = match ev {
            Event::StreamEnd => {
                return Err(SyntaxError {
                    message: "the file is empty; expected a YAML mapping".into(),
                    pos: pos(sp.start),
                    limit: None,
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
                    limit: None,
                });
            }
        };
        let (ev, _) = self.next()?;
        if !matches!(ev, Event::DocumentEnd) {
            return Err(SyntaxError {
                message: "expected the end of the document".into(),
                pos: root.span.end,
                limit: None,
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
                limit: None,
            }),
        }
    }

    fn node(&mut self, ev: Event<'a>, sp: YSpan) -> Result<Node, SyntaxError> {
        let start = pos(sp.start);
        let over = |e: Exceeded| SyntaxError::over_limit(e, start);
        let row = std::mem::take(&mut self.row_next);
        let before = self.budget;
        let outer_deepest = self.deepest;
        self.deepest = self.depth;
        let node = match ev {
            Event::Scalar(value, style, anchor, tag) => {
                self.budget.charge(value.len()).map_err(over)?;
                let kind = resolve_scalar(&value, style, tag.as_deref(), start)?;
                let node = Node {
                    span: span(sp),
                    kind,
                };
                self.remember(anchor, &node, before, start)?;
                node
            }
            Event::SequenceStart(anchor, tag) => {
                self.enter(start)?;
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
                self.depth -= 1;
                // A document is kept while it is used: no spare capacity per collection.
                items.shrink_to_fit();
                let node = Node {
                    span: Span { start, end },
                    kind: NodeKind::Array(items),
                };
                self.remember(anchor, &node, before, start)?;
                node
            }
            Event::MappingStart(anchor, tag) => {
                self.enter(start)?;
                check_collection_tag(tag.as_deref(), "map", start)?;
                let mut members = Vec::new();
                let end;
                // A plan's scenario matrix (`/scenarios/<profile>/<probe>`, a plain string
                // written in the file) is charged as entries, apart from the values budget.
                let entry = self.in_scenarios && self.depth == 3;
                loop {
                    let (ev, ksp) = self.next()?;
                    let literal_key = matches!(ev, Event::Scalar(..));
                    let key = match ev {
                        Event::MappingEnd => {
                            end = pos(ksp.end);
                            break;
                        }
                        // A plan's matrix entry is charged with its value, below.
                        Event::Scalar(k, _, _, _) if entry => k.into_owned(),
                        Event::Scalar(k, _, _, _) => {
                            self.budget
                                .charge(k.len())
                                .map_err(|e| SyntaxError::over_limit(e, pos(ksp.start)))?;
                            k.into_owned()
                        }
                        Event::Alias(id) => match self.anchors.get(&id).map(|(n, _)| &n.kind) {
                            Some(NodeKind::String(s)) => {
                                let s = s.to_string();
                                self.budget
                                    .charge(s.len())
                                    .map_err(|e| SyntaxError::over_limit(e, pos(ksp.start)))?;
                                s
                            }
                            _ => {
                                return Err(SyntaxError {
                                    message: "mapping keys must be plain strings".into(),
                                    pos: pos(ksp.start),
                                    limit: None,
                                });
                            }
                        },
                        _ => {
                            return Err(SyntaxError {
                                message:
                                    "mapping keys must be plain strings, not lists or mappings"
                                        .into(),
                                pos: pos(ksp.start),
                                limit: None,
                            });
                        }
                    };
                    let (ev, vsp) = self.next()?;
                    let value = match ev {
                        Event::Scalar(v, style, 0, tag) if entry && literal_key => {
                            let kind = resolve_scalar(&v, style, tag.as_deref(), pos(vsp.start))?;
                            let at = pos(ksp.start);
                            if let NodeKind::String(s) = &kind {
                                self.budget
                                    .charge_entry(key.len(), s.len())
                                    .map_err(|e| SyntaxError::over_limit(e, at))?;
                            } else {
                                self.budget
                                    .charge(key.len())
                                    .and_then(|()| self.budget.charge(v.len()))
                                    .map_err(|e| SyntaxError::over_limit(e, at))?;
                            }
                            Node {
                                span: span(vsp),
                                kind,
                            }
                        }
                        ev => {
                            if entry && literal_key {
                                self.budget
                                    .charge(key.len())
                                    .map_err(|e| SyntaxError::over_limit(e, pos(ksp.start)))?;
                            }
                            let matrix = if self.depth == 1 {
                                self.budget.has_entries() && key == "scenarios"
                            } else {
                                self.in_scenarios
                            };
                            self.row_next = self.elide && matrix && self.depth == 2;
                            let outer = std::mem::replace(&mut self.in_scenarios, matrix);
                            let value = self.node(ev, vsp);
                            self.in_scenarios = outer;
                            self.row_next = false;
                            value?
                        }
                    };
                    members.push(Member {
                        key: key.into(),
                        key_span: span(ksp),
                        value,
                    });
                }
                self.depth -= 1;
                // An anchored row is kept whole: its aliases may stand anywhere.
                if row && anchor == 0 {
                    super::elide_plain_entries(&mut members);
                }
                members.shrink_to_fit();
                let node = Node {
                    span: Span { start, end },
                    kind: NodeKind::Object(members),
                };
                self.remember(anchor, &node, before, start)?;
                node
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((n, cost)) => {
                    // Charged in full before the copy is made.
                    let cost = *cost;
                    let kind = &n.kind;
                    let nested = self.depth + cost.height.saturating_sub(1);
                    limits::check_depth(nested).map_err(over)?;
                    self.deepest = self.deepest.max(nested);
                    self.budget.charge_cost(cost).map_err(over)?;
                    Node {
                        span: span(sp),
                        kind: kind.clone(),
                    }
                }
                None => {
                    return Err(SyntaxError {
                        message: "alias to an unknown anchor".into(),
                        pos: start,
                        limit: None,
                    });
                }
            },
            _ => {
                return Err(SyntaxError {
                    message: "expected a value".into(),
                    pos: start,
                    limit: None,
                });
            }
        };
        self.deepest = self.deepest.max(outer_deepest);
        Ok(node)
    }

    /// One level deeper, within [`limits::MAX_DEPTH`].
    fn enter(&mut self, at: Pos) -> Result<(), SyntaxError> {
        self.depth += 1;
        self.deepest = self.deepest.max(self.depth);
        limits::check_depth(self.depth).map_err(|e| SyntaxError::over_limit(e, at))
    }

    /// Keep a copy of an anchored value for its aliases, charged like one.
    fn remember(
        &mut self,
        anchor: usize,
        node: &Node,
        before: Budget,
        at: Pos,
    ) -> Result<(), SyntaxError> {
        if anchor > 0 {
            // `deepest` is absolute; the value started at `self.depth` (collections have
            // already left their level when this is called).
            let height = self.deepest.saturating_sub(self.depth) + 1;
            let cost = self.budget.since(before, height);
            self.budget
                .charge_cost(cost)
                .map_err(|e| SyntaxError::over_limit(e, at))?;
            self.anchors.insert(anchor, (node.clone(), cost));
        }
        Ok(())
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
            limit: None,
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
        limit: None,
    };
    if let Some(t) = tag {
        if t.handle != "tag:yaml.org,2002:" {
            return Err(SyntaxError {
                message: format!("YAML tag `{}{}` is not supported", t.handle, t.suffix),
                pos: at,
                limit: None,
            });
        }
        return match t.suffix.as_str() {
            "str" => Ok(NodeKind::String(value.into())),
            "null" => Ok(NodeKind::Null),
            "bool" => parse_bool(value)
                .map(NodeKind::Bool)
                .ok_or_else(|| bad("boolean")),
            "int" => parse_int(value).ok_or_else(|| bad("integer")),
            "float" => parse_float(value, at)?.ok_or_else(|| bad("float")),
            other => Err(SyntaxError {
                message: format!("YAML tag `!!{other}` is not supported"),
                pos: at,
                limit: None,
            }),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(NodeKind::String(value.into()));
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
    Ok(NodeKind::String(value.into()))
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
            limit: None,
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

    /// Parse within the default budget.
    fn parse(text: &str) -> Result<Node, SyntaxError> {
        super::parse(text, Budget::default(), false)
    }

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
    fn an_alias_bomb_stops_at_the_first_alias_over_the_budget() {
        use std::fmt::Write as _;
        // 9 levels of 9 aliases: 9^9 values if expanded, in 400 bytes.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            let _ = writeln!(text, "a{i}: &a{i} [{refs}]");
        }
        let e = parse(&text).unwrap_err();
        assert_eq!(e.limit, Some(limits::Exceeded::Nodes), "{}", e.message);
        // `a4` (9 copies of `a3`'s 7,381 values) is where the budget runs out: the file is
        // refused at line 5, at the alias over the budget, long before 9^9 values are built.
        assert_eq!(e.pos.line, 5, "{e:?}");
        // Aliases that nest deeper than the limit once expanded are refused too.
        let mut deep = String::from("a: &a ");
        deep.push_str(&"[".repeat(100));
        deep.push_str(&"]".repeat(100));
        deep.push_str("\nb: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n");
        let e = parse(&deep).unwrap_err();
        assert_eq!(e.limit, Some(limits::Exceeded::Depth), "{}", e.message);
        assert_eq!(e.pos.line, 2);
        // Deep flow and block nesting are refused by depth, not by the stack.
        let flow = format!("a: {}", "[".repeat(100_000));
        assert_eq!(
            parse(&flow).unwrap_err().limit,
            Some(limits::Exceeded::Depth)
        );
        let block = format!("{}x\n", "- ".repeat(100_000));
        assert_eq!(
            parse(&block).unwrap_err().limit,
            Some(limits::Exceeded::Depth)
        );
        // A long string, and a long string copied by aliases past the byte budget.
        let long = format!("a: {}\n", "x".repeat(limits::MAX_STRING_BYTES + 1));
        assert_eq!(
            parse(&long).unwrap_err().limit,
            Some(limits::Exceeded::String)
        );
        let s = "x".repeat(limits::MAX_STRING_BYTES);
        let copies = vec!["*s"; limits::MAX_EXPANDED_BYTES / limits::MAX_STRING_BYTES + 1];
        let wide = format!("a: &s {s}\nb: [{}]\n", copies.join(", "));
        assert_eq!(
            parse(&wide).unwrap_err().limit,
            Some(limits::Exceeded::ExpandedBytes)
        );
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
