//! Result files as sorted JSON Lines, written as results arrive and read a line at a time
//! (result schema version 2).
//!
//! **Format.** A result file (`runtime_results.jsonl`, …) holds one JSON object per line,
//! keys sorted, compact, in the order of a sort key the caller gives (the scenario id,
//! then whatever orders items of one scenario); an empty file holds no line. A line may
//! carry [`SHARED_KEY`] (`"$shared"`): a list of ids of objects in [`SHARED_FILE`]
//! (`shared_values.json`), whose keys belong to the line as if written in it. Values that
//! are the same for many lines (a probe's operation, target and timeout; a profile's
//! enforcement and the child's isolation; identical helper witnesses) are written once
//! there. An id is the first [`ID_HEX`] hex digits of the blake3 of the group's compact
//! sorted JSON, so the same values get the same id in every run; the writer never gives
//! one id two values (a collision, or more than [`MAX_SHARED_VALUES`] distinct values,
//! leaves the values inline in the line). This module knows nothing of what a line means:
//! the caller says which keys form a group.
//!
//! **Writing** ([`ResultWriter`]): one writer per run (or per merge) owns every result file
//! and the shared values; [`ResultWriter::line`] appends one item to one file, refusing
//! an item whose sort key is below the previous one (so a file is sorted or not written);
//! [`ResultWriter::finish`] flushes the files and returns the shared values document.
//! [`ReorderWindow`] turns results that complete in any order into that sorted stream
//! with a bounded buffer: a producer may only start item `i` while
//! [`ReorderWindow::admits`] it, so at most `cap` items are ever held; what it releases
//! is in index order, so the bytes are those of sorting everything first.
//!
//! **Reading** ([`SharedValues`], [`for_each_line`]): the shared values are read once
//! (bounded by [`MAX_SHARED_VALUES`] and the member size limit), a value at a time as the
//! file streams, and kept as compact text parsed when a line names it (never the file's
//! JSON tree: at 16,384 values that was ~18 MiB in every reader); then each line is
//! parsed, its groups merged back and handed to the caller; nothing holds the whole file.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ErrorKind;
use crate::{Error, Result};

/// Name of the file holding values shared by many lines.
pub const SHARED_FILE: &str = "shared_values.json";
/// The key of a line that lists the shared values it uses.
pub const SHARED_KEY: &str = "$shared";
/// Most distinct shared values one run writes (beyond, values stay inline).
pub const MAX_SHARED_VALUES: usize = 16_384;
/// Hex digits of a shared value's id.
pub const ID_HEX: usize = 12;
/// Longest result line read, in bytes (16 MiB): a line is one observation.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

fn ser(e: serde_json::Error) -> Error {
    Error::runner("cannot serialize JSON").with_source(e)
}

// ---------------------------------------------------------------------------------------
// Interning
// ---------------------------------------------------------------------------------------

/// A shared value's id: the first [`ID_HEX`] / 2 bytes of the blake3 of its text (written
/// as [`ID_HEX`] hex digits, whose order is the bytes' order).
type Id = [u8; ID_HEX / 2];

fn id_of(text: &[u8]) -> Id {
    let mut id = [0; ID_HEX / 2];
    id.copy_from_slice(&blake3::hash(text).as_bytes()[..ID_HEX / 2]);
    id
}

/// Append the hex digits of `id` to `out`.
fn push_hex(out: &mut Vec<u8>, id: Id) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in id {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

fn hex(id: Id) -> String {
    let mut out = Vec::with_capacity(ID_HEX);
    push_hex(&mut out, id);
    // Hex digits: ASCII.
    String::from_utf8_lossy(&out).into_owned()
}

/// The shared values of one run as they are written: id → compact JSON of the object.
/// Ids are digests of the values, hashed again by the table with a random key (a plan's
/// author, who chooses the values, cannot choose colliding table slots).
#[derive(Debug, Default)]
pub struct Interner {
    values: HashMap<Id, String>,
    cap: usize,
}

impl Interner {
    /// An interner holding at most `cap` values.
    pub fn new(cap: usize) -> Self {
        Self {
            values: HashMap::new(),
            cap,
        }
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The id of the group whose compact JSON is `text` if it is shared: already held, or
    /// added now; `None` if it cannot be (the cap is reached, or its id holds another
    /// value). Once a text is shared it stays shared; once it cannot be, it never can
    /// (values are never removed or replaced, and the count only grows).
    fn intern(&mut self, text: &[u8]) -> Result<Option<Id>> {
        let id = id_of(text);
        Ok(match self.values.get(&id) {
            Some(existing) => (existing.as_bytes() == text).then_some(id),
            None if self.values.len() < self.cap => {
                // JSON text made of `serde_json` output and ASCII: UTF-8.
                let text = String::from_utf8(text.to_vec())
                    .map_err(|e| Error::runner("cannot serialize JSON").with_source(e))?;
                self.values.insert(id, text);
                Some(id)
            }
            None => None,
        })
    }

    /// Move the keys of each group out of `obj` into a shared value and list their ids
    /// under [`SHARED_KEY`]. A group none of whose keys is present is skipped; a value
    /// that cannot be shared (cap reached, id collision) stays inline.
    pub fn compact(&mut self, obj: &mut Map<String, Value>, groups: &[&[&str]]) -> Result<()> {
        let mut ids = Vec::new();
        for group in groups {
            let mut g = Map::new();
            for k in *group {
                if let Some(v) = obj.remove(*k) {
                    g.insert((*k).to_string(), v);
                }
            }
            if g.is_empty() {
                continue;
            }
            let text = serde_json::to_string(&g).map_err(ser)?;
            match self.intern(text.as_bytes())? {
                Some(id) => ids.push(Value::String(hex(id))),
                None => obj.extend(g),
            }
        }
        if !ids.is_empty() {
            obj.insert(SHARED_KEY.into(), Value::Array(ids));
        }
        Ok(())
    }

    /// [`Interner::compact`] over a line's members (key, compact sorted JSON of the value;
    /// sorted by key, as [`crate::util::json::sorted_members`] gives them): the members of
    /// each group that can be shared leave `members`, and the ids are returned in group
    /// order. The bytes are those of `compact` on the line's `Value` map: a group's text is
    /// its members in key order, `{"k":v,...}`, as `serde_json` prints a sorted map. The
    /// line path before [`ResultWriter`] wrote from reused buffers; kept as the reference
    /// of the tests.
    #[cfg(test)]
    pub fn compact_members(
        &mut self,
        members: &mut Vec<(String, Vec<u8>)>,
        groups: &[&[&str]],
    ) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for group in groups {
            let mut text = Vec::with_capacity(64);
            text.push(b'{');
            let mut any = false;
            for (k, v) in members.iter() {
                if group.contains(&k.as_str()) {
                    if any {
                        text.push(b',');
                    }
                    any = true;
                    serde_json::to_writer(&mut text, k).map_err(ser)?;
                    text.push(b':');
                    text.extend_from_slice(v);
                }
            }
            if !any {
                continue;
            }
            text.push(b'}');
            if let Some(id) = self.intern(&text)? {
                members.retain(|(k, _)| !group.contains(&k.as_str()));
                ids.push(hex(id));
            }
        }
        Ok(ids)
    }

    /// `shared_values.json`: `{"schema_version", "values": {id: object}}`, key-sorted
    /// pretty JSON.
    ///
    /// Written one value at a time (the bytes `to_sorted_pretty` gives for the whole
    /// document), not through a JSON tree of every value: a run keeps up to
    /// [`MAX_SHARED_VALUES`] of them.
    pub fn document(&self, schema_version: u32) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_document(schema_version, &mut out)
            .map_err(|e| Error::runner("cannot write the shared values").with_source(e))?;
        Ok(out)
    }

    /// [`Interner::document`] written to `out` as it is made (the same bytes): a run's
    /// shared values go to their file without a copy of the whole document in memory.
    pub fn write_document(
        &self,
        schema_version: u32,
        out: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        let mut ids: Vec<(String, &String)> =
            self.values.iter().map(|(id, v)| (hex(*id), v)).collect();
        ids.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let head = serde_json::json!({"schema_version": schema_version, "values": null});
        let mut fills: Vec<(&str, crate::util::json::Fill<'_>)> = vec![(
            "/values",
            Box::new(move |o: &mut dyn std::io::Write, ind: &str| {
                let by = format!("\n{ind}  ");
                crate::util::json::pretty_seq(
                    o,
                    ind,
                    b'{',
                    ids.iter().map(|(id, value)| {
                        let mut line = serde_json::to_string(id).map_err(std::io::Error::other)?;
                        line.push_str(": ");
                        pretty_compact(value, &by, &mut line);
                        Ok(line)
                    }),
                )
            }),
        )];
        crate::util::json::write_pretty_with(&head, &mut fills, out)
    }
}

/// Append the compact JSON `text` (as `serde_json` prints it: no whitespace, keys sorted)
/// to `out` pretty, as `serde_json::to_string_pretty` prints its value with every newline
/// replaced by `newline_indent` (a newline and the indentation): the bytes of parsing it into a `Value` and
/// printing that, without the tree (a run's shared values are thousands of small objects,
/// each parsed again only to be indented). Strings are copied as they are (their escapes
/// are already `serde_json`'s, and a string never holds a raw newline).
fn pretty_compact(text: &str, newline_indent: &str, out: &mut String) {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let newline = |out: &mut String, depth: usize| {
        out.push_str(newline_indent);
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                // To the closing quote: skip escaped characters.
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            c @ (b'{' | b'[' | b'}' | b']' | b',' | b':') => {
                out.push_str(&text[copied..i]);
                match c {
                    b'{' | b'[' if b.get(i + 1) == Some(&(c + 2)) => {
                        // `{}` / `[]`: empty stays on the line (`}` and `]` are 2 above).
                        out.push(char::from(c));
                        out.push(char::from(c + 2));
                        i += 1;
                    }
                    b'{' | b'[' => {
                        out.push(char::from(c));
                        depth += 1;
                        newline(out, depth);
                    }
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        newline(out, depth);
                        out.push(char::from(c));
                    }
                    b',' => {
                        out.push(',');
                        newline(out, depth);
                    }
                    _ => out.push_str(": "),
                }
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[copied.min(text.len())..]);
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// One result file being written.
struct LinesFile<W> {
    out: W,
    last_key: Option<String>,
    lines: u64,
    bytes: u64,
    /// The key groups its lines share.
    groups: Vec<&'static [&'static str]>,
    /// Per group, the text it had in the last line that had it, and what interning that
    /// text gave (a text shared, or not, stays so: [`Interner::intern`]): most lines
    /// repeat the previous line's profile, witness and counts, whose hashing is skipped.
    memo: Vec<Option<(Vec<u8>, Option<Id>)>>,
    /// The keys of the last line, by position, and for each which groups name it
    /// (`member * groups + group`): lines of one file list the same keys, so a member's
    /// groups are looked up once per key that changed, not once per group and line.
    keys: Vec<String>,
    in_group: Vec<bool>,
}

/// Every result file of a run, written as sorted JSON Lines with one set of shared values.
/// `W` is where a file's bytes go (a staged bundle member; a `Vec<u8>` in tests).
pub struct ResultWriter<W: Write> {
    files: BTreeMap<String, LinesFile<W>>,
    shared: Interner,
    /// Buffers kept from line to line: the line's members, which of them went into shared
    /// values, the ids it lists, a group's text, the line's text.
    members: crate::util::json::Members,
    taken: Vec<bool>,
    ids: Vec<Id>,
    group: Vec<u8>,
    text: Vec<u8>,
}

impl<W: Write> ResultWriter<W> {
    /// A writer with a shared-value cap of `cap`.
    pub fn new(cap: usize) -> Self {
        Self {
            files: BTreeMap::new(),
            shared: Interner::new(cap),
            members: crate::util::json::Members::default(),
            taken: Vec::new(),
            ids: Vec::new(),
            group: Vec::new(),
            text: Vec::new(),
        }
    }

    /// Add the file `rel` written to `out`, whose lines share the key groups `groups`.
    pub fn add_file(&mut self, rel: &str, out: W, groups: &[&'static [&'static str]]) {
        self.files.insert(
            rel.to_string(),
            LinesFile {
                out,
                last_key: None,
                lines: 0,
                bytes: 0,
                groups: groups.to_vec(),
                memo: vec![None; groups.len()],
                keys: Vec::new(),
                in_group: Vec::new(),
            },
        );
    }

    /// Append `item` (an object) to `rel` under the sort key `key`. A key below the
    /// previous line's is refused: the file would not be sorted.
    ///
    /// The line is written from the item's members ([`crate::util::json::Members`], no
    /// `Value` tree, no allocation per member): the bytes of [`Interner::compact`] on
    /// `to_value(item)`'s map, then `serde_json` printing it.
    pub fn line<T: Serialize + ?Sized>(&mut self, rel: &str, key: &str, item: &T) -> Result<()> {
        self.fill(rel, item)?;
        self.write_members(rel, key)
    }

    /// [`ResultWriter::line`] for an item whose members are `item`'s over `base`'s
    /// ([`crate::util::json::Members::overlay_on`]): the line of the larger object
    /// `base` was filled from with `item`'s fields put in, when every other field is
    /// unchanged — written without serializing that object again.
    pub fn line_over<T: Serialize + ?Sized>(
        &mut self,
        rel: &str,
        key: &str,
        item: &T,
        base: &crate::util::json::Members,
    ) -> Result<()> {
        self.fill(rel, item)?;
        self.members.overlay_on(base);
        self.write_members(rel, key)
    }

    /// Fill the line's members from `item`, which must serialize as a JSON object.
    fn fill<T: Serialize + ?Sized>(&mut self, rel: &str, item: &T) -> Result<()> {
        if self.members.fill(item).map_err(ser)? {
            Ok(())
        } else {
            Err(Error::runner(format!(
                "a line of {rel} is not a JSON object"
            )))
        }
    }

    /// Write the line of the members just filled.
    fn write_members(&mut self, rel: &str, key: &str) -> Result<()> {
        let m = &mut self.members;
        let Some(f) = self.files.get_mut(rel) else {
            return Err(Error::runner(format!(
                "{rel} is not a result file of this writer"
            )));
        };
        // Which groups name each member: `in_group[i * n + g]`, kept from the last line
        // for every member whose key is the one it had there.
        let n = f.groups.len();
        f.keys.truncate(m.len());
        f.in_group.resize(m.len() * n, false);
        for (i, (k, _)) in m.iter().enumerate() {
            if f.keys.get(i).is_some_and(|last| last == k) {
                continue;
            }
            for (g, group) in f.groups.iter().enumerate() {
                f.in_group[i * n + g] = group.contains(&k);
            }
            match f.keys.get_mut(i) {
                Some(last) => {
                    last.clear();
                    last.push_str(k);
                }
                None => f.keys.push(k.to_string()),
            }
        }
        // Each group's members (those not taken by an earlier group), as `{"k":v,...}` in
        // key order; shared ones leave the line.
        self.taken.clear();
        self.taken.resize(m.len(), false);
        self.ids.clear();
        for (g, memo) in f.memo.iter_mut().enumerate() {
            let text = &mut self.group;
            text.clear();
            text.push(b'{');
            for i in 0..m.len() {
                if self.taken[i] || !f.in_group[i * n + g] {
                    continue;
                }
                let (key, value) = m.get(i);
                if text.len() > 1 {
                    text.push(b',');
                }
                crate::util::json::push_json_str(text, key).map_err(ser)?;
                text.push(b':');
                text.extend_from_slice(value);
            }
            if text.len() == 1 {
                continue;
            }
            text.push(b'}');
            let shared = match memo {
                Some((last, id)) if last == text => *id,
                _ => {
                    let id = self.shared.intern(text)?;
                    match memo {
                        Some((last, was)) => {
                            last.clear();
                            last.extend_from_slice(text);
                            *was = id;
                        }
                        None => *memo = Some((text.clone(), id)),
                    }
                    id
                }
            };
            if let Some(id) = shared {
                for i in 0..m.len() {
                    if f.in_group[i * n + g] {
                        self.taken[i] = true;
                    }
                }
                self.ids.push(id);
            }
        }
        if f.last_key.as_deref().is_some_and(|last| key < last) {
            return Err(Error::runner(format!(
                "{rel}: `{key}` would follow `{}`: result lines must be written in order",
                f.last_key.as_deref().unwrap_or_default()
            )));
        }
        let text = &mut self.text;
        text.clear();
        text.push(b'{');
        let ids = &self.ids;
        let put_ids = |text: &mut Vec<u8>| {
            text.push(b'"');
            text.extend_from_slice(SHARED_KEY.as_bytes());
            text.extend_from_slice(b"\":[");
            for (n, id) in ids.iter().enumerate() {
                if n > 0 {
                    text.push(b',');
                }
                text.push(b'"');
                push_hex(text, *id);
                text.push(b'"');
            }
            text.push(b']');
        };
        let mut shared_written = ids.is_empty();
        for (i, (k, v)) in m.iter().enumerate() {
            if self.taken[i] {
                continue;
            }
            // `$shared` replaces a member of that name, as `Map::insert` does.
            if !shared_written && k >= SHARED_KEY {
                if text.len() > 1 {
                    text.push(b',');
                }
                put_ids(text);
                shared_written = true;
                if k == SHARED_KEY {
                    continue;
                }
            }
            if text.len() > 1 {
                text.push(b',');
            }
            crate::util::json::push_json_str(text, k).map_err(ser)?;
            text.push(b':');
            text.extend_from_slice(v);
        }
        if !shared_written {
            if text.len() > 1 {
                text.push(b',');
            }
            put_ids(text);
        }
        text.push(b'}');
        text.push(b'\n');
        f.out
            .write_all(text)
            .map_err(|e| Error::io("write result file", Path::new(rel), e))?;
        f.bytes += text.len() as u64;
        f.lines += 1;
        match &mut f.last_key {
            Some(k) => {
                k.clear();
                k.push_str(key);
            }
            None => f.last_key = Some(key.to_string()),
        }
        Ok(())
    }

    /// Lines written to `rel` so far.
    pub fn lines(&self, rel: &str) -> u64 {
        self.files.get(rel).map_or(0, |f| f.lines)
    }

    /// How many shared values it holds.
    pub fn shared_len(&self) -> usize {
        self.shared.len()
    }

    /// Flush every file; return them by name with the shared values document
    /// (`shared_values.json`'s bytes).
    pub fn finish(self, schema_version: u32) -> Result<(BTreeMap<String, W>, Vec<u8>)> {
        let doc = self.shared.document(schema_version)?;
        Ok((self.finish_files()?.0, doc))
    }

    /// Flush every file; return them by name with the shared values, for the caller to
    /// write (`Interner::write_document`) where it wants them.
    pub fn finish_files(self) -> Result<(BTreeMap<String, W>, Interner)> {
        let mut out = BTreeMap::new();
        for (rel, mut f) in self.files {
            f.out
                .flush()
                .map_err(|e| Error::io("write result file", Path::new(&rel), e))?;
            out.insert(rel, f.out);
        }
        Ok((out, self.shared))
    }
}

/// Results that complete in any order, released in index order with at most `cap` held.
#[derive(Debug)]
pub struct ReorderWindow<T> {
    next: usize,
    cap: usize,
    pending: BTreeMap<usize, T>,
    high_water: usize,
}

impl<T> ReorderWindow<T> {
    /// A window that holds at most `cap` (at least 1) results.
    pub fn new(cap: usize) -> Self {
        Self {
            next: 0,
            cap: cap.max(1),
            pending: BTreeMap::new(),
            high_water: 0,
        }
    }

    /// True if the item at `index` may be started now: releasing everything before it
    /// cannot need more than `cap` held results.
    pub fn admits(&self, index: usize) -> bool {
        index >= self.next && index < self.next + self.cap
    }

    /// The index released next.
    pub fn next_index(&self) -> usize {
        self.next
    }

    /// Results held now.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// The most results ever held at once.
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    /// The result of item `index`; every result now in order goes to `release`. An index
    /// the window does not admit, or one given twice, is an error (nothing is dropped).
    pub fn push(
        &mut self,
        index: usize,
        item: T,
        release: &mut dyn FnMut(usize, T) -> Result<()>,
    ) -> Result<()> {
        if !self.admits(index) || self.pending.contains_key(&index) {
            return Err(Error::runner(format!(
                "result {index} arrived outside the reorder window [{}, {})",
                self.next,
                self.next + self.cap
            )));
        }
        self.pending.insert(index, item);
        self.high_water = self.high_water.max(self.pending.len());
        while let Some(item) = self.pending.remove(&self.next) {
            let i = self.next;
            self.next += 1;
            release(i, item)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// `shared_values.json` as read: each value kept as its compact JSON text in one buffer,
/// indexed by id, and parsed when a line asks for it (values parsed since the cache was
/// last emptied are kept, at most [`PARSED_CACHE`]). A run's table of up to [`MAX_SHARED_VALUES`] values parsed
/// into JSON trees was ~18 MiB for every reader of a 100,000-scenario bundle; as text it
/// is the bytes of the values, and reading the file holds one value at a time
/// ([`SharedValues::read`]).
#[derive(Debug, Default)]
pub struct SharedValues {
    /// id → the span of its value's compact JSON in `text`.
    index: HashMap<Box<str>, (usize, usize)>,
    text: Vec<u8>,
    /// Values parsed, by the start of their span.
    parsed: std::sync::Mutex<HashMap<usize, Arc<Map<String, Value>>>>,
}

/// Most shared values kept parsed at once (the table is emptied when it is full).
pub const PARSED_CACHE: usize = 512;

impl Clone for SharedValues {
    fn clone(&self) -> Self {
        Self {
            index: self.index.clone(),
            text: self.text.clone(),
            parsed: std::sync::Mutex::default(),
        }
    }
}

/// A shared value as a line uses it.
pub type SharedValue = Arc<Map<String, Value>>;

impl SharedValues {
    /// Parse `shared_values.json`'s bytes (`path` names it in errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match Self::stream(&mut de) {
            Some(t) => Ok(t),
            None => Self::parse_tree(bytes, path),
        }
    }

    /// Read `shared_values.json` from `r` a value at a time: `None` when it is not a
    /// well-formed table of at most [`MAX_SHARED_VALUES`] objects with distinct ids (the
    /// caller then reads it with [`SharedValues::parse`], whose errors name the problem).
    pub fn read(r: &mut dyn BufRead) -> Option<Self> {
        let mut de = serde_json::Deserializer::from_reader(r);
        Self::stream(&mut de)
    }

    /// The table from a whole document, or `None` for anything but a top-level object
    /// with one `values` object of at most [`MAX_SHARED_VALUES`] objects, distinct ids,
    /// and nothing after it: every document it accepts is one [`SharedValues::parse_tree`]
    /// accepts with the same values, and the members are checked as that parse checks
    /// them (each read as a [`Value`]).
    fn stream<'de, R: serde_json::de::Read<'de>>(
        de: &mut serde_json::Deserializer<R>,
    ) -> Option<Self> {
        let mut t = Self::default();
        let mut seen = false;
        serde::de::DeserializeSeed::deserialize(
            Top {
                t: &mut t,
                seen: &mut seen,
            },
            &mut *de,
        )
        .ok()?;
        de.end().ok()?;
        seen.then_some(t)
    }

    /// The reading of the whole document as one JSON tree (the reader before values were
    /// kept as text, and the one that names what is wrong with a document
    /// [`SharedValues::stream`] does not take).
    pub fn parse_tree(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |what: String| {
            Error::new(ErrorKind::Findings, what)
                .with_path(path)
                .with_hint("the shared values are written by the runner; re-run the plan")
        };
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| bad("does not parse as JSON".into()).with_source(e))?;
        let Some(map) = v.get("values").and_then(Value::as_object) else {
            return Err(bad("has no `values` object".into()));
        };
        if map.len() > MAX_SHARED_VALUES {
            return Err(bad(format!(
                "holds {} shared values, more than the {MAX_SHARED_VALUES} a run writes",
                map.len()
            )));
        }
        let mut t = Self::default();
        for (id, obj) in map {
            let Some(o) = obj.as_object() else {
                return Err(bad(format!("shared value `{id}` is not an object")));
            };
            t.insert(id.clone(), o)
                .map_err(|e| bad(format!("shared value `{id}` cannot be kept: {e}")))?;
        }
        Ok(t)
    }

    /// Keep `obj` as the value of `id` (its compact text); false if `id` was there.
    fn insert(&mut self, id: String, obj: &Map<String, Value>) -> serde_json::Result<bool> {
        let start = self.text.len();
        serde_json::to_writer(&mut self.text, obj)?;
        let span = (start, self.text.len() - start);
        Ok(self.index.insert(id.into_boxed_str(), span).is_none())
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The value of `id`, parsed (or taken from the values recently parsed).
    fn get(&self, id: &str) -> Option<SharedValue> {
        let &(start, len) = self.index.get(id)?;
        let mut parsed = self
            .parsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = parsed.get(&start) {
            return Some(Arc::clone(v));
        }
        // Text this table wrote from a parsed object: it parses back to that object.
        let v: Map<String, Value> = serde_json::from_slice(&self.text[start..start + len]).ok()?;
        if parsed.len() >= PARSED_CACHE {
            parsed.clear();
        }
        let v = Arc::new(v);
        parsed.insert(start, Arc::clone(&v));
        Some(v)
    }

    /// Take the ids a line lists under [`SHARED_KEY`] out of it and return the shared
    /// values they name, to be read in place beside the line's own members: the errors of
    /// [`SharedValues::expand`] (an unknown id; a key in the line and in a value, or in two
    /// values).
    pub fn groups(&self, line: &mut Map<String, Value>, what: &str) -> Result<Vec<SharedValue>> {
        let Some(ids) = line.remove(SHARED_KEY) else {
            return Ok(Vec::new());
        };
        let Some(ids) = ids.as_array() else {
            return Err(Error::new(
                ErrorKind::Findings,
                format!("{what}: `{SHARED_KEY}` is not a list"),
            ));
        };
        let mut out: Vec<SharedValue> = Vec::with_capacity(ids.len());
        for id in ids {
            let id = id.as_str().unwrap_or_default();
            let Some(obj) = self.get(id) else {
                return Err(Error::new(
                    ErrorKind::Findings,
                    format!("{what}: shared value `{id}` is not in {SHARED_FILE}"),
                ));
            };
            for k in obj.keys() {
                if line.contains_key(k) || out.iter().any(|g| g.contains_key(k)) {
                    return Err(Error::new(
                        ErrorKind::Findings,
                        format!("{what}: `{k}` is both in the line and in shared value `{id}`"),
                    ));
                }
            }
            out.push(obj);
        }
        Ok(out)
    }

    /// Merge the shared values a line lists back into it. An unknown id, or a key the line
    /// also has, is an error (`what` names the line).
    pub fn expand(&self, line: &mut Map<String, Value>, what: &str) -> Result<()> {
        for obj in self.groups(line, what)? {
            for (k, v) in obj.iter() {
                line.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }
}

/// The top-level object of `shared_values.json`, read for [`SharedValues::stream`]: its
/// `values` member into the table, every other member checked as a [`Value`] and dropped.
struct Top<'a> {
    t: &'a mut SharedValues,
    seen: &'a mut bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for Top<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Top<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the shared values document")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "values" {
                if *self.seen {
                    // A repeated `values`: the tree reading takes the last one.
                    return Err(serde::de::Error::custom("`values` twice"));
                }
                *self.seen = true;
                map.next_value_seed(Values { t: &mut *self.t })?;
            } else {
                map.next_value::<Value>()?;
            }
        }
        Ok(())
    }
}

/// The `values` object, a value at a time into the table.
struct Values<'a> {
    t: &'a mut SharedValues,
}

impl<'de> serde::de::DeserializeSeed<'de> for Values<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Values<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of shared values")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        use serde::de::Error as _;
        while let Some(id) = map.next_key::<String>()? {
            let Value::Object(obj) = map.next_value::<Value>()? else {
                return Err(A::Error::custom("a value that is not an object"));
            };
            if self.t.len() >= MAX_SHARED_VALUES {
                return Err(A::Error::custom("too many values"));
            }
            if !self.t.insert(id, &obj).map_err(A::Error::custom)? {
                return Err(A::Error::custom("an id twice"));
            }
        }
        Ok(())
    }
}

/// Read the JSON Lines of `reader` (the member `rel` at `path`) one at a time, expand each
/// with `shared`, parse it as `T` and hand it to `each`. A line longer than
/// [`MAX_LINE_BYTES`], or one that does not parse, is an error naming the line number.
pub fn for_each_line<T: DeserializeOwned>(
    reader: &mut dyn BufRead,
    path: &Path,
    shared: &SharedValues,
    each: &mut dyn FnMut(T) -> Result<()>,
) -> Result<u64> {
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        let got = read_line_limited(reader, &mut buf, MAX_LINE_BYTES)
            .map_err(|e| Error::io("read result file", path, e))?;
        if got == 0 {
            return Ok(n);
        }
        n += 1;
        if buf.len() > MAX_LINE_BYTES {
            return Err(Error::new(
                ErrorKind::Findings,
                format!("line {n} is longer than {MAX_LINE_BYTES} bytes"),
            )
            .with_path(path));
        }
        if let Some(item) = parse_line(&buf, n, path, shared)? {
            each(item)?;
        }
    }
}

/// Line `n` of the result file at `path` (its bytes, without the newline) as `T`, expanded
/// with `shared`; `None` for a blank line.
fn parse_line<T: DeserializeOwned>(
    buf: &[u8],
    n: u64,
    path: &Path,
    shared: &SharedValues,
) -> Result<Option<T>> {
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let what = format!("line {n}");
    let parsed = serde_json::from_slice::<Value>(buf).map_err(|e| {
        Error::new(
            ErrorKind::Findings,
            format!("{what} does not parse as JSON"),
        )
        .with_path(path)
        .with_source(e)
    })?;
    let Value::Object(mut obj) = parsed else {
        return Err(
            Error::new(ErrorKind::Findings, format!("{what} is not an object")).with_path(path),
        );
    };
    let groups = shared
        .groups(&mut obj, &what)
        .map_err(|e| e.with_path(path))?;
    let item = expanded::<T>(&obj, &groups).or_else(|_| {
        // Only for the message: the same deserialization again, tracking the path.
        let entries = obj
            .iter()
            .chain(groups.iter().flat_map(|g| g.iter()))
            .map(|(k, v)| (k.as_str(), v));
        serde_path_to_error::deserialize(
            serde::de::value::MapDeserializer::<_, serde_json::Error>::new(entries),
        )
        .map_err(|e| {
            let at = e.path().to_string();
            Error::new(
                ErrorKind::Findings,
                format!("{what} is not what the runner writes (at `{at}`)"),
            )
            .with_path(path)
            .with_source(e.into_inner())
        })
    })?;
    Ok(Some(item))
}

/// `T` from the members of `line` and of the shared values `groups` it lists, read in
/// place (nothing cloned): what merging them into one object and deserializing that gives.
fn expanded<T: DeserializeOwned>(
    line: &Map<String, Value>,
    groups: &[SharedValue],
) -> std::result::Result<T, serde_json::Error> {
    let entries = line
        .iter()
        .chain(groups.iter().flat_map(|g| g.iter()))
        .map(|(k, v)| (k.as_str(), v));
    T::deserialize(serde::de::value::MapDeserializer::<_, serde_json::Error>::new(entries))
}

/// Read one line (through `\n`) into `buf`, keeping at most `max + 1` bytes of it (the
/// rest is skipped); returns the bytes consumed (0 at the end).
fn read_line_limited(r: &mut dyn BufRead, buf: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let (done, used) = {
            let avail = match r.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(consumed);
            }
            let (done, used) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, avail.len()),
            };
            let room = (max + 1).saturating_sub(buf.len());
            let body = if done { used - 1 } else { used };
            buf.extend_from_slice(&avail[..body.min(room)]);
            (done, used)
        };
        r.consume(used);
        consumed += used;
        if done {
            return Ok(consumed);
        }
    }
}

/// Size and digests of a file read through [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Bytes read.
    pub size: u64,
    /// blake3, hex.
    pub blake3: String,
    /// sha256, hex.
    pub sha256: String,
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    b3: blake3::Hasher,
    sha: sha2::Sha256,
    size: u64,
}

impl<R: Read> Hashing<R> {
    /// `inner` hashed as it is read, behind a 256 KiB buffer.
    fn buffered(inner: R) -> BufReader<Self> {
        use sha2::Digest as _;
        BufReader::with_capacity(
            256 * 1024,
            Hashing {
                inner,
                b3: blake3::Hasher::new(),
                sha: sha2::Sha256::new(),
                size: 0,
            },
        )
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        self.b3.update(&buf[..n]);
        self.sha.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Read all of `reader` (the member at `path`): its lines go to `each` as in
/// [`for_each_line`] until one fails; the rest is read only to be hashed. Returns the
/// digests of every byte with the outcome of the lines (an I/O error is the outer error).
pub fn scan<T: DeserializeOwned>(
    reader: impl Read,
    path: &Path,
    shared: &SharedValues,
    each: &mut dyn FnMut(T) -> Result<()>,
) -> Result<(Digests, Result<u64>)> {
    let (d, outcome) = scan_with(
        reader,
        path,
        &mut |r| match for_each_line(r, path, shared, each) {
            Err(e) if e.kind() != ErrorKind::Findings => Err(e),
            other => Ok(other),
        },
    )?;
    Ok((d, outcome?))
}

/// Read all of `reader` (the member at `path`) once: `read` consumes what it needs of it
/// (parses a document from it, say), the rest is read only to be hashed. Returns the
/// digests of every byte with what `read` returned. Memory is the reader's buffer and
/// whatever `read` keeps, whatever the member's size.
pub fn scan_with<R>(
    reader: impl Read,
    path: &Path,
    read: &mut dyn FnMut(&mut dyn BufRead) -> R,
) -> Result<(Digests, R)> {
    let mut r = Hashing::buffered(reader);
    let got = read(&mut r);
    std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| Error::io("read", path, e))?;
    Ok((digests(r.into_inner()), got))
}

/// A result file read a line at a time on demand: the pull form of [`for_each_line`], for
/// a reader that walks two sorted files side by side (a merge join). Every byte is hashed
/// as it is read; [`LineReader::finish`] reads the rest and checks the digests against the
/// index entry it was given (a strict read), so what was taken from it may be used only
/// after `finish` succeeded.
pub struct LineReader<R: Read> {
    r: BufReader<Hashing<R>>,
    path: std::path::PathBuf,
    buf: Vec<u8>,
    n: u64,
    expect: Option<(u64, String)>,
}

impl<R: Read> LineReader<R> {
    /// Read `reader` (the member at `path`); `expect` is its indexed size and blake3 when
    /// the read is strict.
    pub fn new(reader: R, path: &Path, expect: Option<(u64, String)>) -> Self {
        Self {
            r: Hashing::buffered(reader),
            path: path.to_path_buf(),
            buf: Vec::new(),
            n: 0,
            expect,
        }
    }

    /// The next line as `T` (blank lines skipped), `None` at the end; errors as
    /// [`for_each_line`]'s.
    pub fn next_item<T: DeserializeOwned>(&mut self, shared: &SharedValues) -> Result<Option<T>> {
        while self.fill_next()? {
            if let Some(item) = parse_line(&self.buf, self.n, &self.path, shared)? {
                return Ok(Some(item));
            }
        }
        Ok(None)
    }

    /// The next line's bytes (without its newline, blank lines included), `None` at the
    /// end: for a plain JSON Lines file whose lines the caller parses itself. A line
    /// longer than [`MAX_LINE_BYTES`] is an error naming it.
    pub fn next_raw(&mut self) -> Result<Option<&[u8]>> {
        Ok(self.fill_next()?.then_some(self.buf.as_slice()))
    }

    /// Read the next line into the buffer (false at the end), counting it; a line longer
    /// than [`MAX_LINE_BYTES`] is an error naming it.
    fn fill_next(&mut self) -> Result<bool> {
        self.buf.clear();
        let got = read_line_limited(&mut self.r, &mut self.buf, MAX_LINE_BYTES)
            .map_err(|e| Error::io("read result file", &self.path, e))?;
        if got == 0 {
            return Ok(false);
        }
        self.n += 1;
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(Error::new(
                ErrorKind::Findings,
                format!("line {} is longer than {MAX_LINE_BYTES} bytes", self.n),
            )
            .with_path(&self.path));
        }
        Ok(true)
    }

    /// Read the rest, and check the digests of every byte against the index entry given
    /// (a mismatch is an error: nothing read from this file may be used).
    pub fn finish(mut self) -> Result<Digests> {
        std::io::copy(&mut self.r, &mut std::io::sink())
            .map_err(|e| Error::io("read", &self.path, e))?;
        let d = digests(self.r.into_inner());
        if let Some((size, blake3)) = &self.expect
            && (d.size != *size || d.blake3 != *blake3)
        {
            return Err(Error::new(
                ErrorKind::Findings,
                format!(
                    "changed since the bundle was checked: {} bytes, blake3 {}; the index says {size} bytes, {blake3}",
                    d.size, d.blake3
                ),
            )
            .with_path(&self.path));
        }
        Ok(d)
    }
}

fn digests<R>(h: Hashing<R>) -> Digests {
    use sha2::Digest as _;
    Digests {
        size: h.size,
        blake3: h.b3.finalize().to_hex().to_string(),
        sha256: h
            .sha
            .finalize()
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                use std::fmt::Write as _;
                let _ = write!(s, "{b:02x}");
                s
            }),
    }
}

/// The refusal of a bundle written with result schema version 1 (`old` is one of its
/// result files, at `path`).
pub fn refuse_v1(path: &Path, old: &str) -> Error {
    Error::input(
        path,
        format!(
            "holds `{old}`: its results are result schema_version 1 (one JSON document per \
             file); this nexusmon reads schema_version 2 (sorted JSON Lines with {SHARED_FILE})"
        ),
    )
    .with_hint(
        "re-run the plan with this nexusmon (`nexusmon run --plan PLAN`) for a version-2 bundle, \
         or read this one with the nexusmon release that wrote it",
    )
}

#[cfg(test)]
mod tests;
