//! SSHSIG signatures over operator records (approvals, omen clearances), made with the
//! `ssh-key` crate or `ssh-keygen -Y sign -n nexusmon-approval-v1`, and checked against the
//! trust file. Signatures are always over the record's exact bytes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ssh_key::private::KeypairData;
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use super::trust::{APPROVER_ROLE, EntryRefusal, TrustEntry, TrustStore};
use crate::model::approval::SIGNATURE_NAMESPACE;
use crate::util::fsx;
use crate::{Error, Result};

/// `<record>.sig`: where a record's signature lives.
pub fn sig_path(record: &Path) -> PathBuf {
    let mut s: OsString = record.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// A private key file, read.
#[derive(Debug)]
pub enum SigningKey {
    /// Usable.
    Ready(Box<PrivateKey>),
    /// Passphrase-protected: nexusmon never asks for passphrases.
    Encrypted,
}

/// Read an OpenSSH private key. A missing or malformed file is an input error; an
/// encrypted key is [`SigningKey::Encrypted`] (see [`encrypted_key_error`]).
pub fn load_private_key(path: &Path) -> Result<SigningKey> {
    let text = fsx::read_input_string(path)?;
    let key = PrivateKey::from_openssh(text.trim()).map_err(|e| {
        Error::input(path, "is not an OpenSSH private key")
            .with_source(e)
            .with_hint("pass the private key file (e.g. ~/.ssh/id_ed25519), not the .pub file")
    })?;
    Ok(if key.is_encrypted() {
        SigningKey::Encrypted
    } else {
        SigningKey::Ready(Box::new(key))
    })
}

/// The error for an encrypted key, with the `ssh-keygen` command that signs `record`.
pub fn encrypted_key_error(key: &Path, record: &Path) -> Error {
    Error::input(key, "the private key is encrypted (passphrase-protected)").with_hint(format!(
        "nexusmon does not read passphrases; sign with ssh-keygen (it can use ssh-agent): ssh-keygen -Y sign -f {} -n {SIGNATURE_NAMESPACE} {}",
        key.display(),
        record.display()
    ))
}

/// Sign `bytes` in the nexusmon namespace; returns the armored signature (as
/// `ssh-keygen -Y sign` writes it).
pub fn sign(key: &PrivateKey, bytes: &[u8], key_path: &Path) -> Result<String> {
    let sig = match key.key_data() {
        KeypairData::Rsa(kp) => sign_rsa(kp, key.public_key(), bytes),
        _ => key.sign(SIGNATURE_NAMESPACE, HashAlg::Sha512, bytes),
    }
    .map_err(|e| {
        Error::input(key_path, "cannot sign with this key")
            .with_source(e)
            .with_hint("Ed25519, RSA and ECDSA P-256 keys are supported")
    })?;
    let mut pem = sig
        .to_pem(LineEnding::LF)
        .map_err(|e| Error::runner("cannot encode the signature").with_source(e))?;
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    Ok(pem)
}

/// RSA signing done here rather than by `ssh-key` 0.6.7, whose conversion to an `rsa` key
/// passes the first prime twice (RustCrypto/SSH#387), so every RSA signature it makes
/// fails. Same construction: PKCS#1 v1.5 with SHA-512 (`rsa-sha2-512`, what
/// `ssh-keygen -Y sign` uses) over the SSHSIG signed-data blob.
fn sign_rsa(
    kp: &ssh_key::private::RsaKeypair,
    public: &PublicKey,
    bytes: &[u8],
) -> ssh_key::Result<SshSig> {
    use rsa::signature::{SignatureEncoding, Signer};
    let int = |m: &ssh_key::Mpint| {
        m.as_positive_bytes()
            .map(rsa::BigUint::from_bytes_be)
            .ok_or(ssh_key::Error::Crypto)
    };
    let key = rsa::RsaPrivateKey::from_components(
        int(&kp.public.n)?,
        int(&kp.public.e)?,
        int(&kp.private.d)?,
        vec![int(&kp.private.p)?, int(&kp.private.q)?],
    )
    .map_err(|_| ssh_key::Error::Crypto)?;
    let data = SshSig::signed_data(SIGNATURE_NAMESPACE, HashAlg::Sha512, bytes)?;
    let signature = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(key)
        .try_sign(&data)
        .map_err(|_| ssh_key::Error::Crypto)?;
    let signature = ssh_key::Signature::new(
        ssh_key::Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        signature.to_vec(),
    )?;
    SshSig::new(
        public.key_data().clone(),
        SIGNATURE_NAMESPACE,
        HashAlg::Sha512,
        signature,
    )
}

/// `SHA256:…` fingerprint of a public key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Why a signature does not make a record count (stable kebab-case names).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// The record file cannot be read.
    RecordUnreadable,
    /// No `<record>.sig` beside the record.
    SignatureMissing,
    /// The `.sig` file is not an armored SSH signature.
    SignatureMalformed,
    /// The signature was made for another namespace (e.g. `-n git`).
    WrongNamespace,
    /// The signing key is not in the trust file.
    UnknownKey,
    /// The signature does not verify over the record's bytes (the record was changed).
    SignatureInvalid,
    /// The record is not a valid record of its kind.
    MalformedRecord,
    /// The key's trust-file line does not name the record's approver.
    KeyNotTrustedForPrincipal,
    /// The key's `namespaces=` option excludes nexusmon.
    NamespaceNotAllowed,
    /// Before the key's `valid-after`.
    KeyNotYetValid,
    /// At or after the key's `valid-before`.
    KeyExpired,
    /// The key's line does not grant the `approver` role.
    MissingRole,
    /// The record claims a role the trust file does not grant.
    RoleNotGranted,
    /// The record approves another plan.
    PlanIdMismatch,
    /// The plan, one of its probes or one of its profiles changed since the approval.
    PlanDigestMismatch,
    /// The record's scope is not the one asked for.
    ScopeMismatch,
    /// The decision is not `approve`.
    DecisionNotApprove,
    /// `expires_at` has passed.
    Expired,
    /// `issued_at` is in the future.
    NotYetValid,
    /// Another valid record has the same approver.
    DuplicateApprover,
    /// Another valid record was signed with the same key.
    DuplicateKey,
    /// A clearance for another state of the omen (its count changed since).
    StaleClearance,
}

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
    let bytes = std::fs::read(record).map_err(|e| {
        (
            RejectReason::RecordUnreadable,
            format!("cannot read the record: {e}"),
        )
    })?;
    let sig_path = sig_path(record);
    let sig_text = match std::fs::read_to_string(&sig_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
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
    let sig = SshSig::from_pem(sig_text.trim()).map_err(|e| {
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
