//! `run_manifest.json` read for a report's head ([`super::head_with_packet`]): the
//! manifest's facts, without the lists as long as the plan.
//!
//! A report shows the manifest's facts; its plan (the whole policy matrix as loaded), its
//! selection (every scenario id) and its definitions are let go at once. Reading them into
//! memory first made a report's peak grow with the plan (~20 MiB at 100,000 scenarios).
//! Here the plan and the selection are *checked* exactly as the whole read checks them —
//! through the same parser, every number, string, escape and nesting level, the plan
//! visited with `deserialize_any` as a `Value` is, the selection as a list of strings —
//! but nothing of them is kept. Anything this reader does not take (a duplicate member,
//! a manifest that is not an object, …) is read whole as before, so every manifest is
//! accepted or refused exactly as the whole read does, and a manifest it takes is the
//! whole read's with those lists emptied (`head_is_the_whole_read_emptied`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::model::results::RunManifest;

/// The manifest's head, or `None` when the whole read refuses it (as `parse` gave).
pub(super) fn manifest_head(bytes: &[u8]) -> Option<RunManifest> {
    lean(bytes)
        .or_else(|| serde_json::from_slice::<RunManifest>(bytes).ok())
        .map(emptied)
}

/// The lists a report's head lets go.
pub(super) fn emptied(mut m: RunManifest) -> RunManifest {
    m.selected = Vec::new();
    m.plan = Value::Null;
    m.probes = BTreeMap::new();
    m.profiles = BTreeMap::new();
    m.profile_definitions = BTreeMap::new();
    m
}

fn lean(bytes: &[u8]) -> Option<RunManifest> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let map = (&mut de).deserialize_map(Members).ok()?;
    de.end().ok()?;
    serde_json::from_value(Value::Object(map)).ok()
}

/// The manifest's members, the plan and the selection checked and kept as an empty value
/// of their kind. A member named twice is not taken (the whole read decides).
struct Members;

impl<'de> Visitor<'de> for Members {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a run manifest object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = a.next_key::<String>()? {
            if m.contains_key(&k) {
                return Err(de::Error::custom("a member named twice"));
            }
            let v = match k.as_str() {
                "plan" => {
                    a.next_value_seed(Checked)?;
                    Value::Null
                }
                "selected" => {
                    a.next_value_seed(Strings)?;
                    Value::Array(Vec::new())
                }
                _ => a.next_value::<Value>()?,
            };
            m.insert(k, v);
        }
        Ok(m)
    }
}

/// Any JSON value, checked as [`Value`] reads it (`deserialize_any`), nothing kept.
#[derive(Clone, Copy)]
struct Checked;

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // `Value` keeps only finite numbers (the parser refuses the others first).
        if v.is_finite() {
            Ok(())
        } else {
            Err(E::custom("a number that is not finite"))
        }
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        while a.next_element_seed(Checked)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        // `Value`'s keys are strings; a later duplicate replaces the earlier one.
        while a.next_key::<IgnoredString>()?.is_some() {
            a.next_value_seed(Checked)?;
        }
        Ok(())
    }
}

/// A list of strings, checked as `Vec<String>` reads it, not kept.
struct Strings;

impl<'de> DeserializeSeed<'de> for Strings {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Strings {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        while a.next_element::<IgnoredString>()?.is_some() {}
        Ok(())
    }
}

/// A string, as `String` reads it (a list's element or a map's key), not kept.
struct IgnoredString;

impl<'de> de::Deserialize<'de> for IgnoredString {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct S;
        impl Visitor<'_> for S {
            type Value = IgnoredString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, _: &str) -> Result<IgnoredString, E> {
                Ok(IgnoredString)
            }
        }
        d.deserialize_string(S)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::testrng::Rng;

    const SAMPLE: &str = include_str!("sample_manifest.json");
    /// The members that are checked and not kept.
    const CHECKED_ONLY: [&str; 2] = ["plan", "selected"];

    /// What the report's head had before: the whole read, then the lists emptied.
    fn whole(b: &[u8]) -> Option<Value> {
        serde_json::from_slice::<RunManifest>(b)
            .ok()
            .map(|m| serde_json::to_value(emptied(m)).expect("a manifest serializes"))
    }

    fn head(b: &[u8]) -> Option<Value> {
        manifest_head(b).map(|m| serde_json::to_value(m).expect("a manifest serializes"))
    }

    /// A value to put in place of a member: of every JSON kind, some of them what the
    /// whole read refuses (a number out of range, nesting past the parser's limit, a bad
    /// escape, a number where strings belong).
    fn junk(r: &mut Rng) -> String {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let pick = [
            "null".to_string(),
            "true".into(),
            "0".into(),
            "-1".into(),
            "1.5".into(),
            "1e400".into(),
            "-0".into(),
            "18446744073709551616".into(),
            "\"a\"".into(),
            "\"\\u00e9\\n\"".into(),
            "\"\\ud800\"".into(),
            "\"\\x\"".into(),
            "[]".into(),
            "[\"a\",\"b\"]".into(),
            "[\"a\",1]".into(),
            "[\"a\",null]".into(),
            "{}".into(),
            "{\"a\":1,\"a\":2}".into(),
            "{\"k\":[1,{\"x\":1e400}]}".into(),
            "{\"k\":[1,{\"x\":\"\\ud800\"}]}".into(),
            deep(100),
            deep(127),
            deep(128),
            deep(200),
            "[1,]".into(),
        ];
        r.pick(&pick).clone()
    }

    #[test]
    fn head_is_the_whole_read_emptied() {
        let base: Map<String, Value> = serde_json::from_str(SAMPLE).expect("the sample parses");
        let keys: Vec<String> = base.keys().cloned().collect();
        assert!(
            whole(SAMPLE.as_bytes()).is_some(),
            "the sample is a manifest"
        );
        let mut r = Rng(29);
        let (mut taken, mut refused) = (0, 0);
        for case in 0..3000 {
            // Members in a shuffled order, each written as it is or replaced, dropped,
            // named twice; the plan and the selection most often.
            let mut members: Vec<String> = Vec::new();
            let mut order = keys.clone();
            for i in (1..order.len()).rev() {
                order.swap(i, r.below(i + 1));
            }
            for k in &order {
                let hot = CHECKED_ONLY.contains(&k.as_str());
                let own = serde_json::to_string(&base[k]).expect("serializes");
                let v = if r.chance(if hot { 30 } else { 3 }) {
                    junk(&mut r)
                } else {
                    own.clone()
                };
                if r.chance(2) {
                    continue;
                }
                members.push(format!("{}:{v}", serde_json::to_string(k).expect("key")));
                if r.chance(if hot { 5 } else { 1 }) {
                    members.push(format!("{}:{own}", serde_json::to_string(k).expect("key")));
                }
            }
            if r.chance(3) {
                members.push(format!("\"extra_{case}\":{}", junk(&mut r)));
            }
            let mut text = format!("{{{}}}", members.join(","));
            match r.below(40u32) {
                0 => text.push_str(" x"),
                1 => text.truncate(text.len() / 2),
                2 => text = format!("[{text}]"),
                3 => text.push_str("\n\t "),
                _ => {}
            }
            let (w, h) = (whole(text.as_bytes()), head(text.as_bytes()));
            assert_eq!(h, w, "case {case}: {text}");
            if w.is_some() {
                taken += 1;
            } else {
                refused += 1;
            }
            // The lean reader itself takes a manifest only when the whole read does.
            if lean(text.as_bytes()).is_some() {
                assert!(
                    w.is_some(),
                    "case {case}: the lean read took a refused manifest"
                );
            }
        }
        assert!(
            taken > 300 && refused > 300,
            "{taken} taken, {refused} refused"
        );
    }

    #[test]
    fn the_lean_read_takes_what_the_runner_writes() {
        // The fast path is the one a report takes for every bundle the runner wrote.
        assert!(lean(SAMPLE.as_bytes()).is_some());
        let compact = serde_json::to_string(
            &serde_json::from_str::<Value>(SAMPLE).expect("the sample parses"),
        )
        .expect("serializes");
        assert!(lean(compact.as_bytes()).is_some());
    }
}
