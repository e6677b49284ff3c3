//! Mission workers at load time: the optional `registry/<id>/workers.json`, each worker a
//! plan's tasks use resolved to its executable (a file of the project, digested), and every
//! worker task checked strictly (it names a probe or a worker; a worker task runs under the
//! worker's profile, expects `allow` and passes exactly the typed inputs the worker
//! declares; an artifact input comes from a worker task it depends on).
//!
//! Like the rest of `load`, the first problem is an error naming the file, the place and
//! the fix; `plan-lint` reports every finding at once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Registry, load_typed};
use crate::model::plan::{Expectation, Plan, Task};
use crate::model::worker::{
    InputType, MAX_OUTPUT_FILE_BYTES, Worker, WorkerIdentity, WorkersFile, parse_artifact_ref,
    safe_relative,
};
use crate::model::{Id, SCHEMA_VERSION};
use crate::util::digest::Digest;
use crate::util::{json, suggest};
use crate::{Error, Result};

/// A worker as a plan uses it: its declaration and its executable, digested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedWorker {
    /// The worker's name.
    pub name: Id,
    /// The registry declaring it.
    pub registry_id: Id,
    /// The declaration.
    pub decl: Worker,
    /// `workers.json`.
    pub workers_path: PathBuf,
    /// The executable (`command[0]` resolved against the project root, symlinks resolved).
    pub executable: PathBuf,
    /// `command[0]` as written.
    pub executable_rel: String,
    /// blake3 and sha256 of the executable's bytes when the plan was loaded.
    pub executable_digest: Digest,
    /// Digest of the declaration's canonical JSON.
    pub declaration_digest: Digest,
}

impl ResolvedWorker {
    /// The identity recorded in the manifest, the lane results and `artifacts.json`.
    pub fn identity(&self) -> WorkerIdentity {
        WorkerIdentity {
            name: self.name.to_string(),
            registry_id: self.registry_id.to_string(),
            declaration: self.declaration_digest.clone(),
            executable: self.executable_digest.clone(),
            executable_path: self.executable_rel.clone(),
        }
    }
}

/// `dir/workers.json` (or `.yaml`), if the registry has one, checked like its other files.
pub fn load_workers_file(dir: &Path, dir_name: &str) -> Result<Option<(PathBuf, WorkersFile)>> {
    let candidates: Vec<PathBuf> = ["json", "yaml", "yml"]
        .iter()
        .map(|ext| dir.join(format!("workers.{ext}")))
        .filter(|p| p.is_file())
        .collect();
    let path = match candidates.len() {
        0 => return Ok(None),
        1 => candidates[0].clone(),
        _ => {
            return Err(Error::input(
                dir,
                "has more than one of workers.json, workers.yaml, workers.yml",
            )
            .with_hint("keep one; the others would be silently ignored"));
        }
    };
    let (_, file): (_, WorkersFile) = load_typed(&path)?;
    if file.schema_version != SCHEMA_VERSION {
        return Err(Error::input(
            &path,
            format!(
                "schema_version {} is not supported by this build (it reads {SCHEMA_VERSION})",
                file.schema_version
            ),
        )
        .with_hint(format!("set \"schema_version\": {SCHEMA_VERSION}")));
    }
    if file.registry_id.as_str() != dir_name {
        return Err(Error::input(
            &path,
            format!(
                "registry_id `{}` does not match its directory `{dir_name}`",
                file.registry_id
            ),
        )
        .with_hint(format!(
            "set \"registry_id\": \"{dir_name}\" or move the file"
        )));
    }
    Ok(Some((path, file)))
}

/// The project root of a registry directory `<root>/registry/<id>`.
pub fn project_root_of(registry_dir: &Path) -> PathBuf {
    registry_dir
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Why `command[0]` cannot be a worker's executable, or the executable (canonical path).
pub fn executable_path(root: &Path, program: &str) -> std::result::Result<PathBuf, String> {
    if !safe_relative(program) {
        return Err(format!(
            "`{program}` is not a path relative to the project root (no leading `/`, no `..`)"
        ));
    }
    let joined = root.join(program);
    let canon = std::fs::canonicalize(&joined)
        .map_err(|e| format!("`{program}` cannot be resolved: {e}"))?;
    let canon_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    if !canon.starts_with(&canon_root) {
        return Err(format!(
            "`{program}` resolves to `{}`, outside the project root",
            canon.display()
        ));
    }
    let meta = std::fs::metadata(&canon).map_err(|e| format!("`{program}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!("`{program}` is not a regular file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("`{program}` is not executable"));
    }
    if meta.len() > MAX_OUTPUT_FILE_BYTES {
        return Err(format!(
            "`{program}` has {} bytes; a worker's executable may have at most {MAX_OUTPUT_FILE_BYTES}",
            meta.len()
        ));
    }
    Ok(canon)
}

/// Read a worker's executable (at most [`MAX_OUTPUT_FILE_BYTES`]) and digest it.
pub fn digest_executable(path: &Path) -> Result<(Vec<u8>, Digest)> {
    let f = std::fs::File::open(path).map_err(|e| Error::io_input("open", path, e))?;
    let mut bytes = Vec::new();
    f.take(MAX_OUTPUT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io_input("read", path, e))?;
    if bytes.len() as u64 > MAX_OUTPUT_FILE_BYTES {
        return Err(Error::input(path, "the worker's executable is too large")
            .with_hint(format!("at most {MAX_OUTPUT_FILE_BYTES} bytes")));
    }
    let d = Digest::both_of(&bytes);
    Ok((bytes, d))
}

/// Resolve worker `name` of `registry`.
fn resolve(registry: &Registry, name: &Id, plan_path: &Path) -> Result<ResolvedWorker> {
    let Some((wpath, file)) = &registry.workers else {
        return Err(Error::input(
            plan_path,
            format!(
                "worker `{name}`: registry `{}` has no workers.json",
                registry.dir.display()
            ),
        )
        .with_hint(format!(
            "declare the worker in {}",
            registry.dir.join("workers.json").display()
        )));
    };
    let Some(decl) = file.workers.get(name) else {
        let known: Vec<&str> = file.workers.keys().map(Id::as_str).collect();
        let hint = suggest::did_you_mean(name.as_str(), known.iter().copied()).map_or_else(
            || format!("declare it in {} or fix the reference", wpath.display()),
            |s| format!("did you mean `{s}`?"),
        );
        return Err(Error::input(
            plan_path,
            format!("worker `{name}` is not defined in {}", wpath.display()),
        )
        .with_hint(hint));
    };
    let program = decl.command.first().ok_or_else(|| {
        Error::input(wpath, format!("worker `{name}`: `command` is empty"))
            .with_hint("set \"command\": [\"workers/<file>\", …]")
    })?;
    let root = project_root_of(&registry.dir);
    let executable = executable_path(&root, program).map_err(|why| {
        Error::input(wpath, format!("worker `{name}`: command[0] {why}")).with_hint(
            "command[0] is the worker's executable file, relative to the project root (e.g. workers/transform.py, with a `#!` line and the executable bit)",
        )
    })?;
    let (_, executable_digest) = digest_executable(&executable)?;
    let declaration_digest = Digest::both_of(&json::canonical(decl)?);
    Ok(ResolvedWorker {
        name: name.clone(),
        registry_id: file.registry_id.clone(),
        decl: decl.clone(),
        workers_path: wpath.clone(),
        executable,
        executable_rel: program.clone(),
        executable_digest,
        declaration_digest,
    })
}

/// Resolve every worker `plan`'s tasks use and check every task against it (the first
/// problem is an error).
pub fn resolve_plan_workers(
    plan_path: &Path,
    plan: &Plan,
    registry: &Registry,
) -> Result<BTreeMap<Id, ResolvedWorker>> {
    let mut out = BTreeMap::new();
    let Some(m) = &plan.mission else {
        return Ok(out);
    };
    for name in plan.referenced_workers() {
        out.insert(name.clone(), resolve(registry, name, plan_path)?);
    }
    for (id, t) in &m.tasks {
        if let Some(problem) = task_problems(id, t, &m.tasks, &out).into_iter().next() {
            return Err(Error::input(plan_path, problem.message).with_hint(problem.hint));
        }
    }
    Ok(out)
}

/// A problem with one task's worker, inputs or shape (for load and lint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskProblem {
    /// Stable code: `task-probe-or-worker`, `worker-profile-mismatch`, `worker-expects-deny`,
    /// `inputs-without-worker`, `unknown-input`, `missing-input`, `input-type`,
    /// `artifact-input`.
    pub code: &'static str,
    /// JSON pointer below the task (e.g. `/inputs/source`), or empty for the task itself.
    pub at: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Every problem of task `id` (`workers`: the resolved or linted workers, by name; a
/// worker missing from it is the reference check's business and is skipped here).
pub fn task_problems(
    id: &Id,
    t: &Task,
    tasks: &BTreeMap<Id, Task>,
    workers: &BTreeMap<Id, ResolvedWorker>,
) -> Vec<TaskProblem> {
    let decls: BTreeMap<&Id, &Worker> = workers.iter().map(|(k, w)| (k, &w.decl)).collect();
    task_problems_decl(id, t, tasks, &decls)
}

/// [`task_problems`] against bare declarations (lint has no executables to digest).
pub fn task_problems_decl(
    id: &Id,
    t: &Task,
    tasks: &BTreeMap<Id, Task>,
    workers: &BTreeMap<&Id, &Worker>,
) -> Vec<TaskProblem> {
    let mut out = Vec::new();
    let p = |code, at: &str, message: String, hint: &str| TaskProblem {
        code,
        at: at.to_string(),
        message,
        hint: hint.to_string(),
    };
    match (&t.probe, &t.worker) {
        (Some(_), Some(_)) | (None, None) => {
            out.push(p(
                "task-probe-or-worker",
                "",
                format!("task `{id}` must name exactly one of `probe` and `worker`"),
                "a task runs one probe or one worker",
            ));
            return out;
        }
        (Some(_), None) => {
            if !t.inputs.is_empty() {
                out.push(p(
                    "inputs-without-worker",
                    "/inputs",
                    format!("task `{id}` runs a probe and has `inputs`; only workers take inputs"),
                    "remove `inputs`, or run a worker",
                ));
            }
            return out;
        }
        (None, Some(_)) => {}
    }
    let Some(name) = &t.worker else {
        return out;
    };
    let Some(w) = workers.get(name) else {
        return out;
    };
    if w.profile != t.profile {
        out.push(p(
            "worker-profile-mismatch",
            "/profile",
            format!(
                "task `{id}` runs worker `{name}` under profile `{}`, but the worker must run under `{}`",
                t.profile, w.profile
            ),
            &format!("set \"profile\": \"{}\"", w.profile),
        ));
    }
    if t.expect == Some(Expectation::Deny) {
        out.push(p(
            "worker-expects-deny",
            "/expect",
            format!("task `{id}` runs worker `{name}` and expects `deny`; a worker task succeeds when the worker does its work"),
            "remove `expect` (a worker task expects `allow`)",
        ));
    }
    for (k, v) in &t.inputs {
        let at = format!("/inputs/{k}");
        let Some(spec) = w.inputs.get(k) else {
            let known: Vec<&str> = w.inputs.keys().map(Id::as_str).collect();
            let hint = suggest::did_you_mean(k.as_str(), known.iter().copied()).map_or_else(
                || {
                    if known.is_empty() {
                        format!("worker `{name}` takes no inputs")
                    } else {
                        format!("worker `{name}` takes: {}", known.join(", "))
                    }
                },
                |s| format!("did you mean `{s}`?"),
            );
            out.push(p(
                "unknown-input",
                &at,
                format!("task `{id}`: worker `{name}` has no input `{k}`"),
                &hint,
            ));
            continue;
        };
        if !spec.kind.accepts(v) {
            let hint = match spec.kind {
                InputType::Artifact => {
                    "write `\"<task>/<file>\"`: a file a worker task this task depends on produced"
                }
                InputType::String => "write a JSON string",
                InputType::Integer => "write a JSON integer",
                InputType::Boolean => "write `true` or `false`",
            };
            out.push(p(
                "input-type",
                &at,
                format!(
                    "task `{id}`: input `{k}` of worker `{name}` is {}, but it must be {}",
                    json_type(v),
                    match spec.kind {
                        InputType::Artifact => "an artifact reference `<task>/<path>`",
                        InputType::String => "a string",
                        InputType::Integer => "an integer",
                        InputType::Boolean => "a boolean",
                    }
                ),
                hint,
            ));
            continue;
        }
        if spec.kind == InputType::Artifact
            && let Some((from, _)) = v.as_str().and_then(parse_artifact_ref)
        {
            let from_worker = tasks.get(&from).is_some_and(|ft| ft.worker.is_some());
            if !from_worker {
                out.push(p(
                    "artifact-input",
                    &at,
                    format!("task `{id}`: input `{k}` names task `{from}`, which is not a worker task of this mission"),
                    "name a worker task that produces the file",
                ));
            } else if !t.depends_on.contains(&from) {
                out.push(p(
                    "artifact-input",
                    &at,
                    format!("task `{id}`: input `{k}` uses a file of task `{from}`, which it does not depend on"),
                    &format!("add \"{from}\" to the task's `depends_on`, so the file exists before the task runs"),
                ));
            }
        }
    }
    let given: BTreeSet<&Id> = t.inputs.keys().collect();
    for (k, spec) in &w.inputs {
        if spec.required && !given.contains(k) {
            out.push(p(
                "missing-input",
                "/inputs",
                format!(
                    "task `{id}`: worker `{name}` needs input `{k}` ({})",
                    spec.kind.as_str()
                ),
                &format!("add \"{k}\" to the task's `inputs`"),
            ));
        }
    }
    out
}

fn json_type(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(_) => "a boolean".into(),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "an integer".into(),
        serde_json::Value::Number(_) => "a number".into(),
        serde_json::Value::String(s) => format!("the string `{s}`"),
        serde_json::Value::Array(_) => "an array".into(),
        serde_json::Value::Object(_) => "an object".into(),
    }
}

/// Digest of the inputs a mission's worker tasks are given, as declared in the plan
/// (canonical JSON of task → inputs; `{}` for a mission without worker tasks).
pub fn inputs_digest(plan: &Plan) -> Digest {
    let map: BTreeMap<&Id, &BTreeMap<Id, serde_json::Value>> = plan
        .mission
        .iter()
        .flat_map(|m| m.tasks.iter())
        .filter(|(_, t)| t.worker.is_some())
        .map(|(id, t)| (id, &t.inputs))
        .collect();
    let bytes = json::canonical(&map).unwrap_or_default();
    Digest::both_of(&bytes)
}
