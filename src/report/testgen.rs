//! Generated runs for the renderers' tests: rows of random profiles (ids that sort
//! differently as profiles and as scenario ids: `a`, `a-b`, `a.b`, `a0`, …), random
//! mismatches, flaky rows, oracle verdicts, lane details and mismatch packets, sometimes
//! more than a page or than the attention list holds.

use std::collections::BTreeMap;

use serde_json::json;

use crate::model::results::{MismatchPacket, NormalizedRow, OracleVerdict, Summary};
use crate::model::view::{AttemptBrief, LaneDetail, ScenarioDetail};
use crate::util::testrng::Rng;

/// One generated run.
pub struct GenRun {
    pub rows: Vec<NormalizedRow>,
    pub oracle: Vec<OracleVerdict>,
    pub details: BTreeMap<String, ScenarioDetail>,
    pub packets: Vec<MismatchPacket>,
    pub summary: Summary,
}

const PROFILES: &[&str] = &["a", "a-b", "a.b", "a0", "b", "ab", "a_b", "z9"];
const KINDS: &[&str] = &[
    "expected-deny-observed-allow",
    "expected-allow-observed-deny",
    "oracle-divergence",
    "apply-failed",
];
const OUTCOMES: &[&str] = &["allow", "deny", "error", "timeout", "skipped"];

fn cell(rng: &mut Rng) -> serde_json::Value {
    let o = *rng.pick(OUTCOMES);
    json!({"outcome": o, "stage": "operation", "errno_name": if o == "deny" { Some("EACCES") } else { None }})
}

/// A run of about `n` rows from `seed` (`big`: some profile gets more than a page of
/// matching rows, and the attention list may overflow).
pub fn run(seed: u64, n: usize, big: bool) -> GenRun {
    let mut rng = Rng(seed);
    let profiles: Vec<&str> = PROFILES
        .iter()
        .copied()
        .filter(|_| rng.chance(70))
        .collect();
    let profiles = if profiles.is_empty() {
        vec!["a"]
    } else {
        profiles
    };
    let mismatch_pct = *rng.pick(&[0u64, 3, 30, 90]);
    let flaky_pct = *rng.pick(&[0u64, 5, 40]);
    let mut ids = Vec::new();
    for p in &profiles {
        let k = if big && rng.chance(50) {
            n
        } else {
            rng.below(n / profiles.len() + 2)
        };
        for i in 0..k {
            ids.push((p.to_string(), format!("q{i:04}")));
        }
    }
    ids.sort_by(|a, b| format!("{}:{}", a.0, a.1).cmp(&format!("{}:{}", b.0, b.1)));
    let mut g = GenRun {
        rows: Vec::new(),
        oracle: Vec::new(),
        details: BTreeMap::new(),
        packets: Vec::new(),
        summary: Summary::placeholder("run-1", "plan-1"),
    };
    for (profile, probe) in ids {
        let id = format!("{profile}:{probe}");
        let mismatches: Vec<&str> = if rng.chance(mismatch_pct) {
            rng.subset(KINDS, 40)
        } else {
            Vec::new()
        };
        let flaky = rng.chance(flaky_pct);
        let row = json!({
            "scenario_id": id, "profile_id": profile, "probe_id": probe,
            "operation": "file-read", "expected": if rng.chance(50) { "allow" } else { "deny" },
            "baseline": cell(&mut rng), "scenario": cell(&mut rng),
            "oracle": {"decision": if rng.chance(50) { "allow" } else { "deny" }, "reason": format!("because <{}> & \"x\"", rng.below(9u8))},
            "mismatches": mismatches, "flaky": flaky,
        });
        let row: NormalizedRow = serde_json::from_value(row).expect("a generated row parses");
        for k in &row.mismatches {
            let p = json!({
                "schema_version": 2, "scenario_id": id, "kind": k.as_str(), "profile_id": row.profile_id,
                "probe_id": row.probe_id, "operation": "file-read", "expected": row.expected.as_str(),
                "message": format!("{id} went <wrong> {}", rng.below(99u8)),
                "oracle_reason": if rng.chance(50) { Some(format!("rule #{}", rng.below(5u8))) } else { None },
            });
            g.packets
                .push(serde_json::from_value(p).expect("a generated packet parses"));
        }
        if rng.chance(70) {
            let v = json!({
                "scenario_id": id, "profile_id": row.profile_id, "probe_id": row.probe_id,
                "operation": "file-read", "decision": "allow", "reason": format!("granted by {}", rng.below(7u8)),
                "rule": {"kind": "fs", "index": rng.below(4u8), "path": "/usr", "access": ["read"]}, "checks": [],
            });
            g.oracle
                .push(serde_json::from_value(v).expect("a generated verdict parses"));
        }
        if rng.chance(80) {
            let mut d = ScenarioDetail::new();
            for lane in [
                crate::model::results::Lane::Baseline,
                crate::model::results::Lane::Scenario,
            ] {
                if rng.chance(20) {
                    continue;
                }
                let attempts = (0..rng.below(3u32))
                    .map(|a| AttemptBrief {
                        attempt: a + 1,
                        outcome: crate::model::results::Outcome::Deny,
                        errno_name: rng.chance(50).then(|| "EACCES".to_string()),
                        detail: "d".into(),
                        wall_us: rng.below(5000u64),
                    })
                    .collect();
                d.insert(
                    lane,
                    LaneDetail {
                        wall_us: rng.below(3_000_000u64),
                        detail: String::new(),
                        exit_code: None,
                        attempts,
                        logs: if rng.chance(30) {
                            vec![format!("logs/{id}/{}.stdout", lane.as_str())]
                        } else {
                            Vec::new()
                        },
                    },
                );
            }
            g.details.insert(id.clone(), d);
        }
        g.rows.push(row);
    }
    g.summary.scenarios = g.rows.len() as u64 + rng.below(3u64);
    g
}
