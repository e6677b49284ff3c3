//! Signing through ssh-agent (`SSH_AUTH_SOCK`), for keys that are passphrase-protected on
//! disk: nexusmon never reads passphrases, but an agent the user unlocked can sign.
//!
//! Only the two requests needed are spoken (draft-miller-ssh-agent): list identities
//! (`SSH_AGENTC_REQUEST_IDENTITIES`, 11 → 12) to see whether the agent holds the key, and
//! sign (`SSH_AGENTC_SIGN_REQUEST`, 13 → 14) with `SSH_AGENT_RSA_SHA2_512` for RSA keys.
//! Hand-written: the maintained agent crates are asynchronous servers and clients built on
//! tokio; these two framed requests over a Unix socket are a few dozen lines.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh_key::{PublicKey, Signature};

const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
const RSA_SHA2_512: u32 = 4;
/// Largest agent reply read (a reply is a list of keys or one signature).
const MAX_REPLY: u32 = 256 * 1024;

/// An agent reached through its socket.
#[derive(Debug, Clone)]
pub struct Agent {
    socket: PathBuf,
}

fn put_string(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    buf.extend_from_slice(s);
}

fn take_u32(b: &mut &[u8]) -> Option<u32> {
    let (head, rest) = b.split_at_checked(4)?;
    *b = rest;
    Some(u32::from_be_bytes(head.try_into().ok()?))
}

fn take_string<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = usize::try_from(take_u32(b)?).ok()?;
    let (s, rest) = b.split_at_checked(n)?;
    *b = rest;
    Some(s)
}

impl Agent {
    /// The agent `SSH_AUTH_SOCK` names, if it is set.
    pub fn from_env() -> Option<Self> {
        std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(|s| Self {
                socket: PathBuf::from(s),
            })
    }

    /// The socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn request(&self, msg: &[u8]) -> std::io::Result<(u8, Vec<u8>)> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut framed = Vec::with_capacity(msg.len() + 4);
        put_string(&mut framed, msg);
        s.write_all(&framed)?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len);
        if len == 0 || len > MAX_REPLY {
            return Err(std::io::Error::other(format!(
                "the agent replied with a {len}-byte message"
            )));
        }
        let mut body = vec![0u8; usize::try_from(len).unwrap_or(0)];
        s.read_exact(&mut body)?;
        Ok((body[0], body[1..].to_vec()))
    }

    /// Whether the agent holds `key`.
    pub fn holds(&self, key: &PublicKey) -> std::result::Result<bool, String> {
        let blob = key.to_bytes().map_err(|e| e.to_string())?;
        let (kind, body) = self
            .request(&[REQUEST_IDENTITIES])
            .map_err(|e| format!("cannot ask the agent at {}: {e}", self.socket.display()))?;
        if kind != IDENTITIES_ANSWER {
            return Err(format!(
                "the agent answered message {kind} to a key listing"
            ));
        }
        let mut b = body.as_slice();
        let n = take_u32(&mut b).ok_or("a malformed key listing")?;
        for _ in 0..n {
            let k = take_string(&mut b).ok_or("a malformed key listing")?;
            take_string(&mut b).ok_or("a malformed key listing")?;
            if k == blob.as_slice() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The agent's signature of `data` with `key` (RSA: `rsa-sha2-512`).
    pub fn sign(&self, key: &PublicKey, data: &[u8]) -> std::result::Result<Signature, String> {
        let blob = key.to_bytes().map_err(|e| e.to_string())?;
        let flags = if matches!(key.key_data(), ssh_key::public::KeyData::Rsa(_)) {
            RSA_SHA2_512
        } else {
            0
        };
        let mut msg = vec![SIGN_REQUEST];
        put_string(&mut msg, &blob);
        put_string(&mut msg, data);
        msg.extend_from_slice(&flags.to_be_bytes());
        let (kind, body) = self
            .request(&msg)
            .map_err(|e| format!("cannot ask the agent at {}: {e}", self.socket.display()))?;
        if kind != SIGN_RESPONSE {
            return Err("the agent refused to sign (is the key still loaded and unlocked?)".into());
        }
        let mut b = body.as_slice();
        let sig = take_string(&mut b).ok_or("a malformed signature from the agent")?;
        Signature::try_from(sig).map_err(|e| format!("the agent's signature does not parse: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_length_prefixed_and_short_input_is_refused() {
        let mut buf = Vec::new();
        put_string(&mut buf, b"abc");
        assert_eq!(buf, [0, 0, 0, 3, b'a', b'b', b'c']);
        let mut b = buf.as_slice();
        assert_eq!(take_string(&mut b), Some(&b"abc"[..]));
        assert!(b.is_empty());
        let mut short: &[u8] = &[0, 0, 0, 9, 1];
        assert_eq!(take_string(&mut short), None);
        let mut tiny: &[u8] = &[0, 0];
        assert_eq!(take_u32(&mut tiny), None);
    }
}
