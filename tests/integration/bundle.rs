//! The bundle store through the binary: sealing, `validate-bundle`, `reindex-bundle`, and
//! the tamper tests (every mutation of every file of a realistic bundle is caught and named).
//! Bundles are written by the hidden `__bundle-write` command, which drives the real writer.

use std::path::{Path, PathBuf};
use std::process::Command;

use nexusmon::model::index::{ArtifactIndex, BundleStatus, Latest, RepairLog, RunStatusFile};

use crate::util::{Ran, Test, python, repo_root, snapshot_settings};

/// The realistic bundle content (results, summaries, nested logs, an empty log).
pub fn realistic() -> PathBuf {
    repo_root().join("tests/fixtures/bundle/realistic")
}

/// Seal `from` into `out` as run `run_id` through the real writer.
pub fn seal_from(out: &Path, from: &Path, run_id: &str) -> PathBuf {
    Test::new()
        .args(["__bundle-write", "--out"])
        .arg(out.to_str().unwrap())
        .args(["--from", from.to_str().unwrap(), "--run-id", run_id])
        .run()
        .code(0);
    out.join(run_id)
}

/// Run the binary with `args` (cwd: a throwaway temp dir).
pub fn nx<I, S>(args: I) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    Test::new().args(args).run()
}

/// `nexusmon __bundle-write --out OUT ARGS…`.
pub fn write_bundle(out: &Path, args: &[&str]) -> Ran {
    nx(["__bundle-write", "--out", out.to_str().unwrap()]
        .iter()
        .chain(args))
}

pub fn validate(path: &Path) -> Ran {
    nx(["validate-bundle", "--bundle", path.to_str().unwrap()])
}

pub fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> T {
    serde_json::from_slice(&std::fs::read(p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every regular file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, rel: &str, out: &mut Vec<String>) {
        for e in std::fs::read_dir(base.join(rel)).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(base, &child, out);
            } else {
                out.push(child);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

/// `cp -a src dst`.
pub fn copy_tree(src: &Path, dst: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Make a path writable (sealed files are 0444; root ignores it, other users do not).
fn writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// `b3sum --check BLAKE3SUMS` in `dir`.
pub fn b3sum_check(dir: &Path) -> std::process::Output {
    Command::new("b3sum")
        .args(["--check", "BLAKE3SUMS"])
        .current_dir(dir)
        .output()
        .expect("b3sum must be installed (scripts/test installs it)")
}

// --- sealing and the happy path -------------------------------------------------------

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn a_sealed_bundle_validates_and_b3sum_agrees() {
    use std::os::unix::fs::PermissionsExt;
    let t = Test::new();
    let out = t.path().join("out");
    let dir = seal_from(&out, &realistic(), "r-good");
    // Layout: everything from the fixture, plus the store's own files.
    let mut want = files_under(&realistic());
    want.extend(["BLAKE3SUMS", "artifact_index.json", "run_status.json"].map(String::from));
    want.sort();
    assert_eq!(files_under(&dir), want);
    assert!(!out.join(".staging/r-good").exists());

    let index: ArtifactIndex = read_json(&dir.join("artifact_index.json"));
    assert_eq!(index.status, BundleStatus::Complete);
    assert_eq!(index.file_count, want.len() as u64 - 1);
    let paths: Vec<&str> = index.entries.iter().map(|e| e.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    assert_eq!(paths, sorted, "entries sorted bytewise");
    let latest: Latest = read_json(&out.join("LATEST"));
    assert_eq!(latest.run_id, "r-good");
    assert_eq!(
        latest.artifact_index_blake3,
        blake3::hash(&std::fs::read(dir.join("artifact_index.json")).unwrap())
            .to_hex()
            .to_string()
    );
    // Sealed files are read-only.
    for f in files_under(&dir) {
        let mode = std::fs::metadata(dir.join(&f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444, "{f}");
    }

    for target in [&out, &dir] {
        let r = validate(target);
        r.code(0);
        assert!(r.stdout.contains("valid"), "{}", r.stdout);
        assert!(r.stdout.contains("r-good"), "{}", r.stdout);
    }
    let o = b3sum_check(&dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.lines().filter(|l| l.ends_with(": OK")).count(),
        want.len() - 2
    );
}

/// Validate a JSON document against a committed schema with an independent validator
/// (Python's `jsonschema`, from the venv scripts/test provisions).
pub fn assert_matches_schema(doc: &Path, schema_file: &str) {
    let o = python(
        &["jsonschema"],
        "import json, sys, jsonschema; jsonschema.Draft202012Validator(json.load(open(sys.argv[1]))).validate(json.load(open(sys.argv[2])))",
    )
    .arg(repo_root().join("schemas").join(schema_file))
    .arg(doc)
    .output()
    .unwrap();
    assert!(
        o.status.success(),
        "{} does not match {schema_file}: {}",
        doc.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn sealed_and_repaired_indexes_match_the_committed_schema() {
    let t = Test::new();
    let out = t.path().join("out");
    let dir = seal_from(&out, &realistic(), "r-schema");
    assert_matches_schema(
        &dir.join("artifact_index.json"),
        "artifact-index.schema.json",
    );
    std::fs::write(dir.join("late"), "x").unwrap();
    nx([
        "reindex-bundle",
        "--bundle",
        dir.to_str().unwrap(),
        "--repair",
    ])
    .code(0);
    assert_matches_schema(
        &dir.join("artifact_index.json"),
        "artifact-index.schema.json",
    );
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn validate_human_output() {
    let t = Test::new();
    let out = t.path().join("out");
    let dir = seal_from(&out, &realistic(), "r-snap");
    std::fs::remove_file(dir.join("summary.md")).unwrap();
    std::fs::write(dir.join("logs/scenario/extra.log"), "x").unwrap();
    writable(&dir.join("summary.json"));
    std::fs::write(dir.join("summary.json"), "{\"status\": \"ok!\"}\n").unwrap();
    let r = validate(&out);
    r.code(1);
    snapshot_settings(&[(t.path(), "[TMP]")]).bind(|| insta::assert_snapshot!(r.stdout));
    let r = nx([
        "--json",
        "validate-bundle",
        "--bundle",
        out.to_str().unwrap(),
    ]);
    r.code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let kinds: Vec<(&str, &str)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["kind"].as_str().unwrap(), p["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("unindexed-file", "logs/scenario/extra.log"),
            ("size-mismatch", "summary.json"),
            ("missing-file", "summary.md"),
        ]
    );
}

#[test]
fn not_a_bundle_is_a_usage_error() {
    let t = Test::new();
    let r = validate(&t.path().join("nope"));
    r.code(2);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    std::fs::create_dir(t.path().join("plain")).unwrap();
    let r = validate(&t.path().join("plain"));
    r.code(2);
    assert!(r.stderr.contains("neither a bundle"), "{}", r.stderr);
    // An out root where nothing was ever sealed.
    std::fs::create_dir_all(t.path().join("out/.staging")).unwrap();
    let r = validate(&t.path().join("out"));
    r.code(2);
    assert!(r.stderr.contains("without LATEST"), "{}", r.stderr);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn an_unsealed_staging_bundle_is_in_progress_and_never_valid() {
    let t = Test::new();
    let out = t.path().join("out");
    let r = Test::new()
        .args(["__bundle-write", "--out", out.to_str().unwrap()])
        .args([
            "--run-id",
            "r-crash",
            "--files",
            "3",
            "--crash-at",
            "after-files",
        ])
        .run();
    assert_eq!(r.status, -1, "killed by SIGKILL");
    let staged = out.join(".staging/r-crash");
    let r = validate(&staged);
    r.code(1);
    assert!(r.stdout.contains("index-missing"), "{}", r.stdout);
    assert!(r.stdout.contains("in-progress"), "{}", r.stdout);
    let e = nexusmon::bundle::load_bundle(&staged).unwrap_err();
    assert_eq!(e.exit_code(), 1);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn run_id_from_env_and_reuse_is_refused() {
    let t = Test::new();
    let out = t.path().join("out");
    let w = || {
        Test::new()
            .args([
                "__bundle-write",
                "--out",
                out.to_str().unwrap(),
                "--files",
                "1",
            ])
            .env("NEXUSMON_RUN_ID", "from-env")
            .run()
    };
    w().code(0);
    assert!(out.join("from-env/artifact_index.json").is_file());
    let r = w();
    r.code(2);
    assert!(
        r.stderr.contains("run `from-env` already exists"),
        "{}",
        r.stderr
    );
    // Nothing was half-written, and the first bundle is intact.
    assert!(!out.join(".staging/from-env").exists());
    validate(&out).code(0);
    let r = Test::new()
        .args(["__bundle-write", "--out", out.to_str().unwrap()])
        .args(["--run-id", "../escape"])
        .run();
    r.code(2);
    assert!(r.stderr.contains("invalid run id"), "{}", r.stderr);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn generated_run_ids_sort_by_time_and_differ() {
    let t = Test::new();
    let out = t.path().join("out");
    for _ in 0..3 {
        write_bundle(&out, &[]).code(0);
    }
    let mut ids: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "LATEST")
        .collect();
    assert_eq!(ids.len(), 3);
    let latest: Latest = read_json(&out.join("LATEST"));
    ids.sort();
    assert_eq!(latest.run_id, ids[2], "the newest id sorts last");
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn expected_but_missing_files_are_listed_and_failed_runs_validate() {
    let t = Test::new();
    let out = t.path().join("out");
    write_bundle(
        &out,
        &[
            "--run-id",
            "r-failed",
            "--files",
            "2",
            "--expect",
            "summary.json",
            "--expect",
            "data/00/000000.bin",
            "--failed",
        ],
    )
    .code(0);
    let dir = out.join("r-failed");
    let index: ArtifactIndex = read_json(&dir.join("artifact_index.json"));
    assert_eq!(index.missing, vec!["summary.json".to_string()]);
    assert_eq!(index.status, BundleStatus::Failed);
    let st: RunStatusFile = read_json(&dir.join("run_status.json"));
    assert_eq!(st.status, BundleStatus::Failed);
    assert_eq!(st.failure_stage.as_deref(), Some("execute"));
    let r = validate(&out);
    r.code(0);
    assert!(r.stdout.contains("(failed)"), "{}", r.stdout);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn a_failing_durability_barrier_aborts_the_seal_unsealed() {
    let t = Test::new();
    let out = t.path().join("out");
    seal_from(&out, &realistic(), "r-before");
    let latest_before = std::fs::read(out.join("LATEST")).unwrap();
    for extra in [None, Some("--per-file-fsync")] {
        // 200 files take the syncfs barrier; with --per-file-fsync, each file is fsynced.
        let (id, files) = if extra.is_some() {
            ("r-eio-each", "5")
        } else {
            ("r-eio", "200")
        };
        let mut args = vec!["__bundle-write", "--out", out.to_str().unwrap()];
        args.extend(["--run-id", id, "--files", files, "--fail-sync"]);
        args.extend(extra);
        // Only the first barrier call fails: had the writer retried, it would have sealed.
        let r = nx(&args);
        r.code(3);
        assert!(r.stderr.contains("Input/output error"), "{}", r.stderr);
        // syncfs fails for the whole staging directory, fsync for one file in it.
        let whole = format!(".staging/{id}: cannot make the bundle durable");
        assert_eq!(r.stderr.contains(&whole), extra.is_none(), "{}", r.stderr);
        // Not sealed, not published; the staging copy says failed and has no index.
        assert!(!out.join(id).exists());
        assert_eq!(std::fs::read(out.join("LATEST")).unwrap(), latest_before);
        let staged = out.join(".staging").join(id);
        assert!(!staged.join("artifact_index.json").exists());
        let st: RunStatusFile = read_json(&staged.join("run_status.json"));
        assert_eq!(st.status, BundleStatus::Failed);
        assert_eq!(st.failure_stage.as_deref(), Some("seal"));
        assert!(st.error.unwrap().contains("Input/output error"));
        validate(&staged).code(1);
        validate(&out).code(0);
    }
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn a_large_file_is_hashed_through_the_map_and_a_flip_in_it_is_caught() {
    let t = Test::new();
    let out = t.path().join("out");
    // 40 MiB: several hashing windows; its digest must match an independent blake3.
    write_bundle(
        &out,
        &[
            "--run-id",
            "r-big",
            "--files",
            "1",
            "--size",
            &(40u64 << 20).to_string(),
        ],
    )
    .code(0);
    let dir = out.join("r-big");
    let data = dir.join("data/00/000000.bin");
    let bytes = std::fs::read(&data).unwrap();
    let index: ArtifactIndex = read_json(&dir.join("artifact_index.json"));
    let e = index
        .entries
        .iter()
        .find(|e| e.path == "data/00/000000.bin")
        .unwrap();
    assert_eq!(e.size, 40 << 20);
    assert_eq!(e.blake3, blake3::hash(&bytes).to_hex().to_string());
    assert!(b3sum_check(&dir).status.success(), "stock b3sum agrees");
    validate(&out).code(0);
    flip_byte(&data, (25 << 20) + 3);
    let r = validate(&out);
    r.code(1);
    assert!(r.stdout.contains("digest-mismatch"), "{}", r.stdout);
    assert!(r.stdout.contains("data/00/000000.bin"), "{}", r.stdout);
}

// --- tampering ---------------------------------------------------------------------

fn flip_byte(p: &Path, at: usize) {
    writable(p);
    let mut b = std::fs::read(p).unwrap();
    b[at] ^= 0x01;
    std::fs::write(p, b).unwrap();
}

#[derive(Debug, Clone, Copy)]
enum Mutation {
    FlipFirst,
    FlipMiddle,
    FlipLast,
    TruncateOne,
    TruncateEmpty,
    Delete,
    AddBeside,
    Symlink,
}

const MUTATIONS: [Mutation; 8] = [
    Mutation::FlipFirst,
    Mutation::FlipMiddle,
    Mutation::FlipLast,
    Mutation::TruncateOne,
    Mutation::TruncateEmpty,
    Mutation::Delete,
    Mutation::AddBeside,
    Mutation::Symlink,
];

/// Apply `m` to `rel` in `dir`; returns the path the report must name, or `None` if the
/// mutation does not apply (no byte to flip in an empty file).
fn mutate(dir: &Path, rel: &str, m: Mutation, scratch: &Path) -> Option<String> {
    let p = dir.join(rel);
    let len = usize::try_from(std::fs::metadata(&p).unwrap().len()).unwrap();
    match m {
        Mutation::FlipFirst | Mutation::FlipMiddle | Mutation::FlipLast if len == 0 => {
            return None;
        }
        Mutation::TruncateOne | Mutation::TruncateEmpty if len == 0 => return None,
        Mutation::FlipFirst => flip_byte(&p, 0),
        Mutation::FlipMiddle => flip_byte(&p, len / 2),
        Mutation::FlipLast => flip_byte(&p, len - 1),
        Mutation::TruncateOne | Mutation::TruncateEmpty => {
            writable(&p);
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(if matches!(m, Mutation::TruncateOne) {
                len as u64 - 1
            } else {
                0
            })
            .unwrap();
        }
        Mutation::Delete => std::fs::remove_file(&p).unwrap(),
        Mutation::AddBeside => {
            let added = format!("{rel}.added");
            std::fs::write(dir.join(&added), b"not evidence").unwrap();
            return Some(added);
        }
        Mutation::Symlink => {
            // The strongest case: the symlink points at an identical copy.
            let copy = scratch.join("identical-copy");
            std::fs::copy(&p, &copy).unwrap();
            std::fs::remove_file(&p).unwrap();
            std::os::unix::fs::symlink(&copy, &p).unwrap();
        }
    }
    Some(rel.to_string())
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn every_mutation_of_every_file_is_caught_and_named() {
    let t = Test::new();
    let base = t.path().join("base");
    let dir = seal_from(&base.join("out"), &realistic(), "r-tamper");
    validate(&base.join("out")).code(0);
    let files = files_under(&dir);
    assert!(files.len() >= 20, "{files:?}");
    assert!(files.iter().any(|f| f.starts_with("logs/scenario/")));
    let mut cases = 0;
    for rel in &files {
        for m in MUTATIONS {
            let case = t.path().join("case");
            std::fs::create_dir(&case).unwrap();
            copy_tree(&base.join("out"), &case.join("out"));
            let cdir = case.join("out/r-tamper");
            let Some(named) = mutate(&cdir, rel, m, &case) else {
                std::fs::remove_dir_all(&case).unwrap();
                continue;
            };
            cases += 1;
            // Through the out root (LATEST) and the bundle directory alike.
            for target in [case.join("out"), cdir.clone()] {
                let r = validate(&target);
                assert_eq!(
                    r.status,
                    1,
                    "{m:?} on {rel} via {} was not caught:\n{}",
                    target.display(),
                    r.stdout
                );
                assert!(
                    r.stdout.contains(&format!("  {named}  "))
                        || r.stdout.contains(&format!(" {named} ")),
                    "{m:?} on {rel}: the report does not name `{named}`:\n{}",
                    r.stdout
                );
            }
            // The strict reader refuses it too.
            let e = nexusmon::bundle::load_bundle(&case.join("out")).unwrap_err();
            assert_eq!(e.exit_code(), 1, "{m:?} on {rel}: {e}");
            std::fs::remove_dir_all(&case).unwrap();
        }
    }
    // 20 files × 8 mutations, minus the flips and truncations of the two empty files.
    assert_eq!(cases, files.len() * 8 - 2 * 5);
    // The untouched original still passes, and stock b3sum agrees.
    validate(&base.join("out")).code(0);
    assert!(b3sum_check(&dir).status.success());
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn tampering_with_latest_is_caught() {
    let t = Test::new();
    let out = t.path().join("out");
    seal_from(&out, &realistic(), "r-old");
    seal_from(&out, &realistic(), "r-new");
    let latest: Latest = read_json(&out.join("LATEST"));
    let cases: [(&str, String, &str); 4] = [
        (
            "digest",
            format!(
                "{{\"artifact_index_blake3\": \"{}\", \"run_id\": \"r-new\"}}",
                "0".repeat(64)
            ),
            "latest-mismatch",
        ),
        (
            "pointed at the older run",
            format!(
                "{{\"artifact_index_blake3\": \"{}\", \"run_id\": \"r-old\"}}",
                latest.artifact_index_blake3
            ),
            "latest-mismatch",
        ),
        (
            "dangling",
            format!(
                "{{\"artifact_index_blake3\": \"{}\", \"run_id\": \"r-gone\"}}",
                latest.artifact_index_blake3
            ),
            "latest-dangling",
        ),
        ("garbage", "not json".into(), "latest-unparseable"),
    ];
    for (what, content, kind) in cases {
        writable(&out.join("LATEST"));
        std::fs::write(out.join("LATEST"), content).unwrap();
        let r = validate(&out);
        assert_eq!(r.status, 1, "{what}: {}", r.stdout);
        assert!(r.stdout.contains(kind), "{what}: {}", r.stdout);
    }
    // A path escape in LATEST is not followed.
    std::fs::write(
        out.join("LATEST"),
        format!(
            "{{\"artifact_index_blake3\": \"{}\", \"run_id\": \"../out/r-new\"}}",
            latest.artifact_index_blake3
        ),
    )
    .unwrap();
    let r = validate(&out);
    r.code(1);
    assert!(r.stdout.contains("latest-unparseable"), "{}", r.stdout);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn an_index_that_lies_is_caught() {
    let t = Test::new();
    let out = t.path().join("out");
    let dir = seal_from(&out, &realistic(), "r-lie");
    let index_path = dir.join("artifact_index.json");
    let original: ArtifactIndex = read_json(&index_path);
    let rewrite = |f: &dyn Fn(&mut ArtifactIndex)| {
        let mut i = original.clone();
        f(&mut i);
        writable(&index_path);
        std::fs::write(&index_path, serde_json::to_vec_pretty(&i).unwrap()).unwrap();
        // Through the bundle dir: LATEST (in the parent) still anchors the old digest.
        let r = validate(&dir);
        assert_eq!(r.status, 1, "{}", r.stdout);
        r.stdout
    };
    let s = rewrite(&|i| i.entries.retain(|e| e.path != "summary.md"));
    assert!(
        s.contains("latest-mismatch") && s.contains("index-invalid"),
        "{s}"
    );
    assert!(
        s.contains("unindexed-file") && s.contains("summary.md"),
        "{s}"
    );
    let s = rewrite(&|i| {
        i.entries[0].path = "../../etc/passwd".into();
        i.entries.sort_by(|a, b| a.path.cmp(&b.path));
    });
    assert!(s.contains("unsafe-path"), "{s}");
    let s = rewrite(&|i| i.status = BundleStatus::InProgress);
    assert!(s.contains("in-progress"), "{s}");
    let s = rewrite(&|i| i.status = BundleStatus::Failed);
    assert!(s.contains("status-mismatch"), "{s}");
    writable(&index_path);
    std::fs::write(&index_path, b"{\"schema_version\": 1}").unwrap();
    let r = validate(&dir);
    r.code(1);
    assert!(r.stdout.contains("index-unparseable"), "{}", r.stdout);
    std::fs::remove_file(&index_path).unwrap();
    let r = validate(&dir);
    r.code(1);
    assert!(r.stdout.contains("index-missing"), "{}", r.stdout);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn a_symlinked_directory_and_a_fifo_are_caught() {
    let t = Test::new();
    let out = t.path().join("out");
    let dir = seal_from(&out, &realistic(), "r-links");
    // Replace logs/ by a symlink to an identical copy.
    copy_tree(&dir.join("logs"), &t.path().join("logs-copy"));
    std::fs::rename(dir.join("logs"), t.path().join("logs-moved")).unwrap();
    std::os::unix::fs::symlink(t.path().join("logs-copy"), dir.join("logs")).unwrap();
    let r = validate(&out);
    r.code(1);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("  symlink ") && l.contains(" logs ")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("logs/scenario/ro:read-etc.stdout"),
        "{}",
        r.stdout
    );
    std::fs::remove_file(dir.join("logs")).unwrap();
    std::fs::rename(t.path().join("logs-moved"), dir.join("logs")).unwrap();
    validate(&out).code(0);
    // A FIFO does not hang the check.
    let fifo = std::ffi::CString::new(dir.join("pipe").to_str().unwrap()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let r = validate(&out);
    r.code(1);
    assert!(r.stdout.contains("not-regular-file"), "{}", r.stdout);
}

// --- reindex ------------------------------------------------------------------------

fn reindex(path: &Path, mode: &str) -> Ran {
    nx(["reindex-bundle", "--bundle", path.to_str().unwrap(), mode])
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn reindex_strict_only_verifies() {
    let t = Test::new();
    let out = t.path().join("out");
    let dir = seal_from(&out, &realistic(), "r-strict");
    reindex(&out, "--strict").code(0);
    std::fs::write(dir.join("extra"), "x").unwrap();
    let before = std::fs::read(dir.join("artifact_index.json")).unwrap();
    let r = reindex(&out, "--strict");
    r.code(1);
    assert!(r.stdout.contains("unindexed-file"), "{}", r.stdout);
    assert_eq!(
        std::fs::read(dir.join("artifact_index.json")).unwrap(),
        before
    );
    let r = nx(["reindex-bundle", "--bundle", out.to_str().unwrap()]);
    r.code(2);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn repair_rewrites_the_index_records_why_and_then_validates() {
    let t = Test::new();
    let out = t.path().join("out");
    let dir = seal_from(&out, &realistic(), "r-repair");
    let old_index: ArtifactIndex = read_json(&dir.join("artifact_index.json"));
    let old_digest = blake3::hash(&std::fs::read(dir.join("artifact_index.json")).unwrap())
        .to_hex()
        .to_string();
    flip_byte(&dir.join("summary.md"), 3);
    std::fs::remove_file(dir.join("logs/baseline/ro:write-tmp.stdout")).unwrap();
    std::fs::write(dir.join("logs/late.log"), "written after the seal").unwrap();
    validate(&out).code(1);

    let r = reindex(&out, "--repair");
    r.code(0);
    assert!(
        r.stdout.contains("1 missing, 1 mismatched, 1 unindexed"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("LATEST updated"), "{}", r.stdout);
    let v = validate(&out);
    v.code(0);
    assert!(v.stdout.contains("repaired"), "{}", v.stdout);

    let index: ArtifactIndex = read_json(&dir.join("artifact_index.json"));
    assert!(index.repaired);
    assert_eq!(index.status, old_index.status);
    assert_eq!(
        index.missing,
        vec!["logs/baseline/ro:write-tmp.stdout".to_string()]
    );
    assert!(index.entries.iter().any(|e| e.path == "repair_log.json"));
    assert!(index.entries.iter().any(|e| e.path == "logs/late.log"));
    let log: RepairLog = read_json(&dir.join("repair_log.json"));
    assert_eq!(log.repairs.len(), 1);
    let rec = &log.repairs[0];
    assert_eq!(
        rec.previous_index_blake3.as_deref(),
        Some(old_digest.as_str())
    );
    assert_eq!(
        rec.latest_recorded_blake3, None,
        "LATEST agreed with the old index"
    );
    assert_eq!(rec.before.index, "ok");
    assert_eq!(
        rec.before.missing,
        vec!["logs/baseline/ro:write-tmp.stdout"]
    );
    assert_eq!(rec.before.mismatched.len(), 1);
    assert_eq!(rec.before.mismatched[0].path, "summary.md");
    assert_ne!(
        rec.before.mismatched[0].indexed.blake3,
        rec.before.mismatched[0].found.blake3
    );
    assert_eq!(rec.before.unindexed.len(), 1);
    assert_eq!(rec.before.unindexed[0].path, "logs/late.log");
    assert_eq!(rec.after.missing, index.missing);
    assert!(b3sum_check(&dir).status.success());
    for f in ["artifact_index.json", "BLAKE3SUMS", "repair_log.json"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444, "{f}");
    }

    // A second repair keeps the first record.
    std::fs::write(dir.join("more.log"), "again").unwrap();
    reindex(&dir, "--repair").code(0);
    let log: RepairLog = read_json(&dir.join("repair_log.json"));
    assert_eq!(log.repairs.len(), 2);
    assert_eq!(log.repairs[1].before.unindexed[0].path, "more.log");
    validate(&out).code(0);
    // A valid bundle is left alone.
    let before = std::fs::read(dir.join("artifact_index.json")).unwrap();
    let r = reindex(&out, "--repair");
    r.code(0);
    assert!(r.stdout.contains("nothing to repair"), "{}", r.stdout);
    assert_eq!(
        std::fs::read(dir.join("artifact_index.json")).unwrap(),
        before
    );
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn repair_after_latest_disagreed_records_what_latest_said() {
    let t = Test::new();
    let out = t.path().join("out");
    let dir = seal_from(&out, &realistic(), "r-latest");
    let index_digest = blake3::hash(&std::fs::read(dir.join("artifact_index.json")).unwrap())
        .to_hex()
        .to_string();
    let forged = "f".repeat(64);
    writable(&out.join("LATEST"));
    std::fs::write(
        out.join("LATEST"),
        format!("{{\"artifact_index_blake3\": \"{forged}\", \"run_id\": \"r-latest\"}}"),
    )
    .unwrap();
    let r = validate(&out);
    r.code(1);
    assert!(r.stdout.contains("latest-mismatch"), "{}", r.stdout);
    reindex(&out, "--repair").code(0);
    validate(&out).code(0);
    let log: RepairLog = read_json(&dir.join("repair_log.json"));
    let rec = &log.repairs[0];
    assert_eq!(
        rec.previous_index_blake3.as_deref(),
        Some(index_digest.as_str())
    );
    assert_eq!(rec.latest_recorded_blake3.as_deref(), Some(forged.as_str()));
    assert!(rec.before.missing.is_empty() && rec.before.mismatched.is_empty());
    let index: ArtifactIndex = read_json(&dir.join("artifact_index.json"));
    assert!(index.repaired);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn repair_rebuilds_a_missing_index() {
    let t = Test::new();
    let out = t.path().join("out");
    let dir = seal_from(&out, &realistic(), "r-noindex");
    std::fs::remove_file(dir.join("artifact_index.json")).unwrap();
    validate(&out).code(1);
    let r = nx([
        "--json",
        "reindex-bundle",
        "--bundle",
        dir.to_str().unwrap(),
        "--repair",
    ]);
    r.code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["repaired"], true);
    assert_eq!(v["record"]["before"]["index"], "missing");
    assert_eq!(v["after"]["valid"], true);
    validate(&out).code(0);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn repair_refuses_in_progress_and_symlinks() {
    let t = Test::new();
    let out = t.path().join("out");
    let r = write_bundle(&out, &["--run-id", "r-staged", "--crash-at", "after-begin"]);
    assert_eq!(r.status, -1);
    let staged = out.join(".staging/r-staged");
    let r = reindex(&staged, "--repair");
    r.code(1);
    assert!(r.stderr.contains("staging directory"), "{}", r.stderr);
    assert!(!staged.join("artifact_index.json").exists());
    // An in_progress bundle moved out of staging by hand is refused as well.
    std::fs::rename(&staged, out.join("r-staged")).unwrap();
    let r = reindex(&out.join("r-staged"), "--repair");
    r.code(1);
    assert!(r.stderr.contains("in_progress"), "{}", r.stderr);
    assert!(!out.join("r-staged/artifact_index.json").exists());

    let dir = seal_from(&out, &realistic(), "r-sym");
    std::os::unix::fs::symlink("/etc/hostname", dir.join("host")).unwrap();
    let before = std::fs::read(dir.join("artifact_index.json")).unwrap();
    let r = reindex(&dir, "--repair");
    r.code(1);
    assert!(r.stderr.contains("`host` (a symlink)"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(dir.join("artifact_index.json")).unwrap(),
        before
    );
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn the_strict_reader_verifies_each_read_and_the_unverified_one_does_not() {
    let t = Test::new();
    let out = t.path().join("out");
    let dir = seal_from(&out, &realistic(), "r-read");
    let b = nexusmon::bundle::load_bundle(&out).unwrap();
    assert_eq!(b.run_id, "r-read");
    assert!(b.via_latest);
    let summary: serde_json::Value = b.read_json("summary.json").unwrap();
    assert_eq!(summary["status"], "ok");
    assert!(b.read_verified("nope.json").is_err());
    // Changed after the check: the read refuses it.
    flip_byte(&dir.join("summary.json"), 2);
    let e = b.read_verified("summary.json").unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().contains("summary.json"), "{e}");
    let u = nexusmon::bundle::open_bundle_unverified(&out).unwrap();
    assert_eq!(u.run_id, "r-read");
    assert!(u.read("summary.json").is_ok());
    assert!(u.read("../LATEST").is_err());
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection: run scripts/test"
)]
fn seal_from_a_tree_with_a_symlink_is_refused_and_nothing_is_published() {
    let t = Test::new();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), "1").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("l")).unwrap();
    let out = t.path().join("out");
    let r = write_bundle(&out, &["--from", src.to_str().unwrap(), "--move"]);
    r.code(3);
    assert!(r.stderr.contains("symlink"), "{}", r.stderr);
    assert!(!out.join("LATEST").exists());
}
