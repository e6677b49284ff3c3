//! The out-root lock `out/.lock`: an exclusive `flock(2)` (taken with `util::fsx`'s lock
//! helper) plus a record of the holder (pid,
//! host, start time, run id) so a second writer can name it.
//!
//! The record is cleared when the lock is released. A record still present when the lock
//! is acquired means its holder ended without releasing it (killed, crashed): that stale
//! lock is taken over (the kernel already dropped the `flock`) and reported through
//! [`OutLock::took_over`], never left to block everyone. [`inspect`] reads the lock's state
//! without taking it (for `status`), from `/proc/locks`.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::util::fsx;
/// Re-exported from [`crate::util::host`] (old path, used by the integration tests).
pub use crate::util::host::hostname;
use crate::{Error, Result};

/// What to do when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Fail at once, naming the holder.
    Fail,
    /// Wait until the holder is done (or the timeout passes).
    Wait,
}

/// Lock options.
#[derive(Debug, Clone, Copy)]
pub struct LockOptions {
    /// Fail or wait.
    pub mode: LockMode,
    /// How long to wait in [`LockMode::Wait`].
    pub timeout: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            mode: LockMode::Fail,
            timeout: Duration::from_mins(10),
        }
    }
}

/// The holder record written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LockHolder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// The run the lock was taken for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The plan that run executes, if any (`missions` shows such missions as running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
}

impl LockHolder {
    /// `pid 123 on host since 2026-…Z (run …)`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "pid {} on {} since {}",
            self.pid, self.host, self.started_at
        );
        match (&self.run_id, &self.plan_id) {
            (Some(r), Some(p)) => {
                let _ = write!(s, " (run {r} of plan {p})");
            }
            (Some(r), None) => {
                let _ = write!(s, " (run {r})");
            }
            _ => {}
        }
        s
    }
}

/// A held out-root lock; released (and its record cleared) on drop.
#[derive(Debug)]
pub struct OutLock {
    file: File,
    path: PathBuf,
    out_root: PathBuf,
    /// A stale holder that was taken over, if any. Callers show it as a warning.
    pub took_over: Option<LockHolder>,
}

impl OutLock {
    /// Take the lock on `out_root/.lock` (creating the out root if needed).
    pub fn acquire(out_root: &Path, opts: LockOptions) -> Result<Self> {
        Self::acquire_for(out_root, opts, None)
    }

    /// Take the lock, recording `run_id` in the holder record.
    pub fn acquire_for(out_root: &Path, opts: LockOptions, run_id: Option<&str>) -> Result<Self> {
        Self::acquire_for_plan(out_root, opts, run_id, None)
    }

    /// Take the lock, recording `run_id` and the `plan_id` it runs in the holder record.
    pub fn acquire_for_plan(
        out_root: &Path,
        opts: LockOptions,
        run_id: Option<&str>,
        plan_id: Option<&str>,
    ) -> Result<Self> {
        // An out root that cannot be made (a file in the way, a read-only mount, no
        // permission) is the caller's input, named with the reason: exit 2, nothing written.
        let unusable = |op: &str, p: &Path, e: std::io::Error| {
            Error::io_input(op, p, e).with_hint(
                "pass --out DIR naming a directory that can be created and written (default: the project's out/)",
            )
        };
        // Never through a symlink (the out root, and every directory on the way to it).
        let dir = crate::util::nofollow::Dir::create_or_why(out_root).map_err(|w| match w {
            crate::util::nofollow::WalkError::NotDir(_, e)
            | crate::util::nofollow::WalkError::Io(_, _, e) => {
                unusable("create the out root", out_root, e)
            }
            symlink @ crate::util::nofollow::WalkError::Symlink(_) => Error::from(symlink),
        })?;
        let path = out_root.join(super::LOCK_FILE);
        let mut file = dir
            .open_rw(std::ffi::OsStr::new(super::LOCK_FILE), 0o644)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EROFS | libc::EACCES | libc::EPERM | libc::ENOTDIR) => {
                    unusable("write into the out root", &path, e)
                }
                _ => Error::io("open the out-root lock", &path, e),
            })?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            if fsx::try_lock_exclusive(&file, &path)? {
                break;
            }
            let who = read_holder(&mut file).map_or_else(
                || "another process (no holder record yet)".to_string(),
                |h| h.describe(),
            );
            match opts.mode {
                LockMode::Fail => {
                    return Err(Error::runner(format!("the out root is locked by {who}"))
                        .with_path(&path)
                        .with_hint(
                            "wait for that run to finish, or pass `--lock wait` to queue behind it",
                        ));
                }
                LockMode::Wait if start.elapsed() >= opts.timeout => {
                    return Err(Error::runner(format!(
                        "gave up after waiting {}s for the out-root lock held by {who}",
                        opts.timeout.as_secs()
                    ))
                    .with_path(&path)
                    .with_hint("raise `--lock-timeout`, or check on that run"));
                }
                LockMode::Wait => {
                    std::thread::sleep(pause.min(opts.timeout.saturating_sub(start.elapsed())));
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
            }
        }
        // We hold the flock. A record left behind means its holder never released the lock.
        let took_over = read_holder(&mut file);
        let me = LockHolder {
            pid: std::process::id(),
            host: hostname(),
            started_at: crate::util::time::now_rfc3339(),
            run_id: run_id.map(str::to_string),
            plan_id: plan_id.map(str::to_string),
        };
        let bytes = crate::util::json::to_sorted_line(&me)?;
        let write = (|| {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(bytes.as_bytes())?;
            file.write_all(b"\n")
        })();
        write.map_err(|e| Error::io("write the lock holder record", &path, e))?;
        Ok(Self {
            file,
            path,
            out_root: out_root.to_path_buf(),
            took_over,
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The out root this lock guards.
    pub fn out_root(&self) -> &Path {
        &self.out_root
    }
}

impl Drop for OutLock {
    fn drop(&mut self) {
        // Clear the record first: a record present without a holder means a stale lock.
        let _ = self.file.set_len(0);
        fsx::unlock(&self.file);
    }
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.take(64 * 1024).read_to_string(&mut s).ok()?;
    serde_json::from_str(s.trim()).ok()
}

/// The state of an out root's lock, read without taking it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LockState {
    /// `out/.lock` exists.
    pub exists: bool,
    /// Some process holds the `flock` now.
    pub held: bool,
    /// The holder record in the file (present while held, or left by a holder that died).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<LockHolder>,
    /// A record is present but nobody holds the lock: its holder ended without releasing it.
    /// The next run takes it over.
    pub stale: bool,
    /// Whether the recorded pid still exists on this host (`None` for another host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_alive: Option<bool>,
}

/// Read the lock state of `out_root` without taking the lock (which could make a concurrent
/// `--lock fail` writer fail): whether it is held comes from `/proc/locks`; where that is
/// unreadable, from the record and whether its pid is alive.
pub fn inspect(out_root: &Path) -> LockState {
    let path = out_root.join(super::LOCK_FILE);
    let Ok(mut file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
    else {
        return LockState {
            exists: false,
            held: false,
            holder: None,
            stale: false,
            holder_alive: None,
        };
    };
    let holder = read_holder(&mut file);
    let holder_alive = holder
        .as_ref()
        .filter(|h| h.host == hostname())
        .map(|h| pid_alive(h.pid));
    let held = match flock_held(&file) {
        Some(held) => held,
        None => holder_alive.unwrap_or(holder.is_some()),
    };
    LockState {
        exists: true,
        held,
        stale: !held && holder.is_some(),
        holder,
        holder_alive,
    }
}

/// Whether any process holds a `flock` on `file`, from `/proc/locks` (`None` if unreadable).
fn flock_held(file: &File) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let want = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        meta.ino()
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    Some(locks.lines().any(|line| {
        let mut f = line.split_whitespace().skip(1);
        // "1: FLOCK ADVISORY WRITE <pid> <maj:min:ino> 0 EOF"; waiters have "->" first.
        f.next() == Some("FLOCK") && f.nth(3) == Some(want.as_str())
    }))
}

/// Read the holder of an out root's lock without taking it.
pub fn current_holder(out_root: &Path) -> Option<LockHolder> {
    let mut f = File::open(out_root.join(super::LOCK_FILE)).ok()?;
    read_holder(&mut f)
}

/// True if a process with `pid` exists.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(mode: LockMode, ms: u64) -> LockOptions {
        LockOptions {
            mode,
            timeout: Duration::from_millis(ms),
        }
    }

    #[test]
    fn second_acquire_fails_naming_the_holder_and_release_clears_the_record() {
        let d = tempfile::tempdir().unwrap();
        let first = OutLock::acquire_for(d.path(), opts(LockMode::Fail, 0), Some("r1")).unwrap();
        assert!(first.took_over.is_none());
        let st = inspect(d.path());
        assert!(st.held && !st.stale, "{st:?}");
        assert_eq!(st.holder.as_ref().unwrap().run_id.as_deref(), Some("r1"));
        let e = OutLock::acquire(d.path(), opts(LockMode::Fail, 0)).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Runner, "{e}");
        assert!(
            e.message().contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        assert!(e.message().contains("run r1"), "{e}");
        let e = OutLock::acquire(d.path(), opts(LockMode::Wait, 100)).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Runner, "{e}");
        assert!(e.message().contains("gave up"), "{e}");
        drop(first);
        let st = inspect(d.path());
        assert!(!st.held && !st.stale && st.holder.is_none(), "{st:?}");
        let again = OutLock::acquire(d.path(), opts(LockMode::Fail, 0)).unwrap();
        assert!(again.took_over.is_none());
    }

    #[test]
    fn a_record_left_by_a_dead_holder_is_stale_and_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let dead = LockHolder {
            pid: 999_999_999,
            host: hostname(),
            started_at: "2020-01-01T00:00:00Z".into(),
            run_id: Some("old".into()),
            plan_id: None,
        };
        std::fs::write(
            d.path().join(".lock"),
            serde_json::to_string(&dead).unwrap(),
        )
        .unwrap();
        let st = inspect(d.path());
        assert!(!st.held && st.stale, "{st:?}");
        assert_eq!(st.holder_alive, Some(false));
        let l = OutLock::acquire(d.path(), opts(LockMode::Fail, 0)).unwrap();
        assert_eq!(l.took_over, Some(dead));
    }
}
