//! Outcome classification shared by every lane: the per-operation errno table (which errno
//! means "the kernel let it through", which means "denied", and which is inconclusive),
//! errno and signal names, the exec driver's classification order, attribution and
//! mismatch rules. Pure functions, unit-tested without processes.

use crate::model::plan::Expectation;
use crate::model::registry::Operation;
use crate::model::results::{Attribution, MismatchKind, OracleDecision, Outcome, Stage};

/// One row of the errno table.
#[derive(Debug, Clone, Copy)]
pub struct ErrnoRule {
    /// Operations the row applies to (empty: every operation).
    pub ops: &'static [Operation],
    /// The errno values.
    pub errnos: &'static [i32],
    /// The outcome they mean.
    pub outcome: Outcome,
    /// Why (documented in the README).
    pub why: &'static str,
}

/// The errno table, first match wins; an errno no row lists is an `error` (the target is
/// missing, the fixture is wrong, …).
pub const ERRNO_TABLE: &[ErrnoRule] = &[
    ErrnoRule {
        ops: &[Operation::FileRename],
        errnos: &[libc::EXDEV],
        outcome: Outcome::Deny,
        why: "a cross-directory rename without Landlock `refer` on both parents fails with EXDEV",
    },
    ErrnoRule {
        ops: &[Operation::TcpConnect],
        errnos: &[
            libc::ECONNREFUSED,
            libc::ETIMEDOUT,
            libc::ENETUNREACH,
            libc::EHOSTUNREACH,
            libc::EINPROGRESS,
            libc::ECONNRESET,
        ],
        outcome: Outcome::Allow,
        why: "Landlock checks connect-tcp before the connection is attempted, so a refused, \
              unreachable or timed-out connection got past the policy",
    },
    ErrnoRule {
        ops: &[Operation::TcpBind],
        errnos: &[libc::EADDRINUSE, libc::EADDRNOTAVAIL],
        outcome: Outcome::Allow,
        why: "Landlock checks bind-tcp before the protocol binds, so an address in use got \
              past the policy",
    },
    ErrnoRule {
        ops: &[Operation::UdpSend],
        errnos: &[libc::ECONNREFUSED, libc::ENETUNREACH, libc::EHOSTUNREACH],
        outcome: Outcome::Allow,
        why: "the socket was created and the datagram left: the policy let it through",
    },
    ErrnoRule {
        ops: &[],
        errnos: &[libc::EACCES],
        outcome: Outcome::Deny,
        why: "Landlock denies filesystem and TCP access with EACCES",
    },
    ErrnoRule {
        ops: &[],
        errnos: &[libc::EPERM],
        outcome: Outcome::Deny,
        why: "Landlock scopes and the seccomp deny groups fail with EPERM",
    },
];

/// The outcome of `op` ending with `errno` (0: success → allow).
pub fn classify_errno(op: Operation, errno: i32) -> Outcome {
    if errno == 0 {
        return Outcome::Allow;
    }
    ERRNO_TABLE
        .iter()
        .find(|r| (r.ops.is_empty() || r.ops.contains(&op)) && r.errnos.contains(&errno))
        .map_or(Outcome::Error, |r| r.outcome)
}

/// The symbolic name of an errno, e.g. `EACCES`.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EPROTOTYPE => "EPROTOTYPE",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNRESET => "ECONNRESET",
        libc::EISCONN => "EISCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("E{errno}"),
    };
    name.to_string()
}

/// The symbolic name of a signal, e.g. `SIGKILL`.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("SIG{sig}"),
    };
    name.to_string()
}

/// What a signal means for a probe, when it has a specific meaning.
pub fn signal_meaning(sig: i32) -> Option<&'static str> {
    match sig {
        libc::SIGXCPU => Some("CPU time limit (RLIMIT_CPU) reached"),
        libc::SIGXFSZ => Some("file size limit (RLIMIT_FSIZE) reached"),
        libc::SIGSYS => Some("killed by a seccomp filter"),
        libc::SIGABRT => Some("aborted (often an allocation failure under RLIMIT_AS)"),
        libc::SIGKILL => Some("killed (CPU hard limit, OOM, or another process)"),
        _ => None,
    }
}

/// What an exec-driver child did, for classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEnd {
    /// `spawn` failed with this errno (`execve` itself was refused).
    SpawnFailed(i32),
    /// A setup step in the child failed (apply failure).
    SetupFailed,
    /// The runner's timeout killed it.
    TimedOut,
    /// It was killed by a signal.
    Signaled(i32),
    /// It exited with a code.
    Exited(i32),
}

/// Classify an exec-driver child in the documented order: a spawn the kernel refused
/// (EACCES/EPERM) is a denial at stage `exec`; a failed setup step is `apply-failed`; the
/// runner's timeout is `timeout`; a signal is an `error` (recorded); an exit code in the
/// allow codes (default `[0]`) is `allow`, in the deny codes `deny`, anything else `error`.
pub fn classify_exec(end: &ExecEnd, allow: &[i32], deny: &[i32]) -> (Outcome, Stage) {
    match end {
        ExecEnd::SpawnFailed(e) if *e == libc::EACCES || *e == libc::EPERM => {
            (Outcome::Deny, Stage::Exec)
        }
        ExecEnd::SpawnFailed(_) => (Outcome::Error, Stage::Exec),
        ExecEnd::SetupFailed => (Outcome::ApplyFailed, Stage::Apply),
        ExecEnd::TimedOut => (Outcome::Timeout, Stage::Timeout),
        ExecEnd::Exited(code) if allow.contains(code) => (Outcome::Allow, Stage::Operation),
        ExecEnd::Exited(code) if deny.contains(code) => (Outcome::Deny, Stage::Operation),
        ExecEnd::Signaled(_) | ExecEnd::Exited(_) => (Outcome::Error, Stage::Operation),
    }
}

/// Baseline vs scenario.
pub fn attribute(baseline: Outcome, scenario: Outcome) -> Attribution {
    match (baseline, scenario) {
        (Outcome::Allow, Outcome::Deny) => Attribution::ProfileShaped,
        (Outcome::Deny, Outcome::Deny) => Attribution::Ambient,
        (Outcome::Allow, Outcome::Allow) => Attribution::Unaffected,
        (Outcome::Deny, Outcome::Allow) => Attribution::Anomalous,
        _ => Attribution::Inconclusive,
    }
}

/// The mismatches of one scenario, sorted: expected vs scenario lane, oracle vs scenario
/// lane (`not-enforceable` is not a divergence where the kernel allowed it).
pub fn mismatches(
    expected: Expectation,
    scenario: Option<Outcome>,
    oracle: Option<OracleDecision>,
) -> Vec<MismatchKind> {
    let mut out = Vec::new();
    let Some(observed) = scenario else {
        return out;
    };
    match observed {
        Outcome::ApplyFailed => out.push(MismatchKind::ApplyFailed),
        Outcome::Error | Outcome::Timeout => out.push(MismatchKind::Inconclusive),
        Outcome::Allow if expected == Expectation::Deny => {
            out.push(MismatchKind::ExpectedDenyObservedAllow);
        }
        Outcome::Deny if expected == Expectation::Allow => {
            out.push(MismatchKind::ExpectedAllowObservedDeny);
        }
        _ => {}
    }
    if let Some(o) = oracle {
        let diverges = matches!(
            (o, observed),
            (
                OracleDecision::Allow | OracleDecision::NotEnforceable,
                Outcome::Deny
            ) | (OracleDecision::Deny, Outcome::Allow)
        );
        if diverges {
            out.push(MismatchKind::OracleDivergence);
        }
    }
    out.sort();
    out
}

/// True if the scenario lane and the oracle both denied, the kernel recorded Landlock
/// denials for the child, and none of them names a right the oracle predicted as the
/// blocker (`blocker-divergence`). Without records (not collected, or none) nothing is
/// claimed: a child may be denied by something other than Landlock.
pub fn blocker_diverges(
    observed: Outcome,
    oracle: OracleDecision,
    predicted: &[String],
    kernel: Option<&[crate::model::results::KernelDenial]>,
) -> bool {
    let Some(denials) = kernel else {
        return false;
    };
    observed == Outcome::Deny
        && oracle == OracleDecision::Deny
        && !predicted.is_empty()
        && !denials.is_empty()
        && !denials
            .iter()
            .any(|d| d.blockers.iter().any(|b| predicted.contains(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_table_per_operation() {
        assert_eq!(classify_errno(Operation::FileRead, 0), Outcome::Allow);
        assert_eq!(
            classify_errno(Operation::FileRead, libc::EACCES),
            Outcome::Deny
        );
        assert_eq!(
            classify_errno(Operation::FileRead, libc::ENOENT),
            Outcome::Error
        );
        assert_eq!(
            classify_errno(Operation::TcpConnect, libc::ECONNREFUSED),
            Outcome::Allow
        );
        assert_eq!(
            classify_errno(Operation::TcpConnect, libc::EACCES),
            Outcome::Deny
        );
        assert_eq!(
            classify_errno(Operation::FileRename, libc::EXDEV),
            Outcome::Deny
        );
        assert_eq!(
            classify_errno(Operation::FileCreate, libc::EXDEV),
            Outcome::Error
        );
        assert_eq!(
            classify_errno(Operation::UdpSend, libc::EPERM),
            Outcome::Deny
        );
        assert_eq!(
            classify_errno(Operation::UnixAbstractConnect, libc::ECONNREFUSED),
            Outcome::Error,
            "no listener: the scope check never ran"
        );
        assert_eq!(errno_name(libc::EACCES), "EACCES");
        assert_eq!(errno_name(4095), "E4095");
        assert_eq!(signal_name(libc::SIGXFSZ), "SIGXFSZ");
    }

    #[test]
    fn exec_classification_order() {
        assert_eq!(
            classify_exec(&ExecEnd::SpawnFailed(libc::EACCES), &[0], &[]),
            (Outcome::Deny, Stage::Exec)
        );
        assert_eq!(
            classify_exec(&ExecEnd::SpawnFailed(libc::ENOENT), &[0], &[]),
            (Outcome::Error, Stage::Exec)
        );
        assert_eq!(
            classify_exec(&ExecEnd::SetupFailed, &[0], &[]).0,
            Outcome::ApplyFailed
        );
        assert_eq!(
            classify_exec(&ExecEnd::TimedOut, &[0], &[]).0,
            Outcome::Timeout
        );
        assert_eq!(
            classify_exec(&ExecEnd::Exited(0), &[0], &[1]).0,
            Outcome::Allow
        );
        assert_eq!(
            classify_exec(&ExecEnd::Exited(1), &[0], &[1]).0,
            Outcome::Deny
        );
        assert_eq!(
            classify_exec(&ExecEnd::Exited(2), &[0], &[1]).0,
            Outcome::Error
        );
        assert_eq!(
            classify_exec(&ExecEnd::Signaled(libc::SIGXFSZ), &[0], &[]).0,
            Outcome::Error
        );
    }

    #[test]
    fn attribution_and_mismatches() {
        assert_eq!(
            attribute(Outcome::Allow, Outcome::Deny),
            Attribution::ProfileShaped
        );
        assert_eq!(
            attribute(Outcome::Deny, Outcome::Deny),
            Attribution::Ambient
        );
        assert_eq!(
            attribute(Outcome::Allow, Outcome::Allow),
            Attribution::Unaffected
        );
        assert_eq!(
            attribute(Outcome::Deny, Outcome::Allow),
            Attribution::Anomalous
        );
        assert_eq!(
            attribute(Outcome::Error, Outcome::Deny),
            Attribution::Inconclusive
        );

        assert_eq!(
            mismatches(
                Expectation::Allow,
                Some(Outcome::Deny),
                Some(OracleDecision::Deny)
            ),
            vec![MismatchKind::ExpectedAllowObservedDeny]
        );
        assert_eq!(
            mismatches(
                Expectation::Deny,
                Some(Outcome::Allow),
                Some(OracleDecision::Deny)
            ),
            vec![
                MismatchKind::ExpectedDenyObservedAllow,
                MismatchKind::OracleDivergence
            ]
        );
        assert!(
            mismatches(
                Expectation::Allow,
                Some(Outcome::Allow),
                Some(OracleDecision::NotEnforceable)
            )
            .is_empty()
        );
        assert_eq!(
            mismatches(
                Expectation::Deny,
                Some(Outcome::Deny),
                Some(OracleDecision::NotEnforceable)
            ),
            vec![MismatchKind::OracleDivergence]
        );
        assert_eq!(
            mismatches(
                Expectation::Deny,
                Some(Outcome::ApplyFailed),
                Some(OracleDecision::Deny)
            ),
            vec![MismatchKind::ApplyFailed]
        );
        assert_eq!(
            mismatches(Expectation::Deny, Some(Outcome::Timeout), None),
            vec![MismatchKind::Inconclusive]
        );
    }

    /// Every combination of outcome, oracle decision, prediction and records: a blocker
    /// divergence is claimed only when both denied, the kernel recorded denials and none
    /// names a predicted blocker.
    #[test]
    fn blocker_divergence_needs_both_denials_and_disjoint_blockers() {
        use crate::model::results::KernelDenial;
        let denial = |b: &str| KernelDenial {
            blockers: vec![b.to_string()],
            object: std::collections::BTreeMap::new(),
            domain: "1".into(),
        };
        let outcomes = [Outcome::Allow, Outcome::Deny, Outcome::Error];
        let decisions = [
            OracleDecision::Allow,
            OracleDecision::Deny,
            OracleDecision::NotEnforceable,
        ];
        let predictions: [&[String]; 2] = [&[], &["fs.read_file".to_string()]];
        let records = [
            None,
            Some(vec![]),
            Some(vec![denial("fs.read_file")]),
            Some(vec![denial("fs.read_dir")]),
            Some(vec![denial("fs.read_dir"), denial("fs.read_file")]),
        ];
        for o in outcomes {
            for d in decisions {
                for p in predictions {
                    for r in &records {
                        let got = blocker_diverges(o, d, p, r.as_deref());
                        let want = o == Outcome::Deny
                            && d == OracleDecision::Deny
                            && !p.is_empty()
                            && r.as_ref().is_some_and(|v| {
                                !v.is_empty() && v.iter().all(|x| x.blockers != ["fs.read_file"])
                            });
                        assert_eq!(got, want, "{o:?} {d:?} {p:?} {r:?}");
                    }
                }
            }
        }
    }
}
