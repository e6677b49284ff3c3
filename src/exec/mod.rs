//! Execution: a run as named stages, the executor behind them, child control, and the
//! builtin probe helper.
//!
//! The stages, in the order a run goes through them ([`pipeline`] only orchestrates):
//! - [`settings`]: [`RunSettings`], the defaults, the governance hooks ([`Gate`],
//!   [`AuditHook`], [`EventSink`]) and what a run returns ([`RunOutcome`]).
//! - [`select`]: lint, the filters, the selected scenarios with their timeouts, a
//!   mission's shape.
//! - [`setup`]: the run's environment (run id, jobs, scratch, listeners, variables) and
//!   every selected profile compiled once.
//! - [`oracle`]: the oracle lane, static, from the same compiled profiles.
//! - [`preflight`]: every profile applied once in a throw-away helper before any lane.
//! - [`scheduler`]: the baseline and scenario lanes as a job DAG on worker threads
//!   (`run_lanes`; missions in dependency order).
//! - [`assemble`]: pure classification, attribution, comparison and summary.
//! - [`write`](mod@write): the bundle's documents and result files.
//! - [`witness`]: the kernel's Landlock audit records of the scenario-lane children
//!   (`--kernel-audit`): started before the lanes, attributed after them.
//! - [`pipeline`]: `execute`, which runs the stages and seals the bundle; the
//!   [`pipeline::FailureStage`] a failed run records.
//! - [`command`]: `nexusmon sandbox`: one real command as a one-scenario run of the same
//!   pipeline, read back from its sealed bundle.
//!
//! Beneath them:
//! - [`seam`]: the executor seam (`ScenarioRun`, `LaneAttempt`, `ProbeExecutor`,
//!   `observe_lane`), depending on no other file here.
//! - [`lanes`]: the live executor: baseline and scenario lanes through one spawn path.
//! - [`child`]: spawning, waiting, timeouts, output capture, leak sweeping, rusage.
//! - [`zygote`]: the PID namespaces children run in (pid 2 under a placeholder init), and
//!   what a child leaves behind in one.
//! - [`spawn`]: the exec driver's `clone(CLONE_VM | CLONE_VFORK)` spawn that enforces the
//!   profile between clone and `execve`.
//! - [`helper`]: `nexusmon __probe`, the builtin probe helper, and its request type.
//! - [`forkserver`]: `nexusmon __forkserver`, one per worker thread, which forks the
//!   builtin helper's children (the same steps, no `execve` per probe).
//! - [`outcome`]: the errno table, classification, attribution, mismatches.
//! - [`fixtures`]: the run's scratch directory, per-child fixtures and listeners.
//! - [`worker`]: mission workers around their child: staging (output directory, checked
//!   copy of the executable), inputs, the request, and judging the result and files.
//! - [`interrupt`]: SIGINT/SIGTERM/SIGHUP during a run (the first seals `interrupted`, a
//!   second aborts at once).

pub mod assemble;
pub mod child;
pub mod command;
pub mod fixtures;
pub mod forkserver;
pub mod helper;
pub mod interrupt;
pub mod lanes;
pub mod learn;
pub mod oracle;
pub mod outcome;
pub mod pipeline;
pub mod preflight;
pub mod scheduler;
pub mod seam;
pub mod select;
pub mod settings;
pub mod setup;
pub mod shard;
mod sidecar;
pub mod spawn;
pub mod witness;
pub mod worker;
pub mod write;
pub mod zygote;

#[cfg(test)]
mod testkit;

// The run's public surface, so callers outside `exec` never name the stage files.
pub use command::{CommandOutcome, CommandRequest, sandbox_command};
pub use forkserver::{FORK_SERVER_MODE, fork_server_main};
pub use helper::main as probe_helper_main;
pub use learn::{LearnOutcome, LearnRequest, learn};
pub use pipeline::execute;
pub use seam::matches_expectation;
pub use settings::{
    AuditHook, EventSink, Gate, GateDecision, GateInput, GateRefusal, NullSink, RunOutcome,
    RunSettings, SealReport,
};
pub use setup::clean_after_killed_runs;
pub use write::profile_definition;
pub use zygote::{ZYGOTE_MODE, zygote_main};
