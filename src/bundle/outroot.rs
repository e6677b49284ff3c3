//! The state of an out root, for `status`: what `LATEST` names and whether it validates, how
//! many sealed bundles there are, what crashed runs left in `.staging/`, and the lock.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use super::check::{self, Report};
use super::lock::{self, LockState};
use super::tree::{self, NodeKind};
use super::{INDEX_FILE, LATEST_FILE, LOCK_FILE, STAGING_DIR, STATUS_FILE, fsio};
use crate::model::index::{BundleStatus, RunStatusFile};
use crate::{Error, Result};

/// An out root's state.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OutRootState {
    /// The out root.
    pub path: PathBuf,
    /// It exists.
    pub exists: bool,
    /// What `LATEST` names, and the full check of that bundle (`None`: no `LATEST`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<Report>,
    /// Directories holding an `artifact_index.json` (sealed bundles; not verified here).
    pub sealed_bundles: u64,
    /// Other entries of the out root that are not part of its layout.
    pub unexpected: Vec<String>,
    /// Directories in `.staging/`: the active run's, and leftovers of crashed runs.
    pub staging: Vec<StagingEntry>,
    /// Temp files a crash left beside `LATEST`.
    pub stray_temp_files: Vec<String>,
    /// The lock.
    pub lock: LockState,
}

/// A directory in `.staging/`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StagingEntry {
    /// Its name (the run id).
    pub run_id: String,
    /// The run holding the lock is writing it now; otherwise it is a leftover that the next
    /// run removes.
    pub active: bool,
    /// What its `run_status.json` says, if readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<BundleStatus>,
    /// When that run started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Where a failed run stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_stage: Option<String>,
    /// The error a failed run recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// An index was written but the bundle was never moved into place (crash during seal).
    pub has_index: bool,
    /// Regular files in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Read the state of `out_root` without changing anything (no lock is taken). Validating
/// the bundle `LATEST` names hashes every file of it.
pub fn out_root_state(out_root: &Path) -> Result<OutRootState> {
    let lock = lock::inspect(out_root);
    let mut st = OutRootState {
        path: out_root.to_path_buf(),
        exists: out_root.is_dir(),
        latest: None,
        sealed_bundles: 0,
        unexpected: Vec::new(),
        staging: Vec::new(),
        stray_temp_files: Vec::new(),
        lock,
    };
    if !st.exists {
        return Ok(st);
    }
    for p in crate::util::fsx::read_dir_sorted(out_root)? {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let meta = std::fs::symlink_metadata(&p).map_err(|e| Error::io("stat", &p, e))?;
        if name == LATEST_FILE || name == LOCK_FILE || name == STAGING_DIR {
            continue;
        }
        if name.starts_with(fsio::TEMP_PREFIX) && meta.is_file() {
            st.stray_temp_files.push(name);
        } else if meta.is_dir() && p.join(INDEX_FILE).is_file() {
            st.sealed_bundles += 1;
        } else {
            st.unexpected.push(name);
        }
    }
    if std::fs::symlink_metadata(out_root.join(LATEST_FILE)).is_ok() {
        st.latest = Some(check::check_bundle(out_root)?);
    }
    let staging = out_root.join(STAGING_DIR);
    if staging.is_dir() {
        let active = st
            .lock
            .holder
            .as_ref()
            .filter(|_| st.lock.held)
            .and_then(|h| h.run_id.clone());
        for p in crate::util::fsx::read_dir_sorted(&staging)? {
            let run_id = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let status: Option<RunStatusFile> = crate::util::fsx::read_capped(
                &p.join(STATUS_FILE),
                crate::util::limits::MAX_STATE_BYTES,
            )
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
            let (mut files, mut bytes) = (0, 0);
            if let Ok(nodes) = tree::walk(&p) {
                for n in nodes.iter().filter(|n| n.kind == NodeKind::File) {
                    files += 1;
                    bytes += std::fs::symlink_metadata(p.join(&n.rel)).map_or(0, |m| m.len());
                }
            }
            st.staging.push(StagingEntry {
                active: active.as_deref() == Some(run_id.as_str()),
                has_index: p.join(INDEX_FILE).is_file(),
                status: status.as_ref().map(|s| s.status),
                started_at: status.as_ref().map(|s| s.started_at.clone()),
                failure_stage: status.as_ref().and_then(|s| s.failure_stage.clone()),
                error: status.as_ref().and_then(|s| s.error.clone()),
                run_id,
                files,
                bytes,
            });
        }
    }
    Ok(st)
}
