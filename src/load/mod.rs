//! Loading a plan with everything it resolves: find the project and the registry, read
//! probes and profiles, check every reference, compute `plan_digest` (§3.3) and list the
//! scenarios.
//!
//! This is the strict, fail-fast path used by `run` and friends: the first problem is an
//! error naming the file, the place and the fix. `plan-lint` (in [`crate::lint`]) reports
//! every finding at once.

pub mod extends;
pub mod mission;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::plan::Expectation;
use crate::model::{Id, Plan, PlanKind, Probe, ProbesFile, Profile, ProfilesFile, SCHEMA_VERSION};
use crate::source::{Document, TypedError};
use crate::util::digest::Digest;
use crate::util::{fsx, suggest};
use crate::{Error, Result};

/// Version of the digest input layout; bump when the layout changes.
pub const DIGEST_VERSION: u32 = 1;

/// The project root of `start`: the nearest ancestor (itself included) holding a
/// `registry/`, `plans/`, `templates/` or `.nexusmon/` directory; `start` itself if there is
/// none.
pub fn find_project_root(start: &Path) -> PathBuf {
    project_root_above(start).unwrap_or_else(|| start.to_path_buf())
}

/// The nearest ancestor of `start` (itself included) that looks like a project root
/// (`registry/`, `plans/`, `templates/` or `.nexusmon/`), if any.
pub fn project_root_above(start: &Path) -> Option<PathBuf> {
    fsx::find_upwards(start, |d| {
        d.join("registry").is_dir()
            || d.join("plans").is_dir()
            || d.join("templates").is_dir()
            || d.join(".nexusmon").is_dir()
    })
}

/// The registry directory `registry/<registry_id>/` nearest to `plan_dir` (searching
/// upwards).
pub fn find_registry_dir(plan_dir: &Path, registry_id: &Id) -> Option<PathBuf> {
    fsx::find_upwards(plan_dir, |d| {
        d.join("registry").join(registry_id.as_str()).is_dir()
    })
    .map(|d| d.join("registry").join(registry_id.as_str()))
}

/// The file `<dir>/<stem>.json`, `.yaml` or `.yml`: exactly one must exist.
pub fn find_data_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = ["json", "yaml", "yml"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .filter(|p| p.is_file())
        .collect();
    match candidates.len() {
        1 => Ok(candidates.into_iter().next().unwrap_or_default()),
        0 => Err(
            Error::input(dir, format!("has no {stem}.json (or {stem}.yaml)")).with_hint(format!(
                "create {}",
                dir.join(format!("{stem}.json")).display()
            )),
        ),
        _ => Err(Error::input(
            dir,
            format!("has more than one of {stem}.json, {stem}.yaml, {stem}.yml"),
        )
        .with_hint("keep one; the others would be silently ignored")),
    }
}

/// Turn a typed-deserialization failure into an input error with line and column.
pub fn typed_error(doc: &Document, e: &TypedError) -> Error {
    let loc = doc.locate(&e.pointer);
    let pos = loc
        .key_span
        .filter(|_| e.message.starts_with("unknown field"))
        .unwrap_or(loc.value_span)
        .start;
    let at = if e.pointer.is_empty() {
        String::new()
    } else {
        format!(" at {}", e.pointer)
    };
    Error::input(
        &doc.path,
        format!("{}:{}: {}{at}", pos.line, pos.col, e.message),
    )
    .with_hint(format!(
        "`nexusmon plan-lint {}` lists every problem with a suggestion",
        doc.path.display()
    ))
}

/// Load a document and deserialize it strictly: straight from its spanned tree
/// ([`Document::deserialize_tree`]; no JSON value of the document is built first), the same
/// value or the same error as through [`Document::deserialize`].
pub fn load_typed<T: DeserializeOwned>(path: &Path) -> Result<(Document, T)> {
    let doc = Document::load(path)?;
    let value: T = doc.deserialize_tree().map_err(|e| typed_error(&doc, &e))?;
    Ok((doc, value))
}

/// A registry: its probes and profiles files (and its workers file, if it has one).
#[derive(Debug, Clone)]
pub struct Registry {
    /// `registry/<registry_id>/`.
    pub dir: PathBuf,
    /// The probes file's path.
    pub probes_path: PathBuf,
    /// The profiles file's path.
    pub profiles_path: PathBuf,
    /// The probes file.
    pub probes: ProbesFile,
    /// The profiles file.
    pub profiles: ProfilesFile,
    /// `workers.json` (optional): its path and content.
    pub workers: Option<(PathBuf, crate::model::worker::WorkersFile)>,
    /// The parsed probes and profiles files (with their spans), for lint to check without
    /// reading and parsing them again ([`crate::lint::check_loaded`]); `None` once taken
    /// or released.
    pub documents: Option<RegistryDocuments>,
}

/// The parsed documents of a registry's probes and profiles files, as [`Registry::load`]
/// read them (each names its path).
#[derive(Debug, Clone)]
pub struct RegistryDocuments {
    /// The probes file.
    pub probes: std::sync::Arc<Document>,
    /// The profiles file.
    pub profiles: std::sync::Arc<Document>,
}

impl Registry {
    /// Load `dir/probes.*` and `dir/profiles.*`, checking their `registry_id`s and schema
    /// versions.
    pub fn load(dir: &Path) -> Result<Self> {
        let probes_path = find_data_file(dir, "probes")?;
        let profiles_path = find_data_file(dir, "profiles")?;
        let (probes_doc, probes): (_, ProbesFile) = load_typed(&probes_path)?;
        let (profiles_doc, profiles): (_, ProfilesFile) = load_typed(&profiles_path)?;
        check_version(&probes_path, probes.schema_version)?;
        check_version(&profiles_path, profiles.schema_version)?;
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (path, id) in [
            (&probes_path, &probes.registry_id),
            (&profiles_path, &profiles.registry_id),
        ] {
            if id.as_str() != dir_name {
                return Err(Error::input(
                    path,
                    format!("registry_id `{id}` does not match its directory `{dir_name}`"),
                )
                .with_hint(format!(
                    "set \"registry_id\": \"{dir_name}\" or move the file"
                )));
            }
        }
        let workers = worker::load_workers_file(dir, &dir_name)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            probes_path,
            profiles_path,
            probes,
            profiles,
            workers,
            documents: Some(RegistryDocuments {
                probes: std::sync::Arc::new(probes_doc),
                profiles: std::sync::Arc::new(profiles_doc),
            }),
        })
    }
}

fn check_version(path: &Path, v: u32) -> Result<()> {
    if v == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(Error::input(
            path,
            format!(
                "schema_version {v} is not supported by this build (it reads {SCHEMA_VERSION})"
            ),
        )
        .with_hint(format!("set \"schema_version\": {SCHEMA_VERSION}")))
    }
}

/// One (profile, probe) pair to run, with its expectation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ScenarioSpec {
    /// `<profile_id>:<probe_id>`.
    pub scenario_id: String,
    /// The profile.
    pub profile_id: Id,
    /// The probe.
    pub probe_id: Id,
    /// The expected decision.
    pub expected: Expectation,
    /// True if it comes from the plan's `controls`.
    pub control: bool,
}

/// A plan with everything it resolves.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    /// The plan file.
    pub path: PathBuf,
    /// The parsed document (for spans; shared with lint, [`crate::lint::check_loaded`]).
    pub doc: std::sync::Arc<Document>,
    /// The plan.
    pub plan: Plan,
    /// The registry it uses.
    pub registry: Registry,
    /// The probes the plan references, by id.
    pub probes: BTreeMap<Id, Probe>,
    /// The profiles the plan references, by id, resolved ([`extends`]: what every layer
    /// of an `extends` chain grants and restricts, as one profile).
    pub profiles: BTreeMap<Id, Profile>,
    /// The workers the plan's tasks use, by name, with their executables' digests.
    pub workers: BTreeMap<Id, worker::ResolvedWorker>,
    /// `plan_digest` (§3.3): blake3 (and sha256) of the canonical JSON of the plan together
    /// with every registry entry it resolves (worker declarations and executable digests
    /// included).
    pub digest: Digest,
    /// Digest of the inputs the mission's worker tasks are given (missions only).
    pub inputs_digest: Option<Digest>,
    /// `doc` holds the plan's text without its tree ([`load_plan_for_run`]): lint parses
    /// the text again ([`crate::lint::check_loaded_reparsing`]).
    pub tree_dropped: bool,
}

impl LoadedPlan {
    /// Drop the parsed document's tree and text (a plan's matrix is most of them), keeping
    /// its path and format: for a caller that is done with spans (`run`, once the plan is
    /// linted). [`Document::locate`] then answers the document's start for every pointer.
    pub fn release_document(&mut self) {
        self.doc = std::sync::Arc::new(self.doc.released());
    }

    /// Drop the registry's parsed entries (every probe and profile its files declare),
    /// keeping its paths and workers: for a caller that reads only the plan's own
    /// [`Self::probes`] and [`Self::profiles`] after load (`run`; a large registry is held
    /// twice otherwise, the referenced entries being copies).
    pub fn release_registry_entries(&mut self) {
        self.registry.probes.probes = BTreeMap::new();
        self.registry.profiles.profiles = BTreeMap::new();
    }

    /// Drop the registry's parsed documents ([`Registry::documents`], kept for lint).
    pub fn release_registry_documents(&mut self) {
        self.registry.documents = None;
    }

    /// Drop the parsed document's text (the tree stays, for lint's spans): for a caller
    /// that judges the lint report by its findings' positions only (`run`); the report
    /// then quotes no excerpt of the plan. Nothing happens while the document is shared.
    pub fn release_text(&mut self) {
        if let Some(doc) = std::sync::Arc::get_mut(&mut self.doc) {
            doc.text = String::new();
        }
    }
}

/// The canonical digest input of a plan: the plan (without `$schema`) with every probe and
/// profile it resolves.
#[derive(Debug, Serialize)]
pub struct DigestInput<'a> {
    /// [`DIGEST_VERSION`].
    pub digest_version: u32,
    /// The plan, `$schema` removed.
    pub plan: &'a Plan,
    /// The resolved probes.
    pub probes: &'a BTreeMap<Id, Probe>,
    /// The resolved profiles.
    pub profiles: &'a BTreeMap<Id, Profile>,
    /// The registry id they come from.
    pub registry_id: &'a Id,
    /// The resolved workers: declaration and executable digest (absent when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub workers: BTreeMap<&'a Id, serde_json::Value>,
}

/// Compute `plan_digest` for a plan and its resolved entries (a plan without workers).
pub fn plan_digest(
    plan: &Plan,
    probes: &BTreeMap<Id, Probe>,
    profiles: &BTreeMap<Id, Profile>,
) -> Result<Digest> {
    plan_digest_with(plan, probes, profiles, &BTreeMap::new())
}

/// Compute `plan_digest` for a plan, its resolved probes and profiles, and the workers it
/// uses (each its declaration and the digest of its executable's bytes, so editing a
/// worker's script voids every approval of the plans using it).
pub fn plan_digest_with(
    plan: &Plan,
    probes: &BTreeMap<Id, Probe>,
    profiles: &BTreeMap<Id, Profile>,
    workers: &BTreeMap<Id, worker::ResolvedWorker>,
) -> Result<Digest> {
    // Serialized straight into the canonical form (which sorts every object's keys), not
    // through a JSON tree of the plan: a policy matrix's tree is most of a load's memory.
    let without_schema;
    let plan = if plan.schema.is_some() {
        without_schema = Plan {
            schema: None,
            ..plan.clone()
        };
        &without_schema
    } else {
        plan
    };
    let input = DigestInput {
        digest_version: DIGEST_VERSION,
        plan,
        probes,
        profiles,
        registry_id: &plan.registry_id,
        workers: workers
            .iter()
            .map(|(k, w)| {
                (
                    k,
                    serde_json::json!({
                        "declaration": w.decl,
                        "executable": w.executable_digest,
                    }),
                )
            })
            .collect(),
    };
    // Hashed as it is written: the canonical text of a policy matrix is never whole.
    Digest::both_of_canonical(&input)
}

impl Plan {
    /// Every probe id the plan references (scenarios, controls, mission tasks).
    pub fn referenced_probes(&self) -> BTreeSet<&Id> {
        let mut out: BTreeSet<&Id> = self.scenarios.values().flat_map(BTreeMap::keys).collect();
        out.extend(self.controls.iter());
        if let Some(m) = &self.mission {
            out.extend(m.tasks.values().filter_map(|t| t.probe.as_ref()));
        }
        out
    }

    /// Every worker the plan's mission tasks name.
    pub fn referenced_workers(&self) -> BTreeSet<&Id> {
        self.mission
            .iter()
            .flat_map(|m| m.tasks.values())
            .filter_map(|t| t.worker.as_ref())
            .collect()
    }

    /// Every profile id the plan references (profiles, scenario keys, preflight, tasks).
    pub fn referenced_profiles(&self) -> BTreeSet<&Id> {
        let mut out: BTreeSet<&Id> = self.profiles.iter().collect();
        out.extend(self.scenarios.keys());
        out.extend(self.apply_preflight_profile.iter());
        if let Some(m) = &self.mission {
            out.extend(m.tasks.values().map(|t| &t.profile));
        }
        out
    }

    /// The (profile, probe) pairs of [`Plan::scenario_specs`], unsorted and possibly
    /// repeated (a profile listed twice), without building the list: for checks that only
    /// need to visit every scenario.
    pub fn scenario_pairs(&self) -> impl Iterator<Item = (&Id, &Id)> {
        self.profiles.iter().flat_map(move |profile| {
            let declared = self.scenarios.get(profile);
            let listed = declared.into_iter().flat_map(BTreeMap::keys);
            let controls = self
                .controls
                .iter()
                .filter(move |c| !declared.is_some_and(|m| m.contains_key(*c)));
            listed.chain(controls).map(move |probe| (profile, probe))
        })
    }

    /// The scenarios the plan declares, sorted by id: for each profile in `profiles`, its
    /// `scenarios` entries, then the `controls` not already listed (expected `allow`).
    /// Missions' tasks are scheduled by the governance layer, not listed here.
    pub fn scenario_specs(&self) -> Vec<ScenarioSpec> {
        // Allocated once at its final size (a policy matrix lists ~10^5 rows: growing by
        // doubling would leave up to half of it unused).
        let rows: usize = self
            .profiles
            .iter()
            .map(|p| self.scenarios.get(p).map_or(0, BTreeMap::len) + self.controls.len())
            .sum();
        let mut out = Vec::with_capacity(rows);
        for profile in &self.profiles {
            let declared = self.scenarios.get(profile);
            if let Some(map) = declared {
                for (probe, expected) in map {
                    out.push(ScenarioSpec {
                        scenario_id: format!("{profile}:{probe}"),
                        profile_id: profile.clone(),
                        probe_id: probe.clone(),
                        expected: *expected,
                        control: self.controls.contains(probe),
                    });
                }
            }
            for probe in &self.controls {
                if declared.is_some_and(|m| m.contains_key(probe)) {
                    continue;
                }
                out.push(ScenarioSpec {
                    scenario_id: format!("{profile}:{probe}"),
                    profile_id: profile.clone(),
                    probe_id: probe.clone(),
                    expected: Expectation::Allow,
                    control: true,
                });
            }
        }
        // Unstable: no scratch buffer of half the list; rows that compare equal are equal
        // in every field, so the order is the stable sort's.
        out.sort_unstable();
        out.dedup_by(|a, b| a.scenario_id == b.scenario_id);
        out
    }
}

/// Load a plan (JSON or YAML), its registry, resolve every reference and compute its digest.
pub fn load_plan(path: &Path) -> Result<LoadedPlan> {
    load_plan_keeping(path, true)
}

/// [`load_plan`] for `run`: an experiment's spanned tree (a policy matrix's every entry,
/// ~88 bytes each) is dropped as soon as the typed plan is read from it, so it is not held
/// while the registry loads, the digest is computed and the registry is linted; only the
/// text stays ([`LoadedPlan::tree_dropped`]), and [`crate::lint::check_loaded_reparsing`]
/// parses it again for lint's spans. The same value, digest and errors as [`load_plan`]
/// (a mission's document is kept whole).
pub fn load_plan_for_run(path: &Path) -> Result<LoadedPlan> {
    load_plan_keeping(path, false)
}

fn load_plan_keeping(path: &Path, keep_tree: bool) -> Result<LoadedPlan> {
    let mut doc = Document::load_plan(path)?;
    let plan: Plan = doc.deserialize_tree().map_err(|e| typed_error(&doc, &e))?;
    let tree_dropped = !keep_tree && plan.kind == PlanKind::Experiment;
    if tree_dropped {
        doc.drop_tree();
    }
    check_version(path, plan.schema_version)?;
    match (plan.kind, &plan.mission) {
        (PlanKind::Mission, None) => {
            return Err(Error::input(path, "`kind` is `mission` but there is no `mission` block")
                .with_hint("add a `mission` block (objective, category, rank, scores, requested_by, tasks) or set `kind` to `experiment`"));
        }
        (PlanKind::Experiment, Some(_)) => {
            return Err(Error::input(
                path,
                "a `mission` block in a plan whose `kind` is `experiment`",
            )
            .with_hint("set \"kind\": \"mission\" or remove the block"));
        }
        _ => {}
    }
    let plan_dir = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let plan_dir = fsx::absolute(&plan_dir)?;
    let registry_dir = find_registry_dir(&plan_dir, &plan.registry_id).ok_or_else(|| {
        Error::input(path, format!("registry `{}` not found", plan.registry_id)).with_hint(format!(
            "no `registry/{}/` directory in {} or any parent",
            plan.registry_id,
            plan_dir.display()
        ))
    })?;
    let registry = Registry::load(&registry_dir)?;

    let mut probes = BTreeMap::new();
    for id in plan.referenced_probes() {
        match registry.probes.probes.get(id) {
            Some(p) => {
                probes.insert(id.clone(), p.clone());
            }
            None => {
                return Err(missing_ref(
                    path,
                    &registry.probes_path,
                    "probe",
                    id,
                    registry.probes.probes.keys(),
                ));
            }
        }
    }
    let mut profiles = BTreeMap::new();
    let mut inherited = 0usize;
    for id in plan.referenced_profiles() {
        match registry.profiles.profiles.get(id) {
            Some(_) => {
                let resolved = extends::resolve(&registry.profiles.profiles, id)
                    .map_err(|e| extends_error(&registry.profiles_path, &e))?;
                inherited += resolved.inherited_rules();
                if inherited > crate::util::limits::MAX_INHERITED_RULES {
                    return Err(Error::input(
                        &registry.profiles_path,
                        format!(
                            "resolving `extends` for the plan's profiles copies more than {} rules from bases (at profile `{id}`)",
                            crate::util::limits::MAX_INHERITED_RULES
                        ),
                    )
                    .with_hint("fewer profiles extending a large base, or a smaller base"));
                }
                profiles.insert(id.clone(), resolved.profile);
            }
            None => {
                return Err(missing_ref(
                    path,
                    &registry.profiles_path,
                    "profile",
                    id,
                    registry.profiles.profiles.keys(),
                ));
            }
        }
    }
    let workers = worker::resolve_plan_workers(path, &plan, &registry)?;
    for id in workers.values().map(|w| &w.decl.profile) {
        if !profiles.contains_key(id) {
            return Err(missing_ref(
                path,
                &registry.profiles_path,
                "profile",
                id,
                registry.profiles.profiles.keys(),
            ));
        }
    }
    let digest = plan_digest_with(&plan, &probes, &profiles, &workers)?;
    let inputs_digest = (plan.kind == PlanKind::Mission).then(|| worker::inputs_digest(&plan));
    Ok(LoadedPlan {
        path: path.to_path_buf(),
        doc: std::sync::Arc::new(doc),
        plan,
        registry,
        probes,
        profiles,
        workers,
        digest,
        inputs_digest,
        tree_dropped,
    })
}

/// A profile that cannot be resolved, as an input error on the profiles file.
pub fn extends_error(profiles_path: &Path, e: &extends::ExtendsError) -> Error {
    Error::input(profiles_path, e.message()).with_hint(format!(
        "{}; `nexusmon registry-lint` lists every problem",
        e.hint()
    ))
}

fn missing_ref<'a>(
    plan: &Path,
    file: &Path,
    what: &str,
    id: &Id,
    known: impl Iterator<Item = &'a Id>,
) -> Error {
    let known: Vec<&str> = known.map(Id::as_str).collect();
    let mut e = Error::input(
        plan,
        format!("{what} `{id}` is not defined in {}", file.display()),
    );
    if let Some(s) = suggest::did_you_mean(id.as_str(), known.iter().copied()) {
        e = e.with_hint(format!("did you mean `{s}`?"));
    } else {
        e = e.with_hint(format!(
            "define it in {} or fix the reference",
            file.display()
        ));
    }
    e
}

/// Where each scenario's expectation is written in a loaded plan: scenario id → 1-based
/// (line, column) of its key under `scenarios` (controls: their entry in `controls`; a
/// mission's task scenarios: the task's key). For annotations that point at the plan.
pub fn expectation_lines(loaded: &LoadedPlan) -> BTreeMap<String, (usize, usize)> {
    let doc = &loaded.doc;
    let at = |ptr: &str| {
        let l = doc.locate(ptr);
        let span = if l.exact {
            l.key_span.unwrap_or(l.value_span)
        } else {
            l.value_span
        };
        (span.start.line as usize, span.start.col as usize)
    };
    let esc = crate::source::escape_pointer_token;
    let mut out = BTreeMap::new();
    for spec in loaded.plan.scenario_specs() {
        let explicit = loaded
            .plan
            .scenarios
            .get(&spec.profile_id)
            .is_some_and(|m| m.contains_key(&spec.probe_id));
        let ptr = if explicit {
            format!(
                "/scenarios/{}/{}",
                esc(spec.profile_id.as_str()),
                esc(spec.probe_id.as_str())
            )
        } else {
            let i = loaded
                .plan
                .controls
                .iter()
                .position(|c| *c == spec.probe_id)
                .unwrap_or(0);
            format!("/controls/{i}")
        };
        out.insert(spec.scenario_id.clone(), at(&ptr));
    }
    if let Some(m) = &loaded.plan.mission {
        for (task_id, t) in &m.tasks {
            out.insert(
                t.scenario_id(task_id),
                at(&format!("/mission/tasks/{}", esc(task_id.as_str()))),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `scenario_specs` as it was written before its list was sized up front and sorted
    /// unstably: the generated test's reference.
    fn scenario_specs_grown_and_stably_sorted(plan: &Plan) -> Vec<ScenarioSpec> {
        let mut out = Vec::new();
        for profile in &plan.profiles {
            let declared = plan.scenarios.get(profile);
            if let Some(map) = declared {
                for (probe, expected) in map {
                    out.push(ScenarioSpec {
                        scenario_id: format!("{profile}:{probe}"),
                        profile_id: profile.clone(),
                        probe_id: probe.clone(),
                        expected: *expected,
                        control: plan.controls.contains(probe),
                    });
                }
            }
            for probe in &plan.controls {
                if declared.is_some_and(|m| m.contains_key(probe)) {
                    continue;
                }
                out.push(ScenarioSpec {
                    scenario_id: format!("{profile}:{probe}"),
                    profile_id: profile.clone(),
                    probe_id: probe.clone(),
                    expected: Expectation::Allow,
                    control: true,
                });
            }
        }
        out.sort();
        out.dedup_by(|a, b| a.scenario_id == b.scenario_id);
        out
    }

    #[test]
    fn generated_plans_list_the_scenarios_the_stable_sort_listed() {
        // Seeded plans: profiles listed twice or not in the matrix, rows for profiles not
        // listed, controls repeated and overlapping the matrix (ids chosen from few names
        // so that every overlap happens).
        use crate::util::testrng::Rng;
        for seed in 0..200u64 {
            let mut r = Rng(seed);
            let name = |r: &mut Rng, k: &str| format!("{k}{}", r.below(7u32));
            let profiles: Vec<String> = (0..r.below(6u32)).map(|_| name(&mut r, "f")).collect();
            let mut scenarios = serde_json::Map::new();
            for _ in 0..r.below(6u32) {
                let row: serde_json::Map<String, serde_json::Value> = (0..r.below(9u32))
                    .map(|_| {
                        let e = if r.chance(50) { "allow" } else { "deny" };
                        (name(&mut r, "p"), e.into())
                    })
                    .collect();
                scenarios.insert(name(&mut r, "f"), row.into());
            }
            let controls: Vec<String> = (0..r.below(4u32)).map(|_| name(&mut r, "p")).collect();
            let plan: Plan = serde_json::from_value(serde_json::json!({
                "schema_version": 1, "plan_id": "m", "kind": "experiment", "registry_id": "r",
                "profiles": profiles, "scenarios": scenarios, "controls": controls,
            }))
            .unwrap();
            assert_eq!(
                plan.scenario_specs(),
                scenario_specs_grown_and_stably_sorted(&plan),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn the_digest_is_the_canonical_form_of_the_plan_as_a_json_tree() {
        // `plan_digest` serializes the plan straight into RFC 8785; it must give the bytes
        // the JSON tree of the plan (`$schema` removed) gives, for seeded plans with every
        // kind of member (a mission's typed inputs: floats, unicode, nesting).
        use crate::util::testrng::Rng;
        for seed in 0..60u64 {
            let mut r = Rng(seed);
            let mut scenarios = serde_json::Map::new();
            for f in 0..r.below(4u32) {
                let row: serde_json::Map<String, serde_json::Value> = (0..r.below(6u32))
                    .map(|p| {
                        (
                            format!("p{p}"),
                            if r.chance(50) { "allow" } else { "deny" }.into(),
                        )
                    })
                    .collect();
                scenarios.insert(format!("f{f}"), row.into());
            }
            let mut v = serde_json::json!({
                "schema_version": 1, "plan_id": "m", "kind": "experiment", "registry_id": "r",
                "profiles": ["f0", "f1"], "scenarios": scenarios,
                "variables": {"ZED": "é\u{1F600}", "A": "x"},
                "execution": {"jobs": r.below(9u32) + 1, "retries": r.below(3u32)},
            });
            if r.chance(50) {
                v["$schema"] = "../../schemas/plan.schema.json".into();
            }
            if r.chance(50) {
                v["kind"] = "mission".into();
                v["mission"] = serde_json::json!({
                    "objective": "o", "category": "forge", "rank": "C",
                    "scores": {"compute_cost": 1, "maintainability": 2, "attention": 3,
                               "economic_value": 4, "trust": 5, "prediction_confidence": 6},
                    "requested_by": "me",
                    "tasks": {"t": {"worker": "w", "profile": "f0",
                                    "inputs": {"n": 1.5e-7, "big": 12_345_678_901_234_567_u64, "s": "\u{7f}", "o": {"b": [1, -2.25, null]}}}},
                });
            }
            let plan: Plan = serde_json::from_value(v).unwrap();
            let mut tree = serde_json::to_value(&plan).unwrap();
            tree.as_object_mut().unwrap().remove("$schema");
            let want = Digest::both_of(
                &crate::util::json::canonical(&serde_json::json!({
                    "digest_version": DIGEST_VERSION,
                    "plan": tree,
                    "probes": {},
                    "profiles": {},
                    "registry_id": "r",
                }))
                .unwrap(),
            );
            let got = plan_digest(&plan, &BTreeMap::new(), &BTreeMap::new()).unwrap();
            assert_eq!(got, want, "seed {seed}: {plan:?}");
        }
    }

    /// `base` with up to two of its values (seeded places: after a `: `) replaced by what
    /// `draw` gives (the next scalar token, up to `,` `}` `]`, replaced; before an object or
    /// array, inserted).
    fn values_replaced(
        base: &str,
        r: &mut crate::util::testrng::Rng,
        draw: &mut dyn FnMut(&mut crate::util::testrng::Rng) -> String,
    ) -> String {
        let spots: Vec<usize> = base.match_indices(": ").map(|(i, _)| i + 2).collect();
        let mut text = base.to_string();
        for _ in 0..r.below(3u32) {
            let at = *r.pick(&spots);
            if at >= text.len() {
                continue;
            }
            let rest = &text[at..];
            let len = if rest.starts_with(['{', '[']) {
                0
            } else {
                rest.find([',', '}', ']']).unwrap_or(0)
            };
            let with = draw(r);
            text.replace_range(at..at + len, &with);
        }
        text
    }

    #[test]
    fn a_plan_read_from_the_tree_is_the_plan_read_from_its_value() {
        // `load_plan` deserializes from the spanned tree (no JSON tree of the matrix): the
        // same plan, or the same error at the same pointer, as through the document's
        // value, for seeded plans with values of the wrong type put anywhere, enums
        // written as one-key maps, keys written twice, unknown keys.
        use crate::source::Document;
        use crate::util::testrng::Rng;
        const WRONG: [&str; 10] = [
            "null",
            "7",
            "-1",
            "2.5",
            "\"x\"",
            "[]",
            "[1, \"a\"]",
            "{}",
            "{\"allow\": null}",
            "true",
        ];
        let base = r#"{"schema_version": 1, "plan_id": "m", "kind": "mission",
            "registry_id": "r", "profiles": ["f0", "f1"], "controls": ["c"],
            "scenarios": {"f0": {"p0": "allow", "p1": "deny"}, "f1": {"p1": "allow"}},
            "lanes": {"baseline": false, "scenario": true},
            "execution": {"jobs": 2, "timeout_ms": 100, "retries": 1, "isolation": "process-group"},
            "variables": {"A": "x"},
            "mission": {"objective": "o", "category": "forge", "rank": "C",
              "scores": {"compute_cost": 1, "maintainability": 2, "attention": 3,
                         "economic_value": 4, "trust": 5, "prediction_confidence": 6},
              "requested_by": "me",
              "tasks": {"t": {"probe": "p0", "profile": "f0", "expect": "deny", "depends_on": ["u"]},
                        "u": {"worker": "w", "profile": "f1", "inputs": {"n": 1.5, "o": {"k": [1]}}}}}}"#;
        let (mut oks, mut errs) = (0, 0);
        for seed in 0..400u64 {
            let mut r = Rng(seed);
            let mut text = values_replaced(base, &mut r, &mut |r| match r.below(4u32) {
                0 => "\"allow\"".to_string(),
                1 => "{\"deny\": null}".to_string(),
                _ => (*r.pick(&WRONG)).to_string(),
            });
            if r.chance(20) {
                text = text.replacen("\"profiles\"", "\"bogus\": 1, \"profiles\"", 1);
            }
            if r.chance(20) {
                text = text.replacen("\"p1\": \"deny\"", "\"p1\": 5, \"p1\": \"deny\"", 1);
            }
            let Ok(doc) = Document::parse_plan("p.json", text.clone()) else {
                continue;
            };
            let from_value = doc.deserialize::<Plan>();
            let from_tree = doc.deserialize_tree::<Plan>();
            oks += usize::from(from_value.is_ok());
            errs += usize::from(from_value.is_err());
            assert_eq!(from_tree, from_value, "seed {seed}:\n{text}");
        }
        assert!(oks > 20 && errs > 100, "{oks} plans read, {errs} refused");
    }

    #[test]
    fn registry_files_read_from_the_tree_are_the_files_read_from_the_value() {
        // `load_typed` (the registry's probes, profiles and workers files) deserializes
        // from the spanned tree: the same file, or the same error at the same pointer, as
        // through the document's value, for the repository's registry files with seeded
        // values of the wrong type put anywhere, enums written as one-key maps, keys
        // written twice, unknown keys.
        use crate::model::worker::WorkersFile;
        use crate::source::Document;
        use crate::util::testrng::Rng;
        const WRONG: [&str; 12] = [
            "null",
            "7",
            "-1",
            "2.5",
            "\"x\"",
            "[]",
            "[1, \"a\"]",
            "{}",
            "{\"read\": null}",
            "true",
            "\"file-read\"",
            "[\"read\", \"exec\"]",
        ];
        fn same<T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
            doc: &Document,
            what: &str,
        ) -> bool {
            let from_value = doc.deserialize::<T>();
            let from_tree = doc.deserialize_tree::<T>();
            assert_eq!(from_tree, from_value, "{what}:\n{}", doc.text);
            from_value.is_ok()
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("registry");
        let files = [
            "linux-core/probes.json",
            "linux-core/profiles.json",
            "missions/probes.json",
            "missions/profiles.json",
            "workers/probes.json",
            "workers/profiles.json",
            "workers/workers.json",
        ];
        let (mut oks, mut errs) = (0, 0);
        for (fi, rel) in files.iter().enumerate() {
            let base = std::fs::read_to_string(root.join(rel)).unwrap();
            for seed in 0..150u64 {
                let mut r = Rng(seed * 31 + fi as u64);
                let mut text =
                    values_replaced(&base, &mut r, &mut |r| (*r.pick(&WRONG)).to_string());
                if r.chance(15) {
                    text =
                        text.replacen("\"schema_version\"", "\"bogus\": 1, \"schema_version\"", 1);
                }
                if r.chance(15) {
                    // A key written twice: the later one wins in both.
                    if let Some(i) = text.find("\"description\": ") {
                        text.insert_str(i, "\"description\": 5, ");
                    }
                }
                let Ok(doc) = Document::parse(root.join(rel), text) else {
                    continue;
                };
                let ok = if rel.ends_with("probes.json") {
                    same::<crate::model::ProbesFile>(&doc, rel)
                } else if rel.ends_with("profiles.json") {
                    same::<crate::model::ProfilesFile>(&doc, rel)
                } else {
                    same::<WorkersFile>(&doc, rel)
                };
                oks += usize::from(ok);
                errs += usize::from(!ok);
            }
            // The unmodified file reads through `load_typed` as through the value.
            let doc = Document::load(&root.join(rel)).unwrap();
            if rel.ends_with("probes.json") {
                let (_, t): (_, crate::model::ProbesFile) = load_typed(&root.join(rel)).unwrap();
                assert_eq!(Ok(t), doc.deserialize());
            } else if rel.ends_with("profiles.json") {
                let (_, t): (_, crate::model::ProfilesFile) = load_typed(&root.join(rel)).unwrap();
                assert_eq!(Ok(t), doc.deserialize());
            } else {
                let (_, t): (_, WorkersFile) = load_typed(&root.join(rel)).unwrap();
                assert_eq!(Ok(t), doc.deserialize());
            }
        }
        assert!(oks > 150 && errs > 150, "{oks} files read, {errs} refused");
    }

    #[test]
    fn scenario_pairs_visit_exactly_the_listed_scenarios() {
        // Seeded plans: profiles listed twice or not at all in `scenarios`, matrix rows of
        // profiles that are not listed, controls that a row also names.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut below = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..200 {
            let profiles: Vec<String> = (0..below(4)).map(|_| format!("f{}", below(5))).collect();
            let mut scenarios = serde_json::Map::new();
            for f in 0..5 {
                if below(2) == 0 {
                    let row: serde_json::Map<String, serde_json::Value> = (0..below(5))
                        .map(|_| (format!("p{}", below(6)), "deny".into()))
                        .collect();
                    scenarios.insert(format!("f{f}"), row.into());
                }
            }
            let controls: BTreeSet<String> =
                (0..below(3)).map(|_| format!("p{}", below(6))).collect();
            let plan: Plan = serde_json::from_value(serde_json::json!({
                "schema_version": 1, "plan_id": "m", "kind": "experiment", "registry_id": "r",
                "profiles": profiles, "scenarios": scenarios, "controls": controls,
            }))
            .unwrap();
            let pairs: BTreeSet<String> = plan
                .scenario_pairs()
                .map(|(f, p)| format!("{f}:{p}"))
                .collect();
            let specs: BTreeSet<String> = plan
                .scenario_specs()
                .into_iter()
                .map(|s| s.scenario_id)
                .collect();
            assert_eq!(pairs, specs, "{plan:?}");
        }
    }
}
