//! The review surfaces: the HTML page of `report` in headless Chromium (mismatch, flaky
//! and apply-failure rows, the banner, working log links, a tampered bundle shown as not
//! valid), JUnit read by an independent reader (junitparser), `diff` of two runs, the
//! review queue, `trust add`, `approve --scope`, and `promote`/`evolve` over a directory.

use std::path::{Path, PathBuf};

use crate::util::{
    Project, chromium, latest_bundle, python, read_json, runner_signer_line, ssh_keygen,
};

/// Every `href="…"` of a serialized DOM, percent-decoded.
fn hrefs(dom: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find("href=\"") {
        let tail = &rest[at + 6..];
        let end = tail.find('"').unwrap();
        let raw = tail[..end].replace("&amp;", "&");
        let bytes = raw.as_bytes();
        let mut dec = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                dec.push(u8::from_str_radix(&raw[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                dec.push(bytes[i]);
                i += 1;
            }
        }
        out.push(String::from_utf8(dec).unwrap());
        rest = &tail[end..];
    }
    out
}

/// The scenario ids of the rows with `class` in the attention table of a DOM.
fn rows_with_class(dom: &str, class: &str) -> Vec<String> {
    let attention = &dom[dom.find("id=\"attention\"").unwrap()..];
    let attention = &attention[..attention.find("</details>").unwrap()];
    let mut out = Vec::new();
    for part in attention.split("<tr").skip(1) {
        if !part.starts_with(&format!(" class=\"{class}\"")) {
            continue;
        }
        let code = &part[part.find("<code>").unwrap() + 6..];
        out.push(code[..code.find('<').unwrap()].to_string());
    }
    out
}

/// The fixture `report`: a mismatch, a flaky scenario and a hard profile this kernel cannot
/// apply (exit 5), run once.
fn review_run() -> Project {
    let p = Project::copy_of("report");
    let r = p.run("review", &[]);
    r.code(5);
    assert!(
        !r.stderr.contains("BitFlags") && !r.stderr.contains("Some("),
        "a Rust debug value reached the user:\n{}",
        r.stderr
    );
    p
}

#[test]
fn the_review_page_shows_mismatches_flaky_and_apply_failures_in_chromium_and_a_tampered_bundle_as_not_valid()
 {
    let p = review_run();
    let page = p.path("site/report.html");
    p.nx(&["report", "--bundle", "out", "--out", "site/report.html"])
        .code(0);
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing is fetched.
    for bad in ["http://", "https://", "<link", "src=\"", "@import", "url("] {
        assert!(!html.contains(bad), "the page references `{bad}`");
    }
    let dom = chromium(&page, None);
    // The inline script ran (it reveals the filter controls) and the banner says FAILED.
    assert!(
        dom.contains("id=\"ctl\"") && !dom.contains("id=\"ctl\" hidden"),
        "script did not run"
    );
    assert!(dom.contains("data-state=\"failed\""), "banner: {dom}");
    assert!(dom.contains("data-check=\"integrity\""));
    let mut mm = rows_with_class(&dom, "mm");
    mm.sort();
    assert_eq!(mm, ["plain:read-hostname", "udp-ports-hard:udp-send"]);
    assert_eq!(rows_with_class(&dom, "fl"), ["plain:flaky-once"]);
    // Every state has a text label beside its colour.
    for label in ["✗ mismatch", "~ flaky", "⚠ apply-failed", "✓ allow"] {
        assert!(dom.contains(label), "no `{label}` label");
    }
    // Log links resolve to files relative to the page.
    let links: Vec<String> = hrefs(&dom);
    assert!(links.iter().any(|l| l.contains("flaky-once")), "{links:?}");
    for l in &links {
        assert!(!l.contains("://"), "{l}");
        let target = page.parent().unwrap().join(l);
        assert!(target.is_file(), "link {l} does not resolve to a file");
    }
    // The picture a reader sees.
    let png = p.path("site/report.png");
    chromium(&page, Some(&png));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000);

    // Never written into the sealed bundle itself.
    let inside = latest_bundle(p.root()).join("report.html");
    p.nx(&[
        "report",
        "--bundle",
        "out",
        "--out",
        inside.to_str().unwrap(),
    ])
    .code(2);
    assert!(!inside.exists());

    // One byte changed in a result file: the same page says NOT VALID, never green, and
    // `report` exits 1.
    let bundle = latest_bundle(p.root());
    let f = bundle.join("runtime_events.normalized.jsonl");
    let mut text = std::fs::read_to_string(&f).unwrap();
    let before = text.clone();
    text = text.replacen("\"scenario_id\":\"", "\"scenario_id\":\"x", 1);
    assert_ne!(text, before, "the tamper changed nothing");
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&f, text).unwrap();
    p.nx(&["report", "--bundle", "out", "--out", "site/tampered.html"])
        .code(1);
    let dom = chromium(&p.path("site/tampered.html"), None);
    assert!(dom.contains("data-state=\"not-valid\""), "{dom}");
    assert!(dom.contains("bundle NOT VALID"));
    assert!(
        dom.contains("mismatch runtime_events.normalized.jsonl"),
        "the problem and the file are named: {dom}"
    );
}

#[test]
fn junit_parses_with_junitparser_one_case_per_scenario_with_failure_and_flaky_counts() {
    let p = review_run();
    p.nx(&[
        "report",
        "--bundle",
        "out",
        "--format",
        "junit",
        "--out",
        "junit.xml",
    ])
    .code(0);
    let script = r"
import sys
from junitparser.xunit2 import JUnitXml as X2
x = X2.fromfile(sys.argv[1])
cases, failures, errors, flaky, names = 0, 0, 0, 0, []
for suite in x:
    for case in suite:
        cases += 1
        names.append(case.name)
        for r in case.result:
            t = type(r).__name__
            if t == 'Failure': failures += 1
            if t == 'Error': errors += 1
        flaky += len(case.flaky_failures())
print(cases, failures, errors, flaky, len(set(names)) == len(names), ','.join(sorted(s.name for s in x)))
";
    let out = python(&["junitparser"], script)
        .arg(p.path("junit.xml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8_lossy(&out.stdout);
    // 4 scenarios; the expected-deny read is a failure, the apply failure an error; the
    // flaky scenario passed on its second attempt after one flakyFailure; names unique.
    assert_eq!(got.trim(), "4 1 1 1 True plain,udp-ports-hard", "{got}");
    // Also from the run itself.
    let r = p.run("review", &["--junit", "run-junit.xml"]);
    r.code(5);
    let xml = std::fs::read_to_string(p.path("run-junit.xml")).unwrap();
    assert!(xml.contains("flakyFailure") && xml.contains("plain:read-hostname"));
}

fn edit_system_ro_to_read_etc(p: &Project) {
    let path = p.path("registry/linux-core/profiles.json");
    let mut v = read_json(&path);
    let rules = v["profiles"]["system-ro"]["landlock"]["fs"]["allow"]
        .as_array_mut()
        .unwrap();
    for r in rules.iter_mut() {
        if r["path"] == "/etc/ld.so.cache" {
            r["path"] = "/etc".into();
        }
    }
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
#[allow(clippy::many_single_char_names)]
fn diff_of_two_quickstart_runs_is_empty_and_granting_etc_is_a_critical_change_naming_the_field() {
    let p = Project::shipped();
    p.run("quickstart", &[]).code(0);
    let a = latest_bundle(p.root());
    p.run("quickstart", &[]).code(0);
    let b = latest_bundle(p.root());
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let r = p.nx(&["diff", a, b, "--fail-on", "any"]);
    r.code(0);
    assert!(r.stdout.contains("no changes"), "{}", r.stdout);
    let j = p.nx(&["--json", "diff", a, b]);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["changes"].as_array().unwrap().len(), 0, "{v:#}");
    // Packets name their bundles: the same diff.
    p.emit(Path::new(a), "pa.json", &[]).code(0);
    p.emit(Path::new(b), "pb.json", &[]).code(0);
    let r = p.nx(&["diff", "pa.json", "pb.json", "--fail-on", "any"]);
    r.code(0);
    assert!(r.stdout.contains("no changes"), "{}", r.stdout);

    edit_system_ro_to_read_etc(&p);
    p.run("quickstart", &[]).code(1);
    let r = p.nx(&["diff", b, "out", "--fail-on", "critical"]);
    r.code(1);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("critical"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.contains("system-ro:read-etc-hostname"), "{line}");
    assert!(
        r.stdout
            .contains("landlock.fs.allow[5].path: \"/etc/ld.so.cache\" → \"/etc\""),
        "{}",
        r.stdout
    );
    // Below the threshold: exit 0; JSON and Markdown say the same.
    let j = p.nx(&["--json", "diff", b, "out"]);
    j.code(0);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["highest"], "critical");
    let field = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "profile-changed")
        .unwrap();
    assert_eq!(field["fields"][0]["path"], "landlock.fs.allow[5].path");
    // The document follows its published schema (checked by an independent validator).
    std::fs::write(p.path("diff.json"), &j.stdout).unwrap();
    let check = python(
        &["jsonschema"],
        "import json, sys, jsonschema\njsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
    )
    .arg(p.path("diff.json"))
    .arg(crate::util::repo_root().join("schemas/diff.schema.json"))
    .output()
    .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let md = p.nx(&["diff", b, "out", "--format", "markdown"]);
    assert!(
        md.stdout
            .contains("| **critical** | decision-changed | `system-ro:read-etc-hostname`")
    );
}

#[test]
#[allow(clippy::many_single_char_names)]
fn the_review_queue_shows_what_an_edit_changed_since_the_approval_it_voided() {
    let p = Project::copy_of("govern/project").init();
    let key = p.approver("alice", "ed25519");
    // An A-rank mission needs one approval: approve, then edit a profile it uses.
    let plans: Vec<PathBuf> = std::fs::read_dir(p.path("plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mission = plans
        .iter()
        .find(|d| {
            let v = read_json(&d.join("plan.json"));
            v["mission"]["rank"] == "A"
        })
        .expect("an A-rank mission in the fixture")
        .clone();
    let plan_id = mission.file_name().unwrap().to_str().unwrap().to_string();
    let plan_arg = format!("plans/{plan_id}/plan.json");
    // Unknown scopes are refused at once, nothing written.
    let r = p.nx(&[
        "approve",
        "--plan",
        &plan_arg,
        "--approver",
        "alice",
        "--scope",
        "deploy",
    ]);
    r.code(2);
    assert!(!mission.join("approvals").exists());
    p.nx(&[
        "approve",
        "--plan",
        &plan_arg,
        "--approver",
        "alice",
        "--sign-with",
        key.to_str().unwrap(),
    ])
    .code(0);
    let q = p.nx(&["--json", "review"]);
    q.code(0);
    assert!(
        !q.stdout.contains(&format!("mission:{plan_id}")),
        "approved: {}",
        q.stdout
    );
    // The approved run's summary.md names the approver and the key.
    p.nx(&["run", "--plan", &plan_arg]).code(0);
    let md = std::fs::read_to_string(latest_bundle(p.root()).join("summary.md")).unwrap();
    assert!(
        md.contains("| approved by | alice (key `SHA256:") && md.contains("| rank | A |"),
        "{md}"
    );

    let plan = read_json(&mission.join("plan.json"));
    let registry = plan["registry_id"].as_str().unwrap().to_string();
    let profile = plan["mission"]["tasks"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()["profile"]
        .as_str()
        .unwrap()
        .to_string();
    let ppath = p.path(&format!("registry/{registry}/profiles.json"));
    let mut v = read_json(&ppath);
    v["profiles"][&profile]["description"] = "edited after the approval".into();
    std::fs::write(&ppath, serde_json::to_string_pretty(&v).unwrap()).unwrap();

    let q = p.nx(&["review"]);
    q.code(0);
    let id = format!("mission:{plan_id}");
    assert!(q.stdout.contains(&id), "{}", q.stdout);
    assert!(
        q.stdout.contains(&format!(
            "nexusmon approve --plan {plan_arg} --approver <approver>"
        )),
        "{}",
        q.stdout
    );
    let s = p.nx(&["review", "show", &id]);
    s.code(0);
    assert!(s.stdout.contains("voided by these changes"), "{}", s.stdout);
    assert!(
        s.stdout.contains(&format!(
            "profiles.{profile}.description: added \"edited after the approval\""
        )) || s
            .stdout
            .contains(&format!("profiles.{profile}.description: \"")),
        "{}",
        s.stdout
    );
    p.nx(&["review", "show", "mission:nope"]).code(2);
}

#[test]
fn trust_add_appends_an_allowed_signers_line_atomically_and_audits_it() {
    let p = Project::shipped().init();
    let key = crate::util::ssh_keygen(p.root(), "carol", "ed25519");
    let pubkey = format!("{}.pub", key.display());
    let r = p.nx(&[
        "trust",
        "add",
        &pubkey,
        "--principal",
        "carol",
        "--role",
        "approver",
    ]);
    r.code(0);
    let trust = std::fs::read_to_string(p.state().join("trusted_signers")).unwrap();
    let line = trust.lines().last().unwrap();
    assert!(
        line.starts_with("carol namespaces=\"nexusmon-approval-v1\" ssh-ed25519 ")
            && line.ends_with(" roles=approver"),
        "{line}"
    );
    let log = std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap();
    assert!(log.lines().last().unwrap().contains("\"trust-added\""));
    // ssh-keygen reads the same line: a signature by carol verifies.
    let f = p.path("doc.txt");
    std::fs::write(&f, "x").unwrap();
    p.ssh_sign(&key, "nexusmon-approval-v1", &f);
    assert!(p.ssh_verify("carol", &f).status.success());
    // Again: nothing written. Bad input: exit 2 and the file unchanged.
    p.nx(&[
        "trust",
        "add",
        &pubkey,
        "--principal",
        "carol",
        "--role",
        "approver",
    ])
    .code(0);
    p.nx(&[
        "trust",
        "add",
        "not-a-key",
        "--principal",
        "dave",
        "--role",
        "approver",
    ])
    .code(2);
    p.nx(&[
        "trust",
        "add",
        &pubkey,
        "--principal",
        "bad name",
        "--role",
        "approver",
    ])
    .code(2);
    assert_eq!(
        std::fs::read_to_string(p.state().join("trusted_signers")).unwrap(),
        trust
    );
    // The key now approves.
    p.nx(&[
        "approve",
        "--plan",
        "plans/mission-demo/plan.json",
        "--approver",
        "carol",
        "--sign-with",
        key.to_str().unwrap(),
    ])
    .code(0);
}

#[test]
fn promote_and_evolve_take_a_directory_and_skip_in_toto_statements() {
    let p = Project::shipped().init();
    p.nx(&["run", "--plan", "plans/mission-demo/plan.json"])
        .code(0);
    p.emit(
        &latest_bundle(p.root()),
        "promotion/promotion_packet.json",
        &[],
    )
    .code(0);
    assert!(p.path("promotion/promotion_packet.intoto.json").is_file());
    p.nx(&["promote", "--packets", "promotion/", "--out", "mappings/"])
        .code(0);
    // The README's glob picks up the Statement too: it is skipped, not refused.
    let glob = std::process::Command::new("sh")
        .current_dir(p.root())
        .args([
            "-c",
            &format!(
                "{} promote --packets promotion/*.json --out mappings2/",
                crate::util::bin().display()
            ),
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        glob.status.success(),
        "{}",
        String::from_utf8_lossy(&glob.stderr)
    );
    p.nx(&["evolve", "--packets", "promotion"]).code(0);
    // The packets page shows it with its signatures.
    p.nx(&["report", "--packet", "promotion/", "--out", "packets.html"])
        .code(0);
    let html = std::fs::read_to_string(p.path("packets.html")).unwrap();
    assert!(html.contains("Per-profile signatures") && html.contains("report-writer"));
    p.nx(&["report", "--mappings", "mappings", "--out", "maps.html"])
        .code(0);
    let html = std::fs::read_to_string(p.path("maps.html")).unwrap();
    assert!(html.contains("Per-profile signatures") && html.contains("report-writer"));
    // A directory without packets selects nothing.
    std::fs::create_dir_all(p.path("empty")).unwrap();
    p.nx(&["promote", "--packets", "empty", "--out", "m3"])
        .code(6);
}

#[test]
fn a_governed_runs_report_checks_its_audit_anchor_and_summary_md_shows_the_governance_record() {
    let p = Project::shipped().init();
    p.nx(&["run", "--plan", "plans/mission-demo/plan.json"])
        .code(0);
    let md = std::fs::read_to_string(latest_bundle(p.root()).join("summary.md")).unwrap();
    for row in [
        "## Governance",
        "| gate | allow-flagged (mission) |",
        "| rank | C |",
        "| composite score | 82 (SAFE) |",
        "| review flags | review-required |",
    ] {
        assert!(md.contains(row), "no `{row}` in summary.md:\n{md}");
    }
    p.nx(&["report", "--bundle", "out", "--out", "ok.html"])
        .code(0);
    let html = std::fs::read_to_string(p.path("ok.html")).unwrap();
    assert!(html.contains("data-state=\"ok\""), "{html}");
    assert!(html.contains("anchored in the audit log at seq"), "{html}");
    assert!(html.contains("<td>82 (SAFE)</td>"));
    // The audit log loses its tail: the index's anchor is no longer in it, and the page
    // says the evidence is not valid, though every file still matches the seal.
    let log = p.state().join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let first = text.lines().next().unwrap();
    std::fs::write(&log, format!("{first}\n")).unwrap();
    p.nx(&["report", "--bundle", "out", "--out", "cut.html"])
        .code(1);
    let html = std::fs::read_to_string(p.path("cut.html")).unwrap();
    assert!(html.contains("data-state=\"not-valid\""), "{html}");
    assert!(html.contains("NOT in the audit log"), "{html}");
    assert!(html.contains("bundle valid: every file matches its seal"));
}

#[test]
fn the_banner_shows_a_trusted_signature_and_a_bundle_re_signed_by_an_unknown_key_as_not_valid() {
    let p = Project::shipped().init();
    let runner = ssh_keygen(p.root(), "runner", "ed25519");
    let other = ssh_keygen(p.root(), "other", "ed25519");
    let signers = p.state().join("trusted_signers");
    let mut text = std::fs::read_to_string(&signers).unwrap();
    text.push_str(&runner_signer_line("ci", &runner, ""));
    std::fs::write(&signers, text).unwrap();
    p.nx(&[
        "run",
        "--plan",
        "plans/quickstart/plan.json",
        "--out",
        "out",
        "--sign-with",
        runner.to_str().unwrap(),
    ])
    .code(0);
    p.nx(&["report", "--bundle", "out", "--out", "signed.html"])
        .code(0);
    let html = std::fs::read_to_string(p.path("signed.html")).unwrap();
    assert!(html.contains("data-state=\"ok\""), "{html}");
    assert!(html.contains("✓ signed by"), "{html}");
    assert!(html.contains("anchored in the audit log"), "{html}");
    // The same index signed by a key the trust file does not name: every file still
    // matches the seal, but the page must not call it trustworthy.
    let b = latest_bundle(p.root());
    std::fs::copy(b.join("artifact_index.json"), p.path("idx")).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .args(["-Y", "sign", "-f"])
        .arg(&other)
        .args(["-n", "nexusmon-bundle-v1"])
        .arg(p.path("idx"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let sig = b.join("artifact_index.sig");
    let mut perm = std::fs::metadata(&sig).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&sig, perm).unwrap();
    std::fs::copy(p.path("idx.sig"), &sig).unwrap();
    p.nx(&["report", "--bundle", "out", "--out", "resigned.html"])
        .code(1);
    let html = std::fs::read_to_string(p.path("resigned.html")).unwrap();
    assert!(html.contains("data-state=\"not-valid\""), "{html}");
    assert!(html.contains("signature NOT VALID"), "{html}");
}

/// `report` of the bundle `bundle` of project `p` in `format`, as the command writes it
/// (a row at a time from the bundle's line files) and as the library renders the whole
/// view read into memory (`promote::view::load`): the two must be the same bytes.
fn report_streamed_is_whole_view(p: &Project, bundle: &Path, format: &str) {
    use nexusmon::report::Report as _;
    let out = format!("site/r.{format}");
    p.nx(&[
        "report",
        "--bundle",
        bundle.to_str().unwrap(),
        "--format",
        format,
        "--out",
        &out,
    ])
    .code(0);
    let streamed = std::fs::read(p.path(&out)).unwrap();
    let view =
        nexusmon::promote::view::load(bundle, p.root(), &nexusmon::promote::Unattested).unwrap();
    let summary = view.summary.clone().unwrap();
    let governance = view.governance();
    let links = format!("../out/{}/", view.run_id);
    let r = nexusmon::report::RunReport::of_view(&view, &summary, governance.as_ref(), &links);
    let whole = match format {
        "html" => nexusmon::report::html::HtmlPage.render(&r),
        "markdown" => nexusmon::report::markdown::SummaryMarkdown.render(&r),
        _ => nexusmon::report::junit::Junit.render(&r),
    }
    .unwrap();
    assert!(
        streamed == whole.as_bytes(),
        "{format} of {}: the streamed report differs from the whole view's",
        bundle.display()
    );
}

/// Generated plans (profiles whose order differs from their scenario ids' order, random
/// expectations so some scenarios mismatch, the review fixture's flaky, logged and
/// apply-failed scenarios): `report` in every format, written a row at a time from the
/// sealed line files, is byte for byte the report of the whole view in memory.
#[test]
fn report_written_a_row_at_a_time_is_the_whole_views_for_generated_runs() {
    let fixture = review_run();
    for f in ["html", "markdown", "junit"] {
        report_streamed_is_whole_view(&fixture, &fixture.latest(), f);
    }
    for seed in 0..2u64 {
        let mut rng = crate::util::Rng(seed);
        let p = Project::empty();
        let profile = serde_json::json!({
            "landlock": {"abi": 7, "fs": {"handle": "all", "allow": [
                {"path": "/usr", "access": ["read", "exec"]},
                {"path": "/etc/ld.so.cache", "access": ["read"]}]}}
        });
        let ids = ["a", "a-b", "a0", "a.b", "b"];
        let mut chosen: Vec<&str> = ids.iter().copied().filter(|_| rng.chance(70)).collect();
        if chosen.is_empty() {
            chosen.push("a");
        }
        let mut probes = serde_json::Map::new();
        let mut scenarios = serde_json::Map::new();
        for prof in &chosen {
            let mut row = serde_json::Map::new();
            for i in 0..(3 + rng.below(20usize)) {
                let target = if rng.chance(50) {
                    "/etc/hostname"
                } else {
                    "/usr/lib/os-release"
                };
                let id = format!("r{i:02}-{}", target.len());
                probes.insert(
                    id.clone(),
                    serde_json::json!({"operation": "file-read", "target": target}),
                );
                let want = if rng.chance(80) == (target == "/etc/hostname") {
                    "deny"
                } else {
                    "allow"
                };
                row.insert(id, want.into());
            }
            scenarios.insert((*prof).to_string(), row.into());
        }
        let reg = |body: serde_json::Value| {
            let mut doc = serde_json::json!({"schema_version": 1, "registry_id": "gen"});
            doc.as_object_mut()
                .unwrap()
                .extend(body.as_object().unwrap().clone());
            serde_json::to_string(&doc).unwrap()
        };
        let profiles: serde_json::Map<String, serde_json::Value> = chosen
            .iter()
            .map(|k| ((*k).to_string(), profile.clone()))
            .collect();
        std::fs::create_dir_all(p.path("registry/gen")).unwrap();
        std::fs::create_dir_all(p.path("plans/gen")).unwrap();
        std::fs::write(
            p.path("registry/gen/probes.json"),
            reg(serde_json::json!({"probes": probes})),
        )
        .unwrap();
        std::fs::write(
            p.path("registry/gen/profiles.json"),
            reg(serde_json::json!({"profiles": profiles})),
        )
        .unwrap();
        let plan = serde_json::json!({
            "schema_version": 1, "plan_id": "gen", "kind": "experiment", "registry_id": "gen",
            "profiles": chosen, "scenarios": scenarios,
        });
        std::fs::write(p.path("plans/gen/plan.json"), plan.to_string()).unwrap();
        let ran = p.run("gen", &[]);
        assert!(ran.status == 0 || ran.status == 1, "{}", ran.stderr);
        for f in ["html", "markdown", "junit"] {
            report_streamed_is_whole_view(&p, &p.latest(), f);
        }
    }
}

/// Rewrite a bundle's `run_manifest.json` with the same content: compact (still laid out as
/// the runner writes it, keys sorted) or with the plan's matrix keys in reverse order (not
/// laid out so: `diff` then reads the manifest whole). Either way the seal no longer holds.
fn rewrite_manifest(bundle: &Path, to: &Path, reversed: bool) {
    crate::util::copy_dir(bundle, to);
    let path = to.join("run_manifest.json");
    let v = read_json(&path);
    let text = if reversed {
        let m = v["plan"]["scenarios"].as_object().unwrap();
        let mut parts = Vec::new();
        for (p, probes) in m.iter().rev() {
            let inner: Vec<String> = probes
                .as_object()
                .unwrap()
                .iter()
                .rev()
                .map(|(k, x)| format!("{}:{x}", serde_json::Value::from(k.as_str())))
                .collect();
            parts.push(format!(
                "{}:{{{}}}",
                serde_json::Value::from(p.as_str()),
                inner.join(",")
            ));
        }
        let mut v = v.clone();
        v["plan"]["scenarios"] = serde_json::json!("@M@");
        serde_json::to_string(&v)
            .unwrap()
            .replace("\"@M@\"", &format!("{{{}}}", parts.join(",")))
    } else {
        serde_json::to_string(&v).unwrap()
    };
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
    // Sealed members are read-only: replace the file.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, text).unwrap();
}

/// `diff` reads the manifests without their matrices and selections (compared from sorted
/// runs on disk) when they are laid out as the runner writes them, and whole otherwise: for
/// generated plan changes the two give the same document.
#[test]
#[allow(clippy::many_single_char_names)]
fn diff_with_matrices_compared_on_disk_is_the_diff_of_the_whole_manifests() {
    let p = Project::shipped();
    p.run("quickstart", &[]).code(0);
    let a = latest_bundle(p.root());
    let plan_path = p.path("plans/quickstart/plan.json");
    let original = read_json(&plan_path);
    for seed in 0..2u64 {
        let mut rng = crate::util::Rng(seed);
        let mut plan = original.clone();
        let m = plan["scenarios"].as_object_mut().unwrap();
        for probes in m.values_mut() {
            let probes = probes.as_object_mut().unwrap();
            let keys: Vec<String> = probes.keys().cloned().collect();
            for k in &keys[1..] {
                match rng.below(3) {
                    0 => {
                        probes.remove(k);
                    }
                    1 => {
                        let flip = if probes[k] == "allow" {
                            "deny"
                        } else {
                            "allow"
                        };
                        probes[k] = flip.into();
                    }
                    _ => {}
                }
            }
        }
        if rng.chance(50) {
            plan["description"] = format!("changed {seed}").into();
        }
        std::fs::write(&plan_path, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
        let r = p.run("quickstart", &[]);
        assert!(r.status == 0 || r.status == 1, "{}", r.stderr);
        let b = latest_bundle(p.root());
        let dir = p.path(&format!("cmp{seed}"));
        let mut docs = Vec::new();
        for reversed in [false, true] {
            let (x, y) = (
                dir.join(format!("a{reversed}")),
                dir.join(format!("b{reversed}")),
            );
            rewrite_manifest(&a, &x, reversed);
            rewrite_manifest(&b, &y, reversed);
            let j = p.nx(&["--json", "diff", x.to_str().unwrap(), y.to_str().unwrap()]);
            let text = j
                .stdout
                .replace(x.to_str().unwrap(), "A")
                .replace(y.to_str().unwrap(), "B");
            docs.push((j.status, text));
        }
        assert_eq!(docs[0], docs[1], "seed {seed}");
        let v: serde_json::Value = serde_json::from_str(&docs[0].1).unwrap();
        assert!(
            v["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["kind"] == "plan-changed"),
            "seed {seed}: {v:#}"
        );
        // The sealed bundles themselves (read lean) give the same plan fields.
        let j = p.nx(&["--json", "diff", a.to_str().unwrap(), b.to_str().unwrap()]);
        let w: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
        let plan_of = |v: &serde_json::Value| {
            v["changes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["kind"] == "plan-changed")
                .map(|c| c["fields"].clone())
        };
        assert_eq!(plan_of(&w), plan_of(&v), "seed {seed}");
    }
}
