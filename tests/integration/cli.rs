//! Command-line basics: help, version, usage errors, completions.

use crate::util::Test;

#[test]
fn usage_error_exits_2() {
    let r = Test::new().arg("no-such-command").run();
    r.code(2);
    assert!(r.stderr.contains("unrecognized subcommand"), "{}", r.stderr);
}

#[test]
fn version_prints_the_crate_version() {
    let r = Test::new().arg("--version").run();
    r.code(0);
    assert!(r.stdout.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn completions_for_bash_mention_every_top_level_command() {
    let r = Test::new().args(["completions", "bash"]).run();
    r.code(0);
    for cmd in [
        "run",
        "plan-lint",
        "validate-bundle",
        "emit-promotion",
        "plan-build",
        "audit",
    ] {
        assert!(r.stdout.contains(cmd), "missing {cmd}");
    }
}
