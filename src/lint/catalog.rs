//! What plan-data a project has: plans, registries, their probes and profiles, and which
//! plans use an entry. The listing commands (`list-plans`, `list-registries`,
//! `list-probes`, `list-profiles`, `describe-probe`, `describe-profile`) render these rows.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::load::Registry;
use crate::model::{Plan, PlanKind};
use crate::source::Document;
use crate::util::{fsx, suggest};
use crate::{Error, Result};

/// One plan in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct PlanRow {
    /// The plan's id (as written, even if the plan does not load).
    pub plan_id: Option<String>,
    /// `experiment` or `mission`.
    pub kind: Option<PlanKind>,
    /// The registry it uses.
    pub registry_id: Option<String>,
    /// Number of profiles listed.
    pub profiles: usize,
    /// Number of scenarios selected (profiles × their probes, plus controls).
    pub scenarios: usize,
    /// Number of mission tasks.
    pub tasks: usize,
    /// What the plan is for.
    pub description: Option<String>,
    /// The plan file (absolute).
    pub path: PathBuf,
    /// Why the plan does not load, if it does not (`plan-lint` says more).
    pub error: Option<String>,
}

/// Read a plan leniently: the rows of a listing never fail because one plan is broken.
pub fn read_plan(path: &Path) -> (Option<Plan>, PlanRow) {
    let mut row = PlanRow {
        plan_id: None,
        kind: None,
        registry_id: None,
        profiles: 0,
        scenarios: 0,
        tasks: 0,
        description: None,
        path: path.to_path_buf(),
        error: None,
    };
    let doc = match Document::load_plan(path) {
        Ok(d) => d,
        Err(e) => {
            row.error = Some(e.message().to_string());
            return (None, row);
        }
    };
    let v = doc.value();
    row.plan_id = v
        .get("plan_id")
        .and_then(|x| x.as_str())
        .map(str::to_string);
    row.registry_id = v
        .get("registry_id")
        .and_then(|x| x.as_str())
        .map(str::to_string);
    match doc.deserialize::<Plan>() {
        Ok(plan) => {
            row.kind = Some(plan.kind);
            row.profiles = plan.profiles.len();
            row.scenarios = plan.scenario_specs().len();
            row.tasks = plan.mission.as_ref().map_or(0, |m| m.tasks.len());
            row.description.clone_from(&plan.description);
            (Some(plan), row)
        }
        Err(e) => {
            row.error = Some(if e.pointer.is_empty() {
                e.message
            } else {
                format!("{} at {}", e.message, e.pointer)
            });
            (None, row)
        }
    }
}

/// The plans under `paths` (default: `<root>/plans`), sorted by path.
pub fn plans(paths: &[PathBuf]) -> Result<Vec<(Option<Plan>, PlanRow)>> {
    let files = super::discover_plans(paths)?;
    Ok(files.iter().map(|f| read_plan(f)).collect())
}

/// One registry in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryRow {
    /// The registry id (its directory name).
    pub registry_id: String,
    /// Number of probes (if the registry loads).
    pub probes: Option<usize>,
    /// Number of profiles.
    pub profiles: Option<usize>,
    /// What the registry holds.
    pub description: Option<String>,
    /// `registry/<id>/` (absolute).
    pub path: PathBuf,
    /// Why it does not load, if it does not.
    pub error: Option<String>,
}

/// The registry directories under `<root>/registry`, sorted by id.
pub fn registry_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join("registry");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    Ok(fsx::read_dir_sorted(&dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect())
}

/// Every registry of the project.
pub fn registries(root: &Path) -> Result<Vec<RegistryRow>> {
    let mut out = Vec::new();
    for dir in registry_dirs(root)? {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let row = match Registry::load(&dir) {
            Ok(r) => RegistryRow {
                registry_id: id,
                probes: Some(r.probes.probes.len()),
                profiles: Some(r.profiles.profiles.len()),
                description: r
                    .probes
                    .description
                    .clone()
                    .or_else(|| r.profiles.description.clone()),
                path: dir,
                error: None,
            },
            Err(e) => RegistryRow {
                registry_id: id,
                probes: None,
                profiles: None,
                description: None,
                path: dir,
                error: Some(e.to_string()),
            },
        };
        out.push(row);
    }
    Ok(out)
}

/// The registry `id`, or by default the only registry, else `linux-core`. An unknown id is
/// a usage error with a suggestion; a broken registry is an input error pointing at
/// `registry-lint`.
pub fn select_registry(root: &Path, id: Option<&str>) -> Result<Registry> {
    let dirs = registry_dirs(root)?;
    let names: Vec<String> = dirs
        .iter()
        .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let chosen = match id {
        Some(id) => id.to_string(),
        None => match names.as_slice() {
            [] => {
                return Err(Error::usage(format!(
                    "no registry under {}",
                    root.join("registry").display()
                ))
                .with_hint("create registry/<id>/probes.json and profiles.json, or pass --root"));
            }
            [only] => only.clone(),
            many if many.iter().any(|n| n == "linux-core") => "linux-core".to_string(),
            many => {
                return Err(
                    Error::usage("several registries; say which with --registry")
                        .with_hint(format!("registries: {}", many.join(", "))),
                );
            }
        },
    };
    if !names.contains(&chosen) {
        let mut e = Error::usage(format!("registry `{chosen}` not found"));
        e = match suggest::did_you_mean(&chosen, names.iter().map(String::as_str)) {
            Some(s) => e.with_hint(format!("did you mean `{s}`?")),
            None if names.is_empty() => e.with_hint("the project has no registry/ directory"),
            None => e.with_hint(format!("registries: {}", names.join(", "))),
        };
        return Err(e);
    }
    let dir = root.join("registry").join(&chosen);
    Registry::load(&dir).map_err(|e| {
        let msg = e.to_string();
        Error::input(&dir, format!("registry `{chosen}` does not load: {msg}")).with_hint(format!(
            "`nexusmon registry-lint {}` lists every problem",
            dir.display()
        ))
    })
}

/// A plan that uses a registry entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct User {
    /// The plan's id.
    pub plan_id: String,
    /// The plan file (absolute).
    pub path: PathBuf,
}

/// Which kind of entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A probe.
    Probe,
    /// A profile.
    Profile,
}

/// The plans under `<root>/plans` of registry `registry_id` that use entry `id`.
pub fn users(root: &Path, registry_id: &str, entry: Entry, id: &str) -> Result<Vec<User>> {
    let dir = root.join("plans");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (plan, row) in plans(&[dir])? {
        let Some(plan) = plan else { continue };
        if plan.registry_id.as_str() != registry_id {
            continue;
        }
        let uses = match entry {
            Entry::Probe => plan.referenced_probes().iter().any(|p| p.as_str() == id),
            Entry::Profile => plan.referenced_profiles().iter().any(|p| p.as_str() == id),
        };
        if uses {
            out.push(User {
                plan_id: plan.plan_id.to_string(),
                path: row.path,
            });
        }
    }
    out.sort();
    Ok(out)
}

/// The usage error for an unknown probe or profile id, with a suggestion.
pub fn unknown_entry<'a>(
    what: &str,
    id: &str,
    registry: &str,
    known: impl Iterator<Item = &'a str>,
) -> Error {
    let known: Vec<&str> = known.collect();
    let e = Error::usage(format!(
        "{what} `{id}` is not defined in registry `{registry}`"
    ));
    match suggest::did_you_mean(id, known.iter().copied()) {
        Some(s) => e.with_hint(format!("did you mean `{s}`?")),
        None => e.with_hint(format!(
            "`nexusmon list-{what}s --registry {registry}` lists them"
        )),
    }
}
