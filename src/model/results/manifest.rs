//! The run manifest and the NDJSON events `run --json` streams.

#[allow(clippy::wildcard_imports)]
use super::*;

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
    pub probe: crate::model::registry::Probe,
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
    /// Whether the runner reads the kernel's Landlock audit records, and why not when it
    /// does not (`--kernel-audit`; what was collected is in `summary.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_audit: Option<KernelAuditStart>,
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
    /// Each profile as written in the registry (secret-looking `env.set` values redacted to
    /// a digest keyed by the profile id, so an unchanged secret reads the same in every run):
    /// what `diff` compares field by field. Absent in bundles written before this field
    /// existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profile_definitions: BTreeMap<String, serde_json::Value>,
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
    /// The mission workers the plan uses, by name: declaration and executable digests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workers: BTreeMap<String, crate::model::worker::WorkerIdentity>,
    /// Digest of the inputs the plan's worker tasks are given (absent for plans without
    /// worker tasks): with `plan_digest`, the identity of a mission's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_digest: Option<Digest>,
    /// When the run started (RFC 3339 UTC).
    pub started_at: String,
    /// `run --shard K/N`: which part of the selection this run is (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// A bundle written by `merge-bundles`: the shards it was merged from, by index
    /// (absent otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<MergedShard>,
}

/// How `run --shard` partitions the selected scenarios.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ShardStrategy {
    /// By a digest of each scenario id: a scenario's shard never depends on the others, so
    /// adding or filtering scenarios moves none of the rest.
    Hash,
    /// Balanced by the wall times a prior bundle recorded (longest first onto the least
    /// loaded shard); scenarios it does not know go by hash.
    Duration,
}

impl ShardStrategy {
    /// The word used on the command line and in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hash => "hash",
            Self::Duration => "duration",
        }
    }
}

/// The prior bundle a duration partition was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShardDurations {
    /// Its run id.
    pub run_id: String,
    /// blake3 of its `artifact_index.json` (every shard must use the same one).
    pub artifact_index_blake3: String,
    /// Selected scenarios whose wall time it recorded.
    pub known: u64,
    /// Selected scenarios it did not record: placed by hash, with the median known time
    /// as their guessed cost.
    pub guessed: u64,
}

/// `run_manifest.json`'s `shard`: this run is part `k` of `n` of a selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShardRecord {
    /// This shard (1-based).
    pub k: u32,
    /// How many shards.
    pub n: u32,
    /// The partition.
    pub strategy: ShardStrategy,
    /// blake3 of the plan digest the partition was made for (`plan_digest.blake3`).
    pub plan_digest: String,
    /// How many scenarios the whole selection has (every shard together).
    pub selected_count: u64,
    /// blake3 of the whole selection (RFC 8785 JSON of its sorted scenario ids).
    pub selected_digest: String,
    /// How many scenarios this shard runs (its manifest's `selected`).
    pub part_count: u64,
    /// blake3 of this shard's part, computed as `selected_digest`.
    pub part_digest: String,
    /// The durations bundle (`duration` strategy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durations: Option<ShardDurations>,
}

/// One shard of a merged bundle (`run_manifest.json`'s `shards`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MergedShard {
    /// Its index (1-based).
    pub k: u32,
    /// How many shards.
    pub n: u32,
    /// The partition.
    pub strategy: ShardStrategy,
    /// Its run id.
    pub run_id: String,
    /// blake3 of its `artifact_index.json`.
    pub artifact_index_blake3: String,
    /// The host it ran on.
    pub host: String,
    /// Its bundle status (`complete`, `failed`, `interrupted`).
    pub status: String,
    /// Whether its own promotion packet was promotable when it was merged.
    pub promotable: bool,
    /// Why not (its packet's reasons), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
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
        /// The record (boxed: it is by far the largest event).
        #[serde(flatten)]
        record: Box<PreflightRecord>,
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
