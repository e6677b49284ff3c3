//! `nexusmon worker-new NAME`: scaffold a new mission worker from the worker template
//! (`workers/template/worker.py`, built into the binary): the worker's executable
//! `workers/<name>.py`, a registry `registry/<name>/` declaring it (`workers.json`) with the
//! confined profile it runs under (`profiles.json`: read the system and the workspace, write
//! only `${OUTPUT}`, no network) and an empty `probes.json`, and a rank-E mission
//! `plans/<name>/plan.json` with one task running it. The result is loaded and linted with
//! the same code `run` uses before it is reported; nothing is replaced without `overwrite`,
//! and a scaffold that fails midway removes what it wrote.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::model::Id;
use crate::util::{fsx, json};
use crate::{Error, Result};

/// The worker template: a protocol-1 worker in Python that writes one file.
pub const WORKER_TEMPLATE: &str = include_str!("../../workers/template/worker.py");

/// What the scaffold wrote.
#[derive(Debug, Clone)]
pub struct Scaffolded {
    /// Every file written (absolute), in the order written.
    pub files: Vec<PathBuf>,
    /// The plan to run.
    pub plan: PathBuf,
    /// Lint warnings and notes about the result (errors fail the scaffold).
    pub findings: usize,
}

/// Scaffold worker `name` under `root`.
pub fn scaffold(root: &Path, name: &str, overwrite: bool) -> Result<Scaffolded> {
    let id = Id::new(name).map_err(|e| {
        Error::usage(format!("worker name: {e}")).with_hint("e.g. `nexusmon worker-new my-worker`")
    })?;
    let exe_rel = format!("workers/{id}.py");
    let files: Vec<(PathBuf, Vec<u8>, u32)> = vec![
        (
            root.join(&exe_rel),
            WORKER_TEMPLATE.as_bytes().to_vec(),
            0o755,
        ),
        (
            root.join(format!("registry/{id}/workers.json")),
            json::to_sorted_pretty(&workers_file(&id, &exe_rel))?,
            0o644,
        ),
        (
            root.join(format!("registry/{id}/profiles.json")),
            json::to_sorted_pretty(&profiles_file(&id))?,
            0o644,
        ),
        (
            root.join(format!("registry/{id}/probes.json")),
            json::to_sorted_pretty(&json!({
                "$schema": "../../schemas/probes.schema.json",
                "schema_version": 1,
                "registry_id": id,
                "description": format!("Probes of registry `{id}` (none yet: its mission runs the worker)."),
                "probes": {},
            }))?,
            0o644,
        ),
        (
            root.join(format!("plans/{id}/plan.json")),
            json::to_sorted_pretty(&plan_file(&id))?,
            0o644,
        ),
    ];
    if !overwrite && let Some((p, _, _)) = files.iter().find(|(p, _, _)| p.exists()) {
        return Err(Error::usage(format!("`{}` exists", p.display()))
            .with_hint("pick another name, or pass --overwrite to replace the scaffold's files"));
    }
    let mut written: Vec<PathBuf> = Vec::new();
    let result = (|| -> Result<()> {
        for (p, bytes, mode) in &files {
            fsx::create_dir_all(fsx::parent_of(p))?;
            fsx::write_atomic(p, bytes)?;
            written.push(p.clone());
            fsx::set_mode(p, *mode)?;
        }
        Ok(())
    })();
    let plan = root.join(format!("plans/{id}/plan.json"));
    let checked = result.and_then(|()| {
        crate::load::load_plan(&plan)?;
        let report = crate::lint::check_plan(&plan, root)?;
        report.refuse_on_errors(&plan, root)?;
        Ok(report.findings.len())
    });
    match checked {
        Ok(findings) => Ok(Scaffolded {
            files: written,
            plan,
            findings,
        }),
        Err(e) => {
            for p in &written {
                let _ = std::fs::remove_file(p);
            }
            Err(e)
        }
    }
}

fn workers_file(id: &Id, exe_rel: &str) -> serde_json::Value {
    json!({
        "$schema": "../../schemas/workers.schema.json",
        "schema_version": 1,
        "registry_id": id,
        "description": format!("The worker `{id}` (scaffolded by `nexusmon worker-new`)."),
        "workers": {
            id.as_str(): {
                "description": "Writes greeting.txt into its output directory.",
                "command": [exe_rel],
                "capabilities": ["write-artifacts"],
                "risk_level": "E",
                "requires_approval": false,
                "profile": id,
                "timeout_ms": 10000,
                "inputs": {
                    "greeting": {"type": "string", "required": false, "description": "What to write (default: hello)."}
                }
            }
        }
    })
}

fn profiles_file(id: &Id) -> serde_json::Value {
    json!({
        "$schema": "../../schemas/profiles.schema.json",
        "schema_version": 1,
        "registry_id": id,
        "description": format!("The profile worker `{id}` runs under."),
        "profiles": {
            id.as_str(): {
                "description": "Read and execute the system and the worker's checked copy, read the mission workspace, write only the worker's output directory; no TCP at all.",
                "landlock": {
                    "compat": "hard",
                    "abi": 4,
                    "fs": {
                        "handle": "all",
                        "allow": [
                            {"path": "/usr", "access": ["read", "exec"]},
                            {"path": "/lib", "access": ["read", "exec"], "allow_lint": ["NX303"]},
                            {"path": "/lib64", "access": ["read", "exec"], "allow_lint": ["NX303"]},
                            {"path": "/bin", "access": ["read", "exec"], "allow_lint": ["NX303"]},
                            {"path": "/etc/ld.so.cache", "access": ["read"]},
                            {"path": "${SCRATCH}", "access": ["read"]},
                            {"path": "${WORKER_BIN}", "access": ["read", "exec"]},
                            {"path": "${OUTPUT}", "access": ["read", "write", "create", "remove"]}
                        ],
                        "missing_paths": "skip"
                    },
                    "net": {"tcp_connect": [], "tcp_bind": []}
                },
                "tags": ["worker"]
            }
        }
    })
}

fn plan_file(id: &Id) -> serde_json::Value {
    json!({
        "$schema": "../../schemas/plan.schema.json",
        "schema_version": 1,
        "plan_id": id,
        "kind": "mission",
        "description": format!("Runs worker `{id}` once (scaffolded by `nexusmon worker-new`)."),
        "registry_id": id,
        "profiles": [id],
        "mission": {
            "objective": format!("Run worker `{id}` and keep what it produces."),
            "category": "forge",
            "rank": "E",
            "scores": {
                "compute_cost": 10,
                "maintainability": 80,
                "attention": 10,
                "economic_value": 50,
                "trust": 80,
                "prediction_confidence": 80
            },
            "requested_by": "ops",
            "tasks": {
                "greet": {
                    "worker": id,
                    "profile": id,
                    "inputs": {"greeting": "hello"}
                }
            }
        }
    })
}
