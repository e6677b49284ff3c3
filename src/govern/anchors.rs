//! Finding anchored audit heads: `audit_head` in sealed `artifact_index.json` files, in
//! `LATEST`, and in promotion packets (`audit_head` or `governance.audit_head`).
//!
//! Anchors are read leniently (only the `audit_head` value is needed, so a newer file
//! layout still yields its anchor) but a value that is there and malformed is reported.

use std::path::{Path, PathBuf};

use super::Governance;
use super::audit::{Anchor, VerifyReport};
use crate::bundle::{INDEX_FILE, LATEST_FILE, STAGING_DIR};
use crate::model::index::AuditHead;
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
    let report = gov.audit().verify(&found.anchors)?;
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
    let value: serde_json::Value = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
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
