//! `schemas/`: generated from the model types, committed, checked for drift; every shipped
//! plan, registry and template file validates against them with an independent validator (Python's
//! `jsonschema`).

use std::path::{Path, PathBuf};

use nexusmon::lint::schema::{self, SCHEMAS};

use crate::util::{python, repo_root, shipped_files};

fn schemas_dir() -> PathBuf {
    repo_root().join("schemas")
}

/// Fails when a committed schema differs from what the model generates. Regenerate with
/// `UPDATE_SCHEMAS=1 cargo test --test integration schemas`.
#[test]
fn committed_schemas_match_the_model() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| !v.is_empty() && v != "0");
    let mut stale = Vec::new();
    for spec in SCHEMAS {
        let want = schema::render(spec).unwrap();
        let path = schemas_dir().join(spec.file_name);
        if update {
            std::fs::create_dir_all(schemas_dir()).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        let have = std::fs::read(&path).unwrap_or_default();
        if have != want {
            stale.push(spec.file_name);
        }
    }
    assert!(
        stale.is_empty(),
        "schemas/{{{}}} out of date with the model types; regenerate with:\n    UPDATE_SCHEMAS=1 cargo test --test integration schemas\nand commit the result",
        stale.join(",")
    );
    // Nothing in schemas/ that the table does not produce.
    let mut extra = Vec::new();
    for entry in std::fs::read_dir(schemas_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !SCHEMAS.iter().any(|s| s.file_name == name) {
            extra.push(name);
        }
    }
    assert!(
        extra.is_empty(),
        "files in schemas/ no schema produces: {extra:?}"
    );
}

#[test]
fn schemas_carry_id_title_descriptions_and_id_patterns() {
    for spec in SCHEMAS {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(schemas_dir().join(spec.file_name)).unwrap())
                .unwrap();
        assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(v["$id"], schema::schema_id(spec));
        assert!(
            v["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("nexusmon"))
        );
        assert!(
            v["description"].is_string(),
            "{} has no description",
            spec.name
        );
    }
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(schemas_dir().join("plan.schema.json")).unwrap())
            .unwrap();
    assert_eq!(
        plan["properties"]["scenarios"]["propertyNames"]["pattern"],
        nexusmon::model::id::ID_PATTERN
    );
    assert!(
        plan["properties"]["$schema"].is_object(),
        "`$schema` must be allowed in plans"
    );
}

/// Every shipped JSON file under `dir` named one of `names` (the fixed list util::SHIPPED,
/// not whatever the checkout holds).
fn shipped(dir: &str, names: &[&str]) -> Vec<PathBuf> {
    shipped_files(dir, names)
}

const PY_VALIDATE: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema)
bad = 0
for path in sys.argv[2:]:
    for e in v.iter_errors(json.load(open(path))):
        bad += 1
        print(f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
print(f"checked {len(sys.argv) - 2} files, {bad} errors")
sys.exit(1 if bad else 0)
"#;

fn python_validate(schema: &Path, files: &[PathBuf]) -> (i32, String) {
    let out = python(&["jsonschema"], PY_VALIDATE)
        .arg(schema)
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn shipped_plans_registries_and_templates_validate_with_python_jsonschema() {
    let cases = [
        ("plan.schema.json", shipped("plans", &["plan.json"])),
        ("probes.schema.json", shipped("registry", &["probes.json"])),
        (
            "profiles.schema.json",
            shipped("registry", &["profiles.json"]),
        ),
        (
            "workers.schema.json",
            shipped("registry", &["workers.json"]),
        ),
        (
            "template.schema.json",
            shipped("templates", &["template.json"]),
        ),
    ];
    for (schema_file, files) in cases {
        assert!(!files.is_empty(), "no shipped files for {schema_file}");
        let (code, text) = python_validate(&schemas_dir().join(schema_file), &files);
        assert_eq!(code, 0, "{schema_file}:\n{text}");
        assert!(
            text.contains(&format!("checked {} files, 0 errors", files.len())),
            "{text}"
        );
    }
}

#[test]
fn python_jsonschema_rejects_what_lint_rejects() {
    // The independent validator really runs: an unknown key and a bad operation fail it.
    let t = tempfile::tempdir().unwrap();
    let bad = t.path().join("probes.json");
    std::fs::write(
        &bad,
        r#"{"schema_version": 1, "registry_id": "x", "probes": {"p": {"operation": "file-raed", "target": "/x", "bogus": 1}}}"#,
    )
    .unwrap();
    let (code, text) = python_validate(&schemas_dir().join("probes.schema.json"), &[bad]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("2 errors"), "{text}");
}
