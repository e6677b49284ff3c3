//! The oracle against the kernel, differentially: from a seed, random profiles (random
//! rights on random subsets of a fixture tree with nested directories, symlinks into and
//! out of granted directories, a dangling symlink, `..` and `//` paths; partial handled
//! sets and lower ABI pins; random port lists; scopes; the seccomp UDP group) × random
//! builtin probes and programs run by the exec driver (symlinked, `#!` scripts), run by the real `nexusmon run`: the
//! scenario lane is the builtin helper or the program restricted by the kernel, the oracle
//! lane the static prediction from the same compiled profile. The pass condition is 0 disagreements; a disagreement is shrunk (rules, access
//! words, handled rights, ports and scopes removed while it persists) and printed as the
//! minimal profile and probe, with both answers and the oracle's checks.
//!
//! A disagreement is a scenario whose kernel outcome is `allow` or `deny` and whose oracle
//! decision says the other (`not-enforceable` counts as allow). Scenarios the kernel ends in
//! an error (a missing file, a non-empty directory: the policy was not what decided) are
//! counted as inconclusive, and the generator keeps them a minority so the test cannot pass
//! vacuously; the baseline lane runs too and must never deny (every probe is built so that
//! only the policy can refuse it).
//!
//! The suite runs 3 seeds × 1,000 scenarios. A longer run by hand:
//! `NEXUSMON_DIFF_SEEDS=50 NEXUSMON_DIFF_SCENARIOS=2000 cargo test --features fault-injection
//! --test integration differential -- --nocapture` (`NEXUSMON_DIFF_SEED` sets the first seed;
//! `NEXUSMON_DIFF_KEEP=1` keeps the projects and prints their bundles).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::results;
use crate::util::{Project, latest_bundle};

use crate::util::Rng;

/// The fixture tree every probe creates in its scratch directory.
fn fixtures() -> Vec<Value> {
    let mut f = Vec::new();
    for d in ["a", "a/b", "a/b/c", "a/e1", "d", "d/e", "e2"] {
        f.push(json!({"kind": "dir", "path": format!("${{SCRATCH}}/{d}")}));
    }
    for file in ["a/f", "a/b/g", "a/b/c/h", "d/e/i", "d/k", "t"] {
        f.push(json!({"kind": "file", "path": format!("${{SCRATCH}}/{file}"), "content": "x"}));
    }
    f.push(json!({"kind": "file", "path": "${SCRATCH}/a/x.sh",
        "content": "#!/bin/sh\nexit 0\n", "mode": "0755"}));
    for (link, to) in [
        ("l_in", "a/b"),             // relative, into the tree
        ("l_abs", "${SCRATCH}/d"),   // absolute, into the tree
        ("l_file", "a/f"),           // to a file
        ("d/up", "../a"),            // with `..`
        ("l_out", "/usr/bin"),       // out of the scratch directory
        ("l_etc", "/etc"),           // out, to a directory no rule of the tree covers
        ("a/true", "/usr/bin/true"), // to a program outside
        ("dangling", "a/nowhere/x"), // dangling
    ] {
        f.push(json!({"kind": "symlink", "path": format!("${{SCRATCH}}/{link}"), "to": to}));
    }
    f
}

/// The tree on disk (to pick paths from and to keep writes inside it), as a probe sees it.
fn model_tree(dir: &Path) {
    for v in fixtures() {
        let path = dir.join(
            v["path"]
                .as_str()
                .unwrap()
                .trim_start_matches("${SCRATCH}/"),
        );
        match v["kind"].as_str().unwrap() {
            "dir" => std::fs::create_dir_all(&path).unwrap(),
            "file" => std::fs::write(&path, v["content"].as_str().unwrap()).unwrap(),
            _ => {
                let to = v["to"]
                    .as_str()
                    .unwrap()
                    .replace("${SCRATCH}", dir.to_str().unwrap());
                std::os::unix::fs::symlink(to, &path).unwrap();
            }
        }
    }
}

/// What a generated path may be used for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Anything that exists or not (reads: follows the final link).
    Any,
    /// A writing operation that follows the final link: it must resolve inside the tree.
    WriteFollow,
    /// An operation on the final name (create, remove, rename): its parent must resolve
    /// inside the tree.
    WriteParent,
}

/// What the final component of a generated path is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Any entry.
    Any,
    /// A file (or a symlink to one).
    File,
    /// A directory (or a symlink to one).
    Dir,
    /// An empty directory.
    EmptyDir,
    /// A symlink.
    Link,
    /// A new name.
    New,
}

fn is_kind(path: &Path, kind: Kind) -> bool {
    match kind {
        Kind::Any | Kind::New => true,
        Kind::File => path.is_file(),
        Kind::Dir => path.is_dir(),
        Kind::EmptyDir => {
            path.is_dir()
                && !path.is_symlink()
                && std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
        }
        Kind::Link => path.is_symlink(),
    }
}

/// A random path into the tree: a walk from the scratch root through directories, symlinks
/// to directories and `..`, then a final entry of `kind` (or a new name), sometimes with
/// `//`.
fn tree_path(rng: &mut Rng, model: &Path, want: Want, kind: Kind) -> String {
    let new_name = kind == Kind::New;
    for _ in 0..50 {
        let mut rel: Vec<String> = Vec::new();
        let mut depth = 0usize;
        for _ in 0..rng.below(4) {
            let here = model.join(rel.join("/"));
            let mut dirs: Vec<String> = std::fs::read_dir(&here)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n != "l_out" && n != "l_etc")
                        .collect()
                })
                .unwrap_or_default();
            dirs.sort();
            if depth > 0 && rng.chance(25) {
                rel.push("..".into());
                depth -= 1;
            } else if !dirs.is_empty() {
                rel.push(rng.pick(&dirs).clone());
                depth += 1;
            }
        }
        let here = model.join(rel.join("/"));
        let mut entries: Vec<String> = std::fs::read_dir(&here)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| is_kind(&e.path(), kind))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        entries.sort();
        if new_name {
            rel.push(format!("n{}", rng.below(1000)));
        } else if entries.is_empty() {
            continue;
        } else {
            rel.push(rng.pick(&entries).clone());
        }
        let sep = if rng.chance(15) { "//" } else { "/" };
        let text = rel.join(sep);
        let full = model.join(&text);
        let ok = match want {
            Want::Any => true,
            Want::WriteFollow => {
                let r = nexusmon::sandbox::paths::resolve(&full, model, true);
                r.canonical.starts_with(model) && r.canonical != model
            }
            Want::WriteParent => {
                let r = nexusmon::sandbox::paths::resolve(&full, model, false);
                r.canonical.starts_with(model)
                    && r.canonical.parent().is_some_and(|p| p.starts_with(model))
            }
        };
        if ok {
            return format!("${{SCRATCH}}/{text}");
        }
    }
    "${SCRATCH}/t".into()
}

const HOST_READS: &[&str] = &[
    "/etc/hostname",
    "/etc",
    "/usr/bin/true",
    "/usr/bin",
    "/usr/lib/os-release",
    "/usr/bin/../lib/os-release",
    "//usr//lib/./os-release",
    "/proc/self/status",
    "/proc/self",
    "${SCRATCH}/l_out/true",
    "${SCRATCH}/l_etc/hostname",
    "${SCRATCH}",
    "/proc/self/cwd",
];

const EXEC_TARGETS: &[&str] = &[
    "${SCRATCH}/a/x.sh",
    "${SCRATCH}/a/true",
    "${SCRATCH}/l_out/true",
    "${SCRATCH}/d/up/x.sh",
    "${SCRATCH}/a/b/../x.sh",
    "/usr/bin/true",
    "/bin/true",
];

/// Programs an exec-driver probe runs (absolute: lint refuses a program that is not,
/// NX206, so a run never searches `PATH`): through a symlinked directory (`/bin`),
/// symlinks to a program in and out of the scratch tree, `#!` scripts (their interpreter
/// a symlink too, reached through `..`), the same program by several names.
const EXEC_PROGRAMS: &[&[&str]] = &[
    &["/bin/sh", "-c", "exit 0"],
    &["/usr/bin/true"],
    &["/bin/true"],
    &["${SCRATCH}/a/true"],
    &["${SCRATCH}/l_out/true"],
    &["${SCRATCH}/a/x.sh"],
    &["${SCRATCH}/d/up/x.sh"],
    &["${SCRATCH}/a/b/../x.sh"],
];

const CONNECT_PORTS: &[u16] = &[1, 9, 80, 8080, 44444];
const BIND_PORTS: &[u16] = &[0, 40001, 40002, 40003];

/// One random probe: mostly builtin operations, sometimes a program run by the exec
/// driver (the kernel's `execve` and the loader's reads against the oracle's program
/// resolution: PATH search, interpreters, libraries).
fn gen_probe(rng: &mut Rng, model: &Path) -> Value {
    if rng.chance(12) {
        let argv = *rng.pick(EXEC_PROGRAMS);
        // The loader that cannot read a library exits 127: the policy's denial too.
        return json!({"operation": "exec", "driver": "exec", "argv": argv,
            "deny_exit_codes": [127], "fixtures": fixtures(), "timeout_ms": 5000});
    }
    let ops = [
        "file-read",
        "file-read",
        "dir-list",
        "file-write",
        "file-truncate",
        "file-create",
        "file-create",
        "dir-create",
        "symlink-create",
        "file-remove",
        "dir-remove",
        "file-rename",
        "file-rename",
        "file-rename",
        "file-exec",
        "file-exec",
        "tcp-connect",
        "tcp-bind",
        "udp-send",
        "signal-send",
        "unix-abstract-connect",
        "file-stat",
        "file-access",
        "dir-chdir",
        "symlink-read",
        "file-chmod",
    ];
    let op = *rng.pick(&ops);
    let mut p = json!({"operation": op, "fixtures": fixtures(), "timeout_ms": 5000});
    // Mostly targets the operation can act on (so the policy is what decides), sometimes
    // anything (the kernel's own errors must not confuse the oracle either).
    let odd = rng.chance(10);
    let kind = |k: Kind| if odd { Kind::Any } else { k };
    let target = match op {
        "file-read" | "dir-list" | "file-stat" | "file-access" | "dir-chdir" | "symlink-read" => {
            let k = match op {
                "file-read" if rng.chance(80) => Kind::File,
                "dir-list" | "dir-chdir" => Kind::Dir,
                "symlink-read" => Kind::Link,
                _ => Kind::Any,
            };
            if rng.chance(25) {
                (*rng.pick(HOST_READS)).to_string()
            } else {
                tree_path(rng, model, Want::Any, kind(k))
            }
        }
        "file-write" | "file-truncate" | "file-chmod" => {
            tree_path(rng, model, Want::WriteFollow, kind(Kind::File))
        }
        "file-create" | "dir-create" | "symlink-create" => {
            tree_path(rng, model, Want::WriteParent, kind(Kind::New))
        }
        "file-remove" => tree_path(rng, model, Want::WriteParent, kind(Kind::File)),
        "dir-remove" => tree_path(rng, model, Want::WriteParent, kind(Kind::EmptyDir)),
        "file-rename" => {
            let source = *rng.pick(&[Kind::File, Kind::File, Kind::Dir, Kind::Link]);
            let dest = if rng.chance(70) {
                Kind::New
            } else if source == Kind::Dir {
                Kind::EmptyDir
            } else {
                Kind::File
            };
            p["destination"] = tree_path(rng, model, Want::WriteParent, kind(dest)).into();
            tree_path(rng, model, Want::WriteParent, kind(source))
        }
        "file-exec" => (*rng.pick(EXEC_TARGETS)).to_string(),
        "tcp-connect" => format!("127.0.0.1:{}", rng.pick(CONNECT_PORTS)),
        "tcp-bind" => format!("127.0.0.1:{}", rng.pick(BIND_PORTS)),
        "udp-send" => "127.0.0.1:9".into(),
        "signal-send" => "${RUNNER_PID}".into(),
        "unix-abstract-connect" => {
            p["fixtures"].as_array_mut().unwrap().push(
                json!({"kind": "unix-abstract-listener", "name": "nexusmon-diff-${RUNNER_PID}"}),
            );
            "@nexusmon-diff-${RUNNER_PID}".into()
        }
        _ => unreachable!(),
    };
    // Half the probes whose target names no fixture have none: the oracle then predicts
    // them against the run's one shared empty directory instead of one of their own.
    let names_fixture = target.contains("${SCRATCH}/") || op == "unix-abstract-connect";
    if !names_fixture && rng.chance(50) {
        p["fixtures"] = json!([]);
    }
    p["target"] = target.into();
    p
}

const WORDS: &[(&str, u8)] = &[
    ("read", 1),
    ("write", 1),
    ("exec", 1),
    ("create", 1),
    ("remove", 1),
    ("rename", 2),
    ("ioctl-dev", 5),
];

const HOST_RULES: &[&str] = &[
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/etc",
    "/lib",
    "/bin",
    "/proc",
    "/",
    "/dev/null",
    "/etc/hostname",
    "/usr/bin/true",
];

/// One random profile.
fn gen_profile(rng: &mut Rng, model: &Path) -> Value {
    let abi: u8 = if rng.chance(75) {
        7
    } else {
        1 + u8::try_from(rng.below(7)).unwrap()
    };
    let words: Vec<&str> = WORDS
        .iter()
        .filter(|(_, a)| *a <= abi)
        .map(|(w, _)| *w)
        .collect();
    let handle: Value = if rng.chance(50) {
        "all".into()
    } else {
        let mut h = rng.subset(&words, 50);
        if h.is_empty() {
            h.push(*rng.pick(&words));
        }
        json!(h)
    };
    // Some profiles are workspaces: rules in the tree that tend to grant what renames,
    // creations and removals need, so those are allowed as often as denied.
    let workspace = rng.chance(40);
    let mut allow = Vec::new();
    for _ in 0..rng.below(7) {
        let in_tree = rng.chance(70);
        let path = if in_tree {
            if rng.chance(15) {
                "${SCRATCH}".to_string()
            } else {
                let k = if rng.chance(5) { Kind::New } else { Kind::Any };
                tree_path(rng, model, Want::Any, k)
            }
        } else {
            (*rng.pick(HOST_RULES)).to_string()
        };
        let mut access = rng.subset(&words, if workspace && in_tree { 65 } else { 45 });
        if access.is_empty() {
            access.push(*rng.pick(&words));
        }
        allow.push(json!({"path": path, "access": access}));
    }
    let mut ll = json!({
        "abi": abi,
        "fs": {"handle": handle, "allow": allow, "missing_paths": "skip"},
    });
    if abi >= 4 && rng.chance(40) {
        let mut net = serde_json::Map::new();
        if rng.chance(70) {
            net.insert("tcp_connect".into(), json!(rng.subset(CONNECT_PORTS, 40)));
        }
        if rng.chance(50) {
            net.insert("tcp_bind".into(), json!(rng.subset(BIND_PORTS, 40)));
        }
        if rng.chance(30) {
            net.insert("udp".into(), "deny".into());
        }
        ll["net"] = Value::Object(net);
    }
    if abi >= 6 && rng.chance(40) {
        ll["scope"] = json!(rng.subset(&["signal", "abstract-unix-socket"], 50));
    }
    json!({"landlock": ll})
}

/// The answers of one run: scenario id → (kernel outcome, errno, baseline outcome, oracle
/// decision, oracle reason, oracle checks).
struct Answer {
    kernel: String,
    errno: String,
    baseline: String,
    oracle: String,
    reason: String,
    checks: Value,
}

/// Write a project with these profiles and probes (every profile × every probe) and run
/// it; returns the answers by scenario id.
fn run_matrix(
    profiles: &[(String, Value)],
    probes: &[(String, Value)],
) -> BTreeMap<String, Answer> {
    let project = Project::empty();
    let p = &project;
    let reg = p.path("registry/diff");
    std::fs::create_dir_all(&reg).unwrap();
    std::fs::create_dir_all(p.path("plans/diff")).unwrap();
    let probes_map: serde_json::Map<String, Value> = probes.iter().cloned().collect();
    let profiles_map: serde_json::Map<String, Value> = profiles.iter().cloned().collect();
    let write = |path: PathBuf, v: &Value| {
        std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
    };
    write(
        reg.join("probes.json"),
        &json!({"schema_version": 1, "registry_id": "diff", "probes": probes_map}),
    );
    write(
        reg.join("profiles.json"),
        &json!({"schema_version": 1, "registry_id": "diff", "profiles": profiles_map}),
    );
    let mut scenarios = serde_json::Map::new();
    for (pid, _) in profiles {
        let row: serde_json::Map<String, Value> = probes
            .iter()
            .map(|(q, _)| (q.clone(), json!("allow")))
            .collect();
        scenarios.insert(pid.clone(), Value::Object(row));
    }
    let ids: Vec<&String> = profiles.iter().map(|(id, _)| id).collect();
    write(
        p.path("plans/diff/plan.json"),
        &json!({"schema_version": 1, "plan_id": "diff", "kind": "experiment",
                "registry_id": "diff", "profiles": ids, "scenarios": scenarios}),
    );
    let ran = p.run("diff", &["--quiet"]);
    assert!(
        ran.status == 0 || ran.status == 1,
        "the run itself failed (exit {}):\n{}\n{}",
        ran.status,
        ran.stdout,
        ran.stderr
    );
    let bundle = latest_bundle(p.root());
    let b = &bundle;
    if std::env::var_os("NEXUSMON_DIFF_KEEP").is_some() {
        progress(&format!("kept: {}", bundle.display()));
        std::mem::forget(project);
    }
    let lane = |file: &str| -> BTreeMap<String, Value> {
        results(b, file)
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["scenario_id"].as_str().unwrap().to_string(), o.clone()))
            .collect()
    };
    let kernel = lane("runtime_results.jsonl");
    let baseline = lane("baseline_results.jsonl");
    let oracle: BTreeMap<String, Value> = results(b, "oracle_results.jsonl")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["scenario_id"].as_str().unwrap().to_string(), v.clone()))
        .collect();
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    kernel
        .iter()
        .map(|(id, k)| {
            let o = &oracle[id];
            (
                id.clone(),
                Answer {
                    kernel: s(&k["outcome"]),
                    errno: s(&k["errno_name"]),
                    baseline: baseline.get(id).map_or(String::new(), |b| s(&b["outcome"])),
                    oracle: s(&o["decision"]),
                    reason: s(&o["reason"]),
                    checks: o["checks"].clone(),
                },
            )
        })
        .collect()
}

fn disagrees(a: &Answer) -> bool {
    match a.kernel.as_str() {
        "allow" => a.oracle == "deny",
        "deny" => a.oracle != "deny",
        _ => false,
    }
}

/// Simpler versions of a profile: each rule removed, each access word removed, each handled
/// word removed, the network and scope blocks removed.
fn simpler(profile: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let ll = &profile["landlock"];
    let allow = ll["fs"]["allow"].as_array().cloned().unwrap_or_default();
    for (i, rule) in allow.iter().enumerate() {
        let mut p = profile.clone();
        p["landlock"]["fs"]["allow"]
            .as_array_mut()
            .unwrap()
            .remove(i);
        out.push(p);
        let words = rule["access"].as_array().unwrap();
        if words.len() > 1 {
            for w in 0..words.len() {
                let mut p = profile.clone();
                p["landlock"]["fs"]["allow"][i]["access"]
                    .as_array_mut()
                    .unwrap()
                    .remove(w);
                out.push(p);
            }
        }
    }
    if let Some(h) = ll["fs"]["handle"].as_array()
        && h.len() > 1
    {
        for w in 0..h.len() {
            let mut p = profile.clone();
            p["landlock"]["fs"]["handle"]
                .as_array_mut()
                .unwrap()
                .remove(w);
            out.push(p);
        }
    }
    for key in ["net", "scope"] {
        if ll.get(key).is_some() {
            let mut p = profile.clone();
            p["landlock"].as_object_mut().unwrap().remove(key);
            out.push(p);
        }
    }
    out
}

/// Shrink a disagreeing (profile, probe) to a minimal profile that still disagrees.
fn shrink(mut profile: Value, probe: &Value) -> (Value, Answer) {
    let run_one = |prof: &Value| {
        run_matrix(
            &[("p".into(), prof.clone())],
            &[("q".into(), probe.clone())],
        )
        .remove("p:q")
        .unwrap()
    };
    let mut answer = run_one(&profile);
    let mut budget = 120;
    'outer: while budget > 0 {
        for cand in simpler(&profile) {
            budget -= 1;
            let a = run_one(&cand);
            if disagrees(&a) {
                profile = cand;
                answer = a;
                continue 'outer;
            }
            if budget == 0 {
                break;
            }
        }
        break;
    }
    (profile, answer)
}

/// Counts of one seed.
#[derive(Default)]
struct Tally {
    scenarios: usize,
    allow: usize,
    deny: usize,
    inconclusive: usize,
    ambient: usize,
    disagreements: Vec<String>,
}

fn run_seed(seed: u64, scenarios: usize, model: &Path) -> Tally {
    let mut rng = Rng(seed);
    let probes_n = 40.min(scenarios).max(1);
    let profiles_n = scenarios.div_ceil(probes_n);
    let probes: Vec<(String, Value)> = (0..probes_n)
        .map(|i| (format!("q{i:03}"), gen_probe(&mut rng, model)))
        .collect();
    let profiles: Vec<(String, Value)> = (0..profiles_n)
        .map(|i| (format!("p{i:03}"), gen_profile(&mut rng, model)))
        .collect();
    let answers = run_matrix(&profiles, &probes);
    let mut t = Tally::default();
    for (id, a) in &answers {
        t.scenarios += 1;
        match a.kernel.as_str() {
            "allow" => t.allow += 1,
            "deny" => t.deny += 1,
            _ => t.inconclusive += 1,
        }
        if a.baseline == "deny" {
            t.ambient += 1;
        }
        if disagrees(a) {
            let (pid, qid) = id.split_once(':').unwrap();
            let profile = &profiles.iter().find(|(p, _)| p == pid).unwrap().1;
            let probe = &probes.iter().find(|(q, _)| q == qid).unwrap().1;
            let mut msg = format!(
                "seed {seed}, scenario {id}: kernel {} {} / oracle {} ({})",
                a.kernel, a.errno, a.oracle, a.reason
            );
            if t.disagreements.len() < 3 {
                let (small, sa) = shrink(profile.clone(), probe);
                let mut probe_shown = probe.clone();
                probe_shown.as_object_mut().unwrap().remove("fixtures");
                let _ = write!(
                    msg,
                    "\n  minimal profile: {}\n  probe (fixtures: the tree): {}\n  kernel {} {} / oracle {}: {}\n  oracle checks: {}",
                    serde_json::to_string(&small).unwrap(),
                    serde_json::to_string(&probe_shown).unwrap(),
                    sa.kernel,
                    sa.errno,
                    sa.oracle,
                    sa.reason,
                    serde_json::to_string(&sa.checks).unwrap()
                );
            }
            t.disagreements.push(msg);
        }
    }
    t
}

/// A line of progress on stderr (seen with `--nocapture`: a long run by hand reports each
/// seed as it finishes).
#[allow(clippy::print_stderr)]
fn progress(line: &str) {
    eprintln!("{line}");
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_oracle_agrees_with_the_kernel_on_random_profiles_and_probes() {
    let seeds = env_num("NEXUSMON_DIFF_SEEDS", 3);
    let per_seed = usize::try_from(env_num("NEXUSMON_DIFF_SCENARIOS", 1000)).unwrap();
    let first = env_num("NEXUSMON_DIFF_SEED", 1);
    let model = tempfile::tempdir().unwrap();
    let model_dir = std::fs::canonicalize(model.path()).unwrap();
    model_tree(&model_dir);
    let mut report = String::new();
    let mut failures = Vec::new();
    let (mut total, mut allow, mut deny, mut inconclusive) = (0, 0, 0, 0);
    for seed in first..first + seeds {
        let t = run_seed(seed, per_seed, &model_dir);
        let line = format!(
            "seed {seed}: {} scenarios, kernel allow {} / deny {} / inconclusive {}, baseline denials {}, disagreements {}",
            t.scenarios,
            t.allow,
            t.deny,
            t.inconclusive,
            t.ambient,
            t.disagreements.len()
        );
        progress(&line);
        let _ = writeln!(report, "{line}");
        assert!(
            t.scenarios >= per_seed,
            "seed {seed}: only {} scenarios ran",
            t.scenarios
        );
        assert_eq!(
            t.ambient, 0,
            "seed {seed}: the baseline denied a probe; the generator must build probes only the policy can refuse\n{report}"
        );
        total += t.scenarios;
        allow += t.allow;
        deny += t.deny;
        inconclusive += t.inconclusive;
        failures.extend(t.disagreements);
    }
    assert!(
        failures.is_empty(),
        "{} disagreement(s) between the kernel and the oracle:\n{}\n{report}",
        failures.len(),
        failures.join("\n")
    );
    // Not vacuous: both answers are common and errors a minority.
    assert!(allow * 5 >= total && deny * 5 >= total, "{report}");
    assert!(inconclusive * 3 <= total, "{report}");
}
