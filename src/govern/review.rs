//! The review surfaces that need the state directory: a run's view completed with its
//! audit-anchor and signature state ([`run_view`], for `report`), the review queue
//! (`review`: [`queue`]) and one item in full (`review show ID`: [`show`]), and the plan
//! inputs an approval was given for ([`record_inputs`], written by `approve`), from which
//! `review show` tells what changed in a plan since an approval that the change voided.
//!
//! Queue items and their ids:
//! - `mission:<plan_id>`: a mission the gate refuses for want of valid approvals, with the
//!   exact `approve` command and every record that does not count, and why;
//! - `packet:<run_id>`: a promotion packet flagged for review (`review-required`, ranks
//!   C/B) or not promotable, with the reasons.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Governance;
use super::missions::{self, MissionState};
use super::sign::RejectReason;
use super::state::StateDir;
use crate::load::LoadedPlan;
use crate::model::approval::{ApprovalRecord, SIGNATURE_NAMESPACE};
use crate::model::view::RunView;
use crate::promote::{promotability, view};
use crate::util::jsondiff::{self, FieldChange};
use crate::util::{digest, fsx, json};
use crate::{Error, Result};

/// The directory of the state dir holding approved plan inputs, by plan digest.
pub const INPUTS_DIR: &str = "plan-inputs";

/// The inputs of a plan's digest as a JSON value: the plan (without `$schema`), every
/// probe and profile it resolves (secret-looking environment values redacted) and the
/// registry id.
pub fn plan_inputs(plan: &LoadedPlan) -> serde_json::Value {
    let mut p = serde_json::to_value(&plan.plan).unwrap_or(serde_json::Value::Null);
    if let Some(o) = p.as_object_mut() {
        o.remove("$schema");
    }
    serde_json::json!({
        "plan": p,
        "probes": plan.probes.iter().map(|(k, v)| (k.to_string(), serde_json::to_value(v).unwrap_or_default())).collect::<BTreeMap<_, _>>(),
        "profiles": plan.profiles.iter().map(|(k, v)| (k.to_string(), crate::exec::profile_definition(k.as_str(), v))).collect::<BTreeMap<_, _>>(),
        "registry_id": plan.plan.registry_id.to_string(),
    })
}

fn inputs_path(state: &StateDir, plan_blake3: &str) -> PathBuf {
    state
        .dir()
        .join(INPUTS_DIR)
        .join(format!("{plan_blake3}.json"))
}

/// Keep the inputs of `plan`'s digest in the state directory (`plan-inputs/<blake3>.json`,
/// written once; the same digest always has the same inputs). Returns the file's blake3.
pub fn record_inputs(state: &StateDir, plan: &LoadedPlan) -> Result<String> {
    let path = inputs_path(state, &plan.digest.blake3);
    let bytes = json::to_sorted_pretty(&plan_inputs(plan))?;
    if !path.exists() {
        fsx::create_dir_all(fsx::parent_of(&path))?;
        fsx::write_atomic(&path, &bytes)?;
    }
    Ok(digest::blake3_hex(&bytes))
}

/// `report`: the run at `path` with its signature checked against the trust file and its
/// index against the audit log of the state directory when there is one (`explicit`, else
/// found at or above `root`; [`super::attest::GovAttestor`]).
pub fn run_view(path: &Path, root: &Path, explicit: Option<&Path>) -> Result<RunView> {
    let attestor = super::attest::GovAttestor::open(None, explicit, root)?;
    view::load(path, root, &attestor)
}

/// `report` of one run, written a row at a time: the run at `path` opened, and its view's
/// head (manifest, summary, preflight, verdict, the derived packet, the mismatch count)
/// attested as [`run_view`] attests it; the rows are then walked from the bundle
/// (`promote::view::BundleRows`) instead of being held.
pub fn run_head(
    path: &Path,
    root: &Path,
    explicit: Option<&Path>,
) -> Result<(crate::promote::source::BundleSource, RunView)> {
    let attestor = super::attest::GovAttestor::open(None, explicit, root)?;
    let dir = view::bundle_dir_of(path, root)?;
    let src = crate::promote::source::BundleSource::open(&dir)?;
    let head = view::head_with_packet(&src, root, &attestor)?;
    Ok((src, head))
}

/// `report --packet`: the per-profile signatures and conflicts `packets` would map to, each
/// verified as `promote` verifies it (signature against the trust file, index against the
/// audit log of the state directory `explicit`, else found at or above `root`).
pub fn packet_signatures(
    packets: &[PathBuf],
    root: &Path,
    explicit: Option<&Path>,
) -> Result<(
    Vec<crate::promote::VerifiedPacket>,
    Vec<crate::promote::verify::Refusal>,
    crate::model::mapping::RuntimeSignatures,
)> {
    let attestor = super::attest::GovAttestor::open(None, explicit, root)?;
    crate::promote::mapping::signatures_of(packets, root, &attestor)
}

/// One thing awaiting an operator.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewItem {
    /// `mission:<plan_id>` or `packet:<run_id>`.
    pub id: String,
    /// `awaiting-approval`, `flagged-for-review`, `not-promotable`.
    pub state: String,
    /// What it is, in a few words.
    pub title: String,
    /// The file it is about.
    pub path: PathBuf,
    /// Why it waits.
    pub why: Vec<String>,
    /// What to do (exact commands).
    pub next: Vec<String>,
}

fn shown(p: &Path, cwd: &Path) -> String {
    p.strip_prefix(cwd).unwrap_or(p).display().to_string()
}

/// The review queue: missions under `plans` awaiting approval, and packets under `packets`
/// flagged for review or not promotable.
pub fn queue(
    explicit: Option<&Path>,
    root: &Path,
    cwd: &Path,
    plans: &[PathBuf],
    packets: &[PathBuf],
    now: jiff::Timestamp,
) -> Result<Vec<ReviewItem>> {
    let gov = Governance::discover(explicit, root)?;
    let mut files = Vec::new();
    for p in plans.iter().filter(|p| p.exists()) {
        files.extend(missions::find_plan_files(p)?);
    }
    let rows = missions::list(&gov, &files, &BTreeMap::new(), now)?;
    let mut out = Vec::new();
    if let Err(why) = gov.trust_or_broken()? {
        let trust = gov.state().file(super::state::TRUST_FILE);
        out.push(ReviewItem {
            id: "trust-file".into(),
            state: "trust-file-broken".into(),
            title: "the trust file is broken: no approval or bundle signature can be verified"
                .into(),
            path: trust.clone(),
            why: vec![why],
            next: vec![
                format!("fix {} at the line named", shown(&trust, cwd)),
                "nexusmon audit verify   # checks the trust file too".into(),
            ],
        });
    }
    for r in rows
        .iter()
        .filter(|r| r.state == MissionState::TrustFileBroken)
    {
        let plan_id = r.plan_id.clone().unwrap_or_default();
        out.push(ReviewItem {
            id: format!("mission:{plan_id}"),
            state: "trust-file-broken".into(),
            title: format!(
                "mission `{plan_id}` needs {} approval(s), which cannot be verified while the trust file is broken",
                r.approvals_required
            ),
            path: r.path.clone(),
            why: r.error.iter().cloned().collect(),
            next: vec!["fix the trust file first (item trust-file)".into()],
        });
    }
    for r in rows
        .iter()
        .filter(|r| r.state == MissionState::AwaitingApproval)
    {
        let plan_id = r.plan_id.clone().unwrap_or_default();
        let plan_arg = shown(&r.path, cwd);
        let mut why = vec![format!(
            "rank {}, composite {} ({}): needs {} valid approval(s), has {}",
            super::explain::rank_word(r.rank),
            r.composite.map_or("-".to_string(), |c| c.to_string()),
            r.band.map_or("-", super::gate::Band::as_str),
            r.approvals_required,
            r.approvals_valid
        )];
        why.extend(
            r.approvals_rejected
                .iter()
                .map(|x| format!("not counted: {x}")),
        );
        out.push(ReviewItem {
            id: format!("mission:{plan_id}"),
            state: "awaiting-approval".into(),
            title: format!("mission `{plan_id}` awaits approval"),
            path: r.path.clone(),
            why,
            next: vec![
                format!("nexusmon approve --plan {plan_arg} --approver <approver> --sign-with <key>"),
                format!("(or: nexusmon approve --plan {plan_arg} --approver <approver>, then ssh-keygen -Y sign -f <key> -n {SIGNATURE_NAMESPACE} <record>)"),
                format!("nexusmon review show mission:{plan_id}   # what exactly awaits a decision"),
            ],
        });
    }
    for dir in packets.iter().filter(|p| p.exists()) {
        let Ok((files, _)) = crate::promote::verify::packet_paths(std::slice::from_ref(dir)) else {
            continue;
        };
        for f in files {
            let Ok((p, _)) = crate::promote::read_packet(&f) else {
                continue;
            };
            let flags = p
                .governance
                .as_ref()
                .map(|g| g.flags.clone())
                .unwrap_or_default();
            let reasons: Vec<String> = p
                .promotability
                .reasons
                .iter()
                .map(|r| {
                    format!(
                        "{}: {}",
                        r.as_str(),
                        promotability::explain(*r, &p.promotability.gating_inputs)
                    )
                })
                .collect();
            let (state, title) = if !p.promotability.promotable {
                (
                    "not-promotable",
                    format!("packet of run {} is not promotable", p.run_id),
                )
            } else if flags.iter().any(|f| f == "review-required") {
                (
                    "flagged-for-review",
                    format!(
                        "packet of run {} (rank {}) is flagged for review",
                        p.run_id,
                        super::explain::rank_word(p.plan.rank)
                    ),
                )
            } else {
                continue;
            };
            let mut why = reasons;
            if !flags.is_empty() {
                why.push(format!("review flags: {}", flags.join(", ")));
            }
            out.push(ReviewItem {
                id: format!("packet:{}", p.run_id),
                state: state.into(),
                title,
                path: f.clone(),
                why,
                next: vec![
                    format!(
                        "nexusmon report --packet {}   # the review page",
                        shown(&f, cwd)
                    ),
                    format!("nexusmon review show packet:{}", p.run_id),
                ],
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// One item in full.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewDetail {
    /// The item.
    pub item: ReviewItem,
    /// What the operator must decide on, line by line.
    pub facts: Vec<String>,
    /// For an approval voided by an edit: the record, and what changed in the plan's
    /// inputs since (field-level), or why that cannot be told.
    pub voided: Vec<VoidedApproval>,
}

/// An approval that no longer counts because the plan changed.
#[derive(Debug, Clone, Serialize)]
pub struct VoidedApproval {
    /// The record.
    pub record: PathBuf,
    /// Its approver.
    pub approver: String,
    /// The digest it approved (blake3).
    pub approved_digest: String,
    /// Every field that changed since, when the approved inputs were recorded.
    pub changes: Vec<FieldChange>,
    /// Why the changes cannot be listed, when they cannot.
    pub unknown: Option<String>,
}

/// `review show ID`.
pub fn show(
    id: &str,
    explicit: Option<&Path>,
    root: &Path,
    cwd: &Path,
    plans: &[PathBuf],
    packets: &[PathBuf],
    now: jiff::Timestamp,
) -> Result<ReviewDetail> {
    let items = queue(explicit, root, cwd, plans, packets, now)?;
    let Some(item) = items.iter().find(|i| i.id == id).cloned() else {
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        let mut e = Error::usage(format!("`{id}` is not in the review queue"));
        e = match crate::util::suggest::did_you_mean(id, ids.iter().copied()) {
            Some(s) => e.with_hint(format!("did you mean `{s}`?")),
            None if ids.is_empty() => e.with_hint("the queue is empty (`nexusmon review`)"),
            None => e.with_hint(format!("items: {}", ids.join(", "))),
        };
        return Err(e);
    };
    let gov = Governance::discover(explicit, root)?;
    let mut facts = Vec::new();
    let mut voided = Vec::new();
    if item.id.starts_with("mission:") {
        let plan = crate::load::load_plan(&item.path)?;
        let report = gov.gate_at(&plan, &[], true, now)?;
        facts.extend(super::explain::decision_lines(&report));
        if let Some(m) = &plan.plan.mission {
            facts.push(format!(
                "objective: {}; requested by {}; {} task(s)",
                m.objective,
                m.requested_by,
                m.tasks.len()
            ));
        }
        facts.push(format!("plan digest now: blake3 {}", plan.digest.blake3));
        let current = plan_inputs(&plan);
        for r in report
            .approvals
            .rejected
            .iter()
            .filter(|r| r.reason == RejectReason::PlanDigestMismatch)
        {
            let record: Option<ApprovalRecord> =
                crate::util::fsx::read_capped(&r.path, crate::util::limits::MAX_RECORD_BYTES)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
            let Some(record) = record else { continue };
            let path = inputs_path(gov.state(), &record.plan_digest.blake3);
            let (changes, unknown) = match crate::util::fsx::read_capped(
                &path,
                crate::util::limits::MAX_STATE_BYTES,
            )
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            {
                Some(before) => (jsondiff::diff(&before, &current), None),
                None => (
                    Vec::new(),
                    Some(format!(
                        "the inputs approved (blake3 {}) were not recorded in {} (approved without this state directory, or by an older build)",
                        record.plan_digest.blake3,
                        fsx::parent_of(&path).display()
                    )),
                ),
            };
            voided.push(VoidedApproval {
                record: r.path.clone(),
                approver: record.approver.clone(),
                approved_digest: record.plan_digest.blake3.clone(),
                changes,
                unknown,
            });
        }
    } else {
        // The run's head and its mismatch packets read as they stream past: nothing of
        // the run is held but what is listed.
        let (src, v) = run_head(&item.path, root, explicit)?;
        let (p, _) = crate::promote::read_packet(&item.path)?;
        facts.push(format!(
            "run {} of plan {} ({}), bundle {}",
            p.run_id,
            p.plan.plan_id.as_deref().unwrap_or("?"),
            v.banner().label(),
            v.bundle_dir.display()
        ));
        if let Some(g) = v.governance() {
            facts.push(format!(
                "gate {}; rank {}; composite {} ({}); approvals {}/{}; flags {}",
                g.outcome.as_deref().unwrap_or("?"),
                g.rank.as_deref().unwrap_or("-"),
                g.composite.map_or("-".to_string(), |c| c.to_string()),
                g.band.as_deref().unwrap_or("-"),
                g.valid_approvals.unwrap_or(0),
                g.required_approvals.unwrap_or(0),
                if g.flags.is_empty() {
                    "none".into()
                } else {
                    g.flags.join(", ")
                }
            ));
            for a in &g.approvals {
                facts.push(format!(
                    "approved by {} with key {}",
                    a.approver, a.key_fingerprint
                ));
            }
        }
        view::walk_packets(&src, &mut |m| {
            facts.push(format!(
                "mismatch {} {}: {}",
                m.scenario_id,
                m.kind.as_str(),
                m.message
            ));
            Ok(())
        })?;
    }
    Ok(ReviewDetail {
        item,
        facts,
        voided,
    })
}
