//! A small JSON parser (RFC 8259) that records the line and column of every key and value.
//! serde_json reports positions only for errors; lint needs them for every finding.

use super::{Member, Node, NodeKind, Pos, Span, SyntaxError};
use crate::util::limits::{self, Budget};

pub(super) fn parse(text: &str, budget: Budget, elide: bool) -> Result<Node, SyntaxError> {
    let mut p = Parser {
        chars: text.char_indices().peekable(),
        text,
        line: 1,
        col: 1,
        depth: 0,
        budget,
        in_scenarios: false,
        elide,
    };
    if text.starts_with('\u{feff}') {
        p.bump();
    }
    p.skip_ws();
    if p.peek().is_none() {
        return Err(p.err("the file is empty; expected a JSON object"));
    }
    let node = p.value()?;
    p.skip_ws();
    if let Some(c) = p.peek() {
        return Err(p.err(format!("unexpected `{c}` after the end of the document")));
    }
    Ok(node)
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    text: &'a str,
    line: u32,
    col: u32,
    depth: usize,
    budget: Budget,
    /// True while the value of the root's `scenarios` member is parsed (with a budget that
    /// admits matrix entries: a plan's).
    in_scenarios: bool,
    /// Leave the plain entries out of the matrix's rows ([`super::elide_plain_entries`]).
    elide: bool,
}

impl Parser<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn err(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            message: message.into(),
            pos: self.pos(),
            limit: None,
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|&(_, c)| c)
    }

    fn offset(&mut self) -> usize {
        self.chars.peek().map_or(self.text.len(), |&(i, _)| i)
    }

    fn bump(&mut self) -> Option<char> {
        let (_, c) = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.bump();
        }
    }

    fn expect(&mut self, want: char, what: &str) -> Result<(), SyntaxError> {
        match self.peek() {
            Some(c) if c == want => {
                self.bump();
                Ok(())
            }
            Some(c) => Err(self.err(format!("expected {what}, found `{c}`"))),
            None => Err(self.err(format!("expected {what}, found the end of the file"))),
        }
    }

    fn value(&mut self) -> Result<Node, SyntaxError> {
        self.value_as(false)
    }

    /// A value; `row`: an object here is a row of the plan's matrix (`/scenarios/<profile>`),
    /// whose plain entries are left out when the parser elides them.
    fn value_as(&mut self, row: bool) -> Result<Node, SyntaxError> {
        let start = self.pos();
        let len = if self.peek() == Some('"') {
            None
        } else {
            Some(0)
        };
        if let Some(len) = len {
            self.budget
                .charge(len)
                .map_err(|e| SyntaxError::over_limit(e, start))?;
        }
        let kind = match self.peek() {
            Some('{') => self.object(row)?,
            Some('[') => self.array()?,
            Some('"') => NodeKind::String(self.charged_string(start)?.into()),
            Some('t') => self.word("true", NodeKind::Bool(true))?,
            Some('f') => self.word("false", NodeKind::Bool(false))?,
            Some('n') => self.word("null", NodeKind::Null)?,
            Some(c) if c == '-' || c.is_ascii_digit() => self.number()?,
            Some(c) => {
                let hint = if c == '\'' {
                    " (JSON strings use double quotes)"
                } else {
                    ""
                };
                return Err(self.err(format!("expected a value, found `{c}`{hint}")));
            }
            None => return Err(self.err("expected a value, found the end of the file")),
        };
        Ok(Node {
            span: Span {
                start,
                end: self.pos(),
            },
            kind,
        })
    }

    fn word(&mut self, word: &str, kind: NodeKind) -> Result<NodeKind, SyntaxError> {
        for want in word.chars() {
            match self.peek() {
                Some(c) if c == want => {
                    self.bump();
                }
                _ => return Err(self.err(format!("expected `{word}`"))),
            }
        }
        Ok(kind)
    }

    fn enter(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        limits::check_depth(self.depth).map_err(|e| SyntaxError::over_limit(e, self.pos()))
    }

    /// A string (a value or a key) charged to the budget.
    fn charged_string(&mut self, start: Pos) -> Result<String, SyntaxError> {
        let s = self.string()?;
        self.budget
            .charge(s.len())
            .map_err(|e| SyntaxError::over_limit(e, start))?;
        Ok(s)
    }

    fn object(&mut self, row: bool) -> Result<NodeKind, SyntaxError> {
        self.enter()?;
        self.bump(); // {
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some('}') {
            self.bump();
            self.depth -= 1;
            return Ok(NodeKind::Object(members));
        }
        loop {
            self.skip_ws();
            let key_start = self.pos();
            if self.peek() != Some('"') {
                return Err(match self.peek() {
                    Some('}') => self.err("trailing comma before `}` (JSON does not allow one)"),
                    Some(c) => self.err(format!("expected a key in double quotes, found `{c}`")),
                    None => self.err("expected a key, found the end of the file"),
                });
            }
            // A plan's scenario matrix (`/scenarios/<profile>/<probe>` with a string value)
            // is charged as entries, apart from the values budget.
            let entry = self.in_scenarios && self.depth == 3;
            let key = if entry {
                self.string()?
            } else {
                self.charged_string(key_start)?
            };
            let key_span = Span {
                start: key_start,
                end: self.pos(),
            };
            self.skip_ws();
            self.expect(':', "`:` after the key")?;
            self.skip_ws();
            let value = if entry && self.peek() == Some('"') {
                let start = self.pos();
                let v = self.string()?;
                self.budget
                    .charge_entry(key.len(), v.len())
                    .map_err(|e| SyntaxError::over_limit(e, key_start))?;
                Node {
                    span: Span {
                        start,
                        end: self.pos(),
                    },
                    kind: NodeKind::String(v.into()),
                }
            } else {
                if entry {
                    self.budget
                        .charge(key.len())
                        .map_err(|e| SyntaxError::over_limit(e, key_start))?;
                }
                let matrix = if self.depth == 1 {
                    self.budget.has_entries() && key == "scenarios"
                } else {
                    self.in_scenarios
                };
                let row = self.elide && matrix && self.depth == 2;
                let outer = std::mem::replace(&mut self.in_scenarios, matrix);
                let value = self.value_as(row);
                self.in_scenarios = outer;
                value?
            };
            members.push(Member {
                key: key.into(),
                key_span,
                value,
            });
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {
                    self.bump();
                    break;
                }
                Some(c) => return Err(self.err(format!("expected `,` or `}}`, found `{c}`"))),
                None => {
                    return Err(
                        self.err("unclosed object: expected `,` or `}`, found the end of the file")
                    );
                }
            }
        }
        self.depth -= 1;
        if row {
            super::elide_plain_entries(&mut members);
        }
        // A document is kept while it is used (a plan's, through a run's lint): no spare
        // capacity per collection.
        members.shrink_to_fit();
        Ok(NodeKind::Object(members))
    }

    fn array(&mut self) -> Result<NodeKind, SyntaxError> {
        self.enter()?;
        self.bump(); // [
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(']') {
            self.bump();
            self.depth -= 1;
            return Ok(NodeKind::Array(items));
        }
        loop {
            self.skip_ws();
            if self.peek() == Some(']') {
                return Err(self.err("trailing comma before `]` (JSON does not allow one)"));
            }
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {
                    self.bump();
                    break;
                }
                Some(c) => return Err(self.err(format!("expected `,` or `]`, found `{c}`"))),
                None => {
                    return Err(
                        self.err("unclosed array: expected `,` or `]`, found the end of the file")
                    );
                }
            }
        }
        self.depth -= 1;
        items.shrink_to_fit();
        Ok(NodeKind::Array(items))
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.bump(); // "
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            match c {
                '"' => {
                    self.bump();
                    return Ok(out);
                }
                '\\' => {
                    self.bump();
                    let Some(e) = self.bump() else {
                        return Err(self.err("unterminated escape"));
                    };
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let hi = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&hi) {
                                if self.bump() != Some('\\') || self.bump() != Some('u') {
                                    return Err(self.err("a high surrogate must be followed by a `\\u` low surrogate"));
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("invalid low surrogate"));
                                }
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                            } else {
                                char::from_u32(hi)
                            };
                            match ch {
                                Some(ch) => out.push(ch),
                                None => return Err(self.err("invalid unicode escape")),
                            }
                        }
                        other => return Err(self.err(format!("invalid escape `\\{other}`"))),
                    }
                }
                c if (c as u32) < 0x20 => {
                    return Err(self.err("control character in string (escape newlines as `\\n`)"));
                }
                c => {
                    self.bump();
                    out.push(c);
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let Some(d) = self.bump().and_then(|c| c.to_digit(16)) else {
                return Err(self.err("expected 4 hex digits in `\\u` escape"));
            };
            v = v * 16 + d;
        }
        Ok(v)
    }

    fn number(&mut self) -> Result<NodeKind, SyntaxError> {
        let start = self.offset();
        if self.peek() == Some('-') {
            self.bump();
        }
        match self.peek() {
            Some('0') => {
                self.bump();
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(self.err("numbers cannot have leading zeros"));
                }
            }
            Some(c) if c.is_ascii_digit() => self.digits(),
            _ => return Err(self.err("expected a digit")),
        }
        if self.peek() == Some('.') {
            self.bump();
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.err("expected a digit after `.`"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.err("expected a digit in the exponent"));
            }
            self.digits();
        }
        let end = self.offset();
        let slice = &self.text[start..end];
        serde_json::from_str::<serde_json::Number>(slice)
            .map(NodeKind::Number)
            .map_err(|_| self.err(format!("number `{slice}` is out of range")))
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse within the default budget.
    fn parse(text: &str) -> Result<Node, SyntaxError> {
        super::parse(text, Budget::default(), false)
    }

    fn err(text: &str) -> SyntaxError {
        parse(text).unwrap_err()
    }

    #[test]
    fn parses_everything_serde_json_does() {
        let text = r#"{"a": [1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00\n"], "b": {}}"#;
        let ours = parse(text).unwrap().to_value();
        let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn errors_have_line_and_column() {
        let e = err("{\n  \"a\": 1,\n  \"b\": ,\n}");
        assert_eq!(e.pos, Pos { line: 3, col: 8 });
        let e = err("{\"a\": 1,}");
        assert!(e.message.contains("trailing comma"), "{}", e.message);
        let e = err("{\"a\": 'x'}");
        assert!(e.message.contains("double quotes"), "{}", e.message);
        let e = err("");
        assert!(e.message.contains("empty"));
        let e = err("{} x");
        assert!(e.message.contains("after the end"));
        assert!(err("[01]").message.contains("leading zeros"));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = "[".repeat(100_000);
        let e = err(&text);
        assert!(e.message.contains("nesting"), "{}", e.message);
        assert_eq!(e.limit, Some(limits::Exceeded::Depth));
    }

    #[test]
    fn long_strings_and_many_values_are_refused() {
        let long = format!(
            "{{\"a\": \"{}\"}}",
            "x".repeat(limits::MAX_STRING_BYTES + 1)
        );
        assert_eq!(err(&long).limit, Some(limits::Exceeded::String));
        assert_eq!(err(&long).pos, Pos { line: 1, col: 7 });
        let many = format!("[{}0]", "0,".repeat(limits::MAX_NODES));
        assert_eq!(err(&many).limit, Some(limits::Exceeded::Nodes));
        let fits = format!("[{}0]", "0,".repeat(limits::MAX_NODES - 2));
        assert!(parse(&fits).is_ok());
    }
}
