//! Lint of one registry directory (`registry/<id>/probes.*` and `profiles.*`): the files,
//! every probe (operation, target, driver, argv, fixtures, variables) and every profile
//! (ABI, handled rights, allow rules, ports, limits, environment).
//!
//! Checks here know only the builtin variables; what depends on a plan (its variables) is
//! checked by [`super::plan`] for the entries the plan uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::codes::Code;
use super::finding::{At, Finding, Sink, pointer};
use super::input::{self, Input};
use super::scratch::Where;
use super::vars::{self, BUILTINS, Lead, Scope};
use crate::model::SCHEMA_VERSION;
use crate::model::registry::{Access, Probe, Profile};
use crate::model::worker::Worker;
use crate::source::deserialize_value;

mod argv;
mod extends;
mod probe;
mod profile;

use crate::{Error, Result};
pub use argv::host_paths as argv_host_paths;
pub use probe::{fixture_vars, probe_strings};
pub use profile::profile_strings;

/// What lint learned about one registry.
#[derive(Debug, Default)]
pub struct RegistryLint {
    /// `registry/<id>/` (absolute).
    pub dir: PathBuf,
    /// The probes file, if there is one.
    pub probes_path: Option<PathBuf>,
    /// The profiles file, if there is one.
    pub profiles_path: Option<PathBuf>,
    /// Every probe id the file defines (valid or not).
    pub probe_ids: BTreeSet<String>,
    /// Every profile id the file defines.
    pub profile_ids: BTreeSet<String>,
    /// The probes file was read and holds a `probes` object (so `probe_ids` is complete).
    pub probes_read: bool,
    /// The profiles file was read and holds a `profiles` object.
    pub profiles_read: bool,
    /// The probes that passed the schema, by id.
    pub probes: BTreeMap<String, Probe>,
    /// The profiles that passed the schema, by id.
    pub profiles: BTreeMap<String, Profile>,
    /// The workers file, if there is one.
    pub workers_path: Option<PathBuf>,
    /// Every worker name the workers file declares (valid or not).
    pub worker_ids: BTreeSet<String>,
    /// The workers that passed the schema, by name.
    pub workers: BTreeMap<String, Worker>,
    /// Findings about the registry's files.
    pub findings: Vec<Finding>,
    /// Source text of the files read (for excerpts).
    pub sources: Vec<(PathBuf, String)>,
    /// Files read.
    pub files_checked: usize,
}

/// The data files named `stem` (`.json`, `.yaml`, `.yml`) in `dir`, in that order.
pub fn data_files(dir: &Path, stem: &str) -> Vec<PathBuf> {
    ["json", "yaml", "yml"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .filter(|p| p.is_file())
        .collect()
}

/// Lint the registry in `dir` (absolute).
pub fn lint_registry(dir: &Path) -> Result<RegistryLint> {
    lint_registry_with(dir, None)
}

/// [`lint_registry`], with the probes and profiles files a command has loaded
/// ([`crate::load::Registry::documents`]): a file that is the one a document was parsed
/// from (the same path) is checked from that document instead of being read and parsed
/// again ([`input::of_loaded`]: the same text, so the same tree and findings).
pub fn lint_registry_with(
    dir: &Path,
    loaded: Option<&crate::load::RegistryDocuments>,
) -> Result<RegistryLint> {
    let mut reg = RegistryLint {
        dir: dir.to_path_buf(),
        ..RegistryLint::default()
    };
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let probes_files = data_files(dir, "probes");
    let profiles_files = data_files(dir, "profiles");
    for extra in probes_files
        .iter()
        .skip(1)
        .chain(profiles_files.iter().skip(1))
    {
        reg.findings.push(
            Finding::file_level(
                Code::AmbiguousFile,
                extra,
                format!(
                    "registry `{dir_name}` has more than one {} file",
                    extra
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
            )
            .with_hint("keep one of the .json/.yaml/.yml files; the others would be ignored"),
        );
    }
    let mut ids: Vec<(PathBuf, String)> = Vec::new();
    // Each file's value is moved out of its input for the checks (nothing reads
    // `input.value` after this; a copy would hold a large registry twice).
    if let Some(p) = probes_files.first() {
        let mut input = input::read_or_reuse(p, "probes", loaded.map(|d| &d.probes))?;
        reg.files_checked += 1;
        reg.probes_read = input
            .value
            .as_ref()
            .is_some_and(|v| v.get("probes").is_some_and(Value::is_object));
        if let Some(v) = input.value.take() {
            header(&mut input, &v, &dir_name, &mut ids);
            lint_probes(&mut input, &v, &mut reg);
        }
        finish(&mut reg, input);
        reg.probes_path = Some(p.clone());
    }
    if let Some(p) = profiles_files.first() {
        let mut input = input::read_or_reuse(p, "profiles", loaded.map(|d| &d.profiles))?;
        reg.files_checked += 1;
        reg.profiles_read = input
            .value
            .as_ref()
            .is_some_and(|v| v.get("profiles").is_some_and(Value::is_object));
        if let Some(v) = input.value.take() {
            header(&mut input, &v, &dir_name, &mut ids);
            lint_profiles(&mut input, &v, &mut reg);
        }
        finish(&mut reg, input);
        reg.profiles_path = Some(p.clone());
    }
    let workers_files = data_files(dir, "workers");
    for extra in workers_files.iter().skip(1) {
        reg.findings.push(
            Finding::file_level(
                Code::AmbiguousFile,
                extra,
                format!("registry `{dir_name}` has more than one workers file"),
            )
            .with_hint("keep one of the .json/.yaml/.yml files; the others would be ignored"),
        );
    }
    if let Some(p) = workers_files.first() {
        let mut input = input::read(p, "workers")?;
        reg.files_checked += 1;
        if let Some(v) = input.value.take() {
            let mut ignored = Vec::new();
            header(&mut input, &v, &dir_name, &mut ignored);
            lint_workers(&mut input, &v, &mut reg);
        }
        finish(&mut reg, input);
        reg.workers_path = Some(p.clone());
    }
    match (&reg.probes_path, &reg.profiles_path) {
        (Some(have), None) | (None, Some(have)) => {
            let missing = if reg.probes_path.is_none() {
                "probes"
            } else {
                "profiles"
            };
            reg.findings.push(
                Finding::file_level(
                    Code::RegistryIncomplete,
                    have,
                    format!("registry `{dir_name}` has no {missing}.json (or {missing}.yaml)"),
                )
                .with_hint(format!("create `{missing}.json` in the same directory")),
            );
        }
        _ => {}
    }
    if let [(_, a), (path, b)] = ids.as_slice()
        && a != b
    {
        let doc_text = reg
            .sources
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.clone());
        if let Some(text) = doc_text
            && let Ok(doc) = crate::source::Document::parse(path, text)
        {
            let mut sink = Sink::new(&doc, path);
            sink.push_hint(
                Code::RegistryIncomplete,
                "/registry_id",
                At::Value,
                format!("`registry_id` is `{b}` here but `{a}` in the probes file"),
                Some("both files of a registry name the same registry".into()),
            );
            reg.findings.append(&mut sink.findings);
        }
    }
    Ok(reg)
}

fn finish(reg: &mut RegistryLint, input: Input) {
    if let Some(t) = input.text {
        reg.sources.push((input.path.clone(), t));
    }
    reg.findings.extend(input.findings);
}

/// `schema_version` and `registry_id` of either file.
fn header(input: &mut Input, v: &Value, dir_name: &str, ids: &mut Vec<(PathBuf, String)>) {
    let Some(mut sink) = input.sink() else {
        return;
    };
    if let Some(ver) = v.get("schema_version").and_then(Value::as_u64)
        && ver != u64::from(SCHEMA_VERSION)
    {
        sink.push_hint(
            Code::UnsupportedVersion,
            "/schema_version",
            At::Value,
            format!(
                "schema_version {ver} is not supported by this build (it reads {SCHEMA_VERSION})"
            ),
            Some(format!("set \"schema_version\": {SCHEMA_VERSION}")),
        );
    }
    if let Some(id) = v.get("registry_id").and_then(Value::as_str) {
        if !dir_name.is_empty() && id != dir_name {
            sink.push_hint(
                Code::RegistryIdMismatch,
                "/registry_id",
                At::Value,
                format!("`registry_id` is `{id}` but the directory is `{dir_name}`"),
                Some(format!(
                    "plans find registries by directory name: set \"registry_id\": \"{dir_name}\" or rename the directory"
                )),
            );
        }
        ids.push((input.path.clone(), id.to_string()));
    }
    input.findings.append(&mut sink.findings);
}

fn lint_probes(input: &mut Input, v: &Value, reg: &mut RegistryLint) {
    let Some(map) = v.get("probes").and_then(Value::as_object) else {
        return;
    };
    let mut failures = Vec::new();
    {
        let Some(mut sink) = input.sink() else {
            return;
        };
        for (id, entry) in map {
            reg.probe_ids.insert(id.clone());
            let base = pointer(["probes", id.as_str()]);
            if input.validated.invalid_under(&base) {
                continue;
            }
            match deserialize_value::<Probe>(entry.clone()) {
                Ok(probe) => {
                    probe::check_probe(&mut sink, &base, &probe);
                    reg.probes.insert(id.clone(), probe);
                }
                Err(e) => failures.push((format!("{base}{}", e.pointer), e.message)),
            }
        }
        input.findings.append(&mut sink.findings);
    }
    for (p, m) in failures {
        input.typed_failure(&p, &m);
    }
}

fn lint_profiles(input: &mut Input, v: &Value, reg: &mut RegistryLint) {
    let Some(map) = v.get("profiles").and_then(Value::as_object) else {
        return;
    };
    let mut failures = Vec::new();
    // Every valid profile, for what one profile's checks need to know of its bases.
    let parsed: BTreeMap<crate::model::Id, Profile> = map
        .iter()
        .filter(|(id, _)| {
            !input
                .validated
                .invalid_under(&pointer(["profiles", id.as_str()]))
        })
        .filter_map(|(id, e)| {
            let id = crate::model::Id::new(id.clone()).ok()?;
            deserialize_value::<Profile>(e.clone())
                .ok()
                .map(|p| (id, p))
        })
        .collect();
    {
        let Some(mut sink) = input.sink() else {
            return;
        };
        for (id, entry) in map {
            reg.profile_ids.insert(id.clone());
            let base = pointer(["profiles", id.as_str()]);
            if input.validated.invalid_under(&base) {
                continue;
            }
            match deserialize_value::<Profile>(entry.clone()) {
                Ok(profile) => {
                    let start = sink.findings.len();
                    profile::check_profile(&mut sink, &base, &profile);
                    extends::inherited_privileges(&mut sink, &base, id, &profile, &parsed);
                    profile::allow_lint(&mut sink, start, &base, &profile);
                    reg.profiles.insert(id.clone(), profile);
                }
                Err(e) => failures.push((format!("{base}{}", e.pointer), e.message)),
            }
        }
        extends::lint_extends(&mut sink, reg, &parsed);
        input.findings.append(&mut sink.findings);
    }
    for (p, m) in failures {
        input.typed_failure(&p, &m);
    }
}

/// Longest worker timeout lint accepts without a warning (ten minutes).
const LONG_WORKER_TIMEOUT_MS: u64 = 600_000;

fn lint_workers(input: &mut Input, v: &Value, reg: &mut RegistryLint) {
    let Some(map) = v.get("workers").and_then(Value::as_object) else {
        return;
    };
    let root = crate::load::worker::project_root_of(&reg.dir);
    let mut failures = Vec::new();
    {
        let Some(mut sink) = input.sink() else {
            return;
        };
        for (id, entry) in map {
            reg.worker_ids.insert(id.clone());
            let base = pointer(["workers", id.as_str()]);
            if input.validated.invalid_under(&base) {
                continue;
            }
            match deserialize_value::<Worker>(entry.clone()) {
                Ok(w) => {
                    check_worker(&mut sink, &base, id, &w, &root, reg);
                    reg.workers.insert(id.clone(), w);
                }
                Err(e) => failures.push((format!("{base}{}", e.pointer), e.message)),
            }
        }
        input.findings.append(&mut sink.findings);
    }
    for (p, m) in failures {
        input.typed_failure(&p, &m);
    }
}

/// One worker: its executable, its profile (defined, and writing only beneath
/// `${OUTPUT}`), its timeout.
fn check_worker(
    sink: &mut Sink<'_>,
    base: &str,
    name: &str,
    w: &Worker,
    root: &Path,
    reg: &RegistryLint,
) {
    match w.command.first() {
        None => sink.push_hint(
            Code::BadWorkerCommand,
            &format!("{base}/command"),
            At::Value,
            format!("worker `{name}` has an empty `command`"),
            Some("set \"command\": [\"workers/<file>\", …]".into()),
        ),
        Some(program) => {
            if let Err(why) = crate::load::worker::executable_path(root, program) {
                sink.push_hint(
                    Code::BadWorkerCommand,
                    &format!("{base}/command/0"),
                    At::Value,
                    format!("worker `{name}`: command[0] {why}"),
                    Some("command[0] is the worker's executable file, relative to the project root (e.g. workers/transform.py, with a `#!` line and the executable bit)".into()),
                );
            }
        }
    }
    let ptr = format!("{base}/profile");
    if reg.profiles_path.is_some() && !reg.profile_ids.contains(w.profile.as_str()) {
        let hint = super::finding::did_you_mean(
            w.profile.as_str(),
            reg.profile_ids.iter().map(String::as_str),
        )
        .or_else(|| Some("define it in the registry's profiles.json".into()));
        sink.push_hint(
            Code::UnknownWorkerProfile,
            &ptr,
            At::Value,
            format!(
                "worker `{name}` runs under profile `{}`, which the registry does not define",
                w.profile
            ),
            hint,
        );
    } else if let Some(profile) = reg.profiles.get(w.profile.as_str()) {
        let rules = profile
            .landlock
            .as_ref()
            .and_then(|l| l.fs.as_ref())
            .map(|fs| fs.allow.as_slice())
            .unwrap_or_default();
        let handled = profile.landlock.as_ref().is_some_and(|l| l.fs.is_some());
        let writes = |a: &Access| {
            matches!(
                a,
                Access::Write
                    | Access::Create
                    | Access::CreateDev
                    | Access::Remove
                    | Access::Rename
            )
        };
        let outside: Vec<&str> = rules
            .iter()
            .filter(|r| r.access.iter().any(writes))
            .filter(|r| {
                !(r.path == "${OUTPUT}"
                    || r.path.starts_with("${OUTPUT}/")
                    || r.path == "/dev/null")
            })
            .map(|r| r.path.as_str())
            .collect();
        if !handled {
            sink.push_hint(
                Code::WorkerWritesOutside,
                &ptr,
                At::Value,
                format!(
                    "worker `{name}` runs under profile `{}`, which handles no filesystem access: the kernel lets it write anywhere",
                    w.profile
                ),
                Some("give the profile `landlock.fs` rules that grant writes on `${OUTPUT}` only".into()),
            );
        } else if !outside.is_empty() {
            sink.push_hint(
                Code::WorkerWritesOutside,
                &ptr,
                At::Value,
                format!(
                    "worker `{name}` runs under profile `{}`, which grants writes outside its output directory: {}",
                    w.profile,
                    outside.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
                ),
                Some("grant `write`, `create` and `remove` on `${OUTPUT}` only".into()),
            );
        }
    }
    if w.timeout_ms > LONG_WORKER_TIMEOUT_MS {
        sink.push_hint(
            Code::WorkerTimeout,
            &format!("{base}/timeout_ms"),
            At::Value,
            format!(
                "worker `{name}` may run for {} minutes before it is killed",
                w.timeout_ms / 60_000
            ),
            Some("keep `timeout_ms` as short as the work allows".into()),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------------------

/// How a probe uses a path string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathUse {
    /// It is read (or run): anywhere on the host.
    Read,
    /// It is modified: it must stay inside `${SCRATCH}`; `follow_final` if the operation
    /// follows a final symlink.
    Write {
        /// The operation follows a final symlink (open, truncate) rather than acting on
        /// the final name (create, remove, rename).
        follow_final: bool,
    },
}

impl PathUse {
    /// How `op` uses its target.
    pub(super) fn of(op: crate::model::registry::Operation) -> Self {
        if op.writes() {
            PathUse::Write {
                follow_final: op.follows_final(),
            }
        } else {
            PathUse::Read
        }
    }
}

/// Absolute-path, scratch and machine-path checks of a path string. A written path must
/// resolve inside `${SCRATCH}` through the probe's fixtures ([`super::scratch`]): `..` and
/// symlinks are fine as long as they stay inside.
fn path_checks(sink: &mut Sink<'_>, ptr: &str, s: &str, scope: &Scope, usage: PathUse) {
    let writes = matches!(usage, PathUse::Write { .. });
    match scope.lead(s) {
        // None: a plan variable leads the path; plan-lint checks it with the value.
        Some(Lead::Relative) => {
            sink.push_hint(
                Code::RelativePath,
                ptr,
                At::Value,
                format!("`{s}` is not an absolute path"),
                Some("start it with `/` or `${SCRATCH}`".into()),
            );
            return;
        }
        Some(Lead::Root) if writes => {
            sink.push_hint(
                Code::WriteOutsideScratch,
                ptr,
                At::Value,
                format!("this probe modifies `{s}`, which is outside `${{SCRATCH}}`"),
                Some(
                    "the baseline lane runs it without any policy and would really modify the host: use a path under `${SCRATCH}` and create it with a fixture"
                        .into(),
                ),
            );
            return;
        }
        Some(Lead::Scratch { rest }) => {
            if let PathUse::Write { follow_final } = usage
                && let Where::Outside(why) = scope
                    .scratch
                    .resolve(&rest, follow_final, &|p| scope.place(p))
            {
                sink.push_hint(
                    Code::WriteOutsideScratch,
                    ptr,
                    At::Value,
                    format!("this probe modifies `{s}`, which resolves outside `${{SCRATCH}}`: {why}"),
                    Some(
                        "the baseline lane runs it without any policy and would really modify the host: keep the path (after `..` and the fixtures' symlinks) inside `${SCRATCH}`"
                            .into(),
                    ),
                );
                return;
            }
        }
        None | Some(_) => {}
    }
    if let Some(why) = vars::per_process(s, false) {
        sink.push_hint(
            Code::PerProcessPath,
            ptr,
            At::Value,
            format!("`{s}` {why}"),
            Some("name the file itself (`/proc/self/<file>`, `/proc/self/cwd/...` and `/proc/self/root/...` are resolved as the child sees them)".into()),
        );
        return;
    }
    machine_path_check(sink, ptr, s);
}

fn fixture_path(sink: &mut Sink<'_>, ptr: &str, s: &str, scope: &Scope) {
    match scope.lead(s) {
        Some(Lead::Scratch { rest }) if !vars::has_dot_dot(&rest) && !rest.is_empty() => {}
        None => {}
        _ => sink.push_hint(
            Code::FixtureOutsideScratch,
            ptr,
            At::Value,
            format!("fixture path `{s}` is not inside `${{SCRATCH}}`"),
            Some("fixtures are created in the run's scratch directory: write `${SCRATCH}/...` (without `..`)".into()),
        ),
    }
}

fn machine_path_check(sink: &mut Sink<'_>, ptr: &str, s: &str) {
    if let Some(var) = vars::machine_path(s) {
        sink.push_hint(
            Code::MachinePath,
            ptr,
            At::Value,
            format!("`{s}` is a path on one machine"),
            Some(format!("use `{var}` so the plan means the same everywhere")),
        );
    }
}

/// Syntax of `${...}` and, in registry context, whether the names exist.
fn check_string_vars(sink: &mut Sink<'_>, ptr: &str, s: &str, scope: &Scope) {
    let (names, issues) = vars::scan(s);
    for issue in issues {
        let (code, msg, hint) = issue.finding(s);
        sink.push_hint(code, ptr, At::Value, msg, Some(hint));
    }
    for n in names {
        if scope.vars.contains_key(&n) {
            continue;
        }
        // A near miss of a name in scope (`SCRACH`) is a typo; anything else may be a plan
        // variable (`SCRATCH_DIR`), which plan-lint checks with the plan.
        let typo = scope
            .vars
            .keys()
            .filter(|k| !vars::WORKER_ONLY.contains(&k.as_str()))
            .filter(|k| strsim::levenshtein(k, &n) <= 2 && n.len() >= 4)
            .min_by_key(|k| strsim::levenshtein(k, &n));
        if let Some(near) = typo
            && !scope.plan_known
        {
            let hint = format!("did you mean `{near}`?");
            sink.push_hint(
                Code::UndefinedVariable,
                ptr,
                At::Value,
                format!("`${{{n}}}` is not defined"),
                Some(hint),
            );
        } else if !scope.plan_known {
            sink.push_hint(
                Code::PlanVariable,
                ptr,
                At::Value,
                format!("`${{{n}}}` is not a builtin variable: every plan using this entry must define it"),
                Some(format!(
                    "builtins are {}; plans define others in `variables`",
                    BUILTINS.iter().map(|b| format!("`${{{b}}}`")).collect::<Vec<_>>().join(", ")
                )),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------------------

/// Error for a path argument that is not a registry file or directory.
pub fn not_a_registry(path: &Path) -> Error {
    Error::input(path, "is not a registry directory or a probes/profiles file")
        .with_hint("pass `registry/<id>/`, a directory containing registries, or a probes.json / profiles.json file")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Document;

    fn lint_probe(json: &str) -> Vec<(Code, String)> {
        let text = format!(r#"{{"probes": {{"p": {json}}}}}"#);
        let doc = Document::parse("probes.json", text).unwrap();
        let probe: Probe = serde_json::from_str(json).unwrap();
        let mut sink = Sink::new(&doc, Path::new("/x/probes.json"));
        probe::check_probe(&mut sink, "/probes/p", &probe);
        sink.findings
            .into_iter()
            .map(|f| (f.code, f.message))
            .collect()
    }

    fn lint_profile(json: &str) -> Vec<(Code, String, String)> {
        let text = format!(r#"{{"profiles": {{"p": {json}}}}}"#);
        let doc = Document::parse("profiles.json", text).unwrap();
        let profile: Profile = serde_json::from_str(json).unwrap();
        let mut sink = Sink::new(&doc, Path::new("/x/profiles.json"));
        profile::check_profile(&mut sink, "/profiles/p", &profile);
        profile::allow_lint(&mut sink, 0, "/profiles/p", &profile);
        sink.findings
            .into_iter()
            .map(|f| (f.code, f.pointer, f.message))
            .collect()
    }

    fn fs_profile(rules: &str, extra: &str) -> String {
        format!(
            r#"{{"landlock": {{"abi": 7, "fs": {{"handle": "all", "allow": [{rules}]}}}}{extra}}}"#
        )
    }

    #[test]
    fn redundant_rules_are_warnings_compared_on_resolved_paths() {
        let codes = |rules: &str| -> Vec<(Code, String)> {
            lint_profile(&fs_profile(rules, ""))
                .into_iter()
                .map(|(c, p, _)| (c, p))
                .collect()
        };
        let warn = |i: usize| {
            (
                Code::ExceptionRule,
                format!("/profiles/p/landlock/fs/allow/{i}/path"),
            )
        };
        // A narrower rule under a broader one: valid, a warning (landrun-style policies).
        let usr = r#"{"path": "/usr", "access": ["read", "exec"]}"#;
        assert_eq!(
            codes(&format!(
                r#"{usr}, {{"path": "/usr/bin", "access": ["read"]}}"#
            )),
            vec![warn(1)]
        );
        assert_eq!(
            Code::ExceptionRule.severity(),
            crate::lint::Severity::Warning
        );
        // Compared where the kernel attaches the rule: /lib is /usr/lib here (merged /usr).
        if std::fs::read_link("/lib").is_ok_and(|t| t == Path::new("usr/lib")) {
            let f = lint_profile(&fs_profile(
                &format!(r#"{usr}, {{"path": "/lib", "access": ["read"]}}"#),
                "",
            ));
            assert_eq!(f.len(), 1, "{f:?}");
            assert!(f[0].2.contains("resolves to `/usr/lib`"), "{}", f[0].2);
        }
        // Not text: `a/s0/../e1` is a sibling of `a/s0`, not beneath it.
        assert!(codes(
            r#"{"path": "${SCRATCH}/a/s0", "access": ["read"]}, {"path": "${SCRATCH}/a/s0/../e1", "access": ["read"]}"#
        )
        .is_empty());
        // The same place twice, written differently: one kind of redundancy, one code.
        assert_eq!(
            codes(
                r#"{"path": "${SCRATCH}/w", "access": ["read"]}, {"path": "${SCRATCH}//x/../w/", "access": ["write"]}"#
            ),
            vec![warn(1)]
        );
        // A rule that adds a right is not redundant; a rule granting nothing is.
        assert!(
            codes(&format!(
                r#"{usr}, {{"path": "/usr/bin", "access": ["write"]}}"#
            ))
            .is_empty()
        );
        assert_eq!(
            codes(r#"{"path": "/usr", "access": []}"#),
            vec![(
                Code::ExceptionRule,
                "/profiles/p/landlock/fs/allow/0/access".into()
            )]
        );
        // A file does not cover what is "beneath" it.
        assert!(codes(r#"{"path": "/etc/hostname", "access": ["read"]}, {"path": "/etc/hostname/x", "access": ["read"]}"#).is_empty());
    }

    #[test]
    fn allow_lint_acknowledges_warnings_on_purpose_and_only_them() {
        let usr = r#"{"path": "/usr", "access": ["read", "exec"]}"#;
        // On the rule.
        let f = lint_profile(&fs_profile(
            &format!(
                r#"{usr}, {{"path": "/usr/bin", "access": ["read"], "allow_lint": ["NX303"]}}"#
            ),
            "",
        ));
        assert!(f.is_empty(), "{f:?}");
        // On the profile.
        let f = lint_profile(&fs_profile(
            &format!(r#"{usr}, {{"path": "/usr/bin", "access": ["read"]}}"#),
            r#", "allow_lint": ["NX303"]"#,
        ));
        assert!(f.is_empty(), "{f:?}");
        // Stale, unknown, and an error code.
        let f = lint_profile(&fs_profile(
            usr,
            r#", "allow_lint": ["NX302", "NX3O3", "NX301"]"#,
        ));
        let codes: Vec<Code> = f.iter().map(|x| x.0).collect();
        assert_eq!(
            codes,
            vec![
                Code::BadAllowLint,
                Code::BadAllowLint,
                Code::UnusedAllowLint
            ],
            "{f:?}"
        );
        // NX303 on a host path is not stale where it does not fire: it depends on the
        // host's symlinks (`/lib` is `/usr/lib` only on a merged-/usr system).
        let f = lint_profile(&fs_profile(
            r#"{"path": "/opt", "access": ["read"], "allow_lint": ["NX303"]}, {"path": "${SCRATCH}", "access": ["read"], "allow_lint": ["NX303"]}"#,
            "",
        ));
        assert_eq!(
            f.iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![Code::UnusedAllowLint],
            "{f:?}"
        );
        assert_eq!(f[0].1, "/profiles/p/landlock/fs/allow/1/allow_lint/0");
        // A rule's acknowledgement does not cover another rule.
        let f = lint_profile(&fs_profile(
            &format!(
                r#"{usr}, {{"path": "/usr/bin", "access": ["read"]}}, {{"path": "/usr/lib", "access": ["read"], "allow_lint": ["NX303"]}}"#
            ),
            "",
        ));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].1, "/profiles/p/landlock/fs/allow/1/path");
    }

    #[test]
    fn per_process_targets_and_rules_are_refused() {
        let f = lint_probe(r#"{"operation": "file-read", "target": "/proc/self/fd/0"}"#);
        assert_eq!(f[0].0, Code::PerProcessPath, "{f:?}");
        assert!(
            lint_probe(r#"{"operation": "file-read", "target": "/proc/self/status"}"#).is_empty()
        );
        let f = lint_profile(&fs_profile(
            r#"{"path": "/proc/self", "access": ["read"]}"#,
            "",
        ));
        assert_eq!(f[0].0, Code::PerProcessPath, "{f:?}");
    }

    #[test]
    fn a_near_miss_of_a_builtin_is_a_typo_a_longer_name_a_plan_variable() {
        let f = lint_probe(r#"{"operation": "file-read", "target": "${SCRACH}/a"}"#);
        assert_eq!(f[0].0, Code::UndefinedVariable, "{f:?}");
        let f = lint_probe(r#"{"operation": "file-read", "target": "${SCRATCH_DIR}/a"}"#);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, Code::PlanVariable);
    }

    #[test]
    fn host_port_targets() {
        let ok = |t: &str, op: &str| {
            lint_probe(&format!(r#"{{"operation": "{op}", "target": "{t}"}}"#)).is_empty()
        };
        assert!(ok("127.0.0.1:443", "tcp-connect"));
        assert!(ok("[::1]:443", "tcp-connect"));
        assert!(ok("localhost:1", "udp-send"));
        assert!(ok("127.0.0.1:0", "tcp-bind"));
        assert!(!ok("127.0.0.1:0", "tcp-connect"));
        assert!(!ok("127.0.0.1:65536", "tcp-connect"));
        assert!(!ok(":80", "tcp-connect"));
        assert!(!ok("::1:80", "tcp-connect"));
        assert!(!ok("127.0.0.1:http", "tcp-connect"));
    }

    #[test]
    fn writes_must_stay_in_scratch() {
        let codes =
            |json: &str| -> Vec<Code> { lint_probe(json).into_iter().map(|f| f.0).collect() };
        assert!(codes(r#"{"operation": "file-write", "target": "${SCRATCH}/a"}"#).is_empty());
        assert_eq!(
            codes(r#"{"operation": "file-write", "target": "/etc/passwd"}"#),
            vec![Code::WriteOutsideScratch]
        );
        assert_eq!(
            codes(r#"{"operation": "file-chmod", "target": "${HOME}/.bashrc"}"#),
            vec![Code::WriteOutsideScratch]
        );
        assert_eq!(
            codes(
                r#"{"operation": "file-rename", "target": "${SCRATCH}/a", "destination": "${SCRATCH}/../b"}"#
            ),
            vec![Code::WriteOutsideScratch]
        );
        // `..` is fine while the write stays inside: `a/s0/../e1` is a sibling of `a/s0`.
        assert!(
            codes(r#"{"operation": "file-create", "target": "${SCRATCH}/a/s0/../e1"}"#).is_empty()
        );
        // A fixture symlink out of the scratch directory takes the write onto the host.
        let out = r#"{"kind": "symlink", "path": "${SCRATCH}/out", "to": "/usr/bin"}"#;
        assert_eq!(
            codes(&format!(
                r#"{{"operation": "file-remove", "target": "${{SCRATCH}}/out/true", "fixtures": [{out}]}}"#
            )),
            vec![Code::WriteOutsideScratch]
        );
        assert_eq!(
            codes(&format!(
                r#"{{"operation": "file-write", "target": "${{SCRATCH}}/out", "fixtures": [{out}]}}"#
            )),
            vec![Code::WriteOutsideScratch]
        );
        // Removing the link itself stays inside.
        assert!(codes(&format!(
            r#"{{"operation": "file-remove", "target": "${{SCRATCH}}/out", "fixtures": [{out}]}}"#
        ))
        .is_empty());
        // Reading a host path is fine; a machine path only warns.
        assert!(codes(r#"{"operation": "file-read", "target": "/etc/hostname"}"#).is_empty());
        assert_eq!(
            codes(r#"{"operation": "file-read", "target": "/home/bob/x"}"#),
            vec![Code::MachinePath]
        );
    }
}
