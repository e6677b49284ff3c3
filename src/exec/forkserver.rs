//! The fork server of builtin probes: one small process per worker thread, started once
//! (this binary as `nexusmon __forkserver`, empty environment, cwd `/`), that starts one
//! child per builtin probe (`clone(CLONE_VM)`: see "How a child is made" below). The child performs exactly what the exec'd helper
//! (`nexusmon __probe`) did — the same isolation steps as the exec driver's spawn, then
//! [`helper::respond`] — without re-executing a 21 MB binary per probe.
//!
//! Why the child applies the profile itself (from the request's `ApplySpec`, after its
//! mounts) and does not inherit a pre-restricted zygote: a Landlock domain, a seccomp filter
//! and rlimits are inherited by everything a restricted process forks, so a per-profile
//! zygote would (1) put every probe of a profile in one shared domain, where the scoped
//! signal and abstract-socket checks between siblings (and towards the zygote) pass that
//! separate domains refuse; (2) have to be restricted before the per-child steps that the
//! restriction forbids (mounting the child's `/proc`, joining its cgroup, dropping to its
//! identity, `chdir` into a scratch directory the profile may not grant); (3) not hold
//! per-child rules (beneath `${SCRATCH}`, compiled per child); and (4) open its rules in
//! its own mount namespace, not the child's (a rule on `/proc` would attach to another
//! `/proc`). The server itself is never restricted: it holds no domain, filter or limit,
//! so nothing of one probe reaches the next.
//!
//! What stays as with the exec'd helper:
//! - a fresh process per probe, forked from a server whose state never changes between
//!   probes (cwd `/`, empty environment, every signal at its default disposition and only
//!   `SIGCHLD` blocked — each child sets the empty mask —, its bounding set); the PID
//!   namespace its next child is born in is the one the request names, and so is the
//!   mount namespace (see `ForChildren`: the init's pidfd comes once and is kept, its
//!   namespaces entered again only when a launch brings another init or names none);
//! - the clean channel: the child gets stdio (stdin `/dev/null`, stdout and stderr the
//!   runner's pipes), its mount namespace ([`Isolation::enforce_mounts`]), its
//!   scratch directory as cwd, `setsid` and umask 022 (or its own process group on the
//!   direct channel), its cgroup (its join file passed as a descriptor), its identity and
//!   capabilities ([`Isolation::enforce_identity`]), the parent-death signal (after the
//!   identity step, which would clear it; set once: the helper's code does not set it
//!   again), the dumpable flag `execve` would have reset, exactly the environment the runner gives
//!   it, and no descriptor above 2; a setup failure is reported as `(step, errno)` exactly
//!   as [`super::spawn`] reports it (with the child's end: see *The setup report* below);
//! - the PID namespace: the runner passes the pidfd of the child's placeholder init
//!   (`exec::zygote`: its worker's shared namespace); the server `setns`es into it for its
//!   children (once per namespace), so the child is pid 2 or above there; the child joins the init's
//!   mount namespace, where that namespace's `/proc` is mounted already, and copies it
//!   unless it can never change it (see *Mounts* below);
//! - the runner waits, times out and kills through a pidfd and the child's process group,
//!   lists leaks as before (the PID namespace's init, the cgroups, the subreaper: the
//!   server is no subreaper, so orphans go where they went); the server keeps the exited
//!   child a zombie (so its pid is not reused) until the runner has swept what it left and
//!   told it, and reports how it ended with its rusage as `wait4` would have;
//! - the server lives in its worker thread's cgroup (so the child is born there and pays no
//!   migration); it is a kept helper of the runner (`sandbox::cgroup::keep`), never a leak.
//!
//! How a child is made: `clone(CLONE_VM)`, not `fork`. A fork copied the server's page
//! tables (half of the server's time per probe) and the child then faulted the 24 MB
//! binary's pages back in and copied every page it wrote (42% of the child's). With
//! `CLONE_VM` the child runs in the server's memory, on a stack the server mapped once (with
//! a guard page), and why that keeps every guarantee above:
//! - *Its own process.* No `CLONE_THREAD`, `CLONE_FILES`, `CLONE_FS` or `CLONE_SIGHAND`:
//!   the child has its own pid, descriptor table, working directory, root, umask, signal
//!   handlers and mask, rlimits (`signal_struct`), session and process group, credentials
//!   (identity, capabilities, the Landlock domain), no-new-privs and seccomp filter (per
//!   task). Everything it applies acts on it alone; the server is never restricted.
//! - *Nobody else touches the shared memory while it lives.* The server prepares all the
//!   child reads before the clone (the request parsed, environment, working directory,
//!   descriptors) and changes none of it until the child has exited: after the clone it
//!   only polls the child's pidfd for the hold, closes it, sends the started reply from a
//!   local buffer and waits (`waitid(WEXITED |
//!   WNOWAIT)`, leaving the zombie for the runner's sweep), all system calls on its own stack, no allocation, no lock. So the child may use the
//!   allocator (the helper's code does) as a forked child did; it frees what it allocated
//!   before its `_exit`. All signals are blocked in the server across the clone; the child
//!   restores the mask.
//! - *What the child changes in shared memory is put back.* `environ` (the child points
//!   it at its environment) and the dumpable flag (a property of the memory map: the
//!   child sets it as `execve` would have, a change of identity clears it) are restored
//!   once the child has exited. While a child lives the server's memory map is dumpable:
//!   only a process of the same uid that can see the server's pid could then inspect it —
//!   the runner, or another worker's child outside a PID namespace (a `signal-send`
//!   probe), which is restricted by its own Landlock domain (scenario) or performs one
//!   `kill` and exits (baseline).
//! - *A child that ends abnormally ends its server.* A child killed by a signal (a
//!   timeout's SIGTERM/SIGKILL, a crash) or ending with a code the helper does not `_exit`
//!   with (a caught panic) may have stopped inside the allocator, holding its lock or
//!   halfway through a change: the server says so in its report of the child's end
//!   (`RETIRING`), reaps it when the runner has swept and asks, and ends; the runner
//!   marks it broken and the next probe gets a new server. Its probe is
//!   judged as before (a crash is a missing line).
//! - *rlimits.* A process's rlimits are its own; those counted on the memory map
//!   (`RLIMIT_AS`, `RLIMIT_DATA`) see the same map size as a fork's copy had (the server's),
//!   and what the child maps counts for it as in a fork. The child's stack is a fixed
//!   mapping of 2 MiB, not a growable main stack: `RLIMIT_STACK` limits nothing in it (a
//!   builtin probe's one operation does not grow a stack). A child's `ru_maxrss` is the
//!   shared map's high-water mark (a fork's was its copy's: the same pages).
//! - *cgroups.* The child is its own thread group of one thread, so writing `0` to its
//!   cgroup's join file (v1 `tasks`, v2 `cgroup.procs`: `sandbox::cgroup::child_join_file`)
//!   moves only it, all of it (pids are counted per task); the pages it touches are charged to the memory
//!   map's owner (the server, in the worker's cgroup) where a memory controller counts
//!   them (this runner uses only the pids controller).
//!
//! - *Mounts.* A child that mounts nothing of its own and keeps no `CAP_SYS_ADMIN` after
//!   its identity step joins its shared PID namespace's prepared mount namespace and stays
//!   there instead of copying it (`Isolation::stays_in_prepared_mounts`): without that
//!   capability neither it nor anything it starts can mount, unmount or change
//!   propagation there, so the next child joins exactly the namespace this one joined.
//!   Any other child copies it as before.
//! - *The bounding set.* Each `PR_CAPBSET_DROP` copies the credentials; a child dropped
//!   about 40. When every child of a run clears its bounding set to what it keeps, the
//!   runner starts the server keeping only the union of those
//!   ([`crate::sandbox::privilege::bounding_kept_by`]): the server drops the rest once, at
//!   its start (the same for every child, never changed after), and a child drops only
//!   what is still there, ending with exactly its own set as before.
//!
//! - *The setup report.* A child whose setup step fails stores `(step, errno)` in one word
//!   of the server's memory (which it shares) and `_exit`s; nothing else writes that word
//!   while it lives, and the server reads it only after `waitid` has seen the child exit
//!   (the exit orders the store before the read). So the server replies `started` right
//!   after the clone, without waiting for the child's setup (a pipe the child closed at its
//!   end cost a wake-up and a context switch of the server per child), and the failure goes
//!   with the child's end: the runner reports it as the spawn reports one, `(step, errno)`
//!   and no child (`exec::child::run_child`). Such a child ran no helper code: it wrote
//!   nothing and started nothing, and the runner's leak checks ran over it all the same.
//!
//! - *The CPU.* A probe hands over between three tasks several times (the worker thread
//!   sends, the server clones, the child runs and exits, the server replies, the worker
//!   reads), and each hand-over to a task last run on another CPU wakes that CPU (an
//!   inter-processor interrupt; in a virtual machine an exit from its idle state): on 2
//!   cores that cost more than the probe. So each worker's server runs on one CPU of its
//!   own while there are enough ([`cpu_for_worker`]: the worker's index, offset by the
//!   runner's pid, among the CPUs the runner may use; `cpu=N` on its command line, applied
//!   at its start), and the worker
//!   thread, woken by it, is drawn to that CPU by the scheduler. The server is not where
//!   a probe runs: each child puts back the CPUs the server could use before it pinned
//!   itself (the runner's thread's) as its first step, while still on the server's CPU
//!   (born there, which that set holds, so nothing moves it at once), so a child runs
//!   where an executed helper would; failing that (a cpuset shrunk during the run), it
//!   reports a failed setup step (`SetupStep::CloseFds`, as for its stdio) and runs no
//!   probe code. A CPU outside the server's set, or a set that cannot be read or changed,
//!   leaves the server unpinned and its children as before. Only the server is pinned,
//!   never the worker thread: its exec children must keep the runner's CPUs, and the
//!   worker also serves other work.
//!
//! The server is single-threaded, so cloning it is plain. It ends at the end of its socket
//! (the runner's executor closes it after the lanes, or the runner died); its children die
//! with it (parent-death signal). A server that fails is replaced; a probe whose server
//! cannot start runs through the exec'd helper, the same steps in another order of
//! processes.
//!
//! Protocol (a stream socket, the server's stdin), one round trip per child: the runner
//! sends `[kind, launch bytes, request bytes, reap pid]` (`u32`s) with descriptors
//! attached (`SCM_RIGHTS`), then the bytes (the server reads them with one `recvmsg`:
//! `Inbox`). Kind 1 launches: JSON [`Launch`], a newline and the child's [`Isolation`]
//! as JSON (nothing if it has none; parsed again only when its bytes differ from the
//! last launch's: `IsolationCache`) as the launch bytes, then the
//! helper's request exactly as its one argument (JSON once, parsed by
//! [`helper::parse_request`]); descriptors: stdout, stderr, then the cgroup's
//! `cgroup.procs` and a new init's pidfd when the launch says so (`pid_ns`; the server
//! keeps it, and later launches into that namespace say `same_ns`). Kind 2 only reaps. A
//! request's `reap pid` (0: none) names the zombie of the previous child, which the server
//! reaps before anything else (the next launch carries it; a standalone reap is sent at
//! once when the child's namespace init waits for it or the server retires). Every reply
//! is eight `i64`, `[kind, pid, a, b, user µs, system µs, max RSS KiB, 0]`: to a launch,
//! `started` — held while the child runs for at most the launch's `hold_ms` (a quarter
//! of its timeout, at most 20 ms), and not sent at all if the child ends within it: a
//! probe's child usually lives far less, and its end alone is then one reply and one
//! wake-up of the runner's thread instead of two, and no pidfd of the runner's per child
//! (the runner cannot signal the child before it knows its pid; a child that ended within
//! the hold ended within its timeout) — (then, when the child has exited, `exited` with its wait status in `a` and
//! `b` = 1 if the server retires: `waitid(WEXITED | WNOWAIT)` with the kernel's rusage
//! of the zombie, and in the last word its failed setup step: [`SETUP_FAILED_BIT`] | step
//! << 32 | errno, 0 if its setup ended), or `setup failed` (`a` the step, `b` the errno: a
//! step of the server's own before the clone), or `refused`.

use std::borrow::Cow;
use std::ffi::CString;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::helper;
use super::sidecar::{self, recv_with_fds, send_some_with_fds};
use super::spawn::{self, STEP_CHDIR, STEP_PGID, STEP_STDIO, SpawnError};
use super::zygote::NsInit;
use crate::sandbox::apply::{SetupStep, errno};
use crate::sandbox::privilege::Isolation;

/// The fork server's argument (after the program).
pub const FORK_SERVER_MODE: &str = "__forkserver";

/// The prefix of the server's argument naming the CPU it runs on (`cpu=N`).
const CPU_ARG: &str = "cpu=";

/// A child that cannot be given back the server's former CPUs reports this step: the
/// spawn's own process setup (`SetupStep::CloseFds`, as for its stdio, `chdir` and process
/// group: [`spawn::reported`]).
const STEP_AFFINITY: u32 = STEP_STDIO;

/// The largest launch request the server reads (a profile's apply spec is far smaller).
const MAX_REQUEST: u32 = 16 << 20;

const KIND_LAUNCH: u32 = 1;
const KIND_REAP: u32 = 2;

/// A request's header: `[kind, launch bytes, request bytes, pid to reap first]`, `u32`s.
const HEADER: usize = 16;

const REPLY_STARTED: i64 = 1;
const REPLY_SETUP_FAILED: i64 = 2;
const REPLY_REFUSED: i64 = 3;
const REPLY_EXITED: i64 = 4;

/// Words (`i64`) of a reply: `[kind, pid, a, b, user µs, system µs, max RSS KiB, setup]`.
const REPLY_WORDS: usize = 8;

/// In an exit's last word, and in the word a child stores at a failed setup step: the
/// child failed its setup (step in bits 32..62, errno in bits 0..32).
pub const SETUP_FAILED_BIT: u64 = 1 << 62;

/// In an exit's reply (`b`): the server serves no further child (it reaps this one when
/// asked and ends).
const RETIRING: i64 = 1;

/// Bytes of stack for a child (the helper's code; a fork's child had the server's).
const CHILD_STACK: usize = 2 << 20;
/// The guard page below it.
const GUARD: usize = 4096;

/// One child to fork: what the exec'd helper got as environment and working directory,
/// and what the spawn applied before `execve` (the helper's request, its one argument,
/// follows as its own bytes: JSON once, not a JSON string inside JSON).
#[derive(Debug, Serialize, Deserialize)]
struct Launch<'a> {
    /// Exactly the child's environment.
    env: Cow<'a, [(String, String)]>,
    /// Its working directory (absolute).
    cwd: Option<Cow<'a, Path>>,
    /// Clean channel: a new session and umask 022 (else a process group of its own).
    clean: bool,
    /// A cgroup join-file descriptor follows stdout and stderr.
    cgroup: bool,
    /// The pidfd of the PID namespace's init follows (a new init: the server keeps it
    /// until the next one, or its end).
    pid_ns: bool,
    /// The child is born in the PID namespace of the init whose pidfd the server kept
    /// from an earlier launch (the runner's thread sends an init's pidfd once).
    #[serde(default)]
    same_ns: bool,
    /// The init's mount namespace has that namespace's `/proc`: the child joins it (and
    /// copies it, unless `Isolation::stays_in_prepared_mounts`) instead of mounting its own.
    #[serde(default)]
    ns_mounts: bool,
    /// How long the server may hold its `started` reply while the child runs (ms; 0: send
    /// it at once): a child that ends within it is told with one reply, its end
    /// ([`LaunchSpec::hold_ms`]).
    #[serde(default)]
    hold_ms: u32,
}

/// Why the server did not start a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchError {
    /// The child reported a failed setup step, as the spawn reports it.
    Child(SpawnError),
    /// The server is broken or gone (the runner starts the probe another way).
    Server(String),
}

/// What the runner passes for one child.
#[derive(Debug)]
pub struct LaunchSpec<'a> {
    /// The helper's arguments after the program ([`helper::HELPER_MODE`] first).
    pub args: &'a [String],
    /// Exactly the child's environment.
    pub env: &'a [(String, String)],
    /// Its working directory.
    pub cwd: Option<&'a Path>,
    /// Clean channel.
    pub clean: bool,
    /// Its isolation.
    pub isolation: Option<&'a Isolation>,
    /// The join file of its own pids cgroup (`ChildCgroup::procs_fd`).
    pub cgroup_fd: Option<RawFd>,
    /// The init of its PID namespace (its pidfd goes to the server once: the server keeps
    /// it while the runner's thread uses the same init, which names it by `same_ns`).
    pub ns_init: Option<&'a Arc<NsInit>>,
    /// That init's mount namespace has the namespace's `/proc` ([`NsInit::proc_mounted`]).
    pub ns_mounts: bool,
    /// How long the server may hold its `started` reply (milliseconds): a child that ends
    /// within it is told by its end alone (one reply, one wake-up of the runner's thread
    /// instead of two). The runner cannot signal the child before it knows its pid, so
    /// this is at most a quarter of the child's timeout (and 20 ms): a child that ends
    /// within it ended within its timeout.
    pub hold_ms: u32,
}

/// A started child: its pid (in the runner's PID namespace) and the read ends of its
/// stdout and stderr.
#[derive(Debug)]
pub struct Launched {
    /// Its pid.
    pub pid: i32,
    /// stdout.
    pub stdout: OwnedFd,
    /// stderr.
    pub stderr: OwnedFd,
    /// It had exited already when the server replied (within [`LaunchSpec::hold_ms`]):
    /// its end is read with [`ForkServer::exited`] without waiting.
    pub ended: bool,
}

/// The runner's side of one fork server.
#[derive(Debug)]
pub struct ForkServer {
    sock: Mutex<UnixStream>,
    /// What the runner owes the server (under its own lock; taken with `sock`'s).
    state: Mutex<Owed>,
    child: Mutex<Option<Child>>,
    pid: u32,
    broken: AtomicBool,
    /// The server's `children` file (`/proc/<pid>/task/<pid>/children`: [`children_file_of`]),
    /// opened once at its start: [`ForkServer::children_file`].
    children: Option<OwnedFd>,
}

/// The children of a server whose end the runner has not dealt with yet.
#[derive(Debug, Default)]
struct Owed {
    /// Started, its exit not read yet.
    running: Option<i32>,
    /// The running child's end, when the server told it in its first reply (the child
    /// ended within the launch's hold).
    ended: Option<Reply>,
    /// The init whose pidfd the server keeps (sent with a launch the server accepted):
    /// held here so that no other init can take its place at the same address, which
    /// [`Arc::ptr_eq`] compares.
    init: Option<Arc<NsInit>>,
    /// Exited and kept a zombie for the runner's sweep; the server reaps it first thing
    /// on the next request (a launch names it), or at the end of its socket.
    zombie: Option<i32>,
    /// The last launch's isolation and its JSON: a worker's children mostly bring the
    /// same one, whose bytes are then copied instead of serialized again (pure
    /// computation: equal isolations serialize to equal bytes).
    iso_text: IsoText,
}

/// An isolation's JSON text, kept for the next isolation equal to it.
#[derive(Debug, Default)]
struct IsoText(Option<(Isolation, Vec<u8>)>);

impl IsoText {
    /// Append `iso`'s JSON to `out`: the bytes kept when `iso` equals the one they were
    /// made from, else made now (and kept).
    fn write(&mut self, iso: &Isolation, out: &mut Vec<u8>) -> serde_json::Result<()> {
        if let Some((last, text)) = &self.0
            && last == iso
        {
            out.extend_from_slice(text);
            return Ok(());
        }
        self.0 = None;
        let text = serde_json::to_vec(iso)?;
        out.extend_from_slice(&text);
        self.0 = Some((iso.clone(), text));
        Ok(())
    }
}

impl ForkServer {
    /// Start a server (`exe __forkserver`) from the calling thread (so it is born in that
    /// thread's cgroup).
    pub fn start(exe: &Path) -> Result<Self, String> {
        Self::start_keeping(exe, None)
    }

    /// [`ForkServer::start`], the server keeping only `bounding` (a capability mask) of its
    /// bounding set: what the children it serves keep at most
    /// ([`crate::sandbox::privilege::bounding_kept_by`]), so that each child has less to
    /// drop (a drop copies the credentials).
    pub fn start_keeping(exe: &Path, bounding: Option<u64>) -> Result<Self, String> {
        Self::start_on(exe, bounding, None)
    }

    /// [`ForkServer::start_keeping`], the server running on CPU `cpu` only (a CPU the
    /// calling thread may run on: [`cpu_for_worker`]) while each child it forks runs where
    /// the server could before (see *The CPU* in the module doc).
    pub fn start_on(exe: &Path, bounding: Option<u64>, cpu: Option<usize>) -> Result<Self, String> {
        let (ours, theirs) = UnixStream::pair()
            .map_err(|e| format!("cannot create the fork server's socket: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.arg0("nexusmon-forkserver").arg(FORK_SERVER_MODE);
        if let Some(mask) = bounding {
            cmd.arg(format!("{mask:x}"));
        }
        if let Some(cpu) = cpu {
            cmd.arg(format!("{CPU_ARG}{cpu}"));
        }
        let child = cmd
            .env_clear()
            .current_dir("/")
            // Not in the runner's process group: a terminal's ^C is the runner's to handle
            // (it kills the children it runs and seals the bundle), not the server's.
            .process_group(0)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the fork server `{}`: {e}", exe.display()))?;
        let pid = child.id();
        crate::sandbox::cgroup::keep(pid);
        // A server that stops answering is given up (the probe then runs another way).
        let _ = ours.set_read_timeout(Some(Duration::from_secs(30)));
        // The server is this process's child, not reaped while `child` is held: its pid
        // names it until the drop.
        let children = children_file_of(pid);
        Ok(Self {
            sock: Mutex::new(ours),
            state: Mutex::new(Owed::default()),
            child: Mutex::new(Some(child)),
            pid,
            broken: AtomicBool::new(false),
            children,
        })
    }

    /// The server's `children` file, for the leftover check of its child's shared PID
    /// namespace (`NsInit::holds_nothing_but`, as for an exec child the file of the thread
    /// that cloned it): the server is single-threaded, so every process whose parent it is
    /// hangs from this one file. `None` if it could not be opened (the caller lists the
    /// namespace instead).
    ///
    /// Why the argument of `NsInit::holds_nothing_but` carries over to a child this server
    /// cloned (`parent_children` this file, `child` the pid the server replied, exited and
    /// kept a zombie):
    ///
    /// - The cloning "thread" is the server's one thread. It clones only when its worker
    ///   thread's launch asks it to, and that worker thread runs one child at a time: while
    ///   the worker checks this child's namespace, the server waits on its socket and clones
    ///   nothing. The zombie of the child before was reaped on this child's launch, before
    ///   its clone (the launch names it; a standalone reap was sent at once), so the file
    ///   lists this child and whatever this child (or such a sibling) started with
    ///   `CLONE_PARENT`, whose parent is then the server.
    /// - The other holders of a reference to the namespace are as for an exec child: the
    ///   worker thread (and its spawning threads, `spawn::with_bounding`), which enter it
    ///   only for an exec child's clone and clone nothing while this child is checked —
    ///   every earlier child of theirs in the namespace was seen through (reaped, and
    ///   whatever it left found by this check or the listing, which ended the namespace) —
    ///   and the zygote, which makes only new inits. No probe child holds one.
    /// - So, the file listing exactly the child (read first), nothing of the namespace but
    ///   it hangs from the server then or later (only a live process whose parent is the
    ///   server could add one), and everything else of the namespace is in the init's
    ///   subtree, which the init's empty `children` file (read next) shows empty.
    ///
    /// The pids in the file are those of this process's `/proc`, the one every other check
    /// of the runner reads (`/proc/<pid>` of its children): [`children_file_of`] opens it
    /// only when that `/proc` is this process's PID namespace's, so the file's pids and the
    /// server's replies (its clone's pids, in the runner's namespace) are the same numbers.
    pub fn children_file(&self) -> Option<RawFd> {
        self.children.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Ask the server to end (its socket shut down: it reaps its last child and exits)
    /// without waiting for it; the drop waits. Ending several servers this way lets them
    /// exit together instead of one after the other.
    pub fn retire(&self) {
        if let Ok(s) = self.sock.lock() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// It failed once: the runner starts another.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    fn give_up(&self, why: String) -> LaunchError {
        self.broken.store(true, Ordering::SeqCst);
        LaunchError::Server(why)
    }

    /// Fork one child and wait for its setup to end (as the spawn waits for `execve`).
    /// The previous child, if it is still a zombie, is reaped by the server first.
    pub fn launch(&self, spec: &LaunchSpec<'_>) -> Result<Launched, LaunchError> {
        if self.is_broken() {
            return Err(LaunchError::Server("the fork server failed before".into()));
        }
        let io = |e: std::io::Error| {
            LaunchError::Child(SpawnError::Setup(
                SetupStep::CloseFds,
                e.raw_os_error().unwrap_or(libc::EIO),
            ))
        };
        // The helper's request is its one argument after the mode; the server parses it as
        // the exec'd helper parses its argument.
        let request = match spec.args {
            [mode, req] if mode == helper::HELPER_MODE => req.as_bytes(),
            _ => {
                return Err(LaunchError::Server(
                    "the fork server runs only the probe helper's request".into(),
                ));
            }
        };
        let sock = self
            .sock
            .lock()
            .map_err(|_| LaunchError::Server("the fork server's socket is poisoned".into()))?;
        let mut owed = self
            .state
            .lock()
            .map_err(|_| LaunchError::Server("the fork server's state is poisoned".into()))?;
        if let Some(pid) = owed.running {
            // A started child whose end was never read (its runner thread gave up on it):
            // the server cannot serve in step any more.
            return Err(self.give_up(format!(
                "the fork server's child {pid} was never seen to end"
            )));
        }
        // The init's pidfd goes with the first launch into its namespace; the server keeps
        // it for the next ones of the same init.
        let same_ns = match (spec.ns_init, &owed.init) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        let send_init = spec.ns_init.filter(|_| !same_ns);
        let launch = Launch {
            env: Cow::Borrowed(spec.env),
            cwd: spec.cwd.map(Cow::Borrowed),
            clean: spec.clean,
            cgroup: spec.cgroup_fd.is_some(),
            pid_ns: send_init.is_some(),
            same_ns,
            ns_mounts: spec.ns_init.is_some() && spec.ns_mounts,
            hold_ms: spec.hold_ms,
        };
        // The header, then the launch, then the request: one message. The launch's bytes
        // are its JSON, a newline (never inside a JSON text as written here) and the
        // isolation's JSON (nothing without one): the server parses an isolation again only
        // when its bytes differ from the last one's (`IsolationCache`).
        let mut payload = vec![0u8; HEADER];
        serde_json::to_writer(&mut payload, &launch)
            .map_err(|e| LaunchError::Server(format!("cannot encode the launch: {e}")))?;
        payload.push(b'\n');
        if let Some(iso) = spec.isolation {
            owed.iso_text
                .write(iso, &mut payload)
                .map_err(|e| LaunchError::Server(format!("cannot encode the launch: {e}")))?;
        }
        let launch_len = u32::try_from(payload.len() - HEADER).ok();
        let request_len = u32::try_from(request.len()).ok();
        let (Some(launch_len), Some(request_len)) = (launch_len, request_len) else {
            return Err(LaunchError::Server(
                "the launch request is too large".into(),
            ));
        };
        if launch_len.saturating_add(request_len) > MAX_REQUEST {
            return Err(LaunchError::Server(
                "the launch request is too large".into(),
            ));
        }
        payload.extend_from_slice(request);
        let (out_r, out_w) = pipe().map_err(io)?;
        let (err_r, err_w) = pipe().map_err(io)?;
        let mut fds = vec![out_w.as_raw_fd(), err_w.as_raw_fd()];
        fds.extend(spec.cgroup_fd);
        fds.extend(send_init.map(|i| i.pidfd()));
        let reap_first = owed
            .zombie
            .take()
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        payload[..HEADER].copy_from_slice(&header(
            KIND_LAUNCH,
            launch_len,
            request_len,
            reap_first,
        ));
        // The descriptors go with the first bytes; whatever the socket did not take at
        // once follows.
        let Some(sent) = send_some_with_fds(sock.as_raw_fd(), &payload, &fds) else {
            return Err(self.give_up(format!(
                "the fork server is gone: {}",
                std::io::Error::last_os_error()
            )));
        };
        (&*sock)
            .write_all(&payload[sent..])
            .map_err(|e| self.give_up(format!("the fork server is gone: {e}")))?;
        drop((out_w, err_w));
        let reply = read_reply(&sock).map_err(|e| self.give_up(e))?;
        // The server keeps the init's pidfd it got once it accepted the launch; after a
        // refusal or a failed step it may not, so the next launch sends it again.
        if matches!(reply[0], REPLY_STARTED | REPLY_EXITED) {
            if let Some(i) = send_init {
                owed.init = Some(i.clone());
            }
        } else {
            owed.init = None;
        }
        match reply[0] {
            // Started, or started and ended within the hold (its end is read by `exited`).
            k @ (REPLY_STARTED | REPLY_EXITED) => {
                let pid = i32::try_from(reply[1]).unwrap_or(0);
                if pid <= 0 {
                    return Err(self.give_up(format!("the fork server replied pid {pid}")));
                }
                owed.running = Some(pid);
                let ended = k == REPLY_EXITED;
                owed.ended = ended.then_some(reply);
                Ok(Launched {
                    pid,
                    stdout: out_r,
                    stderr: err_r,
                    ended,
                })
            }
            REPLY_SETUP_FAILED => Err(LaunchError::Child(spawn::reported(
                u32::try_from(reply[2]).unwrap_or(0),
                i32::try_from(reply[3]).unwrap_or(libc::EIO),
            ))),
            REPLY_REFUSED => Err(self.give_up(format!(
                "the fork server refused the launch ({})",
                super::outcome::errno_name(i32::try_from(reply[3]).unwrap_or(libc::EIO))
            ))),
            k => Err(self.give_up(format!("the fork server replied {k} to a launch"))),
        }
    }

    /// The end of the child `pid` (it exited: its pidfd said so, or the server's first
    /// reply was its end already: [`Launched::ended`]): its wait status and
    /// rusage, as the server saw them when it ended (`waitid(WNOWAIT)`: the child is still
    /// a zombie, so its pid is not reused while the runner sweeps what it left). With
    /// `reap_now` the server reaps it at once (its PID namespace's init waits for that to
    /// end); otherwise it does so first thing on its next request. A child that did not
    /// end through its own `_exit` retires the server: it is reaped at once and the server
    /// ends.
    pub fn exited(&self, pid: i32, reap_now: bool) -> Option<ChildEnd> {
        let sock = self.sock.lock().ok()?;
        let mut owed = self.state.lock().ok()?;
        if owed.running != Some(pid) {
            self.broken.store(true, Ordering::SeqCst);
            return None;
        }
        owed.running = None;
        let read = match owed.ended.take() {
            Some(r) => Ok(r),
            None => read_reply(&sock),
        };
        let Ok(r) = read else {
            self.broken.store(true, Ordering::SeqCst);
            return None;
        };
        if r[0] != REPLY_EXITED || r[1] != i64::from(pid) {
            self.broken.store(true, Ordering::SeqCst);
            return None;
        }
        let retiring = r[3] == RETIRING;
        if reap_now || retiring {
            let pid_u = u32::try_from(pid).unwrap_or(0);
            if (&*sock).write_all(&header(KIND_REAP, 0, 0, pid_u)).is_err() {
                self.broken.store(true, Ordering::SeqCst);
            }
        } else {
            owed.zombie = Some(pid);
        }
        if retiring {
            // It ends after this reap: the next probe gets a new server.
            self.broken.store(true, Ordering::SeqCst);
        }
        // SAFETY: zeroed plain data.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        ru.ru_utime = us_tv(r[4]);
        ru.ru_stime = us_tv(r[5]);
        ru.ru_maxrss = r[6];
        let setup = u64::try_from(r[7]).unwrap_or(0);
        Some(ChildEnd {
            status: i32::try_from(r[2]).unwrap_or(0),
            rusage: ru,
            setup_failed: (setup & SETUP_FAILED_BIT != 0).then(|| {
                let step = u32::try_from((setup & !SETUP_FAILED_BIT) >> 32).unwrap_or(0);
                (
                    step,
                    i32::try_from(setup & 0xffff_ffff).unwrap_or(libc::EIO),
                )
            }),
        })
    }
}

/// How a server's child ended, as the server saw it.
#[derive(Debug)]
pub struct ChildEnd {
    /// Its wait status (as `wait4` gives it).
    pub status: i32,
    /// The kernel's rusage of the zombie.
    pub rusage: libc::rusage,
    /// It failed a setup step: `(step, errno)` as the spawn reports them
    /// ([`spawn::reported`]); it ran no helper code.
    pub setup_failed: Option<(u32, i32)>,
}

/// One reply as read.
type Reply = [i64; REPLY_WORDS];

/// A request's header.
fn header(kind: u32, launch: u32, request: u32, reap: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    for (i, w) in [kind, launch, request, reap].into_iter().enumerate() {
        h[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    h
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        // The end of its socket ends the server, which reaps its last child first (its
        // zombie must not be re-parented to the runner and swept as a leak).
        sidecar::stop(&self.sock, &self.child, Duration::from_millis(1));
        crate::sandbox::cgroup::release(self.pid);
    }
}

fn us_tv(us: i64) -> libc::timeval {
    libc::timeval {
        tv_sec: us / 1_000_000,
        tv_usec: us % 1_000_000,
    }
}

fn tv_us(tv: libc::timeval) -> i64 {
    tv.tv_sec * 1_000_000 + tv.tv_usec
}

fn read_reply(sock: &UnixStream) -> Result<Reply, String> {
    let mut b = [0u8; REPLY_WORDS * 8];
    let mut s = sock;
    s.read_exact(&mut b)
        .map_err(|e| format!("the fork server did not answer: {e}"))?;
    let mut r = [0i64; REPLY_WORDS];
    for (i, v) in r.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        *v = i64::from_ne_bytes(w);
    }
    Ok(r)
}

/// The `children` file of the main thread of `pid` (a child of this process, not reaped:
/// `/proc/<pid>/task/<pid>/children`), or `None` if it cannot be opened or if `/proc` is
/// not this process's PID namespace's (`/proc/self` is not this process's pid there: its
/// numbers would not be the runner's).
pub fn children_file_of(pid: u32) -> Option<OwnedFd> {
    let me = std::fs::read_link("/proc/self").ok()?;
    if me.as_os_str().as_bytes() != std::process::id().to_string().as_bytes() {
        return None;
    }
    let path = CString::new(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    crate::util::fsx::open_cloexec(&path)
}

/// The CPU the fork server of the worker thread numbered `index` runs on: the
/// `(index + this process's pid)`-th (modulo their number) of the CPUs the calling thread
/// may run on, so the servers of a run's workers are spread over them, one per CPU while
/// there are as many CPUs as workers, and runs side by side (each `--jobs 1`, say) do not
/// all start on the same one. `None` when the calling thread may run on one CPU only
/// (nothing to choose) or its set cannot be read.
pub fn cpu_for_worker(index: usize) -> Option<usize> {
    let offset = usize::try_from(std::process::id()).unwrap_or(0);
    let cpus = allowed_cpus()?;
    (cpus.len() > 1).then(|| cpus[index.wrapping_add(offset) % cpus.len()])
}

/// The CPUs the calling thread may run on, ascending; `None` if its set cannot be read.
pub fn allowed_cpus() -> Option<Vec<usize>> {
    // SAFETY: zeroed plain data, filled by the call.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the calling thread's own affinity into a local set of its size.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw mut set) }
        != 0
    {
        return None;
    }
    Some(
        (0..8 * std::mem::size_of::<libc::cpu_set_t>())
            // SAFETY: an index below the set's size.
            .filter(|c| unsafe { libc::CPU_ISSET(*c, &set) })
            .collect(),
    )
}

/// Pin the calling (single-threaded) process to `cpu`; the set it could run on before, or
/// `None` (nothing changed) if either call fails.
///
/// # Safety
/// Changes the calling thread's affinity: only in the fork server, at its start.
unsafe fn pin_to(cpu: usize) -> Option<libc::cpu_set_t> {
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return None;
    }
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: zeroed plain data, filled by the calls.
    let mut before: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: this thread's own affinity, local sets of their size, an index below it.
    unsafe {
        if libc::sched_getaffinity(0, size, &raw mut before) != 0 || !libc::CPU_ISSET(cpu, &before)
        {
            return None;
        }
        libc::CPU_SET(cpu, &mut one);
        (libc::sched_setaffinity(0, size, &raw const one) == 0).then_some(before)
    }
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

/// The server: serve launches and reaps on stdin (a socket) until it closes; returns the
/// exit code. Single-threaded: nothing here starts a thread. `args` (after the mode): the
/// bounding set to keep, a hexadecimal capability mask ([`ForkServer::start_keeping`]).
pub fn fork_server_main(args: &[String]) -> i32 {
    // SAFETY: prctl with integer arguments: nothing may read this process's memory. Then
    // no descriptor but stdio: the runner's own inherited ones (those its parent left
    // without close-on-exec) are not the server's to hold, and every descriptor the server
    // holds is copied into each child's table at the clone and closed there again.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    let mut cpu = None;
    let mut keep = None;
    for a in args {
        match a.strip_prefix(CPU_ARG) {
            Some(n) => match n.parse::<usize>() {
                Ok(n) => cpu = Some(n),
                Err(_) => return 2,
            },
            None if keep.is_none() => keep = Some(a),
            None => return 2,
        }
    }
    // The CPU this server runs on (its children run where it could before: `affinity`).
    // SAFETY: this single-threaded server's own affinity.
    let affinity = cpu.and_then(|c| unsafe { pin_to(c) });
    if let Some(keep) = keep {
        let Ok(keep) = u64::from_str_radix(keep, 16) else {
            return 2;
        };
        // SAFETY: this (single-threaded) server's own bounding set.
        if !unsafe { crate::sandbox::privilege::drop_bounding_except(keep, 63) } {
            return 1;
        }
    }
    // Its bounding set, read once: it never changes again, so each child (a clone of this
    // process) drops what it must from it without reading its capabilities one by one.
    let bounding = crate::sandbox::privilege::bounding_set(63);
    // Default dispositions for every signal, inherited by each child (a clone): the runner
    // may have been started ignoring SIGHUP, SIGINT or SIGQUIT (`nohup`, a background
    // job), which `execve` into this server kept.
    // SAFETY: this single-threaded server installs no handler it relies on.
    unsafe { super::spawn::default_dispositions() };
    // And no signal blocked in a child: `Command` keeps the spawning thread's mask, so a
    // runner started with signals blocked passed them on; each child sets this empty mask
    // after its clone. The server itself blocks `SIGCHLD` only, so that a child's end is
    // waited for with `sigtimedwait` (with the hold as its timeout; a blocked signal is
    // queued even at its default disposition) instead of a pidfd per child and `poll`.
    let empty = super::spawn::empty_sigset();
    let mut chld = empty;
    // SAFETY: valid sigsets; this process's own (only) thread.
    unsafe {
        libc::sigaddset(&raw mut chld, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const chld, std::ptr::null_mut());
    }
    // The kernel's Landlock ABI, which every child's line reports: queried once.
    let abi = crate::sandbox::host::landlock_abi().ok();
    // SAFETY: opening this process's own PID namespace (for setting it back after a fork
    // into another).
    let own_ns = unsafe {
        libc::open(
            c"/proc/self/ns/pid".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    // SAFETY: as above, its mount namespace (for going back after joining an init's).
    let own_mnt = unsafe {
        libc::open(
            c"/proc/self/ns/mnt".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    let mut for_children = ForChildren {
        own: own_ns,
        own_mnt,
        kept: None,
        entered: false,
        mounts_kept: false,
        mounts_foreign: false,
    };
    // Every child's stdin, opened once (read-only, as the spawn opens it): a descriptor of
    // `/dev/null` has no state a child could change for the next one that a read or a write
    // of it would show (no offset, no data; its status flags change nothing it returns).
    // SAFETY: opening a static path.
    let devnull = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if devnull < 0 {
        return 1;
    }
    // Held open by the server only: a child whose copy of the write end is closed sees
    // the pipe hang up once the server is gone.
    let Ok((alive_r, alive_w)) = pipe() else {
        return 1;
    };
    let Some(stack) = ChildStack::map() else {
        return 1;
    };
    let mut inbox = Inbox::default();
    let mut isolations = IsolationCache::default();
    // The child that exited and is kept a zombie until the runner has swept what it left;
    // the runner names it in its next request (or closes the socket).
    let mut zombie: Option<u32> = None;
    let mut retiring = false;
    loop {
        if !inbox.fill(HEADER) {
            break;
        }
        let mut header = [0u8; HEADER];
        header.copy_from_slice(inbox.take(HEADER));
        let word = |i: usize| {
            u32::from_ne_bytes([
                header[i * 4],
                header[i * 4 + 1],
                header[i * 4 + 2],
                header[i * 4 + 3],
            ])
        };
        let (kind, launch_len, request_len, reap_first) = (word(0), word(1), word(2), word(3));
        // The runner's reap of the previous child comes first; it names exactly the one
        // zombie this server holds, or the protocol is broken and the server ends.
        if reap_first != 0 {
            if zombie != Some(reap_first) || !reap(reap_first) {
                break;
            }
            zombie = None;
        }
        if retiring {
            // The child before ended other than through its own `_exit`: it may have been
            // stopped inside the allocator it shares with this process (see the module doc).
            break;
        }
        let reply = match kind {
            KIND_REAP => continue,
            KIND_LAUNCH
                if zombie.is_none()
                    && u64::from(launch_len) + u64::from(request_len) <= u64::from(MAX_REQUEST) =>
            {
                if !inbox.fill((launch_len + request_len) as usize) {
                    break;
                }
                let fds = std::mem::take(&mut inbox.fds);
                let payload = inbox.take((launch_len + request_len) as usize);
                let (launch_bytes, request) = payload.split_at(launch_len as usize);
                let (launch_bytes, iso_bytes) = launch_bytes
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or((launch_bytes, None), |at| {
                        (&launch_bytes[..at], Some(&launch_bytes[at + 1..]))
                    });
                let parsed = serde_json::from_slice::<Launch>(launch_bytes)
                    .ok()
                    .zip(iso_bytes.and_then(|b| isolations.get(b).ok()));
                match parsed {
                    Some((l, iso)) => launch(
                        &l,
                        iso,
                        request,
                        fds,
                        &mut for_children,
                        (alive_r.as_raw_fd(), alive_w.as_raw_fd(), devnull),
                        (&stack, bounding, abi, &empty, affinity.as_ref()),
                    ),
                    None => Served::Reply(refused(0, libc::EINVAL)),
                }
            }
            _ => break,
        };
        match reply {
            Served::Ran {
                pid,
                clean_exit,
                sent,
            } => {
                zombie = Some(pid);
                retiring = !clean_exit;
                if !sent {
                    // The runner is gone: the loop ends at the closed socket.
                    break;
                }
            }
            Served::Reply(reply) => {
                if !send_reply(&reply) {
                    break;
                }
                if reply[0] == REPLY_REFUSED && reply[2] == 1 {
                    // The PID namespace could not be set back: this server cannot fork
                    // safely.
                    break;
                }
            }
        }
    }
    // Never leave a child to be re-parented as a zombie (the runner would sweep it as a
    // leak at the end of the run).
    if let Some(pid) = zombie {
        reap(pid);
    }
    0
}

/// The last isolation a launch brought, parsed once: the launches of one worker's children
/// carry the same few isolations (one per profile and lane, nearly always the same bytes
/// one after the other), so bytes equal to the last ones are the same isolation (parsing
/// the same JSON text again gives the same value) and are not parsed again. Changed only
/// between children (a launch's isolation is read before its clone, and the previous
/// child has exited by then), so a child never sees it change.
#[derive(Default)]
struct IsolationCache {
    bytes: Vec<u8>,
    parsed: Option<Isolation>,
}

impl IsolationCache {
    /// The isolation `bytes` says (`Ok(None)`: none, empty bytes), or why they do not
    /// parse.
    fn get(&mut self, bytes: &[u8]) -> Result<Option<&Isolation>, serde_json::Error> {
        if bytes.is_empty() {
            return Ok(None);
        }
        if self.parsed.is_none() || self.bytes != bytes {
            self.parsed = None;
            let iso = serde_json::from_slice::<Isolation>(bytes)?;
            self.bytes.clear();
            self.bytes.extend_from_slice(bytes);
            self.parsed = Some(iso);
        }
        Ok(self.parsed.as_ref())
    }
}

/// The bytes and descriptors read from the socket and not used yet. One `recvmsg` into a
/// buffer of [`INBOX`] bytes takes a whole launch (its header, its bytes and the
/// descriptors attached to them: the kernel ends a read after the data that carried
/// descriptors) where reading the header and then the bytes took two; what a read got
/// beyond one request (a reap, then the next launch) stays for the next. The runner sends
/// a launch only after the replies to the one before, so the descriptors pending when a
/// launch is read are that launch's.
#[derive(Default)]
struct Inbox {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    fds: Vec<OwnedFd>,
}

/// The inbox's buffer (a launch's bytes are a few KiB; a larger one is read in parts).
const INBOX: usize = 64 << 10;

impl Inbox {
    /// Read until `n` bytes are pending; false at the end of the socket (or an error).
    fn fill(&mut self, n: usize) -> bool {
        while self.end - self.start < n {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let want = n.max(INBOX);
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let (got, fds) = recv_with_fds(0, &mut self.buf[self.end..]);
            self.fds.extend(fds);
            if got == 0 {
                return false;
            }
            self.end += got;
        }
        true
    }

    /// The next `n` pending bytes (after [`Inbox::fill`] of at least `n`).
    fn take(&mut self, n: usize) -> &[u8] {
        let at = self.start;
        self.start += n;
        &self.buf[at..self.start]
    }
}

/// What serving one launch came to.
enum Served {
    /// A reply to send (the child did not run).
    Reply([i64; REPLY_WORDS]),
    /// The child ran: `started` and its exit were sent (`sent`: both went out), and it is
    /// a zombie now. `clean_exit`: it ended through one of the helper's own `_exit`s.
    Ran {
        pid: u32,
        clean_exit: bool,
        sent: bool,
    },
}

/// A refusal (`flag` 1: the server cannot fork safely any more).
fn refused(flag: i64, e: i32) -> [i64; REPLY_WORDS] {
    [REPLY_REFUSED, 0, flag, i64::from(e), 0, 0, 0, 0]
}

/// A failed setup step, as the spawn reports it.
fn setup_failed(step: u32, e: i32) -> [i64; REPLY_WORDS] {
    [
        REPLY_SETUP_FAILED,
        0,
        i64::from(step),
        i64::from(e),
        0,
        0,
        0,
        0,
    ]
}

/// Send one reply on the socket (a local buffer: no allocation).
fn send_reply(reply: &[i64; REPLY_WORDS]) -> bool {
    let mut b = [0u8; REPLY_WORDS * 8];
    for (i, v) in reply.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_ne_bytes());
    }
    // SAFETY: writing a local buffer to the socket.
    let w = unsafe { libc::send(0, b.as_ptr().cast(), b.len(), libc::MSG_NOSIGNAL) };
    usize::try_from(w).is_ok_and(|w| w == b.len())
}

/// The stack the children run on (one at a time): mapped once, with a guard page below.
struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    fn map() -> Option<Self> {
        let len = CHILD_STACK + GUARD;
        // SAFETY: a fresh anonymous private mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: the lowest page of our own mapping becomes the guard.
        if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } != 0 {
            // SAFETY: unmapping our own mapping.
            unsafe { libc::munmap(base, len) };
            return None;
        }
        Some(Self { base, len })
    }

    /// Its top (the stack grows down), 16-byte aligned.
    fn top(&self) -> *mut libc::c_void {
        ((self.base as usize + self.len) & !15) as *mut libc::c_void
    }
}

/// Reap the zombie `pid` (this server's child, exited); false if it cannot.
fn reap(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    loop {
        // SAFETY: reaping our own child.
        let rc = unsafe { libc::wait4(pid, std::ptr::null_mut(), 0, std::ptr::null_mut()) };
        if rc == pid {
            return true;
        }
        if rc < 0 && errno() != libc::EINTR {
            return false;
        }
    }
}

/// Wait until the child `pid` has exited, without reaping it (`waitid(WNOWAIT)`: it
/// stays a zombie, so its pid is not reused while the runner sweeps what it left): its
/// wait status (as `wait4` gives it), its rusage (the kernel fills it for a zombie as it
/// would at the reap), and whether it ended through one of the helper's own `_exit`s.
fn wait_exited(pid: libc::pid_t) -> (i32, libc::rusage, bool) {
    match waitid_exited(pid, 0) {
        Waited::Ended(end) => end,
        // Not seen to end: judged as a crash (the server retires).
        // SAFETY: zeroed plain data.
        Waited::Running | Waited::Failed => (libc::SIGKILL, unsafe { std::mem::zeroed() }, false),
    }
}

/// What `waitid` said of a child.
enum Waited {
    /// It failed.
    Failed,
    /// The child has not exited (with `WNOHANG`).
    Running,
    /// Its end as [`wait_exited`] gives it.
    Ended((i32, libc::rusage, bool)),
}

/// The end of the child `pid` if it exits within `hold_ms` (as [`wait_exited`] gives it),
/// else `None` (it still runs, or it could not be waited for: [`wait_exited`] says).
/// Waits in `sigtimedwait` for the `SIGCHLD` its exit sends (the server blocks `SIGCHLD`,
/// so it is queued; one pending from an earlier child, or a child's stop, only makes it
/// look again), then looks without waiting (`WNOHANG`, `WNOWAIT`: the zombie stays).
fn exited_within(pid: libc::pid_t, hold_ms: u32) -> Option<(i32, libc::rusage, bool)> {
    if hold_ms == 0 {
        return None;
    }
    let mut set = super::spawn::empty_sigset();
    // SAFETY: a valid local sigset.
    unsafe { libc::sigaddset(&raw mut set, libc::SIGCHLD) };
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: reading the monotonic clock into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    let ns = |t: &libc::timespec| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
    let deadline = ns(&now) + i128::from(hold_ms) * 1_000_000;
    loop {
        let left = deadline - ns(&now);
        if left <= 0 {
            return match waitid_exited(pid, libc::WNOHANG) {
                Waited::Ended(end) => Some(end),
                Waited::Running | Waited::Failed => None,
            };
        }
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(left / 1_000_000_000).unwrap_or(0),
            tv_nsec: libc::c_long::try_from(left % 1_000_000_000).unwrap_or(0),
        };
        // SAFETY: waiting for a blocked signal with local arguments.
        unsafe { libc::sigtimedwait(&raw const set, std::ptr::null_mut(), &raw const ts) };
        match waitid_exited(pid, libc::WNOHANG) {
            Waited::Ended(end) => return Some(end),
            Waited::Running => {}
            Waited::Failed => return None,
        }
        // SAFETY: as above.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    }
}

/// `waitid(P_PID, pid, WEXITED | WNOWAIT | extra)` with the kernel's rusage.
fn waitid_exited(pid: libc::pid_t, extra: libc::c_int) -> Waited {
    // SAFETY: zeroed plain data filled by waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = loop {
        // SAFETY: the raw waitid (its fifth argument, the rusage, is not in the C
        // library's wrapper) on our own child, with pointers to local data.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                libc::P_PID,
                pid,
                &raw mut info,
                libc::WEXITED | libc::WNOWAIT | extra,
                &raw mut ru,
            )
        };
        if rc == 0 || errno() != libc::EINTR {
            break rc;
        }
    };
    if rc != 0 {
        return Waited::Failed;
    }
    // SAFETY: the pid field of a siginfo filled by waitid (0 with `WNOHANG` and no end).
    if unsafe { info.si_pid() } != pid {
        return Waited::Running;
    }
    // SAFETY: the status field of a siginfo filled by waitid for a child.
    let code = unsafe { info.si_status() };
    let status = match info.si_code {
        libc::CLD_EXITED => (code & 0xff) << 8,
        libc::CLD_DUMPED => (code & 0x7f) | 0x80,
        _ => code & 0x7f,
    };
    // A child that did not end through one of its own `_exit`s (a signal: a timeout's
    // SIGTERM or SIGKILL, a crash; a panic's code) may have stopped anywhere in the
    // allocator it shared with this process: this server serves no further child.
    let clean_exit = libc::WIFEXITED(status)
        && matches!(
            libc::WEXITSTATUS(status),
            0 | 1 | 2 | 3 | 127 | helper::EXIT_APPLY_FAILED
        );
    Waited::Ended((status, ru, clean_exit))
}

/// Start one child for `l` and the helper's `request` (a `clone(CLONE_VM)` onto `stack`):
/// the reply to send, or [`Served::Ran`] when the child started: then its start and its
/// exit were sent here and it is a zombie (not reaped), so nothing it may still use was
/// freed or reused while it ran.
fn launch(
    l: &Launch<'_>,
    iso: Option<&Isolation>,
    request: &[u8],
    fds: Vec<OwnedFd>,
    for_children: &mut ForChildren,
    (alive_r, alive_w, devnull): (RawFd, RawFd, RawFd),
    (stack, bounding, abi, child_mask, affinity): (
        &ChildStack,
        u64,
        Option<u8>,
        &libc::sigset_t,
        Option<&libc::cpu_set_t>,
    ),
) -> Served {
    let refused = |e: i32| Served::Reply(refused(0, e));
    let mut it = fds.into_iter();
    let (Some(out), Some(err)) = (it.next(), it.next()) else {
        return refused(libc::EBADF);
    };
    let cgroup = if l.cgroup { it.next() } else { None };
    let pidns = if l.pid_ns { it.next() } else { None };
    if l.cgroup && cgroup.is_none()
        || l.pid_ns && pidns.is_none()
        || l.pid_ns && l.same_ns
        || it.next().is_some()
    {
        return refused(libc::EBADF);
    }
    // Everything the child needs, prepared here: its environment as `execve` would make
    // it, `K=V` strings and the array `environ` then points at (no allocation in the
    // child's setup). A name `setenv` refuses (empty, or with `=`) is left out, as
    // `setenv` did.
    let Ok(env) = l
        .env
        .iter()
        .filter(|(k, _)| !k.is_empty() && !k.contains('='))
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<Vec<_>, std::ffi::NulError>>()
    else {
        return refused(libc::EINVAL);
    };
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|c| c.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());
    let Ok(cwd) = l
        .cwd
        .as_ref()
        .map(|c| CString::new(c.as_os_str().as_bytes()))
        .transpose()
    else {
        return refused(libc::EINVAL);
    };
    let mut request = helper::parse_request(request);
    if let Ok(req) = &mut request {
        // The parent checks were made against this server (the child's parent-death
        // signal and the alive pipe), not against the runner.
        req.runner_pid = None;
        // The child takes the clean channel's steps itself, before its cgroup and
        // identity (`child_main`), as the spawn does: the helper's code need not repeat
        // them.
        if l.clean {
            req.clean = false;
        }
    }
    // A failed setup step of the child: it stores it here and exits (see the module doc).
    let report = AtomicU64::new(0);
    // The PID namespace the child is born in: a new init's, the kept init's, or this
    // process's own.
    let entered = match pidns {
        Some(ns) => for_children.enter_new(ns),
        None if l.same_ns => for_children.enter_kept(),
        None => {
            if let Err(e) = for_children.leave() {
                return Served::Reply(self::refused(1, e));
            }
            Ok(None)
        }
    };
    let init = match entered {
        Ok(init) => init,
        Err(e) => return Served::Reply(setup_failed(SetupStep::Namespaces as u32, e)),
    };
    // A child of the init's PID namespace with a mount namespace of its own starts from
    // that init's prepared mount namespace: the server joins it (once per init, not once
    // per child) and the child is born in it ([`Isolation::enforce_mounts_born_in_prepared`]).
    // Every other child is born in the server's own mount namespace, as before.
    let born_in = init.is_some()
        && l.ns_mounts
        && iso.is_some_and(|i| i.mount_namespace() && i.pid_namespace());
    let mounts = if born_in {
        for_children.join_kept_mounts()
    } else {
        for_children.own_mounts().map_err(|e| (e, true))
    };
    match mounts {
        Ok(()) => {}
        Err((e, false)) => {
            return Served::Reply(setup_failed(SetupStep::Namespaces as u32, e));
        }
        Err((e, true)) => return Served::Reply(self::refused(1, e)),
    }
    // Block every signal across the clone; the child restores `old`.
    // SAFETY: zeroed sigsets filled by the calls below.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to local sigsets.
    unsafe {
        libc::sigfillset(&raw mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const all, &raw mut old);
    }
    let args = ChildArgs {
        l,
        iso,
        fds: ChildFds {
            out: out.as_raw_fd(),
            err: err.as_raw_fd(),
            cgroup: cgroup.as_ref().map(AsRawFd::as_raw_fd),
            alive: (alive_r, alive_w),
            devnull,
            born_in,
        },
        envp: envp.as_mut_ptr(),
        cwd: cwd.as_deref(),
        request: &request,
        mask: *child_mask,
        bounding,
        report: &report,
        abi,
        affinity,
    };
    // SAFETY: the server's own `environ`, put back once the child is gone.
    let own_environ = unsafe { environ };
    let flags = libc::CLONE_VM | libc::SIGCHLD | iso.map_or(0, |i| i.clone_flags_from(born_in));
    // SAFETY: the child runs `child_entry` on `stack` (used by no one else while it lives)
    // with `args`, which this frame keeps alive and unchanged until the child has exited.
    let pid = unsafe {
        libc::clone(
            child_entry,
            stack.top(),
            flags,
            std::ptr::from_ref(&args).cast_mut().cast(),
        )
    };
    let clone_errno = errno();
    // SAFETY: restoring this thread's mask.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut());
    }
    // Closing descriptors allocates nothing: safe while the child runs.
    drop((out, err, cgroup));
    if pid < 0 {
        return Served::Reply(setup_failed(SetupStep::CloseFds as u32, clone_errno));
    }
    // The child runs its setup and the helper's code now, which allocates in the memory it
    // shares with this process: the replies go out from local buffers, and between them
    // this process only waits (a system call) until the child has exited, leaving it a
    // zombie for the runner's sweep. A failed setup step is read once it has exited.
    let pid64 = i64::from(pid);
    // A child that ends within the hold is told by its end alone; otherwise `started`
    // goes out once the hold is over (the runner cannot signal it before: the hold is at
    // most a quarter of its timeout).
    let in_hold = exited_within(pid, l.hold_ms);
    let sent = in_hold.is_some() || send_reply(&[REPLY_STARTED, pid64, 0, 0, 0, 0, 0, 0]);
    let (status, ru, clean_exit) = in_hold.unwrap_or_else(|| wait_exited(pid));
    let setup = i64::try_from(report.load(Ordering::Acquire)).unwrap_or(0);
    let sent = sent
        && send_reply(&[
            REPLY_EXITED,
            pid64,
            i64::from(status),
            if clean_exit { 0 } else { RETIRING },
            tv_us(ru.ru_utime),
            tv_us(ru.ru_stime),
            ru.ru_maxrss,
            setup,
        ]);
    let served = Served::Ran {
        pid: u32::try_from(pid).unwrap_or(0),
        clean_exit,
        sent,
    };
    // What the child changed in the memory it shared: the environment pointer and the
    // dumpable flag (a property of the memory map: the child made it dumpable as `execve`
    // would have, or its change of identity cleared it).
    // SAFETY: single-threaded again; plain prctl.
    unsafe {
        environ = own_environ;
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    served
}

/// The PID namespace this server's next child is born in (`setns(…, CLONE_NEWPID)` acts
/// on its future children only; the server itself stays where it is).
///
/// A worker's children share one namespace: entering it for every child and setting it
/// back after cost two `setns` per child, and receiving, checking and closing the init's
/// pidfd three more system calls. So the runner's thread sends an init's pidfd with the
/// first launch into its namespace (`pid_ns`) and names it in the next ones (`same_ns`);
/// the server keeps it and stays entered between children, enters again only when a
/// launch brings another init's pidfd, and sets it back when a launch names none. Each
/// child is still born exactly in the namespace its launch names.
///
/// The same for the mount namespace a child is born in: the server joins the kept init's
/// prepared mount namespace itself (`setns(pidfd, CLONE_NEWNS)`, once per init; a child
/// joined it once per child) when a launch's child starts from it, and goes back to its own
/// (`/proc/self/ns/mnt`, opened at its start) when a launch's child does not. The server
/// opens nothing by path while it is there (its descriptors were all opened at its start or
/// came with a launch), so where it is changes nothing of its own.
struct ForChildren {
    /// This process's own namespace (`/proc/self/ns/pid`; negative if it could not open it).
    own: RawFd,
    /// This process's own mount namespace (`/proc/self/ns/mnt`; negative if it could not).
    own_mnt: RawFd,
    /// The pidfd of the last init a launch brought.
    kept: Option<OwnedFd>,
    /// The kept init's namespace is entered.
    entered: bool,
    /// This process is in the kept init's mount namespace.
    mounts_kept: bool,
    /// This process is not in its own mount namespace (the kept init's, or one before it).
    mounts_foreign: bool,
}

impl ForChildren {
    /// Children are born in the namespace of the init `init` (a launch brought its pidfd,
    /// kept from now on); that pidfd, or the errno.
    fn enter_new(&mut self, init: OwnedFd) -> Result<Option<RawFd>, i32> {
        self.kept = Some(init);
        self.entered = false;
        self.mounts_kept = false;
        self.enter_kept()
    }

    /// This process joins the kept init's mount namespace (its next child is born there);
    /// the errno and whether this server cannot fork safely any more (`false`: as a child's
    /// failed `setns` was, a failed step).
    fn join_kept_mounts(&mut self) -> Result<(), (i32, bool)> {
        if self.mounts_kept {
            return Ok(());
        }
        let Some(init) = self.kept.as_ref().map(AsRawFd::as_raw_fd) else {
            return Err((libc::EBADF, false));
        };
        // SAFETY: setns of this single-threaded process into a mount namespace.
        if unsafe { libc::setns(init, libc::CLONE_NEWNS) } != 0 {
            return Err((errno(), false));
        }
        self.mounts_kept = true;
        self.mounts_foreign = true;
        Ok(())
    }

    /// This process is in its own mount namespace again; the errno.
    fn own_mounts(&mut self) -> Result<(), i32> {
        if !self.mounts_foreign {
            return Ok(());
        }
        // SAFETY: back to this process's own mount namespace (it is single-threaded).
        if self.own_mnt < 0 || unsafe { libc::setns(self.own_mnt, libc::CLONE_NEWNS) } != 0 {
            return Err(if self.own_mnt < 0 {
                libc::EBADF
            } else {
                errno()
            });
        }
        self.mounts_foreign = false;
        self.mounts_kept = false;
        Ok(())
    }

    /// Children are born in the namespace of the kept init; its pidfd, or the errno
    /// (`EBADF` if none is kept: the runner named one it never sent, or the last failed).
    fn enter_kept(&mut self) -> Result<Option<RawFd>, i32> {
        let Some(init) = self.kept.as_ref().map(AsRawFd::as_raw_fd) else {
            return Err(libc::EBADF);
        };
        if !self.entered {
            // SAFETY: setns with a pidfd: this process's future children only.
            if unsafe { libc::setns(init, libc::CLONE_NEWPID) } != 0 {
                let e = errno();
                // Not kept: the runner's thread sends the next init's pidfd again.
                self.kept = None;
                return Err(e);
            }
            self.entered = true;
        }
        Ok(Some(init))
    }

    /// Children are born in this process's own namespace again; the errno.
    fn leave(&mut self) -> Result<(), i32> {
        if !self.entered {
            return Ok(());
        }
        // SAFETY: back to this process's own PID namespace for its children.
        if self.own < 0 || unsafe { libc::setns(self.own, libc::CLONE_NEWPID) } != 0 {
            return Err(if self.own < 0 { libc::EBADF } else { errno() });
        }
        self.entered = false;
        Ok(())
    }
}

/// What the child gets: everything prepared by the server, read-only.
struct ChildArgs<'a> {
    l: &'a Launch<'a>,
    iso: Option<&'a Isolation>,
    fds: ChildFds,
    envp: *mut *mut libc::c_char,
    cwd: Option<&'a std::ffi::CStr>,
    request: &'a Result<helper::HelperRequest<'static>, String>,
    mask: libc::sigset_t,
    /// The server's bounding set, and so the child's until its identity step.
    bounding: u64,
    /// Where the child stores a failed setup step ([`fail`]).
    report: &'a AtomicU64,
    /// The kernel's Landlock ABI, queried once by the server (the helper reports it).
    abi: Option<u8>,
    /// The CPUs the server could run on before it pinned itself to one: the child's
    /// (`None`: the server is not pinned, and the child inherited them).
    affinity: Option<&'a libc::cpu_set_t>,
}

/// The child's entry on its own stack.
extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the server's `ChildArgs`, alive and unchanged until this
    // child has exited.
    let a: &ChildArgs<'_> = unsafe { &*arg.cast::<ChildArgs<'_>>() };
    // SAFETY: this child's own signal mask (blocked in the server across the clone).
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, &raw const a.mask, std::ptr::null_mut());
    }
    if let Some(set) = a.affinity {
        // Back to the CPUs the server could run on before it pinned itself (the runner's):
        // the child runs where an executed helper would. It is on the server's CPU now
        // (born there), which this set holds, so nothing moves it at once.
        // SAFETY: this child's own affinity, from a set the server read and never changes.
        if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) } != 0 {
            // SAFETY: as in `fail`, before any step of the child.
            unsafe { fail(a.report, STEP_AFFINITY, errno()) }
        }
    }
    // SAFETY: in the fresh child, whose server waits without touching the shared memory.
    unsafe { child_main(a) }
}

unsafe extern "C" {
    /// The C library's environment (the child is single-threaded when it sets it).
    static mut environ: *mut *mut libc::c_char;
}

/// The descriptors a child starts with (numbers in its own table).
struct ChildFds {
    out: RawFd,
    err: RawFd,
    cgroup: Option<RawFd>,
    alive: (RawFd, RawFd),
    /// The server's `/dev/null` (read-only), the child's stdin.
    devnull: RawFd,
    /// Born in its PID namespace init's prepared mount namespace (the server joined it).
    born_in: bool,
}

/// Store `(step, errno)` where the server reads it once this child has exited, and exit.
///
/// # Safety
/// Only in the cloned child.
unsafe fn fail(report: &AtomicU64, step: u32, e: i32) -> ! {
    let word =
        SETUP_FAILED_BIT | (u64::from(step) & 0x3fff_ffff) << 32 | u64::from(e.cast_unsigned());
    report.store(word, Ordering::Release);
    // SAFETY: exiting without running any destructor.
    unsafe { libc::_exit(127) }
}

/// The child: the spawn's steps in the spawn's order, then the helper.
///
/// # Safety
/// Only in the fresh child of the (single-threaded) server.
unsafe fn child_main(a: &ChildArgs<'_>) -> ! {
    let ChildArgs {
        l,
        iso,
        ref fds,
        envp,
        cwd,
        request,
        bounding,
        report,
        abi,
        ..
    } = *a;
    // SAFETY: system calls acting on this (child) process only.
    unsafe {
        libc::close(fds.alive.1);
        if libc::dup2(fds.devnull, 0) != 0
            || libc::dup2(fds.out, 1) != 1
            || libc::dup2(fds.err, 2) != 2
        {
            fail(report, STEP_STDIO, errno());
        }
        if let Some(iso) = iso {
            // A child nothing of which can change the namespace it was born in stays in it
            // (`Isolation::stays_in_prepared_mounts`): no copy of it.
            let mounts = if fds.born_in {
                iso.enforce_mounts_born_in_prepared()
            } else {
                iso.enforce_mounts_from(None)
            };
            if let Err((step, e)) = mounts {
                fail(report, step as u32, e);
            }
        }
        if let Some(cwd) = cwd
            && libc::chdir(cwd.as_ptr()) != 0
        {
            fail(report, STEP_CHDIR, errno());
        }
        if l.clean {
            if libc::setsid() < 0 {
                fail(report, SetupStep::Setsid as u32, errno());
            }
            libc::umask(0o022);
        } else if libc::setpgid(0, 0) != 0 {
            fail(report, STEP_PGID, errno());
        }
        if let Some(fd) = fds.cgroup
            && libc::write(fd, b"0".as_ptr().cast(), 1) != 1
        {
            fail(report, SetupStep::Cgroup as u32, errno());
        }
        if let Some(iso) = iso
            && let Err((step, e)) = iso.enforce_identity_from(Some(bounding))
        {
            fail(report, step as u32, e);
        }
        // Die with the server; a server gone before this line hung up the pipe. Set after
        // the identity step, which clears it (the kernel resets the parent-death signal at
        // a change of effective or filesystem uid or gid): set once, it holds until the
        // helper's code has run. A server gone during the steps above ends the child here,
        // before any of the helper's code.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        let mut p = libc::pollfd {
            fd: fds.alive.0,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&raw mut p, 1, 0) == 1 && p.revents & libc::POLLHUP != 0 {
            libc::_exit(127);
        }
        // What `execve` would have done: dumpable again (a change of identity cleared it),
        // exactly the given environment.
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        environ = envp;
        // Setup done: no descriptor above 2.
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: stdout is the runner's pipe; ManuallyDrop never closes it here.
        let mut out = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
        // The parent-death signal is set (above), and the ABI known from the server.
        let known = helper::Known {
            parent_death_set: true,
            abi: Some(abi),
        };
        match request {
            Ok(req) => helper::respond_with(req, known, &mut *out),
            Err(msg) => helper::emit_bad_request(&mut *out, msg),
        }
    }))
    .unwrap_or(101);
    // SAFETY: leaving the child without running the server's destructors.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::results::ChildPrivileges;
    use crate::sandbox::privilege::{self, ChildRequest, RO_MOUNT_NAMESPACE};
    use crate::util::testrng::Rng;

    /// The workers' servers are spread over the CPUs the caller may use: each gets one of
    /// them, distinct ones while there are as many CPUs as workers, the same worker always
    /// the same one; none on a single CPU.
    #[test]
    fn the_workers_servers_get_distinct_cpus_of_the_callers_set() {
        let cpus = allowed_cpus().expect("this thread's CPUs");
        assert!(!cpus.is_empty());
        let mut rng = Rng(0xC9_5E7);
        for _ in 0..50 {
            let index = rng.below(64);
            let got = cpu_for_worker(index);
            assert_eq!(got, cpu_for_worker(index), "the same worker, the same CPU");
            match got {
                Some(c) => {
                    assert!(cpus.len() > 1);
                    assert!(cpus.contains(&c));
                    let pid = usize::try_from(std::process::id()).unwrap();
                    assert_eq!(c, cpus[(index + pid) % cpus.len()]);
                }
                None => assert!(cpus.len() < 2),
            }
        }
        let first: Vec<_> = (0..cpus.len()).map(cpu_for_worker).collect();
        let distinct: std::collections::BTreeSet<_> = first.iter().flatten().collect();
        assert_eq!(distinct.len(), if cpus.len() > 1 { cpus.len() } else { 0 });
    }

    /// A generated isolation (identity, kept capabilities, namespaces, read-only inputs).
    fn isolation(rng: &mut Rng) -> Isolation {
        let uid = *rng.pick(&[0u32, 65534, 1000]);
        let privileges = ChildPrivileges {
            applied: true,
            uid,
            gid: uid,
            identity: uid != 0,
            capabilities: privilege::caps_names(rng.next() & ((1 << 41) - 1) & *rng.pick(&[0, !0])),
            cap_last: 40,
            bounding_cleared: rng.chance(70),
            pid_namespace: rng.chance(70),
            namespace_init: None,
            pid_namespace_reason: None,
            baseline_host_read_only: RO_MOUNT_NAMESPACE.into(),
            baseline_host_reason: None,
            runner_environ: String::new(),
        };
        let inputs: Vec<String> = (0..rng.below(3u64))
            .map(|i| format!("/usr/in{i}"))
            .collect();
        let scratch = format!("/dev/shm/x/{}", rng.below(4u64));
        Isolation::new(&ChildRequest {
            privileges: &privileges,
            pid_namespace: if rng.chance(80) {
                Ok(())
            } else {
                Err("no".into())
            },
            scratch: Path::new(&scratch),
            host_read_only: rng.chance(30),
            read_only_inputs: &inputs,
        })
        .0
    }

    /// Over generated sequences of launches' isolation bytes (a few isolations repeated in
    /// runs, as a worker's children bring them, none, and bytes that do not parse), the
    /// cache gives exactly what parsing the bytes gives: the same isolation (its JSON the
    /// same bytes again), none for none, nothing for what does not parse — never the one
    /// before.
    #[test]
    fn the_isolation_cache_gives_what_parsing_the_launchs_bytes_gives() {
        for seed in [0x150_0001_u64, 0x150_0002, 0x150_0003] {
            let mut rng = Rng(seed);
            let pool: Vec<Vec<u8>> = (0..5)
                .map(|_| serde_json::to_vec(&isolation(&mut rng)).unwrap())
                .collect();
            let mut cache = IsolationCache::default();
            let mut current = 0usize;
            for step in 0..300 {
                if rng.chance(20) {
                    current = rng.below(pool.len());
                }
                let what = format!("seed {seed:#x} step {step}");
                match rng.below(20u32) {
                    0 => assert!(matches!(cache.get(b""), Ok(None)), "{what}"),
                    1 => {
                        let mut bad = pool[current].clone();
                        bad.truncate(bad.len() / 2);
                        assert!(cache.get(&bad).is_err(), "{what}");
                    }
                    _ => {
                        let bytes = &pool[current];
                        let got = cache.get(bytes).unwrap().expect(&what);
                        let fresh: Isolation = serde_json::from_slice(bytes).unwrap();
                        assert_eq!(&serde_json::to_vec(got).unwrap(), bytes, "{what}");
                        assert_eq!(
                            serde_json::to_vec(got).unwrap(),
                            serde_json::to_vec(&fresh).unwrap(),
                            "{what}"
                        );
                    }
                }
            }
        }
    }

    /// Over generated sequences of launches (a few isolations repeated in runs, as a
    /// worker's children bring them, and fresh ones equal to an earlier one), the runner's
    /// kept text appends exactly the isolation's serialized bytes, after whatever the
    /// payload held; and equal isolations are exactly those with equal bytes.
    #[test]
    fn the_kept_isolation_text_is_the_isolations_json() {
        for seed in [0x160_6021_u64, 0x160_6022, 0x160_6023] {
            let mut rng = Rng(seed);
            let pool: Vec<Isolation> = (0..6).map(|_| isolation(&mut rng)).collect();
            for a in &pool {
                for b in &pool {
                    assert_eq!(
                        a == b,
                        serde_json::to_vec(a).unwrap() == serde_json::to_vec(b).unwrap()
                    );
                }
            }
            let mut kept = IsoText::default();
            let mut current = 0;
            for step in 0..300 {
                if rng.chance(30) {
                    current = usize::try_from(rng.below(pool.len() as u64)).unwrap();
                }
                // Sometimes a fresh value equal to the pooled one (not the same object).
                let iso = if rng.chance(50) {
                    serde_json::from_slice(&serde_json::to_vec(&pool[current]).unwrap()).unwrap()
                } else {
                    pool[current].clone()
                };
                let mut payload = vec![7u8; usize::try_from(rng.below(20u64)).unwrap()];
                let head = payload.clone();
                kept.write(&iso, &mut payload).unwrap();
                let mut want = head;
                want.extend_from_slice(&serde_json::to_vec(&iso).unwrap());
                assert_eq!(payload, want, "seed {seed:#x} step {step}");
            }
        }
    }
}
