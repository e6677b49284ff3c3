//! Stage 8, writing: the bundle's documents. Before the lanes: `apply_preflight.json`,
//! `run_manifest.json` (with secret-looking environment values of the profiles redacted to
//! a keyed digest) and `expected_matrix.json` ([`write_run_docs`]); during them, captured
//! output under `logs/` ([`BundleLogs`]); after: every result file from [`Assembled`],
//! byte-identical to key-sorted pretty JSON but streamed one item at a time
//! ([`write_results`]), and `summary.md`.

use std::collections::BTreeMap;
use std::path::Path;

use super::assemble::Assembled;
use super::lanes::LogSink;
use super::seam::ScenarioRun;
use super::settings::RunSettings;
use super::setup::RunSetup;
use crate::bundle::StagedBundle;
use crate::load::LoadedPlan;
use crate::load::mission::expected_entry;
use crate::model::results::{
    ApplyPreflight, ExpectedMatrix, Lane, LanePolicy, LaneResults, PreflightRecord,
    RESULTS_SCHEMA_VERSION, ResolvedProbe, RunManifest, ToolInfo,
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
    pub scenarios: &'a [ScenarioRun],
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
    bundle.write_json("run_manifest.json", &d.manifest(preflight))?;
    bundle.write_json("expected_matrix.json", &d.expected_matrix())
}

impl RunDescription<'_> {
    /// `expected_matrix.json`.
    fn expected_matrix(&self) -> ExpectedMatrix {
        ExpectedMatrix {
            schema_version: RESULTS_SCHEMA_VERSION,
            plan_id: self.loaded.plan.plan_id.to_string(),
            scenarios: self
                .scenarios
                .iter()
                .map(|s| {
                    (
                        s.spec.scenario_id.clone(),
                        expected_entry(&s.spec, s.task.as_ref()),
                    )
                })
                .collect(),
        }
    }

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
        for sc in self.scenarios {
            let p = &sc.probe;
            probes
                .entry(sc.spec.probe_id.to_string())
                .or_insert_with(|| ResolvedProbe {
                    probe: p.clone(),
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
            selected: self
                .scenarios
                .iter()
                .map(|s| s.spec.scenario_id.clone())
                .collect(),
            command_line: self.settings.command_line.clone(),
            variables,
            plan: serde_json::to_value(plan).unwrap_or(serde_json::Value::Null),
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

/// Key-sorted pretty JSON of an object whose field `key` is the list `items`, built one
/// item at a time: the same bytes as `util::json::to_sorted_pretty` of the whole object,
/// without holding a JSON tree of every item (result files of thousands of scenarios).
pub fn pretty_list_doc<T: serde::Serialize>(
    head: &serde_json::Value,
    key: &str,
    items: &[T],
) -> Result<Vec<u8>> {
    let ser = |e: serde_json::Error| Error::runner("cannot serialize JSON").with_source(e);
    let indent = |text: &str, by: &str| text.replace('\n', &format!("\n{by}"));
    let mut fields: BTreeMap<&str, Option<&serde_json::Value>> = head
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), Some(v))).collect())
        .unwrap_or_default();
    fields.insert(key, None);
    let mut out = String::from("{\n");
    let n = fields.len();
    for (i, (k, v)) in fields.into_iter().enumerate() {
        out.push_str("  ");
        out.push_str(&serde_json::to_string(k).map_err(ser)?);
        out.push_str(": ");
        match v {
            Some(v) => out.push_str(&indent(
                &serde_json::to_string_pretty(v).map_err(ser)?,
                "  ",
            )),
            None if items.is_empty() => out.push_str("[]"),
            None => {
                out.push_str("[\n");
                for (j, item) in items.iter().enumerate() {
                    let value = serde_json::to_value(item).map_err(ser)?;
                    out.push_str("    ");
                    out.push_str(&indent(
                        &serde_json::to_string_pretty(&value).map_err(ser)?,
                        "    ",
                    ));
                    out.push_str(if j + 1 == items.len() { "\n" } else { ",\n" });
                }
                out.push_str("  ]");
            }
        }
        out.push_str(if i + 1 == n { "\n" } else { ",\n" });
    }
    out.push_str("}\n");
    Ok(out.into_bytes())
}

fn lane_doc(r: &LaneResults) -> Result<Vec<u8>> {
    pretty_list_doc(
        &serde_json::json!({
            "schema_version": r.schema_version,
            "run_id": r.run_id,
            "lane": r.lane,
        }),
        "observations",
        &r.observations,
    )
}

/// What [`write_results`] wrote, read back from a sealed bundle through its strict reader:
/// the observations of both executing lanes, the oracle's verdicts and the path witnesses.
/// The one place that knows how those files are laid out on the reading side (durations
/// for `run --shard`, `merge-bundles`).
#[derive(Debug, Clone)]
pub struct ResultsRead {
    /// `runtime_results.json`.
    pub runtime: LaneResults,
    /// `baseline_results.json`.
    pub baseline: LaneResults,
    /// `oracle_results.json`.
    pub oracle: crate::model::results::OracleResults,
    /// `path_witnesses.json`.
    pub witnesses: crate::model::results::PathWitnesses,
}

/// Read the results [`write_results`] wrote into the sealed bundle `b`.
pub fn read_results(b: &crate::bundle::Bundle) -> Result<ResultsRead> {
    Ok(ResultsRead {
        runtime: b.read_json("runtime_results.json")?,
        baseline: b.read_json("baseline_results.json")?,
        oracle: b.read_json("oracle_results.json")?,
        witnesses: b.read_json("path_witnesses.json")?,
    })
}

/// Write every result file, then `summary.md`.
pub fn write_results(
    bundle: &StagedBundle,
    a: &Assembled,
    preflight: &[PreflightRecord],
    governance: Option<&crate::model::view::GovernanceView>,
) -> Result<()> {
    bundle.write_bytes("runtime_results.json", &lane_doc(&a.runtime)?)?;
    bundle.write_bytes("baseline_results.json", &lane_doc(&a.baseline)?)?;
    let head = |run_id: &str| {
        serde_json::json!({
            "schema_version": RESULTS_SCHEMA_VERSION,
            "run_id": run_id,
        })
    };
    bundle.write_bytes(
        "oracle_results.json",
        &pretty_list_doc(&head(&a.oracle.run_id), "verdicts", &a.oracle.verdicts)?,
    )?;
    bundle.write_bytes(
        "path_witnesses.json",
        &pretty_list_doc(
            &head(&a.witnesses.run_id),
            "witnesses",
            &a.witnesses.witnesses,
        )?,
    )?;
    bundle.write_bytes(
        "runtime_events.normalized.json",
        &pretty_list_doc(&head(&a.summary.run_id), "rows", &a.rows)?,
    )?;
    bundle.write_json("mismatch_summary.json", &a.mismatch_summary)?;
    let mut jsonl = String::new();
    for p in &a.packets {
        jsonl.push_str(&json::to_sorted_line(p)?);
        jsonl.push('\n');
    }
    bundle.write_bytes("mismatch_packets.jsonl", jsonl.as_bytes())?;
    bundle.write_json("summary.json", &a.summary)?;
    let report = crate::report::RunReport {
        summary: &a.summary,
        rows: &a.rows,
        mismatches: &a.packets,
        preflight,
        oracle: &a.oracle.verdicts,
        governance,
        view: None,
        links: "",
    };
    bundle.write_bytes(
        "summary.md",
        &crate::report::render(&crate::report::markdown::SummaryMarkdown, &report)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::seam::skipped_observation;
    use crate::exec::testkit::scenario;
    use crate::model::plan::Expectation;

    #[test]
    fn streamed_list_documents_are_byte_identical_to_sorted_pretty_json() {
        let scs = [
            scenario("a", "x", Expectation::Deny),
            scenario("a", "y", Expectation::Allow),
        ];
        for n in [0, 1, 2] {
            let r = LaneResults {
                schema_version: RESULTS_SCHEMA_VERSION,
                run_id: "r".into(),
                lane: Lane::Scenario,
                observations: scs[..n]
                    .iter()
                    .map(|s| skipped_observation(s, Lane::Scenario, "why\nnot", None))
                    .collect(),
            };
            assert_eq!(
                String::from_utf8(lane_doc(&r).unwrap()).unwrap(),
                String::from_utf8(json::to_sorted_pretty(&r).unwrap()).unwrap()
            );
        }
        let v = crate::model::results::NormalizedEvents {
            schema_version: 1,
            run_id: "r".into(),
            rows: Vec::new(),
        };
        assert_eq!(
            pretty_list_doc(
                &serde_json::json!({"schema_version": 1, "run_id": "r"}),
                "rows",
                &v.rows
            )
            .unwrap(),
            json::to_sorted_pretty(&v).unwrap()
        );
    }
}
