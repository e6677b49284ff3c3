//! The oracle's verdicts and path witnesses, and the apply preflight.

#[allow(clippy::wildcard_imports)]
use super::*;

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
#[schemars(
    title = "nexusmon oracle verdict (one line of oracle_results.jsonl, its `$shared` values merged in)"
)]
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
    /// The rights the oracle predicts the kernel will name as the blockers of a denial,
    /// in the kernel's words (`fs.read_file`, `net.connect_tcp`, …; empty unless Landlock
    /// denies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blockers: Vec<String>,
    /// What the verdict does not model, if anything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// `oracle_results.jsonl`.
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
#[schemars(
    title = "nexusmon path witness (one line of path_witnesses.jsonl, its `$shared` values merged in)"
)]
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

/// `path_witnesses.jsonl`.
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
    /// Who the profile's children are and what they can see (identity, capabilities, PID
    /// namespace, the baseline's read-only host, the runner's environment).
    #[serde(default)]
    pub child: ChildPrivileges,
    /// What the preflight helper observed about itself under these privileges (absent if
    /// it gave no result line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_observed: Option<ChildSelf>,
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

/// `shared_values.json` (result schema version 2): values that many lines of the JSON Lines
/// result files share, written once. A line's `$shared` lists ids of these objects; their
/// keys belong to the line as if written in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "nexusmon shared values of the result lines (shared_values.json)")]
pub struct SharedValuesFile {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Id (12 lowercase hex digits: the start of the blake3 of the object's compact sorted
    /// JSON) → the object.
    pub values: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}
