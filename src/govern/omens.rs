//! Omens: failure fingerprints counted across runs.
//!
//! A fingerprint is the blake3 of `plan_id|scenario_id|mismatch_kind|outcome`: the same
//! scenario of the same plan failing the same way. Thresholds apply to the count since the
//! last clearance: 3 → warn, 7 → the scenario needs an approval, 13 → locked until an
//! approver clears it with a signed clearance record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::sign::{self, Refusal, RejectReason};
use super::trust::TrustStore;
use crate::model::approval::{CLEARANCE_SCHEMA, ClearanceRecord, Decision};
pub use crate::model::gate::{OmenHit, OmenLevel};
use crate::model::omens::{ClearanceNote, Omen, OmensFile};
use crate::util::digest::blake3_hex;
use crate::{Error, Result};

/// Count at which an omen warns.
pub const WARN_AT: u64 = 3;
/// Count at which the scenario needs an approval.
pub const APPROVAL_AT: u64 = 7;
/// Count at which the scenario is locked until cleared.
pub const LOCK_AT: u64 = 13;

impl OmenLevel {
    /// `quiet`, `warn`, `needs-approval`, `locked`.
    pub fn as_str(self) -> &'static str {
        match self {
            OmenLevel::Quiet => "quiet",
            OmenLevel::Warn => "warn",
            OmenLevel::NeedsApproval => "needs-approval",
            OmenLevel::Locked => "locked",
        }
    }

    /// The level of an effective count.
    pub fn of_count(n: u64) -> Self {
        if n >= LOCK_AT {
            OmenLevel::Locked
        } else if n >= APPROVAL_AT {
            OmenLevel::NeedsApproval
        } else if n >= WARN_AT {
            OmenLevel::Warn
        } else {
            OmenLevel::Quiet
        }
    }
}

/// The count thresholds apply to: failures since the last clearance.
pub fn effective(o: &Omen) -> u64 {
    o.count.saturating_sub(o.cleared_at)
}

/// An omen's level.
pub fn level(o: &Omen) -> OmenLevel {
    OmenLevel::of_count(effective(o))
}

/// The fingerprint of a failure.
pub fn fingerprint(plan_id: &str, scenario_id: &str, mismatch_kind: &str, outcome: &str) -> String {
    blake3_hex(format!("{plan_id}|{scenario_id}|{mismatch_kind}|{outcome}").as_bytes())
}

/// One failure seen by a run (what part 2's runner reports per mismatch).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Failure {
    /// The plan.
    pub plan_id: String,
    /// `<profile>:<probe>`.
    pub scenario_id: String,
    /// The mismatch kind.
    pub mismatch_kind: String,
    /// The observed outcome.
    pub outcome: String,
}

impl Failure {
    /// Its fingerprint.
    pub fn fingerprint(&self) -> String {
        fingerprint(
            &self.plan_id,
            &self.scenario_id,
            &self.mismatch_kind,
            &self.outcome,
        )
    }
}

/// An omen that changed level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Crossing {
    /// The fingerprint.
    pub fingerprint: String,
    /// The scenario.
    pub scenario_id: String,
    /// Level before.
    pub from: OmenLevel,
    /// Level after.
    pub to: OmenLevel,
    /// Effective count after.
    pub count: u64,
}

/// Count the failures of one run (each fingerprint once per run). Returns the omens that
/// crossed a threshold, sorted by fingerprint.
pub fn record(
    file: &mut OmensFile,
    failures: &[Failure],
    run_id: &str,
    now: &str,
) -> Vec<Crossing> {
    let unique: BTreeMap<String, &Failure> =
        failures.iter().map(|f| (f.fingerprint(), f)).collect();
    let mut crossings = Vec::new();
    for (fp, f) in unique {
        let omen = file.omens.entry(fp.clone()).or_insert_with(|| Omen {
            plan_id: f.plan_id.clone(),
            scenario_id: f.scenario_id.clone(),
            mismatch_kind: f.mismatch_kind.clone(),
            outcome: f.outcome.clone(),
            count: 0,
            cleared_at: 0,
            first_seen: now.to_string(),
            last_seen: now.to_string(),
            last_run_id: None,
            clearances: Vec::new(),
        });
        let before = level(omen);
        omen.count += 1;
        omen.last_seen = now.to_string();
        omen.last_run_id = Some(run_id.to_string());
        let after = level(omen);
        if after != before {
            crossings.push(Crossing {
                fingerprint: fp,
                scenario_id: omen.scenario_id.clone(),
                from: before,
                to: after,
                count: effective(omen),
            });
        }
    }
    crossings
}

/// The omens of `plan_id` on `scenarios` at warn level or above, sorted by scenario.
pub fn hits_for(file: &OmensFile, plan_id: &str, scenarios: &BTreeSet<String>) -> Vec<OmenHit> {
    let mut out: Vec<OmenHit> = file
        .omens
        .iter()
        .filter(|(_, o)| o.plan_id == plan_id && scenarios.contains(&o.scenario_id))
        .filter(|(_, o)| level(o) >= OmenLevel::Warn)
        .map(|(fp, o)| OmenHit {
            scenario_id: o.scenario_id.clone(),
            fingerprint: fp.clone(),
            mismatch_kind: o.mismatch_kind.clone(),
            level: level(o),
            count: effective(o),
        })
        .collect();
    out.sort();
    out
}

/// The full fingerprint an operator means by `prefix` (at least 8 hex characters, unique).
pub fn resolve(file: &OmensFile, prefix: &str, path: &Path) -> Result<String> {
    let p = prefix.to_ascii_lowercase();
    if p.len() < 8 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            Error::usage(format!("`{prefix}` is not a fingerprint")).with_hint(
                "give at least 8 hex characters of a fingerprint from `nexusmon omens list`",
            ),
        );
    }
    let matches: Vec<&String> = file.omens.keys().filter(|k| k.starts_with(&p)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(
            Error::input(path, format!("no omen with fingerprint `{prefix}`"))
                .with_hint("`nexusmon omens list` shows the fingerprints"),
        ),
        _ => Err(
            Error::usage(format!("`{prefix}` matches {} omens", matches.len()))
                .with_hint("give more characters of the fingerprint"),
        ),
    }
}

/// A clearance record for the omen `fp` in its current state.
pub fn new_clearance(
    file: &OmensFile,
    fp: &str,
    approver: &str,
    now: jiff::Timestamp,
    validity: jiff::SignedDuration,
) -> Result<ClearanceRecord> {
    super::approvals::validate_principal(approver)?;
    let omen = file
        .omens
        .get(fp)
        .ok_or_else(|| Error::usage(format!("no omen `{fp}`")))?;
    let issued = now.round(jiff::Unit::Second).unwrap_or(now);
    let expires = issued
        .checked_add(validity)
        .map_err(|e| Error::usage("the expiry is out of range").with_source(e))?;
    Ok(ClearanceRecord {
        schema: CLEARANCE_SCHEMA.to_string(),
        fingerprint: fp.to_string(),
        plan_id: omen.plan_id.clone(),
        scenario_id: omen.scenario_id.clone(),
        count: omen.count,
        decision: Decision::Approve,
        approver: approver.to_string(),
        issued_at: issued.to_string(),
        expires_at: expires.to_string(),
        nonce: super::state::random_hex(16)?,
    })
}

/// A clearance that verified.
#[derive(Debug, Clone, Serialize)]
pub struct ValidClearance {
    /// The record.
    pub record: ClearanceRecord,
    /// Its path.
    pub record_path: PathBuf,
    /// Its signature's path.
    pub sig_path: PathBuf,
    /// `SHA256:…` of the signing key.
    pub key_fingerprint: String,
    /// blake3 of the record's bytes.
    pub record_blake3: String,
}

/// Verify a signed clearance of omen `fp` by `approver` against the trust file and the
/// omen's current state.
pub fn verify_clearance(
    file: &OmensFile,
    fp: &str,
    approver: &str,
    record_path: &Path,
    trust: &TrustStore,
    now: jiff::Timestamp,
) -> std::result::Result<ValidClearance, Refusal> {
    let signed = sign::verify_signature(record_path, trust)?;
    let record: ClearanceRecord = serde_json::from_slice(&signed.bytes).map_err(|e| {
        (
            RejectReason::MalformedRecord,
            format!("not an omen clearance record: {e}"),
        )
    })?;
    if record.schema != CLEARANCE_SCHEMA {
        return Err((
            RejectReason::MalformedRecord,
            format!(
                "schema is `{}`, expected `{CLEARANCE_SCHEMA}`",
                record.schema
            ),
        ));
    }
    if record.approver != approver {
        return Err((
            RejectReason::KeyNotTrustedForPrincipal,
            format!("the record is by `{}`, not `{approver}`", record.approver),
        ));
    }
    signed.authorize(&record.approver, &[], now)?;
    let Some(omen) = file.omens.get(fp) else {
        return Err((RejectReason::MalformedRecord, format!("no omen `{fp}`")));
    };
    if record.fingerprint != fp
        || record.plan_id != omen.plan_id
        || record.scenario_id != omen.scenario_id
    {
        return Err((
            RejectReason::PlanIdMismatch,
            format!("the record clears omen {}, not {fp}", record.fingerprint),
        ));
    }
    if record.decision != Decision::Approve {
        return Err((
            RejectReason::DecisionNotApprove,
            format!("the decision is `{}`", record.decision.as_str()),
        ));
    }
    if record.count != omen.count {
        return Err((
            RejectReason::StaleClearance,
            format!(
                "the record clears the omen at count {}, it is now at {}: write a new clearance",
                record.count, omen.count
            ),
        ));
    }
    let (issued, expires) = super::approvals::record_times(&record.issued_at, &record.expires_at)?;
    if now >= expires {
        return Err((
            RejectReason::Expired,
            format!("expired at {}", record.expires_at),
        ));
    }
    if issued.as_second() > now.as_second() + super::approvals::ISSUED_AT_SKEW_SECS {
        return Err((
            RejectReason::NotYetValid,
            format!("issued_at {} is in the future", record.issued_at),
        ));
    }
    Ok(ValidClearance {
        record,
        record_path: record_path.to_path_buf(),
        sig_path: signed.sig_path,
        key_fingerprint: signed.fingerprint,
        record_blake3: blake3_hex(&signed.bytes),
    })
}

/// Apply a verified clearance: thresholds restart from the current count.
pub fn apply_clearance(file: &mut OmensFile, c: &ValidClearance, now: &str) -> Result<()> {
    let omen = file
        .omens
        .get_mut(&c.record.fingerprint)
        .ok_or_else(|| Error::runner(format!("omen {} vanished", c.record.fingerprint)))?;
    omen.cleared_at = omen.count;
    omen.clearances.push(ClearanceNote {
        approver: c.record.approver.clone(),
        key_fingerprint: c.key_fingerprint.clone(),
        at: now.to_string(),
        count: omen.count,
        record_blake3: c.record_blake3.clone(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(s: &str) -> Failure {
        Failure {
            plan_id: "p".into(),
            scenario_id: s.into(),
            mismatch_kind: "expected-deny-observed-allow".into(),
            outcome: "allow".into(),
        }
    }

    #[test]
    fn thresholds() {
        assert_eq!(OmenLevel::of_count(2), OmenLevel::Quiet);
        assert_eq!(OmenLevel::of_count(3), OmenLevel::Warn);
        assert_eq!(OmenLevel::of_count(6), OmenLevel::Warn);
        assert_eq!(OmenLevel::of_count(7), OmenLevel::NeedsApproval);
        assert_eq!(OmenLevel::of_count(12), OmenLevel::NeedsApproval);
        assert_eq!(OmenLevel::of_count(13), OmenLevel::Locked);
    }

    #[test]
    fn counting_across_runs_reports_crossings_once_per_run() {
        let mut f = OmensFile::default();
        let fails = vec![failure("a:x"), failure("a:x"), failure("b:y")];
        let mut all = Vec::new();
        for i in 0..13 {
            all.extend(record(
                &mut f,
                &fails,
                &format!("run-{i}"),
                "2026-01-01T00:00:00Z",
            ));
        }
        let fp = failure("a:x").fingerprint();
        assert_eq!(f.omens[&fp].count, 13, "counted once per run");
        let to: Vec<OmenLevel> = all
            .iter()
            .filter(|c| c.fingerprint == fp)
            .map(|c| c.to)
            .collect();
        assert_eq!(
            to,
            vec![OmenLevel::Warn, OmenLevel::NeedsApproval, OmenLevel::Locked]
        );
        let hits = hits_for(&f, "p", &["a:x".to_string()].into());
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].level, OmenLevel::Locked);
        assert!(hits_for(&f, "other", &["a:x".to_string()].into()).is_empty());
    }

    #[test]
    fn fingerprint_prefixes_resolve_uniquely() {
        let mut f = OmensFile::default();
        record(&mut f, &[failure("a:x")], "r", "t");
        let fp = failure("a:x").fingerprint();
        assert_eq!(resolve(&f, &fp[..8], Path::new("o")).unwrap(), fp);
        assert!(resolve(&f, &fp[..6], Path::new("o")).is_err());
        assert!(resolve(&f, "00000000", Path::new("o")).is_err());
    }
}
