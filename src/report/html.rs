//! The review page of `nexusmon report`: one self-contained HTML file an operator opens
//! from a CI artifact. Inline CSS, no network, no external fonts or scripts; a few lines of
//! inline JavaScript only filter and sort, and the page reads completely without it.
//!
//! Order: the verdict banner (the run's status and exit code, promotable or why not, the
//! bundle's integrity, signature and audit-anchor state; a bundle that does not verify is
//! shown as NOT VALID, never green), the run's facts, the governance record, the profiles'
//! apply preflight, the scenario × lane matrix (scenarios that need attention first, with
//! the oracle's deciding rule, attribution, errno, timings and links to the captured logs,
//! relative to the page), the notes and the resource use. Every state has a text label
//! and a symbol beside its colour, so the page reads in greyscale and to a screen reader.
//!
//! Large runs stay quick to open: rows that need attention are in one open group; passing
//! rows are grouped per profile in collapsed `<details>` of at most [`PAGE_ROWS`] rows, and
//! a passing row carries the deciding rule in short form (the full sentence is kept for
//! rows that need attention). Every string that came from a file is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Report, RowItem, RunReport, Sink, human_us};
use crate::model::mapping::RuntimeSignatures;
use crate::model::results::{LaneCell, OracleVerdict, Outcome, PreflightRecord, Summary};
use crate::model::view::{AnchorState, BannerState, Integrity, RunView, SignatureState};

/// Rows per collapsed group of passing scenarios.
pub const PAGE_ROWS: usize = 500;

/// Rows that need attention shown in full before the rest are only counted (they are all
/// still in the per-profile groups).
pub const ATTENTION_ROWS: usize = 2000;

/// The HTML review page.
#[derive(Debug, Clone, Copy, Default)]
pub struct HtmlPage;

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A relative URL for a `/`-separated path: every segment percent-encoded (`..` kept), so
/// a file name can never become markup, a scheme or a query.
pub fn href(path: &str) -> String {
    let mut out = String::new();
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if seg == ".." || seg == "." {
            out.push_str(seg);
            continue;
        }
        for b in seg.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    // A first segment with a colon would read as a scheme: make it explicitly relative.
    if out.split('/').next().is_some_and(|s| s.contains(':')) {
        out.insert_str(0, "./");
    }
    out
}

const STYLE: &str = r#"
:root{--ok:#1a7f37;--okb:#dafbe1;--bad:#b3261e;--badb:#ffe1de;--warn:#8a5a00;--warnb:#fff1c2;--info:#0b57b0;--infob:#dde9fb;--mut:#555;--mutb:#eee}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#111;background:#fff}
main{padding:0 1.2em 2em}
h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
code{font:12.5px ui-monospace,Menlo,Consolas,monospace}
table{border-collapse:collapse;margin:.3em 0}
th,td{border:1px solid #ccc;padding:.15em .45em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.banner{padding:.8em 1.2em;border-bottom:6px solid}
.b-ok{background:var(--okb);border-color:var(--ok)}
.b-mismatches{background:var(--warnb);border-color:var(--warn)}
.b-failed,.b-not-valid{background:var(--badb);border-color:var(--bad)}
.b-interrupted{background:var(--warnb);border-color:var(--bad);border-bottom-style:dashed}
.banner h1{margin:0 0 .3em;font-size:1.35em}
.badge{display:inline-block;padding:.05em .5em;border:2px solid;border-radius:3px;font-weight:700;letter-spacing:.04em}
.b-ok .badge{color:var(--ok)}.b-mismatches .badge{color:var(--warn)}.b-failed .badge,.b-not-valid .badge,.b-interrupted .badge{color:var(--bad)}
.chips{list-style:none;padding:0;margin:.4em 0 0;display:flex;flex-wrap:wrap;gap:.4em}
.chips li{border:1px solid;border-radius:3px;padding:.1em .5em;background:#fff}
.c-good{border-color:var(--ok);color:var(--ok)}.c-bad{border-color:var(--bad);color:var(--bad);font-weight:700}.c-warn{border-color:var(--warn);color:var(--warn)}.c-none{border-color:#888;color:var(--mut)}
.s{display:inline-block;padding:0 .35em;border-radius:2px;white-space:nowrap}
.s-allow{background:var(--okb);color:var(--ok)}
.s-deny{background:var(--infob);color:var(--info)}
.s-error,.s-timeout,.s-apply-failed{background:var(--badb);color:var(--bad);font-weight:700}
.s-skipped,.s-not-enforceable,.s-none{background:var(--mutb);color:var(--mut)}
.s-mm{background:var(--badb);color:var(--bad);font-weight:700;border:1px solid var(--bad)}
.s-flaky{background:var(--warnb);color:var(--warn);font-weight:700;border:1px dashed var(--warn)}
.s-match{color:var(--ok)}
tr.mm td:first-child{border-left:5px solid var(--bad)}
tr.fl td:first-child{border-left:5px dashed var(--warn)}
details{margin:.3em 0}
summary{cursor:pointer;font-weight:600}
.note{color:var(--mut)}
.why{font-size:12.5px;color:#333}
#ctl{margin:.4em 0}
"#;

const SCRIPT: &str = r"
(function(){var c=document.getElementById('ctl');if(!c)return;c.hidden=false;
var q=document.getElementById('q'),o=document.getElementById('only');
function f(){var t=q.value.toLowerCase(),m=o.checked;
document.querySelectorAll('table.rows tbody tr').forEach(function(r){
var show=(!m||r.classList.contains('mm')||r.classList.contains('fl'))&&(!t||r.textContent.toLowerCase().indexOf(t)>=0);
r.hidden=!show;});
if(t||m)document.querySelectorAll('#scenarios details').forEach(function(d){d.open=true;});}
q.addEventListener('input',f);o.addEventListener('change',f);
document.querySelectorAll('table.rows th').forEach(function(h,i){h.title='sort';h.style.cursor='pointer';
h.addEventListener('click',function(){var tb=h.closest('table').tBodies[0],k=h.cellIndex,d=h.dataset.d=h.dataset.d==='1'?'0':'1';
Array.prototype.slice.call(tb.rows).sort(function(a,b){var x=a.cells[k].textContent,y=b.cells[k].textContent;return d==='1'?x.localeCompare(y,undefined,{numeric:true}):y.localeCompare(x,undefined,{numeric:true});}).forEach(function(r){tb.appendChild(r);});});});
})();
";

/// A state label: its symbol and text on the state's colour (`allow`, `deny`, `error`, …).
pub fn state(word: &str, text: &str) -> String {
    let sym = match word {
        "allow" => "✓ ",
        "deny" => "⊘ ",
        "error" | "timeout" | "apply-failed" => "⚠ ",
        _ => "",
    };
    format!(
        "<span class=\"s s-{}\">{sym}{}</span>",
        esc(word),
        esc(text)
    )
}

fn cell(c: Option<&LaneCell>) -> String {
    match c {
        None => state("none", "not run"),
        Some(c) => {
            let text = match &c.errno_name {
                Some(e) if c.outcome != Outcome::Allow => format!("{} ({e})", c.outcome.as_str()),
                _ => c.outcome.as_str().to_string(),
            };
            state(c.outcome.as_str(), &text)
        }
    }
}

/// The deciding rule, briefly: `fs #3 /usr (read, exec)`, `tcp port 0 (absent)`,
/// `unhandled`.
fn short_rule(v: &OracleVerdict) -> String {
    let r = &v.rule;
    let mut s = r.kind.clone();
    if let Some(i) = r.index {
        let _ = write!(s, " #{i}");
    }
    if let Some(p) = &r.path {
        let _ = write!(s, " {p}");
    }
    if let Some(p) = r.port {
        let _ = write!(s, " port {p}");
    }
    if !r.access.is_empty() {
        let _ = write!(s, " ({})", r.access.join(", "));
    }
    s
}

fn chip(class: &str, check: &str, text: &str) -> String {
    format!(
        "<li class=\"{class}\" data-check=\"{check}\">{}</li>",
        esc(text)
    )
}

fn banner(out: &mut String, r: &RunReport<'_>) {
    let s = r.summary;
    let v = r.view;
    let bstate = v.map_or(
        if s.exit_code == 0 {
            BannerState::Ok
        } else {
            BannerState::Mismatches
        },
        RunView::banner,
    );
    let _ = write!(
        out,
        "<header id=\"banner\" class=\"banner b-{st}\" data-state=\"{st}\"><h1><span class=\"badge\" role=\"status\" aria-label=\"verdict: {label}\">{label}</span> run <code>{run}</code> of plan <code>{plan}</code></h1>",
        st = bstate.as_str(),
        label = bstate.label(),
        run = esc(&s.run_id),
        plan = esc(&s.plan_id)
    );
    let _ = write!(
        out,
        "<p>status <strong>{}</strong>, exit code <strong>{}</strong>: {}</p><ul class=\"chips\">",
        esc(s.status.as_str()),
        s.exit_code,
        esc(&s.exit_reason)
    );
    if let Some(v) = v {
        let verdict = &v.verdict;
        out.push_str(&match verdict.integrity {
            Integrity::Valid => chip(
                "c-good",
                "integrity",
                "✓ bundle valid: every file matches its seal",
            ),
            Integrity::Invalid => chip(
                "c-bad",
                "integrity",
                &format!(
                    "✗ bundle NOT VALID: {} problem(s); this is not evidence",
                    verdict.problems.len()
                ),
            ),
        });
        if let Some(st) = &verdict.bundle_status {
            let class = match st.as_str() {
                "complete" => "c-good",
                "failed" | "interrupted" | "in_progress" => "c-bad",
                _ => "c-warn",
            };
            out.push_str(&chip(class, "bundle-status", &format!("sealed as {st}")));
        }
        out.push_str(&match &verdict.signature {
            SignatureState::Unsigned => chip("c-none", "signature", "– unsigned"),
            SignatureState::Unverified { detail } => chip(
                "c-warn",
                "signature",
                &format!("? signed, not verified: {detail}"),
            ),
            SignatureState::Valid {
                signer,
                fingerprint,
            } => chip(
                "c-good",
                "signature",
                &format!("✓ signed by {signer} ({fingerprint})"),
            ),
            SignatureState::Invalid { detail } => chip(
                "c-bad",
                "signature",
                &format!("✗ signature NOT VALID: {detail}"),
            ),
        });
        out.push_str(&match &verdict.anchor {
            AnchorState::NotRecorded => {
                chip("c-none", "anchor", "– no audit anchor (ungoverned run)")
            }
            AnchorState::NotChecked { seq } => chip(
                "c-warn",
                "anchor",
                &format!("? audit anchor seq {seq}, not checked (no audit log here)"),
            ),
            AnchorState::Anchored { seq } => chip(
                "c-good",
                "anchor",
                &format!("✓ anchored in the audit log at seq {seq}"),
            ),
            AnchorState::NotAnchored { detail } => chip(
                "c-bad",
                "anchor",
                &format!("✗ NOT in the audit log: {detail}"),
            ),
        });
        match &v.packet {
            Some(p) if p.promotability.promotable => {
                out.push_str(&chip("c-good", "promotable", "✓ promotable"));
            }
            Some(p) => {
                let reasons: Vec<&str> =
                    p.promotability.reasons.iter().map(|r| r.as_str()).collect();
                out.push_str(&chip(
                    "c-bad",
                    "promotable",
                    &format!("✗ NOT promotable: {}", reasons.join(", ")),
                ));
            }
            None => out.push_str(&chip(
                "c-bad",
                "promotable",
                "✗ NOT promotable: no packet could be derived",
            )),
        }
    }
    out.push_str("</ul>");
    if let Some(v) = v
        && !v.verdict.problems.is_empty()
    {
        out.push_str("<details open><summary>Bundle problems</summary><ul id=\"problems\">");
        for p in &v.verdict.problems {
            let _ = write!(out, "<li><code>{}</code></li>", esc(p));
        }
        out.push_str("</ul></details>");
    }
    out.push_str("</header>\n");
}

fn facts(out: &mut String, r: &RunReport<'_>) {
    let s = r.summary;
    let m = r.view.and_then(|v| v.manifest.as_ref());
    out.push_str("<section id=\"facts\"><h2>Run</h2><table class=\"kv\"><tbody>");
    let mut row = |k: &str, v: String| {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th><td>{v}</td></tr>",
            esc(k)
        );
    };
    row("plan", format!("<code>{}</code>", esc(&s.plan_id)));
    if let Some(m) = m {
        row("plan file", format!("<code>{}</code>", esc(&m.plan_path)));
    }
    row(
        "plan digest",
        format!("<code>blake3:{}</code>", esc(&s.plan_digest.blake3)),
    );
    row("channel", esc(s.channel.as_str()));
    if let Some(m) = m {
        row(
            "kernel",
            format!("{} ({})", esc(&m.host.kernel_release), esc(&m.host.machine)),
        );
        row(
            "Landlock ABI",
            m.landlock_abi
                .map_or("none (Landlock unavailable)".into(), |a| a.to_string()),
        );
        row("started", esc(&m.started_at));
        row(
            "tool",
            format!("{} {}", esc(&m.tool.name), esc(&m.tool.version)),
        );
    }
    let total: u64 = s.mismatches.values().sum();
    row("scenarios", s.scenarios.to_string());
    row("mismatches", total.to_string());
    row("flaky", s.flaky.len().to_string());
    if let Some(t) = &s.tasks {
        row(
            "tasks",
            format!(
                "{}: {} succeeded, {} failed, {} skipped",
                t.total, t.succeeded, t.failed, t.skipped
            ),
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn governance(out: &mut String, r: &RunReport<'_>) {
    out.push_str("<section id=\"governance\"><h2>Governance</h2>");
    let Some(g) = r.governance else {
        out.push_str("<p class=\"note\">Ungoverned: no state directory, so no gate record, no approvals and no audit entry.</p></section>\n");
        return;
    };
    out.push_str("<table class=\"kv\"><tbody>");
    let mut row = |k: &str, v: String| {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th><td>{v}</td></tr>",
            esc(k)
        );
    };
    row("gate", esc(g.outcome.as_deref().unwrap_or("?")));
    row("kind", esc(g.kind.as_deref().unwrap_or("?")));
    if let Some(rank) = &g.rank {
        row("rank", esc(rank));
    }
    if let Some(c) = g.composite {
        row(
            "composite score",
            format!("{c} ({})", esc(g.band.as_deref().unwrap_or("?"))),
        );
    }
    row(
        "approvals",
        format!(
            "{} valid of {} required",
            g.valid_approvals.unwrap_or(0),
            g.required_approvals.unwrap_or(0)
        ),
    );
    row(
        "review flags",
        if g.flags.is_empty() {
            "none".into()
        } else {
            g.flags
                .iter()
                .map(|f| format!("<strong>{}</strong>", esc(f)))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    row("rules applied", esc(&g.reasons.join(", ")));
    out.push_str("</tbody></table>");
    if !g.approvals.is_empty() {
        out.push_str("<table><caption>Approvals counted</caption><thead><tr><th scope=\"col\">approver</th><th scope=\"col\">key</th><th scope=\"col\">checked</th></tr></thead><tbody>");
        for a in &g.approvals {
            let _ = write!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&a.approver),
                esc(&a.key_fingerprint),
                if a.verified {
                    state("allow", "verified")
                } else {
                    state(
                        "error",
                        &format!("NOT verified: {}", a.problem.as_deref().unwrap_or("?")),
                    )
                }
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>\n");
}

fn preflight_row(out: &mut String, p: &PreflightRecord) {
    let enforcement = if !p.apply_ok {
        state("apply-failed", "apply-failed")
    } else if p.abi_requested.is_none() {
        state("none", "no Landlock rules")
    } else {
        let st = p.ruleset_status.map_or("?", |x| x.as_str());
        let class = match st {
            "fully-enforced" => "allow",
            "partially-enforced" => "error",
            _ => "apply-failed",
        };
        state(class, st)
    };
    let dropped: Vec<String> = p
        .dropped_rights
        .iter()
        .map(|d| format!("{}: {}", d.item, d.reason))
        .collect();
    let _ = write!(
        out,
        "<tr><td><code>{}</code></td><td>{}</td><td>{} / {}</td><td>{enforcement}</td><td>{}</td><td>{}</td></tr>",
        esc(&p.profile),
        esc(&p.compat),
        p.abi_requested.map_or("-".into(), |a| a.to_string()),
        p.abi_kernel.map_or("none".into(), |a| a.to_string()),
        if dropped.is_empty() {
            "none".to_string()
        } else {
            esc(&dropped.join("; "))
        },
        esc(&p.detail),
    );
}

fn preflight(out: &mut String, r: &RunReport<'_>) {
    out.push_str("<section id=\"profiles\"><h2>Profiles (apply preflight)</h2><table><thead><tr><th scope=\"col\">profile</th><th scope=\"col\">compat</th><th scope=\"col\">ABI (profile / kernel)</th><th scope=\"col\">enforcement</th><th scope=\"col\">dropped rights</th><th scope=\"col\">detail</th></tr></thead><tbody>");
    for p in r.preflight {
        preflight_row(out, p);
    }
    out.push_str("</tbody></table></section>\n");
}

const HEAD: &str = "<thead><tr><th scope=\"col\">result</th><th scope=\"col\">scenario</th><th scope=\"col\">expected</th><th scope=\"col\">baseline</th><th scope=\"col\">scenario lane</th><th scope=\"col\">oracle</th><th scope=\"col\">attribution</th><th scope=\"col\">deciding rule</th><th scope=\"col\">time</th><th scope=\"col\">logs</th></tr></thead>";

/// Matching rows of one profile, as the first walk counts them: how many, and the
/// positions (in the files' order) of the first and the last.
#[derive(Debug, Clone, Copy)]
struct Group {
    rows: usize,
    first: usize,
    last: usize,
}

fn row(out: &mut String, links: &str, x: &RowItem<'_>, full: bool) {
    let r = x.row;
    let (class, result) = if !r.mismatches.is_empty() {
        let kinds: Vec<&str> = r.mismatches.iter().map(|m| m.as_str()).collect();
        (
            " class=\"mm\"",
            format!(
                "<span class=\"s s-mm\">✗ mismatch</span> {}",
                esc(&kinds.join(", "))
            ),
        )
    } else if r.flaky {
        (
            " class=\"fl\"",
            "<span class=\"s s-flaky\">~ flaky</span> passed on retry".to_string(),
        )
    } else {
        ("", "<span class=\"s s-match\">✓ match</span>".to_string())
    };
    let oracle = match &r.oracle {
        None => state("none", "not run"),
        Some(o) => state(o.decision.as_str(), o.decision.as_str()),
    };
    let rule = match (x.oracle, full, &r.oracle) {
        (Some(v), true, _) => format!(
            "<code>{}</code><div class=\"why\">{}</div>",
            esc(&short_rule(v)),
            esc(&v.reason)
        ),
        (Some(v), false, _) => format!("<code>{}</code>", esc(&short_rule(v))),
        (None, _, Some(o)) => esc(&o.reason),
        (None, _, None) => "-".into(),
    };
    let details = x.details;
    let time = details
        .and_then(|d| d.get(&crate::model::results::Lane::Scenario))
        .map_or("-".to_string(), |l| human_us(l.wall_us));
    let mut logs = String::new();
    if let Some(d) = details {
        for (lane, l) in d {
            for p in &l.logs {
                let name = p.rsplit('/').next().unwrap_or(p);
                let _ = write!(
                    logs,
                    "<a href=\"{}\">{} {}</a> ",
                    esc(&href(&format!("{links}{p}"))),
                    lane.as_str(),
                    esc(name.rsplit('.').next().unwrap_or(name))
                );
            }
            if full && l.attempts.len() > 1 {
                let tries: Vec<String> = l
                    .attempts
                    .iter()
                    .map(|a| {
                        format!(
                            "#{} {}{}",
                            a.attempt,
                            a.outcome.as_str(),
                            a.errno_name
                                .as_deref()
                                .map_or(String::new(), |e| format!(" ({e})"))
                        )
                    })
                    .collect();
                let _ = write!(
                    logs,
                    "<div class=\"why\">{} attempts: {}</div>",
                    lane.as_str(),
                    esc(&tries.join(", "))
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "<tr{class}><td>{result}<td><code>{}</code>{}<td>{}<td>{}<td>{}<td>{oracle}<td>{}<td>{rule}<td>{time}<td>{}</tr>",
        esc(&r.scenario_id),
        r.task_id.as_deref().map_or(String::new(), |t| format!(
            " <span class=\"note\">task {}</span>",
            esc(t)
        )),
        esc(r.expected.as_str()),
        cell(r.baseline.as_ref()),
        cell(r.scenario.as_ref()),
        esc(r.attribution.map_or("-", |a| a.as_str())),
        if logs.is_empty() { "-".into() } else { logs },
    );
}

fn table_head(out: &mut String, caption: &str) {
    let _ = writeln!(
        out,
        "<table class=\"rows\"><caption class=\"note\">{}</caption>{HEAD}<tbody>",
        esc(caption)
    );
}

/// The scenario section, written as the rows are walked: one walk counts (rows that need
/// attention, matching rows per profile and where they are), one or two write the rows
/// that need attention (mismatches, then flaky ones, in scenario order), and the groups of
/// matching rows per profile (in profile order) take one walk per run of profiles whose
/// rows come in that order in the files (one walk when profile order and scenario order
/// agree). Memory: one row, and a count per profile.
fn scenarios(out: &mut dyn Sink, r: &RunReport<'_>) -> crate::Result<()> {
    let matching =
        |row: &crate::model::results::NormalizedRow| row.mismatches.is_empty() && !row.flaky;
    let (mut mism, mut flaky, mut total) = (0usize, 0usize, 0usize);
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    r.rows.rows(&mut |x| {
        let row = x.row;
        if !row.mismatches.is_empty() {
            mism += 1;
        } else if row.flaky {
            flaky += 1;
        } else if let Some(g) = groups.get_mut(row.profile_id.as_str()) {
            g.rows += 1;
            g.last = total;
        } else {
            groups.insert(
                row.profile_id.clone(),
                Group {
                    rows: 1,
                    first: total,
                    last: total,
                },
            );
        }
        total += 1;
        Ok(())
    })?;
    let mut buf = String::new();
    buf.push_str("<section id=\"scenarios\"><h2>Scenarios</h2>");
    buf.push_str("<div id=\"ctl\" hidden><label>filter <input id=\"q\" type=\"search\" placeholder=\"scenario, outcome, rule…\"></label> <label><input id=\"only\" type=\"checkbox\"> only mismatches and flaky</label> <span class=\"note\">(click a column header to sort)</span></div>");
    let _ = write!(
        buf,
        "<details id=\"attention\" open><summary>Needs attention: {mism} mismatch(es), {flaky} flaky</summary>"
    );
    let attention = mism + flaky;
    if attention == 0 {
        buf.push_str("<p>None: every scenario matched its expectation and the oracle.</p>");
    } else {
        table_head(&mut buf, "scenarios that need attention, mismatches first");
        out.put(&buf)?;
        let mut shown = 0usize;
        for want_mismatch in [true, false] {
            if shown >= ATTENTION_ROWS
                || (want_mismatch && mism == 0)
                || (!want_mismatch && flaky == 0)
            {
                continue;
            }
            r.rows.rows(&mut |x| {
                let needs = if want_mismatch {
                    !x.row.mismatches.is_empty()
                } else {
                    x.row.mismatches.is_empty() && x.row.flaky
                };
                if !needs || shown >= ATTENTION_ROWS {
                    return Ok(());
                }
                shown += 1;
                buf.clear();
                row(&mut buf, r.links, &x, true);
                out.put(&buf)
            })?;
        }
        buf.clear();
        buf.push_str("</tbody></table>\n");
        if attention > shown {
            let _ = write!(
                buf,
                "<p class=\"note\">{} more are listed in their profiles' groups below.</p>",
                attention - shown
            );
        }
    }
    buf.push_str("</details>\n");
    out.put(&buf)?;
    let small = total <= 200;
    // Runs of profiles (in profile order) whose rows come one profile after another in
    // the files: each run is written in one walk.
    let mut walks: Vec<Vec<(&str, Group)>> = Vec::new();
    for (profile, g) in &groups {
        match walks.last_mut() {
            Some(w) if w.last().is_some_and(|(_, prev)| prev.last < g.first) => {
                w.push((profile.as_str(), *g));
            }
            _ => walks.push(vec![(profile.as_str(), *g)]),
        }
    }
    for walk in &walks {
        let at: BTreeMap<&str, usize> =
            walk.iter().enumerate().map(|(i, (p, _))| (*p, i)).collect();
        let mut seen = vec![0usize; walk.len()];
        r.rows.rows(&mut |x| {
            if !matching(x.row) {
                return Ok(());
            }
            let Some(&slot) = at.get(x.row.profile_id.as_str()) else {
                return Ok(());
            };
            let (profile, g) = walk[slot];
            let i = seen[slot];
            seen[slot] += 1;
            buf.clear();
            if i % PAGE_ROWS == 0 {
                let page_len = (g.rows - i).min(PAGE_ROWS);
                let range = if g.rows > PAGE_ROWS {
                    format!(", rows {}–{} of {}", i + 1, i + page_len, g.rows)
                } else {
                    String::new()
                };
                let _ = write!(
                    buf,
                    "<details class=\"grp\"{}><summary>profile <code>{}</code>: {} matching scenario(s){range}</summary>",
                    if small { " open" } else { "" },
                    esc(profile),
                    g.rows
                );
                table_head(&mut buf, &format!("profile {profile}, matching scenarios"));
            }
            row(&mut buf, r.links, &x, false);
            if (i + 1) % PAGE_ROWS == 0 || i + 1 == g.rows {
                buf.push_str("</tbody></table>\n</details>\n");
            }
            out.put(&buf)
        })?;
    }
    out.put("</section>\n")
}

fn notes(out: &mut String, s: &Summary) {
    let mut items: Vec<String> = Vec::new();
    items.extend(s.leaked.iter().map(|n| {
        format!(
            "leaked descendant: <code>{}</code> {}: {}",
            esc(&n.scenario_id),
            n.lane,
            esc(&n.note)
        )
    }));
    items.extend(s.truncated.iter().map(|n| {
        format!(
            "truncated output: <code>{}</code> {}: {}",
            esc(&n.scenario_id),
            n.lane,
            esc(&n.note)
        )
    }));
    items.extend(s.unattributed_leaks.iter().map(|l| {
        format!(
            "leaked (not attributable to one probe): pid {} ({}) found by {}, {}",
            l.pid,
            esc(&l.comm),
            esc(&l.found_by),
            esc(&l.action)
        )
    }));
    if items.is_empty() {
        return;
    }
    out.push_str("<section id=\"notes\"><h2>Notes</h2><ul>");
    for i in items {
        let _ = write!(out, "<li>{i}</li>");
    }
    out.push_str("</ul></section>\n");
}

fn resources(out: &mut String, s: &Summary) {
    out.push_str("<section id=\"resources\"><h2>Resource use (children)</h2><table><thead><tr><th scope=\"col\">lane</th><th scope=\"col\">children</th><th scope=\"col\">wall</th><th scope=\"col\">user CPU</th><th scope=\"col\">system CPU</th><th scope=\"col\">peak RSS</th></tr></thead><tbody>");
    for (lane, u) in &s.rusage {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} KiB</td></tr>",
            esc(lane),
            s.children.get(lane).copied().unwrap_or(0),
            human_us(u.wall_us),
            human_us(u.user_us),
            human_us(u.sys_us),
            u.max_rss_kib
        );
    }
    let _ = writeln!(
        out,
        "</tbody></table><p>Runner: peak RSS {} KiB, wall {}.</p></section>",
        s.runner_max_rss_kib,
        human_us(s.wall_us)
    );
}

/// A complete page: `body` inside the review page's head (its inline style and script, the
/// same Content-Security-Policy). The cockpit (`serve`) draws its pages with it.
pub fn document(title: &str, body: &str) -> String {
    let (head, tail) = frame(title);
    format!("{head}{body}{tail}")
}

/// What comes before and after a page's body (see [`document`]).
fn frame(title: &str) -> (String, String) {
    (
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\"><title>{}</title><style>{STYLE}</style></head><body>\n",
            esc(title)
        ),
        format!("<script>{SCRIPT}</script></body></html>\n"),
    )
}

impl Report for HtmlPage {
    fn name(&self) -> &'static str {
        "html"
    }

    fn write(&self, r: &RunReport<'_>, out: &mut dyn Sink) -> crate::Result<()> {
        let label = r.view.map_or("", |v| v.banner().label());
        let (head, tail) = frame(&format!("nexusmon run {} — {label}", r.summary.run_id));
        let mut body = head;
        banner(&mut body, r);
        body.push_str("<main>\n");
        facts(&mut body, r);
        governance(&mut body, r);
        preflight(&mut body, r);
        out.put(&body)?;
        scenarios(out, r)?;
        body.clear();
        notes(&mut body, r.summary);
        resources(&mut body, r.summary);
        body.push_str("</main>\n");
        body.push_str(&tail);
        out.put(&body)
    }
}

/// One packet of a `report --packet` page.
#[derive(Debug, Clone)]
pub struct PacketEntry {
    /// The packet file, as given.
    pub path: String,
    /// Its run.
    pub run_id: String,
    /// Its plan.
    pub plan_id: String,
    /// Promotable.
    pub promotable: bool,
    /// Why not.
    pub reasons: Vec<String>,
    /// Review flags.
    pub flags: Vec<String>,
    /// Refused by verification (edited, or its bundle changed): why.
    pub refused: Vec<String>,
    /// Scenarios and mismatches.
    pub scenarios: u64,
    /// Mismatches.
    pub mismatches: u64,
}

/// The page for a set of packets or a mappings directory: each packet's promotability,
/// then the per-profile signatures the promotable packets map to, and their conflicts.
pub fn packets_page(entries: &[PacketEntry], sigs: Option<&RuntimeSignatures>) -> String {
    let mut b = String::new();
    let refused = entries.iter().filter(|e| !e.refused.is_empty()).count();
    let conflicts = sigs.map_or(0, |s| s.conflicts.len());
    let (st, label) = if refused > 0 {
        ("not-valid", "NOT VALID")
    } else if conflicts > 0 || entries.iter().any(|e| !e.promotable) {
        ("mismatches", "ATTENTION")
    } else {
        ("ok", "OK")
    };
    let _ = write!(
        b,
        "<header id=\"banner\" class=\"banner b-{st}\" data-state=\"{st}\"><h1><span class=\"badge\" role=\"status\">{label}</span> {} packet(s), {refused} refused, {conflicts} conflict(s)</h1></header><main>",
        entries.len()
    );
    if !entries.is_empty() {
        b.push_str("<section id=\"packets\"><h2>Packets</h2><table><thead><tr><th scope=\"col\">packet</th><th scope=\"col\">run</th><th scope=\"col\">plan</th><th scope=\"col\">promotable</th><th scope=\"col\">flags</th><th scope=\"col\">scenarios</th><th scope=\"col\">mismatches</th></tr></thead><tbody>");
        for e in entries {
            let prom = if !e.refused.is_empty() {
                state(
                    "apply-failed",
                    &format!("REFUSED: {}", e.refused.join("; ")),
                )
            } else if e.promotable {
                state("allow", "yes")
            } else {
                state("error", &format!("NO: {}", e.reasons.join(", ")))
            };
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{prom}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.path),
                esc(&e.run_id),
                esc(&e.plan_id),
                esc(&e.flags.join(", ")),
                e.scenarios,
                e.mismatches
            );
        }
        b.push_str("</tbody></table></section>");
    }
    if let Some(s) = sigs {
        b.push_str("<section id=\"signatures\"><h2>Per-profile signatures</h2><table><thead><tr><th scope=\"col\">profile</th><th scope=\"col\">definition</th><th scope=\"col\">scenarios</th><th scope=\"col\">signature</th><th scope=\"col\">conflicts</th></tr></thead><tbody>");
        for (profile, by_digest) in &s.profiles {
            for (digest, sig) in by_digest {
                let _ = write!(
                    b,
                    "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                    esc(profile),
                    esc(&digest[..digest.len().min(12)]),
                    sig.scenarios.len(),
                    esc(&sig.signature.blake3[..sig.signature.blake3.len().min(16)]),
                    if sig.conflicts > 0 {
                        state("error", &format!("{} conflict(s)", sig.conflicts))
                    } else {
                        state("allow", "none")
                    }
                );
            }
        }
        b.push_str("</tbody></table>");
        if !s.conflicts.is_empty() {
            b.push_str("<h2>Conflicts</h2><table><thead><tr><th scope=\"col\">scenario</th><th scope=\"col\">differs in</th><th scope=\"col\">sides</th></tr></thead><tbody>");
            for c in &s.conflicts {
                let sides: Vec<String> = c
                    .sides
                    .iter()
                    .map(|x| {
                        format!(
                            "{} / {} / oracle {} — runs {}",
                            x.decision,
                            x.attribution,
                            x.oracle,
                            x.runs.join(", ")
                        )
                    })
                    .collect();
                let _ = write!(
                    b,
                    "<tr class=\"mm\"><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    esc(&c.scenario_id),
                    esc(&c.fields.join(", ")),
                    esc(&sides.join(" | "))
                );
            }
            b.push_str("</tbody></table>");
        }
        b.push_str("</section>");
    }
    b.push_str("</main>\n");
    document(&format!("nexusmon packets — {label}"), &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::results::NormalizedRow;
    use crate::report::testgen;

    /// The scenario section as it was written from a whole view before it was written a
    /// row at a time (every row held, sorted, chunked): kept here as the reference.
    fn whole_view_scenarios(out: &mut String, g: &testgen::GenRun, links: &str) {
        let oracle: BTreeMap<&str, &OracleVerdict> = g
            .oracle
            .iter()
            .map(|v| (v.scenario_id.as_str(), v))
            .collect();
        let table = |out: &mut String, rows: &[&NormalizedRow], full: bool, caption: &str| {
            let _ = writeln!(
                out,
                "<table class=\"rows\"><caption class=\"note\">{}</caption>{HEAD}<tbody>",
                esc(caption)
            );
            for r in rows {
                let x = RowItem {
                    row: r,
                    oracle: oracle.get(r.scenario_id.as_str()).copied(),
                    details: g.details.get(&r.scenario_id),
                    packets: &[],
                };
                row(out, links, &x, full);
            }
            out.push_str("</tbody></table>\n");
        };
        out.push_str("<section id=\"scenarios\"><h2>Scenarios</h2>");
        out.push_str("<div id=\"ctl\" hidden><label>filter <input id=\"q\" type=\"search\" placeholder=\"scenario, outcome, rule…\"></label> <label><input id=\"only\" type=\"checkbox\"> only mismatches and flaky</label> <span class=\"note\">(click a column header to sort)</span></div>");
        let mut attention: Vec<&NormalizedRow> = g
            .rows
            .iter()
            .filter(|x| !x.mismatches.is_empty() || x.flaky)
            .collect();
        attention.sort_by_key(|x| (x.mismatches.is_empty(), x.scenario_id.as_str()));
        let _ = write!(
            out,
            "<details id=\"attention\" open><summary>Needs attention: {} mismatch(es), {} flaky</summary>",
            attention
                .iter()
                .filter(|x| !x.mismatches.is_empty())
                .count(),
            attention.iter().filter(|x| x.mismatches.is_empty()).count()
        );
        if attention.is_empty() {
            out.push_str("<p>None: every scenario matched its expectation and the oracle.</p>");
        } else {
            let shown = &attention[..attention.len().min(ATTENTION_ROWS)];
            table(
                out,
                shown,
                true,
                "scenarios that need attention, mismatches first",
            );
            if attention.len() > shown.len() {
                let _ = write!(
                    out,
                    "<p class=\"note\">{} more are listed in their profiles' groups below.</p>",
                    attention.len() - shown.len()
                );
            }
        }
        out.push_str("</details>\n");
        let mut by_profile: BTreeMap<&str, Vec<&NormalizedRow>> = BTreeMap::new();
        for x in &g.rows {
            if x.mismatches.is_empty() && !x.flaky {
                by_profile.entry(x.profile_id.as_str()).or_default().push(x);
            }
        }
        let small = g.rows.len() <= 200;
        for (profile, rows) in &by_profile {
            let pages = rows.chunks(PAGE_ROWS).count();
            for (i, page) in rows.chunks(PAGE_ROWS).enumerate() {
                let range = if pages > 1 {
                    format!(
                        ", rows {}–{} of {}",
                        i * PAGE_ROWS + 1,
                        i * PAGE_ROWS + page.len(),
                        rows.len()
                    )
                } else {
                    String::new()
                };
                let _ = write!(
                    out,
                    "<details class=\"grp\"{}><summary>profile <code>{}</code>: {} matching scenario(s){range}</summary>",
                    if small { " open" } else { "" },
                    esc(profile),
                    rows.len()
                );
                table(
                    out,
                    page,
                    false,
                    &format!("profile {profile}, matching scenarios"),
                );
                out.push_str("</details>\n");
            }
        }
        out.push_str("</section>\n");
    }

    /// Generated runs (profiles whose order differs from their scenario ids' order, more
    /// than a page of matching rows, more rows needing attention than are listed): the
    /// scenario section written a row at a time, in walks, is byte for byte the section
    /// written from the whole view.
    #[test]
    fn the_streamed_scenario_section_is_the_whole_views() {
        for seed in 0..24u64 {
            let n = match seed {
                0 => 2600,
                s if s % 6 == 0 => 700,
                _ => 60,
            };
            let g = testgen::run(seed, n, seed % 3 == 0);
            let rows = crate::report::Slices {
                rows: &g.rows,
                mismatches: &g.packets,
                oracle: &g.oracle,
                details: Some(&g.details),
            };
            let r = RunReport {
                summary: &g.summary,
                rows: &rows,
                preflight: &[],
                governance: None,
                view: None,
                links: "../out/run-1/",
            };
            let mut want = String::new();
            whole_view_scenarios(&mut want, &g, r.links);
            let mut got = String::new();
            scenarios(&mut got, &r).unwrap();
            assert!(got == want, "seed {seed}: the streamed section differs");
            // The whole page is the frame around the same sections.
            let page = HtmlPage.render(&r).unwrap();
            assert!(page.contains(&want), "seed {seed}");
        }
    }

    /// Generated strings with every character HTML treats specially never survive
    /// unescaped, and hrefs never gain a scheme, a query or a fragment.
    #[test]
    fn escaping_holds_for_generated_inputs() {
        let alphabet = [
            '<', '>', '&', '"', '\'', 'a', '/', ':', '?', '#', ' ', '\u{7}', 'é',
        ];
        let mut seed: u64 = 7;
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..(seed % 12) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                s.push(alphabet[(seed >> 33) as usize % alphabet.len()]);
            }
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let e = esc(&s);
            assert!(!e.contains(['<', '>', '"', '\'']), "{s:?} -> {e}");
            assert!(!e.contains('\u{7}'));
            let h = href(&s);
            assert!(!h.contains(['?', '#', ' ', '"', '<']), "{s:?} -> {h}");
            let first = h.split('/').next().unwrap_or("");
            assert!(!first.contains(':'), "{s:?} -> {h}");
        }
    }
}
