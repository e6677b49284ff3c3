//! Who a child is and what it can see, on the clean channel: least privilege by default.
//!
//! - **Capabilities.** Every capability is dropped from the child's bounding, effective,
//!   permitted, inheritable and ambient sets unless the profile names it in
//!   `capabilities`; a kept one is in all five (ambient only when the child is not root,
//!   where `execve` would otherwise drop it). With the bounding set cleared and
//!   no-new-privs set, nothing the child executes can gain one back. A runner without
//!   `CAP_SETPCAP` (not root) cannot clear the bounding set; its children hold no
//!   capability in the other four sets either way (recorded: `bounding_cleared`).
//! - **Identity.** `identity: {uid, gid}` runs the child as that uid and gid, with no
//!   supplementary group; the runner gives the child's scratch directory to them.
//! - **PID namespace.** Each child runs in a PID namespace of its own, pid 2 or above under
//!   a placeholder init (`exec::zygote`: an init ignores the signals it has no handler for,
//!   which would change how a probe behaves), with that namespace's `/proc` in a private
//!   mount namespace: it sees neither the runner nor other children. The probe children of
//!   one worker thread share one namespace *one at a time* (the thread runs one child at a
//!   time, and a child that leaves anything behind, or times out, ends the namespace: the
//!   next child gets a fresh one), so a child still never shares it with another probe's
//!   processes; its `/proc` is mounted once, by the init in its own private mount
//!   namespace, which each child joins and copies ([`Isolation::enforce_mounts_from`]). It needs `CAP_SYS_ADMIN` in
//!   the runner (root); without it the reason is recorded and the child shares the host's
//!   `/proc`. A `signal-send` probe must reach a process outside (its target, e.g.
//!   `${RUNNER_PID}`, in the runner's namespace), so it runs without one (recorded).
//! - **Read-only host for the baseline of exec probes.** The baseline lane has no policy, so
//!   an exec probe's child there gets the host read-only outside its scratch directory:
//!   in its private mount namespace every mount is made read-only (`mount_setattr`,
//!   recursive) and the scratch directory, bound onto itself, writable again; without
//!   `CAP_SYS_ADMIN`, a Landlock ruleset handling the write rights with only the scratch
//!   and `/dev/{null,zero,full,tty}` granted; with `CAP_SYS_ADMIN` kept (which could
//!   remount the mounts writable), both (`mount-namespace+landlock`). Read-only mounts do
//!   not stop writes to device nodes (a uid-0 child owns most of `/dev`): here the kernel
//!   refused `/dev/vda` opened for writing (EPERM), not the tool. Reads are untouched, so
//!   the baseline stays "what happens anyway" for them. In the scenario lane, an exec
//!   probe's declared read-only inputs (`reads`) are bound read-only (a missing one: its
//!   nearest existing directory, that mount only).
//! - **The runner's environment.** The runner makes itself non-dumpable for the run, so
//!   `/proc/<runner>/environ` (and `mem`, `maps`, …) needs `CAP_SYS_PTRACE`, which no child
//!   keeps unless its profile names it; in a PID namespace the runner is not there at all.
//!
//! [`attach`] compiles the privileges into a [`CompiledProfile`]; [`Isolation`] is one
//! child's part, prepared in the parent and applied between clone and `execve` with raw
//! system calls only ([`Isolation::enforce_mounts`] before the working directory is
//! entered, [`Isolation::enforce_identity`] after the cgroup is joined).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::apply::{SetupStep, errno};
use super::compile::{ApplySpec, CompiledProfile, LandlockSpec};
use super::rights::fs;
use crate::model::registry::{LinuxCapability, Profile};
use crate::model::results::{ChildIsolation, ChildPrivileges, Unenforceable};

/// Why a child is pid 2 (or above) of its PID namespace, not pid 1.
pub const NAMESPACE_INIT: &str = "pid 1 is a placeholder init (`nexusmon-init`, no capability, not dumpable) and the child is pid 2 or above (a worker's probe children share the namespace one at a time; a child that leaves anything in it ends it): an init ignores every signal it has no handler for (`kill -SEGV $$`, its rlimits' SIGXCPU and SIGXFSZ, the runner's SIGTERM), which would change how the child behaves";

/// `baseline_host_read_only` when a private mount namespace does it.
pub const RO_MOUNT_NAMESPACE: &str = "mount-namespace";
/// … when a Landlock ruleset does it.
pub const RO_LANDLOCK: &str = "landlock";
/// … when both do (a child that keeps `CAP_SYS_ADMIN`, which could remount its mounts
/// writable).
pub const RO_MOUNT_NAMESPACE_AND_LANDLOCK: &str = "mount-namespace+landlock";
/// … when nothing does.
pub const RO_NONE: &str = "none";

/// What the runner itself holds: the ceiling of what it can give a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerPrivileges {
    /// Effective uid.
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Effective capabilities (`CapEff`).
    pub effective: u64,
    /// Bounding set (`CapBnd`): what a child can keep.
    pub bounding: u64,
    /// `/proc/sys/kernel/cap_last_cap`.
    pub cap_last: u8,
    /// The kernel has Landlock (for the non-root read-only baseline).
    pub landlock: bool,
}

fn hex_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

impl RunnerPrivileges {
    /// The calling process's.
    pub fn current() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let cap_last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        Self {
            // SAFETY: geteuid/getegid cannot fail.
            euid: unsafe { libc::geteuid() },
            // SAFETY: as above.
            egid: unsafe { libc::getegid() },
            effective: hex_field(&status, "CapEff:").unwrap_or(0),
            bounding: hex_field(&status, "CapBnd:").unwrap_or(0),
            cap_last,
            landlock: super::host::landlock_abi().is_ok(),
        }
    }

    /// Root with every capability (for tests of the compiler).
    pub fn root() -> Self {
        Self {
            euid: 0,
            egid: 0,
            effective: all_caps(40),
            bounding: all_caps(40),
            cap_last: 40,
            landlock: true,
        }
    }

    fn has(&self, cap: LinuxCapability) -> bool {
        self.effective & (1u64 << cap.number()) != 0
    }

    /// Why the runner cannot give children namespaces, if it cannot.
    fn namespaces_unavailable(&self) -> Option<String> {
        (!self.has(LinuxCapability::SysAdmin)).then(|| {
            format!(
                "the runner (uid {}) lacks CAP_SYS_ADMIN, which a PID and mount namespace per child needs (run as root)",
                self.euid
            )
        })
    }
}

fn all_caps(last: u8) -> u64 {
    if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (u32::from(last) + 1)) - 1
    }
}

/// The runner non-dumpable while it lives (`PR_SET_DUMPABLE` 0): its `/proc/<pid>`
/// entries then belong to root and `environ`, `mem`, `maps`, `fd` need `CAP_SYS_PTRACE`
/// over it, which no child keeps by default. Dropping it restores the previous setting.
#[derive(Debug)]
pub struct NonDumpable {
    previous: libc::c_int,
}

impl NonDumpable {
    /// Make the calling process non-dumpable.
    pub fn new() -> Self {
        // SAFETY: prctl with integer arguments on this process.
        let previous = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        // SAFETY: as above.
        unsafe {
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        }
        Self { previous }
    }
}

impl Default for NonDumpable {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NonDumpable {
    fn drop(&mut self) {
        if self.previous > 0 {
            // SAFETY: prctl with integer arguments on this process.
            unsafe {
                libc::prctl(
                    libc::PR_SET_DUMPABLE,
                    libc::c_ulong::try_from(self.previous).unwrap_or(1),
                    0,
                    0,
                    0,
                );
            }
        }
    }
}

/// Compile the child privileges of `profile` for this runner and channel into `c`: items
/// the runner cannot give are unenforceable (`capabilities` beyond its own set follow the
/// profile's compat; an `identity` it cannot take is never weakened) and `apply_error`
/// is recomputed.
pub fn attach(c: &mut CompiledProfile, profile: &Profile, runner: &RunnerPrivileges, clean: bool) {
    let (child, hard_gaps, soft_gaps) = compile(profile, runner, clean);
    c.child = child;
    let hard = c.compat == crate::model::registry::Compat::Hard;
    c.unenforceable.extend(hard_gaps);
    if hard {
        c.unenforceable.extend(soft_gaps);
    } else {
        c.dropped.extend(soft_gaps);
    }
    c.unenforceable.sort();
    c.unenforceable.dedup();
    c.dropped.sort();
    c.dropped.dedup();
    c.apply_error = if c.unenforceable.is_empty() {
        None
    } else {
        Some(
            c.unenforceable
                .iter()
                .map(|u| format!("{}: {}", u.item, u.reason))
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
}

/// `(privileges, never-weakened gaps, compat-dependent gaps)`.
fn compile(
    profile: &Profile,
    runner: &RunnerPrivileges,
    clean: bool,
) -> (ChildPrivileges, Vec<Unenforceable>, Vec<Unenforceable>) {
    let mut hard = Vec::new();
    let mut soft = Vec::new();
    let ns = runner.namespaces_unavailable();
    let (ro, ro_reason) = match (&ns, runner.landlock) {
        (None, _) => (RO_MOUNT_NAMESPACE, None),
        (Some(_), true) => (RO_LANDLOCK, None),
        (Some(why), false) => (
            RO_NONE,
            Some(format!("{why}, and the kernel has no Landlock")),
        ),
    };
    if !clean {
        let inherited = |what: &str| {
            Unenforceable {
            item: what.to_string(),
            reason: "the direct channel runs children with the runner's identity and capabilities; use the clean channel".into(),
        }
        };
        if profile.identity.is_some() {
            hard.push(inherited("identity"));
        }
        if !profile.capabilities.is_empty() {
            soft.push(inherited("capabilities"));
        }
        let child = ChildPrivileges {
            applied: false,
            uid: runner.euid,
            gid: runner.egid,
            identity: false,
            capabilities: caps_names(runner.effective),
            cap_last: runner.cap_last,
            bounding_cleared: false,
            pid_namespace: false,
            namespace_init: None,
            pid_namespace_reason: Some("the direct channel shares the runner's namespaces".into()),
            baseline_host_read_only: ro.into(),
            baseline_host_reason: ro_reason,
            runner_environ: "inherited: the direct channel passes the runner's environment".into(),
        };
        return (child, hard, soft);
    }
    let mut kept = 0u64;
    let mut caps: Vec<LinuxCapability> = profile.capabilities.clone();
    caps.sort();
    caps.dedup();
    for cap in caps {
        let bit = 1u64 << cap.number();
        if cap.number() > runner.cap_last {
            soft.push(Unenforceable {
                item: format!("capabilities `{}`", cap.as_str()),
                reason: format!(
                    "this kernel knows capabilities up to {} ({})",
                    runner.cap_last,
                    LinuxCapability::from_number(runner.cap_last)
                        .map_or("?", LinuxCapability::kernel_name)
                ),
            });
        } else if runner.effective & runner.bounding & bit == 0 {
            soft.push(Unenforceable {
                item: format!("capabilities `{}`", cap.as_str()),
                reason: format!(
                    "the runner (uid {}) does not hold {} itself",
                    runner.euid,
                    cap.kernel_name()
                ),
            });
        } else {
            kept |= bit;
        }
    }
    let (uid, gid) = match profile.identity {
        Some(id) => {
            let switch = id.uid != runner.euid || id.gid != runner.egid;
            let can = runner.has(LinuxCapability::Setuid) && runner.has(LinuxCapability::Setgid);
            if switch && !can {
                hard.push(Unenforceable {
                    item: "identity".into(),
                    reason: format!(
                        "the runner (uid {}, gid {}) cannot switch to uid {}, gid {} without CAP_SETUID and CAP_SETGID",
                        runner.euid, runner.egid, id.uid, id.gid
                    ),
                });
            }
            (id.uid, id.gid)
        }
        None => (runner.euid, runner.egid),
    };
    let environ = if ns.is_none() {
        "not visible: each child has its own PID namespace and /proc; the runner is also non-dumpable, so /proc/<runner>/environ needs CAP_SYS_PTRACE"
    } else {
        "protected: the runner is non-dumpable, so /proc/<runner>/environ needs CAP_SYS_PTRACE"
    };
    let child = ChildPrivileges {
        applied: true,
        uid,
        gid,
        identity: profile.identity.is_some(),
        capabilities: caps_names(kept),
        cap_last: runner.cap_last,
        bounding_cleared: runner.has(LinuxCapability::Setpcap),
        pid_namespace: ns.is_none(),
        namespace_init: ns.is_none().then(|| NAMESPACE_INIT.to_string()),
        pid_namespace_reason: ns,
        baseline_host_read_only: ro.into(),
        baseline_host_reason: ro_reason,
        runner_environ: environ.into(),
    };
    (child, hard, soft)
}

/// The bit of `CAP_SYS_ADMIN`: what changes mounts.
fn sys_admin() -> u64 {
    1u64 << LinuxCapability::SysAdmin.number()
}

/// Kernel names of the capabilities in `mask`, by number.
pub fn caps_names(mask: u64) -> Vec<String> {
    (0u8..64)
        .filter(|n| mask & (1u64 << n) != 0)
        .map(|n| {
            LinuxCapability::from_number(n)
                .map_or_else(|| format!("CAP_{n}"), |c| c.kernel_name().to_string())
        })
        .collect()
}

/// The mask of capabilities named (kernel names) in `names`.
pub fn caps_mask(names: &[String]) -> u64 {
    LinuxCapability::ALL
        .iter()
        .filter(|c| names.iter().any(|n| n == c.kernel_name()))
        .fold(0, |m, c| m | (1u64 << c.number()))
}

/// The bounding set a process that only starts children of `children` (a fork server)
/// may keep for itself, dropping the rest once for all of them: the union of what they
/// keep, when every one of them clears its bounding set to what it keeps (the clean
/// channel with `CAP_SETPCAP`); `None` when any does not. Each child still drops what it
/// does not keep, so each ends with exactly its own set.
pub fn bounding_kept_by<'a>(
    children: impl IntoIterator<Item = &'a ChildPrivileges>,
) -> Option<u64> {
    let mut keep = 0u64;
    for c in children {
        if !(c.applied && c.bounding_cleared) {
            return None;
        }
        keep |= caps_mask(&c.capabilities);
    }
    Some(keep)
}

/// Drop from this process's bounding set every capability up to `last` (or the kernel's
/// last, whichever is lower) that `keep` (a capability mask) does not hold. Reading is
/// cheap and each drop copies the credentials, so only what is still there is dropped (a
/// fork server may have dropped the rest once: [`bounding_kept_by`]). False (with `errno`)
/// when a drop fails.
///
/// # Safety
/// Async-signal-safe (two `prctl`s a capability): fit for a cloned child before `execve`.
pub unsafe fn drop_bounding_except(keep: u64, last: u32) -> bool {
    for n in 0..=last.min(63) {
        // SAFETY: prctl on this process's own bounding set (EINVAL past the kernel's last
        // capability ends the walk).
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(n), 0, 0, 0) };
        if rc < 0 {
            break;
        }
        if rc == 1
            && keep & (1u64 << n) == 0
            // SAFETY: as above.
            && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(n), 0, 0, 0) } != 0
        {
            return false;
        }
    }
    true
}

/// Drop from this process's bounding set every capability of `present` (a superset of
/// what the set holds now) that `keep` does not hold, without reading the set first:
/// [`drop_bounding_except`] for a caller that knows the set already (a child cloned from a
/// thread whose set it read: [`thread_bounding`]). A capability the set no longer holds
/// is dropped again, which changes nothing; one it holds is never skipped, since a
/// bounding set only ever shrinks, so a set read earlier holds all it holds now. False
/// (with `errno`) when a drop fails.
///
/// # Safety
/// Async-signal-safe (one `prctl` a dropped capability): fit for a cloned child.
pub unsafe fn drop_bounding_known(keep: u64, present: u64) -> bool {
    for n in 0..64u32 {
        if present & !keep & (1u64 << n) != 0
            // SAFETY: prctl on this process's own bounding set.
            && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(n), 0, 0, 0) } != 0
        {
            return false;
        }
    }
    true
}

/// The calling thread's bounding set (read once per thread, 41 `PR_CAPBSET_READ`s, then
/// remembered: a bounding set only ever shrinks, so the value stays a superset of it).
/// A child cloned from this thread starts with this set, so it can drop what it must
/// without reading it again ([`Isolation::enforce_identity_from`]): 41 system calls less
/// per child.
pub fn thread_bounding() -> u64 {
    THREAD_BOUNDING.with(|b| {
        if let Some(v) = b.get() {
            return v;
        }
        let v = bounding_set(63);
        b.set(Some(v));
        v
    })
}

/// The calling thread's bounding set read again (and remembered): for a thread that has
/// just lowered its own set ([`thread_bounding`] would still answer the set it read before).
pub fn reread_thread_bounding() -> u64 {
    let v = bounding_set(63);
    THREAD_BOUNDING.with(|b| b.set(Some(v)));
    v
}

thread_local! {
    /// [`thread_bounding`]'s remembered value.
    static THREAD_BOUNDING: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// The capabilities in this process's bounding set (bit `n`: capability `n`), read up to
/// `last` (or the kernel's last): one `PR_CAPBSET_READ` each.
pub fn bounding_set(last: u32) -> u64 {
    let mut set = 0u64;
    for n in 0..=last.min(63) {
        // SAFETY: prctl reading this process's own bounding set (EINVAL past the kernel's
        // last capability ends the walk).
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(n), 0, 0, 0) };
        if rc < 0 {
            break;
        }
        if rc == 1 {
            set |= 1u64 << n;
        }
    }
    set
}

/// Make every mount of this process's mount namespace private (recursively from `/`), so
/// that nothing mounted here propagates back to the namespace it was copied from.
///
/// # Safety
/// Only in a process whose mount namespace is its own (a child after `unshare` or a clone
/// with `CLONE_NEWNS`, a namespace's init).
pub unsafe fn make_root_private() -> bool {
    // SAFETY: mount(2) on static strings; the caller's own mount namespace.
    unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) == 0
    }
}

/// Mount this process's PID namespace's `/proc` (nosuid, nodev, noexec) over `/proc`.
///
/// # Safety
/// As [`make_root_private`], after it.
pub unsafe fn mount_proc() -> bool {
    // SAFETY: mount(2) on static strings; the caller's own mount namespace.
    unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ) == 0
    }
}

/// What one child gets, decided by the lanes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRequest<'a> {
    /// The compiled privileges of its profile.
    pub privileges: &'a ChildPrivileges,
    /// Its own PID namespace (`Err`: why not, though the profile would give one).
    pub pid_namespace: Result<(), String>,
    /// The child's scratch directory.
    pub scratch: &'a Path,
    /// Keep the host read-only outside the scratch directory (the baseline of exec probes).
    pub host_read_only: bool,
    /// The probe's declared read-only inputs (`reads`, expanded), kept read-only.
    pub read_only_inputs: &'a [String],
}

/// One child's isolation, prepared in the parent (no allocation in the child). It crosses
/// to the builtin probes' fork server as JSON (`exec::forkserver`), so it is serializable.
// The unsafe methods rely on no invariant a deserialized value could break: every field is
// plain data (C strings are checked for NULs when deserialized), used in the child as is.
#[allow(clippy::unsafe_derive_deserialize)]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Isolation {
    pid_namespace: bool,
    mount_namespace: bool,
    /// Every mount read-only (the baseline of exec probes) but `writable`.
    host_read_only: bool,
    /// The scratch directory, kept writable under read-only mounts.
    writable: Option<CString>,
    /// Paths bound read-only onto themselves: `(path, recursive)`.
    read_only: Vec<(CString, bool)>,
    /// `(uid, gid)` to switch to.
    identity: Option<(u32, u32)>,
    /// Drop capabilities (and switch identity): the clean channel.
    drop_privileges: bool,
    /// Clear the bounding set (the runner holds `CAP_SETPCAP`).
    clear_bounding: bool,
    /// Capabilities kept.
    caps: u64,
    cap_last: u8,
    /// What was decided, for the attempt's record.
    record: ChildIsolation,
}

impl Isolation {
    /// Prepare the isolation of one child. Returns it and, when the read-only host is
    /// done by Landlock (no `CAP_SYS_ADMIN`), the ruleset to add to the child's spec.
    pub fn new(req: &ChildRequest<'_>) -> (Self, Option<LandlockSpec>) {
        let p = req.privileges;
        let pid_ns = p.pid_namespace && req.pid_namespace.is_ok();
        let pid_reason = if pid_ns {
            None
        } else if let Err(why) = &req.pid_namespace {
            Some(why.clone())
        } else {
            p.pid_namespace_reason.clone()
        };
        let mut host_ro = RO_NONE.to_string();
        let mut writable = None;
        let mut landlock = None;
        if req.host_read_only {
            let dir = req.scratch;
            match p.baseline_host_read_only.as_str() {
                RO_MOUNT_NAMESPACE => {
                    writable = CString::new(dir.as_os_str().as_bytes()).ok();
                    if writable.is_some() {
                        host_ro = RO_MOUNT_NAMESPACE.into();
                    }
                    // A child that keeps CAP_SYS_ADMIN can make its own mounts writable
                    // again (`mount -o remount,bind,rw`) and write anywhere on the host:
                    // read-only mounts bind it only with the Landlock ruleset too, which
                    // no capability lifts and which also forbids changing mounts.
                    if writable.is_some() && caps_mask(&p.capabilities) & sys_admin() != 0 {
                        landlock = Some(read_only_ruleset(dir));
                        host_ro = RO_MOUNT_NAMESPACE_AND_LANDLOCK.into();
                    }
                }
                RO_LANDLOCK => {
                    landlock = Some(read_only_ruleset(dir));
                    host_ro = RO_LANDLOCK.into();
                }
                _ => {}
            }
        }
        let (read_only, inputs, inputs_reason) = read_only_inputs(req, host_ro != RO_NONE);
        let host_read_only = writable.is_some();
        if !read_only.is_empty() {
            writable = CString::new(req.scratch.as_os_str().as_bytes()).ok();
        }
        let identity = (p.applied && p.identity).then_some((p.uid, p.gid));
        let caps = caps_mask(&p.capabilities);
        let record = ChildIsolation {
            uid: p.uid,
            gid: p.gid,
            capabilities: p.capabilities.clone(),
            pid_namespace: pid_ns,
            pid_namespace_reason: pid_reason,
            host_read_only: host_ro,
            read_only_inputs: inputs,
            read_only_inputs_reason: inputs_reason,
        };
        (
            Self {
                pid_namespace: pid_ns,
                mount_namespace: pid_ns || writable.is_some() || !read_only.is_empty(),
                host_read_only,
                writable,
                read_only,
                identity,
                drop_privileges: p.applied,
                clear_bounding: p.bounding_cleared,
                caps,
                cap_last: p.cap_last,
                record,
            },
            landlock,
        )
    }

    /// Nothing to do: no namespace, no privilege to drop (the direct channel without a
    /// read-only host).
    pub fn is_noop(&self) -> bool {
        !self.mount_namespace && !self.pid_namespace && !self.drop_privileges
    }

    /// The bounding set the child ends with, when it clears its own to exactly the kept
    /// capabilities (the clean channel with `CAP_SETPCAP`): the kept ones. `None` when it
    /// does not touch its bounding set.
    pub fn bounding_target(&self) -> Option<u64> {
        (self.drop_privileges && self.clear_bounding).then_some(self.caps)
    }

    /// The attempt's record.
    pub fn record(&self) -> &ChildIsolation {
        &self.record
    }

    /// The child runs in a PID namespace of its own (the runner starts it there, pid 2
    /// under a placeholder init) and mounts that namespace's `/proc`.
    pub fn pid_namespace(&self) -> bool {
        self.pid_namespace
    }

    /// The child gets a mount namespace of its own (or stays in a prepared one:
    /// [`Isolation::stays_in_prepared_mounts`]).
    pub fn mount_namespace(&self) -> bool {
        self.mount_namespace
    }

    /// The namespace flags for `clone` (the PID namespace is entered by the runner with
    /// `setns` before the clone, so only the mount namespace is new here).
    pub fn clone_flags(&self) -> libc::c_int {
        self.clone_flags_from(false)
    }

    /// The namespace flags for `clone` when the child joins a prepared mount namespace
    /// (see [`Isolation::enforce_mounts_from`]): then none, it unshares after joining.
    pub fn clone_flags_from(&self, prepared: bool) -> libc::c_int {
        if self.mount_namespace && !(prepared && self.pid_namespace) {
            libc::CLONE_NEWNS
        } else {
            0
        }
    }

    /// The mounts of the child's private mount namespace: nothing propagates back to the
    /// host; a fresh `/proc` for its PID namespace; the declared read-only inputs bound
    /// read-only; the whole host read-only (the baseline); the scratch writable.
    /// Before `chdir` (a bind mount of the working directory is only seen by a new lookup).
    ///
    /// # Safety
    /// Only in a cloned child, before `execve`.
    pub unsafe fn enforce_mounts(&self) -> Result<(), (SetupStep, i32)> {
        // SAFETY: as documented above.
        unsafe { self.enforce_mounts_from(None) }
    }

    /// [`Isolation::enforce_mounts`], where `prepared` (a pidfd) names a process whose
    /// mount namespace is already private with this child's PID namespace's `/proc`
    /// mounted (a shared namespace's init, `exec::zygote`): the child, cloned without
    /// `CLONE_NEWNS`, joins that mount namespace and makes itself a private copy of it
    /// instead of mounting a `/proc` of its own. Either way it ends in a mount namespace
    /// where `/` is private and `/proc` is its PID namespace's: its own, or, when
    /// [`Isolation::stays_in_prepared_mounts`], the prepared one itself.
    ///
    /// # Safety
    /// Only in a cloned child, before `execve`.
    pub unsafe fn enforce_mounts_from(
        &self,
        prepared: Option<libc::c_int>,
    ) -> Result<(), (SetupStep, i32)> {
        // SAFETY: as documented above.
        unsafe {
            self.enforce_mounts_in(match prepared {
                Some(fd) => Prepared::Join(fd),
                None => Prepared::No,
            })
        }
    }

    /// [`Isolation::enforce_mounts_from`] for a child born in the prepared mount namespace
    /// already: its parent (a fork server, single-threaded) joined it with
    /// `setns(init pidfd, CLONE_NEWNS)` before the clone, once per namespace instead of
    /// once per child, and cloned it without `CLONE_NEWNS`
    /// ([`Isolation::clone_flags_from`] with `prepared`). The same steps as joining it
    /// here, without the `setns`: the child is in exactly the namespace (and at its root)
    /// where that `setns` would have put it, and copies it unless
    /// [`Isolation::stays_in_prepared_mounts`]. Only for a child in the PID namespace
    /// of that init (`pid_namespace`); any other child is cloned where the server's own
    /// mount namespace is.
    ///
    /// # Safety
    /// Only in a cloned child, before `execve`.
    pub unsafe fn enforce_mounts_born_in_prepared(&self) -> Result<(), (SetupStep, i32)> {
        // SAFETY: as documented above.
        unsafe { self.enforce_mounts_in(Prepared::BornIn) }
    }

    /// The mount steps, from where the child's mount namespace starts.
    ///
    /// # Safety
    /// Only in a cloned child, before `execve`.
    unsafe fn enforce_mounts_in(&self, prepared: Prepared) -> Result<(), (SetupStep, i32)> {
        if !self.mount_namespace {
            return Ok(());
        }
        let step = || (SetupStep::Namespaces, errno());
        let prepared = if self.pid_namespace {
            prepared
        } else {
            Prepared::No
        };
        // SAFETY: mount(2) on static strings and a prepared C string; this child only.
        unsafe {
            match prepared {
                Prepared::Join(fd) => {
                    if libc::setns(fd, libc::CLONE_NEWNS) != 0
                        || !self.stays_in_prepared_mounts() && libc::unshare(libc::CLONE_NEWNS) != 0
                    {
                        return Err(step());
                    }
                }
                Prepared::BornIn => {
                    if !self.stays_in_prepared_mounts() && libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return Err(step());
                    }
                }
                Prepared::No => {
                    if !make_root_private() {
                        return Err(step());
                    }
                }
            }
            if self.pid_namespace && matches!(prepared, Prepared::No) && !mount_proc() {
                return Err(step());
            }
            // The scratch directory becomes a mount of its own first, so that it is copied
            // into every read-only bind above it and can be made writable again last.
            if let Some(dir) = &self.writable
                && libc::mount(
                    dir.as_ptr(),
                    dir.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ) != 0
            {
                return Err(step());
            }
            for (path, recursive) in &self.read_only {
                if libc::mount(
                    path.as_ptr(),
                    path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ) != 0
                    || mount_setattr_flags(path.as_ptr(), *recursive, MOUNT_ATTR_RDONLY, 0) != 0
                {
                    return Err(step());
                }
            }
            if self.host_read_only && mount_setattr(c"/".as_ptr(), MOUNT_ATTR_RDONLY, 0) != 0 {
                return Err(step());
            }
            if let Some(dir) = &self.writable
                && mount_setattr(dir.as_ptr(), 0, MOUNT_ATTR_RDONLY) != 0
            {
                return Err(step());
            }
        }
        Ok(())
    }

    /// The child ends in a mount namespace of its own (made by its clone or its `unshare`,
    /// torn down when it exits), not a prepared one it stays in: `prepared` as for
    /// [`Isolation::clone_flags_from`].
    pub fn owns_mounts(&self, prepared: bool) -> bool {
        self.mount_namespace && !(prepared && self.pid_namespace && self.stays_in_prepared_mounts())
    }

    /// A child joining a prepared mount namespace (a shared PID namespace's, see
    /// [`Isolation::enforce_mounts_from`]) stays in it instead of making a private copy
    /// when the copy could never differ from it: the child mounts nothing of its own (no
    /// read-only host, no read-only inputs, so no writable scratch either) and it can never
    /// change a mount — its bounding set keeps no `CAP_SYS_ADMIN` (privileges dropped, the
    /// bounding set cleared), which every change of a mount in a namespace owned by the
    /// initial user namespace needs (a setuid helper such as `fusermount` included: the
    /// bounding set caps what `execve` grants). A mount namespace of a user namespace the
    /// child creates is a copy of its own; nothing propagates back (`/` is private).
    /// The prepared namespace is shared like its PID namespace: by one child at a time of
    /// one worker thread. Why: a private copy is torn down when the child exits, and that
    /// teardown waits for an RCU grace period (`namespace_unlock`) before the child is a
    /// zombie — 0.3 to 4 ms of every child's wall time, more on a loaded machine, the
    /// largest per-child cost of the exec driver (benches/probes.sh).
    ///
    /// Why a child with a read-only host (the exec baseline) or read-only inputs keeps a
    /// copy of its own and never shares one, not even one prepared per worker (host
    /// read-only, the child's scratch bound writable in it, one child at a time, checked
    /// and cleaned between children): the copy holds a *writable* mount (the scratch),
    /// and a mount namespace is reachable from outside through any descriptor of a
    /// directory in it. A baseline child has no Landlock domain; it opens `/` (`O_PATH`)
    /// and hands it over a Unix socket to a process outside (a concurrent child of another
    /// worker, which the between-children check never sees). Every lookup through that
    /// descriptor crosses the mounts of that namespace (mounts are found by mount and
    /// dentry, not by the namespace of who looks), so once the next child's scratch is
    /// bound writable there, the holder creates files in it — measured on this kernel:
    /// `openat(leaked_root, "dev/shm/…/next/planted", O_CREAT)` is `EROFS` before the
    /// next child's bind and succeeds after. No check between children can see a
    /// descriptor held by another process, and none can revoke it. In a private copy the
    /// same descriptor reaches only the donor's own scratch (every other mount of its copy
    /// is read-only, and the copy is never used again);
    /// `tests/integration/run_mount_ns.rs` (`a_baseline_child_cannot_plant_…`) keeps an
    /// accomplice holding such descriptors for a whole run and finds nothing planted.
    /// Cost of the copy on Linux 6.18: the CPU of the copy (`unshare`, 21 mounts here) and
    /// of its teardown, and the teardown's grace period, which the exiting child waited
    /// for before it became a zombie whenever the other core was busy
    /// (`perf record -a -g -e sched:sched_switch` over `benches/run_gen.py DIR exec 1000
    /// on`: every baseline child asleep in `synchronize_rcu_expedited` under
    /// `free_nsproxy`). So a child that keeps a copy sends it, with a pidfd of itself, to
    /// the runner's releaser thread before its `execve` (`exec::spawn`'s `NsReleaser`),
    /// which drops it once the child has exited: the grace period is paid there. (Holding
    /// the copies in the runner's own descriptor table made things worse: every vfork
    /// child inherits that table, and the child that closed the last copy at its `execve`
    /// paid instead; the releaser's table is its own.)
    ///
    /// Not done, measured (issue 16, ninth session): a second prepared namespace per worker
    /// holding the host read-only (every mount `mount_setattr` RDONLY once; `/` private, so
    /// no host mount propagates into it later), which a baseline child would copy and bind
    /// only its scratch in. It keeps the argument above (a descriptor into the shared one
    /// reaches read-only mounts only) but saves just the recursive `mount_setattr` of each
    /// copy: 2.9 µs thread CPU over this host's 21 mounts (3,000 copies, the thread's CPU
    /// clock read around each step), against 25 µs for the copy itself, 6 µs for the bind,
    /// 2 µs for clearing RDONLY on the scratch and 25–35 µs for the teardown; in `perf
    /// record` of 4,000 exec children both `mount_setattr` calls together were 0.21 % of
    /// the run's CPU (about 2 µs per child). The copy and its teardown scale with the
    /// mounts the child must see, and no cheaper mechanism keeps its scratch the only
    /// writable mount a leaked descriptor can reach.
    pub fn stays_in_prepared_mounts(&self) -> bool {
        let sys_admin = sys_admin();
        self.pid_namespace
            && !self.host_read_only
            && self.writable.is_none()
            && self.read_only.is_empty()
            && self.drop_privileges
            && self.clear_bounding
            && self.caps & sys_admin == 0
    }

    /// Identity and capabilities: the bounding set cleared but the kept capabilities
    /// (while the child still holds `CAP_SETPCAP`), then the uid and gid (keeping the
    /// permitted set across `setresuid` when capabilities are kept), then the effective,
    /// permitted and inheritable sets set to the kept ones, the ambient set cleared and
    /// (when the child is not root) raised to them so they survive `execve`.
    ///
    /// # Safety
    /// Only in a cloned child, before `execve`.
    pub unsafe fn enforce_identity(&self) -> Result<(), (SetupStep, i32)> {
        // SAFETY: as documented above.
        unsafe { self.enforce_identity_from(None) }
    }

    /// [`Isolation::enforce_identity`] for a child that knows a superset of its bounding
    /// set (`bounding`: its parent thread's, [`thread_bounding`]), so it drops without
    /// reading the set ([`drop_bounding_known`]); `None`: it reads it.
    ///
    /// # Safety
    /// Only in a cloned child, before `execve`.
    pub unsafe fn enforce_identity_from(
        &self,
        bounding: Option<u64>,
    ) -> Result<(), (SetupStep, i32)> {
        if !self.drop_privileges {
            return Ok(());
        }
        let caps_err = || (SetupStep::Capabilities, errno());
        let id_err = || (SetupStep::Identity, errno());
        // SAFETY: prctl/setgroups/setres*id/capset on this child's own credentials, with
        // pointers to stack values.
        unsafe {
            if self.clear_bounding
                && !match bounding {
                    Some(present) => drop_bounding_known(self.caps, present),
                    None => drop_bounding_except(self.caps, u32::from(self.cap_last)),
                }
            {
                return Err(caps_err());
            }
            let mut uid_after = libc::geteuid();
            if let Some((uid, gid)) = self.identity {
                if self.caps != 0 && libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
                    return Err(id_err());
                }
                let groups = [gid];
                // The system calls, not the C library's wrappers: in a child cloned with
                // the runner's memory (`CLONE_VM`) of a multi-threaded runner, glibc would
                // see the runner's threads, take its setxid lock (held by a runner thread
                // at the clone: the child hangs) and signal them to change their ids too.
                // The system calls change this process's credentials only, as
                // `posix_spawn` does.
                if libc::syscall(libc::SYS_setgroups, 1, groups.as_ptr()) != 0
                    || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
                    || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
                {
                    return Err(id_err());
                }
                uid_after = uid;
            }
            let lo = u32::try_from(self.caps & 0xffff_ffff).unwrap_or(0);
            let hi = u32::try_from(self.caps >> 32).unwrap_or(0);
            let header = CapHeader {
                version: LINUX_CAPABILITY_VERSION_3,
                pid: 0,
            };
            let data = [
                CapData {
                    effective: lo,
                    permitted: lo,
                    inheritable: lo,
                },
                CapData {
                    effective: hi,
                    permitted: hi,
                    inheritable: hi,
                },
            ];
            if libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) != 0 {
                return Err(caps_err());
            }
            if libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(caps_err());
            }
            if uid_after != 0 {
                for n in 0..=u32::from(self.cap_last) {
                    if self.caps & (1u64 << n) != 0
                        && libc::prctl(
                            libc::PR_CAP_AMBIENT,
                            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                            libc::c_ulong::from(n),
                            0,
                            0,
                        ) != 0
                    {
                        return Err(caps_err());
                    }
                }
            }
        }
        Ok(())
    }
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(AT_FDCWD, path, AT_RECURSIVE, {set, clr})`; 0 or -1.
///
/// # Safety
/// `path` is a valid C string.
unsafe fn mount_setattr(path: *const libc::c_char, set: u64, clr: u64) -> libc::c_long {
    // SAFETY: as the caller guarantees.
    unsafe { mount_setattr_flags(path, true, set, clr) }
}

/// `mount_setattr` on `path` (its whole subtree of mounts when `recursive`); 0 or -1.
///
/// # Safety
/// `path` is a valid C string.
unsafe fn mount_setattr_flags(
    path: *const libc::c_char,
    recursive: bool,
    set: u64,
    clr: u64,
) -> libc::c_long {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid path and a pointer to a stack value of the size passed.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path,
            if recursive { libc::AT_RECURSIVE } else { 0 },
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    }
}

/// The declared read-only inputs to bind read-only (the scenario lane: the baseline's host
/// is read-only already), with the attempt's record of them and why they are not bound
/// when they cannot be. An input that exists is bound with everything beneath it; one
/// that does not exist cannot be bound, so its nearest existing ancestor is (that mount
/// only), which keeps the program from creating it. Inputs inside the child's scratch
/// are its own and skipped.
fn read_only_inputs(
    req: &ChildRequest<'_>,
    host_read_only: bool,
) -> (Vec<(CString, bool)>, Vec<String>, Option<String>) {
    if req.read_only_inputs.is_empty() || host_read_only {
        return (Vec::new(), Vec::new(), None);
    }
    if req.privileges.baseline_host_read_only != RO_MOUNT_NAMESPACE {
        return (
            Vec::new(),
            Vec::new(),
            Some(
                "declared read-only inputs are kept read-only with a mount namespace, which this runner cannot create; the profile alone decides".into(),
            ),
        );
    }
    let mut binds: Vec<(CString, bool)> = Vec::new();
    let mut record = Vec::new();
    for input in req.read_only_inputs {
        let path = Path::new(input);
        // `/proc` is the child's own (a fresh one in its PID namespace): nothing of the
        // host's file system to keep.
        if !path.is_absolute() || path.starts_with("/proc") {
            continue;
        }
        let res = super::paths::resolve(path, Path::new("/"), true);
        let (target, recursive, note) = if res.exists {
            (res.canonical.clone(), true, input.clone())
        } else {
            let mut a = res.canonical.as_path();
            while !a.exists() {
                match a.parent() {
                    Some(p) => a = p,
                    None => break,
                }
            }
            (
                a.to_path_buf(),
                false,
                format!("{} (for `{input}`, which does not exist)", a.display()),
            )
        };
        if target.starts_with(req.scratch) {
            continue;
        }
        let Ok(c) = CString::new(target.as_os_str().as_bytes()) else {
            continue;
        };
        if !binds.iter().any(|(b, r)| *b == c && *r == recursive) {
            binds.push((c, recursive));
            record.push(note);
        }
    }
    record.sort();
    (binds, record, None)
}

/// The Landlock ruleset that keeps the host read-only but `dir` (and the character devices
/// programs write to) when no mount namespace can: every write right handled, all of them
/// granted beneath `dir`.
fn read_only_ruleset(dir: &Path) -> LandlockSpec {
    // Rights of ABI 3 (truncate), the oldest that can express "no writes"; refer (ABI 2)
    // is handled implicitly.
    let write = fs::WRITE_FILE
        | fs::REMOVE_DIR
        | fs::REMOVE_FILE
        | fs::MAKE_CHAR
        | fs::MAKE_DIR
        | fs::MAKE_REG
        | fs::MAKE_SOCK
        | fs::MAKE_FIFO
        | fs::MAKE_BLOCK
        | fs::MAKE_SYM
        | fs::REFER
        | fs::TRUNCATE;
    let mut paths = vec![(dir.to_string_lossy().into_owned(), write)];
    for dev in ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"] {
        if Path::new(dev).exists() {
            paths.push((dev.to_string(), fs::WRITE_FILE | fs::TRUNCATE));
        }
    }
    LandlockSpec {
        hard: false,
        fs: write,
        net: 0,
        scopes: 0,
        paths,
        ports: Vec::new(),
    }
}

/// `spec` with `extra` as its Landlock ruleset (the baseline has none of its own).
pub fn with_landlock(spec: &ApplySpec, extra: LandlockSpec) -> ApplySpec {
    ApplySpec {
        landlock: Some(extra),
        ..spec.clone()
    }
}

/// Where a child's mount namespace starts ([`Isolation::enforce_mounts_in`]).
#[derive(Debug, Clone, Copy)]
enum Prepared {
    /// Cloned with `CLONE_NEWNS`: a copy of its parent's.
    No,
    /// It joins the prepared namespace of the init with this pidfd.
    Join(libc::c_int),
    /// Born in the prepared namespace (its parent joined it before the clone).
    BornIn,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::registry::Identity;

    fn profile(caps: &[LinuxCapability], identity: Option<Identity>) -> Profile {
        Profile {
            capabilities: caps.to_vec(),
            identity,
            ..Profile::default()
        }
    }

    #[test]
    fn root_keeps_only_what_the_profile_names() {
        let (c, hard, soft) = compile(&profile(&[], None), &RunnerPrivileges::root(), true);
        assert!(c.applied && c.capabilities.is_empty());
        assert!(c.pid_namespace && c.bounding_cleared);
        assert_eq!(c.baseline_host_read_only, RO_MOUNT_NAMESPACE);
        assert!(hard.is_empty() && soft.is_empty());
        let (c, _, _) = compile(
            &profile(
                &[LinuxCapability::NetRaw, LinuxCapability::Chown],
                Some(Identity {
                    uid: 65534,
                    gid: 65534,
                }),
            ),
            &RunnerPrivileges::root(),
            true,
        );
        assert_eq!(c.capabilities, vec!["CAP_CHOWN", "CAP_NET_RAW"]);
        assert_eq!((c.uid, c.gid), (65534, 65534));
        assert_eq!(caps_mask(&c.capabilities), (1 << 0) | (1 << 13));
    }

    #[test]
    fn an_unprivileged_runner_records_why() {
        let user = RunnerPrivileges {
            euid: 1000,
            egid: 1000,
            effective: 0,
            bounding: all_caps(40),
            cap_last: 40,
            landlock: true,
        };
        let (c, hard, soft) = compile(
            &profile(
                &[LinuxCapability::NetRaw],
                Some(Identity { uid: 0, gid: 0 }),
            ),
            &user,
            true,
        );
        assert!(!c.pid_namespace);
        assert!(!c.bounding_cleared);
        assert!(c.pid_namespace_reason.unwrap().contains("CAP_SYS_ADMIN"));
        assert_eq!(c.baseline_host_read_only, RO_LANDLOCK);
        assert_eq!(hard.len(), 1, "identity is never weakened");
        assert_eq!(soft.len(), 1, "a capability the runner lacks");
        // Its own identity is no switch.
        let (_, hard, _) = compile(
            &profile(
                &[],
                Some(Identity {
                    uid: 1000,
                    gid: 1000,
                }),
            ),
            &user,
            true,
        );
        assert!(hard.is_empty());
    }

    #[test]
    fn the_direct_channel_applies_nothing() {
        let (c, hard, soft) = compile(
            &profile(
                &[LinuxCapability::NetRaw],
                Some(Identity { uid: 1, gid: 1 }),
            ),
            &RunnerPrivileges::root(),
            false,
        );
        assert!(!c.applied && !c.pid_namespace);
        assert_eq!(c.baseline_host_read_only, RO_MOUNT_NAMESPACE);
        assert_eq!(hard.len(), 1);
        assert_eq!(soft.len(), 1);
    }

    #[test]
    fn names_and_masks_round_trip() {
        for mask in [0u64, 1, 1 << 40, all_caps(40), 0x1234_5678] {
            assert_eq!(caps_mask(&caps_names(mask)), mask);
        }
    }
}
