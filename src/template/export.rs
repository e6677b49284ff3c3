//! `export kubernetes|github-matrix|gitlab`: CI and cluster jobs that run a plan's shards
//! (`run --shard K/N`) on engines users already have, and merge them (`merge-bundles`).
//!
//! nexusmon schedules nothing itself: each engine starts N copies of one command line that
//! differ only in the shard index its engine provides (`JOB_COMPLETION_INDEX` 0..N-1 in a
//! Kubernetes Indexed Job, `matrix.shard` 1..N on GitHub, `CI_NODE_INDEX` 1..N on GitLab).
//! Every command line carries `--expect-plan-digest <blake3>` of the plan as loaded at
//! export time, so a job exported for another version of the plan (or of a registry
//! entry it resolves) refuses to run (exit 2) instead of running something else; every
//! generated file also names the digest (an annotation, `env`, `variables`), so a reader
//! sees which plan it was made for. Files are YAML written by `template::yaml` and parsed
//! back before they are returned (the Kubernetes Job and the matrix are JSON).

use std::path::Path;

use serde_json::{Value, json};

use crate::load::load_plan;
use crate::model::template::OutputFormat;
use crate::{Error, Result};

/// Which file(s) to write.
#[derive(Debug, Clone)]
pub enum ExportKind {
    /// A Kubernetes Indexed Job.
    Kubernetes {
        /// The container image (nexusmon and the project at its working directory).
        image: String,
        /// The namespace.
        namespace: Option<String>,
    },
    /// A GitHub Actions matrix and workflow.
    GithubMatrix,
    /// A GitLab CI pipeline.
    Gitlab,
}

/// An `export` request.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// What to write.
    pub kind: ExportKind,
    /// The plan file.
    pub plan: std::path::PathBuf,
    /// The project root (the plan's path in the files is relative to it).
    pub root: std::path::PathBuf,
    /// How many shards.
    pub shards: u32,
}

/// One generated file: its name and bytes. The first is the main one.
#[derive(Debug, Clone)]
pub struct ExportFile {
    /// File name.
    pub name: String,
    /// Content.
    pub bytes: Vec<u8>,
}

/// Where a Kubernetes pod mounts the out volume (each shard writes its own out root beneath).
pub const KUBE_OUT_MOUNT: &str = "/out";

/// Generate the files of `r`.
pub fn export(r: &ExportRequest) -> Result<Vec<ExportFile>> {
    let n = r.shards;
    if n == 0 || n > crate::exec::shard::MAX_SHARDS {
        return Err(Error::usage(format!(
            "--shards {n}: between 1 and {}",
            crate::exec::shard::MAX_SHARDS
        )));
    }
    let loaded = load_plan(&r.plan)?;
    if loaded.plan.kind == crate::model::plan::PlanKind::Mission {
        return Err(Error::usage(format!(
            "`{}` is a mission: its tasks run as one graph and are not sharded",
            loaded.plan.plan_id
        )));
    }
    let digest = loaded.digest.blake3.clone();
    let abs = std::path::absolute(&r.plan).unwrap_or_else(|_| r.plan.clone());
    let plan = abs
        .strip_prefix(&r.root)
        .unwrap_or(&abs)
        .to_string_lossy()
        .into_owned();
    let plan_id = loaded.plan.plan_id.to_string();
    match &r.kind {
        ExportKind::Kubernetes { image, namespace } => {
            let v = kubernetes(&plan, &plan_id, &digest, n, image, namespace.as_deref());
            Ok(vec![ExportFile {
                name: "job.json".into(),
                bytes: crate::util::json::to_sorted_pretty(&v)?,
            }])
        }
        ExportKind::GithubMatrix => {
            let (matrix, workflow) = github(&plan, &plan_id, &digest, n);
            Ok(vec![
                ExportFile {
                    name: "nexusmon-shards.yml".into(),
                    bytes: super::build::bytes_of(
                        &workflow,
                        OutputFormat::Yaml,
                        "nexusmon-shards.yml",
                    )?,
                },
                ExportFile {
                    name: "matrix.json".into(),
                    bytes: crate::util::json::to_sorted_pretty(&matrix)?,
                },
            ])
        }
        ExportKind::Gitlab => {
            let v = gitlab(&plan, &digest, n);
            Ok(vec![ExportFile {
                name: "nexusmon-shards.gitlab-ci.yml".into(),
                bytes: super::build::bytes_of(&v, OutputFormat::Yaml, "gitlab-ci")?,
            }])
        }
    }
}

/// `'word'` for a POSIX shell.
fn sh(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// A DNS-1123 label from `nexusmon-<plan id>` (lowercase, `-`, at most 63).
fn dns_label(plan_id: &str) -> String {
    let mut s = crate::util::lowercase_dashed(&format!("nexusmon-{plan_id}"));
    s.truncate(63);
    s.trim_end_matches('-').to_string()
}

fn merge_line(out: &str, inputs: impl Iterator<Item = String>) -> String {
    let mut w = vec![
        "nexusmon".to_string(),
        "merge-bundles".into(),
        "--out".into(),
        out.to_string(),
    ];
    w.extend(inputs);
    w.join(" ")
}

fn kubernetes(
    plan: &str,
    plan_id: &str,
    digest: &str,
    n: u32,
    image: &str,
    namespace: Option<&str>,
) -> Value {
    let name = dns_label(plan_id);
    let script = format!(
        "set -eu\nk=$((JOB_COMPLETION_INDEX + 1))\nexec nexusmon run --plan {} --shard \"$k/{n}\" --expect-plan-digest {digest} --out \"${{NEXUSMON_OUT:-{KUBE_OUT_MOUNT}}}/shard-$k\"",
        sh(plan)
    );
    let merge = merge_line(
        &format!("{KUBE_OUT_MOUNT}/merged"),
        (1..=n).map(|k| format!("{KUBE_OUT_MOUNT}/shard-{k}")),
    );
    let mut metadata = json!({
        "name": name,
        "labels": {"app.kubernetes.io/name": "nexusmon", "nexusmon.dev/plan-id": dns_label(plan_id)},
        "annotations": {
            "nexusmon.dev/plan": plan,
            "nexusmon.dev/plan-digest": digest,
            "nexusmon.dev/shards": n.to_string(),
            "nexusmon.dev/merge": format!("when every index succeeded, in a pod with the same volume: {merge}"),
        },
    });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "completionMode": "Indexed",
            "completions": n,
            "parallelism": n,
            "backoffLimitPerIndex": 1,
            "maxFailedIndexes": n,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "nexusmon"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "shard",
                        "image": image,
                        "command": ["/bin/sh", "-c", script],
                        "env": [
                            {"name": "NEXUSMON_OUT", "value": KUBE_OUT_MOUNT},
                            {"name": "NEXUSMON_PLAN_DIGEST", "value": digest},
                        ],
                        "securityContext": {
                            "privileged": false,
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": false,
                        },
                        "volumeMounts": [{"name": "out", "mountPath": KUBE_OUT_MOUNT}],
                    }],
                    "volumes": [{"name": "out", "persistentVolumeClaim": {"claimName": format!("{name}-out")}}],
                },
            },
        },
    })
}

fn github(plan: &str, plan_id: &str, digest: &str, n: u32) -> (Value, Value) {
    let shards: Vec<u32> = (1..=n).collect();
    let matrix = json!({"shard": shards});
    let run = format!(
        "nexusmon run --plan \"$NEXUSMON_PLAN\" --shard \"${{{{ matrix.shard }}}}/{n}\" --expect-plan-digest \"$NEXUSMON_PLAN_DIGEST\" --out \"out-${{{{ matrix.shard }}}}\""
    );
    let merge = merge_line(
        "merged",
        (1..=n).map(|k| format!("shards/nexusmon-shard-{k}")),
    );
    let workflow = json!({
        "name": format!("nexusmon {plan_id} ({n} shards)"),
        "on": {"workflow_dispatch": {}, "pull_request": {}},
        "env": {"NEXUSMON_PLAN": plan, "NEXUSMON_PLAN_DIGEST": digest},
        "jobs": {
            "shard": {
                "runs-on": "ubuntu-latest",
                "strategy": {"fail-fast": false, "matrix": matrix.clone()},
                "steps": [
                    {"uses": "actions/checkout@v4"},
                    {"name": "Run shard ${{ matrix.shard }}", "run": run},
                    {
                        "name": "Upload the shard's bundle",
                        "if": "always()",
                        "uses": "actions/upload-artifact@v4",
                        "with": {
                            "name": "nexusmon-shard-${{ matrix.shard }}",
                            "path": "out-${{ matrix.shard }}",
                            "if-no-files-found": "error",
                        },
                    },
                ],
            },
            "merge": {
                "needs": "shard",
                "if": "always()",
                "runs-on": "ubuntu-latest",
                "steps": [
                    {"uses": "actions/checkout@v4"},
                    {
                        "uses": "actions/download-artifact@v4",
                        "with": {"pattern": "nexusmon-shard-*", "path": "shards"},
                    },
                    {"name": "Merge the shards (fails naming any missing shard)", "run": merge},
                    {
                        "name": "Promotion packet",
                        "run": "nexusmon emit-promotion --bundle merged --out promotion/promotion_packet.json --require-promotable",
                    },
                    {
                        "uses": "actions/upload-artifact@v4",
                        "with": {"name": "nexusmon-merged", "path": "merged"},
                    },
                ],
            },
        },
    });
    (matrix, workflow)
}

fn gitlab(plan: &str, digest: &str, n: u32) -> Value {
    let merge = merge_line("merged", (1..=n).map(|k| format!("out-{k}")));
    json!({
        "variables": {"NEXUSMON_PLAN": plan, "NEXUSMON_PLAN_DIGEST": digest},
        "stages": ["nexusmon-shards", "nexusmon-merge"],
        "nexusmon-shard": {
            "stage": "nexusmon-shards",
            "parallel": n,
            "script": [
                "nexusmon run --plan \"$NEXUSMON_PLAN\" --shard \"$CI_NODE_INDEX/$CI_NODE_TOTAL\" --expect-plan-digest \"$NEXUSMON_PLAN_DIGEST\" --out \"out-$CI_NODE_INDEX\"",
            ],
            "artifacts": {"when": "always", "paths": ["out-$CI_NODE_INDEX/"]},
        },
        "nexusmon-merge": {
            "stage": "nexusmon-merge",
            "when": "always",
            "needs": [{"job": "nexusmon-shard", "artifacts": true}],
            "script": [
                merge,
                "nexusmon emit-promotion --bundle merged --out promotion/promotion_packet.json --require-promotable",
            ],
            "artifacts": {"paths": ["merged/", "promotion/"]},
        },
    })
}

/// Write `files` into `dir` (every target checked first; nothing half-written).
pub fn write_files(dir: &Path, files: &[ExportFile]) -> Result<()> {
    let targets: Vec<std::path::PathBuf> = files.iter().map(|f| dir.join(&f.name)).collect();
    for t in &targets {
        crate::util::nofollow::check_dir_path(t)?;
    }
    crate::util::fsx::create_dir_all(dir)?;
    for (t, f) in targets.iter().zip(files) {
        crate::util::fsx::write_atomic(t, &f.bytes)?;
    }
    Ok(())
}
