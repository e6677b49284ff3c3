//! The sorted-key serializer behind [`super::to_sorted_pretty`] and
//! [`super::to_sorted_line`]: the bytes `serde_json` gives for `to_value(v)` (whose objects
//! are `BTreeMap`s, so keys come out in byte order), without building the `Value` tree.
//! Hand-written because no crate serializes with sorted keys without a tree: each object's
//! entries are serialized into buffers of their own (pretty) or one buffer per object
//! (compact), sorted by key (a later duplicate
//! key replaces an earlier one, as `Map::insert` does) and then written; arrays and scalars
//! go straight to the output. Memory is bounded by the largest object being sorted, not by
//! the document. Scalars and escapes are written by `serde_json` itself, so bytes match.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;

use serde::ser::{self, Serialize};
use serde_json::Error;

type Res<T> = std::result::Result<T, Error>;

/// Serialize `value` into `out`, pretty (two-space indent) or compact, keys sorted.
pub(super) fn write<W: Write, T: Serialize + ?Sized>(
    out: &mut W,
    pretty: bool,
    value: &T,
) -> Res<()> {
    write_at(out, pretty, 0, value)
}

/// [`write`] of a value nested `depth` levels deep in a pretty document: its inner lines
/// indented by `depth + 1` steps, its closing bracket by `depth` (what a value written at
/// depth 0 has once every newline of it is followed by `depth` steps of indentation).
pub(super) fn write_at<W: Write, T: Serialize + ?Sized>(
    out: &mut W,
    pretty: bool,
    depth: usize,
    value: &T,
) -> Res<()> {
    value.serialize(Ser { out, pretty, depth })
}

struct Ser<'a, W> {
    out: &'a mut W,
    pretty: bool,
    /// Nesting of the value being written (its closing bracket's indentation).
    depth: usize,
}

fn io(e: std::io::Error) -> Error {
    Error::io(e)
}

fn indent<W: Write>(out: &mut W, depth: usize) -> Res<()> {
    for _ in 0..depth {
        out.write_all(b"  ").map_err(io)?;
    }
    Ok(())
}

/// The separator before an array item or object key: `[`/`{` already written.
fn item_start<W: Write>(out: &mut W, pretty: bool, first: bool, depth: usize) -> Res<()> {
    if pretty {
        out.write_all(if first { b"\n" } else { b",\n" })
            .map_err(io)?;
        indent(out, depth + 1)
    } else if !first {
        out.write_all(b",").map_err(io)
    } else {
        Ok(())
    }
}

fn close<W: Write>(out: &mut W, pretty: bool, any: bool, depth: usize, c: u8) -> Res<()> {
    if pretty && any {
        out.write_all(b"\n").map_err(io)?;
        indent(out, depth)?;
    }
    out.write_all(&[c]).map_err(io)
}

fn write_str<W: Write>(out: &mut W, s: &str) -> Res<()> {
    serde_json::to_writer(out, s)
}

fn key_sep<W: Write>(out: &mut W, pretty: bool) -> Res<()> {
    out.write_all(if pretty { b": " } else { b":" }).map_err(io)
}

/// `{"variant": ` of an externally tagged variant, at `depth`.
fn open_variant<W: Write>(out: &mut W, pretty: bool, depth: usize, variant: &str) -> Res<()> {
    out.write_all(b"{").map_err(io)?;
    item_start(out, pretty, true, depth)?;
    write_str(out, variant)?;
    key_sep(out, pretty)
}

impl<'a, W: Write> Ser<'a, W> {
    fn raw(self, b: &[u8]) -> Res<()> {
        self.out.write_all(b).map_err(io)
    }
    fn int(self, v: impl std::fmt::Display) -> Res<()> {
        write!(self.out, "{v}").map_err(io)
    }
    fn map(self) -> MapSer<'a, W> {
        MapSer {
            out: self.out,
            pretty: self.pretty,
            depth: self.depth,
            entries: Vec::new(),
            shared: Vec::new(),
            next_key: None,
            variant: None,
        }
    }
    fn seq(self, variant: Option<&'static str>) -> Res<SeqSer<'a, W>> {
        let mut depth = self.depth;
        if let Some(v) = variant {
            open_variant(self.out, self.pretty, depth, v)?;
            depth += 1;
        }
        self.out.write_all(b"[").map_err(io)?;
        Ok(SeqSer {
            out: self.out,
            pretty: self.pretty,
            depth,
            any: false,
            variant: variant.is_some(),
        })
    }
}

impl<'a, W: Write> ser::Serializer for Ser<'a, W> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = SeqSer<'a, W>;
    type SerializeTuple = SeqSer<'a, W>;
    type SerializeTupleStruct = SeqSer<'a, W>;
    type SerializeTupleVariant = SeqSer<'a, W>;
    type SerializeMap = MapSer<'a, W>;
    type SerializeStruct = MapSer<'a, W>;
    type SerializeStructVariant = MapSer<'a, W>;

    fn serialize_bool(self, v: bool) -> Res<()> {
        self.raw(if v { b"true" } else { b"false" })
    }
    fn serialize_i8(self, v: i8) -> Res<()> {
        self.int(v)
    }
    fn serialize_i16(self, v: i16) -> Res<()> {
        self.int(v)
    }
    fn serialize_i32(self, v: i32) -> Res<()> {
        self.int(v)
    }
    fn serialize_i64(self, v: i64) -> Res<()> {
        self.int(v)
    }
    fn serialize_i128(self, v: i128) -> Res<()> {
        // As `to_value`: what fits u64 or i64, else its "number out of range" error.
        if u64::try_from(v).is_ok() || i64::try_from(v).is_ok() {
            self.int(v)
        } else {
            serde_json::to_value(v).map(|_| ())
        }
    }
    fn serialize_u8(self, v: u8) -> Res<()> {
        self.int(v)
    }
    fn serialize_u16(self, v: u16) -> Res<()> {
        self.int(v)
    }
    fn serialize_u32(self, v: u32) -> Res<()> {
        self.int(v)
    }
    fn serialize_u64(self, v: u64) -> Res<()> {
        self.int(v)
    }
    fn serialize_u128(self, v: u128) -> Res<()> {
        if u64::try_from(v).is_ok() {
            self.int(v)
        } else {
            serde_json::to_value(v).map(|_| ())
        }
    }
    fn serialize_f32(self, v: f32) -> Res<()> {
        // `Value` holds an f32 as the f64 it widens to.
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Res<()> {
        if v.is_finite() {
            serde_json::to_writer(self.out, &v)
        } else {
            // `Value::from` a non-finite float is null.
            self.raw(b"null")
        }
    }
    fn serialize_char(self, v: char) -> Res<()> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Res<()> {
        write_str(self.out, v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Res<()> {
        let mut s = self.seq(None)?;
        for b in v {
            ser::SerializeSeq::serialize_element(&mut s, b)?;
        }
        ser::SerializeSeq::end(s)
    }
    fn serialize_none(self) -> Res<()> {
        self.raw(b"null")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res<()> {
        self.raw(b"null")
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Res<()> {
        self.raw(b"null")
    }
    fn serialize_unit_variant(self, _n: &'static str, _i: u32, variant: &'static str) -> Res<()> {
        write_str(self.out, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Res<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        value: &T,
    ) -> Res<()> {
        open_variant(self.out, self.pretty, self.depth, variant)?;
        value.serialize(Ser {
            out: &mut *self.out,
            pretty: self.pretty,
            depth: self.depth + 1,
        })?;
        close(self.out, self.pretty, true, self.depth, b'}')
    }
    fn serialize_seq(self, _len: Option<usize>) -> Res<SeqSer<'a, W>> {
        self.seq(None)
    }
    fn serialize_tuple(self, _len: usize) -> Res<SeqSer<'a, W>> {
        self.seq(None)
    }
    fn serialize_tuple_struct(self, _n: &'static str, _len: usize) -> Res<SeqSer<'a, W>> {
        self.seq(None)
    }
    fn serialize_tuple_variant(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Res<SeqSer<'a, W>> {
        self.seq(Some(variant))
    }
    fn serialize_map(self, _len: Option<usize>) -> Res<MapSer<'a, W>> {
        Ok(self.map())
    }
    fn serialize_struct(self, _n: &'static str, _len: usize) -> Res<MapSer<'a, W>> {
        Ok(self.map())
    }
    fn serialize_struct_variant(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Res<MapSer<'a, W>> {
        let mut m = self.map();
        m.variant = Some(variant);
        Ok(m)
    }
}

/// An array being written straight to the output.
pub(super) struct SeqSer<'a, W> {
    out: &'a mut W,
    pretty: bool,
    depth: usize,
    any: bool,
    /// Inside `{"variant": …}` (a tuple variant), closed after the array.
    variant: bool,
}

impl<W: Write> SeqSer<'_, W> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        item_start(self.out, self.pretty, !self.any, self.depth)?;
        self.any = true;
        value.serialize(Ser {
            out: &mut *self.out,
            pretty: self.pretty,
            depth: self.depth + 1,
        })
    }
    fn finish(self) -> Res<()> {
        close(self.out, self.pretty, self.any, self.depth, b']')?;
        if self.variant {
            close(self.out, self.pretty, true, self.depth - 1, b'}')?;
        }
        Ok(())
    }
}

impl<W: Write> ser::SerializeSeq for SeqSer<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        self.element(value)
    }
    fn end(self) -> Res<()> {
        self.finish()
    }
}

impl<W: Write> ser::SerializeTuple for SeqSer<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        self.element(value)
    }
    fn end(self) -> Res<()> {
        self.finish()
    }
}

impl<W: Write> ser::SerializeTupleStruct for SeqSer<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        self.element(value)
    }
    fn end(self) -> Res<()> {
        self.finish()
    }
}

impl<W: Write> ser::SerializeTupleVariant for SeqSer<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        self.element(value)
    }
    fn end(self) -> Res<()> {
        self.finish()
    }
}

/// An object: each entry's value is serialized into its own buffer (at the indentation it
/// will be written at), and the entries are written sorted when the object ends.
pub(super) struct MapSer<'a, W> {
    out: &'a mut W,
    pretty: bool,
    depth: usize,
    /// Each entry's key and where its value is: its own buffer, or (compact output) a
    /// range of `shared`.
    entries: Vec<(Cow<'static, str>, Slot)>,
    /// Compact output: every entry's value in one buffer (one allocation per object
    /// instead of one per member; a compact object is one line). Pretty output (whole
    /// documents) keeps one buffer per entry, freed as it is written.
    shared: Vec<u8>,
    next_key: Option<String>,
    /// Inside `{"variant": …}` (a struct variant).
    variant: Option<&'static str>,
}

/// Where an entry's value bytes are.
enum Slot {
    Own(Vec<u8>),
    Shared(std::ops::Range<usize>),
}

impl<W: Write> MapSer<'_, W> {
    fn value_depth(&self) -> usize {
        self.depth + 1 + usize::from(self.variant.is_some())
    }
    fn entry<T: Serialize + ?Sized>(&mut self, key: Cow<'static, str>, value: &T) -> Res<()> {
        let depth = self.value_depth();
        if self.pretty {
            let mut buf = Vec::new();
            value.serialize(Ser {
                out: &mut buf,
                pretty: true,
                depth,
            })?;
            self.entries.push((key, Slot::Own(buf)));
        } else {
            let start = self.shared.len();
            value.serialize(Ser {
                out: &mut self.shared,
                pretty: false,
                depth,
            })?;
            self.entries
                .push((key, Slot::Shared(start..self.shared.len())));
        }
        Ok(())
    }
    fn finish(mut self) -> Res<()> {
        let (pretty, out) = (self.pretty, &mut *self.out);
        let mut depth = self.depth;
        if let Some(v) = self.variant {
            open_variant(out, pretty, depth, v)?;
            depth += 1;
        }
        // Stable, so among equal keys the last one serialized is last: it is the one kept,
        // as a later `Map::insert` replaces an earlier value.
        if !self.entries.is_sorted_by(|a, b| a.0 < b.0) {
            self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        }
        out.write_all(b"{").map_err(io)?;
        let mut any = false;
        // By value: each entry's buffer is freed once written, so the object is not held
        // twice (entries and output) while it is written.
        let mut entries = std::mem::take(&mut self.entries).into_iter().peekable();
        while let Some((k, v)) = entries.next() {
            if entries.peek().is_some_and(|next| next.0 == k) {
                continue;
            }
            item_start(out, pretty, !any, depth)?;
            any = true;
            write_str(out, &k)?;
            key_sep(out, pretty)?;
            let bytes = match &v {
                Slot::Own(b) => b.as_slice(),
                Slot::Shared(r) => self.shared.get(r.clone()).unwrap_or_default(),
            };
            out.write_all(bytes).map_err(io)?;
        }
        close(out, pretty, any, depth, b'}')?;
        if self.variant.is_some() {
            close(out, pretty, true, depth - 1, b'}')?;
        }
        Ok(())
    }
}

impl<W: Write> ser::SerializeMap for MapSer<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res<()> {
        self.next_key = Some(map_key(key)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        let key = self
            .next_key
            .take()
            .ok_or_else(|| <Error as ser::Error>::custom("serialize_value before serialize_key"))?;
        self.entry(Cow::Owned(key), value)
    }
    fn end(self) -> Res<()> {
        self.finish()
    }
}

impl<W: Write> ser::SerializeStruct for MapSer<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res<()> {
        self.entry(Cow::Borrowed(key), value)
    }
    fn end(self) -> Res<()> {
        self.finish()
    }
}

impl<W: Write> ser::SerializeStructVariant for MapSer<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res<()> {
        self.entry(Cow::Borrowed(key), value)
    }
    fn end(self) -> Res<()> {
        self.finish()
    }
}

/// One member of an object: its key and its value's compact sorted JSON.
pub(super) type Member = (String, Vec<u8>);

/// The members of `value` if it is a JSON object as `to_value` makes it: each key with the
/// compact sorted bytes of its value, sorted by key (a later duplicate replacing an earlier
/// one), exactly the entries of `to_value(value)`'s map, each printed by `serde_json`.
/// `None` if the value is not an object. Structs and maps (also behind a newtype or an
/// `Option`) take the direct path; any other shape goes through `to_value` (rare: a line is
/// a struct).
pub(super) fn members<T: Serialize + ?Sized>(value: &T) -> Res<Option<Vec<Member>>> {
    match value.serialize(Top) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.to_string() == NOT_DIRECT => match serde_json::to_value(value)? {
            serde_json::Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| Ok((k, serde_json::to_vec(&v)?)))
                .collect::<Res<Vec<Member>>>()
                .map(Some),
            _ => Ok(None),
        },
        Err(e) => Err(e),
    }
}

/// The marker error of a top-level value [`members`] takes through `to_value`.
const NOT_DIRECT: &str = "nexusmon: not a struct or map at the top";

fn not_direct() -> Error {
    <Error as ser::Error>::custom(NOT_DIRECT)
}

/// The top level of [`members`]: a struct or a map is collected; anything else is
/// [`NOT_DIRECT`].
struct Top;

/// A top-level object's members as they are serialized.
struct TopMap {
    entries: Vec<Member>,
    next_key: Option<String>,
}

impl TopMap {
    fn entry<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> Res<()> {
        let mut buf = Vec::new();
        value.serialize(Ser {
            out: &mut buf,
            pretty: false,
            depth: 0,
        })?;
        self.entries.push((key, buf));
        Ok(())
    }
    fn finish(mut self) -> Vec<Member> {
        // As `MapSer::finish`: stable, so of equal keys the last serialized is kept.
        if !self.entries.is_sorted_by(|a, b| a.0 < b.0) {
            self.entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut kept: Vec<Member> = Vec::with_capacity(self.entries.len());
            for e in self.entries {
                match kept.last_mut() {
                    Some(last) if last.0 == e.0 => *last = e,
                    _ => kept.push(e),
                }
            }
            return kept;
        }
        self.entries
    }
}

impl ser::SerializeMap for TopMap {
    type Ok = Vec<Member>;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res<()> {
        self.next_key = Some(map_key(key)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        let key = self
            .next_key
            .take()
            .ok_or_else(|| <Error as ser::Error>::custom("serialize_value before serialize_key"))?;
        self.entry(key, value)
    }
    fn end(self) -> Res<Vec<Member>> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for TopMap {
    type Ok = Vec<Member>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res<()> {
        self.entry(key.to_owned(), value)
    }
    fn end(self) -> Res<Vec<Member>> {
        Ok(self.finish())
    }
}

impl ser::Serializer for Top {
    type Ok = Vec<Member>;
    type Error = Error;
    type SerializeSeq = ser::Impossible<Vec<Member>, Error>;
    type SerializeTuple = ser::Impossible<Vec<Member>, Error>;
    type SerializeTupleStruct = ser::Impossible<Vec<Member>, Error>;
    type SerializeTupleVariant = ser::Impossible<Vec<Member>, Error>;
    type SerializeMap = TopMap;
    type SerializeStruct = TopMap;
    type SerializeStructVariant = ser::Impossible<Vec<Member>, Error>;

    fn serialize_map(self, _len: Option<usize>) -> Res<TopMap> {
        Ok(TopMap {
            entries: Vec::new(),
            next_key: None,
        })
    }
    fn serialize_struct(self, _n: &'static str, _len: usize) -> Res<TopMap> {
        self.serialize_map(None)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        value: &T,
    ) -> Res<Vec<Member>> {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res<Vec<Member>> {
        value.serialize(self)
    }
    // Every other shape: not an object, or an object `to_value` makes of a variant.
    fn serialize_bool(self, _: bool) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_i8(self, _: i8) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_i16(self, _: i16) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_i32(self, _: i32) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_i64(self, _: i64) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_u8(self, _: u8) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_u16(self, _: u16) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_u32(self, _: u32) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_u64(self, _: u64) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_f32(self, _: f32) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_f64(self, _: f64) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_char(self, _: char) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_str(self, _: &str) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_bytes(self, _: &[u8]) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_none(self) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_unit(self) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Res<Vec<Member>> {
        Err(not_direct())
    }
    fn serialize_seq(self, _: Option<usize>) -> Res<Self::SerializeSeq> {
        Err(not_direct())
    }
    fn serialize_tuple(self, _: usize) -> Res<Self::SerializeTuple> {
        Err(not_direct())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Res<Self::SerializeTupleStruct> {
        Err(not_direct())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Res<Self::SerializeTupleVariant> {
        Err(not_direct())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Res<Self::SerializeStructVariant> {
        Err(not_direct())
    }
}

/// The object key `to_value` makes of a map key: a string as is, anything else (integers,
/// bools, floats, chars, unit variants — or its error) exactly as `serde_json` converts it,
/// by asking `serde_json` for a one-entry object with that key.
pub(super) fn map_key<T: Serialize + ?Sized>(key: &T) -> Res<String> {
    struct One<'k, K: ?Sized>(&'k K);
    impl<K: Serialize + ?Sized> Serialize for One<'_, K> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            use ser::SerializeMap;
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry(self.0, &())?;
            m.end()
        }
    }
    // The fast path: a string key (the common case) without a detour.
    let mut text = String::new();
    match key.serialize(KeyText(&mut text)) {
        Ok(()) => Ok(text),
        Err(_) => match serde_json::to_value(One(key))? {
            serde_json::Value::Object(m) => m
                .into_iter()
                .next()
                .map(|(k, _)| k)
                .ok_or_else(|| <Error as ser::Error>::custom("map key vanished")),
            _ => Err(<Error as ser::Error>::custom(
                "map key is not an object key",
            )),
        },
    }
}

/// A map key written as the text `to_value` makes of it, for the plain cases
/// (strings, unit variants, 32/64-bit integers, `Display`): anything else is an error, and
/// the caller asks [`map_key`] (whose own fast path this is too).
pub(super) struct KeyText<'a>(pub(super) &'a mut String);

impl ser::Serializer for KeyText<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Res<()> {
        self.0.push_str(v);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _n: &'static str, v: &T) -> Res<()> {
        v.serialize(self)
    }
    fn serialize_unit_variant(self, _n: &'static str, _i: u32, v: &'static str) -> Res<()> {
        self.0.push_str(v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Res<()> {
        write!(self.0, "{v}").map_err(|_| other())
    }
    fn serialize_u32(self, v: u32) -> Res<()> {
        write!(self.0, "{v}").map_err(|_| other())
    }
    fn serialize_i64(self, v: i64) -> Res<()> {
        write!(self.0, "{v}").map_err(|_| other())
    }
    fn serialize_i32(self, v: i32) -> Res<()> {
        write!(self.0, "{v}").map_err(|_| other())
    }
    fn collect_str<T: std::fmt::Display + ?Sized>(self, v: &T) -> Res<()> {
        write!(self.0, "{v}").map_err(|_| other())
    }
    // Everything else goes the slow way (`map_key`), which has serde_json's answer.
    fn serialize_bool(self, _: bool) -> Res<()> {
        Err(other())
    }
    fn serialize_i8(self, _: i8) -> Res<()> {
        Err(other())
    }
    fn serialize_i16(self, _: i16) -> Res<()> {
        Err(other())
    }
    fn serialize_u8(self, _: u8) -> Res<()> {
        Err(other())
    }
    fn serialize_u16(self, _: u16) -> Res<()> {
        Err(other())
    }
    fn serialize_f32(self, _: f32) -> Res<()> {
        Err(other())
    }
    fn serialize_f64(self, _: f64) -> Res<()> {
        Err(other())
    }
    fn serialize_char(self, _: char) -> Res<()> {
        Err(other())
    }
    fn serialize_bytes(self, _: &[u8]) -> Res<()> {
        Err(other())
    }
    fn serialize_none(self) -> Res<()> {
        Err(other())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Res<()> {
        Err(other())
    }
    fn serialize_unit(self) -> Res<()> {
        Err(other())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Res<()> {
        Err(other())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Res<()> {
        Err(other())
    }
    fn serialize_seq(self, _: Option<usize>) -> Res<Self::SerializeSeq> {
        Err(other())
    }
    fn serialize_tuple(self, _: usize) -> Res<Self::SerializeTuple> {
        Err(other())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Res<Self::SerializeTupleStruct> {
        Err(other())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Res<Self::SerializeTupleVariant> {
        Err(other())
    }
    fn serialize_map(self, _: Option<usize>) -> Res<Self::SerializeMap> {
        Err(other())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Res<Self::SerializeStruct> {
        Err(other())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Res<Self::SerializeStructVariant> {
        Err(other())
    }
}

fn other() -> Error {
    <Error as ser::Error>::custom("not a plain key")
}

#[cfg(test)]
// Narrowing a random f64 to an f32 field is the point (NaN, inf and rounding included).
#[allow(clippy::cast_possible_truncation)]
pub(crate) mod tests {
    //! Generated: thousands of random values of derived types (fields declared out of
    //! order, every enum variant kind, flatten, maps with string and non-string keys,
    //! floats incl. NaN/inf/-0.0, odd strings, deep nesting) must give byte for byte what
    //! the old path gives (`to_value`, then `serde_json` printing), errors in the same cases.
    use std::collections::{BTreeMap, HashMap};

    use serde::Serialize;

    use crate::util::testrng::Rng;

    fn oracle_pretty<T: Serialize>(v: &T) -> Option<Vec<u8>> {
        let v = serde_json::to_value(v).ok()?;
        let mut out = serde_json::to_vec_pretty(&v).ok()?;
        out.push(b'\n');
        Some(out)
    }

    fn oracle_line<T: Serialize>(v: &T) -> Option<String> {
        serde_json::to_string(&serde_json::to_value(v).ok()?).ok()
    }

    pub(crate) struct Bytes(Vec<u8>);
    impl Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    #[derive(Serialize)]
    #[serde(untagged)]
    pub(crate) enum Key {
        Str(String),
        U8(u8),
        I64(i64),
        U128(u128),
        Bool(bool),
        F64(f64),
        Char(char),
        Unit(Kind),
        None(Option<u8>),
        Nothing(()),
        List(Vec<u8>),
    }

    /// A map with any keys, in the given order, duplicates included.
    pub(crate) struct Pairs(pub(crate) Vec<(Key, Node)>);
    impl Serialize for Pairs {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }

    #[derive(Serialize, Clone, Copy)]
    pub(crate) enum Kind {
        Zed,
        Alpha,
    }

    #[derive(Serialize)]
    pub(crate) enum Variant {
        Unit,
        New(Box<Node>),
        Tuple(i8, Box<Node>, Kind),
        Struct {
            zz: Option<u32>,
            aa: Box<Node>,
        },
        #[serde(rename = "é")]
        Renamed,
    }

    #[derive(Serialize)]
    pub(crate) struct Rec {
        zeta: Option<Box<Node>>,
        mid: Vec<Node>,
        alpha: f32,
        #[serde(skip_serializing_if = "Option::is_none")]
        beta: Option<String>,
        #[serde(rename = "Z")]
        capital: Variant,
    }

    #[derive(Serialize)]
    pub(crate) struct Flat {
        zz: u8,
        #[serde(flatten)]
        rest: BTreeMap<String, Node>,
        aa: Kind,
    }

    #[derive(Serialize)]
    pub(crate) struct UnitS;
    #[derive(Serialize)]
    pub(crate) struct NewS(Box<Node>);
    #[derive(Serialize)]
    pub(crate) struct TupS(f64, Box<Node>);

    #[derive(Serialize)]
    #[serde(untagged)]
    pub(crate) enum Node {
        Null,
        Bool(bool),
        I64(i64),
        U64(u64),
        I128(i128),
        U128(u128),
        F32(f32),
        F64(f64),
        Str(String),
        Char(char),
        Bytes(Bytes),
        Unit(()),
        UnitS(UnitS),
        NewS(NewS),
        TupS(TupS),
        Rec(Box<Rec>),
        Flat(Flat),
        Variant(Variant),
        List(Vec<Node>),
        Hash(HashMap<String, Node>),
        ByInt(BTreeMap<i32, Node>),
        Pairs(Pairs),
        Value(serde_json::Value),
    }

    pub(crate) fn string(r: &mut Rng) -> String {
        const POOL: &[char] = &[
            'a', 'b', 'z', 'A', '_', '0', ' ', '"', '\\', '/', '\u{0}', '\u{1}', '\n', '\t',
            '\u{1f}', '\u{7f}', 'é', 'ß', '\u{2028}', '\u{fffd}', '𝄞', '~',
        ];
        (0..r.below(6usize)).map(|_| *r.pick(POOL)).collect()
    }

    pub(crate) fn float(r: &mut Rng) -> f64 {
        match r.below(10u8) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => -0.0,
            4 => 0.1,
            5 => 1e300,
            6 => 5e-324,
            7 => f64::from(r.below(1000u32)),
            _ => f64::from_bits(r.next()),
        }
    }

    pub(crate) fn key(r: &mut Rng) -> Key {
        match r.below(40u8) {
            0 => Key::None(None),
            1 => Key::Nothing(()),
            2 => Key::List(vec![1]),
            3 => Key::F64(float(r)),
            4 => Key::U128(u128::from(r.next()) << r.below(70u32)),
            5 => Key::Bool(r.chance(50)),
            6 => Key::Char(*r.pick(&['a', '\n', 'é'])),
            7 => Key::Unit(*r.pick(&[Kind::Zed, Kind::Alpha])),
            8..=12 => Key::U8(r.below(5u8)),
            13..=16 => Key::I64(r.below(7i64) - 3),
            _ => Key::Str(string(r)),
        }
    }

    pub(crate) fn node(r: &mut Rng, depth: u32) -> Node {
        let leaf = depth == 0 || r.chance(35);
        let pick = if leaf { r.below(14u8) } else { r.below(24u8) };
        let d = depth.saturating_sub(1);
        let kids = |r: &mut Rng| (0..r.below(4usize)).map(|_| node(r, d)).collect();
        match pick {
            0 => Node::Null,
            1 => Node::Bool(r.chance(50)),
            2 => Node::I64(r.next().cast_signed()),
            3 => Node::U64(r.next()),
            // Mostly in range; sometimes beyond i64/u64 (an error in both paths).
            4 => Node::I128(if r.chance(3) {
                -(1i128 << 100)
            } else {
                i128::from(r.next().cast_signed())
            }),
            5 => Node::U128(u128::from(r.next()) << if r.chance(3) { 64 } else { 0 }),
            6 => Node::F32(float(r) as f32),
            7 => Node::F64(float(r)),
            8 => Node::Str(string(r)),
            9 => Node::Char(*r.pick(&['x', '\u{0}', '"', '𝄞'])),
            10 => Node::Bytes(Bytes(
                (0..r.below(4usize))
                    .map(|_| r.below(256u64) as u8)
                    .collect(),
            )),
            11 => Node::Unit(()),
            12 => Node::UnitS(UnitS),
            13 => Node::List(Vec::new()),
            14 => Node::NewS(NewS(Box::new(node(r, d)))),
            15 => Node::TupS(TupS(float(r), Box::new(node(r, d)))),
            16 => Node::Rec(Box::new(Rec {
                zeta: r.chance(50).then(|| Box::new(node(r, d))),
                mid: kids(r),
                alpha: float(r) as f32,
                beta: r.chance(50).then(|| string(r)),
                capital: variant(r, d),
            })),
            17 => Node::Flat(Flat {
                zz: r.below(9u8),
                rest: (0..r.below(4usize))
                    .map(|_| {
                        let k = if r.chance(30) { "zz".into() } else { string(r) };
                        (k, node(r, d))
                    })
                    .collect(),
                aa: Kind::Alpha,
            }),
            18 => Node::Variant(variant(r, d)),
            19 => Node::List(kids(r)),
            20 => Node::Hash(
                (0..r.below(5usize))
                    .map(|_| (string(r), node(r, d)))
                    .collect(),
            ),
            21 => Node::ByInt(
                (0..r.below(5usize))
                    .map(|_| (r.below(30i32) - 15, node(r, d)))
                    .collect(),
            ),
            22 => Node::Pairs(Pairs(
                (0..r.below(5usize)).map(|_| (key(r), node(r, d))).collect(),
            )),
            _ => {
                let n = node(r, d);
                Node::Value(serde_json::to_value(&n).unwrap_or(serde_json::Value::Null))
            }
        }
    }

    pub(crate) fn variant(r: &mut Rng, d: u32) -> Variant {
        match r.below(5u8) {
            0 => Variant::Unit,
            1 => Variant::New(Box::new(node(r, d))),
            2 => Variant::Tuple(r.below(100i8), Box::new(node(r, d)), Kind::Zed),
            3 => Variant::Struct {
                zz: r.chance(50).then(|| r.below(9u32)),
                aa: Box::new(node(r, d)),
            },
            _ => Variant::Renamed,
        }
    }

    #[test]
    fn random_values_give_the_bytes_and_errors_of_the_value_path() {
        let mut r = Rng(0x5027_ed15);
        let (mut ok, mut err) = (0, 0);
        for i in 0..4000 {
            let depth = if i % 50 == 0 { 12 } else { 5 };
            let v = node(&mut r, depth);
            let want = oracle_pretty(&v);
            let got = super::super::to_sorted_pretty(&v).ok();
            assert_eq!(
                got.as_deref().map(String::from_utf8_lossy),
                want.as_deref().map(String::from_utf8_lossy),
                "pretty, case {i}"
            );
            let mut streamed = Vec::new();
            let wrote = super::super::write_sorted_pretty(&v, &mut streamed).is_ok();
            assert_eq!(wrote, want.is_some(), "streamed, case {i}");
            if let Some(w) = &want {
                assert_eq!(&streamed, w, "streamed, case {i}");
            }
            assert_eq!(
                super::super::to_sorted_line(&v).ok(),
                oracle_line(&v),
                "line, case {i}"
            );
            if want.is_some() {
                ok += 1;
            } else {
                err += 1;
            }
        }
        // Both outcomes were exercised often.
        assert!(ok > 1000 && err > 20, "ok {ok}, errors {err}");
    }

    /// A value written where it sits in a pretty document (`write_sorted_pretty_at`, the
    /// manifest's and expected matrix's entries) is the value path's pretty text with every
    /// newline followed by that indentation: random values at indentations of 0-6 levels
    /// and at ones that are not two spaces per level (the fallback), errors where the value
    /// path errs.
    #[test]
    fn values_written_at_an_indentation_are_the_value_paths_text_indented() {
        let mut r = Rng(0x1d_e27a);
        let (mut ok, mut err, mut odd) = (0, 0, 0);
        for i in 0..3000 {
            let v = node(&mut r, if i % 40 == 0 { 9 } else { 4 });
            let indent = match r.below(10u8) {
                0 => "\t".to_string(),
                1 => " ".repeat(1 + 2 * r.below(3usize)),
                2 => "  \t ".to_string(),
                _ => "  ".repeat(r.below(7usize)),
            };
            let even = indent.len().is_multiple_of(2) && indent.bytes().all(|b| b == b' ');
            let want = oracle_pretty(&v).map(|mut t| {
                t.pop();
                String::from_utf8(t)
                    .unwrap()
                    .replace('\n', &format!("\n{indent}"))
            });
            let mut got = Vec::new();
            let wrote = super::super::write_sorted_pretty_at(&v, &indent, &mut got).is_ok();
            assert_eq!(wrote, want.is_some(), "case {i}, indent {indent:?}");
            if let Some(w) = want {
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    w,
                    "case {i}, indent {indent:?}"
                );
                ok += 1;
                odd += usize::from(!even);
            } else {
                err += 1;
            }
        }
        assert!(
            ok > 1000 && err > 20 && odd > 100,
            "ok {ok}, errors {err}, odd {odd}"
        );
    }

    #[test]
    fn deep_nesting_matches() {
        let mut v = Node::Null;
        for i in 0..200 {
            v = match i % 3 {
                0 => Node::List(vec![v, Node::Bool(true)]),
                1 => Node::Variant(Variant::Struct {
                    zz: None,
                    aa: Box::new(v),
                }),
                _ => Node::Hash(HashMap::from([("k".into(), v), ("a".into(), Node::Null)])),
            };
        }
        assert_eq!(super::super::to_sorted_pretty(&v).ok(), oracle_pretty(&v));
        assert_eq!(super::super::to_sorted_line(&v).ok(), oracle_line(&v));
    }
}
