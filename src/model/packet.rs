//! `promotion_packet.json`: the small, reviewable record between evidence
//! (a bundle) and knowledge (mappings, evolution).
//!
//! A packet holds pointers with digests to the bundle's decision artifacts, the index
//! digest, a summary, the governance record slot and `promotability`, which is derived from
//! the bundle alone (`promote::promotability`). Every list is sorted; the file is written
//! with `util::json::to_sorted_pretty`.
//!
//! The format is strict when read back (`deny_unknown_fields`, a known `packet_version`):
//! a packet is only ever consumed after its pointers are verified and its content is derived
//! again from the bundle, so an edited packet is refused rather than half-understood.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::index::{AuditHead, BundleStatus};
use super::plan::{PlanKind, Rank};
use super::results::{ChannelKind, RunStatus};
use crate::util::digest::Digest;

/// The only packet layout this build writes and reads.
pub const PACKET_VERSION: u32 = 1;

/// The in-toto predicate type of the Statement written beside a packet.
pub const PACKET_PREDICATE_TYPE: &str = "https://nexusmon.dev/promotion-packet/v1";

/// The default packet file name.
pub const PACKET_FILE: &str = "promotion_packet.json";

/// Why a packet is not promotable. The names (kebab-case, [`Reason::as_str`]) are stable:
/// scripts match on them. `reasons[]` is sorted by name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// No readable `run_manifest.json`.
    ManifestMissing,
    /// No readable `run_status.json`.
    RunStatusMissing,
    /// The run never sealed (status `in_progress`, or a `.staging/` directory).
    BundleInProgress,
    /// The manifest does not say the run used the `clean` channel.
    NotCleanChannel,
    /// No readable `apply_preflight.json`.
    ApplyPreflightMissing,
    /// The runner itself ran with no-new-privs or a seccomp filter (or that is unknown).
    AlreadySandboxed,
    /// A profile failed to apply (or that is unknown).
    ApplyFailed,
    /// A profile was only partially enforced, or rights were dropped under `best-effort`.
    ApplyPartial,
    /// The strict bundle check found a problem.
    BundleIntegrityUnverified,
    /// The run failed (`run_status` `failed`), or its status is unknown.
    BundleFailed,
    /// The index lists missing files, or an expected result file is absent.
    BundleIncomplete,
    /// The index was rewritten by `reindex-bundle --repair`.
    BundleRepaired,
    /// A decision-stage artifact (lane results, oracle results, normalized events, mismatch
    /// files, expected matrix) is absent or unreadable.
    DecisionStageArtifactsMissing,
    /// A mission whose approvals the bundle does not prove (or a mission without a
    /// governance record).
    ApprovalMissing,
    /// The run was interrupted (`run_status` `interrupted`).
    BundleInterrupted,
    /// The trust policy requires signed bundles and the bundle carries no signature.
    BundleUnsigned,
    /// The bundle's signature (`artifact_index.sig`, `bundle.intoto.json`) does not verify
    /// over its index, or its key is not trusted as a `runner`.
    BundleSignatureInvalid,
    /// The audit log's `run-sealed` entry for the run names another index digest (or there
    /// is none): the index was forged or swapped.
    IndexNotAnchored,
    /// A bundle merged from shards (`merge-bundles`) where a shard was failed,
    /// interrupted or not promotable itself.
    ShardIncomplete,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 19] = [
        Reason::ManifestMissing,
        Reason::RunStatusMissing,
        Reason::BundleInProgress,
        Reason::NotCleanChannel,
        Reason::ApplyPreflightMissing,
        Reason::AlreadySandboxed,
        Reason::ApplyFailed,
        Reason::ApplyPartial,
        Reason::BundleIntegrityUnverified,
        Reason::BundleFailed,
        Reason::BundleIncomplete,
        Reason::BundleRepaired,
        Reason::DecisionStageArtifactsMissing,
        Reason::ApprovalMissing,
        Reason::BundleInterrupted,
        Reason::BundleUnsigned,
        Reason::BundleSignatureInvalid,
        Reason::IndexNotAnchored,
        Reason::ShardIncomplete,
    ];

    /// The stable name, e.g. `not-clean-channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ManifestMissing => "manifest-missing",
            Reason::RunStatusMissing => "run-status-missing",
            Reason::BundleInProgress => "bundle-in-progress",
            Reason::NotCleanChannel => "not-clean-channel",
            Reason::ApplyPreflightMissing => "apply-preflight-missing",
            Reason::AlreadySandboxed => "already-sandboxed",
            Reason::ApplyFailed => "apply-failed",
            Reason::ApplyPartial => "apply-partial",
            Reason::BundleIntegrityUnverified => "bundle-integrity-unverified",
            Reason::BundleFailed => "bundle-failed",
            Reason::BundleIncomplete => "bundle-incomplete",
            Reason::BundleRepaired => "bundle-repaired",
            Reason::DecisionStageArtifactsMissing => "decision-stage-artifacts-missing",
            Reason::ApprovalMissing => "approval-missing",
            Reason::BundleInterrupted => "bundle-interrupted",
            Reason::BundleUnsigned => "bundle-unsigned",
            Reason::BundleSignatureInvalid => "bundle-signature-invalid",
            Reason::IndexNotAnchored => "index-not-anchored",
            Reason::ShardIncomplete => "shard-incomplete",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What pointers are relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PointerBase {
    /// The project root (the bundle lies beneath it), e.g. `out/<run_id>/summary.json`.
    ProjectRoot,
    /// The directory holding the packet (the bundle lies outside the project root).
    PacketDir,
}

impl PointerBase {
    /// `project-root` / `packet-dir`.
    pub fn as_str(self) -> &'static str {
        match self {
            PointerBase::ProjectRoot => "project-root",
            PointerBase::PacketDir => "packet-dir",
        }
    }
}

/// A file of the bundle, by pointer, with its digests as read when the packet was emitted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactPointer {
    /// `/`-separated path relative to the packet's pointer base.
    pub path: String,
    /// The same file's path inside the bundle.
    pub member: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3-256 of the bytes, hex.
    pub blake3: String,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
}

/// The plan the bundle ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PacketPlan {
    /// The plan id (manifest, else `summary.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// Experiment or mission (from the manifest's plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PlanKind>,
    /// `plan_digest` (manifest, else `summary.json`, else the index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<Digest>,
    /// A mission's rank (from the manifest's plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<Rank>,
    /// Digest of the inputs the mission's worker tasks were given (from the manifest):
    /// with `plan_digest`, the identity of the mission's outcome for evolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_digest: Option<Digest>,
    /// The plan file as the manifest records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_path: Option<String>,
}

/// The bundle the packet is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PacketBundle {
    /// The bundle directory, relative to the pointer base.
    pub pointer: String,
    /// What every pointer of the packet is relative to.
    pub pointer_base: PointerBase,
    /// The run id (index, else `run_status.json`, else the directory name).
    pub run_id: String,
    /// `artifact_index.json` (absent when the bundle has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_index: Option<ArtifactPointer>,
    /// The bundle's status (`run_status.json`, else the index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BundleStatus>,
    /// The index says `reindex-bundle --repair` rewrote it (absent: no index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired: Option<bool>,
    /// Version of the tool that wrote the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_version: Option<String>,
    /// The strict check passed: every file was verified against the seal.
    pub verified: bool,
}

/// Scenario-level counts of a mission's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskCounts {
    /// Tasks (scenario rows) in the bundle.
    pub total: u64,
    /// Tasks with a mismatch (other than skipped ones).
    pub failed: u64,
    /// Tasks skipped because something they depend on failed.
    pub skipped: u64,
}

/// What the run found, from `summary.json` (and the normalized rows for task counts).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PacketSummary {
    /// `ok`, `partial`, `failed`, `dry`, `interrupted` (absent: no readable `summary.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    /// The exit code the run mapped to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The exit reason, one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<String>,
    /// Number of scenarios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenarios: Option<u64>,
    /// Outcome counts per executing lane.
    #[serde(default)]
    pub outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Oracle decision counts.
    #[serde(default)]
    pub oracle: BTreeMap<String, u64>,
    /// Attribution counts.
    #[serde(default)]
    pub attribution: BTreeMap<String, u64>,
    /// Mismatch counts per kind (every kind listed).
    #[serde(default)]
    pub mismatch_counts: BTreeMap<String, u64>,
    /// Total mismatch packets.
    #[serde(default)]
    pub mismatches_total: u64,
    /// Scenarios that passed only on retry.
    #[serde(default)]
    pub flaky: Vec<String>,
    /// Leaked descendants (notes).
    #[serde(default)]
    pub leaked: u64,
    /// Truncated outputs (notes).
    #[serde(default)]
    pub truncated: u64,
    /// Review flags the gate carried into the summary.
    #[serde(default)]
    pub governance_flags: Vec<String>,
    /// Mission task counts (missions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<TaskCounts>,
}

/// One approval the gate counted, as the bundle carries it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PacketApproval {
    /// The approver principal.
    pub approver: String,
    /// `SHA256:…` of the signing key, as the gate recorded it.
    pub key_fingerprint: String,
    /// The record copied into the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<ArtifactPointer>,
    /// Its signature copied into the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ArtifactPointer>,
    /// The copy in the bundle checks out: the record's digest is the one the gate verified,
    /// the signature verifies over its bytes with the recorded key in the approval namespace,
    /// and the record approves this plan digest for `run`. (Whether the key is trusted was
    /// decided by the gate against the project's trust file, which bundles do not carry.)
    pub verified: bool,
    /// Why it does not check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The governance record slot: the gate's decision as the bundle recorded it in
/// `governance/gate.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GovernanceSlot {
    /// `governance/gate.json`.
    pub gate_record: ArtifactPointer,
    /// `experiment` or `mission`, as the gate saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PlanKind>,
    /// The mission's rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<Rank>,
    /// `allow`, `allow-flagged`, `refuse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The composite score, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite: Option<u8>,
    /// Its band: `SAFE`, `BORDERLINE`, `FAILING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    /// Review flags, sorted.
    #[serde(default)]
    pub flags: Vec<String>,
    /// The gate's rules that applied (stable names), in evaluation order.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Valid approvals the gate required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_approvals: Option<u32>,
    /// Valid approvals the gate counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_approvals: Option<u32>,
    /// The approvers it counted, sorted.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// The approvals it counted, with their copies in the bundle.
    #[serde(default)]
    pub approvals: Vec<PacketApproval>,
    /// When the gate decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<String>,
    /// The audit-log head anchored in the bundle's index at seal time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<AuditHead>,
}

/// The state of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InputState {
    /// Present and readable.
    Present,
    /// Not there.
    Missing,
    /// There but not readable as the expected format.
    Unreadable,
}

/// The index and the strict check, as consulted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexInput {
    /// `artifact_index.json`.
    pub state: InputState,
    /// The strict check found no problem.
    pub verified: bool,
    /// Problem kinds the strict check found, sorted, distinct.
    #[serde(default)]
    pub problems: Vec<String>,
    /// The index's `missing` list.
    #[serde(default)]
    pub missing: Vec<String>,
    /// The bundle directory lies in an out root's `.staging/`.
    pub staging: bool,
}

/// The apply preflight, as consulted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreflightInput {
    /// `apply_preflight.json`.
    pub state: InputState,
    /// Profiles it lists.
    pub profiles: u64,
    /// Profiles that failed to apply (preflight and `summary.json`), sorted.
    #[serde(default)]
    pub apply_failed: Vec<String>,
    /// Profiles partially enforced or with dropped rights (preflight and `summary.json`),
    /// sorted.
    #[serde(default)]
    pub partially_enforced: Vec<String>,
    /// Rights a `best-effort` profile gave up, per profile.
    #[serde(default)]
    pub dropped_rights: BTreeMap<String, Vec<String>>,
}

/// Approvals, as consulted (missions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalInput {
    /// A governance record (`governance/gate.json`) is in the bundle and readable.
    pub gate_record: bool,
    /// Valid approvals required: the stricter of the gate record's count and the rank's
    /// rule (A: 1, S: 2; BORDERLINE composite: 1). Absent: unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<u32>,
    /// Approvals the bundle carries that check out, from distinct approvers (at rank S, not
    /// the requester).
    pub carried: u32,
    /// The mission's requester (not counted at rank S).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// What is known about the bundle's signature.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureState {
    /// Not checked (no trust policy was consulted and the bundle was not opened for it).
    #[default]
    Unchecked,
    /// No `artifact_index.sig`.
    Unsigned,
    /// The signature verifies over the index with the key it carries; no trust file said
    /// whether that key is trusted.
    Signed,
    /// The signature verifies and the trust file trusts its key as a `runner`.
    Verified,
    /// The signature (or the DSSE envelope) does not verify, or its key is not trusted.
    Invalid,
}

impl SignatureState {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureState::Unchecked => "unchecked",
            SignatureState::Unsigned => "unsigned",
            SignatureState::Signed => "signed",
            SignatureState::Verified => "verified",
            SignatureState::Invalid => "invalid",
        }
    }
}

/// The bundle's signature, as checked (`bundle-unsigned`, `bundle-signature-invalid`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureInput {
    /// What the check found.
    pub state: SignatureState,
    /// The trust policy says `require-signed-bundles`.
    #[serde(default)]
    pub required: bool,
    /// `SHA256:…` of the signing key, when there is a signature that parses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// Why the signature is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What is known about the bundle's index against the audit log.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum AnchorState {
    /// No state directory: there is no audit log to compare with.
    #[default]
    Unchecked,
    /// The log's `run-sealed` entry for the run names this index digest.
    Anchored,
    /// The log names another digest for the run, has no `run-sealed` entry for it, or its
    /// chain is broken.
    NotAnchored,
}

/// The bundle's index against the audit log (`index-not-anchored`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnchorInput {
    /// What the comparison found.
    pub state: AnchorState,
    /// The `seq` of the `run-sealed` entry that matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_seq: Option<u64>,
    /// Why the index is not anchored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Every input promotability consulted, with what was found. Absent values are unknown,
/// and an unknown input always counts against promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatingInputs {
    /// The index and the strict check.
    pub index: IndexInput,
    /// `run_manifest.json`.
    pub manifest: InputState,
    /// `run_status.json`.
    pub run_status_file: InputState,
    /// The status it records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_status: Option<BundleStatus>,
    /// The status the index records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_status: Option<BundleStatus>,
    /// `summary.json`'s run status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_status: Option<RunStatus>,
    /// The channel the manifest records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelKind>,
    /// The runner itself ran with no-new-privs or seccomp (manifest host facts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_confined: Option<bool>,
    /// The runner's no-new-privs flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_no_new_privs: Option<bool>,
    /// The runner's seccomp mode (0 none, 1 strict, 2 filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_seccomp_mode: Option<u8>,
    /// The apply preflight.
    pub preflight: PreflightInput,
    /// The index says it was repaired (absent: no readable index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired: Option<bool>,
    /// Expected result files that are absent, sorted.
    #[serde(default)]
    pub missing_artifacts: Vec<String>,
    /// Decision-stage artifacts that are absent or unreadable, sorted.
    #[serde(default)]
    pub decision_artifacts_missing: Vec<String>,
    /// Experiment or mission (manifest's plan, or the gate record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_kind: Option<PlanKind>,
    /// Approvals (missions, or when the kind is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<ApprovalInput>,
    /// The bundle's signature against the trust policy.
    #[serde(default)]
    pub signature: SignatureInput,
    /// The index against the audit log's `run-sealed` entry.
    #[serde(default)]
    pub anchor: AnchorInput,
    /// A merged bundle's shards (the manifest's `shards`) that were failed, interrupted or
    /// not promotable when merged, by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards_incomplete: Vec<u32>,
}

/// The derived verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Promotability {
    /// True only when no reason holds.
    pub promotable: bool,
    /// Every reason that holds, sorted by name.
    pub reasons: Vec<Reason>,
    /// What was consulted and found.
    pub gating_inputs: GatingInputs,
}

/// The tool that emitted the packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmittedBy {
    /// `nexusmon`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// `promotion_packet.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon promotion packet")]
pub struct PromotionPacket {
    /// [`PACKET_VERSION`].
    pub packet_version: u32,
    /// The run the packet is about.
    pub run_id: String,
    /// The plan.
    pub plan: PacketPlan,
    /// The bundle.
    pub bundle: PacketBundle,
    /// Pointers to the bundle's decision artifacts and governance files, sorted by path.
    pub artifacts: Vec<ArtifactPointer>,
    /// What the run found.
    pub summary: PacketSummary,
    /// The governance record, `null` when the bundle carries none.
    #[schemars(schema_with = "nullable::<GovernanceSlot>")]
    pub governance: Option<GovernanceSlot>,
    /// The audit-log head when the packet was emitted (`null` without a state directory).
    /// `audit verify --anchors <packet>` checks it.
    #[schemars(schema_with = "nullable::<AuditHead>")]
    pub audit_head: Option<AuditHead>,
    /// The emitting tool.
    pub emitted_by: EmittedBy,
    /// Derived from the bundle only.
    pub promotability: Promotability,
}

/// `T` or an explicit `null` (the packet writes `null` rather than leaving a slot out).
fn nullable<T: JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let inner = g.subschema_for::<T>();
    schemars::json_schema!({ "anyOf": [inner, { "const": null, "description": "none" }] })
}

impl PromotionPacket {
    /// The artifact pointer of bundle member `member`.
    pub fn artifact(&self, member: &str) -> Option<&ArtifactPointer> {
        self.artifacts.iter().find(|a| a.member == member)
    }
}
