//! The PID namespaces children run in, and what a child leaves behind in one.
//!
//! A child does not become pid 1 of its own namespace: an init ignores every signal it has
//! no handler for — `kill -SEGV $$`, `raise`, the SIGXCPU and SIGXFSZ of its rlimits, the
//! runner's SIGTERM — so a probe there would not behave as it does anywhere else. Pid 1 is
//! a placeholder init instead, and the child is pid 2 (or above: see "Shared namespaces"
//! below), its parent still the runner (it is
//! started by the spawning worker thread after `setns` into the init's namespace), so the
//! runner waits for it, reads its rusage and signals its group as for any child.
//!
//! The inits come from a zygote: this binary started once per run as `nexusmon-init
//! __zygote`, with an empty environment, outside the worker threads' cgroups. For each
//! request on its socket (its stdin) it forks an init in a new PID namespace and sends back
//! the init's pid and a pidfd. An init drops every capability, makes itself non-dumpable,
//! closes every descriptor, blocks every signal and pauses until killed; it dies with the
//! zygote, which dies with the runner (parent-death signals) or at the end of its socket.
//!
//! Leaks: whatever the child leaves behind stays in its PID namespace (or one nested in it),
//! alive until the runner has listed it — [`NsInit::survivors`], any time after the child
//! exited, whatever it died of — and then kills the init, which makes the kernel end
//! everything else in the namespace.
//!
//! How the runner knows the namespace holds nothing else: each init mounts a procfs
//! instance of its own namespace, detached (`fsopen`/`fsmount`: attached to no mount
//! namespace, its own superblock), and hands a directory descriptor of it to the runner
//! (through the zygote) before any child exists. Listing it (`getdents64`) gives every
//! process of the namespace, from the kernel's own table of the namespace's pids: a process
//! cannot leave its PID namespace (`setns` only enters a descendant one, whose processes
//! are listed too), nor hide from that listing — re-parenting (`CLONE_PARENT`, `setsid`, a
//! dead parent), leaving a cgroup, closing its pipes or a new user namespace change none of
//! it, and the instance's options (`hidepid`) cannot be changed by anyone in the namespace,
//! who has no way to reach its superblock (remounting the namespace's `/proc`, a different
//! instance, does not touch it). After a child exited (a zombie not reaped yet: still
//! listed), a listing of exactly two processes — the init and that child — proves that
//! nothing was left behind, in two or three system calls; anything more is listed in full
//! (each descendant of the init and of the child's parent, then whatever the listing holds
//! beside them) and the namespace is ended.
//!
//! Shared namespaces ([`SharedNs`]): a fresh namespace per child cost more than the probe
//! (a clone in the zygote, an init to start and kill, a `/proc` mounted and torn down). The
//! probe children of one worker thread (the fork server's and the exec'd alike) share one
//! namespace instead, which is sound because the thread runs one child at a time: while a
//! child lives, the namespace holds only the init, that child and what it started. After
//! the child, its leftovers are listed as before; if there are any (or the child timed
//! out, or the pids cgroups or a held pipe show something the listing missed) the init is
//! killed, ending everything in the namespace, and the next child gets a fresh one. So no
//! child ever sees, signals or reads the `/proc` entries of another probe's process. The
//! init of a shared namespace also holds a private mount namespace (a copy of the runner's
//! made at its start, `/` made private) with its PID namespace's `/proc` mounted once,
//! which each child joins (`setns`) instead of mounting its own, and copies (`unshare`)
//! unless it mounts nothing and can never mount (`Isolation::stays_in_prepared_mounts`);
//! every init reaps the orphans re-parented to it (it blocks every signal and takes
//! `SIGCHLD` with `sigwaitinfo`).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::model::results::Leaked;
use crate::sandbox::privilege;

/// The zygote's argument (after the program).
pub const ZYGOTE_MODE: &str = "__zygote";

/// The pid of the running zygote (0: none): a child of the runner that is no leak.
static ZYGOTE_PID: AtomicU32 = AtomicU32::new(0);

/// The running zygote's pid, if any.
pub fn zygote_pid() -> Option<u32> {
    Some(ZYGOTE_PID.load(Ordering::SeqCst)).filter(|p| *p != 0)
}

/// The runner's side of the zygote.
#[derive(Debug)]
pub struct Zygote {
    sock: Mutex<std::os::unix::net::UnixStream>,
    child: Mutex<Option<Child>>,
}

/// One init: pid 1 of a fresh PID namespace, killed (with everything in its namespace)
/// when dropped.
///
/// A namespace is either one child's (killed once that child is seen through) or
/// *shared*: the namespace of one worker thread's probe children ([`SharedNs`]), which run
/// one after the other, so that at any time it holds
/// at most one probe's processes; it is killed, and replaced, as soon as a child leaves
/// anything behind in it (or timed out).
#[derive(Debug)]
pub struct NsInit {
    pidfd: OwnedFd,
    /// A directory descriptor of the init's own detached procfs instance (see the module
    /// doc), when the kernel made one; read under the lock (its position is shared).
    procfs: Option<Mutex<OwnedFd>>,
    /// The init's `children` file in that instance (`1/task/1/children`), opened once:
    /// read with `pread` by [`NsInit::holds_nothing_but`].
    children: Option<OwnedFd>,
    pid: u32,
    shared: bool,
    proc_mounted: bool,
    killed: std::sync::atomic::AtomicBool,
}

impl Zygote {
    /// Start the zygote (`exe __zygote`, as `nexusmon-init`).
    pub fn start(exe: &Path) -> Result<Self, String> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| format!("cannot create the zygote's socket: {e}"))?;
        let child = Command::new(exe)
            .arg0("nexusmon-init")
            .arg(ZYGOTE_MODE)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the zygote `{}`: {e}", exe.display()))?;
        ZYGOTE_PID.store(child.id(), Ordering::SeqCst);
        ours.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| format!("zygote socket: {e}"))?;
        Ok(Self {
            sock: Mutex::new(ours),
            child: Mutex::new(Some(child)),
        })
    }

    /// A new init, pid 1 of a new PID namespace.
    pub fn new_init(&self) -> Result<NsInit, String> {
        self.request(b'N', false)
    }

    /// A new init whose namespace one worker's children share, one at a time. It also
    /// holds a mount namespace of its own (private, a copy of the runner's) with its PID
    /// namespace's `/proc` mounted once, which each child copies instead of mounting a
    /// `/proc` of its own ([`NsInit::proc_mounted`]).
    pub fn new_shared_init(&self) -> Result<NsInit, String> {
        self.request(b'S', true)
    }

    fn request(&self, kind: u8, shared: bool) -> Result<NsInit, String> {
        let sock = self
            .sock
            .lock()
            .map_err(|_| "the zygote's socket is poisoned".to_string())?;
        (&*sock)
            .write_all(&[kind])
            .map_err(|e| format!("the zygote is gone: {e}"))?;
        let (word, fd, procfs) = receive(sock.as_raw_fd())
            .ok_or_else(|| "the zygote gave no init (is it still running?)".to_string())?;
        // Pid 1 of the instance is the init itself for as long as the namespace lives: the
        // file can name no other process.
        let children = procfs.as_ref().and_then(|p| {
            // SAFETY: openat relative to our directory descriptor, a valid C string.
            let c = unsafe {
                libc::openat(
                    p.as_raw_fd(),
                    c"1/task/1/children".as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                )
            };
            // SAFETY: a fresh descriptor we own.
            (c >= 0).then(|| unsafe { OwnedFd::from_raw_fd(c) })
        });
        Ok(NsInit {
            pidfd: fd,
            procfs: procfs.map(Mutex::new),
            children,
            pid: word & !PROC_MOUNTED,
            shared,
            proc_mounted: word & PROC_MOUNTED != 0,
            killed: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// The PID namespace one worker thread's children share (builtin and exec probes alike):
/// the thread runs one child at a time, so the namespace holds at most one probe's
/// processes at any time; [`SharedNs::get`] replaces it once it was killed (a child left
/// something behind in it, or timed out: `exec::child::run_child`).
#[derive(Debug, Default)]
pub struct SharedNs(Mutex<Option<std::sync::Arc<NsInit>>>);

impl SharedNs {
    /// The live init of the namespace, a new one from `zygote` if there is none yet or the
    /// last one was killed.
    pub fn get(&self, zygote: &Zygote) -> Result<std::sync::Arc<NsInit>, String> {
        let mut slot = self
            .0
            .lock()
            .map_err(|_| "the shared namespace's slot is poisoned".to_string())?;
        if let Some(init) = slot.as_ref().filter(|i| !i.is_killed()) {
            return Ok(init.clone());
        }
        let init = std::sync::Arc::new(zygote.new_shared_init()?);
        *slot = Some(init.clone());
        Ok(init)
    }
}

/// In the zygote's reply: the init's mount namespace has its `/proc` (pids are below 2^22).
const PROC_MOUNTED: u32 = 1 << 31;

impl Zygote {
    /// No init will be asked for again: shut the socket down, which ends the zygote (it
    /// kills every init it started, then reaps them) without waiting for it. Its end
    /// (namespaces torn down: an RCU grace period each, several milliseconds on a loaded
    /// machine) then overlaps whatever the runner does next; the drop waits for it. A
    /// request after this fails as with a zygote that is gone.
    pub fn retire(&self) {
        if let Ok(s) = self.sock.lock() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl SharedNs {
    /// Kill the live init of the namespace, if any (its worker runs no more children):
    /// nothing of a probe is in it, as every child was reaped and seen through.
    pub fn retire(&self) {
        if let Ok(slot) = self.0.lock()
            && let Some(init) = slot.as_ref()
        {
            init.kill();
        }
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        // Closing our end ends the zygote, which kills its inits first.
        super::sidecar::stop(&self.sock, &self.child, Duration::from_millis(2));
        ZYGOTE_PID.store(0, Ordering::SeqCst);
    }
}

/// A pid and one or two descriptors sent with `SCM_RIGHTS` on `sock` ([`send`]): the
/// init's pidfd, and its procfs instance when there is one.
fn receive(sock: RawFd) -> Option<(u32, OwnedFd, Option<OwnedFd>)> {
    let mut data = [0u8; 4];
    let (n, fds) = super::sidecar::recv_with_fds(sock, &mut data);
    let mut fds = fds.into_iter();
    let fd = fds.next()?;
    (n == data.len()).then(|| (u32::from_ne_bytes(data), fd, fds.next()))
}

/// Send `pid` and `fds` on `sock`.
fn send(sock: RawFd, pid: u32, fds: &[RawFd]) -> bool {
    super::sidecar::send_with_fds(sock, &pid.to_ne_bytes(), fds)
}

impl NsInit {
    /// The init's pid (in the runner's namespace).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The namespace is shared by one worker's children, one at a time.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The init holds a private mount namespace with its PID namespace's `/proc` mounted
    /// (a shared namespace's, when the mounts succeeded): a child joins it
    /// (`setns(pidfd, CLONE_NEWNS)`) and makes itself a private copy (`unshare`) unless
    /// it stays in it (`Isolation::stays_in_prepared_mounts`).
    pub fn proc_mounted(&self) -> bool {
        self.proc_mounted
    }

    /// It was killed (a shared namespace is then replaced).
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Its pidfd (for `setns(…, CLONE_NEWPID)`).
    pub fn pidfd(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }

    /// The namespace holds nothing but the init and one other process (the child, exited
    /// and not reaped yet, which its parent keeps a zombie until the leak checks are
    /// done: it is listed), as the init's procfs instance lists it: `Some(true)`; something
    /// more: `Some(false)`; `None` without an instance (or if it cannot be read).
    ///
    /// Sound because the child was created in this namespace (its parent entered it with
    /// the init's pidfd, or the launch failed), so it is one of the two, and the listing
    /// holds every process of the namespace and of the namespaces nested in it (see the
    /// module doc). A process exiting or a zombie not reaped yet counts as more: the
    /// caller then lists it all.
    pub fn holds_only_the_child(&self) -> Option<bool> {
        let procfs = self.procfs.as_ref()?.lock().ok()?;
        let pids = list_pids(procfs.as_raw_fd())?;
        Some(pids.len() == 2 && pids.contains(&1))
    }

    /// The namespace provably holds nothing but the init and the exited `child` (a zombie
    /// its parent has not reaped), read from two `children` files instead of listing the
    /// namespace: the file of the process or thread that cloned the child
    /// (`parent_children`: for an exec child the runner thread's
    /// `/proc/thread-self/children`, `exec::spawn::Spawned`; for a forked builtin child the
    /// fork server's, `exec::forkserver::ForkServer::children_file`, whose doc carries the
    /// argument below over to the server) lists exactly the child, then the init's (`1/task/1/children` of the init's procfs instance,
    /// opened once) is empty. `false` when either does not hold or cannot be read: the
    /// caller then lists the namespace ([`NsInit::holds_only_the_child`]). Two system
    /// calls (`pread`), and no procfs entry
    /// made for the child's new pid (the listing makes one per child, a dentry and an
    /// inode: most of its cost).
    ///
    /// Why a `true` cannot miss a process of the namespace (or of one nested in it), live,
    /// exiting or a zombie not reaped yet:
    ///
    /// - Follow any such process up its parents (`real_parent`). A parent that exits hands
    ///   its children to a subreaper among their ancestors in the namespace or to the
    ///   namespace's init before it becomes a zombie, so the chain stays in the namespace
    ///   until it leaves it at the init (its top process is in the init's `children`) or at
    ///   a parent outside. A process of the namespace whose parent is outside was created
    ///   there by a process outside that entered it (`setns` on a reference to the
    ///   namespace, with `CAP_SYS_ADMIN` over it), or with `CLONE_PARENT` by a process whose
    ///   parent is outside. The processes that hold a reference are the runner (only the
    ///   thread that cloned the child enters it, for that clone), the worker's fork server
    ///   (idle: its worker runs one child at a time, and every earlier child of the
    ///   namespace was seen through by this check or the listing) and the zygote (which
    ///   makes only new namespaces' inits); no probe child can get one (each is in its own
    ///   worker's PID namespace, whose processes are all it can name, but a builtin
    ///   `signal-send` helper, which runs its one `kill` and nothing else, and the children
    ///   of the direct channel, where no child has a PID namespace). So an outside parent
    ///   is the cloning thread: of the child itself (a zombie now: its children were handed
    ///   on when it exited) and of what it, or such a sibling, started with `CLONE_PARENT`.
    /// - The thread's file is read first and lists only the child: nothing else of the
    ///   namespace hangs from the thread then, and nothing can later (only a live process
    ///   whose parent is the thread could add one, and the thread clones nothing while its
    ///   worker is here). So everything of the namespace is in the init's subtree from then
    ///   on, which nothing leaves but by dying (a re-parented process goes to an ancestor
    ///   subreaper or the init; a dead one's children go the same way and it stays listed
    ///   as a zombie until the init reaps it). The init's file, read next, is empty: its
    ///   subtree is empty, and so is the namespace but for the child.
    /// - A killed init lists no children, but it is not gone while the child is not
    ///   reaped: the kernel keeps a dying init until every pid of its namespace is freed,
    ///   the child's among them, and it kills and reaps everything of its subtree first
    ///   (what hangs from the thread is killed too, and stays listed as its zombie). The
    ///   listing says the same of such a namespace (the init is still listed).
    pub fn holds_nothing_but(&self, parent_children: RawFd, child: u32) -> bool {
        let Some(init_children) = self.children.as_ref() else {
            return false;
        };
        if self.is_killed() {
            return false;
        }
        let mut buf = [0u8; 64];
        // SAFETY: pread into a local buffer of its length, on a descriptor the caller holds.
        let n = unsafe { libc::pread(parent_children, buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Some(text) = usize::try_from(n)
            .ok()
            .filter(|n| *n < buf.len())
            .and_then(|n| std::str::from_utf8(&buf[..n]).ok())
        else {
            return false;
        };
        let mut listed = text.split_ascii_whitespace();
        if listed.next().and_then(|p| p.parse::<u32>().ok()) != Some(child)
            || listed.next().is_some()
        {
            return false;
        }
        // SAFETY: pread into a local buffer (one byte: any is too many), on our descriptor.
        let n = unsafe { libc::pread(init_children.as_raw_fd(), buf.as_mut_ptr().cast(), 1, 0) };
        n == 0
    }

    /// What a child left behind in the namespace: every live process but the init and the
    /// child, skipping the members of `killed_group` (the child's group, which the runner
    /// killed at a timeout). Found from the init (orphans are re-parented to it) and from
    /// the child's parent `parent` (a process the child started with `CLONE_PARENT` is
    /// that parent's), and then, when the init's procfs instance lists more processes than
    /// those, the rest of what it lists.
    pub fn survivors(
        &self,
        child: u32,
        parent: Option<Parent>,
        killed_group: Option<u32>,
    ) -> Vec<Leaked> {
        // The parent runs one child at a time and reaped the one before: its other children
        // in this namespace were started by this one (`CLONE_PARENT`). (Its children
        // elsewhere — a fork server, the zygote — are not this namespace's.)
        let mut walked = descendants(self.pid);
        let ns = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
        if let Some(p) = parent
            && let Some(own) = ns(self.pid)
        {
            let others: Vec<u32> = read_proc(&p.children_path())
                .split_whitespace()
                .filter_map(|s| s.parse::<u32>().ok())
                .filter(|c| *c != child && ns(*c).as_ref() == Some(&own))
                .collect();
            for r in others {
                for d in std::iter::once(r).chain(descendants(r)) {
                    if !walked.contains(&d) {
                        walked.push(d);
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut found: Vec<Stat> = Vec::new();
        for pid in walked {
            let Some(mut st) = stat_full(pid) else {
                continue;
            };
            // Its pid in the namespace: with its start tick, what names it in the
            // namespace's own listing below (its name is no key: an `execve` changes it
            // between the two reads).
            st.ns_pid = ns_pid_of(pid).unwrap_or(0);
            let (state, pgrp) = (st.state, st.pgrp);
            found.push(st);
            // A zombie or a dying task (`X`) is dead already, not left behind.
            if matches!(state, 'Z' | 'X') || killed_group.is_some_and(|g| i64::from(g) == pgrp) {
                continue;
            }
            // Gone between the two reads: it was exiting (a member of the killed group
            // mid-exit can read with no group), so it is no survivor either. Seen on a
            // loaded machine as a "leaked" entry without a name.
            let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
                continue;
            };
            let comm = comm.trim().to_string();
            out.push(Leaked {
                pid,
                comm,
                found_by: "pid-namespace".into(),
                action: "killed-with-namespace".into(),
            });
        }
        // What the namespace lists beside the init, the walked processes and the dead: a
        // process none of those roots leads to. Its pid outside the namespace is found by
        // its start time and name (it is killed with the namespace all the same).
        let listed = self
            .procfs
            .as_ref()
            .and_then(|p| p.lock().ok())
            .and_then(|p| ns_processes(p.as_raw_fd()))
            .unwrap_or_default();
        for n in listed
            .iter()
            .filter(|n| n.ns_pid != 1 && !matches!(n.state, 'Z' | 'X'))
        {
            if found
                .iter()
                .any(|f| f.ns_pid == n.ns_pid && f.starttime == n.starttime)
            {
                continue;
            }
            let global = find_global(n);
            let in_killed_group = global
                .and_then(stat_full)
                .is_some_and(|s| killed_group.is_some_and(|g| s.pgrp == i64::from(g)));
            if global == Some(child) || in_killed_group {
                continue;
            }
            out.push(Leaked {
                pid: global.unwrap_or(0),
                comm: n.comm.clone(),
                found_by: "pid-namespace".into(),
                action: "killed-with-namespace".into(),
            });
        }
        out.sort();
        out
    }

    /// Kill the init: the kernel kills every other process of its namespace at once. The
    /// init itself is gone only once the child (the runner's, created in its namespace)
    /// has been reaped: see [`NsInit::wait_gone`].
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        // SAFETY: pidfd_send_signal on our pidfd.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            );
        }
    }

    /// Wait up to `ms` milliseconds for the killed init to be gone (after the runner
    /// reaped its child).
    pub fn wait_gone(&self, ms: i32) {
        let mut p = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe {
            libc::poll(&raw mut p, 1, ms);
        }
    }
}

impl Drop for NsInit {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every live descendant of `root` (children of each of its threads, recursively), bounded.
/// `root` is an init, which never has a thread but its main one, so its children are read
/// from that one task's list (one file, read with one `read`: after a child that left
/// nothing behind, which is nearly every child, that is the whole walk); every other
/// process's threads are listed.
fn descendants(root: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut queue = Vec::new();
    let push = |children: &str, out: &mut Vec<u32>, queue: &mut Vec<u32>| {
        for c in children
            .split_whitespace()
            .filter_map(|s| s.parse::<u32>().ok())
        {
            if !out.contains(&c) {
                out.push(c);
                queue.push(c);
            }
        }
    };
    push(
        &read_proc(&format!("/proc/{root}/task/{root}/children")),
        &mut out,
        &mut queue,
    );
    while let Some(p) = queue.pop() {
        if out.len() > 65_536 {
            break;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let children = read_proc(&t.path().join("children").to_string_lossy());
            push(&children, &mut out, &mut queue);
        }
    }
    out
}

/// A `/proc` file's text (empty if it cannot be read): open, read until the end, close,
/// without the `statx` a `read_to_string` adds to size its buffer (`/proc` sizes are 0).
fn read_proc(path: &str) -> String {
    use std::io::Read;
    let mut out = Vec::with_capacity(256);
    if let Ok(mut f) = std::fs::File::open(path) {
        let mut buf = [0u8; 4096];
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if out.len() > 1 << 20 {
                break;
            }
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

/// What a `stat` file of `/proc` says of one process.
#[derive(Debug, Clone)]
struct Stat {
    /// Its pid in the namespace of the procfs it was read from.
    ns_pid: u32,
    comm: String,
    state: char,
    pgrp: i64,
    /// Clock ticks after boot (the same in every namespace's view).
    starttime: u64,
}

/// The `stat` text of one process.
fn parse_stat(ns_pid: u32, s: &str) -> Option<Stat> {
    let (head, after) = s.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(Stat {
        ns_pid,
        comm,
        state: f.first()?.chars().next()?,
        pgrp: f.get(2)?.parse().ok()?,
        starttime: f.get(19)?.parse().ok()?,
    })
}

/// `/proc/<pid>/stat` in the runner's view.
fn stat_full(pid: u32) -> Option<Stat> {
    parse_stat(pid, &read_proc(&format!("/proc/{pid}/stat")))
}

/// The pids (in the namespace) a procfs directory descriptor lists, read from its start;
/// `None` if it cannot be read.
fn list_pids(dir: RawFd) -> Option<Vec<u32>> {
    // SAFETY: seeking our own descriptor.
    if unsafe { libc::lseek(dir, 0, libc::SEEK_SET) } != 0 {
        return None;
    }
    let mut buf = [0u8; 4096];
    let mut out = Vec::new();
    loop {
        // SAFETY: getdents64 into a local buffer of its length.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) };
        let n = usize::try_from(n).ok()?;
        if n == 0 {
            return Some(out);
        }
        let mut at = 0;
        // Each record: inode (8), offset (8), record length (2), type (1), name (NUL-ended).
        while at + 19 <= n {
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            if reclen == 0 || at + reclen > n {
                return None;
            }
            let name = &buf[at + 19..at + reclen];
            let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
            if let Some(p) = std::str::from_utf8(name)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
            {
                out.push(p);
            }
            at += reclen;
        }
        if out.len() > 1 << 20 {
            return None;
        }
    }
}

/// Every process a procfs directory descriptor lists, with its `stat`.
fn ns_processes(dir: RawFd) -> Option<Vec<Stat>> {
    let pids = list_pids(dir)?;
    let mut out = Vec::with_capacity(pids.len());
    for p in pids {
        let Ok(path) = std::ffi::CString::new(format!("{p}/stat")) else {
            continue;
        };
        // SAFETY: openat relative to our directory descriptor, a valid C string.
        let fd = unsafe { libc::openat(dir, path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            continue;
        }
        // SAFETY: a fresh descriptor we own.
        let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut s = String::new();
        if f.read_to_string(&mut s).is_ok()
            && let Some(st) = parse_stat(p, &s)
        {
            out.push(st);
        }
    }
    Some(out)
}

/// The pid one level below the runner's namespace (`NSpid`'s second field) of the process
/// `global` in the runner's view: its pid in the namespace of a namespace init the runner
/// started. `None` if it is gone or in the runner's own namespace.
fn ns_pid_of(global: u32) -> Option<u32> {
    read_proc(&format!("/proc/{global}/status"))
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().nth(1).and_then(|x| x.parse().ok()))
}

/// The pid in the runner's view of the process a namespace's procfs listed as `n`: the
/// one whose `NSpid` holds `n`'s pid right after its own and that started at the same tick
/// (a pid is unique in its namespace while it lives; the tick tells a reused one apart; a
/// name is no key, `execve` changes it). Only when a leftover was found that no walk led
/// to (rare).
fn find_global(n: &Stat) -> Option<u32> {
    let dir = std::fs::read_dir("/proc").ok()?;
    for e in dir.flatten() {
        let Some(g) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if ns_pid_of(g) == Some(n.ns_pid)
            && stat_full(g).is_some_and(|s| s.starttime == n.starttime)
        {
            return Some(g);
        }
    }
    None
}

/// The parent of a namespace's child, outside the namespace, whose other children the
/// child may have started (`CLONE_PARENT`).
#[derive(Debug, Clone, Copy)]
pub enum Parent {
    /// A thread of the runner (an exec'd child's spawning thread).
    RunnerThread(u32),
    /// A process (a fork server), whose one thread is its main one.
    Process(u32),
}

impl Parent {
    fn children_path(self) -> String {
        match self {
            Parent::RunnerThread(tid) => format!("/proc/self/task/{tid}/children"),
            Parent::Process(p) => format!("/proc/{p}/task/{p}/children"),
        }
    }
}

/// The zygote: serve init requests on stdin (a socket) until it closes; returns the exit
/// code. Single-threaded, so forking here is plain.
pub fn zygote_main() -> i32 {
    // SAFETY: prctl with integer arguments: die with the runner. Then no descriptor but
    // stdio (its socket and `/dev/null`): what the runner inherited without close-on-exec
    // (a shell's or a build tool's pipe) is not the zygote's to hold for the whole run.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    let mut inits: Vec<libc::pid_t> = Vec::new();
    let mut stdin = std::io::stdin().lock();
    let mut byte = [0u8; 1];
    while matches!(stdin.read(&mut byte), Ok(1)) {
        let shared = byte[0] == b'S';
        // Reap the inits the runner killed.
        inits.retain(|&p| {
            let mut st = 0;
            // SAFETY: reaping our own child without blocking.
            unsafe { libc::waitpid(p, &raw mut st, libc::WNOHANG) != p }
        });
        // The init reports on this socket whether its mounts succeeded (a shared
        // namespace's), with its procfs instance attached.
        let mut ready = [-1i32; 2];
        // SAFETY: a valid array.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                ready.as_mut_ptr(),
            )
        } != 0
        {
            break;
        }
        let ns = if shared { libc::CLONE_NEWNS } else { 0 };
        // SAFETY: a fork-like clone of this single-threaded process into a new PID
        // namespace; the child only makes system calls and never returns.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWPID | ns | libc::SIGCHLD,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if pid == 0 {
            // SAFETY: the init, in the child.
            unsafe { init_main(ready[1], shared) }
        }
        // SAFETY: our end of the init's socket.
        unsafe {
            libc::close(ready[1]);
        }
        // The init sends one byte once its mounts are done, with its procfs instance if it
        // made one; its end closes when it closes every descriptor (or dies).
        let mut b = [0u8; 1];
        let (n, procfs) = super::sidecar::recv_with_fds(ready[0], &mut b);
        // SAFETY: our own descriptor.
        unsafe {
            libc::close(ready[0]);
        }
        let mounted = shared && n == 1 && b[0] == b'k';
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            break;
        };
        if pid < 0 {
            // The runner's read times out and its child runs without a namespace.
            break;
        }
        inits.push(pid);
        // SAFETY: pidfd_open of our own child.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
        let Ok(pidfd) = RawFd::try_from(pidfd) else {
            break;
        };
        let word = u32::try_from(pid).unwrap_or(0) | if mounted { PROC_MOUNTED } else { 0 };
        let mut fds = vec![pidfd];
        fds.extend(procfs.iter().map(AsRawFd::as_raw_fd));
        let ok = pidfd >= 0 && send(0, word, &fds);
        drop(procfs);
        // SAFETY: our own descriptor.
        unsafe {
            libc::close(pidfd);
        }
        if !ok {
            break;
        }
    }
    // Every init is killed before any is waited for: each one's end tears down its
    // namespaces, which waits for an RCU grace period, so they end together instead of
    // one after the other.
    for p in &inits {
        // SAFETY: killing our own children.
        unsafe {
            libc::kill(*p, libc::SIGKILL);
        }
    }
    for p in &inits {
        // SAFETY: reaping our own children.
        unsafe {
            let mut st = 0;
            libc::waitpid(*p, &raw mut st, 0);
        }
    }
    0
}

/// A directory descriptor of a new procfs instance of the caller's PID namespace, mounted
/// nowhere (`fsopen`, `fsmount`: its own superblock, read-only, no exec, suid or devices;
/// `subset=pid` where the kernel knows it: only the processes are listed).
///
/// # Safety
/// Plain system calls; only in the init, which has `CAP_SYS_ADMIN` yet.
unsafe fn private_procfs() -> Option<RawFd> {
    const FSOPEN_CLOEXEC: u32 = 1;
    const FSCONFIG_SET_STRING: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    const FSMOUNT_CLOEXEC: u32 = 1;
    const MOUNT_ATTR_RDONLY: u32 = 0x1;
    const MOUNT_ATTR_NOSUID: u32 = 0x2;
    const MOUNT_ATTR_NODEV: u32 = 0x4;
    const MOUNT_ATTR_NOEXEC: u32 = 0x8;
    // SAFETY: the new-mount system calls on static strings and our own descriptors.
    unsafe {
        let fs = libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FSOPEN_CLOEXEC);
        let fs = RawFd::try_from(fs).ok().filter(|f| *f >= 0)?;
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_SET_STRING,
            c"subset".as_ptr(),
            c"pid".as_ptr(),
            0,
        );
        let mnt = if libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        ) == 0
        {
            libc::syscall(
                libc::SYS_fsmount,
                fs,
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            )
        } else {
            -1
        };
        libc::close(fs);
        let mnt = RawFd::try_from(mnt).ok().filter(|f| *f >= 0)?;
        // `fsmount` gives an `O_PATH` descriptor: a readable one of the same root.
        let dir = libc::openat(
            mnt,
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        libc::close(mnt);
        (dir >= 0).then_some(dir)
    }
}

/// The init: no capability, not dumpable, no descriptor, every signal blocked; dies with
/// the zygote; reaps the orphans re-parented to it (a shared namespace outlives its
/// children's leftovers only when there were none, but a child of the namespace that exits
/// after its parent must not stay a zombie) until killed.
///
/// # Safety
/// Only in the zygote's fresh child.
unsafe fn init_main(ready: RawFd, shared: bool) -> ! {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    // SAFETY: system calls on this process only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::prctl(libc::PR_SET_NAME, c"nexusmon-init".as_ptr(), 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        // A shared namespace's mounts, once for all its children: nothing propagates back
        // to the host, and its own `/proc`.
        let ok = shared && privilege::make_root_private() && privilege::mount_proc();
        let b = if ok { b"k" } else { b"f" };
        // The runner's own procfs instance of this namespace (see the module doc).
        match private_procfs() {
            Some(fd) => {
                super::sidecar::send_with_fds(ready, b, &[fd]);
            }
            None => {
                libc::write(ready, b.as_ptr().cast(), 1);
            }
        }
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const all, std::ptr::null_mut());
        for n in 0..64u32 {
            libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(n), 0, 0, 0);
        }
        let header = Header {
            version: 0x2008_0522,
            pid: 0,
        };
        let data = [0u32; 6];
        libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr());
        let mut chld: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut chld);
        libc::sigaddset(&raw mut chld, libc::SIGCHLD);
        loop {
            // SIGCHLD stays blocked (so it is queued for an init) and is taken here.
            libc::sigwaitinfo(&raw const chld, std::ptr::null_mut());
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
        }
    }
}
