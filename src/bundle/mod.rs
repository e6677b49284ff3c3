//! The bundle store (`DESIGN.md` §6): the only way run evidence is written and read.
//!
//! Writing: [`StagedBundle::begin`] takes the out-root lock, creates
//! `out/.staging/<run_id>/` and writes `run_status.json` (`in_progress`); the runner writes
//! files through [`StagedBundle::write_json`] / [`StagedBundle::write_bytes`] (each atomic);
//! [`StagedBundle::seal`] writes the final status, `BLAKE3SUMS` and `artifact_index.json`
//! (last), moves the directory to `out/<run_id>` without replacing anything, replaces
//! `LATEST` atomically and makes the sealed files read-only.

pub mod lock;
pub mod writer;

pub use lock::{LockMode, LockOptions, OutLock};
pub use writer::{BeginOptions, SealInfo, Sealed, StagedBundle, new_run_id, validate_run_id};

/// Name of the seal file.
pub const INDEX_FILE: &str = "artifact_index.json";
/// Name of the status file.
pub const STATUS_FILE: &str = "run_status.json";
/// Name of the b3sum-compatible manifest.
pub const SUMS_FILE: &str = "BLAKE3SUMS";
/// Name of the pointer to the newest sealed run.
pub const LATEST_FILE: &str = "LATEST";
/// Name of the staging directory under the out root.
pub const STAGING_DIR: &str = ".staging";
/// Name of the lock file under the out root.
pub const LOCK_FILE: &str = ".lock";
