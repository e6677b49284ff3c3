//! `approve`, `audit`, `omens`, `evolve`, `evolution`, `missions`, `init`: thin handlers
//! over [`crate::govern`].

use std::path::{Path, PathBuf};

use serde_json::json;

use super::args::{
    ApproveArgs, AuditArgs, AuditCommand, EvolutionArgs, EvolutionCommand, EvolveArgs, InitArgs,
    MissionsArgs, OmensArgs, OmensClearArgs, OmensCommand,
};
use super::{Ctx, Io};
use crate::govern::audit::{AuditKind, VerifyReport};
use crate::govern::evolution::{self, NotAnOutcome};
use crate::govern::sign::{self, RejectReason};
use crate::govern::state::{self, CLEARANCES_DIR, STATE_DIR_NAME, StateDir};
use crate::govern::trust::{self, APPROVER_ROLE, TrustStore};
use crate::govern::{Governance, anchors, approvals, missions, omens, short_hex};
use crate::model::approval::SIGNATURE_NAMESPACE;
use crate::model::evolution::MissionOutcome;
use crate::promote;
use crate::util::digest::blake3_hex;
use crate::util::{fsx, json};
use crate::{Error, Result, exit_code};

fn governance(ctx: &Ctx) -> Result<Governance> {
    Governance::discover(ctx.state_dir.as_deref(), &ctx.root)
}

fn write_json(io: &mut Io<'_>, v: &impl serde::Serialize) -> Result<()> {
    io.out_bytes(&json::to_sorted_pretty(v)?)
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
    approvals::validate_principal(&a.approver)?;
    let validity = approvals::parse_validity(&a.expires_in)?;
    if let Some(r) = a.roles.iter().find(|r| !trust::valid_role(r)) {
        return Err(Error::usage(format!("invalid role `{r}`"))
            .with_hint("roles are lowercase letters, digits and `-`, as in the trust file"));
    }
    let plan = crate::load::load_plan(&a.plan)?;
    // The state directory is optional here: an operator may approve on a machine without
    // one. When it exists, the approval is recorded and the key checked against the trust
    // file.
    let gov = match governance(ctx) {
        Ok(g) => Some(g),
        // Asked for, or there but broken: that is an error, not "no state".
        Err(e) if ctx.state_dir.is_some() || state::find(&ctx.root).is_some() => return Err(e),
        Err(_) => None,
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| approvals::default_record_path(&plan, &a.approver));
    let sig_out = sign::sig_path(&out);
    // A key that cannot be read stops here, before anything is written; an encrypted one
    // still gets its record, to be signed with ssh-keygen.
    let key = match &a.sign_with {
        Some(k) => Some((k, sign::load_private_key(k)?)),
        None => None,
    };

    let record = approvals::new_record(
        &plan,
        &approvals::NewApproval {
            approver: &a.approver,
            scope: &a.scope,
            validity,
            roles: a.roles.clone(),
            root: &ctx.root,
            now: jiff::Timestamp::now(),
        },
    )?;
    let bytes = approvals::record_bytes(&record)?;
    approvals::write_file(&out, &bytes, a.overwrite)?;
    let mut signed_by = None;
    match key {
        None => {
            if a.overwrite && sig_out.exists() {
                std::fs::remove_file(&sig_out)
                    .map_err(|e| Error::io("remove stale signature", &sig_out, e))?;
            }
        }
        Some((key_path, sign::SigningKey::Encrypted)) => {
            let e = sign::encrypted_key_error(key_path, &out);
            return Err(Error::input(
                key_path,
                format!(
                    "{}; the record {} was written but is not signed",
                    e.message(),
                    out.display()
                ),
            )
            .with_hint(e.hint().unwrap_or_default().to_string()));
        }
        Some((key_path, sign::SigningKey::Ready(key))) => {
            let pem = sign::sign(&key, &bytes, key_path)?;
            approvals::write_file(&sig_out, pem.as_bytes(), a.overwrite)?;
            signed_by = Some(sign::fingerprint(key.public_key()));
        }
    }

    let mut warnings = Vec::new();
    let mut audit_head = None;
    if let Some(gov) = &gov {
        match gov.trust() {
            Ok(trust) => warnings.extend(trust_warnings(&trust, &a.approver, signed_by.as_deref())),
            Err(e) => warnings.push(format!("the trust file cannot be read: {e}")),
        }
        audit_head = Some(gov.audit().append(
            AuditKind::ApprovalRecorded,
            json!({
                "plan_id": record.plan_id,
                "plan_digest": record.plan_digest,
                "approver": record.approver,
                "scope": record.scope,
                "expires_at": record.expires_at,
                "record": out.display().to_string(),
                "record_blake3": blake3_hex(&bytes),
                "signed": signed_by.is_some(),
                "key_fingerprint": signed_by,
            }),
        )?);
    } else {
        warnings.push(format!(
            "no {STATE_DIR_NAME}/ found: the approval is not recorded in an audit log (run `nexusmon init`)"
        ));
    }

    if ctx.json {
        write_json(
            io,
            &json!({
                "record": out.display().to_string(),
                "signature": signed_by.as_ref().map(|_| sig_out.display().to_string()),
                "plan_id": record.plan_id,
                "plan_digest": record.plan_digest,
                "approver": record.approver,
                "scope": record.scope,
                "expires_at": record.expires_at,
                "key_fingerprint": signed_by,
                "audit_head": audit_head,
                "warnings": warnings,
            }),
        )?;
    }
    if !ctx.quiet {
        io.errln(format!(
            "wrote approval {} for plan {} (digest {}, scope {}, expires {})",
            out.display(),
            record.plan_id,
            short_hex(&record.plan_digest.blake3),
            record.scope,
            record.expires_at
        ))?;
        match &signed_by {
            Some(fp) => io.errln(format!("signed {} with key {fp}", sig_out.display()))?,
            None => io.errln(format!(
                "not signed yet; sign it with:\n  ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n {SIGNATURE_NAMESPACE} {}",
                out.display()
            ))?,
        }
    }
    for w in &warnings {
        io.errln(format!("warning: {w}"))?;
    }
    Ok(exit_code::OK)
}

/// Why an approval by `approver` (signed with the key `fp`, if any) would not count.
fn trust_warnings(trust: &TrustStore, approver: &str, fp: Option<&str>) -> Vec<String> {
    let lines = trust.entries_for_principal(approver);
    let path = trust.path.display();
    if lines.is_empty() {
        return vec![format!(
            "`{approver}` is not a principal in {path}; verification will reject this approval"
        )];
    }
    let Some(fp) = fp else { return Vec::new() };
    let with_key: Vec<_> = lines.iter().filter(|e| e.fingerprint == fp).collect();
    if with_key.is_empty() {
        return vec![format!(
            "key {fp} is not listed for `{approver}` in {path}; verification will reject this approval"
        )];
    }
    if !with_key.iter().any(|e| e.roles.contains(APPROVER_ROLE)) {
        return vec![format!(
            "the line for key {fp} in {path} does not grant `roles={APPROVER_ROLE}`; verification will reject this approval"
        )];
    }
    Vec::new()
}

// ---------------------------------------------------------------------------------------
// audit verify
// ---------------------------------------------------------------------------------------

pub fn audit(ctx: &Ctx, io: &mut Io<'_>, a: &AuditArgs) -> Result<i32> {
    let AuditCommand::Verify(v) = &a.command;
    let gov = governance(ctx)?;
    let paths: Vec<PathBuf> = if v.anchors.is_empty() {
        let out = ctx.default_out();
        if out.is_dir() { vec![out] } else { Vec::new() }
    } else {
        v.anchors.clone()
    };
    let found = anchors::collect(&paths)?;
    let report = gov.audit().verify(&found.anchors)?;
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
    let gov = governance(ctx)?;
    let file = gov.state().read_omens()?;
    let mut rows: Vec<(&String, &crate::model::omens::Omen)> = file.omens.iter().collect();
    rows.sort_by(|(fa, a), (fb, b)| {
        omens::level(b)
            .cmp(&omens::level(a))
            .then_with(|| (&a.plan_id, &a.scenario_id, fa).cmp(&(&b.plan_id, &b.scenario_id, fb)))
    });
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
    io.outln(format!(
        "{:<16}  {:<14}  {:>5}  {:<24}  {:<32}  {}",
        "FINGERPRINT", "LEVEL", "COUNT", "PLAN", "SCENARIO", "FAILURE"
    ))?;
    for (fp, o) in rows {
        let count = if o.cleared_at > 0 {
            format!("{}/{}", omens::effective(o), o.count)
        } else {
            o.count.to_string()
        };
        io.outln(format!(
            "{:<16}  {:<14}  {:>5}  {:<24}  {:<32}  {} ({})",
            fp.get(..16).unwrap_or(fp),
            omens::level(o).as_str(),
            count,
            o.plan_id,
            o.scenario_id,
            o.mismatch_kind,
            o.outcome
        ))?;
    }
    Ok(exit_code::OK)
}

fn omens_clear(ctx: &Ctx, io: &mut Io<'_>, a: &OmensClearArgs) -> Result<i32> {
    approvals::validate_principal(&a.approver)?;
    if a.sign_with.is_none() && a.record.is_none() && !a.prepare {
        return Err(Error::usage("say how the clearance is signed").with_hint(
            "pass --sign-with KEY, or --prepare to write a record to sign with ssh-keygen and then --record FILE",
        ));
    }
    let validity = approvals::parse_validity(&a.expires_in)?;
    let gov = governance(ctx)?;
    let state_dir = gov.state().clone();
    let _lock = state_dir.lock()?;
    let mut file = state_dir.read_omens()?;
    let omens_path = state_dir.file(state::OMENS_FILE);
    let fp = omens::resolve(&file, &a.fingerprint, &omens_path)?;
    let current = &file.omens[&fp];
    if omens::effective(current) == 0 {
        return Err(
            Error::usage(format!("omen {} has nothing to clear", short_hex(&fp)))
                .with_hint("it has not failed since it was last cleared"),
        );
    }

    let record_path = if let Some(r) = &a.record {
        r.clone()
    } else {
        let path = clearance_path(&state_dir, &fp, &a.approver, current.count);
        let key = match &a.sign_with {
            Some(k) => match sign::load_private_key(k)? {
                sign::SigningKey::Ready(key) => Some((k, key)),
                sign::SigningKey::Encrypted => {
                    return Err(sign::encrypted_key_error(k, &path).with_hint(
                        "nexusmon does not read passphrases: use --prepare, sign the record with `ssh-keygen -Y sign -n nexusmon-approval-v1` (it can use ssh-agent), then pass it with --record",
                    ));
                }
            },
            None => None,
        };
        let rec = omens::new_clearance(&file, &fp, &a.approver, jiff::Timestamp::now(), validity)?;
        let bytes = approvals::record_bytes(&rec)?;
        approvals::write_file(&path, &bytes, true)?;
        let sig = sign::sig_path(&path);
        if let Some((key_path, key)) = key {
            let pem = sign::sign(&key, &bytes, key_path)?;
            approvals::write_file(&sig, pem.as_bytes(), true)?;
        } else {
            // --prepare: a stale signature from an earlier attempt must not stay beside
            // the new bytes.
            if sig.exists() {
                std::fs::remove_file(&sig)
                    .map_err(|e| Error::io("remove stale signature", &sig, e))?;
            }
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
                short_hex(&fp),
                a.approver,
                path.display()
            ))?;
            return Ok(exit_code::OK);
        }
        path
    };
    let trust = gov.trust()?;
    let valid = match omens::verify_clearance(
        &file,
        &fp,
        &a.approver,
        &record_path,
        &trust,
        jiff::Timestamp::now(),
    ) {
        Ok(v) => v,
        Err((reason, detail)) => {
            return Err(Error::new(
                crate::error::ErrorKind::Refused,
                format!(
                    "the clearance does not count: {}: {detail}",
                    reason.as_str()
                ),
            )
            .with_path(&record_path)
            .with_hint(refusal_hint(reason)));
        }
    };
    let now = crate::util::time::now_rfc3339();
    omens::apply_clearance(&mut file, &valid, &now)?;
    state_dir.write_omens(&file)?;
    let omen = &file.omens[&fp];
    let head = gov.audit().append(
        AuditKind::OmenCleared,
        json!({
            "fingerprint": fp,
            "plan_id": omen.plan_id,
            "scenario_id": omen.scenario_id,
            "count": omen.count,
            "approver": valid.record.approver,
            "key_fingerprint": valid.key_fingerprint,
            "record_blake3": valid.record_blake3,
        }),
    )?;
    if ctx.json {
        write_json(
            io,
            &json!({"cleared": true, "fingerprint": fp, "approver": valid.record.approver, "audit_head": head}),
        )?;
    }
    if !ctx.quiet {
        io.errln(format!(
            "cleared omen {} ({} {}) at count {} by {} (key {})",
            short_hex(&fp),
            omen.plan_id,
            omen.scenario_id,
            omen.count,
            valid.record.approver,
            valid.key_fingerprint
        ))?;
    }
    Ok(exit_code::OK)
}

fn clearance_path(state: &StateDir, fp: &str, approver: &str, count: u64) -> PathBuf {
    state.file(CLEARANCES_DIR).join(format!(
        "{}.{approver}.{count}.json",
        fp.get(..16).unwrap_or(fp)
    ))
}

fn refusal_hint(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::UnknownKey | RejectReason::KeyNotTrustedForPrincipal => {
            "add the approver's public key to .nexusmon/trusted_signers under their principal"
        }
        RejectReason::MissingRole | RejectReason::RoleNotGranted => {
            "grant the role in the key's trust-file line comment: roles=approver"
        }
        RejectReason::WrongNamespace => "sign with -n nexusmon-approval-v1",
        RejectReason::SignatureMissing => {
            "sign the record: ssh-keygen -Y sign -f KEY -n nexusmon-approval-v1 FILE"
        }
        RejectReason::StaleClearance | RejectReason::Expired => {
            "write a new clearance with --prepare or --sign-with"
        }
        _ => "fix the record or write a new one",
    }
}

// ---------------------------------------------------------------------------------------
// evolve / evolution status
// ---------------------------------------------------------------------------------------

/// `evolve --packets P…`: every packet is checked against its bundle first
/// ([`crate::promote::check_packet`]); if any is refused, nothing is written (exit 1).
pub fn evolve(ctx: &Ctx, io: &mut Io<'_>, a: &EvolveArgs) -> Result<i32> {
    let gov = governance(ctx)?;
    let mut outcomes: Vec<MissionOutcome> = Vec::new();
    let mut skipped: Vec<(PathBuf, String)> = Vec::new();
    let mut refused = Vec::new();
    for p in &a.packets {
        let path = super::promote::abs(ctx, p);
        let verified = match promote::check_packet(&path, &ctx.root)? {
            Ok(v) => v,
            Err(r) => {
                refused.push(r);
                continue;
            }
        };
        match evolution::outcome_of_verified(&verified) {
            Ok(o) => outcomes.push(o),
            Err(NotAnOutcome::NotAMission(why)) => skipped.push((p.clone(), why)),
            Err(NotAnOutcome::Malformed(why)) => {
                return Err(Error::input(&path, format!("cannot read a mission outcome: {why}"))
                    .with_hint("pass promotion packets written by `nexusmon emit-promotion` for mission runs"));
            }
        }
    }
    if !refused.is_empty() {
        return super::promote::report_refused(
            ctx,
            io,
            &refused,
            a.packets.len(),
            "nothing was written (the evolution state and the audit log are unchanged)",
        );
    }
    let state_dir = gov.state().clone();
    let _lock = state_dir.lock()?;
    let evo_path = state_dir.file(state::EVOLUTION_FILE);
    let current = match state_dir.read_evolution()? {
        Some(e) => {
            evolution::check_consistent(&e, &evo_path)?;
            e
        }
        None => evolution::fold(&[]),
    };
    let (next, report) = evolution::consume(&current, &outcomes);
    let mut head = None;
    if next != current {
        state_dir.write_evolution(&next)?;
        head = Some(gov.audit().append(
            AuditKind::Evolution,
            json!({
                "added": report.added,
                "xp_before": report.xp_before,
                "xp_after": report.xp_after,
                "level_before": report.level_before,
                "level_after": report.level_after,
                "gained": report.gained,
                "revoked": report.revoked,
                "state_blake3": blake3_hex(&json::to_sorted_pretty(&next)?),
            }),
        )?);
    }
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
    let gov = governance(ctx)?;
    let evo_path = gov.state().file(state::EVOLUTION_FILE);
    let state = match gov.state().read_evolution()? {
        Some(e) => {
            evolution::check_consistent(&e, &evo_path)?;
            e
        }
        None => evolution::fold(&[]),
    };
    let next = evolution::next_level(state.level);
    if ctx.json {
        write_json(
            io,
            &json!({
                "state": state,
                "next_level": next.map(|(l, t)| json!({"level": l, "xp": t})),
            }),
        )?;
        return Ok(exit_code::OK);
    }
    io.outln(format!("level         {}", state.level.as_str()))?;
    io.outln(format!(
        "xp            {} (earned {}, lost {} to {} violation(s))",
        state.xp, state.earned_xp, state.penalty_xp, state.violations
    ))?;
    match next {
        Some((l, t)) => io.outln(format!(
            "next          {} at {t} XP ({} to go)",
            l.as_str(),
            t - state.xp
        ))?,
        None => io.outln("next          (top level)")?,
    }
    let caps: Vec<&str> = state.capabilities.iter().map(|c| c.as_str()).collect();
    io.outln(format!(
        "capabilities  {}",
        if caps.is_empty() {
            "(none)".to_string()
        } else {
            caps.join(", ")
        }
    ))?;
    io.outln(format!(
        "missions      {} passed, {} outcome(s) consumed",
        state.missions_passed,
        state.consumed.len()
    ))?;
    Ok(exit_code::OK)
}

// ---------------------------------------------------------------------------------------
// missions
// ---------------------------------------------------------------------------------------

pub fn missions(ctx: &Ctx, io: &mut Io<'_>, a: &MissionsArgs) -> Result<i32> {
    let gov = governance(ctx)?;
    let roots: Vec<PathBuf> = if a.paths.is_empty() {
        vec![ctx.root.join("plans")]
    } else {
        a.paths.clone()
    };
    let mut files = Vec::new();
    for r in &roots {
        if !r.exists() {
            return Err(Error::input(r, "not found")
                .with_hint("pass plan files or directories holding them"));
        }
        files.extend(missions::find_plan_files(r)?);
    }
    let outs: Vec<PathBuf> = if a.out.is_empty() {
        vec![ctx.default_out()]
    } else {
        a.out
            .iter()
            .map(|o| fsx::absolute(&ctx.cwd.join(o)))
            .collect::<Result<_>>()?
    };
    let running = missions::running_in(&outs);
    let rows = missions::list(&gov, &files, &running, jiff::Timestamp::now())?;
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
    io.outln(format!(
        "{:<18}  {:<4}  {:<15}  {:<9}  {:<24}  {}",
        "STATE", "RANK", "COMPOSITE", "APPROVALS", "PLAN", "PATH"
    ))?;
    for r in &rows {
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
        io.outln(format!(
            "{:<18}  {:<4}  {:<15}  {:<9}  {:<24}  {}",
            r.state.as_str(),
            rank,
            comp,
            format!("{}/{}", r.approvals_valid, r.approvals_required),
            r.plan_id.as_deref().unwrap_or("-"),
            display_rel(&r.path, &ctx.cwd)
        ))?;
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
    }
    Ok(exit_code::OK)
}

fn display_rel(p: &Path, cwd: &Path) -> String {
    p.strip_prefix(cwd).unwrap_or(p).display().to_string()
}
