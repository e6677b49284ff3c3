//! The builtin probe helper: `nexusmon __probe '<request json>'`, a hidden mode of the same
//! binary. The runner starts it with a plain spawn (no `pre_exec`, so `posix_spawn`); the
//! helper
//! 1. on the clean channel: `setsid`, umask 022, closes every descriptor above 2;
//! 2. resolves the target (before any restriction, so the witness is exact);
//! 3. joins the probe's pids cgroup if it has one;
//! 4. restricts itself from the compiled profile (rlimits, no-new-privs, Landlock from the
//!    same [`ApplySpec`] the exec driver uses, seccomp last);
//! 5. performs exactly one operation and prints exactly one JSON line:
//!    `{"v":1,"op","target","resolved_path","outcome","stage","errno","errno_name","detail",
//!    "enforcement":{"ruleset","abi","no_new_privs","seccomp"}}`.
//!
//! Exit codes: 0 allow, 1 deny, 2 error, 3 bad request, 125 apply failed. The JSON line is
//! authoritative; the runner treats a missing line as a crash. Operations are
//! non-destructive where the kernel's check allows it: `file-write` opens for writing and
//! writes nothing, `file-truncate` truncates to the current size, `file-chmod`/`file-chown`/
//! `file-utime` set the current values (Landlock decides at open/truncate time).

use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::io::Write;

use serde::{Deserialize, Serialize};

use super::outcome::{classify_errno, errno_name};
use crate::model::registry::Operation;
use crate::model::results::{ChildSelf, Outcome, RulesetStatus, Stage};
use crate::sandbox::apply::{self, errno};
use crate::sandbox::compile::ApplySpec;

/// Version of the helper's request and result line.
pub const HELPER_VERSION: u32 = 1;

/// Exit code of the helper when the profile could not be applied.
pub const EXIT_APPLY_FAILED: i32 = 125;

/// The helper's mode argument: `nexusmon __probe '<request json>'`.
pub const HELPER_MODE: &str = "__probe";

/// The helper's `argv[0]` (what `ps` and the leak sweeper see).
pub const HELPER_ARG0: &str = "nexusmon-probe";

/// What the runner asks the helper to do: built by the runner ([`HelperRequest::to_args`])
/// and parsed by the helper ([`main`]) from this one type. Absent optional fields are
/// written as `null` (the helper accepts them absent too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperRequest<'a> {
    /// [`HELPER_VERSION`].
    pub v: u32,
    /// The operation, or `noop` (apply only; the preflight).
    pub op: String,
    /// The expanded target.
    #[serde(default)]
    pub target: Option<String>,
    /// The expanded destination (`file-rename`, `symlink-create` link content).
    #[serde(default)]
    pub destination: Option<String>,
    /// What to apply before the operation (borrowed by the runner, owned by the helper).
    pub apply: Cow<'a, ApplySpec>,
    /// Clean channel: setsid, umask 022, close descriptors above 2.
    #[serde(default)]
    pub clean: bool,
    /// `cgroup.procs` of the probe's pids cgroup, joined before restricting.
    #[serde(default)]
    pub cgroup_procs: Option<String>,
    /// Connect timeout for network operations, milliseconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// The preflight: report what the helper sees about itself (pid, uid, gid,
    /// capabilities) and about the runner with this pid (`/proc/<pid>`, its `environ`),
    /// before restricting itself. Written only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observe_runner: Option<u32>,
    /// The runner's pid: a helper whose parent is no longer it (the runner died before the
    /// helper set its parent-death signal) exits at once instead of running orphaned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_pid: Option<u32>,
}

impl HelperRequest<'_> {
    /// The helper's arguments after the program: [`HELPER_MODE`] and the request as one
    /// line of JSON.
    pub fn to_args(&self) -> serde_json::Result<Vec<String>> {
        Ok(vec![HELPER_MODE.to_string(), serde_json::to_string(self)?])
    }

    /// [`Self::to_args`] with `apply` given as its JSON text already ([`ApplyText`] of
    /// this request's `apply`, serialized once per profile instead of once per child):
    /// the same bytes, member by member in the derived order (the tests hold the two to
    /// each other on generated requests).
    pub fn to_args_with(&self, apply: &ApplyText) -> serde_json::Result<Vec<String>> {
        let mut o: Vec<u8> = Vec::with_capacity(apply.0.len() + 256);
        // Writes into a Vec cannot fail.
        let _ = write!(o, "{{\"v\":{},\"op\":", self.v);
        serde_json::to_writer(&mut o, &self.op)?;
        o.extend_from_slice(b",\"target\":");
        serde_json::to_writer(&mut o, &self.target)?;
        o.extend_from_slice(b",\"destination\":");
        serde_json::to_writer(&mut o, &self.destination)?;
        o.extend_from_slice(b",\"apply\":");
        o.extend_from_slice(apply.0.as_bytes());
        let _ = write!(o, ",\"clean\":{},\"cgroup_procs\":", self.clean);
        serde_json::to_writer(&mut o, &self.cgroup_procs)?;
        let _ = write!(o, ",\"connect_timeout_ms\":{}", self.connect_timeout_ms);
        if let Some(p) = self.observe_runner {
            let _ = write!(o, ",\"observe_runner\":{p}");
        }
        if let Some(p) = self.runner_pid {
            let _ = write!(o, ",\"runner_pid\":{p}");
        }
        o.push(b'}');
        let text = String::from_utf8(o).map_err(|_| {
            <serde_json::Error as serde::ser::Error>::custom("the request is not UTF-8")
        })?;
        Ok(vec![HELPER_MODE.to_string(), text])
    }
}

/// An [`ApplySpec`]'s JSON text (what [`HelperRequest::to_args`] writes for `apply`), made
/// once for a spec that many children apply: pure computation, cached beside the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyText(String);

impl ApplyText {
    /// The text of `spec`.
    pub fn of(spec: &ApplySpec) -> serde_json::Result<Self> {
        serde_json::to_string(spec).map(Self)
    }
}

fn default_connect_timeout() -> u64 {
    2000
}

/// The enforcement the helper observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperEnforcement {
    /// Landlock's status from `restrict_self`.
    pub ruleset: RulesetStatus,
    /// The kernel's Landlock ABI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abi: Option<u8>,
    /// `no_new_privs` was set.
    pub no_new_privs: bool,
    /// A seccomp filter was installed.
    pub seccomp: bool,
}

/// The helper's one result line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperLine {
    /// [`HELPER_VERSION`].
    pub v: u32,
    /// The operation.
    pub op: String,
    /// The target as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The path the operation acted on (symlinks resolved as the operation resolves them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_path: Option<String>,
    /// The outcome.
    pub outcome: Outcome,
    /// Where it ended.
    pub stage: Stage,
    /// The errno.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_name: Option<String>,
    /// Human detail.
    #[serde(default)]
    pub detail: String,
    /// What was enforced (absent if the apply failed before restricting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<HelperEnforcement>,
    /// What the helper saw about itself (when the request asks: the preflight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_self: Option<ChildSelf>,
}

impl HelperLine {
    /// The line as a JSON value: what `serde_json::to_value` gives (`None` where that
    /// fails), built member by member without the serializer's round trip per member (the
    /// runner keeps it per attempt as the witness; the tests hold the two to each other on
    /// generated lines).
    pub fn to_value(&self) -> Option<serde_json::Value> {
        use serde_json::{Map, Value};
        // Every member named: a member added to the line must be added here too.
        let Self {
            v,
            op,
            target,
            resolved_path,
            outcome,
            stage,
            errno,
            errno_name,
            detail,
            enforcement,
            child_self,
        } = self;
        let mut m = Map::new();
        let text = |s: &String| Value::String(s.clone());
        m.insert("v".into(), Value::from(*v));
        m.insert("op".into(), text(op));
        if let Some(t) = target {
            m.insert("target".into(), text(t));
        }
        if let Some(p) = resolved_path {
            m.insert("resolved_path".into(), text(p));
        }
        m.insert("outcome".into(), Value::from(outcome.as_str()));
        m.insert("stage".into(), Value::from(stage.as_str()));
        if let Some(e) = errno {
            m.insert("errno".into(), Value::from(*e));
        }
        if let Some(n) = errno_name {
            m.insert("errno_name".into(), text(n));
        }
        m.insert("detail".into(), text(detail));
        if let Some(HelperEnforcement {
            ruleset,
            abi,
            no_new_privs,
            seccomp,
        }) = enforcement
        {
            let mut e = Map::new();
            e.insert("ruleset".into(), Value::from(ruleset.as_str()));
            if let Some(a) = abi {
                e.insert("abi".into(), Value::from(*a));
            }
            e.insert("no_new_privs".into(), Value::Bool(*no_new_privs));
            e.insert("seccomp".into(), Value::Bool(*seccomp));
            m.insert("enforcement".into(), Value::Object(e));
        }
        if let Some(c) = child_self {
            m.insert("child_self".into(), serde_json::to_value(c).ok()?);
        }
        Some(Value::Object(m))
    }
}

/// Run the helper with its raw arguments; returns its exit code.
pub fn main(args: &[String], out: &mut dyn Write) -> i32 {
    match parse(args) {
        Ok(req) => respond(&req, out),
        Err(msg) => emit_usage(out, &msg),
    }
}

/// The request in the helper's arguments (after the mode).
pub fn parse(args: &[String]) -> Result<HelperRequest<'static>, String> {
    match args
        .first()
        .map(|a| serde_json::from_str::<HelperRequest>(a))
    {
        Some(Ok(r)) if r.v == HELPER_VERSION => Ok(r),
        Some(Ok(r)) => Err(format!("unsupported helper request version {}", r.v)),
        Some(Err(e)) => Err(format!("bad helper request: {e}")),
        None => Err("missing helper request (internal mode of `nexusmon run`)".into()),
    }
}

/// A request as the bytes of the helper's one argument (what the fork server receives:
/// the same JSON, parsed as [`parse`] parses it).
pub fn parse_request(bytes: &[u8]) -> Result<HelperRequest<'static>, String> {
    match serde_json::from_slice::<HelperRequest>(bytes) {
        Ok(r) if r.v == HELPER_VERSION => Ok(r),
        Ok(r) => Err(format!("unsupported helper request version {}", r.v)),
        Err(e) => Err(format!("bad helper request: {e}")),
    }
}

/// The line of a request whose arguments did not parse; returns the exit code.
pub fn emit_bad_request(out: &mut dyn Write, msg: &str) -> i32 {
    emit_usage(out, msg)
}

/// Perform a parsed request and print its one line; returns the exit code.
pub fn respond(req: &HelperRequest<'_>, out: &mut dyn Write) -> i32 {
    respond_with(req, Known::default(), out)
}

/// What the process that starts the helper's code has done or learned for it already (a
/// fork server's child: `exec::forkserver`), so that it is not done twice per child.
#[derive(Debug, Default, Clone, Copy)]
pub struct Known {
    /// The parent-death signal is set, and the parent was checked to be alive after it.
    pub parent_death_set: bool,
    /// The kernel's Landlock ABI as [`crate::sandbox::host::landlock_abi`] gives it
    /// (`None`: not known, queried here).
    pub abi: Option<Option<u8>>,
}

/// [`respond`], with what is [`Known`] already.
pub fn respond_with(req: &HelperRequest<'_>, known: Known, out: &mut dyn Write) -> i32 {
    let line = run_with(req, known);
    let code = match (line.outcome, line.stage) {
        (_, Stage::Apply) => EXIT_APPLY_FAILED,
        (Outcome::Allow, _) => 0,
        (Outcome::Deny, _) => 1,
        _ => 2,
    };
    let mut text = serde_json::to_string(&line).unwrap_or_else(|_| {
        "{\"v\":1,\"outcome\":\"error\",\"stage\":\"operation\",\"detail\":\"cannot serialize\"}"
            .into()
    });
    // One write: the line and its end together.
    text.push('\n');
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    code
}

fn emit_usage(out: &mut dyn Write, msg: &str) -> i32 {
    let line = HelperLine {
        v: HELPER_VERSION,
        op: String::new(),
        target: None,
        resolved_path: None,
        outcome: Outcome::Error,
        stage: Stage::Resolve,
        errno: None,
        errno_name: None,
        detail: msg.to_string(),
        enforcement: None,
        child_self: None,
    };
    let _ = writeln!(out, "{}", serde_json::to_string(&line).unwrap_or_default());
    3
}

/// Everything prepared before restricting (no allocation needed after, except the result).
struct Prepared {
    op: Option<Operation>,
    target: Option<CString>,
    destination: Option<CString>,
    resolved: Option<String>,
    sockaddr: Option<SockAddr>,
    pid: Option<i32>,
}

/// Perform the request; never panics, always returns a line.
pub fn run(req: &HelperRequest<'_>) -> HelperLine {
    run_with(req, Known::default())
}

/// [`run`], with what is [`Known`] already.
fn run_with(req: &HelperRequest<'_>, known: Known) -> HelperLine {
    let mut line = HelperLine {
        v: HELPER_VERSION,
        op: req.op.clone(),
        target: req.target.clone(),
        resolved_path: None,
        outcome: Outcome::Error,
        stage: Stage::Resolve,
        errno: None,
        errno_name: None,
        detail: String::new(),
        enforcement: None,
        child_self: None,
    };
    // Die with the runner's worker thread (it outlives every child it waits for). If the
    // runner died before this, the signal will never come: the parent is someone else now.
    // (A fork server's child set it, and checked its server, before this code.)
    if !known.parent_death_set {
        // SAFETY: prctl and getppid with integer arguments.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            // Pid 1 of its own PID namespace, the helper's parent is outside it (`getppid`
            // is 0); the spawn checked the runner before `execve`, and the parent-death
            // signal it set is kept across it.
            let ppid = libc::getppid();
            if let Some(p) = req.runner_pid
                && ppid != 0
                && u32::try_from(ppid).ok() != Some(p)
            {
                libc::_exit(EXIT_APPLY_FAILED);
            }
        }
    }
    if req.clean {
        // SAFETY: plain syscalls on our own process.
        unsafe {
            libc::setsid();
            libc::umask(0o022);
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        }
    }
    let prepared = match prepare(req) {
        Ok(p) => p,
        Err(msg) => {
            line.detail = msg;
            return line;
        }
    };
    line.resolved_path.clone_from(&prepared.resolved);
    if let Some(runner) = req.observe_runner {
        line.child_self = Some(observe_self(runner));
    }

    if let Some(procs) = &req.cgroup_procs
        && let Err(e) = std::fs::write(procs, b"0")
    {
        line.stage = Stage::Apply;
        line.outcome = Outcome::ApplyFailed;
        line.errno = e.raw_os_error();
        line.errno_name = e.raw_os_error().map(errno_name);
        line.detail = format!("cannot join the pids cgroup `{procs}`: {e}");
        return line;
    }
    match apply::apply_self(&req.apply) {
        Ok(applied) => {
            line.enforcement = Some(HelperEnforcement {
                ruleset: applied.ruleset,
                abi: known
                    .abi
                    .unwrap_or_else(|| crate::sandbox::host::landlock_abi().ok()),
                no_new_privs: applied.no_new_privs,
                seccomp: applied.seccomp,
            });
        }
        Err(f) => {
            line.stage = Stage::Apply;
            line.outcome = Outcome::ApplyFailed;
            line.errno = f.errno;
            line.errno_name = f.errno.map(errno_name);
            line.detail = format!("{} failed: {}", f.step.as_str(), f.detail);
            return line;
        }
    }
    line.stage = Stage::Operation;
    let Some(op) = prepared.op else {
        line.outcome = Outcome::Allow;
        line.detail = "applied; no operation (noop)".into();
        return line;
    };
    let (err, detail) = perform(op, &prepared, req.connect_timeout_ms);
    line.outcome = classify_errno(op, err);
    if err != 0 {
        line.errno = Some(err);
        line.errno_name = Some(errno_name(err));
    }
    line.detail = detail;
    line
}

/// What this process is (from `/proc/self/status`, as its own `/proc` shows it) and
/// whether it can see the runner `runner` and open its environment.
fn observe_self(runner: u32) -> ChildSelf {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let first = |key: &str| -> u32 {
        field(key)
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(u32::MAX)
    };
    let environ = format!("/proc/{runner}/environ");
    let runner_environ = match std::fs::File::open(&environ) {
        Ok(_) => "allowed".to_string(),
        Err(e) => e.raw_os_error().map_or_else(|| e.to_string(), errno_name),
    };
    ChildSelf {
        pid: std::process::id(),
        ns_pids: field("NSpid:")
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect(),
        uid: first("Uid:"),
        gid: first("Gid:"),
        cap_eff: field("CapEff:"),
        cap_prm: field("CapPrm:"),
        cap_inh: field("CapInh:"),
        cap_bnd: field("CapBnd:"),
        cap_amb: field("CapAmb:"),
        sees_runner: std::path::Path::new(&format!("/proc/{runner}")).exists(),
        runner_environ,
    }
}

fn prepare(req: &HelperRequest<'_>) -> Result<Prepared, String> {
    let op = if req.op == "noop" {
        None
    } else {
        Some(
            serde_json::from_value::<Operation>(serde_json::Value::String(req.op.clone()))
                .map_err(|_| format!("unknown operation `{}`", req.op))?,
        )
    };
    let mut p = Prepared {
        op,
        target: None,
        destination: None,
        resolved: None,
        sockaddr: None,
        pid: None,
    };
    let Some(op) = op else {
        return Ok(p);
    };
    let target = req
        .target
        .clone()
        .ok_or_else(|| format!("`{}` needs a target", op.as_str()))?;
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("`{s}` contains a NUL byte"));
    match op {
        Operation::TcpConnect | Operation::TcpBind | Operation::UdpSend => {
            p.sockaddr = Some(SockAddr::parse_inet(&target)?);
        }
        Operation::UnixAbstractConnect => {
            let name = target.strip_prefix('@').unwrap_or(&target);
            p.sockaddr = Some(SockAddr::abstract_unix(name)?);
        }
        Operation::SignalSend => {
            p.pid = Some(
                target
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{target}` is not a pid"))?,
            );
        }
        Operation::Exec => {
            return Err("`exec` is performed by the exec driver, not the builtin helper".into());
        }
        _ => {
            p.target = Some(cstr(&target)?);
            let follow = !matches!(
                op,
                Operation::FileRemove
                    | Operation::FileRename
                    | Operation::DirRemove
                    | Operation::SymlinkCreate
                    | Operation::SymlinkRead
                    | Operation::FileCreate
                    | Operation::DirCreate
            );
            let path = std::path::Path::new(&target);
            // The working directory is the base of a relative target only (`resolve` does
            // not read it for an absolute one): not asked for otherwise.
            let cwd = if path.is_absolute() {
                std::path::PathBuf::from("/")
            } else {
                std::env::current_dir().unwrap_or_else(|_| "/".into())
            };
            // One view of the tree for the resolution (`paths::one_view`: it only reads, so
            // a path looked up twice in it — the final entry, by the walk and again for
            // `is_symlink` and `exists` — is looked up once).
            let r = crate::sandbox::paths::one_view(|| {
                crate::sandbox::paths::resolve(path, &cwd, follow)
            });
            p.resolved = Some(r.canonical.to_string_lossy().into_owned());
            if let Some(d) = &req.destination {
                p.destination = Some(cstr(d)?);
            } else if op == Operation::FileRename {
                return Err("`file-rename` needs a destination".into());
            }
        }
    }
    Ok(p)
}

/// Perform one operation; returns (errno or 0, detail).
fn perform(op: Operation, p: &Prepared, connect_timeout_ms: u64) -> (i32, String) {
    let t = p.target.as_deref().unwrap_or(c"");
    let ok = |d: &str| (0, d.to_string());
    let fail = || (errno(), String::new());
    // SAFETY (every block below): plain syscalls on valid C strings and local buffers.
    match op {
        Operation::FileRead => file_read(t),
        Operation::FileWrite => file_write(t),
        Operation::FileCreate => {
            let fd = unsafe {
                libc::open(
                    t.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                    0o644,
                )
            };
            if fd < 0 {
                return fail();
            }
            unsafe { libc::close(fd) };
            ok("created")
        }
        Operation::FileRemove => simple(unsafe { libc::unlink(t.as_ptr()) }, "removed"),
        Operation::FileTruncate => match stat(t) {
            Err(e) => (e, "stat before truncate failed".into()),
            Ok(st) => simple(
                unsafe { libc::truncate(t.as_ptr(), st.st_size) },
                "truncated to its current size (non-destructive)",
            ),
        },
        Operation::FileRename => {
            let d = p.destination.as_deref().unwrap_or(c"");
            simple(unsafe { libc::rename(t.as_ptr(), d.as_ptr()) }, "renamed")
        }
        Operation::DirList => dir_list(t),
        Operation::DirCreate => simple(unsafe { libc::mkdir(t.as_ptr(), 0o755) }, "created"),
        Operation::DirRemove => simple(unsafe { libc::rmdir(t.as_ptr()) }, "removed"),
        Operation::SymlinkCreate => {
            let to = p.destination.as_deref().unwrap_or(c"nexusmon-probe");
            simple(unsafe { libc::symlink(to.as_ptr(), t.as_ptr()) }, "created")
        }
        Operation::FileExec => file_exec(t),
        Operation::TcpConnect | Operation::TcpBind | Operation::UdpSend => {
            inet(op, p.sockaddr.as_ref(), connect_timeout_ms)
        }
        Operation::UnixAbstractConnect => unix_connect(p.sockaddr.as_ref()),
        Operation::SignalSend => simple(
            unsafe { libc::kill(p.pid.unwrap_or(0), 0) },
            "signal 0 delivered",
        ),
        Operation::FileStat => match stat(t) {
            Ok(st) => ok(&format!("size {}", st.st_size)),
            Err(e) => (e, String::new()),
        },
        Operation::FileChmod => match stat(t) {
            Err(e) => (e, "stat before chmod failed".into()),
            Ok(st) => simple(
                unsafe { libc::chmod(t.as_ptr(), st.st_mode & 0o7777) },
                "mode set to its current value",
            ),
        },
        Operation::FileChown => match stat(t) {
            Err(e) => (e, "stat before chown failed".into()),
            Ok(st) => simple(
                unsafe { libc::chown(t.as_ptr(), st.st_uid, st.st_gid) },
                "owner set to its current value",
            ),
        },
        Operation::FileUtime => match stat(t) {
            Err(e) => (e, "stat before utimensat failed".into()),
            Ok(st) => {
                let times = [
                    libc::timespec {
                        tv_sec: st.st_atime,
                        tv_nsec: st.st_atime_nsec,
                    },
                    libc::timespec {
                        tv_sec: st.st_mtime,
                        tv_nsec: st.st_mtime_nsec,
                    },
                ];
                simple(
                    unsafe { libc::utimensat(libc::AT_FDCWD, t.as_ptr(), times.as_ptr(), 0) },
                    "times set to their current values",
                )
            }
        },
        Operation::FileSetxattr => simple(
            unsafe {
                libc::setxattr(
                    t.as_ptr(),
                    c"user.nexusmon.probe".as_ptr(),
                    c"1".as_ptr().cast(),
                    1,
                    0,
                )
            },
            "set user.nexusmon.probe",
        ),
        Operation::FileAccess => simple(unsafe { libc::access(t.as_ptr(), libc::F_OK) }, "exists"),
        Operation::DirChdir => simple(unsafe { libc::chdir(t.as_ptr()) }, "changed directory"),
        Operation::SymlinkRead => {
            let mut buf = [0u8; 4096];
            let n = unsafe { libc::readlink(t.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                fail()
            } else {
                ok(&format!("link of {n} bytes"))
            }
        }
        Operation::Exec => (libc::EINVAL, "exec is not a builtin operation".into()),
    }
}

/// `file-read`: open read-only and read up to 4 KiB.
fn file_read(t: &CStr) -> (i32, String) {
    let ok = |d: &str| (0, d.to_string());
    let fail = || (errno(), String::new());
    // SAFETY (every block below): plain syscalls on a valid C string and a local buffer.
    let fd = unsafe { libc::open(t.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return fail();
    }
    let mut buf = [0u8; 4096];
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    let e = errno();
    unsafe { libc::close(fd) };
    if n < 0 {
        (e, String::new())
    } else {
        ok(&format!("read {n} bytes"))
    }
}

/// `file-write`: open for appending and write nothing (non-destructive).
fn file_write(t: &CStr) -> (i32, String) {
    let ok = |d: &str| (0, d.to_string());
    let fail = || (errno(), String::new());
    // SAFETY (every block below): plain syscalls on a valid C string and a local buffer.
    let fd = unsafe {
        libc::open(
            t.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return fail();
    }
    let n = unsafe { libc::write(fd, c"".as_ptr().cast(), 0) };
    let e = errno();
    unsafe { libc::close(fd) };
    if n < 0 {
        (e, String::new())
    } else {
        ok("opened for writing; wrote 0 bytes (non-destructive)")
    }
}

/// `dir-list`: open the directory and read one batch of entries.
fn dir_list(t: &CStr) -> (i32, String) {
    let ok = |d: &str| (0, d.to_string());
    let fail = || (errno(), String::new());
    // SAFETY (every block below): plain syscalls on a valid C string and a local buffer.
    let fd = unsafe {
        libc::open(
            t.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return fail();
    }
    let mut buf = [0u8; 4096];
    let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
    let e = errno();
    unsafe { libc::close(fd) };
    if n < 0 {
        (e, String::new())
    } else {
        ok("listed")
    }
}

fn simple(rc: libc::c_int, what: &str) -> (i32, String) {
    if rc == 0 {
        (0, what.to_string())
    } else {
        (errno(), String::new())
    }
}

fn stat(path: &CStr) -> Result<libc::stat, i32> {
    // SAFETY: zeroed plain data filled by stat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out pointer.
    if unsafe { libc::stat(path.as_ptr(), &raw mut st) } == 0 {
        Ok(st)
    } else {
        Err(errno())
    }
}

/// `execve` the target in a forked child whose stdout goes to the helper's stderr; a CLOEXEC
/// pipe reports the exec errno. On success the child is killed at once: the probe judges
/// whether execution is permitted, not what the program does.
fn file_exec(path: &CStr) -> (i32, String) {
    let mut fds = [0i32; 2];
    // SAFETY: valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return (errno(), "pipe2 failed".into());
    }
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: the child only makes async-signal-safe calls before execve/_exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = errno();
        // SAFETY: closing our pipe.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        return (e, "fork failed".into());
    }
    if pid == 0 {
        // SAFETY: in the child: dup2, execve, write, _exit only.
        unsafe {
            libc::close(fds[0]);
            libc::dup2(2, 1);
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let e = *libc::__errno_location();
            let b = e.to_ne_bytes();
            libc::write(fds[1], b.as_ptr().cast(), b.len());
            libc::_exit(127);
        }
    }
    // SAFETY: parent side of the pipe.
    unsafe { libc::close(fds[1]) };
    let mut b = [0u8; 4];
    // SAFETY: reading into a local buffer.
    let n = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 4) };
    // SAFETY: closing our fd.
    unsafe { libc::close(fds[0]) };
    let result = if n == 4 {
        (i32::from_ne_bytes(b), String::new())
    } else {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        (
            0,
            "execve succeeded; the program was stopped at once".into(),
        )
    };
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
    result
}

/// A socket address built before restricting.
#[derive(Debug, Clone)]
enum SockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
    Unix(libc::sockaddr_un, libc::socklen_t),
}

impl SockAddr {
    fn parse_inet(target: &str) -> Result<Self, String> {
        let (host, port) = target
            .rsplit_once(':')
            .ok_or_else(|| format!("`{target}` is not host:port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` in `{target}` is not a port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        if let Ok(v4) = host.parse::<std::net::Ipv4Addr>() {
            // SAFETY: zeroed plain data.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::sa_family_t::try_from(libc::AF_INET).unwrap_or(2);
            sa.sin_port = port.to_be();
            sa.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
            return Ok(SockAddr::V4(sa));
        }
        if let Ok(v6) = host.parse::<std::net::Ipv6Addr>() {
            // SAFETY: zeroed plain data.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::sa_family_t::try_from(libc::AF_INET6).unwrap_or(10);
            sa.sin6_port = port.to_be();
            sa.sin6_addr.s6_addr = v6.octets();
            return Ok(SockAddr::V6(sa));
        }
        Err(format!(
            "`{host}` is not an IP address (the helper does no DNS: name lookups use UDP)"
        ))
    }

    fn abstract_unix(name: &str) -> Result<Self, String> {
        // SAFETY: zeroed plain data.
        let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        sa.sun_family = libc::sa_family_t::try_from(libc::AF_UNIX).unwrap_or(1);
        let bytes = name.as_bytes();
        if bytes.len() + 1 > sa.sun_path.len() {
            return Err(format!("abstract socket name `{name}` is too long"));
        }
        for (i, b) in bytes.iter().enumerate() {
            sa.sun_path[i + 1] = libc::c_char::from_ne_bytes([*b]);
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + 1 + bytes.len();
        Ok(SockAddr::Unix(
            sa,
            libc::socklen_t::try_from(len).unwrap_or(0),
        ))
    }

    fn family(&self) -> i32 {
        match self {
            SockAddr::V4(_) => libc::AF_INET,
            SockAddr::V6(_) => libc::AF_INET6,
            SockAddr::Unix(..) => libc::AF_UNIX,
        }
    }

    fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        let len = |n: usize| libc::socklen_t::try_from(n).unwrap_or(0);
        match self {
            SockAddr::V4(a) => (
                std::ptr::from_ref(a).cast(),
                len(std::mem::size_of::<libc::sockaddr_in>()),
            ),
            SockAddr::V6(a) => (
                std::ptr::from_ref(a).cast(),
                len(std::mem::size_of::<libc::sockaddr_in6>()),
            ),
            SockAddr::Unix(a, l) => (std::ptr::from_ref(a).cast(), *l),
        }
    }
}

fn inet(op: Operation, addr: Option<&SockAddr>, timeout_ms: u64) -> (i32, String) {
    let Some(addr) = addr else {
        return (libc::EINVAL, "no address".into());
    };
    let ty = if op == Operation::UdpSend {
        libc::SOCK_DGRAM
    } else {
        libc::SOCK_STREAM
    };
    // SAFETY: socket syscalls on values we own.
    let fd = unsafe { libc::socket(addr.family(), ty | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return (errno(), "socket() failed".into());
    }
    let (sa, len) = addr.as_ptr();
    let result = match op {
        Operation::TcpConnect => {
            let tv = libc::timeval {
                tv_sec: libc::time_t::try_from(timeout_ms / 1000).unwrap_or(2),
                tv_usec: libc::suseconds_t::try_from((timeout_ms % 1000) * 1000).unwrap_or(0),
            };
            // SAFETY: valid option pointer.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_SNDTIMEO,
                    std::ptr::from_ref(&tv).cast(),
                    libc::socklen_t::try_from(std::mem::size_of::<libc::timeval>()).unwrap_or(0),
                );
            }
            // SAFETY: valid address.
            simple(unsafe { libc::connect(fd, sa, len) }, "connected")
        }
        Operation::TcpBind => {
            let one: libc::c_int = 1;
            // SAFETY: valid option pointer.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_REUSEADDR,
                    std::ptr::from_ref(&one).cast(),
                    4,
                );
            }
            // SAFETY: valid address.
            simple(unsafe { libc::bind(fd, sa, len) }, "bound")
        }
        _ => {
            // SAFETY: valid buffer and address.
            let n = unsafe { libc::sendto(fd, c"x".as_ptr().cast(), 1, 0, sa, len) };
            if n < 0 {
                (errno(), String::new())
            } else {
                (0, "sent 1 byte".into())
            }
        }
    };
    // SAFETY: closing our socket.
    unsafe { libc::close(fd) };
    result
}

fn unix_connect(addr: Option<&SockAddr>) -> (i32, String) {
    let Some(addr) = addr else {
        return (libc::EINVAL, "no address".into());
    };
    // SAFETY: socket syscalls on values we own.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return (errno(), "socket() failed".into());
    }
    let (sa, len) = addr.as_ptr();
    // SAFETY: valid address.
    let r = simple(unsafe { libc::connect(fd, sa, len) }, "connected");
    // SAFETY: closing our socket.
    unsafe { libc::close(fd) };
    r
}

/// The helper's line from a child's stdout: exactly one line that parses as a
/// [`HelperLine`] of our version. `None` means the helper crashed or printed something else.
pub fn parse_line(stdout: &[u8]) -> Option<HelperLine> {
    let text = std::str::from_utf8(stdout).ok()?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    serde_json::from_str::<HelperLine>(first)
        .ok()
        .filter(|l| l.v == HELPER_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(op: &str, target: &str) -> HelperRequest<'static> {
        HelperRequest {
            v: 1,
            op: op.into(),
            target: Some(target.into()),
            destination: None,
            apply: Cow::Owned(ApplySpec {
                landlock: None,
                seccomp: Vec::new(),
                rlimits: Vec::new(),
                nnp: false,
            }),
            clean: false,
            cgroup_procs: None,
            connect_timeout_ms: 500,
            observe_runner: None,
            runner_pid: None,
        }
    }

    #[test]
    fn unrestricted_operations_classify_by_errno() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "hello").unwrap();
        let l = run(&req("file-read", f.to_str().unwrap()));
        assert_eq!(l.outcome, Outcome::Allow, "{l:?}");
        assert_eq!(l.detail, "read 5 bytes");
        let l = run(&req(
            "file-read",
            d.path().join("missing").to_str().unwrap(),
        ));
        assert_eq!(l.outcome, Outcome::Error);
        assert_eq!(l.errno_name.as_deref(), Some("ENOENT"));
        let l = run(&req("file-stat", f.to_str().unwrap()));
        assert_eq!(l.outcome, Outcome::Allow);
        let l = run(&req("tcp-connect", "127.0.0.1:1"));
        assert_eq!(l.outcome, Outcome::Allow, "refused is allow: {l:?}");
        let l = run(&req("tcp-connect", "example.org:80"));
        assert_eq!(l.outcome, Outcome::Error);
        let l = run(&req("file-exec", "/bin/true"));
        assert_eq!(l.outcome, Outcome::Allow, "{l:?}");
        let l = run(&req("bogus", "/x"));
        assert_eq!(l.outcome, Outcome::Error);
        assert!(l.detail.contains("unknown operation"));
    }

    #[test]
    fn parse_line_needs_exactly_one_line() {
        let l = run(&req("noop", "/"));
        let text = serde_json::to_string(&l).unwrap();
        assert!(parse_line(text.as_bytes()).is_some());
        assert!(parse_line(format!("{text}\n{text}\n").as_bytes()).is_none());
        assert!(parse_line(b"").is_none());
        assert!(parse_line(b"garbage\n").is_none());
    }

    /// The request line as the runner wrote it by hand before it was built from
    /// [`HelperRequest`] (kept here as the reference for the bytes on the wire).
    #[allow(clippy::too_many_arguments)]
    fn hand_built(
        op: &str,
        target: Option<&str>,
        destination: Option<&str>,
        spec_json: &str,
        clean: bool,
        cgroup_procs: Option<&str>,
        connect_timeout_ms: u64,
    ) -> String {
        let s = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
        let o = |v: Option<&str>| v.map_or_else(|| "null".to_string(), s);
        format!(
            "{{\"v\":{},\"op\":{},\"target\":{},\"destination\":{},\"apply\":{spec_json},\"clean\":{clean},\"cgroup_procs\":{},\"connect_timeout_ms\":{connect_timeout_ms}}}",
            HELPER_VERSION,
            s(op),
            o(target),
            o(destination),
            o(cgroup_procs),
        )
    }

    #[test]
    fn the_request_has_the_bytes_of_the_hand_built_line_and_round_trips() {
        let spec = ApplySpec {
            landlock: Some(crate::sandbox::compile::LandlockSpec {
                hard: true,
                fs: 7,
                net: 0,
                scopes: 1,
                paths: vec![("/tmp/a \"q\"\u{e9}".into(), 3)],
                ports: vec![(80, 1)],
            }),
            seccomp: Vec::new(),
            rlimits: Vec::new(),
            nnp: true,
        };
        let spec_json = serde_json::to_string(&spec).unwrap();
        for (op, target, destination, clean, procs, ms) in [
            ("noop", None, None, true, None, 1000),
            (
                "file-rename",
                Some("/s/x"),
                Some("/s/y\n"),
                false,
                Some("/sys/fs/cgroup/c0/cgroup.procs"),
                2000,
            ),
            ("tcp-connect", Some("127.0.0.1:1"), None, true, None, 1),
        ] {
            let req = HelperRequest {
                v: HELPER_VERSION,
                op: op.into(),
                target: target.map(str::to_string),
                destination: destination.map(str::to_string),
                apply: Cow::Borrowed(&spec),
                clean,
                cgroup_procs: procs.map(str::to_string),
                connect_timeout_ms: ms,
                observe_runner: None,
                runner_pid: None,
            };
            let args = req.to_args().unwrap();
            assert_eq!(args[0], "__probe");
            assert_eq!(
                args[1],
                hand_built(op, target, destination, &spec_json, clean, procs, ms)
            );
            let back: HelperRequest<'static> = serde_json::from_str(&args[1]).unwrap();
            assert_eq!(back, req);
        }
        // Absent optional fields are accepted as well as `null`.
        let back: HelperRequest<'static> =
            serde_json::from_str(r#"{"v":1,"op":"noop","apply":{"nnp":false}}"#).unwrap();
        assert_eq!((back.target, back.connect_timeout_ms), (None, 2000));
    }

    /// Over generated requests (texts with quotes, escapes, control and non-ASCII
    /// characters; every optional member present or absent; generated apply specs), the
    /// request built with the apply spec's text made once has exactly the bytes of the
    /// request serialized whole, and parses back to the request.
    #[test]
    fn the_request_with_a_cached_apply_text_has_the_bytes_of_the_serialized_request() {
        use crate::model::registry::SeccompGroup;
        use crate::sandbox::compile::{LandlockSpec, RlimitSpec};
        use crate::util::testrng::Rng;
        let text = |rng: &mut Rng| -> String {
            let parts = [
                "a",
                "/tmp/x",
                "\"",
                "\\",
                "\n",
                "\u{1}",
                "\u{7f}",
                "\u{e9}",
                "\u{1f600}",
                " ",
                "${S}",
            ];
            (0..rng.below(6u64)).map(|_| *rng.pick(&parts)).collect()
        };
        for seed in [0x160_6001_u64, 0x160_6002, 0x160_6003] {
            let mut rng = Rng(seed);
            for _ in 0..300 {
                let spec = ApplySpec {
                    landlock: rng.chance(70).then(|| LandlockSpec {
                        hard: rng.chance(50),
                        fs: rng.next() >> rng.below(64u64),
                        net: rng.below(4u64),
                        scopes: rng.below(4u64),
                        paths: (0..rng.below(4u64))
                            .map(|_| (text(&mut rng), rng.next()))
                            .collect(),
                        ports: (0..rng.below(3u64))
                            .map(|_| (u16::try_from(rng.below(65536u64)).unwrap(), rng.below(4u64)))
                            .collect(),
                    }),
                    seccomp: rng.subset(
                        &[
                            SeccompGroup::Udp,
                            SeccompGroup::IoUring,
                            SeccompGroup::NewSession,
                        ],
                        40,
                    ),
                    rlimits: (0..rng.below(3u64))
                        .map(|i| RlimitSpec {
                            name: format!("RLIMIT_{}", text(&mut rng)),
                            resource: u32::try_from(i).unwrap(),
                            soft: rng.next(),
                            hard: rng.next(),
                        })
                        .collect(),
                    nnp: rng.chance(50),
                };
                let opt = |rng: &mut Rng| rng.chance(60).then(|| text(rng));
                let req = HelperRequest {
                    v: *rng.pick(&[HELPER_VERSION, 0, u32::MAX]),
                    op: text(&mut rng),
                    target: opt(&mut rng),
                    destination: opt(&mut rng),
                    apply: Cow::Borrowed(&spec),
                    clean: rng.chance(50),
                    cgroup_procs: opt(&mut rng),
                    connect_timeout_ms: rng.next() >> rng.below(64u64),
                    observe_runner: rng
                        .chance(30)
                        .then(|| u32::try_from(rng.below(1u64 << 32)).unwrap()),
                    runner_pid: rng
                        .chance(70)
                        .then(|| u32::try_from(rng.below(1u64 << 32)).unwrap()),
                };
                let cached = ApplyText::of(&spec).unwrap();
                let args = req.to_args_with(&cached).unwrap();
                assert_eq!(args, req.to_args().unwrap(), "seed {seed:#x}");
                let back: HelperRequest<'static> = serde_json::from_str(&args[1]).unwrap();
                assert_eq!(back, req);
            }
        }
    }

    /// Over generated helper lines (every optional member present or absent, every
    /// outcome, stage and ruleset status, texts with escapes), the line's value built
    /// member by member is exactly what `serde_json::to_value` gives.
    #[test]
    fn the_lines_value_is_what_serde_gives() {
        use crate::util::testrng::Rng;
        let outcomes = [
            Outcome::Allow,
            Outcome::Deny,
            Outcome::Error,
            Outcome::Timeout,
            Outcome::ApplyFailed,
            Outcome::Skipped,
        ];
        for seed in [0x160_6011_u64, 0x160_6012, 0x160_6013] {
            let mut rng = Rng(seed);
            for _ in 0..400 {
                let text = |rng: &mut Rng| -> String {
                    let parts = ["a", "/x", "\"", "\\", "\n", "\u{1}", "\u{e9}", " "];
                    (0..rng.below(5u64)).map(|_| *rng.pick(&parts)).collect()
                };
                let stages = [
                    Stage::Resolve,
                    Stage::Apply,
                    Stage::Exec,
                    Stage::Operation,
                    Stage::Timeout,
                ];
                let statuses = [
                    RulesetStatus::FullyEnforced,
                    RulesetStatus::PartiallyEnforced,
                    RulesetStatus::NotEnforced,
                ];
                let l = HelperLine {
                    v: u32::try_from(rng.below(1u64 << 32)).unwrap(),
                    op: text(&mut rng),
                    target: rng.chance(50).then(|| text(&mut rng)),
                    resolved_path: rng.chance(50).then(|| text(&mut rng)),
                    outcome: *rng.pick(&outcomes),
                    stage: *rng.pick(&stages),
                    errno: rng
                        .chance(50)
                        .then(|| i32::try_from(rng.below(300u64)).unwrap() - 10),
                    errno_name: rng.chance(50).then(|| text(&mut rng)),
                    detail: text(&mut rng),
                    enforcement: rng.chance(60).then(|| HelperEnforcement {
                        ruleset: *rng.pick(&statuses),
                        abi: rng
                            .chance(50)
                            .then(|| u8::try_from(rng.below(256u64)).unwrap()),
                        no_new_privs: rng.chance(50),
                        seccomp: rng.chance(50),
                    }),
                    child_self: rng.chance(20).then(|| ChildSelf {
                        pid: u32::try_from(rng.below(100u64)).unwrap(),
                        ..ChildSelf::default()
                    }),
                };
                assert_eq!(
                    l.to_value(),
                    serde_json::to_value(&l).ok(),
                    "seed {seed:#x}: {l:?}"
                );
            }
        }
    }
}
