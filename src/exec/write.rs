//! Stage 8, writing: the bundle's documents. Before the lanes: `apply_preflight.json`,
//! `run_manifest.json` (with secret-looking environment values of the profiles redacted to
//! a keyed digest) and `expected_matrix.json` ([`write_run_docs`]); during them, captured
//! output under `logs/` ([`BundleLogs`]); after: every result file as sorted JSON Lines
//! with shared values ([`ResultStream`], over `bundle::lines`), and `summary.md`.

use std::collections::BTreeMap;
use std::path::Path;

use super::assemble::Assembled;
use super::lanes::LogSink;
use super::seam::SelectedScenarios;
use super::settings::RunSettings;
use super::setup::RunSetup;
use std::io::BufWriter;

use crate::bundle::lines::{self, ResultWriter};
use crate::bundle::{
    BASELINE_RESULTS, NORMALIZED_ROWS, ORACLE_RESULTS, PATH_WITNESSES, RUNTIME_RESULTS,
    StagedBundle, StagedFile,
};
use crate::load::LoadedPlan;
use crate::load::mission::expected_entry;
use crate::model::results::{
    ApplyPreflight, Lane, LanePolicy, MismatchPacket, MismatchSummary, NormalizedRow, Observation,
    OracleVerdict, PathWitness, PreflightRecord, RESULTS_SCHEMA_VERSION, ResolvedProbe,
    RunManifest, Summary, ToolInfo,
};
use crate::sandbox::compile;
use crate::util::json;
use crate::{Error, Result};

/// Captured output goes into the bundle.
pub struct BundleLogs<'a>(pub &'a StagedBundle);

impl LogSink for BundleLogs<'_> {
    fn write_log(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.0.write_bytes(rel, bytes)
    }
}

/// What the manifest and the expected matrix describe.
#[derive(Debug, Clone, Copy)]
pub struct RunDescription<'a> {
    /// The settings.
    pub settings: &'a RunSettings,
    /// The plan.
    pub loaded: &'a LoadedPlan,
    /// The run's environment.
    pub setup: &'a RunSetup,
    /// The selected scenarios.
    pub scenarios: &'a SelectedScenarios,
    /// The plan's scenario matrix (`run` takes it out of the loaded plan, whose
    /// `scenarios` are then empty, and drops it once the manifest is written).
    pub matrix: &'a crate::model::plan::Matrix,
    /// The lanes that run.
    pub lanes: &'a [Lane],
    /// Governance notes (the gate's, a mission's).
    pub governance: &'a [String],
    /// When the run started (RFC 3339).
    pub started_at: &'a str,
    /// The kernel audit state when the lanes began.
    pub kernel_audit: &'a crate::model::results::KernelAuditStart,
    /// `--shard`: which part of the selection this run is.
    pub shard: Option<&'a crate::model::results::ShardRecord>,
}

/// Write `apply_preflight.json`, `run_manifest.json` and `expected_matrix.json`.
pub fn write_run_docs(
    bundle: &StagedBundle,
    d: &RunDescription<'_>,
    preflight: &[PreflightRecord],
) -> Result<()> {
    bundle.write_json(
        "apply_preflight.json",
        &ApplyPreflight {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: d.setup.run_id.clone(),
            abi_kernel: d.setup.facts.landlock_abi,
            profiles: preflight.to_vec(),
        },
    )?;
    write_manifest(bundle, d, preflight)?;
    // One entry at a time: the same bytes as the whole document through
    // `to_sorted_pretty`, without a JSON tree of every scenario.
    let mut f = BufWriter::new(bundle.create_file("expected_matrix.json")?);
    pretty_map_doc(
        &serde_json::json!({
            "schema_version": RESULTS_SCHEMA_VERSION,
            "plan_id": d.loaded.plan.plan_id.to_string(),
        }),
        "scenarios",
        d.scenarios.iter().map(|s| {
            let entry = expected_entry(&s.spec, s.task.as_deref());
            (s.into_owned().spec.scenario_id, entry)
        }),
        &mut f,
    )
    .map_err(|e| Error::io("write", Path::new("expected_matrix.json"), e))?;
    f.into_inner()
        .map_err(|e| Error::io("write", Path::new("expected_matrix.json"), e.into_error()))?
        .commit()
        .map(|_| ())
}

/// `run_manifest.json`: the bytes `to_sorted_pretty` gives for the whole manifest, with the
/// three members that grow with the plan streamed into the file (`selected`, one id per
/// scenario, the plan's `scenarios` matrix, and `probes`, one resolved probe at a time),
/// so none is built as a JSON tree.
fn write_manifest(
    bundle: &StagedBundle,
    d: &RunDescription<'_>,
    preflight: &[PreflightRecord],
) -> Result<()> {
    let name = Path::new("run_manifest.json");
    let io_err = |e: std::io::Error| Error::io("write", name, e);
    let mut manifest = d.manifest(preflight);
    // The resolved probes (a policy matrix's thousands) are written one at a time below,
    // not built into the manifest's JSON tree.
    let probes = std::mem::take(&mut manifest.probes);
    let mut head = serde_json::to_value(manifest)
        .map_err(|e| Error::runner("cannot serialize the run manifest").with_source(e))?;
    let mut fills: Vec<(&str, json::Fill<'_>)> = Vec::new();
    if !probes.is_empty() {
        head["probes"] = serde_json::Value::Null;
        fills.push(("/probes", map_fill(probes)));
    }
    if !d.scenarios.is_empty() {
        head["selected"] = serde_json::Value::Null;
        fills.push((
            "/selected",
            Box::new(move |o: &mut dyn std::io::Write, ind: &str| {
                json::pretty_items(o, ind, b'[', d.scenarios.iter(), |o, s| {
                    json_str(o, &s.spec.scenario_id)
                })
            }),
        ));
    }
    let matrix = d.matrix;
    if !matrix.is_empty() {
        head["plan"]["scenarios"] = serde_json::Value::Null;
        fills.push((
            "/plan/scenarios",
            Box::new(move |o: &mut dyn std::io::Write, ind: &str| {
                let inner = format!("{ind}  ");
                json::pretty_items(o, ind, b'{', matrix.iter(), |o, (profile, row)| {
                    json_str(o, profile.as_str())?;
                    o.write_all(b": ")?;
                    json::pretty_items(o, &inner, b'{', row.iter(), |o, (probe, e)| {
                        json_str(o, probe.as_str())?;
                        o.write_all(b": ")?;
                        json_str(o, e.as_str())
                    })
                })
            }),
        ));
    }
    let mut f = BufWriter::new(bundle.create_file("run_manifest.json")?);
    json::write_pretty_with(&head, &mut fills, &mut f).map_err(io_err)?;
    f.into_inner()
        .map_err(|e| io_err(e.into_error()))?
        .commit()
        .map(|_| ())
}

/// A [`json::Fill`] writing the map `entries` (its values one at a time) as
/// [`json::write_pretty_with`] writes that map's JSON object at the fill's pointer: the
/// bytes of the whole document through `to_sorted_pretty`, without a JSON tree of every
/// entry at once.
fn map_fill<T: serde::Serialize + 'static>(entries: BTreeMap<String, T>) -> json::Fill<'static> {
    Box::new(move |o: &mut dyn std::io::Write, ind: &str| {
        let inner = format!("{ind}  ");
        json::pretty_items(o, ind, b'{', entries.iter(), |o, (key, value)| {
            json_str(o, key)?;
            o.write_all(b": ")?;
            json::write_sorted_pretty_at(value, &inner, o)
        })
    })
}

/// `s` as a JSON string.
fn json_str(o: &mut dyn std::io::Write, s: &str) -> std::io::Result<()> {
    serde_json::to_writer(o, s).map_err(std::io::Error::from)
}

/// Key-sorted pretty JSON of the object `head` with the map `entries` (given in key order)
/// under `key`, written one entry at a time: the bytes `util::json::to_sorted_pretty` gives
/// for the whole object.
pub fn pretty_map_doc<K: AsRef<str>, T: serde::Serialize>(
    head: &serde_json::Value,
    key: &str,
    mut entries: impl Iterator<Item = (K, T)>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let text = |v: &serde_json::Value, by: &str| -> std::io::Result<String> {
        let s = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
        Ok(s.replace('\n', &format!("\n{by}")))
    };
    let mut fields: BTreeMap<&str, Option<&serde_json::Value>> = head
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), Some(v))).collect())
        .unwrap_or_default();
    fields.insert(key, None);
    let n = fields.len();
    out.write_all(b"{\n")?;
    for (i, (k, v)) in fields.into_iter().enumerate() {
        write!(
            out,
            "  {}: ",
            text(&serde_json::Value::String(k.into()), "")?
        )?;
        if let Some(v) = v {
            out.write_all(text(v, "  ")?.as_bytes())?;
        } else {
            let mut any = false;
            for (name, entry) in entries.by_ref() {
                out.write_all(if any { b",\n    " } else { b"{\n    " })?;
                json_str(out, name.as_ref())?;
                out.write_all(b": ")?;
                json::write_sorted_pretty_at(&entry, "    ", out)?;
                any = true;
            }
            out.write_all(if any { b"\n  }" } else { b"{}" })?;
        }
        out.write_all(if i + 1 == n { b"\n" } else { b",\n" })?;
    }
    out.write_all(b"}\n")
}

/// The plan without its scenario matrix (every other member cloned).
fn without_matrix(plan: &crate::model::Plan) -> crate::model::Plan {
    let crate::model::Plan {
        schema,
        schema_version,
        plan_id,
        kind,
        description,
        registry_id,
        profiles,
        scenarios: _,
        lanes,
        controls,
        apply_preflight_profile,
        execution,
        variables,
        mission,
    } = plan;
    crate::model::Plan {
        schema: schema.clone(),
        schema_version: *schema_version,
        plan_id: plan_id.clone(),
        kind: *kind,
        description: description.clone(),
        registry_id: registry_id.clone(),
        profiles: profiles.clone(),
        scenarios: BTreeMap::new(),
        lanes: *lanes,
        controls: controls.clone(),
        apply_preflight_profile: apply_preflight_profile.clone(),
        execution: execution.clone(),
        variables: variables.clone(),
        mission: mission.clone(),
    }
}

impl RunDescription<'_> {
    /// `run_manifest.json`.
    fn manifest(&self, preflight: &[PreflightRecord]) -> RunManifest {
        let plan = &self.loaded.plan;
        let symbolic = self.setup.base_vars.with(&[
            ("SCRATCH", "${SCRATCH}"),
            ("HOME", "${HOME}"),
            ("OUTPUT", "${OUTPUT}"),
            ("WORKER_BIN", "${WORKER_BIN}"),
        ]);
        let mut probes = BTreeMap::new();
        for sc in self.scenarios.iter() {
            let p = &sc.probe;
            probes
                .entry(sc.spec.probe_id.to_string())
                .or_insert_with(|| ResolvedProbe {
                    probe: (**p).clone(),
                    target: p
                        .target
                        .as_ref()
                        .map(|t| symbolic.expand(t).unwrap_or_else(|_| t.clone())),
                    argv: p
                        .argv
                        .iter()
                        .flatten()
                        .map(|a| symbolic.expand(a).unwrap_or_else(|_| a.clone()))
                        .collect(),
                });
        }
        let key = blake3::hash(self.loaded.digest.blake3.as_bytes());
        let profiles = self
            .setup
            .compiled
            .iter()
            .map(|(id, c)| {
                let mut v = compile::to_manifest_value(c);
                redact_env(&mut v, key.as_bytes());
                (id.clone(), v)
            })
            .collect();
        let mut variables: BTreeMap<String, String> = self
            .setup
            .base_vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        variables.insert(
            "SCRATCH".into(),
            if self.loaded.plan.mission.is_some() {
                "(mission tasks: one workspace per lane, <scratch>/mission/<lane>, shared by every task; other scenarios: per child, <scratch>/<lane>/<profile>/<probe>.a<attempt>)".into()
            } else {
                "(per child: <scratch>/<lane>/<profile>/<probe>.a<attempt>)".into()
            },
        );
        for (k, what) in [
            (
                "OUTPUT",
                "(worker tasks: the worker's output directory, ${SCRATCH}/artifacts/<task>; other children: none)",
            ),
            (
                "WORKER_BIN",
                "(worker tasks: the directory holding the checked copy of the worker's executable, <scratch>/workers/<lane>/<task>; other children: none)",
            ),
        ] {
            variables.insert(k.into(), what.into());
        }
        variables.insert(
            "HOME".into(),
            if self.setup.clean {
                "(per child: its ${SCRATCH})".into()
            } else {
                "(the runner's $HOME)".into()
            },
        );
        let governance = self.governance.to_vec();
        RunManifest {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: self.setup.run_id.clone(),
            tool: ToolInfo {
                name: "nexusmon".into(),
                version: crate::VERSION.into(),
            },
            plan_id: plan.plan_id.to_string(),
            plan_path: relative_to(&self.loaded.path, &self.settings.root),
            plan_digest: self.loaded.digest.clone(),
            channel: self.settings.channel,
            host: self.setup.facts.clone(),
            landlock_abi: self.setup.facts.landlock_abi,
            kernel_audit: Some(self.kernel_audit.clone()),
            lanes: LanePolicy {
                lanes: self.lanes.to_vec(),
                baseline_no_new_privs: true,
                scenario_no_new_privs: true,
                scenario_adds: vec![
                    "landlock".into(),
                    "seccomp deny groups".into(),
                    "rlimits".into(),
                    "pids cgroup (limits.processes)".into(),
                ],
            },
            jobs: self.setup.jobs,
            scratch: self.setup.scratch.root().to_string_lossy().into_owned(),
            scratch_kept: self.settings.keep_scratch,
            only_profiles: self.settings.only_profiles.clone(),
            only_scenarios: self.settings.only_scenarios.clone(),
            // Streamed into the file by `write_manifest`.
            selected: Vec::new(),
            command_line: self.settings.command_line.clone(),
            variables,
            // Its `scenarios` streamed into the file by `write_manifest`.
            plan: serde_json::to_value(without_matrix(plan)).unwrap_or(serde_json::Value::Null),
            probes,
            profiles,
            profile_definitions: self
                .loaded
                .profiles
                .iter()
                .map(|(id, p)| (id.to_string(), profile_definition(id.as_str(), p)))
                .collect(),
            preflight: preflight.to_vec(),
            governance,
            listeners: self.setup.listener_notes.clone(),
            housekeeping: self.setup.housekeeping.clone(),
            registry_digests: crate::model::results::RegistryDigests::of(
                &self.loaded.probes,
                &self.loaded.profiles,
            ),
            workers: self
                .loaded
                .workers
                .iter()
                .map(|(k, w)| (k.to_string(), w.identity()))
                .collect(),
            inputs_digest: self.loaded.inputs_digest.clone(),
            started_at: self.started_at.to_string(),
            shard: self.shard.cloned(),
            shards: Vec::new(),
        }
    }
}

/// A profile as written, for `run_manifest.json`'s `profile_definitions` and for the plan
/// inputs an approval is recorded with: secret-looking `env.set` values are replaced by a
/// digest keyed by the profile id, so an unchanged secret reads the same in every run.
pub fn profile_definition(id: &str, p: &crate::model::Profile) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap_or(serde_json::Value::Null);
    let key = blake3::derive_key("nexusmon profile redaction v1", id.as_bytes());
    redact_env(&mut v, &key);
    v
}

/// Values of environment variables whose names look secret are replaced by a keyed digest.
fn redact_env(v: &mut serde_json::Value, key: &[u8; 32]) {
    let Some(set) = v.pointer_mut("/env/set").and_then(|s| s.as_object_mut()) else {
        return;
    };
    for (name, val) in set.iter_mut() {
        let upper = name.to_ascii_uppercase();
        let secret = [
            "TOKEN",
            "SECRET",
            "PASSWORD",
            "PASSWD",
            "KEY",
            "CREDENTIAL",
            "AUTH",
        ]
        .iter()
        .any(|w| upper.contains(w));
        if secret && let Some(s) = val.as_str() {
            let d = blake3::keyed_hash(key, s.as_bytes()).to_hex();
            *val = serde_json::Value::String(format!("<redacted blake3-keyed:{}>", &d[..16]));
        }
    }
}

fn relative_to(p: &Path, root: &Path) -> String {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    abs.strip_prefix(root).map_or_else(
        |_| abs.to_string_lossy().into_owned(),
        |r| r.to_string_lossy().into_owned(),
    )
}

/// Keys of an observation written once in `shared_values.json` when they repeat: what the
/// probe is (the same for every profile), what the profile makes of the child, the
/// helper's witness, the captured streams' counts, what the operation reported (the
/// outcome and stage stay in the line).
const OBSERVATION_GROUPS: &[&[&str]] = &[
    &[
        "argv",
        "driver",
        "lane",
        "operation",
        "probe_id",
        "target",
        "timeout",
    ],
    &["enforcement", "isolation", "processes", "profile_id"],
    &["witness"],
    &["stderr", "stdout"],
    &["detail", "exit_code", "resolved_path"],
];
/// Keys of an oracle verdict shared when they repeat (the probe; the decision and why).
const ORACLE_GROUPS: &[&[&str]] = &[
    &["operation", "probe_id"],
    &["blockers", "checks", "decision", "notes", "reason", "rule"],
];
/// Keys of a path witness shared when they repeat (everything but the scenario).
const WITNESS_GROUPS: &[&[&str]] = &[&["canonical", "exists", "is_symlink", "requested", "role"]];
/// Keys of a normalized row shared when they repeat (the probe; the lanes' cells).
const ROW_GROUPS: &[&[&str]] = &[
    &["control", "expected", "operation", "probe_id", "target"],
    &[
        "attribution",
        "baseline",
        "mismatches",
        "oracle",
        "scenario",
    ],
];

/// Every JSON Lines result file with the key groups its lines share.
pub const LINE_FILES: [(&str, &[&[&str]]); 5] = [
    (RUNTIME_RESULTS, OBSERVATION_GROUPS),
    (BASELINE_RESULTS, OBSERVATION_GROUPS),
    (ORACLE_RESULTS, ORACLE_GROUPS),
    (PATH_WITNESSES, WITNESS_GROUPS),
    (NORMALIZED_ROWS, ROW_GROUPS),
];

/// Everything one scenario adds to the result files.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioLines<'a> {
    /// Its baseline observation.
    pub baseline: Option<&'a Observation>,
    /// Its scenario-lane observation.
    pub scenario: Option<&'a Observation>,
    /// The oracle's verdict.
    pub oracle: Option<&'a OracleVerdict>,
    /// Its path witnesses, sorted by role then requested path.
    pub witnesses: &'a [PathWitness],
    /// Its normalized row.
    pub row: &'a NormalizedRow,
}

/// The result files of a run, written one scenario at a time in scenario-id order: the
/// one write path for a run (and for anything that rewrites results, such as a merge).
/// Scenarios must come sorted (a line out of order is an error, never a silently
/// unsorted file); [`bundle::lines::ReorderWindow`] puts completions in order.
pub struct ResultStream<'b> {
    bundle: &'b StagedBundle,
    w: ResultWriter<BufWriter<StagedFile<'b>>>,
    verdicts: VerdictLines,
    baseline: ReusedLines<Observation>,
    runtime: ReusedLines<Observation>,
    witnesses: ReusedLines<PathWitness>,
    rows: ReusedLines<NormalizedRow>,
}

/// The oracle's lines, each serialized whole only when it differs from the last one
/// serialized in more than its scenario and probe ids: most scenarios of a plan repeat
/// their neighbour's verdict (one program, one target, one profile) but for those, and
/// the verdict (its checks, reasons and cited rules) is most of a scenario's JSON.
pub type VerdictLines = ReusedLines<OracleVerdict>;

/// A verdict's ids, serialized under the names [`OracleVerdict`] gives them.
#[derive(serde::Serialize)]
struct VerdictIds<'a> {
    scenario_id: &'a str,
    probe_id: &'a str,
}

/// True if `a` and `b` are equal in every field but the scenario and probe ids (every
/// field named: a field added to the verdict does not compile here until it is compared).
fn same_but_ids(a: &OracleVerdict, b: &OracleVerdict) -> bool {
    let OracleVerdict {
        scenario_id: _,
        probe_id: _,
        profile_id,
        operation,
        decision,
        reason,
        rule,
        checks,
        blockers,
        notes,
    } = a;
    *decision == b.decision
        && *operation == b.operation
        && *reason == b.reason
        && *rule == b.rule
        && *checks == b.checks
        && *blockers == b.blockers
        && *notes == b.notes
        && *profile_id == b.profile_id
}

impl ReusedLines<OracleVerdict> {
    /// Append the verdict `v`'s line to `rel` of `w` under `key`: the bytes
    /// [`ResultWriter::line`] writes for it.
    pub fn verdict<W: std::io::Write>(
        &mut self,
        w: &mut ResultWriter<W>,
        rel: &str,
        key: &str,
        v: &OracleVerdict,
    ) -> Result<()> {
        let ids = VerdictIds {
            scenario_id: &v.scenario_id,
            probe_id: &v.probe_id,
        };
        self.line(w, (rel, key), v, same_but_ids, &ids)
    }
}

/// A lane's observation lines (and the path witnesses' lines), each serialized whole only
/// when it differs from the last one serialized in more than the fields every child has
/// its own of: most observations of a run repeat their neighbour's probe shape, profile,
/// isolation, enforcement, witness and streams, and differ in their scenario and probe ids
/// and resource usage (a path witness: in its scenario id). The line is then those fields'
/// members put over the last whole serialization's ([`ResultWriter::line_over`]), which is
/// byte for byte what serializing it whole gives: every other field is equal, compared
/// field by field ([`observation_same_but_own`], [`witness_same_but_id`]).
#[derive(Debug)]
pub struct ReusedLines<T> {
    /// The last item serialized whole, and its members.
    last: Option<T>,
    members: json::Members,
}

impl<T> Default for ReusedLines<T> {
    fn default() -> Self {
        Self {
            last: None,
            members: json::Members::default(),
        }
    }
}

/// An observation's own fields, serialized under the names [`Observation`] gives them
/// (`rusage` is its deciding attempt's, flattened into the observation).
#[derive(serde::Serialize)]
struct ObservationOwn<'a> {
    scenario_id: &'a str,
    probe_id: &'a str,
    rusage: &'a crate::model::results::Rusage,
}

/// A row's own fields, under the names [`NormalizedRow`] gives them (the names are the
/// row's keys, so they cannot lose their common postfix).
#[derive(serde::Serialize)]
#[allow(clippy::struct_field_names)]
struct RowOwn<'a> {
    scenario_id: &'a str,
    profile_id: &'a str,
    probe_id: &'a str,
}

/// True if two rows are equal in every field but the scenario, profile and probe ids.
fn row_same_but_ids(a: &NormalizedRow, b: &NormalizedRow) -> bool {
    let NormalizedRow {
        scenario_id: _,
        profile_id: _,
        probe_id: _,
        operation,
        target,
        expected,
        control,
        baseline,
        scenario,
        oracle,
        attribution,
        mismatches,
        flaky,
        task_id,
        depends_on,
        skipped_because,
    } = a;
    *operation == b.operation
        && *target == b.target
        && *expected == b.expected
        && *control == b.control
        && *baseline == b.baseline
        && *scenario == b.scenario
        && *oracle == b.oracle
        && *attribution == b.attribution
        && *mismatches == b.mismatches
        && *flaky == b.flaky
        && *task_id == b.task_id
        && *depends_on == b.depends_on
        && *skipped_because == b.skipped_because
}

/// A path witness's own field, under the name [`PathWitness`] gives it.
#[derive(serde::Serialize)]
struct WitnessOwn<'a> {
    scenario_id: &'a str,
}

/// True if `a` and `b` are equal in every serialized field but the scenario id, the probe
/// id and the deciding attempt's `rusage` (every field named: a field added to either
/// struct does not compile here until it is compared). The witness, a JSON value, is
/// compared by [`json_identical`] (equal values that print differently, `0.0` and `-0.0`,
/// are not the same); the attempt's `trace` is never serialized.
fn observation_same_but_own(a: &Observation, b: &Observation) -> bool {
    let Observation {
        scenario_id: _,
        profile_id,
        probe_id: _,
        lane,
        operation,
        driver,
        target,
        argv,
        timeout,
        result,
        attempts,
        flaky,
        task_id,
        skipped_because,
    } = a;
    *profile_id == b.profile_id
        && *lane == b.lane
        && *operation == b.operation
        && *driver == b.driver
        && *target == b.target
        && *flaky == b.flaky
        && *task_id == b.task_id
        && *skipped_because == b.skipped_because
        && *timeout == b.timeout
        && *argv == b.argv
        && attempt_same_but_rusage(result, &b.result)
        && attempts.len() == b.attempts.len()
        && attempts
            .iter()
            .zip(&b.attempts)
            // Every attempt's rusage is written in `attempts`: compared there.
            .all(|(x, y)| x.rusage == y.rusage && attempt_same_but_rusage(x, y))
}

/// True if two attempts are equal in every serialized field but `rusage`.
fn attempt_same_but_rusage(
    a: &crate::model::results::Attempt,
    b: &crate::model::results::Attempt,
) -> bool {
    let crate::model::results::Attempt {
        attempt,
        outcome,
        stage,
        errno,
        errno_name,
        detail,
        exit_code,
        signal,
        resolved_path,
        witness,
        enforcement,
        rusage: _,
        stdout,
        stderr,
        leaked,
        processes,
        isolation,
        worker,
        kernel_denials,
        trace: _,
    } = a;
    *attempt == b.attempt
        && *outcome == b.outcome
        && *stage == b.stage
        && *errno == b.errno
        && *errno_name == b.errno_name
        && *detail == b.detail
        && *exit_code == b.exit_code
        && *signal == b.signal
        && *resolved_path == b.resolved_path
        && match (witness, &b.witness) {
            (None, None) => true,
            (Some(x), Some(y)) => json_identical(x, y),
            _ => false,
        }
        && *enforcement == b.enforcement
        && *stdout == b.stdout
        && *stderr == b.stderr
        && *leaked == b.leaked
        && *processes == b.processes
        && *isolation == b.isolation
        && *worker == b.worker
        && *kernel_denials == b.kernel_denials
}

/// True if two JSON values print the same: `==`, with numbers also of the same kind and,
/// for floats, the same bits (`0.0 == -0.0`, yet they print differently).
fn json_identical(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => {
            x.as_u64() == y.as_u64()
                && x.as_i64() == y.as_i64()
                && x.is_f64() == y.is_f64()
                && x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_identical(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, x), (ky, y))| kx == ky && json_identical(x, y))
        }
        _ => false,
    }
}

/// True if two path witnesses are equal in every field but the scenario id.
fn witness_same_but_id(a: &PathWitness, b: &PathWitness) -> bool {
    let PathWitness {
        scenario_id: _,
        role,
        requested,
        canonical,
        is_symlink,
        exists,
    } = a;
    *role == b.role
        && *requested == b.requested
        && *canonical == b.canonical
        && *is_symlink == b.is_symlink
        && *exists == b.exists
}

impl<T: serde::Serialize + Clone> ReusedLines<T> {
    /// Append `item`'s line to `rel` of `w` under `key`: the bytes [`ResultWriter::line`]
    /// writes for it. `same` tells whether the last item serialized whole equals `item`
    /// in every field but those `own` serializes, which must be fields `item` always
    /// writes, under the same names.
    fn line<W: std::io::Write, O: serde::Serialize>(
        &mut self,
        w: &mut ResultWriter<W>,
        (rel, key): (&str, &str),
        item: &T,
        same: fn(&T, &T) -> bool,
        own: &O,
    ) -> Result<()> {
        if !self.last.as_ref().is_some_and(|last| same(last, item)) {
            // Out while the members are refilled: kept again only once they are `item`'s.
            let mut last = self.last.take();
            let object = self
                .members
                .fill(item)
                .map_err(|e| Error::runner("cannot serialize JSON").with_source(e))?;
            if !object {
                return w.line(rel, key, item);
            }
            match &mut last {
                Some(l) => l.clone_from(item),
                None => last = Some(item.clone()),
            }
            self.last = last;
        }
        w.line_over(rel, key, own, &self.members)
    }
}

impl ReusedLines<Observation> {
    /// Append the observation `o`'s line to `rel` of `w` under `key`.
    pub fn observation<W: std::io::Write>(
        &mut self,
        w: &mut ResultWriter<W>,
        rel: &str,
        key: &str,
        o: &Observation,
    ) -> Result<()> {
        let own = ObservationOwn {
            scenario_id: &o.scenario_id,
            probe_id: &o.probe_id,
            rusage: &o.result.rusage,
        };
        self.line(w, (rel, key), o, observation_same_but_own, &own)
    }
}

impl ReusedLines<NormalizedRow> {
    /// Append the row `row`'s line to `rel` of `w` under `key`.
    pub fn row<W: std::io::Write>(
        &mut self,
        w: &mut ResultWriter<W>,
        rel: &str,
        key: &str,
        row: &NormalizedRow,
    ) -> Result<()> {
        let own = RowOwn {
            scenario_id: &row.scenario_id,
            profile_id: &row.profile_id,
            probe_id: &row.probe_id,
        };
        self.line(w, (rel, key), row, row_same_but_ids, &own)
    }
}

impl ReusedLines<PathWitness> {
    /// Append the path witness `p`'s line to `rel` of `w` under `key`.
    pub fn witness<W: std::io::Write>(
        &mut self,
        w: &mut ResultWriter<W>,
        rel: &str,
        key: &str,
        p: &PathWitness,
    ) -> Result<()> {
        let own = WitnessOwn {
            scenario_id: &p.scenario_id,
        };
        self.line(w, (rel, key), p, witness_same_but_id, &own)
    }
}

impl<'b> ResultStream<'b> {
    /// Open every result file in `bundle`.
    pub fn begin(bundle: &'b StagedBundle) -> Result<Self> {
        let mut w = ResultWriter::new(lines::MAX_SHARED_VALUES);
        for (rel, groups) in LINE_FILES {
            w.add_file(rel, BufWriter::new(bundle.create_file(rel)?), groups);
        }
        Ok(Self {
            bundle,
            w,
            verdicts: VerdictLines::default(),
            baseline: ReusedLines::default(),
            runtime: ReusedLines::default(),
            witnesses: ReusedLines::default(),
            rows: ReusedLines::default(),
        })
    }

    /// Append one scenario's lines.
    pub fn scenario(&mut self, s: &ScenarioLines<'_>) -> Result<()> {
        let key = s.row.scenario_id.as_str();
        if let Some(o) = s.baseline {
            self.baseline
                .observation(&mut self.w, BASELINE_RESULTS, key, o)?;
        }
        if let Some(o) = s.scenario {
            self.runtime
                .observation(&mut self.w, RUNTIME_RESULTS, key, o)?;
        }
        if let Some(v) = s.oracle {
            self.verdicts.verdict(&mut self.w, ORACLE_RESULTS, key, v)?;
        }
        for p in s.witnesses {
            self.witnesses
                .witness(&mut self.w, PATH_WITNESSES, &p.scenario_id, p)?;
        }
        self.rows.row(&mut self.w, NORMALIZED_ROWS, key, s.row)
    }

    /// Scenario rows written so far.
    pub fn scenarios(&self) -> u64 {
        self.w.lines(NORMALIZED_ROWS)
    }

    /// Commit every result file and write `shared_values.json`.
    pub fn finish(self) -> Result<()> {
        self.prepare_finish().commit()
    }

    /// Flush every result file and write `shared_values.json` into its temp file, none of
    /// them committed yet: the CPU of the end of the results, which a run does while its
    /// lanes' machinery ends ([`FinishedStream::commit`] once the run may write them).
    /// Dropped uncommitted, nothing of it stays in the bundle. An error is kept for
    /// [`FinishedStream::commit`], which meets it where [`ResultStream::finish`] always did.
    pub fn prepare_finish(self) -> FinishedStream<'b> {
        let (files, shared) = match self.w.finish_files() {
            Ok(f) => f,
            Err(e) => return FinishedStream(Err(e)),
        };
        // Written as it is made: no copy of the whole document (~200 B per distinct value,
        // megabytes at 100,000 scenarios) beside the table at the run's end.
        let rel = lines::SHARED_FILE;
        let shared = self.bundle.create_file(rel).and_then(|f| {
            let mut f = BufWriter::new(f);
            shared
                .write_document(RESULTS_SCHEMA_VERSION, &mut f)
                .and_then(|()| std::io::Write::flush(&mut f))
                .map_err(|e| Error::io("write", Path::new(rel), e))?;
            f.into_inner()
                .map_err(|e| Error::io("write", Path::new(rel), e.into_error()))
        });
        FinishedStream(Ok((files, shared)))
    }
}

/// The result files of a [`ResultStream`], flushed, with `shared_values.json` written (or
/// the error that stopped either), none committed: see [`ResultStream::prepare_finish`].
#[allow(clippy::type_complexity)]
pub struct FinishedStream<'b>(
    Result<(
        BTreeMap<String, BufWriter<StagedFile<'b>>>,
        Result<StagedFile<'b>>,
    )>,
);

impl FinishedStream<'_> {
    /// Commit every result file, then `shared_values.json`: the files, order and errors
    /// of [`ResultStream::finish`] (an error writing the shared values is met after the
    /// result files were committed, as there).
    pub fn commit(self) -> Result<()> {
        let (files, shared) = self.0?;
        for (rel, f) in files {
            let f = f
                .into_inner()
                .map_err(|e| Error::io("write result file", Path::new(&rel), e.into_error()))?;
            f.commit()?;
        }
        shared?.commit()?;
        Ok(())
    }
}

/// What [`write_results`] wrote, read back from a sealed bundle through its strict reader
/// (every line verified against the seal, `$shared` values expanded): the observations of
/// both executing lanes, the oracle's verdicts and the path witnesses. The one place that
/// reads those files whole (durations for `run --shard`, `merge-bundles`); it holds every
/// observation, so its memory is linear in the bundle's scenarios.
#[derive(Debug, Clone)]
pub struct ResultsRead {
    /// `runtime_results.jsonl`.
    pub runtime: crate::model::results::LaneResults,
    /// `baseline_results.jsonl`.
    pub baseline: crate::model::results::LaneResults,
    /// `oracle_results.jsonl`.
    pub oracle: crate::model::results::OracleResults,
    /// `path_witnesses.jsonl`.
    pub witnesses: crate::model::results::PathWitnesses,
}

/// Read the results [`write_results`] wrote into the sealed bundle `b`.
pub fn read_results(b: &crate::bundle::Bundle) -> Result<ResultsRead> {
    let shared = b.shared_values()?;
    let lane = |rel: &str, lane: Lane| -> Result<crate::model::results::LaneResults> {
        Ok(crate::model::results::LaneResults {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: b.run_id.clone(),
            lane,
            observations: all_lines(b, rel, &shared)?,
        })
    };
    Ok(ResultsRead {
        runtime: lane(RUNTIME_RESULTS, Lane::Scenario)?,
        baseline: lane(BASELINE_RESULTS, Lane::Baseline)?,
        oracle: crate::model::results::OracleResults {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: b.run_id.clone(),
            verdicts: all_lines(b, ORACLE_RESULTS, &shared)?,
        },
        witnesses: crate::model::results::PathWitnesses {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: b.run_id.clone(),
            witnesses: all_lines(b, PATH_WITNESSES, &shared)?,
        },
    })
}

/// Every line of result file `rel` of `b`, expanded with `shared` and verified.
fn all_lines<T: serde::de::DeserializeOwned>(
    b: &crate::bundle::Bundle,
    rel: &str,
    shared: &lines::SharedValues,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    b.for_each_line(rel, shared, &mut |item| {
        out.push(item);
        Ok(())
    })?;
    Ok(out)
}

/// Write every result file from [`Assembled`], then the documents made of the whole run
/// (mismatch summary and packets, `summary.json`, `summary.md`).
pub fn write_results(
    bundle: &StagedBundle,
    run: &Assembled,
    preflight: &[PreflightRecord],
    governance: Option<&crate::model::view::GovernanceView>,
) -> Result<()> {
    let mut stream = ResultStream::begin(bundle)?;
    let (mut bi, mut si, mut oi, mut wi) = (0, 0, 0, 0);
    for row in &run.rows {
        let id = row.scenario_id.as_str();
        let baseline = take(&run.baseline.observations, &mut bi, id);
        let scenario = take(&run.runtime.observations, &mut si, id);
        let oracle = run.oracle.verdicts.get(oi).filter(|v| v.scenario_id == id);
        oi += usize::from(oracle.is_some());
        let from = wi;
        while run
            .witnesses
            .witnesses
            .get(wi)
            .is_some_and(|x| x.scenario_id == id)
        {
            wi += 1;
        }
        stream.scenario(&ScenarioLines {
            baseline,
            scenario,
            oracle,
            witnesses: &run.witnesses.witnesses[from..wi],
            row,
        })?;
    }
    stream.finish()?;
    write_run_end(
        bundle,
        &RunEnd {
            rows: &run.rows,
            packets: &run.packets,
            mismatch_summary: &run.mismatch_summary,
            summary: &run.summary,
        },
        preflight,
        governance,
    )
}

/// What the documents made of the whole run are made of.
#[derive(Debug, Clone, Copy)]
pub struct RunEnd<'a> {
    /// The rows a report lists (every row, or the notable ones of a large streamed run).
    pub rows: &'a [NormalizedRow],
    /// Every mismatch packet.
    pub packets: &'a [MismatchPacket],
    /// `mismatch_summary.json`.
    pub mismatch_summary: &'a MismatchSummary,
    /// `summary.json`.
    pub summary: &'a Summary,
}

/// The observation of scenario `id` at `list[*i]`, if it is there (then `*i` moves on).
fn take<'a>(list: &'a [Observation], i: &mut usize, id: &str) -> Option<&'a Observation> {
    let hit = list.get(*i).filter(|x| x.scenario_id == id);
    *i += usize::from(hit.is_some());
    hit
}

/// The documents made of the whole run: `mismatch_summary.json`, `mismatch_packets.jsonl`,
/// `summary.json` and `summary.md`.
pub fn write_run_end(
    bundle: &StagedBundle,
    a: &RunEnd<'_>,
    preflight: &[PreflightRecord],
    governance: Option<&crate::model::view::GovernanceView>,
) -> Result<()> {
    render_run_end(a, preflight, governance)?.write(bundle)
}

/// The files [`write_run_end`] writes, made in memory (their size is bounded: the kept
/// rows and packets, not the plan): a run makes them while its result files are finished
/// on another thread, and writes them once those are committed.
#[derive(Debug)]
pub struct RunEndFiles(Vec<(&'static str, Vec<u8>)>);

impl RunEndFiles {
    /// Write every file, in the order [`write_run_end`] always wrote them.
    pub fn write(self, bundle: &StagedBundle) -> Result<()> {
        for (rel, bytes) in self.0 {
            bundle.write_bytes(rel, &bytes)?;
        }
        Ok(())
    }
}

/// The bytes of the files [`write_run_end`] writes.
pub fn render_run_end(
    a: &RunEnd<'_>,
    preflight: &[PreflightRecord],
    governance: Option<&crate::model::view::GovernanceView>,
) -> Result<RunEndFiles> {
    let mismatch_summary = json::to_sorted_pretty(a.mismatch_summary)?;
    let mut jsonl = String::new();
    for p in a.packets {
        jsonl.push_str(&json::to_sorted_line(p)?);
        jsonl.push('\n');
    }
    let summary = json::to_sorted_pretty(a.summary)?;
    let rows = crate::report::Slices {
        rows: a.rows,
        mismatches: a.packets,
        oracle: &[],
        details: None,
    };
    let report = crate::report::RunReport {
        summary: a.summary,
        rows: &rows,
        preflight,
        governance,
        view: None,
        links: "",
    };
    let markdown = crate::report::render(&crate::report::markdown::SummaryMarkdown, &report)?;
    Ok(RunEndFiles(vec![
        ("mismatch_summary.json", mismatch_summary),
        ("mismatch_packets.jsonl", jsonl.into_bytes()),
        ("summary.json", summary),
        ("summary.md", markdown),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end of a streamed run's results made on another thread: generated scenarios
    /// (seeded: ids, outcomes, a lane or the oracle missing, witnesses or none) written
    /// through a [`ResultStream`] three ways. `prepare_finish` then `commit` reads back
    /// exactly what `finish` does (and what was written); a prepared stream dropped
    /// uncommitted (a run whose log check failed) leaves none of the result files and no
    /// temp file in the sealed bundle.
    #[test]
    fn a_prepared_result_stream_commits_what_finish_writes_and_dropped_leaves_nothing() {
        use crate::bundle::{BeginOptions, LockMode, LockOptions, RESULT_FILES, SealInfo};
        use crate::util::testrng::Rng;
        const OBS: &str = r#"{"attempt":1,"detail":"read 267 bytes","driver":"builtin","exit_code":0,"isolation":{"gid":0,"host_read_only":"none","pid_namespace":true,"uid":0},"lane":"LANE","operation":"file-read","outcome":"OUT","probe_id":"PROBE","profile_id":"PROF","resolved_path":"/usr/lib/os-release","rusage":{"max_rss_kib":9644,"sys_us":0,"user_us":166,"wall_us":4407},"scenario_id":"PROF:PROBE","stage":"operation","stderr":{"bytes":0,"kept":0,"truncated":false},"stdout":{"bytes":243,"kept":243,"truncated":false},"target":"/usr/lib/os-release","timeout":{"kill_grace_ms":500,"ms":10000,"source":"default"}}"#;
        const VERDICT: &str = r#"{"checks":[{"decision":"OUT","on":"/usr/lib/os-release","reason":"rule 0 grants it","right":"read-file","role":"target","rule":{"access":["read","exec"],"index":0,"kind":"fs","path":"/usr","resolved_path":"/usr"}}],"decision":"OUT","operation":"file-read","probe_id":"PROBE","profile_id":"PROF","reason":"rule 0 grants it","rule":{"access":["read","exec"],"index":0,"kind":"fs","path":"/usr","resolved_path":"/usr"},"scenario_id":"PROF:PROBE"}"#;
        const WITNESS: &str = r#"{"canonical":"/usr/lib/os-release","exists":true,"is_symlink":false,"requested":"/usr/lib/os-release","role":"target","scenario_id":"PROF:PROBE"}"#;
        const ROW: &str = r#"{"attribution":"unaffected","baseline":{"outcome":"OUT","stage":"operation"},"expected":"allow","operation":"file-read","oracle":{"decision":"OUT","reason":"rule 0 grants it"},"probe_id":"PROBE","profile_id":"PROF","scenario":{"outcome":"OUT","stage":"operation"},"scenario_id":"PROF:PROBE","target":"/usr/lib/os-release"}"#;
        fn fill<T: serde::de::DeserializeOwned>(
            t: &str,
            prof: &str,
            probe: &str,
            out: &str,
            lane: &str,
        ) -> T {
            serde_json::from_str(
                &t.replace("PROF", prof)
                    .replace("PROBE", probe)
                    .replace("OUT", out)
                    .replace("LANE", lane),
            )
            .unwrap()
        }
        type Scenario = (
            Option<Observation>,
            Option<Observation>,
            Option<OracleVerdict>,
            Vec<crate::model::results::PathWitness>,
            crate::model::results::NormalizedRow,
        );
        let write = |out: &Path, scenarios: &[Scenario], how: u8| -> crate::bundle::Sealed {
            let bundle = StagedBundle::begin(&BeginOptions {
                out_root: out.to_path_buf(),
                run_id: Some("r1".into()),
                lock: LockOptions {
                    mode: LockMode::Fail,
                    timeout: std::time::Duration::ZERO,
                },
            })
            .unwrap();
            for f in RESULT_FILES {
                bundle.expect(f);
            }
            let mut stream = ResultStream::begin(&bundle).unwrap();
            for (b, s, o, w, row) in scenarios {
                stream
                    .scenario(&ScenarioLines {
                        baseline: b.as_ref(),
                        scenario: s.as_ref(),
                        oracle: o.as_ref(),
                        witnesses: w,
                        row,
                    })
                    .unwrap();
            }
            match how {
                0 => stream.finish().unwrap(),
                1 => std::thread::scope(|s| {
                    s.spawn(move || stream.prepare_finish())
                        .join()
                        .unwrap()
                        .commit()
                        .unwrap();
                }),
                _ => drop(std::thread::scope(|s| {
                    s.spawn(move || stream.prepare_finish()).join().unwrap()
                })),
            }
            bundle.seal(SealInfo::complete()).unwrap()
        };
        let mut rng = Rng(0x00f1_e1d5);
        for round in 0..12 {
            let n = rng.below(60usize);
            let profiles = ["a", "b-1", "c"];
            let mut ids: Vec<(String, String)> = (0..n)
                .map(|i| {
                    (
                        profiles[rng.below(3usize)].to_string(),
                        format!("p{:04}", i * 7 + rng.below(7usize)),
                    )
                })
                .collect();
            ids.sort();
            ids.dedup();
            let scenarios: Vec<Scenario> = ids
                .iter()
                .map(|(prof, probe)| {
                    let out = ["allow", "deny"][rng.below(2usize)];
                    (
                        rng.chance(80)
                            .then(|| fill(OBS, prof, probe, out, "baseline")),
                        rng.chance(90)
                            .then(|| fill(OBS, prof, probe, out, "scenario")),
                        rng.chance(70).then(|| fill(VERDICT, prof, probe, out, "")),
                        (0..rng.below(3usize))
                            .map(|_| fill(WITNESS, prof, probe, out, ""))
                            .collect(),
                        fill(ROW, prof, probe, out, ""),
                    )
                })
                .collect();
            let tmp = tempfile::tempdir().unwrap();
            let read = |how: u8| {
                let out = tmp.path().join(format!("out{how}"));
                let sealed = write(&out, &scenarios, how);
                let b = crate::bundle::load_bundle(&sealed.dir).unwrap();
                (sealed, b)
            };
            let (_, whole) = read(0);
            let (_, prepared) = read(1);
            let (a, b) = (
                read_results(&whole).unwrap(),
                read_results(&prepared).unwrap(),
            );
            assert_eq!(
                a.baseline.observations, b.baseline.observations,
                "round {round}"
            );
            assert_eq!(
                a.runtime.observations, b.runtime.observations,
                "round {round}"
            );
            assert_eq!(a.oracle.verdicts, b.oracle.verdicts, "round {round}");
            assert_eq!(
                a.witnesses.witnesses, b.witnesses.witnesses,
                "round {round}"
            );
            let written: Vec<&Observation> =
                scenarios.iter().filter_map(|s| s.1.as_ref()).collect();
            assert_eq!(
                b.runtime.observations.iter().collect::<Vec<_>>(),
                written,
                "round {round}"
            );
            let (dropped, _) = read(2);
            for f in RESULT_FILES {
                assert!(
                    dropped.index.missing.iter().any(|m| m == f),
                    "round {round}: {f} in a bundle whose results were never committed"
                );
            }
            let mut names = Vec::new();
            for e in std::fs::read_dir(&dropped.dir).unwrap() {
                names.push(e.unwrap().file_name().to_string_lossy().into_owned());
            }
            assert!(
                !names.iter().any(|n| n.starts_with(".tmp.")),
                "round {round}: {names:?}"
            );
        }
    }

    #[test]
    fn a_map_filled_in_one_entry_at_a_time_is_the_whole_document_through_sorted_pretty() {
        // Seeded documents with a map at a pointer (top level or nested, empty or not, its
        // values nested objects and arrays with strings to escape) written through
        // `map_fill`: the bytes of the whole document through `to_sorted_pretty`.
        use crate::util::testrng::Rng;
        use serde_json::{Value, json};
        fn value(r: &mut Rng, depth: u32) -> Value {
            match if depth > 2 {
                r.below(3u32)
            } else {
                r.below(6u32)
            } {
                0 => json!(r.below(1000u32)),
                1 => json!(["a\n\"b\"", "\u{e9}", "~/"][r.below(3usize)]),
                2 => Value::Null,
                3 => Value::Array((0..r.below(3u32)).map(|_| value(r, depth + 1)).collect()),
                _ => Value::Object(
                    (0..r.below(4u32))
                        .map(|i| {
                            (
                                format!("{}{i}", ["z", "a", "m~", "b/"][r.below(4usize)]),
                                value(r, depth + 1),
                            )
                        })
                        .collect(),
                ),
            }
        }
        let mut r = Rng(1166);
        for _ in 0..150 {
            let entries: BTreeMap<String, Value> = (0..r.below(6u32))
                .map(|i| {
                    (
                        format!("{}{i}", ["p", "a-b", "q\"x"][r.below(3usize)]),
                        value(&mut r, 0),
                    )
                })
                .collect();
            let nested = r.chance(50);
            let mut whole = json!({"schema_version": 2, "z": [1, {"y": null}], "a": {}});
            let mut head = whole.clone();
            let pointer = if nested {
                whole["plan"] = json!({"id": "x", "probes": entries});
                head["plan"] = json!({"id": "x", "probes": null});
                "/plan/probes"
            } else {
                whole["probes"] = json!(entries);
                head["probes"] = Value::Null;
                "/probes"
            };
            let mut out = Vec::new();
            let mut fills: Vec<(&str, json::Fill<'_>)> = vec![(pointer, map_fill(entries))];
            json::write_pretty_with(&head, &mut fills, &mut out).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(json::to_sorted_pretty(&whole).unwrap()).unwrap()
            );
        }
    }

    /// The streamed map document is byte-identical to the whole document through
    /// `to_sorted_pretty`, for empty, one-entry and nested maps.
    #[test]
    fn a_streamed_map_document_is_byte_identical_to_sorted_pretty_json() {
        for n in [0usize, 1, 3] {
            let entries: Vec<(String, serde_json::Value)> = (0..n)
                .map(|i| {
                    (
                        format!("p:q{i}"),
                        serde_json::json!({"z": i, "a": {"y": [1, {"b": "x\ny"}], "c": []}, "m": {}}),
                    )
                })
                .collect();
            let whole = serde_json::json!({
                "schema_version": 2,
                "plan_id": "demo",
                "scenarios": entries.iter().cloned().collect::<serde_json::Map<_, _>>(),
            });
            let mut out = Vec::new();
            pretty_map_doc(
                &serde_json::json!({"schema_version": 2, "plan_id": "demo"}),
                "scenarios",
                entries.iter().map(|(k, v)| (k.as_str(), v)),
                &mut out,
            )
            .unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(json::to_sorted_pretty(&whole).unwrap()).unwrap(),
                "{n} entries"
            );
        }
    }

    /// Seeded: the expected matrix's document, written one entry at a time
    /// (`pretty_map_doc`: each entry's value straight at its indentation), is the whole
    /// document through `to_sorted_pretty`, for entries of every shape `sorted`'s
    /// generator makes (nested objects and arrays, escapes, non-string keys, duplicate
    /// keys), and fails where that fails.
    #[test]
    fn a_streamed_map_document_of_generated_entries_is_the_whole_documents_bytes() {
        use crate::util::json::generated::node;
        use crate::util::testrng::Rng;
        let mut r = Rng(0x0e_a7_1c);
        let (mut ok, mut err) = (0, 0);
        for case in 0..400 {
            let entries: Vec<(String, _)> = (0..r.below(5u32))
                .map(|i| {
                    (
                        format!("p{i}:{}", ["a", "q\"x", "\u{e9}"][r.below(3usize)]),
                        node(&mut r, 4),
                    )
                })
                .collect();
            let head = serde_json::json!({"schema_version": 2, "plan_id": "d\n"});
            let mut out = Vec::new();
            let wrote = pretty_map_doc(
                &head,
                "scenarios",
                entries.iter().map(|(k, v)| (k.as_str(), v)),
                &mut out,
            );
            let whole: Option<serde_json::Map<String, serde_json::Value>> = entries
                .iter()
                .map(|(k, v)| serde_json::to_value(v).ok().map(|v| (k.clone(), v)))
                .collect();
            let Some(whole) = whole else {
                assert!(wrote.is_err(), "case {case}: the value path fails");
                err += 1;
                continue;
            };
            let mut doc = head.clone();
            doc["scenarios"] = serde_json::Value::Object(whole);
            assert!(wrote.is_ok(), "case {case}");
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(json::to_sorted_pretty(&doc).unwrap()).unwrap(),
                "case {case}"
            );
            ok += 1;
        }
        assert!(ok > 100 && err > 5, "ok {ok}, errors {err}");
    }

    /// A verdict of the shapes the oracle makes: ids, a few checks with reasons and cited
    /// rules (strings to escape among them), blockers and notes sometimes.
    fn gen_verdict(r: &mut crate::util::testrng::Rng) -> OracleVerdict {
        use crate::model::registry::Operation;
        use crate::model::results::{CitedRule, OracleCheck, OracleDecision};
        let words = [
            "/usr/bin/true",
            "a \"quoted\" \\ path",
            "\u{1}\u{e9}",
            "",
            "rule 0",
        ];
        let decision = |r: &mut crate::util::testrng::Rng| {
            *r.pick(&[
                OracleDecision::Allow,
                OracleDecision::Deny,
                OracleDecision::NotEnforceable,
            ])
        };
        let rule = |r: &mut crate::util::testrng::Rng| CitedRule {
            kind: (*r.pick(&["fs", "absent", "unhandled"])).to_string(),
            index: r.chance(50).then(|| r.below(3u32)),
            path: r.chance(50).then(|| (*r.pick(&words)).to_string()),
            resolved_path: r.chance(30).then(|| (*r.pick(&words)).to_string()),
            access: (0..r.below(3usize))
                .map(|_| (*r.pick(&["read", "exec"])).to_string())
                .collect(),
            port: r.chance(10).then(|| r.below(65_535u16)),
        };
        let checks = (0..r.below(4usize))
            .map(|_| OracleCheck {
                right: (*r.pick(&["read-file", "execute"])).to_string(),
                on: (*r.pick(&words)).to_string(),
                role: (*r.pick(&["program", "library"])).to_string(),
                decision: decision(r),
                reason: (*r.pick(&words)).to_string(),
                rule: rule(r),
            })
            .collect();
        let probe = format!("p{}", r.below(40u32));
        OracleVerdict {
            scenario_id: format!("{}:{probe}", r.pick(&["a", "b"])),
            profile_id: (*r.pick(&["a", "b"])).to_string(),
            probe_id: probe,
            operation: *r.pick(&[Operation::Exec, Operation::FileRead]),
            decision: decision(r),
            reason: (*r.pick(&words)).to_string(),
            rule: rule(r),
            checks,
            blockers: (0..r.below(2usize))
                .map(|_| (*r.pick(&["fs.read_file", "fs.execute"])).to_string())
                .collect(),
            notes: (0..r.below(2usize))
                .map(|_| (*r.pick(&words)).to_string())
                .collect(),
        }
    }

    /// Seeded sequences of verdicts, most repeating an earlier one but for their ids, some
    /// changed in one field: the oracle's lines written through [`VerdictLines`] (the
    /// repeated members reused) are byte for byte those of [`ResultWriter::line`], with the
    /// same shared values, under shared-value caps that fill.
    #[test]
    fn verdict_lines_reusing_members_are_the_whole_serializations_bytes() {
        use crate::util::testrng::Rng;
        let mut reused = 0;
        for seed in 0..40u64 {
            let mut r = Rng(seed);
            let cap = *r.pick(&[lines::MAX_SHARED_VALUES, 3, 0]);
            let groups = LINE_FILES
                .iter()
                .find(|(f, _)| *f == ORACLE_RESULTS)
                .map(|(_, g)| *g)
                .unwrap();
            let mut fast = ResultWriter::new(cap);
            fast.add_file(ORACLE_RESULTS, Vec::new(), groups);
            let mut slow = ResultWriter::new(cap);
            slow.add_file(ORACLE_RESULTS, Vec::new(), groups);
            let mut verdicts = VerdictLines::default();
            let mut pool: Vec<OracleVerdict> = (0..3).map(|_| gen_verdict(&mut r)).collect();
            let mut prev = gen_verdict(&mut r);
            for i in 0..200 {
                // Mostly the previous scenario's verdict again (a run of one program).
                let mut v = if r.chance(70) {
                    prev.clone()
                } else {
                    r.pick(&pool).clone()
                };
                let fresh = gen_verdict(&mut r);
                match r.below(10u32) {
                    0 => v = fresh,
                    1 => v.reason = fresh.reason,
                    2 => v.checks = fresh.checks,
                    3 => v.notes = fresh.notes,
                    4 => v.profile_id = fresh.profile_id,
                    _ => {
                        v.scenario_id = fresh.scenario_id;
                        v.probe_id = fresh.probe_id;
                    }
                }
                if r.chance(5) {
                    pool.push(v.clone());
                }
                let key = format!("s{i:05}");
                let hit = verdicts.last.as_ref().is_some_and(|l| same_but_ids(l, &v));
                reused += usize::from(hit);
                verdicts
                    .verdict(&mut fast, ORACLE_RESULTS, &key, &v)
                    .unwrap();
                slow.line(ORACLE_RESULTS, &key, &v).unwrap();
                prev = v;
            }
            let (a, da) = fast.finish(2).unwrap();
            let (b, db) = slow.finish(2).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&a[ORACLE_RESULTS]),
                String::from_utf8_lossy(&b[ORACLE_RESULTS]),
                "seed {seed}"
            );
            assert_eq!(da, db, "seed {seed}");
        }
        assert!(reused > 2500, "reused {reused}");
    }

    /// An observation of the shapes a lane makes: ids, rusage, a witness (a JSON value
    /// with floats whose sign only their printing tells), streams, enforcement, isolation
    /// and process accounting sometimes, retried attempts sometimes.
    fn gen_observation(r: &mut crate::util::testrng::Rng) -> Observation {
        use crate::model::registry::Operation;
        use crate::model::results::{
            Attempt, ChildIsolation, Enforcement, Leaked, Outcome, ProcessAccounting,
            RulesetStatus, Rusage, Stage, StreamCapture, TimeoutSetting, TimeoutSource,
        };
        let words = [
            "/usr/bin/true",
            "a \"quoted\" \\ path",
            "\u{1}\u{e9}",
            "",
            "x",
        ];
        let rusage = |r: &mut crate::util::testrng::Rng| Rusage {
            wall_us: r.below(3u64),
            user_us: r.below(3u64),
            sys_us: r.below(2u64),
            max_rss_kib: r.below(2u64),
        };
        let capture = |r: &mut crate::util::testrng::Rng| StreamCapture {
            bytes: r.below(3u64),
            kept: r.below(2u64),
            truncated: r.chance(20),
            log: r.chance(20).then(|| (*r.pick(&words)).to_string()),
            complete: !r.chance(10),
        };
        let witness = |r: &mut crate::util::testrng::Rng| {
            let n = r
                .pick(&[
                    serde_json::json!(0.0),
                    serde_json::json!(-0.0),
                    serde_json::json!(0),
                    serde_json::json!(-1),
                    serde_json::json!(1.5),
                    serde_json::json!(u64::MAX),
                ])
                .clone();
            serde_json::json!({"errno": n, "path": *r.pick(&words), "list": [n, null, true]})
        };
        let attempt = |r: &mut crate::util::testrng::Rng| Attempt {
            attempt: 1 + r.below(2u32),
            outcome: *r.pick(&[Outcome::Allow, Outcome::Deny, Outcome::Error]),
            stage: *r.pick(&[Stage::Exec, Stage::Operation]),
            errno: r.chance(30).then(|| r.below(3i32)),
            errno_name: r.chance(30).then(|| "EACCES".to_string()),
            detail: (*r.pick(&words)).to_string(),
            exit_code: r.chance(50).then(|| r.below(2i32)),
            signal: r.chance(10).then(|| "SIGKILL".to_string()),
            resolved_path: r.chance(50).then(|| (*r.pick(&words)).to_string()),
            witness: r.chance(70).then(|| witness(r)),
            enforcement: r.chance(70).then(|| Enforcement {
                ruleset: *r.pick(&[RulesetStatus::FullyEnforced, RulesetStatus::NotEnforced]),
                abi: r.chance(50).then(|| r.below(8u8)),
                no_new_privs: r.chance(50),
                seccomp: r.chance(50),
                reported_by: (*r.pick(&words)).to_string(),
            }),
            rusage: rusage(r),
            stdout: capture(r),
            stderr: capture(r),
            leaked: (0..r.below(2usize))
                .map(|_| Leaked {
                    pid: r.below(3u32),
                    comm: (*r.pick(&words)).to_string(),
                    found_by: "cgroup".into(),
                    action: "killed".into(),
                })
                .collect(),
            processes: r.chance(50).then(|| ProcessAccounting {
                limit: r.below(3u64),
                peak: r.chance(50).then(|| r.below(3u64)),
                refused_forks: r.chance(20).then(|| r.below(2u64)),
                enforced_by: "pids".into(),
            }),
            isolation: r.chance(50).then(|| ChildIsolation {
                uid: r.below(2u32),
                gid: r.below(2u32),
                capabilities: (0..r.below(2usize)).map(|_| "CAP_X".to_string()).collect(),
                pid_namespace: r.chance(50),
                pid_namespace_reason: r.chance(20).then(|| (*r.pick(&words)).to_string()),
                host_read_only: (*r.pick(&words)).to_string(),
                read_only_inputs: Vec::new(),
                read_only_inputs_reason: None,
            }),
            worker: None,
            kernel_denials: None,
            trace: None,
        };
        let probe = format!("p{}", r.below(40u32));
        let result = attempt(r);
        Observation {
            scenario_id: format!("{}:{probe}", r.pick(&["a", "b"])),
            profile_id: (*r.pick(&["a", "b"])).to_string(),
            probe_id: probe,
            lane: *r.pick(&[Lane::Baseline, Lane::Scenario]),
            operation: *r.pick(&[Operation::Exec, Operation::FileRead]),
            driver: (*r.pick(&["exec", "builtin"])).to_string(),
            target: r.chance(50).then(|| (*r.pick(&words)).to_string()),
            argv: (0..r.below(3usize))
                .map(|_| (*r.pick(&words)).to_string())
                .collect(),
            timeout: TimeoutSetting {
                ms: r.below(3u64),
                source: *r.pick(&[TimeoutSource::Probe, TimeoutSource::Default]),
                kill_grace_ms: r.below(2u64),
            },
            attempts: if r.chance(20) {
                vec![attempt(r), result.clone()]
            } else {
                Vec::new()
            },
            result,
            flaky: r.chance(10),
            task_id: r.chance(10).then(|| (*r.pick(&words)).to_string()),
            skipped_because: None,
        }
    }

    /// A normalized row of the shapes assembling makes.
    fn gen_row(r: &mut crate::util::testrng::Rng) -> NormalizedRow {
        use crate::model::plan::Expectation;
        use crate::model::registry::Operation;
        use crate::model::results::{
            Attribution, LaneCell, MismatchKind, OracleCell, OracleDecision, Outcome, Stage,
        };
        let cell = |r: &mut crate::util::testrng::Rng| {
            r.chance(80).then(|| LaneCell {
                outcome: *r.pick(&[Outcome::Allow, Outcome::Deny]),
                stage: *r.pick(&[Stage::Exec, Stage::Operation]),
                errno_name: r.chance(30).then(|| "EACCES".to_string()),
            })
        };
        let probe = format!("p{}", r.below(40u32));
        NormalizedRow {
            scenario_id: format!("{}:{probe}", r.pick(&["a", "b"])),
            profile_id: (*r.pick(&["a", "b"])).to_string(),
            probe_id: probe,
            operation: *r.pick(&[Operation::Exec, Operation::FileRead]),
            target: r
                .chance(50)
                .then(|| (*r.pick(&["/x", "a \"q\""])).to_string()),
            expected: *r.pick(&[Expectation::Allow, Expectation::Deny]),
            control: r.chance(10),
            baseline: cell(r),
            scenario: cell(r),
            oracle: r.chance(80).then(|| OracleCell {
                decision: *r.pick(&[OracleDecision::Allow, OracleDecision::Deny]),
                reason: (*r.pick(&["rule 0", "\u{1}"])).to_string(),
            }),
            attribution: r
                .chance(70)
                .then(|| *r.pick(&[Attribution::Unaffected, Attribution::ProfileShaped])),
            mismatches: (0..r.below(2usize))
                .map(|_| *r.pick(&[MismatchKind::OracleDivergence, MismatchKind::Inconclusive]))
                .collect(),
            flaky: r.chance(10),
            task_id: None,
            depends_on: Vec::new(),
            skipped_because: None,
        }
    }

    /// Seeded sequences of observations, rows and path witnesses, most repeating the previous
    /// one but for their own fields (ids, rusage), some changed in one other field (a
    /// witness float's sign, a retried attempt's rusage, the isolation, …): the lines
    /// [`ReusedLines`] writes (the repeated members reused) are byte for byte those of
    /// [`ResultWriter::line`], with the same shared values, under caps that fill.
    #[test]
    fn observation_and_witness_lines_reusing_members_are_the_whole_serializations_bytes() {
        use crate::util::testrng::Rng;
        let (mut reused, mut whole) = (0usize, 0usize);
        for seed in 0..40u64 {
            let mut r = Rng(seed);
            let cap = *r.pick(&[lines::MAX_SHARED_VALUES, 3, 0]);
            let mut fast = ResultWriter::new(cap);
            let mut slow = ResultWriter::new(cap);
            for (rel, groups) in LINE_FILES {
                fast.add_file(rel, Vec::new(), groups);
                slow.add_file(rel, Vec::new(), groups);
            }
            let mut obs = ReusedLines::<Observation>::default();
            let mut wit = ReusedLines::<PathWitness>::default();
            let mut rows = ReusedLines::<NormalizedRow>::default();
            let mut prev_row = gen_row(&mut r);
            let mut prev = gen_observation(&mut r);
            let mut prev_w = PathWitness {
                scenario_id: "a:p0".into(),
                role: "program".into(),
                requested: "/bin/true".into(),
                canonical: "/usr/bin/true".into(),
                is_symlink: true,
                exists: true,
            };
            for i in 0..150 {
                let mut o = prev.clone();
                let fresh = gen_observation(&mut r);
                match r.below(16u32) {
                    0 => o = fresh,
                    1 => o.result.witness = fresh.result.witness,
                    2 => o.result.isolation = fresh.result.isolation,
                    3 => o.attempts = fresh.attempts,
                    4 => {
                        if let Some(a) = o.attempts.first_mut() {
                            a.rusage = fresh.result.rusage;
                        }
                    }
                    5 => o.result.detail = fresh.result.detail,
                    6 => o.argv = fresh.argv,
                    7 => o.result.stdout = fresh.result.stdout,
                    _ => {
                        o.scenario_id = fresh.scenario_id;
                        o.probe_id = fresh.probe_id;
                        o.result.rusage = fresh.result.rusage;
                    }
                }
                let mut p = prev_w.clone();
                match r.below(6u32) {
                    0 => p.canonical = (*r.pick(&["/usr/bin/true", "/x"])).to_string(),
                    1 => p.is_symlink = r.chance(50),
                    _ => p.scenario_id = o.scenario_id.clone(),
                }
                let key = format!("s{i:05}");
                let hit = obs
                    .last
                    .as_ref()
                    .is_some_and(|l| observation_same_but_own(l, &o));
                if hit {
                    reused += 1;
                } else {
                    whole += 1;
                }
                let mut row = prev_row.clone();
                let fresh_row = gen_row(&mut r);
                match r.below(8u32) {
                    0 => row = fresh_row,
                    1 => row.oracle = fresh_row.oracle,
                    2 => row.mismatches = fresh_row.mismatches,
                    3 => row.baseline = fresh_row.baseline,
                    _ => {
                        row.scenario_id = fresh_row.scenario_id;
                        row.profile_id = fresh_row.profile_id;
                        row.probe_id = fresh_row.probe_id;
                    }
                }
                rows.row(&mut fast, NORMALIZED_ROWS, &key, &row).unwrap();
                slow.line(NORMALIZED_ROWS, &key, &row).unwrap();
                prev_row = row;
                obs.observation(&mut fast, RUNTIME_RESULTS, &key, &o)
                    .unwrap();
                slow.line(RUNTIME_RESULTS, &key, &o).unwrap();
                wit.witness(&mut fast, PATH_WITNESSES, &key, &p).unwrap();
                slow.line(PATH_WITNESSES, &key, &p).unwrap();
                prev = o;
                prev_w = p;
            }
            let (a, da) = fast.finish(2).unwrap();
            let (b, db) = slow.finish(2).unwrap();
            for rel in [RUNTIME_RESULTS, PATH_WITNESSES, NORMALIZED_ROWS] {
                assert_eq!(
                    String::from_utf8_lossy(&a[rel]),
                    String::from_utf8_lossy(&b[rel]),
                    "seed {seed}, {rel}"
                );
            }
            assert_eq!(da, db, "seed {seed}");
        }
        assert!(
            reused > 2500 && whole > 1000,
            "reused {reused}, whole {whole}"
        );
    }

    /// The comparison of JSON values tells apart exactly the values that print apart.
    #[test]
    fn json_identical_is_printing_the_same() {
        use crate::util::testrng::Rng;
        let atoms = [
            serde_json::json!(0.0),
            serde_json::json!(-0.0),
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(u64::MAX),
            serde_json::json!(null),
            serde_json::json!(false),
            serde_json::json!("0"),
        ];
        let mut r = Rng(7);
        let make = |r: &mut Rng| match r.below(3u32) {
            0 => r.pick(&atoms).clone(),
            1 => serde_json::json!([r.pick(&atoms).clone(), r.pick(&atoms).clone()]),
            _ => serde_json::json!({ *r.pick(&["a", "b"]): r.pick(&atoms).clone() }),
        };
        let (mut same, mut differ) = (0, 0);
        for _ in 0..2000 {
            let a = make(&mut r);
            let b = if r.chance(30) {
                a.clone()
            } else {
                make(&mut r)
            };
            let printed = serde_json::to_string(&a).unwrap() == serde_json::to_string(&b).unwrap();
            assert_eq!(json_identical(&a, &b), printed, "{a} vs {b}");
            if printed { same += 1 } else { differ += 1 }
        }
        assert!(same > 100 && differ > 100, "{same} {differ}");
    }
}
