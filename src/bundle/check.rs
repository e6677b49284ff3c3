//! Checking a bundle against its seal: every problem, not the first one.
//!
//! A bundle is valid when its index exists and parses; neither the index nor
//! `run_status.json` says `in_progress` and they agree; every entry is a regular file (no
//! symlink anywhere on its path) at a safe relative path with the right size and blake3;
//! nothing on disk is unindexed; every sealed file (the index and its signature files too)
//! is read-only, has one link and no setuid/setgid bit (a writable file, or a second name
//! for it outside the bundle, lets someone change evidence behind the seal); every
//! directory holds an indexed file (no empty or unexpected directory); `BLAKE3SUMS` says
//! what the index says; a signature (`artifact_index.sig`, `bundle.intoto.json`), when
//! there is one, verifies over the index with the key it carries (whether that key is
//! trusted is checked against a trust file by `govern::attest`); and, when the bundle is
//! reached through (or named by) an out root's `LATEST`, the index's blake3 is the one
//! `LATEST` records. Sizes are compared before anything is hashed; hashing runs in
//! parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use super::signature::{self, SIGNATURE_FILES, SignatureCheck};
use super::tree::{self, Node, NodeKind};
use super::{INDEX_FILE, LATEST_FILE, LOCK_FILE, STAGING_DIR, STATUS_FILE, SUMS_FILE, fsio, hash};
use crate::model::index::{
    ArtifactIndex, BundleStatus, INDEX_SCHEMA_VERSION, Latest, RunStatusFile,
};
use crate::util::digest;
use crate::{Error, Result};

/// Largest index, `LATEST` or `run_status.json` the reader accepts.
const META_LIMIT: u64 = 512 << 20;

/// What is wrong. The names ([`ProblemKind::as_str`]) are stable: scripts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// No `artifact_index.json`: the bundle was never sealed.
    IndexMissing,
    /// The index is not valid JSON of the expected shape.
    IndexUnparseable,
    /// The index parses but contradicts itself (version, algorithm, counts, order).
    IndexInvalid,
    /// The index or `run_status.json` says `in_progress`.
    InProgress,
    /// `run_status.json` is neither indexed nor present.
    StatusMissing,
    /// `run_status.json` disagrees with the index (status, run id) or does not parse.
    StatusMismatch,
    /// The bundle directory's name is not the index's run id.
    RunIdMismatch,
    /// A file's size differs from its entry.
    SizeMismatch,
    /// A file's blake3 differs from its entry.
    DigestMismatch,
    /// An indexed file is gone.
    MissingFile,
    /// A file on disk is not in the index.
    UnindexedFile,
    /// A symlink, indexed or not, or on the path of an entry.
    Symlink,
    /// An entry's path is absolute, has `..`, or is otherwise unsafe.
    UnsafePath,
    /// An entry (or something on disk) is a directory, FIFO, socket or device.
    NotRegularFile,
    /// A file or directory could not be read.
    Unreadable,
    /// `BLAKE3SUMS` does not say what the index says.
    SumsMismatch,
    /// `LATEST` is not valid JSON of the expected shape.
    LatestUnparseable,
    /// `LATEST` names a run that is not there.
    LatestDangling,
    /// The index's blake3 is not the one `LATEST` records.
    LatestMismatch,
    /// A sealed file has more than one link (a second name, maybe outside the bundle).
    Hardlink,
    /// A sealed file is writable, or setuid/setgid.
    UnsafeMode,
    /// A directory that holds no indexed file (empty, or not the index's).
    UnexpectedDirectory,
    /// The signature does not verify over the index (or the DSSE envelope does not), its
    /// key is not trusted as a `runner`, or one of the two signature files is missing.
    BundleSignatureInvalid,
    /// A trust policy requires signed bundles and this one has no signature.
    BundleUnsigned,
    /// The audit log's `run-sealed` entry for the run names another index digest (or none,
    /// or the index's `audit_head` is not the head the log anchored).
    IndexNotAnchored,
    /// `LATEST` names an older run than another sealed bundle of the out root (or than the
    /// last run the audit log sealed into it): it was rolled back.
    LatestRollback,
}

impl ProblemKind {
    /// The stable name, e.g. `digest-mismatch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IndexMissing => "index-missing",
            Self::IndexUnparseable => "index-unparseable",
            Self::IndexInvalid => "index-invalid",
            Self::InProgress => "in-progress",
            Self::StatusMissing => "status-missing",
            Self::StatusMismatch => "status-mismatch",
            Self::RunIdMismatch => "run-id-mismatch",
            Self::SizeMismatch => "size-mismatch",
            Self::DigestMismatch => "digest-mismatch",
            Self::MissingFile => "missing-file",
            Self::UnindexedFile => "unindexed-file",
            Self::Symlink => "symlink",
            Self::UnsafePath => "unsafe-path",
            Self::NotRegularFile => "not-regular-file",
            Self::Unreadable => "unreadable",
            Self::SumsMismatch => "sums-mismatch",
            Self::LatestUnparseable => "latest-unparseable",
            Self::LatestDangling => "latest-dangling",
            Self::LatestMismatch => "latest-mismatch",
            Self::Hardlink => "hardlink",
            Self::UnsafeMode => "unsafe-mode",
            Self::UnexpectedDirectory => "unexpected-directory",
            Self::BundleSignatureInvalid => "bundle-signature-invalid",
            Self::BundleUnsigned => "bundle-unsigned",
            Self::IndexNotAnchored => "index-not-anchored",
            Self::LatestRollback => "latest-rollback",
        }
    }
}

/// One problem: its kind, the bundle-relative path it is about (`LATEST` for the out root's
/// pointer), and what exactly is wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub struct Problem {
    /// Stable kind.
    pub kind: ProblemKind,
    /// The file it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Human detail.
    pub detail: String,
}

impl Problem {
    /// A problem of `kind` about `path`.
    pub fn new(kind: ProblemKind, path: Option<&str>, detail: impl Into<String>) -> Self {
        Self {
            kind,
            path: path.map(str::to_string),
            detail: detail.into(),
        }
    }
}

/// The result of checking one bundle.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Report {
    /// No problems.
    pub valid: bool,
    /// The bundle directory checked (the out root when `LATEST` could not be followed).
    pub bundle: PathBuf,
    /// The out root, when the bundle was reached through it or sits in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_root: Option<PathBuf>,
    /// The bundle was found through `LATEST`.
    pub via_latest: bool,
    /// Run id from the index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Status from the index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<BundleStatus>,
    /// blake3 of `artifact_index.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_blake3: Option<String>,
    /// The index says the bundle was repaired.
    pub repaired: bool,
    /// Entries in the index.
    pub file_count: u64,
    /// Bytes the index lists.
    pub total_bytes: u64,
    /// Files whose size and digest were verified.
    pub files_verified: u64,
    /// `SHA256:…` of the key whose signature over the index verifies (absent: unsigned,
    /// or the signature does not verify).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Checks against a trust file and the audit log, when they were made
    /// (`validate-bundle --trust`, a state directory).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attested: Vec<String>,
    /// Every problem, sorted by path then kind.
    pub problems: Vec<Problem>,
}

impl Report {
    fn new(bundle: &Path, out_root: Option<&Path>, via_latest: bool) -> Self {
        Self {
            valid: false,
            bundle: bundle.to_path_buf(),
            out_root: out_root.map(Path::to_path_buf),
            via_latest,
            run_id: None,
            status: None,
            index_blake3: None,
            repaired: false,
            file_count: 0,
            total_bytes: 0,
            files_verified: 0,
            signed_by: None,
            attested: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// No problems.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    /// Sort and deduplicate the problems and set `valid` (after adding problems).
    pub fn finish(&mut self) {
        self.problems.sort_by(|a, b| {
            (a.path.as_deref().map(str::as_bytes), a.kind)
                .cmp(&(b.path.as_deref().map(str::as_bytes), b.kind))
        });
        self.problems.dedup();
        self.valid = self.problems.is_empty();
    }

    /// Add a problem (call [`Report::finish`] after).
    pub fn push(&mut self, kind: ProblemKind, path: Option<&str>, detail: impl Into<String>) {
        self.problems.push(Problem::new(kind, path, detail));
    }
}

/// Check the bundle at `path` (a bundle directory, or an out root: resolved through
/// `LATEST`) and list every problem. `Err` only when `path` is neither (exit 2).
pub fn check_bundle(path: &Path) -> Result<Report> {
    Ok(inspect_path(path)?.report)
}

/// What a check found, for the reader and the repair.
#[derive(Debug)]
pub(crate) struct Inspection {
    pub report: Report,
    pub index: Option<ArtifactIndex>,
    pub status: Option<RunStatusFile>,
    pub dir_fd: Option<File>,
    /// The state of the index file: `ok`, `missing`, `unparseable`.
    pub index_state: &'static str,
}

pub(crate) fn inspect_path(path: &Path) -> Result<Inspection> {
    match resolve(path)? {
        Resolved::Bundle {
            dir,
            out_root,
            via_latest,
            latest,
        } => Ok(inspect_dir(
            &dir,
            out_root.as_deref(),
            via_latest,
            latest.as_ref(),
        )),
        Resolved::BrokenLatest { out_root, problem } => {
            let mut report = Report::new(&out_root, Some(&out_root), true);
            report.problems.push(problem);
            report.finish();
            Ok(Inspection {
                report,
                index: None,
                status: None,
                dir_fd: None,
                index_state: "missing",
            })
        }
    }
}

/// Where a bundle argument leads.
#[derive(Debug)]
pub(crate) enum Resolved {
    /// A bundle directory.
    Bundle {
        dir: PathBuf,
        out_root: Option<PathBuf>,
        via_latest: bool,
        /// The `LATEST` that names this bundle, whose digest must match.
        latest: Option<Latest>,
    },
    /// An out root whose `LATEST` cannot be followed.
    BrokenLatest { out_root: PathBuf, problem: Problem },
}

/// Resolve a bundle argument: a directory holding `artifact_index.json` or
/// `run_status.json` is a bundle; one holding `LATEST` is an out root.
pub(crate) fn resolve(path: &Path) -> Result<Resolved> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::io_input("open the bundle or out root", path, e))?;
    if !meta.is_dir() {
        return Err(Error::input(path, "is not a directory")
            .with_hint("pass a bundle directory (out/<run_id>) or an out root (out/)"));
    }
    let has = |name: &str| std::fs::symlink_metadata(path.join(name)).is_ok();
    if has(INDEX_FILE) || has(STATUS_FILE) {
        // A bundle; if its out root's LATEST names it, the index digest must match LATEST.
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let out_root = path
            .parent()
            .filter(|p| std::fs::symlink_metadata(p.join(LATEST_FILE)).is_ok());
        let latest = out_root
            .and_then(|r| read_latest(r).ok())
            .filter(|l| Some(&l.run_id) == name.as_ref());
        return Ok(Resolved::Bundle {
            dir: path.to_path_buf(),
            out_root: out_root.map(Path::to_path_buf),
            via_latest: false,
            latest,
        });
    }
    if has(LATEST_FILE) {
        let broken = |problem| {
            Ok(Resolved::BrokenLatest {
                out_root: path.to_path_buf(),
                problem,
            })
        };
        let latest = match read_latest(path) {
            Ok(l) => l,
            Err(p) => return broken(p),
        };
        let dir = path.join(&latest.run_id);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return broken(Problem::new(
                    ProblemKind::Symlink,
                    Some(&latest.run_id),
                    "LATEST names a symlink, not a bundle directory",
                ));
            }
            Ok(m) if m.is_dir() => {}
            _ => {
                return broken(Problem::new(
                    ProblemKind::LatestDangling,
                    Some(LATEST_FILE),
                    format!("LATEST names run `{}`, which is not there", latest.run_id),
                ));
            }
        }
        return Ok(Resolved::Bundle {
            dir,
            out_root: Some(path.to_path_buf()),
            via_latest: true,
            latest: Some(latest),
        });
    }
    if has(STAGING_DIR) || has(LOCK_FILE) {
        return Err(Error::input(
            path,
            "is an out root without LATEST: no bundle has been sealed there",
        )
        .with_hint("`nexusmon status --out <dir>` shows what the out root holds"));
    }
    Err(Error::input(
        path,
        "is neither a bundle (no artifact_index.json or run_status.json) nor an out root (no LATEST)",
    )
    .with_hint("pass a bundle directory (out/<run_id>) or an out root (out/)"))
}

/// Read and check an out root's `LATEST`.
pub(crate) fn read_latest(out_root: &Path) -> Result<Latest, Problem> {
    let path = out_root.join(LATEST_FILE);
    let unparseable =
        |d: String| Problem::new(ProblemKind::LatestUnparseable, Some(LATEST_FILE), d);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| unparseable(e.to_string()))?;
    if meta.file_type().is_symlink() {
        return Err(Problem::new(
            ProblemKind::Symlink,
            Some(LATEST_FILE),
            "LATEST is a symlink; it must be a regular file",
        ));
    }
    let bytes = File::open(&path)
        .and_then(|mut f| fsio::read_limited(&mut f, META_LIMIT))
        .map_err(|e| unparseable(format!("cannot read: {e}")))?;
    let latest: Latest =
        serde_json::from_slice(&bytes).map_err(|e| unparseable(format!("not valid: {e}")))?;
    if super::validate_run_id(&latest.run_id).is_err() {
        return Err(unparseable(format!(
            "names `{}`, which is not a valid run id",
            latest.run_id
        )));
    }
    if !digest::is_hex64(&latest.artifact_index_blake3) {
        return Err(unparseable(
            "artifact_index_blake3 is not 64 lowercase hex characters".into(),
        ));
    }
    Ok(latest)
}

/// Read a small member without verifying it (the index, `run_status.json`): `None` if it is
/// not there as a regular file.
pub(crate) fn read_meta(dir: &File, rel: &str) -> Option<std::io::Result<Vec<u8>>> {
    match fsio::open_beneath(dir, rel) {
        Ok(mut f) => match f.metadata() {
            Ok(m) if m.is_file() => Some(fsio::read_limited(&mut f, META_LIMIT)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        // ELOOP: a symlink, reported by the walk.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => None,
        Err(e) => Some(Err(e)),
    }
}

pub(crate) fn inspect_dir(
    dir: &Path,
    out_root: Option<&Path>,
    via_latest: bool,
    latest: Option<&Latest>,
) -> Inspection {
    let mut ins = Inspection {
        report: Report::new(dir, out_root, via_latest),
        index: None,
        status: None,
        dir_fd: None,
        index_state: "missing",
    };
    inspect_into(&mut ins, dir, latest);
    if let (Some(root), Some(l)) = (out_root, latest) {
        check_rollback(root, l, ins.status.as_ref(), &mut ins.report);
    }
    ins.report.finish();
    ins
}

/// A `LATEST` that names an older bundle than another sealed bundle of the out root was
/// rolled back: the newer run was sealed and published, and `LATEST` was set back
/// afterwards. Runs of one out root never overlap (the out-root lock), so start order is
/// seal order: generated run ids carry their start time to the millisecond and are
/// compared by it; otherwise `run_status.json`'s `finished_at` (to the second) must be
/// strictly later.
fn check_rollback(
    out_root: &Path,
    latest: &Latest,
    status: Option<&RunStatusFile>,
    report: &mut Report,
) {
    let Some(mine) = status.and_then(|s| s.finished_at.as_deref()) else {
        return;
    };
    let finished = |at: &str| crate::util::time::parse_rfc3339(at);
    let later = |id: &str, at: &str| match (id_time(id), id_time(&latest.run_id)) {
        (Some(a), Some(b)) => a > b,
        _ => finished(at).is_some_and(|t| finished(mine).is_some_and(|m| t > m)),
    };
    let Ok(entries) = std::fs::read_dir(out_root) else {
        return;
    };
    // The run named by the out root's lock (still holding it, or dead without releasing it)
    // may have published its bundle and not yet — or never, if it was killed in between —
    // updated LATEST: that is the writer's own commit order, not a rollback. The next run
    // takes the lock over and moves LATEST past it.
    let publishing = super::lock::current_holder(out_root).and_then(|h| h.run_id);
    let mut newest: Option<String> = None;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            || name == latest.run_id
            || publishing.as_deref() == Some(name.as_str())
            || !e.path().join(INDEX_FILE).is_file()
        {
            continue;
        }
        let Some(st) = crate::util::fsx::read_capped(
            &e.path().join(STATUS_FILE),
            crate::util::limits::MAX_STATE_BYTES,
        )
        .ok()
        .and_then(|b| serde_json::from_slice::<RunStatusFile>(&b).ok()) else {
            continue;
        };
        let Some(at) = st.finished_at.as_deref() else {
            continue;
        };
        if later(&name, at) && newest.as_ref().is_none_or(|n| name > *n) {
            newest = Some(name);
        }
    }
    if let Some(name) = newest {
        report.push(
            ProblemKind::LatestRollback,
            Some(LATEST_FILE),
            format!(
                "LATEST names run `{}`, but the out root holds a bundle sealed after it, `{name}`: LATEST was rolled back",
                latest.run_id
            ),
        );
    }
}

/// Fill `ins`; returns early where nothing further can be checked.
fn inspect_into(ins: &mut Inspection, dir: &Path, latest: Option<&Latest>) {
    use ProblemKind as K;
    let report = &mut ins.report;
    let dir_fd = match fsio::open_dir(dir) {
        Ok(f) => ins.dir_fd.insert(f),
        Err(e) => {
            report.push(K::Unreadable, None, format!("cannot open the bundle: {e}"));
            return;
        }
    };

    // run_status.json, read for agreement (its bytes are verified below like any member).
    let status_read = read_meta(dir_fd, STATUS_FILE);
    ins.status = match &status_read {
        Some(Ok(b)) => serde_json::from_slice(b).ok(),
        _ => None,
    };

    // The index.
    let index_bytes = match read_meta(dir_fd, INDEX_FILE) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => {
            report.push(K::Unreadable, Some(INDEX_FILE), e.to_string());
            return;
        }
    };
    let nodes = match tree::walk(dir) {
        Ok(n) => n,
        Err(e) => {
            report.push(K::Unreadable, None, e.to_string());
            return;
        }
    };
    let Some(index_bytes) = index_bytes else {
        match nodes.iter().find(|n| n.rel == INDEX_FILE) {
            Some(n) if n.kind == NodeKind::Symlink => report.push(
                K::Symlink,
                Some(INDEX_FILE),
                "the index is a symlink; it must be a regular file",
            ),
            Some(_) => report.push(
                K::NotRegularFile,
                Some(INDEX_FILE),
                "the index is not a regular file",
            ),
            None => report.push(
                K::IndexMissing,
                Some(INDEX_FILE),
                "no artifact_index.json: the bundle was never sealed (or its seal was removed)",
            ),
        }
        if ins
            .status
            .as_ref()
            .is_some_and(|s| s.status == BundleStatus::InProgress)
        {
            report.push(
                K::InProgress,
                Some(STATUS_FILE),
                "run_status.json says in_progress: the run has not finished (or crashed)",
            );
        }
        return;
    };
    let index_blake3 = digest::blake3_hex(&index_bytes);
    if let Some(l) = latest
        && l.artifact_index_blake3 != index_blake3
    {
        report.push(
            K::LatestMismatch,
            Some(INDEX_FILE),
            format!(
                "the index's blake3 is {index_blake3}, but LATEST records {}: the index (or LATEST) was changed after the seal",
                l.artifact_index_blake3
            ),
        );
    }
    report.index_blake3 = Some(index_blake3);
    let de = &mut serde_json::Deserializer::from_slice(&index_bytes);
    let index: ArtifactIndex = match serde_path_to_error::deserialize(de) {
        Ok(i) => i,
        Err(e) => {
            let at = e.path().to_string();
            report.push(
                K::IndexUnparseable,
                Some(INDEX_FILE),
                format!("{} (at `{at}`)", e.into_inner()),
            );
            ins.index_state = "unparseable";
            return;
        }
    };
    ins.index_state = "ok";
    report.run_id = Some(index.run_id.clone());
    report.status = Some(index.status);
    report.repaired = index.repaired;
    report.file_count = index.file_count;
    report.total_bytes = index.total_bytes;

    check_index_shape(&index, report);
    check_status(
        &index,
        ins.status.as_ref(),
        status_read.as_ref(),
        &nodes,
        report,
    );
    if let Some(name) = dir.file_name().map(|n| n.to_string_lossy())
        && name != index.run_id
    {
        report.push(
            K::RunIdMismatch,
            None,
            format!(
                "the directory is `{name}` but the index is for run `{}`",
                index.run_id
            ),
        );
    }
    check_members(dir, dir_fd, &index, &nodes, report);
    check_companions(dir, &nodes, report);
    match signature::check_signature(&|rel| read_meta(dir_fd, rel), &index_bytes, Some(&index)) {
        SignatureCheck::Absent => {}
        SignatureCheck::Valid { fingerprint, .. } => report.signed_by = Some(fingerprint),
        SignatureCheck::Invalid { path, problem, .. } => {
            report.push(K::BundleSignatureInvalid, Some(path), problem);
        }
    }
    ins.index = Some(index);
}

/// The index and its signature files are sealed files too: regular, read-only, one link.
fn check_companions(dir: &Path, nodes: &[Node], report: &mut Report) {
    use ProblemKind as K;
    use std::os::unix::fs::MetadataExt;
    for rel in std::iter::once(INDEX_FILE).chain(SIGNATURE_FILES) {
        let Some(n) = nodes.iter().find(|n| n.rel == rel) else {
            continue;
        };
        match n.kind {
            NodeKind::File => {}
            NodeKind::Symlink => {
                report.push(K::Symlink, Some(rel), "a symlink, not a regular file");
                continue;
            }
            _ => {
                report.push(K::NotRegularFile, Some(rel), "not a regular file");
                continue;
            }
        }
        match std::fs::symlink_metadata(dir.join(rel)) {
            Ok(m) => check_mode(rel, m.mode() & 0o7777, m.nlink(), report),
            Err(e) => report.push(K::Unreadable, Some(rel), e.to_string()),
        }
    }
}

/// A sealed file must be read-only (no write bit), without setuid/setgid, with one link.
fn check_mode(rel: &str, mode: u32, nlink: u64, report: &mut Report) {
    use ProblemKind as K;
    if nlink > 1 {
        report.push(
            K::Hardlink,
            Some(rel),
            format!("{nlink} hard links: another name for this file can change it after the seal"),
        );
    }
    if mode & 0o222 != 0 || mode & 0o6000 != 0 {
        let what = if mode & 0o6000 != 0 {
            "setuid/setgid"
        } else {
            "writable"
        };
        report.push(
            K::UnsafeMode,
            Some(rel),
            format!("mode {mode:04o} is {what}; sealed files are 0444"),
        );
    }
}

fn check_index_shape(index: &ArtifactIndex, report: &mut Report) {
    use ProblemKind as K;
    let mut bad = |d: String| report.push(K::IndexInvalid, Some(INDEX_FILE), d);
    if index.schema_version != INDEX_SCHEMA_VERSION {
        bad(format!(
            "schema_version {} is not supported (this tool reads {INDEX_SCHEMA_VERSION})",
            index.schema_version
        ));
    }
    if index.algorithm != "blake3" {
        bad(format!(
            "algorithm `{}` is not supported (blake3)",
            index.algorithm
        ));
    }
    if index.file_count != index.entries.len() as u64 {
        bad(format!(
            "file_count is {} but {} entries are listed",
            index.file_count,
            index.entries.len()
        ));
    }
    let sum: u64 = index.entries.iter().map(|e| e.size).sum();
    if index.total_bytes != sum {
        bad(format!(
            "total_bytes is {} but the entries add up to {sum}",
            index.total_bytes
        ));
    }
    for w in index.entries.windows(2) {
        match w[0].path.as_bytes().cmp(w[1].path.as_bytes()) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => bad(format!("`{}` is listed twice", w[0].path)),
            std::cmp::Ordering::Greater => bad(format!(
                "entries are not sorted: `{}` comes before `{}`",
                w[0].path, w[1].path
            )),
        }
    }
    for e in &index.entries {
        if !digest::is_hex64(&e.blake3) {
            bad(format!(
                "the blake3 of `{}` is not 64 lowercase hex characters",
                e.path
            ));
        }
        if e.path == INDEX_FILE {
            bad("the index lists itself".into());
        }
    }
    if let Some(h) = &index.audit_head
        && !digest::is_hex64(&h.blake3)
    {
        report.push(
            K::IndexInvalid,
            Some(INDEX_FILE),
            "the index's audit_head blake3 is not 64 lowercase hex characters",
        );
    }
    if index.status == BundleStatus::InProgress {
        report.push(
            K::InProgress,
            Some(INDEX_FILE),
            "the index says in_progress: a sealed bundle is complete, failed or interrupted",
        );
    }
}

fn check_status(
    index: &ArtifactIndex,
    status: Option<&RunStatusFile>,
    status_read: Option<&std::io::Result<Vec<u8>>>,
    nodes: &[Node],
    report: &mut Report,
) {
    use ProblemKind as K;
    let listed = index.entries.iter().any(|e| e.path == STATUS_FILE);
    let on_disk = nodes.iter().any(|n| n.rel == STATUS_FILE);
    match status {
        None if !listed && !on_disk => report.push(
            K::StatusMissing,
            Some(STATUS_FILE),
            "the bundle has no run_status.json",
        ),
        None => {
            if let Some(Ok(_)) = status_read {
                report.push(
                    K::StatusMismatch,
                    Some(STATUS_FILE),
                    "run_status.json does not parse",
                );
            }
        }
        Some(s) => {
            if s.status == BundleStatus::InProgress {
                report.push(
                    K::InProgress,
                    Some(STATUS_FILE),
                    "run_status.json says in_progress",
                );
            } else if s.status != index.status {
                report.push(
                    K::StatusMismatch,
                    Some(STATUS_FILE),
                    format!(
                        "run_status.json says {} but the index says {}",
                        status_word(s.status),
                        status_word(index.status)
                    ),
                );
            }
            if s.run_id != index.run_id {
                report.push(
                    K::StatusMismatch,
                    Some(STATUS_FILE),
                    format!(
                        "run_status.json is for run `{}`, the index for `{}`",
                        s.run_id, index.run_id
                    ),
                );
            }
        }
    }
}

/// The start time a generated run id carries (`20261124T150811.123Z-1a2b3c4d` →
/// `20261124T150811.123Z`), or `None` for an id given by hand.
fn id_time(id: &str) -> Option<&str> {
    let (time, rand) = id.split_once('-')?;
    let b = time.as_bytes();
    let ok = b.len() == 20
        && b[8] == b'T'
        && b[15] == b'.'
        && b[19] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 8 | 15 | 19) || c.is_ascii_digit())
        && rand.len() == 8
        && rand.bytes().all(|c| c.is_ascii_hexdigit());
    ok.then_some(time)
}

/// `complete`, `failed`, `in_progress`.
pub fn status_word(s: BundleStatus) -> &'static str {
    match s {
        BundleStatus::InProgress => "in_progress",
        BundleStatus::Complete => "complete",
        BundleStatus::Failed => "failed",
        BundleStatus::Interrupted => "interrupted",
    }
}

fn check_members(
    dir: &Path,
    dir_fd: &File,
    index: &ArtifactIndex,
    nodes: &[Node],
    report: &mut Report,
) {
    use ProblemKind as K;
    let by_path: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.rel.as_str(), n)).collect();
    let indexed: BTreeSet<&str> = index.entries.iter().map(|e| e.path.as_str()).collect();
    let mut symlinks_reported = BTreeSet::new();
    let mut to_hash = Vec::new();
    'entries: for e in &index.entries {
        if let Some(r) = tree::unsafe_reason(&e.path) {
            report.push(K::UnsafePath, Some(&e.path), r);
            continue;
        }
        // Every ancestor must be a real directory.
        let mut prefix = String::new();
        let comps: Vec<&str> = e.path.split('/').collect();
        for c in &comps[..comps.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            match by_path.get(prefix.as_str()).map(|n| n.kind) {
                Some(NodeKind::Dir) => {}
                Some(NodeKind::Symlink) => {
                    if symlinks_reported.insert(prefix.clone()) {
                        report.push(
                            K::Symlink,
                            Some(&prefix),
                            "a symlink where the index expects a directory",
                        );
                    }
                    report.push(
                        K::MissingFile,
                        Some(&e.path),
                        format!("not reachable without following the symlink `{prefix}`"),
                    );
                    continue 'entries;
                }
                _ => {
                    report.push(K::MissingFile, Some(&e.path), "the file is gone");
                    continue 'entries;
                }
            }
        }
        match by_path.get(e.path.as_str()) {
            None => report.push(K::MissingFile, Some(&e.path), "the file is gone"),
            Some(n) => match n.kind {
                NodeKind::Symlink => {
                    symlinks_reported.insert(e.path.clone());
                    report.push(
                        K::Symlink,
                        Some(&e.path),
                        "the file was replaced by a symlink",
                    );
                }
                NodeKind::Dir | NodeKind::Other => report.push(
                    K::NotRegularFile,
                    Some(&e.path),
                    "indexed as a file but is not a regular file",
                ),
                NodeKind::File => to_hash.push(e),
            },
        }
    }
    let jobs: Vec<hash::Job<'_>> = to_hash
        .iter()
        .map(|e| hash::Job {
            rel: &e.path,
            expect_size: Some(e.size),
        })
        .collect();
    for (e, h) in to_hash.iter().zip(hash::hash_members(dir_fd, &jobs, false)) {
        match h {
            Ok(h) if h.size != e.size => report.push(
                K::SizeMismatch,
                Some(&e.path),
                format!("{} bytes, the index says {}", h.size, e.size),
            ),
            Ok(h) if h.blake3 != e.blake3 => report.push(
                K::DigestMismatch,
                Some(&e.path),
                format!("blake3 is {}, the index says {}", h.blake3, e.blake3),
            ),
            Ok(h) => {
                report.files_verified += 1;
                check_mode(&e.path, h.mode, h.nlink, report);
            }
            Err(err) if err.raw_os_error() == Some(libc::ELOOP) => report.push(
                K::Symlink,
                Some(&e.path),
                "a symlink appeared on the path while it was checked",
            ),
            Err(err) => report.push(K::Unreadable, Some(&e.path), err.to_string()),
        }
    }
    // Every directory an indexed path lies beneath.
    let mut needed: BTreeSet<&str> = BTreeSet::new();
    for e in &index.entries {
        let mut rest = e.path.as_str();
        while let Some((parent, _)) = rest.rsplit_once('/') {
            needed.insert(parent);
            rest = parent;
        }
    }
    for n in nodes {
        if n.rel == INDEX_FILE
            || SIGNATURE_FILES.contains(&n.rel.as_str())
            || indexed.contains(n.rel.as_str())
        {
            continue;
        }
        match n.kind {
            NodeKind::Dir if needed.contains(n.rel.as_str()) => {}
            NodeKind::Dir => report.push(
                K::UnexpectedDirectory,
                Some(&n.rel),
                "a directory that holds no indexed file (empty, or added after the seal)",
            ),
            NodeKind::File if !n.utf8 => report.push(
                K::UnsafePath,
                Some(&n.rel),
                "an unindexed file whose name is not UTF-8",
            ),
            NodeKind::File => {
                let size = std::fs::symlink_metadata(dir.join(&n.rel)).map_or(0, |m| m.len());
                report.push(
                    K::UnindexedFile,
                    Some(&n.rel),
                    format!(
                        "{size} byte{} on disk that the index does not list",
                        if size == 1 { "" } else { "s" }
                    ),
                );
            }
            NodeKind::Symlink => {
                if !symlinks_reported.contains(&n.rel) {
                    report.push(K::Symlink, Some(&n.rel), "an unindexed symlink");
                }
            }
            NodeKind::Other => report.push(
                K::NotRegularFile,
                Some(&n.rel),
                "an unindexed FIFO, socket or device",
            ),
        }
    }
    check_sums(dir_fd, index, report);
}

/// `BLAKE3SUMS` must list exactly the index's entries (but itself), in order.
fn check_sums(dir_fd: &File, index: &ArtifactIndex, report: &mut Report) {
    use ProblemKind as K;
    if !index.entries.iter().any(|e| e.path == SUMS_FILE) {
        report.push(
            K::SumsMismatch,
            Some(SUMS_FILE),
            "the index does not list BLAKE3SUMS",
        );
        return;
    }
    // Only compare a BLAKE3SUMS whose own bytes verified; otherwise its problem is reported.
    if report
        .problems
        .iter()
        .any(|p| p.path.as_deref() == Some(SUMS_FILE))
    {
        return;
    }
    let Some(Ok(bytes)) = read_meta(dir_fd, SUMS_FILE) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut want = String::new();
    for e in index.entries.iter().filter(|e| e.path != SUMS_FILE) {
        want.push_str(&e.blake3);
        want.push_str("  ");
        want.push_str(&e.path);
        want.push('\n');
    }
    if text != want {
        let line = text
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| text.lines().count().min(want.lines().count()));
        report.push(
            K::SumsMismatch,
            Some(SUMS_FILE),
            format!("BLAKE3SUMS differs from the index at line {}", line + 1),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_run_ids_carry_their_time_and_others_do_not() {
        let id = crate::bundle::new_run_id();
        assert_eq!(id_time(&id), Some(&id[..20]));
        assert_eq!(
            id_time("20261124T150811.123Z-1a2b3c4d"),
            Some("20261124T150811.123Z")
        );
        for other in [
            "r-0",
            "next-after-begin",
            "20261124T150811.123Z",
            "x-1a2b3c4d",
        ] {
            assert_eq!(id_time(other), None, "{other}");
        }
    }
}
