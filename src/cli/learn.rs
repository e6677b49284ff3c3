//! `learn`: parse, call `exec::learn`, say what was learned and where the proof is.

use super::args::LearnArgs;
use super::{Ctx, Io};
use crate::Result;
use crate::exec::{LearnRequest, learn as learn_policy};

/// `nexusmon learn --out DIR [--workspace DIR] [--widen-to DIR]… [--never PATH]… -- CMD…`.
pub fn learn(ctx: &Ctx, io: &mut Io<'_>, a: &LearnArgs) -> Result<i32> {
    let out = learn_policy(&LearnRequest {
        root: ctx.root.clone(),
        argv: a.command.clone(),
        probe: a.probe.clone(),
        registry: a.registry.clone(),
        workspace: a.workspace.clone(),
        widen: a.widen_to.clone(),
        never: a.never.clone(),
        max_rounds: a.max_rounds,
        out: a.out.clone(),
        name: a.name.clone(),
        timeout_ms: a.timeout.saturating_mul(1000),
        minimize: a.minimize,
        scratch_parent: ctx.scratch_parent(&a.scratch)?,
    })?;
    if ctx.json {
        let v = serde_json::json!({
            "rounds": out.rounds,
            "rules": out.rules,
            "registry": out.ids.registry,
            "profile": out.ids.profile,
            "probe": out.ids.probe,
            "plan": out.ids.plan,
            "files": out.files,
            "proof": {"exit_code": out.proof_exit, "reason": out.proof_reason, "bundle": out.proof_bundle},
        });
        io.out_json(&crate::util::json::to_sorted_pretty(&v)?)?;
    } else if out.rounds == 0 {
        io.errln(format!("learn: {}", out.proof_reason))?;
        for f in &out.files {
            io.errln(format!("wrote {}", f.display()))?;
        }
    } else {
        io.outln(format!(
            "learned profile `{}` (registry `{}`) in {} round(s):",
            out.ids.profile, out.ids.registry, out.rounds
        ))?;
        for r in &out.rules {
            io.outln(format!("  {r}"))?;
        }
        for f in &out.files {
            io.outln(format!("wrote {}", f.display()))?;
        }
        io.outln(format!(
            "proof (plan `{}`): {}{}",
            out.ids.plan,
            out.proof_reason,
            out.proof_bundle
                .as_ref()
                .map(|b| format!(" — bundle {}", b.display()))
                .unwrap_or_default()
        ))?;
    }
    Ok(out.proof_exit)
}
