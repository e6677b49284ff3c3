//! The review surfaces: `report`, `diff`, `review`, `trust add`. Each handler resolves its
//! arguments, calls one library function (`govern::review`, `promote::diff`,
//! `govern::trust`), renders with [`crate::report`] and writes the result where asked.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::args::{
    DiffArgs, DiffFormat, FailOn, ReportArgs, ReportFormat, ReviewArgs, ReviewCommand, TrustArgs,
    TrustCommand,
};
use super::promote::abs;
use super::{Ctx, Io};
use crate::govern::review;
use crate::model::diff::Severity;
use crate::model::results::Summary;
use crate::model::view::{BannerState, RunView};
use crate::report::html::{HtmlPage, PacketEntry, packets_page};
use crate::report::junit::Junit;
use crate::report::markdown::SummaryMarkdown;
use crate::report::{Report, RowItem, RowSource, RunReport, Sink};
use crate::util::{fsx, json};
use crate::{Error, Result, exit_code};

fn state_dir(ctx: &Ctx) -> Option<PathBuf> {
    ctx.state_dir.as_ref().map(|d| abs(ctx, d))
}

/// The link prefix from the directory of `out` to `bundle` (`…/`), or the bundle's
/// absolute path when the report goes to stdout.
fn links_for(out: Option<&Path>, bundle: &Path) -> Result<String> {
    let rel = match out {
        Some(o) => fsx::relative_path(fsx::parent_of(o), bundle)?,
        None => bundle.display().to_string(),
    };
    Ok(if rel.is_empty() {
        rel
    } else {
        format!("{rel}/")
    })
}

fn emit(ctx: &Ctx, io: &mut Io<'_>, out: Option<&Path>, text: &str, what: &str) -> Result<()> {
    match out {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsx::create_dir_all(parent)?;
            }
            fsx::write_atomic(path, text.as_bytes())?;
            if !ctx.quiet {
                io.errln(format!(
                    "wrote {what} {} ({})",
                    path.display(),
                    super::bundle::human_bytes(text.len() as u64)
                ))?;
            }
            Ok(())
        }
        None => io.out_bytes(text.as_bytes()),
    }
}

/// Counts the rows of the last walk of the source it wraps.
struct Counting<'a> {
    inner: &'a dyn RowSource,
    rows: std::cell::Cell<usize>,
}

impl RowSource for Counting<'_> {
    fn rows(&self, each: &mut dyn FnMut(RowItem<'_>) -> Result<()>) -> Result<()> {
        let mut n = 0usize;
        self.inner.rows(&mut |x| {
            n += 1;
            each(x)
        })?;
        self.rows.set(n);
        Ok(())
    }

    fn mismatches(
        &self,
        each: &mut dyn FnMut(&crate::model::results::MismatchPacket) -> Result<()>,
    ) -> Result<()> {
        self.inner.mismatches(each)
    }
}

/// A report going to a file's temp file ([`fsx::write_atomic_from`]: landed once
/// complete), counting its bytes.
struct FileSink<'a> {
    w: &'a mut dyn std::io::Write,
    path: &'a Path,
    written: u64,
}

impl Sink for FileSink<'_> {
    fn put(&mut self, s: &str) -> Result<()> {
        self.w
            .write_all(s.as_bytes())
            .map_err(|e| Error::io("write", self.path, e))?;
        self.written += s.len() as u64;
        Ok(())
    }
}

/// A report going to stdout as it is written.
struct StdoutSink<'a, 'b>(&'a mut Io<'b>);

impl Sink for StdoutSink<'_, '_> {
    fn put(&mut self, s: &str) -> Result<()> {
        self.0.out_bytes(s.as_bytes())
    }
}

/// Write the report of `view` (its rows walked from `rows`) in `format` to `out`
/// (stdout when `None`), a piece at a time; returns the rows walked.
#[allow(clippy::too_many_arguments)]
fn write_view(
    ctx: &Ctx,
    io: &mut Io<'_>,
    view: &RunView,
    rows: &dyn RowSource,
    format: ReportFormat,
    links: &str,
    out: Option<&Path>,
    what: &str,
) -> Result<usize> {
    let placeholder;
    let summary: &Summary = if let Some(s) = &view.summary {
        s
    } else {
        placeholder = Summary::placeholder(
            &view.run_id,
            view.manifest.as_ref().map_or("?", |m| m.plan_id.as_str()),
        );
        &placeholder
    };
    let governance = view.governance();
    let counting = Counting {
        inner: rows,
        rows: std::cell::Cell::new(0),
    };
    let r = RunReport {
        summary,
        rows: &counting,
        preflight: &view.preflight,
        governance: governance.as_ref(),
        view: Some(view),
        links,
    };
    let report: &dyn Report = match format {
        ReportFormat::Html => &HtmlPage,
        ReportFormat::Markdown => &SummaryMarkdown,
        ReportFormat::Junit => &Junit,
    };
    match out {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsx::create_dir_all(parent)?;
            }
            let mut size = 0;
            fsx::write_atomic_from(
                path,
                |w| {
                    let mut sink = FileSink {
                        w,
                        path,
                        written: 0,
                    };
                    report.write(&r, &mut sink)?;
                    size = sink.written;
                    Ok(())
                },
                fsx::AtomicWrite::default(),
                || {},
            )?;
            if !ctx.quiet {
                io.errln(format!(
                    "wrote {what} {} ({})",
                    path.display(),
                    super::bundle::human_bytes(size)
                ))?;
            }
        }
        None => report.write(&r, &mut StdoutSink(io))?,
    }
    Ok(counting.rows.get())
}

/// `report --bundle B | --packet P… | --mappings DIR [--out FILE] [--format F] [--junit F]`:
/// exit 0, or 1 when the evidence is not valid (the page says so too).
pub fn report(ctx: &Ctx, io: &mut Io<'_>, a: &ReportArgs) -> Result<i32> {
    let out = match (&a.out, a.format) {
        (Some(o), _) => Some(abs(ctx, o)),
        (None, ReportFormat::Html) => Some(ctx.cwd.join("report.html")),
        (None, _) => None,
    };
    let single = match (&a.bundle, a.packet.as_slice()) {
        (Some(b), _) => Some(abs(ctx, b)),
        (None, [p]) if abs(ctx, p).is_file() => Some(abs(ctx, p)),
        _ => None,
    };
    if let Some(source) = single {
        let (src, view) = review::run_head(&source, &ctx.root, state_dir(ctx).as_deref())?;
        let rows = crate::promote::view::BundleRows::new(&src)?;
        // A file written into a sealed bundle would make it invalid.
        let inside = |p: &Path| fsx::absolute(p).is_ok_and(|p| p.starts_with(&view.bundle_dir));
        for p in out
            .iter()
            .chain(a.junit.as_ref().map(|j| abs(ctx, j)).as_ref())
        {
            if inside(p) {
                return Err(Error::usage(format!(
                    "{} is inside the bundle {}; a file written there would make it invalid",
                    p.display(),
                    view.bundle_dir.display()
                ))
                .with_hint("write the report next to the out root, e.g. --out report.html"));
            }
        }
        let links = links_for(out.as_deref(), &view.bundle_dir)?;
        let n = write_view(
            ctx,
            io,
            &view,
            &rows,
            a.format,
            &links,
            out.as_deref(),
            "report",
        )?;
        if let Some(j) = &a.junit {
            let j = abs(ctx, j);
            let links = links_for(Some(&j), &view.bundle_dir)?;
            write_view(
                ctx,
                io,
                &view,
                &rows,
                ReportFormat::Junit,
                &links,
                Some(&j),
                "JUnit XML",
            )?;
        }
        let banner = view.banner();
        if !ctx.quiet {
            io.errln(format!(
                "run {}: {} ({} scenario(s), {} mismatch(es))",
                view.run_id,
                banner.label(),
                n,
                view.mismatch_count
            ))?;
        }
        return Ok(if banner == BannerState::NotValid {
            exit_code::FINDINGS
        } else {
            exit_code::OK
        });
    }
    if a.format != ReportFormat::Html {
        return Err(Error::usage(format!(
            "--format {} renders one run: pass --bundle DIR or a single --packet FILE",
            if a.format == ReportFormat::Junit {
                "junit"
            } else {
                "markdown"
            }
        )));
    }
    if a.junit.is_some() {
        return Err(Error::usage("--junit renders one run: pass --bundle DIR"));
    }
    let (entries, sigs) = if let Some(m) = &a.mappings {
        let path = abs(ctx, m).join(crate::model::mapping::SIGNATURES_FILE);
        let sigs: crate::model::mapping::RuntimeSignatures =
            crate::promote::mapping::parse_file(&path, a.max_mapping_bytes)?;
        (Vec::new(), Some(sigs))
    } else {
        let given: Vec<PathBuf> = a.packet.iter().map(|p| abs(ctx, p)).collect();
        let (packets, _) = crate::promote::verify::packet_paths(&given)?;
        let (verified, refused, sigs) = crate::govern::review::packet_signatures(
            &packets,
            &ctx.root,
            state_dir(ctx).as_deref(),
        )?;
        let mut entries = Vec::new();
        for v in &verified {
            let p = &v.packet;
            entries.push(PacketEntry {
                path: v.path.display().to_string(),
                run_id: p.run_id.clone(),
                plan_id: p.plan.plan_id.clone().unwrap_or_default(),
                promotable: p.promotability.promotable,
                reasons: p
                    .promotability
                    .reasons
                    .iter()
                    .map(|r| r.as_str().to_string())
                    .collect(),
                flags: p.summary.governance_flags.clone(),
                refused: Vec::new(),
                scenarios: p.summary.scenarios.unwrap_or(0),
                mismatches: p.summary.mismatches_total,
            });
        }
        for r in &refused {
            entries.push(PacketEntry {
                path: r.path.display().to_string(),
                run_id: String::new(),
                plan_id: String::new(),
                promotable: false,
                reasons: Vec::new(),
                flags: Vec::new(),
                refused: std::iter::once(r.what.clone())
                    .chain(r.details.clone())
                    .collect(),
                scenarios: 0,
                mismatches: 0,
            });
        }
        (entries, Some(sigs))
    };
    let text = packets_page(&entries, sigs.as_ref());
    emit(ctx, io, out.as_deref(), &text, "report")?;
    let bad = entries.iter().any(|e| !e.refused.is_empty());
    Ok(if bad {
        exit_code::FINDINGS
    } else {
        exit_code::OK
    })
}

/// `diff A B [--fail-on S] [--format human|json|markdown]`.
pub fn diff(ctx: &Ctx, io: &mut Io<'_>, a: &DiffArgs) -> Result<i32> {
    let d = crate::promote::diff::diff_paths(&abs(ctx, &a.a), &abs(ctx, &a.b), &ctx.root)?;
    let format = match (a.format, ctx.json) {
        (Some(f), _) => f,
        (None, true) => DiffFormat::Json,
        (None, false) => DiffFormat::Human,
    };
    match format {
        DiffFormat::Json => io.out_json(&json::to_sorted_pretty(&d)?)?,
        DiffFormat::Markdown => io.out_bytes(crate::report::diff::markdown(&d).as_bytes())?,
        DiffFormat::Human => io.out_bytes(crate::report::diff::human(&d).as_bytes())?,
    }
    let fail = match a.fail_on {
        None => false,
        Some(FailOn::Critical) => d.reaches(Severity::Critical),
        Some(FailOn::Breaking) => d.reaches(Severity::Breaking),
        Some(FailOn::Any) => !d.changes.is_empty(),
    };
    Ok(if fail {
        exit_code::FINDINGS
    } else {
        exit_code::OK
    })
}

/// `review [show ID] [--plans DIR]… [--packets DIR]…`.
pub fn review(ctx: &Ctx, io: &mut Io<'_>, a: &ReviewArgs) -> Result<i32> {
    let plans: Vec<PathBuf> = if a.plans.is_empty() {
        vec![ctx.root.join("plans")]
    } else {
        a.plans.iter().map(|p| abs(ctx, p)).collect()
    };
    let packets: Vec<PathBuf> = if a.packets.is_empty() {
        vec![ctx.root.join("promotion")]
    } else {
        a.packets.iter().map(|p| abs(ctx, p)).collect()
    };
    let now = jiff::Timestamp::now();
    let sd = state_dir(ctx);
    match &a.command {
        None => {
            let items = review::queue(sd.as_deref(), &ctx.root, &ctx.cwd, &plans, &packets, now)?;
            if ctx.json {
                io.out_json(&json::to_sorted_pretty(&json!({ "items": items }))?)?;
                return Ok(exit_code::OK);
            }
            if items.is_empty() {
                io.outln("nothing awaits review")?;
                return Ok(exit_code::OK);
            }
            let mut s = String::new();
            for i in &items {
                let _ = writeln!(s, "{}  [{}]  {}", i.id, i.state, i.title);
                for w in &i.why {
                    let _ = writeln!(s, "    {w}");
                }
                for n in &i.next {
                    let _ = writeln!(s, "    $ {n}");
                }
            }
            io.out_bytes(s.as_bytes())?;
            Ok(exit_code::OK)
        }
        Some(ReviewCommand::Show(show)) => {
            let d = review::show(
                &show.id,
                sd.as_deref(),
                &ctx.root,
                &ctx.cwd,
                &plans,
                &packets,
                now,
            )?;
            if ctx.json {
                io.out_json(&json::to_sorted_pretty(&d)?)?;
                return Ok(exit_code::OK);
            }
            let mut s = format!("{}  [{}]  {}\n", d.item.id, d.item.state, d.item.title);
            let _ = writeln!(s, "file: {}", d.item.path.display());
            for w in &d.item.why {
                let _ = writeln!(s, "why: {w}");
            }
            for f in &d.facts {
                let _ = writeln!(s, "{f}");
            }
            for v in &d.voided {
                let _ = writeln!(
                    s,
                    "\napproval {} by {} was for plan digest blake3 {}; voided by these changes since:",
                    v.record.display(),
                    v.approver,
                    crate::govern::short_hex(&v.approved_digest)
                );
                match &v.unknown {
                    Some(why) => {
                        let _ = writeln!(s, "  (cannot list them: {why})");
                    }
                    None => {
                        for c in &v.changes {
                            let _ = writeln!(s, "  {}", c.describe());
                        }
                    }
                }
            }
            let next: Vec<&String> = d
                .item
                .next
                .iter()
                .filter(|n| !n.contains(&format!("review show {}", d.item.id)))
                .collect();
            if !next.is_empty() {
                let _ = writeln!(s, "\nnext:");
                for n in next {
                    let _ = writeln!(s, "  $ {n}");
                }
            }
            io.out_bytes(s.as_bytes())?;
            Ok(exit_code::OK)
        }
    }
}

/// `trust add KEY --principal NAME --role ROLE…`.
pub fn trust(ctx: &Ctx, io: &mut Io<'_>, a: &TrustArgs) -> Result<i32> {
    let TrustCommand::Add(add) = &a.command;
    let key = if Path::new(&add.key).exists() {
        abs(ctx, Path::new(&add.key)).display().to_string()
    } else {
        add.key.clone()
    };
    let done = crate::govern::trust::add(
        state_dir(ctx).as_deref(),
        &ctx.root,
        &key,
        &add.principal,
        &add.roles,
    )?;
    if ctx.json {
        io.out_json(&json::to_sorted_pretty(&json!({
            "trust_file": done.path,
            "line": done.line,
            "text": done.text,
            "key_fingerprint": done.fingerprint,
            "added": done.added,
            "audit_head": done.audit_head,
        }))?)?;
    }
    if !ctx.quiet {
        io.errln(if done.added {
            format!(
                "added line {} to {}: {} ({}); recorded in the audit log",
                done.line,
                done.path.display(),
                add.principal,
                done.fingerprint
            )
        } else {
            format!(
                "already trusted: line {} of {} ({}); nothing written",
                done.line,
                done.path.display(),
                done.fingerprint
            )
        })?;
    }
    Ok(exit_code::OK)
}
