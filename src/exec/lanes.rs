//! The real executor of the baseline and scenario lanes: one spawn path for both, the
//! scenario lane adding the profile (Landlock, seccomp, rlimits, the pids cgroup) and
//! nothing else, so differences between the lanes come from the policy alone. Both lanes
//! set no-new-privs (setuid programs behave the same in both) and RLIMIT_CORE=0, and use
//! the same environment, working directory and timeout.
//!
//! Builtin probes run the helper (`nexusmon __probe`, plain spawn, self-restricting);
//! exec probes run `argv` (never through a shell) with the profile prepared once in the
//! parent and enforced in `pre_exec`.
//!
//! This is the live side of the executor seam ([`super::seam`]): it depends on the seam,
//! child control, fixtures and the helper's request type, never on the pipeline's stages.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::child::{self, Captured, ChildResult, ChildSpec, Ended, PreExec, Tracking};
use super::fixtures::{self, Scratch};
use super::forkserver::ForkServer;
use super::helper::{self, HelperLine, HelperRequest};
use super::outcome::{ExecEnd, classify_exec, errno_name, signal_meaning, signal_name};
use super::seam::{LaneAttempt, ProbeExecutor, ScenarioRun, WorkerRun};
use super::worker;
use super::zygote::{NsInit, SharedNs, Zygote};
use crate::model::registry::Profile;
use crate::model::registry::{Driver, Env, Operation};
use crate::model::results::{
    Attempt, Enforcement, Lane, Outcome, ProcessAccounting, Stage, StreamCapture,
};
use crate::model::worker::{
    Artifact, MAX_RESULT_BYTES, WORKER_PROTOCOL, WorkerFault, WorkerObservation, WorkerRequest,
    WorkerResult,
};
use crate::sandbox::apply::{ApplyFailure, Prepared};
use crate::sandbox::cgroup::{ChildCgroup, WorkerCgroup};
use crate::sandbox::compile::{self, ApplySpec, CompileContext, CompileHost, CompiledProfile};
use crate::sandbox::privilege::{self, ChildRequest, Isolation, RunnerPrivileges};
use crate::sandbox::vars::Vars;
use crate::util::digest::Digest;
use crate::{Error, Result};

/// A mission's shared workspace in `lane`: `<scratch>/mission/<lane>` (created). Every
/// task of a mission gets it as `${SCRATCH}` (and, on the clean channel, as `HOME`,
/// `TMPDIR` and working directory), so a task hands its results to the tasks that depend
/// on it; each lane has its own, so the lanes never see each other's work.
pub fn mission_workspace(scratch: &Scratch, lane: Lane) -> Result<PathBuf> {
    let d = scratch.root().join("mission").join(lane.as_str());
    // Never through a symlink: a task of another lane may have planted one beside its own.
    crate::util::fsx::create_dir_all(&d)?;
    Ok(d)
}

/// Where captured output goes (the bundle).
pub trait LogSink: Sync {
    /// Write `bytes` at the bundle-relative path `rel`.
    fn write_log(&self, rel: &str, bytes: &[u8]) -> Result<()>;
}

/// A profile ready for the scenario lane.
#[derive(Debug)]
pub struct ProfileRuntime {
    /// The profile as written (compiled again per child when `compiled.per_child`).
    pub profile: Profile,
    /// The file it comes from (for error messages).
    pub profiles_file: PathBuf,
    /// The host the compiler targets.
    pub host: CompileHost,
    /// What the runner can give its children, and whether this is the clean channel (the
    /// child privileges compiled into every per-child compilation).
    pub runner: (RunnerPrivileges, bool),
    /// The compiled profile (before any child: per-child rules pending).
    pub compiled: CompiledProfile,
    /// Its apply spec (the helper's `apply`), built once.
    pub spec: ApplySpec,
    /// `spec`'s JSON text, made once on first use (every child of the profile but one
    /// compiled for itself applies `spec`).
    pub spec_text: std::sync::OnceLock<Option<helper::ApplyText>>,
    /// Its ruleset prepared in the parent for exec probes (built once, at preflight).
    pub prepared: Option<std::result::Result<Arc<Prepared>, ApplyFailure>>,
    /// What the preflight saw the kernel enforce.
    pub enforcement: Option<Enforcement>,
}

impl ProfileRuntime {
    /// The profile compiled again for one child, against its variables (its `${SCRATCH}`
    /// now exists, with its fixtures).
    fn compile_for_child(&self, sc: &ScenarioRun, vars: &Vars) -> Result<CompiledProfile> {
        let ctx = CompileContext {
            host: &self.host,
            vars,
            before_child: false,
        };
        let mut c = compile::compile(
            sc.spec.profile_id.as_str(),
            &self.profile,
            &self.profiles_file,
            &ctx,
        )?;
        privilege::attach(&mut c, &self.profile, &self.runner.0, self.runner.1);
        Ok(c)
    }
}

impl LiveExecutor<'_> {
    /// The isolation of one child: with a PID namespace, a fresh init from the zygote
    /// (without one, the child runs without a namespace and the record says why).
    /// A probe's child shares its worker thread's namespace (one child at a time); a
    /// mission worker's gets one of its own.
    fn isolate(&self, req: ChildRequest<'_>, shared: bool) -> Isolated {
        let ns = shared.then(|| self.worker_ns()).flatten();
        isolate_with(req, self.zygote.as_ref(), ns.as_deref())
    }

    /// The calling worker thread's shared PID namespace.
    fn worker_ns(&self) -> Option<Arc<SharedNs>> {
        let me = std::thread::current().id();
        let mut all = self.shared_ns.lock().ok()?;
        if let Some((_, ns)) = all.iter().find(|(t, _)| *t == me) {
            return Some(ns.clone());
        }
        let ns = Arc::new(SharedNs::default());
        all.push((me, ns.clone()));
        Some(ns)
    }
}

/// See [`LiveExecutor::isolate`] (also the preflight's: a namespace of its own).
pub fn isolate(
    req: ChildRequest<'_>,
    zygote: std::result::Result<&Arc<Zygote>, &String>,
) -> Isolated {
    isolate_with(req, zygote, None)
}

fn isolate_with(
    mut req: ChildRequest<'_>,
    zygote: std::result::Result<&Arc<Zygote>, &String>,
    shared: Option<&SharedNs>,
) -> Isolated {
    let (mut iso, mut ll) = Isolation::new(&req);
    let mut ns_init = None;
    if iso.pid_namespace() {
        let init = zygote.map_err(Clone::clone).and_then(|z| match shared {
            Some(ns) => ns.get(z),
            None => z.new_init().map(Arc::new),
        });
        match init {
            Ok(init) => ns_init = Some(init),
            Err(why) => {
                req.pid_namespace = Err(format!("no PID namespace could be made: {why}"));
                (iso, ll) = Isolation::new(&req);
            }
        }
    }
    let record = iso.record().clone();
    Isolated {
        isolation: (!iso.is_noop()).then_some(iso),
        ro_landlock: ll,
        record,
        ns_init,
    }
}

/// Why a probe runs without its own PID namespace though its profile gives one.
fn pid_namespace_for(operation: Operation) -> std::result::Result<(), String> {
    if operation == Operation::SignalSend {
        Err("a `signal-send` probe must reach a process outside the child (its target pid, e.g. ${RUNNER_PID}, is in the runner's PID namespace), so it shares the runner's; the runner is non-dumpable, so its /proc entries still need CAP_SYS_PTRACE".into())
    } else {
        Ok(())
    }
}

/// Give `dir` and what beneath it belongs to the runner to `uid`:`gid` (the profile's
/// identity). A mission's workspace holds what earlier tasks' children made, so nothing is
/// trusted: every entry is opened relative to its opened parent without following a
/// symlink and changed through that descriptor (no path can be swapped in between), a file
/// with more than one link is left alone (a hard link to a host file must not hand that
/// file over), symlinks are not followed, and so is anything not owned by the runner.
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::result::Result<(), String> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    fn open_at(parent: i32, name: &std::ffi::CStr, flags: i32) -> Option<OwnedFd> {
        // SAFETY: openat on a valid descriptor and C string.
        let fd = unsafe {
            libc::openat(
                parent,
                name.as_ptr(),
                flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            )
        };
        // SAFETY: a fresh descriptor we own.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    }
    fn give(fd: &OwnedFd, uid: u32, gid: u32, me: u32) -> std::io::Result<libc::stat> {
        // SAFETY: zeroed plain data filled by fstat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat/fchownat on our own descriptor.
        unsafe {
            if libc::fstat(fd.as_raw_fd(), &raw mut st) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if st.st_uid == me
                && (is_dir || st.st_nlink == 1)
                && libc::fchownat(
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    uid,
                    gid,
                    libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(st)
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let root = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| format!("`{}` contains a NUL byte", dir.display()))?;
    let top =
        open_at(libc::AT_FDCWD, &root, libc::O_RDONLY | libc::O_DIRECTORY).ok_or_else(|| {
            format!(
                "cannot open `{}`: {}",
                dir.display(),
                std::io::Error::last_os_error()
            )
        })?;
    let fail = |what: &Path, e: std::io::Error| {
        format!(
            "cannot give `{}` to uid {uid}, gid {gid}: {e}",
            what.display()
        )
    };
    give(&top, uid, gid, me).map_err(|e| fail(dir, e))?;
    // (directory descriptor, its path for messages, depth)
    let mut stack = vec![(top, dir.to_path_buf(), 0u32)];
    let mut budget = 100_000u32;
    while let Some((dfd, dpath, depth)) = stack.pop() {
        let listing = std::fs::read_dir(format!("/proc/self/fd/{}", dfd.as_raw_fd()))
            .map_err(|e| format!("cannot list `{}`: {e}", dpath.display()))?;
        for e in listing {
            let e = e.map_err(|e| format!("cannot list `{}`: {e}", dpath.display()))?;
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return Err(format!(
                    "`{}` holds too many entries to hand over",
                    dir.display()
                ));
            }
            let name = e.file_name();
            let Ok(cname) = std::ffi::CString::new(name.as_bytes()) else {
                continue;
            };
            let path = dpath.join(&name);
            let Some(fd) = open_at(dfd.as_raw_fd(), &cname, libc::O_PATH) else {
                continue;
            };
            let st = give(&fd, uid, gid, me).map_err(|e| fail(&path, e))?;
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR
                && depth < 64
                && let Some(sub) =
                    open_at(dfd.as_raw_fd(), &cname, libc::O_RDONLY | libc::O_DIRECTORY)
            {
                stack.push((sub, path, depth + 1));
            }
        }
    }
    Ok(())
}

/// Why the scenario lane cannot run an exec probe whose declared read-only inputs this
/// runner cannot bind read-only (no mount namespace) while the profile would let the
/// program write them (any right beyond reading, on the input or, for creating and removing
/// it, on its parent): running it could change the host.
fn unprotected_input(compiled: &CompiledProfile, reads: &[String]) -> Option<String> {
    use crate::sandbox::compile::FsDecision;
    use crate::sandbox::rights::fs;
    if reads.is_empty() || compiled.child.baseline_host_read_only == privilege::RO_MOUNT_NAMESPACE {
        return None;
    }
    let writes = fs::TABLE.iter().map(|(bit, _, _)| *bit).filter(|b| {
        *b & (fs::EXECUTE | fs::READ_FILE | fs::READ_DIR | fs::IOCTL_DEV | fs::RESOLVE_UNIX) == 0
    });
    for input in reads {
        let path = Path::new(input);
        let res = crate::sandbox::paths::resolve(path, Path::new("/"), true);
        let parent = res.canonical.parent().map(Path::to_path_buf);
        for bit in writes.clone() {
            for at in std::iter::once(res.canonical.clone()).chain(parent.clone()) {
                if !matches!(compiled.fs_decide(&at, bit), FsDecision::Denied) {
                    return Some(format!(
                        "the probe declares `{input}` a read-only input, but profile `{}` lets it be written (`{}` on `{}`) and this runner cannot keep it read-only without a mount namespace ({})",
                        compiled.profile_id,
                        crate::sandbox::rights::fs_name(bit),
                        at.display(),
                        compiled
                            .child
                            .pid_namespace_reason
                            .as_deref()
                            .unwrap_or("no CAP_SYS_ADMIN")
                    ));
                }
            }
        }
    }
    None
}

/// What one attempt resolved before anything is spawned.
struct Resolved {
    /// The child's `${SCRATCH}`.
    job_dir: PathBuf,
    /// Run variables with the child's `SCRATCH` and `HOME`, when this child needs them
    /// ([`needs_vars`]); else made when a per-child compile asks ([`Resolved::vars`]).
    vars: Option<Vars>,
    /// The child's `HOME`.
    home: String,
    target: Option<String>,
    destination: Option<String>,
    argv: Vec<String>,
    /// The declared read-only inputs (`reads`), expanded.
    reads: Vec<String>,
}

impl Resolved {
    /// The child's variables: the run's with its `SCRATCH` and `HOME` (made now if
    /// [`needs_vars`] said the probe itself needs none).
    fn vars(&self, run: &Vars) -> std::borrow::Cow<'_, Vars> {
        match &self.vars {
            Some(v) => std::borrow::Cow::Borrowed(v),
            None => std::borrow::Cow::Owned(child_vars(
                run,
                &self.job_dir.to_string_lossy(),
                &self.home,
            )),
        }
    }
}

/// The run's variables with a child's `SCRATCH` and `HOME` (nested references expanded).
fn child_vars(run: &Vars, scratch: &str, home: &str) -> Vars {
    run.with(&[("SCRATCH", scratch), ("HOME", home)]).nested()
}

/// Whether resolving `p` reads a variable: it has fixtures, or a `$` in its target,
/// destination, argv or reads. Without one, every expansion is the text itself
/// ([`Vars::expand`] copies what has no `$`), so the run's variables are not copied for
/// the child (a `BTreeMap` clone of every variable per child).
fn needs_vars(p: &crate::model::registry::Probe) -> bool {
    let dollar = |s: &str| s.contains('$');
    !p.fixtures.is_empty()
        || p.target.as_deref().is_some_and(dollar)
        || p.destination.as_deref().is_some_and(dollar)
        || p.argv.iter().flatten().any(|a| dollar(a))
        || p.reads.iter().any(|a| dollar(a))
}

/// The process accounting of a scenario-lane child whose profile limits processes (from
/// its pids cgroup, which is emptied and removed here).
fn account_processes(
    cgroup: Option<ChildCgroup>,
    compiled: &CompiledProfile,
    scenario_lane: bool,
) -> Option<ProcessAccounting> {
    if let Some(cg) = cgroup {
        let (peak, refused) = cg.accounting();
        let limited = scenario_lane && compiled.needs_pids_cgroup().is_some();
        let out = compiled
            .processes
            .as_ref()
            .filter(|_| limited)
            .map(|pl| ProcessAccounting {
                limit: pl.limit,
                peak,
                refused_forks: refused,
                enforced_by: pl.enforced_by.clone(),
            });
        cg.kill_all();
        cg.remove();
        out
    } else if scenario_lane && let Some(pl) = &compiled.processes {
        Some(ProcessAccounting {
            limit: pl.limit,
            peak: None,
            refused_forks: None,
            enforced_by: pl.enforced_by.clone(),
        })
    } else {
        None
    }
}

/// The baseline lane's spawn setup.
#[derive(Debug)]
pub struct BaselineRuntime {
    /// The baseline apply spec.
    pub spec: ApplySpec,
    /// Its JSON text, made once (see [`ProfileRuntime::spec_text`]).
    pub spec_text: Option<helper::ApplyText>,
    /// Prepared for exec probes.
    pub prepared: std::result::Result<Arc<Prepared>, ApplyFailure>,
}

impl BaselineRuntime {
    /// The baseline lane: no-new-privs and RLIMIT_CORE=0, no policy
    /// (`sandbox::compile::baseline_spec`), prepared once.
    pub fn new() -> Self {
        let spec = compile::baseline_spec();
        let prepared = Prepared::new(&spec).map(Arc::new);
        let spec_text = helper::ApplyText::of(&spec).ok();
        Self {
            spec,
            spec_text,
            prepared,
        }
    }
}

impl Default for BaselineRuntime {
    fn default() -> Self {
        Self::new()
    }
}

/// The run's pids cgroup directory (`<root>/<run_id>` under the host's pids cgroup), under
/// which every child gets its own cgroup: exact leak tracking for every child, and the
/// process limit where a profile sets one. Absent where the host has no pids cgroup or
/// the directory cannot be created.
#[derive(Debug)]
pub struct RunCgroups {
    root: Option<String>,
    dir: Option<PathBuf>,
}

impl RunCgroups {
    /// Create the run's directory under the host's pids cgroup `root`, marked with the
    /// parent of the run's scratch root (only a sweep of that parent cleans it up).
    pub fn create(root: Option<&str>, run_id: &str, scratch_parent: &Path) -> Self {
        let dir = root.and_then(|r| {
            crate::sandbox::cgroup::create_run_dir(Path::new(r), run_id, scratch_parent).ok()
        });
        Self {
            root: root.map(str::to_string),
            dir,
        }
    }

    /// The run's directory.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// What [`LiveExecutor::tracking`] takes: the directory and whether it is cgroup v1.
    pub fn tracking(&self) -> Option<(PathBuf, bool)> {
        self.dir.clone().map(|d| {
            (
                d,
                self.root.as_deref().is_some_and(|r| r.ends_with("/pids")),
            )
        })
    }

    /// Remove the run's directory (if it was created).
    pub fn remove(&self, run_id: &str) {
        if let (Some(root), Some(_)) = (&self.root, &self.dir) {
            crate::sandbox::cgroup::remove_run_dir(Path::new(root), run_id);
        }
    }
}

/// Spawns real children.
pub struct LiveExecutor<'a> {
    /// The helper executable (this binary).
    pub helper_exe: PathBuf,
    /// Clean channel.
    pub clean: bool,
    /// The run's scratch root.
    pub scratch: &'a Scratch,
    /// Run variables (plan variables, listener ports, RUNNER_PID).
    pub vars: Vars,
    /// The runner's environment (for `env.pass` and the direct channel), sorted.
    pub runner_env: Vec<(String, String)>,
    /// Profiles by id.
    pub profiles: BTreeMap<String, ProfileRuntime>,
    /// The baseline lane.
    pub baseline: BaselineRuntime,
    /// Where logs go.
    pub logs: Option<&'a dyn LogSink>,
    /// The run's pids cgroup directory and whether it is v1: every child gets its own
    /// cgroup beneath it (exact leak tracking; the limit when the profile sets one).
    pub tracking: Option<(PathBuf, bool)>,
    /// Bytes kept per stream.
    pub output_cap: u64,
    /// The first log-writing failure (fails the run).
    pub log_error: Mutex<Option<Error>>,
    /// The run id (in a worker's request).
    pub run_id: String,
    /// The plan id (in a worker's request).
    pub plan_id: String,
    /// Mission tasks share a workspace: a worker task holds this exclusively while it runs
    /// (every other mission task holds it shared), so the workspace changes the runner
    /// sees around a worker are the worker's own.
    exclusive: std::sync::RwLock<()>,
    counter: AtomicU64,
    /// The zygote of the children's PID namespaces (`Err`: why there is none).
    pub zygote: std::result::Result<Arc<Zygote>, String>,
    /// The builtin probes' fork servers, one per worker thread (started on its first
    /// builtin probe, ended by [`ProbeExecutor::finish`]).
    servers: Mutex<Vec<(std::thread::ThreadId, Arc<ForkServer>)>>,
    /// The PID namespace each worker thread's probe children share, one at a time.
    shared_ns: Mutex<Vec<(std::thread::ThreadId, Arc<SharedNs>)>>,
    /// No fork server could be started: builtin probes execute the helper.
    servers_failed: std::sync::atomic::AtomicBool,
    /// This process's id (in every helper request), read once.
    runner_pid: u32,
    /// What the worker threads started ahead of the lanes get ready, with the bounding set
    /// the fork servers keep, fixed from the compiled profiles before the runtimes exist
    /// ([`LiveExecutor::start_workers`]; `None`: the servers' set comes from `profiles`).
    ready: Option<WorkerReady>,
    /// The lanes' worker threads when the executor started them ahead of the lanes
    /// ([`LiveExecutor::start_workers`]), with how many of them have not ended yet.
    workers: Option<(rayon::ThreadPool, Arc<WorkersAlive>)>,
}

/// How many of the executor's own worker threads have not ended, and a wake-up for
/// [`LiveExecutor::end_workers`].
#[derive(Debug, Default)]
struct WorkersAlive {
    count: Mutex<usize>,
    ended: std::sync::Condvar,
}

/// What each worker thread gets ready before its first probe ([`LiveExecutor::start_workers`]).
#[derive(Debug, Clone, Copy)]
pub struct WorkerReady {
    /// Worker threads to start (the lanes' jobs, at most as many as lane jobs).
    pub threads: usize,
    /// Start each thread's fork server (the selection has builtin probes).
    pub fork_server: bool,
    /// The bounding set the fork servers keep
    /// ([`crate::sandbox::privilege::bounding_kept_by`] over every compiled profile).
    pub server_keep: Option<u64>,
}

/// One child's isolation, its record, and the init of its PID namespace.
#[derive(Debug)]
pub struct Isolated {
    /// What the child applies between clone and `execve` (`None`: nothing to apply).
    pub isolation: Option<Isolation>,
    /// The Landlock ruleset of a read-only host without a mount namespace.
    pub ro_landlock: Option<compile::LandlockSpec>,
    /// The attempt's record.
    pub record: crate::model::results::ChildIsolation,
    /// The init of the child's PID namespace.
    pub ns_init: Option<Arc<NsInit>>,
}

impl std::fmt::Debug for LiveExecutor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveExecutor")
            .field("helper_exe", &self.helper_exe)
            .field("clean", &self.clean)
            .finish_non_exhaustive()
    }
}

impl<'a> LiveExecutor<'a> {
    /// A new executor.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        helper_exe: PathBuf,
        clean: bool,
        scratch: &'a Scratch,
        vars: Vars,
        runner_env: Vec<(String, String)>,
        profiles: BTreeMap<String, ProfileRuntime>,
        baseline: BaselineRuntime,
        logs: Option<&'a dyn LogSink>,
        tracking: Option<(PathBuf, bool)>,
        output_cap: u64,
    ) -> Self {
        // Here, before any worker thread: see `spawn::start_ns_releaser`.
        super::spawn::start_ns_releaser();
        Self {
            helper_exe,
            clean,
            scratch,
            vars,
            runner_env,
            profiles,
            baseline,
            logs,
            tracking,
            output_cap,
            log_error: Mutex::new(None),
            run_id: String::new(),
            plan_id: String::new(),
            exclusive: std::sync::RwLock::new(()),
            counter: AtomicU64::new(0),
            zygote: Err("no PID namespaces in this run".into()),
            servers: Mutex::new(Vec::new()),
            shared_ns: Mutex::new(Vec::new()),
            servers_failed: std::sync::atomic::AtomicBool::new(false),
            runner_pid: std::process::id(),
            ready: None,
            workers: None,
        }
    }

    /// Start the lanes' worker threads now, before the lanes: [`Self::while_workers_get_ready`]
    /// then gets each of them ready for its first probe (its cgroup joined, its fork server
    /// started, its shared PID namespace's init made) while the calling thread runs the
    /// preflight, and the scheduler runs the lanes' jobs on them ([`ProbeExecutor::threads`]).
    /// Nothing is started if the threads cannot be (the scheduler then starts its own, each
    /// getting ready on its first probe, as without this).
    pub fn start_workers(&mut self, ready: WorkerReady) {
        if ready.threads == 0 {
            return;
        }
        let alive = Arc::new(WorkersAlive::default());
        let on_exit = Arc::clone(&alive);
        let built = rayon::ThreadPoolBuilder::new()
            .num_threads(ready.threads)
            .exit_handler(move |_| {
                let mut n = on_exit
                    .count
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *n = n.saturating_sub(1);
                on_exit.ended.notify_all();
            })
            .build();
        if let Ok(pool) = built {
            *alive
                .count
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = pool.current_num_threads();
            self.ready = Some(ready);
            self.workers = Some((pool, alive));
        }
    }

    /// Run `meanwhile` (the preflight) on the calling thread while every worker thread
    /// started by [`Self::start_workers`] gets ready for its first probe; returns once both
    /// are done. Getting ready starts no probe's child: the threads join their cgroups,
    /// start their fork servers (born there, as on a first probe) and take their shared
    /// PID namespaces' inits from the zygote — none of it waits for, or is undone by, what
    /// the preflight finds (a run it stops ends the servers and namespaces unused).
    pub fn while_workers_get_ready<T>(&self, meanwhile: impl FnOnce() -> T) -> T {
        let Some((pool, _)) = &self.workers else {
            return meanwhile();
        };
        pool.in_place_scope(|s| {
            s.spawn_broadcast(|_, _| self.get_ready());
            meanwhile()
        })
    }

    /// The calling worker thread's cgroup, fork server and shared namespace, made now
    /// instead of on its first probe (the same calls, so the same results).
    fn get_ready(&self) {
        let _ = self.worker_cgroup();
        if self.ready.is_some_and(|r| r.fork_server) {
            let _ = self.fork_server();
        }
        if let Ok(z) = &self.zygote
            && let Some(ns) = self.worker_ns()
        {
            let _ = ns.get(z);
        }
    }

    /// End the worker threads [`Self::start_workers`] started, and wait (2 s at most) until
    /// each has finished: a thread leaves its cgroup only as it exits, and the run's
    /// cgroups are removed next. Call once the lanes are over.
    pub fn end_workers(&mut self) {
        let Some((pool, alive)) = self.workers.take() else {
            return;
        };
        drop(pool);
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut n = alive
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *n > 0 {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            n = alive
                .ended
                .wait_timeout(n, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// The lanes are over (every child reaped and seen through, the fork servers ended):
    /// kill the workers' shared PID namespaces and retire the zygote now, so their
    /// teardown overlaps the writing and sealing of the results instead of following it
    /// (the zygote is waited for when its last handle is dropped).
    pub fn retire_namespaces(&self) {
        if let Ok(all) = self.shared_ns.lock() {
            for (_, ns) in all.iter() {
                ns.retire();
            }
        }
        if let Ok(z) = &self.zygote {
            z.retire();
        }
    }

    /// The calling worker thread's fork server, started on first use after the thread
    /// joined its cgroup (so the server, and every child it forks, is born there). A
    /// broken server is replaced; `None` if none can be started.
    fn fork_server(&self) -> Option<Arc<ForkServer>> {
        if self.servers_failed.load(Ordering::Relaxed) {
            return None;
        }
        let me = std::thread::current().id();
        let _ = self.worker_cgroup();
        {
            let mut servers = self.servers.lock().ok()?;
            if let Some((_, s)) = servers.iter().find(|(t, s)| *t == me && !s.is_broken()) {
                return Some(s.clone());
            }
            servers.retain(|(t, _)| *t != me);
        }
        // Every builtin child of this run drops its bounding set to at most this.
        let keep = self.ready.map_or_else(
            || {
                crate::sandbox::privilege::bounding_kept_by(
                    self.profiles.values().map(|r| &r.compiled.child),
                )
            },
            |r| r.server_keep,
        );
        // Started without the lock (the workers' servers start side by side: only this
        // thread ever adds its own entry), from a thread holding the worker's full bounding
        // set (it may have lowered its own to its exec children's: `spawn::dedicate_thread`).
        let exe = &self.helper_exe;
        // Each worker's server on a CPU of its own while there are enough: the worker, its
        // server and the server's child hand over to each other several times per probe,
        // and each hand-over to another CPU costs a wake-up there (`cpu_for_worker`).
        let cpu = rayon::current_thread_index()
            .or_else(|| self.servers.lock().ok().map(|s| s.len()))
            .and_then(super::forkserver::cpu_for_worker);
        let Ok(s) = super::spawn::with_full(|| ForkServer::start_on(exe, keep, cpu)) else {
            self.servers_failed.store(true, Ordering::Relaxed);
            return None;
        };
        let s = Arc::new(s);
        self.servers.lock().ok()?.push((me, s.clone()));
        Some(s)
    }

    /// The environment of a child: clean → `HOME`, `TMPDIR` (the child's scratch) plus the
    /// profile's `pass` and `set`; direct → inherited (cleared first if `env.clear`) with
    /// `set` applied. `None` means inherit unchanged.
    pub fn child_env(&self, env: &Env, job_dir: &Path) -> Option<Vec<(String, String)>> {
        let pass = |out: &mut BTreeMap<String, String>| {
            for name in &env.pass {
                if let Some((_, v)) = self.runner_env.iter().find(|(k, _)| k == name) {
                    out.insert(name.clone(), v.clone());
                }
            }
        };
        if self.clean {
            let mut m = BTreeMap::new();
            let dir = job_dir.to_string_lossy().into_owned();
            m.insert("HOME".to_string(), dir.clone());
            m.insert("TMPDIR".to_string(), dir);
            pass(&mut m);
            m.extend(env.set.iter().map(|(k, v)| (k.clone(), v.clone())));
            return Some(m.into_iter().collect());
        }
        if env.clear {
            let mut m = BTreeMap::new();
            pass(&mut m);
            m.extend(env.set.iter().map(|(k, v)| (k.clone(), v.clone())));
            return Some(m.into_iter().collect());
        }
        if env.set.is_empty() {
            return None;
        }
        let mut m: BTreeMap<String, String> = self.runner_env.iter().cloned().collect();
        m.extend(env.set.iter().map(|(k, v)| (k.clone(), v.clone())));
        Some(m.into_iter().collect())
    }

    fn write_log(&self, rel: String, bytes: &[u8]) -> Option<String> {
        let sink = self.logs?;
        match sink.write_log(&rel, bytes) {
            Ok(()) => Some(rel),
            Err(e) => {
                if let Ok(mut slot) = self.log_error.lock()
                    && slot.is_none()
                {
                    *slot = Some(e);
                }
                None
            }
        }
    }

    fn capture(
        &self,
        c: &Captured,
        lane: Lane,
        scenario: &str,
        attempt: u32,
        stream: &str,
        is_witness: bool,
    ) -> StreamCapture {
        let mut sc = StreamCapture {
            bytes: c.bytes,
            kept: c.kept.len() as u64,
            truncated: c.truncated,
            log: None,
            complete: c.complete,
        };
        if !c.kept.is_empty() && !is_witness {
            let suffix = if attempt > 1 {
                format!(".attempt-{attempt}")
            } else {
                String::new()
            };
            let rel = format!("logs/{}/{scenario}{suffix}.{stream}", lane.as_str());
            sc.log = self.write_log(rel, &c.kept);
        }
        sc
    }

    /// A child's own pids cgroup, when the scenario lane's profile limits processes.
    fn new_cgroup(
        &self,
        compiled: &CompiledProfile,
        lane: Lane,
    ) -> std::result::Result<Option<ChildCgroup>, String> {
        let limit = if lane == Lane::Scenario {
            compiled.needs_pids_cgroup().map(|(l, _)| l)
        } else {
            None
        };
        let Some(limit) = limit else {
            return Ok(None);
        };
        let Some((dir, v1)) = &self.tracking else {
            return Err("no pids cgroup is available for this run".into());
        };
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        ChildCgroup::create(dir, &format!("c{n}"), Some(limit), *v1)
            .map(Some)
            .map_err(|e| {
                format!(
                    "cannot create the pids cgroup under `{}`: {e}",
                    dir.display()
                )
            })
    }

    /// One attempt: resolve the child's directory, variables, fixtures and arguments,
    /// compile the profile again for this child if its rules need it, then spawn through
    /// the driver's path and account for the child's pids cgroup.
    fn observe_inner(&self, sc: &ScenarioRun, lane: Lane, attempt: u32) -> LaneAttempt {
        if let Some(run) = &sc.worker {
            let _alone = self
                .exclusive
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return self.observe_worker(sc, run, lane, attempt);
        }
        let _shared = sc.task.is_some().then(|| {
            self.exclusive
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        });
        let p = &sc.probe;
        let Some(runtime) = self.profiles.get(sc.spec.profile_id.as_str()) else {
            return LaneAttempt::without_child(Attempt::without_child(
                Outcome::Error,
                Stage::Resolve,
                "profile not compiled",
            ));
        };
        let r = match self.resolve(sc, lane, attempt) {
            Ok(r) => r,
            Err(msg) => {
                return LaneAttempt::without_child(Attempt::without_child(
                    Outcome::Error,
                    Stage::Resolve,
                    msg,
                ));
            }
        };
        let scenario_lane = lane == Lane::Scenario;
        let refused = |msg: String| LaneAttempt {
            attempt: Attempt::without_child(Outcome::ApplyFailed, Stage::Apply, msg),
            target: r.target.clone(),
            argv: r.argv.clone(),
        };
        // A profile whose rules name the child's scratch directory is compiled again for
        // this child, now that its fixtures exist (same compiler, same IR).
        let child_compiled = if scenario_lane && runtime.compiled.per_child {
            match runtime.compile_for_child(sc, &r.vars(&self.vars)) {
                Ok(c) => Some(c),
                Err(e) => {
                    return refused(format!(
                        "the profile cannot be compiled for this child: {e}"
                    ));
                }
            }
        } else {
            None
        };
        let compiled = child_compiled.as_ref().unwrap_or(&runtime.compiled);
        if scenario_lane && let Some(e) = &compiled.apply_error {
            return refused(format!("the profile cannot be applied on this host: {e}"));
        }
        let who = &runtime.compiled.child;
        if who.applied
            && who.identity
            && let Err(msg) = chown_tree(&r.job_dir, who.uid, who.gid)
        {
            return LaneAttempt {
                attempt: Attempt::without_child(Outcome::Error, Stage::Resolve, msg),
                target: r.target.clone(),
                argv: r.argv.clone(),
            };
        }
        if scenario_lane && let Some(msg) = unprotected_input(compiled, &r.reads) {
            return refused(msg);
        }
        let cgroup = match self.new_cgroup(compiled, lane) {
            Ok(c) => c,
            Err(msg) => return refused(msg),
        };
        let mut out = self.spawn(
            sc,
            lane,
            attempt,
            runtime,
            child_compiled.as_ref(),
            &r,
            cgroup.as_ref(),
        );
        out.processes = account_processes(cgroup, compiled, scenario_lane);
        out.attempt = attempt;
        let argv = if p.driver == Driver::Exec {
            r.argv
        } else {
            Vec::new()
        };
        LaneAttempt {
            attempt: out,
            target: r.target,
            argv,
        }
    }

    /// The child's directory (a mission's shared workspace, else its own), its variables,
    /// its fixtures (created), and its expanded target, destination and argv.
    fn resolve(
        &self,
        sc: &ScenarioRun,
        lane: Lane,
        attempt: u32,
    ) -> std::result::Result<Resolved, String> {
        let p = &sc.probe;
        let dir = if sc.task.is_some() {
            mission_workspace(self.scratch, lane)
        } else {
            self.scratch.job_dir(
                lane.as_str(),
                sc.spec.profile_id.as_str(),
                sc.spec.probe_id.as_str(),
                attempt,
            )
        };
        let job_dir = dir.map_err(|e| e.to_string())?;
        let dir_s = job_dir.to_string_lossy().into_owned();
        let home = if self.clean {
            dir_s.clone()
        } else {
            self.runner_env
                .iter()
                .find(|(k, _)| k == "HOME")
                .map_or_else(|| dir_s.clone(), |(_, v)| v.clone())
        };
        let empty = Vars::new();
        let vars = needs_vars(p).then(|| child_vars(&self.vars, &dir_s, &home));
        // Without a `$` to expand, an empty set expands every text to itself.
        let v = vars.as_ref().unwrap_or(&empty);
        let expand = |s: &Option<String>| -> std::result::Result<Option<String>, String> {
            s.as_ref()
                .map(|t| v.expand(t).map_err(|e| e.message))
                .transpose()
        };
        fixtures::create_fixtures(p, v, &job_dir)?;
        let target = expand(&p.target)?;
        let destination = expand(&p.destination)?;
        let argv: Vec<String> = p
            .argv
            .iter()
            .flatten()
            .map(|a| v.expand(a).map_err(|e| e.message))
            .collect::<std::result::Result<_, _>>()?;
        let reads: Vec<String> = p
            .reads
            .iter()
            .map(|a| v.expand(a).map_err(|e| e.message))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Resolved {
            job_dir,
            vars,
            home,
            target,
            destination,
            argv,
            reads,
        })
    }

    /// Spawn the child through its driver's path (the helper, or `argv` itself).
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &self,
        sc: &ScenarioRun,
        lane: Lane,
        attempt: u32,
        runtime: &ProfileRuntime,
        child_compiled: Option<&CompiledProfile>,
        r: &Resolved,
        cgroup: Option<&ChildCgroup>,
    ) -> Attempt {
        let compiled = child_compiled.unwrap_or(&runtime.compiled);
        let env = self.child_env(&compiled.env, &r.job_dir);
        let cwd = self.clean.then(|| r.job_dir.clone());
        let timeout = Duration::from_millis(sc.timeout.ms);
        let grace = Duration::from_millis(sc.timeout.kill_grace_ms);
        // The baseline of an exec probe keeps the host read-only but its scratch.
        let read_only = lane == Lane::Baseline && sc.probe.driver == Driver::Exec;
        // Builtin probes are forked by this worker's fork server (executed if there is none).
        let server = if sc.probe.driver == Driver::Builtin {
            self.fork_server()
        } else {
            None
        };
        let Isolated {
            isolation,
            ro_landlock,
            record,
            ns_init,
        } = self.isolate(
            ChildRequest {
                privileges: &runtime.compiled.child,
                pid_namespace: pid_namespace_for(sc.probe.operation),
                scratch: &r.job_dir,
                host_read_only: read_only,
                read_only_inputs: &r.reads,
            },
            true,
        );
        let isolation = (isolation, ns_init);
        let mut a = match sc.probe.driver {
            Driver::Builtin => self.builtin(
                sc,
                lane,
                attempt,
                runtime,
                child_compiled,
                r.target.as_ref(),
                r.destination.as_ref(),
                env,
                cwd,
                timeout,
                grace,
                cgroup,
                isolation,
                server,
            ),
            Driver::Exec => {
                let path_var = env.as_ref().map_or_else(
                    || {
                        self.runner_env
                            .iter()
                            .find(|(k, _)| k == "PATH")
                            .map(|(_, v)| v.clone())
                    },
                    |e| e.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()),
                );
                self.exec(
                    sc,
                    lane,
                    attempt,
                    runtime,
                    child_compiled,
                    &r.argv,
                    path_var.as_deref(),
                    env,
                    cwd,
                    &r.job_dir,
                    timeout,
                    grace,
                    cgroup,
                    isolation,
                    ro_landlock,
                )
            }
        };
        if a.rusage.wall_us > 0 || a.exit_code.is_some() || a.signal.is_some() {
            a.isolation = Some(record);
        }
        a
    }

    #[allow(clippy::too_many_arguments)]
    fn builtin(
        &self,
        sc: &ScenarioRun,
        lane: Lane,
        attempt: u32,
        runtime: &ProfileRuntime,
        child_compiled: Option<&CompiledProfile>,
        target: Option<&String>,
        destination: Option<&String>,
        env: Option<Vec<(String, String)>>,
        cwd: Option<PathBuf>,
        timeout: Duration,
        grace: Duration,
        cgroup: Option<&ChildCgroup>,
        (isolation, ns_init): (Option<Isolation>, Option<Arc<NsInit>>),
        server: Option<Arc<ForkServer>>,
    ) -> Attempt {
        let child_spec;
        // The spec and, when it is one many children apply, its JSON text made once.
        let (apply, apply_text) = if lane == Lane::Scenario {
            match child_compiled {
                Some(c) => {
                    child_spec = c.apply_spec();
                    (&child_spec, None)
                }
                None => (
                    &runtime.spec,
                    runtime
                        .spec_text
                        .get_or_init(|| helper::ApplyText::of(&runtime.spec).ok())
                        .as_ref(),
                ),
            }
        } else {
            (&self.baseline.spec, self.baseline.spec_text.as_ref())
        };
        let connect_ms = (timeout.as_millis() / 2).clamp(1, 2000);
        let request = HelperRequest {
            v: helper::HELPER_VERSION,
            op: sc.probe.operation.as_str().to_string(),
            target: target.cloned(),
            destination: destination.cloned(),
            apply: Cow::Borrowed(apply),
            clean: self.clean,
            // Started through the isolating spawn, the helper joins its cgroup before it
            // drops root; otherwise it joins by path itself.
            cgroup_procs: cgroup
                .filter(|_| isolation.is_none())
                .map(|c| c.procs_path().to_string_lossy().into_owned()),
            connect_timeout_ms: u64::try_from(connect_ms).unwrap_or(2000),
            observe_runner: None,
            runner_pid: Some(self.runner_pid),
        };
        let args = match apply_text.map_or_else(|| request.to_args(), |t| request.to_args_with(t)) {
            Ok(a) => a,
            Err(e) => {
                return Attempt::without_child(
                    Outcome::Error,
                    Stage::Resolve,
                    format!("cannot serialize the probe helper request: {e}"),
                );
            }
        };
        let spec = ChildSpec {
            program: self.helper_exe.clone(),
            args,
            arg0: Some(helper::HELPER_ARG0.into()),
            env,
            cwd,
            clean: self.clean,
            pre_exec: None,
            isolation,
            ns_init,
            timeout,
            grace,
            output_cap: self.output_cap,
            stdin: None,
            server,
        };
        let res = child::run_child(&spec, self.tracking_for(cgroup).as_tracking());
        let result_line = helper::parse_line(&res.stdout.kept);
        let mut a = base_attempt(&res);
        let sid = &sc.spec.scenario_id;
        a.stdout = self.capture(
            &res.stdout,
            lane,
            sid,
            attempt,
            "stdout",
            result_line.is_some(),
        );
        a.stderr = self.capture(&res.stderr, lane, sid, attempt, "stderr", false);
        if let Ended::SpawnFailed(e) = res.ended {
            a.outcome = Outcome::Error;
            a.stage = Stage::Exec;
            a.errno = Some(e);
            a.errno_name = Some(errno_name(e));
            a.detail = format!(
                "cannot start the probe helper `{}`: {}",
                self.helper_exe.display(),
                errno_name(e)
            );
            return a;
        }
        if res.timed_out {
            timeout_attempt(&mut a, &res, timeout, grace);
            return a;
        }
        if let Some(l) = &result_line {
            apply_line(&mut a, l, lane);
        } else {
            a.outcome = Outcome::Error;
            a.stage = Stage::Operation;
            a.detail = format!(
                "the probe helper {} without a result line (a crash)",
                ended_words(&res.ended)
            );
        }
        a
    }

    #[allow(clippy::too_many_arguments)]
    fn exec(
        &self,
        sc: &ScenarioRun,
        lane: Lane,
        attempt: u32,
        runtime: &ProfileRuntime,
        child_compiled: Option<&CompiledProfile>,
        argv: &[String],
        path_var: Option<&str>,
        env: Option<Vec<(String, String)>>,
        cwd: Option<PathBuf>,
        job_dir: &Path,
        timeout: Duration,
        grace: Duration,
        cgroup: Option<&ChildCgroup>,
        (isolation, ns_init): (Option<Isolation>, Option<Arc<NsInit>>),
        ro_landlock: Option<compile::LandlockSpec>,
    ) -> Attempt {
        let Some(program_name) = argv.first() else {
            return Attempt::without_child(
                Outcome::Error,
                Stage::Resolve,
                "exec probe without argv",
            );
        };
        let base = cwd.as_deref().unwrap_or(job_dir);
        let Some(program) = child::which(program_name, path_var, base) else {
            let mut a = Attempt::without_child(
                Outcome::Error,
                Stage::Exec,
                format!("`{program_name}` was not found in PATH"),
            );
            a.errno = Some(libc::ENOENT);
            a.errno_name = Some("ENOENT".into());
            return a;
        };
        let prepared = if lane == Lane::Scenario {
            match (child_compiled, &runtime.prepared) {
                (Some(c), _) => Prepared::new(&c.apply_spec()).map(Arc::new),
                (None, Some(p)) => p.clone(),
                (None, None) => Prepared::new(&runtime.compiled.apply_spec()).map(Arc::new),
            }
        } else if let Some(ll) = ro_landlock {
            // No mount namespace here: the read-only host is a Landlock ruleset of its own.
            Prepared::new(&privilege::with_landlock(&self.baseline.spec, ll)).map(Arc::new)
        } else {
            self.baseline.prepared.clone()
        };
        let prepared = match prepared {
            Ok(p) => p,
            Err(f) => {
                let mut a = Attempt::without_child(
                    Outcome::ApplyFailed,
                    Stage::Apply,
                    format!("{} failed: {}", f.step.as_str(), f.detail),
                );
                a.errno = f.errno;
                a.errno_name = f.errno.map(errno_name);
                return a;
            }
        };
        let spec = ChildSpec {
            program: program.clone(),
            args: argv[1..].to_vec(),
            arg0: Some(program_name.clone()),
            env,
            cwd,
            clean: self.clean,
            pre_exec: Some(PreExec { prepared }),
            isolation,
            ns_init,
            timeout,
            grace,
            output_cap: self.output_cap,
            stdin: None,
            server: None,
        };
        let res = child::run_child(&spec, self.tracking_for(cgroup).as_tracking());
        let mut a = base_attempt(&res);
        let sid = &sc.spec.scenario_id;
        a.stdout = self.capture(&res.stdout, lane, sid, attempt, "stdout", false);
        a.stderr = self.capture(&res.stderr, lane, sid, attempt, "stderr", false);
        if lane == Lane::Scenario {
            a.enforcement.clone_from(&runtime.enforcement);
        }
        if res.timed_out {
            timeout_attempt(&mut a, &res, timeout, grace);
            return a;
        }
        let end = match res.ended {
            Ended::SpawnFailed(e) => ExecEnd::SpawnFailed(e),
            Ended::SetupFailed(..) => ExecEnd::SetupFailed,
            Ended::Exited(c) => ExecEnd::Exited(c),
            Ended::Signaled(s) => ExecEnd::Signaled(s),
        };
        let allow = sc.probe.allow_exit_codes.clone().unwrap_or_else(|| vec![0]);
        let deny = sc.probe.deny_exit_codes.clone().unwrap_or_default();
        let (outcome, stage) = classify_exec(&end, &allow, &deny);
        a.outcome = outcome;
        a.stage = stage;
        a.detail = match res.ended {
            Ended::SpawnFailed(e) => {
                a.errno = Some(e);
                a.errno_name = Some(errno_name(e));
                if outcome == Outcome::Deny {
                    format!(
                        "execve of `{}` was refused: {}",
                        program.display(),
                        errno_name(e)
                    )
                } else {
                    format!("cannot start `{}`: {}", program.display(), errno_name(e))
                }
            }
            Ended::SetupFailed(step, e) => {
                a.errno = Some(e);
                a.errno_name = Some(errno_name(e));
                format!(
                    "setup step `{}` failed in the child: {}",
                    step.as_str(),
                    errno_name(e)
                )
            }
            Ended::Exited(c) => {
                let kind = if allow.contains(&c) {
                    "an allow code"
                } else if deny.contains(&c) {
                    "a deny code"
                } else {
                    "neither an allow nor a deny code"
                };
                format!("exit code {c} ({kind})")
            }
            Ended::Signaled(s) => match signal_meaning(s) {
                Some(m) => format!("killed by {}: {m}", signal_name(s)),
                None => format!("killed by {}", signal_name(s)),
            },
        };
        a
    }
}

impl LiveExecutor<'_> {
    /// One attempt of a mission worker: stage its directories and executable, resolve its
    /// inputs and write its request, start it through the exec spawn path under the
    /// task's profile (compiled for this child: `${OUTPUT}` and `${WORKER_BIN}` exist now) with
    /// the request as stdin, then judge its result, files and the workspace, and copy the
    /// verified files into the bundle (`artifacts/<task>/…`, scenario lane).
    fn observe_worker(
        &self,
        sc: &ScenarioRun,
        run: &WorkerRun,
        lane: Lane,
        attempt: u32,
    ) -> LaneAttempt {
        let task = sc
            .task
            .as_ref()
            .map_or_else(|| sc.spec.probe_id.to_string(), |t| t.task_id.clone());
        let identity = run.worker.identity();
        let observation = |fault: Option<WorkerFault>,
                           inputs_digest: Digest,
                           result: Option<WorkerResult>,
                           artifacts: Vec<Artifact>| {
            Some(Box::new(WorkerObservation {
                worker: identity.clone(),
                inputs: BTreeMap::new(),
                inputs_digest,
                consumed: BTreeMap::new(),
                fault,
                result,
                artifacts,
            }))
        };
        let not_started = |outcome: Outcome, stage: Stage, fault: WorkerFault, why: String| {
            let mut a = Attempt::without_child(
                outcome,
                stage,
                format!("worker `{}`: {}: {why}", run.worker.name, fault.as_str()),
            );
            a.worker = observation(
                Some(fault),
                worker::inputs_digest(&BTreeMap::new()),
                None,
                Vec::new(),
            );
            LaneAttempt::without_child(a)
        };
        let Some(runtime) = self.profiles.get(sc.spec.profile_id.as_str()) else {
            return not_started(
                Outcome::Error,
                Stage::Resolve,
                WorkerFault::NotStarted,
                "profile not compiled".into(),
            );
        };
        let staged = mission_workspace(self.scratch, lane)
            .map_err(|e| (WorkerFault::NotStarted, e.to_string()))
            .and_then(|ws| worker::stage(self.scratch.root(), &ws, lane, run, &task));
        let dirs = match staged {
            Ok(d) => d,
            Err((f, why)) => return not_started(Outcome::Error, Stage::Resolve, f, why),
        };
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let ws = s(&dirs.workspace);
        let home = if self.clean {
            ws.clone()
        } else {
            self.runner_env
                .iter()
                .find(|(k, _)| k == "HOME")
                .map_or_else(|| ws.clone(), |(_, v)| v.clone())
        };
        let (out_s, bin_s) = (s(&dirs.output), s(&dirs.bin_dir));
        let vars = self
            .vars
            .with(&[
                ("SCRATCH", ws.as_str()),
                ("HOME", home.as_str()),
                ("OUTPUT", out_s.as_str()),
                ("WORKER_BIN", bin_s.as_str()),
            ])
            .nested();
        let (inputs, consumed) = match worker::resolve_inputs(run, &vars, &dirs.workspace) {
            Ok(x) => x,
            Err((f, why)) => return not_started(Outcome::Error, Stage::Resolve, f, why),
        };
        let symbolic = worker::symbolic_inputs(&inputs, &dirs.workspace);
        let inputs_digest = worker::inputs_digest(&symbolic);
        let request = WorkerRequest {
            protocol: WORKER_PROTOCOL,
            run_id: self.run_id.clone(),
            plan_id: self.plan_id.clone(),
            task_id: task.clone(),
            worker: run.worker.name.to_string(),
            inputs,
            output_dir: out_s.clone(),
            workspace: ws.clone(),
        };
        let written = crate::util::json::to_sorted_pretty(&request)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                worker::write_file(&dirs.request, &b, 0o444)
                    .map_err(|e| format!("cannot write `{}`: {e}", dirs.request.display()))
            });
        if let Err(why) = written {
            return not_started(Outcome::Error, Stage::Resolve, WorkerFault::NotStarted, why);
        }
        let argv: Vec<String> = match sc
            .probe
            .argv
            .iter()
            .flatten()
            .map(|a| vars.expand(a).map_err(|e| e.message))
            .collect::<std::result::Result<_, _>>()
        {
            Ok(a) => a,
            Err(why) => {
                return not_started(Outcome::Error, Stage::Resolve, WorkerFault::NotStarted, why);
            }
        };
        let child_compiled = if runtime.compiled.per_child {
            match runtime.compile_for_child(sc, &vars) {
                Ok(c) => Some(c),
                Err(e) => {
                    return not_started(
                        Outcome::ApplyFailed,
                        Stage::Apply,
                        WorkerFault::SpawnFailed,
                        format!("the profile cannot be compiled for this child: {e}"),
                    );
                }
            }
        } else {
            None
        };
        let compiled = child_compiled.as_ref().unwrap_or(&runtime.compiled);
        if let Some(e) = &compiled.apply_error {
            return not_started(
                Outcome::ApplyFailed,
                Stage::Apply,
                WorkerFault::SpawnFailed,
                format!("the profile cannot be applied on this host: {e}"),
            );
        }
        let prepared = match (&child_compiled, &runtime.prepared) {
            (Some(c), _) => Prepared::new(&c.apply_spec()).map(Arc::new),
            (None, Some(p)) => p.clone(),
            (None, None) => Prepared::new(&runtime.compiled.apply_spec()).map(Arc::new),
        };
        let prepared = match prepared {
            Ok(p) => p,
            Err(f) => {
                return not_started(
                    Outcome::ApplyFailed,
                    Stage::Apply,
                    WorkerFault::SpawnFailed,
                    format!("{} failed: {}", f.step.as_str(), f.detail),
                );
            }
        };
        let cgroup = match self.new_cgroup(compiled, lane) {
            Ok(c) => c,
            Err(why) => {
                return not_started(
                    Outcome::ApplyFailed,
                    Stage::Apply,
                    WorkerFault::SpawnFailed,
                    why,
                );
            }
        };
        let who = &runtime.compiled.child;
        if who.applied
            && who.identity
            && let Err(why) = chown_tree(&dirs.workspace, who.uid, who.gid)
        {
            return not_started(Outcome::Error, Stage::Resolve, WorkerFault::NotStarted, why);
        }
        // The same isolation as any exec child: its workspace is its scratch. A worker runs
        // under its task's profile in both lanes, so the baseline's read-only host is only
        // given by mounts (a Landlock one would replace the profile's).
        let Isolated {
            isolation,
            record,
            ns_init,
            ..
        } = self.isolate(
            ChildRequest {
                privileges: who,
                pid_namespace: Ok(()),
                scratch: &dirs.workspace,
                host_read_only: lane == Lane::Baseline
                    && who.baseline_host_read_only == privilege::RO_MOUNT_NAMESPACE,
                read_only_inputs: &[],
            },
            false,
        );
        let timeout = Duration::from_millis(sc.timeout.ms);
        let grace = Duration::from_millis(sc.timeout.kill_grace_ms);
        let spec = ChildSpec {
            program: dirs.exe.clone(),
            args: argv.iter().skip(1).cloned().collect(),
            arg0: argv.first().cloned(),
            env: self.child_env(&compiled.env, &dirs.workspace),
            cwd: Some(dirs.output.clone()),
            clean: self.clean,
            pre_exec: Some(PreExec { prepared }),
            isolation,
            ns_init,
            timeout,
            grace,
            output_cap: self.output_cap.max(MAX_RESULT_BYTES + 1),
            stdin: Some(dirs.request.clone()),
            server: None,
        };
        let before = worker::Snapshot::take(&dirs.workspace, &dirs.output);
        let res = child::run_child(&spec, self.tracking_for(cgroup.as_ref()).as_tracking());
        let changed = before.changed(&worker::Snapshot::take(&dirs.workspace, &dirs.output));
        let mut judged = worker::judge(&res, &dirs.output, &changed);
        let mut a = base_attempt(&res);
        a.attempt = attempt;
        if res.pid != 0 {
            a.isolation = Some(record);
        }
        let sid = &sc.spec.scenario_id;
        a.stdout = self.capture(&res.stdout, lane, sid, attempt, "stdout", false);
        a.stderr = self.capture(&res.stderr, lane, sid, attempt, "stderr", false);
        if lane == Lane::Scenario {
            a.enforcement.clone_from(&runtime.enforcement);
        }
        a.processes = account_processes(cgroup, compiled, lane == Lane::Scenario);
        let mut artifacts = Vec::new();
        if judged.fault.is_none() && lane == Lane::Scenario {
            match self.copy_artifacts(&task, &judged.files) {
                Ok(list) => artifacts = list,
                Err(f) => judged.fault = Some(f),
            }
        }
        let name = &run.worker.name;
        match &judged.fault {
            None => {
                a.outcome = Outcome::Allow;
                a.stage = Stage::Operation;
                let msg = judged
                    .result
                    .as_ref()
                    .and_then(|r| r.message.clone())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                a.detail = format!(
                    "worker `{name}` did its work ({} file(s)){msg}",
                    judged.files.len()
                );
            }
            Some((fault, why)) => {
                if *fault == WorkerFault::TimedOut {
                    timeout_attempt(&mut a, &res, timeout, grace);
                } else {
                    a.outcome = Outcome::Error;
                    a.stage = match fault {
                        WorkerFault::SpawnFailed => Stage::Exec,
                        _ => Stage::Operation,
                    };
                }
                if let Ended::SetupFailed(_, e) | Ended::SpawnFailed(e) = res.ended {
                    a.errno = Some(e);
                    a.errno_name = Some(errno_name(e));
                    if matches!(res.ended, Ended::SetupFailed(..)) {
                        a.outcome = Outcome::ApplyFailed;
                        a.stage = Stage::Apply;
                    }
                }
                a.detail = format!("worker `{name}`: {}: {why}", fault.as_str());
            }
        }
        a.worker = observation(
            judged.fault.as_ref().map(|f| f.0),
            inputs_digest,
            judged.result.take(),
            artifacts,
        );
        if let Some(w) = a.worker.as_mut() {
            w.consumed = consumed;
            w.inputs = symbolic;
        }
        LaneAttempt {
            attempt: a,
            target: None,
            argv,
        }
    }

    /// Copy verified files into the bundle at `artifacts/<task>/<name>`, reading each once
    /// more and refusing one whose bytes changed since it was verified.
    fn copy_artifacts(
        &self,
        task: &str,
        files: &[worker::Verified],
    ) -> std::result::Result<Vec<Artifact>, worker::Failure> {
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let (bytes, digest) = worker::read_bounded(&f.path)
                .map_err(|why| (WorkerFault::MissingOutput, format!("`{}` {why}", f.name)))?;
            if digest != f.digest {
                return Err((
                    WorkerFault::OutputDigestMismatch,
                    format!("`{}` changed after it was verified", f.name),
                ));
            }
            let member = format!("artifacts/{task}/{}", f.name);
            if self.write_log(member.clone(), &bytes).is_none() && self.logs.is_some() {
                return Err((
                    WorkerFault::NotStarted,
                    format!("`{}` could not be written into the bundle", f.name),
                ));
            }
            out.push(Artifact {
                name: f.name.clone(),
                member,
                size: f.size,
                digest,
                media_type: f.media_type.clone(),
            });
        }
        Ok(out)
    }
}

/// The tracking of one child: its own cgroup, or its worker's.
enum ChildTracking<'a> {
    None,
    Child(&'a ChildCgroup),
    Worker(Rc<WorkerCgroup>),
}

impl ChildTracking<'_> {
    fn as_tracking(&self) -> Tracking<'_> {
        match self {
            ChildTracking::None => Tracking::None,
            ChildTracking::Child(c) => Tracking::Child(c),
            ChildTracking::Worker(w) => Tracking::Worker(w),
        }
    }
}

thread_local! {
    /// This worker thread's own cgroup, for the run directory it was made under.
    static WORKER_CGROUP: RefCell<Option<(PathBuf, Option<Rc<WorkerCgroup>>)>> =
        const { RefCell::new(None) };
}

impl LiveExecutor<'_> {
    /// The calling worker thread's cgroup (created and joined on first use; v1 only).
    fn worker_cgroup(&self) -> Option<Rc<WorkerCgroup>> {
        let (dir, v1) = self.tracking.as_ref()?;
        if !*v1 {
            return None;
        }
        WORKER_CGROUP.with(|slot| {
            let mut slot = slot.borrow_mut();
            if let Some((d, w)) = slot.as_ref()
                && d == dir
            {
                return w.clone();
            }
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let w = WorkerCgroup::join_current_thread(dir, &format!("w{n}"))
                .ok()
                .map(Rc::new);
            *slot = Some((dir.clone(), w.clone()));
            w
        })
    }

    fn tracking_for<'c>(&self, child: Option<&'c ChildCgroup>) -> ChildTracking<'c> {
        // The worker joins its cgroup before its first child in any case, so a keeper it
        // makes later (`spawn::dedicate_thread`) is born there and starts the fork server
        // there.
        let worker = self.worker_cgroup();
        match child {
            Some(c) => ChildTracking::Child(c),
            None => worker.map_or(ChildTracking::None, ChildTracking::Worker),
        }
    }
}

impl ProbeExecutor for LiveExecutor<'_> {
    fn observe(&self, sc: &ScenarioRun, lane: Lane, attempt: u32) -> LaneAttempt {
        self.observe_inner(sc, lane, attempt)
    }

    /// End the fork servers (each reaped here, before the final leak sweep).
    fn finish(&self) {
        self.finish_servers();
    }

    fn threads(&self) -> Option<&rayon::ThreadPool> {
        self.workers.as_ref().map(|(p, _)| p)
    }
}

impl LiveExecutor<'_> {
    /// End every fork server (each reaps its last child first) and wait for them.
    pub fn finish_servers(&self) {
        let servers = self
            .servers
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        // Every server is told to end before any is waited for: they exit together.
        for (_, s) in &servers {
            s.retire();
        }
        drop(servers);
    }
}

fn base_attempt(res: &ChildResult) -> Attempt {
    let mut a = Attempt::without_child(Outcome::Error, Stage::Operation, "");
    a.rusage = res.rusage;
    a.leaked.clone_from(&res.leaked);
    if res.pid != 0 {
        a.trace = Some(crate::model::results::ChildTrace {
            pid: res.pid,
            started_ms: res.lived_ms.0,
            ended_ms: res.lived_ms.1,
        });
    }
    match res.ended {
        Ended::Exited(c) => a.exit_code = Some(c),
        Ended::Signaled(s) => a.signal = Some(signal_name(s)),
        _ => {}
    }
    a
}

fn timeout_attempt(a: &mut Attempt, res: &ChildResult, timeout: Duration, grace: Duration) {
    a.outcome = Outcome::Timeout;
    a.stage = Stage::Timeout;
    let how = match res.ended {
        Ended::Signaled(s) if s == libc::SIGKILL => format!(
            "SIGTERM to its process group, then SIGKILL after the {} ms grace",
            grace.as_millis()
        ),
        Ended::Signaled(s) => format!("{} to its process group", signal_name(s)),
        _ => "it exited during the grace period".to_string(),
    };
    a.detail = format!("killed at the {} ms timeout ({how})", timeout.as_millis());
}

fn apply_line(a: &mut Attempt, l: &HelperLine, lane: Lane) {
    a.outcome = l.outcome;
    a.stage = l.stage;
    a.errno = l.errno;
    a.errno_name.clone_from(&l.errno_name);
    a.detail.clone_from(&l.detail);
    a.resolved_path.clone_from(&l.resolved_path);
    if lane == Lane::Scenario
        && let Some(e) = &l.enforcement
    {
        a.enforcement = Some(Enforcement {
            ruleset: e.ruleset,
            abi: e.abi,
            no_new_privs: e.no_new_privs,
            seccomp: e.seccomp,
            reported_by: "helper".into(),
        });
    }
    a.witness = l.to_value();
}

fn ended_words(e: &Ended) -> String {
    match e {
        Ended::Exited(c) => format!("exited with code {c}"),
        Ended::Signaled(s) => format!("was killed by {}", signal_name(*s)),
        Ended::SpawnFailed(e) => format!("could not start ({})", errno_name(*e)),
        Ended::SetupFailed(step, e) => {
            format!("failed setup {} ({})", step.as_str(), errno_name(*e))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::chown_tree;

    /// A probe that [`super::needs_vars`] says reads no variable resolves exactly as with
    /// the child's variables: generated probes (texts of `$`, braces, names defined and
    /// undefined, plain characters; fixtures or none) give the same target, destination,
    /// argv and reads (or the same error) through the empty set as through the full one,
    /// and every probe with a `$` anywhere, or a fixture, is said to need them.
    #[test]
    fn a_probe_without_a_dollar_resolves_the_same_without_the_variables() {
        use crate::sandbox::vars::Vars;
        use crate::util::testrng::Rng;
        let mut run = Vars::new();
        run.set("RUNNER_PID", "4242");
        run.set("PORT_A", "8080");
        run.set("NESTED", "${SCRATCH}/sub");
        let full = super::child_vars(&run, "/dev/shm/nexusmon-x/scenario/p/q.a1", "/home/h");
        let empty = Vars::new();
        let parts = [
            "$",
            "{",
            "}",
            "${",
            "$${",
            "SCRATCH",
            "HOME",
            "NESTED",
            "RUNNER_PID",
            "UNDEFINED",
            "/etc/",
            "a",
            "-",
            ".",
            " ",
            "é",
        ];
        let text =
            |rng: &mut Rng| -> String { (0..rng.below(7u64)).map(|_| *rng.pick(&parts)).collect() };
        let (mut quiet, mut loud) = (0, 0);
        for seed in 0..2000u64 {
            let mut rng = Rng(seed);
            let mut probe = serde_json::json!({"operation": "exec", "driver": "exec"});
            if rng.chance(70) {
                probe["target"] = text(&mut rng).into();
            }
            if rng.chance(30) {
                probe["destination"] = text(&mut rng).into();
            }
            if rng.chance(50) {
                let n = rng.below(4u64);
                probe["argv"] = (0..n).map(|_| text(&mut rng)).collect::<Vec<_>>().into();
            }
            if rng.chance(30) {
                let n = rng.below(3u64);
                probe["reads"] = (0..n).map(|_| text(&mut rng)).collect::<Vec<_>>().into();
            }
            let fixtures = rng.chance(10);
            if fixtures {
                probe["fixtures"] = serde_json::json!([{"kind": "file", "path": "${SCRATCH}/f"}]);
            }
            let p: crate::model::registry::Probe = serde_json::from_value(probe.clone()).unwrap();
            let texts: Vec<&String> = p
                .target
                .iter()
                .chain(&p.destination)
                .chain(p.argv.iter().flatten())
                .chain(&p.reads)
                .collect();
            let dollar = texts.iter().any(|t| t.contains('$'));
            assert_eq!(
                super::needs_vars(&p),
                dollar || fixtures,
                "seed {seed}: {probe}"
            );
            if super::needs_vars(&p) {
                loud += 1;
                continue;
            }
            quiet += 1;
            for t in texts {
                assert_eq!(empty.expand(t), full.expand(t), "seed {seed}: `{t}`");
                assert_eq!(empty.expand(t).as_deref(), Ok(t.as_str()));
            }
        }
        assert!(
            quiet > 200 && loud > 200,
            "both kinds generated: {quiet} {loud}"
        );
    }

    /// What an earlier child left in a shared workspace cannot make the runner hand a host
    /// file over: a hard link to it and a symlink to it are left alone, the child's own
    /// files and directories are given to the identity.
    #[test]
    fn handing_a_scratch_over_never_reaches_a_host_file() {
        let host = tempfile::tempdir().unwrap();
        let outside = host.path().join("secret");
        std::fs::write(&outside, "x").unwrap();
        let ws = tempfile::tempdir_in(host.path()).unwrap();
        std::fs::create_dir(ws.path().join("d")).unwrap();
        std::fs::write(ws.path().join("d/own"), "y").unwrap();
        std::fs::hard_link(&outside, ws.path().join("d/hard")).unwrap();
        std::os::unix::fs::symlink(&outside, ws.path().join("link")).unwrap();
        std::os::unix::fs::symlink(host.path(), ws.path().join("dirlink")).unwrap();
        let before = std::fs::metadata(&outside).unwrap();
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            // Not root: handing over fails, naming the path.
            let e = chown_tree(ws.path(), 65534, 65534).unwrap_err();
            assert!(e.contains(&ws.path().display().to_string()), "{e}");
            return;
        }
        chown_tree(ws.path(), 65534, 65534).unwrap();
        let after = std::fs::metadata(&outside).unwrap();
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        for own in ["", "d", "d/own"] {
            let m = std::fs::symlink_metadata(ws.path().join(own)).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{own}");
        }
        let host_dir = std::fs::metadata(host.path()).unwrap();
        assert_eq!(
            host_dir.uid(),
            before.uid(),
            "the directory a symlink names"
        );
    }
}
