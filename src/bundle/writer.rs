//! Writing a bundle: the out-root lock, staging, atomic member files, the seal, the
//! no-replace move and `LATEST`.
//!
//! Member files are written as temp file → rename (a file under its final name is always
//! complete) and are born read-only (0444; the writer keeps a writable descriptor).
//!
//! Durability: no `fsync` as each member is written. At seal, `BLAKE3SUMS`, the index and
//! (when signing) the signatures are written and renamed into place under `.staging`, then
//! one barrier makes every member, the index and every directory entry durable, and only
//! then is the bundle moved where readers look (the move waits for the barrier and is not
//! made if it fails): a published bundle's every file is durable before its directory
//! appears in the out root. The barrier is one `syncfs(2)` on the staging filesystem when
//! the bundle has more than `PER_FILE_FSYNC_MAX` (128) files, through a directory
//! descriptor opened at [`StagedBundle::begin`] (so it reports every writeback error on that
//! filesystem since the run started); for fewer files, or on kernels older than 5.8 (whose
//! `syncfs` does not report errors), an `fsync` of every file and every directory, all in
//! flight at once (concurrent fsyncs share a journal commit; issued a few at a time each
//! waited for its own: ~14 commits one after the other for a small run's bundle), every
//! one completed before the move. A failed `syncfs`/`fsync` aborts the seal and is never
//! retried: the index (and signatures) are removed again and the bundle stays unsealed
//! under `.staging` with `run_status.json` saying `failed`.
//!
//! Why the index is not made durable after the members (as a temp file synced, renamed,
//! its directory synced: one more round of fsyncs after the barrier, each of which waits
//! for the disk to flush its cache, ~100–240 ms behind another process's writeback here):
//! nothing reads a bundle under `.staging` as committed. Readers trust a bundle only by
//! verifying every file its index lists, `repair` refuses a staging directory, and the
//! next writer removes it; what makes a bundle visible is the move, and it comes after the
//! barrier. A power loss before the barrier completes can leave, under `.staging` only, an
//! index whose members are not all on disk: a leftover that fails validation, reported by
//! `status` and removed by the next run, as before. Measured here: `fsync` per file costs
//! ~0.26 ms (~5 s for 20,000 log files, ~2 s with 8 threads); one `syncfs` after 4,000 files
//! took 44 ms, but it also waits for every other process's dirty data on the filesystem,
//! which is why a few files are fsynced one by one. Large members start writeback while the
//! run goes on (`bundle::writeback`: a hint that makes nothing durable), so the barrier
//! finds less left to write; the barrier itself is the same either way.
//!
//! After the barrier: the no-replace move, both directories it touched synced (together),
//! then `LATEST` renamed into place and its directory synced. `LATEST`'s temp file is
//! written and synced while the move's directories are (it names nothing until renamed);
//! the rename waits for both syncs and does not happen if one fails, so `LATEST` never
//! names a move that is not durable, and a kill between leaves what a kill at
//! `mid-latest` always left (a temp file the next writer removes).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::fsio::{self, TEMP_PREFIX};
use super::hash;
use super::lock::{LockOptions, OutLock};
use super::signature::{SIGNATURE_FILES, SealSigner};
use super::tree::{self, NodeKind};
use super::writeback::{self, WriteBehind};
use super::{INDEX_FILE, LATEST_FILE, REPAIR_LOG_FILE, STAGING_DIR, STATUS_FILE, SUMS_FILE};
use crate::model::index::{
    ArtifactIndex, AuditHead, BundleStatus, INDEX_SCHEMA_VERSION, IndexEntry, Latest, RunStatusFile,
};
use crate::util::digest::{self, Digest};
use crate::util::json;
use crate::{Error, Result};

/// Options for [`StagedBundle::begin`].
#[derive(Debug, Clone)]
pub struct BeginOptions {
    /// The out root (`out/`).
    pub out_root: PathBuf,
    /// A run id to use (else `NEXUSMON_RUN_ID`, else a new one).
    pub run_id: Option<String>,
    /// Lock behaviour.
    pub lock: LockOptions,
}

/// What [`StagedBundle::seal`] records.
#[derive(Debug, Clone)]
pub struct SealInfo {
    /// `complete` or `failed`.
    pub status: BundleStatus,
    /// Where a failed run stopped.
    pub failure_stage: Option<String>,
    /// The error of a failed run.
    pub error: Option<String>,
    /// `plan_digest` of the plan that ran.
    pub plan_digest: Option<Digest>,
    /// The audit-log head to anchor.
    pub audit_head: Option<AuditHead>,
    /// Sign the index (`artifact_index.sig`, `bundle.intoto.json`) with this key.
    pub signer: Option<SealSigner>,
}

impl SealInfo {
    /// A complete run's seal with nothing else recorded (no plan digest, audit head or
    /// signer); set fields on top with `SealInfo { .., ..SealInfo::complete() }`.
    pub fn complete() -> Self {
        Self {
            status: BundleStatus::Complete,
            failure_stage: None,
            error: None,
            plan_digest: None,
            audit_head: None,
            signer: None,
        }
    }
}

/// A sealed bundle.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The run id.
    pub run_id: String,
    /// `out/<run_id>`.
    pub dir: PathBuf,
    /// blake3 of `artifact_index.json`'s bytes.
    pub index_blake3: String,
    /// The index as written.
    pub index: ArtifactIndex,
    /// `SHA256:…` of the key that signed it, if it was signed.
    pub signed_by: Option<String>,
}

pub use super::faults::CrashPoint;
#[cfg(any(test, feature = "fault-injection"))]
pub use super::faults::Faults;
use super::faults::Hooks;

/// A bundle being written under `out/.staging/<run_id>/`. Thread-safe: workers may write
/// files concurrently through `&self`.
#[derive(Debug)]
pub struct StagedBundle {
    out_root: PathBuf,
    run_id: String,
    dir: PathBuf,
    /// The staging directory, opened at begin: `syncfs` through it reports every writeback
    /// error on the filesystem since then.
    dir_fd: File,
    started_at: String,
    expected: Mutex<BTreeSet<String>>,
    lock: OutLock,
    cleaned: Vec<String>,
    /// Test faults (no-ops unless built for tests or with `fault-injection`).
    faults: Hooks,
    /// Starts writeback of large members while the run goes on (a hint; see
    /// [`super::writeback`]).
    write_behind: WriteBehind,
}

/// A new run id: UTC time to the millisecond (so ids sort by time) and 32 random bits (so
/// they never collide), e.g. `20261124T150811.123Z-1a2b3c4d`.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let ts = now.strftime("%Y%m%dT%H%M%S%.3fZ").to_string();
    let mut r = [0u8; 4];
    // SAFETY: getrandom into a valid buffer.
    let n = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) };
    let rand = if n == 4 {
        u32::from_le_bytes(r)
    } else {
        std::process::id() ^ now.subsec_nanosecond().unsigned_abs()
    };
    format!("{ts}-{rand:08x}")
}

/// Check a run id is safe as a directory name: 1-128 of `[A-Za-z0-9._-]`, not starting
/// with `.` or `-`, and not a name the out root uses itself (`LATEST`).
pub fn validate_run_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !id.starts_with(['.', '-'])
        && !id.eq_ignore_ascii_case(LATEST_FILE);
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!("invalid run id `{id}`")).with_hint(
            "run ids are 1-128 characters of letters, digits, `.`, `_`, `-`, not starting with `.` or `-`, and not `LATEST`",
        ))
    }
}

/// Check a path the runner asks to write: a safe relative path, not a file the store
/// writes itself, no component that looks like a temp file.
fn check_member_rel(rel: &str) -> Result<()> {
    let reason = tree::unsafe_reason(rel).or_else(|| {
        if [INDEX_FILE, SUMS_FILE, STATUS_FILE, REPAIR_LOG_FILE].contains(&rel)
            || SIGNATURE_FILES.contains(&rel)
        {
            Some("the store writes this file itself")
        } else if rel.split('/').any(|c| c.starts_with(TEMP_PREFIX)) {
            Some("names starting with `.tmp.` are reserved for temp files")
        } else {
            None
        }
    });
    match reason {
        None => Ok(()),
        Some(r) => Err(Error::runner(format!(
            "cannot write bundle path `{rel}`: {r}"
        ))),
    }
}

/// Remove what crashed runs left under the out root: every directory in `.staging/` and
/// stray temp files beside `LATEST`. Needs the lock (nobody else can be writing). Returns
/// what was removed, as paths relative to the out root, sorted.
pub fn clean_staging(lock: &OutLock) -> Result<Vec<String>> {
    let out_root = lock.out_root();
    let mut removed = Vec::new();
    let staging = out_root.join(STAGING_DIR);
    // Never list (and empty) a directory a symlink points to.
    crate::util::nofollow::check_dir_path(&staging)?;
    if staging.is_dir() {
        for p in crate::util::fsx::read_dir_sorted(&staging)? {
            let meta = std::fs::symlink_metadata(&p).map_err(|e| Error::io("stat", &p, e))?;
            if meta.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            }
            .map_err(|e| Error::io("remove leftover staging entry", &p, e))?;
            removed.push(format!(
                "{STAGING_DIR}/{}",
                p.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    if out_root.is_dir() {
        for p in crate::util::fsx::read_dir_sorted(out_root)? {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with(TEMP_PREFIX) && p.is_file() {
                std::fs::remove_file(&p).map_err(|e| Error::io("remove stray temp file", &p, e))?;
                removed.push(name.into_owned());
            }
        }
    }
    if !removed.is_empty() {
        fsio::sync_dir(out_root)?;
    }
    Ok(removed)
}

impl StagedBundle {
    /// Lock the out root, remove what crashed runs left in `.staging` (see
    /// [`StagedBundle::cleaned_staging`]), create the staging directory, write
    /// `run_status.json` (`in_progress`). A run id whose directory exists is refused.
    pub fn begin(opts: &BeginOptions) -> Result<Self> {
        Self::begin_for_plan(opts, None)
    }

    /// [`StagedBundle::begin`], naming the plan the run executes in the out-root lock's
    /// holder record (so `missions` can tell which mission is running).
    pub fn begin_for_plan(opts: &BeginOptions, plan_id: Option<&str>) -> Result<Self> {
        let explicit = opts.run_id.clone().or_else(|| {
            std::env::var("NEXUSMON_RUN_ID")
                .ok()
                .filter(|s| !s.is_empty())
        });
        let mut run_id = explicit.clone().unwrap_or_else(new_run_id);
        validate_run_id(&run_id)?;
        let lock = OutLock::acquire_for_plan(&opts.out_root, opts.lock, Some(&run_id), plan_id)?;
        let cleaned = clean_staging(&lock)?;
        let staging_root = opts.out_root.join(STAGING_DIR);
        let staging = crate::util::nofollow::Dir::create(&staging_root)?;
        let mut attempts = 0;
        let dir = loop {
            attempts += 1;
            let final_dir = opts.out_root.join(&run_id);
            let dir = staging_root.join(&run_id);
            let taken = if std::fs::symlink_metadata(&final_dir).is_ok() {
                final_dir
            } else {
                match staging.mkdir(std::ffi::OsStr::new(&run_id), 0o777) {
                    Ok(()) => break dir,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => dir,
                    Err(e) => return Err(Error::io("create the staging directory", &dir, e)),
                }
            };
            if explicit.is_some() || attempts >= 3 {
                return Err(Error::usage(format!("run `{run_id}` already exists"))
                    .with_path(taken)
                    .with_hint("run ids are never reused; unset NEXUSMON_RUN_ID or pick another"));
            }
            run_id = new_run_id();
        };
        // No fsync here: nothing created so far needs to survive a crash on its own, and the
        // seal's barrier (syncfs) makes it all durable before the index is written.
        let dir_fd =
            fsio::open_dir(&dir).map_err(|e| Error::io("open the staging directory", &dir, e))?;
        let b = Self {
            out_root: opts.out_root.clone(),
            run_id,
            dir,
            dir_fd,
            started_at: crate::util::time::now_rfc3339(),
            expected: Mutex::new(BTreeSet::new()),
            lock,
            cleaned,
            faults: Hooks::none(),
            write_behind: WriteBehind::default(),
        };
        b.write_status(BundleStatus::InProgress, None, None)?;
        Ok(b)
    }

    /// Arm test faults (crash points, a failing durability barrier). Only the hidden
    /// `__bundle-write` command (built with the `fault-injection` feature) and unit tests
    /// call this.
    #[doc(hidden)]
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn inject_faults(&mut self, faults: Faults) {
        self.faults = Hooks::new(faults);
    }

    /// Kill the process here if a test armed this point (a no-op unless built for tests or
    /// with `fault-injection`).
    #[doc(hidden)]
    pub fn crash_point(&self, point: CrashPoint) {
        self.faults.crash(point);
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The staging directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The out root.
    pub fn out_root(&self) -> &Path {
        &self.out_root
    }

    /// The lock held for this run; [`OutLock::took_over`] names a stale holder that was
    /// taken over (show it as a warning).
    pub fn lock(&self) -> &OutLock {
        &self.lock
    }

    /// What [`StagedBundle::begin`] removed from crashed runs (paths relative to the out
    /// root, e.g. `.staging/<run_id>`); show it to the user.
    pub fn cleaned_staging(&self) -> &[String] {
        &self.cleaned
    }

    /// What `begin` found and did that the user must hear about (print them as warnings):
    /// a stale out-root lock taken over, leftovers of crashed runs removed.
    pub fn begin_notes(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(h) = &self.lock.took_over {
            let gone = if super::lock::pid_alive(h.pid) {
                "did not release it"
            } else {
                "is gone"
            };
            w.push(format!(
                "took over a stale out-root lock: its holder, {}, {gone}",
                h.describe()
            ));
        }
        if !self.cleaned.is_empty() {
            w.push(format!(
                "removed what crashed or aborted runs left behind: {}",
                self.cleaned.join(", ")
            ));
        }
        w
    }

    /// Declare a file the run means to write; if it is missing at seal time it is listed in
    /// the index's `missing`.
    pub fn expect(&self, rel: &str) {
        if let Ok(mut e) = self.expected.lock() {
            e.insert(rel.to_string());
        }
    }

    /// Write sorted, pretty JSON atomically at `rel`.
    pub fn write_json<T: Serialize + ?Sized>(&self, rel: &str, value: &T) -> Result<()> {
        self.write_bytes(rel, &json::to_sorted_pretty(value)?)
    }

    /// Write bytes atomically at `rel` (parents created): temp file in the same directory,
    /// then a rename, so a file under its final name is always complete. Made durable at
    /// seal.
    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        check_member_rel(rel)?;
        self.write_staged(rel, bytes)
    }

    /// Write a member (or one of the store's own files) atomically, unchecked.
    fn write_staged(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let mut f = self.create_staged(rel)?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &f.tmp, e))?;
        f.commit().map(|_| ())
    }

    /// Stream `reader` into `rel` (atomic as [`StagedBundle::write_bytes`], memory bounded
    /// whatever the size; file-to-file copies use `copy_file_range`). Returns the bytes
    /// written.
    pub fn write_file_from<R: Read + ?Sized>(&self, rel: &str, reader: &mut R) -> Result<u64> {
        let mut f = self.create_file(rel)?;
        let n = if f.crash_armed {
            io::copy(reader, &mut f)
        } else if let Some(file) = f.file.as_mut() {
            io::copy(reader, file)
        } else {
            Err(io::Error::other("file already committed"))
        }
        .map_err(|e| Error::io("write", &f.tmp, e))?;
        f.commit()?;
        Ok(n)
    }

    /// Open `rel` for writing (e.g. to hand a child process as its stdout): a temp file that
    /// becomes `rel` on [`StagedFile::commit`], and is removed if dropped uncommitted.
    pub fn create_file(&self, rel: &str) -> Result<StagedFile<'_>> {
        check_member_rel(rel)?;
        self.create_staged(rel)
    }

    /// Move the file or directory tree `src` (same filesystem) into the bundle at `rel`
    /// with one rename: for output a run already wrote elsewhere. What it holds is checked
    /// at seal like everything else. For the benchmark (sealing a populated tree).
    #[doc(hidden)]
    pub fn adopt(&self, rel: &str, src: &Path) -> Result<()> {
        check_member_rel(rel)?;
        let path = self.member_path(rel)?;
        fsio::rename_noreplace(src, &path)
    }

    fn member_path(&self, rel: &str) -> Result<PathBuf> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent()
            && !parent.is_dir()
        {
            crate::util::fsx::create_dir_all(parent)?;
        }
        Ok(path)
    }

    fn create_staged(&self, rel: &str) -> Result<StagedFile<'_>> {
        let path = self.member_path(rel)?;
        let tmp = fsio::temp_path_for(&path);
        let file = fsio::create_temp(&tmp)?;
        let crash_armed = self.faults.arm_mid_file();
        Ok(StagedFile {
            bundle: self,
            tmp,
            path,
            file: Some(file),
            crash_armed,
            progress: writeback::Progress::default(),
        })
    }

    fn write_status(
        &self,
        status: BundleStatus,
        failure_stage: Option<String>,
        error: Option<String>,
    ) -> Result<()> {
        let finished_at = (status != BundleStatus::InProgress).then(crate::util::time::now_rfc3339);
        let bytes = json::to_sorted_pretty(&RunStatusFile {
            schema_version: INDEX_SCHEMA_VERSION,
            run_id: self.run_id.clone(),
            status,
            failure_stage,
            error,
            started_at: self.started_at.clone(),
            finished_at,
        })?;
        self.write_staged(STATUS_FILE, &bytes)
    }

    /// Give up on this run without sealing it: `run_status.json` says `failed` (best
    /// effort), the staging directory is left for `status` to report and the next run to
    /// clean, the lock is released. Returns the staging directory.
    pub fn abandon(self, failure_stage: &str, error: &str) -> PathBuf {
        let _ = self.write_status(
            BundleStatus::Failed,
            Some(failure_stage.to_string()),
            Some(error.to_string()),
        );
        self.dir.clone()
    }

    /// Seal: final `run_status.json`, `BLAKE3SUMS`, the durability barrier,
    /// `artifact_index.json` (last), read-only files, the no-replace move to `out/<run_id>`,
    /// `LATEST`. An error before the move leaves the bundle unsealed under `.staging` (no
    /// index, `run_status.json` failed at stage `seal`); an error after it (updating
    /// `LATEST`) leaves a sealed, valid bundle that `LATEST` does not name yet.
    pub fn seal(self, info: SealInfo) -> Result<Sealed> {
        if info.status == BundleStatus::InProgress {
            return Err(Error::runner("a bundle cannot be sealed as in_progress"));
        }
        let mut progress = Progress::default();
        match self.seal_steps(info, &mut progress) {
            Ok(s) => Ok(s),
            Err(e) if progress.moved => Err(e.with_hint(format!(
                "the bundle is sealed and valid at {}; only LATEST was not updated",
                self.out_root.join(&self.run_id).display()
            ))),
            Err(e) => {
                if progress.index_written {
                    let _ = std::fs::remove_file(self.dir.join(INDEX_FILE));
                    for f in SIGNATURE_FILES {
                        let _ = std::fs::remove_file(self.dir.join(f));
                    }
                }
                let mut msg = e.to_string();
                for c in e.causes() {
                    let _ = write!(msg, ": {c}");
                }
                let _ = self.write_status(BundleStatus::Failed, Some("seal".into()), Some(msg));
                Err(e)
            }
        }
    }

    fn seal_steps(&self, info: SealInfo, progress: &mut Progress) -> Result<Sealed> {
        self.write_status(info.status, info.failure_stage, info.error)?;
        let (files, mut dirs) = self.members()?;
        let mut entries = hash_members(&self.dir_fd, &self.dir, &files)?;
        prune_empty_dirs(&self.dir, &files, &mut dirs)?;
        let mut sums = String::new();
        for e in &entries {
            let _ = writeln!(sums, "{}  {}", e.blake3, e.path);
        }
        self.write_staged(SUMS_FILE, sums.as_bytes())?;
        entries.push(IndexEntry {
            path: SUMS_FILE.into(),
            size: sums.len() as u64,
            blake3: digest::blake3_hex(sums.as_bytes()),
        });
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let present: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let missing: Vec<String> = self
            .expected
            .lock()
            .map_err(|_| Error::runner("the expected-files list is poisoned"))?
            .iter()
            .filter(|p| !present.contains(p.as_str()))
            .cloned()
            .collect();
        let index = ArtifactIndex {
            schema_version: INDEX_SCHEMA_VERSION,
            run_id: self.run_id.clone(),
            status: info.status,
            algorithm: "blake3".into(),
            file_count: entries.len() as u64,
            total_bytes: entries.iter().map(|e| e.size).sum(),
            entries,
            missing,
            plan_digest: info.plan_digest,
            audit_head: info.audit_head.clone(),
            repaired: false,
            tool_version: Some(crate::VERSION.to_string()),
        };

        // The index, the signatures and every member are written, then made durable by one
        // barrier, and only then is the directory moved where readers look: the move is the
        // publication, and it waits for the barrier (and is not made if it fails). The index
        // is renamed into place under `.staging` before the barrier, so the barrier's
        // directory fsync makes its entry durable with the members' (one round of fsyncs
        // where there were two, an index directory fsync waiting for the barrier first).
        // The write-behind's thread is stopped first (its ranges started; a hint only).
        self.write_behind.finish();
        self.crash_point(CrashPoint::BeforeSync);
        let index_bytes = json::to_sorted_pretty(&index)?;
        let index_blake3 = digest::blake3_hex(&index_bytes);
        self.write_unsynced(INDEX_FILE, &index_bytes, Some(CrashPoint::MidIndex))?;
        progress.index_written = true;
        self.crash_point(CrashPoint::AfterIndex);
        let signed_by = match &info.signer {
            Some(signer) => {
                let (sig, envelope) = signer.sign(&index, &index_bytes)?;
                self.write_unsynced(SIGNATURE_FILES[0], &sig, None)?;
                self.write_unsynced(SIGNATURE_FILES[1], &envelope, None)?;
                Some(signer.fingerprint())
            }
            None => None,
        };
        // Members were made read-only as they were hashed; the two files written since
        // (born read-only; set exactly, whatever the umask, before the barrier syncs them):
        fsio::make_read_only(&self.dir, &[SUMS_FILE, INDEX_FILE])?;
        self.crash_point(CrashPoint::AfterChmod);
        let mut durable: Vec<&str> = index.entries.iter().map(|e| e.path.as_str()).collect();
        durable.push(INDEX_FILE);
        if info.signer.is_some() {
            durable.extend(SIGNATURE_FILES);
        }
        make_durable(&self.dir_fd, &self.dir, &durable, &mut dirs, &self.faults)?;
        self.crash_point(CrashPoint::AfterSync);

        // Publish: move into place without replacing anything, then LATEST.
        let final_dir = self.out_root.join(&self.run_id);
        let latest = Latest {
            run_id: self.run_id.clone(),
            artifact_index_blake3: index_blake3.clone(),
            audit_head: info.audit_head,
        };
        let latest_bytes = json::to_sorted_pretty(&latest)?;
        fsio::rename_noreplace(&self.dir, &final_dir)?;
        progress.moved = true;
        // The move is durable in both directories it touched (synced together: see
        // `sync_all_at_once`) before LATEST names it. LATEST's temp file is written and
        // synced meanwhile (it names nothing until its rename, which waits for both
        // syncs and is skipped if one fails): one `fsync` wait fewer after the move.
        let moved_in = [self.out_root.clone(), self.out_root.join(STAGING_DIR)];
        std::thread::scope(|s| {
            let moved = s.spawn(|| sync_all_at_once(&moved_in, 2, &|d| fsio::sync_dir(d)));
            fsio::write_durable_gated(&self.out_root.join(LATEST_FILE), &latest_bytes, || {
                moved
                    .join()
                    .unwrap_or_else(|_| Err(Error::runner("the move's directory sync panicked")))?;
                self.crash_point(CrashPoint::AfterMove);
                self.crash_point(CrashPoint::MidLatest);
                Ok(())
            })
        })?;
        self.crash_point(CrashPoint::AfterLatest);
        Ok(Sealed {
            run_id: self.run_id.clone(),
            dir: final_dir,
            index_blake3,
            index,
            signed_by,
        })
    }

    /// The regular files to index (everything but the index and `BLAKE3SUMS`) and the
    /// directories; anything else in the staging directory is a runner bug and refused.
    fn members(&self) -> Result<(Vec<String>, Vec<String>)> {
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for n in tree::walk(&self.dir)? {
            let problem = match n.kind {
                NodeKind::Dir => {
                    dirs.push(n.rel);
                    continue;
                }
                NodeKind::Symlink => Some("a symlink (bundles hold regular files only)"),
                NodeKind::Other => Some("not a regular file"),
                NodeKind::File if !n.utf8 => Some("a file name that is not UTF-8"),
                NodeKind::File => tree::unsafe_reason(&n.rel).or_else(|| {
                    if n.rel == INDEX_FILE || SIGNATURE_FILES.contains(&n.rel.as_str()) {
                        Some("an index or signature written by someone else")
                    } else if n.rel.split('/').any(|c| c.starts_with(TEMP_PREFIX)) {
                        Some("a temp file left by a write that did not finish")
                    } else {
                        None
                    }
                }),
            };
            if let Some(p) = problem {
                return Err(Error::runner(format!("cannot seal: the bundle holds {p}"))
                    .with_path(self.dir.join(&n.rel)));
            }
            if n.rel != SUMS_FILE {
                files.push(n.rel);
            }
        }
        Ok((files, dirs))
    }

    /// Write one of the seal's own files (the index, a signature) at `rel`: temp file,
    /// then a rename, with no `fsync` (the barrier that follows makes it durable with the
    /// members, before the move publishes anything). `mid`: a crash point between the temp
    /// file's write and its rename.
    fn write_unsynced(&self, rel: &str, bytes: &[u8], mid: Option<CrashPoint>) -> Result<()> {
        let path = self.dir.join(rel);
        let tmp = fsio::temp_path_for(&path);
        let mut f = fsio::create_temp(&tmp)?;
        if let Err(e) = f.write_all(bytes) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("write", &tmp, e));
        }
        drop(f);
        if let Some(point) = mid {
            self.crash_point(point);
        }
        fsio::rename_into_place(&tmp, &path)
    }
}

/// How far a seal got (to decide what a failure leaves behind).
#[derive(Debug, Default)]
struct Progress {
    index_written: bool,
    moved: bool,
}

/// A member file being written; becomes visible under its name on
/// [`StagedFile::commit`].
#[derive(Debug)]
pub struct StagedFile<'a> {
    bundle: &'a StagedBundle,
    tmp: PathBuf,
    path: PathBuf,
    file: Option<File>,
    crash_armed: bool,
    /// Bytes written and handed to the bundle's write-behind.
    progress: writeback::Progress,
}

impl StagedFile<'_> {
    /// The open temp file (e.g. to clone for a child's stdout).
    pub fn file(&self) -> Option<&File> {
        self.file.as_ref()
    }

    /// The path the file gets on commit.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Close the temp file and rename it to its final name. Returns its size.
    pub fn commit(mut self) -> Result<u64> {
        let Some(f) = self.file.take() else {
            return Err(Error::runner("file already committed").with_path(&self.path));
        };
        let size = f
            .metadata()
            .map_err(|e| Error::io("stat", &self.tmp, e))?
            .len();
        if let Some((offset, len)) = self.progress.commit(size) {
            self.bundle.write_behind.hand_on(&self.tmp, &f, offset, len);
        }
        drop(f);
        fsio::rename_into_place(&self.tmp, &self.path)?;
        Ok(size)
    }
}

impl Write for StagedFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("file already committed"))?;
        if self.crash_armed && !buf.is_empty() {
            f.write_all(&buf[..buf.len() / 2])?;
            f.flush()?;
            self.bundle.crash_point(CrashPoint::MidFile);
        }
        let n = f.write(buf)?;
        if let Some((offset, len)) = self.progress.wrote(n as u64) {
            self.bundle.write_behind.hand_on(&self.tmp, f, offset, len);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for StagedFile<'_> {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Remove the directories no member lies beneath (a log whose write was abandoned leaves
/// its directory empty): a sealed bundle holds no directory its index does not explain.
/// `dirs` keeps the ones that remain.
pub(crate) fn prune_empty_dirs(dir: &Path, files: &[String], dirs: &mut Vec<String>) -> Result<()> {
    let mut needed: BTreeSet<&str> = BTreeSet::new();
    for f in files {
        let mut rest = f.as_str();
        while let Some((parent, _)) = rest.rsplit_once('/') {
            needed.insert(parent);
            rest = parent;
        }
    }
    let mut empty: Vec<String> = dirs
        .iter()
        .filter(|d| !needed.contains(d.as_str()))
        .cloned()
        .collect();
    empty.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for d in &empty {
        let p = dir.join(d);
        std::fs::remove_dir(&p).map_err(|e| Error::io("remove empty directory", &p, e))?;
    }
    dirs.retain(|d| needed.contains(d.as_str()));
    Ok(())
}

/// Hash every member in parallel and make it read-only; entries come back in the order of
/// `files`. A member with more than one link is refused: another name for it could change
/// it after the seal.
fn hash_members(dir_fd: &File, dir: &Path, files: &[String]) -> Result<Vec<IndexEntry>> {
    let jobs: Vec<hash::Job<'_>> = files.iter().map(|f| hash::Job::any(f)).collect();
    hash::hash_members(dir_fd, &jobs, true)
        .into_iter()
        .zip(files)
        .map(|(h, rel)| {
            let h = h.map_err(|e| Error::io("hash", dir.join(rel), e))?;
            if h.nlink > 1 {
                return Err(Error::runner(format!(
                    "cannot seal: `{rel}` has {} hard links (a bundle member must have one)",
                    h.nlink
                ))
                .with_path(dir.join(rel)));
            }
            Ok(IndexEntry {
                path: rel.clone(),
                size: h.size,
                blake3: h.blake3,
            })
        })
        .collect()
}

/// Up to this many members, the barrier fsyncs each file instead of calling `syncfs`.
const PER_FILE_FSYNC_MAX: usize = 128;

/// Threads of the per-file barrier: every `fsync` waits for a journal commit, and
/// concurrent ones share one, so the barrier issues them all at once (up to this many in
/// flight) instead of a few at a time.
const FSYNC_THREADS: usize = 32;

/// Make every member and directory durable: for more than [`PER_FILE_FSYNC_MAX`] files, one
/// `syncfs` where it reports errors (it covers file data and directory entries alike);
/// otherwise an `fsync` of each file and of each directory, all of them in flight at once
/// (see [`sync_all_at_once`]). Any error aborts; nothing is retried.
fn make_durable(
    dir_fd: &File,
    dir: &Path,
    members: &[&str],
    dirs: &mut [String],
    faults: &Hooks,
) -> Result<()> {
    let injected = |path: &Path| {
        if faults.take_sync_fault() {
            Err(Error::io(
                "make the bundle durable",
                path,
                io::Error::from_raw_os_error(libc::EIO),
            ))
        } else {
            Ok(())
        }
    };
    // syncfs flushes the whole filesystem, other processes' dirty data included: worth it
    // for many files, not for a few (whose own fsyncs cost less than that wait).
    let use_syncfs = !faults.per_file_fsync()
        && members.len() > PER_FILE_FSYNC_MAX
        && fsio::syncfs_reports_errors(&crate::util::host::kernel_release());
    if use_syncfs {
        injected(dir)?;
        return fsio::syncfs(dir_fd, dir);
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    let mut work: Vec<Durable<'_>> = members.iter().map(|m| Durable::File(m)).collect();
    work.extend(dirs.iter().map(|d| Durable::Dir(d)));
    work.push(Durable::Dir(""));
    sync_all_at_once(&work, FSYNC_THREADS, &|item| {
        match item {
            Durable::File(rel) => {
                let path = dir.join(rel);
                injected(&path)?;
                let f = fsio::open_beneath(dir_fd, rel).map_err(|e| Error::io("open", &path, e))?;
                f.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
            }
            Durable::Dir("") => fsio::sync_dir(dir)?,
            Durable::Dir(d) => fsio::sync_dir(&dir.join(d))?,
        }
        faults.note_synced(|| match item {
            Durable::File(rel) => (*rel).to_string(),
            Durable::Dir(d) => format!("{d}/"),
        });
        Ok(())
    })
}

/// One thing the per-file barrier makes durable: a member's data, or a directory's entries
/// (`""`: the bundle directory).
#[derive(Debug, Clone, Copy)]
enum Durable<'a> {
    File(&'a str),
    Dir(&'a str),
}

/// Run `sync` on every item, up to `threads` at once, and wait for all of them; the first
/// error in item order is returned (every item is tried once, none again). The barrier's
/// guarantee is that all of them have completed before anything after it (the index) is
/// written: which order they complete in among themselves is no part of it, as each makes
/// only its own file's data or its own directory's entries durable. Issued together they
/// share journal commits; issued a few at a time they wait for one commit after another.
fn sync_all_at_once<T: Sync>(
    items: &[T],
    threads: usize,
    sync: &(dyn Fn(&T) -> Result<()> + Sync),
) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors: Mutex<Vec<(usize, Error)>> = Mutex::new(Vec::new());
    let run = || {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return;
            };
            if let Err(e) = sync(item) {
                errors
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((i, e));
            }
        }
    };
    let helpers = threads.min(items.len()).saturating_sub(1);
    std::thread::scope(|s| {
        for _ in 0..helpers {
            // A thread that cannot be started leaves its share to the others.
            let _ = std::thread::Builder::new().spawn_scoped(s, run);
        }
        run();
    });
    let mut errors = errors
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    errors.sort_by_key(|(i, _)| *i);
    match errors.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::lock::LockMode;
    use crate::error::ErrorKind;

    fn begin(out: &Path, id: &str) -> StagedBundle {
        StagedBundle::begin(&BeginOptions {
            out_root: out.to_path_buf(),
            run_id: Some(id.into()),
            lock: LockOptions {
                mode: LockMode::Fail,
                timeout: std::time::Duration::ZERO,
            },
        })
        .unwrap()
    }

    fn info() -> SealInfo {
        SealInfo::complete()
    }

    #[test]
    fn run_ids_sort_by_time_and_differ() {
        let a = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_run_id();
        assert!(a < b, "{a} {b}");
        validate_run_id(&a).unwrap();
        let many: BTreeSet<String> = (0..1000).map(|_| new_run_id()).collect();
        assert_eq!(many.len(), 1000);
        for bad in [
            "",
            ".x",
            "-x",
            "a/b",
            "..",
            "LATEST",
            "latest",
            &"x".repeat(129),
        ] {
            assert!(validate_run_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn member_paths_the_store_owns_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let b = begin(d.path(), "r1");
        for bad in [
            INDEX_FILE,
            SUMS_FILE,
            STATUS_FILE,
            REPAIR_LOG_FILE,
            "../x",
            "a/.tmp.x",
            "/abs",
        ] {
            let e = b.write_bytes(bad, b"x").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Runner, "{e}");
            assert!(e.message().contains(bad), "{e}");
        }
    }

    #[test]
    fn seal_indexes_every_file_once_sorted_and_publishes() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let b = begin(&out, "r1");
        b.expect("never-written.json");
        b.expect("a.json");
        std::thread::scope(|s| {
            for i in 0..8 {
                let b = &b;
                s.spawn(move || {
                    b.write_bytes(&format!("logs/l{i}/x.stdout"), b"out")
                        .unwrap();
                });
            }
        });
        b.write_json("a.json", &serde_json::json!({"z": 1, "a": 2}))
            .unwrap();
        let mut f = b.create_file("streamed.bin").unwrap();
        f.write_all(&[7u8; 5000]).unwrap();
        assert_eq!(f.commit().unwrap(), 5000);
        let n = b
            .write_file_from("copied.bin", &mut &[1u8, 2, 3][..])
            .unwrap();
        assert_eq!(n, 3);
        let sealed = b.seal(info()).unwrap();
        let paths: Vec<&str> = sealed
            .index
            .entries
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        assert_eq!(paths, sorted);
        assert!(paths.contains(&"BLAKE3SUMS") && paths.contains(&"run_status.json"));
        assert!(!paths.contains(&"artifact_index.json"));
        // 8 logs, a.json, streamed.bin, copied.bin, run_status.json, BLAKE3SUMS.
        assert_eq!(sealed.index.file_count, 13);
        assert_eq!(sealed.index.missing, vec!["never-written.json".to_string()]);
        assert_eq!(sealed.dir, out.join("r1"));
        assert!(!out.join(".staging/r1").exists());
        let latest: Latest =
            serde_json::from_slice(&std::fs::read(out.join("LATEST")).unwrap()).unwrap();
        assert_eq!(latest.artifact_index_blake3, sealed.index_blake3);
        let index_bytes = std::fs::read(out.join("r1/artifact_index.json")).unwrap();
        assert_eq!(digest::blake3_hex(&index_bytes), sealed.index_blake3);
        let mode = std::fs::metadata(out.join("r1/logs/l3/x.stdout"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
    }

    #[test]
    fn an_existing_run_id_is_refused_and_the_next_begin_cleans_leftovers() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        begin(&out, "r1").seal(info()).unwrap();
        let e = StagedBundle::begin(&BeginOptions {
            out_root: out.clone(),
            run_id: Some("r1".into()),
            lock: LockOptions::default(),
        })
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
        assert!(e.message().contains("already exists"), "{e}");
        // A run that never sealed leaves its staging dir; the next run removes it.
        let left = begin(&out, "r2");
        left.write_bytes("x", b"1").unwrap();
        let dir = left.abandon("execute", "boom");
        let st: RunStatusFile =
            serde_json::from_slice(&std::fs::read(dir.join(STATUS_FILE)).unwrap()).unwrap();
        assert_eq!(st.status, BundleStatus::Failed);
        assert_eq!(st.failure_stage.as_deref(), Some("execute"));
        let next = begin(&out, "r3");
        assert_eq!(next.cleaned_staging(), [".staging/r2".to_string()]);
        assert!(!dir.exists());
    }

    #[test]
    fn a_failed_durability_barrier_leaves_the_bundle_unsealed_and_failed() {
        // Enough files for syncfs, then the per-file path.
        for per_file in [false, true] {
            let d = tempfile::tempdir().unwrap();
            let out = d.path().join("out");
            let mut b = begin(&out, "r1");
            for i in 0..=PER_FILE_FSYNC_MAX {
                b.write_bytes(&format!("f/{i}"), b"1").unwrap();
            }
            b.inject_faults(Faults {
                fail_sync: true,
                per_file_fsync: per_file,
                ..Faults::default()
            });
            let e = b.seal(info()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Runner, "{e}");
            assert!(e.to_string().contains("durable"), "{e}");
            assert!(!out.join("r1").exists());
            assert!(!out.join("LATEST").exists());
            let staged = out.join(".staging/r1");
            assert!(!staged.join(INDEX_FILE).exists());
            let st: RunStatusFile =
                serde_json::from_slice(&std::fs::read(staged.join(STATUS_FILE)).unwrap()).unwrap();
            assert_eq!(st.status, BundleStatus::Failed);
            assert_eq!(st.failure_stage.as_deref(), Some("seal"));
            assert!(st.error.unwrap().contains("Input/output error"));
        }
    }

    #[test]
    fn the_index_is_in_place_only_after_a_barrier_that_succeeded_and_no_temp_file_stays() {
        // Generated bundles (file counts either side of the syncfs threshold, nested
        // directories, both barrier paths, a failing barrier or not): the index's temp file
        // is written beside the barrier, so a failed barrier must leave neither an index
        // nor a temp file of one, and a sealed bundle must hold no temp file and validate,
        // LATEST naming its index's digest.
        fn temps(dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().unwrap().is_dir() {
                    temps(&e.path(), out);
                } else if name.starts_with(TEMP_PREFIX) {
                    out.push(e.path().display().to_string());
                }
            }
        }
        let mut rng = crate::util::testrng::Rng(0x005e_a11d);
        for round in 0..24 {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("out");
            let mut bundle = generated_bundle(&mut rng, &out, b'x', 5000);
            let fail = rng.chance(40);
            bundle.inject_faults(Faults {
                fail_sync: fail,
                per_file_fsync: rng.chance(50),
                ..Faults::default()
            });
            let r = bundle.seal(info());
            let mut left = Vec::new();
            temps(&out, &mut left);
            assert!(left.is_empty(), "round {round}: temp files left: {left:?}");
            if fail {
                let e = r.unwrap_err();
                assert!(e.to_string().contains("durable"), "round {round}: {e}");
                assert!(!out.join("r1").exists(), "round {round}");
                assert!(!out.join("LATEST").exists(), "round {round}");
                assert!(
                    !out.join(".staging/r1").join(INDEX_FILE).exists(),
                    "round {round}"
                );
            } else {
                let sealed = r.unwrap();
                let index = std::fs::read(out.join("r1").join(INDEX_FILE)).unwrap();
                assert_eq!(
                    digest::blake3_hex(&index),
                    sealed.index_blake3,
                    "round {round}"
                );
                assert_eq!(index, json::to_sorted_pretty(&sealed.index).unwrap());
                let latest: Latest =
                    serde_json::from_slice(&std::fs::read(out.join("LATEST")).unwrap()).unwrap();
                assert_eq!(latest.artifact_index_blake3, sealed.index_blake3);
                let report = crate::bundle::check_bundle(&out.join("r1")).unwrap();
                assert!(report.is_valid(), "round {round}: {:?}", report.problems);
            }
        }
    }

    /// A bundle `r1` in `out` of 0 to `2 × PER_FILE_FSYNC_MAX + 1` generated files (either
    /// side of the `syncfs` threshold) in up to two levels of directories, each up to
    /// `max_len` bytes of `fill`.
    fn generated_bundle(
        rng: &mut crate::util::testrng::Rng,
        out: &Path,
        fill: u8,
        max_len: usize,
    ) -> StagedBundle {
        let bundle = begin(out, "r1");
        let count = rng.below(2 * PER_FILE_FSYNC_MAX + 2);
        for i in 0..count {
            let rel = match rng.below(3usize) {
                0 => format!("f{i}.json"),
                1 => format!("d{}/f{i}", rng.below(4usize)),
                _ => format!("d{}/e{}/f{i}", rng.below(3usize), rng.below(3usize)),
            };
            bundle
                .write_bytes(&rel, &vec![fill; rng.below(max_len)])
                .unwrap();
        }
        bundle
    }

    #[test]
    fn every_file_and_directory_a_sealed_bundle_publishes_was_synced_by_the_barrier() {
        // Generated bundles (nested directories, file counts either side of the syncfs
        // threshold, the per-file barrier forced so that each item it makes durable is
        // recorded): the barrier, which runs before the move, made every file of the
        // published bundle durable — the index and `BLAKE3SUMS` included — and every
        // directory in it, each exactly once; nothing is published that it did not cover.
        let mut rng = crate::util::testrng::Rng(0x0b_a771);
        for round in 0..16 {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("out");
            let mut bundle = generated_bundle(&mut rng, &out, b'y', 3000);
            let log = std::sync::Arc::new(Mutex::new(Vec::new()));
            bundle.inject_faults(Faults {
                per_file_fsync: true,
                synced: Some(std::sync::Arc::clone(&log)),
                ..Faults::default()
            });
            bundle.seal(info()).unwrap();
            let mut synced = log.lock().unwrap().clone();
            synced.sort();
            let mut want: Vec<String> = tree::walk(&out.join("r1"))
                .unwrap()
                .into_iter()
                .map(|n| match n.kind {
                    NodeKind::Dir => format!("{}/", n.rel),
                    _ => n.rel,
                })
                .chain(["/".to_string()])
                .collect();
            want.sort();
            assert!(want.iter().any(|w| w == INDEX_FILE), "round {round}");
            assert_eq!(synced, want, "round {round}");
        }
    }

    #[test]
    fn the_barrier_tries_every_item_once_and_returns_the_first_error_in_order() {
        // Generated: item counts, thread counts and failing items; every item is synced
        // exactly once, all of them before the call returns, and the error is the one of
        // the first failing item whatever order the threads finished in.
        let mut rng = crate::util::testrng::Rng(0xba_7715);
        for _ in 0..200 {
            let n = rng.below(40usize);
            let threads = 1 + rng.below(40usize);
            let failing: Vec<bool> = (0..n).map(|_| rng.chance(10)).collect();
            let items: Vec<usize> = (0..n).collect();
            let seen: Vec<std::sync::atomic::AtomicUsize> = (0..n)
                .map(|_| std::sync::atomic::AtomicUsize::new(0))
                .collect();
            let r = sync_all_at_once(&items, threads, &|i| {
                if *i % 3 == 0 {
                    std::thread::yield_now();
                }
                seen[*i].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if failing[*i] {
                    Err(Error::runner(format!("item {i}")))
                } else {
                    Ok(())
                }
            });
            assert!(
                seen.iter()
                    .all(|c| c.load(std::sync::atomic::Ordering::SeqCst) == 1),
                "every item synced once before the barrier returned"
            );
            match failing.iter().position(|f| *f) {
                Some(first) => {
                    assert!(
                        r.unwrap_err()
                            .to_string()
                            .contains(&format!("item {first}"))
                    );
                }
                None => assert!(r.is_ok()),
            }
        }
    }

    #[test]
    fn a_failed_directory_fsync_fails_the_per_file_barrier() {
        // A directory the barrier cannot open: the error names it and nothing is sealed.
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("b");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/f"), b"1").unwrap();
        let dir_fd = fsio::open_dir(&dir).unwrap();
        let mut dirs = vec!["sub".to_string(), "gone".to_string()];
        let e = make_durable(&dir_fd, &dir, &["sub/f"], &mut dirs, &Hooks::none()).unwrap_err();
        assert!(
            e.to_string().contains("gone") || format!("{e:?}").contains("gone"),
            "{e:?}"
        );
        let mut dirs = vec!["sub".to_string()];
        make_durable(&dir_fd, &dir, &["sub/f"], &mut dirs, &Hooks::none()).unwrap();
    }

    #[test]
    fn per_file_fsync_seals_the_same_bundle() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let mut b = begin(&out, "r1");
        b.write_bytes("a/b", b"1").unwrap();
        b.inject_faults(Faults {
            per_file_fsync: true,
            ..Faults::default()
        });
        let s = b.seal(info()).unwrap();
        assert_eq!(s.index.file_count, 3);
    }

    #[test]
    fn a_symlink_or_temp_file_in_staging_is_refused_at_seal() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let b = begin(&out, "r1");
        std::os::unix::fs::symlink("/etc/hostname", b.dir().join("link")).unwrap();
        let e = b.seal(info()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Runner, "{e}");
        assert!(e.to_string().contains("symlink"), "{e}");
        let b = begin(&out, "r2");
        std::fs::write(b.dir().join(".tmp.1.2.x"), b"x").unwrap();
        let e = b.seal(info()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Runner, "{e}");
        assert!(e.to_string().contains("temp file"), "{e}");
    }

    /// Generated: members of random sizes written every way the writer offers (one
    /// `write_bytes`, buffered writes of random lengths, `write_file_from`), some across
    /// several write-behind chunks. Every file of at least `MIN_AT_COMMIT` bytes (or handed
    /// on in part) has its ranges handed on in order, each starting where the last ended,
    /// covering exactly its bytes; smaller files are left to the barrier; and the sealed
    /// bundle holds every file as written.
    #[test]
    fn write_behind_hands_on_every_large_member_once_in_order_and_changes_no_byte() {
        use crate::util::testrng::Rng;
        use writeback::{CHUNK, MIN_AT_COMMIT};
        for seed in 1..=6u64 {
            let mut rng = Rng(seed);
            let d = tempfile::tempdir().unwrap();
            let out = d.path().join("out");
            let b = begin(&out, "r1");
            let mut want: Vec<(String, Vec<u8>)> = Vec::new();
            for i in 0..rng.below(6u64) + 2 {
                let size = match rng.below(4u8) {
                    0 => rng.below(MIN_AT_COMMIT),
                    1 => MIN_AT_COMMIT - 1 + rng.below(3u64),
                    2 => rng.below(CHUNK) + MIN_AT_COMMIT,
                    _ => CHUNK * (1 + rng.below(3u64)) + rng.below(3 * CHUNK / 2),
                };
                let bytes: Vec<u8> = (0..size)
                    .map(|j| u8::try_from((j + seed + i) % 251).unwrap())
                    .collect();
                let rel = format!("d{}/f{i}.bin", i % 2);
                match rng.below(3u8) {
                    0 => b.write_bytes(&rel, &bytes).unwrap(),
                    1 => {
                        let mut f = b.create_file(&rel).unwrap();
                        let mut at = 0;
                        while at < bytes.len() {
                            let n = usize::try_from(rng.below(CHUNK / 2) + 1).unwrap();
                            let n = n.min(bytes.len() - at);
                            f.write_all(&bytes[at..at + n]).unwrap();
                            at += n;
                        }
                        assert_eq!(f.commit().unwrap(), size);
                    }
                    _ => {
                        assert_eq!(b.write_file_from(&rel, &mut &bytes[..]).unwrap(), size);
                    }
                }
                want.push((rel, bytes));
            }
            let handed = b.write_behind.handed.lock().unwrap().clone();
            for (rel, bytes) in &want {
                // Temp names are `.tmp.<pid>.<counter>.<name>`; the names here are unique.
                let path = b.dir.join(rel);
                let suffix = format!(".{}", path.file_name().unwrap().to_string_lossy());
                let ranges: Vec<(u64, u64)> = handed
                    .iter()
                    .filter(|(p, _, _)| {
                        p.parent() == path.parent()
                            && p.file_name().unwrap().to_string_lossy().ends_with(&suffix)
                    })
                    .map(|&(_, o, l)| (o, l))
                    .collect();
                let size = bytes.len() as u64;
                if size < MIN_AT_COMMIT && ranges.is_empty() {
                    continue;
                }
                let mut at = 0;
                for (k, &(o, l)) in ranges.iter().enumerate() {
                    assert_eq!(o, at, "seed {seed} {rel}: {ranges:?}");
                    assert!(l > 0, "seed {seed} {rel}: {ranges:?}");
                    // Every range but the last (at commit) is at least a chunk.
                    assert!(
                        k + 1 == ranges.len() || l >= CHUNK,
                        "seed {seed} {rel}: {ranges:?}"
                    );
                    at += l;
                }
                assert_eq!(at, size, "seed {seed} {rel} ({size} bytes): {ranges:?}");
            }
            let sealed = b.seal(info()).unwrap();
            for (rel, bytes) in &want {
                let got = std::fs::read(sealed.dir.join(rel)).unwrap();
                assert!(got == *bytes, "seed {seed} {rel}: contents differ");
                let e = sealed
                    .index
                    .entries
                    .iter()
                    .find(|e| e.path == *rel)
                    .unwrap();
                assert_eq!(e.blake3, digest::blake3_hex(bytes), "seed {seed} {rel}");
            }
        }
    }
}
