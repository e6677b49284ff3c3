//! `approve`, `audit`, `omens`, `evolve`, `evolution`, `missions`, `init`: thin handlers
//! over [`crate::govern`].

use std::path::{Path, PathBuf};

use serde_json::json;

use super::args::{
    ApproveArgs, AuditArgs, AuditCommand, EvolutionArgs, EvolutionCommand, EvolveArgs, InitArgs,
    MissionsArgs, OmensArgs, OmensClearArgs, OmensCommand,
};
use super::{Ctx, Io};
use crate::govern::audit::VerifyReport;
use crate::govern::clearing::{self, Clearance, Cleared};
use crate::govern::evolve::{self, Evolved};
use crate::govern::state::{self, STATE_DIR_NAME};
use crate::govern::{anchors, approve, missions, omens, short_hex};
use crate::model::approval::SIGNATURE_NAMESPACE;
use crate::report::table::{Column, Table};
use crate::util::{fsx, json};
use crate::{Result, exit_code};

fn write_json(io: &mut Io<'_>, v: &impl serde::Serialize) -> Result<()> {
    io.out_json(&json::to_sorted_pretty(v)?)
}

// ---------------------------------------------------------------------------------------
// init
// ---------------------------------------------------------------------------------------

pub fn init(ctx: &Ctx, io: &mut Io<'_>, a: &InitArgs) -> Result<i32> {
    let dir = match (&a.dir, &ctx.state_dir) {
        (Some(d), _) => fsx::absolute(d)?.join(STATE_DIR_NAME),
        (None, Some(s)) => fsx::absolute(s)?,
        (None, None) => ctx.root.join(STATE_DIR_NAME),
    };
    let report = crate::govern::init::init(&dir)?;
    if ctx.json {
        write_json(io, &report)?;
    }
    if !ctx.quiet {
        if report.created.is_empty() {
            io.errln(format!(
                "{} is already initialized; nothing changed",
                report.dir.display()
            ))?;
        } else {
            io.errln(format!(
                "initialized {} (created {})",
                report.dir.display(),
                report.created.join(", ")
            ))?;
            if report.created.iter().any(|c| c == state::TRUST_FILE) {
                io.errln(format!(
                    "next: add operator keys to {} (one line per key, roles=approver in the comment)",
                    report.dir.join(state::TRUST_FILE).display()
                ))?;
            }
        }
    }
    Ok(exit_code::OK)
}

// ---------------------------------------------------------------------------------------
// approve
// ---------------------------------------------------------------------------------------

pub fn approve(ctx: &Ctx, io: &mut Io<'_>, a: &ApproveArgs) -> Result<i32> {
    let done = approve::approve(&approve::ApproveRequest {
        plan: &a.plan,
        approver: &a.approver,
        scope: &a.scope,
        expires_in: &a.expires_in,
        roles: &a.roles,
        out: a.out.as_deref(),
        sign_with: a.sign_with.as_deref(),
        overwrite: a.overwrite,
        state_dir: ctx.state_dir.as_deref(),
        root: &ctx.root,
        uses: a.uses,
    })?;
    let record = &done.record;
    if ctx.json {
        write_json(
            io,
            &json!({
                "record": done.out.display().to_string(),
                "signature": done.signed_by.as_ref().map(|_| done.sig_out.display().to_string()),
                "plan_id": record.plan_id,
                "plan_digest": record.plan_digest,
                "approver": record.approver,
                "scope": record.scope,
                "expires_at": record.expires_at,
                "uses": record.uses,
                "key_fingerprint": done.signed_by,
                "audit_head": done.audit_head,
                "warnings": done.warnings,
            }),
        )?;
    }
    if !ctx.quiet {
        io.errln(format!(
            "wrote approval {} for plan {} (digest {}, scope {}, expires {}{})",
            done.out.display(),
            record.plan_id,
            short_hex(&record.plan_digest.blake3),
            record.scope,
            record.expires_at,
            record
                .uses
                .map(|n| format!(", {n} use(s)"))
                .unwrap_or_default()
        ))?;
        match &done.signed_by {
            Some(fp) => io.errln(format!("signed {} with key {fp}", done.sig_out.display()))?,
            None => io.errln(format!(
                "not signed yet; sign it with:\n  ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n {SIGNATURE_NAMESPACE} {}",
                done.out.display()
            ))?,
        }
    }
    for w in &done.warnings {
        io.errln(format!("warning: {w}"))?;
    }
    Ok(exit_code::OK)
}

// ---------------------------------------------------------------------------------------
// audit verify
// ---------------------------------------------------------------------------------------

pub fn audit(ctx: &Ctx, io: &mut Io<'_>, a: &AuditArgs) -> Result<i32> {
    let AuditCommand::Verify(v) = &a.command;
    let paths: Vec<PathBuf> = if v.anchors.is_empty() {
        let out = ctx.default_out();
        if out.is_dir() { vec![out] } else { Vec::new() }
    } else {
        v.anchors.clone()
    };
    let (report, found) = anchors::verify_log(ctx.state_dir.as_deref(), &ctx.root, &paths)?;
    if ctx.json {
        write_json(
            io,
            &json!({
                "report": report,
                "anchor_sources": found.anchors,
                "anchor_notes": found.notes,
            }),
        )?;
    }
    render_verify(ctx, io, &report, &found)?;
    Ok(if report.ok {
        exit_code::OK
    } else {
        exit_code::FINDINGS
    })
}

fn render_verify(
    ctx: &Ctx,
    io: &mut Io<'_>,
    r: &VerifyReport,
    found: &anchors::Found,
) -> Result<()> {
    let head = r.head.as_ref().map_or_else(
        || "no head".to_string(),
        |h| format!("head seq {} ({})", h.seq, short_hex(&h.blake3)),
    );
    if r.ok {
        if !ctx.quiet {
            io.errln(format!(
                "audit log {}: ok: {} lines, {head}, chain intact, {} anchor(s) checked",
                r.path.display(),
                r.lines,
                r.anchors_checked
            ))?;
        }
    } else {
        io.errln(format!(
            "audit log {}: {} problem(s) ({} lines, {head}, {} anchor(s) checked)",
            r.path.display(),
            r.problems.len(),
            r.lines,
            r.anchors_checked
        ))?;
        for p in &r.problems {
            io.errln(format!("  {}", p.message))?;
        }
        if let Some(l) = r.first_bad_line {
            io.errln(format!("first bad line: {l}"))?;
        }
    }
    if !ctx.quiet {
        for n in r.notes.iter().chain(&found.notes) {
            io.errln(format!("note: {n}"))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// omens
// ---------------------------------------------------------------------------------------

pub fn omens(ctx: &Ctx, io: &mut Io<'_>, a: &OmensArgs) -> Result<i32> {
    match &a.command {
        OmensCommand::List => omens_list(ctx, io),
        OmensCommand::Clear(c) => omens_clear(ctx, io, c),
    }
}

fn omens_list(ctx: &Ctx, io: &mut Io<'_>) -> Result<i32> {
    let rows = clearing::sorted_omens(ctx.state_dir.as_deref(), &ctx.root)?;
    if ctx.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(fp, o)| {
                json!({
                    "fingerprint": fp,
                    "level": omens::level(o).as_str(),
                    "count": omens::effective(o),
                    "total": o.count,
                    "plan_id": o.plan_id,
                    "scenario_id": o.scenario_id,
                    "mismatch_kind": o.mismatch_kind,
                    "outcome": o.outcome,
                    "last_seen": o.last_seen,
                    "last_run_id": o.last_run_id,
                    "clearances": o.clearances,
                })
            })
            .collect();
        write_json(io, &json!({ "omens": list }))?;
        return Ok(exit_code::OK);
    }
    if rows.is_empty() {
        io.errln("no omens")?;
        return Ok(exit_code::OK);
    }
    let table = Table::new(&[
        Column::left().fixed(16),
        Column::left().fixed(14),
        Column::right().fixed(5),
        Column::left().fixed(24),
        Column::left().fixed(32),
        Column::left(),
    ])
    .keep_trailing();
    io.outln(table.line(&[
        "FINGERPRINT",
        "LEVEL",
        "COUNT",
        "PLAN",
        "SCENARIO",
        "FAILURE",
    ]))?;
    for (fp, o) in &rows {
        let count = if o.cleared_at > 0 {
            format!("{}/{}", omens::effective(o), o.count)
        } else {
            o.count.to_string()
        };
        io.outln(table.line(&[
            fp.get(..16).unwrap_or(fp),
            omens::level(o).as_str(),
            &count,
            o.plan_id.as_str(),
            o.scenario_id.as_str(),
            &format!("{} ({})", o.mismatch_kind, o.outcome),
        ]))?;
    }
    Ok(exit_code::OK)
}

fn omens_clear(ctx: &Ctx, io: &mut Io<'_>, a: &OmensClearArgs) -> Result<i32> {
    let done = clearing::clear(&clearing::ClearRequest {
        fingerprint: &a.fingerprint,
        approver: &a.approver,
        sign_with: a.sign_with.as_deref(),
        record: a.record.as_deref(),
        prepare: a.prepare,
        expires_in: &a.expires_in,
        state_dir: ctx.state_dir.as_deref(),
        root: &ctx.root,
    })?;
    match done {
        Cleared::Prepared { path, fingerprint } => {
            if ctx.json {
                write_json(
                    io,
                    &json!({"prepared": path.display().to_string(), "cleared": false}),
                )?;
            }
            io.errln(format!(
                "wrote clearance record {} (not cleared yet); sign it, then clear:\n  ssh-keygen -Y sign -f KEY -n {SIGNATURE_NAMESPACE} {}\n  nexusmon omens clear {} --approver {} --record {}",
                path.display(),
                path.display(),
                short_hex(&fingerprint),
                a.approver,
                path.display()
            ))?;
        }
        Cleared::Cleared(c) => {
            let Clearance {
                fingerprint,
                omen,
                approver,
                key_fingerprint,
                audit_head,
            } = *c;
            if ctx.json {
                write_json(
                    io,
                    &json!({"cleared": true, "fingerprint": fingerprint, "approver": approver, "audit_head": audit_head}),
                )?;
            }
            if !ctx.quiet {
                io.errln(format!(
                    "cleared omen {} ({} {}) at count {} by {approver} (key {key_fingerprint})",
                    short_hex(&fingerprint),
                    omen.plan_id,
                    omen.scenario_id,
                    omen.count,
                ))?;
            }
        }
    }
    Ok(exit_code::OK)
}

// ---------------------------------------------------------------------------------------
// evolve / evolution status
// ---------------------------------------------------------------------------------------

/// `evolve --packets P…`: every packet is checked against its bundle first
/// ([`crate::promote::check_packet`]); if any is refused, nothing is written (exit 1).
pub fn evolve(ctx: &Ctx, io: &mut Io<'_>, a: &EvolveArgs) -> Result<i32> {
    let (report, skipped, next, head) =
        match evolve::evolve(ctx.state_dir.as_deref(), &ctx.root, &ctx.cwd, &a.packets)? {
            Evolved::Refused(refused) => {
                return super::promote::report_refused(
                    ctx,
                    io,
                    &refused,
                    a.packets.len(),
                    "nothing was written (the evolution state and the audit log are unchanged)",
                );
            }
            Evolved::Consumed(c) => (c.report, c.skipped, c.state, c.audit_head),
        };
    if ctx.json {
        write_json(
            io,
            &json!({
                "written": head.is_some(),
                "report": report,
                "skipped": skipped.iter().map(|(p, w)| json!({"packet": p.display().to_string(), "why": w})).collect::<Vec<_>>(),
                "state": next,
                "audit_head": head,
            }),
        )?;
    }
    if !ctx.quiet {
        for (p, why) in &skipped {
            io.errln(format!(
                "skipped {}: not a mission packet ({why})",
                p.display()
            ))?;
        }
        io.errln(format!(
            "consumed {} new outcome(s), {} already consumed: XP {} → {}, level {} → {}",
            report.added.len(),
            report.already_consumed.len(),
            report.xp_before,
            report.xp_after,
            report.level_before.as_str(),
            report.level_after.as_str()
        ))?;
        for c in &report.gained {
            io.errln(format!("gained capability {}", c.as_str()))?;
        }
        for c in &report.revoked {
            io.errln(format!("revoked capability {}", c.as_str()))?;
        }
    }
    Ok(exit_code::OK)
}

pub fn evolution(ctx: &Ctx, io: &mut Io<'_>, a: &EvolutionArgs) -> Result<i32> {
    let EvolutionCommand::Status = a.command;
    let (state, next) = evolve::status(ctx.state_dir.as_deref(), &ctx.root)?;
    let why = crate::govern::evolution::held_because(&state);
    if ctx.json {
        write_json(
            io,
            &json!({
                "state": state,
                "next_level": next.map(|(l, t)| json!({"level": l, "xp": t})),
                "held_because": why,
            }),
        )?;
        return Ok(exit_code::OK);
    }
    let caps: Vec<&str> = state.capabilities.iter().map(|c| c.as_str()).collect();
    let rows = [
        ["level".to_string(), state.level.as_str().to_string()],
        [
            "xp".into(),
            format!(
                "{} (earned {}, lost {} to {} violation(s))",
                state.xp, state.earned_xp, state.penalty_xp, state.violations
            ),
        ],
        [
            "next".into(),
            match next {
                Some((l, t)) => format!("{} at {t} XP ({} to go)", l.as_str(), t - state.xp),
                None => "(top level)".into(),
            },
        ],
        [
            "capabilities".into(),
            if caps.is_empty() {
                "(none)".to_string()
            } else {
                caps.join(", ")
            },
        ],
        [
            "missions".into(),
            format!(
                "{} passed, {} outcome(s) consumed, {} rerun(s) of an outcome already counted",
                state.missions_passed,
                state.consumed.len(),
                state.repeats.len()
            ),
        ],
    ];
    io.out_bytes(
        Table::new(&[Column::left().fixed(12), Column::left()])
            .keep_trailing()
            .render(&rows)
            .as_bytes(),
    )?;
    if !why.is_empty() {
        io.outln("why each capability is held:")?;
        for h in &why {
            io.outln(format!(
                "  {}: unlocked at {} ({} XP); XP {} = {} earned - {} lost, earned by:",
                h.capability.as_str(),
                h.level.as_str(),
                h.threshold,
                state.xp,
                state.earned_xp,
                h.penalty_xp
            ))?;
            for e in &h.earned_by {
                io.outln(format!(
                    "    packet {} (run {}, plan {}): +{} XP",
                    short_hex(&e.packet_digest),
                    e.run_id,
                    e.plan_id,
                    e.xp
                ))?;
            }
        }
    }
    Ok(exit_code::OK)
}

// ---------------------------------------------------------------------------------------
// missions
// ---------------------------------------------------------------------------------------

pub fn missions(ctx: &Ctx, io: &mut Io<'_>, a: &MissionsArgs) -> Result<i32> {
    let roots: Vec<PathBuf> = if a.paths.is_empty() {
        vec![ctx.root.join("plans")]
    } else {
        a.paths.clone()
    };
    let outs: Vec<PathBuf> = if a.out.is_empty() {
        vec![ctx.default_out()]
    } else {
        a.out
            .iter()
            .map(|o| fsx::absolute(&ctx.cwd.join(o)))
            .collect::<Result<_>>()?
    };
    let rows = missions::overview(
        ctx.state_dir.as_deref(),
        &ctx.root,
        &roots,
        &outs,
        jiff::Timestamp::now(),
    )?;
    if ctx.json {
        write_json(io, &json!({ "missions": rows }))?;
        return Ok(exit_code::OK);
    }
    if rows.is_empty() {
        io.errln(format!(
            "no mission plans under {}",
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        return Ok(exit_code::OK);
    }
    let table = Table::new(&[
        Column::left().fixed(18),
        Column::left().fixed(4),
        Column::left().fixed(15),
        Column::left().fixed(9),
        Column::left().fixed(24),
        Column::left(),
    ])
    .keep_trailing();
    io.outln(table.line(&["STATE", "RANK", "COMPOSITE", "APPROVALS", "PLAN", "PATH"]))?;
    for r in &rows {
        mission_row(ctx, io, &table, r)?;
    }
    Ok(exit_code::OK)
}

/// One mission: its table line, the run in progress, and (verbose, or an invalid plan)
/// its flags, reasons, rejected approvals and error.
fn mission_row(ctx: &Ctx, io: &mut Io<'_>, table: &Table, r: &missions::MissionRow) -> Result<()> {
    let rank = r.rank.map_or_else(
        || "-".to_string(),
        |k| {
            serde_json::to_value(k)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        },
    );
    let comp = match (r.composite, r.band) {
        (Some(s), Some(b)) => format!("{s} {}", b.as_str()),
        _ => "-".into(),
    };
    io.outln(table.line(&[
        r.state.as_str(),
        &rank,
        &comp,
        &format!("{}/{}", r.approvals_valid, r.approvals_required),
        r.plan_id.as_deref().unwrap_or("-"),
        &display_rel(&r.path, &ctx.cwd),
    ]))?;
    if let (Some(run), Some(since)) = (&r.run_id, &r.run_started_at) {
        io.outln(format!(
            "    run {run} since {since}{}",
            r.run_out_root
                .as_ref()
                .map_or_else(String::new, |o| format!(
                    " (out root {})",
                    display_rel(o, &ctx.cwd)
                ))
        ))?;
    }
    if ctx.verbose > 0 || r.state == missions::MissionState::Invalid {
        for flag in &r.flags {
            io.outln(format!("    flag: {flag}"))?;
        }
        for reason in r
            .reasons
            .iter()
            .filter(|x| !matches!(x.as_str(), "parallelism-limited"))
        {
            io.outln(format!("    {reason}"))?;
        }
        for rej in &r.approvals_rejected {
            io.outln(format!("    rejected {rej}"))?;
        }
        if let Some(e) = &r.error {
            io.outln(format!("    {e}"))?;
        }
    }
    Ok(())
}

fn display_rel(p: &Path, cwd: &Path) -> String {
    p.strip_prefix(cwd).unwrap_or(p).display().to_string()
}
