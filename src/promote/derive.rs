//! Deriving a [`PromotionPacket`] from a bundle: nothing comes from the command line but
//! where the packet will live (which decides how pointers are written).
//!
//! What is read, each through [`BundleSource`] (verified against the seal when the bundle
//! verifies): `run_status.json`, the index, `run_manifest.json` (plan, channel, host facts,
//! registry digests), `apply_preflight.json`, `summary.json`, the decision-stage artifacts
//! (each parsed: present but unreadable counts as missing), and `governance/gate.json` with
//! the approval records and signatures it names. The artifacts listed are the result files
//! of a run (`bundle::RESULT_FILES`), `run_status.json`, `repair_log.json` and everything
//! under `governance/`; logs are covered by the index digest, not listed one by one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;

use serde::de::DeserializeOwned;
use ssh_key::PublicKey;

use super::attest::Attestor;
use super::facts::{self, ExpectedMatrixCheck, ManifestFacts, MismatchSummaryCheck};
use super::pointers::PointerContext;
use super::promotability::{self, DECISION_ARTIFACTS};
use super::source::BundleSource;
use crate::Result;
use crate::bundle::lines;
use crate::bundle::{
    BASELINE_RESULTS, LINE_RESULT_FILES, NORMALIZED_ROWS, ORACLE_RESULTS, PATH_WITNESSES,
    RESULT_FILES, RUNTIME_RESULTS,
};
use crate::bundle::{INDEX_FILE, REPAIR_LOG_FILE, STATUS_FILE, unsafe_reason};
use crate::model::approval::{ApprovalRecord, Decision, SIGNATURE_NAMESPACE};
use crate::model::index::AuditHead;
use crate::model::packet::{
    ApprovalInput, ArtifactPointer, EmittedBy, GatingInputs, GovernanceSlot, IndexInput,
    InputState, PACKET_VERSION, PacketApproval, PacketBundle, PacketPlan, PacketSummary,
    PreflightInput, Promotability, PromotionPacket, TaskCounts,
};
use crate::model::plan::{PlanKind, Rank};
use crate::model::results::{
    ApplyPreflight, NormalizedRow, Observation, OracleVerdict, Outcome, PathWitness, RulesetStatus,
    Summary,
};
use crate::sign;
use crate::util::digest::{self, Digest};

/// The bundle-relative path of the gate record.
pub const GATE_RECORD: &str = "governance/gate.json";

/// A member read and parsed.
struct Parsed<T> {
    state: InputState,
    value: Option<T>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Self {
            state: InputState::Missing,
            value: None,
        }
    }
}

/// Every member the packet looks at, each read once as a stream: its digests (for its
/// pointer) and what the packet needs of it, never the whole document (the large ones
/// through [`super::facts`]).
#[derive(Default)]
struct Members {
    /// Every member read, by name.
    digests: BTreeMap<String, lines::Digests>,
    /// The bytes of the few small members needed whole (`governance/`).
    bytes: BTreeMap<String, Vec<u8>>,
    /// Decision-stage artifacts read: whether each parsed as what the runner writes.
    parsed: BTreeMap<String, bool>,
    manifest: Parsed<ManifestFacts>,
    preflight: Parsed<ApplyPreflight>,
    summary: Parsed<Summary>,
}

impl Members {
    fn get(&self, rel: &str) -> Option<&Vec<u8>> {
        self.bytes.get(rel)
    }

    /// Read `rel` (not a JSON Lines result file) once, keeping what the packet needs.
    fn read(&mut self, src: &BundleSource, rel: &str) -> Result<()> {
        fn doc<T: DeserializeOwned>(r: &mut dyn BufRead) -> Option<T> {
            serde_json::from_reader(r).ok()
        }
        /// A member that is there: parsed or not.
        fn parsed<T>(got: Option<T>) -> Parsed<T> {
            match got {
                None => Parsed {
                    state: InputState::Unreadable,
                    value: None,
                },
                Some(v) => Parsed {
                    state: InputState::Present,
                    value: Some(v),
                },
            }
        }
        if rel.starts_with("governance/") {
            // Small, and needed as bytes (the gate record is parsed as a value, approval
            // copies are verified against their signatures).
            if let Some(b) = src.read(rel)? {
                self.digests.insert(rel.to_string(), digests_of(&b));
                self.bytes.insert(rel.to_string(), b);
            }
            return Ok(());
        }
        let got = match rel {
            "run_manifest.json" => {
                src.scan_member(rel, &mut |r| doc::<ManifestFacts>(r))?
                    .map(|(d, v)| {
                        self.manifest = parsed(v);
                        d
                    })
            }
            "apply_preflight.json" => src
                .scan_member(rel, &mut |r| doc::<ApplyPreflight>(r))?
                .map(|(d, v)| {
                    self.preflight = parsed(v);
                    d
                }),
            "summary.json" => src
                .scan_member(rel, &mut |r| doc::<Summary>(r))?
                .map(|(d, v)| {
                    self.summary = parsed(v);
                    d
                }),
            "expected_matrix.json" => src
                .scan_member(rel, &mut |r| doc::<ExpectedMatrixCheck>(r).is_some())?
                .map(|(d, ok)| {
                    self.parsed.insert(rel.to_string(), ok);
                    d
                }),
            "mismatch_summary.json" => src
                .scan_member(rel, &mut |r| doc::<MismatchSummaryCheck>(r).is_some())?
                .map(|(d, ok)| {
                    self.parsed.insert(rel.to_string(), ok);
                    d
                }),
            "mismatch_packets.jsonl" => src
                .scan_member(rel, &mut |r| facts::mismatch_lines_parse(r))?
                .map(|(d, ok)| {
                    self.parsed.insert(rel.to_string(), ok);
                    d
                }),
            _ => src.scan_member(rel, &mut |_| ())?.map(|(d, ())| d),
        };
        if let Some(d) = got {
            self.digests.insert(rel.to_string(), d);
        }
        Ok(())
    }
}

fn digests_of(bytes: &[u8]) -> lines::Digests {
    lines::Digests {
        size: bytes.len() as u64,
        blake3: digest::blake3_hex(bytes),
        sha256: digest::sha256_hex(bytes),
    }
}

fn pointer(ctx: &PointerContext, member: &str, d: &lines::Digests) -> ArtifactPointer {
    ArtifactPointer {
        path: ctx.member(member),
        member: member.to_string(),
        size: d.size,
        blake3: d.blake3.clone(),
        sha256: d.sha256.clone(),
    }
}

/// Derive the packet of the bundle `src`, with pointers formed by `ctx` and the signature
/// and anchor facts `attestor` decides. The packet's `audit_head` is left `None` (the
/// emitter sets it).
pub fn derive_packet(
    src: &BundleSource,
    ctx: &PointerContext,
    attestor: &dyn Attestor,
) -> Result<PromotionPacket> {
    let attestation = attestor.attest(src)?;
    // Read every member the packet points to or consults.
    let mut names: BTreeSet<String> = RESULT_FILES
        .iter()
        .filter(|f| !LINE_RESULT_FILES.contains(f))
        .map(|s| (*s).to_string())
        .collect();
    names.insert(STATUS_FILE.into());
    names.insert(REPAIR_LOG_FILE.into());
    names.extend(src.members_under("governance/"));
    let mut m = Members::default();
    for n in &names {
        m.read(src, n)?;
    }
    let tasks = scan_line_files(src, &mut m)?;

    let manifest = std::mem::take(&mut m.manifest);
    let preflight = std::mem::take(&mut m.preflight);
    let summary = std::mem::take(&mut m.summary);
    let gate: Parsed<serde_json::Value> = match m.get(GATE_RECORD) {
        None => Parsed::default(),
        Some(b) => match serde_json::from_slice(b) {
            Ok(v) => Parsed {
                state: InputState::Present,
                value: Some(v),
            },
            Err(_) => Parsed {
                state: InputState::Unreadable,
                value: None,
            },
        },
    };

    let plan = plan_facts(src, manifest.value.as_ref(), summary.value.as_ref());
    let kind = plan_kind(manifest.value.as_ref(), gate.value.as_ref());
    let requested_by = manifest
        .value
        .as_ref()
        .and_then(|mf| mf.plan.requested_by.as_ref())
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);

    let (governance, approvals) = governance(
        src,
        ctx,
        &m,
        gate.value.as_ref(),
        kind,
        plan.rank,
        requested_by.as_deref(),
        plan.plan_digest.as_ref(),
    )?;

    // Sorted by member: the map's order.
    let artifacts: Vec<ArtifactPointer> =
        m.digests.iter().map(|(n, d)| pointer(ctx, n, d)).collect();

    let gating = GatingInputs {
        index: IndexInput {
            state: src.index_state,
            verified: src.verified() && src.report.is_valid(),
            problems: {
                let mut p: Vec<String> = src
                    .report
                    .problems
                    .iter()
                    .map(|p| p.kind.as_str().to_string())
                    .collect();
                p.sort();
                p.dedup();
                p
            },
            missing: src
                .index
                .as_ref()
                .map(|i| i.missing.clone())
                .unwrap_or_default(),
            staging: src.in_staging(),
        },
        manifest: manifest.state,
        run_status_file: src.status_state,
        run_status: src.status.as_ref().map(|s| s.status),
        index_status: src.index.as_ref().map(|i| i.status),
        summary_status: summary.value.as_ref().map(|s| s.status),
        channel: manifest.value.as_ref().map(|mf| mf.channel),
        runner_confined: manifest.value.as_ref().map(|mf| mf.host.runner_confined()),
        runner_no_new_privs: manifest
            .value
            .as_ref()
            .map(|mf| mf.host.runner_no_new_privs),
        runner_seccomp_mode: manifest
            .value
            .as_ref()
            .map(|mf| mf.host.runner_seccomp_mode),
        preflight: preflight_input(&preflight, summary.value.as_ref()),
        repaired: src.index.as_ref().map(|i| i.repaired),
        missing_artifacts: RESULT_FILES
            .iter()
            .filter(|f| !m.digests.contains_key(**f))
            .map(|f| (*f).to_string())
            .collect(),
        decision_artifacts_missing: decision_missing(&m),
        plan_kind: kind,
        approvals,
        signature: attestation.signature,
        anchor: attestation.anchor,
        shards_incomplete: manifest.value.as_ref().map_or_else(Vec::new, |mf| {
            mf.shards
                .iter()
                .filter(|s| !s.promotable || s.status != "complete")
                .map(|s| s.k)
                .collect()
        }),
    };
    let reasons = promotability::reasons(&gating);

    let index_pointer = src
        .index_bytes
        .as_ref()
        .map(|b| pointer(ctx, INDEX_FILE, &digests_of(b)));
    Ok(PromotionPacket {
        packet_version: PACKET_VERSION,
        run_id: src.run_id(),
        plan,
        bundle: PacketBundle {
            pointer: ctx.bundle_pointer.clone(),
            pointer_base: ctx.base,
            run_id: src.run_id(),
            artifact_index: index_pointer,
            status: src
                .status
                .as_ref()
                .map(|s| s.status)
                .or_else(|| src.index.as_ref().map(|i| i.status)),
            repaired: src.index.as_ref().map(|i| i.repaired),
            tool_version: src.index.as_ref().and_then(|i| i.tool_version.clone()),
            verified: gating.index.verified,
        },
        artifacts,
        summary: packet_summary(summary.value.as_ref(), tasks, kind),
        governance,
        audit_head: None,
        emitted_by: EmittedBy {
            name: "nexusmon".into(),
            version: crate::VERSION.into(),
        },
        promotability: Promotability {
            promotable: reasons.is_empty(),
            reasons,
            gating_inputs: gating,
        },
    })
}

fn plan_facts(
    src: &BundleSource,
    manifest: Option<&ManifestFacts>,
    summary: Option<&Summary>,
) -> PacketPlan {
    fn from_plan<T: DeserializeOwned>(v: Option<&serde_json::Value>) -> Option<T> {
        v.cloned().and_then(|v| serde_json::from_value(v).ok())
    }
    PacketPlan {
        plan_id: manifest
            .map(|mf| mf.plan_id.clone())
            .or_else(|| summary.map(|s| s.plan_id.clone())),
        kind: from_plan(manifest.and_then(|mf| mf.plan.kind.as_ref())),
        plan_digest: manifest
            .map(|mf| mf.plan_digest.clone())
            .or_else(|| summary.map(|s| s.plan_digest.clone()))
            .or_else(|| src.index.as_ref().and_then(|i| i.plan_digest.clone())),
        rank: from_plan(manifest.and_then(|mf| mf.plan.rank.as_ref())),
        inputs_digest: manifest.and_then(|mf| mf.inputs_digest.clone()),
        plan_path: manifest.map(|mf| mf.plan_path.clone()),
    }
}

/// The plan's kind: the manifest's plan and the gate record; either saying `mission` makes
/// it a mission (the stricter reading).
fn plan_kind(
    manifest: Option<&ManifestFacts>,
    gate: Option<&serde_json::Value>,
) -> Option<PlanKind> {
    let from_manifest: Option<PlanKind> = manifest
        .and_then(|mf| mf.plan.kind.as_ref())
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok());
    let from_gate: Option<PlanKind> = gate
        .and_then(|g| g.pointer("/decision/kind"))
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok());
    match (from_manifest, from_gate) {
        (Some(PlanKind::Mission), _) | (_, Some(PlanKind::Mission)) => Some(PlanKind::Mission),
        (Some(k), _) | (None, Some(k)) => Some(k),
        (None, None) => None,
    }
}

fn preflight_input(p: &Parsed<ApplyPreflight>, summary: Option<&Summary>) -> PreflightInput {
    let mut apply_failed: BTreeSet<String> = BTreeSet::new();
    let mut partial: BTreeSet<String> = BTreeSet::new();
    let mut dropped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut profiles = 0;
    if let Some(pf) = &p.value {
        profiles = pf.profiles.len() as u64;
        for r in &pf.profiles {
            if !r.apply_ok {
                apply_failed.insert(r.profile.clone());
            }
            if r.ruleset_status == Some(RulesetStatus::PartiallyEnforced)
                || !r.dropped_rights.is_empty()
            {
                partial.insert(r.profile.clone());
            }
            if !r.dropped_rights.is_empty() {
                let mut items: Vec<String> =
                    r.dropped_rights.iter().map(|d| d.item.clone()).collect();
                items.sort();
                dropped.insert(r.profile.clone(), items);
            }
        }
    }
    if let Some(s) = summary {
        apply_failed.extend(s.apply_failed_profiles.iter().cloned());
        partial.extend(s.partially_enforced_profiles.iter().cloned());
    }
    PreflightInput {
        state: p.state,
        profiles,
        apply_failed: apply_failed.into_iter().collect(),
        partially_enforced: partial.into_iter().collect(),
        dropped_rights: dropped,
    }
}

/// Scan every JSON Lines result file of `src` once, a line at a time (memory: one line and
/// the shared values per file) into `m`: the digests for its pointer and whether every
/// line parsed; from the normalized rows, the task counts (`None` unless every row parsed).
/// The files are independent, so they are read in parallel (outcomes are taken in file
/// order, so the first error is the one a sequential read would give).
fn scan_line_files(src: &BundleSource, m: &mut Members) -> Result<Option<TaskCounts>> {
    type Scanned = Option<Result<Option<(lines::Digests, Result<u64>)>>>;
    let shared = src.shared_values()?.unwrap_or_default();
    let mut t = TaskCounts::default();
    let [
        mut runtime,
        mut baseline,
        mut oracle,
        mut witnesses,
        mut rows,
    ]: [Scanned; 5] = Default::default();
    rayon::scope(|s| {
        let shared = &shared;
        s.spawn(|_| {
            runtime = Some(src.scan_lines::<Observation>(RUNTIME_RESULTS, shared, &mut |_| Ok(())));
        });
        s.spawn(|_| {
            baseline =
                Some(src.scan_lines::<Observation>(BASELINE_RESULTS, shared, &mut |_| Ok(())));
        });
        s.spawn(|_| {
            oracle = Some(src.scan_lines::<OracleVerdict>(ORACLE_RESULTS, shared, &mut |_| Ok(())));
        });
        s.spawn(|_| {
            witnesses =
                Some(src.scan_lines::<PathWitness>(PATH_WITNESSES, shared, &mut |_| Ok(())));
        });
        s.spawn(|_| {
            rows = Some(
                src.scan_lines::<NormalizedRow>(NORMALIZED_ROWS, shared, &mut |r| {
                    t.total += 1;
                    let skipped = r
                        .scenario
                        .as_ref()
                        .is_some_and(|c| c.outcome == Outcome::Skipped);
                    if skipped {
                        t.skipped += 1;
                    } else if !r.mismatches.is_empty() {
                        t.failed += 1;
                    }
                    Ok(())
                }),
            );
        });
    });
    let mut rows_ok = false;
    for (rel, got) in [
        (RUNTIME_RESULTS, runtime),
        (BASELINE_RESULTS, baseline),
        (ORACLE_RESULTS, oracle),
        (PATH_WITNESSES, witnesses),
        (NORMALIZED_ROWS, rows),
    ] {
        if let Some((d, outcome)) = got.unwrap_or(Ok(None))? {
            let ok = outcome.is_ok();
            m.digests.insert(rel.to_string(), d);
            m.parsed.insert(rel.to_string(), ok);
            if rel == NORMALIZED_ROWS {
                rows_ok = ok;
            }
        }
    }
    Ok(rows_ok.then_some(t))
}

/// Decision-stage artifacts absent or not parseable as what the runner writes.
fn decision_missing(m: &Members) -> Vec<String> {
    DECISION_ARTIFACTS
        .iter()
        .filter(|n| !m.parsed.get(**n).copied().unwrap_or(false))
        .map(|n| (*n).to_string())
        .collect()
}

fn packet_summary(
    s: Option<&Summary>,
    rows: Option<TaskCounts>,
    kind: Option<PlanKind>,
) -> PacketSummary {
    let tasks = match kind {
        Some(PlanKind::Mission) => rows,
        _ => None,
    };
    let Some(s) = s else {
        return PacketSummary {
            tasks,
            ..PacketSummary::default()
        };
    };
    let mut flaky = s.flaky.clone();
    flaky.sort();
    let mut flags = s.governance_flags.clone();
    flags.sort();
    PacketSummary {
        status: Some(s.status),
        exit_code: Some(s.exit_code),
        exit_reason: Some(s.exit_reason.clone()),
        scenarios: Some(s.scenarios),
        outcomes: s.outcomes.clone(),
        oracle: s.oracle.clone(),
        attribution: s.attribution.clone(),
        mismatch_counts: s.mismatches.clone(),
        mismatches_total: s.mismatches.values().sum(),
        flaky,
        leaked: (s.leaked.len() + s.unattributed_leaks.len()) as u64,
        truncated: s.truncated.len() as u64,
        governance_flags: flags,
        tasks,
    }
}

/// Approvals a rank requires (a mission without a rank counts as S, as the gate does).
fn rank_requires(rank: Option<Rank>) -> u32 {
    match rank {
        Some(Rank::A) => 1,
        Some(Rank::S) | None => 2,
        Some(_) => 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn governance(
    src: &BundleSource,
    ctx: &PointerContext,
    m: &Members,
    gate: Option<&serde_json::Value>,
    kind: Option<PlanKind>,
    plan_rank: Option<Rank>,
    requested_by: Option<&str>,
    plan_digest: Option<&Digest>,
) -> Result<(Option<GovernanceSlot>, Option<ApprovalInput>)> {
    let anchored: Option<AuditHead> = src.index.as_ref().and_then(|i| i.audit_head.clone());
    let Some((gate, gate_bytes)) = gate.zip(m.get(GATE_RECORD)) else {
        let approvals = (kind != Some(PlanKind::Experiment)).then(|| ApprovalInput {
            gate_record: false,
            required: None,
            carried: 0,
            requested_by: requested_by.map(str::to_string),
        });
        return Ok((None, approvals));
    };
    let str_at = |p: &str| gate.pointer(p).and_then(|v| v.as_str()).map(str::to_string);
    let strings_at = |p: &str| -> Vec<String> {
        let mut v: Vec<String> = gate
            .pointer(p)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if p != "/decision/reasons" {
            v.sort();
        }
        v
    };
    let u32_at = |p: &str| {
        gate.pointer(p)
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    let gate_kind: Option<PlanKind> = gate
        .pointer("/decision/kind")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok());
    let gate_rank: Option<Rank> = gate
        .pointer("/decision/rank")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok());
    let rank = plan_rank.or(gate_rank);

    let mut approvals: Vec<PacketApproval> = gate
        .pointer("/approvals/valid")
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .map(|v| check_approval(src, ctx, v, plan_digest))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    approvals.sort();

    // Count approvals that check out: distinct approvers and keys; at rank S, not the
    // requester (as the gate counts them).
    let mut approvers = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for a in approvals.iter().filter(|a| a.verified) {
        if rank == Some(Rank::S) && requested_by == Some(a.approver.as_str()) {
            continue;
        }
        if keys.contains(&a.key_fingerprint) {
            continue;
        }
        if approvers.insert(a.approver.clone()) {
            keys.insert(a.key_fingerprint.clone());
        }
    }
    let band = str_at("/decision/composite/band");
    let mission = kind != Some(PlanKind::Experiment);
    let required = u32_at("/decision/required_approvals").map(|g| {
        let by_rank = if mission { rank_requires(rank) } else { 0 };
        let by_band = u32::from(mission && band.as_deref() == Some("BORDERLINE"));
        g.max(by_rank).max(by_band)
    });
    let approval_input = mission.then(|| ApprovalInput {
        gate_record: true,
        required,
        carried: u32::try_from(approvers.len()).unwrap_or(u32::MAX),
        requested_by: requested_by.map(str::to_string),
    });
    let slot = GovernanceSlot {
        gate_record: pointer(ctx, GATE_RECORD, &digests_of(gate_bytes)),
        kind: gate_kind,
        rank: gate_rank,
        outcome: str_at("/decision/outcome"),
        composite: u32_at("/decision/composite/score").and_then(|n| u8::try_from(n).ok()),
        band,
        flags: strings_at("/decision/flags"),
        reasons: strings_at("/decision/reasons"),
        required_approvals: u32_at("/decision/required_approvals"),
        valid_approvals: u32_at("/decision/valid_approvals"),
        approvers: strings_at("/decision/approvers"),
        approvals,
        evaluated_at: str_at("/evaluated_at"),
        audit_head: anchored,
    };
    Ok((Some(slot), approval_input))
}

/// One approval the gate counted, checked against its copies in the bundle.
fn check_approval(
    src: &BundleSource,
    ctx: &PointerContext,
    v: &serde_json::Value,
    plan_digest: Option<&Digest>,
) -> Result<PacketApproval> {
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (approver, fingerprint) = (s("approver"), s("key_fingerprint"));
    let (record_rel, sig_rel, record_blake3) =
        (s("record_path"), s("sig_path"), s("record_blake3"));
    let mut out = PacketApproval {
        approver: approver.clone(),
        key_fingerprint: fingerprint.clone(),
        record: None,
        signature: None,
        verified: false,
        problem: None,
    };
    let in_bundle = |rel: &str| rel.starts_with("governance/") && unsafe_reason(rel).is_none();
    let record = if in_bundle(&record_rel) {
        src.read(&record_rel)?
    } else {
        None
    };
    let sig = if in_bundle(&sig_rel) {
        src.read(&sig_rel)?
    } else {
        None
    };
    out.record = record
        .as_ref()
        .map(|b| pointer(ctx, &record_rel, &digests_of(b)));
    out.signature = sig.as_ref().map(|b| pointer(ctx, &sig_rel, &digests_of(b)));
    let problem = match (record, sig) {
        (None, _) => Some(format!("the record `{record_rel}` is not in the bundle")),
        (_, None) => Some(format!("the signature `{sig_rel}` is not in the bundle")),
        (Some(record), Some(sig)) => verify_copy(
            &record,
            &sig,
            &record_blake3,
            &approver,
            &fingerprint,
            plan_digest,
        )
        .err(),
    };
    out.verified = problem.is_none();
    out.problem = problem;
    Ok(out)
}

fn verify_copy(
    record: &[u8],
    sig: &[u8],
    record_blake3: &str,
    approver: &str,
    fingerprint: &str,
    plan_digest: Option<&Digest>,
) -> std::result::Result<(), String> {
    if digest::blake3_hex(record) != record_blake3 {
        return Err("the record's bytes are not the ones the gate verified".into());
    }
    let sig = sign::dearmor(sig)
        .map_err(|e| format!("the signature is not an armored SSH signature: {e}"))?;
    if sig.namespace() != SIGNATURE_NAMESPACE {
        return Err(format!(
            "the signature's namespace is `{}`",
            sig.namespace()
        ));
    }
    let key = PublicKey::from(sig.public_key().clone());
    sign::check_key_strength(key.key_data()).map_err(|e| format!("weak-key: {e}"))?;
    let fp = sign::fingerprint(&key);
    if fp != fingerprint {
        return Err(format!(
            "signed by {fp}, not by the recorded key {fingerprint}"
        ));
    }
    key.verify(SIGNATURE_NAMESPACE, record, &sig)
        .map_err(|e| format!("the signature does not verify over the record: {e}"))?;
    let rec: ApprovalRecord = serde_json::from_slice(record)
        .map_err(|e| format!("the record is not an approval record: {e}"))?;
    if rec.decision != Decision::Approve {
        return Err("the record does not approve".into());
    }
    if rec.scope != crate::model::approval::RUN_SCOPE {
        return Err(format!("the record's scope is `{}`, not `run`", rec.scope));
    }
    if rec.approver != approver {
        return Err(format!(
            "the record names `{}`, not `{approver}`",
            rec.approver
        ));
    }
    match plan_digest {
        Some(d) if d.blake3 == rec.plan_digest.blake3 => Ok(()),
        Some(_) => Err("the record approves another plan digest".into()),
        None => Err("the bundle's plan digest is unknown".into()),
    }
}
