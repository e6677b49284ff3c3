//! The plan file (`plans/<name>/plan.json` or `.yaml`).
//!
//! Experiments and missions share one schema: a mission is a plan with `kind: mission` and a
//! `mission` block.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::id::{Id, VarName};

/// The per-child wall timeout in milliseconds when neither the probe (`timeout_ms`), the
/// profile (`limits.wall_timeout_ms`) nor the plan (`execution.timeout_ms`) sets one. Lint
/// reports when it applies; the runner records it.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// A plan's scenario matrix: for each profile, the probes it runs and the decision expected.
pub type Matrix = BTreeMap<Id, BTreeMap<Id, Expectation>>;

/// A plan: which profiles run which probes, with what expectations, how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon plan")]
pub struct Plan {
    /// The JSON Schema this file follows, for editors (not part of `plan_digest`).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Format version; this build reads `1`.
    pub schema_version: u32,
    /// The plan's id (matches its directory name by convention).
    pub plan_id: Id,
    /// `experiment` (does this policy allow/deny these operations?) or `mission` (do this
    /// work under this policy, with governance).
    pub kind: PlanKind,
    /// What the plan is for, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The registry (`registry/<registry_id>/`) whose probes and profiles the plan uses.
    pub registry_id: Id,
    /// The profiles the plan runs, in order.
    pub profiles: Vec<Id>,
    /// For each profile: the probes it runs and the decision expected for each.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "matrix::deserialize"
    )]
    #[schemars(with = "BTreeMap<Id, BTreeMap<Id, Expectation>>")]
    pub scenarios: Matrix,
    /// Which lanes run.
    #[serde(default)]
    pub lanes: Lanes,
    /// Control probes run under every profile: operations the profile must not change
    /// (typically ones Landlock does not govern). Expected `allow` unless the plan's
    /// `scenarios` say otherwise for that profile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<Id>,
    /// A profile that must apply cleanly before anything runs; if the kernel cannot enforce
    /// it, the run stops with exit 5 before any lane executes. Every selected profile is
    /// preflighted regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_preflight_profile: Option<Id>,
    /// Parallelism, timeouts, retries, isolation.
    #[serde(default)]
    pub execution: Execution,
    /// Plan variables usable as `${NAME}` in probe targets, argv and fixtures.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<VarName, String>,
    /// The mission block (required when `kind` is `mission`, refused otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mission: Option<Mission>,
}

/// What a plan is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PlanKind {
    /// Does this policy really allow/deny these operations?
    Experiment,
    /// Do this work under this policy, with governance (§8).
    Mission,
}

/// The decision a scenario is expected to have.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Expectation {
    /// The operation succeeds (or fails for reasons other than the policy).
    Allow,
    /// The policy denies the operation.
    Deny,
}

impl Expectation {
    /// `allow` / `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Expectation::Allow => "allow",
            Expectation::Deny => "deny",
        }
    }
}

/// Which lanes run (all three by default). A mission's tasks always run in the scenario
/// lane; its baseline lane (a task's work again, without any policy) runs only when
/// `baseline` is set to `true` explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lanes {
    /// The probe with no profile applied.
    #[serde(default = "yes")]
    pub baseline: bool,
    /// The probe with the profile enforced by the kernel.
    #[serde(default = "yes")]
    pub scenario: bool,
    /// The static prediction from the profile's rules.
    #[serde(default = "yes")]
    pub oracle: bool,
}

fn yes() -> bool {
    true
}

impl Default for Lanes {
    fn default() -> Self {
        Self {
            baseline: true,
            scenario: true,
            oracle: true,
        }
    }
}

/// How the plan executes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    /// Parallel children (default: the number of cores; `--jobs` overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub jobs: Option<u32>,
    /// Default per-probe wall timeout in milliseconds (a probe's own `timeout_ms` wins; when
    /// neither is set the runner's default applies and is reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
    /// Extra attempts for a scenario whose observation is not its expectation. Every attempt
    /// is kept; one that passes only on retry is `flaky`.
    #[serde(default)]
    #[schemars(range(max = 10))]
    pub retries: u32,
    /// How children are isolated from each other and from the runner.
    #[serde(default)]
    pub isolation: Isolation,
    /// Bytes of stdout and of stderr kept per child (default 1 MiB); the rest is counted and
    /// the truncation recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cap_bytes: Option<u64>,
    /// Whether a `flaky` scenario fails the run (exit 1). Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_on_flaky: Option<bool>,
}

/// Child isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Each child in its own process group; the runner is a child subreaper and sweeps
    /// descendants that escape the group.
    #[default]
    ProcessGroup,
}

/// The mission block (§8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mission {
    /// What the mission is meant to achieve.
    pub objective: String,
    /// The mission's category.
    pub category: Category,
    /// Risk rank, `E` (lowest) to `S` (highest).
    pub rank: Rank,
    /// Six-axis scores, each 0–100.
    pub scores: Scores,
    /// Who asked for the mission (an operator principal; cannot approve it at rank S).
    pub requested_by: String,
    /// Tasks: each a probe under a profile, ordered by `depends_on`.
    pub tasks: BTreeMap<Id, Task>,
}

/// Mission category.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Earns something.
    Coin,
    /// Builds something.
    Forge,
    /// Learns or records something.
    Library,
    /// Protects something.
    Sanctuary,
}

/// Risk rank.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Rank {
    /// Lowest risk.
    E,
    /// Low risk.
    D,
    /// Moderate: runs, flagged for review.
    C,
    /// Elevated: runs, flagged for review.
    B,
    /// High: needs one valid approval.
    A,
    /// Critical: needs two approvals from distinct approvers, neither the requester.
    S,
}

/// The six axes, each 0–100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scores {
    /// How expensive the mission is to run (higher is costlier).
    #[schemars(range(max = 100))]
    pub compute_cost: u8,
    /// How maintainable the result is.
    #[schemars(range(max = 100))]
    pub maintainability: u8,
    /// How much operator attention it needs (higher needs more).
    #[schemars(range(max = 100))]
    pub attention: u8,
    /// The value it produces.
    #[schemars(range(max = 100))]
    pub economic_value: u8,
    /// How far its inputs and actors are trusted.
    #[schemars(range(max = 100))]
    pub trust: u8,
    /// How confident the prediction of its outcome is.
    #[schemars(range(max = 100))]
    pub prediction_confidence: u8,
}

/// One mission task: a probe, or a worker with its inputs, under a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// The probe to run (a task names a probe or a worker, not both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Id>,
    /// The worker to run (declared in the registry's `workers.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<Id>,
    /// The worker's inputs, by name, typed as the worker declares them (worker tasks
    /// only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<Id, serde_json::Value>,
    /// The profile it runs under (for a worker: the profile the worker declares).
    pub profile: Id,
    /// Tasks that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Id>,
    /// The expected decision (default `allow`: the task's work succeeds; a worker task
    /// always expects `allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expectation>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl Task {
    /// What fills the probe slot of the task's scenario row: its probe, or its worker.
    pub fn unit(&self) -> Option<&Id> {
        self.probe.as_ref().or(self.worker.as_ref())
    }

    /// The task's scenario row: `<profile>:<probe>` for a probe task,
    /// `<profile>:<worker>@<task>` for a worker task (one worker may serve several tasks).
    pub fn scenario_id(&self, task_id: &Id) -> String {
        match (&self.probe, &self.worker) {
            (Some(p), _) => format!("{}:{p}", self.profile),
            (None, Some(w)) => format!("{}:{w}@{task_id}", self.profile),
            (None, None) => format!("{}:@{task_id}", self.profile),
        }
    }
}

/// The scenario matrix read exactly as `BTreeMap<Id, BTreeMap<Id, Expectation>>` is (the
/// same errors at the same places), with every id shared: a probe named under every
/// profile is one string, however many profiles name it.
mod matrix {
    use std::collections::{BTreeMap, HashSet};
    use std::fmt;

    use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};

    use super::{Expectation, Id, Matrix};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Matrix, D::Error> {
        d.deserialize_map(Rows(HashSet::new()))
    }

    fn shared(ids: &mut HashSet<Id>, id: Id) -> Id {
        if let Some(known) = ids.get(id.as_str()) {
            return known.clone();
        }
        ids.insert(id.clone());
        id
    }

    struct Rows(HashSet<Id>);

    impl<'de> Visitor<'de> for Rows {
        type Value = Matrix;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Matrix, A::Error> {
            let mut out = Matrix::new();
            while let Some(profile) = map.next_key::<Id>()? {
                let row = map.next_value_seed(Row(&mut self.0))?;
                out.insert(profile, row);
            }
            Ok(out)
        }
    }

    struct Row<'a>(&'a mut HashSet<Id>);

    impl<'de> DeserializeSeed<'de> for Row<'_> {
        type Value = BTreeMap<Id, Expectation>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Row<'_> {
        type Value = BTreeMap<Id, Expectation>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            // Built in bulk from the row's entries (sorted, a repeated key's last value
            // kept, as inserting one by one keeps it): full nodes, about half the memory
            // of a tree grown by inserting sorted keys, whose nodes split half-full.
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(probe) = map.next_key::<Id>()? {
                let e: Expectation = map.next_value()?;
                entries.push((shared(self.0, probe), e));
            }
            Ok(entries.into_iter().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_matrices_read_as_inserting_each_entry_in_turn() {
        // Seeded matrices written as JSON text, in any key order, with repeated probe
        // (and profile) keys: the rows built in bulk equal maps filled one insert at a
        // time (a repeated key's last value wins).
        use crate::util::testrng::Rng;
        use std::fmt::Write as _;
        let mut r = Rng(4242);
        for _ in 0..300 {
            let mut text = String::from("{");
            let mut want: Matrix = BTreeMap::new();
            let rows = r.below(5usize);
            for i in 0..rows {
                let profile = format!("p{}", r.below(4u32));
                let mut row: BTreeMap<Id, Expectation> = BTreeMap::new();
                let _ = write!(text, "{}\"{profile}\": {{", if i > 0 { "," } else { "" });
                for j in 0..r.below(40usize) {
                    let probe = format!("q{}", r.below(30u32));
                    let e = if r.chance(50) {
                        Expectation::Allow
                    } else {
                        Expectation::Deny
                    };
                    let _ = write!(
                        text,
                        "{}\"{probe}\": \"{}\"",
                        if j > 0 { "," } else { "" },
                        e.as_str()
                    );
                    row.insert(Id::new(probe).unwrap(), e);
                }
                text.push('}');
                want.insert(Id::new(profile).unwrap(), row);
            }
            text.push('}');
            let got = matrix::deserialize(&mut serde_json::Deserializer::from_str(&text))
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
        }
    }
}
