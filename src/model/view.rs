//! What the review surfaces (`report`, `diff`, `review`) show about one run: the run's
//! result files as read from its bundle, per-scenario lane details (timings, attempts, log
//! paths), the packet derived from the bundle (promotability, the governance slot) and the
//! [`Verdict`]: whether the evidence can be trusted (integrity, signature, anchor,
//! interruption). Built by `promote::view` (and completed by `govern` with what needs the
//! state directory); rendered by `report`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::packet::PromotionPacket;
use super::results::{
    Lane, MismatchPacket, NormalizedRow, OracleVerdict, Outcome, PreflightRecord, RunManifest,
    Summary,
};

/// Whether the bundle's files are the ones its seal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Integrity {
    /// Every file verified against `artifact_index.json`.
    Valid,
    /// The bundle has problems (listed in [`Verdict::problems`]): never evidence.
    Invalid,
}

/// The bundle's signature (`artifact_index.sig`) as checked against the trust file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum SignatureState {
    /// No signature beside the index.
    Unsigned,
    /// A signature is there and was not checked (no state directory, or this build does
    /// not verify bundle signatures).
    Unverified {
        /// Why it was not checked.
        detail: String,
    },
    /// The signature verifies over the index bytes with a trusted key.
    Valid {
        /// The principal of the signing key.
        signer: String,
        /// `SHA256:…` of the key.
        fingerprint: String,
    },
    /// The signature does not verify (or its key is not trusted).
    Invalid {
        /// Why.
        detail: String,
    },
}

/// The audit-log head the index anchors, checked against the state directory's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum AnchorState {
    /// The index anchors no audit head (sealed without a state directory).
    NotRecorded,
    /// An anchor is there; no audit log was available to check it against.
    NotChecked {
        /// The anchored sequence number.
        seq: u64,
    },
    /// The audit log holds the anchored entry with the anchored digest.
    Anchored {
        /// The anchored sequence number.
        seq: u64,
    },
    /// The audit log does not hold the anchored entry (cut, edited, or another log).
    NotAnchored {
        /// Why.
        detail: String,
    },
}

/// Everything the banner says about whether the evidence can be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Integrity.
    pub integrity: Integrity,
    /// Every problem of the strict check, as `kind path: detail`.
    pub problems: Vec<String>,
    /// `run_status.json`'s state (`complete`, `failed`, `in_progress`, `interrupted`).
    pub bundle_status: Option<String>,
    /// The signature.
    pub signature: SignatureState,
    /// The audit anchor.
    pub anchor: AnchorState,
}

impl Verdict {
    /// The run was interrupted (its bundle sealed as `interrupted`, or never sealed).
    pub fn interrupted(&self) -> bool {
        matches!(
            self.bundle_status.as_deref(),
            Some("interrupted" | "in_progress")
        )
    }
}

/// The banner's overall state, most serious first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BannerState {
    /// The bundle does not verify, or its signature or anchor is wrong.
    NotValid,
    /// The run did not finish.
    Interrupted,
    /// The runner failed (status `failed`) or a profile could not be applied.
    Failed,
    /// The run finished with mismatches or flaky scenarios.
    Mismatches,
    /// Valid, finished, every scenario matched.
    Ok,
}

impl BannerState {
    /// The word shown (and the CSS class).
    pub fn as_str(self) -> &'static str {
        match self {
            BannerState::NotValid => "not-valid",
            BannerState::Interrupted => "interrupted",
            BannerState::Failed => "failed",
            BannerState::Mismatches => "mismatches",
            BannerState::Ok => "ok",
        }
    }

    /// The label shown in the banner.
    pub fn label(self) -> &'static str {
        match self {
            BannerState::NotValid => "NOT VALID",
            BannerState::Interrupted => "INTERRUPTED",
            BannerState::Failed => "FAILED",
            BannerState::Mismatches => "MISMATCHES",
            BannerState::Ok => "OK",
        }
    }
}

/// One attempt of one lane, briefly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptBrief {
    /// 1-based.
    pub attempt: u32,
    /// The outcome.
    pub outcome: Outcome,
    /// The errno name.
    pub errno_name: Option<String>,
    /// The detail.
    pub detail: String,
    /// Wall time, microseconds.
    pub wall_us: u64,
}

/// What one executing lane did for one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneDetail {
    /// Wall time of the deciding attempt, microseconds.
    pub wall_us: u64,
    /// The deciding attempt's detail.
    pub detail: String,
    /// The child's exit code.
    pub exit_code: Option<i32>,
    /// Every attempt when there was more than one (retries).
    pub attempts: Vec<AttemptBrief>,
    /// Bundle-relative paths of the captured logs (stdout, stderr), every attempt.
    pub logs: Vec<String>,
}

/// The executing lanes of one scenario.
pub type ScenarioDetail = BTreeMap<Lane, LaneDetail>;

/// One run as the review surfaces show it.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The bundle directory.
    pub bundle_dir: PathBuf,
    /// The run id.
    pub run_id: String,
    /// `run_manifest.json`, when readable.
    pub manifest: Option<RunManifest>,
    /// `summary.json`, when readable.
    pub summary: Option<Summary>,
    /// `runtime_events.normalized.jsonl`'s rows.
    pub rows: Vec<NormalizedRow>,
    /// `mismatch_packets.jsonl` (empty when the view was read without its rows:
    /// `promote::view::head_with_packet`, for a report written a row at a time).
    pub mismatches: Vec<MismatchPacket>,
    /// How many mismatch packets the bundle holds (the length of `mismatches` when they
    /// are kept).
    pub mismatch_count: usize,
    /// `apply_preflight.json`'s profiles.
    pub preflight: Vec<PreflightRecord>,
    /// `oracle_results.jsonl`'s verdicts.
    pub oracle: Vec<OracleVerdict>,
    /// Scenario id → its executing lanes.
    pub details: BTreeMap<String, ScenarioDetail>,
    /// The packet derived from the bundle (promotability, governance slot).
    pub packet: Option<PromotionPacket>,
    /// Whether the evidence can be trusted.
    pub verdict: Verdict,
    /// Result files that could not be read or parsed.
    pub unreadable: Vec<String>,
}

impl RunView {
    /// The banner's state: the most serious of integrity, signature, anchor, interruption,
    /// the run's status and its mismatches. A bundle that does not verify is never shown
    /// as anything but not valid.
    pub fn banner(&self) -> BannerState {
        let v = &self.verdict;
        if v.integrity != Integrity::Valid
            || matches!(v.signature, SignatureState::Invalid { .. })
            || matches!(v.anchor, AnchorState::NotAnchored { .. })
        {
            return BannerState::NotValid;
        }
        if v.interrupted() {
            return BannerState::Interrupted;
        }
        let Some(s) = &self.summary else {
            return BannerState::NotValid;
        };
        if v.bundle_status.as_deref() == Some("failed")
            || s.status.as_str() == "failed"
            || !s.apply_failed_profiles.is_empty()
        {
            return BannerState::Failed;
        }
        if s.exit_code != 0 || self.mismatch_count > 0 || !s.flaky.is_empty() {
            return BannerState::Mismatches;
        }
        BannerState::Ok
    }

    /// Rows in review order: mismatches first, then flaky ones, then the rest (each group
    /// by scenario id).
    pub fn rows_for_review(&self) -> Vec<&NormalizedRow> {
        let mut rows: Vec<&NormalizedRow> = self.rows.iter().collect();
        rows.sort_by_key(|r| (r.mismatches.is_empty(), !r.flaky, r.scenario_id.as_str()));
        rows
    }
}

/// One approval the gate counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalView {
    /// The approver principal.
    pub approver: String,
    /// `SHA256:…` of the signing key.
    pub key_fingerprint: String,
    /// Whether its record and signature verified (inside the bundle, for a packet).
    pub verified: bool,
    /// Why not, when not.
    pub problem: Option<String>,
}

/// The governance record of a run, as the reports show it: from the packet's governance
/// slot, or (while the run is being written) from the gate record itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GovernanceView {
    /// `allow`, `allow-flagged`, `refuse`.
    pub outcome: Option<String>,
    /// `experiment` / `mission`.
    pub kind: Option<String>,
    /// The mission's rank.
    pub rank: Option<String>,
    /// The composite score.
    pub composite: Option<u8>,
    /// Its band.
    pub band: Option<String>,
    /// Review flags.
    pub flags: Vec<String>,
    /// The gate's rules that applied.
    pub reasons: Vec<String>,
    /// Approvals required.
    pub required_approvals: Option<u32>,
    /// Approvals counted.
    pub valid_approvals: Option<u32>,
    /// The approvals counted.
    pub approvals: Vec<ApprovalView>,
}

fn word<T: Serialize>(v: &T) -> Option<String> {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
}

impl GovernanceView {
    /// From a packet's governance slot.
    pub fn from_slot(g: &super::packet::GovernanceSlot) -> Self {
        Self {
            outcome: g.outcome.clone(),
            kind: g.kind.as_ref().and_then(word),
            rank: g.rank.as_ref().and_then(word),
            composite: g.composite,
            band: g.band.clone(),
            flags: g.flags.clone(),
            reasons: g.reasons.clone(),
            required_approvals: g.required_approvals,
            valid_approvals: g.valid_approvals,
            approvals: g
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    approver: a.approver.clone(),
                    key_fingerprint: a.key_fingerprint.clone(),
                    verified: a.verified,
                    problem: a.problem.clone(),
                })
                .collect(),
        }
    }

    /// From the JSON of a gate record (`governance/gate.json`), read leniently: what is
    /// missing stays empty.
    pub fn from_gate_json(v: &serde_json::Value) -> Self {
        let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_string);
        let n = |p: &str| {
            v.pointer(p)
                .and_then(serde_json::Value::as_u64)
                .and_then(|x| u32::try_from(x).ok())
        };
        let list = |p: &str| -> Vec<String> {
            v.pointer(p)
                .and_then(|x| x.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            outcome: s("/decision/outcome"),
            kind: s("/decision/kind"),
            rank: s("/decision/rank"),
            composite: n("/decision/composite/score").and_then(|x| u8::try_from(x).ok()),
            band: s("/decision/composite/band"),
            flags: list("/decision/flags"),
            reasons: list("/decision/reasons"),
            required_approvals: n("/decision/required_approvals"),
            valid_approvals: n("/decision/valid_approvals"),
            approvals: v
                .pointer("/approvals/valid")
                .and_then(|x| x.as_array())
                .map(|a| {
                    a.iter()
                        .map(|x| ApprovalView {
                            approver: x
                                .get("approver")
                                .and_then(|y| y.as_str())
                                .unwrap_or("?")
                                .to_string(),
                            key_fingerprint: x
                                .get("key_fingerprint")
                                .and_then(|y| y.as_str())
                                .unwrap_or("?")
                                .to_string(),
                            verified: true,
                            problem: None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

impl RunView {
    /// The governance record (from the derived packet), if the run was governed.
    pub fn governance(&self) -> Option<GovernanceView> {
        self.packet
            .as_ref()
            .and_then(|p| p.governance.as_ref())
            .map(GovernanceView::from_slot)
    }
}
