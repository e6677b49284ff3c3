//! Files of the bundle's commit protocol: `run_status.json`,
//! `artifact_index.json` (the seal) and `LATEST`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::util::digest::Digest;

/// Version of the index layout.
pub const INDEX_SCHEMA_VERSION: u32 = 1;

/// The state of a bundle in `run_status.json` and the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BundleStatus {
    /// The run is writing; never valid to read as evidence.
    InProgress,
    /// The run finished and wrote every result.
    Complete,
    /// The runner failed; the bundle holds what was written before the failure.
    Failed,
    /// The run was interrupted (SIGINT, SIGTERM, SIGHUP): its children were killed and the
    /// bundle holds what was observed until then. Never promotable.
    Interrupted,
}

/// `run_status.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunStatusFile {
    /// Version of this file's layout.
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// in_progress → complete | failed | interrupted.
    pub status: BundleStatus,
    /// Where a failed run stopped (`preflight`, `execute`, `write`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_stage: Option<String>,
    /// The error of a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the run started (RFC 3339 UTC).
    pub started_at: String,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// The head of the audit log `{seq, blake3}` anchored in indexes, `LATEST` and packets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon audit log head")]
pub struct AuditHead {
    /// Sequence number of the last line.
    pub seq: u64,
    /// blake3 of that line's bytes (without the newline).
    pub blake3: String,
}

/// One indexed file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// Path relative to the bundle, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// blake3, hex.
    pub blake3: String,
}

/// `artifact_index.json`: the seal. It never lists itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon artifact index")]
pub struct ArtifactIndex {
    /// [`INDEX_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// complete | failed | interrupted (never in_progress in a sealed bundle).
    pub status: BundleStatus,
    /// Digest algorithm of the entries: `blake3`.
    pub algorithm: String,
    /// Every file of the bundle but the index, sorted by path (bytewise).
    pub entries: Vec<IndexEntry>,
    /// Number of entries.
    pub file_count: u64,
    /// Sum of entry sizes.
    pub total_bytes: u64,
    /// Files the run meant to write but did not.
    pub missing: Vec<String>,
    /// `plan_digest` of the plan that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<Digest>,
    /// The audit-log head when the bundle was sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<AuditHead>,
    /// True if written by `reindex-bundle --repair` (see `repair_log.json`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repaired: bool,
    /// Version of the tool that wrote the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_version: Option<String>,
}

/// `out/LATEST`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Latest {
    /// The newest sealed run.
    pub run_id: String,
    /// blake3 of its `artifact_index.json` bytes.
    pub artifact_index_blake3: String,
    /// The audit-log head at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<AuditHead>,
}

/// `repair_log.json`: every `reindex-bundle --repair` of a bundle, oldest first. The file is
/// itself indexed, so the record of a repair is sealed with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon repair log")]
pub struct RepairLog {
    /// [`INDEX_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id of the repaired bundle.
    pub run_id: String,
    /// One record per repair.
    pub repairs: Vec<RepairRecord>,
}

/// One repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairRecord {
    /// When (RFC 3339 UTC).
    pub repaired_at: String,
    /// Tool version that repaired.
    pub tool_version: String,
    /// blake3 of the index that was replaced (absent if there was none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_index_blake3: Option<String>,
    /// The index blake3 `LATEST` recorded for this bundle, when it disagreed with the
    /// replaced index (one of the two was changed after the seal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_recorded_blake3: Option<String>,
    /// What the old index said against what was on disk.
    pub before: RepairBefore,
    /// What the new index says.
    pub after: RepairAfter,
}

/// The state before a repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairBefore {
    /// `ok`, `missing` or `unparseable`: the state of the old index.
    pub index: String,
    /// Indexed files that were gone.
    pub missing: Vec<String>,
    /// Indexed files whose size or digest differed.
    pub mismatched: Vec<RepairMismatch>,
    /// Files on disk the old index did not list.
    pub unindexed: Vec<IndexEntry>,
}

/// A file whose content no longer matched its index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairMismatch {
    /// Path in the bundle.
    pub path: String,
    /// What the old index said.
    pub indexed: IndexEntry,
    /// What was found.
    pub found: IndexEntry,
}

/// The state after a repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairAfter {
    /// Files the new index lists, not counting `BLAKE3SUMS` and this log.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// The new index's `missing` list: the old one plus every indexed file that was gone.
    pub missing: Vec<String>,
}
