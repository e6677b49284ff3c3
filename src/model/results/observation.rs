//! Lane observations: one child's attempts, timeouts, resource usage, captured streams,
//! leaked processes and what was enforced.

#[allow(clippy::wildcard_imports)]
use super::*;

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
    /// Who the child was and what it could see (absent when no child ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<ChildIsolation>,
    /// What a worker task's worker did: its identity, inputs digest, result, artifacts and
    /// the fault that failed the task, if any (worker tasks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<Box<crate::model::worker::WorkerObservation>>,
    /// The Landlock denials the kernel recorded for this child (scenario lane, when the
    /// run collected kernel audit records: an empty list means none; absent means not
    /// collected, see `summary.json`'s `kernel_audit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_denials: Option<Vec<KernelDenial>>,
    /// The child's host pid and lifetime, for matching the kernel's records (never
    /// written).
    #[serde(skip)]
    #[schemars(skip)]
    pub trace: Option<ChildTrace>,
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
            isolation: None,
            worker: None,
            kernel_denials: None,
            trace: None,
        }
    }
}

/// What one executing lane (baseline or scenario) saw for one scenario. The fields of the
/// deciding (last) attempt are inline; `attempts` lists every attempt when there was more
/// than one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "nexusmon lane observation (one line of runtime_results.jsonl / baseline_results.jsonl, its `$shared` values merged in)"
)]
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

/// The observations of one lane (`runtime_results.jsonl` / `baseline_results.jsonl`, one
/// per line since result schema version 2).
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
