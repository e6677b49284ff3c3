//! The out-root lock `out/.lock`: an exclusive `flock` plus a record of the holder (pid,
//! host, start time) so a second writer can name it, and a stale lock (holder gone) can be
//! reported and taken over.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// RFC 3339 start time.
    pub started_at: String,
}

/// A held out-root lock; released on drop.
#[derive(Debug)]
pub struct OutLock {
    file: File,
    path: PathBuf,
    /// A stale holder that was taken over, if any (reported by callers).
    pub took_over: Option<LockHolder>,
}

impl OutLock {
    /// Take the lock on `out_root/.lock`.
    pub fn acquire(out_root: &Path, opts: LockOptions) -> Result<Self> {
        crate::util::fsx::create_dir_all(out_root)?;
        let path = out_root.join(super::LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open lock", &path, e))?;
        let start = Instant::now();
        loop {
            // SAFETY: flock on a valid owned fd.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(Error::io("lock", &path, err));
            }
            let holder = read_holder(&mut file);
            let who = holder.as_ref().map_or_else(
                || "another process".to_string(),
                |h| format!("pid {} on {} since {}", h.pid, h.host, h.started_at),
            );
            match opts.mode {
                LockMode::Fail => {
                    return Err(Error::runner(format!("out root is locked by {who}"))
                        .with_path(&path)
                        .with_hint("wait for that run to finish, or pass `--lock wait`"));
                }
                LockMode::Wait if start.elapsed() >= opts.timeout => {
                    return Err(Error::runner(format!(
                        "gave up waiting {}s for the out-root lock held by {who}",
                        opts.timeout.as_secs()
                    ))
                    .with_path(&path)
                    .with_hint("raise --lock-timeout, or check that run"));
                }
                LockMode::Wait => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        // We hold the flock. A previous record whose process is gone is a stale lock.
        let previous = read_holder(&mut file);
        let took_over = previous
            .filter(|h| !(h.pid == std::process::id() || pid_alive(h.pid)) || h.host != hostname());
        let me = LockHolder {
            pid: std::process::id(),
            host: hostname(),
            started_at: crate::util::time::now_rfc3339(),
        };
        let bytes = serde_json::to_vec(&me)
            .map_err(|e| Error::runner("cannot serialize lock record").with_source(e))?;
        file.set_len(0)
            .map_err(|e| Error::io("truncate lock", &path, e))?;
        file.rewind()
            .map_err(|e| Error::io("seek lock", &path, e))?;
        file.write_all(&bytes)
            .map_err(|e| Error::io("write lock", &path, e))?;
        file.sync_data()
            .map_err(|e| Error::io("fsync lock", &path, e))?;
        Ok(Self {
            file,
            path,
            took_over,
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        // SAFETY: unlocking our own fd.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    serde_json::from_str(&s).ok()
}

/// Read the holder of an out root's lock without taking it (for `status`).
pub fn current_holder(out_root: &Path) -> Option<LockHolder> {
    let mut f = File::open(out_root.join(super::LOCK_FILE)).ok()?;
    read_holder(&mut f)
}

/// True if a process with `pid` exists.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This host's name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
