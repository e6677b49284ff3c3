//! A bounded memo of answers computed from the filesystem, each reused only after every
//! lookup it was computed from is checked again and found unchanged — so that reusing it
//! answers what computing it afresh would (the oracle's program facts,
//! `sandbox::oracle`, use it).
//!
//! How: the answer is computed in a [`paths::recording`], which notes the identity
//! ([`paths::Ident`]: device, inode, birth time, mount id, mode, owner, link count, size,
//! mtime and ctime to the nanosecond) of everything looked up — every `lstat` and `stat`
//! answer (`None`, no entry, included), every symlink whose target was read, every file
//! whose contents were read (identified from the open descriptor *before* reading). The
//! answer is kept ([`FsMemo::insert`]) only if [`seal`] accepts the record; it is reused
//! ([`FsMemo::get`]) only if one `statx` per recorded path (no open, no read, no
//! readlink) answers the identical identity, or the identical "no entry".
//!
//! Why an unchanged identity means an unchanged answer, for each thing read:
//! - *which entry a path reaches* (the walk, every component of it recorded): a rename,
//!   a replacement, a delete and recreate, a mount over a path or a directory above it
//!   makes the path reach another inode (another device, inode number or mount id) — or
//!   the same inode number reused, which is a new inode created after the recording,
//!   whose ctime (set at creation, as every change sets it) differs (see the timestamp
//!   argument below); a bind mount of a directory over itself changes the mount id (its
//!   inodes, the only thing Landlock rules attach to, are the same);
//! - *a symlink's target*: a symlink cannot be changed in place (no system call rewrites
//!   one); retargeting it is an unlink and a new symlink, a new inode (above);
//! - *a file's contents* (the ELF headers, a `#!` line): every write, truncate, copy or
//!   clone into a file updates its mtime and ctime; a chmod/chown/xattr change updates
//!   its ctime. `touch -d` sets mtime to anything, but sets ctime to *now*; ctime itself
//!   cannot be set.
//!
//! The timestamp argument ("a change after the recording gets a ctime different from the
//! recorded one"): [`seal`] keeps an answer only if every recorded inode's ctime is older
//! than [`SETTLED`] before the recording began (the "racily clean" rule of git's index).
//! A change after the recording began is stamped with the (coarse) clock of that moment,
//! truncated to the filesystem's granularity, which is then later than that ctime even on
//! filesystems without multigrain timestamps (before Linux 6.13, or not opted in: the
//! kernel stamps changes from a clock updated once per tick) or with one-second
//! timestamps — so two changes in one tick can never hide behind one recorded ctime. That
//! holds unless the realtime clock is stepped back: a [`ClockWatch`] (`timerfd` with
//! `TFD_TIMER_CANCEL_ON_SET`) notices any setting of the clock, and the memo is emptied.
//! Only filesystems that keep these times are trusted ([`trusted_fs`]: ext2/3/4, XFS,
//! Btrfs, tmpfs, F2FS, overlayfs, squashfs); anything else (NFS and other network or FUSE
//! filesystems whose `statx` may answer from a cache, procfs and sysfs whose symlinks
//! change target without a new inode) is never memoized: it is read afresh every time.
//!
//! Where it is not the same, said plainly:
//! - a change *during* the computation or during the check — the race reading afresh has
//!   too (the answer is then either the old or the new tree's, as a fresh reading's is);
//!   a recording that saw two answers for one lookup is not kept;
//! - a write through a shared writable `mmap` of a file whose page is already dirty does
//!   not update mtime/ctime until the page is written back and written again (the
//!   kernel stamps on the write fault); a fresh read would see those bytes at once. The
//!   memo would keep the ELF facts it read before such a write until the next stamp;
//! - overlayfs trusts that its lower layers are not changed while it is mounted (the
//!   overlayfs documentation calls that undefined behaviour);
//! - writes below the filesystem (to the block device) are seen by neither.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::paths::{self, Ident, Record};

/// How long before the recording began every recorded inode must have last changed: more
/// than a clock tick plus the coarsest timestamp granularity of a trusted filesystem (one
/// second; FAT's two seconds are not trusted anyway).
pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(3);

/// One recorded lookup: the path, whether a final symlink is followed, what it answered.
pub type Check = (PathBuf, bool, Option<Ident>);

/// The checks that make a recorded answer reusable, or `None` if it must not be kept:
/// the record saw two answers for one lookup; a path is relative (it depends on the
/// working directory, which no check sees); a symlink was read without its `lstat`
/// recorded; an inode changed less than `settled` ([`SETTLED`]) before `began` (or
/// after); an inode is
/// on a filesystem [`trusted_fs`] does not trust; or a lookup answers differently now (the
/// identities kept are the ones read now by `statx`, equal to what the computation saw in
/// every field it could see, with the birth time and mount id added).
///
/// A `stat` of a path whose `lstat` is recorded as anything but a symlink is not checked
/// separately: the same walk reaches the same entry, so the `lstat` check covers it.
pub fn seal(
    rec: &Record,
    began: std::time::SystemTime,
    settled: std::time::Duration,
) -> Option<Vec<Check>> {
    if rec.inconsistent {
        return None;
    }
    let settled_before = began.checked_sub(settled)?;
    let settled_before = settled_before.duration_since(std::time::UNIX_EPOCH).ok()?;
    let limit = (
        i64::try_from(settled_before.as_secs()).ok()?,
        i64::from(settled_before.subsec_nanos()),
    );
    for link in &rec.links {
        match rec.seen.get(&(link.clone(), false)) {
            Some(Some(id)) if id.is_symlink() => {}
            _ => return None,
        }
    }
    if rec.seen.keys().any(|(p, _)| !p.is_absolute()) {
        return None;
    }
    // What the computation saw already tells an unsettled inode: no system call for it
    // (a program its run just wrote is read afresh every time, at no extra cost).
    if rec.seen.values().flatten().any(|id| id.ctime >= limit) {
        return None;
    }
    let mut checks = Vec::with_capacity(rec.seen.len());
    let mut devs: Vec<u64> = Vec::new();
    for ((path, follow), seen) in &rec.seen {
        if *follow
            && let Some(l) = rec.seen.get(&(path.clone(), false))
            && !l.is_some_and(|m| m.is_symlink())
        {
            // The same entry both ways: one check covers both, if both saw the same.
            if !same_answer(l.as_ref(), seen.as_ref()) {
                return None;
            }
            continue;
        }
        let now = paths::ident(path, *follow);
        if !same_answer(seen.as_ref(), now.as_ref()) {
            return None;
        }
        if let Some(id) = &now {
            if id.ctime >= limit {
                return None;
            }
            if !devs.contains(&id.dev) {
                // The filesystem of the entry: itself, or for a symlink its directory.
                let on = if id.is_symlink() {
                    path.parent().unwrap_or(Path::new("/"))
                } else {
                    path.as_path()
                };
                if !trusted_fs(on) {
                    return None;
                }
                devs.push(id.dev);
            }
        }
        checks.push((path.clone(), *follow, now));
    }
    Some(checks)
}

/// The same answer in every field a `std::fs::Metadata` carries.
fn same_answer(a: Option<&Ident>, b: Option<&Ident>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same_state(b),
        _ => false,
    }
}

/// True if every check answers the same identity now (one `statx` each).
pub fn still_valid(checks: &[Check]) -> bool {
    checks
        .iter()
        .all(|(path, follow, id)| paths::ident(path, *follow) == *id)
}

/// True if `path` (a final symlink followed) is on a filesystem whose inodes keep their
/// change times as [`seal`] relies on: ext2/3/4, XFS, Btrfs, tmpfs (and devtmpfs), F2FS,
/// overlayfs, squashfs (read-only).
pub fn trusted_fs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const TRUSTED: [i64; 7] = [
        0xEF53,      // ext2/3/4
        0x5846_5342, // XFS
        0x9123_683E, // Btrfs
        0x0102_1994, // tmpfs
        0xF2F5_2010, // F2FS
        0x794C_7630, // overlayfs
        0x7371_7368, // squashfs
    ];
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: zeroed plain data filled by statfs.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &raw mut st) } != 0 {
        return false;
    }
    #[allow(clippy::useless_conversion)]
    let magic = i64::from(st.f_type);
    TRUSTED.contains(&magic)
}

/// Notices any setting of the realtime clock (a step back would let a later change carry
/// a ctime already recorded): a `timerfd` armed far in the future with
/// `TFD_TIMER_CANCEL_ON_SET`, whose read fails with `ECANCELED` once the clock was set.
#[derive(Debug)]
pub struct ClockWatch(std::os::fd::OwnedFd);

impl ClockWatch {
    /// A watch armed now; `None` if the kernel has none to give.
    pub fn new() -> Option<ClockWatch> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the descriptor is owned below.
        let fd = unsafe {
            libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: a fresh descriptor we own.
        let w = ClockWatch(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        w.arm().then_some(w)
    }

    fn arm(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &raw mut now) };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            // A hundred years ahead: it never fires, it only cancels.
            it_value: libc::timespec {
                tv_sec: now.tv_sec.saturating_add(100 * 365 * 86_400),
                tv_nsec: 0,
            },
        };
        // SAFETY: valid descriptor and pointers.
        let rc = unsafe {
            libc::timerfd_settime(
                self.0.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET,
                &raw const spec,
                std::ptr::null_mut(),
            )
        };
        rc == 0
    }

    /// True if the clock has not been set since the watch was armed. Once false, the
    /// watch is spent: [`FsMemo::begin`] replaces it with a new one (a watch re-armed in
    /// place that failed to arm would answer true for good).
    pub fn unchanged(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 8];
        // SAFETY: valid descriptor and buffer.
        let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
    }
}

/// Answers computed from the filesystem, with their [`Check`]s, for keys `K`: at most
/// `max_entries` and `max_bytes` (as estimated by the caller), the oldest dropped first;
/// per thread (each thread checks in its own view of the mounts).
#[derive(Debug)]
pub struct FsMemo<K, V> {
    entries: VecDeque<(K, Rc<V>, Vec<Check>, usize)>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    clock: Option<ClockWatch>,
    /// [`SETTLED`] (a test sets less, and then waits a clock tick between a recording
    /// and the next change itself).
    pub settled: std::time::Duration,
    /// What the memo did so far.
    pub stats: MemoStats,
}

/// Counts of what a memo did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MemoStats {
    /// Answers reused (every check held).
    pub hits: u64,
    /// Answers dropped because a check failed.
    pub stale: u64,
    /// Answers kept.
    pub kept: u64,
}

impl<K: PartialEq, V> FsMemo<K, V> {
    /// An empty memo with these bounds.
    pub fn new(max_entries: usize, max_bytes: usize) -> FsMemo<K, V> {
        FsMemo {
            entries: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
            clock: None,
            settled: SETTLED,
            stats: MemoStats::default(),
        }
    }

    /// Call before a lookup or a recording: empties the memo if the realtime clock was set
    /// since the last call, and answers whether recording may start (a clock watch is
    /// armed; without one nothing is kept).
    pub fn begin(&mut self) -> bool {
        if self.clock.as_ref().is_some_and(ClockWatch::unchanged) {
            return true;
        }
        // No watch yet, or the clock was set: nothing kept survives, and a new watch (armed
        // from now on) is needed before anything is kept again.
        self.clear();
        self.clock = ClockWatch::new();
        self.clock.is_some()
    }

    /// The answer for `key`, if one was kept and every check still holds (else it is
    /// dropped). `matches` decides which stored key serves `key`.
    pub fn get(&mut self, matches: impl Fn(&K) -> bool) -> Option<Rc<V>> {
        let i = self.entries.iter().position(|(k, ..)| matches(k))?;
        if still_valid(&self.entries[i].2) {
            self.stats.hits += 1;
            return Some(Rc::clone(&self.entries[i].1));
        }
        self.stats.stale += 1;
        if let Some((.., b)) = self.entries.remove(i) {
            self.bytes -= b;
        }
        None
    }

    /// Keep `value` for `key` with its checks; `bytes` is its estimated size (an answer
    /// larger than the whole budget is not kept).
    pub fn insert(&mut self, key: K, value: Rc<V>, checks: Vec<Check>, bytes: usize) {
        let bytes = bytes
            + checks
                .iter()
                .map(|(p, ..)| p.as_os_str().len() + 96)
                .sum::<usize>();
        if bytes > self.max_bytes || self.max_entries == 0 {
            return;
        }
        if let Some(i) = self.entries.iter().position(|(k, ..)| *k == key)
            && let Some((.., b)) = self.entries.remove(i)
        {
            self.bytes -= b;
        }
        while self.entries.len() >= self.max_entries || self.bytes + bytes > self.max_bytes {
            match self.entries.pop_front() {
                Some((.., b)) => self.bytes -= b,
                None => break,
            }
        }
        self.bytes += bytes;
        self.stats.kept += 1;
        self.entries.push_back((key, value, checks, bytes));
    }

    /// Drop everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Entries and estimated bytes held.
    pub fn size(&self) -> (usize, usize) {
        (self.entries.len(), self.bytes)
    }
}

/// A thread's memo, created on first use.
pub fn with_thread_memo<K: 'static, V: 'static, R>(
    cell: &'static std::thread::LocalKey<RefCell<Option<FsMemo<K, V>>>>,
    make: impl FnOnce() -> FsMemo<K, V>,
    f: impl FnOnce(&mut FsMemo<K, V>) -> R,
) -> R {
    cell.with(|c| {
        let mut c = c.borrow_mut();
        f(c.get_or_insert_with(make))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn root_check() -> Vec<Check> {
        vec![(
            PathBuf::from("/"),
            false,
            paths::ident(Path::new("/"), false),
        )]
    }

    #[test]
    fn the_memo_stays_within_its_bounds() {
        let mut m: FsMemo<u32, Vec<u8>> = FsMemo::new(8, 4096);
        for k in 0..100u32 {
            m.insert(k, Rc::new(vec![0; 100]), root_check(), 300);
            let (n, b) = m.size();
            assert!(n <= 8 && b <= 4096, "{n} entries, {b} bytes");
        }
        // The newest kept, the oldest dropped first.
        assert!(m.get(|k| *k == 99).is_some());
        assert!(m.get(|k| *k == 0).is_none());
        // Larger than the whole budget: not kept.
        m.insert(1000, Rc::new(Vec::new()), root_check(), 10_000);
        assert!(m.get(|k| *k == 1000).is_none());
        // A check that no longer holds: dropped, counted stale.
        m.insert(
            2000,
            Rc::new(Vec::new()),
            vec![(PathBuf::from("/"), false, None)],
            10,
        );
        assert!(m.get(|k| *k == 2000).is_none());
        assert_eq!(m.stats.stale, 1);
        assert!(m.get(|k| *k == 2000).is_none());
        assert_eq!(m.stats.stale, 1, "dropped once");
    }

    #[test]
    fn seal_keeps_only_settled_trusted_absolute_records() {
        let later = SystemTime::now() + Duration::from_hours(1);
        // procfs: not trusted, however old.
        let (_, rec) = paths::recording(|| paths::lstat(Path::new("/proc/self/status")));
        assert!(seal(&rec, later, SETTLED).is_none());
        // A file just written: not settled now, settled an hour from now (a trusted fs).
        let tmp = tempfile::tempdir().unwrap();
        let f = std::fs::canonicalize(tmp.path()).unwrap().join("f");
        std::fs::write(&f, "x").unwrap();
        let (_, rec) = paths::recording(|| paths::lstat(&f));
        assert!(seal(&rec, SystemTime::now(), SETTLED).is_none());
        if trusted_fs(&f) {
            let checks = seal(&rec, later, SETTLED).unwrap();
            assert_eq!(checks.len(), 1);
            assert!(still_valid(&checks));
            // A clock tick later (coarse timestamps tell changes a tick apart).
            std::thread::sleep(Duration::from_millis(12));
            std::fs::write(&f, "y").unwrap();
            assert!(!still_valid(&checks), "a rewrite changes the identity");
        }
        // A relative path depends on the working directory: never kept.
        let (_, rec) = paths::recording(|| paths::lstat(Path::new("relative/path")));
        assert!(seal(&rec, later, SETTLED).is_none());
        // Two answers for one lookup: never kept.
        let (_, mut rec) = paths::recording(|| paths::lstat(Path::new("/")));
        rec.inconsistent = true;
        assert!(seal(&rec, later, SETTLED).is_none());
    }

    /// The two tests of the clock watch run one at a time: one sets the clock.
    static CLOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn the_clock_watch_sees_no_setting_by_itself() {
        let _one = CLOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let w = ClockWatch::new().unwrap();
        assert!(w.unchanged());
        assert!(w.unchanged());
    }

    /// Setting the realtime clock (here to what it reads, a step of microseconds; root
    /// only) empties the memo at the next `begin`, every time: the watch that saw the
    /// setting is replaced by one armed afresh, which sees the next setting too.
    #[test]
    fn setting_the_clock_empties_the_memo_each_time() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let _one = CLOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let set_clock = || {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: out pointer, then the same value back.
            unsafe {
                assert_eq!(libc::clock_gettime(libc::CLOCK_REALTIME, &raw mut now), 0);
                assert_eq!(libc::clock_settime(libc::CLOCK_REALTIME, &raw const now), 0);
            }
        };
        let mut memo: FsMemo<u32, u32> = FsMemo::new(8, 1 << 20);
        for round in 0..3u32 {
            assert!(memo.begin(), "round {round}: a watch is armed");
            memo.insert(round, Rc::new(round), Vec::new(), 8);
            assert!(memo.begin());
            assert_eq!(memo.get(|k| *k == round).as_deref(), Some(&round));
            set_clock();
            assert!(memo.begin(), "round {round}: a new watch after the setting");
            assert!(
                memo.get(|k| *k == round).is_none(),
                "round {round}: kept across a clock setting"
            );
        }
    }
}
