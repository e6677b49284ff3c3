//! Per-child pids cgroups: how the runner contains process counts when it runs as root
//! (RLIMIT_NPROC does not bind root). Each child of a profile with `limits.processes` gets
//! `<pids root>/nexusmon/<run_id>/c<n>/` with `pids.max` set; the child joins it itself
//! before it is restricted (`pre_exec` through an fd opened here, or the helper writing its
//! own `cgroup.procs`), so every descendant, even one that calls `setsid`, is counted and
//! can be found and killed. The directory is removed after the child and its leftovers are
//! gone.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The run's cgroup directory `<root>/nexusmon/<run_id>`.
pub fn run_dir(root: &Path, run_id: &str) -> PathBuf {
    root.join("nexusmon").join(run_id)
}

/// Prefix of the empty cgroup directory that names a run's owner: `owner.<pid>`. Cgroup
/// directories hold no files of ours, so the runner's pid is recorded as a directory name;
/// a later run (or `status --clean`) that finds the owner gone knows the run was killed.
const OWNER_PREFIX: &str = "owner.";

/// Prefix of the empty cgroup directory that names the parent of a run's scratch root:
/// `scratch.<mark>` ([`scratch_mark`]). Only a sweep of that parent kills the run's leftovers
/// once its scratch root is gone: runs with another scratch parent (`--scratch-parent`) are
/// never another's to clean.
const SCRATCH_PREFIX: &str = "scratch.";

/// The mark of a scratch parent in its runs' cgroups: the first 16 hex digits of the blake3
/// of its path (canonical, as the runner uses it; a cgroup name cannot hold a `/`).
pub fn scratch_mark(parent: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut hex = crate::util::digest::blake3_hex(parent.as_os_str().as_bytes());
    hex.truncate(16);
    hex
}

/// Create the run's cgroup directory, with its owner marker and the mark of the parent of
/// its scratch root. Both marks or none: a run directory without its owner would never be
/// swept, and one without its scratch mark would be swept by the default parent's runs
/// instead of its own, so when a mark cannot be made, what this call made is removed again
/// and the error names the mark's path (the run then goes on as without a run cgroup).
pub fn create_run_dir(
    root: &Path,
    run_id: &str,
    scratch_parent: &Path,
) -> std::io::Result<PathBuf> {
    let dir = run_dir(root, run_id);
    let existed = dir.is_dir();
    std::fs::create_dir_all(&dir)?;
    let marks = [
        dir.join(format!("{OWNER_PREFIX}{}", std::process::id())),
        dir.join(format!("{SCRATCH_PREFIX}{}", scratch_mark(scratch_parent))),
    ];
    let mut made = Vec::new();
    for mark in &marks {
        match std::fs::create_dir(mark) {
            Ok(()) => made.push(mark),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && mark.is_dir() => {}
            Err(e) => {
                for m in made {
                    let _ = std::fs::remove_dir(m);
                }
                if !existed {
                    let _ = std::fs::remove_dir(&dir);
                }
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: cannot mark the run's cgroup: {e}", mark.display()),
                ));
            }
        }
    }
    Ok(dir)
}

/// A run cgroup whose owner is gone ([`stale_runs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRun {
    /// The run id (the directory's name).
    pub run_id: String,
    /// The mark of its scratch parent ([`scratch_mark`]); `None` for a run of a version that
    /// did not record it (whose scratch parent was the default one).
    pub scratch: Option<String>,
}

/// Run cgroups under `root` whose owner (recorded at creation) is no longer alive: the
/// runs of killed runners, sorted by run id. A run directory without an owner marker is
/// left alone.
pub fn stale_runs(root: &Path, alive: impl Fn(u32) -> bool) -> Vec<StaleRun> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root.join("nexusmon")) else {
        return out;
    };
    for e in rd.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(sub) = std::fs::read_dir(e.path()) else {
            continue;
        };
        let names: Vec<String> = sub
            .flatten()
            .filter_map(|s| s.file_name().to_str().map(str::to_string))
            .collect();
        let owner = names.iter().find_map(|n| {
            n.strip_prefix(OWNER_PREFIX)
                .and_then(|p| p.parse::<u32>().ok())
        });
        let scratch = names
            .iter()
            .find_map(|n| n.strip_prefix(SCRATCH_PREFIX).map(str::to_string));
        if owner.is_some_and(|p| !alive(p)) {
            out.push(StaleRun {
                run_id: e.file_name().to_string_lossy().into_owned(),
                scratch,
            });
        }
    }
    out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    out
}

/// Remove the run's cgroup directory (and `nexusmon/` if it is empty; another run may
/// still use it, so failures there are ignored). A worker thread leaves its cgroup only when
/// the kernel has finished its exit, shortly after it was joined (the kernel wakes a
/// joiner before it takes the thread out of its cgroup): retry briefly, every 200 µs (a
/// retry a few microseconds late costs that much on the run's path to its seal).
pub fn remove_run_dir(root: &Path, run_id: &str) {
    let dir = run_dir(root, run_id);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut left = 0;
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) && std::fs::remove_dir(e.path()).is_err()
                {
                    left += 1;
                }
            }
        }
        if left == 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = std::fs::remove_dir(&dir);
    let _ = std::fs::remove_dir(root.join("nexusmon"));
}

/// Kill every process left anywhere in the run's cgroup directory (its worker and child
/// cgroups, and the directory itself) until none is left, then remove the directories: for
/// a run that was killed (its runner is gone, so none of them is the runner's). Returns
/// the processes killed with their command names.
pub fn kill_run_dir(root: &Path, run_id: &str) -> Vec<(u32, String)> {
    // Never a path that leaves `<root>/nexusmon/` (callers pass valid run ids; this is the
    // last line before SIGKILL).
    if run_id.is_empty() || run_id == "." || run_id == ".." || run_id.contains('/') {
        return Vec::new();
    }
    let dir = run_dir(root, run_id);
    let mut killed = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                killed.extend(kill_members(&e.path(), true));
            }
        }
    }
    killed.extend(kill_members(&dir, true));
    remove_run_dir(root, run_id);
    killed.sort();
    killed.dedup();
    killed
}

/// Helper processes of the runner that live in its cgroups and are no leak: the builtin
/// probes' fork servers, born in their worker thread's cgroup so that the children they
/// fork are born there too (see `exec::forkserver`). Never killed as members.
static KEPT: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// `pid` is one of the runner's own helpers from now on (until [`release`]).
pub fn keep(pid: u32) {
    if let Ok(mut k) = KEPT.lock() {
        k.push(pid);
    }
}

/// `pid` is no longer a helper of the runner (it was reaped).
pub fn release(pid: u32) {
    if let Ok(mut k) = KEPT.lock() {
        k.retain(|p| *p != pid);
    }
}

/// `pid` is one of the runner's own helpers.
pub fn is_kept(pid: u32) -> bool {
    KEPT.lock().is_ok_and(|k| k.contains(&pid))
}

/// Processes in the cgroup at `dir`, the runner itself and its kept helpers excluded (a
/// worker thread of the runner, and its fork server, may be members).
fn members(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .filter(|p| *p != me && !is_kept(*p))
        .collect()
}

/// SIGKILL every member of the cgroup at `dir` (never the runner) until none is left.
fn kill_members(dir: &Path, v1: bool) -> Vec<(u32, String)> {
    let mut killed: Vec<(u32, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = members(dir);
        if found.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in found {
            if !killed.iter().any(|(p, _)| *p == pid) {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                killed.push((pid, comm));
            }
            if let Ok(p) = i32::try_from(pid) {
                // SAFETY: sending a signal to a process that is not the runner.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
        }
        let _ = v1;
        std::thread::sleep(Duration::from_millis(1));
    }
    killed
}

/// A worker thread's own pids cgroup (cgroup v1 lets single threads join a cgroup): every
/// child the worker forks is born in it, so no child pays for a cgroup migration, and after
/// a child exits, whatever is left in the cgroup but the worker itself escaped from that
/// child — even through `setsid` or a double fork.
///
/// How a thread or a child joins ([`JOIN_SELF`]): it writes `0` (itself) to the v1 `tasks`
/// file. A migration named by a pid, or of a whole thread group (`cgroup.procs`), takes the
/// kernel's thread-group lock for writing (`cgroup_threadgroup_rwsem`, a per-CPU rwsem whose
/// write side waits for an RCU grace period: 5–17 ms per join measured on these 2 cores
/// under load, 0.05–0.1 ms for `0` to `tasks`); a thread that moves itself alone needs no
/// thread-group stability (it cannot exit or `exec` while it writes) and the kernel skips
/// that lock. It moves the calling thread only: a worker thread joins alone, as it always
/// did (by its tid), and a child joins while it is a single-threaded process (a clone of
/// the fork server or of `spawn`, before it runs any code of the probe's), so its one
/// thread is the whole process, as with `cgroup.procs`.
#[derive(Debug)]
pub struct WorkerCgroup {
    dir: PathBuf,
}

impl WorkerCgroup {
    /// Create `<run dir>/<name>` and move the calling thread into it (v1 only).
    pub fn join_current_thread(run_dir: &Path, name: &str) -> std::io::Result<Self> {
        let dir = run_dir.join(name);
        std::fs::create_dir(&dir)?;
        if let Err(e) = std::fs::write(dir.join("tasks"), JOIN_SELF) {
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
        Ok(Self { dir })
    }

    /// Processes left in the worker's cgroup (the runner excluded).
    pub fn leftovers(&self) -> Vec<u32> {
        members(&self.dir)
    }

    /// Kill every leftover; returns them with their command names.
    pub fn kill_leftovers(&self) -> Vec<(u32, String)> {
        kill_members(&self.dir, true)
    }
}

/// What a thread writes to a v1 `tasks` file (or a process to `cgroup.procs`) to join that
/// cgroup itself (see [`WorkerCgroup`] for why `0` and not its id).
pub const JOIN_SELF: &[u8] = b"0";

/// The file of a cgroup a child writes [`JOIN_SELF`] to from its own (single) thread: v1's
/// `tasks` (the calling thread alone, without the kernel's thread-group lock: see
/// [`WorkerCgroup`]), v2's `cgroup.procs` (v2 has no `tasks`; its `cgroup.threads` is for
/// threaded subtrees only).
pub fn child_join_file(v1: bool) -> &'static str {
    if v1 { "tasks" } else { "cgroup.procs" }
}

/// One child's pids cgroup.
#[derive(Debug)]
pub struct ChildCgroup {
    dir: PathBuf,
    procs: File,
    v1: bool,
}

impl ChildCgroup {
    /// Create `<run dir>/<name>` with `pids.max = limit` (`None`: no limit, the cgroup only
    /// tracks the child's descendants) and open the file the child joins through
    /// ([`child_join_file`]: v1 `tasks`, v2 `cgroup.procs`).
    pub fn create(
        run_dir: &Path,
        name: &str,
        limit: Option<u64>,
        v1: bool,
    ) -> std::io::Result<Self> {
        let dir = run_dir.join(name);
        std::fs::create_dir(&dir)?;
        let setup = || -> std::io::Result<File> {
            if let Some(limit) = limit {
                let mut max = OpenOptions::new().write(true).open(dir.join("pids.max"))?;
                max.write_all(limit.to_string().as_bytes())?;
            }
            OpenOptions::new()
                .write(true)
                .open(dir.join(child_join_file(v1)))
        };
        match setup() {
            Ok(procs) => Ok(Self { dir, procs, v1 }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// The fd of the join file (O_CLOEXEC; [`child_join_file`]): a child writes `0` to it
    /// from its one thread to join.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// The path of `cgroup.procs` (for the helper, which joins by path).
    pub fn procs_path(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pids currently in the cgroup (never the runner itself).
    pub fn members(&self) -> Vec<u32> {
        members(&self.dir)
    }

    /// `(pids.peak, forks refused at the limit)`.
    pub fn accounting(&self) -> (Option<u64>, Option<u64>) {
        let peak = std::fs::read_to_string(self.dir.join("pids.peak"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let refused = std::fs::read_to_string(self.dir.join("pids.events"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("max ").and_then(|n| n.trim().parse().ok()))
            });
        (peak, refused)
    }

    /// SIGKILL every member until the cgroup is empty (members cannot fork past the limit,
    /// and killed ones cannot fork at all, so this converges). Returns the pids killed with
    /// their command names (read before the kill).
    pub fn kill_all(&self) -> Vec<(u32, String)> {
        kill_members(&self.dir, self.v1)
    }

    /// Remove the directory, waiting briefly for exiting members to leave.
    pub fn remove(self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::testrng::Rng;

    /// A run's cgroup directory gets both marks or is not made: seeded obstacles (a file, a
    /// symlink, a directory, or nothing where the run directory and each mark go, the run
    /// directory there before or not) on a plain directory standing in for the cgroup root.
    /// Whenever either mark is not a directory afterwards, the call failed, its error names
    /// that mark, and nothing it made is left.
    #[test]
    fn a_run_cgroup_gets_both_marks_or_is_not_made() {
        #[derive(Clone, Copy, Debug, PartialEq)]
        enum At {
            Nothing,
            File,
            Symlink,
            Dir,
        }
        const AT: [At; 4] = [At::Nothing, At::File, At::Symlink, At::Dir];
        fn put(path: &Path, at: At) {
            match at {
                At::Nothing => {}
                At::File => std::fs::write(path, b"x").unwrap(),
                At::Symlink => std::os::unix::fs::symlink("/nonexistent", path).unwrap(),
                At::Dir => std::fs::create_dir(path).unwrap(),
            }
        }
        let parent = Path::new("/dev/shm/some-parent");
        let mut failures = 0;
        for seed in 0..64u64 {
            let mut rng = Rng(seed);
            let root = tempfile::tempdir().unwrap();
            let dir = run_dir(root.path(), "r1");
            let pre_dir = rng.chance(60);
            let (owner_at, scratch_at) = if pre_dir {
                std::fs::create_dir_all(&dir).unwrap();
                (*rng.pick(&AT), *rng.pick(&AT))
            } else {
                (At::Nothing, At::Nothing)
            };
            let owner = dir.join(format!("{OWNER_PREFIX}{}", std::process::id()));
            let scratch = dir.join(format!("{SCRATCH_PREFIX}{}", scratch_mark(parent)));
            put(&owner, owner_at);
            put(&scratch, scratch_at);
            let before: Vec<_> = listing(root.path());
            let what =
                format!("seed {seed}: dir {pre_dir}, owner {owner_at:?}, scratch {scratch_at:?}");
            match create_run_dir(root.path(), "r1", parent) {
                Ok(d) => {
                    assert_eq!(d, dir, "{what}");
                    assert!(owner.is_dir() && scratch.is_dir(), "{what}");
                    assert!(
                        ![owner_at, scratch_at]
                            .iter()
                            .any(|a| matches!(a, At::File | At::Symlink)),
                        "{what}: made with a mark that is not a directory"
                    );
                }
                Err(e) => {
                    failures += 1;
                    let bad = if matches!(owner_at, At::File | At::Symlink) {
                        &owner
                    } else {
                        &scratch
                    };
                    assert!(
                        e.to_string().contains(&bad.display().to_string()),
                        "{what}: {e}"
                    );
                    assert_eq!(listing(root.path()), before, "{what}: left what it made");
                }
            }
        }
        assert!(failures > 0, "no seed put an obstacle in a mark's way");
    }

    /// Every path under `root`, sorted.
    fn listing(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    todo.push(p.clone());
                }
                out.push(p);
            }
        }
        out.sort();
        out
    }

    /// The v1 pids hierarchy when this test may write to it (root), else `None`.
    fn v1_pids_root() -> Option<PathBuf> {
        let root = Path::new("/sys/fs/cgroup/pids");
        // SAFETY: geteuid cannot fail.
        (unsafe { libc::geteuid() } == 0 && root.join("tasks").exists()).then(|| root.into())
    }

    /// The v1 pids cgroup (relative to the hierarchy) of `/proc/<task>/cgroup`.
    fn cgroup_of(task: &str) -> String {
        let s = std::fs::read_to_string(format!("/proc/{task}/cgroup")).unwrap();
        s.lines()
            .find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
                ctrl.split(',')
                    .any(|c| c == "pids")
                    .then(|| path.to_string())
            })
            .unwrap()
    }

    fn listed(dir: &Path, file: &str) -> Vec<u32> {
        std::fs::read_to_string(dir.join(file))
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Joining by writing `0` (the kernel's "the calling thread", which skips its
    /// thread-group lock) moves exactly the thread that writes it: generated sets of worker
    /// threads each join a cgroup of their own while the others (and the test's own thread)
    /// stay where they were; and a child that writes `0` to its cgroup's join file from its
    /// one thread is, as a whole process, in that cgroup (listed in its `cgroup.procs`).
    #[test]
    fn joining_with_zero_moves_exactly_the_writer() {
        let Some(root) = v1_pids_root() else {
            // No writable v1 pids hierarchy: the join file is v2's.
            assert_eq!(child_join_file(false), "cgroup.procs");
            return;
        };
        assert_eq!(child_join_file(true), "tasks");
        let run = format!("test-join-{}", std::process::id());
        let run_dir = create_run_dir(&root, &run, Path::new("/dev/shm")).unwrap();
        // SAFETY: gettid cannot fail.
        let me = unsafe { libc::gettid() };
        let mine = cgroup_of(&format!("self/task/{me}"));
        let back = root.join(mine.trim_start_matches('/')).join("tasks");
        for seed in 0..6u64 {
            let mut rng = Rng(seed);
            let n = 1 + rng.below(4usize);
            let names: Vec<String> = (0..n)
                .map(|i| format!("s{seed}w{i}x{}", rng.below(1000u32)))
                .collect();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(n + 1));
            let handles: Vec<_> = names
                .iter()
                .map(|name| {
                    let (dir, name, b) = (run_dir.clone(), name.clone(), barrier.clone());
                    let back = back.clone();
                    std::thread::spawn(move || {
                        // SAFETY: gettid cannot fail.
                        let tid = unsafe { libc::gettid() };
                        let w = WorkerCgroup::join_current_thread(&dir, &name).unwrap();
                        b.wait(); // every thread joined
                        b.wait(); // the test has looked
                        std::fs::write(&back, JOIN_SELF).unwrap();
                        (tid, w.dir)
                    })
                })
                .collect();
            barrier.wait();
            for name in &names {
                let here = listed(&run_dir.join(name), "tasks");
                assert_eq!(
                    here.len(),
                    1,
                    "seed {seed}: {name} holds one thread: {here:?}"
                );
                let task = format!("self/task/{}", here[0]);
                assert_eq!(cgroup_of(&task), format!("/nexusmon/{run}/{name}"));
            }
            assert_eq!(
                cgroup_of(&format!("self/task/{me}")),
                mine,
                "seed {seed}: the test's thread did not move"
            );
            barrier.wait();
            for h in handles {
                let (tid, dir) = h.join().unwrap();
                assert!(!listed(&dir, "tasks").contains(&tid.cast_unsigned()));
                std::fs::remove_dir(&dir).unwrap();
            }
            // A child joining from its single thread: the whole process moves.
            let limit = 2 + rng.below(6u64);
            let cg = ChildCgroup::create(&run_dir, &format!("c{seed}"), Some(limit), true).unwrap();
            let fd = cg.procs_fd();
            let mut cmd = std::process::Command::new("/bin/sleep");
            cmd.arg("5");
            // SAFETY: only an async-signal-safe write between fork and exec.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    if libc::write(fd, JOIN_SELF.as_ptr().cast(), JOIN_SELF.len()) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = cmd.spawn().unwrap();
            let pid = child.id();
            assert_eq!(listed(&cg.dir, "cgroup.procs"), vec![pid], "seed {seed}");
            assert_eq!(listed(&cg.dir, "tasks"), vec![pid], "seed {seed}");
            assert_eq!(
                cgroup_of(&pid.to_string()),
                format!("/nexusmon/{run}/c{seed}")
            );
            assert_eq!(
                std::fs::read_to_string(cg.dir.join("pids.max"))
                    .unwrap()
                    .trim(),
                limit.to_string()
            );
            let _ = child.kill();
            let _ = child.wait();
            cg.remove();
        }
        remove_run_dir(&root, &run);
        assert!(!run_dir.exists());
    }
}
