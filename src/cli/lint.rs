//! `plan-lint`, `registry-lint`: resolve paths and the format, call [`crate::lint`], write
//! the rendered report to stdout (and, for machine formats, a summary line to stderr).

use std::path::PathBuf;

use super::args::{LintArgs, LintFormat, RegistryLintArgs};
use super::{Ctx, Io};
use crate::lint::format::{self, Format, RenderOptions};
use crate::lint::{self, Report};
use crate::{Error, Result};

fn resolve_format(ctx: &Ctx, f: Option<LintFormat>) -> Format {
    match f {
        Some(LintFormat::Json) => Format::Json,
        Some(LintFormat::Sarif) => Format::Sarif,
        Some(LintFormat::Github) => Format::Github,
        None if ctx.json => Format::Json,
        Some(LintFormat::Human) | None => Format::Human,
    }
}

/// The repository root paths in SARIF and GitHub output are relative to: the nearest
/// ancestor of the current directory with a `.git`, else the current directory.
fn uri_base(ctx: &Ctx) -> PathBuf {
    crate::util::fsx::find_upwards(&ctx.cwd, |d| d.join(".git").exists())
        .unwrap_or_else(|| ctx.cwd.clone())
}

fn emit(
    ctx: &Ctx,
    io: &mut Io<'_>,
    report: &Report,
    fmt: Format,
    command: &'static str,
) -> Result<i32> {
    let opts = RenderOptions {
        base: ctx.cwd.clone(),
        uri_base: uri_base(ctx),
        color: ctx.color_out && fmt == Format::Human,
        command,
    };
    let mut bytes = format::render(fmt, report, &opts)?;
    if fmt == Format::Human && ctx.quiet {
        // Keep the findings, drop the summary line.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let trimmed = text
            .trim_end_matches('\n')
            .rsplit_once('\n')
            .map_or(String::new(), |(head, _)| format!("{head}\n"));
        bytes = trimmed.into_bytes();
    }
    if matches!(fmt, Format::Json | Format::Sarif) {
        io.out_json(&bytes)?;
    } else {
        io.out_bytes(&bytes)?;
    }
    if fmt != Format::Human && !ctx.quiet {
        io.errln(format!("{command}: {}", format::summary(report)))?;
    }
    Ok(report.exit_code())
}

pub fn plan_lint(ctx: &Ctx, io: &mut Io<'_>, a: &LintArgs) -> Result<i32> {
    let fmt = resolve_format(ctx, a.format);
    let report = lint::lint_plans(&a.paths, &ctx.cwd)?;
    emit(ctx, io, &report, fmt, "plan-lint")
}

pub fn registry_lint(ctx: &Ctx, io: &mut Io<'_>, a: &RegistryLintArgs) -> Result<i32> {
    let fmt = resolve_format(ctx, a.format);
    let paths: Vec<PathBuf> = if a.paths.is_empty() {
        let default = ctx.root.join("registry");
        if !default.is_dir() {
            return Err(Error::usage(format!(
                "no registry directory at {}",
                format::shown(&default, &ctx.cwd)
            ))
            .with_hint("pass registry directories or files, or run from a project with a registry/ directory (or use --root)"));
        }
        vec![default]
    } else {
        a.paths.clone()
    };
    let report = lint::lint_registries(&paths)?;
    emit(ctx, io, &report, fmt, "registry-lint")
}
