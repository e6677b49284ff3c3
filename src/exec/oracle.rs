//! Stage 4, the oracle lane: a static prediction for every scenario from the same compiled
//! profile the kernel enforces (`sandbox::oracle`), each in its own scratch directory with
//! its own fixtures (a mission's tasks share `<scratch>/mission/oracle`). Nothing executes;
//! the verdicts and path witnesses go to `assemble` and their events are sent before the
//! executing lanes start.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::child;
use super::fixtures;
use super::seam::ScenarioRun;
use super::setup::RunSetup;
use crate::load::LoadedPlan;
use crate::model::registry::Driver;
use crate::model::results::{Lane, OracleVerdict, PathWitness, RunEvent};
use crate::sandbox::compile::{self, CompileContext, CompileHost, CompiledProfile};
pub use crate::sandbox::oracle::LastPrediction;
use crate::sandbox::oracle::{self, OracleInput};
use crate::sandbox::vars::Vars;

/// One scenario's oracle verdict and path witnesses (`None`: its profile was not compiled,
/// or the oracle lane is off).
pub type OracleOutput = Option<(OracleVerdict, Vec<PathWitness>)>;

/// The oracle lane of every scenario (indexed like `scenarios`), in parallel; all `None`
/// when the plan turns the lane off.
pub fn oracle_lane(
    setup: &RunSetup,
    loaded: &LoadedPlan,
    scenarios: &[ScenarioRun],
) -> Vec<OracleOutput> {
    if !loaded.plan.lanes.oracle {
        return scenarios.iter().map(|_| None).collect();
    }
    scenarios
        .par_iter()
        .map(|sc| oracle_one(setup, loaded, sc))
        .collect()
}

/// The oracle lane of one scenario (`None`: its profile was not compiled, or the lane is
/// off): what [`oracle_lane`] computes for each, for a run that streams its results.
pub fn oracle_one(setup: &RunSetup, loaded: &LoadedPlan, sc: &ScenarioRun) -> OracleOutput {
    let mut last = LastPrediction::default();
    if oracle_one_into(setup, loaded, sc, &mut last) {
        last.take()
    } else {
        None
    }
}

/// [`oracle_one`] into `last` (false: no verdict): the last prediction is reused when it
/// predicts the same ([`oracle::predict_reusing`]), so a run streaming its results keeps
/// one `LastPrediction` for its scenarios and reads each verdict from it.
pub fn oracle_one_into<'a>(
    setup: &'a RunSetup,
    loaded: &LoadedPlan,
    sc: &ScenarioRun,
    last: &mut LastPrediction<'a>,
) -> bool {
    if !loaded.plan.lanes.oracle {
        return false;
    }
    let Some(c) = setup.compiled.get(sc.spec.profile_id.as_str()) else {
        return false;
    };
    oracle_for(
        sc,
        c,
        &OracleEnv {
            scratch: &setup.scratch,
            base_vars: &setup.base_vars,
            clean: setup.clean,
            runner_home: setup.runner_home.as_deref(),
            runner_env: &setup.runner_env,
            host: &setup.host,
            profile: loaded.profiles.get(&sc.spec.profile_id),
            profiles_file: &loaded.registry.profiles_path,
        },
        last,
    );
    true
}

/// What the oracle needs besides the scenario and the compiled profile.
struct OracleEnv<'a> {
    scratch: &'a fixtures::Scratch,
    base_vars: &'a Vars,
    clean: bool,
    runner_home: Option<&'a str>,
    runner_env: &'a [(String, String)],
    host: &'a CompileHost,
    profile: Option<&'a crate::model::Profile>,
    profiles_file: &'a Path,
}

/// The oracle for one scenario, with its own scratch directory and fixtures, into `last`.
fn oracle_for<'c>(
    sc: &ScenarioRun,
    c: &'c CompiledProfile,
    env: &OracleEnv<'_>,
    last: &mut LastPrediction<'c>,
) {
    let OracleEnv {
        scratch,
        base_vars,
        clean,
        runner_home,
        runner_env,
        ..
    } = *env;
    // A scenario whose directory holds nothing (no fixtures) and whose profile does not
    // name it is predicted against one empty directory shared by the run (see
    // [`shared_empty_dir`]); any other gets its own.
    let own_dir =
        sc.task.is_some() || sc.worker.is_some() || !sc.probe.fixtures.is_empty() || c.per_child;
    let dir = if sc.task.is_some() {
        scratch.root().join("mission").join(Lane::Oracle.as_str())
    } else if own_dir {
        scratch.oracle_dir(sc.spec.profile_id.as_str(), sc.spec.probe_id.as_str())
    } else {
        scratch.root().join(Lane::Oracle.as_str()).join(EMPTY_DIR)
    };
    let dir_s = dir.to_string_lossy().into_owned();
    let home = if clean {
        dir_s.clone()
    } else {
        runner_home.map_or_else(|| dir_s.clone(), str::to_string)
    };
    let mut notes = Vec::new();
    // A worker task: its output directory and the checked copy of its executable, as the
    // scenario lane stages them (`${OUTPUT}`, `${WORKER_BIN}`).
    let (mut output, mut worker_dir) = (String::new(), String::new());
    if let (Some(run), Some(task)) = (&sc.worker, &sc.task) {
        let _ = crate::util::fsx::create_dir_all(&dir);
        match super::worker::stage(scratch.root(), &dir, Lane::Oracle, run, &task.task_id) {
            Ok(d) => {
                output = d.output.to_string_lossy().into_owned();
                worker_dir = d.bin_dir.to_string_lossy().into_owned();
            }
            Err((f, why)) => notes.push(format!(
                "the worker could not be staged for the oracle ({}): {why}",
                f.as_str()
            )),
        }
    }
    let mut overrides = vec![("SCRATCH", dir_s.as_str()), ("HOME", home.as_str())];
    if sc.worker.is_some() {
        overrides.push(("OUTPUT", output.as_str()));
        overrides.push(("WORKER_BIN", worker_dir.as_str()));
    }
    let vars = base_vars.with(&overrides).nested();
    if !own_dir {
        if let Err(e) = shared_empty_dir(&dir) {
            notes.push(format!(
                "the oracle's scratch directory could not be created: {e}"
            ));
        }
    } else if crate::util::fsx::create_dir_all(&dir).is_ok()
        && let Err(e) = fixtures::create_fixtures(&sc.probe, &vars, &dir)
    {
        notes.push(format!("fixtures could not be created for the oracle: {e}"));
    }
    // Rules on the child's scratch directory: compile again against the oracle's own
    // scratch directory, now that its fixtures exist (as the scenario lane does per child).
    let mut per_child = None;
    if let (true, Some(profile)) = (c.per_child, env.profile) {
        let ctx = CompileContext {
            host: env.host,
            vars: &vars,
            before_child: false,
        };
        match compile::compile(&c.profile_id, profile, env.profiles_file, &ctx) {
            Ok(x) => per_child = Some(x),
            Err(e) => notes.push(format!(
                "the profile could not be compiled for the oracle: {e}"
            )),
        }
    }
    let profile = per_child.as_ref().unwrap_or(c);
    let target = sc.probe.target.as_ref().and_then(|t| vars.expand(t).ok());
    let destination = sc
        .probe
        .destination
        .as_ref()
        .and_then(|t| vars.expand(t).ok());
    let program = if sc.probe.driver == Driver::Exec {
        let argv0 = sc
            .probe
            .argv
            .as_ref()
            .and_then(|a| a.first())
            .and_then(|a| vars.expand(a).ok());
        let path_var = if clean {
            profile.env.set.get("PATH").cloned().or_else(|| {
                profile
                    .env
                    .pass
                    .iter()
                    .any(|p| p == "PATH")
                    .then(|| {
                        runner_env
                            .iter()
                            .find(|(k, _)| k == "PATH")
                            .map(|(_, v)| v.clone())
                    })
                    .flatten()
            })
        } else {
            runner_env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone())
        };
        argv0.and_then(|a| child::which(&a, path_var.as_deref(), &dir))
    } else {
        None
    };
    let input = OracleInput {
        scenario_id: &sc.spec.scenario_id,
        probe_id: sc.spec.probe_id.as_str(),
        operation: sc.probe.operation,
        driver: sc.probe.driver,
        target: target.as_deref(),
        destination: destination.as_deref(),
        program: program.as_deref(),
        base: &dir,
    };
    // A profile compiled for this scenario alone is not the run's: never reused.
    match &per_child {
        Some(p) => {
            let (v, w) = oracle::predict(p, &input);
            last.set(v, w);
        }
        None => oracle::predict_reusing(c, &input, last),
    }
    last.add_notes(notes);
}

/// The name, beneath `<scratch>/oracle`, of the run's one empty oracle directory (no
/// profile id starts with a dot, so it names no scenario's own directory).
const EMPTY_DIR: &str = ".empty";

/// The one empty directory of the run that stands for the scratch directory of every
/// scenario that has no fixtures and whose profile names no rule beneath it, created the
/// first time (the last one created is remembered, so a run makes it once).
///
/// Why that predicts exactly what a directory of its own would: the oracle only reads the
/// tree, so the directory stays empty, as a fresh one without fixtures is; it has the same
/// parent, owner and mode as a scenario's own (created by the runner beneath
/// `<scratch>/oracle`), so every rule on an ancestor covers it alike and no rule names it
/// or anything beneath it (a rule could only through `${SCRATCH}` or `${HOME}`: such a
/// profile is compiled per child and gets its own directory). A target resolved through it
/// (`${SCRATCH}/…`, `${HOME}`, a relative path, `/proc/self/cwd`) therefore meets the same
/// inodes' rules and the same missing entries; only its name differs, which appears in
/// the oracle's own witness as another temporary path.
fn shared_empty_dir(dir: &Path) -> crate::Result<()> {
    static MADE: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut made = MADE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if made.as_deref() == Some(dir) {
        return Ok(());
    }
    crate::util::fsx::create_dir_all(dir)?;
    *made = Some(dir.to_path_buf());
    Ok(())
}

/// The `observation` event of an oracle verdict.
pub fn oracle_event(sc: &ScenarioRun, v: &OracleVerdict) -> RunEvent {
    RunEvent::Observation {
        v: crate::model::results::EVENTS_VERSION,
        scenario_id: sc.spec.scenario_id.clone(),
        lane: Lane::Oracle,
        outcome: v.decision.as_str().to_string(),
        stage: None,
        errno_name: None,
        expected: sc.spec.expected,
        attempts: 1,
        flaky: false,
        detail: v.reason.clone(),
        wall_us: None,
        task_id: sc.task.as_ref().map(|t| t.task_id.clone()),
    }
}
