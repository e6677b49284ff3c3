//! The expected matrix, the normalized event rows, mismatch packets and the summary.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------------------
// Expected matrix, normalized events, mismatches, summary
// ---------------------------------------------------------------------------------------

/// One expected-matrix entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExpectedEntry {
    /// The profile.
    pub profile_id: String,
    /// The probe.
    pub probe_id: String,
    /// The expected decision.
    pub expected: Expectation,
    /// True for control probes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control: bool,
    /// The mission task this scenario is (missions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The tasks it runs after, sorted (missions only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// `expected_matrix.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExpectedMatrix {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The plan.
    pub plan_id: String,
    /// Scenario id → expectation.
    pub scenarios: BTreeMap<String, ExpectedEntry>,
}

/// A lane's outcome in a normalized row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LaneCell {
    /// The outcome.
    pub outcome: Outcome,
    /// Where it ended.
    pub stage: Stage,
    /// The errno name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_name: Option<String>,
}

/// The oracle's cell in a normalized row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OracleCell {
    /// The decision.
    pub decision: OracleDecision,
    /// The deciding sentence.
    pub reason: String,
}

/// One row of `runtime_events.normalized.jsonl`: a scenario with every lane joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "nexusmon normalized row (one line of runtime_events.normalized.jsonl, its `$shared` values merged in)"
)]
pub struct NormalizedRow {
    /// `<profile>:<probe>`.
    pub scenario_id: String,
    /// The profile.
    pub profile_id: String,
    /// The probe.
    pub probe_id: String,
    /// The operation.
    pub operation: Operation,
    /// The expanded target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The expectation.
    pub expected: Expectation,
    /// True for control probes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control: bool,
    /// Baseline lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<LaneCell>,
    /// Scenario lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<LaneCell>,
    /// Oracle lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<OracleCell>,
    /// Baseline vs scenario (absent unless both ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
    /// Mismatch kinds of this scenario, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<MismatchKind>,
    /// Passed only on retry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flaky: bool,
    /// The mission task this row is (missions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The tasks it runs after, sorted (missions only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// For a task that did not run: the task whose failure skipped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
}

/// `runtime_events.normalized.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NormalizedEvents {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// Sorted by scenario id.
    pub rows: Vec<NormalizedRow>,
}

/// One line of `mismatch_packets.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MismatchPacket {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `<profile>:<probe>`.
    pub scenario_id: String,
    /// The kind.
    pub kind: MismatchKind,
    /// The profile.
    pub profile_id: String,
    /// The probe.
    pub probe_id: String,
    /// The operation.
    pub operation: Operation,
    /// The expanded target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The expectation.
    pub expected: Expectation,
    /// The scenario lane's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Outcome>,
    /// Its stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// Its errno name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_name: Option<String>,
    /// The baseline lane's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Outcome>,
    /// The oracle's decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<OracleDecision>,
    /// The oracle's deciding sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_reason: Option<String>,
    /// The oracle's deciding rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_rule: Option<CitedRule>,
    /// Baseline vs scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
    /// One sentence saying what is wrong.
    pub message: String,
    /// The mission task (missions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

/// `mismatch_summary.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MismatchSummary {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// Number of mismatch packets.
    pub total: u64,
    /// Count per kind (every kind listed, zeros included).
    pub by_kind: BTreeMap<String, u64>,
    /// Count per profile.
    pub by_profile: BTreeMap<String, u64>,
    /// Scenarios with at least one mismatch, sorted.
    pub scenarios: Vec<String>,
}

/// Counts of outcomes in one lane.
pub type OutcomeCounts = BTreeMap<String, u64>;

/// A note about one observation (leaks, truncation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct ObservationNote {
    /// `<profile>:<probe>`.
    pub scenario_id: String,
    /// The lane.
    pub lane: Lane,
    /// What happened.
    pub note: String,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// The plan.
    pub plan_id: String,
    /// `plan_digest`.
    pub plan_digest: Digest,
    /// `ok`, `partial`, `failed`, `dry`.
    pub status: RunStatus,
    /// The process exit code this run maps to.
    pub exit_code: i32,
    /// Why, in one sentence.
    pub exit_reason: String,
    /// The channel.
    pub channel: ChannelKind,
    /// Number of scenarios.
    pub scenarios: u64,
    /// Outcome counts per executing lane.
    pub outcomes: BTreeMap<String, OutcomeCounts>,
    /// Oracle decision counts.
    pub oracle: BTreeMap<String, u64>,
    /// Attribution counts.
    pub attribution: BTreeMap<String, u64>,
    /// Mismatch counts per kind.
    pub mismatches: BTreeMap<String, u64>,
    /// Scenarios that passed only on retry.
    pub flaky: Vec<String>,
    /// Whether flaky scenarios fail the run.
    pub fail_on_flaky: bool,
    /// Profiles whose scenario lane could not be applied.
    pub apply_failed_profiles: Vec<String>,
    /// `best-effort` profiles the kernel enforced only partially.
    pub partially_enforced_profiles: Vec<String>,
    /// Leaked descendants.
    pub leaked: Vec<ObservationNote>,
    /// Truncated outputs.
    pub truncated: Vec<ObservationNote>,
    /// Descendants found re-parented to the runner at the end of the run that could not be
    /// attributed to one child (killed and reaped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unattributed_leaks: Vec<Leaked>,
    /// Review flags from the governance gate (e.g. `review-required`), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub governance_flags: Vec<String>,
    /// The kernel's Landlock audit records: collected, lost or unavailable, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_audit: Option<KernelAuditReport>,
    /// A mission's tasks: how many succeeded, failed and were skipped (missions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<TaskSummary>,
    /// Resource use summed per lane (children only).
    pub rusage: BTreeMap<String, Rusage>,
    /// Children started per lane (attempts included).
    pub children: BTreeMap<String, u64>,
    /// The runner's own peak RSS (`VmHWM`), KiB, when the results were assembled.
    pub runner_max_rss_kib: u64,
    /// The run's wall time, microseconds.
    pub wall_us: u64,
}

/// The tasks of a mission run, in `summary.json`.
///
/// A task **succeeded** when its scenario-lane outcome equals its expectation (a flaky pass
/// included); it **failed** otherwise (a decision against the expectation, an error, a
/// timeout, an apply failure); it was **skipped** when a task it depends on, directly or
/// not, failed: skipped tasks never run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskSummary {
    /// Tasks selected.
    pub total: u64,
    /// Tasks whose outcome matched their expectation.
    pub succeeded: u64,
    /// Tasks that ran and did not match their expectation.
    pub failed: u64,
    /// Tasks not run because a dependency failed.
    pub skipped: u64,
    /// Ids of the failed tasks, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_tasks: Vec<String>,
    /// Ids of the skipped tasks, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_tasks: Vec<String>,
    /// The task graph in dependency order: each layer's tasks depend only on earlier
    /// layers (tasks of one layer may run in parallel).
    pub layers: Vec<Vec<String>>,
    /// How many tasks could run at once (1 without the `parallel-missions` capability).
    pub max_parallel: u32,
}

impl Summary {
    /// An empty summary for a run whose `summary.json` could not be read (a report still
    /// shows what else is there, under a banner that says the bundle is not valid).
    pub fn placeholder(run_id: &str, plan_id: &str) -> Self {
        Self {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: run_id.to_string(),
            plan_id: plan_id.to_string(),
            plan_digest: Digest {
                blake3: String::new(),
                sha256: None,
            },
            status: RunStatus::Failed,
            exit_code: crate::error::exit_code::FINDINGS,
            exit_reason: "summary.json is missing or unreadable".into(),
            channel: ChannelKind::Clean,
            scenarios: 0,
            outcomes: BTreeMap::new(),
            oracle: BTreeMap::new(),
            attribution: BTreeMap::new(),
            mismatches: BTreeMap::new(),
            flaky: Vec::new(),
            fail_on_flaky: true,
            apply_failed_profiles: Vec::new(),
            partially_enforced_profiles: Vec::new(),
            leaked: Vec::new(),
            truncated: Vec::new(),
            unattributed_leaks: Vec::new(),
            governance_flags: Vec::new(),
            kernel_audit: None,
            tasks: None,
            rusage: BTreeMap::new(),
            children: BTreeMap::new(),
            runner_max_rss_kib: 0,
            wall_us: 0,
        }
    }
}
