//! `emit-promotion` through the real binary: a clean run's packet is promotable, and every
//! reason of `DESIGN.md` §7 is produced for real (a direct channel, a tampered bundle, a
//! repair, a best-effort downgrade, a killed run, a crashed writer, a runner started under
//! `setpriv --no-new-privs`, a preflight that cannot apply, deleted files, a mission whose
//! approvals are gone). The in-toto Statement is checked with the in-toto reference tooling
//! (Python `in-toto-attestation`), the packet against its JSON Schema, and the audit anchor
//! with `audit verify`. Fixtures: `tests/fixtures/promote/project`.

#![allow(clippy::many_single_char_names)] // p(roject), b(undle), r(esult), a/b (packets), v(alue), g(ating inputs)

use std::path::{Path, PathBuf};
use std::process::Command;

use nexusmon::util::digest::{blake3_hex, sha256_hex};
use serde_json::Value;

pub use crate::util::read_json;
use crate::util::{Project, bin, copy_dir, nexusmon, python, repo_root, run_in};

/// The packet's reasons, as strings.
pub fn reasons(packet: &Value) -> Vec<String> {
    packet["promotability"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

/// Copy a sealed bundle into a fresh out root of the project (`<name>/<run_id>`), so one
/// run can be damaged several ways. Sealed files are read-only; the copies are writable.
fn copy_bundle(p: &Project, bundle: &Path, name: &str) -> PathBuf {
    let dest = p.path(name).join(bundle.file_name().unwrap());
    copy_dir(bundle, &dest);
    dest
}

pub fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Python's in-toto reference implementation parses and validates the Statement, and the
/// sha256 of each named subject is recomputed with hashlib.
const PY_INTOTO: &str = r#"
import hashlib, json, sys
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
text = open(sys.argv[1]).read()
pb = json_format.Parse(text, statement_pb2.Statement())
Statement.copy_from_pb(pb).validate()
by_name = {s.name: s for s in pb.subject}
for pair in sys.argv[2:]:
    name, path = pair.split("=", 1)
    d = by_name[name].digest
    assert d["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest(), name
    assert len(d["blake3"]) == 64, name
print(f"valid statement: {len(pb.subject)} subjects, predicate {pb.predicate_type}")
"#;

/// Validate the Statement beside `packet_path` with the in-toto tooling; every subject's
/// digests are checked against the files (blake3 here, sha256 in Python).
pub fn check_statement(p: &Project, packet_path: &Path) -> Value {
    let name = packet_path.file_name().unwrap().to_str().unwrap();
    let stmt_path = packet_path.with_file_name(name.replace(".json", ".intoto.json"));
    let stmt = read_json(&stmt_path);
    let packet = read_json(packet_path);
    assert_eq!(stmt["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        stmt["predicateType"],
        "https://nexusmon.dev/promotion-packet/v1"
    );
    assert_eq!(
        stmt["predicate"]["promotability"]["promotable"],
        packet["promotability"]["promotable"]
    );
    assert_eq!(
        stmt["predicate"]["promotability"]["reasons"],
        packet["promotability"]["reasons"]
    );
    assert_eq!(
        stmt["predicate"]["plan"]["plan_digest"],
        packet["plan"]["plan_digest"]
    );
    // Every subject names a file whose bytes have those digests.
    let mut pairs = Vec::new();
    let pointer_of = |member: &str| -> PathBuf {
        let all = packet["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .chain(std::iter::once(&packet["bundle"]["artifact_index"]));
        let a = all.into_iter().find(|a| a["member"] == member).unwrap();
        assert_eq!(packet["bundle"]["pointer_base"], "project-root");
        p.path(a["path"].as_str().unwrap())
    };
    let subjects = stmt["subject"].as_array().unwrap();
    assert!(subjects.iter().any(|s| s["name"] == name));
    for s in subjects {
        let n = s["name"].as_str().unwrap();
        let file = if n == name {
            packet_path.to_path_buf()
        } else {
            pointer_of(n)
        };
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(s["digest"]["blake3"], blake3_hex(&bytes), "{n}");
        assert_eq!(s["digest"]["sha256"], sha256_hex(&bytes), "{n}");
        pairs.push(format!("{n}={}", file.display()));
    }
    let out = python(&["in_toto_attestation", "google.protobuf"], PY_INTOTO)
        .arg(&stmt_path)
        .args(&pairs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "in-toto validation failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    stmt
}

/// Validate `file` against `schemas/<schema>.schema.json` with Python's jsonschema.
pub fn check_schema(schema: &str, file: &Path) {
    let script = r"
import json, sys
from jsonschema import Draft202012Validator
v = Draft202012Validator(json.load(open(sys.argv[1])))
errors = [f'{list(e.absolute_path)}: {e.message}' for e in v.iter_errors(json.load(open(sys.argv[2])))]
print('\n'.join(errors))
sys.exit(1 if errors else 0)
";
    let out = python(&["jsonschema"], script)
        .arg(repo_root().join(format!("schemas/{schema}.schema.json")))
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} does not validate against {schema}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------

#[test]
fn a_clean_run_gives_a_promotable_packet_whose_pointers_and_statement_check_out() {
    let p = Project::copy_of("promote/project");
    p.run("clean", &[]).code(0);
    let bundle = p.latest();
    // The out root resolves through LATEST.
    let r = p.emit(&p.path("out"), "promotion/promotion_packet.json", &[]);
    r.code(0);
    assert!(r.stderr.contains("promotable yes"), "{}", r.stderr);
    let packet_path = p.path("promotion/promotion_packet.json");
    let packet = read_json(&packet_path);
    assert_eq!(packet["packet_version"], 1);
    assert_eq!(packet["promotability"]["promotable"], true, "{packet:#}");
    assert_eq!(reasons(&packet), Vec::<String>::new());
    let run_id = bundle.file_name().unwrap().to_str().unwrap();
    assert_eq!(packet["run_id"], run_id);
    assert_eq!(packet["plan"]["plan_id"], "clean");
    assert_eq!(packet["plan"]["kind"], "experiment");
    assert_eq!(packet["bundle"]["pointer"], format!("out/{run_id}"));
    assert_eq!(packet["bundle"]["pointer_base"], "project-root");
    assert_eq!(packet["bundle"]["verified"], true);
    assert_eq!(packet["governance"], Value::Null, "ungoverned run");
    assert_eq!(packet["audit_head"], Value::Null);
    let g = &packet["promotability"]["gating_inputs"];
    assert_eq!(g["channel"], "clean");
    assert_eq!(g["runner_confined"], false);
    assert_eq!(g["index"]["verified"], true);
    assert_eq!(g["run_status"], "complete");
    // The index pointer is the digest LATEST records.
    let latest = p.json("out/LATEST");
    assert_eq!(
        packet["bundle"]["artifact_index"]["blake3"],
        latest["artifact_index_blake3"]
    );
    // Every pointer is project-relative and names the bytes it records.
    let members: Vec<&str> = packet["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["member"].as_str().unwrap())
        .collect();
    for m in [
        "run_manifest.json",
        "apply_preflight.json",
        "expected_matrix.json",
        "runtime_results.jsonl",
        "baseline_results.jsonl",
        "oracle_results.jsonl",
        "runtime_events.normalized.jsonl",
        "mismatch_summary.json",
        "mismatch_packets.jsonl",
        "summary.json",
        "summary.md",
        "run_status.json",
    ] {
        assert!(members.contains(&m), "{m} not pointed to: {members:?}");
    }
    let mut sorted = members.clone();
    sorted.sort_unstable();
    assert_eq!(members, sorted, "artifacts are sorted");
    for a in packet["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&packet["bundle"]["artifact_index"]])
    {
        let path = a["path"].as_str().unwrap();
        assert_eq!(
            path,
            format!("out/{run_id}/{}", a["member"].as_str().unwrap())
        );
        let bytes = std::fs::read(p.path(path)).unwrap();
        assert_eq!(a["blake3"], blake3_hex(&bytes), "{path}");
        assert_eq!(a["sha256"], sha256_hex(&bytes), "{path}");
        assert_eq!(a["size"], bytes.len() as u64, "{path}");
    }
    // Summary counts from the bundle.
    let s = &packet["summary"];
    assert_eq!(s["status"], "ok");
    assert_eq!(s["scenarios"], 2);
    assert_eq!(s["outcomes"]["scenario"]["deny"], 1);
    assert_eq!(s["attribution"]["profile-shaped"], 1);
    assert_eq!(s["mismatches_total"], 0);
    check_schema("promotion-packet", &packet_path);
    let stmt = check_statement(&p, &packet_path);
    assert_eq!(stmt["predicate"]["run_id"], run_id);
    let names: Vec<&str> = stmt["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"artifact_index.json") && names.contains(&"promotion_packet.json"));
}

#[test]
fn an_existing_packet_is_never_overwritten_silently_and_emission_is_reproducible() {
    let p = Project::copy_of("promote/project");
    p.run("clean", &[]).code(0);
    let b = p.latest();
    p.emit(&b, "pk.json", &[]).code(0);
    let first = std::fs::read(p.path("pk.json")).unwrap();
    let stmt = std::fs::read(p.path("pk.intoto.json")).unwrap();
    let r = p.emit(&b, "pk.json", &[]);
    r.code(2);
    assert!(
        r.stderr.contains("already exists") && r.stderr.contains("--overwrite"),
        "{}",
        r.stderr
    );
    // Without a state directory nothing in a packet depends on when it was emitted.
    p.emit(&b, "pk.json", &["--overwrite"]).code(0);
    assert_eq!(std::fs::read(p.path("pk.json")).unwrap(), first);
    assert_eq!(std::fs::read(p.path("pk.intoto.json")).unwrap(), stmt);
    // Inside the sealed bundle, a packet would be an unindexed file that invalidates it.
    let inside = b.join("promotion/pk.json");
    let r = p.emit(&b, inside.to_str().unwrap(), &[]);
    r.code(2);
    assert!(r.stderr.contains("lies inside the bundle"), "{}", r.stderr);
    assert!(!b.join("promotion").exists());
    p.nx(&["validate-bundle", "--bundle", b.to_str().unwrap()])
        .code(0);
    // A packet named like a bundle file would make two subjects with one name.
    let r = p.emit(&b, "summary.json", &[]);
    r.code(2);
    assert!(r.stderr.contains("collides"), "{}", r.stderr);
    assert!(!p.path("summary.json").exists());
}

#[test]
fn the_direct_channel_gives_not_clean_channel_and_require_promotable_writes_nothing() {
    let p = Project::copy_of("promote/project");
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
    let b = p.latest();
    let r = p.emit(&b, "direct.json", &[]);
    r.code(0);
    assert!(
        r.stderr.contains("NOT promotable") && r.stderr.contains("not-clean-channel"),
        "{}",
        r.stderr
    );
    let packet = p.json("direct.json");
    assert_eq!(reasons(&packet), vec!["not-clean-channel"]);
    assert_eq!(packet["promotability"]["promotable"], false);
    assert_eq!(
        packet["promotability"]["gating_inputs"]["channel"],
        "direct"
    );
    check_statement(&p, &p.path("direct.json"));
    // --require-promotable: exit 1, the reasons said, nothing written.
    let r = p.emit(&b, "refused.json", &["--require-promotable"]);
    r.code(1);
    assert!(r.stderr.contains("not-clean-channel"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was written"), "{}", r.stderr);
    assert!(!p.path("refused.json").exists());
    assert!(!p.path("refused.intoto.json").exists());
    let r = p.nx(&[
        "--json",
        "emit-promotion",
        "--bundle",
        b.to_str().unwrap(),
        "--out",
        "refused.json",
        "--require-promotable",
    ]);
    r.code(1);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["written"], false);
    assert_eq!(v["promotable"], false);
    assert_eq!(v["reasons"][0]["reason"], "not-clean-channel");
    assert!(
        v["reasons"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("direct")
    );
    assert!(!p.path("refused.json").exists());
    // A clean run with --require-promotable writes.
    p.run("clean", &[]).code(0);
    p.emit(&p.latest(), "ok.json", &["--require-promotable"])
        .code(0);
    assert_eq!(p.json("ok.json")["promotability"]["promotable"], true);
}

#[test]
fn a_tampered_bundle_gives_integrity_unverified_and_a_repaired_one_bundle_repaired() {
    let p = Project::copy_of("promote/project");
    p.run("clean", &[]).code(0);
    let b = p.latest();
    let md = b.join("summary.md");
    make_writable(&md);
    let mut text = std::fs::read_to_string(&md).unwrap();
    text.push_str("\nall good, trust me\n");
    std::fs::write(&md, text).unwrap();
    let r = p.emit(&b, "tampered.json", &[]);
    r.code(0);
    assert!(r.stderr.contains("NOT promotable"), "{}", r.stderr);
    let packet = p.json("tampered.json");
    assert_eq!(reasons(&packet), vec!["bundle-integrity-unverified"]);
    let g = &packet["promotability"]["gating_inputs"];
    assert_eq!(g["index"]["verified"], false);
    assert!(
        g["index"]["problems"]
            .as_array()
            .unwrap()
            .contains(&Value::from("size-mismatch")),
        "{g:#}"
    );
    assert_eq!(packet["bundle"]["verified"], false);
    // The pointer records the bytes as found, not as sealed.
    let a = packet["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["member"] == "summary.md")
        .unwrap();
    assert_eq!(a["blake3"], blake3_hex(&std::fs::read(&md).unwrap()));
    // Repair: the index is rewritten and says so; the packet says bundle-repaired.
    p.nx(&[
        "reindex-bundle",
        "--bundle",
        b.to_str().unwrap(),
        "--repair",
    ])
    .code(0);
    p.emit(&b, "repaired.json", &[]).code(0);
    let packet = p.json("repaired.json");
    assert_eq!(reasons(&packet), vec!["bundle-repaired"]);
    assert_eq!(packet["bundle"]["repaired"], true);
    assert_eq!(packet["bundle"]["verified"], true);
    assert!(
        packet["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["member"] == "repair_log.json"),
        "the repair log is pointed to"
    );
}

#[test]
fn a_best_effort_downgrade_gives_apply_partial() {
    let p = Project::copy_of("promote/project");
    p.run("best-effort", &[]).code(0);
    p.emit(&p.latest(), "pk.json", &[]).code(0);
    let packet = p.json("pk.json");
    assert_eq!(reasons(&packet), vec!["apply-partial"], "{packet:#}");
    let pf = &packet["promotability"]["gating_inputs"]["preflight"];
    assert_eq!(
        pf["partially_enforced"],
        serde_json::json!(["udp-ports-best-effort"])
    );
    assert_eq!(pf["apply_failed"], serde_json::json!([]));
    let dropped = pf["dropped_rights"]["udp-ports-best-effort"]
        .as_array()
        .unwrap();
    assert!(
        dropped.iter().any(|d| d.as_str().unwrap().contains("udp")),
        "{pf:#}"
    );
}

/// The runner's `run` of `plans/clean`, started through `prefix` (a program that sets up the
/// runner's own confinement and execs the rest of its argv).
fn run_clean_under(p: &Project, prefix: &[&str]) -> PathBuf {
    let out = Command::new(prefix[0])
        .args(&prefix[1..])
        .arg(bin())
        .args([
            "run",
            "--plan",
            "plans/clean/plan.json",
            "--out",
            "out",
            "--channel",
            "clean",
        ])
        .current_dir(p.root())
        .env_remove("NEXUSMON_STATE_DIR")
        .env_remove("NEXUSMON_ROOT")
        .env("NEXUSMON_SCRATCH_PARENT", crate::util::scratch_parent())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.latest()
}

/// An allow-everything seccomp filter installed before exec: the runner starts in seccomp
/// mode 2 with nothing denied, which must still count as a confined runner.
const SECCOMP_EXEC: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
filt = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0x7FFF0000))
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = Prog(1, ctypes.cast(filt, ctypes.c_void_p))
assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
assert libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0, ctypes.get_errno()
os.execv(sys.argv[1], sys.argv[1:])
"#;

#[test]
fn no_new_privs_alone_is_recorded_but_a_seccomp_filtered_runner_gives_already_sandboxed() {
    // No-new-privs (as a container with allowPrivilegeEscalation: false starts the runner):
    // both lanes set it on every child anyway, so the children and outcomes are the same.
    let p = Project::copy_of("promote/project");
    let b = run_clean_under(&p, &["setpriv", "--no-new-privs"]);
    let host = &read_json(&b.join("run_manifest.json"))["host"];
    assert_eq!(host["runner_no_new_privs"], true);
    assert_eq!(host["runner_seccomp_mode"], 0);
    p.emit(&b, "pk.json", &[]).code(0);
    let packet = p.json("pk.json");
    assert_eq!(reasons(&packet), Vec::<String>::new(), "{packet:#}");
    let g = &packet["promotability"]["gating_inputs"];
    assert_eq!(g["runner_confined"], false);
    assert_eq!(g["runner_no_new_privs"], true);

    // A seccomp filter on the runner (even one that allows everything) is confinement the
    // children inherit, which the profile's evidence must not be mistaken for.
    let p = Project::copy_of("promote/project");
    let b = run_clean_under(&p, &["python3", "-c", SECCOMP_EXEC]);
    assert_eq!(
        read_json(&b.join("run_manifest.json"))["host"]["runner_seccomp_mode"],
        2
    );
    p.emit(&b, "pk.json", &[]).code(0);
    let packet = p.json("pk.json");
    assert_eq!(reasons(&packet), vec!["already-sandboxed"]);
    let g = &packet["promotability"]["gating_inputs"];
    assert_eq!(g["runner_confined"], true);
    assert_eq!(g["runner_seccomp_mode"], 2);
}

#[test]
fn a_hard_profile_the_kernel_cannot_enforce_gives_apply_failed() {
    // `udp-ports-hard` pins Landlock ABI 10 (UDP port rules); this kernel has ABI 7. The
    // other profile's lanes run and the bundle is complete, but not promotable.
    let p = Project::copy_of("promote/project");
    p.run("hard", &[]).code(5);
    p.emit(&p.latest(), "pk.json", &[]).code(0);
    let packet = p.json("pk.json");
    assert_eq!(reasons(&packet), vec!["apply-failed"], "{packet:#}");
    assert_eq!(packet["bundle"]["status"], "complete");
    assert_eq!(
        packet["promotability"]["gating_inputs"]["preflight"]["apply_failed"],
        serde_json::json!(["udp-ports-hard"])
    );
}

#[test]
fn a_required_preflight_that_cannot_apply_gives_bundle_failed() {
    let p = Project::copy_of("promote/project");
    p.run("preflight-fails", &[]).code(5);
    let runs: Vec<PathBuf> = std::fs::read_dir(p.path("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("artifact_index.json").is_file())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        read_json(&runs[0].join("run_status.json"))["status"],
        "failed"
    );
    p.emit(&runs[0], "pk.json", &[]).code(0);
    let packet = p.json("pk.json");
    let r = reasons(&packet);
    assert!(r.contains(&"bundle-failed".to_string()), "{r:?}");
    assert!(r.contains(&"apply-failed".to_string()), "{r:?}");
    assert_eq!(packet["bundle"]["status"], "failed");
    assert_eq!(
        packet["bundle"]["verified"], true,
        "a failed bundle is still sealed"
    );
}

#[test]
fn deleting_an_artifact_then_repairing_gives_its_missing_reason() {
    let p = Project::copy_of("promote/project");
    p.run("clean", &[]).code(0);
    let b = p.latest();
    for (file, reason) in [
        ("run_manifest.json", "manifest-missing"),
        ("apply_preflight.json", "apply-preflight-missing"),
        ("oracle_results.jsonl", "decision-stage-artifacts-missing"),
        ("mismatch_packets.jsonl", "decision-stage-artifacts-missing"),
    ] {
        let copy = copy_bundle(&p, &b, &format!("damaged-{file}"));
        std::fs::remove_file(copy.join(file)).unwrap();
        p.nx(&[
            "reindex-bundle",
            "--bundle",
            copy.to_str().unwrap(),
            "--repair",
        ])
        .code(0);
        let out = format!("{file}.packet.json");
        p.emit(&copy, &out, &[]).code(0);
        let packet = p.json(&out);
        let r = reasons(&packet);
        for want in [reason, "bundle-repaired", "bundle-incomplete"] {
            assert!(r.contains(&want.to_string()), "{file}: {r:?}");
        }
        let g = &packet["promotability"]["gating_inputs"];
        assert!(
            g["index"]["missing"]
                .as_array()
                .unwrap()
                .contains(&Value::from(file)),
            "{file}: {g:#}"
        );
        assert_eq!(packet["promotability"]["promotable"], false);
        if file == "run_manifest.json" {
            // No manifest: the channel and the runner's confinement are unknown, which
            // never counts as clean; the plan is still named from summary.json.
            assert!(r.contains(&"not-clean-channel".to_string()), "{r:?}");
            assert!(r.contains(&"already-sandboxed".to_string()), "{r:?}");
            assert_eq!(packet["plan"]["plan_id"], "clean");
            assert_eq!(g["manifest"], "missing");
        }
    }
    // run_status.json: the repair refuses a bundle without one, so the packet of the
    // damaged bundle as it is says both.
    let copy = copy_bundle(&p, &b, "no-status");
    std::fs::remove_file(copy.join("run_status.json")).unwrap();
    p.emit(&copy, "no-status.json", &[]).code(0);
    let r = reasons(&p.json("no-status.json"));
    assert!(r.contains(&"run-status-missing".to_string()), "{r:?}");
    assert!(
        r.contains(&"bundle-integrity-unverified".to_string()),
        "{r:?}"
    );
    // A file that is there but does not parse counts as missing.
    let copy = copy_bundle(&p, &b, "garbled");
    let f = copy.join("runtime_results.jsonl");
    make_writable(&f);
    std::fs::write(&f, b"{not json").unwrap();
    p.nx(&[
        "reindex-bundle",
        "--bundle",
        copy.to_str().unwrap(),
        "--repair",
    ])
    .code(0);
    p.emit(&copy, "garbled.json", &[]).code(0);
    let packet = p.json("garbled.json");
    assert_eq!(
        packet["promotability"]["gating_inputs"]["decision_artifacts_missing"],
        serde_json::json!(["runtime_results.jsonl"])
    );
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn a_crashed_writer_leaves_a_staging_bundle_whose_packet_is_bundle_in_progress() {
    let p = Project::copy_of("promote/project");
    p.run("clean", &[]).code(0);
    // The real result files of a run, written again by the real writer, which is killed
    // before the seal.
    let src = p.path("files");
    copy_dir(&p.latest(), &src);
    for f in ["artifact_index.json", "BLAKE3SUMS", "run_status.json"] {
        std::fs::remove_file(src.join(f)).unwrap();
    }
    let st = nexusmon(p.root())
        .args([
            "__bundle-write",
            "--out",
            p.path("crash").to_str().unwrap(),
            "--run-id",
            "20261124T000000.000Z-0000c0de",
            "--from",
            src.to_str().unwrap(),
            "--crash-at",
            "after-files",
        ])
        .output()
        .unwrap();
    assert!(!st.status.success());
    let staged = p.path("crash/.staging/20261124T000000.000Z-0000c0de");
    assert!(staged.join("run_manifest.json").is_file());
    let r = p.emit(&staged, "staged.json", &[]);
    r.code(0);
    let packet = p.json("staged.json");
    let rs = reasons(&packet);
    for want in [
        "bundle-in-progress",
        "bundle-integrity-unverified",
        "bundle-incomplete",
    ] {
        assert!(rs.contains(&want.to_string()), "{rs:?}");
    }
    assert_eq!(packet["bundle"]["status"], "in_progress");
    assert_eq!(packet["bundle"]["verified"], false);
    assert_eq!(packet["bundle"]["artifact_index"], Value::Null);
    let g = &packet["promotability"]["gating_inputs"];
    assert_eq!(g["index"]["staging"], true);
    assert_eq!(g["index"]["state"], "missing");
    // The manifest was read without verification: its facts are still reported.
    assert_eq!(g["channel"], "clean");
    check_statement(&p, &p.path("staged.json"));
    p.emit(&staged, "x.json", &["--require-promotable"]).code(1);
}

#[test]
fn a_killed_run_leaves_a_staging_bundle_whose_packet_is_bundle_in_progress() {
    let p = Project::copy_of("promote/project");
    let mut child = nexusmon(p.root())
        .args([
            "run",
            "--plan",
            "plans/slow/plan.json",
            "--out",
            "out",
            "--channel",
            "clean",
            "-q",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until the run has staged its manifest, then kill it.
    let staging = p.path("out/.staging");
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    let staged = loop {
        let found = std::fs::read_dir(&staging).ok().and_then(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .find(|d| d.join("run_manifest.json").is_file())
        });
        if let Some(d) = found {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never staged a manifest"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGKILL) };
    child.wait().unwrap();
    let r = p.emit(&staged, "killed.json", &[]);
    r.code(0);
    let packet = p.json("killed.json");
    let rs = reasons(&packet);
    assert!(rs.contains(&"bundle-in-progress".to_string()), "{rs:?}");
    assert!(
        rs.contains(&"decision-stage-artifacts-missing".to_string()),
        "{rs:?}"
    );
    assert_eq!(packet["bundle"]["status"], "in_progress");
    assert_eq!(
        packet["promotability"]["gating_inputs"]["run_status"],
        "in_progress"
    );
    assert!(r.stderr.contains("NOT promotable"), "{}", r.stderr);
    // Killing the runner leaves its sleeping probe behind; end it (and only it): the
    // process whose working directory is in this run's scratch root.
    let scratch = read_json(&staged.join("run_manifest.json"))["scratch"]
        .as_str()
        .unwrap()
        .to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_link(e.path().join("cwd")).is_ok_and(|c| c.starts_with(&scratch)) {
            // SAFETY: a signal to a process this test's run started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn a_packet_outside_the_project_points_relative_to_its_own_directory() {
    let p = Project::copy_of("promote/project");
    p.run("clean", &[]).code(0);
    let b = p.latest();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = elsewhere.path().join("packets/pk.json");
    // The bundle is not beneath the project root the command sees (--root elsewhere).
    let r = run_in(
        p.root(),
        &[
            "--root",
            elsewhere.path().to_str().unwrap(),
            "emit-promotion",
            "--bundle",
            b.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    r.code(0);
    let packet = read_json(&out);
    assert_eq!(packet["bundle"]["pointer_base"], "packet-dir");
    let ptr = packet["bundle"]["pointer"].as_str().unwrap();
    assert!(ptr.starts_with("../"), "{ptr}");
    let resolved = out.parent().unwrap().join(ptr);
    assert_eq!(
        std::fs::canonicalize(resolved).unwrap(),
        std::fs::canonicalize(&b).unwrap()
    );
    // summarize-ops follows the packet's pointers from anywhere.
    let r = run_in(
        elsewhere.path(),
        &["--json", "summarize-ops", "--packet", out.to_str().unwrap()],
    );
    r.code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["totals"]["scenarios"], 2);
    assert_eq!(v["source"]["kind"], "packet");
}
