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

/// Seeded xorshift for the generated plans below.
struct Gen(u64);

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

/// A result file's items with the run's own id (in scratch paths) replaced.
fn steady_items(bundle: &Path, file: &str) -> serde_json::Value {
    let summary = crate::util::read_json(&bundle.join("summary.json"));
    let run_id = summary["run_id"].as_str().unwrap().to_string();
    let text = crate::util::results(bundle, file).to_string();
    serde_json::from_str(&text.replace(&run_id, "RUN")).unwrap()
}

/// Must show: a streamed run, which reuses the oracle's last prediction when the next
/// scenario predicts the same (an exec probe of the same program under the same profile),
/// writes the oracle verdicts and path witnesses the gathering run (`--gather-results`,
/// every prediction made afresh) writes. Generated plans (seeded): exec probes of a few
/// programs in random order (through a symlinked directory or not, missing, a script with a `#!`
/// line made as a fixture, through `/usr/bin/env`), some with a target, under profiles
/// that allow them, deny the libraries, or have a rule on `${SCRATCH}` (compiled per
/// scenario, never reused).
#[test]
fn a_streamed_run_reusing_predictions_writes_the_gathered_runs_verdicts() {
    let commands: [&[&str]; 6] = [
        &["/bin/true"],
        &["/usr/bin/true"],
        &["/bin/sh", "-c", "exit 0"],
        &["/nonexistent/prog"],
        &["/usr/bin/env", "true"],
        &["${SCRATCH}/run.sh"],
    ];
    for seed in [0x0dd_c0de_u64, 0xfeed_f00d] {
        let mut g = Gen(seed);
        let p = Project::empty();
        let mut probes = serde_json::Map::new();
        let n_probes = 40 + g.below(40);
        for i in 0..n_probes {
            let argv = commands[usize::try_from(g.below(commands.len() as u64)).unwrap()];
            let mut probe =
                serde_json::json!({"operation": "exec", "driver": "exec", "argv": argv});
            if argv[0].starts_with("${SCRATCH}") {
                probe["fixtures"] = serde_json::json!([
                    {"kind": "file", "path": "${SCRATCH}/run.sh", "content": "#!/bin/sh\nexit 0\n", "mode": "0755"}
                ]);
            }
            if g.below(8) == 0 {
                probe["target"] = serde_json::json!("/usr/lib/os-release");
            }
            probes.insert(format!("q{i:04}"), probe);
        }
        let usr = serde_json::json!({"path": "/usr", "access": ["read", "exec"]});
        let profiles = serde_json::json!({
            "usr-ro": {"landlock": {"abi": 7, "fs": {"handle": "all", "allow": [usr]}}},
            "no-libs": {"landlock": {"abi": 7, "fs": {"handle": "all", "allow": [
                {"path": "/usr/bin", "access": ["read", "exec"]}
            ]}}},
            "scratch": {"landlock": {"abi": 7, "fs": {"handle": "all", "allow": [
                usr, {"path": "${SCRATCH}", "access": ["read", "exec"]}
            ]}}}
        });
        let names = ["no-libs", "scratch", "usr-ro"];
        let mut scenarios = serde_json::Map::new();
        for name in names {
            let row: serde_json::Map<String, serde_json::Value> = probes
                .keys()
                .map(|k| (k.clone(), serde_json::Value::from("allow")))
                .collect();
            scenarios.insert(name.to_string(), serde_json::Value::Object(row));
        }
        let reg = p.path("registry/gen");
        std::fs::create_dir_all(&reg).unwrap();
        std::fs::create_dir_all(p.path("plans/gen")).unwrap();
        let doc = |key: &str, body: serde_json::Value| {
            serde_json::json!({"schema_version": 1, "registry_id": "gen", key: body}).to_string()
        };
        std::fs::write(reg.join("probes.json"), doc("probes", probes.into())).unwrap();
        std::fs::write(reg.join("profiles.json"), doc("profiles", profiles)).unwrap();
        let plan = serde_json::json!({
            "schema_version": 1,
            "plan_id": "gen",
            "kind": "experiment",
            "registry_id": "gen",
            "profiles": names,
            "scenarios": scenarios,
            "lanes": {"baseline": false, "scenario": true, "oracle": true},
        });
        std::fs::write(p.path("plans/gen/plan.json"), plan.to_string()).unwrap();
        let mut bundles = Vec::new();
        for (out, extra) in [("out-s", None), ("out-g", Some("--gather-results"))] {
            let mut args = vec!["run", "--plan", "plans/gen/plan.json", "--out", out, "-q"];
            args.extend(extra);
            let ran = p.nx(&args);
            assert!(
                ran.status == 0 || ran.status == 1,
                "seed {seed:x} {out}: {}",
                ran.stderr
            );
            bundles.push(crate::util::latest_in(&p.path(out)));
        }
        for f in ["oracle_results.jsonl", "path_witnesses.jsonl"] {
            let (s, g) = (steady_items(&bundles[0], f), steady_items(&bundles[1], f));
            let n = s.as_array().unwrap().len();
            assert!(
                n >= usize::try_from(3 * n_probes).unwrap(),
                "seed {seed:x} {f}: {n} items"
            );
            assert_eq!(s, g, "seed {seed:x}: {f}");
        }
        // Some verdicts allow and some deny: the plan is not one verdict repeated.
        let verdicts = steady_items(&bundles[0], "oracle_results.jsonl").to_string();
        assert!(verdicts.contains("\"decision\":\"deny\""), "seed {seed:x}");
        assert!(verdicts.contains("\"decision\":\"allow\""), "seed {seed:x}");
    }
}
