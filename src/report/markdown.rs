//! `summary.md`: header facts, the profiles' apply preflight, a scenario × lane table
//! (baseline, scenario, oracle, expected, attribution, mismatch), every mismatch with the
//! oracle's cited rule, flaky / leaked / truncated notes, and resource use per lane.

use std::fmt::Write as _;

use std::collections::BTreeMap;

use super::table::cell_text;
use super::{Report, RunReport, Sink, human_us};
use crate::model::results::NormalizedRow;

/// The bundle's `summary.md`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SummaryMarkdown;

fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Report for SummaryMarkdown {
    fn name(&self) -> &'static str {
        "markdown"
    }

    fn write(&self, r: &RunReport<'_>, out: &mut dyn Sink) -> crate::Result<()> {
        let mut m = String::new();
        header(&mut m, r);
        governance(&mut m, r);
        preflight(&mut m, r);
        tasks(&mut m, r)?;
        out.put(&m)?;
        m.clear();
        scenarios(out, r)?;
        mismatches(out, r)?;
        notes(&mut m, r);
        resources(&mut m, r);
        out.put(&m)
    }
}

/// The title and the facts table.
#[allow(clippy::many_single_char_names)]
fn header(m: &mut String, r: &RunReport<'_>) {
    let s = r.summary;
    let _ = writeln!(m, "# nexusmon run `{}`\n", s.run_id);
    if let Some(v) = r.view {
        let b = v.banner();
        let promotable = match &v.packet {
            Some(p) if p.promotability.promotable => "promotable".to_string(),
            Some(p) => format!(
                "NOT promotable ({})",
                p.promotability
                    .reasons
                    .iter()
                    .map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "NOT promotable".to_string(),
        };
        let _ = writeln!(
            m,
            "**{}**: bundle {}; {promotable}\n",
            b.label(),
            if v.verdict.integrity == crate::model::view::Integrity::Valid {
                "valid"
            } else {
                "NOT VALID"
            }
        );
    }
    let _ = writeln!(m, "| | |\n|---|---|");
    let _ = writeln!(m, "| plan | `{}` |", s.plan_id);
    let _ = writeln!(m, "| plan digest | `blake3:{}` |", s.plan_digest.blake3);
    let _ = writeln!(
        m,
        "| status | **{}** (exit {}): {} |",
        s.status.as_str(),
        s.exit_code,
        esc(&s.exit_reason)
    );
    let _ = writeln!(m, "| channel | {} |", s.channel.as_str());
    let _ = writeln!(m, "| scenarios | {} |", s.scenarios);
    let total: u64 = s.mismatches.values().sum();
    let _ = writeln!(m, "| mismatches | {total} |");
    let _ = writeln!(m, "| flaky | {} |", s.flaky.len());
    if let Some(t) = &s.tasks {
        let _ = writeln!(
            m,
            "| tasks | {}: {} succeeded, {} failed, {} skipped |",
            t.total, t.succeeded, t.failed, t.skipped
        );
    }
    if let Some(k) = &s.kernel_audit {
        let why = if k.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", esc(&k.reason))
        };
        let counts = if matches!(
            k.state,
            crate::model::results::KernelAuditState::Collected
                | crate::model::results::KernelAuditState::Lost
        ) {
            format!(
                " ({} denial record(s) attributed to the run's children, {} of other processes)",
                k.attributed, k.unattributed
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            m,
            "| kernel audit | {} ({}){counts}{why} |",
            k.state.as_str(),
            k.mode.as_str()
        );
    }
    if !s.governance_flags.is_empty() {
        let _ = writeln!(
            m,
            "| governance flags | {} |",
            s.governance_flags
                .iter()
                .map(|f| format!("**{f}**"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// The governance record: gate outcome, rank, score band, approvals (approver and key),
/// review flags.
fn governance(m: &mut String, r: &RunReport<'_>) {
    let _ = writeln!(m, "\n## Governance\n");
    let Some(g) = r.governance else {
        let _ = writeln!(
            m,
            "Ungoverned: no state directory, so no gate record, no approvals and no audit entry."
        );
        return;
    };
    let _ = writeln!(m, "| | |\n|---|---|");
    let _ = writeln!(
        m,
        "| gate | {} ({}) |",
        g.outcome.as_deref().unwrap_or("?"),
        g.kind.as_deref().unwrap_or("?")
    );
    if let Some(rank) = &g.rank {
        let _ = writeln!(m, "| rank | {rank} |");
    }
    if let Some(c) = g.composite {
        let _ = writeln!(
            m,
            "| composite score | {c} ({}) |",
            g.band.as_deref().unwrap_or("?")
        );
    }
    let _ = writeln!(
        m,
        "| approvals | {} valid of {} required |",
        g.valid_approvals.unwrap_or(0),
        g.required_approvals.unwrap_or(0)
    );
    for a in &g.approvals {
        let _ = writeln!(
            m,
            "| approved by | {} (key `{}`){} |",
            esc(&a.approver),
            esc(&a.key_fingerprint),
            if a.verified { "" } else { " **not verified**" }
        );
    }
    let _ = writeln!(
        m,
        "| review flags | {} |",
        if g.flags.is_empty() {
            "none".to_string()
        } else {
            g.flags.join(", ")
        }
    );
}

/// The profiles' apply preflight.
fn preflight(m: &mut String, r: &RunReport<'_>) {
    let _ = writeln!(m, "\n## Profiles (apply preflight)\n");
    let _ = writeln!(
        m,
        "| profile | compat | ABI (profile / kernel) | kernel reported | applied | notes |\n|---|---|---|---|---|---|"
    );
    for p in r.preflight {
        let mut notes: Vec<String> = Vec::new();
        if !p.detail.is_empty() {
            notes.push(p.detail.clone());
        }
        notes.extend(
            p.dropped_rights
                .iter()
                .map(|d| format!("dropped `{}`: {}", d.item, d.reason)),
        );
        notes.extend(p.skipped_rules.iter().cloned());
        if !p.seccomp_groups.is_empty() {
            notes.push(format!("seccomp denies: {}", p.seccomp_groups.join(", ")));
        }
        if let Some(by) = &p.processes_enforced_by {
            notes.push(format!("processes limited by {by}"));
        }
        if p.required {
            notes.push("apply_preflight_profile".into());
        }
        let _ = writeln!(
            m,
            "| `{}` | {} | {} / {} | {} | {} | {} |",
            p.profile,
            p.compat,
            p.abi_requested.map_or("-".into(), |a| a.to_string()),
            p.abi_kernel.map_or("none".into(), |a| a.to_string()),
            if p.abi_requested.is_some() {
                p.ruleset_status.map_or("-", |x| x.as_str())
            } else {
                "no Landlock rules"
            },
            if p.apply_ok { "yes" } else { "**no**" },
            esc(&notes.join("; "))
        );
    }
}

/// A mission's tasks in dependency order (a task's row is the first row naming it; a
/// mission has few tasks, so they are kept).
fn tasks(m: &mut String, r: &RunReport<'_>) -> crate::Result<()> {
    let s = r.summary;
    if let Some(t) = &s.tasks {
        let mut by_task: BTreeMap<String, NormalizedRow> = BTreeMap::new();
        r.rows.rows(&mut |x| {
            if let Some(task) = &x.row.task_id
                && !by_task.contains_key(task)
            {
                by_task.insert(task.clone(), x.row.clone());
            }
            Ok(())
        })?;
        let _ = writeln!(
            m,
            "\n## Tasks\n\nIn dependency order, {}; a failed task skips every task that depends on it.\n",
            if t.max_parallel > 1 {
                format!("up to {} at a time", t.max_parallel)
            } else {
                "one at a time".to_string()
            }
        );
        let _ = writeln!(
            m,
            "| layer | task | scenario | after | expected | observed | result |\n|---|---|---|---|---|---|---|"
        );
        for (n, layer) in t.layers.iter().enumerate() {
            for task in layer {
                let Some(row) = by_task.get(task.as_str()) else {
                    continue;
                };
                let result = if t.failed_tasks.contains(task) {
                    "**failed**".to_string()
                } else if t.skipped_tasks.contains(task) {
                    format!(
                        "skipped (task `{}` failed)",
                        row.skipped_because.as_deref().unwrap_or("?")
                    )
                } else {
                    "succeeded".to_string()
                };
                let _ = writeln!(
                    m,
                    "| {} | `{task}` | `{}` | {} | {} | {} | {result} |",
                    n + 1,
                    row.scenario_id,
                    if row.depends_on.is_empty() {
                        "-".to_string()
                    } else {
                        row.depends_on
                            .iter()
                            .map(|d| format!("`{d}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    row.expected.as_str(),
                    cell_text(row.scenario.as_ref()),
                );
            }
        }
    }
    Ok(())
}

/// The scenario × lane table, a row at a time.
fn scenarios(out: &mut dyn Sink, r: &RunReport<'_>) -> crate::Result<()> {
    out.put("\n## Scenarios\n\n| scenario | expected | baseline | scenario | oracle | attribution | mismatch |\n|---|---|---|---|---|---|---|\n")?;
    let mut listed: u64 = 0;
    let mut m = String::new();
    r.rows.rows(&mut |x| {
        let row = x.row;
        listed += 1;
        let mut mm: Vec<String> = row
            .mismatches
            .iter()
            .map(|k| k.as_str().to_string())
            .collect();
        if row.flaky {
            mm.push("flaky".into());
        }
        m.clear();
        let _ = writeln!(
            m,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            row.scenario_id,
            row.expected.as_str(),
            cell_text(row.baseline.as_ref()),
            cell_text(row.scenario.as_ref()),
            row.oracle.as_ref().map_or("-", |o| o.decision.as_str()),
            row.attribution.map_or("-", |a| a.as_str()),
            mm.join(", ")
        );
        out.put(&m)
    })?;
    let omitted = r.summary.scenarios.saturating_sub(listed);
    if omitted > 0 {
        out.put(&format!(
            "\n{omitted} of {} scenario(s) matched their expectations and are not listed here (a run this large lists only mismatching, flaky and task rows); every row is in `runtime_events.normalized.jsonl`.\n",
            r.summary.scenarios
        ))?;
    }
    Ok(())
}

/// Every mismatch with the oracle's cited rule, a packet at a time.
fn mismatches(out: &mut dyn Sink, r: &RunReport<'_>) -> crate::Result<()> {
    out.put("\n## Mismatches\n\n")?;
    let mut any = false;
    let mut m = String::new();
    r.rows.mismatches(&mut |p| {
        any = true;
        m.clear();
        let _ = writeln!(
            m,
            "- `{}` **{}**: {}",
            p.scenario_id,
            p.kind.as_str(),
            esc(&p.message)
        );
        if let Some(reason) = &p.oracle_reason {
            let _ = writeln!(
                m,
                "  - oracle: {} ({})",
                p.oracle.map_or("-", |o| o.as_str()),
                esc(reason)
            );
        }
        out.put(&m)
    })?;
    if !any {
        out.put("None.\n")?;
    }
    Ok(())
}

/// Flaky, leaked and truncated notes.
fn notes(m: &mut String, r: &RunReport<'_>) {
    let s = r.summary;
    let notes = [
        (
            "Flaky (passed only on retry)",
            s.flaky.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>(),
        ),
        (
            "Leaked descendants (killed by the runner)",
            s.leaked
                .iter()
                .map(|n| format!("`{}` {}: {}", n.scenario_id, n.lane, esc(&n.note)))
                .collect(),
        ),
        (
            "Leaked descendants not attributable to one probe",
            s.unattributed_leaks
                .iter()
                .map(|l| {
                    format!(
                        "pid {} (`{}`) found by {}, {}",
                        l.pid,
                        esc(&l.comm),
                        l.found_by,
                        l.action
                    )
                })
                .collect(),
        ),
        (
            "Truncated output",
            s.truncated
                .iter()
                .map(|n| format!("`{}` {}: {}", n.scenario_id, n.lane, esc(&n.note)))
                .collect(),
        ),
    ];
    for (title, items) in notes {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(m, "\n## {title}\n");
        for i in items {
            let _ = writeln!(m, "- {i}");
        }
    }
}

/// Resource use per lane and the runner's own.
fn resources(m: &mut String, r: &RunReport<'_>) {
    let s = r.summary;
    let _ = writeln!(m, "\n## Resource use (children)\n");
    let _ = writeln!(
        m,
        "| lane | children | wall | user CPU | system CPU | peak RSS |\n|---|---|---|---|---|---|"
    );
    for (lane, u) in &s.rusage {
        let _ = writeln!(
            m,
            "| {lane} | {} | {} | {} | {} | {} KiB |",
            s.children.get(lane).copied().unwrap_or(0),
            human_us(u.wall_us),
            human_us(u.user_us),
            human_us(u.sys_us),
            u.max_rss_kib
        );
    }
    let _ = writeln!(
        m,
        "\nRunner: peak RSS {} KiB, wall {}.",
        s.runner_max_rss_kib,
        human_us(s.wall_us)
    );
}
