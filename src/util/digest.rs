//! Digests that leave the tool are labelled with their algorithm (`{"blake3": "…"}`), with
//! `sha256` beside it where a standard consumer needs one.

use std::io::Read;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::{Error, Result};

/// A labelled digest: always blake3, sha256 where a standard consumer needs it.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    /// BLAKE3-256, 64 lowercase hex characters.
    pub blake3: String,
    /// SHA-256, 64 lowercase hex characters, where a standard consumer needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Digest {
    /// blake3 only.
    pub fn blake3_of(bytes: &[u8]) -> Self {
        Self {
            blake3: blake3_hex(bytes),
            sha256: None,
        }
    }

    /// blake3 and sha256.
    pub fn both_of(bytes: &[u8]) -> Self {
        Self {
            blake3: blake3_hex(bytes),
            sha256: Some(sha256_hex(bytes)),
        }
    }
}

/// Hex blake3 of `bytes`.
pub fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = sha2::Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Streaming blake3 of a file with bounded memory (64 KiB buffer); returns (size, hex).
pub fn blake3_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// True if `s` is 64 lowercase hex characters.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            blake3_hex(b""),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert!(is_hex64(&blake3_hex(b"x")));
    }
}
