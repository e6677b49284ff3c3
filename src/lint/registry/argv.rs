//! Host paths in an exec probe's `argv` (NX221) and its `reads` declarations.
//!
//! The baseline lane runs a probe with no policy, so an exec probe whose `argv` names a
//! host path could change the host (`["/usr/bin/touch", "/tmp/x"]`). Every absolute path
//! in `argv[1..]` must be under `${SCRATCH}` or `${HOME}`, a harmless device or the
//! child's own `/proc/self`, or declared as a read-only input in `reads` (which the runner
//! keeps read-only). `argv[0]` is the program: executed, never written.
//!
//! Where paths are found in an argument: the argument itself when it starts with `/` or a
//! variable; after `=` (`--out=/x`, `of=/x`); and at every word start inside an argument
//! that reads like a shell command (`sh -c "cat /etc/x > /tmp/y"`: after whitespace or one
//! of `;|&<>(){'"`,:`). In the script of a shell (`sh`, `bash`, `dash`, … with `-c`), a path
//! in command position is a program it runs — executed, like `argv[0]` — and needs no
//! declaration: the script's start; after a newline, `;`, `|`, `&` (not the `&` of a
//! redirection `>&`), `(` (not an array's `=(`) or a backquote that no backslash escapes;
//! and after a reserved word that is in command position itself (`{`, `!`, `if`, `then`,
//! `elif`, `else`, `while`, `until`, `do`: `while …; do /usr/bin/x; done`, but not
//! `echo do /tmp/x` or the brace expansion `{/a,/b}`), after a plain assignment prefix
//! (`A=1 /usr/bin/x`) or a command that runs its next word (`exec`, `command`, `env`,
//! `nohup`, `nice`, `time`, with no option between) in command position itself.
//! `command_position_agrees_with_dash_and_bash`
//! checks this against the real shells. A path the program builds at run time
//! (`$(echo /tm)p`, `$1`) cannot be seen here; the baseline's read-only host is the
//! backstop for those.

use super::super::codes::Code;
use super::super::finding::{At, Sink};
use super::super::vars::{self, Lead, Scope};
use crate::model::registry::{Driver, Probe};

/// Characters after which a path may start inside an argument (not `)`: `$(dirname
/// x)/y` continues a word; `{` for bash's brace expansion `{/a,/b}`).
const STARTS_AFTER: &[char] = &[
    ';', '|', '&', '<', '>', '(', '{', '\'', '"', '`', '=', ':', ',',
];
/// Characters that end a path inside an argument.
const ENDS_AT: &[char] = &[';', '|', '&', '<', '>', '(', ')', '\'', '"', '`', ',', ':'];

/// Host paths a program may write without changing anything: devices and its own `/proc`.
const HARMLESS: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
];
/// Prefixes of the same kind.
const HARMLESS_UNDER: &[&str] = &["/dev/fd/", "/proc/self/", "/proc/thread-self/"];

/// Shells whose `-c` argument is a script.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"];

/// Characters after which a word in a shell script is in command position (unless
/// escaped; `&` and `(` with the exceptions in [`command_position`]).
const COMMAND_AFTER: &[char] = &['\n', ';', '|', '&', '(', '`'];

/// Reserved words after which the next word is in command position again, when they are
/// in command position themselves. `{` only as a word of its own: `{/a,/b}` is bash's brace
/// expansion, not a group.
const KEYWORDS: &[&str] = &[
    "{", "!", "if", "then", "elif", "else", "while", "until", "do",
];

/// Commands that run the word right after them as a program when they are in command
/// position themselves (`nohup /usr/bin/x`, `env /usr/bin/x`, `exec /usr/bin/x`; bash's
/// `time` keyword, dash's `/usr/bin/time`). Only the next word, and only without options:
/// `time -o /x …` and `env -C /x …` name a path to write or enter, so a word after an
/// option stays an argument.
const WRAPPERS: &[&str] = &["exec", "command", "env", "nohup", "nice", "time"];

/// `word` is an assignment `NAME=VALUE` whose value is plain (no quote, `$`, backslash,
/// backquote, brace or parenthesis), so that the blank after it really ends it:
/// `A="x /y" /z` is not one (its `/y` stays an argument).
fn plain_assignment(word: &str) -> bool {
    let Some((name, value)) = word.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:,+-@%".contains(c))
}

/// The shell's blanks (not every Unicode space: `do\u{a0}/x` is one word to a shell).
fn blank(c: char) -> bool {
    matches!(c, ' ' | '\t')
}

/// A word starting right after `before` (the script up to it) is in command position.
/// A loop, not recursion, over the words before it: a script of a million `!` or `A=1`
/// words takes a million steps and no stack.
fn command_position(mut before: &str) -> bool {
    loop {
        let t = before.trim_end_matches(blank);
        let mut rev = t.chars().rev();
        let Some(last) = rev.next() else {
            return true;
        };
        let prior = rev.next();
        if COMMAND_AFTER.contains(&last) {
            // An odd number of backslashes before it makes it a literal character (`tee \;
            // /x`).
            let escapes = t[..t.len() - last.len_utf8()]
                .chars()
                .rev()
                .take_while(|c| *c == '\\')
                .count();
            return escapes % 2 == 0
                && match last {
                    // `>&/x`, `<&/x`: a redirection (bash writes `/x`), not a background `&`.
                    '&' => !matches!(prior, Some('>' | '<')),
                    // `a=(/x /y)`: an array's values, not a subshell.
                    '(' => prior != Some('='),
                    _ => true,
                };
        }
        if t.len() == before.len() {
            // No blank between: the word goes on (`{/a,/b}`, `>/x`, `"/x"`).
            return false;
        }
        let start = t
            .char_indices()
            .rev()
            .find(|(_, c)| blank(*c) || COMMAND_AFTER.contains(c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &t[start..];
        // A reserved word, a wrapper or an assignment prefix (`A=1 /usr/bin/x`, `env A=1
        // /usr/bin/x`) leaves the next word in command position if it is there itself.
        if !(KEYWORDS.contains(&word) || WRAPPERS.contains(&word) || plain_assignment(word)) {
            return false;
        }
        before = &t[..start];
    }
}

/// The index of the shell script in `argv` (`sh -c SCRIPT`), if `argv` runs a shell.
fn shell_script(argv: &[String]) -> Option<usize> {
    let name = argv.first()?.rsplit('/').next()?;
    if !SHELLS.contains(&name) {
        return None;
    }
    argv.iter()
        .skip(1)
        .position(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('c'))
        .map(|i| i + 2)
        .filter(|i| *i < argv.len())
}

/// The path-like substrings of one argument (absolute, or starting with a variable), each
/// with whether it is in command position (meaningful for a shell script).
#[cfg(test)]
fn argv_paths(arg: &str) -> Vec<&str> {
    argv_words(arg).into_iter().map(|(p, _)| p).collect()
}

/// Where the path at the start of `rest` ends: at whitespace, one of [`ENDS_AT`], or a `}`
/// that closes no `${` of the path itself (`{/a,/b}` ends `/b`; `${SCRATCH}/x` goes on).
fn path_end(rest: &str) -> usize {
    let mut open = 0usize;
    let mut prev = None;
    for (i, ch) in rest.char_indices() {
        match ch {
            '{' if prev == Some('$') => open += 1,
            '}' if open > 0 => open -= 1,
            '}' => return i,
            _ if ch.is_whitespace() || ENDS_AT.contains(&ch) => return i,
            _ => {}
        }
        prev = Some(ch);
    }
    rest.len()
}

fn argv_words(arg: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < arg.len() {
        let rest = &arg[i..];
        let Some(c) = rest.chars().next() else {
            break;
        };
        let at_start = prev.is_none_or(|p| p.is_whitespace() || STARTS_AFTER.contains(&p));
        if at_start && (rest.starts_with('/') || rest.starts_with("${")) {
            let end = path_end(rest);
            out.push((&rest[..end], command_position(&arg[..i])));
            let last = rest[..end].chars().last();
            i += end.max(c.len_utf8());
            prev = if end == 0 { Some(c) } else { last };
            continue;
        }
        prev = Some(c);
        i += c.len_utf8();
    }
    out
}

/// `p` with `.` and `..` components and repeated slashes removed (lexically: `..` above
/// the root stays at the root).
fn lexical(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `path` is `root` or beneath it (both lexical).
fn beneath(path: &str, root: &str) -> bool {
    root == "/" || path == root || path.starts_with(&format!("{root}/"))
}

fn harmless(path: &str) -> bool {
    HARMLESS.contains(&path) || HARMLESS_UNDER.iter().any(|h| path.starts_with(h))
}

/// The host paths NX221 would ask `reads` to declare for `argv` (literal absolute paths in
/// `argv[1..]`, lexically normalized, devices and `/proc/self` left out, a shell script's
/// programs left out), sorted and unique: what `learn` declares for the command it writes.
pub fn host_paths(argv: &[String]) -> Vec<String> {
    let script = shell_script(argv);
    let mut out = std::collections::BTreeSet::new();
    for (i, arg) in argv.iter().enumerate().skip(1) {
        for (p, command) in argv_words(arg) {
            if (command && script == Some(i)) || !p.starts_with('/') {
                continue;
            }
            let norm = lexical(p);
            if !harmless(&norm) {
                out.insert(norm);
            }
        }
    }
    out.into_iter().collect()
}

/// NX221 for every host path in `argv[1..]` that `reads` does not declare; NX202 for a
/// relative `reads` entry; NX207 for `reads` on a builtin probe.
pub(super) fn check_argv(sink: &mut Sink<'_>, base: &str, probe: &Probe, scope: &Scope) {
    let at = |rel: &str| format!("{base}{rel}");
    if probe.driver == Driver::Builtin {
        if !probe.reads.is_empty() {
            sink.push_hint(
                Code::ArgvOnBuiltin,
                &at("/reads"),
                At::Key,
                "`reads` on a builtin probe has no effect",
                Some("remove it, or set \"driver\": \"exec\"".into()),
            );
        }
        return;
    }
    let mut declared: Vec<String> = Vec::new();
    for (i, r) in probe.reads.iter().enumerate() {
        match scope.lead(r) {
            Some(Lead::Relative) => sink.push_hint(
                Code::RelativePath,
                &at(&format!("/reads/{i}")),
                At::Value,
                format!("`{r}` is not an absolute path"),
                Some("declare the host path the program reads, e.g. \"/etc/hostname\"".into()),
            ),
            _ => declared.push(lexical(r)),
        }
    }
    let Some(argv) = &probe.argv else {
        return;
    };
    let script = shell_script(argv);
    for (i, arg) in argv.iter().enumerate().skip(1) {
        for (p, command) in argv_words(arg) {
            if command && script == Some(i) {
                continue;
            }
            let literal = if p.starts_with('/') {
                Some(p.to_string())
            } else if p.starts_with("${HOME}") && !vars::has_dot_dot(p) {
                None
            } else {
                match scope.lead(p) {
                    Some(Lead::Scratch { rest }) if !vars::has_dot_dot(&rest) => None,
                    Some(Lead::Scratch { .. } | Lead::Root) => Some(p.to_string()),
                    // A number, or a plan variable whose value only the plan knows.
                    Some(Lead::Relative) | None => None,
                }
            };
            let Some(path) = literal else {
                continue;
            };
            let norm = lexical(&path);
            if harmless(&norm) || declared.iter().any(|d| beneath(&norm, d)) {
                continue;
            }
            sink.push_hint(
                Code::ArgvHostPath,
                &at(&format!("/argv/{i}")),
                At::Value,
                format!(
                    "`argv[{i}]` names `{path}`, a host path outside `${{SCRATCH}}` and `${{HOME}}` that the probe does not declare in `reads`"
                ),
                Some(format!(
                    "if the program only reads it, add \"reads\": [\"{norm}\"] (it is then kept read-only in both lanes); if it writes there, use a path under `${{SCRATCH}}` created with a fixture"
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_found_at_word_starts_and_after_equals() {
        assert_eq!(argv_paths("/tmp/x"), vec!["/tmp/x"]);
        assert_eq!(argv_paths("of=/tmp/x"), vec!["/tmp/x"]);
        assert_eq!(argv_paths("--out=/a/b"), vec!["/a/b"]);
        assert_eq!(
            argv_paths("cat /etc/a >/tmp/b; rm '/c d'"),
            vec!["/etc/a", "/tmp/b", "/c"]
        );
        assert_eq!(argv_paths("${SCRATCH}/x"), vec!["${SCRATCH}/x"]);
        assert_eq!(argv_paths("PATH=/usr/bin:/bin"), vec!["/usr/bin", "/bin"]);
        assert!(argv_paths("a/b c/d").is_empty());
        assert!(argv_paths("-c").is_empty());
        assert!(argv_paths("").is_empty());
        assert_eq!(argv_paths("é /x"), vec!["/x"]);
        assert_eq!(argv_paths("f=$(dirname /a)/b"), vec!["/a"]);
        assert_eq!(argv_paths("{/a,/b/c}"), vec!["/a", "/b/c"]);
        assert_eq!(argv_paths("${SCRATCH}/x}"), vec!["${SCRATCH}/x"]);
    }

    #[test]
    fn programs_a_shell_script_runs_are_in_command_position() {
        let words = |s: &str| -> Vec<(String, bool)> {
            argv_words(s)
                .into_iter()
                .map(|(p, c)| (p.to_string(), c))
                .collect()
        };
        assert_eq!(
            words("{ /usr/bin/uname -s; /usr/bin/id -u; } > /tmp/x"),
            vec![
                ("/usr/bin/uname".into(), true),
                ("/usr/bin/id".into(), true),
                ("/tmp/x".into(), false)
            ]
        );
        assert_eq!(
            words("echo \"$(/usr/bin/date)\" >/tmp/y && /bin/true /etc/z"),
            vec![
                ("/usr/bin/date".into(), true),
                ("/tmp/y".into(), false),
                ("/bin/true".into(), true),
                ("/etc/z".into(), false)
            ]
        );
        // Wrappers and assignment prefixes run the next word; options, quoted values and
        // the same words as arguments do not.
        assert_eq!(
            words("A=1 env B=x/y nohup /bin/a; time -o /tmp/t /bin/b; echo env /tmp/c"),
            vec![
                ("/bin/a".into(), true),
                ("/tmp/t".into(), false),
                ("/bin/b".into(), false),
                ("/tmp/c".into(), false)
            ]
        );
        assert_eq!(
            words("A=\"x /tmp/a\" /bin/b; export A=1 /tmp/c; exec /bin/d"),
            vec![
                ("/tmp/a".into(), false),
                ("/bin/b".into(), false),
                ("/tmp/c".into(), false),
                ("/bin/d".into(), true)
            ]
        );
        // A long chain of prefixes is a loop, not a deep recursion.
        for unit in ["! ", "A=1 ", "nohup ", "{ "] {
            let script = format!("{}/bin/x", unit.repeat(500_000));
            assert_eq!(argv_paths(&script), vec!["/bin/x"]);
            assert!(command_position(&script[..script.len() - "/bin/x".len()]));
        }
        let argv = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(shell_script(&argv(&["/bin/sh", "-c", "x"])), Some(2));
        assert_eq!(
            shell_script(&argv(&["/bin/bash", "-euc", "x", "a"])),
            Some(2)
        );
        assert_eq!(shell_script(&argv(&["/usr/bin/cat", "-c", "x"])), None);
        assert_eq!(shell_script(&argv(&["/bin/sh", "-c"])), None);
        assert_eq!(shell_script(&argv(&["/bin/sh", "script.sh"])), None);
    }

    use crate::util::testrng::Rng;

    /// A generated shell script for the differential test: programs (`t<i>` exits 0, `f<i>`
    /// 1, each logs its own path when run) placed so that every one of them runs, and
    /// arguments (`a<i>`, never run) placed where a shell never executes a word, including
    /// right after a reserved word used as an argument, an escaped `;`, a redirection.
    struct ScriptGen<'a> {
        rng: &'a mut Rng,
        dir: &'a str,
        bash: bool,
        n: usize,
        /// Every program path written, every argument path written.
        programs: Vec<String>,
        arguments: Vec<String>,
        /// Programs the lint may also report (see [`ScriptGen::prefix`]).
        lenient: Vec<String>,
    }

    impl ScriptGen<'_> {
        fn program(&mut self, succeeds: bool) -> String {
            self.n += 1;
            let p = format!(
                "{}/run/{}{}",
                self.dir,
                if succeeds { 't' } else { 'f' },
                self.n
            );
            self.programs.push(p.clone());
            p
        }

        fn argument(&mut self) -> String {
            self.n += 1;
            let a = format!("{}/arg/a{}", self.dir, self.n);
            self.arguments.push(a.clone());
            a
        }

        /// What may stand before a program and still run it: plain assignments, then
        /// `command` (a builtin: nothing external may come before it) or, in bash, the
        /// `time` keyword (first only: after an assignment it is `/usr/bin/time`), then
        /// external commands that run their next word (`env` with assignments of its own,
        /// `nohup`, `nice`).
        /// With whether the program after it is only *allowed* to be taken for a program:
        /// after an assignment whose quoted value holds a blank (`A="x /a" /p`), where the
        /// lint stays conservative and reports it.
        fn prefix(&mut self) -> (String, bool) {
            let mut words: Vec<String> = Vec::new();
            let quoted = self.rng.below(6) == 0;
            if quoted {
                let a = self.argument();
                words.push(format!("A=\"x {a}\" "));
            }
            for _ in 0..self.rng.below(3_usize).saturating_sub(1) {
                let (name, value) = (self.rng.below(9_usize), self.rng.below(9_usize));
                words.push(format!("A{name}=x/{value} "));
            }
            match self.rng.below(8) {
                0 => words.push("command ".into()),
                1 if self.bash && words.is_empty() => words.push("time ".into()),
                _ => {}
            }
            let out = words.concat();
            (out + &self.external_prefix(), quoted)
        }

        /// External commands that run their next word (what `exec` may be followed by).
        fn external_prefix(&mut self) -> String {
            let mut out = String::new();
            for _ in 0..self.rng.below(4_usize).saturating_sub(1) {
                let wrapper =
                    *self
                        .rng
                        .pick(&["env ", "env B=1 C=/y ", "nohup ", "nice ", "env nice "]);
                out.push_str(wrapper);
            }
            out
        }

        /// A simple command that succeeds: a program, maybe after a prefix that still runs
        /// it, and its arguments.
        fn simple(&mut self) -> String {
            let (prefix, lenient) = if self.rng.below(3) == 0 {
                self.prefix()
            } else {
                (String::new(), false)
            };
            self.simple_after(&prefix, lenient)
        }

        fn simple_after(&mut self, prefix: &str, lenient: bool) -> String {
            let program = self.program(true);
            if lenient {
                self.lenient.push(program.clone());
            }
            let mut words = vec![format!("{prefix}{program}")];
            for _ in 0..self.rng.below(4) {
                let k = self.rng.below(if self.bash { 12 } else { 9 });
                let w = match k {
                    0 | 1 => self.argument(),
                    // A reserved word as an argument: the word after it is an argument.
                    2 => format!("{} {}", self.rng.pick(KEYWORDS), self.argument()),
                    3 => format!("\\; {}", self.argument()),
                    4 => format!(">{}", self.argument()),
                    5 => format!("2>&1 {}", self.argument()),
                    // A wrapper or an assignment as an argument, or an assignment whose
                    // quoted value holds a blank: the word after it is an argument.
                    6 => format!("{} {}", self.rng.pick(WRAPPERS), self.argument()),
                    7 => format!("A=1 {}", self.argument()),
                    8 => format!("A=\"x {}\" {}", self.argument(), self.argument()),
                    9 => format!(">&{}", self.argument()),
                    10 => format!("{{{},{}}}", self.argument(), self.argument()),
                    _ => format!("x={}", self.argument()),
                };
                words.push(w);
            }
            words.join(" ")
        }

        /// A list of commands that runs every program in it and succeeds.
        fn list(&mut self, depth: usize) -> String {
            let n = 1 + self.rng.below(3);
            let mut parts = Vec::new();
            for _ in 0..n {
                parts.push(self.command(depth));
            }
            let mut out = parts[0].clone();
            for p in &parts[1..] {
                let sep = *self.rng.pick(&["; ", "\n", " && ", " | ", "\n\n  "]);
                out.push_str(sep);
                out.push_str(p);
            }
            out
        }

        fn command(&mut self, depth: usize) -> String {
            let k = match (depth, self.bash) {
                (0, _) => 0,
                (_, false) => self.rng.below(13),
                (_, true) => self.rng.below(14),
            };
            let d = depth.saturating_sub(1);
            match k {
                0..=2 => self.simple(),
                3 => format!("if {}; then {}; fi", self.simple(), self.list(d)),
                4 => format!(
                    "if {}; then :; else {}; fi",
                    self.program(false),
                    self.list(d)
                ),
                5 => format!(
                    "if {}; then :; elif {}; then {}; fi",
                    self.program(false),
                    self.simple(),
                    self.list(d)
                ),
                6 => format!("while {}; do {}; break; done", self.simple(), self.list(d)),
                7 => format!(
                    "until {}\ndo\n{}; break\ndone",
                    self.program(false),
                    self.list(d)
                ),
                8 => format!("{{ {}; }}", self.list(d)),
                9 => format!("( {} )", self.list(d)),
                // `; :` so that a following `|` does not join the negated pipeline.
                10 => format!("x=$( {} ); ! {}; :", self.list(d), self.program(false)),
                11 => format!("{} || {}", self.program(false), self.simple()),
                // `exec` replaces the shell: only in a subshell of its own, or the rest
                // would not run; only external commands may follow it.
                12 => {
                    let prefix = self.external_prefix();
                    format!("( exec {} )", self.simple_after(&prefix, false))
                }
                // bash: an array's values are not programs.
                _ => format!(
                    "a=({} {}); {}",
                    self.argument(),
                    self.argument(),
                    self.simple()
                ),
            }
        }
    }

    /// Seeded random scripts run by the real `dash` and `bash`: a path the lint takes for a
    /// program (command position) is exactly a path the shell ran, and every path written
    /// into the script is found. A program taken for an argument would only be a false
    /// alarm; an argument taken for a program would hide a path the script may write.
    #[test]
    fn command_position_agrees_with_dash_and_bash() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_str().expect("utf-8 temp dir").to_string();
        let log = format!("{dir}/log");
        for sub in ["run", "arg"] {
            std::fs::create_dir(format!("{dir}/{sub}")).expect("mkdir");
        }
        let (mut programs, mut arguments, mut lenient) = (0, 0, 0);
        for seed in 1..=150u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let bash = seed % 2 == 0;
            let mut g = ScriptGen {
                rng: &mut rng,
                dir: &dir,
                bash,
                n: 0,
                programs: Vec::new(),
                arguments: Vec::new(),
                lenient: Vec::new(),
            };
            let script = g.list(3);
            let (gen_programs, gen_arguments, gen_lenient) = (g.programs, g.arguments, g.lenient);
            for p in &gen_programs {
                // `t<i>` exits 0, `f<i>` exits 1.
                let code = u8::from(p.rsplit('/').next().is_some_and(|n| n.starts_with('f')));
                let body = format!("#!/bin/sh\nprintf '%s\\n' \"$0\" >> '{log}'\nexit {code}\n");
                std::fs::write(p, body).expect("write program");
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            }
            let _ = std::fs::remove_file(&log);
            let shell = if bash { "/bin/bash" } else { "/bin/dash" };
            let out = std::process::Command::new(shell)
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap_or_else(|e| panic!("{shell}: {e}"));
            let ran: std::collections::BTreeSet<String> = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            let ctx = || {
                format!(
                    "seed {seed} {shell}:\n{script}\nstderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            };
            // Every program ran (the generator's promise, checked so a wrong script
            // cannot pass quietly), and no argument did.
            for p in &gen_programs {
                assert!(ran.contains(p), "{p} did not run: {}", ctx());
            }
            let words = argv_words(&script);
            for (w, command) in &words {
                if !*command && gen_lenient.iter().any(|l| l == w) {
                    // Conservative: reported although the shell runs it.
                    continue;
                }
                assert_eq!(
                    *command,
                    ran.contains(*w),
                    "`{w}` taken for {}: {}",
                    if *command { "a program" } else { "an argument" },
                    ctx()
                );
            }
            let found: std::collections::BTreeSet<&str> = words.iter().map(|(w, _)| *w).collect();
            for a in gen_arguments.iter().chain(&gen_programs) {
                assert!(found.contains(a.as_str()), "`{a}` not found: {}", ctx());
            }
            programs += gen_programs.len();
            lenient += gen_lenient.len();
            arguments += gen_arguments.len();
            for p in &gen_programs {
                let _ = std::fs::remove_file(p);
            }
            for a in &gen_arguments {
                let _ = std::fs::remove_file(a);
            }
        }
        assert!(
            programs > 1000 && arguments > 500 && lenient > 10,
            "{programs} {arguments} {lenient}"
        );
    }

    /// What a generated token is, and the host path it names when it names one.
    enum Token {
        /// Nothing to flag.
        Fine(String),
        /// A host path outside the scratch: `(text, normalized path)`.
        Host(String, String),
    }

    fn token(rng: &mut Rng, i: usize) -> Token {
        match rng.below(10) {
            0 => Token::Fine(format!("word{i}")),
            1 => Token::Fine(format!("${{SCRATCH}}/d{i}/f")),
            2 => Token::Fine(format!("${{HOME}}/h{i}")),
            3 => Token::Fine(
                ["/dev/null", "/dev/zero", "/proc/self/status", "/dev/fd/1"][rng.below(4)]
                    .to_string(),
            ),
            4 => Token::Host(format!("/etc/e{i}"), format!("/etc/e{i}")),
            5 => Token::Host(format!("of=/var/v{i}"), format!("/var/v{i}")),
            6 => Token::Host(
                format!("${{SCRATCH}}/../../../x{i}"),
                format!("${{SCRATCH}}/../../../x{i}"),
            ),
            7 => Token::Host(
                format!("/usr/share/s/../../../tmp/t{i}"),
                format!("/tmp/t{i}"),
            ),
            8 => Token::Host("/proc/self/../1/environ".into(), "/proc/1/environ".into()),
            _ => Token::Host(format!("//srv//./w{i}"), format!("/srv/w{i}")),
        }
    }

    /// Random exec probes (plain arguments and `sh -c` scripts, random `reads`): NX221 is
    /// reported for exactly the host paths that no `reads` entry covers.
    #[test]
    fn generated_probes_are_flagged_exactly_for_their_undeclared_host_paths() {
        use crate::source::Document;
        let (mut total_flagged, mut total_declared) = (0, 0);
        for seed in 1..=400u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let shell = rng.below(2) == 0;
            let mut argv: Vec<String> = Vec::new();
            let mut hosts: Vec<String> = Vec::new();
            let n = 1 + rng.below(5);
            let mut script = Vec::new();
            for i in 0..n {
                let (text, host) = match token(&mut rng, i) {
                    Token::Fine(t) => (t, None),
                    Token::Host(t, h) => (t, Some(h)),
                };
                if let Some(h) = host {
                    hosts.push(h);
                }
                if shell {
                    // A program in command position (never flagged), the token as its
                    // argument or as a redirection target.
                    let redirect = if rng.below(2) == 0 { "> " } else { "" };
                    script.push(format!("/usr/bin/p{i} {redirect}{text}"));
                } else {
                    argv.push(text);
                }
            }
            let argv: Vec<String> = if shell {
                vec!["/bin/sh".into(), "-c".into(), script.join("; ")]
            } else {
                std::iter::once("/usr/bin/prog".to_string())
                    .chain(argv)
                    .collect()
            };
            // Declare a random half of the host paths (by a prefix or the path itself).
            let mut reads = Vec::new();
            let mut undeclared = Vec::new();
            for h in &hosts {
                if h.starts_with("${") || rng.below(2) == 0 {
                    undeclared.push(h.clone());
                } else if rng.below(2) == 0 {
                    reads.push(h.clone());
                } else {
                    let parent = h.rsplit_once('/').map_or("/", |(p, _)| p).to_string();
                    reads.push(if parent.is_empty() {
                        "/".into()
                    } else {
                        parent
                    });
                }
            }
            // A declared parent also covers the other host paths beneath it.
            undeclared.retain(|u| {
                !reads
                    .iter()
                    .any(|r| u == r || u.starts_with(&format!("{r}/")) || r == "/")
            });
            let probe = serde_json::json!({
                "operation": "exec", "driver": "exec", "argv": argv, "reads": reads,
            });
            let text = format!(r#"{{"probes": {{"p": {probe}}}}}"#);
            let doc = Document::parse("probes.json", text).unwrap();
            let parsed: Probe = serde_json::from_value(probe.clone()).unwrap();
            let mut sink = Sink::new(&doc, std::path::Path::new("/x/probes.json"));
            check_argv(&mut sink, "/probes/p", &parsed, &Scope::builtins());
            let mut flagged: Vec<String> = sink
                .findings
                .iter()
                .filter(|f| f.code == Code::ArgvHostPath)
                .map(|f| f.message.split('`').nth(3).unwrap_or_default().to_string())
                .map(|p| if p.starts_with("${") { p } else { lexical(&p) })
                .collect();
            flagged.sort();
            undeclared.sort();
            assert_eq!(flagged, undeclared, "seed {seed}: {probe}");
            total_flagged += flagged.len();
            total_declared += hosts.len() - undeclared.len();
        }
        // The generator exercises both sides.
        assert!(
            total_flagged > 200 && total_declared > 200,
            "{total_flagged} {total_declared}"
        );
    }

    #[test]
    fn lexical_normalization_cannot_be_fooled_by_dot_dot() {
        assert_eq!(lexical("/usr/share/../../tmp/x"), "/tmp/x");
        assert_eq!(lexical("//tmp/./x/"), "/tmp/x");
        assert_eq!(lexical("/../../x"), "/x");
        assert!(beneath("/usr/share/dict/words", "/usr/share/dict"));
        assert!(!beneath("/usr/share/dictionary", "/usr/share/dict"));
        assert!(beneath("/x", "/"));
    }
}
