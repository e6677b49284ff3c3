//! Fault injection into the bundle writer, for the crash and durability tests: kill the
//! process at a protocol step ([`CrashPoint`]), cut a member write in half, make the
//! durability barrier fail with EIO, force per-file `fsync`.
//!
//! Only a build for unit tests or with the cargo feature `fault-injection` (which also
//! brings the hidden `__bundle-write` command, `bundle::devtool`) can arm a fault. In any
//! other build [`Hooks`] is an empty type whose checks are constant `false`, so a release
//! binary carries no way to crash or fail its own writer.

/// A point of the commit protocol where a test can have the writer kill itself (SIGKILL).
/// Armed only through `StagedBundle::inject_faults`, which only the hidden
/// `__bundle-write` command (feature `fault-injection`) and unit tests call; without them
/// the names exist (the writer marks its steps with them) but nothing can arm one.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Staging created, `run_status.json` written, nothing else.
    AfterBegin,
    /// Half-way through writing a member file (its temp file is partial).
    MidFile,
    /// Every member written, seal not started.
    AfterFiles,
    /// Files hashed and `BLAKE3SUMS` written; the index not written yet.
    BeforeSync,
    /// Index temp file written, not renamed.
    MidIndex,
    /// Index in place under `.staging` (signatures not written yet), nothing synced.
    AfterIndex,
    /// Every file written and read-only, the durability barrier not run yet.
    AfterChmod,
    /// The barrier done (every member, the index and every directory durable), bundle not
    /// yet moved.
    AfterSync,
    /// Bundle moved to `out/<run_id>`, `LATEST` not updated.
    AfterMove,
    /// `LATEST` temp written, not renamed.
    MidLatest,
    /// `LATEST` replaced, lock not yet released.
    AfterLatest,
}

impl CrashPoint {
    /// Every point, in protocol order.
    pub const ALL: [Self; 11] = [
        Self::AfterBegin,
        Self::MidFile,
        Self::AfterFiles,
        Self::BeforeSync,
        Self::MidIndex,
        Self::AfterIndex,
        Self::AfterChmod,
        Self::AfterSync,
        Self::AfterMove,
        Self::MidLatest,
        Self::AfterLatest,
    ];

    /// The point's name (`after-begin`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AfterBegin => "after-begin",
            Self::MidFile => "mid-file",
            Self::AfterFiles => "after-files",
            Self::BeforeSync => "before-sync",
            Self::MidIndex => "mid-index",
            Self::AfterIndex => "after-index",
            Self::AfterChmod => "after-chmod",
            Self::AfterSync => "after-sync",
            Self::AfterMove => "after-move",
            Self::MidLatest => "mid-latest",
            Self::AfterLatest => "after-latest",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Faults a test can inject into a writer (see [`CrashPoint`]).
#[doc(hidden)]
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Kill the process at this point.
    pub crash_at: Option<CrashPoint>,
    /// With [`CrashPoint::MidFile`]: which member write (1-based) is cut in half.
    pub crash_write_number: usize,
    /// The first call of the durability barrier (`syncfs`, or one file's `fsync`) reports
    /// EIO, as a failing disk would. Later calls would succeed, so a retry would seal: the
    /// tests check that none happens.
    pub fail_sync: bool,
    /// Use per-file `fsync` instead of `syncfs` (the path taken on kernels < 5.8).
    pub per_file_fsync: bool,
    /// Where the per-file barrier records what it made durable, as each `fsync` succeeds:
    /// a file's bundle-relative path, a directory's with a trailing `/` (the bundle
    /// directory itself: `/`). A test reads it after the seal.
    pub synced: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
}

/// The writer's armed faults and the state they need.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    faults: Faults,
    /// Armed by `faults.fail_sync`; consumed by the first barrier call.
    sync_fault: std::sync::atomic::AtomicBool,
    /// Member writes started so far (for [`Faults::crash_write_number`]).
    writes: std::sync::atomic::AtomicUsize,
}

#[cfg(any(test, feature = "fault-injection"))]
impl Hooks {
    /// Nothing armed.
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// Hooks armed with `faults`.
    pub(crate) fn new(faults: Faults) -> Self {
        Self {
            sync_fault: std::sync::atomic::AtomicBool::new(faults.fail_sync),
            faults,
            writes: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Kill the process (SIGKILL) if `point` is armed.
    pub(crate) fn crash(&self, point: CrashPoint) {
        if self.faults.crash_at == Some(point) {
            // SAFETY: signalling ourselves; never returns.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    /// Count a member write starting; true if this one is to be cut in half
    /// ([`CrashPoint::MidFile`]).
    pub(crate) fn arm_mid_file(&self) -> bool {
        use std::sync::atomic::Ordering;
        let n = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        self.faults.crash_at == Some(CrashPoint::MidFile)
            && n >= self.faults.crash_write_number.max(1)
    }

    /// True once, on the first call after `fail_sync` was armed.
    pub(crate) fn take_sync_fault(&self) -> bool {
        self.sync_fault
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// Per-file `fsync` forced instead of `syncfs`.
    pub(crate) fn per_file_fsync(&self) -> bool {
        self.faults.per_file_fsync
    }

    /// Record an item the per-file barrier made durable (see [`Faults::synced`]).
    pub(crate) fn note_synced(&self, item: impl FnOnce() -> String) {
        if let Some(log) = &self.faults.synced {
            log.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(item());
        }
    }
}

/// No faults can be armed in this build: every check is constant.
#[cfg(not(any(test, feature = "fault-injection")))]
#[derive(Debug, Default)]
pub(crate) struct Hooks;

#[cfg(not(any(test, feature = "fault-injection")))]
impl Hooks {
    /// Nothing armed (nothing can be).
    pub(crate) fn none() -> Self {
        Self
    }

    #[inline]
    #[allow(clippy::unused_self)]
    pub(crate) fn crash(&self, _point: CrashPoint) {}

    #[inline]
    #[allow(clippy::unused_self)]
    pub(crate) fn arm_mid_file(&self) -> bool {
        false
    }

    #[inline]
    #[allow(clippy::unused_self)]
    pub(crate) fn take_sync_fault(&self) -> bool {
        false
    }

    #[inline]
    #[allow(clippy::unused_self)]
    pub(crate) fn per_file_fsync(&self) -> bool {
        false
    }

    #[inline]
    #[allow(clippy::unused_self)]
    pub(crate) fn note_synced(&self, _item: impl FnOnce() -> String) {}
}
