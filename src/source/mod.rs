//! Documents the user writes (plans, registries, templates), parsed from JSON or YAML into
//! one tree that remembers where every key and value came from (line and column), so lint
//! and load errors can point at the exact place.
//!
//! The same content written as JSON or YAML gives the same [`Document::value`], so it loads
//! to the same typed value and the same digest.

mod de;
mod json;
mod text;
mod yaml;

pub use text::Str;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::de::DeserializeOwned;

use crate::util::limits::{self, Budget, Exceeded};
use crate::{Error, Result};

/// The syntax a document is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (RFC 8259).
    Json,
    /// YAML 1.2 (core schema), one document per file.
    Yaml,
}

impl Format {
    /// The format a path's extension names: `.yaml`/`.yml` are YAML, anything else JSON.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Json,
        }
    }
}

/// A position in a document: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub col: u32,
}

/// A range of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First position (inclusive).
    pub start: Pos,
    /// Last position (exclusive).
    pub end: Pos,
}

/// A value with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value is written.
    pub span: Span,
    /// The value.
    pub kind: NodeKind,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string (inline when short: a plan's matrix is mostly short strings).
    String(Str),
    /// An array.
    Array(Vec<Node>),
    /// An object, in source order.
    Object(Vec<Member>),
}

/// One key of an object with its span and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The key (inline when short).
    pub key: Str,
    /// Where the key is written.
    pub key_span: Span,
    /// The value.
    pub value: Node,
}

/// A syntax error with its position, or a value over one of the input limits
/// ([`crate::util::limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// What is wrong.
    pub message: String,
    /// Where.
    pub pos: Pos,
    /// The input limit exceeded, when that is the problem (not the syntax).
    pub limit: Option<Exceeded>,
}

impl SyntaxError {
    /// The error for a value at `pos` that exceeds `limit`.
    pub fn over_limit(limit: Exceeded, pos: Pos) -> Self {
        Self {
            message: format!("input limit: {}", limit.describe()),
            pos,
            limit: Some(limit),
        }
    }
}

/// A key written twice in the same object (the later one wins in [`Document::value`], and
/// lint reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// JSON pointer of the object member.
    pub pointer: String,
    /// Where the repeated key is written.
    pub span: Span,
    /// Where it was first written.
    pub first: Span,
}

/// Where a JSON pointer points in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The span of the key, when the pointer ends at an object member.
    pub key_span: Option<Span>,
    /// The span of the value (or, if the pointer does not resolve fully, of the deepest
    /// node it reached).
    pub value_span: Span,
    /// False if the pointer did not resolve fully (e.g. a missing required key).
    pub exact: bool,
}

/// A parsed document: path, text, format and the spanned tree.
#[derive(Debug)]
pub struct Document {
    /// The file it was read from (as given).
    pub path: PathBuf,
    /// The source text.
    pub text: String,
    /// The syntax.
    pub format: Format,
    /// The root value.
    pub root: Node,
    /// Keys written twice.
    pub duplicates: Vec<Duplicate>,
    /// For each large object [`Document::locate`] walked through (by the address of its
    /// node in `root`): its members' indexes sorted by escaped key, so a pointer token is
    /// found in logarithmic time. Built on demand: a document nobody locates in (a plan
    /// that lints clean) indexes nothing.
    sorted: Mutex<HashMap<usize, Vec<u32>>>,
    /// The rows of the plan's matrix lack their plain entries ([`Document::skeleton_plan`]).
    elided: bool,
    /// Something asked this elided document for what it left out ([`Document::missed`]).
    missed: AtomicBool,
}

impl Clone for Document {
    fn clone(&self) -> Self {
        Self {
            path: self.path.clone(),
            text: self.text.clone(),
            format: self.format,
            root: self.root.clone(),
            duplicates: self.duplicates.clone(),
            // Addresses of the original's nodes: the copy builds its own.
            sorted: Mutex::new(HashMap::new()),
            elided: self.elided,
            missed: AtomicBool::new(self.missed.load(Ordering::Relaxed)),
        }
    }
}

/// Objects with more members than this are searched through a sorted index of their keys
/// (built once per object), smaller ones member by member.
const LINEAR_MEMBERS: usize = 32;

/// A typed-deserialization failure: where (JSON pointer) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedError {
    /// JSON pointer of the offending value ("" for the root).
    pub pointer: String,
    /// serde's message.
    pub message: String,
}

impl Document {
    /// Parse `text` (the format taken from `path`'s extension).
    pub fn parse(path: impl Into<PathBuf>, text: String) -> std::result::Result<Self, SyntaxError> {
        let path = path.into();
        let format = Format::from_path(&path);
        Self::parse_as(path, text, format)
    }

    /// Parse `text` in the given format.
    pub fn parse_as(
        path: impl Into<PathBuf>,
        text: String,
        format: Format,
    ) -> std::result::Result<Self, SyntaxError> {
        Self::parse_within(path, text, format, Budget::default())
    }

    /// Parse `text` as a plan (the format taken from `path`'s extension): within the plan
    /// budget ([`Budget::plan`]: the scenario matrix's entries apart from the values).
    pub fn parse_plan(
        path: impl Into<PathBuf>,
        text: String,
    ) -> std::result::Result<Self, SyntaxError> {
        let path = path.into();
        let format = Format::from_path(&path);
        Self::parse_within(path, text, format, Budget::plan())
    }

    /// Parse `text` in the given format within `budget`.
    pub fn parse_within(
        path: impl Into<PathBuf>,
        text: String,
        format: Format,
        budget: Budget,
    ) -> std::result::Result<Self, SyntaxError> {
        Self::parse_eliding(path, text, format, budget, false)
    }

    /// [`Document::parse_within`]; with `elide`, the rows of the plan's matrix leave out
    /// their plain entries ([`elide_plain_entries`]).
    fn parse_eliding(
        path: impl Into<PathBuf>,
        text: String,
        format: Format,
        budget: Budget,
        elide: bool,
    ) -> std::result::Result<Self, SyntaxError> {
        let mut duplicates = Vec::new();
        let root = match format {
            Format::Json => json::parse(&text, budget, elide)?,
            Format::Yaml => yaml::parse(&text, budget, elide)?,
        };
        collect_duplicates(&root, &mut String::new(), &mut duplicates);
        Ok(Self {
            path: path.into(),
            text,
            format,
            root,
            duplicates,
            sorted: Mutex::new(HashMap::new()),
            elided: elide,
            missed: AtomicBool::new(false),
        })
    }

    /// Read and parse a file; a syntax error becomes an input error naming the file, line
    /// and column.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::util::fsx::read_document(path)?;
        Self::parse(path, text).map_err(|e| syntax_error(path, &e))
    }

    /// Read and parse a plan file, within the plan's limits ([`limits::MAX_PLAN_BYTES`],
    /// [`Budget::plan`]).
    pub fn load_plan(path: &Path) -> Result<Self> {
        let text = crate::util::fsx::read_document_max(path, limits::MAX_PLAN_BYTES)?;
        Self::parse_plan(path, text).map_err(|e| syntax_error(path, &e))
    }

    /// The document as a JSON value (for a key written twice, the later one wins).
    pub fn value(&self) -> serde_json::Value {
        self.miss();
        self.root.to_value()
    }

    /// Deserialize into `T`, reporting the JSON pointer of the first failure.
    pub fn deserialize<T: DeserializeOwned>(&self) -> std::result::Result<T, TypedError> {
        deserialize_value(self.value())
    }

    /// True if this document was parsed by [`Document::skeleton_plan`] and something asked
    /// it for what it leaves out: its value ([`Document::value`], [`Document::deserialize`],
    /// [`Document::deserialize_tree`]) or the place of a pointer below a row of the matrix
    /// (`/scenarios/<profile>/…`, [`Document::locate`]), which it may answer otherwise than
    /// the whole document would. Its answers to everything else are the whole document's.
    pub fn missed(&self) -> bool {
        self.missed.load(Ordering::Relaxed)
    }

    fn miss(&self) {
        if self.elided {
            self.missed.store(true, Ordering::Relaxed);
        }
    }

    /// [`Document::deserialize`] straight from the tree, without building the document's
    /// JSON value first: the same value or the same error (pointer and message), in memory
    /// that does not hold the document twice (a plan's matrix).
    pub fn deserialize_tree<T: DeserializeOwned>(&self) -> std::result::Result<T, TypedError> {
        self.miss();
        serde_path_to_error::deserialize(de::NodeDe(&self.root)).map_err(typed_of)
    }

    /// Where `pointer` points (RFC 6901). For a key written twice, the later member wins
    /// (the later one holding the rest of the pointer, if only an earlier one does), as in
    /// [`Document::value`]. A pointer that does not resolve fully points at the deepest
    /// member it reached. Logarithmic time per pointer token in a large object (lint places
    /// thousands of findings in large documents), and nothing is indexed beforehand.
    pub fn locate(&self, pointer: &str) -> Location {
        if self.elided
            && pointer
                .strip_prefix("/scenarios/")
                .is_some_and(|rest| rest.contains('/'))
        {
            self.miss();
        }
        if let Some((key_span, value_span)) = self.resolve(pointer) {
            return Location {
                key_span,
                value_span,
                exact: true,
            };
        }
        let mut prefix = pointer;
        while let Some(cut) = prefix.rfind('/') {
            prefix = &prefix[..cut];
            if let Some((key_span, value_span)) = self.resolve(prefix) {
                return Location {
                    key_span,
                    value_span,
                    exact: false,
                };
            }
        }
        Location {
            key_span: None,
            value_span: self.root.span,
            exact: false,
        }
    }

    /// The key and value spans of the node `pointer` names exactly, if any.
    fn resolve(&self, pointer: &str) -> Option<(Option<Span>, Span)> {
        if pointer.is_empty() {
            return Some((None, self.root.span));
        }
        let rest = pointer.strip_prefix('/')?;
        let tokens: Vec<&str> = rest.split('/').collect();
        self.resolve_in(&self.root, None, &tokens)
    }

    fn resolve_in(
        &self,
        node: &Node,
        key_span: Option<Span>,
        tokens: &[&str],
    ) -> Option<(Option<Span>, Span)> {
        let Some((token, rest)) = tokens.split_first() else {
            return Some((key_span, node.span));
        };
        match &node.kind {
            NodeKind::Object(members) => {
                // The later members first: the last one that resolves the rest wins.
                let mut found = None;
                self.members_named(node, members, token, &mut |m: &Member| {
                    found = self.resolve_in(&m.value, Some(m.key_span), rest);
                    found.is_some()
                });
                found
            }
            NodeKind::Array(items) => {
                let i: usize = token.parse().ok()?;
                if i.to_string() != *token {
                    return None;
                }
                self.resolve_in(items.get(i)?, None, rest)
            }
            _ => None,
        }
    }

    /// Calls `each` with the members of `node` whose escaped key is `token`, the last
    /// first, until it returns true.
    fn members_named(
        &self,
        node: &Node,
        members: &[Member],
        token: &str,
        each: &mut dyn FnMut(&Member) -> bool,
    ) {
        if members.len() <= LINEAR_MEMBERS {
            for m in members.iter().rev() {
                if escaped_cmp(&m.key, token).is_eq() && each(m) {
                    return;
                }
            }
            return;
        }
        let Ok(mut sorted) = self.sorted.lock() else {
            return;
        };
        let order = sorted
            .entry(std::ptr::from_ref(node) as usize)
            .or_insert_with(|| {
                let mut order: Vec<u32> =
                    (0..u32::try_from(members.len()).unwrap_or(u32::MAX)).collect();
                // Stable: members with one key stay in document order.
                order.sort_by(|&a, &b| {
                    escaped_bytes(&members[a as usize].key)
                        .cmp(escaped_bytes(&members[b as usize].key))
                });
                order
            });
        let start =
            order.partition_point(|&i| escaped_cmp(&members[i as usize].key, token).is_lt());
        let end = order.partition_point(|&i| escaped_cmp(&members[i as usize].key, token).is_le());
        let hits: Vec<u32> = order[start..end].to_vec();
        drop(sorted);
        for &i in hits.iter().rev() {
            if each(&members[i as usize]) {
                return;
            }
        }
    }

    /// This document without its tree, text and duplicates (an empty document with the same
    /// path and format: `null` at 0:0), for a holder done with spans.
    #[must_use]
    pub fn released(&self) -> Self {
        Self {
            path: self.path.clone(),
            text: String::new(),
            format: self.format,
            root: Node {
                span: Span::default(),
                kind: NodeKind::Null,
            },
            duplicates: Vec::new(),
            sorted: Mutex::new(HashMap::new()),
            elided: false,
            missed: AtomicBool::new(false),
        }
    }

    /// Drop the tree (and what was found in it), keeping the path, format and text: the
    /// document can be parsed again from its text ([`Document::reparsed_plan`]).
    /// [`Document::locate`] then answers the document's start for every pointer.
    pub fn drop_tree(&mut self) {
        self.root = Node {
            span: Span::default(),
            kind: NodeKind::Null,
        };
        self.duplicates = Vec::new();
        self.sorted = Mutex::new(HashMap::new());
        self.elided = false;
        self.missed = AtomicBool::new(false);
    }

    /// The plan document parsed again from this one's text, within the plan budget as
    /// [`Document::load_plan`] parsed it: the same tree and duplicates the plan had
    /// before [`Document::drop_tree`]. The text moves into the result.
    pub fn reparsed_plan(&mut self) -> Result<Self> {
        let text = std::mem::take(&mut self.text);
        Self::parse_within(self.path.clone(), text, self.format, Budget::plan())
            .map_err(|e| syntax_error(&self.path, &e))
    }

    /// [`Document::reparsed_plan`] without the matrix's plain entries: every row of
    /// `/scenarios` (not anchored, in YAML) whose keys are all distinct leaves out its
    /// entries that are an id with the string `allow` or `deny` ([`plain_matrix_entry`]),
    /// a policy matrix's every scenario. What the tree keeps answers as the whole
    /// document's does: the same duplicates, spans of everything outside the rows' members,
    /// and the rows' plain entries were left out of a plan's schema value anyway; what it
    /// cannot answer, it records ([`Document::missed`]), for the caller to parse the whole
    /// document ([`Document::reparsed_plan`]) and ask again. The text moves into the result.
    pub fn skeleton_plan(&mut self) -> Result<Self> {
        let text = std::mem::take(&mut self.text);
        Self::parse_eliding(self.path.clone(), text, self.format, Budget::plan(), true)
            .map_err(|e| syntax_error(&self.path, &e))
    }

    /// The text of a 1-based line, without its newline.
    pub fn line_text(&self, line: u32) -> &str {
        self.text
            .lines()
            .nth((line as usize).saturating_sub(1))
            .unwrap_or("")
    }
}

/// True for an entry of a plan's matrix row that the plan schema cannot fault: an id key
/// with the string `allow` or `deny`.
pub fn plain_matrix_entry(key: &str, value: &Node) -> bool {
    matches!(&value.kind, NodeKind::String(s) if s == "allow" || s == "deny")
        && crate::model::id::is_valid_id(key)
}

/// Leave the plain entries ([`plain_matrix_entry`]) out of a row of a plan's matrix, if
/// no key of the row is written twice (a repeated key is reported with the spans of both,
/// and a plain entry may replace a value that is not: such a row is kept whole).
fn elide_plain_entries(members: &mut Vec<Member>) {
    let mut repeats = Repeats::of(members);
    if (0..members.len()).any(|i| repeats.first(members, i).is_some()) {
        return;
    }
    members.retain(|m| !plain_matrix_entry(&m.key, &m.value));
}

/// The keys of `members` strictly increase (so none is written twice).
pub(super) fn keys_increase(members: &[Member]) -> bool {
    members
        .windows(2)
        .all(|w| w[0].key.as_str() < w[1].key.as_str())
}

/// Turn a syntax error into an input error naming the file, line and column.
pub fn syntax_error(path: &Path, e: &SyntaxError) -> Error {
    if let Some(limit) = e.limit {
        return Error::input(path, format!("{}:{}: {}", e.pos.line, e.pos.col, e.message))
            .with_hint(limit_hint(limit));
    }
    Error::input(
        path,
        format!("{}:{}: syntax error: {}", e.pos.line, e.pos.col, e.message),
    )
    .with_hint("fix the syntax at that line and column; `nexusmon plan-lint` shows the line")
}

/// How to bring a file under the input limit it exceeded.
pub fn limit_hint(limit: Exceeded) -> &'static str {
    match limit {
        Exceeded::Entries => {
            "the file is refused before it is used; split the matrix into several plans (fewer profiles or probes each)"
        }
        _ => {
            "the file is refused before it is used; make it smaller (fewer YAML aliases, less nesting, shorter strings)"
        }
    }
}

/// Deserialize a JSON value into `T`, reporting the JSON pointer of the first failure.
pub fn deserialize_value<T: DeserializeOwned>(
    value: serde_json::Value,
) -> std::result::Result<T, TypedError> {
    serde_path_to_error::deserialize(value).map_err(typed_of)
}

/// A deserialization failure with the JSON pointer of its place.
fn typed_of(e: serde_path_to_error::Error<serde_json::Error>) -> TypedError {
    {
        let mut pointer = String::new();
        for seg in e.path() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => {
                    pointer.push('/');
                    pointer.push_str(&index.to_string());
                }
                serde_path_to_error::Segment::Map { key } => {
                    pointer.push('/');
                    pointer.push_str(&escape_pointer_token(key));
                }
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => {}
            }
        }
        TypedError {
            pointer,
            message: e.into_inner().to_string(),
        }
    }
}

/// Unescape one JSON pointer token (RFC 6901).
pub fn unescape_pointer_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Escape one JSON pointer token (RFC 6901).
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl Node {
    /// The node as a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Number(n) => Value::Number(n.clone()),
            NodeKind::String(s) => Value::String(s.to_string()),
            NodeKind::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            NodeKind::Object(members) => {
                let mut map = serde_json::Map::new();
                for m in members {
                    map.insert(m.key.to_string(), m.value.to_value());
                }
                Value::Object(map)
            }
        }
    }
}

/// `key`, escaped as a JSON pointer token (RFC 6901), compared with the token `token`
/// byte by byte, without building the escaped key.
fn escaped_cmp(key: &str, token: &str) -> std::cmp::Ordering {
    escaped_bytes(key).cmp(token.bytes())
}

/// The bytes of `key` escaped as a JSON pointer token (RFC 6901).
fn escaped_bytes(key: &str) -> impl Iterator<Item = u8> + '_ {
    key.bytes().flat_map(|b| {
        let pair: &'static [u8] = match b {
            b'~' => b"~0",
            b'/' => b"~1",
            _ => &[],
        };
        let one = pair.is_empty().then_some(b);
        pair.iter().copied().chain(one)
    })
}

/// Every key written twice in an object of `node`, in document order (an object's own
/// repeated keys before those inside a member's value come after that member), each with
/// where its key was first written. A member's pointer is built only for a repeated key
/// or a value that can hold one (an object or array), and an object's repeats are found by
/// a scan of the earlier keys when it is small, by a check that its keys only increase
/// (then none repeats: a generated registry or matrix) or by a hash of them otherwise.
fn collect_duplicates(node: &Node, pointer: &mut String, out: &mut Vec<Duplicate>) {
    match &node.kind {
        NodeKind::Object(members) => {
            let mut repeats = Repeats::of(members);
            for (i, m) in members.iter().enumerate() {
                if let Some(first) = repeats.first(members, i) {
                    let len = pointer.len();
                    pointer.push('/');
                    push_pointer_token(pointer, &m.key);
                    out.push(Duplicate {
                        pointer: pointer.clone(),
                        span: m.key_span,
                        first,
                    });
                    pointer.truncate(len);
                }
                if matches!(m.value.kind, NodeKind::Object(_) | NodeKind::Array(_)) {
                    let len = pointer.len();
                    pointer.push('/');
                    push_pointer_token(pointer, &m.key);
                    collect_duplicates(&m.value, pointer, out);
                    pointer.truncate(len);
                }
            }
        }
        NodeKind::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if matches!(item.kind, NodeKind::Object(_) | NodeKind::Array(_)) {
                    use std::fmt::Write as _;
                    let len = pointer.len();
                    let _ = write!(pointer, "/{i}");
                    collect_duplicates(item, pointer, out);
                    pointer.truncate(len);
                }
            }
        }
        _ => {}
    }
}

/// How an object's repeated keys are found ([`collect_duplicates`]).
enum Repeats<'a> {
    /// Its keys only increase: none repeats.
    None,
    /// Few members: the earlier ones are scanned.
    Scan,
    /// The first span of every key seen so far.
    Hashed(HashMap<&'a str, Span>),
}

impl<'a> Repeats<'a> {
    const SCAN_UP_TO: usize = 16;

    fn of(members: &'a [Member]) -> Self {
        if members.len() <= Self::SCAN_UP_TO {
            Self::Scan
        } else if keys_increase(members) {
            Self::None
        } else {
            Self::Hashed(HashMap::with_capacity(members.len()))
        }
    }

    /// Where the key of `members[i]` was first written, if an earlier member has it (to be
    /// asked for every member in order).
    fn first(&mut self, members: &'a [Member], i: usize) -> Option<Span> {
        let key = members[i].key.as_str();
        match self {
            Self::None => None,
            Self::Scan => members[..i]
                .iter()
                .find(|m| m.key.as_str() == key)
                .map(|m| m.key_span),
            Self::Hashed(first_of) => {
                if let Some(first) = first_of.get(key) {
                    Some(*first)
                } else {
                    first_of.insert(key, members[i].key_span);
                    None
                }
            }
        }
    }
}

/// `token` escaped as [`escape_pointer_token`] does, appended to `pointer`.
fn push_pointer_token(pointer: &mut String, token: &str) {
    if token.contains(['~', '/']) {
        pointer.push_str(&escape_pointer_token(token));
    } else {
        pointer.push_str(token);
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    /// The repeated keys as every earlier version found them: a hash of every object's
    /// keys and a pointer for every member (the reference of the generated test below).
    fn old_collect(node: &Node, pointer: &mut String, out: &mut Vec<Duplicate>) {
        match &node.kind {
            NodeKind::Object(members) => {
                // Linear in the members (a large object must not cost a quadratic scan).
                let mut first_of: HashMap<&str, Span> = HashMap::with_capacity(members.len());
                for m in members {
                    if let Some(first) = first_of.get(m.key.as_str()) {
                        out.push(Duplicate {
                            pointer: format!("{pointer}/{}", escape_pointer_token(&m.key)),
                            span: m.key_span,
                            first: *first,
                        });
                    } else {
                        first_of.insert(&m.key, m.key_span);
                    }
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&escape_pointer_token(&m.key));
                    old_collect(&m.value, pointer, out);
                    pointer.truncate(len);
                }
            }
            NodeKind::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    old_collect(item, pointer, out);
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
    }

    /// Generated: random JSON and YAML documents (objects small and large, keys repeated
    /// zero to several times, written in increasing order or not, keys with `~` and `/`,
    /// nested arrays) give the repeated keys the reference finds, in its order.
    #[test]
    fn repeated_keys_are_those_of_the_reference_in_its_order() {
        use crate::util::testrng::Rng;
        fn key(r: &mut Rng, big: bool) -> String {
            const POOL: [&str; 7] = ["a", "b", "~", "/", "x~1", "k", "é"];
            if big {
                format!("p{:05}", r.below(400u32))
            } else {
                (0..=r.below(2usize)).map(|_| *r.pick(&POOL)).collect()
            }
        }
        fn json(r: &mut Rng, depth: u32, out: &mut String) {
            match if depth == 0 {
                r.below(3u8)
            } else {
                r.below(6u8)
            } {
                0 => out.push('1'),
                1 => out.push_str("\"s\""),
                2 => out.push_str("null"),
                3 => {
                    out.push('[');
                    for i in 0..r.below(4usize) {
                        if i > 0 {
                            out.push(',');
                        }
                        json(r, depth - 1, out);
                    }
                    out.push(']');
                }
                _ => {
                    let big = r.chance(25);
                    let n = if big {
                        10 + r.below(40usize)
                    } else {
                        r.below(8usize)
                    };
                    // A large object's values are leaves: documents stay small.
                    let inner = if big { 0 } else { depth - 1 };
                    let mut keys: Vec<String> = (0..n).map(|_| key(r, big)).collect();
                    if r.chance(50) {
                        keys.sort();
                        if r.chance(50) {
                            keys.dedup();
                        }
                    }
                    out.push('{');
                    for (i, k) in keys.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{}:", serde_json::Value::from(k.as_str()));
                        json(r, inner, out);
                    }
                    out.push('}');
                }
            }
        }
        let mut r = Rng(0x00d0_b1e5);
        let (mut found, mut none) = (0, 0);
        for i in 0..3000 {
            let mut text = String::new();
            let depth = 1 + r.below(4u32);
            json(&mut r, depth, &mut text);
            // JSON is YAML: the same document through the other parser, every 4th time.
            let name = if i % 4 == 0 { "d.yaml" } else { "d.json" };
            let Ok(doc) = Document::parse(name, text.clone()) else {
                panic!("case {i} does not parse");
            };
            let mut want = Vec::new();
            old_collect(&doc.root, &mut String::new(), &mut want);
            assert_eq!(doc.duplicates, want, "case {i}");
            if want.is_empty() {
                none += 1;
            } else {
                found += 1;
            }
        }
        assert!(found > 300 && none > 500, "found {found}, none {none}");
    }

    const JSON: &str = "{\n  \"a\": [1, {\"b\": \"x\"}],\n  \"c/d\": true\n}\n";
    const YAML: &str = "a:\n  - 1\n  - b: x\n\"c/d\": true\n";

    #[test]
    fn json_and_yaml_give_the_same_value() {
        let j = Document::parse("p.json", JSON.into()).unwrap();
        let y = Document::parse("p.yaml", YAML.into()).unwrap();
        assert_eq!(j.value(), y.value());
    }

    #[test]
    fn locate_points_at_keys_and_values() {
        let j = Document::parse("p.json", JSON.into()).unwrap();
        let loc = j.locate("/a/1/b");
        assert!(loc.exact);
        assert_eq!(loc.key_span.unwrap().start, Pos { line: 2, col: 13 });
        assert_eq!(loc.value_span.start, Pos { line: 2, col: 18 });
        let loc = j.locate("/c~1d");
        assert_eq!(loc.value_span.start, Pos { line: 3, col: 10 });
        let y = Document::parse("p.yaml", YAML.into()).unwrap();
        let loc = y.locate("/a/1/b");
        assert_eq!(loc.value_span.start, Pos { line: 3, col: 8 });
        let missing = y.locate("/a/7");
        assert!(!missing.exact);
    }

    /// The pointer index `locate` used before it walked the tree: every pointer with its
    /// spans, a later member overwriting an earlier one.
    fn full_index(doc: &Document) -> HashMap<String, (Option<Span>, Span)> {
        fn walk(
            node: &Node,
            key_span: Option<Span>,
            pointer: &mut String,
            out: &mut HashMap<String, (Option<Span>, Span)>,
        ) {
            out.insert(pointer.clone(), (key_span, node.span));
            let len = pointer.len();
            match &node.kind {
                NodeKind::Object(members) => {
                    for m in members {
                        pointer.push('/');
                        pointer.push_str(&escape_pointer_token(&m.key));
                        walk(&m.value, Some(m.key_span), pointer, out);
                        pointer.truncate(len);
                    }
                }
                NodeKind::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        pointer.push('/');
                        pointer.push_str(&i.to_string());
                        walk(item, None, pointer, out);
                        pointer.truncate(len);
                    }
                }
                _ => {}
            }
        }
        let mut map = HashMap::new();
        walk(&doc.root, None, &mut String::new(), &mut map);
        map
    }

    fn indexed_locate(
        index: &HashMap<String, (Option<Span>, Span)>,
        doc: &Document,
        pointer: &str,
    ) -> Location {
        if let Some(&(key_span, value_span)) = index.get(pointer) {
            return Location {
                key_span,
                value_span,
                exact: true,
            };
        }
        let mut prefix = pointer;
        while let Some(cut) = prefix.rfind('/') {
            prefix = &prefix[..cut];
            if let Some(&(key_span, value_span)) = index.get(prefix) {
                return Location {
                    key_span,
                    value_span,
                    exact: false,
                };
            }
        }
        Location {
            key_span: None,
            value_span: doc.root.span,
            exact: false,
        }
    }

    #[test]
    fn locate_walks_to_what_a_full_index_finds() {
        // Seeded documents: keys written twice (nested ones too), keys that need escaping
        // (`~`, `/`), arrays, objects above and below the sorted-index threshold; every
        // pointer of the document, and mutations of them (missing keys, bad indexes,
        // broken escapes, extra tokens), located both ways.
        use crate::util::testrng::Rng;
        const KEYS: [&str; 8] = ["a", "b", "~", "a/b", "~1", "x~0", "", "0"];
        fn generate(r: &mut Rng, depth: u32, out: &mut String) {
            match if depth > 2 { 0 } else { r.below(4u32) } {
                0 => out.push_str(["1", "\"s\"", "null", "true"][r.below(4usize)]),
                1 => {
                    out.push('[');
                    for i in 0..r.below(4u32) {
                        if i > 0 {
                            out.push(',');
                        }
                        generate(r, depth + 1, out);
                    }
                    out.push(']');
                }
                _ => {
                    out.push_str("{\n");
                    let n = if depth < 2 && r.chance(25) {
                        33 + r.below(20u32)
                    } else {
                        r.below(6u32)
                    };
                    for i in 0..n {
                        if i > 0 {
                            out.push_str(",\n");
                        }
                        let key = if r.chance(60) {
                            (*r.pick(&KEYS)).to_string()
                        } else {
                            format!("k{}", r.below(50u32))
                        };
                        out.push_str(&serde_json::to_string(&key).unwrap());
                        out.push_str(": ");
                        generate(r, depth + 1, out);
                    }
                    out.push('}');
                }
            }
        }
        for seed in 0..150u64 {
            let mut r = Rng(seed);
            let mut text = String::new();
            generate(&mut r, 0, &mut text);
            let Ok(doc) = Document::parse("p.json", text.clone()) else {
                continue;
            };
            let index = full_index(&doc);
            let mut pointers: Vec<String> = index.keys().cloned().collect();
            pointers.sort();
            for p in index.keys() {
                pointers.push(format!("{p}/a"));
                pointers.push(format!("{p}/07"));
                pointers.push(format!("{p}/~2"));
                pointers.push(format!("{p}~"));
            }
            pointers.extend(["x".to_string(), "/".to_string(), "//".to_string()]);
            for p in &pointers {
                assert_eq!(
                    doc.locate(p),
                    indexed_locate(&index, &doc, p),
                    "seed {seed}, pointer {p:?} in\n{text}"
                );
            }
        }
    }

    /// A seeded plan-like document for [`the_skeleton_answers_as_the_whole_tree_does`]:
    /// matrix rows of plain entries (sorted or not), entries the schema can fault (keys
    /// that are no ids, other strings, numbers, objects), keys and rows written twice, rows
    /// that are not objects, a second `scenarios`; in YAML, anchored rows, aliases of them
    /// inside and outside the matrix, anchored entry values.
    fn skeleton_case(r: &mut crate::util::testrng::Rng, yaml: bool) -> String {
        const KEYS: [&str; 8] = ["p0", "p1", "p2", "p3", "Bad", "a/b", "x~1", "p1"];
        const VALUES: [&str; 8] = [
            "\"allow\"",
            "\"deny\"",
            "\"allow\"",
            "\"deny\"",
            "\"maybe\"",
            "5",
            "{\"k\": \"allow\", \"k\": \"deny\"}",
            "[\"allow\"]",
        ];
        let rows = r.below(5usize);
        let mut out = String::new();
        if yaml {
            out.push_str("schema_version: 1\nscenarios:\n");
        } else {
            out.push_str("{\"schema_version\": 1,\n\"scenarios\": {");
        }
        let mut anchors = 0;
        for i in 0..rows {
            let row = format!("r{}", r.below(4u32));
            if yaml {
                if anchors > 0 && r.chance(15) {
                    let _ = writeln!(out, "  {row}: *a{}", r.below(anchors));
                    continue;
                }
                let anchor = if r.chance(25) {
                    anchors += 1;
                    format!(" &a{}", anchors - 1)
                } else {
                    String::new()
                };
                let _ = writeln!(out, "  {row}:{anchor}");
            } else {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "\n \"{row}\": ");
                if r.chance(8) {
                    out.push_str("\"allow\"");
                    continue;
                }
                out.push('{');
            }
            let n = r.below(12usize);
            let sorted = r.chance(40);
            for j in 0..n {
                let key = if sorted {
                    format!("q{j:02}")
                } else if r.chance(70) {
                    format!("q{}", r.below(20u32))
                } else {
                    (*r.pick(&KEYS)).to_string()
                };
                let v = if r.chance(80) {
                    VALUES[r.below(4usize)]
                } else {
                    *r.pick(&VALUES)
                };
                if yaml {
                    let v = if r.chance(10) {
                        format!("&v{i}x{j} {v}")
                    } else {
                        v.into()
                    };
                    let _ = writeln!(out, "    {}: {v}", serde_json::Value::from(key.as_str()));
                } else {
                    if j > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "\n  {}: {v}", serde_json::Value::from(key.as_str()));
                }
            }
            if yaml && n == 0 {
                out.push_str("    {}\n");
            } else if !yaml {
                out.push('}');
            }
        }
        if yaml {
            if rows == 0 {
                out.push_str("  {}\n");
            }
            if anchors > 0 && r.chance(50) {
                let _ = writeln!(out, "description: *a{}", r.below(anchors));
            }
            if r.chance(10) {
                out.push_str("scenarios: {r0: {p0: allow}}\n");
            }
        } else {
            out.push_str("\n}");
            if r.chance(10) {
                out.push_str(",\n\"scenarios\": [{\"p0\": \"allow\"}]");
            }
            out.push_str("}\n");
        }
        out
    }

    #[test]
    fn the_skeleton_answers_as_the_whole_tree_does() {
        // Seeded plans, JSON and YAML: the tree without the matrix's plain entries has the
        // whole tree's duplicates and schema value, places every pointer outside the rows'
        // members as the whole tree does without recording a miss, and records one for
        // every pointer below a row and for its value.
        use crate::util::testrng::Rng;
        let (mut elided, mut kept) = (0, 0);
        for seed in 0..1500u64 {
            let mut r = Rng(seed);
            let yaml = seed % 2 == 1;
            let text = skeleton_case(&mut r, yaml);
            let name = if yaml { "p.yaml" } else { "p.json" };
            let whole = Document::parse_plan(name, text.clone())
                .unwrap_or_else(|e| panic!("seed {seed}: {e:?}\n{text}"));
            let mut source = Document::parse_plan(name, text.clone()).unwrap();
            source.drop_tree();
            let skeleton = source.skeleton_plan().unwrap();
            assert_eq!(skeleton.text, text);
            assert_eq!(skeleton.duplicates, whole.duplicates, "seed {seed}\n{text}");
            assert_eq!(
                crate::lint::input::plan_value_for_schema(&skeleton),
                crate::lint::input::plan_value_for_schema(&whole),
                "seed {seed}\n{text}"
            );
            assert!(!skeleton.missed(), "seed {seed}");
            if skeleton.root == whole.root {
                kept += 1;
            } else {
                elided += 1;
            }
            let index = full_index(&whole);
            let mut pointers: Vec<String> = index.keys().cloned().collect();
            pointers.sort();
            for p in index.keys() {
                pointers.push(format!("{p}/q1"));
                pointers.push(format!("{p}/07"));
            }
            pointers.extend(["/scenarios/r9".into(), "/scenarios/r1/q99".into()]);
            for p in &pointers {
                let under_row = p
                    .strip_prefix("/scenarios/")
                    .is_some_and(|rest| rest.contains('/'));
                let one = skeleton.clone();
                let got = one.locate(p);
                assert_eq!(one.missed(), under_row, "seed {seed}, pointer {p:?}");
                if !under_row {
                    assert_eq!(got, whole.locate(p), "seed {seed}, pointer {p:?}\n{text}");
                }
            }
            let _ = skeleton.value();
            assert!(skeleton.missed(), "seed {seed}");
        }
        assert!(
            elided > 400 && kept > 100,
            "{elided} elided, {kept} kept whole"
        );
    }

    #[test]
    fn duplicates_are_reported() {
        let j = Document::parse("p.json", "{\"a\":1,\n\"a\":2}".into()).unwrap();
        assert_eq!(j.duplicates.len(), 1);
        assert_eq!(j.duplicates[0].pointer, "/a");
        assert_eq!(j.duplicates[0].span.start, Pos { line: 2, col: 1 });
        assert_eq!(j.value()["a"], 2);
        let y = Document::parse("p.yaml", "a: 1\na: 2\n".into()).unwrap();
        assert_eq!(y.duplicates.len(), 1);
    }

    /// A plan's matrix in JSON and YAML (`profiles` × `probes` entries), with the odd
    /// entries a matrix may hold: a number, a nested object, escapes.
    fn matrix_texts(profiles: usize, probes: usize) -> (String, String) {
        let mut j = String::from("{\"schema_version\": 1, \"scenarios\": {");
        let mut y = String::from("schema_version: 1\nscenarios:\n");
        for pr in 0..profiles {
            if pr > 0 {
                j.push(',');
            }
            let _ = write!(j, "\n \"prof-{pr}\": {{");
            let _ = writeln!(y, "  prof-{pr}:");
            for pb in 0..probes {
                let v = if pb % 2 == 0 { "allow" } else { "deny" };
                if pb > 0 {
                    j.push(',');
                }
                let _ = write!(j, "\n  \"p{pb}\": \"{v}\"");
                let _ = writeln!(y, "    p{pb}: {v}");
            }
            j.push_str(",\n  \"n\": 7, \"o\": {\"k\": \"v\"}, \"e\\u0041\": \"\\u0064eny\"}");
            y.push_str("    n: 7\n    o: {k: v}\n    \"e\\u0041\": \"\\u0064eny\"\n");
        }
        j.push_str("}}\n");
        (j, y)
    }

    #[test]
    fn the_plan_budget_reads_the_same_document_as_the_default_one() {
        let (j, y) = matrix_texts(7, 40);
        for (name, text, format) in [("p.json", &j, Format::Json), ("p.yaml", &y, Format::Yaml)] {
            let small = Document::parse_as(name, text.clone(), format).unwrap();
            let plan = Document::parse_within(name, text.clone(), format, Budget::plan()).unwrap();
            assert_eq!(
                small.root, plan.root,
                "{name}: the same tree, spans included"
            );
            assert_eq!(small.duplicates, plan.duplicates);
            assert_eq!(plan.value()["scenarios"]["prof-3"]["eA"], "deny");
        }
        let a = Document::parse_plan("p.json", j).unwrap();
        let b = Document::parse_plan("p.yaml", y).unwrap();
        assert_eq!(a.value(), b.value());
    }

    #[test]
    fn matrix_entries_have_their_own_budget_and_aliases_do_not_escape_the_values_budget() {
        // 30 × 2,000 literal entries: over the values budget (120,000 values), within the
        // plan's.
        let (j, y) = matrix_texts(30, 2_000);
        for (name, text, format) in [("p.json", &j, Format::Json), ("p.yaml", &y, Format::Yaml)] {
            let e = Document::parse_as(name, text.clone(), format).unwrap_err();
            assert_eq!(e.limit, Some(Exceeded::Nodes), "{name}");
            let doc = Document::parse_within(name, text.clone(), format, Budget::plan()).unwrap();
            assert_eq!(doc.value()["scenarios"].as_object().unwrap().len(), 30);
            // A budget of one profile's `p*` entries: refused at the next entry (the
            // escaped key after them), naming its line.
            let tight = Budget {
                max_entries: 2_000,
                ..Budget::plan()
            };
            let e = Document::parse_within(name, text.clone(), format, tight).unwrap_err();
            assert_eq!(e.limit, Some(Exceeded::Entries), "{name}");
            let want = text.lines().position(|l| l.contains("u0041")).unwrap() + 1;
            assert_eq!(e.pos.line as usize, want, "{name}: {}", e.message);
            assert!(e.message.contains("scenario expectations"), "{}", e.message);
        }
        // A profile's map anchored and aliased: every copy is charged to the values budget,
        // entries included, so the aliases stop there.
        let mut y = String::from("schema_version: 1\nscenarios:\n  p0: &m\n");
        for pb in 0..2_000 {
            let _ = writeln!(y, "    p{pb}: allow");
        }
        for pr in 1..40 {
            let _ = writeln!(y, "  p{pr}: *m");
        }
        let e = Document::parse_plan("p.yaml", y).unwrap_err();
        assert_eq!(e.limit, Some(Exceeded::Nodes), "{}", e.message);
        // Literal entries that are not strings are values, not entries.
        let mut j = String::from("{\"scenarios\": {\"p\": {");
        for pb in 0..30_000 {
            let _ = write!(j, "\"p{pb}\": {pb},");
        }
        j.push_str("\"z\": 0}}}");
        let e = Document::parse_plan("p.json", j).unwrap_err();
        assert_eq!(e.limit, Some(Exceeded::Nodes), "{}", e.message);
        // Only the root's `scenarios` is a matrix.
        let mut j = String::from("{\"other\": {\"p\": {");
        for pb in 0..30_000 {
            let _ = write!(j, "\"p{pb}\": \"allow\",");
        }
        j.push_str("\"z\": \"deny\"}}}");
        let e = Document::parse_plan("p.json", j).unwrap_err();
        assert_eq!(e.limit, Some(Exceeded::Nodes), "{}", e.message);
    }

    #[test]
    fn typed_errors_carry_a_pointer() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: Vec<u32>,
        }
        let j = Document::parse("p.json", "{\"a\": [1, \"x\"]}".into()).unwrap();
        let e = j.deserialize::<T>().unwrap_err();
        assert_eq!(e.pointer, "/a/1");
    }
}
