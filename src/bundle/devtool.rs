//! Driving the real writer from a process, for the crash, lock and tamper tests and the
//! benchmark (hidden command `nexusmon __bundle-write`). Nothing here is a second writer: it
//! only calls [`StagedBundle`]'s public API (plus its test-fault hooks).
//!
//! `--files N --size BYTES` writes N deterministic pseudo-random files (blake3 XOF of the
//! seed and file number, streamed: memory stays bounded) under `data/<xx>/`; `--from DIR`
//! copies a tree (`copy_file_range`), or moves its top-level
//! entries in with one rename each with `--move` (the benchmark: sealing an already-written
//! tree, so the seal is measured alone); `--hold-ms` holds the lock before
//! writing; `--crash-at STEP` kills the process with SIGKILL at a protocol step.

use std::path::PathBuf;
use std::time::Duration;

use rayon::prelude::*;

use super::lock::{LockHolder, LockOptions};
use super::tree::{self, NodeKind};
use super::writer::{BeginOptions, CrashPoint, Faults, SealInfo, Sealed, StagedBundle};
use crate::model::index::BundleStatus;
use crate::{Error, Result};

/// Where the files come from.
#[derive(Debug, Clone)]
pub enum DevSource {
    /// Generate `files` files of `size` bytes.
    Generate {
        /// How many.
        files: u64,
        /// Bytes each.
        size: u64,
        /// Content seed.
        seed: u64,
    },
    /// Copy or move what is under `dir`.
    From {
        /// Source tree.
        dir: PathBuf,
        /// How.
        how: FromMode,
    },
}

/// How `--from` brings files in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromMode {
    /// Copy every regular file (`copy_file_range`).
    Copy,
    /// Move each top-level entry with one rename (the source is emptied).
    Move,
}

/// Options of [`dev_write`].
#[derive(Debug, Clone)]
pub struct DevWriteOptions {
    /// Out root.
    pub out_root: PathBuf,
    /// Run id.
    pub run_id: Option<String>,
    /// Lock behaviour.
    pub lock: LockOptions,
    /// Content.
    pub source: DevSource,
    /// Files to declare as expected.
    pub expect: Vec<String>,
    /// Status to seal with.
    pub status: BundleStatus,
    /// Hold the lock this long after `begin`, before writing.
    pub hold: Duration,
    /// Faults to inject.
    pub faults: Faults,
    /// Sign the seal with this key (`--sign-with`).
    pub signer: Option<super::SealSigner>,
}

/// What [`dev_write`] did.
#[derive(Debug)]
pub struct DevWriteOutcome {
    /// The sealed bundle.
    pub sealed: Sealed,
    /// Leftovers removed by `begin`.
    pub cleaned: Vec<String>,
    /// A stale lock holder taken over.
    pub took_over: Option<LockHolder>,
    /// Member files written (besides `run_status.json`, `BLAKE3SUMS`, the index).
    pub files_written: u64,
}

/// Begin, write, seal. `on_begin` sees the staged bundle right after `begin` (to report a
/// stale lock or cleaned leftovers before the long part).
pub fn dev_write(
    opts: &DevWriteOptions,
    on_begin: impl FnOnce(&StagedBundle),
) -> Result<DevWriteOutcome> {
    let mut b = StagedBundle::begin(&BeginOptions {
        out_root: opts.out_root.clone(),
        run_id: opts.run_id.clone(),
        lock: opts.lock,
    })?;
    let items = plan_items(&opts.source)?;
    let mut faults = opts.faults.clone();
    if faults.crash_at == Some(CrashPoint::MidFile) && faults.crash_write_number == 0 {
        faults.crash_write_number = items.len() / 2 + 1;
    }
    b.inject_faults(faults);
    on_begin(&b);
    b.crash_point(CrashPoint::AfterBegin);
    if !opts.hold.is_zero() {
        std::thread::sleep(opts.hold);
    }
    for e in &opts.expect {
        b.expect(e);
    }
    items.par_iter().try_for_each(|item| write_item(&b, item))?;
    b.crash_point(CrashPoint::AfterFiles);
    let cleaned = b.cleaned_staging().to_vec();
    let took_over = b.lock().took_over.clone();
    let files_written = items.len() as u64;
    let sealed = b.seal(SealInfo {
        status: opts.status,
        failure_stage: (opts.status == BundleStatus::Failed).then(|| "execute".into()),
        error: (opts.status == BundleStatus::Failed).then(|| "failed on request".into()),
        plan_digest: None,
        audit_head: None,
        signer: opts.signer.clone(),
    })?;
    Ok(DevWriteOutcome {
        sealed,
        cleaned,
        took_over,
        files_written,
    })
}

#[derive(Debug)]
enum Item {
    Generated { rel: String, size: u64, seed: u64 },
    Copy { rel: String, src: PathBuf },
    Move { rel: String, src: PathBuf },
}

fn plan_items(source: &DevSource) -> Result<Vec<Item>> {
    match source {
        DevSource::Generate { files, size, seed } => Ok((0..*files)
            .map(|i| Item::Generated {
                rel: format!("data/{:02x}/{i:06}.bin", i % 16),
                size: *size,
                seed: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i,
            })
            .collect()),
        DevSource::From {
            dir,
            how: FromMode::Move,
        } => Ok(crate::util::fsx::read_dir_sorted(dir)?
            .into_iter()
            .map(|src| Item::Move {
                rel: src
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                src,
            })
            .collect()),
        DevSource::From { dir, .. } => {
            let mut items = Vec::new();
            for n in tree::walk(dir)? {
                let src = dir.join(&n.rel);
                match n.kind {
                    NodeKind::Dir => {}
                    NodeKind::File => items.push(Item::Copy { rel: n.rel, src }),
                    NodeKind::Symlink | NodeKind::Other => {
                        return Err(Error::input(&src, "is not a regular file"));
                    }
                }
            }
            Ok(items)
        }
    }
}

fn write_item(b: &StagedBundle, item: &Item) -> Result<()> {
    match item {
        Item::Generated { rel, size, seed } => {
            let mut xof = blake3::Hasher::new()
                .update(&seed.to_le_bytes())
                .finalize_xof();
            b.write_file_from(rel, &mut std::io::Read::take(&mut xof, *size))
                .map(|_| ())
        }
        Item::Copy { rel, src } => {
            let mut f = std::fs::File::open(src).map_err(|e| Error::io_input("open", src, e))?;
            b.write_file_from(rel, &mut f).map(|_| ())
        }
        Item::Move { rel, src } => b.adopt(rel, src),
    }
}
