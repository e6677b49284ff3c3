//! `nexusmon diff A B`: what changed between two runs, each change with a severity. Pure
//! data; `promote::diff` computes it, `report::diff` renders it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::util::jsondiff::FieldChange;

/// The `schema` of `diff --json`.
pub const DIFF_SCHEMA: &str = "nexusmon/diff/v1";

/// How much a change matters, least first. `--fail-on` names a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Context: host facts, definitions whose decisions did not change.
    Info,
    /// A difference worth a look (another errno, the baseline moved, an oracle change that
    /// still agrees, scenarios added or removed).
    Changed,
    /// Something that worked no longer does: allow → deny, the oracle no longer agrees
    /// with the kernel, weaker enforcement, an apply failure.
    Breaking,
    /// A policy hole opened: a scenario expected to be denied is now allowed.
    Critical,
}

impl Severity {
    /// Every severity, most serious first.
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::Breaking,
        Severity::Changed,
        Severity::Info,
    ];

    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Changed => "changed",
            Severity::Breaking => "breaking",
            Severity::Critical => "critical",
        }
    }
}

/// One side of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct DiffSide {
    /// The path given.
    pub source: String,
    /// The run id.
    pub run_id: String,
    /// The plan.
    pub plan_id: Option<String>,
    /// blake3 of its `plan_digest`.
    pub plan_digest: Option<String>,
    /// The kernel release.
    pub kernel: Option<String>,
    /// The kernel's Landlock ABI.
    pub landlock_abi: Option<u8>,
    /// The bundle verified against its seal.
    pub verified: bool,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Change {
    /// How much it matters.
    pub severity: Severity,
    /// What kind of change (stable words: `scenario-added`, `scenario-removed`,
    /// `decision-changed`, `baseline-changed`, `oracle-changed`, `agreement-lost`,
    /// `agreement-regained`, `expectation-changed`, `mismatches-changed`,
    /// `enforcement-changed`, `apply-failed`, `apply-recovered`, `profile-changed`,
    /// `probe-changed`, `plan-changed`, `host-changed`, `bundle-not-verified`).
    pub kind: String,
    /// What it is about: a scenario id, `profile:<id>`, `probe:<id>`, `plan`, `host`.
    pub subject: String,
    /// The lane, for decision changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// The value before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The value after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// One sentence.
    pub message: String,
    /// For definition changes: every field that changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// `diff --json`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(title = "nexusmon run diff")]
pub struct RunDiff {
    /// [`DIFF_SCHEMA`].
    pub schema: String,
    /// The earlier run.
    pub a: DiffSide,
    /// The later run.
    pub b: DiffSide,
    /// Every change, most serious first, then by subject.
    pub changes: Vec<Change>,
    /// Changes per severity (every severity listed).
    pub counts: BTreeMap<String, u64>,
    /// The most serious severity present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highest: Option<Severity>,
}

impl RunDiff {
    /// Whether any change is at least `threshold`.
    pub fn reaches(&self, threshold: Severity) -> bool {
        self.highest.is_some_and(|h| h >= threshold)
    }
}
