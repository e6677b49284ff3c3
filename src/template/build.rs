//! `plan-build`: resolve the parameters, render, check, and only then write.
//!
//! Output layout under the out directory:
//! ```text
//! plans/<plan_id>/plan.json (or plan.yaml)
//! plans/<plan_id>/expected_matrix.json        (unless --no-expected-matrix)
//! registry/<registry_id>/probes.json, profiles.json (or .yaml)
//! ```
//! so `nexusmon run --plan <out>/plans/<plan_id>/plan.json` finds its registry (the loader
//! searches `registry/<id>/` upwards from the plan). The registry id is the plan id: every
//! parameter set gets its own registry, so two builds never clash.
//!
//! Order of work, so that a failure leaves nothing behind:
//! 1. resolve `--set` values and render in memory ([`super::render`]);
//! 2. write every file into a private temp directory with the same layout, lint the plan
//!    with its registry there (`lint::check_plan`, the check `plan-lint` and `run` use) and
//!    load it (`load::load_plan`, the loader `run` uses); for YAML output, check that the
//!    files load to exactly the documents that were rendered;
//! 3. compute `expected_matrix.json` from the loaded plan's scenarios (the same content the
//!    run writes into its bundle);
//! 4. check every target: a file that exists with other content (or a `plan.yaml` beside a
//!    new `plan.json`, which would make the directory ambiguous) is refused without
//!    `--overwrite`, one with the same bytes is left alone, and anything in the way that is
//!    not a regular file is refused always;
//! 5. write the files atomically, one by one: registry first, plan last, so an interrupted
//!    build never leaves a plan whose registry is missing. With `--overwrite`, stale
//!    alternatives (`plan.yaml` when writing `plan.json`, an old `expected_matrix.json` with
//!    `--no-expected-matrix`) are removed after the new files are in place. If a write fails
//!    midway (a full disk), the files and directories this build created are removed again.
//!
//! `$schema`: every generated plan, probes and profiles file has one, a relative path
//! editors resolve (`../../schemas/plan.schema.json`). When the out directory lies inside a
//! tree whose root has `schemas/` with the plan, probes and profiles schemas (a nexusmon
//! checkout, or a project that keeps copies), the files point at those; elsewhere the build
//! writes this build's three schemas into `<out>/schemas/` (first, like any other file) and
//! points at them. The schemas' `$id`s are URNs that identify, not locate.
//!
//! Rebuilding is idempotent: a target that already holds exactly the bytes the build would
//! write is left alone (`unchanged`), so the same command run twice succeeds and writes
//! nothing the second time. A target with other content is refused without `--overwrite`,
//! before anything is written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::render::{self, Rendered};
use super::{Template, params, yaml};
use crate::lint::{Finding, Severity};
use crate::model::results::{ExpectedMatrix, RESULTS_SCHEMA_VERSION};
use crate::model::template::OutputFormat;
use crate::util::digest::Digest;
use crate::util::{fsx, json};
use crate::{Error, Result};

/// What to build and where.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The out directory (absolute or relative to the current directory).
    pub out: PathBuf,
    /// `--set key=value` arguments.
    pub sets: Vec<String>,
    /// `--plan-id`: the plan's (and registry's) id instead of the derived one.
    pub plan_id: Option<String>,
    /// Replace files that exist with other content.
    pub overwrite: bool,
    /// Write `expected_matrix.json`.
    pub expected_matrix: bool,
    /// Most scenarios the build may generate (`--max-scenarios`;
    /// [`crate::util::limits::MAX_TEMPLATE_SCENARIOS`] by default).
    pub max_scenarios: usize,
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// It did not exist.
    Created,
    /// It existed and was replaced (`--overwrite`).
    Replaced,
    /// A stale file removed (`--overwrite`).
    Removed,
    /// It existed with exactly these bytes and was left alone.
    Unchanged,
}

/// One file the build wrote or removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileAction {
    /// The file.
    pub path: PathBuf,
    /// `plan`, `probes`, `profiles`, `expected-matrix`, `schema`.
    pub kind: &'static str,
    /// What happened.
    pub action: Action,
}

/// Lint of the generated plan and registry (errors refuse the build).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LintSummary {
    /// Findings by severity.
    pub errors: usize,
    /// Warnings.
    pub warnings: usize,
    /// Notes.
    pub notes: usize,
    /// Every finding as `file:line:column: severity [code] message`, paths as written.
    pub findings: Vec<String>,
}

/// The result of a build.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// The template.
    pub template_id: String,
    /// `project` or `built-in`.
    pub template_origin: &'static str,
    /// The plan's id.
    pub plan_id: String,
    /// The registry's id.
    pub registry_id: String,
    /// The format of the plan and registry files.
    pub format: OutputFormat,
    /// The plan file.
    pub plan: PathBuf,
    /// `plan_digest` of the plan with its registry entries (as `run` computes it).
    pub plan_digest: Digest,
    /// Every parameter's value.
    pub parameters: BTreeMap<String, Value>,
    /// The parameters that differ from their defaults (what names the plan).
    pub non_default: BTreeMap<String, Value>,
    /// Profiles in the plan.
    pub profiles: usize,
    /// Probes in the registry.
    pub probes: usize,
    /// Scenarios in the plan (controls included).
    pub scenarios: usize,
    /// Files written and removed, in order.
    pub files: Vec<FileAction>,
    /// The lint of the generated files.
    pub lint: LintSummary,
}

/// A private temp directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        for _ in 0..16 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let p = base.join(format!(
                "nexusmon-plan-build-{}-{}-{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(Self(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create a temp directory", &p, e)),
            }
        }
        Err(Error::runner(format!(
            "cannot create a temp directory in {}",
            base.display()
        )))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `path` with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The nearest ancestor of `dir` (itself included) whose `schemas/` has the plan, probes and
/// profiles schemas.
fn schema_root(dir: &Path) -> Option<PathBuf> {
    fsx::find_upwards(dir, |d| {
        ["plan", "probes", "profiles"]
            .iter()
            .all(|n| d.join("schemas").join(format!("{n}.schema.json")).is_file())
    })
}

/// The nearest existing ancestor of `dir` (itself included), if it is not a directory: a
/// file where the build needs a directory.
fn blocked(dir: &Path) -> Option<PathBuf> {
    for a in dir.ancestors() {
        match std::fs::metadata(a) {
            Ok(m) if m.is_dir() => return None,
            Ok(_) => return Some(a.to_path_buf()),
            Err(_) => {}
        }
    }
    None
}

/// The relative path from `from_dir` to `root/schemas/<name>.schema.json`, where `from_dir`
/// lies beneath `root`.
fn relative_schema(root: &Path, from_dir: &Path, name: &str) -> Option<String> {
    let rest = from_dir.strip_prefix(root).ok()?;
    let ups = rest.components().count();
    Some(format!("{}schemas/{name}.schema.json", "../".repeat(ups)))
}

/// The bytes of a document in the output format. YAML is parsed back and compared with the
/// value, so a file that would load differently is never written.
pub(crate) fn bytes_of(v: &Value, format: OutputFormat, name: &str) -> Result<Vec<u8>> {
    match format {
        OutputFormat::Json => json::to_sorted_pretty(v),
        OutputFormat::Yaml => {
            let text = yaml::to_yaml(v);
            let back = crate::source::Document::parse_as(
                name,
                text.clone(),
                crate::source::Format::Yaml,
            )
            .map_err(|e| {
                Error::runner(format!(
                    "internal error: the YAML written for {name} does not parse ({}:{}: {})",
                    e.pos.line, e.pos.col, e.message
                ))
            })?;
            if back.value() != *v {
                return Err(Error::runner(format!(
                    "internal error: the YAML written for {name} does not read back as the same document"
                )));
            }
            Ok(text.into_bytes())
        }
    }
}

/// The expected matrix of a plan: every scenario it declares with its expectation (what the
/// run writes into its bundle when no filter is given).
pub fn expected_matrix(loaded: &crate::load::LoadedPlan) -> Result<ExpectedMatrix> {
    let plan = &loaded.plan;
    let tasks: std::collections::BTreeMap<String, crate::load::mission::TaskMeta> =
        crate::load::mission::task_specs(loaded)?
            .into_iter()
            .map(|(s, m)| (s.scenario_id, m))
            .collect();
    Ok(ExpectedMatrix {
        schema_version: RESULTS_SCHEMA_VERSION,
        plan_id: plan.plan_id.to_string(),
        scenarios: crate::load::mission::all_specs(loaded)?
            .into_iter()
            .map(|s| {
                let entry = crate::load::mission::expected_entry(&s, tasks.get(&s.scenario_id));
                (s.scenario_id, entry)
            })
            .collect(),
    })
}

/// One file to write: where (relative to the out dir), what, its bytes.
struct Planned {
    rel: PathBuf,
    kind: &'static str,
    bytes: Vec<u8>,
}

fn finding_line(f: &Finding, temp: &Path, out: &Path) -> String {
    let shown = f
        .file
        .strip_prefix(temp)
        .map_or_else(|_| f.file.clone(), |rel| out.join(rel));
    let mut s = format!(
        "{}:{}:{}: {} [{}] {}",
        shown.display(),
        f.line,
        f.column,
        f.severity().as_str(),
        f.code.id(),
        f.message
    );
    if let Some(h) = &f.hint {
        let _ = write!(s, " (hint: {h})");
    }
    s
}

/// Build `template` with `opts`. Nothing is written unless every check passes.
pub fn build(template: &Template, opts: &BuildOptions) -> Result<BuildReport> {
    let resolved = params::resolve(template.id(), &template.params, &opts.sets)?;
    let rendered = render::render_as(
        template,
        &resolved,
        opts.plan_id.as_deref(),
        opts.max_scenarios,
    )?;
    let out = normalize(&fsx::absolute(&opts.out)?);
    let format = resolved.format;
    let ext = format.as_str();
    let plan_rel = PathBuf::from("plans").join(rendered.plan_id.as_str());
    let reg_rel = PathBuf::from("registry").join(rendered.registry_id.as_str());

    let (schemas, mut files) = planned_files(&rendered, &out, &plan_rel, &reg_rel, format)?;

    let (lint, loaded, matrix) = check_in_temp(
        template,
        &rendered,
        &schemas,
        &files,
        &out,
        &plan_rel.join(format!("plan.{ext}")),
    )?;
    let scenarios = matrix.scenarios.len();
    if opts.expected_matrix {
        files.push(Planned {
            rel: plan_rel.join("expected_matrix.json"),
            kind: "expected-matrix",
            bytes: json::to_sorted_pretty(&matrix)?,
        });
    }
    // Schemas first, then the registry, the matrix, the plan last.
    files.sort_by_key(|f| match f.kind {
        "schema" => 0,
        "probes" => 1,
        "profiles" => 2,
        "expected-matrix" => 3,
        _ => 4,
    });

    // Check every target before writing the first.
    let stale = stale_targets(&reg_rel, &plan_rel, ext, opts.expected_matrix);
    let existing = existing_targets(&out, &files, &stale, &plan_rel, &reg_rel, opts.overwrite)?;

    let actions = write_files(&out, &files, &stale, &existing)?;
    Ok(BuildReport {
        template_id: template.id().to_string(),
        template_origin: template.origin.as_str(),
        plan_id: rendered.plan_id.to_string(),
        registry_id: rendered.registry_id.to_string(),
        format,
        plan: out.join(plan_rel.join(format!("plan.{ext}"))),
        plan_digest: loaded.digest.clone(),
        parameters: resolved.values.clone(),
        non_default: resolved.non_default.clone(),
        profiles: rendered.plan.profiles.len(),
        probes: rendered.probes.probes.len(),
        scenarios,
        files: actions,
        lint,
    })
}

/// The `$schema` references (where the out dir lies in a tree that has the schemas) and the
/// rendered files to write: probes, profiles, plan.
fn planned_files(
    rendered: &Rendered,
    out: &Path,
    plan_rel: &Path,
    reg_rel: &Path,
    format: OutputFormat,
) -> Result<(BTreeMap<&'static str, String>, Vec<Planned>)> {
    // `$schema` always: the schemas of the tree the out dir lies in, else this build's
    // schemas written into `<out>/schemas/` beside the plan and registry.
    let mut schemas: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut files = Vec::new();
    let root = if let Some(root) = schema_root(out) {
        root
    } else {
        for name in ["plan", "probes", "profiles"] {
            let spec = crate::lint::schema::spec(name)
                .ok_or_else(|| Error::runner(format!("internal error: no schema `{name}`")))?;
            files.push(Planned {
                rel: PathBuf::from("schemas").join(spec.file_name),
                kind: "schema",
                bytes: crate::lint::schema::render(spec)?,
            });
        }
        out.to_path_buf()
    };
    for (name, dir) in [
        ("plan", plan_rel),
        ("probes", reg_rel),
        ("profiles", reg_rel),
    ] {
        if let Some(r) = relative_schema(&root, &out.join(dir), name) {
            schemas.insert(name, r);
        }
    }
    let [plan_v, probes_v, profiles_v] = render::values(rendered, &schemas);
    let ext = format.as_str();
    files.extend([
        Planned {
            rel: reg_rel.join(format!("probes.{ext}")),
            kind: "probes",
            bytes: bytes_of(&probes_v, format, &format!("probes.{ext}"))?,
        },
        Planned {
            rel: reg_rel.join(format!("profiles.{ext}")),
            kind: "profiles",
            bytes: bytes_of(&profiles_v, format, &format!("profiles.{ext}"))?,
        },
        Planned {
            rel: plan_rel.join(format!("plan.{ext}")),
            kind: "plan",
            bytes: bytes_of(&plan_v, format, &format!("plan.{ext}"))?,
        },
    ]);
    Ok((schemas, files))
}

/// Lint and load the files where nobody else sees them (a temp dir, removed on return):
/// the lint summary, the plan as `run` loads it (checked to be what was rendered) and its
/// expected matrix.
fn check_in_temp(
    template: &Template,
    rendered: &Rendered,
    schemas: &BTreeMap<&'static str, String>,
    files: &[Planned],
    out: &Path,
    plan_rel_file: &Path,
) -> Result<(LintSummary, crate::load::LoadedPlan, ExpectedMatrix)> {
    // Lint and load the files where nobody else sees them.
    let temp = TempDir::new()?;
    for f in files {
        let p = temp.0.join(&f.rel);
        if let Some(parent) = p.parent() {
            fsx::create_dir_all(parent)?;
        }
        fsx::write_atomic_with(&p, &f.bytes, false)?;
    }
    let temp_plan = temp.0.join(plan_rel_file);
    let report = crate::lint::check_plan(&temp_plan, &temp.0)?;
    let mut lint = LintSummary::default();
    for f in &report.findings {
        match f.severity() {
            Severity::Error => lint.errors += 1,
            Severity::Warning => lint.warnings += 1,
            Severity::Note => lint.notes += 1,
        }
        lint.findings.push(finding_line(f, &temp.0, out));
    }
    if lint.errors > 0 {
        let mut msg = format!(
            "template `{}` generates a plan that does not lint ({} error{}); nothing was written",
            template.id(),
            lint.errors,
            if lint.errors == 1 { "" } else { "s" }
        );
        for (f, line) in report.findings.iter().zip(&lint.findings) {
            if f.severity() == Severity::Error {
                let _ = write!(msg, "\n  {line}");
            }
        }
        return Err(Error::usage(msg).with_hint(format!(
            "the template ({}) or these parameter values produce an invalid plan",
            template.shown_path()
        )));
    }
    let loaded = crate::load::load_plan(&temp_plan)?;
    check_loaded(rendered, schemas, &loaded)?;
    let matrix = expected_matrix(&loaded)?;
    Ok((lint, loaded, matrix))
}

/// The other formats' files (and an expected matrix not asked for) that a build removes
/// if they exist.
fn stale_targets(
    reg_rel: &Path,
    plan_rel: &Path,
    ext: &str,
    expected_matrix: bool,
) -> Vec<(PathBuf, &'static str)> {
    let mut stale: Vec<(PathBuf, &'static str)> = Vec::new();
    for (dir, stems) in [
        (
            reg_rel,
            vec![("probes", "probes"), ("profiles", "profiles")],
        ),
        (plan_rel, vec![("plan", "plan")]),
    ] {
        for (stem, kind) in stems {
            for e in ["json", "yaml", "yml"] {
                if e != ext {
                    stale.push((dir.join(format!("{stem}.{e}")), kind));
                }
            }
        }
    }
    if !expected_matrix {
        stale.push((plan_rel.join("expected_matrix.json"), "expected-matrix"));
    }
    stale
}

/// A target that exists already.
struct Existing {
    path: PathBuf,
    /// It holds exactly the bytes the build would write.
    same: bool,
}

/// The targets that exist already; refuses a file or directory in the way, and existing
/// files with other content unless `overwrite`.
fn existing_targets(
    out: &Path,
    files: &[Planned],
    stale: &[(PathBuf, &'static str)],
    plan_rel: &Path,
    reg_rel: &Path,
    overwrite: bool,
) -> Result<Vec<Existing>> {
    let mut dirs = vec![out.join(plan_rel), out.join(reg_rel)];
    dirs.extend(
        files
            .iter()
            .filter_map(|f| out.join(&f.rel).parent().map(Path::to_path_buf)),
    );
    dirs.dedup();
    for dir in dirs {
        crate::util::nofollow::check_dir_path(&dir)?;
        if let Some(p) = blocked(&dir) {
            return Err(Error::usage(format!(
                "`{}` is in the way: it is not a directory",
                p.display()
            ))
            .with_hint("move it, or choose another --out; nothing was written"));
        }
    }
    let mut existing: Vec<Existing> = Vec::new();
    let planned = files.iter().map(|f| (&f.rel, Some(&f.bytes)));
    for (rel, bytes) in planned.chain(stale.iter().map(|(r, _)| (r, None))) {
        let p = out.join(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                return Err(Error::usage(format!(
                    "`{}` is a directory where plan-build writes a file",
                    p.display()
                ))
                .with_hint("move it, or choose another --out; nothing was written"));
            }
            Ok(m) => {
                // A regular file with exactly the bytes the build would write is already
                // built: left alone, not a conflict. Anything else (other bytes, a symlink,
                // a stale alternative) would be replaced.
                let same = match bytes {
                    Some(b) if m.is_file() && m.len() == b.len() as u64 => {
                        std::fs::read(&p).map_err(|e| Error::io("read", &p, e))? == *b
                    }
                    _ => false,
                };
                existing.push(Existing { path: p, same });
            }
            Err(_) => {}
        }
    }
    let differing: Vec<&PathBuf> = existing
        .iter()
        .filter(|e| !e.same)
        .map(|e| &e.path)
        .collect();
    if !differing.is_empty() && !overwrite {
        return Err(Error::usage(format!(
            "plan-build would replace {} existing file{} whose content differs; nothing was written:\n{}",
            differing.len(),
            if differing.len() == 1 { "" } else { "s" },
            differing
                .iter()
                .map(|p| format!("  {}", p.display()))
                .collect::<Vec<_>>()
                .join("\n")
        ))
        .with_hint("pass --overwrite to replace them (stale plan.yaml/plan.json alternatives are removed), or choose another --out"));
    }
    Ok(existing)
}

/// Write the files (removing what this build created if a write fails), then remove the
/// stale alternatives.
fn write_files(
    out: &Path,
    files: &[Planned],
    stale: &[(PathBuf, &'static str)],
    existing: &[Existing],
) -> Result<Vec<FileAction>> {
    let is = |p: &Path, same: bool| existing.iter().any(|e| e.path == p && e.same == same);
    // Write. If a write fails (a full disk, a permission), the files this build created are
    // removed again, so a failed build leaves nothing new behind.
    let mut actions: Vec<FileAction> = Vec::new();
    let mut dirs_done: Vec<PathBuf> = Vec::new();
    // Directories this build creates, deepest first (removed again on failure).
    let mut new_dirs: Vec<PathBuf> = Vec::new();
    for f in files {
        for a in out.join(&f.rel).ancestors().skip(1) {
            if a.exists() {
                break;
            }
            if !new_dirs.iter().any(|d| d == a) {
                new_dirs.push(a.to_path_buf());
            }
        }
    }
    new_dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for f in files {
        let p = out.join(&f.rel);
        if is(&p, true) {
            actions.push(FileAction {
                path: p,
                kind: f.kind,
                action: Action::Unchanged,
            });
            continue;
        }
        let action = if is(&p, false) {
            Action::Replaced
        } else {
            Action::Created
        };
        let written = (|| {
            if let Some(parent) = p.parent()
                && !dirs_done.iter().any(|d| d == parent)
            {
                fsx::create_dir_all(parent)?;
                dirs_done.push(parent.to_path_buf());
            }
            fsx::write_atomic(&p, &f.bytes)
        })();
        if let Err(e) = written {
            let replaced: Vec<String> = actions
                .iter()
                .filter(|a| a.action == Action::Replaced)
                .map(|a| a.path.display().to_string())
                .collect();
            for a in actions.iter().filter(|a| a.action == Action::Created) {
                let _ = std::fs::remove_file(&a.path);
            }
            for d in &new_dirs {
                let _ = std::fs::remove_dir(d);
            }
            let hint = if replaced.is_empty() {
                "nothing was written; fix the cause and build again".to_string()
            } else {
                format!(
                    "the files it created were removed; these were already replaced: {}; build again with --overwrite",
                    replaced.join(", ")
                )
            };
            return Err(e.with_hint(hint));
        }
        actions.push(FileAction {
            path: p,
            kind: f.kind,
            action,
        });
    }
    for (rel, kind) in stale {
        let p = out.join(rel);
        if is(&p, false) {
            fsx::remove_file(&p)?;
            if let Some(parent) = p.parent() {
                fsx::sync_dir(parent)?;
            }
            actions.push(FileAction {
                path: p,
                kind,
                action: Action::Removed,
            });
        }
    }
    Ok(actions)
}

/// The files, loaded the way `run` loads them, are exactly what was rendered.
fn check_loaded(
    r: &Rendered,
    schemas: &BTreeMap<&'static str, String>,
    loaded: &crate::load::LoadedPlan,
) -> Result<()> {
    let mut plan = r.plan.clone();
    plan.schema = schemas.get("plan").cloned();
    let mut probes = r.probes.clone();
    probes.schema = schemas.get("probes").cloned();
    let mut profiles = r.profiles.clone();
    profiles.schema = schemas.get("profiles").cloned();
    if loaded.plan != plan
        || loaded.registry.probes != probes
        || loaded.registry.profiles != profiles
    {
        return Err(Error::runner(
            "internal error: the generated files do not load back as the rendered documents",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_schema_paths() {
        let root = Path::new("/p");
        assert_eq!(
            relative_schema(root, Path::new("/p/plans/x"), "plan").unwrap(),
            "../../schemas/plan.schema.json"
        );
        assert_eq!(
            relative_schema(root, Path::new("/p/gen/registry/x"), "probes").unwrap(),
            "../../../schemas/probes.schema.json"
        );
        assert!(relative_schema(root, Path::new("/q/plans/x"), "plan").is_none());
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
