//! Facts about this host's sandboxing support and the runner's own confinement, read
//! without side effects: kernel release, Landlock ABI (the raw version syscall; the
//! `landlock` crate deliberately hides it), seccomp, no-new-privs, user namespaces and the
//! pids cgroup. Used by `status`, recorded in every run manifest, consulted by preflight.

use std::path::Path;

pub use crate::model::host::HostFacts;
/// Re-exported from [`crate::util::host`] (old path).
pub use crate::util::host::kernel_release;
use crate::util::host::uname;

/// Read the host facts.
pub fn host_facts() -> HostFacts {
    let (kernel_release, machine) = uname();
    let (landlock_abi, landlock_unavailable) = match landlock_abi() {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e)),
    };
    // SAFETY: prctl queries without pointers.
    let seccomp_mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    // SAFETY: as above.
    let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    let user_namespaces = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0);
    HostFacts {
        kernel_release,
        machine,
        hostname: crate::util::host::hostname(),
        landlock_abi,
        landlock_unavailable,
        seccomp_filter_available: Path::new("/proc/sys/kernel/seccomp/actions_avail").exists(),
        runner_seccomp_mode: u8::try_from(seccomp_mode.max(0)).unwrap_or(0),
        runner_no_new_privs: nnp == 1,
        user_namespaces,
        pids_cgroup: pids_cgroup(),
        // SAFETY: geteuid cannot fail.
        euid: unsafe { libc::geteuid() },
        cores: std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(1)),
    }
}

/// The Landlock ABI version from `landlock_create_ruleset(NULL, 0, VERSION)`, or the errno
/// name explaining why there is none.
pub fn landlock_abi() -> Result<u8, String> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the version query takes no attribute pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if rc > 0 {
        Ok(u8::try_from(rc).unwrap_or(u8::MAX))
    } else {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        Err(match errno {
            libc::ENOSYS => "ENOSYS (the kernel has no Landlock)".into(),
            libc::EOPNOTSUPP => "EOPNOTSUPP (Landlock is disabled at boot: add it to lsm=)".into(),
            other => format!("errno {other}"),
        })
    }
}

fn pids_cgroup() -> Option<String> {
    let v1 = Path::new("/sys/fs/cgroup/pids");
    if v1.join("cgroup.procs").exists() && crate::util::fsx::may_access(v1, libc::W_OK) {
        return Some(v1.display().to_string());
    }
    for v2 in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let p = Path::new(v2);
        let controllers = std::fs::read_to_string(p.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "pids")
            && crate::util::fsx::may_access(p, libc::W_OK)
        {
            return Some(p.display().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_readable_and_consistent() {
        let f = host_facts();
        assert!(!f.kernel_release.is_empty());
        assert!(f.cores >= 1);
        assert_eq!(f.landlock_abi.is_some(), f.landlock_unavailable.is_none());
    }
}
