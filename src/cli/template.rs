//! Templates and plan-build: `list-templates` (every template with its
//! parameters: on stdout, a block per template, or with `--json` an array) and `plan-build`
//! (what was written on stderr; with `--json` the build report on stdout).

use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Value, json};

use super::args::PlanBuildArgs;
use super::{Ctx, Io};
use crate::lint::format::shown;
use crate::model::template::ParamType;
use crate::report::table::Table;
use crate::template::{self, Entry, Param, build::Action, params};
use crate::{Result, exit_code};

/// The constraints of a parameter as short phrases.
fn constraints(p: &Param) -> Vec<String> {
    let s = &p.spec;
    let mut out = Vec::new();
    match (s.minimum, s.maximum) {
        (Some(a), Some(b)) => out.push(format!("{a}-{b}")),
        (Some(a), None) => out.push(format!(">= {a}")),
        (None, Some(b)) => out.push(format!("<= {b}")),
        (None, None) => {}
    }
    match (s.min_items, s.max_items) {
        (Some(a), Some(b)) => out.push(format!("{a}-{b} items")),
        (Some(a), None) => out.push(format!(
            "at least {a} item{}",
            if a == 1 { "" } else { "s" }
        )),
        (None, Some(b)) => out.push(format!("at most {b} items")),
        (None, None) => {}
    }
    match (s.min_length, s.max_length) {
        (Some(a), Some(b)) => out.push(format!("{a}-{b} characters")),
        (Some(a), None) => out.push(format!("at least {a} characters")),
        (None, Some(b)) => out.push(format!("at most {b} characters")),
        (None, None) => {}
    }
    if let Some(v) = &s.values {
        out.push(v.join("|"));
    }
    if matches!(s.kind, ParamType::Path | ParamType::PathList) {
        match &s.beneath {
            Some(b) => out.push(format!("beneath {b}")),
            None => out.push("absolute".into()),
        }
    }
    if !s.exclude.is_empty() {
        out.push(format!("not overlapping {}", s.exclude.join(", ")));
    }
    for d in &s.disjoint_with {
        out.push(format!("no items shared with {d}"));
    }
    out
}

fn param_json(p: &Param) -> Value {
    let s = &p.spec;
    let mut c = serde_json::Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            c.insert(k.into(), v);
        }
    };
    put("minimum", s.minimum.map(Value::from));
    put("maximum", s.maximum.map(Value::from));
    put("min_items", s.min_items.map(Value::from));
    put("max_items", s.max_items.map(Value::from));
    put("min_length", s.min_length.map(Value::from));
    put("max_length", s.max_length.map(Value::from));
    put("values", s.values.clone().map(Value::from));
    put("beneath", s.beneath.clone().map(Value::from));
    put(
        "exclude",
        (!s.exclude.is_empty()).then(|| Value::from(s.exclude.clone())),
    );
    put(
        "disjoint_with",
        (!s.disjoint_with.is_empty()).then(|| {
            Value::from(
                s.disjoint_with
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
        }),
    );
    let mut v = json!({
        "name": p.name,
        "type": s.kind.as_str(),
        "description": s.description,
        "required": p.default.is_none(),
        "builtin": p.builtin,
        "constraints": c,
        "example": params::example(p),
    });
    if let Some(d) = &p.default {
        v["default"] = d.clone();
    }
    if let Some(w) = &s.why {
        v["why"] = Value::from(w.clone());
    }
    v
}

fn entry_json(e: &Entry, ctx: &Ctx) -> Value {
    let path = match e.origin {
        template::Origin::Project => shown(&e.path, &ctx.cwd),
        template::Origin::BuiltIn => e.path.display().to_string(),
    };
    match &e.template {
        Ok(t) => json!({
            "template_id": e.id,
            "origin": e.origin.as_str(),
            "path": path,
            "valid": true,
            "description": t.file.description,
            "output_format": t.file.output_format.unwrap_or_default().as_str(),
            "parameters": t.params.iter().map(param_json).collect::<Vec<_>>(),
        }),
        Err(err) => json!({
            "template_id": e.id,
            "origin": e.origin.as_str(),
            "path": path,
            "valid": false,
            "error": {"message": err.to_string(), "hint": err.hint()},
        }),
    }
}

/// `text` wrapped at 100 columns, every line starting with `indent`.
fn wrap(text: &str, indent: &str) -> String {
    const WIDTH: usize = 100;
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.chars().count() > WIDTH {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{indent}{line}");
    }
    out
}

/// A header and rows through the one table renderer, each line indented: columns padded
/// to their widest cell, the last column not padded.
fn table(header: &[&str], rows: &[Vec<String>], indent: &str) -> String {
    let mut all: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_string()).collect()];
    all.extend(rows.iter().cloned());
    Table::left(header.len()).indent(indent).render(&all)
}

pub fn list_templates(ctx: &Ctx, io: &mut Io<'_>) -> Result<i32> {
    let entries = template::catalog(&ctx.root)?;
    let invalid = entries.iter().filter(|e| e.template.is_err()).count();
    let code = if invalid > 0 {
        exit_code::FINDINGS
    } else {
        exit_code::OK
    };
    if ctx.json {
        let v: Vec<Value> = entries.iter().map(|e| entry_json(e, ctx)).collect();
        io.out_json(&crate::util::json::to_sorted_pretty(&v)?)?;
        return Ok(code);
    }
    if entries.is_empty() {
        io.errln("no templates found")?;
        return Ok(exit_code::NOTHING_SELECTED);
    }
    let mut out = String::new();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let origin = match e.origin {
            template::Origin::Project => format!("project: {}", shown(&e.path, &ctx.cwd)),
            template::Origin::BuiltIn => "built-in".to_string(),
        };
        let _ = writeln!(out, "{} ({origin})", e.id);
        match &e.template {
            Err(err) => {
                let _ = writeln!(out, "  INVALID: {err}");
                if let Some(h) = err.hint() {
                    let _ = writeln!(out, "  hint: {h}");
                }
            }
            Ok(t) => {
                out.push_str(&wrap(&t.file.description, "  "));
                let rows: Vec<Vec<String>> = t
                    .params
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.spec.kind.as_str().to_string(),
                            p.default.as_ref().map_or_else(
                                || "(required)".into(),
                                |d| {
                                    let s = params::scalar_text(d);
                                    if s.is_empty() { "(none)".into() } else { s }
                                },
                            ),
                            {
                                let c = constraints(p);
                                if c.is_empty() {
                                    "-".into()
                                } else {
                                    c.join("; ")
                                }
                            },
                        ]
                    })
                    .collect();
                // The table, each parameter's description wrapped beneath its row.
                let text = table(
                    &["PARAMETER", "TYPE", "DEFAULT", "CONSTRAINTS"],
                    &rows,
                    "  ",
                );
                let mut lines = text.lines();
                if let Some(header) = lines.next() {
                    let _ = writeln!(out, "{header}");
                }
                for (line, p) in lines.zip(&t.params) {
                    let _ = writeln!(out, "{line}");
                    out.push_str(&wrap(&p.spec.description, "      "));
                }
            }
        }
    }
    if invalid > 0 {
        let _ = writeln!(
            out,
            "\n{invalid} template{} invalid",
            if invalid == 1 { " is" } else { "s are" }
        );
    }
    io.out_bytes(out.as_bytes())?;
    Ok(code)
}

/// `worker-new NAME`: scaffold a worker, its registry and a mission that runs it.
pub fn worker_new(ctx: &Ctx, io: &mut Io<'_>, a: &super::args::WorkerNewArgs) -> Result<i32> {
    let done = crate::template::worker::scaffold(&ctx.root, &a.name, a.overwrite)?;
    let shown = |p: &std::path::Path| p.strip_prefix(&ctx.cwd).unwrap_or(p).display().to_string();
    if ctx.json {
        io.out_json(&crate::util::json::to_sorted_pretty(&serde_json::json!({
            "files": done.files.iter().map(|p| shown(p)).collect::<Vec<_>>(),
            "plan": shown(&done.plan),
        }))?)?;
    }
    if !ctx.quiet {
        for f in &done.files {
            io.errln(format!("wrote {}", shown(f)))?;
        }
        io.errln(format!(
            "the plan lints and loads; run it with: nexusmon run --plan {}",
            shown(&done.plan)
        ))?;
    }
    Ok(exit_code::OK)
}

pub fn plan_build(ctx: &Ctx, io: &mut Io<'_>, a: &PlanBuildArgs) -> Result<i32> {
    let t = template::find(&ctx.root, &a.template)?;
    let report = template::build(
        &t,
        &template::BuildOptions {
            out: a.out.clone(),
            sets: a.set.clone(),
            plan_id: a.plan_id.clone(),
            overwrite: a.overwrite,
            expected_matrix: !a.no_expected_matrix,
            max_scenarios: a.max_scenarios,
        },
    )?;
    if ctx.json {
        io.out_json(&crate::util::json::to_sorted_pretty(&report)?)?;
    }
    if !ctx.quiet {
        let mut s = format!(
            "built plan `{}` from template `{}` ({}): {} profile{}, {} probe{}, {} scenario{}\n",
            report.plan_id,
            report.template_id,
            report.format.as_str(),
            report.profiles,
            if report.profiles == 1 { "" } else { "s" },
            report.probes,
            if report.probes == 1 { "" } else { "s" },
            report.scenarios,
            if report.scenarios == 1 { "" } else { "s" },
        );
        for f in &report.files {
            let verb = match f.action {
                Action::Created => "wrote",
                Action::Replaced => "replaced",
                Action::Removed => "removed",
                Action::Unchanged => "kept",
            };
            let _ = writeln!(s, "  {verb:<8} {}", shown(&f.path, &ctx.cwd));
        }
        for line in &report.lint.findings {
            let _ = writeln!(s, "  lint: {line}");
        }
        let _ = writeln!(
            s,
            "next: nexusmon run --plan {}",
            shown(&report.plan, &ctx.cwd)
        );
        io.err
            .write_all(s.as_bytes())
            .map_err(|e| crate::Error::io("write", "<stderr>", e))?;
    }
    Ok(exit_code::OK)
}

/// `export kubernetes|github-matrix|gitlab`: the main file on stdout, or every file into
/// `--out DIR` (named on stderr).
pub fn export(ctx: &Ctx, io: &mut Io<'_>, a: &super::args::ExportArgs) -> Result<i32> {
    use super::args::ExportTarget;
    use crate::template::export::{ExportKind, ExportRequest};
    let (kind, common) = match &a.target {
        ExportTarget::Kubernetes(k) => (
            ExportKind::Kubernetes {
                image: k.image.clone(),
                namespace: k.namespace.clone(),
            },
            &k.common,
        ),
        ExportTarget::GithubMatrix(c) => (ExportKind::GithubMatrix, c),
        ExportTarget::Gitlab(c) => (ExportKind::Gitlab, c),
    };
    let abs = |p: &std::path::Path| super::promote::abs(ctx, p);
    let files = crate::template::export::export(&ExportRequest {
        kind,
        plan: abs(&common.plan),
        root: ctx.root.clone(),
        shards: common.shards,
    })?;
    match &common.out {
        Some(dir) => {
            let dir = abs(dir);
            crate::template::export::write_files(&dir, &files)?;
            for f in &files {
                io.errln(format!("wrote {}", dir.join(&f.name).display()))?;
            }
        }
        None => {
            if let Some(f) = files.first() {
                io.out_json(&f.bytes)?;
            }
        }
    }
    Ok(exit_code::OK)
}
