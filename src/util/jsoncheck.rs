//! Checking that a JSON document has a shape without keeping it: serde types that accept
//! exactly what the type they stand for accepts and keep nothing (or only a few values).
//!
//! A reader that only needs to know whether a large document (a 100,000-scenario
//! `expected_matrix.json`, a manifest's `plan` and `selected`) parses as what the runner
//! writes reads it through these instead of building it: the deserializer visits every
//! value as it would for the full type, so the same documents are accepted and refused
//! (serde_json's recursion limit included: [`Skip`] descends through `deserialize_any`
//! like `serde_json::Value`, not through `IgnoredAny`, which has no depth limit), while
//! memory is one element at a time. Each type's agreement with the type it stands for is
//! a generated test (`tests` below; `promote::derive`'s tests for the manifest).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Any JSON value, accepted exactly as `serde_json::Value` accepts it, and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Skip;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_unit<E>(self) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_none<E>(self) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Skip, D2::Error> {
                Skip::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(Skip)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
                while map.next_entry::<String, Skip>()?.is_some() {}
                Ok(Skip)
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON array accepted exactly as `Vec<T>` accepts it; its elements are checked one at
/// a time and dropped. Keeps the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSeq<T> {
    /// Elements seen.
    pub len: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> Default for CheckSeq<T> {
    fn default() -> Self {
        Self {
            len: 0,
            _t: PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for CheckSeq<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<fn() -> T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = CheckSeq<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut len = 0;
                while seq.next_element::<T>()?.is_some() {
                    len += 1;
                }
                Ok(CheckSeq {
                    len,
                    _t: PhantomData,
                })
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// A JSON object accepted exactly as `BTreeMap<K, V>` accepts it (a repeated key too);
/// its entries are checked one at a time and dropped. Keeps the count of entries read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckMap<K, V> {
    /// Entries read (a repeated key counts each time).
    pub len: u64,
    _kv: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Default for CheckMap<K, V> {
    fn default() -> Self {
        Self {
            len: 0,
            _kv: PhantomData,
        }
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for CheckMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<K, V>(PhantomData<fn() -> (K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Vis<K, V> {
            type Value = CheckMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut len = 0;
                while map.next_entry::<K, V>()?.is_some() {
                    len += 1;
                }
                Ok(CheckMap {
                    len,
                    _kv: PhantomData,
                })
            }
        }
        d.deserialize_map(Vis(PhantomData))
    }
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    clippy::format_push_string,
    clippy::unwrap_used
)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;

    use crate::util::testrng::Rng;

    /// Random JSON text, mostly well formed, sometimes not, sometimes deep.
    fn text(r: &mut Rng, depth: u32, out: &mut String) {
        let pick = if depth > 6 { r.below(6) } else { r.below(10) };
        match pick {
            0 => out.push_str("null"),
            1 => out.push_str(if r.below(2) == 0 { "true" } else { "false" }),
            2 => out.push_str(&format!("{}", r.below(1000))),
            3 => out.push_str(["-1.5e3", "1e400", "-0", "01", "2.", "1E-2"][r.below(6_usize)]),
            4 => out.push_str(
                ["\"a\"", "\"\\u00e9\"", "\"\\ud800\"", "\"x", "\"\\q\""][r.below(5_usize)],
            ),
            5 => out.push_str(["", "]", "}", ",", "nul"][r.below(5_usize)]),
            6 | 7 => {
                out.push('[');
                for i in 0..r.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    text(r, depth + 1, out);
                }
                if r.below(20) > 0 {
                    out.push(']');
                }
            }
            _ => {
                out.push('{');
                for i in 0..r.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(["\"k\"", "\"v\"", "\"k\"", "1", "\"a b\""][r.below(5_usize)]);
                    out.push(':');
                    text(r, depth + 1, out);
                }
                if r.below(20) > 0 {
                    out.push('}');
                }
            }
        }
    }

    fn agree<A: for<'de> Deserialize<'de>, B: for<'de> Deserialize<'de>>(s: &str) -> bool {
        serde_json::from_str::<A>(s).is_ok() == serde_json::from_str::<B>(s).is_ok()
    }

    #[test]
    fn the_checks_accept_exactly_what_the_types_they_stand_for_accept() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut s = String::new();
            text(&mut r, 0, &mut s);
            assert!(agree::<Skip, Value>(&s), "Skip vs Value: {s}");
            assert!(agree::<CheckSeq<u32>, Vec<u32>>(&s), "seq: {s}");
            assert!(agree::<CheckSeq<Value>, Vec<Value>>(&s), "seq: {s}");
            assert!(
                agree::<CheckMap<String, Option<u32>>, BTreeMap<String, Option<u32>>>(&s),
                "map: {s}"
            );
            assert!(
                agree::<CheckMap<String, Skip>, BTreeMap<String, Value>>(&s),
                "map: {s}"
            );
            if let Ok(v) = serde_json::from_str::<Vec<Value>>(&s) {
                let c: CheckSeq<Value> = serde_json::from_str(&s).unwrap_or_default();
                assert_eq!(c.len, v.len() as u64);
                accepted += 1;
            }
        }
        assert!(
            accepted > 100,
            "the generator rarely makes an array: {accepted}"
        );
        // Nesting beyond serde_json's recursion limit is refused by both.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert!(serde_json::from_str::<Skip>(&deep).is_err());
    }
}
