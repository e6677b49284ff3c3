//! Text for a terminal: every string that came from a file, a name, a probe's output or the
//! command line is shown with its control characters escaped, so a hostile file name such
//! as `ESC ]52;…BEL ESC [2J` cannot write the clipboard, clear the screen or rewrite what
//! was printed before it.
//!
//! Escaped: the C0 controls except newline and tab (`ESC` as `\e`, `CR` as `\r`, the rest
//! as `\u{7}`), `DEL` (`\u{7f}`), the C1 controls U+0080–U+009F (which some terminals obey
//! as 8-bit `CSI`, `OSC`, …) and the Unicode bidirectional controls (U+061C, U+200E/F,
//! U+202A–U+202E, U+2066–U+2069), which reorder what the reader sees; a byte that is not
//! UTF-8 as `\x9b`.
//!
//! [`Term`] is the writer every human output of the CLI goes through (`cli::Io` holds two);
//! machine output (JSON, which escapes control characters itself) bypasses it
//! ([`Term::raw`]). When colour is on, the one escape sequence it lets through is SGR
//! (`ESC [ <digits and ;> m`, text attributes and colours), which the tool's own colouring
//! uses; colour is off whenever the output is not a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

/// Whether `c` is shown escaped (see the module docs).
pub fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\u{1b}' => out.push_str("\\e"),
        '\r' => out.push_str("\\r"),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

/// `s` with every control character escaped (newline and tab kept).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` escaped for one line: newlines and tabs escaped too (`\n`, `\t`), for a name shown
/// inside a sentence.
pub fn escape_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c) || c == '\n' || c == '\t') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => push_escaped(&mut out, c),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Longest SGR sequence let through when colour is on (`ESC [ 1;31 m` is 6 bytes).
const MAX_SGR: usize = 16;

/// A writer for a terminal (or whatever stands for one): escapes what [`escape`] escapes,
/// byte stream by byte stream (a character or an SGR sequence split across two writes is
/// held until it is complete).
pub struct Term<'a> {
    inner: &'a mut dyn Write,
    /// Let SGR sequences through (colour on).
    color: bool,
    /// Pass everything through untouched (machine output).
    raw: bool,
    /// The start of a character or SGR sequence a write ended in.
    pending: Vec<u8>,
}

impl std::fmt::Debug for Term<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Term")
            .field("color", &self.color)
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

/// What the bytes at the start of a buffer are.
enum Lead {
    /// Need more bytes to tell.
    Incomplete,
    /// An SGR sequence of this many bytes.
    Sgr(usize),
    /// A character of this many bytes (maybe to escape).
    Char(char, usize),
    /// A byte that does not start valid UTF-8.
    Invalid,
}

fn lead(b: &[u8], color: bool) -> Lead {
    if color && b[0] == 0x1b {
        // ESC [ [0-9;]* m
        let mut i = 1;
        if b.len() <= i {
            return Lead::Incomplete;
        }
        if b[1] == b'[' {
            i = 2;
            while i < b.len() && i < MAX_SGR && (b[i].is_ascii_digit() || b[i] == b';') {
                i += 1;
            }
            if i == b.len() && i < MAX_SGR {
                return Lead::Incomplete;
            }
            if i < b.len() && b[i] == b'm' {
                return Lead::Sgr(i + 1);
            }
        }
        return Lead::Char('\u{1b}', 1);
    }
    let width = match b[0] {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return Lead::Invalid,
    };
    if b.len() < width {
        // Could still be a valid prefix: wait for the rest.
        return match std::str::from_utf8(b) {
            Err(e) if e.error_len().is_none() => Lead::Incomplete,
            _ => Lead::Invalid,
        };
    }
    match std::str::from_utf8(&b[..width]) {
        Ok(s) => s
            .chars()
            .next()
            .map_or(Lead::Invalid, |c| Lead::Char(c, width)),
        Err(_) => Lead::Invalid,
    }
}

impl<'a> Term<'a> {
    /// A terminal writer over `inner`: escaping, colour off.
    pub fn new(inner: &'a mut dyn Write) -> Self {
        Self {
            inner,
            color: false,
            raw: false,
            pending: Vec::new(),
        }
    }

    /// Let the tool's colour (SGR sequences) through.
    pub fn set_color(&mut self, on: bool) {
        self.color = on;
    }

    /// Pass everything through untouched from now on (the whole stream is machine output,
    /// e.g. `--json`).
    pub fn set_raw(&mut self, on: bool) {
        let _ = self.flush_pending(true);
        self.raw = on;
    }

    /// The underlying writer, for machine output (JSON) that must stay byte-exact.
    pub fn raw(&mut self) -> &mut dyn Write {
        let _ = self.flush_pending(true);
        &mut *self.inner
    }

    /// Escape `buf` (with what is pending) and write it; keep an incomplete tail unless
    /// `all`.
    fn process(&mut self, buf: &[u8], all: bool) -> io::Result<()> {
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(buf);
        let mut out = String::with_capacity(data.len() + 8);
        let mut passed: Vec<u8> = Vec::with_capacity(data.len() + 8);
        let mut i = 0;
        while i < data.len() {
            match lead(&data[i..], self.color) {
                Lead::Incomplete if !all => {
                    self.pending = data[i..].to_vec();
                    break;
                }
                Lead::Incomplete | Lead::Invalid => {
                    let _ = write!(out, "\\x{:02x}", data[i]);
                    i += 1;
                }
                Lead::Sgr(n) => {
                    passed.extend_from_slice(out.as_bytes());
                    out.clear();
                    passed.extend_from_slice(&data[i..i + n]);
                    i += n;
                }
                Lead::Char(c, n) => {
                    if needs_escape(c) {
                        push_escaped(&mut out, c);
                    } else {
                        out.push(c);
                    }
                    i += n;
                }
            }
        }
        passed.extend_from_slice(out.as_bytes());
        self.inner.write_all(&passed)
    }

    fn flush_pending(&mut self, all: bool) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.process(&[], all)
    }
}

impl Write for Term<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.raw {
            self.inner.write_all(buf)?;
        } else {
            self.process(buf, false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending(true)?;
        self.inner.flush()
    }
}

impl Drop for Term<'_> {
    fn drop(&mut self) {
        let _ = self.flush_pending(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(color: bool, pieces: &[&[u8]]) -> Vec<u8> {
        let mut sink = Vec::new();
        {
            let mut t = Term::new(&mut sink);
            t.set_color(color);
            for p in pieces {
                t.write_all(p).unwrap();
            }
            t.flush().unwrap();
        }
        sink
    }

    #[test]
    fn hostile_sequences_are_shown_not_obeyed() {
        let evil = "name\u{1b}]52;c;aGk=\u{7}\u{1b}[2J\r\u{9b}31m\u{202e}x\n\tok";
        let e = escape(evil);
        assert_eq!(
            e,
            "name\\e]52;c;aGk=\\u{7}\\e[2J\\r\\u{9b}31m\\u{202e}x\n\tok"
        );
        assert!(!e.bytes().any(|b| b < 0x20 && b != b'\n' && b != b'\t'));
        assert_eq!(escape_line("a\nb\tc"), "a\\nb\\tc");
        assert!(matches!(escape("plain é ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_writer_escapes_across_split_writes_and_keeps_only_sgr_when_coloured() {
        let evil = "x\u{1b}[2J\u{1b}[31mred\u{1b}[0m\u{9b}é\u{7}".as_bytes();
        // Every split point gives the same output.
        for color in [false, true] {
            let whole = through(color, &[evil]);
            for k in 0..evil.len() {
                assert_eq!(
                    through(color, &[&evil[..k], &evil[k..]]),
                    whole,
                    "split {k}"
                );
            }
            let s = String::from_utf8(whole).unwrap();
            if color {
                assert_eq!(s, "x\\e[2J\u{1b}[31mred\u{1b}[0m\\u{9b}é\\u{7}");
            } else {
                assert_eq!(s, "x\\e[2J\\e[31mred\\e[0m\\u{9b}é\\u{7}");
            }
        }
        // Not UTF-8, and a truncated character at the very end.
        assert_eq!(through(false, &[b"a\xffb\xc3"]), b"a\\xffb\\xc3");
    }

    #[test]
    fn raw_output_is_untouched() {
        let mut sink = Vec::new();
        {
            let mut t = Term::new(&mut sink);
            t.raw().write_all(b"{\"a\":\"\x7f\"}\n").unwrap();
        }
        assert_eq!(sink, b"{\"a\":\"\x7f\"}\n");
    }
}
