//! Filesystem calls whose errors name their path (every I/O error must), the one atomic
//! write recipe (temp file in the same directory, created exclusively, write, fsync, rename
//! or no-replace link, fsync the directory: [`write_atomic_opts`]) and the one file-lock
//! helper (`flock(2)` through std's `File::lock` family, retrying on EINTR).
//!
//! Every function here that creates, renames or links reaches its directory through
//! [`super::nofollow::Dir`]: never through a symlink (a symlink on the way is an input
//! error naming it, and nothing is written).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::nofollow::Dir;
use crate::{Error, Result};

/// Whether this process may access `path` as `mode` (`libc::W_OK | libc::X_OK`: create
/// entries in a directory) by `access(2)`, which checks with the real ids; false for a
/// path holding a NUL byte.
pub fn may_access(path: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).is_ok_and(|c| {
        // SAFETY: a valid C string.
        unsafe { libc::access(c.as_ptr(), mode) == 0 }
    })
}

/// `open(path, O_RDONLY | O_CLOEXEC)` by the system call itself (no allocation, no path
/// conversion): the descriptor, owned, or `None` on any error — for the runner's own
/// `/proc` and `/dev` files it holds per thread or per process, whose absence the caller
/// answers without an error message (a check skipped, an errno).
pub fn open_cloexec(path: &std::ffi::CStr) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: a valid C string; the flags ask for nothing but a read-only descriptor.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: a fresh descriptor this call owns.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Read a whole file as bytes (user input: a missing file is exit 2).
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io_input("read", path, e))
}

/// Read at most `max` bytes of a user file: `None` if it holds more (read through a bounded
/// reader, so a special file such as `/dev/zero` or a file that grows while it is read
/// cannot exhaust memory).
pub fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let f = File::open(path).map_err(|e| Error::io_input("read", path, e))?;
    // A regular file over the limit is refused from its size, before a byte is read.
    if let Ok(m) = f.metadata()
        && m.is_file()
        && m.len() > max
    {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    f.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io_input("read", path, e))?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// The error for a user document larger than `max` bytes (its limit).
pub fn document_over(path: &Path, max: u64) -> Error {
    let what = if max == super::limits::MAX_PLAN_BYTES {
        "a plan file"
    } else {
        "a registry or template file"
    };
    Error::input(
        path,
        format!("is larger than {max} bytes, the limit for {what}"),
    )
    .with_hint(
        "split it (one registry per directory, one plan per file) or remove what it does not need",
    )
}

/// Read a user file of at most `max` bytes ([`read_bounded`]); a larger one is an input
/// error naming the file, what it is (`what`: "a promotion packet"), the limit and, when
/// one exists, the flag that raises it.
pub fn read_limited(path: &Path, max: u64, what: &str, flag: Option<&str>) -> Result<Vec<u8>> {
    read_bounded(path, max)?.ok_or_else(|| too_large(path, max, what, flag))
}

/// The error for a user file larger than its limit (see [`read_limited`]).
pub fn too_large(path: &Path, max: u64, what: &str, flag: Option<&str>) -> Error {
    let e = Error::input(
        path,
        format!(
            "input limit: is larger than {max} bytes, the limit for {what}; refused before it is read"
        ),
    );
    match flag {
        Some(f) => e.with_hint(format!(
            "if the file is genuine, raise the limit with `{f} BYTES` (see the README's limits table)"
        )),
        None => e.with_hint(format!(
            "{what} written by nexusmon is far smaller: this file was not written by it or was tampered with"
        )),
    }
}

/// Read a user document (plan, registry) as UTF-8 text, refusing one larger than
/// [`super::limits::MAX_DOCUMENT_BYTES`] ([`read_bounded`]).
pub fn read_document(path: &Path) -> Result<String> {
    read_document_max(path, super::limits::MAX_DOCUMENT_BYTES)
}

/// Read a user document of at most `max` bytes as UTF-8 text ([`read_bounded`]): a plan
/// has its own limit ([`super::limits::MAX_PLAN_BYTES`]).
pub fn read_document_max(path: &Path, max: u64) -> Result<String> {
    let bytes = read_bounded(path, max)?.ok_or_else(|| document_over(path, max))?;
    utf8_input(path, bytes)
}

/// `bytes` of the user file `path` as UTF-8 text.
pub fn utf8_input(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        Error::input(
            path,
            format!("is not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
        .with_hint("plans, registries and templates must be UTF-8 JSON or YAML")
    })
}

/// Read a file of at most `max` bytes as an [`io::Result`] (for callers that treat any
/// failure alike): a larger one, or a special file that never ends, is `InvalidData`.
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = File::open(path)?;
    if let Ok(m) = f.metadata()
        && m.is_file()
        && m.len() > max
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    let mut bytes = Vec::new();
    f.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Read a key, token or trust file as UTF-8 text (user input), at most
/// [`super::limits::MAX_KEY_BYTES`].
pub fn read_key_file(path: &Path, what: &str) -> Result<String> {
    utf8_input(
        path,
        read_limited(path, super::limits::MAX_KEY_BYTES, what, None)?,
    )
}

/// Read a whole file as UTF-8 text (user input).
pub fn read_input_string(path: &Path) -> Result<String> {
    utf8_input(path, read_input(path)?)
}

/// Read a whole file as bytes (tool state: errors are runner failures).
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io("read", path, e))
}

/// Create a directory and its parents, never through a symlink
/// ([`super::nofollow::Dir::create`]).
pub fn create_dir_all(path: &Path) -> Result<()> {
    Dir::create(path).map(drop)
}

/// List a directory, sorted by file name (deterministic).
pub fn read_dir_sorted(path: &Path) -> Result<Vec<PathBuf>> {
    let rd = fs::read_dir(path).map_err(|e| Error::io_input("list directory", path, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io_input("list directory", path, e))?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// fsync a directory so renames and new entries in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io("open directory for fsync", dir, e))?;
    f.sync_all()
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The temp name used for an atomic write of `path`: same directory, a prefix no real
/// artifact uses, the pid and a counter, so concurrent writers never collide.
pub fn temp_path_for(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = format!(".tmp.{}.{}.{}", std::process::id(), n, name);
    path.with_file_name(tmp)
}

/// The directory holding `path` (opened without following a symlink) and `path`'s name in
/// it.
pub fn dir_and_name(path: &Path) -> Result<(Dir, &OsStr)> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::runner("not a file path").with_path(path))?;
    Ok((Dir::open(parent_of(path))?, name))
}

/// Create `path` exclusively (`O_CREAT | O_EXCL`: never an existing file, so two writers
/// can never share one, and never through a symlink) with permission bits `mode` (before
/// the umask).
pub fn create_exclusive(path: &Path, mode: u32) -> Result<File> {
    let (dir, name) = dir_and_name(path)?;
    dir.create_file(name, mode)
        .map_err(|e| Error::io("create", path, e))
}

/// Remove the file (or symlink) `path` (`unlinkat` in its directory, reached without
/// following a symlink).
pub fn remove_file(path: &Path) -> Result<()> {
    let (dir, name) = dir_and_name(path)?;
    dir.remove(name, false)
        .map_err(|e| Error::io("remove", path, e))
}

/// Set the permission bits of `path` exactly (`fchmodat`, never through a symlink).
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    let (dir, name) = dir_and_name(path)?;
    dir.chmod(name, mode)
        .map_err(|e| Error::io("set the mode of", path, e))
}

/// Open `path` for appending (created with `mode` if missing), never through a symlink:
/// the audit log, `$GITHUB_STEP_SUMMARY`.
pub fn open_append(path: &Path, mode: u32) -> Result<File> {
    let (dir, name) = dir_and_name(path)?;
    dir.open_append(name, mode, true)
        .map_err(|e| Error::io("open for appending", path, e))
}

/// Open (creating with `mode` if missing, never truncating) the lock file `path` for
/// reading and writing, never through a symlink.
pub fn open_lock_file(path: &Path, mode: u32) -> Result<File> {
    let (dir, name) = dir_and_name(path)?;
    dir.open_rw(name, mode)
        .map_err(|e| Error::io("open lock", path, e))
}

/// Rename `tmp` over `path` (same directory); on failure the temp file is removed.
pub fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    let renamed = dir_and_name(path).and_then(|(dir, name)| {
        let from = tmp
            .file_name()
            .ok_or_else(|| Error::runner("not a file path").with_path(tmp))?;
        dir.rename(from, name)
            .map_err(|e| Error::io("rename into place", path, e))
    });
    if renamed.is_err() {
        let _ = fs::remove_file(tmp);
    }
    renamed
}

/// How [`write_atomic_opts`] lands a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtomicWrite {
    /// Permission bits of the new file, before the umask (`0o666`, the `open(2)` default;
    /// bundle members are born read-only, `0o444`).
    pub mode: u32,
    /// fsync the directory once the file is in place (callers that fsync the directory
    /// once after many files pass `false`).
    pub sync_parent: bool,
    /// Refuse to replace an existing `path`: the temp file is hard-linked to `path` (which
    /// fails if it exists: the error is user input, `already exists`) instead of renamed over it.
    pub no_replace: bool,
}

impl Default for AtomicWrite {
    fn default() -> Self {
        Self {
            mode: 0o666,
            sync_parent: true,
            no_replace: false,
        }
    }
}

/// Write `bytes` to `path` atomically and durably: temp file in the same directory
/// (created exclusively), write, fsync, rename over `path`, fsync the directory.
/// On any error the temp file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_opts(path, bytes, AtomicWrite::default(), || {})
}

/// As [`write_atomic`], with the directory fsync optional (callers that fsync the
/// directory once after many files pass `false`).
pub fn write_atomic_with(path: &Path, bytes: &[u8], sync_parent: bool) -> Result<()> {
    let how = AtomicWrite {
        sync_parent,
        ..AtomicWrite::default()
    };
    write_atomic_opts(path, bytes, how, || {})
}

/// Write a file that must not exist yet, atomically and durably: a temp file in the same
/// directory (written, fsynced) is hard-linked to `path`, which fails if `path` exists, so
/// a concurrent writer can never be overwritten; then the temp name is removed.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let how = AtomicWrite {
        no_replace: true,
        ..AtomicWrite::default()
    };
    write_atomic_opts(path, bytes, how, || {})
}

/// The one atomic-create recipe: temp file beside `path` (created exclusively with
/// `how.mode`), write, fsync, `before_rename` (the bundle writer's crash points), then
/// rename over `path` (or hard-link to it when `how.no_replace`), then fsync the directory
/// if `how.sync_parent`. On any error the temp file is removed and `path` is untouched.
pub fn write_atomic_opts(
    path: &Path,
    bytes: &[u8],
    how: AtomicWrite,
    before_rename: impl FnOnce(),
) -> Result<()> {
    write_atomic_from(
        path,
        |w| w.write_all(bytes).map_err(|e| Error::io("write", path, e)),
        how,
        before_rename,
    )
}

/// As [`write_atomic_opts`], the content written by `fill` into the (buffered) temp file:
/// a large document streams to disk instead of being built in memory first. An I/O error
/// `fill` meets names the temp file.
pub fn write_atomic_from(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
    how: AtomicWrite,
    before_rename: impl FnOnce(),
) -> Result<()> {
    write_atomic_gated_from(path, fill, how, || {
        before_rename();
        Ok(())
    })
}

/// [`write_atomic_opts`] whose rename waits for `gate`, called once the temp file is
/// written (and synced, as `how` says): an error from it removes the temp file and is
/// returned, nothing renamed. The bundle's `LATEST` is written this way while the move it
/// names is made durable, and renamed only once that succeeded.
pub fn write_atomic_gated(
    path: &Path,
    bytes: &[u8],
    how: AtomicWrite,
    gate: impl FnOnce() -> Result<()>,
) -> Result<()> {
    write_atomic_gated_from(
        path,
        |w| w.write_all(bytes).map_err(|e| Error::io("write", path, e)),
        how,
        gate,
    )
}

fn write_atomic_gated_from(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
    how: AtomicWrite,
    gate: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let (dir, name) = dir_and_name(path)?;
    let tmp = temp_path_for(path);
    let tmp_name = tmp.file_name().unwrap_or_default();
    let written = (|| {
        let f = dir
            .create_file(tmp_name, how.mode)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let mut w = Recording {
            inner: std::io::BufWriter::with_capacity(64 * 1024, f),
            failed: None,
        };
        let filled = fill(&mut w).and_then(|()| w.flush().map_err(|e| Error::io("write", &tmp, e)));
        if let Some(e) = w.failed.take() {
            return Err(Error::io("write", &tmp, e));
        }
        filled?;
        let f = w
            .inner
            .into_inner()
            .map_err(|e| Error::io("write", &tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))
    })();
    if let Err(e) = written.and_then(|()| gate()) {
        let _ = dir.remove(tmp_name, false);
        return Err(e);
    }
    if how.no_replace {
        let linked = dir.link(tmp_name, name).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::input(path, "already exists")
            } else {
                Error::io("create", path, e)
            }
        });
        let _ = dir.remove(tmp_name, false);
        linked?;
    } else if let Err(e) = dir.rename(tmp_name, name) {
        let _ = dir.remove(tmp_name, false);
        return Err(Error::io("rename into place", path, e));
    }
    if how.sync_parent {
        dir.sync()?;
    }
    Ok(())
}

/// A writer that keeps the first I/O error it returned, so the error of a `fill` that
/// wraps it (a serializer's) can still be reported as an I/O error naming the path.
struct Recording<W> {
    inner: W,
    failed: Option<std::io::Error>,
}

impl<W: Write> Write for Recording<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| self.note(e))
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf).inspect_err(|e| self.note(e))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|e| self.note(e))
    }
}

impl<W> Recording<W> {
    fn note(&mut self, e: &std::io::Error) {
        if self.failed.is_none() {
            self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
    }
}

/// Block until `file` holds an exclusive lock (`flock(2)`, through std's `File::lock`),
/// retrying on EINTR. An error names `path`.
pub fn lock_exclusive(file: &File, path: &Path) -> Result<()> {
    retry_eintr(path, || file.lock())
}

/// Block until `file` holds a shared lock (`flock(2)` `LOCK_SH`), retrying on EINTR.
pub fn lock_shared(file: &File, path: &Path) -> Result<()> {
    retry_eintr(path, || file.lock_shared())
}

/// Try once to take an exclusive lock on `file` without blocking (retrying on EINTR):
/// `Ok(true)` if it is now held, `Ok(false)` if another open file description holds it.
pub fn try_lock_exclusive(file: &File, path: &Path) -> Result<bool> {
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(fs::TryLockError::WouldBlock) => return Ok(false),
            Err(fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
        }
    }
}

/// Release a lock taken with one of the functions above (closing the file releases it too).
pub fn unlock(file: &File) {
    let _ = file.unlock();
}

fn retry_eintr(path: &Path, mut op: impl FnMut() -> std::io::Result<()>) -> Result<()> {
    loop {
        match op() {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("lock", path, e)),
        }
    }
}

/// The nearest ancestor of `start` (itself included) for which `pred` holds.
pub fn find_upwards(start: &Path, pred: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let mut cur = Some(start);
    while let Some(dir) = cur {
        if pred(dir) {
            return Some(dir.to_path_buf());
        }
        cur = dir.parent();
    }
    None
}

/// `path` made absolute against the current directory (without resolving symlinks).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io_input("resolve", path, e))
}

/// `to` relative to the directory `from` (both made absolute; `..` where needed),
/// `/`-separated: for links from one file to another. When no relative path exists (no
/// common root), `to` as an absolute path.
pub fn relative_path(from: &Path, to: &Path) -> Result<String> {
    use std::path::Component;
    let from = absolute(from)?;
    let to = absolute(to)?;
    let norm = |p: &Path| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(x) => out.push(x.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    out.pop();
                }
                _ => {}
            }
        }
        out
    };
    let (f, t) = (norm(&from), norm(&to));
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); f.len() - common];
    parts.extend(t[common..].iter().cloned());
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gated write renames only when its gate succeeds, and only after the gate ran with
    /// the temp file complete beside the target: generated sequences of gated writes of
    /// random contents, gates passing or failing, over an existing file or none, leave the
    /// last passed content under the name (or no file) and never a temp file.
    #[test]
    fn a_gated_write_renames_only_after_its_gate_passes() {
        use crate::util::testrng::Rng;
        for seed in 0..60u64 {
            let mut rng = Rng(seed);
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("LATEST");
            let mut current: Option<Vec<u8>> = None;
            for _ in 0..=rng.below(6u64) {
                let body: Vec<u8> = (0..rng.below(300usize))
                    .map(|_| rng.next().to_le_bytes()[0])
                    .collect();
                let pass = rng.chance(60);
                let how = AtomicWrite {
                    mode: 0o644,
                    sync_parent: rng.chance(50),
                    no_replace: false,
                };
                let mut seen_temp = false;
                let r = write_atomic_gated(&p, &body, how, || {
                    // The temp file is complete; the name still holds what it held.
                    let temps: Vec<PathBuf> = fs::read_dir(dir.path())
                        .unwrap()
                        .map(|e| e.unwrap().path())
                        .filter(|q| {
                            q.file_name()
                                .unwrap()
                                .to_string_lossy()
                                .starts_with(".tmp.")
                        })
                        .collect();
                    seen_temp = temps.len() == 1 && fs::read(&temps[0]).unwrap() == body;
                    assert_eq!(
                        fs::read(&p).ok(),
                        current,
                        "seed {seed}: renamed before the gate"
                    );
                    if pass {
                        Ok(())
                    } else {
                        Err(crate::Error::runner("gate refused"))
                    }
                });
                assert!(
                    seen_temp,
                    "seed {seed}: the gate ran with the temp file written"
                );
                assert_eq!(r.is_ok(), pass, "seed {seed}");
                if pass {
                    current = Some(body);
                }
                assert_eq!(fs::read(&p).ok(), current, "seed {seed}");
                let names: Vec<_> = fs::read_dir(dir.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert_eq!(
                    names.len(),
                    usize::from(current.is_some()),
                    "seed {seed}: {names:?}"
                );
            }
        }
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn atomic_write_into_missing_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing/a.json");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Runner, "{e}");
        assert!(
            e.path()
                .is_some_and(|q| q.starts_with(dir.path().join("missing"))),
            "{e}"
        );
    }

    #[test]
    fn write_new_refuses_an_existing_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_new(&p, b"one").unwrap();
        let e = write_new(&p, b"two").unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Usage, "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn try_lock_sees_another_holder_and_unlock_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".lock");
        let a = File::create(&p).unwrap();
        let b = File::open(&p).unwrap();
        lock_exclusive(&a, &p).unwrap();
        assert!(!try_lock_exclusive(&b, &p).unwrap());
        unlock(&a);
        assert!(try_lock_exclusive(&b, &p).unwrap());
        unlock(&b);
        lock_shared(&a, &p).unwrap();
        lock_shared(&b, &p).unwrap();
    }
}
