//! `emit-promotion`, `summarize-ops`, `promote`: resolve arguments into `promote::`
//! settings, call the library, render the outcome (human text on stderr for the commands
//! that write files, the op table on stdout; `--json` objects on stdout).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::args::{EmitPromotionArgs, PromoteArgs, SummarizeOpsArgs};
use super::{Ctx, Io};
use crate::govern::{promotion, short_hex};
use crate::model::mapping::{OpCounts, OpSummary};
use crate::model::packet::PromotionPacket;
use crate::promote::verify::Refusal;
use crate::promote::{self, EmitSettings, PromoteSettings, promotability};
use crate::report::table::{Column, Table};
use crate::util::{fsx, json};
use crate::{Result, exit_code};

/// `p` resolved against the current directory.
pub(super) fn abs(ctx: &Ctx, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        ctx.cwd.join(p)
    }
}

/// `--state-dir`, resolved against the current directory.
fn state_dir(ctx: &Ctx) -> Option<PathBuf> {
    ctx.state_dir.as_ref().map(|d| abs(ctx, d))
}

fn reasons_json(p: &PromotionPacket) -> Vec<serde_json::Value> {
    let g = &p.promotability.gating_inputs;
    p.promotability
        .reasons
        .iter()
        .map(|r| json!({"reason": r.as_str(), "detail": promotability::explain(*r, g)}))
        .collect()
}

fn reasons_text(p: &PromotionPacket) -> String {
    let g = &p.promotability.gating_inputs;
    let rows: Vec<[String; 2]> = p
        .promotability
        .reasons
        .iter()
        .map(|r| [r.as_str().to_string(), promotability::explain(*r, g)])
        .collect();
    Table::left(2).indent("  ").keep_trailing().render(&rows)
}

/// `emit-promotion --bundle B --out F [--require-promotable] [--overwrite]`.
#[allow(clippy::many_single_char_names)]
pub fn emit(ctx: &Ctx, io: &mut Io<'_>, a: &EmitPromotionArgs) -> Result<i32> {
    let settings = EmitSettings {
        bundle: abs(ctx, &a.bundle),
        out: fsx::absolute(&abs(ctx, &a.out))?,
        root: ctx.root.clone(),
        require_promotable: a.require_promotable,
        overwrite: a.overwrite,
    };
    let o = promotion::emit_and_record(
        &settings,
        state_dir(ctx).as_deref(),
        a.trust.as_ref().map(|t| abs(ctx, t)).as_deref(),
    )?;
    let p = &o.packet;
    if ctx.json {
        io.out_json(&json::to_sorted_pretty(&json!({
            "written": o.written,
            "packet": o.packet_path,
            "statement": o.statement_path,
            "packet_blake3": o.packet_blake3,
            "packet_digest": o.packet_digest,
            "run_id": p.run_id,
            "plan_id": p.plan.plan_id,
            "promotable": p.promotability.promotable,
            "reasons": reasons_json(p),
            "audit_head": o.audit_head,
        }))?)?;
    }
    let n = p.promotability.reasons.len();
    let plural = if n == 1 { "" } else { "s" };
    if !o.written {
        io.errln(format!(
            "error: the packet of run {} is NOT promotable ({n} reason{plural}); nothing was written (--require-promotable)\n{}",
            p.run_id,
            reasons_text(p).trim_end()
        ))?;
        return Ok(exit_code::FINDINGS);
    }
    if !p.promotability.promotable {
        // Said even with -q: a packet must never be misread as promotable.
        io.errln(format!(
            "warning: the packet of run {} is NOT promotable ({n} reason{plural}):\n{}",
            p.run_id,
            reasons_text(p).trim_end()
        ))?;
    }
    if !ctx.quiet {
        let status = p
            .bundle
            .status
            .map_or("unknown", crate::bundle::check::status_word);
        let rows = [
            [
                "packet".to_string(),
                format!(
                    "{} (blake3 {})",
                    o.packet_path.display(),
                    short_hex(&o.packet_blake3)
                ),
            ],
            ["statement".into(), o.statement_path.display().to_string()],
            [
                "run".into(),
                format!(
                    "{} of plan {} ({status}{})",
                    p.run_id,
                    p.plan.plan_id.as_deref().unwrap_or("?"),
                    if p.bundle.verified {
                        ", verified"
                    } else {
                        ", NOT verified"
                    }
                ),
            ],
            [
                "pointers".into(),
                format!(
                    "relative to the {} ({})",
                    match p.bundle.pointer_base {
                        crate::model::packet::PointerBase::ProjectRoot => "project root",
                        crate::model::packet::PointerBase::PacketDir => "packet's directory",
                    },
                    p.bundle.pointer
                ),
            ],
            [
                "promotable".into(),
                if p.promotability.promotable {
                    "yes"
                } else {
                    "NO"
                }
                .into(),
            ],
        ];
        let text = Table::new(&[Column::left().fixed(10), Column::left()])
            .gap(" ")
            .keep_trailing()
            .render(&rows);
        io.errln(text.strip_suffix('\n').unwrap_or(&text))?;
    }
    Ok(exit_code::OK)
}

/// `summarize-ops --bundle B | --packet P [--out F]`.
pub fn summarize_ops(ctx: &Ctx, io: &mut Io<'_>, a: &SummarizeOpsArgs) -> Result<i32> {
    let summary = match (&a.bundle, &a.packet) {
        (Some(b), _) => promote::summarize_bundle(&abs(ctx, b))?,
        (None, Some(p)) => promote::summarize_packet(&abs(ctx, p), &ctx.root)?,
        (None, None) => {
            return Err(crate::Error::usage("pass --bundle DIR or --packet FILE"));
        }
    };
    let bytes = json::to_sorted_pretty(&summary)?;
    if let Some(out) = &a.out {
        let out = abs(ctx, out);
        promote::ops::write_summary(&out, &bytes)?;
        if !ctx.quiet {
            io.errln(format!("wrote {}", out.display()))?;
        }
    }
    if ctx.json {
        io.out_json(&bytes)?;
    } else if a.out.is_none() {
        io.out_bytes(ops_table(&summary).as_bytes())?;
    }
    Ok(exit_code::OK)
}

fn ops_table(s: &OpSummary) -> String {
    let all: Vec<&OpCounts> = s.operations.values().chain([&s.totals]).collect();
    let decisions: BTreeSet<&String> = all.iter().flat_map(|c| c.decisions.keys()).collect();
    let attributions: BTreeSet<&String> = all.iter().flat_map(|c| c.attribution.keys()).collect();
    let mut header = vec!["operation".to_string(), "scenarios".into()];
    header.extend(decisions.iter().map(|d| (*d).clone()));
    header.extend(attributions.iter().map(|a| (*a).clone()));
    header.push("mismatches".into());
    let row = |name: &str, c: &OpCounts| {
        let mut r = vec![name.to_string(), c.scenarios.to_string()];
        r.extend(
            decisions
                .iter()
                .map(|d| c.decisions.get(*d).copied().unwrap_or(0).to_string()),
        );
        r.extend(
            attributions
                .iter()
                .map(|a| c.attribution.get(*a).copied().unwrap_or(0).to_string()),
        );
        r.push(c.mismatches.values().sum::<u64>().to_string());
        r
    };
    let mut rows = vec![header];
    for (op, c) in &s.operations {
        rows.push(row(op, c));
    }
    rows.push(row("total", &s.totals));
    let mut out = String::new();
    let src = &s.source;
    let _ = writeln!(
        out,
        "run {} of plan {} ({}{})",
        src.run_id,
        src.plan_id.as_deref().unwrap_or("?"),
        src.kind,
        match src.promotable {
            Some(true) => ", promotable",
            Some(false) => ", NOT promotable",
            None => "",
        }
    );
    let mut columns = vec![Column::right(); rows[0].len()];
    columns[0] = Column::left();
    out.push_str(&Table::new(&columns).render(&rows));
    out.push_str("\nby profile:\n");
    for (op, c) in &s.operations {
        let parts: Vec<String> = c
            .by_profile
            .iter()
            .map(|(p, d)| {
                let counts: Vec<String> = d.iter().map(|(k, n)| format!("{k} {n}")).collect();
                format!("{p}: {}", counts.join(", "))
            })
            .collect();
        let _ = writeln!(out, "  {op}: {}", parts.join("; "));
    }
    for (op, c) in &s.operations {
        if c.mismatches.is_empty() {
            continue;
        }
        let parts: Vec<String> = c
            .mismatches
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(out, "mismatches in {op}: {}", parts.join(", "));
    }
    out
}

/// Report refused packets (`--json`: `{"written": false, "refused": [{packet, what,
/// details}]}` on stdout; always the human text on stderr, even with `-q`): exit 1.
pub(super) fn report_refused(
    ctx: &Ctx,
    io: &mut Io<'_>,
    refused: &[Refusal],
    total: usize,
    nothing_written: &str,
) -> Result<i32> {
    if ctx.json {
        io.out_json(&json::to_sorted_pretty(&json!({
            "written": false,
            "refused": refused.iter().map(|r| json!({
                "packet": r.path,
                "what": r.what,
                "details": r.details,
            })).collect::<Vec<_>>(),
        }))?)?;
    }
    let mut s = format!(
        "error: {} of {total} packet(s) refused; {nothing_written}\n",
        refused.len(),
    );
    for r in refused {
        let _ = writeln!(s, "{}: {}", r.path.display(), r.what);
        for d in &r.details {
            let _ = writeln!(s, "  {d}");
        }
    }
    io.errln(s.trim_end())?;
    Ok(exit_code::FINDINGS)
}

/// `promote --packets P… --out DIR`.
pub fn promote(ctx: &Ctx, io: &mut Io<'_>, a: &PromoteArgs) -> Result<i32> {
    let given: Vec<PathBuf> = a.packets.iter().map(|p| abs(ctx, p)).collect();
    let (packets, statements) = promote::verify::packet_paths(&given)?;
    if !ctx.quiet && ctx.verbose > 0 {
        for s in &statements {
            io.errln(format!(
                "skipped {}: an in-toto Statement, not a packet",
                s.display()
            ))?;
        }
    }
    let settings = PromoteSettings {
        packets,
        out: abs(ctx, &a.out),
        root: ctx.root.clone(),
        max_mapping_bytes: a.max_mapping_bytes,
    };
    let o = promotion::promote_and_record(
        &settings,
        state_dir(ctx).as_deref(),
        a.trust.as_ref().map(|t| abs(ctx, t)).as_deref(),
    )?;
    if !o.refused.is_empty() {
        let nothing = format!("nothing was written to {}", o.out.display());
        return report_refused(ctx, io, &o.refused, settings.packets.len(), &nothing);
    }
    let sigs = o.summary.as_ref();
    let conflicts = sigs.map_or(0, |s| s.conflicts.len());
    let profiles: usize = sigs.map_or(0, |s| s.profiles);
    let scenarios = sigs.map_or(0, |s| s.scenarios);
    if ctx.json {
        io.out_json(&json::to_sorted_pretty(&json!({
            "written": o.changed,
            "mappings": o.out,
            "added": o.added,
            "already_consumed": o.already_consumed,
            "consumed": sigs.map_or(0, |s| s.consumed),
            "profiles": profiles,
            "scenarios": scenarios,
            "conflicts": sigs.map(|s| &s.conflicts),
            "audit_head": o.audit_head,
        }))?)?;
    }
    if !ctx.quiet {
        let mut s = format!(
            "{} {}: {} new packet(s), {} already consumed; {profiles} profile definition(s), {scenarios} scenario(s), {conflicts} conflict(s)\n",
            if o.changed { "updated" } else { "unchanged" },
            o.out.display(),
            o.added.len(),
            o.already_consumed.len(),
        );
        for c in sigs.map(|s| s.conflicts.as_slice()).unwrap_or_default() {
            let _ = writeln!(
                s,
                "conflict: {} (profile {}) differs in {}:",
                c.scenario_id,
                short_hex(&c.profile_digest),
                c.fields.join(", ")
            );
            for side in &c.sides {
                let _ = writeln!(
                    s,
                    "  {} / {} / {} / oracle {} — runs {}",
                    side.decision,
                    side.attribution,
                    side.stage,
                    side.oracle,
                    side.runs.join(", ")
                );
            }
        }
        io.errln(s.trim_end())?;
    }
    Ok(exit_code::OK)
}
