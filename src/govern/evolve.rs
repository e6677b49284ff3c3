//! `nexusmon evolve --packets P…` and `evolution status`: consume verified mission packets
//! into `evolution.json` under the state lock (recorded in the audit log), and read the
//! state back. The pure part (folding outcomes into XP, levels and capabilities) is
//! [`super::evolution`].

use std::path::{Path, PathBuf};

use serde_json::json;

use super::audit::AuditKind;
use super::evolution::{self, EvolveReport, NotAnOutcome};
use super::{Governance, state};
use crate::model::evolution::{EvolutionFile, Level, MissionOutcome};
use crate::model::index::AuditHead;
use crate::promote::{self, verify::Refusal};
use crate::util::digest::blake3_hex;
use crate::util::json;
use crate::{Error, Result};

/// What `evolve` did.
#[derive(Debug, Clone)]
pub enum Evolved {
    /// Some packets were refused: nothing was written.
    Refused(Vec<Refusal>),
    /// The outcomes were consumed.
    Consumed(Box<Consumed>),
}

/// Outcomes consumed.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// What changed.
    pub report: EvolveReport,
    /// Packets that are not of a mission run (as given), and why.
    pub skipped: Vec<(PathBuf, String)>,
    /// The state now.
    pub state: EvolutionFile,
    /// The audit head after the `evolution` entry, when the state changed.
    pub audit_head: Option<AuditHead>,
}

/// Check every packet against its bundle ([`crate::promote::check_packet`], with the
/// signature checked against the trust file and the index against the audit log;
/// `packets` as given, resolved against `cwd`); if none is refused, consume their mission outcomes into
/// the evolution state and record the change.
pub fn evolve(
    state_dir: Option<&Path>,
    root: &Path,
    cwd: &Path,
    packets: &[PathBuf],
) -> Result<Evolved> {
    let gov = Governance::discover(state_dir, root)?;
    let attestor = super::attest::GovAttestor::with(None, Some(&gov))?;
    let mut outcomes: Vec<MissionOutcome> = Vec::new();
    let mut skipped: Vec<(PathBuf, String)> = Vec::new();
    let mut refused = Vec::new();
    let given: Vec<PathBuf> = packets
        .iter()
        .map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                cwd.join(p)
            }
        })
        .collect();
    let (packets, statements) = promote::verify::packet_paths(&given)?;
    for s in statements {
        skipped.push((
            s,
            "an in-toto Statement beside a packet, not a packet".into(),
        ));
    }
    for p in &packets {
        let path = p.clone();
        let verified = match promote::check_packet(&path, root, &attestor)? {
            Ok(v) => v,
            Err(r) => {
                refused.push(r);
                continue;
            }
        };
        match evolution::outcome_of_verified(&verified) {
            Ok(o) => outcomes.push(o),
            Err(NotAnOutcome::NotAMission(why)) => skipped.push((p.clone(), why)),
            Err(NotAnOutcome::Malformed(why)) => {
                return Err(Error::input(&path, format!("cannot read a mission outcome: {why}"))
                    .with_hint("pass promotion packets written by `nexusmon emit-promotion` for mission runs"));
            }
        }
    }
    if !refused.is_empty() {
        return Ok(Evolved::Refused(refused));
    }
    let state_dir = gov.state().clone();
    let _lock = state_dir.lock()?;
    let current = read_state(&gov)?;
    let (next, report) = evolution::consume(&current, &outcomes);
    let mut head = None;
    if next != current {
        state_dir.write_evolution(&next)?;
        head = Some(gov.audit().append(
            AuditKind::Evolution,
            json!({
                "added": report.added,
                "xp_before": report.xp_before,
                "xp_after": report.xp_after,
                "level_before": report.level_before,
                "level_after": report.level_after,
                "gained": report.gained,
                "revoked": report.revoked,
                "state_blake3": blake3_hex(&json::to_sorted_pretty(&next)?),
            }),
        )?);
        head = record_capability_changes(&gov, &report, &next)?.or(head);
    }
    Ok(Evolved::Consumed(Box::new(Consumed {
        report,
        skipped,
        state: next,
        audit_head: head,
    })))
}

/// One `capability-unlocked` entry per capability gained (with the level and the packets
/// whose XP reached it) and one `capability-revoked` entry per capability lost. Returns
/// the last head written.
fn record_capability_changes(
    gov: &Governance,
    report: &EvolveReport,
    next: &EvolutionFile,
) -> Result<Option<AuditHead>> {
    let earned: Vec<String> = evolution::earnings(next)
        .into_iter()
        .map(|e| e.packet_digest)
        .collect();
    let mut head = None;
    for c in &report.gained {
        let (level, threshold) = evolution::unlocked_at(*c);
        head = Some(gov.audit().append(
            AuditKind::CapabilityUnlocked,
            json!({
                "capability": c,
                "unlocked_at": level,
                "threshold_xp": threshold,
                "xp": next.xp,
                "level": next.level,
                "earned_by": earned,
            }),
        )?);
    }
    for c in &report.revoked {
        let (level, threshold) = evolution::unlocked_at(*c);
        head = Some(gov.audit().append(
            AuditKind::CapabilityRevoked,
            json!({
                "capability": c,
                "unlocked_at": level,
                "threshold_xp": threshold,
                "xp": next.xp,
                "level": next.level,
                "penalty_xp": next.penalty_xp,
            }),
        )?);
    }
    Ok(head)
}

/// `evolution status`: the state (checked for consistency; the empty state when there is
/// no `evolution.json`) and the next level with its XP threshold.
pub fn status(
    state_dir: Option<&Path>,
    root: &Path,
) -> Result<(EvolutionFile, Option<(Level, u64)>)> {
    let gov = Governance::discover(state_dir, root)?;
    let state = read_state(&gov)?;
    let next = evolution::next_level(state.level);
    Ok((state, next))
}

/// `evolution.json`, checked; the empty state if there is none.
fn read_state(gov: &Governance) -> Result<EvolutionFile> {
    let evo_path = gov.state().file(state::EVOLUTION_FILE);
    match gov.state().read_evolution()? {
        Some(e) => {
            evolution::check_consistent(&e, &evo_path)?;
            Ok(e)
        }
        None => Ok(evolution::fold(&[])),
    }
}
