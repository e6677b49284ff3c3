//! A runner failure in the middle of a run (exit 3), produced for real: the out root is a
//! small tmpfs (mounted in a private mount namespace with `unshare -m`, so nothing leaks
//! into the host's mounts), and the captured output of an exec probe fills it while the
//! lanes run. The run must stop with exit 3 naming the path it could not write, seal what
//! it has as `failed` (a valid bundle that says so, `LATEST` moved to it), and its packet
//! must not be promotable (`bundle-failed`).

use std::process::Command;

use serde_json::Value;

use crate::util::{Test, bin, repo_root};

#[test]
fn a_write_that_fails_mid_run_exits_3_and_seals_the_bundle_as_failed() {
    let t = Test::new();
    let dir = t.path();
    let root = repo_root().join("tests/fixtures/run_failure");
    // Everything that needs the tmpfs runs inside the namespace; results land in `dir`.
    let script = r#"
set -u
mkdir -p "$T/mnt"
mount -t tmpfs -o size=1200k tmpfs "$T/mnt" || exit 90
"$NX" --root "$ROOT" run --plan "$ROOT/plans/spew/plan.json" --out "$T/mnt/out" >"$T/run.out" 2>"$T/run.err"
echo $? >"$T/run.code"
"$NX" --json validate-bundle --bundle "$T/mnt/out" >"$T/validate.json" 2>"$T/validate.err"
echo $? >"$T/validate.code"
cp "$T/mnt/out/LATEST" "$T/latest.json"
for f in "$T"/mnt/out/2*/run_status.json; do cp "$f" "$T/run_status.json"; done
ls -A "$T/mnt/out/.staging" >"$T/staging.ls"
"$NX" --root "$ROOT" emit-promotion --bundle "$T/mnt/out" --out "$T/pk.json" -q 2>"$T/emit.err"
echo $? >"$T/emit.code"
"#;
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .env("T", dir)
        .env("NX", bin())
        .env("NEXUSMON_SCRATCH_PARENT", crate::util::scratch_parent())
        .env("ROOT", &root)
        .env("NO_COLOR", "1")
        .env_remove("NEXUSMON_ROOT")
        .env_remove("NEXUSMON_STATE_DIR")
        .env_remove("NEXUSMON_RUN_ID")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unshare/mount failed (root and util-linux are required here): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let code = |f: &str| read(f).trim().parse::<i32>().unwrap();

    // The run: exit 3, the error names the file it could not write and why.
    let err = read("run.err");
    assert_eq!(code("run.code"), 3, "{err}");
    assert!(err.contains("cannot write"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("/logs/"), "{err}");
    assert!(err.contains("is sealed as `failed`"), "{err}");

    // What it has is sealed as failed, in a bundle that validates; nothing left in staging.
    let status: Value = serde_json::from_str(&read("run_status.json")).unwrap();
    assert_eq!(status["status"], "failed", "{status:#}");
    assert_eq!(status["failure_stage"], "execute", "{status:#}");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{status:#}"
    );
    assert_eq!(code("validate.code"), 0, "{}", read("validate.err"));
    let v: Value = serde_json::from_str(&read("validate.json")).unwrap();
    assert_eq!(v["valid"], true, "{v:#}");
    let latest: Value = serde_json::from_str(&read("latest.json")).unwrap();
    assert_eq!(latest["run_id"], status["run_id"]);
    assert_eq!(read("staging.ls").trim(), "");

    // Its packet is written but never promotable.
    assert_eq!(code("emit.code"), 0, "{}", read("emit.err"));
    let pk: Value = serde_json::from_str(&read("pk.json")).unwrap();
    assert_eq!(pk["promotability"]["promotable"], false);
    let reasons: Vec<&str> = pk["promotability"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"bundle-failed"), "{reasons:?}");
}
