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
use std::rc::Rc;

use super::compile::{CompiledProfile, FsDecision, PortDecision};
use super::elf;
use super::paths::{self, Resolution};
use super::rights::{self, FsRights, fs, net, scope};
use crate::model::registry::{Driver, Operation, SeccompGroup};
use crate::model::results::{CitedRule, OracleCheck, OracleDecision, OracleVerdict, PathWitness};
use crate::util::fsmemo::{self, FsMemo};

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
/// made against one view of each path it reads; the next prediction reads afresh). What
/// running a program meets on the filesystem (the program, its `#!` and ELF interpreters
/// and its libraries resolved, their ancestry, their ELF headers) is taken from this
/// thread's memo when every lookup it was read from still answers the identical identity
/// (`program_facts`, [`crate::util::fsmemo`]): the answer reading afresh gives. The
/// profile's decisions on those facts are made for every prediction.
pub fn predict(c: &CompiledProfile, input: &OracleInput<'_>) -> (OracleVerdict, Vec<PathWitness>) {
    paths::one_view(|| predict_in_view(c, input, None))
}

/// The last prediction made through [`predict_reusing`] (or [`LastPrediction::set`]), and
/// what it was made from when that is everything it depends on: the profile (borrowed for
/// `'c`, so no other profile can take its place while it is kept), an exec probe's
/// operation, program and base directory, and the program's facts — the very `Rc` the
/// memo of program facts answered ([`program_facts`]: reused only when every lookup it
/// was read from answers the identical identity; a fresh reading is a new `Rc`, and the
/// one kept here cannot be freed and its address reused). An exec probe without a target
/// reads nothing else from the filesystem, and every other step of its prediction is a
/// function of those, so an equal key predicts the identical verdict and witnesses but
/// for the scenario and probe ids, which are rewritten in place (no allocation, nothing
/// formatted again: a plan's exec probes of one program under one profile).
#[derive(Debug, Default)]
pub struct LastPrediction<'c> {
    key: Option<PredictionKey<'c>>,
    verdict: Option<OracleVerdict>,
    witnesses: Vec<PathWitness>,
    /// Predictions answered by reusing the last one.
    reused: u64,
}

#[derive(Debug)]
struct PredictionKey<'c> {
    c: &'c CompiledProfile,
    facts: Rc<ProgramFacts>,
    operation: Operation,
    program: PathBuf,
    base: PathBuf,
}

impl LastPrediction<'_> {
    /// Keep `verdict` and `witnesses` as the last prediction, reused by nothing.
    pub fn set(&mut self, verdict: OracleVerdict, witnesses: Vec<PathWitness>) {
        self.key = None;
        self.verdict = Some(verdict);
        self.witnesses = witnesses;
    }

    /// Append notes to the last verdict (which is then reused by nothing).
    pub fn add_notes(&mut self, notes: Vec<String>) {
        if notes.is_empty() {
            return;
        }
        self.key = None;
        if let Some(v) = &mut self.verdict {
            v.notes.extend(notes);
        }
    }

    /// The last verdict and its witnesses (`None` before any prediction).
    pub fn get_mut(&mut self) -> Option<(&mut OracleVerdict, &mut Vec<PathWitness>)> {
        self.verdict.as_mut().map(|v| (v, &mut self.witnesses))
    }

    /// Take the last verdict and its witnesses out.
    pub fn take(&mut self) -> Option<(OracleVerdict, Vec<PathWitness>)> {
        self.key = None;
        self.verdict
            .take()
            .map(|v| (v, std::mem::take(&mut self.witnesses)))
    }
}

/// [`predict`], into `last` (read it with [`LastPrediction::get_mut`]): the same verdict
/// and witnesses, byte for byte, with the last prediction reused when its key is equal
/// (see [`LastPrediction`]).
pub fn predict_reusing<'c>(
    c: &'c CompiledProfile,
    input: &OracleInput<'_>,
    last: &mut LastPrediction<'c>,
) {
    paths::one_view(|| {
        let program = input.program.filter(|_| {
            input.driver == Driver::Exec && input.target.is_none() && input.destination.is_none()
        });
        let Some(program) = program else {
            let (v, w) = predict_in_view(c, input, None);
            last.set(v, w);
            return;
        };
        // What `Oracle::program` reads first, read here (in the same view) to key the memo.
        let facts = program_facts(Path::new(&*program.to_string_lossy()), input.base, true);
        let same = last.key.as_ref().is_some_and(|k| {
            std::ptr::eq(k.c, c)
                && Rc::ptr_eq(&k.facts, &facts)
                && k.operation == input.operation
                && k.program.as_os_str() == program.as_os_str()
                && k.base.as_os_str() == input.base.as_os_str()
        });
        if same && let Some(v) = &mut last.verdict {
            v.scenario_id.clear();
            v.scenario_id.push_str(input.scenario_id);
            v.probe_id.clear();
            v.probe_id.push_str(input.probe_id);
            for w in &mut last.witnesses {
                w.scenario_id.clear();
                w.scenario_id.push_str(input.scenario_id);
            }
            last.reused += 1;
            return;
        }
        let (v, w) = predict_in_view(c, input, Some(Rc::clone(&facts)));
        last.set(v, w);
        last.key = Some(PredictionKey {
            c,
            facts,
            operation: input.operation,
            program: program.to_path_buf(),
            base: input.base.to_path_buf(),
        });
    });
}

/// The prediction, in the current view; `facts`: the program's facts when the caller
/// already read them (in this view), as [`Oracle::program`] would.
fn predict_in_view(
    c: &CompiledProfile,
    input: &OracleInput<'_>,
    facts: Option<Rc<ProgramFacts>>,
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
        match facts {
            Some(f) => o.program_from(&f, "program"),
            None => o.program(program, "program"),
        }
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
        self.witness(&r, role);
        r
    }

    /// The path witness of a resolution (and its note).
    fn witness(&mut self, r: &Resolution, role: &str) {
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
    }

    fn fs_check(&mut self, on: &Path, right: FsRights, role: &str) {
        let decided = self.c.fs_decide(on, right);
        self.fs_checked(on, right, role, &decided);
    }

    /// [`Oracle::fs_check`] on a path whose ancestry is known.
    fn fs_check_in(
        &mut self,
        on: &Path,
        ancestry: &[Option<(u64, u64)>],
        right: FsRights,
        role: &str,
    ) {
        let decided = self.c.fs_decide_in(right, || ancestry);
        self.fs_checked(on, right, role, &decided);
    }

    fn fs_checked(&mut self, on: &Path, right: FsRights, role: &str, decided: &FsDecision) {
        let name = rights::fs_name(right);
        let on_s = on.to_string_lossy().into_owned();
        let pid = &self.c.profile_id;
        let (decision, reason, cited_rule) = match *decided {
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

    /// `execve` of `canonical` as its facts say: the kernel opens it, then each `#!`
    /// interpreter and the ELF interpreter, for execution (`read-file` and `execute` on
    /// each).
    fn execve(&mut self, canonical: &Path, facts: &ExecveFacts, role: &str) {
        // What execve refuses for everyone before Landlock is asked.
        if let Some((is_file, mode)) = facts.stat
            && (!is_file || mode & 0o111 == 0)
        {
            let what = if is_file {
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
        self.fs_check_in(canonical, &facts.ancestry, fs::READ_FILE, role);
        self.fs_check_in(canonical, &facts.ancestry, fs::EXECUTE, role);
        for (r, ancestry) in &facts.interpreters {
            self.witness(r, "interpreter");
            self.fs_check_in(&r.canonical, ancestry, fs::READ_FILE, "interpreter");
            self.fs_check_in(&r.canonical, ancestry, fs::EXECUTE, "interpreter");
        }
        self.notes.extend(facts.notes.iter().cloned());
    }

    /// Running a program to completion: `execve`, then `read-file` on the libraries.
    fn program(&mut self, program: &Path, role: &str) {
        let facts = program_facts(
            Path::new(&*program.to_string_lossy()),
            self.input.base,
            true,
        );
        self.program_from(&facts, role);
    }

    /// [`Oracle::program`] from the program's facts.
    fn program_from(&mut self, facts: &ProgramFacts, role: &str) {
        self.witness(&facts.program, role);
        self.execve(&facts.program.canonical, &facts.execve, role);
        for (r, ancestry) in &facts.libraries {
            self.witness(r, "library");
            self.fs_check_in(&r.canonical, ancestry, fs::READ_FILE, "library");
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
                let facts = program_facts(Path::new(&target), self.input.base, false);
                self.witness(&facts.program, "target");
                self.execve(&facts.program.canonical, &facts.execve, "target");
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

// ---------------------------------------------------------------------------------------
// Program facts: what running a program meets on the filesystem, memoized while unchanged
// ---------------------------------------------------------------------------------------

/// A path's [`paths::ancestry`].
type Ancestry = Vec<Option<(u64, u64)>>;

/// What `execve` of one canonical path meets on the filesystem (nothing of a profile).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExecveFacts {
    /// `stat` of the path: (a regular file, mode bits); `None` if it does not exist.
    stat: Option<(bool, u32)>,
    /// The path's ancestry (the inodes Landlock rules are matched against).
    ancestry: Ancestry,
    /// The `#!` and ELF interpreters, resolved as the child sees them, with their ancestry.
    interpreters: Vec<(Resolution, Ancestry)>,
    /// What could not be modelled ([`elf::ProgramNeeds::notes`]).
    notes: Vec<String>,
    /// The libraries the loader opens, as found ([`elf::ProgramNeeds::read`]).
    libraries: Vec<PathBuf>,
}

/// What running a program meets on the filesystem: the program resolved, what `execve`
/// meets, and (running it to completion) the libraries resolved. The profile's decisions
/// on these are made per prediction ([`Oracle::execve`], [`Oracle::program`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProgramFacts {
    program: Resolution,
    execve: ExecveFacts,
    libraries: Vec<(Resolution, Ancestry)>,
    /// A path was resolved as written relative (the program, an interpreter, a library):
    /// against the base directory.
    relative: bool,
}

impl ProgramFacts {
    /// True if the answer depends on the base directory (a relative path, or a
    /// resolution through the child's `/proc/self`).
    fn uses_base(&self) -> bool {
        self.relative
            || std::iter::once(&self.program)
                .chain(self.execve.interpreters.iter().map(|(r, _)| r))
                .chain(self.libraries.iter().map(|(r, _)| r))
                .any(|r| r.note.is_some())
    }

    /// An estimate of the bytes held.
    fn bytes(&self) -> usize {
        let res = |r: &Resolution| {
            r.requested.as_os_str().len()
                + r.canonical.as_os_str().len()
                + r.note.as_ref().map_or(0, String::len)
                + 96
        };
        let with = |v: &[(Resolution, Ancestry)]| {
            v.iter()
                .map(|(r, a)| res(r) + 24 * a.len() + 24)
                .sum::<usize>()
        };
        256 + res(&self.program)
            + 24 * self.execve.ancestry.len()
            + with(&self.execve.interpreters)
            + with(&self.libraries)
            + self
                .execve
                .notes
                .iter()
                .map(|n| n.len() + 24)
                .sum::<usize>()
            + self
                .execve
                .libraries
                .iter()
                .map(|l| l.as_os_str().len() + 24)
                .sum::<usize>()
    }
}

/// Read the facts afresh (every lookup through [`paths`], in the caller's view).
fn gather_program(path: &Path, base: &Path, with_libraries: bool) -> ProgramFacts {
    use std::os::unix::fs::PermissionsExt;
    let program = paths::resolve_as_child(path, base, true);
    let canonical = &program.canonical;
    let stat = paths::stat(canonical).map(|m| (m.is_file(), m.permissions().mode()));
    let ancestry = paths::ancestry(canonical);
    let needs = elf::program_needs(canonical);
    let resolved = |p: &Path| {
        let r = paths::resolve_as_child(Path::new(&*p.to_string_lossy()), base, true);
        let a = paths::ancestry(&r.canonical);
        (r, a)
    };
    let interpreters = needs.execute.iter().map(|i| resolved(i)).collect();
    let libraries = if with_libraries {
        needs.read.iter().map(|l| resolved(l)).collect()
    } else {
        Vec::new()
    };
    let relative = !path.is_absolute()
        || needs.execute.iter().any(|p| !p.is_absolute())
        || (with_libraries && needs.read.iter().any(|p| !p.is_absolute()));
    ProgramFacts {
        relative,
        execve: ExecveFacts {
            stat,
            ancestry,
            interpreters,
            notes: needs.notes,
            libraries: needs.read,
        },
        program,
        libraries,
    }
}

/// The memo's key: the program as requested, the base directory if the facts depend on
/// it, and whether the libraries were resolved.
#[derive(Debug, PartialEq, Eq)]
struct ProgramKey {
    path: PathBuf,
    base: Option<PathBuf>,
    with_libraries: bool,
}

/// Programs whose facts a thread keeps (the exec probes of a plan run a handful).
const MEMO_ENTRIES: usize = 64;
/// Bytes a thread's memo holds at most (estimated; one `/bin/true` is about 3 KiB).
const MEMO_BYTES: usize = 1 << 20;

thread_local! {
    static MEMO: std::cell::RefCell<Option<FsMemo<ProgramKey, ProgramFacts>>> =
        const { std::cell::RefCell::new(None) };
    /// Read afresh every time (the differential tests' reference).
    static UNCACHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The facts of running `path` from `base`: the ones read by an earlier prediction of
/// this thread if every lookup they were read from still answers the same identity
/// ([`crate::util::fsmemo`] argues why that is the answer reading afresh gives), else read
/// afresh (and kept, if [`fsmemo::seal`] accepts the recording).
fn program_facts(path: &Path, base: &Path, with_libraries: bool) -> Rc<ProgramFacts> {
    if UNCACHED.with(std::cell::Cell::get) {
        return Rc::new(gather_program(path, base, with_libraries));
    }
    let new = || FsMemo::new(MEMO_ENTRIES, MEMO_BYTES);
    let (may_keep, settled, known) = fsmemo::with_thread_memo(&MEMO, new, |m| {
        let may_keep = m.begin();
        let known = may_keep
            .then(|| {
                m.get(|k| {
                    k.path == path
                        && k.with_libraries == with_libraries
                        && k.base.as_deref().is_none_or(|b| b == base)
                })
            })
            .flatten();
        (may_keep, m.settled, known)
    });
    if let Some(f) = known {
        return f;
    }
    let began = std::time::SystemTime::now();
    let (facts, rec) = paths::recording(|| gather_program(path, base, with_libraries));
    let facts = Rc::new(facts);
    if may_keep && let Some(checks) = fsmemo::seal(&rec, began, settled) {
        let key = ProgramKey {
            path: path.to_path_buf(),
            base: facts.uses_base().then(|| base.to_path_buf()),
            with_libraries,
        };
        let bytes = facts.bytes();
        fsmemo::with_thread_memo(&MEMO, new, |m| {
            m.insert(key, Rc::clone(&facts), checks, bytes);
        });
    }
    facts
}

/// Run `f` with every program fact of this thread read afresh (no memo).
#[cfg(test)]
fn uncached<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            UNCACHED.with(|u| u.set(false));
        }
    }
    UNCACHED.with(|u| u.set(true));
    let _reset = Reset;
    f()
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

    // -----------------------------------------------------------------------------------
    // The program-facts memo against reading afresh
    // -----------------------------------------------------------------------------------

    /// A 64-bit little-endian ELF file: an interpreter (`PT_INTERP`), needed libraries
    /// and a runpath (`PT_DYNAMIC`, its string table mapped by one `PT_LOAD` at 0).
    fn elf(interp: Option<&str>, needed: &[&str], runpath: Option<&str>) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut name_at = |s: &str| {
            let at = strtab.len() as u64;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            at
        };
        let needed_at: Vec<u64> = needed.iter().map(|n| name_at(n)).collect();
        let runpath_at = runpath.map(&mut name_at);
        let phnum: u64 = 3;
        let interp_off = 64 + 56 * phnum;
        let interp_bytes: Vec<u8> = interp
            .map(|i| {
                let mut b = i.as_bytes().to_vec();
                b.push(0);
                b
            })
            .unwrap_or_default();
        let strtab_off = interp_off + interp_bytes.len() as u64;
        let dyn_off = strtab_off + strtab.len() as u64;
        let mut dynamic = Vec::new();
        let mut entry = |tag: i64, val: u64| {
            dynamic.extend_from_slice(&tag.to_le_bytes());
            dynamic.extend_from_slice(&val.to_le_bytes());
        };
        for at in &needed_at {
            entry(DT_NEEDED_TAG, *at);
        }
        if let Some(at) = runpath_at {
            entry(29, at);
        }
        entry(5, strtab_off);
        entry(0, 0);
        let total = dyn_off + dynamic.len() as u64;
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF\x02\x01\x01");
        out.resize(16, 0);
        out.extend_from_slice(&2u16.to_le_bytes()); // e_type
        out.extend_from_slice(&62u16.to_le_bytes()); // e_machine
        out.extend_from_slice(&1u32.to_le_bytes()); // e_version
        out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        out.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
        out.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
        out.extend_from_slice(&u16::try_from(phnum).unwrap().to_le_bytes()); // e_phnum
        out.extend_from_slice(&[0u8; 6]);
        let mut ph = |t: u32, off: u64, size: u64| {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&5u32.to_le_bytes());
            for v in [off, off, off, size, size, 8] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        };
        ph(1, 0, total); // PT_LOAD: the whole file at address 0
        if interp.is_some() {
            ph(3, interp_off, interp_bytes.len() as u64);
        } else {
            ph(6, 0, 0); // PT_PHDR: nothing the reader uses
        }
        ph(2, dyn_off, dynamic.len() as u64);
        out.extend_from_slice(&interp_bytes);
        out.extend_from_slice(&strtab);
        out.extend_from_slice(&dynamic);
        out
    }

    const DT_NEEDED_TAG: i64 = 1;

    fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Set atime and mtime to a fixed old time (`touch -d`); ctime becomes now.
    fn touch_old(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let t = libc::timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        };
        let times = [t, t];
        // SAFETY: valid C string and times.
        unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
    }

    /// Names of the variable parts of the tree: `name_a` and `name_b` are the same length,
    /// so rewriting one into the other keeps a file's size.
    const LIBS: [&str; 4] = ["libA.so", "libB.so", "libC.so", "libD.so"];

    /// One of a few program bodies (a variant number picks interpreter and libraries).
    fn variant(root: &Path, v: u64) -> Vec<u8> {
        let ld = root.join("lib/ld.so");
        let ld_link = root.join("ldlink/ld.so");
        let ld_s = ld.to_string_lossy().into_owned();
        let ld_link_s = ld_link.to_string_lossy().into_owned();
        let lib = root.join("lib").to_string_lossy().into_owned();
        let both = format!("{}:{lib}", root.join("lib2").to_string_lossy());
        match v % 6 {
            0 => elf(Some(&ld_s), &["libA.so"], Some(&lib)),
            1 => elf(Some(&ld_s), &["libB.so"], Some(&lib)),
            2 => elf(Some(&ld_link_s), &["libC.so", "libA.so"], Some(&both)),
            3 => elf(Some(&ld_s), &["libD.so"], Some(&both)),
            4 => elf(None, &["libA.so"], Some(&lib)),
            _ => format!("#!{}\n", root.join("bin/p0").display()).into_bytes(),
        }
    }

    /// The tree of the differential test: programs (hand-made ELF files, a script, a
    /// copy of `/bin/true`), an ELF interpreter, libraries needing each other, and
    /// symlink chains (absolute and relative) to programs, libraries and directories.
    fn program_tree(root: &Path) {
        use std::os::unix::fs::symlink;
        for d in ["bin", "lib", "lib2", "links", "alt"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        symlink("lib", root.join("ldlink")).unwrap();
        write_mode(&root.join("lib/ld.so"), &elf(None, &[], None), 0o755);
        let lib = root.join("lib").to_string_lossy().into_owned();
        write_mode(
            &root.join("lib/libA.so.1"),
            &elf(None, &["libB.so"], Some(&lib)),
            0o755,
        );
        symlink("libA.so.1", root.join("lib/libA.so")).unwrap();
        write_mode(&root.join("lib/libB.so"), &elf(None, &[], None), 0o644);
        write_mode(
            &root.join("lib/libC.so"),
            &elf(None, &["libA.so"], None),
            0o644,
        );
        write_mode(
            &root.join("lib2/libC.so"),
            &elf(None, &["libD.so"], None),
            0o644,
        );
        for i in 0..4 {
            write_mode(&root.join(format!("bin/p{i}")), &variant(root, i), 0o755);
        }
        std::fs::copy("/bin/true", root.join("bin/true")).unwrap();
        symlink(root.join("links/l2"), root.join("links/l1")).unwrap();
        symlink("../bin/p1", root.join("links/l2")).unwrap();
        symlink("../bin", root.join("links/dir")).unwrap();
        symlink(root.join("lib/libB.so"), root.join("alt/libD.so")).unwrap();
        // Every file with the same old times: a same-size rewrite that restores them
        // leaves only the ctime to tell.
        for f in [
            "lib/ld.so",
            "lib/libA.so.1",
            "lib/libB.so",
            "lib/libC.so",
            "lib2/libC.so",
            "bin/true",
        ] {
            touch_old(&root.join(f));
        }
        for i in 0..4 {
            touch_old(&root.join(format!("bin/p{i}")));
        }
    }

    /// The programs asked about (some missing, some reached through links).
    fn programs(root: &Path) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = (0..4).map(|i| root.join(format!("bin/p{i}"))).collect();
        out.push(root.join("bin/true"));
        out.push(root.join("links/l1"));
        out.push(root.join("links/dir/p2"));
        out.push(root.join("bin/missing"));
        out.push(root.join("alt/p9"));
        out.push(PathBuf::from("/bin/true"));
        out
    }

    /// One random change to the tree; returns what it did (for the failure message).
    fn mutate(root: &Path, rng: &mut crate::util::testrng::Rng, mounted: &mut bool) -> String {
        use std::os::unix::fs::symlink;
        let files = [
            "bin/p0",
            "bin/p1",
            "bin/p2",
            "bin/p3",
            "bin/true",
            "lib/ld.so",
            "lib/libA.so.1",
            "lib/libB.so",
            "lib/libC.so",
            "lib2/libC.so",
        ];
        let f = root.join(rng.pick(&files));
        match rng.below(13u64) {
            0 => {
                // Replace by rename.
                let tmp = f.with_file_name(".new");
                write_mode(&tmp, &variant(root, rng.next()), 0o755);
                std::fs::rename(&tmp, &f).unwrap();
                format!("replace {} by rename", f.display())
            }
            1 | 10 | 11 => {
                // Rewrite in place, same size (one library name for another), old times.
                use std::io::{Seek, SeekFrom, Write};
                let Ok(mut bytes) = std::fs::read(&f) else {
                    return format!("rewrite {}: missing", f.display());
                };
                // A name the file holds, for another one.
                let held: Vec<&str> = LIBS
                    .iter()
                    .copied()
                    .filter(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
                    .collect();
                if let Some(from) = (!held.is_empty()).then(|| *rng.pick(&held)) {
                    let others: Vec<&str> = LIBS.iter().copied().filter(|n| *n != from).collect();
                    let to = *rng.pick(&others);
                    if let Some(at) = bytes.windows(from.len()).position(|w| w == from.as_bytes()) {
                        bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
                    }
                }
                let mut h = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
                h.seek(SeekFrom::Start(0)).unwrap();
                h.write_all(&bytes).unwrap();
                drop(h);
                touch_old(&f);
                format!("rewrite {} in place (same size), old times", f.display())
            }
            2 => {
                // Retarget a symlink (replace it by rename or unlink + create).
                let links = [
                    "links/l1",
                    "links/l2",
                    "links/dir",
                    "alt/libD.so",
                    "lib/libA.so",
                    "ldlink",
                ];
                let l = root.join(rng.pick(&links));
                let targets = [
                    "../bin/p2",
                    "libA.so.1",
                    "lib2",
                    "lib",
                    "../bin",
                    "p3",
                    "/bin/true",
                    "nowhere",
                ];
                let t = *rng.pick(&targets);
                if rng.chance(50) {
                    let _ = std::fs::remove_file(&l);
                    symlink(t, &l).unwrap();
                } else {
                    let tmp = l.with_file_name(".lnk");
                    let _ = std::fs::remove_file(&tmp);
                    symlink(t, &tmp).unwrap();
                    std::fs::rename(&tmp, &l).unwrap();
                }
                format!("retarget {} -> {t}", l.display())
            }
            3 => {
                use std::os::unix::fs::PermissionsExt;
                let mode = if rng.chance(50) { 0o644 } else { 0o755 };
                let _ = std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode));
                format!("chmod {mode:o} {}", f.display())
            }
            4 => {
                // Delete and recreate with the same bytes and old times.
                let Ok(bytes) = std::fs::read(&f) else {
                    return format!("recreate {}: missing", f.display());
                };
                std::fs::remove_file(&f).unwrap();
                write_mode(&f, &bytes, 0o755);
                touch_old(&f);
                format!("delete and recreate {} (same size, old times)", f.display())
            }
            5 => {
                touch_old(&f);
                format!("touch -d old {}", f.display())
            }
            6 => {
                let _ = std::fs::remove_file(&f);
                format!("delete {}", f.display())
            }
            7 if !*mounted => {
                // Swap two directories by renames (not while one is a mount point).
                let (a, b, t) = (root.join("lib"), root.join("lib2"), root.join("alt/.swap"));
                std::fs::rename(&a, &t).unwrap();
                std::fs::rename(&b, &a).unwrap();
                std::fs::rename(&t, &b).unwrap();
                "swap lib and lib2".into()
            }
            8 if *mounted => {
                let c = std::ffi::CString::new(root.join("lib2").as_os_str().as_encoded_bytes())
                    .unwrap();
                // SAFETY: valid C string.
                assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);
                *mounted = false;
                "umount lib2".into()
            }
            8 => {
                // A tmpfs over `lib2` (in this thread's own mount namespace), with a
                // library of its own.
                let c = std::ffi::CString::new(root.join("lib2").as_os_str().as_encoded_bytes())
                    .unwrap();
                // SAFETY: valid C strings.
                let rc = unsafe {
                    libc::mount(
                        c"tmpfs".as_ptr(),
                        c.as_ptr(),
                        c"tmpfs".as_ptr(),
                        0,
                        std::ptr::null(),
                    )
                };
                if rc != 0 {
                    return "mount tmpfs: not permitted".into();
                }
                *mounted = true;
                write_mode(
                    &root.join("lib2/libC.so"),
                    &elf(None, &["libB.so"], None),
                    0o755,
                );
                "mount tmpfs over lib2".into()
            }
            9 => {
                // Restore a deleted program or library.
                write_mode(&f, &variant(root, rng.next()), 0o755);
                format!("write {}", f.display())
            }
            _ => "nothing".into(),
        }
    }

    fn exec_profiles(root: &Path) -> Vec<CompiledProfile> {
        let r = |p: &str, access: Vec<Access>| FsRule {
            path: if p.starts_with('/') {
                p.to_string()
            } else {
                root.join(p).to_string_lossy().into_owned()
            },
            access,
            ..FsRule::default()
        };
        vec![
            compiled(
                Handle::All,
                vec![
                    r("bin", vec![Access::Read, Access::Exec]),
                    r("/usr", vec![Access::Read, Access::Exec]),
                ],
            ),
            compiled(
                Handle::All,
                vec![
                    r("", vec![Access::Read, Access::Exec]),
                    r("/usr", vec![Access::Read, Access::Exec]),
                ],
            ),
            compiled(
                Handle::All,
                vec![
                    r("bin", vec![Access::Exec]),
                    r("lib", vec![Access::Read]),
                    r("links", vec![Access::Read]),
                ],
            ),
            compiled(Handle::List(vec![Access::Write]), vec![]),
        ]
    }

    fn exec_input<'a>(
        program: &'a Path,
        base: &'a Path,
        file_exec: Option<&'a str>,
    ) -> OracleInput<'a> {
        OracleInput {
            scenario_id: "p:x",
            probe_id: "x",
            operation: if file_exec.is_some() {
                Operation::FileExec
            } else {
                Operation::Exec
            },
            driver: if file_exec.is_some() {
                Driver::Builtin
            } else {
                Driver::Exec
            },
            target: file_exec,
            destination: None,
            program: file_exec.is_none().then_some(program),
            base,
        }
    }

    fn memo_stats() -> fsmemo::MemoStats {
        MEMO.with(|m| m.borrow().as_ref().map(|m| m.stats).unwrap_or_default())
    }

    /// Seeded: between predictions, random changes to a tree of programs, interpreters,
    /// libraries and links (renames over files, same-size rewrites with old times,
    /// retargeted and replaced symlinks, chmod, delete and recreate, a tmpfs mounted over
    /// a directory, swapped directories); every prediction with the memo equals the one
    /// read afresh, verdict and witnesses, for several profiles, both for running a
    /// program and for `file-exec`. The memo is checked to have been used and to have
    /// dropped answers the changes made stale.
    #[test]
    fn program_memo_predicts_what_reading_afresh_does() {
        // Its own thread: the tmpfs goes in that thread's own mount namespace.
        std::thread::spawn(|| {
            // SAFETY: unshare on this thread, which then owns its mount namespace; its
            // mounts made private first.
            let own_ns = unsafe {
                libc::unshare(libc::CLONE_NEWNS) == 0
                    && crate::sandbox::privilege::make_root_private()
            };
            let tmp = tempfile::tempdir().unwrap();
            let root = std::fs::canonicalize(tmp.path()).unwrap();
            program_tree(&root);
            let profiles = exec_profiles(&root);
            // Changes in this test follow a recording within a clock tick; it waits a
            // tick after each change instead (see `fsmemo::SETTLED`).
            MEMO.with(|m| {
                *m.borrow_mut() = Some(FsMemo::new(MEMO_ENTRIES, MEMO_BYTES));
                if let Some(m) = m.borrow_mut().as_mut() {
                    m.settled = std::time::Duration::ZERO;
                }
            });
            let mut mounted = false;
            let mut mounts = 0;
            // One last prediction for the whole test, as a streamed run keeps it: reused
            // only when it predicts what reading afresh does.
            let mut last = LastPrediction::default();
            let mut reused = 0u64;
            let programs = programs(&root);
            let bases = [root.clone(), root.join("links")];
            for seed in 0..3u64 {
                let mut rng = crate::util::testrng::Rng(seed);
                let mut ids = crate::util::testrng::Rng(seed + 1000);
                for step in 0..60 {
                    let change = if step == 0 {
                        "none".to_string()
                    } else {
                        mutate(&root, &mut rng, &mut mounted)
                    };
                    mounts += usize::from(change.starts_with("mount tmpfs over"));
                    std::thread::sleep(std::time::Duration::from_millis(12));
                    for program in &programs {
                        let target = program.to_string_lossy().into_owned();
                        let relative = program
                            .strip_prefix(&root)
                            .ok()
                            .map(|p| p.to_string_lossy().into_owned());
                        for _ in 0..2 {
                            let c = rng.pick(&profiles);
                            // A relative target resolves against the base: two bases.
                            let base = rng.pick(&bases);
                            let asks = [
                                exec_input(program, base, None),
                                exec_input(program, base, Some(&target)),
                                exec_input(program, base, relative.as_deref().or(Some(&target))),
                            ];
                            for input in &asks {
                                let memo = predict(c, input);
                                let fresh = uncached(|| predict(c, input));
                                assert_eq!(
                                    memo, fresh,
                                    "seed {seed} step {step} after `{change}`: {input:?}"
                                );
                                // The same ask under other ids, twice: the second reuses
                                // the first unless something changed.
                                for _ in 0..2 {
                                    let probe = format!("q{}", ids.below(50));
                                    let scenario = format!("s{}:{probe}", ids.below(3));
                                    let ask = OracleInput {
                                        scenario_id: &scenario,
                                        probe_id: &probe,
                                        ..input.clone()
                                    };
                                    let before = last.reused;
                                    predict_reusing(c, &ask, &mut last);
                                    reused += last.reused - before;
                                    let fresh = uncached(|| predict(c, &ask));
                                    let got = last.get_mut().map(|(v, w)| (v.clone(), w.clone()));
                                    assert_eq!(
                                        got,
                                        Some(fresh),
                                        "seed {seed} step {step} after `{change}`: {ask:?}"
                                    );
                                }
                            }
                        }
                    }
                }
                if mounted {
                    mutate_umount(&root);
                    mounted = false;
                }
            }
            let stats = memo_stats();
            assert!(stats.hits > 500, "{stats:?}");
            assert!(
                reused > 100,
                "the last prediction was reused {reused} times"
            );
            assert!(stats.stale > 20, "{stats:?}");
            if own_ns {
                assert!(mounts > 0, "no tmpfs was mounted");
            }
        })
        .join()
        .unwrap();
    }

    fn mutate_umount(root: &Path) {
        let c = std::ffi::CString::new(root.join("lib2").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid C string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }

    /// The memo keeps a settled program (`/bin/true`, installed long ago) and reuses it;
    /// a program changed less than [`fsmemo::SETTLED`] ago is read afresh every time.
    #[test]
    fn program_memo_keeps_only_settled_programs() {
        std::thread::spawn(|| {
            let c = compiled(Handle::All, usr_only());
            let base = Path::new("/");
            let bin_true = Path::new("/bin/true");
            let first = predict(&c, &exec_input(bin_true, base, None));
            let kept = memo_stats().kept;
            assert_eq!(kept, 1, "{:?}", memo_stats());
            for _ in 0..3 {
                assert_eq!(predict(&c, &exec_input(bin_true, base, None)), first);
            }
            assert_eq!(memo_stats().hits, 3, "{:?}", memo_stats());
            let tmp = tempfile::tempdir().unwrap();
            let p = tmp.path().join("fresh");
            write_mode(&p, &std::fs::read("/bin/true").unwrap(), 0o755);
            for _ in 0..3 {
                let v = predict(&c, &exec_input(&p, base, None));
                assert_eq!(v, uncached(|| predict(&c, &exec_input(&p, base, None))));
            }
            assert_eq!(memo_stats().kept, 1, "{:?}", memo_stats());
            let (entries, bytes) =
                MEMO.with(|m| m.borrow().as_ref().map(FsMemo::size).unwrap_or_default());
            assert_eq!(entries, 1);
            assert!(bytes > 0 && bytes < MEMO_BYTES, "{bytes}");
        })
        .join()
        .unwrap();
    }
}
