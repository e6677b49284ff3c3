//! The run manifests of `diff` read without their per-scenario parts: `selected` (one id
//! per scenario) is skipped, and the plan's `scenarios` matrix (one entry per scenario) is
//! spilled to a sorted run on disk ([`crate::util::extsort`], hashed as written and read)
//! and compared with the other side's a pair of entries at a time. The plan's other members
//! and the rest of the manifest are read as before. The changes found are those
//! [`jsondiff::diff`] finds over the whole plans (generated tests compare the two).
//!
//! Only a manifest laid out as the runner writes it is read this way: members unique, the
//! matrix an object of objects with its keys in increasing order, the plan an object.
//! Anything else returns `None`, and the caller reads both runs whole, as before.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::super::source::BundleSource;
use crate::Result;
use crate::model::results::RunManifest;
use crate::util::extsort::{Run, RunReader, Sorter};
use crate::util::jsondiff::{self, FieldChange};

/// Bytes of matrix entries held before a sorted run is spilled.
const BUDGET: usize = 4 << 20;

/// One matrix entry: profile, probe (`None`: the profile itself, so an empty one is seen),
/// the value as compact JSON.
type Entry = (String, Option<String>, String);

/// A manifest without its per-scenario parts, and the plan's matrix on disk.
pub(super) struct Lean {
    pub(super) manifest: RunManifest,
    /// The plan's members but `scenarios`.
    pub(super) plan: Map<String, Value>,
    /// The matrix (`None`: the plan has no `scenarios`).
    pub(super) matrix: Option<Run>,
}

/// Read `src`'s manifest lean (see the module doc); `None` when it is not laid out as the
/// runner writes it, is missing, or does not read: the caller then reads it whole.
pub(super) fn read(src: &BundleSource, tmp: &Path, name: &str) -> Result<Option<Lean>> {
    let mut sorter = Sorter::new(tmp, name, BUDGET);
    let mut failed = None;
    let got = src.scan_member("run_manifest.json", &mut |r| {
        parse(r, &mut sorter, &mut failed)
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let Ok(Some((_, Some((mut top, plan, has_matrix))))) = got else {
        return Ok(None);
    };
    top.insert("plan".into(), Value::Object(plan.clone()));
    let Ok(manifest) = serde_json::from_value::<RunManifest>(Value::Object(top)) else {
        return Ok(None);
    };
    let matrix = if has_matrix {
        Some(sorter.finish()?)
    } else {
        None
    };
    Ok(Some(Lean {
        manifest,
        plan,
        matrix,
    }))
}

/// The manifest's members but `selected` and the plan's `scenarios`, which go to `sorter`
/// (`None`: not laid out as the runner writes it; an error of the sorter is in `failed`).
fn parse(
    r: &mut dyn std::io::BufRead,
    sorter: &mut Sorter<Entry>,
    failed: &mut Option<crate::Error>,
) -> Option<Parsed> {
    let mut de = serde_json::Deserializer::from_reader(r);
    let top = Top { sorter, failed }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(top)
}

/// The fields that differ between two plans read lean, as `jsondiff::diff` lists them for
/// the whole plans (`$schema` left out).
pub(super) fn plan_fields(a: &Lean, b: &Lean) -> Result<Vec<FieldChange>> {
    fields_of((&a.plan, a.matrix.as_ref()), (&b.plan, b.matrix.as_ref()))
}

type PlanParts<'a> = (&'a Map<String, Value>, Option<&'a Run>);

fn fields_of(a: PlanParts<'_>, b: PlanParts<'_>) -> Result<Vec<FieldChange>> {
    let mut keys: BTreeSet<&str> = a.0.keys().chain(b.0.keys()).map(String::as_str).collect();
    if a.1.is_some() || b.1.is_some() {
        keys.insert("scenarios");
    }
    keys.remove("$schema");
    let mut out = Vec::new();
    for k in keys {
        let path = jsondiff::key_path("", k);
        if k == "scenarios" {
            match (a.1, b.1) {
                (Some(x), Some(y)) => matrix_fields(&path, x, y, &mut out)?,
                (Some(x), None) => out.push(FieldChange {
                    path,
                    before: Some(whole(x)?),
                    after: None,
                }),
                (None, Some(y)) => out.push(FieldChange {
                    path,
                    before: None,
                    after: Some(whole(y)?),
                }),
                (None, None) => {}
            }
            continue;
        }
        match (a.0.get(k), b.0.get(k)) {
            (Some(x), Some(y)) => out.extend(jsondiff::diff_at(&path, x, y)),
            (Some(x), None) => out.push(FieldChange {
                path,
                before: Some(x.clone()),
                after: None,
            }),
            (None, Some(y)) => out.push(FieldChange {
                path,
                before: None,
                after: Some(y.clone()),
            }),
            (None, None) => {}
        }
    }
    Ok(out)
}

fn value(s: &str) -> Result<Value> {
    serde_json::from_str(s)
        .map_err(|e| crate::Error::runner("a sorted matrix entry").with_source(e))
}

/// The whole matrix as a value (a plan whose other side has none: the change is all of it).
fn whole(run: &Run) -> Result<Value> {
    let mut m = Map::new();
    for e in run.reader::<Entry>()? {
        let (p, probe, v) = e?;
        let inner = m.entry(p).or_insert_with(|| Value::Object(Map::new()));
        if let (Some(probe), Value::Object(o)) = (probe, inner) {
            o.insert(probe, value(&v)?);
        }
    }
    Ok(Value::Object(m))
}

/// Every entry of one profile (from `first` on) as an object; the next entry after it.
fn profile_object(first: Entry, r: &mut RunReader<Entry>) -> Result<(Value, Option<Entry>)> {
    let mut o = Map::new();
    let p = first.0.clone();
    let mut next = Some(first);
    while let Some((q, probe, v)) = next.take() {
        if q != p {
            next = Some((q, probe, v));
            break;
        }
        if let Some(probe) = probe {
            o.insert(probe, value(&v)?);
        }
        next = r.next().transpose()?;
    }
    Ok((Value::Object(o), next))
}

/// The matrix's changed fields, walking both sorted runs side by side (each key once on
/// a side: the parse refuses a matrix whose keys do not increase).
#[allow(clippy::many_single_char_names)]
fn matrix_fields(base: &str, a: &Run, b: &Run, out: &mut Vec<FieldChange>) -> Result<()> {
    let (mut ra, mut rb) = (a.reader::<Entry>()?, b.reader::<Entry>()?);
    let (mut x, mut y) = (ra.next().transpose()?, rb.next().transpose()?);
    loop {
        match (x.take(), y.take()) {
            (None, None) => return Ok(()),
            (Some(e), None) => {
                let path = jsondiff::key_path(base, &e.0);
                let (v, n) = profile_object(e, &mut ra)?;
                out.push(FieldChange {
                    path,
                    before: Some(v),
                    after: None,
                });
                x = n;
            }
            (None, Some(e)) => {
                let path = jsondiff::key_path(base, &e.0);
                let (v, n) = profile_object(e, &mut rb)?;
                out.push(FieldChange {
                    path,
                    before: None,
                    after: Some(v),
                });
                y = n;
            }
            (Some(e), Some(f)) => match e.0.cmp(&f.0) {
                std::cmp::Ordering::Less => {
                    let path = jsondiff::key_path(base, &e.0);
                    let (v, n) = profile_object(e, &mut ra)?;
                    out.push(FieldChange {
                        path,
                        before: Some(v),
                        after: None,
                    });
                    (x, y) = (n, Some(f));
                }
                std::cmp::Ordering::Greater => {
                    let path = jsondiff::key_path(base, &f.0);
                    let (v, n) = profile_object(f, &mut rb)?;
                    out.push(FieldChange {
                        path,
                        before: None,
                        after: Some(v),
                    });
                    (x, y) = (Some(e), n);
                }
                std::cmp::Ordering::Equal => {
                    // The same profile on both sides: its probes side by side.
                    let p = e.0.clone();
                    let pbase = jsondiff::key_path(base, &p);
                    let (mut e, mut f) = (Some(e), Some(f));
                    loop {
                        let ein = e.as_ref().filter(|e| e.0 == p);
                        let fin = f.as_ref().filter(|f| f.0 == p);
                        match (ein, fin) {
                            (None, None) => break,
                            (Some(ee), None) => {
                                if let Some(probe) = &ee.1 {
                                    out.push(FieldChange {
                                        path: jsondiff::key_path(&pbase, probe),
                                        before: Some(value(&ee.2)?),
                                        after: None,
                                    });
                                }
                                e = ra.next().transpose()?;
                            }
                            (None, Some(ff)) => {
                                if let Some(probe) = &ff.1 {
                                    out.push(FieldChange {
                                        path: jsondiff::key_path(&pbase, probe),
                                        before: None,
                                        after: Some(value(&ff.2)?),
                                    });
                                }
                                f = rb.next().transpose()?;
                            }
                            (Some(ee), Some(ff)) => match ee.1.cmp(&ff.1) {
                                std::cmp::Ordering::Less => {
                                    if let Some(probe) = &ee.1 {
                                        out.push(FieldChange {
                                            path: jsondiff::key_path(&pbase, probe),
                                            before: Some(value(&ee.2)?),
                                            after: None,
                                        });
                                    }
                                    e = ra.next().transpose()?;
                                }
                                std::cmp::Ordering::Greater => {
                                    if let Some(probe) = &ff.1 {
                                        out.push(FieldChange {
                                            path: jsondiff::key_path(&pbase, probe),
                                            before: None,
                                            after: Some(value(&ff.2)?),
                                        });
                                    }
                                    f = rb.next().transpose()?;
                                }
                                std::cmp::Ordering::Equal => {
                                    if let Some(probe) = &ee.1
                                        && ee.2 != ff.2
                                    {
                                        let (va, vb) = (value(&ee.2)?, value(&ff.2)?);
                                        out.extend(jsondiff::diff_at(
                                            &jsondiff::key_path(&pbase, probe),
                                            &va,
                                            &vb,
                                        ));
                                    }
                                    e = ra.next().transpose()?;
                                    f = rb.next().transpose()?;
                                }
                            },
                        }
                    }
                    (x, y) = (e, f);
                }
            },
        }
    }
}

/// The manifest's top-level members but `selected` (kept empty) and the plan's members
/// but `scenarios` (spilled).
type Parsed = (Map<String, Value>, Map<String, Value>, bool);

struct Top<'a> {
    sorter: &'a mut Sorter<Entry>,
    failed: &'a mut Option<crate::Error>,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Parsed;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Parsed, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Parsed;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a run manifest")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Parsed, A::Error> {
        let mut top = Map::new();
        let mut plan = None;
        while let Some(k) = m.next_key::<String>()? {
            if top.contains_key(&k) {
                return Err(de::Error::custom("a member twice"));
            }
            match k.as_str() {
                "selected" => {
                    m.next_value::<de::IgnoredAny>()?;
                    top.insert(k, Value::Array(Vec::new()));
                }
                "plan" => {
                    plan = Some(m.next_value_seed(PlanSeed {
                        sorter: &mut *self.sorter,
                        failed: &mut *self.failed,
                    })?);
                    top.insert(k, Value::Object(Map::new()));
                }
                _ => {
                    let v: Value = m.next_value()?;
                    top.insert(k, v);
                }
            }
        }
        // A manifest without a plan is read whole (its parse fails the same way).
        let (plan, has_matrix) = plan.ok_or_else(|| de::Error::custom("no plan"))?;
        Ok((top, plan, has_matrix))
    }
}

struct PlanSeed<'a> {
    sorter: &'a mut Sorter<Entry>,
    failed: &'a mut Option<crate::Error>,
}

impl<'de> DeserializeSeed<'de> for PlanSeed<'_> {
    type Value = (Map<String, Value>, bool);
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PlanSeed<'_> {
    type Value = (Map<String, Value>, bool);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plan object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Self::Value, A::Error> {
        let mut plan = Map::new();
        let mut matrix = false;
        while let Some(k) = m.next_key::<String>()? {
            if plan.contains_key(&k) || (k == "scenarios" && matrix) {
                return Err(de::Error::custom("a member twice"));
            }
            if k == "scenarios" {
                m.next_value_seed(MatrixSeed {
                    sorter: &mut *self.sorter,
                    failed: &mut *self.failed,
                })?;
                matrix = true;
            } else {
                let v: Value = m.next_value()?;
                plan.insert(k, v);
            }
        }
        Ok((plan, matrix))
    }
}

struct MatrixSeed<'a> {
    sorter: &'a mut Sorter<Entry>,
    failed: &'a mut Option<crate::Error>,
}

impl MatrixSeed<'_> {
    fn push<E: de::Error>(&mut self, e: Entry) -> std::result::Result<(), E> {
        let w = e.0.len() + e.1.as_ref().map_or(0, String::len) + e.2.len();
        self.sorter.push(e, w).map_err(|err| {
            *self.failed = Some(err);
            E::custom("temporary file")
        })
    }
}

impl<'de> DeserializeSeed<'de> for MatrixSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MatrixSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scenario matrix")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut m: A) -> std::result::Result<(), A::Error> {
        let mut last: Option<String> = None;
        while let Some(p) = m.next_key::<String>()? {
            if last.as_ref().is_some_and(|l| *l >= p) {
                return Err(de::Error::custom("keys out of order"));
            }
            self.push((p.clone(), None, String::new()))?;
            m.next_value_seed(ProbesSeed {
                sorter: &mut *self.sorter,
                failed: &mut *self.failed,
                profile: &p,
            })?;
            last = Some(p);
        }
        Ok(())
    }
}

struct ProbesSeed<'a> {
    sorter: &'a mut Sorter<Entry>,
    failed: &'a mut Option<crate::Error>,
    profile: &'a str,
}

impl<'de> DeserializeSeed<'de> for ProbesSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ProbesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a profile's probes")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<(), A::Error> {
        let mut seed = MatrixSeed {
            sorter: self.sorter,
            failed: self.failed,
        };
        let mut last: Option<String> = None;
        while let Some(probe) = m.next_key::<String>()? {
            if last.as_ref().is_some_and(|l| *l >= probe) {
                return Err(de::Error::custom("keys out of order"));
            }
            let v: Value = m.next_value()?;
            let text = serde_json::to_string(&v).map_err(de::Error::custom)?;
            seed.push((self.profile.to_string(), Some(probe.clone()), text))?;
            last = Some(probe);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::testrng::Rng;

    const KEYS: &[&str] = &["a", "b", "a.b", "x y", "é", "q\"", "0", "ab", "Z"];

    fn leaf(rng: &mut Rng) -> Value {
        match rng.below(8) {
            0 => serde_json::json!({"k": rng.below(3), "l": [1, rng.below(2)]}),
            1 => serde_json::json!([rng.below(2), "x"]),
            2 => Value::Null,
            3 => Value::from(rng.below(3)),
            _ => Value::from(if rng.chance(50) { "allow" } else { "deny" }),
        }
    }

    fn matrix(rng: &mut Rng) -> Value {
        let mut m = Map::new();
        for _ in 0..rng.below(6) {
            let mut probes = Map::new();
            for _ in 0..rng.below(8) {
                probes.insert(format!("{}{}", rng.pick(KEYS), rng.below(4)), leaf(rng));
            }
            m.insert(rng.pick(KEYS).to_string(), Value::Object(probes));
        }
        Value::Object(m)
    }

    fn plan(rng: &mut Rng, base: &Value) -> Value {
        let mut p = base.as_object().cloned().unwrap_or_default();
        for _ in 0..rng.below(3) {
            let k = rng
                .pick(&["$schema", "id", "lanes", "zz", "a b", "scenario"])
                .to_string();
            p.insert(k, leaf(rng));
        }
        if rng.chance(20) {
            p.remove("scenarios");
        } else if rng.chance(50) {
            // A few entries changed, added or removed from the base's matrix.
            let mut m = p.get("scenarios").cloned().unwrap_or_else(|| matrix(rng));
            if let Some(o) = m.as_object_mut() {
                for _ in 0..rng.below(4) {
                    let k = rng.pick(KEYS).to_string();
                    match rng.below(3) {
                        0 => {
                            o.remove(&k);
                        }
                        1 => {
                            o.insert(
                                k,
                                matrix(rng)
                                    .get("a")
                                    .cloned()
                                    .unwrap_or(serde_json::json!({})),
                            );
                        }
                        _ => {
                            if let Some(Value::Object(inner)) = o.get_mut(&k) {
                                inner.insert(
                                    format!("{}{}", rng.pick(KEYS), rng.below(4)),
                                    leaf(rng),
                                );
                            }
                        }
                    }
                }
            }
            p.insert("scenarios".into(), m);
        } else {
            p.insert("scenarios".into(), matrix(rng));
        }
        Value::Object(p)
    }

    fn lean_of(tmp: &Path, name: &str, plan: &Value) -> (Map<String, Value>, Option<Run>) {
        let text = json_text(&serde_json::json!({"plan": plan, "selected": ["x"], "run_id": "r"}));
        let mut sorter = Sorter::new(tmp, name, 64);
        let mut failed = None;
        let (top, p, has) =
            parse(&mut text.as_bytes(), &mut sorter, &mut failed).expect("sorted manifest");
        assert!(failed.is_none());
        assert_eq!(top["selected"], serde_json::json!([]));
        (p, has.then(|| sorter.finish().unwrap()))
    }

    fn json_text(v: &Value) -> String {
        String::from_utf8(crate::util::json::to_sorted_pretty(v).unwrap()).unwrap()
    }

    #[test]
    fn plans_compared_lean_give_the_fields_of_the_whole_plans() {
        let tmp = tempfile::tempdir().unwrap();
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("$schema");
            }
            v
        };
        for seed in 0..300u64 {
            let mut rng = Rng(seed);
            let base = plan(&mut rng, &Value::Object(Map::new()));
            let (a, b) = (plan(&mut rng, &base), plan(&mut rng, &base));
            let want = jsondiff::diff(&strip(&a), &strip(&b));
            let la = lean_of(tmp.path(), &format!("a{seed}"), &a);
            let lb = lean_of(tmp.path(), &format!("b{seed}"), &b);
            let got = fields_of((&la.0, la.1.as_ref()), (&lb.0, lb.1.as_ref())).unwrap();
            assert_eq!(got, want, "seed {seed}: {a} vs {b}");
        }
    }

    #[test]
    fn a_manifest_not_laid_out_as_written_is_left_to_the_whole_reader() {
        let tmp = tempfile::tempdir().unwrap();
        for (i, text) in [
            r#"{"plan": {"scenarios": {"b": {}, "a": {}}}}"#,
            r#"{"plan": {"scenarios": {"a": {"y": 1, "x": 1}}}}"#,
            r#"{"plan": {"scenarios": {"a": {"x": 1, "x": 2}}}}"#,
            r#"{"plan": {"scenarios": {"a": []}}}"#,
            r#"{"plan": {"id": 1, "id": 2}}"#,
            r#"{"plan": {}, "plan": {}}"#,
            r#"{"plan": []}"#,
            r#"{"run_id": "r"}"#,
            r#"{"plan": {}} x"#,
        ]
        .iter()
        .enumerate()
        {
            let mut sorter = Sorter::new(tmp.path(), &format!("n{i}"), 64);
            let mut failed = None;
            assert!(
                parse(&mut text.as_bytes(), &mut sorter, &mut failed).is_none(),
                "{text}"
            );
        }
    }
}
