//! SSHSIG signatures over operator records (approvals, omen clearances) checked against
//! the trust file: why a record does not count ([`RejectReason`]), verifying a record's
//! signature over its exact bytes and authorizing its key for a principal. Making
//! signatures is [`crate::sign`] (re-exported here).

use std::path::{Path, PathBuf};

use ssh_key::PublicKey;

use super::trust::{APPROVER_ROLE, EntryRefusal, TrustEntry, TrustStore};
use crate::model::approval::SIGNATURE_NAMESPACE;
pub use crate::model::gate::RejectReason;
pub use crate::sign::{
    SigningKey, encrypted_key_error, fingerprint, load_private_key, sig_path, sign,
};

impl RejectReason {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::RecordUnreadable => "record-unreadable",
            RejectReason::SignatureMissing => "signature-missing",
            RejectReason::SignatureMalformed => "signature-malformed",
            RejectReason::WrongNamespace => "wrong-namespace",
            RejectReason::UnknownKey => "unknown-key",
            RejectReason::SignatureInvalid => "signature-invalid",
            RejectReason::MalformedRecord => "malformed-record",
            RejectReason::KeyNotTrustedForPrincipal => "key-not-trusted-for-principal",
            RejectReason::NamespaceNotAllowed => "namespace-not-allowed",
            RejectReason::KeyNotYetValid => "key-not-yet-valid",
            RejectReason::KeyExpired => "key-expired",
            RejectReason::MissingRole => "missing-role",
            RejectReason::RoleNotGranted => "role-not-granted",
            RejectReason::PlanIdMismatch => "plan-id-mismatch",
            RejectReason::PlanDigestMismatch => "plan-digest-mismatch",
            RejectReason::ScopeMismatch => "scope-mismatch",
            RejectReason::DecisionNotApprove => "decision-not-approve",
            RejectReason::Expired => "expired",
            RejectReason::NotYetValid => "not-yet-valid",
            RejectReason::DuplicateApprover => "duplicate-approver",
            RejectReason::DuplicateKey => "duplicate-key",
            RejectReason::StaleClearance => "stale-clearance",
            RejectReason::UsesExhausted => "uses-exhausted",
            RejectReason::WeakKey => "weak-key",
            RejectReason::TrustFileBroken => "trust-file-broken",
        }
    }
}

/// A refusal: the reason and a sentence saying what exactly.
pub type Refusal = (RejectReason, String);

/// A record whose signature verified against the trust file.
#[derive(Debug, Clone)]
pub struct SignedRecord<'t> {
    /// The record's exact bytes.
    pub bytes: Vec<u8>,
    /// The signature's path.
    pub sig_path: PathBuf,
    /// The trust-file lines listing the signing key (one or more).
    pub entries: Vec<&'t TrustEntry>,
    /// `SHA256:…` of the signing key.
    pub fingerprint: String,
}

/// Read a record and its `.sig`, check the namespace, find the key in the trust file and
/// verify the signature over the exact bytes. Nothing about the record is parsed before the
/// signature verifies.
pub fn verify_signature<'t>(
    record: &Path,
    trust: &'t TrustStore,
) -> std::result::Result<SignedRecord<'t>, Refusal> {
    let max = crate::util::limits::MAX_RECORD_BYTES;
    let bytes = match crate::util::fsx::read_bounded(record, max) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err((
                RejectReason::RecordUnreadable,
                format!(
                    "input limit: the record is larger than {max} bytes, the limit for an approval record; refused before it is read"
                ),
            ));
        }
        Err(e) => {
            let why = e
                .causes()
                .first()
                .cloned()
                .unwrap_or_else(|| e.message().to_string());
            return Err((
                RejectReason::RecordUnreadable,
                format!("cannot read the record: {why}"),
            ));
        }
    };
    let sig_path = sig_path(record);
    // A signature file is a few hundred bytes; a larger one is not a signature.
    let sig_bytes = match crate::util::fsx::read_bounded(&sig_path, 64 * 1024) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => {
            return Err((
                RejectReason::SignatureMalformed,
                format!(
                    "{} is not an armored SSH signature: larger than 64 KiB",
                    sig_path.display()
                ),
            ));
        }
        Err(e) => Err(e
            .causes()
            .first()
            .cloned()
            .unwrap_or_else(|| e.message().to_string())),
    };
    let not_found = !sig_path.exists() && std::fs::symlink_metadata(&sig_path).is_err();
    let sig_bytes = match sig_bytes {
        Ok(t) => t,
        Err(_) if not_found => {
            return Err((
                RejectReason::SignatureMissing,
                format!(
                    "no signature {}; sign it: ssh-keygen -Y sign -f KEY -n {SIGNATURE_NAMESPACE} {}",
                    sig_path.display(),
                    record.display()
                ),
            ));
        }
        Err(e) => {
            return Err((
                RejectReason::SignatureMissing,
                format!("cannot read {}: {e}", sig_path.display()),
            ));
        }
    };
    let sig = crate::sign::dearmor(&sig_bytes).map_err(|e| {
        (
            RejectReason::SignatureMalformed,
            format!(
                "{} is not an armored SSH signature: {e}",
                sig_path.display()
            ),
        )
    })?;
    if sig.namespace() != SIGNATURE_NAMESPACE {
        return Err((
            RejectReason::WrongNamespace,
            format!(
                "signed for namespace `{}`, not `{SIGNATURE_NAMESPACE}`",
                sig.namespace()
            ),
        ));
    }
    let signer = PublicKey::from(sig.public_key().clone());
    let fp = fingerprint(&signer);
    crate::sign::check_key_strength(signer.key_data())
        .map_err(|e| (RejectReason::WeakKey, format!("key {fp} is {e}")))?;
    let entries = trust.entries_for(sig.public_key());
    if entries.is_empty() {
        return Err((
            RejectReason::UnknownKey,
            format!("key {fp} is not in {}", trust.path.display()),
        ));
    }
    signer
        .verify(SIGNATURE_NAMESPACE, &bytes, &sig)
        .map_err(|e| {
            (
                RejectReason::SignatureInvalid,
                format!("the signature by {fp} does not verify over the record's bytes (the record was changed after signing): {e}"),
            )
        })?;
    Ok(SignedRecord {
        bytes,
        sig_path,
        entries,
        fingerprint: fp,
    })
}

impl SignedRecord<'_> {
    /// Check that one of the key's lines lets it act as `principal` now, with the
    /// `approver` role and every role in `claimed`. Returns the roles granted.
    pub fn authorize(
        &self,
        principal: &str,
        claimed: &[String],
        now: jiff::Timestamp,
    ) -> std::result::Result<Vec<String>, Refusal> {
        let mut first: Option<Refusal> = None;
        for e in &self.entries {
            let refusal = match e.allows(principal, SIGNATURE_NAMESPACE, now) {
                Err(EntryRefusal::Principal) => Some((
                    RejectReason::KeyNotTrustedForPrincipal,
                    format!(
                        "key {} is trusted for {} (line {}), not for `{principal}`",
                        self.fingerprint,
                        e.principals.join(","),
                        e.line
                    ),
                )),
                Err(EntryRefusal::Namespace) => Some((
                    RejectReason::NamespaceNotAllowed,
                    format!(
                        "line {} limits key {} to namespaces {}",
                        e.line,
                        self.fingerprint,
                        e.namespaces.as_deref().unwrap_or_default().join(",")
                    ),
                )),
                Err(EntryRefusal::NotYetValid) => Some((
                    RejectReason::KeyNotYetValid,
                    format!(
                        "line {}: key {} is not valid yet (valid-after)",
                        e.line, self.fingerprint
                    ),
                )),
                Err(EntryRefusal::Expired) => Some((
                    RejectReason::KeyExpired,
                    format!(
                        "line {}: key {} has expired (valid-before)",
                        e.line, self.fingerprint
                    ),
                )),
                Ok(()) if !e.roles.contains(APPROVER_ROLE) => Some((
                    RejectReason::MissingRole,
                    format!(
                        "line {} does not grant key {} the `{APPROVER_ROLE}` role (add `roles={APPROVER_ROLE}` to its comment)",
                        e.line, self.fingerprint
                    ),
                )),
                Ok(()) => claimed
                    .iter()
                    .find(|r| !e.roles.contains(r.as_str()))
                    .map(|r| {
                        (
                            RejectReason::RoleNotGranted,
                            format!(
                                "the record claims role `{r}`, which line {} does not grant",
                                e.line
                            ),
                        )
                    }),
            };
            match refusal {
                None => return Ok(e.roles.iter().cloned().collect()),
                Some(r) => {
                    // Report the most specific refusal: a line that names the principal
                    // beats one that does not.
                    let better = match &first {
                        None => true,
                        Some((f, _)) => {
                            *f == RejectReason::KeyNotTrustedForPrincipal
                                && r.0 != RejectReason::KeyNotTrustedForPrincipal
                        }
                    };
                    if better {
                        first = Some(r);
                    }
                }
            }
        }
        Err(first.unwrap_or((RejectReason::UnknownKey, "no trust-file line".into())))
    }
}
