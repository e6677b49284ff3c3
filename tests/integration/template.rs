//! `list-templates` and `plan-build`: the catalog, typed parameters and their errors (nothing
//! written), ids from parameter values and byte-identical rebuilds, overwrite refusal, YAML
//! output that loads to the same plan and digest as JSON, `$schema` paths, and broken
//! project templates (fixtures in `tests/fixtures/template/project/`). Running the shipped
//! templates on the kernel is in `template_run.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{Ran, Test, python, repo_root, shipped_files};

const SHIPPED: [&str; 5] = [
    "build-tool",
    "exec-allowlist",
    "readonly-system",
    "tcp-egress-allowlist",
    "workspace-confinement",
];

fn fixture_project() -> PathBuf {
    repo_root().join("tests/fixtures/template/project")
}

/// `plan-build --template <t> --out <out> <extra…>` from `cwd`, with TMPDIR set to `tmp`.
fn plan_build(cwd: &Path, tmp: &Path, template: &str, out: &Path, extra: &[&str]) -> Ran {
    Test::new()
        .cwd(cwd)
        .env("TMPDIR", tmp.to_str().unwrap())
        .args([
            "plan-build",
            "--template",
            template,
            "--out",
            out.to_str().unwrap(),
        ])
        .args(extra)
        .run()
}

/// Every file under `dir`: relative path → bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).unwrap().next().is_none()
}

// ---------------------------------------------------------------------------------------
// list-templates
// ---------------------------------------------------------------------------------------

#[test]
fn list_templates_shows_every_shipped_template_with_typed_parameters() {
    // Outside any project: the built-in templates.
    let r = Test::new().args(["--json", "list-templates"]).run();
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["template_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, SHIPPED);
    // Every template this repository ships (by name, in util::SHIPPED) is built in.
    let dirs: Vec<String> = shipped_files("templates", &["template.json"])
        .iter()
        .map(|f| {
            assert!(f.is_file(), "{}", f.display());
            let dir = f.parent().unwrap().file_name().unwrap();
            dir.to_string_lossy().into_owned()
        })
        .collect();
    assert_eq!(dirs, SHIPPED);
    for t in v.as_array().unwrap() {
        assert_eq!(t["origin"], "built-in");
        assert_eq!(t["valid"], true, "{t:#}");
        let params = t["parameters"].as_array().unwrap();
        assert!(params.len() >= 3, "{t:#}");
        for p in params {
            assert!(
                p["description"].as_str().is_some_and(|d| d.len() > 10),
                "{p:#}"
            );
            assert!(
                p["type"].is_string() && p["default"] != Value::Null,
                "{p:#}"
            );
        }
        // The built-in `format` comes last.
        let last = params.last().unwrap();
        assert_eq!(last["name"], "format");
        assert_eq!(last["builtin"], true);
        assert_eq!(
            last["constraints"]["values"],
            serde_json::json!(["json", "yaml"])
        );
    }
    let tcp = &v[3]["parameters"];
    assert_eq!(tcp[0]["name"], "allowed_ports");
    assert_eq!(tcp[0]["type"], "port-list");
    assert_eq!(tcp[0]["default"], serde_json::json!([80, 443]));
    assert_eq!(tcp[0]["constraints"]["min_items"], 1);
    assert_eq!(
        tcp[0]["constraints"]["disjoint_with"],
        serde_json::json!(["denied_ports"])
    );

    // The human table, in declaration order.
    let r = Test::new().arg("list-templates").run();
    r.code(0);
    for id in SHIPPED {
        assert!(
            r.stdout.contains(&format!("{id} (built-in)")),
            "{}",
            r.stdout
        );
    }
    let tcp = r.stdout.find("tcp-egress-allowlist (built-in)").unwrap();
    let allowed = r.stdout[tcp..].find("allowed_ports").unwrap() + tcp;
    let denied = r.stdout[tcp..].find("denied_ports").unwrap() + tcp;
    let format = r.stdout[allowed..].find("format").unwrap() + allowed;
    assert!(allowed < denied && denied < format, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("beneath ${SCRATCH}; not overlapping ${SCRATCH}/outside"),
        "{}",
        r.stdout
    );
}

#[test]
fn list_templates_reports_broken_project_templates_with_line_and_column() {
    let r = Test::new()
        .cwd(fixture_project())
        .arg("list-templates")
        .run();
    r.code(1);
    assert!(
        r.stdout
            .contains("bad-body (project: templates/bad-body/template.json)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "bad-body/template.json:11:37: unknown directive `$fro` (did you mean `$for`?)"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("template.json:14:39: `prots` is not defined (did you mean `ports`?)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("parameter `port`: default: `70000` is not a port"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("`values` does not apply to parameters of type `integer`"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("2 templates are invalid"), "{}", r.stdout);
    // The valid project templates and the built-in ones are still listed.
    assert!(r.stdout.contains("needs-port (project:"), "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "  port       port    (required)  >= 1024\n      Required: the port to connect to.\n"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("exec-allowlist (built-in)"),
        "{}",
        r.stdout
    );
}

// ---------------------------------------------------------------------------------------
// Ids, determinism, YAML
// ---------------------------------------------------------------------------------------

#[test]
fn same_parameters_in_any_order_give_byte_identical_files() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let cwd_b = d.path().join("elsewhere");
    std::fs::create_dir_all(&cwd_b).unwrap();
    plan_build(
        d.path(),
        d.path(),
        "exec-allowlist",
        &a,
        &[
            "--set",
            "denied=/usr/bin/id,/usr/bin/uname",
            "--set",
            "allowed=/usr/bin/true",
            "--set",
            "run_allowed=false",
        ],
    )
    .code(0);
    plan_build(
        &cwd_b,
        d.path(),
        "exec-allowlist",
        &b,
        &[
            "--set",
            "run_allowed=false",
            "--set",
            "allowed=/usr/bin/true",
            "--set",
            "denied=/usr/bin/uname, /usr/bin/id",
        ],
    )
    .code(0);
    let (ta, tb) = (tree(&a), tree(&b));
    // The plan, its expected matrix, probes, profiles, and the three schemas their
    // `$schema`s point at (the out dir is outside any tree that has them).
    assert_eq!(ta.len(), 7, "{:?}", ta.keys());
    assert_eq!(ta, tb);
    // And a rebuild over the first gives the same bytes again.
    plan_build(
        d.path(),
        d.path(),
        "exec-allowlist",
        &a,
        &[
            "--overwrite",
            "--set",
            "allowed=/usr/bin/true",
            "--set",
            "denied=/usr/bin/id,/usr/bin/uname",
            "--set",
            "run_allowed=false",
        ],
    )
    .code(0);
    assert_eq!(tree(&a), tb);
}

#[test]
fn plan_id_is_the_template_id_plus_a_digest_of_the_non_default_parameters() {
    let d = tempfile::tempdir().unwrap();
    // Setting a default explicitly (in another order) changes nothing: a clean id.
    let r = plan_build(
        d.path(),
        d.path(),
        "tcp-egress-allowlist",
        &d.path().join("a"),
        &["--set", "allowed_ports=443,80", "--set", "listen=false"],
    );
    r.code(0);
    assert!(
        r.stderr.contains("built plan `tcp-egress-allowlist` "),
        "{}",
        r.stderr
    );
    assert!(
        d.path()
            .join("a/plans/tcp-egress-allowlist/plan.json")
            .is_file()
    );
    assert!(
        d.path()
            .join("a/registry/tcp-egress-allowlist/probes.json")
            .is_file()
    );
    // Non-default: `<template>-<first 8 hex of blake3(JCS(non-default parameters))>`; the
    // output format is not part of it.
    let mut nd = BTreeMap::new();
    nd.insert("allowed_ports", serde_json::json!([443, 8443]));
    let hex = nexusmon::util::digest::blake3_hex(&nexusmon::util::json::canonical(&nd).unwrap());
    let want = format!("tcp-egress-allowlist-{}", &hex[..8]);
    for (out, fmt) in [("b", "json"), ("c", "yaml")] {
        let r = Test::new()
            .cwd(d.path())
            .args([
                "--json",
                "plan-build",
                "--template",
                "tcp-egress-allowlist",
                "--out",
                out,
                "--set",
                "allowed_ports=8443,443",
                "--set",
                &format!("format={fmt}"),
            ])
            .run();
        r.code(0);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["plan_id"], want.as_str());
        assert_eq!(v["registry_id"], want.as_str());
        assert_eq!(
            v["non_default"],
            serde_json::json!({"allowed_ports": [443, 8443]})
        );
        assert_eq!(v["files"].as_array().unwrap().len(), 7);
        assert!(
            v["files"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["action"] == "created")
        );
    }
    // Ids of generated probes come from the values.
    let probes: Value = serde_json::from_slice(
        &std::fs::read(d.path().join(format!("b/registry/{want}/probes.json"))).unwrap(),
    )
    .unwrap();
    let ids: Vec<&String> = probes["probes"].as_object().unwrap().keys().collect();
    assert_eq!(
        ids,
        [
            "bind-ephemeral",
            "connect-22",
            "connect-25",
            "connect-443",
            "connect-8443",
            "stat-etc-hostname",
            "udp-send-discard"
        ]
    );
}

#[test]
fn colliding_or_long_values_get_a_digest_suffix_and_stay_apart() {
    let d = tempfile::tempdir().unwrap();
    let long = format!("/usr/bin/{}", "x".repeat(80));
    let r = Test::new()
        .cwd(d.path())
        .args([
            "--json",
            "plan-build",
            "--template",
            "exec-allowlist",
            "--out",
            "gen",
            "--set",
            &format!("denied=/usr/bin/a-b,/usr/bin-a/b,{long}"),
        ])
        .run();
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let id = v["plan_id"].as_str().unwrap();
    let probes: Value = serde_json::from_slice(
        &std::fs::read(d.path().join(format!("gen/registry/{id}/probes.json"))).unwrap(),
    )
    .unwrap();
    let execs: Vec<&String> = probes["probes"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("exec-usr-bin"))
        .collect();
    // true, env (allowed) and the three denied ones, all distinct.
    assert_eq!(execs.len(), 5, "{execs:?}");
    let ab: Vec<&&String> = execs
        .iter()
        .filter(|k| k.starts_with("exec-usr-bin-a-b-"))
        .collect();
    assert_eq!(ab.len(), 2, "{execs:?}");
    assert_ne!(ab[0], ab[1]);
    for k in &execs {
        assert!(k.len() <= 64, "{k}");
    }
    assert!(
        execs
            .iter()
            .any(|k| k.starts_with("exec-usr-bin-xxx") && k.len() < 64),
        "{execs:?}"
    );
    // The generated plan lints clean.
    Test::new()
        .args(["plan-lint", v["plan"].as_str().unwrap()])
        .run()
        .code(0);
}

const PY_YAML_EQUALS_JSON: &str = r"
import json, sys, yaml
a = yaml.safe_load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
if a != b:
    print('differ:', a, b)
    sys.exit(1)
print('same')
";

#[test]
fn yaml_output_loads_to_the_same_plan_and_digest_as_json() {
    let d = tempfile::tempdir().unwrap();
    let sets = [
        "--set",
        "workspace=${SCRATCH}/yes: no #1",
        "--set",
        "system_dirs=/usr,/opt/on,/lib64",
    ];
    let mut json_args = sets.to_vec();
    json_args.push("--json");
    let r = plan_build(
        d.path(),
        d.path(),
        "readonly-system",
        &d.path().join("j"),
        &json_args,
    );
    r.code(0);
    let rj: Value = serde_json::from_str(&r.stdout).unwrap();
    let mut yaml_args = json_args.clone();
    yaml_args.extend(["--set", "format=yaml"]);
    let r = plan_build(
        d.path(),
        d.path(),
        "readonly-system",
        &d.path().join("y"),
        &yaml_args,
    );
    r.code(0);
    let ry: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(rj["plan_id"], ry["plan_id"]);
    assert_eq!(rj["plan_digest"], ry["plan_digest"]);
    let id = rj["plan_id"].as_str().unwrap();

    let jp = d.path().join(format!("j/plans/{id}/plan.json"));
    let yp = d.path().join(format!("y/plans/{id}/plan.yaml"));
    assert!(!d.path().join(format!("y/plans/{id}/plan.json")).exists());
    let j = nexusmon::load::load_plan(&jp).unwrap();
    let y = nexusmon::load::load_plan(&yp).unwrap();
    assert_eq!(j.plan, y.plan);
    assert_eq!(j.probes, y.probes);
    assert_eq!(j.profiles, y.profiles);
    assert_eq!(j.registry.probes, y.registry.probes);
    assert_eq!(j.registry.profiles, y.registry.profiles);
    assert_eq!(j.digest, y.digest);
    assert!(y.registry.probes_path.ends_with("probes.yaml"));
    // The awkward workspace survived as a string in both.
    let ws = &y
        .profiles
        .values()
        .next()
        .unwrap()
        .landlock
        .as_ref()
        .unwrap()
        .fs
        .as_ref()
        .unwrap()
        .allow;
    assert!(
        ws.iter().any(|r| r.path == "${SCRATCH}/yes: no #1"),
        "{ws:?}"
    );
    // An independent YAML 1.1 reader (PyYAML, where `yes`/`on` are booleans) reads the same.
    for (yf, jf) in [
        (yp.clone(), jp.clone()),
        (
            d.path().join(format!("y/registry/{id}/probes.yaml")),
            d.path().join(format!("j/registry/{id}/probes.json")),
        ),
        (
            d.path().join(format!("y/registry/{id}/profiles.yaml")),
            d.path().join(format!("j/registry/{id}/profiles.json")),
        ),
    ] {
        let out = python(&["yaml"], PY_YAML_EQUALS_JSON)
            .arg(&yf)
            .arg(&jf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            yf.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Writing: overwrite, stale files, $schema
// ---------------------------------------------------------------------------------------

#[test]
fn existing_files_are_not_replaced_without_overwrite() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("gen");
    plan_build(d.path(), d.path(), "workspace-confinement", &out, &[]).code(0);
    let before = tree(&out);
    let plan = out.join("plans/workspace-confinement/plan.json");
    let mtime = std::fs::metadata(&plan).unwrap().modified().unwrap();

    // The same build again is a no-op, not a refusal: every file is kept as it is.
    let r = plan_build(d.path(), d.path(), "workspace-confinement", &out, &[]);
    r.code(0);
    assert_eq!(r.stderr.matches("  kept ").count(), 4, "{}", r.stderr);
    assert!(!r.stderr.contains("wrote"), "{}", r.stderr);
    assert_eq!(tree(&out), before);
    assert_eq!(std::fs::metadata(&plan).unwrap().modified().unwrap(), mtime);
    // A file whose content differs is refused, before anything is written.
    let mut edited = std::fs::read(&plan).unwrap();
    edited.extend_from_slice(b"\n");
    std::fs::write(&plan, &edited).unwrap();
    let before = tree(&out);
    let mtime = std::fs::metadata(&plan).unwrap().modified().unwrap();
    let r = plan_build(d.path(), d.path(), "workspace-confinement", &out, &[]);
    r.code(2);
    assert!(
        r.stderr
            .contains("would replace 1 existing file whose content differs; nothing was written"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("plans/workspace-confinement/plan.json"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--overwrite"), "{}", r.stderr);
    // Switching the format is refused too: plan.yaml beside plan.json would be ambiguous.
    let r = plan_build(
        d.path(),
        d.path(),
        "workspace-confinement",
        &out,
        &["--set", "format=yaml"],
    );
    r.code(2);
    assert!(
        r.stderr.contains("would replace 3 existing files"),
        "{}",
        r.stderr
    );
    assert_eq!(tree(&out), before);
    assert_eq!(std::fs::metadata(&plan).unwrap().modified().unwrap(), mtime);

    // --overwrite replaces, and removes the stale other-format files.
    let r = Test::new()
        .cwd(d.path())
        .args([
            "--json",
            "plan-build",
            "--template",
            "workspace-confinement",
            "--out",
            "gen",
            "--set",
            "format=yaml",
            "--overwrite",
            "--no-expected-matrix",
        ])
        .run();
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let actions: Vec<(String, String)> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                Path::new(f["path"].as_str().unwrap())
                    .strip_prefix(&out)
                    .unwrap()
                    .display()
                    .to_string(),
                f["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("registry/workspace-confinement/probes.yaml", "created"),
        ("registry/workspace-confinement/profiles.yaml", "created"),
        ("plans/workspace-confinement/plan.yaml", "created"),
        ("registry/workspace-confinement/probes.json", "removed"),
        ("registry/workspace-confinement/profiles.json", "removed"),
        ("plans/workspace-confinement/plan.json", "removed"),
        (
            "plans/workspace-confinement/expected_matrix.json",
            "removed",
        ),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
    .collect();
    assert_eq!(actions, want);
    let names: Vec<String> = tree(&out).into_keys().collect();
    assert_eq!(
        names,
        [
            "plans/workspace-confinement/plan.yaml",
            "registry/workspace-confinement/probes.yaml",
            "registry/workspace-confinement/profiles.yaml",
            "schemas/plan.schema.json",
            "schemas/probes.schema.json",
            "schemas/profiles.schema.json",
        ]
    );
    // The result is a plan run accepts: it lints.
    Test::new()
        .args([
            "plan-lint",
            out.join("plans/workspace-confinement/plan.yaml")
                .to_str()
                .unwrap(),
        ])
        .run()
        .code(0);
    // Replacing in place says so (a file edited since), and what is already built is kept.
    let yaml_plan = out.join("plans/workspace-confinement/plan.yaml");
    let mut edited = std::fs::read(&yaml_plan).unwrap();
    edited.extend_from_slice(b"# edited\n");
    std::fs::write(&yaml_plan, &edited).unwrap();
    let r = plan_build(
        d.path(),
        d.path(),
        "workspace-confinement",
        &out,
        &["--set", "format=yaml", "--overwrite"],
    );
    r.code(0);
    assert!(
        r.stderr
            .contains("replaced gen/plans/workspace-confinement/plan.yaml"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("kept     gen/registry/workspace-confinement/probes.yaml"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("wrote    gen/plans/workspace-confinement/expected_matrix.json"),
        "{}",
        r.stderr
    );
    // Nothing left behind in TMPDIR by any of these builds.
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("nexusmon-plan-build"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_out_path_that_is_a_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("gen"), "x").unwrap();
    let r = plan_build(
        d.path(),
        d.path(),
        "exec-allowlist",
        &d.path().join("gen"),
        &[],
    );
    r.code(2);
    assert!(
        r.stderr.contains("is in the way: it is not a directory"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(d.path().join("gen")).unwrap();
    std::fs::create_dir_all(d.path().join("gen/plans/exec-allowlist/plan.json")).unwrap();
    let r = plan_build(
        d.path(),
        d.path(),
        "exec-allowlist",
        &d.path().join("gen"),
        &["--overwrite"],
    );
    r.code(2);
    assert!(
        r.stderr
            .contains("is a directory where plan-build writes a file"),
        "{}",
        r.stderr
    );
    assert!(!d.path().join("gen/registry").exists());
}

#[test]
fn schema_paths_point_at_the_project_schemas_when_the_out_dir_has_them() {
    let d = tempfile::tempdir().unwrap();
    let project = d.path().join("project");
    std::fs::create_dir_all(project.join("schemas")).unwrap();
    for n in ["plan", "probes", "profiles"] {
        let f = format!("{n}.schema.json");
        std::fs::copy(
            repo_root().join("schemas").join(&f),
            project.join("schemas").join(&f),
        )
        .unwrap();
    }
    plan_build(&project, d.path(), "tcp-egress-allowlist", &project, &[]).code(0);
    plan_build(
        &project,
        d.path(),
        "exec-allowlist",
        &project.join("generated"),
        &[],
    )
    .code(0);
    plan_build(
        &project,
        d.path(),
        "exec-allowlist",
        &d.path().join("outside"),
        &[],
    )
    .code(0);
    let get = |p: PathBuf| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let plan = get(project.join("plans/tcp-egress-allowlist/plan.json"));
    assert_eq!(plan["$schema"], "../../schemas/plan.schema.json");
    let probes = get(project.join("registry/tcp-egress-allowlist/probes.json"));
    assert_eq!(probes["$schema"], "../../schemas/probes.schema.json");
    let plan = get(project.join("generated/plans/exec-allowlist/plan.json"));
    assert_eq!(plan["$schema"], "../../../schemas/plan.schema.json");
    // The path resolves from the file.
    assert!(
        project
            .join("generated/plans/exec-allowlist")
            .join(plan["$schema"].as_str().unwrap())
            .is_file()
    );
    // Outside any tree with schemas: the build writes its own into the out dir and points
    // at them, so every generated file carries a `$schema` that resolves.
    for (file, name) in [
        ("plans/exec-allowlist/plan.json", "plan"),
        ("registry/exec-allowlist/probes.json", "probes"),
        ("registry/exec-allowlist/profiles.json", "profiles"),
    ] {
        let f = d.path().join("outside").join(file);
        let v = get(f.clone());
        assert_eq!(
            v["$schema"],
            format!("../../schemas/{name}.schema.json").as_str()
        );
        let schema = f.parent().unwrap().join(v["$schema"].as_str().unwrap());
        assert_eq!(
            std::fs::read(&schema).unwrap(),
            std::fs::read(repo_root().join(format!("schemas/{name}.schema.json"))).unwrap(),
            "{}",
            schema.display()
        );
    }
    // The generated files validate against the published schemas (an independent validator).
    for (schema, files) in [
        (
            "plan",
            vec![
                project.join("plans/tcp-egress-allowlist/plan.json"),
                project.join("generated/plans/exec-allowlist/plan.json"),
            ],
        ),
        (
            "probes",
            vec![
                project.join("registry/tcp-egress-allowlist/probes.json"),
                project.join("generated/registry/exec-allowlist/probes.json"),
            ],
        ),
        (
            "profiles",
            vec![
                project.join("registry/tcp-egress-allowlist/profiles.json"),
                project.join("generated/registry/exec-allowlist/profiles.json"),
            ],
        ),
    ] {
        let out = python(
            &["jsonschema"],
            "import json,sys\nfrom jsonschema import Draft202012Validator as V\ns=V(json.load(open(sys.argv[1])))\nbad=[e.message for f in sys.argv[2:] for e in s.iter_errors(json.load(open(f)))]\nprint(bad)\nsys.exit(1 if bad else 0)",
        )
        .arg(repo_root().join(format!("schemas/{schema}.schema.json")))
            .args(&files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{schema}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Bad input: a clear error, exit 2, nothing written
// ---------------------------------------------------------------------------------------

#[test]
fn bad_parameters_are_refused_naming_the_parameter_value_rule_and_an_example() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "tcp-egress-allowlist",
            &["--set", "allowed_port=443"],
            &[
                "has no parameter `allowed_port`",
                "did you mean `allowed_ports`?",
            ],
        ),
        (
            "tcp-egress-allowlist",
            &["--set", "allowed_ports=443,70000"],
            &[
                "parameter `allowed_ports` (port-list): `70000` is not a port: ports are integers 1-65535",
                "for example: --set allowed_ports=443,8443",
            ],
        ),
        (
            "tcp-egress-allowlist",
            &["--set", "allowed_ports=443,443"],
            &["`443` is listed twice"],
        ),
        (
            "tcp-egress-allowlist",
            &["--set", "allowed_ports="],
            &[
                "parameter `allowed_ports` (port-list): the empty value has 0 items; at least 1 is needed",
            ],
        ),
        (
            "tcp-egress-allowlist",
            &["--set", "listen=yes"],
            &["parameter `listen` (boolean): `yes` is not a boolean: write `true` or `false`"],
        ),
        (
            "tcp-egress-allowlist",
            &["--set", "listen=true", "--set", "listen=false"],
            &["parameter `listen` is set twice (`--set listen=true` and `--set listen=false`)"],
        ),
        (
            "tcp-egress-allowlist",
            &["--set", "listen"],
            &["`--set listen` is not of the form key=value"],
        ),
        (
            "tcp-egress-allowlist",
            &[
                "--set",
                "allowed_ports=443,8443",
                "--set",
                "denied_ports=22,8443",
            ],
            &[
                "parameters `allowed_ports` and `denied_ports` must not share items, but both have `8443`",
            ],
        ),
        (
            "tcp-egress-allowlist",
            &["--set", "format=xml"],
            &[
                "parameter `format` (enum): `xml` is not one of `json`, `yaml`",
                "for example: --set format=yaml",
            ],
        ),
        (
            "readonly-system",
            &["--set", "workspace=/tmp/ws"],
            &[
                "parameter `workspace` (path): `/tmp/ws` is not beneath `${SCRATCH}`",
                "for example: --set workspace=${SCRATCH}/project",
            ],
        ),
        (
            "readonly-system",
            &["--set", "workspace=${SCRATCH}/outside/ws"],
            &["`${SCRATCH}/outside/ws` lies beneath `${SCRATCH}/outside`"],
        ),
        (
            "readonly-system",
            &["--set", "system_dirs=/usr,/"],
            &["`/` contains `/etc`, which this parameter must not overlap"],
        ),
        (
            "readonly-system",
            &["--set", "workspace=${SCRATCH}/../etc"],
            &["has a `..` component"],
        ),
        (
            "readonly-system",
            &["--set", "abi=2"],
            &[
                "parameter `abi` (integer): `2` is less than the minimum 3",
                "for example: --set abi=3",
            ],
        ),
        (
            "exec-allowlist",
            &["--set", "allowed=usr/bin/true"],
            &["`usr/bin/true` is not an absolute path (start it with `/`)"],
        ),
        (
            "exec-allowlist",
            &["--set", "denied=/usr/lib/x86_64-linux-gnu/libc.so.6"],
            &["lies beneath `/usr/lib`"],
        ),
        (
            "exec-allowlist",
            &["--set", "allowed=/usr/bin"],
            &[
                "parameters `allowed` and `denied` must not overlap, but `/usr/bin` (allowed) contains `/usr/bin/id` (denied)",
            ],
        ),
        (
            "exec-allowlist",
            &[
                "--set",
                "allowed=/usr/bin/true",
                "--set",
                "denied=/usr/bin/true,/usr/bin/id",
            ],
            &[
                "parameters `allowed` and `denied` must not share items, but both have `/usr/bin/true`",
            ],
        ),
        (
            "workspace-confinement",
            &["--set", "refer=1"],
            &["`1` is not a boolean"],
        ),
    ];
    let d = tempfile::tempdir().unwrap();
    let tmp = d.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = d.path().join("gen");
    for (template, args, want) in cases {
        let r = plan_build(d.path(), &tmp, template, &out, args);
        assert_eq!(r.status, 2, "{template} {args:?}: {}", r.stderr);
        for w in *want {
            assert!(
                r.stderr.contains(w),
                "{template} {args:?}: want {w:?} in\n{}",
                r.stderr
            );
        }
        assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
        assert!(!out.exists(), "{template} {args:?} wrote something");
        assert!(empty_dir(&tmp), "{template} {args:?} left temp files");
    }
    // With --json the error is machine-readable too.
    let r = plan_build(
        d.path(),
        &tmp,
        "tcp-egress-allowlist",
        &out,
        &["--json", "--set", "listen=maybe"],
    );
    r.code(2);
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["error"]["exit_code"], 2);
    assert!(
        v["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("--set listen=false"),
        "{v:#}"
    );
}

#[test]
fn an_unknown_template_gets_a_suggestion() {
    let d = tempfile::tempdir().unwrap();
    let r = plan_build(d.path(), d.path(), "tcp-egress", &d.path().join("gen"), &[]);
    r.code(2);
    assert!(
        r.stderr.contains("error: no template `tcp-egress`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("did you mean `tcp-egress-allowlist`?"),
        "{}",
        r.stderr
    );
    let r = plan_build(d.path(), d.path(), "zzz", &d.path().join("gen"), &[]);
    r.code(2);
    assert!(
        r.stderr
            .contains("templates: `build-tool`, `exec-allowlist`, `readonly-system`"),
        "{}",
        r.stderr
    );
    assert!(!d.path().join("gen").exists());
}

#[test]
fn project_templates_are_checked_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    let tmp = d.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = d.path().join("gen");
    let p = fixture_project();
    // A required parameter.
    let r = plan_build(&p, &tmp, "needs-port", &out, &[]);
    r.code(2);
    assert!(
        r.stderr
            .contains("template `needs-port` needs `port` (port)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: set it: --set port=1024"),
        "{}",
        r.stderr
    );
    // A value that makes an invalid id.
    let r = plan_build(
        &p,
        &tmp,
        "needs-port",
        &out,
        &["--set", "port=8080", "--set", "label=Bad Id"],
    );
    r.code(2);
    assert!(
        r.stderr.contains("generates an invalid plan with `nexusmon plan-build --template needs-port --set 'label=Bad Id' --set port=8080`: at /scenarios/no-net/connect-Bad Id: invalid id"),
        "{}",
        r.stderr
    );
    // A body with an unknown directive and an undefined name.
    let r = plan_build(&p, &tmp, "bad-body", &out, &[]);
    r.code(2);
    assert!(
        r.stderr
            .contains("template `bad-body` is invalid: 2 problems"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(":11:37: unknown directive `$fro`"),
        "{}",
        r.stderr
    );
    // A plan that does not lint: the finding names the file it would have been.
    let r = plan_build(&p, &tmp, "bad-lint", &out, &[]);
    r.code(2);
    assert!(
        r.stderr
            .contains("generates a plan that does not lint (1 error); nothing was written"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "{}/registry/bad-lint/probes.json:8:17: error [NX211]",
            out.display()
        )),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    assert!(empty_dir(&tmp));
    // The valid one builds, with the enum condition applied.
    let r = plan_build(
        &p,
        &tmp,
        "needs-port",
        &out,
        &["--set", "port=8080", "--set", "mode=relaxed"],
    );
    r.code(0);
    let profiles = tree(&out)
        .into_iter()
        .find(|(k, _)| k.ends_with("profiles.json"))
        .unwrap()
        .1;
    assert!(String::from_utf8(profiles).unwrap().contains("\"relaxed\""));
    assert!(empty_dir(&tmp));
}

#[test]
fn a_yaml_template_file_is_accepted() {
    let t = Test::new().write(
        "templates/tiny/template.yaml",
        "schema_version: 1\ntemplate_id: tiny\ndescription: A tiny YAML template.\noutput_format: yaml\nparameters:\n  ports:\n    type: port-list\n    description: Ports.\n    default: [443]\nplan:\n  kind: experiment\n  profiles: [p]\n  scenarios:\n    p:\n      $merge:\n        - {$for: port in ports, $key: 'c-${port}', $value: deny}\n  controls: [s]\nprobes:\n  s: {operation: file-stat, target: /etc/hostname, notes: Control.}\n  $merge:\n    - $for: port in ports\n      $key: c-${port}\n      $value: {operation: tcp-connect, target: '127.0.0.1:${port}', notes: Connect.}\nprofiles:\n  p:\n    description: No TCP.\n    landlock: {compat: hard, abi: 4, net: {tcp_connect: []}}\n",
    );
    let t = t.args(["plan-build", "--template", "tiny", "--out", "."]);
    let r = t.run();
    r.code(0);
    // output_format: yaml is the default for this template.
    assert!(
        r.stderr
            .contains("built plan `tiny` from template `tiny` (yaml)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("wrote    plans/tiny/plan.yaml"),
        "{}",
        r.stderr
    );
    let plan = std::fs::read_to_string(t.path().join("plans/tiny/plan.yaml")).unwrap();
    assert!(plan.contains("\n    c-443: deny\n"), "{plan}");
    // The project now has a plan `list-plans` sees and `run --dry` accepts.
    let r = Test::new().cwd(t.path()).arg("list-plans").run();
    r.code(0);
    assert!(r.stdout.contains("tiny"), "{}", r.stdout);
}

#[test]
fn a_project_template_shadows_the_built_in_one_with_its_id() {
    let shipped =
        std::fs::read_to_string(repo_root().join("templates/tcp-egress-allowlist/template.json"))
            .unwrap();
    let mine = shipped.replace(
        "\"kind\": \"experiment\",",
        "\"kind\": \"experiment\",\n    \"execution\": {\"timeout_ms\": 2000, \"retries\": 1},",
    );
    let mine = mine.replace(
        "    \"execution\": {\"timeout_ms\": 5000, \"retries\": 0}\n",
        "    \"lanes\": {\"baseline\": true, \"scenario\": true, \"oracle\": true}\n",
    );
    let mine = mine.replace(
        "    \"lanes\": {\"baseline\": true, \"scenario\": true, \"oracle\": true},\n",
        "",
    );
    assert_ne!(mine, shipped);
    let t = Test::new().write("templates/tcp-egress-allowlist/template.json", &mine);
    let t = t.args(["--json", "list-templates"]);
    let r = t.run();
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let origins: Vec<(&str, &str)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["template_id"].as_str().unwrap(),
                e["origin"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        origins,
        [
            ("build-tool", "built-in"),
            ("exec-allowlist", "built-in"),
            ("readonly-system", "built-in"),
            ("tcp-egress-allowlist", "project"),
            ("workspace-confinement", "built-in"),
        ]
    );
    assert_eq!(v[3]["path"], "templates/tcp-egress-allowlist/template.json");
    let r = Test::new()
        .cwd(t.path())
        .args([
            "plan-build",
            "--template",
            "tcp-egress-allowlist",
            "--out",
            ".",
        ])
        .run();
    r.code(0);
    let plan: Value = serde_json::from_slice(
        &std::fs::read(t.path().join("plans/tcp-egress-allowlist/plan.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(plan["execution"]["retries"], 1, "{plan:#}");
}

/// Removes the immutable flag on drop, so the temp dir can be deleted even if a check fails.
struct Immutable(PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_write_that_fails_midway_removes_the_files_the_build_created() {
    // The registry is written first; the plan directory is made immutable (even root cannot
    // create files in it), so the build fails after two files and must take them back.
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("gen");
    let plan_dir = out.join("plans/exec-allowlist");
    std::fs::create_dir_all(&plan_dir).unwrap();
    let st = Command::new("chattr")
        .arg("+i")
        .arg(&plan_dir)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "chattr +i (e2fsprogs, on ext4) is needed for this test"
    );
    let guard = Immutable(plan_dir.clone());
    let r = plan_build(d.path(), d.path(), "exec-allowlist", &out, &[]);
    r.code(3);
    assert!(r.stderr.contains("plans/exec-allowlist"), "{}", r.stderr);
    assert!(r.stderr.contains("Operation not permitted"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("hint: nothing was written; fix the cause and build again"),
        "{}",
        r.stderr
    );
    drop(guard);
    let left: Vec<String> = tree(&out).into_keys().collect();
    assert!(left.is_empty(), "{left:?}");
    // The directories it created are gone too; the ones that were there stay.
    assert!(!out.join("registry").exists());
    assert!(plan_dir.is_dir());
}

#[test]
fn plan_id_flag_names_the_plan_and_its_registry_and_is_checked() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("gen");
    let r = Test::new()
        .cwd(d.path())
        .args([
            "--json",
            "plan-build",
            "--template",
            "build-tool",
            "--out",
            "gen",
            "--set",
            "read_dirs=/usr,/etc",
            "--plan-id",
            "ci-build",
        ])
        .run();
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["plan_id"], "ci-build");
    assert_eq!(v["registry_id"], "ci-build");
    let plan: Value =
        serde_json::from_slice(&std::fs::read(out.join("plans/ci-build/plan.json")).unwrap())
            .unwrap();
    assert_eq!(plan["plan_id"], "ci-build");
    assert_eq!(plan["registry_id"], "ci-build");
    // The recorded rebuild command names the id, so it rebuilds the same files.
    assert!(
        plan["description"]
            .as_str()
            .unwrap()
            .contains("--set read_dirs=/etc,/usr --plan-id ci-build`"),
        "{plan:#}"
    );
    assert!(out.join("registry/ci-build/profiles.json").is_file());
    // An id that is not an id (a path, upper case, empty) is refused; nothing is written.
    for bad in ["../escape", "CI", "", "a/b"] {
        let before = tree(&out);
        let r = plan_build(d.path(), d.path(), "build-tool", &out, &["--plan-id", bad]);
        r.code(2);
        assert!(r.stderr.contains("--plan-id"), "{bad}: {}", r.stderr);
        assert_eq!(tree(&out), before, "{bad}");
    }
}

/// The refusals a new user met (the issue's two commands) say why, and point at what to do.
#[test]
fn refusals_explain_themselves_and_point_at_build_tool() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("gen");
    let r = plan_build(
        d.path(),
        d.path(),
        "readonly-system",
        &out,
        &["--set", "system_dirs=/usr,/etc"],
    );
    r.code(2);
    assert!(
        r.stderr.contains("negative controls read /etc"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("build template `build-tool`: --set read_dirs=/usr,/etc"),
        "{}",
        r.stderr
    );
    let r = plan_build(
        d.path(),
        d.path(),
        "workspace-confinement",
        &out,
        &["--set", "workspace=/home/build/ws"],
    );
    r.code(2);
    assert!(
        r.stderr.contains("the baseline lane has no policy"),
        "{}",
        r.stderr
    );
    // build-tool takes /etc; a read grant over the scratch directory is refused, with why.
    plan_build(
        d.path(),
        d.path(),
        "build-tool",
        &out,
        &["--set", "read_dirs=/usr,/etc"],
    )
    .code(0);
    for bad in ["/", "/tmp", "/var", "/dev", "/dev/shm/x"] {
        let r = plan_build(
            d.path(),
            d.path(),
            "build-tool",
            &out,
            &["--set", &format!("read_dirs=/usr,{bad}")],
        );
        r.code(2);
        assert!(
            r.stderr.contains("scratch directory"),
            "{bad}: {}",
            r.stderr
        );
    }
}

/// Only a regular file with exactly the bytes is kept: a symlink planted where plan-build
/// writes (even to a file with those bytes) is refused without `--overwrite`, and with it
/// the link itself is replaced, never written through.
#[test]
fn a_symlink_at_a_target_is_never_kept_or_written_through() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("gen");
    plan_build(d.path(), d.path(), "build-tool", &out, &[]).code(0);
    let plan = out.join("plans/build-tool/plan.json");
    let elsewhere = d.path().join("elsewhere.json");
    std::fs::copy(&plan, &elsewhere).unwrap();
    std::fs::remove_file(&plan).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &plan).unwrap();
    let r = plan_build(d.path(), d.path(), "build-tool", &out, &[]);
    r.code(2);
    assert!(
        r.stderr
            .contains("would replace 1 existing file whose content differs"),
        "{}",
        r.stderr
    );
    let r = plan_build(d.path(), d.path(), "build-tool", &out, &["--overwrite"]);
    r.code(0);
    assert!(
        !std::fs::symlink_metadata(&plan)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read(&plan).unwrap(),
        std::fs::read(&elsewhere).unwrap()
    );
}
