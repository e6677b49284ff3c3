//! Leak accounting for a child that is pid 1 of its own PID namespace.
//!
//! When such a child exits, the kernel kills every process left in its namespace before
//! anyone else hears of the exit, so nothing it leaves behind outlives it — and nothing is
//! left for the subreaper or the cgroups to find. To still record what it left, the child
//! carries a seccomp filter that reports every `exit_group` to the runner
//! ([`crate::sandbox::privilege::ExitWatchSetup`]) and waits for the answer. The runner
//! answers "continue" at once, except when the caller is the child itself: it first lists
//! the child's live descendants (every process of the namespace descends from its pid 1,
//! since orphans are re-parented to it), which are the processes it leaves behind, and
//! records them as leaked (`found_by: pid-namespace`, `action: killed-with-namespace`).
//!
//! A child killed by a signal makes no `exit_group` call: at a timeout the runner lists
//! the descendants outside the child's process group right before its SIGKILL (they
//! escaped the group kill; the kernel then ends them with the namespace). Members of the
//! process group after the runner signalled it are never leaks: the runner killed them.
//! A child that dies of some other signal takes its descendants with it unrecorded.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::model::results::Leaked;

/// The runner's side of one child's exit watch.
#[derive(Debug)]
pub struct ExitWatch {
    listener: Option<OwnedFd>,
    child: u32,
    group_signalled: bool,
    found: Vec<Leaked>,
}

impl ExitWatch {
    /// Watch `child` through its filter's `listener`.
    pub fn new(listener: OwnedFd, child: u32) -> Self {
        Self {
            listener: Some(listener),
            child,
            group_signalled: false,
            found: Vec::new(),
        }
    }

    /// The listener to poll (`None` once every filtered process is gone).
    pub fn fd(&self) -> Option<RawFd> {
        self.listener.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// The runner signalled the child's process group: its members are not leaks.
    pub fn group_signalled(&mut self) {
        self.group_signalled = true;
    }

    /// Answer every pending notification; when the child itself is exiting, first record
    /// its live descendants. Closes the listener when no filtered process is left.
    pub fn service(&mut self) {
        let Some(fd) = self.fd() else {
            return;
        };
        for _ in 0..4096 {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&raw mut p, 1, 0) };
            if n <= 0 {
                return;
            }
            if p.revents & libc::POLLIN == 0 {
                if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                    self.listener = None;
                }
                return;
            }
            // SAFETY: a zeroed plain-data struct the kernel fills (it must be zeroed).
            let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            // SAFETY: the ioctl writes one `seccomp_notif` into `notif`.
            let rc = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &raw mut notif) };
            if rc != 0 {
                // ENOENT: the caller died before we read it; anything else: give up.
                if crate::sandbox::apply::errno() == libc::ENOENT {
                    continue;
                }
                return;
            }
            if self.is_child(notif.pid) {
                self.record_descendants(None);
            }
            let resp = libc::seccomp_notif_resp {
                id: notif.id,
                val: 0,
                error: 0,
                flags: u32::try_from(libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE).unwrap_or(1),
            };
            // SAFETY: the ioctl reads one `seccomp_notif_resp`. An error means the caller
            // is gone (killed): nothing to answer.
            unsafe {
                libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &raw const resp);
            }
        }
    }

    /// The runner is about to SIGKILL the child's process group: record the descendants
    /// outside it (the group kill does not reach them; the namespace's end does).
    pub fn before_group_kill(&mut self) {
        self.group_signalled = true;
        self.record_descendants(Some(i64::from(self.child)));
    }

    /// What was recorded, sorted by pid.
    pub fn into_leaked(mut self) -> Vec<Leaked> {
        self.found.sort();
        self.found.dedup_by_key(|l| l.pid);
        self.found
    }

    /// `tid` is a thread of the child.
    fn is_child(&self, tid: u32) -> bool {
        tid == self.child
            || std::path::Path::new(&format!("/proc/{}/task/{tid}", self.child)).exists()
    }

    /// Record the child's live descendants, skipping members of `skip_group` and, once the
    /// runner signalled the group, of the child's group.
    fn record_descendants(&mut self, skip_group: Option<i64>) {
        let group = i64::from(self.child);
        for pid in descendants(self.child) {
            let Some((state, pgrp)) = stat(pid) else {
                continue;
            };
            if state == 'Z' {
                continue;
            }
            if skip_group == Some(pgrp) || (self.group_signalled && pgrp == group) {
                continue;
            }
            if self.found.iter().any(|l| l.pid == pid) {
                continue;
            }
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            self.found.push(Leaked {
                pid,
                comm,
                found_by: "pid-namespace".into(),
                action: "killed-with-namespace".into(),
            });
        }
    }
}

/// Every live descendant of `root` (children of each of its threads, recursively), bounded.
fn descendants(root: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        if out.len() > 65_536 {
            break;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children
                .split_whitespace()
                .filter_map(|s| s.parse::<u32>().ok())
            {
                if !out.contains(&c) {
                    out.push(c);
                    queue.push(c);
                }
            }
        }
    }
    out
}

/// `(state, process group)` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, i64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rsplit_once(')')?.1;
    let mut f = after.split_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((state, pgrp))
}
