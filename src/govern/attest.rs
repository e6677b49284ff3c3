//! Bundles against the trust file and the audit log: the checks a bundle alone cannot make.
//!
//! - **Signature** (`bundle-signature-invalid`, `bundle-unsigned`): the bundle's
//!   `artifact_index.sig` must verify over the index (and its DSSE envelope with it, which
//!   the bundle check does) with a key the trust file lists with the `runner` role, for the
//!   namespace `nexusmon-bundle-v1`, valid now. A trust file that says
//!   `# nexusmon: require-signed-bundles` makes an unsigned bundle fail too. A trust file
//!   that neither names a runner nor requires signatures (a project's approvers only) says
//!   nothing about bundle signers: a signature is then only checked against the index.
//! - **Anchor** (`index-not-anchored`): when a state directory is present, the audit log
//!   must verify (its chain and `audit_head.json`), hold a `run-sealed` entry for the run
//!   naming this index's blake3, and that entry's `anchored_head` must be the index's own
//!   `audit_head`. A re-sealed forgery (an edited file with `BLAKE3SUMS`, the index and
//!   `LATEST` rewritten to match) fails here, as does an index swapped in from another run.
//!
//! [`GovAttestor`] decides both for `validate-bundle` ([`validate`]), and is the
//! [`Attestor`] `emit-promotion`, `promote` and `evolve` pass down to promote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Governance;
use super::audit::{AuditKind, Problem, ProblemKind as AuditProblemKind};
use super::short_hex;
use super::trust::{RUNNER_ROLE, TrustStore};
use crate::bundle::signature::{self, SignatureCheck};
use crate::bundle::{self, INDEX_FILE, ProblemKind, Report, SIG_FILE};
use crate::model::attest::BUNDLE_NAMESPACE;
use crate::model::audit::AuditEntry;
use crate::model::index::{ArtifactIndex, AuditHead};
use crate::model::packet::{AnchorInput, AnchorState, SignatureInput, SignatureState};
use crate::promote::attest::{self_signature, signature_of};
use crate::promote::source::BundleSource;
use crate::promote::{Attestation, Attestor};
use crate::util::digest;
use crate::{Error, Result};

/// One `run-sealed` entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEntry {
    /// Its `seq`.
    pub seq: u64,
    /// The index digest it records.
    pub index_blake3: String,
    /// The head the index anchored, as recorded.
    pub anchored_head: Option<AuditHead>,
    /// The bundle directory, as recorded.
    pub bundle: Option<String>,
    /// The bundle directory relative to the project (the state directory's parent).
    pub bundle_rel: Option<String>,
    /// The status recorded.
    pub status: Option<String>,
}

/// Every `run-sealed` entry of a log, by run id (in log order), and whether the log's chain
/// verifies.
#[derive(Debug, Clone, Default)]
pub struct SealedRuns {
    /// Run id → its entries.
    pub runs: BTreeMap<String, Vec<SealedEntry>>,
    /// Why the log cannot be trusted (its chain or head does not verify).
    pub broken: Option<String>,
    /// The state directory's log file.
    pub log: PathBuf,
    /// The blake3 of every line, by `seq` (to tell whether a head is one of this log's).
    lines: BTreeMap<u64, [u8; 32]>,
    /// The project the log belongs to (the state directory's parent).
    pub project: Option<PathBuf>,
}

impl SealedRuns {
    /// Read the log of `gov`: verify it, then collect its `run-sealed` entries.
    pub fn read(gov: &Governance) -> Result<Self> {
        let report = gov.audit().verify(&[])?;
        let mut out = Self::scan(gov)?;
        out.broken = (!report.ok).then(|| {
            let first = report
                .problems
                .first()
                .map_or_else(String::new, |p| format!(": {}", p.message));
            format!(
                "the audit log {} does not verify{first} (run `nexusmon audit verify`)",
                report.path.display()
            )
        });
        Ok(out)
    }

    /// Collect the `run-sealed` entries of the log of `gov` without verifying it.
    pub fn scan(gov: &Governance) -> Result<Self> {
        let broken = None;
        let path = gov.audit().path().to_path_buf();
        let file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let mut runs: BTreeMap<String, Vec<SealedEntry>> = BTreeMap::new();
        let mut lines = BTreeMap::new();
        super::audit::each_line(file, &path, |line| {
            let Ok(entry) = serde_json::from_slice::<AuditEntry>(line) else {
                return;
            };
            lines.insert(entry.seq, *blake3::hash(line).as_bytes());
            if entry.kind != AuditKind::RunSealed.as_str() {
                return;
            }
            let d = &entry.data;
            let (Some(run_id), Some(index)) = (
                d.get("run_id").and_then(|v| v.as_str()),
                d.get("artifact_index_blake3").and_then(|v| v.as_str()),
            ) else {
                return;
            };
            runs.entry(run_id.to_string())
                .or_default()
                .push(SealedEntry {
                    seq: entry.seq,
                    index_blake3: index.to_string(),
                    anchored_head: d
                        .get("anchored_head")
                        .cloned()
                        .and_then(|h| serde_json::from_value(h).ok()),
                    bundle: d.get("bundle").and_then(|v| v.as_str()).map(str::to_string),
                    bundle_rel: d
                        .get("bundle_rel")
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                    status: d.get("status").and_then(|v| v.as_str()).map(str::to_string),
                });
        })?;
        Ok(Self {
            runs,
            broken,
            log: path,
            lines,
            project: gov.state().dir().parent().map(Path::to_path_buf),
        })
    }

    /// Whether the index of run `run_id` with blake3 `index_blake3` (and its `audit_head`)
    /// is the one the log sealed.
    pub fn anchor(
        &self,
        run_id: &str,
        index_blake3: &str,
        index_head: Option<&AuditHead>,
    ) -> AnchorInput {
        let not = |problem: String| AnchorInput {
            state: AnchorState::NotAnchored,
            sealed_seq: None,
            problem: Some(problem),
        };
        if let Some(b) = &self.broken {
            return not(b.clone());
        }
        let Some(entries) = self.runs.get(run_id) else {
            // Sealed under this log (its audit_head is one of the log's heads) but never
            // recorded as sealed: forged under a new run id, or its record was cut.
            let ours = index_head.is_some_and(|h| {
                self.lines
                    .get(&h.seq)
                    .is_some_and(|d| blake3::Hash::from(*d).to_hex().as_str() == h.blake3)
            });
            if ours {
                return not(format!(
                    "the index's audit_head is a head of {}, so the run was sealed under it, but the log has no run-sealed entry for run `{run_id}`: forged under a new run id, or its record was cut",
                    self.log.display()
                ));
            }
            return AnchorInput {
                state: AnchorState::Unchecked,
                sealed_seq: None,
                problem: Some(format!(
                    "the audit log {} has no record of run `{run_id}` (sealed without this state directory): nothing to compare",
                    self.log.display()
                )),
            };
        };
        let Some(e) = entries.iter().find(|e| e.index_blake3 == index_blake3) else {
            let e = &entries[entries.len() - 1];
            return not(format!(
                "the audit log sealed run `{run_id}` with index blake3 {} (seq {}), but this index is {}: it was forged or swapped after the seal",
                super::short_hex(&e.index_blake3),
                e.seq,
                super::short_hex(index_blake3)
            ));
        };
        if e.anchored_head.as_ref() != index_head {
            return not(format!(
                "the index's audit_head ({}) is not the head the log anchored when it sealed run `{run_id}` (seq {})",
                index_head.map_or("none".to_string(), |h| format!("seq {}", h.seq)),
                e.seq
            ));
        }
        AnchorInput {
            state: AnchorState::Anchored,
            sealed_seq: Some(e.seq),
            problem: None,
        }
    }
}

/// The trust file and the audit log, as consulted for bundles.
#[derive(Debug, Default)]
pub struct GovAttestor {
    trust: Option<TrustStore>,
    /// The state directory's trust file does not parse (`file:line: why`): no bundle
    /// signature can be judged, so none is trusted (fail closed) and every check says why.
    trust_broken: Option<String>,
    sealed: Option<SealedRuns>,
}

impl GovAttestor {
    /// Consult `trust` (a trust file given with `--trust`, else the state directory's) and
    /// the state directory's audit log (`state_dir`, else `.nexusmon/` found at or above
    /// `root`; none: nothing is anchored).
    pub fn open(trust: Option<&Path>, state_dir: Option<&Path>, root: &Path) -> Result<Self> {
        let dir = match state_dir {
            Some(d) => Some(d.to_path_buf()),
            None => super::state::find(root),
        };
        let gov = dir.as_deref().map(Governance::open).transpose()?;
        Self::with(trust, gov.as_ref())
    }

    /// [`GovAttestor::open`] with the state directory already open (or none).
    pub fn with(trust: Option<&Path>, gov: Option<&Governance>) -> Result<Self> {
        let mut trust_broken = None;
        let trust = match (trust, gov) {
            // A trust file named on the command line must parse (exit 2 naming the line).
            (Some(t), _) => Some(TrustStore::load(t)?),
            // A state directory without a trust file has no trust policy; one that does
            // not parse trusts nobody, and every check says the file is broken.
            (None, Some(g)) if g.state().file(super::state::TRUST_FILE).exists() => {
                match g.trust_or_broken()? {
                    Ok(t) => Some(t),
                    Err(why) => {
                        trust_broken = Some(why);
                        None
                    }
                }
            }
            (None, _) => None,
        };
        let sealed = gov.map(SealedRuns::read).transpose()?;
        Ok(Self {
            trust,
            trust_broken,
            sealed,
        })
    }

    /// The audit log's `run-sealed` entries, when there is a state directory.
    pub fn sealed_runs(&self) -> Option<&SealedRuns> {
        self.sealed.as_ref()
    }

    /// The signature facts of the bundle at `dir` whose self-check gave `own`.
    fn signature(
        &self,
        dir: &Path,
        own: SignatureInput,
        index_bytes: Option<&[u8]>,
    ) -> SignatureInput {
        if let Some(why) = &self.trust_broken {
            return SignatureInput {
                state: SignatureState::Invalid,
                problem: Some(format!(
                    "{why}: no bundle signature can be judged until it is fixed"
                )),
                ..own
            };
        }
        let Some(trust) = &self.trust else {
            return own;
        };
        let required = trust.require_signed_bundles;
        // A trust file that names no runner and requires nothing says nothing about who
        // may sign bundles (e.g. a project's approvers only).
        let names_runners = trust.entries.iter().any(|e| e.roles.contains(RUNNER_ROLE));
        if !required && !names_runners {
            return own;
        }
        let mut out = SignatureInput { required, ..own };
        if out.state != SignatureState::Signed {
            return out;
        }
        // Signed: the key must be trusted as a runner for the bundle namespace, now.
        let Some(bytes) = index_bytes else {
            return out;
        };
        let read = |rel: &str| -> Option<std::io::Result<Vec<u8>>> {
            match crate::util::fsx::read_capped(&dir.join(rel), crate::util::limits::MAX_KEY_BYTES)
            {
                Ok(b) => Some(Ok(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => Some(Err(e)),
            }
        };
        match signature::check_signature(&read, bytes, None) {
            SignatureCheck::Valid { key, fingerprint } => {
                let now = jiff::Timestamp::now();
                let entries = trust.entries_for(key.key_data());
                let ok = entries.iter().any(|e| {
                    e.roles.contains(RUNNER_ROLE)
                        && e.namespaces
                            .as_ref()
                            .is_none_or(|ns| ns.iter().any(|n| n == BUNDLE_NAMESPACE || n == "*"))
                        && e.valid_after.is_none_or(|t| now >= t)
                        && e.valid_before.is_none_or(|t| now < t)
                });
                if ok {
                    out.state = SignatureState::Verified;
                } else {
                    out.state = SignatureState::Invalid;
                    out.problem = Some(if entries.is_empty() {
                        format!(
                            "the bundle is signed by {fingerprint}, which {} does not list",
                            trust.path.display()
                        )
                    } else {
                        format!(
                            "the bundle is signed by {fingerprint}, which {} does not trust as a `{RUNNER_ROLE}` for {BUNDLE_NAMESPACE} now (add roles={RUNNER_ROLE} to its line)",
                            trust.path.display()
                        )
                    });
                }
            }
            SignatureCheck::Invalid { problem, .. } => {
                out.state = SignatureState::Invalid;
                out.problem = Some(problem);
            }
            SignatureCheck::Absent => out.state = SignatureState::Unsigned,
        }
        out
    }

    fn anchor(&self, index: Option<&ArtifactIndex>, index_bytes: Option<&[u8]>) -> AnchorInput {
        let Some(sealed) = &self.sealed else {
            return AnchorInput::default();
        };
        match (index, index_bytes) {
            (Some(i), Some(b)) => {
                sealed.anchor(&i.run_id, &digest::blake3_hex(b), i.audit_head.as_ref())
            }
            _ => AnchorInput {
                state: AnchorState::NotAnchored,
                sealed_seq: None,
                problem: Some(
                    "the bundle has no readable index to compare with the audit log".into(),
                ),
            },
        }
    }

    /// Add the trust and anchor checks to a bundle check `report` (`validate-bundle`).
    pub fn check_report(&self, report: &mut Report) {
        let dir = report.bundle.clone();
        let index_bytes = crate::util::fsx::read_capped(
            &dir.join(INDEX_FILE),
            crate::util::limits::MAX_STATE_BYTES,
        )
        .ok();
        let index: Option<ArtifactIndex> = index_bytes
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok());
        let own = signature_of(report, index.is_some(), &dir);
        if self.trust.is_some() || self.trust_broken.is_some() {
            let sig = self.signature(&dir, own, index_bytes.as_deref());
            let mut line = format!("signature: {}", sig.state.as_str());
            if let Some(s) = &sig.signer {
                line.push_str(" (");
                line.push_str(s);
                line.push(')');
            }
            if sig.required {
                line.push_str(", required by the trust file");
            }
            report.attested.push(line);
            match sig.state {
                SignatureState::Invalid => {
                    let already = report
                        .problems
                        .iter()
                        .any(|p| p.kind == ProblemKind::BundleSignatureInvalid);
                    if !already {
                        report.push(
                            ProblemKind::BundleSignatureInvalid,
                            Some(SIG_FILE),
                            sig.problem.unwrap_or_default(),
                        );
                    }
                }
                SignatureState::Unsigned | SignatureState::Unchecked if sig.required => {
                    report.push(
                        ProblemKind::BundleUnsigned,
                        Some(SIG_FILE),
                        "the trust file requires signed bundles (require-signed-bundles) and the bundle has no artifact_index.sig",
                    );
                }
                _ => {}
            }
        }
        if let (Some(sealed), Some(root)) = (&self.sealed, report.out_root.clone()) {
            let latest: Option<crate::model::index::Latest> = crate::util::fsx::read_capped(
                &root.join(crate::bundle::LATEST_FILE),
                crate::util::limits::MAX_STATE_BYTES,
            )
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
            let named = latest.filter(|l| Some(&l.run_id) == index.as_ref().map(|i| &i.run_id));
            if let Some(l) = named
                && let Some(p) = latest_problem(
                    sealed,
                    crate::bundle::LATEST_FILE,
                    &root,
                    &l.run_id,
                    &l.artifact_index_blake3,
                )
            {
                let kind = if p.kind == AuditProblemKind::LatestRollback {
                    ProblemKind::LatestRollback
                } else {
                    ProblemKind::IndexNotAnchored
                };
                report.push(kind, Some(crate::bundle::LATEST_FILE), p.message);
            }
        }
        if self.sealed.is_some() {
            let a = self.anchor(index.as_ref(), index_bytes.as_deref());
            match a.state {
                AnchorState::Anchored => report.attested.push(format!(
                    "anchor: the audit log's run-sealed entry (seq {}) names this index",
                    a.sealed_seq.unwrap_or_default()
                )),
                AnchorState::Unchecked => report.attested.push(format!(
                    "anchor: not checked: {}",
                    a.problem.unwrap_or_default()
                )),
                AnchorState::NotAnchored => report.push(
                    ProblemKind::IndexNotAnchored,
                    Some(INDEX_FILE),
                    a.problem.unwrap_or_default(),
                ),
            }
        }
        report.finish();
    }
}

impl Attestor for GovAttestor {
    fn attest(&self, src: &BundleSource) -> Result<Attestation> {
        let own = self_signature(src);
        let mut anchor = self.anchor(src.index.as_ref(), src.index_bytes.as_deref());
        // Reached through a `LATEST` the log says was rolled back: not the run asked for.
        if src.report.via_latest
            && let (Some(sealed), Some(root)) = (&self.sealed, &src.report.out_root)
            && let Some(l) = crate::util::fsx::read_capped(
                &root.join(crate::bundle::LATEST_FILE),
                crate::util::limits::MAX_STATE_BYTES,
            )
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::model::index::Latest>(&b).ok())
            && let Some(p) = latest_problem(
                sealed,
                crate::bundle::LATEST_FILE,
                root,
                &l.run_id,
                &l.artifact_index_blake3,
            )
        {
            anchor = AnchorInput {
                state: AnchorState::NotAnchored,
                sealed_seq: None,
                problem: Some(p.message),
            };
        }
        Ok(Attestation {
            signature: self.signature(&src.dir, own, src.index_bytes.as_deref()),
            anchor,
        })
    }
}

/// `validate-bundle`: the bundle check, then (with a trust file: `trust`, else the state
/// directory's) the signature against it, and (with a state directory) the index against
/// the audit log.
pub fn validate(
    path: &Path,
    trust: Option<&Path>,
    state_dir: Option<&Path>,
    root: &Path,
) -> Result<Report> {
    let mut report = bundle::check_bundle(path)?;
    let attestor = GovAttestor::open(trust, state_dir, root)?;
    attestor.check_report(&mut report);
    Ok(report)
}

/// A `LATEST` that names an older run than the last one the log sealed into its out root
/// (a rollback), or a digest the log did not seal for its run.
pub(crate) fn latest_problem(
    sealed: &SealedRuns,
    source: &str,
    out_root: &Path,
    run_id: &str,
    blake3: &str,
) -> Option<Problem> {
    let root = std::fs::canonicalize(out_root).unwrap_or_else(|_| out_root.to_path_buf());
    // The out root relative to the project: how entries name it even after a move.
    let root_rel = sealed
        .project
        .as_deref()
        .and_then(|p| super::relative_path(out_root, p));
    let in_root = |e: &SealedEntry| match (&e.bundle_rel, &root_rel) {
        (Some(rel), Some(r)) => Path::new(rel).parent() == Some(Path::new(r)),
        _ => e.bundle.as_deref().is_some_and(|bundle| {
            Path::new(bundle).parent().is_some_and(|p| {
                std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()) == root
            })
        }),
    };
    let mut last: Option<(&str, &SealedEntry)> = None;
    for (rid, entries) in &sealed.runs {
        for e in entries {
            if in_root(e) && last.is_none_or(|(_, l)| e.seq > l.seq) {
                last = Some((rid.as_str(), e));
            }
        }
    }
    let (last_run, last) = last?;
    if last_run != run_id {
        let named = sealed.runs.get(run_id).and_then(|v| v.last());
        let what = match named {
            Some(n) => format!("run `{run_id}`, sealed at seq {}", n.seq),
            None => format!("run `{run_id}`, which the log never sealed"),
        };
        return Some(Problem {
            line: 0,
            seq: Some(last.seq),
            kind: AuditProblemKind::LatestRollback,
            message: format!(
                "{source} names {what}, but the last run sealed into {} is `{last_run}` (seq {}): LATEST was rolled back",
                out_root.display(),
                last.seq
            ),
        });
    }
    (last.index_blake3 != blake3).then(|| Problem {
        line: 0,
        seq: Some(last.seq),
        kind: AuditProblemKind::IndexNotAnchored,
        message: format!(
            "{source} records index blake3 {} for run `{run_id}`, but the log sealed {} (seq {})",
            short_hex(blake3),
            short_hex(&last.index_blake3),
            last.seq
        ),
    })
}

/// `merge-bundles`: merge the shards, judging each shard's signature against the trust
/// file (`trust`, else the state directory's) and its index against the audit log, as
/// `emit-promotion` would.
pub fn merge_bundles(
    s: &crate::promote::merge::MergeSettings,
    trust: Option<&Path>,
    state_dir: Option<&Path>,
    root: &Path,
) -> Result<crate::promote::merge::MergeOutcome> {
    let attestor = GovAttestor::open(trust, state_dir, root)?;
    crate::promote::merge::merge(s, &attestor)
}
