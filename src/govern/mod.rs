//! Governance: the gate, approvals, the audit log, omens, evolution.
//!
//! - [`state`]: the `.nexusmon/` state directory (discovery, the state lock); [`init`]:
//!   creating it.
//! - [`audit`]: the hash-chained audit log, recovery and verification against anchors.
//! - [`anchors`]: finding anchored audit heads in out roots, bundles and packets.
//! - [`attest`]: bundles against the trust file (signatures) and the audit log (anchors):
//!   `validate-bundle`'s extra checks and the attestor promotion uses.
//! - [`trust`], [`sign`], [`approvals`]: the trust file, SSHSIG signature checks against
//!   it (signing itself is [`crate::sign`]), approval records.
//! - [`gate`]: the pure decision function; [`explain`]: decisions and refusals in words
//!   (what was decided, why, which approvals are missing and the commands to add them).
//! - [`omens`], [`evolution`]: state that outlives runs (pure logic).
//! - [`cockpit`]: what `serve` shows of a mission and the audit log, and the approval upload.
//! - [`missions`]: the missions listing; [`review`]: the review queue, a run's view with its
//!   audit anchor checked, and the plan inputs each approval was given for.
//!
//! Workflows, one per command, each the one library call its CLI handler makes (the
//! handler parses arguments and renders; it never locks, signs or writes state):
//! - [`runner`]: `run` under governance: the gate and audit hooks of [`crate::exec`];
//! - [`approve`]: `approve`; [`clearing`]: `omens list` / `omens clear`;
//! - [`evolve`]: `evolve` / `evolution status`; [`promotion`]: `emit-promotion` and
//!   `promote` with their audit entries (promote sits below govern and never imports it);
//! - [`anchors::verify_log`]: `audit verify`; [`missions::overview`]: `missions`;
//! - [`review::queue`] / [`review::show`]: `review`; [`review::run_view`]: `report`;
//!   [`trust::add`]: `trust add`.
//!
//! [`Governance`] is the one handle the workflows use: it reads the state the gate needs,
//! records decisions in the audit log, and hands the runner the files to copy into the
//! bundle.
//!
//! How a governed run uses it ([`runner`]), in order:
//! 1. `Governance::open(dir)` for `--state-dir` or the `.nexusmon/` found above the root;
//! 2. after lint, before the out-root lock: `gate_for(&plan, &args.approval, dry)`;
//!    on `!report.allows()`: if not `--dry`, `record_refusal(&report)`; exit 4, nothing
//!    executed, the refusal explained with [`explain::refusal`] (`--dry` prints what would
//!    run and [`explain::decision_lines`] either way, and exits 4 when the gate refuses);
//! 3. once the run id is known: `record_run_started(&report, run_id)`; write every
//!    `report.files` entry with `StagedBundle::write_bytes(rel, bytes)` (so the records,
//!    their signatures and `governance/gate.json` are indexed); cap parallelism at
//!    `report.decision.max_jobs`; carry `report.decision.flags` into the summary and packet;
//! 4. at seal: `SealInfo { audit_head: Some(gov.audit_head()?), .. }` (index and `LATEST`);
//! 5. after the seal: `record_run_sealed(&SealedRun { .. })`, then
//!    `record_failures(run_id, &failures)` with one [`omens::Failure`] per mismatch.

pub mod anchors;
pub mod approvals;
pub mod approve;
pub mod attest;
pub mod audit;
pub mod clearing;
pub mod cockpit;
pub mod evolution;
pub mod evolve;
pub mod explain;
pub mod gate;
pub mod init;
pub mod missions;
pub mod omens;
pub mod promotion;
pub mod review;
pub mod runner;
pub mod sign;
pub mod state;
pub mod trust;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use self::approvals::ApprovalCheck;
use self::audit::{AuditKind, AuditLog};
use self::evolution::Capabilities;
use self::gate::{GateFacts, GateVerdict};
use self::omens::{Crossing, Failure};
use self::state::StateDir;
use self::trust::TrustStore;
use crate::error::ErrorKind;
use crate::load::LoadedPlan;
pub use crate::model::gate::GateRecord;
use crate::model::gate::RejectReason;
use crate::model::index::AuditHead;
use crate::model::plan::PlanKind;
use crate::util::digest::{Digest, blake3_hex};
use crate::util::{fsx, json, time};
use crate::{Error, Result};

/// The sentence for a trust file that does not parse: where (`file:line`), why, the fix.
pub fn broken_trust_text(e: &Error) -> String {
    let mut s = format!("the trust file is broken: {e}");
    if let Some(h) = e.hint() {
        s.push_str(" (");
        s.push_str(h);
        s.push(')');
    }
    s
}

/// The first 12 characters of a hex digest, for messages (full digests go in files).
pub fn short_hex(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// The `schema` of `governance/gate.json` in a bundle.
pub const GATE_RECORD_SCHEMA: &str = "nexusmon/gate/v1";

/// The bundle directory governance files are copied into.
pub const BUNDLE_DIR: &str = "governance";

/// The governance state of a project: the handle every governed operation goes through.
#[derive(Debug, Clone)]
pub struct Governance {
    state: StateDir,
    audit: AuditLog,
}

/// A file to write into the run's bundle (bundle-relative path, exact bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// `governance/…`.
    pub rel: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What the gate decided for a plan, with everything needed to record it.
#[derive(Debug, Clone)]
pub struct GateReport {
    /// The plan.
    pub plan_id: String,
    /// Its `plan_digest`.
    pub plan_digest: Digest,
    /// Its path.
    pub plan_path: PathBuf,
    /// The mission's `requested_by` (missions only).
    pub requested_by: Option<String>,
    /// The approval records considered (given and found beside the plan), sorted.
    pub records: Vec<PathBuf>,
    /// Their verdicts.
    pub approvals: ApprovalCheck,
    /// The decision.
    pub decision: GateVerdict,
    /// The capabilities it was made with.
    pub capabilities: Capabilities,
    /// When.
    pub evaluated_at: String,
    /// Files for the bundle: the records and signatures as verified, and `gate.json`.
    pub files: Vec<BundleFile>,
}

impl GateReport {
    /// Whether the plan may run.
    pub fn allows(&self) -> bool {
        self.decision.allows()
    }

    fn audit_data(&self) -> serde_json::Value {
        json!({
            "plan_id": self.plan_id,
            "plan_digest": self.plan_digest,
            "plan_path": self.plan_path.display().to_string(),
            "outcome": self.decision.outcome.as_str(),
            "reasons": self.decision.reasons,
            "flags": self.decision.flags,
            "rank": self.decision.rank,
            "composite": self.decision.composite,
            "required_approvals": self.decision.required_approvals,
            "valid_approvals": self.decision.valid_approvals,
            "approvals": self.approvals.valid.iter().map(|v| json!({
                "approver": v.approver,
                "key_fingerprint": v.key_fingerprint,
                "record_blake3": v.record_blake3,
                "expires_at": v.expires_at,
            })).collect::<Vec<_>>(),
            "rejected": self.approvals.rejected.iter().map(|r| json!({
                "path": r.path.display().to_string(),
                "reason": r.reason.as_str(),
            })).collect::<Vec<_>>(),
            "omens": self.decision.omens.iter().map(|o| json!({
                "fingerprint": o.fingerprint,
                "scenario_id": o.scenario_id,
                "level": o.level.as_str(),
            })).collect::<Vec<_>>(),
            "level": self.capabilities.level,
            "capabilities": self.capabilities.held,
        })
    }
}

impl Governance {
    /// Open the state directory `dir` (which must exist, with its audit log).
    pub fn open(dir: &Path) -> Result<Self> {
        let state = StateDir::open(dir)?;
        let audit = AuditLog::open(&state)?;
        Ok(Self { state, audit })
    }

    /// Find and open the state directory: `explicit` (`--state-dir`), else the nearest
    /// `.nexusmon/` at or above `start`. Missing: exit 2 with a hint to run `nexusmon init`.
    pub fn discover(explicit: Option<&Path>, start: &Path) -> Result<Self> {
        let state = StateDir::discover(explicit, start)?;
        let audit = AuditLog::open(&state)?;
        Ok(Self { state, audit })
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The trust file.
    pub fn trust(&self) -> Result<TrustStore> {
        TrustStore::from_state(&self.state)
    }

    /// The trust file, or why it is broken (`file:line: why`, with the fix) when it exists
    /// but does not parse: for the readers that must go on and say so (the gate, the
    /// missions listing, the review queue, bundle attestation, `audit verify`) rather than
    /// stop at the first broken line. A missing trust file is still an error.
    pub fn trust_or_broken(&self) -> Result<std::result::Result<TrustStore, String>> {
        let path = self.state.file(state::TRUST_FILE);
        match TrustStore::from_state(&self.state) {
            Ok(t) => Ok(Ok(t)),
            Err(e) if std::fs::symlink_metadata(&path).is_ok() && e.kind() == ErrorKind::Usage => {
                Ok(Err(broken_trust_text(&e)))
            }
            Err(e) => Err(e),
        }
    }

    /// The evolution capabilities the gate checks (none if there is no evolution state).
    /// An `evolution.json` whose derived fields do not match its outcomes is refused.
    pub fn capabilities(&self) -> Result<Capabilities> {
        match self.state.read_evolution()? {
            None => Ok(Capabilities::none()),
            Some(evo) => {
                evolution::check_consistent(&evo, &self.state.file(state::EVOLUTION_FILE))?;
                Ok(Capabilities::of(&evo))
            }
        }
    }

    /// The audit log's head, for the bundle index and `LATEST` at seal time.
    pub fn audit_head(&self) -> Result<AuditHead> {
        self.audit.head()
    }

    /// Run the gate for `plan` now. Approval records are those given plus those found in
    /// `approvals/` beside the plan (`<plan_id>.*.json`). Reads the trust file, the omens
    /// of the plan's scenarios and the evolution capabilities. Writes nothing.
    pub fn gate_for(
        &self,
        plan: &LoadedPlan,
        approvals: &[PathBuf],
        dry: bool,
    ) -> Result<GateReport> {
        self.gate_at(plan, approvals, dry, jiff::Timestamp::now())
    }

    /// [`Governance::gate_for`] at a given time (for tests and replays).
    pub fn gate_at(
        &self,
        plan: &LoadedPlan,
        approvals: &[PathBuf],
        dry: bool,
        now: jiff::Timestamp,
    ) -> Result<GateReport> {
        let (trust, broken) = match self.trust_or_broken()? {
            Ok(t) => (t, None),
            Err(why) => (
                TrustStore::empty(&self.state.file(state::TRUST_FILE)),
                Some(why),
            ),
        };
        let mut records: Vec<PathBuf> = approvals
            .iter()
            .map(|p| fsx::absolute(p))
            .collect::<Result<_>>()?;
        for p in &records {
            if !p.is_file() {
                return Err(Error::input(p, "approval record not found")
                    .with_hint("pass the record written by `nexusmon approve` (its signature is `<record>.sig`)"));
            }
        }
        for found in approvals::discover(plan)? {
            records.push(fsx::absolute(&found)?);
        }
        records.sort();
        records.dedup();
        let mut check = approvals::verify(plan, &records, &trust, now);
        if let Some(why) = broken {
            // Nothing is trusted while the file is broken: say so for every record.
            for r in &mut check.rejected {
                r.reason = RejectReason::TrustFileBroken;
                r.detail.clone_from(&why);
            }
            check.trust_broken = Some(why);
        }
        if check.valid.iter().any(|v| v.uses.is_some()) {
            let used = self.approval_uses()?;
            approvals::apply_uses(&mut check, &|n| used.get(n).copied().unwrap_or(0));
        }
        let omens_file = self.state.read_omens()?;
        let scenarios = plan_scenarios(plan);
        let hits = omens::hits_for(&omens_file, plan.plan.plan_id.as_str(), &scenarios);
        let capabilities = self.capabilities()?;
        let workers = gate::WorkerFacts::of_plan(plan);
        let decision = gate::decide(&GateFacts::for_plan(
            &plan.plan,
            &check,
            &hits,
            &capabilities,
            dry,
            &workers,
        ));
        let evaluated_at = now.round(jiff::Unit::Second).unwrap_or(now).to_string();
        let mut report = GateReport {
            plan_id: plan.plan.plan_id.to_string(),
            plan_digest: plan.digest.clone(),
            plan_path: plan.path.clone(),
            requested_by: plan.plan.mission.as_ref().map(|m| m.requested_by.clone()),
            records,
            approvals: check,
            decision,
            capabilities,
            evaluated_at,
            files: Vec::new(),
        };
        report.files = bundle_files(&report)?;
        Ok(report)
    }

    fn record_rejections(&self, report: &GateReport, run_id: Option<&str>) -> Result<()> {
        for r in &report.approvals.rejected {
            self.audit.append(
                AuditKind::ApprovalRejected,
                json!({
                    "plan_id": report.plan_id,
                    "path": r.path.display().to_string(),
                    "reason": r.reason.as_str(),
                    "detail": r.detail,
                    "run_id": run_id,
                }),
            )?;
        }
        Ok(())
    }

    /// Record a refusal (after `approval-rejected` entries for each rejected record).
    /// Call for real runs only, not `--dry`. Returns the new head.
    pub fn record_refusal(&self, report: &GateReport) -> Result<AuditHead> {
        self.record_rejections(report, None)?;
        self.audit
            .append(AuditKind::RunRefused, report.audit_data())
    }

    /// How many runs used each limited-use approval, by nonce (its `approval-used` audit
    /// entries).
    pub fn approval_uses(&self) -> Result<BTreeMap<String, u32>> {
        let mut m: BTreeMap<String, u32> = BTreeMap::new();
        for e in self.audit.entries_of_kind(AuditKind::ApprovalUsed)? {
            if let Some(n) = e.data.get("nonce").and_then(|v| v.as_str()) {
                *m.entry(n.to_string()).or_default() += 1;
            }
        }
        Ok(m)
    }

    /// Record that a run passed the gate and started (after `approval-rejected` entries),
    /// then one `approval-used` entry per limited-use approval the decision counted. Under
    /// the state lock, the uses are counted again first: if another run used one up since
    /// the gate checked it, this run is refused (exit 4) instead. Returns the new head;
    /// anchor [`Governance::audit_head`] at seal time.
    pub fn record_run_started(&self, report: &GateReport, run_id: &str) -> Result<AuditHead> {
        let _lock = self.state.lock()?;
        let d = &report.decision;
        let limited: Vec<&approvals::ValidApproval> = report
            .approvals
            .valid
            .iter()
            .filter(|v| v.uses.is_some() && d.required_approvals > 0)
            .filter(|v| d.approvers.contains(&v.approver))
            .collect();
        let used = if limited.is_empty() {
            BTreeMap::new()
        } else {
            self.approval_uses()?
        };
        for v in &limited {
            let n = used.get(&v.nonce).copied().unwrap_or(0);
            if n >= v.uses.unwrap_or(u32::MAX) {
                return Err(Error::new(
                    crate::error::ErrorKind::Refused,
                    format!(
                        "refused by governance: approval {} by `{}` was used up by another run since the gate checked it ({n} of {} use(s))",
                        v.record_path.display(),
                        v.approver,
                        v.uses.unwrap_or(0)
                    ),
                )
                .with_hint("ask the approver for a new approval (`nexusmon approve --uses N`)"));
            }
        }
        self.record_rejections(report, Some(run_id))?;
        let mut data = report.audit_data();
        data["run_id"] = json!(run_id);
        let mut head = self.audit.append(AuditKind::RunStarted, data)?;
        for v in limited {
            let n = used.get(&v.nonce).copied().unwrap_or(0);
            head = self.audit.append(
                AuditKind::ApprovalUsed,
                json!({
                    "nonce": v.nonce,
                    "plan_id": report.plan_id,
                    "plan_digest": report.plan_digest,
                    "run_id": run_id,
                    "approver": v.approver,
                    "record_blake3": v.record_blake3,
                    "use": n + 1,
                    "of": v.uses,
                }),
            )?;
        }
        Ok(head)
    }

    /// Record a sealed bundle: its status, the digest of its `artifact_index.json` and the
    /// head the index anchored.
    pub fn record_run_sealed(&self, seal: &SealedRun<'_>) -> Result<AuditHead> {
        // The bundle relative to the project (the state directory's parent) too, so the
        // record still names its out root after the project is moved or copied.
        let project = self.state.dir().parent().map(Path::to_path_buf);
        let bundle_rel = project
            .as_deref()
            .and_then(|p| relative_path(seal.bundle_dir, p));
        self.audit.append(
            AuditKind::RunSealed,
            json!({
                "plan_id": seal.plan_id,
                "run_id": seal.run_id,
                "status": seal.status,
                "bundle": seal.bundle_dir.display().to_string(),
                "bundle_rel": bundle_rel,
                "artifact_index_blake3": seal.index_blake3,
                "anchored_head": seal.anchored_head,
            }),
        )
    }

    /// Count a run's failures as omens (each fingerprint once per run) and record every
    /// threshold crossing in the audit log. Returns the crossings.
    pub fn record_failures(&self, run_id: &str, failures: &[Failure]) -> Result<Vec<Crossing>> {
        let _lock = self.state.lock()?;
        let mut file = self.state.read_omens()?;
        let crossings = omens::record(&mut file, failures, run_id, &time::now_rfc3339());
        self.state.write_omens(&file)?;
        for c in &crossings {
            self.audit.append(
                AuditKind::OmenRecorded,
                json!({
                    "run_id": run_id,
                    "fingerprint": c.fingerprint,
                    "scenario_id": c.scenario_id,
                    "from": c.from.as_str(),
                    "to": c.to.as_str(),
                    "count": c.count,
                }),
            )?;
        }
        Ok(crossings)
    }
}

/// `path` relative to `base` (both made absolute; `..` where `path` is not beneath it).
pub fn relative_path(path: &Path, base: &Path) -> Option<String> {
    let abs = |p: &Path| {
        std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .ok()
    };
    let (p, b) = (abs(path)?, abs(base)?);
    let pc: Vec<_> = p.components().collect();
    let bc: Vec<_> = b.components().collect();
    let common = pc.iter().zip(&bc).take_while(|(a, b)| a == b).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..bc.len() {
        out.push("..");
    }
    for c in &pc[common..] {
        out.push(c.as_os_str());
    }
    Some(out.to_string_lossy().into_owned())
}

/// What [`Governance::record_run_sealed`] records.
#[derive(Debug, Clone, Copy)]
pub struct SealedRun<'a> {
    /// The plan.
    pub plan_id: &'a str,
    /// The run.
    pub run_id: &'a str,
    /// `complete` or `failed`.
    pub status: &'a str,
    /// `out/<run_id>`.
    pub bundle_dir: &'a Path,
    /// blake3 of `artifact_index.json`.
    pub index_blake3: &'a str,
    /// The head anchored in the index.
    pub anchored_head: Option<&'a AuditHead>,
}

/// The scenarios of a plan the gate consults omens for: an experiment's scenario specs, a
/// mission's tasks (`<profile>:<probe>`) and scenario specs.
pub fn plan_scenarios(plan: &LoadedPlan) -> std::collections::BTreeSet<String> {
    let mut out: std::collections::BTreeSet<String> = plan
        .plan
        .scenario_specs()
        .into_iter()
        .map(|s| s.scenario_id)
        .collect();
    if plan.plan.kind == PlanKind::Mission
        && let Some(m) = &plan.plan.mission
    {
        out.extend(crate::load::mission::task_scenarios(m));
    }
    out
}

/// The records and signatures the gate considered, as bytes for the bundle, plus
/// `governance/gate.json`. A valid record whose bytes changed since verification is an
/// error (never copy something other than what was checked).
fn bundle_files(report: &GateReport) -> Result<Vec<BundleFile>> {
    let mut files = Vec::new();
    let mut copies: BTreeMap<String, String> = BTreeMap::new();
    let mut used: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for record in &report.records {
        let name = record.file_name().map_or_else(
            || "record.json".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut rel = format!("{BUNDLE_DIR}/approvals/{name}");
        let mut n = 2;
        while used.contains(&rel) {
            rel = format!("{BUNDLE_DIR}/approvals/{n}-{name}");
            n += 1;
        }
        used.insert(rel.clone());
        let Ok(Some(bytes)) =
            crate::util::fsx::read_bounded(record, crate::util::limits::MAX_RECORD_BYTES)
        else {
            continue;
        };
        if let Some(v) = report
            .approvals
            .valid
            .iter()
            .find(|v| &v.record_path == record)
            && blake3_hex(&bytes) != v.record_blake3
        {
            return Err(
                Error::runner("an approval record changed while it was being checked")
                    .with_path(record),
            );
        }
        copies.insert(record.display().to_string(), rel.clone());
        files.push(BundleFile {
            rel: rel.clone(),
            bytes,
        });
        let sig = sign::sig_path(record);
        if let Ok(Some(sig_bytes)) = crate::util::fsx::read_bounded(&sig, 64 * 1024) {
            let sig_rel = format!("{rel}.sig");
            copies.insert(sig.display().to_string(), sig_rel.clone());
            files.push(BundleFile {
                rel: sig_rel,
                bytes: sig_bytes,
            });
        }
    }
    let mut approvals = report.approvals.clone();
    let map = |p: &Path| -> PathBuf {
        copies
            .get(&p.display().to_string())
            .map_or_else(|| p.to_path_buf(), PathBuf::from)
    };
    for v in &mut approvals.valid {
        v.record_path = map(&v.record_path);
        v.sig_path = map(&v.sig_path);
    }
    for r in &mut approvals.rejected {
        r.path = map(&r.path);
    }
    let record = GateRecord {
        schema: GATE_RECORD_SCHEMA.to_string(),
        evaluated_at: report.evaluated_at.clone(),
        plan_id: report.plan_id.clone(),
        plan_digest: report.plan_digest.clone(),
        decision: report.decision.clone(),
        approvals,
        copies,
        capabilities: report.capabilities.clone(),
    };
    files.push(BundleFile {
        rel: format!("{BUNDLE_DIR}/gate.json"),
        bytes: json::to_sorted_pretty(&record)?,
    });
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::approval::{ApprovalRecord, ClearanceRecord};
    use crate::model::audit::AuditEntry;
    use crate::model::evolution::EvolutionFile;
    use crate::model::omens::OmensFile;

    fn valid<T: schemars::JsonSchema>(instance: &serde_json::Value) -> bool {
        let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
        jsonschema::validator_for(&schema)
            .unwrap()
            .is_valid(instance)
    }

    #[test]
    fn every_file_governance_writes_validates_against_its_schema() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(".nexusmon");
        init::init(&dir).unwrap();
        let s = StateDir::open(&dir).unwrap();
        let log = AuditLog::open(&s).unwrap();
        log.append(AuditKind::Evolution, json!({"x": 1})).unwrap();
        for line in std::fs::read_to_string(log.path()).unwrap().lines() {
            assert!(
                valid::<AuditEntry>(&serde_json::from_str(line).unwrap()),
                "{line}"
            );
        }
        let read = |name: &str| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
        };
        assert!(valid::<OmensFile>(&read(state::OMENS_FILE)));
        assert!(valid::<EvolutionFile>(&read(state::EVOLUTION_FILE)));
        assert!(valid::<AuditHead>(&read(state::AUDIT_HEAD_FILE)));

        let record = json!({
            "schema": "nexusmon/approval/v1", "plan_id": "p", "plan_path": "plans/p/plan.json",
            "plan_digest": {"blake3": "a", "sha256": "b"}, "scope": "run", "decision": "approve",
            "approver": "alice", "issued_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-02T00:00:00Z", "nonce": "00", "rank": "A", "requested_by": "rita"
        });
        assert!(valid::<ApprovalRecord>(&record));
        let mut extra = record.clone();
        extra["surprise"] = json!(1);
        assert!(!valid::<ApprovalRecord>(&extra), "unknown keys are refused");
        let clearance = json!({
            "schema": "nexusmon/omen-clearance/v1", "fingerprint": "f", "plan_id": "p",
            "scenario_id": "a:b", "count": 13, "decision": "approve", "approver": "alice",
            "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-02T00:00:00Z", "nonce": "00"
        });
        assert!(valid::<ClearanceRecord>(&clearance));
        let schema = serde_json::to_value(schemars::schema_for!(GateRecord)).unwrap();
        assert_eq!(schema["title"], "nexusmon gate record");
    }
}
