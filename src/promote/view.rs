//! Reading one run for the review surfaces (`report`, `diff`, `review`): a bundle
//! directory, an out root (through `LATEST`) or a promotion packet (its bundle, through the
//! packet's pointers) becomes a [`RunView`]. The bundle is read strictly when it verifies
//! and without verification otherwise ([`BundleSource`]), so a tampered bundle is still
//! shown, as not valid; the packet is derived again from the bundle, so promotability and
//! the governance slot are the bundle's own, never a packet's claim.
//!
//! What needs the state directory (whether the index is anchored in the audit log, whether
//! a bundle signature verifies against the trust file) comes from the [`Attestor`] the
//! caller passes (`govern::review` passes governance's; [`super::Unattested`] checks the
//! signature against the key it carries only and anchors nothing).

mod head;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::PointerContext;
use super::attest::{Attestation, Attestor};
use super::derive::derive_packet;
use super::source::BundleSource;
use super::verify::{context_of, read_packet};
use crate::bundle::check::status_word;
use crate::bundle::lines;
use crate::bundle::{
    BASELINE_RESULTS, INDEX_FILE, NORMALIZED_ROWS, ORACLE_RESULTS, RUNTIME_RESULTS,
};
use crate::error::ErrorKind;
use crate::model::results::{
    ApplyPreflight, Lane, MismatchPacket, NormalizedRow, Observation, OracleVerdict, RunManifest,
    StreamCapture, Summary,
};
use crate::model::view::{
    AnchorState, AttemptBrief, Integrity, LaneDetail, RunView, SignatureState, Verdict,
};
use crate::{Error, Result};

/// The bundle directory `path` names: a packet file resolves through its pointers (relative
/// to `root` or the packet's directory); a directory is a bundle or an out root.
pub fn bundle_dir_of(path: &Path, root: &Path) -> Result<PathBuf> {
    if path.is_file() {
        let (packet, _) = read_packet(path)?;
        let ctx = context_of(&packet, path, root)?;
        return Ok(ctx.resolve(&ctx.bundle_pointer));
    }
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    Err(Error::input(path, "not found").with_hint(
        "pass a bundle directory, an out root (resolved through LATEST) or a promotion packet",
    ))
}

/// Read the run at `path` (a bundle, an out root, or a packet) into a [`RunView`], its
/// signature and anchor as `attestor` decides them.
pub fn load(path: &Path, root: &Path, attestor: &dyn Attestor) -> Result<RunView> {
    let dir = bundle_dir_of(path, root)?;
    let src = BundleSource::open(&dir)?;
    of_source(&src, root, attestor)
}

/// The [`RunView`] of a bundle already opened (strictly when it verified): what [`load`]
/// returns, for a caller that keeps the [`BundleSource`] to read members later (the
/// cockpit serves a verified bundle's logs through it, each re-verified as it is read).
pub fn of_source(src: &BundleSource, root: &Path, attestor: &dyn Attestor) -> Result<RunView> {
    let mut view = head_of(src, attestor)?;
    let unreadable = &mut view.unreadable;
    let mut get = |rel: &str| -> Result<Option<Vec<u8>>> {
        let b = src.read(rel)?;
        if b.is_none() {
            unreadable.push(rel.to_string());
        }
        Ok(b)
    };
    let mismatches: Vec<MismatchPacket> = get("mismatch_packets.jsonl")?
        .map(|b| {
            b.split(|c| *c == b'\n')
                .filter(|l| !l.is_empty())
                .filter_map(|l| serde_json::from_slice(l).ok())
                .collect()
        })
        .unwrap_or_default();
    let shared = src.shared_values()?;
    if shared.is_none() {
        unreadable.push(lines::SHARED_FILE.to_string());
    }
    let shared = shared.unwrap_or_default();
    // Result files a line at a time; one that is missing or does not read is listed
    // as unreadable and shown as empty.
    let mut collect = |rel: &str, each: &mut dyn FnMut(Value) -> Result<()>| -> Result<()> {
        match src.for_each_line(rel, &shared, each) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                unreadable.push(rel.to_string());
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::Findings && !src.verified() => {
                unreadable.push(rel.to_string());
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    let mut rows: Vec<NormalizedRow> = Vec::new();
    collect(NORMALIZED_ROWS, &mut |v| {
        rows.extend(serde_json::from_value(v).ok());
        Ok(())
    })?;
    let mut oracle: Vec<OracleVerdict> = Vec::new();
    collect(ORACLE_RESULTS, &mut |v| {
        oracle.extend(serde_json::from_value(v).ok());
        Ok(())
    })?;
    let mut details: BTreeMap<String, crate::model::view::ScenarioDetail> = BTreeMap::new();
    for file in [BASELINE_RESULTS, RUNTIME_RESULTS] {
        let each = &mut |v: Value| {
            if let Ok(o) = serde_json::from_value::<Observation>(v) {
                details
                    .entry(o.scenario_id.clone())
                    .or_default()
                    .insert(o.lane, lane_detail(&o));
            }
            Ok(())
        };
        match src.for_each_line(file, &shared, each) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Findings && !src.verified() => {}
            Err(e) => return Err(e),
        }
    }
    view.packet = match src.dir.parent() {
        Some(parent) => PointerContext::for_emit(&src.dir, root, parent)
            .and_then(|ctx| derive_packet(src, &ctx, attestor))
            .ok(),
        None => None,
    };
    view.rows = rows;
    view.mismatch_count = mismatches.len();
    view.mismatches = mismatches;
    view.oracle = oracle;
    view.details = details;
    Ok(view)
}

/// The head of a run's view ([`head_of`]) with the packet derived from the bundle and
/// its mismatch packets counted: what a report written a row at a time needs beside
/// [`BundleRows`], which walks the rest.
pub fn head_with_packet(
    src: &BundleSource,
    root: &Path,
    attestor: &dyn Attestor,
) -> Result<RunView> {
    // What a report shows of the manifest is its facts; the lists as long as the plan
    // (the selection, the plan, the definitions) are checked but not kept (`head`).
    let mut view = head_with(src, attestor, ManifestRead::Head)?;
    let mut n = 0usize;
    walk_packets(src, &mut |_| {
        n += 1;
        Ok(())
    })?;
    view.mismatch_count = n;
    view.packet = match src.dir.parent() {
        Some(parent) => PointerContext::for_emit(&src.dir, root, parent)
            .and_then(|ctx| derive_packet(src, &ctx, attestor))
            .ok(),
        None => None,
    };
    Ok(view)
}

/// A bundle's rows for a report written a row at a time ([`crate::report::RowSource`]):
/// every walk reads `runtime_events.normalized.jsonl` again and merge-joins the oracle
/// verdicts, both executing lanes' observations and the mismatch packets by scenario id
/// (every file is sorted by it), each file re-verified against the index as it is read
/// to its end, so memory is one scenario's lines whatever the run's size.
///
/// What [`of_source`] keeps, this hands out the same way: a line that does not parse as
/// its type is skipped; a file that is missing is empty; a file that does not read (or
/// is not sorted) in a bundle that did not verify ends there, and in one that did is an
/// error. A sealed bundle the runner wrote always has each file strictly sorted (the
/// writer refuses a line out of order); a line out of order in one that was sealed by
/// hand is an error naming it instead of a page in another order.
pub struct BundleRows<'s> {
    src: &'s BundleSource,
    shared: lines::SharedValues,
}

impl std::fmt::Debug for BundleRows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleRows")
            .field("dir", &self.src.dir)
            .finish_non_exhaustive()
    }
}

/// The file of mismatch packets (plain JSON Lines, no shared values).
const MISMATCH_PACKETS: &str = "mismatch_packets.jsonl";

/// One sorted file read forward, one item ahead.
struct Cursor<T> {
    reader: Option<lines::LineReader<std::fs::File>>,
    rel: &'static str,
    path: PathBuf,
    next: Option<T>,
    last: Option<String>,
    /// Equal keys may follow each other (several packets of one scenario).
    repeats: bool,
    plain: bool,
    verified: bool,
}

impl<T: DeserializeOwned> Cursor<T> {
    fn open(src: &BundleSource, rel: &'static str, repeats: bool, plain: bool) -> Result<Self> {
        Ok(Self {
            reader: src.line_reader(rel)?,
            rel,
            path: src.dir.join(rel),
            next: None,
            last: None,
            repeats,
            plain,
            verified: src.verified(),
        })
    }

    /// The next item that parses as `T`, `None` at the end (the file then checked
    /// against the index) or where an unverified file stops reading.
    fn pull(&mut self, shared: &lines::SharedValues, key: fn(&T) -> &str) -> Result<Option<T>> {
        loop {
            let Some(r) = self.reader.as_mut() else {
                return Ok(None);
            };
            let got = if self.plain {
                r.next_raw()
                    .map(|l| l.map(|b| serde_json::from_slice::<T>(b).ok()))
            } else {
                r.next_item::<Value>(shared)
                    .map(|v| v.map(|v| serde_json::from_value::<T>(v).ok()))
            };
            let item = match got {
                Ok(Some(Some(item))) => item,
                Ok(Some(None)) => continue,
                Ok(None) => {
                    if let Some(r) = self.reader.take() {
                        r.finish()?;
                    }
                    return Ok(None);
                }
                Err(e) if e.kind() == ErrorKind::Findings && !self.verified => {
                    self.reader = None;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let k = key(&item);
            if let Some(last) = &self.last
                && (k < last.as_str() || (k == last.as_str() && !self.repeats))
            {
                if !self.verified {
                    self.reader = None;
                    return Ok(None);
                }
                return Err(Error::new(
                    ErrorKind::Findings,
                    format!(
                        "`{k}` comes after `{last}`: {} is not sorted by scenario id as the runner writes it",
                        self.rel
                    ),
                )
                .with_path(&self.path));
            }
            self.last = Some(k.to_string());
            return Ok(Some(item));
        }
    }

    /// Skip items below `id`; take those equal to it into `each`.
    fn join(
        &mut self,
        shared: &lines::SharedValues,
        key: fn(&T) -> &str,
        id: &str,
        each: &mut dyn FnMut(T),
    ) -> Result<()> {
        loop {
            if self.next.is_none() {
                self.next = self.pull(shared, key)?;
            }
            let Some(item) = self.next.take() else {
                return Ok(());
            };
            match key(&item).cmp(id) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    each(item);
                    if !self.repeats {
                        return Ok(());
                    }
                }
                std::cmp::Ordering::Greater => {
                    self.next = Some(item);
                    return Ok(());
                }
            }
        }
    }

    /// Read to the end (checking the file against the index).
    fn drain(&mut self, shared: &lines::SharedValues, key: fn(&T) -> &str) -> Result<()> {
        self.next = None;
        while self.pull(shared, key)?.is_some() {}
        Ok(())
    }
}

impl<'s> BundleRows<'s> {
    /// The rows of `src` (its shared values read once).
    pub fn new(src: &'s BundleSource) -> Result<Self> {
        Ok(Self {
            src,
            shared: src.shared_values()?.unwrap_or_default(),
        })
    }
}

/// Every mismatch packet of `src` (`mismatch_packets.jsonl`), in the file's order, as
/// [`of_source`] reads them: a line that is not a packet is skipped.
pub fn walk_packets(
    src: &BundleSource,
    each: &mut dyn FnMut(&MismatchPacket) -> Result<()>,
) -> Result<()> {
    {
        let mut c: Cursor<MismatchPacket> = Cursor::open(src, MISMATCH_PACKETS, true, true)?;
        // The packets' own order is the file's: nothing here is joined, so none is refused.
        c.last = None;
        loop {
            let Some(r) = c.reader.as_mut() else {
                return Ok(());
            };
            match r.next_raw() {
                Ok(Some(b)) => {
                    if let Ok(p) = serde_json::from_slice::<MismatchPacket>(b) {
                        each(&p)?;
                    }
                }
                Ok(None) => {
                    if let Some(r) = c.reader.take() {
                        r.finish()?;
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Findings && !c.verified => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

fn row_key(r: &NormalizedRow) -> &str {
    &r.scenario_id
}
fn oracle_key(v: &OracleVerdict) -> &str {
    &v.scenario_id
}
fn obs_key(o: &Observation) -> &str {
    &o.scenario_id
}
fn packet_key(p: &MismatchPacket) -> &str {
    &p.scenario_id
}

impl crate::report::RowSource for BundleRows<'_> {
    fn rows(&self, each: &mut dyn FnMut(crate::report::RowItem<'_>) -> Result<()>) -> Result<()> {
        let sh = &self.shared;
        let mut rows: Cursor<NormalizedRow> =
            Cursor::open(self.src, NORMALIZED_ROWS, false, false)?;
        let mut oracle: Cursor<OracleVerdict> =
            Cursor::open(self.src, ORACLE_RESULTS, false, false)?;
        let mut base: Cursor<Observation> = Cursor::open(self.src, BASELINE_RESULTS, false, false)?;
        let mut run: Cursor<Observation> = Cursor::open(self.src, RUNTIME_RESULTS, false, false)?;
        let mut packets: Cursor<MismatchPacket> =
            Cursor::open(self.src, MISMATCH_PACKETS, true, true)?;
        while let Some(row) = rows.pull(sh, row_key)? {
            let id = row.scenario_id.as_str();
            let mut verdict = None;
            oracle.join(sh, oracle_key, id, &mut |v| verdict = Some(v))?;
            let mut details = crate::model::view::ScenarioDetail::new();
            for c in [&mut base, &mut run] {
                c.join(sh, obs_key, id, &mut |o| {
                    details.insert(o.lane, lane_detail(&o));
                })?;
            }
            let mut mine = Vec::new();
            packets.join(sh, packet_key, id, &mut |p| mine.push(p))?;
            let refs: Vec<&MismatchPacket> = mine.iter().collect();
            each(crate::report::RowItem {
                row: &row,
                oracle: verdict.as_ref(),
                details: (!details.is_empty()).then_some(&details),
                packets: &refs,
            })?;
        }
        oracle.drain(sh, oracle_key)?;
        base.drain(sh, obs_key)?;
        run.drain(sh, obs_key)?;
        packets.drain(sh, packet_key)
    }

    fn mismatches(&self, each: &mut dyn FnMut(&MismatchPacket) -> Result<()>) -> Result<()> {
        walk_packets(self.src, each)
    }
}

/// The head of a run's view: everything [`of_source`] reads but the per-scenario files
/// (rows, oracle verdicts, lane details, mismatch packets, left empty) and the derived
/// packet (`None`): the manifest, summary, preflight and verdict, what a reader that
/// walks the rows itself (`diff`, a merge join of two runs' rows) needs beside them.
pub fn head_of(src: &BundleSource, attestor: &dyn Attestor) -> Result<RunView> {
    head_with(src, attestor, ManifestRead::Whole)
}

/// [`head_of`] with the run manifest already read (as the caller chose to read it).
pub fn head_with_manifest(
    src: &BundleSource,
    attestor: &dyn Attestor,
    manifest: RunManifest,
) -> Result<RunView> {
    head_with(src, attestor, ManifestRead::Given(Box::new(manifest)))
}

/// How [`head_with`] has the run manifest.
enum ManifestRead {
    /// Read whole.
    Whole,
    /// Read for a report's head ([`head::manifest_head`]).
    Head,
    /// Already read by the caller.
    Given(Box<RunManifest>),
}

fn head_with(src: &BundleSource, attestor: &dyn Attestor, read: ManifestRead) -> Result<RunView> {
    let attestation = attestor.attest(src)?;
    let mut unreadable = Vec::new();
    let mut get = |rel: &str| -> Result<Option<Vec<u8>>> {
        let b = src.read(rel)?;
        if b.is_none() {
            unreadable.push(rel.to_string());
        }
        Ok(b)
    };
    let manifest: Option<RunManifest> = match read {
        ManifestRead::Given(m) => Some(*m),
        ManifestRead::Whole => parse(get("run_manifest.json")?),
        ManifestRead::Head => get("run_manifest.json")?.and_then(|b| head::manifest_head(&b)),
    };
    let summary: Option<Summary> = parse(get("summary.json")?);
    let preflight = parse::<ApplyPreflight>(get("apply_preflight.json")?)
        .map(|p| p.profiles)
        .unwrap_or_default();
    let index_anchor = src.index.as_ref().and_then(|i| i.audit_head.clone());
    let verdict = Verdict {
        integrity: if src.verified() && src.report.is_valid() {
            Integrity::Valid
        } else {
            Integrity::Invalid
        },
        problems: src
            .report
            .problems
            .iter()
            .map(|p| {
                format!(
                    "{} {}: {}",
                    p.kind.as_str(),
                    p.path.as_deref().unwrap_or("-"),
                    p.detail
                )
            })
            .collect(),
        bundle_status: src
            .status
            .as_ref()
            .map(|s| status_word(s.status).to_string()),
        signature: signature_state(&attestation),
        anchor: anchor_state(&attestation, index_anchor.map(|h| h.seq)),
    };
    Ok(RunView {
        bundle_dir: src.dir.clone(),
        run_id: src.run_id(),
        manifest,
        summary,
        rows: Vec::new(),
        mismatches: Vec::new(),
        mismatch_count: 0,
        preflight,
        oracle: Vec::new(),
        details: BTreeMap::new(),
        packet: None,
        verdict,
        unreadable,
    })
}

/// The view's signature state from the attestation's.
fn signature_state(a: &Attestation) -> SignatureState {
    use crate::model::packet::SignatureState as S;
    let s = &a.signature;
    let signer = s.signer.clone().unwrap_or_else(|| "an unnamed key".into());
    match s.state {
        S::Unsigned if s.required => SignatureState::Invalid {
            detail: "unsigned, and the trust file requires signed bundles".into(),
        },
        S::Unsigned => SignatureState::Unsigned,
        S::Unchecked => SignatureState::Unverified {
            detail: "the signature could not be checked (no readable index)".into(),
        },
        S::Signed => SignatureState::Unverified {
            detail: format!(
                "verifies over the index with the key it carries ({signer}); no trust file names its runners"
            ),
        },
        S::Verified => SignatureState::Valid {
            signer: "a runner of the trust file".into(),
            fingerprint: signer,
        },
        S::Invalid => SignatureState::Invalid {
            detail: s
                .problem
                .clone()
                .unwrap_or_else(|| "the signature does not verify".into()),
        },
    }
}

/// The view's anchor state from the attestation's (`seq`: the head the index anchors).
fn anchor_state(a: &Attestation, seq: Option<u64>) -> AnchorState {
    use crate::model::packet::AnchorState as A;
    match (a.anchor.state, seq) {
        (A::Anchored, s) => AnchorState::Anchored {
            seq: a.anchor.sealed_seq.or(s).unwrap_or_default(),
        },
        (A::NotAnchored, _) => AnchorState::NotAnchored {
            detail: a
                .anchor
                .problem
                .clone()
                .unwrap_or_else(|| "the audit log does not anchor this index".into()),
        },
        (A::Unchecked, Some(seq)) => AnchorState::NotChecked { seq },
        (A::Unchecked, None) => AnchorState::NotRecorded,
    }
}

/// The bytes of the index of the bundle a view was read from (for signature checks).
pub fn index_bytes(view: &RunView) -> Result<Vec<u8>> {
    let p = view.bundle_dir.join(INDEX_FILE);
    std::fs::read(&p).map_err(|e| Error::io("read", &p, e))
}

fn parse<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> Option<T> {
    bytes.and_then(|b| serde_json::from_slice(&b).ok())
}

fn logs_of(out: &mut Vec<String>, s: &StreamCapture) {
    if let Some(l) = &s.log
        && !out.contains(l)
    {
        out.push(l.clone());
    }
}

fn lane_detail(o: &Observation) -> LaneDetail {
    let mut logs = Vec::new();
    for a in o.attempts.iter().chain(std::iter::once(&o.result)) {
        logs_of(&mut logs, &a.stdout);
        logs_of(&mut logs, &a.stderr);
    }
    LaneDetail {
        wall_us: o.result.rusage.wall_us,
        detail: o.result.detail.clone(),
        exit_code: o.result.exit_code,
        attempts: o
            .attempts
            .iter()
            .map(|a| AttemptBrief {
                attempt: a.attempt,
                outcome: a.outcome,
                errno_name: a.errno_name.clone(),
                detail: a.detail.clone(),
                wall_us: a.rusage.wall_us,
            })
            .collect(),
        logs,
    }
}

/// The deciding wall time of `lane` for `scenario` in `view`, if it ran.
pub fn wall_us(view: &RunView, scenario: &str, lane: Lane) -> Option<u64> {
    view.details
        .get(scenario)
        .and_then(|d| d.get(&lane))
        .map(|l| l.wall_us)
}
