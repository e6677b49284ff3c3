//! `learn_log.json`: every round of `nexusmon learn` (what the kernel denied the command,
//! the decision, the rule added and why), the baseline it learned towards, and the result.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `learn_log.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon learn log (learn_log.json)")]
pub struct LearnLog {
    /// `1`.
    pub schema_version: u32,
    /// The command as the learned probe runs it (the workspace as `${SCRATCH}/ws`).
    pub command: Vec<String>,
    /// The workspace (`${SCRATCH}/ws`), if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// `--widen-to` directories, resolved.
    pub widen_to: Vec<String>,
    /// `--never` paths, resolved.
    pub never: Vec<String>,
    /// The Landlock ABI the profile pins (every right of it handled).
    pub abi: u8,
    /// `--max-rounds`.
    pub max_rounds: u32,
    /// How the command ended without a policy (the baseline lane of round 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<LearnEnding>,
    /// The rules of the deny-all profile round 1 starts from.
    pub initial_rules: Vec<LearnRule>,
    /// Every round, in order.
    pub rounds: Vec<LearnRound>,
    /// `--minimize`: each rule the rounds added, tried away once (sorted), and whether the
    /// command still ended as in the baseline without it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub minimized: Vec<LearnTrial>,
    /// The outcome.
    pub result: LearnResult,
    /// The proof run of the written plan (absent when learning failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<LearnProof>,
}

/// How one run of the command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnEnding {
    /// Its exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Why there is neither (a spawn failure, a timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A rule and why it is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnRule {
    /// The rule in words, e.g. `read on /etc/os-release`.
    pub rule: String,
    /// Why.
    pub why: String,
}

/// One round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnRound {
    /// 1-based.
    pub round: u32,
    /// How the command ended under the profile of this round.
    pub ended: LearnEnding,
    /// It ended as in the baseline: learning is over.
    pub matches_baseline: bool,
    /// Every access the kernel denied the command (its own domain only), sorted.
    pub denials: Vec<LearnDenial>,
    /// The rules this round added, sorted.
    pub rules_added: Vec<String>,
    /// `collected`, or `lost: why` (records the kernel dropped).
    pub kernel_audit: String,
}

/// One denied access and what learn did about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnDenial {
    /// The kernel's blocker, e.g. `fs.read_file`.
    pub blocker: String,
    /// The object: a path (beneath `${SCRATCH}` for the command's scratch directory) or
    /// `port N`.
    pub object: String,
    /// The decision.
    pub decision: LearnDecision,
    /// The rule that covers it (granted, or granted before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why.
    pub why: String,
}

/// What learn did about a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LearnDecision {
    /// A rule was added for it.
    Granted,
    /// Its rule was added in an earlier round and the kernel still denied it.
    AlreadyGranted,
    /// It cannot or may not be granted (the reason says which).
    Refused,
    /// The round ended as in the baseline with it denied: not granted.
    Tolerated,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnResult {
    /// The command ended as in the baseline.
    pub converged: bool,
    /// The round in which it did (0: it did not).
    pub rounds: u32,
    /// The learned rules in words, sorted.
    pub rules: Vec<String>,
    /// Why learning stopped without a profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The proof run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnProof {
    /// The run's exit code (0: every scenario matched its expectation).
    pub exit_code: i32,
    /// Why, in one sentence.
    pub reason: String,
    /// The plan run, relative to `--out`.
    pub plan: String,
}

/// One rule tried away by `--minimize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnTrial {
    /// The rule, in words.
    pub rule: String,
    /// How the command ended without it.
    pub ended: LearnEnding,
    /// `dropped` (it still ended as in the baseline: the rule is gone) or `kept`.
    pub outcome: String,
}
