//! The exec driver's spawn: `clone(CLONE_VM | CLONE_VFORK)` with the profile enforced in the
//! child between clone and `execve`, the way `posix_spawn` starts programs.
//!
//! Why not std's `pre_exec`: it makes std `fork()`, which copies the runner's page tables
//! for every child — a cost that grows with the runner's memory (a plan of thousands of
//! probes) and that the research measured at +66…114 µs per spawn even for a small runner.
//! With `CLONE_VM | CLONE_VFORK` the child borrows the parent's memory until it execs, and
//! the parent thread waits, as glibc's `posix_spawn` does.
//!
//! The child runs [`child_main`] on a stack allocated by the parent. It makes raw system
//! calls on data prepared in the parent only — no allocation, no lock, no panic, no
//! unwinding: dup2 of stdio, on the clean channel every other inherited descriptor closed
//! but the few it still uses ([`close_inherited`]), the mounts of its mount namespace (private, or its worker's
//! prepared one when it can never change it: `Isolation::stays_in_prepared_mounts`)
//! ([`Isolation::enforce_mounts`]: the `/proc` of the PID namespace the runner started it in,
//! the read-only host of the baseline), chdir, `setsid` / `setpgid`, umask,
//! close-on-exec of descriptors above 2, joining a pids cgroup, identity and capabilities
//! ([`Isolation::enforce_identity`]), PDEATHSIG (after the identity, which clears it),
//! then [`Prepared::enforce_in_child`]
//! (rlimits, no-new-privs, `landlock_restrict_self`, seccomp last), the signal mask, and
//! `execve`. A failure stores `(step, errno)` in the parent's memory, which the child
//! shares until it execs or exits (`CLONE_VM`: the way glibc's `posix_spawn` reports its
//! child's errors), and `_exit(127)`s, so the parent tells a setup failure (apply-failed)
//! from `execve` being refused (a denial) without a pipe per child.
//! The child has its own descriptor table, credentials, rlimits, fs context and signal
//! handlers (no `CLONE_FILES`, `CLONE_FS`, `CLONE_SIGHAND`, `CLONE_THREAD`): every call
//! acts on the child only. All signals are blocked in the parent thread across the clone so
//! no handler runs on the shared memory.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sandbox::apply::{Prepared, SetupStep, errno};
use crate::sandbox::privilege::{self, Isolation};

/// Bytes of stack for the child (it only makes system calls).
const CHILD_STACK: usize = 64 * 1024;

/// `execve` itself failed (reported on the side channel with this step number).
const STEP_EXEC: u32 = 100;
/// `dup2` of stdio failed.
pub(super) const STEP_STDIO: u32 = 101;
/// `chdir` failed.
pub(super) const STEP_CHDIR: u32 = 102;
/// `setpgid` failed.
pub(super) const STEP_PGID: u32 = 103;

const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

/// What the child needs, prepared in the parent.
struct ChildArgs<'a> {
    path: CString,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    clean: bool,
    cgroup_fd: Option<RawFd>,
    prepared: &'a Prepared,
    isolation: Option<&'a Isolation>,
    /// A shared namespace's init whose prepared mount namespace the child joins
    /// ([`Isolation::enforce_mounts_from`]).
    join_mounts: Option<RawFd>,
    /// What failed, stored by the child before it exits ([`fail`]; 0: nothing). The
    /// parent reads it once the clone returned, when the child has exec'd or exited
    /// (`CLONE_VFORK`), so nothing else writes it meanwhile.
    failure: std::sync::atomic::AtomicU64,
    /// A superset of the child's bounding set at its start (its parent thread's:
    /// [`privilege::thread_bounding`]), so it drops without reading it.
    bounding: Option<u64>,
    /// The mask the program starts with: empty (not the spawning thread's: a runner
    /// started with signals blocked passes them to its threads, and a blocked signal
    /// survives `execve`).
    mask: libc::sigset_t,
    /// The runner's pid: the child's parent, unless the runner already died.
    parent: libc::pid_t,
    /// A pidfd of the runner (readable once it has exited), for a child in a PID namespace
    /// of its own, whose parent is outside it (`getppid` is 0 there).
    runner: RawFd,
    /// The signals whose disposition the child sets to the default before anything else
    /// (bit `n - 1` for signal `n`): the ones the runner ignores, when the clone already
    /// reset every handler (`CLONE_CLEAR_SIGHAND`, [`ignored_signals`]); else every
    /// catchable one.
    reset: u64,
    /// The socket a child with a mount namespace of its own sends that namespace to
    /// ([`ns_releaser`]), or -1.
    ns_release: RawFd,
    /// The child sent its mount namespace (stored before it execs).
    ns_sent: std::sync::atomic::AtomicBool,
}

/// A started child.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid.
    pub pid: i32,
    /// Read end of its stdout.
    pub stdout: OwnedFd,
    /// Read end of its stderr.
    pub stderr: OwnedFd,
    /// A pidfd of it, made by the clone itself (`CLONE_PIDFD`); `None` where `clone3` is
    /// not available (the caller opens one).
    pub pidfd: Option<OwnedFd>,
    /// The `children` file of the thread that cloned it (its `/proc/thread-self/children`,
    /// opened once per thread and held as long as the thread lives, which outlives its
    /// worker's call), for `NsInit::holds_nothing_but`; `None` on the runner's main thread
    /// (whose children file other workers read for orphans) or if it cannot be opened.
    pub parent_children: Option<RawFd>,
}

/// Why a spawn did not produce a running program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// `execve` (or resolving the program) failed with this errno.
    Exec(i32),
    /// A setup step failed in the child (or preparing it in the parent).
    Setup(SetupStep, i32),
}

/// A close-on-exec pipe `(read, write)` for the tests of other modules.
#[cfg(test)]
pub(super) fn pipe_for_tests() -> (OwnedFd, OwnedFd) {
    pipe().expect("pipe2")
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A descriptor numbered 3 or above (so dup2 onto 0-2 in the child cannot clobber another
/// source when the runner was started with stdio closed).
fn above_stdio(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: duplicating our own fd.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn cstring(s: &[u8]) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::Exec(libc::EINVAL))
}

/// Start `program` with `argv` (argv[0] included), `env` (`NAME=value` pairs), in `cwd`,
/// stdin `/dev/null` (or the file `stdin`, opened read-only here), stdout/stderr piped, a
/// new session (`clean`) or process group, optionally joining the pids cgroup whose join
/// file (`cgroup::child_join_file`: v1 `tasks`, v2 `cgroup.procs`) is open at `cgroup_fd`, in the namespaces and with the identity and
/// capabilities of `isolation`, with `prepared` enforced before `execve`.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    program: &Path,
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&Path>,
    clean: bool,
    cgroup_fd: Option<RawFd>,
    prepared: &Prepared,
    stdin: Option<&Path>,
    isolation: Option<&Isolation>,
    join_mounts: Option<RawFd>,
) -> Result<Spawned, SpawnError> {
    let io = |e: std::io::Error| {
        SpawnError::Setup(SetupStep::CloseFds, e.raw_os_error().unwrap_or(libc::EIO))
    };
    let path = cstring(program.as_os_str().as_bytes())?;
    let argv_c: Vec<CString> = argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let env_c: Vec<CString> = env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
        .collect::<Result<_, _>>()?;
    let cwd_c = cwd.map(|c| cstring(c.as_os_str().as_bytes())).transpose()?;
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let own_stdin = match stdin {
        Some(p) => {
            Some(above_stdio(OwnedFd::from(std::fs::File::open(p).map_err(io)?)).map_err(io)?)
        }
        None => None,
    };
    let stdin_fd = match &own_stdin {
        Some(f) => f.as_raw_fd(),
        None => dev_null().map_err(io)?,
    };
    STACK.with_borrow_mut(|stack| {
        let stack = stack.get_or_insert_with(|| vec![0u8; CHILD_STACK].into_boxed_slice());
        // The stack grows down: pass its top, 16-byte aligned.
        let base = stack.as_mut_ptr();
        // SAFETY: within the allocation.
        let top = unsafe { base.add(stack.len()) };
        let top = (top as usize & !15) as *mut libc::c_void;
        clone_child(
            (base.cast(), top),
            ChildSpawn {
                path,
                argv: argv_p,
                envp: envp_p,
                cwd: cwd_c,
                stdin: stdin_fd,
                own_stdin,
                clean,
                cgroup_fd,
                prepared,
                isolation,
                join_mounts,
            },
        )
    })
}

/// What [`spawn`] prepared for one child.
struct ChildSpawn<'a> {
    path: CString,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    stdin: RawFd,
    /// The stdin file opened for this child (else `stdin` is the shared `/dev/null`).
    own_stdin: Option<OwnedFd>,
    clean: bool,
    cgroup_fd: Option<RawFd>,
    prepared: &'a Prepared,
    isolation: Option<&'a Isolation>,
    join_mounts: Option<RawFd>,
}

thread_local! {
    /// The stack of this thread's vfork children, allocated once: the thread is suspended
    /// while its child runs on it (`CLONE_VFORK`), and one child at a time does.
    static STACK: std::cell::RefCell<Option<Box<[u8]>>> = const { std::cell::RefCell::new(None) };
}

/// `/dev/null`, opened once (read-only, close-on-exec, above stdio): the stdin of every
/// child that reads no file.
fn dev_null() -> std::io::Result<RawFd> {
    static NULL: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let fd = above_stdio(OwnedFd::from(std::fs::File::open("/dev/null")?))?;
    Ok(NULL.get_or_init(|| fd).as_raw_fd())
}

/// Clone the child on the stack `(base, top)` (`top` 16-byte aligned) and see it to its
/// `execve`.
fn clone_child(
    (base, top): (*mut libc::c_void, *mut libc::c_void),
    c: ChildSpawn<'_>,
) -> Result<Spawned, SpawnError> {
    let io = |e: std::io::Error| {
        SpawnError::Setup(SetupStep::CloseFds, e.raw_os_error().unwrap_or(libc::EIO))
    };
    let ChildSpawn {
        path,
        argv: argv_p,
        envp: envp_p,
        cwd: cwd_c,
        stdin,
        own_stdin,
        clean,
        cgroup_fd,
        prepared,
        isolation,
        join_mounts,
    } = c;
    let (out_r, out_w) = pipe().map_err(io)?;
    let (err_r, err_w) = pipe().map_err(io)?;
    let out_w = above_stdio(out_w).map_err(io)?;
    let err_w = above_stdio(err_w).map_err(io)?;
    let (parent, runner) = runner().map_err(io)?;

    // Block every signal in this thread across the clone; the child restores `old`.
    // SAFETY: zeroed sigsets filled by the calls below.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to local sigsets.
    unsafe {
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut old);
    }
    let mut child_args = ChildArgs {
        path,
        argv: argv_p,
        envp: envp_p,
        cwd: cwd_c,
        stdin,
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        clean,
        cgroup_fd,
        prepared,
        isolation,
        join_mounts,
        failure: std::sync::atomic::AtomicU64::new(0),
        bounding: isolation.map(|_| privilege::thread_bounding()),
        mask: empty_sigset(),
        parent,
        runner,
        reset: ignored_signals(),
        ns_release: isolation
            .filter(|i| i.owns_mounts(join_mounts.is_some()))
            .and_then(|_| ns_releaser())
            .map_or(-1, |r| r.send.as_raw_fd()),
        ns_sent: std::sync::atomic::AtomicBool::new(false),
    };
    let flags = libc::CLONE_VM
        | libc::CLONE_VFORK
        | isolation.map_or(0, |i| i.clone_flags_from(join_mounts.is_some()));
    let mut pidfd: libc::c_int = -1;
    // SAFETY: `child_main` only makes async-signal-safe system calls on `child_args`,
    // which outlives the call (CLONE_VFORK suspends this thread until the child execs or
    // exits); `top` is the top of this thread's child stack.
    let mut pid = unsafe { clone3_vfork(flags, (base, top), &raw mut pidfd, &raw mut child_args) };
    if pid == CLONE3_UNAVAILABLE {
        // No child was made: clone(2), which resets no handler, so the child resets every
        // disposition itself; the caller opens the pidfd.
        child_args.reset = every_signal();
        // SAFETY: as above.
        pid = unsafe {
            libc::clone(
                child_main,
                top,
                flags | libc::SIGCHLD,
                (&raw mut child_args).cast(),
            )
        };
    }
    let clone_errno = errno();
    // SAFETY: restoring this thread's mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut());
    }
    // SAFETY: a descriptor the kernel made for us (`CLONE_PIDFD`), owned from here on.
    let pidfd = (pid > 0 && pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    // The child has exec'd or exited: anything it reported is stored already.
    let failure = child_args
        .failure
        .load(std::sync::atomic::Ordering::Acquire);
    if child_args
        .ns_sent
        .load(std::sync::atomic::Ordering::Acquire)
        && let Some(r) = ns_releaser()
    {
        r.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    drop(child_args);
    drop(out_w);
    drop(err_w);
    drop(own_stdin);
    if pid < 0 {
        return Err(SpawnError::Setup(SetupStep::CloseFds, clone_errno));
    }
    if failure & FAILED != 0 {
        let step = u32::try_from((failure >> 32) & 0x7fff_ffff).unwrap_or(0);
        #[allow(clippy::cast_possible_truncation)] // the low 32 bits: the errno as stored
        let e = (failure as u32).cast_signed();
        let mut st = 0;
        // SAFETY: reaping the child that failed before exec.
        unsafe { libc::waitpid(pid, &raw mut st, 0) };
        return Err(reported(step, e));
    }
    Ok(Spawned {
        pid,
        stdout: out_r,
        stderr: err_r,
        pidfd,
        parent_children: thread_children(),
    })
}

thread_local! {
    /// This thread's `/proc/thread-self/children`, opened at its first spawn.
    static THREAD_CHILDREN: std::cell::OnceCell<Option<OwnedFd>> =
        const { std::cell::OnceCell::new() };
}

/// The calling thread's `children` file ([`Spawned::parent_children`]): `None` on the
/// runner's main thread (orphans are re-parented to it, and other workers sweep them from
/// its file: what hangs from it is not its one child's alone) or if it cannot be opened.
fn thread_children() -> Option<RawFd> {
    THREAD_CHILDREN.with(|c| {
        c.get_or_init(|| {
            // SAFETY: gettid and getpid take no argument.
            if unsafe { libc::gettid() == libc::getpid() } {
                return None;
            }
            crate::util::fsx::open_cloexec(c"/proc/thread-self/children")
        })
        .as_ref()
        .map(AsRawFd::as_raw_fd)
    })
}

/// Run `f` (a spawn: it clones children) on a thread of this thread's whose bounding set is
/// exactly `keep`, when `keep` is less than this thread's; else here.
///
/// Why: a child that clears its bounding set to the capabilities it keeps drops the others
/// one `PR_CAPBSET_DROP` at a time, and each drop copies and commits the child's
/// credentials (41 of them for a child that keeps nothing: the largest part of an exec
/// child's setup, ~60 µs here). Credentials — the bounding set among them — are per
/// thread, and a child cloned by a thread starts with *that thread's* credentials
/// (`copy_creds` copies the cloning task's). So each worker thread keeps one *spawner
/// thread* per distinct bounding set its children end with, which dropped the others from
/// its own set once; the children it clones start with the set they must end with, and
/// [`Isolation::enforce_identity_from`] (given that thread's remembered set,
/// [`privilege::thread_bounding`]) finds nothing left to drop.
///
/// A worker thread of the scheduler ([`dedicate_thread`]) lowers its *own* set instead, to
/// the first such set its children keep, and clones those children itself (no hand-off);
/// a spawner is used for a child keeping less than that, and the worker's *keeper*
/// (a thread holding the set the worker had) for a child keeping more, for one that keeps
/// its set, and for the fork servers and std-spawned helpers the worker starts
/// ([`with_full`]). Why this is sound (for a spawner; [`dedicate_thread`] for the worker):
///
/// - The spawner's set is exactly the worker's less what `keep` does not hold: it dropped
///   the rest, and the set read back after the drops must be that (else the spawner is not
///   used and the child drops as before); a bounding set only shrinks. A kept capability
///   the runner's set lacks the child could not have kept anyway.
/// - The effective, permitted, inheritable and ambient sets are the runner's, unchanged
///   by the drops (the spawner keeps its effective set for the clone, the namespaces and
///   the mounts); the child sets each of them itself, as before.
/// - Everything else a child inherits from its thread is the same as from its worker: the
///   signal mask (inherited at the spawner's creation; no runner thread changes its mask
///   afterwards, and the child starts its program with an empty mask), the PID namespace
///   for children (entered by `f`, on the spawner), the file system context and descriptor
///   table (process-wide), the parent process (`getppid`, the runner: the worker reaps
///   the child as before, `wait4` sees every thread's children).
/// - The parent-death signal fires when the child's *parent thread* ends: a spawner lives
///   as long as its worker thread (it ends when the worker's thread-locals are dropped),
///   which reaps every child it started before it ends.
/// - The worker waits for `f` to finish before it goes on (`f` borrows its stack), so it
///   still runs one child at a time.
pub fn with_bounding<R: Send>(keep: Option<u64>, f: impl FnOnce() -> R + Send) -> R {
    let own = privilege::thread_bounding();
    // A thread that lowered its own set ([`dedicate_thread`]) lends a child that must keep
    // more than it holds now, or that does not touch its set at all, to its keeper, which
    // holds the set the thread had: the child is cloned there as it was before.
    if lowered() && keep.is_none_or(|k| k & !own != 0) {
        return with_keeper(move || with_bounding(keep, f));
    }
    let Some(keep) = keep.filter(|k| own & !k != 0) else {
        return f();
    };
    // A dedicated thread's first such child: the thread lowers its own set to the child's
    // (once), and this child and every later one keeping the same clones here, with no
    // spawner in between.
    if DEDICATED.get() && !lowered() {
        // Tried once: a thread that could not lower its set uses spawners from then on.
        DEDICATED.set(false);
        if lower_to(keep) {
            return f();
        }
    }
    let spawner = SPAWNERS.with_borrow_mut(|spawners| {
        if let Some((_, s)) = spawners.iter().find(|(k, _)| *k == keep) {
            return Some(s.clone());
        }
        let s = std::rc::Rc::new(Spawner::start(Some(keep))?);
        spawners.push((keep, s.clone()));
        Some(s)
    });
    match spawner {
        Some(s) => s.run(f).unwrap_or_else(|f| f()),
        // No spawner could be started: here, the child dropping its own bounding set.
        None => f(),
    }
}

/// Mark the calling thread as one that lives for one run's lanes only and clones nothing
/// but through this module, [`with_full`] and the closures it is lent (a scheduler's
/// worker thread): [`with_bounding`] may lower its own bounding set to its children's.
///
/// Why: with a spawner, every child costs two hand-offs between the worker and its
/// spawner (the job, then its answer: two context switches, each a wait for a core when
/// both are busy). A worker whose own set already is its children's clones them itself.
/// Why this is sound: a bounding set limits only what later programs can gain
/// (`execve`) — the thread's own effective and permitted sets, with which it joins
/// namespaces, mounts and clones, are unchanged — and the only programs a worker thread
/// starts are its children (through [`with_bounding`], which clones one that must keep
/// more than the lowered set, or that keeps its set, on the keeper: a thread made just
/// before the drop, holding the set the worker had), fork servers and std-spawned
/// helpers (started through [`with_full`], on the keeper too). The keeper is created by
/// the worker, so it shares what a thread passes to its children: its cgroup (v1: the
/// worker's, joined before any child is spawned), signal mask, its PID namespace for
/// children (the thread's own: [`with_bounding`]'s closures enter an init's only for one
/// clone) and lives as long as the worker (a thread-local of it), like the worker's own
/// children's parent-death signal. What a child gets from its cloning thread is then the
/// same as from a spawner of that set: the set itself, exactly (read back after the drop;
/// a drop that left more is not used), and all else the worker's.
pub(super) fn dedicate_thread() {
    DEDICATED.set(true);
}

/// Run `f` (which starts a program: a fork server, a helper spawned by std) on a thread
/// holding the bounding set this thread had before it lowered it ([`dedicate_thread`]);
/// here when it never did.
pub fn with_full<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if lowered() { with_keeper(f) } else { f() }
}

/// This thread lowered its own bounding set (it has a keeper).
fn lowered() -> bool {
    KEEPER.with_borrow(Option::is_some)
}

/// Run `f` on this thread's keeper (here if this thread has none: it never lowered its
/// set). A keeper ends only with its worker's thread-locals, so it always answers; were it
/// gone, `f` panics rather than run with less than it needs.
fn with_keeper<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let keeper = KEEPER.with_borrow(Clone::clone);
    match keeper {
        Some(k) => k
            .run(f)
            .unwrap_or_else(|_| panic!("a worker's keeper thread ended before the worker")),
        None => f(),
    }
}

/// Lower this thread's own bounding set to `keep`, after starting its keeper (a thread
/// made now holds the set this thread has); true when the set is then exactly `keep`
/// (as far as this thread held it). A drop that failed part-way leaves a set between the
/// two: the thread keeps its keeper (what it lost is there), and its children drop the
/// rest themselves from the set read back.
fn lower_to(keep: u64) -> bool {
    let before = privilege::thread_bounding();
    let Some(keeper) = Spawner::start(None) else {
        return false;
    };
    // SAFETY: prctl on this thread's own bounding set.
    let dropped = unsafe { privilege::drop_bounding_except(keep, 63) };
    let now = privilege::reread_thread_bounding();
    if now != before {
        KEEPER.set(Some(std::rc::Rc::new(keeper)));
    }
    dropped && now == before & keep
}

/// A job lent to a spawner thread: a closure on the lending thread's stack.
struct Lent(*mut (dyn FnMut() + Send + 'static));

// SAFETY: the closure is `Send`; the pointer is only dereferenced by the spawner while the
// lender waits for it (`Spawner::run`).
unsafe impl Send for Lent {}

/// A thread whose bounding set is one worker's children's ([`with_bounding`]), or a
/// worker's keeper (the set the worker had before it lowered its own).
struct Spawner {
    jobs: std::sync::mpsc::Sender<Lent>,
    /// One answer per job: it returned (`true`) or panicked.
    done: std::sync::mpsc::Receiver<bool>,
}

thread_local! {
    /// This thread's spawners, by bounding set (a handful: one per distinct set of kept
    /// capabilities among the profiles). Dropped with the thread, which ends them.
    static SPAWNERS: std::cell::RefCell<Vec<(u64, std::rc::Rc<Spawner>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// The keeper of a thread that lowered its own bounding set ([`dedicate_thread`]).
    static KEEPER: std::cell::RefCell<Option<std::rc::Rc<Spawner>>> =
        const { std::cell::RefCell::new(None) };
    /// This thread may lower its own bounding set ([`dedicate_thread`]).
    static DEDICATED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

thread_local! {
    /// This thread is a spawner ([`on_spawner`]).
    static ON_SPAWNER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The calling thread is a spawner thread: it clones nothing but the children of the jobs
/// lent to it by [`with_bounding`] (no fork server, no namespace init, no thread), so what
/// it sets for its children — the PID namespace they are born in — concerns those
/// children only (`exec::child`'s `EnteredPidNs` keeps it between children). A keeper is
/// not one (it also starts fork servers).
pub(super) fn on_spawner() -> bool {
    ON_SPAWNER.get()
}

impl Spawner {
    /// Start a thread that drops from its bounding set everything but `keep`; `None` if it
    /// cannot (no `CAP_SETPCAP`) or its set is then not exactly the calling thread's less
    /// what `keep` does not hold. With `keep` `None`: a keeper, which drops nothing.
    fn start(keep: Option<u64>) -> Option<Self> {
        // What the children of the calling thread start with; the spawner's, less the rest.
        let exact_set = privilege::thread_bounding() & keep.unwrap_or(u64::MAX);
        let (jobs, jobs_rx) = std::sync::mpsc::channel::<Lent>();
        let (done_tx, done) = std::sync::mpsc::channel::<bool>();
        let (ready_tx, ready) = std::sync::mpsc::channel::<bool>();
        std::thread::Builder::new()
            .spawn(move || {
                let exact = match keep {
                    Some(keep) => {
                        // SAFETY: prctl on this thread's own bounding set.
                        let dropped = unsafe { privilege::drop_bounding_except(keep, 63) };
                        // Read back (and remembered for this thread's children).
                        dropped && privilege::thread_bounding() == exact_set
                    }
                    None => true,
                };
                if ready_tx.send(exact).is_err() || !exact {
                    return;
                }
                ON_SPAWNER.set(keep.is_some());
                while let Ok(Lent(job)) = jobs_rx.recv() {
                    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        // SAFETY: the lender waits for our answer (`Spawner::run`).
                        unsafe { (*job)() }
                    }))
                    .is_ok();
                    if done_tx.send(ok).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        ready.recv().ok().filter(|exact| *exact)?;
        Some(Self { jobs, done })
    }

    /// Run `f` on this thread and wait for it; `f` back if the thread ended first (then
    /// it never touched the job: an ended thread runs nothing).
    fn run<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> Result<R, F> {
        let mut f = Some(f);
        let mut out = None;
        let mut job = || {
            if let Some(f) = f.take() {
                out = Some(f());
            }
        };
        let lent: *mut (dyn FnMut() + Send + '_) = &raw mut job;
        // SAFETY: only the lifetime is erased. The thread runs the job only between our
        // send and its answer, which we wait for below (or learn that it ended without
        // running it); `job` is dropped only after that, so it outlives every use of the
        // pointer.
        #[allow(clippy::transmute_ptr_to_ptr)] // only the lifetime changes, which no cast can do
        let lent = Lent(unsafe {
            std::mem::transmute::<*mut (dyn FnMut() + Send + '_), *mut (dyn FnMut() + Send + 'static)>(
                lent,
            )
        });
        let ran = match self.jobs.send(lent) {
            Ok(()) => self.done.recv().ok(),
            Err(_) => None,
        };
        #[allow(clippy::drop_non_drop)] // ends the borrows of `f` and `out` the job holds
        drop(job);
        // A job that panicked on the spawner panics its caller.
        assert!(
            ran != Some(false),
            "a spawner thread's job panicked (see the panic above)"
        );
        match f.take() {
            Some(f) => Err(f),
            None => match out {
                Some(out) => Ok(out),
                None => unreachable!("a job that ran without panicking left its result"),
            },
        }
    }
}

/// The mount namespaces of exec children, released off the children's exit path.
///
/// Why: a child with a mount namespace of its own (the exec baseline's read-only host, a
/// probe's read-only `reads`: [`Isolation::owns_mounts`]) tears it down when it exits, and
/// that teardown waits for an RCU grace period (`namespace_unlock` →
/// `synchronize_rcu_expedited`) before the child becomes a zombie — while the other core
/// is busy (as it is with one worker per core), the grace period waits for it, and the
/// worker waits for the child: `perf record -a -g -e sched:sched_switch` over 2,000 exec
/// children (both lanes) found 1,000 (every baseline child) asleep there at their exit,
/// and `sched_process_exit` → `SIGCHLD` took 124 µs at the median and 2.9 ms at the 90th
/// percentile against 65 µs and 0.1 ms for the bare spawn loop (benches/spawn_loop.c).
///
/// How: right after its mounts, the child opens a pidfd of itself and, from it, its own
/// namespace ([`own_mount_ns`]) and sends both over a Unix socket (`SCM_RIGHTS`, without
/// waiting: a full socket or any error leaves the namespace to the child's exit, as
/// before). The *releaser* thread receives them and holds the namespace until the pidfd
/// says the child has exited, so the child's exit only drops its own reference; then it
/// closes it, and pays the grace period off every child's path. (Released any earlier,
/// the child would hold the last reference and pay at its exit, as before.)
///
/// Why the releaser has a descriptor table of its own (`unshare(CLONE_FILES)`, everything
/// in it closed but its socket and stdio): a namespace received into the runner's shared
/// table would be copied into every vfork child cloned meanwhile (a child starts with a
/// copy of the table), and a child whose `execve` closed the last copy would pay the grace
/// period instead, in its `execve`. No clone ever copies the releaser's table; the
/// runner's holds only the sending end (close-on-exec: a program never has it).
///
/// Soundness: what is held is the dead child's own namespace, in which nothing runs and
/// which nothing can enter (only the releaser holds a descriptor of it); its scratch
/// directory stays bound in it until it is released, which the removal of the scratch
/// directories waits for ([`await_released_mounts`]). The child sends before its
/// identity, limits and profile are applied, which follow as before.
struct NsReleaser {
    /// The sending end (`SOCK_SEQPACKET`, close-on-exec), inherited by every vfork child.
    send: OwnedFd,
    /// Namespaces sent so far (counted by the parent of each child that sent one).
    sent: std::sync::atomic::AtomicU64,
    /// Namespaces released so far, and its change.
    released: std::sync::Arc<(std::sync::Mutex<u64>, std::sync::Condvar)>,
}

/// The runner's releaser, once started ([`start_ns_releaser`]; `None`: none could be;
/// children then tear their namespaces down themselves).
static NS_RELEASER: std::sync::OnceLock<Option<NsReleaser>> = std::sync::OnceLock::new();

/// The releaser, if it was started.
fn ns_releaser() -> Option<&'static NsReleaser> {
    NS_RELEASER.get().and_then(Option::as_ref)
}

/// Start the releaser of children's mount namespaces ([`NsReleaser`]), once per process.
/// From a thread in no worker's cgroup and in its own PID namespace for its children (a
/// thread cannot be created by one whose children go to another PID namespace, and it
/// stays in its creator's cgroup for the rest of the process): the pipeline's, before
/// any worker starts.
pub(crate) fn start_ns_releaser() {
    NS_RELEASER.get_or_init(NsReleaser::start);
}

impl NsReleaser {
    fn start() -> Option<Self> {
        let mut fds = [0i32; 2];
        // SAFETY: a valid array for the two descriptors.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        } != 0
        {
            return None;
        }
        // SAFETY: fresh descriptors we own.
        let (recv, send) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let released =
            std::sync::Arc::new((std::sync::Mutex::new(0u64), std::sync::Condvar::new()));
        let counter = released.clone();
        let (ready_tx, ready) = std::sync::mpsc::channel::<bool>();
        let sock = recv.as_raw_fd();
        std::thread::Builder::new()
            .name("ns-release".into())
            .spawn(move || {
                // SAFETY: this thread's descriptor table becomes its own copy, in which
                // every descriptor but stdio and the socket is closed (the runner's copies
                // stay open in the runner's table).
                let private = unsafe { libc::unshare(libc::CLONE_FILES) } == 0
                    && unsafe { close_all_but(sock) };
                if ready_tx.send(private).is_err() || !private {
                    return;
                }
                serve_releases(sock, &counter);
            })
            .ok()?;
        // Started, with the socket in its own table: the runner's copy goes.
        let started = ready.recv().is_ok_and(|p| p);
        drop(recv);
        started.then_some(Self {
            send,
            sent: std::sync::atomic::AtomicU64::new(0),
            released,
        })
    }
}

/// The releaser's loop: receive each child's `[namespace, pidfd]` on `sock`, hold both
/// until the pidfd says the child has exited, then close them (the namespace's teardown,
/// and its grace period, happen here) and count one more released. Returns at the end of
/// the socket (the runner never closes its sending end: with the process).
fn serve_releases(sock: RawFd, counter: &(std::sync::Mutex<u64>, std::sync::Condvar)) {
    // Each held namespace with its child's pidfd: one per child alive (one per worker).
    let mut held: Vec<(OwnedFd, Vec<OwnedFd>)> = Vec::new();
    let mut open = true;
    while open || !held.is_empty() {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(held.len() + 1);
        fds.push(libc::pollfd {
            fd: if open { sock } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        });
        fds.extend(held.iter().map(|(pidfd, _)| libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: a valid slice of pollfd.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                libc::nfds_t::try_from(fds.len()).unwrap_or(0),
                -1,
            )
        };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return;
        }
        // Children gone: their namespaces go (back to front, so indices stay valid).
        let mut released = 0u64;
        for i in (1..fds.len()).rev() {
            if fds[i].revents != 0 {
                drop(held.swap_remove(i - 1));
                released += 1;
            }
        }
        if released > 0 {
            let (m, cv) = counter;
            *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += released;
            cv.notify_all();
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let mut byte = [0u8; 1];
            let (n, mut got) = super::sidecar::recv_with_fds(sock, &mut byte);
            if n == 0 && got.is_empty() {
                open = false;
            } else if got.len() == 2 {
                // As sent: the namespace, then the child's pidfd.
                let pidfd = got.remove(1);
                held.push((pidfd, got));
            } else {
                // Not a child's message: nothing to hold (counted as one released, as
                // its sender counted one sent).
                drop(got);
                let (m, cv) = counter;
                *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
                cv.notify_all();
            }
        } else if fds[0].revents != 0 {
            open = false;
        }
    }
}

/// Close every descriptor of the calling thread's table from 3 on but `keep`.
///
/// # Safety
/// The table is the caller's own (after `unshare(CLONE_FILES)`).
unsafe fn close_all_but(keep: RawFd) -> bool {
    let close = |lo: u32, hi: u32| {
        // SAFETY: closing descriptors of the caller's own table.
        lo > hi || unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) } == 0
    };
    match u32::try_from(keep) {
        Ok(k) if k >= 3 => close(3, k - 1) && close(k + 1, u32::MAX),
        _ => close(3, u32::MAX),
    }
}

/// Wait (at most `timeout`) until every mount namespace sent to the releaser so far was
/// released: before a run removes its children's scratch directories, which the
/// namespaces still bind.
pub(crate) fn await_released_mounts(timeout: std::time::Duration) {
    let Some(r) = ns_releaser() else {
        return;
    };
    let target = r.sent.load(std::sync::atomic::Ordering::SeqCst);
    let deadline = std::time::Instant::now() + timeout;
    let (m, cv) = &*r.released;
    let mut released = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    while *released < target {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        released = cv
            .wait_timeout(released, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
}

/// In the child, after its mounts: a pidfd of itself and, from it, its own mount namespace
/// ([`own_mount_ns`]), both sent to the releaser's socket `sock` without waiting; whether
/// they went.
///
/// # Safety
/// Only in the cloned child.
unsafe fn send_own_mounts(sock: RawFd) -> bool {
    // SAFETY: pidfd_open, ioctl, open and close on the child's own descriptors; the send
    // (`sidecar::send_some_with_fds_flagged`) allocates nothing and uses only its stack.
    unsafe {
        // SAFETY: getpid cannot fail; a pidfd of this very process (its pid as its own
        // PID namespace numbers it, where `pidfd_open` looks it up).
        let pidfd = libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0);
        let Ok(pidfd) = RawFd::try_from(pidfd) else {
            return false;
        };
        if pidfd < 0 {
            return false;
        }
        let ns = own_mount_ns(pidfd, true);
        if ns < 0 {
            libc::close(pidfd);
            return false;
        }
        // One byte with both descriptors attached, without waiting: a full socket leaves the
        // copy to this child's exit.
        let sent = super::sidecar::send_some_with_fds_flagged(
            sock,
            &[0u8],
            &[ns, pidfd],
            libc::MSG_DONTWAIT,
        ) == Some(1);
        libc::close(ns);
        libc::close(pidfd);
        sent
    }
}

/// `PIDFD_GET_MNT_NAMESPACE` (`_IO(PIDFS_IOCTL_MAGIC 0xFF, 3)`, Linux 6.11): a descriptor of
/// the mount namespace of the process a pidfd names.
const PIDFD_GET_MNT_NAMESPACE: libc::Ioctl = 0xFF03;

/// A close-on-exec descriptor of the calling process's own mount namespace, or -1: asked
/// of `pidfd`, a pidfd of the caller itself, by `PIDFD_GET_MNT_NAMESPACE` (with `by_pidfd`),
/// else (an older kernel, or the ioctl refused) opened as `/proc/self/ns/mnt`. Both give
/// the same namespace with the same check (nsfs's ptrace check, which a process passes on
/// itself); the ioctl walks no path: the open looks up `/proc/self`, the child's fresh
/// `/proc/<pid>` and `ns` in the namespace's procfs, dentries made for this child alone
/// (about 20 µs of a baseline exec child's CPU, against a few for the ioctl).
///
/// # Safety
/// Async-signal-safe (system calls only): callable in the cloned child.
unsafe fn own_mount_ns(pidfd: RawFd, by_pidfd: bool) -> RawFd {
    if by_pidfd {
        // SAFETY: an ioctl without argument on a descriptor the caller owns.
        let ns = unsafe { libc::ioctl(pidfd, PIDFD_GET_MNT_NAMESPACE, 0) };
        if ns >= 0 {
            return ns;
        }
    }
    // SAFETY: opening a path with a static C string.
    unsafe {
        libc::open(
            c"/proc/self/ns/mnt".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    }
}

/// What a child's `(step, errno)` report means (also the fork server's children).
pub(super) fn reported(step: u32, e: i32) -> SpawnError {
    match step {
        STEP_EXEC => SpawnError::Exec(e),
        STEP_STDIO | STEP_CHDIR | STEP_PGID => SpawnError::Setup(SetupStep::CloseFds, e),
        s => SpawnError::Setup(SetupStep::from_u32(s).unwrap_or(SetupStep::CloseFds), e),
    }
}

/// The bit of [`ChildArgs::failure`] that says a step failed.
const FAILED: u64 = 1 << 63;

/// Store `(step, errno)` for the parent and exit.
///
/// # Safety
/// Only in the cloned child.
unsafe fn fail(failure: &std::sync::atomic::AtomicU64, step: u32, e: i32) -> libc::c_int {
    // The errno's bits, read back as they are.
    let e = u64::from(e.cast_unsigned());
    failure.store(
        FAILED | (u64::from(step & 0x7fff_ffff) << 32) | e,
        std::sync::atomic::Ordering::Release,
    );
    // SAFETY: exiting without running any destructor.
    unsafe { libc::_exit(127) }
}

/// The runner's pid and a pidfd of it, opened once (close-on-exec: a child's copy is gone
/// at its `execve`).
fn runner() -> std::io::Result<(libc::pid_t, RawFd)> {
    static RUNNER: std::sync::OnceLock<(libc::pid_t, OwnedFd)> = std::sync::OnceLock::new();
    if let Some((pid, fd)) = RUNNER.get() {
        return Ok((*pid, fd.as_raw_fd()));
    }
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() };
    // SAFETY: pidfd_open of our own pid (the descriptor is close-on-exec).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).unwrap_or(-1)) };
    let fd = above_stdio(fd)?;
    let (pid, fd) = RUNNER.get_or_init(|| (pid, fd));
    Ok((*pid, fd.as_raw_fd()))
}

/// What [`clone3_vfork`] returns when no child was made because `clone3` (or one of its
/// flags) is not available here: an old kernel (`ENOSYS`; `CLONE_CLEAR_SIGHAND` is Linux
/// 5.5), or a seccomp filter of a container runtime that refuses it (`ENOSYS`, `EPERM`).
const CLONE3_UNAVAILABLE: libc::c_int = -2;

/// `clone3` was refused once as unavailable: every later spawn uses `clone(2)` at once.
static CLONE3_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `struct clone_args` up to `tls` (`CLONE_ARGS_SIZE_VER0`, Linux 5.3).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// `clone3` of a child that shares this process's memory until it execs or exits
/// (`CLONE_VM | CLONE_VFORK`, plus the namespace flags in `flags`) and runs [`child_main`]
/// on `args` on the stack `(base, top)`, as `posix_spawn` does, with two things the
/// `clone(2)` of the C library cannot ask for:
///
/// - `CLONE_CLEAR_SIGHAND`: the child starts with every *handled* signal reset to its
///   default action (the kernel's `flush_signal_handlers`), so no handler of the runner's
///   can run on the memory the child shares with it, without a `sigaction` per signal;
///   ignored ones stay ignored (the child resets those it is told to, `ChildArgs::reset`);
/// - `CLONE_PIDFD`: the pidfd the runner waits on is made by the clone (stored at
///   `pidfd`), not opened by another system call after it.
///
/// Returns the child's pid, `-errno`, or [`CLONE3_UNAVAILABLE`] (no child was made).
///
/// # Safety
/// `args` stays valid and unmoved until this returns (the parent thread is suspended
/// until the child execs or exits); `(base, top)` is memory no one else uses meanwhile;
/// every signal is blocked in the calling thread.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_vfork(
    flags: libc::c_int,
    (base, top): (*mut libc::c_void, *mut libc::c_void),
    pidfd: *mut libc::c_int,
    args: *mut ChildArgs<'_>,
) -> libc::c_int {
    const CLONE_PIDFD: u64 = 0x1000;
    const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
    if CLONE3_REFUSED.load(std::sync::atomic::Ordering::Relaxed) {
        return CLONE3_UNAVAILABLE;
    }
    let mut ca = CloneArgs {
        // The namespace flags are non-negative `c_int` bits.
        flags: u64::from(flags.cast_unsigned()) | CLONE_PIDFD | CLONE_CLEAR_SIGHAND,
        pidfd: pidfd.addr() as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: u64::from(libc::SIGCHLD.cast_unsigned()),
        // The kernel starts the child with its stack pointer at `stack + stack_size`.
        stack: base.addr() as u64,
        stack_size: (top.addr() as u64).saturating_sub(base.addr() as u64),
        tls: 0,
    };
    let entry: extern "C" fn(*mut libc::c_void) -> libc::c_int = child_main;
    let ret: i64;
    // SAFETY: the system call makes a child that returns from it with rax 0 on the new
    // stack (16-byte aligned top: `call` leaves it as a function entry expects); the child
    // never returns into this function's frame: it calls `child_main(args)` and exits with
    // its result (`child_main` itself ends in `execve` or `_exit`). The parent returns
    // here with the pid or `-errno`; rcx and r11 are clobbered by `syscall`.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, 60",
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") &raw mut ca,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") args,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    let ret = libc::c_int::try_from(ret).unwrap_or(-libc::EINVAL);
    if [-libc::ENOSYS, -libc::EINVAL, -libc::E2BIG, -libc::EPERM].contains(&ret) {
        CLONE3_REFUSED.store(true, std::sync::atomic::Ordering::Relaxed);
        return CLONE3_UNAVAILABLE;
    }
    if ret < 0 {
        // SAFETY: setting this thread's errno for the caller, as the C library would.
        unsafe { *libc::__errno_location() = -ret };
        return -1;
    }
    ret
}

/// Elsewhere the C library's `clone(2)` is used ([`CLONE3_UNAVAILABLE`]).
///
/// # Safety
/// None needed: it makes no child.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3_vfork(
    _flags: libc::c_int,
    _stack: (*mut libc::c_void, *mut libc::c_void),
    _pidfd: *mut libc::c_int,
    _args: *mut ChildArgs<'_>,
) -> libc::c_int {
    CLONE3_UNAVAILABLE
}

/// Signal `sig` as its bit in a [`ChildArgs::reset`] mask.
fn sig_bit(sig: libc::c_int) -> u64 {
    1u64 << (sig - 1)
}

/// Every signal but SIGKILL and SIGSTOP, the C library's own included: what an exec child
/// and the fork server reset (with the raw system call, [`set_default`]) — neither relies
/// on the C library's two (no thread is cancelled, no id changed across threads), and an
/// ignored one of them survives `execve` and `clone` as any other.
fn every_signal() -> u64 {
    (1..=64)
        .filter(|s| *s != libc::SIGKILL && *s != libc::SIGSTOP)
        .fold(0, |m, s| m | sig_bit(s))
}

/// The kernel's `struct sigaction` for `rt_sigaction` (x86-64 and aarch64 layout).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// The disposition of `sig` set to the default (the raw system call: the C library's
/// wrapper refuses its own signals); async-signal-safe.
fn set_default(sig: libc::c_int) {
    let act = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: rt_sigaction with a valid action, no old action, the kernel's sigset size.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &raw const act,
            std::ptr::null_mut::<KernelSigaction>(),
            8usize,
        );
    }
}

/// The signals this process ignores now (one `rt_sigaction` query each).
fn scan_ignored() -> u64 {
    let all = every_signal();
    (1..=64).filter(|s| all & sig_bit(*s) != 0).fold(0, |m, s| {
        let mut old = KernelSigaction {
            handler: 0,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: a query only (no new action); a valid pointer of the kernel's layout.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                s,
                std::ptr::null::<KernelSigaction>(),
                &raw mut old,
                8usize,
            )
        };
        if rc == 0 && old.handler == libc::SIG_IGN {
            m | sig_bit(s)
        } else {
            m
        }
    })
}

/// Signals this process has ignored at some point since its first spawn (a superset of
/// what it ignores now), bit `n - 1` for signal `n`; [`IGNORED_SCANNED`] says whether
/// the first scan was made.
static IGNORED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static IGNORED_SCANNED: std::sync::Once = std::sync::Once::new();

/// The signals a child must set back to their default action itself: those the runner
/// ignores (an ignored disposition survives `clone` and `execve`, so a child would inherit
/// what its runner's parent ignored: `nohup`, SIGHUP; a shell's background job, SIGINT and
/// SIGQUIT; Rust ignores SIGPIPE). Found once, by one query per signal at the first spawn,
/// and kept a superset of what the runner ignores since: every place of the runner that
/// sets a disposition to `SIG_IGN` afterwards says so first ([`will_ignore`]; the run's
/// signal guard when it puts back what it found, `exec::interrupt`). Debug builds check it
/// against the dispositions at every spawn. Handlers need no such care: the clone resets
/// them (`CLONE_CLEAR_SIGHAND`), and `execve` would too.
fn ignored_signals() -> u64 {
    IGNORED_SCANNED.call_once(|| {
        IGNORED.fetch_or(scan_ignored(), std::sync::atomic::Ordering::SeqCst);
    });
    let known = IGNORED.load(std::sync::atomic::Ordering::SeqCst);
    #[cfg(debug_assertions)]
    {
        let missed = scan_ignored() & !known;
        assert!(
            missed == 0,
            "signals ignored without spawn::will_ignore (mask {missed:#x}): a child would \
             inherit them"
        );
    }
    known
}

/// The runner is about to set the dispositions of `signals` to `SIG_IGN`: every child
/// started from now on sets them back to the default before its `execve`. Call it before
/// the change, so no child is started between the change and the note.
pub(crate) fn will_ignore(signals: &[libc::c_int]) {
    IGNORED_SCANNED.call_once(|| {
        IGNORED.fetch_or(scan_ignored(), std::sync::atomic::Ordering::SeqCst);
    });
    let all = every_signal();
    let mask = signals
        .iter()
        .filter(|s| (1..=64).contains(*s))
        .fold(0, |m, s| m | (sig_bit(*s) & all));
    IGNORED.fetch_or(mask, std::sync::atomic::Ordering::SeqCst);
}

/// Put `fd` on `target` (clearing close-on-exec even when they are equal).
///
/// # Safety
/// Only in the cloned child.
unsafe fn onto(fd: RawFd, target: RawFd) -> bool {
    // SAFETY: plain descriptor calls on the child's own table.
    unsafe {
        if fd == target {
            let fl = libc::fcntl(fd, libc::F_GETFD);
            return libc::fcntl(fd, libc::F_SETFD, fl & !libc::FD_CLOEXEC) == 0;
        }
        libc::dup2(fd, target) == target
    }
}

/// Every catchable signal's disposition set to its default in the calling process: an
/// ignored one survives `clone` and `execve`, so a probe's child would otherwise inherit
/// whatever its runner's parent ignored (`nohup`: SIGHUP; a shell's background job: SIGINT
/// and SIGQUIT; a parent that `posix_spawn`ed it with signals blocked: the C library's own
/// two, 32 and 33, which its `posix_spawn` sets ignored) and could not be ended by them.
/// Handlers are reset too (a clone without `CLONE_SIGHAND` has its own table).
/// Async-signal-safe: the `rt_sigaction` system call only.
///
/// # Safety
/// Changes the calling process's signal dispositions: call it only in a child of its own
/// (or a single-threaded helper process) that relies on no handler of its parent's.
pub(crate) unsafe fn default_dispositions() {
    // SAFETY: as documented above.
    unsafe { reset_dispositions(every_signal()) }
}

/// The signals of `mask` (bit `n - 1` for signal `n`) set to their default action.
///
/// # Safety
/// As [`default_dispositions`].
unsafe fn reset_dispositions(mask: u64) {
    let mut rest = mask;
    while rest != 0 {
        let bit = rest.trailing_zeros();
        rest &= rest - 1;
        // `bit` < 64.
        set_default(bit.cast_signed() + 1);
    }
}

/// An empty signal set.
pub(crate) fn empty_sigset() -> libc::sigset_t {
    // SAFETY: a zeroed sigset emptied by `sigemptyset`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        set
    }
}

/// How many descriptors above stdio a child keeps past [`close_inherited`] at most.
const KEPT_MAX: usize = 5;

/// In a child of the clean channel, right after its stdio: close every descriptor from 3
/// on but the ones it still uses before its `execve` — the prepared mount namespace's init
/// it joins, the releaser's socket, its cgroup's join file, the runner's pidfd, its
/// Landlock ruleset (all close-on-exec: the program gets none of them).
///
/// Why: the clone copied the runner's whole descriptor table, which is shared by its
/// threads — another worker's child's pipe write ends among them, while that worker is
/// between making its child's pipes and closing its own ends after the clone. Until this
/// child's copy of such a write end is gone, the other child's output has no end, and the
/// runner's drain of it waits (500 ms at most, then the output is recorded incomplete).
/// Close-on-exec alone dropped the copies only at this child's `execve`, after its mounts
/// (a namespace copy), chdir, cgroup join, identity and profile — under load, preempted
/// anywhere in between. Now they live from the clone to here: the stdio `dup2`s. The end
/// state at `execve` is the same (every one of them was close-on-exec), and so is the work
/// (the same descriptors are closed, earlier). Not in the direct channel: there a
/// descriptor the runner inherited without close-on-exec passes to the program, as it
/// would with any spawn, and only `execve` tells those apart.
///
/// # Safety
/// Only in the cloned child (its own descriptor table: no `CLONE_FILES`).
unsafe fn close_inherited(a: &ChildArgs<'_>) -> bool {
    let mut keep: [RawFd; KEPT_MAX] = [
        a.join_mounts.unwrap_or(-1),
        a.ns_release,
        a.cgroup_fd.unwrap_or(-1),
        a.runner,
        a.prepared.child_fd().unwrap_or(-1),
    ];
    // SAFETY: as documented above.
    unsafe { close_from_3_but(&mut keep) }
}

/// Close every descriptor from 3 on but those in `keep` (any order; negative ones, those
/// below 3 and repeats are ignored; sorted in place): `close_range` over the gaps. No
/// allocation.
///
/// # Safety
/// The calling process's own descriptor table, none of whose other descriptors is used
/// again.
unsafe fn close_from_3_but(keep: &mut [RawFd; KEPT_MAX]) -> bool {
    // Insertion sort: a handful of values, no allocation.
    for i in 1..KEPT_MAX {
        let mut j = i;
        while j > 0 && keep[j - 1] > keep[j] {
            keep.swap(j - 1, j);
            j -= 1;
        }
    }
    let close = |lo: u32, hi: u32| {
        // SAFETY: as the caller guarantees.
        lo > hi || unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) } == 0
    };
    let mut lo: u32 = 3;
    for &fd in keep.iter() {
        // Negative: none; below `lo`: below 3, or a repeat.
        let Ok(fd) = u32::try_from(fd) else {
            continue;
        };
        if fd < lo {
            continue;
        }
        if fd > lo && !close(lo, fd - 1) {
            return false;
        }
        lo = fd + 1;
    }
    close(lo, u32::MAX)
}

/// The child, between clone and execve.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the parent's `ChildArgs`, alive while the parent is suspended.
    let a: &ChildArgs<'_> = unsafe { &*arg.cast::<ChildArgs<'_>>() };
    // SAFETY: async-signal-safe system calls acting on this (child) process only.
    unsafe {
        // Every signal's default action: the clone reset the handlers (else `reset` holds
        // every signal); the ignored ones are reset here — Rust ignores SIGPIPE in the
        // runner, and a runner started under `nohup` or as a shell's background job
        // ignores SIGHUP, SIGINT and SIGQUIT: an ignored disposition survives `execve`,
        // so a child would inherit it ([`ignored_signals`]).
        reset_dispositions(a.reset);
        if !(onto(a.stdin, 0) && onto(a.stdout, 1) && onto(a.stderr, 2)) {
            return fail(&a.failure, STEP_STDIO, *libc::__errno_location());
        }
        // The clean channel: the copies of the runner's descriptors go now, all but the
        // few this child still uses, before the slow steps ([`close_inherited`]).
        if a.clean && !close_inherited(a) {
            return fail(
                &a.failure,
                SetupStep::CloseFds as u32,
                *libc::__errno_location(),
            );
        }
        // Mounts first: the working directory is looked up after them.
        if let Some(iso) = a.isolation
            && let Err((step, e)) = iso.enforce_mounts_from(a.join_mounts)
        {
            return fail(&a.failure, step as u32, e);
        }
        // A mount namespace of its own goes to the releaser, which drops it once the
        // child is gone (best effort: else the child's exit tears it down).
        if a.ns_release >= 0 && send_own_mounts(a.ns_release) {
            a.ns_sent.store(true, std::sync::atomic::Ordering::Release);
        }
        if let Some(cwd) = &a.cwd
            && libc::chdir(cwd.as_ptr()) != 0
        {
            return fail(&a.failure, STEP_CHDIR, *libc::__errno_location());
        }
        if a.clean {
            // Its own session, as documented. Its cost is the kernel's, not this code's:
            // `setsid` makes a scheduler autogroup (`sched_autogroup_create_attach`,
            // whatever `kernel.sched_autogroup_enabled` says), in which the child runs when
            // the runner is in the root `cpu` cgroup with autogroups enabled (this host).
            // Measured (issue 16, tenth session, three sittings at load average 10–17 from
            // other work; an `LD_PRELOAD` experiment with a process group instead, never
            // committed): the 5,000-probe exec bench took 1.46–4.75× the bare spawn loop's
            // wall time with it and 1.02–1.12× without (paired medians; CPU 847–1,025 and
            // 827–909 µs per child), and benches/spawn_loop.c with `POSIX_SPAWN_SETSID`
            // 2.0–2.5× its own time without. Apparently each child's switch of scheduling
            // group makes the runner's threads wait for their group's turn when other
            // groups are runnable. A run `cpu` cgroup would end the scheduling cost, but a
            // new `cpu` cgroup with RT group scheduling has no RT runtime
            // (`sched_setscheduler(SCHED_FIFO)` is EPERM in it, allowed in an autogroup),
            // so probes would see a different host.
            if libc::setsid() < 0 {
                return fail(
                    &a.failure,
                    SetupStep::Setsid as u32,
                    *libc::__errno_location(),
                );
            }
            libc::umask(0o022);
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                return fail(
                    &a.failure,
                    SetupStep::CloseFds as u32,
                    *libc::__errno_location(),
                );
            }
        } else if libc::setpgid(0, 0) != 0 {
            return fail(&a.failure, STEP_PGID, *libc::__errno_location());
        }
        if let Some(fd) = a.cgroup_fd
            && libc::write(fd, b"0".as_ptr().cast(), 1) != 1
        {
            return fail(
                &a.failure,
                SetupStep::Cgroup as u32,
                *libc::__errno_location(),
            );
        }
        // Identity and capabilities after every step that needs root (the cgroup join).
        if let Some(iso) = a.isolation
            && let Err((step, e)) = iso.enforce_identity_from(a.bounding)
        {
            return fail(&a.failure, step as u32, e);
        }
        // Die with the runner. Set after the identity step: the kernel clears the
        // parent-death signal when the uid or gid changes (`commit_creds`). The spawning
        // thread, suspended in vfork until the exec, outlives the child's wait. A runner
        // killed before this line left the child re-parented already: then the signal
        // would never come, so stop here.
        // In its own PID namespace the child's parent is outside it (`getppid` is 0): there
        // the runner's pidfd tells (readable once the runner has exited). The parent
        // thread, suspended in the vfork until the child execs, can only end with the
        // whole runner.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        let orphaned = if a.isolation.is_some_and(Isolation::pid_namespace) {
            let mut p = libc::pollfd {
                fd: a.runner,
                events: libc::POLLIN,
                revents: 0,
            };
            libc::poll(&raw mut p, 1, 0) == 1
        } else {
            libc::getppid() != a.parent
        };
        if orphaned {
            libc::_exit(127);
        }
        if let Err((step, e)) = a.prepared.enforce_in_child() {
            return fail(&a.failure, step as u32, e);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const a.mask, std::ptr::null_mut());
        libc::execve(a.path.as_ptr(), a.argv.as_ptr(), a.envp.as_ptr());
        fail(&a.failure, STEP_EXEC, *libc::__errno_location())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::model::registry::LinuxCapability;
    use crate::model::results::ChildPrivileges;
    use crate::sandbox::privilege::{self, ChildRequest, RunnerPrivileges};

    /// Run `argv` with `isolation` (no profile), return its stdout and wait status.
    fn run(argv: &[&str], isolation: &Isolation, cwd: &Path) -> (String, i32) {
        let argv: Vec<String> = argv.iter().map(ToString::to_string).collect();
        let none = Prepared::none();
        // As the runner does: on a spawner thread whose bounding set is the child's.
        let s = with_bounding(isolation.bounding_target(), || {
            spawn(
                Path::new(&argv[0]),
                &argv,
                &[],
                Some(cwd),
                true,
                None,
                &none,
                None,
                Some(isolation),
                None,
            )
        })
        .expect("spawned");
        let mut out = String::new();
        std::fs::File::from(s.stdout)
            .read_to_string(&mut out)
            .unwrap();
        let mut st = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(s.pid, &raw mut st, 0) };
        (out, st)
    }

    /// A child's privileges as these tests' children get them unless a test says
    /// otherwise (struct update syntax): applied, root's identity unchanged, no capability
    /// kept, its bounding set cleared, no PID namespace, the exec baseline's read-only host
    /// by a mount namespace.
    fn privileges(runner: &RunnerPrivileges) -> ChildPrivileges {
        ChildPrivileges {
            applied: true,
            uid: 0,
            gid: 0,
            identity: false,
            capabilities: Vec::new(),
            cap_last: runner.cap_last,
            bounding_cleared: true,
            pid_namespace: false,
            namespace_init: None,
            pid_namespace_reason: None,
            baseline_host_read_only: privilege::RO_MOUNT_NAMESPACE.into(),
            baseline_host_reason: None,
            runner_environ: String::new(),
        }
    }

    fn field(out: &str, key: &str) -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    }

    /// A status line of `/proc/<pid>/status` as a mask.
    fn status_mask(out: &str, key: &str) -> u64 {
        u64::from_str_radix(&field(out, key), 16).unwrap_or(u64::MAX)
    }

    /// Signals this test may ignore or handle in its own (multi-threaded) process without
    /// disturbing other tests: none that ends or reaps anything the tests rely on (not
    /// SIGCHLD, SIGPIPE, the crash signals, SIGINT/SIGTERM/SIGHUP of a run's guard).
    fn harmless_signals() -> Vec<libc::c_int> {
        let mut v = vec![
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGURG,
            libc::SIGXCPU,
            libc::SIGXFSZ,
            libc::SIGVTALRM,
            libc::SIGPROF,
            libc::SIGWINCH,
            libc::SIGIO,
            libc::SIGPWR,
        ];
        v.extend(libc::SIGRTMIN() + 2..=libc::SIGRTMAX());
        v
    }

    extern "C" fn noop_handler(_: libc::c_int) {}

    /// Whatever the runner ignores or handles, an executed child starts with every signal's
    /// default action and none blocked: generated rounds ignore (announced with
    /// [`will_ignore`], as the runner's code must) and handle random sets of signals in
    /// this process, some changed after children were already started (so a disposition
    /// found at the first spawn is not all that counts), through `clone3` and through the
    /// `clone(2)` fallback; the child's own `/proc/self/status` shows nothing ignored,
    /// caught or blocked. Each child's pidfd (made by the clone) names that very child.
    #[test]
    fn children_start_with_default_dispositions_whatever_the_runner_ignores() {
        let harmless = harmless_signals();
        let mut rng = crate::util::testrng::Rng(0x5_16_1a_0e);
        let none = Prepared::none();
        let dir = tempfile::tempdir().unwrap();
        let clone3_here = !CLONE3_REFUSED.load(std::sync::atomic::Ordering::SeqCst);
        for round in 0..24 {
            let mut changed = Vec::new();
            for &sig in &harmless {
                let ignore = rng.chance(30);
                let handle = !ignore && rng.chance(20);
                if !(ignore || handle) {
                    continue;
                }
                if ignore {
                    will_ignore(&[sig]);
                }
                // SAFETY: zeroed plain data; a no-op handler or SIG_IGN for a signal no
                // other test relies on.
                unsafe {
                    let mut sa: libc::sigaction = std::mem::zeroed();
                    sa.sa_sigaction = if ignore {
                        libc::SIG_IGN
                    } else {
                        noop_handler as extern "C" fn(libc::c_int) as libc::sighandler_t
                    };
                    assert_eq!(libc::sigaction(sig, &raw const sa, std::ptr::null_mut()), 0);
                }
                changed.push(sig);
            }
            // Half the rounds through the fallback (no `CLONE_CLEAR_SIGHAND`, no pidfd).
            let fallback = rng.chance(50);
            if clone3_here {
                CLONE3_REFUSED.store(fallback, std::sync::atomic::Ordering::SeqCst);
            }
            let argv = vec!["/bin/cat".to_string(), "/proc/self/status".to_string()];
            let s = spawn(
                Path::new("/bin/cat"),
                &argv,
                &[],
                Some(dir.path()),
                true,
                None,
                &none,
                None,
                None,
                None,
            )
            .expect("spawned");
            assert_eq!(s.pidfd.is_some(), clone3_here && !fallback, "round {round}");
            let mut out = String::new();
            std::fs::File::from(s.stdout)
                .read_to_string(&mut out)
                .unwrap();
            let mut st = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(s.pid, &raw mut st, 0) };
            assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, "{round}");
            for key in ["SigIgn:", "SigCgt:", "SigBlk:"] {
                assert_eq!(status_mask(&out, key), 0, "round {round} {key}\n{out}");
            }
            for sig in changed {
                // SAFETY: back to the default for the signal this round changed.
                unsafe { libc::signal(sig, libc::SIG_DFL) };
            }
        }
        if clone3_here {
            CLONE3_REFUSED.store(false, std::sync::atomic::Ordering::SeqCst);
            // A pidfd made by the clone names its child: a signal sent through it ends it.
            let argv = vec!["/bin/sleep".to_string(), "30".to_string()];
            let s = spawn(
                Path::new("/bin/sleep"),
                &argv,
                &[],
                Some(dir.path()),
                true,
                None,
                &none,
                None,
                None,
                None,
            )
            .expect("spawned");
            let pidfd = s.pidfd.expect("a pidfd from clone3");
            // SAFETY: pidfd_send_signal on our child's pidfd.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0u32,
                )
            };
            assert_eq!(rc, 0);
            let mut st = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(s.pid, &raw mut st, 0) };
            assert!(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL);
        }
    }

    /// A child's setup failure comes back through the memory it shares with its parent
    /// until it execs or exits ([`fail`]): generated sequences of children whose program
    /// is missing (`execve`: ENOENT), whose working directory is missing (the chdir step:
    /// ENOENT), or that start and exit 0 — with and without an isolation (so on this
    /// thread or a spawner). Each gets its own answer, never the one before it.
    #[test]
    fn each_childs_setup_failure_is_its_own() {
        let runner = RunnerPrivileges::current();
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let privileges = ChildPrivileges {
            applied: runner.euid == 0,
            uid: runner.euid,
            gid: runner.egid,
            bounding_cleared: runner.euid == 0,
            baseline_host_read_only: privilege::RO_NONE.into(),
            ..privileges(&runner)
        };
        let (iso, _) = Isolation::new(&ChildRequest {
            privileges: &privileges,
            pid_namespace: Ok(()),
            scratch: dir.path(),
            host_read_only: false,
            read_only_inputs: &[],
        });
        let mut rng = crate::util::testrng::Rng(0x0fa1_1ed5);
        let none = Prepared::none();
        for round in 0..60 {
            let kind = rng.below(3u8);
            let program = if kind == 0 {
                "/nonexistent/prog"
            } else {
                "/bin/true"
            };
            let cwd = if kind == 1 {
                gone.as_path()
            } else {
                dir.path()
            };
            let isolation = rng.chance(50).then_some(&iso);
            let argv = vec![program.to_string()];
            let got = with_bounding(isolation.and_then(Isolation::bounding_target), || {
                spawn(
                    Path::new(program),
                    &argv,
                    &[],
                    Some(cwd),
                    true,
                    None,
                    &none,
                    None,
                    isolation,
                    None,
                )
            });
            match (kind, got) {
                (0, Err(e)) => assert_eq!(e, SpawnError::Exec(libc::ENOENT), "{round}"),
                (1, Err(e)) => assert_eq!(
                    e,
                    SpawnError::Setup(SetupStep::CloseFds, libc::ENOENT),
                    "{round}"
                ),
                (2, Ok(s)) => {
                    let mut st = 0;
                    // SAFETY: reaping our own child.
                    unsafe { libc::waitpid(s.pid, &raw mut st, 0) };
                    assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, "{round}");
                }
                (k, got) => panic!("round {round}, kind {k}: {got:?}"),
            }
        }
    }

    /// What a child sends the releaser is its own mount namespace ([`own_mount_ns`]),
    /// whichever way it is asked: in generated forked children that make 0–3 namespaces of
    /// their own (`unshare`), go back to the runner's (`setns`) or not, and then hide
    /// `/proc` or not (a tmpfs over it, in their own namespace), the descriptor from the
    /// pidfd (`PIDFD_GET_MNT_NAMESPACE`) and the one from `/proc/self/ns/mnt` are the same
    /// namespace (device and inode), a mount namespace (`NS_GET_NSTYPE`), close-on-exec,
    /// and the runner's exactly when the child ended in the runner's. With `/proc` hidden
    /// only the pidfd answers, so the ioctl is what answered (on a kernel that has it:
    /// Linux 6.11; on an older one the child must find nothing rather than another
    /// namespace).
    #[test]
    fn the_namespace_a_child_sends_is_its_own_however_it_is_asked() {
        /// `NS_GET_NSTYPE` (`_IO(0xb7, 3)`): the type of a namespace descriptor.
        const NS_GET_NSTYPE: libc::Ioctl = 0xb703;
        let runner = RunnerPrivileges::current();
        if runner.euid != 0 || runner.effective & (1 << 21) == 0 {
            // Without CAP_SYS_ADMIN no child gets a mount namespace: nothing to send.
            return;
        }
        let fstat = |fd: RawFd| {
            // SAFETY: fstat of a descriptor into a zeroed stat.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            (unsafe { libc::fstat(fd, &raw mut st) } == 0).then_some((st.st_dev, st.st_ino))
        };
        let own = std::fs::File::open("/proc/self/ns/mnt").unwrap();
        let own_id = fstat(own.as_raw_fd()).unwrap();
        // SAFETY: a pidfd of this process, asked once for its namespace and closed.
        let ioctl_here = unsafe {
            let p = RawFd::try_from(libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0))
                .unwrap_or(-1);
            let ns = libc::ioctl(p, PIDFD_GET_MNT_NAMESPACE, 0);
            let here = ns >= 0 && fstat(ns) == Some(own_id);
            libc::close(ns);
            libc::close(p);
            here
        };
        let mut rng = crate::util::testrng::Rng(0x5e_4d_0f_0e);
        let (mut hidden_rounds, mut own_rounds) = (0, 0);
        for round in 0..48 {
            let unshares = rng.below(4u32);
            let back = unshares > 0 && rng.chance(30);
            let hide = (unshares > 0 && !back) && rng.chance(50);
            let (r, w) = pipe().unwrap();
            let runner_ns = own.as_raw_fd();
            // SAFETY: the child only makes system calls (its report is on its stack) and
            // exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: as above, in the forked child.
                unsafe {
                    let mut rep = [0u64; 8];
                    let mut ok = true;
                    for _ in 0..unshares {
                        ok &= libc::unshare(libc::CLONE_NEWNS) == 0;
                    }
                    if back {
                        ok &= libc::setns(runner_ns, libc::CLONE_NEWNS) == 0;
                    }
                    if hide {
                        ok &= libc::mount(
                            std::ptr::null(),
                            c"/".as_ptr(),
                            std::ptr::null(),
                            libc::MS_REC | libc::MS_PRIVATE,
                            std::ptr::null(),
                        ) == 0;
                        ok &= libc::mount(
                            c"none".as_ptr(),
                            c"/proc".as_ptr(),
                            c"tmpfs".as_ptr(),
                            0,
                            std::ptr::null(),
                        ) == 0;
                    }
                    let pidfd =
                        RawFd::try_from(libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0))
                            .unwrap_or(-1);
                    let by_pidfd = own_mount_ns(pidfd, true);
                    let by_path = own_mount_ns(pidfd, false);
                    let mut st: libc::stat = std::mem::zeroed();
                    for (i, fd) in [by_pidfd, by_path].into_iter().enumerate() {
                        if fd >= 0 && libc::fstat(fd, &raw mut st) == 0 {
                            rep[i * 3] = st.st_dev;
                            rep[i * 3 + 1] = st.st_ino;
                            let cloexec = libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0;
                            let mnt = libc::ioctl(fd, NS_GET_NSTYPE, 0) == libc::CLONE_NEWNS;
                            rep[i * 3 + 2] = u64::from(cloexec) | (u64::from(mnt) << 1);
                        }
                    }
                    rep[6] = u64::from(ok);
                    libc::write(w.as_raw_fd(), rep.as_ptr().cast(), size_of_val(&rep));
                    libc::_exit(0);
                }
            }
            drop(w);
            let mut bytes = Vec::new();
            std::fs::File::from(r).read_to_end(&mut bytes).unwrap();
            let mut st = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid, &raw mut st, 0) };
            assert_eq!(bytes.len(), 64, "round {round}");
            let rep: Vec<u64> = bytes
                .chunks(8)
                .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
                .collect();
            let what = format!("round {round}: unshares {unshares}, back {back}, hide {hide}");
            assert_eq!(rep[6], 1, "{what}: the child's own steps failed");
            let by_pidfd = (rep[0], rep[1]);
            let by_path = (rep[3], rep[4]);
            let in_own = unshares > 0 && !back;
            if hide {
                hidden_rounds += 1;
                // No `/proc` to open: only the pidfd can answer.
                assert_eq!(by_path, (0, 0), "{what}: /proc was hidden");
                if ioctl_here {
                    assert_ne!(by_pidfd, (0, 0), "{what}: the pidfd did not answer");
                    assert_eq!(rep[2], 3, "{what}: close-on-exec and a mount namespace");
                    assert_ne!(by_pidfd, own_id, "{what}: the runner's namespace");
                } else {
                    assert_eq!(by_pidfd, (0, 0), "{what}: another namespace answered");
                }
                continue;
            }
            assert_ne!(by_path, (0, 0), "{what}: /proc/self/ns/mnt");
            assert_eq!(rep[5], 3, "{what}: close-on-exec and a mount namespace");
            assert_eq!(by_pidfd, by_path, "{what}: two different namespaces");
            assert_eq!(rep[2], 3, "{what}: close-on-exec and a mount namespace");
            assert_eq!(by_pidfd == own_id, !in_own, "{what}");
            own_rounds += usize::from(in_own);
        }
        assert!(
            hidden_rounds > 3 && own_rounds > 3,
            "{hidden_rounds} {own_rounds}"
        );
    }

    /// A child with a mount namespace of its own (a read-only host, read-only inputs, in
    /// generated mixes with children without one) sends it to the releaser before its
    /// `execve` ([`NsReleaser`]): each such child counts one more namespace sent, every one
    /// sent is released once [`await_released_mounts`] returns, and the releaser's own
    /// descriptor table holds nothing but stdio, its socket and what it holds for children
    /// still running (never a copy of the runner's descriptors: a pipe it held would never
    /// reach its end). The children still run where they did: in a namespace that is not the
    /// runner's, with the host read-only where asked.
    #[test]
    fn a_childs_own_mount_namespace_is_released_after_it_by_the_releaser() {
        let runner = RunnerPrivileges::current();
        if runner.euid != 0 || runner.effective & (1 << 21) == 0 {
            // Without CAP_SYS_ADMIN no child gets a mount namespace: nothing to release.
            return;
        }
        start_ns_releaser();
        let r = ns_releaser().expect("the releaser starts");
        let own = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        let privileges = privileges(&runner);
        let inputs = vec!["/etc/hostname".to_string()];
        let mut rng = crate::util::testrng::Rng(0x0e5_4e1e);
        let mut seen = Vec::new();
        let sent_before = r.sent.load(std::sync::atomic::Ordering::SeqCst);
        let mut owning = 0u64;
        for round in 0..40 {
            let dir = tempfile::tempdir_in("/dev/shm").unwrap();
            let host_read_only = rng.chance(50);
            let reads = rng.chance(30);
            let (iso, _) = Isolation::new(&ChildRequest {
                privileges: &privileges,
                pid_namespace: Err("not here".into()),
                scratch: dir.path(),
                host_read_only,
                read_only_inputs: if reads { &inputs } else { &[] },
            });
            let owns = iso.owns_mounts(false);
            assert_eq!(owns, host_read_only || reads, "round {round}");
            let outside = tempfile::tempdir().unwrap();
            let script = format!(
                "readlink /proc/self/ns/mnt; touch {}/probe 2>/dev/null && echo wrote; \
                 touch ./mine && echo mine",
                outside.path().display()
            );
            let (out, st) = run(&["/bin/sh", "-c", &script], &iso, dir.path());
            assert!(
                libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
                "round {round}: {out}"
            );
            let ns = out.lines().next().unwrap_or_default().to_string();
            assert!(ns.starts_with("mnt:["), "round {round}: {out}");
            assert_eq!(ns != own.to_string_lossy(), owns, "round {round}: {out}");
            assert_eq!(
                out.contains("wrote"),
                !host_read_only,
                "round {round}: {out}"
            );
            assert!(out.contains("mine"), "round {round}: {out}");
            if owns {
                owning += 1;
                seen.push(ns);
            }
        }
        // Other tests of this process may send theirs meanwhile: at least ours went.
        let sent = r.sent.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            sent - sent_before >= owning,
            "{sent} - {sent_before} < {owning}"
        );
        await_released_mounts(std::time::Duration::from_secs(30));
        let (m, _) = &*r.released;
        assert!(
            *m.lock().unwrap() >= sent,
            "every namespace sent was released"
        );
        // (Whether a namespace still exists cannot be told by its inode number here: other
        // tests of this process make namespaces meanwhile, which reuse freed numbers.)
        assert_eq!(seen.len(), usize::try_from(owning).unwrap());
        let tid = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .find(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "ns-release")
            })
            .expect("the releaser thread");
        let mut sockets = 0;
        for e in std::fs::read_dir(tid.path().join("fd")).unwrap().flatten() {
            let n: i32 = e.file_name().to_string_lossy().parse().unwrap();
            let t = std::fs::read_link(e.path()).map(|t| t.to_string_lossy().into_owned());
            let t = t.unwrap_or_default();
            // What it holds for children still running (of other tests of this process).
            if n <= 2 || t.starts_with("mnt:[") || t == "anon_inode:[pidfd]" || t.is_empty() {
                continue;
            }
            assert!(t.starts_with("socket:["), "the releaser holds {n} -> {t}");
            sockets += 1;
        }
        assert_eq!(sockets, 1, "the releaser holds its socket alone");
    }

    /// Random kept capability sets and identities, applied to a real child: its five
    /// capability sets hold exactly the kept ones and its ids are the identity's (the PID
    /// namespace, which the runner enters around the spawn, is tested end to end). Each
    /// child is cloned by this thread's spawner thread for its set ([`with_bounding`]),
    /// the sets in a generated order (so a spawner is reused after others ran), and this
    /// thread's own bounding set is untouched.
    #[test]
    fn generated_privileges_are_exactly_what_the_child_gets() {
        let runner = RunnerPrivileges::current();
        let probe = crate::model::registry::Profile {
            identity: Some(crate::model::registry::Identity {
                uid: 65534,
                gid: 65534,
            }),
            capabilities: vec![LinuxCapability::NetRaw],
            ..Default::default()
        };
        let mut c = crate::sandbox::compile::compile(
            "p",
            &probe,
            Path::new("x"),
            &crate::sandbox::compile::CompileContext {
                host: &crate::sandbox::compile::CompileHost {
                    kernel_abi: None,
                    landlock_unavailable: None,
                    euid: runner.euid,
                    pids_cgroup: None,
                    seccomp_available: true,
                    home_is_scratch: true,
                },
                vars: &crate::sandbox::vars::Vars::new(),
                before_child: false,
            },
        )
        .unwrap();
        privilege::attach(&mut c, &probe, &runner, true);
        if runner.effective & (1 << 21) == 0 || runner.euid != 0 {
            // Not root here: the compiler says what it cannot give, and why.
            assert!(!c.child.pid_namespace);
            assert!(c.child.pid_namespace_reason.is_some());
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut state = 0x0005_DEEC_E66D_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..24 {
            // Either any set, or one of a few (so that spawners are reused in between).
            let kept = match next() % 3 {
                0 => next() & runner.effective & runner.bounding & ((1u64 << 41) - 1),
                1 => 0,
                _ => [1u64 << 10, (1 << 0) | (1 << 13)][usize::from(next() % 2 == 0)],
            };
            let (uid, gid, identity) = match next() % 3 {
                0 => (0, 0, false),
                1 => (65534, 65534, true),
                _ => (1000 + u32::try_from(next() % 1000).unwrap(), 2000, true),
            };
            let privileges = ChildPrivileges {
                uid,
                gid,
                identity,
                capabilities: privilege::caps_names(kept),
                ..privileges(&runner)
            };
            let (iso, _) = Isolation::new(&ChildRequest {
                privileges: &privileges,
                pid_namespace: Ok(()),
                scratch: dir.path(),
                host_read_only: false,
                read_only_inputs: &[],
            });
            let (out, st) = run(
                &[
                    "/bin/sh",
                    "-c",
                    "cat /proc/self/status; echo \"pid $$\"; exec /usr/bin/python3 -c \
                     'import ctypes; v = ctypes.c_int(); \
                      ctypes.CDLL(None).prctl(2, ctypes.byref(v)); print(\"pdeathsig\", v.value)'",
                ],
                &iso,
                Path::new("/"),
            );
            assert!(
                libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
                "{round}: {out}"
            );
            let want = format!("{kept:016x}");
            for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
                let got = field(&out, set);
                // Root keeps no ambient set (execve gives it the bounding set anyway).
                let want = if set == "CapAmb:" && uid == 0 {
                    "0000000000000000".to_string()
                } else {
                    want.clone()
                };
                assert_eq!(got, want, "round {round} {set} uid {uid}\n{out}");
            }
            assert_eq!(
                field(&out, "Uid:"),
                format!("{uid}\t{uid}\t{uid}\t{uid}"),
                "{round}"
            );
            // The parent-death signal survives the identity step (PR_GET_PDEATHSIG).
            assert_eq!(
                field(&out, "pdeathsig"),
                "9",
                "round {round} uid {uid}\n{out}"
            );
            assert_eq!(field(&out, "Gid:"), format!("{gid}\t{gid}\t{gid}\t{gid}"));
            if identity {
                assert_eq!(field(&out, "Groups:"), gid.to_string(), "{round}");
            }
            // The spawners lowered their own sets, never this thread's.
            assert_eq!(privilege::bounding_set(63), runner.bounding, "{round}");
        }
        // One spawner per distinct set this thread asked for, none for the full set.
        let sets = SPAWNERS.with_borrow(|s| s.iter().map(|(k, _)| *k).collect::<Vec<_>>());
        assert!(
            !sets.is_empty() && !sets.contains(&runner.bounding),
            "{sets:x?}"
        );
        let mut distinct = sets.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), sets.len(), "{sets:x?}");
    }

    /// A dedicated thread (a scheduler's worker: [`dedicate_thread`]) lowers its own
    /// bounding set to the first set its children keep and clones those children itself;
    /// generated children after it — keeping that set, less, more, or their whole set (no
    /// bounding drop) — and programs started through [`with_full`] each get exactly what
    /// they would get from a thread that never lowered its set: the kept set, else the
    /// runner's whole set.
    #[test]
    fn a_dedicated_thread_lowers_its_own_set_and_each_child_still_gets_exactly_its_own() {
        let runner = RunnerPrivileges::current();
        if runner.effective & (1 << 8) == 0 || runner.euid != 0 {
            // No CAP_SETPCAP: nothing is lowered (covered by the spawner test's fallback).
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().to_path_buf();
        let mut state = 0x0DED_1CA7_E5ED_u64;
        std::thread::spawn(move || {
            dedicate_thread();
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let pool = [
                0u64,
                1 << 10,
                (1 << 0) | (1 << 13),
                (1 << 13) | (1 << 10) | (1 << 5),
            ];
            let mut first: Option<u64> = None;
            for round in 0..40 {
                let choice = if round == 0 { 0 } else { next() % 5 };
                let (kept, clear) = match choice {
                    0..=2 => (pool[usize::try_from(next() % 4).unwrap()], true),
                    3 => (
                        next() & runner.effective & runner.bounding & ((1u64 << 41) - 1),
                        true,
                    ),
                    // Keeps its whole bounding set (no drop): cloned on the keeper.
                    _ => (next() & runner.effective & (1 << 13), false),
                };
                let out = if round % 7 == 6 {
                    // A program started by std from the worker (a fork server, a helper).
                    let o = with_full(|| {
                        std::process::Command::new("/bin/cat")
                            .arg("/proc/self/status")
                            .output()
                    })
                    .unwrap();
                    assert!(o.status.success());
                    let o = String::from_utf8_lossy(&o.stdout).into_owned();
                    assert_eq!(status_mask(&o, "CapBnd:"), runner.bounding, "{round}\n{o}");
                    assert_eq!(status_mask(&o, "CapEff:"), runner.effective, "{round}\n{o}");
                    continue;
                } else {
                    let privileges = ChildPrivileges {
                        capabilities: privilege::caps_names(kept),
                        bounding_cleared: clear,
                        ..privileges(&runner)
                    };
                    let (iso, _) = Isolation::new(&ChildRequest {
                        privileges: &privileges,
                        pid_namespace: Ok(()),
                        scratch: &scratch,
                        host_read_only: false,
                        read_only_inputs: &[],
                    });
                    assert_eq!(iso.bounding_target(), clear.then_some(kept), "{round}");
                    let (out, st) = run(&["/bin/cat", "/proc/self/status"], &iso, Path::new("/"));
                    assert!(
                        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
                        "{round}: {out}"
                    );
                    out
                };
                let want_bounding = if clear { kept } else { runner.bounding };
                assert_eq!(
                    status_mask(&out, "CapBnd:"),
                    want_bounding,
                    "round {round}\n{out}"
                );
                // Root's `execve` gives a child that keeps its bounding set all of it.
                let want_caps = if clear { kept } else { runner.bounding };
                assert_eq!(
                    status_mask(&out, "CapEff:"),
                    want_caps,
                    "round {round}\n{out}"
                );
                assert_eq!(
                    status_mask(&out, "CapPrm:"),
                    want_caps,
                    "round {round}\n{out}"
                );
                if clear && first.is_none() {
                    first = Some(kept);
                }
                // The thread lowered its own set to the first kept set, once.
                let own = first.unwrap();
                assert_eq!(privilege::bounding_set(63), own, "round {round}");
                assert_eq!(privilege::thread_bounding(), own, "round {round}");
                assert!(lowered(), "round {round}");
                // Its own children need no spawner.
                let sets = SPAWNERS.with_borrow(|s| s.iter().map(|(k, _)| *k).collect::<Vec<_>>());
                assert!(!sets.contains(&own), "{sets:x?}");
                assert!(sets.iter().all(|k| k & !own == 0), "{sets:x?}");
            }
        })
        .join()
        .unwrap();
        // The test thread's own set is untouched.
        assert_eq!(privilege::bounding_set(63), runner.bounding);
    }

    /// Shrink the pipe of `w` to one page and fill it: a blocking write of one more byte
    /// then waits until the read end is read.
    fn fill(w: &OwnedFd) {
        // SAFETY: fcntl and write on our own descriptor, from a stack buffer.
        unsafe {
            let size = libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096);
            assert!(
                size >= 4096,
                "F_SETPIPE_SZ: {}",
                std::io::Error::last_os_error()
            );
            let buf = vec![0u8; usize::try_from(size).unwrap()];
            let n = libc::write(w.as_raw_fd(), buf.as_ptr().cast(), buf.len());
            assert_eq!(n, isize::try_from(buf.len()).unwrap());
        }
    }

    /// [`close_from_3_but`] closes exactly every descriptor from 3 on that it is not told
    /// to keep: generated keep lists (unsorted, repeats, negative numbers, numbers below 3
    /// and numbers of no descriptor among them) over generated tables (descriptors of this
    /// test's at random numbers up to 600, gaps between them), in a forked child that
    /// reports which of its descriptors are open after the call.
    #[test]
    fn close_from_3_but_closes_exactly_what_it_does_not_keep() {
        const SEEN: usize = 640;
        let mut rng = crate::util::testrng::Rng(0xc105_e0f3);
        for round in 0..60 {
            // This test's descriptors, each at a random free number (`F_DUPFD_CLOEXEC`:
            // the lowest free one from there).
            let ours: Vec<OwnedFd> = (0..rng.below(12usize))
                .map(|_| {
                    let base = libc::c_int::try_from(3 + rng.below(600u64)).unwrap();
                    // SAFETY: duplicating stdin's number space with a fresh descriptor.
                    let fd =
                        unsafe { libc::fcntl(dev_null().unwrap(), libc::F_DUPFD_CLOEXEC, base) };
                    assert!(fd >= 0, "{}", std::io::Error::last_os_error());
                    // SAFETY: a fresh descriptor we own.
                    unsafe { OwnedFd::from_raw_fd(fd) }
                })
                .collect();
            let mut keep = [-1; KEPT_MAX];
            for k in &mut keep {
                *k = match rng.below(5u8) {
                    0 if !ours.is_empty() => rng.pick(&ours).as_raw_fd(),
                    1 => -1 - libc::c_int::from(rng.below(3u8)),
                    2 => libc::c_int::from(rng.below(3u8)),
                    3 => libc::c_int::try_from(3 + rng.below(600u64)).unwrap(),
                    _ => keep_repeat(&ours, &mut rng),
                };
            }
            let (r, w) = pipe().unwrap();
            let asked = keep;
            // SAFETY: the child only makes system calls (no allocation: the keep list and
            // the report are on its stack) and exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: as above, in the forked child.
                unsafe {
                    let mut k = asked;
                    let ok = libc::dup2(w.as_raw_fd(), 1) == 1 && close_from_3_but(&mut k);
                    let mut open = [0u8; SEEN / 8];
                    for fd in 0..SEEN {
                        let n = libc::c_int::try_from(fd).unwrap_or(0);
                        if libc::fcntl(n, libc::F_GETFD) >= 0 {
                            open[fd / 8] |= 1 << (fd % 8);
                        }
                    }
                    libc::write(1, open.as_ptr().cast(), open.len());
                    libc::_exit(i32::from(!ok));
                }
            }
            drop(w);
            let mut report = Vec::new();
            std::fs::File::from(r).read_to_end(&mut report).unwrap();
            let mut st = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid, &raw mut st, 0) };
            assert!(
                libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
                "round {round}"
            );
            assert_eq!(report.len(), SEEN / 8, "round {round}");
            let open = |fd: usize| report[fd / 8] & (1 << (fd % 8)) != 0;
            // Every one of ours it was told to keep is open, and nothing else from 3 on
            // (other tests' descriptors at numbers it keeps included: kept is kept).
            for fd in 3..SEEN {
                let kept = asked.contains(&libc::c_int::try_from(fd).unwrap());
                let mine = ours
                    .iter()
                    .any(|o| usize::try_from(o.as_raw_fd()).unwrap() == fd);
                if open(fd) {
                    assert!(kept, "round {round}: {fd} open, keep {asked:?}");
                } else {
                    assert!(
                        !(kept && mine),
                        "round {round}: {fd} closed, keep {asked:?}"
                    );
                }
            }
            assert!(open(0) && open(1) && open(2), "round {round}: stdio");
        }
    }

    /// One of `ours` again (a repeat in the keep list), else no descriptor.
    fn keep_repeat(ours: &[OwnedFd], rng: &mut crate::util::testrng::Rng) -> libc::c_int {
        if ours.is_empty() {
            -1
        } else {
            rng.pick(ours).as_raw_fd()
        }
    }

    /// A child of the clean channel holds no copy of the runner's descriptors past its
    /// stdio ([`close_inherited`]): generated rounds open pipes in this process (as a worker
    /// opens its child's pipes: close-on-exec, the write ends held), then spawn a child
    /// that stops in its cgroup join (its join file a full pipe), after its mounts
    /// (a read-only host in some rounds) and chdir, before its identity, profile and
    /// `execve`. While it waits there, its descriptor table holds exactly stdio and what
    /// it still uses — the cgroup's, the runner's pidfd, the releaser's socket when it has
    /// a mount namespace of its own to send, the Landlock ruleset when it has one — and
    /// every pipe of this process reaches its end as soon as this process closes its write
    /// end (before: only at the child's `execve`). Then it goes on and runs.
    #[test]
    fn a_clean_child_drops_the_runners_descriptors_before_its_slow_steps() {
        let runner = RunnerPrivileges::current();
        let root = runner.euid == 0 && runner.effective & (1 << 21) != 0;
        if root {
            start_ns_releaser();
        }
        let (_, runner_fd) = super::runner().unwrap();
        let mut rng = crate::util::testrng::Rng(0x0dd_c105e);
        for round in 0..16 {
            let dir = tempfile::tempdir_in("/dev/shm").unwrap();
            let pipes: Vec<(OwnedFd, OwnedFd)> =
                (0..=rng.below(5usize)).map(|_| pipe().unwrap()).collect();
            let (block_r, block_w) = pipe().unwrap();
            fill(&block_w);
            let landlock = rng.chance(50);
            let privileges = ChildPrivileges {
                applied: root,
                bounding_cleared: root,
                baseline_host_read_only: if landlock {
                    privilege::RO_LANDLOCK.into()
                } else {
                    privilege::RO_MOUNT_NAMESPACE.into()
                },
                ..privileges(&runner)
            };
            let (iso, ll) = Isolation::new(&ChildRequest {
                privileges: &privileges,
                pid_namespace: Err("not here".into()),
                scratch: dir.path(),
                host_read_only: rng.chance(70),
                read_only_inputs: &[],
            });
            let isolation = (root && !iso.is_noop()).then_some(&iso);
            let prepared = match &ll {
                Some(ll) if isolation.is_some() => {
                    Prepared::new(&crate::sandbox::compile::ApplySpec {
                        landlock: Some(ll.clone()),
                        seccomp: Vec::new(),
                        rlimits: Vec::new(),
                        nnp: true,
                    })
                    .unwrap()
                }
                _ => Prepared::none(),
            };
            let owns = isolation.is_some_and(|i| i.owns_mounts(false));
            let mut want: Vec<RawFd> = vec![0, 1, 2, block_w.as_raw_fd(), runner_fd];
            if owns && let Some(r) = ns_releaser() {
                want.push(r.send.as_raw_fd());
            }
            want.extend(prepared.child_fd());
            want.sort_unstable();
            let (tx, rx) = std::sync::mpsc::channel();
            let argv = vec!["/bin/true".to_string()];
            let cgroup = block_w.as_raw_fd();
            std::thread::scope(|s| {
                let spawner = s.spawn(|| {
                    // SAFETY: gettid cannot fail.
                    tx.send(unsafe { libc::gettid() }).unwrap();
                    let spawned =
                        with_bounding(isolation.and_then(Isolation::bounding_target), || {
                            spawn(
                                Path::new("/bin/true"),
                                &argv,
                                &[],
                                Some(dir.path()),
                                true,
                                Some(cgroup),
                                &prepared,
                                None,
                                isolation,
                                None,
                            )
                        });
                    // Reaped by this thread: its child dies with it (the parent-death
                    // signal is the spawning thread's).
                    let spawned = spawned.expect("spawned");
                    let mut st = 0;
                    // SAFETY: reaping our own child.
                    unsafe { libc::waitpid(spawned.pid, &raw mut st, 0) };
                    st
                });
                let tid = rx.recv().unwrap();
                // The child of the spawning thread (or of the spawner it lent the spawn to)
                // that waits in its write to the full pipe.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                let child = loop {
                    let found = std::fs::read_dir("/proc/self/task")
                        .unwrap()
                        .flatten()
                        .find_map(|t| {
                            let kids = std::fs::read_to_string(t.path().join("children")).ok()?;
                            kids.split_whitespace().find_map(|k| {
                                let sc =
                                    std::fs::read_to_string(format!("/proc/{k}/syscall")).ok()?;
                                let mut f = sc.split_whitespace();
                                (f.next() == Some("1") && f.next() == Some(&format!("{cgroup:#x}")))
                                    .then(|| k.to_string())
                            })
                        });
                    if let Some(c) = found {
                        break c;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "round {round}: no child waits in its cgroup join (spawner {tid})"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(2));
                };
                let mut held: Vec<RawFd> = std::fs::read_dir(format!("/proc/{child}/fd"))
                    .unwrap()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().parse().unwrap())
                    .collect();
                held.sort_unstable();
                // Every pipe of ours ends when we close our write end, though the child has
                // not reached its `execve` (and never will while we hold it). Waited for, not
                // polled once: the test harness runs other tests in this process, and a child
                // one of them clones meanwhile holds copies of our pipes until its own close
                // (a moment); this child, without the early close, would hold them for good.
                let mut open_ended = Vec::new();
                for (r, w) in pipes {
                    drop(w);
                    let mut p = libc::pollfd {
                        fd: r.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: a valid pollfd.
                    let n = unsafe { libc::poll(&raw mut p, 1, 10_000) };
                    open_ended.push(n == 1 && p.revents & libc::POLLHUP != 0);
                }
                // Let it go on: read the full pipe.
                let mut buf = vec![0u8; 8192];
                // SAFETY: reading into a buffer of that size from our own descriptor.
                let n =
                    unsafe { libc::read(block_r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                assert!(n > 0, "round {round}");
                let st = spawner.join().unwrap();
                assert!(
                    libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
                    "round {round}: {st:#x}"
                );
                assert_eq!(
                    held, want,
                    "round {round}: the child waiting in its cgroup join holds these"
                );
                assert!(
                    open_ended.iter().all(|e| *e),
                    "round {round}: a pipe of the runner's has no end while the child waits: {open_ended:?}"
                );
            });
        }
    }
}
