//! What a profile compiles to on this host, for `describe-profile`: the same compilation a
//! run does (before any child exists: rules on a child's scratch directory stay pending),
//! with the child privileges of the clean channel, and one row per right saying whether it
//! is handled and what enforces it — Landlock (at which ABI), a seccomp group, setrlimit,
//! the pids cgroup, the child's own setup — or why this kernel drops it.

use std::path::Path;

use serde::Serialize;

use super::compile::{self, CompileContext, CompileHost, CompiledProfile};
use super::privilege::{self, RunnerPrivileges};
use super::rights::{fs, net, scope};
use super::vars::Vars;
use crate::model::registry::Profile;
use crate::model::results::Unenforceable;

/// The placeholder `${SCRATCH}` (and clean-channel `${HOME}`) of a description: rules on
/// it are per child, pending until a child exists.
pub const SCRATCH_PLACEHOLDER: &str = "/nonexistent/nexusmon-child-scratch";

/// One right (or control) and what enforces it here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RightRow {
    /// `fs`, `net`, `scope`, `seccomp`, `rlimit`, `processes` or `child`.
    pub kind: String,
    /// The right, e.g. `write-file`, `connect-tcp`, `signal`, `RLIMIT_NOFILE`.
    pub right: String,
    /// The profile asks for it (handles the right, sets the limit, names the group).
    pub requested: bool,
    /// What enforces it: `landlock (ABI n)`, `seccomp`, `setrlimit`, `pids-cgroup-v1`, …,
    /// `not handled: allowed`, or `dropped: <why>`.
    pub enforced_by: String,
}

/// A profile compiled for this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileDescription {
    /// The kernel's Landlock ABI.
    pub kernel_abi: Option<u8>,
    /// The compiled profile (the ruleset with resolved rule paths, handled rights, network,
    /// seccomp, rlimits, process limit, child privileges); absent when it cannot be
    /// compiled outside a plan.
    pub compiled: Option<CompiledProfile>,
    /// Why it cannot (an undefined plan variable in a rule path).
    pub error: Option<String>,
    /// Every right with what enforces it.
    pub rights: Vec<RightRow>,
    /// What this kernel and runner will not enforce: `dropped` (best-effort) and
    /// `unenforceable` (a `hard` profile with any does not apply).
    pub dropped: Vec<Unenforceable>,
    /// See `dropped`.
    pub unenforceable: Vec<Unenforceable>,
}

/// Compile `profile` for this host and the clean channel and describe it.
pub fn describe(profile_id: &str, profile: &Profile, profiles_file: &Path) -> ProfileDescription {
    let facts = super::host::host_facts();
    let host = CompileHost::from_facts(&facts, true);
    let mut vars = Vars::new();
    vars.set("SCRATCH", SCRATCH_PLACEHOLDER);
    vars.set("HOME", SCRATCH_PLACEHOLDER);
    vars.set("RUNNER_PID", std::process::id().to_string());
    let ctx = CompileContext {
        host: &host,
        vars: &vars,
        before_child: true,
    };
    match compile::compile(profile_id, profile, profiles_file, &ctx) {
        Ok(mut c) => {
            privilege::attach(&mut c, profile, &RunnerPrivileges::current(), true);
            ProfileDescription {
                kernel_abi: facts.landlock_abi,
                rights: rows(&c),
                dropped: c.dropped.clone(),
                unenforceable: c.unenforceable.clone(),
                compiled: Some(c),
                error: None,
            }
        }
        Err(e) => ProfileDescription {
            kernel_abi: facts.landlock_abi,
            compiled: None,
            error: Some(e.to_string()),
            rights: Vec::new(),
            dropped: Vec::new(),
            unenforceable: Vec::new(),
        },
    }
}

fn row(kind: &str, right: &str, requested: bool, enforced_by: impl Into<String>) -> RightRow {
    RightRow {
        kind: kind.into(),
        right: right.into(),
        requested,
        enforced_by: enforced_by.into(),
    }
}

/// One row per right of the compiled profile.
pub fn rows(c: &CompiledProfile) -> Vec<RightRow> {
    let kernel = c.kernel_abi.unwrap_or(0);
    let mut out = Vec::new();
    let ll = c.landlock.as_ref();
    let pin = ll.map_or(0, |l| l.abi);
    for (bit, name, abi) in fs::TABLE {
        let requested = ll.is_some_and(|l| l.fs_requested & bit != 0);
        let handled = ll.is_some_and(|l| l.fs_handled & bit != 0);
        let implicit = bit == fs::REFER && ll.is_some_and(|l| l.refer_implicit);
        let by = if handled {
            format!("landlock (ABI {abi})")
        } else if implicit {
            "landlock (implicit: any filesystem right handles cross-directory renames, which need `rename`)".into()
        } else if requested {
            format!("dropped: needs Landlock ABI {abi}, this kernel has {kernel}")
        } else if abi > pin && ll.is_some() {
            format!("not handled: allowed (beyond the pinned ABI {pin})")
        } else {
            "not handled: allowed".into()
        };
        out.push(row("fs", name, requested, by));
    }
    for (bit, name, abi) in net::TABLE {
        let requested = ll.is_some_and(|l| l.net_requested & bit != 0);
        let handled = ll.is_some_and(|l| l.net_handled & bit != 0);
        let udp = bit == net::BIND_UDP || bit == net::CONNECT_SEND_UDP;
        let by = if handled {
            format!("landlock (ABI {abi})")
        } else if udp && ll.is_some_and(|l| l.udp.deny_all && l.udp.enforced_by == "seccomp") {
            "seccomp (`udp` group: no UDP socket at all, below Landlock ABI 10)".into()
        } else if requested {
            format!("dropped: needs Landlock ABI {abi}, this kernel has {kernel}")
        } else {
            "not handled: allowed".into()
        };
        out.push(row("net", name, requested, by));
    }
    for (bit, name) in [
        (scope::SIGNAL, "signal"),
        (scope::ABSTRACT_UNIX_SOCKET, "abstract-unix-socket"),
    ] {
        let requested = ll.is_some_and(|l| l.scopes_requested & bit != 0);
        let by = if c.scoped(bit) {
            "landlock (ABI 6)".to_string()
        } else if requested {
            format!("dropped: needs Landlock ABI 6, this kernel has {kernel}")
        } else {
            "not scoped: allowed".into()
        };
        out.push(row("scope", name, requested, by));
    }
    for g in &c.seccomp {
        let name = serde_json::to_value(g)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push(row("seccomp", &name, true, "seccomp (EPERM)"));
    }
    for r in &c.rlimits {
        out.push(row(
            "rlimit",
            &r.name,
            true,
            format!("setrlimit (soft {}, hard {})", r.soft, r.hard),
        ));
    }
    if let Some(p) = &c.processes {
        out.push(row(
            "processes",
            &format!("at most {}", p.limit),
            true,
            p.enforced_by.clone(),
        ));
    }
    let child = &c.child;
    let by = |applied: bool, what: String| {
        if applied {
            what
        } else {
            "inherited from the runner (direct channel)".into()
        }
    };
    out.push(row(
        "child",
        "capabilities",
        !child.capabilities.is_empty(),
        by(
            child.applied,
            if child.capabilities.is_empty() && child.bounding_cleared {
                format!(
                    "every capability dropped (bounding set cleared up to {})",
                    child.cap_last
                )
            } else if child.capabilities.is_empty() {
                "every capability dropped (the bounding set stays the runner's: it lacks CAP_SETPCAP)".to_string()
            } else {
                format!("only {} kept", child.capabilities.join(", "))
            },
        ),
    ));
    out.push(row(
        "child",
        "identity",
        child.identity,
        by(
            child.applied,
            format!("uid {}, gid {}", child.uid, child.gid),
        ),
    ));
    out.push(row(
        "child",
        "pid-namespace",
        false,
        if child.pid_namespace {
            "own PID namespace and /proc (pid 2 under a placeholder init)".to_string()
        } else {
            format!(
                "none: {}",
                child
                    .pid_namespace_reason
                    .as_deref()
                    .unwrap_or("unavailable")
            )
        },
    ));
    out.push(row(
        "child",
        "baseline-host-read-only",
        false,
        match &child.baseline_host_reason {
            Some(why) => format!("{}: {why}", child.baseline_host_read_only),
            None => child.baseline_host_read_only.clone(),
        },
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::registry::{
        Access, Compat, FsRule, FsRules, Handle, Landlock, MissingPaths, NetRules, UdpPolicy,
    };

    #[test]
    fn every_right_gets_a_row_with_its_mechanism() {
        let p = Profile {
            landlock: Some(Landlock {
                compat: Compat::BestEffort,
                abi: 10,
                fs: Some(FsRules {
                    handle: Handle::All,
                    allow: vec![
                        FsRule {
                            path: "/usr".into(),
                            access: vec![Access::Read, Access::Exec],
                            allow_lint: Vec::new(),
                        },
                        FsRule {
                            path: "${SCRATCH}".into(),
                            access: vec![Access::Write],
                            allow_lint: Vec::new(),
                        },
                    ],
                    missing_paths: MissingPaths::Error,
                }),
                net: Some(NetRules {
                    tcp_connect: Some(vec![443]),
                    udp: Some(UdpPolicy::Deny),
                    ..NetRules::default()
                }),
                scope: Vec::new(),
            }),
            ..Profile::default()
        };
        let d = describe("p", &p, Path::new("profiles.json"));
        let c = d.compiled.as_ref().expect("compiles");
        assert_eq!(d.rights.iter().filter(|r| r.kind == "fs").count(), 17);
        let get = |name: &str| d.rights.iter().find(|r| r.right == name).unwrap();
        let kernel = d.kernel_abi.unwrap_or(0);
        if kernel >= 9 {
            assert!(get("resolve-unix").enforced_by.starts_with("landlock"));
        } else {
            // Best effort on an older kernel: requested, dropped, and listed as dropped.
            assert!(get("resolve-unix").enforced_by.starts_with("dropped"));
            assert!(!d.dropped.is_empty());
        }
        if kernel >= 4 {
            assert_eq!(get("connect-tcp").enforced_by, "landlock (ABI 4)");
        }
        if kernel < 10 {
            assert!(get("connect-send-udp").enforced_by.starts_with("seccomp"));
        }
        assert_eq!(get("signal").enforced_by, "not scoped: allowed");
        // The scratch rule is pending until a child exists.
        assert!(c.per_child);
        assert_eq!(c.skipped_rules.len(), 1, "{:?}", c.skipped_rules);
        assert!(d.rights.iter().any(|r| r.right == "pid-namespace"));
    }

    #[test]
    fn a_plan_variable_cannot_be_compiled_outside_a_plan() {
        let p = Profile {
            landlock: Some(Landlock {
                compat: Compat::Hard,
                abi: 1,
                fs: Some(FsRules {
                    handle: Handle::All,
                    allow: vec![FsRule {
                        path: "${DATA_DIR}".into(),
                        access: vec![Access::Read],
                        allow_lint: Vec::new(),
                    }],
                    missing_paths: MissingPaths::Error,
                }),
                net: None,
                scope: Vec::new(),
            }),
            ..Profile::default()
        };
        let d = describe("p", &p, Path::new("profiles.json"));
        assert!(d.compiled.is_none());
        assert!(d.error.unwrap().contains("DATA_DIR"));
    }
}
