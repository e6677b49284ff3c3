//! The oracle lane: a static prediction of a profile's decision for one probe, computed from
//! the same [`CompiledProfile`] the scenario lane applies, with the same rule matcher
//! ([`CompiledProfile::fs_decide`], [`CompiledProfile::port_decide`]). Nothing executes.
//!
//! Rules that mirror the kernel (`security/landlock/fs.c`, `net.c`, `task.c`), for the one
//! ruleset layer the scenario lane enforces:
//! 1. the target is normalized like the kernel walks it *in the child* (symlinks and `..`
//!    resolved; for operations on the final name only the parent is resolved;
//!    `/proc/self` is the child's own, [`paths::resolve_as_child`]) and the resolution is
//!    recorded as a path witness;
//! 2. a right the profile does not handle is allowed (`refer` excepted: any ruleset that
//!    handles a filesystem right denies it unless a rule grants it);
//! 3. otherwise it is allowed iff some rule on the path's inode or an ancestor's grants it
//!    (rules are a union: no deny, no precedence), and the verdict cites that rule, or the
//!    absence;
//! 4. opening checks what the open mode needs: `read-file` (`read-dir` for a directory),
//!    `write-file`; `file-create` is `make-reg` on the parent *and* `write-file` on the new
//!    file (it is opened for writing), which inherits from the parent;
//! 5. `execve` opens the program, its `#!` interpreters and its ELF interpreter for
//!    execution: each needs `read-file` and `execute`; the loader then needs `read-file` on
//!    the libraries (only an exec probe's program must get that far); a directory or a file
//!    without any execute bit is refused (EACCES) before Landlock is asked;
//! 6. rename: `make-*` for the source's type on the destination's parent, `remove-*` on the
//!    source's parent, and `remove-*` for what it replaces on the destination's parent; in
//!    one directory that is all; across directories `refer` is needed on both parents, and
//!    the moved file or directory must not gain any right at its destination that it did
//!    not have at its source (its own rule and its parent's, file rights for a file, every
//!    right for a directory); EACCES when a `make`/`remove` right is missing, else EXDEV.
//!    The kernel makes that comparison before applying each directory's rule on its walk
//!    up from the mount, so a rule on `/` itself, the walk's last directory, takes no part
//!    in it unless the rename is on the root mount — but when both parents end up granted
//!    every restricted right, nothing can be gained and the walk allows at once. A rename
//!    across mount points is EXDEV before Landlock is asked;
//! 7. operations Landlock does not govern are `not-enforceable`;
//! 8. network rules match the port only.

use std::path::{Path, PathBuf};

use super::compile::{CompiledProfile, FsDecision, PortDecision};
use super::elf;
use super::paths::{self, Resolution};
use super::rights::{self, FsRights, fs, net, scope};
use crate::model::registry::{Driver, Operation, SeccompGroup};
use crate::model::results::{CitedRule, OracleCheck, OracleDecision, OracleVerdict, PathWitness};

/// What the oracle is asked.
#[derive(Debug, Clone)]
pub struct OracleInput<'a> {
    /// `<profile>:<probe>`.
    pub scenario_id: &'a str,
    /// The probe.
    pub probe_id: &'a str,
    /// The operation.
    pub operation: Operation,
    /// The driver.
    pub driver: Driver,
    /// The target, variables expanded.
    pub target: Option<&'a str>,
    /// The destination (`file-rename`), variables expanded.
    pub destination: Option<&'a str>,
    /// The program an exec probe runs (after PATH lookup).
    pub program: Option<&'a Path>,
    /// Directory relative paths are resolved against (the child's working directory).
    pub base: &'a Path,
}

/// Predict the profile's decision. Returns the verdict and the path witnesses made.
///
/// Every path is looked up once per prediction ([`paths::one_view`]: the prediction is
/// made against one view of each path it reads; the next prediction reads afresh).
pub fn predict(c: &CompiledProfile, input: &OracleInput<'_>) -> (OracleVerdict, Vec<PathWitness>) {
    paths::one_view(|| predict_in_view(c, input))
}

fn predict_in_view(
    c: &CompiledProfile,
    input: &OracleInput<'_>,
) -> (OracleVerdict, Vec<PathWitness>) {
    let mut o = Oracle {
        c,
        input,
        checks: Vec::new(),
        witnesses: Vec::new(),
        notes: Vec::new(),
    };
    if input.driver == Driver::Exec
        && let Some(program) = input.program
    {
        o.program(program, "program");
    }
    o.operation();
    if let Some(e) = &c.apply_error {
        o.notes.push(format!(
            "the profile cannot be applied on this host ({e}); the verdict is for the profile as written"
        ));
    }
    for d in &c.dropped {
        o.notes.push(format!(
            "best-effort: `{}` is not enforced on this host ({}); predicted as unhandled",
            d.item, d.reason
        ));
    }
    let Oracle {
        checks,
        witnesses,
        notes,
        ..
    } = o;
    let deny = checks.iter().find(|k| k.decision == OracleDecision::Deny);
    let control = input.operation.is_control();
    let (decision, deciding) = if let Some(d) = deny {
        (OracleDecision::Deny, Some(d))
    } else if control {
        (
            OracleDecision::NotEnforceable,
            checks
                .iter()
                .rev()
                .find(|k| k.decision == OracleDecision::NotEnforceable),
        )
    } else {
        (OracleDecision::Allow, checks.last())
    };
    let (reason, rule) = deciding.map_or_else(
        || {
            (
                "nothing to check".to_string(),
                CitedRule {
                    kind: "unhandled".into(),
                    index: None,
                    path: None,
                    resolved_path: None,
                    access: Vec::new(),
                    port: None,
                },
            )
        },
        |k| (k.reason.clone(), k.rule.clone()),
    );
    let blockers = predicted_blockers(&checks);
    let verdict = OracleVerdict {
        scenario_id: input.scenario_id.to_string(),
        profile_id: c.profile_id.clone(),
        probe_id: input.probe_id.to_string(),
        operation: input.operation,
        decision,
        reason,
        rule,
        checks,
        blockers,
        notes,
    };
    (verdict, witnesses)
}

/// The kernel's audit name of a right the oracle checks (`read-file` → `fs.read_file`,
/// `connect-tcp` → `net.connect_tcp`, `scope-signal` → `scope.signal`): the `blockers`
/// field of an `AUDIT_LANDLOCK_ACCESS` record (admin-guide/LSM/landlock).
pub fn kernel_blocker(right: &str) -> String {
    let (class, word) = if let Some(rest) = right.strip_prefix("scope-") {
        ("scope", rest)
    } else if right.ends_with("-tcp") || right.ends_with("-udp") {
        ("net", right)
    } else {
        ("fs", right)
    };
    format!("{class}.{}", word.replace('-', "_"))
}

/// The blockers the kernel should name for a denial: the rights of the checks Landlock
/// denies (no rule grants them, or a scope), sorted and deduplicated. A denial by seccomp
/// or by the kernel itself (EXDEV) has no Landlock record, so none.
fn predicted_blockers(checks: &[OracleCheck]) -> Vec<String> {
    let mut out: Vec<String> = checks
        .iter()
        .filter(|k| {
            k.decision == OracleDecision::Deny && matches!(k.rule.kind.as_str(), "absent" | "scope")
        })
        .map(|k| kernel_blocker(&k.right))
        .collect();
    out.sort();
    out.dedup();
    out
}

struct Oracle<'a> {
    c: &'a CompiledProfile,
    input: &'a OracleInput<'a>,
    checks: Vec<OracleCheck>,
    witnesses: Vec<PathWitness>,
    notes: Vec<String>,
}

fn cited(kind: &str) -> CitedRule {
    CitedRule {
        kind: kind.into(),
        index: None,
        path: None,
        resolved_path: None,
        access: Vec::new(),
        port: None,
    }
}

impl Oracle<'_> {
    fn resolve(&mut self, path: &str, role: &str, follow: bool) -> Resolution {
        let r = paths::resolve_as_child(Path::new(path), self.input.base, follow);
        if let Some(n) = &r.note
            && !self.notes.contains(n)
        {
            self.notes.push(n.clone());
        }
        self.witnesses.push(PathWitness {
            scenario_id: self.input.scenario_id.to_string(),
            role: role.to_string(),
            requested: r.requested.to_string_lossy().into_owned(),
            canonical: r.canonical.to_string_lossy().into_owned(),
            is_symlink: r.is_symlink,
            exists: r.exists,
        });
        r
    }

    fn fs_check(&mut self, on: &Path, right: FsRights, role: &str) {
        let name = rights::fs_name(right);
        let on_s = on.to_string_lossy().into_owned();
        let pid = &self.c.profile_id;
        let (decision, reason, cited_rule) = match self.c.fs_decide(on, right) {
            FsDecision::NoLandlock => (
                OracleDecision::Allow,
                format!("profile `{pid}` has no Landlock filesystem rules"),
                cited("unhandled"),
            ),
            FsDecision::Unhandled => (
                OracleDecision::Allow,
                format!("`{name}` is not handled by profile `{pid}`"),
                cited("unhandled"),
            ),
            FsDecision::Granted(i) => {
                let found = self.c.landlock.as_ref().and_then(|l| l.rules.get(i));
                match found {
                    Some(r) => {
                        let words: Vec<String> =
                            r.access.iter().map(|a| a.as_str().to_string()).collect();
                        (
                            OracleDecision::Allow,
                            format!(
                                "rule {} (`{}` {}) grants `{name}` on `{on_s}`",
                                r.index,
                                r.resolved,
                                words.join("+")
                            ),
                            CitedRule {
                                kind: "fs".into(),
                                index: Some(r.index),
                                path: Some(r.path.clone()),
                                resolved_path: Some(r.resolved.clone()),
                                access: words,
                                port: None,
                            },
                        )
                    }
                    None => (
                        OracleDecision::Allow,
                        format!("a rule grants `{name}` on `{on_s}`"),
                        cited("fs"),
                    ),
                }
            }
            FsDecision::Denied => (
                OracleDecision::Deny,
                format!("no rule grants `{name}` on `{on_s}` or on any directory above it"),
                cited("absent"),
            ),
        };
        self.checks.push(OracleCheck {
            right: name.to_string(),
            on: on_s,
            role: role.to_string(),
            decision,
            reason,
            rule: cited_rule,
        });
    }

    fn port_check(&mut self, right: u64, key: &str, target: &str) {
        let pid = &self.c.profile_id;
        let name = rights::net_names(right).join("");
        let Some(port) = parse_port(target) else {
            self.checks.push(OracleCheck {
                right: name,
                on: target.to_string(),
                role: "target".into(),
                decision: OracleDecision::Allow,
                reason: format!("`{target}` is not `host:port`; nothing to judge"),
                rule: cited("unhandled"),
            });
            return;
        };
        let (decision, reason, rule) = match self.c.port_decide(right, port) {
            PortDecision::Unhandled => (
                OracleDecision::Allow,
                format!("`{name}` is not handled by profile `{pid}`"),
                cited("unhandled"),
            ),
            PortDecision::Granted => (
                OracleDecision::Allow,
                format!("`{key}` allows port {port}"),
                CitedRule {
                    port: Some(port),
                    path: Some(format!("landlock.net.{key}")),
                    ..cited("net")
                },
            ),
            PortDecision::Denied => (
                OracleDecision::Deny,
                format!("no `{key}` rule allows port {port} (rules match the port only)"),
                CitedRule {
                    port: Some(port),
                    ..cited("absent")
                },
            ),
        };
        self.checks.push(OracleCheck {
            right: name,
            on: target.to_string(),
            role: "target".into(),
            decision,
            reason,
            rule,
        });
    }

    fn scope_check(&mut self, bit: u64, scope_name: &str, what: &str, on: &str) {
        let pid = &self.c.profile_id;
        let (decision, reason, rule) = if self.c.scoped(bit) {
            (
                OracleDecision::Deny,
                format!("scope `{scope_name}` denies {what} outside the sandbox"),
                CitedRule {
                    path: Some(format!("landlock.scope {scope_name}")),
                    ..cited("scope")
                },
            )
        } else {
            (
                OracleDecision::Allow,
                format!("scope `{scope_name}` is not set by profile `{pid}`"),
                cited("unhandled"),
            )
        };
        self.checks.push(OracleCheck {
            right: format!("scope-{scope_name}"),
            on: on.to_string(),
            role: "target".into(),
            decision,
            reason,
            rule,
        });
    }

    /// `execve` of `canonical`: the kernel opens it, then each `#!` interpreter and the ELF
    /// interpreter, for execution (`read-file` and `execute` on each). Returns the
    /// libraries the loader would then open.
    fn execve(&mut self, canonical: &Path, role: &str) -> Vec<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        // What execve refuses for everyone before Landlock is asked.
        if let Some(m) = paths::stat(canonical)
            && (!m.is_file() || m.permissions().mode() & 0o111 == 0)
        {
            let what = if m.is_file() {
                "a file without any execute permission bit"
            } else {
                "not a regular file"
            };
            self.checks.push(OracleCheck {
                right: "execute".into(),
                on: canonical.to_string_lossy().into_owned(),
                role: role.to_string(),
                decision: OracleDecision::Deny,
                reason: format!(
                    "`{}` is {what}: the kernel refuses to execute it (EACCES) whatever the policy",
                    canonical.display()
                ),
                rule: cited("kernel"),
            });
        }
        self.fs_check(canonical, fs::READ_FILE, role);
        self.fs_check(canonical, fs::EXECUTE, role);
        let needs = elf::program_needs(canonical);
        for interp in &needs.execute {
            let r = self.resolve(&interp.to_string_lossy(), "interpreter", true);
            self.fs_check(&r.canonical, fs::READ_FILE, "interpreter");
            self.fs_check(&r.canonical, fs::EXECUTE, "interpreter");
        }
        self.notes.extend(needs.notes);
        needs.read
    }

    /// Running a program to completion: `execve`, then `read-file` on the libraries.
    fn program(&mut self, program: &Path, role: &str) {
        let prog = self.resolve(&program.to_string_lossy(), role, true);
        let libs = self.execve(&prog.canonical, role);
        for lib in &libs {
            let r = self.resolve(&lib.to_string_lossy(), "library", true);
            self.fs_check(&r.canonical, fs::READ_FILE, "library");
        }
    }

    fn operation(&mut self) {
        let op = self.input.operation;
        let Some(target) = self.input.target.map(str::to_string) else {
            return;
        };
        if op.is_control() {
            let follow = !matches!(op, Operation::SymlinkRead);
            let r = self.resolve(&target, "target", follow);
            self.checks.push(OracleCheck {
                right: op.as_str().to_string(),
                on: r.canonical.to_string_lossy().into_owned(),
                role: "target".into(),
                decision: OracleDecision::NotEnforceable,
                reason: format!(
                    "`{}` is not governed by Landlock (stat, chmod, chown, utime, setxattr, access, chdir and readlink cannot be restricted)",
                    op.as_str()
                ),
                rule: cited("not-governed"),
            });
            return;
        }
        match op {
            Operation::FileRead => {
                // Opening a directory for reading needs read-dir, not read-file.
                let r = self.resolve(&target, "target", true);
                let right = if paths::stat(&r.canonical).is_some_and(|m| m.is_dir()) {
                    fs::READ_DIR
                } else {
                    fs::READ_FILE
                };
                self.fs_check(&r.canonical, right, "target");
            }
            Operation::FileWrite => self.on_target(&target, fs::WRITE_FILE),
            Operation::FileTruncate => self.on_target(&target, fs::TRUNCATE),
            Operation::DirList => self.on_target(&target, fs::READ_DIR),
            Operation::FileExec => {
                let r = self.resolve(&target, "target", true);
                self.execve(&r.canonical, "target");
                self.notes.push(
                    "file-exec judges execve only; the loader's libraries (read-file) are not needed for execve to succeed".into(),
                );
            }
            Operation::FileCreate => {
                // open(O_CREAT) makes the file (make-reg on the parent), then opens it for
                // writing: write-file on the new file, which has no rule of its own.
                let r = self.on_parent(&target, fs::MAKE_REG);
                self.fs_check(
                    &r.canonical,
                    fs::WRITE_FILE,
                    "new file (opened for writing)",
                );
            }
            Operation::FileRemove => {
                self.on_parent(&target, fs::REMOVE_FILE);
            }
            Operation::DirCreate => {
                self.on_parent(&target, fs::MAKE_DIR);
            }
            Operation::DirRemove => {
                self.on_parent(&target, fs::REMOVE_DIR);
            }
            Operation::SymlinkCreate => {
                self.on_parent(&target, fs::MAKE_SYM);
            }
            Operation::FileRename => self.rename(&target),
            Operation::TcpConnect => self.port_check(net::CONNECT_TCP, "tcp_connect", &target),
            Operation::TcpBind => self.port_check(net::BIND_TCP, "tcp_bind", &target),
            Operation::UdpSend => self.udp(&target),
            Operation::SignalSend => {
                self.scope_check(scope::SIGNAL, "signal", "signals to processes", &target);
            }
            Operation::UnixAbstractConnect => self.scope_check(
                scope::ABSTRACT_UNIX_SOCKET,
                "abstract-unix-socket",
                "connections to abstract UNIX sockets created",
                &target,
            ),
            Operation::Exec if self.input.driver != Driver::Exec => {
                self.program(Path::new(&target), "program");
            }
            _ => {}
        }
    }

    fn on_target(&mut self, target: &str, right: FsRights) {
        let r = self.resolve(target, "target", true);
        self.fs_check(&r.canonical, right, "target");
    }

    fn on_parent(&mut self, target: &str, right: FsRights) -> Resolution {
        let r = self.resolve(target, "target", false);
        let parent = paths::parent_of(&r.canonical);
        self.fs_check(&parent, right, "parent of target");
        r
    }

    /// `rename(2)` as `current_check_refer_path` judges it (see the module doc, rule 6).
    fn rename(&mut self, target: &str) {
        let src = self.resolve(target, "target", false);
        let Some(destination) = self.input.destination.map(str::to_string) else {
            self.notes
                .push("file-rename without `destination`: nothing to judge".into());
            return;
        };
        let dst = self.resolve(&destination, "destination", false);
        let src_type = paths::lstat(&src.canonical).map(|m| m.file_type());
        let dst_type = paths::lstat(&dst.canonical).map(|m| m.file_type());
        let make = make_right(src_type);
        let remove_src = remove_right(src_type);
        let replaced = dst_type.map(|t| remove_right(Some(t)));
        let p1: PathBuf = paths::parent_of(&src.canonical);
        let p2: PathBuf = paths::parent_of(&dst.canonical);
        if let (Some(m1), Some(m2)) = (paths::mount_id(&p1), paths::mount_id(&p2))
            && m1 != m2
        {
            self.checks.push(OracleCheck {
                right: "same-mount".into(),
                on: p2.to_string_lossy().into_owned(),
                role: "parent of destination".into(),
                decision: OracleDecision::Deny,
                reason: format!(
                    "`{}` and `{}` are on different mounts: the kernel refuses the rename with EXDEV whatever the policy",
                    p1.display(),
                    p2.display()
                ),
                rule: cited("kernel"),
            });
            return;
        }
        // EACCES first: what the parents must allow (make, remove, remove of the replaced).
        self.fs_check(&p1, remove_src, "parent of target");
        self.fs_check(&p2, make, "parent of destination");
        if let Some(r) = replaced {
            self.fs_check(&p2, r, "parent of destination (replaces an entry)");
        }
        if p1 == p2 {
            return;
        }
        // Then EXDEV: refer on both parents, and no right gained by the move.
        self.fs_check(&p1, fs::REFER, "parent of target (cross-directory)");
        self.fs_check(&p2, fs::REFER, "parent of destination (cross-directory)");
        let restricted = self.c.fs_restricted();
        if restricted == 0 {
            return;
        }
        let relevant = if src_type.is_some_and(|t| t.is_dir()) {
            rights::fs_all_known()
        } else {
            fs::FILE_RIGHTS
        };
        // Both parents granted every restricted right: nothing can be gained. Otherwise
        // the kernel compares before applying each directory's rule on its walk up from
        // the mount, so the last one, `/`, only counts when the rename is on the root mount.
        let everything = (self.c.fs_granted(&p1, true) & restricted) == restricted
            && (self.c.fs_granted(&p2, true) & restricted) == restricted;
        let with_root = paths::mount_id(Path::new("/")) == paths::mount_id(&p1);
        let at_source =
            self.c.fs_granted(&p1, with_root) | self.c.fs_granted_on_itself(&src.canonical);
        let at_destination = self.c.fs_granted(&p2, with_root);
        let gained = if everything {
            0
        } else {
            at_destination & !at_source & restricted & relevant
        };
        let what = if src_type.is_some_and(|t| t.is_dir()) {
            "directory"
        } else {
            "file"
        };
        let (decision, reason) = if gained == 0 {
            (
                OracleDecision::Allow,
                format!(
                    "the {what} gains no right by moving from `{}` to `{}`",
                    p1.display(),
                    p2.display()
                ),
            )
        } else {
            (
                OracleDecision::Deny,
                format!(
                    "moving the {what} from `{}` to `{}` would give it {} it does not have now: the kernel refuses the reparenting with EXDEV",
                    p1.display(),
                    p2.display(),
                    rights::fs_names(gained).join(", ")
                ),
            )
        };
        self.checks.push(OracleCheck {
            right: "refer".into(),
            on: dst.canonical.to_string_lossy().into_owned(),
            role: "reparented (no right gained)".into(),
            decision,
            reason,
            rule: cited(if gained == 0 { "fs" } else { "absent" }),
        });
        if gained != 0
            || self
                .checks
                .iter()
                .any(|k| k.right == "refer" && k.decision == OracleDecision::Deny)
        {
            self.notes.push(
                "a cross-directory rename needs `refer` on both parents and must not give the moved entry new rights; the kernel answers EXDEV (EACCES if a make/remove right is missing)"
                    .into(),
            );
        }
    }

    fn udp(&mut self, target: &str) {
        let pid = &self.c.profile_id;
        if self.c.seccomp.contains(&SeccompGroup::Udp) {
            self.checks.push(OracleCheck {
                right: "udp-socket".into(),
                on: target.to_string(),
                role: "target".into(),
                decision: OracleDecision::Deny,
                reason: "the seccomp `udp` group denies UDP sockets (EPERM)".into(),
                rule: CitedRule {
                    path: Some("seccomp udp".into()),
                    ..cited("seccomp")
                },
            });
            return;
        }
        let handled = self
            .c
            .landlock
            .as_ref()
            .is_some_and(|l| l.net_handled & net::CONNECT_SEND_UDP != 0);
        if handled {
            self.port_check(net::CONNECT_SEND_UDP, "udp_connect", target);
        } else {
            self.checks.push(OracleCheck {
                right: "connect-send-udp".into(),
                on: target.to_string(),
                role: "target".into(),
                decision: OracleDecision::Allow,
                reason: format!("UDP is not restricted by profile `{pid}`"),
                rule: cited("unhandled"),
            });
        }
    }
}

/// The `make-*` right for creating an entry of this type (a missing source is judged as a
/// regular file; the kernel fails with ENOENT before asking).
fn make_right(t: Option<std::fs::FileType>) -> FsRights {
    use std::os::unix::fs::FileTypeExt;
    match t {
        Some(t) if t.is_dir() => fs::MAKE_DIR,
        Some(t) if t.is_symlink() => fs::MAKE_SYM,
        Some(t) if t.is_fifo() => fs::MAKE_FIFO,
        Some(t) if t.is_socket() => fs::MAKE_SOCK,
        Some(t) if t.is_char_device() => fs::MAKE_CHAR,
        Some(t) if t.is_block_device() => fs::MAKE_BLOCK,
        _ => fs::MAKE_REG,
    }
}

/// The `remove-*` right for removing an entry of this type.
fn remove_right(t: Option<std::fs::FileType>) -> FsRights {
    if t.is_some_and(|t| t.is_dir()) {
        fs::REMOVE_DIR
    } else {
        fs::REMOVE_FILE
    }
}

/// The port of `host:port` or `[v6]:port`.
pub fn parse_port(target: &str) -> Option<u16> {
    let (_, port) = target.rsplit_once(':')?;
    port.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::registry::{
        Access, Compat, FsRule, FsRules, Handle, Landlock, MissingPaths, NetRules, Profile,
        ScopeWord,
    };
    use crate::sandbox::compile::{CompileContext, CompileHost, compile};
    use crate::sandbox::vars::Vars;

    fn compiled(handle: Handle, allow: Vec<FsRule>) -> CompiledProfile {
        let p = Profile {
            landlock: Some(Landlock {
                compat: Compat::Hard,
                abi: 7,
                fs: Some(FsRules {
                    handle,
                    allow,
                    missing_paths: MissingPaths::Error,
                }),
                net: Some(NetRules {
                    tcp_connect: Some(vec![8080]),
                    ..NetRules::default()
                }),
                scope: vec![ScopeWord::Signal],
            }),
            ..Profile::default()
        };
        let vars = Vars::new();
        let host = CompileHost {
            kernel_abi: Some(7),
            landlock_unavailable: None,
            euid: 0,
            pids_cgroup: None,
            seccomp_available: true,
            home_is_scratch: true,
        };
        compile(
            "p",
            &p,
            Path::new("x"),
            &CompileContext {
                host: &host,
                vars: &vars,
                before_child: false,
            },
        )
        .unwrap()
    }

    fn ask(c: &CompiledProfile, op: Operation, target: &str) -> OracleVerdict {
        predict(
            c,
            &OracleInput {
                scenario_id: "p:x",
                probe_id: "x",
                operation: op,
                driver: Driver::Builtin,
                target: Some(target),
                destination: None,
                program: None,
                base: Path::new("/"),
            },
        )
        .0
    }

    fn usr_only() -> Vec<FsRule> {
        vec![FsRule {
            path: "/usr".into(),
            access: vec![Access::Read, Access::Exec],
            ..FsRule::default()
        }]
    }

    #[test]
    fn missing_rule_denies_and_says_so() {
        let c = compiled(Handle::All, usr_only());
        let v = ask(&c, Operation::FileRead, "/etc/hostname");
        assert_eq!(v.decision, OracleDecision::Deny);
        assert!(
            v.reason.contains("no rule grants `read-file`"),
            "{}",
            v.reason
        );
        assert_eq!(v.rule.kind, "absent");
        let v = ask(&c, Operation::FileRead, "/usr/lib/os-release");
        assert_eq!(v.decision, OracleDecision::Allow);
        assert_eq!(v.rule.index, Some(0));
    }

    #[test]
    fn unhandled_rights_are_allowed() {
        let c = compiled(Handle::List(vec![Access::Read]), usr_only());
        let v = ask(&c, Operation::FileWrite, "/etc/hostname");
        assert_eq!(v.decision, OracleDecision::Allow);
        assert!(
            v.reason.contains("`write-file` is not handled"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn controls_are_not_enforceable_and_ports_match() {
        let c = compiled(Handle::All, usr_only());
        assert_eq!(
            ask(&c, Operation::FileStat, "/etc/hostname").decision,
            OracleDecision::NotEnforceable
        );
        assert_eq!(
            ask(&c, Operation::TcpConnect, "127.0.0.1:8080").decision,
            OracleDecision::Allow
        );
        let v = ask(&c, Operation::TcpConnect, "[::1]:9");
        assert_eq!(v.decision, OracleDecision::Deny);
        assert_eq!(v.rule.port, Some(9));
        assert_eq!(
            ask(&c, Operation::SignalSend, "1").decision,
            OracleDecision::Deny
        );
        assert_eq!(
            ask(&c, Operation::UnixAbstractConnect, "@x").decision,
            OracleDecision::Allow
        );
    }

    #[test]
    fn exec_needs_read_and_execute_on_the_program_and_its_interpreter() {
        // /usr has read+exec (merged /usr: /lib64 links into it on Debian).
        let c = compiled(Handle::All, usr_only());
        let v = ask(&c, Operation::FileExec, "/usr/bin/true");
        assert_eq!(v.decision, OracleDecision::Allow, "{v:?}");
        let interp: Vec<&str> = v
            .checks
            .iter()
            .filter(|k| k.role == "interpreter")
            .map(|k| k.right.as_str())
            .collect();
        assert_eq!(interp, ["read-file", "execute"], "{:?}", v.checks);
        // exec alone is not enough: execve opens the program for reading too.
        let only = |path: &str, access| FsRule {
            path: path.into(),
            access,
            ..FsRule::default()
        };
        let c2 = compiled(Handle::All, vec![only("/usr", vec![Access::Exec])]);
        let v = ask(&c2, Operation::FileExec, "/usr/bin/true");
        assert_eq!(v.decision, OracleDecision::Deny, "{v:?}");
        assert_eq!(
            v.checks
                .iter()
                .find(|k| k.decision == OracleDecision::Deny)
                .map(|k| k.right.as_str()),
            Some("read-file")
        );
        // What the kernel never executes, whatever the policy: a directory, a file
        // without execute bits.
        let v = ask(&c, Operation::FileExec, "/usr/bin");
        assert_eq!(v.decision, OracleDecision::Deny, "{v:?}");
        assert_eq!(v.rule.kind, "kernel");
        let v = ask(&c, Operation::FileExec, "/usr/lib/os-release");
        assert_eq!(v.decision, OracleDecision::Deny, "{v:?}");
        assert!(v.reason.contains("execute permission"), "{}", v.reason);
        // The program granted, the interpreter not: denied on the interpreter.
        let c3 = compiled(
            Handle::All,
            vec![only("/usr/bin", vec![Access::Read, Access::Exec])],
        );
        let v = ask(&c3, Operation::FileExec, "/usr/bin/true");
        assert_eq!(v.decision, OracleDecision::Deny, "{v:?}");
        assert!(v.reason.contains("ld-linux"), "{}", v.reason);
    }

    #[test]
    fn cross_directory_rename_needs_refer() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::write(root.join("a/f"), "x").unwrap();
        let rule = |access| FsRule {
            path: root.to_string_lossy().into_owned(),
            access,
            ..FsRule::default()
        };
        let c = compiled(
            Handle::All,
            vec![rule(vec![Access::Create, Access::Remove])],
        );
        let src_path = root.join("a/f").to_string_lossy().into_owned();
        let dst_path = root.join("b/g").to_string_lossy().into_owned();
        let input = OracleInput {
            scenario_id: "p:r",
            probe_id: "r",
            operation: Operation::FileRename,
            driver: Driver::Builtin,
            target: Some(&src_path),
            destination: Some(&dst_path),
            program: None,
            base: Path::new("/"),
        };
        let (verdict, witnesses) = predict(&c, &input);
        assert_eq!(verdict.decision, OracleDecision::Deny);
        assert!(verdict.reason.contains("refer"), "{}", verdict.reason);
        assert_eq!(witnesses.len(), 2);
        let c = compiled(
            Handle::All,
            vec![rule(vec![Access::Create, Access::Remove, Access::Rename])],
        );
        assert_eq!(predict(&c, &input).0.decision, OracleDecision::Allow);
    }

    /// A tree in a temp dir: `a/f`, `b/`, `d/` (a directory to move), and a profile over it.
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        for d in ["a", "b", "d", "b/e"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("a/f"), "x").unwrap();
        std::fs::write(root.join("b/g"), "x").unwrap();
        (tmp, root)
    }

    fn on(root: &Path, rel: &str, access: Vec<Access>) -> FsRule {
        FsRule {
            path: root.join(rel).to_string_lossy().into_owned(),
            access,
            ..FsRule::default()
        }
    }

    fn rename(c: &CompiledProfile, from: &Path, to: &Path) -> OracleVerdict {
        let (f, t) = (from.to_string_lossy(), to.to_string_lossy());
        predict(
            c,
            &OracleInput {
                scenario_id: "p:r",
                probe_id: "r",
                operation: Operation::FileRename,
                driver: Driver::Builtin,
                target: Some(&f),
                destination: Some(&t),
                program: None,
                base: Path::new("/"),
            },
        )
        .0
    }

    #[test]
    fn create_needs_write_on_the_new_file_and_reading_a_directory_needs_read_dir() {
        let (_tmp, root) = tree();
        let target = root.join("a/new").to_string_lossy().into_owned();
        let c = compiled(Handle::All, vec![on(&root, "a", vec![Access::Create])]);
        let v = ask(&c, Operation::FileCreate, &target);
        assert_eq!(v.decision, OracleDecision::Deny, "{v:?}");
        assert_eq!(
            v.checks
                .iter()
                .find(|k| k.decision == OracleDecision::Deny)
                .map(|k| k.right.as_str()),
            Some("write-file")
        );
        let c = compiled(
            Handle::All,
            vec![on(&root, "a", vec![Access::Create, Access::Write])],
        );
        assert_eq!(
            ask(&c, Operation::FileCreate, &target).decision,
            OracleDecision::Allow
        );
        // `write` unhandled: create alone is enough.
        let c = compiled(
            Handle::List(vec![Access::Create]),
            vec![on(&root, "a", vec![Access::Create])],
        );
        assert_eq!(
            ask(&c, Operation::FileCreate, &target).decision,
            OracleDecision::Allow
        );
        // Opening a directory for reading is read-dir, whatever read-file says.
        let dir = root.join("a").to_string_lossy().into_owned();
        let c = compiled(Handle::All, vec![on(&root, "a", vec![Access::Read])]);
        let v = ask(&c, Operation::FileRead, &dir);
        assert_eq!(v.checks[0].right, "read-dir", "{v:?}");
    }

    #[test]
    fn rename_replacing_an_entry_needs_remove_on_the_destination_parent() {
        let (_tmp, root) = tree();
        let full = vec![Access::Create, Access::Rename];
        // Same directory, onto an existing file: remove-file is needed (for both names).
        std::fs::write(root.join("a/h"), "x").unwrap();
        let c = compiled(Handle::All, vec![on(&root, "a", full.clone())]);
        let v = rename(&c, &root.join("a/f"), &root.join("a/h"));
        assert_eq!(v.decision, OracleDecision::Deny, "{v:?}");
        let mut with_remove = full.clone();
        with_remove.push(Access::Remove);
        let c = compiled(Handle::All, vec![on(&root, "a", with_remove)]);
        assert_eq!(
            rename(&c, &root.join("a/f"), &root.join("a/h")).decision,
            OracleDecision::Allow
        );
    }

    #[test]
    fn reparenting_must_not_gain_a_right() {
        let (_tmp, root) = tree();
        let move_rights = vec![Access::Create, Access::Remove, Access::Rename];
        let mut rules = vec![on(&root, "", move_rights.clone())];
        // The destination grants read, the source does not: EXDEV even with rename on both.
        rules.push(on(&root, "b", vec![Access::Read]));
        let c = compiled(Handle::All, rules.clone());
        let v = rename(&c, &root.join("a/f"), &root.join("b/f"));
        assert_eq!(v.decision, OracleDecision::Deny, "{v:?}");
        assert!(
            v.reason.contains("EXDEV") && v.reason.contains("read-file"),
            "{}",
            v.reason
        );
        // A file rule on the moved file that grants read: nothing gained.
        let mut own = rules.clone();
        own.push(on(&root, "a/f", vec![Access::Read]));
        let c = compiled(Handle::All, own);
        assert_eq!(
            rename(&c, &root.join("a/f"), &root.join("b/f")).decision,
            OracleDecision::Allow
        );
        // The other way (from more to fewer rights) is fine.
        let c = compiled(Handle::All, rules.clone());
        assert_eq!(
            rename(&c, &root.join("b/g"), &root.join("a/g")).decision,
            OracleDecision::Allow
        );
        // A directory counts every right: read-dir gained through `b` is refused too.
        let v = rename(&c, &root.join("d"), &root.join("b/d2"));
        assert_eq!(v.decision, OracleDecision::Deny, "{v:?}");
        // A missing make right is EACCES, reported before the EXDEV reasons.
        let c = compiled(
            Handle::All,
            vec![
                on(&root, "", vec![Access::Remove, Access::Rename]),
                on(&root, "b", vec![Access::Read]),
            ],
        );
        let v = rename(&c, &root.join("a/f"), &root.join("b/f"));
        assert_eq!(
            v.checks
                .iter()
                .find(|k| k.decision == OracleDecision::Deny)
                .map(|k| k.right.as_str()),
            Some("make-reg")
        );
    }

    #[test]
    fn a_target_in_proc_self_is_the_childs() {
        let c = compiled(
            Handle::All,
            vec![FsRule {
                path: "/proc".into(),
                access: vec![Access::Read],
                ..FsRule::default()
            }],
        );
        let (v, w) = predict(
            &c,
            &OracleInput {
                scenario_id: "p:s",
                probe_id: "s",
                operation: Operation::FileRead,
                driver: Driver::Builtin,
                target: Some("/proc/self/status"),
                destination: None,
                program: None,
                base: Path::new("/"),
            },
        );
        assert_eq!(v.decision, OracleDecision::Allow, "{v:?}");
        assert_eq!(w[0].canonical, "/proc/<child>/status");
        // A rule written on /proc/self would be the runner's own directory: no cover.
        let c = compiled(
            Handle::All,
            vec![FsRule {
                path: "/proc/self".into(),
                access: vec![Access::Read],
                ..FsRule::default()
            }],
        );
        assert_eq!(
            ask(&c, Operation::FileRead, "/proc/self/status").decision,
            OracleDecision::Deny
        );
    }
}
