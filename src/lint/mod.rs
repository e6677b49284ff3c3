//! Lint of plans and registries: every finding at once, each with a stable
//! code ([`codes`]), a severity, the file, line and column, the JSON pointer, a message and
//! where it helps a hint; four output formats ([`format`]); and the JSON Schemas lint
//! validates with and `schemas/` publishes ([`schema`]).
//!
//! The pipeline per file: read → syntax (one finding with line and column) → duplicate keys →
//! schema (every violation, translated into readable findings) → typed checks on what the
//! schema did not reject → checks across files (plan ↔ registry). Lint reads files, and to
//! compare rule paths where Landlock attaches them it resolves host rule paths (stat,
//! readlink); it never opens sockets, runs anything or asks the kernel about Landlock. Root
//! causes are reported first, and a file lists at most
//! [`crate::util::limits::MAX_FINDINGS_PER_FILE`] findings.
//!
//! Other modules call [`lint_plans`] (e.g. `run` refuses a plan whose report
//! [`Report::has_errors`]) and [`lint_registries`].

pub mod catalog;
pub mod codes;
pub mod finding;
pub mod format;
pub mod input;
pub mod plan;
pub mod registry;
pub mod schema;
pub mod scratch;
pub mod vars;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use codes::{Code, Severity};
pub use finding::Finding;

use crate::error::ErrorKind;
use crate::util::fsx;
use crate::{Error, Result, exit_code};

/// The result of a lint: what was checked and what was found.
#[derive(Debug, Default)]
pub struct Report {
    /// Number of files read (plans and registry files).
    pub files_checked: usize,
    /// Findings, sorted by file, line, column, code.
    pub findings: Vec<Finding>,
    /// Source text of every file with findings (for excerpts), by absolute path.
    pub sources: BTreeMap<PathBuf, String>,
    /// Findings not listed because their file had more than
    /// [`crate::util::limits::MAX_FINDINGS_PER_FILE`] (counted by severity: error,
    /// warning, note).
    pub omitted: [usize; 3],
}

impl Report {
    /// Number of findings of `severity` (listed or not).
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity() == severity)
            .count()
            + self.omitted[severity_index(severity)]
    }

    /// True if any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.count(Severity::Error) > 0
    }

    /// 0 (no errors; warnings and notes allowed) or 1 (errors).
    pub fn exit_code(&self) -> i32 {
        if self.has_errors() {
            exit_code::FINDINGS
        } else {
            exit_code::OK
        }
    }

    fn add_sources(&mut self, sources: impl IntoIterator<Item = (PathBuf, String)>) {
        let with: BTreeSet<&Path> = self.findings.iter().map(|f| f.file.as_path()).collect();
        let keep: Vec<(PathBuf, String)> = sources
            .into_iter()
            .filter(|(p, _)| with.contains(p.as_path()))
            .collect();
        self.sources.extend(keep);
    }

    fn finish(&mut self) {
        self.findings
            .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        self.findings.dedup();
        self.cap_per_file();
        // Root causes first: a file that cannot be read or a registry that is incomplete
        // explains findings elsewhere (stable: file order is kept within each group).
        self.findings.sort_by_key(|f| !f.code.is_root_cause());
    }

    /// Keep at most [`crate::util::limits::MAX_FINDINGS_PER_FILE`] findings per file (the
    /// most severe first) and count the rest in [`Report::omitted`], with one NX015 note
    /// per file that had more.
    fn cap_per_file(&mut self) {
        let max = crate::util::limits::MAX_FINDINGS_PER_FILE;
        let mut per_file: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for f in &self.findings {
            *per_file.entry(f.file.clone()).or_default() += 1;
        }
        if per_file.values().all(|&n| n <= max) {
            return;
        }
        let mut all = std::mem::take(&mut self.findings);
        all.sort_by(|a, b| {
            (&a.file, a.severity(), a.sort_key()).cmp(&(&b.file, b.severity(), b.sort_key()))
        });
        let mut kept_in: BTreeMap<PathBuf, usize> = BTreeMap::new();
        let mut dropped: BTreeMap<PathBuf, [usize; 3]> = BTreeMap::new();
        for f in all {
            let kept = kept_in.entry(f.file.clone()).or_default();
            if *kept < max {
                *kept += 1;
                self.findings.push(f);
            } else {
                let i = severity_index(f.severity());
                dropped.entry(f.file.clone()).or_default()[i] += 1;
                self.omitted[i] += 1;
            }
        }
        for (file, [e, w, n]) in dropped {
            self.findings.push(
                Finding::file_level(
                    Code::FindingsOmitted,
                    &file,
                    format!(
                        "{} more findings in this file are not listed ({e} errors, {w} warnings, {n} notes)",
                        e + w + n
                    ),
                )
                .with_hint(format!(
                    "lint lists at most {max} findings per file, errors first; fix these and run it again"
                )),
            );
        }
        self.findings
            .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    }
}

fn severity_index(s: Severity) -> usize {
    match s {
        Severity::Error => 0,
        Severity::Warning => 1,
        Severity::Note => 2,
    }
}

/// Names a plan file may have in a directory that is searched.
pub const PLAN_FILE_NAMES: [&str; 3] = ["plan.json", "plan.yaml", "plan.yml"];

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Directories a search never enters: hidden ones (`.git`, `.nexusmon`, `out/.staging`),
/// build output (`target`), and run bundles (which may hold copies of plans).
fn skipped_dir(dir: &Path) -> bool {
    is_hidden(dir)
        || dir
            .file_name()
            .is_some_and(|n| n == "target" || n == "node_modules")
        || dir.join("run_status.json").is_file()
        || dir.join("artifact_index.json").is_file()
}

/// Files under `dir` (recursively, sorted, not following symlinked directories, skipping
/// [`skipped_dir`]s) whose name satisfies `want`.
fn walk(dir: &Path, want: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fsx::read_dir_sorted(dir)? {
        let meta =
            std::fs::symlink_metadata(&entry).map_err(|e| Error::io_input("inspect", &entry, e))?;
        if meta.is_dir() {
            if !skipped_dir(&entry) {
                walk(&entry, want, out)?;
            }
        } else if entry
            .file_name()
            .is_some_and(|n| want(&n.to_string_lossy()))
            && entry.is_file()
        {
            out.push(entry);
        }
    }
    Ok(())
}

fn absolute_existing(p: &Path) -> Result<PathBuf> {
    let abs = fsx::absolute(p)?;
    if !abs.exists() {
        return Err(Error::usage(format!("`{}` does not exist", p.display()))
            .with_hint("pass plan files or directories that exist"));
    }
    Ok(abs)
}

/// The plan files `paths` name: files as given, directories searched recursively for
/// `plan.json`, `plan.yaml`, `plan.yml`. Sorted, without repeats.
pub fn discover_plans(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let abs = absolute_existing(p)?;
        if abs.is_dir() {
            walk(&abs, &|n| PLAN_FILE_NAMES.contains(&n), &mut out)?;
        } else if abs
            .file_stem()
            .is_some_and(|s| s == "probes" || s == "profiles")
        {
            return Err(
                Error::usage(format!("`{}` is a registry file, not a plan", p.display()))
                    .with_hint(format!(
                        "lint it with `nexusmon registry-lint {}`",
                        p.display()
                    )),
            );
        } else {
            out.push(abs);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The registry directories `paths` name: a directory holding `probes.*` or `profiles.*`
/// files is a registry; directories are searched recursively; a probes/profiles file names
/// the registry it is in. Sorted, without repeats.
pub fn discover_registries(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let is_data = |n: &str| {
        ["probes", "profiles"].iter().any(|stem| {
            ["json", "yaml", "yml"]
                .iter()
                .any(|ext| n == format!("{stem}.{ext}"))
        })
    };
    let mut out = Vec::new();
    for p in paths {
        let abs = absolute_existing(p)?;
        if abs.is_dir() {
            let mut files = Vec::new();
            walk(&abs, &is_data, &mut files)?;
            out.extend(
                files
                    .iter()
                    .filter_map(|f| f.parent().map(Path::to_path_buf)),
            );
        } else if abs
            .file_name()
            .is_some_and(|n| is_data(&n.to_string_lossy()))
        {
            out.extend(abs.parent().map(Path::to_path_buf));
        } else {
            return Err(registry::not_a_registry(p));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Lint the plans `paths` name (files or directories, recursive) with the registries they
/// use. `base` is the directory paths in messages are shown relative to (the cwd).
///
/// A path that does not exist is a usage error (exit 2); finding no plan at all is
/// "nothing selected" (exit 6), never a silent pass.
pub fn lint_plans(paths: &[PathBuf], base: &Path) -> Result<Report> {
    let files = discover_plans(paths)?;
    if files.is_empty() {
        return Err(Error::new(
            ErrorKind::NothingSelected,
            format!(
                "no plan files (plan.json, plan.yaml, plan.yml) under {}",
                paths
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_hint("pass a plan file or a directory containing plans/<name>/plan.json"));
    }
    lint_plan_files(&files, base)
}

/// Lint these plan files (absolute paths).
pub fn lint_plan_files(files: &[PathBuf], base: &Path) -> Result<Report> {
    let mut plans: Vec<plan::PlanInput> = files
        .par_iter()
        .map(|f| plan::read(f))
        .collect::<Result<Vec<_>>>()?;
    let reg_dirs: BTreeSet<PathBuf> = plans
        .iter()
        .filter_map(|p| p.registry_dir.clone())
        .collect();
    let regs: BTreeMap<PathBuf, registry::RegistryLint> = reg_dirs
        .into_par_iter()
        .map(|d| registry::lint_registry(&d).map(|r| (d, r)))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .collect();
    plans.par_iter_mut().for_each(|p| {
        let reg = p.registry_dir.as_ref().and_then(|d| regs.get(d));
        plan::check(p, reg, base);
    });
    let mut report = Report::default();
    duplicate_plan_ids(&mut plans, base);
    ambiguous_plan_files(&mut plans);
    let mut sources = Vec::new();
    for p in plans {
        report.files_checked += 1;
        report.findings.extend(p.input.findings);
        if let Some(t) = p.input.text {
            sources.push((p.input.path, t));
        }
    }
    for (_, r) in regs {
        report.files_checked += r.files_checked;
        report.findings.extend(r.findings);
        sources.extend(r.sources);
    }
    report.finish();
    report.add_sources(sources);
    Ok(report)
}

/// Two plans with one `plan_id`: reported on every plan but the first (by path).
fn duplicate_plan_ids(plans: &mut [plan::PlanInput], base: &Path) {
    let mut first: BTreeMap<String, PathBuf> = BTreeMap::new();
    for p in plans.iter_mut() {
        let Some(id) = p.plan_id.clone() else {
            continue;
        };
        match first.get(&id) {
            None => {
                first.insert(id, p.input.path.clone());
            }
            Some(other) => {
                let other = format::shown(other, base);
                if let Some(mut sink) = p.input.sink() {
                    sink.push_hint(
                        Code::DuplicateId,
                        "/plan_id",
                        finding::At::Value,
                        format!("plan id `{id}` is also used by {other}"),
                        Some("plan ids name bundles and packets; give each plan its own".into()),
                    );
                    let mut f = sink.findings;
                    p.input.findings.append(&mut f);
                }
            }
        }
    }
}

/// `plan.json` and `plan.yaml` in one directory.
fn ambiguous_plan_files(plans: &mut [plan::PlanInput]) {
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    for p in plans.iter_mut() {
        let name = p
            .input
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        if !name.is_some_and(|n| PLAN_FILE_NAMES.contains(&n.as_str())) {
            continue;
        }
        let Some(dir) = p.input.path.parent().map(Path::to_path_buf) else {
            continue;
        };
        if !seen.insert(dir) {
            p.input.findings.push(
                Finding::file_level(
                    Code::AmbiguousFile,
                    &p.input.path,
                    "more than one plan file (plan.json, plan.yaml, plan.yml) in one directory",
                )
                .with_hint("keep one; the directory names one plan"),
            );
        }
    }
}

/// Lint one plan file (with its registry) for a command that is about to use it, e.g.
/// `run`: returns the report, whose [`Report::has_errors`] means "refuse". Paths in
/// messages are shown relative to `base`.
pub fn check_plan(path: &Path, base: &Path) -> Result<Report> {
    let abs = absolute_existing(path)?;
    lint_plan_files(&[abs], base)
}

/// Lint a plan a command has loaded (`run`), from the loaded document and typed plan: the
/// report [`check_plan`] gives for its file, without reading or parsing it again. Where
/// the schema finds anything (the plan deserialized, yet breaks a constraint serde does not
/// check), the file is linted the way [`check_plan`] does.
pub fn check_loaded(loaded: &crate::load::LoadedPlan, base: &Path) -> Result<Report> {
    let abs = absolute_existing(&loaded.path)?;
    // The registry is linted after the plan's schema check, not on a thread beside it:
    // that saved ~3 ms but held both at once (a second malloc arena), +3 MiB of peak RSS
    // at 100,000 scenarios.
    let input = input::of_document(&abs, std::sync::Arc::clone(&loaded.doc), "plan")?;
    if input.schema_errors || !input.validated.invalid.is_empty() {
        return check_plan(&loaded.path, base);
    }
    let reg = lint_plan_registry(&abs, loaded)?;
    Ok(loaded_report(loaded, abs, input, reg, base))
}

/// [`check_loaded`] for a plan loaded by [`crate::load::load_plan_for_run`] (its tree
/// dropped, [`crate::load::LoadedPlan::tree_dropped`]): the registry is linted first,
/// while no tree of the plan exists (its parse and schema value are freed by then), then
/// the plan's text is parsed again into `loaded.doc` and the plan is linted as
/// [`check_loaded`] does. The same report and the same errors in the same order (the
/// registry's result is judged where [`check_loaded`] meets it).
///
/// The text is parsed again without the matrix's plain entries
/// ([`crate::source::Document::skeleton_plan`]: a policy matrix's every scenario, which
/// lint reads from the typed plan and places only when it finds something there), so the
/// plan is linted without a second tree of its matrix. Should the lint ask that tree for
/// anything it left out ([`crate::source::Document::missed`]: a finding under a matrix
/// row, say), its answers are discarded and the plan is linted again from the whole tree.
///
/// With `quote` false the plan's text is dropped once linted and the report quotes no
/// excerpt of the plan (as after [`crate::load::LoadedPlan::release_text`]: for `run`,
/// which reads positions only). `between` is called once the registry is linted, before
/// the plan is parsed again (`run` returns free pages to the kernel there). A plan whose
/// tree is there is linted by [`check_loaded`] (after `release_text` unless `quote`;
/// `between` is not called).
pub fn check_loaded_reparsing(
    loaded: &mut crate::load::LoadedPlan,
    base: &Path,
    quote: bool,
    between: &mut dyn FnMut(),
) -> Result<Report> {
    if !loaded.tree_dropped {
        if !quote {
            loaded.release_text();
        }
        return check_loaded(loaded, base);
    }
    let abs = absolute_existing(&loaded.path)?;
    let reg = lint_plan_registry(&abs, loaded);
    // Nothing reads the registry's documents after its lint.
    loaded.release_registry_documents();
    between();
    let skeleton = match std::sync::Arc::get_mut(&mut loaded.doc) {
        Some(d) => d.skeleton_plan()?,
        None => loaded.doc.as_ref().clone().skeleton_plan()?,
    };
    loaded.doc = std::sync::Arc::new(skeleton);
    loaded.tree_dropped = false;
    let mut input = input::of_document(&abs, std::sync::Arc::clone(&loaded.doc), "plan")?;
    if loaded.doc.missed() {
        drop(input);
        return lint_whole_tree(loaded, abs, reg, base, quote);
    }
    if input.schema_errors || !input.validated.invalid.is_empty() {
        drop(input);
        if !quote {
            loaded.release_text();
        }
        return check_plan(&loaded.path, base);
    }
    let reg = reg?;
    plan::check_with(&loaded.plan, &mut input, false, reg.as_ref(), base);
    if loaded.doc.missed() {
        drop(input);
        return lint_whole_tree(loaded, abs, Ok(reg), base, quote);
    }
    let findings = std::mem::take(&mut input.findings);
    drop(input);
    if !quote {
        loaded.release_text();
    }
    Ok(assembled_report(loaded, abs, findings, reg, quote))
}

/// The end of [`check_loaded_reparsing`] for a plan whose lint asked the tree without the
/// matrix's plain entries for one of them: the whole tree parsed again from the text that
/// tree holds, and the plan linted from it as [`check_loaded`] does.
fn lint_whole_tree(
    loaded: &mut crate::load::LoadedPlan,
    abs: PathBuf,
    reg: Result<Option<registry::RegistryLint>>,
    base: &Path,
    quote: bool,
) -> Result<Report> {
    let mut doc = match std::sync::Arc::get_mut(&mut loaded.doc) {
        Some(d) => d.reparsed_plan()?,
        None => loaded.doc.as_ref().clone().reparsed_plan()?,
    };
    if !quote {
        doc.text = String::new();
    }
    loaded.doc = std::sync::Arc::new(doc);
    let input = input::of_document(&abs, std::sync::Arc::clone(&loaded.doc), "plan")?;
    if input.schema_errors || !input.validated.invalid.is_empty() {
        return check_plan(&loaded.path, base);
    }
    Ok(loaded_report(loaded, abs, input, reg?, base))
}

/// The lint of the registry a loaded plan names (none if its directory is not found).
fn lint_plan_registry(
    abs: &Path,
    loaded: &crate::load::LoadedPlan,
) -> Result<Option<registry::RegistryLint>> {
    let registry_dir = abs
        .parent()
        .and_then(|dir| crate::load::find_registry_dir(dir, &loaded.plan.registry_id));
    Ok(match &registry_dir {
        Some(d) => Some(registry::lint_registry_with(
            d,
            loaded.registry.documents.as_ref(),
        )?),
        None => None,
    })
}

/// The report of [`check_loaded`] once the plan's schema passed and its registry is linted.
fn loaded_report(
    loaded: &crate::load::LoadedPlan,
    abs: PathBuf,
    mut input: input::Input,
    reg: Option<registry::RegistryLint>,
    base: &Path,
) -> Report {
    plan::check_with(&loaded.plan, &mut input, false, reg.as_ref(), base);
    let findings = std::mem::take(&mut input.findings);
    assembled_report(loaded, abs, findings, reg, true)
}

/// The report of a loaded plan's `findings` with its registry's lint. The plan's text is
/// copied for the report only when a finding needs its excerpt, and with `quote` (else the
/// plan's source is empty, as the text of a plan after
/// [`crate::load::LoadedPlan::release_text`]).
fn assembled_report(
    loaded: &crate::load::LoadedPlan,
    abs: PathBuf,
    mut findings: Vec<Finding>,
    reg: Option<registry::RegistryLint>,
    quote: bool,
) -> Report {
    let mut report = Report {
        files_checked: 1,
        ..Report::default()
    };
    report.findings.append(&mut findings);
    let mut sources: Vec<(PathBuf, String)> = Vec::new();
    if report.findings.iter().any(|f| f.file == abs) {
        let text = if quote {
            loaded.doc.text.clone()
        } else {
            String::new()
        };
        sources.push((abs, text));
    }
    if let Some(r) = reg {
        report.files_checked += r.files_checked;
        report.findings.extend(r.findings);
        sources.extend(r.sources);
    }
    report.finish();
    report.add_sources(sources);
    report
}

impl Report {
    /// `Ok` if the report has no error; otherwise an input error (exit 2) naming the first
    /// errors as `file:line:column: [code] message`, with a hint to run `plan-lint`. For
    /// commands that refuse a plan that does not lint (`run`).
    pub fn refuse_on_errors(&self, subject: &Path, base: &Path) -> Result<()> {
        let errors: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.severity() == Severity::Error)
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        let mut msg = format!(
            "does not lint: {} error{}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        );
        for f in errors.iter().take(5) {
            let _ = write!(
                msg,
                "\n  {}:{}:{}: [{}] {}",
                format::shown(&f.file, base),
                f.line,
                f.column,
                f.code.id(),
                f.message
            );
        }
        if errors.len() > 5 {
            let _ = write!(msg, "\n  … and {} more", errors.len() - 5);
        }
        Err(Error::input(subject, msg).with_hint(format!(
            "`nexusmon plan-lint {}` shows every finding with its source line",
            format::shown(subject, base)
        )))
    }
}

/// Lint the registries `paths` name (see [`discover_registries`]).
pub fn lint_registries(paths: &[PathBuf]) -> Result<Report> {
    let dirs = discover_registries(paths)?;
    if dirs.is_empty() {
        return Err(Error::new(
            ErrorKind::NothingSelected,
            format!(
                "no registry files (probes.json, profiles.json) under {}",
                paths
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_hint("pass registry/<id>/ or a directory containing registries"));
    }
    let regs = dirs
        .par_iter()
        .map(|d| registry::lint_registry(d))
        .collect::<Result<Vec<_>>>()?;
    let mut report = Report::default();
    let mut sources = Vec::new();
    for r in regs {
        report.files_checked += r.files_checked;
        report.findings.extend(r.findings);
        sources.extend(r.sources);
    }
    report.finish();
    report.add_sources(sources);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::util::testrng::Rng;

    /// A seeded plan (JSON) over the registry of [`compact_and_full_lint_agree`]: profiles
    /// listed, unknown or twice; matrix rows with valid and invalid ids, `allow`/`deny`,
    /// other strings, numbers, objects, keys and rows written twice; controls, timeouts,
    /// out-of-range values the schema refuses but serde reads, unknown keys.
    fn plan_text(r: &mut Rng) -> String {
        const PROFILES: [&str; 5] = ["ro", "rw", "net", "nope", "Bad"];
        const PROBES: [&str; 7] = ["p0", "p1", "p2", "p3", "ghost", "Bad", "p1~x"];
        const VALUES: [&str; 8] = [
            "\"allow\"",
            "\"deny\"",
            "\"allow\"",
            "\"deny\"",
            "\"maybe\"",
            "5",
            "{\"allow\": null}",
            "null",
        ];
        let mut t = String::from("{\n  \"schema_version\": 1,\n  \"plan_id\": \"gen\",\n");
        t.push_str("  \"kind\": \"experiment\",\n  \"registry_id\": \"reg\",\n");
        let listed: Vec<&str> = (0..r.below(4u32)).map(|_| *r.pick(&PROFILES)).collect();
        let _ = writeln!(
            t,
            "  \"profiles\": {},",
            serde_json::to_string(&listed).unwrap()
        );
        if r.chance(35) {
            // A matrix that loads: rows of known profiles, each probe once (sorted or
            // not), `allow` or `deny`, now and then an entry the schema faults.
            t.push_str("  \"scenarios\": {");
            for i in 0..=r.below(3u32) {
                t.push_str(if i > 0 { ",\n    " } else { "\n    " });
                let _ = write!(t, "\"{}\": {{", PROFILES[r.below(3usize)]);
                let mut probes = vec!["p0", "p1", "p2", "p3"];
                probes.retain(|_| r.chance(70));
                if r.chance(50) {
                    probes.reverse();
                }
                for (j, p) in probes.iter().enumerate() {
                    t.push_str(if j > 0 { ",\n      " } else { "\n      " });
                    let v = if r.chance(95) {
                        VALUES[r.below(4usize)]
                    } else {
                        *r.pick(&VALUES)
                    };
                    let _ = write!(t, "\"{p}\": {v}");
                }
                t.push('}');
            }
            t.push_str("\n  },\n");
        } else if r.chance(85) {
            t.push_str("  \"scenarios\": {");
            for i in 0..r.below(4u32) {
                t.push_str(if i > 0 { ",\n    " } else { "\n    " });
                let _ = write!(t, "\"{}\": ", r.pick(&PROFILES));
                if r.chance(5) {
                    t.push_str("\"row\"");
                    continue;
                }
                t.push('{');
                for j in 0..r.below(7u32) {
                    t.push_str(if j > 0 { ",\n      " } else { "\n      " });
                    let v = if r.chance(80) {
                        VALUES[r.below(4usize)]
                    } else {
                        *r.pick(&VALUES)
                    };
                    let _ = write!(t, "\"{}\": {v}", r.pick(&PROBES));
                }
                t.push('}');
            }
            t.push_str("\n  },\n");
        }
        if r.chance(30) {
            let c: Vec<&str> = (0..r.below(3u32)).map(|_| *r.pick(&PROBES)).collect();
            let _ = writeln!(t, "  \"controls\": {},", serde_json::to_string(&c).unwrap());
        }
        match r.below(6u32) {
            0 => t.push_str("  \"execution\": {\"timeout_ms\": 500},\n"),
            1 => t.push_str("  \"execution\": {\"jobs\": 5000},\n"),
            2 => t.push_str("  \"execution\": {\"retries\": 50},\n"),
            3 if r.chance(30) => t.push_str("  \"unknown\": 1,\n"),
            _ => {}
        }
        if r.chance(20) {
            t.push_str(
                "  \"lanes\": {\"baseline\": false, \"scenario\": false, \"oracle\": false},\n",
            );
        }
        t.push_str("  \"variables\": {}\n}\n");
        t
    }

    #[test]
    fn compact_and_full_lint_agree() {
        // Lint of a loaded plan (`run`: the loaded document and typed plan, the matrix
        // left out of the schema's value) against lint of the file (`plan-lint`): the same
        // findings, places and sources, for every generated plan that loads.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let reg = root.join("registry/reg");
        std::fs::create_dir_all(&reg).unwrap();
        std::fs::create_dir_all(root.join("plans/gen")).unwrap();
        let profile = r#"{"landlock": {"abi": 1, "fs": {"handle": "all", "allow": [{"path": "/etc", "access": ["read"]}]}}}"#;
        std::fs::write(
            reg.join("profiles.json"),
            format!(
                r#"{{"schema_version": 1, "registry_id": "reg", "profiles": {{"ro": {profile}, "rw": {profile}, "net": {profile}}}}}"#
            ),
        )
        .unwrap();
        // The registry varies too: probes no plan names whose targets the registry lint
        // flags, and a second profiles file.
        let extra_probes = [
            "",
            r#", "p4": {"operation": "file-read", "target": "/proc/self/status"}"#,
            r#", "p5": {"operation": "file-read", "target": "/home/bob/x"}"#,
            r#", "p4": {"operation": "file-read", "target": "/proc/self/status"}, "p5": {"operation": "file-read", "target": "/home/bob/x"}"#,
            // Keys written twice (load keeps the later one; lint reports both), in the
            // documents `run`'s lint reuses from load.
            r#", "p0": {"operation": "file-read", "target": "/etc/hostname"}"#,
            r#", "p6": {"operation": "file-read", "target": "/etc/hosts", "target": "/home/bob/y"}"#,
            // A probe plans name whose target uses a variable no plan defines: found in
            // the plan's context, at its first reference (a matrix entry, often).
            r#", "p3": {"operation": "file-read", "target": "${UNSET}/x"}"#,
            r#", "p2": {"operation": "file-read", "target": "${UNSET}/y"}"#,
        ];
        let (mut loaded_n, mut with_findings, mut compact_n, mut reg_findings) = (0, 0, 0, 0);
        let (mut skeleton_n, mut whole_n, mut yaml_n) = (0, 0, 0);
        for seed in 0..800u64 {
            let mut r = Rng(seed);
            // Every fourth plan is read as YAML (JSON is YAML's flow style): the other
            // parser, its positions and its rows.
            let (name, other) = if seed % 4 == 3 {
                ("plan.yaml", "plan.json")
            } else {
                ("plan.json", "plan.yaml")
            };
            let path = root.join("plans/gen").join(name);
            let _ = std::fs::remove_file(root.join("plans/gen").join(other));
            let extra = extra_probes[r.below(extra_probes.len())];
            std::fs::write(
                reg.join("probes.json"),
                format!(
                    r#"{{"schema_version": 1, "registry_id": "reg", "probes": {{
                "p0": {{"operation": "file-read", "target": "/etc/hostname"}},
                "p1": {{"operation": "file-read", "target": "/etc/hostname", "timeout_ms": 1000}},
                "p2": {{"operation": "file-read", "target": "/etc/passwd"}},
                "p3": {{"operation": "file-read", "target": "/etc/hosts"}}{extra}}}}}"#
                ),
            )
            .unwrap();
            let second = reg.join("profiles.yaml");
            if r.chance(20) {
                std::fs::write(&second, "schema_version: 1\n").unwrap();
            } else {
                let _ = std::fs::remove_file(&second);
            }
            let text = plan_text(&mut r);
            std::fs::write(&path, &text).unwrap();
            let full = check_plan(&path, root).unwrap();
            // `run`'s load (the tree dropped once the typed plan is read) fails where
            // `load_plan` fails, with the same error, and loads the same plan and digest.
            let lean = crate::load::load_plan_for_run(&path);
            let Ok(loaded) = crate::load::load_plan(&path) else {
                let (Err(a), Err(b)) = (crate::load::load_plan(&path), lean) else {
                    panic!("seed {seed}: only load_plan fails:\n{text}");
                };
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "seed {seed}");
                continue;
            };
            let lean = lean.unwrap_or_else(|e| panic!("seed {seed}: {e:?}\n{text}"));
            assert!(
                lean.doc.root.kind == crate::source::NodeKind::Null && !lean.doc.text.is_empty()
            );
            assert_eq!(
                (&lean.plan, &lean.digest, &lean.probes, &lean.profiles),
                (
                    &loaded.plan,
                    &loaded.digest,
                    &loaded.probes,
                    &loaded.profiles
                ),
                "seed {seed}"
            );
            loaded_n += 1;
            // The plan's digest and the registry digests are those of the canonical bytes
            // `serde_json_canonicalizer` writes (the writer every earlier version used).
            let reference = serde_json_canonicalizer::to_vec(&crate::load::DigestInput {
                digest_version: crate::load::DIGEST_VERSION,
                plan: &loaded.plan,
                probes: &loaded.probes,
                profiles: &loaded.profiles,
                registry_id: &loaded.plan.registry_id,
                workers: BTreeMap::new(),
            })
            .unwrap();
            assert_eq!(
                loaded.digest,
                crate::util::digest::Digest::both_of(&reference),
                "seed {seed}"
            );
            let digests =
                crate::model::results::RegistryDigests::of(&loaded.probes, &loaded.profiles);
            for (id, p) in &loaded.probes {
                let want = serde_json_canonicalizer::to_vec(p).unwrap();
                assert_eq!(
                    digests.probes[id.as_str()],
                    crate::util::digest::Digest::blake3_of(&want)
                );
            }
            for (id, p) in &loaded.profiles {
                let want = serde_json_canonicalizer::to_vec(p).unwrap();
                assert_eq!(
                    digests.profiles[id.as_str()],
                    crate::util::digest::Digest::blake3_of(&want)
                );
            }
            let compact = check_loaded(&loaded, root).unwrap();
            let schema = input::of_document(&path, std::sync::Arc::clone(&loaded.doc), "plan");
            compact_n += usize::from(!schema.unwrap().schema_errors);
            with_findings += usize::from(!full.findings.is_empty());
            reg_findings += usize::from(full.findings.iter().any(|f| f.file != path));
            assert_eq!(compact.findings, full.findings, "seed {seed}:\n{text}");
            assert_eq!(compact.omitted, full.omitted, "seed {seed}");
            assert_eq!(compact.files_checked, full.files_checked, "seed {seed}");
            assert_eq!(compact.sources, full.sources, "seed {seed}");
            // `run`'s path: loaded without the tree, the registry linted first, the plan
            // parsed again. Quoting, the report of the file; not quoting, the report of
            // the loaded plan without its text.
            for quote in [true, false] {
                let mut lean = crate::load::load_plan_for_run(&path).unwrap();
                assert!(lean.tree_dropped, "seed {seed}");
                // The registry's documents, as load parsed them, are what lint checks.
                assert!(lean.registry.documents.is_some(), "seed {seed}");
                let mut calls = 0;
                let got =
                    check_loaded_reparsing(&mut lean, root, quote, &mut || calls += 1).unwrap();
                assert_eq!(calls, 1, "seed {seed}");
                assert!(lean.registry.documents.is_none(), "seed {seed}");
                let bare_report;
                let want = if quote {
                    &full
                } else {
                    let mut bare = crate::load::load_plan(&path).unwrap();
                    bare.release_text();
                    bare_report = check_loaded(&bare, root).unwrap();
                    &bare_report
                };
                assert_eq!(got.findings, want.findings, "seed {seed} {quote}:\n{text}");
                assert_eq!(got.omitted, want.omitted, "seed {seed} {quote}");
                assert_eq!(got.files_checked, want.files_checked, "seed {seed}");
                assert_eq!(got.sources, want.sources, "seed {seed} {quote}");
                // A tree is back: the whole one as load_plan parsed it, if the lint asked
                // the one without the matrix's plain entries for what it left out; that
                // one otherwise, with the same duplicates.
                assert!(!lean.tree_dropped);
                let mut whole = lean.doc.as_ref().clone();
                whole.text.clone_from(&loaded.doc.text);
                let skeleton = whole.skeleton_plan().unwrap();
                if skeleton.root == loaded.doc.root {
                    // Nothing to leave out.
                    assert_eq!(lean.doc.root, loaded.doc.root, "seed {seed}");
                } else if lean.doc.root == loaded.doc.root {
                    whole_n += 1;
                } else {
                    assert_eq!(lean.doc.root, skeleton.root, "seed {seed}");
                    skeleton_n += 1;
                }
                assert_eq!(lean.doc.duplicates, loaded.doc.duplicates, "seed {seed}");
                assert_eq!(lean.doc.text.is_empty(), !quote, "seed {seed}");
                yaml_n += usize::from(name == "plan.yaml");
            }
        }
        // Both ways are taken: linted without the plain entries, and again from the whole
        // tree; YAML plans among them.
        assert!(
            skeleton_n > 100 && whole_n > 10 && yaml_n > 20,
            "{skeleton_n} linted without plain entries, {whole_n} from the whole tree, {yaml_n} YAML; {loaded_n} loaded, {with_findings} with findings, {compact_n} without fallback"
        );
        // Not vacuous: plans that load, with findings, most linted without the fallback.
        assert!(
            loaded_n > 50
                && with_findings > 20
                && compact_n > loaded_n / 2
                && reg_findings > loaded_n / 4,
            "{loaded_n} loaded, {with_findings} with findings, {compact_n} without fallback, {reg_findings} with registry findings"
        );
    }
}
