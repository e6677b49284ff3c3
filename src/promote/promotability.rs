//! Promotability: which reasons hold, as a pure function of the inputs consulted
//! ([`GatingInputs`]).
//!
//! Every reason holds **unless the bundle gives positive evidence against it**; an input
//! that is missing, unreadable or unknown is never evidence. So removing or breaking any
//! input can only add reasons (the monotonic principle of in-toto: ignoring a field never
//! turns deny into allow), and the default is "not promotable".
//!
//! | reason | cleared only by |
//! |---|---|
//! | `manifest-missing` | a readable `run_manifest.json` |
//! | `run-status-missing` | a readable `run_status.json` |
//! | `bundle-in-progress` | an index, outside `.staging/`, and neither status `in_progress` |
//! | `not-clean-channel` | the manifest's channel `clean` |
//! | `apply-preflight-missing` | a readable `apply_preflight.json` |
//! | `already-sandboxed` | manifest host facts: runner without a seccomp filter (no-new-privs alone is recorded, not counted: both lanes set it on every child) |
//! | `apply-failed` | a readable preflight where every profile applied (and `summary.json` lists no apply failure) |
//! | `apply-partial` | a readable preflight with no partial enforcement and no dropped rights (nor in `summary.json`) |
//! | `bundle-integrity-unverified` | the strict check finding no problem |
//! | `bundle-failed` | a known status that is not `failed` (and `summary.json` not `failed`) |
//! | `bundle-incomplete` | a readable index with an empty `missing` list, and every expected result file present |
//! | `bundle-repaired` | a readable index that does not say `repaired` |
//! | `decision-stage-artifacts-missing` | every decision-stage artifact present and readable |
//! | `approval-missing` | a known experiment, or a mission whose bundle carries a governance record and at least the required approvals, each checking out |
//! | `bundle-interrupted` | no status (`run_status.json`, index, `summary.json`) saying `interrupted` |
//! | `bundle-unsigned` | a trust policy that does not require signed bundles, or a signature it verifies |
//! | `bundle-signature-invalid` | no signature, or one that verifies (over the index, the DSSE envelope with it, by a key the trust file lists as a `runner`) |
//! | `index-not-anchored` | no state directory (nothing to compare with), or an audit log whose chain verifies and whose `run-sealed` entry for the run names this index digest |
//! | `shard-incomplete` | a bundle that is not a merge of shards, or a merge whose manifest records every shard `complete` and promotable |
//!
//! The last two rows are the exception to "unknown counts against": without a trust file
//! or a state directory nothing can be compared, and an ungoverned project's packets stay
//! promotable. That is the documented limit of unsigned bundles without a state directory.

use crate::model::index::BundleStatus;
use crate::model::packet::{AnchorState, GatingInputs, InputState, Reason, SignatureState};
use crate::model::plan::PlanKind;
use crate::model::results::{ChannelKind, RunStatus};

/// The decision-stage artifacts (`decision-stage-artifacts-missing`).
pub const DECISION_ARTIFACTS: [&str; 7] = [
    "baseline_results.jsonl",
    "expected_matrix.json",
    "mismatch_packets.jsonl",
    "mismatch_summary.json",
    "oracle_results.jsonl",
    "runtime_events.normalized.jsonl",
    "runtime_results.jsonl",
];

/// The reasons that hold for `g`, sorted by name.
pub fn reasons(g: &GatingInputs) -> Vec<Reason> {
    let present = |s: InputState| s == InputState::Present;
    let status = g.run_status.or(g.index_status);
    let preflight_ok = present(g.preflight.state);
    let mut out: Vec<Reason> = Vec::new();
    let mut add = |cond: bool, r: Reason| {
        if cond {
            out.push(r);
        }
    };
    add(!present(g.manifest), Reason::ManifestMissing);
    add(!present(g.run_status_file), Reason::RunStatusMissing);
    add(
        g.index.staging
            || !present(g.index.state)
            || g.run_status == Some(BundleStatus::InProgress)
            || g.index_status == Some(BundleStatus::InProgress),
        Reason::BundleInProgress,
    );
    add(
        g.channel != Some(ChannelKind::Clean),
        Reason::NotCleanChannel,
    );
    add(!preflight_ok, Reason::ApplyPreflightMissing);
    add(g.runner_confined != Some(false), Reason::AlreadySandboxed);
    add(
        !preflight_ok || !g.preflight.apply_failed.is_empty(),
        Reason::ApplyFailed,
    );
    add(
        !preflight_ok
            || !g.preflight.partially_enforced.is_empty()
            || !g.preflight.dropped_rights.is_empty(),
        Reason::ApplyPartial,
    );
    add(!g.index.verified, Reason::BundleIntegrityUnverified);
    add(
        status.is_none_or(|s| s == BundleStatus::Failed)
            || g.index_status == Some(BundleStatus::Failed)
            || g.summary_status == Some(RunStatus::Failed),
        Reason::BundleFailed,
    );
    add(
        !present(g.index.state) || !g.index.missing.is_empty() || !g.missing_artifacts.is_empty(),
        Reason::BundleIncomplete,
    );
    add(g.repaired != Some(false), Reason::BundleRepaired);
    add(
        !g.decision_artifacts_missing.is_empty(),
        Reason::DecisionStageArtifactsMissing,
    );
    let approvals_proven = match g.plan_kind {
        Some(PlanKind::Experiment) => true,
        _ => g
            .approvals
            .as_ref()
            .is_some_and(|a| a.gate_record && a.required.is_some_and(|r| a.carried >= r)),
    };
    add(!approvals_proven, Reason::ApprovalMissing);
    add(
        g.run_status == Some(BundleStatus::Interrupted)
            || g.index_status == Some(BundleStatus::Interrupted)
            || g.summary_status == Some(RunStatus::Interrupted),
        Reason::BundleInterrupted,
    );
    add(
        g.signature.required && g.signature.state != SignatureState::Verified,
        Reason::BundleUnsigned,
    );
    add(
        g.signature.state == SignatureState::Invalid,
        Reason::BundleSignatureInvalid,
    );
    add(
        g.anchor.state == AnchorState::NotAnchored,
        Reason::IndexNotAnchored,
    );
    add(!g.shards_incomplete.is_empty(), Reason::ShardIncomplete);
    out.sort_by_key(|r| r.as_str());
    out
}

/// One sentence explaining why `reason` holds for `g`.
pub fn explain(reason: Reason, g: &GatingInputs) -> String {
    let state = |s: InputState| match s {
        InputState::Present => "present",
        InputState::Missing => "missing",
        InputState::Unreadable => "unreadable",
    };
    let list = |v: &[String]| {
        if v.is_empty() {
            "unknown".to_string()
        } else {
            v.join(", ")
        }
    };
    match reason {
        Reason::ManifestMissing => format!("run_manifest.json is {}", state(g.manifest)),
        Reason::RunStatusMissing => format!("run_status.json is {}", state(g.run_status_file)),
        Reason::BundleInProgress => {
            if g.index.staging {
                "the bundle is a staging directory: its run never sealed".into()
            } else if g.index.state == InputState::Present {
                "the run's status is in_progress".into()
            } else {
                format!(
                    "artifact_index.json (the seal) is {}: the bundle is uncommitted",
                    state(g.index.state)
                )
            }
        }
        Reason::NotCleanChannel => match g.channel {
            Some(c) => format!(
                "the run used the `{}` channel; only `clean` runs promote",
                c.as_str()
            ),
            None => "the run's channel is unknown; only `clean` runs promote".into(),
        },
        Reason::ApplyPreflightMissing => {
            format!("apply_preflight.json is {}", state(g.preflight.state))
        }
        Reason::AlreadySandboxed => match (g.runner_no_new_privs, g.runner_seccomp_mode) {
            (Some(nnp), Some(mode)) => format!(
                "the runner itself was confined (seccomp mode {mode}, no-new-privs {nnp}): results may not reflect the profile alone"
            ),
            _ => "whether the runner itself was confined is unknown (no host facts)".into(),
        },
        Reason::ApplyFailed => {
            if g.preflight.state == InputState::Present {
                format!(
                    "profiles failed to apply: {}",
                    list(&g.preflight.apply_failed)
                )
            } else {
                "whether every profile applied is unknown (no readable preflight)".into()
            }
        }
        Reason::ApplyPartial => {
            if g.preflight.state == InputState::Present {
                format!(
                    "profiles only partially enforced (best-effort downgrade): {}",
                    list(&g.preflight.partially_enforced)
                )
            } else {
                "whether every profile was fully enforced is unknown (no readable preflight)".into()
            }
        }
        Reason::BundleIntegrityUnverified => {
            format!("the strict check found: {}", list(&g.index.problems))
        }
        Reason::BundleFailed => match g.run_status.or(g.index_status) {
            Some(BundleStatus::Failed) => "the run failed (bundle sealed as failed)".into(),
            None => "the run's status is unknown".into(),
            Some(_) => "summary.json says the run failed".into(),
        },
        Reason::BundleIncomplete => {
            let mut missing = g.index.missing.clone();
            missing.extend(g.missing_artifacts.iter().cloned());
            missing.sort();
            missing.dedup();
            if g.index.state == InputState::Present {
                format!(
                    "files the run meant to write are missing: {}",
                    list(&missing)
                )
            } else {
                "no readable index says what the bundle holds".into()
            }
        }
        Reason::BundleRepaired => match g.repaired {
            Some(true) => {
                "the index was rewritten by `reindex-bundle --repair` (see repair_log.json)".into()
            }
            _ => "no readable index says the bundle was never repaired".into(),
        },
        Reason::DecisionStageArtifactsMissing => format!(
            "decision-stage artifacts missing or unreadable: {}",
            list(&g.decision_artifacts_missing)
        ),
        Reason::ShardIncomplete => format!(
            "merged from shards of which these were failed, interrupted or not promotable: {}",
            g.shards_incomplete
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Reason::BundleInterrupted => {
            "the run was interrupted by a signal: the bundle holds only what was observed until then".into()
        }
        Reason::BundleUnsigned => match g.signature.state {
            SignatureState::Invalid => {
                "the trust policy requires signed bundles and the signature does not verify".into()
            }
            _ => "the trust policy requires signed bundles (require-signed-bundles) and the bundle has no artifact_index.sig".into(),
        },
        Reason::BundleSignatureInvalid => format!(
            "the bundle's signature does not verify: {}",
            g.signature.problem.as_deref().unwrap_or("unknown")
        ),
        Reason::IndexNotAnchored => format!(
            "the index is not the one the audit log sealed: {}",
            g.anchor.problem.as_deref().unwrap_or("unknown")
        ),
        Reason::ApprovalMissing => match (&g.approvals, g.plan_kind) {
            (None, None) => {
                "the plan's kind is unknown, so its approvals cannot be established".into()
            }
            (None, _) => "a mission bundle without approval facts".into(),
            (Some(a), _) if !a.gate_record => {
                "a mission bundle without a governance record (governance/gate.json)".into()
            }
            (Some(a), _) => match a.required {
                Some(r) => format!(
                    "the bundle carries {} approval(s) that check out; {r} required",
                    a.carried
                ),
                None => "the number of approvals required is unknown".into(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::packet::{
        AnchorInput, ApprovalInput, IndexInput, PreflightInput, SignatureInput,
    };

    fn clean() -> GatingInputs {
        GatingInputs {
            index: IndexInput {
                state: InputState::Present,
                verified: true,
                problems: vec![],
                missing: vec![],
                staging: false,
            },
            manifest: InputState::Present,
            run_status_file: InputState::Present,
            run_status: Some(BundleStatus::Complete),
            index_status: Some(BundleStatus::Complete),
            summary_status: Some(RunStatus::Ok),
            channel: Some(ChannelKind::Clean),
            runner_confined: Some(false),
            runner_no_new_privs: Some(false),
            runner_seccomp_mode: Some(0),
            preflight: PreflightInput {
                state: InputState::Present,
                profiles: 1,
                apply_failed: vec![],
                partially_enforced: vec![],
                dropped_rights: std::collections::BTreeMap::new(),
            },
            repaired: Some(false),
            missing_artifacts: vec![],
            decision_artifacts_missing: vec![],
            plan_kind: Some(PlanKind::Experiment),
            approvals: None,
            signature: SignatureInput {
                state: SignatureState::Verified,
                required: true,
                signer: Some("SHA256:x".into()),
                problem: None,
            },
            anchor: AnchorInput {
                state: AnchorState::Anchored,
                sealed_seq: Some(3),
                problem: None,
            },
            shards_incomplete: Vec::new(),
        }
    }

    type Change = fn(&mut GatingInputs);

    /// Every way of taking evidence away from an input.
    fn degradations() -> Vec<(&'static str, Change)> {
        vec![
            ("index missing", |g| g.index.state = InputState::Missing),
            ("index unverified", |g| g.index.verified = false),
            ("staging", |g| g.index.staging = true),
            ("index missing list", |g| g.index.missing = vec!["x".into()]),
            ("manifest missing", |g| g.manifest = InputState::Missing),
            ("manifest unreadable", |g| {
                g.manifest = InputState::Unreadable;
            }),
            ("status file missing", |g| {
                g.run_status_file = InputState::Missing;
            }),
            ("status file missing, index says complete", |g| {
                g.run_status_file = InputState::Missing;
                g.run_status = None;
            }),
            ("both statuses unknown", |g| {
                g.run_status = None;
                g.index_status = None;
            }),
            ("in progress", |g| {
                g.run_status = Some(BundleStatus::InProgress);
            }),
            ("interrupted", |g| {
                g.run_status = Some(BundleStatus::Interrupted);
            }),
            ("index interrupted", |g| {
                g.index_status = Some(BundleStatus::Interrupted);
            }),
            ("summary interrupted", |g| {
                g.summary_status = Some(RunStatus::Interrupted);
            }),
            ("failed", |g| g.index_status = Some(BundleStatus::Failed)),
            ("summary failed", |g| {
                g.summary_status = Some(RunStatus::Failed);
            }),
            ("channel unknown", |g| g.channel = None),
            ("channel direct", |g| g.channel = Some(ChannelKind::Direct)),
            ("confinement unknown", |g| g.runner_confined = None),
            ("confined", |g| g.runner_confined = Some(true)),
            ("preflight missing", |g| {
                g.preflight.state = InputState::Missing;
            }),
            ("apply failed", |g| {
                g.preflight.apply_failed = vec!["p".into()];
            }),
            ("partial", |g| {
                g.preflight.partially_enforced = vec!["p".into()];
            }),
            ("repaired unknown", |g| g.repaired = None),
            ("repaired", |g| g.repaired = Some(true)),
            ("artifact missing", |g| {
                g.missing_artifacts = vec!["summary.md".into()];
            }),
            ("decision missing", |g| {
                g.decision_artifacts_missing = vec!["oracle_results.jsonl".into()];
            }),
            ("kind unknown", |g| g.plan_kind = None),
            ("a shard incomplete", |g| g.shards_incomplete = vec![2]),
            ("mission without facts", |g| {
                g.plan_kind = Some(PlanKind::Mission);
            }),
            ("unsigned", |g| g.signature.state = SignatureState::Unsigned),
            ("signature unchecked", |g| {
                g.signature.state = SignatureState::Unchecked;
            }),
            ("signed by an unknown key", |g| {
                g.signature.state = SignatureState::Signed;
            }),
            ("signature invalid", |g| {
                g.signature.state = SignatureState::Invalid;
            }),
            ("not anchored", |g| {
                g.anchor.state = AnchorState::NotAnchored;
            }),
        ]
    }

    #[test]
    fn a_clean_input_set_is_promotable_and_every_degradation_adds_a_reason() {
        assert!(reasons(&clean()).is_empty());
        for (what, degrade) in degradations() {
            let mut g = clean();
            degrade(&mut g);
            assert!(!reasons(&g).is_empty(), "{what} left the packet promotable");
        }
    }

    /// Each input with its value when it is positive evidence and when it is unknown.
    fn inputs() -> Vec<(&'static str, Change, Change)> {
        vec![
            (
                "index",
                |g| g.index.state = InputState::Present,
                |g| g.index.state = InputState::Missing,
            ),
            (
                "check",
                |g| g.index.verified = true,
                |g| g.index.verified = false,
            ),
            (
                "manifest",
                |g| g.manifest = InputState::Present,
                |g| g.manifest = InputState::Unreadable,
            ),
            (
                "status file",
                |g| g.run_status_file = InputState::Present,
                |g| g.run_status_file = InputState::Missing,
            ),
            (
                "status",
                |g| g.run_status = Some(BundleStatus::Complete),
                |g| g.run_status = None,
            ),
            (
                "index status",
                |g| g.index_status = Some(BundleStatus::Complete),
                |g| g.index_status = None,
            ),
            (
                "summary status",
                |g| g.summary_status = Some(RunStatus::Ok),
                |g| g.summary_status = None,
            ),
            (
                "channel",
                |g| g.channel = Some(ChannelKind::Clean),
                |g| g.channel = None,
            ),
            (
                "confinement",
                |g| g.runner_confined = Some(false),
                |g| g.runner_confined = None,
            ),
            (
                "preflight",
                |g| g.preflight.state = InputState::Present,
                |g| g.preflight.state = InputState::Missing,
            ),
            (
                "repaired",
                |g| g.repaired = Some(false),
                |g| g.repaired = None,
            ),
            (
                "kind",
                |g| g.plan_kind = Some(PlanKind::Experiment),
                |g| g.plan_kind = None,
            ),
            (
                "signature",
                |g| g.signature.state = SignatureState::Verified,
                |g| g.signature.state = SignatureState::Unchecked,
            ),
            (
                "approvals",
                |g| {
                    g.approvals = Some(ApprovalInput {
                        gate_record: true,
                        required: Some(1),
                        carried: 1,
                        requested_by: None,
                    });
                },
                |g| g.approvals = None,
            ),
        ]
    }

    #[test]
    fn an_unknown_input_never_gives_fewer_reasons_than_positive_evidence() {
        // The monotonic principle, checked from many states: the clean one, each single
        // degradation, and all of them at once; missions and experiments alike.
        let mut bases = vec![clean()];
        for (_, d) in degradations() {
            let mut g = clean();
            d(&mut g);
            bases.push(g);
        }
        let mut worst = clean();
        for (_, d) in degradations() {
            d(&mut worst);
        }
        bases.push(worst);
        let missions: Vec<GatingInputs> = bases
            .iter()
            .cloned()
            .map(|mut g| {
                g.plan_kind = Some(PlanKind::Mission);
                g
            })
            .collect();
        bases.extend(missions);
        for base in &bases {
            for (what, known, unknown) in inputs() {
                let (mut k, mut u) = (base.clone(), base.clone());
                known(&mut k);
                unknown(&mut u);
                let (rk, ru) = (reasons(&k), reasons(&u));
                for r in &rk {
                    assert!(ru.contains(r), "unknown {what} dropped {r} (from {base:?})");
                }
            }
        }
    }

    #[test]
    fn missions_need_their_approvals_proven() {
        let mut g = clean();
        g.plan_kind = Some(PlanKind::Mission);
        g.approvals = Some(ApprovalInput {
            gate_record: true,
            required: Some(0),
            carried: 0,
            requested_by: None,
        });
        assert!(reasons(&g).is_empty());
        g.approvals.as_mut().unwrap().required = Some(2);
        g.approvals.as_mut().unwrap().carried = 1;
        assert_eq!(reasons(&g), vec![Reason::ApprovalMissing]);
        g.approvals.as_mut().unwrap().carried = 2;
        assert!(reasons(&g).is_empty());
        g.approvals.as_mut().unwrap().required = None;
        assert_eq!(reasons(&g), vec![Reason::ApprovalMissing]);
        g.approvals.as_mut().unwrap().required = Some(0);
        g.approvals.as_mut().unwrap().gate_record = false;
        assert_eq!(reasons(&g), vec![Reason::ApprovalMissing]);
    }

    #[test]
    fn reasons_are_sorted_by_name_and_every_one_is_explained() {
        let mut g = clean();
        for (_, d) in degradations() {
            d(&mut g);
        }
        let r = reasons(&g);
        assert_eq!(r.len(), Reason::ALL.len(), "{r:?}");
        let names: Vec<&str> = r.iter().map(|x| x.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for x in r {
            assert!(!explain(x, &g).is_empty());
        }
    }
}
