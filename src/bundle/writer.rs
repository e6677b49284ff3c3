//! Writing a bundle: staging, atomic files, the seal, the no-replace move and `LATEST`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use super::lock::{LockOptions, OutLock};
use super::{INDEX_FILE, LATEST_FILE, STAGING_DIR, STATUS_FILE, SUMS_FILE};
use crate::model::index::{
    ArtifactIndex, AuditHead, BundleStatus, INDEX_SCHEMA_VERSION, IndexEntry, Latest, RunStatusFile,
};
use crate::util::digest::{self, Digest};
use crate::util::{fsx, json};
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
}

/// A bundle being written under `out/.staging/<run_id>/`. Thread-safe: workers may write
/// files concurrently.
#[derive(Debug)]
pub struct StagedBundle {
    out_root: PathBuf,
    run_id: String,
    dir: PathBuf,
    started_at: String,
    expected: Mutex<BTreeSet<String>>,
    lock: OutLock,
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
/// with `.` or `-`.
pub fn validate_run_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !id.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!("invalid run id `{id}`"))
            .with_hint("run ids are 1-128 characters of letters, digits, `.`, `_`, `-`, not starting with `.` or `-`"))
    }
}

/// Check a bundle-relative path: relative, `/`-separated normal components only.
pub(crate) fn check_rel(rel: &str) -> Result<()> {
    let p = Path::new(rel);
    let ok = !rel.is_empty()
        && !rel.contains('\\')
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && rel != INDEX_FILE;
    if ok {
        Ok(())
    } else {
        Err(Error::runner(format!("unsafe bundle path `{rel}`")))
    }
}

impl StagedBundle {
    /// Lock the out root, create the staging directory, write `run_status.json`
    /// (`in_progress`).
    pub fn begin(opts: &BeginOptions) -> Result<Self> {
        let run_id = match &opts.run_id {
            Some(id) => id.clone(),
            None => std::env::var("NEXUSMON_RUN_ID")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(new_run_id),
        };
        validate_run_id(&run_id)?;
        let lock = OutLock::acquire(&opts.out_root, opts.lock)?;
        let final_dir = opts.out_root.join(&run_id);
        let staging_root = opts.out_root.join(STAGING_DIR);
        let dir = staging_root.join(&run_id);
        for d in [&final_dir, &dir] {
            if d.exists() {
                return Err(Error::usage(format!("run `{run_id}` already exists"))
                    .with_path(d)
                    .with_hint("run ids are never reused; unset NEXUSMON_RUN_ID or pick another"));
            }
        }
        fsx::create_dir_all(&staging_root)?;
        std::fs::create_dir(&dir).map_err(|e| Error::io("create staging directory", &dir, e))?;
        fsx::sync_dir(&staging_root)?;
        let started_at = crate::util::time::now_rfc3339();
        let b = Self {
            out_root: opts.out_root.clone(),
            run_id: run_id.clone(),
            dir,
            started_at: started_at.clone(),
            expected: Mutex::new(BTreeSet::new()),
            lock,
        };
        b.write_json(
            STATUS_FILE,
            &RunStatusFile {
                schema_version: INDEX_SCHEMA_VERSION,
                run_id,
                status: BundleStatus::InProgress,
                failure_stage: None,
                error: None,
                started_at,
                finished_at: None,
            },
        )?;
        Ok(b)
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

    /// The lock held for this run (to report a stale holder taken over).
    pub fn lock(&self) -> &OutLock {
        &self.lock
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

    /// Write bytes atomically at `rel` (parents created). The file is fsynced; directories
    /// are fsynced once at seal.
    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        check_rel(rel)?;
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent()
            && !parent.is_dir()
        {
            fsx::create_dir_all(parent)?;
        }
        fsx::write_atomic_with(&path, bytes, false)
    }

    /// Seal: final `run_status.json`, `BLAKE3SUMS`, `artifact_index.json` (last), fsync
    /// every directory, move to `out/<run_id>` (no replace), make files read-only, replace
    /// `LATEST`. Any error leaves the bundle unsealed under `.staging`.
    pub fn seal(self, info: SealInfo) -> Result<Sealed> {
        if info.status == BundleStatus::InProgress {
            return Err(Error::runner("a bundle cannot be sealed as in_progress"));
        }
        self.write_json(
            STATUS_FILE,
            &RunStatusFile {
                schema_version: INDEX_SCHEMA_VERSION,
                run_id: self.run_id.clone(),
                status: info.status,
                failure_stage: info.failure_stage.clone(),
                error: info.error.clone(),
                started_at: self.started_at.clone(),
                finished_at: Some(crate::util::time::now_rfc3339()),
            },
        )?;
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        walk(&self.dir, "", &mut files, &mut dirs)?;
        files.retain(|f| f != SUMS_FILE && f != INDEX_FILE);
        let mut entries = hash_entries(&self.dir, &files)?;
        let mut sums = String::new();
        for e in &entries {
            let _ = writeln!(sums, "{}  {}", e.blake3, e.path);
        }
        self.write_bytes(SUMS_FILE, sums.as_bytes())?;
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
            .map(|e| {
                e.iter()
                    .filter(|p| !present.contains(p.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
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
        };
        // Everything but the index must be durable before the index exists.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for d in &dirs {
            fsx::sync_dir(&self.dir.join(d))?;
        }
        fsx::sync_dir(&self.dir)?;
        let index_bytes = json::to_sorted_pretty(&index)?;
        fsx::write_atomic(&self.dir.join(INDEX_FILE), &index_bytes)?;
        let index_blake3 = digest::blake3_hex(&index_bytes);
        make_read_only(&self.dir, &index.entries)?;
        let final_dir = self.out_root.join(&self.run_id);
        rename_noreplace(&self.dir, &final_dir)?;
        fsx::sync_dir(&self.out_root)?;
        if let Some(staging) = self.dir.parent() {
            fsx::sync_dir(staging)?;
        }
        let latest = Latest {
            run_id: self.run_id.clone(),
            artifact_index_blake3: index_blake3.clone(),
            audit_head: info.audit_head,
        };
        fsx::write_atomic(
            &self.out_root.join(LATEST_FILE),
            &json::to_sorted_pretty(&latest)?,
        )?;
        Ok(Sealed {
            run_id: self.run_id,
            dir: final_dir,
            index_blake3,
            index,
        })
    }
}

fn walk(base: &Path, rel: &str, files: &mut Vec<String>, dirs: &mut Vec<String>) -> Result<()> {
    let dir = if rel.is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    };
    let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        if ft.is_dir() {
            dirs.push(child.clone());
            walk(base, &child, files, dirs)?;
        } else if ft.is_file() {
            if name.starts_with(".tmp.") {
                return Err(Error::runner("a temporary file was left in the bundle")
                    .with_path(entry.path()));
            }
            files.push(child);
        } else {
            return Err(Error::runner(
                "the bundle holds something that is not a regular file or directory",
            )
            .with_path(entry.path()));
        }
    }
    Ok(())
}

fn hash_entries(base: &Path, files: &[String]) -> Result<Vec<IndexEntry>> {
    files
        .par_iter()
        .map(|rel| {
            let (size, blake3) = digest::blake3_file(&base.join(rel))?;
            Ok(IndexEntry {
                path: rel.clone(),
                size,
                blake3,
            })
        })
        .collect()
}

fn make_read_only(base: &Path, entries: &[IndexEntry]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in entries.iter().map(|e| e.path.as_str()).chain([INDEX_FILE]) {
        let p = base.join(e);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444))
            .map_err(|err| Error::io("make read-only", &p, err))?;
    }
    Ok(())
}

/// `renameat2(RENAME_NOREPLACE)`: move `from` to `to`, failing if `to` exists.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let f = CString::new(from.as_os_str().as_bytes())
        .map_err(|_| Error::runner("path contains NUL").with_path(from))?;
    let t = CString::new(to.as_os_str().as_bytes())
        .map_err(|_| Error::runner("path contains NUL").with_path(to))?;
    // SAFETY: valid C strings; AT_FDCWD.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::io(
            "move sealed bundle into place (no replace)",
            to,
            std::io::Error::last_os_error(),
        ))
    }
}
