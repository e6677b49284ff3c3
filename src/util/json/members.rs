//! [`Members`]: the members of one JSON object line, serialized with sorted keys into
//! buffers reused from line to line. The bytes are those of [`super::sorted_members`]
//! (`to_value`'s map, each value printed by `serde_json`), without its allocations: no
//! `String` per key, no `Vec` per member or per nested object. A result line is written
//! per observation (five per scenario) on the runner's main thread, where the per-member
//! buffers were most of its CPU.
//!
//! Every value goes straight into one byte buffer. An object's entries are written in the
//! order they are serialized (`"key":value`, comma separated) with each key's raw text and
//! its entry's span kept on a stack shared by all open objects; when the object ends, if
//! its keys came strictly ascending (the common case: derived structs list their fields in
//! order, `BTreeMap`s iterate sorted) nothing moves; otherwise its entries are sorted (a
//! stable sort, then of equal keys the last one serialized is kept, as `Map::insert`
//! replaces an earlier value) and rewritten in place. The top-level object's entries are
//! not joined: they stay spans of the buffer, sorted, for the caller to arrange.

use serde::ser::{self, Serialize};
use serde_json::Error;

type Res<T> = std::result::Result<T, Error>;

/// The members of one object, and the buffers they are written in (kept between lines).
#[derive(Debug, Default)]
pub struct Members {
    /// Value bytes: the top-level members' values, with the objects inside them.
    vals: Vec<u8>,
    /// The raw (unescaped) keys of the entries on `ents`.
    keys: String,
    /// Entries of the objects being written, innermost last; after [`Members::fill`], the
    /// top-level members, sorted.
    ents: Vec<Ent>,
    /// An object's bytes while its entries are reordered.
    tmp: Vec<u8>,
}

/// One entry: its key (a span of `keys`) and its bytes (a span of `vals`: the value for a
/// top-level member, `"key":value` inside an object).
#[derive(Debug, Clone, Copy)]
struct Ent {
    key: (usize, usize),
    start: usize,
    end: usize,
}

impl Members {
    /// Serialize `value`; false (and no members) if it is not a JSON object. The members
    /// are exactly those of [`super::sorted_members`], errors in the same cases.
    pub fn fill<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<bool> {
        self.vals.clear();
        self.keys.clear();
        self.ents.clear();
        let direct = match value.serialize(Top { m: self }) {
            Err(e) if e.to_string() == NOT_DIRECT => Ok(false),
            other => other,
        };
        match direct {
            Ok(true) => Ok(true),
            Ok(false) => {
                // Not a struct or map at the top: what `to_value` makes of it (rare).
                self.vals.clear();
                self.keys.clear();
                self.ents.clear();
                match serde_json::to_value(value)? {
                    serde_json::Value::Object(map) => {
                        for (k, v) in map {
                            let key = push_key(&mut self.keys, &k);
                            let start = self.vals.len();
                            serde_json::to_writer(&mut self.vals, &v)?;
                            let end = self.vals.len();
                            self.ents.push(Ent { key, start, end });
                        }
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            Err(e) => {
                self.ents.clear();
                Err(e)
            }
        }
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.ents.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.ents.is_empty()
    }

    /// Member `i` (in key order): its key and the compact sorted JSON of its value.
    pub fn get(&self, i: usize) -> (&str, &[u8]) {
        let e = self.ents[i];
        (&self.keys[e.key.0..e.key.1], &self.vals[e.start..e.end])
    }

    /// The members in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Add every member of `base` whose key none of these members has (theirs win), in
    /// key order: the members of the object `base` is the serialization of, with these
    /// members' values put in. So when `self` was filled from an object with a few of
    /// the fields of a larger one (the same names), and every other field of the larger
    /// one equals that of the object `base` was filled from, the result is exactly what
    /// [`Members::fill`] gives for the larger one — without serializing it again.
    pub fn overlay_on(&mut self, base: &Members) {
        let own = self.ents.len();
        for i in 0..base.len() {
            let (k, v) = base.get(i);
            let taken = self.ents[..own]
                .binary_search_by(|e| self.keys[e.key.0..e.key.1].cmp(k))
                .is_ok();
            if taken {
                continue;
            }
            let key = push_key(&mut self.keys, k);
            let start = self.vals.len();
            self.vals.extend_from_slice(v);
            let end = self.vals.len();
            self.ents.push(Ent { key, start, end });
        }
        if self.ents.len() > own {
            sort_entries(&self.keys, &mut self.ents, 0);
        }
    }
}

fn push_key(keys: &mut String, k: &str) -> (usize, usize) {
    let a = keys.len();
    keys.push_str(k);
    (a, keys.len())
}

/// Append `s` as a JSON string, escaped exactly as `serde_json` escapes it (`"`, `\` and
/// control characters below U+0020; everything else as it is).
pub fn push_str(out: &mut Vec<u8>, s: &str) -> Res<()> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, s)
    }
}

/// The entries `ents[base..]`, written from `vals`, sorted by key with of equal keys the
/// last one kept (a stable sort, then the later of equal neighbours), in place.
fn sort_entries(keys: &str, ents: &mut Vec<Ent>, base: usize) {
    let key = |e: &Ent| &keys[e.key.0..e.key.1];
    ents[base..].sort_by(|a, b| key(a).cmp(key(b)));
    let mut w = base;
    for i in base..ents.len() {
        if i + 1 < ents.len() && key(&ents[i]) == key(&ents[i + 1]) {
            continue;
        }
        ents[w] = ents[i];
        w += 1;
    }
    ents.truncate(w);
}

/// A value written into [`Members::vals`].
struct Val<'a> {
    m: &'a mut Members,
}

impl<'a> Val<'a> {
    fn raw(self, b: &[u8]) {
        self.m.vals.extend_from_slice(b);
    }
    fn num<T: Serialize>(self, v: T) -> Res<()> {
        // `serde_json` prints integers in decimal (as `{v}` does).
        serde_json::to_writer(&mut self.m.vals, &v)
    }
    /// `{"variant":` of an externally tagged variant.
    fn open_variant(&mut self, variant: &str) -> Res<()> {
        self.m.vals.push(b'{');
        push_str(&mut self.m.vals, variant)?;
        self.m.vals.push(b':');
        Ok(())
    }
    fn map(self, top: bool, variant: bool) -> Obj<'a> {
        if !top {
            self.m.vals.push(b'{');
        }
        Obj {
            body: self.m.vals.len(),
            base: self.m.ents.len(),
            keys_base: self.m.keys.len(),
            sorted: true,
            key: None,
            top,
            variant,
            m: self.m,
        }
    }
    fn seq(self, variant: bool) -> Seq<'a> {
        self.m.vals.push(b'[');
        Seq {
            m: self.m,
            any: false,
            variant,
        }
    }
}

impl<'a> ser::Serializer for Val<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Obj<'a>;
    type SerializeStruct = Obj<'a>;
    type SerializeStructVariant = Obj<'a>;

    fn serialize_bool(self, v: bool) -> Res<()> {
        {
            self.raw(if v { b"true" } else { b"false" });
            Ok(())
        }
    }
    fn serialize_i8(self, v: i8) -> Res<()> {
        self.num(v)
    }
    fn serialize_i16(self, v: i16) -> Res<()> {
        self.num(v)
    }
    fn serialize_i32(self, v: i32) -> Res<()> {
        self.num(v)
    }
    fn serialize_i64(self, v: i64) -> Res<()> {
        self.num(v)
    }
    fn serialize_i128(self, v: i128) -> Res<()> {
        // As `to_value`: what fits u64 or i64, else its "number out of range" error.
        if u64::try_from(v).is_ok() || i64::try_from(v).is_ok() {
            self.num(v)
        } else {
            serde_json::to_value(v).map(|_| ())
        }
    }
    fn serialize_u8(self, v: u8) -> Res<()> {
        self.num(v)
    }
    fn serialize_u16(self, v: u16) -> Res<()> {
        self.num(v)
    }
    fn serialize_u32(self, v: u32) -> Res<()> {
        self.num(v)
    }
    fn serialize_u64(self, v: u64) -> Res<()> {
        self.num(v)
    }
    fn serialize_u128(self, v: u128) -> Res<()> {
        if u64::try_from(v).is_ok() {
            self.num(v)
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
            self.num(v)
        } else {
            // `Value::from` a non-finite float is null.
            {
                self.raw(b"null");
                Ok(())
            }
        }
    }
    fn serialize_char(self, v: char) -> Res<()> {
        push_str(&mut self.m.vals, v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Res<()> {
        push_str(&mut self.m.vals, v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Res<()> {
        let mut s = self.seq(false);
        for b in v {
            ser::SerializeSeq::serialize_element(&mut s, b)?;
        }
        ser::SerializeSeq::end(s)
    }
    fn serialize_none(self) -> Res<()> {
        {
            self.raw(b"null");
            Ok(())
        }
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res<()> {
        {
            self.raw(b"null");
            Ok(())
        }
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Res<()> {
        {
            self.raw(b"null");
            Ok(())
        }
    }
    fn serialize_unit_variant(self, _n: &'static str, _i: u32, variant: &'static str) -> Res<()> {
        push_str(&mut self.m.vals, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Res<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        value: &T,
    ) -> Res<()> {
        self.open_variant(variant)?;
        value.serialize(Val { m: &mut *self.m })?;
        self.m.vals.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Res<Seq<'a>> {
        Ok(self.seq(false))
    }
    fn serialize_tuple(self, _len: usize) -> Res<Seq<'a>> {
        Ok(self.seq(false))
    }
    fn serialize_tuple_struct(self, _n: &'static str, _len: usize) -> Res<Seq<'a>> {
        Ok(self.seq(false))
    }
    fn serialize_tuple_variant(
        mut self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Res<Seq<'a>> {
        self.open_variant(variant)?;
        Ok(self.seq(true))
    }
    fn serialize_map(self, _len: Option<usize>) -> Res<Obj<'a>> {
        Ok(self.map(false, false))
    }
    fn serialize_struct(self, _n: &'static str, _len: usize) -> Res<Obj<'a>> {
        Ok(self.map(false, false))
    }
    fn serialize_struct_variant(
        mut self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Res<Obj<'a>> {
        self.open_variant(variant)?;
        Ok(self.map(false, true))
    }
}

/// An array being written.
struct Seq<'a> {
    m: &'a mut Members,
    any: bool,
    /// Inside `{"variant":…}` (a tuple variant), closed after the array.
    variant: bool,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        if self.any {
            self.m.vals.push(b',');
        }
        self.any = true;
        value.serialize(Val { m: &mut *self.m })
    }
    fn finish(self) {
        self.m.vals.push(b']');
        if self.variant {
            self.m.vals.push(b'}');
        }
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        self.element(value)
    }
    fn end(self) -> Res<()> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        self.element(value)
    }
    fn end(self) -> Res<()> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        self.element(value)
    }
    fn end(self) -> Res<()> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        self.element(value)
    }
    fn end(self) -> Res<()> {
        self.finish();
        Ok(())
    }
}

/// An object being written: the top-level one (its entries stay spans) or one inside it.
struct Obj<'a> {
    m: &'a mut Members,
    /// Where its first entry starts in `vals` (after `{`).
    body: usize,
    /// Its first entry on `ents`; its first key in `keys`.
    base: usize,
    keys_base: usize,
    /// Keys so far strictly ascending.
    sorted: bool,
    /// A map's key given by `serialize_key`, waiting for its value.
    key: Option<(usize, usize)>,
    top: bool,
    /// Inside `{"variant":…}` (a struct variant).
    variant: bool,
}

impl Obj<'_> {
    fn entry<T: Serialize + ?Sized>(&mut self, key: (usize, usize), value: &T) -> Res<()> {
        let m = &mut *self.m;
        if let Some(prev) = m.ents.len().checked_sub(1).filter(|&p| p >= self.base) {
            let p = m.ents[prev].key;
            if m.keys[p.0..p.1] >= m.keys[key.0..key.1] {
                self.sorted = false;
            }
        }
        if !self.top && m.ents.len() > self.base {
            m.vals.push(b',');
        }
        let start = m.vals.len();
        if !self.top {
            push_str(&mut m.vals, &m.keys[key.0..key.1])?;
            m.vals.push(b':');
        }
        value.serialize(Val { m: &mut *m })?;
        let end = m.vals.len();
        m.ents.push(Ent { key, start, end });
        Ok(())
    }

    fn finish(self) {
        let m = self.m;
        if !self.sorted {
            sort_entries(&m.keys, &mut m.ents, self.base);
        }
        if self.top {
            return;
        }
        if !self.sorted {
            // Rewrite the body in key order (the entries' spans are of the old body).
            m.tmp.clear();
            m.tmp.extend_from_slice(&m.vals[self.body..]);
            m.vals.truncate(self.body);
            for (i, e) in m.ents[self.base..].iter().enumerate() {
                if i > 0 {
                    m.vals.push(b',');
                }
                m.vals
                    .extend_from_slice(&m.tmp[e.start - self.body..e.end - self.body]);
            }
        }
        m.vals.push(b'}');
        if self.variant {
            m.vals.push(b'}');
        }
        m.ents.truncate(self.base);
        m.keys.truncate(self.keys_base);
    }
}

impl ser::SerializeMap for Obj<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res<()> {
        let a = self.m.keys.len();
        if key
            .serialize(super::sorted::KeyText(&mut self.m.keys))
            .is_err()
        {
            // Not a plain key: exactly as `serde_json` converts it (or its error).
            self.m.keys.truncate(a);
            let k = super::sorted::map_key(key)?;
            self.m.keys.push_str(&k);
        }
        self.key = Some((a, self.m.keys.len()));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        let key = self
            .key
            .take()
            .ok_or_else(|| <Error as ser::Error>::custom("serialize_value before serialize_key"))?;
        self.entry(key, value)
    }
    fn end(self) -> Res<()> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeStruct for Obj<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res<()> {
        let k = push_key(&mut self.m.keys, key);
        self.entry(k, value)
    }
    fn end(self) -> Res<()> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeStructVariant for Obj<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res<()> {
        let k = push_key(&mut self.m.keys, key);
        self.entry(k, value)
    }
    fn end(self) -> Res<()> {
        self.finish();
        Ok(())
    }
}

/// The top level: a struct or a map (also behind a newtype or an `Option`) is written as
/// the members; any other shape answers `false` (the caller takes it through `to_value`).
struct Top<'a> {
    m: &'a mut Members,
}

/// The top-level object, its `Ok` being "it was an object".
struct TopObj<'a>(Obj<'a>);

impl ser::SerializeMap for TopObj<'_> {
    type Ok = bool;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res<()> {
        ser::SerializeMap::serialize_key(&mut self.0, key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        ser::SerializeMap::serialize_value(&mut self.0, value)
    }
    fn end(self) -> Res<bool> {
        self.0.finish();
        Ok(true)
    }
}

impl ser::SerializeStruct for TopObj<'_> {
    type Ok = bool;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res<()> {
        ser::SerializeStruct::serialize_field(&mut self.0, key, value)
    }
    fn end(self) -> Res<bool> {
        self.0.finish();
        Ok(true)
    }
}

type No = ser::Impossible<bool, Error>;

impl<'a> ser::Serializer for Top<'a> {
    type Ok = bool;
    type Error = Error;
    type SerializeSeq = No;
    type SerializeTuple = No;
    type SerializeTupleStruct = No;
    type SerializeTupleVariant = No;
    type SerializeMap = TopObj<'a>;
    type SerializeStruct = TopObj<'a>;
    type SerializeStructVariant = No;

    fn serialize_map(self, _len: Option<usize>) -> Res<TopObj<'a>> {
        Ok(TopObj(Val { m: self.m }.map(true, false)))
    }
    fn serialize_struct(self, _n: &'static str, _len: usize) -> Res<TopObj<'a>> {
        self.serialize_map(None)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        value: &T,
    ) -> Res<bool> {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res<bool> {
        value.serialize(self)
    }
    // Every other shape: not an object, or an object `to_value` makes of a variant.
    fn serialize_bool(self, _: bool) -> Res<bool> {
        Ok(false)
    }
    fn serialize_i8(self, _: i8) -> Res<bool> {
        Ok(false)
    }
    fn serialize_i16(self, _: i16) -> Res<bool> {
        Ok(false)
    }
    fn serialize_i32(self, _: i32) -> Res<bool> {
        Ok(false)
    }
    fn serialize_i64(self, _: i64) -> Res<bool> {
        Ok(false)
    }
    fn serialize_u8(self, _: u8) -> Res<bool> {
        Ok(false)
    }
    fn serialize_u16(self, _: u16) -> Res<bool> {
        Ok(false)
    }
    fn serialize_u32(self, _: u32) -> Res<bool> {
        Ok(false)
    }
    fn serialize_u64(self, _: u64) -> Res<bool> {
        Ok(false)
    }
    fn serialize_f32(self, _: f32) -> Res<bool> {
        Ok(false)
    }
    fn serialize_f64(self, _: f64) -> Res<bool> {
        Ok(false)
    }
    fn serialize_char(self, _: char) -> Res<bool> {
        Ok(false)
    }
    fn serialize_str(self, _: &str) -> Res<bool> {
        Ok(false)
    }
    fn serialize_bytes(self, _: &[u8]) -> Res<bool> {
        Ok(false)
    }
    fn serialize_none(self) -> Res<bool> {
        Ok(false)
    }
    fn serialize_unit(self) -> Res<bool> {
        Ok(false)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Res<bool> {
        Ok(false)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Res<bool> {
        Ok(false)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Res<bool> {
        Ok(false)
    }
    fn serialize_seq(self, _: Option<usize>) -> Res<No> {
        Err(not_direct())
    }
    fn serialize_tuple(self, _: usize) -> Res<No> {
        Err(not_direct())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Res<No> {
        Err(not_direct())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Res<No> {
        Err(not_direct())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Res<No> {
        Err(not_direct())
    }
}

/// The marker error of a top-level sequence or variant (whose serializer must be
/// returned before its elements are known); [`Members::fill`] takes it through
/// `to_value`.
const NOT_DIRECT: &str = "nexusmon: not a struct or map at the top";

fn not_direct() -> Error {
    <Error as ser::Error>::custom(NOT_DIRECT)
}

#[cfg(test)]
mod tests {
    //! Generated: thousands of random values (every shape `sorted`'s generator makes:
    //! structs with fields out of order, flatten, duplicate keys, maps with non-string
    //! keys, variants, floats incl. NaN/inf, strings needing escapes, deep nesting), put
    //! at the top as a struct, a map, a `Value` or a non-object, must give exactly the
    //! members of the old path (`sorted::members`), errors in the same cases; one
    //! `Members` is reused for all of them (so nothing of a line leaks into the next).
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::Members;
    use crate::util::json::sorted::tests::{Node, key, node, string};
    use crate::util::testrng::Rng;

    /// A top-level value of the shapes lines have (and a few they do not).
    #[derive(Serialize)]
    #[serde(untagged)]
    enum TopLevel {
        /// A derived struct with a flattened map (duplicate keys possible).
        Line(Box<Line>),
        /// Any node at all (mostly not an object).
        Any(Node),
        /// A map with string keys around `$shared`.
        Map(BTreeMap<String, Node>),
        /// A map in a given order, duplicate and non-string keys included.
        Pairs(crate::util::json::sorted::tests::Pairs),
        /// A `Value` object.
        Value(serde_json::Value),
        /// Behind a newtype and an `Option`.
        Wrapped(Option<Box<TopLevel>>),
    }

    #[derive(Serialize)]
    struct Line {
        zeta: Node,
        #[serde(rename = "$shared")]
        shared: Option<Vec<u8>>,
        alpha: Node,
        #[serde(skip_serializing_if = "Option::is_none")]
        mid: Option<Node>,
        #[serde(flatten)]
        extra: BTreeMap<String, Node>,
        #[serde(rename = "é")]
        accent: String,
    }

    const KEYS: &[&str] = &[
        "#", "$", "$a", "$shared", "$sharee", "%", "A", "alpha", "zeta", "é", "",
    ];

    fn top(r: &mut Rng, depth: u32) -> TopLevel {
        let k = |r: &mut Rng| {
            if r.chance(50) {
                (*r.pick(KEYS)).to_string()
            } else {
                string(r)
            }
        };
        match r.below(8u8) {
            0 | 1 => TopLevel::Line(Box::new(Line {
                zeta: node(r, depth),
                shared: r.chance(20).then(|| vec![1, 2]),
                alpha: node(r, depth),
                mid: r.chance(50).then(|| node(r, depth)),
                extra: (0..r.below(5usize))
                    .map(|_| (k(r), node(r, depth)))
                    .collect(),
                accent: string(r),
            })),
            2 => TopLevel::Any(node(r, depth)),
            3 => TopLevel::Map(
                (0..r.below(6usize))
                    .map(|_| (k(r), node(r, depth)))
                    .collect(),
            ),
            4 => TopLevel::Pairs(crate::util::json::sorted::tests::Pairs(
                (0..r.below(6usize))
                    .map(|_| {
                        let kk = if r.chance(60) {
                            crate::util::json::sorted::tests::Key::Str(k(r))
                        } else {
                            key(r)
                        };
                        (kk, node(r, depth))
                    })
                    .collect(),
            )),
            5 => {
                let n = node(r, depth);
                TopLevel::Value(serde_json::to_value(&n).unwrap_or(serde_json::Value::Null))
            }
            6 => TopLevel::Value(serde_json::Value::Object(
                (0..r.below(6usize))
                    .map(|_| {
                        let n = node(r, depth);
                        (k(r), serde_json::to_value(&n).unwrap_or_default())
                    })
                    .collect(),
            )),
            _ => TopLevel::Wrapped(r.chance(80).then(|| Box::new(top(r, depth)))),
        }
    }

    #[test]
    fn random_values_give_the_members_and_errors_of_the_old_path() {
        let mut r = Rng(0x6d65_6d62);
        let mut m = Members::default();
        let (mut objects, mut others, mut errors) = (0, 0, 0);
        for i in 0..6000 {
            let depth = if i % 40 == 0 { 9 } else { 4 };
            let v = top(&mut r, depth);
            let want = super::super::sorted::members(&v);
            let got = m.fill(&v);
            match (&want, &got) {
                (Ok(Some(want)), Ok(true)) => {
                    let got: Vec<(String, Vec<u8>)> =
                        m.iter().map(|(k, v)| (k.to_owned(), v.to_vec())).collect();
                    let show = |x: &[(String, Vec<u8>)]| {
                        x.iter()
                            .map(|(k, v)| format!("{k:?}={}", String::from_utf8_lossy(v)))
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(show(&got), show(want), "case {i}");
                    assert_eq!(m.len(), want.len());
                    objects += 1;
                }
                (Ok(None), Ok(false)) => {
                    assert!(m.is_empty(), "case {i}");
                    others += 1;
                }
                (Err(_), Err(_)) => errors += 1,
                _ => panic!(
                    "case {i}: old {:?}, new {:?}",
                    want.as_ref()
                        .map(Option::is_some)
                        .map_err(ToString::to_string),
                    got.as_ref().map_err(ToString::to_string)
                ),
            }
        }
        // Every outcome was exercised often.
        assert!(
            objects > 2000 && others > 200 && errors > 50,
            "objects {objects}, not objects {others}, errors {errors}"
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut r = Rng(7);
        let mut out = Vec::new();
        for c in (0u32..0x3000)
            .filter_map(char::from_u32)
            .chain(['\u{10ffff}', '𝄞'])
        {
            out.clear();
            let s = format!("a{c}{}", string(&mut r));
            super::push_str(&mut out, &s).unwrap();
            assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{s:?}");
        }
    }
}
