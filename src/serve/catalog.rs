//! The runs the cockpit shows, and how it knows they are still what it verified.
//!
//! A background scanner lists the bundles of every out root every `rescan` interval. For
//! each it takes a **metadata fingerprint** without hashing any member: the blake3 of
//! `artifact_index.json`'s bytes, plus, for every entry beneath the bundle directory (walked
//! without following symlinks), its relative path, type, device, inode, mode, link count,
//! owner, size, modification time and change time (nanoseconds). A bundle whose fingerprint
//! and attestation key (below) are those of its last verification is not read again: the
//! runs list never re-hashes an unchanged bundle. Any other bundle is verified again through
//! the strict reader (`promote::source::BundleSource::open`, every member hashed) and its
//! view rebuilt (`promote::view::of_source`); while that runs, its row says `checking`,
//! never the old verdict.
//!
//! The attestation key is what the signature and anchor states depend on besides the
//! bundle: the trust file's bytes and which of its lines are valid now, and the audit
//! log's answer for this run's index (`SealedRuns::anchor`). A new run appended to the log
//! changes no other run's key; an edited trust file or a broken log changes every key.
//!
//! What the fingerprint cannot see: an edit that leaves every field above unchanged. Any
//! write through the file system updates the change time, which no unprivileged process can
//! set, so such an edit needs root writing the block device underneath the file system (or
//! setting the clock back to the exact nanosecond), or a write through a shared mapping
//! whose time stamps the kernel has not updated yet. Between scans (at most `rescan`), an
//! in-place edit of a member is not seen by the list at all. To bound both, every bundle is
//! verified again in full after `reverify` whatever its metadata says, and every member the
//! cockpit serves (logs, artifacts) is read through the strict reader, hashed again against
//! the index as it is read; a page says when its bundle was verified and when its metadata
//! was last compared.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bundle::{INDEX_FILE, validate_run_id};
use crate::govern::attest::GovAttestor;
use crate::govern::trust::TrustStore;
use crate::model::view::{Integrity, RunView};
use crate::model::worker::{ARTIFACTS_FILE, ArtifactsFile};
use crate::promote::source::BundleSource;
use crate::promote::view;
use crate::util::time;

/// Entries walked per bundle before its fingerprint gives up (it is then verified every
/// scan: slow, never wrong).
pub const MAX_WALK_ENTRIES: u64 = 4_000_000;

/// Scenario rows of run views kept in memory; past it the least recently used views are
/// dropped (their page is rebuilt from the bundle, re-verified, when asked for again).
pub const VIEW_ROWS_BUDGET: usize = 120_000;

/// What the cockpit serves from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The project root.
    pub root: PathBuf,
    /// `--state-dir`, else found at or above the root.
    pub state_dir: Option<PathBuf>,
    /// Out roots (each holds `<run_id>/` bundles).
    pub outs: Vec<PathBuf>,
    /// Directories of promotion packets.
    pub packets: Vec<PathBuf>,
    /// Directories of plans (missions).
    pub plans: Vec<PathBuf>,
    /// How often the out roots are listed again.
    pub rescan: Duration,
    /// How long a verification is trusted while the metadata stays the same.
    pub reverify: Duration,
}

/// One run as the list shows it (and `GET /v1/runs` returns it).
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    /// The id in URLs: the bundle's directory name (`~N` added for a second out root
    /// holding the same name).
    pub id: String,
    /// The run id (the index's, else the directory's).
    pub run_id: String,
    /// The out root.
    pub out_root: String,
    /// The bundle directory.
    pub bundle: String,
    /// The plan.
    pub plan_id: Option<String>,
    /// When the run started.
    pub started_at: Option<String>,
    /// `ok`, `mismatches`, `failed`, `interrupted`, `not-valid` (the report's banner), or
    /// `checking` while it is being verified.
    pub state: String,
    /// Every file verified against the seal by the strict reader.
    pub valid: bool,
    /// The strict reader's problems (`kind path: detail`).
    pub problems: Vec<String>,
    /// `run_status.json`'s state.
    pub bundle_status: Option<String>,
    /// The run's exit code.
    pub exit_code: Option<i32>,
    /// Scenarios.
    pub scenarios: u64,
    /// Mismatches.
    pub mismatches: u64,
    /// Flaky scenarios.
    pub flaky: u64,
    /// The signature, as the report shows it (`state`: unsigned, unverified, valid, invalid).
    pub signature: serde_json::Value,
    /// The audit anchor (`state`: not-recorded, not-checked, anchored, not-anchored).
    pub anchor: serde_json::Value,
    /// Whether the packet derived from it is promotable (absent: none could be derived).
    pub promotable: Option<bool>,
    /// Why not.
    pub reasons: Vec<String>,
    /// blake3 of `artifact_index.json`.
    pub index_blake3: Option<String>,
    /// Worker artifacts in `artifacts.json`.
    pub artifacts: u64,
    /// When the strict reader last verified it (RFC 3339).
    pub verified_at: Option<String>,
    /// When its metadata was last compared with that verification.
    pub checked_at: String,
    /// Why it could not be read at all.
    pub error: Option<String>,
    /// Why its signature and anchor could not be checked (the trust file or the audit log
    /// does not read): its `signature` and `anchor` say only what the bundle alone shows.
    pub attestation_error: Option<String>,
}

/// A verified (or unreadable) run and what was kept of it.
pub struct Run {
    /// Its row.
    pub row: RunRow,
    /// The bundle directory.
    pub dir: PathBuf,
    /// The bundle as opened (strictly when it verified): members are served through it.
    pub src: Option<Arc<BundleSource>>,
    /// `artifacts.json`, read through the strict reader.
    pub artifacts: Option<ArtifactsFile>,
    fp: [u8; 32],
    key: [u8; 32],
    index: Option<IndexFacts>,
    verified: Option<Instant>,
    view: Mutex<Option<Arc<ViewEntry>>>,
    used: AtomicU64,
    rows: usize,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("id", &self.row.id)
            .finish_non_exhaustive()
    }
}

/// A run's view with its rendered page, built once per verification.
#[derive(Debug)]
pub struct ViewEntry {
    /// The view.
    pub view: RunView,
    /// The rendered report page (with the cockpit's navigation), once asked for.
    pub page: std::sync::OnceLock<Cached>,
    /// Row indices in review order (mismatches first), once asked for.
    order: std::sync::OnceLock<Vec<usize>>,
}

impl ViewEntry {
    fn new(view: RunView) -> Self {
        Self {
            view,
            page: std::sync::OnceLock::new(),
            order: std::sync::OnceLock::new(),
        }
    }

    /// The rows in review order (`RunView::rows_for_review`), sorted once.
    pub fn rows_for_review(&self) -> Vec<&crate::model::results::NormalizedRow> {
        let order = self.order.get_or_init(|| {
            let index: std::collections::HashMap<&str, usize> = self
                .view
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| (r.scenario_id.as_str(), i))
                .collect();
            self.view
                .rows_for_review()
                .into_iter()
                .filter_map(|r| index.get(r.scenario_id.as_str()).copied())
                .collect()
        });
        order
            .iter()
            .filter_map(|i| self.view.rows.get(*i))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexFacts {
    blake3: String,
    run_id: String,
    head: Option<crate::model::index::AuditHead>,
}

/// One listing of every out root.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Newest first (run id descending, then out root order).
    pub runs: Vec<Arc<Run>>,
    /// When the listing was made.
    pub scanned_at: String,
    /// Scans done since start.
    pub scans: u64,
    /// Why the trust file or the audit log could not be read (signature and anchor states
    /// are then not checked).
    pub gov_error: Option<String>,
    /// The state directory consulted.
    pub state_dir: Option<PathBuf>,
}

impl Snapshot {
    /// The run with URL id `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<Run>> {
        self.runs.iter().find(|r| r.row.id == id)
    }

    /// The listed bundles of run `run_id` (one per out root holding it), with their state:
    /// what a packet, an omen or an evolution entry naming the run is shown with, so a bundle
    /// that fails validation is shown as such wherever its run is named.
    pub fn bundles_of(&self, run_id: &str) -> Vec<BundleRef> {
        self.runs
            .iter()
            .filter(|r| r.row.run_id == run_id)
            .map(|r| BundleRef {
                id: r.row.id.clone(),
                state: r.row.state.clone(),
                valid: r.row.valid,
            })
            .collect()
    }
}

/// A listed bundle named elsewhere (`GET /v1/review`, `/v1/omens`, `/v1/evolution`).
#[derive(Debug, Clone, Serialize)]
pub struct BundleRef {
    /// Its URL id (`/runs/{id}`).
    pub id: String,
    /// Its row's state (`not-valid` when it fails validation).
    pub state: String,
    /// Every file verified against the seal.
    pub valid: bool,
}

struct GovSnap {
    meta: [u8; 32],
    trust: Option<TrustStore>,
    trust_digest: String,
    error: Option<String>,
    state_dir: Option<PathBuf>,
}

/// The cockpit's runs: the latest listing and the verification cache.
pub struct Catalog {
    /// What it serves from.
    pub settings: Settings,
    snapshot: RwLock<Arc<Snapshot>>,
    cache: Mutex<BTreeMap<PathBuf, Arc<Run>>>,
    gov: Mutex<Option<GovSnap>>,
    attestor: RwLock<Arc<GovAttestor>>,
    clock: AtomicU64,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

impl Catalog {
    /// An empty catalog (nothing listed until [`Catalog::scan`]).
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            cache: Mutex::new(BTreeMap::new()),
            gov: Mutex::new(None),
            attestor: RwLock::new(Arc::new(GovAttestor::default())),
            clock: AtomicU64::new(0),
        }
    }

    /// The latest listing.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |s| Arc::clone(&s))
    }

    fn publish(&self, s: Snapshot) {
        match self.snapshot.write() {
            Ok(mut g) => *g = Arc::new(s),
            Err(p) => *p.into_inner() = Arc::new(s),
        }
    }

    /// The view of `run` (rebuilt from its kept bundle source, members re-verified as they
    /// are read, when memory pressure dropped it). `None` for a run that could not be read.
    pub fn view(&self, run: &Run) -> Option<Arc<ViewEntry>> {
        run.used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        let mut slot = run.view.lock().ok()?;
        if let Some(v) = slot.as_ref() {
            return Some(Arc::clone(v));
        }
        let src = run.src.as_ref()?;
        let attestor = self.attestor();
        let v = view::of_source(src, &self.settings.root, attestor.as_ref()).ok()?;
        let entry = Arc::new(ViewEntry::new(v));
        *slot = Some(Arc::clone(&entry));
        Some(entry)
    }

    fn attestor(&self) -> Arc<GovAttestor> {
        self.attestor
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |a| Arc::clone(&a))
    }

    /// Governance as of now: rebuilt when the audit log, its head or the trust file changed.
    fn refresh_gov(&self) -> ([u8; 32], Option<String>, Option<PathBuf>) {
        let state_dir = match &self.settings.state_dir {
            Some(d) => Some(d.clone()),
            None => crate::govern::state::find(&self.settings.root),
        };
        let mut h = blake3::Hasher::new();
        if let Some(d) = &state_dir {
            h.update(d.as_os_str().as_encoded_bytes());
            for name in [
                crate::govern::state::AUDIT_FILE,
                crate::govern::state::AUDIT_HEAD_FILE,
                crate::govern::state::TRUST_FILE,
            ] {
                stat_into(&mut h, &d.join(name));
            }
        }
        let meta = *h.finalize().as_bytes();
        let Ok(mut g) = self.gov.lock() else {
            return ([0; 32], Some("internal: lock poisoned".into()), state_dir);
        };
        if g.as_ref().is_none_or(|s| s.meta != meta) {
            let built = GovAttestor::open(None, state_dir.as_deref(), &self.settings.root);
            let trust = state_dir
                .as_ref()
                .map(|d| d.join(crate::govern::state::TRUST_FILE))
                .filter(|p| p.exists());
            let trust_bytes = trust.as_ref().and_then(|p| std::fs::read(p).ok());
            let trust_store = match (&trust, &trust_bytes) {
                (Some(p), Some(b)) => TrustStore::parse(p, &String::from_utf8_lossy(b)).ok(),
                _ => None,
            };
            let (attestor, error) = match built {
                Ok(a) => (a, None),
                Err(e) => (
                    GovAttestor::default(),
                    Some(format!(
                        "{e}: signature and anchor states are NOT checked until it is fixed"
                    )),
                ),
            };
            let attestor = Arc::new(attestor);
            if let Ok(mut a) = self.attestor.write() {
                *a = Arc::clone(&attestor);
            }
            *g = Some(GovSnap {
                meta,
                trust: trust_store,
                trust_digest: trust_bytes
                    .map(|b| crate::util::digest::blake3_hex(&b))
                    .unwrap_or_default(),
                error,
                state_dir: state_dir.clone(),
            });
        }
        let Some(s) = g.as_ref() else {
            return ([0; 32], None, state_dir);
        };
        // Which trust lines are valid now: a key expiring changes what a signature means.
        let now = jiff::Timestamp::now();
        // Not the log's metadata: a run appended to the log changes no other run's key (its
        // answer for each run is in that run's key, `key_of`).
        let mut k = blake3::Hasher::new();
        k.update(s.trust_digest.as_bytes());
        k.update(s.error.as_deref().unwrap_or("").as_bytes());
        if let Some(t) = &s.trust {
            for e in &t.entries {
                let valid = e.valid_after.is_none_or(|t| now >= t)
                    && e.valid_before.is_none_or(|t| now < t);
                k.update(&[u8::from(valid)]);
            }
        }
        (
            *k.finalize().as_bytes(),
            s.error.clone(),
            s.state_dir.clone(),
        )
    }

    /// The attestation key of a run whose index is `facts` under trust key `trust`.
    fn key_of(&self, trust: &[u8; 32], facts: Option<&IndexFacts>) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(trust);
        let attestor = self.attestor();
        if let (Some(f), Some(sealed)) = (facts, attestor.sealed_runs()) {
            let a = sealed.anchor(&f.run_id, &f.blake3, f.head.as_ref());
            h.update(serde_json::to_string(&a).unwrap_or_default().as_bytes());
        }
        *h.finalize().as_bytes()
    }

    /// List every out root, verify what changed, publish. Returns the number of bundles
    /// verified (read in full) by this scan.
    pub fn scan(&self) -> usize {
        let (trust_key, gov_error, state_dir) = self.refresh_gov();
        let found = self.list_bundles();
        let now = time::now_rfc3339();
        let prev: BTreeMap<PathBuf, Arc<Run>> =
            self.cache.lock().map(|c| c.clone()).unwrap_or_default();
        let mut keep: Vec<(String, PathBuf, PathBuf, Option<Arc<Run>>)> = Vec::new();
        let mut todo = Vec::new();
        for (id, dir, out_root) in found {
            let meta = fingerprint(&dir);
            let old = prev.get(&dir);
            let facts = match (&meta, old) {
                (Ok(m), Some(o))
                    if o.index.as_ref().map(|f| &f.blake3) == m.index_blake3.as_ref() =>
                {
                    o.index.clone()
                }
                (Ok(m), _) => index_facts(&dir, m.index_blake3.as_deref()),
                (Err(_), _) => None,
            };
            let key = self.key_of(&trust_key, facts.as_ref());
            let fresh = match (&meta, old) {
                (Ok(m), Some(o)) => {
                    m.complete
                        && o.fp == m.fp
                        && o.key == key
                        && o.verified
                            .is_some_and(|t| t.elapsed() < self.settings.reverify)
                }
                _ => false,
            };
            if fresh {
                let o = old.map(Arc::clone);
                if let Some(o) = &o {
                    let mut row = o.row.clone();
                    row.checked_at.clone_from(&now);
                    // The row is shared with readers: publish a copy with the new time.
                    let updated = Arc::new(Run {
                        row,
                        dir: o.dir.clone(),
                        src: o.src.clone(),
                        artifacts: o.artifacts.clone(),
                        fp: o.fp,
                        key: o.key,
                        index: o.index.clone(),
                        verified: o.verified,
                        view: Mutex::new(o.view.lock().ok().and_then(|v| v.clone())),
                        used: AtomicU64::new(o.used.load(Ordering::Relaxed)),
                        rows: o.rows,
                    });
                    keep.push((id, dir, out_root, Some(updated)));
                }
            } else {
                todo.push((id.clone(), dir.clone(), out_root.clone(), meta, facts, key));
                keep.push((id, dir, out_root, None));
            }
        }
        let make = |keep: &[(String, PathBuf, PathBuf, Option<Arc<Run>>)]| {
            let mut runs: Vec<Arc<Run>> = keep
                .iter()
                .map(|(id, dir, out_root, run)| match run {
                    Some(r) => Arc::clone(r),
                    None => Arc::new(pending(id, dir, out_root, &now)),
                })
                .collect();
            order(&mut runs);
            runs
        };
        let scans = self.snapshot().scans + 1;
        let snapshot = |runs| Snapshot {
            runs,
            scanned_at: now.clone(),
            scans,
            gov_error: gov_error.clone(),
            state_dir: state_dir.clone(),
        };
        // Changed bundles read `checking` at once, never their old verdict.
        self.publish(snapshot(make(&keep)));
        let verified = todo.len();
        for (id, dir, out_root, meta, facts, key) in todo {
            let mut run = self.verify(&id, &dir, &out_root, &meta, facts, key, &now);
            run.row.attestation_error.clone_from(&gov_error);
            let run = Arc::new(run);
            if let Some(slot) = keep.iter_mut().find(|k| k.1 == dir) {
                slot.3 = Some(run);
            }
            self.publish(snapshot(make(&keep)));
        }
        let mut cache = BTreeMap::new();
        for (_, dir, _, run) in &keep {
            if let Some(r) = run {
                cache.insert(dir.clone(), Arc::clone(r));
            }
        }
        Self::evict(&cache);
        if let Ok(mut c) = self.cache.lock() {
            *c = cache;
        }
        verified
    }

    /// Drop the least recently used views past [`VIEW_ROWS_BUDGET`].
    fn evict(cache: &BTreeMap<PathBuf, Arc<Run>>) {
        let mut held: Vec<&Arc<Run>> = cache
            .values()
            .filter(|r| r.view.lock().is_ok_and(|v| v.is_some()))
            .collect();
        held.sort_by_key(|r| std::cmp::Reverse(r.used.load(Ordering::Relaxed)));
        let mut total = 0usize;
        for r in held {
            total += r.rows.max(1);
            if total > VIEW_ROWS_BUDGET
                && let Ok(mut v) = r.view.lock()
            {
                *v = None;
            }
        }
    }

    /// `(id, bundle dir, out root)` of every bundle directory of every out root.
    fn list_bundles(&self) -> Vec<(String, PathBuf, PathBuf)> {
        let mut out: Vec<(String, PathBuf, PathBuf)> = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, root) in self.settings.outs.iter().enumerate() {
            let Ok(rd) = std::fs::read_dir(root) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| validate_run_id(n).is_ok())
                .collect();
            names.sort();
            for n in names {
                let count = seen.entry(n.clone()).or_default();
                *count += 1;
                let id = if *count == 1 {
                    n.clone()
                } else {
                    format!("{n}~{}", i + 1)
                };
                out.push((id, root.join(&n), root.clone()));
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn verify(
        &self,
        id: &str,
        dir: &Path,
        out_root: &Path,
        meta: &std::io::Result<Meta>,
        facts: Option<IndexFacts>,
        key: [u8; 32],
        now: &str,
    ) -> Run {
        let attestor = self.attestor();
        let opened = BundleSource::open(dir).and_then(|src| {
            let v = view::of_source(&src, &self.settings.root, attestor.as_ref())?;
            Ok((src, v))
        });
        let fp = meta.as_ref().map_or([0; 32], |m| m.fp);
        let complete = meta.as_ref().is_ok_and(|m| m.complete);
        match opened {
            Ok((src, v)) => {
                let artifacts: Option<ArtifactsFile> = src
                    .read(ARTIFACTS_FILE)
                    .ok()
                    .flatten()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let mut row = row_of(id, dir, out_root, &v, now);
                row.artifacts = artifacts.as_ref().map_or(0, |a| {
                    a.tasks.iter().map(|t| t.artifacts.len() as u64).sum()
                });
                row.index_blake3 = facts.as_ref().map(|f| f.blake3.clone());
                let rows = v.rows.len();
                Run {
                    row,
                    dir: dir.to_path_buf(),
                    src: Some(Arc::new(src)),
                    artifacts,
                    fp,
                    key,
                    index: facts,
                    verified: complete.then(Instant::now),
                    view: Mutex::new(Some(Arc::new(ViewEntry::new(v)))),
                    used: AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed)),
                    rows,
                }
            }
            Err(e) => {
                let mut r = pending(id, dir, out_root, now);
                r.row.state = "unreadable".into();
                r.row.error = Some(e.to_string());
                r.row.verified_at = Some(now.to_string());
                r.fp = fp;
                r.key = key;
                r.index = facts;
                r.verified = complete.then(Instant::now);
                r
            }
        }
    }
}

/// The row of a verified view.
fn row_of(id: &str, dir: &Path, out_root: &Path, v: &RunView, now: &str) -> RunRow {
    let s = v.summary.as_ref();
    RunRow {
        id: id.to_string(),
        run_id: v.run_id.clone(),
        out_root: out_root.display().to_string(),
        bundle: dir.display().to_string(),
        plan_id: v
            .manifest
            .as_ref()
            .map(|m| m.plan_id.clone())
            .or_else(|| s.map(|s| s.plan_id.clone())),
        started_at: v.manifest.as_ref().map(|m| m.started_at.clone()),
        state: v.banner().as_str().to_string(),
        valid: v.verdict.integrity == Integrity::Valid,
        problems: v.verdict.problems.clone(),
        bundle_status: v.verdict.bundle_status.clone(),
        exit_code: s.map(|s| s.exit_code),
        scenarios: s.map_or(0, |s| s.scenarios),
        mismatches: s.map_or(0, |s| s.mismatches.values().sum()),
        flaky: s.map_or(0, |s| s.flaky.len() as u64),
        signature: serde_json::to_value(&v.verdict.signature).unwrap_or_default(),
        anchor: serde_json::to_value(&v.verdict.anchor).unwrap_or_default(),
        promotable: v.packet.as_ref().map(|p| p.promotability.promotable),
        reasons: v
            .packet
            .as_ref()
            .map(|p| {
                p.promotability
                    .reasons
                    .iter()
                    .map(|r| r.as_str().to_string())
                    .collect()
            })
            .unwrap_or_default(),
        index_blake3: None,
        artifacts: 0,
        verified_at: Some(now.to_string()),
        checked_at: now.to_string(),
        error: None,
        attestation_error: None,
    }
}

/// A run listed but not (yet) verified: never shown as valid.
fn pending(id: &str, dir: &Path, out_root: &Path, now: &str) -> Run {
    Run {
        row: RunRow {
            id: id.to_string(),
            run_id: id.split('~').next().unwrap_or(id).to_string(),
            out_root: out_root.display().to_string(),
            bundle: dir.display().to_string(),
            plan_id: None,
            started_at: None,
            state: "checking".into(),
            valid: false,
            problems: Vec::new(),
            bundle_status: None,
            exit_code: None,
            scenarios: 0,
            mismatches: 0,
            flaky: 0,
            signature: serde_json::json!({"state": "unverified", "detail": "being checked"}),
            anchor: serde_json::json!({"state": "not-recorded"}),
            promotable: None,
            reasons: Vec::new(),
            index_blake3: None,
            artifacts: 0,
            verified_at: None,
            checked_at: now.to_string(),
            error: None,
            attestation_error: None,
        },
        dir: dir.to_path_buf(),
        src: None,
        artifacts: None,
        fp: [0; 32],
        key: [0; 32],
        index: None,
        verified: None,
        view: Mutex::new(None),
        used: AtomicU64::new(0),
        rows: 0,
    }
}

/// Newest first: run id descending, then the out root's directory.
fn order(runs: &mut [Arc<Run>]) {
    runs.sort_by(|a, b| {
        b.row
            .run_id
            .cmp(&a.row.run_id)
            .then_with(|| a.row.id.cmp(&b.row.id))
    });
}

/// A bundle's metadata fingerprint.
#[derive(Debug)]
pub struct Meta {
    /// blake3 over the walk (and the index digest).
    pub fp: [u8; 32],
    /// blake3 of `artifact_index.json`, when it is a regular file.
    pub index_blake3: Option<String>,
    /// The walk saw everything (not cut at [`MAX_WALK_ENTRIES`]).
    pub complete: bool,
}

fn stat_into(h: &mut blake3::Hasher, p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) => meta_into(h, &m),
        Err(e) => {
            h.update(format!("missing {e}").as_bytes());
        }
    }
}

fn meta_into(h: &mut blake3::Hasher, m: &std::fs::Metadata) {
    for v in [
        m.dev(),
        m.ino(),
        u64::from(m.mode()),
        m.nlink(),
        u64::from(m.uid()),
        u64::from(m.gid()),
        m.size(),
    ] {
        h.update(&v.to_le_bytes());
    }
    for v in [m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()] {
        h.update(&v.to_le_bytes());
    }
}

/// The metadata fingerprint of the bundle at `dir` (see the module doc).
pub fn fingerprint(dir: &Path) -> std::io::Result<Meta> {
    let mut h = blake3::Hasher::new();
    let top = std::fs::symlink_metadata(dir)?;
    meta_into(&mut h, &top);
    let index = dir.join(INDEX_FILE);
    let index_blake3 = match std::fs::symlink_metadata(&index) {
        Ok(m) if m.is_file() => {
            let bytes = std::fs::read(&index)?;
            Some(crate::util::digest::blake3_hex(&bytes))
        }
        _ => None,
    };
    h.update(index_blake3.as_deref().unwrap_or("no index").as_bytes());
    let mut count = 0u64;
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<(std::ffi::OsString, std::fs::Metadata)> = Vec::new();
        for e in std::fs::read_dir(dir.join(&rel))? {
            let e = e?;
            let m = std::fs::symlink_metadata(e.path())?;
            entries.push((e.file_name(), m));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, m) in entries {
            count += 1;
            if count > MAX_WALK_ENTRIES {
                return Ok(Meta {
                    fp: *h.finalize().as_bytes(),
                    index_blake3,
                    complete: false,
                });
            }
            let child = rel.join(&name);
            h.update(child.as_os_str().as_encoded_bytes());
            h.update(b"\0");
            meta_into(&mut h, &m);
            if m.is_dir() {
                stack.push(child);
            }
        }
    }
    Ok(Meta {
        fp: *h.finalize().as_bytes(),
        index_blake3,
        complete: true,
    })
}

/// The run id and audit head the index at `dir` names (for the attestation key).
fn index_facts(dir: &Path, blake3: Option<&str>) -> Option<IndexFacts> {
    let blake3 = blake3?;
    let bytes = std::fs::read(dir.join(INDEX_FILE)).ok()?;
    let index: crate::model::index::ArtifactIndex = serde_json::from_slice(&bytes).ok()?;
    Some(IndexFacts {
        blake3: blake3.to_string(),
        run_id: index.run_id,
        head: index.audit_head,
    })
}

/// A response body kept with its digest.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The bytes.
    pub body: axum::body::Bytes,
    /// The strong ETag (quoted).
    pub etag: String,
    /// The media type.
    pub content_type: &'static str,
}

impl Cached {
    /// `body` of `content_type`, its ETag the digest of its bytes.
    pub fn new(body: Vec<u8>, content_type: &'static str) -> Self {
        let etag = format!("\"b3-{}\"", &crate::util::digest::blake3_hex(&body)[..32]);
        Self {
            body: axum::body::Bytes::from(body),
            etag,
            content_type,
        }
    }

    /// An HTML page.
    pub fn html(s: String) -> Self {
        Self::new(s.into_bytes(), "text/html; charset=utf-8")
    }
}

/// One artifact of the vault, with its lineage.
#[derive(Debug, Clone, Serialize)]
pub struct VaultItem {
    /// `<run id>/<member>`: stable and unique.
    pub id: String,
    /// The run (URL id).
    pub run: String,
    /// Its plan.
    pub plan_id: String,
    /// The run's state (`ok`, `not-valid`, …).
    pub run_state: String,
    /// The task that produced it.
    pub task_id: String,
    /// The worker (name, registry, declaration and executable digests).
    pub worker: serde_json::Value,
    /// The task's inputs digest.
    pub inputs_digest: serde_json::Value,
    /// Files of earlier tasks the task consumed, with their digests.
    pub consumed: serde_json::Value,
    /// The artifact (name, member, size, digest, media type).
    pub artifact: serde_json::Value,
}

/// Every worker artifact of the listed runs, in list order.
pub fn vault_items(snap: &Snapshot) -> Vec<VaultItem> {
    let mut out = Vec::new();
    for r in &snap.runs {
        let Some(a) = &r.artifacts else { continue };
        for t in &a.tasks {
            for art in &t.artifacts {
                out.push(VaultItem {
                    id: format!("{}/{}", r.row.id, art.member),
                    run: r.row.id.clone(),
                    plan_id: a.plan_id.clone(),
                    run_state: r.row.state.clone(),
                    task_id: t.task_id.clone(),
                    worker: serde_json::to_value(&t.worker).unwrap_or_default(),
                    inputs_digest: serde_json::to_value(&t.inputs_digest).unwrap_or_default(),
                    consumed: serde_json::to_value(&t.consumed).unwrap_or_default(),
                    artifact: serde_json::to_value(art).unwrap_or_default(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file_times(p: &Path) -> (std::fs::FileTimes, u32) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let t = std::fs::FileTimes::new()
            .set_accessed(m.accessed().unwrap())
            .set_modified(m.modified().unwrap());
        (t, m.permissions().mode())
    }

    /// Put back what an attacker can put back: content length, modification time, mode.
    fn restore(p: &Path, (t, mode): &(std::fs::FileTimes, u32)) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(*mode)).unwrap();
        let f = std::fs::File::options().write(true).open(p).or_else(|_| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644))?;
            std::fs::File::options().write(true).open(p)
        });
        if let Ok(f) = f {
            let _ = f.set_times(*t);
        }
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }

    /// Seeded tampers of a bundle-shaped tree, each undoing every field an unprivileged
    /// process can set (size, modification time, mode): the fingerprint changes every time,
    /// and never without a change.
    #[test]
    fn every_generated_in_place_tamper_changes_the_fingerprint() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("run");
        std::fs::create_dir_all(dir.join("logs/a")).unwrap();
        let names = [
            "artifact_index.json",
            "summary.json",
            "runtime_results.json",
            "logs/a/x.stdout",
            "logs/a/y.stderr",
        ];
        for (i, n) in names.iter().enumerate() {
            std::fs::write(
                dir.join(n),
                format!("{{\"member\": {i}, \"pad\": \"abcdefgh\"}}\n"),
            )
            .unwrap();
            std::fs::set_permissions(dir.join(n), std::fs::Permissions::from_mode(0o444)).unwrap();
        }
        let mut seed: u64 = 1919;
        for round in 0..60 {
            let before = fingerprint(&dir).unwrap();
            assert!(before.complete);
            assert_eq!(
                fingerprint(&dir).unwrap().fp,
                before.fp,
                "round {round}: the same tree, the same fingerprint"
            );
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let victim = dir.join(names[(seed >> 33) as usize % names.len()]);
            let saved = file_times(&victim);
            let kind = (seed >> 40) % 6;
            match kind {
                // One byte flipped in place, same size.
                0 => {
                    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644))
                        .unwrap();
                    let mut b = std::fs::read(&victim).unwrap();
                    let at = (seed >> 8) as usize % b.len();
                    b[at] ^= 0x01;
                    std::fs::write(&victim, &b).unwrap();
                }
                // Mode changed and changed back.
                1 => {
                    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o666))
                        .unwrap();
                }
                // Replaced by a copy with the same bytes (a new inode).
                2 => {
                    let b = std::fs::read(&victim).unwrap();
                    let tmp = victim.with_extension("tmp");
                    std::fs::write(&tmp, &b).unwrap();
                    std::fs::rename(&tmp, &victim).unwrap();
                }
                // A hard link made and removed again (the link count and ctime move).
                3 => {
                    let l = t.path().join(format!("link{round}"));
                    std::fs::hard_link(&victim, &l).unwrap();
                    std::fs::remove_file(&l).unwrap();
                }
                // A file added beside the members.
                4 => {
                    std::fs::write(dir.join(format!("logs/extra{round}")), b"x").unwrap();
                }
                // The content swapped with the same length, via truncate and rewrite.
                _ => {
                    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644))
                        .unwrap();
                    let b = std::fs::read(&victim).unwrap();
                    std::fs::write(&victim, b"").unwrap();
                    std::fs::write(&victim, &b).unwrap();
                }
            }
            restore(&victim, &saved);
            let after = fingerprint(&dir).unwrap();
            assert_ne!(
                after.fp,
                before.fp,
                "round {round}: tamper {kind} of {} left the fingerprint unchanged",
                victim.display()
            );
        }
    }

    /// A bundle of one member and an index naming `run_id`; the index's blake3.
    fn fake_bundle(out: &Path, run_id: &str) -> String {
        let dir = out.join(run_id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("summary.md"), format!("# {run_id}\n")).unwrap();
        let index = serde_json::json!({
            "schema_version": crate::model::index::INDEX_SCHEMA_VERSION,
            "run_id": run_id,
            "status": "complete",
            "algorithm": "blake3",
            "entries": [],
            "file_count": 0,
            "total_bytes": 0,
            "missing": [],
        });
        let bytes = serde_json::to_vec(&index).unwrap();
        std::fs::write(dir.join(INDEX_FILE), &bytes).unwrap();
        crate::util::digest::blake3_hex(&bytes)
    }

    /// What makes a scan read a bundle again (the module doc): its own metadata, the audit
    /// log's answer for its run, the trust file, a broken log; and nothing else, so a run
    /// appended to the log costs one verification, not one per bundle.
    #[test]
    fn a_scan_verifies_again_exactly_the_bundles_whose_fingerprint_or_attestation_changed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let state = root.join(".nexusmon");
        crate::govern::init::init(&state).unwrap();
        let out = root.join("out");
        let r1 = fake_bundle(&out, "r1");
        fake_bundle(&out, "r2");
        let cat = Catalog::new(Settings {
            root: root.to_path_buf(),
            state_dir: Some(state.clone()),
            outs: vec![out.clone()],
            packets: Vec::new(),
            plans: Vec::new(),
            rescan: Duration::from_secs(1),
            reverify: Duration::from_hours(1),
        });
        assert_eq!(cat.scan(), 2, "first scan: every bundle");
        assert_eq!(cat.scan(), 0, "nothing changed: nothing read again");

        let gov = crate::govern::Governance::open(&state).unwrap();
        let r3 = fake_bundle(&out, "r3");
        let seal = |run_id: &str, index_blake3: &str| {
            gov.record_run_sealed(&crate::govern::SealedRun {
                plan_id: "p",
                run_id,
                status: "complete",
                bundle_dir: &out.join(run_id),
                index_blake3,
                anchored_head: None,
            })
            .unwrap();
        };
        seal("r3", &r3);
        assert_eq!(
            cat.scan(),
            1,
            "a new run sealed in the log: only it is read"
        );
        assert_eq!(cat.scan(), 0);
        seal("r1", &r1);
        assert_eq!(
            cat.scan(),
            1,
            "the log now answers for r1: only r1 is read again"
        );
        let snap = cat.snapshot();
        assert_eq!(
            snap.get("r1").unwrap().row.anchor["state"],
            "anchored",
            "{:?}",
            snap.get("r1").unwrap().row
        );

        std::fs::write(root.join("out/r2/summary.md"), b"# r2, edited\n").unwrap();
        assert_eq!(
            cat.scan(),
            1,
            "a member edited: only its bundle is read again"
        );

        let trust = state.join(crate::govern::state::TRUST_FILE);
        let mut text = std::fs::read_to_string(&trust).unwrap();
        text.push_str("# one more comment\n");
        std::fs::write(&trust, text).unwrap();
        assert_eq!(
            cat.scan(),
            3,
            "the trust file edited: every bundle is read again"
        );
        assert_eq!(cat.scan(), 0);

        // One sealed entry rewritten: the chain no longer verifies, no run is anchored.
        let log = state.join(crate::govern::state::AUDIT_FILE);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("\"run_id\":\"r3\""), "{text}");
        std::fs::write(&log, text.replace("\"run_id\":\"r3\"", "\"run_id\":\"r4\"")).unwrap();
        assert_eq!(cat.scan(), 3, "a broken log: every bundle is read again");
        let snap = cat.snapshot();
        for r in &snap.runs {
            assert_eq!(r.row.anchor["state"], "not-anchored", "{:?}", r.row);
        }
        assert_eq!(cat.scan(), 0);
    }

    #[test]
    fn a_bundle_without_an_index_has_none_and_symlinks_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("run");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("escape")).unwrap();
        let m = fingerprint(&dir).unwrap();
        assert!(m.index_blake3.is_none());
        assert!(m.complete);
    }
}
