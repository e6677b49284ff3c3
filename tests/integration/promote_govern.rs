//! Packets of governed runs: the governance slot (gate record, approvals re-checked in the
//! bundle: record digest, SSH signature, plan digest), `approval-missing` produced for real
//! by taking a mission's approvals away, the audit head a packet anchors (`audit verify`
//! checks it) and the `promotion` audit entries, and `evolve` consuming a real packet of a
//! governed mission run.

#![allow(clippy::many_single_char_names)] // p(roject), b(undle), r(esult), a/b (packets), v(alue), g(ating inputs)

use std::path::{Path, PathBuf};

use nexusmon::util::digest::blake3_hex;
use serde_json::Value;

use crate::promote::{check_schema, reasons};
use crate::util::{Project, copy_dir, ssh_approver, ssh_sign};

/// The fixture project with `nexusmon init` run.
fn governed() -> Project {
    let p = Project::copy_of("promote/project");
    p.nx(&["init"]).code(0);
    p
}

/// Generate an ed25519 key for `name` with ssh-keygen and trust it as an approver.
fn approver(p: &Project, name: &str) -> PathBuf {
    ssh_approver(
        p.root(),
        &p.path(".nexusmon/trusted_signers"),
        name,
        "ed25519",
    )
}

/// An approval record for `plan` by `name`, written by `approve` and signed with
/// `ssh-keygen -Y sign`.
fn approve(p: &Project, plan: &str, name: &str, key: &Path) -> String {
    let rel = format!("records/{plan}.{name}.json");
    p.nx(&[
        "approve",
        "--plan",
        &format!("plans/{plan}/plan.json"),
        "--approver",
        name,
        "--out",
        &rel,
    ])
    .code(0);
    ssh_sign(key, "nexusmon-approval-v1", &p.path(&rel));
    rel
}

fn audit_kinds(p: &Project) -> Vec<Value> {
    std::fs::read_to_string(p.path(".nexusmon/audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_approved_mission_is_promotable_and_loses_it_when_its_approvals_are_gone() {
    let p = governed();
    let key = approver(&p, "alice");
    // Without its approval the rank-A mission does not run at all.
    p.run("mission-a", &[]).code(4);
    let record = approve(&p, "mission-a", "alice", &key);
    p.run("mission-a", &["--approval", &record]).code(0);
    let bundle = p.latest();
    p.emit(&bundle, "pk.json", &[]).code(0);
    let packet = p.json("pk.json");
    assert_eq!(packet["promotability"]["promotable"], true, "{packet:#}");
    assert_eq!(packet["plan"]["kind"], "mission");
    assert_eq!(packet["plan"]["rank"], "A");
    let gov = &packet["governance"];
    assert_eq!(gov["kind"], "mission");
    assert_eq!(gov["rank"], "A");
    assert_eq!(gov["required_approvals"], 1);
    assert_eq!(gov["valid_approvals"], 1);
    assert_eq!(gov["approvers"], serde_json::json!(["alice"]));
    assert_eq!(gov["gate_record"]["member"], "governance/gate.json");
    let a = &gov["approvals"][0];
    assert_eq!(a["approver"], "alice");
    assert_eq!(a["verified"], true, "{a:#}");
    assert!(
        a["key_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    let rec = bundle.join(a["record"]["member"].as_str().unwrap());
    assert_eq!(
        a["record"]["blake3"],
        blake3_hex(&std::fs::read(&rec).unwrap())
    );
    assert_eq!(
        a["signature"]["member"],
        format!("{}.sig", a["record"]["member"].as_str().unwrap())
    );
    let g = &packet["promotability"]["gating_inputs"]["approvals"];
    assert_eq!(g["required"], 1);
    assert_eq!(g["carried"], 1);
    assert_eq!(g["gate_record"], true);
    // The gate record's anchored audit head is the index's.
    let index: Value = crate::util::read_json(&bundle.join("artifact_index.json"));
    assert_eq!(gov["audit_head"], index["audit_head"]);
    check_schema("promotion-packet", &p.path("pk.json"));

    // The signatures gone from the bundle (repaired, so the bundle verifies again): the
    // approval is no longer proven.
    let copy = p.path("damaged").join(bundle.file_name().unwrap());
    copy_dir(&bundle, &copy);
    for e in std::fs::read_dir(copy.join("governance/approvals")).unwrap() {
        let e = e.unwrap().path();
        if e.extension().is_some_and(|x| x == "sig") {
            std::fs::remove_file(e).unwrap();
        }
    }
    p.nx(&[
        "reindex-bundle",
        "--bundle",
        copy.to_str().unwrap(),
        "--repair",
    ])
    .code(0);
    p.emit(&copy, "nosig.json", &[]).code(0);
    let packet = p.json("nosig.json");
    let r = reasons(&packet);
    assert!(r.contains(&"approval-missing".to_string()), "{r:?}");
    assert!(r.contains(&"bundle-repaired".to_string()), "{r:?}");
    let a = &packet["governance"]["approvals"][0];
    assert_eq!(a["verified"], false);
    assert!(
        a["problem"].as_str().unwrap().contains("signature"),
        "{a:#}"
    );
    assert_eq!(
        packet["promotability"]["gating_inputs"]["approvals"]["carried"],
        0
    );

    // A record whose bytes changed after the gate verified it does not count either.
    let copy = p.path("edited").join(bundle.file_name().unwrap());
    copy_dir(&bundle, &copy);
    let rec = copy.join(
        packet["governance"]["approvals"][0]["record"]["member"]
            .as_str()
            .unwrap(),
    );
    crate::promote::make_writable(&rec);
    let text = std::fs::read_to_string(&rec)
        .unwrap()
        .replace("alice", "alicf");
    std::fs::write(&rec, text).unwrap();
    p.nx(&[
        "reindex-bundle",
        "--bundle",
        copy.to_str().unwrap(),
        "--repair",
    ])
    .code(0);
    p.emit(&copy, "edited.json", &[]).code(0);
    let packet = p.json("edited.json");
    assert!(reasons(&packet).contains(&"approval-missing".to_string()));
    assert!(
        packet["governance"]["approvals"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("not the ones the gate verified")
    );

    // The governance record gone: a mission bundle without one.
    let copy = p.path("nogate").join(bundle.file_name().unwrap());
    copy_dir(&bundle, &copy);
    std::fs::remove_file(copy.join("governance/gate.json")).unwrap();
    p.nx(&[
        "reindex-bundle",
        "--bundle",
        copy.to_str().unwrap(),
        "--repair",
    ])
    .code(0);
    p.emit(&copy, "nogate.json", &[]).code(0);
    let packet = p.json("nogate.json");
    assert!(reasons(&packet).contains(&"approval-missing".to_string()));
    assert_eq!(packet["governance"], Value::Null);
    assert_eq!(
        packet["promotability"]["gating_inputs"]["approvals"]["gate_record"],
        false
    );
}

#[test]
fn a_governed_packet_anchors_the_audit_head_and_emission_is_audited() {
    let p = governed();
    p.run("clean", &[]).code(0);
    let bundle = p.latest();
    let before = audit_kinds(&p).len();
    let r = p.nx(&[
        "--json",
        "emit-promotion",
        "--bundle",
        bundle.to_str().unwrap(),
        "--out",
        "pk.json",
    ]);
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let packet = p.json("pk.json");
    // The head before emission is anchored in the packet; the promotion entry follows it.
    let entries = audit_kinds(&p);
    assert_eq!(entries.len(), before + 1);
    let last = entries.last().unwrap();
    assert_eq!(last["kind"], "promotion");
    assert_eq!(packet["audit_head"]["seq"], entries[before - 1]["seq"]);
    assert_eq!(last["data"]["action"], "packet-emitted");
    assert_eq!(
        last["data"]["packet_blake3"],
        blake3_hex(&std::fs::read(p.path("pk.json")).unwrap())
    );
    assert_eq!(last["data"]["promotable"], true);
    assert_eq!(v["audit_head"]["seq"], last["seq"]);
    // The governed experiment carries its gate record.
    assert_eq!(packet["governance"]["kind"], "experiment");
    assert_eq!(packet["promotability"]["promotable"], true);
    // audit verify checks the packet's anchor ...
    let r = p.nx(&["--json", "audit", "verify", "--anchors", "pk.json"]);
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["report"]["ok"], true);
    let sources = v["anchor_sources"].as_array().unwrap();
    assert!(
        sources
            .iter()
            .any(|s| s["source"] == "pk.json" && s["head"] == packet["audit_head"]),
        "{v:#}"
    );
    // ... and a log cut back to before it fails through that anchor.
    let log = p.path(".nexusmon/audit.jsonl");
    let full = std::fs::read_to_string(&log).unwrap();
    let seq = packet["audit_head"]["seq"].as_u64().unwrap();
    let mut cut = String::new();
    for l in full.lines().take(usize::try_from(seq).unwrap()) {
        cut.push_str(l);
        cut.push('\n');
    }
    std::fs::write(&log, cut).unwrap();
    let r = p.nx(&["audit", "verify", "--anchors", "pk.json"]);
    assert_ne!(r.status, 0);
    assert!(
        r.stderr.contains(&format!("pk.json anchors seq {seq}"))
            || r.stdout.contains(&format!("pk.json anchors seq {seq}")),
        "{}{}",
        r.stdout,
        r.stderr
    );
    std::fs::write(&log, full).unwrap();
    // promote records the mapping change once, and nothing when nothing changes.
    p.nx(&["promote", "--out", "maps", "--packets", "pk.json"])
        .code(0);
    let entries = audit_kinds(&p);
    let last = entries.last().unwrap();
    assert_eq!(last["kind"], "promotion");
    assert_eq!(last["data"]["action"], "mappings-updated");
    let n = entries.len();
    p.nx(&["promote", "--out", "maps", "--packets", "pk.json"])
        .code(0);
    assert_eq!(audit_kinds(&p).len(), n);
}

#[test]
fn evolve_consumes_a_real_packet_of_a_governed_mission_run() {
    let p = governed();
    p.run("mission-e", &[]).code(0);
    p.emit(&p.latest(), "mission.json", &["--require-promotable"])
        .code(0);
    let packet = p.json("mission.json");
    assert_eq!(packet["governance"]["rank"], "E");
    assert_eq!(packet["summary"]["tasks"]["failed"], 0);
    let r = p.nx(&["--json", "evolve", "--packets", "mission.json"]);
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["state"]["xp"], 1, "{v:#}");
    assert_eq!(v["state"]["level"], "AWAKENING");
    assert_eq!(v["state"]["missions_passed"], 1);
    let consumed = &v["state"]["consumed"][0];
    assert_eq!(consumed["run_id"], packet["run_id"]);
    assert_eq!(consumed["promotable"], true);
    assert_eq!(consumed["passed"], true);
    // The outcome's identity is the digest promote records for the packet.
    p.nx(&["promote", "--out", "maps", "--packets", "mission.json"])
        .code(0);
    let links = p.json("maps/runtime_links.json");
    assert_eq!(
        links["consumed_packets"][0], consumed["packet_digest"],
        "evolution and mappings name the packet alike"
    );
    // Consumed again: nothing changes.
    let r = p.nx(&["--json", "evolve", "--packets", "mission.json"]);
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["state"]["xp"], 1);
    assert_eq!(v["report"]["already_consumed"].as_array().unwrap().len(), 1);
    // An experiment packet is not a mission outcome.
    p.run("clean", &[]).code(0);
    p.emit(&p.latest(), "exp.json", &[]).code(0);
    let r = p.nx(&["evolve", "--packets", "exp.json"]);
    r.code(0);
    assert!(r.stderr.contains("not a mission packet"), "{}", r.stderr);
}
