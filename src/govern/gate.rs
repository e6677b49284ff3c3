//! The gate: a pure function from a plan's governance facts to a
//! decision, consulted before anything runs.
//!
//! Rules, each adding a reason (stable names) and the stricter always winning:
//!
//! | rule | effect | reason |
//! |---|---|---|
//! | experiment | runs | `experiment` |
//! | rank E, D | runs | `rank-runs` |
//! | rank C, B | runs, flagged `review-required` | `rank-review` |
//! | rank C, B + capability `auto-run-cb` | runs, no flag | `rank-review-waived` |
//! | rank A | ≥ 1 valid approval | `rank-needs-approval` |
//! | rank S | ≥ 2 valid approvals from distinct approvers, not `requested_by` | `rank-needs-two-approvals` |
//! | composite SAFE (≥ 60) | — | — |
//! | composite BORDERLINE (30–59) | ≥ 1 valid approval | `composite-borderline` |
//! | composite FAILING (< 30) | refused | `composite-failing` |
//! | omen at warn (≥ 3) | flagged `omen-warning` | `omen-warning` |
//! | omen needing approval (≥ 7) | mission: ≥ 1 valid approval; experiment: flagged | `omen-needs-approval` |
//! | omen locked (≥ 13) | refused | `omen-locked` |
//! | fewer valid approvals than required | refused | `approvals-insufficient` |
//! | approvals required and the trust file does not parse | refused (the file and line named) | `trust-file-broken` |
//! | a rank-S approval by the requester | not counted | `requester-approval-not-counted` |
//! | mission without `parallel-missions` | one task at a time | `parallelism-limited` |
//! | a worker's `risk_level` above the mission's rank | gated as that rank | `worker-risk` |
//! | a worker with `requires_approval` | ≥ 1 valid approval | `worker-requires-approval` |
//! | a worker needing a capability not held | refused (the level that unlocks it is named) | `worker-capability-locked` |
//!
//! Composite score (integer 0–100): a weighted mean of the six axes where the cost-like
//! axes count inverted —
//! `round((3·trust + 2·prediction_confidence + 2·maintainability + economic_value
//! + (100 − compute_cost) + (100 − attention)) / 10)`, halves rounding up.
//!
//! Trust and prediction confidence weigh most because they say how far the outcome can be
//! foreseen; cost and attention count against a mission.

use super::approvals::ApprovalCheck;
use super::evolution::Capabilities;
use super::omens::{OmenHit, OmenLevel};
use crate::model::evolution::{Capability, Level};
pub use crate::model::gate::{Band, Composite, GateVerdict, LockedCapability, Outcome, WorkerGate};
use crate::model::plan::{Plan, PlanKind, Rank, Scores};

/// Composite at or above this is SAFE.
pub const SAFE_AT: u8 = 60;
/// Composite at or above this (and below [`SAFE_AT`]) is BORDERLINE; below is FAILING.
pub const BORDERLINE_AT: u8 = 30;

impl Outcome {
    /// `allow`, `allow-flagged`, `refuse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::AllowFlagged => "allow-flagged",
            Outcome::Refuse => "refuse",
        }
    }
}

impl Band {
    /// `SAFE`, `BORDERLINE`, `FAILING`.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Safe => "SAFE",
            Band::Borderline => "BORDERLINE",
            Band::Failing => "FAILING",
        }
    }
}

/// The composite score of six-axis scores (formula in the module docs).
pub fn composite(s: &Scores) -> Composite {
    let c = |v: u8| u32::from(v.min(100));
    let sum = 3 * c(s.trust)
        + 2 * c(s.prediction_confidence)
        + 2 * c(s.maintainability)
        + c(s.economic_value)
        + (100 - c(s.compute_cost))
        + (100 - c(s.attention));
    let score = u8::try_from((sum + 5) / 10).unwrap_or(100);
    let band = if score >= SAFE_AT {
        Band::Safe
    } else if score >= BORDERLINE_AT {
        Band::Borderline
    } else {
        Band::Failing
    };
    Composite { score, band }
}

/// The governance facts the gate's rules decide on (rank, scores, verified approvals,
/// omens, capabilities). Not [`crate::exec::GateInput`], which is what the runner hands
/// its gate hook (the loaded plan); [`super::Governance::gate_for`] derives these facts
/// from it.
#[derive(Debug, Clone, Copy)]
pub struct GateFacts<'a> {
    /// Experiment or mission.
    pub kind: PlanKind,
    /// The mission's rank.
    pub rank: Option<Rank>,
    /// The mission's scores.
    pub scores: Option<&'a Scores>,
    /// The mission's requester.
    pub requested_by: Option<&'a str>,
    /// Verified approvals.
    pub approvals: &'a ApprovalCheck,
    /// Omens on the plan's scenarios (warn or above).
    pub omens: &'a [OmenHit],
    /// Evolution capabilities.
    pub capabilities: &'a Capabilities,
    /// A dry run (recorded in the decision; the rules are the same).
    pub dry: bool,
    /// The workers the mission's tasks use.
    pub workers: &'a [WorkerFacts],
}

/// What the gate needs to know of a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerFacts {
    /// Its name.
    pub name: String,
    /// Its declared risk.
    pub risk_level: Rank,
    /// It demands an approval.
    pub requires_approval: bool,
    /// The evolution capabilities its declared capabilities need.
    pub needs: Vec<Capability>,
}

impl WorkerFacts {
    /// The facts of every worker a loaded plan uses (sorted by name).
    pub fn of_plan(plan: &crate::load::LoadedPlan) -> Vec<Self> {
        plan.workers
            .values()
            .map(|w| {
                let mut needs: Vec<Capability> = w
                    .decl
                    .capabilities
                    .iter()
                    .filter_map(|c| c.needs())
                    .collect();
                needs.sort();
                needs.dedup();
                Self {
                    name: w.name.to_string(),
                    risk_level: w.decl.risk_level,
                    requires_approval: w.decl.requires_approval,
                    needs,
                }
            })
            .collect()
    }
}

impl<'a> GateFacts<'a> {
    /// The input for `plan`.
    pub fn for_plan(
        plan: &'a Plan,
        approvals: &'a ApprovalCheck,
        omens: &'a [OmenHit],
        capabilities: &'a Capabilities,
        dry: bool,
        workers: &'a [WorkerFacts],
    ) -> Self {
        let m = plan.mission.as_ref();
        Self {
            kind: plan.kind,
            rank: m.map(|m| m.rank),
            scores: m.map(|m| &m.scores),
            requested_by: m.map(|m| m.requested_by.as_str()),
            approvals,
            omens,
            capabilities,
            dry,
            workers,
        }
    }
}

impl GateVerdict {
    /// Whether the plan may run.
    pub fn allows(&self) -> bool {
        self.outcome != Outcome::Refuse
    }

    /// One human sentence per reason, in the order of [`GateVerdict::reasons`] (the
    /// sentences do not repeat the reason codes).
    pub fn explain(&self) -> Vec<String> {
        self.reasons
            .iter()
            .map(|r| self.explain_reason(r))
            .collect()
    }

    /// The sentence for one reason code (the code itself if it is unknown).
    pub fn explain_reason(&self, r: &str) -> String {
        match r {
            "experiment" => {
                "experiments run unless an omen locks one of their scenarios".to_string()
            }
            "rank-runs" => format!("rank {}: runs", rank_str(self.gated_rank())),
            "rank-review" => format!(
                "rank {}: runs, flagged for review",
                rank_str(self.gated_rank())
            ),
            "rank-review-waived" => format!(
                "rank {}: runs without the review flag (capability auto-run-cb)",
                rank_str(self.gated_rank())
            ),
            "rank-needs-approval" => "rank A: needs one valid approval".to_string(),
            "rank-needs-two-approvals" => {
                "rank S: needs two valid approvals from distinct approvers, neither the requester"
                    .to_string()
            }
            "composite-borderline" => format!(
                "composite score {} is BORDERLINE (30-59): needs an approval",
                self.composite.map_or(0, |c| c.score)
            ),
            "composite-failing" => format!(
                "composite score {} is FAILING (below 30): refused",
                self.composite.map_or(0, |c| c.score)
            ),
            "omen-warning" => format!(
                "an omen warns on {} (it failed 3 or more times)",
                self.omen_scenarios(OmenLevel::Warn)
            ),
            "omen-needs-approval" => format!(
                "an omen on {} needs an approval (it failed 7 or more times)",
                self.omen_scenarios(OmenLevel::NeedsApproval)
            ),
            "omen-locked" => format!(
                "an omen locks {} until an approver clears it (it failed 13 or more times)",
                self.omen_scenarios(OmenLevel::Locked)
            ),
            "trust-file-broken" => format!(
                "{}: no approval can be verified until it is fixed",
                self.trust_broken
                    .as_deref()
                    .unwrap_or("the trust file is broken")
            ),
            "approvals-insufficient" => format!(
                "{} valid approval(s), {} required",
                self.valid_approvals, self.required_approvals
            ),
            "requester-approval-not-counted" => {
                "the requester's own approval does not count at rank S".to_string()
            }
            "parallelism-limited" => {
                "tasks run one at a time (capability parallel-missions not held)".to_string()
            }
            "worker-risk" => {
                let risky: Vec<String> = self
                    .workers
                    .iter()
                    .filter(|w| Some(w.risk_level) > self.rank)
                    .map(|w| format!("`{}` (risk {})", w.name, rank_str(Some(w.risk_level))))
                    .collect();
                format!(
                    "worker {} raises the mission from rank {} to rank {}",
                    risky.join(", "),
                    rank_str(self.rank),
                    rank_str(self.effective_rank)
                )
            }
            "worker-requires-approval" => {
                let names: Vec<String> = self
                    .workers
                    .iter()
                    .filter(|w| w.requires_approval)
                    .map(|w| format!("`{}`", w.name))
                    .collect();
                format!(
                    "worker {} requires an approval of every mission that uses it",
                    names.join(", ")
                )
            }
            "worker-capability-locked" => {
                let list: Vec<String> = self
                    .workers
                    .iter()
                    .flat_map(|w| {
                        w.locked.iter().map(move |l| {
                            format!(
                                "worker `{}` needs capability `{}`, unlocked at level {} ({} XP)",
                                w.name,
                                l.capability.as_str(),
                                l.unlocked_at.as_str(),
                                l.xp
                            )
                        })
                    })
                    .collect();
                format!(
                    "{}; the evolution state is {}",
                    list.join("; "),
                    self.evolution_level.map_or("DORMANT", Level::as_str)
                )
            }
            other => other.to_string(),
        }
    }
}

impl GateVerdict {
    /// The rank the rules applied: the effective rank (a worker's risk may raise it), else
    /// the mission's.
    pub fn gated_rank(&self) -> Option<Rank> {
        self.effective_rank.or(self.rank)
    }

    /// "scenario `a:b` (omen 1a2b3c4d5e6f)" for the omens at `level`.
    fn omen_scenarios(&self, level: OmenLevel) -> String {
        let list: Vec<String> = self
            .omens
            .iter()
            .filter(|o| o.level == level)
            .map(|o| {
                format!(
                    "`{}` (omen {}, {} failure(s))",
                    o.scenario_id,
                    super::short_hex(&o.fingerprint),
                    o.count
                )
            })
            .collect();
        if list.is_empty() {
            "a scenario of this plan".to_string()
        } else {
            format!("scenario {}", list.join(", "))
        }
    }
}

fn rank_str(r: Option<Rank>) -> &'static str {
    match r {
        Some(Rank::E) => "E",
        Some(Rank::D) => "D",
        Some(Rank::C) => "C",
        Some(Rank::B) => "B",
        Some(Rank::A) => "A",
        Some(Rank::S) => "S",
        None => "-",
    }
}

/// Decide. Pure: the same input always gives the same decision.
pub fn decide(input: &GateFacts<'_>) -> GateVerdict {
    let mut reasons: Vec<&'static str> = Vec::new();
    let mut flags: Vec<&'static str> = Vec::new();
    let mut used: Vec<Capability> = Vec::new();
    let mut required: u32 = 0;
    let mut refuse = false;
    let mut composite_v = None;
    let mut max_jobs = None;
    let mission = input.kind == PlanKind::Mission;
    let worker_max = input.workers.iter().map(|w| w.risk_level).max();
    let effective = match (input.rank, worker_max) {
        (Some(r), Some(w)) => Some(r.max(w)),
        (r, None) => r,
        // A mission without a rank is treated as the highest (fail closed).
        (None, Some(_)) => None,
    };
    let mut workers: Vec<WorkerGate> = Vec::new();
    let mut locked_any = false;
    for w in input.workers {
        let locked: Vec<LockedCapability> = w
            .needs
            .iter()
            .filter(|c| !input.capabilities.has(**c))
            .map(|c| {
                let (level, xp) = super::evolution::unlocked_at(*c);
                LockedCapability {
                    capability: *c,
                    unlocked_at: level,
                    xp,
                }
            })
            .collect();
        locked_any |= !locked.is_empty();
        workers.push(WorkerGate {
            name: w.name.clone(),
            risk_level: w.risk_level,
            requires_approval: w.requires_approval,
            locked,
        });
    }
    workers.sort();

    if mission {
        if effective != input.rank {
            reasons.push("worker-risk");
        }
        match effective {
            Some(Rank::E | Rank::D) => reasons.push("rank-runs"),
            Some(Rank::C | Rank::B) => {
                if input.capabilities.has(Capability::AutoRunCb) {
                    reasons.push("rank-review-waived");
                    used.push(Capability::AutoRunCb);
                } else {
                    reasons.push("rank-review");
                    flags.push("review-required");
                }
            }
            Some(Rank::A) => {
                reasons.push("rank-needs-approval");
                required = required.max(1);
            }
            Some(Rank::S) | None => {
                // A mission without a rank is treated as the highest (fail closed).
                reasons.push("rank-needs-two-approvals");
                required = required.max(2);
            }
        }
        if let Some(scores) = input.scores {
            let c = composite(scores);
            composite_v = Some(c);
            match c.band {
                Band::Safe => {}
                Band::Borderline => {
                    reasons.push("composite-borderline");
                    required = required.max(1);
                }
                Band::Failing => {
                    reasons.push("composite-failing");
                    refuse = true;
                }
            }
        }
        if input.capabilities.has(Capability::ParallelMissions) {
            used.push(Capability::ParallelMissions);
        } else {
            reasons.push("parallelism-limited");
            max_jobs = Some(1);
        }
        if workers.iter().any(|w| w.requires_approval) {
            reasons.push("worker-requires-approval");
            required = required.max(1);
        }
        if locked_any {
            reasons.push("worker-capability-locked");
            refuse = true;
        }
        for w in input.workers {
            used.extend(w.needs.iter().filter(|c| input.capabilities.has(**c)));
        }
    } else {
        reasons.push("experiment");
    }

    let worst = input.omens.iter().map(|o| o.level).max();
    if input.omens.iter().any(|o| o.level == OmenLevel::Warn) {
        reasons.push("omen-warning");
        flags.push("omen-warning");
    }
    if input
        .omens
        .iter()
        .any(|o| o.level == OmenLevel::NeedsApproval)
    {
        reasons.push("omen-needs-approval");
        if mission {
            required = required.max(1);
        } else {
            flags.push("omen-needs-approval");
        }
    }
    if worst == Some(OmenLevel::Locked) {
        reasons.push("omen-locked");
        refuse = true;
    }

    let excluded = match effective {
        Some(Rank::S) | None if mission => input.requested_by,
        _ => None,
    };
    let mut approvers: Vec<String> = input
        .approvals
        .approvers_except(excluded)
        .into_iter()
        .map(str::to_string)
        .collect();
    approvers.sort();
    if required > 0
        && excluded.is_some_and(|r| input.approvals.valid.iter().any(|v| v.approver == r))
    {
        reasons.push("requester-approval-not-counted");
    }
    let counted = u32::try_from(approvers.len()).unwrap_or(u32::MAX);
    if required > 0 && input.approvals.trust_broken.is_some() {
        // Not "nobody approved": nothing can be verified until the trust file is fixed.
        reasons.push("trust-file-broken");
        refuse = true;
    }
    if counted < required {
        reasons.push("approvals-insufficient");
        refuse = true;
    }

    flags.sort_unstable();
    flags.dedup();
    used.sort();
    used.dedup();
    let outcome = if refuse {
        Outcome::Refuse
    } else if flags.is_empty() {
        Outcome::Allow
    } else {
        Outcome::AllowFlagged
    };
    GateVerdict {
        outcome,
        kind: input.kind,
        rank: input.rank,
        reasons: reasons.into_iter().map(str::to_string).collect(),
        flags: flags.into_iter().map(str::to_string).collect(),
        required_approvals: required,
        valid_approvals: counted,
        approvers,
        composite: composite_v,
        omens: input.omens.to_vec(),
        capabilities_used: used,
        max_jobs,
        dry: input.dry,
        effective_rank: if mission { effective } else { None },
        workers,
        evolution_level: if locked_any || input.workers.iter().any(|w| !w.needs.is_empty()) {
            Some(input.capabilities.level.unwrap_or(Level::Dormant))
        } else {
            None
        },
        trust_broken: if required > 0 {
            input.approvals.trust_broken.clone()
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::govern::approvals::ValidApproval;
    use crate::model::evolution::Level;
    use std::path::PathBuf;

    fn scores(x: u8) -> Scores {
        Scores {
            compute_cost: 100 - x,
            maintainability: x,
            attention: 100 - x,
            economic_value: x,
            trust: x,
            prediction_confidence: x,
        }
    }

    fn approvals(names: &[&str]) -> ApprovalCheck {
        ApprovalCheck {
            valid: names
                .iter()
                .enumerate()
                .map(|(i, n)| ValidApproval {
                    approver: (*n).to_string(),
                    key_fingerprint: format!("SHA256:k{i}"),
                    record_path: PathBuf::from(format!("{n}.json")),
                    sig_path: PathBuf::from(format!("{n}.json.sig")),
                    roles: vec!["approver".into()],
                    issued_at: String::new(),
                    expires_at: String::new(),
                    record_blake3: String::new(),
                    nonce: String::new(),
                    uses: None,
                    used: None,
                })
                .collect(),
            rejected: vec![],
            trust_broken: None,
        }
    }

    fn caps(list: &[Capability]) -> Capabilities {
        Capabilities {
            level: Some(Level::Dormant),
            held: list.iter().copied().collect(),
        }
    }

    fn omen(level: OmenLevel) -> OmenHit {
        OmenHit {
            scenario_id: "p:x".into(),
            fingerprint: "f".repeat(64),
            mismatch_kind: "expected-deny-observed-allow".into(),
            level,
            count: 0,
        }
    }

    struct Case {
        kind: PlanKind,
        rank: Option<Rank>,
        score: u8,
        approvers: &'static [&'static str],
        omens: Vec<OmenLevel>,
        caps: Vec<Capability>,
        workers: Vec<WorkerFacts>,
        trust_broken: Option<&'static str>,
    }

    fn mission(rank: Rank) -> Case {
        Case {
            kind: PlanKind::Mission,
            rank: Some(rank),
            score: 80,
            approvers: &[],
            omens: vec![],
            caps: vec![],
            workers: vec![],
            trust_broken: None,
        }
    }

    fn run(c: &Case) -> GateVerdict {
        let mut a = approvals(c.approvers);
        a.trust_broken = c.trust_broken.map(str::to_string);
        let o: Vec<OmenHit> = c.omens.iter().map(|l| omen(*l)).collect();
        let cp = caps(&c.caps);
        let s = scores(c.score);
        decide(&GateFacts {
            kind: c.kind,
            rank: c.rank,
            scores: (c.kind == PlanKind::Mission).then_some(&s),
            requested_by: Some("rita"),
            approvals: &a,
            omens: &o,
            capabilities: &cp,
            dry: false,
            workers: &c.workers,
        })
    }

    #[test]
    fn composite_formula_and_band_edges() {
        for (x, band) in [
            (0, Band::Failing),
            (29, Band::Failing),
            (30, Band::Borderline),
            (59, Band::Borderline),
            (60, Band::Safe),
            (100, Band::Safe),
        ] {
            let c = composite(&scores(x));
            assert_eq!(c.score, x);
            assert_eq!(c.band, band, "score {x}");
        }
        // Weights: trust counts three times as much as economic value.
        let mut s = scores(50);
        s.trust = 60;
        assert_eq!(composite(&s).score, 53);
        let mut s = scores(50);
        s.economic_value = 60;
        assert_eq!(composite(&s).score, 51);
        // Cost-like axes count inverted.
        let mut s = scores(50);
        s.compute_cost = 100;
        assert_eq!(composite(&s).score, 45);
        // Halves round up: sum 295 → 30.
        let s = Scores {
            compute_cost: 100,
            maintainability: 0,
            attention: 100,
            economic_value: 95,
            trust: 50,
            prediction_confidence: 25,
        };
        assert_eq!(composite(&s).score, 30);
    }

    #[test]
    fn rank_table() {
        use Outcome::*;
        for (rank, approvers, want, required) in [
            (Rank::E, &[][..], Allow, 0),
            (Rank::D, &[], Allow, 0),
            (Rank::C, &[], AllowFlagged, 0),
            (Rank::B, &[], AllowFlagged, 0),
            (Rank::A, &[], Refuse, 1),
            (Rank::A, &["alice"], Allow, 1),
            (Rank::A, &["rita"], Allow, 1),
            (Rank::S, &["alice"], Refuse, 2),
            (Rank::S, &["alice", "rita"], Refuse, 2),
            (Rank::S, &["alice", "bob"], Allow, 2),
            (Rank::S, &["alice", "bob", "rita"], Allow, 2),
        ] {
            let mut c = mission(rank);
            c.approvers = approvers;
            let d = run(&c);
            assert_eq!(d.outcome, want, "{rank:?} {approvers:?}: {d:#?}");
            assert_eq!(d.required_approvals, required, "{rank:?}");
        }
    }

    #[test]
    fn requester_is_never_counted_at_rank_s() {
        let mut c = mission(Rank::S);
        c.approvers = &["alice", "rita"];
        let d = run(&c);
        assert_eq!(d.valid_approvals, 1);
        assert_eq!(d.approvers, vec!["alice"]);
        assert!(
            d.reasons
                .contains(&"requester-approval-not-counted".to_string())
        );
        assert!(d.reasons.contains(&"approvals-insufficient".to_string()));
    }

    #[test]
    fn review_flag_is_waived_by_auto_run_cb() {
        let mut c = mission(Rank::C);
        assert_eq!(run(&c).flags, vec!["review-required"]);
        c.caps = vec![Capability::AutoRunCb];
        let d = run(&c);
        assert_eq!(d.outcome, Outcome::Allow);
        assert!(d.flags.is_empty());
        assert_eq!(d.capabilities_used, vec![Capability::AutoRunCb]);
        // It waives review only: an A mission still needs its approval.
        let mut c = mission(Rank::A);
        c.caps = vec![Capability::AutoRunCb];
        assert_eq!(run(&c).outcome, Outcome::Refuse);
    }

    #[test]
    fn composite_bands_and_the_stricter_rule() {
        let mut c = mission(Rank::E);
        c.score = 59;
        let d = run(&c);
        assert_eq!(d.outcome, Outcome::Refuse);
        assert_eq!(d.required_approvals, 1);
        assert!(d.reasons.contains(&"composite-borderline".to_string()));
        c.approvers = &["alice"];
        assert_eq!(run(&c).outcome, Outcome::Allow);
        c.score = 60;
        c.approvers = &[];
        assert_eq!(run(&c).outcome, Outcome::Allow);
        // FAILING refuses whatever the approvals.
        c.score = 29;
        c.approvers = &["alice", "bob"];
        let d = run(&c);
        assert_eq!(d.outcome, Outcome::Refuse);
        assert_eq!(
            d.reasons,
            vec!["rank-runs", "composite-failing", "parallelism-limited"]
        );
        // S + BORDERLINE: still two.
        let mut c = mission(Rank::S);
        c.score = 40;
        c.approvers = &["alice"];
        assert_eq!(run(&c).required_approvals, 2);
    }

    #[test]
    fn omens() {
        let mut c = mission(Rank::E);
        c.omens = vec![OmenLevel::Warn];
        let d = run(&c);
        assert_eq!(d.outcome, Outcome::AllowFlagged);
        assert_eq!(d.flags, vec!["omen-warning"]);
        c.omens = vec![OmenLevel::NeedsApproval];
        assert_eq!(run(&c).outcome, Outcome::Refuse);
        c.approvers = &["alice"];
        assert_eq!(run(&c).outcome, Outcome::Allow);
        c.omens = vec![OmenLevel::Locked, OmenLevel::Warn];
        let d = run(&c);
        assert_eq!(d.outcome, Outcome::Refuse);
        assert!(d.reasons.contains(&"omen-locked".to_string()));
    }

    #[test]
    fn experiments_pass_unless_an_omen_locks() {
        let mut c = mission(Rank::S);
        c.kind = PlanKind::Experiment;
        c.rank = None;
        let d = run(&c);
        assert_eq!(d.outcome, Outcome::Allow);
        assert_eq!(d.reasons, vec!["experiment"]);
        assert_eq!(d.required_approvals, 0);
        assert_eq!(d.max_jobs, None);
        c.omens = vec![OmenLevel::NeedsApproval];
        let d = run(&c);
        assert_eq!(d.outcome, Outcome::AllowFlagged);
        assert_eq!(d.flags, vec!["omen-needs-approval"]);
        c.omens = vec![OmenLevel::Locked];
        assert_eq!(run(&c).outcome, Outcome::Refuse);
    }

    #[test]
    fn parallelism_follows_the_capability() {
        let c = mission(Rank::E);
        let d = run(&c);
        assert_eq!(d.max_jobs, Some(1));
        assert!(d.reasons.contains(&"parallelism-limited".to_string()));
        let mut c = mission(Rank::E);
        c.caps = vec![Capability::ParallelMissions];
        let d = run(&c);
        assert_eq!(d.max_jobs, None);
        assert_eq!(d.capabilities_used, vec![Capability::ParallelMissions]);
        assert!(!d.reasons.contains(&"parallelism-limited".to_string()));
    }

    #[test]
    fn workers_raise_the_rank_demand_approvals_and_need_capabilities() {
        let w = |risk: Rank, approval: bool, needs: Vec<Capability>| WorkerFacts {
            name: "w".into(),
            risk_level: risk,
            requires_approval: approval,
            needs,
        };
        // The stricter of rank and risk: a rank-D mission with a risk-A worker needs one.
        let mut c = mission(Rank::D);
        c.workers = vec![w(Rank::A, false, vec![])];
        let d = run(&c);
        assert_eq!(d.outcome, Outcome::Refuse);
        assert_eq!(d.effective_rank, Some(Rank::A));
        assert_eq!(d.rank, Some(Rank::D));
        assert!(d.reasons.contains(&"worker-risk".to_string()));
        c.approvers = &["alice"];
        assert_eq!(run(&c).outcome, Outcome::Allow);
        // A lower risk never lowers the rank.
        let mut c = mission(Rank::B);
        c.workers = vec![w(Rank::E, false, vec![])];
        let d = run(&c);
        assert_eq!(d.effective_rank, Some(Rank::B));
        assert!(!d.reasons.contains(&"worker-risk".to_string()));
        // requires_approval at rank E.
        let mut c = mission(Rank::E);
        c.workers = vec![w(Rank::E, true, vec![])];
        let d = run(&c);
        assert_eq!((d.outcome, d.required_approvals), (Outcome::Refuse, 1));
        // A locked capability refuses whatever the approvals, naming the level.
        let mut c = mission(Rank::E);
        c.workers = vec![w(Rank::E, false, vec![Capability::RunScripts])];
        c.approvers = &["alice", "bob"];
        let d = run(&c);
        assert_eq!(d.outcome, Outcome::Refuse);
        assert_eq!(d.workers[0].locked[0].unlocked_at, Level::Awakening);
        assert!(
            d.explain_reason("worker-capability-locked")
                .contains("AWAKENING (1 XP)")
        );
        c.caps = vec![Capability::RunScripts];
        let d = run(&c);
        assert_eq!(d.outcome, Outcome::Allow);
        assert!(d.capabilities_used.contains(&Capability::RunScripts));
    }

    #[test]
    fn a_broken_trust_file_refuses_what_needs_approval_and_only_that() {
        let why = "trust.json:7: unknown key type `ssh-foo`";
        for rank in [Rank::E, Rank::D, Rank::C, Rank::B, Rank::A, Rank::S] {
            let mut c = mission(rank);
            c.approvers = &["alice", "bob"];
            c.trust_broken = Some(why);
            let d = run(&c);
            let needs = d.required_approvals > 0;
            assert_eq!(
                d.reasons.contains(&"trust-file-broken".to_string()),
                needs,
                "{rank:?}: {d:#?}"
            );
            assert_eq!(d.outcome == Outcome::Refuse, needs, "{rank:?}: {d:#?}");
            assert_eq!(d.trust_broken.as_deref(), needs.then_some(why), "{rank:?}");
            if needs {
                let line = d.explain_reason("trust-file-broken");
                assert!(line.starts_with(why), "{line}");
            }
        }
        let mut c = mission(Rank::S);
        c.kind = PlanKind::Experiment;
        c.rank = None;
        c.trust_broken = Some(why);
        assert_eq!(run(&c).outcome, Outcome::Allow);
    }

    #[test]
    fn every_reason_has_an_explanation() {
        let mut c = mission(Rank::S);
        c.score = 40;
        c.approvers = &["rita"];
        c.omens = vec![OmenLevel::Warn, OmenLevel::NeedsApproval, OmenLevel::Locked];
        let mut d = run(&c);
        d.reasons.push("rank-review-waived".into());
        d.reasons.push("rank-review".into());
        d.reasons.push("rank-runs".into());
        d.reasons.push("experiment".into());
        for (r, line) in d.reasons.iter().zip(d.explain()) {
            assert_ne!(&line, r, "no sentence for `{r}`");
            assert!(line.contains(' '), "{line}");
            // The sentence does not start by repeating the code ("experiment: an experiment").
            assert!(!line.starts_with(&format!("{r}:")), "{line}");
        }
    }
}
