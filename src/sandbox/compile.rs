//! The profile compiler: one intermediate form per profile ([`CompiledProfile`]) that the
//! scenario lane (builtin helper and exec driver, through [`CompiledProfile::apply_spec`])
//! and the oracle (through [`CompiledProfile::fs_decide`] and friends) both consume, so the
//! two cannot drift apart.
//!
//! Compiling decides, for this kernel and this host: which rights are handled (the ABI pin
//! defines what `all` means; it is never auto-detected), every rule's resolved path
//! (symlinks followed as `open(O_PATH)` does) and the rights it grants on it, the mechanism
//! enforcing each network item (UDP: Landlock at ABI ≥ 10, else the seccomp `udp` group),
//! the rlimits, how the process limit is contained, and what cannot be enforced here and
//! why. A `hard` profile with anything unenforceable does not apply (`apply_error`); a
//! `best-effort` one records the dropped items.
//!
//! This file holds the compiled form and [`compile`], which runs the steps in order: the
//! Landlock part ([`landlock`]: ABI, filesystem handle and rules, network, scopes), then
//! seccomp, rlimits and the process limit ([`limits`]).

use std::path::Path;

use serde::Serialize;

mod landlock;
mod limits;

use super::paths;
use super::rights::{FsRights, fs, net};
use super::vars::Vars;
use crate::Result;
use crate::model::registry::{Access, Compat, Env, MissingPaths, Profile, SeccompGroup};
use crate::model::results::Unenforceable;

/// What the compiler needs to know about the host (owned: kept by the runner to compile
/// again for each child when rules depend on the child's scratch directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileHost {
    /// The kernel's Landlock ABI (`None`: no Landlock).
    pub kernel_abi: Option<u8>,
    /// Why Landlock is unavailable, when it is.
    pub landlock_unavailable: Option<String>,
    /// The runner's effective uid (root ignores RLIMIT_NPROC).
    pub euid: u32,
    /// A writable pids cgroup hierarchy, if any (`/sys/fs/cgroup/pids` is v1).
    pub pids_cgroup: Option<String>,
    /// The kernel supports seccomp filters.
    pub seccomp_available: bool,
    /// `${HOME}` is the child's scratch directory (clean channel).
    pub home_is_scratch: bool,
}

impl CompileHost {
    /// From the host facts; `clean`: the clean channel (HOME is per child).
    pub fn from_facts(f: &crate::model::host::HostFacts, clean: bool) -> Self {
        Self {
            kernel_abi: f.landlock_abi,
            landlock_unavailable: f.landlock_unavailable.clone(),
            euid: f.euid,
            pids_cgroup: f.pids_cgroup.clone(),
            seccomp_available: f.seccomp_filter_available,
            home_is_scratch: clean,
        }
    }
}

/// One compilation's context.
#[derive(Debug, Clone, Copy)]
pub struct CompileContext<'a> {
    /// The host.
    pub host: &'a CompileHost,
    /// Variables for rule paths (`SCRATCH`, `HOME`, plan variables, listener ports).
    pub vars: &'a Vars,
    /// Compiling before a child exists (preflight, manifest): a rule on the child's
    /// scratch directory that does not exist yet is not an error; it is resolved again in
    /// each child, after its fixtures are created.
    pub before_child: bool,
}

/// One compiled allow rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompiledRule {
    /// Index in `landlock.fs.allow`.
    pub index: u32,
    /// The path as written.
    pub path: String,
    /// The path with variables expanded.
    pub expanded: String,
    /// The path the rule attaches to (every symlink followed).
    pub resolved: String,
    /// The resolved path exists.
    pub exists: bool,
    /// It is a directory (rules on files grant only file rights on that file).
    pub is_dir: bool,
    /// The access words as written.
    pub access: Vec<Access>,
    /// Rights requested from the kernel for this rule (words under the pin, handled
    /// requested rights only, file rights only on a file).
    pub requested_rights: FsRights,
    /// Rights the rule effectively grants (after a best-effort downgrade).
    pub rights: FsRights,
    /// Their names.
    pub rights_names: Vec<String>,
    /// True if skipped (`missing_paths: skip` and the path does not exist).
    pub skipped: bool,
    /// The inode the rule attaches to (device, inode number), as the kernel ties a rule
    /// to the inode its path reaches when the ruleset is built; `None` if the path does not
    /// exist. Not written to files (it changes from run to run).
    #[serde(skip)]
    pub inode: Option<(u64, u64)>,
}

impl CompiledRule {
    /// True if the rule covers a path whose walk to the root meets `ancestry` (from
    /// [`paths::ancestry`]): its inode is the path's or an ancestor's, as for the kernel,
    /// which walks from the file up and looks up each inode's rule (so a rule reaches
    /// every hard link and bind mount of its inode; a rule on a file covers that file).
    pub fn covers_ancestry(&self, ancestry: &[Option<(u64, u64)>]) -> bool {
        !self.skipped && self.inode.is_some() && ancestry.contains(&self.inode)
    }

    /// True if the rule covers `canonical` ([`CompiledRule::covers_ancestry`]).
    pub fn covers(&self, canonical: &Path) -> bool {
        self.covers_ancestry(&paths::ancestry(canonical))
    }
}

/// UDP handling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UdpCompiled {
    /// `net.udp: deny`.
    pub deny_all: bool,
    /// What enforces UDP restrictions: `landlock`, `seccomp` or `none`.
    pub enforced_by: String,
    /// Ports UDP may send to (Landlock ABI 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<Vec<u16>>,
    /// Ports UDP may bind (Landlock ABI 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<Vec<u16>>,
}

/// The Landlock part of a compiled profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompiledLandlock {
    /// The pinned ABI.
    pub abi: u8,
    /// Filesystem rights requested from the kernel as handled.
    pub fs_requested: FsRights,
    /// Filesystem rights effectively handled (what the oracle judges).
    pub fs_handled: FsRights,
    /// Their names.
    pub fs_handled_names: Vec<String>,
    /// `refer` is handled implicitly by any ruleset that handles a filesystem right (the
    /// kernel denies cross-directory renames with EXDEV unless a rule grants `rename`).
    pub refer_implicit: bool,
    /// The allow rules.
    pub rules: Vec<CompiledRule>,
    /// `error` or `skip`.
    pub missing_paths: MissingPaths,
    /// Network rights requested as handled.
    pub net_requested: u64,
    /// Network rights effectively handled.
    pub net_handled: u64,
    /// Their names.
    pub net_handled_names: Vec<String>,
    /// Ports TCP connect may reach (handled when present).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_connect: Option<Vec<u16>>,
    /// Ports TCP bind may use (handled when present).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_bind: Option<Vec<u16>>,
    /// UDP.
    pub udp: UdpCompiled,
    /// Scopes requested.
    pub scopes_requested: u64,
    /// Scopes effectively enforced.
    pub scopes: u64,
    /// Their names.
    pub scope_names: Vec<String>,
}

/// One rlimit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RlimitSpec {
    /// `RLIMIT_CPU`, …
    pub name: String,
    /// The resource number.
    pub resource: u32,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// How the process limit is contained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessLimit {
    /// Maximum processes alive at once in the probe's tree.
    pub limit: u64,
    /// `pids-cgroup-v1`, `pids-cgroup-v2`, `rlimit-nproc`, or `none`.
    pub enforced_by: String,
    /// The cgroup hierarchy used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_root: Option<String>,
    /// Caveat, e.g. RLIMIT_NPROC counts every process of the uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A compiled profile: the one form both the scenario lane and the oracle consume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompiledProfile {
    /// The profile id.
    pub profile_id: String,
    /// `hard` or `best-effort`.
    pub compat: Compat,
    /// The kernel's Landlock ABI.
    pub kernel_abi: Option<u8>,
    /// Some rule depends on the child's scratch directory (`${SCRATCH}`, or `${HOME}` on
    /// the clean channel): the profile is compiled again for each child, after its
    /// fixtures exist.
    pub per_child: bool,
    /// Landlock rules (absent: the profile has none).
    pub landlock: Option<CompiledLandlock>,
    /// Seccomp deny groups installed (requested plus implied), sorted.
    pub seccomp: Vec<SeccompGroup>,
    /// rlimits set in the scenario lane (RLIMIT_CORE=0 always).
    pub rlimits: Vec<RlimitSpec>,
    /// The process limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<ProcessLimit>,
    /// `limits.wall_timeout_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_timeout_ms: Option<u64>,
    /// `limits.kill_grace_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_grace_ms: Option<u64>,
    /// The environment policy.
    pub env: Env,
    /// Items this host cannot enforce (a `hard` profile with any does not apply).
    pub unenforceable: Vec<Unenforceable>,
    /// Items a `best-effort` profile gives up on this host.
    pub dropped: Vec<Unenforceable>,
    /// Rules skipped because their path does not exist.
    pub skipped_rules: Vec<String>,
    /// Why the profile cannot be applied, if it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_error: Option<String>,
    /// Who its children are and what they can see (filled by [`super::privilege::attach`]
    /// for the runner and channel; the default until then).
    pub child: crate::model::results::ChildPrivileges,
}

/// What a child applies to itself (the helper) or has applied in `pre_exec` (exec probes):
/// derived from a [`CompiledProfile`] only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ApplySpec {
    /// Landlock ruleset to build and enforce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock: Option<LandlockSpec>,
    /// Seccomp deny groups (installed last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seccomp: Vec<SeccompGroup>,
    /// rlimits (set first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<RlimitSpec>,
    /// Set `no_new_privs`.
    pub nnp: bool,
}

/// The Landlock ruleset to build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LandlockSpec {
    /// HardRequirement (else BestEffort).
    pub hard: bool,
    /// Handled filesystem rights.
    pub fs: u64,
    /// Handled network rights.
    pub net: u64,
    /// Scopes.
    pub scopes: u64,
    /// Path rules: (resolved path, rights).
    pub paths: Vec<(String, u64)>,
    /// Port rules: (port, rights).
    pub ports: Vec<(u16, u64)>,
}

/// The result of checking one filesystem right on one canonical path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsDecision {
    /// The profile does not handle the right: the kernel allows it.
    Unhandled,
    /// A rule grants it.
    Granted(usize),
    /// No rule on the path or an ancestor grants it.
    Denied,
    /// The profile has no Landlock filesystem rules at all.
    NoLandlock,
}

/// A port decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortDecision {
    /// Not handled.
    Unhandled,
    /// The port is in the allow list.
    Granted,
    /// It is not.
    Denied,
}

impl CompiledProfile {
    /// The filesystem rights the kernel restricts: the handled ones, plus `refer`, which
    /// any ruleset handling a filesystem right denies unless a rule grants it.
    pub fn fs_restricted(&self) -> FsRights {
        self.landlock.as_ref().map_or(0, |ll| {
            ll.fs_handled | if ll.refer_implicit { fs::REFER } else { 0 }
        })
    }

    /// Decide one filesystem right on a canonical path: the shared matcher of the oracle
    /// (the ruleset builder adds exactly these rules with exactly these rights).
    pub fn fs_decide(&self, canonical: &Path, right: FsRights) -> FsDecision {
        self.fs_decide_in(right, || paths::ancestry(canonical))
    }

    /// [`CompiledProfile::fs_decide`] with the path's [`paths::ancestry`] given (asked for
    /// only when a rule must be matched).
    pub fn fs_decide_in<A: std::ops::Deref<Target = [Option<(u64, u64)>]>>(
        &self,
        right: FsRights,
        ancestry: impl FnOnce() -> A,
    ) -> FsDecision {
        let Some(ll) = &self.landlock else {
            return FsDecision::NoLandlock;
        };
        if self.fs_restricted() & right == 0 {
            return FsDecision::Unhandled;
        }
        let ancestry = ancestry();
        ll.rules
            .iter()
            .position(|r| r.rights & right != 0 && r.covers_ancestry(&ancestry))
            .map_or(FsDecision::Denied, FsDecision::Granted)
    }

    /// The restricted rights granted on `canonical` by the rules on it or an ancestor
    /// (what the kernel's walk from it to the root collects); without `with_root`, a rule
    /// on `/` itself is left out.
    pub fn fs_granted(&self, canonical: &Path, with_root: bool) -> FsRights {
        let Some(ll) = &self.landlock else {
            return 0;
        };
        let mut ancestry = paths::ancestry(canonical);
        if !with_root {
            ancestry.pop();
        }
        ll.rules
            .iter()
            .filter(|r| r.covers_ancestry(&ancestry))
            .fold(0, |acc, r| acc | r.rights)
            & self.fs_restricted()
    }

    /// The restricted rights granted by rules on `path`'s own inode (not its ancestors),
    /// without following a final symlink: what a renamed file or directory carries with it.
    pub fn fs_granted_on_itself(&self, path: &Path) -> FsRights {
        let Some(ll) = &self.landlock else {
            return 0;
        };
        let own = paths::ancestry(path).into_iter().next().flatten();
        ll.rules
            .iter()
            .filter(|r| !r.skipped && r.inode.is_some() && r.inode == own)
            .fold(0, |acc, r| acc | r.rights)
            & self.fs_restricted()
    }

    /// Decide a TCP right (`net::CONNECT_TCP` or `net::BIND_TCP`) on a port.
    pub fn port_decide(&self, right: u64, port: u16) -> PortDecision {
        let Some(ll) = &self.landlock else {
            return PortDecision::Unhandled;
        };
        if ll.net_handled & right == 0 {
            return PortDecision::Unhandled;
        }
        let list = match right {
            net::CONNECT_TCP => ll.tcp_connect.as_deref(),
            net::BIND_TCP => ll.tcp_bind.as_deref(),
            net::CONNECT_SEND_UDP => ll.udp.connect.as_deref(),
            net::BIND_UDP => ll.udp.bind.as_deref(),
            _ => None,
        };
        if list.is_some_and(|l| l.contains(&port)) {
            PortDecision::Granted
        } else {
            PortDecision::Denied
        }
    }

    /// True if the scope bit is effectively enforced.
    pub fn scoped(&self, bit: u64) -> bool {
        self.landlock.as_ref().is_some_and(|l| l.scopes & bit != 0)
    }

    /// What the scenario lane applies.
    pub fn apply_spec(&self) -> ApplySpec {
        let landlock = self.landlock.as_ref().and_then(|ll| {
            let mut ports = Vec::new();
            for (list, right) in [
                (&ll.tcp_connect, net::CONNECT_TCP),
                (&ll.tcp_bind, net::BIND_TCP),
                (&ll.udp.connect, net::CONNECT_SEND_UDP),
                (&ll.udp.bind, net::BIND_UDP),
            ] {
                if ll.net_requested & right == 0 {
                    continue;
                }
                for p in list.iter().flatten() {
                    ports.push((*p, right));
                }
            }
            let spec = LandlockSpec {
                hard: self.compat == Compat::Hard,
                fs: ll.fs_requested,
                net: ll.net_requested,
                scopes: ll.scopes_requested,
                paths: ll
                    .rules
                    .iter()
                    .filter(|r| !r.skipped && r.requested_rights != 0)
                    .map(|r| (r.resolved.clone(), r.requested_rights))
                    .collect(),
                ports,
            };
            (spec.fs != 0 || spec.net != 0 || spec.scopes != 0).then_some(spec)
        });
        ApplySpec {
            landlock,
            seccomp: self.seccomp.clone(),
            rlimits: self.rlimits.clone(),
            nnp: true,
        }
    }

    /// True if the process limit needs a pids cgroup per child.
    pub fn needs_pids_cgroup(&self) -> Option<(u64, &str)> {
        self.processes.as_ref().and_then(|p| {
            p.cgroup_root
                .as_deref()
                .filter(|_| p.enforced_by.starts_with("pids-cgroup"))
                .map(|root| (p.limit, root))
        })
    }
}

/// The apply spec of the baseline lane: nothing but `no_new_privs` and RLIMIT_CORE=0 (the
/// same spawn path, minus the profile).
pub fn baseline_spec() -> ApplySpec {
    ApplySpec {
        landlock: None,
        seccomp: Vec::new(),
        rlimits: vec![core_limit()],
        nnp: true,
    }
}

fn core_limit() -> RlimitSpec {
    RlimitSpec {
        name: "RLIMIT_CORE".into(),
        resource: libc::RLIMIT_CORE,
        soft: 0,
        hard: 0,
    }
}

/// Collects unenforceable items: `hard` → unenforceable, `best-effort` → dropped.
struct Gaps {
    hard: bool,
    unenforceable: Vec<Unenforceable>,
    dropped: Vec<Unenforceable>,
}

impl Gaps {
    fn add(&mut self, item: impl Into<String>, reason: impl Into<String>) {
        let u = Unenforceable {
            item: item.into(),
            reason: reason.into(),
        };
        if self.hard {
            self.unenforceable.push(u);
        } else {
            self.dropped.push(u);
        }
    }

    /// Not a matter of compat: always unenforceable.
    fn fatal(&mut self, item: impl Into<String>, reason: impl Into<String>) {
        self.unenforceable.push(Unenforceable {
            item: item.into(),
            reason: reason.into(),
        });
    }

    /// `(unenforceable, dropped, apply_error)`: both lists sorted and deduplicated, and the
    /// error a profile with anything unenforceable fails to apply with.
    fn finish(self) -> (Vec<Unenforceable>, Vec<Unenforceable>, Option<String>) {
        let mut unenforceable = self.unenforceable;
        unenforceable.sort();
        unenforceable.dedup();
        let mut dropped = self.dropped;
        dropped.sort();
        dropped.dedup();
        let apply_error = if unenforceable.is_empty() {
            None
        } else {
            Some(
                unenforceable
                    .iter()
                    .map(|u| format!("{}: {}", u.item, u.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        };
        (unenforceable, dropped, apply_error)
    }
}

/// One compilation in progress: what its steps ([`landlock`], [`limits`]) read and add to.
struct Build<'a> {
    profile_id: &'a str,
    profiles_file: &'a Path,
    ctx: CompileContext<'a>,
    /// The kernel's Landlock ABI (0: none).
    kernel: u8,
    gaps: Gaps,
    /// Seccomp deny groups: requested, plus `udp` where Landlock cannot restrict UDP.
    seccomp: Vec<SeccompGroup>,
    skipped_rules: Vec<String>,
    per_child: bool,
}

/// Compile `profile` for this host. Errors are input errors (an undefined variable in a
/// rule path, a relative rule path); everything the host cannot enforce is recorded in the
/// result instead.
pub fn compile(
    profile_id: &str,
    profile: &Profile,
    profiles_file: &Path,
    ctx: &CompileContext<'_>,
) -> Result<CompiledProfile> {
    let compat = profile.landlock.as_ref().map_or(Compat::Hard, |l| l.compat);
    let mut b = Build {
        profile_id,
        profiles_file,
        ctx: *ctx,
        kernel: ctx.host.kernel_abi.unwrap_or(0),
        gaps: Gaps {
            hard: compat == Compat::Hard,
            unenforceable: Vec::new(),
            dropped: Vec::new(),
        },
        seccomp: profile
            .seccomp
            .as_ref()
            .map(|s| s.deny_groups.clone())
            .unwrap_or_default(),
        skipped_rules: Vec::new(),
        per_child: false,
    };
    let landlock = match &profile.landlock {
        None => None,
        Some(ll) => Some(b.landlock(ll)?),
    };
    b.finish_seccomp();
    let l = &profile.limits;
    let (rlimits, processes) = b.limits(l);
    let (unenforceable, dropped, apply_error) = b.gaps.finish();
    Ok(CompiledProfile {
        profile_id: profile_id.to_string(),
        compat,
        kernel_abi: ctx.host.kernel_abi,
        per_child: b.per_child,
        landlock,
        seccomp: b.seccomp,
        rlimits,
        processes,
        wall_timeout_ms: l.wall_timeout_ms,
        kill_grace_ms: l.kill_grace_ms,
        env: profile.env.clone(),
        unenforceable,
        dropped,
        skipped_rules: b.skipped_rules,
        apply_error,
        child: crate::model::results::ChildPrivileges::default(),
    })
}

/// The compiled form as a JSON value for the manifest.
pub fn to_manifest_value(c: &CompiledProfile) -> serde_json::Value {
    serde_json::to_value(c).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::registry::{
        FsRule, FsRules, Handle, Landlock, Limits, NetRules, ScopeWord, UdpPolicy,
    };
    use crate::sandbox::rights;

    fn host(abi: u8) -> CompileHost {
        CompileHost {
            kernel_abi: Some(abi),
            landlock_unavailable: None,
            euid: 0,
            pids_cgroup: None,
            seccomp_available: true,
            home_is_scratch: true,
        }
    }

    fn ctx<'a>(vars: &'a Vars, host: &'a CompileHost) -> CompileContext<'a> {
        CompileContext {
            host,
            vars,
            before_child: false,
        }
    }

    fn profile(compat: Compat, net: Option<NetRules>) -> Profile {
        Profile {
            landlock: Some(Landlock {
                compat,
                abi: 7,
                fs: Some(FsRules {
                    handle: Handle::All,
                    allow: vec![
                        FsRule {
                            path: "/usr".into(),
                            access: vec![Access::Read, Access::Exec],
                            ..FsRule::default()
                        },
                        FsRule {
                            path: "/etc/hostname".into(),
                            access: vec![Access::Read, Access::Create],
                            ..FsRule::default()
                        },
                    ],
                    missing_paths: MissingPaths::Error,
                }),
                net,
                scope: vec![ScopeWord::Signal],
            }),
            ..Profile::default()
        }
    }

    #[test]
    fn rules_resolve_and_file_rules_keep_file_rights_only() {
        let vars = Vars::new();
        let c = compile(
            "p",
            &profile(Compat::Hard, None),
            Path::new("profiles.json"),
            &ctx(&vars, &host(7)),
        )
        .unwrap();
        assert!(c.apply_error.is_none(), "{:?}", c.unenforceable);
        let ll = c.landlock.as_ref().unwrap();
        assert_eq!(ll.fs_handled, rights::fs_all(7));
        let file_rule = &ll.rules[1];
        assert!(!file_rule.is_dir);
        assert_eq!(
            file_rule.rights,
            fs::READ_FILE,
            "create and read-dir dropped on a file"
        );
        assert_eq!(
            c.fs_decide(Path::new("/usr/bin/env"), fs::EXECUTE),
            FsDecision::Granted(0)
        );
        assert_eq!(
            c.fs_decide(Path::new("/etc/passwd"), fs::READ_FILE),
            FsDecision::Denied
        );
        assert_eq!(
            c.fs_decide(Path::new("/etc/hostname"), fs::READ_FILE),
            FsDecision::Granted(1)
        );
        // The spec the lanes apply carries the same rules and rights.
        let spec = c.apply_spec();
        let ll_spec = spec.landlock.unwrap();
        assert_eq!(
            ll_spec.paths[1],
            ("/etc/hostname".to_string(), fs::READ_FILE)
        );
        assert!(spec.rlimits.iter().any(|r| r.name == "RLIMIT_CORE"));
    }

    #[test]
    fn udp_ports_on_abi7_fail_hard_and_drop_best_effort() {
        let vars = Vars::new();
        let net = NetRules {
            udp_connect: Some(vec![53]),
            ..NetRules::default()
        };
        let hard = compile(
            "p",
            &profile(Compat::Hard, Some(net.clone())),
            Path::new("x"),
            &ctx(&vars, &host(7)),
        )
        .unwrap();
        assert!(hard.apply_error.as_deref().unwrap().contains("udp_connect"));
        let be = compile(
            "p",
            &profile(Compat::BestEffort, Some(net)),
            Path::new("x"),
            &ctx(&vars, &host(7)),
        )
        .unwrap();
        assert!(be.apply_error.is_none());
        assert_eq!(be.dropped.len(), 1);
    }

    #[test]
    fn udp_deny_falls_back_to_seccomp_below_abi_10() {
        let vars = Vars::new();
        let net = NetRules {
            udp: Some(UdpPolicy::Deny),
            tcp_connect: Some(vec![443, 80, 443]),
            ..NetRules::default()
        };
        let c = compile(
            "p",
            &profile(Compat::Hard, Some(net)),
            Path::new("x"),
            &ctx(&vars, &host(7)),
        )
        .unwrap();
        assert!(c.apply_error.is_none());
        let ll = c.landlock.as_ref().unwrap();
        assert_eq!(ll.udp.enforced_by, "seccomp");
        assert_eq!(c.seccomp, vec![SeccompGroup::Udp, SeccompGroup::IoUring]);
        assert_eq!(ll.tcp_connect.as_deref(), Some(&[80, 443][..]));
        assert_eq!(c.port_decide(net::CONNECT_TCP, 443), PortDecision::Granted);
        assert_eq!(c.port_decide(net::CONNECT_TCP, 22), PortDecision::Denied);
        assert_eq!(c.port_decide(net::BIND_TCP, 22), PortDecision::Unhandled);
    }

    #[test]
    fn missing_paths_error_or_skip() {
        let vars = Vars::new();
        let mut p = profile(Compat::Hard, None);
        if let Some(fs) = p.landlock.as_mut().and_then(|l| l.fs.as_mut()) {
            fs.allow.push(FsRule {
                path: "/nonexistent/nexusmon".into(),
                access: vec![Access::Read],
                ..FsRule::default()
            });
        }
        let c = compile("p", &p, Path::new("x"), &ctx(&vars, &host(7))).unwrap();
        assert!(c.apply_error.as_deref().unwrap().contains("does not exist"));
        if let Some(fs) = p.landlock.as_mut().and_then(|l| l.fs.as_mut()) {
            fs.missing_paths = MissingPaths::Skip;
        }
        let c = compile("p", &p, Path::new("x"), &ctx(&vars, &host(7))).unwrap();
        assert!(c.apply_error.is_none());
        assert_eq!(c.skipped_rules.len(), 1);
        assert_eq!(c.apply_spec().landlock.unwrap().paths.len(), 2);
    }

    #[test]
    fn root_without_pids_cgroup_cannot_limit_processes() {
        let vars = Vars::new();
        let p = Profile {
            limits: Limits {
                processes: Some(8),
                ..Limits::default()
            },
            ..Profile::default()
        };
        let c = compile("p", &p, Path::new("x"), &ctx(&vars, &host(7))).unwrap();
        assert!(
            c.apply_error
                .as_deref()
                .unwrap()
                .contains("limits.processes")
        );
        let mut h = host(7);
        h.pids_cgroup = Some("/sys/fs/cgroup/pids".into());
        let c = compile("p", &p, Path::new("x"), &ctx(&vars, &h)).unwrap();
        assert!(c.apply_error.is_none());
        assert_eq!(c.processes.unwrap().enforced_by, "pids-cgroup-v1");
        let mut h = host(7);
        h.euid = 1000;
        let c = compile("p", &p, Path::new("x"), &ctx(&vars, &h)).unwrap();
        assert!(c.rlimits.iter().any(|r| r.name == "RLIMIT_NPROC"));
    }

    #[test]
    fn undefined_rule_variables_are_input_errors() {
        let vars = Vars::new();
        let mut p = profile(Compat::Hard, None);
        if let Some(fs) = p.landlock.as_mut().and_then(|l| l.fs.as_mut()) {
            fs.allow[0].path = "${NOPE}/x".into();
        }
        let e = compile("p", &p, Path::new("profiles.json"), &ctx(&vars, &host(7))).unwrap_err();
        assert!(e.to_string().contains("NOPE"), "{e}");
        assert_eq!(e.exit_code(), crate::exit_code::USAGE);
    }
}

#[cfg(test)]
mod per_child_tests {
    use super::*;
    use crate::model::registry::{FsRule, FsRules, Handle, Landlock};

    #[test]
    fn scratch_rules_are_per_child_and_pending_before_the_child_exists() {
        let host = CompileHost {
            kernel_abi: Some(7),
            landlock_unavailable: None,
            euid: 0,
            pids_cgroup: None,
            seccomp_available: true,
            home_is_scratch: true,
        };
        let p = Profile {
            landlock: Some(Landlock {
                compat: Compat::Hard,
                abi: 7,
                fs: Some(FsRules {
                    handle: Handle::All,
                    allow: vec![FsRule {
                        path: "${SCRATCH}/ws".into(),
                        access: vec![Access::Write],
                        ..FsRule::default()
                    }],
                    missing_paths: MissingPaths::Error,
                }),
                net: None,
                scope: Vec::new(),
            }),
            ..Profile::default()
        };
        let d = tempfile::tempdir().unwrap();
        let mut vars = Vars::new();
        vars.set("SCRATCH", d.path().to_string_lossy());
        let before = CompileContext {
            host: &host,
            vars: &vars,
            before_child: true,
        };
        let c = compile("p", &p, Path::new("x"), &before).unwrap();
        assert!(c.per_child);
        assert!(c.apply_error.is_none(), "{:?}", c.unenforceable);
        assert_eq!(c.skipped_rules.len(), 1);
        // In the child, after its fixtures: the rule applies (or fails if still missing).
        let child = CompileContext {
            before_child: false,
            ..before
        };
        assert!(
            compile("p", &p, Path::new("x"), &child)
                .unwrap()
                .apply_error
                .is_some()
        );
        std::fs::create_dir(d.path().join("ws")).unwrap();
        let c = compile("p", &p, Path::new("x"), &child).unwrap();
        assert!(c.apply_error.is_none());
        assert_eq!(c.apply_spec().landlock.unwrap().paths.len(), 1);
    }
}
