//! `nexusmon sandbox --profile ID -- CMD ARGS…`: a real command under a registry profile,
//! through the scenario lane's compiled-profile path and child setup, its exit status,
//! output and kernel denials passed through; `--record OUT` seals the one execution.

use std::process::Command;

use serde_json::Value;

use crate::util::results;
use crate::util::{Project, read_json};

#[test]
fn cat_runs_as_without_the_sandbox_and_a_read_outside_is_refused_with_the_kernels_record() {
    let _g = crate::kernel_audit::audit_lock();
    let p = Project::shipped();
    // Allowed: same exit code and output as without the sandbox.
    let plain = Command::new("cat")
        .arg("/usr/lib/os-release")
        .output()
        .unwrap();
    let r = p.nx(&[
        "sandbox",
        "--profile",
        "system-ro",
        "--",
        "cat",
        "/usr/lib/os-release",
    ]);
    assert_eq!(Some(r.status), plain.status.code(), "{}", r.stderr);
    assert_eq!(r.stdout.as_bytes(), plain.stdout.as_slice());
    assert!(!p.path("out").exists(), "nothing is kept without --record");

    // Exit statuses pass through, signals as 128 + the signal.
    let r = p.nx(&[
        "sandbox",
        "--profile",
        "system-ro",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(r.status, 7, "{}", r.stderr);
    let r = p.nx(&[
        "sandbox",
        "--profile",
        "system-ro",
        "--",
        "sh",
        "-c",
        "kill -TERM $$",
    ]);
    assert_eq!(r.status, 128 + libc::SIGTERM, "{}", r.stderr);

    // Outside the profile: cat's own refusal and exit status, the kernel's record of it,
    // and a sealed bundle of the one execution.
    let plain = Command::new("cat").arg("/etc/hostname").output().unwrap();
    assert_eq!(plain.status.code(), Some(0));
    let r = p.nx(&[
        "sandbox",
        "--profile",
        "system-ro",
        "--kernel-audit",
        "require",
        "--record",
        "rec",
        "--",
        "cat",
        "/etc/hostname",
    ]);
    crate::util::assert_sandbox_refused_hostname_read(&r);
    let latest = read_json(&p.path("rec/LATEST"));
    let bundle = p.path("rec").join(latest["run_id"].as_str().unwrap());
    p.nx(&["validate-bundle", "--bundle", bundle.to_str().unwrap()])
        .code(0);
    let lines = std::fs::read_to_string(bundle.join("kernel_denials.jsonl")).unwrap();
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["scenario_id"], "system-ro:command");
    assert_eq!(first["object"]["path"], "/etc/hostname");
    let runtime = crate::util::results(&bundle, "runtime_results.jsonl");
    assert_eq!(runtime[0]["exit_code"], 1);
    assert_eq!(runtime[0]["argv"][1], "/etc/hostname");
    assert!(
        results(&bundle, "baseline_results.jsonl")
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The policy enforced is the one a plan proves: the compiled profile in the sandbox's
    // bundle is the quickstart run's, byte for byte.
    // (Only the run's own scratch directory, `${SCRATCH}`, differs: it is named by run id.)
    p.run("quickstart", &[]).code(0);
    let compiled = |manifest: &Value| {
        manifest["profiles"]["system-ro"]
            .to_string()
            .replace(manifest["run_id"].as_str().unwrap(), "<run_id>")
    };
    let proven = compiled(&read_json(&p.latest().join("run_manifest.json")));
    let enforced = compiled(&read_json(&bundle.join("run_manifest.json")));
    assert!(proven.contains("\"/etc/ld.so.cache\""), "{proven}");
    assert_eq!(proven, enforced);

    // A profile no registry has: a usage error with a suggestion, nothing run.
    let r = p.nx(&["sandbox", "--profile", "system-rw", "--", "true"]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("did you mean `system-ro`"),
        "{}",
        r.stderr
    );
}
