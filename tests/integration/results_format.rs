//! The result files of result schema version 2 (sorted JSON Lines with `shared_values.json`),
//! read by an independent reader: Python expands every line's `$shared` values and
//! validates it against the committed schema, and checks that each file is sorted, compact
//! and key-sorted. A bundle of version 1 is refused by name, with the fix.

use std::path::Path;

use crate::bundle::{realistic, seal_from};
use crate::util::{Project, python, repo_root};

const PY_LINES: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
bundle, schemas = sys.argv[1], sys.argv[2]
def validator(name):
    s = json.load(open(f"{schemas}/{name}"))
    Draft202012Validator.check_schema(s)
    return Draft202012Validator(s)
shared_doc = json.load(open(f"{bundle}/shared_values.json"))
validator("shared-values.schema.json").validate(shared_doc)
shared = shared_doc["values"]
files = {
    "runtime_results.jsonl": "observation.schema.json",
    "baseline_results.jsonl": "observation.schema.json",
    "oracle_results.jsonl": "oracle-verdict.schema.json",
    "path_witnesses.jsonl": "path-witness.schema.json",
    "runtime_events.normalized.jsonl": "normalized-row.schema.json",
}
used = set()
for f, schema in files.items():
    v = validator(schema)
    keys = []
    n = 0
    for raw in open(f"{bundle}/{f}", encoding="utf-8"):
        line = json.loads(raw)
        assert raw == json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n", f"{f}: not compact key-sorted JSON: {raw!r}"
        for i in line.pop("$shared", []):
            used.add(i)
            for k, val in shared[i].items():
                assert k not in line, f"{f}: {k} twice"
                line[k] = val
        errors = [e.message for e in v.iter_errors(line)]
        assert not errors, f"{f} line {n + 1}: {errors}"
        keys.append(line["scenario_id"].encode())
        n += 1
    assert keys == sorted(keys), f"{f} is not sorted by scenario id"
    print(f"{f} {n}")
assert used == set(shared), f"unused shared values: {set(shared) - used}"
"#;

#[test]
fn result_lines_expand_and_validate_with_an_independent_reader() {
    let p = Project::shipped();
    p.run("quickstart", &[]).code(0);
    let b = p.latest();
    let out = python(&["jsonschema"], PY_LINES)
        .arg(&b)
        .arg(repo_root().join("schemas"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let rows = std::fs::read_to_string(b.join("runtime_events.normalized.jsonl")).unwrap();
    assert!(
        text.contains(&format!(
            "runtime_events.normalized.jsonl {}",
            rows.lines().count()
        )) && rows.lines().count() > 5,
        "{text}"
    );
    // Values the same for many lines are written once.
    let shared = crate::util::read_json(&b.join("shared_values.json"));
    let runtime = std::fs::read_to_string(b.join("runtime_results.jsonl")).unwrap();
    assert!(runtime.lines().all(|l| l.contains("\"$shared\":[")));
    assert!(!shared["values"].as_object().unwrap().is_empty());
}

fn refused(b: &Path, args: &[&str]) {
    let mut all = args.to_vec();
    all.extend(["--bundle", b.to_str().unwrap()]);
    let r = crate::bundle::nx(all.iter().copied());
    assert_eq!(r.status, 2, "{args:?}: {}", r.stderr);
    for w in ["schema_version 1", "schema_version 2", "re-run the plan"] {
        assert!(r.stderr.contains(w), "{args:?}: no `{w}` in {}", r.stderr);
    }
}

#[test]
fn a_version_1_bundle_is_refused_by_name_with_the_fix() {
    // The realistic fixture is a sealed bundle of result schema version 1.
    let t = tempfile::tempdir().unwrap();
    let b = seal_from(&t.path().join("out"), &realistic(), "r-v1");
    // It is still a valid seal: the store does not care what the files mean.
    crate::bundle::nx(["validate-bundle", "--bundle", b.to_str().unwrap()]).code(0);
    refused(&b, &["summarize-ops"]);
    refused(
        &b,
        &["report", "--out", t.path().join("r.html").to_str().unwrap()],
    );
}
