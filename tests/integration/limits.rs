//! The input budget beyond plan files (src/util/limits.rs): template expansion, template
//! files, the scenarios a template generates, promotion packets and mapping files; and a
//! seeded fuzz over templates and packets (mutations of the shipped templates and of a real
//! packet, plus generated bombs) where every input must finish within the budget's bounds or
//! be refused with an error.
//!
//! Cost is measured on the real binary: peak RSS from `wait4` (the kernel's figure for the
//! child alone, so it does not depend on how busy the machine is) against the 64 MiB
//! target, and wall time against a generous bound (the suite runs a debug build on a shared
//! 2-core box; `benches/input-bombs.sh` measures the release build against the 1 s target).

#![allow(clippy::many_single_char_names)] // p(roject), t(ally), q (a second project), m(easured), r(ng), v(alue)
#![allow(clippy::print_stderr)] // the measured figures (counts, wall time, peak RSS) go to the test log

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Measured, Project, SHIPPED, measure, repo_root, run_in};

/// The memory target of the budget, in KiB (peak RSS of the whole process).
const RSS_LIMIT_KIB: i64 = 64 * 1024;

/// Wall-time bound in the suite: generous for a debug build on a loaded machine, yet far
/// below what an unbounded input costs (the loop bomb ran past 60 s before the budget).
const WALL_LIMIT: Duration = Duration::from_secs(10);

fn nx_measured(dir: &Path, args: &[&str]) -> Measured {
    measure(dir, args)
}

#[track_caller]
fn within_budget(m: &Measured, what: &str) {
    assert!(
        m.signal.is_none(),
        "{what}: killed by signal {:?}\n{}",
        m.signal,
        m.stderr_text()
    );
    assert!(
        m.max_rss_kib <= RSS_LIMIT_KIB,
        "{what}: peak RSS {} KiB over {RSS_LIMIT_KIB} KiB",
        m.max_rss_kib
    );
    assert!(
        m.wall <= WALL_LIMIT,
        "{what}: took {:?} (bound {WALL_LIMIT:?})",
        m.wall
    );
}

/// A template whose probe's `tags` nest `levels` `$for` loops over a 64-port parameter
/// (64^levels tags if it expanded), pretty-printed so that each directive has its own line.
fn loop_bomb(levels: usize) -> String {
    let ports: Vec<u16> = (1000..1064).collect();
    let mut item = json!("t");
    let vars = ["a", "b", "c", "d", "e", "f", "g"];
    let mut text = String::from("t");
    for v in vars.iter().take(levels) {
        let _ = write!(text, "-${{{v}}}");
    }
    item = if levels == 0 { item } else { json!(text) };
    for v in vars.iter().take(levels).rev() {
        item = json!({"$for": format!("{v} in ports"), "$item": item});
    }
    let t = json!({
        "schema_version": 1,
        "template_id": "bomb",
        "description": "64 ports, nested loops",
        "parameters": {"ports": {"type": "port-list", "description": "p", "default": ports, "max_items": 64}},
        "plan": {"kind": "experiment", "profiles": ["p"], "scenarios": {"p": {"x": "allow"}}},
        "probes": {"x": {"operation": "file-read", "target": "/etc/hostname", "tags": [item]}},
        "profiles": {"p": {"landlock": {"abi": 3, "fs": {"handle": "all", "allow": [{"path": "/etc", "access": ["read"]}]}}}}
    });
    serde_json::to_string_pretty(&t).unwrap()
}

/// A YAML "billion laughs" (10^levels values if expanded) inside a template file.
fn yaml_alias_bomb_template(id: &str, levels: usize) -> String {
    let mut s = format!(
        "schema_version: 1\ntemplate_id: {id}\ndescription: x\nparameters: {{}}\nplan: {{kind: experiment}}\nprobes: {{}}\nprofiles: {{}}\n"
    );
    s.push_str("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..levels {
        let refs = vec![format!("*l{}", i - 1); 10].join(",");
        let _ = writeln!(s, "l{i}: &l{i} [{refs}]");
    }
    s
}

#[test]
fn the_template_loop_bomb_is_refused_in_bounded_time_naming_the_limit_and_the_directive() {
    let p = Project::empty();
    std::fs::create_dir_all(p.path("templates/bomb")).unwrap();
    for levels in [4, 5, 7] {
        let text = loop_bomb(levels);
        std::fs::write(p.path("templates/bomb/template.json"), &text).unwrap();
        // The line of the innermost `$for` that the budget stops in: the tags' loops are
        // the only `$for`s of the file.
        let for_lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("\"$for\""))
            .map(|(i, _)| i + 1)
            .collect();
        for args in [
            vec!["list-templates"],
            vec!["plan-build", "--template", "bomb", "--out", "gen"],
        ] {
            let m = nx_measured(p.root(), &args);
            within_budget(&m, &format!("{levels} levels: {args:?}"));
            let err = format!("{}{}", String::from_utf8_lossy(&m.stdout), m.stderr_text());
            assert_eq!(
                m.status,
                if args[0] == "list-templates" { 1 } else { 2 },
                "{err}"
            );
            assert!(err.contains("input limit"), "{err}");
            assert!(err.contains("more than 50000 values"), "{err}");
            // Named at its place in the template: a line inside the nested loops.
            let named = for_lines.iter().any(|first| {
                (*first..first + 4 * levels)
                    .any(|l| err.contains(&format!("templates/bomb/template.json:{l}:")))
            });
            assert!(named, "{err}\n(expected a line of the loops {for_lines:?})");
            eprintln!(
                "loop bomb, {levels} levels, {}: exit {} in {:?}, peak RSS {} KiB",
                args[0], m.status, m.wall, m.max_rss_kib
            );
        }
        assert!(!p.path("gen").exists(), "nothing is written");
    }
}

#[test]
fn yaml_alias_bombs_are_refused_in_templates_and_plans_by_every_reader() {
    let p = Project::empty();
    std::fs::create_dir_all(p.path("templates/yb")).unwrap();
    std::fs::write(
        p.path("templates/yb/template.yaml"),
        yaml_alias_bomb_template("yb", 10),
    )
    .unwrap();
    std::fs::create_dir_all(p.path("plans/pb")).unwrap();
    let mut plan = String::from(
        "schema_version: 1\nplan_id: pb\nkind: experiment\nregistry_id: r\nprofiles: [p]\n",
    );
    plan.push_str("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 10].join(",");
        let _ = writeln!(plan, "l{i}: &l{i} [{refs}]");
    }
    std::fs::write(p.path("plans/pb/plan.yaml"), plan).unwrap();
    for (args, code) in [
        (vec!["list-templates"], 1),
        (vec!["plan-build", "--template", "yb", "--out", "gen"], 2),
        (vec!["list-plans"], 0),
        (vec!["plan-lint", "plans/pb/plan.yaml"], 1),
    ] {
        let m = nx_measured(p.root(), &args);
        within_budget(&m, &format!("{args:?}"));
        let all = format!("{}{}", String::from_utf8_lossy(&m.stdout), m.stderr_text());
        assert_eq!(m.status, code, "{args:?}: {all}");
        if args[0] == "list-plans" {
            // The listing goes on, showing the plan as one that does not load.
            assert!(
                all.contains("invalid") && all.contains("plans/pb/plan.yaml"),
                "{all}"
            );
        } else {
            assert!(all.contains("more than 50000 values"), "{args:?}: {all}");
        }
        eprintln!(
            "alias bomb, {}: exit {} in {:?}, peak RSS {} KiB",
            args[0], m.status, m.wall, m.max_rss_kib
        );
    }
}

/// A template generating `n`×`n` scenarios: `n` profiles (one per port) × `n` probes.
fn square_template(n: u16) -> String {
    let ports: Vec<u16> = (2000..2000 + n).collect();
    serde_json::to_string_pretty(&json!({
        "schema_version": 1,
        "template_id": "square",
        "description": "n profiles × n probes",
        "parameters": {"ports": {"type": "port-list", "description": "p", "default": ports, "max_items": 64}},
        "plan": {
            "kind": "experiment",
            "profiles": [{"$for": "p in ports", "$item": "prof-${p}"}],
            "scenarios": {"$for": "p in ports", "$key": "prof-${p}", "$value":
                {"$for": "q in ports", "$key": "connect-${q}", "$value": "deny"}}
        },
        "probes": {"$for": "q in ports", "$key": "connect-${q}", "$value":
            {"operation": "tcp-connect", "target": "127.0.0.1:${q}"}},
        "profiles": {"$for": "p in ports", "$key": "prof-${p}", "$value":
            {"landlock": {"abi": 4, "net": {"tcp_connect": ["${p}"], "tcp_bind": []}}}}
    }))
    .unwrap()
}

#[test]
fn the_scenarios_a_template_generates_are_capped_and_the_cap_can_be_raised() {
    let p = Project::empty();
    std::fs::create_dir_all(p.path("templates/square")).unwrap();
    std::fs::write(
        p.path("templates/square/template.json"),
        square_template(40),
    )
    .unwrap();
    let r = run_in(
        p.root(),
        &["plan-build", "--template", "square", "--out", "gen"],
    );
    r.code(2);
    assert!(
        r.stderr.contains("generates 1600 scenarios")
            && r.stderr.contains("more than the limit of 1000")
            && r.stderr.contains("--max-scenarios"),
        "{}",
        r.stderr
    );
    assert!(!p.path("gen").exists());
    let r = run_in(
        p.root(),
        &[
            "plan-build",
            "--template",
            "square",
            "--out",
            "gen",
            "--max-scenarios",
            "1600",
        ],
    );
    assert!(
        !r.stderr.contains("more than the limit"),
        "the raised cap admits it: {}",
        r.stderr
    );
    assert!(r.status == 0, "exit {}: {}{}", r.status, r.stdout, r.stderr);
}

/// A file of `len` bytes beginning with `head` (sparse: nothing but the head is stored).
fn sparse(path: &Path, head: &[u8], len: u64) {
    std::fs::write(path, head).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn a_100_mb_packet_is_refused_before_it_is_read_by_every_packet_reader() {
    let p = Project::shipped().init();
    let big = p.path("promotion/big.json");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    sparse(&big, b"{\"packet_version\": 1, \"pad\": \"", 100_000_000);
    let b = big.to_str().unwrap();
    for args in [
        vec!["promote", "--packets", b, "--out", "mappings"],
        vec!["evolve", "--packets", b],
        vec!["summarize-ops", "--packet", b],
        vec!["report", "--packet", b, "--out", "r.html"],
        vec!["review", "--packets", "promotion"],
    ] {
        let m = nx_measured(p.root(), &args);
        within_budget(&m, &format!("{args:?}"));
        let err = m.stderr_text();
        eprintln!(
            "100 MB packet, {}: exit {} in {:?}, peak RSS {} KiB",
            args[0], m.status, m.wall, m.max_rss_kib
        );
        if args[0] == "review" {
            // The queue skips what is not a packet.
            continue;
        }
        assert!(
            err.contains("input limit") && err.contains("1048576 bytes"),
            "{args:?}: {err}"
        );
        assert!(m.status == 2 || m.status == 1, "{args:?}: {err}");
    }
    assert!(!p.path("mappings").exists() && !p.path("r.html").exists());
}

#[test]
fn mapping_files_over_the_limit_are_refused_unless_the_limit_is_raised() {
    let p = Project::shipped();
    std::fs::create_dir_all(p.path("mappings")).unwrap();
    sparse(
        &p.path("mappings/runtime_links.json"),
        b"{",
        33 * 1024 * 1024,
    );
    std::fs::write(p.path("mappings/runtime_signatures.json"), b"{}").unwrap();
    std::fs::write(p.path("mappings/op_runtime_summary.json"), b"{}").unwrap();
    let packet = crate::util::run_and_emit(p.root(), "quickstart", 0, "promotion/q.json");
    let pk = packet.to_str().unwrap();
    let m = nx_measured(p.root(), &["promote", "--packets", pk, "--out", "mappings"]);
    within_budget(&m, "promote over the mapping limit");
    let err = m.stderr_text();
    assert_eq!(m.status, 2, "{err}");
    assert!(
        err.contains("runtime_links.json")
            && err.contains("input limit")
            && err.contains("--max-mapping-bytes"),
        "{err}"
    );
    // Raised, the file is read (and found not to be a mapping file).
    let r = run_in(
        p.root(),
        &[
            "promote",
            "--packets",
            pk,
            "--out",
            "mappings",
            "--max-mapping-bytes",
            "100000000",
        ],
    );
    r.code(2);
    assert!(
        !r.stderr.contains("input limit") && r.stderr.contains("not a valid mapping file"),
        "{}",
        r.stderr
    );
}

#[test]
fn packets_read_only_their_own_bundle_each_member_once() {
    let p = Project::shipped();
    let packet = crate::util::run_and_emit(p.root(), "quickstart", 0, "promotion/q.json");
    let original: Value = crate::util::read_json(&packet);
    let bundle_ptr = original["bundle"]["pointer"].as_str().unwrap().to_string();
    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    // A pointer to a host file (climbing out of the bundle with a packet-dir base).
    let mut v = original.clone();
    v["bundle"]["pointer_base"] = json!("packet-dir");
    v["artifacts"][0]["path"] = json!("../../../../../../../../../etc/hostname");
    v["artifacts"][0]["member"] = json!("../../../../../../../../../etc/hostname");
    cases.push(("host file", v, "does not name a file inside the bundle"));
    // A member that is a pointer elsewhere under the same base.
    let mut v = original.clone();
    v["artifacts"][0]["path"] = json!("plans/quickstart/plan.json");
    cases.push((
        "other project file",
        v,
        "does not name a file inside the bundle",
    ));
    // The same member listed many times.
    let mut v = original.clone();
    let first = v["artifacts"][0].clone();
    let arts = v["artifacts"].as_array_mut().unwrap();
    for _ in 0..500 {
        arts.push(first.clone());
    }
    cases.push(("repeated member", v, "is listed more than once"));
    // The bundle pointer itself naming a host directory (not a bundle) with a file of a
    // telling size: nothing in it is opened, hashed or described.
    let host = p.path("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("secret"), vec![b's'; 12_345]).unwrap();
    let mut v = original.clone();
    v["bundle"]["pointer_base"] = json!("packet-dir");
    v["bundle"]["pointer"] = json!("../hostdir");
    v["bundle"]["artifact_index"]["member"] = json!("secret");
    v["bundle"]["artifact_index"]["path"] = json!("../hostdir/secret");
    v["artifacts"][0]["member"] = json!("secret2");
    v["artifacts"][0]["path"] = json!("../hostdir/secret2");
    std::fs::write(host.join("secret2"), vec![b's'; 12_346]).unwrap();
    cases.push(("host directory", v, "is not a nexusmon bundle"));
    // A file planted in the real bundle, not in its index: not read.
    let bundle_dir = p.path(&bundle_ptr);
    std::fs::write(bundle_dir.join("planted"), vec![b'p'; 12_347]).unwrap();
    let mut v = original.clone();
    v["artifacts"][0]["member"] = json!("planted");
    v["artifacts"][0]["path"] = json!(format!("{bundle_ptr}/planted"));
    cases.push((
        "unlisted member",
        v,
        "is not listed in the bundle's artifact_index.json: not read",
    ));
    // An index that is not the one the packet records: no other member is read.
    let mut v = original.clone();
    v["bundle"]["artifact_index"]["blake3"] = json!("0".repeat(64));
    v["artifacts"][0]["member"] = json!("planted");
    v["artifacts"][0]["path"] = json!(format!("{bundle_ptr}/planted"));
    cases.push(("wrong index", v, "the bundle's other files were not read"));
    for (what, v, expect) in cases {
        let path = p.path(&format!("promotion/{}.json", what.replace(' ', "-")));
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let m = nx_measured(
            p.root(),
            &[
                "promote",
                "--packets",
                path.to_str().unwrap(),
                "--out",
                "mappings",
            ],
        );
        within_budget(&m, what);
        let err = m.stderr_text();
        assert_eq!(m.status, 1, "{what}: {err}");
        assert!(err.contains(expect), "{what}: {err}");
        // Nothing about a file outside the bundle is read or echoed.
        let host = std::fs::metadata("/etc/hostname").map_or(0, |m| m.len());
        for size in [host, 12_345, 12_346, 12_347] {
            assert!(
                !err.contains(&format!("{size} bytes")),
                "{what}: echoes the size of a file outside the bundle's index: {err}"
            );
        }
    }
    assert!(bundle_ptr.starts_with("out/"), "{bundle_ptr}");
}

// ---------------------------------------------------------------------------------------
// The fuzz: seeded mutations of the shipped templates and of a real packet, and bombs
// ---------------------------------------------------------------------------------------

use crate::util::Rng;

/// Every node of `v` (JSON pointers), the root included.
fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
    out.push(at.to_string());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let t = k.replace('~', "~0").replace('/', "~1");
                pointers(c, &format!("{at}/{t}"), out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A value to put somewhere: scalars of every type, references, hostile strings.
fn random_value(r: &mut Rng, list_params: &[String]) -> Value {
    let param = list_params
        .get(r.below(list_params.len()))
        .cloned()
        .unwrap_or_else(|| "ports".into());
    match r.below(12) {
        0 => json!(null),
        1 => json!(r.next() % 70000),
        2 => json!(-1),
        3 => json!(true),
        4 => json!("x".repeat(70_000)),
        5 => json!(format!("${{{param}}}")),
        6 => json!(format!("a-${{{param}|join}}-b")),
        7 => json!("\u{1b}]52;c;aGk=\u{7}\u{1b}[2J"),
        8 => json!([1, 2, 3]),
        9 => json!({"$for": format!("x in {param}"), "$item": "${x}"}),
        10 => json!({"$if": param, "$then": {"k": 1}, "$else": "no"}),
        _ => json!({}),
    }
}

/// One seeded mutation of a template document.
fn mutate_template(base: &Value, r: &mut Rng) -> Value {
    let mut v = base.clone();
    let list_params: Vec<String> = v["parameters"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, s)| s["type"].as_str().is_some_and(|t| t.ends_with("-list")))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    for _ in 0..=r.below(3) {
        let mut ps = Vec::new();
        pointers(&v, "", &mut ps);
        let at = ps[r.below(ps.len())].clone();
        match r.below(6) {
            // Replace a value.
            0 | 1 => {
                let new = random_value(r, &list_params);
                if let Some(x) = v.pointer_mut(&at) {
                    *x = new;
                }
            }
            // Delete a member.
            2 => {
                if let Some(Value::Object(m)) = v.pointer_mut(&at)
                    && let Some(k) = m.keys().nth(r.below(m.len())).cloned()
                {
                    m.remove(&k);
                }
            }
            // Wrap a value in a loop (nested loops multiply).
            3 => {
                if let (Some(x), Some(p)) = (
                    v.pointer_mut(&at),
                    list_params.get(r.below(list_params.len())),
                ) {
                    let inner = x.take();
                    *x = json!([{"$for": format!("l{} in {p}", r.below(9)), "$item": inner}]);
                }
            }
            // Grow a list parameter to its largest allowed size.
            4 => {
                if let Some(p) = list_params.get(r.below(list_params.len())) {
                    let spec = &mut v["parameters"][p];
                    let kind = spec["type"].as_str().unwrap_or_default().to_string();
                    let items: Vec<Value> = (0..64)
                        .map(|i| {
                            if kind == "port-list" {
                                json!(3000 + i)
                            } else {
                                json!(format!("/usr/bin/fuzz{i}"))
                            }
                        })
                        .collect();
                    spec["default"] = Value::Array(items);
                    spec["max_items"] = json!(64);
                }
            }
            // Duplicate a subtree into a `$merge`.
            _ => {
                if let Some(Value::Object(m)) = v.pointer_mut(&at) {
                    let copy = Value::Object(m.clone());
                    m.insert("$merge".into(), json!([copy]));
                }
            }
        }
    }
    v
}

/// Byte-level damage: truncate, flip or insert.
fn damage(bytes: &[u8], r: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match r.below(3) {
        0 => b.truncate(r.below(b.len())),
        1 => {
            let i = r.below(b.len());
            b[i] ^= 1 << r.below(8);
        }
        _ => {
            let i = r.below(b.len());
            b.insert(i, [b'{', b'[', b'"', 0x1b, 0xff, b'&'][r.below(6)]);
        }
    }
    b
}

/// Generated template bombs (file name, content).
fn template_bombs() -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("template.json", loop_bomb(3)),
        ("template.json", loop_bomb(6)),
        ("template.yaml", yaml_alias_bomb_template("t", 12)),
        (
            "template.json",
            format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000)),
        ),
    ];
    // A `$merge` of loops producing keys, nested twice over 64 values (64^3 members).
    let ports: Vec<u16> = (1..65).collect();
    let t = json!({
        "schema_version": 1, "template_id": "t", "description": "merge bomb",
        "parameters": {"ports": {"type": "port-list", "description": "p", "default": ports, "max_items": 64}},
        "plan": {"kind": "experiment", "profiles": ["p"], "scenarios": {"p": {"x": "allow"}}},
        "probes": {"x": {"operation": "file-read", "target": "/etc/hostname"},
            "$merge": [{"$for": "a in ports", "$key": "y-${a}", "$value":
                {"$for": "b in ports", "$key": "z-${b}", "$value":
                    {"$for": "c in ports", "$key": "w-${c}", "$value": "${ports|join}"}}}]},
        "profiles": {"p": {"landlock": {"abi": 3, "fs": {"handle": "all", "allow": [{"path": "/etc", "access": ["read"]}]}}}}
    });
    out.push(("template.json", t.to_string()));
    // Loops whose bodies make nothing (a false `$if`): work without output.
    let t = json!({
        "schema_version": 1, "template_id": "t", "description": "empty loops",
        "parameters": {"ports": {"type": "port-list", "description": "p", "default": ports, "max_items": 64},
            "flag": {"type": "boolean", "description": "f", "default": false}},
        "plan": {"kind": "experiment", "profiles": ["p"], "scenarios": {"p": {"x": "allow"}}},
        "probes": {"x": {"operation": "file-read", "target": "/etc/hostname", "tags": [
            {"$for": "a in ports", "$item": {"$for": "b in ports", "$item": {"$for": "c in ports", "$item":
                {"$for": "d in ports", "$item": {"$if": "flag", "$then": "t"}}}}}]}},
        "profiles": {"p": {"landlock": {"abi": 3, "fs": {"handle": "all", "allow": [{"path": "/etc", "access": ["read"]}]}}}}
    });
    out.push(("template.json", t.to_string()));
    // Long strings joined: 64 paths of 1,000 characters in one string.
    let paths: Vec<String> = (0..64)
        .map(|i| format!("/{}{i}", "p".repeat(1000)))
        .collect();
    let t = json!({
        "schema_version": 1, "template_id": "t", "description": "string bomb",
        "parameters": {"progs": {"type": "path-list", "description": "p", "default": paths, "max_items": 64}},
        "plan": {"kind": "experiment", "description": "${progs|join} ${progs|join}", "profiles": ["p"], "scenarios": {"p": {"x": "allow"}}},
        "probes": {"x": {"operation": "file-read", "target": "/etc/hostname"}},
        "profiles": {"p": {"landlock": {"abi": 3, "fs": {"handle": "all", "allow": [{"path": "/etc", "access": ["read"]}]}}}}
    });
    out.push(("template.json", t.to_string()));
    out
}

/// Generated packet bombs (content; `None` for the 100 MB sparse file).
fn packet_bombs(base: &Value) -> Vec<Option<Vec<u8>>> {
    let mut out = vec![
        None,
        Some(format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)).into_bytes()),
        Some(
            format!(
                "{{\"packet_version\": 1, \"x\": \"{}\"}}",
                "y".repeat(1_000_000)
            )
            .into_bytes(),
        ),
    ];
    // As many repeated artifact entries as fit under the size limit.
    let mut v = base.clone();
    let first = v["artifacts"][0].clone();
    let arts = v["artifacts"].as_array_mut().unwrap();
    for _ in 0..3000 {
        arts.push(first.clone());
    }
    out.push(Some(serde_json::to_vec(&v).unwrap()));
    // Deep nesting inside an otherwise valid packet.
    let mut v = base.clone();
    let mut deep = json!(1);
    for _ in 0..120 {
        deep = json!([deep]);
    }
    v["summary"]["deep"] = deep;
    out.push(Some(serde_json::to_vec(&v).unwrap()));
    out
}

/// One seeded mutation of a packet.
fn mutate_packet(base: &Value, r: &mut Rng) -> Value {
    let mut v = base.clone();
    for _ in 0..=r.below(3) {
        let mut ps = Vec::new();
        pointers(&v, "", &mut ps);
        let at = ps[r.below(ps.len())].clone();
        let new = match r.below(8) {
            0 => json!("../../../../../../../etc/hostname"),
            1 => json!("/etc/shadow"),
            2 => json!(u64::MAX),
            3 => json!(null),
            4 => json!("\u{1b}[2J"),
            5 => json!([]),
            6 => json!({}),
            _ => json!("out/../out/x"),
        };
        if r.below(4) == 0 {
            if let Some(Value::Object(m)) = v.pointer_mut(&at)
                && let Some(k) = m.keys().nth(r.below(m.len())).cloned()
            {
                m.remove(&k);
            }
        } else if let Some(x) = v.pointer_mut(&at) {
            *x = new;
        }
    }
    v
}

/// Counts of one side of the fuzz.
#[derive(Default)]
struct Tally {
    inputs: usize,
    accepted: usize,
    refused: usize,
    max_wall: Duration,
    max_rss_kib: i64,
}

impl Tally {
    #[track_caller]
    fn add(&mut self, m: &Measured, what: &str) {
        within_budget(m, what);
        self.inputs += 1;
        if m.status == 0 {
            self.accepted += 1;
        } else {
            // Refused: with a message, never silently.
            assert!(
                matches!(m.status, 1 | 2),
                "{what}: exit {}: {}",
                m.status,
                m.stderr_text()
            );
            assert!(
                !m.stderr.is_empty() || !m.stdout.is_empty(),
                "{what}: refused without a word"
            );
            self.refused += 1;
        }
        self.max_wall = self.max_wall.max(m.wall);
        self.max_rss_kib = self.max_rss_kib.max(m.max_rss_kib);
    }
}

fn fuzz_seeds() -> Vec<u64> {
    std::env::var("NEXUSMON_FUZZ_SEEDS").ok().map_or_else(
        || vec![20, 21],
        |s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
    )
}

#[test]
fn fuzzed_templates_and_packets_finish_within_the_budget_or_are_refused() {
    let per_base: usize = std::env::var("NEXUSMON_FUZZ_PER_BASE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    // Templates: the shipped ones, renamed `t`, mutated; then the bombs.
    let p = Project::empty();
    let tdir = p.path("templates/t");
    std::fs::create_dir_all(&tdir).unwrap();
    let bases: Vec<Value> = SHIPPED
        .iter()
        .filter(|f| {
            f.starts_with("templates/")
                && Path::new(f)
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        })
        .map(|f| {
            let mut v: Value =
                serde_json::from_slice(&std::fs::read(repo_root().join(f)).unwrap()).unwrap();
            v["template_id"] = json!("t");
            v
        })
        .collect();
    assert_eq!(bases.len(), 5);
    let mut t = Tally::default();
    let build = |p: &Project, what: &str, t: &mut Tally| {
        let m = nx_measured(
            p.root(),
            &[
                "plan-build",
                "--template",
                "t",
                "--out",
                "gen",
                "--overwrite",
            ],
        );
        t.add(&m, what);
    };
    for seed in fuzz_seeds() {
        let mut r = Rng(seed);
        for (bi, base) in bases.iter().enumerate() {
            for k in 0..per_base {
                let _ = std::fs::remove_file(tdir.join("template.yaml"));
                let v = mutate_template(base, &mut r);
                let mut bytes = serde_json::to_vec_pretty(&v).unwrap();
                if k % 3 == 2 {
                    bytes = damage(&bytes, &mut r);
                }
                std::fs::write(tdir.join("template.json"), &bytes).unwrap();
                build(
                    &p,
                    &format!("seed {seed} template {bi} mutation {k}"),
                    &mut t,
                );
            }
        }
    }
    for (i, (name, text)) in template_bombs().into_iter().enumerate() {
        let _ = std::fs::remove_file(tdir.join("template.json"));
        let _ = std::fs::remove_file(tdir.join("template.yaml"));
        std::fs::write(tdir.join(name), text.replace("\"bomb\"", "\"t\"")).unwrap();
        build(&p, &format!("template bomb {i}"), &mut t);
    }
    eprintln!(
        "fuzz templates: {} inputs, {} built, {} refused; max wall {:?}, max peak RSS {} KiB",
        t.inputs, t.accepted, t.refused, t.max_wall, t.max_rss_kib
    );
    assert!(
        t.refused > 0 && t.accepted > 0,
        "the mutations exercise both outcomes"
    );

    // Packets: one real packet, mutated; then the bombs.
    let q = Project::shipped();
    let packet = crate::util::run_and_emit(q.root(), "quickstart", 0, "promotion/q.json");
    let base = crate::util::read_json(&packet);
    let mut t = Tally::default();
    let fuzzed = q.path("promotion/fuzz.json");
    let promote = |what: &str, t: &mut Tally| {
        let m = nx_measured(
            q.root(),
            &[
                "promote",
                "--packets",
                fuzzed.to_str().unwrap(),
                "--out",
                "mappings",
            ],
        );
        t.add(&m, what);
    };
    std::fs::write(&fuzzed, serde_json::to_vec_pretty(&base).unwrap()).unwrap();
    promote("the packet itself", &mut t);
    for seed in fuzz_seeds() {
        let mut r = Rng(seed);
        for k in 0..per_base * 4 {
            let v = mutate_packet(&base, &mut r);
            let mut bytes = serde_json::to_vec_pretty(&v).unwrap();
            if k % 3 == 2 {
                bytes = damage(&bytes, &mut r);
            }
            std::fs::write(&fuzzed, &bytes).unwrap();
            promote(&format!("seed {seed} packet mutation {k}"), &mut t);
        }
    }
    for (i, b) in packet_bombs(&base).into_iter().enumerate() {
        match b {
            Some(bytes) => std::fs::write(&fuzzed, bytes).unwrap(),
            None => sparse(&fuzzed, b"{\"packet_version\": 1, \"x\": \"", 100_000_000),
        }
        promote(&format!("packet bomb {i}"), &mut t);
    }
    eprintln!(
        "fuzz packets: {} inputs, {} promoted, {} refused; max wall {:?}, max peak RSS {} KiB",
        t.inputs, t.accepted, t.refused, t.max_wall, t.max_rss_kib
    );
    assert!(
        t.refused > 0 && t.accepted > 0,
        "the mutations exercise both outcomes"
    );
}

/// State files, keys and the trust file are read through the same budget as every other
/// input: a 100 MB file in any of those places is refused before it is read (exit 2, the
/// file and the limit named), within the memory target.
#[test]
fn state_files_keys_and_trust_files_over_their_limits_are_refused_before_they_are_read() {
    const BIG: u64 = 100_000_000;
    type Case = (&'static str, &'static str, Vec<&'static str>, &'static str);
    let cases: Vec<Case> = vec![
        (
            ".nexusmon/omens.json",
            "{\"omens\": [\"",
            vec!["omens", "list"],
            "67108864 bytes",
        ),
        (
            ".nexusmon/evolution.json",
            "{\"xp\": \"",
            vec!["evolution", "status"],
            "67108864 bytes",
        ),
        (
            "big-key",
            "-----BEGIN OPENSSH PRIVATE KEY-----\n",
            vec![
                "run",
                "--plan",
                "plans/quickstart/plan.json",
                "--sign-with",
                "big-key",
            ],
            "1048576 bytes",
        ),
        (
            "big-key.pub",
            "ssh-ed25519 ",
            vec![
                "trust",
                "add",
                "--principal",
                "x",
                "--role",
                "approver",
                "big-key.pub",
            ],
            "1048576 bytes",
        ),
        (
            ".nexusmon/trusted_signers",
            "# nexusmon\n",
            vec!["audit", "verify"],
            "4194304 bytes",
        ),
    ];
    for (file, head, args, limit) in cases {
        let p = Project::shipped().init();
        sparse(&p.path(file), head.as_bytes(), BIG);
        let m = nx_measured(p.root(), &args);
        within_budget(&m, &format!("{file}: {args:?}"));
        let err = m.stderr_text();
        eprintln!(
            "100 MB {file}, {}: exit {} in {:?}, peak RSS {} KiB",
            args[0], m.status, m.wall, m.max_rss_kib
        );
        assert_ne!(m.status, 0, "{file}: {args:?} accepted it: {err}");
        assert!(
            err.contains(limit) && err.contains(file.rsplit('/').next().unwrap()),
            "{file}: {args:?}: {err}"
        );
        assert!(!p.path("out").exists(), "{file}: {args:?} ran");
    }
}

/// The audit log is read a line at a time, a line kept to 1 MiB: a 100 MB line planted in it
/// is a line that does not parse for `audit verify`, and an append (`run` with the state
/// directory) refuses to chain onto it; both within the memory target.
#[test]
fn a_100_mb_line_in_the_audit_log_is_read_no_further_than_the_line_limit() {
    use std::io::Write as _;
    for (args, want) in [
        (vec!["audit", "verify"], None),
        (
            vec!["run", "--plan", "plans/quickstart/plan.json"],
            Some("1048576 bytes"),
        ),
    ] {
        let p = Project::shipped().init();
        let log = p.path(".nexusmon/audit.jsonl");
        let len = std::fs::metadata(&log).unwrap().len();
        sparse(&log, &std::fs::read(&log).unwrap(), len + 100_000_000);
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"\n").unwrap();
        drop(f);
        let m = nx_measured(p.root(), &args);
        within_budget(&m, &format!("{args:?}"));
        let err = m.stderr_text();
        eprintln!(
            "100 MB audit line, {}: exit {} in {:?}, peak RSS {} KiB",
            args[0], m.status, m.wall, m.max_rss_kib
        );
        assert_ne!(m.status, 0, "{args:?} accepted the log: {err}");
        if let Some(w) = want {
            assert!(
                err.contains(w) && err.contains("audit.jsonl"),
                "{args:?}: {err}"
            );
            // Nothing sealed: at most the unsealed staging directory the next run removes.
            let sealed: Vec<_> = std::fs::read_dir(p.path("out"))
                .map(|d| {
                    d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .filter(|n| !n.starts_with('.'))
                        .collect()
                })
                .unwrap_or_default();
            assert!(sealed.is_empty(), "{args:?} sealed {sealed:?}");
        }
    }
}

/// A policy-matrix project: `profiles` × `probes` builtin file-read scenarios, the plan
/// written as `format` ("json" or "yaml") at `plans/m/plan.<format>`, one expectation per
/// scenario (`scenarios: {profile: {probe: expectation}}`), as `benches/run_gen.py` writes
/// the benchmark's.
fn matrix_project(profiles: usize, probes: usize, format: &str) -> Project {
    let p = Project::empty();
    std::fs::create_dir_all(p.path("registry/r")).unwrap();
    std::fs::create_dir_all(p.path("plans/m")).unwrap();
    let probe_ids: Vec<String> = (0..probes).map(|i| format!("p{i:05}")).collect();
    let probe_map: serde_json::Map<String, Value> = probe_ids
        .iter()
        .map(|id| {
            let target = if id.ends_with('7') {
                "/etc/hostname"
            } else {
                "/usr/lib/os-release"
            };
            (
                id.clone(),
                json!({"operation": "file-read", "target": target}),
            )
        })
        .collect();
    let profile = json!({"landlock": {"abi": 3, "fs": {"handle": "all", "allow": [
        {"path": "/usr", "access": ["read"]}]}}});
    let prof_ids: Vec<String> = (0..profiles).map(|i| format!("ro-{i:03}")).collect();
    let prof_map: serde_json::Map<String, Value> = prof_ids
        .iter()
        .map(|id| (id.clone(), profile.clone()))
        .collect();
    for (name, body) in [
        ("probes.json", json!({"probes": probe_map})),
        ("profiles.json", json!({"profiles": prof_map})),
    ] {
        let mut doc = json!({"schema_version": 1, "registry_id": "r"});
        doc.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        std::fs::write(p.path(&format!("registry/r/{name}")), doc.to_string()).unwrap();
    }
    let expect = |probe: &str| {
        if probe.ends_with('7') {
            "deny"
        } else {
            "allow"
        }
    };
    let mut text = String::new();
    if format == "json" {
        text.push_str(
            "{\"schema_version\": 1, \"plan_id\": \"m\", \"kind\": \"experiment\", \"registry_id\": \"r\",\n",
        );
        let _ = writeln!(
            text,
            " \"profiles\": {},",
            serde_json::to_string(&prof_ids).unwrap()
        );
        text.push_str(" \"execution\": {\"timeout_ms\": 5000},\n \"scenarios\": {\n");
        for (i, prof) in prof_ids.iter().enumerate() {
            let _ = write!(text, "  \"{prof}\": {{");
            for (j, probe) in probe_ids.iter().enumerate() {
                let sep = if j == 0 { "" } else { ", " };
                let _ = write!(text, "{sep}\"{probe}\": \"{}\"", expect(probe));
            }
            text.push_str(if i + 1 == profiles { "}\n" } else { "},\n" });
        }
        text.push_str(" }\n}\n");
    } else {
        text.push_str("schema_version: 1\nplan_id: m\nkind: experiment\nregistry_id: r\n");
        let _ = writeln!(text, "profiles: [{}]", prof_ids.join(", "));
        text.push_str("execution:\n  timeout_ms: 5000\nscenarios:\n");
        for prof in &prof_ids {
            let _ = writeln!(text, "  {prof}:");
            for probe in &probe_ids {
                let _ = writeln!(text, "    {probe}: {}", expect(probe));
            }
        }
    }
    std::fs::write(p.path(&format!("plans/m/plan.{format}")), text).unwrap();
    p
}

#[test]
fn a_plan_of_220_000_scenarios_lints_and_loads_and_reads_the_same_in_json_and_yaml() {
    // Over the values budget (MAX_NODES) many times, within the plan's matrix budget.
    let (profiles, probes) = (110, 2_000);
    let n = (profiles * probes) as u64;
    let p = matrix_project(profiles, probes, "json");
    let m = nx_measured(
        p.root(),
        &["plan-lint", "--format", "json", "plans/m/plan.json"],
    );
    let out = String::from_utf8_lossy(&m.stdout);
    assert_eq!(m.status, 0, "{out}{}", m.stderr_text());
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["errors"], 0, "{out}");
    assert!(!out.contains("NX014"), "{out}");
    eprintln!(
        "plan-lint of {n} scenarios: {:?}, peak RSS {} KiB",
        m.wall, m.max_rss_kib
    );
    // Loaded: every scenario listed, and one of them selected and predicted.
    let r = p.nx(&["list-plans", "--json"]);
    r.code(0);
    let rows: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(rows[0]["scenarios"], n, "{}", r.stdout);
    assert_eq!(rows[0]["profiles"], profiles as u64);
    assert!(rows[0]["error"].is_null(), "{}", r.stdout);
    let mut digests = Vec::new();
    for format in ["json", "yaml"] {
        let q = if format == "json" {
            None
        } else {
            Some(matrix_project(profiles, probes, format))
        };
        let plan = format!("plans/m/plan.{format}");
        let r = q.as_ref().unwrap_or(&p).nx(&[
            "run",
            "--plan",
            &plan,
            "--dry",
            "--json",
            "--only-scenario",
            "ro-109:p01997",
        ]);
        r.code(0);
        let start: Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
        assert_eq!(start["scenarios"], 1, "{start}");
        assert!(r.stdout.contains("\"expected\":\"deny\""), "{}", r.stdout);
        digests.push(start["plan_digest"].as_str().unwrap().to_string());
    }
    // The same matrix written in either syntax is the same plan.
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn plan_matrix_bombs_are_refused_naming_the_file_and_line() {
    let p = matrix_project(2, 3, "json");
    let put = |rel: &str, text: &str| {
        std::fs::create_dir_all(p.path(rel).parent().unwrap()).unwrap();
        std::fs::write(p.path(rel), text).unwrap();
    };
    let head = "schema_version: 1\nplan_id: b\nkind: experiment\nregistry_id: r\nprofiles: [ro-000]\nscenarios:\n";
    // A profile's map of 2,000 entries anchored and copied by 40 aliases: the copies are
    // charged to the values budget, entries included.
    let mut aliased = format!("{head}  ro-000: &m\n");
    for i in 0..2_000 {
        let _ = writeln!(aliased, "    p{i:05}: allow");
    }
    for i in 1..40 {
        let _ = writeln!(aliased, "  ro-{i:03}: *m");
    }
    let alias_line: u64 = 2_000 + 7 + 25; // the first alias over 50,000 values
    // An anchored expectation copied by aliases: each copy is a value.
    let mut scalar_aliases = format!("{head}  ro-000:\n    p00000: &e allow\n");
    for i in 1..60_000 {
        let _ = writeln!(scalar_aliases, "    p{i:05}: *e");
    }
    // Entries whose values are not strings are values.
    let mut numbers = String::from("{\"schema_version\": 1, \"scenarios\": {\"ro-000\": {");
    for i in 0..60_000 {
        let _ = write!(numbers, "\n\"p{i:05}\": {i},");
    }
    numbers.push_str("\"z\": 0}}}");
    let cases = [
        ("plans/b1/plan.yaml", aliased, "more than 50000 values"),
        (
            "plans/b2/plan.yaml",
            scalar_aliases,
            "more than 50000 values",
        ),
        ("plans/b3/plan.json", numbers, "more than 50000 values"),
    ];
    for (rel, text, what) in &cases {
        put(rel, text);
        let m = nx_measured(p.root(), &["plan-lint", "--format", "json", rel]);
        within_budget(&m, rel);
        assert_eq!(m.status, 1, "{rel}");
        let v: Value = serde_json::from_slice(&m.stdout).unwrap();
        let f = &v["findings"][0];
        assert_eq!(f["code"], "NX014", "{rel}: {f}");
        assert!(f["message"].as_str().unwrap().contains(what), "{rel}: {f}");
        assert!(f["line"].as_u64().unwrap() >= 7, "{rel}: {f}");
        let r = p.nx(&["run", "--plan", rel, "--out", "out", "--dry"]);
        r.code(2);
        assert!(
            r.stderr.contains(rel) && r.stderr.contains(what),
            "{}",
            r.stderr
        );
        assert!(!p.path("out").exists());
    }
    let m = nx_measured(p.root(), &["plan-lint", "--format", "json", cases[0].0]);
    let v: Value = serde_json::from_slice(&m.stdout).unwrap();
    let line = v["findings"][0]["line"].as_u64().unwrap();
    assert!(line > 2_007 && line <= alias_line, "refused at line {line}");
    // A plan file over the plan size limit (64 MiB) is refused from its size.
    let big = p.path("plans/big/plan.json");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    sparse(&big, b"{", 64 * 1024 * 1024 + 1);
    let m = nx_measured(
        p.root(),
        &["plan-lint", "--format", "json", "plans/big/plan.json"],
    );
    within_budget(&m, "a 64 MiB plan");
    let out = String::from_utf8_lossy(&m.stdout);
    assert!(
        out.contains("NX014") && out.contains("the limit for a plan file"),
        "{out}"
    );
    let r = p.nx(&["run", "--plan", "plans/big/plan.json", "--dry"]);
    r.code(2);
    assert!(
        r.stderr.contains("plans/big/plan.json") && r.stderr.contains("67108864"),
        "{}",
        r.stderr
    );
}
