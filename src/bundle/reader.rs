//! Reading bundles: the strict reader ([`load_bundle`]) the rest of the tool uses, and an
//! unverified one ([`open_bundle_unverified`]) for debugging, never for promotion.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::V1_RESULT_FILES;
use super::check::{self, Report};
use super::lines::{self, SharedValues};
use super::{fsio, hash};
use crate::error::ErrorKind;
use crate::model::index::{ArtifactIndex, IndexEntry, RunStatusFile};
use crate::{Error, Result};

/// A bundle that passed every check of [`check::check_bundle`]. Member reads through it
/// are verified again against the index (the bytes handed out are the bytes hashed).
#[derive(Debug)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The out root it sits in, if any.
    pub out_root: Option<PathBuf>,
    /// It was reached through `LATEST` (whose digest matched).
    pub via_latest: bool,
    /// The run id.
    pub run_id: String,
    /// The index.
    pub index: ArtifactIndex,
    /// blake3 of the index's bytes (what `LATEST`, packets and the audit log record).
    pub index_blake3: String,
    /// `run_status.json`.
    pub status: RunStatusFile,
    /// `SHA256:…` of the key whose signature over the index verifies, if signed.
    pub signed_by: Option<String>,
    dir_fd: File,
}

/// Load the bundle at `path` (a bundle directory, or an out root resolved through `LATEST`)
/// and refuse it on any problem: missing or unparseable index, `in_progress`, a size or
/// digest mismatch, a missing, unindexed or non-regular file, a symlink, an unsafe path, a
/// `LATEST` whose digest does not match. Exit 1 for an invalid bundle, 2 for a path that is
/// not a bundle.
pub fn load_bundle(path: &Path) -> Result<Bundle> {
    let ins = check::inspect_path(path)?;
    let report = ins.report;
    if !report.is_valid() {
        return Err(invalid(&report, path));
    }
    match (ins.index, ins.status, ins.dir_fd) {
        (Some(index), Some(status), Some(dir_fd)) => Ok(Bundle {
            dir: report.bundle,
            out_root: report.out_root,
            via_latest: report.via_latest,
            run_id: index.run_id.clone(),
            index_blake3: report.index_blake3.unwrap_or_default(),
            index,
            status,
            signed_by: report.signed_by,
            dir_fd,
        }),
        _ => Err(Error::new(
            ErrorKind::Findings,
            "the bundle checked valid but could not be read",
        )
        .with_path(&report.bundle)),
    }
}

fn invalid(report: &Report, arg: &Path) -> Error {
    let n = report.problems.len();
    let first = report.problems.first().map_or_else(String::new, |p| {
        format!(
            ": {} {}{}",
            p.kind.as_str(),
            p.path
                .as_deref()
                .map(|s| format!("`{s}` "))
                .unwrap_or_default(),
            p.detail
        )
    });
    Error::new(
        ErrorKind::Findings,
        format!(
            "not a valid sealed bundle ({n} problem{}){first}",
            if n == 1 { "" } else { "s" }
        ),
    )
    .with_path(&report.bundle)
    .with_hint(format!(
        "`nexusmon validate-bundle --bundle {}` lists every problem",
        arg.display()
    ))
}

impl Bundle {
    /// The index entry for `rel`.
    pub fn entry(&self, rel: &str) -> Option<&IndexEntry> {
        self.index
            .entries
            .binary_search_by(|e| e.path.as_bytes().cmp(rel.as_bytes()))
            .ok()
            .map(|i| &self.index.entries[i])
    }

    /// True if `rel` is indexed.
    pub fn has(&self, rel: &str) -> bool {
        self.entry(rel).is_some()
    }

    /// The on-disk path of member `rel` (for display; read through [`Bundle::read_verified`]).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// True if the index was rewritten by `reindex-bundle --repair`.
    pub fn is_repaired(&self) -> bool {
        self.index.repaired
    }

    /// Read member `rel`, verified again against its index entry (size and blake3), without
    /// following any symlink. Exit 1 if it is not indexed or does not match.
    pub fn read_verified(&self, rel: &str) -> Result<Vec<u8>> {
        let path = self.path(rel);
        let entry = self.entry(rel).ok_or_else(|| {
            Error::new(ErrorKind::Findings, "is not in the bundle's index").with_path(&path)
        })?;
        if entry.size > crate::util::limits::MAX_MEMBER_BYTES {
            return Err(crate::util::fsx::too_large(
                &path,
                crate::util::limits::MAX_MEMBER_BYTES,
                "a bundle member read into memory",
                None,
            ));
        }
        let mut f = fsio::open_beneath(&self.dir_fd, rel)
            .map_err(|e| Error::io("open bundle member", &path, e))?;
        let bytes = fsio::read_limited(&mut f, entry.size)
            .map_err(|e| Error::io("read bundle member", &path, e))?;
        if bytes.len() as u64 != entry.size {
            return Err(Error::new(
                ErrorKind::Findings,
                format!(
                    "changed since the bundle was checked: {} bytes, the index says {}",
                    bytes.len(),
                    entry.size
                ),
            )
            .with_path(&path));
        }
        let got = blake3::hash(&bytes).to_hex().to_string();
        if got != entry.blake3 {
            return Err(Error::new(
                ErrorKind::Findings,
                format!(
                    "changed since the bundle was checked: blake3 {got}, the index says {}",
                    entry.blake3
                ),
            )
            .with_path(&path));
        }
        Ok(bytes)
    }

    /// Read member `rel` verified, and parse it as JSON.
    pub fn read_json<T: DeserializeOwned>(&self, rel: &str) -> Result<T> {
        let bytes = self.read_verified(rel)?;
        parse_json(&bytes, &self.path(rel))
    }

    /// Verify member `rel` without keeping its bytes (streams large files).
    pub fn verify(&self, rel: &str) -> Result<()> {
        let path = self.path(rel);
        let entry = self.entry(rel).ok_or_else(|| {
            Error::new(ErrorKind::Findings, "is not in the bundle's index").with_path(&path)
        })?;
        let h = hash::hash_members(&self.dir_fd, &[hash::Job::any(rel)], false)
            .pop()
            .unwrap_or_else(|| Err(std::io::Error::other("nothing hashed")))
            .map_err(|e| Error::io("hash bundle member", &path, e))?;
        if h.size != entry.size || h.blake3 != entry.blake3 {
            return Err(
                Error::new(ErrorKind::Findings, "changed since the bundle was checked")
                    .with_path(&path),
            );
        }
        Ok(())
    }
}

impl Bundle {
    /// The values the result files' lines share (`shared_values.json`), verified. A bundle
    /// of result schema version 1 is refused by name ([`lines::refuse_v1`]).
    pub fn shared_values(&self) -> Result<SharedValues> {
        if !self.has(lines::SHARED_FILE)
            && let Some(old) = V1_RESULT_FILES.iter().find(|f| self.has(f))
        {
            return Err(lines::refuse_v1(&self.path(old), old));
        }
        let path = self.path(lines::SHARED_FILE);
        // A value at a time as the file streams, hashed as it is read: kept only when the
        // bytes are the indexed ones. Anything else (a member too large, changed, or not a
        // well-formed table) is read whole as before, for that reading's exact error.
        if let Some(entry) = self.entry(lines::SHARED_FILE)
            && entry.size <= crate::util::limits::MAX_MEMBER_BYTES
            && let Ok((_, Some(t))) = self.scan_member(lines::SHARED_FILE, &mut |r| {
                SharedValues::read(&mut std::io::Read::take(r, entry.size))
            })
        {
            return Ok(t);
        }
        SharedValues::parse(&self.read_verified(lines::SHARED_FILE)?, &path)
    }

    /// Stream the lines of result file `rel` to `each` as `T`, each expanded with `shared`,
    /// verifying the bytes against the index as they are read: a mismatch (found at the
    /// end) is an error, and whatever `each` gathered must then be thrown away. Memory is
    /// one line, whatever the file's size.
    pub fn for_each_line<T: DeserializeOwned>(
        &self,
        rel: &str,
        shared: &SharedValues,
        each: &mut dyn FnMut(T) -> Result<()>,
    ) -> Result<u64> {
        self.scan_lines(rel, shared, each)?.1
    }

    /// [`Bundle::for_each_line`] that reads to the end even when a line fails, returning
    /// the file's digests (checked against the index) with the lines' outcome.
    pub fn scan_lines<T: DeserializeOwned>(
        &self,
        rel: &str,
        shared: &SharedValues,
        each: &mut dyn FnMut(T) -> Result<()>,
    ) -> Result<(lines::Digests, Result<u64>)> {
        let (path, entry) = self.result_entry(rel)?;
        let f = fsio::open_beneath(&self.dir_fd, rel)
            .map_err(|e| Error::io("open bundle member", &path, e))?;
        let (d, outcome) = lines::scan(f, &path, shared, each)?;
        check_digests(&d, entry, &path)?;
        Ok((d, outcome))
    }

    /// The path and index entry of result file `rel`; a version-1 bundle (which has the
    /// old result files instead) is refused naming its file and the fix.
    fn result_entry(&self, rel: &str) -> Result<(PathBuf, &IndexEntry)> {
        let path = self.path(rel);
        let entry = self.entry(rel).ok_or_else(|| {
            if let Some(old) = V1_RESULT_FILES.iter().find(|f| self.has(f)) {
                return lines::refuse_v1(&self.path(old), old);
            }
            Error::new(ErrorKind::Findings, "is not in the bundle's index").with_path(&path)
        })?;
        Ok((path, entry))
    }

    /// Result file `rel` to be read a line at a time on demand, verified against the index
    /// when [`lines::LineReader::finish`] is called.
    pub fn line_reader(&self, rel: &str) -> Result<lines::LineReader<File>> {
        let (path, entry) = self.result_entry(rel)?;
        let f = fsio::open_beneath(&self.dir_fd, rel)
            .map_err(|e| Error::io("open bundle member", &path, e))?;
        Ok(lines::LineReader::new(
            f,
            &path,
            Some((entry.size, entry.blake3.clone())),
        ))
    }

    /// Read member `rel` once through `read` (which parses what it needs from the stream),
    /// hashing every byte and checking the digests against the index at the end (a
    /// mismatch is an error, and whatever `read` returned must be thrown away). Memory is
    /// what `read` keeps, whatever the member's size.
    pub fn scan_member<R>(
        &self,
        rel: &str,
        read: &mut dyn FnMut(&mut dyn std::io::BufRead) -> R,
    ) -> Result<(lines::Digests, R)> {
        let path = self.path(rel);
        let entry = self.entry(rel).ok_or_else(|| {
            Error::new(ErrorKind::Findings, "is not in the bundle's index").with_path(&path)
        })?;
        let f = fsio::open_beneath(&self.dir_fd, rel)
            .map_err(|e| Error::io("open bundle member", &path, e))?;
        let (d, got) = lines::scan_with(f, &path, read)?;
        check_digests(&d, entry, &path)?;
        Ok((d, got))
    }
}

/// The digests of a member as read against its index entry.
fn check_digests(d: &lines::Digests, entry: &IndexEntry, path: &Path) -> Result<()> {
    if d.size != entry.size || d.blake3 != entry.blake3 {
        return Err(Error::new(
            ErrorKind::Findings,
            format!(
                "changed since the bundle was checked: {} bytes, blake3 {}; the index says {} bytes, {}",
                d.size, d.blake3, entry.size, entry.blake3
            ),
        )
        .with_path(path));
    }
    Ok(())
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        Error::new(ErrorKind::Findings, format!("does not parse (at `{at}`)"))
            .with_path(path)
            .with_source(e.into_inner())
    })
}

/// A bundle opened without verification, for debugging (`--unverified` views): whatever
/// is there, with the problems a check would report. Never used for promotion.
#[derive(Debug)]
pub struct UnverifiedBundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The index, if present and parseable.
    pub index: Option<ArtifactIndex>,
    /// `run_status.json`, if present and parseable.
    pub status: Option<RunStatusFile>,
    /// The run id (index, else `run_status.json`, else the directory name).
    pub run_id: String,
    dir_fd: File,
}

/// Open the bundle at `path` (a bundle directory, staging directory, or an out root) without
/// checking digests. Refuses only what cannot be opened at all.
pub fn open_bundle_unverified(path: &Path) -> Result<UnverifiedBundle> {
    let dir = match check::resolve(path)? {
        check::Resolved::Bundle { dir, .. } => dir,
        check::Resolved::BrokenLatest { out_root, problem } => {
            return Err(Error::input(
                out_root.join(super::LATEST_FILE),
                format!("cannot follow LATEST: {}", problem.detail),
            ));
        }
    };
    let dir_fd = fsio::open_dir(&dir).map_err(|e| Error::io_input("open bundle", &dir, e))?;
    let read = |rel: &str| check::read_meta(&dir_fd, rel).and_then(Result::ok);
    let index: Option<ArtifactIndex> =
        read(super::INDEX_FILE).and_then(|b| serde_json::from_slice(&b).ok());
    let status: Option<RunStatusFile> =
        read(super::STATUS_FILE).and_then(|b| serde_json::from_slice(&b).ok());
    let run_id = index
        .as_ref()
        .map(|i| i.run_id.clone())
        .or_else(|| status.as_ref().map(|s| s.run_id.clone()))
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    Ok(UnverifiedBundle {
        dir,
        index,
        status,
        run_id,
        dir_fd,
    })
}

impl UnverifiedBundle {
    /// Read member `rel` as it is on disk (no digest check; symlinks still refused).
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let path = self.dir.join(rel);
        if let Some(r) = super::unsafe_reason(rel) {
            return Err(Error::input(&path, r));
        }
        let mut f = fsio::open_beneath(&self.dir_fd, rel)
            .map_err(|e| Error::io_input("open bundle member", &path, e))?;
        let max = crate::util::limits::MAX_MEMBER_BYTES;
        fsio::read_limited(&mut f, max).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                crate::util::fsx::too_large(&path, max, "a bundle member read into memory", None)
            } else {
                Error::io_input("read bundle member", &path, e)
            }
        })
    }

    /// Read member `rel` and parse it as JSON.
    pub fn read_json<T: DeserializeOwned>(&self, rel: &str) -> Result<T> {
        parse_json(&self.read(rel)?, &self.dir.join(rel))
    }

    /// Open member `rel` to stream it (no digest check; symlinks still refused).
    pub fn open(&self, rel: &str) -> Result<File> {
        let path = self.dir.join(rel);
        if let Some(r) = super::unsafe_reason(rel) {
            return Err(Error::input(&path, r));
        }
        fsio::open_beneath(&self.dir_fd, rel)
            .map_err(|e| Error::io_input("open bundle member", &path, e))
    }
}
