#![allow(
    clippy::cast_possible_truncation,
    clippy::many_single_char_names,
    clippy::unwrap_used
)]

//! The streaming views accept exactly what the full types accept, and keep the same facts:
//! seeded random mutations of full documents.

use serde_json::{Value, json};

use super::*;
use crate::model::results::{ExpectedMatrix, MismatchPacket, MismatchSummary, RunManifest};

use crate::util::testrng::Rng;

fn small(r: &mut Rng) -> Value {
    [
        json!(null),
        json!(1),
        json!(-1),
        json!(300),
        json!(1.5),
        json!(u64::MAX),
        json!("x"),
        json!("mission"),
        json!("S"),
        json!("allow"),
        json!(true),
        json!([]),
        json!({}),
        json!(["a"]),
        json!({"a": 1}),
        json!({"rank": "A", "requested_by": "alice"}),
    ][r.below(16)]
    .clone()
}

/// One random edit somewhere in `v`: a member removed, a value replaced, a member added.
fn mutate(r: &mut Rng, v: &mut Value, depth: u32) {
    let descend = depth < 6 && r.below(3) > 0;
    match v {
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = keys[r.below(keys.len())].clone();
            if descend {
                if let Some(child) = m.get_mut(&k) {
                    mutate(r, child, depth + 1);
                }
                return;
            }
            match r.below(3) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(k, small(r));
                }
                _ => {
                    m.insert(
                        ["kind", "mission", "rank", "zz"][r.below(4)].into(),
                        small(r),
                    );
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = r.below(a.len());
            if descend {
                mutate(r, &mut a[i], depth + 1);
            } else if r.below(2) == 0 {
                a.remove(i);
            } else {
                a[i] = small(r);
            }
        }
        Value::Array(a) => a.push(small(r)),
        other => *other = small(r),
    }
}

/// A text edit: a repeated key, a truncation, or a byte replaced.
fn mutate_text(r: &mut Rng, s: &str) -> String {
    let b = s.as_bytes();
    match r.below(3) {
        0 => s[..r.below(s.len())].to_string(),
        1 => {
            // Repeat the first member of some object after itself: `{"k":v,` → twice.
            let starts: Vec<usize> = s.match_indices("{\"").map(|(i, _)| i).collect();
            let Some(&i) = starts.get(r.below(starts.len().max(1))) else {
                return s.to_string();
            };
            let rest = &s[i + 1..];
            match rest.find(',') {
                Some(j) if !rest[..j].contains('{') && !rest[..j].contains('[') => {
                    let member = &rest[..=j];
                    format!("{}{{{member}{member}{}", &s[..i], &rest[j + 1..])
                }
                _ => s.to_string(),
            }
        }
        _ => {
            let mut v = b.to_vec();
            let i = r.below(v.len());
            v[i] = b"{}[],:\"0a \\"[r.below(11)];
            String::from_utf8_lossy(&v).into_owned()
        }
    }
}

fn manifest_base(mission: bool) -> Value {
    let host = serde_json::to_value(crate::sandbox::host::host_facts()).unwrap_or_default();
    let mut plan = json!({"id": "p", "kind": "experiment", "profiles": ["a"], "probes": ["x"]});
    if mission {
        plan = json!({"id": "p", "kind": "mission",
            "mission": {"rank": "S", "requested_by": "alice", "steps": [1, 2]}});
    }
    json!({
        "schema_version": 2,
        "run_id": "r1",
        "tool": {"name": "nexusmon", "version": "0"},
        "plan_id": "p",
        "plan_path": "plans/p/plan.json",
        "plan_digest": {"blake3": "00", "sha256": "11"},
        "channel": "clean",
        "host": host,
        "landlock_abi": 7,
        "lanes": {"lanes": ["baseline", "scenario"], "baseline_no_new_privs": true,
                  "scenario_no_new_privs": true, "scenario_adds": ["landlock"]},
        "jobs": 2,
        "scratch": "/dev/shm/x",
        "scratch_kept": false,
        "only_profiles": [],
        "only_scenarios": ["a:*"],
        "selected": ["a:x", "a:y"],
        "command_line": ["nexusmon", "run"],
        "variables": {"HOME": "${SCRATCH}"},
        "plan": plan,
        "probes": {},
        "profiles": {"a": {"handled": []}},
        "profile_definitions": {"a": {}},
        "preflight": [],
        "governance": ["g"],
        "listeners": [],
        "housekeeping": [],
        "registry_digests": {"probes": {"x": {"blake3": "22"}}},
        "workers": {},
        "inputs_digest": {"blake3": "33"},
        "started_at": "2026-01-01T00:00:00Z",
        "shards": [{"k": 1, "n": 2, "strategy": "hash", "run_id": "s1",
                    "artifact_index_blake3": "44", "host": "h", "status": "complete",
                    "promotable": true}]
    })
}

/// The facts as derive read them from the full manifest before (`Value::pointer`).
fn facts_of_full(m: &RunManifest) -> (String, String, Digest, PlanFacts, Option<Digest>, usize) {
    let at = |p: &str| m.plan.pointer(p).cloned();
    (
        m.plan_id.clone(),
        m.plan_path.clone(),
        m.plan_digest.clone(),
        PlanFacts {
            kind: at("/kind"),
            rank: at("/mission/rank"),
            requested_by: at("/mission/requested_by"),
        },
        m.inputs_digest.clone(),
        m.shards.len(),
    )
}

fn facts_of_view(m: &ManifestFacts) -> (String, String, Digest, PlanFacts, Option<Digest>, usize) {
    (
        m.plan_id.clone(),
        m.plan_path.clone(),
        m.plan_digest.clone(),
        m.plan.clone(),
        m.inputs_digest.clone(),
        m.shards.len(),
    )
}

/// Both accept `text` or both refuse it; when they accept, the facts agree.
fn check_manifest(text: &str) -> bool {
    let full = serde_json::from_str::<RunManifest>(text);
    let view = serde_json::from_reader::<_, ManifestFacts>(text.as_bytes());
    assert_eq!(
        full.is_ok(),
        view.is_ok(),
        "full: {:?}, view: {:?}\n{text}",
        full.as_ref().err(),
        view.as_ref().err()
    );
    if let (Ok(f), Ok(v)) = (&full, &view) {
        assert_eq!(facts_of_full(f), facts_of_view(v), "{text}");
        assert_eq!(f.channel, v.channel);
        assert_eq!(f.host, v.host);
        assert_eq!(f.shards, v.shards);
    }
    full.is_ok()
}

#[test]
fn manifest_facts_accept_what_run_manifest_accepts_and_keep_its_facts() {
    for mission in [false, true] {
        let base = manifest_base(mission);
        assert!(
            check_manifest(&base.to_string()),
            "the base manifest must parse as a RunManifest: add the new field to ManifestFacts and here"
        );
    }
    let mut r = Rng(0x5eed_0001);
    let (mut ok, mut refused) = (0, 0);
    for i in 0..3_000 {
        let mut v = manifest_base(i % 2 == 0);
        for _ in 0..=r.below(3) {
            mutate(&mut r, &mut v, 0);
        }
        let mut text = serde_json::to_string(&v).unwrap_or_default();
        if r.below(4) == 0 {
            text = mutate_text(&mut r, &text);
        }
        if check_manifest(&text) {
            ok += 1;
        } else {
            refused += 1;
        }
    }
    assert!(
        ok > 300 && refused > 300,
        "accepted {ok}, refused {refused}"
    );
}

#[test]
fn matrix_and_mismatch_checks_accept_what_the_full_types_accept() {
    let matrix = json!({"schema_version": 2, "plan_id": "p", "scenarios": {
        "a:x": {"profile_id": "a", "probe_id": "x", "expected": "allow"},
        "a:y": {"profile_id": "a", "probe_id": "y", "expected": "deny", "control": true,
                "task_id": "t", "depends_on": ["s"]}}});
    let summary = json!({"schema_version": 2, "run_id": "r", "total": 1,
        "by_kind": {"k": 1}, "by_profile": {"a": 1}, "scenarios": ["a:x"]});
    let mut r = Rng(0x5eed_0002);
    let mut agreed = [0, 0];
    for _ in 0..4_000 {
        let (mut m, mut s) = (matrix.clone(), summary.clone());
        for _ in 0..=r.below(2) {
            mutate(&mut r, &mut m, 0);
            mutate(&mut r, &mut s, 0);
        }
        let (mut mt, mut st) = (m.to_string(), s.to_string());
        if r.below(4) == 0 {
            mt = mutate_text(&mut r, &mt);
            st = mutate_text(&mut r, &st);
        }
        let full = serde_json::from_str::<ExpectedMatrix>(&mt).is_ok();
        let view = serde_json::from_reader::<_, ExpectedMatrixCheck>(mt.as_bytes()).is_ok();
        assert_eq!(full, view, "{mt}");
        agreed[usize::from(full)] += 1;
        let full = serde_json::from_str::<MismatchSummary>(&st).is_ok();
        let view = serde_json::from_reader::<_, MismatchSummaryCheck>(st.as_bytes()).is_ok();
        assert_eq!(full, view, "{st}");
    }
    assert!(agreed[0] > 300 && agreed[1] > 300, "{agreed:?}");
}

/// The whole-text check `derive` made before it read the file a line at a time.
fn lines_parse_whole(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok_and(|text| {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| serde_json::from_str::<MismatchPacket>(l).is_ok())
    })
}

#[test]
fn mismatch_lines_check_agrees_with_the_whole_text_check() {
    let line = json!({"schema_version": 2, "scenario_id": "a:x", "kind": "oracle-divergence", "message": "m",
        "profile_id": "a", "probe_id": "x", "operation": "file-read", "expected": "deny"});
    assert!(
        lines_parse_whole(format!("{line}\n").as_bytes()),
        "the base line must parse as a MismatchPacket"
    );
    let mut r = Rng(0x5eed_0003);
    let mut seen = [0, 0];
    for _ in 0..3_000 {
        let mut text = Vec::new();
        for _ in 0..r.below(4) {
            let mut l = line.clone();
            if r.below(3) == 0 {
                mutate(&mut r, &mut l, 0);
            }
            text.extend_from_slice(l.to_string().as_bytes());
            text.extend_from_slice([&b"\n"[..], b"\r\n", b"\n\n", b"\n  \n"][r.below(4)]);
        }
        match r.below(6) {
            0 if !text.is_empty() => {
                let i = r.below(text.len());
                text[i] = [0xff, b'\n', b'\r', b'{', b' '][r.below(5)];
            }
            1 => text.truncate(r.below(text.len() + 1)),
            _ => {}
        }
        let whole = lines_parse_whole(&text);
        assert_eq!(
            whole,
            mismatch_lines_parse(&mut &text[..]),
            "{}",
            String::from_utf8_lossy(&text)
        );
        seen[usize::from(whole)] += 1;
    }
    assert!(seen[0] > 200 && seen[1] > 200, "{seen:?}");
}
