//! What the kernel itself witnessed: Landlock's audit records (`AUDIT_LANDLOCK_ACCESS`)
//! for the runner's own scenario-lane children, and the state of their collection
//! (`run --kernel-audit`).

#[allow(clippy::wildcard_imports)]
use super::*;

/// The bundle file holding every attributed Landlock denial record, one JSON line each.
pub const KERNEL_DENIALS_FILE: &str = "kernel_denials.jsonl";

/// `run --kernel-audit`: whether the runner reads the kernel's Landlock audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KernelAuditMode {
    /// Read them when kernel audit is already enabled; never change the kernel's state.
    #[default]
    Auto,
    /// Enable kernel audit for the run if it is not (restored after, also on
    /// interruption); fail before anything runs if that is impossible.
    Require,
    /// Do not read them.
    Off,
}

impl KernelAuditMode {
    /// The word used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            KernelAuditMode::Auto => "auto",
            KernelAuditMode::Require => "require",
            KernelAuditMode::Off => "off",
        }
    }
}

/// Whether the kernel's denial records were collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KernelAuditState {
    /// The runner was subscribed for the whole run and every record reached it (the
    /// kernel's lost counter did not move and the runner's socket did not overflow).
    Collected,
    /// The runner was subscribed, but records may be missing (`reason` says which counter
    /// moved, or that audit was disabled during the run).
    Lost,
    /// The kernel offers no records to this runner (`reason` says why).
    Unavailable,
    /// `--kernel-audit off`.
    Off,
}

impl KernelAuditState {
    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            KernelAuditState::Collected => "collected",
            KernelAuditState::Lost => "lost",
            KernelAuditState::Unavailable => "unavailable",
            KernelAuditState::Off => "off",
        }
    }
}

/// The kernel audit state when the lanes started (`run_manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KernelAuditStart {
    /// `--kernel-audit`.
    pub mode: KernelAuditMode,
    /// True if the runner is subscribed to the kernel's audit records.
    pub collecting: bool,
    /// True if the runner enabled kernel audit for this run (`require`; restored after).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enabled_by_run: bool,
    /// Why nothing is collected, when nothing is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// What a runner killed before restoring the audit state (SIGKILL, a crash) had left,
    /// and what this run did about it before starting (put back, or left as it was).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recovered: String,
}

/// What the collection gave (`summary.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KernelAuditReport {
    /// `--kernel-audit`.
    pub mode: KernelAuditMode,
    /// The outcome.
    pub state: KernelAuditState,
    /// Why it is `lost` or `unavailable` (empty when `collected` or `off`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Landlock denial records received during the run, from any process.
    pub records: u64,
    /// Records attributed to a scenario-lane child (in `kernel_denials.jsonl`).
    pub attributed: u64,
    /// Records of processes that are not this run's scenario-lane children (other
    /// programs, the preflight helpers), never attributed.
    pub unattributed: u64,
    /// How much the kernel's `lost` counter rose during the run (backlog or rate limit;
    /// system-wide, so not necessarily this run's records).
    pub kernel_lost: u64,
    /// Times the runner's socket overflowed (records dropped before it read them).
    pub socket_overflows: u64,
    /// True if the runner enabled kernel audit for the run and put back the previous
    /// state after.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restored: bool,
}

/// One Landlock denial the kernel recorded for a child (`AUDIT_LANDLOCK_ACCESS`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct KernelDenial {
    /// The rights that blocked the request, as the kernel names them (`fs.read_file`,
    /// `net.connect_tcp`, `scope.signal`, …).
    pub blockers: Vec<String>,
    /// The object, with the kernel's field names: `{path, dev, ino}` for a file,
    /// `{daddr, dest}` for a connect, `{saddr, src}` for a bind, `{opid, ocomm}` for a
    /// signal, …
    pub object: BTreeMap<String, String>,
    /// The Landlock domain that denied it (hexadecimal, as the kernel writes it).
    pub domain: String,
}

/// One line of `kernel_denials.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "nexusmon kernel denial record (one line of kernel_denials.jsonl)")]
pub struct KernelDenialLine {
    /// `<profile>:<probe>`.
    pub scenario_id: String,
    /// The scenario-lane attempt (1-based).
    pub attempt: u32,
    /// The audit event's serial number (orders records of one boot).
    pub serial: u64,
    /// The event's time, milliseconds since the Unix epoch (the kernel's clock).
    pub time_ms: u64,
    /// The pid (host PID namespace) of the child that created the denying domain.
    pub pid: u32,
    /// The denial.
    #[serde(flatten)]
    pub denial: KernelDenial,
}

/// A child as the kernel's records can name it: its host pid and when it lived (wall
/// clock, milliseconds since the Unix epoch). Never written to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChildTrace {
    /// Its pid in the runner's (host) PID namespace.
    pub pid: u32,
    /// Just before it was started.
    pub started_ms: u64,
    /// Just after it was reaped.
    pub ended_ms: u64,
}
