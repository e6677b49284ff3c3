//! `serve`: resolve the roots, start the cockpit (`crate::serve::serve`), say where it
//! listens and what it will and will not accept, and return when a signal stops it.

use std::path::PathBuf;
use std::time::Duration;

use super::args::ServeArgs;
use super::promote::abs;
use super::{Ctx, Io};
use crate::serve::catalog::Settings;
use crate::serve::{ServeConfig, serve as run_server};
use crate::{Error, Result, exit_code};

pub fn serve(ctx: &Ctx, io: &mut Io<'_>, a: &ServeArgs) -> Result<i32> {
    let dirs = |given: &[PathBuf], default: &str| -> Vec<PathBuf> {
        if given.is_empty() {
            vec![ctx.root.join(default)]
        } else {
            given.iter().map(|p| abs(ctx, p)).collect()
        }
    };
    if !(a.rescan.is_finite() && (0.1..=3600.0).contains(&a.rescan)) {
        return Err(
            Error::usage(format!("--rescan {} is out of range", a.rescan))
                .with_hint("give 0.1 to 3600 seconds"),
        );
    }
    let cfg = ServeConfig {
        bind: a.bind,
        token_file: a.token_file.as_ref().map(|p| abs(ctx, p)),
        settings: Settings {
            root: ctx.root.clone(),
            state_dir: ctx.state_dir.as_ref().map(|d| abs(ctx, d)),
            outs: dirs(&a.out, "out"),
            packets: dirs(&a.packets, "promotion"),
            plans: dirs(&a.plans, "plans"),
            rescan: Duration::from_secs_f64(a.rescan),
            reverify: Duration::from_secs(a.reverify.max(1)),
        },
    };
    let quiet = ctx.quiet;
    let stopped = run_server(&cfg, &mut |s| {
        for w in &s.warnings {
            io.errln(format!("warning: {w}"))?;
        }
        io.errln(format!(
            "serving {} ({} run(s) verified; pages at /, API at /v1/, OpenAPI at /v1/openapi.json)",
            s.url, s.runs
        ))?;
        if !quiet {
            io.errln(if !s.loopback {
                format!(
                    "bound to {}, beyond loopback: every request needs `Authorization: Bearer` with the token of --token-file",
                    s.local
                )
            } else if s.token {
                "approval uploads (POST) need `Authorization: Bearer` with the token of --token-file".to_string()
            } else {
                "read-only: no --token-file, so approval uploads are disabled".to_string()
            })?;
            io.errln("stop with SIGTERM or Ctrl-C")?;
        }
        Ok(())
    })?;
    if !quiet {
        io.errln(format!("stopped by {}", stopped.signal))?;
    }
    Ok(exit_code::OK)
}
