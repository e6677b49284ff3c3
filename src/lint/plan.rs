//! Lint of one plan against its registry: structure (version, kind, lanes, variables),
//! every reference (registry, profiles, scenarios, controls, preflight, mission tasks and
//! their dependencies), the mission's task graph, and the registry entries the plan uses in
//! the plan's context (its variables, timeouts).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::codes::Code;
use super::finding::{At, Sink, did_you_mean, pointer};
use super::format::shown;
use super::input::{self, Input};
use super::registry::{RegistryLint, fixture_vars, probe_strings, profile_strings};
use super::scratch::{ScratchTree, Where};
use super::vars::{self, BUILTINS, Lead, Scope};
use crate::Result;
use crate::model::plan::Task;
use crate::model::{Id, Plan, PlanKind, SCHEMA_VERSION};
use crate::source::deserialize_value;

/// The runner's per-child wall timeout when neither the probe, the profile nor the plan sets
/// one (reported by lint as a note, recorded by the runner).
pub use crate::model::plan::DEFAULT_TIMEOUT_MS;

/// A plan after reading: its document, typed value and where its registry is.
#[derive(Debug)]
pub struct PlanInput {
    /// The file's syntax and schema stage.
    pub input: Input,
    /// The typed plan, if it could be read (after removing what the schema rejected).
    pub plan: Option<Plan>,
    /// `plan_id` as written (even if the rest is broken).
    pub plan_id: Option<String>,
    /// `registry_id` as written.
    pub registry_id: Option<String>,
    /// `registry/<registry_id>/` found from the plan's directory upwards.
    pub registry_dir: Option<PathBuf>,
    /// The schema found invalid values: `plan` was read without them, so only its
    /// references are checked (a schema error does not hide a reference error; the other
    /// checks would report what the removal caused).
    pub repaired: bool,
}

/// Read and schema-check a plan; find its registry.
pub fn read(path: &Path) -> Result<PlanInput> {
    let mut input = input::read(path, "plan")?;
    let mut plan = None;
    let mut plan_id = None;
    let mut registry_id = None;
    let mut repaired = false;
    // Taken, not copied (a policy matrix's value is most of the lint's memory): nothing
    // reads a plan's `input.value` after this, the checks read the typed plan.
    if let Some(v) = input.value.take() {
        plan_id = v
            .get("plan_id")
            .and_then(|x| x.as_str())
            .map(str::to_string);
        registry_id = v
            .get("registry_id")
            .and_then(|x| x.as_str())
            .map(str::to_string);
        if input.validated.invalid_under("") {
            // Read without its invalid values, for the reference checks only.
            plan = without(&v, &input.validated.invalid);
            repaired = plan.is_some();
        } else {
            match deserialize_value::<Plan>(v) {
                Ok(p) => plan = Some(p),
                Err(e) => input.typed_failure(&e.pointer, &e.message),
            }
        }
    }
    let registry_dir = registry_id.as_deref().and_then(|id| {
        let id = Id::new(id).ok()?;
        let dir = path.parent()?;
        crate::load::find_registry_dir(dir, &id)
    });
    Ok(PlanInput {
        input,
        plan,
        plan_id,
        registry_id,
        registry_dir,
        repaired,
    })
}

/// The plan `v` with the values at `invalid` removed (the deepest first, later array items
/// before earlier ones), if what remains is still a plan.
fn without(v: &serde_json::Value, invalid: &[String]) -> Option<Plan> {
    use std::cmp::Ordering;
    let token_cmp = |a: &str, b: &str| match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    };
    let mut ptrs: Vec<&String> = invalid.iter().filter(|p| !p.is_empty()).collect();
    ptrs.sort_by(|a, b| {
        let (ta, tb): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
        for (x, y) in ta.iter().zip(&tb) {
            match token_cmp(x, y) {
                Ordering::Equal => {}
                o => return o.reverse(),
            }
        }
        tb.len().cmp(&ta.len())
    });
    ptrs.dedup();
    let mut v = v.clone();
    for p in ptrs {
        let (parent, last) = p.rsplit_once('/')?;
        let key = crate::source::unescape_pointer_token(last);
        let target = if parent.is_empty() {
            Some(&mut v)
        } else {
            v.pointer_mut(parent)
        };
        match target {
            Some(serde_json::Value::Object(m)) => {
                m.remove(&key);
            }
            Some(serde_json::Value::Array(a)) => {
                if let Ok(i) = key.parse::<usize>()
                    && i < a.len()
                {
                    a.remove(i);
                }
            }
            _ => {}
        }
    }
    deserialize_value::<Plan>(v).ok()
}

/// The registries that exist next to the plan (for "did you mean" on `registry_id`).
fn nearby_registries(plan_path: &Path) -> Vec<String> {
    let Some(dir) = plan_path.parent() else {
        return Vec::new();
    };
    let Some(root) = crate::util::fsx::find_upwards(dir, |d| d.join("registry").is_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<String> = std::fs::read_dir(root.join("registry"))
        .map(|rd| {
            rd.filter_map(std::result::Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Semantic checks of a read plan against its (linted) registry, appended to the plan's
/// findings.
pub fn check(pi: &mut PlanInput, reg: Option<&RegistryLint>, base: &Path) {
    let Some(plan) = pi.plan.as_ref() else {
        return;
    };
    check_with(plan, &mut pi.input, pi.repaired, reg, base);
}

/// [`check`] of `plan`, read from `input` (`repaired`: see [`PlanInput::repaired`]).
pub fn check_with(
    plan: &Plan,
    input: &mut Input,
    repaired: bool,
    reg: Option<&RegistryLint>,
    base: &Path,
) {
    let Some(doc) = input.doc.clone() else {
        return;
    };
    let path = input.path.clone();
    let mut sink = Sink::new(&doc, &path);
    if !repaired {
        structure(&mut sink, plan, &path);
        variables(&mut sink, plan);
    }
    if let Some(reg) = reg {
        let refs = references(&mut sink, plan, reg, base);
        if refs && !repaired {
            entries_in_context(&mut sink, plan, reg);
            timeouts(&mut sink, plan, reg);
        }
    } else {
        {
            let id = &plan.registry_id;
            let near = nearby_registries(&path);
            let hint =
                did_you_mean(id.as_str(), near.iter().map(String::as_str)).unwrap_or_else(|| {
                    if near.is_empty() {
                        format!(
                            "no `registry/{id}/` directory in the plan's directory or any parent"
                        )
                    } else {
                        format!(
                            "registries found: {}",
                            near.iter()
                                .map(|r| format!("`{r}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                });
            sink.push_hint(
                Code::UnknownRegistry,
                "/registry_id",
                At::Value,
                format!("registry `{id}` not found"),
                Some(hint),
            );
        }
    }
    if !repaired {
        mission(&mut sink, plan);
        worker_tasks(&mut sink, plan, reg);
        selection(&mut sink, plan);
    }
    input.findings.append(&mut sink.findings);
}

/// Worker tasks: one probe or one worker per task; the worker's profile; typed inputs;
/// artifact inputs from tasks depended on; no baseline lane.
fn worker_tasks(sink: &mut Sink<'_>, plan: &Plan, reg: Option<&RegistryLint>) {
    let Some(m) = &plan.mission else { return };
    let decls: BTreeMap<&Id, &crate::model::worker::Worker> = reg
        .map(|r| {
            plan.referenced_workers()
                .into_iter()
                .filter_map(|w| r.workers.get(w.as_str()).map(|d| (w, d)))
                .collect()
        })
        .unwrap_or_default();
    for (t, task) in &m.tasks {
        let base = pointer(["mission", "tasks", t.as_str()]);
        for p in crate::load::worker::task_problems_decl(t, task, &m.tasks, &decls) {
            let code = match p.code {
                "task-probe-or-worker" | "inputs-without-worker" => Code::TaskProbeOrWorker,
                "worker-profile-mismatch" | "worker-expects-deny" => Code::WorkerTaskMismatch,
                "artifact-input" => Code::ArtifactInput,
                _ => Code::BadInput,
            };
            let at = if p.at.is_empty() || p.at.starts_with("/inputs/") {
                At::Key
            } else {
                At::Value
            };
            sink.push_hint(
                code,
                &format!("{base}{}", p.at),
                at,
                p.message,
                Some(p.hint),
            );
        }
    }
    if plan.referenced_workers().is_empty() {
        return;
    }
    let asked = sink.doc.value().pointer("/lanes/baseline") == Some(&serde_json::Value::Bool(true));
    if asked {
        sink.push_hint(
            Code::WorkerBaseline,
            "/lanes/baseline",
            At::Value,
            "the mission has worker tasks and asks for the baseline lane, which would run every worker again without its profile",
            Some("remove `\"baseline\": true` (a mission's baseline lane is off unless asked for)".into()),
        );
    }
}

fn structure(sink: &mut Sink<'_>, plan: &Plan, path: &Path) {
    if plan.schema_version != SCHEMA_VERSION {
        sink.push_hint(
            Code::UnsupportedVersion,
            "/schema_version",
            At::Value,
            format!(
                "schema_version {} is not supported by this build (it reads {SCHEMA_VERSION})",
                plan.schema_version
            ),
            Some(format!("set \"schema_version\": {SCHEMA_VERSION}")),
        );
    }
    match (plan.kind, &plan.mission) {
        (PlanKind::Mission, None) => sink.push_hint(
            Code::MissionMismatch,
            "/kind",
            At::Value,
            "`kind` is `mission` but there is no `mission` block",
            Some("add a `mission` block (objective, category, rank, scores, requested_by, tasks) or set \"kind\": \"experiment\"".into()),
        ),
        (PlanKind::Experiment, Some(_)) => sink.push_hint(
            Code::MissionMismatch,
            "/mission",
            At::Key,
            "a `mission` block in a plan whose `kind` is `experiment`",
            Some("set \"kind\": \"mission\" or remove the block".into()),
        ),
        _ => {}
    }
    let is_plan_file = path.file_stem().is_some_and(|s| s == "plan");
    if is_plan_file && let Some(dir) = path.parent().and_then(Path::file_name) {
        let dir = dir.to_string_lossy();
        if dir != plan.plan_id.as_str() {
            sink.push_hint(
                Code::PlanIdMismatch,
                "/plan_id",
                At::Value,
                format!(
                    "`plan_id` is `{}` but the plan's directory is `{dir}`",
                    plan.plan_id
                ),
                Some(format!(
                    "set \"plan_id\": \"{dir}\" or rename the directory"
                )),
            );
        }
    }
    if !plan.lanes.baseline && !plan.lanes.scenario && !plan.lanes.oracle {
        sink.push_hint(
            Code::NoLanes,
            "/lanes",
            At::Value,
            "every lane is disabled, so nothing would run",
            Some("enable at least one of `baseline`, `scenario`, `oracle`".into()),
        );
    }
}

/// Plan variables: names and the references in their values.
fn variables(sink: &mut Sink<'_>, plan: &Plan) {
    let names: Vec<&str> = plan
        .variables
        .keys()
        .map(crate::model::VarName::as_str)
        .collect();
    for (k, v) in &plan.variables {
        let ptr = pointer(["variables", k.as_str()]);
        if BUILTINS.contains(&k.as_str()) {
            sink.push_hint(
                Code::BuiltinShadowed,
                &ptr,
                At::Key,
                format!("`{k}` is a builtin variable; the runner sets it for every run"),
                Some("rename the variable".into()),
            );
        }
        let (used, issues) = vars::scan(v);
        for issue in issues {
            let (code, msg, hint) = issue.finding(v);
            sink.push_hint(code, &ptr, At::Value, msg, Some(hint));
        }
        for n in used {
            if n == k.as_str() {
                sink.push(
                    Code::UndefinedVariable,
                    &ptr,
                    At::Value,
                    format!("`{k}` refers to itself"),
                );
            } else if !BUILTINS.contains(&n.as_str()) && !names.contains(&n.as_str()) {
                let cands = BUILTINS
                    .iter()
                    .copied()
                    .filter(|b| !vars::WORKER_ONLY.contains(b))
                    .chain(names.iter().copied());
                sink.push_hint(
                    Code::UndefinedVariable,
                    &ptr,
                    At::Value,
                    format!("`${{{n}}}` is not defined"),
                    did_you_mean(&n, cands),
                );
            }
        }
    }
}

/// Where the plan first names each probe and profile (for findings about them in context).
#[derive(Default)]
struct Refs {
    probes: BTreeMap<String, (String, At)>,
    profiles: BTreeMap<String, (String, At)>,
}

impl Refs {
    fn of(plan: &Plan) -> Self {
        let mut r = Refs::default();
        for (i, p) in plan.profiles.iter().enumerate() {
            r.profiles
                .entry(p.to_string())
                .or_insert((format!("/profiles/{i}"), At::Value));
        }
        for (prof, map) in &plan.scenarios {
            r.profiles
                .entry(prof.to_string())
                .or_insert((pointer(["scenarios", prof.as_str()]), At::Key));
            for probe in map.keys() {
                if !r.probes.contains_key(probe.as_str()) {
                    r.probes.insert(
                        probe.to_string(),
                        (
                            pointer(["scenarios", prof.as_str(), probe.as_str()]),
                            At::Key,
                        ),
                    );
                }
            }
        }
        for (i, c) in plan.controls.iter().enumerate() {
            r.probes
                .entry(c.to_string())
                .or_insert((format!("/controls/{i}"), At::Value));
        }
        if let Some(p) = &plan.apply_preflight_profile {
            r.profiles
                .entry(p.to_string())
                .or_insert(("/apply_preflight_profile".into(), At::Value));
        }
        if let Some(m) = &plan.mission {
            for (t, task) in &m.tasks {
                if let Some(probe) = &task.probe {
                    r.probes.entry(probe.to_string()).or_insert((
                        pointer(["mission", "tasks", t.as_str(), "probe"]),
                        At::Value,
                    ));
                }
                r.profiles.entry(task.profile.to_string()).or_insert((
                    pointer(["mission", "tasks", t.as_str(), "profile"]),
                    At::Value,
                ));
            }
        }
        r
    }
}

/// A kind of registry entry, for "not defined" findings.
struct Kind<'a> {
    code: Code,
    what: &'static str,
    ids: &'a BTreeSet<String>,
    file: &'a str,
    /// Why the ids cannot be known (the file is missing or unreadable): the references are
    /// then counted, not reported one by one (the registry's own finding is the cause).
    unknowable: Option<String>,
    /// References counted that way.
    counted: std::cell::Cell<usize>,
}

impl Kind<'_> {
    /// One finding for the references that could not be checked, at `/registry_id`.
    fn summary(&self, sink: &mut Sink<'_>) {
        let n = self.counted.get();
        if let (Some(why), true) = (&self.unknowable, n > 0) {
            sink.push_hint(
                self.code,
                "/registry_id",
                At::Value,
                format!(
                    "the {n} {}{} this plan names cannot be resolved: {why}",
                    self.what,
                    if n == 1 { "" } else { "s" }
                ),
                Some("fix the registry first (its own finding says what is wrong); the references are checked again then".into()),
            );
        }
    }
}

fn unknown(sink: &mut Sink<'_>, kind: &Kind<'_>, ptr: &str, at: At, id: &str) {
    if kind.unknowable.is_some() {
        kind.counted.set(kind.counted.get() + 1);
        return;
    }
    let file = kind.file;
    let near = if sink.full() {
        None
    } else {
        did_you_mean(id, kind.ids.iter().map(String::as_str))
    };
    let hint = near.or_else(|| Some(format!("define it in {file} or fix the reference")));
    sink.push_hint(
        kind.code,
        ptr,
        at,
        format!("{} `{id}` is not defined in {file}", kind.what),
        hint,
    );
}

/// Every reference resolves. Returns true if all of them do.
fn references(sink: &mut Sink<'_>, plan: &Plan, reg: &RegistryLint, base: &Path) -> bool {
    let probes_file = reg.probes_path.as_deref().map(|p| shown(p, base));
    let profiles_file = reg.profiles_path.as_deref().map(|p| shown(p, base));
    let why = |path: &Option<String>, read: bool, stem: &str| match path {
        None => Some(format!(
            "registry `{}` has no {stem}.json (or {stem}.yaml)",
            plan.registry_id
        )),
        Some(p) if !read => Some(format!("{p} could not be read")),
        Some(_) => None,
    };
    let probe_k = Kind {
        code: Code::UnknownProbe,
        what: "probe",
        ids: &reg.probe_ids,
        file: probes_file.as_deref().unwrap_or("the registry"),
        unknowable: why(&probes_file, reg.probes_read, "probes"),
        counted: std::cell::Cell::new(0),
    };
    let profile_k = Kind {
        code: Code::UnknownProfile,
        what: "profile",
        ids: &reg.profile_ids,
        file: profiles_file.as_deref().unwrap_or("the registry"),
        unknowable: why(&profiles_file, reg.profiles_read, "profiles"),
        counted: std::cell::Cell::new(0),
    };
    let selected: BTreeSet<&str> = plan.profiles.iter().map(Id::as_str).collect();
    let mut seen = BTreeSet::new();
    for (i, p) in plan.profiles.iter().enumerate() {
        let ptr = format!("/profiles/{i}");
        if !seen.insert(p.as_str()) {
            sink.push_hint(
                Code::DuplicateId,
                &ptr,
                At::Value,
                format!("profile `{p}` is listed twice"),
                Some("remove the duplicate".into()),
            );
        } else if !reg.profile_ids.contains(p.as_str()) {
            unknown(sink, &profile_k, &ptr, At::Value, p.as_str());
        }
    }
    for (prof, map) in &plan.scenarios {
        let ptr = pointer(["scenarios", prof.as_str()]);
        if !reg.profile_ids.contains(prof.as_str()) {
            if !selected.contains(prof.as_str()) {
                unknown(sink, &profile_k, &ptr, At::Key, prof.as_str());
            }
        } else if !selected.contains(prof.as_str()) {
            sink.push_hint(
                Code::ProfileNotSelected,
                &ptr,
                At::Key,
                format!("scenarios for profile `{prof}`, which is not listed in `profiles`"),
                Some(format!(
                    "add \"{prof}\" to `profiles`, or remove these scenarios"
                )),
            );
        }
        for probe in map.keys() {
            if !reg.probe_ids.contains(probe.as_str()) {
                let p = pointer(["scenarios", prof.as_str(), probe.as_str()]);
                unknown(sink, &probe_k, &p, At::Key, probe.as_str());
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (i, c) in plan.controls.iter().enumerate() {
        let ptr = format!("/controls/{i}");
        if !seen.insert(c.as_str()) {
            sink.push_hint(
                Code::DuplicateId,
                &ptr,
                At::Value,
                format!("control `{c}` is listed twice"),
                Some("remove the duplicate".into()),
            );
        } else if !reg.probe_ids.contains(c.as_str()) {
            unknown(sink, &probe_k, &ptr, At::Value, c.as_str());
        }
    }
    if let Some(p) = &plan.apply_preflight_profile
        && !reg.profile_ids.contains(p.as_str())
    {
        unknown(
            sink,
            &profile_k,
            "/apply_preflight_profile",
            At::Value,
            p.as_str(),
        );
    }
    let workers_file = reg.workers_path.as_deref().map(|p| shown(p, base));
    let worker_k = Kind {
        code: Code::UnknownWorker,
        what: "worker",
        ids: &reg.worker_ids,
        file: workers_file
            .as_deref()
            .unwrap_or("the registry's workers.json"),
        // A registry need not declare workers: a task naming one in a registry without
        // workers.json is reported where it is named.
        unknowable: None,
        counted: std::cell::Cell::new(0),
    };
    if let Some(m) = &plan.mission {
        for (t, task) in &m.tasks {
            let base = pointer(["mission", "tasks", t.as_str()]);
            if let Some(probe) = &task.probe
                && !reg.probe_ids.contains(probe.as_str())
            {
                unknown(
                    sink,
                    &probe_k,
                    &format!("{base}/probe"),
                    At::Value,
                    probe.as_str(),
                );
            }
            if let Some(w) = &task.worker
                && !reg.worker_ids.contains(w.as_str())
            {
                unknown(
                    sink,
                    &worker_k,
                    &format!("{base}/worker"),
                    At::Value,
                    w.as_str(),
                );
            }
            if !reg.profile_ids.contains(task.profile.as_str()) {
                unknown(
                    sink,
                    &profile_k,
                    &format!("{base}/profile"),
                    At::Value,
                    task.profile.as_str(),
                );
            } else if !selected.contains(task.profile.as_str()) {
                sink.push_hint(
                    Code::ProfileNotSelected,
                    &format!("{base}/profile"),
                    At::Value,
                    format!(
                        "task `{t}` runs under profile `{}`, which is not listed in `profiles`",
                        task.profile
                    ),
                    Some(format!("add \"{}\" to `profiles`", task.profile)),
                );
            }
        }
    }
    probe_k.summary(sink);
    profile_k.summary(sink);
    plan.referenced_probes()
        .iter()
        .all(|p| reg.probe_ids.contains(p.as_str()))
        && plan
            .referenced_workers()
            .iter()
            .all(|w| reg.worker_ids.contains(w.as_str()))
        && plan
            .referenced_profiles()
            .iter()
            .all(|p| reg.profile_ids.contains(p.as_str()))
}

/// The registry entries the plan uses, checked with the plan's variables.
fn entries_in_context(sink: &mut Sink<'_>, plan: &Plan, reg: &RegistryLint) {
    let refs = Refs::of(plan);
    let plan_scope = Scope::with_plan(plan.variables.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut used: BTreeSet<String> = BTreeSet::new();
    for v in plan.variables.values() {
        used.extend(vars::scan(v).0);
    }
    let mut complete = true;
    for (id, (ptr, at)) in &refs.probes {
        let Some(probe) = reg.probes.get(id) else {
            complete = false;
            continue;
        };
        let mut scope = plan_scope.clone();
        let own = fixture_vars(probe);
        for v in &own {
            if plan.variables.keys().any(|k| k.as_str() == *v) {
                sink.push_hint(
                    Code::VariableConflict,
                    ptr,
                    *at,
                    format!("probe `{id}` publishes its listener port as `${{{v}}}`, which the plan also defines"),
                    Some("rename the plan variable; the listener's port would silently replace it".into()),
                );
            }
            scope.add_number(v);
        }
        let mut registry_scope = Scope::builtins();
        for v in &own {
            registry_scope.add_number(v);
        }
        scope.scratch = ScratchTree::of(&probe.fixtures, &|p| scope.place(p));
        for (rel, s) in probe_strings(probe) {
            let names = vars::scan(s).0;
            used.extend(names.iter().cloned());
            for n in &names {
                if !scope.vars.contains_key(n) {
                    let hint = did_you_mean(
                        n,
                        scope
                            .vars
                            .keys()
                            .map(String::as_str)
                            .filter(|k| !vars::WORKER_ONLY.contains(k)),
                    )
                    .unwrap_or_else(|| format!("add `{n}` to the plan's `variables`"));
                    sink.push_hint(
                        Code::UndefinedVariable,
                        ptr,
                        *at,
                        format!("probe `{id}` uses `${{{n}}}` (in `{}`), which this plan does not define", &rel[1..]),
                        Some(hint),
                    );
                }
            }
            // Only what the registry could not decide (a plan variable leads the path).
            if registry_scope.lead(s).is_some() {
                continue;
            }
            let writes_target =
                (rel == "/target" && probe.operation.writes()) || rel == "/destination";
            let is_fixture_path = rel.starts_with("/fixtures/") && rel.ends_with("/path");
            let lead = scope.lead(s);
            let path_like = rel == "/target"
                && probe.operation.target_kind() == crate::model::registry::TargetKind::Path;
            match lead {
                Some(Lead::Scratch { rest }) if writes_target => {
                    let follow = rel == "/target" && probe.operation.follows_final();
                    if let Where::Outside(why) = scope.scratch.resolve(&rest, follow, &|p| scope.place(p)) {
                        sink.push_hint(
                            Code::WriteOutsideScratch,
                            ptr,
                            *at,
                            format!("probe `{id}` writes `{s}` (`{}`), which with this plan's variables resolves outside `${{SCRATCH}}`: {why}", &rel[1..]),
                            Some("keep the written path (after `..` and the fixtures' symlinks) inside `${SCRATCH}`".into()),
                        );
                    }
                }
                Some(Lead::Root) if writes_target || is_fixture_path => sink.push_hint(
                    Code::WriteOutsideScratch,
                    ptr,
                    *at,
                    format!("probe `{id}` writes `{s}` (`{}`), which with this plan's variables is outside `${{SCRATCH}}`", &rel[1..]),
                    Some("make the variable's value start with `${SCRATCH}`".into()),
                ),
                Some(Lead::Relative) if path_like || writes_target || is_fixture_path => sink.push_hint(
                    Code::RelativePath,
                    ptr,
                    *at,
                    format!("probe `{id}`: `{s}` (`{}`) is not an absolute path with this plan's variables", &rel[1..]),
                    Some("make the variable's value an absolute path".into()),
                ),
                _ => {}
            }
        }
    }
    for (id, (ptr, at)) in &refs.profiles {
        let Some(profile) = reg.profiles.get(id) else {
            complete = false;
            continue;
        };
        let registry_scope = Scope::builtins();
        for (rel, s) in profile_strings(profile) {
            let names = vars::scan(s).0;
            used.extend(names.iter().cloned());
            for n in &names {
                if !plan_scope.vars.contains_key(n) {
                    let hint = did_you_mean(n, plan_scope.vars.keys().map(String::as_str))
                        .unwrap_or_else(|| format!("add `{n}` to the plan's `variables`"));
                    sink.push_hint(
                        Code::UndefinedVariable,
                        ptr,
                        *at,
                        format!("profile `{id}` uses `${{{n}}}` (in `{}`), which this plan does not define", &rel[1..]),
                        Some(hint),
                    );
                }
            }
            if registry_scope.lead(s).is_none() && plan_scope.lead(s) == Some(Lead::Relative) {
                sink.push_hint(
                    Code::RelativeRulePath,
                    ptr,
                    *at,
                    format!(
                        "profile `{id}`: rule path `{s}` is not absolute with this plan's variables"
                    ),
                    Some("make the variable's value an absolute path".into()),
                );
            }
        }
    }
    if complete {
        for k in plan.variables.keys() {
            if !used.contains(k.as_str()) && !BUILTINS.contains(&k.as_str()) {
                sink.push_hint(
                    Code::UnusedVariable,
                    &pointer(["variables", k.as_str()]),
                    At::Key,
                    format!("variable `{k}` is not used by any probe or profile of this plan"),
                    Some("remove it, or check the spelling of the references".into()),
                );
            }
        }
    }
}

/// The note about scenarios that fall back to the runner's default timeout.
fn timeouts(sink: &mut Sink<'_>, plan: &Plan, reg: &RegistryLint) {
    if plan.execution.timeout_ms.is_some() {
        return;
    }
    let consider = |prof: &str, probe: &str| {
        reg.probes
            .get(probe)
            .zip(reg.profiles.get(prof))
            .is_some_and(|(p, f)| p.timeout_ms.is_none() && f.limits.wall_timeout_ms.is_none())
    };
    // The distinct (profile, probe) pairs counted without building a list or a set of
    // them (a policy matrix has hundreds of thousands): each profile once, its row's
    // probes, then the controls its row does not name (each once); then the tasks' pairs
    // that are not among those.
    let mut count = 0usize;
    let mut probes: BTreeSet<&str> = BTreeSet::new();
    let mut seen_profiles: BTreeSet<&str> = BTreeSet::new();
    let controls: BTreeSet<&str> = plan.controls.iter().map(Id::as_str).collect();
    for prof in &plan.profiles {
        if !seen_profiles.insert(prof.as_str()) {
            continue;
        }
        let row = plan.scenarios.get(prof);
        let listed = row.into_iter().flat_map(BTreeMap::keys).map(Id::as_str);
        let unlisted = controls
            .iter()
            .copied()
            .filter(|c| !row.is_some_and(|m| m.contains_key(*c)));
        for probe in listed.chain(unlisted) {
            if consider(prof.as_str(), probe) {
                count += 1;
                probes.insert(probe);
            }
        }
    }
    if let Some(m) = &plan.mission {
        let mut tasks: BTreeSet<(&str, &str)> = BTreeSet::new();
        for task in m.tasks.values() {
            let (prof, Some(probe)) = (task.profile.as_str(), task.probe.as_ref()) else {
                continue;
            };
            let counted = seen_profiles.contains(prof)
                && (controls.contains(probe.as_str())
                    || plan
                        .scenarios
                        .get(&task.profile)
                        .is_some_and(|row| row.contains_key(probe)));
            if !counted && consider(prof, probe.as_str()) && tasks.insert((prof, probe.as_str())) {
                count += 1;
                probes.insert(probe.as_str());
            }
        }
    }
    if count == 0 {
        return;
    }
    let list: Vec<String> = probes.iter().take(5).map(|p| format!("`{p}`")).collect();
    let more = if probes.len() > 5 {
        format!(" and {} more", probes.len() - 5)
    } else {
        String::new()
    };
    let at = if sink.doc.locate("/execution").exact {
        "/execution"
    } else {
        ""
    };
    let (scenarios, probes_word) = if count == 1 {
        ("1 scenario has".to_string(), "probe")
    } else {
        (format!("{count} scenarios have"), "probes")
    };
    let probes_word = if probes.len() == 1 {
        "probe"
    } else {
        probes_word
    };
    sink.push_hint(
        Code::DefaultTimeout,
        at,
        At::Key,
        format!(
            "{scenarios} no timeout ({probes_word} {}{more}): the runner default of {DEFAULT_TIMEOUT_MS} ms applies",
            list.join(", ")
        ),
        Some("set `execution.timeout_ms` here, `timeout_ms` on the probes or `limits.wall_timeout_ms` on the profiles to choose it".into()),
    );
}

fn mission(sink: &mut Sink<'_>, plan: &Plan) {
    let Some(m) = &plan.mission else { return };
    // What only the runner's task model can get wrong: two tasks on one scenario row, a
    // task and a declared scenario that disagree (`load::mission::check`).
    for f in crate::load::mission::check(plan) {
        let code = match f.code {
            "mission-duplicate-task" => Code::DuplicateTask,
            "mission-task-scenario-conflict" => Code::TaskScenarioConflict,
            _ => continue,
        };
        sink.push_hint(code, &f.pointer, At::Key, f.message, f.hint);
    }
    let ids: BTreeSet<&str> = m.tasks.keys().map(Id::as_str).collect();
    for (t, task) in &m.tasks {
        for (i, dep) in task.depends_on.iter().enumerate() {
            if !ids.contains(dep.as_str()) {
                let hint = did_you_mean(dep.as_str(), ids.iter().copied()).or_else(|| {
                    Some("define the task in `mission.tasks` or remove the dependency".into())
                });
                sink.push_hint(
                    Code::UnknownTask,
                    &pointer(["mission", "tasks", t.as_str(), "depends_on", &i.to_string()]),
                    At::Value,
                    format!("task `{t}` depends on `{dep}`, which the mission does not define"),
                    hint,
                );
            }
        }
    }
    for cycle in cycles(&m.tasks) {
        let first = &cycle[0];
        let path = cycle
            .iter()
            .chain(std::iter::once(first))
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(" → ");
        sink.push_hint(
            Code::TaskCycle,
            &pointer(["mission", "tasks", first.as_str(), "depends_on"]),
            At::Value,
            format!("tasks depend on each other in a cycle: {path}"),
            Some("remove one of these dependencies; tasks run in dependency order, so a cycle can never start".into()),
        );
    }
}

/// Elementary cycles of the task graph, each reported once starting from its smallest id
/// (deterministic).
fn cycles(tasks: &BTreeMap<Id, Task>) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components; a component with more than one node, or a
    // node depending on itself, contains a cycle. Report one cycle per component.
    let ids: Vec<&str> = tasks.keys().map(Id::as_str).collect();
    let index_of: BTreeMap<&str, usize> = ids.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let edges: Vec<Vec<usize>> = tasks
        .values()
        .map(|t| {
            let mut v: Vec<usize> = t
                .depends_on
                .iter()
                .filter_map(|d| index_of.get(d.as_str()).copied())
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    let n = ids.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut comps: Vec<Vec<usize>> = Vec::new();
    // Iterative Tarjan to avoid deep recursion on long chains.
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut ei)) = work.last_mut() {
            if *ei < edges[v].len() {
                let w = edges[v][*ei];
                *ei += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some(&(u, _)) = work.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    comps.push(comp);
                }
            }
        }
    }
    let mut out = Vec::new();
    for comp in comps {
        let set: BTreeSet<usize> = comp.iter().copied().collect();
        let start = *set.iter().next().unwrap_or(&0);
        if comp.len() == 1 && !edges[start].contains(&start) {
            continue;
        }
        // Walk from the smallest node, always to the smallest neighbour inside the component,
        // until a node repeats: that closes a cycle.
        let mut path = vec![start];
        let mut cur = start;
        while let Some(&step) = edges[cur].iter().find(|w| set.contains(w)) {
            if let Some(pos) = path.iter().position(|&p| p == step) {
                path.drain(..pos);
                break;
            }
            path.push(step);
            cur = step;
        }
        // Rotate so the cycle starts at its smallest id.
        if let Some(min_pos) = path
            .iter()
            .enumerate()
            .min_by_key(|(_, v)| **v)
            .map(|(i, _)| i)
        {
            path.rotate_left(min_pos);
        }
        out.push(path.into_iter().map(|i| ids[i].to_string()).collect());
    }
    out.sort();
    out
}

/// Zero scenarios; profiles that run nothing.
fn selection(sink: &mut Sink<'_>, plan: &Plan) {
    let tasks = plan.mission.as_ref().map_or(0, |m| m.tasks.len());
    if plan.scenario_pairs().next().is_none() && tasks == 0 {
        let at = if sink.doc.locate("/scenarios").exact {
            "/scenarios"
        } else {
            "/profiles"
        };
        let hint = if plan.profiles.is_empty() {
            "list the profiles to run in `profiles` and give each its probes in `scenarios`"
                .to_string()
        } else {
            format!(
                "give the listed profiles probes in `scenarios` (e.g. \"scenarios\": {{\"{}\": {{\"<probe>\": \"deny\"}}}}) or add `controls`",
                plan.profiles[0]
            )
        };
        sink.push_hint(
            Code::NoScenarios,
            at,
            At::Key,
            "the plan selects no scenario: nothing would run",
            Some(hint),
        );
        return;
    }
    let task_profiles: BTreeSet<&str> = plan
        .mission
        .iter()
        .flat_map(|m| m.tasks.values().map(|t| t.profile.as_str()))
        .collect();
    for (i, p) in plan.profiles.iter().enumerate() {
        let has_scenarios = plan.scenarios.get(p).is_some_and(|m| !m.is_empty());
        if !has_scenarios && plan.controls.is_empty() && !task_profiles.contains(p.as_str()) {
            sink.push_hint(
                Code::UnusedProfile,
                &format!("/profiles/{i}"),
                At::Value,
                format!("profile `{p}` has no scenarios, controls or tasks: it runs nothing"),
                Some(format!(
                    "add \"{p}\" to `scenarios` with its probes, or remove it from `profiles`"
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(spec: &[(&str, &[&str])]) -> BTreeMap<Id, Task> {
        spec.iter()
            .map(|(id, deps)| {
                (
                    Id::new(*id).unwrap(),
                    Task {
                        worker: None,
                        inputs: BTreeMap::new(),
                        probe: Some(Id::new("p").unwrap()),
                        profile: Id::new("q").unwrap(),
                        depends_on: deps.iter().map(|d| Id::new(*d).unwrap()).collect(),
                        expect: None,
                        notes: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn cycles_are_found_and_named_once() {
        let t = tasks(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]);
        assert_eq!(cycles(&t), vec![vec!["a", "b", "c"]]);
        let t = tasks(&[("a", &["a"])]);
        assert_eq!(cycles(&t), vec![vec!["a"]]);
        let t = tasks(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])]);
        assert!(cycles(&t).is_empty());
    }

    #[test]
    fn long_chains_do_not_overflow() {
        let names: Vec<String> = (0..20_000).map(|i| format!("t{i:05}")).collect();
        let mut t = BTreeMap::new();
        for (i, n) in names.iter().enumerate() {
            let deps = if i + 1 < names.len() {
                vec![Id::new(names[i + 1].clone()).unwrap()]
            } else {
                vec![]
            };
            t.insert(
                Id::new(n.clone()).unwrap(),
                Task {
                    probe: Some(Id::new("p").unwrap()),
                    worker: None,
                    inputs: BTreeMap::new(),
                    profile: Id::new("q").unwrap(),
                    depends_on: deps,
                    expect: None,
                    notes: None,
                },
            );
        }
        assert!(cycles(&t).is_empty());
    }
}
