//! The run's private scratch directory and the fixtures probes need.
//!
//! The scratch root (`$TMPDIR/nexusmon-<run_id>/`, outside the bundle, recorded in the
//! manifest) holds one directory per child (`<lane>/<profile>/<probe>/a<attempt>`): that is
//! the child's `${SCRATCH}` (and `HOME`/`TMPDIR`/working directory on the clean channel),
//! so lanes and attempts never see each other's files. `file`, `dir` and `symlink` fixtures
//! are created there before the child runs. `tcp-listener` and `unix-abstract-listener`
//! fixtures are run-wide: runner threads that accept and close, started before anything
//! runs so their ports can be published as variables.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::model::registry::{Fixture, Probe};
use crate::model::results::Lane;
use crate::sandbox::vars::Vars;
use crate::{Error, Result};

/// The file in a scratch root naming the runner that owns it.
const OWNER_FILE: &str = "owner.pid";

/// A killed run cleaned up by [`Scratch::sweep_stale`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptRun {
    /// Its run id.
    pub run_id: String,
    /// The processes left in its pids cgroups, killed: (pid, command name).
    pub killed: Vec<(u32, String)>,
}

impl SweptRun {
    /// One sentence for the user.
    pub fn describe(&self) -> String {
        if self.killed.is_empty() {
            format!(
                "removed the scratch directory and pids cgroups of killed run {}",
                self.run_id
            )
        } else {
            let list: Vec<String> = self
                .killed
                .iter()
                .map(|(p, c)| format!("{p} ({c})"))
                .collect();
            format!(
                "killed {} process(es) left by killed run {} in its pids cgroups ({}), and removed its scratch directory and cgroups",
                self.killed.len(),
                self.run_id,
                list.join(", ")
            )
        }
    }
}

/// `path` is a directory (not a symlink) owned by this process's effective uid.
fn owned_dir(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.uid() == me)
}

/// The run's scratch root.
#[derive(Debug)]
pub struct Scratch {
    root: PathBuf,
}

impl Scratch {
    /// The default parent of scratch roots: `/dev/shm` when it is a writable directory (a
    /// tmpfs: creating thousands of per-child directories costs microseconds, not the
    /// quarter millisecond an ext4 `mkdir` can), else the system temp dir.
    pub fn default_parent() -> PathBuf {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() && crate::util::fsx::may_access(shm, libc::W_OK | libc::X_OK) {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    }

    /// The scratch parent a user named (`--scratch-parent`), checked and made canonical (its
    /// symlinks resolved once, here: the runner uses only the canonical path from then on).
    /// It must be an existing directory that the runner can write and search, owned by the
    /// runner's user or by root, and writable by no other user unless it is sticky (as
    /// `/tmp` and `/dev/shm` are): in a directory anyone may write without the sticky bit,
    /// or one another user owns, someone else could rename a run's scratch root away and put
    /// their own in its place. Errors are usage errors (exit 2) naming the path and the fix.
    pub fn resolve_parent(given: &Path) -> Result<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        const FIX: &str = "pass an existing directory you own that no other user can write (e.g. made with `mkdir -m 700 DIR`), or a shared sticky one such as /dev/shm";
        let bad = |what: String| {
            Error::usage(format!("--scratch-parent: {what}"))
                .with_path(given)
                .with_hint(FIX)
        };
        let canon =
            std::fs::canonicalize(given).map_err(|e| bad(format!("cannot be resolved ({e})")))?;
        // What is checked is where the symlinks lead: say so when it is not the path given.
        let it = if canon == given {
            "it".to_string()
        } else {
            format!("its target `{}`", canon.display())
        };
        let bad = |what: String| bad(format!("{it} {what}"));
        let meta = std::fs::metadata(&canon).map_err(|e| bad(format!("cannot be read ({e})")))?;
        if !meta.is_dir() {
            return Err(bad("is not a directory".into()));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me && meta.uid() != 0 {
            return Err(bad(format!(
                "is owned by uid {}, neither the runner's user (uid {me}) nor root",
                meta.uid()
            )));
        }
        let mode = meta.mode();
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(bad(format!(
                "is writable by other users (mode {:04o}) and not sticky",
                mode & 0o7777
            )));
        }
        if !crate::util::fsx::may_access(&canon, libc::W_OK | libc::X_OK) {
            return Err(bad("the runner cannot create directories in it".into()));
        }
        Ok(canon)
    }

    /// Create `<tmp>/nexusmon-<run_id>` (refusing an existing one).
    pub fn create(tmp: &Path, run_id: &str) -> Result<Self> {
        let root = tmp.join(format!("nexusmon-{run_id}"));
        std::fs::create_dir_all(tmp).map_err(|e| Error::io("create directory", tmp, e))?;
        std::fs::create_dir(&root).map_err(|e| Error::io("create scratch directory", &root, e))?;
        let _ = std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755));
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        let owner = root.join(OWNER_FILE);
        std::fs::write(&owner, std::process::id().to_string())
            .map_err(|e| Error::io("write", &owner, e))?;
        Ok(Self { root })
    }

    /// Remove scratch roots under `parent` left by runs that were killed (their owner
    /// process is gone), and those runs' pids cgroups under `cgroup_root` after killing
    /// every process still in them (a probe's `setsid` descendant outlives a runner killed
    /// with SIGKILL: only its cgroup still knows it). Returns each run id cleaned with the
    /// processes killed. A root whose owner is alive, or unknown, is left alone.
    ///
    /// Only runs of this scratch parent: those with a scratch root in it, and killed runs
    /// whose cgroups carry its mark ([`crate::sandbox::cgroup::scratch_mark`]) though their
    /// scratch root is gone (cgroups without a mark, from older versions, belong to the
    /// default parent). Runs with another scratch parent (`--scratch-parent`) are never
    /// touched: runs that must not clean up after each other are given different parents.
    pub fn sweep_stale(parent: &Path, cgroup_root: Option<&Path>) -> Vec<SweptRun> {
        let mut cleaned = Vec::new();
        let parent = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
        if let Ok(rd) = std::fs::read_dir(&parent) {
            for e in rd.flatten() {
                if let Some(swept) = Self::sweep_root(&e, cgroup_root) {
                    cleaned.push(swept);
                }
            }
        }
        // Killed runs of this parent whose scratch root is already gone, but whose pids
        // cgroups are not.
        if let Some(root) = cgroup_root {
            let mark = crate::sandbox::cgroup::scratch_mark(&parent);
            let default = std::fs::canonicalize(Self::default_parent()).is_ok_and(|d| d == parent);
            for run in crate::sandbox::cgroup::stale_runs(root, crate::bundle::lock::pid_alive) {
                let ours = run.scratch.as_ref().map_or(default, |m| *m == mark);
                if !ours || cleaned.iter().any(|c| c.run_id == run.run_id) {
                    continue;
                }
                let killed = crate::sandbox::cgroup::kill_run_dir(root, &run.run_id);
                cleaned.push(SweptRun {
                    run_id: run.run_id,
                    killed,
                });
            }
        }
        cleaned.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        cleaned
    }

    /// Sweep the entry `e` of a scratch parent if it is the scratch root of a killed run.
    fn sweep_root(e: &std::fs::DirEntry, cgroup_root: Option<&Path>) -> Option<SweptRun> {
        let name = e.file_name().to_string_lossy().into_owned();
        let run_id = name.strip_prefix("nexusmon-")?;
        // The parent (`/dev/shm`, `/tmp`) is writable by everyone: only a directory of
        // ours, named by a valid run id, is a scratch root. Anything else is another
        // user's — a `nexusmon-..` with a dead pid in it would otherwise make this sweep
        // kill every process in the cgroup hierarchy above the runs' cgroups.
        if crate::bundle::writer::validate_run_id(run_id).is_err() || !owned_dir(&e.path()) {
            return None;
        }
        let owner = e.path().join(OWNER_FILE);
        // (A kept root's owner file holds no pid: `KEPT`, left alone here.)
        let pid = std::fs::symlink_metadata(&owner)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .and_then(|_| crate::util::fsx::read_capped(&owner, 64).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.trim().parse::<u32>().ok())?;
        if crate::bundle::lock::pid_alive(pid) {
            return None;
        }
        let killed = cgroup_root.map_or_else(Vec::new, |root| {
            crate::sandbox::cgroup::kill_run_dir(root, run_id)
        });
        (std::fs::remove_dir_all(e.path()).is_ok() || !killed.is_empty()).then(|| SweptRun {
            run_id: run_id.to_string(),
            killed,
        })
    }

    /// The directory the scratch root is in.
    pub fn parent(&self) -> &Path {
        self.root.parent().unwrap_or(&self.root)
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one child (created): `<root>/<lane>/<profile>/<probe>.a<attempt>`,
    /// one `mkdir` per child (the lane and profile directories are made once).
    pub fn job_dir(&self, lane: &str, profile: &str, probe: &str, attempt: u32) -> Result<PathBuf> {
        let parent = self.root.join(lane).join(profile);
        let d = parent.join(format!("{probe}.a{attempt}"));
        match std::fs::create_dir(&d) {
            Ok(()) => Ok(d),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::fs::create_dir_all(&parent)
                    .map_err(|e| Error::io("create scratch directory", &parent, e))?;
                std::fs::create_dir(&d)
                    .map_err(|e| Error::io("create scratch directory", &d, e))?;
                Ok(d)
            }
            Err(e) => Err(Error::io("create scratch directory", &d, e)),
        }
    }

    /// The directory a profile is compiled and preflighted with, before any child.
    pub fn preflight_dir(&self, profile: &str) -> Result<PathBuf> {
        let d = self.root.join("preflight").join(profile);
        std::fs::create_dir_all(&d).map_err(|e| Error::io("create scratch directory", &d, e))?;
        Ok(d)
    }

    /// The directory the oracle uses for one scenario.
    pub fn oracle_dir(&self, profile: &str, probe: &str) -> PathBuf {
        self.root
            .join(Lane::Oracle.as_str())
            .join(profile)
            .join(probe)
    }

    /// Remove the scratch root and everything beneath it. The per-child directories
    /// (`<lane>/<profile>/<job>`, thousands in a large run, nearly all empty) go first, each
    /// with one `unlinkat(AT_REMOVEDIR)` ([`remove_empty_job_dirs`]) instead of the open,
    /// read, close and unlink `remove_dir_all` spends on each; what that leaves (fixtures,
    /// files a child wrote) goes through `remove_dir_all`.
    pub fn remove(&self) {
        remove_empty_job_dirs(&self.root);
        let _ = std::fs::remove_dir_all(&self.root);
    }

    /// The run ended and keeps its scratch (`--keep-scratch`): its owner file says so
    /// ([`KEPT`]) instead of naming the runner, whose pid is about to be dead, so that no
    /// later run's [`Scratch::sweep_stale`] (nor `status --clean`) removes what the user
    /// asked to keep. A run killed before this keeps its pid and is swept as before.
    pub fn mark_kept(&self) -> Result<()> {
        let owner = self.root.join(OWNER_FILE);
        std::fs::write(&owner, KEPT).map_err(|e| Error::io("write", &owner, e))
    }
}

/// The owner file's content for a scratch root kept on purpose ([`Scratch::mark_kept`]).
const KEPT: &str = "kept\n";

/// Remove every empty directory two levels beneath `root` (`<root>/<a>/<b>/<empty>`), each
/// with one `unlinkat(dir, name, AT_REMOVEDIR)` relative to its opened parent. Best effort:
/// anything else (a directory that is not empty, a file, a symlink, an error) is left for
/// `remove_dir_all`.
///
/// Never through a symlink, whatever a child planted in the scratch tree: each level is
/// opened with `O_NOFOLLOW | O_DIRECTORY` relative to the one above (a symlink fails to
/// open), and `unlinkat(AT_REMOVEDIR)` removes the entry itself (a symlink fails with
/// `ENOTDIR`), so nothing outside `root` is reached.
pub(super) fn remove_empty_job_dirs(root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(root.as_os_str().as_bytes()) else {
        return;
    };
    let Some(root_fd) = open_dir_at(libc::AT_FDCWD, &c) else {
        return;
    };
    for a in subdirs(&root_fd) {
        let Some(a_fd) = open_dir_at(std::os::fd::AsRawFd::as_raw_fd(&root_fd), &a) else {
            continue;
        };
        for b in subdirs(&a_fd) {
            let Some(b_fd) = open_dir_at(std::os::fd::AsRawFd::as_raw_fd(&a_fd), &b) else {
                continue;
            };
            for job in subdirs(&b_fd) {
                // SAFETY: an open directory descriptor and a NUL-terminated name.
                unsafe {
                    libc::unlinkat(
                        std::os::fd::AsRawFd::as_raw_fd(&b_fd),
                        job.as_ptr(),
                        libc::AT_REMOVEDIR,
                    );
                }
            }
        }
    }
}

/// `openat(dir, name, O_DIRECTORY | O_NOFOLLOW)`.
fn open_dir_at(dir: std::os::fd::RawFd, name: &std::ffi::CStr) -> Option<std::os::fd::OwnedFd> {
    // SAFETY: a NUL-terminated name; the descriptor returned is ours.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    // SAFETY: a fresh descriptor owned by nobody else.
    (fd >= 0).then(|| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// The names of the entries of the open directory `dir` that are directories (by the
/// entry's own type: a symlink to a directory is not one), `.` and `..` left out.
fn subdirs(dir: &std::os::fd::OwnedFd) -> Vec<std::ffi::CString> {
    // fdopendir takes the descriptor it is given: hand it a duplicate.
    let Ok(dup) = dir.try_clone() else {
        return Vec::new();
    };
    let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
    // SAFETY: an open directory descriptor, owned by the stream from here on.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        // SAFETY: fdopendir failed, so the descriptor is still ours to close.
        unsafe { libc::close(raw) };
        return Vec::new();
    }
    let mut out = Vec::new();
    loop {
        // SAFETY: a valid stream; the entry is read before the next call.
        let e = unsafe { libc::readdir(stream) };
        if e.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid entry with a NUL-terminated name.
        let (kind, name) = unsafe { ((*e).d_type, std::ffi::CStr::from_ptr((*e).d_name.as_ptr())) };
        let bytes = name.to_bytes();
        if kind == libc::DT_DIR && bytes != b"." && bytes != b".." {
            out.push(name.to_owned());
        }
    }
    // SAFETY: the stream opened above, closed once (with its descriptor).
    unsafe { libc::closedir(stream) };
    out
}

/// Create a probe's per-child fixtures with `vars` (where `SCRATCH` is the child's dir).
/// Every fixture path must lie beneath that directory.
pub fn create_fixtures(
    probe: &Probe,
    vars: &Vars,
    scratch: &Path,
) -> std::result::Result<(), String> {
    for f in &probe.fixtures {
        match f {
            Fixture::File {
                path,
                content,
                mode,
            } => {
                let p = inside(vars, path, scratch)?;
                mkparent(&p)?;
                let body = match content {
                    Some(c) => vars.expand(c).map_err(|e| e.message)?,
                    None => String::new(),
                };
                std::fs::write(&p, body)
                    .map_err(|e| format!("cannot create `{}`: {e}", p.display()))?;
                let m = match mode {
                    Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                        .map_err(|_| format!("fixture mode `{m}` is not octal"))?,
                    None => 0o644,
                };
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m))
                    .map_err(|e| format!("cannot chmod `{}`: {e}", p.display()))?;
            }
            Fixture::Dir { path } => {
                let p = inside(vars, path, scratch)?;
                std::fs::create_dir_all(&p)
                    .map_err(|e| format!("cannot create `{}`: {e}", p.display()))?;
            }
            Fixture::Symlink { path, to } => {
                let p = inside(vars, path, scratch)?;
                mkparent(&p)?;
                let to = vars.expand(to).map_err(|e| e.message)?;
                std::os::unix::fs::symlink(&to, &p)
                    .map_err(|e| format!("cannot create symlink `{}`: {e}", p.display()))?;
            }
            Fixture::TcpListener { .. } | Fixture::UnixAbstractListener { .. } => {}
        }
    }
    Ok(())
}

fn inside(vars: &Vars, path: &str, scratch: &Path) -> std::result::Result<PathBuf, String> {
    let p = PathBuf::from(vars.expand(path).map_err(|e| e.message)?);
    if !p.starts_with(scratch) || p.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(format!(
            "fixture path `{path}` must lie beneath ${{SCRATCH}} (without `..`)"
        ));
    }
    Ok(p)
}

fn mkparent(p: &Path) -> std::result::Result<(), String> {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
    }
    Ok(())
}

/// Run-wide listeners (accept and close), stopped on drop.
#[derive(Debug, Default)]
pub struct Listeners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Published variables (name → port), sorted.
    pub published: Vec<(String, String)>,
    /// What was started, for the manifest.
    pub described: Vec<String>,
}

impl Listeners {
    /// Start every listener the probes declare (deduplicated by variable / name).
    pub fn start<'a>(probes: impl IntoIterator<Item = &'a Probe>, vars: &Vars) -> Result<Self> {
        let mut l = Listeners::default();
        let mut tcp: Vec<(String, u16, Option<String>)> = Vec::new();
        let mut unix: Vec<String> = Vec::new();
        for p in probes {
            for f in &p.fixtures {
                match f {
                    Fixture::TcpListener {
                        variable,
                        port,
                        reply,
                    } if !tcp.iter().any(|(v, _, _)| v == variable.as_str()) => {
                        tcp.push((variable.to_string(), port.unwrap_or(0), reply.clone()));
                    }
                    Fixture::UnixAbstractListener { name } => {
                        let n = vars.expand(name).map_err(|e| Error::usage(e.message))?;
                        if !unix.contains(&n) {
                            unix.push(n);
                        }
                    }
                    _ => {}
                }
            }
        }
        tcp.sort();
        unix.sort();
        for (var, want, reply) in tcp {
            let listener = TcpListener::bind(("127.0.0.1", want)).map_err(|e| {
                Error::runner(format!("cannot start the tcp-listener for `{var}`")).with_source(e)
            })?;
            let port = listener
                .local_addr()
                .map_err(|e| Error::runner("cannot read the listener's port").with_source(e))?
                .port();
            l.published.push((var.clone(), port.to_string()));
            l.described.push(format!(
                "tcp-listener 127.0.0.1:{port} as ${{{var}}}{}",
                if reply.is_some() {
                    " (replies with its fixed bytes)"
                } else {
                    ""
                }
            ));
            l.spawn_tcp(listener, reply.map(String::into_bytes))?;
        }
        for name in unix {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .map_err(|e| {
                    Error::usage(format!("bad abstract socket name `{name}`")).with_source(e)
                })?;
            let listener = std::os::unix::net::UnixListener::bind_addr(&addr).map_err(|e| {
                Error::runner(format!("cannot listen on the abstract socket `@{name}`"))
                    .with_source(e)
            })?;
            l.described.push(format!("unix-abstract-listener @{name}"));
            l.spawn_unix(listener)?;
        }
        Ok(l)
    }

    fn spawn_tcp(&mut self, listener: TcpListener, reply: Option<Vec<u8>>) -> Result<()> {
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::runner("cannot configure a listener").with_source(e))?;
        let stop = Arc::clone(&self.stop);
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        if let Some(r) = &reply {
                            answer(s, r);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
                }
            }
        }));
        Ok(())
    }

    fn spawn_unix(&mut self, listener: std::os::unix::net::UnixListener) -> Result<()> {
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::runner("cannot configure a listener").with_source(e))?;
        let stop = Arc::clone(&self.stop);
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => drop(s),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
                }
            }
        }));
        Ok(())
    }
}

/// Read what the client sends first (up to an empty line, 16 KiB or one second, so closing
/// does not reset a connection with unread data), send `reply`, close. The bytes are the
/// plan's: the runner neither parses nor builds a protocol here.
fn answer(mut s: std::net::TcpStream, reply: &[u8]) {
    use std::io::{Read, Write};
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(1)));
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = [0u8; 2048];
    while seen.len() < 16 * 1024 && !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.write_all(reply);
    let _ = s.shutdown(std::net::Shutdown::Both);
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Removing the scratch root removes every job directory, empty or not, and never
    /// reaches through a symlink a child planted at any level: generated trees of lanes,
    /// profiles and jobs, some jobs holding files or subdirectories, symlinks in place of
    /// a lane, a profile or a job pointing at an outside tree of empty directories, which
    /// must survive whole.
    #[test]
    fn removing_the_scratch_root_removes_job_dirs_and_never_follows_a_symlink() {
        use crate::util::testrng::Rng;
        for seed in 0..12u64 {
            let mut rng = Rng(seed);
            let t = tempfile::tempdir().unwrap();
            let outside = t.path().join("outside");
            for d in ["a/b/c", "a/b/d", "e"] {
                std::fs::create_dir_all(outside.join(d)).unwrap();
            }
            let root = t.path().join("scratch");
            let s = Scratch { root: root.clone() };
            for lane in ["baseline", "scenario", "oracle"] {
                for p in 0..rng.below(3) {
                    let profile = format!("p{p}");
                    for j in 0..rng.below(5) {
                        let d = s.job_dir(lane, &profile, &format!("q{j}"), 1).unwrap();
                        match rng.below(4) {
                            0 => std::fs::write(d.join("f"), "x").unwrap(),
                            1 => std::fs::create_dir_all(d.join("sub/deeper")).unwrap(),
                            _ => {}
                        }
                    }
                    if rng.chance(30) {
                        let at = root.join(lane).join(&profile).join("planted");
                        std::fs::create_dir_all(root.join(lane).join(&profile)).unwrap();
                        std::os::unix::fs::symlink(outside.join("a/b"), at).unwrap();
                    }
                }
                if rng.chance(30) {
                    std::fs::create_dir_all(root.join(lane)).unwrap();
                    std::os::unix::fs::symlink(outside.join("a"), root.join(lane).join("lnk"))
                        .unwrap();
                }
            }
            if rng.chance(50) {
                std::fs::create_dir_all(&root).unwrap();
                std::os::unix::fs::symlink(&outside, root.join("lane-link")).unwrap();
            }
            s.remove();
            assert!(!root.exists(), "seed {seed}");
            for d in ["a/b/c", "a/b/d", "e"] {
                assert!(outside.join(d).is_dir(), "seed {seed}: {d} was removed");
            }
        }
    }

    /// A dead pid (beyond `pid_max`).
    const DEAD: &str = "4194305";

    /// Scratch roots under a world-writable parent are only swept when they are ours and
    /// named by a valid run id: hostile names (`..` would reach the cgroup hierarchy above the
    /// runs' cgroups), other users' directories, and owner files that are not regular files
    /// (a FIFO would block the sweep) are left alone, and no process is killed for them. A
    /// real stale root is still swept.
    #[test]
    fn the_stale_sweep_touches_only_its_own_scratch_roots() {
        let t = tempfile::tempdir().unwrap();
        let parent = t.path().join("shm");
        let cg = t.path().join("cg");
        std::fs::create_dir_all(cg.join("nexusmon")).unwrap();
        // A process in a fake cgroup above the runs' cgroups: killed if the sweep escapes.
        let mut victim = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        std::fs::create_dir_all(cg.join("other")).unwrap();
        std::fs::write(cg.join("other/cgroup.procs"), victim.id().to_string()).unwrap();
        std::fs::write(cg.join("cgroup.procs"), victim.id().to_string()).unwrap();
        std::fs::create_dir_all(&parent).unwrap();
        let mut hostile: Vec<String> = [".", "..", "-x", ".hidden", "LATEST", "a b", "a\\b"]
            .iter()
            .map(|s| format!("nexusmon-{s}"))
            .collect();
        // Seeded names with bytes a run id never has.
        let mut seed: u32 = 0x2545_f491;
        for _ in 0..16 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let bad =
                [b' ', b'$', b'*', b'?', b':', b'\t', b'\'', b'~'][(seed % 8) as usize] as char;
            hostile.push(format!("nexusmon-r{}{bad}x", seed % 1000));
        }
        for name in &hostile {
            let d = parent.join(name);
            if std::fs::create_dir(&d).is_ok() {
                std::fs::write(d.join(OWNER_FILE), DEAD).unwrap();
            }
        }
        // Valid run ids, but another user's directory, and an owner FIFO.
        let foreign = parent.join("nexusmon-foreign-run");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join(OWNER_FILE), DEAD).unwrap();
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
        let fifo = parent.join("nexusmon-fifo-run");
        std::fs::create_dir(&fifo).unwrap();
        let c = std::ffi::CString::new(fifo.join(OWNER_FILE).to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // A real stale root of a killed run.
        let stale = Scratch::create(&parent, "20260101T000000.000Z-deadbeef").unwrap();
        std::fs::write(stale.root().join(OWNER_FILE), DEAD).unwrap();
        // A root its (now dead) run kept on purpose (`--keep-scratch`).
        let kept = Scratch::create(&parent, "20260101T000000.000Z-0000cafe").unwrap();
        std::fs::write(kept.root().join(OWNER_FILE), DEAD).unwrap();
        kept.mark_kept().unwrap();

        let swept = Scratch::sweep_stale(&parent, Some(&cg));
        let ids: Vec<&str> = swept.iter().map(|s| s.run_id.as_str()).collect();
        assert_eq!(ids, ["20260101T000000.000Z-deadbeef"], "{swept:?}");
        assert!(swept.iter().all(|s| s.killed.is_empty()), "{swept:?}");
        assert!(!stale.root().exists());
        assert!(
            kept.root().join(OWNER_FILE).exists(),
            "a kept root was swept"
        );
        assert!(
            victim.try_wait().unwrap().is_none(),
            "the sweep killed a process outside its runs"
        );
        for name in &hostile {
            let d = parent.join(name);
            assert!(
                !d.exists() || d.join(OWNER_FILE).exists(),
                "{name} was removed"
            );
        }
        assert_eq!(std::fs::metadata(&foreign).unwrap().uid(), 65534);
        assert!(foreign.join(OWNER_FILE).exists() && fifo.join(OWNER_FILE).exists());
        victim.kill().unwrap();
        victim.wait().unwrap();
    }

    /// A run's cgroup directory as a killed run leaves it, in a fake hierarchy (no
    /// processes): its owner marker with a dead pid, its scratch parent's mark if `mark`.
    fn fake_stale_cgroup(cg: &Path, run_id: &str, mark: Option<&Path>) -> PathBuf {
        let dir = crate::sandbox::cgroup::run_dir(cg, run_id);
        std::fs::create_dir_all(dir.join(format!("owner.{DEAD}"))).unwrap();
        std::fs::create_dir_all(dir.join("w0")).unwrap();
        if let Some(parent) = mark {
            let parent = std::fs::canonicalize(parent).unwrap();
            let m = crate::sandbox::cgroup::scratch_mark(&parent);
            std::fs::create_dir_all(dir.join(format!("scratch.{m}"))).unwrap();
        }
        dir
    }

    /// A sweep of one scratch parent cleans exactly the killed runs of that parent and no
    /// other's: generated runs spread over two parents, each killed (scratch root with a dead
    /// owner, cgroups marked with its parent), killed with its scratch root already gone
    /// (cgroups only), alive (owner: this process), kept, or of an older version (cgroups
    /// without a mark, which only the default parent's sweep takes), among junk entries.
    /// Sweeping one parent removes exactly its killed runs' scratch roots and cgroups; the
    /// other parent's runs, live and kept runs and unmarked cgroups are untouched, and then
    /// sweeping the other parent cleans exactly its own.
    #[test]
    fn the_stale_sweep_cleans_only_the_runs_of_its_scratch_parent() {
        use crate::util::testrng::Rng;
        #[derive(Clone, Copy, PartialEq, Debug)]
        enum State {
            Killed,
            KilledRootGone,
            Alive,
            Kept,
            Unmarked,
        }
        const STATES: [State; 5] = [
            State::Killed,
            State::KilledRootGone,
            State::Alive,
            State::Kept,
            State::Unmarked,
        ];
        for seed in 0..16u64 {
            let mut rng = Rng(seed);
            let t = tempfile::tempdir().unwrap();
            let parents = [t.path().join("a"), t.path().join("b")];
            let cg = t.path().join("cg");
            for p in &parents {
                std::fs::create_dir_all(p).unwrap();
            }
            // (run id, parent index, state)
            let mut runs: Vec<(String, usize, State)> = Vec::new();
            for i in 0..(2 + rng.below(10usize)) {
                let id = format!("20260101T000000.000Z-{:08x}", seed * 1000 + i as u64);
                let which = rng.below(2usize);
                let state = *rng.pick(&STATES);
                let parent = &parents[which];
                match state {
                    State::Killed | State::KilledRootGone | State::Unmarked => {
                        let s = Scratch::create(parent, &id).unwrap();
                        std::fs::write(s.root().join(OWNER_FILE), DEAD).unwrap();
                        let mark = (state != State::Unmarked).then_some(parent.as_path());
                        fake_stale_cgroup(&cg, &id, mark);
                        if state != State::Killed {
                            std::fs::remove_dir_all(s.root()).unwrap();
                        }
                    }
                    State::Alive => {
                        Scratch::create(parent, &id).unwrap();
                        crate::sandbox::cgroup::create_run_dir(&cg, &id, parent).unwrap();
                    }
                    State::Kept => {
                        let s = Scratch::create(parent, &id).unwrap();
                        s.mark_kept().unwrap();
                    }
                }
                runs.push((id, which, state));
            }
            // Junk beside the runs: names no run id has, files, symlinks to a killed root.
            for (j, p) in parents.iter().enumerate() {
                std::fs::write(p.join("nexusmon-not a run"), DEAD).unwrap();
                std::fs::create_dir_all(p.join(format!("other-{j}"))).unwrap();
                if let Some((id, _, _)) = runs.iter().find(|r| r.1 != j && r.2 == State::Killed) {
                    let target = parents[1 - j].join(format!("nexusmon-{id}"));
                    std::os::unix::fs::symlink(target, p.join(format!("nexusmon-{id}x"))).unwrap();
                }
            }
            let cg_exists = |id: &str| crate::sandbox::cgroup::run_dir(&cg, id).exists();
            let root_exists =
                |which: usize, id: &str| parents[which].join(format!("nexusmon-{id}")).exists();
            for sweep in [0usize, 1] {
                let swept = Scratch::sweep_stale(&parents[sweep], Some(&cg));
                let got: Vec<&str> = swept.iter().map(|s| s.run_id.as_str()).collect();
                let mut want: Vec<&str> = runs
                    .iter()
                    .filter(|(_, w, s)| {
                        *w == sweep && matches!(s, State::Killed | State::KilledRootGone)
                    })
                    .map(|(id, _, _)| id.as_str())
                    .collect();
                want.sort_unstable();
                assert_eq!(got, want, "seed {seed}, sweep of parent {sweep}: {runs:?}");
                for (id, which, state) in &runs {
                    let done = *which <= sweep; // parents swept so far: 0..=sweep
                    let cleaned = done && matches!(state, State::Killed | State::KilledRootGone);
                    let has_cg = !matches!(state, State::Kept);
                    assert_eq!(
                        cg_exists(id),
                        has_cg && !cleaned,
                        "seed {seed}, after sweep {sweep}: cgroup of {id} ({state:?}, parent {which})"
                    );
                    let has_root = matches!(state, State::Killed | State::Alive | State::Kept);
                    assert_eq!(
                        root_exists(*which, id),
                        has_root && !cleaned,
                        "seed {seed}, after sweep {sweep}: scratch root of {id} ({state:?}, parent {which})"
                    );
                }
                for p in &parents {
                    assert!(p.join("nexusmon-not a run").is_file(), "seed {seed}");
                }
            }
        }
    }

    /// `--scratch-parent` takes an existing directory the runner owns (or root owns) that no
    /// other user may write unless it is sticky, through symlinks (checked where they lead,
    /// and used canonical); anything else is a usage error naming the path given, with the fix.
    #[test]
    fn a_scratch_parent_must_be_a_safe_directory() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let ok = t.path().join("mine");
        std::fs::create_dir(&ok).unwrap();
        std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o700)).unwrap();
        let sticky = t.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let group = t.path().join("group");
        std::fs::create_dir(&group).unwrap();
        std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o770)).unwrap();
        let foreign = t.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
        let file = t.path().join("file");
        std::fs::write(&file, "").unwrap();
        let to_ok = t.path().join("to-ok");
        std::os::unix::fs::symlink(&ok, &to_ok).unwrap();
        let to_open = t.path().join("to-open");
        std::os::unix::fs::symlink(&open, &to_open).unwrap();
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap();
        assert_eq!(Scratch::resolve_parent(&ok).unwrap(), canon(&ok));
        assert_eq!(Scratch::resolve_parent(&sticky).unwrap(), canon(&sticky));
        assert_eq!(Scratch::resolve_parent(&to_ok).unwrap(), canon(&ok));
        let missing = t.path().join("missing");
        for (given, says) in [
            (&open, "writable by other users (mode 0777) and not sticky"),
            (&group, "writable by other users (mode 0770) and not sticky"),
            (&foreign, "owned by uid 65534"),
            (&file, "is not a directory"),
            (&missing, "cannot be resolved"),
            (&to_open, "its target"),
        ] {
            let e = Scratch::resolve_parent(given).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Usage, "{e}");
            assert_eq!(e.path(), Some(given.as_path()), "{e}");
            assert!(e.message().contains(says), "{given:?}: {}", e.message());
            assert!(e.message().starts_with("--scratch-parent: "), "{e}");
            assert!(e.hint().is_some_and(|h| h.contains("mkdir -m 700")), "{e}");
        }
    }
}
