//! `nexusmon omens list` and `omens clear`: the omens by level, and clearing one with a
//! signed clearance record (written and signed here with `--sign-with`, prepared for
//! `ssh-keygen` with `--prepare`, or given with `--record`), verified against the trust
//! file, applied to `omens.json` under the state lock and recorded in the audit log.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::audit::AuditKind;
use super::sign::{self, RejectReason};
use super::state::{self, CLEARANCES_DIR, StateDir};
use super::{Governance, approvals, omens, short_hex};
use crate::error::ErrorKind;
use crate::model::index::AuditHead;
use crate::model::omens::{Omen, OmensFile};
use crate::{Error, Result};

/// The omens of the state directory, highest level first, then by plan, scenario and
/// fingerprint.
pub fn sorted_omens(state_dir: Option<&Path>, root: &Path) -> Result<Vec<(String, Omen)>> {
    let gov = Governance::discover(state_dir, root)?;
    let file = gov.state().read_omens()?;
    let mut rows: Vec<(String, Omen)> = file.omens.into_iter().collect();
    rows.sort_by(|(fa, a), (fb, b)| {
        omens::level(b)
            .cmp(&omens::level(a))
            .then_with(|| (&a.plan_id, &a.scenario_id, fa).cmp(&(&b.plan_id, &b.scenario_id, fb)))
    });
    Ok(rows)
}

/// What `omens clear` was asked to do.
#[derive(Debug, Clone)]
pub struct ClearRequest<'a> {
    /// The omen's fingerprint (or a unique prefix).
    pub fingerprint: &'a str,
    /// The approver principal.
    pub approver: &'a str,
    /// Sign a new record with this key.
    pub sign_with: Option<&'a Path>,
    /// A record already written and signed.
    pub record: Option<&'a Path>,
    /// Write a record to sign with `ssh-keygen`, and stop.
    pub prepare: bool,
    /// How long the clearance is valid.
    pub expires_in: &'a str,
    /// `--state-dir`, if given.
    pub state_dir: Option<&'a Path>,
    /// The project root.
    pub root: &'a Path,
}

/// What `omens clear` did.
#[derive(Debug, Clone)]
pub enum Cleared {
    /// `--prepare`: a record was written to be signed; nothing is cleared yet.
    Prepared {
        /// The record.
        path: PathBuf,
        /// The omen's full fingerprint.
        fingerprint: String,
    },
    /// The omen was cleared.
    Cleared(Box<Clearance>),
}

/// A clearance applied.
#[derive(Debug, Clone)]
pub struct Clearance {
    /// The omen's full fingerprint.
    pub fingerprint: String,
    /// The omen after clearing.
    pub omen: Omen,
    /// The approver of the record.
    pub approver: String,
    /// The signing key's fingerprint.
    pub key_fingerprint: String,
    /// The audit head after the `omen-cleared` entry.
    pub audit_head: AuditHead,
}

/// Clear an omen as `r` asks.
pub fn clear(r: &ClearRequest<'_>) -> Result<Cleared> {
    approvals::validate_principal(r.approver)?;
    if r.sign_with.is_none() && r.record.is_none() && !r.prepare {
        return Err(Error::usage("say how the clearance is signed").with_hint(
            "pass --sign-with KEY, or --prepare to write a record to sign with ssh-keygen and then --record FILE",
        ));
    }
    let validity = approvals::parse_validity(r.expires_in)?;
    let gov = Governance::discover(r.state_dir, r.root)?;
    let state_dir = gov.state().clone();
    let _lock = state_dir.lock()?;
    let mut file = state_dir.read_omens()?;
    let omens_path = state_dir.file(state::OMENS_FILE);
    let fp = omens::resolve(&file, r.fingerprint, &omens_path)?;
    if omens::effective(&file.omens[&fp]) == 0 {
        return Err(
            Error::usage(format!("omen {} has nothing to clear", short_hex(&fp)))
                .with_hint("it has not failed since it was last cleared"),
        );
    }
    let record_path = if let Some(p) = r.record {
        p.to_path_buf()
    } else {
        let written = write_clearance(&state_dir, &file, &fp, r, validity)?;
        let Some(path) = written else {
            let path = clearance_path(&state_dir, &fp, r.approver, file.omens[&fp].count);
            return Ok(Cleared::Prepared {
                path,
                fingerprint: fp,
            });
        };
        path
    };
    let trust = gov.trust()?;
    let valid = omens::verify_clearance(
        &file,
        &fp,
        r.approver,
        &record_path,
        &trust,
        jiff::Timestamp::now(),
    )
    .map_err(|(reason, detail)| {
        Error::new(
            ErrorKind::Refused,
            format!(
                "the clearance does not count: {}: {detail}",
                reason.as_str()
            ),
        )
        .with_path(&record_path)
        .with_hint(refusal_hint(reason))
    })?;
    let now = crate::util::time::now_rfc3339();
    omens::apply_clearance(&mut file, &valid, &now)?;
    state_dir.write_omens(&file)?;
    let omen = file.omens[&fp].clone();
    let head = gov.audit().append(
        AuditKind::OmenCleared,
        json!({
            "fingerprint": fp,
            "plan_id": omen.plan_id,
            "scenario_id": omen.scenario_id,
            "count": omen.count,
            "approver": valid.record.approver,
            "key_fingerprint": valid.key_fingerprint,
            "record_blake3": valid.record_blake3,
        }),
    )?;
    Ok(Cleared::Cleared(Box::new(Clearance {
        fingerprint: fp,
        omen,
        approver: valid.record.approver.clone(),
        key_fingerprint: valid.key_fingerprint.clone(),
        audit_head: head,
    })))
}

/// Write a new clearance record for the omen `fp` in `clearances/`: signed with
/// `--sign-with` (returns its path), or, with `--prepare`, unsigned (returns `None`; a
/// stale signature from an earlier attempt is removed so it never stays beside the new
/// bytes).
fn write_clearance(
    state_dir: &StateDir,
    file: &OmensFile,
    fp: &str,
    r: &ClearRequest<'_>,
    validity: jiff::SignedDuration,
) -> Result<Option<PathBuf>> {
    let path = clearance_path(state_dir, fp, r.approver, file.omens[fp].count);
    let key = match r.sign_with {
        Some(k) => match sign::load_private_key(k)? {
            sign::SigningKey::Ready(key) => Some((k, key)),
            sign::SigningKey::Encrypted => {
                return Err(sign::encrypted_key_error(k, &path).with_hint(
                    "nexusmon does not read passphrases: use --prepare, sign the record with `ssh-keygen -Y sign -n nexusmon-approval-v1` (it can use ssh-agent), then pass it with --record",
                ));
            }
        },
        None => None,
    };
    let rec = omens::new_clearance(file, fp, r.approver, jiff::Timestamp::now(), validity)?;
    let bytes = approvals::record_bytes(&rec)?;
    approvals::write_file(&path, &bytes, true)?;
    let sig = sign::sig_path(&path);
    if let Some((key_path, key)) = key {
        let pem = sign::sign(&key, &bytes, key_path)?;
        approvals::write_file(&sig, pem.as_bytes(), true)?;
        return Ok(Some(path));
    }
    if sig.exists() {
        crate::util::fsx::remove_file(&sig)?;
    }
    Ok(None)
}

/// `clearances/<fp16>.<approver>.<count>.json`.
fn clearance_path(state: &StateDir, fp: &str, approver: &str, count: u64) -> PathBuf {
    state.file(CLEARANCES_DIR).join(format!(
        "{}.{approver}.{count}.json",
        fp.get(..16).unwrap_or(fp)
    ))
}

/// What to do about a clearance that does not count.
fn refusal_hint(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::UnknownKey | RejectReason::KeyNotTrustedForPrincipal => {
            "add the approver's public key to .nexusmon/trusted_signers under their principal"
        }
        RejectReason::MissingRole | RejectReason::RoleNotGranted => {
            "grant the role in the key's trust-file line comment: roles=approver"
        }
        RejectReason::WrongNamespace => "sign with -n nexusmon-approval-v1",
        RejectReason::SignatureMissing => {
            "sign the record: ssh-keygen -Y sign -f KEY -n nexusmon-approval-v1 FILE"
        }
        RejectReason::StaleClearance | RejectReason::Expired => {
            "write a new clearance with --prepare or --sign-with"
        }
        _ => "fix the record or write a new one",
    }
}
