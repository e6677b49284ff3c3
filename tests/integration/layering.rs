//! The crate's module graph: no import cycles, no import that goes up the layering
//! (`scripts/import-cycles.py`, which docs/ARCHITECTURE.md describes). The script is also
//! checked on generated trees, so a broken checker cannot pass the real one.

use std::path::Path;
use std::process::Command;

use crate::util::repo_root;

fn check(src: &Path) -> (i32, String) {
    let out = Command::new("python3")
        .arg(repo_root().join("scripts/import-cycles.py"))
        .arg(src)
        .output()
        .expect("python3 runs (scripts/test provisions it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, body) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, body).expect("write");
    }
    dir
}

#[test]
fn the_crate_has_no_import_cycle_and_no_upward_import() {
    let (code, text) = check(&repo_root().join("src"));
    assert_eq!(code, 0, "scripts/import-cycles.py found problems:\n{text}");
    assert!(text.contains("layering holds"), "{text}");
}

#[test]
fn a_cycle_between_files_of_one_module_is_found_through_super_paths() {
    let t = tree(&[
        ("lib.rs", "pub mod exec;\n"),
        ("exec/mod.rs", "pub mod a;\npub mod b;\n"),
        ("exec/a.rs", "use super::b::Thing;\n"),
        ("exec/b.rs", "use crate::exec::a::{Other, more::Deep};\n"),
    ]);
    let (code, text) = check(t.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cycle: exec::a <-> exec::b"), "{text}");
}

#[test]
fn an_import_up_the_layers_is_refused_even_without_a_cycle() {
    let t = tree(&[
        ("lib.rs", "pub mod model;\npub mod cli;\n"),
        ("model/mod.rs", "fn f() { let _ = crate::cli::run; }\n"),
        ("cli/mod.rs", "pub fn run() {}\n"),
    ]);
    let (code, text) = check(t.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("layering: model -> cli goes up"), "{text}");
}

#[test]
fn a_test_module_may_use_anything() {
    let t = tree(&[
        ("lib.rs", "pub mod model;\npub mod cli;\n"),
        (
            "model/mod.rs",
            "pub struct T;\n\n#[cfg(test)]\nmod tests {\n    use crate::cli::run;\n}\n",
        ),
        ("cli/mod.rs", "use crate::model::T;\npub fn run() {}\n"),
    ]);
    let (code, text) = check(t.path());
    assert_eq!(code, 0, "{text}");
}
