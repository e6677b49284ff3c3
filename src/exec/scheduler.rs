//! Stage 6, scheduling: the baseline and scenario lanes of every scenario as jobs of a
//! DAG ([`run_lanes`]), run on a fixed number of worker threads ([`run_dag`]).
//!
//! **Missions**: each task is one scenario row `<profile>:<probe>` with
//! its expectation; the tasks run in dependency order, independent tasks in parallel up to
//! the job cap (the gate caps a mission at one task at a time without the
//! `parallel-missions` capability); a task that fails (its scenario-lane outcome is not its
//! expectation) skips every task that depends on it, directly or not. The tasks share one
//! workspace per lane as `${SCRATCH}` (`<scratch>/mission/<lane>`), so a task hands its
//! output to its dependents. A mission's declared `scenarios`/`controls` run beside the
//! tasks, outside the graph.
//!
//! Jobs become ready when every dependency finished and succeeded; a failed job's
//! dependents (transitively) are `Skipped`, never run. Results come back to the calling
//! thread, which sees each completion (`on_done`, for streaming events and progress) and
//! gets every result back **indexed by job**, so nothing downstream depends on completion
//! order. Experiments have no dependencies; missions run their tasks through the same
//! function (see [`run_lanes`]).
//!
//! What a job *does* is behind the [`Executor`] trait (any `Fn(&J) -> R` is one). The run
//! pipeline's jobs call [`super::seam::observe_lane`] on a [`super::seam::ProbeExecutor`]:
//! [`super::lanes::LiveExecutor`] spawns real processes; the unit tests use a fake.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Condvar, Mutex};

use super::child;
use super::interrupt;
use super::seam::{
    ProbeExecutor, ScenarioRun, ScenarioSource, matches_expectation, observe_lane,
    skipped_observation,
};
use super::settings::EventSink;
use crate::model::plan::Expectation;
use crate::model::results::{Lane, Leaked, Observation, Outcome, RunEvent};
use crate::{Error, Result};

/// Runs one job. Implementations must not panic (a panic fails the run).
pub trait Executor<J, R>: Sync {
    /// Execute `job`.
    fn execute(&self, job: &J) -> R;
}

impl<J, R, F: Fn(&J) -> R + Sync> Executor<J, R> for F {
    fn execute(&self, job: &J) -> R {
        self(job)
    }
}

/// A job and the indexes of the jobs it depends on.
#[derive(Debug, Clone)]
pub struct JobNode<J> {
    /// The job.
    pub job: J,
    /// Indexes of jobs that must succeed first.
    pub deps: Vec<usize>,
}

/// The jobs of a DAG by index: what [`run_dag_stream`] runs. A slice of [`JobNode`]s is
/// one; the run's lanes are another ([`LaneJobs`]), which for an experiment computes each
/// job from its index instead of keeping a node per job (a policy matrix has hundreds of
/// thousands).
pub trait JobSource<J>: Sync {
    /// Number of jobs.
    fn count(&self) -> usize;
    /// Job `i`.
    fn job(&self, i: usize) -> J;
    /// The indexes of the jobs job `i` depends on.
    fn deps(&self, i: usize) -> &[usize];
    /// True if some job has a dependency (otherwise nothing per job is kept).
    fn has_deps(&self) -> bool {
        (0..self.count()).any(|i| !self.deps(i).is_empty())
    }
}

impl<J: Clone + Sync> JobSource<J> for [JobNode<J>] {
    fn count(&self) -> usize {
        self.len()
    }
    fn job(&self, i: usize) -> J {
        self[i].job.clone()
    }
    fn deps(&self, i: usize) -> &[usize] {
        &self[i].deps
    }
}

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState<R> {
    /// It ran.
    Done(R),
    /// It did not run because the job at this index failed or was skipped (or, for a job
    /// in a dependency cycle, `usize::MAX`).
    Skipped(usize),
}

/// What the workers and the calling thread share, under one lock: the jobs ready to start
/// and the results not yet handed on.
struct Queue<R> {
    ready: VecDeque<usize>,
    /// Without dependencies every job from this index on is ready (no list of them).
    next_free: usize,
    closed: bool,
    /// A worker may start a job only below this index (the streaming window).
    limit: usize,
    /// Finished jobs the calling thread has not taken yet (`None`: the job panicked).
    finished: Vec<(usize, Option<R>)>,
    /// Workers waiting for a job.
    idle: usize,
    /// Worker threads still running.
    alive: usize,
    /// How the calling thread waits, if it does (see [`MainWait`]).
    main: MainWait,
    /// The calling thread was woken and has not looked yet (one wake-up is enough).
    woken: bool,
}

/// How the calling thread waits for results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MainWait {
    /// It does not wait (it is handing results on).
    Busy,
    /// It has nothing to hand on: the next finished job wakes it.
    Empty,
    /// It holds off for more: a full batch, a worker left without a job, or a thread
    /// ending wakes it ([`LINGER`] at most).
    Batch,
}

/// Finished jobs the calling thread takes at once when jobs finish quickly: workers wake
/// it for a full batch (or when one of them has no job to start), not for every job, so a
/// fast run does not pay a wake-up of the calling thread per job.
const BATCH: usize = 32;
/// How long the calling thread holds off for a full batch once it has a result: the most
/// a result waits to be handed on (events, progress) when jobs are slow.
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

impl<R> Queue<R> {
    /// The next job a worker may start, if any.
    fn take(&mut self, n: usize) -> Option<usize> {
        if self.ready.front().is_some_and(|&i| i < self.limit) {
            return self.ready.pop_front();
        }
        if self.next_free < n.min(self.limit) {
            self.next_free += 1;
            return Some(self.next_free - 1);
        }
        None
    }

    /// Wake the calling thread if it waits for what is there now (once).
    fn wake_main(&mut self, main_cv: &Condvar) {
        if !self.woken && self.main_must_wake() {
            self.woken = true;
            main_cv.notify_one();
        }
    }

    /// True if the calling thread, waiting as `self.main`, must be woken now.
    fn main_must_wake(&self) -> bool {
        match self.main {
            MainWait::Busy => false,
            MainWait::Empty => !self.finished.is_empty() || self.alive == 0,
            MainWait::Batch => self.finished.len() >= BATCH || self.idle > 0 || self.alive == 0,
        }
    }
}

/// Lock `m`, whatever a panicking holder left (nothing panics while holding it: the jobs
/// run outside the lock, and a job's panic is caught).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts a worker thread out when it ends, however it ends, and wakes the calling thread
/// if it waits for it.
struct Alive<'q, R> {
    queue: &'q Mutex<Queue<R>>,
    main_cv: &'q Condvar,
}

impl<R> Drop for Alive<'_, R> {
    fn drop(&mut self) {
        let mut q = lock(self.queue);
        q.alive -= 1;
        q.wake_main(self.main_cv);
    }
}

/// Run `jobs` on `workers` threads. `succeeded` decides whether dependents may run;
/// `on_done` sees each finished or skipped job on the calling thread as it happens.
/// Returns one state per job, in job order, or an error if an executor panicked.
pub fn run_dag<J, R>(
    jobs: &[JobNode<J>],
    workers: usize,
    exec: &dyn Executor<J, R>,
    succeeded: &dyn Fn(&R) -> bool,
    on_done: &mut dyn FnMut(usize, &JobState<R>),
) -> Result<Vec<JobState<R>>, String>
where
    J: Clone + Sync,
    R: Send,
{
    let mut results: Vec<Option<JobState<R>>> = (0..jobs.len()).map(|_| None).collect();
    run_dag_stream(None, jobs, workers, None, exec, succeeded, &mut |i, st| {
        on_done(i, &st);
        results[i] = Some(st);
        Ok(())
    })?;
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| format!("job {i} never finished")))
        .collect()
}

/// [`run_dag`] that hands each job's state to `on_done` (on the calling thread, as it
/// happens) and keeps nothing: memory does not grow with the number of jobs. With
/// `window`, a worker starts job `i` only while every job below `i - window + 1` has
/// finished, so at most `window` jobs are ever started and not yet all finished below
/// them (for jobs without dependencies, which start in index order). An error from
/// `on_done` stops the run: no further job starts, and it is returned.
///
/// The workers run on the threads of `pool` when there is one (threads started before,
/// e.g. made ready for their first job while the preflight ran: see
/// `LiveExecutor::start_workers`), else on threads started here. Each worker occupies its
/// thread until the run ends, so the pool holds at least `workers` threads for them all
/// to run at once (fewer workers are started if it holds fewer).
pub fn run_dag_stream<J, R, S: JobSource<J> + ?Sized>(
    pool: Option<&rayon::ThreadPool>,
    jobs: &S,
    workers: usize,
    window: Option<usize>,
    exec: &dyn Executor<J, R>,
    succeeded: &dyn Fn(&R) -> bool,
    on_done: &mut dyn FnMut(usize, JobState<R>) -> Result<(), String>,
) -> Result<(), String>
where
    R: Send,
{
    let n = jobs.count();
    let mut done: Vec<bool> = vec![false; n];
    // The lowest job not finished yet: the window's base.
    let mut low = 0usize;
    let limit_of = |low: usize| window.map_or(usize::MAX, |w| low.saturating_add(w.max(1)));
    // Without dependencies (an experiment) nothing per job is needed but `done`: every job
    // is ready, in index order.
    let has_deps = jobs.has_deps();
    let mut remaining: Vec<usize> = if has_deps {
        (0..n).map(|i| jobs.deps(i).len()).collect()
    } else {
        Vec::new()
    };
    let mut dependents: Vec<Vec<usize>> = if has_deps {
        vec![Vec::new(); n]
    } else {
        Vec::new()
    };
    if has_deps {
        for i in 0..n {
            for &d in jobs.deps(i) {
                if d < n {
                    dependents[d].push(i);
                }
            }
        }
    }
    // Jobs in a cycle (or depending on an out-of-range index) can never be ready.
    let runnable = if has_deps { acyclic(jobs) } else { Vec::new() };
    let workers = workers
        .max(1)
        .min(n.max(1))
        .min(pool.map_or(usize::MAX, |p| p.current_num_threads().max(1)));
    let queue = Mutex::new(Queue {
        ready: VecDeque::new(),
        next_free: if has_deps { n } else { 0 },
        closed: false,
        limit: limit_of(0),
        finished: Vec::new(),
        idle: 0,
        alive: workers,
        main: MainWait::Busy,
        woken: false,
    });
    // Workers wait on `work_cv` for a job; the calling thread on `main_cv` for results.
    let (work_cv, main_cv) = (Condvar::new(), Condvar::new());
    let mut finished = 0usize;
    for i in 0..runnable.len() {
        if !runnable[i] {
            on_done(i, JobState::Skipped(usize::MAX))?;
            done[i] = true;
            finished += 1;
        }
    }
    while low < n && done[low] {
        low += 1;
    }
    {
        let mut q = lock(&queue);
        if has_deps {
            q.ready
                .extend((0..n).filter(|&i| runnable[i] && remaining[i] == 0));
        }
        q.limit = limit_of(low);
    }
    let (queue_ref, work_cv_ref, main_cv_ref) = (&queue, &work_cv, &main_cv);
    let worker = move || {
        let (queue, work_cv, main_cv) = (queue_ref, work_cv_ref, main_cv_ref);
        // This thread runs these lanes' jobs only: it may lower its own bounding set to its
        // children's (no spawner hand-off per child; `spawn::dedicate_thread`).
        super::spawn::dedicate_thread();
        let _alive = Alive { queue, main_cv };
        // The job this worker finished last, handed over when it takes the next.
        let mut last: Option<(usize, Option<R>)> = None;
        loop {
            let next = {
                let mut q = lock(queue);
                if let Some(r) = last.take() {
                    q.finished.push(r);
                }
                let next = loop {
                    if q.closed {
                        break None;
                    }
                    if let Some(i) = q.take(n) {
                        break Some(i);
                    }
                    q.idle += 1;
                    q.wake_main(main_cv);
                    q = work_cv
                        .wait(q)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    q.idle -= 1;
                };
                q.wake_main(main_cv);
                next
            };
            let Some(i) = next else {
                return;
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                exec.execute(&jobs.job(i))
            }))
            .ok();
            last = Some((i, r));
        }
    };
    let outcome = with_workers(pool, workers, &worker, || {
        let mut failure = None;
        let mut batch: Vec<(usize, Option<R>)> = Vec::new();
        'run: while finished < n {
            // Take every finished job at once: as soon as there is one when jobs are
            // slow, a batch when they are fast (see `BATCH`).
            {
                let mut q = lock(&queue);
                q.main = MainWait::Empty;
                while !q.main_must_wake() {
                    q.woken = false;
                    q = main_cv
                        .wait(q)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                if !q.finished.is_empty() {
                    q.main = MainWait::Batch;
                    let deadline = std::time::Instant::now() + LINGER;
                    while !q.main_must_wake() {
                        let now = std::time::Instant::now();
                        if now >= deadline {
                            break;
                        }
                        q.woken = false;
                        q = main_cv
                            .wait_timeout(q, deadline - now)
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .0;
                    }
                }
                q.main = MainWait::Busy;
                if q.finished.is_empty() {
                    // Woken with nothing finished: every worker ended.
                    failure = Some("every worker stopped before the jobs finished".to_string());
                    break;
                }
                std::mem::swap(&mut batch, &mut q.finished);
            }
            let mut ready = Vec::new();
            for (i, r) in batch.drain(..) {
                let Some(r) = r else {
                    failure = Some(format!("job {i} panicked; this is a bug in nexusmon"));
                    break 'run;
                };
                let ok = succeeded(&r);
                if let Err(e) = on_done(i, JobState::Done(r)) {
                    failure = Some(e);
                    break 'run;
                }
                done[i] = true;
                finished += 1;
                if has_deps && ok {
                    for &d in &dependents[i] {
                        remaining[d] = remaining[d].saturating_sub(1);
                        if remaining[d] == 0 && !done[d] {
                            ready.push(d);
                        }
                    }
                } else if has_deps {
                    // Skip every dependent, transitively, in index order.
                    let mut stack: Vec<(usize, usize)> =
                        dependents[i].iter().rev().map(|&d| (d, i)).collect();
                    while let Some((d, because)) = stack.pop() {
                        if done[d] {
                            continue;
                        }
                        if let Err(e) = on_done(d, JobState::Skipped(because)) {
                            failure = Some(e);
                            break 'run;
                        }
                        done[d] = true;
                        finished += 1;
                        stack.extend(dependents[d].iter().rev().map(|&e| (e, d)));
                    }
                }
            }
            let before = low;
            while low < n && done[low] {
                low += 1;
            }
            if !ready.is_empty() || (low != before && window.is_some()) {
                let mut q = lock(&queue);
                q.ready.extend(ready);
                q.limit = limit_of(low);
                // Only a waiting worker needs a wake-up (a running one looks when it
                // finishes its job).
                if q.idle > 0 {
                    work_cv.notify_all();
                }
            }
        }
        {
            let mut q = lock(&queue);
            q.closed = true;
            q.ready.clear();
        }
        work_cv.notify_all();
        failure
    });
    match outcome {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// Run `worker` on `n` threads — `pool`'s, or threads started here and ended with the
/// call — while `main` runs on the calling thread; returns `main`'s result once every
/// worker has returned (a worker's panic is resumed here, as a scoped thread's is).
fn with_workers<T>(
    pool: Option<&rayon::ThreadPool>,
    n: usize,
    worker: &(dyn Fn() + Sync),
    main: impl FnOnce() -> T,
) -> T {
    match pool {
        Some(p) => p.in_place_scope(|s| {
            for _ in 0..n {
                s.spawn(|_| worker());
            }
            main()
        }),
        None => std::thread::scope(|s| {
            for _ in 0..n {
                s.spawn(worker);
            }
            main()
        }),
    }
}

/// Which jobs can ever run: not in a cycle, no dependency out of range or on such a job.
fn acyclic<J, S: JobSource<J> + ?Sized>(jobs: &S) -> Vec<bool> {
    let n = jobs.count();
    let mut indeg: Vec<usize> = (0..n).map(|i| jobs.deps(i).len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for &d in jobs.deps(i) {
            if d < n {
                dependents[d].push(i);
            }
        }
    }
    let mut ok = vec![false; n];
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    while let Some(i) = queue.pop_front() {
        ok[i] = true;
        for &d in &dependents[i] {
            indeg[d] -= 1;
            if indeg[d] == 0 {
                queue.push_back(d);
            }
        }
    }
    ok
}

// ---------------------------------------------------------------------------------------
// The run's lanes as jobs
// ---------------------------------------------------------------------------------------

/// Per scenario: its baseline and scenario-lane observations, and the leaks the final
/// sweep found that no child claimed.
pub type LaneObservations = (
    Vec<Option<Observation>>,
    Vec<Option<Observation>>,
    Vec<Leaked>,
);

/// Run the baseline and scenario lanes of every scenario on `jobs` workers. Results are
/// indexed by scenario (completion order does not matter).
///
/// Mission tasks ([`ScenarioRun::task`]) run in dependency order: a task's scenario-lane
/// job starts once the scenario-lane jobs of every task it depends on **succeeded** (their
/// outcome matched their expectation); its baseline job, once those tasks' jobs in both
/// lanes finished (so a baseline task sees its dependencies' baseline work). A task that
/// failed skips every dependent, transitively and in both lanes: a skipped task never
/// runs, and its observations name the failed task (`skipped_because`). Scenarios outside
/// the task graph (experiments, a mission's declared scenarios) have no dependencies.
pub fn run_lanes(
    exec: &dyn ProbeExecutor,
    scenarios: &[ScenarioRun],
    baseline: bool,
    scenario: bool,
    retries: u32,
    jobs: usize,
    sink: &mut dyn EventSink,
) -> Result<LaneObservations> {
    let mut base: Vec<Option<Observation>> = scenarios.iter().map(|_| None).collect();
    let mut scen: Vec<Option<Observation>> = scenarios.iter().map(|_| None).collect();
    let lanes = LaneSet {
        baseline,
        scenario,
        retries,
        jobs,
        window: None,
    };
    let unattributed = run_lanes_stream(exec, scenarios, &lanes, sink, &mut |si, b, s, _| {
        base[si] = b;
        scen[si] = s;
        Ok(())
    })?;
    Ok((base, scen, unattributed))
}

/// What [`run_lanes_stream`] hands each finished scenario to: its index, its baseline and
/// scenario-lane observations, the event sink.
pub type ScenarioDone<'a> = dyn FnMut(usize, Option<Observation>, Option<Observation>, &mut dyn EventSink) -> Result<()>
    + 'a;

/// A scenario whose lanes have not all finished: its observations so far and how many.
type Partial = (Option<Observation>, Option<Observation>, usize);

/// Which lanes run and how ([`run_lanes_stream`]).
#[derive(Debug, Clone, Copy)]
pub struct LaneSet {
    /// The baseline lane runs.
    pub baseline: bool,
    /// The scenario lane runs.
    pub scenario: bool,
    /// Retries per lane.
    pub retries: u32,
    /// Worker threads.
    pub jobs: usize,
    /// At most this many scenarios are started beyond the lowest one not finished (`None`:
    /// no bound; a mission's tasks, whose dependencies decide the order).
    pub window: Option<usize>,
}

/// [`run_lanes`] that hands each scenario's observations to `each` as soon as its last
/// lane finished (on the calling thread, in completion order), keeping nothing else: with
/// `lanes.window`, a scenario is started only while fewer than `window` scenarios below
/// it are unfinished, so at most `window + 1` scenarios are ever finished and not yet
/// handed on in index order (what [`crate::bundle::lines::ReorderWindow`] needs). Returns
/// the leaks the final sweep found that no child claimed. An error from `each` stops the
/// run (no further child starts) and is returned.
pub fn run_lanes_stream<S: ScenarioSource + ?Sized>(
    exec: &dyn ProbeExecutor,
    scenarios: &S,
    lanes: &LaneSet,
    sink: &mut dyn EventSink,
    each: &mut ScenarioDone<'_>,
) -> Result<Vec<Leaked>> {
    let LaneSet {
        baseline,
        scenario,
        retries,
        jobs,
        window,
    } = *lanes;
    let per_scenario = usize::from(baseline) + usize::from(scenario);
    let lane_list: Vec<Lane> = [(baseline, Lane::Baseline), (scenario, Lane::Scenario)]
        .into_iter()
        .filter_map(|(on, lane)| on.then_some(lane))
        .collect();
    // Only a mission's tasks have dependencies: an experiment's jobs are computed from
    // their index (scenario `i / per_scenario`, lane `i % per_scenario`), nothing kept per
    // job.
    let has_tasks = scenarios.has_tasks();
    let nodes = if has_tasks {
        task_nodes(scenarios, &lane_list)
    } else {
        Vec::new()
    };
    let job_list = LaneJobs {
        scenarios: scenarios.count(),
        lanes: &lane_list,
        nodes: &nodes,
    };
    // A task's scenario-lane job succeeds when it matched its expectation; baseline jobs
    // and scenarios outside the task graph never hold anything back.
    let succeeded = |o: &Observation| {
        o.lane != Lane::Scenario
            || o.task_id.is_none()
            || (0..scenarios.count())
                .map(|i| scenarios.run(i))
                .find(|s| s.spec.scenario_id == o.scenario_id)
                .is_none_or(|s| matches_expectation(s.spec.expected, o.result.outcome))
    };
    let reaper = child::become_subreaper().is_ok();
    // After an interrupt no child starts, and a child killed by it is recorded as
    // interrupted (skipped), not as the outcome of a killed process.
    let run = |job: &(usize, Lane)| {
        let sc = scenarios.run(job.0);
        let sc = &*sc;
        let interrupted = |what: &str| {
            let sig = interrupt::signal_name(interrupt::pending().unwrap_or(0));
            skipped_observation(
                sc,
                job.1,
                &format!("{what}: the run was interrupted ({sig})"),
                None,
            )
        };
        if interrupt::pending().is_some() {
            return interrupted("not run");
        }
        interrupt::take_killed();
        let o = observe_lane(exec, sc, job.1, retries);
        if interrupt::take_killed() {
            return interrupted("killed before it finished");
        }
        o
    };
    // Per node: the failed task (and why) that stopped it, as completions arrive (a job's
    // cause has always finished before the job is skipped).
    let mut causes: BTreeMap<usize, (String, String)> = BTreeMap::new();
    let skipped = |sc: &ScenarioRun, lane: Lane, cause: Option<&(String, String)>| match cause {
        Some((task, why)) => skipped_observation(
            sc,
            lane,
            &format!("not run: task `{task}`, which it depends on, failed ({why})"),
            Some(task.clone()),
        ),
        None => skipped_observation(sc, lane, "not run: a dependency failed", None),
    };
    // Scenarios with some lanes finished, until their last one is.
    let mut partial: BTreeMap<usize, Partial> = BTreeMap::new();
    let mut failed: Option<Error> = None;
    let states = {
        let mut on_done = |i: usize, st: JobState<Observation>| -> Result<(), String> {
            let (si, lane) = job_list.job(i);
            let sc = scenarios.run(si);
            let sc = &*sc;
            let o = match st {
                JobState::Done(o) => {
                    if !succeeded(&o)
                        && let Some(t) = &sc.task
                    {
                        causes.insert(i, (t.task_id.clone(), failure_words(sc, &o)));
                    }
                    sink.event(&observation_event(&o, sc.spec.expected));
                    o
                }
                JobState::Skipped(j) => {
                    if let Some(c) = causes.get(&j).cloned() {
                        causes.insert(i, c);
                    }
                    let o = skipped(sc, lane, causes.get(&i));
                    sink.event(&observation_event(&o, sc.spec.expected));
                    o
                }
            };
            let slot = partial.entry(si).or_insert((None, None, 0));
            match lane {
                Lane::Baseline => slot.0 = Some(o),
                _ => slot.1 = Some(o),
            }
            slot.2 += 1;
            if slot.2 == per_scenario
                && let Some((b, s, _)) = partial.remove(&si)
                && let Err(e) = each(si, b, s, &mut *sink)
            {
                let text = e.to_string();
                failed = Some(e);
                return Err(text);
            }
            Ok(())
        };
        run_dag_stream(
            exec.threads(),
            &job_list,
            jobs,
            window.map(|w| w.saturating_mul(per_scenario.max(1))),
            &run,
            &succeeded,
            &mut on_done,
        )
    };
    exec.finish();
    let unattributed = if reaper {
        child::final_sweep()
    } else {
        Vec::new()
    };
    if reaper {
        child::stop_subreaper();
    }
    if let Some(e) = failed {
        return Err(e);
    }
    states.map_err(Error::runner)?;
    // Scenarios with no lane (none selected) are handed on empty.
    if per_scenario == 0 {
        for si in 0..scenarios.count() {
            each(si, None, None, &mut *sink)?;
        }
    }
    Ok(unattributed)
}

/// The lanes of every scenario as jobs, in scenario order and, per scenario, in the order
/// of `lanes`: job `i` is scenario `i / lanes.len()` in lane `lanes[i % lanes.len()]`.
/// `nodes` holds a mission's jobs with their dependencies (empty for an experiment).
struct LaneJobs<'a> {
    scenarios: usize,
    lanes: &'a [Lane],
    nodes: &'a [JobNode<(usize, Lane)>],
}

impl JobSource<(usize, Lane)> for LaneJobs<'_> {
    fn count(&self) -> usize {
        self.scenarios * self.lanes.len()
    }
    fn job(&self, i: usize) -> (usize, Lane) {
        let per = self.lanes.len().max(1);
        (i / per, self.lanes[i % per])
    }
    fn deps(&self, i: usize) -> &[usize] {
        self.nodes.get(i).map_or(&[], |n| n.deps.as_slice())
    }
    fn has_deps(&self) -> bool {
        self.nodes.iter().any(|n| !n.deps.is_empty())
    }
}

/// A mission's jobs (the order of [`LaneJobs`]) with their dependencies: a task's
/// scenario-lane job on the scenario-lane jobs of the tasks it depends on, its baseline
/// job on both lanes' jobs of those tasks.
fn task_nodes<S: ScenarioSource + ?Sized>(
    source: &S,
    lanes: &[Lane],
) -> Vec<JobNode<(usize, Lane)>> {
    // Only a mission has tasks, and its runs are a list (nothing is built here).
    let scenarios: Vec<std::borrow::Cow<'_, ScenarioRun>> =
        (0..source.count()).map(|i| source.run(i)).collect();
    let mut index: BTreeMap<(usize, Lane), usize> = BTreeMap::new();
    let mut order: Vec<(usize, Lane)> = Vec::new();
    for i in 0..scenarios.len() {
        for &lane in lanes {
            index.insert((i, lane), order.len());
            order.push((i, lane));
        }
    }
    let by_task: BTreeMap<&str, usize> = scenarios
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.task.as_ref().map(|t| (t.task_id.as_str(), i)))
        .collect();
    order
        .iter()
        .map(|&(i, lane)| {
            let mut deps: Vec<usize> = Vec::new();
            for d in scenarios[i].task.iter().flat_map(|t| &t.depends_on) {
                let Some(&di) = by_task.get(d.as_str()) else {
                    continue;
                };
                deps.extend(index.get(&(di, Lane::Scenario)));
                if lane == Lane::Baseline {
                    deps.extend(index.get(&(di, Lane::Baseline)));
                }
            }
            deps.sort_unstable();
            deps.dedup();
            JobNode {
                job: (i, lane),
                deps,
            }
        })
        .collect()
}

/// "expected allow, observed deny (EACCES)" for a failed task.
fn failure_words(sc: &ScenarioRun, o: &Observation) -> String {
    let mut s = format!(
        "expected {}, observed {}",
        sc.spec.expected.as_str(),
        o.result.outcome.as_str()
    );
    if let Some(e) = &o.result.errno_name {
        let _ = write!(s, " {e}");
    } else if let Some(c) = o.result.exit_code
        && o.result.outcome == Outcome::Error
    {
        let _ = write!(s, " (exit {c})");
    }
    s
}

/// The `observation` event of a lane.
fn observation_event(o: &Observation, expected: Expectation) -> RunEvent {
    RunEvent::Observation {
        v: crate::model::results::EVENTS_VERSION,
        scenario_id: o.scenario_id.clone(),
        lane: o.lane,
        outcome: o.result.outcome.as_str().to_string(),
        stage: Some(o.result.stage),
        errno_name: o.result.errno_name.clone(),
        expected,
        attempts: u32::try_from(o.attempts.len().max(1)).unwrap_or(u32::MAX),
        flaky: o.flaky,
        detail: o.result.detail.clone(),
        wall_us: Some(o.result.rusage.wall_us),
        task_id: o.task_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::seam::LaneAttempt;
    use crate::exec::settings::NullSink;
    use crate::exec::testkit::task;
    use crate::model::results::{Attempt, Stage};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn nodes(deps: &[&[usize]]) -> Vec<JobNode<usize>> {
        deps.iter()
            .enumerate()
            .map(|(i, d)| JobNode {
                job: i,
                deps: d.to_vec(),
            })
            .collect()
    }

    #[test]
    fn results_come_back_in_job_order_whatever_the_completion_order() {
        let jobs = nodes(&[&[], &[], &[], &[], &[], &[]]);
        let exec = |j: &usize| {
            // Later jobs finish first.
            std::thread::sleep(std::time::Duration::from_millis(5 * (6 - *j as u64)));
            *j * 10
        };
        let mut seen = Vec::new();
        let out = run_dag(&jobs, 3, &exec, &|_| true, &mut |i, _| seen.push(i)).unwrap();
        assert_eq!(
            out,
            (0..6).map(|i| JobState::Done(i * 10)).collect::<Vec<_>>()
        );
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn a_failed_job_skips_its_dependents_transitively() {
        // 0 → 1 → 2, 0 → 3; 1 fails.
        let jobs = nodes(&[&[], &[0], &[1], &[0], &[2, 3]]);
        let ran = AtomicUsize::new(0);
        let exec = |j: &usize| {
            ran.fetch_add(1, Ordering::SeqCst);
            *j != 1
        };
        let out = run_dag(&jobs, 2, &exec, &|ok: &bool| *ok, &mut |_, _| {}).unwrap();
        assert_eq!(out[0], JobState::Done(true));
        assert_eq!(out[1], JobState::Done(false));
        assert_eq!(out[2], JobState::Skipped(1));
        assert_eq!(out[3], JobState::Done(true));
        assert_eq!(out[4], JobState::Skipped(2));
        assert_eq!(ran.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn dependencies_run_first_and_cycles_are_skipped() {
        let order = Mutex::new(Vec::new());
        let jobs = nodes(&[&[2], &[0], &[], &[4], &[3]]);
        let exec = |j: &usize| {
            order.lock().unwrap().push(*j);
        };
        let out = run_dag(&jobs, 4, &exec, &|()| true, &mut |_, _| {}).unwrap();
        assert_eq!(*order.lock().unwrap(), vec![2, 0, 1]);
        assert_eq!(out[3], JobState::Skipped(usize::MAX));
        assert_eq!(out[4], JobState::Skipped(usize::MAX));
    }

    #[test]
    fn a_panicking_executor_fails_the_run() {
        let jobs = nodes(&[&[], &[]]);
        let exec = |j: &usize| {
            assert!(*j != 1, "boom");
        };
        let e = run_dag(&jobs, 1, &exec, &|()| true, &mut |_, _| {}).unwrap_err();
        assert!(e.contains("panicked"), "{e}");
    }

    /// Seeded DAGs (or none: every job free), random job times (none, a few µs, some
    /// ms: batches that fill, and results that wait for the calling thread's linger), random
    /// failures, worker counts and windows, through `run_dag_stream`: every job is handed on
    /// exactly once; a job runs iff every dependency ran and succeeded, else it is skipped
    /// naming a dependency that failed or was skipped; a dependency is handed on before
    /// its dependents start; with a window and no dependencies no job starts at or beyond
    /// `lowest unfinished + window`; an error from `on_done` stops the run.
    #[test]
    fn generated_dags_run_each_job_once_in_dependency_and_window_order() {
        thread_local! {
            static ON_POOL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        use crate::util::testrng::Rng;
        use std::sync::atomic::AtomicBool;
        for seed in 0..60u64 {
            let mut rng = Rng(seed);
            let n = rng.below(120usize);
            let deps_on = rng.chance(50);
            let deps: Vec<Vec<usize>> = (0..n)
                .map(|i| {
                    if !deps_on || i == 0 || rng.chance(40) {
                        return Vec::new();
                    }
                    let mut d: Vec<usize> = (0..=rng.below(3usize)).map(|_| rng.below(i)).collect();
                    // Now and then a cycle or an index out of range.
                    if rng.chance(3) {
                        d.push(i + 1 + rng.below(3usize));
                    }
                    d.sort_unstable();
                    d.dedup();
                    d
                })
                .collect();
            let jobs: Vec<JobNode<usize>> = deps
                .iter()
                .enumerate()
                .map(|(i, d)| JobNode {
                    job: i,
                    deps: d.clone(),
                })
                .collect();
            let fails: Vec<bool> = (0..n).map(|_| rng.chance(10)).collect();
            let micros: Vec<u64> = (0..n)
                .map(|_| match rng.below(10u32) {
                    0..=4 => 0,
                    5..=8 => rng.below(300u64),
                    _ => 2000 + rng.below(5000u64),
                })
                .collect();
            let window = (!deps_on && rng.chance(60)).then(|| 1 + rng.below(20usize));
            let workers = 1 + rng.below(4usize);
            let stop_at = rng.chance(15).then(|| rng.below(n.max(1)));
            // Every other seed runs on a pool of threads started before (as the live
            // executor's, made ready during the preflight), now and then fewer than the
            // workers asked for: every job runs on one of its threads, and the same rules
            // hold.
            let pool = (seed % 2 == 1).then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1 + rng.below(4usize))
                    .start_handler(|_| ON_POOL.with(|p| p.set(true)))
                    .build()
                    .unwrap()
            });
            let off_pool = AtomicBool::new(false);
            // What the workers saw: started, and the handed-on jobs when each started.
            let handed = Mutex::new(vec![false; n]);
            let bad = AtomicBool::new(false);
            let exec = |j: &usize| {
                if ON_POOL.with(std::cell::Cell::get) != pool.is_some() {
                    off_pool.store(true, Ordering::SeqCst);
                }
                let h = handed.lock().unwrap();
                if deps[*j].iter().any(|&d| d < n && !h[d]) {
                    bad.store(true, Ordering::SeqCst);
                }
                if let Some(w) = window {
                    let low = h.iter().position(|d| !d).unwrap_or(n);
                    if *j >= low + w {
                        bad.store(true, Ordering::SeqCst);
                    }
                }
                drop(h);
                std::thread::sleep(std::time::Duration::from_micros(micros[*j]));
                !fails[*j]
            };
            let mut states: Vec<Option<JobState<bool>>> = vec![None; n];
            let mut count = 0usize;
            let out = run_dag_stream(
                pool.as_ref(),
                jobs.as_slice(),
                workers,
                window,
                &exec,
                &|ok: &bool| *ok,
                &mut |i, st| {
                    assert!(states[i].is_none(), "seed {seed}: job {i} handed on twice");
                    states[i] = Some(st);
                    handed.lock().unwrap()[i] = true;
                    count += 1;
                    if Some(count) == stop_at.map(|k| k + 1) {
                        return Err("stop".into());
                    }
                    Ok(())
                },
            );
            assert!(
                !bad.load(Ordering::SeqCst),
                "seed {seed}: a job started too early"
            );
            assert!(
                !off_pool.load(Ordering::SeqCst),
                "seed {seed}: a job ran on a thread that is not the pool's"
            );
            if let Some(k) = stop_at.filter(|&k| k < n) {
                assert_eq!(out, Err("stop".to_string()), "seed {seed}");
                assert_eq!(count, k + 1, "seed {seed}: jobs handed on after the error");
                continue;
            }
            assert_eq!(out, Ok(()), "seed {seed}");
            // The reference: in index order a job's dependencies are decided first, except
            // in a cycle or on an out-of-range index (never runnable).
            let runnable = acyclic(jobs.as_slice());
            for i in 0..n {
                let st = states[i]
                    .as_ref()
                    .unwrap_or_else(|| panic!("seed {seed}: job {i} never handed on"));
                let ran_ok = |d: usize| matches!(states[d], Some(JobState::Done(true)));
                match st {
                    JobState::Done(ok) => {
                        assert!(runnable[i], "seed {seed}: job {i} in a cycle ran");
                        assert!(deps[i].iter().all(|&d| ran_ok(d)), "seed {seed}: job {i}");
                        assert_eq!(*ok, !fails[i]);
                    }
                    JobState::Skipped(usize::MAX) => assert!(!runnable[i], "seed {seed}: {i}"),
                    JobState::Skipped(j) => {
                        assert!(
                            runnable[i] && deps[i].contains(j) && !ran_ok(*j),
                            "seed {seed}: {i} by {j}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn tasks_wait_for_their_dependencies_even_with_free_workers() {
        // Each observation records when it ran relative to the others.
        struct Ordered {
            seq: Mutex<Vec<String>>,
        }
        impl ProbeExecutor for Ordered {
            fn observe(&self, sc: &ScenarioRun, _lane: Lane, _attempt: u32) -> LaneAttempt {
                std::thread::sleep(std::time::Duration::from_millis(20));
                self.seq.lock().unwrap().push(sc.spec.probe_id.to_string());
                let mut a = Attempt::without_child(Outcome::Allow, Stage::Operation, "");
                a.rusage.wall_us = 1;
                LaneAttempt::without_child(a)
            }
        }
        let scs = vec![
            task("p", "a", "a", &[]),
            task("p", "b", "b", &["a"]),
            task("p", "c", "c", &["b"]),
        ];
        let ex = Ordered {
            seq: Mutex::new(Vec::new()),
        };
        let (_, s, _) = run_lanes(&ex, &scs, false, true, 0, 8, &mut NullSink).unwrap();
        assert_eq!(*ex.seq.lock().unwrap(), vec!["a", "b", "c"]);
        assert!(
            s.iter()
                .all(|o| o.as_ref().unwrap().result.outcome == Outcome::Allow)
        );
    }

    /// Seeded: lanes that finish in a random order (random sleeps, several workers) go
    /// through `run_lanes_stream` with a window into a reorder buffer one larger: it is
    /// never asked to hold more (a push outside it fails the run), every scenario comes
    /// out once, in order, with the observations the lanes made.
    #[test]
    fn the_lane_window_bounds_what_the_reorder_buffer_holds() {
        use crate::bundle::lines::ReorderWindow;
        use crate::exec::testkit::scenario;
        use crate::model::plan::Expectation;
        struct Jitter(u64);
        impl ProbeExecutor for Jitter {
            fn observe(&self, sc: &ScenarioRun, lane: Lane, _attempt: u32) -> LaneAttempt {
                // A slow one now and then holds the window's base back.
                let mut h = self.0 ^ sc.spec.scenario_id.len() as u64;
                for b in sc.spec.scenario_id.bytes().chain([lane as u8]) {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
                let us = if h.is_multiple_of(17) { 3000 } else { h % 300 };
                std::thread::sleep(std::time::Duration::from_micros(us));
                let mut a = Attempt::without_child(Outcome::Allow, Stage::Operation, "");
                a.rusage.wall_us = us + 1;
                LaneAttempt::without_child(a)
            }
        }
        for seed in 1..=6usize {
            let n = 40 + (seed * 37) % 90;
            let scs: Vec<ScenarioRun> = (0..n)
                .map(|i| scenario("p", &format!("q{i:04}"), Expectation::Allow))
                .collect();
            let window = 1 + (seed * 5) % 9;
            let lanes = LaneSet {
                baseline: seed % 2 == 0,
                scenario: true,
                retries: 0,
                jobs: 2 + (seed % 4),
                window: Some(window),
            };
            let mut buf = ReorderWindow::new(window + 1);
            let mut out: Vec<(usize, bool)> = Vec::new();
            run_lanes_stream(
                &Jitter(seed as u64),
                scs.as_slice(),
                &lanes,
                &mut NullSink,
                &mut |si, b, s, _| {
                    buf.push(si, (b, s), &mut |i, (b, s)| {
                        let s = s.expect("scenario lane");
                        assert_eq!(s.scenario_id, scs[i].spec.scenario_id);
                        out.push((i, b.is_some()));
                        Ok(())
                    })
                },
            )
            .unwrap_or_else(|e| panic!("seed {seed}, window {window}: {e}"));
            assert!(buf.high_water() <= window + 1, "seed {seed}");
            assert_eq!(buf.held(), 0);
            let want: Vec<(usize, bool)> = (0..n).map(|i| (i, lanes.baseline)).collect();
            assert_eq!(out, want, "seed {seed}");
        }
    }
}
