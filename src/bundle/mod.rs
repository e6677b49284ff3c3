//! The bundle store: the only way run evidence is written and read.
//!
//! Writing ([`writer`]): [`StagedBundle::begin`] takes the out-root lock ([`lock`]), removes
//! what crashed runs left in `.staging/`, creates `out/.staging/<run_id>/` and writes
//! `run_status.json` (`in_progress`). The runner writes member files through
//! [`StagedBundle::write_json`], [`StagedBundle::write_bytes`],
//! [`StagedBundle::write_file_from`] or [`StagedBundle::create_file`] (each atomic: temp file
//! then rename; callable from many threads). [`StagedBundle::seal`] writes the final status
//! and `BLAKE3SUMS`, makes everything durable, writes `artifact_index.json` last, makes the
//! files read-only, moves the directory to `out/<run_id>` without replacing anything and
//! replaces `LATEST`. A bundle without an index is uncommitted, whatever else it holds.
//!
//! Reading ([`check`], [`reader`]): [`check_bundle`] lists every problem of a bundle (what
//! `validate-bundle` prints); [`load_bundle`] is the strict reader the rest of the tool uses
//! (it refuses any problem, and re-verifies each file it hands out);
//! [`open_bundle_unverified`] is for debugging only. All of them accept a bundle directory or
//! an out root, which resolves through `LATEST`.
//!
//! Signatures ([`signature`]): with a [`SealSigner`], the seal also writes
//! `artifact_index.sig` and `bundle.intoto.json` beside the index; every check verifies
//! them against the index with the key they carry (trust is governance's question).
//!
//! Repair ([`repair`]): [`repair_bundle`] rewrites the index of a completed or failed bundle
//! from what is on disk and records the change in `repair_log.json`.
//!
//! State of an out root ([`outroot`]): [`out_root_state`] (for `status`).
//!
//! Testing the store from a process: the hidden command `nexusmon __bundle-write --out DIR
//! [--files N --size BYTES | --from DIR [--link|--move]] [--hold-ms MS] [--lock fail|wait]
//! [--crash-at STEP] [--fail-sync]` drives the real writer (see `devtool`); the crash,
//! lock and tamper tests and `benches/bundle.sh` use it until `run` writes bundles. It and
//! the writer's fault hooks (`faults`) exist only in a build with the cargo feature
//! `fault-injection` (off by default; `scripts/test` turns it on), never in a release build.

pub mod check;
#[cfg(feature = "fault-injection")]
pub mod devtool;
mod faults;
mod fsio;
mod hash;
pub mod lines;
pub mod lock;
pub mod outroot;
pub mod reader;
pub mod repair;
pub mod signature;
mod tree;
mod writeback;
pub mod writer;

/// `runtime_results.jsonl`: one scenario-lane observation per line.
pub const RUNTIME_RESULTS: &str = "runtime_results.jsonl";
/// `baseline_results.jsonl`: one baseline-lane observation per line.
pub const BASELINE_RESULTS: &str = "baseline_results.jsonl";
/// `oracle_results.jsonl`: one oracle verdict per line.
pub const ORACLE_RESULTS: &str = "oracle_results.jsonl";
/// `path_witnesses.jsonl`: one path witness per line.
pub const PATH_WITNESSES: &str = "path_witnesses.jsonl";
/// `runtime_events.normalized.jsonl`: one row per scenario.
pub const NORMALIZED_ROWS: &str = "runtime_events.normalized.jsonl";

/// The result files written as JSON Lines ([`lines`]).
pub const LINE_RESULT_FILES: [&str; 5] = [
    RUNTIME_RESULTS,
    BASELINE_RESULTS,
    ORACLE_RESULTS,
    PATH_WITNESSES,
    NORMALIZED_ROWS,
];

/// Every file a run bundle holds (besides logs and the store's own files).
pub const RESULT_FILES: [&str; 13] = [
    "run_manifest.json",
    "apply_preflight.json",
    "expected_matrix.json",
    "runtime_results.jsonl",
    "baseline_results.jsonl",
    "oracle_results.jsonl",
    "runtime_events.normalized.jsonl",
    "path_witnesses.jsonl",
    "shared_values.json",
    "mismatch_summary.json",
    "mismatch_packets.jsonl",
    "summary.json",
    "summary.md",
];

/// The result files of result schema version 1 (pretty JSON documents), which version 2
/// replaced by JSON Lines (`lines`): a bundle holding one of them is refused by name.
pub const V1_RESULT_FILES: [&str; 5] = [
    "runtime_results.json",
    "baseline_results.json",
    "oracle_results.json",
    "runtime_events.normalized.json",
    "path_witnesses.json",
];

pub use check::{Problem, ProblemKind, Report, check_bundle};
pub use lock::{LockHolder, LockMode, LockOptions, LockState, OutLock};
pub use outroot::{OutRootState, out_root_state};
pub use reader::{Bundle, UnverifiedBundle, load_bundle, open_bundle_unverified};
pub use repair::{RepairOutcome, repair_bundle};
pub use signature::{ENVELOPE_FILE, SIG_FILE, SealSigner, SignatureCheck};
pub use tree::unsafe_reason;
pub use writer::{
    BeginOptions, SealInfo, Sealed, StagedBundle, StagedFile, clean_staging, new_run_id,
    validate_run_id,
};

/// Name of the seal file.
pub const INDEX_FILE: &str = "artifact_index.json";
/// Name of the status file.
pub const STATUS_FILE: &str = "run_status.json";
/// Name of the b3sum-compatible manifest.
pub const SUMS_FILE: &str = "BLAKE3SUMS";
/// Name of the log `reindex-bundle --repair` writes (itself indexed).
pub const REPAIR_LOG_FILE: &str = "repair_log.json";
/// Name of the pointer to the newest sealed run.
pub const LATEST_FILE: &str = "LATEST";
/// Name of the staging directory under the out root.
pub const STAGING_DIR: &str = ".staging";
/// Name of the lock file under the out root.
pub const LOCK_FILE: &str = ".lock";
