//! The hash-chained audit log `.nexusmon/audit.jsonl`.
//!
//! - Format: see [`crate::model::audit`]. Each line commits to the previous line's exact
//!   bytes, so editing, inserting, removing or reordering any line before the head breaks
//!   the chain where it happened.
//! - Writes: one `write` of a complete line (`O_APPEND`), then `fsync`, under an exclusive
//!   `flock` on the log (single writer). After each append the head `{seq, blake3}` is
//!   written to `audit_head.json`, an anchor beside the log.
//! - Recovery: a torn last line (no trailing newline, or a last line that does not parse)
//!   is an uncommitted write. The next append saves its bytes under `audit-recovered/`,
//!   truncates them and writes a `recovered` entry naming their digest and length.
//! - Limits: a chain alone cannot show that its tail was cut, or that it was rewritten by
//!   someone who recomputed every digest. That is what anchors are for: the head is
//!   recorded in `audit_head.json`, every sealed `artifact_index.json`, `LATEST` and
//!   promotion packet, and [`AuditLog::verify`] checks that the log still holds, at each
//!   anchored `seq`, exactly the anchored digest.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};

use crate::util::limits::MAX_AUDIT_LINE_BYTES;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

mod verify;

use self::verify::Verifier;
use super::state::{
    AUDIT_FILE, AUDIT_HEAD_FILE, RECOVERED_DIR, StateDir, flock_exclusive, flock_shared,
};
use crate::model::audit::{AUDIT_LOG_FORMAT, AuditEntry};
use crate::model::index::AuditHead;
use crate::util::digest::blake3_hex;
use crate::util::{fsx, json, time};
use crate::{Error, Result};

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuditKind {
    /// The first line of a log (written by `init` only).
    Genesis,
    /// A run passed the gate and started.
    RunStarted,
    /// The gate refused a run; nothing executed.
    RunRefused,
    /// A run's bundle was sealed.
    RunSealed,
    /// `approve` wrote an approval record.
    ApprovalRecorded,
    /// The gate rejected an approval record (and why).
    ApprovalRejected,
    /// Packets were promoted into mappings.
    Promotion,
    /// Evolution consumed mission outcomes.
    Evolution,
    /// A failure fingerprint crossed a threshold.
    OmenRecorded,
    /// An approver cleared an omen.
    OmenCleared,
    /// `trust add` added a key to the trust file.
    TrustAdded,
    /// A torn last line was dropped.
    Recovered,
    /// A run used a limited-use approval (its nonce, which use of how many).
    ApprovalUsed,
    /// Evolution unlocked a capability (the level and the packets that earned it).
    CapabilityUnlocked,
    /// Evolution revoked a capability (the level fell below the one that unlocks it).
    CapabilityRevoked,
}

impl AuditKind {
    /// The `kind` word in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Genesis => "genesis",
            AuditKind::RunStarted => "run-started",
            AuditKind::RunRefused => "run-refused",
            AuditKind::RunSealed => "run-sealed",
            AuditKind::ApprovalRecorded => "approval-recorded",
            AuditKind::ApprovalRejected => "approval-rejected",
            AuditKind::Promotion => "promotion",
            AuditKind::Evolution => "evolution",
            AuditKind::OmenRecorded => "omen-recorded",
            AuditKind::OmenCleared => "omen-cleared",
            AuditKind::TrustAdded => "trust-added",
            AuditKind::Recovered => "recovered",
            AuditKind::ApprovalUsed => "approval-used",
            AuditKind::CapabilityUnlocked => "capability-unlocked",
            AuditKind::CapabilityRevoked => "capability-revoked",
        }
    }
}

/// The domain-separation header the genesis line's `prev` is the digest of.
pub fn genesis_header(log_id: &str) -> String {
    format!("{AUDIT_LOG_FORMAT} {log_id}")
}

/// The audit log of a state directory.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    head_path: PathBuf,
    recovered_dir: PathBuf,
}

/// A recorded anchor of the log's head: where it was found and what it says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Anchor {
    /// Where it was found (a path, or `audit_head.json`).
    pub source: String,
    /// The anchored head.
    pub head: AuditHead,
}

/// What kind of problem [`AuditLog::verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// The line is not a valid audit entry.
    Unparseable,
    /// The first line is not a valid genesis line.
    GenesisInvalid,
    /// The line's bytes are not what the chain (or an anchor) committed to.
    Changed,
    /// Lines are missing before this line (`seq` jumps).
    SeqGap,
    /// `seq` does not follow the previous line's (inserted, duplicated or reordered lines).
    SeqOutOfOrder,
    /// An anchor names a `seq` beyond the log's end: the tail was cut or the log replaced.
    AnchorBeyondEnd,
    /// An anchor names a `seq` the log does not contain (lines were removed).
    AnchorMissing,
    /// `audit_head.json` is missing or does not parse: the head beside the log is gone.
    HeadMissing,
    /// The log goes on past the head `audit_head.json` records: lines were appended
    /// without the head (or the head was rolled back).
    HeadBehindLog,
    /// A bundle's index is not the one the log sealed for its run (forged or swapped); its
    /// `audit_head` is not used as an anchor.
    IndexNotAnchored,
    /// An out root's `LATEST` names an older sealed run than the last `run-sealed` entry
    /// for that out root (a silent rollback).
    LatestRollback,
    /// The state directory's trust file does not parse: no approval or bundle signature
    /// can be verified against it (the message names the file and line).
    TrustFileBroken,
}

/// One problem, naming the line (1-based, as editors count) and its `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line number in the file (0 when the problem is about a missing line).
    pub line: u64,
    /// The `seq` the line has (or the anchored one).
    pub seq: Option<u64>,
    /// The kind.
    pub kind: ProblemKind,
    /// What is wrong, in a sentence.
    pub message: String,
}

/// The result of [`AuditLog::verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The log file.
    pub path: PathBuf,
    /// No problems.
    pub ok: bool,
    /// Complete lines read.
    pub lines: u64,
    /// The log id from the genesis line.
    pub log_id: Option<String>,
    /// The last complete line's `{seq, blake3}`.
    pub head: Option<AuditHead>,
    /// Anchors checked (including `audit_head.json`).
    pub anchors_checked: u64,
    /// `recovered` entries in the log (torn writes dropped by earlier appends).
    pub recovered_entries: u64,
    /// The first line with a problem (1-based).
    pub first_bad_line: Option<u64>,
    /// Every problem, by line.
    pub problems: Vec<Problem>,
    /// Things worth knowing that are not problems (a torn tail awaiting recovery).
    pub notes: Vec<String>,
}

/// The last complete line of the log and any torn bytes after it.
struct Tail {
    /// (offset, bytes without newline) of the last complete line.
    last: Option<(u64, Vec<u8>)>,
    /// (offset, bytes) after the last newline, if any.
    fragment: Option<(u64, Vec<u8>)>,
}

impl AuditLog {
    /// The log of `state`; the file must exist (created by `nexusmon init`).
    pub fn open(state: &StateDir) -> Result<Self> {
        let log = Self::at(state);
        if log.path.is_file() {
            Ok(log)
        } else {
            Err(Error::input(&log.path, "the audit log does not exist")
                .with_hint("run `nexusmon init` to create the state directory's files"))
        }
    }

    fn at(state: &StateDir) -> Self {
        Self {
            path: state.file(AUDIT_FILE),
            head_path: state.file(AUDIT_HEAD_FILE),
            recovered_dir: state.file(RECOVERED_DIR),
        }
    }

    /// Create a new log with its genesis line (fails if the file exists).
    pub(crate) fn create(state: &StateDir) -> Result<Self> {
        let log = Self::at(state);
        let log_id = super::state::random_hex(16)?;
        let entry = AuditEntry {
            seq: 0,
            ts: time::now_rfc3339(),
            prev: blake3_hex(genesis_header(&log_id).as_bytes()),
            kind: AuditKind::Genesis.as_str().to_string(),
            data: json!({ "log": AUDIT_LOG_FORMAT, "log_id": log_id }),
        };
        let line = json::to_sorted_line(&entry)?;
        let mut bytes = line.clone().into_bytes();
        bytes.push(b'\n');
        super::state::write_new(&log.path, &bytes)?;
        log.write_head(&AuditHead {
            seq: 0,
            blake3: blake3_hex(line.as_bytes()),
        })?;
        Ok(log)
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every complete entry of `kind`, in log order (lines of other kinds are skipped
    /// without being parsed; a line that does not parse is skipped too: `audit verify`
    /// reports it). Memory stays bounded by the matching entries.
    pub fn entries_of_kind(&self, kind: AuditKind) -> Result<Vec<AuditEntry>> {
        let file = self.open_file(false)?;
        flock_shared(&file, &self.path)?;
        let needle = format!("\"kind\":\"{}\"", kind.as_str());
        let mut out = Vec::new();
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = read_line_capped(&mut reader, &mut line, MAX_AUDIT_LINE_BYTES)
                .map_err(|e| Error::io("read audit log", &self.path, e))?;
            if n == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if !line.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                continue;
            }
            if let Ok(e) = parse_entry(&line)
                && e.kind == kind.as_str()
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn open_file(&self, append: bool) -> Result<File> {
        if append {
            // Never through a symlink: the state directory and the log itself.
            let (dir, name) = fsx::dir_and_name(&self.path)?;
            return dir
                .open_append(name, 0o644, false)
                .map_err(|e| Error::io("open audit log", &self.path, e));
        }
        OpenOptions::new()
            .read(true)
            .open(&self.path)
            .map_err(|e| Error::io("open audit log", &self.path, e))
    }

    /// Append one entry: recover a torn tail first (recording it), then write the line in
    /// one `write`, `fsync`, and update `audit_head.json`. Returns the new head.
    pub fn append(&self, kind: AuditKind, data: serde_json::Value) -> Result<AuditHead> {
        if kind == AuditKind::Genesis {
            return Err(Error::runner("a genesis entry can only start a new log"));
        }
        if kind == AuditKind::Recovered {
            return Err(Error::runner(
                "`recovered` entries are written by recovery only",
            ));
        }
        let mut file = self.open_file(true)?;
        flock_exclusive(&file, &self.path)?;
        let last = self.recover_tail(&mut file)?;
        Ok(self.write_entry(&mut file, &last, kind, data)?.0)
    }

    /// Drop a torn tail (saving it and recording a `recovered` entry). Returns the head and
    /// the last line's parsed entry. Call with the log locked.
    fn recover_tail(&self, file: &mut File) -> Result<(AuditHead, AuditEntry)> {
        let tail = read_tail(file, &self.path)?;
        let mut torn: Option<(u64, Vec<u8>, &str)> = None;
        if let Some((off, bytes)) = tail.fragment {
            torn = Some((off, bytes, "no trailing newline"));
        }
        let mut last = tail.last;
        if torn.is_none()
            && let Some((off, bytes)) = &last
            && parse_entry(bytes).is_err()
        {
            let mut b = bytes.clone();
            b.push(b'\n');
            torn = Some((*off, b, "unparseable"));
            let before = truncated_tail(file, &self.path, *off)?;
            last = before;
        }
        let Some((_, last_bytes)) = last else {
            return Err(Error::input(&self.path, "the audit log has no complete genesis line")
                .with_hint("the log is damaged beyond recovery; restore it from a backup, or move it aside and run `nexusmon init`"));
        };
        let last_entry = parse_entry(&last_bytes).map_err(|e| {
            Error::input(
                &self.path,
                format!("the audit log's last line does not parse: {e}"),
            )
            .with_hint("run `nexusmon audit verify` to see what is wrong")
        })?;
        let mut head = (
            AuditHead {
                seq: last_entry.seq,
                blake3: blake3_hex(&last_bytes),
            },
            last_entry,
        );
        if let Some((offset, bytes, reason)) = torn {
            let digest = blake3_hex(&bytes);
            fsx::create_dir_all(&self.recovered_dir)?;
            let saved = self.recovered_dir.join(format!("{digest}.torn"));
            fsx::write_atomic(&saved, &bytes)?;
            file.set_len(offset)
                .map_err(|e| Error::io("truncate torn line of", &self.path, e))?;
            file.sync_all()
                .map_err(|e| Error::io("fsync", &self.path, e))?;
            let data = json!({
                "reason": reason,
                "offset": offset,
                "dropped_bytes": bytes.len(),
                "dropped_blake3": digest,
                "saved_as": format!("{RECOVERED_DIR}/{digest}.torn"),
            });
            head = self.write_entry(file, &head, AuditKind::Recovered, data)?;
        }
        Ok(head)
    }

    fn write_entry(
        &self,
        file: &mut File,
        last: &(AuditHead, AuditEntry),
        kind: AuditKind,
        data: serde_json::Value,
    ) -> Result<(AuditHead, AuditEntry)> {
        let entry = AuditEntry {
            seq: last.0.seq + 1,
            ts: time::now_rfc3339(),
            prev: last.0.blake3.clone(),
            kind: kind.as_str().to_string(),
            data,
        };
        let line = json::to_sorted_line(&entry)?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        file.write_all(&bytes)
            .map_err(|e| Error::io("append to audit log", &self.path, e))?;
        file.sync_data()
            .map_err(|e| Error::io("fsync audit log", &self.path, e))?;
        let head = AuditHead {
            seq: entry.seq,
            blake3: blake3_hex(line.as_bytes()),
        };
        self.write_head(&head)?;
        Ok((head, entry))
    }

    fn write_head(&self, head: &AuditHead) -> Result<()> {
        fsx::write_atomic(&self.head_path, &json::to_sorted_pretty(head)?)
    }

    /// The head `{seq, blake3}` of the last complete line (a torn tail is not committed and
    /// is not part of the head).
    pub fn head(&self) -> Result<AuditHead> {
        let mut file = self.open_file(false)?;
        flock_shared(&file, &self.path)?;
        let tail = read_tail(&mut file, &self.path)?;
        let Some((_, bytes)) = tail.last else {
            return Err(
                Error::input(&self.path, "the audit log has no complete line")
                    .with_hint("run `nexusmon audit verify`"),
            );
        };
        let entry = parse_entry(&bytes).map_err(|e| {
            Error::input(&self.path, format!("the audit log's last line does not parse: {e}"))
                .with_hint("the next append recovers a torn line; `nexusmon audit verify` shows the log's state")
        })?;
        Ok(AuditHead {
            seq: entry.seq,
            blake3: blake3_hex(&bytes),
        })
    }

    /// The anchor in `audit_head.json`, if the file exists and parses.
    pub fn head_anchor(&self) -> Option<Anchor> {
        let bytes =
            crate::util::fsx::read_capped(&self.head_path, crate::util::limits::MAX_STATE_BYTES)
                .ok()?;
        let head: AuditHead = serde_json::from_slice(&bytes).ok()?;
        Some(Anchor {
            source: AUDIT_HEAD_FILE.to_string(),
            head,
        })
    }

    /// Check the whole chain, then every anchor (`audit_head.json` and `anchors`). Names the
    /// first bad line. Reading is streaming: memory does not grow with the log.
    pub fn verify(&self, anchors: &[Anchor]) -> Result<VerifyReport> {
        let mut file = self.open_file(false)?;
        flock_shared(&file, &self.path)?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("read", &self.path, e))?;
        let mut all_anchors: Vec<Anchor> = Vec::new();
        let head_anchor = self.head_anchor();
        all_anchors.extend(head_anchor.clone());
        all_anchors.extend(anchors.iter().cloned());
        let mut by_seq: BTreeMap<u64, Vec<&Anchor>> = BTreeMap::new();
        for a in &all_anchors {
            by_seq.entry(a.head.seq).or_default().push(a);
        }

        let mut v = Verifier::default();
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut buf = Vec::new();
        let mut index: u64 = 0;
        loop {
            buf.clear();
            let n = read_line_capped(&mut reader, &mut buf, MAX_AUDIT_LINE_BYTES)
                .map_err(|e| Error::io("read", &self.path, e))?;
            if n == 0 {
                break;
            }
            if buf.last() != Some(&b'\n') {
                v.notes.push(format!(
                    "line {} ({} bytes) has no trailing newline: an uncommitted (torn) write; the next append drops and records it",
                    index + 1,
                    buf.len()
                ));
                break;
            }
            buf.pop();
            v.line(index, &buf, &by_seq);
            index += 1;
        }
        let mut report = v.finish(index, &by_seq, &self.path);
        match (&head_anchor, &report.head) {
            (None, _) => {
                let why = if self.head_path.exists() {
                    "does not parse"
                } else {
                    "is missing"
                };
                report.problems.push(Problem {
                    line: 0,
                    seq: None,
                    kind: ProblemKind::HeadMissing,
                    message: format!(
                        "{AUDIT_HEAD_FILE} {why}: the head beside the log is gone, so a cut or rewritten tail is caught only by other anchors"
                    ),
                });
            }
            (Some(a), Some(last)) if a.head.seq < last.seq => {
                report.problems.push(Problem {
                    line: 0,
                    seq: Some(a.head.seq),
                    kind: ProblemKind::HeadBehindLog,
                    message: format!(
                        "the log goes on {} line(s) past the head {AUDIT_HEAD_FILE} records (seq {}, the log ends at seq {}): lines were appended without updating the head, or the head was rolled back",
                        last.seq - a.head.seq,
                        a.head.seq,
                        last.seq
                    ),
                });
            }
            _ => {}
        }
        report.ok = report.problems.is_empty();
        report.anchors_checked = all_anchors.len() as u64;
        Ok(report)
    }
}

/// Call `f` with each line of the log `file` (without its newline), each kept to
/// [`MAX_AUDIT_LINE_BYTES`] ([`read_line_capped`]): for readers that skip what does not parse.
pub(crate) fn each_line(file: File, path: &Path, mut f: impl FnMut(&[u8])) -> Result<()> {
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = read_line_capped(&mut reader, &mut line, MAX_AUDIT_LINE_BYTES)
            .map_err(|e| Error::io("read audit log", path, e))?;
        if n == 0 {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        f(&line);
    }
}

/// Read one line (through its newline) into `buf`, keeping at most `max` bytes of it: the
/// rest of a longer line is consumed and dropped (so the kept bytes never parse as an
/// entry). Returns the bytes consumed (0 at the end); the newline, if any, is kept.
fn read_line_capped(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        if done && take > room {
            buf.push(b'\n');
        }
        r.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

/// Parse one line (without newline) strictly.
fn parse_entry(bytes: &[u8]) -> std::result::Result<AuditEntry, String> {
    let s = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    if s.trim().is_empty() {
        return Err("empty line".into());
    }
    serde_json::from_str::<AuditEntry>(s).map_err(|e| e.to_string())
}

/// Read the end of the log: the last complete line and any bytes after its newline.
/// Reads backwards in growing windows, so cost does not depend on the log's length.
fn read_tail(file: &mut File, path: &Path) -> Result<Tail> {
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    read_tail_before(file, path, len)
}

fn read_tail_before(file: &mut File, path: &Path, len: u64) -> Result<Tail> {
    if len == 0 {
        return Ok(Tail {
            last: None,
            fragment: None,
        });
    }
    let mut window: u64 = 64 * 1024;
    loop {
        let w = window.min(len);
        let start = len - w;
        let mut data = vec![0u8; usize::try_from(w).unwrap_or(usize::MAX)];
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io("read", path, e))?;
        file.read_exact(&mut data)
            .map_err(|e| Error::io("read", path, e))?;
        match data.iter().rposition(|&b| b == b'\n') {
            None if start == 0 => {
                return Ok(Tail {
                    last: None,
                    fragment: Some((0, data)),
                });
            }
            None => {}
            Some(i) => {
                let fragment =
                    (i + 1 < data.len()).then(|| (start + i as u64 + 1, data[i + 1..].to_vec()));
                match data[..i].iter().rposition(|&b| b == b'\n') {
                    Some(j) => {
                        return Ok(Tail {
                            last: Some((start + j as u64 + 1, data[j + 1..i].to_vec())),
                            fragment,
                        });
                    }
                    None if start == 0 => {
                        return Ok(Tail {
                            last: Some((0, data[..i].to_vec())),
                            fragment,
                        });
                    }
                    None => {}
                }
            }
        }
        if w >= len || w > (MAX_AUDIT_LINE_BYTES as u64) * 2 {
            return Err(Error::input(
                path,
                format!(
                    "input limit: its last line is longer than {MAX_AUDIT_LINE_BYTES} bytes, the limit for an audit log line: nexusmon did not write it"
                ),
            )
            .with_hint("run `nexusmon audit verify` and restore the log from a backup"));
        }
        window = window.saturating_mul(2);
    }
}

/// The last complete line before `offset` (after dropping an unparseable line there).
fn truncated_tail(file: &mut File, path: &Path, offset: u64) -> Result<Option<(u64, Vec<u8>)>> {
    Ok(read_tail_before(file, path, offset)?.last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::govern::init::init;

    fn new_log() -> (tempfile::TempDir, StateDir, AuditLog) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(".nexusmon");
        init(&dir).unwrap();
        let s = StateDir::open(&dir).unwrap();
        let log = AuditLog::open(&s).unwrap();
        (t, s, log)
    }

    fn lines(log: &AuditLog) -> Vec<String> {
        std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn appends_chain_and_verify() {
        let (_t, _s, log) = new_log();
        let h0 = log.head().unwrap();
        assert_eq!(h0.seq, 0);
        let h1 = log
            .append(AuditKind::RunStarted, json!({"run_id": "r1"}))
            .unwrap();
        assert_eq!(h1.seq, 1);
        let h2 = log
            .append(AuditKind::RunSealed, json!({"run_id": "r1"}))
            .unwrap();
        assert_eq!(log.head().unwrap(), h2);
        let ls = lines(&log);
        assert_eq!(ls.len(), 3);
        let e1: AuditEntry = serde_json::from_str(&ls[1]).unwrap();
        assert_eq!(e1.prev, blake3_hex(ls[0].as_bytes()));
        assert_eq!(e1.kind, "run-started");
        let r = log.verify(&[]).unwrap();
        assert!(r.ok, "{r:#?}");
        assert_eq!(r.lines, 3);
        assert_eq!(r.anchors_checked, 1);
        assert_eq!(r.head, Some(h2.clone()));
        assert_eq!(log.head_anchor().unwrap().head, h2);
    }

    #[test]
    fn lines_are_sorted_compact_json() {
        let (_t, _s, log) = new_log();
        log.append(AuditKind::Evolution, json!({"z": 1, "a": 2}))
            .unwrap();
        let ls = lines(&log);
        assert!(
            ls[1].starts_with("{\"data\":{\"a\":2,\"z\":1},\"kind\":\"evolution\",\"prev\":"),
            "{}",
            ls[1]
        );
    }

    fn twenty_line_log() -> (tempfile::TempDir, StateDir, AuditLog) {
        let (t, s, log) = new_log();
        for i in 1..20 {
            log.append(
                AuditKind::RunStarted,
                json!({"run_id": format!("run-{i}"), "note": "x"}),
            )
            .unwrap();
        }
        assert_eq!(lines(&log).len(), 20);
        (t, s, log)
    }

    #[test]
    fn editing_any_line_is_caught_and_named() {
        let (_t, _s, log) = twenty_line_log();
        let original = std::fs::read_to_string(log.path()).unwrap();
        for target in 0..20 {
            let mut ls: Vec<String> = original.lines().map(str::to_string).collect();
            // A plausible edit: change one character of the payload, keep valid JSON.
            ls[target] = if target == 0 {
                ls[target].replacen("\"ts\":\"", "\"ts\":\"1", 1)
            } else {
                ls[target].replacen("run-", "RUN-", 1)
            };
            std::fs::write(log.path(), ls.join("\n") + "\n").unwrap();
            let r = log.verify(&[]).unwrap();
            assert!(!r.ok, "edit of line {} went unnoticed", target + 1);
            assert_eq!(r.first_bad_line, Some(target as u64 + 1), "{r:#?}");
            assert_eq!(r.problems.len(), 1, "{r:#?}");
            assert_eq!(r.problems[0].kind, ProblemKind::Changed);
        }
        std::fs::write(log.path(), &original).unwrap();
        assert!(log.verify(&[]).unwrap().ok);
    }

    #[test]
    fn editing_a_prev_field_names_that_line() {
        let (_t, _s, log) = twenty_line_log();
        let mut ls = lines(&log);
        let e: AuditEntry = serde_json::from_str(&ls[7]).unwrap();
        ls[7] = ls[7].replace(&e.prev, &blake3_hex(b"forged"));
        std::fs::write(log.path(), ls.join("\n") + "\n").unwrap();
        let r = log.verify(&[]).unwrap();
        assert_eq!(r.first_bad_line, Some(8), "{r:#?}");
        assert_eq!(r.problems.len(), 1, "{r:#?}");
    }

    #[test]
    fn unparseable_middle_line_is_named() {
        let (_t, _s, log) = twenty_line_log();
        let mut ls = lines(&log);
        ls[4] = "{not json".into();
        std::fs::write(log.path(), ls.join("\n") + "\n").unwrap();
        let r = log.verify(&[]).unwrap();
        assert_eq!(r.first_bad_line, Some(5), "{r:#?}");
        assert_eq!(r.problems[0].kind, ProblemKind::Unparseable);
        assert_eq!(r.problems.len(), 1, "{r:#?}");
    }

    #[test]
    fn removing_a_line_is_a_seq_gap() {
        let (_t, _s, log) = twenty_line_log();
        let mut ls = lines(&log);
        ls.remove(9);
        std::fs::write(log.path(), ls.join("\n") + "\n").unwrap();
        let r = log.verify(&[]).unwrap();
        assert_eq!(r.first_bad_line, Some(10), "{r:#?}");
        assert_eq!(r.problems[0].kind, ProblemKind::SeqGap);
        assert!(r.problems[0].message.contains("seq 9..=9"), "{r:#?}");
    }

    #[test]
    fn swapping_two_lines_is_caught() {
        let (_t, _s, log) = twenty_line_log();
        let mut ls = lines(&log);
        ls.swap(5, 6);
        std::fs::write(log.path(), ls.join("\n") + "\n").unwrap();
        let r = log.verify(&[]).unwrap();
        assert!(!r.ok);
        assert_eq!(r.first_bad_line, Some(6), "{r:#?}");
    }

    #[test]
    fn cutting_the_tail_fails_only_through_an_anchor() {
        let (_t, s, log) = twenty_line_log();
        let anchored = log.head().unwrap();
        let mut ls = lines(&log);
        ls.truncate(15);
        std::fs::write(log.path(), ls.join("\n") + "\n").unwrap();
        // Rewrite the state-dir anchor too, as someone cutting the tail would.
        std::fs::write(
            s.file(AUDIT_HEAD_FILE),
            serde_json::to_vec(&log.head().unwrap()).unwrap(),
        )
        .unwrap();
        assert!(
            log.verify(&[]).unwrap().ok,
            "the chain alone cannot see a cut tail"
        );
        let r = log
            .verify(&[Anchor {
                source: "out/LATEST".into(),
                head: anchored,
            }])
            .unwrap();
        assert!(!r.ok);
        assert_eq!(r.problems.len(), 1, "{r:#?}");
        assert_eq!(r.problems[0].kind, ProblemKind::AnchorBeyondEnd);
        assert!(
            r.problems[0]
                .message
                .contains("out/LATEST anchors seq 19 but the log ends at seq 14"),
            "{r:#?}"
        );
    }

    #[test]
    fn a_rewritten_line_at_an_anchored_seq_is_named() {
        let (_t, _s, log) = twenty_line_log();
        let anchored = Anchor {
            source: "bundle".into(),
            head: AuditHead {
                seq: 12,
                blake3: blake3_hex(lines(&log)[12].as_bytes()),
            },
        };
        // Rewrite history from line 13 on with a recomputed chain: the chain is valid, the
        // anchor is not.
        let mut ls = lines(&log);
        ls.truncate(12);
        std::fs::write(log.path(), ls.join("\n") + "\n").unwrap();
        log.append(AuditKind::RunStarted, json!({"run_id": "forged"}))
            .unwrap();
        let r = log.verify(std::slice::from_ref(&anchored)).unwrap();
        assert!(!r.ok);
        assert_eq!(r.first_bad_line, Some(13), "{r:#?}");
    }

    #[test]
    fn a_missing_head_file_or_a_log_longer_than_its_head_is_a_problem() {
        let (_t, s, log) = twenty_line_log();
        let head = std::fs::read(s.file(AUDIT_HEAD_FILE)).unwrap();
        std::fs::remove_file(s.file(AUDIT_HEAD_FILE)).unwrap();
        let r = log.verify(&[]).unwrap();
        assert!(!r.ok);
        assert_eq!(r.problems[0].kind, ProblemKind::HeadMissing, "{r:#?}");
        // A head two lines behind the log: appended without the head, or rolled back.
        std::fs::write(s.file(AUDIT_HEAD_FILE), &head).unwrap();
        log.append(AuditKind::Evolution, json!({})).unwrap();
        log.append(AuditKind::Evolution, json!({})).unwrap();
        std::fs::write(s.file(AUDIT_HEAD_FILE), &head).unwrap();
        let r = log.verify(&[]).unwrap();
        assert!(!r.ok);
        assert_eq!(r.problems[0].kind, ProblemKind::HeadBehindLog, "{r:#?}");
        assert!(r.problems[0].message.contains("2 line(s)"), "{r:#?}");
        // A head beyond the log (the tail cut): the anchor check names it.
        let mut ls = lines(&log);
        ls.truncate(15);
        std::fs::write(log.path(), ls.join("\n") + "\n").unwrap();
        let r = log.verify(&[]).unwrap();
        assert_eq!(r.problems[0].kind, ProblemKind::AnchorBeyondEnd, "{r:#?}");
    }

    #[test]
    fn torn_last_line_is_recovered_and_recorded() {
        let (_t, s, log) = new_log();
        log.append(AuditKind::RunStarted, json!({"run_id": "r1"}))
            .unwrap();
        let good = std::fs::read(log.path()).unwrap();
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        let torn: &[u8] = b"{\"data\":{\"run_id\":\"r2\"},\"ki";
        f.write_all(torn).unwrap();
        drop(f);
        let r = log.verify(&[]).unwrap();
        assert!(r.ok, "a torn tail is not tampering: {r:#?}");
        assert_eq!(r.notes.len(), 1, "{r:#?}");
        assert_eq!(log.head().unwrap().seq, 1);

        let h = log
            .append(AuditKind::RunSealed, json!({"run_id": "r1"}))
            .unwrap();
        assert_eq!(h.seq, 3);
        let ls = lines(&log);
        assert_eq!(ls.len(), 4);
        assert!(std::fs::read(log.path()).unwrap().starts_with(&good));
        let rec: AuditEntry = serde_json::from_str(&ls[2]).unwrap();
        assert_eq!(rec.kind, "recovered");
        assert_eq!(rec.data["reason"], "no trailing newline");
        assert_eq!(rec.data["dropped_bytes"], torn.len());
        let saved = s.dir().join(rec.data["saved_as"].as_str().unwrap());
        assert_eq!(std::fs::read(saved).unwrap(), torn);
        let r = log.verify(&[]).unwrap();
        assert!(r.ok, "{r:#?}");
        assert_eq!(r.recovered_entries, 1);
    }

    #[test]
    fn unparseable_last_line_is_recovered() {
        let (_t, _s, log) = new_log();
        log.append(AuditKind::RunStarted, json!({"run_id": "r1"}))
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(b"garbage\n").unwrap();
        drop(f);
        log.append(AuditKind::RunSealed, json!({})).unwrap();
        let ls = lines(&log);
        assert_eq!(ls.len(), 4);
        let rec: AuditEntry = serde_json::from_str(&ls[2]).unwrap();
        assert_eq!(rec.data["reason"], "unparseable");
        assert_eq!(rec.data["dropped_bytes"], 8);
        assert!(log.verify(&[]).unwrap().ok);
    }

    #[test]
    fn editing_the_last_line_is_caught_by_the_head_anchor() {
        let (_t, _s, log) = twenty_line_log();
        let mut ls = lines(&log);
        ls[19] = ls[19].replacen("run-", "RUN-", 1);
        std::fs::write(log.path(), ls.join("\n") + "\n").unwrap();
        let r = log.verify(&[]).unwrap();
        assert_eq!(r.first_bad_line, Some(20), "{r:#?}");
        assert!(r.problems[0].message.contains(AUDIT_HEAD_FILE), "{r:#?}");
    }

    #[test]
    fn concurrent_appends_keep_the_chain() {
        let (_t, _s, log) = new_log();
        std::thread::scope(|sc| {
            for t in 0..4 {
                let log = log.clone();
                sc.spawn(move || {
                    for i in 0..10 {
                        log.append(AuditKind::Evolution, json!({"t": t, "i": i}))
                            .unwrap();
                    }
                });
            }
        });
        let r = log.verify(&[]).unwrap();
        assert!(r.ok, "{r:#?}");
        assert_eq!(r.lines, 41);
    }

    #[test]
    fn tail_reading_crosses_window_boundaries() {
        let (_t, _s, log) = new_log();
        let big = "x".repeat(200 * 1024);
        log.append(AuditKind::Evolution, json!({"big": big}))
            .unwrap();
        log.append(AuditKind::Evolution, json!({"big": big}))
            .unwrap();
        assert_eq!(log.head().unwrap().seq, 2);
        assert!(log.verify(&[]).unwrap().ok);
    }
}
