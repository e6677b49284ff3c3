//! Bundle signatures: what `run --sign-with KEY` writes beside the index at seal time, and
//! the check of those files against the index without any trust file.
//!
//! The key is an OpenSSH private key file, or, when that file is passphrase-protected, the
//! same key held by ssh-agent ([`crate::sign::agent`]).
//!
//! - `artifact_index.sig`: an SSHSIG over the exact bytes of `artifact_index.json` in the
//!   namespace `nexusmon-bundle-v1` (SHA-512), so stock OpenSSH verifies it:
//!   `ssh-keygen -Y verify -f allowed_signers -I runner -n nexusmon-bundle-v1
//!   -s artifact_index.sig < artifact_index.json`.
//! - `bundle.intoto.json`: a DSSE envelope (payload type `application/vnd.in-toto+json`)
//!   of an in-toto Statement v1 whose one subject is `artifact_index.json` (blake3 and
//!   sha256) and whose predicate ([`BundlePredicate`]) names the run, its status, the plan
//!   digest, the runner's version, the host facts and the anchored audit head; signed by
//!   the same key in the scheme of its type ([`crate::sign::dsse`]), keyid the key's
//!   `SHA256:` fingerprint.
//!
//! Neither file is indexed (they sign the index, which lists every other file); the check
//! treats them as the index's companions: regular, read-only, one link, both or neither.
//! [`check_signature`] verifies them against the index and each other with the key the
//! SSHSIG carries; whether that key is trusted is governance's question (the trust file,
//! `govern::attest`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64ct::{Base64, Encoding};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use crate::model::attest::{
    BUNDLE_NAMESPACE, BUNDLE_PREDICATE_TYPE, BundlePredicate, BundleStatement, DSSE_PAYLOAD_TYPE,
    Envelope, EnvelopeSignature, Runner, STATEMENT_TYPE, Subject,
};
use crate::model::host::HostFacts;
use crate::model::index::ArtifactIndex;
use crate::sign::agent::Agent;
use crate::sign::{self, dsse};
use crate::util::{digest, json};
use crate::{Error, Result};

/// The SSHSIG over the index.
pub const SIG_FILE: &str = "artifact_index.sig";
/// The DSSE envelope of the bundle's in-toto Statement.
pub const ENVELOPE_FILE: &str = "bundle.intoto.json";
/// Both, the index's unindexed companions.
pub const SIGNATURE_FILES: [&str; 2] = [SIG_FILE, ENVELOPE_FILE];

/// Where the signing key is: read from its file, or held by ssh-agent (a
/// passphrase-protected key file names the key the agent must hold).
#[derive(Debug, Clone)]
enum KeySource {
    File(Arc<PrivateKey>),
    Agent(Agent),
}

/// The key a seal signs with, and the facts its Statement records.
#[derive(Debug, Clone)]
pub struct SealSigner {
    key: KeySource,
    public: PublicKey,
    key_path: PathBuf,
    host: Option<HostFacts>,
}

impl SealSigner {
    /// Read and check a signing key: an OpenSSH private key of a supported type
    /// (Ed25519, ECDSA P-256, RSA). A passphrase-protected key signs through ssh-agent
    /// (`SSH_AUTH_SOCK`), which must hold it. A missing, unreadable or malformed file, a
    /// passphrase-protected key no agent holds, or another key type is an input error
    /// (exit 2), so a run refuses before anything executes.
    pub fn load(path: &Path) -> Result<Self> {
        let (key, public) = match sign::load_private_key(path)? {
            sign::SigningKey::Ready(k) => {
                let public = k.public_key().clone();
                (KeySource::File(Arc::new(*k)), public)
            }
            sign::SigningKey::Encrypted => {
                let public = sign::public_of_private(path)?;
                (KeySource::Agent(agent_for(path, &public)?), public)
            }
        };
        if dsse::scheme_of(public.key_data()).is_none() {
            return Err(Error::input(
                path,
                format!("{} keys cannot sign bundles", public.algorithm()),
            )
            .with_hint("use an Ed25519, ECDSA P-256 or RSA key"));
        }
        Ok(Self {
            key,
            public,
            key_path: path.to_path_buf(),
            host: None,
        })
    }

    /// Record `host` in the Statement's predicate.
    #[must_use]
    pub fn with_host(mut self, host: HostFacts) -> Self {
        self.host = Some(host);
        self
    }

    /// `SHA256:…` of the key.
    pub fn fingerprint(&self) -> String {
        sign::fingerprint(&self.public)
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The SSHSIG (armored) over `bytes` in the bundle namespace.
    fn sshsig(&self, bytes: &[u8]) -> Result<String> {
        match &self.key {
            KeySource::File(k) => sign::sign_in(k, BUNDLE_NAMESPACE, bytes, &self.key_path),
            KeySource::Agent(a) => {
                let cannot = |e: &dyn std::fmt::Display| {
                    Error::input(
                        &self.key_path,
                        format!("cannot sign through ssh-agent: {e}"),
                    )
                };
                let data = SshSig::signed_data(BUNDLE_NAMESPACE, HashAlg::Sha512, bytes)
                    .map_err(|e| cannot(&e))?;
                let sig = a.sign(&self.public, &data).map_err(|e| cannot(&e))?;
                let sshsig = SshSig::new(
                    self.public.key_data().clone(),
                    BUNDLE_NAMESPACE,
                    HashAlg::Sha512,
                    sig,
                )
                .map_err(|e| cannot(&e))?;
                let mut pem = sshsig.to_pem(LineEnding::LF).map_err(|e| cannot(&e))?;
                if !pem.ends_with('\n') {
                    pem.push('\n');
                }
                Ok(pem)
            }
        }
    }

    /// The DSSE signature over `pae`.
    fn dsse(&self, pae: &[u8]) -> std::result::Result<Vec<u8>, String> {
        match &self.key {
            KeySource::File(k) => dsse::sign_raw(k, pae),
            KeySource::Agent(a) => dsse::raw_from_ssh(&a.sign(&self.public, pae)?),
        }
    }

    /// The SSHSIG over `index_bytes` and the DSSE envelope of the bundle's Statement.
    pub(crate) fn sign(
        &self,
        index: &ArtifactIndex,
        index_bytes: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let sig = self.sshsig(index_bytes)?.into_bytes();
        let statement = statement(index, index_bytes, self.host.clone());
        let payload = json::to_sorted_pretty(&statement)?;
        let raw = self
            .dsse(&dsse::pae(DSSE_PAYLOAD_TYPE, &payload))
            .map_err(|e| Error::input(&self.key_path, format!("cannot sign: {e}")))?;
        let envelope = Envelope {
            payload: Base64::encode_string(&payload),
            payload_type: DSSE_PAYLOAD_TYPE.into(),
            signatures: vec![EnvelopeSignature {
                keyid: self.fingerprint(),
                sig: Base64::encode_string(&raw),
            }],
        };
        Ok((sig, json::to_sorted_pretty(&envelope)?))
    }
}

/// The agent that holds the passphrase-protected key at `path` (public half `public`).
fn agent_for(path: &Path, public: &PublicKey) -> Result<Agent> {
    let Some(agent) = Agent::from_env() else {
        return Err(Error::input(
            path,
            "the signing key is passphrase-protected and no ssh-agent is available (SSH_AUTH_SOCK is not set)",
        )
        .with_hint(format!(
            "nexusmon reads no passphrases: start ssh-agent and `ssh-add {}`, or sign with an unencrypted key kept for this purpose",
            path.display()
        )));
    };
    match agent.holds(public) {
        Ok(true) => Ok(agent),
        Ok(false) => Err(Error::input(
            path,
            format!(
                "the signing key is passphrase-protected and the ssh-agent at {} does not hold it",
                agent.socket().display()
            ),
        )
        .with_hint(format!("add it: ssh-add {}", path.display()))),
        Err(e) => Err(Error::input(
            path,
            format!("the signing key is passphrase-protected and {e}"),
        )
        .with_hint("check SSH_AUTH_SOCK names a running ssh-agent")),
    }
}

/// The Statement of the bundle whose index is `index` (bytes `index_bytes`).
pub fn statement(
    index: &ArtifactIndex,
    index_bytes: &[u8],
    host: Option<HostFacts>,
) -> BundleStatement {
    BundleStatement {
        statement_type: STATEMENT_TYPE.into(),
        subject: vec![Subject {
            name: super::INDEX_FILE.into(),
            digest: [
                ("blake3".to_string(), digest::blake3_hex(index_bytes)),
                ("sha256".to_string(), digest::sha256_hex(index_bytes)),
            ]
            .into_iter()
            .collect(),
        }],
        predicate_type: BUNDLE_PREDICATE_TYPE.into(),
        predicate: BundlePredicate {
            run_id: index.run_id.clone(),
            status: index.status,
            plan_digest: index.plan_digest.clone(),
            runner: Runner {
                name: "nexusmon".into(),
                version: index
                    .tool_version
                    .clone()
                    .unwrap_or_else(|| crate::VERSION.into()),
            },
            host,
            audit_head: index.audit_head.clone(),
        },
    }
}

/// What a bundle's signature files say about its index.
#[derive(Debug, Clone)]
pub enum SignatureCheck {
    /// Neither file is there.
    Absent,
    /// Both verify with the key the SSHSIG carries.
    Valid {
        /// That key.
        key: Box<PublicKey>,
        /// Its `SHA256:…` fingerprint.
        fingerprint: String,
    },
    /// Something does not verify.
    Invalid {
        /// The key the SSHSIG names, if it parsed.
        signer: Option<String>,
        /// The file at fault.
        path: &'static str,
        /// Why.
        problem: String,
    },
}

/// Check the signature files (`read` returns a member's bytes, `None` when it is absent)
/// against `index_bytes` and each other.
pub fn check_signature(
    read: &dyn Fn(&str) -> Option<std::io::Result<Vec<u8>>>,
    index_bytes: &[u8],
    index: Option<&ArtifactIndex>,
) -> SignatureCheck {
    let invalid = |signer: Option<String>, path, problem: String| SignatureCheck::Invalid {
        signer,
        path,
        problem,
    };
    let (sig, env) = match (read(SIG_FILE), read(ENVELOPE_FILE)) {
        (None, None) => return SignatureCheck::Absent,
        (None, Some(_)) => {
            return invalid(
                None,
                SIG_FILE,
                "bundle.intoto.json is there but artifact_index.sig is not: the signature was removed".into(),
            );
        }
        (Some(Err(e)), _) => return invalid(None, SIG_FILE, format!("cannot read: {e}")),
        (_, Some(Err(e))) => return invalid(None, ENVELOPE_FILE, format!("cannot read: {e}")),
        (Some(Ok(s)), env) => (s, env),
    };
    let key = match sign::verify_armored(&sig, BUNDLE_NAMESPACE, index_bytes) {
        Ok(k) => k,
        Err(why) => {
            let signer = sign::dearmor(&sig)
                .ok()
                .map(|s| sign::fingerprint(&PublicKey::from(s.public_key().clone())));
            let why = match why {
                sign::SigError::WeakKey(m) => format!("weak-key: {m}"),
                sign::SigError::Malformed(m) => format!("signature-malformed: {m}"),
                other => other.to_string(),
            };
            return invalid(signer, SIG_FILE, why);
        }
    };
    let fp = sign::fingerprint(&key);
    let Some(Ok(env)) = env else {
        return invalid(
            Some(fp),
            ENVELOPE_FILE,
            "artifact_index.sig is there but bundle.intoto.json is not: the envelope was removed"
                .into(),
        );
    };
    if let Err(why) = check_envelope(&env, &key, &fp, index_bytes, index) {
        return invalid(Some(fp), ENVELOPE_FILE, why);
    }
    SignatureCheck::Valid {
        key: Box::new(key),
        fingerprint: fp,
    }
}

fn check_envelope(
    bytes: &[u8],
    key: &PublicKey,
    fp: &str,
    index_bytes: &[u8],
    index: Option<&ArtifactIndex>,
) -> std::result::Result<(), String> {
    let env: Envelope =
        serde_json::from_slice(bytes).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    if env.payload_type != DSSE_PAYLOAD_TYPE {
        return Err(format!(
            "payloadType is `{}`, not `{DSSE_PAYLOAD_TYPE}`",
            env.payload_type
        ));
    }
    let payload = decode_b64(&env.payload).ok_or("the payload is not base64")?;
    let pae = dsse::pae(&env.payload_type, &payload);
    let mine: Vec<&EnvelopeSignature> = env.signatures.iter().filter(|s| s.keyid == fp).collect();
    if mine.is_empty() {
        return Err(format!(
            "no signature by {fp} (the key of artifact_index.sig)"
        ));
    }
    for s in mine {
        let raw = decode_b64(&s.sig).ok_or("a signature is not base64")?;
        dsse::verify_raw(key, &pae, &raw)?;
    }
    let st: BundleStatement = serde_json::from_slice(&payload)
        .map_err(|e| format!("the Statement does not parse: {e}"))?;
    if st.statement_type != STATEMENT_TYPE || st.predicate_type != BUNDLE_PREDICATE_TYPE {
        return Err("the Statement's _type or predicateType is not the bundle's".into());
    }
    let want = (
        digest::blake3_hex(index_bytes),
        digest::sha256_hex(index_bytes),
    );
    let subject_ok = st.subject.len() == 1
        && st.subject[0].name == super::INDEX_FILE
        && st.subject[0].digest.get("blake3") == Some(&want.0)
        && st.subject[0].digest.get("sha256") == Some(&want.1);
    if !subject_ok {
        return Err("the Statement's subject is not this artifact_index.json".into());
    }
    if let Some(i) = index
        && (st.predicate.run_id != i.run_id || st.predicate.status != i.status)
    {
        return Err("the Statement's run id or status is not the index's".into());
    }
    Ok(())
}

/// Standard or URL-safe base64, padded or not (DSSE verifiers must accept both).
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64ct::{Base64Unpadded, Base64Url, Base64UrlUnpadded};
    Base64::decode_vec(s)
        .or_else(|_| Base64Unpadded::decode_vec(s))
        .or_else(|_| Base64Url::decode_vec(s))
        .or_else(|_| Base64UrlUnpadded::decode_vec(s))
        .ok()
}
