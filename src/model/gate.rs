//! The governance gate's record in a bundle (`governance/gate.json`) and the verdict types
//! it holds. These are file formats, so they live in `model`; the rules that produce them
//! (and their inherent methods) are in `govern`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

use crate::model::evolution::{Capability, Level};
use crate::model::plan::{PlanKind, Rank};
use crate::util::digest::Digest;

/// `governance/gate.json`: the gate's decision as recorded in a bundle.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(title = "nexusmon gate record")]
pub struct GateRecord {
    /// [`GATE_RECORD_SCHEMA`].
    pub schema: String,
    /// When the gate decided (RFC 3339).
    pub evaluated_at: String,
    /// The plan.
    pub plan_id: String,
    /// Its `plan_digest`.
    pub plan_digest: Digest,
    /// The decision.
    pub decision: GateVerdict,
    /// Approval verdicts; paths are bundle-relative copies (see `copies`).
    pub approvals: ApprovalCheck,
    /// Original path of each copied record or signature → its bundle path.
    pub copies: BTreeMap<String, String>,
    /// Evolution capabilities at the time.
    pub capabilities: Capabilities,
}

/// The rules' verdict, with every reason, as recorded in `governance/gate.json` and the
/// audit log. Not [`crate::exec::GateDecision`], the runner-facing answer (allowed, notes,
/// files to copy, the refusal text) that the run hook translates this verdict into. The
/// schema keeps its published name and description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "GateDecision", description = "The gate's decision.")]
pub struct GateVerdict {
    /// allow | allow-flagged | refuse.
    pub outcome: Outcome,
    /// Experiment or mission.
    pub kind: PlanKind,
    /// The mission's rank.
    pub rank: Option<Rank>,
    /// Every rule that applied, in evaluation order (stable names; see module docs).
    pub reasons: Vec<String>,
    /// Review flags for the summary and packet (`review-required`, `omen-warning`,
    /// `omen-needs-approval`), sorted.
    pub flags: Vec<String>,
    /// Valid approvals the rules require.
    pub required_approvals: u32,
    /// Valid approvals that count towards it.
    pub valid_approvals: u32,
    /// The approvers counted, sorted.
    pub approvers: Vec<String>,
    /// Composite score (missions).
    pub composite: Option<Composite>,
    /// Omens on the plan's scenarios at warn or above.
    pub omens: Vec<OmenHit>,
    /// Capabilities that changed the decision.
    pub capabilities_used: Vec<Capability>,
    /// Parallelism cap for the run (missions without `parallel-missions`: 1).
    pub max_jobs: Option<u32>,
    /// A dry run.
    pub dry: bool,
    /// The rank the mission is gated as: the stricter of its own rank and each of its
    /// workers' `risk_level` (absent for experiments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_rank: Option<Rank>,
    /// The workers the mission uses, as the gate saw them (sorted by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerGate>,
    /// The evolution level the capabilities came from (when a worker needed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evolution_level: Option<Level>,
    /// Why the trust file is broken (`file:line: why`), when it is and approvals were
    /// needed (reason `trust-file-broken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_broken: Option<String>,
}

/// A worker as the gate judged it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub struct WorkerGate {
    /// The worker.
    pub name: String,
    /// Its declared risk.
    pub risk_level: Rank,
    /// Its declaration demands an approval.
    pub requires_approval: bool,
    /// Capabilities it needs that the evolution state does not hold, each with the level
    /// that unlocks it and that level's XP threshold.
    pub locked: Vec<LockedCapability>,
}

/// A capability a worker needs and the evolution state has not unlocked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub struct LockedCapability {
    /// The capability.
    pub capability: Capability,
    /// The level that unlocks it.
    pub unlocked_at: Level,
    /// That level's XP threshold.
    pub xp: u64,
}

/// The gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Run.
    Allow,
    /// Run, flagged for review in the summary and packet.
    AllowFlagged,
    /// Do not run (exit 4); nothing executes.
    Refuse,
}

/// Composite score band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Band {
    /// ≥ 60.
    Safe,
    /// 30–59: needs an approval.
    Borderline,
    /// < 30: refused.
    Failing,
}

/// A composite score and its band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Composite {
    /// 0–100.
    pub score: u8,
    /// Its band.
    pub band: Band,
}

/// An omen that matters to the gate (level warn or above).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub struct OmenHit {
    /// The scenario.
    pub scenario_id: String,
    /// The fingerprint.
    pub fingerprint: String,
    /// The mismatch kind.
    pub mismatch_kind: String,
    /// The level.
    pub level: OmenLevel,
    /// Failures since the last clearance.
    pub count: u64,
}

/// The verdict on a set of approval records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ApprovalCheck {
    /// Records that count: distinct approvers and distinct keys.
    pub valid: Vec<ValidApproval>,
    /// Records that do not.
    pub rejected: Vec<Rejected>,
    /// The state directory's trust file does not parse (`file:line: why`): no record can
    /// be verified, so every one is rejected (`trust-file-broken`) and a plan that needs an
    /// approval is refused with that reason, not as if nobody had approved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_broken: Option<String>,
}

/// A record that counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ValidApproval {
    /// The approver principal.
    pub approver: String,
    /// `SHA256:…` of the signing key.
    pub key_fingerprint: String,
    /// The record.
    pub record_path: PathBuf,
    /// Its signature.
    pub sig_path: PathBuf,
    /// Roles the trust file grants the key.
    pub roles: Vec<String>,
    /// When it was issued.
    pub issued_at: String,
    /// When it expires.
    pub expires_at: String,
    /// blake3 of the record's bytes.
    pub record_blake3: String,
    /// The record's nonce.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    /// The runs it may be used for (absent: any number until it expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
    /// Runs that already used it (limited-use approvals, from the audit log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<u32>,
}

/// A record that does not count, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Rejected {
    /// The record.
    pub path: PathBuf,
    /// The stable reason.
    pub reason: RejectReason,
    /// What exactly.
    pub detail: String,
}

/// Why a signature does not make a record count (stable kebab-case names).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// The record file cannot be read.
    RecordUnreadable,
    /// No `<record>.sig` beside the record.
    SignatureMissing,
    /// The `.sig` file is not an armored SSH signature.
    SignatureMalformed,
    /// The signature was made for another namespace (e.g. `-n git`).
    WrongNamespace,
    /// The signing key is not in the trust file.
    UnknownKey,
    /// The signature does not verify over the record's bytes (the record was changed).
    SignatureInvalid,
    /// The record is not a valid record of its kind.
    MalformedRecord,
    /// The key's trust-file line does not name the record's approver.
    KeyNotTrustedForPrincipal,
    /// The key's `namespaces=` option excludes nexusmon.
    NamespaceNotAllowed,
    /// Before the key's `valid-after`.
    KeyNotYetValid,
    /// At or after the key's `valid-before`.
    KeyExpired,
    /// The key's line does not grant the `approver` role.
    MissingRole,
    /// The record claims a role the trust file does not grant.
    RoleNotGranted,
    /// The record approves another plan.
    PlanIdMismatch,
    /// The plan, one of its probes or one of its profiles changed since the approval.
    PlanDigestMismatch,
    /// The record's scope is not the one asked for.
    ScopeMismatch,
    /// The decision is not `approve`.
    DecisionNotApprove,
    /// `expires_at` has passed.
    Expired,
    /// `issued_at` is in the future.
    NotYetValid,
    /// Another valid record has the same approver.
    DuplicateApprover,
    /// Another valid record was signed with the same key.
    DuplicateKey,
    /// A clearance for another state of the omen (its count changed since).
    StaleClearance,
    /// A limited-use approval already used as many times as it allows.
    UsesExhausted,
    /// The signing key is too weak to count (an RSA key below 2048 bits).
    WeakKey,
    /// The trust file does not parse, so no signature can be checked against it.
    TrustFileBroken,
}

/// The capabilities the gate consults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Capabilities {
    /// The level they come from.
    pub level: Option<Level>,
    /// Held capabilities.
    pub held: BTreeSet<Capability>,
}

/// How serious an omen is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OmenLevel {
    /// Below the warning threshold.
    Quiet,
    /// ≥ 3: warn.
    Warn,
    /// ≥ 7: the scenario needs an approval to run.
    NeedsApproval,
    /// ≥ 13: locked until cleared by an approver.
    Locked,
}
