//! What the cockpit (`nexusmon serve`) asks of governance: one mission in full (its plan,
//! the gate's decision now, every approval record and why it counts or not, its audit
//! entries), the audit log with its verification state, the approval record an operator
//! is asked to sign, and the one state change the cockpit makes: an approval uploaded with
//! its signature ([`upload_approval`]), verified exactly as `run` verifies it (the gate,
//! [`Governance::gate_at`], over the uploaded record and those already beside the plan)
//! and stored beside the plan with an `approval-recorded` audit entry, under the state
//! lock. The cockpit never signs: it holds no operator key.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use super::Governance;
use super::approvals::{self, ApprovalCheck};
use super::audit::{AuditKind, VerifyReport};
use super::gate::GateVerdict;
use super::sign::{self, RejectReason};
use crate::load::LoadedPlan;
use crate::model::audit::AuditEntry;
use crate::model::index::AuditHead;
use crate::util::digest::blake3_hex;
use crate::util::fsx;
use crate::{Error, Result};

/// Largest approval record or signature accepted by upload (a record is a few hundred
/// bytes; an RSA-4096 signature under 2 KiB).
pub const MAX_UPLOAD_BYTES: usize = 16 * 1024;

/// One mission in full.
#[derive(Debug, Clone, Serialize)]
pub struct MissionDetail {
    /// The plan id.
    pub plan_id: String,
    /// The plan file.
    pub path: PathBuf,
    /// The plan file's text, as written.
    pub plan_text: String,
    /// Its `plan_digest` (blake3 hex).
    pub plan_digest: String,
    /// The mission block (objective, rank, scores, tasks).
    pub mission: Option<serde_json::Value>,
    /// The gate's decision now (as `run --dry` would take it).
    pub decision: GateVerdict,
    /// Every approval record considered, valid or rejected with its reason.
    pub approvals: ApprovalCheck,
    /// The audit entries that name this plan, in log order.
    pub audit: Vec<AuditEntry>,
}

/// `mission:<id>` in full: the gate is evaluated now (nothing is written).
pub fn mission_detail(
    gov: &Governance,
    plan: &LoadedPlan,
    now: jiff::Timestamp,
) -> Result<MissionDetail> {
    let report = gov.gate_at(plan, &[], true, now)?;
    let plan_text = fsx::read_document_max(&plan.path, crate::util::limits::MAX_PLAN_BYTES)?;
    let id = plan.plan.plan_id.to_string();
    let audit = audit_entries(gov)?
        .into_iter()
        .filter(|e| e.data.get("plan_id").and_then(|v| v.as_str()) == Some(id.as_str()))
        .collect();
    Ok(MissionDetail {
        plan_id: id,
        path: plan.path.clone(),
        plan_text,
        plan_digest: plan.digest.blake3.clone(),
        mission: plan
            .plan
            .mission
            .as_ref()
            .and_then(|m| serde_json::to_value(m).ok()),
        decision: report.decision,
        approvals: report.approvals,
        audit,
    })
}

/// Every complete entry of the audit log of `gov`, in log order (a line that does not
/// parse is skipped: the verification report names it).
pub fn audit_entries(gov: &Governance) -> Result<Vec<AuditEntry>> {
    let path = gov.audit().path().to_path_buf();
    let file = std::fs::File::open(&path).map_err(|e| Error::io("open audit log", &path, e))?;
    super::state::flock_shared(&file, &path)?;
    let mut out = Vec::new();
    super::audit::each_line(file, &path, |line| {
        if let Ok(e) = serde_json::from_slice::<AuditEntry>(line) {
            out.push(e);
        }
    })?;
    Ok(out)
}

/// The audit log's verification (chain and head file) and its entries.
pub fn audit_log(gov: &Governance) -> Result<(VerifyReport, Vec<AuditEntry>)> {
    let report = gov.audit().verify(&[])?;
    Ok((report, audit_entries(gov)?))
}

/// An approval record for an operator to sign (`ssh-keygen -Y sign`), as `approve` would
/// write it, and the file name it is stored under beside the plan once uploaded.
#[derive(Debug, Clone, Serialize)]
pub struct ToSign {
    /// The record's exact bytes, as text.
    pub record: String,
    /// A file name to save it under.
    pub file_name: String,
}

/// The record `approver` would sign to approve `plan` for `validity` (and `uses` runs).
pub fn approval_to_sign(
    plan: &LoadedPlan,
    approver: &str,
    validity: &str,
    uses: Option<u32>,
    root: &Path,
    now: jiff::Timestamp,
) -> Result<ToSign> {
    let record = approvals::new_record(
        plan,
        &approvals::NewApproval {
            approver,
            scope: approvals::RUN_SCOPE,
            validity: approvals::parse_validity(validity)?,
            roles: Vec::new(),
            root,
            now,
            uses,
        },
    )?;
    let bytes = approvals::record_bytes(&record)?;
    Ok(ToSign {
        record: String::from_utf8_lossy(&bytes).into_owned(),
        file_name: format!("{}.{approver}.json", plan.plan.plan_id),
    })
}

/// An uploaded approval that counts, stored beside the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    /// The record as stored.
    pub record: PathBuf,
    /// Its signature.
    pub signature: PathBuf,
    /// Its approver.
    pub approver: String,
    /// `SHA256:…` of the signing key.
    pub key_fingerprint: String,
    /// When it expires.
    pub expires_at: String,
    /// Runs it may be used for (`None`: any number until it expires).
    pub uses: Option<u32>,
    /// The audit head after its `approval-recorded` entry.
    pub audit_head: AuditHead,
    /// The gate's decision for the mission now, with this approval.
    pub decision: GateVerdict,
}

/// Why an upload was refused: a stable reason (the gate's, as `run` names it) and what
/// exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadRefused {
    /// The reason's stable name (`wrong-namespace`, `plan-digest-mismatch`, …).
    pub reason: String,
    /// What exactly.
    pub detail: String,
}

/// What [`upload_approval`] did.
#[derive(Debug, Clone)]
pub enum Upload {
    /// Verified and stored.
    Accepted(Box<Accepted>),
    /// Refused; nothing stored.
    Refused(UploadRefused),
}

/// Verify an uploaded approval record (`record`: its exact bytes) and SSH signature
/// (`signature`: the armored text) for `plan` exactly as `run` would, at `now`, and store
/// both beside the plan (`approvals/<plan_id>.<approver>.<digest>.json` and `.sig`) with an
/// `approval-recorded` audit entry. Under the state lock: the check and the store are one
/// step for every other governed writer. A record that would not count is refused with the
/// gate's reason and nothing is left behind; a record whose approver or key already has an
/// approval that counts is refused too (`duplicate-approver`, `duplicate-key`): it would
/// add nothing.
pub fn upload_approval(
    gov: &Governance,
    plan: &LoadedPlan,
    record: &[u8],
    signature: &[u8],
    now: jiff::Timestamp,
) -> Result<Upload> {
    let refuse = |reason: RejectReason, detail: String| {
        Ok(Upload::Refused(UploadRefused {
            reason: reason.as_str().to_string(),
            detail,
        }))
    };
    if record.is_empty() || record.len() > MAX_UPLOAD_BYTES {
        return refuse(
            RejectReason::MalformedRecord,
            format!(
                "the record is {} bytes; an approval record is 1 to {MAX_UPLOAD_BYTES} bytes",
                record.len()
            ),
        );
    }
    if signature.is_empty() || signature.len() > MAX_UPLOAD_BYTES {
        return refuse(
            RejectReason::SignatureMalformed,
            format!(
                "the signature is {} bytes; an armored SSH signature is 1 to {MAX_UPLOAD_BYTES} bytes",
                signature.len()
            ),
        );
    }
    let dir = approvals::approvals_dir(plan);
    fsx::create_dir_all(&dir)?;
    let _lock = gov.state().lock()?;
    // Staged beside the plan under a name the gate's discovery never picks up, so the
    // gate sees exactly the uploaded bytes next to the records already there.
    let staged = dir.join(format!(".upload-{}.json", super::state::random_hex(8)?));
    let staged_sig = sign::sig_path(&staged);
    let cleanup = || {
        let _ = std::fs::remove_file(&staged);
        let _ = std::fs::remove_file(&staged_sig);
    };
    let result = (|| -> Result<Upload> {
        // What already counts, to refuse an upload that would add nothing.
        let before = gov.gate_at(plan, &[], true, now)?;
        fsx::write_new(&staged, record)?;
        fsx::write_new(&staged_sig, signature)?;
        let staged_abs = fsx::absolute(&staged)?;
        let report = gov.gate_at(plan, std::slice::from_ref(&staged_abs), true, now)?;
        if let Some(r) = report
            .approvals
            .rejected
            .iter()
            .find(|r| r.path == staged_abs)
        {
            return refuse(r.reason, r.detail.clone());
        }
        let Some(valid) = report
            .approvals
            .valid
            .iter()
            .find(|v| v.record_path == staged_abs)
            .cloned()
        else {
            return Err(Error::runner(
                "the gate neither counted nor rejected the uploaded record",
            ));
        };
        if let Some(v) = before
            .approvals
            .valid
            .iter()
            .find(|v| v.approver == valid.approver)
        {
            return refuse(
                RejectReason::DuplicateApprover,
                format!(
                    "`{}` already approved this plan ({}, expires {}): an approver counts once",
                    v.approver,
                    v.record_path.display(),
                    v.expires_at
                ),
            );
        }
        if let Some(v) = before
            .approvals
            .valid
            .iter()
            .find(|v| v.key_fingerprint == valid.key_fingerprint)
        {
            return refuse(
                RejectReason::DuplicateKey,
                format!(
                    "key {} already signed {} (one key, one approver)",
                    v.key_fingerprint,
                    v.record_path.display()
                ),
            );
        }
        if let Err(e) = approvals::validate_principal(&valid.approver) {
            return refuse(RejectReason::MalformedRecord, e.to_string());
        }
        let digest = blake3_hex(record);
        let name = format!(
            "{}.{}.{}.json",
            plan.plan.plan_id,
            valid.approver,
            super::short_hex(&digest)
        );
        let dest = dir.join(&name);
        let dest_sig = sign::sig_path(&dest);
        // The signature first: a record is only counted once it is in place (the commit).
        fsx::rename_into_place(&staged_sig, &dest_sig)?;
        fsx::rename_into_place(&staged, &dest)?;
        fsx::sync_dir(&dir)?;
        let inputs = super::review::record_inputs(gov.state(), plan)?;
        let head = gov.audit().append(
            AuditKind::ApprovalRecorded,
            json!({
                "plan_id": plan.plan.plan_id,
                "plan_digest": plan.digest,
                "approver": valid.approver,
                "scope": approvals::RUN_SCOPE,
                "expires_at": valid.expires_at,
                "uses": valid.uses,
                "nonce": valid.nonce,
                "record": dest.display().to_string(),
                "record_blake3": digest,
                "signed": true,
                "key_fingerprint": valid.key_fingerprint,
                "plan_inputs_blake3": inputs,
                "via": "serve-upload",
            }),
        );
        let head = match head {
            Ok(h) => h,
            Err(e) => {
                // Never a stored approval without its audit entry.
                let _ = std::fs::remove_file(&dest);
                let _ = std::fs::remove_file(&dest_sig);
                return Err(e);
            }
        };
        let after = gov.gate_at(plan, &[], true, now)?;
        Ok(Upload::Accepted(Box::new(Accepted {
            record: dest,
            signature: dest_sig,
            approver: valid.approver,
            key_fingerprint: valid.key_fingerprint,
            expires_at: valid.expires_at,
            uses: valid.uses,
            audit_head: head,
            decision: after.decision,
        })))
    })();
    cleanup();
    result
}
