//! Deterministic JSON: every JSON file the tool writes goes through [`to_sorted_pretty`]
//! (keys sorted at every level, two-space indent, trailing newline), and every digest over
//! JSON goes through [`canonical`] (RFC 8785, JCS).

use serde::Serialize;

use crate::{Error, Result};

/// Serialize `value` with object keys sorted at every level, pretty-printed, with a
/// trailing newline. Struct field order never leaks into files.
pub fn to_sorted_pretty<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    // serde_json's Map is a BTreeMap (the `preserve_order` feature is off), so going
    // through Value sorts every object's keys.
    let v = serde_json::to_value(value)
        .map_err(|e| Error::runner("cannot serialize JSON").with_source(e))?;
    let mut out = serde_json::to_vec_pretty(&v)
        .map_err(|e| Error::runner("cannot serialize JSON").with_source(e))?;
    out.push(b'\n');
    Ok(out)
}

/// One compact line of sorted JSON (for JSONL files and NDJSON events), without newline.
pub fn to_sorted_line<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let v = serde_json::to_value(value)
        .map_err(|e| Error::runner("cannot serialize JSON").with_source(e))?;
    serde_json::to_string(&v).map_err(|e| Error::runner("cannot serialize JSON").with_source(e))
}

/// RFC 8785 (JCS) canonical bytes of `value`, the input of every JSON digest.
pub fn canonical<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json_canonicalizer::to_vec(value)
        .map_err(|e| Error::runner("cannot canonicalize JSON").with_source(e))
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
    fn jcs_matches_rfc8785_example_ordering() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":[true,null,"x"],"c":{"z":0.5,"y":1e2}}"#).unwrap();
        let out = String::from_utf8(canonical(&v).unwrap()).unwrap();
        assert_eq!(out, r#"{"a":[true,null,"x"],"b":1,"c":{"y":100,"z":0.5}}"#);
    }
}
