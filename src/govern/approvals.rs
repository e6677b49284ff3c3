//! Approval records: writing them,
//! signing them, and verifying a set of them for a plan. Fail closed: anything wrong with a
//! record makes it "not approved", with a stable reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::short_hex;
use super::sign::{self, Refusal, RejectReason};
use super::trust::TrustStore;
use crate::load::LoadedPlan;
use crate::model::approval::{APPROVAL_SCHEMA, ApprovalRecord, Decision};
pub use crate::model::gate::{ApprovalCheck, Rejected, ValidApproval};
use crate::util::digest::blake3_hex;
use crate::util::{fsx, json};
use crate::{Error, Result};

pub use super::trust::validate_principal;
pub use crate::model::approval::RUN_SCOPE;

/// Every scope an approval can be for; `approve --scope` refuses any other at once.
pub const KNOWN_SCOPES: [&str; 1] = [RUN_SCOPE];

/// Clock skew tolerated for `issued_at` in the future.
pub const ISSUED_AT_SKEW_SECS: i64 = 300;

/// Longest `--expires-in` accepted.
pub const MAX_VALIDITY_DAYS: i64 = 366;

impl ApprovalCheck {
    /// Valid approvers other than `excluded`.
    pub fn approvers_except(&self, excluded: Option<&str>) -> Vec<&str> {
        self.valid
            .iter()
            .map(|v| v.approver.as_str())
            .filter(|a| Some(*a) != excluded)
            .collect()
    }
}

/// Verify approval records for `plan` (scope `run`) at `now`.
pub fn verify(
    plan: &LoadedPlan,
    records: &[PathBuf],
    trust: &TrustStore,
    now: jiff::Timestamp,
) -> ApprovalCheck {
    verify_scoped(plan, records, trust, RUN_SCOPE, now)
}

/// Verify approval records for `plan` in `scope` at `now`. Records are examined in path
/// order (duplicates of a path once), so the result never depends on argument order.
pub fn verify_scoped(
    plan: &LoadedPlan,
    records: &[PathBuf],
    trust: &TrustStore,
    scope: &str,
    now: jiff::Timestamp,
) -> ApprovalCheck {
    let paths: BTreeSet<&PathBuf> = records.iter().collect();
    let mut check = ApprovalCheck::default();
    let mut approvers: BTreeSet<String> = BTreeSet::new();
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for path in paths {
        match verify_one(plan, path, trust, scope, now) {
            Err((reason, detail)) => check.rejected.push(Rejected {
                path: path.clone(),
                reason,
                detail,
            }),
            Ok(v) => {
                if approvers.contains(&v.approver) {
                    check.rejected.push(Rejected {
                        path: path.clone(),
                        reason: RejectReason::DuplicateApprover,
                        detail: format!("`{}` already approved (counted once)", v.approver),
                    });
                } else if keys.contains(&v.key_fingerprint) {
                    check.rejected.push(Rejected {
                        path: path.clone(),
                        reason: RejectReason::DuplicateKey,
                        detail: format!(
                            "key {} already signed another approval (one key, one approver)",
                            v.key_fingerprint
                        ),
                    });
                } else {
                    approvers.insert(v.approver.clone());
                    keys.insert(v.key_fingerprint.clone());
                    check.valid.push(v);
                }
            }
        }
    }
    check
}

fn verify_one(
    plan: &LoadedPlan,
    path: &Path,
    trust: &TrustStore,
    scope: &str,
    now: jiff::Timestamp,
) -> std::result::Result<ValidApproval, Refusal> {
    let signed = sign::verify_signature(path, trust)?;
    let record: ApprovalRecord = serde_json::from_slice(&signed.bytes).map_err(|e| {
        (
            RejectReason::MalformedRecord,
            format!("not an approval record: {e}"),
        )
    })?;
    if record.schema != APPROVAL_SCHEMA {
        return Err((
            RejectReason::MalformedRecord,
            format!(
                "schema is `{}`, expected `{APPROVAL_SCHEMA}`",
                record.schema
            ),
        ));
    }
    let roles = signed.authorize(&record.approver, &record.roles, now)?;
    if record.plan_id != plan.plan.plan_id {
        return Err((
            RejectReason::PlanIdMismatch,
            format!(
                "approves plan `{}`, not `{}`",
                record.plan_id, plan.plan.plan_id
            ),
        ));
    }
    if record.plan_digest != plan.digest {
        return Err((
            RejectReason::PlanDigestMismatch,
            format!(
                "approves plan digest {}, but the plan as it is now (with its probes and profiles) has {}: it changed since it was approved",
                short_hex(&record.plan_digest.blake3),
                short_hex(&plan.digest.blake3)
            ),
        ));
    }
    if record.scope != scope {
        return Err((
            RejectReason::ScopeMismatch,
            format!("scope is `{}`, this needs `{scope}`", record.scope),
        ));
    }
    if record.decision != Decision::Approve {
        return Err((
            RejectReason::DecisionNotApprove,
            format!("the decision is `{}`", record.decision.as_str()),
        ));
    }
    let (issued, expires) = record_times(&record.issued_at, &record.expires_at)?;
    if now >= expires {
        return Err((
            RejectReason::Expired,
            format!("expired at {}", record.expires_at),
        ));
    }
    if issued.as_second() > now.as_second() + ISSUED_AT_SKEW_SECS {
        return Err((
            RejectReason::NotYetValid,
            format!("issued_at {} is in the future", record.issued_at),
        ));
    }
    Ok(ValidApproval {
        approver: record.approver,
        key_fingerprint: signed.fingerprint,
        record_path: path.to_path_buf(),
        sig_path: signed.sig_path,
        roles,
        issued_at: record.issued_at,
        expires_at: record.expires_at,
        record_blake3: blake3_hex(&signed.bytes),
        nonce: record.nonce,
        uses: record.uses,
        used: None,
    })
}

/// Take out of `check` the limited-use approvals whose uses are spent (`uses_of(nonce)`:
/// how many runs used the record with that nonce), rejected as `uses-exhausted`; the
/// others get their `used` count.
pub fn apply_uses(check: &mut ApprovalCheck, uses_of: &dyn Fn(&str) -> u32) {
    let mut keep = Vec::with_capacity(check.valid.len());
    for mut v in std::mem::take(&mut check.valid) {
        match v.uses {
            Some(limit) => {
                let used = uses_of(&v.nonce);
                if used >= limit {
                    check.rejected.push(Rejected {
                        path: v.record_path.clone(),
                        reason: RejectReason::UsesExhausted,
                        detail: format!(
                            "a {limit}-use approval, already used by {used} run(s) (nonce {})",
                            short_hex(&v.nonce)
                        ),
                    });
                } else {
                    v.used = Some(used);
                    keep.push(v);
                }
            }
            None => keep.push(v),
        }
    }
    check.valid = keep;
    check.rejected.sort_by(|a, b| a.path.cmp(&b.path));
}

/// Parse a record's `issued_at` and `expires_at`; `expires_at` must be later.
pub(crate) fn record_times(
    issued_at: &str,
    expires_at: &str,
) -> std::result::Result<(jiff::Timestamp, jiff::Timestamp), Refusal> {
    let parse = |field: &str, v: &str| {
        v.parse::<jiff::Timestamp>().map_err(|_| {
            (
                RejectReason::MalformedRecord,
                format!("{field} `{v}` is not an RFC 3339 time"),
            )
        })
    };
    let issued = parse("issued_at", issued_at)?;
    let expires = parse("expires_at", expires_at)?;
    if expires <= issued {
        return Err((
            RejectReason::MalformedRecord,
            "expires_at is not after issued_at".into(),
        ));
    }
    Ok((issued, expires))
}

/// The approvals directory of a plan: `approvals/` beside the plan file.
pub fn approvals_dir(plan: &LoadedPlan) -> PathBuf {
    plan.path
        .parent()
        .map_or_else(|| PathBuf::from("approvals"), |d| d.join("approvals"))
}

/// The default record path: `approvals/<plan_id>.<approver>.json` beside the plan.
pub fn default_record_path(plan: &LoadedPlan, approver: &str) -> PathBuf {
    approvals_dir(plan).join(format!("{}.{approver}.json", plan.plan.plan_id))
}

/// Records found beside the plan: `approvals/<plan_id>.*.json`, sorted.
pub fn discover(plan: &LoadedPlan) -> Result<Vec<PathBuf>> {
    let dir = approvals_dir(plan);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let prefix = format!("{}.", plan.plan.plan_id);
    Ok(fsx::read_dir_sorted(&dir)?
        .into_iter()
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&prefix) && Path::new(n).extension().is_some_and(|e| e == "json")
            })
        })
        .filter(|p| p.is_file())
        .collect())
}

/// Parse a validity like `24h`, `7d`, `90m`, `1d12h` (units `s`, `m`, `h`, `d`, `w`).
pub fn parse_validity(s: &str) -> Result<jiff::SignedDuration> {
    let bad = || {
        Error::usage(format!("invalid duration `{s}`")).with_hint(
            "use a number and a unit: `30m`, `24h`, `7d`, `2w` (combinations like `1d12h` work)",
        )
    };
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    if !num.is_empty() || total <= 0 {
        return Err(bad());
    }
    if total > MAX_VALIDITY_DAYS * 86_400 {
        return Err(
            Error::usage(format!("`{s}` is longer than {MAX_VALIDITY_DAYS} days"))
                .with_hint("approvals must expire; approve again when needed"),
        );
    }
    Ok(jiff::SignedDuration::from_secs(total))
}

/// Settings of a new approval record.
#[derive(Debug, Clone)]
pub struct NewApproval<'a> {
    /// The approver principal.
    pub approver: &'a str,
    /// The scope (`run`).
    pub scope: &'a str,
    /// How long it is valid.
    pub validity: jiff::SignedDuration,
    /// Roles claimed (each must be granted by the trust file).
    pub roles: Vec<String>,
    /// The project root (for the informational `plan_path`).
    pub root: &'a Path,
    /// Issue time.
    pub now: jiff::Timestamp,
    /// Runs the approval may be used for (`None`: any number until it expires).
    pub uses: Option<u32>,
}

/// Build an approval record for `plan`.
pub fn new_record(plan: &LoadedPlan, n: &NewApproval<'_>) -> Result<ApprovalRecord> {
    validate_principal(n.approver)?;
    if !KNOWN_SCOPES.contains(&n.scope) {
        return Err(
            Error::usage(format!("unknown scope `{}`", n.scope)).with_hint(format!(
                "an approval is for one of: {} (the gate consults no other scope)",
                KNOWN_SCOPES.join(", ")
            )),
        );
    }
    let issued = n.now.round(jiff::Unit::Second).unwrap_or(n.now);
    let expires = issued
        .checked_add(n.validity)
        .map_err(|e| Error::usage("the expiry is out of range").with_source(e))?;
    let abs = fsx::absolute(&plan.path)?;
    let root = fsx::absolute(n.root)?;
    let plan_path = abs
        .strip_prefix(&root)
        .map_or_else(|_| abs.display().to_string(), |p| p.display().to_string());
    let mission = plan.plan.mission.as_ref();
    Ok(ApprovalRecord {
        schema: APPROVAL_SCHEMA.to_string(),
        plan_id: plan.plan.plan_id.clone(),
        plan_path,
        plan_digest: plan.digest.clone(),
        scope: n.scope.to_string(),
        decision: Decision::Approve,
        approver: n.approver.to_string(),
        roles: n.roles.clone(),
        issued_at: issued.to_string(),
        expires_at: expires.to_string(),
        nonce: super::state::random_hex(16)?,
        uses: match n.uses {
            Some(0) => {
                return Err(Error::usage("`--uses 0` would approve nothing")
                    .with_hint("use `--uses 1` for a single-use approval, or leave it out"));
            }
            u => u,
        },
        rank: mission.map(|m| m.rank),
        requested_by: mission.map(|m| m.requested_by.clone()),
    })
}

/// The exact bytes of a record as written and signed.
pub fn record_bytes<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    json::to_sorted_pretty(record)
}

/// Write `bytes` to `path` (parent directories created). Without `overwrite`, an existing
/// file is refused and left untouched.
pub fn write_file(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsx::create_dir_all(parent)?;
    }
    if overwrite {
        fsx::write_atomic(path, bytes)
    } else {
        super::state::write_new(path, bytes)
            .map_err(|e| e.with_hint("pass --overwrite to replace it"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_parsing() {
        assert_eq!(parse_validity("24h").unwrap().as_secs(), 86_400);
        assert_eq!(parse_validity("1d12h").unwrap().as_secs(), 129_600);
        assert_eq!(parse_validity("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_validity("2w").unwrap().as_secs(), 14 * 86_400);
        for bad in ["", "24", "h", "0h", "5y", "-1h", "400d"] {
            assert!(parse_validity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn principals() {
        for ok in ["alice", "alice@example.com", "ops.bob-2", "a+b"] {
            validate_principal(ok).unwrap();
        }
        for bad in ["", "-x", "a b", "a,b", "a*", "../x", "ä"] {
            assert!(validate_principal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn record_times_must_be_ordered() {
        assert!(record_times("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").is_ok());
        assert_eq!(
            record_times("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z")
                .unwrap_err()
                .0,
            RejectReason::MalformedRecord
        );
        assert_eq!(
            record_times("yesterday", "2026-01-01T00:00:00Z")
                .unwrap_err()
                .0,
            RejectReason::MalformedRecord
        );
    }
}
