//! Who a child is and what it can see: the compiled child privileges of a profile (identity,
//! capabilities kept, PID namespace, the baseline's read-only host), what the preflight
//! helper observed about itself, and the per-attempt record of what one child got.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A profile's child privileges, compiled for this host and channel (in the compiled
/// profile, `apply_preflight.json` and `describe-profile`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ChildPrivileges {
    /// The privileges below are applied (the clean channel); on the `direct` channel the
    /// child inherits the runner's identity and capabilities.
    pub applied: bool,
    /// The uid the child runs as.
    pub uid: u32,
    /// The gid the child runs as (its only group when `identity` is set).
    pub gid: u32,
    /// The profile sets `identity`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub identity: bool,
    /// Capabilities the child keeps (kernel names, by number); every other one is dropped
    /// from its bounding, effective, permitted, inheritable and ambient sets.
    pub capabilities: Vec<String>,
    /// The highest capability number this kernel knows (`/proc/sys/kernel/cap_last_cap`):
    /// the bounding set is cleared up to it.
    pub cap_last: u8,
    /// The child's bounding set is cleared but the kept capabilities. False when the runner
    /// lacks `CAP_SETPCAP` (not root): the child, which is not root either, then holds no
    /// capability in its other four sets and cannot gain one (no-new-privs), but its
    /// bounding set stays the runner's.
    #[serde(default)]
    pub bounding_cleared: bool,
    /// Each child gets its own PID namespace (pid 2 there, see `namespace_init`) with its own `/proc`, so it
    /// sees neither the runner nor other children.
    pub pid_namespace: bool,
    /// Why it does not, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace_reason: Option<String>,
    /// Who is pid 1 of a child's PID namespace, and why not the child (it is pid 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_init: Option<String>,
    /// How the baseline lane of an exec probe keeps the host read-only outside the child's
    /// scratch directory: `mount-namespace` (a private mount namespace, every mount
    /// read-only but the scratch), `landlock` (write rights handled, only the scratch and
    /// `/dev/{null,zero,full,tty}` granted) or `none`.
    pub baseline_host_read_only: String,
    /// Why it is `none`, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_host_reason: Option<String>,
    /// How the runner's own environment is kept from children.
    pub runner_environ: String,
}

/// What the preflight helper saw about itself after the child setup, before the profile's
/// Landlock ruleset (read from its own `/proc/self/status`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ChildSelf {
    /// Its pid as it sees it (`2` in its own PID namespace, under the placeholder init).
    pub pid: u32,
    /// Its pid in every namespace, outermost first (`NSpid`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ns_pids: Vec<u32>,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// `CapEff` (hex, as the kernel prints it).
    pub cap_eff: String,
    /// `CapPrm`.
    pub cap_prm: String,
    /// `CapInh`.
    pub cap_inh: String,
    /// `CapBnd`.
    pub cap_bnd: String,
    /// `CapAmb`.
    pub cap_amb: String,
    /// `/proc/<runner pid>` exists in its view.
    pub sees_runner: bool,
    /// Opening `/proc/<runner pid>/environ` for reading: `allowed`, or the errno name.
    pub runner_environ: String,
}

/// What one child got (per attempt, both executing lanes).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ChildIsolation {
    /// Its uid.
    pub uid: u32,
    /// Its gid.
    pub gid: u32,
    /// Capabilities it kept (kernel names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// It ran in its own PID namespace with its own `/proc`.
    pub pid_namespace: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace_reason: Option<String>,
    /// The host outside its scratch directory was read-only (`mount-namespace`,
    /// `landlock`, or `mount-namespace+landlock` for a child that keeps `CAP_SYS_ADMIN`,
    /// which could remount its mounts writable), or `none`.
    pub host_read_only: String,
    /// The probe's declared read-only inputs (`reads`) bound read-only for it (the
    /// scenario lane; the baseline's whole host is read-only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only_inputs: Vec<String>,
    /// Why declared inputs could not be kept read-only, when they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_inputs_reason: Option<String>,
}
