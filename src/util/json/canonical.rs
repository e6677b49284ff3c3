//! RFC 8785 (JCS) canonical JSON, the bytes of `serde_json_canonicalizer` written without
//! its per-member allocations.
//!
//! `serde_json_canonicalizer` is a `serde_json` formatter that buffers every member of an
//! open object in a vector of its own (key and value), parses each key again as JSON to
//! sort it, and boxes a writer for every token: most of the instructions of a plan's
//! digest went there. [`Jcs`] is a formatter of the same bytes that writes the open
//! objects into one buffer, notes where each member's key and value end, and rearranges
//! an object's members only when they were not written in order (a `BTreeMap` of ids, the
//! common case, never is); the order is the one RFC 8785 prescribes (keys compared as
//! UTF-16 code units after unescaping), equal keys are an error as there, and numbers are
//! formatted by `serde_json_canonicalizer` itself. The `serde_json` serializer drives both
//! formatters through the same calls, and [`Top`] refuses a bare non-finite number as
//! `serde_json_canonicalizer`'s own serializer does (nested ones are `null` in both).
//! Generated tests hold the bytes and the errors to `serde_json_canonicalizer`.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// Write the canonical JSON of `value` to `out`.
pub(super) fn write<T: Serialize + ?Sized, W: Write>(
    value: &T,
    out: &mut W,
) -> serde_json::Result<()> {
    let mut ser = Serializer::with_formatter(out, Jcs::default());
    value.serialize(Top(&mut ser))
}

/// One member of an open object: where its key starts and ends (quotes included) and
/// where its value ends, in [`Jcs::buf`].
#[derive(Clone, Copy)]
struct Member {
    key: (usize, usize),
    end: usize,
}

/// An open object: its first member in [`Jcs::members`], where its body starts in
/// [`Jcs::buf`].
struct Frame {
    members: usize,
    body: usize,
}

/// The JCS formatter (see the module's documentation).
#[derive(Default)]
struct Jcs {
    /// The text of the open objects (from the outermost one's first member on).
    buf: Vec<u8>,
    /// The open objects, innermost last.
    frames: Vec<Frame>,
    /// The members of the open objects.
    members: Vec<Member>,
    /// Scratch space to rearrange an object's members.
    scratch: Vec<u8>,
    /// Scratch space for the order of an object's members.
    order: Vec<Member>,
}

impl Jcs {
    /// Bytes go to the innermost open object's buffer, or straight out if none is open.
    fn put<W: ?Sized + Write>(&mut self, w: &mut W, bytes: &[u8]) -> io::Result<()> {
        if self.frames.is_empty() {
            w.write_all(bytes)
        } else {
            self.buf.extend_from_slice(bytes);
            Ok(())
        }
    }

    fn key<'a>(buf: &'a [u8], m: &Member) -> &'a [u8] {
        // Without its quotes.
        &buf[m.key.0 + 1..m.key.1 - 1]
    }
}

/// The UTF-16 code units of a key as this formatter writes it (without quotes): the
/// escapes `serde_json` writes (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00XX`)
/// undone, as `serde_json_canonicalizer` parses a key again before comparing.
fn units(key: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(key);
    let mut chars: Vec<char> = Vec::with_capacity(key.len());
    let mut it = text.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            chars.push(c);
            continue;
        }
        let c = match it.next() {
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('u') => {
                let hex: String = it.by_ref().take(4).collect();
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}')
            }
            Some(other) => other,
            None => '\\',
        };
        chars.push(c);
    }
    let text: String = chars.into_iter().collect();
    text.encode_utf16().collect()
}

/// RFC 8785's order of two keys (as written, without quotes).
fn key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    // Plain ASCII (no escape): the bytes' order is the UTF-16 units' order.
    if a.iter().chain(b).all(|&c| c < 0x80 && c != b'\\') {
        return a.cmp(b);
    }
    units(a).cmp(&units(b))
}

fn duplicate() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "duplicate object key")
}

/// A number as `serde_json_canonicalizer` writes it (ECMAScript's form of the double).
fn number<W: ?Sized + Write>(f: &mut Jcs, w: &mut W, value: f64) -> io::Result<()> {
    if !value.is_finite() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NaN and +/-Infinity are not permitted in JSON",
        ));
    }
    let text = serde_json_canonicalizer::to_vec(&value).map_err(io::Error::other)?;
    f.put(w, &text)
}

macro_rules! numbers {
    ($($name:ident: $t:ty),* $(,)?) => {
        $(
            // JSON has one number type, the double: every number is formatted as one.
            #[allow(clippy::cast_precision_loss, clippy::cast_lossless)]
            fn $name<W: ?Sized + Write>(&mut self, w: &mut W, value: $t) -> io::Result<()> {
                number(self, w, value as f64)
            }
        )*
    };
}

impl Formatter for Jcs {
    fn write_null<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.put(w, b"null")
    }

    fn write_bool<W: ?Sized + Write>(&mut self, w: &mut W, value: bool) -> io::Result<()> {
        self.put(w, if value { b"true" } else { b"false" })
    }

    numbers!(
        write_i8: i8, write_i16: i16, write_i32: i32, write_i64: i64, write_i128: i128,
        write_u8: u8, write_u16: u16, write_u32: u32, write_u64: u64, write_u128: u128,
        write_f32: f32, write_f64: f64,
    );

    fn write_number_str<W: ?Sized + Write>(&mut self, w: &mut W, value: &str) -> io::Result<()> {
        let n: f64 = value
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "Cannot parse str to f64"))?;
        number(self, w, n)
    }

    fn begin_string<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.put(w, b"\"")
    }

    fn end_string<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.put(w, b"\"")
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        self.put(w, fragment.as_bytes())
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        const HEX: [u8; 16] = *b"0123456789abcdef";
        let six;
        let bytes: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            // As the reference implementation: `\/` is `/`.
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(b) => {
                six = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xF)],
                ];
                &six
            }
        };
        self.put(w, bytes)
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.put(w, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.put(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { self.put(w, b",") }
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.put(w, b"{")?;
        self.frames.push(Frame {
            members: self.members.len(),
            body: self.buf.len(),
        });
        Ok(())
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, _w: &mut W, _first: bool) -> io::Result<()> {
        let at = self.buf.len();
        self.members.push(Member {
            key: (at, at),
            end: at,
        });
        Ok(())
    }

    fn end_object_key<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        let at = self.buf.len();
        if let Some(m) = self.members.last_mut() {
            m.key.1 = at;
        }
        self.buf.push(b':');
        Ok(())
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        let at = self.buf.len();
        if let Some(m) = self.members.last_mut() {
            m.end = at;
        }
        self.buf.push(b',');
        Ok(())
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        let frame = self.frames.pop().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "end_object before begin_object")
        })?;
        let members = &self.members[frame.members..];
        let mut sorted = true;
        for pair in members.windows(2) {
            match key_order(
                Self::key(&self.buf, &pair[0]),
                Self::key(&self.buf, &pair[1]),
            ) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(duplicate()),
                std::cmp::Ordering::Greater => {
                    sorted = false;
                    break;
                }
            }
        }
        if sorted {
            // Each member is followed by a comma: the last one's becomes the brace.
            if members.is_empty() {
                self.buf.push(b'}');
            } else if let Some(last) = self.buf.last_mut() {
                *last = b'}';
            }
        } else {
            self.order.clear();
            self.order.extend_from_slice(members);
            let buf = &self.buf;
            self.order
                .sort_unstable_by(|a, b| key_order(Self::key(buf, a), Self::key(buf, b)));
            for pair in self.order.windows(2) {
                if key_order(Self::key(buf, &pair[0]), Self::key(buf, &pair[1])).is_eq() {
                    return Err(duplicate());
                }
            }
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.buf[frame.body..]);
            self.buf.truncate(frame.body);
            for (i, m) in self.order.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                let (from, to) = (m.key.0 - frame.body, m.end - frame.body);
                self.buf.extend_from_slice(&self.scratch[from..to]);
            }
            self.buf.push(b'}');
        }
        self.members.truncate(frame.members);
        if self.frames.is_empty() {
            w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn write_raw_fragment<W: ?Sized + Write>(&mut self, _w: &mut W, _f: &str) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "Raw values are not supported for JCS serialization",
        ))
    }
}

/// The serializer of the outermost value: `serde_json`'s, but a non-finite number there is
/// an error, as in `serde_json_canonicalizer` (nested, `serde_json` writes `null`).
struct Top<'a, W: Write>(&'a mut Serializer<W, Jcs>);

fn non_finite() -> serde_json::Error {
    serde_json::Error::io(io::Error::new(
        io::ErrorKind::InvalidInput,
        "NaN and +/-Infinity are not permitted in JSON",
    ))
}

macro_rules! forward {
    ($($name:ident($($arg:ident: $t:ty),*) -> $ret:ty;)*) => {
        $(
            fn $name(self, $($arg: $t),*) -> serde_json::Result<$ret> {
                self.0.$name($($arg),*)
            }
        )*
    };
}

impl<'a, W: Write> serde::Serializer for Top<'a, W> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = <&'a mut Serializer<W, Jcs> as serde::Serializer>::SerializeSeq;
    type SerializeTuple = <&'a mut Serializer<W, Jcs> as serde::Serializer>::SerializeTuple;
    type SerializeTupleStruct =
        <&'a mut Serializer<W, Jcs> as serde::Serializer>::SerializeTupleStruct;
    type SerializeTupleVariant =
        <&'a mut Serializer<W, Jcs> as serde::Serializer>::SerializeTupleVariant;
    type SerializeMap = <&'a mut Serializer<W, Jcs> as serde::Serializer>::SerializeMap;
    type SerializeStruct = <&'a mut Serializer<W, Jcs> as serde::Serializer>::SerializeStruct;
    type SerializeStructVariant =
        <&'a mut Serializer<W, Jcs> as serde::Serializer>::SerializeStructVariant;

    forward! {
        serialize_bool(v: bool) -> ();
        serialize_i8(v: i8) -> ();
        serialize_i16(v: i16) -> ();
        serialize_i32(v: i32) -> ();
        serialize_i64(v: i64) -> ();
        serialize_i128(v: i128) -> ();
        serialize_u8(v: u8) -> ();
        serialize_u16(v: u16) -> ();
        serialize_u32(v: u32) -> ();
        serialize_u64(v: u64) -> ();
        serialize_u128(v: u128) -> ();
        serialize_char(v: char) -> ();
        serialize_str(v: &str) -> ();
        serialize_bytes(v: &[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(name: &'static str) -> ();
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> ();
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(len: usize) -> Self::SerializeTuple;
        serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeTupleVariant;
        serialize_map(len: Option<usize>) -> Self::SerializeMap;
        serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct;
        serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeStructVariant;
    }

    fn serialize_f32(self, v: f32) -> serde_json::Result<()> {
        if v.is_finite() {
            self.0.serialize_f32(v)
        } else {
            Err(non_finite())
        }
    }

    fn serialize_f64(self, v: f64) -> serde_json::Result<()> {
        if v.is_finite() {
            self.0.serialize_f64(v)
        } else {
            Err(non_finite())
        }
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> serde_json::Result<()> {
        self.0.serialize_some(value)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> serde_json::Result<()> {
        self.0.serialize_newtype_struct(name, value)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> serde_json::Result<()> {
        self.0
            .serialize_newtype_variant(name, index, variant, value)
    }

    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> serde_json::Result<()> {
        self.0.collect_str(value)
    }
}

#[cfg(test)]
mod tests {
    //! Generated: random values of derived types (`sorted`'s generator: fields out of
    //! order, every enum kind, flatten, maps with any keys and duplicates, floats with NaN
    //! and infinities, odd strings, deep nesting) and random JSON values with keys whose
    //! UTF-16 order differs from their bytes' give `serde_json_canonicalizer`'s bytes, and
    //! an error exactly where it errs.
    use serde_json::{Value, json};

    use crate::util::json::generated::node;
    use crate::util::testrng::Rng;

    fn reference<T: serde::Serialize + ?Sized>(v: &T) -> Option<Vec<u8>> {
        serde_json_canonicalizer::to_vec(&v).ok()
    }

    fn ours<T: serde::Serialize + ?Sized>(v: &T) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        super::write(v, &mut out).ok().map(|()| out)
    }

    #[test]
    fn random_values_give_the_reference_bytes_and_errors() {
        let mut r = Rng(0x8785_c0de);
        let (mut ok, mut err) = (0, 0);
        for i in 0..5000 {
            let v = node(&mut r, if i % 50 == 0 { 12 } else { 5 });
            let want = reference(&v);
            assert_eq!(
                ours(&v).as_deref().map(String::from_utf8_lossy),
                want.as_deref().map(String::from_utf8_lossy),
                "case {i}"
            );
            if want.is_some() {
                ok += 1;
            } else {
                err += 1;
            }
        }
        assert!(ok > 1000 && err > 100, "ok {ok}, errors {err}");
    }

    fn value(r: &mut Rng, depth: u32) -> Value {
        const KEYS: [&str; 14] = [
            "b",
            "a",
            "\u{e9}",
            "\u{1f600}",
            "\u{ff61}",
            "\u{e000}",
            "a\"",
            "a\\",
            "a\n",
            "a]",
            "\u{7f}",
            "10",
            "1",
            "",
        ];
        match if depth > 3 {
            r.below(4u32)
        } else {
            r.below(7u32)
        } {
            0 => Value::Null,
            1 => json!(r.chance(50)),
            2 => json!(f64::from(r.below(1u32 << 31)) / 7.0 - 1e9),
            3 => json!(["x", "\u{1}/\u{e9}", "\u{2028}"][r.below(3usize)]),
            4 => Value::Array((0..r.below(5u32)).map(|_| value(r, depth + 1)).collect()),
            _ => Value::Object(
                (0..r.below(30u32))
                    .map(|_| {
                        let k = format!("{}{}", r.pick(&KEYS), r.pick(&KEYS));
                        (k, value(r, depth + 1))
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn random_json_values_with_awkward_keys_give_the_reference_bytes() {
        let mut r = Rng(0x0016_0bad);
        for i in 0..2000 {
            let v = value(&mut r, 0);
            let want = reference(&v).expect("a JSON value canonicalizes");
            assert_eq!(
                String::from_utf8_lossy(&ours(&v).expect("ours too")),
                String::from_utf8_lossy(&want),
                "case {i}"
            );
        }
    }

    #[test]
    fn members_written_out_of_order_and_duplicates() {
        #[derive(serde::Serialize)]
        struct S {
            z: u8,
            #[serde(flatten)]
            rest: std::collections::BTreeMap<String, u8>,
            a: Vec<f64>,
        }
        let s = S {
            z: 1,
            rest: [("m".to_string(), 2), ("\u{1f600}".to_string(), 3)].into(),
            a: vec![1.5, 1e21, -0.0],
        };
        assert_eq!(ours(&s), reference(&s));
        assert_eq!(
            String::from_utf8(ours(&s).unwrap()).unwrap(),
            r#"{"a":[1.5,1e+21,0],"m":2,"z":1,"😀":3}"#
        );
        let dup = S {
            z: 1,
            rest: [("z".to_string(), 2)].into(),
            a: vec![],
        };
        assert!(reference(&dup).is_none());
        assert!(ours(&dup).is_none());
        assert!(ours(&f64::NAN).is_none() && ours(&[f64::NAN]).is_some());
    }
}
