//! `.nexusmon/omens.json`: failure fingerprints counted across runs.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `schema` of the omens file.
pub const OMENS_SCHEMA: &str = "nexusmon/omens/v1";

/// The omens file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon omens")]
pub struct OmensFile {
    /// [`OMENS_SCHEMA`].
    pub schema: String,
    /// Omens keyed by fingerprint (64 hex characters).
    pub omens: BTreeMap<String, Omen>,
}

impl Default for OmensFile {
    fn default() -> Self {
        Self {
            schema: OMENS_SCHEMA.to_string(),
            omens: BTreeMap::new(),
        }
    }
}

/// One failure fingerprint: the same scenario of the same plan failing the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Omen {
    /// The plan.
    pub plan_id: String,
    /// The scenario, `<profile>:<probe>`.
    pub scenario_id: String,
    /// The mismatch kind, e.g. `expected-deny-observed-allow`.
    pub mismatch_kind: String,
    /// The observed outcome, e.g. `allow`.
    pub outcome: String,
    /// Failures seen in total.
    pub count: u64,
    /// `count` when it was last cleared (0 if never): thresholds apply to
    /// `count - cleared_at`.
    #[serde(default)]
    pub cleared_at: u64,
    /// First failure (RFC 3339).
    pub first_seen: String,
    /// Latest failure (RFC 3339).
    pub last_seen: String,
    /// The run of the latest failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_id: Option<String>,
    /// Every clearance, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clearances: Vec<ClearanceNote>,
}

/// A clearance applied to an omen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearanceNote {
    /// The approver who cleared it.
    pub approver: String,
    /// Fingerprint of the key that signed the clearance (`SHA256:…`).
    pub key_fingerprint: String,
    /// When it was cleared (RFC 3339).
    pub at: String,
    /// The omen's count it cleared.
    pub count: u64,
    /// blake3 of the clearance record's bytes.
    pub record_blake3: String,
}
