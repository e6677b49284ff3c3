//! Low-level filesystem steps of the commit protocol, each naming its path on error:
//! staged writes (temp in the same directory, then rename), durability (`syncfs(2)` on the
//! staging filesystem, or an `fsync` of every file where `syncfs` cannot report errors),
//! the no-replace directory move (`renameat2(RENAME_NOREPLACE)`), and opening a bundle member
//! without following any symlink (`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::{Error, Result};

/// Prefix of every temp file the store creates. No artifact may start with it, so a leftover
/// temp file can never be mistaken for evidence.
pub const TEMP_PREFIX: &str = ".tmp.";

/// Rename `tmp` over `path`; on failure the temp file is removed.
pub(crate) use crate::util::fsx::rename_into_place;
/// `fsync` a directory so the entries created or renamed in it are durable.
pub(crate) use crate::util::fsx::sync_dir;
/// A temp path beside `path` (same directory, so the rename is atomic), named with
/// [`TEMP_PREFIX`], the pid and a counter.
pub(crate) use crate::util::fsx::temp_path_for;
use crate::util::fsx::{self, AtomicWrite};

/// Bundle members are born read-only: the descriptor that creates one can write it,
/// nothing else can, and sealing has nothing to change.
const MEMBER_MODE: u32 = 0o444;

/// How [`write_durable`] lands a file: born read-only, the directory synced after the
/// rename, replacing what was there.
const DURABLE: AtomicWrite = AtomicWrite {
    mode: MEMBER_MODE,
    sync_parent: true,
    no_replace: false,
};

/// Create a temp file exclusively (`O_EXCL`), so two writers can never share one. The file
/// is born read-only (0444): the descriptor returned can write it, nothing else can, and
/// sealing has nothing to change.
pub(crate) fn create_temp(tmp: &Path) -> Result<File> {
    fsx::create_exclusive(tmp, MEMBER_MODE)
}

/// Write `bytes` to `path` through a temp file and a rename, with an `fsync` of the file
/// before the rename and of the directory after it: the classic durable atomic write, for
/// the few files that must be durable on their own (`LATEST`, a repair's outputs; a seal's
/// index is synced by the seal's barrier instead). The file is born read-only.
pub(crate) fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    write_durable_hooked(path, bytes, || {})
}

/// [`write_durable`], calling `before_rename` once the temp file is durable (the writer's
/// crash points).
pub(crate) fn write_durable_hooked(
    path: &Path,
    bytes: &[u8],
    before_rename: impl FnOnce(),
) -> Result<()> {
    fsx::write_atomic_opts(path, bytes, DURABLE, before_rename)
}

/// [`write_durable`] whose rename waits for `gate` (once the temp file is durable); an
/// error from `gate` removes the temp file and renames nothing.
pub(crate) fn write_durable_gated(
    path: &Path,
    bytes: &[u8],
    gate: impl FnOnce() -> Result<()>,
) -> Result<()> {
    fsx::write_atomic_gated(path, bytes, DURABLE, gate)
}

/// Make `rels` under `base` read-only (0444).
pub(crate) fn make_read_only(base: &Path, rels: &[&str]) -> Result<()> {
    for rel in rels {
        fsx::set_mode(&base.join(rel), 0o444)?;
    }
    Ok(())
}

/// `syncfs(2)` on the filesystem holding the open directory `dir`. Since Linux 5.8 it
/// reports every writeback error on that filesystem since `dir` was opened, which is what
/// makes it usable as the durability barrier of a whole bundle.
pub(crate) fn syncfs(dir: &File, path: &Path) -> Result<()> {
    // SAFETY: syncfs on a valid open descriptor.
    let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::io(
            "syncfs the staging filesystem",
            path,
            io::Error::last_os_error(),
        ))
    }
}

/// True if this kernel's `syncfs(2)` reports writeback errors (Linux ≥ 5.8); older kernels
/// return success even when data was lost, so the writer falls back to per-file `fsync`.
pub(crate) fn syncfs_reports_errors(kernel_release: &str) -> bool {
    let mut parts = kernel_release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (5, 8)
}

/// `renameat2(RENAME_NOREPLACE)`: move `from` to `to`, failing if `to` exists.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    let f = cstring(from)?;
    let t = cstring(to)?;
    // SAFETY: valid C strings; AT_FDCWD.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::io(
            "move the sealed bundle into place (no replace)",
            to,
            io::Error::last_os_error(),
        ))
    }
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::runner("path contains a NUL byte").with_path(p))
}

/// Open a bundle member beneath the bundle directory for reading, without following any
/// symlink or leaving the directory (`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`):
/// the crate's one helper, [`crate::util::nofollow::open_beneath`].
pub(crate) use crate::util::nofollow::open_beneath;

/// Open a directory (for `openat2`, `syncfs` and `fsync`).
pub(crate) fn open_dir(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
}

/// Read a whole small file, at most `limit` bytes (a longer file is an error): for the
/// index, `LATEST`, `run_status.json`, which are never large.
pub(crate) fn read_limited(file: &mut File, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    file.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncfs_error_reporting_needs_linux_5_8() {
        assert!(syncfs_reports_errors("6.18.0-1-amd64"));
        assert!(syncfs_reports_errors("5.8.0"));
        assert!(!syncfs_reports_errors("5.4.0-150-generic"));
        assert!(!syncfs_reports_errors("4.19.0"));
        assert!(!syncfs_reports_errors("garbage"));
    }

    #[test]
    fn open_beneath_refuses_symlinks_and_escapes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/f"), b"x").unwrap();
        std::os::unix::fs::symlink("sub", d.path().join("link")).unwrap();
        std::os::unix::fs::symlink("f", d.path().join("sub/flink")).unwrap();
        let dir = open_dir(d.path()).unwrap();
        assert!(open_beneath(&dir, "sub/f").is_ok());
        assert!(open_beneath(&dir, "link/f").is_err());
        assert!(open_beneath(&dir, "sub/flink").is_err());
        assert!(open_beneath(&dir, "../x").is_err());
        assert!(open_beneath(&dir, "/etc/hostname").is_err());
    }

    #[test]
    fn noreplace_refuses_an_existing_target() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::create_dir(d.path().join("b")).unwrap();
        let e = rename_noreplace(&d.path().join("a"), &d.path().join("b")).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Runner, "{e}");
        assert_eq!(e.path(), Some(d.path().join("b").as_path()), "{e}");
        rename_noreplace(&d.path().join("a"), &d.path().join("c")).unwrap();
        assert!(d.path().join("c").is_dir());
    }

    #[test]
    fn durable_write_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        write_durable(&p, b"1").unwrap();
        write_durable(&p, b"2").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"2");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
