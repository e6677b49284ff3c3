//! Operator decisions signed with SSH keys: approval records for plans and clearance records for locked omens.
//!
//! Both are fixed-layout JSON written by the tool (keys sorted, two-space indent, trailing
//! newline) and signed **as bytes** with `ssh-keygen -Y sign -n nexusmon-approval-v1` or the
//! tool's own signer; a verifier checks the signature over the exact bytes on disk before it
//! parses them, and never re-serializes a record.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::id::Id;
use super::plan::Rank;
use crate::util::digest::Digest;

/// The `schema` of an approval record.
pub const APPROVAL_SCHEMA: &str = "nexusmon/approval/v1";
/// The `schema` of an omen clearance record.
pub const CLEARANCE_SCHEMA: &str = "nexusmon/omen-clearance/v1";
/// The SSHSIG namespace of every operator signature. A fixed namespace means a signature
/// made for something else (a git commit: `-n git`, a file: `-n file`) never counts here.
pub const SIGNATURE_NAMESPACE: &str = "nexusmon-approval-v1";
/// The scope of an approval for running a plan (`approve --scope`, the default).
pub const RUN_SCOPE: &str = "run";

/// What the operator decided.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Go.
    Approve,
    /// No-go. A signed rejection is a record of the decision; it never counts as approval.
    Reject,
}

impl Decision {
    /// `approve` / `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

/// An approval record: `approvals/<plan_id>.<approver>.json` beside the plan, signed as
/// `<record>.sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon approval record")]
pub struct ApprovalRecord {
    /// [`APPROVAL_SCHEMA`].
    pub schema: String,
    /// The approved plan's id.
    pub plan_id: Id,
    /// Where the plan was when it was approved, relative to the project root
    /// (informational: the digest, not the path, binds the approval).
    pub plan_path: String,
    /// `plan_digest` of the plan with every probe and profile it resolves: editing any of
    /// them voids the approval.
    pub plan_digest: Digest,
    /// What the approval is for; `run` approves running the plan.
    pub scope: String,
    /// `approve` (or `reject`, which never counts).
    pub decision: Decision,
    /// The approver: a principal of the signing key's line in the trust file.
    pub approver: String,
    /// Roles the approver claims; each must be granted to the key by the trust file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// When the record was written (RFC 3339, UTC).
    pub issued_at: String,
    /// When it stops counting (RFC 3339, UTC). Every approval expires.
    pub expires_at: String,
    /// 128 random bits, hex: no two records are the same bytes. A limited-use approval's
    /// uses are recorded in the audit log under this nonce.
    pub nonce: String,
    /// How many runs the approval may be used for (`approve --uses N`); absent: any number
    /// until it expires. Each use is an `approval-used` audit entry naming the nonce; once
    /// they reach `uses`, the record no longer counts (`uses-exhausted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub uses: Option<u32>,
    /// The mission's rank when approved (for the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<Rank>,
    /// The mission's `requested_by` when approved (for the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// A clearance of a locked omen: `.nexusmon/clearances/…json`, signed as `<record>.sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon omen clearance record")]
pub struct ClearanceRecord {
    /// [`CLEARANCE_SCHEMA`].
    pub schema: String,
    /// The omen's full fingerprint.
    pub fingerprint: String,
    /// The plan the omen is about.
    pub plan_id: String,
    /// The scenario the omen is about.
    pub scenario_id: String,
    /// The omen's total count when the clearance was written; a clearance only applies to
    /// that count, so it cannot be replayed after the omen fires again.
    pub count: u64,
    /// `approve` clears; `reject` never does.
    pub decision: Decision,
    /// The approver: a principal of the signing key's line in the trust file.
    pub approver: String,
    /// When the record was written (RFC 3339, UTC).
    pub issued_at: String,
    /// When it stops being usable (RFC 3339, UTC).
    pub expires_at: String,
    /// 128 random bits, hex.
    pub nonce: String,
}
