//! The host facts recorded in every run manifest and shown by `status`: what the kernel
//! offers for sandboxing and how the runner itself is confined. Only the type lives here;
//! `sandbox::host` reads the facts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the kernel offers and how the runner itself is confined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostFacts {
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -m`.
    pub machine: String,
    /// Host name.
    pub hostname: String,
    /// Landlock ABI version, or `None` when unavailable.
    pub landlock_abi: Option<u8>,
    /// Why Landlock is unavailable (`ENOSYS`: not built in; `EOPNOTSUPP`: disabled at boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_unavailable: Option<String>,
    /// The kernel supports seccomp filters (`/proc/sys/kernel/seccomp/actions_avail`).
    pub seccomp_filter_available: bool,
    /// The runner's own seccomp mode: 0 none, 1 strict, 2 filter.
    pub runner_seccomp_mode: u8,
    /// The runner already runs with no-new-privs.
    pub runner_no_new_privs: bool,
    /// User namespaces can be created (`/proc/sys/user/max_user_namespaces` > 0).
    pub user_namespaces: bool,
    /// A pids cgroup the runner can write (v1 `pids` hierarchy or v2 with `pids`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_cgroup: Option<String>,
    /// Effective uid of the runner.
    pub euid: u32,
    /// Usable cores.
    pub cores: u32,
}

impl HostFacts {
    /// True if the runner itself is already confined by a seccomp filter (or strict mode) set
    /// by whoever started it: results may not reflect the profile alone. No-new-privs alone is
    /// not confinement here: every child of both lanes sets it anyway (the baseline's apply
    /// spec is no-new-privs and RLIMIT_CORE=0), so a runner started with it — as a container
    /// with `allowPrivilegeEscalation: false` is — produces the same children and the same
    /// outcomes. It is still recorded (`runner_no_new_privs`).
    pub fn runner_confined(&self) -> bool {
        self.runner_seccomp_mode != 0
    }
}
