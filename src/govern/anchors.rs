//! Finding anchored audit heads: `audit_head` in sealed `artifact_index.json` files, in
//! `LATEST`, and in promotion packets (`audit_head` or `governance.audit_head`).
//!
//! Anchors are read leniently (only the `audit_head` value is needed, so a newer file
//! layout still yields its anchor) but a value that is there and malformed is reported.
//!
//! An anchor is only as good as the file it sits in. Before the log is checked against
//! them, [`verify_log`] compares each index with the log's `run-sealed` entry for its run:
//! an index the log sealed with another digest (forged or swapped) is reported as that
//! bundle's problem (`index-not-anchored`) and its `audit_head` is not used, so a tampered
//! index is never reported as "line N of the log was changed". Each `LATEST` is compared
//! with the last `run-sealed` entry for its out root: naming an older run is a rollback
//! (`latest-rollback`).

use std::path::{Path, PathBuf};

use super::attest::{SealedRuns, latest_problem};
use super::audit::{Anchor, Problem, ProblemKind, VerifyReport};
use super::{Governance, short_hex};
use crate::bundle::{INDEX_FILE, LATEST_FILE, STAGING_DIR};
use crate::model::index::AuditHead;
use crate::util::digest::blake3_hex;
use crate::util::fsx;
use crate::{Error, Result};

/// Anchors found, and notes about files that had none or could not be read.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Anchors, sorted by source.
    pub anchors: Vec<Anchor>,
    /// Files examined.
    pub files: u64,
    /// Things worth saying (a file without an anchor, an unreadable one).
    pub notes: Vec<String>,
    /// Indexes seen: (source, run id, blake3 of the file).
    pub indexes: Vec<(String, String, String)>,
    /// `LATEST` files seen: (source, out root, run id, index blake3 it records).
    pub latests: Vec<(String, PathBuf, String, String)>,
}

/// `audit verify`: open the state directory (`explicit`, else found at or above `root`),
/// collect the anchors in `paths` ([`collect`]) and verify the log against them.
pub fn verify_log(
    explicit: Option<&Path>,
    root: &Path,
    paths: &[PathBuf],
) -> Result<(VerifyReport, Found)> {
    let gov = Governance::discover(explicit, root)?;
    let found = collect(paths)?;
    let sealed = SealedRuns::scan(&gov)?;
    let mut anchors = found.anchors.clone();
    let mut problems = Vec::new();
    for (source, run_id, blake3) in &found.indexes {
        let Some(entries) = sealed.runs.get(run_id) else {
            continue;
        };
        if entries.iter().any(|e| &e.index_blake3 == blake3) {
            continue;
        }
        anchors.retain(|a| &a.source != source);
        let e = &entries[entries.len() - 1];
        problems.push(Problem {
            line: 0,
            seq: Some(e.seq),
            kind: ProblemKind::IndexNotAnchored,
            message: format!(
                "{source}: not the index the log sealed for run `{run_id}` (seq {}: blake3 {}; this one is {}): the bundle was forged or swapped after the seal, so its audit_head is not used as an anchor",
                e.seq,
                short_hex(&e.index_blake3),
                short_hex(blake3)
            ),
        });
    }
    for (source, out_root, run_id, blake3) in &found.latests {
        problems.extend(latest_problem(&sealed, source, out_root, run_id, blake3));
    }
    // The trust file is state too: a broken one silently makes every approval void.
    if gov.state().file(super::state::TRUST_FILE).exists()
        && let Err(why) = gov.trust_or_broken()?
    {
        problems.push(Problem {
            line: 0,
            seq: None,
            kind: ProblemKind::TrustFileBroken,
            message: why,
        });
    }
    let mut report = gov.audit().verify(&anchors)?;
    report.problems.extend(problems);
    report.ok = report.problems.is_empty();
    Ok((report, found))
}

/// Collect anchors from each path: an out root (its `LATEST` and every sealed bundle in
/// it), a bundle directory, or a file (`artifact_index.json`, `LATEST`, a packet). A path
/// that does not exist is an input error.
pub fn collect(paths: &[PathBuf]) -> Result<Found> {
    let mut found = Found::default();
    for p in paths {
        if p.is_dir() {
            collect_dir(p, &mut found)?;
        } else if p.is_file() {
            collect_file(p, &mut found, true);
        } else {
            return Err(Error::input(p, "not found").with_hint(
                "--anchors takes out roots, bundle directories, artifact_index.json, LATEST or packet files",
            ));
        }
    }
    found.anchors.sort();
    found.anchors.dedup();
    Ok(found)
}

fn collect_dir(dir: &Path, found: &mut Found) -> Result<()> {
    let index = dir.join(INDEX_FILE);
    if index.is_file() {
        collect_file(&index, found, true);
        return Ok(());
    }
    let latest = dir.join(LATEST_FILE);
    if latest.is_file() {
        collect_file(&latest, found, true);
    }
    for entry in fsx::read_dir_sorted(dir)? {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || name == STAGING_DIR {
            continue;
        }
        let idx = entry.join(INDEX_FILE);
        if idx.is_file() {
            collect_file(&idx, found, false);
        }
    }
    Ok(())
}

fn collect_file(path: &Path, found: &mut Found, note_missing: bool) {
    found.files += 1;
    let bytes = crate::util::fsx::read_capped(path, crate::util::limits::MAX_STATE_BYTES);
    let value: serde_json::Value = match bytes
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|b| serde_json::from_slice(b).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            found.notes.push(format!(
                "{}: not readable as JSON ({e}); no anchor taken",
                path.display()
            ));
            return;
        }
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let run_id = value.get("run_id").and_then(|v| v.as_str());
    if let (Some(name), Some(run_id), Ok(b)) = (&name, run_id, &bytes) {
        let source = path.display().to_string();
        if name == INDEX_FILE {
            found
                .indexes
                .push((source, run_id.to_string(), blake3_hex(b)));
        } else if name == LATEST_FILE
            && let Some(d) = value.get("artifact_index_blake3").and_then(|v| v.as_str())
        {
            let out_root = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
            found
                .latests
                .push((source, out_root, run_id.to_string(), d.to_string()));
        }
    }
    let head = value
        .get("audit_head")
        .or_else(|| value.pointer("/governance/audit_head"))
        .filter(|v| !v.is_null());
    match head.map(|h| serde_json::from_value::<AuditHead>(h.clone())) {
        Some(Ok(head)) => found.anchors.push(Anchor {
            source: path.display().to_string(),
            head,
        }),
        Some(Err(e)) => found
            .notes
            .push(format!("{}: audit_head is malformed ({e})", path.display())),
        None if note_missing => found.notes.push(format!(
            "{}: no audit_head (sealed without a state directory?)",
            path.display()
        )),
        None => {}
    }
}
