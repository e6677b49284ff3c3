//! Every result file of a run bundle: the run manifest, the apply
//! preflight, lane observations, oracle verdicts, the normalized event rows, path
//! witnesses, mismatches, the summary, and the NDJSON events `run --json` streams.
//!
//! These are files the tool writes (never user input), so they are not
//! `deny_unknown_fields`; every one goes through `util::json::to_sorted_pretty` (or
//! `to_sorted_line`), so key order is stable. Times and resource usage are integers
//! (microseconds, KiB); every list is sorted by scenario id, then lane.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::plan::Expectation;
use super::registry::Operation;
use crate::util::digest::Digest;

/// Version of the result-file layouts written by this build. 2: lane results, oracle
/// verdicts, path witnesses and normalized rows are sorted JSON Lines (`*.jsonl`) whose
/// repeated values are in `shared_values.json` (`bundle::lines`); 1 was one pretty JSON
/// document per file.
pub const RESULTS_SCHEMA_VERSION: u32 = 2;

/// Version of the NDJSON event stream (`"v"` in every event).
pub const EVENTS_VERSION: u32 = 1;

// ---------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------

/// A lane of a run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Lane {
    /// The probe with no profile applied.
    Baseline,
    /// The probe with the profile enforced by the kernel.
    Scenario,
    /// The static prediction.
    Oracle,
}

impl Lane {
    /// The word used in files and log paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Baseline => "baseline",
            Lane::Scenario => "scenario",
            Lane::Oracle => "oracle",
        }
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one lane saw for one scenario.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The operation went through (or failed for a reason the policy does not decide; see
    /// the per-operation errno table).
    Allow,
    /// The policy denied it (EACCES/EPERM/EXDEV as documented, or a declared deny exit code).
    Deny,
    /// Anything else: the target is missing, the fixture is wrong, the helper crashed.
    Error,
    /// The runner's wall timeout killed the probe.
    Timeout,
    /// The profile could not be applied (an apply failure is not a denial).
    ApplyFailed,
    /// Not run (a dependency failed, or the lane was not selected).
    Skipped,
}

impl Outcome {
    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::ApplyFailed => "apply-failed",
            Outcome::Skipped => "skipped",
        }
    }

    /// True for `allow` and `deny`: outcomes that are a decision.
    pub fn is_decision(self) -> bool {
        matches!(self, Outcome::Allow | Outcome::Deny)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an observation ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Resolving the target or creating fixtures.
    Resolve,
    /// Applying the profile (rlimits, no-new-privs, Landlock, seccomp, cgroup).
    Apply,
    /// Starting the program (`execve`).
    Exec,
    /// The operation itself.
    Operation,
    /// The runner's timeout.
    Timeout,
}

impl Stage {
    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Resolve => "resolve",
            Stage::Apply => "apply",
            Stage::Exec => "exec",
            Stage::Operation => "operation",
            Stage::Timeout => "timeout",
        }
    }
}

/// Baseline vs scenario.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Attribution {
    /// Baseline allow, scenario deny: the profile made the difference.
    ProfileShaped,
    /// Denied in both: something other than the profile denies it.
    Ambient,
    /// Allowed in both.
    Unaffected,
    /// Baseline deny, scenario allow: should not happen.
    Anomalous,
    /// An error, timeout, apply failure or skip in either lane.
    Inconclusive,
}

impl Attribution {
    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::ProfileShaped => "profile-shaped",
            Attribution::Ambient => "ambient",
            Attribution::Unaffected => "unaffected",
            Attribution::Anomalous => "anomalous",
            Attribution::Inconclusive => "inconclusive",
        }
    }
}

/// Kinds of mismatch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum MismatchKind {
    /// Expected deny, the kernel allowed it: a policy hole.
    ExpectedDenyObservedAllow,
    /// Expected allow, the kernel denied it.
    ExpectedAllowObservedDeny,
    /// The oracle's allow/deny differs from the scenario lane's.
    OracleDivergence,
    /// The profile could not be applied.
    ApplyFailed,
    /// The scenario lane ended in an error or a timeout.
    Inconclusive,
    /// Both the oracle and the kernel denied, but the kernel's audited blockers are not
    /// the rights the oracle predicted.
    BlockerDivergence,
}

impl MismatchKind {
    /// Every kind, in order.
    pub const ALL: [MismatchKind; 6] = [
        MismatchKind::ExpectedDenyObservedAllow,
        MismatchKind::ExpectedAllowObservedDeny,
        MismatchKind::OracleDivergence,
        MismatchKind::ApplyFailed,
        MismatchKind::Inconclusive,
        MismatchKind::BlockerDivergence,
    ];

    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            MismatchKind::ExpectedDenyObservedAllow => "expected-deny-observed-allow",
            MismatchKind::ExpectedAllowObservedDeny => "expected-allow-observed-deny",
            MismatchKind::OracleDivergence => "oracle-divergence",
            MismatchKind::ApplyFailed => "apply-failed",
            MismatchKind::Inconclusive => "inconclusive",
            MismatchKind::BlockerDivergence => "blocker-divergence",
        }
    }
}

/// The run's overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// No mismatches.
    Ok,
    /// Mismatches (or flaky scenarios, or apply failures).
    Partial,
    /// The runner failed.
    Failed,
    /// `--dry`: nothing executed.
    Dry,
    /// A signal (SIGINT, SIGTERM, SIGHUP) interrupted the run; what was observed is kept.
    Interrupted,
}

impl RunStatus {
    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Dry => "dry",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// The oracle's decision.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum OracleDecision {
    /// The profile allows it.
    Allow,
    /// The profile denies it.
    Deny,
    /// The operation is not governed by anything the profile can enforce.
    NotEnforceable,
}

impl OracleDecision {
    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            OracleDecision::Allow => "allow",
            OracleDecision::Deny => "deny",
            OracleDecision::NotEnforceable => "not-enforceable",
        }
    }
}

/// Landlock's enforcement status of a ruleset, as the kernel reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RulesetStatus {
    /// Every requested restriction is enforced.
    FullyEnforced,
    /// Some requested restrictions are enforced (best effort).
    PartiallyEnforced,
    /// Nothing is enforced (no Landlock, or nothing requested).
    NotEnforced,
}

impl RulesetStatus {
    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            RulesetStatus::FullyEnforced => "fully-enforced",
            RulesetStatus::PartiallyEnforced => "partially-enforced",
            RulesetStatus::NotEnforced => "not-enforced",
        }
    }
}

/// How children are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelKind {
    /// Inherit the runner's environment and working directory.
    Direct,
    /// Scrubbed: empty environment plus the profile's, new session, stdin /dev/null, only
    /// fds 0-2, private HOME/TMPDIR, umask 022.
    Clean,
}

impl ChannelKind {
    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Direct => "direct",
            ChannelKind::Clean => "clean",
        }
    }
}

/// Where an effective timeout came from ("no hidden limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TimeoutSource {
    /// The probe's `timeout_ms`.
    Probe,
    /// The profile's `limits.wall_timeout_ms`.
    Profile,
    /// The plan's `execution.timeout_ms`.
    Plan,
    /// The runner's default (10 000 ms).
    Default,
    /// The worker's declared `timeout_ms` (worker tasks).
    Worker,
}

mod isolation;
mod kernel;
mod manifest;
mod observation;
mod oracle;
mod summary;

pub use isolation::*;
pub use kernel::*;
pub use manifest::*;
pub use observation::*;
pub use oracle::*;
pub use summary::*;
