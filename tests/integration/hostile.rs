//! Hostile files and places: writes never follow a symlink (every placement of a symlink
//! along each command's output path, generated), nothing from a file, a name, a probe's
//! output or the command line reaches the terminal raw (every human output of every
//! command of a hostile project checked for control bytes), and signature files are read
//! as strictly as `ssh-keygen -Y verify` reads them (generated mutations of a valid one,
//! each judged by both).

#![allow(clippy::many_single_char_names)] // p(roject), b(undle), r(esult), s(trings), f(irst), k(ey)
#![allow(clippy::print_stderr)] // the measured figures (counts, wall time, peak RSS) go to the test log

use std::path::Path;

use serde_json::{Value, json};

use crate::util::{Project, Ran, emit_packet, latest_bundle, ssh_keygen};

/// The text a hostile name carries: an OSC 52 clipboard write, a bell, a screen clear.
const EVIL: &str = "x\u{1b}]52;c;aGk=\u{7}\u{1b}[2J";

// ---------------------------------------------------------------------------------------
// Writes never follow a symlink
// ---------------------------------------------------------------------------------------

/// Every directory on the way to `files` (relative paths), deepest last, without
/// duplicates: where a symlink can be placed.
fn placements(files: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in files {
        let parts: Vec<&str> = f.split('/').collect();
        for n in 1..parts.len() {
            let d = parts[..n].join("/");
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

fn is_empty_dir(d: &Path) -> bool {
    std::fs::read_dir(d).unwrap().next().is_none()
}

/// A command, the files it writes (relative to the project) and the components that
/// already exist in a fresh project (a symlink there replaces a real directory).
struct Writer {
    args: Vec<String>,
    files: Vec<&'static str>,
}

#[test]
fn a_symlink_anywhere_on_a_commands_output_path_is_refused_naming_it_and_nothing_is_written() {
    let p = Project::shipped().init();
    p.run("quickstart", &[]).code(0);
    let bundle = latest_bundle(p.root());
    let b = bundle.to_str().unwrap().to_string();
    let packet = emit_packet(p.root(), &bundle, "promotion/q.json");
    let pk = packet.to_str().unwrap().to_string();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
    let writers = vec![
        Writer {
            args: s(&["plan-build", "--template", "exec-allowlist", "--out", "gen"]),
            files: vec![
                "gen/plans/exec-allowlist/plan.json",
                "gen/registry/exec-allowlist/probes.json",
            ],
        },
        Writer {
            args: s(&[
                "emit-promotion",
                "--bundle",
                &b,
                "--out",
                "promo/sub/p.json",
            ]),
            files: vec!["promo/sub/p.json"],
        },
        Writer {
            args: s(&["promote", "--packets", &pk, "--out", "maps/m"]),
            files: vec!["maps/m/runtime_links.json"],
        },
        Writer {
            args: s(&["report", "--bundle", &b, "--out", "rep/r.html"]),
            files: vec!["rep/r.html"],
        },
        Writer {
            args: s(&["summarize-ops", "--bundle", &b, "--out", "ops/o.json"]),
            files: vec!["ops/o.json"],
        },
        Writer {
            args: s(&["worker-new", "scaffolded"]),
            files: vec![
                "registry/scaffolded/workers.json",
                "plans/scaffolded/plan.json",
                "workers/scaffolded.py",
            ],
        },
        Writer {
            args: s(&[
                "run",
                "--plan",
                "plans/quickstart/plan.json",
                "--out",
                "outx/root",
                "--junit",
                "ju/j.xml",
            ]),
            files: vec!["outx/root/LATEST", "ju/j.xml"],
        },
        Writer {
            args: s(&[
                "approve",
                "--plan",
                "plans/quickstart/plan.json",
                "--approver",
                "alice",
                "--out",
                "appr/x/a.json",
            ]),
            files: vec!["appr/x/a.json"],
        },
        Writer {
            // The default place: `approvals/` beside the plan.
            args: s(&[
                "approve",
                "--plan",
                "plans/quickstart/plan.json",
                "--approver",
                "alice",
            ]),
            files: vec!["plans/quickstart/approvals/quickstart.alice.json"],
        },
    ];
    let mut tried = 0;
    for w in &writers {
        for place in placements(&w.files) {
            // Directories the project already has (`plans`, `registry`, `workers`) are the
            // user's; the places the command creates or writes into are what is tested.
            if matches!(
                place.as_str(),
                "plans" | "registry" | "workers" | "plans/quickstart"
            ) {
                continue;
            }
            let elsewhere = tempfile::tempdir().unwrap();
            let link = p.path(&place);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(elsewhere.path(), &link).unwrap();
            let args: Vec<&str> = w.args.iter().map(String::as_str).collect();
            let r = p.nx(&args);
            tried += 1;
            assert_eq!(
                r.status, 2,
                "{args:?} with a symlink at {place}:\n{}{}",
                r.stdout, r.stderr
            );
            assert!(
                r.stderr.contains(&format!("{place}: is a symbolic link")),
                "{args:?} with a symlink at {place}: {}",
                r.stderr
            );
            assert!(
                is_empty_dir(elsewhere.path()),
                "{args:?} wrote through the symlink at {place}"
            );
            std::fs::remove_file(&link).unwrap();
            // Remove what a refused command may have created on the real side (only the
            // directories leading to the link).
            for top in ["gen", "promo", "maps", "rep", "ops", "outx", "ju", "appr"] {
                let _ = std::fs::remove_dir_all(p.path(top));
            }
            for f in &w.files {
                assert!(!p.path(f).exists(), "{args:?}: {f} was written");
            }
        }
    }
    assert!(tried >= 15, "{tried} placements");

    // The state directory itself.
    let q = Project::shipped();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), q.path(".nexusmon")).unwrap();
    let r = q.nx(&["init"]);
    r.code(2);
    assert!(
        r.stderr.contains(".nexusmon: is a symbolic link"),
        "{}",
        r.stderr
    );
    assert!(is_empty_dir(elsewhere.path()));

    // A symlink at a file's own position is replaced, never followed.
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim.json");
    std::fs::write(&victim, "precious").unwrap();
    p.nx(&["plan-build", "--template", "exec-allowlist", "--out", "gen"])
        .code(0);
    let plan = p.path("gen/plans/exec-allowlist/plan.json");
    std::fs::remove_file(&plan).unwrap();
    std::os::unix::fs::symlink(&victim, &plan).unwrap();
    p.nx(&[
        "plan-build",
        "--template",
        "exec-allowlist",
        "--out",
        "gen",
        "--overwrite",
    ])
    .code(0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(&plan).unwrap().is_file());
}

// ---------------------------------------------------------------------------------------
// No terminal injection
// ---------------------------------------------------------------------------------------

/// Control bytes other than newline and tab in `s`, with their offsets (the first few).
fn raw_controls(s: &str) -> Vec<(usize, u8)> {
    s.bytes()
        .enumerate()
        .filter(|(_, b)| (*b < 0x20 && *b != b'\n' && *b != b'\t') || *b == 0x7f)
        .take(5)
        .collect()
}

#[track_caller]
fn clean(r: &Ran, what: &str) {
    for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        let bad = raw_controls(text);
        assert!(
            bad.is_empty(),
            "{what}: raw control bytes {bad:?} on {stream}:\n{}",
            text.escape_debug()
        );
    }
}

/// A project whose files, names and probe outputs carry terminal escape sequences.
fn hostile_project() -> Project {
    let p = Project::shipped().init();
    // A probe whose notes carry the sequence, and an exec probe that prints it.
    let probes_path = p.path("registry/linux-core/probes.json");
    let mut probes: Value = serde_json::from_slice(&std::fs::read(&probes_path).unwrap()).unwrap();
    probes["probes"]["evil-notes"] = json!({
        "operation": "file-read", "target": "/etc/hostname",
        "notes": format!("notes {EVIL}"), "tags": ["evil"]
    });
    probes["probes"]["evil-output"] = json!({
        "operation": "exec", "driver": "exec",
        "argv": ["/bin/sh", "-c", "printf 'out \\033]52;c;aGk=\\007\\033[2J'; printf 'err \\033[2J\\r' >&2; exit 3"],
        "timeout_ms": 5000,
        "notes": "prints escape sequences and fails", "tags": ["evil"]
    });
    std::fs::write(&probes_path, serde_json::to_vec_pretty(&probes).unwrap()).unwrap();
    // A plan that runs them (the exec probe expected to succeed, so it mismatches and its
    // output is what the reports show).
    let plan = json!({
        "schema_version": 1, "plan_id": "evil", "kind": "experiment",
        "description": format!("a plan {EVIL}"),
        "registry_id": "linux-core", "profiles": ["system-ro"],
        "scenarios": {"system-ro": {"evil-notes": "allow", "evil-output": "allow"}},
        "lanes": {"baseline": true, "scenario": true, "oracle": true},
        "execution": {"timeout_ms": 5000, "retries": 0}
    });
    std::fs::create_dir_all(p.path("plans/evil")).unwrap();
    std::fs::write(
        p.path("plans/evil/plan.json"),
        serde_json::to_vec_pretty(&plan).unwrap(),
    )
    .unwrap();
    // A plan and a template in directories named with the sequence.
    let dir = p.path(&format!("plans/{EVIL}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plan.json"), "{\"schema_version\": 1}").unwrap();
    let tdir = p.path(&format!("templates/{EVIL}"));
    std::fs::create_dir_all(&tdir).unwrap();
    std::fs::write(tdir.join("template.json"), "{\"schema_version\": 1}").unwrap();
    p
}

#[test]
fn no_human_output_of_any_command_carries_a_raw_control_byte_and_json_stays_exact() {
    let p = hostile_project();
    // Two runs (one clean, one hostile) and a bundle member named with the sequence.
    p.run("quickstart", &[]).code(0);
    let first = latest_bundle(p.root());
    let r = p.run("evil", &["-v"]);
    clean(&r, "run -v (evil)");
    let bundle = latest_bundle(p.root());
    std::fs::write(bundle.join(EVIL), b"x").unwrap();
    let b = bundle.to_str().unwrap().to_string();
    let f = first.to_str().unwrap().to_string();
    let pk = emit_packet(p.root(), &first, "promotion/q.json");
    let pk = pk.to_str().unwrap().to_string();
    let evil_path = format!("plans/{EVIL}/plan.json");
    let set = format!("allowed=/usr/bin/{EVIL}");
    let commands: Vec<Vec<&str>> = vec![
        vec!["list-plans"],
        vec!["plan-lint", "plans/evil/plan.json"],
        vec!["plan-lint", &evil_path],
        vec!["list-registries"],
        vec!["list-probes"],
        vec!["list-profiles"],
        vec!["describe-probe", "evil-notes"],
        vec!["describe-probe", EVIL],
        vec!["describe-profile", "system-ro"],
        vec!["registry-lint", "registry/linux-core"],
        vec!["list-templates"],
        vec![
            "plan-build",
            "--template",
            "exec-allowlist",
            "--out",
            "g",
            "--set",
            &set,
        ],
        vec!["plan-build", "--template", EVIL, "--out", "g"],
        vec!["status"],
        vec!["validate-bundle", "--bundle", &b],
        vec!["reindex-bundle", "--bundle", &b, "--strict"],
        vec![
            "emit-promotion",
            "--bundle",
            &b,
            "--out",
            "promotion/e.json",
        ],
        vec!["summarize-ops", "--bundle", &b],
        vec!["promote", "--packets", &pk, "--out", "mappings"],
        vec!["report", "--bundle", &b, "--format", "markdown"],
        vec!["report", "--bundle", &b, "--format", "html"],
        vec!["report", "--bundle", &b, "--format", "junit"],
        vec!["report", "--packet", "promotion/e.json"],
        vec!["diff", &f, &b],
        vec!["diff", &f, &b, "--format", "markdown"],
        vec!["evolve", "--packets", "promotion/e.json"],
        vec!["review", "show", EVIL],
        vec!["omens", "clear", EVIL, "--approver", EVIL],
        vec!["review"],
        vec!["missions"],
        vec!["audit", "verify"],
        vec!["omens", "list"],
        vec!["evolution", "status"],
        vec![
            "trust",
            "add",
            "ssh-ed25519 AAAA",
            "--principal",
            EVIL,
            "--role",
            "approver",
        ],
        vec![
            "approve",
            "--plan",
            "plans/evil/plan.json",
            "--approver",
            EVIL,
        ],
        vec!["worker-new", EVIL],
        vec!["run", "--plan", &evil_path],
        vec!["validate-bundle", "--bundle", EVIL],
        vec![EVIL],
    ];
    for args in &commands {
        let r = p.nx(args);
        clean(&r, &format!("{args:?}"));
    }
    // The sequences did reach the commands (escaped, not dropped).
    let r = p.nx(&["validate-bundle", "--bundle", &b]);
    assert!(
        r.stdout.contains("x\\e]52;c;aGk=\\u{7}\\e[2J"),
        "{}",
        r.stdout
    );
    let r = p.nx(&["describe-probe", "evil-notes"]);
    assert!(
        r.stdout.contains("\\e[2J") || r.stderr.contains("\\e[2J"),
        "{}",
        r.stdout
    );
    // With --json the output is exact JSON: the name comes back byte for byte.
    let r = p.nx(&["--json", "validate-bundle", "--bundle", &b]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert!(v.to_string().contains("\\u001b]52"), "{v}");
    assert!(
        serde_json::to_string(&v)
            .unwrap()
            .contains("x\\u001b]52;c;aGk=\\u0007\\u001b[2J"),
        "{v}"
    );
    for args in [
        vec!["--json", "list-probes"],
        vec!["--json", "describe-probe", "evil-notes"],
        vec!["--json", "list-plans"],
        vec!["--json", "plan-lint", &evil_path],
    ] {
        let r = p.nx(&args);
        for line in r.stdout.lines().filter(|l| !l.trim().is_empty()) {
            if line.starts_with('{') && line.ends_with('}') {
                let _: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{args:?}: {e}: {line}"));
            }
        }
        if !r.stdout.trim().is_empty() && !r.stdout.trim_start().starts_with("{\"") {
            let _: Value = serde_json::from_str(&r.stdout)
                .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", r.stdout));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Signature armour as strict as ssh-keygen
// ---------------------------------------------------------------------------------------

use crate::util::Rng;

/// What `ssh-keygen -Y verify` says of `sig` over `msg`.
fn keygen_accepts(dir: &Path, allowed: &Path, sig: &[u8], msg: &Path) -> bool {
    let sig_path = dir.join("mutated.sig");
    std::fs::write(&sig_path, sig).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(allowed)
        .args(["-I", "op", "-n", "nexusmon-approval-v1", "-s"])
        .arg(&sig_path)
        .stdin(std::fs::File::open(msg).unwrap())
        .output()
        .unwrap();
    out.status.success()
}

/// Mutations of a valid armoured signature, by class.
fn mutations(valid: &[u8], r: &mut Rng) -> Vec<(&'static str, Vec<u8>)> {
    let text = String::from_utf8(valid.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<(&'static str, Vec<u8>)> = vec![
        ("valid", valid.to_vec()),
        ("no trailing newline", valid[..valid.len() - 1].to_vec()),
        ("crlf", text.replace('\n', "\r\n").into_bytes()),
        ("empty", Vec::new()),
        ("header only", format!("{}\n", lines[0]).into_bytes()),
        ("leading blank line", [b"\n".as_slice(), valid].concat()),
        ("leading space", [b" ".as_slice(), valid].concat()),
        ("bom", [b"\xef\xbb\xbf".as_slice(), valid].concat()),
        ("two trailing newlines", [valid, b"\n"].concat()),
        ("twice", [valid, valid].concat()),
    ];
    // Rewrapped body (76-column lines): valid base64 in other lines.
    let body: String = lines[1..lines.len() - 1].concat();
    let mut wrapped = format!("{}\n", lines[0]);
    for c in body.as_bytes().chunks(76) {
        wrapped.push_str(std::str::from_utf8(c).unwrap());
        wrapped.push('\n');
    }
    wrapped.push_str(lines[lines.len() - 1]);
    wrapped.push('\n');
    out.push(("rewrapped", wrapped.into_bytes()));
    for _ in 0..6 {
        let n = 1 + r.below(40);
        let junk: Vec<u8> = (0..n).map(|_| b"abcXYZ019 #-=\n\t"[r.below(15)]).collect();
        out.push(("junk before", [junk.as_slice(), valid].concat()));
        out.push(("junk after", [valid, junk.as_slice()].concat()));
        let bin: Vec<u8> = (0..=r.below(600))
            .map(|_| (r.next() & 0xff) as u8)
            .collect();
        out.push(("binary", bin));
        out.push(("truncated", valid[..r.below(valid.len())].to_vec()));
        let mut flipped = valid.to_vec();
        let i = lines[0].len() + 1 + r.below(body.len());
        flipped[i] ^= 1 << r.below(7);
        out.push(("flipped body byte", flipped));
        let mut spaced = valid.to_vec();
        spaced.insert(lines[0].len() + 1 + r.below(body.len()), b' ');
        out.push(("space in body", spaced));
    }
    out
}

#[test]
fn signature_armour_is_never_more_lenient_than_ssh_keygen_and_junk_before_it_is_malformed() {
    use nexusmon::sign::{SigError, verify_armored};
    let t = tempfile::tempdir().unwrap();
    let key = ssh_keygen(t.path(), "op", "ed25519");
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = t.path().join("allowed");
    std::fs::write(
        &allowed,
        format!(
            "op {}\n",
            pubkey
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
    .unwrap();
    let msg = t.path().join("record.json");
    std::fs::write(&msg, b"{\"approve\": true}\n").unwrap();
    crate::util::ssh_sign(&key, "nexusmon-approval-v1", &msg);
    let valid = std::fs::read(t.path().join("record.json.sig")).unwrap();
    let bytes = std::fs::read(&msg).unwrap();
    let mut r = Rng(0x5eed);
    let (mut both, mut neither, mut only_keygen) = (0, 0, Vec::new());
    for (class, m) in mutations(&valid, &mut r) {
        let ours = verify_armored(&m, "nexusmon-approval-v1", &bytes);
        let theirs = keygen_accepts(t.path(), &allowed, &m, &msg);
        assert!(
            ours.is_err() || theirs,
            "{class}: nexusmon accepts what ssh-keygen refuses: {:?}",
            String::from_utf8_lossy(&m)
        );
        match (ours.is_ok(), theirs) {
            (true, true) => both += 1,
            (false, false) => neither += 1,
            (false, true) => only_keygen.push(class),
            (true, false) => unreachable!(),
        }
        match class {
            "valid" | "rewrapped" | "no trailing newline" => {
                assert!(ours.is_ok(), "{class}: {ours:?}");
            }
            "junk before" | "binary" | "empty" | "bom" | "leading space" | "crlf" => {
                assert!(
                    matches!(ours, Err(SigError::Malformed(_))),
                    "{class}: {ours:?}"
                );
                assert!(!theirs, "{class}: ssh-keygen accepts it");
            }
            _ => {}
        }
    }
    only_keygen.sort_unstable();
    only_keygen.dedup();
    eprintln!(
        "armour mutations: {both} accepted by both, {neither} refused by both; refused only by nexusmon: {only_keygen:?}"
    );
    // Where nexusmon is stricter, it is by design: text after the footer, whitespace in
    // the base64.
    for c in &only_keygen {
        assert!(
            matches!(
                *c,
                "junk after" | "space in body" | "two trailing newlines" | "twice"
            ),
            "{c}"
        );
    }
}

#[test]
fn approvals_with_bad_armour_or_weak_keys_are_refused_with_their_own_reason() {
    let p = Project::shipped().init();
    // A rank-A mission (one approval needed).
    let plan_path = p.path("plans/mission-demo/plan.json");
    let text = std::fs::read_to_string(&plan_path).unwrap();
    std::fs::write(
        &plan_path,
        text.replace("\"rank\": \"C\"", "\"rank\": \"A\""),
    )
    .unwrap();
    let key = p.approver("alice", "ed25519");
    let record = p.approve_unsigned("mission-demo", "alice", &[]);
    p.ssh_sign(&key, "nexusmon-approval-v1", &record);
    let sig = nexusmon::sign::sig_path(&record);
    let good = std::fs::read(&sig).unwrap();
    let reasons = |p: &Project| -> Vec<String> {
        let report = p.gate("mission-demo", std::slice::from_ref(&record));
        report
            .approvals
            .rejected
            .iter()
            .map(|r| r.reason.as_str().to_string())
            .collect()
    };
    assert!(reasons(&p).is_empty(), "{:?}", reasons(&p));
    std::fs::write(&sig, [b"junk\n".as_slice(), &good].concat()).unwrap();
    assert_eq!(reasons(&p), ["signature-malformed"]);
    std::fs::write(&sig, [0u8, 159, 146, 150, 0xff]).unwrap();
    assert_eq!(reasons(&p), ["signature-malformed"]);
    std::fs::remove_file(&sig).unwrap();
    assert_eq!(reasons(&p), ["signature-missing"]);
    // A record far over its size limit (sparse: 100 MB) is refused before it is read.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&record)
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(100 << 20).unwrap();
    let report = p.gate("mission-demo", std::slice::from_ref(&record));
    let r = &report.approvals.rejected;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].reason.as_str(), "record-unreadable");
    assert!(r[0].detail.contains("input limit"), "{r:?}");
    f.set_len(len).unwrap();
    // An RSA key of 1024 bits, trusted as an approver: refused as weak-key.
    let weak = p.path("keys/weak");
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q", "-t", "rsa", "-b", "1024", "-N", "", "-C", "weak", "-f",
        ])
        .arg(&weak)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.trust(&format!(
        "alice {} roles=approver",
        crate::util::ssh_pubkey(&weak)
    ));
    p.ssh_sign(&weak, "nexusmon-approval-v1", &record);
    assert_eq!(reasons(&p), ["weak-key"]);
    // nexusmon itself refuses to sign with it.
    let r = p.nx(&[
        "approve",
        "--plan",
        "plans/mission-demo/plan.json",
        "--approver",
        "alice",
        "--sign-with",
        weak.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(r.status, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("weak-key"), "{}", r.stderr);
}

#[test]
fn a_broken_trust_file_names_its_line_and_every_surface_says_it_is_broken() {
    let p = Project::shipped().init();
    let plan_path = p.path("plans/mission-demo/plan.json");
    let text = std::fs::read_to_string(&plan_path).unwrap();
    std::fs::write(
        &plan_path,
        text.replace("\"rank\": \"C\"", "\"rank\": \"A\""),
    )
    .unwrap();
    let trust = p.state().join("trusted_signers");
    let lines = std::fs::read_to_string(&trust).unwrap().lines().count();
    p.trust("alice ssh-ed25519 not-base64!! roles=approver");
    let place = format!("trusted_signers:{}:", lines + 1);
    // The gate refuses (exit 4) saying the trust file is broken, at which line.
    let r = p.run("mission-demo", &[]);
    r.code(4);
    assert!(
        r.stderr.contains("trust file is broken") && r.stderr.contains(&place),
        "{}",
        r.stderr
    );
    // An experiment needs no approval: it runs.
    p.run("quickstart", &[]).code(0);
    let r = p.nx(&["missions"]);
    assert!(r.stdout.contains("trust-file-broken"), "{}", r.stdout);
    let r = p.nx(&["review"]);
    assert!(
        r.stdout.contains("[trust-file-broken]") && r.stdout.contains(&place),
        "{}",
        r.stdout
    );
    let r = p.nx(&["audit", "verify"]);
    r.code(1);
    assert!(r.stderr.contains(&place), "{}", r.stderr);
    // A bundle signature is not trusted while the file is broken.
    let r = p.nx(&["validate-bundle", "--bundle", "out"]);
    r.code(1);
    assert!(r.stdout.contains("trust file is broken"), "{}", r.stdout);
    // Named on the command line, a broken trust file is an input error naming the line.
    let r = p.nx(&[
        "validate-bundle",
        "--bundle",
        "out",
        "--trust",
        trust.to_str().unwrap(),
    ]);
    r.code(2);
    assert!(r.stderr.contains(&place), "{}", r.stderr);
}
