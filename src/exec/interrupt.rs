//! SIGINT, SIGTERM and SIGHUP during a run.
//!
//! While a [`Guard`] is alive (the run pipeline holds one from the start of a real run to
//! its seal), the three signals are caught:
//!
//! - **The first** sets a flag ([`pending`]) and makes an eventfd readable ([`wake_fd`]),
//!   which every child's wait loop polls: running children's process groups (and their pids
//!   cgroups) are killed at once, the scheduler runs no further child, and the pipeline
//!   assembles what was observed and seals the bundle as `interrupted` (exit 128 + the
//!   signal's number: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
//! - **A second** kills every running child's process group from the handler and exits at
//!   once with the same code (`_exit`: no unwinding, nothing else runs), leaving the
//!   bundle unsealed under `out/.staging/`; the next run reports and removes it, and the
//!   children's PDEATHSIG and the next run's stale-cgroup sweep take care of anything left.
//!
//! The handler does only async-signal-safe things: atomic loads and stores, `write(2)` to
//! the eventfd, `kill(2)`, `_exit(2)`. Hand-written on `sigaction` rather than through a
//! crate such as `signal-hook`: the second signal must kill the registered groups and exit
//! from inside the handler, which such crates also leave to an unsafe closure; the state
//! is three statics.
//!
//! Children register their process group while they run ([`GroupSlot`]); a worker that
//! killed its child because of the interrupt says so ([`note_killed`]) so the run records
//! that scenario as interrupted, not as the outcome of a killed process.

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};

/// Slots for the process groups of running children (more than any job count).
const SLOTS: usize = 1024;

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static COUNT: AtomicU32 = AtomicU32::new(0);
static WAKE: AtomicI32 = AtomicI32::new(-1);
static GUARDS: AtomicUsize = AtomicUsize::new(0);
static GROUPS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

const CAUGHT: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn on_signal(sig: libc::c_int) {
    if COUNT.fetch_add(1, Ordering::SeqCst) == 0 {
        SIGNAL.store(sig, Ordering::SeqCst);
        let fd = WAKE.load(Ordering::SeqCst);
        if fd >= 0 {
            let one: u64 = 1;
            // SAFETY: write(2) of a local value to our eventfd: async-signal-safe.
            unsafe {
                libc::write(fd, (&raw const one).cast(), 8);
            }
        }
        return;
    }
    for slot in &GROUPS {
        let g = slot.load(Ordering::SeqCst);
        if g > 0 {
            // SAFETY: kill(2) is async-signal-safe; the group is a child's.
            unsafe {
                libc::kill(-g, libc::SIGKILL);
            }
        }
    }
    // A `--kernel-audit require` run puts the kernel's audit state back (one sendto).
    crate::sandbox::audit::restore_from_signal_handler();
    // SAFETY: _exit(2) is async-signal-safe; the second signal aborts the run at once.
    unsafe { libc::_exit(crate::exit_code::interrupted(SIGNAL.load(Ordering::SeqCst))) }
}

/// The signal handlers of a run; the previous dispositions come back on drop.
#[derive(Debug)]
pub struct Guard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl Guard {
    /// Catch SIGINT, SIGTERM and SIGHUP until the guard is dropped. The flag starts clear.
    pub fn install() -> Self {
        GUARDS.fetch_add(1, Ordering::SeqCst);
        SIGNAL.store(0, Ordering::SeqCst);
        COUNT.store(0, Ordering::SeqCst);
        if WAKE.load(Ordering::SeqCst) < 0 {
            // SAFETY: eventfd with flags; the fd lives for the process.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            WAKE.store(fd, Ordering::SeqCst);
        } else {
            drain_wake();
        }
        let mut old = Vec::new();
        for sig in CAUGHT {
            // SAFETY: zeroed plain data, filled below.
            let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            // SAFETY: zeroed plain data.
            let mut prev: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointers; an empty mask.
            let rc = unsafe {
                libc::sigemptyset(&raw mut sa.sa_mask);
                libc::sigaction(sig, &raw const sa, &raw mut prev)
            };
            if rc == 0 {
                old.push((sig, prev));
            }
        }
        Self { old }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // What was ignored before is ignored again: children started from now on reset it.
        let ignored: Vec<libc::c_int> = self
            .old
            .iter()
            .filter(|(_, prev)| prev.sa_sigaction == libc::SIG_IGN)
            .map(|(sig, _)| *sig)
            .collect();
        super::spawn::will_ignore(&ignored);
        for (sig, prev) in &self.old {
            // SAFETY: restoring the disposition saved at install.
            unsafe {
                libc::sigaction(*sig, prev, std::ptr::null_mut());
            }
        }
        GUARDS.fetch_sub(1, Ordering::SeqCst);
    }
}

fn drain_wake() {
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        let mut v: u64 = 0;
        // SAFETY: reading 8 bytes from our non-blocking eventfd into a local.
        unsafe {
            libc::read(fd, (&raw mut v).cast(), 8);
        }
    }
}

/// The signal that interrupted the run, if one did (while a guard is installed).
pub fn pending() -> Option<i32> {
    if GUARDS.load(Ordering::SeqCst) == 0 {
        return None;
    }
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The eventfd that becomes readable at the first signal (poll it with the child's pipes).
pub fn wake_fd() -> Option<i32> {
    let fd = WAKE.load(Ordering::SeqCst);
    (fd >= 0 && GUARDS.load(Ordering::SeqCst) > 0).then_some(fd)
}

/// `SIGINT`, `SIGTERM`, `SIGHUP`.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// A running child's process group, registered so a second signal kills it.
#[derive(Debug)]
pub struct GroupSlot(Option<usize>);

impl GroupSlot {
    /// Register process group `pgid` (its leader's pid).
    pub fn register(pgid: i32) -> Self {
        for (i, slot) in GROUPS.iter().enumerate() {
            if slot
                .compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return Self(Some(i));
            }
        }
        Self(None)
    }
}

impl Drop for GroupSlot {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            GROUPS[i].store(0, Ordering::SeqCst);
        }
    }
}

thread_local! {
    static KILLED: Cell<bool> = const { Cell::new(false) };
}

/// This thread killed (or did not start) a child because the run was interrupted.
pub fn note_killed() {
    KILLED.with(|k| k.set(true));
}

/// Whether this thread killed a child because of the interrupt since the last call.
pub fn take_killed() -> bool {
    KILLED.with(|k| k.replace(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_slots_register_and_release() {
        // Real signals are tested through the binary (tests/integration/run_interrupt.rs):
        // raising one here would interrupt a run another unit test has in flight.
        let s = GroupSlot::register(12345);
        assert!(GROUPS.iter().any(|g| g.load(Ordering::SeqCst) == 12345));
        drop(s);
        assert!(!GROUPS.iter().any(|g| g.load(Ordering::SeqCst) == 12345));
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(crate::exit_code::interrupted(libc::SIGINT), 130);
        assert_eq!(crate::exit_code::interrupted(libc::SIGTERM), 143);
        assert!(!take_killed());
        note_killed();
        assert!(take_killed());
        assert!(!take_killed());
    }
}
