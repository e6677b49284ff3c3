//! `merge-bundles`: the sealed bundles of every shard of one `run --shard K/N` selection
//! into one sealed bundle.
//!
//! Every input is read through the strict reader (`bundle::load_bundle`: index, digests,
//! and the signature it carries); then the set must add up, or the merge is refused with
//! a stable reason (the word in brackets of the error, [`Refusal`]):
//!
//! | reason | when |
//! |---|---|
//! | `bundle-invalid` | an input is not a valid sealed bundle (its signature included), or its signature is not by a runner key the trust file lists |
//! | `not-a-shard` | an input's manifest records no `shard` (or it is itself a merge) |
//! | `plan-digest-differs` | two inputs ran different plan digests (or a shard's record disagrees with its manifest) |
//! | `selection-differs` | another N, strategy, selection, durations bundle or channel; parts that do not add up to the recorded selection |
//! | `shard-part-mismatch` | a shard's part is not what its record says (or, for `hash`, not its hash shard) |
//! | `shard-duplicate` | the same shard bundle given twice |
//! | `shard-overlap` | two different bundles claim the same shard index |
//! | `shard-missing` | an index of 1..N is absent (named, with the command that reruns it) |
//! | `shard-incomplete` | a shard is `failed` or `interrupted` (without `--allow-incomplete`) |
//! | `signature-mixed` | some inputs are signed and others are not |
//!
//! The merged bundle is built from the shards' *observations* (read through
//! `exec::write::read_results`) by the run's own pure assembly (`exec::assemble`) and
//! written and sealed by the run's own writer (`exec::write::write_results`,
//! `bundle::StagedBundle`), so its result files are what one run of the whole selection
//! would have written for the same observations. Its manifest lists every shard (index
//! digest, host, status and its own promotability); `promote::derive` makes the merged
//! packet `shard-incomplete` unless every shard was complete and promotable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::bundle::{BeginOptions, Bundle, LockOptions, RESULT_FILES, SealSigner, StagedBundle};
use crate::error::ErrorKind;
use crate::exec::assemble::{self, AssembleCtx};
use crate::exec::seam::ScenarioRun;
use crate::exec::shard::{hash_shard, rerun_command, set_digest};
use crate::load::ScenarioSpec;
use crate::model::Id;
use crate::model::index::BundleStatus;
use crate::model::results::{
    ApplyPreflight, ExpectedEntry, ExpectedMatrix, KERNEL_DENIALS_FILE, KernelDenialLine,
    MergedShard, Observation, OracleVerdict, PreflightRecord, RESULTS_SCHEMA_VERSION, RunManifest,
    ShardRecord, ShardStrategy, TimeoutSetting, TimeoutSource,
};
use crate::promote::{Attestor, PointerContext, derive_packet, source::BundleSource};
use crate::{Error, Result};

/// Why a merge is refused: the stable word in its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An input is not a valid sealed bundle.
    BundleInvalid,
    /// An input is not a shard.
    NotAShard,
    /// Different plan digests.
    PlanDigestDiffers,
    /// Another selection.
    SelectionDiffers,
    /// A part is not what its record says.
    ShardPartMismatch,
    /// The same bundle twice.
    ShardDuplicate,
    /// Two bundles for one index.
    ShardOverlap,
    /// An index is absent.
    ShardMissing,
    /// A failed or interrupted shard.
    ShardIncomplete,
    /// Signed and unsigned inputs together.
    SignatureMixed,
}

impl Refusal {
    /// The stable word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BundleInvalid => "bundle-invalid",
            Self::NotAShard => "not-a-shard",
            Self::PlanDigestDiffers => "plan-digest-differs",
            Self::SelectionDiffers => "selection-differs",
            Self::ShardPartMismatch => "shard-part-mismatch",
            Self::ShardDuplicate => "shard-duplicate",
            Self::ShardOverlap => "shard-overlap",
            Self::ShardMissing => "shard-missing",
            Self::ShardIncomplete => "shard-incomplete",
            Self::SignatureMixed => "signature-mixed",
        }
    }
}

fn refuse(r: Refusal, msg: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Findings,
        format!("merge refused [{}]: {msg}", r.as_str()),
    )
}

/// What `merge-bundles` was asked.
#[derive(Debug)]
pub struct MergeSettings {
    /// The out root of the merged bundle.
    pub out_root: PathBuf,
    /// The shards' bundles (directories or out roots).
    pub inputs: Vec<PathBuf>,
    /// Merge failed or interrupted shards (the result is not promotable).
    pub allow_incomplete: bool,
    /// Sign the merged bundle.
    pub signer: Option<SealSigner>,
    /// Lock behaviour for the out root.
    pub lock: LockOptions,
}

/// What was merged.
#[derive(Debug, Clone)]
pub struct MergeOutcome {
    /// The merged bundle's run id.
    pub run_id: String,
    /// Its directory.
    pub dir: PathBuf,
    /// blake3 of its index.
    pub index_blake3: String,
    /// Its shards.
    pub shards: Vec<MergedShard>,
    /// Scenarios in it.
    pub scenarios: u64,
    /// Its summary's exit code (as `run` of the whole selection would exit).
    pub exit_code: i32,
    /// Its summary's exit reason.
    pub exit_reason: String,
}

struct Shard {
    path: PathBuf,
    bundle: Bundle,
    manifest: RunManifest,
    record: ShardRecord,
}

/// Validate the inputs and write the merged bundle. Refusals are exit 1 and write nothing.
pub fn merge(s: &MergeSettings, attestor: &dyn Attestor) -> Result<MergeOutcome> {
    let mut shards = Vec::with_capacity(s.inputs.len());
    for p in &s.inputs {
        shards.push(open_shard(p)?);
    }
    if shards.is_empty() {
        return Err(Error::usage("merge-bundles needs the shards' bundles"));
    }
    check_consistent(&shards)?;
    let by_k = check_complete_set(&shards, s.allow_incomplete)?;
    let shards: Vec<Shard> = {
        let mut v: Vec<Option<Shard>> = shards.into_iter().map(Some).collect();
        by_k.values()
            .filter_map(|i| v.get_mut(*i).and_then(Option::take))
            .collect()
    };
    let mut entries = Vec::with_capacity(shards.len());
    for sh in &shards {
        let src = BundleSource::open(&sh.bundle.dir)?;
        let ctx = PointerContext::for_emit(&sh.bundle.dir, &sh.bundle.dir, &sh.bundle.dir)?;
        let packet = derive_packet(&src, &ctx, attestor)?;
        if packet
            .promotability
            .reasons
            .contains(&crate::model::packet::Reason::BundleSignatureInvalid)
        {
            return Err(refuse(
                Refusal::BundleInvalid,
                format!(
                    "{}: its signature is not by a trusted runner key, or does not verify",
                    sh.path.display()
                ),
            )
            .with_path(&sh.path)
            .with_hint("`nexusmon validate-bundle --bundle <it>` says why; sign shards with a key the trust file lists as a runner"));
        }
        entries.push(MergedShard {
            k: sh.record.k,
            n: sh.record.n,
            strategy: sh.record.strategy,
            run_id: sh.bundle.run_id.clone(),
            artifact_index_blake3: sh.bundle.index_blake3.clone(),
            host: sh.manifest.host.hostname.clone(),
            status: status_word(sh.bundle.status.status).into(),
            promotable: packet.promotability.promotable,
            reasons: packet
                .promotability
                .reasons
                .iter()
                .map(|r| r.as_str().to_string())
                .collect(),
        });
    }
    write_merged(s, &shards, entries)
}

fn status_word(s: BundleStatus) -> &'static str {
    match s {
        BundleStatus::Complete => "complete",
        BundleStatus::Failed => "failed",
        BundleStatus::Interrupted => "interrupted",
        BundleStatus::InProgress => "in_progress",
    }
}

fn open_shard(p: &Path) -> Result<Shard> {
    let bundle = crate::bundle::load_bundle(p).map_err(|e| {
        refuse(
            Refusal::BundleInvalid,
            format!("{}: {}", p.display(), e.full_message()),
        )
        .with_path(p)
        .with_hint(format!(
            "`nexusmon validate-bundle --bundle {}` lists every problem; rerun that shard",
            p.display()
        ))
    })?;
    let manifest: RunManifest = bundle.read_json("run_manifest.json").map_err(|e| {
        refuse(
            Refusal::NotAShard,
            format!(
                "{}: no readable run_manifest.json ({})",
                p.display(),
                e.full_message()
            ),
        )
        .with_path(p)
    })?;
    let Some(record) = manifest
        .shard
        .clone()
        .filter(|_| manifest.shards.is_empty())
    else {
        return Err(refuse(
            Refusal::NotAShard,
            format!(
                "{} (run {}) is not a shard: its manifest records no `shard`{}",
                p.display(),
                bundle.run_id,
                if manifest.shards.is_empty() {
                    ""
                } else {
                    " (it is a merged bundle)"
                }
            ),
        )
        .with_path(p)
        .with_hint("merge the bundles of `nexusmon run --shard K/N` runs, every K of one N once"));
    };
    if record.plan_digest != manifest.plan_digest.blake3 {
        return Err(refuse(
            Refusal::PlanDigestDiffers,
            format!(
                "{}: its shard record names plan digest {} but its manifest ran {}",
                p.display(),
                record.plan_digest,
                manifest.plan_digest.blake3
            ),
        )
        .with_path(p));
    }
    let part = set_digest(manifest.selected.iter().map(String::as_str));
    if part != record.part_digest || manifest.selected.len() as u64 != record.part_count {
        return Err(refuse(
            Refusal::ShardPartMismatch,
            format!(
                "{}: the scenarios it ran are not the part its shard record names",
                p.display()
            ),
        )
        .with_path(p));
    }
    if record.strategy == ShardStrategy::Hash
        && let Some(bad) = manifest
            .selected
            .iter()
            .find(|id| hash_shard(id, record.n) != record.k)
    {
        return Err(refuse(
            Refusal::ShardPartMismatch,
            format!(
                "{}: scenario `{bad}` is not in hash shard {}/{}",
                p.display(),
                record.k,
                record.n
            ),
        )
        .with_path(p));
    }
    Ok(Shard {
        path: p.to_path_buf(),
        bundle,
        manifest,
        record,
    })
}

/// Every input against the first: one plan digest, one selection, one partition.
fn check_consistent(shards: &[Shard]) -> Result<()> {
    let Some(a) = shards.first() else {
        return Ok(());
    };
    let signed = shards
        .iter()
        .filter(|s| s.bundle.signed_by.is_some())
        .count();
    if signed != 0 && signed != shards.len() {
        let unsigned: Vec<String> = shards
            .iter()
            .filter(|s| s.bundle.signed_by.is_none())
            .map(|s| s.path.display().to_string())
            .collect();
        return Err(refuse(
            Refusal::SignatureMixed,
            format!(
                "{signed} of {} inputs are signed; these are not: {}",
                shards.len(),
                unsigned.join(", ")
            ),
        )
        .with_hint("run every shard with the same --sign-with setting"));
    }
    for b in &shards[1..] {
        if b.record.plan_digest != a.record.plan_digest {
            return Err(refuse(
                Refusal::PlanDigestDiffers,
                format!(
                    "{} ran plan digest {}, but {} ran {}",
                    b.path.display(),
                    b.record.plan_digest,
                    a.path.display(),
                    a.record.plan_digest
                ),
            )
            .with_path(&b.path)
            .with_hint(
                "every shard must run the same plan (and registry); rerun the stale shards",
            ));
        }
        let durations = |s: &Shard| {
            s.record
                .durations
                .as_ref()
                .map(|d| d.artifact_index_blake3.clone())
        };
        let what = if b.record.n != a.record.n {
            Some(format!("{} shards, not {}", b.record.n, a.record.n))
        } else if b.record.strategy != a.record.strategy {
            Some(format!(
                "strategy {}, not {}",
                b.record.strategy.as_str(),
                a.record.strategy.as_str()
            ))
        } else if b.record.selected_digest != a.record.selected_digest
            || b.record.selected_count != a.record.selected_count
        {
            Some(format!(
                "another selection ({} scenarios, digest {}; not {}, {})",
                b.record.selected_count,
                b.record.selected_digest,
                a.record.selected_count,
                a.record.selected_digest
            ))
        } else if durations(b) != durations(a) {
            Some("another --durations bundle".into())
        } else if b.manifest.channel != a.manifest.channel {
            Some("another --channel".into())
        } else {
            None
        };
        if let Some(what) = what {
            return Err(refuse(
                Refusal::SelectionDiffers,
                format!(
                    "{} is a shard of {what} than {}",
                    b.path.display(),
                    a.path.display()
                ),
            )
            .with_path(&b.path)
            .with_hint("merge the shards of one `run --shard K/N` selection (same filters, N and strategy)"));
        }
    }
    Ok(())
}

/// Every index of 1..N exactly once, disjoint parts adding up to the selection, and
/// complete runs (unless allowed). Returns index → position in `shards`.
fn check_complete_set(shards: &[Shard], allow_incomplete: bool) -> Result<BTreeMap<u32, usize>> {
    let Some(a) = shards.first() else {
        return Ok(BTreeMap::new());
    };
    let mut by_k: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, s) in shards.iter().enumerate() {
        if let Some(j) = by_k.insert(s.record.k, i) {
            let o = &shards[j];
            let (r, how) = if o.bundle.index_blake3 == s.bundle.index_blake3 {
                (
                    Refusal::ShardDuplicate,
                    "the same bundle (equal index digests) given twice",
                )
            } else {
                (Refusal::ShardOverlap, "two different bundles claim it")
            };
            return Err(refuse(
                r,
                format!(
                    "shard {}/{}: {how}: {} (run {}) and {} (run {})",
                    s.record.k,
                    s.record.n,
                    o.path.display(),
                    o.bundle.run_id,
                    s.path.display(),
                    s.bundle.run_id
                ),
            )
            .with_path(&s.path)
            .with_hint("give every shard's bundle once"));
        }
    }
    let n = a.record.n;
    let missing: Vec<u32> = (1..=n).filter(|k| !by_k.contains_key(k)).collect();
    if !missing.is_empty() {
        let cmds: Vec<String> = missing
            .iter()
            .map(|k| shell_line(&rerun_command(&a.manifest.command_line, *k, n)))
            .collect();
        return Err(refuse(
            Refusal::ShardMissing,
            format!(
                "shard{} {} missing (have {})",
                if missing.len() == 1 { "" } else { "s" },
                missing
                    .iter()
                    .map(|k| format!("{k}/{n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                by_k.keys()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_hint(format!(
            "run the missing shard(s), then merge again: {}",
            cmds.join(" ; ")
        )));
    }
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for s in shards {
        for id in &s.manifest.selected {
            if !seen.insert(id.as_str()) {
                return Err(refuse(
                    Refusal::ShardOverlap,
                    format!(
                        "scenario `{id}` is in more than one shard ({})",
                        s.path.display()
                    ),
                )
                .with_path(&s.path));
            }
        }
    }
    if set_digest(seen.iter().copied()) != a.record.selected_digest
        || seen.len() as u64 != a.record.selected_count
    {
        return Err(refuse(
            Refusal::SelectionDiffers,
            format!(
                "the shards' parts add up to {} scenarios that are not the recorded selection of {}",
                seen.len(),
                a.record.selected_count
            ),
        ));
    }
    for s in shards {
        let st = s.bundle.status.status;
        if st != BundleStatus::Complete && !allow_incomplete {
            return Err(refuse(
                Refusal::ShardIncomplete,
                format!(
                    "shard {}/{} ({}, run {}) is {}",
                    s.record.k,
                    s.record.n,
                    s.path.display(),
                    s.bundle.run_id,
                    status_word(st)
                ),
            )
            .with_path(&s.path)
            .with_hint(format!(
                "rerun it ({}), or pass --allow-incomplete for a merged bundle that is not promotable",
                shell_line(&rerun_command(&s.manifest.command_line, s.record.k, s.record.n))
            )));
        }
    }
    Ok(by_k)
}

/// A command line a shell reads back as the same words.
fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The observations of every shard, by scenario id.
#[derive(Default)]
struct Gathered {
    baseline: BTreeMap<String, Observation>,
    runtime: BTreeMap<String, Observation>,
    oracle: BTreeMap<String, OracleVerdict>,
    witnesses: Vec<crate::model::results::PathWitness>,
    expected: BTreeMap<String, ExpectedEntry>,
    preflight: BTreeMap<String, PreflightRecord>,
    denials: Vec<KernelDenialLine>,
    has_denials: bool,
}

/// `v` with every string's occurrences of the scratch root `from` (a shard's) replaced by
/// `to` (the merged run's: the first shard's). A scratch root names one run's private
/// directory (`/dev/shm/nexusmon-<run_id>`), gone after the run; one run of the whole
/// selection would have had one, so the merged bundle names one.
fn rescratch<T: serde::Serialize + serde::de::DeserializeOwned>(
    v: T,
    from: &str,
    to: &str,
) -> Result<T> {
    fn walk(v: &mut serde_json::Value, from: &str, to: &str) {
        match v {
            serde_json::Value::String(s) if s.contains(from) => *s = s.replace(from, to),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, from, to)),
            serde_json::Value::Object(m) => m.values_mut().for_each(|x| walk(x, from, to)),
            _ => {}
        }
    }
    if from.is_empty() || from == to {
        return Ok(v);
    }
    let err =
        |e: serde_json::Error| Error::runner("cannot re-serialize a shard's result").with_source(e);
    let mut j = serde_json::to_value(&v).map_err(err)?;
    walk(&mut j, from, to);
    serde_json::from_value(j).map_err(err)
}

fn gather(shards: &[Shard]) -> Result<Gathered> {
    fn read<T>(complete: bool, r: Result<T>) -> Result<Option<T>> {
        if complete { r.map(Some) } else { Ok(r.ok()) }
    }
    let mut g = Gathered::default();
    let to = shards.first().map_or("", |s| s.manifest.scratch.as_str());
    for sh in shards {
        let b = &sh.bundle;
        let from = sh.manifest.scratch.as_str();
        let complete = b.status.status == BundleStatus::Complete;
        // A failed shard may lack its results (`read`): what it has is merged, what it
        // lacks stays unobserved (the merged bundle is then not promotable).
        if let Some(r) = read(complete, crate::exec::write::read_results(b))? {
            let r = crate::exec::write::ResultsRead {
                runtime: rescratch(r.runtime, from, to)?,
                baseline: rescratch(r.baseline, from, to)?,
                oracle: rescratch(r.oracle, from, to)?,
                witnesses: rescratch(r.witnesses, from, to)?,
            };
            for o in r.baseline.observations {
                g.baseline.insert(o.scenario_id.clone(), o);
            }
            for o in r.runtime.observations {
                g.runtime.insert(o.scenario_id.clone(), o);
            }
            for v in r.oracle.verdicts {
                g.oracle.insert(v.scenario_id.clone(), v);
            }
            g.witnesses.extend(r.witnesses.witnesses);
        }
        let em: ExpectedMatrix = b.read_json("expected_matrix.json")?;
        g.expected.extend(em.scenarios);
        if let Some(pf) = read(
            complete,
            b.read_json::<ApplyPreflight>("apply_preflight.json"),
        )? {
            for p in pf.profiles {
                g.preflight.entry(p.profile.clone()).or_insert(p);
            }
        }
        if b.has(KERNEL_DENIALS_FILE) {
            g.has_denials = true;
            let bytes = b.read_verified(KERNEL_DENIALS_FILE)?;
            for line in bytes.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
                let d: KernelDenialLine = serde_json::from_slice(line).map_err(|e| {
                    Error::new(ErrorKind::Findings, "unreadable kernel denial line")
                        .with_path(b.path(KERNEL_DENIALS_FILE))
                        .with_source(e)
                })?;
                g.denials.push(rescratch(d, from, to)?);
            }
        }
    }
    g.witnesses.sort();
    g.witnesses.dedup();
    g.denials.sort_by(|a, b| {
        (&a.scenario_id, a.attempt, a.serial).cmp(&(&b.scenario_id, b.attempt, b.serial))
    });
    Ok(g)
}

/// The scenarios of the whole selection, as the run would have resolved them.
fn scenario_runs(shards: &[Shard], g: &Gathered) -> Result<Vec<ScenarioRun>> {
    let mut probes = BTreeMap::new();
    for sh in shards {
        for (id, p) in &sh.manifest.probes {
            probes
                .entry(id.clone())
                .or_insert_with(|| std::sync::Arc::new(p.probe.clone()));
        }
    }
    let bad = |what: String| Error::new(ErrorKind::Findings, what);
    let mut out = Vec::with_capacity(g.expected.len());
    for (sid, e) in &g.expected {
        let probe = probes.get(&e.probe_id).cloned().ok_or_else(|| {
            bad(format!(
                "scenario `{sid}`: no shard's manifest resolves probe `{}`",
                e.probe_id
            ))
        })?;
        let id = |s: &str| Id::new(s).map_err(|why| bad(format!("scenario `{sid}`: {why}")));
        let timeout = g.runtime.get(sid).or_else(|| g.baseline.get(sid)).map_or(
            TimeoutSetting {
                ms: crate::exec::settings::DEFAULT_TIMEOUT_MS,
                source: TimeoutSource::Default,
                kill_grace_ms: crate::exec::settings::DEFAULT_KILL_GRACE_MS,
            },
            |o| o.timeout,
        );
        out.push(ScenarioRun {
            spec: ScenarioSpec {
                scenario_id: sid.clone(),
                profile_id: id(&e.profile_id)?,
                probe_id: id(&e.probe_id)?,
                expected: e.expected,
                control: e.control,
            },
            probe,
            timeout,
            task: None,
            worker: None,
        });
    }
    Ok(out)
}

fn write_merged(
    s: &MergeSettings,
    shards: &[Shard],
    entries: Vec<MergedShard>,
) -> Result<MergeOutcome> {
    let g = gather(shards)?;
    let scenarios = scenario_runs(shards, &g)?;
    let first = &shards[0];
    let preflight: Vec<PreflightRecord> = g.preflight.values().cloned().collect();
    let summaries: Vec<crate::model::results::Summary> = shards
        .iter()
        .filter_map(|sh| sh.bundle.read_json("summary.json").ok())
        .collect();

    let bundle = StagedBundle::begin_for_plan(
        &BeginOptions {
            out_root: s.out_root.clone(),
            run_id: None,
            lock: s.lock,
        },
        Some(first.manifest.plan_id.as_str()),
    )?;
    for f in RESULT_FILES {
        bundle.expect(f);
    }
    if g.has_denials {
        bundle.expect(KERNEL_DENIALS_FILE);
    }
    let run_id = bundle.run_id().to_string();
    let ctx = AssembleCtx {
        run_id: run_id.clone(),
        plan_id: first.manifest.plan_id.clone(),
        plan_digest: first.manifest.plan_digest.clone(),
        channel: first.manifest.channel,
        fail_on_flaky: first
            .manifest
            .plan
            .pointer("/execution/fail_on_flaky")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true),
        wall_us: summaries.iter().map(|x| x.wall_us).max().unwrap_or(0),
        runner_max_rss_kib: summaries
            .iter()
            .map(|x| x.runner_max_rss_kib)
            .max()
            .unwrap_or(0),
        layers: Vec::new(),
        max_parallel: shards.iter().map(|x| x.manifest.jobs).max().unwrap_or(1),
        interrupted: None,
    };
    let pick = |m: &BTreeMap<String, Observation>| -> Vec<Option<Observation>> {
        scenarios
            .iter()
            .map(|sc| m.get(&sc.spec.scenario_id).cloned())
            .collect()
    };
    let oracle: Vec<Option<OracleVerdict>> = scenarios
        .iter()
        .map(|sc| g.oracle.get(&sc.spec.scenario_id).cloned())
        .collect();
    let mut a = assemble::assemble(
        &ctx,
        &scenarios,
        pick(&g.baseline),
        pick(&g.runtime),
        oracle,
        g.witnesses.clone(),
        &preflight,
    );
    a.summary.unattributed_leaks = summaries
        .iter()
        .flat_map(|x| x.unattributed_leaks.iter().cloned())
        .collect();
    a.summary.governance_flags = summaries
        .first()
        .map(|x| x.governance_flags.clone())
        .unwrap_or_default();
    a.summary.kernel_audit = merged_kernel_audit(&summaries);

    let manifest = merged_manifest(shards, &run_id, &g, &preflight, entries.clone());
    bundle.write_json(
        "apply_preflight.json",
        &ApplyPreflight {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: run_id.clone(),
            abi_kernel: manifest.landlock_abi,
            profiles: preflight.clone(),
        },
    )?;
    bundle.write_json("run_manifest.json", &manifest)?;
    bundle.write_json(
        "expected_matrix.json",
        &ExpectedMatrix {
            schema_version: RESULTS_SCHEMA_VERSION,
            plan_id: first.manifest.plan_id.clone(),
            scenarios: g.expected.clone(),
        },
    )?;
    // Captured output: every shard's members under `logs/` (disjoint scenarios, so
    // disjoint names), read verified and written again.
    let mut logs: BTreeMap<String, usize> = BTreeMap::new();
    for (i, sh) in shards.iter().enumerate() {
        for e in &sh.bundle.index.entries {
            if e.path.starts_with("logs/") {
                if let Some(j) = logs.insert(e.path.clone(), i) {
                    return Err(refuse(
                        Refusal::ShardOverlap,
                        format!(
                            "`{}` is in both {} and {}",
                            e.path,
                            shards[j].path.display(),
                            sh.path.display()
                        ),
                    ));
                }
                bundle.write_bytes(&e.path, &sh.bundle.read_verified(&e.path)?)?;
            }
        }
    }
    if g.has_denials {
        crate::exec::witness::write_lines(&bundle, &g.denials)?;
    }
    crate::exec::write::write_results(&bundle, &a, &preflight, None)?;

    let worst = shards
        .iter()
        .map(|x| x.bundle.status.status)
        .find(|st| *st != BundleStatus::Complete);
    let incomplete: Vec<String> = entries
        .iter()
        .filter(|e| e.status != "complete")
        .map(|e| format!("shard {}/{} was {}", e.k, e.n, e.status))
        .collect();
    let sealed = bundle.seal(crate::bundle::SealInfo {
        status: worst.unwrap_or(BundleStatus::Complete),
        failure_stage: (worst == Some(BundleStatus::Failed)).then(|| "merge".to_string()),
        error: (!incomplete.is_empty()).then(|| incomplete.join("; ")),
        plan_digest: Some(first.manifest.plan_digest.clone()),
        audit_head: None,
        signer: s
            .signer
            .clone()
            .map(|k| k.with_host(crate::sandbox::host::host_facts())),
    })?;
    Ok(MergeOutcome {
        run_id,
        dir: sealed.dir,
        index_blake3: sealed.index_blake3,
        shards: entries,
        scenarios: scenarios.len() as u64,
        exit_code: a.summary.exit_code,
        exit_reason: a.summary.exit_reason,
    })
}

fn merged_kernel_audit(
    summaries: &[crate::model::results::Summary],
) -> Option<crate::model::results::KernelAuditReport> {
    let mut it = summaries.iter().filter_map(|x| x.kernel_audit.clone());
    let mut r = it.next()?;
    for o in it {
        r.records += o.records;
        r.attributed += o.attributed;
        r.unattributed += o.unattributed;
        r.kernel_lost += o.kernel_lost;
        r.socket_overflows += o.socket_overflows;
        r.restored |= o.restored;
        if o.state != r.state && !o.reason.is_empty() {
            r.state = o.state;
            r.reason = o.reason;
        }
    }
    Some(r)
}

/// The first shard's manifest, for the whole selection: the run id, every scenario,
/// probe, profile and preflight record of every shard, the command line without
/// `--shard`, the earliest start, and the shards instead of a shard record.
fn merged_manifest(
    shards: &[Shard],
    run_id: &str,
    g: &Gathered,
    preflight: &[PreflightRecord],
    entries: Vec<MergedShard>,
) -> RunManifest {
    let mut m = shards[0].manifest.clone();
    m.run_id = run_id.to_string();
    m.selected = g.expected.keys().cloned().collect();
    m.preflight = preflight.to_vec();
    for sh in &shards[1..] {
        let o = &sh.manifest;
        for (k, v) in &o.probes {
            m.probes.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &o.profiles {
            m.profiles.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &o.profile_definitions {
            m.profile_definitions
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        for (k, v) in &o.registry_digests.probes {
            m.registry_digests
                .probes
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        for (k, v) in &o.registry_digests.profiles {
            m.registry_digests
                .profiles
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        m.jobs = m.jobs.max(o.jobs);
        if o.started_at < m.started_at {
            m.started_at.clone_from(&o.started_at);
        }
    }
    let mut line = Vec::with_capacity(m.command_line.len());
    let mut it = m.command_line.iter();
    while let Some(a) = it.next() {
        if a == "--shard" || a == "--shard-strategy" || a == "--durations" {
            it.next();
        } else if !(a.starts_with("--shard=")
            || a.starts_with("--shard-strategy=")
            || a.starts_with("--durations=")
            || a == "--allow-empty-shard")
        {
            line.push(a.clone());
        }
    }
    m.command_line = line;
    m.shard = None;
    m.shards = entries;
    m
}
