//! Execution: scheduling, lanes, child control, and the builtin probe helper.
//!
//! - [`run`]: the run pipeline (`execute`), its settings and outcome, and the seams for
//!   governance (gate, audit head).
//! - [`scheduler`]: a job DAG run on worker threads behind the [`scheduler::Executor`]
//!   trait (with a fake in the tests).
//! - [`lanes`]: the real executor: baseline and scenario lanes through one spawn path.
//! - [`child`]: spawning, waiting, timeouts, output capture, leak sweeping, rusage.
//! - [`spawn`]: the exec driver's `clone(CLONE_VM | CLONE_VFORK)` spawn that enforces the
//!   profile between clone and `execve`.
//! - [`helper`]: `nexusmon __probe`, the builtin probe helper.
//! - [`outcome`]: the errno table, classification, attribution, mismatches.
//! - [`fixtures`]: the run's scratch directory, per-child fixtures and listeners.

pub mod child;
pub mod fixtures;
pub mod helper;
pub mod lanes;
pub mod outcome;
pub mod run;
pub mod scheduler;
pub mod spawn;

// The run's public surface, so callers outside `exec` never name the stage files.
pub use helper::main as probe_helper_main;
pub use outcome::matches_expectation;
pub use run::{
    AuditHook, EventSink, Gate, GateDecision, GateInput, GateRefusal, NullSink, RunOutcome,
    RunSettings, SealReport, execute,
};
