//! `promote` and `summarize-ops` through the real binary: mappings are a pure function of
//! the set of packets (any order, repeats, incremental — byte-identical), the same
//! behaviour gives the same signature across runs, packets that disagree record a conflict
//! (never last-writer-wins), and non-promotable, edited or stale packets are refused with
//! nothing written. Evolution consumes a real packet of a governed mission run.

#![allow(clippy::many_single_char_names)] // p(roject), b(undle), r(esult), a/b (packets), v(alue), g(ating inputs)

use std::path::Path;

use serde_json::Value;

use crate::promote::{check_schema, make_writable};
use crate::util::{Project, edit_json, read_json};

const FILES: [&str; 3] = [
    "runtime_signatures.json",
    "op_runtime_summary.json",
    "runtime_links.json",
];

fn files(dir: &Path) -> Vec<Vec<u8>> {
    FILES
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect()
}

fn promote(p: &Project, out: &str, packets: &[&str]) -> crate::util::Ran {
    let mut args = vec!["--json", "promote", "--out", out, "--packets"];
    args.extend_from_slice(packets);
    p.nx(&args)
}

#[test]
fn the_same_packets_in_any_order_give_byte_identical_mappings_and_repeats_change_nothing() {
    let p = Project::copy_of("promote/project");
    let a = p.run_and_emit("clean", "a.json");
    let b = p.run_and_emit("clean", "b.json");
    p.run_and_emit("best-effort", "c.json"); // not promotable: kept out of this test
    assert_ne!(a["run_id"], b["run_id"]);
    let r = promote(&p, "m1", &["a.json", "b.json"]);
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["written"], true);
    assert_eq!(v["added"].as_array().unwrap().len(), 2);
    promote(&p, "m2", &["b.json", "a.json"]).code(0);
    promote(&p, "m3", &["b.json"]).code(0);
    promote(&p, "m3", &["a.json"]).code(0);
    promote(&p, "m4", &["a.json", "a.json", "b.json", "b.json"]).code(0);
    let one = files(&p.path("m1"));
    for d in ["m2", "m3", "m4"] {
        assert_eq!(files(&p.path(d)), one, "{d} differs from m1");
    }
    // Promoting a packet already consumed changes nothing, and says so.
    let r = promote(&p, "m1", &["a.json"]);
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["written"], false);
    assert_eq!(v["added"], serde_json::json!([]));
    assert_eq!(v["already_consumed"].as_array().unwrap().len(), 1);
    assert_eq!(files(&p.path("m1")), one);
    let r = p.nx(&["promote", "--out", "m1", "--packets", "b.json"]);
    r.code(0);
    assert!(r.stderr.contains("unchanged"), "{}", r.stderr);
    // What is in them.
    let sig = p.json("m1/runtime_signatures.json");
    assert_eq!(sig["consumed_packets"].as_array().unwrap().len(), 2);
    assert_eq!(sig["conflicts"], serde_json::json!([]));
    let versions = sig["profiles"]["no-etc"].as_object().unwrap();
    assert_eq!(versions.len(), 1, "one profile definition");
    let (key, entry) = versions.iter().next().unwrap();
    assert_eq!(entry["profile_digest"]["blake3"], *key);
    assert_eq!(entry["digest_context"], "profile-definition");
    let s = &entry["scenarios"]["read-hostname"];
    assert_eq!(s["decision"], "deny");
    assert_eq!(s["attribution"], "profile-shaped");
    assert_eq!(s["stage"], "operation");
    assert_eq!(s["oracle"], "deny");
    assert_eq!(s["expected"], serde_json::json!(["deny"]));
    assert_eq!(s["packets"], 2);
    assert_eq!(entry["scenarios"]["read-os-release"]["decision"], "allow");
    let ops = p.json("m1/op_runtime_summary.json");
    assert_eq!(ops["operations"]["file-read"]["scenarios"], 2);
    assert_eq!(ops["operations"]["file-read"]["decisions"]["deny"], 1);
    assert_eq!(
        ops["operations"]["file-read"]["by_profile"]["no-etc"]["allow"],
        1
    );
    let links = p.json("m1/runtime_links.json");
    let rows = links["profiles"]["no-etc"][key.as_str()]["probes"]["read-hostname"]
        .as_array()
        .unwrap();
    assert_eq!(rows.len(), 2, "both runs back the scenario");
    let runs: Vec<&str> = rows.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert!(runs.contains(&a["run_id"].as_str().unwrap()));
    assert!(runs.contains(&b["run_id"].as_str().unwrap()));
    assert_eq!(
        rows.iter().find(|r| r["run_id"] == a["run_id"]).unwrap()["artifact_index_blake3"],
        a["bundle"]["artifact_index"]["blake3"]
    );
    for (schema, f) in [
        ("runtime-signatures", "runtime_signatures.json"),
        ("op-runtime-summary", "op_runtime_summary.json"),
        ("runtime-links", "runtime_links.json"),
    ] {
        check_schema(schema, &p.path(&format!("m1/{f}")));
    }
}

#[test]
fn the_same_behaviour_gives_the_same_signature_across_runs() {
    let p = Project::copy_of("promote/project");
    p.run_and_emit("clean", "a.json");
    p.run_and_emit("clean", "b.json");
    promote(&p, "only-a", &["a.json"]).code(0);
    promote(&p, "only-b", &["b.json"]).code(0);
    let sig = |d: &str| {
        let v = p.json(&format!("{d}/runtime_signatures.json"));
        let (_, entry) = v["profiles"]["no-etc"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .map(|(k, e)| (k.clone(), e.clone()))
            .unwrap();
        entry["signature"]["blake3"].as_str().unwrap().to_string()
    };
    assert_eq!(sig("only-a"), sig("only-b"));
    // The files differ (they name different packets), the signature does not.
    assert_ne!(
        std::fs::read(p.path("only-a/runtime_links.json")).unwrap(),
        std::fs::read(p.path("only-b/runtime_links.json")).unwrap()
    );
    assert!(
        !std::fs::read_to_string(p.path("only-a/runtime_signatures.json"))
            .unwrap()
            .contains("started_at")
    );
}

/// Point the `marker` plan at `<project>/marker` (both runs use the same plan, profile and
/// probe definitions; only the host changes between them).
fn marker_plan(p: &Project) {
    let path = p.path("plans/marker/plan.json");
    let mut plan = read_json(&path);
    plan["variables"]["MARKER"] = Value::from(p.path("marker").to_str().unwrap());
    std::fs::write(&path, serde_json::to_vec_pretty(&plan).unwrap()).unwrap();
}

#[test]
fn packets_that_disagree_record_a_conflict_never_last_writer_wins() {
    let p = Project::copy_of("promote/project");
    marker_plan(&p);
    std::fs::write(p.path("marker"), "here\n").unwrap();
    let a = p.run_and_emit("marker", "present.json");
    std::fs::remove_file(p.path("marker")).unwrap();
    p.run("marker", &[]).code(1); // the read now fails: an inconclusive mismatch
    p.emit(&p.latest(), "absent.json", &[]).code(0);
    let b = p.json("absent.json");
    assert_eq!(a["promotability"]["promotable"], true);
    assert_eq!(b["promotability"]["promotable"], true, "{b:#}");
    assert_eq!(a["plan"]["plan_digest"], b["plan"]["plan_digest"]);
    for order in [
        ["present.json", "absent.json"],
        ["absent.json", "present.json"],
    ] {
        let dir = format!("m-{}", order[0]);
        let r = promote(&p, &dir, &order);
        r.code(0);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["conflicts"].as_array().unwrap().len(), 1);
    }
    assert_eq!(
        files(&p.path("m-present.json")),
        files(&p.path("m-absent.json"))
    );
    let sig = p.json("m-present.json/runtime_signatures.json");
    let entry = sig["profiles"]["plain"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    let s = &entry["scenarios"]["read-marker"];
    assert_eq!(s["decision"], "conflict", "{s:#}");
    assert_eq!(s["conflict"], true);
    assert_eq!(s["packets"], 2);
    assert_eq!(entry["conflicts"], 1);
    let c = &sig["conflicts"][0];
    assert_eq!(c["scenario_id"], "plain:read-marker");
    assert!(
        c["fields"]
            .as_array()
            .unwrap()
            .contains(&Value::from("decision"))
    );
    let sides = c["sides"].as_array().unwrap();
    assert_eq!(sides.len(), 2);
    let decisions: Vec<&str> = sides
        .iter()
        .map(|s| s["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, vec!["allow", "error"]);
    let runs: Vec<&Value> = sides.iter().map(|s| &s["runs"][0]).collect();
    assert_eq!(runs, vec![&a["run_id"], &b["run_id"]]);
    let ops = p.json("m-present.json/op_runtime_summary.json");
    assert_eq!(ops["totals"]["decisions"]["conflict"], 1);
    // The human view names the conflict.
    let r = p.nx(&[
        "promote",
        "--out",
        "m-human",
        "--packets",
        "present.json",
        "absent.json",
    ]);
    r.code(0);
    assert!(
        r.stderr.contains("conflict: plain:read-marker") && r.stderr.contains("1 conflict(s)"),
        "{}",
        r.stderr
    );
}

#[test]
fn non_promotable_packets_are_refused_with_their_reasons_and_nothing_is_written() {
    let p = Project::copy_of("promote/project");
    p.run_and_emit("clean", "good.json");
    p.nx(&[
        "run",
        "--plan",
        "plans/clean/plan.json",
        "--out",
        "out",
        "--channel",
        "direct",
    ])
    .code(0);
    p.emit(&p.latest(), "direct.json", &[]).code(0);
    let r = p.nx(&[
        "promote",
        "--out",
        "maps",
        "--packets",
        "good.json",
        "direct.json",
    ]);
    r.code(1);
    assert!(
        r.stderr
            .contains("direct.json: the packet is not promotable")
            && r.stderr.contains("not-clean-channel"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was written"), "{}", r.stderr);
    for f in FILES {
        assert!(!p.path(&format!("maps/{f}")).exists(), "{f} written");
    }
    // An edited packet (made to look promotable) is refused: derived again from its
    // bundle, it is not what it claims.
    let mut forged = p.json("direct.json");
    forged["promotability"]["promotable"] = Value::Bool(true);
    forged["promotability"]["reasons"] = serde_json::json!([]);
    forged["promotability"]["gating_inputs"]["channel"] = Value::from("clean");
    std::fs::write(p.path("forged.json"), serde_json::to_vec(&forged).unwrap()).unwrap();
    let r = promote(&p, "maps", &["forged.json"]);
    r.code(1);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let details = v["refused"][0]["details"].to_string();
    assert!(details.contains("not-clean-channel"), "{details}");
    assert!(
        details.contains("/promotability/gating_inputs/channel"),
        "{details}"
    );
    // A verdict that contradicts its own inputs is refused before anything is read.
    let mut lying = p.json("direct.json");
    lying["promotability"]["promotable"] = Value::Bool(true);
    lying["promotability"]["reasons"] = serde_json::json!([]);
    std::fs::write(p.path("lying.json"), serde_json::to_vec(&lying).unwrap()).unwrap();
    let r = p.nx(&["promote", "--out", "maps", "--packets", "lying.json"]);
    r.code(1);
    assert!(
        r.stderr.contains("its own gating inputs say otherwise"),
        "{}",
        r.stderr
    );
    // Not a packet at all: exit 2.
    std::fs::write(p.path("junk.json"), b"{\"hello\": 1}").unwrap();
    let r = p.nx(&["promote", "--out", "maps", "--packets", "junk.json"]);
    r.code(2);
    assert!(r.stderr.contains("not a promotion packet"), "{}", r.stderr);
    assert!(!p.path("maps/runtime_links.json").exists());
}

#[test]
fn a_packet_whose_bundle_changed_is_refused_by_promote_and_summarize_ops() {
    let p = Project::copy_of("promote/project");
    let packet = p.run_and_emit("clean", "pk.json");
    let bundle = p.path(packet["bundle"]["pointer"].as_str().unwrap());
    let f = bundle.join("summary.json");
    make_writable(&f);
    edit_json(&f, |v| {
        v["status"] = Value::from("ok");
        v["exit_reason"] = Value::from("edited");
    });
    let r = p.nx(&["promote", "--out", "maps", "--packets", "pk.json"]);
    r.code(1);
    assert!(
        r.stderr
            .contains("the bundle changed since the packet was emitted")
            && r.stderr.contains("summary.json"),
        "{}",
        r.stderr
    );
    assert!(!p.path("maps/runtime_links.json").exists());
    let r = p.nx(&["summarize-ops", "--packet", "pk.json"]);
    r.code(1);
    assert!(
        r.stderr.contains("changed since the packet was emitted"),
        "{}",
        r.stderr
    );
    // summarize-ops from the bundle itself refuses it with the problem named.
    let r = p.nx(&["summarize-ops", "--bundle", bundle.to_str().unwrap()]);
    r.code(1);
    assert!(
        r.stderr.contains("not a valid sealed bundle") && r.stderr.contains("summary.json"),
        "{}",
        r.stderr
    );
}

#[test]
fn edited_mappings_are_refused_never_merged_into() {
    let p = Project::copy_of("promote/project");
    p.run_and_emit("clean", "a.json");
    p.run_and_emit("clean", "b.json");
    promote(&p, "maps", &["a.json"]).code(0);
    let path = p.path("maps/runtime_signatures.json");
    let mut sig = read_json(&path);
    let key = sig["profiles"]["no-etc"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    sig["profiles"]["no-etc"][key.as_str()]["scenarios"]["read-hostname"]["decision"] =
        Value::from("allow");
    std::fs::write(&path, serde_json::to_vec_pretty(&sig).unwrap()).unwrap();
    let before = std::fs::read(p.path("maps/runtime_links.json")).unwrap();
    let r = p.nx(&["promote", "--out", "maps", "--packets", "b.json"]);
    r.code(2);
    assert!(
        r.stderr
            .contains("runtime_signatures.json is not what runtime_links.json derives"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(p.path("maps/runtime_links.json")).unwrap(),
        before
    );
    // A directory with only some of the files is refused too.
    std::fs::create_dir_all(p.path("partial")).unwrap();
    std::fs::copy(
        p.path("maps/runtime_links.json"),
        p.path("partial/runtime_links.json"),
    )
    .unwrap();
    let r = p.nx(&["promote", "--out", "partial", "--packets", "b.json"]);
    r.code(2);
    assert!(r.stderr.contains("incomplete"), "{}", r.stderr);
    // The sorted runs' private directory beside the mappings is gone after a refusal as
    // after a success.
    promote(&p, "maps2", &["a.json", "b.json"]).code(0);
    let left: Vec<String> = std::fs::read_dir(p.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".nexusmon-promote-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn summarize_ops_counts_per_operation_from_a_bundle_or_a_packet() {
    let p = Project::copy_of("promote/project");
    let packet = p.run_and_emit("clean", "pk.json");
    let bundle = packet["bundle"]["pointer"].as_str().unwrap().to_string();
    let r = p.nx(&["summarize-ops", "--bundle", &bundle]);
    r.code(0);
    assert!(r.stdout.contains("file-read"), "{}", r.stdout);
    assert!(r.stdout.contains("no-etc: allow 1, deny 1"), "{}", r.stdout);
    let r = p.nx(&["--json", "summarize-ops", "--bundle", "out"]);
    r.code(0);
    let from_bundle: Value = serde_json::from_str(&r.stdout).unwrap();
    let op = &from_bundle["operations"]["file-read"];
    assert_eq!(op["scenarios"], 2);
    assert_eq!(op["decisions"]["allow"], 1);
    assert_eq!(op["decisions"]["deny"], 1);
    assert_eq!(op["attribution"]["profile-shaped"], 1);
    assert_eq!(op["attribution"]["unaffected"], 1);
    assert_eq!(op["scenarios_with_mismatches"], 0);
    assert_eq!(from_bundle["source"]["kind"], "bundle");
    let r = p.nx(&[
        "summarize-ops",
        "--packet",
        "pk.json",
        "--out",
        "ops/summary.json",
    ]);
    r.code(0);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let from_packet = p.json("ops/summary.json");
    assert_eq!(from_packet["operations"], from_bundle["operations"]);
    assert_eq!(from_packet["source"]["kind"], "packet");
    assert_eq!(from_packet["source"]["promotable"], true);
    check_schema("op-summary", &p.path("ops/summary.json"));
    // Mismatches are counted per kind.
    marker_plan(&p);
    p.run("marker", &[]).code(1);
    let r = p.nx(&["--json", "summarize-ops", "--bundle", "out"]);
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["operations"]["file-read"]["mismatches"]["inconclusive"],
        1
    );
    assert_eq!(v["operations"]["file-read"]["decisions"]["error"], 1);
    assert_eq!(v["operations"]["file-read"]["attribution"]["none"], 1);
}
