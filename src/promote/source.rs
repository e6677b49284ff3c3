//! Reading a bundle for promotion: strictly when it verifies ([`crate::bundle::load_bundle`],
//! every member re-verified against the index as it is read), without verification
//! otherwise ([`crate::bundle::open_bundle_unverified`]), so an in-progress, crashed or
//! tampered bundle can still be described, never promoted.

use std::path::{Path, PathBuf};

use crate::bundle::lines::{self, SharedValues};
use crate::bundle::{
    self, Bundle, INDEX_FILE, Report, STAGING_DIR, STATUS_FILE, UnverifiedBundle, V1_RESULT_FILES,
};
use crate::error::ErrorKind;
use crate::model::index::{ArtifactIndex, RunStatusFile};
use crate::model::packet::InputState;
use crate::util::digest;
use crate::util::limits::MAX_MEMBER_BYTES;
use crate::{Error, Result};

enum Access {
    Strict(Box<Bundle>),
    Unverified(Box<UnverifiedBundle>),
}

/// A bundle opened for promotion.
pub struct BundleSource {
    /// The bundle directory (after resolving an out root through `LATEST`).
    pub dir: PathBuf,
    /// The strict check (empty problems when the bundle verified).
    pub report: Report,
    /// The index, if present and parseable.
    pub index: Option<ArtifactIndex>,
    /// The index file's bytes, if present.
    pub index_bytes: Option<Vec<u8>>,
    /// `run_status.json`, if present and parseable.
    pub status: Option<RunStatusFile>,
    /// The state of `run_status.json`.
    pub status_state: InputState,
    /// The state of `artifact_index.json`.
    pub index_state: InputState,
    access: Access,
}

impl std::fmt::Debug for BundleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleSource")
            .field("dir", &self.dir)
            .field("verified", &self.verified())
            .finish_non_exhaustive()
    }
}

impl BundleSource {
    /// Open the bundle at `path` (a bundle directory, a `.staging/<run_id>` directory, or an
    /// out root resolved through `LATEST`). Exit 2 when `path` is none of these.
    pub fn open(path: &Path) -> Result<Self> {
        match bundle::load_bundle(path) {
            Ok(b) => Self::strict(b),
            Err(e) if e.kind() == ErrorKind::Findings => Self::unverified(path),
            Err(e) => Err(e),
        }
    }

    fn strict(b: Bundle) -> Result<Self> {
        let index_path = b.dir.join(INDEX_FILE);
        let index_bytes =
            std::fs::read(&index_path).map_err(|e| Error::io("read", &index_path, e))?;
        if digest::blake3_hex(&index_bytes) != b.index_blake3 {
            return Err(Error::new(
                ErrorKind::Findings,
                "changed while it was being read (its digest differs from the one just verified)",
            )
            .with_path(&index_path));
        }
        let report = empty_report(&b);
        Ok(Self {
            dir: b.dir.clone(),
            report,
            index: Some(b.index.clone()),
            index_bytes: Some(index_bytes),
            status: Some(b.status.clone()),
            status_state: InputState::Present,
            index_state: InputState::Present,
            access: Access::Strict(Box::new(b)),
        })
    }

    fn unverified(path: &Path) -> Result<Self> {
        let report = bundle::check_bundle(path)?;
        let u = bundle::open_bundle_unverified(path)?;
        let state_of = |rel: &str, parsed: bool| match std::fs::symlink_metadata(u.dir.join(rel)) {
            Err(_) => InputState::Missing,
            Ok(m) if !m.is_file() => InputState::Unreadable,
            Ok(_) if parsed => InputState::Present,
            Ok(_) => InputState::Unreadable,
        };
        let index_state = state_of(INDEX_FILE, u.index.is_some());
        let status_state = state_of(STATUS_FILE, u.status.is_some());
        let index_bytes = match index_state {
            InputState::Missing => None,
            _ => u.read(INDEX_FILE).ok(),
        };
        Ok(Self {
            dir: u.dir.clone(),
            report,
            index: u.index.clone(),
            index_bytes,
            status: u.status.clone(),
            status_state,
            index_state,
            access: Access::Unverified(Box::new(u)),
        })
    }

    /// Every file was verified against the seal.
    pub fn verified(&self) -> bool {
        matches!(self.access, Access::Strict(_))
    }

    /// The bundle directory lies in an out root's `.staging/`.
    pub fn in_staging(&self) -> bool {
        self.dir
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == STAGING_DIR)
    }

    /// The run id: the index's, else `run_status.json`'s, else the directory name.
    pub fn run_id(&self) -> String {
        self.index
            .as_ref()
            .map(|i| i.run_id.clone())
            .or_else(|| self.status.as_ref().map(|s| s.run_id.clone()))
            .unwrap_or_else(|| {
                self.dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
    }

    /// Member `rel`: `None` when it is not there (strict: not indexed; unverified: not a
    /// regular file on disk, or unreadable). A strict read that no longer matches the index
    /// is an error: the bundle changed while it was being read.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        if bundle::unsafe_reason(rel).is_some() {
            return Ok(None);
        }
        match &self.access {
            Access::Strict(b) => {
                if b.has(rel) {
                    b.read_verified(rel).map(Some)
                } else {
                    Ok(None)
                }
            }
            Access::Unverified(u) => match std::fs::symlink_metadata(u.dir.join(rel)) {
                Ok(m) if m.is_file() => Ok(u.read(rel).ok()),
                _ => Ok(None),
            },
        }
    }

    /// The values the result files share (`shared_values.json`): `None` when it is not
    /// there or does not parse unverified; a strict read that fails is an error. A bundle
    /// of result schema version 1 is refused by name, strict or not.
    pub fn shared_values(&self) -> Result<Option<SharedValues>> {
        if self.read_state(lines::SHARED_FILE).is_none()
            && let Some(old) = V1_RESULT_FILES
                .iter()
                .find(|f| self.read_state(f).is_some())
        {
            return Err(lines::refuse_v1(&self.dir.join(old), old));
        }
        match &self.access {
            Access::Strict(b) if b.has(lines::SHARED_FILE) => b.shared_values().map(Some),
            Access::Strict(_) => Ok(None),
            // A value at a time as it streams; a file that is not a well-formed table is
            // read whole, as before.
            Access::Unverified(_) => match self.scan_member(lines::SHARED_FILE, &mut |r| {
                SharedValues::read(&mut std::io::Read::take(r, MAX_MEMBER_BYTES))
            }) {
                Ok(Some((d, Some(t)))) if d.size <= MAX_MEMBER_BYTES => Ok(Some(t)),
                _ => Ok(self.read(lines::SHARED_FILE)?.and_then(|b| {
                    SharedValues::parse(&b, &self.dir.join(lines::SHARED_FILE)).ok()
                })),
            },
        }
    }

    /// Stream result file `rel` as `T` a line at a time (see [`Bundle::scan_lines`]):
    /// `None` when it is not there; otherwise its digests (checked against the index when
    /// strict) and the outcome of its lines. Memory is one line.
    pub fn scan_lines<T: serde::de::DeserializeOwned>(
        &self,
        rel: &str,
        shared: &SharedValues,
        each: &mut dyn FnMut(T) -> Result<()>,
    ) -> Result<Option<(lines::Digests, Result<u64>)>> {
        if self.read_state(rel).is_none() {
            return Ok(None);
        }
        match &self.access {
            Access::Strict(b) => b.scan_lines(rel, shared, each).map(Some),
            Access::Unverified(u) => {
                let Ok(f) = u.open(rel) else { return Ok(None) };
                lines::scan(f, &self.dir.join(rel), shared, each).map(Some)
            }
        }
    }

    /// Member `rel` read once through `read` (see [`Bundle::scan_member`]): `None` when it
    /// is not there (as for [`BundleSource::read`]); otherwise its digests (checked against
    /// the index when strict) and what `read` returned. Memory is what `read` keeps.
    pub fn scan_member<R>(
        &self,
        rel: &str,
        read: &mut dyn FnMut(&mut dyn std::io::BufRead) -> R,
    ) -> Result<Option<(lines::Digests, R)>> {
        if self.read_state(rel).is_none() {
            return Ok(None);
        }
        match &self.access {
            Access::Strict(b) => b.scan_member(rel, read).map(Some),
            Access::Unverified(u) => {
                let Ok(f) = u.open(rel) else { return Ok(None) };
                match lines::scan_with(f, &self.dir.join(rel), read) {
                    Ok(got) => Ok(Some(got)),
                    // As `read` does: an unverified member that cannot be read is absent.
                    Err(_) => Ok(None),
                }
            }
        }
    }

    /// Result file `rel` to be read a line at a time on demand (see
    /// [`lines::LineReader`]; checked against the index at its `finish` when strict):
    /// `None` when it is not there.
    pub fn line_reader(&self, rel: &str) -> Result<Option<lines::LineReader<std::fs::File>>> {
        if self.read_state(rel).is_none() {
            return Ok(None);
        }
        match &self.access {
            Access::Strict(b) => b.line_reader(rel).map(Some),
            Access::Unverified(u) => Ok(u
                .open(rel)
                .ok()
                .map(|f| lines::LineReader::new(f, &self.dir.join(rel), None))),
        }
    }

    /// [`BundleSource::scan_lines`], a failing line an error: the number of lines, or
    /// `None` when the file is not there.
    pub fn for_each_line<T: serde::de::DeserializeOwned>(
        &self,
        rel: &str,
        shared: &SharedValues,
        each: &mut dyn FnMut(T) -> Result<()>,
    ) -> Result<Option<u64>> {
        match self.scan_lines(rel, shared, each)? {
            Some((_, outcome)) => outcome.map(Some),
            None => Ok(None),
        }
    }

    /// `Some(())` when member `rel` is there (strict: indexed; unverified: a regular file).
    fn read_state(&self, rel: &str) -> Option<()> {
        if bundle::unsafe_reason(rel).is_some() {
            return None;
        }
        match &self.access {
            Access::Strict(b) => b.has(rel).then_some(()),
            Access::Unverified(u) => std::fs::symlink_metadata(u.dir.join(rel))
                .ok()
                .filter(std::fs::Metadata::is_file)
                .map(|_| ()),
        }
    }

    /// Members whose path starts with `prefix` (e.g. `governance/`), sorted.
    pub fn members_under(&self, prefix: &str) -> Vec<String> {
        match &self.access {
            Access::Strict(b) => b
                .index
                .entries
                .iter()
                .filter(|e| e.path.starts_with(prefix))
                .map(|e| e.path.clone())
                .collect(),
            Access::Unverified(u) => {
                let mut out = Vec::new();
                walk(&u.dir, prefix.trim_end_matches('/'), &mut out);
                out.sort();
                out
            }
        }
    }
}

/// Regular files beneath `dir/rel`, as bundle-relative paths (symlinks are not followed).
fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir.join(rel)) else {
        return;
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = format!("{rel}/{name}");
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(dir, &child, out),
            Ok(t) if t.is_file() => out.push(child),
            _ => {}
        }
    }
}

fn empty_report(b: &Bundle) -> Report {
    Report {
        valid: true,
        bundle: b.dir.clone(),
        out_root: b.out_root.clone(),
        via_latest: b.via_latest,
        run_id: Some(b.run_id.clone()),
        status: Some(b.index.status),
        index_blake3: Some(b.index_blake3.clone()),
        repaired: b.index.repaired,
        file_count: b.index.file_count,
        total_bytes: b.index.total_bytes,
        files_verified: b.index.file_count,
        signed_by: b.signed_by.clone(),
        attested: Vec::new(),
        problems: Vec::new(),
    }
}
