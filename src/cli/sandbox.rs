//! `sandbox`: parse, run the command through `exec::sandbox_command`, pass its output and
//! exit status through, and say on stderr what the kernel denied.

use super::args::SandboxArgs;
use super::{Ctx, Io};
use crate::Result;
use crate::exec::{CommandRequest, sandbox_command};
use crate::model::results::KernelAuditState;

/// `nexusmon sandbox --profile ID [--registry R] [--record OUT] -- CMD ARGS…`.
pub fn sandbox(ctx: &Ctx, io: &mut Io<'_>, a: &SandboxArgs) -> Result<i32> {
    let out = sandbox_command(&CommandRequest {
        root: ctx.root.clone(),
        profile: a.profile.clone(),
        registry: a.registry.clone(),
        argv: a.command.clone(),
        timeout_ms: a.timeout.saturating_mul(1000),
        record: a.record.clone(),
        kernel_audit: a.kernel_audit.mode(),
        scratch_parent: ctx.scratch_parent(&a.scratch)?,
    })?;
    // The command's own output passes through byte for byte, as it would without the
    // sandbox (escaping is for what nexusmon says; this is the program's data).
    io.out
        .raw()
        .write_all(&out.stdout)
        .map_err(|e| crate::Error::io("write to stdout", "<stdout>", e))?;
    io.err
        .raw()
        .write_all(&out.stderr)
        .map_err(|e| crate::Error::io("write to stderr", "<stderr>", e))?;
    if out.truncated {
        io.errln(format!(
            "sandbox: output beyond {} MiB per stream was discarded",
            crate::exec::command::COMMAND_OUTPUT_CAP >> 20
        ))?;
    }
    for d in out.kernel_denials.iter().flatten() {
        let object: Vec<String> = d.object.iter().map(|(k, v)| format!("{k}={v}")).collect();
        io.errln(format!(
            "sandbox: the kernel denied {} ({}; domain {})",
            d.blockers.join(","),
            object.join(" "),
            d.domain
        ))?;
    }
    if let Some(k) = &out.kernel_audit
        && !ctx.quiet
        && matches!(
            k.state,
            KernelAuditState::Lost | KernelAuditState::Unavailable
        )
        && out.exit_code != 0
    {
        io.errln(format!(
            "sandbox: kernel audit {}: {}",
            k.state.as_str(),
            k.reason
        ))?;
    }
    if let Some(p) = &out.problem {
        io.errln(format!("sandbox: {p}"))?;
    }
    if let Some(b) = &out.bundle {
        io.errln(format!("sandbox: bundle {}", b.display()))?;
    }
    Ok(out.exit_code)
}
