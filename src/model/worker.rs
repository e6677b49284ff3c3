//! Mission workers: the registry file `registry/<id>/workers.json` that declares them, the
//! worker protocol (one [`WorkerRequest`] on the worker's stdin, one [`WorkerResult`] on
//! its stdout; version [`WORKER_PROTOCOL`], documented in `docs/WORKERS.md`), what a run
//! records of a worker ([`WorkerObservation`]) and the bundle's artifact vault
//! `artifacts.json` ([`ArtifactsFile`]).
//!
//! A worker is one executable file of the project, started like any scenario child (the
//! task's profile, rlimits, clean environment, timeout, process-group kill); it reads its
//! request, writes files into its output directory and prints its result.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::evolution::Capability;
use super::id::Id;
use super::plan::Rank;
use crate::util::digest::Digest;

/// The worker protocol version this build speaks (request `protocol`, result `protocol`).
pub const WORKER_PROTOCOL: u32 = 1;

/// The `schema` of `artifacts.json`.
pub const ARTIFACTS_SCHEMA: &str = "nexusmon/artifacts/v1";

/// The bundle file listing the artifacts a mission's workers produced.
pub const ARTIFACTS_FILE: &str = "artifacts.json";

/// The most bytes of a worker's stdout read as its result (a larger result is malformed).
pub const MAX_RESULT_BYTES: u64 = 1024 * 1024;
/// The most files one worker may produce.
pub const MAX_OUTPUT_FILES: usize = 256;
/// The most bytes one produced file may have.
pub const MAX_OUTPUT_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// The most bytes one worker's produced files may have together.
pub const MAX_OUTPUT_TOTAL_BYTES: u64 = 256 * 1024 * 1024;

/// `workers.json`: the workers a registry declares, keyed by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon registry workers")]
pub struct WorkersFile {
    /// The JSON Schema this file follows, for editors.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Format version; this build reads `1`.
    pub schema_version: u32,
    /// The registry's id (matches its directory name).
    pub registry_id: Id,
    /// What the workers are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Workers keyed by name.
    pub workers: BTreeMap<Id, Worker>,
}

/// One worker: an executable of the project that speaks the worker protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Worker {
    /// What the worker does, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The argv that starts the worker, never run through a shell. `command[0]` is the
    /// worker's executable: a file of the project, relative to the project root (the
    /// directory holding `registry/`), e.g. `workers/transform.py` (a script starts with
    /// `#!`). Its bytes are digested into `plan_digest`, and the run executes a copy it
    /// checked against that digest.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// What the worker does that governance cares about; some need a capability the
    /// evolution state unlocks (`run-scripts` at AWAKENING, `network` at SOVEREIGN).
    #[serde(default)]
    pub capabilities: Vec<WorkerCapability>,
    /// The worker's risk, `E` (lowest) to `S`: a mission using it is gated as the stricter
    /// of its own rank and this.
    pub risk_level: Rank,
    /// Every run of a mission using this worker needs a valid approval, whatever its rank.
    #[serde(default)]
    pub requires_approval: bool,
    /// The profile (of the same registry) the worker must run under: a task naming the
    /// worker names this profile.
    pub profile: Id,
    /// Wall timeout of one run of the worker, in milliseconds.
    #[schemars(range(min = 1))]
    pub timeout_ms: u64,
    /// The inputs a task passes, by name, with their types.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<Id, InputSpec>,
    /// Free-form tags for listing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// What a worker does that governance checks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerCapability {
    /// Writes files into its output directory (they become bundle artifacts).
    WriteArtifacts,
    /// Reads artifacts of the tasks it depends on.
    ReadArtifacts,
    /// Connects to services on the loopback interface.
    LoopbackNetwork,
    /// Runs code it is given in its inputs (needs the `run-scripts` capability).
    RunScripts,
    /// Reaches hosts beyond the loopback interface (needs the `network` capability).
    Network,
}

impl WorkerCapability {
    /// Every worker capability.
    pub const ALL: [WorkerCapability; 5] = [
        WorkerCapability::WriteArtifacts,
        WorkerCapability::ReadArtifacts,
        WorkerCapability::LoopbackNetwork,
        WorkerCapability::RunScripts,
        WorkerCapability::Network,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerCapability::WriteArtifacts => "write-artifacts",
            WorkerCapability::ReadArtifacts => "read-artifacts",
            WorkerCapability::LoopbackNetwork => "loopback-network",
            WorkerCapability::RunScripts => "run-scripts",
            WorkerCapability::Network => "network",
        }
    }

    /// The evolution capability a worker with this capability needs, if any.
    pub fn needs(self) -> Option<Capability> {
        match self {
            WorkerCapability::RunScripts => Some(Capability::RunScripts),
            WorkerCapability::Network => Some(Capability::Network),
            _ => None,
        }
    }
}

/// One declared input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The value's type.
    #[serde(rename = "type")]
    pub kind: InputType,
    /// A task must pass it (default `true`).
    #[serde(default = "yes")]
    pub required: bool,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

/// The type of an input value.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum InputType {
    /// A JSON string (`${VAR}` run variables are expanded).
    String,
    /// A JSON integer.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A file another task produced: `"<task>/<path>"`, where `<task>` is a worker task
    /// this task depends on and `<path>` one of the files it produced. The worker receives
    /// its absolute path and digest.
    Artifact,
}

impl InputType {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Boolean => "boolean",
            InputType::Artifact => "artifact",
        }
    }

    /// Whether `v` is a value of this type (an artifact reference is checked for shape
    /// only here: `<task>/<relative path>`).
    pub fn accepts(self, v: &serde_json::Value) -> bool {
        match self {
            InputType::String => v.is_string(),
            InputType::Integer => v.is_i64() || v.is_u64(),
            InputType::Boolean => v.is_boolean(),
            InputType::Artifact => v.as_str().is_some_and(|s| parse_artifact_ref(s).is_some()),
        }
    }
}

/// `"<task>/<path>"` → (task, path) when `task` is an id and `path` a safe relative path
/// (no `..`, not absolute, no empty or `.` components).
pub fn parse_artifact_ref(s: &str) -> Option<(Id, &str)> {
    let (task, path) = s.split_once('/')?;
    let task = Id::new(task).ok()?;
    safe_relative(path).then_some((task, path))
}

/// A relative path whose components are all normal names (no `..`, `.`, empty or
/// absolute components, no NUL): what a worker may name as a produced file.
pub fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

// ---------------------------------------------------------------------------------------
// The protocol
// ---------------------------------------------------------------------------------------

/// What the runner writes on a worker's stdin (one JSON document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon worker request")]
pub struct WorkerRequest {
    /// [`WORKER_PROTOCOL`].
    pub protocol: u32,
    /// The run.
    pub run_id: String,
    /// The plan.
    pub plan_id: String,
    /// The mission task this run of the worker is.
    pub task_id: String,
    /// The worker's name.
    pub worker: String,
    /// The inputs, by name: strings (variables expanded), integers, booleans, and for
    /// artifact inputs an [`ArtifactInput`].
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// The directory the worker writes its files into (absolute, empty at start). Every
    /// file in it when the worker ends must be listed in the result's `files`.
    pub output_dir: String,
    /// The mission's shared workspace (`${SCRATCH}`, absolute).
    pub workspace: String,
}

/// An artifact input as the worker receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactInput {
    /// The absolute path of the file.
    pub path: String,
    /// The task that produced it.
    pub task: String,
    /// Its path in that task's output directory.
    pub name: String,
    /// Its digests.
    pub digest: Digest,
}

/// What a worker prints on its stdout: one JSON document (at most 1 MiB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon worker result")]
pub struct WorkerResult {
    /// [`WORKER_PROTOCOL`].
    pub protocol: u32,
    /// `ok`, or `failed` (the worker could not do its work; the task fails).
    pub status: ResultStatus,
    /// One sentence on what happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Structured results (any JSON values), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// Every file the worker wrote into its output directory, with its digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ProducedFile>,
    /// Numbers worth keeping (counts, durations), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, serde_json::Number>,
}

/// A worker's verdict on its own work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ResultStatus {
    /// The work is done.
    Ok,
    /// The work could not be done.
    Failed,
}

/// A file a worker claims to have produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProducedFile {
    /// Its path relative to the output directory (`/`-separated, no `..`).
    pub path: String,
    /// SHA-256 of its bytes, hex (the runner checks it and adds blake3).
    pub sha256: String,
    /// Its media type, e.g. `text/plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

// ---------------------------------------------------------------------------------------
// What a run records
// ---------------------------------------------------------------------------------------

/// Why a worker's task failed (stable kebab-case names).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerFault {
    /// The worker could not be prepared: its executable changed since the plan was
    /// loaded, an input artifact is missing, or its directories could not be created.
    NotStarted,
    /// The worker could not be started (`execve` failed) or its profile not applied.
    SpawnFailed,
    /// Killed by a signal.
    Crashed,
    /// Exited with a non-zero code.
    ExitedNonzero,
    /// Still running at its timeout (killed).
    TimedOut,
    /// Exited 0 without printing anything.
    NoResult,
    /// Printed something that is not one valid result (not JSON, unknown keys, another
    /// protocol version, more than 1 MiB).
    MalformedResult,
    /// Its result says `failed`.
    ReportedFailure,
    /// Its result lists a file that does not exist.
    MissingOutput,
    /// Its result lists a path outside its output directory (absolute, `..`, through a
    /// symlink) or something that is not a regular file.
    OutputOutsideDir,
    /// A listed file's bytes do not match the digest the worker claimed.
    OutputDigestMismatch,
    /// A file in its output directory that its result does not list.
    UnlistedOutput,
    /// Its files exceed the size or count limits.
    OutputTooLarge,
    /// It changed the mission workspace outside its output directory.
    WroteOutsideOutputDir,
}

impl WorkerFault {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerFault::NotStarted => "not-started",
            WorkerFault::SpawnFailed => "spawn-failed",
            WorkerFault::Crashed => "crashed",
            WorkerFault::ExitedNonzero => "exited-nonzero",
            WorkerFault::TimedOut => "timed-out",
            WorkerFault::NoResult => "no-result",
            WorkerFault::MalformedResult => "malformed-result",
            WorkerFault::ReportedFailure => "reported-failure",
            WorkerFault::MissingOutput => "missing-output",
            WorkerFault::OutputOutsideDir => "output-outside-dir",
            WorkerFault::OutputDigestMismatch => "output-digest-mismatch",
            WorkerFault::UnlistedOutput => "unlisted-output",
            WorkerFault::OutputTooLarge => "output-too-large",
            WorkerFault::WroteOutsideOutputDir => "wrote-outside-output-dir",
        }
    }
}

/// The identity of a worker as a run used it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerIdentity {
    /// The worker's name.
    pub name: String,
    /// The registry declaring it.
    pub registry_id: String,
    /// Digest of its declaration (canonical JSON, RFC 8785).
    pub declaration: Digest,
    /// Digest of its executable's bytes.
    pub executable: Digest,
    /// The executable, relative to the project root.
    pub executable_path: String,
}

/// What one attempt of a worker task produced, in the lane results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerObservation {
    /// The worker.
    pub worker: WorkerIdentity,
    /// The resolved inputs as the worker received them (the workspace shown as
    /// `${SCRATCH}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Digest of the resolved inputs (canonical JSON of `inputs`; artifact inputs carry
    /// their digests).
    pub inputs_digest: Digest,
    /// Artifacts of other tasks it consumed: `<task>/<name>` → their digests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consumed: BTreeMap<String, Digest>,
    /// Why the task failed (absent: the worker did its work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<WorkerFault>,
    /// The worker's result, as it printed it (absent when there was none to read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<WorkerResult>,
    /// The produced files as the runner verified them and copied them into the bundle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
}

/// One produced file in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Its path in the task's output directory.
    pub name: String,
    /// Its path in the bundle: `artifacts/<task>/<name>`.
    pub member: String,
    /// Size in bytes.
    pub size: u64,
    /// blake3 and sha256 of its bytes.
    pub digest: Digest,
    /// Its media type, as the worker declared it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// `artifacts.json`: the artifact vault of a mission run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon artifacts")]
pub struct ArtifactsFile {
    /// [`ARTIFACTS_SCHEMA`].
    pub schema: String,
    /// The run.
    pub run_id: String,
    /// The plan.
    pub plan_id: String,
    /// Its `plan_digest`.
    pub plan_digest: Digest,
    /// Digest of every worker task's resolved inputs together (canonical JSON of
    /// task → inputs digest): with `plan_digest`, the identity of the mission's outcome.
    pub inputs_digest: Digest,
    /// One entry per worker task that ran (sorted by task).
    pub tasks: Vec<TaskArtifacts>,
}

/// What one worker task produced, with its lineage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskArtifacts {
    /// The task.
    pub task_id: String,
    /// The worker and its version (digests of declaration and executable).
    pub worker: WorkerIdentity,
    /// The resolved inputs as the worker received them (absolute paths shown as
    /// `${SCRATCH}/…`).
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Their digest.
    pub inputs_digest: Digest,
    /// Why the task failed, if it did (its files are then not artifacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<WorkerFault>,
    /// The files it produced (sorted by name).
    pub artifacts: Vec<Artifact>,
    /// Artifacts of other tasks it consumed: `<task>/<name>` → their digests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consumed: BTreeMap<String, Digest>,
}
