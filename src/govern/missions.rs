//! The missions listing: every mission plan with its rank, composite band, approvals and a
//! state that tells "waiting for approval" apart from "ready", "refused" and "running".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use super::Governance;
use super::gate::{Band, Outcome};
use crate::Result;
use crate::model::plan::Rank;
use crate::util::fsx;

/// Where a mission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MissionState {
    /// The gate would let it run now.
    Ready,
    /// The gate would refuse it only for want of valid approvals.
    AwaitingApproval,
    /// The gate would refuse it for another reason (composite FAILING, a locked omen).
    Refused,
    /// It needs approvals and the trust file does not parse: nothing can be verified until
    /// the file is fixed (the row's `error` names the file and line).
    TrustFileBroken,
    /// A run of it holds an out-root lock (reported by the runner).
    Running,
    /// The plan does not load.
    Invalid,
}

impl MissionState {
    /// `ready`, `awaiting-approval`, `refused`, `running`, `invalid`.
    pub fn as_str(self) -> &'static str {
        match self {
            MissionState::Ready => "ready",
            MissionState::AwaitingApproval => "awaiting-approval",
            MissionState::Refused => "refused",
            MissionState::TrustFileBroken => "trust-file-broken",
            MissionState::Running => "running",
            MissionState::Invalid => "invalid",
        }
    }
}

/// One mission in the listing.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MissionRow {
    /// The plan file.
    pub path: PathBuf,
    /// The plan id (absent if the plan does not load).
    pub plan_id: Option<String>,
    /// Its state.
    pub state: MissionState,
    /// Its rank.
    pub rank: Option<Rank>,
    /// Composite score.
    pub composite: Option<u8>,
    /// Composite band.
    pub band: Option<Band>,
    /// Valid approvals counted.
    pub approvals_valid: u32,
    /// Approvals required.
    pub approvals_required: u32,
    /// Records that did not count, with reasons.
    pub approvals_rejected: Vec<String>,
    /// The gate's reasons.
    pub reasons: Vec<String>,
    /// Review flags.
    pub flags: Vec<String>,
    /// The running run's id.
    pub run_id: Option<String>,
    /// When the running run took the out-root lock (RFC 3339).
    pub run_started_at: Option<String>,
    /// The out root the running run writes to.
    pub run_out_root: Option<PathBuf>,
    /// Why the plan does not load.
    pub error: Option<String>,
}

/// A run in progress, read from an out root's lock holder record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Running {
    /// The run id.
    pub run_id: String,
    /// When it took the lock (RFC 3339).
    pub started_at: String,
    /// Its out root.
    pub out_root: PathBuf,
}

/// The plans being run now in `out_roots`, by plan id: an out root whose lock is held (per
/// `/proc/locks`, not merely a record left behind by a killed run) by a run that named its
/// plan. A missing out root runs nothing.
pub fn running_in(out_roots: &[PathBuf]) -> BTreeMap<String, Running> {
    let mut out = BTreeMap::new();
    for root in out_roots {
        let st = crate::bundle::lock::inspect(root);
        if !st.held {
            continue;
        }
        if let Some(h) = st.holder
            && let (Some(plan), Some(run)) = (h.plan_id, h.run_id)
        {
            out.insert(
                plan,
                Running {
                    run_id: run,
                    started_at: h.started_at,
                    out_root: root.clone(),
                },
            );
        }
    }
    out
}

/// Plan files (`plan.json`, `plan.yaml`, `plan.yml`) under `dir`, recursively, sorted;
/// hidden directories and `approvals/` are skipped.
pub fn find_plan_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(out);
    }
    for entry in fsx::read_dir_sorted(dir)? {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if entry.is_dir() {
            if name != "approvals" {
                out.extend(find_plan_files(&entry)?);
            }
        } else if matches!(name.as_str(), "plan.json" | "plan.yaml" | "plan.yml") {
            out.push(entry);
        }
    }
    Ok(out)
}

fn is_mission_file(path: &Path) -> bool {
    crate::source::Document::load_plan(path)
        .ok()
        .is_some_and(|d| d.value().get("kind").and_then(|k| k.as_str()) == Some("mission"))
}

/// `missions`: open the state directory (`explicit`, else found at or above `root`), find
/// the plan files under `roots` (each must exist) and list the missions among them, with
/// the runs holding a lock in the out roots `outs`.
pub fn overview(
    explicit: Option<&Path>,
    root: &Path,
    roots: &[PathBuf],
    outs: &[PathBuf],
    now: jiff::Timestamp,
) -> Result<Vec<MissionRow>> {
    let gov = Governance::discover(explicit, root)?;
    let mut files = Vec::new();
    for r in roots {
        if !r.exists() {
            return Err(crate::Error::input(r, "not found")
                .with_hint("pass plan files or directories holding them"));
        }
        files.extend(find_plan_files(r)?);
    }
    let running = running_in(outs);
    list(&gov, &files, &running, now)
}

/// List the missions among `plans` (paths of plan files): the gate is evaluated for each
/// (with the approvals found beside it), nothing is written. `running` maps plan ids to the
/// runs holding an out-root lock ([`running_in`]); those missions are `running`, whatever
/// the gate would say now.
pub fn list(
    gov: &Governance,
    plans: &[PathBuf],
    running: &BTreeMap<String, Running>,
    now: jiff::Timestamp,
) -> Result<Vec<MissionRow>> {
    let mut rows = Vec::new();
    for path in plans {
        if !is_mission_file(path) {
            continue;
        }
        let plan = match crate::load::load_plan(path) {
            Ok(p) => p,
            Err(e) => {
                rows.push(MissionRow {
                    path: path.clone(),
                    plan_id: None,
                    state: MissionState::Invalid,
                    rank: None,
                    composite: None,
                    band: None,
                    approvals_valid: 0,
                    approvals_required: 0,
                    approvals_rejected: Vec::new(),
                    reasons: Vec::new(),
                    flags: Vec::new(),
                    run_id: None,
                    run_started_at: None,
                    run_out_root: None,
                    error: Some(e.to_string()),
                });
                continue;
            }
        };
        let report = gov.gate_at(&plan, &[], true, now)?;
        let d = &report.decision;
        let run = running.get(plan.plan.plan_id.as_str());
        let run_id = run.map(|r| r.run_id.clone());
        let blocking: Vec<&String> = d
            .reasons
            .iter()
            .filter(|r| matches!(r.as_str(), "composite-failing" | "omen-locked"))
            .collect();
        let state = if run_id.is_some() {
            MissionState::Running
        } else if d.outcome != Outcome::Refuse {
            MissionState::Ready
        } else if blocking.is_empty() && d.reasons.iter().any(|r| r == "trust-file-broken") {
            MissionState::TrustFileBroken
        } else if blocking.is_empty() {
            MissionState::AwaitingApproval
        } else {
            MissionState::Refused
        };
        rows.push(MissionRow {
            path: path.clone(),
            plan_id: Some(plan.plan.plan_id.to_string()),
            state,
            rank: d.rank,
            composite: d.composite.map(|c| c.score),
            band: d.composite.map(|c| c.band),
            approvals_valid: d.valid_approvals,
            approvals_required: d.required_approvals,
            approvals_rejected: report
                .approvals
                .rejected
                .iter()
                .map(|r| {
                    format!(
                        "{}: {}",
                        r.path
                            .file_name()
                            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                        r.reason.as_str()
                    )
                })
                .collect(),
            reasons: d.reasons.clone(),
            flags: d.flags.clone(),
            run_id,
            run_started_at: run.map(|r| r.started_at.clone()),
            run_out_root: run.map(|r| r.out_root.clone()),
            error: d.trust_broken.clone(),
        });
    }
    Ok(rows)
}
