//! Every result file of a run bundle (`DESIGN.md` §6): the run manifest, the apply
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

/// Version of the result-file layouts written by this build.
pub const RESULTS_SCHEMA_VERSION: u32 = 1;

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
}

impl MismatchKind {
    /// Every kind, in order.
    pub const ALL: [MismatchKind; 5] = [
        MismatchKind::ExpectedDenyObservedAllow,
        MismatchKind::ExpectedAllowObservedDeny,
        MismatchKind::OracleDivergence,
        MismatchKind::ApplyFailed,
        MismatchKind::Inconclusive,
    ];

    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            MismatchKind::ExpectedDenyObservedAllow => "expected-deny-observed-allow",
            MismatchKind::ExpectedAllowObservedDeny => "expected-allow-observed-deny",
            MismatchKind::OracleDivergence => "oracle-divergence",
            MismatchKind::ApplyFailed => "apply-failed",
            MismatchKind::Inconclusive => "inconclusive",
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
}

impl RunStatus {
    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Dry => "dry",
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
}

// ---------------------------------------------------------------------------------------
// Observations
// ---------------------------------------------------------------------------------------

/// The effective timeout of a child and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TimeoutSetting {
    /// Wall timeout in milliseconds.
    pub ms: u64,
    /// Where it came from.
    pub source: TimeoutSource,
    /// Grace between SIGTERM and SIGKILL, in milliseconds.
    pub kill_grace_ms: u64,
}

/// Resource use of one child (from `wait4`), integers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Rusage {
    /// Wall time from spawn to reap, microseconds.
    pub wall_us: u64,
    /// User CPU, microseconds.
    pub user_us: u64,
    /// System CPU, microseconds.
    pub sys_us: u64,
    /// Peak resident set size, KiB (`ru_maxrss`). Linux seeds a spawned child's value with
    /// the spawner's resident set at `execve` (fork and vfork alike), so for a small
    /// program this is an upper bound dominated by the runner's own size.
    pub max_rss_kib: u64,
}

impl Rusage {
    /// Add `other` (max RSS is a maximum, the rest sums).
    pub fn add(&mut self, other: &Rusage) {
        self.wall_us += other.wall_us;
        self.user_us += other.user_us;
        self.sys_us += other.sys_us;
        self.max_rss_kib = self.max_rss_kib.max(other.max_rss_kib);
    }
}

/// One captured output stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StreamCapture {
    /// Bytes the child wrote.
    pub bytes: u64,
    /// Bytes kept (at most the cap).
    pub kept: u64,
    /// True if output beyond the cap was counted and discarded.
    pub truncated: bool,
    /// The bundle-relative log file holding the kept bytes (absent when empty, or when the
    /// only output was the helper's result line, kept as `witness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// False if the stream was still open when the runner gave up draining it.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub complete: bool,
}

fn yes() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_true(b: &bool) -> bool {
    *b
}

/// A descendant that outlived its probe, found and killed by the runner.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct Leaked {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`/proc/<pid>/comm`).
    pub comm: String,
    /// How the runner found it: `subreaper` (re-parented to the worker thread that spawned
    /// the probe) or `cgroup` (still in the probe's pids cgroup).
    pub found_by: String,
    /// What the runner did: `sigkill`, or `reaped` if it had already exited.
    pub action: String,
}

/// Process accounting in the probe's pids cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessAccounting {
    /// `pids.max`.
    pub limit: u64,
    /// `pids.peak`: the most processes alive at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<u64>,
    /// Forks the kernel refused at the limit (`pids.events` `max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_forks: Option<u64>,
    /// The mechanism: `pids-cgroup-v1`, `pids-cgroup-v2` or `rlimit-nproc`.
    pub enforced_by: String,
}

/// How the kernel enforced the profile for this observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Enforcement {
    /// Landlock's status.
    pub ruleset: RulesetStatus,
    /// The kernel's Landlock ABI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abi: Option<u8>,
    /// `no_new_privs` was set before the operation.
    pub no_new_privs: bool,
    /// A seccomp filter was installed.
    pub seccomp: bool,
    /// Where the status comes from: `helper` (the builtin helper's own `restrict_self`) or
    /// `preflight` (exec probes: the profile's preflight apply, same ruleset).
    pub reported_by: String,
}

/// One attempt of one lane for one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Attempt {
    /// 1-based attempt number.
    pub attempt: u32,
    /// The outcome.
    pub outcome: Outcome,
    /// Where it ended.
    pub stage: Stage,
    /// The errno of the operation (or of the failed spawn/setup step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// Its name, e.g. `EACCES`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_name: Option<String>,
    /// Human detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The child's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended the child, e.g. `SIGKILL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The path the operation acted on, as the helper resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_path: Option<String>,
    /// The helper's result line, parsed (builtin probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<serde_json::Value>,
    /// Enforcement status (scenario lane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
    /// Resource use.
    pub rusage: Rusage,
    /// stdout.
    pub stdout: StreamCapture,
    /// stderr.
    pub stderr: StreamCapture,
    /// Descendants that outlived the probe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaked: Vec<Leaked>,
    /// Process accounting (when the profile limits processes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<ProcessAccounting>,
}

impl Attempt {
    /// An attempt that ended before any child ran.
    pub fn without_child(outcome: Outcome, stage: Stage, detail: impl Into<String>) -> Self {
        Self {
            attempt: 1,
            outcome,
            stage,
            errno: None,
            errno_name: None,
            detail: detail.into(),
            exit_code: None,
            signal: None,
            resolved_path: None,
            witness: None,
            enforcement: None,
            rusage: Rusage::default(),
            stdout: StreamCapture::default(),
            stderr: StreamCapture::default(),
            leaked: Vec::new(),
            processes: None,
        }
    }
}

/// What one executing lane (baseline or scenario) saw for one scenario. The fields of the
/// deciding (last) attempt are inline; `attempts` lists every attempt when there was more
/// than one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Observation {
    /// `<profile>:<probe>`.
    pub scenario_id: String,
    /// The profile.
    pub profile_id: String,
    /// The probe.
    pub probe_id: String,
    /// The lane.
    pub lane: Lane,
    /// The operation.
    pub operation: Operation,
    /// `builtin` or `exec`.
    pub driver: String,
    /// The target after variable expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The argv run (exec probes), after variable expansion and PATH lookup of `argv[0]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    /// The effective timeout and its source.
    pub timeout: TimeoutSetting,
    /// The deciding attempt.
    #[serde(flatten)]
    pub result: Attempt,
    /// Every attempt, when the scenario was retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// True if an earlier attempt did not match the expectation and a later one did.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flaky: bool,
    /// The mission task this observation belongs to (missions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// For a task that did not run: the task whose failure skipped it (the first failing
    /// ancestor in the task graph).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
}

/// `runtime_results.json` / `baseline_results.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LaneResults {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// The lane.
    pub lane: Lane,
    /// Sorted by scenario id.
    pub observations: Vec<Observation>,
}

// ---------------------------------------------------------------------------------------
// Oracle
// ---------------------------------------------------------------------------------------

/// A rule the oracle cites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CitedRule {
    /// What kind of rule: `fs`, `net`, `scope`, `seccomp`, `unhandled`, `not-governed`,
    /// `absent`.
    pub kind: String,
    /// Index into the profile's `landlock.fs.allow` list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// The rule's path as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The rule's path as resolved when the profile was compiled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_path: Option<String>,
    /// The rule's access words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<String>,
    /// The port (network rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// One right the oracle checked on one path (or port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OracleCheck {
    /// The right, e.g. `read-file`, `execute`, `connect-tcp`.
    pub right: String,
    /// The canonical path (or `host:port`, pid, `@name`) it applies to.
    pub on: String,
    /// Why it is needed, e.g. `target`, `interpreter`, `library`, `parent of target`.
    pub role: String,
    /// Its decision.
    pub decision: OracleDecision,
    /// The sentence explaining it.
    pub reason: String,
    /// The rule that decided it.
    pub rule: CitedRule,
}

/// The oracle's verdict for one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OracleVerdict {
    /// `<profile>:<probe>`.
    pub scenario_id: String,
    /// The profile.
    pub profile_id: String,
    /// The probe.
    pub probe_id: String,
    /// The operation.
    pub operation: Operation,
    /// The decision: deny if any check denies, not-enforceable for controls, else allow.
    pub decision: OracleDecision,
    /// The deciding sentence (the first denying check's, else the target check's).
    pub reason: String,
    /// The deciding rule.
    pub rule: CitedRule,
    /// Every check made, in order.
    pub checks: Vec<OracleCheck>,
    /// What the verdict does not model, if anything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// `oracle_results.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OracleResults {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// Sorted by scenario id.
    pub verdicts: Vec<OracleVerdict>,
}

/// A requested path and what it resolves to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct PathWitness {
    /// `<profile>:<probe>`.
    pub scenario_id: String,
    /// What the path is to the probe: `target`, `destination`, `program`, `interpreter`,
    /// `library`.
    pub role: String,
    /// The path after variable expansion.
    pub requested: String,
    /// The canonical path the kernel judges (symlinks and `..` resolved; for operations on
    /// the link itself, only the parent is resolved).
    pub canonical: String,
    /// The requested path is a symbolic link.
    pub is_symlink: bool,
    /// The path exists.
    pub exists: bool,
}

/// `path_witnesses.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PathWitnesses {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// Sorted by scenario id, role, requested path.
    pub witnesses: Vec<PathWitness>,
}

// ---------------------------------------------------------------------------------------
// Preflight
// ---------------------------------------------------------------------------------------

/// A right or item requested that the kernel (or this host) cannot enforce.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct Unenforceable {
    /// What, e.g. `net.udp_connect`, `access unix-connect`, `limits.processes`, `abi`.
    pub item: String,
    /// Why.
    pub reason: String,
}

/// One profile's apply preflight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PreflightRecord {
    /// The profile.
    pub profile: String,
    /// `hard` or `best-effort`.
    pub compat: String,
    /// The ABI the profile pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abi_requested: Option<u8>,
    /// The kernel's ABI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abi_kernel: Option<u8>,
    /// What the kernel reported when the helper applied the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruleset_status: Option<RulesetStatus>,
    /// True if the profile applied (possibly partially for `best-effort`).
    pub apply_ok: bool,
    /// The errno of a failed apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_name: Option<String>,
    /// Why the apply failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Rights a `best-effort` profile asked for that the kernel does not have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_rights: Vec<Unenforceable>,
    /// Items that cannot be enforced here (a `hard` profile with any is an apply failure).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unenforceable: Vec<Unenforceable>,
    /// Rules skipped because their path does not exist (`missing_paths: skip`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_rules: Vec<String>,
    /// Seccomp deny groups installed with the profile (requested and implied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seccomp_groups: Vec<String>,
    /// How `limits.processes` is contained, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes_enforced_by: Option<String>,
    /// True if this is the plan's `apply_preflight_profile`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

/// `apply_preflight.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApplyPreflight {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// The kernel's Landlock ABI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abi_kernel: Option<u8>,
    /// Per profile, sorted by id.
    pub profiles: Vec<PreflightRecord>,
}

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

/// One row of `runtime_events.normalized.json`: a scenario with every lane joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// `runtime_events.normalized.json`.
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

// ---------------------------------------------------------------------------------------
// Manifest
// ---------------------------------------------------------------------------------------

/// The tool that wrote the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ToolInfo {
    /// `nexusmon`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// How the lanes were run, recorded so readers know what differed between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LanePolicy {
    /// Lanes that ran.
    pub lanes: Vec<Lane>,
    /// `no_new_privs` in the baseline lane (set in both, so setuid programs behave the same
    /// in both lanes and the difference is the profile alone).
    pub baseline_no_new_privs: bool,
    /// `no_new_privs` in the scenario lane (always; Landlock requires it).
    pub scenario_no_new_privs: bool,
    /// Everything the scenario lane adds over the baseline lane.
    pub scenario_adds: Vec<String>,
}

/// A resolved probe as run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResolvedProbe {
    /// The probe as written in the registry.
    pub probe: super::registry::Probe,
    /// The target after variable expansion (`${SCRATCH}` stays symbolic: it is per child).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The argv after variable expansion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
}

/// `run_manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunManifest {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// The tool.
    pub tool: ToolInfo,
    /// The plan id.
    pub plan_id: String,
    /// The plan file, relative to the project root when it lies beneath it.
    pub plan_path: String,
    /// `plan_digest`.
    pub plan_digest: Digest,
    /// The channel.
    pub channel: ChannelKind,
    /// Host facts.
    pub host: crate::model::host::HostFacts,
    /// The kernel's Landlock ABI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_abi: Option<u8>,
    /// How the lanes ran.
    pub lanes: LanePolicy,
    /// Parallel children.
    pub jobs: u32,
    /// The run's private scratch root (outside the bundle; removed after the run unless
    /// kept). Each child gets its own directory beneath it as `${SCRATCH}`.
    pub scratch: String,
    /// Whether the scratch root was kept after the run.
    pub scratch_kept: bool,
    /// `--only-profile` filters.
    pub only_profiles: Vec<String>,
    /// `--only-scenario` filters.
    pub only_scenarios: Vec<String>,
    /// Selected scenario ids.
    pub selected: Vec<String>,
    /// The command line.
    pub command_line: Vec<String>,
    /// Variables and their values (`SCRATCH` and `HOME` are per child and listed
    /// symbolically).
    pub variables: BTreeMap<String, String>,
    /// The plan as loaded (secret-looking `env.set` values redacted to a keyed digest).
    pub plan: serde_json::Value,
    /// The probes it resolved.
    pub probes: BTreeMap<String, ResolvedProbe>,
    /// Each profile compiled for this kernel (the form both the scenario lane and the oracle
    /// consume).
    pub profiles: BTreeMap<String, serde_json::Value>,
    /// The apply preflight.
    pub preflight: Vec<PreflightRecord>,
    /// Governance notes (gate decision, approvals copied), if a gate ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub governance: Vec<String>,
    /// Run-wide fixtures started (listeners and the variables they publish).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<String>,
    /// What the runner cleaned up before starting (scratch directories and pids cgroups of
    /// killed runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub housekeeping: Vec<String>,
    /// The digest of every registry entry the plan resolved, so readers can tell whether two
    /// runs used the same profile or probe definition (promotion keys its mappings by them).
    /// Absent in bundles written before this field existed.
    #[serde(default, skip_serializing_if = "RegistryDigests::is_empty")]
    pub registry_digests: RegistryDigests,
    /// When the run started (RFC 3339 UTC).
    pub started_at: String,
}

/// blake3 of each resolved registry entry's canonical JSON (RFC 8785), by id: the identity
/// of a profile or probe definition, independent of the plan that uses it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RegistryDigests {
    /// Probe id → digest of its definition.
    #[serde(default)]
    pub probes: BTreeMap<String, Digest>,
    /// Profile id → digest of its definition.
    #[serde(default)]
    pub profiles: BTreeMap<String, Digest>,
}

impl RegistryDigests {
    /// True if nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.probes.is_empty() && self.profiles.is_empty()
    }

    /// The digests of `probes` and `profiles` (entries that cannot be serialized are left
    /// out, which readers treat as unknown).
    pub fn of<K: ToString, P: Serialize, Q: Serialize>(
        probes: &BTreeMap<K, P>,
        profiles: &BTreeMap<K, Q>,
    ) -> Self {
        fn digests<K: ToString, T: Serialize>(m: &BTreeMap<K, T>) -> BTreeMap<String, Digest> {
            m.iter()
                .filter_map(|(k, v)| {
                    crate::util::json::canonical(v)
                        .ok()
                        .map(|b| (k.to_string(), Digest::blake3_of(&b)))
                })
                .collect()
        }
        Self {
            probes: digests(probes),
            profiles: digests(profiles),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Events (NDJSON on stdout with `run --json`)
// ---------------------------------------------------------------------------------------

/// One NDJSON event. Every event has `"v"` ([`EVENTS_VERSION`]) and `"type"`; consumers
/// must ignore unknown types and fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RunEvent {
    /// The run started (after resolve, before preflight).
    RunStart {
        /// [`EVENTS_VERSION`].
        v: u32,
        /// The run id (absent for `--dry`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        /// The plan.
        plan_id: String,
        /// `plan_digest` (blake3).
        plan_digest: String,
        /// The channel.
        channel: ChannelKind,
        /// Selected scenarios.
        scenarios: u64,
        /// Lanes that run.
        lanes: Vec<Lane>,
        /// Parallel children.
        jobs: u32,
        /// True for `--dry`.
        dry: bool,
    },
    /// A profile's apply preflight finished.
    Preflight {
        /// [`EVENTS_VERSION`].
        v: u32,
        /// The record.
        #[serde(flatten)]
        record: PreflightRecord,
    },
    /// One lane finished one scenario (oracle verdicts included, `outcome` is the decision).
    Observation {
        /// [`EVENTS_VERSION`].
        v: u32,
        /// `<profile>:<probe>`.
        scenario_id: String,
        /// The lane.
        lane: Lane,
        /// `allow`, `deny`, `error`, `timeout`, `apply-failed`, `skipped`, or for the oracle
        /// `not-enforceable`.
        outcome: String,
        /// Where it ended (executing lanes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<Stage>,
        /// The errno name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        errno_name: Option<String>,
        /// The expectation.
        expected: Expectation,
        /// Attempts made.
        attempts: u32,
        /// Passed only on retry.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        flaky: bool,
        /// The detail or the oracle's reason.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        detail: String,
        /// Wall time of the deciding attempt, microseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wall_us: Option<u64>,
        /// The mission task (missions only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_id: Option<String>,
    },
    /// The run ended.
    RunEnd {
        /// [`EVENTS_VERSION`].
        v: u32,
        /// The run id (absent for `--dry`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        /// `ok`, `partial`, `failed`, `dry`.
        status: RunStatus,
        /// The exit code.
        exit_code: i32,
        /// Why.
        reason: String,
        /// The sealed bundle's directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bundle: Option<String>,
        /// blake3 of its `artifact_index.json`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index_blake3: Option<String>,
        /// Mismatch packets.
        mismatches: u64,
        /// Flaky scenarios.
        flaky: u64,
    },
}
