//! Mission task graphs: checks for lint, topological layers for the
//! runner, the tasks a failure skips, and a mission's tasks as scenarios (with their
//! `expected_matrix.json` entries), all derived from the loaded plan.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::load::{LoadedPlan, ScenarioSpec};
use crate::model::Id;
use crate::model::plan::Expectation;
use crate::model::plan::{Mission, Plan};
use crate::model::results::ExpectedEntry;
use crate::{Error, Result};

/// Tasks in dependency order: each layer's tasks depend only on earlier layers, so a layer
/// may run in parallel. Tasks within a layer are sorted by id. A cycle is an error naming
/// it (`a → b → a`); so is a dependency on a task that does not exist.
pub fn order(m: &Mission) -> Result<Vec<Vec<Id>>> {
    for (id, t) in &m.tasks {
        if let Some(d) = t.depends_on.iter().find(|d| !m.tasks.contains_key(*d)) {
            return Err(Error::usage(format!(
                "mission task `{id}` depends on `{d}`, which is not a task"
            ))
            .with_hint(format!("define task `{d}` or remove it from `depends_on`")));
        }
    }
    let mut indegree: BTreeMap<&Id, usize> = m
        .tasks
        .iter()
        .map(|(id, t)| (id, t.depends_on.iter().collect::<BTreeSet<_>>().len()))
        .collect();
    let dependents = dependents_map(m);
    let mut layers = Vec::new();
    let mut ready: Vec<&Id> = indegree
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut done = 0;
    while !ready.is_empty() {
        ready.sort();
        let mut next = Vec::new();
        for id in &ready {
            for d in dependents.get(*id).into_iter().flatten() {
                if let Some(n) = indegree.get_mut(d) {
                    *n -= 1;
                    if *n == 0 {
                        next.push(*d);
                    }
                }
            }
        }
        done += ready.len();
        layers.push(ready.iter().map(|id| (*id).clone()).collect());
        ready = next;
    }
    if done < m.tasks.len() {
        let cycle = find_cycle(m).unwrap_or_default();
        return Err(Error::usage(format!(
            "mission tasks form a cycle: {}",
            cycle.iter().map(Id::as_str).collect::<Vec<_>>().join(" → ")
        ))
        .with_hint("remove one of these `depends_on` entries"));
    }
    Ok(layers)
}

fn dependents_map(m: &Mission) -> BTreeMap<&Id, BTreeSet<&Id>> {
    let mut out: BTreeMap<&Id, BTreeSet<&Id>> = BTreeMap::new();
    for (id, t) in &m.tasks {
        for d in &t.depends_on {
            out.entry(d).or_default().insert(id);
        }
    }
    out
}

/// A cycle as a closed path `a → b → … → a`, found by depth-first search in id order.
pub fn find_cycle(m: &Mission) -> Option<Vec<Id>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit<'a>(
        m: &'a Mission,
        id: &'a Id,
        marks: &mut BTreeMap<&'a Id, Mark>,
        stack: &mut Vec<&'a Id>,
    ) -> Option<Vec<Id>> {
        marks.insert(id, Mark::Active);
        stack.push(id);
        let mut deps: Vec<&Id> = m
            .tasks
            .get(id)
            .map(|t| t.depends_on.iter().collect())
            .unwrap_or_default();
        deps.sort();
        for d in deps {
            match marks.get(d).copied().unwrap_or(Mark::New) {
                Mark::Active => {
                    let start = stack.iter().position(|s| *s == d).unwrap_or(0);
                    let mut cycle: Vec<Id> = stack[start..].iter().map(|s| (*s).clone()).collect();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                Mark::New if m.tasks.contains_key(d) => {
                    if let Some(c) = visit(m, d, marks, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        marks.insert(id, Mark::Done);
        None
    }
    let mut marks: BTreeMap<&Id, Mark> = m.tasks.keys().map(|k| (k, Mark::New)).collect();
    for id in m.tasks.keys() {
        if marks.get(id) == Some(&Mark::New) {
            let mut stack = Vec::new();
            if let Some(c) = visit(m, id, &mut marks, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// Every task that depends on `task`, directly or not (sorted).
pub fn dependents_of(m: &Mission, task: &Id) -> BTreeSet<Id> {
    skipped_after(m, &BTreeSet::from([task.clone()]))
}

/// The tasks to skip once `failed` tasks failed: every transitive dependent not itself in
/// `failed` (sorted).
pub fn skipped_after(m: &Mission, failed: &BTreeSet<Id>) -> BTreeSet<Id> {
    let dependents = dependents_map(m);
    let mut out = BTreeSet::new();
    let mut todo: Vec<&Id> = failed.iter().collect();
    while let Some(id) = todo.pop() {
        for d in dependents.get(id).into_iter().flatten() {
            if !failed.contains(*d) && out.insert((*d).clone()) {
                todo.push(d);
            }
        }
    }
    out
}

/// The scenarios a mission runs: `<profile>:<probe>` of each task, sorted.
pub fn task_scenarios(m: &Mission) -> BTreeSet<String> {
    m.tasks.iter().map(|(id, t)| t.scenario_id(id)).collect()
}

/// A problem with a mission's task graph, for `plan-lint`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MissionFinding {
    /// Stable code: `mission-no-tasks`, `mission-dangling-dependency`,
    /// `mission-self-dependency`, `mission-cycle`, `mission-task-profile-not-in-plan`,
    /// `mission-duplicate-task`, `mission-task-scenario-conflict`.
    pub code: &'static str,
    /// JSON pointer of the offending value.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// Every problem with `plan`'s mission block (empty for experiments), sorted by pointer.
/// References to probes and profiles the registry lacks are the general reference check's
/// business; this reports what only a mission can get wrong.
pub fn check(plan: &Plan) -> Vec<MissionFinding> {
    let Some(m) = &plan.mission else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if m.tasks.is_empty() {
        out.push(MissionFinding {
            code: "mission-no-tasks",
            pointer: "/mission/tasks".into(),
            message: "the mission has no tasks: nothing would run".into(),
            hint: Some("add tasks, each a probe under a profile".into()),
        });
    }
    let profiles: BTreeSet<&Id> = plan.profiles.iter().collect();
    for (id, t) in &m.tasks {
        if !profiles.contains(&t.profile) {
            out.push(MissionFinding {
                code: "mission-task-profile-not-in-plan",
                pointer: format!("/mission/tasks/{id}/profile"),
                message: format!(
                    "task `{id}` runs under profile `{}`, which is not in the plan's `profiles`",
                    t.profile
                ),
                hint: Some(format!(
                    "add `{}` to `profiles` or pick one of them",
                    t.profile
                )),
            });
        }
        for (i, d) in t.depends_on.iter().enumerate() {
            let pointer = format!("/mission/tasks/{id}/depends_on/{i}");
            if d == id {
                out.push(MissionFinding {
                    code: "mission-self-dependency",
                    pointer,
                    message: format!("task `{id}` depends on itself"),
                    hint: Some("remove it from its own `depends_on`".into()),
                });
            } else if !m.tasks.contains_key(d) {
                let known: Vec<&str> = m.tasks.keys().map(Id::as_str).collect();
                out.push(MissionFinding {
                    code: "mission-dangling-dependency",
                    pointer,
                    message: format!("task `{id}` depends on `{d}`, which is not a task"),
                    hint: crate::util::suggest::did_you_mean(d.as_str(), known.iter().copied())
                        .map(|s| format!("did you mean `{s}`?")),
                });
            }
        }
    }
    let mut pairs: BTreeMap<(&Id, &Id), &Id> = BTreeMap::new();
    for (id, t) in &m.tasks {
        // Worker tasks are one row per task; a task without a probe is lint's business.
        let Some(probe) = t.probe.as_ref() else {
            continue;
        };
        match pairs.get(&(&t.profile, probe)) {
            Some(first) => out.push(MissionFinding {
                code: "mission-duplicate-task",
                pointer: format!("/mission/tasks/{id}"),
                message: format!(
                    "tasks `{first}` and `{id}` both run probe `{probe}` under profile `{}`",
                    t.profile
                ),
                hint: Some(format!(
                    "each task is one scenario `{}:{probe}`: merge the two tasks",
                    t.profile
                )),
            }),
            None => {
                pairs.insert((&t.profile, probe), id);
            }
        }
        let declared = plan
            .scenarios
            .get(&t.profile)
            .and_then(|probes| probes.get(probe))
            .copied()
            .or_else(|| {
                plan.controls
                    .contains(probe)
                    .then_some(crate::model::plan::Expectation::Allow)
            });
        let expect = t.expect.unwrap_or(crate::model::plan::Expectation::Allow);
        if let Some(d) = declared
            && d != expect
        {
            out.push(MissionFinding {
                code: "mission-task-scenario-conflict",
                pointer: format!("/mission/tasks/{id}"),
                message: format!(
                    "task `{id}` expects `{}` of `{}:{probe}`, but the plan's scenarios expect `{}`",
                    expect.as_str(),
                    t.profile,
                    d.as_str()
                ),
                hint: Some(
                    "make the task's `expect` and the scenario's expectation agree, or drop the scenario"
                        .into(),
                ),
            });
        }
    }
    if !out.iter().any(|f| f.code == "mission-self-dependency")
        && let Some(cycle) = find_cycle(m)
    {
        let first = &cycle[0];
        let to = &cycle[1];
        let i = m.tasks[first]
            .depends_on
            .iter()
            .position(|d| d == to)
            .unwrap_or(0);
        out.push(MissionFinding {
            code: "mission-cycle",
            pointer: format!("/mission/tasks/{first}/depends_on/{i}"),
            message: format!(
                "mission tasks form a cycle: {}",
                cycle.iter().map(Id::as_str).collect::<Vec<_>>().join(" → ")
            ),
            hint: Some("remove one of these `depends_on` entries".into()),
        });
    }
    out.sort_by(|a, b| a.pointer.cmp(&b.pointer).then(a.code.cmp(b.code)));
    out
}

/// A mission task's place in the task graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMeta {
    /// The task id.
    pub task_id: String,
    /// The tasks it runs after (sorted, deduplicated).
    pub depends_on: Vec<String>,
    /// The worker it runs (worker tasks only).
    pub worker: Option<String>,
}

/// A mission's tasks as scenarios (`<profile>:<probe>`, expectation `expect`, default
/// `allow`) with their place in the graph, sorted by scenario id. Empty for experiments.
/// Two tasks with the same (profile, probe) are refused: each task is one scenario row.
pub fn task_specs(loaded: &LoadedPlan) -> Result<Vec<(ScenarioSpec, TaskMeta)>> {
    let Some(m) = &loaded.plan.mission else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(ScenarioSpec, TaskMeta)> = Vec::with_capacity(m.tasks.len());
    for (id, t) in &m.tasks {
        let scenario_id = t.scenario_id(id);
        let Some(unit) = t.unit() else {
            return Err(Error::input(
                &loaded.path,
                format!("mission task `{id}` names neither a probe nor a worker"),
            )
            .with_hint("set \"probe\" or \"worker\""));
        };
        if let Some((_, other)) = out.iter().find(|(s, _)| s.scenario_id == scenario_id) {
            return Err(Error::input(
                &loaded.path,
                format!(
                    "mission tasks `{}` and `{id}` both run probe `{unit}` under profile `{}`",
                    other.task_id, t.profile
                ),
            )
            .with_hint("each task is one scenario `<profile>:<probe>`: merge the two tasks"));
        }
        let mut deps: Vec<String> = t.depends_on.iter().map(ToString::to_string).collect();
        deps.sort();
        deps.dedup();
        out.push((
            ScenarioSpec {
                scenario_id,
                profile_id: t.profile.clone(),
                probe_id: unit.clone(),
                expected: t.expect.unwrap_or(Expectation::Allow),
                control: false,
            },
            TaskMeta {
                task_id: id.to_string(),
                depends_on: deps,
                worker: t.worker.as_ref().map(ToString::to_string),
            },
        ));
    }
    out.sort_by(|a, b| a.0.scenario_id.cmp(&b.0.scenario_id));
    Ok(out)
}

/// The `expected_matrix.json` entry of one scenario (with its task, for missions).
pub fn expected_entry(spec: &ScenarioSpec, task: Option<&TaskMeta>) -> ExpectedEntry {
    ExpectedEntry {
        profile_id: spec.profile_id.to_string(),
        probe_id: spec.probe_id.to_string(),
        expected: spec.expected,
        control: spec.control,
        task_id: task.map(|t| t.task_id.clone()),
        depends_on: task.map(|t| t.depends_on.clone()).unwrap_or_default(),
    }
}

/// Every scenario of a plan: an experiment's scenario specs; for a mission, its tasks plus
/// any `scenarios`/`controls` it declares (those run outside the task graph). A declared
/// scenario that is also a task is one row, and their expectations must agree.
pub fn all_specs(loaded: &LoadedPlan) -> Result<Vec<ScenarioSpec>> {
    let mut all = loaded.plan.scenario_specs();
    let tasks = task_specs(loaded)?;
    if tasks.is_empty() {
        // `scenario_specs` is sorted already.
        return Ok(all);
    }
    for (spec, meta) in tasks {
        match all.iter().find(|s| s.scenario_id == spec.scenario_id) {
            Some(declared) if declared.expected != spec.expected => {
                return Err(Error::input(
                    &loaded.path,
                    format!(
                        "task `{}` expects `{}` of `{}`, but `scenarios` expects `{}`",
                        meta.task_id,
                        spec.expected.as_str(),
                        spec.scenario_id,
                        declared.expected.as_str()
                    ),
                )
                .with_hint("make the task's `expect` and the scenario's expectation agree, or drop the scenario"));
            }
            Some(_) => {}
            None => all.push(spec),
        }
    }
    all.sort();
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::plan::{Category, Rank, Scores, Task};

    fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    fn mission(edges: &[(&str, &[&str])]) -> Mission {
        Mission {
            objective: "o".into(),
            category: Category::Forge,
            rank: Rank::E,
            scores: Scores {
                compute_cost: 0,
                maintainability: 0,
                attention: 0,
                economic_value: 0,
                trust: 0,
                prediction_confidence: 0,
            },
            requested_by: "rita".into(),
            tasks: edges
                .iter()
                .map(|(t, deps)| {
                    (
                        id(t),
                        Task {
                            probe: Some(id(t)),
                            worker: None,
                            inputs: BTreeMap::new(),
                            profile: id("p"),
                            depends_on: deps.iter().map(|d| id(d)).collect(),
                            expect: None,
                            notes: None,
                        },
                    )
                })
                .collect(),
        }
    }

    fn names(layers: &[Vec<Id>]) -> Vec<Vec<&str>> {
        layers
            .iter()
            .map(|l| l.iter().map(Id::as_str).collect())
            .collect()
    }

    #[test]
    fn layers_in_dependency_order() {
        let m = mission(&[
            ("build", &["fetch"]),
            ("fetch", &[]),
            ("lint", &["fetch"]),
            ("ship", &["build", "lint"]),
            ("notes", &[]),
        ]);
        assert_eq!(
            names(&order(&m).unwrap()),
            vec![vec!["fetch", "notes"], vec!["build", "lint"], vec!["ship"]]
        );
    }

    #[test]
    fn duplicate_dependencies_do_not_stall() {
        let m = mission(&[("a", &[]), ("b", &["a", "a"])]);
        assert_eq!(names(&order(&m).unwrap()), vec![vec!["a"], vec!["b"]]);
    }

    #[test]
    fn a_cycle_is_named() {
        let m = mission(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &[])]);
        let e = order(&m).unwrap_err();
        assert_eq!(e.message(), "mission tasks form a cycle: a → c → b → a");
        let f = check(&Plan {
            mission: Some(m),
            ..plan()
        });
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].code, "mission-cycle");
        assert_eq!(f[0].pointer, "/mission/tasks/a/depends_on/0");
    }

    #[test]
    fn dangling_and_self_dependencies_and_profiles() {
        let mut m = mission(&[("a", &["a"]), ("b", &["aa"])]);
        m.tasks.get_mut("b").unwrap().profile = id("other");
        let e = order(&m).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Usage, "{e}");
        assert!(e.message().contains("`aa`, which is not a task"), "{e}");
        let f = check(&Plan {
            mission: Some(m),
            ..plan()
        });
        let codes: Vec<&str> = f.iter().map(|f| f.code).collect();
        assert_eq!(
            codes,
            vec![
                "mission-self-dependency",
                "mission-dangling-dependency",
                "mission-task-profile-not-in-plan"
            ]
        );
        assert_eq!(f[1].hint.as_deref(), Some("did you mean `a`?"));
    }

    #[test]
    fn a_failure_skips_its_transitive_dependents() {
        let m = mission(&[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &["b"]),
            ("d", &[]),
            ("e", &["d", "b"]),
        ]);
        let s: Vec<String> = dependents_of(&m, &id("a"))
            .into_iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(s, vec!["b", "c", "e"]);
        let s = skipped_after(&m, &BTreeSet::from([id("b"), id("d")]));
        let s: Vec<&str> = s.iter().map(Id::as_str).collect();
        assert_eq!(s, vec!["c", "e"]);
        assert_eq!(task_scenarios(&m).len(), 5);
    }

    #[test]
    fn two_tasks_on_one_scenario_and_conflicting_expectations_are_findings() {
        let mut m = mission(&[("a", &[]), ("b", &["a"]), ("c", &[])]);
        m.tasks.get_mut("b").unwrap().probe = Some(id("a"));
        m.tasks.get_mut("c").unwrap().expect = Some(crate::model::plan::Expectation::Deny);
        let mut p = plan();
        p.mission = Some(m);
        p.scenarios.insert(
            id("p"),
            [(id("c"), crate::model::plan::Expectation::Allow)]
                .into_iter()
                .collect(),
        );
        let f = check(&p);
        let codes: Vec<(&str, &str)> = f.iter().map(|f| (f.code, f.pointer.as_str())).collect();
        assert_eq!(
            codes,
            vec![
                ("mission-duplicate-task", "/mission/tasks/b"),
                ("mission-task-scenario-conflict", "/mission/tasks/c"),
            ]
        );
        assert!(
            f[0].message.contains("tasks `a` and `b`"),
            "{}",
            f[0].message
        );
        // Agreeing expectations are one row, not a conflict.
        p.scenarios
            .get_mut("p")
            .unwrap()
            .insert(id("c"), crate::model::plan::Expectation::Deny);
        assert_eq!(check(&p).len(), 1);
    }

    fn plan() -> Plan {
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "plan_id": "m", "kind": "mission", "registry_id": "r",
            "profiles": ["p"]
        }))
        .unwrap()
    }
}
