//! `promote --packets P… --out DIR`: merge verified, promotable packets into the mapping
//! files (`model::mapping` documents the files, the keys and what "disagree" means).
//!
//! Every packet is verified first ([`super::verify::verify_packet`]); if any is refused,
//! nothing is written. The existing mappings in `DIR` are read back and checked (the two
//! derived files must be exactly what `runtime_links.json` gives), the new packets' rows
//! are added, and all three files are derived again from the whole set of rows: the result
//! is a pure function of the set of packets consumed, so the same packets in any order, or
//! a packet promoted twice, give the same bytes. Files are written atomically,
//! `runtime_links.json` first, under an exclusive lock on `DIR`; files whose bytes do not
//! change are not rewritten. A governed promotion
//! ([`crate::govern::promotion::promote_and_record`]) records the change through the hook
//! of [`promote_with`], still under the lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use super::attest::Attestor;
use super::ops::NORMALIZED;
use super::verify::{Refusal, VerifiedPacket, verify_packet};
use crate::model::index::AuditHead;
use crate::model::mapping::{
    Backing, CONFLICT, Conflict, ConflictSide, DigestContext, LINKS_FILE, LinkedProfile,
    MAPPING_VERSION, MappedScenario, OP_SUMMARY_FILE, OpCounts, OpRuntimeSummary, PacketLink,
    ProfileSignature, RuntimeLinks, RuntimeSignatures, SIGNATURES_FILE,
};
use crate::model::registry::Operation;
use crate::model::results::Outcome;
use crate::util::digest::Digest;
use crate::util::{fsx, json};
use crate::{Error, Result};
use serde::de::DeserializeOwned;

mod stream;

/// What `promote` was asked to do.
#[derive(Debug, Clone)]
pub struct PromoteSettings {
    /// Packet files.
    pub packets: Vec<PathBuf>,
    /// The mappings directory (created if missing).
    pub out: PathBuf,
    /// The project root (for project-relative pointers).
    pub root: PathBuf,
    /// Largest mapping file read back (`--max-mapping-bytes`;
    /// [`crate::util::limits::MAX_MAPPING_BYTES`] by default).
    pub max_mapping_bytes: u64,
}

/// What changed in the mappings directory, for the hook of [`promote_with`].
#[derive(Debug, Clone)]
pub struct MappingsChange<'a> {
    /// The mappings directory.
    pub out: &'a Path,
    /// Packets consumed for the first time (digests).
    pub added: &'a BTreeSet<String>,
    /// Packets consumed in all.
    pub consumed: usize,
    /// Conflicts now in the signatures.
    pub conflicts: usize,
    /// blake3 of each file's new bytes, by file name.
    pub files_blake3: BTreeMap<&'a str, String>,
}

/// What `promote` did.
#[derive(Debug, Clone)]
pub struct PromoteOutcome {
    /// The mappings directory.
    pub out: PathBuf,
    /// Packets refused (nothing was written when any was).
    pub refused: Vec<Refusal>,
    /// Packets consumed for the first time (digests), sorted.
    pub added: Vec<String>,
    /// Packets already consumed (digests), sorted.
    pub already_consumed: Vec<String>,
    /// Whether any file changed.
    pub changed: bool,
    /// What the mappings now in `DIR` hold (absent when packets were refused).
    pub summary: Option<MappingsSummary>,
    /// What the hook of [`promote_with`] returned (the audit head after a governed
    /// promotion's `promotion` entry).
    pub audit_head: Option<AuditHead>,
}

/// What the mappings hold after a `promote`, for its report (the files themselves are
/// written as streams and never held).
#[derive(Debug, Clone)]
pub struct MappingsSummary {
    /// Packets consumed in all.
    pub consumed: usize,
    /// Profile definitions mapped.
    pub profiles: usize,
    /// Scenarios mapped.
    pub scenarios: u64,
    /// Every conflict, as in `runtime_signatures.json`.
    pub conflicts: Vec<Conflict>,
}

/// One scenario reported by one packet, with the profile key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Fact {
    profile_id: String,
    profile_key: String,
    context: DigestContext,
    backing: Backing,
}

/// Promote `s.packets` into `s.out` (ungoverned: nothing is recorded, no trust file).
pub fn promote(s: &PromoteSettings) -> Result<PromoteOutcome> {
    promote_with(s, &super::Unattested, |_| Ok(None))
}

/// [`promote`] with the signature and anchor facts `attestor` decides, calling `on_change`
/// when a file changed, while the lock on `s.out` is still held; its result becomes
/// [`PromoteOutcome::audit_head`].
pub fn promote_with(
    s: &PromoteSettings,
    attestor: &dyn super::Attestor,
    on_change: impl FnOnce(&MappingsChange<'_>) -> Result<Option<AuditHead>>,
) -> Result<PromoteOutcome> {
    let mut verified: Vec<VerifiedPacket> = Vec::new();
    let mut refused = Vec::new();
    for p in &s.packets {
        match verify_packet(p, &s.root, attestor)? {
            Ok(v) => verified.push(v),
            Err(r) => refused.push(r),
        }
    }
    let mut outcome = PromoteOutcome {
        out: s.out.clone(),
        refused,
        added: Vec::new(),
        already_consumed: Vec::new(),
        changed: false,
        summary: None,
        audit_head: None,
    };
    if !outcome.refused.is_empty() {
        return Ok(outcome);
    }
    fsx::create_dir_all(&s.out)?;
    let _lock = DirLock::acquire(&s.out)?;
    // Every fact goes through sorted runs in a private directory beside DIR (removed on
    // success and, by its drop, on error): memory does not grow with the rows.
    let tmp = temp_dir_beside(&s.out)?;
    let (mut packets, existing_run) =
        match stream::read_existing(&s.out, s.max_mapping_bytes, tmp.path())? {
            Some((packets, run)) => (packets, Some(run)),
            // Files the stream read cannot vouch for are read whole, as before: accepted or
            // refused with the same messages (within --max-mapping-bytes).
            None => match read_existing(&s.out, s.max_mapping_bytes)? {
                None => (BTreeMap::new(), None),
                Some(e) => {
                    let mut facts = stream::Facts::new(tmp.path(), "existing-whole");
                    for f in facts_of_links(&e.links) {
                        facts.push(f)?;
                    }
                    (e.links.packets, Some(facts.finish()?))
                }
            },
        };
    let mut added = BTreeSet::new();
    let mut already = BTreeSet::new();
    let mut new = stream::Facts::new(tmp.path(), "new");
    for v in &verified {
        if packets.contains_key(&v.digest) {
            already.insert(v.digest.clone());
            continue;
        }
        let link = facts_of_packet(v, &mut |f| new.push(f))?;
        packets.insert(v.digest.clone(), link);
        added.insert(v.digest.clone());
    }
    let new_run = new.finish()?;
    let runs: Vec<&crate::util::extsort::Run> = existing_run
        .iter()
        .chain(std::iter::once(&new_run))
        .collect();
    let derived = stream::derive(&packets, &runs, true)?;
    // Each file is written (atomically, from a walk that re-checks every sorted run) only
    // when its digest differs from the file's.
    let wrote = stream::write_changed(&s.out, &packets, &runs, &derived)?;
    let changed = wrote.iter().any(|w| *w);
    let names = [LINKS_FILE, SIGNATURES_FILE, OP_SUMMARY_FILE];
    let summary = MappingsSummary {
        consumed: packets.len(),
        profiles: derived.counted.profiles,
        scenarios: derived.counted.totals.scenarios,
        conflicts: derived.counted.conflicts,
    };
    if changed {
        outcome.audit_head = on_change(&MappingsChange {
            out: &s.out,
            added: &added,
            consumed: summary.consumed,
            conflicts: derived.counted.n_conflicts,
            files_blake3: names
                .iter()
                .zip(&derived.digests)
                .map(|(n, d)| (*n, d.clone()))
                .collect(),
        })?;
    }
    let tmp_path = tmp.path().to_path_buf();
    tmp.close().map_err(|e| Error::io("remove", &tmp_path, e))?;
    outcome.added = added.into_iter().collect();
    outcome.already_consumed = already.into_iter().collect();
    outcome.changed = changed;
    outcome.summary = Some(summary);
    Ok(outcome)
}

/// A private (0700) temporary directory in the parent of `out`, removed when dropped.
fn temp_dir_beside(out: &Path) -> Result<tempfile::TempDir> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".nexusmon-promote-")
        .tempdir_in(parent)
        .map_err(|e| Error::io("create a temporary directory in", parent, e))
}

/// The per-profile signatures and conflicts a set of packets would map to, without writing
/// anything (`report --packet`): every packet is verified as `promote` does (its bundle's
/// signature and anchor as `attestor` decides); refused ones are returned with their
/// reasons and left out of the fold.
pub fn signatures_of(
    packets: &[PathBuf],
    root: &Path,
    attestor: &dyn Attestor,
) -> Result<(Vec<VerifiedPacket>, Vec<Refusal>, RuntimeSignatures)> {
    let mut verified: Vec<VerifiedPacket> = Vec::new();
    let mut refused = Vec::new();
    for p in packets {
        match verify_packet(p, root, attestor)? {
            Ok(v) => verified.push(v),
            Err(r) => refused.push(r),
        }
    }
    let mut links = BTreeMap::new();
    let mut facts = Vec::new();
    for v in &verified {
        if links.contains_key(&v.digest) {
            continue;
        }
        let link = facts_of_packet(v, &mut |f| {
            facts.push(f);
            Ok(())
        })?;
        links.insert(v.digest.clone(), link);
    }
    let (signatures, _, _) = fold(&links, &facts)?;
    Ok((verified, refused, signatures))
}

/// An exclusive `flock` on a directory, released on drop: one `promote` at a time per
/// mappings directory.
struct DirLock {
    _dir: File,
}

impl DirLock {
    fn acquire(dir: &Path) -> Result<Self> {
        let f = File::open(dir).map_err(|e| Error::io("open for locking", dir, e))?;
        fsx::lock_exclusive(&f, dir)?;
        Ok(Self { _dir: f })
    }
}

struct Existing {
    links: RuntimeLinks,
}

/// Read and parse the mapping file `path`, refusing one over `max` bytes from its size
/// before it is read ([`crate::util::limits::MAX_MAPPING_BYTES`]).
pub fn parse_file<T: DeserializeOwned>(path: &Path, max: u64) -> Result<T> {
    let bytes = fsx::read_limited(path, max, "a mapping file", Some("--max-mapping-bytes"))?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        Error::input(path, format!("is not a valid mapping file (at `{at}`)"))
            .with_source(e.into_inner())
            .with_hint(
                "restore it from version control, or promote the packets into a new directory",
            )
    })
}

/// The mappings in `dir`, checked: all three files or none; a known version; the two
/// derived files exactly what the links give.
fn read_existing(dir: &Path, max: u64) -> Result<Option<Existing>> {
    let names = [LINKS_FILE, SIGNATURES_FILE, OP_SUMMARY_FILE];
    let present: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| std::fs::symlink_metadata(dir.join(n)).is_ok())
        .collect();
    if present.is_empty() {
        return Ok(None);
    }
    if present.len() != names.len() {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !present.contains(n))
            .collect();
        return Err(Error::input(
            dir,
            format!(
                "holds {} but not {}: the mappings are incomplete",
                present.join(", "),
                missing.join(", ")
            ),
        )
        .with_hint("restore the missing files, or promote the packets into a new directory"));
    }
    let links: RuntimeLinks = parse_file(&dir.join(LINKS_FILE), max)?;
    let signatures: RuntimeSignatures = parse_file(&dir.join(SIGNATURES_FILE), max)?;
    let ops: OpRuntimeSummary = parse_file(&dir.join(OP_SUMMARY_FILE), max)?;
    for (name, v) in [
        (LINKS_FILE, links.mapping_version),
        (SIGNATURES_FILE, signatures.mapping_version),
        (OP_SUMMARY_FILE, ops.mapping_version),
    ] {
        if v != MAPPING_VERSION {
            return Err(Error::input(
                dir.join(name),
                format!("is mapping version {v}; this build reads version {MAPPING_VERSION}"),
            ));
        }
    }
    let (s2, o2, l2) = fold(&links.packets, &facts_of_links(&links))?;
    let mut bad = Vec::new();
    if l2 != links {
        bad.push(LINKS_FILE);
    }
    if s2 != signatures {
        bad.push(SIGNATURES_FILE);
    }
    if o2 != ops {
        bad.push(OP_SUMMARY_FILE);
    }
    if !bad.is_empty() {
        return Err(Error::input(
            dir,
            format!(
                "{} {} not what runtime_links.json derives: the mappings were edited (or a promote was interrupted)",
                bad.join(", "),
                if bad.len() == 1 { "is" } else { "are" }
            ),
        )
        .with_hint("restore the directory from version control, or promote the packets listed in runtime_links.json into a new directory"));
    }
    Ok(Some(Existing { links }))
}

fn facts_of_links(links: &RuntimeLinks) -> Vec<Fact> {
    let mut out = Vec::new();
    for (profile_id, versions) in &links.profiles {
        for (key, lp) in versions {
            for rows in lp.probes.values() {
                for b in rows {
                    out.push(Fact {
                        profile_id: profile_id.clone(),
                        profile_key: key.clone(),
                        context: lp.digest_context,
                        backing: b.clone(),
                    });
                }
            }
        }
    }
    out
}

/// The link of one verified packet, and its facts, read through its pointers, each given
/// to `sink` (an error of the member's digests comes after: the caller then drops them).
fn facts_of_packet(
    v: &VerifiedPacket,
    sink: &mut dyn FnMut(Fact) -> Result<()>,
) -> Result<PacketLink> {
    // The manifest's few facts and the rows, each read as a stream (never the plan or the
    // scenario list as a tree, never the rows file whole); the rows are kept only after
    // the file checked out against the packet's digests.
    let manifest: super::facts::ManifestFacts = v
        .scan_member("run_manifest.json", &mut |r| serde_json::from_reader(r))?
        .map_err(|e| {
            Error::input(
                &v.path,
                "the bundle's run_manifest.json is not a run manifest",
            )
            .with_source(e)
        })?;
    // A value at a time as it streams (kept when the file is the one the packet records);
    // otherwise read whole, for that reading's exact error.
    let shared = match v.scan_member(crate::bundle::lines::SHARED_FILE, &mut |r| {
        crate::bundle::lines::SharedValues::read(r)
    }) {
        Ok(Some(t)) => Ok(t),
        _ => crate::bundle::lines::SharedValues::parse(
            &v.read_member(crate::bundle::lines::SHARED_FILE)?,
            Path::new(crate::bundle::lines::SHARED_FILE),
        ),
    }
    .map_err(|e| {
        Error::input(
            &v.path,
            format!("the bundle's {NORMALIZED} is not normalized events: {e}"),
        )
    })?;
    let p = &v.packet;
    let index = p.bundle.artifact_index.as_ref().ok_or_else(|| {
        Error::input(
            &v.path,
            "a promotable packet without an artifact index pointer",
        )
    })?;
    let link = PacketLink {
        run_id: p.run_id.clone(),
        plan_id: p
            .plan
            .plan_id
            .clone()
            .unwrap_or_else(|| manifest.plan_id.clone()),
        plan_digest: p
            .plan
            .plan_digest
            .clone()
            .unwrap_or_else(|| manifest.plan_digest.clone()),
        artifact_index: Digest {
            blake3: index.blake3.clone(),
            sha256: Some(index.sha256.clone()),
        },
        bundle_pointer: p.bundle.pointer.clone(),
        kernel_release: Some(manifest.host.kernel_release.clone()),
    };
    let reg = &manifest.registry_digests;
    let mut add = |r: crate::model::results::NormalizedRow| -> Result<()> {
        let Some(sc) = &r.scenario else {
            return Ok(());
        };
        if sc.outcome == Outcome::Skipped {
            return Ok(());
        }
        let (context, key) = match reg.profiles.get(&r.profile_id) {
            Some(d) => (DigestContext::ProfileDefinition, d.blake3.clone()),
            None => (DigestContext::Plan, manifest.plan_digest.blake3.clone()),
        };
        sink(Fact {
            profile_id: r.profile_id.clone(),
            profile_key: key,
            context,
            backing: Backing {
                packet: v.digest.clone(),
                run_id: p.run_id.clone(),
                artifact_index_blake3: index.blake3.clone(),
                scenario_id: r.scenario_id.clone(),
                probe_id: r.probe_id.clone(),
                probe_digest: reg.probes.get(&r.probe_id).map(|d| Digest {
                    blake3: d.blake3.clone(),
                    sha256: None,
                }),
                operation: r.operation,
                expected: r.expected,
                control: r.control,
                decision: sc.outcome.as_str().to_string(),
                attribution: r.attribution.map_or("none", |a| a.as_str()).to_string(),
                stage: sc.stage.as_str().to_string(),
                oracle: r
                    .oracle
                    .as_ref()
                    .map_or("none", |o| o.decision.as_str())
                    .to_string(),
            },
        })
    };
    // The facts are kept only if the file checks out against the packet's digests.
    v.scan_member(NORMALIZED, &mut |r| {
        crate::bundle::lines::for_each_line(r, Path::new(NORMALIZED), &shared, &mut add)
    })?
    .map_err(|e| {
        Error::input(
            &v.path,
            format!("the bundle's {NORMALIZED} is not normalized events: {e}"),
        )
    })?;
    Ok(link)
}

/// The facts compared to decide whether two reports of a scenario disagree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Behaviour {
    probe_digest: Option<String>,
    operation: Operation,
    decision: String,
    attribution: String,
    stage: String,
    oracle: String,
}

impl Behaviour {
    fn of(b: &Backing) -> Self {
        Self {
            probe_digest: b.probe_digest.as_ref().map(|d| d.blake3.clone()),
            operation: b.operation,
            decision: b.decision.clone(),
            attribution: b.attribution.clone(),
            stage: b.stage.clone(),
            oracle: b.oracle.clone(),
        }
    }
}

/// One value if every report agrees on it, else `conflict`.
fn agreed<'a>(values: impl Iterator<Item = &'a str>) -> (String, bool) {
    let set: BTreeSet<&str> = values.collect();
    if set.len() == 1 {
        (
            set.into_iter().next().unwrap_or_default().to_string(),
            false,
        )
    } else {
        (CONFLICT.to_string(), true)
    }
}

type Folded = (RuntimeSignatures, OpRuntimeSummary, RuntimeLinks);

/// probe id → its rows.
type Probes = BTreeMap<String, BTreeSet<Backing>>;
/// profile id → profile key → (digest context, probes).
type Grouped = BTreeMap<String, BTreeMap<String, (DigestContext, Probes)>>;

/// The facts grouped by profile, profile key and probe (the weakest digest context of a
/// key wins).
fn group(facts: &[Fact]) -> Grouped {
    let mut grouped: Grouped = BTreeMap::new();
    for f in facts {
        let entry = grouped
            .entry(f.profile_id.clone())
            .or_default()
            .entry(f.profile_key.clone())
            .or_insert_with(|| (f.context, BTreeMap::new()));
        entry.0 = entry.0.min(f.context);
        entry
            .1
            .entry(f.backing.probe_id.clone())
            .or_default()
            .insert(f.backing.clone());
    }
    grouped
}

/// One probe of one profile version, mapped from its rows.
struct Mapped {
    scenario: MappedScenario,
    conflict: Option<Conflict>,
    /// Its part of the profile signature's input.
    signature_input: serde_json::Value,
}

/// Map one probe's rows: the agreed behaviour, or `CONFLICT` in each field the rows
/// disagree on (with the conflict and its sides).
fn map_probe(profile_id: &str, key: &str, probe_id: &str, rows: &BTreeSet<Backing>) -> Mapped {
    let mut acc = stream::ProbeAcc::default();
    for r in rows {
        acc.add(r);
    }
    acc.finish(profile_id, key, probe_id)
}

/// Distinct behaviour → the packets and the runs reporting it.
type Sides = BTreeMap<Behaviour, (BTreeSet<String>, BTreeSet<String>)>;

/// One side per distinct behaviour, with the packets and runs that back it.
fn conflict_sides(sides: &Sides) -> Vec<ConflictSide> {
    sides
        .iter()
        .map(|(b, (packets, runs))| ConflictSide {
            probe_digest: b.probe_digest.as_ref().map(|d| Digest {
                blake3: d.clone(),
                sha256: None,
            }),
            decision: b.decision.clone(),
            attribution: b.attribution.clone(),
            stage: b.stage.clone(),
            oracle: b.oracle.clone(),
            packets: packets.iter().cloned().collect(),
            runs: runs.iter().cloned().collect(),
        })
        .collect()
}

/// Count one mapped scenario of `profile_id` in `c`.
fn count(c: &mut OpCounts, profile_id: &str, m: &MappedScenario) {
    c.scenarios += 1;
    *c.decisions.entry(m.decision.clone()).or_default() += 1;
    *c.by_profile
        .entry(profile_id.to_string())
        .or_default()
        .entry(m.decision.clone())
        .or_default() += 1;
    *c.attribution.entry(m.attribution.clone()).or_default() += 1;
}

/// Derive the three files from the consumed packets and their facts.
fn fold(packets: &BTreeMap<String, PacketLink>, facts: &[Fact]) -> Result<Folded> {
    let grouped = group(facts);
    let consumed: Vec<String> = packets.keys().cloned().collect();
    let mut profiles_sig: BTreeMap<String, BTreeMap<String, ProfileSignature>> = BTreeMap::new();
    let mut profiles_links: BTreeMap<String, BTreeMap<String, LinkedProfile>> = BTreeMap::new();
    let mut conflicts: Vec<Conflict> = Vec::new();
    let mut ops: BTreeMap<String, OpCounts> = BTreeMap::new();
    let mut totals = OpCounts::default();
    for (profile_id, versions) in &grouped {
        for (key, (context, probes)) in versions {
            let mut scenarios = BTreeMap::new();
            let mut signature_input = Vec::new();
            let mut n_conflicts = 0u64;
            for (probe_id, rows) in probes {
                let m = map_probe(profile_id, key, probe_id, rows);
                if let Some(c) = m.conflict {
                    n_conflicts += 1;
                    conflicts.push(c);
                }
                signature_input.push(m.signature_input);
                // Op counts over mapped scenarios.
                count(
                    ops.entry(m.scenario.operation.as_str().to_string())
                        .or_default(),
                    profile_id,
                    &m.scenario,
                );
                count(&mut totals, profile_id, &m.scenario);
                scenarios.insert(probe_id.clone(), m.scenario);
            }
            let signature = Digest::blake3_of(&json::canonical(&signature_input)?);
            profiles_sig.entry(profile_id.clone()).or_default().insert(
                key.clone(),
                ProfileSignature {
                    profile_id: profile_id.clone(),
                    profile_digest: Digest {
                        blake3: key.clone(),
                        sha256: None,
                    },
                    digest_context: *context,
                    scenarios,
                    signature,
                    conflicts: n_conflicts,
                },
            );
            profiles_links
                .entry(profile_id.clone())
                .or_default()
                .insert(
                    key.clone(),
                    LinkedProfile {
                        digest_context: *context,
                        probes: probes
                            .iter()
                            .map(|(k, rows)| (k.clone(), rows.iter().cloned().collect()))
                            .collect(),
                    },
                );
        }
    }
    Ok((
        RuntimeSignatures {
            mapping_version: MAPPING_VERSION,
            consumed_packets: consumed.clone(),
            profiles: profiles_sig,
            conflicts,
        },
        OpRuntimeSummary {
            mapping_version: MAPPING_VERSION,
            consumed_packets: consumed.clone(),
            operations: ops,
            totals,
        },
        RuntimeLinks {
            mapping_version: MAPPING_VERSION,
            consumed_packets: consumed,
            packets: packets.clone(),
            profiles: profiles_links,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The whole-set mapping of a probe before rows were folded as they pass
    // (`stream::ProbeAcc`): the oracle of the generated tests.
    /// Map one probe's rows: the agreed behaviour, or `CONFLICT` in each field the rows
    /// disagree on (with the conflict and its sides).
    fn map_probe_whole(
        profile_id: &str,
        key: &str,
        probe_id: &str,
        rows: &BTreeSet<Backing>,
    ) -> Mapped {
        let behaviours: BTreeSet<Behaviour> = rows.iter().map(Behaviour::of).collect();
        let (decision, c1) = agreed(behaviours.iter().map(|b| b.decision.as_str()));
        let (attribution, c2) = agreed(behaviours.iter().map(|b| b.attribution.as_str()));
        let (stage, c3) = agreed(behaviours.iter().map(|b| b.stage.as_str()));
        let (oracle, c4) = agreed(behaviours.iter().map(|b| b.oracle.as_str()));
        let digests: BTreeSet<Option<&String>> =
            behaviours.iter().map(|b| b.probe_digest.as_ref()).collect();
        let operations: BTreeSet<Operation> = behaviours.iter().map(|b| b.operation).collect();
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
        let scenario_id = rows.iter().next().map_or_else(
            || format!("{profile_id}:{probe_id}"),
            |b| b.scenario_id.clone(),
        );
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
                sides: conflict_sides_whole(&behaviours, rows),
            }
        });
        let expected: BTreeSet<_> = rows.iter().map(|r| r.expected).collect();
        let packets_n = rows
            .iter()
            .map(|r| &r.packet)
            .collect::<BTreeSet<_>>()
            .len();
        let signature_input = serde_json::json!({
            "probe_id": probe_id,
            "probe_digest": if c5 { Some(CONFLICT.to_string()) } else { probe_digest.as_ref().map(|d| d.blake3.clone()) },
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
                expected: expected.into_iter().collect(),
                control: rows.iter().any(|r| r.control),
                conflict,
                packets: packets_n as u64,
            },
            conflict: conflict_record,
            signature_input,
        }
    }

    /// One side per distinct behaviour, with the packets and runs that back it.
    fn conflict_sides_whole(
        behaviours: &BTreeSet<Behaviour>,
        rows: &BTreeSet<Backing>,
    ) -> Vec<ConflictSide> {
        behaviours
            .iter()
            .map(|b| {
                let backing: Vec<&Backing> =
                    rows.iter().filter(|r| Behaviour::of(r) == *b).collect();
                let packets: BTreeSet<String> = backing.iter().map(|r| r.packet.clone()).collect();
                let runs: BTreeSet<String> = backing.iter().map(|r| r.run_id.clone()).collect();
                ConflictSide {
                    probe_digest: b.probe_digest.as_ref().map(|d| Digest {
                        blake3: d.clone(),
                        sha256: None,
                    }),
                    decision: b.decision.clone(),
                    attribution: b.attribution.clone(),
                    stage: b.stage.clone(),
                    oracle: b.oracle.clone(),
                    packets: packets.into_iter().collect(),
                    runs: runs.into_iter().collect(),
                }
            })
            .collect()
    }
    use crate::model::plan::Expectation;

    fn fact(packet: &str, profile: &str, probe: &str, decision: &str) -> Fact {
        Fact {
            profile_id: profile.into(),
            profile_key: "k1".into(),
            context: DigestContext::ProfileDefinition,
            backing: Backing {
                packet: packet.into(),
                run_id: format!("run-{packet}"),
                artifact_index_blake3: format!("idx-{packet}"),
                scenario_id: format!("{profile}:{probe}"),
                probe_id: probe.into(),
                probe_digest: Some(Digest::blake3_of(probe.as_bytes())),
                operation: Operation::FileRead,
                expected: Expectation::Deny,
                control: false,
                decision: decision.into(),
                attribution: "profile-shaped".into(),
                stage: "operation".into(),
                oracle: "deny".into(),
            },
        }
    }

    /// Rows folded as they pass (`stream::ProbeAcc`) map a probe as the whole-set mapping
    /// did: generated rows of one probe, agreeing and disagreeing in every field.
    #[test]
    fn a_probe_mapped_row_by_row_is_the_probe_mapped_from_all_its_rows() {
        use crate::util::testrng::Rng;
        let ops = [Operation::FileRead, Operation::FileWrite];
        for seed in 0..500u64 {
            let mut rng = Rng(seed);
            let n = 1 + rng.below(8usize);
            let rows: BTreeSet<Backing> = (0..n)
                .map(|_| {
                    let packet = format!("pk{}", rng.below(3));
                    Backing {
                        run_id: format!("run{}", rng.below(3)),
                        artifact_index_blake3: format!("idx-{packet}"),
                        packet,
                        scenario_id: format!("ro:read{}", rng.below(2)),
                        probe_id: "read".into(),
                        probe_digest: (!rng.chance(20))
                            .then(|| Digest::blake3_of(&[u8::from(rng.chance(20))])),
                        operation: *rng.pick(&ops),
                        expected: if rng.chance(50) {
                            crate::model::plan::Expectation::Allow
                        } else {
                            crate::model::plan::Expectation::Deny
                        },
                        control: rng.chance(20),
                        decision: rng.pick(&["allow", "deny", "deny"]).to_string(),
                        attribution: rng
                            .pick(&["profile-shaped", "profile-shaped", "ambient"])
                            .to_string(),
                        stage: rng.pick(&["operation", "operation", "setup"]).to_string(),
                        oracle: rng.pick(&["deny", "deny", "allow", "none"]).to_string(),
                    }
                })
                .collect();
            let got = map_probe("ro", "k1", "read", &rows);
            let want = map_probe_whole("ro", "k1", "read", &rows);
            assert_eq!(got.scenario, want.scenario, "seed {seed}");
            assert_eq!(got.conflict, want.conflict, "seed {seed}");
            assert_eq!(got.signature_input, want.signature_input, "seed {seed}");
        }
    }

    fn link(packet: &str) -> PacketLink {
        PacketLink {
            run_id: format!("run-{packet}"),
            plan_id: "p".into(),
            plan_digest: Digest::blake3_of(b"p"),
            artifact_index: Digest::both_of(packet.as_bytes()),
            bundle_pointer: format!("out/run-{packet}"),
            kernel_release: None,
        }
    }

    fn bytes(f: &Folded) -> Vec<Vec<u8>> {
        vec![
            json::to_sorted_pretty(&f.0).unwrap(),
            json::to_sorted_pretty(&f.1).unwrap(),
            json::to_sorted_pretty(&f.2).unwrap(),
        ]
    }

    #[test]
    fn folding_is_a_function_of_the_set() {
        let packets: BTreeMap<String, PacketLink> = ["a", "b"]
            .iter()
            .map(|p| ((*p).to_string(), link(p)))
            .collect();
        let facts = vec![
            fact("a", "ro", "read", "deny"),
            fact("a", "ro", "write", "deny"),
            fact("b", "ro", "read", "deny"),
        ];
        let one = bytes(&fold(&packets, &facts).unwrap());
        let mut rev = facts.clone();
        rev.reverse();
        rev.extend(facts.iter().cloned());
        assert_eq!(bytes(&fold(&packets, &rev).unwrap()), one);
        let (s, o, l) = fold(&packets, &facts).unwrap();
        assert!(s.conflicts.is_empty());
        assert_eq!(s.profiles["ro"]["k1"].scenarios["read"].packets, 2);
        assert_eq!(o.totals.scenarios, 2);
        assert_eq!(l.consumed_packets, vec!["a", "b"]);
        // The links alone rebuild everything.
        assert_eq!(bytes(&fold(&l.packets, &facts_of_links(&l)).unwrap()), one);
    }

    #[test]
    fn disagreement_is_a_conflict_listing_both_sides() {
        let packets: BTreeMap<String, PacketLink> = ["a", "b"]
            .iter()
            .map(|p| ((*p).to_string(), link(p)))
            .collect();
        let facts = vec![
            fact("a", "ro", "read", "deny"),
            fact("b", "ro", "read", "allow"),
        ];
        let (s, o, _) = fold(&packets, &facts).unwrap();
        let m = &s.profiles["ro"]["k1"].scenarios["read"];
        assert_eq!(m.decision, CONFLICT);
        assert!(m.conflict);
        assert_eq!(s.conflicts.len(), 1);
        assert_eq!(s.conflicts[0].fields, vec!["decision"]);
        let sides: Vec<(&str, &Vec<String>)> = s.conflicts[0]
            .sides
            .iter()
            .map(|x| (x.decision.as_str(), &x.packets))
            .collect();
        assert_eq!(
            sides,
            vec![
                ("allow", &vec!["b".to_string()]),
                ("deny", &vec!["a".to_string()])
            ]
        );
        assert_eq!(o.totals.decisions[CONFLICT], 1);
    }

    #[test]
    fn the_signature_ignores_runs_and_packets() {
        let one: BTreeMap<String, PacketLink> = [("a".to_string(), link("a"))].into();
        let other: BTreeMap<String, PacketLink> = [("z".to_string(), link("z"))].into();
        let (s1, ..) = fold(&one, &[fact("a", "ro", "read", "deny")]).unwrap();
        let (s2, ..) = fold(&other, &[fact("z", "ro", "read", "deny")]).unwrap();
        assert_eq!(
            s1.profiles["ro"]["k1"].signature,
            s2.profiles["ro"]["k1"].signature
        );
        let (s3, ..) = fold(&other, &[fact("z", "ro", "read", "allow")]).unwrap();
        assert_ne!(
            s1.profiles["ro"]["k1"].signature,
            s3.profiles["ro"]["k1"].signature
        );
    }
}
