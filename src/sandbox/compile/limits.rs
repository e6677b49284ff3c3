//! Compiling a profile's seccomp groups (with what they imply) and its limits: rlimits and
//! how the process limit is contained (a pids cgroup, else RLIMIT_NPROC, which does not
//! bind root).

use super::{Build, ProcessLimit, RlimitSpec, core_limit};
use crate::model::registry::{Limits, SeccompGroup};

impl Build<'_> {
    /// Add what the requested groups imply, sort, and drop them all where this host cannot
    /// install a filter.
    pub(super) fn finish_seccomp(&mut self) {
        let seccomp = &mut self.seccomp;
        if seccomp.contains(&SeccompGroup::Udp) && !seccomp.contains(&SeccompGroup::IoUring) {
            // io_uring can create sockets without socket(2): a UDP filter without it is a hole.
            seccomp.push(SeccompGroup::IoUring);
        }
        seccomp.sort();
        seccomp.dedup();
        if !seccomp.is_empty() && !self.ctx.host.seccomp_available {
            self.gaps
                .add("seccomp", "the kernel does not support seccomp filters");
            seccomp.clear();
        }
        let arch_ok = seccompiler::TargetArch::try_from(std::env::consts::ARCH).is_ok();
        if !seccomp.is_empty() && !arch_ok {
            self.gaps.add(
                "seccomp",
                format!(
                    "seccomp filters are not built for {}",
                    std::env::consts::ARCH
                ),
            );
            seccomp.clear();
        }
    }

    /// The rlimits (RLIMIT_CORE=0 last, always) and the process limit.
    pub(super) fn limits(&mut self, l: &Limits) -> (Vec<RlimitSpec>, Option<ProcessLimit>) {
        let mut rlimits = Vec::new();
        if let Some(s) = l.cpu_seconds {
            rlimits.push(RlimitSpec {
                name: "RLIMIT_CPU".into(),
                resource: libc::RLIMIT_CPU,
                soft: s,
                hard: s.saturating_add(1),
            });
        }
        for (name, res, v) in [
            ("RLIMIT_AS", libc::RLIMIT_AS, l.address_space_bytes),
            ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, l.open_files),
            ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE, l.file_size_bytes),
        ] {
            if let Some(v) = v {
                rlimits.push(RlimitSpec {
                    name: name.into(),
                    resource: res,
                    soft: v,
                    hard: v,
                });
            }
        }
        let processes = l
            .processes
            .map(|limit| self.process_limit(limit, &mut rlimits));
        rlimits.push(core_limit());
        (rlimits, processes)
    }

    /// How `limits.processes` is contained here (adding RLIMIT_NPROC when that is the way).
    fn process_limit(&mut self, limit: u64, rlimits: &mut Vec<RlimitSpec>) -> ProcessLimit {
        let cgroup_kind = self.ctx.host.pids_cgroup.as_deref().map(|root| {
            if root.ends_with("/pids") {
                ("pids-cgroup-v1", root)
            } else {
                ("pids-cgroup-v2", root)
            }
        });
        match (cgroup_kind, self.ctx.host.euid) {
            (Some((kind, root)), _) => ProcessLimit {
                limit,
                enforced_by: kind.into(),
                cgroup_root: Some(root.into()),
                note: None,
            },
            (None, 0) => {
                self.gaps.add(
                    "limits.processes",
                    "the runner is root (RLIMIT_NPROC does not bind root) and no writable pids cgroup exists",
                );
                ProcessLimit {
                    limit,
                    enforced_by: "none".into(),
                    cgroup_root: None,
                    note: None,
                }
            }
            (None, _) => {
                rlimits.push(RlimitSpec {
                    name: "RLIMIT_NPROC".into(),
                    resource: libc::RLIMIT_NPROC,
                    soft: limit,
                    hard: limit,
                });
                ProcessLimit {
                    limit,
                    enforced_by: "rlimit-nproc".into(),
                    cgroup_root: None,
                    note: Some(
                        "RLIMIT_NPROC counts every process of the uid, not only the probe's tree"
                            .into(),
                    ),
                }
            }
        }
    }
}
