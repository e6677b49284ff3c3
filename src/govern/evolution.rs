//! Evolution: XP, levels and capabilities earned from proven mission
//! outcomes, and lost to policy violations.
//!
//! The state is a **pure function of the set of consumed outcomes** ([`fold`]): the same
//! packets in any order, or consumed twice, give byte-identical `evolution.json`.
//!
//! Outcomes come only from packets checked against their bundles
//! ([`outcome_of_verified`], after `promote::check_packet`): a packet's pointers must resolve
//! to the bytes it records and deriving it again from its bundle must give the same packet,
//! so a hand-written or edited packet cannot earn XP (nor hide a violation), and the bundles
//! must still exist where the packets point.
//!
//! Rules (all documented in the README):
//! - XP per promotable, passing mission, by rank: E 1, D 2, C 3, B 5, A 8, S 13, **once
//!   per distinct outcome**: the outcome of a mission is its plan digest (the plan with
//!   every probe, profile, worker declaration and worker executable it resolves) and the
//!   inputs its tasks were given ([`outcome_key`]). Rerunning the same mission with the
//!   same inputs proves nothing new, so only the first passing packet of an outcome (the
//!   lowest packet digest, so order never matters) earns; the others are `repeats`.
//! - Each violation (a scenario allowed that was expected denied) costs
//!   [`VIOLATION_PENALTY_XP`], in every run that observed it, whether or not its packet is
//!   promotable: a violation cannot be hidden by making the evidence weaker.
//! - `xp = max(0, earned - penalty)`, computed on the totals (so order never matters).
//! - Levels are XP thresholds: DORMANT 0, AWAKENING 1 (one passing mission of any rank),
//!   FORGING 10, SOVEREIGN 50, APEX 200. Falling below a threshold drops the level and
//!   revokes what it unlocked.
//! - Capabilities, cumulative ([`unlocks`]): AWAKENING `parallel-missions` (a mission's
//!   independent tasks run in parallel) and `run-scripts` (workers that run code given in
//!   their inputs), FORGING `auto-run-cb` (rank C and B missions run without the review
//!   flag), SOVEREIGN `network` (workers that reach beyond the loopback interface). APEX
//!   adds none. (There is deliberately no "reuse proven results": a mission task does work
//!   its dependents consume, so reporting it done from an earlier run's evidence would skip
//!   the work and claim an observation this run never made.)
//! - One outcome per run: if several packets describe the same `run_id`, the one worth
//!   least (lowest net XP, then lowest digest) counts and the others are `superseded`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::evolution::{Capability, EVOLUTION_SCHEMA, EvolutionFile, Level, MissionOutcome};
pub use crate::model::gate::Capabilities;
use crate::model::packet::PromotionPacket;
use crate::model::plan::{PlanKind, Rank};
use crate::model::results::RunStatus;
use crate::{Error, Result};

/// XP lost per violation.
pub const VIOLATION_PENALTY_XP: u64 = 10;

/// The mismatch kind that is a violation.
pub const VIOLATION_KIND: &str = "expected-deny-observed-allow";

/// XP a promotable, passing mission of `rank` earns.
pub fn xp_for(rank: Rank) -> u64 {
    match rank {
        Rank::E => 1,
        Rank::D => 2,
        Rank::C => 3,
        Rank::B => 5,
        Rank::A => 8,
        Rank::S => 13,
    }
}

/// Every level with its XP threshold, lowest first.
pub const LEVELS: [(Level, u64); 5] = [
    (Level::Dormant, 0),
    (Level::Awakening, 1),
    (Level::Forging, 10),
    (Level::Sovereign, 50),
    (Level::Apex, 200),
];

/// The level `xp` reaches.
pub fn level_for(xp: u64) -> Level {
    LEVELS
        .iter()
        .rev()
        .find(|(_, t)| xp >= *t)
        .map_or(Level::Dormant, |(l, _)| *l)
}

/// The XP threshold of `level`.
pub fn threshold(level: Level) -> u64 {
    LEVELS
        .iter()
        .find(|(l, _)| *l == level)
        .map_or(0, |(_, t)| *t)
}

/// The next level and its threshold, if any.
pub fn next_level(level: Level) -> Option<(Level, u64)> {
    LEVELS.iter().copied().find(|(l, _)| *l > level)
}

/// The capabilities a level unlocks (none for DORMANT and APEX).
pub fn unlocks(level: Level) -> &'static [Capability] {
    match level {
        Level::Awakening => &[Capability::ParallelMissions, Capability::RunScripts],
        Level::Forging => &[Capability::AutoRunCb],
        Level::Sovereign => &[Capability::Network],
        Level::Dormant | Level::Apex => &[],
    }
}

/// The level that unlocks `c`, with its XP threshold.
pub fn unlocked_at(c: Capability) -> (Level, u64) {
    LEVELS
        .iter()
        .copied()
        .find(|(l, _)| unlocks(*l).contains(&c))
        .unwrap_or((Level::Apex, threshold(Level::Apex)))
}

/// Every capability held at `level` (cumulative), sorted.
pub fn capabilities_at(level: Level) -> Vec<Capability> {
    let mut out: Vec<Capability> = LEVELS
        .iter()
        .filter(|(l, _)| *l <= level)
        .flat_map(|(l, _)| unlocks(*l).iter().copied())
        .collect();
    out.sort();
    out
}

/// The identity of a mission's outcome: blake3 of the canonical JSON of its plan id, plan
/// digest and inputs digest. Two runs of the same plan with the same inputs have the same
/// key, whatever their run ids, times or packets.
pub fn outcome_key(o: &MissionOutcome) -> String {
    let v = serde_json::json!({
        "plan_id": o.plan_id,
        "plan_digest": o.plan_digest.blake3,
        "inputs_digest": o.inputs_digest.as_ref().map(|d| d.blake3.clone()),
    });
    crate::util::json::canonical(&v).map_or_else(
        |_| format!("{}:{}", o.plan_id, o.plan_digest.blake3),
        |b| crate::util::digest::blake3_hex(&b),
    )
}

/// Why a capability is held: the level that unlocked it and the outcomes whose XP reached
/// that level.
#[derive(Debug, Clone, Serialize)]
pub struct HeldBecause {
    /// The capability.
    pub capability: Capability,
    /// The level that unlocks it.
    pub level: Level,
    /// That level's XP threshold.
    pub threshold: u64,
    /// The outcomes that earned XP (packet digest, run, plan, XP), sorted by packet digest.
    pub earned_by: Vec<Earning>,
    /// XP lost to violations.
    pub penalty_xp: u64,
}

/// One outcome that earned XP.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Earning {
    /// The packet.
    pub packet_digest: String,
    /// Its run.
    pub run_id: String,
    /// Its plan.
    pub plan_id: String,
    /// XP it earned.
    pub xp: u64,
}

/// The outcomes that earned XP in `state` (the counted, passing, first of their outcome
/// key), sorted by packet digest.
pub fn earnings(state: &EvolutionFile) -> Vec<Earning> {
    let excluded: BTreeSet<&str> = state
        .superseded
        .iter()
        .chain(&state.repeats)
        .map(String::as_str)
        .collect();
    let mut out: Vec<Earning> = state
        .consumed
        .iter()
        .filter(|o| o.promotable && o.passed && !excluded.contains(o.packet_digest.as_str()))
        .map(|o| Earning {
            packet_digest: o.packet_digest.clone(),
            run_id: o.run_id.clone(),
            plan_id: o.plan_id.clone(),
            xp: xp_for(o.rank),
        })
        .collect();
    out.sort();
    out
}

/// For every capability `state` holds: why.
pub fn held_because(state: &EvolutionFile) -> Vec<HeldBecause> {
    let earned = earnings(state);
    state
        .capabilities
        .iter()
        .map(|c| {
            let (level, threshold) = unlocked_at(*c);
            HeldBecause {
                capability: *c,
                level,
                threshold,
                earned_by: earned.clone(),
                penalty_xp: state.penalty_xp,
            }
        })
        .collect()
}

impl Capabilities {
    /// No capability (DORMANT).
    pub fn none() -> Self {
        Self::default()
    }

    /// The capabilities of an evolution state.
    pub fn of(state: &EvolutionFile) -> Self {
        Self {
            level: Some(state.level),
            held: state.capabilities.iter().copied().collect(),
        }
    }

    /// Whether `c` is held.
    pub fn has(&self, c: Capability) -> bool {
        self.held.contains(&c)
    }
}

fn net(o: &MissionOutcome) -> i128 {
    let earned = if o.promotable && o.passed {
        i128::from(xp_for(o.rank))
    } else {
        0
    };
    earned - i128::from(o.violations) * i128::from(VIOLATION_PENALTY_XP)
}

/// The state derived from a set of outcomes (duplicates and order do not matter).
pub fn fold(outcomes: &[MissionOutcome]) -> EvolutionFile {
    let mut unique: BTreeMap<&str, &MissionOutcome> = BTreeMap::new();
    for o in outcomes {
        // Same digest = same packet: keep one (the smallest, should two differ).
        unique
            .entry(o.packet_digest.as_str())
            .and_modify(|cur| {
                if o < *cur {
                    *cur = o;
                }
            })
            .or_insert(o);
    }
    let mut by_run: BTreeMap<&str, Vec<&MissionOutcome>> = BTreeMap::new();
    for o in unique.values() {
        by_run.entry(o.run_id.as_str()).or_default().push(o);
    }
    let mut superseded = Vec::new();
    let mut repeats = Vec::new();
    // Outcome key → the packet digest that earns for it (the lowest, whatever the order).
    let mut first_of: BTreeMap<String, &str> = BTreeMap::new();
    let (mut earned, mut penalty, mut passed, mut violations) = (0u64, 0u64, 0u64, 0u64);
    let mut counted_list: Vec<&MissionOutcome> = Vec::new();
    for list in by_run.values() {
        let counted = list
            .iter()
            .min_by(|a, b| {
                net(a)
                    .cmp(&net(b))
                    .then_with(|| a.packet_digest.cmp(&b.packet_digest))
            })
            .copied();
        let Some(c) = counted else { continue };
        for o in list {
            if o.packet_digest != c.packet_digest {
                superseded.push(o.packet_digest.clone());
            }
        }
        counted_list.push(c);
        violations += c.violations;
        penalty += c.violations.saturating_mul(VIOLATION_PENALTY_XP);
    }
    for c in &counted_list {
        if c.promotable && c.passed {
            first_of
                .entry(outcome_key(c))
                .and_modify(|d| {
                    if c.packet_digest.as_str() < *d {
                        *d = c.packet_digest.as_str();
                    }
                })
                .or_insert(c.packet_digest.as_str());
        }
    }
    let earners: BTreeSet<&str> = first_of.values().copied().collect();
    for c in &counted_list {
        if !(c.promotable && c.passed) {
            continue;
        }
        if earners.contains(c.packet_digest.as_str()) {
            earned += xp_for(c.rank);
            passed += 1;
        } else {
            repeats.push(c.packet_digest.clone());
        }
    }
    superseded.sort();
    repeats.sort();
    let xp = earned.saturating_sub(penalty);
    let level = level_for(xp);
    EvolutionFile {
        schema: EVOLUTION_SCHEMA.to_string(),
        consumed: unique.into_values().cloned().collect(),
        superseded,
        repeats,
        earned_xp: earned,
        penalty_xp: penalty,
        xp,
        level,
        capabilities: capabilities_at(level),
        missions_passed: passed,
        violations,
    }
}

/// Check that a stored state is exactly what its consumed outcomes give (an edited
/// `evolution.json` is refused, never trusted).
pub fn check_consistent(state: &EvolutionFile, path: &std::path::Path) -> Result<()> {
    let derived = fold(&state.consumed);
    if &derived == state {
        Ok(())
    } else {
        Err(Error::input(
            path,
            format!(
                "the derived state (xp {}, level {}) does not match its consumed outcomes (xp {}, level {})",
                state.xp,
                state.level.as_str(),
                derived.xp,
                derived.level.as_str()
            ),
        )
        .with_hint("the file was edited; restore it, or rebuild it with `nexusmon evolve --packets …` in a fresh state directory"))
    }
}

/// What one `evolve` changed.
#[derive(Debug, Clone, Serialize)]
pub struct EvolveReport {
    /// Outcomes consumed for the first time (packet digests).
    pub added: Vec<String>,
    /// Outcomes already consumed (no change).
    pub already_consumed: Vec<String>,
    /// XP before.
    pub xp_before: u64,
    /// XP after.
    pub xp_after: u64,
    /// Level before.
    pub level_before: Level,
    /// Level after.
    pub level_after: Level,
    /// Capabilities gained.
    pub gained: Vec<Capability>,
    /// Capabilities revoked.
    pub revoked: Vec<Capability>,
}

/// Consume `new` outcomes into `state`: the result is `fold(state.consumed ∪ new)`.
pub fn consume(state: &EvolutionFile, new: &[MissionOutcome]) -> (EvolutionFile, EvolveReport) {
    let known: BTreeSet<&str> = state
        .consumed
        .iter()
        .map(|o| o.packet_digest.as_str())
        .collect();
    let mut added = BTreeSet::new();
    let mut already = BTreeSet::new();
    for o in new {
        if known.contains(o.packet_digest.as_str()) {
            already.insert(o.packet_digest.clone());
        } else {
            added.insert(o.packet_digest.clone());
        }
    }
    let mut all = state.consumed.clone();
    all.extend(new.iter().cloned());
    let next = fold(&all);
    let before: BTreeSet<Capability> = state.capabilities.iter().copied().collect();
    let after: BTreeSet<Capability> = next.capabilities.iter().copied().collect();
    let report = EvolveReport {
        added: added.into_iter().collect(),
        already_consumed: already.into_iter().collect(),
        xp_before: state.xp,
        xp_after: next.xp,
        level_before: state.level,
        level_after: next.level,
        gained: after.difference(&before).copied().collect(),
        revoked: before.difference(&after).copied().collect(),
    };
    (next, report)
}

/// Why a packet gives no mission outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAnOutcome {
    /// The packet is about an experiment, not a mission: evolution ignores it.
    NotAMission(String),
    /// The packet lacks a field evolution needs (its bundle recorded no plan id, plan
    /// digest or rank).
    Malformed(String),
}

/// The mission outcome of a packet that was checked against its bundle
/// ([`crate::promote::check_packet`]): the only way `evolve` reads packets, so a
/// hand-written or edited packet, or one whose bundle changed, never earns (or hides) XP.
/// Its identity is the digest `promote` records for the same packet.
pub fn outcome_of_verified(
    v: &crate::promote::VerifiedPacket,
) -> std::result::Result<MissionOutcome, NotAnOutcome> {
    outcome_of(&v.packet, &v.digest)
}

/// Read a mission outcome from a promotion packet (`model::packet::PromotionPacket`);
/// `packet_digest` is its identity (`promote::packet_digest`: blake3 of its canonical JSON,
/// RFC 8785). This is pure: it trusts `packet`, so callers check the packet against its
/// bundle first ([`outcome_of_verified`]).
///
/// - A mission is a packet whose governance record (`governance.kind`) or plan
///   (`plan.kind`) says `mission`; either is enough (the stricter reading). Anything else is
///   [`NotAnOutcome::NotAMission`].
/// - The rank is the one the gate recorded (`governance.rank`), else the plan's
///   (`plan.rank`). A mission packet without a governance record still yields an outcome (it
///   is not promotable, `approval-missing`, so it earns nothing, but its violations count).
/// - `passed` = promotable, `summary.status` `ok`, no mismatch of any kind
///   (`summary.mismatch_counts`), and no failed or skipped task (`summary.tasks`). A packet
///   without a status (its bundle had no readable `summary.json`) has not passed.
/// - `violations` = the `expected-deny-observed-allow` count.
pub fn outcome_of(
    packet: &PromotionPacket,
    packet_digest: &str,
) -> std::result::Result<MissionOutcome, NotAnOutcome> {
    let gov = packet.governance.as_ref();
    let kinds = [gov.and_then(|g| g.kind), packet.plan.kind];
    if !kinds.contains(&Some(PlanKind::Mission)) {
        return Err(NotAnOutcome::NotAMission(match kinds {
            [Some(_), _] | [None, Some(_)] => "the plan is an experiment, not a mission".into(),
            [None, None] => "neither governance.kind nor plan.kind says mission".into(),
        }));
    }
    let rank = gov
        .and_then(|g| g.rank)
        .or(packet.plan.rank)
        .ok_or_else(|| {
            NotAnOutcome::Malformed("a mission packet without governance.rank or plan.rank".into())
        })?;
    let plan_id = packet
        .plan
        .plan_id
        .clone()
        .ok_or_else(|| NotAnOutcome::Malformed("the packet names no plan.plan_id".into()))?;
    let plan_digest = packet
        .plan
        .plan_digest
        .clone()
        .ok_or_else(|| NotAnOutcome::Malformed("the packet has no plan.plan_digest".into()))?;
    let inputs_digest = packet.plan.inputs_digest.clone();
    let promotable = packet.promotability.promotable;
    let s = &packet.summary;
    let mismatches = s
        .mismatch_counts
        .values()
        .fold(0u64, |a, n| a.saturating_add(*n));
    let violations = s.mismatch_counts.get(VIOLATION_KIND).copied().unwrap_or(0);
    let tasks = s.tasks.unwrap_or_default();
    let passed = promotable
        && s.status == Some(RunStatus::Ok)
        && mismatches == 0
        && tasks.failed == 0
        && tasks.skipped == 0;
    Ok(MissionOutcome {
        packet_digest: packet_digest.to_string(),
        run_id: packet.run_id.clone(),
        plan_id,
        plan_digest,
        inputs_digest,
        rank,
        promotable,
        passed,
        violations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::packet::TaskCounts;
    use crate::util::digest::{Digest, blake3_hex};
    use crate::util::json;

    pub(crate) fn outcome(
        run: &str,
        rank: Rank,
        promotable: bool,
        passed: bool,
        violations: u64,
    ) -> MissionOutcome {
        MissionOutcome {
            packet_digest: blake3_hex(
                format!("{run}{rank:?}{promotable}{passed}{violations}").as_bytes(),
            ),
            run_id: run.into(),
            plan_id: "m".into(),
            plan_digest: Digest::blake3_of(run.as_bytes()),
            inputs_digest: None,
            rank,
            promotable,
            passed,
            violations,
        }
    }

    #[test]
    fn levels_and_thresholds() {
        assert_eq!(level_for(0), Level::Dormant);
        assert_eq!(level_for(1), Level::Awakening);
        assert_eq!(level_for(9), Level::Awakening);
        assert_eq!(level_for(10), Level::Forging);
        assert_eq!(level_for(49), Level::Forging);
        assert_eq!(level_for(50), Level::Sovereign);
        assert_eq!(level_for(199), Level::Sovereign);
        assert_eq!(level_for(200), Level::Apex);
        assert_eq!(capabilities_at(Level::Dormant), vec![]);
        assert_eq!(
            capabilities_at(Level::Forging),
            vec![
                Capability::ParallelMissions,
                Capability::AutoRunCb,
                Capability::RunScripts
            ]
        );
        assert_eq!(capabilities_at(Level::Apex).len(), 4);
        assert_eq!(
            capabilities_at(Level::Apex),
            capabilities_at(Level::Sovereign)
        );
        assert_eq!(unlocked_at(Capability::RunScripts), (Level::Awakening, 1));
        assert_eq!(unlocked_at(Capability::Network), (Level::Sovereign, 50));
        assert_eq!(next_level(Level::Forging), Some((Level::Sovereign, 50)));
        assert_eq!(next_level(Level::Apex), None);
        assert_eq!(threshold(Level::Apex), 200);
    }

    #[test]
    fn one_mission_of_any_rank_awakens() {
        for r in [Rank::E, Rank::D, Rank::C, Rank::B, Rank::A, Rank::S] {
            assert!(fold(&[outcome("r", r, true, true, 0)]).level >= Level::Awakening);
        }
        // Not promotable or not passing: nothing earned.
        assert_eq!(fold(&[outcome("r", Rank::S, false, true, 0)]).xp, 0);
        assert_eq!(fold(&[outcome("r", Rank::S, true, false, 0)]).xp, 0);
    }

    #[test]
    fn fold_is_order_independent_and_idempotent() {
        let set = vec![
            outcome("r1", Rank::A, true, true, 0),
            outcome("r2", Rank::B, true, true, 0),
            outcome("r3", Rank::E, true, false, 1),
            outcome("r4", Rank::S, true, true, 0),
            outcome("r5", Rank::C, false, true, 0),
        ];
        let base = json::to_sorted_pretty(&fold(&set)).unwrap();
        let mut rev = set.clone();
        rev.reverse();
        assert_eq!(json::to_sorted_pretty(&fold(&rev)).unwrap(), base);
        let mut twice = set.clone();
        twice.extend(set.iter().cloned());
        assert_eq!(json::to_sorted_pretty(&fold(&twice)).unwrap(), base);
        // Clamping is applied to totals, so a penalty consumed first changes nothing.
        let s = fold(&set);
        assert_eq!(s.earned_xp, 8 + 5 + 13);
        assert_eq!(s.penalty_xp, 10);
        assert_eq!(s.xp, 16);
    }

    #[test]
    fn consuming_is_incremental_fold() {
        let a = outcome("r1", Rank::A, true, true, 0);
        let b = outcome("r2", Rank::A, true, true, 0);
        let (s1, r1) = consume(&fold(&[]), std::slice::from_ref(&a));
        assert_eq!(r1.added.len(), 1);
        assert_eq!(
            r1.gained,
            vec![Capability::ParallelMissions, Capability::RunScripts]
        );
        let (s2, r2) = consume(&s1, &[a.clone(), b.clone()]);
        assert_eq!(r2.already_consumed, vec![a.packet_digest.clone()]);
        assert_eq!(r2.gained, vec![Capability::AutoRunCb]);
        assert_eq!(s2, fold(&[b, a]));
        let (s3, r3) = consume(&s2, &[outcome("r3", Rank::E, true, false, 1)]);
        assert_eq!(s3.xp, 6);
        assert_eq!(r3.revoked, vec![Capability::AutoRunCb]);
        assert_eq!(s3.level, Level::Awakening);
    }

    /// The same mission (plan digest and inputs) passing in many runs earns once, whatever
    /// the order the packets are consumed in; a different plan digest or different inputs
    /// are a new outcome; violations still cost in every run.
    #[test]
    fn reruns_of_the_same_outcome_earn_once_in_any_order() {
        let same = |run: &str| {
            let mut o = outcome(run, Rank::A, true, true, 0);
            o.plan_digest = Digest::blake3_of(b"one plan");
            o.inputs_digest = Some(Digest::blake3_of(b"inputs"));
            o
        };
        let mut set: Vec<MissionOutcome> = (0..20).map(|i| same(&format!("r{i:02}"))).collect();
        let s = fold(&set);
        assert_eq!(s.earned_xp, 8);
        assert_eq!(s.missions_passed, 1);
        assert_eq!(s.repeats.len(), 19);
        let mut min = set
            .iter()
            .map(|o| o.packet_digest.clone())
            .collect::<Vec<_>>();
        min.sort();
        assert!(!s.repeats.contains(&min[0]), "the lowest digest earns");
        set.reverse();
        assert_eq!(fold(&set), s);
        // Other inputs, or another plan digest: a new outcome.
        let mut other = same("r-other");
        other.inputs_digest = Some(Digest::blake3_of(b"other inputs"));
        set.push(other);
        let mut edited = same("r-edited");
        edited.plan_digest = Digest::blake3_of(b"edited plan");
        set.push(edited);
        assert_eq!(fold(&set).earned_xp, 24);
        // A repeated violation costs every time.
        let bad = |run: &str| {
            let mut o = same(run);
            o.passed = false;
            o.violations = 1;
            o
        };
        assert_eq!(fold(&[bad("b1"), bad("b2")]).penalty_xp, 20);
        let why = held_because(&fold(&[same("r1")]));
        assert_eq!(why.len(), 2);
        assert_eq!(why[0].earned_by.len(), 1);
        assert_eq!(why[0].level, Level::Awakening);
    }

    #[test]
    fn one_outcome_per_run_the_least_favourable_counts() {
        let good = outcome("r1", Rank::S, true, true, 0);
        let bad = outcome("r1", Rank::S, true, false, 2);
        let s = fold(&[good.clone(), bad.clone()]);
        assert_eq!(s.xp, 0);
        assert_eq!(s.violations, 2);
        assert_eq!(s.superseded, vec![good.packet_digest]);
        assert_eq!(s.consumed.len(), 2);
    }

    #[test]
    fn an_edited_state_is_refused() {
        let mut s = fold(&[outcome("r1", Rank::A, true, true, 0)]);
        check_consistent(&s, std::path::Path::new("e.json")).unwrap();
        s.xp = 500;
        let e = check_consistent(&s, std::path::Path::new("e.json")).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Usage, "{e}");
        assert_eq!(e.path(), Some(std::path::Path::new("e.json")), "{e}");
    }

    /// A mission packet as `emit-promotion` writes it (pointers and gating inputs trimmed to
    /// what the type requires), rank `rank`, status `status`, `eda` violations.
    fn packet(rank: &str, status: &str, eda: u64, promotable: bool) -> PromotionPacket {
        let gate = serde_json::json!({"path": "out/run-1/governance/gate.json",
            "member": "governance/gate.json", "size": 2, "blake3": "00", "sha256": "00"});
        serde_json::from_value(serde_json::json!({
            "packet_version": 1,
            "run_id": "run-1",
            "plan": {"plan_id": "m1", "kind": "mission", "rank": rank,
                     "plan_digest": {"blake3": "ab", "sha256": "cd"}},
            "bundle": {"pointer": "out/run-1", "pointer_base": "project-root",
                       "run_id": "run-1", "verified": true},
            "artifacts": [],
            "summary": {"status": status,
                        "mismatch_counts": {"expected-deny-observed-allow": eda},
                        "tasks": {"total": 2, "failed": 0, "skipped": 0}},
            "governance": {"gate_record": gate, "kind": "mission", "rank": rank},
            "audit_head": null,
            "emitted_by": {"name": "nexusmon", "version": "0"},
            "promotability": {"promotable": promotable, "reasons": [], "gating_inputs": {
                "index": {"state": "present", "verified": true, "staging": false},
                "manifest": "present", "run_status_file": "present",
                "preflight": {"state": "present", "profiles": 1}}}
        }))
        .unwrap()
    }

    fn of(p: &PromotionPacket) -> std::result::Result<MissionOutcome, NotAnOutcome> {
        outcome_of(p, "d1")
    }

    #[test]
    fn outcome_from_a_packet() {
        let o = of(&packet("A", "ok", 0, true)).unwrap();
        assert_eq!(o.rank, Rank::A);
        assert!(o.passed && o.promotable);
        assert_eq!(o.violations, 0);
        assert_eq!(o.plan_id, "m1");
        assert_eq!(o.run_id, "run-1");
        assert_eq!(o.packet_digest, "d1");
        let o = of(&packet("S", "partial", 2, false)).unwrap();
        assert!(!o.passed);
        assert_eq!(o.violations, 2);
    }

    #[test]
    fn experiments_and_malformed_packets_are_told_apart() {
        let mut p = packet("A", "ok", 0, true);
        p.plan.kind = Some(PlanKind::Experiment);
        if let Some(g) = p.governance.as_mut() {
            g.kind = Some(PlanKind::Experiment);
        }
        assert!(matches!(of(&p), Err(NotAnOutcome::NotAMission(m)) if m.contains("experiment")));
        let mut p = packet("A", "ok", 0, true);
        p.plan.rank = None;
        if let Some(g) = p.governance.as_mut() {
            g.rank = None;
        }
        assert!(matches!(of(&p), Err(NotAnOutcome::Malformed(m)) if m.contains("rank")));
        let mut p = packet("A", "ok", 0, true);
        p.plan.plan_digest = None;
        assert!(matches!(of(&p), Err(NotAnOutcome::Malformed(m)) if m.contains("plan_digest")));
        for (failed, skipped) in [(1, 0), (0, 1)] {
            let mut p = packet("A", "ok", 0, true);
            p.summary.tasks = Some(TaskCounts {
                total: 2,
                failed,
                skipped,
            });
            assert!(!of(&p).unwrap().passed);
        }
    }

    #[test]
    fn a_mission_packet_without_a_governance_record_still_counts_its_violations() {
        // What emit-promotion writes for a mission bundle whose gate record is gone: the
        // slot is null, the plan says mission and its rank; not promotable.
        let mut p = packet("B", "partial", 1, false);
        let slot = p.governance.take();
        let outcome = of(&p).unwrap();
        assert_eq!(outcome.rank, Rank::B);
        assert!(!outcome.promotable && !outcome.passed);
        assert_eq!(outcome.violations, 1);
        // The gate's recorded rank wins over the plan's.
        let mut recorded = p.clone();
        recorded.governance = slot.map(|mut g| {
            g.rank = Some(Rank::S);
            g
        });
        assert_eq!(of(&recorded).unwrap().rank, Rank::S);
        // Either kind saying mission is enough; an experiment plan without a record is not.
        let mut experiment = p.clone();
        experiment.plan.kind = Some(PlanKind::Experiment);
        assert!(matches!(of(&experiment), Err(NotAnOutcome::NotAMission(_))));
        let mut gated = recorded.clone();
        gated.plan.kind = Some(PlanKind::Experiment);
        assert!(of(&gated).is_ok(), "the gate record says mission");
    }

    #[test]
    fn passing_needs_promotable_ok_and_no_mismatch() {
        assert!(!of(&packet("A", "ok", 0, false)).unwrap().passed);
        let mut p = packet("A", "ok", 0, true);
        p.summary
            .mismatch_counts
            .insert("oracle-divergence".into(), 1);
        assert!(!of(&p).unwrap().passed);
        let mut p = packet("A", "ok", 0, true);
        p.summary.status = None;
        assert!(!of(&p).unwrap().passed);
        assert!(!of(&packet("A", "partial", 0, true)).unwrap().passed);
    }
}
