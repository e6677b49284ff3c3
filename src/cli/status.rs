//! `status`: what this host's kernel can enforce, whether the runner itself is already
//! confined, and the state of the out root (LATEST and whether it validates, sealed bundles,
//! leftovers of crashed runs, the lock). Informational: exit 0 unless it cannot read.

use std::fmt::Write as _;

use super::args::StatusArgs;
use super::bundle::human_bytes;
use super::{Ctx, Io};
use crate::bundle::check::status_word;
use crate::bundle::{OutRootState, out_root_state};
use crate::report::table::{Column, Table};
use crate::sandbox::host::{HostFacts, host_facts};
use crate::{Result, exit_code};

pub fn status(ctx: &Ctx, io: &mut Io<'_>, a: &StatusArgs) -> Result<i32> {
    let host = host_facts();
    let out_root = a
        .out
        .as_ref()
        .map_or_else(|| ctx.default_out(), |p| ctx.cwd.join(p));
    let cleaned = if a.clean {
        Some(crate::exec::clean_after_killed_runs(
            &out_root,
            ctx.scratch_parent(&a.scratch)?.as_deref(),
        )?)
    } else {
        None
    };
    let out = out_root_state(&out_root)?;
    if ctx.json {
        let mut v = serde_json::json!({ "host": host, "out_root": out });
        if let Some(c) = &cleaned {
            v["cleaned"] = serde_json::json!(c);
        }
        io.out_json(&crate::util::json::to_sorted_pretty(&v)?)?;
    } else {
        if let Some(c) = &cleaned {
            if c.is_empty() {
                io.errln("clean: nothing left by killed runs")?;
            }
            for line in c {
                io.errln(format!("clean: {line}"))?;
            }
        }
        io.out_bytes(render(&host, &out).as_bytes())?;
    }
    Ok(exit_code::OK)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `  label               value` lines: the one table renderer, one row at a time.
struct Lines {
    table: Table,
    s: String,
}

impl Lines {
    fn new() -> Self {
        Self {
            table: Table::new(&[Column::left().fixed(18), Column::left()])
                .indent("  ")
                .keep_trailing(),
            s: String::new(),
        }
    }

    fn kv(&mut self, label: &str, value: &str) {
        let _ = writeln!(self.s, "{}", self.table.line(&[label, value]));
    }

    fn raw(&mut self, line: &str) {
        let _ = writeln!(self.s, "{line}");
    }
}

fn render(h: &HostFacts, o: &OutRootState) -> String {
    let mut l = Lines::new();
    host_lines(&mut l, h);
    out_root_lines(&mut l, o);
    l.s
}

fn available(b: bool) -> &'static str {
    if b { "available" } else { "unavailable" }
}

fn host_lines(l: &mut Lines, h: &HostFacts) {
    l.raw(&format!(
        "host {} ({}), euid {}, {} cores",
        h.hostname, h.machine, h.euid, h.cores
    ));
    l.kv("kernel", &h.kernel_release);
    let landlock = match (h.landlock_abi, &h.landlock_unavailable) {
        (Some(abi), _) => format!("ABI {abi}"),
        (None, Some(why)) => format!("unavailable: {why}"),
        (None, None) => "unavailable".into(),
    };
    l.kv("landlock", &landlock);
    l.kv("seccomp filters", available(h.seccomp_filter_available));
    l.kv("user namespaces", available(h.user_namespaces));
    let mode = match h.runner_seccomp_mode {
        0 => "off",
        1 => "strict",
        _ => "filter",
    };
    let confined = if h.runner_confined() {
        "YES: results may reflect the runner's own confinement, not the profile alone"
    } else {
        "no"
    };
    l.kv(
        "runner confined",
        &format!(
            "{confined} (no-new-privs {}, seccomp {mode})",
            yes_no(h.runner_no_new_privs)
        ),
    );
    l.kv(
        "pids cgroup",
        h.pids_cgroup.as_deref().unwrap_or("none writable"),
    );
}

fn out_root_lines(l: &mut Lines, o: &OutRootState) {
    l.raw(&format!("out root {}", o.path.display()));
    if !o.exists {
        l.raw("  (does not exist yet: nothing has run here)");
        return;
    }
    match &o.latest {
        None => l.kv("LATEST", "none (nothing sealed yet)"),
        Some(r) => {
            let id = r.run_id.as_deref().unwrap_or("?");
            let verdict = if r.valid {
                format!(
                    "validates ({} files, {})",
                    r.files_verified,
                    human_bytes(r.total_bytes)
                )
            } else {
                let kinds: Vec<&str> = r.problems.iter().map(|p| p.kind.as_str()).collect();
                format!(
                    "DOES NOT VALIDATE: {} problem(s): {}",
                    r.problems.len(),
                    kinds.join(", ")
                )
            };
            let status = r.status.map_or("", status_word);
            l.kv("LATEST", &format!("{id} {status}, {verdict}"));
        }
    }
    l.kv("sealed bundles", &o.sealed_bundles.to_string());
    staging_lines(l, o);
    if !o.stray_temp_files.is_empty() {
        l.kv("stray temp files", &o.stray_temp_files.join(", "));
    }
    if !o.unexpected.is_empty() {
        l.kv("not bundles", &o.unexpected.join(", "));
    }
    l.kv("lock", &lock_line(o));
}

/// Bundles being written now, and leftovers of crashed runs.
fn staging_lines(l: &mut Lines, o: &OutRootState) {
    let leftovers: Vec<_> = o.staging.iter().filter(|e| !e.active).collect();
    for e in o.staging.iter().filter(|e| e.active) {
        l.kv(
            "writing now",
            &format!("{} ({} files, {})", e.run_id, e.files, human_bytes(e.bytes)),
        );
    }
    if leftovers.is_empty() {
        l.kv("crashed leftovers", "none");
        return;
    }
    l.kv(
        "crashed leftovers",
        &format!(
            "{} in .staging/ (the next run removes them):",
            leftovers.len()
        ),
    );
    for e in leftovers {
        let mut what = e.status.map_or_else(
            || "no run_status".to_string(),
            |st| status_word(st).to_string(),
        );
        if let Some(stage) = &e.failure_stage {
            let _ = write!(what, " at {stage}");
        }
        if e.has_index {
            // The index is renamed into place before the durability barrier: a crash
            // during the barrier leaves one whose members need not all be on disk.
            what.push_str(", indexed but never published");
        }
        let started = e.started_at.as_deref().unwrap_or("?");
        l.raw(&format!(
            "    {}  started {started}, {what}, {} files, {}",
            e.run_id,
            e.files,
            human_bytes(e.bytes)
        ));
    }
}

fn lock_line(o: &OutRootState) -> String {
    let lock = &o.lock;
    match (&lock.holder, lock.held, lock.stale) {
        (_, false, false) => "free".to_string(),
        (Some(h), true, _) => format!("held by {}", h.describe()),
        (None, true, _) => "held (no holder record yet)".to_string(),
        (Some(h), false, true) => {
            let alive = match lock.holder_alive {
                Some(true) => "still running but not holding it",
                Some(false) => "gone",
                None => "on another host",
            };
            format!(
                "STALE: left by {} ({alive}); the next run takes it over",
                h.describe()
            )
        }
        (None, false, true) => "stale".to_string(),
    }
}
