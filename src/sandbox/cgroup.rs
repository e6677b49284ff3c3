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

/// Create the run's cgroup directory, with its owner marker.
pub fn create_run_dir(root: &Path, run_id: &str) -> std::io::Result<PathBuf> {
    let dir = run_dir(root, run_id);
    std::fs::create_dir_all(&dir)?;
    let _ = std::fs::create_dir(dir.join(format!("{OWNER_PREFIX}{}", std::process::id())));
    Ok(dir)
}

/// Run cgroups under `root` whose owner (recorded at creation) is no longer alive: the
/// runs of killed runners. A run directory without an owner marker is left alone.
pub fn stale_runs(root: &Path, alive: impl Fn(u32) -> bool) -> Vec<String> {
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
        let owner = sub.flatten().find_map(|s| {
            s.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(OWNER_PREFIX))
                .and_then(|p| p.parse::<u32>().ok())
        });
        if owner.is_some_and(|p| !alive(p)) {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
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
/// child the worker forks is born in it, so no child pays for a cgroup migration (a
/// synchronize-RCU in the kernel, about a millisecond), and after a child exits, whatever
/// is left in the cgroup but the worker itself escaped from that child — even through
/// `setsid` or a double fork.
#[derive(Debug)]
pub struct WorkerCgroup {
    dir: PathBuf,
}

impl WorkerCgroup {
    /// Create `<run dir>/<name>` and move the calling thread into it (v1 only).
    pub fn join_current_thread(run_dir: &Path, name: &str) -> std::io::Result<Self> {
        let dir = run_dir.join(name);
        std::fs::create_dir(&dir)?;
        // SAFETY: gettid cannot fail.
        let tid = unsafe { libc::gettid() };
        if let Err(e) = std::fs::write(dir.join("tasks"), tid.to_string()) {
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

/// One child's pids cgroup.
#[derive(Debug)]
pub struct ChildCgroup {
    dir: PathBuf,
    procs: File,
    v1: bool,
}

impl ChildCgroup {
    /// Create `<run dir>/<name>` with `pids.max = limit` (`None`: no limit, the cgroup only
    /// tracks the child's descendants) and open its `cgroup.procs` for the child to join.
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
                .open(dir.join("cgroup.procs"))
        };
        match setup() {
            Ok(procs) => Ok(Self { dir, procs, v1 }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// The fd of `cgroup.procs` (O_CLOEXEC): a child writes `0` to it to join.
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
