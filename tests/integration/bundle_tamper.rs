//! The tamper suite: every tamper of [`tampers`] (edits of every member, re-sealed
//! forgeries, hardlinks, modes, directories, swapped indexes, `LATEST` rollbacks, forged
//! and foreign runs, signature tampers) is applied to a fresh copy of a project holding two
//! sealed quickstart runs, in four setups, and must be detected: `validate-bundle` exits 1
//! and `emit-promotion --require-promotable` writes no packet.
//!
//! - signed bundles with a trust file, with and without the state directory, and unsigned
//!   bundles with the state directory: every tamper is detected, except (signed, no state
//!   directory) deleting the newest bundle and rolling `LATEST` back to an older intact
//!   one, which only the audit log can tell;
//! - unsigned bundles without a state directory: the tampers that re-seal the bundle
//!   consistently cannot be detected; the set that is not is exactly [`UNDETECTABLE`], and
//!   each is named in the README's documented limit.

#![allow(clippy::many_single_char_names)] // t(ampers), m(ember), c(ase), b(ytes), l(atest)

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use nexusmon::util::digest::blake3_hex;
use serde_json::Value;

use crate::util::{Project, read_json, repo_root, run_in, ssh_keygen, ssh_pubkey};

/// The tampers an unsigned bundle without a state directory cannot reveal: each rewrites
/// the evidence and re-seals it consistently (or replaces it with another consistent
/// bundle). Listed in the README ("What cannot be detected").
const UNDETECTABLE: &[&str] = &[
    "delete-newest-and-roll-latest-back",
    "latest-rollback-behind-a-forged-lock",
    "foreign-bundle",
    "forged-new-run",
    "resealed-add-log",
    "resealed-audit-head-edit",
    "resealed-audit-head-removed",
    "resealed-forgery",
    "resealed-forgery-summary",
    "resealed-forgery-with-attacker-key",
    "resealed-index-meta",
    "resealed-status-edit",
];

/// What only the audit log catches for a signed bundle without a state directory.
const NEEDS_THE_LOG: &[&str] = &[
    "delete-newest-and-roll-latest-back",
    "latest-rollback-behind-a-forged-lock",
];

/// One setup of the base project.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Setup {
    signed: bool,
    state: bool,
}

/// A base project: two quickstart runs (A, then B, which `LATEST` names).
struct Base {
    p: Project,
    a: String,
    b: String,
    setup: Setup,
}

fn base(setup: Setup) -> Base {
    let p = Project::shipped();
    if setup.state {
        p.nx(&["init"]).code(0);
    }
    let key = ssh_keygen(p.root(), "runner", "ed25519");
    ssh_keygen(p.root(), "attacker", "ed25519");
    std::fs::write(
        p.path("trust"),
        format!(
            "# nexusmon: require-signed-bundles\nci namespaces=\"nexusmon-bundle-v1\" {} ci@host roles=runner\n",
            ssh_pubkey(&key)
        ),
    )
    .unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut args = vec![
            "run",
            "--plan",
            "plans/quickstart/plan.json",
            "--out",
            "out",
        ];
        let k = key.to_string_lossy().into_owned();
        if setup.signed {
            args.extend(["--sign-with", &k]);
        }
        p.nx(&args).code(0);
        ids.push(latest(p.root()));
    }
    // A foreign project's bundle (another key, unsigned without one, no shared log).
    let f = Project::shipped();
    let fk = ssh_keygen(f.root(), "foreign", "ed25519");
    let mut args = vec![
        "run",
        "--plan",
        "plans/quickstart/plan.json",
        "--out",
        "out",
    ];
    let fks = fk.to_string_lossy().into_owned();
    if setup.signed {
        args.extend(["--sign-with", &fks]);
    }
    f.nx(&args).code(0);
    let fid = latest(f.root());
    cp_a(&f.path("out").join(&fid), &p.path("foreign").join(&fid));
    Base {
        p,
        a: ids[0].clone(),
        b: ids[1].clone(),
        setup,
    }
}

fn latest(root: &Path) -> String {
    read_json(&root.join("out/LATEST"))["run_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn cp_a(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// What a tamper works on: a copy of the base project.
struct Case<'a> {
    root: PathBuf,
    base: &'a Base,
}

impl Case<'_> {
    fn out(&self) -> PathBuf {
        self.root.join("out")
    }
    fn b(&self) -> PathBuf {
        self.out().join(&self.base.b)
    }
    fn a(&self) -> PathBuf {
        self.out().join(&self.base.a)
    }
    fn signed(&self) -> bool {
        self.base.setup.signed
    }
}

fn write(p: &Path, bytes: &[u8]) {
    // The tests run as root: a read-only (0444) file can be written without a mode change,
    // so the mode check is not what catches a content edit.
    std::fs::write(p, bytes).unwrap();
}

fn edit(p: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(p).unwrap();
    assert!(s.contains(from), "{}: no `{from}`", p.display());
    write(p, s.replacen(from, to, 1).as_bytes());
}

/// Files under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    crate::bundle::files_under(dir)
}

/// Re-seal `dir` as an attacker would: `BLAKE3SUMS` and every index entry recomputed from
/// what is on disk, `file_count` and `total_bytes` with them, and `LATEST` if it names the
/// run. The signature files are left as they are.
fn reseal(dir: &Path) {
    let skip = [
        "artifact_index.json",
        "artifact_index.sig",
        "bundle.intoto.json",
        "BLAKE3SUMS",
    ];
    let members: Vec<String> = files(dir)
        .into_iter()
        .filter(|f| !skip.contains(&f.as_str()))
        .collect();
    let mut sums = String::new();
    for m in &members {
        let _ = writeln!(
            sums,
            "{}  {m}",
            blake3_hex(&std::fs::read(dir.join(m)).unwrap())
        );
    }
    write(&dir.join("BLAKE3SUMS"), sums.as_bytes());
    let mut all = members.clone();
    all.push("BLAKE3SUMS".into());
    all.sort();
    let idx_path = dir.join("artifact_index.json");
    let mut ix: Value = read_json(&idx_path);
    let entries: Vec<Value> = all
        .iter()
        .map(|m| {
            let b = std::fs::read(dir.join(m)).unwrap();
            serde_json::json!({"path": m, "size": b.len(), "blake3": blake3_hex(&b)})
        })
        .collect();
    ix["total_bytes"] = entries
        .iter()
        .map(|e| e["size"].as_u64().unwrap())
        .sum::<u64>()
        .into();
    ix["file_count"] = entries.len().into();
    ix["entries"] = entries.into();
    write_index(dir, &ix);
}

/// Write `ix` as the index of `dir` and point `LATEST` at it when it names the run.
fn write_index(dir: &Path, ix: &Value) {
    let bytes = serde_json::to_vec_pretty(ix).unwrap();
    write(&dir.join("artifact_index.json"), &bytes);
    let latest = dir.parent().unwrap().join("LATEST");
    let mut l: Value = read_json(&latest);
    if l["run_id"] == ix["run_id"] {
        l["artifact_index_blake3"] = blake3_hex(&bytes).into();
        write(&latest, &serde_json::to_vec_pretty(&l).unwrap());
    }
}

fn point_latest(out: &Path, run: &str) {
    let b = std::fs::read(out.join(run).join("artifact_index.json")).unwrap();
    let mut l: Value = read_json(&out.join("LATEST"));
    l["run_id"] = run.into();
    l["artifact_index_blake3"] = blake3_hex(&b).into();
    write(&out.join("LATEST"), &serde_json::to_vec_pretty(&l).unwrap());
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

type Tamper = Box<dyn Fn(&Case<'_>) -> bool>;

/// Every tamper, by name. One returns `false` when it does not apply to the setup (the
/// signature tampers on unsigned bundles).
fn tampers(members: &[String]) -> Vec<(String, Tamper)> {
    let mut t: Vec<(String, Tamper)> = Vec::new();
    let mut add = |name: &str, f: Tamper| t.push((name.to_string(), f));
    // Generated: one byte of every sealed member flipped.
    for m in members {
        let m = m.clone();
        add(
            &format!("flip-byte:{m}"),
            Box::new(move |c| {
                let p = c.b().join(&m);
                let mut b = std::fs::read(&p).unwrap();
                if b.is_empty() {
                    b.push(b'x');
                } else {
                    let i = b.len() / 2;
                    b[i] ^= 0x20;
                }
                write(&p, &b);
                true
            }),
        );
    }
    // The forgery of the issue: one `deny` made `allow`, re-sealed consistently.
    add(
        "resealed-forgery",
        Box::new(|c| {
            edit(
                &c.b().join("runtime_results.jsonl"),
                "\"outcome\":\"deny\"",
                "\"outcome\":\"allow\"",
            );
            reseal(&c.b());
            true
        }),
    );
    add(
        "resealed-forgery-summary",
        Box::new(|c| {
            edit(
                &c.b().join("summary.json"),
                "\"status\": \"ok\"",
                "\"status\": \"ok\" ",
            );
            reseal(&c.b());
            true
        }),
    );
    add(
        "resealed-forgery-with-attacker-key",
        Box::new(|c| {
            // Edit, then seal the whole tree again with nexusmon itself, signed by the
            // attacker's key, under the same run id.
            let b = c.b();
            edit(
                &b.join("runtime_results.jsonl"),
                "\"outcome\":\"deny\"",
                "\"outcome\":\"allow\"",
            );
            let src = c.root.join("forge-src");
            std::fs::create_dir_all(&src).unwrap();
            for f in files(&b) {
                if [
                    "artifact_index.json",
                    "artifact_index.sig",
                    "bundle.intoto.json",
                    "BLAKE3SUMS",
                    "run_status.json",
                ]
                .contains(&f.as_str())
                {
                    continue;
                }
                let d = src.join(&f);
                std::fs::create_dir_all(d.parent().unwrap()).unwrap();
                std::fs::copy(b.join(&f), d).unwrap();
            }
            let forged_out = c.root.join("forge-out");
            run_in(
                &c.root,
                &[
                    "__bundle-write",
                    "--out",
                    forged_out.to_str().unwrap(),
                    "--from",
                    src.to_str().unwrap(),
                    "--run-id",
                    &c.base.b,
                    "--sign-with",
                    c.root.join("keys/attacker").to_str().unwrap(),
                ],
            )
            .code(0);
            std::fs::remove_dir_all(&b).unwrap();
            cp_a(&forged_out.join(&c.base.b), &b);
            point_latest(&c.out(), &c.base.b);
            true
        }),
    );
    add(
        "sums-consistent-edit",
        Box::new(|c| {
            let b = c.b();
            edit(
                &b.join("runtime_results.jsonl"),
                "\"outcome\":\"deny\"",
                "\"outcome\":\"allow\"",
            );
            let digest = blake3_hex(&std::fs::read(b.join("runtime_results.jsonl")).unwrap());
            let sums = std::fs::read_to_string(b.join("BLAKE3SUMS")).unwrap();
            let sums: String = sums
                .lines()
                .map(|l| {
                    if l.ends_with("  runtime_results.jsonl") {
                        format!("{digest}  runtime_results.jsonl\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            write(&b.join("BLAKE3SUMS"), sums.as_bytes());
            true
        }),
    );
    add(
        "sums-line-added",
        Box::new(|c| {
            let p = c.b().join("BLAKE3SUMS");
            let mut s = std::fs::read_to_string(&p).unwrap();
            let _ = writeln!(s, "{}  extra.json", "0".repeat(64));
            write(&p, s.as_bytes());
            true
        }),
    );
    add(
        "truncate-file",
        Box::new(|c| {
            let p = c.b().join("runtime_results.jsonl");
            let b = std::fs::read(&p).unwrap();
            write(&p, &b[..b.len() / 2]);
            true
        }),
    );
    add(
        "append-to-file",
        Box::new(|c| {
            let p = c.b().join("summary.md");
            let mut b = std::fs::read(&p).unwrap();
            b.extend_from_slice(b"\nall good\n");
            write(&p, &b);
            true
        }),
    );
    add(
        "delete-file",
        Box::new(|c| {
            std::fs::remove_file(c.b().join("expected_matrix.json")).unwrap();
            true
        }),
    );
    add(
        "add-unindexed-file",
        Box::new(|c| {
            write(&c.b().join("notes.txt"), b"reviewed: fine\n");
            chmod(&c.b().join("notes.txt"), 0o444);
            true
        }),
    );
    add(
        "add-empty-directory",
        Box::new(|c| {
            std::fs::create_dir(c.b().join("extra")).unwrap();
            true
        }),
    );
    add(
        "add-directory-with-file",
        Box::new(|c| {
            std::fs::create_dir_all(c.b().join("logs/extra")).unwrap();
            write(&c.b().join("logs/extra/x.stdout"), b"x");
            true
        }),
    );
    add(
        "hardlink-from-outside",
        Box::new(|c| {
            // A second name outside the bundle: whoever holds it can change the evidence.
            std::fs::hard_link(c.b().join("runtime_results.jsonl"), c.root.join("handle")).unwrap();
            true
        }),
    );
    add(
        "member-replaced-by-shared-inode",
        Box::new(|c| {
            let p = c.b().join("summary.json");
            let outside = c.root.join("shared.json");
            std::fs::copy(&p, &outside).unwrap();
            chmod(&outside, 0o444);
            std::fs::remove_file(&p).unwrap();
            std::fs::hard_link(&outside, &p).unwrap();
            true
        }),
    );
    add(
        "chmod-writable",
        Box::new(|c| {
            chmod(&c.b().join("runtime_results.jsonl"), 0o644);
            true
        }),
    );
    add(
        "chmod-setuid",
        Box::new(|c| {
            chmod(&c.b().join("summary.md"), 0o4444);
            true
        }),
    );
    add(
        "index-writable",
        Box::new(|c| {
            chmod(&c.b().join("artifact_index.json"), 0o664);
            true
        }),
    );
    add(
        "symlink-for-member",
        Box::new(|c| {
            let p = c.b().join("summary.json");
            let outside = c.root.join("summary-copy.json");
            std::fs::copy(&p, &outside).unwrap();
            std::fs::remove_file(&p).unwrap();
            std::os::unix::fs::symlink(&outside, &p).unwrap();
            true
        }),
    );
    add(
        "swap-index-between-runs",
        Box::new(|c| {
            std::fs::copy(
                c.a().join("artifact_index.json"),
                c.b().join("artifact_index.json"),
            )
            .unwrap();
            true
        }),
    );
    add(
        "swap-index-and-signature-between-runs",
        Box::new(|c| {
            for f in [
                "artifact_index.json",
                "artifact_index.sig",
                "bundle.intoto.json",
            ] {
                if c.a().join(f).exists() {
                    std::fs::copy(c.a().join(f), c.b().join(f)).unwrap();
                }
            }
            let mut ix: Value = read_json(&c.b().join("artifact_index.json"));
            ix["run_id"] = c.base.b.clone().into();
            write_index(&c.b(), &ix);
            true
        }),
    );
    add(
        "swap-bundle-directories",
        Box::new(|c| {
            let tmp = c.out().join("swap");
            std::fs::rename(c.a(), &tmp).unwrap();
            std::fs::rename(c.b(), c.a()).unwrap();
            std::fs::rename(&tmp, c.b()).unwrap();
            point_latest(&c.out(), &c.base.b);
            true
        }),
    );
    add(
        "latest-rollback",
        Box::new(|c| {
            point_latest(&c.out(), &c.base.a);
            true
        }),
    );
    // A lock record left by a dead writer that names the newer run looks like a run killed
    // between publishing its bundle and updating LATEST (which is not a rollback).
    add(
        "latest-rollback-behind-a-forged-lock",
        Box::new(|c| {
            point_latest(&c.out(), &c.base.a);
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
            let rec = serde_json::json!({
                "pid": 999_999_999u32,
                "host": host.trim(),
                "started_at": "2026-01-01T00:00:00Z",
                "run_id": c.base.b,
            });
            write(&c.out().join(".lock"), rec.to_string().as_bytes());
            true
        }),
    );
    add(
        "delete-newest-and-roll-latest-back",
        Box::new(|c| {
            std::fs::remove_dir_all(c.b()).unwrap();
            point_latest(&c.out(), &c.base.a);
            true
        }),
    );
    add(
        "latest-digest-edited",
        Box::new(|c| {
            let mut l: Value = read_json(&c.out().join("LATEST"));
            l["artifact_index_blake3"] = "0".repeat(64).into();
            write(
                &c.out().join("LATEST"),
                &serde_json::to_vec_pretty(&l).unwrap(),
            );
            true
        }),
    );
    add(
        "resealed-audit-head-edit",
        Box::new(|c| {
            let mut ix: Value = read_json(&c.b().join("artifact_index.json"));
            ix["audit_head"] = serde_json::json!({"seq": 1, "blake3": "a".repeat(64)});
            write_index(&c.b(), &ix);
            true
        }),
    );
    add(
        "resealed-audit-head-removed",
        Box::new(|c| {
            let mut ix: Value = read_json(&c.b().join("artifact_index.json"));
            let had = ix.as_object_mut().unwrap().remove("audit_head").is_some();
            if !had {
                ix["tool_version"] = "0.0.0".into();
            }
            write_index(&c.b(), &ix);
            true
        }),
    );
    add(
        "index-audit-head-malformed",
        Box::new(|c| {
            let mut ix: Value = read_json(&c.b().join("artifact_index.json"));
            ix["audit_head"] = serde_json::json!({"seq": 1, "blake3": "not hex"});
            write_index(&c.b(), &ix);
            true
        }),
    );
    add(
        "resealed-status-edit",
        Box::new(|c| {
            edit(
                &c.b().join("run_status.json"),
                "\"started_at\": \"",
                "\"started_at\": \"1",
            );
            reseal(&c.b());
            true
        }),
    );
    add(
        "resealed-index-meta",
        Box::new(|c| {
            let mut ix: Value = read_json(&c.b().join("artifact_index.json"));
            ix["plan_digest"]["blake3"] = "b".repeat(64).into();
            write_index(&c.b(), &ix);
            true
        }),
    );
    add(
        "index-entries-reordered",
        Box::new(|c| {
            let mut ix: Value = read_json(&c.b().join("artifact_index.json"));
            ix["entries"].as_array_mut().unwrap().swap(0, 1);
            write_index(&c.b(), &ix);
            true
        }),
    );
    add(
        "resealed-add-log",
        Box::new(|c| {
            std::fs::create_dir_all(c.b().join("logs/scenario")).unwrap();
            write(
                &c.b().join("logs/scenario/net-deny-all:extra.stdout"),
                b"all allowed\n",
            );
            chmod(
                &c.b().join("logs/scenario/net-deny-all:extra.stdout"),
                0o444,
            );
            reseal(&c.b());
            true
        }),
    );
    add(
        "resealed-delete-result",
        Box::new(|c| {
            std::fs::remove_file(c.b().join("summary.md")).unwrap();
            reseal(&c.b());
            true
        }),
    );
    add(
        "forged-new-run",
        Box::new(|c| {
            // A copy of B under a new run id, an outcome edited, re-sealed, published.
            let id = format!("{}-forged", c.base.b);
            let f = c.out().join(&id);
            cp_a(&c.b(), &f);
            for rel in ["run_status.json", "artifact_index.json"] {
                edit(
                    &f.join(rel),
                    &format!("\"run_id\": \"{}\"", c.base.b),
                    &format!("\"run_id\": \"{id}\""),
                );
            }
            edit(
                &f.join("runtime_results.jsonl"),
                "\"outcome\":\"deny\"",
                "\"outcome\":\"allow\"",
            );
            reseal(&f);
            point_latest(&c.out(), &id);
            true
        }),
    );
    add(
        "foreign-bundle",
        Box::new(|c| {
            let src = std::fs::read_dir(c.root.join("foreign"))
                .unwrap()
                .flatten()
                .next()
                .unwrap();
            let id = src.file_name().to_string_lossy().into_owned();
            cp_a(&src.path(), &c.out().join(&id));
            point_latest(&c.out(), &id);
            true
        }),
    );
    add(
        "signature-deleted",
        Box::new(|c| {
            if !c.signed() {
                return false;
            }
            std::fs::remove_file(c.b().join("artifact_index.sig")).unwrap();
            true
        }),
    );
    add(
        "envelope-deleted",
        Box::new(|c| {
            if !c.signed() {
                return false;
            }
            std::fs::remove_file(c.b().join("bundle.intoto.json")).unwrap();
            true
        }),
    );
    add(
        "both-signature-files-deleted",
        Box::new(|c| {
            if !c.signed() {
                return false;
            }
            std::fs::remove_file(c.b().join("artifact_index.sig")).unwrap();
            std::fs::remove_file(c.b().join("bundle.intoto.json")).unwrap();
            true
        }),
    );
    add(
        "envelope-payload-edited",
        Box::new(|c| {
            if !c.signed() {
                return false;
            }
            let p = c.b().join("bundle.intoto.json");
            let mut env: Value = read_json(&p);
            env["payload"] = "e30=".into(); // `{}`
            write(&p, &serde_json::to_vec_pretty(&env).unwrap());
            true
        }),
    );
    add(
        "signature-by-attacker-key",
        Box::new(|c| {
            if !c.signed() {
                return false;
            }
            let idx = c.root.join("idx");
            std::fs::copy(c.b().join("artifact_index.json"), &idx).unwrap();
            let st = Command::new("ssh-keygen")
                .args(["-q", "-Y", "sign", "-f"])
                .arg(c.root.join("keys/attacker"))
                .args(["-n", "nexusmon-bundle-v1"])
                .arg(&idx)
                .status()
                .unwrap();
            assert!(st.success());
            std::fs::copy(c.root.join("idx.sig"), c.b().join("artifact_index.sig")).unwrap();
            true
        }),
    );
    add(
        "resealed-forgery-keeping-old-signature",
        Box::new(|c| {
            if !c.signed() {
                return false;
            }
            edit(
                &c.b().join("runtime_results.jsonl"),
                "\"outcome\":\"deny\"",
                "\"outcome\":\"allow\"",
            );
            reseal(&c.b());
            true
        }),
    );
    t
}

/// Apply `tamper` to a fresh copy of `base`; `None` when it does not apply, else whether
/// it was caught: `validate-bundle` exits 1, or `emit-promotion --require-promotable`
/// writes no packet (a bundle can check out and still not be promotable: a result file
/// removed and the seal rewritten leaves a complete-looking index, but not the results a
/// run writes).
fn detected(base: &Base, tamper: &Tamper) -> Option<(bool, String)> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("p");
    cp_a(base.p.root(), &root);
    let case = Case {
        root: root.clone(),
        base,
    };
    if !tamper(&case) {
        return None;
    }
    let mut v = vec!["validate-bundle", "--bundle", "out"];
    let mut e = vec![
        "emit-promotion",
        "--bundle",
        "out",
        "--out",
        "pk/p.json",
        "--require-promotable",
    ];
    if base.setup.signed {
        v.extend(["--trust", "trust"]);
        e.extend(["--trust", "trust"]);
    }
    let rv = run_in(&root, &v);
    let re = run_in(&root, &e);
    let refused = re.status != 0 && !root.join("pk/p.json").exists();
    let caught = rv.status == 1 || refused;
    let why = format!(
        "validate exit {}: {}\nemit exit {}: {}",
        rv.status, rv.stdout, re.status, re.stderr
    );
    // What the check finds, promotion refuses.
    assert!(
        rv.status != 1 || refused,
        "validate-bundle caught it, emit-promotion did not\n{why}"
    );
    Some((caught, why))
}

fn suite(setup: Setup) -> (usize, BTreeSet<String>) {
    let base = base(setup);
    // The untampered copy is valid and promotable in every setup.
    let untouched: Tamper = Box::new(|_| true);
    let (caught, why) = detected(&base, &untouched).unwrap();
    assert!(
        !caught,
        "{setup:?}: the untampered bundle is refused\n{why}"
    );
    let members: Vec<String> = files(&base.p.path("out").join(&base.b))
        .into_iter()
        .filter(|f| {
            ![
                "artifact_index.json",
                "artifact_index.sig",
                "bundle.intoto.json",
            ]
            .contains(&f.as_str())
        })
        .collect();
    let mut applied = 0;
    let mut missed = BTreeSet::new();
    for (name, t) in tampers(&members) {
        match detected(&base, &t) {
            None => {}
            Some((true, _)) => applied += 1,
            Some((false, why)) => {
                applied += 1;
                missed.insert(format!("{name}\n{why}"));
            }
        }
    }
    let names: BTreeSet<String> = missed
        .iter()
        .map(|m| m.lines().next().unwrap().to_string())
        .collect();
    (applied, names)
}

#[test]
fn every_tamper_of_a_signed_bundle_is_detected_with_and_without_the_state_directory() {
    let (n, missed) = suite(Setup {
        signed: true,
        state: true,
    });
    assert!(n >= 30, "only {n} tampers applied");
    assert!(
        missed.is_empty(),
        "signed, state directory: undetected {missed:#?}"
    );
    let (n, missed) = suite(Setup {
        signed: true,
        state: false,
    });
    assert!(n >= 30);
    let want: BTreeSet<String> = NEEDS_THE_LOG.iter().map(|s| (*s).to_string()).collect();
    assert_eq!(missed, want, "signed, no state directory");
}

#[test]
fn every_tamper_of_an_unsigned_bundle_is_detected_through_the_audit_log() {
    let (n, missed) = suite(Setup {
        signed: false,
        state: true,
    });
    assert!(n >= 30, "only {n} tampers applied");
    assert!(
        missed.is_empty(),
        "unsigned, state directory: undetected {missed:#?}"
    );
}

#[test]
fn without_signature_or_state_directory_only_the_documented_tampers_go_unseen() {
    let (n, missed) = suite(Setup {
        signed: false,
        state: false,
    });
    assert!(n >= 30, "only {n} tampers applied");
    let want: BTreeSet<String> = UNDETECTABLE.iter().map(|s| (*s).to_string()).collect();
    assert_eq!(missed, want, "unsigned, no state directory");
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    for t in UNDETECTABLE.iter().chain(NEEDS_THE_LOG) {
        assert!(
            readme.contains(&format!("`{t}`")),
            "README does not list `{t}`"
        );
    }
}
