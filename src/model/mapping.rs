//! Knowledge merged from promotable packets: the three mapping files
//! `promote` writes into a mappings directory, and the op-level summary `summarize-ops`
//! writes.
//!
//! - `runtime_links.json` is the source of truth: one [`Backing`] row per (packet,
//!   scenario), with the facts that packet's bundle reported. The other two files are derived
//!   from it, and every file is a pure function of the *set* of packets consumed
//!   (`consumed_packets`), so order and repetition never change a byte.
//! - `runtime_signatures.json`: per profile definition, per probe, the mapped behaviour
//!   (`decision`, `attribution`, `stage`, `oracle`, `expected`) and a signature digest over
//!   the sorted behaviour, free of run ids, times and resource use.
//! - `op_runtime_summary.json`: per operation, counts by decision, attribution and profile.
//!
//! Keys: profiles are keyed by id, then by the blake3 of their definition (the run
//! manifest's `registry_digests`; for bundles without it, the plan digest stands in and
//! `digest_context` says so). Two different definitions of a profile are two entries side by
//! side, never a conflict. Within one, a probe is keyed by id; two packets that report a
//! different probe definition, decision, attribution, stage or oracle verdict for it
//! **disagree**: the scenario is mapped as `conflict` and a [`Conflict`] lists every side
//! with its packets. Differing expectations are not a disagreement (an expectation is the
//! plan author's claim, not behaviour): `expected` lists every one seen.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::plan::Expectation;
use super::registry::Operation;
use crate::util::digest::Digest;

/// Version of the mapping and op-summary layouts.
pub const MAPPING_VERSION: u32 = 1;

/// File names inside a mappings directory.
pub const SIGNATURES_FILE: &str = "runtime_signatures.json";
/// See [`SIGNATURES_FILE`].
pub const OP_SUMMARY_FILE: &str = "op_runtime_summary.json";
/// See [`SIGNATURES_FILE`].
pub const LINKS_FILE: &str = "runtime_links.json";

/// The value a mapped field takes when packets disagree on it.
pub const CONFLICT: &str = "conflict";

/// What a profile key's digest is the digest of.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DigestContext {
    /// The profile's definition (`run_manifest.json` `registry_digests.profiles`).
    ProfileDefinition,
    /// The plan digest (the bundle does not record profile digests): only runs of the same
    /// plan definition are compared.
    Plan,
}

/// One scenario as one packet's bundle reported it: the unit everything is derived from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backing {
    /// blake3 of the packet's canonical JSON (RFC 8785).
    pub packet: String,
    /// The run.
    pub run_id: String,
    /// blake3 of its `artifact_index.json`.
    pub artifact_index_blake3: String,
    /// `<profile>:<probe>`.
    pub scenario_id: String,
    /// The probe.
    pub probe_id: String,
    /// Digest of the probe's definition (absent when the bundle does not record it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_digest: Option<Digest>,
    /// The operation.
    pub operation: Operation,
    /// The plan's expectation.
    pub expected: Expectation,
    /// True for control probes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control: bool,
    /// The scenario lane's outcome.
    pub decision: String,
    /// Baseline vs scenario (`none` when the baseline lane did not run).
    pub attribution: String,
    /// Where the scenario lane's observation ended.
    pub stage: String,
    /// The oracle's decision (`none` when the oracle lane did not run).
    pub oracle: String,
}

/// A packet consumed into the mappings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PacketLink {
    /// The run.
    pub run_id: String,
    /// The plan.
    pub plan_id: String,
    /// `plan_digest`.
    pub plan_digest: Digest,
    /// The digest of the bundle's `artifact_index.json`.
    pub artifact_index: Digest,
    /// The bundle, relative to the packet's pointer base.
    pub bundle_pointer: String,
    /// The kernel the run was observed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
}

/// `runtime_links.json`: which packets and bundles back each mapped scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon runtime links")]
pub struct RuntimeLinks {
    /// [`MAPPING_VERSION`].
    pub mapping_version: u32,
    /// Every packet consumed (digests), sorted.
    pub consumed_packets: Vec<String>,
    /// Packet digest → what it is about.
    pub packets: BTreeMap<String, PacketLink>,
    /// Profile id → profile digest (blake3 hex) → probe id → the rows backing it, sorted.
    pub profiles: BTreeMap<String, BTreeMap<String, LinkedProfile>>,
}

/// One profile definition in `runtime_links.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkedProfile {
    /// What the key digest is of.
    pub digest_context: DigestContext,
    /// Probe id → backing rows.
    pub probes: BTreeMap<String, Vec<Backing>>,
}

/// One mapped scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappedScenario {
    /// `<profile>:<probe>`.
    pub scenario_id: String,
    /// The probe's definition digest (absent when unknown, or when packets disagree on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_digest: Option<Digest>,
    /// The operation.
    pub operation: Operation,
    /// The scenario lane's outcome, or `conflict`.
    pub decision: String,
    /// The attribution, or `conflict`.
    pub attribution: String,
    /// The stage, or `conflict`.
    pub stage: String,
    /// The oracle's decision, or `conflict`.
    pub oracle: String,
    /// Every expectation plans declared for it, sorted.
    pub expected: Vec<Expectation>,
    /// True for control probes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control: bool,
    /// Packets disagree on it (see `conflicts`).
    pub conflict: bool,
    /// Packets backing it.
    pub packets: u64,
}

/// One profile definition in `runtime_signatures.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileSignature {
    /// The profile.
    pub profile_id: String,
    /// The digest the entry is keyed by.
    pub profile_digest: Digest,
    /// What that digest is of.
    pub digest_context: DigestContext,
    /// Probe id → mapped scenario.
    pub scenarios: BTreeMap<String, MappedScenario>,
    /// blake3 of the canonical JSON of the sorted `[{probe_id, probe_digest, decision,
    /// attribution, stage}]`: the same behaviour gives the same signature, whatever the run.
    pub signature: Digest,
    /// Scenarios in conflict.
    pub conflicts: u64,
}

/// One side of a disagreement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConflictSide {
    /// The probe definition digest this side reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_digest: Option<Digest>,
    /// Decision.
    pub decision: String,
    /// Attribution.
    pub attribution: String,
    /// Stage.
    pub stage: String,
    /// Oracle.
    pub oracle: String,
    /// Packets reporting it (digests), sorted.
    pub packets: Vec<String>,
    /// Their runs, sorted.
    pub runs: Vec<String>,
}

/// A recorded disagreement: never resolved by "last writer wins".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conflict {
    /// The profile.
    pub profile_id: String,
    /// Its definition digest (blake3 hex, the key in `profiles`).
    pub profile_digest: String,
    /// The probe.
    pub probe_id: String,
    /// `<profile>:<probe>`.
    pub scenario_id: String,
    /// The fields the sides differ on, sorted.
    pub fields: Vec<String>,
    /// Every distinct report, sorted.
    pub sides: Vec<ConflictSide>,
}

/// `runtime_signatures.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon runtime signatures")]
pub struct RuntimeSignatures {
    /// [`MAPPING_VERSION`].
    pub mapping_version: u32,
    /// Every packet consumed (digests), sorted.
    pub consumed_packets: Vec<String>,
    /// Profile id → profile digest (blake3 hex) → its mapped behaviour.
    pub profiles: BTreeMap<String, BTreeMap<String, ProfileSignature>>,
    /// Every disagreement, sorted by profile, digest, probe.
    pub conflicts: Vec<Conflict>,
}

/// Counts for one operation (or all of them).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpCounts {
    /// Scenarios.
    pub scenarios: u64,
    /// Scenario-lane outcome → count (`not-run` when the lane did not run; `conflict` in
    /// mappings).
    pub decisions: BTreeMap<String, u64>,
    /// Profile id → decision → count.
    pub by_profile: BTreeMap<String, BTreeMap<String, u64>>,
    /// Attribution → count (`none` when baseline or scenario did not run).
    pub attribution: BTreeMap<String, u64>,
    /// Mismatch kind → count (bundles and packets; empty in mappings).
    #[serde(default)]
    pub mismatches: BTreeMap<String, u64>,
    /// Scenarios with at least one mismatch.
    #[serde(default)]
    pub scenarios_with_mismatches: u64,
}

/// `op_runtime_summary.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon op runtime summary")]
pub struct OpRuntimeSummary {
    /// [`MAPPING_VERSION`].
    pub mapping_version: u32,
    /// Every packet consumed (digests), sorted.
    pub consumed_packets: Vec<String>,
    /// Operation → counts over mapped scenarios (one per profile definition and probe).
    pub operations: BTreeMap<String, OpCounts>,
    /// Counts over every operation.
    pub totals: OpCounts,
}

/// Where an op summary came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpSource {
    /// `bundle` or `packet`.
    pub kind: String,
    /// The run.
    pub run_id: String,
    /// The plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// `plan_digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<Digest>,
    /// blake3 of the bundle's `artifact_index.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_index_blake3: Option<String>,
    /// blake3 of the packet's canonical JSON (packets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_digest: Option<String>,
    /// The packet's promotability (packets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotable: Option<bool>,
}

/// What `summarize-ops` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon op summary")]
pub struct OpSummary {
    /// [`MAPPING_VERSION`].
    pub summary_version: u32,
    /// Where it came from.
    pub source: OpSource,
    /// Operation → counts.
    pub operations: BTreeMap<String, OpCounts>,
    /// Counts over every operation.
    pub totals: OpCounts,
}
