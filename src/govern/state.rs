//! The state directory `.nexusmon/`: where it is, what it holds, how it
//! is created, and the lock that serializes every change to it.
//!
//! ```text
//! .nexusmon/
//!   audit.jsonl        hash-chained audit log (genesis line first)
//!   audit_head.json    the head {seq, blake3} after the latest append (an anchor)
//!   trusted_signers    operator keys in the OpenSSH allowed-signers format, with roles
//!   omens.json         failure fingerprints counted across runs
//!   evolution.json     XP, level, capabilities (derived from consumed mission outcomes)
//!   clearances/        signed omen clearance records
//!   audit-recovered/   bytes of torn audit lines dropped by recovery
//!   .lock              flock serializing read-modify-write of the files above
//! ```
//!
//! It is found the way git finds `.git`: `--state-dir` if given, else the nearest
//! `.nexusmon/` at or above the project root. Bundles never depend on it to verify.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::model::evolution::EvolutionFile;
use crate::model::omens::OmensFile;
use crate::util::{fsx, json};
use crate::{Error, Result};

/// The state directory's name.
pub const STATE_DIR_NAME: &str = ".nexusmon";
/// The audit log.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// The audit head anchor.
pub const AUDIT_HEAD_FILE: &str = "audit_head.json";
/// The trust file.
pub const TRUST_FILE: &str = "trusted_signers";
/// The omens file.
pub const OMENS_FILE: &str = "omens.json";
/// The evolution file.
pub const EVOLUTION_FILE: &str = "evolution.json";
/// Signed omen clearances.
pub const CLEARANCES_DIR: &str = "clearances";
/// Bytes dropped by torn-line recovery.
pub const RECOVERED_DIR: &str = "audit-recovered";
/// The state lock.
pub const LOCK_FILE: &str = ".lock";

/// The commented template `init` writes as the trust file.
pub const TRUST_TEMPLATE: &str = "\
# nexusmon trusted signers: the operators whose SSH signatures count for approvals and
# omen clearances.
#
# The format is OpenSSH's allowed-signers format (ssh-keygen(1), ALLOWED SIGNERS), so the
# same file works with stock tools:
#   ssh-keygen -Y verify -f .nexusmon/trusted_signers -I alice -n nexusmon-approval-v1 \\
#     -s approval.json.sig < approval.json
#
# One key per line:   principals [options] keytype base64-key [comment]
#   principals  comma-separated names; an approval record's `approver` must be one of them
#   options     optional, comma-separated: namespaces=\"nexusmon-approval-v1\",
#               valid-after=\"YYYYMMDD[HHMM[SS]][Z]\", valid-before=\"…\" (all honoured);
#               cert-authority lines are not supported and are ignored
#   comment     free text; nexusmon reads roles from a `roles=` word in it:
#               roles=approver[,other…]   (ssh-keygen ignores comments)
#
# Only keys whose line grants the `approver` role count for approvals and clearances.
#
# Example:
# alice namespaces=\"nexusmon-approval-v1\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… roles=approver
";

/// A located state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// The state directory at `dir`, which must exist.
    pub fn open(dir: &Path) -> Result<Self> {
        if dir.is_dir() {
            Ok(Self {
                dir: fsx::absolute(dir)?,
            })
        } else {
            Err(
                Error::input(dir, "is not a nexusmon state directory").with_hint(format!(
                    "run `nexusmon init` (or `nexusmon --state-dir {} init`) to create it",
                    dir.display()
                )),
            )
        }
    }

    /// Find the state directory: `explicit` (`--state-dir`) if given, else the nearest
    /// `.nexusmon/` at or above `start`. Not finding one is a usage error (exit 2) with a
    /// hint to run `nexusmon init`.
    pub fn discover(explicit: Option<&Path>, start: &Path) -> Result<Self> {
        if let Some(dir) = explicit {
            return Self::open(dir);
        }
        match find(start) {
            Some(dir) => Ok(Self { dir }),
            None => Err(Error::usage(format!(
                "no {STATE_DIR_NAME}/ state directory in {} or any parent",
                start.display()
            ))
            .with_hint("run `nexusmon init` at the project root (or pass --state-dir DIR)")),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<name>`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Take the state lock (exclusive `flock` on `.lock`), blocking until it is free.
    pub fn lock(&self) -> Result<StateLock> {
        StateLock::acquire(&self.file(LOCK_FILE))
    }

    /// Read `omens.json` (an empty state if the file does not exist).
    pub fn read_omens(&self) -> Result<OmensFile> {
        read_state_json(&self.file(OMENS_FILE)).map(Option::unwrap_or_default)
    }

    /// Write `omens.json` atomically. Call under [`StateDir::lock`].
    pub fn write_omens(&self, omens: &OmensFile) -> Result<()> {
        fsx::write_atomic(&self.file(OMENS_FILE), &json::to_sorted_pretty(omens)?)
    }

    /// Read `evolution.json` (`None` if the file does not exist).
    pub fn read_evolution(&self) -> Result<Option<EvolutionFile>> {
        read_state_json(&self.file(EVOLUTION_FILE))
    }

    /// Write `evolution.json` atomically. Call under [`StateDir::lock`].
    pub fn write_evolution(&self, evo: &EvolutionFile) -> Result<()> {
        fsx::write_atomic(&self.file(EVOLUTION_FILE), &json::to_sorted_pretty(evo)?)
    }
}

/// The nearest `.nexusmon/` directory at or above `start`.
pub fn find(start: &Path) -> Option<PathBuf> {
    fsx::find_upwards(start, |d| d.join(STATE_DIR_NAME).is_dir()).map(|d| d.join(STATE_DIR_NAME))
}

/// Read a state JSON file strictly; `None` if it does not exist. A file that does not
/// parse is an input error naming it (exit 2): state is never silently reset.
pub(crate) fn read_state_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = fsx::read_limited(
        path,
        crate::util::limits::MAX_STATE_BYTES,
        "a state file",
        None,
    )?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map(Some).map_err(|e| {
        let at = e.path().to_string();
        Error::input(path, format!("is not a valid state file (at `{at}`)"))
            .with_source(e.into_inner())
            .with_hint(
                "restore it from version control or a backup; nexusmon never resets state silently",
            )
    })
}

/// Write a file that must not exist yet, atomically and durably: a temp file in the same
/// directory (written, fsynced) is hard-linked to `path`, which fails if `path` exists, so
/// a concurrent writer can never be overwritten; then the temp name is removed.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    fsx::write_new(path, bytes)
}

/// An exclusive `flock` on a lock file, released on drop.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Block until the exclusive lock on `path` is held.
    pub fn acquire(path: &Path) -> Result<Self> {
        let file = fsx::open_lock_file(path, 0o644)?;
        flock_exclusive(&file, path)?;
        Ok(Self { _file: file })
    }
}

/// Block until `file` holds an exclusive `flock`, retrying on EINTR.
pub(crate) fn flock_exclusive(file: &File, path: &Path) -> Result<()> {
    fsx::lock_exclusive(file, path)
}

/// Block until `file` holds a shared `flock`, retrying on EINTR.
pub(crate) fn flock_shared(file: &File, path: &Path) -> Result<()> {
    fsx::lock_shared(file, path)
}

/// `n` random bytes from the kernel (`getrandom(2)`), as lowercase hex.
pub(crate) fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: getrandom writes at most `n - filled` bytes into the valid tail of `buf`.
        let rc = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), n - filled, 0) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::runner("cannot read random bytes (getrandom)").with_source(err));
        }
        filled += rc.unsigned_abs();
    }
    let mut s = String::with_capacity(n * 2);
    for b in buf {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::govern::init::init;

    #[test]
    fn discover_walks_up_and_explains_when_missing() {
        let t = tempfile::tempdir().unwrap();
        let e = StateDir::discover(None, t.path()).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Usage);
        assert!(e.hint().unwrap().contains("nexusmon init"), "{e:?}");

        init(&t.path().join(STATE_DIR_NAME)).unwrap();
        let deep = t.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let s = StateDir::discover(None, &deep).unwrap();
        assert_eq!(s.dir(), t.path().join(STATE_DIR_NAME));
    }

    #[test]
    fn init_is_idempotent_and_never_overwrites() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(STATE_DIR_NAME);
        let r = init(&dir).unwrap();
        assert_eq!(
            r.created,
            vec![
                AUDIT_FILE,
                AUDIT_HEAD_FILE,
                EVOLUTION_FILE,
                OMENS_FILE,
                TRUST_FILE
            ]
        );
        std::fs::write(dir.join(TRUST_FILE), "# mine\n").unwrap();
        let log = std::fs::read(dir.join(AUDIT_FILE)).unwrap();
        let r = init(&dir).unwrap();
        assert!(r.created.is_empty(), "{r:?}");
        assert_eq!(std::fs::read(dir.join(TRUST_FILE)).unwrap(), b"# mine\n");
        assert_eq!(std::fs::read(dir.join(AUDIT_FILE)).unwrap(), log);
    }

    #[test]
    fn corrupt_state_file_is_an_input_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(STATE_DIR_NAME);
        init(&dir).unwrap();
        std::fs::write(dir.join(OMENS_FILE), "{\"schema\": 1}").unwrap();
        let e = StateDir::open(&dir).unwrap().read_omens().unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Usage);
        assert_eq!(e.path(), Some(dir.join(OMENS_FILE).as_path()), "{e}");
    }

    #[test]
    fn random_hex_has_the_requested_length_and_varies() {
        let a = random_hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16).unwrap());
    }
}
