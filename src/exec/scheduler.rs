//! The scheduler: a DAG of jobs run on a fixed number of worker threads.
//!
//! Jobs become ready when every dependency finished and succeeded; a failed job's
//! dependents (transitively) are `Skipped`, never run. Results come back to the calling
//! thread, which sees each completion (`on_done`, for streaming events and progress) and
//! gets every result back **indexed by job**, so nothing downstream depends on completion
//! order. Experiments have no dependencies; missions run their tasks through the same
//! function (see [`super::run::run_lanes`]).
//!
//! What a job *does* is behind the [`Executor`] trait (any `Fn(&J) -> R` is one). The run
//! pipeline's jobs call [`super::run::observe_lane`] on a [`super::run::ProbeExecutor`]:
//! [`super::lanes::LiveExecutor`] spawns real processes; the unit tests use a fake.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};

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

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState<R> {
    /// It ran.
    Done(R),
    /// It did not run because the job at this index failed or was skipped (or, for a job
    /// in a dependency cycle, `usize::MAX`).
    Skipped(usize),
}

struct Queue {
    ready: VecDeque<usize>,
    closed: bool,
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
    J: Sync,
    R: Send,
{
    let n = jobs.len();
    let mut results: Vec<Option<JobState<R>>> = (0..n).map(|_| None).collect();
    let mut remaining: Vec<usize> = jobs.iter().map(|j| j.deps.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, j) in jobs.iter().enumerate() {
        for &d in &j.deps {
            if d < n {
                dependents[d].push(i);
            }
        }
    }
    // Jobs in a cycle (or depending on an out-of-range index) can never be ready.
    let runnable = acyclic(jobs);
    let queue = Mutex::new(Queue {
        ready: VecDeque::new(),
        closed: false,
    });
    let cv = Condvar::new();
    let mut finished = 0usize;
    for i in 0..n {
        if !runnable[i] {
            let st = JobState::Skipped(usize::MAX);
            on_done(i, &st);
            results[i] = Some(st);
            finished += 1;
        }
    }
    if let Ok(mut q) = queue.lock() {
        q.ready
            .extend((0..n).filter(|&i| runnable[i] && remaining[i] == 0));
    }
    let workers = workers.max(1).min(n.max(1));
    let outcome = std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<(usize, Option<R>)>();
        for _ in 0..workers {
            let tx = tx.clone();
            let queue = &queue;
            let cv = &cv;
            s.spawn(move || {
                loop {
                    let next = {
                        let Ok(mut q) = queue.lock() else {
                            return;
                        };
                        loop {
                            if let Some(i) = q.ready.pop_front() {
                                break Some(i);
                            }
                            if q.closed {
                                break None;
                            }
                            q = match cv.wait(q) {
                                Ok(q) => q,
                                Err(_) => return,
                            };
                        }
                    };
                    let Some(i) = next else {
                        return;
                    };
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        exec.execute(&jobs[i].job)
                    }))
                    .ok();
                    if tx.send((i, r)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut failure = None;
        while finished < n {
            let Ok((i, r)) = rx.recv() else {
                failure = Some("every worker stopped before the jobs finished".to_string());
                break;
            };
            let Some(r) = r else {
                failure = Some(format!("job {i} panicked; this is a bug in nexusmon"));
                break;
            };
            let ok = succeeded(&r);
            let st = JobState::Done(r);
            on_done(i, &st);
            results[i] = Some(st);
            finished += 1;
            let mut ready = Vec::new();
            if ok {
                for &d in &dependents[i] {
                    remaining[d] = remaining[d].saturating_sub(1);
                    if remaining[d] == 0 && results[d].is_none() {
                        ready.push(d);
                    }
                }
            } else {
                // Skip every dependent, transitively, in index order.
                let mut stack: Vec<(usize, usize)> =
                    dependents[i].iter().rev().map(|&d| (d, i)).collect();
                while let Some((d, because)) = stack.pop() {
                    if results[d].is_some() {
                        continue;
                    }
                    let st = JobState::Skipped(because);
                    on_done(d, &st);
                    results[d] = Some(st);
                    finished += 1;
                    stack.extend(dependents[d].iter().rev().map(|&e| (e, d)));
                }
            }
            if !ready.is_empty()
                && let Ok(mut q) = queue.lock()
            {
                q.ready.extend(ready);
                cv.notify_all();
            }
        }
        if let Ok(mut q) = queue.lock() {
            q.closed = true;
            q.ready.clear();
        }
        cv.notify_all();
        failure
    });
    if let Some(f) = outcome {
        return Err(f);
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| format!("job {i} never finished")))
        .collect()
}

/// Which jobs can ever run: not in a cycle, no dependency out of range or on such a job.
fn acyclic<J>(jobs: &[JobNode<J>]) -> Vec<bool> {
    let n = jobs.len();
    let mut indeg: Vec<usize> = jobs.iter().map(|j| j.deps.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, j) in jobs.iter().enumerate() {
        for &d in &j.deps {
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

#[cfg(test)]
mod tests {
    use super::*;
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
}
