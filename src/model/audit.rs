//! Lines of the audit log `.nexusmon/audit.jsonl`.
//!
//! Every line is one compact JSON object with sorted keys. Line 0 is the genesis line (kind
//! `genesis`, `data.log` and a random `data.log_id`); its `prev` is the blake3 of
//! `"nexusmon-audit-log/v1 <log_id>"`, so the digest of one log never stands for another.
//! Every later line's `prev` is the blake3 of the previous line's exact bytes (without the
//! newline) and its `seq` is its line index.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The name of the log format, in the genesis line and its domain-separation header.
pub const AUDIT_LOG_FORMAT: &str = "nexusmon-audit-log/v1";

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon audit log line")]
pub struct AuditEntry {
    /// The line's index, from 0 (the genesis line).
    pub seq: u64,
    /// When it was written (RFC 3339, UTC).
    pub ts: String,
    /// blake3 (hex) of the previous line's bytes without the newline; for the genesis line,
    /// of `"nexusmon-audit-log/v1 <log_id>"`.
    pub prev: String,
    /// What happened: `genesis`, `run-started`, `run-refused`, `run-sealed`,
    /// `approval-recorded`, `approval-rejected`, `approval-used`, `promotion`, `evolution`,
    /// `capability-unlocked`, `capability-revoked`, `omen-recorded`, `omen-cleared`,
    /// `recovered`.
    pub kind: String,
    /// The entry's payload (depends on `kind`).
    pub data: serde_json::Value,
}
