//! Mission workers in a lane: what the runner does around one worker child, which the live
//! executor ([`super::lanes`]) starts through the same spawn path as any exec probe (the
//! task's profile, rlimits, clean environment, timeout, process-group kill).
//!
//! Before the child: [`stage`] makes the worker's directories (its output directory
//! `${SCRATCH}/artifacts/<task>`, empty; `<scratch>/workers/<lane>/<task>/` holding a copy of
//! its executable, checked against the digest the plan was loaded with, so what runs is
//! what the plan digest, and every approval, covers), [`resolve_inputs`] turns the task's
//! inputs into the request's (variables expanded, artifact inputs checked and digested),
//! and [`Snapshot`] records the mission workspace outside the output directory.
//!
//! After it: [`judge`] reads the result (one JSON document on stdout, at most 1 MiB) and
//! checks every claimed file (inside the output directory, no symlink on the way, a regular
//! file, the claimed digest, the limits, nothing unlisted) and that the workspace outside
//! the output directory is unchanged. Each failure is its own [`WorkerFault`].

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::child::{ChildResult, Ended};
use super::seam::WorkerRun;
use crate::model::results::Lane;
use crate::model::worker::{
    ARTIFACTS_SCHEMA, ArtifactInput, ArtifactsFile, InputType, MAX_OUTPUT_FILE_BYTES,
    MAX_OUTPUT_FILES, MAX_OUTPUT_TOTAL_BYTES, MAX_RESULT_BYTES, ProducedFile, ResultStatus,
    TaskArtifacts, WORKER_PROTOCOL, WorkerFault, WorkerResult, parse_artifact_ref, safe_relative,
};
use crate::sandbox::vars::Vars;
use crate::util::digest::{Digest, sha256_hex};

/// A fault and what exactly happened.
pub type Failure = (WorkerFault, String);

/// Where one worker child's files are.
#[derive(Debug, Clone)]
pub struct WorkerDirs {
    /// The mission workspace (`${SCRATCH}`).
    pub workspace: PathBuf,
    /// Its output directory (`${OUTPUT}`): `<workspace>/artifacts/<task>`.
    pub output: PathBuf,
    /// The directory holding the copy of its executable (`${WORKER_BIN}`).
    pub bin_dir: PathBuf,
    /// The copy of its executable.
    pub exe: PathBuf,
    /// Its request, read as stdin.
    pub request: PathBuf,
}

/// The output directory of `task` in `workspace`.
pub fn output_dir(workspace: &Path, task: &str) -> PathBuf {
    workspace.join("artifacts").join(task)
}

/// Make the worker's directories (a fresh, empty output directory) and copy its
/// executable, refusing one whose bytes are not those the plan was loaded with.
pub fn stage(
    scratch_root: &Path,
    workspace: &Path,
    lane: Lane,
    run: &WorkerRun,
    task: &str,
) -> Result<WorkerDirs, Failure> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        (
            WorkerFault::NotStarted,
            format!("cannot {what} `{}`: {e}", p.display()),
        )
    };
    // Both directories are reached without following a symlink: an earlier task shares the
    // workspace and could have planted one on the way (`artifacts -> /etc`).
    let output = output_dir(workspace, task);
    fresh_dir(&output).map_err(|why| (WorkerFault::NotStarted, why))?;
    let lane_dir = scratch_root.join("workers").join(lane.as_str());
    let bin_dir = lane_dir.join(task);
    fresh_dir(&bin_dir).map_err(|why| (WorkerFault::NotStarted, why))?;
    let (bytes, digest) = crate::load::worker::digest_executable(&run.worker.executable)
        .map_err(|e| (WorkerFault::NotStarted, e.to_string()))?;
    if digest.blake3 != run.worker.executable_digest.blake3 {
        return Err((
            WorkerFault::NotStarted,
            format!(
                "the executable `{}` changed since the plan was loaded (blake3 {} then, {} now): the plan digest and its approvals cover the bytes it had",
                run.worker.executable_rel,
                short(&run.worker.executable_digest.blake3),
                short(&digest.blake3)
            ),
        ));
    }
    let file = run
        .worker
        .executable
        .file_name()
        .map_or_else(|| "worker".into(), std::ffi::OsStr::to_os_string);
    let exe = bin_dir.join(file);
    write_file(&exe, &bytes, 0o555).map_err(|e| io("write", &exe, e))?;
    let request = lane_dir.join(format!("{task}.request.json"));
    Ok(WorkerDirs {
        workspace: workspace.to_path_buf(),
        output,
        bin_dir,
        exe,
        request,
    })
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// Make `dir` a new, empty directory: whatever is at its name is removed first (a symlink
/// as itself, never followed), and its parents are reached (created if missing) without
/// following a symlink ([`crate::util::nofollow`]); one on the way is refused, naming it.
fn fresh_dir(dir: &Path) -> Result<(), String> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(format!("`{}` is not a directory path", dir.display()));
    };
    let d = crate::util::nofollow::Dir::create(parent).map_err(|e| e.to_string())?;
    let cannot = |what: &str, e: std::io::Error| format!("cannot {what} `{}`: {e}", dir.display());
    match std::fs::symlink_metadata(dir) {
        // `remove_dir_all` removes a directory's entries without following symlinks; the
        // parent was just checked and the task holds its mission's lock, so nothing else
        // runs in this workspace meanwhile.
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(dir).map_err(|e| cannot("empty", e))?,
        Ok(_) => d.remove(name, false).map_err(|e| cannot("remove", e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(cannot("inspect", e)),
    }
    d.mkdir(name, 0o777).map_err(|e| cannot("create", e))
}

/// Create `path` with `bytes` and `mode`, synced, replacing what is at its name (a symlink
/// as itself, never followed); its directory is reached without following a symlink.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let (dir, name) =
        crate::util::fsx::dir_and_name(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    match dir.remove(name, false) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = dir.create_file(name, mode)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A request's inputs by name, and the artifacts they consume (`<task>/<name>` → digest).
pub type ResolvedInputs = (
    BTreeMap<String, serde_json::Value>,
    BTreeMap<String, Digest>,
);

/// The request's inputs (strings expanded with `vars`; artifact inputs as
/// [`ArtifactInput`]s, checked to be regular files of the producing task's output
/// directory), and the artifacts consumed (`<task>/<name>` → digest).
pub fn resolve_inputs(
    run: &WorkerRun,
    vars: &Vars,
    workspace: &Path,
) -> Result<ResolvedInputs, Failure> {
    let mut inputs = BTreeMap::new();
    let mut consumed = BTreeMap::new();
    for (name, value) in &run.inputs {
        let kind = run
            .worker
            .decl
            .inputs
            .get(name)
            .map_or(InputType::String, |s| s.kind);
        let v = match (kind, value) {
            (InputType::String, serde_json::Value::String(s)) => {
                serde_json::Value::String(vars.expand(s).map_err(|e| {
                    (
                        WorkerFault::NotStarted,
                        format!("input `{name}`: {}", e.message),
                    )
                })?)
            }
            (InputType::Artifact, serde_json::Value::String(s)) => {
                let Some((task, rel)) = parse_artifact_ref(s) else {
                    return Err((
                        WorkerFault::NotStarted,
                        format!("input `{name}`: `{s}` is not `<task>/<path>`"),
                    ));
                };
                let dir = output_dir(workspace, task.as_str());
                for d in [workspace.join("artifacts"), dir.clone()] {
                    let is_real_dir = std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir());
                    if !is_real_dir {
                        return Err((
                            WorkerFault::NotStarted,
                            format!(
                                "input `{name}`: artifact `{s}`: `{}` is not a directory the runner made",
                                d.display()
                            ),
                        ));
                    }
                }
                let path = inside(&dir, rel).map_err(|why| {
                    (
                        WorkerFault::NotStarted,
                        format!("input `{name}`: artifact `{s}` {why}"),
                    )
                })?;
                let (_, digest) = read_bounded(&path).map_err(|why| {
                    (
                        WorkerFault::NotStarted,
                        format!("input `{name}`: artifact `{s}` {why}"),
                    )
                })?;
                consumed.insert(s.clone(), digest.clone());
                serde_json::to_value(ArtifactInput {
                    path: path.to_string_lossy().into_owned(),
                    task: task.to_string(),
                    name: rel.to_string(),
                    digest,
                })
                .unwrap_or(serde_json::Value::Null)
            }
            (_, v) => v.clone(),
        };
        inputs.insert(name.to_string(), v);
    }
    Ok((inputs, consumed))
}

/// `rel` inside `dir`, refusing any symlink on the way and anything but a regular file.
fn inside(dir: &Path, rel: &str) -> Result<PathBuf, String> {
    if !safe_relative(rel) {
        return Err("is not a relative path inside the output directory".into());
    }
    let mut cur = dir.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        cur.push(part);
        let meta = match std::fs::symlink_metadata(&cur) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("does not exist".into());
            }
            Err(e) => return Err(format!("cannot be inspected: {e}")),
        };
        if meta.file_type().is_symlink() {
            return Err(format!(
                "goes through the symlink `{}`",
                parts[..=i].join("/")
            ));
        }
        let last = i + 1 == parts.len();
        if last && !meta.is_file() {
            return Err("is not a regular file".into());
        }
        if !last && !meta.is_dir() {
            return Err(format!("`{}` is not a directory", parts[..=i].join("/")));
        }
    }
    Ok(cur)
}

/// Read a file of at most [`MAX_OUTPUT_FILE_BYTES`] (not following a final symlink) and
/// digest it.
pub fn read_bounded(path: &Path) -> Result<(Vec<u8>, Digest), String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("cannot be opened: {e}"))?;
    let mut bytes = Vec::new();
    f.take(MAX_OUTPUT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > MAX_OUTPUT_FILE_BYTES {
        return Err(format!("has more than {MAX_OUTPUT_FILE_BYTES} bytes"));
    }
    let d = Digest::both_of(&bytes);
    Ok((bytes, d))
}

/// `inputs` with the workspace path shown as `${SCRATCH}`, for the bundle and the inputs
/// digest (the same inputs give the same digest in every run).
pub fn symbolic_inputs(
    inputs: &BTreeMap<String, serde_json::Value>,
    workspace: &Path,
) -> BTreeMap<String, serde_json::Value> {
    let ws = workspace.to_string_lossy().into_owned();
    inputs
        .iter()
        .map(|(k, v)| {
            let mut v = v.clone();
            if let Some(p) = v.pointer_mut("/path")
                && let Some(s) = p.as_str()
            {
                *p = serde_json::Value::String(s.replacen(&ws, "${SCRATCH}", 1));
            }
            (k.clone(), v)
        })
        .collect()
}

/// Digest of symbolic inputs (canonical JSON).
pub fn inputs_digest(symbolic: &BTreeMap<String, serde_json::Value>) -> Digest {
    Digest::both_of(&crate::util::json::canonical(symbolic).unwrap_or_default())
}

/// The mission workspace outside one worker's output directory: every entry with its type,
/// size, modification time and inode, to tell whether the worker changed anything there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    entries: BTreeMap<String, (u32, u64, i64, i64, u64)>,
    /// More entries than the snapshot keeps (the comparison is then partial).
    pub truncated: bool,
}

/// Most entries a snapshot keeps.
const SNAPSHOT_LIMIT: usize = 100_000;

impl Snapshot {
    /// Walk `workspace` without following symlinks, skipping `exclude` (the output
    /// directory).
    pub fn take(workspace: &Path, exclude: &Path) -> Self {
        let mut s = Self::default();
        let mut todo = vec![workspace.to_path_buf()];
        while let Some(dir) = todo.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                let Ok(m) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                if p == exclude {
                    // The output directory itself: only what it is (replaced by a symlink
                    // or another directory is a change), not what the worker writes in it.
                    let rel = p.strip_prefix(workspace).unwrap_or(&p);
                    s.entries.insert(
                        rel.to_string_lossy().into_owned(),
                        (m.mode() & 0o170_000, 0, 0, 0, m.ino()),
                    );
                    continue;
                }
                if s.entries.len() >= SNAPSHOT_LIMIT {
                    s.truncated = true;
                    return s;
                }
                let rel = p
                    .strip_prefix(workspace)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                s.entries.insert(
                    rel,
                    (
                        m.mode() & 0o170_000,
                        m.size(),
                        m.mtime(),
                        m.mtime_nsec(),
                        m.ino(),
                    ),
                );
                if m.is_dir() {
                    todo.push(p);
                }
            }
        }
        s
    }

    /// Paths created, removed or changed between `self` and `after` (sorted).
    pub fn changed(&self, after: &Snapshot) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (k, v) in &after.entries {
            if self.entries.get(k) != Some(v) {
                out.push(k.clone());
            }
        }
        for k in self.entries.keys() {
            if !after.entries.contains_key(k) {
                out.push(k.clone());
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// A file the runner verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Its path in the output directory.
    pub name: String,
    /// Its absolute path.
    pub path: PathBuf,
    /// Size.
    pub size: u64,
    /// Its digests.
    pub digest: Digest,
    /// Declared media type.
    pub media_type: Option<String>,
}

/// What the runner made of a worker child.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The fault, with what exactly happened (`None`: the worker did its work).
    pub fault: Option<Failure>,
    /// The result as printed, when one could be read.
    pub result: Option<WorkerResult>,
    /// The files, verified (empty unless the worker did its work).
    pub files: Vec<Verified>,
}

impl Judged {
    fn fail(fault: WorkerFault, why: impl Into<String>, result: Option<WorkerResult>) -> Self {
        Self {
            fault: Some((fault, why.into())),
            result,
            files: Vec::new(),
        }
    }
}

/// Judge a finished worker child: how it ended, its result, its files, and whether it
/// changed the workspace outside its output directory (`changed`, from [`Snapshot`]).
pub fn judge(res: &ChildResult, output: &Path, changed: &[String]) -> Judged {
    if !changed.is_empty() {
        let shown: Vec<&str> = changed.iter().take(5).map(String::as_str).collect();
        return Judged::fail(
            WorkerFault::WroteOutsideOutputDir,
            format!(
                "the mission workspace changed outside the worker's output directory: {}{}",
                shown.join(", "),
                if changed.len() > 5 {
                    format!(" and {} more", changed.len() - 5)
                } else {
                    String::new()
                }
            ),
            None,
        );
    }
    if res.timed_out {
        return Judged::fail(WorkerFault::TimedOut, "still running at its timeout", None);
    }
    match res.ended {
        Ended::SpawnFailed(e) | Ended::SetupFailed(_, e) => {
            return Judged::fail(
                WorkerFault::SpawnFailed,
                format!("could not start: {}", super::outcome::errno_name(e)),
                None,
            );
        }
        Ended::Signaled(s) => {
            return Judged::fail(
                WorkerFault::Crashed,
                format!("killed by {}", super::outcome::signal_name(s)),
                None,
            );
        }
        Ended::Exited(c) if c != 0 => {
            return Judged::fail(
                WorkerFault::ExitedNonzero,
                format!("exited with code {c}"),
                parse_result(&res.stdout.kept).ok(),
            );
        }
        Ended::Exited(_) => {}
    }
    let out = &res.stdout;
    if out.bytes == 0 || out.kept.iter().all(u8::is_ascii_whitespace) {
        return Judged::fail(
            WorkerFault::NoResult,
            "exited 0 without printing a result on stdout",
            None,
        );
    }
    if out.truncated || out.bytes > MAX_RESULT_BYTES {
        return Judged::fail(
            WorkerFault::MalformedResult,
            format!(
                "printed {} bytes; a result has at most {MAX_RESULT_BYTES}",
                out.bytes
            ),
            None,
        );
    }
    let result = match parse_result(&out.kept) {
        Ok(r) => r,
        Err(why) => return Judged::fail(WorkerFault::MalformedResult, why, None),
    };
    if result.status == ResultStatus::Failed {
        let msg = result
            .message
            .clone()
            .unwrap_or_else(|| "no message".into());
        return Judged::fail(
            WorkerFault::ReportedFailure,
            format!("its result says `failed`: {msg}"),
            Some(result),
        );
    }
    match verify_files(&result.files, output) {
        Ok(files) => Judged {
            fault: None,
            result: Some(result),
            files,
        },
        Err((f, why)) => Judged::fail(f, why, Some(result)),
    }
}

/// Parse a result strictly: one JSON document, known keys only, this protocol.
pub fn parse_result(bytes: &[u8]) -> Result<WorkerResult, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("stdout is not UTF-8: {e}"))?;
    let r: WorkerResult = serde_json::from_str(text.trim())
        .map_err(|e| format!("stdout is not one valid worker result: {e}"))?;
    if r.protocol != WORKER_PROTOCOL {
        return Err(format!(
            "the result speaks protocol {}; this runner speaks {WORKER_PROTOCOL}",
            r.protocol
        ));
    }
    Ok(r)
}

/// Check every claimed file, then that nothing unlisted is in the output directory.
fn verify_files(files: &[ProducedFile], output: &Path) -> Result<Vec<Verified>, Failure> {
    if files.len() > MAX_OUTPUT_FILES {
        return Err((
            WorkerFault::OutputTooLarge,
            format!(
                "lists {} files; a worker may produce at most {MAX_OUTPUT_FILES}",
                files.len()
            ),
        ));
    }
    let mut out: Vec<Verified> = Vec::with_capacity(files.len());
    let mut total = 0u64;
    for f in files {
        if out.iter().any(|v| v.name == f.path) {
            return Err((
                WorkerFault::MalformedResult,
                format!("lists `{}` twice", f.path),
            ));
        }
        if !safe_relative(&f.path) {
            return Err((
                WorkerFault::OutputOutsideDir,
                format!(
                    "lists `{}`, which is not a relative path inside its output directory",
                    f.path
                ),
            ));
        }
        let path = match inside(output, &f.path) {
            Ok(p) => p,
            Err(why) if why == "does not exist" => {
                return Err((
                    WorkerFault::MissingOutput,
                    format!("lists `{}`, which does not exist", f.path),
                ));
            }
            Err(why) => {
                return Err((
                    WorkerFault::OutputOutsideDir,
                    format!("lists `{}`, which {why}", f.path),
                ));
            }
        };
        let (bytes, digest) = read_bounded(&path).map_err(|why| {
            let fault = if why.starts_with("has more") {
                WorkerFault::OutputTooLarge
            } else {
                WorkerFault::OutputOutsideDir
            };
            (fault, format!("`{}` {why}", f.path))
        })?;
        total += bytes.len() as u64;
        if total > MAX_OUTPUT_TOTAL_BYTES {
            return Err((
                WorkerFault::OutputTooLarge,
                format!("its files exceed {MAX_OUTPUT_TOTAL_BYTES} bytes together"),
            ));
        }
        let sha = sha256_hex(&bytes);
        if !f.sha256.eq_ignore_ascii_case(&sha) {
            return Err((
                WorkerFault::OutputDigestMismatch,
                format!(
                    "`{}` has sha256 {}, its result claims {}",
                    f.path,
                    short(&sha),
                    short(&f.sha256)
                ),
            ));
        }
        out.push(Verified {
            name: f.path.clone(),
            path,
            size: bytes.len() as u64,
            digest,
            media_type: f.media_type.clone(),
        });
    }
    let listed: std::collections::BTreeSet<&str> = out.iter().map(|v| v.name.as_str()).collect();
    if let Some(extra) = unlisted(output, &listed) {
        return Err((
            WorkerFault::UnlistedOutput,
            format!("`{extra}` is in its output directory but not in its result's `files`"),
        ));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The first entry of `output` (not a directory holding only listed files) that is not
/// listed.
fn unlisted(output: &Path, listed: &std::collections::BTreeSet<&str>) -> Option<String> {
    let mut todo = vec![output.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = todo.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            seen += 1;
            if seen > MAX_OUTPUT_FILES * 16 {
                return Some("(too many entries)".into());
            }
            let rel = p
                .strip_prefix(output)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                todo.push(p);
            } else if !listed.contains(rel.as_str()) {
                return Some(rel);
            }
        }
    }
    None
}

/// `artifacts.json` from the scenario lane's observations: one entry per worker task that
/// ran (sorted by task), with its worker's identity, its inputs and what it consumed and
/// produced.
pub fn artifacts_file(
    run_id: &str,
    plan_id: &str,
    plan_digest: &Digest,
    inputs_digest: &Digest,
    observations: &[Option<crate::model::results::Observation>],
) -> ArtifactsFile {
    let mut tasks: Vec<TaskArtifacts> = observations
        .iter()
        .flatten()
        .filter_map(|o| {
            let w = o.result.worker.as_ref()?;
            Some(TaskArtifacts {
                task_id: o.task_id.clone().unwrap_or_default(),
                worker: w.worker.clone(),
                inputs: w.inputs.clone(),
                inputs_digest: w.inputs_digest.clone(),
                fault: w.fault,
                artifacts: w.artifacts.clone(),
                consumed: w.consumed.clone(),
            })
        })
        .collect();
    tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    ArtifactsFile {
        schema: ARTIFACTS_SCHEMA.to_string(),
        run_id: run_id.to_string(),
        plan_id: plan_id.to_string(),
        plan_digest: plan_digest.clone(),
        inputs_digest: inputs_digest.clone(),
        tasks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::child::Captured;
    use crate::model::results::Rusage;

    fn res(ended: Ended, stdout: &str) -> ChildResult {
        ChildResult {
            ended,
            timed_out: false,
            rusage: Rusage::default(),
            stdout: Captured {
                bytes: stdout.len() as u64,
                kept: stdout.as_bytes().to_vec(),
                truncated: false,
                complete: true,
            },
            stderr: Captured::default(),
            leaked: Vec::new(),
            pid: 1,
            lived_ms: (0, 0),
        }
    }

    /// Staging never writes or removes through a symlink an earlier task planted in the
    /// shared workspace, at any position on the way to the output directory or the request.
    #[test]
    fn staging_never_follows_a_planted_symlink() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().join("ws");
        let victim = t.path().join("victim");
        std::fs::create_dir_all(victim.join("t1")).unwrap();
        std::fs::write(victim.join("t1/keep"), b"k").unwrap();
        std::fs::write(victim.join("req.json"), b"v").unwrap();
        // Each component of `<ws>/artifacts/t1` in turn a symlink to the victim.
        for at in ["artifacts", "artifacts/t1"] {
            let _ = std::fs::remove_dir_all(&ws);
            std::fs::create_dir_all(ws.join("artifacts")).unwrap();
            if at == "artifacts" {
                std::fs::remove_dir(ws.join("artifacts")).unwrap();
                std::os::unix::fs::symlink(&victim, ws.join(at)).unwrap();
                let why = fresh_dir(&output_dir(&ws, "t1")).unwrap_err();
                assert!(
                    why.contains("symbolic link") && why.contains("artifacts"),
                    "{why}"
                );
            } else {
                std::os::unix::fs::symlink(victim.join("t1"), ws.join(at)).unwrap();
                // The link itself is replaced by an empty directory; the victim is untouched.
                fresh_dir(&output_dir(&ws, "t1")).unwrap();
                let m = std::fs::symlink_metadata(ws.join(at)).unwrap();
                assert!(m.is_dir(), "{at}");
            }
            assert_eq!(std::fs::read(victim.join("t1/keep")).unwrap(), b"k", "{at}");
        }
        // The request: a symlink at its name is replaced, one on the way refused.
        std::fs::create_dir_all(ws.join("w")).unwrap();
        std::os::unix::fs::symlink(victim.join("req.json"), ws.join("w/req.json")).unwrap();
        write_file(&ws.join("w/req.json"), b"new", 0o444).unwrap();
        assert_eq!(std::fs::read(victim.join("req.json")).unwrap(), b"v");
        assert_eq!(std::fs::read(ws.join("w/req.json")).unwrap(), b"new");
        std::os::unix::fs::symlink(&victim, ws.join("l")).unwrap();
        let e = write_file(&ws.join("l/req.json"), b"new", 0o444).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(victim.join("req.json")).unwrap(), b"v");
    }

    fn result(files: &[(&str, &str)]) -> String {
        let files: Vec<serde_json::Value> = files
            .iter()
            .map(|(p, d)| serde_json::json!({"path": p, "sha256": d}))
            .collect();
        serde_json::json!({"protocol": 1, "status": "ok", "files": files}).to_string()
    }

    fn fault(j: &Judged) -> Option<WorkerFault> {
        j.fault.as_ref().map(|f| f.0)
    }

    /// Every way a result can be wrong is its own fault; each bad claim sits between good
    /// ones so the order of the checks does not hide one.
    #[test]
    #[allow(clippy::many_single_char_names)]
    fn each_fault_has_its_own_reason() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        std::fs::create_dir_all(out.join("sub")).unwrap();
        std::fs::write(out.join("a.txt"), b"alpha").unwrap();
        std::fs::write(out.join("sub/b.txt"), b"beta").unwrap();
        std::fs::write(t.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), out.join("link")).unwrap();
        std::os::unix::fs::symlink(t.path(), out.join("dirlink")).unwrap();
        let a = sha256_hex(b"alpha");
        let b = sha256_hex(b"beta");
        let exited = Ended::Exited(0);
        let j = |stdout: &str| judge(&res(exited.clone(), stdout), &out, &[]);
        // Good: everything listed (the symlinks are listed here, so they are judged).
        let mut cases: Vec<(String, Option<WorkerFault>)> = vec![
            (String::new(), Some(WorkerFault::NoResult)),
            ("  \n".into(), Some(WorkerFault::NoResult)),
            ("{not json".into(), Some(WorkerFault::MalformedResult)),
            (
                r#"{"protocol": 2, "status": "ok"}"#.into(),
                Some(WorkerFault::MalformedResult),
            ),
            (
                r#"{"protocol": 1, "status": "ok", "surprise": 1}"#.into(),
                Some(WorkerFault::MalformedResult),
            ),
            (
                r#"{"protocol": 1, "status": "failed", "message": "no"}"#.into(),
                Some(WorkerFault::ReportedFailure),
            ),
        ];
        for (claim, want) in [
            ("../secret", WorkerFault::OutputOutsideDir),
            ("/etc/passwd", WorkerFault::OutputOutsideDir),
            ("./a.txt", WorkerFault::OutputOutsideDir),
            ("link", WorkerFault::OutputOutsideDir),
            ("dirlink/secret", WorkerFault::OutputOutsideDir),
            ("sub", WorkerFault::OutputOutsideDir),
            ("missing.txt", WorkerFault::MissingOutput),
            ("sub/missing", WorkerFault::MissingOutput),
        ] {
            let files = [
                ("a.txt", a.as_str()),
                ("sub/b.txt", b.as_str()),
                (claim, a.as_str()),
            ];
            cases.push((result(&files), Some(want)));
        }
        cases.push((
            result(&[("a.txt", b.as_str()), ("sub/b.txt", b.as_str())]),
            Some(WorkerFault::OutputDigestMismatch),
        ));
        cases.push((
            result(&[("a.txt", a.as_str()), ("a.txt", a.as_str())]),
            Some(WorkerFault::MalformedResult),
        ));
        // Unlisted: only a.txt is listed, sub/b.txt and the links are not.
        cases.push((
            result(&[("a.txt", a.as_str())]),
            Some(WorkerFault::UnlistedOutput),
        ));
        for (stdout, want) in &cases {
            assert_eq!(fault(&j(stdout)), *want, "{stdout}");
        }
        // Exit codes, signals and timeouts come first.
        let r = res(Ended::Exited(3), &result(&[]));
        assert_eq!(
            fault(&judge(&r, &out, &[])),
            Some(WorkerFault::ExitedNonzero)
        );
        let r = res(Ended::Signaled(libc::SIGSEGV), "");
        assert_eq!(fault(&judge(&r, &out, &[])), Some(WorkerFault::Crashed));
        let mut r = res(Ended::Signaled(libc::SIGKILL), "");
        r.timed_out = true;
        assert_eq!(fault(&judge(&r, &out, &[])), Some(WorkerFault::TimedOut));
        // Writing outside the output directory wins over everything.
        let r = res(exited.clone(), &result(&[]));
        let j = judge(&r, &out, &["stray.txt".into()]);
        assert_eq!(fault(&j), Some(WorkerFault::WroteOutsideOutputDir));
        assert!(j.fault.unwrap().1.contains("stray.txt"));
        // A clean output directory with everything listed is fine.
        let clean = t.path().join("clean");
        std::fs::create_dir_all(clean.join("d")).unwrap();
        std::fs::write(clean.join("d/x"), b"alpha").unwrap();
        let j = judge(&res(exited, &result(&[("d/x", a.as_str())])), &clean, &[]);
        assert_eq!(fault(&j), None, "{:?}", j.fault);
        assert_eq!(j.files.len(), 1);
        assert_eq!(j.files[0].digest.sha256.as_deref(), Some(a.as_str()));
    }

    /// Seeded random claims built from path pieces that escape in every way (`..`, `.`,
    /// empty components, absolute paths, symlinks to a directory and to a file outside):
    /// whatever a worker claims, a file the runner accepts is a regular file reached
    /// without any symlink, inside the output directory.
    #[test]
    fn no_generated_claim_gets_a_file_from_outside_the_output_directory() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        std::fs::create_dir_all(out.join("sub")).unwrap();
        std::fs::write(out.join("a.txt"), b"a").unwrap();
        std::fs::write(out.join("sub/b.txt"), b"b").unwrap();
        std::fs::write(t.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(t.path(), out.join("up")).unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), out.join("sub/s")).unwrap();
        let pieces = [
            "a.txt", "sub", "b.txt", "..", ".", "", "up", "s", "secret", "out", "/",
        ];
        let canon_out = std::fs::canonicalize(&out).unwrap();
        let mut seed: u64 = 0x5eed_1234_abcd_0001;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(seed >> 33).unwrap() % n
        };
        let mut accepted = 0;
        for _ in 0..2000 {
            let len = 1 + next(4);
            let claim: Vec<&str> = (0..len).map(|_| pieces[next(pieces.len())]).collect();
            let claim = claim.join("/");
            // What `verify_files` does with a claimed path: refuse it unless it is a safe
            // relative path, then walk it with `inside`.
            let reached = if safe_relative(&claim) {
                inside(&out, &claim)
            } else {
                Err("not a safe relative path".into())
            };
            if let Ok(p) = reached {
                accepted += 1;
                let canon = std::fs::canonicalize(&p).unwrap();
                assert!(
                    canon.starts_with(&canon_out),
                    "{claim} → {}",
                    canon.display()
                );
                assert_eq!(canon, p, "{claim} went through a symlink");
                assert!(std::fs::symlink_metadata(&p).unwrap().is_file(), "{claim}");
            } else {
                // And the whole check agrees: such a claim never verifies.
                let files = [ProducedFile {
                    path: claim.clone(),
                    sha256: "00".into(),
                    media_type: None,
                }];
                let fault = verify_files(&files, &out).unwrap_err().0;
                assert!(
                    matches!(
                        fault,
                        WorkerFault::OutputOutsideDir | WorkerFault::MissingOutput
                    ),
                    "{claim}: {fault:?}"
                );
            }
        }
        // The generator reaches the good files too (`a.txt`, `sub/b.txt`), so the property
        // is checked on accepted claims, not only on refusals.
        assert!(accepted >= 10, "only {accepted} claims reached a file");
    }

    #[test]
    fn snapshots_see_changes_outside_the_output_directory_only() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path();
        let out = ws.join("artifacts/t");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(ws.join("report.txt"), b"r").unwrap();
        let before = Snapshot::take(ws, &out);
        std::fs::write(out.join("fine"), b"x").unwrap();
        assert!(before.changed(&Snapshot::take(ws, &out)).is_empty());
        std::fs::write(ws.join("stray"), b"x").unwrap();
        std::fs::remove_file(ws.join("report.txt")).unwrap();
        assert_eq!(
            before.changed(&Snapshot::take(ws, &out)),
            vec!["report.txt", "stray"]
        );
        // Replacing the output directory itself (here by a symlink) is a change too.
        let before = Snapshot::take(ws, &out);
        std::fs::rename(&out, ws.join("moved")).unwrap();
        std::os::unix::fs::symlink("/etc", &out).unwrap();
        let changed = before.changed(&Snapshot::take(ws, &out));
        assert!(changed.contains(&"artifacts/t".to_string()), "{changed:?}");
    }
}
