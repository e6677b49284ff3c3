//! Stage 3, the run's environment, prepared once before any lane and before the bundle
//! is begun: host facts, the run id, the job count, the scratch root (stale runs' scratch
//! directories swept first), the runner's environment, the listeners (they publish their
//! ports before any target is expanded), the run variables, what the runner can give its
//! children, and every selected profile compiled once (with its child privileges) (`RunSetup::compile_profiles`; rules on a child's scratch directory are
//! compiled again per child by the lanes and the oracle).
//!
//! Errors here are returned before anything is written; the scratch root created here is
//! removed when the [`RunSetup`] is dropped (unless `--keep-scratch`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::fixtures::{Listeners, Scratch};
use super::seam::SelectedScenarios;
use super::settings::RunSettings;
use crate::Result;
use crate::load::LoadedPlan;
use crate::model::registry::Probe;
use crate::model::results::ChannelKind;
use crate::sandbox::compile::{self, CompileContext, CompileHost, CompiledProfile};
use crate::sandbox::host::{HostFacts, host_facts};
use crate::sandbox::privilege::{self, RunnerPrivileges};
use crate::sandbox::vars::Vars;

/// The run's scratch root, removed on drop unless the settings keep it.
#[derive(Debug)]
pub struct ScratchRoot {
    scratch: Scratch,
    keep: bool,
    /// The removal of the children's directories, started once the lanes are over
    /// ([`ScratchRoot::lanes_over`]); joined before the rest is removed.
    removing: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How long the removal of the scratch directories waits for the children's mount
/// namespaces to be released (each is a grace period of the kernel's, well under a
/// millisecond on an idle machine); after it they are removed all the same (a directory
/// still bound in a held namespace is detached from it by its removal).
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl ScratchRoot {
    /// Every child of the lanes has ended: start removing their (empty) directories on a
    /// thread of its own, so a large run's thousands of `rmdir`s overlap the results'
    /// writing and the seal instead of following them (unless the scratch is kept). Only
    /// empty directories go (the same [`Scratch::remove`] removes first), each relative
    /// to its opened parent; whatever a child left stays for the removal at drop.
    pub fn lanes_over(&self) {
        if self.keep {
            return;
        }
        let mut slot = self
            .removing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            let root = self.scratch.root().to_path_buf();
            // No thread (resources): the removal at drop does it all.
            *slot = std::thread::Builder::new()
                .name("scratch-rm".into())
                .spawn(move || {
                    // The children's own mount namespaces bind their directories until
                    // released (`spawn::NsReleaser`).
                    super::spawn::await_released_mounts(RELEASE_WAIT);
                    super::fixtures::remove_empty_job_dirs(&root);
                })
                .ok();
        }
    }
}

impl std::ops::Deref for ScratchRoot {
    type Target = Scratch;
    fn deref(&self) -> &Scratch {
        &self.scratch
    }
}

impl Drop for ScratchRoot {
    fn drop(&mut self) {
        let removing = self
            .removing
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = removing {
            // A panic there removed less: `remove` below does the rest.
            let _ = t.join();
        }
        if self.keep {
            // Best effort: a root still naming the (dead) runner is swept by a later run.
            let _ = self.scratch.mark_kept();
        } else {
            super::spawn::await_released_mounts(RELEASE_WAIT);
            self.scratch.remove();
        }
    }
}

/// Everything the oracle, the preflight and the lanes share.
#[derive(Debug)]
pub struct RunSetup {
    /// What the host supports.
    pub facts: HostFacts,
    /// The run id.
    pub run_id: String,
    /// Parallel children.
    pub jobs: u32,
    /// The clean channel.
    pub clean: bool,
    /// Manifest notes on what the runner cleaned up.
    pub housekeeping: Vec<String>,
    /// The running listeners (stopped by [`RunSetup::stop_listeners`], else on drop:
    /// declared before the scratch root so they stop before it is removed).
    listeners: Option<Listeners>,
    /// The scratch root.
    pub scratch: ScratchRoot,
    /// The runner's environment, sorted.
    pub runner_env: Vec<(String, String)>,
    /// The runner's `HOME`.
    pub runner_home: Option<String>,
    /// Run variables: the plan's, `RUNNER_PID`, the listeners' ports.
    pub base_vars: Vars,
    /// The listeners, described for the manifest.
    pub listener_notes: Vec<String>,
    /// The host the compiler targets.
    pub host: CompileHost,
    /// What the runner can give its children (identity, capabilities, namespaces).
    pub runner: RunnerPrivileges,
    /// Every selected profile (and the plan's preflight profile), compiled.
    pub compiled: BTreeMap<String, CompiledProfile>,
}

impl RunSetup {
    /// Prepare the environment of a run of `scenarios` (in this order: host facts, run
    /// id, jobs, stale scratch sweep, scratch root, listeners, profiles).
    pub fn prepare(
        settings: &RunSettings,
        loaded: &LoadedPlan,
        scenarios: &SelectedScenarios,
        max_jobs: Option<u32>,
    ) -> Result<Self> {
        let facts = host_facts();
        let run_id = run_id(settings)?;
        let jobs = settings
            .jobs
            .or(loaded.plan.execution.jobs)
            .unwrap_or(facts.cores)
            .min(max_jobs.unwrap_or(u32::MAX))
            .clamp(1, 1024);
        let clean = settings.channel == ChannelKind::Clean;
        let (scratch, housekeeping) = scratch_root(settings, &facts, &run_id)?;
        let runner_env = runner_env();
        let runner_home = runner_env
            .iter()
            .find(|(k, _)| k == "HOME")
            .map(|(_, v)| v.clone());
        let (base_vars, listeners) = start_listeners(loaded, scenarios)?;
        let host = CompileHost::from_facts(&facts, clean);
        let mut setup = Self {
            facts,
            run_id,
            jobs,
            clean,
            housekeeping,
            scratch,
            runner_env,
            runner_home,
            base_vars,
            listener_notes: listeners.described.clone(),
            listeners: Some(listeners),
            host,
            runner: RunnerPrivileges::current(),
            compiled: BTreeMap::new(),
        };
        setup.compiled = setup.compile_profiles(loaded, scenarios)?;
        Ok(setup)
    }

    /// Stop the listeners (after the lanes ran, before the seal).
    pub fn stop_listeners(&mut self) {
        drop(self.listeners.take());
    }

    /// Compile every selected profile (and the required preflight profile) once, before
    /// any child exists.
    fn compile_profiles(
        &self,
        loaded: &LoadedPlan,
        scenarios: &SelectedScenarios,
    ) -> Result<BTreeMap<String, CompiledProfile>> {
        // From the selection's profile table: no run (nor id string) per scenario.
        let mut profile_ids: BTreeSet<String> = scenarios
            .profile_ids()
            .into_iter()
            .map(str::to_string)
            .collect();
        if let Some(p) = &loaded.plan.apply_preflight_profile {
            profile_ids.insert(p.to_string());
        }
        let mut compiled: BTreeMap<String, CompiledProfile> = BTreeMap::new();
        for id in &profile_ids {
            let Some(profile) = loaded.profiles.get(id.as_str()) else {
                continue;
            };
            let dir = self.scratch.preflight_dir(id)?;
            let dir_s = dir.to_string_lossy().into_owned();
            let home = if self.clean {
                dir_s.clone()
            } else {
                self.runner_home.clone().unwrap_or_else(|| dir_s.clone())
            };
            // `OUTPUT` and `WORKER_BIN` exist only for a worker task's child: here they name
            // directories that do not exist, so their rules are pending until that child.
            let output = format!("{dir_s}/.worker-output");
            let worker = format!("{dir_s}/.worker");
            let rule_vars = self
                .base_vars
                .with(&[
                    ("SCRATCH", dir_s.as_str()),
                    ("HOME", home.as_str()),
                    ("OUTPUT", output.as_str()),
                    ("WORKER_BIN", worker.as_str()),
                ])
                .nested();
            let ctx = CompileContext {
                host: &self.host,
                vars: &rule_vars,
                before_child: true,
            };
            let mut c = compile::compile(id, profile, &loaded.registry.profiles_path, &ctx)?;
            privilege::attach(&mut c, profile, &self.runner, self.clean);
            compiled.insert(id.clone(), c);
        }
        Ok(compiled)
    }
}

/// The settings' run id, else `NEXUSMON_RUN_ID`, else a new one; validated.
fn run_id(settings: &RunSettings) -> Result<String> {
    let run_id = match &settings.run_id {
        Some(id) => id.clone(),
        None => std::env::var("NEXUSMON_RUN_ID")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(crate::bundle::new_run_id),
    };
    crate::bundle::validate_run_id(&run_id)?;
    Ok(run_id)
}

/// Sweep the scratch directories of killed runs (not for `--dry`), then create this
/// run's. Returns the root and the housekeeping notes.
fn scratch_root(
    settings: &RunSettings,
    facts: &HostFacts,
    run_id: &str,
) -> Result<(ScratchRoot, Vec<String>)> {
    let scratch_parent = settings
        .scratch_parent
        .clone()
        .unwrap_or_else(Scratch::default_parent);
    let housekeeping = if settings.dry {
        Vec::new()
    } else {
        Scratch::sweep_stale(&scratch_parent, facts.pids_cgroup.as_deref().map(Path::new))
            .iter()
            .map(super::fixtures::SweptRun::describe)
            .collect()
    };
    let scratch = ScratchRoot {
        scratch: Scratch::create(&scratch_parent, run_id)?,
        keep: settings.keep_scratch,
        removing: std::sync::Mutex::new(None),
    };
    Ok((scratch, housekeeping))
}

/// `status --clean`: what killed runs left behind, cleaned now: their scratch directories
/// under `scratch_parent` (else the default scratch parent) and their pids cgroups (every
/// process still in them killed) — the same sweep a run with that scratch parent starts
/// with — and, when the out root is not locked by a live run, its unsealed staging
/// directories and stray temp files. Returns what was done, one sentence each.
pub fn clean_after_killed_runs(
    out_root: &Path,
    scratch_parent: Option<&Path>,
) -> crate::Result<Vec<String>> {
    let facts = host_facts();
    let mut done: Vec<String> = Scratch::sweep_stale(
        &scratch_parent.map_or_else(Scratch::default_parent, Path::to_path_buf),
        facts.pids_cgroup.as_deref().map(Path::new),
    )
    .iter()
    .map(super::fixtures::SweptRun::describe)
    .collect();
    if out_root.is_dir() {
        let opts = crate::bundle::LockOptions {
            mode: crate::bundle::LockMode::Fail,
            timeout: std::time::Duration::ZERO,
        };
        match crate::bundle::OutLock::acquire(out_root, opts) {
            Ok(lock) => {
                if let Some(h) = &lock.took_over {
                    done.push(format!(
                        "released a stale out-root lock: its holder, {}, is gone",
                        h.describe()
                    ));
                }
                let removed = crate::bundle::clean_staging(&lock)?;
                if !removed.is_empty() {
                    done.push(format!(
                        "removed what crashed or aborted runs left behind: {}",
                        removed.join(", ")
                    ));
                }
            }
            Err(e) if e.kind() == crate::error::ErrorKind::Runner => {
                done.push(format!(
                    "left the out root alone: {} (a run holds it)",
                    e.message()
                ));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The runner's environment (UTF-8 entries only), sorted.
fn runner_env() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    v.sort();
    v
}

/// The run variables, with the ports of the selected probes' listeners (started here).
fn start_listeners(
    loaded: &LoadedPlan,
    scenarios: &SelectedScenarios,
) -> Result<(Vars, Listeners)> {
    let selected_probes: Vec<&Probe> = scenarios
        .probe_ids()
        .into_iter()
        .filter_map(|id| loaded.probes.get(id))
        .collect();
    let mut base_vars = Vars::new();
    for (k, v) in &loaded.plan.variables {
        base_vars.set(k.to_string(), v.clone());
    }
    base_vars.set("RUNNER_PID", std::process::id().to_string());
    // A worker task's child gets its own; every other child has none (rules on them are
    // skipped for it).
    base_vars.set("OUTPUT", crate::sandbox::vars::NO_WORKER_DIR);
    base_vars.set("WORKER_BIN", crate::sandbox::vars::NO_WORKER_DIR);
    let listeners = Listeners::start(selected_probes.iter().copied(), &base_vars)?;
    for (k, v) in &listeners.published {
        base_vars.set(k.clone(), v.clone());
    }
    Ok((base_vars, listeners))
}

/// The runner's own peak RSS: `VmHWM` from `/proc/self/status`, the high-water mark of this
/// process's memory since it started. (`getrusage(RUSAGE_SELF)` is not used: Linux seeds a
/// process's `ru_maxrss` with its spawner's resident set at `execve`.)
pub fn runner_max_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
