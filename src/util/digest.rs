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

    /// [`Digest::both_of`] the RFC 8785 canonical JSON of `value`
    /// ([`crate::util::json::canonical`]), hashed as it is written. What is held in
    /// memory is the text of the objects still open (their members are sorted when they
    /// close), which for an object at the top is its whole text.
    pub fn both_of_canonical<T: Serialize>(value: &T) -> Result<Self> {
        let mut h = BothHasher {
            blake3: blake3::Hasher::new(),
            sha256: sha2::Sha256::new(),
        };
        crate::util::json::canonical_to(value, &mut h)?;
        Ok(Self {
            blake3: h.blake3.finalize().to_hex().to_string(),
            sha256: Some(hex(&h.sha256.finalize())),
        })
    }
}

/// Feeds every byte written to both hashes.
struct BothHasher {
    blake3: blake3::Hasher,
    sha256: sha2::Sha256,
}

impl std::io::Write for BothHasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.blake3.update(buf);
        self.sha256.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Hex blake3 of `bytes`.
pub fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
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

    #[test]
    fn canonical_hashed_as_written_is_the_digest_of_the_canonical_bytes() {
        // Seeded JSON values (nested objects with keys out of order, escapes, non-ASCII
        // keys whose UTF-16 order differs from their bytes', numbers, large strings):
        // hashing the canonical text as it is written gives the digest of the whole text.
        use crate::util::testrng::Rng;
        use serde_json::{Value, json};
        fn value(r: &mut Rng, depth: u32) -> Value {
            const KEYS: [&str; 9] = [
                "b",
                "a",
                "\u{e9}",
                "\u{1f600}",
                "\u{ff61}",
                "a\"",
                "10",
                "1",
                "",
            ];
            match if depth > 2 {
                r.below(4u32)
            } else {
                r.below(7u32)
            } {
                0 => Value::Null,
                1 => json!(r.chance(50)),
                2 => json!(f64::from(r.below(1u32 << 31)) / 7.0 - 1e9),
                3 => json!("x\n\u{e9}".repeat(r.below(200usize))),
                4 => Value::Array((0..r.below(5u32)).map(|_| value(r, depth + 1)).collect()),
                _ => Value::Object(
                    (0..r.below(40u32))
                        .map(|i| (format!("{}{i}", r.pick(&KEYS)), value(r, depth + 1)))
                        .collect(),
                ),
            }
        }
        let mut r = Rng(8785);
        for _ in 0..120 {
            let v = value(&mut r, 0);
            let bytes = crate::util::json::canonical(&v).unwrap();
            assert_eq!(
                Digest::both_of_canonical(&v).unwrap(),
                Digest::both_of(&bytes)
            );
        }
    }
}
