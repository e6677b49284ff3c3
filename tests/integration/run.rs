//! `run` with real kernel enforcement on this machine (no mocks): Landlock filesystem, exec
//! and TCP rules, symlinks judged on their canonical path, unhandled rights, apply failures
//! of `hard` profiles, best-effort downgrades, exit codes, determinism and the NDJSON
//! stream. Fixture plans and a registry live in `tests/fixtures/run/`.

#![allow(clippy::many_single_char_names)] // t(est), r(esult), b(undle), s(cenario), v(erdict)

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::results;
use crate::util::{Ran, Test, repo_root, snapshot_settings};

/// A fixture plan.
pub fn plan(name: &str) -> String {
    repo_root()
        .join("tests/fixtures/run/plans")
        .join(name)
        .join("plan.json")
        .to_string_lossy()
        .into_owned()
}

/// Run `nexusmon run --plan <fixture> --out <tmp>/out --channel clean <extra…>`.
pub fn run_plan(t: Test, name: &str, extra: &[&str]) -> (Test, Ran) {
    let out = t.path().join("out").to_string_lossy().into_owned();
    let t = t
        .args([
            "run",
            "--plan",
            &plan(name),
            "--out",
            &out,
            "--channel",
            "clean",
        ])
        .args(extra);
    let r = t.run();
    (t, r)
}

/// The sealed bundle `LATEST` points to.
pub fn bundle(t: &Test) -> PathBuf {
    let out = t.path().join("out");
    let latest: Value =
        serde_json::from_slice(&std::fs::read(out.join("LATEST")).expect("LATEST")).unwrap();
    out.join(latest["run_id"].as_str().unwrap())
}

/// A JSON file of the bundle.
pub fn read(b: &Path, rel: &str) -> Value {
    let bytes = std::fs::read(b.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The observation of `scenario` in `runtime_results.json` / `baseline_results.json`.
pub fn obs(b: &Path, file: &str, scenario: &str) -> Value {
    results(b, file)
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["scenario_id"] == scenario)
        .unwrap_or_else(|| panic!("no observation of {scenario} in {file}"))
        .clone()
}

/// The oracle verdict of `scenario`.
pub fn verdict(b: &Path, scenario: &str) -> Value {
    results(b, "oracle_results.jsonl")
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["scenario_id"] == scenario)
        .unwrap_or_else(|| panic!("no verdict of {scenario}"))
        .clone()
}

/// The normalized row of `scenario`.
pub fn row(b: &Path, scenario: &str) -> Value {
    results(b, "runtime_events.normalized.jsonl")
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["scenario_id"] == scenario)
        .unwrap_or_else(|| panic!("no row of {scenario}"))
        .clone()
}

#[test]
fn a_profile_without_etc_denies_reading_etc_hostname_and_the_oracle_cites_the_missing_rule() {
    let (t, r) = run_plan(Test::new(), "enforce", &["--only-profile", "no-etc"]);
    r.code(0);
    let b = bundle(&t);
    let s = obs(&b, "runtime_results.jsonl", "no-etc:read-hostname");
    assert_eq!(s["outcome"], "deny", "{s:#}");
    assert_eq!(s["stage"], "operation");
    assert_eq!(s["errno_name"], "EACCES");
    assert_eq!(s["enforcement"]["ruleset"], "fully-enforced");
    assert_eq!(s["enforcement"]["reported_by"], "helper");
    assert_eq!(s["witness"]["resolved_path"], "/etc/hostname");
    let base = obs(&b, "baseline_results.jsonl", "no-etc:read-hostname");
    assert_eq!(base["outcome"], "allow", "{base:#}");
    assert_eq!(
        row(&b, "no-etc:read-hostname")["attribution"],
        "profile-shaped"
    );
    let v = verdict(&b, "no-etc:read-hostname");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["rule"]["kind"], "absent");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("no rule grants `read-file` on `/etc/hostname`"),
        "{v:#}"
    );
    // Allowed beneath a rule, with the rule cited.
    let v = verdict(&b, "no-etc:read-os-release");
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["rule"]["index"], 0);
    assert_eq!(v["rule"]["path"], "/usr");
    assert_eq!(
        obs(&b, "runtime_results.jsonl", "no-etc:read-os-release")["outcome"],
        "allow"
    );
    // An exec probe declaring file-read: the program runs, `cat` exits 1 (a deny code).
    let cat = obs(&b, "runtime_results.jsonl", "no-etc:cat-hostname");
    assert_eq!(cat["outcome"], "deny", "{cat:#}");
    assert_eq!(cat["exit_code"], 1);
    assert_eq!(
        obs(&b, "baseline_results.jsonl", "no-etc:cat-hostname")["outcome"],
        "allow"
    );
    assert!(
        std::fs::read_to_string(b.join("logs/scenario/no-etc:cat-hostname.stderr"))
            .unwrap()
            .contains("Permission denied")
    );
    // A control Landlock does not govern.
    assert_eq!(
        verdict(&b, "no-etc:stat-hostname")["decision"],
        "not-enforceable"
    );
    assert_eq!(
        obs(&b, "runtime_results.jsonl", "no-etc:stat-hostname")["outcome"],
        "allow"
    );
    // The human summary names the bundle and the exit reason.
    assert!(r.stderr.contains("no-etc:read-hostname"), "{}", r.stderr);
    assert!(r.stderr.contains("result: ok"), "{}", r.stderr);
}

#[test]
fn expecting_allow_where_the_kernel_denies_exits_1_with_a_mismatch_packet() {
    let (t, r) = run_plan(Test::new(), "expect-allow", &[]);
    r.code(1);
    assert!(
        r.stderr
            .contains("no-etc:read-hostname expected-allow-observed-deny"),
        "{}",
        r.stderr
    );
    let b = bundle(&t);
    let lines = std::fs::read_to_string(b.join("mismatch_packets.jsonl")).unwrap();
    let packets: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(packets.len(), 1, "{lines}");
    let p = &packets[0];
    assert_eq!(p["kind"], "expected-allow-observed-deny");
    assert_eq!(p["observed"], "deny");
    assert_eq!(p["errno_name"], "EACCES");
    assert_eq!(p["baseline"], "allow");
    assert_eq!(p["oracle"], "deny");
    let summary = read(&b, "mismatch_summary.json");
    assert_eq!(summary["total"], 1);
    assert_eq!(summary["by_kind"]["expected-allow-observed-deny"], 1);
    assert_eq!(summary["by_kind"]["oracle-divergence"], 0);
    let s = read(&b, "summary.json");
    assert_eq!(s["status"], "partial");
    assert_eq!(s["exit_code"], 1);
    let md = std::fs::read_to_string(b.join("summary.md")).unwrap();
    assert!(md.contains("expected-allow-observed-deny"), "{md}");
    assert!(
        md.contains(
            "| `no-etc:read-hostname` | allow | allow | deny (EACCES) | deny | profile-shaped |"
        ),
        "{md}"
    );
}

#[test]
fn tcp_connect_to_a_port_outside_the_allow_list_is_denied_while_the_allowed_port_connects() {
    let (t, r) = run_plan(Test::new(), "enforce", &["--only-profile", "tcp-47811"]);
    r.code(0);
    let b = bundle(&t);
    let ok = obs(&b, "runtime_results.jsonl", "tcp-47811:tcp-allowed-port");
    assert_eq!(ok["outcome"], "allow", "{ok:#}");
    assert_eq!(ok["target"], "127.0.0.1:47811");
    assert_eq!(
        ok["detail"], "connected",
        "the listener fixture accepted: {ok:#}"
    );
    let no = obs(&b, "runtime_results.jsonl", "tcp-47811:tcp-other-port");
    assert_eq!(no["outcome"], "deny", "{no:#}");
    assert_eq!(no["errno_name"], "EACCES");
    // Nothing listens on 47812: the baseline is refused, which Landlock let through.
    let base = obs(&b, "baseline_results.jsonl", "tcp-47811:tcp-other-port");
    assert_eq!(base["outcome"], "allow");
    assert_eq!(base["errno_name"], "ECONNREFUSED");
    let v = verdict(&b, "tcp-47811:tcp-other-port");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["rule"]["port"], 47812);
    assert_eq!(
        verdict(&b, "tcp-47811:tcp-allowed-port")["rule"]["port"],
        47811
    );
}

#[test]
fn a_target_reached_through_a_symlink_is_judged_on_its_canonical_path_and_witnessed() {
    let (t, r) = run_plan(
        Test::new(),
        "enforce",
        &["--only-scenario", "no-etc:read-via-symlink"],
    );
    r.code(0);
    let b = bundle(&t);
    let s = obs(&b, "runtime_results.jsonl", "no-etc:read-via-symlink");
    assert_eq!(s["outcome"], "deny", "{s:#}");
    assert_eq!(s["resolved_path"], "/etc/hostname");
    assert!(s["target"].as_str().unwrap().ends_with("/link"));
    let w = results(&b, "path_witnesses.jsonl").clone();
    let target = w
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["role"] == "target")
        .unwrap()
        .clone();
    assert_eq!(target["canonical"], "/etc/hostname", "{w:#}");
    assert_eq!(target["is_symlink"], true);
    assert_eq!(target["exists"], true);
    assert!(target["requested"].as_str().unwrap().ends_with("/link"));
    let v = verdict(&b, "no-etc:read-via-symlink");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["checks"][0]["on"], "/etc/hostname");
}

#[test]
fn a_right_the_profile_does_not_handle_is_allowed_by_kernel_and_oracle() {
    let (t, r) = run_plan(
        Test::new(),
        "enforce",
        &["--only-profile", "read-only-handled"],
    );
    r.code(0);
    let b = bundle(&t);
    let s = obs(
        &b,
        "runtime_results.jsonl",
        "read-only-handled:write-scratch-file",
    );
    assert_eq!(s["outcome"], "allow", "{s:#}");
    assert_eq!(s["enforcement"]["ruleset"], "fully-enforced");
    let v = verdict(&b, "read-only-handled:write-scratch-file");
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["rule"]["kind"], "unhandled");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("`write-file` is not handled by profile `read-only-handled`"),
        "{v:#}"
    );
    // The handled right is still enforced by the same ruleset.
    assert_eq!(
        obs(
            &b,
            "runtime_results.jsonl",
            "read-only-handled:read-hostname"
        )["outcome"],
        "deny"
    );
}

#[test]
fn an_exec_the_kernel_refuses_is_a_denial_at_stage_exec() {
    let (t, r) = run_plan(
        Test::new(),
        "enforce",
        &["--only-scenario", "no-exec:run-true"],
    );
    r.code(0);
    let b = bundle(&t);
    let s = obs(&b, "runtime_results.jsonl", "no-exec:run-true");
    assert_eq!(s["outcome"], "deny", "{s:#}");
    assert_eq!(s["stage"], "exec");
    assert_eq!(s["errno_name"], "EACCES");
    assert_eq!(s["enforcement"]["reported_by"], "preflight");
    assert_eq!(
        obs(&b, "baseline_results.jsonl", "no-exec:run-true")["outcome"],
        "allow"
    );
    let v = verdict(&b, "no-exec:run-true");
    assert_eq!(v["decision"], "deny");
    // execve opens the program for reading and execution: read-file is granted, execute
    // is what the profile lacks.
    let program: Vec<(&str, &str)> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "program")
        .map(|c| {
            (
                c["right"].as_str().unwrap(),
                c["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        program,
        [("read-file", "allow"), ("execute", "deny")],
        "{v:#}"
    );
}

#[test]
fn a_hard_profile_needing_udp_rules_this_kernel_lacks_is_an_apply_failure_exit_5() {
    let (t, r) = run_plan(Test::new(), "udp", &[]);
    r.code(5);
    assert!(r.stderr.contains("udp-ports-hard"), "{}", r.stderr);
    let b = bundle(&t);
    let s = obs(&b, "runtime_results.jsonl", "udp-ports-hard:udp-send");
    assert_eq!(s["outcome"], "apply-failed", "{s:#}");
    assert_eq!(s["stage"], "apply");
    assert!(
        s["detail"].as_str().unwrap().contains("udp_connect"),
        "{s:#}"
    );
    // The other profile's lanes ran: UDP denied through the seccomp fallback (EPERM).
    let seccomp = obs(&b, "runtime_results.jsonl", "udp-deny:udp-send");
    assert_eq!(seccomp["outcome"], "deny", "{seccomp:#}");
    assert_eq!(seccomp["errno_name"], "EPERM");
    assert_eq!(seccomp["enforcement"]["seccomp"], true);
    let pre = read(&b, "apply_preflight.json");
    let rec = pre["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == "udp-ports-hard")
        .unwrap()
        .clone();
    assert_eq!(rec["apply_ok"], false, "{rec:#}");
    assert_eq!(rec["compat"], "hard");
    assert_eq!(rec["abi_kernel"], 7);
    let items: Vec<&str> = rec["unenforceable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["item"].as_str().unwrap())
        .collect();
    assert!(items.contains(&"landlock.net.udp_connect"), "{items:?}");
    assert!(
        items.contains(&"landlock.abi"),
        "the profile pins ABI 10: {items:?}"
    );
    let md = std::fs::read_to_string(b.join("summary.md")).unwrap();
    assert!(md.contains("apply-failed"), "{md}");
    let s = read(&b, "summary.json");
    assert_eq!(s["exit_code"], 5);
    assert_eq!(s["apply_failed_profiles"][0], "udp-ports-hard");
    // Sealed as complete: an apply failure is evidence, not a runner failure.
    assert_eq!(read(&b, "run_status.json")["status"], "complete");
}

#[test]
fn a_best_effort_downgrade_is_recorded_never_silent() {
    let (t, r) = run_plan(Test::new(), "best-effort", &[]);
    r.code(0);
    let b = bundle(&t);
    let pre = read(&b, "apply_preflight.json");
    let rec = &pre["profiles"][0];
    assert_eq!(rec["compat"], "best-effort");
    assert_eq!(rec["apply_ok"], true);
    assert_eq!(rec["ruleset_status"], "partially-enforced", "{rec:#}");
    let dropped: Vec<&str> = rec["dropped_rights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["item"].as_str().unwrap())
        .collect();
    assert!(dropped.contains(&"landlock.net.udp_connect"), "{dropped:?}");
    let s = read(&b, "summary.json");
    assert_eq!(s["partially_enforced_profiles"][0], "udp-ports-best-effort");
    // What was kept is enforced; what was dropped is predicted as unhandled.
    assert_eq!(
        obs(
            &b,
            "runtime_results.jsonl",
            "udp-ports-best-effort:tcp-other-port"
        )["outcome"],
        "deny"
    );
    let v = verdict(&b, "udp-ports-best-effort:udp-send");
    assert_eq!(v["decision"], "allow");
    assert!(
        v["notes"][0].as_str().unwrap().contains("best-effort"),
        "{v:#}"
    );
}

#[test]
fn a_required_preflight_profile_that_cannot_apply_stops_the_run_before_any_lane() {
    let (t, r) = run_plan(Test::new(), "preflight-required", &[]);
    r.code(5);
    let b = bundle(&t);
    let st = read(&b, "run_status.json");
    assert_eq!(st["status"], "failed");
    assert_eq!(st["failure_stage"], "preflight");
    assert!(b.join("apply_preflight.json").is_file());
    assert!(!b.join("runtime_results.jsonl").exists());
    let index = read(&b, "artifact_index.json");
    let missing: Vec<&str> = index["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(missing.contains(&"runtime_results.jsonl"), "{missing:?}");
}

#[test]
fn nothing_selected_exits_6_and_writes_nothing() {
    let (t, r) = run_plan(Test::new(), "empty", &[]);
    r.code(6);
    assert!(r.stderr.contains("nothing selected"), "{}", r.stderr);
    assert!(!t.path().join("out").exists());
}

#[test]
fn an_unknown_filter_is_a_usage_error_with_a_suggestion() {
    let (t, r) = run_plan(Test::new(), "enforce", &["--only-profile", "no-ect"]);
    r.code(2);
    assert!(r.stderr.contains("did you mean `no-etc`?"), "{}", r.stderr);
    assert!(!t.path().join("out").exists());
}

#[test]
fn dry_runs_predict_without_executing_or_writing() {
    let (t, r) = run_plan(
        Test::new(),
        "enforce",
        &["--dry", "--only-profile", "no-etc"],
    );
    r.code(0);
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("no-etc:read-hostname "))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        line.contains(" deny ") && line.contains("no rule grants `read-file`"),
        "{line}"
    );
    assert!(r.stderr.contains("nothing executed"), "{}", r.stderr);
    assert!(!t.path().join("out").exists());
}

#[test]
fn a_scenario_that_passes_only_on_retry_is_flaky_and_fails_the_run() {
    let (t, r) = run_plan(Test::new(), "flaky", &[]);
    r.code(1);
    assert!(r.stderr.contains("flaky"), "{}", r.stderr);
    let b = bundle(&t);
    let s = obs(&b, "runtime_results.jsonl", "plain:flaky-once");
    assert_eq!(s["flaky"], true, "{s:#}");
    assert_eq!(s["outcome"], "allow");
    let attempts = s["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["outcome"], "error");
    assert_eq!(attempts[0]["exit_code"], 1);
    assert_eq!(attempts[1]["outcome"], "allow");
    let sum = read(&b, "summary.json");
    assert_eq!(sum["flaky"][0], "plain:flaky-once");
    assert!(sum["exit_reason"].as_str().unwrap().contains("flaky"));
}

#[test]
fn the_clean_channel_scrubs_the_environment_and_direct_inherits_it() {
    let mk = |channel: &str| {
        let t = Test::new().env("NEXUSMON_TEST_MARK", "present");
        let out = t.path().join("out").to_string_lossy().into_owned();
        let t = t.args([
            "run",
            "--plan",
            &plan("channels"),
            "--out",
            &out,
            "--channel",
            channel,
        ]);
        let r = t.run();
        (t, r)
    };
    let (t, r) = mk("clean");
    r.code(1);
    let b = bundle(&t);
    let s = obs(&b, "runtime_results.jsonl", "plain:env-mark");
    assert_eq!(s["outcome"], "deny", "{s:#}");
    assert_eq!(read(&b, "run_manifest.json")["channel"], "clean");
    let (t, r) = mk("direct");
    r.code(0);
    let b = bundle(&t);
    assert_eq!(
        obs(&b, "runtime_results.jsonl", "plain:env-mark")["outcome"],
        "allow"
    );
}

#[test]
fn every_bundle_file_is_present_indexed_and_checkable_with_b3sum() {
    let (t, r) = run_plan(Test::new(), "enforce", &["--only-profile", "no-etc"]);
    r.code(0);
    let b = bundle(&t);
    for f in [
        "run_status.json",
        "run_manifest.json",
        "apply_preflight.json",
        "expected_matrix.json",
        "runtime_results.jsonl",
        "baseline_results.jsonl",
        "oracle_results.jsonl",
        "runtime_events.normalized.jsonl",
        "path_witnesses.jsonl",
        "mismatch_summary.json",
        "mismatch_packets.jsonl",
        "summary.json",
        "summary.md",
        "BLAKE3SUMS",
        "artifact_index.json",
    ] {
        assert!(b.join(f).is_file(), "{f} missing");
    }
    let index = read(&b, "artifact_index.json");
    assert_eq!(index["missing"].as_array().unwrap().len(), 0);
    assert_eq!(index["status"], "complete");
    let manifest = read(&b, "run_manifest.json");
    assert_eq!(manifest["landlock_abi"], 7);
    assert_eq!(manifest["lanes"]["baseline_no_new_privs"], true);
    assert!(manifest["profiles"]["no-etc"]["landlock"]["rules"].is_array());
    assert!(manifest["host"]["kernel_release"].is_string());
    let scratch = manifest["scratch"].as_str().unwrap();
    assert!(
        !Path::new(scratch).exists(),
        "the scratch dir is removed after the run"
    );
    let out = std::process::Command::new("b3sum")
        .args(["--check", "BLAKE3SUMS"])
        .current_dir(&b)
        .output()
        .expect("b3sum is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Remove what legitimately differs between two runs of the same plan: times, resource
/// use, the out root's path.
fn normalize(v: &mut Value, out: &str) {
    match v {
        Value::Object(m) => {
            for k in [
                "wall_us",
                "user_us",
                "sys_us",
                "max_rss_kib",
                "runner_max_rss_kib",
                "started_at",
                "finished_at",
                "command_line",
                "RUNNER_PID",
            ] {
                m.remove(k);
            }
            for (_, x) in m.iter_mut() {
                normalize(x, out);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| normalize(x, out)),
        Value::String(s) if s.contains(out) => *s = s.replace(out, "<out>"),
        _ => {}
    }
}

#[test]
fn two_runs_of_the_same_plan_write_byte_identical_result_files() {
    let run_id = format!(
        "det-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut bundles = Vec::new();
    for n in 0..2 {
        let (t, r) = run_plan(
            Test::new().env("NEXUSMON_RUN_ID", &run_id),
            "enforce",
            &[
                "--only-profile",
                "no-etc",
                "--jobs",
                if n == 0 { "1" } else { "4" },
            ],
        );
        r.code(0);
        let b = bundle(&t);
        bundles.push((t, b));
    }
    for f in [
        "expected_matrix.json",
        "apply_preflight.json",
        "runtime_results.jsonl",
        "baseline_results.jsonl",
        "oracle_results.jsonl",
        "runtime_events.normalized.jsonl",
        "path_witnesses.jsonl",
        "shared_values.json",
        "mismatch_summary.json",
        "summary.json",
        "run_manifest.json",
    ] {
        let mut texts = Vec::new();
        for (t, b) in &bundles {
            let raw = std::fs::read_to_string(b.join(f)).unwrap();
            let out = t.path().join("out").to_string_lossy().into_owned();
            if std::path::Path::new(f)
                .extension()
                .is_some_and(|e| e == "jsonl")
            {
                // One key-sorted compact line per item: re-serializing must not change one.
                let mut lines = Vec::new();
                for line in raw.lines() {
                    let mut v: Value = serde_json::from_str(line).unwrap();
                    assert_eq!(serde_json::to_string(&v).unwrap(), line, "{f}");
                    normalize(&mut v, &out);
                    lines.push(serde_json::to_string(&v).unwrap());
                }
                texts.push(lines.join("\n"));
                continue;
            }
            // Files are written key-sorted and pretty: re-serializing must not change them.
            let mut v: Value = serde_json::from_str(&raw).unwrap();
            normalize(&mut v, &out);
            texts.push(serde_json::to_string_pretty(&v).unwrap());
        }
        if f == "run_manifest.json" {
            // The manifest records the job count, which differs on purpose here.
            let strip = |s: &str| {
                s.lines()
                    .filter(|l| !l.trim_start().starts_with("\"jobs\""))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(strip(&texts[0]), strip(&texts[1]), "{f} differs");
        } else {
            assert_eq!(texts[0], texts[1], "{f} differs between runs");
        }
    }
    // Scenario order in every file is by scenario id, whatever the completion order.
    let rows = results(&bundles[1].1, "runtime_events.normalized.jsonl").clone();
    let ids: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scenario_id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
}

#[test]
fn json_streams_versioned_ndjson_events_and_keeps_the_human_view_on_stderr() {
    let (t, r) = run_plan(
        Test::new(),
        "enforce",
        &["--json", "--only-profile", "no-exec"],
    );
    r.code(0);
    let events: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(events.len() >= 3);
    for e in &events {
        assert_eq!(e["v"], 1, "{e}");
        assert!(
            ["run-start", "preflight", "observation", "run-end"]
                .contains(&e["type"].as_str().unwrap()),
            "{e}"
        );
    }
    assert_eq!(events[0]["type"], "run-start");
    assert_eq!(events[0]["scenarios"], 2);
    assert_eq!(events[0]["channel"], "clean");
    let end = events.last().unwrap();
    assert_eq!(end["type"], "run-end");
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["status"], "ok");
    assert_eq!(
        end["bundle"].as_str().unwrap(),
        bundle(&t).to_string_lossy()
    );
    let observations: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "observation")
        .collect();
    // 2 scenarios × (baseline, scenario, oracle).
    assert_eq!(observations.len(), 6);
    for o in &observations {
        for k in ["scenario_id", "lane", "outcome", "expected", "attempts"] {
            assert!(!o[k].is_null(), "{k} missing in {o}");
        }
    }
    assert_eq!(
        events.iter().filter(|e| e["type"] == "preflight").count(),
        1
    );
    assert!(r.stderr.contains("result: ok"), "{}", r.stderr);
}

#[test]
fn the_human_summary_shows_the_table_the_mismatch_the_oracle_and_the_bundle() {
    let (t, r) = run_plan(Test::new(), "expect-allow", &[]);
    r.code(1);
    snapshot_settings(&[(t.path(), "[TMP]")]).bind(|| insta::assert_snapshot!(r.stderr));
}

#[test]
fn a_plan_that_does_not_lint_is_refused_with_exit_2_before_anything_runs() {
    let t = Test::new();
    let out = t.path().join("out").to_string_lossy().into_owned();
    let plan = repo_root()
        .join("tests/fixtures/run/lint-bad/plans/bad/plan.json")
        .to_string_lossy()
        .into_owned();
    let r = t.args(["run", "--plan", &plan, "--out", &out]).run();
    r.code(2);
    assert!(r.stderr.contains("does not lint"), "{}", r.stderr);
    assert!(r.stderr.contains("NX301"), "{}", r.stderr);
    assert!(!Path::new(&out).exists());
}

#[test]
fn filters_whose_intersection_is_empty_select_nothing_exit_6() {
    let (t, r) = run_plan(
        Test::new(),
        "enforce",
        &[
            "--only-profile",
            "no-exec",
            "--only-scenario",
            "no-etc:read-hostname",
        ],
    );
    r.code(6);
    assert!(
        r.stderr.contains("the filters select no scenario"),
        "{}",
        r.stderr
    );
    assert!(!t.path().join("out").exists());
}

#[test]
fn an_ungoverned_run_says_so_and_a_mission_needs_the_state_directory() {
    let (t, r) = run_plan(
        Test::new(),
        "enforce",
        &["--only-scenario", "no-etc:read-os-release"],
    );
    r.code(0);
    let m = read(&bundle(&t), "run_manifest.json");
    assert!(
        m["governance"][0]
            .as_str()
            .unwrap()
            .starts_with("ungoverned"),
        "{m:#}"
    );
    let (t, r) = run_plan(Test::new(), "mission", &[]);
    r.code(2);
    assert!(r.stderr.contains("nexusmon init"), "{}", r.stderr);
    assert!(!t.path().join("out").exists());
}

#[test]
fn a_governed_run_records_start_and_seal_in_the_audit_log_and_anchors_its_head() {
    let t = Test::new();
    let state = t.path().join("state").to_string_lossy().into_owned();
    Test::new()
        .args(["init", &state])
        .cwd(t.path())
        .run()
        .code(0);
    let state_dir = t
        .path()
        .join("state/.nexusmon")
        .to_string_lossy()
        .into_owned();
    let (t, r) = run_plan(
        t,
        "enforce",
        &[
            "--state-dir",
            &state_dir,
            "--only-scenario",
            "no-etc:read-hostname",
        ],
    );
    r.code(0);
    let b = bundle(&t);
    assert!(b.join("governance/gate.json").is_file());
    let audit = std::fs::read_to_string(t.path().join("state/.nexusmon/audit.jsonl")).unwrap();
    let kinds: Vec<String> = audit
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["genesis", "run-started", "run-sealed"], "{audit}");
    let index = read(&b, "artifact_index.json");
    assert_eq!(
        index["audit_head"]["seq"], 1,
        "the seal anchors the head after run-started"
    );
    let verify = Test::new()
        .args(["--state-dir", &state_dir, "audit", "verify", "--anchors"])
        .arg(t.path().join("out").to_string_lossy())
        .run();
    verify.code(0);
}
