//! Path normalization the way the kernel walks a path: `.` and `..` per component, every
//! symbolic link followed (the final one only for operations that follow it), components
//! that do not exist appended as written. The oracle judges the canonical path; the
//! compiler resolves rule paths the same way (Landlock rules attach to the inode the path
//! reaches, [`inode_key`]).
//!
//! The oracle runs in the runner, not in the child, so per-process paths are resolved *as
//! the child sees them* ([`resolve_as_child`]): `/proc/self` and `/proc/thread-self` (also
//! reached through `/dev/fd` and `/dev/std*`) name the child's own `/proc/<pid>`, written
//! [`CHILD_PROC`] (no rule can name that directory, so only rules on `/proc` or above
//! decide), `/proc/self/cwd` is the child's working directory and `/proc/self/root` is `/`.
//! What cannot be resolved statically (`exe`, `fd/<n>`, `ns/...`, `map_files/...`) is
//! reported as such; lint refuses those targets (NX220).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Maximum symlinks followed in one resolution (the kernel's limit is 40).
const MAX_LINKS: u32 = 40;

/// The child's own `/proc/<pid>` directory in a canonical path resolved for a child (its
/// pid is not known before it runs; no rule can name this directory).
pub const CHILD_PROC: &str = "/proc/<child>";

/// A path and what it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The path as requested (absolute).
    pub requested: PathBuf,
    /// The canonical path.
    pub canonical: PathBuf,
    /// The requested path itself is a symbolic link.
    pub is_symlink: bool,
    /// The canonical path exists.
    pub exists: bool,
    /// How a per-process path was resolved for the child, or why it could not be.
    pub note: Option<String>,
}

/// Resolve `path` (made absolute against `base` if relative) in the calling process. With
/// `follow_final`, a final symbolic link is followed (open, exec, truncate); without, only
/// the parent is resolved (unlink, rename, readlink, mkdir of the final name).
pub fn resolve(path: &Path, base: &Path, follow_final: bool) -> Resolution {
    resolve_with(path, base, follow_final, None)
}

/// Resolve `path` as a child whose working directory is `cwd` sees it (see the module
/// doc): `/proc/self` and `/proc/thread-self` are the child's, not the caller's.
pub fn resolve_as_child(path: &Path, cwd: &Path, follow_final: bool) -> Resolution {
    resolve_with(path, cwd, follow_final, Some(cwd))
}

fn resolve_with(
    path: &Path,
    base: &Path,
    follow_final: bool,
    child_cwd: Option<&Path>,
) -> Resolution {
    let requested = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let mut w = Walk {
        links: 0,
        child_cwd,
        note: None,
        in_child_proc: false,
        depth: 0,
        final_entry: None,
        gave_up: false,
    };
    let canonical = w.walk(&requested, follow_final);
    // The requested entry itself, as the walk met it: its final component looked up in
    // its resolved parent, which is the entry `lstat(requested)` reaches (the kernel
    // resolves the parent through the same links) — unless the path ends in a way the
    // walk normalizes (`/`, `/.`, `..`), which `final_entry` leaves unset.
    let requested_entry = match w.final_entry.take() {
        Some((name, answer)) if !w.gave_up && ends_with_name(&requested, &name) => answer,
        _ => lstat(&requested),
    };
    let (is_symlink, exists) = if w.in_child_proc {
        // Judged from the caller's own `/proc/self` (the same layout).
        let own = Path::new("/proc/self").join(
            canonical
                .strip_prefix(CHILD_PROC)
                .unwrap_or_else(|_| Path::new("")),
        );
        (false, lstat(&own).is_some())
    } else {
        (
            requested_entry.is_some_and(|m| m.file_type().is_symlink()),
            lstat(&canonical).is_some(),
        )
    };
    Resolution {
        requested,
        canonical,
        is_symlink,
        exists,
        note: w.note,
    }
}

/// True if `path`, as written, ends with the component `name` (not with `/`, `/.` or `..`,
/// which `Path::components` normalizes away or which name another entry).
fn ends_with_name(path: &Path, name: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (p, n) = (path.as_os_str().as_bytes(), name.as_bytes());
    !n.is_empty() && p.len() > n.len() && p.ends_with(n) && p[p.len() - n.len() - 1] == b'/'
}

/// One resolution in progress.
struct Walk<'a> {
    links: u32,
    /// Resolving for a child with this working directory.
    child_cwd: Option<&'a Path>,
    note: Option<String>,
    /// The path has entered [`CHILD_PROC`]: components are appended as written.
    in_child_proc: bool,
    /// Nesting of [`Walk::walk`] (1 in the requested path's own walk, more in a link's).
    depth: u32,
    /// The requested path's final component and what `lstat` answered for it, when the
    /// walk looked it up in its resolved parent.
    final_entry: Option<(std::ffi::OsString, Option<std::fs::Metadata>)>,
    /// A link was left unresolved (unreadable, or past [`MAX_LINKS`]): the path as written
    /// is no longer what the kernel would walk, so `final_entry` is not used.
    gave_up: bool,
}

impl Walk<'_> {
    fn walk(&mut self, path: &Path, follow_final: bool) -> PathBuf {
        self.depth += 1;
        let out = self.walk_in(path, follow_final);
        self.depth -= 1;
        out
    }

    fn walk_in(&mut self, path: &Path, follow_final: bool) -> PathBuf {
        let comps: Vec<Component<'_>> = path.components().collect();
        let mut cur = PathBuf::from("/");
        let mut missing = false;
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            match c {
                Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
                Component::ParentDir => {
                    if cur == Path::new(CHILD_PROC) {
                        self.in_child_proc = false;
                    }
                    cur.pop();
                }
                Component::Normal(name) => {
                    if self.child_cwd.is_some()
                        && !missing
                        && let Some(next) = self.child_proc(&cur, name, last, follow_final)
                    {
                        cur = next;
                        continue;
                    }
                    let next = cur.join(name);
                    if missing || self.in_child_proc {
                        cur = next;
                        continue;
                    }
                    let entry = lstat(&next);
                    if last && self.depth == 1 {
                        self.final_entry = Some((name.to_os_string(), entry.clone()));
                    }
                    match entry {
                        Some(m) if m.file_type().is_symlink() && (!last || follow_final) => {
                            self.links += 1;
                            let Some(target) = read_link(&next) else {
                                self.gave_up = true;
                                cur = next;
                                continue;
                            };
                            if self.links > MAX_LINKS {
                                self.gave_up = true;
                                cur = next;
                                continue;
                            }
                            let joined = if target.is_absolute() {
                                target
                            } else {
                                cur.join(target)
                            };
                            cur = self.walk(&joined, true);
                            if !self.in_child_proc && lstat(&cur).is_none() {
                                missing = true;
                            }
                        }
                        Some(_) => cur = next,
                        None => {
                            missing = true;
                            cur = next;
                        }
                    }
                }
            }
        }
        cur
    }

    /// The child's view of a per-process component, if `name` under `cur` is one.
    fn child_proc(
        &mut self,
        cur: &Path,
        name: &std::ffi::OsStr,
        last: bool,
        follow_final: bool,
    ) -> Option<PathBuf> {
        let name = name.to_str()?;
        if cur == Path::new("/proc") && !self.in_child_proc {
            if last && !follow_final {
                return None;
            }
            let dir = match name {
                "self" => PathBuf::from(CHILD_PROC),
                "thread-self" => Path::new(CHILD_PROC).join("task/<child>"),
                _ => return None,
            };
            self.in_child_proc = true;
            self.note.get_or_insert_with(|| {
                format!("`/proc/{name}` is resolved as the child sees it: its own `{CHILD_PROC}`, which only rules on `/proc` or above cover")
            });
            return Some(dir);
        }
        if !self.in_child_proc {
            return None;
        }
        let pid_dir =
            cur == Path::new(CHILD_PROC) || cur == Path::new(CHILD_PROC).join("task/<child>");
        if !pid_dir || (last && !follow_final) {
            if cur.starts_with(Path::new(CHILD_PROC).join("fd"))
                || cur.starts_with(Path::new(CHILD_PROC).join("ns"))
                || cur.starts_with(Path::new(CHILD_PROC).join("map_files"))
            {
                self.unresolvable(cur);
            }
            return None;
        }
        match name {
            "cwd" => {
                self.in_child_proc = false;
                self.child_cwd.map(Path::to_path_buf)
            }
            "root" => {
                self.in_child_proc = false;
                Some(PathBuf::from("/"))
            }
            "exe" => {
                self.unresolvable(&cur.join(name));
                None
            }
            _ => None,
        }
    }

    fn unresolvable(&mut self, at: &Path) {
        self.note = Some(format!(
            "`{}` is a per-process link the oracle cannot resolve before the child runs; it is judged as a path under `/proc` (lint refuses such targets, NX220)",
            at.display()
        ));
    }
}

// ---------------------------------------------------------------------------------------
// One view of the tree per prediction
// ---------------------------------------------------------------------------------------

/// The lookups made so far in the current [`one_view`] scope of this thread.
#[derive(Default)]
struct View {
    lstat: HashMap<PathBuf, Option<std::fs::Metadata>>,
    stat: HashMap<PathBuf, Option<std::fs::Metadata>>,
    link: HashMap<PathBuf, Option<PathBuf>>,
}

thread_local! {
    static VIEW: RefCell<Option<View>> = const { RefCell::new(None) };
}

/// Run `f` with every lookup of [`lstat`], [`stat`] and [`read_link`] made once per path:
/// the first answer for a path is the answer for that path until `f` returns (a nested
/// scope shares the outer one). The oracle judges one prediction in one such scope.
///
/// Why that is the answer a lookup without it gives: nothing inside the scope writes to
/// the tree (the oracle only reads), so a second lookup of the same path within it can
/// only differ if another process changed that entry in the microseconds between the two
/// — a change during the prediction, against which neither answer is "the" tree's; the
/// scope gives each path one answer, so the prediction is made against one consistent
/// view of every path it reads (the uncached code could see a path exist in one check
/// and not in the next). Nothing is kept past the scope: the next prediction reads the
/// tree afresh, so whatever children or anything else changed between two predictions
/// is seen. A `stat` (following a final symlink) of a path whose `lstat` is known not to
/// be a symlink is that `lstat`'s answer: both resolve every earlier component alike and
/// differ only in a final symlink.
///
/// The one answer kept past a scope is the oracle's memo of what running a program meets
/// (`sandbox::oracle`'s program facts: the program, its interpreters and libraries
/// resolved, their ELF headers read), and it answers what reading afresh would: it is
/// reused only after every lookup it was computed from ([`recording`]) answers the
/// identical identity again, one `statx` each ([`crate::util::fsmemo`] argues why that
/// means an identical answer, and where the race left is the one reading afresh has).
pub fn one_view<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            if self.0 {
                VIEW.with(|v| *v.borrow_mut() = None);
            }
        }
    }
    let outer = VIEW.with(|v| {
        let mut v = v.borrow_mut();
        let outer = v.is_none();
        if outer {
            *v = Some(View::default());
        }
        outer
    });
    let _reset = Reset(outer);
    f()
}

/// The memo of the current scope: `get` a known answer, else compute and `put` it.
fn viewed<T: Clone>(
    path: &Path,
    get: impl Fn(&View) -> Option<Option<T>>,
    compute: impl FnOnce() -> Option<T>,
    put: impl FnOnce(&mut View, PathBuf, Option<T>),
) -> Option<T> {
    if let Some(known) = VIEW.with(|v| v.borrow().as_ref().and_then(&get)) {
        return known;
    }
    let answer = compute();
    VIEW.with(|v| {
        if let Some(view) = v.borrow_mut().as_mut() {
            put(view, path.to_path_buf(), answer.clone());
        }
    });
    answer
}

/// `symlink_metadata(path)` (the entry itself), once per path in a [`one_view`] scope.
pub fn lstat(path: &Path) -> Option<std::fs::Metadata> {
    let answer = viewed(
        path,
        |v| v.lstat.get(path).cloned(),
        || std::fs::symlink_metadata(path).ok(),
        |v, p, a| {
            v.lstat.insert(p, a);
        },
    );
    record(path, false, answer.as_ref().map(Ident::of));
    answer
}

/// `metadata(path)` (a final symlink followed), once per path in a [`one_view`] scope.
pub fn stat(path: &Path) -> Option<std::fs::Metadata> {
    let answer = viewed(
        path,
        |v| {
            v.stat.get(path).cloned().or_else(|| {
                v.lstat
                    .get(path)
                    .filter(|m| m.as_ref().is_none_or(|m| !m.file_type().is_symlink()))
                    .cloned()
            })
        },
        || std::fs::metadata(path).ok(),
        |v, p, a| {
            v.stat.insert(p, a);
        },
    );
    record(path, true, answer.as_ref().map(Ident::of));
    answer
}

/// `read_link(path)`, once per path in a [`one_view`] scope.
pub fn read_link(path: &Path) -> Option<PathBuf> {
    RECORD.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            rec.links.push(path.to_path_buf());
        }
    });
    viewed(
        path,
        |v| v.link.get(path).cloned(),
        || std::fs::read_link(path).ok(),
        |v, p, a| {
            v.link.insert(p, a);
        },
    )
}

// ---------------------------------------------------------------------------------------
// Identities of what a computation looked up, to reuse its answer while they hold
// ---------------------------------------------------------------------------------------

/// What `statx` reports of one inode that tells one state of it from another: which
/// inode (device, inode number, birth time where the filesystem keeps one, the mount it
/// was reached through) and its state (type and permissions, owner, link count, size,
/// modification and change times to the nanosecond). See [`recording`] for why an equal
/// identity means an equal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident {
    /// `st_dev` (as `std` reports it: `makedev(major, minor)`).
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// File type and permission bits.
    pub mode: u32,
    /// Hard links.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, i64),
    /// Status change time (seconds, nanoseconds).
    pub ctime: (i64, i64),
    /// Birth time, where `statx` reports one (not from a `std::fs::Metadata`).
    pub btime: Option<(i64, i64)>,
    /// The mount id (`STATX_MNT_ID`; not from a `std::fs::Metadata`).
    pub mnt_id: Option<u64>,
}

impl Ident {
    /// The identity in a `std::fs::Metadata` (no birth time, no mount id).
    pub fn of(m: &std::fs::Metadata) -> Ident {
        use std::os::unix::fs::MetadataExt;
        Ident {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            btime: None,
            mnt_id: None,
        }
    }

    /// Equal in every field a `std::fs::Metadata` carries.
    pub fn same_state(&self, other: &Ident) -> bool {
        Ident {
            btime: None,
            mnt_id: None,
            ..*self
        } == Ident {
            btime: None,
            mnt_id: None,
            ..*other
        }
    }

    /// A symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
}

/// The identity of `path` by one `statx` (`follow`: a final symlink followed), with the
/// birth time and mount id where the kernel reports them; `None` for any error (no entry,
/// no permission, …), as [`lstat`] and [`stat`] answer `None`.
pub fn ident(path: &Path, follow: bool) -> Option<Ident> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    statx_ident(
        &c,
        libc::AT_FDCWD,
        if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW },
    )
}

/// The identity of the open file `f` (`statx` on the descriptor: no path walk).
pub fn ident_of_file(f: &std::fs::File) -> Option<Ident> {
    use std::os::fd::AsRawFd;
    statx_ident(c"", f.as_raw_fd(), libc::AT_EMPTY_PATH)
}

fn statx_ident(c: &std::ffi::CStr, dirfd: i32, flags: i32) -> Option<Ident> {
    // SAFETY: zeroed plain data filled by statx.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string, descriptor or AT_FDCWD, and out pointer.
    let rc = unsafe {
        libc::statx(
            dirfd,
            c.as_ptr(),
            flags,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME | libc::STATX_MNT_ID,
            &raw mut st,
        )
    };
    if rc != 0 {
        return None;
    }
    let ts = |t: libc::statx_timestamp| (t.tv_sec, i64::from(t.tv_nsec));
    Some(Ident {
        dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
        mode: u32::from(st.stx_mode),
        nlink: u64::from(st.stx_nlink),
        uid: st.stx_uid,
        gid: st.stx_gid,
        size: st.stx_size,
        mtime: ts(st.stx_mtime),
        ctime: ts(st.stx_ctime),
        btime: (st.stx_mask & libc::STATX_BTIME != 0).then(|| ts(st.stx_btime)),
        mnt_id: (st.stx_mask & libc::STATX_MNT_ID != 0).then_some(st.stx_mnt_id),
    })
}

/// Every lookup a computation made through [`lstat`], [`stat`] and [`read_link`] (and the
/// files whose contents it read, [`note_open`]), from [`recording`].
#[derive(Debug, Default)]
pub struct Record {
    /// (path, a final symlink followed) → the identity answered (`None`: no entry).
    pub seen: std::collections::BTreeMap<(PathBuf, bool), Option<Ident>>,
    /// Paths whose symlink target was read.
    pub links: Vec<PathBuf>,
    /// One lookup answered two different identities in the computation (something
    /// changed during it), or an opened file could not be identified.
    pub inconsistent: bool,
}

thread_local! {
    static RECORD: RefCell<Option<Record>> = const { RefCell::new(None) };
}

/// Run `f`, recording every lookup it makes on this thread ([`Record`]); not nested (an
/// inner call records into its own record).
pub fn recording<R>(f: impl FnOnce() -> R) -> (R, Record) {
    struct Restore(Option<Record>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            RECORD.with(|r| *r.borrow_mut() = outer);
        }
    }
    let outer = RECORD.with(|r| r.borrow_mut().replace(Record::default()));
    let restore = Restore(outer);
    let out = f();
    let rec = RECORD.with(|r| r.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (out, rec)
}

fn record(path: &Path, follow: bool, answer: Option<Ident>) {
    RECORD.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            match rec.seen.get(&(path.to_path_buf(), follow)) {
                Some(known) => {
                    let same = match (known, &answer) {
                        (None, None) => true,
                        (Some(a), Some(b)) => a.same_state(b),
                        _ => false,
                    };
                    rec.inconsistent |= !same;
                }
                None => {
                    rec.seen.insert((path.to_path_buf(), follow), answer);
                }
            }
        }
    });
}

/// Note that the contents of `f`, just opened at `path`, are about to be read: in a
/// [`recording`], its identity (taken from the descriptor *before* any read, so a write
/// after it changes what a later check sees) is recorded as what `stat(path)` answered.
pub fn note_open(path: &Path, f: &std::fs::File) {
    let recording = RECORD.with(|r| r.borrow().is_some());
    if !recording {
        return;
    }
    match ident_of_file(f) {
        Some(id) => record(path, true, Some(id)),
        None => RECORD.with(|r| {
            if let Some(rec) = r.borrow_mut().as_mut() {
                rec.inconsistent = true;
            }
        }),
    }
}

/// The inode a path reaches (device and inode number, following a final symlink): the
/// object a Landlock rule attaches to.
pub fn inode_key(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The inodes of `canonical` and each of its ancestors (itself first, `/` last), as the
/// kernel's walk from a file up to the root meets them; `None` where a component does not
/// exist (a file about to be created, the child's [`CHILD_PROC`]).
pub fn ancestry(canonical: &Path) -> Vec<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    canonical
        .ancestors()
        .map(|a| lstat(a).map(|m| (m.dev(), m.ino())))
        .collect()
}

/// The id of the mount `path` is on (`statx` `STATX_MNT_ID`, not following a final
/// symlink); renames between two mounts fail with EXDEV before any LSM is asked.
pub fn mount_id(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: zeroed plain data filled by statx.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out pointer.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &raw mut st,
        )
    };
    (rc == 0 && st.stx_mask & libc::STATX_MNT_ID != 0).then_some(st.stx_mnt_id)
}

/// True if `path` is `ancestor` or lies beneath it (component-wise).
pub fn is_beneath(path: &Path, ancestor: &Path) -> bool {
    path.starts_with(ancestor)
}

/// The canonical parent directory of an operation that acts on the final name (create,
/// remove, rename): the parent resolved with every link followed.
pub fn parent_of(canonical: &Path) -> PathBuf {
    canonical
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_links_and_dotdot_like_the_kernel() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/f"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("real/f", root.join("flink")).unwrap();

        let r = resolve(&root.join("link/f"), &root, true);
        assert_eq!(r.canonical, root.join("real/f"));
        assert!(r.exists);
        assert!(!r.is_symlink);

        let r = resolve(&root.join("flink"), &root, true);
        assert_eq!(r.canonical, root.join("real/f"));
        assert!(r.is_symlink);

        let r = resolve(&root.join("flink"), &root, false);
        assert_eq!(r.canonical, root.join("flink"));

        let r = resolve(&root.join("link/../real/./new/child"), &root, true);
        assert_eq!(r.canonical, root.join("real/new/child"));
        assert!(!r.exists);

        // `..` after a followed link goes up from the link's target, and `//` is one `/`.
        std::fs::create_dir_all(root.join("x/y")).unwrap();
        std::os::unix::fs::symlink(root.join("x/y"), root.join("real/deep")).unwrap();
        let r = resolve(&root.join("real//deep/../f2"), &root, true);
        assert_eq!(r.canonical, root.join("x/f2"));
        assert!(ancestry(&root.join("real/f"))[0].is_some());
        assert!(ancestry(&root.join("real/nope"))[0].is_none());
        assert_eq!(
            ancestry(&root.join("real/f")).len(),
            root.components().count() + 2
        );
        assert!(mount_id(&root).is_some());

        assert!(is_beneath(&root.join("real/f"), &root.join("real")));
        assert!(!is_beneath(&root.join("realx"), &root.join("real")));
    }

    #[test]
    fn per_process_paths_are_the_childs() {
        let cwd = tempfile::tempdir().unwrap();
        let cwd = std::fs::canonicalize(cwd.path()).unwrap();
        let r = resolve_as_child(Path::new("/proc/self/status"), &cwd, true);
        assert_eq!(r.canonical, Path::new(CHILD_PROC).join("status"));
        assert!(r.exists);
        assert!(r.note.is_some());
        let r = resolve_as_child(Path::new("/proc/thread-self/comm"), &cwd, true);
        assert_eq!(r.canonical, Path::new(CHILD_PROC).join("task/<child>/comm"));
        std::fs::write(cwd.join("f"), "x").unwrap();
        let r = resolve_as_child(Path::new("/proc/self/cwd/f"), &cwd, true);
        assert_eq!(r.canonical, cwd.join("f"));
        let r = resolve_as_child(Path::new("/proc/self/root/etc/hostname"), &cwd, true);
        assert_eq!(r.canonical, Path::new("/etc/hostname"));
        let r = resolve_as_child(Path::new("/proc/self/../1/status"), &cwd, true);
        assert_eq!(r.canonical, Path::new("/proc/1/status"));
        // `/dev/fd` links to `/proc/self/fd`: the child's descriptors, not resolvable.
        let r = resolve_as_child(Path::new("/dev/fd/0"), &cwd, true);
        assert!(r.canonical.starts_with(CHILD_PROC), "{r:?}");
        assert!(
            r.note.as_deref().unwrap_or("").contains("cannot resolve"),
            "{r:?}"
        );
        // The caller's own view is unchanged.
        let own = resolve(Path::new("/proc/self/status"), &cwd, true);
        assert!(!own.canonical.starts_with(CHILD_PROC));
    }
}
