//! `plan-lint` and `registry-lint`: the bad corpus (`tests/fixtures/lint/<case>/`, one
//! snapshot of diagnostics per case), the shipped data, the four output formats and the
//! exit codes.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{Project, Ran, Test, python, repo_root, snapshot_settings};

/// One case of the bad corpus.
struct Case {
    name: String,
    dir: PathBuf,
    /// Codes `case.md` says must be reported.
    expect: Vec<String>,
    /// The exit code `case.md` says lint ends with (`exit:` line; default 1, errors).
    exit: i32,
    /// The command line (relative to the repository root).
    args: Vec<String>,
}

fn corpus_dir() -> PathBuf {
    repo_root().join("tests/fixtures/lint")
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.md").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let md = std::fs::read_to_string(dir.join("case.md")).unwrap();
        let expect: Vec<String> = md
            .lines()
            .find_map(|l| l.strip_prefix("expect:"))
            .unwrap_or_else(|| panic!("{name}/case.md has no `expect:` line"))
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let exit = md
            .lines()
            .find_map(|l| l.strip_prefix("exit:"))
            .map_or(1, |e| e.trim().parse().unwrap());
        let rel = format!("tests/fixtures/lint/{name}");
        let args = if dir.join("plans").is_dir() {
            vec!["plan-lint".to_string(), format!("{rel}/plans")]
        } else {
            vec!["registry-lint".to_string(), format!("{rel}/registry")]
        };
        out.push(Case {
            name,
            dir,
            expect,
            exit,
            args,
        });
    }
    out
}

/// Run the binary in the repository root, on fixture paths (`tests/fixtures/lint/...`) only.
fn run_in_repo<I, S>(args: I) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    Test::new().cwd(repo_root()).args(args).run()
}

/// Run the binary in a temp copy of the shipped examples (never the checkout's `plans/`
/// and `registry/`, which may hold a user's own files).
fn run_in_shipped<I, S>(args: I) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let p = Project::shipped();
    Test::new().cwd(p.root()).args(args).run()
}

fn json(r: &Ran) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{}", r.stdout))
}

#[test]
fn corpus_covers_every_check_family() {
    let cases = cases();
    assert!(cases.len() >= 15, "only {} cases", cases.len());
    let codes: std::collections::BTreeSet<String> =
        cases.iter().flat_map(|c| c.expect.clone()).collect();
    for family in ["NX0", "NX1", "NX2", "NX3", "NX4"] {
        assert!(
            codes.iter().any(|c| c.starts_with(family)),
            "no case for {family}xx"
        );
    }
}

/// Every bad file exits 1 (a case of warnings only says `exit: 0`), every finding names an
/// existing file with a line and a column, and the codes the case documents are reported.
#[test]
fn every_bad_case_exits_1_and_names_file_line_and_codes() {
    for case in cases() {
        let mut args = case.args.clone();
        args.extend(["--format".to_string(), "json".to_string()]);
        let r = run_in_repo(&args);
        assert_eq!(
            r.status, case.exit,
            "{}: exit {}\n{}{}",
            case.name, r.status, r.stdout, r.stderr
        );
        let v = json(&r);
        let findings = v["findings"].as_array().unwrap();
        assert_eq!(
            v["errors"].as_u64().unwrap() >= 1,
            case.exit == 1,
            "{}: errors and exit code disagree",
            case.name
        );
        for f in findings {
            let file = repo_root().join(f["file"].as_str().unwrap());
            assert!(
                file.is_file(),
                "{}: finding names {}",
                case.name,
                file.display()
            );
            assert!(
                file.starts_with(&case.dir) || file.starts_with(corpus_dir().join("registry")),
                "{}: finding outside the case: {}",
                case.name,
                file.display()
            );
            assert!(f["line"].as_u64().unwrap() >= 1);
            assert!(f["column"].as_u64().unwrap() >= 1);
            assert!(!f["message"].as_str().unwrap().is_empty());
        }
        let found: Vec<&str> = findings
            .iter()
            .map(|f| f["code"].as_str().unwrap())
            .collect();
        for want in &case.expect {
            assert!(
                found.contains(&want.as_str()),
                "{}: expected {want}, found {found:?}",
                case.name
            );
        }
    }
}

/// One snapshot of the human diagnostics per case (all cases are checked; every mismatch is
/// listed at the end).
#[test]
fn corpus_snapshots() {
    let root = repo_root().to_string_lossy().into_owned();
    let mut failed = Vec::new();
    for case in cases() {
        let r = run_in_repo(&case.args);
        let shown = format!(
            "$ nexusmon {}\nexit: {}\n{}",
            case.args.join(" "),
            r.status,
            r.stdout
        );
        let result = std::panic::catch_unwind(|| {
            let mut settings = snapshot_settings(&[(Path::new(&root), "[REPO]")]);
            settings.set_snapshot_suffix(case.name.clone());
            settings.set_prepend_module_to_snapshot(false);
            settings.bind(|| insta::assert_snapshot!("corpus", shown));
        });
        if result.is_err() {
            failed.push(case.name.clone());
        }
    }
    assert!(failed.is_empty(), "snapshots differ for: {failed:?}");
}

#[test]
fn json_syntax_error_gives_line_and_column() {
    let r = run_in_repo(["plan-lint", "tests/fixtures/lint/json-syntax/plans"]);
    r.code(1);
    assert!(
        r.stdout
            .contains("error[NX001]: JSON syntax error: expected `,` or `}`, found `\"`"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("--> tests/fixtures/lint/json-syntax/plans/json-syntax/plan.json:5:3"),
        "{}",
        r.stdout
    );
}

#[test]
fn unknown_key_is_named_with_a_suggestion() {
    let r = run_in_repo([
        "plan-lint",
        "tests/fixtures/lint/unknown-key/plans",
        "--format",
        "json",
    ]);
    r.code(1);
    let v = json(&r);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["pointer"] == "/senarios")
        .expect("finding for /senarios");
    assert_eq!(f["code"], "NX002");
    assert_eq!(f["message"], "unknown key `senarios`");
    assert_eq!(f["hint"], "did you mean `scenarios`?");
    assert_eq!(
        (f["line"].as_u64(), f["column"].as_u64()),
        (Some(7), Some(3))
    );
}

#[test]
fn dangling_references_name_the_missing_id() {
    let r = run_in_repo(["plan-lint", "tests/fixtures/lint/dangling-probe/plans"]);
    r.code(1);
    assert!(
        r.stdout.contains(
            "probe `read-hostnme` is not defined in tests/fixtures/lint/registry/mini/probes.json"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("did you mean `read-hostname`?"),
        "{}",
        r.stdout
    );
    let r = run_in_repo(["plan-lint", "tests/fixtures/lint/dangling-registry/plans"]);
    r.code(1);
    assert!(
        r.stdout.contains("registry `minii` not found"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("did you mean `mini`?"), "{}", r.stdout);
}

#[test]
fn shipped_plans_and_registry_lint_clean() {
    let r = run_in_shipped(["plan-lint", "plans/"]);
    r.code(0);
    assert!(
        r.stdout.contains("checked 12 files: no problems found"),
        "{}",
        r.stdout
    );
    let r = run_in_shipped(["registry-lint"]);
    r.code(0);
    assert!(
        r.stdout.contains("checked 7 files: no problems found"),
        "{}",
        r.stdout
    );
    // Not even notes: every shipped timeout is explicit.
    let r = run_in_shipped(["--json", "plan-lint", "plans"]);
    r.code(0);
    assert_eq!(json(&r)["findings"], Value::Array(vec![]));
}

#[test]
fn a_path_that_does_not_exist_is_a_usage_error() {
    let r = run_in_repo(["plan-lint", "no/such/dir"]);
    r.code(2);
    assert!(
        r.stderr.contains("`no/such/dir` does not exist"),
        "{}",
        r.stderr
    );
    let r = run_in_repo(["registry-lint", "no/such/registry"]);
    r.code(2);
}

#[test]
fn a_directory_without_plans_selects_nothing() {
    let t = Test::new().write("empty/readme.txt", "no plans here");
    let r = t.args(["plan-lint", "empty"]).run();
    r.code(6);
    assert!(r.stderr.contains("no plan files"), "{}", r.stderr);
}

const MINI_PROBES: &str = r#"{
  "schema_version": 1,
  "registry_id": "mini",
  "probes": {
    "read-hostname": {"operation": "file-read", "target": "/etc/hostname", "timeout_ms": 1000}
  }
}
"#;
const MINI_PROFILES: &str = r#"{
  "schema_version": 1,
  "registry_id": "mini",
  "profiles": {"fs": {"landlock": {"abi": 1, "fs": {"handle": "all", "allow": [{"path": "/usr", "access": ["read"]}]}}}}
}
"#;

fn plan(id: &str) -> String {
    format!(
        r#"{{"schema_version": 1, "plan_id": "{id}", "kind": "experiment", "registry_id": "mini",
 "profiles": ["fs"], "scenarios": {{"fs": {{"read-hostname": "deny"}}}}}}
"#
    )
}

fn mini_project() -> Test {
    Test::new()
        .write("registry/mini/probes.json", MINI_PROBES)
        .write("registry/mini/profiles.json", MINI_PROFILES)
}

#[test]
fn warnings_alone_exit_0() {
    let t = mini_project().write("plans/a/plan.json", &plan("not-a"));
    let r = t.args(["plan-lint", "plans", "--format", "json"]).run();
    r.code(0);
    let v = json(&r);
    assert_eq!(v["errors"], 0);
    assert_eq!(v["warnings"], 1);
    assert_eq!(v["findings"][0]["code"], "NX106");
}

#[test]
fn a_broken_registry_is_reported_once_for_many_plans() {
    let t = Test::new()
        .write(
            "registry/mini/probes.json",
            &MINI_PROBES.replace(
                "\"timeout_ms\": 1000",
                "\"timeout_ms\": 1000, \"colour\": 1",
            ),
        )
        .write("registry/mini/profiles.json", MINI_PROFILES)
        .write("plans/a/plan.json", &plan("a"))
        .write("plans/b/plan.json", &plan("b"));
    let r = t.args(["plan-lint", "plans", "--format", "json"]).run();
    r.code(1);
    let v = json(&r);
    let unknown: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "NX002")
        .collect();
    assert_eq!(unknown.len(), 1, "{}", r.stdout);
    assert_eq!(unknown[0]["file"], "registry/mini/probes.json");
    assert_eq!(v["files_checked"], 4);
}

#[test]
fn two_plans_with_one_id_are_reported() {
    let t = mini_project()
        .write("plans/a/plan.json", &plan("a"))
        .write("plans/b/plan.json", &plan("a"));
    let r = t.args(["plan-lint", "plans"]).run();
    r.code(1);
    assert!(
        r.stdout
            .contains("error[NX010]: plan id `a` is also used by plans/a/plan.json"),
        "{}",
        r.stdout
    );
}

#[test]
fn yaml_plans_lint_like_json() {
    let yaml = "schema_version: 1\nplan_id: a\nkind: experiment\nregistry_id: mini\nprofiles: [fs]\nscenarios:\n  fs:\n    read-hostnme: deny\n";
    let t = mini_project().write("plans/a/plan.yaml", yaml);
    let r = t.args(["plan-lint", "plans"]).run();
    r.code(1);
    assert!(r.stdout.contains("plans/a/plan.yaml:8:5"), "{}", r.stdout);
    assert!(
        r.stdout.contains("did you mean `read-hostname`?"),
        "{}",
        r.stdout
    );
}

#[test]
fn the_default_timeout_is_a_note_not_an_error() {
    let probes = MINI_PROBES.replace(", \"timeout_ms\": 1000", "");
    let t = Test::new()
        .write("registry/mini/probes.json", &probes)
        .write("registry/mini/profiles.json", MINI_PROFILES)
        .write("plans/a/plan.json", &plan("a"));
    let r = t.args(["plan-lint", "plans"]).run();
    r.code(0);
    assert!(
        r.stdout.contains("note[NX213]: 1 scenario has no timeout (probe `read-hostname`): the runner default of 10000 ms applies"),
        "{}",
        r.stdout
    );
}

#[test]
fn json_output_is_sorted_stable_and_counts_agree() {
    let args = ["plan-lint", "tests/fixtures/lint", "--format", "json"];
    let a = run_in_repo(args);
    let b = run_in_repo(args);
    a.code(1);
    assert_eq!(a.stdout, b.stdout, "output must not depend on scheduling");
    let v = json(&a);
    assert_eq!(v["schema_version"], 1);
    let findings = v["findings"].as_array().unwrap();
    let count = |sev: &str| findings.iter().filter(|f| f["severity"] == sev).count() as u64;
    assert_eq!(v["errors"].as_u64(), Some(count("error")));
    assert_eq!(v["warnings"].as_u64(), Some(count("warning")));
    assert_eq!(v["notes"].as_u64(), Some(count("note")));
    // Root causes first (a file that cannot be read, an incomplete or missing registry),
    // then the rest; each group by file, line, column, code.
    let root = ["NX001", "NX011", "NX012", "NX014", "NX103", "NX108"];
    let keys: Vec<(bool, String, u64, u64, String)> = findings
        .iter()
        .map(|f| {
            let code = f["code"].as_str().unwrap().to_string();
            (
                !root.contains(&code.as_str()),
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
                f["column"].as_u64().unwrap(),
                code,
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        keys, sorted,
        "findings are sorted: root causes first, then by file, line, column, code"
    );
    // `--json` means `--format json`.
    let c = run_in_repo(["--json", "plan-lint", "tests/fixtures/lint"]);
    assert_eq!(c.stdout, a.stdout);
}

#[test]
fn colour_only_when_asked() {
    let args = ["plan-lint", "tests/fixtures/lint/dangling-probe/plans"];
    let plain = run_in_repo(args);
    assert!(!plain.stdout.contains('\x1b'));
    let t = Test::new().cwd(repo_root());
    let coloured = t.args(["--color", "always", args[0], args[1]]).run();
    assert!(
        coloured.stdout.contains("\x1b[1;31merror[NX101]\x1b[0m"),
        "{}",
        coloured.stdout
    );
}

#[test]
fn quiet_drops_the_summary_line() {
    let r = run_in_repo([
        "-q",
        "plan-lint",
        "tests/fixtures/lint/dangling-probe/plans",
    ]);
    r.code(1);
    assert!(r.stdout.contains("error[NX101]"));
    assert!(!r.stdout.contains("checked "), "{}", r.stdout);
}

// --- SARIF -----------------------------------------------------------------------------

const PY_SARIF: &str = r#"
import json, sys
from jsonschema import Draft7Validator
schema = json.load(open(sys.argv[1]))
Draft7Validator.check_schema(schema)
v = Draft7Validator(schema)
bad = 0
for path in sys.argv[2:]:
    for e in v.iter_errors(json.load(open(path))):
        bad += 1
        print(f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
print(f"validated {len(sys.argv) - 2} logs, {bad} errors")
sys.exit(1 if bad else 0)
"#;

fn validate_sarif(logs: &[&Path]) -> (i32, String) {
    let schema = repo_root().join("tests/fixtures/sarif/sarif-2.1.0.json");
    let out = python(&["jsonschema"], PY_SARIF)
        .arg(schema)
        .args(logs)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn sarif_validates_against_the_published_schema() {
    let t = tempfile::tempdir().unwrap();
    let mut logs = Vec::new();
    for (name, args) in [
        (
            "plans.sarif",
            vec!["plan-lint", "tests/fixtures/lint", "--format", "sarif"],
        ),
        (
            "registries.sarif",
            vec!["registry-lint", "tests/fixtures/lint", "--format", "sarif"],
        ),
        (
            "clean.sarif",
            vec!["plan-lint", "plans", "--format", "sarif"],
        ),
    ] {
        let r = run_in_repo(&args);
        assert!(r.status == 0 || r.status == 1, "{}", r.stderr);
        let p = t.path().join(name);
        std::fs::write(&p, &r.stdout).unwrap();
        logs.push(p);
    }
    let refs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    let (code, text) = validate_sarif(&refs);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("validated 3 logs, 0 errors"), "{text}");
    // The validator really rejects a broken log.
    let broken = t.path().join("broken.sarif");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&logs[0]).unwrap()).unwrap();
    v["runs"][0]["results"][0]["level"] = Value::String("fatal".into());
    std::fs::write(&broken, serde_json::to_vec(&v).unwrap()).unwrap();
    let (code, text) = validate_sarif(&[broken.as_path()]);
    assert_eq!(code, 1, "{text}");
}

#[test]
fn sarif_has_rules_relative_uris_and_stable_fingerprints() {
    let r = run_in_repo(["plan-lint", "tests/fixtures/lint", "--format", "sarif"]);
    r.code(1);
    let v = json(&r);
    assert_eq!(
        v["$schema"],
        "https://json.schemastore.org/sarif-2.1.0.json"
    );
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "nexusmon");
    assert_eq!(driver["semanticVersion"], env!("CARGO_PKG_VERSION"));
    let rules = driver["rules"].as_array().unwrap();
    assert!(rules.len() >= 40);
    for rule in rules {
        for key in ["shortDescription", "fullDescription", "help"] {
            assert!(!rule[key]["text"].as_str().unwrap().is_empty(), "{rule}");
        }
        assert!(
            ["error", "warning", "note"]
                .contains(&rule["defaultConfiguration"]["level"].as_str().unwrap())
        );
    }
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for res in results {
        let idx = usize::try_from(res["ruleIndex"].as_u64().unwrap()).unwrap();
        assert_eq!(rules[idx]["id"], res["ruleId"]);
        let loc = &res["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(uri.starts_with("tests/fixtures/lint/"), "{uri}");
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert_eq!(
            res["partialFingerprints"]["primaryLocationLineHash"]
                .as_str()
                .unwrap()
                .len(),
            32
        );
    }
    // Moving a finding to another line keeps its fingerprint (code + file + pointer).
    let text = "{\n  \"schema_version\": 1, \"plan_id\": \"a\", \"kind\": \"experiment\", \"registry_id\": \"mini\",\n  \"profiles\": [\"fs\"], \"scenarios\": {\"fs\": {\"read-hostnme\": \"deny\"}}\n}\n";
    let fp = |t: &str| {
        let t = mini_project().write("plans/a/plan.json", t);
        let r = t.args(["plan-lint", "plans", "--format", "sarif"]).run();
        let v = json(&r);
        let res = &v["runs"][0]["results"][0];
        (
            res["partialFingerprints"]["primaryLocationLineHash"].clone(),
            res["locations"][0]["physicalLocation"]["region"]["startLine"].clone(),
        )
    };
    let (a, line_a) = fp(text);
    let (b, line_b) = fp(&format!("\n\n{text}"));
    assert_eq!(a, b);
    assert_ne!(line_a, line_b);
}

// --- GitHub annotations ------------------------------------------------------------------

#[test]
fn github_annotations_are_escaped() {
    // A key holding every character that needs escaping, in a directory whose name needs
    // escaping as a property.
    let bad = "{\"schema_version\": 1, \"plan_id\": \"p\", \"kind\": \"experiment\", \"registry_id\": \"mini\",\n \"profiles\": [\"fs\"], \"scenarios\": {\"fs\": {\"read-hostname\": \"deny\"}},\n \"a%b,c:d\\ne\": 1}\n";
    let t = mini_project().write("plans/we,ird:p/plan.json", bad);
    let r = t.args(["plan-lint", "plans", "--format", "github"]).run();
    r.code(1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let line = lines
        .iter()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert_eq!(
        *line,
        "::error file=plans/we%2Cird%3Ap/plan.json,line=3,endLine=3,col=2,endColumn=14,title=NX002 unknown-key::unknown key `a%25b,c:d%0Ae`%0Ahint: allowed keys here: `$schema`, `apply_preflight_profile`, `controls`, `description`, `execution`, `kind`, `lanes`, `mission`, `plan_id`, `profiles`, `registry_id`, `scenarios`, `schema_version`, `variables`"
    );
    // The plan-id/directory warning is an annotation too; every finding is one line.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::warning file=plans/we%2Cird%3Ap/plan.json,"))
    );
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("plan-lint: checked 3 files: 1 error, 1 warning, 0 notes"),
        "{}",
        r.stderr
    );
}

// --- The shipped data --------------------------------------------------------------------

#[test]
fn shipped_registry_covers_every_operation_with_notes() {
    use nexusmon::model::registry::{Operation, ProbesFile, ProfilesFile};
    let probes: ProbesFile = serde_json::from_slice(
        &std::fs::read(repo_root().join("registry/linux-core/probes.json")).unwrap(),
    )
    .unwrap();
    for op in Operation::ALL {
        assert!(
            probes.probes.values().any(|p| p.operation == op),
            "no probe for {op}"
        );
    }
    for (id, p) in &probes.probes {
        assert!(
            p.notes.as_deref().is_some_and(|n| !n.is_empty()),
            "{id} has no notes"
        );
        assert!(!p.tags.is_empty(), "{id} has no tags");
    }
    let profiles: ProfilesFile = serde_json::from_slice(
        &std::fs::read(repo_root().join("registry/linux-core/profiles.json")).unwrap(),
    )
    .unwrap();
    for (id, p) in &profiles.profiles {
        assert!(
            p.description.as_deref().is_some_and(|d| !d.is_empty()),
            "{id}"
        );
    }
    // Filesystem, network, scope, seccomp and limits are all exercised.
    let any = |f: &dyn Fn(&nexusmon::model::Profile) -> bool| profiles.profiles.values().any(f);
    assert!(any(&|p| p
        .landlock
        .as_ref()
        .is_some_and(|l| l.fs.is_some())));
    assert!(any(&|p| p
        .landlock
        .as_ref()
        .is_some_and(|l| l.net.is_some())));
    assert!(any(&|p| p
        .landlock
        .as_ref()
        .is_some_and(|l| !l.scope.is_empty())));
    assert!(any(&|p| p.seccomp.is_some()));
    assert!(any(&|p| p.limits.cpu_seconds.is_some()));
}

#[test]
fn shipped_plans_load_strictly() {
    for name in ["quickstart", "fs-confinement", "net-egress"] {
        let path = repo_root().join(format!("plans/{name}/plan.json"));
        let loaded = nexusmon::load::load_plan(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.plan.plan_id.as_str(), name);
        assert!(loaded.plan.schema.as_deref() == Some("../../schemas/plan.schema.json"));
        assert!(
            loaded.plan.execution.timeout_ms.is_some(),
            "{name}: timeouts explicit"
        );
        if name == "quickstart" {
            // Small: two profiles, four probes each, one control.
            assert_eq!(loaded.plan.profiles.len(), 2);
            assert_eq!(loaded.plan.scenario_specs().len(), 10);
        }
    }
}

#[test]
fn a_registry_file_given_to_plan_lint_is_a_usage_error() {
    let r = run_in_shipped(["plan-lint", "registry/linux-core/probes.json"]);
    r.code(2);
    assert!(
        r.stderr.contains("is a registry file, not a plan"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("nexusmon registry-lint registry/linux-core/probes.json")
    );
}

/// The library entry point other commands (`run`) use to refuse a plan that does not lint.
#[test]
fn check_plan_refuses_with_the_first_errors() {
    let shipped = Project::shipped();
    let good = shipped.path("plans/quickstart/plan.json");
    let report = nexusmon::lint::check_plan(&good, shipped.root()).unwrap();
    assert!(!report.has_errors());
    report.refuse_on_errors(&good, shipped.root()).unwrap();

    let root = repo_root();

    let bad = root.join("tests/fixtures/lint/dangling-probe/plans/dangling-probe/plan.json");
    let report = nexusmon::lint::check_plan(&bad, &root).unwrap();
    let e = report.refuse_on_errors(&bad, &root).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(msg.contains("does not lint: 2 errors"), "{msg}");
    assert!(
        msg.contains("tests/fixtures/lint/dangling-probe/plans/dangling-probe/plan.json:7:27: [NX101] probe `read-hostnme` is not defined"),
        "{msg}"
    );
    assert!(e.hint().unwrap().contains(
        "nexusmon plan-lint tests/fixtures/lint/dangling-probe/plans/dangling-probe/plan.json"
    ));
}

#[test]
fn searches_skip_bundles_build_output_and_hidden_dirs_and_flag_two_plan_files() {
    let t = mini_project()
        .write("plans/a/plan.json", &plan("a"))
        .write("plans/a/plan.yaml", "schema_version: 1\n")
        .write("out/20261124-1/run_status.json", "{}")
        .write("out/20261124-1/plan.json", "{ not even json")
        .write("target/debug/plan.json", "{ not even json")
        .write(".hidden/plan.json", "{ not even json");
    let r = t.args(["plan-lint", ".", "--format", "json"]).run();
    r.code(1);
    let v = json(&r);
    let files: std::collections::BTreeSet<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert!(files.iter().all(|f| f.starts_with("plans/a/")), "{files:?}");
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "NX012" && f["file"] == "plans/a/plan.yaml"),
        "{}",
        r.stdout
    );
}
