//! The one way the tool reaches a place it writes to, and a file beneath a base it reads:
//! never through a symbolic link.
//!
//! - **Writes** ([`Dir::open`], [`Dir::create`]): the directory a file is written into is
//!   opened component by component from `/` (an absolute path) or the current directory (a
//!   relative one), each with `O_NOFOLLOW | O_DIRECTORY`, creating missing components with
//!   `mkdirat` when asked. A symlink anywhere on the way is an input error naming it (exit
//!   2) before anything is written; the file is then created, renamed, linked or removed
//!   relative to that open directory (`openat`, `renameat`, `linkat`, `unlinkat`), so nothing
//!   swapped in afterwards on the path can redirect it. A symlink *at* the final name is
//!   replaced by the rename like any file (never followed). `util::fsx`'s atomic write,
//!   `create_dir_all` and exclusive create go through here, so every writer of the crate
//!   (plan-build, emit-promotion, promote, report, worker-new, state files, out roots,
//!   bundles) gets it.
//! - **Reads beneath a base** ([`open_beneath`]): `openat2` with `RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS` from an open directory (a bundle), so a member name can neither
//!   climb out of it nor pass a symlink (without `openat2`, Linux < 5.6, the same check
//!   component by component).
//!
//! Hand-written over `libc` because no maintained crate offers the component walk with
//! creation and errors that name the offending component.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// An open directory reached without following any symlink, with the path it was named by
/// (for messages).
#[derive(Debug)]
pub struct Dir {
    file: File,
    path: PathBuf,
}

/// The error for a symlink found at `at` on the way to a place the tool writes or reads.
pub fn symlink_error(at: &Path) -> Error {
    Error::input(
        at,
        "is a symbolic link: nexusmon never writes through a symlink",
    )
    .with_hint(
        "nothing was written; name the real directory instead (`realpath` shows it) or replace the link with a directory",
    )
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn from_fd(fd: libc::c_int) -> io::Result<File> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a freshly opened descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: whether `name` is a symlink.
fn is_symlink_at(dir: &File, name: &CString) -> bool {
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid dirfd, C string and out-parameter.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &raw mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    rc == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFLNK
}

/// Open the directory `name` in `dir` without following a symlink. `readable`: a real
/// read descriptor (for `fsync`); else `O_PATH` (only search permission needed).
fn open_child_dir(dir: &File, name: &CString, readable: bool) -> io::Result<File> {
    let access = if readable {
        libc::O_RDONLY
    } else {
        libc::O_PATH
    };
    let flags = access | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid dirfd and C string.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    match from_fd(fd) {
        Err(e) if readable && errno(&e) == libc::EACCES => {
            // No read permission (a write-and-search-only directory): still usable as a
            // directory descriptor, not for fsync.
            open_child_dir(dir, name, false)
        }
        r => r,
    }
}

fn open_start(absolute: bool) -> io::Result<File> {
    let start = if absolute { c"/" } else { c"." };
    // SAFETY: valid C string.
    let fd = unsafe {
        libc::open(
            start.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    from_fd(fd)
}

/// Why a directory could not be reached or made.
#[derive(Debug)]
pub enum WalkError {
    /// A symlink at this path (the component, as named).
    Symlink(PathBuf),
    /// Something other than a directory at this path.
    NotDir(PathBuf, io::Error),
    /// Another failure: what was being done, where, and the error.
    Io(&'static str, PathBuf, io::Error),
}

impl From<WalkError> for Error {
    fn from(w: WalkError) -> Self {
        match w {
            WalkError::Symlink(p) => symlink_error(&p),
            WalkError::NotDir(p, e) => Error::usage(format!(
                "`{}` is in the way: it is not a directory",
                p.display()
            ))
            .with_path(&p)
            .with_source(e)
            .with_hint("move it, or name another directory; nothing was written"),
            WalkError::Io(op, p, e) => Error::io(op, &p, e),
        }
    }
}

/// How [`Dir::walk`] treats a missing component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// An error.
    Open,
    /// Created.
    Create,
    /// The walk stops there: what exists is checked.
    Check,
}

/// Check, before anything is written, that no existing component of the directory path
/// `path` is a symlink (or a file): what [`Dir::create`] would refuse, without creating
/// anything. Missing components are fine.
pub fn check_dir_path(path: &Path) -> Result<()> {
    Dir::walk(path, Walk::Check).map(drop).map_err(Error::from)
}

impl Dir {
    /// Open the existing directory `path` for writing into, refusing a symlink at any
    /// component (see the module docs).
    pub fn open(path: &Path) -> Result<Self> {
        Self::walk(path, Walk::Open)?.ok_or_else(|| Error::runner("no directory").with_path(path))
    }

    /// [`Dir::open`], creating missing components (as `mkdir -p`, mode `0777` before the
    /// umask).
    pub fn create(path: &Path) -> Result<Self> {
        Ok(Self::create_or_why(path)?)
    }

    /// [`Dir::create`], with the reason it failed as a [`WalkError`] (for callers that
    /// word some failures themselves).
    pub fn create_or_why(path: &Path) -> std::result::Result<Self, WalkError> {
        Self::walk(path, Walk::Create)?.ok_or_else(|| {
            WalkError::Io(
                "open directory",
                path.to_path_buf(),
                io::Error::from(io::ErrorKind::NotFound),
            )
        })
    }

    fn walk(path: &Path, how: Walk) -> std::result::Result<Option<Self>, WalkError> {
        let create = how == Walk::Create;
        let shown = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        let mut cur = open_start(shown.is_absolute())
            .map_err(|e| WalkError::Io("open directory", shown.to_path_buf(), e))?;
        let mut so_far = PathBuf::new();
        let comps: Vec<Component<'_>> = shown.components().collect();
        let last_normal = comps
            .iter()
            .rposition(|c| matches!(c, Component::Normal(_)));
        for (i, c) in comps.iter().enumerate() {
            so_far.push(c.as_os_str());
            let name = match c {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
                Component::ParentDir => OsStr::new(".."),
                Component::Normal(n) => n,
            };
            let io_err = |op: &'static str, e: io::Error| WalkError::Io(op, so_far.clone(), e);
            let cname = cstr(name).map_err(|e| io_err("open directory", e))?;
            // Read access only where it is needed: the directory itself (fsync).
            let readable = Some(i) == last_normal || i + 1 == comps.len();
            let opened = match open_child_dir(&cur, &cname, readable) {
                Err(e) if create && errno(&e) == libc::ENOENT => {
                    // SAFETY: valid dirfd and C string.
                    let rc = unsafe { libc::mkdirat(cur.as_raw_fd(), cname.as_ptr(), 0o777) };
                    if rc != 0 {
                        let e = io::Error::last_os_error();
                        if errno(&e) != libc::EEXIST {
                            return Err(io_err("create directory", e));
                        }
                    }
                    open_child_dir(&cur, &cname, readable)
                }
                r => r,
            };
            cur = match opened {
                Ok(f) => f,
                Err(e) if matches!(errno(&e), libc::ELOOP | libc::ENOTDIR) => {
                    if is_symlink_at(&cur, &cname) {
                        return Err(WalkError::Symlink(so_far));
                    }
                    return Err(WalkError::NotDir(so_far, e));
                }
                Err(e) if errno(&e) == libc::ENOENT && how == Walk::Check => return Ok(None),
                Err(e) => return Err(io_err("open directory", e)),
            };
        }
        Ok(Some(Self {
            file: cur,
            path: shown.to_path_buf(),
        }))
    }

    /// The path the directory was named by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn name(name: &OsStr) -> io::Result<CString> {
        if name.is_empty() || name.as_bytes().contains(&b'/') || name == ".." || name == "." {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        cstr(name)
    }

    /// Create the file `name` in this directory exclusively (`O_CREAT | O_EXCL`, so never
    /// an existing file and never through a symlink) for writing, with permission bits
    /// `mode` (before the umask).
    pub fn create_file(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let c = Self::name(name)?;
        // SAFETY: valid dirfd and C string.
        let fd = unsafe {
            libc::openat(
                self.file.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode,
            )
        };
        from_fd(fd)
    }

    /// Open the file `name` of this directory for reading and appending (created with
    /// `mode` if missing and `create`), never through a symlink.
    pub fn open_append(&self, name: &OsStr, mode: u32, create: bool) -> io::Result<File> {
        let c = Self::name(name)?;
        let creat = if create { libc::O_CREAT } else { 0 };
        // SAFETY: valid dirfd and C string.
        let fd = unsafe {
            libc::openat(
                self.file.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDWR | libc::O_APPEND | creat | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode,
            )
        };
        from_fd(fd)
    }

    /// Open the existing file `name` of this directory for reading and writing without
    /// truncating it (created if missing), never through a symlink: lock files.
    pub fn open_rw(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let c = Self::name(name)?;
        // SAFETY: valid dirfd and C string.
        let fd = unsafe {
            libc::openat(
                self.file.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode,
            )
        };
        from_fd(fd)
    }

    /// `mkdirat`: create the directory `name` here (an error if anything is there).
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let c = Self::name(name)?;
        // SAFETY: valid dirfd and C string.
        let rc = unsafe { libc::mkdirat(self.file.as_raw_fd(), c.as_ptr(), mode) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `renameat`: `from` over `to`, both in this directory (replaces `to`, a symlink
    /// included, without following it).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (f, t) = (Self::name(from)?, Self::name(to)?);
        let fd = self.file.as_raw_fd();
        // SAFETY: valid dirfds and C strings.
        let rc = unsafe { libc::renameat(fd, f.as_ptr(), fd, t.as_ptr()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `linkat`: a new name `to` for `from` (fails if `to` exists).
    pub fn link(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (f, t) = (Self::name(from)?, Self::name(to)?);
        let fd = self.file.as_raw_fd();
        // SAFETY: valid dirfds and C strings.
        let rc = unsafe { libc::linkat(fd, f.as_ptr(), fd, t.as_ptr(), 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `unlinkat`: remove the file (or symlink) `name`, or the empty directory with `dir`.
    pub fn remove(&self, name: &OsStr, dir: bool) -> io::Result<()> {
        let c = Self::name(name)?;
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: valid dirfd and C string.
        let rc = unsafe { libc::unlinkat(self.file.as_raw_fd(), c.as_ptr(), flags) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `fchmodat` of `name` (never through a symlink: a symlink there is an error).
    pub fn chmod(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let c = Self::name(name)?;
        if is_symlink_at(&self.file, &c) {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        // SAFETY: valid dirfd and C string.
        let rc = unsafe { libc::fchmodat(self.file.as_raw_fd(), c.as_ptr(), mode, 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `fsync` the directory, so entries created or renamed in it are durable.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| Error::io("fsync directory", &self.path, e))
    }
}

/// `struct open_how` of `openat2(2)` (libc's is `non_exhaustive`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Open `rel` (a `/`-separated relative path) beneath the directory `dir` for reading,
/// refusing any symlink on the way and any escape from `dir`: `openat2` with
/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (`O_NOFOLLOW`, `O_NONBLOCK` so a FIFO cannot hang
/// the open). Where `openat2` does not exist (Linux < 5.6), the same check component by
/// component. Reading evidence does not touch it: `O_NOATIME` where allowed (the file's
/// owner or root), so a check does not dirty every inode it reads.
pub fn open_beneath(dir: &File, rel: &str) -> io::Result<File> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static NOATIME_DENIED: AtomicBool = AtomicBool::new(false);
    let plain =
        libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK;
    if !NOATIME_DENIED.load(Ordering::Relaxed) {
        match open_beneath_flags(dir, rel, plain | libc::O_NOATIME) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                NOATIME_DENIED.store(true, Ordering::Relaxed);
            }
            r => return r,
        }
    }
    open_beneath_flags(dir, rel, plain)
}

fn open_beneath_flags(dir: &File, rel: &str, flags: libc::c_int) -> io::Result<File> {
    let c = CString::new(rel).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let how = OpenHow {
        flags: u64::try_from(flags).unwrap_or(0),
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
    };
    // SAFETY: openat2 with a valid dirfd, C string and a correctly sized open_how.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &raw const how,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if rc >= 0 {
        let fd = i32::try_from(rc).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        return from_fd(fd);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOSYS) {
        return Err(err);
    }
    // No openat2: walk the components, each without following a symlink.
    let parts: Vec<&str> = rel.split('/').collect();
    if rel.starts_with('/')
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    let mut cur = dir.try_clone()?;
    for (i, p) in parts.iter().enumerate() {
        let cname = CString::new(*p).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        if i + 1 == parts.len() {
            // SAFETY: valid dirfd and C string.
            let fd = unsafe { libc::openat(cur.as_raw_fd(), cname.as_ptr(), flags) };
            return from_fd(fd);
        }
        cur = open_child_dir(&cur, &cname, false)?;
    }
    Err(io::Error::from(io::ErrorKind::InvalidInput))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symlink_anywhere_on_the_way_is_refused_and_nothing_is_created() {
        let t = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a")).unwrap();
        symlink(elsewhere.path(), t.path().join("a/link")).unwrap();
        let e = Dir::create(&t.path().join("a/link/b/c")).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Usage, "{e}");
        assert_eq!(e.path(), Some(t.path().join("a/link").as_path()));
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
        // A real path works and is created.
        let d = Dir::create(&t.path().join("a/real/b")).unwrap();
        assert!(t.path().join("a/real/b").is_dir());
        d.create_file(OsStr::new("f"), 0o644).unwrap();
        assert!(d.create_file(OsStr::new("f"), 0o644).is_err(), "exclusive");
        // `..` after a real directory is fine; after a link it is refused.
        assert!(Dir::open(&t.path().join("a/real/..")).is_ok());
        assert!(Dir::open(&t.path().join("a/link/..")).is_err());
        // A file in the way.
        std::fs::write(t.path().join("file"), b"x").unwrap();
        let e = Dir::create(&t.path().join("file/x")).unwrap_err();
        assert!(e.message().contains("not a directory"), "{e}");
    }

    #[test]
    fn beneath_refuses_escapes_and_links() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("b/sub")).unwrap();
        std::fs::write(t.path().join("b/sub/f"), b"x").unwrap();
        std::fs::write(t.path().join("outside"), b"x").unwrap();
        symlink("../outside", t.path().join("b/l")).unwrap();
        symlink("sub", t.path().join("b/ld")).unwrap();
        let d = File::open(t.path().join("b")).unwrap();
        assert!(open_beneath(&d, "sub/f").is_ok());
        for bad in ["../outside", "l", "ld/f", "/etc/hostname"] {
            assert!(open_beneath(&d, bad).is_err(), "{bad}");
        }
    }
}
