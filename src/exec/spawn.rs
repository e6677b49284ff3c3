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
//! unwinding: dup2 of stdio, the mounts of its mount namespace (private, or its worker's
//! prepared one when it can never change it: `Isolation::stays_in_prepared_mounts`)
//! ([`Isolation::enforce_mounts`]: the `/proc` of the PID namespace the runner started it in,
//! the read-only host of the baseline), chdir, PDEATHSIG, `setsid` / `setpgid`, umask,
//! close-on-exec of descriptors above 2, joining a pids cgroup, identity and capabilities
//! ([`Isolation::enforce_identity`]), then [`Prepared::enforce_in_child`]
//! (rlimits, no-new-privs, `landlock_restrict_self`, seccomp last), the signal mask, and
//! `execve`. A failure writes `(step, errno)` to a CLOEXEC pipe and `_exit(127)`s, so the
//! parent tells a setup failure (apply-failed) from `execve` being refused (a denial).
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
    report: RawFd,
    /// A superset of the child's bounding set at its start (its parent thread's:
    /// [`privilege::thread_bounding`]), so it drops without reading it.
    bounding: Option<u64>,
    mask: libc::sigset_t,
    /// The runner's pid: the child's parent, unless the runner already died.
    parent: libc::pid_t,
    /// The runner's read end of the report pipe (the child closes its copy).
    report_read: RawFd,
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
}

/// Why a spawn did not produce a running program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// `execve` (or resolving the program) failed with this errno.
    Exec(i32),
    /// A setup step failed in the child (or preparing it in the parent).
    Setup(SetupStep, i32),
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
/// new session (`clean`) or process group, optionally joining the pids cgroup whose
/// `cgroup.procs` is open at `cgroup_fd`, in the namespaces and with the identity and
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
        // SAFETY: within the allocation.
        let top = unsafe { stack.as_mut_ptr().add(stack.len()) };
        let top = (top as usize & !15) as *mut libc::c_void;
        clone_child(
            top,
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

/// Clone the child on the stack whose top is `top` and see it to its `execve`.
fn clone_child(top: *mut libc::c_void, c: ChildSpawn<'_>) -> Result<Spawned, SpawnError> {
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
    let (rep_r, rep_w) = pipe().map_err(io)?;

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
    let child_args = ChildArgs {
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
        report: rep_w.as_raw_fd(),
        bounding: isolation.map(|_| privilege::thread_bounding()),
        mask: old,
        // SAFETY: getpid cannot fail.
        parent: unsafe { libc::getpid() },
        report_read: rep_r.as_raw_fd(),
    };
    // SAFETY: `child_main` only makes async-signal-safe system calls on `args`, which
    // outlives the call (CLONE_VFORK suspends this thread until the child execs or exits).
    let pid = unsafe {
        libc::clone(
            child_main,
            top,
            libc::CLONE_VM
                | libc::CLONE_VFORK
                | libc::SIGCHLD
                | isolation.map_or(0, |i| i.clone_flags_from(join_mounts.is_some())),
            std::ptr::from_ref(&child_args).cast_mut().cast(),
        )
    };
    let clone_errno = errno();
    // SAFETY: restoring this thread's mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut());
    }
    drop(child_args);
    drop(out_w);
    drop(err_w);
    drop(rep_w);
    drop(own_stdin);
    if pid < 0 {
        return Err(SpawnError::Setup(SetupStep::CloseFds, clone_errno));
    }
    // The child has exec'd or exited: anything it reported is in the pipe already.
    // SAFETY: fcntl on our pipe's read end, which has no other status flag to keep.
    unsafe {
        libc::fcntl(rep_r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
    }
    let mut b = [0u8; 8];
    // SAFETY: reading into a local buffer.
    let n = unsafe { libc::read(rep_r.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
    if n == 8 {
        let step = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let e = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        let mut st = 0;
        // SAFETY: reaping the child that failed before exec.
        unsafe { libc::waitpid(pid, &raw mut st, 0) };
        return Err(reported(step, e));
    }
    Ok(Spawned {
        pid,
        stdout: out_r,
        stderr: err_r,
    })
}

/// What a child's `(step, errno)` report means (also the fork server's children).
pub(super) fn reported(step: u32, e: i32) -> SpawnError {
    match step {
        STEP_EXEC => SpawnError::Exec(e),
        STEP_STDIO | STEP_CHDIR | STEP_PGID => SpawnError::Setup(SetupStep::CloseFds, e),
        s => SpawnError::Setup(SetupStep::from_u32(s).unwrap_or(SetupStep::CloseFds), e),
    }
}

/// Write `(step, errno)` to the report pipe and exit.
///
/// # Safety
/// Only in the cloned child.
unsafe fn fail(report: RawFd, step: u32, e: i32) -> libc::c_int {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&step.to_ne_bytes());
    b[4..].copy_from_slice(&e.to_ne_bytes());
    // SAFETY: writing a local buffer, then exiting without running any destructor.
    unsafe {
        libc::write(report, b.as_ptr().cast(), 8);
        libc::_exit(127)
    }
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

/// The child, between clone and execve.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the parent's `ChildArgs`, alive while the parent is suspended.
    let a: &ChildArgs<'_> = unsafe { &*arg.cast::<ChildArgs<'_>>() };
    // SAFETY: async-signal-safe system calls acting on this (child) process only.
    unsafe {
        // Rust ignores SIGPIPE in the runner; programs expect the default.
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGPIPE, &raw const sa, std::ptr::null_mut());
        if !(onto(a.stdin, 0) && onto(a.stdout, 1) && onto(a.stderr, 2)) {
            return fail(a.report, STEP_STDIO, *libc::__errno_location());
        }
        // Mounts first: the working directory is looked up after them.
        if let Some(iso) = a.isolation
            && let Err((step, e)) = iso.enforce_mounts_from(a.join_mounts)
        {
            return fail(a.report, step as u32, e);
        }
        if let Some(cwd) = &a.cwd
            && libc::chdir(cwd.as_ptr()) != 0
        {
            return fail(a.report, STEP_CHDIR, *libc::__errno_location());
        }
        // Die with the runner (the spawning worker thread, suspended in vfork until the
        // exec, outlives the child's wait). A runner killed before this line left the child
        // re-parented already: then the signal would never come, so stop here.
        // In its own PID namespace the child's parent is outside it (`getppid` is 0): there
        // the report pipe tells, once the child closed its copy of the read end — only a
        // dead runner leaves the pipe without a reader.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::close(a.report_read);
        let orphaned = if a.isolation.is_some_and(Isolation::pid_namespace) {
            let mut p = libc::pollfd {
                fd: a.report,
                events: libc::POLLOUT,
                revents: 0,
            };
            libc::poll(&raw mut p, 1, 0) == 1 && p.revents & libc::POLLERR != 0
        } else {
            libc::getppid() != a.parent
        };
        if orphaned {
            libc::_exit(127);
        }
        if a.clean {
            if libc::setsid() < 0 {
                return fail(
                    a.report,
                    SetupStep::Setsid as u32,
                    *libc::__errno_location(),
                );
            }
            libc::umask(0o022);
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                return fail(
                    a.report,
                    SetupStep::CloseFds as u32,
                    *libc::__errno_location(),
                );
            }
        } else if libc::setpgid(0, 0) != 0 {
            return fail(a.report, STEP_PGID, *libc::__errno_location());
        }
        if let Some(fd) = a.cgroup_fd
            && libc::write(fd, b"0".as_ptr().cast(), 1) != 1
        {
            return fail(
                a.report,
                SetupStep::Cgroup as u32,
                *libc::__errno_location(),
            );
        }
        // Identity and capabilities after every step that needs root (the cgroup join).
        if let Some(iso) = a.isolation
            && let Err((step, e)) = iso.enforce_identity_from(a.bounding)
        {
            return fail(a.report, step as u32, e);
        }
        if let Err((step, e)) = a.prepared.enforce_in_child() {
            return fail(a.report, step as u32, e);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const a.mask, std::ptr::null_mut());
        libc::execve(a.path.as_ptr(), a.argv.as_ptr(), a.envp.as_ptr());
        fail(a.report, STEP_EXEC, *libc::__errno_location())
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
        let s = spawn(
            Path::new(&argv[0]),
            &argv,
            &[],
            Some(cwd),
            true,
            None,
            &Prepared::none(),
            None,
            Some(isolation),
            None,
        )
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

    fn field(out: &str, key: &str) -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    }

    /// Random kept capability sets and identities, applied to a real child: its five
    /// capability sets hold exactly the kept ones and its ids are the identity's (the PID
    /// namespace, which the runner enters around the spawn, is tested end to end).
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
            let kept = next() & runner.effective & runner.bounding & ((1u64 << 41) - 1);
            let kept = if round % 4 == 0 { 0 } else { kept };
            let (uid, gid, identity) = match next() % 3 {
                0 => (0, 0, false),
                1 => (65534, 65534, true),
                _ => (1000 + u32::try_from(next() % 1000).unwrap(), 2000, true),
            };
            let privileges = ChildPrivileges {
                applied: true,
                uid,
                gid,
                identity,
                capabilities: privilege::caps_names(kept),
                cap_last: runner.cap_last,
                bounding_cleared: true,
                pid_namespace: false,
                namespace_init: None,
                pid_namespace_reason: None,
                baseline_host_read_only: privilege::RO_MOUNT_NAMESPACE.into(),
                baseline_host_reason: None,
                runner_environ: String::new(),
            };
            let (iso, _) = Isolation::new(&ChildRequest {
                privileges: &privileges,
                pid_namespace: Ok(()),
                scratch: dir.path(),
                host_read_only: false,
                read_only_inputs: &[],
            });
            let (out, st) = run(
                &["/bin/sh", "-c", "cat /proc/self/status; echo \"pid $$\""],
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
            assert_eq!(field(&out, "Gid:"), format!("{gid}\t{gid}\t{gid}\t{gid}"));
            if identity {
                assert_eq!(field(&out, "Groups:"), gid.to_string(), "{round}");
            }
        }
    }
}
