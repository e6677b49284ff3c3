//! `.nexusmon/evolution.json`: XP, level and capabilities earned from proven mission
//! outcomes. The state is a pure function of the set of consumed
//! outcomes, so replaying the same packets in any order gives the same bytes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::plan::Rank;
use crate::util::digest::Digest;

/// The `schema` of the evolution file.
pub const EVOLUTION_SCHEMA: &str = "nexusmon/evolution/v1";

/// Levels, lowest first; thresholds are XP (see `govern::evolution`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// 0 XP.
    Dormant,
    /// ≥ 1 XP: one passing mission of any rank.
    Awakening,
    /// ≥ 10 XP.
    Forging,
    /// ≥ 50 XP.
    Sovereign,
    /// ≥ 200 XP.
    Apex,
}

impl Level {
    /// `DORMANT`, `AWAKENING`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Dormant => "DORMANT",
            Level::Awakening => "AWAKENING",
            Level::Forging => "FORGING",
            Level::Sovereign => "SOVEREIGN",
            Level::Apex => "APEX",
        }
    }
}

/// A capability the gate checks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Mission tasks may run in parallel (without it a mission runs one task at a time).
    ParallelMissions,
    /// Rank C and B missions run without the review flag.
    AutoRunCb,
    /// Missions may use workers that run code given in their inputs (`run-scripts`).
    RunScripts,
    /// Missions may use workers that reach hosts beyond the loopback interface.
    Network,
}

impl Capability {
    /// `parallel-missions`, `auto-run-cb`, `run-scripts`, `network`.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::ParallelMissions => "parallel-missions",
            Capability::AutoRunCb => "auto-run-cb",
            Capability::RunScripts => "run-scripts",
            Capability::Network => "network",
        }
    }
}

/// What evolution takes from one mission's promotion packet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MissionOutcome {
    /// blake3 (hex) of the packet's canonical JSON (RFC 8785): the identity of the outcome.
    pub packet_digest: String,
    /// The run the packet is about (an outcome per run counts once).
    pub run_id: String,
    /// The mission plan.
    pub plan_id: String,
    /// Its `plan_digest`.
    pub plan_digest: Digest,
    /// Digest of the inputs the mission's tasks were given (absent for packets of runs
    /// that recorded none): with the plan digest, the identity of the mission's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_digest: Option<Digest>,
    /// The mission's rank.
    pub rank: Rank,
    /// The packet's derived promotability.
    pub promotable: bool,
    /// Every task passed (no mismatches, nothing failed or skipped).
    pub passed: bool,
    /// Scenarios allowed that were expected denied (`expected-deny-observed-allow`).
    pub violations: u64,
}

/// The evolution file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon evolution state")]
pub struct EvolutionFile {
    /// [`EVOLUTION_SCHEMA`].
    pub schema: String,
    /// Every consumed outcome, sorted by `packet_digest`: the state below is derived from
    /// this list alone.
    pub consumed: Vec<MissionOutcome>,
    /// Outcomes that did not count because another packet of the same run did (sorted by
    /// `packet_digest`; the lowest digest per run wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<String>,
    /// Passing outcomes that earned nothing because an outcome of the same plan digest
    /// and inputs already did (sorted by `packet_digest`; the lowest digest earns): a
    /// rerun of the same mission is not a new outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repeats: Vec<String>,
    /// XP earned by promotable, passing missions (once per distinct outcome).
    pub earned_xp: u64,
    /// XP lost to violations.
    pub penalty_xp: u64,
    /// `earned_xp - penalty_xp`, never below 0.
    pub xp: u64,
    /// The level `xp` reaches.
    pub level: Level,
    /// The capabilities the level unlocks, sorted.
    pub capabilities: Vec<Capability>,
    /// Promotable, passing missions counted.
    pub missions_passed: u64,
    /// Violations counted.
    pub violations: u64,
}
