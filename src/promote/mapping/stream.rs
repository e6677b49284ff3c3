//! The fold of `promote` with memory flat in the number of rows: every fact (one row of
//! one packet, and the rows already in `runtime_links.json`) goes through an external sort
//! ([`crate::util::extsort`]) into one sorted file of records, profile by profile definition
//! by probe, in a private temporary directory beside the mappings directory. The three
//! mapping files are then written from that file, walked in order: the links a row at a
//! time, the signatures in two walks (the conflicts come first in the file, and each
//! profile's conflict count before its scenarios), the op summary from running counts. The
//! bytes are those of the in-memory fold (`fold` in the parent module; generated tests
//! compare the two).
//!
//! What stays in memory: the packets consumed (their links), one probe's distinct
//! behaviours with their packets and runs, the op counts (per operation and per profile
//! id), one conflict count per profile definition, and the conflicts themselves (for the
//! command's summary). Nothing per row.
//!
//! The sorted files are hashed as written and as read ([`crate::util::extsort`]); every
//! mapping file is written through [`fsx::write_atomic_from`] from a walk that fails if a
//! sorted file changed, so nothing changed on disk in between is ever renamed into place.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::{Behaviour, Conflict, Fact, Mapped, agreed, conflict_sides, count};
use crate::model::mapping::{
    Backing, DigestContext, LINKS_FILE, MAPPING_VERSION, MappedScenario, OP_SUMMARY_FILE, OpCounts,
    OpRuntimeSummary, PacketLink, SIGNATURES_FILE,
};
use crate::model::plan::Expectation;
use crate::model::registry::Operation;
use crate::util::digest::Digest;
use crate::util::extsort::{Merge, Run, Sorter, merge};
use crate::util::{fsx, json};
use crate::{Error, Result};

/// Bytes of records held before a sorted run is spilled.
pub(super) const SORT_BUDGET: usize = 8 << 20;

/// One sorted record: a profile definition's digest context (sorted before its rows, the
/// weakest first), or one of its rows under its probe id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct Rec {
    p: String,
    k: String,
    i: Item,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // one per record; boxing a row costs an allocation each
enum Item {
    C(DigestContext),
    R(String, Backing),
}

fn weight_of(b: &Backing) -> usize {
    b.packet.len()
        + b.run_id.len()
        + b.artifact_index_blake3.len()
        + b.scenario_id.len()
        + 2 * b.probe_id.len()
        + b.probe_digest.as_ref().map_or(0, |d| d.blake3.len())
        + b.decision.len()
        + b.attribution.len()
        + b.stage.len()
        + b.oracle.len()
}

/// Feeds facts into a sorter, with one context record per profile definition seen in a row.
pub(super) struct Facts {
    sorter: Sorter<Rec>,
    last: Option<(String, String, DigestContext)>,
}

impl Facts {
    pub(super) fn new(dir: &Path, name: &str) -> Self {
        Self {
            sorter: Sorter::new(dir, name, SORT_BUDGET),
            last: None,
        }
    }

    pub(super) fn push(&mut self, f: Fact) -> Result<()> {
        let head = (f.profile_id, f.profile_key, f.context);
        if self.last.as_ref() != Some(&head) {
            let w = head.0.len() + head.1.len();
            self.sorter.push(
                Rec {
                    p: head.0.clone(),
                    k: head.1.clone(),
                    i: Item::C(head.2),
                },
                w,
            )?;
            self.last = Some(head.clone());
        }
        let w = head.0.len() + head.1.len() + weight_of(&f.backing);
        let probe = f.backing.probe_id.clone();
        self.sorter.push(
            Rec {
                p: head.0,
                k: head.1,
                i: Item::R(probe, f.backing),
            },
            w,
        )
    }

    pub(super) fn finish(self) -> Result<Run> {
        self.sorter.finish()
    }
}

/// A walk over sorted records, one event at a time.
enum Ev<'a> {
    Group(&'a str, &'a str, DigestContext),
    Probe(&'a str),
    Row(&'a Backing),
    EndProbe,
    EndGroup,
}

fn walk(recs: Merge<Rec>, f: &mut dyn FnMut(Ev<'_>) -> Result<()>) -> Result<()> {
    let mut group: Option<(String, String)> = None;
    let mut probe: Option<String> = None;
    for rec in recs {
        let rec = rec?;
        let same = group
            .as_ref()
            .is_some_and(|(p, k)| *p == rec.p && *k == rec.k);
        match rec.i {
            // Contexts sort before rows, the weakest first: the group's is the first.
            Item::C(_) if same => {}
            Item::C(ctx) => {
                if probe.take().is_some() {
                    f(Ev::EndProbe)?;
                }
                if group.is_some() {
                    f(Ev::EndGroup)?;
                }
                f(Ev::Group(&rec.p, &rec.k, ctx))?;
                group = Some((rec.p, rec.k));
            }
            Item::R(..) if !same => {
                return Err(Error::runner(
                    "promote: a sorted row without its profile's context record",
                ));
            }
            Item::R(pr, b) => {
                if probe.as_deref() != Some(pr.as_str()) {
                    if probe.is_some() {
                        f(Ev::EndProbe)?;
                    }
                    f(Ev::Probe(&pr))?;
                    probe = Some(pr);
                }
                f(Ev::Row(&b))?;
            }
        }
    }
    if probe.is_some() {
        f(Ev::EndProbe)?;
    }
    if group.is_some() {
        f(Ev::EndGroup)?;
    }
    Ok(())
}

/// One probe's rows folded as they pass: what [`super::map_probe`] computes from them all.
#[derive(Default)]
pub(super) struct ProbeAcc {
    first_scenario: Option<String>,
    sides: BTreeMap<Behaviour, (BTreeSet<String>, BTreeSet<String>)>,
    expected: BTreeSet<Expectation>,
    control: bool,
    packets: BTreeSet<String>,
}

impl ProbeAcc {
    /// Add one row (rows come in their sorted order).
    pub(super) fn add(&mut self, b: &Backing) {
        if self.first_scenario.is_none() {
            self.first_scenario = Some(b.scenario_id.clone());
        }
        let side = self.sides.entry(Behaviour::of(b)).or_default();
        side.0.insert(b.packet.clone());
        side.1.insert(b.run_id.clone());
        self.expected.insert(b.expected);
        self.control |= b.control;
        self.packets.insert(b.packet.clone());
    }

    /// The probe mapped: the agreed behaviour, or `conflict` in each field the rows
    /// disagree on (with the conflict and its sides).
    pub(super) fn finish(self, profile_id: &str, key: &str, probe_id: &str) -> Mapped {
        let behaviours = &self.sides;
        let (decision, c1) = agreed(behaviours.keys().map(|b| b.decision.as_str()));
        let (attribution, c2) = agreed(behaviours.keys().map(|b| b.attribution.as_str()));
        let (stage, c3) = agreed(behaviours.keys().map(|b| b.stage.as_str()));
        let (oracle, c4) = agreed(behaviours.keys().map(|b| b.oracle.as_str()));
        let digests: BTreeSet<Option<&String>> =
            behaviours.keys().map(|b| b.probe_digest.as_ref()).collect();
        let operations: BTreeSet<Operation> = behaviours.keys().map(|b| b.operation).collect();
        let c5 = digests.len() > 1;
        let c6 = operations.len() > 1;
        let conflict = c1 || c2 || c3 || c4 || c5 || c6;
        let probe_digest = if c5 {
            None
        } else {
            digests.into_iter().next().flatten().map(|d| Digest {
                blake3: d.clone(),
                sha256: None,
            })
        };
        let operation = operations
            .iter()
            .next()
            .copied()
            .unwrap_or(Operation::FileRead);
        let scenario_id = self
            .first_scenario
            .clone()
            .unwrap_or_else(|| format!("{profile_id}:{probe_id}"));
        let conflict_record = conflict.then(|| {
            let fields = [
                (c2, "attribution"),
                (c1, "decision"),
                (c6, "operation"),
                (c4, "oracle"),
                (c5, "probe_digest"),
                (c3, "stage"),
            ]
            .into_iter()
            .filter(|(c, _)| *c)
            .map(|(_, name)| name.to_string())
            .collect();
            Conflict {
                profile_id: profile_id.to_string(),
                profile_digest: key.to_string(),
                probe_id: probe_id.to_string(),
                scenario_id: scenario_id.clone(),
                fields,
                sides: conflict_sides(&self.sides),
            }
        });
        let signature_input = serde_json::json!({
            "probe_id": probe_id,
            "probe_digest": if c5 { Some(super::CONFLICT.to_string()) } else { probe_digest.as_ref().map(|d| d.blake3.clone()) },
            "decision": decision,
            "attribution": attribution,
            "stage": stage,
        });
        Mapped {
            scenario: MappedScenario {
                scenario_id,
                probe_digest,
                operation,
                decision,
                attribution,
                stage,
                oracle,
                expected: self.expected.into_iter().collect(),
                control: self.control,
                conflict,
                packets: self.packets.len() as u64,
            },
            conflict: conflict_record,
            signature_input,
        }
    }
}

/// Pretty JSON written as `to_sorted_pretty` lays it out, a container at a time (the caller
/// gives keys in sorted order).
struct Pw<'a> {
    w: &'a mut dyn Write,
    /// Per open container: whether it has no entry yet.
    empty: Vec<bool>,
}

fn wio(e: std::io::Error) -> Error {
    Error::runner("cannot write a mapping file").with_source(e)
}

impl<'a> Pw<'a> {
    fn new(w: &'a mut dyn Write) -> Self {
        Self {
            w,
            empty: Vec::new(),
        }
    }

    fn indent(&mut self) -> Result<()> {
        for _ in 0..self.empty.len() {
            self.w.write_all(b"  ").map_err(wio)?;
        }
        Ok(())
    }

    fn open(&mut self, c: u8) -> Result<()> {
        self.w.write_all(&[c]).map_err(wio)?;
        self.empty.push(true);
        Ok(())
    }

    /// Start an entry of the innermost container.
    fn item(&mut self) -> Result<()> {
        let first = self.empty.last_mut().map(|e| std::mem::replace(e, false));
        self.w
            .write_all(if first == Some(true) { b"\n" } else { b",\n" })
            .map_err(wio)?;
        self.indent()
    }

    fn key(&mut self, k: &str) -> Result<()> {
        self.item()?;
        serde_json::to_writer(&mut *self.w, k).map_err(|e| Error::runner("JSON").with_source(e))?;
        self.w.write_all(b": ").map_err(wio)
    }

    fn close(&mut self, c: u8) -> Result<()> {
        let empty = self.empty.pop().unwrap_or(true);
        if !empty {
            self.w.write_all(b"\n").map_err(wio)?;
            self.indent()?;
        }
        self.w.write_all(&[c]).map_err(wio)
    }

    /// A whole value at the current position.
    fn leaf<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
        let text = json::to_sorted_pretty(v)?;
        let text = text.strip_suffix(b"\n").unwrap_or(&text);
        let pad = "  ".repeat(self.empty.len());
        for (i, line) in text.split(|b| *b == b'\n').enumerate() {
            if i > 0 {
                self.w.write_all(b"\n").map_err(wio)?;
                self.w.write_all(pad.as_bytes()).map_err(wio)?;
            }
            self.w.write_all(line).map_err(wio)?;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        self.w.write_all(b"\n").map_err(wio)
    }
}

/// Opens a profile id's object when the id changes (closing the previous one).
struct ProfileKeys {
    last: Option<String>,
}

impl ProfileKeys {
    fn enter(&mut self, pw: &mut Pw<'_>, pid: &str) -> Result<()> {
        if self.last.as_deref() != Some(pid) {
            if self.last.is_some() {
                pw.close(b'}')?;
            }
            pw.key(pid)?;
            pw.open(b'{')?;
            self.last = Some(pid.to_string());
        }
        Ok(())
    }

    fn leave(&mut self, pw: &mut Pw<'_>) -> Result<()> {
        if self.last.take().is_some() {
            pw.close(b'}')?;
        }
        Ok(())
    }
}

fn head(pw: &mut Pw<'_>, packets: &BTreeMap<String, PacketLink>) -> Result<()> {
    let consumed: Vec<&String> = packets.keys().collect();
    pw.key("consumed_packets")?;
    pw.leaf(&consumed)?;
    pw.key("mapping_version")?;
    pw.leaf(&MAPPING_VERSION)
}

/// `runtime_links.json` from the sorted records.
fn write_links(
    w: &mut dyn Write,
    packets: &BTreeMap<String, PacketLink>,
    recs: Merge<Rec>,
) -> Result<()> {
    let mut pw = Pw::new(w);
    pw.open(b'{')?;
    head(&mut pw, packets)?;
    pw.key("packets")?;
    pw.leaf(packets)?;
    pw.key("profiles")?;
    pw.open(b'{')?;
    let mut ids = ProfileKeys { last: None };
    walk(recs, &mut |ev| match ev {
        Ev::Group(pid, key, ctx) => {
            ids.enter(&mut pw, pid)?;
            pw.key(key)?;
            pw.open(b'{')?;
            pw.key("digest_context")?;
            pw.leaf(&ctx)?;
            pw.key("probes")?;
            pw.open(b'{')
        }
        Ev::Probe(p) => {
            pw.key(p)?;
            pw.open(b'[')
        }
        Ev::Row(b) => {
            pw.item()?;
            pw.leaf(b)
        }
        Ev::EndProbe => pw.close(b']'),
        Ev::EndGroup => {
            pw.close(b'}')?;
            pw.close(b'}')
        }
    })?;
    ids.leave(&mut pw)?;
    pw.close(b'}')?;
    pw.close(b'}')?;
    pw.end()
}

/// What the signatures' first walk counts.
#[derive(Default)]
pub(super) struct Counted {
    /// Conflicts per profile definition, in order.
    per_group: Vec<u64>,
    pub(super) ops: BTreeMap<String, OpCounts>,
    pub(super) totals: OpCounts,
    /// Profile definitions.
    pub(super) profiles: usize,
    /// Every conflict, in order (kept only when asked).
    pub(super) conflicts: Vec<Conflict>,
    pub(super) n_conflicts: usize,
}

/// `runtime_signatures.json` from the sorted records (`recs` gives a fresh walk each call).
fn write_signatures(
    w: &mut dyn Write,
    packets: &BTreeMap<String, PacketLink>,
    recs: &dyn Fn() -> Result<Merge<Rec>>,
    keep_conflicts: bool,
) -> Result<Counted> {
    let mut pw = Pw::new(w);
    let mut c = Counted::default();
    pw.open(b'{')?;
    pw.key("conflicts")?;
    pw.open(b'[')?;
    {
        let mut at: Option<(String, String)> = None;
        let mut probe = String::new();
        let mut acc = ProbeAcc::default();
        walk(recs()?, &mut |ev| {
            match ev {
                Ev::Group(pid, key, _) => {
                    c.per_group.push(0);
                    c.profiles += 1;
                    at = Some((pid.to_string(), key.to_string()));
                }
                Ev::Probe(p) => {
                    p.clone_into(&mut probe);
                    acc = ProbeAcc::default();
                }
                Ev::Row(b) => acc.add(b),
                Ev::EndProbe => {
                    let (pid, key) = at
                        .as_ref()
                        .map(|(p, k)| (p.as_str(), k.as_str()))
                        .unwrap_or_default();
                    let m = std::mem::take(&mut acc).finish(pid, key, &probe);
                    if let Some(conflict) = m.conflict {
                        if let Some(n) = c.per_group.last_mut() {
                            *n += 1;
                        }
                        c.n_conflicts += 1;
                        pw.item()?;
                        pw.leaf(&conflict)?;
                        if keep_conflicts {
                            c.conflicts.push(conflict);
                        }
                    }
                    count(
                        c.ops
                            .entry(m.scenario.operation.as_str().to_string())
                            .or_default(),
                        pid,
                        &m.scenario,
                    );
                    count(&mut c.totals, pid, &m.scenario);
                }
                Ev::EndGroup => {}
            }
            Ok(())
        })?;
    }
    pw.close(b']')?;
    head(&mut pw, packets)?;
    pw.key("profiles")?;
    pw.open(b'{')?;
    let mut ids = ProfileKeys { last: None };
    let mut at: Option<(String, String)> = None;
    let mut probe = String::new();
    let mut acc = ProbeAcc::default();
    let mut group = 0usize;
    let mut sig = blake3::Hasher::new();
    let mut first = true;
    walk(recs()?, &mut |ev| match ev {
        Ev::Group(pid, key, ctx) => {
            ids.enter(&mut pw, pid)?;
            pw.key(key)?;
            pw.open(b'{')?;
            pw.key("conflicts")?;
            pw.leaf(&c.per_group.get(group).copied().unwrap_or_default())?;
            group += 1;
            pw.key("digest_context")?;
            pw.leaf(&ctx)?;
            pw.key("profile_digest")?;
            pw.leaf(&Digest {
                blake3: key.to_string(),
                sha256: None,
            })?;
            pw.key("profile_id")?;
            pw.leaf(pid)?;
            pw.key("scenarios")?;
            pw.open(b'{')?;
            at = Some((pid.to_string(), key.to_string()));
            sig = blake3::Hasher::new();
            sig.update(b"[");
            first = true;
            Ok(())
        }
        Ev::Probe(p) => {
            p.clone_into(&mut probe);
            acc = ProbeAcc::default();
            Ok(())
        }
        Ev::Row(b) => {
            acc.add(b);
            Ok(())
        }
        Ev::EndProbe => {
            let (pid, key) = at
                .as_ref()
                .map(|(p, k)| (p.as_str(), k.as_str()))
                .unwrap_or_default();
            let m = std::mem::take(&mut acc).finish(pid, key, &probe);
            pw.key(&probe)?;
            pw.leaf(&m.scenario)?;
            // The signature is the blake3 of the canonical JSON of the array of inputs:
            // `[` items joined by `,` `]` (RFC 8785 has no whitespace).
            if !first {
                sig.update(b",");
            }
            first = false;
            sig.update(&json::canonical(&m.signature_input)?);
            Ok(())
        }
        Ev::EndGroup => {
            pw.close(b'}')?;
            sig.update(b"]");
            pw.key("signature")?;
            pw.leaf(&Digest {
                blake3: sig.finalize().to_hex().to_string(),
                sha256: None,
            })?;
            pw.close(b'}')
        }
    })?;
    ids.leave(&mut pw)?;
    pw.close(b'}')?;
    pw.close(b'}')?;
    pw.end()?;
    Ok(c)
}

fn op_summary(packets: &BTreeMap<String, PacketLink>, c: &Counted) -> OpRuntimeSummary {
    OpRuntimeSummary {
        mapping_version: MAPPING_VERSION,
        consumed_packets: packets.keys().cloned().collect(),
        operations: c.ops.clone(),
        totals: c.totals.clone(),
    }
}

/// The blake3 (hex) of what `fill` writes.
fn digest_of(fill: &mut dyn FnMut(&mut dyn Write) -> Result<()>) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    {
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, &mut hasher);
        fill(&mut w)?;
        w.flush().map_err(wio)?;
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// The three files' digests (links, signatures, op summary) and the signatures' counts.
pub(super) struct Derived {
    pub(super) digests: [String; 3],
    pub(super) counted: Counted,
}

/// Derive the three files from `packets` and the sorted `runs` without writing them.
pub(super) fn derive(
    packets: &BTreeMap<String, PacketLink>,
    runs: &[&Run],
    keep_conflicts: bool,
) -> Result<Derived> {
    let recs = || merge::<Rec>(runs);
    let links = digest_of(&mut |w| write_links(w, packets, recs()?))?;
    let mut counted = None;
    let sigs = digest_of(&mut |w| {
        counted = Some(write_signatures(w, packets, &recs, keep_conflicts)?);
        Ok(())
    })?;
    let counted = counted.unwrap_or_default();
    let ops_doc = op_summary(packets, &counted);
    let ops = digest_of(&mut |w| json::write_sorted_pretty(&ops_doc, &mut { w }))?;
    Ok(Derived {
        digests: [links, sigs, ops],
        counted,
    })
}

/// Write each of the three files into `dir` (atomically, `runtime_links.json` first)
/// whose bytes differ from `d`'s digest of it; returns which were written.
pub(super) fn write_changed(
    dir: &Path,
    packets: &BTreeMap<String, PacketLink>,
    runs: &[&Run],
    d: &Derived,
) -> Result<[bool; 3]> {
    let recs = || merge::<Rec>(runs);
    let same = |name: &str, want: &str| {
        crate::util::digest::blake3_file(&dir.join(name)).is_ok_and(|(_, have)| have == want)
    };
    let mut wrote = [false; 3];
    if !same(LINKS_FILE, &d.digests[0]) {
        fsx::write_atomic_from(
            &dir.join(LINKS_FILE),
            |w| write_links(w, packets, recs()?),
            fsx::AtomicWrite::default(),
            || {},
        )?;
        wrote[0] = true;
    }
    if !same(SIGNATURES_FILE, &d.digests[1]) {
        fsx::write_atomic_from(
            &dir.join(SIGNATURES_FILE),
            |w| write_signatures(w, packets, &recs, false).map(|_| ()),
            fsx::AtomicWrite::default(),
            || {},
        )?;
        wrote[1] = true;
    }
    if !same(OP_SUMMARY_FILE, &d.digests[2]) {
        let doc = op_summary(packets, &d.counted);
        fsx::write_atomic_from(
            &dir.join(OP_SUMMARY_FILE),
            |mut w| json::write_sorted_pretty(&doc, &mut w),
            fsx::AtomicWrite::default(),
            || {},
        )?;
        wrote[2] = true;
    }
    Ok(wrote)
}

/// The mappings already in `dir`, read as a stream when they are exactly what
/// `runtime_links.json` derives (the files `promote` writes): the consumed packets and the
/// links' rows as a sorted run. `Ok(None)` when the stream read cannot vouch for them (a
/// file missing, too large, not parsed, or not byte-identical to its derivation): the
/// caller then reads them the old way, which accepts or refuses them with its messages.
/// An I/O error of the temporary directory is returned as such.
pub(super) fn read_existing(
    dir: &Path,
    max: u64,
    tmp: &Path,
) -> Result<Option<(BTreeMap<String, PacketLink>, Run)>> {
    for name in [LINKS_FILE, SIGNATURES_FILE, OP_SUMMARY_FILE] {
        match std::fs::symlink_metadata(dir.join(name)) {
            Ok(m) if m.is_file() && m.len() <= max => {}
            _ => return Ok(None),
        }
    }
    let path = dir.join(LINKS_FILE);
    let Ok(f) = std::fs::File::open(&path) else {
        return Ok(None);
    };
    let mut hashing = Hashing {
        inner: f.take(max),
        hasher: blake3::Hasher::new(),
    };
    let mut sink = Sink {
        facts: Facts::new(tmp, "existing"),
        err: None,
    };
    let parsed = {
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(
            64 * 1024,
            &mut hashing,
        ));
        LinksSeed { sink: &mut sink }
            .deserialize(&mut de)
            .and_then(|head| de.end().map(|()| head))
    };
    if let Some(e) = sink.err {
        return Err(e);
    }
    let Ok(head) = parsed else {
        return Ok(None);
    };
    if std::io::copy(&mut hashing, &mut std::io::sink()).is_err() {
        return Ok(None);
    }
    let have_links = hashing.hasher.finalize().to_hex().to_string();
    if head.mapping_version != MAPPING_VERSION
        || !head.consumed_packets.iter().eq(head.packets.keys())
    {
        return Ok(None);
    }
    let run = sink.facts.finish()?;
    let d = derive(&head.packets, &[&run], false)?;
    let have = |name: &str| {
        crate::util::digest::blake3_file(&dir.join(name))
            .ok()
            .map(|(_, h)| h)
    };
    let same = d.digests[0] == have_links
        && have(SIGNATURES_FILE).as_deref() == Some(d.digests[1].as_str())
        && have(OP_SUMMARY_FILE).as_deref() == Some(d.digests[2].as_str());
    Ok(same.then_some((head.packets, run)))
}

struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

struct Sink {
    facts: Facts,
    err: Option<Error>,
}

impl Sink {
    fn push<E: de::Error>(&mut self, f: Fact) -> std::result::Result<(), E> {
        self.facts.push(f).map_err(|e| {
            self.err = Some(e);
            E::custom("temporary file")
        })
    }
}

/// The head of `runtime_links.json` (its rows go to the sink).
struct Head {
    mapping_version: u32,
    consumed_packets: Vec<String>,
    packets: BTreeMap<String, PacketLink>,
}

struct LinksSeed<'a> {
    sink: &'a mut Sink,
}

impl<'de> DeserializeSeed<'de> for LinksSeed<'_> {
    type Value = Head;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Head, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LinksSeed<'_> {
    type Value = Head;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("runtime links")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Head, A::Error> {
        let (mut version, mut consumed, mut packets, mut profiles) = (None, None, None, false);
        while let Some(k) = m.next_key::<String>()? {
            match k.as_str() {
                "mapping_version" if version.is_none() => version = Some(m.next_value()?),
                "consumed_packets" if consumed.is_none() => consumed = Some(m.next_value()?),
                "packets" if packets.is_none() => packets = Some(m.next_value()?),
                "profiles" if !profiles => {
                    m.next_value_seed(Profiles {
                        sink: &mut *self.sink,
                    })?;
                    profiles = true;
                }
                _ => return Err(de::Error::custom("unexpected key")),
            }
        }
        match (version, consumed, packets, profiles) {
            (Some(mapping_version), Some(consumed_packets), Some(packets), true) => Ok(Head {
                mapping_version,
                consumed_packets,
                packets,
            }),
            _ => Err(de::Error::custom("missing key")),
        }
    }
}

/// profile id → profile key → linked profile.
struct Profiles<'a> {
    sink: &'a mut Sink,
}

impl<'de> DeserializeSeed<'de> for Profiles<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Profiles<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("profiles")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<(), A::Error> {
        while let Some(pid) = m.next_key::<String>()? {
            m.next_value_seed(Versions {
                sink: &mut *self.sink,
                pid: &pid,
            })?;
        }
        Ok(())
    }
}

struct Versions<'a> {
    sink: &'a mut Sink,
    pid: &'a str,
}

impl<'de> DeserializeSeed<'de> for Versions<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Versions<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("profile versions")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = m.next_key::<String>()? {
            m.next_value_seed(Linked {
                sink: &mut *self.sink,
                pid: self.pid,
                key: &key,
            })?;
        }
        Ok(())
    }
}

/// One linked profile: `digest_context`, then `probes` (the sorted layout `promote`
/// writes; any other is left to the whole-file reader).
struct Linked<'a> {
    sink: &'a mut Sink,
    pid: &'a str,
    key: &'a str,
}

impl<'de> DeserializeSeed<'de> for Linked<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Linked<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a linked profile")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<(), A::Error> {
        if m.next_key::<String>()?.as_deref() != Some("digest_context") {
            return Err(de::Error::custom("layout"));
        }
        let context: DigestContext = m.next_value()?;
        if m.next_key::<String>()?.as_deref() != Some("probes") {
            return Err(de::Error::custom("layout"));
        }
        m.next_value_seed(Probes {
            sink: &mut *self.sink,
            pid: self.pid,
            key: self.key,
            context,
        })?;
        if m.next_key::<String>()?.is_some() {
            return Err(de::Error::custom("layout"));
        }
        Ok(())
    }
}

/// probe id → rows (or, as [`Rows`], one probe's rows).
struct Probes<'a> {
    sink: &'a mut Sink,
    pid: &'a str,
    key: &'a str,
    context: DigestContext,
}

impl<'de> DeserializeSeed<'de> for Probes<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Probes<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probes")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<(), A::Error> {
        while m.next_key::<de::IgnoredAny>()?.is_some() {
            m.next_value_seed(Rows {
                sink: &mut *self.sink,
                pid: self.pid,
                key: self.key,
                context: self.context,
            })?;
        }
        Ok(())
    }
}

struct Rows<'a> {
    sink: &'a mut Sink,
    pid: &'a str,
    key: &'a str,
    context: DigestContext,
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> std::result::Result<(), A::Error> {
        while let Some(backing) = s.next_element::<Backing>()? {
            self.sink.push(Fact {
                profile_id: self.pid.to_string(),
                profile_key: self.key.to_string(),
                context: self.context,
                backing,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{facts_of_links, fold, read_existing as read_whole};
    use super::*;
    use crate::util::testrng::Rng;

    /// Ids that sort and escape in awkward ways.
    const IDS: &[&str] = &[
        "a", "b", "a.b", "a-b", "Z", "é", "q\"u", "t\\ab", "n\nl", "0", "ab",
    ];

    fn id(rng: &mut Rng, n: usize) -> String {
        let base = *rng.pick(&IDS[..n.min(IDS.len())]);
        if rng.chance(10) {
            format!("{base}{}", "x".repeat(rng.below(100)))
        } else {
            base.to_string()
        }
    }

    fn gen_facts(rng: &mut Rng) -> (BTreeMap<String, PacketLink>, Vec<Fact>) {
        let n_packets = 1 + rng.below(4usize);
        let packets: Vec<String> = (0..n_packets).map(|i| format!("pk{i}")).collect();
        let links: BTreeMap<String, PacketLink> = packets
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    PacketLink {
                        run_id: format!("run-{p}"),
                        plan_id: "plan".into(),
                        plan_digest: Digest::blake3_of(b"plan"),
                        artifact_index: Digest::both_of(p.as_bytes()),
                        bundle_pointer: format!("out/{p}"),
                        kernel_release: rng.chance(50).then(|| "6.18".to_string()),
                    },
                )
            })
            .collect();
        let n = rng.below(200usize);
        let decisions = ["allow", "deny", "error"];
        let ops = [
            Operation::FileRead,
            Operation::FileWrite,
            Operation::TcpConnect,
        ];
        let facts = (0..n)
            .map(|_| {
                let profile = id(rng, 6);
                let probe = id(rng, 11);
                let packet = rng.pick(&packets).clone();
                let conflicty = rng.chance(30);
                Fact {
                    profile_id: profile.clone(),
                    profile_key: format!("k{}", rng.below(2)),
                    context: if rng.chance(15) {
                        DigestContext::Plan
                    } else {
                        DigestContext::ProfileDefinition
                    },
                    backing: Backing {
                        run_id: format!("run-{packet}"),
                        artifact_index_blake3: format!("idx-{packet}"),
                        packet,
                        scenario_id: format!("{profile}:{probe}{}", rng.below(2)),
                        probe_id: probe.clone(),
                        probe_digest: (!rng.chance(10)).then(|| {
                            Digest::blake3_of(
                                format!("{probe}{}", u8::from(conflicty && rng.chance(20)))
                                    .as_bytes(),
                            )
                        }),
                        operation: if conflicty { *rng.pick(&ops) } else { ops[0] },
                        expected: if rng.chance(50) {
                            Expectation::Allow
                        } else {
                            Expectation::Deny
                        },
                        control: rng.chance(10),
                        decision: if conflicty {
                            rng.pick(&decisions).to_string()
                        } else {
                            "deny".into()
                        },
                        attribution: if conflicty && rng.chance(30) {
                            "ambient".into()
                        } else {
                            "profile-shaped".into()
                        },
                        stage: "operation".into(),
                        oracle: if conflicty && rng.chance(20) {
                            "allow".into()
                        } else {
                            "deny".into()
                        },
                    },
                }
            })
            .collect();
        (links, facts)
    }

    fn sorted_run(dir: &Path, name: &str, facts: &[Fact], budget: usize) -> Run {
        let mut f = Facts {
            sorter: Sorter::new(dir, name, budget),
            last: None,
        };
        for x in facts {
            f.push(x.clone()).unwrap();
        }
        f.finish().unwrap()
    }

    /// The files the in-memory fold gives, as `promote` wrote them before.
    fn whole(packets: &BTreeMap<String, PacketLink>, facts: &[Fact]) -> [Vec<u8>; 3] {
        let (s, o, l) = fold(packets, facts).unwrap();
        [
            json::to_sorted_pretty(&l).unwrap(),
            json::to_sorted_pretty(&s).unwrap(),
            json::to_sorted_pretty(&o).unwrap(),
        ]
    }

    const NAMES: [&str; 3] = [LINKS_FILE, SIGNATURES_FILE, OP_SUMMARY_FILE];

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn the_streamed_fold_writes_the_bytes_of_the_whole_fold() {
        let tmp = tempfile::tempdir().unwrap();
        for seed in 0..40u64 {
            let mut rng = Rng(seed);
            let (packets, facts) = gen_facts(&mut rng);
            let want = whole(&packets, &facts);
            // Facts split between two sources (the links already there and new packets),
            // each sorted within a small budget: many runs, merged several times.
            let cut = rng.below(facts.len() + 1);
            let budget = 1 + rng.below(40_000usize);
            let a = sorted_run(tmp.path(), &format!("a{seed}"), &facts[..cut], budget);
            let b = sorted_run(tmp.path(), &format!("b{seed}"), &facts[cut..], budget);
            let d = derive(&packets, &[&a, &b], true).unwrap();
            for (i, w) in want.iter().enumerate() {
                assert_eq!(
                    d.digests[i],
                    blake3::hash(w).to_hex().to_string(),
                    "seed {seed}: {}",
                    NAMES[i]
                );
            }
            let (s, o, l) = fold(&packets, &facts).unwrap();
            assert_eq!(d.counted.conflicts, s.conflicts, "seed {seed}");
            assert_eq!(d.counted.n_conflicts, s.conflicts.len());
            assert_eq!(d.counted.totals, o.totals);
            assert_eq!(
                d.counted.profiles,
                l.profiles.values().map(BTreeMap::len).sum::<usize>()
            );
            let out = tmp.path().join(format!("m{seed}"));
            std::fs::create_dir(&out).unwrap();
            assert_eq!(
                write_changed(&out, &packets, &[&a, &b], &d).unwrap(),
                [true; 3]
            );
            for (i, w) in want.iter().enumerate() {
                assert_eq!(
                    &std::fs::read(out.join(NAMES[i])).unwrap(),
                    w,
                    "seed {seed}"
                );
            }
            // Unchanged files are not written again.
            assert_eq!(
                write_changed(&out, &packets, &[&a, &b], &d).unwrap(),
                [false; 3]
            );
            // The links read back as a stream are the facts of the links read whole.
            let t = tmp.path().join(format!("t{seed}"));
            std::fs::create_dir(&t).unwrap();
            let (p2, run) = read_existing(&out, u64::MAX, &t)
                .unwrap()
                .unwrap_or_else(|| panic!("seed {seed}: written mappings not vouched for"));
            assert_eq!(p2, packets);
            let again = sorted_run(
                tmp.path(),
                &format!("c{seed}"),
                &facts_of_links(&l),
                1 << 20,
            );
            let got: Vec<Rec> = run.reader().unwrap().map(Result::unwrap).collect();
            let want_recs: Vec<Rec> = again.reader().unwrap().map(Result::unwrap).collect();
            assert_eq!(got, want_recs, "seed {seed}");
        }
    }

    /// A changed mappings directory: the stream reader vouches only for what the whole
    /// reader accepts with the same content (everything else goes to the whole reader,
    /// whose messages the user sees).
    #[test]
    fn the_stream_reader_vouches_only_for_what_the_whole_reader_accepts() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut vouched, mut refused) = (0, 0);
        for seed in 0..80u64 {
            let mut rng = Rng(seed);
            let (packets, facts) = gen_facts(&mut rng);
            let out = tmp.path().join(format!("m{seed}"));
            std::fs::create_dir(&out).unwrap();
            for (i, w) in whole(&packets, &facts).iter().enumerate() {
                std::fs::write(out.join(NAMES[i]), w).unwrap();
            }
            let name = *rng.pick(&NAMES);
            let path = out.join(name);
            let mut bytes = std::fs::read(&path).unwrap();
            match rng.below(7) {
                0 => {} // untouched
                1 => {
                    let at = rng.below(bytes.len());
                    bytes[at] = bytes[at].wrapping_add(1 + rng.below(3u8));
                }
                2 => bytes.truncate(rng.below(bytes.len())),
                3 => {
                    // Reformatted: the same JSON, compact.
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    bytes = serde_json::to_vec(&v).unwrap();
                }
                4 => {
                    // A duplicated line (a duplicated key or row).
                    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
                    let at = rng.below(lines.len());
                    let mut v: Vec<&[u8]> = lines.clone();
                    v.insert(at, lines[at]);
                    bytes = v.join(&b"\n"[..]);
                }
                5 => {
                    let _ = std::fs::remove_file(&path);
                    bytes.clear();
                }
                _ => bytes.splice(0..0, b" ".iter().copied()).for_each(drop),
            }
            if !bytes.is_empty() {
                std::fs::write(&path, &bytes).unwrap();
            }
            let max = if rng.chance(10) {
                rng.below(bytes.len() as u64 + 10)
            } else {
                u64::MAX
            };
            let whole_says = read_whole(&out, max);
            let t = tmp.path().join(format!("t{seed}"));
            std::fs::create_dir(&t).unwrap();
            match read_existing(&out, max, &t).unwrap() {
                Some((p, run)) => {
                    vouched += 1;
                    let e = whole_says
                        .unwrap_or_else(|e| {
                            panic!("seed {seed}: vouched for what the whole reader refuses: {e}")
                        })
                        .unwrap_or_else(|| panic!("seed {seed}: vouched for no mappings"));
                    assert_eq!(p, e.links.packets, "seed {seed}");
                    let again = sorted_run(
                        tmp.path(),
                        &format!("w{seed}"),
                        &facts_of_links(&e.links),
                        1 << 20,
                    );
                    let got: Vec<Rec> = run.reader().unwrap().map(Result::unwrap).collect();
                    let want: Vec<Rec> = again.reader().unwrap().map(Result::unwrap).collect();
                    assert_eq!(got, want, "seed {seed}");
                }
                None => refused += 1,
            }
        }
        assert!(
            vouched > 8 && refused > 30,
            "{vouched} vouched, {refused} left to the whole reader"
        );
    }
}
