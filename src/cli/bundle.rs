//! `validate-bundle`, `reindex-bundle`, and the hidden `__bundle-write`.

use std::fmt::Write as _;
use std::time::Duration;

#[cfg(feature = "fault-injection")]
use super::args::BundleWriteArgs;
use super::args::{LockMode, ReindexArgs, ValidateArgs};
use super::{Ctx, Io};
#[cfg(feature = "fault-injection")]
use crate::Error;
#[cfg(feature = "fault-injection")]
use crate::bundle::StagedBundle;
use crate::bundle::check::status_word;
#[cfg(feature = "fault-injection")]
use crate::bundle::devtool::{DevSource, DevWriteOptions, FromMode, dev_write};
#[cfg(feature = "fault-injection")]
use crate::bundle::writer::{CrashPoint, Faults};
use crate::bundle::{self, LockOptions, Report};
#[cfg(feature = "fault-injection")]
use crate::model::index::BundleStatus;
use crate::{Result, exit_code};

fn lock_options(mode: LockMode, timeout_secs: u64) -> LockOptions {
    LockOptions {
        mode: match mode {
            LockMode::Fail => bundle::LockMode::Fail,
            LockMode::Wait => bundle::LockMode::Wait,
        },
        timeout: Duration::from_secs(timeout_secs),
    }
}

/// `1.5 KiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut div: u128 = 1;
    while u128::from(n) >= div * 1024 && unit < UNITS.len() - 1 {
        div *= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{n} B");
    }
    // One decimal, rounded half up, in integers.
    let tenths = (u128::from(n) * 10 + div / 2) / div;
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// The human rendering of a check.
pub(crate) fn render_report(r: &Report) -> String {
    let mut s = String::new();
    let via = if r.via_latest { " (via LATEST)" } else { "" };
    let _ = writeln!(s, "bundle  {}{via}", r.bundle.display());
    if let Some(id) = &r.run_id {
        let status = r.status.map_or("?", status_word);
        let repaired = if r.repaired { ", repaired" } else { "" };
        let _ = writeln!(s, "run     {id} ({status}{repaired})");
    }
    if let Some(d) = &r.index_blake3 {
        let _ = writeln!(s, "index   blake3 {d}");
    }
    if let Some(fp) = &r.signed_by {
        let _ = writeln!(s, "signed  by {fp}");
    }
    if r.run_id.is_some() {
        let _ = writeln!(
            s,
            "files   {} indexed, {}; {} verified",
            r.file_count,
            human_bytes(r.total_bytes),
            r.files_verified
        );
    }
    for a in &r.attested {
        let _ = writeln!(s, "checked {a}");
    }
    if r.problems.is_empty() {
        let _ = writeln!(s, "valid");
        return s;
    }
    let kw = r
        .problems
        .iter()
        .map(|p| p.kind.as_str().len())
        .max()
        .unwrap_or(0);
    let pw = r
        .problems
        .iter()
        .map(|p| p.path.as_deref().unwrap_or("-").len())
        .max()
        .unwrap_or(0)
        .min(60);
    let n = r.problems.len();
    let _ = writeln!(s, "INVALID: {n} problem{}", if n == 1 { "" } else { "s" });
    for p in &r.problems {
        let _ = writeln!(
            s,
            "  {:kw$}  {:pw$}  {}",
            p.kind.as_str(),
            p.path.as_deref().unwrap_or("-"),
            p.detail
        );
    }
    s
}

fn print_report(ctx: &Ctx, io: &mut Io<'_>, r: &Report) -> Result<i32> {
    if ctx.json {
        io.out_json(&crate::util::json::to_sorted_pretty(r)?)?;
    } else if !(ctx.quiet && r.is_valid()) {
        io.out_bytes(render_report(r).as_bytes())?;
    }
    Ok(if r.is_valid() {
        exit_code::OK
    } else {
        exit_code::FINDINGS
    })
}

/// `validate-bundle --bundle B [--trust FILE]`: exit 0 valid, 1 problems, 2 not a bundle
/// (or an unreadable trust file or state directory).
pub fn validate(ctx: &Ctx, io: &mut Io<'_>, a: &ValidateArgs) -> Result<i32> {
    let report = crate::govern::attest::validate(
        &ctx.cwd.join(&a.bundle),
        a.trust.as_ref().map(|t| ctx.cwd.join(t)).as_deref(),
        ctx.state_dir.as_ref().map(|d| ctx.cwd.join(d)).as_deref(),
        &ctx.root,
    )?;
    print_report(ctx, io, &report)
}

/// `reindex-bundle --bundle B --strict|--repair`.
pub fn reindex(ctx: &Ctx, io: &mut Io<'_>, a: &ReindexArgs) -> Result<i32> {
    let path = ctx.cwd.join(&a.bundle);
    if a.strict {
        let report = bundle::check_bundle(&path)?;
        return print_report(ctx, io, &report);
    }
    let outcome = bundle::repair_bundle(&path, lock_options(a.lock, a.lock_timeout))?;
    if ctx.json {
        let v = serde_json::json!({
            "bundle": outcome.dir,
            "repaired": outcome.record.is_some(),
            "record": outcome.record,
            "latest_updated": outcome.latest_updated,
            "before": outcome.before,
            "after": outcome.after,
        });
        io.out_json(&crate::util::json::to_sorted_pretty(&v)?)?;
        return Ok(exit_code::OK);
    }
    let Some(rec) = &outcome.record else {
        io.outln(format!(
            "nothing to repair: {} is valid",
            outcome.dir.display()
        ))?;
        return Ok(exit_code::OK);
    };
    let mut s = String::new();
    let _ = writeln!(s, "before the repair:");
    for line in render_report(&outcome.before).lines() {
        let _ = writeln!(s, "  {line}");
    }
    let b = &rec.before;
    let _ = writeln!(
        s,
        "repaired {}: {} missing, {} mismatched, {} unindexed (old index: {})",
        outcome.dir.display(),
        b.missing.len(),
        b.mismatched.len(),
        b.unindexed.len(),
        b.index
    );
    let _ = writeln!(
        s,
        "new index lists {} files ({}), marked repaired; repair_log.json records the change",
        outcome.after.file_count,
        human_bytes(outcome.after.total_bytes)
    );
    if !rec.after.missing.is_empty() {
        let _ = writeln!(s, "recorded as missing: {}", rec.after.missing.join(", "));
    }
    if outcome.latest_updated {
        let _ = writeln!(s, "LATEST updated to the new index");
    }
    io.out_bytes(s.as_bytes())?;
    Ok(exit_code::OK)
}

/// `__bundle-write`: write and seal a bundle through the store (tests and benchmarks).
#[cfg(feature = "fault-injection")]
pub fn bundle_write(ctx: &Ctx, io: &mut Io<'_>, a: &BundleWriteArgs) -> Result<i32> {
    let crash_at = match &a.crash_at {
        None => None,
        Some(s) => Some(CrashPoint::parse(s).ok_or_else(|| {
            let names: Vec<&str> = CrashPoint::ALL.iter().map(|p| p.as_str()).collect();
            Error::usage(format!("unknown crash point `{s}`"))
                .with_hint(format!("one of: {}", names.join(", ")))
        })?),
    };
    let source = match &a.from {
        Some(dir) => DevSource::From {
            dir: ctx.cwd.join(dir),
            how: if a.move_in {
                FromMode::Move
            } else {
                FromMode::Copy
            },
        },
        None => DevSource::Generate {
            files: a.files,
            size: a.size,
            seed: a.seed,
        },
    };
    let opts = DevWriteOptions {
        out_root: ctx.cwd.join(&a.out),
        run_id: a.run_id.clone(),
        lock: lock_options(a.lock, a.lock_timeout),
        source,
        expect: a.expect.clone(),
        status: if a.failed {
            BundleStatus::Failed
        } else {
            BundleStatus::Complete
        },
        hold: Duration::from_millis(a.hold_ms),
        faults: Faults {
            crash_at,
            crash_write_number: 0,
            fail_sync: a.fail_sync,
            per_file_fsync: a.per_file_fsync,
            synced: None,
        },
        signer: a
            .sign_with
            .as_ref()
            .map(|k| bundle::SealSigner::load(&ctx.cwd.join(k)))
            .transpose()?,
    };
    let mut warnings = Vec::new();
    let outcome = dev_write(&opts, |b: &StagedBundle| warnings = b.begin_notes())?;
    for w in &warnings {
        io.errln(format!("warning: {w}"))?;
    }
    let s = &outcome.sealed;
    if ctx.json {
        let v = serde_json::json!({
            "run_id": s.run_id,
            "dir": s.dir,
            "index_blake3": s.index_blake3,
            "file_count": s.index.file_count,
            "total_bytes": s.index.total_bytes,
            "files_written": outcome.files_written,
            "cleaned": outcome.cleaned,
            "took_over": outcome.took_over,
        });
        io.out_json(&crate::util::json::to_sorted_pretty(&v)?)?;
    } else if !ctx.quiet {
        io.errln(format!(
            "sealed {} at {}: {} files, {}",
            s.run_id,
            s.dir.display(),
            s.index.file_count,
            human_bytes(s.index.total_bytes)
        ))?;
    }
    Ok(exit_code::OK)
}

/// `merge-bundles`: the merged bundle's path and shards (stderr; `--json`: stdout), exit
/// as `run` of the whole selection would have (its summary's exit code).
pub fn merge(ctx: &Ctx, io: &mut Io<'_>, a: &super::args::MergeArgs) -> Result<i32> {
    let abs = |p: &std::path::Path| super::promote::abs(ctx, p);
    let settings = crate::promote::merge::MergeSettings {
        out_root: crate::util::fsx::absolute(&abs(&a.out))?,
        inputs: a.bundles.iter().map(|b| abs(b)).collect(),
        allow_incomplete: a.allow_incomplete,
        signer: a
            .sign_with
            .as_ref()
            .map(|k| crate::bundle::SealSigner::load(&abs(k)))
            .transpose()?,
        lock: LockOptions::default(),
    };
    let state = ctx.state_dir.as_ref().map(|d| abs(d));
    let o = crate::govern::attest::merge_bundles(
        &settings,
        a.trust.as_ref().map(|t| abs(t)).as_deref(),
        state.as_deref(),
        &ctx.root,
    )?;
    if ctx.json {
        io.out_json(&crate::util::json::to_sorted_pretty(&serde_json::json!({
            "run_id": o.run_id,
            "bundle": o.dir,
            "index_blake3": o.index_blake3,
            "scenarios": o.scenarios,
            "shards": o.shards,
            "exit_code": o.exit_code,
            "exit_reason": o.exit_reason,
        }))?)?;
    } else {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "merged {} shard(s), {} scenario(s) into {} (index blake3 {})",
            o.shards.len(),
            o.scenarios,
            o.dir.display(),
            o.index_blake3
        );
        for e in &o.shards {
            let _ = writeln!(
                s,
                "  shard {}/{} {} run {} on {} ({}{})",
                e.k,
                e.n,
                e.strategy.as_str(),
                e.run_id,
                e.host,
                e.status,
                if e.promotable {
                    ", promotable".to_string()
                } else {
                    format!(", not promotable: {}", e.reasons.join(", "))
                }
            );
        }
        let _ = writeln!(s, "{}", o.exit_reason);
        io.errln(s.trim_end())?;
    }
    Ok(o.exit_code)
}
