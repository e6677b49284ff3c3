//! The README's command lines work as written. Every line of its ```` ```sh ```` blocks and
//! every `$ ` line of its ```` ```console ```` blocks (output samples and synopses sit in
//! untagged blocks and are not run) runs with `sh -c`, in README order, in one temp copy of
//! the shipped examples ([`Project::shipped`]), so a command may use what an earlier one made
//! (the quickstart run's `out/`, `nexusmon init`'s state, the emitted packet).
//!
//! What the test substitutes, and nothing else:
//! - `nexusmon` is the test binary (its directory first on `PATH`); `cargo run --release --`
//!   at the start of a line is `nexusmon`;
//! - `~` is a temp home with an ed25519 key at `~/.ssh/id_ed25519` (`HOME`);
//! - `<run_id>` is the run `out/LATEST` names.
//!
//! A line must exit 0, or `N` when its trailing comment (` # …`) starts with `exit N`. Only
//! `scripts/test`, the test command itself, is skipped.
//!
//! A line whose comment starts with `serves` is a server (`nexusmon serve`): it is started
//! in the background with its `--bind` port replaced by a free one (port 0), the test waits
//! for its `serving http://…` line, the later lines reach it (`127.0.0.1:8012` in them is
//! the address it took), and after the last line it gets SIGTERM and must exit 0.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{Project, bin, latest_bundle, repo_root, ssh_keygen};

/// One command line of the README.
#[derive(Debug)]
struct Example {
    /// 1-based line in README.md.
    line: usize,
    /// The command as written (without its comment).
    command: String,
    /// The exit code the README documents for it.
    exit: i32,
    /// A server kept running for the lines after it (`# serves…`).
    serves: bool,
}

/// The address README examples give a server.
const README_ADDR: &str = "127.0.0.1:8012";

/// The runnable command lines of `readme`, in order.
fn examples(readme: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut block: Option<&str> = None;
    for (i, raw) in readme.lines().enumerate() {
        let line = raw.trim_end();
        if let Some(fence) = line.strip_prefix("```") {
            block = match block {
                None => Some(fence.trim()),
                Some(_) => None,
            };
            continue;
        }
        let text = match block {
            Some("sh") => line,
            Some("console") => match line.strip_prefix("$ ") {
                Some(t) => t,
                None => continue,
            },
            _ => continue,
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let (command, comment) = match text.find(" # ") {
            Some(at) => (text[..at].trim(), text[at + 3..].trim()),
            None => (text, ""),
        };
        let exit = comment
            .strip_prefix("exit ")
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        out.push(Example {
            line: i + 1,
            command: command.to_string(),
            exit,
            serves: comment.starts_with("serves"),
        });
    }
    assert!(block.is_none(), "README.md: a code block is not closed");
    out
}

/// `command` with the documented substitutions.
fn substitute(command: &str, root: &Path) -> String {
    let mut c = command.to_string();
    if let Some(rest) = c.strip_prefix("cargo run --release -- ") {
        c = format!("nexusmon {rest}");
    }
    if c.contains("<run_id>") {
        let run_id = latest_bundle(root)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        c = c.replace("<run_id>", &run_id);
    }
    c
}

#[test]
fn the_convention_reads_commands_comments_and_exit_codes() {
    let md = "text\n```sh\n# a comment\nnexusmon a   # exit 1: findings\n\nnexusmon b # or c\n```\n```\n$ nexusmon sample\n```\n```console\n$ nexusmon c && nexusmon d\noutput\n```\n";
    let got: Vec<(usize, String, i32)> = examples(md)
        .into_iter()
        .map(|e| (e.line, e.command, e.exit))
        .collect();
    assert!(examples("```sh\nnexusmon serve   # serves: until stopped\n```\n")[0].serves);
    assert_eq!(
        got,
        vec![
            (4, "nexusmon a".to_string(), 1),
            (6, "nexusmon b".to_string(), 0),
            (12, "nexusmon c && nexusmon d".to_string(), 0),
        ]
    );
}

#[test]
fn every_command_line_of_the_readme_works_as_written() {
    // `learn` enables kernel audit for its rounds: not while another test expects it off.
    let _audit = crate::kernel_audit::audit_lock();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let all = examples(&readme);
    let p = Project::shipped();
    let home = p.path("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let key = ssh_keygen(&home, "id_ed25519", "ed25519");
    std::fs::rename(&key, home.join(".ssh/id_ed25519")).unwrap();
    std::fs::rename(
        format!("{}.pub", key.display()),
        home.join(".ssh/id_ed25519.pub"),
    )
    .unwrap();
    let bin_dir: PathBuf = bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    let mut failed = Vec::new();
    let mut server: Option<(std::process::Child, String)> = None;
    for e in &all {
        if e.command == "scripts/test" || e.command.starts_with("scripts/test ") {
            continue;
        }
        let mut command = substitute(&e.command, p.root());
        if let Some((_, addr)) = &server {
            command = command.replace(README_ADDR, addr);
        }
        if e.serves {
            assert!(server.is_none(), "README.md:{}: a second server", e.line);
            server = Some(start_server(
                &command.replace(README_ADDR, "127.0.0.1:0"),
                p.root(),
                &path,
                &home,
                e.line,
            ));
            ran += 1;
            continue;
        }
        let out = Command::new("sh")
            .args(["-c", &command])
            .current_dir(p.root())
            .env("PATH", &path)
            .env("HOME", &home)
            .env("NO_COLOR", "1")
            .env_remove("NEXUSMON_ROOT")
            .env_remove("NEXUSMON_STATE_DIR")
            .env_remove("NEXUSMON_RUN_ID")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_STEP_SUMMARY")
            // The harness's own scratch parent for this test, as `nexusmon()` gives (the
            // README's lines that name one still win).
            .env("NEXUSMON_SCRATCH_PARENT", crate::util::scratch_parent())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        ran += 1;
        let code = out.status.code().unwrap_or(-1);
        if code != e.exit {
            failed.push(format!(
                "README.md:{}: `{}` exited {code}, the README says {}\n--- stdout\n{}--- stderr\n{}",
                e.line,
                e.command,
                e.exit,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    if let Some((mut child, _)) = server {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let st = child.wait().unwrap();
        if st.code() != Some(0) {
            failed.push(format!("the README's server exited {st:?} on SIGTERM"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // The README shows a couple of dozen command lines; far fewer means the extraction broke.
    assert!(ran >= 20, "only {ran} README command lines found");
}

/// Start a README server line in the background; wait for its `serving http://ADDR/` line.
fn start_server(
    command: &str,
    root: &Path,
    path: &str,
    home: &Path,
    line: usize,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new("sh")
        .args(["-c", &format!("exec {command}")])
        .current_dir(root)
        .env("PATH", path)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("NEXUSMON_ROOT")
        .env_remove("NEXUSMON_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = l.strip_prefix("serving http://") {
                let _ = tx.send(Ok(rest.split('/').next().unwrap_or("").to_string()));
            }
            seen.push_str(&l);
            seen.push('\n');
        }
        let _ = tx.send(Err(seen));
    });
    match rx.recv_timeout(std::time::Duration::from_mins(2)) {
        Ok(Ok(addr)) => (child, addr),
        other => {
            let _ = child.kill();
            panic!("README.md:{line}: `{command}` did not start serving: {other:?}");
        }
    }
}
