//! `reindex-bundle --repair`: rewrite the index of a completed or failed bundle from what is
//! on disk, and say so.
//!
//! The repair never makes evidence look untouched: the new index has `repaired: true`, every
//! indexed file that was gone is added to its `missing` list, and `repair_log.json` (itself
//! indexed; earlier repairs are kept) records what the old index said against what was found.
//! It refuses an `in_progress` or staged bundle, a bundle whose `run_status.json` cannot be
//! read, and one holding symlinks or special files (remove them first: the repair indexes
//! regular files only). `LATEST` is updated if it named the bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::check::{self, Report, Resolved};
use super::lock::{LockOptions, OutLock};
use super::tree::{self, NodeKind};
use super::{
    INDEX_FILE, LATEST_FILE, LOCK_FILE, REPAIR_LOG_FILE, STAGING_DIR, SUMS_FILE, fsio, hash,
};
use crate::error::ErrorKind;
use crate::model::index::{
    ArtifactIndex, BundleStatus, INDEX_SCHEMA_VERSION, IndexEntry, Latest, RepairAfter,
    RepairBefore, RepairLog, RepairMismatch, RepairRecord, RunStatusFile,
};
use crate::util::{digest, json};
use crate::{Error, Result};

/// What a repair did.
#[derive(Debug)]
pub struct RepairOutcome {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The check before the repair.
    pub before: Report,
    /// The record appended to `repair_log.json` (`None`: the bundle was valid, nothing done).
    pub record: Option<RepairRecord>,
    /// `LATEST` named the bundle and was updated to the new index digest.
    pub latest_updated: bool,
    /// The check after the repair (valid).
    pub after: Report,
}

fn refuse(dir: &Path, msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Findings, msg).with_path(dir)
}

/// Repair the bundle at `path` (a bundle directory or an out root), holding the out-root
/// lock while it rewrites the index.
pub fn repair_bundle(path: &Path, lock: LockOptions) -> Result<RepairOutcome> {
    let (dir, out_root) = resolve_repairable(path)?;
    let parent = dir.parent().map(Path::to_path_buf);
    // Hold the out-root lock (if the bundle sits in one) so no run moves LATEST meanwhile.
    let lock_root = out_root.or_else(|| {
        parent.filter(|p| {
            [LATEST_FILE, LOCK_FILE, STAGING_DIR]
                .iter()
                .any(|n| std::fs::symlink_metadata(p.join(n)).is_ok())
        })
    });
    let _lock = match &lock_root {
        Some(r) => Some(OutLock::acquire(r, lock)?),
        None => None,
    };
    let latest = lock_root
        .as_deref()
        .and_then(|r| check::read_latest(r).ok())
        .filter(|l| {
            dir.file_name()
                .is_some_and(|n| n.to_string_lossy() == l.run_id)
        });
    let ins = check::inspect_dir(&dir, lock_root.as_deref(), false, latest.as_ref());
    if ins.report.is_valid() {
        return Ok(RepairOutcome {
            dir,
            after: ins.report.clone(),
            before: ins.report,
            record: None,
            latest_updated: false,
        });
    }

    // What may be repaired.
    let status = repairable_status(&dir, &ins)?;
    let run_id = status.run_id.clone();
    let files = repairable_files(&dir)?;
    let mut log = read_repair_log(&dir, &files, &run_id)?;

    // What is on disk, and the old index against it.
    let mut found = hash_found(&dir, &ins, &files)?;
    let before = compare(&ins, &found);

    // The new index: the evidence as found, a fresh log and BLAKE3SUMS.
    found.remove(SUMS_FILE);
    found.remove(REPAIR_LOG_FILE);
    let old = ins.index.as_ref();
    let mut missing: BTreeSet<String> = old
        .map(|i| i.missing.iter().cloned().collect())
        .unwrap_or_default();
    missing.extend(
        before
            .missing
            .iter()
            .filter(|p| ![SUMS_FILE, REPAIR_LOG_FILE].contains(&p.as_str()))
            .cloned(),
    );
    let missing: Vec<String> = missing.into_iter().collect();
    let record = RepairRecord {
        repaired_at: crate::util::time::now_rfc3339(),
        tool_version: crate::VERSION.to_string(),
        previous_index_blake3: ins.report.index_blake3.clone(),
        latest_recorded_blake3: latest
            .as_ref()
            .map(|l| l.artifact_index_blake3.clone())
            .filter(|d| ins.report.index_blake3.as_ref() != Some(d)),
        before,
        after: RepairAfter {
            files: found.len() as u64,
            bytes: found.values().map(|e| e.size).sum(),
            missing: missing.clone(),
        },
    };
    log.repairs.push(record.clone());
    write_log_and_sums(&dir, &log, &mut found)?;
    // BTreeMap<String, _> iterates in byte order of the keys: the index's sort order.
    let entries: Vec<IndexEntry> = found.into_values().collect();
    let index = ArtifactIndex {
        schema_version: INDEX_SCHEMA_VERSION,
        run_id: run_id.clone(),
        status: status.status,
        algorithm: "blake3".into(),
        file_count: entries.len() as u64,
        total_bytes: entries.iter().map(|e| e.size).sum(),
        entries,
        missing,
        plan_digest: old.and_then(|i| i.plan_digest.clone()),
        audit_head: old.and_then(|i| i.audit_head.clone()),
        repaired: true,
        tool_version: Some(crate::VERSION.to_string()),
    };
    let index_bytes = json::to_sorted_pretty(&index)?;
    for f in super::signature::SIGNATURE_FILES {
        let p = dir.join(f);
        if std::fs::symlink_metadata(&p).is_ok() {
            crate::util::fsx::remove_file(&p)?;
        }
    }
    let mut dirs: Vec<String> = tree::walk(&dir)?
        .into_iter()
        .filter(|n| n.kind == NodeKind::Dir)
        .map(|n| n.rel)
        .collect();
    let kept: Vec<String> = index.entries.iter().map(|e| e.path.clone()).collect();
    super::writer::prune_empty_dirs(&dir, &kept, &mut dirs)?;
    fsio::write_durable(&dir.join(INDEX_FILE), &index_bytes)?;
    let index_blake3 = digest::blake3_hex(&index_bytes);
    let mut new_latest = None;
    if let (Some(root), Some(l)) = (&lock_root, &latest) {
        let updated = Latest {
            run_id: l.run_id.clone(),
            artifact_index_blake3: index_blake3,
            audit_head: l.audit_head.clone(),
        };
        fsio::write_durable(&root.join(LATEST_FILE), &json::to_sorted_pretty(&updated)?)?;
        new_latest = Some(updated);
    }
    let after = check::inspect_dir(&dir, lock_root.as_deref(), false, new_latest.as_ref()).report;
    if !after.is_valid() {
        let list: Vec<String> = after
            .problems
            .iter()
            .map(|p| format!("{} {}", p.kind.as_str(), p.path.as_deref().unwrap_or("")))
            .collect();
        return Err(Error::runner(format!(
            "the repaired bundle still has problems: {}",
            list.join(", ")
        ))
        .with_path(&dir));
    }
    Ok(RepairOutcome {
        dir,
        before: ins.report,
        record: Some(record),
        latest_updated: new_latest.is_some(),
        after,
    })
}

/// The bundle directory `path` names and its out root, refusing a `LATEST` that cannot be
/// followed and a staging directory.
fn resolve_repairable(path: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    let (dir, out_root) = match check::resolve(path)? {
        Resolved::Bundle { dir, out_root, .. } => (dir, out_root),
        Resolved::BrokenLatest { out_root, problem } => {
            return Err(refuse(
                &out_root,
                format!("cannot follow LATEST: {}", problem.detail),
            )
            .with_hint("pass the bundle directory itself"));
        }
    };
    if dir
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == STAGING_DIR)
    {
        return Err(refuse(
            &dir,
            "is a staging directory: its run never sealed (in progress, or crashed); it cannot be repaired",
        )
        .with_hint("the next run on this out root removes it; `nexusmon status` lists it"));
    }
    Ok((dir, out_root))
}

/// The bundle's `run_status.json`, if it allows a repair: readable, not `in_progress`, and
/// naming the run the directory is named after.
fn repairable_status(dir: &Path, ins: &check::Inspection) -> Result<RunStatusFile> {
    let Some(status) = ins.status.clone() else {
        return Err(refuse(
            dir,
            "run_status.json is missing or does not parse: the bundle's status cannot be established, so it cannot be repaired",
        ));
    };
    let run_id = &status.run_id;
    if status.status == BundleStatus::InProgress
        || ins
            .index
            .as_ref()
            .is_some_and(|i| i.status == BundleStatus::InProgress)
    {
        return Err(refuse(
            dir,
            "the bundle is in_progress: only a completed or failed bundle can be repaired",
        ));
    }
    if dir
        .file_name()
        .is_none_or(|n| n.to_string_lossy() != *run_id)
    {
        return Err(refuse(
            dir,
            format!(
                "the directory is not named after its run `{run_id}`; it cannot be repaired in place"
            ),
        ));
    }
    Ok(status)
}

/// The regular files to index (all but the index itself); anything else refuses the repair.
fn repairable_files(dir: &Path) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    let mut files = Vec::new();
    for n in tree::walk(dir)? {
        let why = match n.kind {
            NodeKind::Dir => continue,
            NodeKind::Symlink => Some("a symlink"),
            NodeKind::Other => Some("not a regular file"),
            NodeKind::File if !n.utf8 => Some("a name that is not UTF-8"),
            NodeKind::File => tree::unsafe_reason(&n.rel).or_else(|| {
                n.rel
                    .split('/')
                    .any(|c| c.starts_with(fsio::TEMP_PREFIX))
                    .then_some("a leftover temp file")
            }),
        };
        match why {
            Some(w) => bad.push(format!("`{}` ({w})", n.rel)),
            None if n.rel == INDEX_FILE => {}
            // A signature signs the index being replaced: it is removed with it.
            None if super::signature::SIGNATURE_FILES.contains(&n.rel.as_str()) => {}
            None => files.push(n.rel),
        }
    }
    if !bad.is_empty() {
        return Err(refuse(
            dir,
            format!(
                "holds what a bundle must not: {}; remove it first, the repair indexes regular files only",
                bad.join(", ")
            ),
        ));
    }
    Ok(files)
}

/// The bundle's `repair_log.json` (earlier repairs are kept), or a new one.
fn read_repair_log(dir: &Path, files: &[String], run_id: &str) -> Result<RepairLog> {
    if files.iter().any(|f| f == REPAIR_LOG_FILE) {
        let p = dir.join(REPAIR_LOG_FILE);
        let bytes = crate::util::fsx::read(&p)?;
        serde_json::from_slice::<RepairLog>(&bytes)
            .map_err(|e| refuse(&p, "does not parse; move it aside to repair").with_source(e))
    } else {
        Ok(RepairLog {
            schema_version: INDEX_SCHEMA_VERSION,
            run_id: run_id.to_string(),
            repairs: Vec::new(),
        })
    }
}

/// Hash `files` as they are on disk.
fn hash_found(
    dir: &Path,
    ins: &check::Inspection,
    files: &[String],
) -> Result<BTreeMap<String, IndexEntry>> {
    let dir_fd = ins
        .dir_fd
        .as_ref()
        .ok_or_else(|| refuse(dir, "cannot be opened"))?;
    let mut found = BTreeMap::new();
    let jobs: Vec<hash::Job<'_>> = files.iter().map(|f| hash::Job::any(f)).collect();
    // Re-sealing: every member read-only again, as the writer leaves them.
    for (rel, h) in files.iter().zip(hash::hash_members(dir_fd, &jobs, true)) {
        let h = h.map_err(|e| Error::io("hash", dir.join(rel), e))?;
        found.insert(
            rel.clone(),
            IndexEntry {
                path: rel.clone(),
                size: h.size,
                blake3: h.blake3,
            },
        );
    }
    Ok(found)
}

/// What the old index said against what was found.
fn compare(ins: &check::Inspection, found: &BTreeMap<String, IndexEntry>) -> RepairBefore {
    let old_entries: BTreeMap<&str, &IndexEntry> = ins
        .index
        .iter()
        .flat_map(|i| i.entries.iter())
        .map(|e| (e.path.as_str(), e))
        .collect();
    RepairBefore {
        index: ins.index_state.to_string(),
        missing: old_entries
            .keys()
            .filter(|p| !found.contains_key(**p))
            .map(|p| (*p).to_string())
            .collect(),
        mismatched: old_entries
            .iter()
            .filter_map(|(p, old)| {
                let f = found.get(*p)?;
                (f != *old).then(|| RepairMismatch {
                    path: (*p).to_string(),
                    indexed: (*old).clone(),
                    found: f.clone(),
                })
            })
            .collect(),
        unindexed: found
            .values()
            .filter(|e| !old_entries.contains_key(e.path.as_str()))
            .cloned()
            .collect(),
    }
}

/// Write `repair_log.json` and a fresh `BLAKE3SUMS` (of everything found plus the log) and
/// add both to `found`.
fn write_log_and_sums(
    dir: &Path,
    log: &RepairLog,
    found: &mut BTreeMap<String, IndexEntry>,
) -> Result<()> {
    let log_bytes = json::to_sorted_pretty(log)?;
    fsio::write_durable(&dir.join(REPAIR_LOG_FILE), &log_bytes)?;
    found.insert(
        REPAIR_LOG_FILE.into(),
        IndexEntry {
            path: REPAIR_LOG_FILE.into(),
            size: log_bytes.len() as u64,
            blake3: digest::blake3_hex(&log_bytes),
        },
    );
    let mut sums = String::new();
    for e in found.values() {
        let _ = writeln!(sums, "{}  {}", e.blake3, e.path);
    }
    fsio::write_durable(&dir.join(SUMS_FILE), sums.as_bytes())?;
    found.insert(
        SUMS_FILE.into(),
        IndexEntry {
            path: SUMS_FILE.into(),
            size: sums.len() as u64,
            blake3: digest::blake3_hex(sums.as_bytes()),
        },
    );
    Ok(())
}
