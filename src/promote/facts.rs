//! What a packet needs of the large whole-document members, read as a stream.
//!
//! `run_manifest.json` carries the plan as loaded and every selected scenario id, and
//! `expected_matrix.json` one entry per scenario: at 100,000 scenarios, tens of MB as a
//! `serde_json::Value` tree. The packet needs a few facts of the manifest and, of the
//! matrix and the mismatch summary, only whether they parse as what the runner writes.
//! The types here are read with serde from the member's byte stream
//! (`BundleSource::scan_member`): they accept exactly the documents the full types
//! ([`RunManifest`], [`ExpectedMatrix`], [`MismatchSummary`]) accept, keeping only what
//! the packet uses ([`crate::util::jsoncheck`] checks the rest one element at a time).
//! Their agreement with the full types is the generated test below (random mutations of
//! full documents: both accept or both refuse, and the facts are the full type's).
//!
//! A new field of one of those types must be added here too (with its type, or a check
//! type of it); the test's base documents fail to parse as the full type until it is.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::model::results::{
    ChannelKind, ExpectedEntry, KernelAuditStart, LanePolicy, MergedShard, PreflightRecord,
    RegistryDigests, ResolvedProbe, ShardRecord, ToolInfo,
};
use crate::util::digest::Digest;
use crate::util::jsoncheck::{CheckMap, CheckSeq, Skip};

/// What the packet reads of `run_manifest.json` ([`RunManifest`]'s fields, the large ones
/// checked and dropped).
///
/// [`RunManifest`]: crate::model::results::RunManifest
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)] // Fields read only to check them are never used.
pub struct ManifestFacts {
    schema_version: u32,
    run_id: String,
    tool: ToolInfo,
    /// The plan id.
    pub plan_id: String,
    /// The plan file.
    pub plan_path: String,
    /// `plan_digest`.
    pub plan_digest: Digest,
    /// The channel.
    pub channel: ChannelKind,
    /// Host facts.
    pub host: crate::model::host::HostFacts,
    landlock_abi: Option<u8>,
    kernel_audit: Option<KernelAuditStart>,
    lanes: LanePolicy,
    jobs: u32,
    scratch: String,
    scratch_kept: bool,
    only_profiles: CheckSeq<String>,
    only_scenarios: CheckSeq<String>,
    selected: CheckSeq<String>,
    command_line: CheckSeq<String>,
    variables: CheckMap<String, String>,
    /// The few facts of the plan the packet uses.
    pub plan: PlanFacts,
    probes: CheckMap<String, ResolvedProbe>,
    profiles: CheckMap<String, Skip>,
    #[serde(default)]
    profile_definitions: CheckMap<String, Skip>,
    preflight: CheckSeq<PreflightRecord>,
    #[serde(default)]
    governance: CheckSeq<String>,
    #[serde(default)]
    listeners: CheckSeq<String>,
    #[serde(default)]
    housekeeping: CheckSeq<String>,
    /// The digest of every registry entry the plan resolved.
    #[serde(default)]
    pub registry_digests: RegistryDigests,
    #[serde(default)]
    workers: CheckMap<String, crate::model::worker::WorkerIdentity>,
    /// Digest of the worker tasks' inputs.
    #[serde(default)]
    pub inputs_digest: Option<Digest>,
    started_at: String,
    #[serde(default)]
    shard: Option<ShardRecord>,
    /// The shards of a merged bundle.
    #[serde(default)]
    pub shards: Vec<MergedShard>,
}

/// The manifest's `plan` (any JSON value, as `serde_json::Value` accepts it), keeping the
/// values at `/kind`, `/mission/rank` and `/mission/requested_by`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanFacts {
    /// The value at `/kind`.
    pub kind: Option<Value>,
    /// The value at `/mission/rank`.
    pub rank: Option<Value>,
    /// The value at `/mission/requested_by`.
    pub requested_by: Option<Value>,
}

/// An object's members named in `keep` as values, every other member checked and dropped;
/// any other JSON value checked and dropped. A repeated key: the last one counts, as in a
/// `serde_json::Map`.
struct Pick<const N: usize> {
    keep: [&'static str; N],
}

/// What [`Pick`] found: the value of each kept key (or the object's `mission` members).
type Picked = BTreeMap<&'static str, Value>;

impl<'de, const N: usize> serde::de::DeserializeSeed<'de> for Pick<N> {
    type Value = Picked;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Picked, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Pick<N> {
    type Value = Picked;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Picked, E> {
        Ok(Picked::new())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Picked, E> {
        Ok(Picked::new())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Picked, E> {
        Ok(Picked::new())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Picked, E> {
        Ok(Picked::new())
    }
    fn visit_str<E>(self, _: &str) -> Result<Picked, E> {
        Ok(Picked::new())
    }
    fn visit_unit<E>(self) -> Result<Picked, E> {
        Ok(Picked::new())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Picked, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Picked::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Picked, A::Error> {
        let mut out = Picked::new();
        while let Some(k) = map.next_key::<String>()? {
            match self.keep.iter().find(|x| **x == k) {
                Some(x) => {
                    out.insert(x, map.next_value::<Value>()?);
                }
                None => {
                    // Last one wins: a repeated key that is not kept drops nothing kept.
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for PlanFacts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Plan;
        impl<'de> Visitor<'de> for Plan {
            type Value = PlanFacts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<PlanFacts, E> {
                Ok(PlanFacts::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<PlanFacts, E> {
                Ok(PlanFacts::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<PlanFacts, E> {
                Ok(PlanFacts::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<PlanFacts, E> {
                Ok(PlanFacts::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<PlanFacts, E> {
                Ok(PlanFacts::default())
            }
            fn visit_unit<E>(self) -> Result<PlanFacts, E> {
                Ok(PlanFacts::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PlanFacts, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(PlanFacts::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PlanFacts, A::Error> {
                let mut out = PlanFacts::default();
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "kind" => out.kind = Some(map.next_value::<Value>()?),
                        "mission" => {
                            let mut m = map.next_value_seed(Pick {
                                keep: ["rank", "requested_by"],
                            })?;
                            out.rank = m.remove("rank");
                            out.requested_by = m.remove("requested_by");
                        }
                        _ => {
                            map.next_value::<Skip>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(Plan)
    }
}

/// `expected_matrix.json` checked, not kept ([`ExpectedMatrix`]).
///
/// [`ExpectedMatrix`]: crate::model::results::ExpectedMatrix
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
pub struct ExpectedMatrixCheck {
    schema_version: u32,
    plan_id: String,
    scenarios: CheckMap<String, ExpectedEntry>,
}

/// `mismatch_summary.json` checked, not kept ([`MismatchSummary`]).
///
/// [`MismatchSummary`]: crate::model::results::MismatchSummary
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
pub struct MismatchSummaryCheck {
    schema_version: u32,
    run_id: String,
    total: u64,
    by_kind: CheckMap<String, u64>,
    by_profile: CheckMap<String, u64>,
    scenarios: CheckSeq<String>,
}

/// Whether the JSON Lines of `r` (`mismatch_packets.jsonl`) all parse as
/// [`MismatchPacket`]s, a line at a time: the file is UTF-8 and every line that is not
/// blank parses (a line longer than `bundle::lines::MAX_LINE_BYTES` counts as one that
/// does not). An I/O error counts as not parsing.
///
/// [`MismatchPacket`]: crate::model::results::MismatchPacket
pub fn mismatch_lines_parse(r: &mut dyn std::io::BufRead) -> bool {
    use std::io::{BufRead as _, Read as _};
    let max = crate::bundle::lines::MAX_LINE_BYTES;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut *r).take(max as u64 + 1).read_until(b'\n', &mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
        if buf.len() > max {
            return false;
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            return false;
        };
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        if serde_json::from_str::<crate::model::results::MismatchPacket>(line).is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests;
