//! Op-level summaries (`summarize-ops`): per operation, the scenarios, counts by observed
//! decision (the scenario lane) overall and per profile, attribution counts and mismatches,
//! from `runtime_events.normalized.jsonl`.
//!
//! From a bundle, the bundle must verify (the strict reader; an invalid bundle is refused
//! with its problems). From a packet, the normalized events are read through the packet's
//! pointer and checked against the digest it records (a packet whose bundle changed is
//! refused); the packet need not be promotable, and the summary says whether it is.

use std::collections::BTreeMap;
use std::path::Path;

use super::verify::{self, read_packet};
use crate::bundle::{lines, load_bundle};
use crate::error::ErrorKind;
use crate::model::mapping::{MAPPING_VERSION, OpCounts, OpSource, OpSummary};
use crate::model::results::NormalizedRow;
use crate::{Error, Result};

/// The normalized-events member.
pub const NORMALIZED: &str = crate::bundle::NORMALIZED_ROWS;

/// Add one row to `c` (under `profile`).
pub fn count_row(c: &mut OpCounts, r: &NormalizedRow) {
    let decision = r
        .scenario
        .as_ref()
        .map_or("not-run", |s| s.outcome.as_str())
        .to_string();
    let attribution = r.attribution.map_or("none", |a| a.as_str()).to_string();
    c.scenarios += 1;
    *c.decisions.entry(decision.clone()).or_default() += 1;
    *c.by_profile
        .entry(r.profile_id.clone())
        .or_default()
        .entry(decision)
        .or_default() += 1;
    *c.attribution.entry(attribution).or_default() += 1;
    for m in &r.mismatches {
        *c.mismatches.entry(m.as_str().to_string()).or_default() += 1;
    }
    if !r.mismatches.is_empty() {
        c.scenarios_with_mismatches += 1;
    }
}

/// Per-operation counts and totals of `rows`.
pub fn count(rows: &[NormalizedRow]) -> (BTreeMap<String, OpCounts>, OpCounts) {
    let mut ops: BTreeMap<String, OpCounts> = BTreeMap::new();
    let mut totals = OpCounts::default();
    for r in rows {
        count_row(ops.entry(r.operation.as_str().to_string()).or_default(), r);
        count_row(&mut totals, r);
    }
    (ops, totals)
}

/// Count `rows` a row at a time.
struct Counter {
    ops: BTreeMap<String, OpCounts>,
    totals: OpCounts,
}

impl Counter {
    fn new() -> Self {
        Self {
            ops: BTreeMap::new(),
            totals: OpCounts::default(),
        }
    }

    fn add(&mut self, r: &NormalizedRow) {
        count_row(
            self.ops
                .entry(r.operation.as_str().to_string())
                .or_default(),
            r,
        );
        count_row(&mut self.totals, r);
    }
}

/// The op summary of the bundle at `path` (strict).
pub fn summarize_bundle(path: &Path) -> Result<OpSummary> {
    let b = load_bundle(path)?;
    // A row at a time: memory does not grow with the number of scenarios.
    let shared = b.shared_values()?;
    let mut c = Counter::new();
    b.for_each_line(NORMALIZED, &shared, &mut |r: NormalizedRow| {
        c.add(&r);
        Ok(())
    })?;
    let summary: Option<crate::model::results::Summary> = b.read_json("summary.json").ok();
    let (operations, totals) = (c.ops, c.totals);
    Ok(OpSummary {
        summary_version: MAPPING_VERSION,
        source: OpSource {
            kind: "bundle".into(),
            run_id: b.run_id.clone(),
            plan_id: summary.as_ref().map(|s| s.plan_id.clone()),
            plan_digest: b
                .index
                .plan_digest
                .clone()
                .or_else(|| summary.map(|s| s.plan_digest)),
            artifact_index_blake3: Some(b.index_blake3.clone()),
            packet_digest: None,
            promotable: None,
        },
        operations,
        totals,
    })
}

/// The op summary of the bundle the packet at `path` points to. `root` is the project
/// root pointers may be relative to.
pub fn summarize_packet(path: &Path, root: &Path) -> Result<OpSummary> {
    let (packet, _) = read_packet(path)?;
    let ctx = verify::context_of(&packet, path, root)?;
    let problems = verify::check_pointers(&packet, &ctx, path);
    if !problems.is_empty() {
        return Err(Error::new(
            ErrorKind::Findings,
            format!(
                "the bundle changed since the packet was emitted (or the packet was moved): {}",
                problems.join("; ")
            ),
        )
        .with_path(path)
        .with_hint("emit the packet again from the bundle as it is now"));
    }
    let a = packet.artifact(NORMALIZED).ok_or_else(|| {
        Error::new(
            ErrorKind::Findings,
            format!("the packet points to no `{NORMALIZED}`: its bundle has no readable events"),
        )
        .with_path(path)
    })?;
    let shared = packet.artifact(lines::SHARED_FILE).ok_or_else(|| {
        Error::new(
            ErrorKind::Findings,
            format!("the packet points to no `{}`", lines::SHARED_FILE),
        )
        .with_path(path)
    })?;
    let shared_path = ctx.resolve(&shared.path);
    // A value at a time as it streams, kept when the file is the one the packet records;
    // otherwise read whole, for that reading's exact error.
    let shared = match verify::scan_pointer(shared, &ctx, &mut |r| lines::SharedValues::read(r)) {
        Ok(Some(t)) => t,
        _ => lines::SharedValues::parse(&verify::read_pointer(shared, &ctx)?, &shared_path)?,
    };
    // A row at a time, hashed as it streams: the counts are used only if the file is the
    // one the packet records.
    let rows_path = ctx.resolve(&a.path);
    let mut c = Counter::new();
    verify::scan_pointer(a, &ctx, &mut |r| {
        lines::for_each_line(r, &rows_path, &shared, &mut |row: NormalizedRow| {
            c.add(&row);
            Ok(())
        })
    })??;
    let (operations, totals) = (c.ops, c.totals);
    Ok(OpSummary {
        summary_version: MAPPING_VERSION,
        source: OpSource {
            kind: "packet".into(),
            run_id: packet.run_id.clone(),
            plan_id: packet.plan.plan_id.clone(),
            plan_digest: packet.plan.plan_digest.clone(),
            artifact_index_blake3: packet
                .bundle
                .artifact_index
                .as_ref()
                .map(|a| a.blake3.clone()),
            packet_digest: Some(verify::packet_digest(&packet)?),
            promotable: Some(packet.promotability.promotable),
        },
        operations,
        totals,
    })
}
/// Write a summary's bytes to `out` atomically, creating its directory.
pub fn write_summary(out: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = out.parent() {
        crate::util::fsx::create_dir_all(parent)?;
    }
    crate::util::fsx::write_atomic(out, bytes)
}
