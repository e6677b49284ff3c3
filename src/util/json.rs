//! Deterministic JSON: every JSON file the tool writes goes through [`to_sorted_pretty`]
//! (keys sorted at every level, two-space indent, trailing newline), and every digest over
//! JSON goes through [`canonical`] (RFC 8785, JCS).

use serde::Serialize;

use crate::{Error, Result};

mod canonical;
mod members;
mod sorted;

pub use members::{Members, push_str as push_json_str};

/// The random values of `sorted`'s tests, for other generated tests.
#[cfg(test)]
pub(crate) use sorted::tests as generated;

fn ser_error(e: serde_json::Error) -> Error {
    Error::runner("cannot serialize JSON").with_source(e)
}

/// Serialize `value` with object keys sorted at every level, pretty-printed, with a
/// trailing newline. Struct field order never leaks into files. The bytes are those of
/// `serde_json::to_vec_pretty(&serde_json::to_value(value)?)` (whose objects are sorted
/// maps), written without building that tree (see `sorted`).
pub fn to_sorted_pretty<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    sorted::write(&mut out, true, value).map_err(ser_error)?;
    out.push(b'\n');
    Ok(out)
}

/// [`to_sorted_pretty`] into `out`: only the object being sorted is buffered, so a large
/// document is not held twice. On error, `out` may hold part of the document.
pub fn write_sorted_pretty<T: Serialize + ?Sized>(
    value: &T,
    out: &mut impl std::io::Write,
) -> Result<()> {
    sorted::write(out, true, value).map_err(ser_error)?;
    out.write_all(b"\n")
        .map_err(|e| ser_error(serde_json::Error::io(e)))
}

/// The pretty sorted JSON of `value` (no trailing newline) as it reads where it sits at
/// `indent` in a pretty document (`indent`: the indentation of the line it starts on, as
/// [`Fill`]s and [`pretty_items`] are given it): the bytes of
/// `serde_json::to_string_pretty(&to_value(value)?)` with every newline followed by
/// `indent`, written without the tree, the string or the replacement. `indent` is two
/// spaces per level wherever this module makes one; any other is written that way too.
pub fn write_sorted_pretty_at<T: Serialize + ?Sized>(
    value: &T,
    indent: &str,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let steps = indent.len() / 2;
    if indent.len().is_multiple_of(2) && indent.bytes().all(|b| b == b' ') {
        return sorted::write_at(&mut &mut *out, true, steps, value).map_err(std::io::Error::from);
    }
    let mut text = Vec::new();
    sorted::write(&mut text, true, value).map_err(std::io::Error::from)?;
    let text = String::from_utf8_lossy(&text);
    out.write_all(text.replace('\n', &format!("\n{indent}")).as_bytes())
}

/// One compact line of sorted JSON (for JSONL files and NDJSON events), without newline:
/// the bytes of `serde_json::to_string(&serde_json::to_value(value)?)`.
pub fn to_sorted_line<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut out = Vec::new();
    sorted::write(&mut out, false, value).map_err(ser_error)?;
    // The serializer writes only UTF-8 (JSON text from `&str`s and ASCII).
    String::from_utf8(out).map_err(|e| Error::runner("cannot serialize JSON").with_source(e))
}

/// One member of a JSON object: its key and its value's compact sorted JSON.
pub type Member = (String, Vec<u8>);

/// The members of `value` as the JSON object `to_value` makes of it: each key with the
/// compact sorted JSON of its value (what [`to_sorted_line`] writes for it), sorted by key;
/// `None` if it is not an object. For a writer that rearranges a line's members (moves some
/// into shared values) without a `Value` tree.
pub fn sorted_members<T: Serialize + ?Sized>(value: &T) -> Result<Option<Vec<Member>>> {
    sorted::members(value).map_err(ser_error)
}

/// RFC 8785 (JCS) canonical bytes of `value`, the input of every JSON digest.
pub fn canonical<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    canonical::write(value, &mut out)
        .map(|()| out)
        .map_err(|e| Error::runner("cannot canonicalize JSON").with_source(e))
}

/// [`canonical`] written to `out` instead of collected: the same bytes, for a digest that
/// hashes them as they come ([`crate::util::digest::Digest::both_of_canonical`]) rather
/// than keeping a copy of the whole text (a policy matrix's plan is megabytes).
pub fn canonical_to<T: Serialize, W: std::io::Write>(value: &T, out: &mut W) -> Result<()> {
    canonical::write(value, out)
        .map_err(|e| Error::runner("cannot canonicalize JSON").with_source(e))
}

/// Writes the value at one pointer of [`write_pretty_with`]: it gets the output and the
/// indentation of the line its key is on, and writes the value as `to_sorted_pretty`
/// would there (see [`pretty_seq`]).
pub type Fill<'a> = Box<dyn FnMut(&mut dyn std::io::Write, &str) -> std::io::Result<()> + 'a>;

/// Write `v` exactly as [`to_sorted_pretty`] does (trailing newline included), except that
/// the value at each pointer of `fills` (a placeholder in `v`, e.g. `null`) is written by
/// its [`Fill`]: a large member (a run's selected scenario ids, a plan's matrix) streams to
/// the output instead of being built as a JSON tree first.
pub fn write_pretty_with(
    v: &serde_json::Value,
    fills: &mut [(&str, Fill<'_>)],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    write_node(v, &mut String::new(), "", fills, out)?;
    out.write_all(b"\n")
}

fn write_node(
    v: &serde_json::Value,
    pointer: &mut String,
    indent: &str,
    fills: &mut [(&str, Fill<'_>)],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    use serde_json::Value;
    if let Some((_, fill)) = fills.iter_mut().find(|(p, _)| *p == pointer.as_str()) {
        return fill(out, indent);
    }
    let below = |p: &str| {
        p.len() > pointer.len()
            && p.starts_with(pointer.as_str())
            && p.as_bytes()[pointer.len()] == b'/'
    };
    let on_path = fills.iter().any(|(p, _)| below(p));
    match v {
        Value::Object(m) if on_path && !m.is_empty() => {
            let inner = format!("{indent}  ");
            out.write_all(b"{")?;
            for (i, (k, item)) in m.iter().enumerate() {
                out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
                write!(out, "{inner}{}: ", serde_json::Value::String(k.clone()))?;
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape_token(k));
                write_node(item, pointer, &inner, fills, out)?;
                pointer.truncate(len);
            }
            write!(out, "\n{indent}}}")
        }
        Value::Array(items) if on_path && !items.is_empty() => {
            let inner = format!("{indent}  ");
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
                out.write_all(inner.as_bytes())?;
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                write_node(item, pointer, &inner, fills, out)?;
                pointer.truncate(len);
            }
            write!(out, "\n{indent}]")
        }
        _ => {
            let text = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
            if indent.is_empty() {
                out.write_all(text.as_bytes())
            } else {
                out.write_all(text.replace('\n', &format!("\n{indent}")).as_bytes())
            }
        }
    }
}

/// Write a JSON array or object whose items (each its pretty text at the item's
/// indentation, an object's items prefixed with their key) come from `items`, as
/// `to_sorted_pretty` lays it out at `indent` (`[]`/`{}` when empty). `open` is `[` or `{`.
pub fn pretty_seq(
    out: &mut dyn std::io::Write,
    indent: &str,
    open: u8,
    items: impl Iterator<Item = std::io::Result<String>>,
) -> std::io::Result<()> {
    pretty_items(out, indent, open, items, |o, item| {
        o.write_all(item?.as_bytes())
    })
}

/// [`pretty_seq`] with each item written by `write_item` where it goes (after its line's
/// indentation; an object's item starts with its key) instead of given as a string.
pub fn pretty_items<I>(
    out: &mut dyn std::io::Write,
    indent: &str,
    open: u8,
    items: impl Iterator<Item = I>,
    mut write_item: impl FnMut(&mut dyn std::io::Write, I) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let close = if open == b'[' { b']' } else { b'}' };
    let mut any = false;
    for item in items {
        out.write_all(&[if any { b',' } else { open }, b'\n'])?;
        out.write_all(indent.as_bytes())?;
        out.write_all(b"  ")?;
        write_item(&mut *out, item)?;
        any = true;
    }
    if any {
        write!(out, "\n{indent}")?;
    } else {
        out.write_all(&[open])?;
    }
    out.write_all(&[close])
}

/// One RFC 6901 pointer token for `key`.
fn escape_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct S {
        zeta: u32,
        alpha: Vec<u32>,
    }

    #[test]
    fn struct_fields_come_out_sorted() {
        let out = String::from_utf8(
            to_sorted_pretty(&S {
                zeta: 1,
                alpha: vec![2],
            })
            .unwrap(),
        )
        .unwrap();
        assert!(
            out.find("alpha").unwrap() < out.find("zeta").unwrap(),
            "{out}"
        );
        assert!(out.ends_with("}\n"));
    }

    #[test]
    fn filled_members_come_out_as_the_whole_document_would() {
        use serde_json::{Value, json};
        let whole = json!({
            "b": {"z": 1, "s": {"p1": {"a": "allow", "b/c": "deny"}, "p0": {}}, "a": [1, {"x": []}]},
            "a~": ["x", "y"],
            "e": [],
            "c": {"d": [{"q": null}, 2.5, "t"]},
        });
        let want = String::from_utf8(to_sorted_pretty(&whole).unwrap()).unwrap();
        // Stream `/b/s` (a map of maps) and `/a~` (a list); also an empty list filled.
        let mut head = whole.clone();
        head["b"]["s"] = Value::Null;
        head["a~"] = Value::Null;
        head["e"] = Value::Null;
        let pretty = |v: &Value, indent: &str| {
            serde_json::to_string_pretty(v)
                .unwrap()
                .replace('\n', &format!("\n{indent}"))
        };
        let s = whole["b"]["s"].as_object().unwrap().clone();
        let mut out = Vec::new();
        let mut fills: Vec<(&str, Fill<'_>)> = vec![
            (
                "/b/s",
                Box::new(move |o: &mut dyn std::io::Write, ind: &str| {
                    let inner = format!("{ind}  ");
                    pretty_seq(
                        o,
                        ind,
                        b'{',
                        s.iter().map(|(k, m)| {
                            let mut body = Vec::new();
                            pretty_seq(
                                &mut body,
                                &inner,
                                b'{',
                                m.as_object().unwrap().iter().map(|(k, v)| {
                                    Ok(format!("{}: {}", Value::String(k.clone()), pretty(v, "")))
                                }),
                            )?;
                            Ok(format!(
                                "{}: {}",
                                Value::String(k.clone()),
                                String::from_utf8(body).unwrap()
                            ))
                        }),
                    )
                }),
            ),
            (
                "/a~0",
                Box::new(|o: &mut dyn std::io::Write, ind: &str| {
                    pretty_seq(
                        o,
                        ind,
                        b'[',
                        ["x", "y"].iter().map(|x| Ok(pretty(&json!(x), ""))),
                    )
                }),
            ),
            (
                "/e",
                Box::new(|o: &mut dyn std::io::Write, ind: &str| {
                    pretty_seq(o, ind, b'[', std::iter::empty())
                }),
            ),
        ];
        write_pretty_with(&head, &mut fills, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn jcs_matches_rfc8785_example_ordering() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":[true,null,"x"],"c":{"z":0.5,"y":1e2}}"#).unwrap();
        let out = String::from_utf8(canonical(&v).unwrap()).unwrap();
        assert_eq!(out, r#"{"a":[true,null,"x"],"b":1,"c":{"y":100,"z":0.5}}"#);
    }
}
