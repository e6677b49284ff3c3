//! `nexusmon approve`: write an approval record for a plan, sign it when a key is given,
//! and, when a state directory exists, check the key against the trust file and record
//! the approval in the audit log.
//!
//! The state directory is optional here: an operator may approve on a machine without
//! one (a warning says the approval is not recorded).

use std::path::{Path, PathBuf};

use serde_json::json;

use super::audit::AuditKind;
use super::state::{self, STATE_DIR_NAME};
use super::trust::{self, APPROVER_ROLE, TrustStore};
use super::{Governance, approvals, sign};
use crate::model::approval::ApprovalRecord;
use crate::model::index::AuditHead;
use crate::util::digest::blake3_hex;
use crate::{Error, Result};

/// What `approve` was asked to do.
#[derive(Debug, Clone)]
pub struct ApproveRequest<'a> {
    /// The plan to approve.
    pub plan: &'a Path,
    /// The approver principal.
    pub approver: &'a str,
    /// The scope (`run`).
    pub scope: &'a str,
    /// How long the approval is valid (`24h`, `7d`).
    pub expires_in: &'a str,
    /// Roles the approver claims.
    pub roles: &'a [String],
    /// Where to write the record (default: `approvals/` beside the plan).
    pub out: Option<&'a Path>,
    /// The private key to sign with.
    pub sign_with: Option<&'a Path>,
    /// Replace an existing record and signature.
    pub overwrite: bool,
    /// `--state-dir`, if given.
    pub state_dir: Option<&'a Path>,
    /// The project root.
    pub root: &'a Path,
    /// `--uses N`: runs the approval may be used for.
    pub uses: Option<u32>,
}

/// What `approve` did.
#[derive(Debug, Clone)]
pub struct Approved {
    /// The record written.
    pub record: ApprovalRecord,
    /// Where.
    pub out: PathBuf,
    /// Where its signature is (written only when `signed_by` is set).
    pub sig_out: PathBuf,
    /// The signing key's fingerprint, when signed.
    pub signed_by: Option<String>,
    /// The audit head after the `approval-recorded` entry, when recorded.
    pub audit_head: Option<AuditHead>,
    /// Why the approval might not count, or why it was not recorded.
    pub warnings: Vec<String>,
}

/// Write (and sign) the approval record `r` asks for; record it when there is a state
/// directory. An encrypted key is an error after the record is written (it is to be
/// signed with `ssh-keygen`).
pub fn approve(r: &ApproveRequest<'_>) -> Result<Approved> {
    approvals::validate_principal(r.approver)?;
    if !approvals::KNOWN_SCOPES.contains(&r.scope) {
        return Err(
            Error::usage(format!("unknown scope `{}`", r.scope)).with_hint(format!(
                "an approval is for one of: {} (the gate consults no other scope)",
                approvals::KNOWN_SCOPES.join(", ")
            )),
        );
    }
    let validity = approvals::parse_validity(r.expires_in)?;
    if let Some(role) = r.roles.iter().find(|x| !trust::valid_role(x)) {
        return Err(Error::usage(format!("invalid role `{role}`"))
            .with_hint("roles are lowercase letters, digits and `-`, as in the trust file"));
    }
    let plan = crate::load::load_plan(r.plan)?;
    // When the state directory exists, the approval is recorded and the key checked
    // against the trust file.
    let gov = match Governance::discover(r.state_dir, r.root) {
        Ok(g) => Some(g),
        // Asked for, or there but broken: that is an error, not "no state".
        Err(e) if r.state_dir.is_some() || state::find(r.root).is_some() => return Err(e),
        Err(_) => None,
    };
    let out = r.out.map_or_else(
        || approvals::default_record_path(&plan, r.approver),
        Path::to_path_buf,
    );
    let sig_out = sign::sig_path(&out);
    // A key that cannot be read stops here, before anything is written; an encrypted one
    // still gets its record, to be signed with ssh-keygen.
    let key = match r.sign_with {
        Some(k) => Some((k, sign::load_private_key(k)?)),
        None => None,
    };
    let record = approvals::new_record(
        &plan,
        &approvals::NewApproval {
            approver: r.approver,
            scope: r.scope,
            validity,
            roles: r.roles.to_vec(),
            root: r.root,
            now: jiff::Timestamp::now(),
            uses: r.uses,
        },
    )?;
    let bytes = approvals::record_bytes(&record)?;
    approvals::write_file(&out, &bytes, r.overwrite)?;
    let signed_by = sign_record(key, &bytes, &out, &sig_out, r.overwrite)?;
    let mut done = Approved {
        record,
        out,
        sig_out,
        signed_by,
        audit_head: None,
        warnings: Vec::new(),
    };
    match &gov {
        Some(gov) => {
            let inputs = super::review::record_inputs(gov.state(), &plan)?;
            record_approval(gov, &mut done, &bytes, &inputs)?;
        }
        None => done.warnings.push(format!(
            "no {STATE_DIR_NAME}/ found: the approval is not recorded in an audit log (run `nexusmon init`)"
        )),
    }
    Ok(done)
}

/// Sign the written record with `key` (writing `<record>.sig`); without a key, remove a
/// stale signature an `overwrite` would leave beside new bytes. Returns the key's
/// fingerprint.
fn sign_record(
    key: Option<(&Path, sign::SigningKey)>,
    bytes: &[u8],
    out: &Path,
    sig_out: &Path,
    overwrite: bool,
) -> Result<Option<String>> {
    match key {
        None => {
            if overwrite && sig_out.exists() {
                crate::util::fsx::remove_file(sig_out)?;
            }
            Ok(None)
        }
        Some((key_path, sign::SigningKey::Encrypted)) => {
            let e = sign::encrypted_key_error(key_path, out);
            Err(Error::input(
                key_path,
                format!(
                    "{}; the record {} was written but is not signed",
                    e.message(),
                    out.display()
                ),
            )
            .with_hint(e.hint().unwrap_or_default().to_string()))
        }
        Some((key_path, sign::SigningKey::Ready(key))) => {
            let pem = sign::sign(&key, bytes, key_path)?;
            approvals::write_file(sig_out, pem.as_bytes(), overwrite)?;
            Ok(Some(sign::fingerprint(key.public_key())))
        }
    }
}

/// Check the approver and key against the trust file (warnings) and append the
/// `approval-recorded` entry.
fn record_approval(
    gov: &Governance,
    done: &mut Approved,
    bytes: &[u8],
    inputs_blake3: &str,
) -> Result<()> {
    match gov.trust() {
        Ok(trust) => done.warnings.extend(trust_warnings(
            &trust,
            &done.record.approver,
            done.signed_by.as_deref(),
        )),
        Err(e) => done
            .warnings
            .push(format!("the trust file cannot be read: {e}")),
    }
    let record = &done.record;
    done.audit_head = Some(gov.audit().append(
        AuditKind::ApprovalRecorded,
        json!({
            "plan_id": record.plan_id,
            "plan_digest": record.plan_digest,
            "approver": record.approver,
            "scope": record.scope,
            "expires_at": record.expires_at,
            "uses": record.uses,
            "nonce": record.nonce,
            "record": done.out.display().to_string(),
            "record_blake3": blake3_hex(bytes),
            "signed": done.signed_by.is_some(),
            "key_fingerprint": done.signed_by,
            "plan_inputs_blake3": inputs_blake3,
        }),
    )?);
    Ok(())
}

/// Why an approval by `approver` (signed with the key `fp`, if any) would not count.
pub fn trust_warnings(trust: &TrustStore, approver: &str, fp: Option<&str>) -> Vec<String> {
    let lines = trust.entries_for_principal(approver);
    let path = trust.path.display();
    if lines.is_empty() {
        return vec![format!(
            "`{approver}` is not a principal in {path}; verification will reject this approval"
        )];
    }
    let Some(fp) = fp else { return Vec::new() };
    let with_key: Vec<_> = lines.iter().filter(|e| e.fingerprint == fp).collect();
    if with_key.is_empty() {
        return vec![format!(
            "key {fp} is not listed for `{approver}` in {path}; verification will reject this approval"
        )];
    }
    if !with_key.iter().any(|e| e.roles.contains(APPROVER_ROLE)) {
        return vec![format!(
            "the line for key {fp} in {path} does not grant `roles={APPROVER_ROLE}`; verification will reject this approval"
        )];
    }
    Vec::new()
}
