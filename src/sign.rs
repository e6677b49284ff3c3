//! SSHSIG signing (the `ssh-key` crate, or what `ssh-keygen -Y sign -n nexusmon-approval-v1`
//! writes): where a record's signature lives, reading an OpenSSH private key, signing a
//! record's exact bytes in a namespace, key fingerprints; and the raw signatures a DSSE
//! envelope carries ([`dsse`]). Low-level and policy-free: checking a signature against the
//! trust file is [`crate::govern::sign`].

pub mod agent;
pub mod dsse;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ssh_key::private::KeypairData;
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

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
    let text = fsx::read_key_file(path, "a private key file")?;
    let key = parse_private_key(&text).map_err(|e| {
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

/// The public half of the OpenSSH private key at `path`, encrypted or not (the public key
/// is stored in the clear).
pub fn public_of_private(path: &Path) -> Result<PublicKey> {
    let text = fsx::read_key_file(path, "a private key file")?;
    let key = parse_private_key(&text).map_err(|e| {
        Error::input(path, "is not an OpenSSH private key")
            .with_source(e)
            .with_hint("pass the private key file (e.g. ~/.ssh/id_ed25519), not the .pub file")
    })?;
    Ok(key.public_key().clone())
}

/// Parse an OpenSSH private key, accepting the ECDSA keys `ssh-key` 0.6.7 refuses.
fn parse_private_key(text: &str) -> ssh_key::Result<PrivateKey> {
    PrivateKey::from_openssh(text.trim()).or_else(|e| match pad_short_ecdsa_scalar(text.trim()) {
        Some(fixed) => PrivateKey::from_openssh(&fixed),
        None => Err(e),
    })
}

const OPENSSH_BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const OPENSSH_END: &str = "-----END OPENSSH PRIVATE KEY-----";

/// `ssh-key` 0.6.7 reads an ECDSA private scalar only at its full width (RustCrypto/SSH#350,
/// fixed after 0.6.7), but the key format stores it as an `mpint` without leading zero
/// bytes, so about one `ssh-keygen -t ecdsa` key in 512 has a shorter scalar and fails to
/// load ("length invalid"). For an unencrypted key (an encrypted one is refused before its
/// private part is read), rewrite the private section with the scalar zero-padded to the
/// curve's width and the block padding recomputed; `None` when the key is anything else,
/// so the original error stands. Hand-written because no maintained crate both reads these
/// keys and is compatible with the `ssh-key` types the rest of signing uses.
fn pad_short_ecdsa_scalar(text: &str) -> Option<String> {
    use base64ct::{Base64, Encoding};
    let body = text
        .strip_prefix(OPENSSH_BEGIN)?
        .strip_suffix(OPENSSH_END)?;
    let b64: String = body.split_whitespace().collect();
    let raw = Base64::decode_vec(&b64).ok()?;
    let mut r = Blob { b: &raw, at: 0 };
    let magic = r.take(15)?;
    if magic != b"openssh-key-v1\0" {
        return None;
    }
    let header_start = 0;
    let cipher = r.string()?;
    let kdf = r.string()?;
    let _kdf_options = r.string()?;
    if cipher != b"none" || kdf != b"none" || r.u32()? != 1 {
        return None;
    }
    let _public = r.string()?;
    let private_at = r.at;
    let private = r.string()?;
    if r.at != raw.len() {
        return None;
    }
    let mut p = Blob { b: private, at: 0 };
    let checks = p.take(8)?;
    let key_type = p.string()?;
    let width = match key_type {
        b"ecdsa-sha2-nistp256" => 32,
        b"ecdsa-sha2-nistp384" => 48,
        b"ecdsa-sha2-nistp521" => 66,
        _ => return None,
    };
    let curve = p.string()?;
    let point = p.string()?;
    let scalar = p.string()?;
    let comment = p.string()?;
    // Only a scalar shorter than the width is repaired (its high bit then never needs a
    // leading zero); anything else is not this bug.
    if scalar.is_empty() || scalar.len() >= width || scalar[0] == 0 {
        return None;
    }
    let mut section = Vec::with_capacity(private.len() + width);
    section.extend_from_slice(checks);
    for field in [key_type, curve, point] {
        put_string(&mut section, field);
    }
    let mut padded = vec![0u8; width - scalar.len()];
    padded.extend_from_slice(scalar);
    put_string(&mut section, &padded);
    put_string(&mut section, comment);
    let mut pad = 1u8;
    while section.len() % 8 != 0 {
        section.push(pad);
        pad += 1;
    }
    let mut out = raw[header_start..private_at].to_vec();
    put_string(&mut out, &section);
    let encoded = Base64::encode_string(&out);
    let mut armoured = String::from(OPENSSH_BEGIN);
    armoured.push('\n');
    for line in encoded.as_bytes().chunks(70) {
        armoured.push_str(std::str::from_utf8(line).ok()?);
        armoured.push('\n');
    }
    armoured.push_str(OPENSSH_END);
    armoured.push('\n');
    Some(armoured)
}

/// A cursor over SSH wire-format bytes.
struct Blob<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Blob<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        let s = self.take(4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    let n = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(s);
}

/// The error for an encrypted key, with the `ssh-keygen` command that signs `record`.
pub fn encrypted_key_error(key: &Path, record: &Path) -> Error {
    Error::input(key, "the private key is encrypted (passphrase-protected)").with_hint(format!(
        "nexusmon does not read passphrases; sign with ssh-keygen (it can use ssh-agent): ssh-keygen -Y sign -f {} -n {SIGNATURE_NAMESPACE} {}",
        key.display(),
        record.display()
    ))
}

/// Sign `bytes` in the approval namespace; returns the armored signature (as
/// `ssh-keygen -Y sign` writes it).
pub fn sign(key: &PrivateKey, bytes: &[u8], key_path: &Path) -> Result<String> {
    sign_in(key, SIGNATURE_NAMESPACE, bytes, key_path)
}

/// Sign `bytes` in `namespace`; returns the armored signature (as `ssh-keygen -Y sign -n
/// NAMESPACE` writes it).
pub fn sign_in(key: &PrivateKey, namespace: &str, bytes: &[u8], key_path: &Path) -> Result<String> {
    check_key_strength(key.public_key().key_data()).map_err(|e| {
        Error::input(key_path, format!("weak-key: {e}"))
            .with_hint("generate a stronger key: ssh-keygen -t ed25519")
    })?;
    let sig = match key.key_data() {
        KeypairData::Rsa(kp) => sign_rsa(kp, key.public_key(), namespace, bytes),
        _ => key.sign(namespace, HashAlg::Sha512, bytes),
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
    namespace: &str,
    bytes: &[u8],
) -> ssh_key::Result<SshSig> {
    let data = SshSig::signed_data(namespace, HashAlg::Sha512, bytes)?;
    let signature = ssh_key::Signature::new(
        ssh_key::Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        rsa_pkcs1v15_sha512(kp, &data)?,
    )?;
    SshSig::new(
        public.key_data().clone(),
        namespace,
        HashAlg::Sha512,
        signature,
    )
}

/// PKCS#1 v1.5 with SHA-512 over `data` (`rsa-sha2-512`), through the `rsa` crate directly
/// (see [`sign_rsa`] for why not through `ssh-key`).
pub(crate) fn rsa_pkcs1v15_sha512(
    kp: &ssh_key::private::RsaKeypair,
    data: &[u8],
) -> ssh_key::Result<Vec<u8>> {
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
    let signature = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(key)
        .try_sign(data)
        .map_err(|_| ssh_key::Error::Crypto)?;
    Ok(signature.to_vec())
}

/// The first line of an armored SSH signature.
pub const ARMOR_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";

/// The last line of an armored SSH signature.
pub const ARMOR_END: &str = "-----END SSH SIGNATURE-----";

/// Smallest RSA modulus accepted, in bits, for signing and verifying.
pub const MIN_RSA_BITS: usize = 2048;

/// Why a signature does not verify, in the terms every caller reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// Not an armored SSH signature exactly as `ssh-keygen -Y sign` writes one.
    Malformed(String),
    /// Made for another namespace.
    WrongNamespace(String),
    /// Made with a key too weak to count (RSA below [`MIN_RSA_BITS`]).
    WeakKey(String),
    /// Does not verify over the signed bytes.
    Invalid(String),
}

impl std::fmt::Display for SigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigError::Malformed(m)
            | SigError::WrongNamespace(m)
            | SigError::WeakKey(m)
            | SigError::Invalid(m) => f.write_str(m),
        }
    }
}

/// Parse the bytes of a `.sig` file strictly, as `ssh-keygen -Y verify` reads one, or
/// stricter (hand-written: `ssh-key`'s PEM reader accepts what `ssh-keygen` refuses, such
/// as text before the armour or CRLF line ends). The armour must start the file:
/// `-----BEGIN SSH SIGNATURE-----`, a newline, lines of base64 (each ending in a newline),
/// `-----END SSH SIGNATURE-----`, then at most one newline and nothing else. (`ssh-keygen`
/// also ignores anything after the footer and whitespace inside the base64; nexusmon
/// refuses both: a signature file holds the armour and nothing else.) The decoded blob
/// must be exactly one SSHSIG (magic `SSHSIG`, version 1, no trailing bytes).
pub fn dearmor(bytes: &[u8]) -> std::result::Result<SshSig, String> {
    use base64ct::Encoding;
    let Some(rest) = bytes.strip_prefix(ARMOR_BEGIN.as_bytes()) else {
        return Err(if bytes.is_empty() {
            "the file is empty".into()
        } else if bytes
            .windows(ARMOR_BEGIN.len())
            .any(|w| w == ARMOR_BEGIN.as_bytes())
        {
            format!("something precedes `{ARMOR_BEGIN}`: the armour must start the file")
        } else {
            format!("it does not start with `{ARMOR_BEGIN}` (missing header)")
        });
    };
    if rest.contains(&b'\r') {
        return Err("it has CRLF line ends (ssh-keygen reads LF only)".into());
    }
    let rest = rest
        .strip_prefix(b"\n")
        .ok_or("no newline after the header (lines end with LF, as ssh-keygen requires)")?;
    let body = rest.strip_suffix(b"\n").unwrap_or(rest);
    let Some(body) = body.strip_suffix(ARMOR_END.as_bytes()) else {
        return Err(
            if rest
                .windows(ARMOR_END.len())
                .any(|w| w == ARMOR_END.as_bytes())
            {
                format!("something follows `{ARMOR_END}`: only a line end may")
            } else {
                format!("no `{ARMOR_END}` (missing footer: truncated?)")
            },
        );
    };
    let body = body
        .strip_suffix(b"\n")
        .ok_or("no newline before the footer")?;
    let mut b64 = Vec::with_capacity(body.len());
    for line in body.split(|b| *b == b'\n') {
        if line.is_empty()
            || !line
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err("the body is not lines of base64".into());
        }
        b64.extend_from_slice(line);
    }
    let b64 = std::str::from_utf8(&b64).unwrap_or_default();
    let blob = base64ct::Base64::decode_vec(b64)
        .map_err(|e| format!("the body is not valid base64 ({e})"))?;
    // Parsed from the canonical armour of exactly these bytes, and written back: a blob
    // with bytes after the signature (or any non-canonical encoding) does not round-trip.
    let canonical = base64ct::Base64::encode_string(&blob);
    let mut pem = format!("{ARMOR_BEGIN}\n");
    for chunk in canonical.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(ARMOR_END);
    pem.push('\n');
    let sig = SshSig::from_pem(&pem).map_err(|e| format!("not an SSHSIG blob ({e})"))?;
    if sig.version() != 1 {
        return Err(format!("SSHSIG version {} (only 1 exists)", sig.version()));
    }
    let again = sig
        .to_pem(LineEnding::LF)
        .map_err(|e| format!("not an SSHSIG blob ({e})"))?;
    let again: String = again.lines().filter(|l| !l.starts_with("-----")).collect();
    if again != canonical {
        return Err("the blob holds more than one SSHSIG (bytes after the signature)".into());
    }
    Ok(sig)
}

/// The bits of an RSA modulus (big-endian magnitude).
fn modulus_bits(n: &ssh_key::Mpint) -> usize {
    let bytes = n.as_positive_bytes().unwrap_or_default();
    let Some(first) = bytes.iter().position(|b| *b != 0) else {
        return 0;
    };
    (bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize
}

/// `Err` (with a sentence) if `key` is too weak to count: an RSA key below
/// [`MIN_RSA_BITS`].
pub fn check_key_strength(key: &ssh_key::public::KeyData) -> std::result::Result<(), String> {
    if let ssh_key::public::KeyData::Rsa(rsa) = key {
        let bits = modulus_bits(&rsa.n);
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "an RSA key of {bits} bits (at least {MIN_RSA_BITS} are required)"
            ));
        }
    }
    Ok(())
}

/// Verify an armored SSHSIG (the bytes of a `.sig` file, read strictly by [`dearmor`])
/// over `bytes` in `namespace` with the key the signature carries. Returns that key; `Err`
/// says why it does not verify. Whether the key is trusted is the caller's question.
pub fn verify_armored(
    armored: &[u8],
    namespace: &str,
    bytes: &[u8],
) -> std::result::Result<PublicKey, SigError> {
    let sig = dearmor(armored)
        .map_err(|e| SigError::Malformed(format!("not an armored SSH signature: {e}")))?;
    if sig.namespace() != namespace {
        return Err(SigError::WrongNamespace(format!(
            "signed for namespace `{}`, not `{namespace}`",
            sig.namespace()
        )));
    }
    let key = PublicKey::from(sig.public_key().clone());
    check_key_strength(key.key_data())
        .map_err(|e| SigError::WeakKey(format!("signed by {} with {e}", fingerprint(&key))))?;
    key.verify(namespace, bytes, &sig).map_err(|e| {
        SigError::Invalid(format!(
            "the signature by {} does not verify over the signed bytes: {e}",
            fingerprint(&key)
        ))
    })?;
    Ok(key)
}

/// `SHA256:…` fingerprint of a public key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}
