//! Applying an [`ApplySpec`]: building the Landlock ruleset (the `landlock` crate, with the
//! profile's compatibility level), the seccomp BPF program (`seccompiler`) and the rlimits.
//!
//! Two users, one builder:
//! - the builtin helper calls [`apply_self`] after `exec`, restricting itself (rlimits,
//!   no-new-privs, Landlock, seccomp last) and learning the kernel's [`RulesetStatus`];
//! - the exec driver calls [`Prepared::new`] once per profile in the parent and enforces the
//!   prepared ruleset fd, BPF program and rlimits in `pre_exec` with raw syscalls only
//!   ([`Prepared::enforce_in_child`]).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use landlock::{
    AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, Scope,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::compile::{ApplySpec, LandlockSpec};
use crate::model::registry::SeccompGroup;
use crate::model::results::RulesetStatus;

/// A setup step, reported on failure (the exec driver's side channel carries its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SetupStep {
    /// `setsid`.
    Setsid = 1,
    /// `close_range` of inherited descriptors.
    CloseFds = 2,
    /// Joining the pids cgroup.
    Cgroup = 3,
    /// `setrlimit`.
    Rlimit = 4,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivs = 5,
    /// Building the Landlock ruleset.
    LandlockBuild = 6,
    /// `landlock_restrict_self`.
    LandlockRestrict = 7,
    /// Building the seccomp program.
    SeccompBuild = 8,
    /// Installing the seccomp filter.
    SeccompInstall = 9,
    /// The child's private mount namespace (`/proc`, the read-only host).
    Namespaces = 10,
    /// Switching to the profile's `identity`.
    Identity = 11,
    /// Dropping capabilities.
    Capabilities = 12,
    /// The exit-watch filter of a child in its own PID namespace.
    ExitWatch = 13,
}

impl SetupStep {
    /// The step's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SetupStep::Setsid => "setsid",
            SetupStep::CloseFds => "close-fds",
            SetupStep::Cgroup => "cgroup",
            SetupStep::Rlimit => "setrlimit",
            SetupStep::NoNewPrivs => "no-new-privs",
            SetupStep::LandlockBuild => "landlock-build",
            SetupStep::LandlockRestrict => "landlock-restrict-self",
            SetupStep::SeccompBuild => "seccomp-build",
            SetupStep::SeccompInstall => "seccomp-install",
            SetupStep::Namespaces => "namespaces",
            SetupStep::Identity => "identity",
            SetupStep::Capabilities => "capabilities",
            SetupStep::ExitWatch => "exit-watch",
        }
    }

    /// The step with number `n`.
    pub fn from_u32(n: u32) -> Option<Self> {
        Some(match n {
            1 => SetupStep::Setsid,
            2 => SetupStep::CloseFds,
            3 => SetupStep::Cgroup,
            4 => SetupStep::Rlimit,
            5 => SetupStep::NoNewPrivs,
            6 => SetupStep::LandlockBuild,
            7 => SetupStep::LandlockRestrict,
            8 => SetupStep::SeccompBuild,
            9 => SetupStep::SeccompInstall,
            10 => SetupStep::Namespaces,
            11 => SetupStep::Identity,
            12 => SetupStep::Capabilities,
            13 => SetupStep::ExitWatch,
            _ => return None,
        })
    }
}

/// A failed setup step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyFailure {
    /// The step.
    pub step: SetupStep,
    /// The errno, if an OS call failed.
    pub errno: Option<i32>,
    /// What went wrong.
    pub detail: String,
}

impl ApplyFailure {
    fn new(step: SetupStep, errno: Option<i32>, detail: impl Into<String>) -> Self {
        Self {
            step,
            errno,
            detail: detail.into(),
        }
    }
}

/// What the helper learned applying a spec to itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Landlock's status (`not-enforced` without a Landlock spec).
    pub ruleset: RulesetStatus,
    /// `no_new_privs` is set.
    pub no_new_privs: bool,
    /// A seccomp filter is installed.
    pub seccomp: bool,
}

/// Build (but do not enforce) the Landlock ruleset of `spec` with the profile's
/// compatibility level. In `hard` mode any right the kernel lacks is an error here.
pub fn build_ruleset(spec: &LandlockSpec) -> Result<RulesetCreated, ApplyFailure> {
    let level = if spec.hard {
        CompatLevel::HardRequirement
    } else {
        CompatLevel::BestEffort
    };
    let fail = |e: &dyn std::fmt::Display| {
        ApplyFailure::new(SetupStep::LandlockBuild, None, plain_flags(&e.to_string()))
    };
    let mut rs = Ruleset::default().set_compatibility(level);
    if spec.fs != 0 {
        rs = rs
            .handle_access(BitFlags::<AccessFs>::from_bits_truncate(spec.fs))
            .map_err(|e| fail(&e))?;
    }
    if spec.net != 0 {
        rs = rs
            .handle_access(BitFlags::<AccessNet>::from_bits_truncate(spec.net))
            .map_err(|e| fail(&e))?;
    }
    if spec.scopes != 0 {
        rs = rs
            .scope(BitFlags::<Scope>::from_bits_truncate(spec.scopes))
            .map_err(|e| fail(&e))?;
    }
    let mut created = rs.create().map_err(|e| fail(&e))?;
    for (path, rights) in &spec.paths {
        let fd = PathFd::new(path).map_err(|e| {
            ApplyFailure::new(
                SetupStep::LandlockBuild,
                None,
                format!("cannot open rule path `{path}`: {e}"),
            )
        })?;
        created = created
            .add_rule(PathBeneath::new(
                fd,
                BitFlags::<AccessFs>::from_bits_truncate(*rights),
            ))
            .map_err(|e| fail(&e))?;
    }
    for (port, rights) in &spec.ports {
        created = created
            .add_rule(NetPort::new(
                *port,
                BitFlags::<AccessNet>::from_bits_truncate(*rights),
            ))
            .map_err(|e| fail(&e))?;
    }
    Ok(created)
}

/// The seccomp program denying `groups` with EPERM (everything else allowed).
pub fn seccomp_program(groups: &[SeccompGroup]) -> Result<BpfProgram, ApplyFailure> {
    let fail =
        |e: &dyn std::fmt::Display| ApplyFailure::new(SetupStep::SeccompBuild, None, e.to_string());
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| fail(&e))?;
    let mut rules: std::collections::BTreeMap<i64, Vec<SeccompRule>> =
        std::collections::BTreeMap::new();
    for g in groups {
        match g {
            SeccompGroup::Udp => {
                let mut v = Vec::new();
                for domain in [libc::AF_INET, libc::AF_INET6] {
                    let dom = u64::try_from(domain).unwrap_or_default();
                    let dgram = u64::try_from(libc::SOCK_DGRAM).unwrap_or_default();
                    v.push(
                        SeccompRule::new(vec![
                            SeccompCondition::new(
                                0,
                                SeccompCmpArgLen::Dword,
                                SeccompCmpOp::Eq,
                                dom,
                            )
                            .map_err(|e| fail(&e))?,
                            SeccompCondition::new(
                                1,
                                SeccompCmpArgLen::Dword,
                                SeccompCmpOp::MaskedEq(0xf),
                                dgram,
                            )
                            .map_err(|e| fail(&e))?,
                        ])
                        .map_err(|e| fail(&e))?,
                    );
                }
                rules.entry(libc::SYS_socket).or_default().extend(v);
            }
            SeccompGroup::IoUring => {
                for nr in [
                    libc::SYS_io_uring_setup,
                    libc::SYS_io_uring_enter,
                    libc::SYS_io_uring_register,
                ] {
                    rules.insert(nr, Vec::new());
                }
            }
            SeccompGroup::NewSession => {
                for nr in [libc::SYS_setsid, libc::SYS_setpgid] {
                    rules.insert(nr, Vec::new());
                }
            }
            SeccompGroup::Ptrace => {
                for nr in [
                    libc::SYS_ptrace,
                    libc::SYS_process_vm_readv,
                    libc::SYS_process_vm_writev,
                ] {
                    rules.insert(nr, Vec::new());
                }
            }
        }
    }
    let eperm = u32::try_from(libc::EPERM).unwrap_or(1);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(eperm),
        arch,
    )
    .map_err(|e| fail(&e))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| fail(&e))
}

/// Set one rlimit on the calling process.
fn set_rlimit(resource: u32, soft: u64, hard: u64) -> Result<(), i32> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: a valid pointer to a local struct.
    let rc = unsafe { libc::setrlimit(resource, &raw const lim) };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// The calling thread's errno.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Restrict the calling process (the helper, single-threaded) with `spec`: rlimits,
/// no-new-privs, Landlock, seccomp last.
pub fn apply_self(spec: &ApplySpec) -> Result<Applied, ApplyFailure> {
    for r in &spec.rlimits {
        set_rlimit(r.resource, r.soft, r.hard).map_err(|e| {
            ApplyFailure::new(SetupStep::Rlimit, Some(e), format!("setrlimit {}", r.name))
        })?;
    }
    let mut nnp = false;
    if spec.nnp {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(ApplyFailure::new(
                SetupStep::NoNewPrivs,
                Some(errno()),
                "prctl(PR_SET_NO_NEW_PRIVS)",
            ));
        }
        nnp = true;
    }
    let bpf = if spec.seccomp.is_empty() {
        None
    } else {
        Some(seccomp_program(&spec.seccomp)?)
    };
    let ruleset = match &spec.landlock {
        None => RulesetStatus::NotEnforced,
        Some(ll) => {
            // `no_new_privs` set just above is not set again by the crate (one `prctl`
            // fewer per child); without it the crate sets it, as Landlock needs.
            let created = build_ruleset(ll)?.no_new_privs(!nnp);
            let status = created.restrict_self().map_err(|e| {
                let errno = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .and_then(std::io::Error::raw_os_error);
                ApplyFailure::new(
                    SetupStep::LandlockRestrict,
                    errno,
                    plain_flags(&e.to_string()),
                )
            })?;
            match status.ruleset {
                landlock::RulesetStatus::FullyEnforced => RulesetStatus::FullyEnforced,
                landlock::RulesetStatus::PartiallyEnforced => RulesetStatus::PartiallyEnforced,
                landlock::RulesetStatus::NotEnforced => RulesetStatus::NotEnforced,
            }
        }
    };
    if let Some(bpf) = &bpf {
        install_seccomp(bpf).map_err(|e| {
            ApplyFailure::new(
                SetupStep::SeccompInstall,
                Some(e),
                "seccomp(SET_MODE_FILTER)",
            )
        })?;
    }
    if ruleset != RulesetStatus::FullyEnforced && spec.landlock.as_ref().is_some_and(|l| l.hard) {
        return Err(ApplyFailure::new(
            SetupStep::LandlockRestrict,
            None,
            format!(
                "the kernel reported the ruleset {} under compat `hard`",
                ruleset.as_str()
            ),
        ));
    }
    Ok(Applied {
        ruleset,
        no_new_privs: nnp,
        seccomp: bpf.is_some(),
    })
}

/// Install a BPF program with the raw syscall (allocation-free). Returns the errno.
fn install_seccomp(bpf: &[seccompiler::sock_filter]) -> Result<(), i32> {
    let prog = libc::sock_fprog {
        len: u16::try_from(bpf.len()).unwrap_or(u16::MAX),
        filter: bpf.as_ptr().cast_mut().cast(),
    };
    // SAFETY: the kernel copies the program; `prog` and `bpf` outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &raw const prog,
        )
    };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// A profile prepared in the parent for `pre_exec` enforcement: immutable, shared by every
/// spawn under the profile.
#[derive(Debug)]
pub struct Prepared {
    /// The Landlock ruleset fd (O_CLOEXEC; never passed to a child).
    ruleset_fd: Option<OwnedFd>,
    /// The seccomp program.
    bpf: Option<BpfProgram>,
    /// rlimits as `(resource, soft, hard)`.
    rlimits: Vec<(u32, u64, u64)>,
    /// Set no-new-privs.
    nnp: bool,
}

impl Prepared {
    /// Nothing to enforce (the builtin helper restricts itself after `execve`).
    pub fn none() -> Self {
        Self {
            ruleset_fd: None,
            bpf: None,
            rlimits: Vec::new(),
            nnp: false,
        }
    }

    /// Build everything that allocates, in the parent.
    pub fn new(spec: &ApplySpec) -> Result<Self, ApplyFailure> {
        let ruleset_fd = match &spec.landlock {
            None => None,
            Some(ll) => {
                let created = build_ruleset(ll)?;
                let fd: Option<OwnedFd> = created.into();
                if fd.is_none() && ll.hard {
                    return Err(ApplyFailure::new(
                        SetupStep::LandlockBuild,
                        None,
                        "the kernel created no Landlock ruleset under compat `hard`",
                    ));
                }
                fd
            }
        };
        let bpf = if spec.seccomp.is_empty() {
            None
        } else {
            Some(seccomp_program(&spec.seccomp)?)
        };
        Ok(Self {
            ruleset_fd,
            bpf,
            rlimits: spec
                .rlimits
                .iter()
                .map(|r| (r.resource, r.soft, r.hard))
                .collect(),
            nnp: spec.nnp,
        })
    }

    /// The descriptor the child still uses in [`Prepared::enforce_in_child`] (the Landlock
    /// ruleset's), which it must keep open until then.
    pub fn child_fd(&self) -> Option<RawFd> {
        self.ruleset_fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Enforce in the child between clone and `execve`: raw syscalls on prepared data
    /// only — no allocation, no lock, no panic. Order: rlimits, no-new-privs, Landlock,
    /// seccomp last. Returns the failed step and errno.
    ///
    /// # Safety
    /// Call only in a forked child before `execve`.
    pub unsafe fn enforce_in_child(&self) -> Result<(), (SetupStep, i32)> {
        for &(res, soft, hard) in &self.rlimits {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // SAFETY: a valid pointer to a stack value.
            if unsafe { libc::setrlimit(res, &raw const lim) } != 0 {
                return Err((SetupStep::Rlimit, errno()));
            }
        }
        if self.nnp {
            // SAFETY: integer arguments.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err((SetupStep::NoNewPrivs, errno()));
            }
        }
        if let Some(fd) = &self.ruleset_fd {
            // Logging flags only (an atomic load): while a run collects the kernel's audit
            // records, denials after `execve` are logged too (`sandbox::audit`).
            let flags = super::audit::exec_log_flags();
            // SAFETY: a valid ruleset fd owned by the parent's prepared value.
            let rc =
                unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), flags) };
            if rc != 0 {
                return Err((SetupStep::LandlockRestrict, errno()));
            }
        }
        if let Some(bpf) = &self.bpf {
            install_seccomp(bpf).map_err(|e| (SetupStep::SeccompInstall, e))?;
        }
        Ok(())
    }
}

/// The `landlock` crate's error texts show access rights as Rust debug values
/// (`BitFlags<AccessNet>(0b1000, ConnectSendUdp)`); users see the rights' names instead
/// (`connect-send-udp`), the words `describe-profile` and the preflight use. Every error
/// text of that crate goes through here before it reaches a file or a terminal.
pub fn plain_flags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("BitFlags<") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(open) = tail.find('(') else {
            out.push_str(tail);
            return out;
        };
        let Some(close) = tail[open..].find(')') else {
            out.push_str(tail);
            return out;
        };
        let inner = &tail[open + 1..open + close];
        let names = inner.split_once(", ").map_or("", |(_, n)| n);
        let words: Vec<String> = names
            .split(" | ")
            .filter(|n| !n.trim().is_empty())
            .map(|n| kebab(n.trim()))
            .collect();
        if words.is_empty() {
            out.push_str("(no rights)");
        } else {
            out.push_str(&words.join(", "));
        }
        rest = &tail[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// `ConnectSendUdp` → `connect-send-udp`.
fn kebab(name: &str) -> String {
    let mut s = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('-');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    /// Generated right sets of every kind, formatted the way the landlock crate's errors
    /// format them, never reach users as debug values.
    #[test]
    fn landlock_error_texts_name_rights_in_words() {
        use landlock::{AccessFs, AccessNet, BitFlags, Scope};
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..500 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let texts = [
                format!(
                    "fully incompatible access-rights: {:?}",
                    BitFlags::<AccessFs>::from_bits_truncate(seed)
                ),
                format!(
                    "access-rights not handled by the ruleset: {:?}; then {:?}",
                    BitFlags::<AccessNet>::from_bits_truncate(seed >> 20),
                    BitFlags::<Scope>::from_bits_truncate(seed >> 40)
                ),
            ];
            for t in texts {
                let p = plain_flags(&t);
                assert!(!p.contains("BitFlags") && !p.contains("0b"), "{t} -> {p}");
                assert!(!p.chars().any(|c| c.is_ascii_uppercase()), "{t} -> {p}");
            }
        }
        assert_eq!(
            plain_flags("x: BitFlags<AccessNet>(0b1000, ConnectSendUdp)"),
            "x: connect-send-udp"
        );
    }

    use super::*;

    #[test]
    fn seccomp_programs_build_for_every_group() {
        let bpf = seccomp_program(&[
            SeccompGroup::Udp,
            SeccompGroup::IoUring,
            SeccompGroup::NewSession,
            SeccompGroup::Ptrace,
        ])
        .unwrap();
        assert!(bpf.len() > 10);
    }

    #[test]
    fn a_hard_ruleset_with_rights_beyond_the_kernel_fails_to_build() {
        let Ok(abi) = crate::sandbox::host::landlock_abi() else {
            return;
        };
        if abi >= 10 {
            return;
        }
        let spec = LandlockSpec {
            hard: true,
            fs: 0,
            net: crate::sandbox::rights::net::BIND_UDP,
            scopes: 0,
            paths: Vec::new(),
            ports: Vec::new(),
        };
        let e = build_ruleset(&spec).unwrap_err();
        assert_eq!(e.step, SetupStep::LandlockBuild);
        let best = LandlockSpec {
            hard: false,
            ..spec
        };
        assert!(build_ruleset(&best).is_ok());
    }

    #[test]
    fn restricting_a_throwaway_thread_reports_full_enforcement() {
        if crate::sandbox::host::landlock_abi().is_err() {
            return;
        }
        // Never on a pool thread: a dedicated thread that exits with its restrictions.
        let r = std::thread::spawn(|| {
            let spec = ApplySpec {
                landlock: Some(LandlockSpec {
                    hard: true,
                    fs: crate::sandbox::rights::fs::READ_FILE,
                    net: 0,
                    scopes: 0,
                    paths: vec![("/usr".into(), crate::sandbox::rights::fs::READ_FILE)],
                    ports: Vec::new(),
                }),
                seccomp: Vec::new(),
                rlimits: Vec::new(),
                nnp: true,
            };
            let applied = apply_self(&spec).unwrap();
            let denied = std::fs::read("/etc/hostname").unwrap_err();
            (applied, denied.raw_os_error())
        })
        .join()
        .unwrap();
        assert_eq!(r.0.ruleset, RulesetStatus::FullyEnforced);
        assert_eq!(r.1, Some(libc::EACCES));
    }
}
