//! `run --shard K/N`, `merge-bundles` and `export`: shards of a 66-scenario plan merge into
//! what one run writes; incomplete, foreign, replayed and tampered shard sets are refused
//! with stable reasons; the exported Kubernetes Job runs as N local processes and merges
//! to the same result; the exported files validate against the Kubernetes and GitHub
//! workflow schemas of independent tools.
#![allow(
    clippy::many_single_char_names,
    clippy::similar_names,
    clippy::case_sensitive_file_extension_comparisons,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;
use serde_json::Value;

use crate::util::{Project, latest_in, nexusmon, python, read_json};

const PROFILES: [&str; 6] = [
    "system-ro",
    "workspace-confined",
    "system-noexec",
    "net-deny-all",
    "no-udp",
    "ipc-scoped",
];
const PROBES: [&str; 11] = [
    "read-etc-hostname",
    "read-os-release",
    "write-scratch-file",
    "create-ws-file",
    "exec-cat-hostname",
    "list-etc",
    "mkdir-ws",
    "exec-true",
    "stat-etc-hostname",
    "access-etc-hostname",
    "chdir-etc",
];

/// A plan of `profiles` × `probes`, every scenario expecting `allow` but the first, which
/// expects `first` (an edit changes it, and so the plan digest).
fn plan(id: &str, profiles: &[&str], probes: &[&str], first: &str) -> String {
    let mut scenarios = serde_json::Map::new();
    for (i, p) in profiles.iter().enumerate() {
        let mut m = serde_json::Map::new();
        for (j, q) in probes.iter().enumerate() {
            let e = if i == 0 && j == 0 { first } else { "allow" };
            m.insert((*q).to_string(), Value::String(e.into()));
        }
        scenarios.insert((*p).to_string(), Value::Object(m));
    }
    serde_json::to_string_pretty(&serde_json::json!({
        "schema_version": 1,
        "plan_id": id,
        "kind": "experiment",
        "description": "sharding fixture",
        "registry_id": "linux-core",
        "profiles": profiles,
        "scenarios": scenarios,
        "lanes": {"baseline": true, "scenario": true, "oracle": true},
        "execution": {"timeout_ms": 5000, "retries": 0}
    }))
    .unwrap()
}

fn write(p: &Project, rel: &str, text: &str) {
    let f = p.path(rel);
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(f, text).unwrap();
}

/// Every member the index of `b` lists, normalised: run ids, digests, temp paths, times
/// and process ids (JSON keys that hold durations, sizes of memory, clock times or pids,
/// and `… ms`/`… KiB` figures in text) and, in `run_manifest.json`, the two fields a merge writes
/// differently by design (`command_line`, the merge's `shards`).
fn normalised(b: &Path) -> Vec<(String, String)> {
    const VOLATILE: [&str; 12] = [
        "wall_us",
        "user_us",
        "sys_us",
        "max_rss_kib",
        "runner_max_rss_kib",
        "started_at",
        "finished_at",
        "sealed_at",
        "time_ms",
        "pid",
        "serial",
        "RUNNER_PID",
    ];
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in VOLATILE {
                    if m.contains_key(k) {
                        m.insert(k.into(), Value::Null);
                    }
                }
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let text_res = [
        (
            Regex::new(r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}").unwrap(),
            "[RUN_ID]",
        ),
        (Regex::new(r"[0-9a-f]{64}").unwrap(), "[B3]"),
        (Regex::new(r"/tmp/\.tmp[A-Za-z0-9]+").unwrap(), "[TMP]"),
        // Every unit the summary's table uses: a lane's sum of CPU times can be a few µs
        // (or 0 µs) now that a builtin child costs little.
        (
            Regex::new(r"\d+(\.\d+)? (µs|ms|KiB|MiB|GiB|s)\b").unwrap(),
            "[N]",
        ),
        (
            Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").unwrap(),
            "[TIME]",
        ),
    ];
    let index = read_json(&b.join("artifact_index.json"));
    let mut out = Vec::new();
    for e in index["entries"].as_array().unwrap() {
        let rel = e["path"].as_str().unwrap().to_string();
        let raw = std::fs::read_to_string(b.join(&rel)).unwrap();
        let mut text = if rel.ends_with(".json") || rel.ends_with(".jsonl") {
            // Result lines name their shared values by a digest of their content, which
            // holds the scratch root (each run's own): lines are compared with the values
            // expanded, and `shared_values.json` as the sorted set of its values.
            let docs: Vec<Value> = if rel.ends_with(".jsonl") && rel != "kernel_denials.jsonl" {
                crate::util::results(b, &rel).as_array().unwrap().clone()
            } else if rel == "shared_values.json" {
                let v: Value = serde_json::from_str(&raw).unwrap();
                v["values"].as_object().unwrap().values().cloned().collect()
            } else if rel.ends_with(".jsonl") {
                raw.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect()
            } else {
                vec![serde_json::from_str(&raw).unwrap()]
            };
            docs.into_iter()
                .map(|mut v| {
                    walk(&mut v);
                    if rel == "run_manifest.json"
                        && let Some(m) = v.as_object_mut()
                    {
                        m.remove("command_line");
                        m.remove("shards");
                    }
                    if rel == "shared_values.json" {
                        serde_json::to_string(&v).unwrap()
                    } else {
                        serde_json::to_string_pretty(&v).unwrap()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            raw
        };
        for (re, to) in &text_res {
            text = re.replace_all(&text, *to).into_owned();
        }
        if rel == "shared_values.json" {
            let mut values: Vec<&str> = text.lines().collect();
            values.sort_unstable();
            text = values.join("\n");
        }
        out.push((rel, text));
    }
    out
}

#[track_caller]
fn assert_same_results(single: &Path, merged: &Path) {
    let a = normalised(single);
    let b = normalised(merged);
    let names = |v: &[(String, String)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "the same files, in the same order");
    assert!(
        a.len() >= 12,
        "every result file is compared: {:?}",
        names(&a)
    );
    for ((f, x), (_, y)) in a.iter().zip(&b) {
        let first = x
            .lines()
            .zip(y.lines())
            .position(|(l, r)| l != r)
            .unwrap_or(0);
        let at = |t: &str| {
            t.lines()
                .skip(first.saturating_sub(3))
                .take(7)
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(
            x == y,
            "{f} differs after normalisation at line {}:\n--- single\n{}\n--- merged\n{}",
            first + 1,
            at(x),
            at(y)
        );
    }
}

/// The stable refusal word of a merge's error.
fn refusal(stderr: &str) -> Option<String> {
    let i = stderr.find("merge refused [")? + "merge refused [".len();
    Some(stderr[i..].split(']').next()?.to_string())
}

#[test]
fn three_hash_shards_merge_into_what_one_run_writes_and_incomplete_or_foreign_sets_are_named() {
    let p = Project::shipped();
    write(
        &p,
        "plans/s66/plan.json",
        &plan("s66", &PROFILES, &PROBES, "allow"),
    );
    let single = p.nx(&[
        "run",
        "--plan",
        "plans/s66/plan.json",
        "--out",
        "single",
        "-q",
    ]);
    assert!([0, 1].contains(&single.status), "{}", single.stderr);
    let sb = latest_in(&p.path("single"));
    assert_eq!(
        read_json(&sb.join("run_manifest.json"))["selected"]
            .as_array()
            .unwrap()
            .len(),
        66
    );
    let mut parts = Vec::new();
    for k in 1..=3 {
        let out = format!("out-{k}");
        let r = p.nx(&[
            "run",
            "--plan",
            "plans/s66/plan.json",
            "--out",
            &out,
            "--shard",
            &format!("{k}/3"),
            "-q",
        ]);
        assert!([0, 1].contains(&r.status), "{}", r.stderr);
        let m = read_json(&latest_in(&p.path(&out)).join("run_manifest.json"));
        let sh = &m["shard"];
        assert_eq!((sh["k"].as_u64(), sh["n"].as_u64()), (Some(k), Some(3)));
        assert_eq!(sh["strategy"], "hash");
        assert_eq!(sh["selected_count"], 66);
        assert_eq!(sh["plan_digest"], m["plan_digest"]["blake3"]);
        parts.push(m["selected"].as_array().unwrap().len());
    }
    assert_eq!(parts.iter().sum::<usize>(), 66, "{parts:?}");
    assert!(parts.iter().all(|n| *n > 0), "{parts:?}");

    let merged = p.nx(&[
        "merge-bundles",
        "--out",
        "merged",
        "out-1",
        "out-2",
        "out-3",
    ]);
    assert_eq!(merged.status, single.status, "{}", merged.stderr);
    let mb = latest_in(&p.path("merged"));
    p.nx(&["validate-bundle", "--bundle", "merged"]).code(0);
    p.emit(&mb, "promotion/merged.json", &["--require-promotable"])
        .code(0);
    assert_eq!(
        p.json("promotion/merged.json")["promotability"]["promotable"],
        true
    );
    let shards = read_json(&mb.join("run_manifest.json"))["shards"].clone();
    assert_eq!(shards.as_array().unwrap().len(), 3);
    for (i, s) in shards.as_array().unwrap().iter().enumerate() {
        assert_eq!(s["k"], i as u64 + 1);
        let b = latest_in(&p.path(&format!("out-{}", i + 1)));
        let idx = read_json(&b.parent().unwrap().join("LATEST"));
        assert_eq!(s["artifact_index_blake3"], idx["artifact_index_blake3"]);
        assert_eq!(s["promotable"], true);
        assert!(!s["host"].as_str().unwrap().is_empty());
    }
    assert_same_results(&sb, &mb);
    let d = p.nx(&["diff", "single", "merged"]);
    assert!(d.stdout.contains("no changes"), "{}{}", d.stdout, d.stderr);
    p.nx(&["report", "--bundle", "merged", "--format", "markdown"])
        .code(0);

    // Two of three: the missing one is named, with the command that reruns it.
    let r = p.nx(&["merge-bundles", "--out", "m2", "out-1", "out-3"]);
    assert_eq!(r.status, 1);
    assert_eq!(
        refusal(&r.stderr).as_deref(),
        Some("shard-missing"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("shard 2/3 missing"), "{}", r.stderr);
    assert!(
        r.stderr.contains("--shard 2/3") && r.stderr.contains("--out out-2"),
        "{}",
        r.stderr
    );
    assert!(
        !p.path("m2").join("LATEST").exists(),
        "a refusal writes nothing"
    );

    // The exported Kubernetes Job, simulated: N processes with JOB_COMPLETION_INDEX.
    let kdir = p.path("k8s");
    p.nx(&[
        "export",
        "kubernetes",
        "--plan",
        "plans/s66/plan.json",
        "--shards",
        "3",
        "--image",
        "registry.example/nexusmon:1",
        "--out",
        "k8s",
    ])
    .code(0);
    let job = read_json(&kdir.join("job.json"));
    let digest = read_json(&sb.join("run_manifest.json"))["plan_digest"]["blake3"].clone();
    assert_eq!(
        job["metadata"]["annotations"]["nexusmon.dev/plan-digest"],
        digest
    );
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let argv: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let kout = p.path("kube-out");
    let pod = |i: u32| {
        let path = format!(
            "{}:{}",
            crate::util::bin().parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = nexusmon(p.root());
        c.env("PATH", path)
            .env("JOB_COMPLETION_INDEX", i.to_string())
            .env("NEXUSMON_OUT", &kout);
        // The container's command line (not the binary itself), with the harness's
        // environment and the Job's index.
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(p.root())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    };
    let children: Vec<_> = (0..3).map(|i| pod(i).spawn().unwrap()).collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            [Some(0), Some(1)].contains(&out.status.code()),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let inputs: Vec<String> = (1..=3)
        .map(|k| kout.join(format!("shard-{k}")).display().to_string())
        .collect();
    let mut args = vec!["merge-bundles", "--out", "kube-merged"];
    args.extend(inputs.iter().map(String::as_str));
    assert_eq!(p.nx(&args).status, single.status);
    assert_same_results(&sb, &latest_in(&p.path("kube-merged")));

    // Duration sharding from the single run's recorded times: every scenario known.
    p.nx(&[
        "run",
        "--plan",
        "plans/s66/plan.json",
        "--out",
        "dur-2",
        "--shard",
        "2/3",
        "--shard-strategy",
        "duration",
        "--durations",
        "single",
        "-q",
    ]);
    let d = read_json(&latest_in(&p.path("dur-2")).join("run_manifest.json"))["shard"].clone();
    assert_eq!(d["strategy"], "duration");
    assert_eq!(
        (
            d["durations"]["known"].as_u64(),
            d["durations"]["guessed"].as_u64()
        ),
        (Some(66), Some(0))
    );

    // A shard of the edited plan: refused, naming both digests.
    write(
        &p,
        "plans/s66/plan.json",
        &plan("s66", &PROFILES, &PROBES, "deny"),
    );
    p.nx(&[
        "run",
        "--plan",
        "plans/s66/plan.json",
        "--out",
        "edited-1",
        "--shard",
        "1/3",
        "-q",
    ]);
    let edited = read_json(&latest_in(&p.path("edited-1")).join("run_manifest.json"))
        ["plan_digest"]["blake3"]
        .clone();
    assert_ne!(edited, digest);
    let r = p.nx(&["merge-bundles", "--out", "m3", "edited-1", "out-2", "out-3"]);
    assert_eq!(r.status, 1);
    assert_eq!(
        refusal(&r.stderr).as_deref(),
        Some("plan-digest-differs"),
        "{}",
        r.stderr
    );
    for d in [&edited, &digest] {
        assert!(r.stderr.contains(d.as_str().unwrap()), "{}", r.stderr);
    }
    // And the stale export refuses to run the edited plan.
    let out = pod(0).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--expect-plan-digest"));
}

/// A tiny deterministic generator (the seed is in every failure message).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn generated_shard_sets_merge_exactly_when_they_are_one_complete_consistent_selection() {
    let p = Project::shipped();
    let profiles = ["system-ro", "net-deny-all"];
    let probes = [
        "read-etc-hostname",
        "read-os-release",
        "exec-true",
        "list-etc",
        "stat-etc-hostname",
        "chdir-etc",
    ];
    // Plan A and plan B: the same plan id and scenario names, another expectation.
    let mut pool: Vec<(String, &str)> = Vec::new();
    let shard = |out: &str, spec: &str| {
        p.nx(&[
            "run",
            "--plan",
            "plans/sh/plan.json",
            "--out",
            out,
            "--shard",
            spec,
            "--allow-empty-shard",
            "-q",
        ]);
        assert!(p.path(out).join("LATEST").exists(), "{out}");
    };
    write(
        &p,
        "plans/sh/plan.json",
        &plan("sh", &profiles, &probes, "allow"),
    );
    for (out, spec, class) in [
        ("a1", "1/3", "a1"),
        ("a2", "2/3", "a2"),
        ("a2x", "2/3", "a2"),
        ("a3", "3/3", "a3"),
        ("h1", "1/2", "other-n"),
    ] {
        shard(out, spec);
        pool.push((out.into(), class));
    }
    write(
        &p,
        "plans/sh/plan.json",
        &plan("sh", &profiles, &probes, "deny"),
    );
    for (out, spec, class) in [
        ("b1", "1/3", "b1"),
        ("b2", "2/3", "b2"),
        ("b3", "3/3", "b3"),
    ] {
        shard(out, spec);
        pool.push((out.into(), class));
    }
    // A forged shard: a2's bundle with one result byte changed (its index no longer
    // matches), and a2 replayed under another directory name (same index digest).
    crate::util::copy_dir(&p.path("a2"), &p.path("forged"));
    let fb = latest_in(&p.path("forged"));
    let f = fb.join("summary.json");
    let mut perms = std::fs::metadata(&f).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&f, perms).unwrap();
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replacen("\"status\"", "\"Status\"", 1);
    std::fs::write(&f, text).unwrap();
    pool.push(("forged".into(), "forged"));
    crate::util::copy_dir(&p.path("a2"), &p.path("replay"));
    pool.push(("replay".into(), "a2-replay"));
    // A re-sealed forgery: a1's bundle claiming to be shard 2, its index rewritten by
    // `reindex-bundle --repair` so that it validates.
    crate::util::copy_dir(&p.path("a1"), &p.path("resealed"));
    let rb = latest_in(&p.path("resealed"));
    let mf = rb.join("run_manifest.json");
    let mut perms = std::fs::metadata(&mf).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&mf, perms).unwrap();
    let mut m = read_json(&mf);
    m["shard"]["k"] = 2.into();
    std::fs::write(&mf, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    p.nx(&["reindex-bundle", "--bundle", "resealed", "--repair"])
        .code(0);
    p.nx(&["validate-bundle", "--bundle", "resealed"]).code(0);
    pool.push(("resealed".into(), "forged-k"));

    let valid = |set: &[usize]| -> bool {
        let classes: Vec<&str> = set.iter().map(|i| pool[*i].1).collect();
        let mut sorted = classes.clone();
        sorted.sort_unstable();
        // a2-replay is a2 (the same sealed bundle): valid in place of a2, never beside it.
        let as_a: Vec<&str> = sorted
            .iter()
            .map(|c| if *c == "a2-replay" { "a2" } else { *c })
            .collect();
        let distinct: BTreeSet<&usize> = set.iter().collect();
        distinct.len() == set.len() && (as_a == ["a1", "a2", "a3"] || sorted == ["b1", "b2", "b3"])
    };
    let seed: u64 = std::env::var("NEXUSMON_SHARD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(17);
    let mut rng = Lcg(seed);
    let idx = |name: &str| pool.iter().position(|(n, _)| n == name).unwrap();
    let mut sets: Vec<Vec<usize>> = vec![
        vec![idx("a1"), idx("a2"), idx("a3")],
        vec![idx("a3"), idx("a2x"), idx("a1")],
        vec![idx("a1"), idx("replay"), idx("a3")],
        vec![idx("b1"), idx("b2"), idx("b3")],
        vec![idx("a1"), idx("b2"), idx("a3")],
        vec![idx("a1"), idx("a2"), idx("a2x"), idx("a3")],
        vec![idx("a1"), idx("a2"), idx("replay"), idx("a3")],
        vec![idx("a1"), idx("forged"), idx("a3")],
        vec![idx("a1"), idx("resealed"), idx("a3")],
        vec![idx("resealed"), idx("a2"), idx("a3")],
        vec![idx("a1"), idx("a3")],
    ];
    for _ in 0..30 {
        let n = 1 + (rng.next() % 5) as usize;
        sets.push((0..n).map(|_| (rng.next() as usize) % pool.len()).collect());
    }
    let mut accepted = 0;
    for (i, set) in sets.iter().enumerate() {
        let out = format!("m{i}");
        let mut args = vec!["merge-bundles".to_string(), "--out".into(), out.clone()];
        args.extend(set.iter().map(|j| pool[*j].0.clone()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = p.nx(&argv);
        let merged = p.path(&out).join("LATEST").exists();
        let names: Vec<&str> = set.iter().map(|j| pool[*j].0.as_str()).collect();
        assert_eq!(
            merged,
            valid(set),
            "seed {seed}, set {names:?}: merged={merged}\n{}",
            r.stderr
        );
        if merged {
            accepted += 1;
            assert!([0, 1].contains(&r.status), "{}", r.stderr);
        } else {
            assert_eq!(r.status, 1, "{names:?}: {}", r.stderr);
            assert!(
                refusal(&r.stderr).is_some(),
                "{names:?}: a stable reason\n{}",
                r.stderr
            );
        }
    }
    assert!(accepted >= 4, "the valid sets were merged ({accepted})");
}

#[test]
fn exports_validate_against_the_kubernetes_and_github_workflow_schemas_and_carry_the_plan_digest() {
    let p = Project::shipped();
    for (what, extra) in [
        (
            "kubernetes",
            vec![
                "--image",
                "registry.example/nexusmon:1",
                "--namespace",
                "ci",
            ],
        ),
        ("github-matrix", vec![]),
        ("gitlab", vec![]),
    ] {
        let mut args = vec![
            "export",
            what,
            "--plan",
            "plans/quickstart/plan.json",
            "--shards",
            "4",
            "--out",
            what,
        ];
        args.extend(extra);
        p.nx(&args).code(0);
    }
    let loaded = p.plan("quickstart");
    let digest = loaded.digest.blake3.clone();
    for f in [
        "kubernetes/job.json",
        "github-matrix/nexusmon-shards.yml",
        "gitlab/nexusmon-shards.gitlab-ci.yml",
    ] {
        let text = std::fs::read_to_string(p.path(f)).unwrap();
        assert!(text.contains(&digest), "{f} carries the plan digest");
        assert!(text.contains("--expect-plan-digest"), "{f}");
    }
    assert_eq!(
        p.json("github-matrix/matrix.json")["shard"],
        serde_json::json!([1, 2, 3, 4])
    );
    // Independent validators with their own offline schemas: kubernetes-validate (the
    // Kubernetes 1.37 OpenAPI-derived JSON schemas, strict: no unknown field) and
    // check-jsonschema's vendored GitHub workflow and GitLab CI schemas. Each is also
    // shown a broken copy, which it must reject.
    let script = r#"
import copy, json, subprocess, sys, tempfile, os
import kubernetes_validate
job = json.load(open(sys.argv[1]))
kubernetes_validate.validate(job, "1.37.0", strict=True)
bad = copy.deepcopy(job); bad["spec"]["completionMode"] = 7
try:
    kubernetes_validate.validate(bad, "1.37.0", strict=True)
    sys.exit("a broken Job validated")
except kubernetes_validate.ValidationError:
    pass
def check(schema, path):
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, path], capture_output=True, text=True)
for schema, path, key in [("vendor.github-workflows", sys.argv[2], "jobs"), ("vendor.gitlab-ci", sys.argv[3], "nexusmon-shard")]:
    r = check(schema, path)
    if r.returncode != 0:
        sys.exit(f"{path}: {r.stdout}{r.stderr}")
    import yaml
    doc = yaml.safe_load(open(path))
    if key == "jobs":
        del doc["jobs"]["shard"]["runs-on"]
    else:
        doc[key]["parallel"] = "many"
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as t:
        json.dump(doc, t)
    r = check(schema, t.name)
    os.unlink(t.name)
    if r.returncode == 0:
        sys.exit(f"a broken copy of {path} validated against {schema}")
print("ok")
"#;
    let out = python(&["kubernetes_validate", "check_jsonschema", "yaml"], script)
        .arg(p.path("kubernetes/job.json"))
        .arg(p.path("github-matrix/nexusmon-shards.yml"))
        .arg(p.path("gitlab/nexusmon-shards.gitlab-ci.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_empty_shard_is_a_sealed_bundle_that_says_so_and_exits_6_unless_allowed() {
    let p = Project::shipped();
    // quickstart has 9 scenarios: of 40 hash shards most select nothing.
    let plan_ids: Vec<String> = p
        .plan("quickstart")
        .plan
        .scenario_specs()
        .iter()
        .map(|s| s.scenario_id.clone())
        .collect();
    let k = (1..=40)
        .find(|k| {
            plan_ids
                .iter()
                .all(|id| nexusmon::exec::shard::hash_shard(id, 40) != *k)
        })
        .unwrap();
    let spec = format!("{k}/40");
    let r = p.run("quickstart", &["--shard", &spec]);
    r.code(6);
    let b = p.latest();
    p.nx(&["validate-bundle", "--bundle", "out"]).code(0);
    let s = read_json(&b.join("summary.json"));
    assert_eq!(s["exit_code"], 6);
    assert!(
        s["exit_reason"]
            .as_str()
            .unwrap()
            .contains(&format!("shard {spec}"))
    );
    assert_eq!(
        read_json(&b.join("run_manifest.json"))["shard"]["part_count"],
        0
    );
    p.run("quickstart", &["--shard", &spec, "--allow-empty-shard"])
        .code(0);
}

#[test]
fn an_interrupted_shard_is_refused_unless_allowed_and_then_the_merge_is_not_promotable() {
    let p = Project::shipped();
    // One profile, three probes sleeping 600 s (killed by the interrupt): the run is still
    // in its lanes when the signal arrives right after it started, however loaded the host.
    write(
        &p,
        "registry/slow/probes.json",
        r#"{"schema_version": 1, "registry_id": "slow", "probes": {
            "nap-a": {"operation": "exec", "driver": "exec", "argv": ["/usr/bin/sleep", "600"], "timeout_ms": 700000},
            "nap-b": {"operation": "exec", "driver": "exec", "argv": ["/usr/bin/sleep", "600"], "timeout_ms": 700000},
            "nap-c": {"operation": "exec", "driver": "exec", "argv": ["/usr/bin/sleep", "600"], "timeout_ms": 700000}}}"#,
    );
    write(
        &p,
        "registry/slow/profiles.json",
        r#"{"schema_version": 1, "registry_id": "slow", "profiles": {"usr-ro": {
            "description": "Read and run /usr.",
            "landlock": {"abi": 7, "fs": {"handle": "all", "allow": [
                {"path": "/usr", "access": ["read", "exec"]},
                {"path": "/etc/ld.so.cache", "access": ["read"]}]}}}}}"#,
    );
    write(
        &p,
        "plans/slow/plan.json",
        r#"{"schema_version": 1, "plan_id": "slow", "kind": "experiment", "registry_id": "slow",
            "profiles": ["usr-ro"], "scenarios": {"usr-ro": {"nap-a": "allow", "nap-b": "allow", "nap-c": "allow"}},
            "lanes": {"baseline": true, "scenario": true, "oracle": true}}"#,
    );
    let mut child = nexusmon(p.root())
        .args([
            "run",
            "--plan",
            "plans/slow/plan.json",
            "--out",
            "s1",
            "--shard",
            "1/1",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.contains("run-start"), "{first}");
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let r = p.nx(&["merge-bundles", "--out", "m", "s1"]);
    assert_eq!(
        refusal(&r.stderr).as_deref(),
        Some("shard-incomplete"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("interrupted") && r.stderr.contains("--shard 1/1"),
        "{}",
        r.stderr
    );
    assert!(!p.path("m").join("LATEST").exists());

    let r = p.nx(&["merge-bundles", "--out", "m", "--allow-incomplete", "s1"]);
    assert!(p.path("m").join("LATEST").exists(), "{}", r.stderr);
    p.nx(&["validate-bundle", "--bundle", "m"]).code(0);
    let m = read_json(&latest_in(&p.path("m")).join("run_manifest.json"));
    assert_eq!(m["shards"][0]["status"], "interrupted");
    assert_eq!(m["shards"][0]["promotable"], false);
    let b = latest_in(&p.path("m"));
    p.emit(&b, "promotion/m.json", &[]).code(0);
    let reasons = p.json("promotion/m.json")["promotability"]["reasons"].clone();
    assert!(
        reasons
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "shard-incomplete"),
        "{reasons}"
    );
    p.emit(&b, "promotion/m2.json", &["--require-promotable"])
        .code(1);
}

#[test]
fn signed_shards_merge_under_a_trust_file_and_a_rogue_or_unsigned_shard_is_refused() {
    let p = Project::shipped();
    let runner = crate::util::ssh_keygen(p.root(), "runner", "ed25519");
    let rogue = crate::util::ssh_keygen(p.root(), "rogue", "ed25519");
    let trust = p.path("trust");
    std::fs::write(&trust, crate::util::runner_signer_line("ci", &runner, "")).unwrap();
    let shard = |out: &str, k: u32, key: Option<&Path>| {
        let spec = format!("{k}/2");
        let mut args = vec![
            "run".to_string(),
            "--plan".into(),
            "plans/quickstart/plan.json".into(),
            "--out".into(),
            out.into(),
            "--shard".into(),
            spec,
            "--allow-empty-shard".into(),
            "-q".into(),
        ];
        if let Some(k) = key {
            args.extend(["--sign-with".to_string(), k.display().to_string()]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!([0, 1].contains(&p.nx(&argv).status));
    };
    shard("s1", 1, Some(&runner));
    shard("s2", 2, Some(&runner));
    shard("rogue2", 2, Some(&rogue));
    shard("plain2", 2, None);
    let t = trust.display().to_string();
    let key = runner.display().to_string();
    let ok = p.nx(&[
        "merge-bundles",
        "--out",
        "m",
        "--trust",
        &t,
        "--sign-with",
        &key,
        "s1",
        "s2",
    ]);
    assert!(p.path("m").join("LATEST").exists(), "{}", ok.stderr);
    let v = p.nx(&["--json", "validate-bundle", "--bundle", "m", "--trust", &t]);
    v.code(0);
    let report: Value = serde_json::from_str(&v.stdout).unwrap();
    assert!(
        report["signed_by"]
            .as_str()
            .is_some_and(|s| s.starts_with("SHA256:")),
        "{report}"
    );

    let r = p.nx(&[
        "merge-bundles",
        "--out",
        "m2",
        "--trust",
        &t,
        "s1",
        "rogue2",
    ]);
    assert_eq!(
        refusal(&r.stderr).as_deref(),
        Some("bundle-invalid"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("rogue2"), "{}", r.stderr);
    let r = p.nx(&["merge-bundles", "--out", "m3", "s1", "plain2"]);
    assert_eq!(
        refusal(&r.stderr).as_deref(),
        Some("signature-mixed"),
        "{}",
        r.stderr
    );
    assert!(!p.path("m2").join("LATEST").exists() && !p.path("m3").join("LATEST").exists());
}
