//! DSSE (Dead Simple Signing Envelope, the in-toto envelope): the pre-authentication
//! encoding of a payload ([`pae`]) and the raw signatures over it that a standard DSSE
//! verifier (e.g. Python `securesystemslib`) checks with the signer's public key.
//!
//! A DSSE signature is not an SSHSIG: it is the key's plain signature over the PAE bytes,
//! in the scheme a verifier names for that key type:
//!
//! | SSH key | scheme | signature bytes |
//! |---|---|---|
//! | `ssh-ed25519` | `ed25519` | the 64-byte Ed25519 signature of the PAE |
//! | `ecdsa-sha2-nistp256` | `ecdsa-sha2-nistp256` | ECDSA P-256 over SHA-256 of the PAE, DER-encoded |
//! | `ssh-rsa` | `rsa-pkcs1v15-sha512` | RSASSA-PKCS1-v1_5 with SHA-512 of the PAE |
//!
//! The envelope's `keyid` is the key's OpenSSH fingerprint (`SHA256:…`); DSSE says a keyid
//! is only a hint, so verifiers here find the key by the SSHSIG beside the envelope and the
//! trust file, never by the keyid.

use ssh_key::private::KeypairData;
use ssh_key::public::KeyData;
use ssh_key::{PrivateKey, PublicKey};

/// The pre-authentication encoding: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`,
/// lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// The DSSE scheme of a key type (see the module table), or `None` if unsupported.
pub fn scheme_of(key: &KeyData) -> Option<&'static str> {
    match key {
        KeyData::Ed25519(_) => Some("ed25519"),
        KeyData::Ecdsa(ssh_key::public::EcdsaPublicKey::NistP256(_)) => Some("ecdsa-sha2-nistp256"),
        KeyData::Rsa(_) => Some("rsa-pkcs1v15-sha512"),
        _ => None,
    }
}

/// Sign `data` (the PAE) with `key` in its DSSE scheme. `Err` names why not.
pub fn sign_raw(key: &PrivateKey, data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    use rsa::signature::Signer;
    let unsupported = || {
        format!(
            "{} keys cannot sign DSSE envelopes here (Ed25519, ECDSA P-256 and RSA can)",
            key.algorithm()
        )
    };
    match key.key_data() {
        KeypairData::Ed25519(kp) => {
            let sig: ssh_key::Signature = kp.try_sign(data).map_err(|e| e.to_string())?;
            raw_from_ssh(&sig)
        }
        KeypairData::Ecdsa(kp @ ssh_key::private::EcdsaKeypair::NistP256 { .. }) => {
            let sig: ssh_key::Signature = kp.try_sign(data).map_err(|e| e.to_string())?;
            raw_from_ssh(&sig)
        }
        KeypairData::Rsa(kp) => super::rsa_pkcs1v15_sha512(kp, data).map_err(|e| e.to_string()),
        _ => Err(unsupported()),
    }
}

/// The DSSE signature bytes of an SSH signature over the same data (an agent's, or the
/// key's own): Ed25519 and RSA signatures are the raw bytes; an ECDSA P-256 one (SSH
/// `mpint r, mpint s` over SHA-256) becomes DER.
pub fn raw_from_ssh(sig: &ssh_key::Signature) -> std::result::Result<Vec<u8>, String> {
    match sig.algorithm() {
        ssh_key::Algorithm::Ed25519
        | ssh_key::Algorithm::Rsa {
            hash: Some(ssh_key::HashAlg::Sha512),
        } => Ok(sig.as_bytes().to_vec()),
        ssh_key::Algorithm::Ecdsa {
            curve: ssh_key::EcdsaCurve::NistP256,
        } => {
            let sig = p256::ecdsa::Signature::try_from(sig).map_err(|e| e.to_string())?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        other => Err(format!("a {other} signature has no DSSE scheme here")),
    }
}

/// Verify a DSSE signature `sig` over `data` (the PAE) with `key`. `Err` says why not.
pub fn verify_raw(key: &PublicKey, data: &[u8], sig: &[u8]) -> std::result::Result<(), String> {
    use rsa::signature::Verifier;
    let bad = |e: &dyn std::fmt::Display| format!("the DSSE signature does not verify: {e}");
    match key.key_data() {
        KeyData::Ed25519(_) => {
            let s = ssh_key::Signature::new(ssh_key::Algorithm::Ed25519, sig.to_vec())
                .map_err(|e| bad(&e))?;
            key.key_data().verify(data, &s).map_err(|e| bad(&e))
        }
        KeyData::Ecdsa(ssh_key::public::EcdsaPublicKey::NistP256(point)) => {
            use p256::ecdsa::signature::Verifier as _;
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point.as_bytes())
                .map_err(|e| bad(&e))?;
            let s = p256::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?;
            vk.verify(data, &s).map_err(|e| bad(&e))
        }
        KeyData::Rsa(_) => {
            let s = ssh_key::Signature::new(
                ssh_key::Algorithm::Rsa {
                    hash: Some(ssh_key::HashAlg::Sha512),
                },
                sig.to_vec(),
            )
            .map_err(|e| bad(&e))?;
            key.key_data().verify(data, &s).map_err(|e| bad(&e))
        }
        other => Err(format!(
            "{} keys are not supported for DSSE envelopes",
            other.algorithm()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_test_vector() {
        // secure-systems-lab/dsse protocol.md.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn each_supported_key_type_signs_and_verifies_and_a_flip_fails() {
        let ed = ssh_key::private::Ed25519Keypair::from_seed(&[7u8; 32]);
        let secret = p256::SecretKey::from_slice(&[9u8; 32]).unwrap();
        let ec = ssh_key::private::EcdsaKeypair::NistP256 {
            public: secret.public_key().into(),
            private: secret.into(),
        };
        let keys = [
            PrivateKey::new(KeypairData::Ed25519(ed), "t").unwrap(),
            PrivateKey::new(KeypairData::Ecdsa(ec), "t").unwrap(),
        ];
        for key in keys {
            let data = pae("application/vnd.in-toto+json", b"{\"x\":1}");
            let sig = sign_raw(&key, &data).unwrap();
            verify_raw(key.public_key(), &data, &sig).unwrap();
            let mut other = data.clone();
            other[10] ^= 1;
            assert!(verify_raw(key.public_key(), &other, &sig).is_err());
            assert!(scheme_of(key.public_key().key_data()).is_some());
        }
    }
}
