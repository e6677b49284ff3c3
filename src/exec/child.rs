//! Child control: spawning one probe child and seeing it through.
//!
//! - Spawn: std `Command`, stdin `/dev/null` (or a file the runner opens: a worker's
//!   request), stdout/stderr piped, its own process group
//!   (direct channel) or its own session (clean channel: `setsid`). Exec probes enforce the
//!   prepared profile in `pre_exec` with raw syscalls only, and a CLOEXEC side-channel pipe
//!   reports `(step, errno)` of a failed setup step, so a setup failure (apply-failed) is
//!   never confused with `execve` being refused (a denial).
//! - Wait: one thread per child polls its stdout, stderr and a pidfd; output is kept up to
//!   the cap, the rest is counted and discarded, so memory stays bounded whatever the child
//!   writes.
//! - Timeout: SIGTERM to the group, `kill_grace_ms`, then SIGKILL (and every member of the
//!   child's pids cgroup).
//! - Leaks: the runner is a child subreaper. The kernel re-parents orphans to the subreaper
//!   *thread* that forked the dead ancestor, and each worker thread runs one child at a
//!   time, so after the child exits the worker's own `/proc/self/task/<tid>/children` lists
//!   exactly the descendants that escaped — even through `setsid` — and nothing from
//!   concurrent children. They are killed, reaped and reported as `leaked`; the child's own
//!   output is still drained and kept.
//! - rusage from `wait4`: user/system CPU, peak RSS; wall time from spawn to reap.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::forkserver::{ForkServer, LaunchError, LaunchSpec};
use super::spawn::{self, SpawnError};
use super::zygote::{NsInit, Parent};
use crate::model::results::{Leaked, Rusage};
use crate::sandbox::apply::{Prepared, SetupStep, errno};
use crate::sandbox::cgroup::{ChildCgroup, WorkerCgroup};
use crate::sandbox::privilege::Isolation;

/// What to enforce in `pre_exec` (exec driver only).
#[derive(Debug, Clone)]
pub struct PreExec {
    /// The prepared profile (shared, immutable).
    pub prepared: Arc<Prepared>,
}

/// How to start one child.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// The program (absolute).
    pub program: PathBuf,
    /// `argv[1..]`.
    pub args: Vec<String>,
    /// `argv[0]` as the program sees it (default: the program path).
    pub arg0: Option<String>,
    /// `None`: inherit the runner's environment; `Some`: exactly these variables.
    pub env: Option<Vec<(String, String)>>,
    /// Working directory (`None`: inherit).
    pub cwd: Option<PathBuf>,
    /// Clean channel: a new session; in `pre_exec` (exec probes) also umask 022 and every
    /// descriptor above 2 marked close-on-exec. The helper does the same itself.
    pub clean: bool,
    /// Enforce in `pre_exec` (exec probes). Builtin helpers restrict themselves.
    pub pre_exec: Option<PreExec>,
    /// Namespaces, identity and capabilities (clean channel): the child is started through
    /// [`spawn::spawn`] even without `pre_exec`.
    pub isolation: Option<Isolation>,
    /// The init of the PID namespace the child is started in (with an isolation that has
    /// one): the child is pid 2 (or above, in a worker's shared namespace) there.
    pub ns_init: Option<std::sync::Arc<NsInit>>,
    /// Wall timeout.
    pub timeout: Duration,
    /// Grace between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Bytes kept per stream.
    pub output_cap: u64,
    /// A file the child reads as its stdin (opened read-only by the runner before the
    /// child starts; a worker's request), else `/dev/null`.
    pub stdin: Option<PathBuf>,
    /// The builtin probes' fork server of this worker: the helper (`program` `args`) is
    /// forked there instead of executed (the program is executed if the server fails).
    pub server: Option<Arc<ForkServer>>,
}

/// One captured stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// Bytes the child wrote.
    pub bytes: u64,
    /// The first `cap` bytes.
    pub kept: Vec<u8>,
    /// More than `cap` bytes were written.
    pub truncated: bool,
    /// The stream reached EOF.
    pub complete: bool,
}

impl Captured {
    fn push(&mut self, data: &[u8], cap: u64) {
        self.bytes += data.len() as u64;
        let room = usize::try_from(cap.saturating_sub(self.kept.len() as u64)).unwrap_or(0);
        if room > 0 {
            let n = room.min(data.len());
            self.kept.extend_from_slice(&data[..n]);
        }
        if self.bytes > cap {
            self.truncated = true;
        }
    }
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// `spawn` failed with this errno (`execve` refused, program missing, …).
    SpawnFailed(i32),
    /// A `pre_exec` setup step failed.
    SetupFailed(SetupStep, i32),
    /// Exited with a code.
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use super::outcome::{errno_name, signal_name};
        match self {
            Ended::SpawnFailed(e) => write!(f, "spawn failed with {}", errno_name(*e)),
            Ended::SetupFailed(step, e) => {
                write!(
                    f,
                    "setup step {} failed with {}",
                    step.as_str(),
                    errno_name(*e)
                )
            }
            Ended::Exited(c) => write!(f, "exit code {c}"),
            Ended::Signaled(s) => write!(f, "killed by {}", signal_name(*s)),
        }
    }
}

/// Everything the runner learned about one child.
#[derive(Debug, Clone)]
pub struct ChildResult {
    /// How it ended.
    pub ended: Ended,
    /// The runner's timeout fired.
    pub timed_out: bool,
    /// Resource use.
    pub rusage: Rusage,
    /// stdout.
    pub stdout: Captured,
    /// stderr.
    pub stderr: Captured,
    /// Descendants that outlived it.
    pub leaked: Vec<Leaked>,
    /// Its pid (0 if it never started).
    pub pid: u32,
    /// Wall clock just before the spawn and just after the reap, milliseconds since the
    /// epoch (to match the kernel's audit records to it).
    pub lived_ms: (u64, u64),
}

/// Make this process a child subreaper (orphans of our children come back to us).
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Stop being a subreaper.
pub fn stop_subreaper() {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
    }
}

/// How a child's descendants are tracked.
#[derive(Debug, Clone, Copy)]
pub enum Tracking<'a> {
    /// The subreaper sweep only (attribution by session / process group).
    None,
    /// The child's own pids cgroup (the profile limits processes), joined in `pre_exec`
    /// (exec probes; the helper joins it itself by path).
    Child(&'a ChildCgroup),
    /// The spawning worker thread's cgroup: the child is born in it.
    Worker(&'a WorkerCgroup),
}

/// Spawn and see one child through.
pub fn run_child(spec: &ChildSpec, tracking: Tracking<'_>) -> ChildResult {
    let cgroup = match tracking {
        Tracking::Child(c) => Some(c),
        _ => None,
    };
    let worker = match tracking {
        Tracking::Worker(w) => Some(w),
        _ => None,
    };
    let start = Instant::now();
    let started_ms = crate::sandbox::audit::now_ms();
    if super::interrupt::pending().is_some() {
        // The run was interrupted: start nothing more.
        super::interrupt::note_killed();
        return failed_before_spawn(start, Ended::SpawnFailed(libc::EINTR));
    }
    // Orphans the runner holds already are not this child's; nor are any re-parented while
    // another child ran beside it (see `Alone`).
    let alone = Alone::begin(spec.ns_init.is_none());
    let Started {
        pid: ipid,
        stdout,
        stderr,
        server,
        ended: ended_at_start,
        pidfd: made_pidfd,
        parent_children,
    } = match start_child(spec, cgroup) {
        Ok(x) => x,
        Err(ended) => return failed_before_spawn(start, ended),
    };
    // A second signal kills this group from the handler.
    let group = super::interrupt::GroupSlot::register(ipid);
    let pid = u32::try_from(ipid).unwrap_or(0);
    let mut pipes = Pipes::new(stdout, stderr, spec.output_cap);
    // A forked child that ended within its server's hold (a quarter of its timeout at
    // most) is a zombie already: nothing to wait for or time out, no pidfd to open.
    let timed_out = !ended_at_start && {
        // The clone made one (`CLONE_PIDFD`), else it is opened now.
        let pidfd = made_pidfd.or_else(|| pidfd_open(ipid));
        wait_for_exit(
            spec,
            ipid,
            pidfd.as_ref(),
            cgroup,
            worker,
            start,
            &mut pipes,
        )
    };
    // Phase 2: the child is a zombie (not reaped: its pid cannot be reused). Find, kill and
    // reap every descendant that escaped, then drain the pipes to EOF.
    let mut leaked = Vec::new();
    // A child in its own PID namespace left everything behind with the namespace's init,
    // where it stays alive until listed here; killing the init then ends it all. No orphan
    // of the runner is such a child's, so the subreaper sweep skips it.
    // A namespace shared with the worker thread's next children is ended, and
    // replaced, as soon as this child left anything in it or timed out; else it holds
    // nothing of this child once it is reaped.
    //
    // The cloning thread's (the runner's, or the fork server's for a forked child) and the
    // init's `children` files (two `pread`s, `NsInit::holds_nothing_but`), else the
    // namespace's own listing, prove that it holds nothing but its init and this child
    // (`NsInit::holds_only_the_child`); only when it holds more is everything listed. It lists every process of the namespace, wherever
    // it was re-parented or whatever cgroup it moved to, so then nothing of this child is
    // outside it and the worker's cgroup (shared with nothing else of this child) is not
    // read; a cgroup of the child's own (a process limit) is emptied as before.
    let mut ns_clean = false;
    let sweep = if let Some(init) = &spec.ns_init {
        ns_clean = parent_children.is_some_and(|fd| init.holds_nothing_but(fd, pid))
            || init.holds_only_the_child() == Some(true);
        let survivors = if ns_clean {
            Vec::new()
        } else {
            let parent = match server {
                Some(s) => Parent::Process(s.pid()),
                // SAFETY: gettid takes no argument.
                None => Parent::RunnerThread(unsafe { libc::gettid() }.cast_unsigned()),
            };
            init.survivors(pid, Some(parent), timed_out.then_some(pid))
        };
        if !init.is_shared() || timed_out || !survivors.is_empty() {
            init.kill();
        }
        leaked.extend(survivors);
        if server.is_none() && init.is_killed() {
            // What the child started with `CLONE_PARENT` is this thread's own child: reaped
            // here once killed (the namespace's end waits for every pid of it to be freed).
            let found: Vec<u32> = leaked.iter().map(|l| l.pid).filter(|p| *p != 0).collect();
            reap(&found);
        }
        None
    } else {
        Some(&alone)
    };
    let killed = if ns_clean && cgroup.is_none() {
        Vec::new()
    } else {
        kill_tracked(cgroup, worker)
    };
    // What the cgroups held beside the child though the shared namespace listed nothing was
    // missed by the listing: a leak, and the namespace ends too.
    let missed = spec
        .ns_init
        .as_ref()
        .is_some_and(|i| i.is_shared() && !i.is_killed())
        && killed.iter().any(|(p, _)| *p != pid);
    if missed && let Some(init) = &spec.ns_init {
        init.kill();
    }
    for (p, comm) in &killed {
        // Members of the group the runner killed at a timeout are not leaks; in a PID
        // namespace everything was listed from the init (what the cgroup still holds is
        // dying with the namespace), unless the listing missed it.
        if *p != pid && (sweep.is_some() || missed) && !(timed_out && in_group(*p, pid)) {
            leaked.push(Leaked {
                pid: *p,
                comm: comm.clone(),
                found_by: "cgroup".into(),
                action: "sigkill".into(),
            });
        }
    }
    let pids: Vec<u32> = killed
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| *p != pid)
        .collect();
    reap(&pids);
    sweep_orphans(pid, sweep, timed_out, &mut leaked);
    pipes.drain_to_eof(pid, (sweep, timed_out), cgroup, worker, &mut leaked);
    let (out, err) = pipes.finish();
    // A pipe still held after the child exited is held by something it left behind.
    if !(out.complete && err.complete)
        && let Some(init) = spec.ns_init.as_ref().filter(|i| i.is_shared())
    {
        init.kill();
    }
    // Unregistered before the reap frees the pid for reuse.
    drop(group);
    // A forked child is the server's to reap (it kept it a zombie until now, and told how
    // it ended): at once if its namespace's init waits for that, else on the server's
    // next request.
    let reap_now = spec.ns_init.as_ref().is_some_and(|i| i.is_killed());
    let (status, ru, setup_failed) = server.and_then(|s| s.exited(ipid, reap_now)).map_or_else(
        || {
            let (status, ru) = reap_with_rusage(ipid);
            (status, ru, None)
        },
        |end| (end.status, end.rusage, end.setup_failed),
    );
    // Its namespace's init finishes dying once the child is reaped.
    if let Some(init) = spec.ns_init.as_ref().filter(|i| i.is_killed()) {
        init.wait_gone(1000);
    }
    sweep_orphans(pid, sweep, timed_out, &mut leaked);
    drop(alone);
    let ended = if libc::WIFSIGNALED(status) {
        Ended::Signaled(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    };
    leaked.sort();
    leaked.dedup_by_key(|l| l.pid);
    if let Some((step, e)) = setup_failed {
        // A forked child that failed a setup step: reported as the spawn reports one, a
        // child that never started (it ran no code of the probe's).
        let ended = match spawn::reported(step, e) {
            SpawnError::Exec(e) => Ended::SpawnFailed(e),
            SpawnError::Setup(step, e) => Ended::SetupFailed(step, e),
        };
        let mut r = failed_before_spawn(start, ended);
        r.leaked = leaked;
        return r;
    }
    ChildResult {
        ended,
        timed_out,
        rusage: Rusage {
            wall_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
            user_us: tv_us(ru.ru_utime),
            sys_us: tv_us(ru.ru_stime),
            max_rss_kib: u64::try_from(ru.ru_maxrss).unwrap_or(0),
        },
        stdout: out,
        stderr: err,
        leaked,
        pid,
        lived_ms: (started_ms, crate::sandbox::audit::now_ms()),
    }
}

/// A child's stdout and stderr while it runs: the open read ends (`None` at EOF) and what
/// was captured, up to the cap.
struct Pipes {
    so: Option<File>,
    se: Option<File>,
    out: Captured,
    err: Captured,
    buf: Vec<u8>,
    cap: u64,
}

impl Pipes {
    /// The read ends stay blocking (no `fcntl` per pipe): they are read only as far as a
    /// `poll` just said they can be without blocking ([`Pipes::drain`]).
    fn new(stdout: File, stderr: File, cap: u64) -> Self {
        Self {
            so: Some(stdout),
            se: Some(stderr),
            out: Captured::default(),
            err: Captured::default(),
            // This thread's read buffer from its last child, else a new one: a 64 KiB
            // buffer allocated and freed per child is memory the allocator gives back and
            // the kernel faults in again, child after child.
            buf: READ_BUF.take().unwrap_or_else(|| vec![0u8; 64 * 1024]),
            cap,
        }
    }

    /// The open pipes' poll entries.
    fn pollfds(&self) -> Vec<libc::pollfd> {
        let mut fds = Vec::with_capacity(3);
        if let Some(s) = &self.so {
            fds.push(pollfd(s.as_raw_fd()));
        }
        if let Some(s) = &self.se {
            fds.push(pollfd(s.as_raw_fd()));
        }
        fds
    }

    /// Read what the `poll` that filled `fds` said is there.
    fn drain(&mut self, fds: &[libc::pollfd]) {
        drain(&mut self.so, fds, &mut self.out, &mut self.buf, self.cap);
        drain(&mut self.se, fds, &mut self.err, &mut self.buf, self.cap);
    }

    fn open(&self) -> bool {
        self.so.is_some() || self.se.is_some()
    }

    /// Drain both pipes to EOF (for at most 500 ms) after the child exited, killing and
    /// recording any descendant that still holds them (`group_killed` as for
    /// [`sweep_orphans`]).
    fn drain_to_eof(
        &mut self,
        pid: u32,
        (sweep, group_killed): (Option<&Alone>, bool),
        cgroup: Option<&ChildCgroup>,
        worker: Option<&WorkerCgroup>,
        leaked: &mut Vec<Leaked>,
    ) {
        let drain_deadline = Instant::now() + Duration::from_millis(500);
        while self.open() && Instant::now() < drain_deadline {
            let mut fds = self.pollfds();
            poll(&mut fds, 50);
            self.drain(&fds);
            if self.open() {
                // Something still holds the pipe: a descendant re-parented late.
                for (p, comm) in kill_tracked(cgroup, worker) {
                    let known = leaked.iter().any(|l| l.pid == p);
                    if !(known || sweep.is_none() || group_killed && in_group(p, pid)) {
                        leaked.push(Leaked {
                            pid: p,
                            comm,
                            found_by: "cgroup".into(),
                            action: "sigkill".into(),
                        });
                    }
                    reap(&[p]);
                }
                sweep_orphans(pid, sweep, group_killed, leaked);
            }
        }
    }

    /// What was captured, each marked complete if its pipe reached EOF; closes the pipes.
    fn finish(self) -> (Captured, Captured) {
        let (mut out, mut err) = (self.out, self.err);
        out.complete = self.so.is_none();
        err.complete = self.se.is_none();
        READ_BUF.set(Some(self.buf));
        (out, err)
    }
}

thread_local! {
    /// The read buffer of this thread's children's pipes, kept between children.
    static READ_BUF: std::cell::Cell<Option<Vec<u8>>> = const { std::cell::Cell::new(None) };
}

/// Phase 1: capture output until the child exits, sending SIGTERM to its group at the
/// timeout and SIGKILL (to the group and every tracked member) after the grace, and
/// Returns whether it timed out.
#[allow(clippy::too_many_arguments)]
fn wait_for_exit(
    spec: &ChildSpec,
    ipid: i32,
    pidfd: Option<&OwnedFd>,
    cgroup: Option<&ChildCgroup>,
    worker: Option<&WorkerCgroup>,
    start: Instant,
    pipes: &mut Pipes,
) -> bool {
    let deadline = start + spec.timeout;
    let mut timed_out = false;
    let mut kill_at: Option<Instant> = None;
    let mut exited = false;
    let mut interrupted = false;
    while !exited {
        if !interrupted && super::interrupt::pending().is_some() {
            // The run was interrupted: kill the child's group now (and every tracked
            // member), then wait for it as after a timeout's SIGKILL.
            interrupted = true;
            super::interrupt::note_killed();
            signal_group(ipid, libc::SIGKILL);
            if let Some(cg) = cgroup {
                cg.kill_all();
            }
            if let Some(w) = worker {
                w.kill_leftovers();
            }
            kill_at = Some(Instant::now() + Duration::from_millis(200));
        }
        let now = Instant::now();
        if !timed_out && now >= deadline {
            timed_out = true;
            signal_group(ipid, libc::SIGTERM);
            kill_at = Some(now + spec.grace);
        }
        if let Some(k) = kill_at
            && now >= k
        {
            signal_group(ipid, libc::SIGKILL);
            if let Some(cg) = cgroup {
                cg.kill_all();
            }
            if let Some(w) = worker {
                w.kill_leftovers();
            }
            kill_at = Some(now + Duration::from_millis(200));
        }
        let wake = kill_at.unwrap_or(deadline);
        let wait_ms = wake
            .saturating_duration_since(Instant::now())
            .as_millis()
            .clamp(1, 1000);
        let wait_ms = if pidfd.is_some() {
            wait_ms
        } else {
            wait_ms.min(10)
        };
        let mut fds = pipes.pollfds();
        if let Some(p) = pidfd {
            fds.push(pollfd(p.as_raw_fd()));
        }
        if !interrupted && let Some(w) = super::interrupt::wake_fd() {
            fds.push(pollfd(w));
        }
        poll(&mut fds, i32::try_from(wait_ms).unwrap_or(1000));
        pipes.drain(&fds);
        // A pidfd is readable once its process has exited: this poll said it already.
        exited = match pidfd {
            Some(p) => fds
                .iter()
                .any(|f| f.fd == p.as_raw_fd() && f.revents & libc::POLLIN != 0),
            None => has_exited(ipid),
        };
    }
    timed_out
}

/// Kill every member of the child's cgroup, or what is left in its worker's.
fn kill_tracked(cgroup: Option<&ChildCgroup>, worker: Option<&WorkerCgroup>) -> Vec<(u32, String)> {
    match (cgroup, worker) {
        (Some(cg), _) => cg.kill_all(),
        (None, Some(w)) => w.kill_leftovers(),
        (None, None) => Vec::new(),
    }
}

/// Reap the child (retrying on EINTR), with its rusage.
fn reap_with_rusage(ipid: i32) -> (i32, libc::rusage) {
    let mut status = 0;
    // SAFETY: zeroed plain data filled by wait4.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: reaping our own child.
        let rc = unsafe { libc::wait4(ipid, &raw mut status, 0, &raw mut ru) };
        if rc >= 0 || errno() != libc::EINTR {
            break;
        }
    }
    (status, ru)
}

/// A started child.
struct Started<'a> {
    pid: i32,
    stdout: File,
    stderr: File,
    /// The fork server that forked it.
    server: Option<&'a ForkServer>,
    /// It had ended already when the server replied
    /// ([`super::forkserver::Launched::ended`]).
    ended: bool,
    /// A pidfd of it, if its clone made one.
    pidfd: Option<OwnedFd>,
    /// The `children` file of the thread that cloned it: the runner's
    /// ([`spawn::Spawned::parent_children`]) or the fork server's
    /// ([`ForkServer::children_file`]).
    parent_children: Option<RawFd>,
}

/// How long a fork server may hold its `started` reply for a child with `timeout`: a
/// quarter of it, at most 20 ms ([`LaunchSpec::hold_ms`]).
fn hold_ms(timeout: Duration) -> u32 {
    u32::try_from((timeout.as_millis() / 4).min(20)).unwrap_or(0)
}

/// Start the child: a builtin helper forked by its worker's fork server, exec probes (and
/// the helper without a server) through [`spawn::spawn`] (vfork-style, the isolation and
/// profile enforced before `execve`), else through std (`posix_spawn`; the helper restricts
/// itself).
fn start_child<'a>(
    spec: &'a ChildSpec,
    cgroup: Option<&ChildCgroup>,
) -> std::result::Result<Started<'a>, Ended> {
    if let Some(server) = &spec.server
        && spec.pre_exec.is_none()
        && spec.stdin.is_none()
    {
        let env: Vec<(String, String)> = match &spec.env {
            Some(e) => e.clone(),
            None => std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        };
        let cwd = spec.cwd.clone().or_else(|| std::env::current_dir().ok());
        let launched = server.launch(&LaunchSpec {
            args: &spec.args,
            env: &env,
            cwd: cwd.as_deref(),
            clean: spec.clean,
            isolation: spec.isolation.as_ref(),
            cgroup_fd: cgroup.map(ChildCgroup::procs_fd),
            ns_init: spec.ns_init.as_ref(),
            ns_mounts: spec.ns_init.as_ref().is_some_and(|i| i.proc_mounted()),
            hold_ms: hold_ms(spec.timeout),
        });
        match launched {
            Ok(l) => {
                let (out, err) = (l.stdout.into(), l.stderr.into());
                return Ok(Started {
                    pid: l.pid,
                    stdout: out,
                    stderr: err,
                    server: Some(&**server),
                    ended: l.ended,
                    pidfd: None,
                    // The server cloned it: its `children` file is the cloning thread's
                    // (`ForkServer::children_file` argues why the check holds).
                    parent_children: server.children_file(),
                });
            }
            Err(LaunchError::Child(SpawnError::Exec(e))) => return Err(Ended::SpawnFailed(e)),
            Err(LaunchError::Child(SpawnError::Setup(step, e))) => {
                return Err(Ended::SetupFailed(step, e));
            }
            // The server is gone: this child is executed as without one.
            Err(LaunchError::Server(_)) => {}
        }
    }
    exec_child(spec, cgroup)
}

/// Start the child by executing its program.
fn exec_child<'a>(
    spec: &ChildSpec,
    cgroup: Option<&ChildCgroup>,
) -> std::result::Result<Started<'a>, Ended> {
    if spec.pre_exec.is_some() || spec.isolation.is_some() {
        let none = Prepared::none();
        let prepared = spec.pre_exec.as_ref().map_or(&none, |p| &*p.prepared);
        let mut argv = vec![
            spec.arg0
                .clone()
                .unwrap_or_else(|| spec.program.to_string_lossy().into_owned()),
        ];
        argv.extend(spec.args.iter().cloned());
        let env: Vec<(String, String)> = match &spec.env {
            Some(e) => e.clone(),
            None => std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        };
        let (program, stdin, isolation) = (&spec.program, spec.stdin.as_deref(), &spec.isolation);
        let (cwd, clean, ns_init) = (spec.cwd.as_deref(), spec.clean, &spec.ns_init);
        let procs = cgroup.map(ChildCgroup::procs_fd);
        // On a thread whose bounding set is the child's already (`spawn::with_bounding`).
        let keep = isolation.as_ref().and_then(Isolation::bounding_target);
        let spawned = spawn::with_bounding(keep, || {
            // In the init's PID namespace for this clone (this thread's children only), or
            // this thread's own when the child has none.
            let entered = EnteredPidNs::enter(ns_init.as_ref())
                .map_err(|e| SpawnError::Setup(SetupStep::Namespaces, e))?;
            let spawned = spawn::spawn(
                program,
                &argv,
                &env,
                cwd,
                clean,
                procs,
                prepared,
                stdin,
                isolation.as_ref(),
                ns_init
                    .as_ref()
                    .filter(|i| i.proc_mounted())
                    .map(|i| i.pidfd()),
            );
            drop(entered);
            spawned
        });
        return match spawned {
            Ok(s) => Ok(Started {
                pid: s.pid,
                stdout: s.stdout.into(),
                stderr: s.stderr.into(),
                server: None,
                ended: false,
                pidfd: s.pidfd,
                parent_children: s.parent_children,
            }),
            Err(SpawnError::Exec(e)) => Err(Ended::SpawnFailed(e)),
            Err(SpawnError::Setup(step, e)) => Err(Ended::SetupFailed(step, e)),
        };
    }
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args);
    if let Some(a0) = &spec.arg0 {
        cmd.arg0(a0);
    }
    if let Some(env) = &spec.env {
        cmd.env_clear();
        for (k, v) in env {
            cmd.env(k, v);
        }
    }
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    match &spec.stdin {
        Some(p) => {
            let f = File::open(p)
                .map_err(|e| Ended::SpawnFailed(e.raw_os_error().unwrap_or(libc::EIO)))?;
            cmd.stdin(Stdio::from(f));
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if !spec.clean {
        cmd.process_group(0);
    }
    // From a thread holding the worker's full bounding set (`spawn::with_full`): this
    // program drops nothing of it.
    let mut child = spawn::with_full(|| cmd.spawn())
        .map_err(|e| Ended::SpawnFailed(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let (Some(o), Some(e)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Ended::SpawnFailed(libc::EIO));
    };
    // std's `Child` does nothing on drop: the runner reaps the pid itself.
    drop(child);
    Ok(Started {
        pid,
        stdout: OwnedFd::from(o).into(),
        stderr: OwnedFd::from(e).into(),
        server: None,
        ended: false,
        pidfd: None,
        parent_children: None,
    })
}

/// The PID namespace the calling thread's children are born in (`setns(…, CLONE_NEWPID)`
/// affects the thread's future children only; the thread itself stays where it is).
///
/// On a worker thread, the init's namespace is entered for one clone and left when this is
/// dropped (the worker also starts fork servers and namespace inits, which must be born in
/// its own namespace). On a spawner thread ([`spawn::on_spawner`]), which clones nothing but
/// the exec children lent to it, the namespace stays entered between children and is
/// entered again only when a child names another init, or left when a child names none:
/// each child is still born exactly in the namespace of the init its spec names, and two
/// `setns` per child are saved. The entered init is remembered by a [`Weak`] reference to
/// its [`NsInit`]: one `NsInit` is one init process for its whole life (its pidfd is never
/// replaced), and while the `Weak` is held its allocation is never reused, so a pointer
/// match is that very init, never a later one at the same address.
///
/// [`Weak`]: std::sync::Weak
struct EnteredPidNs {
    /// This thread's own namespace, to go back to when dropped (a worker thread's entry).
    leave: Option<RawFd>,
}

thread_local! {
    /// This thread's own (active) PID namespace, opened once: where [`EnteredPidNs`] puts
    /// the thread's children back (a thread's active PID namespace never changes).
    static OWN_PID_NS: std::cell::OnceCell<Option<OwnedFd>> = const { std::cell::OnceCell::new() };
    /// On a spawner thread: the init whose namespace this thread's children are born in
    /// (`None`: the thread's own).
    static SPAWNER_ENTERED: std::cell::RefCell<Option<std::sync::Weak<NsInit>>> =
        const { std::cell::RefCell::new(None) };
}

/// This thread's own PID namespace (opened once); the errno.
fn own_pid_ns() -> std::result::Result<RawFd, i32> {
    OWN_PID_NS
        .with(|own| {
            own.get_or_init(|| crate::util::fsx::open_cloexec(c"/proc/thread-self/ns/pid"))
                .as_ref()
                .map(AsRawFd::as_raw_fd)
        })
        .ok_or(libc::EBADF)
}

/// `setns(fd, CLONE_NEWPID)` for this thread's future children; the errno.
fn set_pid_ns_for_children(fd: RawFd) -> std::result::Result<(), i32> {
    // SAFETY: setns with a descriptor and the namespace flag.
    if unsafe { libc::setns(fd, libc::CLONE_NEWPID) } != 0 {
        return Err(errno());
    }
    Ok(())
}

impl EnteredPidNs {
    /// This thread's next children are born in the PID namespace of `init`, or in the
    /// thread's own with `None`; the errno on failure (the thread's children are then born
    /// where they were before the call: a failed `setns` changes nothing).
    fn enter(init: Option<&std::sync::Arc<NsInit>>) -> std::result::Result<Self, i32> {
        if spawn::on_spawner() {
            SPAWNER_ENTERED.with_borrow_mut(|entered| {
                let same = match (init, entered.as_ref()) {
                    (Some(i), Some(e)) => std::ptr::eq(std::sync::Arc::as_ptr(i), e.as_ptr()),
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    match init {
                        Some(i) => set_pid_ns_for_children(i.pidfd())?,
                        None => set_pid_ns_for_children(own_pid_ns()?)?,
                    }
                    *entered = init.map(std::sync::Arc::downgrade);
                }
                Ok(Self { leave: None })
            })
        } else {
            let Some(init) = init else {
                return Ok(Self { leave: None });
            };
            let own = own_pid_ns()?;
            set_pid_ns_for_children(init.pidfd())?;
            Ok(Self { leave: Some(own) })
        }
    }
}

impl Drop for EnteredPidNs {
    fn drop(&mut self) {
        if let Some(own) = self.leave {
            // Back to the thread's own (active) PID namespace for its children; the
            // descriptor lives as long as the thread.
            let _ = set_pid_ns_for_children(own);
        }
    }
}

fn failed_before_spawn(start: Instant, ended: Ended) -> ChildResult {
    ChildResult {
        ended,
        timed_out: false,
        rusage: Rusage {
            wall_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
            ..Rusage::default()
        },
        stdout: Captured {
            complete: true,
            ..Captured::default()
        },
        stderr: Captured {
            complete: true,
            ..Captured::default()
        },
        leaked: Vec::new(),
        pid: 0,
        lived_ms: (0, 0),
    }
}

fn tv_us(tv: libc::timeval) -> u64 {
    u64::try_from(tv.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(tv.tv_usec).unwrap_or(0)
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: a fresh fd we own.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The child (without a pidfd) has exited: a zombie not reaped yet.
fn has_exited(pid: i32) -> bool {
    // SAFETY: zeroed plain data; WNOWAIT leaves the child unreaped.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own child.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            libc::id_t::try_from(pid).unwrap_or(0),
            &raw mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: reading the pid field of a siginfo filled by waitid.
    rc == 0 && unsafe { info.si_pid() } != 0
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) {
    // SAFETY: a valid slice of pollfd.
    unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            libc::nfds_t::try_from(fds.len()).unwrap_or(0),
            timeout_ms,
        );
    }
}

/// Read what `poll` said a (blocking) pipe read end has, without ever blocking: with
/// `POLLHUP` no writer is left (none can come back: only the runner holds the pipe
/// besides the writers it handed out), so it is read to EOF; with `POLLIN` alone, data
/// is there and one `read` returns it (at most the buffer) at once; otherwise it is not
/// read. Closes the stream at EOF or an error.
///
/// `POLLHUP` without `POLLIN` is EOF already, and the stream is closed without a `read`
/// (two system calls per child that wrote nothing: nearly every probe): a pipe's `poll`
/// sets `POLLIN` whenever the pipe holds a byte and `POLLHUP` once it has no writer
/// (`pipe_poll`, both read under the pipe's lock in one call), so the pair says "empty,
/// and no writer left" — what the `read` returning 0 would have said, and since no writer
/// can come back, nothing can be written after it. `POLLERR` and `POLLNVAL` (not a pipe's
/// answers) still go through the `read`.
fn drain(
    stream: &mut Option<File>,
    fds: &[libc::pollfd],
    cap: &mut Captured,
    buf: &mut [u8],
    limit: u64,
) {
    let Some(s) = stream else {
        return;
    };
    let fd = s.as_raw_fd();
    let revents = fds.iter().find(|p| p.fd == fd).map_or(0, |p| p.revents);
    let to_eof = revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
    if !to_eof && revents & libc::POLLIN == 0 {
        return;
    }
    if revents & (libc::POLLIN | libc::POLLERR | libc::POLLNVAL) == 0 {
        // `POLLHUP` alone: empty and no writer left (see above).
        *stream = None;
        return;
    }
    loop {
        match s.read(buf) {
            Ok(0) => {
                *stream = None;
                return;
            }
            Ok(n) => {
                cap.push(&buf[..n], limit);
                if !to_eof {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                *stream = None;
                return;
            }
        }
    }
}

/// SIGnal the child's process group (its pgid is its pid: `setsid` or `process_group(0)`),
/// falling back to the child alone if the group does not exist yet.
fn signal_group(pid: i32, sig: i32) {
    // SAFETY: sending signals.
    unsafe {
        if libc::killpg(pid, sig) != 0 {
            libc::kill(pid, sig);
        }
    }
}

/// Children currently between spawn and the end of their leak sweep.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
/// Children started so far.
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// Whether a child ran alone: no other child alive at any point of its life (none running
/// when it started, none started since), and the orphans the runner held before it
/// started. Only then can an orphan unrelated to it by session or group be its own.
#[derive(Debug)]
struct Alone {
    started: usize,
    others_at_start: usize,
    before: Vec<u32>,
}

impl Alone {
    /// A child starts; `orphans_matter`: it may leave orphans to the runner (it gets no PID
    /// namespace of its own), so the orphans held now are noted.
    fn begin(orphans_matter: bool) -> Self {
        let others_at_start = RUNNING.fetch_add(1, Ordering::SeqCst);
        let started = STARTED.fetch_add(1, Ordering::SeqCst);
        Self {
            started,
            others_at_start,
            before: if orphans_matter {
                orphans(0)
            } else {
                Vec::new()
            },
        }
    }

    /// True if `orphan` can only be this child's descendant.
    fn owns(&self, orphan: u32) -> bool {
        self.others_at_start == 0
            && RUNNING.load(Ordering::SeqCst) <= 1
            && STARTED.load(Ordering::SeqCst) == self.started + 1
            && !self.before.contains(&orphan)
    }
}

impl Drop for Alone {
    /// The child's leak sweep is over.
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Orphans re-parented to the runner. The kernel hands an orphan to the first live thread
/// of the subreaper process, which is the main thread, so this reads its children list
/// (the zygote of the PID namespaces, a child of the runner, is no orphan).
fn orphans(exclude: u32) -> Vec<u32> {
    let pid = std::process::id();
    let zygote = super::zygote::zygote_pid();
    std::fs::read_to_string(format!("/proc/self/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .filter(|p| *p != exclude && Some(*p) != zygote && !crate::sandbox::cgroup::is_kept(*p))
        .collect()
}

/// `(state, process group, session)` from `/proc/<pid>/stat`.
fn proc_info(pid: u32) -> Option<(char, i64, i64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut f = after.split_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    let sid = f.next()?.parse().ok()?;
    Some((state, pgrp, sid))
}

/// `pid` is in the process group `group`.
fn in_group(pid: u32, group: u32) -> bool {
    proc_info(pid).is_some_and(|(_, pgrp, _)| pgrp == i64::from(group))
}

fn leak_record(pid: u32, found_by: &str) -> Leaked {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Leaked {
        pid,
        comm,
        found_by: found_by.to_string(),
        action: "sigkill".into(),
    }
}

/// Reap `pids` (killed descendants) as they come back to the runner; gives up on each
/// after a bounded wait (a pid that no longer exists was reaped by its own parent).
fn reap(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut pending: Vec<u32> = pids.to_vec();
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|&p| {
            let Ok(ip) = i32::try_from(p) else {
                return false;
            };
            let mut st = 0;
            // SAFETY: waiting for one specific pid (never -1: other workers' children).
            let r = unsafe { libc::waitpid(ip, &raw mut st, libc::WNOHANG) };
            r != ip && Path::new(&format!("/proc/{p}")).exists()
        });
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Kill and reap the descendants of `child` that escaped it: the orphans re-parented to
/// the runner that are in the child's session or process group, or any new orphan when the
/// child ran alone (an escape through `setsid`, or out of a cgroup, cannot be told apart
/// otherwise; beside other children it is left to [`final_sweep`]). `None`: the child had
/// its own PID namespace, so no orphan of the runner is its own. With `group_killed` (the
/// runner signalled the child's group at a timeout), members of that group are killed
/// and reaped but not recorded: the runner killed them.
fn sweep_orphans(child: u32, alone: Option<&Alone>, group_killed: bool, leaked: &mut Vec<Leaked>) {
    let Some(alone) = alone else {
        return;
    };
    let cid = i64::from(child);
    for _ in 0..256 {
        let mine: Vec<(u32, char, bool)> = orphans(child)
            .into_iter()
            .filter_map(|p| {
                let (state, pgrp, sid) = proc_info(p)?;
                let known = leaked.iter().any(|l| l.pid == p);
                let related = pgrp == cid || sid == cid;
                let killed_by_runner = group_killed && pgrp == cid;
                (known || related || alone.owns(p)).then_some((p, state, killed_by_runner))
            })
            .filter(|(p, _, _)| {
                !leaked
                    .iter()
                    .any(|l| l.pid == *p && l.action == "reaped-done")
            })
            .collect();
        if mine.is_empty() {
            return;
        }
        let mut progressed = false;
        for (p, state, killed_by_runner) in mine {
            let Ok(ip) = i32::try_from(p) else {
                continue;
            };
            if !killed_by_runner && !leaked.iter().any(|l| l.pid == p) {
                let mut rec = leak_record(p, "subreaper");
                if state == 'Z' {
                    rec.action = "reaped".into();
                }
                leaked.push(rec);
            }
            // SAFETY: signalling and reaping one re-parented descendant.
            unsafe {
                if state != 'Z' {
                    libc::kill(ip, libc::SIGKILL);
                }
                let mut st = 0;
                if libc::waitpid(ip, &raw mut st, 0) == ip {
                    progressed = true;
                }
            }
        }
        if !progressed {
            return;
        }
    }
}

/// After every child finished: kill and reap every orphan still re-parented to the runner
/// (descendants whose leak could not be attributed to one child). Returns them.
pub fn final_sweep() -> Vec<Leaked> {
    let mut out = Vec::new();
    for _ in 0..256 {
        let found = orphans(0);
        if found.is_empty() {
            break;
        }
        for p in found {
            let Ok(ip) = i32::try_from(p) else {
                continue;
            };
            let zombie = proc_info(p).is_some_and(|(s, _, _)| s == 'Z');
            let mut rec = leak_record(p, "subreaper (end of run)");
            if zombie {
                rec.action = "reaped".into();
            }
            // SAFETY: signalling and reaping a re-parented descendant; no worker runs now.
            unsafe {
                if !zombie {
                    libc::kill(ip, libc::SIGKILL);
                }
                let mut st = 0;
                libc::waitpid(ip, &raw mut st, 0);
            }
            if !out.iter().any(|l: &Leaked| l.pid == p) {
                out.push(rec);
            }
        }
    }
    out.sort();
    out
}

/// Resolve a program the way `execvp` would, with `path_var` (default
/// `/usr/local/bin:/usr/bin:/bin`). Names with a `/` are taken as they are.
pub fn which(program: &str, path_var: Option<&str>, cwd: &Path) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return Some(if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        });
    }
    let dirs = path_var.unwrap_or("/usr/local/bin:/usr/bin:/bin");
    dirs.split(':').filter(|d| !d.is_empty()).find_map(|d| {
        let cand = Path::new(d).join(program);
        is_executable(&cand).then_some(cand)
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(program: &str, args: &[&str]) -> ChildSpec {
        ChildSpec {
            program: PathBuf::from(program),
            args: args.iter().map(ToString::to_string).collect(),
            arg0: None,
            env: None,
            cwd: None,
            clean: false,
            pre_exec: None,
            isolation: None,
            ns_init: None,
            timeout: Duration::from_secs(10),
            grace: Duration::from_millis(200),
            output_cap: 1024,
            stdin: None,
            server: None,
        }
    }

    /// Generated pipes (seeded): random bytes written, the writer closed before or between
    /// polls, read ends drained by `poll` + [`drain`] as a child's are. Every byte written is
    /// counted and the first `cap` kept, whatever came with `POLLHUP`; the stream ends only
    /// once the writer is gone and the pipe is empty, and a `POLLHUP` without `POLLIN` ends
    /// it in the very call (no `read` needed for EOF).
    #[test]
    fn a_drained_pipe_keeps_every_byte_and_ends_exactly_at_its_eof() {
        use std::io::Write;
        let mut rng = crate::util::testrng::Rng(0x5eed_d7a1);
        let mut buf = vec![0u8; 4096];
        for case in 0..300 {
            let (r, w) = crate::exec::spawn::pipe_for_tests();
            let mut w = Some(File::from(w));
            let mut stream = Some(File::from(r));
            let cap = rng.below(3000u64);
            let mut cap_seen = Captured::default();
            let mut written: Vec<u8> = Vec::new();
            // Up to 4 writes of up to 8,000 bytes each time the writer writes.
            let writes = rng.below(5u32);
            let mut first = true;
            for _ in 0..200 {
                if let Some(wf) = w.as_mut()
                    && (first || rng.chance(30))
                {
                    for _ in 0..writes {
                        let n = rng.below(8_000usize);
                        // What is not read yet stays far below the pipe's 16 page slots
                        // (a slot is freed only once its page is read whole): never blocks.
                        let unread = written.len() as u64 - cap_seen.bytes;
                        if unread + n as u64 > 24_000 {
                            break;
                        }
                        let chunk: Vec<u8> = (0..n).map(|_| rng.next().to_le_bytes()[0]).collect();
                        wf.write_all(&chunk).unwrap();
                        written.extend_from_slice(&chunk);
                    }
                }
                first = false;
                if w.is_some() && rng.chance(40) {
                    w = None;
                }
                let Some(s) = &stream else { break };
                let mut fds = [pollfd(s.as_raw_fd())];
                poll(&mut fds, 0);
                let pure_hup = fds[0].revents == libc::POLLHUP;
                drain(&mut stream, &fds, &mut cap_seen, &mut buf, cap);
                if pure_hup {
                    assert!(stream.is_none(), "case {case}: POLLHUP alone is EOF");
                }
                if stream.is_none() {
                    break;
                }
            }
            assert!(
                w.is_none() || stream.is_some(),
                "case {case}: EOF while a writer lives"
            );
            if w.is_none() {
                // Whatever is left is read now (as `drain_to_eof` would).
                while let Some(s) = &stream {
                    let mut fds = [pollfd(s.as_raw_fd())];
                    poll(&mut fds, 1000);
                    drain(&mut stream, &fds, &mut cap_seen, &mut buf, cap);
                }
                assert_eq!(
                    cap_seen.bytes,
                    written.len() as u64,
                    "case {case}: bytes counted"
                );
                let kept = usize::try_from(cap).unwrap().min(written.len());
                assert_eq!(cap_seen.kept, written[..kept], "case {case}: bytes kept");
                assert_eq!(
                    cap_seen.truncated,
                    written.len() as u64 > cap,
                    "case {case}"
                );
            }
        }
    }

    #[test]
    fn captures_output_with_a_cap_and_exit_codes() {
        let r = run_child(
            &spec("/bin/sh", &["-c", "printf hello; printf oops >&2; exit 3"]),
            Tracking::None,
        );
        assert_eq!(r.ended, Ended::Exited(3));
        assert_eq!(r.stdout.kept, b"hello");
        assert_eq!(r.stderr.kept, b"oops");
        assert!(r.stdout.complete);
        let r = run_child(
            &spec("/bin/sh", &["-c", "head -c 100000 /dev/zero"]),
            Tracking::None,
        );
        assert_eq!(r.stdout.bytes, 100_000);
        assert_eq!(r.stdout.kept.len(), 1024);
        assert!(r.stdout.truncated);
    }

    /// Through the exec spawn path (the exit read from the poll that waited, the pidfd made
    /// by the clone): generated output sizes on both streams, below
    /// and far above a pipe's buffer and the cap, and exit codes, each captured in full
    /// (counted, kept up to the cap, complete).
    #[test]
    fn exec_children_are_captured_to_eof_whatever_they_write() {
        let mut rng = crate::util::testrng::Rng(0xe0f_c4b7);
        for round in 0..12 {
            let out_n = [0u64, 10, 70_000, 300_000][rng.below(4usize)];
            let err_n = [0u64, 3, 100_000][rng.below(3usize)];
            let code = rng.below(5i32);
            let script =
                format!("head -c {out_n} /dev/zero; head -c {err_n} /dev/zero >&2; exit {code}");
            let mut s = spec("/bin/sh", &["-c", &script]);
            s.pre_exec = Some(PreExec {
                prepared: Arc::new(Prepared::none()),
            });
            s.output_cap = 100_000;
            let r = run_child(&s, Tracking::None);
            assert_eq!(r.ended, Ended::Exited(code), "round {round}: {script}");
            assert_eq!(r.stdout.bytes, out_n, "round {round}: {script}");
            assert_eq!(r.stderr.bytes, err_n, "round {round}: {script}");
            assert_eq!(r.stdout.kept.len() as u64, out_n.min(100_000));
            assert_eq!(r.stdout.truncated, out_n > 100_000);
            assert!(r.stdout.complete && r.stderr.complete, "round {round}");
        }
    }

    /// A fork server's hold is at most a quarter of the child's timeout (so a child that
    /// ended within it ended within its timeout) and at most 20 ms, over generated
    /// timeouts from 0 to 100 s.
    #[test]
    fn a_hold_never_reaches_the_timeout() {
        let mut rng = crate::util::testrng::Rng(0x401D);
        for _ in 0..2000 {
            let t = Duration::from_micros(rng.below(100_000_000u64));
            let h = u128::from(hold_ms(t));
            assert!(h * 4 <= t.as_millis() && h <= 20, "{t:?}: {h}");
        }
        assert_eq!(hold_ms(Duration::from_millis(3)), 0);
        assert_eq!(hold_ms(Duration::from_secs(10)), 20);
    }

    #[test]
    fn spawn_errors_are_reported() {
        let r = run_child(&spec("/nonexistent/prog", &[]), Tracking::None);
        assert_eq!(r.ended, Ended::SpawnFailed(libc::ENOENT));
    }

    #[test]
    fn timeouts_kill_the_group() {
        let mut s = spec("/bin/sh", &["-c", "sleep 30 & sleep 30; wait"]);
        s.timeout = Duration::from_millis(300);
        let t = Instant::now();
        let r = run_child(&s, Tracking::None);
        assert!(r.timed_out);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(r.ended, Ended::Signaled(libc::SIGTERM));
    }

    #[test]
    fn which_follows_path() {
        assert!(which("sh", None, Path::new("/")).is_some());
        assert!(which("no-such-program-here", None, Path::new("/")).is_none());
        assert_eq!(
            which("./x", None, Path::new("/tmp")),
            Some(PathBuf::from("/tmp/./x"))
        );
    }
}
