//! The cockpit's pages: server-rendered HTML in the review page's frame
//! (`report::html::document`: its inline style, no external resource, readable without
//! JavaScript), a navigation bar on each. The run page *is* the review page of `report`
//! (`report::html::HtmlPage`), its log links pointing at the cockpit's member route. Every
//! string that came from a file or a request is escaped; every state has a text label.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::catalog::{RunRow, Settings, Snapshot};
use crate::govern::audit::VerifyReport;
use crate::govern::cockpit::MissionDetail;
use crate::govern::missions::MissionRow;
use crate::govern::review::ReviewItem;
use crate::model::audit::AuditEntry;
use crate::model::results::Summary;
use crate::model::view::RunView;
use crate::report::html::{HtmlPage, document, esc, href, state};
use crate::report::{Report, RunReport};

const NAV_STYLE: &str = "<style>nav.cockpit{background:#222;color:#eee;padding:.4em 1.2em;display:flex;gap:1.2em;flex-wrap:wrap;font:14px system-ui,sans-serif}nav.cockpit a{color:#fff;text-decoration:none}nav.cockpit a[aria-current]{text-decoration:underline;font-weight:700}nav.cockpit .brand{font-weight:700;color:#9cf}.cache{font-size:12.5px;color:#555;margin:.4em 1.2em}pre.record{background:#f6f6f6;border:1px solid #ccc;padding:.6em;overflow:auto}td.num{text-align:right}</style>";

const SECTIONS: [(&str, &str); 8] = [
    ("/", "Runs"),
    ("/review", "Review queue"),
    ("/missions", "Missions"),
    ("/vault", "Artifact vault"),
    ("/omens", "Omens"),
    ("/evolution", "Evolution"),
    ("/audit", "Audit log"),
    ("/v1/openapi.json", "API"),
];

/// At most 200 characters of `s` (for echoing a request's id back).
pub fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

fn nav(active: &str) -> String {
    let mut s = String::from(NAV_STYLE);
    s.push_str("<nav class=\"cockpit\" aria-label=\"cockpit\"><span class=\"brand\">nexusmon cockpit</span>");
    for (url, label) in SECTIONS {
        let cur = if url == active {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(s, "<a href=\"{url}\"{cur}>{label}</a>");
    }
    s.push_str("</nav>\n");
    s
}

fn page(active: &str, title: &str, banner: &str, body: &str) -> String {
    document(
        &format!("nexusmon cockpit — {title}"),
        &format!("{}{banner}<main>\n{body}</main>\n", nav(active)),
    )
}

fn header(state_word: &str, label: &str, title: &str, lines: &[String]) -> String {
    let mut s = format!(
        "<header id=\"banner\" class=\"banner b-{st}\" data-state=\"{st}\"><h1><span class=\"badge\" role=\"status\">{label}</span> {}</h1>",
        esc(title),
        st = esc(state_word),
        label = esc(label)
    );
    for l in lines {
        let _ = write!(s, "<p>{l}</p>");
    }
    s.push_str("</header>\n");
    s
}

/// A page for a refused or failed request.
pub fn error_page(status: u16, code: &str, message: &str) -> String {
    page(
        "",
        &format!("{status}"),
        &header("failed", &format!("{status}"), code, &[esc(message)]),
        "",
    )
}

fn row_state(row: &RunRow) -> String {
    let (word, text) = match row.state.as_str() {
        "ok" => ("allow", "OK".to_string()),
        "mismatches" => ("error", "MISMATCHES".to_string()),
        "failed" => ("apply-failed", "FAILED".to_string()),
        "interrupted" => ("apply-failed", "INTERRUPTED".to_string()),
        "checking" => ("none", "… checking (not verified yet)".to_string()),
        "unreadable" => ("apply-failed", "UNREADABLE".to_string()),
        _ => ("apply-failed", "NOT VALID".to_string()),
    };
    state(word, &text)
}

/// Run `run_id` as named by a packet, an omen or an evolution entry: a link to each listed
/// bundle of it with the bundle's state (NOT VALID included), or that no out root holds it.
fn run_ref(snap: &Snapshot, run_id: &str) -> String {
    let listed: Vec<&std::sync::Arc<super::catalog::Run>> = snap
        .runs
        .iter()
        .filter(|r| r.row.run_id == run_id)
        .collect();
    if listed.is_empty() {
        return format!(
            "<span data-bundle=\"not-listed\"><code>{}</code> <span class=\"note\">(no out root of the cockpit holds it)</span></span>",
            esc(run_id)
        );
    }
    listed
        .iter()
        .map(|r| {
            format!(
                "<span data-bundle=\"{}\"><a href=\"/runs/{}\"><code>{}</code></a> {}</span>",
                esc(&r.row.state),
                href(&r.row.id),
                esc(&r.row.id),
                row_state(&r.row)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn sig_text(v: &Value) -> String {
    let st = v.get("state").and_then(Value::as_str).unwrap_or("?");
    match st {
        "valid" => state(
            "allow",
            &format!(
                "signed {}",
                v.get("fingerprint").and_then(Value::as_str).unwrap_or("")
            ),
        ),
        "invalid" => state("apply-failed", "signature NOT VALID"),
        "unverified" => state("none", "? signed, not verified"),
        _ => state("none", "– unsigned"),
    }
}

fn anchor_text(v: &Value) -> String {
    let st = v.get("state").and_then(Value::as_str).unwrap_or("?");
    match st {
        "anchored" => state(
            "allow",
            &format!(
                "anchored (seq {})",
                v.get("seq").and_then(Value::as_u64).unwrap_or(0)
            ),
        ),
        "not-anchored" => state("apply-failed", "NOT anchored"),
        "not-checked" => state("none", "? not checked"),
        _ => state("none", "– none"),
    }
}

/// The runs list.
pub fn runs(snap: &Snapshot, s: &Settings) -> String {
    let bad = snap
        .runs
        .iter()
        .filter(|r| matches!(r.row.state.as_str(), "not-valid" | "unreadable"))
        .count();
    let (st, label) = if bad > 0 {
        ("not-valid", "ATTENTION")
    } else {
        ("ok", "RUNS")
    };
    let mut lines = vec![format!(
        "{} run(s) in {} out root(s); {bad} not valid. Listed at {} (every {} ms; new bundles appear at the next scan).",
        snap.runs.len(),
        s.outs.len(),
        esc(&snap.scanned_at),
        s.rescan.as_millis()
    )];
    if let Some(e) = &snap.gov_error {
        lines.push(format!(
            "<strong>governance state unreadable: {}</strong>",
            esc(e)
        ));
    }
    let mut b = String::new();
    b.push_str("<section id=\"runs\"><h2>Runs</h2><p class=\"note\">Each bundle is verified by the strict reader (every member hashed against <code>artifact_index.json</code>); the verdict is kept while the index digest and every member's metadata (inode, size, mode, link count, change time) stay the same, compared at every scan, and verified again in full after ");
    let _ = write!(
        b,
        "{} s whatever the metadata says. A bundle being verified reads <em>checking</em>, never its old verdict.</p>",
        s.reverify.as_secs()
    );
    b.push_str("<table class=\"rows\" id=\"run-list\"><thead><tr><th scope=\"col\">state</th><th scope=\"col\">run</th><th scope=\"col\">plan</th><th scope=\"col\">scenarios</th><th scope=\"col\">mismatches</th><th scope=\"col\">seal</th><th scope=\"col\">signature</th><th scope=\"col\">anchor</th><th scope=\"col\">promotable</th></tr></thead><tbody>");
    for r in &snap.runs {
        let r = &r.row;
        let seal = if r.valid {
            state("allow", "valid")
        } else if r.state == "checking" {
            state("none", "… checking")
        } else {
            state(
                "apply-failed",
                &format!("NOT VALID ({} problem(s))", r.problems.len().max(1)),
            )
        };
        let prom = match r.promotable {
            Some(true) => state("allow", "yes"),
            Some(false) => format!(
                "{}<div class=\"why\">{}</div>",
                state("error", "no"),
                esc(&r.reasons.join(", "))
            ),
            None => state("none", "–"),
        };
        let _ = write!(
            b,
            "<tr data-run=\"{id}\" data-state=\"{st}\"><td>{}</td><td><a href=\"/runs/{hid}\" title=\"started {}; verified {}\"><code>{id}</code></a></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{seal}</td><td>{}</td><td>{}</td><td>{prom}</td></tr>",
            row_state(r),
            esc(r.started_at.as_deref().unwrap_or("-")),
            esc(r.verified_at.as_deref().unwrap_or("not yet")),
            esc(r.plan_id.as_deref().unwrap_or("?")),
            r.scenarios,
            r.mismatches,
            if r.attestation_error.is_some() {
                state("error", "NOT checked")
            } else {
                sig_text(&r.signature)
            },
            if r.attestation_error.is_some() {
                state("error", "NOT checked")
            } else {
                anchor_text(&r.anchor)
            },
            id = esc(&r.id),
            hid = href(&r.id),
            st = esc(&r.state),
        );
    }
    b.push_str("</tbody></table></section>\n");
    page("/", "runs", &header(st, label, "runs", &lines), &b)
}

/// The report page of one run, with the cockpit's navigation and the cache's facts.
pub fn run(row: &RunRow, view: &RunView) -> String {
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
    let links = format!("/runs/{}/files/", row.id);
    let r = RunReport::of_view(view, summary, governance.as_ref(), &links);
    let html = HtmlPage
        .render(&r)
        .unwrap_or_else(|e| error_page(500, "render", &e.to_string()));
    // The page is kept while the bundle's metadata stays the same, so it says only what
    // stays true: when it was verified, and how it is watched since.
    let note = format!(
        "<p class=\"cache\" id=\"cache\">Verified by the strict reader at {} (index blake3 <code>{}</code>). Since then the cockpit compares the bundle's metadata with that verification at every scan of its out root; a change makes it verify the bundle again and rebuild this page (see <a href=\"/\">Runs</a> for the last scan). Log links are served only from a bundle that verifies, each file hashed again as it is read.</p>",
        esc(row.verified_at.as_deref().unwrap_or("-")),
        esc(row.index_blake3.as_deref().unwrap_or("none"))
    );
    let note = match &row.attestation_error {
        Some(e) => format!(
            "<p class=\"cache\" id=\"attestation-error\"><strong>The signature and the audit anchor of this run are NOT checked: {}</strong></p>{note}",
            esc(e)
        ),
        None => note,
    };
    // The review page's own document, with the cockpit's bar above its banner.
    match html.find("<body>") {
        Some(at) => {
            let split = at + "<body>".len();
            format!("{}{}{note}{}", &html[..split], nav("/"), &html[split..])
        }
        None => html,
    }
}

/// A run listed but without a view (being checked, or unreadable).
pub fn run_unavailable(row: &RunRow) -> String {
    let (st, label, line) = if row.state == "checking" {
        (
            "interrupted",
            "CHECKING",
            "this bundle is being verified (it is new, or its files changed); reload in a moment"
                .to_string(),
        )
    } else {
        (
            "not-valid",
            "NOT VALID",
            format!(
                "this bundle cannot be read: {}",
                esc(row.error.as_deref().unwrap_or("unknown"))
            ),
        )
    };
    page(
        "/",
        &row.id,
        &header(st, label, &format!("run {}", row.id), &[line]),
        "",
    )
}

/// The review queue.
pub fn review(items: &[ReviewItem], snap: &Snapshot) -> String {
    let (st, label) = if items.is_empty() {
        ("ok", "NOTHING AWAITS")
    } else {
        ("mismatches", "AWAITING REVIEW")
    };
    let mut b = String::from("<section id=\"queue\"><h2>Awaiting an operator</h2>");
    if items.is_empty() {
        b.push_str("<p>Nothing awaits review.</p>");
    }
    b.push_str("<ul class=\"queue\">");
    for i in items {
        let link = if let Some(id) = i.id.strip_prefix("mission:") {
            format!("<a href=\"/missions/{}\">{}</a>", href(id), esc(&i.title))
        } else if let Some(run) = i.id.strip_prefix("packet:") {
            format!("{}; bundle {}", esc(&i.title), run_ref(snap, run))
        } else {
            esc(&i.title)
        };
        let _ = write!(
            b,
            "<li class=\"item\" data-id=\"{}\" data-state=\"{}\"><strong>{}</strong> <code>{}</code> {link}<ul>",
            esc(&i.id),
            esc(&i.state),
            esc(&i.state),
            esc(&i.id)
        );
        for w in &i.why {
            let _ = write!(b, "<li>{}</li>", esc(w));
        }
        for n in &i.next {
            let _ = write!(b, "<li><code>$ {}</code></li>", esc(n));
        }
        b.push_str("</ul></li>");
    }
    b.push_str("</ul></section>\n");
    page(
        "/review",
        "review queue",
        &header(
            st,
            label,
            "review queue",
            &[format!("{} item(s)", items.len())],
        ),
        &b,
    )
}

fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "-".into())
}

/// The missions listing.
pub fn missions(rows: &[MissionRow]) -> String {
    let mut b = String::from(
        "<section id=\"missions\"><h2>Missions</h2><table class=\"rows\"><thead><tr><th scope=\"col\">state</th><th scope=\"col\">mission</th><th scope=\"col\">rank</th><th scope=\"col\">composite</th><th scope=\"col\">approvals</th><th scope=\"col\">plan file</th></tr></thead><tbody>",
    );
    for r in rows {
        let st = match r.state.as_str() {
            "ready" => state("allow", "ready"),
            "awaiting-approval" => state("error", "awaiting approval"),
            "running" => state("deny", "▶ running"),
            other => state("apply-failed", other),
        };
        let id = r.plan_id.as_deref().unwrap_or("?");
        let _ = write!(
            b,
            "<tr data-mission=\"{}\"><td>{st}</td><td><a href=\"/missions/{}\"><code>{}</code></a></td><td>{}</td><td>{} ({})</td><td>{} / {}</td><td><code>{}</code></td></tr>",
            esc(id),
            href(id),
            esc(id),
            r.rank.as_ref().map_or("-".into(), word),
            r.composite.map_or("-".into(), |c| c.to_string()),
            r.band.as_ref().map_or("-".into(), word),
            r.approvals_valid,
            r.approvals_required,
            esc(&r.path.display().to_string())
        );
    }
    b.push_str("</tbody></table></section>\n");
    page(
        "/missions",
        "missions",
        &header(
            "ok",
            "MISSIONS",
            "missions",
            &[format!("{} mission(s)", rows.len())],
        ),
        &b,
    )
}

/// One mission: plan, rank, score band, tasks, approvals, audit entries, and the approval
/// to sign and upload.
pub fn mission<S: std::hash::BuildHasher>(
    d: &MissionDetail,
    to_sign: Option<&Value>,
    q: &HashMap<String, String, S>,
) -> String {
    let dec = &d.decision;
    let allows = dec.allows();
    let (st, label) = if allows {
        ("ok", "RUNNABLE")
    } else {
        ("failed", "REFUSED")
    };
    let lines = vec![
        format!(
            "gate: <strong>{}</strong>; rules: {}",
            esc(dec.outcome.as_str()),
            esc(&dec.reasons.join(", "))
        ),
        format!(
            "approvals {} valid of {} required; flags: {}",
            dec.valid_approvals,
            dec.required_approvals,
            esc(&if dec.flags.is_empty() {
                "none".to_string()
            } else {
                dec.flags.join(", ")
            })
        ),
    ];
    let mut b = String::new();
    b.push_str("<section id=\"facts\"><h2>Mission</h2><table class=\"kv\"><tbody>");
    let mut kv = |k: &str, v: String| {
        let _ = write!(b, "<tr><th scope=\"row\">{}</th><td>{v}</td></tr>", esc(k));
    };
    kv(
        "plan file",
        format!("<code>{}</code>", esc(&d.path.display().to_string())),
    );
    kv(
        "plan digest",
        format!("<code>blake3:{}</code>", esc(&d.plan_digest)),
    );
    kv("rank", esc(&dec.rank.as_ref().map_or("-".into(), word)));
    kv(
        "composite score",
        dec.composite.as_ref().map_or("-".into(), |c| {
            format!("{} ({})", c.score, esc(c.band.as_str()))
        }),
    );
    if let Some(m) = &d.mission {
        for k in ["objective", "requested_by", "category"] {
            if let Some(v) = m.get(k).and_then(Value::as_str) {
                kv(k, esc(v));
            }
        }
    }
    b.push_str("</tbody></table></section>");
    b.push_str("<section id=\"tasks\"><h2>Tasks</h2><table class=\"rows\"><thead><tr><th scope=\"col\">task</th><th scope=\"col\">probe / worker</th><th scope=\"col\">profile</th><th scope=\"col\">depends on</th><th scope=\"col\">inputs</th></tr></thead><tbody>");
    if let Some(tasks) = d
        .mission
        .as_ref()
        .and_then(|m| m.get("tasks"))
        .and_then(Value::as_object)
    {
        for (id, t) in tasks {
            let unit = t
                .get("probe")
                .and_then(Value::as_str)
                .map(|p| format!("probe {p}"))
                .or_else(|| {
                    t.get("worker")
                        .and_then(Value::as_str)
                        .map(|w| format!("worker {w}"))
                })
                .unwrap_or_default();
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>",
                esc(id),
                esc(&unit),
                esc(t.get("profile").and_then(Value::as_str).unwrap_or("")),
                esc(&t
                    .get("depends_on")
                    .and_then(Value::as_array)
                    .map(|a| a
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()),
                esc(&t.get("inputs").map(Value::to_string).unwrap_or_default())
            );
        }
    }
    b.push_str("</tbody></table></section>");
    b.push_str("<section id=\"approvals\"><h2>Approvals</h2><table class=\"rows\"><thead><tr><th scope=\"col\">record</th><th scope=\"col\">counts</th><th scope=\"col\">approver / reason</th><th scope=\"col\">detail</th></tr></thead><tbody>");
    for v in &d.approvals.valid {
        let _ = write!(
            b,
            "<tr data-approval=\"valid\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>key <code>{}</code>, expires {}{}</td></tr>",
            esc(&v.record_path.display().to_string()),
            state("allow", "valid"),
            esc(&v.approver),
            esc(&v.key_fingerprint),
            esc(&v.expires_at),
            v.uses.map_or(String::new(), |u| format!(
                ", {}-use ({} used)",
                u,
                v.used.unwrap_or(0)
            ))
        );
    }
    for r in &d.approvals.rejected {
        let _ = write!(
            b,
            "<tr data-approval=\"rejected\" class=\"mm\"><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&r.path.display().to_string()),
            state("error", "does not count"),
            esc(r.reason.as_str()),
            esc(&r.detail)
        );
    }
    b.push_str("</tbody></table>");
    // The approval to sign (a GET form: nothing changes until a signed upload).
    let val = |k: &str| esc(q.get(k).map_or("", String::as_str));
    let _ = write!(
        b,
        "<h3>Approve by upload</h3><form method=\"get\" action=\"/missions/{}\"><label>approver <input name=\"approver\" value=\"{}\" required></label> <label>expires in <input name=\"expires_in\" value=\"{}\" placeholder=\"24h\" size=\"6\"></label> <label>uses <input name=\"uses\" value=\"{}\" placeholder=\"any\" size=\"4\"></label> <button type=\"submit\">show the record to sign</button></form>",
        href(&d.plan_id),
        val("approver"),
        val("expires_in"),
        val("uses")
    );
    if let Some(t) = to_sign {
        let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("");
        let _ = write!(
            b,
            "<p>Save this record <em>exactly</em> (every byte is signed) as <code>{file}</code>:</p><pre class=\"record\" id=\"approval-record\">{}</pre><p>Sign it with your key (the server never holds it):</p><pre class=\"record\" id=\"sign-command\">{}</pre><p>Upload the record and its signature (the token is the server's <code>--token-file</code>):</p><pre class=\"record\" id=\"upload-command\">{}</pre>",
            esc(s("record")),
            esc(s("sign_command")),
            esc(s("upload_command")),
            file = esc(s("file_name"))
        );
    }
    b.push_str("</section>");
    b.push_str("<section id=\"audit\"><h2>Audit entries</h2><table class=\"rows\"><thead><tr><th scope=\"col\">seq</th><th scope=\"col\">time</th><th scope=\"col\">kind</th><th scope=\"col\">data</th></tr></thead><tbody>");
    for e in d.audit.iter().rev().take(200) {
        audit_row(&mut b, e);
    }
    b.push_str("</tbody></table></section>");
    let _ = writeln!(
        b,
        "<section id=\"plan\"><h2>Plan</h2><pre class=\"record\">{}</pre></section>",
        esc(&d.plan_text)
    );
    page(
        "/missions",
        &d.plan_id,
        &header(st, label, &format!("mission {}", d.plan_id), &lines),
        &b,
    )
}

fn audit_row(b: &mut String, e: &AuditEntry) {
    let data = e.data.to_string();
    let data: String = data.chars().take(400).collect();
    let _ = write!(
        b,
        "<tr><td class=\"num\">{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
        e.seq,
        esc(&e.ts),
        esc(&e.kind),
        esc(&data)
    );
}

/// The artifact vault.
pub fn vault(items: &[super::catalog::VaultItem], snap: &Snapshot) -> String {
    let mut b = String::from("<section id=\"artifacts\"><h2>Worker artifacts</h2>");
    if items.is_empty() {
        b.push_str("<p>No bundle holds worker artifacts (<code>artifacts.json</code>).</p>");
    } else {
        b.push_str("<table class=\"rows\"><thead><tr><th scope=\"col\">artifact</th><th scope=\"col\">run</th><th scope=\"col\">task</th><th scope=\"col\">worker</th><th scope=\"col\">size</th><th scope=\"col\">blake3</th><th scope=\"col\">consumed (lineage)</th></tr></thead><tbody>");
        for i in items {
            let a = &i.artifact;
            let member = a.get("member").and_then(Value::as_str).unwrap_or("");
            let consumed = i
                .consumed
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, d)| {
                            format!(
                                "{k} ({})",
                                d.get("blake3")
                                    .and_then(Value::as_str)
                                    .map_or("?", |s| s.get(..12).unwrap_or(s))
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let link = if i.run_state == "not-valid" {
                format!(
                    "<code>{}</code> {}",
                    esc(member),
                    state("apply-failed", "bundle NOT VALID")
                )
            } else {
                format!(
                    "<a href=\"/runs/{}/files/{}\"><code>{}</code></a>",
                    href(&i.run),
                    href(member),
                    esc(member)
                )
            };
            let _ = write!(
                b,
                "<tr><td>{link}</td><td><a href=\"/runs/{}\"><code>{}</code></a></td><td><code>{}</code></td><td>{} <span class=\"note\">exe {}</span></td><td class=\"num\">{}</td><td><code>{}</code></td><td>{}</td></tr>",
                href(&i.run),
                esc(&i.run),
                esc(&i.task_id),
                esc(i.worker.get("name").and_then(Value::as_str).unwrap_or("?")),
                esc(i
                    .worker
                    .pointer("/executable/blake3")
                    .and_then(Value::as_str)
                    .map_or("?", |s| s.get(..12).unwrap_or(s))),
                a.get("size").and_then(Value::as_u64).unwrap_or(0),
                esc(a
                    .pointer("/digest/blake3")
                    .and_then(Value::as_str)
                    .map_or("?", |s| s.get(..16).unwrap_or(s))),
                esc(&consumed)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section><section id=\"bundles\"><h2>Bundles</h2><table class=\"rows\"><thead><tr><th scope=\"col\">run</th><th scope=\"col\">plan</th><th scope=\"col\">state</th><th scope=\"col\">index blake3</th><th scope=\"col\">artifacts</th></tr></thead><tbody>");
    for r in &snap.runs {
        let r = &r.row;
        let _ = write!(
            b,
            "<tr><td><a href=\"/runs/{}\"><code>{}</code></a></td><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td></tr>",
            href(&r.id),
            esc(&r.id),
            esc(r.plan_id.as_deref().unwrap_or("?")),
            row_state(r),
            esc(r.index_blake3.as_deref().unwrap_or("-")),
            r.artifacts
        );
    }
    b.push_str("</tbody></table></section>\n");
    page(
        "/vault",
        "artifact vault",
        &header(
            "ok",
            "VAULT",
            "artifact vault",
            &[format!(
                "{} artifact(s) in {} bundle(s)",
                items.len(),
                snap.runs.len()
            )],
        ),
        &b,
    )
}

/// The omens.
pub fn omens(v: &Value, snap: &Snapshot) -> String {
    let items = v
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let locked = items
        .iter()
        .filter(|o| o.get("level").and_then(Value::as_str) == Some("locked"))
        .count();
    let mut b = String::from("<section id=\"omens\"><h2>Omens</h2>");
    if items.is_empty() {
        b.push_str("<p>No omens.</p>");
    } else {
        b.push_str("<table class=\"rows\"><thead><tr><th scope=\"col\">level</th><th scope=\"col\">count</th><th scope=\"col\">plan</th><th scope=\"col\">scenario</th><th scope=\"col\">failure</th><th scope=\"col\">last seen</th><th scope=\"col\">last run</th><th scope=\"col\">fingerprint</th></tr></thead><tbody>");
        for o in &items {
            let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let level = s("level");
            let lw = if level == "locked" {
                "apply-failed"
            } else {
                "error"
            };
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td><code>{}</code></td><td>{} ({})</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                state(lw, &level),
                o.get("count").and_then(Value::as_u64).unwrap_or(0),
                esc(&s("plan_id")),
                esc(&s("scenario_id")),
                esc(&s("mismatch_kind")),
                esc(&s("outcome")),
                esc(&s("last_seen")),
                o.get("last_run_id")
                    .and_then(Value::as_str)
                    .map_or_else(|| "-".to_string(), |r| run_ref(snap, r)),
                esc(s("fingerprint").get(..16).unwrap_or(""))
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>\n");
    page(
        "/omens",
        "omens",
        &header(
            if locked > 0 { "failed" } else { "ok" },
            "OMENS",
            "omens",
            &[format!("{} omen(s), {locked} locked", items.len())],
        ),
        &b,
    )
}

/// The evolution tree.
pub fn evolution(v: &Value, snap: &Snapshot) -> String {
    let st = v.get("state").cloned().unwrap_or_default();
    let level = st.get("level").and_then(Value::as_str).unwrap_or("?");
    let xp = st.get("xp").and_then(Value::as_u64).unwrap_or(0);
    let mut b = String::from("<section id=\"tree\"><h2>Levels</h2><ol class=\"tree\">");
    for l in v
        .get("levels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = l.get("level").and_then(Value::as_str).unwrap_or("?");
        let reached = l.get("reached").and_then(Value::as_bool).unwrap_or(false);
        let unlocks: Vec<&str> = l
            .get("unlocks")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let _ = write!(
            b,
            "<li data-level=\"{}\">{} <strong>{}</strong> at {} XP{}</li>",
            esc(name),
            if reached {
                state("allow", "reached")
            } else {
                state("none", "– not yet")
            },
            esc(name),
            l.get("xp").and_then(Value::as_u64).unwrap_or(0),
            if unlocks.is_empty() {
                String::new()
            } else {
                format!(": unlocks <code>{}</code>", esc(&unlocks.join(", ")))
            }
        );
    }
    b.push_str("</ol></section><section id=\"held\"><h2>Why each capability is held</h2>");
    let held = v
        .get("held_because")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if held.is_empty() {
        b.push_str("<p>No capability is held.</p>");
    }
    for h in &held {
        let _ = write!(
            b,
            "<h3><code>{}</code> (unlocked at {})</h3><ul>",
            esc(h.get("capability").and_then(Value::as_str).unwrap_or("?")),
            esc(h.get("level").and_then(Value::as_str).unwrap_or("?"))
        );
        for e in h
            .get("earned_by")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let _ = write!(
                b,
                "<li>packet <code>{}</code>: run {} of plan <code>{}</code>, +{} XP</li>",
                esc(s("packet_digest").get(..12).unwrap_or("")),
                run_ref(snap, &s("run_id")),
                esc(&s("plan_id")),
                e.get("xp").and_then(Value::as_u64).unwrap_or(0)
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("</section>\n");
    page(
        "/evolution",
        "evolution",
        &header(
            "ok",
            level,
            "evolution",
            &[format!(
                "XP {xp}; {} mission(s) passed; {} outcome(s) consumed",
                st.get("missions_passed")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                st.get("consumed")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            )],
        ),
        &b,
    )
}

/// The audit log with its verification.
pub fn audit(r: &VerifyReport, entries: &[AuditEntry], next: Option<&str>, total: usize) -> String {
    let (st, label) = if r.ok {
        ("ok", "VERIFIES")
    } else {
        ("not-valid", "DOES NOT VERIFY")
    };
    let mut lines = vec![format!(
        "{} line(s), head {}; chain and head file {}",
        r.lines,
        esc(&r
            .head
            .as_ref()
            .map_or("none".to_string(), |h| format!("seq {}", h.seq))),
        if r.ok {
            "intact"
        } else {
            "<strong>NOT intact</strong>"
        }
    )];
    for p in &r.problems {
        lines.push(esc(&p.message));
    }
    let mut b = String::from(
        "<section id=\"entries\"><h2>Entries (newest first)</h2><table class=\"rows\"><thead><tr><th scope=\"col\">seq</th><th scope=\"col\">time</th><th scope=\"col\">kind</th><th scope=\"col\">data</th></tr></thead><tbody>",
    );
    for e in entries {
        audit_row(&mut b, e);
    }
    b.push_str("</tbody></table>");
    let _ = write!(
        b,
        "<p class=\"note\">{} of {total} entries shown.",
        entries.len()
    );
    if let Some(n) = next {
        let _ = write!(b, " <a href=\"/audit?after={}\">older entries</a>", href(n));
    }
    b.push_str("</p></section>\n");
    page(
        "/audit",
        "audit log",
        &header(
            st,
            label,
            &format!("audit log {}", r.path.display()),
            &lines,
        ),
        &b,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings from files and requests never reach a page unescaped: generated hostile
    /// values through every renderer that takes them.
    #[test]
    fn generated_hostile_strings_are_escaped_on_every_page() {
        let bits = [
            "<script>",
            "</td>",
            "\"",
            "'",
            "&",
            "<img src=x onerror=alert(1)>",
            "a",
            "\u{7}",
        ];
        let mut seed: u64 = 7;
        for _ in 0..200 {
            let mut s = String::new();
            for _ in 0..4 {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                s.push_str(bits[(seed >> 33) as usize % bits.len()]);
            }
            let item = ReviewItem {
                id: format!("mission:{s}"),
                state: s.clone(),
                title: s.clone(),
                path: std::path::PathBuf::from(&s),
                why: vec![s.clone()],
                next: vec![s.clone()],
            };
            let omen = serde_json::json!({"items": [{"fingerprint": s, "level": s, "plan_id": s,
                "scenario_id": s, "mismatch_kind": s, "outcome": s, "last_seen": s, "last_run_id": s}]});
            let evo = serde_json::json!({"state": {"level": s, "xp": 1}, "levels": [{"level": s,
                "xp": 0, "unlocks": [s], "reached": true}], "held_because": [{"capability": s,
                "level": s, "earned_by": [{"packet_digest": s, "run_id": s, "plan_id": s, "xp": 1}]}]});
            let packet = ReviewItem {
                id: format!("packet:{s}"),
                ..item.clone()
            };
            for page in [
                error_page(400, "bad-request", &s),
                review(&[item, packet], &Snapshot::default()),
                omens(&omen, &Snapshot::default()),
                evolution(&evo, &Snapshot::default()),
            ] {
                let body = &page[page.find("<body>").unwrap()..page.rfind("<script>").unwrap()];
                assert!(!body.contains("<script"), "{s:?}");
                assert!(!body.contains("<img"), "{s:?}");
                assert!(!body.contains('\u{7}'));
            }
        }
    }
}
